/*
 * A scripted pen for the fake transport (fake_transport.h): a log of real
 * chunks (seqs 0..39, five records a chunk; signed with a fixed key when
 * asked) that it serves as a pen does (Hello, GetInfo, PullLog windows,
 * AckLog), and knobs that make it misbehave one way at a time.
 */
#ifndef PENLINK_SCRIPT_PEN_H
#define PENLINK_SCRIPT_PEN_H

#include <stdint.h>

#include "fake_transport.h"

#define SCRIPT_PEN_SERIAL "PEN-000777"
#define SCRIPT_PEN_RECORDS 40 /* the pen's log: seqs 0..39 */
#define SCRIPT_PEN_PER_CHUNK 5
#define SCRIPT_PEN_CHUNKS (SCRIPT_PEN_RECORDS / SCRIPT_PEN_PER_CHUNK)

typedef struct script_chunk {
    uint64_t first;
    uint32_t count, raw_size;
    size_t len;
    uint8_t data[1024];
    uint8_t prev_link[32], link[32];
} script_chunk;

/* The pen and how it misbehaves. */
typedef struct script_pen {
    script_chunk chunks[SCRIPT_PEN_CHUNKS];
    int signs;
    penlink_key key;
    uint64_t first, next, acked; /* what DeviceInfo says, and what the pen holds */
    int has_claim;               /* DeviceInfo says claim_next instead of next */
    uint64_t claim_next;
    uint32_t count_override; /* a record_count other than the chunk's */
    const char *info_serial;
    int omit_key;        /* signs, but DeviceInfo carries no device key */
    int drop_chunk;      /* 1 + index of a chunk never sent */
    int repeat_first;    /* the first chunk of each window sent twice */
    int empty_chunk;     /* a chunk of no records */
    int corrupt_chunk;   /* 1 + index of a chunk whose data is damaged (its link still holds) */
    int end_delta;       /* added to each LogEnd's next_seq */
    int never_end;       /* LogEnd says more but sends nothing */
    int silent_pulls;    /* PullLogs left unanswered */
    uint32_t pull_error; /* PullLog refused with this code */
    int wrong_reply;     /* a Config in reply to PullLog */
    uint64_t shift;      /* added to every chunk's first_seq */
    int bad_signature;   /* heads signed over the wrong seq */
    int no_head;         /* LogEnds without a head */
    int relink;          /* 1 + index of a chunk sent with another link */
    int ack_delta;       /* added to the seq each AckLogReply gives */
    int refuse_ack;      /* every AckLog refused as beyond the log's end, even of records sent */
    int pulls, infos;    /* requests seen */
    int acks;            /* AckLogs seen, and the last one's seq */
    uint64_t acked_through;
} script_pen;

/* The pen's log and key; @p signs: it signs its log. DeviceInfo says 0..39. */
void script_pen_init(script_pen *p, int signs);
/* Record @p seq of the pen's log. */
penlink_record script_pen_record(uint64_t seq);
/* The pen itself: a fake_responder whose user is the script_pen. */
int script_pen_respond(fake_wire *w, const pl_envelope *req, void *user);

#endif
