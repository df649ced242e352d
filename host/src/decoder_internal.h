/*
 * What the decoder's files share (decoder.c, decoder_frames.c,
 * decoder_chain.c, decoder_chunks.c, decoder_capture.c): the decoder's
 * state and its steps. Internal to libpenlink.
 */
#ifndef PENLINK_DECODER_INTERNAL_H
#define PENLINK_DECODER_INTERNAL_H

#include "archive.h"
#include "message.h"
#include "pl/auth.h"
#include "pl/capture.h"
#include "pl/chunk.h"
#include "pl/envelope.h"
#include "pl/frame.h"

/* Conversations of a capture a decoder follows; more are ignored. */
#define DEC_MAX_STREAMS 8
/* Pens whose chains a decoder remembers (by serial); more share nothing. */
#define DEC_MAX_PENS 8
/* Links of one pen remembered by the seq their chunk ends at (a hash table:
 * a newer link may push out an older one, which then is not checked against). */
#define DEC_CHAIN_MEMORY 1024u
#define DEC_FRAME_BUF (PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD)

/* One chunk's link, by the seq after its last record. */
typedef struct chain_link {
    int used;
    uint64_t end;
    uint8_t link[PL_LINK_BYTES];
} chain_link;

/* What the chain check knows of one pen, across the sessions of the input:
 * its serial and device key, and the links of the chunks it sent. */
typedef struct pen_state {
    int used;
    char serial[PL_SERIAL_MAX + 1];
    int have_key;
    uint8_t key[PL_KEY_BYTES];
    chain_link *seen; /* DEC_CHAIN_MEMORY slots, allocated with the first link */
} pen_state;

/* One conversation with a pen (a USB device, a stream trace's interface, a
 * file): the pen it is with, and the session going on. */
typedef struct chain_state {
    int used;
    int usb;
    uint32_t key; /* USB bus << 16 | address << 8; the interface of a stream trace */
    pen_state *pen;
    pen_state own; /* the pen while its serial is not known (or too many pens) */
    int have_last;
    uint8_t last[PL_LINK_BYTES]; /* link of the last chunk of this session */
    uint32_t last_reply;         /* its request id */
    uint64_t last_end;           /* the seq after its last record */
    int open_pull;               /* a reply of LogChunks without its LogEnd yet */
    uint32_t open_reply;
    uint64_t open_packet;
    char note[160]; /* penlink_message.chain / problem text */
} chain_state;

/* Seqs a file held so far, in runs of consecutive seqs, each with a digest
 * of its record's content: a seq that comes again is compared, not counted
 * twice. 8 bytes a record; a file in seq order is one run per stretch
 * between gaps. */
typedef struct seen_run {
    uint64_t lo, n, cap;
    uint64_t *dig;
} seen_run;

/* One direction of one conversation of a capture. */
typedef struct dec_stream {
    int used;
    uint32_t key; /* pl_wire.stream, or the interface of a stream trace */
    pl_dir dir;
    int usb;
    pl_frame_decoder fdec;
    uint8_t *fbuf;
    uint64_t skipped; /* fdec.skipped when the last damage was reported */
} dec_stream;

/* Things worth saying about an input that decoded without error. */
#define DEC_MAX_NOTES 8
#define DEC_NOTE_LEN 200

struct penlink_decoder {
    penlink_ctx *ctx;
    penlink_record_cb on_record;
    penlink_message_cb on_message;
    void *user;
    penlink_input_format format;
    int failed;
    uint64_t offset; /* input bytes taken so far */
    uint64_t records, chunks;
    uint64_t good; /* input offset past the last complete frame/chunk */
    uint64_t last_seq;
    int have_seq;
    uint64_t frames;            /* complete frames so far */
    int have_header;            /* the input began with a file header */
    penlink_file_header header; /* ...naming this pen */
    pl_frame_decoder fdec;
    uint8_t *fbuf;
    pl_chunk_dec cdec;
    pl_record *recs;
    uint8_t *cbuf; /* bare-chunk mode: bytes not yet decoded */
    size_t cbuf_len;
    uint64_t cbuf_offset; /* input offset of cbuf[0] */
    penlink_message_ex_cb on_message_ex;
    void *user_ex;
    uint64_t messages, problems;
    chain_state chain; /* a file's conversation */
    pl_capture cap;    /* capture mode */
    int cap_open;
    dec_stream streams[DEC_MAX_STREAMS];
    chain_state convs[DEC_MAX_STREAMS]; /* a capture's conversations */
    pen_state pens[DEC_MAX_PENS];
    char notes[DEC_MAX_NOTES][DEC_NOTE_LEN];
    size_t n_notes, n_notes_more;
    int chunk_failed; /* the last log chunk did not decode */
    seen_run *runs;   /* a file's seqs so far, by lo */
    size_t n_runs, cap_runs;
    uint64_t duplicates;             /* records met again with the same content */
    uint64_t top_end;                /* one past the highest seq of a file's chunks */
    uint8_t top_link[PL_LINK_BYTES]; /* the link after the chunk that ends there */
    int have_top_link;
    uint8_t first_byte; /* a first feed of one byte, kept until a second tells the format */
    int have_first_byte;
};

#define CHUNK_BUF_CAP ((size_t)PL_FRAME_MAX_PAYLOAD)

/* Ends the decode of a file with @p status: "offset N: what: detail" (decoder.c). */
int dec_fail(penlink_decoder *d, int status, uint64_t offset, const char *what, const char *detail);

/* Frames and the messages they carry, a file's records (decoder_frames.c). */
int dec_emit(penlink_decoder *d, uint32_t n, uint64_t at);
int dec_on_frame(penlink_decoder *d, penlink_message *m, const pl_frame *fr, chain_state *cs,
                 int strict);
int dec_feed_frames(penlink_decoder *d, const uint8_t *p, size_t len);
int dec_tell_damage(penlink_decoder *d, const penlink_message *where, pl_status st, uint64_t bytes);
void dec_note_open_pull(penlink_decoder *d, chain_state *cs, const char *why);
/* Something worth saying about an input that decodes (penlink_decoder_note()). */
void dec_add_note(penlink_decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The hash chain of a signing pen, checked as the messages go (decoder_chain.c). */
void dec_meet_pen(penlink_decoder *d, chain_state *cs, const char *serial, const uint8_t *key,
                  int session);
void dec_learn_pen(penlink_decoder *d, chain_state *cs, const pl_envelope *env);
const char *dec_check_chunk(chain_state *cs, uint32_t reply, const Penlink__V1__LogChunk *c,
                            int file, int repeat, const char **problem);
const char *dec_check_head(chain_state *cs, uint32_t reply, const Penlink__V1__LogEnd *e,
                           const char **problem);

/* Bare chunks, concatenated zlib streams (decoder_chunks.c). */
int dec_feed_chunks(penlink_decoder *d, const uint8_t *p, size_t len);
int dec_drain_chunks(penlink_decoder *d, int final);

/* pcapng / pcap captures, split into conversations (decoder_capture.c). */
int dec_feed_capture(penlink_decoder *d, const uint8_t *p, size_t len);
void dec_capture_notes(penlink_decoder *d);

#endif
