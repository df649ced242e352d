/*
 * Streaming decoder of files and captures: a run of frames (what `penlink
 * pull` writes, or bytes captured off the wire), bare chunks (concatenated
 * zlib streams), or a pcapng / pcap capture (`penlink --trace`, usbmon,
 * USBPcap), whose packets are split into conversations (a USB endpoint, or
 * one direction of a socket), each with its own frame decoder. All sizes are
 * bounded before anything is allocated: the frame buffer by
 * PL_FRAME_MAX_PAYLOAD, the chunk buffer likewise, the records of one chunk
 * by PL_CHUNK_MAX_RECORDS, a capture block by PL_CAPTURE_DEFAULT_MAX_BLOCK,
 * the conversations of a capture by DEC_MAX_STREAMS.
 *
 * In a capture, damage is a fact of the wire, not the end of the input:
 * damaged stretches and messages that fail their checks are reported as
 * messages (penlink_message.problem) and the decode goes on. In a file, the
 * first damage stops it, as before.
 *
 * The hash chain of a signing pen is checked as the messages go (its own
 * link against its bytes, prev_link against the chunk before it in the same
 * reply, or against any chunk of the same pen earlier in the input that ended
 * where it starts, or against the genesis; the head against the last chunk
 * and, when the input names the pen's device key, the head's signature).
 * Each conversation of a capture (a USB device, a stream trace's interface)
 * has its own session state; a HelloReply or DeviceInfo starts a session;
 * pens are told apart by serial, so one pen's sessions share its chain.
 *
 * Also the file header that names a file's pen (penlink_file_header): it is
 * written here and read here, so that the format lives in one place. It is
 * an ordinary frame, so every reader of frames walks over it.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int penlink_decoder_new(penlink_ctx *ctx, penlink_record_cb on_record,
                        penlink_message_cb on_message, void *user, penlink_decoder **out)
{
    if (!ctx || !on_record || !out)
        return PENLINK_ERR_INVALID_ARG;
    penlink_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return PENLINK_ERR_NO_MEM;
    d->ctx = ctx;
    d->on_record = on_record;
    d->on_message = on_message;
    d->user = user;
    d->recs = malloc(sizeof(pl_record) * PL_CHUNK_MAX_RECORDS);
    if (!d->recs || pl_chunk_dec_init(&d->cdec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW) != PL_OK) {
        free(d->recs);
        free(d);
        return PENLINK_ERR_NO_MEM;
    }
    *out = d;
    return PENLINK_OK;
}

void penlink_decoder_free(penlink_decoder *d)
{
    if (!d)
        return;
    for (int i = 0; i < DEC_MAX_STREAMS; i++) {
        free(d->streams[i].fbuf);
        free(d->convs[i].own.seen);
    }
    for (int i = 0; i < DEC_MAX_PENS; i++)
        free(d->pens[i].seen);
    free(d->chain.own.seen);
    if (d->cap_open)
        pl_capture_fini(&d->cap);
    pl_chunk_dec_fini(&d->cdec);
    for (size_t i = 0; i < d->n_runs; i++)
        free(d->runs[i].dig);
    free(d->runs);
    free(d->recs);
    free(d->fbuf);
    free(d->cbuf);
    free(d);
}

penlink_input_format penlink_decoder_format(const penlink_decoder *d)
{
    return d->format;
}

int penlink_decoder_stats_get(const penlink_decoder *d, penlink_decoder_stats *out)
{
    if (!d || !out || out->size < PL_DECODER_STATS_SIZE_V1)
        return PENLINK_ERR_INVALID_ARG;
    penlink_decoder_stats all = { .size = out->size,
                                  .records = d->records,
                                  .chunks = d->chunks,
                                  .good_bytes = d->good,
                                  .duplicates = d->duplicates,
                                  .problems = d->problems };
    pl_sized_copy(out, &all, sizeof all);
    return PENLINK_OK;
}

int penlink_decoder_last_seq(const penlink_decoder *d, uint64_t *seq, int *have)
{
    if (!d || !have)
        return PENLINK_ERR_INVALID_ARG;
    *have = d->have_seq;
    if (d->have_seq && seq)
        *seq = d->last_seq;
    return PENLINK_OK;
}

int penlink_decoder_last_link(const penlink_decoder *d, uint8_t link[PENLINK_LINK_SIZE], int *have)
{
    if (!d || !have)
        return PENLINK_ERR_INVALID_ARG;
    *have = d->have_top_link;
    if (d->have_top_link && link)
        memcpy(link, d->top_link, PL_LINK_BYTES);
    return PENLINK_OK;
}

int penlink_decoder_set_message_cb(penlink_decoder *d, penlink_message_ex_cb cb, void *user)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    d->on_message_ex = cb;
    d->user_ex = user;
    return PENLINK_OK;
}

int penlink_decoder_header(const penlink_decoder *d, penlink_file_header *out, int *have)
{
    if (!d || !have || (out && out->size < PL_FILE_HEADER_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    *have = d->have_header;
    if (d->have_header && out)
        pl_sized_copy(out, &d->header, sizeof d->header);
    return PENLINK_OK;
}

int penlink_file_header_encode(const penlink_file_header *h, void *buf, size_t cap, size_t *len)
{
    if (!h || h->size < PL_FILE_HEADER_SIZE_V1 || !buf || !len ||
        !memchr(h->serial, '\0', sizeof h->serial) || !h->serial[0])
        return PENLINK_ERR_INVALID_ARG;
    char serial[sizeof h->serial], model[sizeof h->model];
    memcpy(serial, h->serial, sizeof serial);
    memcpy(model, h->model, sizeof model);
    model[sizeof model - 1] = '\0';
    Penlink__V1__DeviceInfo di = PENLINK__V1__DEVICE_INFO__INIT;
    di.serial = serial;
    di.model = model[0] ? model : NULL;
    if (h->has_device_key) {
        di.has_device_key = 1;
        di.device_key.data = (uint8_t *)h->device_key;
        di.device_key.len = sizeof h->device_key;
    }
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    env.has_request_id = 1;
    env.request_id = 0;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO;
    env.device_info = &di;
    long n =
        pl_envelope_frame(&env, buf, cap < PENLINK_FILE_HEADER_MAX ? cap : PENLINK_FILE_HEADER_MAX);
    if (n < 0)
        return PENLINK_ERR_INVALID_ARG;
    *len = (size_t)n;
    return PENLINK_OK;
}

static int fail(penlink_decoder *d, int status, uint64_t offset, const char *what,
                const char *detail)
{
    d->failed = status;
    return penlink_fail(d->ctx, status, "offset %llu: %s%s%s", (unsigned long long)offset, what,
                        detail ? ": " : "", detail ? detail : "");
}

/* FNV-1a over what a record says but its seq. */
static uint64_t record_digest(const pl_record *r)
{
    uint8_t body[ARCHIVE_BODY_MAX];
    size_t n = archive_body_pack((const penlink_record *)r, body);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= body[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The run holding @p seq, or the one it would extend (its end is @p seq);
 * *at gets where a new run goes. */
static seen_run *seen_find(penlink_decoder *d, uint64_t seq, size_t *at)
{
    size_t lo = 0, hi = d->n_runs;
    while (lo < hi) { /* the first run with lo > seq */
        size_t mid = lo + (hi - lo) / 2;
        if (d->runs[mid].lo > seq)
            hi = mid;
        else
            lo = mid + 1;
    }
    *at = lo;
    return lo > 0 && seq <= d->runs[lo - 1].lo + d->runs[lo - 1].n ? &d->runs[lo - 1] : NULL;
}

/* 1 when a file's input held @p seq before. */
static int seen_before(penlink_decoder *d, uint64_t seq)
{
    size_t at;
    seen_run *r = seen_find(d, seq, &at);
    return r && seq < r->lo + r->n;
}

/* Notes a record of a file: *again 0 (new), 1 (met before, the same) or 2 (other content). */
static int seen_note(penlink_decoder *d, const pl_record *rec, int *again)
{
    uint64_t seq = rec->seq, dig = record_digest(rec);
    size_t at;
    seen_run *r = seen_find(d, seq, &at);
    *again = 0;
    if (r && seq < r->lo + r->n) {
        *again = r->dig[seq - r->lo] == dig ? 1 : 2;
        return PENLINK_OK;
    }
    if (!r) { /* a new run at index at */
        if (d->n_runs == d->cap_runs) {
            size_t cap = d->cap_runs ? 2 * d->cap_runs : 8;
            seen_run *nr = realloc(d->runs, cap * sizeof *nr);
            if (!nr)
                return PENLINK_ERR_NO_MEM;
            d->runs = nr;
            d->cap_runs = cap;
        }
        memmove(d->runs + at + 1, d->runs + at, (d->n_runs - at) * sizeof *d->runs);
        d->n_runs++;
        r = &d->runs[at];
        memset(r, 0, sizeof *r);
        r->lo = seq;
    }
    if (r->n == r->cap) {
        uint64_t cap = r->cap ? 2 * r->cap : 256;
        uint64_t *nd = realloc(r->dig, cap * sizeof *nd);
        if (!nd)
            return PENLINK_ERR_NO_MEM;
        r->dig = nd;
        r->cap = cap;
    }
    r->dig[r->n++] = dig;
    return PENLINK_OK;
}

/* The records of a chunk decoded at input offset @p at. In a file each seq
 * counts once: a copy met again is compared with the first. */
static int emit(penlink_decoder *d, uint32_t n, uint64_t at)
{
    int file = d->format != PENLINK_INPUT_CAPTURE;
    for (uint32_t i = 0; i < n; i++) {
        const pl_record *r = &d->recs[i];
        if (file) {
            int again = 0;
            if (seen_note(d, r, &again) != PENLINK_OK) {
                d->failed = PENLINK_ERR_NO_MEM;
                return penlink_fail(d->ctx, PENLINK_ERR_NO_MEM,
                                    "no memory for the seqs of the input");
            }
            if (again == 2) {
                d->failed = PENLINK_ERR_INTEGRITY;
                return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                                    "offset %llu: seq %llu comes again with content different "
                                    "from its first copy in the input: two versions of the "
                                    "pen's log",
                                    (unsigned long long)at, (unsigned long long)r->seq);
            }
            if (again == 1) {
                d->duplicates++;
                continue;
            }
        }
        if (!d->have_seq || r->seq > d->last_seq)
            d->last_seq = r->seq;
        d->have_seq = 1;
        d->records++; /* counted as delivered, even when the callback stops here */
        if (d->on_record(d->user, (const penlink_record *)r) != 0)
            return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the record callback");
    }
    d->chunks++;
    return PENLINK_OK;
}

static void meet_pen(penlink_decoder *d, chain_state *cs, const char *serial, const uint8_t *key,
                     int session);

/* A DeviceInfo with request_id 0: a file header (no pen sends one, no host
 * asks with id 0). Only a header the input began with names the file. */
static int on_header(penlink_decoder *d, uint64_t at, const pl_envelope *env)
{
    const Penlink__V1__DeviceInfo *di = env->device_info;
    if (d->frames > 0 && !d->have_header)
        return PENLINK_OK;
    penlink_file_header h = PENLINK_FILE_HEADER_INIT;
    size_t n = di->serial ? strlen(di->serial) : 0;
    if (n == 0 || n >= sizeof h.serial)
        return fail(d, PENLINK_ERR_PROTOCOL, at, "file header",
                    n ? "serial longer than 32 bytes" : "no serial");
    if (di->has_device_key && di->device_key.len != sizeof h.device_key)
        return fail(d, PENLINK_ERR_PROTOCOL, at, "file header", "device key is not 32 bytes");
    memcpy(h.serial, di->serial, n);
    if (di->model)
        snprintf(h.model, sizeof h.model, "%s", di->model);
    h.has_device_key = di->has_device_key;
    if (h.has_device_key)
        memcpy(h.device_key, di->device_key.data, sizeof h.device_key);
    if (!d->have_header) {
        d->header = h;
        d->have_header = 1;
        meet_pen(d, &d->chain, h.serial, h.has_device_key ? h.device_key : NULL, 0);
        return PENLINK_OK;
    }
    if (strcmp(h.serial, d->header.serial) != 0 || h.has_device_key != d->header.has_device_key ||
        memcmp(h.device_key, d->header.device_key, sizeof h.device_key) != 0) {
        d->failed = PENLINK_ERR_INTEGRITY;
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "offset %llu: a file header names pen %s%s, but the file began as the "
                            "log of pen %s: two pens' files joined",
                            (unsigned long long)at, h.serial,
                            strcmp(h.serial, d->header.serial) == 0 ? " with another device key"
                                                                    : "",
                            d->header.serial);
    }
    return PENLINK_OK;
}

/* The pen of this serial: the one met before, or a new one (NULL when the
 * decoder already follows DEC_MAX_PENS pens). */
static pen_state *pen_for(penlink_decoder *d, const char *serial)
{
    for (int i = 0; i < DEC_MAX_PENS; i++)
        if (d->pens[i].used && strcmp(d->pens[i].serial, serial) == 0)
            return &d->pens[i];
    for (int i = 0; i < DEC_MAX_PENS; i++)
        if (!d->pens[i].used) {
            d->pens[i].used = 1;
            snprintf(d->pens[i].serial, sizeof d->pens[i].serial, "%s", serial);
            return &d->pens[i];
        }
    return NULL;
}

/* A conversation's pen names itself (@p serial, and @p key when it sent
 * one). @p session: a HelloReply or DeviceInfo, which the pen sends at the
 * start of a session: what came before it is another session. */
static void meet_pen(penlink_decoder *d, chain_state *cs, const char *serial, const uint8_t *key,
                     int session)
{
    if (session)
        cs->have_last = 0;
    if (!serial || !serial[0] || strlen(serial) > PL_SERIAL_MAX)
        return;
    if (!cs->pen || strcmp(cs->pen->serial, serial) != 0) {
        pen_state *p = pen_for(d, serial);
        if (!p) { /* too many pens: this one's chain is checked on its own */
            free(cs->own.seen);
            memset(&cs->own, 0, sizeof cs->own);
            snprintf(cs->own.serial, sizeof cs->own.serial, "%s", serial);
            p = &cs->own;
        }
        cs->pen = p;
        cs->have_last = 0;
    }
    if (key) {
        cs->pen->have_key = 1;
        memcpy(cs->pen->key, key, PL_KEY_BYTES);
    }
}

/* The pen a conversation is with: the one it named, or (not named yet) its own. */
static pen_state *conv_pen(chain_state *cs)
{
    return cs->pen ? cs->pen : &cs->own;
}

/* What the pen says about itself: its serial and device key, for the chain check. */
static void learn_pen(penlink_decoder *d, chain_state *cs, const pl_envelope *env)
{
    if (env->body_case == PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY)
        meet_pen(d, cs, env->hello_reply->serial, NULL, 1);
    if (env->body_case == PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO) {
        const Penlink__V1__DeviceInfo *di = env->device_info;
        int key = di->has_device_key && di->device_key.len == PL_KEY_BYTES;
        meet_pen(d, cs, di->serial, key ? di->device_key.data : NULL, env->request_id != 0);
    }
}

static size_t link_slot(uint64_t end)
{
    return (size_t)((end * 0x9E3779B97F4A7C15ull) >> 54) % DEC_CHAIN_MEMORY;
}

/* The link of the pen's chunk that ended at @p end, if the input showed it. */
static const uint8_t *seen_link(const pen_state *p, uint64_t end)
{
    const chain_link *l = p->seen ? &p->seen[link_slot(end)] : NULL;
    return l && l->used && l->end == end ? l->link : NULL;
}

static void remember_link(pen_state *p, uint64_t end, const uint8_t *link)
{
    if (!p->seen)
        p->seen = calloc(DEC_CHAIN_MEMORY, sizeof *p->seen);
    if (!p->seen)
        return; /* no memory: later chunks are merely not checked against this one */
    chain_link *l = &p->seen[link_slot(end)];
    l->used = 1;
    l->end = end;
    memcpy(l->link, link, PL_LINK_BYTES);
}

/* The chain check of one LogChunk: NULL (not a signing pen's chunk) or the
 * verdict; *problem set when it is broken. In a capture the chunk before it
 * is the one before it in the same reply, else any chunk of the same pen in
 * the input that ended where it starts (a pen's chain is fixed: every pull of
 * it, in any session, shows the same links). In a file (@p file) it is the
 * one right before it in the input, unless records between them are missing
 * (a gap); @p repeat: every record of it came before in the input (a file
 * joined from copies): its own link is checked, and the chain goes on from it. */
static const char *check_chunk(chain_state *cs, uint32_t reply, const Penlink__V1__LogChunk *c,
                               int file, int repeat, const char **problem)
{
    if (!c->has_link && !c->has_prev_link)
        return NULL;
    if (!c->has_link || !c->has_prev_link || c->link.len != PL_LINK_BYTES ||
        c->prev_link.len != PL_LINK_BYTES) {
        *problem = "the chunk's link or prev_link is missing or not 32 bytes";
        return "broken";
    }
    pen_state *pen = conv_pen(cs);
    uint8_t pre[PL_AUTH_LINK_PREFIX], link[PL_LINK_BYTES];
    pl_auth_link_prefix(pre, c->prev_link.data, c->first_seq, c->record_count, c->raw_size,
                        (uint32_t)c->data.len);
    penlink_sha256(pre, sizeof pre, c->data.data, c->data.len, link);
    int in_reply = cs->have_last && cs->last_reply == reply;
    const uint8_t *before = in_reply ? cs->last : seen_link(pen, c->first_seq);
    if (file) /* the chunk right before it in the file, unless records are missing */
        before = cs->have_last && c->first_seq <= cs->last_end && !repeat ? cs->last : NULL;
    const char *verdict = "verified";
    int self_ok = memcmp(link, c->link.data, PL_LINK_BYTES) == 0;
    if (!self_ok) {
        *problem = "the chunk's link is not the hash of its bytes and prev_link";
        verdict = "broken";
    } else if (before && memcmp(c->prev_link.data, before, PL_LINK_BYTES) != 0) {
        if (file)
            *problem = c->first_seq < cs->last_end
                           ? "prev_link is not the link of the chunk before it in the input, "
                             "whose records it seals again: the pen's chain forks"
                           : "prev_link is not the link of the chunk before it in the input";
        else
            *problem = in_reply ? "prev_link is not the link of the chunk before it in this reply"
                                : "prev_link is not the link of the pen's chunk that ended where "
                                  "this one starts, seen earlier in the input";
        verdict = "broken";
    } else if (repeat) {
        verdict = "link verified; a second copy of records earlier in the input (counted once)";
    } else if (!before && c->first_seq == 0 && pen->serial[0]) {
        uint8_t g[PL_AUTH_GENESIS_MAX], gl[PL_LINK_BYTES];
        size_t n = pl_auth_genesis_bytes(g, pen->serial);
        penlink_sha256(g, n, NULL, 0, gl);
        if (memcmp(gl, c->prev_link.data, PL_LINK_BYTES) != 0) {
            *problem = "the first chunk's prev_link is not the pen's genesis";
            verdict = "broken";
        }
    } else if (!before && file && cs->have_last) {
        verdict = "link verified; prev_link unchecked (the records before it are not in the input)";
    } else if (!before) {
        verdict = file ? "link verified; prev_link unchecked (no chunk before it in the input)"
                       : "link verified; prev_link unchecked (the input holds no chunk of this pen "
                         "ending where it starts)";
    }
    memcpy(cs->last, c->link.data, PL_LINK_BYTES);
    cs->have_last = 1;
    cs->last_reply = reply;
    cs->last_end = c->first_seq + c->record_count;
    if (self_ok && c->record_count > 0)
        remember_link(pen, c->first_seq + c->record_count, c->link.data);
    return verdict;
}

/* The chain check of a LogEnd: its head against the last chunk, its signature. */
static const char *check_head(chain_state *cs, uint32_t reply, const Penlink__V1__LogEnd *e,
                              const char **problem)
{
    if (!e->has_head_link && !e->has_head_signature)
        return NULL;
    if (!e->has_head_link || !e->has_head_signature || e->head_link.len != PL_LINK_BYTES ||
        e->head_signature.len != PL_SIG_BYTES) {
        *problem = "the head's link or signature is missing or of the wrong size";
        return "broken";
    }
    if (cs->have_last && cs->last_reply == reply &&
        memcmp(cs->last, e->head_link.data, PL_LINK_BYTES) != 0) {
        *problem = "head_link is not the link of the last chunk of this reply";
        return "broken";
    }
    const pen_state *pen = conv_pen(cs);
    if (!pen->serial[0])
        return "unchecked: the input does not name the pen (no HelloReply, DeviceInfo or header)";
    if (!pen->have_key)
        return "unchecked: the input does not hold the pen's device key (DeviceInfo or header)";
    uint8_t msg[PL_AUTH_HEAD_MAX];
    size_t n = pl_auth_head_bytes(msg, pen->serial, e->next_seq, e->head_link.data);
    if (n == 0 || penlink_verify(e->head_signature.data, msg, n, pen->key) != 0) {
        *problem = "the head signature does not verify with the pen's device key";
        return "broken";
    }
    return "verified";
}

static int tell(penlink_decoder *d, penlink_message *m)
{
    m->index = ++d->messages;
    if (m->problem)
        d->problems++;
    if (d->on_message_ex && d->on_message_ex(d->user_ex, m) != 0)
        return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the message callback");
    return PENLINK_OK;
}

/* Something worth saying about an input that decodes (penlink_decoder_note()). */
static void add_note(penlink_decoder *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void add_note(penlink_decoder *d, const char *fmt, ...)
{
    if (d->n_notes >= DEC_MAX_NOTES) {
        d->n_notes_more++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->notes[d->n_notes++], DEC_NOTE_LEN, fmt, ap);
    va_end(ap);
}

/* A reply of LogChunks that its LogEnd (or an Error) never closed. */
static void note_open_pull(penlink_decoder *d, chain_state *cs, const char *why)
{
    if (!cs->open_pull)
        return;
    cs->open_pull = 0;
    add_note(d,
             "the pen's reply to request %u (its first LogChunk in packet %llu) has no LogEnd: "
             "%s",
             cs->open_reply, (unsigned long long)cs->open_packet, why);
}

/* A damaged stretch of a capture: reported, and the decode goes on. */
static int tell_damage(penlink_decoder *d, const penlink_message *where, pl_status st,
                       uint64_t bytes)
{
    penlink_message m = *where;
    m.name = "damaged";
    m.problem = pl_status_str(st);
    m.size = (uint32_t)(bytes > UINT32_MAX ? UINT32_MAX : bytes);
    m.internal_ = NULL;
    m.request_id = 0;
    return tell(d, &m);
}

/* Which replies of LogChunks are still open in a capture (for a note). */
static void track_pull(penlink_decoder *d, chain_state *cs, const penlink_message *m,
                       const pl_envelope *env)
{
    int body = env->body_case;
    if (m->direction == PENLINK_DIR_TO_PEN) {
        if (body == PENLINK__V1__ENVELOPE__BODY_PULL_LOG)
            note_open_pull(d, cs, "the host asked again before it came");
        return;
    }
    if (body == PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK &&
        !(cs->open_pull && cs->open_reply == env->request_id)) {
        note_open_pull(d, cs, "another reply began before it came");
        cs->open_pull = 1;
        cs->open_reply = env->request_id;
        cs->open_packet = m->packet;
    } else if ((body == PENLINK__V1__ENVELOPE__BODY_LOG_END ||
                body == PENLINK__V1__ENVELOPE__BODY_ERROR) &&
               cs->open_pull && cs->open_reply == env->request_id) {
        cs->open_pull = 0;
    } else if (body == PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY) {
        note_open_pull(d, cs, "a new session began before it came");
    }
}

/*
 * One intact frame: its message (callbacks), then its records. @p m holds
 * where it is (offset, packet, direction...); @p cs the pen's chain state.
 * In a file (@p strict) a payload that is not an Envelope or a chunk that
 * does not decode ends the decode; in a capture it is reported.
 */
static int on_frame(penlink_decoder *d, penlink_message *m, const pl_frame *fr, chain_state *cs,
                    int strict)
{
    uint64_t at = m->offset;
    msg_set_frame(m, fr->payload - PL_FRAME_HEADER_SIZE, PL_FRAME_HEADER_SIZE + fr->len);
    pl_envelope *env = pl_envelope_unpack(NULL, fr->payload, fr->len);
    if (!env) {
        if (strict)
            return fail(d, PENLINK_ERR_PROTOCOL, at, "frame payload is not a penlink Envelope",
                        NULL);
        m->name = "damaged";
        m->problem = "the frame's payload is not a penlink Envelope";
        return tell(d, m);
    }
    int rc = PENLINK_OK;
    if (strict && env->body_case == PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO && env->request_id == 0)
        rc = on_header(d, at, env);
    d->frames++;
    m->request_id = env->request_id;
    m->name = msg_body_name(env);
    m->internal_ = env;
    if (m->direction != PENLINK_DIR_TO_PEN && !(strict && env->request_id == 0))
        learn_pen(d, cs, env);
    if (!strict)
        track_pull(d, cs, m, env);
    uint32_t n = 0;
    int chunk_st = PL_OK;
    int is_chunk = env->body_case == PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK &&
                   m->direction != PENLINK_DIR_TO_PEN;
    if (rc == PENLINK_OK && is_chunk) {
        const Penlink__V1__LogChunk *c = env->log_chunk;
        pl_chunk_expect ex = {
            .first_seq = c->first_seq,
            .record_count = c->record_count,
            .raw_size = c->raw_size,
            .have_first_seq = c->has_first_seq,
        };
        chunk_st = pl_chunk_decode(&d->cdec, c->data.data, c->data.len, &ex, d->recs,
                                   PL_CHUNK_MAX_RECORDS, &n);
        if (chunk_st == PL_NEED_MORE)
            chunk_st = PL_ERR_CHUNK_ZLIB;
        if (chunk_st == PL_OK && pl_chunk_dec_consumed(&d->cdec) != c->data.len)
            chunk_st = PL_ERR_CHUNK_FORMAT;
        if (chunk_st != PL_OK) {
            snprintf(cs->note, sizeof cs->note, "the chunk does not decode: %s",
                     pl_status_str(chunk_st));
            m->problem = cs->note;
        }
        int repeat = strict && chunk_st == PL_OK && n > 0;
        for (uint32_t i = 0; repeat && i < n; i++)
            repeat = seen_before(d, d->recs[i].seq);
        const char *problem = NULL;
        m->chain = check_chunk(cs, env->request_id, c, strict, repeat, &problem);
        if (problem && !m->problem)
            m->problem = problem;
        uint64_t end = c->first_seq + c->record_count;
        if (strict && chunk_st == PL_OK && end >= d->top_end) {
            d->top_end = end;
            d->have_top_link = c->has_link && c->link.len == PL_LINK_BYTES;
            if (d->have_top_link)
                memcpy(d->top_link, c->link.data, PL_LINK_BYTES);
        }
    } else if (rc == PENLINK_OK && env->body_case == PENLINK__V1__ENVELOPE__BODY_LOG_END &&
               m->direction != PENLINK_DIR_TO_PEN) {
        const char *problem = NULL;
        m->chain = check_head(cs, env->request_id, env->log_end, &problem);
        m->problem = problem;
    }
    if (rc == PENLINK_OK && d->on_message &&
        d->on_message(d->user, at, env->request_id, m->name) != 0)
        rc = penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the message callback");
    if (rc == PENLINK_OK)
        rc = tell(d, m);
    if (rc == PENLINK_OK && is_chunk) {
        if (chunk_st != PL_OK && strict)
            rc = fail(d, penlink_from_pl(chunk_st), at, "log chunk", pl_status_str(chunk_st));
        else if (chunk_st == PL_OK)
            rc = emit(d, n, at);
    }
    pl_envelope_free(NULL, env);
    return rc;
}

static int feed_frames(penlink_decoder *d, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t used = 0;
        pl_frame fr;
        pl_status st = pl_frame_decoder_feed(&d->fdec, p, len, &used, &fr);
        uint64_t at = d->offset;
        p += used;
        len -= used;
        d->offset += used;
        if (st == PL_NEED_MORE)
            continue;
        if (st != PL_OK)
            return fail(d, penlink_from_pl(st), pl_frame_decoder_error_offset(&d->fdec),
                        pl_status_str(st), NULL);
        penlink_message m;
        memset(&m, 0, sizeof m);
        m.offset = at + used - PL_FRAME_HEADER_SIZE - fr.len;
        int rc = on_frame(d, &m, &fr, &d->chain, 1);
        if (rc != PENLINK_OK)
            return rc;
        d->good = at + used;
    }
    return PENLINK_OK;
}

/* Decodes every complete chunk in cbuf; keeps a truncated tail for later. */
static int drain_chunks(penlink_decoder *d, int final)
{
    size_t pos = 0;
    int rc = PENLINK_OK;
    while (pos < d->cbuf_len) {
        uint32_t n = 0;
        uint64_t at = d->cbuf_offset + pos;
        int st = pl_chunk_decode(&d->cdec, d->cbuf + pos, d->cbuf_len - pos, NULL, d->recs,
                                 PL_CHUNK_MAX_RECORDS, &n);
        if (st == PL_NEED_MORE) {
            if (final)
                rc = fail(d, PENLINK_ERR_PROTOCOL, at, "chunk cut short (file truncated?)", NULL);
            else if (pos == 0 && d->cbuf_len == CHUNK_BUF_CAP)
                rc = fail(d, PENLINK_ERR_PROTOCOL, at, "chunk larger than the 1 MiB limit", NULL);
            break;
        }
        if (st != PL_OK) {
            rc = fail(d, penlink_from_pl(st), at, "chunk", pl_status_str(st));
            break;
        }
        pos += pl_chunk_dec_consumed(&d->cdec);
        rc = emit(d, n, at);
        if (rc != PENLINK_OK)
            break;
        d->good = d->cbuf_offset + pos;
    }
    memmove(d->cbuf, d->cbuf + pos, d->cbuf_len - pos);
    d->cbuf_len -= pos;
    d->cbuf_offset += pos;
    return rc;
}

static int feed_chunks(penlink_decoder *d, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t room = CHUNK_BUF_CAP - d->cbuf_len, n = len < room ? len : room;
        memcpy(d->cbuf + d->cbuf_len, p, n);
        d->cbuf_len += n;
        d->offset += n;
        p += n;
        len -= n;
        int rc = drain_chunks(d, 0);
        if (rc != PENLINK_OK)
            return rc;
    }
    return PENLINK_OK;
}

/* The conversation (with one pen) of a stream: a USB device, or the
 * interface of a stream trace; NULL when too many are followed. */
static chain_state *conv_for(penlink_decoder *d, uint32_t key, int usb)
{
    for (int i = 0; i < DEC_MAX_STREAMS; i++) {
        chain_state *cs = &d->convs[i];
        if (cs->used && cs->key == key && cs->usb == usb)
            return cs;
        if (!cs->used) {
            cs->used = 1;
            cs->key = key;
            cs->usb = usb;
            return cs;
        }
    }
    return NULL;
}

/* The conversation a packet's bytes belong to; NULL when it is not followed. */
static dec_stream *stream_for(penlink_decoder *d, const pl_wire *w, uint32_t key, int usb)
{
    dec_stream *free_slot = NULL;
    for (int i = 0; i < DEC_MAX_STREAMS; i++) {
        dec_stream *s = &d->streams[i];
        if (s->used && s->key == key && s->dir == w->dir && s->usb == usb)
            return s;
        if (!s->used && !free_slot)
            free_slot = s;
    }
    /* a USB capture holds every device of the bus: follow an endpoint once a
     * frame's magic shows on it */
    if (!free_slot || (usb && !memmem(w->data, w->len, PL_FRAME_MAGIC, 4)))
        return NULL;
    free_slot->fbuf = malloc(DEC_FRAME_BUF);
    if (!free_slot->fbuf)
        return NULL;
    pl_frame_decoder_init(&free_slot->fdec, free_slot->fbuf, DEC_FRAME_BUF, PL_FRAME_MAX_PAYLOAD);
    free_slot->used = 1;
    free_slot->key = key;
    free_slot->dir = w->dir;
    free_slot->usb = usb;
    return free_slot;
}

static int on_packet(penlink_decoder *d, const pl_capture_packet *pk)
{
    pl_wire w;
    penlink_message m;
    memset(&m, 0, sizeof m);
    m.offset = pk->offset;
    m.packet = pk->number;
    m.time_us = pk->ts_us;
    int r = pl_capture_wire(pk, &w);
    if (r < 0) {
        m.size = pk->len;
        return tell_damage(d, &m, PL_ERR_CAPTURE, pk->len);
    }
    if (r == 0)
        return PENLINK_OK;
    int usb = pk->linktype != PL_LINKTYPE_PENLINK;
    /* a stream trace: one conversation per interface (each session of a
     * trace, each trace of a merged capture); USB: per device and endpoint */
    uint32_t key = usb ? w.stream : pk->interface;
    dec_stream *s = stream_for(d, &w, key, usb);
    chain_state *cs =
        s ? conv_for(d, usb ? (uint32_t)w.bus << 16 | (uint32_t)w.device << 8 : key, usb) : NULL;
    if (!s || !cs)
        return PENLINK_OK;
    m.direction = w.dir == PL_DIR_TO_PEN ? PENLINK_DIR_TO_PEN : PENLINK_DIR_TO_HOST;
    m.stream = key;
    const uint8_t *p = w.data;
    size_t len = w.len;
    int again = 0; /* after a frame or a refusal the window may hold another frame */
    while (len > 0 || again) {
        size_t used = 0;
        pl_frame fr;
        pl_status st = pl_frame_decoder_feed(&s->fdec, p, len, &used, &fr);
        p += used;
        len -= used;
        again = st != PL_NEED_MORE;
        int rc = PENLINK_OK;
        if (st == PL_NEED_MORE)
            continue;
        if (st == PL_OK) {
            penlink_message fm = m;
            rc = on_frame(d, &fm, &fr, cs, 0);
        } else {
            rc = tell_damage(d, &m, st, s->fdec.skipped - s->skipped);
            s->skipped = s->fdec.skipped;
        }
        if (rc != PENLINK_OK)
            return rc;
    }
    return PENLINK_OK;
}

static int feed_capture(penlink_decoder *d, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t used = 0;
        pl_capture_packet pk;
        pl_status st = pl_capture_feed(&d->cap, p, len, &used, &pk);
        p += used;
        len -= used;
        d->offset += used;
        if (st == PL_NEED_MORE)
            continue;
        if (st != PL_OK) {
            uint64_t at;
            const char *what = pl_capture_error(&d->cap, &at);
            return fail(d, PENLINK_ERR_PROTOCOL, at, "capture", what);
        }
        int rc = on_packet(d, &pk);
        if (rc == PENLINK_OK && atomic_load(&d->ctx->cancelled))
            rc = penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "decode cancelled at packet %llu",
                              (unsigned long long)pk.number);
        if (rc != PENLINK_OK)
            return rc;
        d->good = d->offset;
    }
    return PENLINK_OK;
}

static int detect(penlink_decoder *d, uint8_t b0, uint8_t b1)
{
    /* pcapng (0a 0d 0d 0a) and pcap (d4 c3 b2 a1, a1 b2 c3 d4, and the
     * nanosecond 4d 3c b2 a1, a1 b2 3c 4d): neither can start a frame or zlib */
    if ((b0 == 0x0A && b1 == 0x0D) || (b0 == 0xD4 && b1 == 0xC3) || (b0 == 0xA1 && b1 == 0xB2) ||
        (b0 == 0x4D && b1 == 0x3C)) {
        pl_capture_init(&d->cap, 0);
        d->cap_open = 1;
        d->format = PENLINK_INPUT_CAPTURE;
        return PENLINK_OK;
    }
    if (b0 == 'P') {
        d->fbuf = malloc(PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD);
        if (!d->fbuf)
            return PENLINK_ERR_NO_MEM;
        pl_frame_decoder_init(&d->fdec, d->fbuf, PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD,
                              PL_FRAME_MAX_PAYLOAD);
        d->format = PENLINK_INPUT_FRAMES;
        return PENLINK_OK;
    }
    /* RFC 1950 header: deflate, and a header check that divides by 31. */
    if ((b0 & 0x0F) == 8 && (b0 >> 4) <= 7 && ((unsigned)b0 * 256u + b1) % 31u == 0) {
        d->cbuf = malloc(CHUNK_BUF_CAP);
        if (!d->cbuf)
            return PENLINK_ERR_NO_MEM;
        d->format = PENLINK_INPUT_CHUNKS;
        return PENLINK_OK;
    }
    d->failed = PENLINK_ERR_UNSUPPORTED;
    return penlink_fail(d->ctx, PENLINK_ERR_UNSUPPORTED,
                        "offset 0: not penlink frames (magic \"PNLK\"), chunks (zlib "
                        "streams) nor a capture (pcapng, pcap): the input starts with %02x %02x",
                        b0, b1);
}

static int feed_format(penlink_decoder *d, const uint8_t *p, size_t len)
{
    if (d->format == PENLINK_INPUT_CAPTURE)
        return feed_capture(d, p, len);
    return d->format == PENLINK_INPUT_FRAMES ? feed_frames(d, p, len) : feed_chunks(d, p, len);
}

static int feed_input(penlink_decoder *d, const uint8_t *p, size_t len)
{
    if (len == 0)
        return PENLINK_OK;
    if (atomic_load(&d->ctx->cancelled))
        return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "decode cancelled at offset %llu",
                            (unsigned long long)d->offset);
    if (d->format == PENLINK_INPUT_UNKNOWN) {
        /* the format is decided on two bytes: a first byte fed alone waits for the next */
        if (!d->have_first_byte) {
            d->first_byte = p[0];
            d->have_first_byte = 1;
            p++;
            len--;
            if (len == 0)
                return PENLINK_OK;
        }
        int rc = detect(d, d->first_byte, p[0]);
        if (rc == PENLINK_OK)
            rc = feed_format(d, &d->first_byte, 1);
        if (rc != PENLINK_OK)
            return rc;
    }
    return feed_format(d, p, len);
}

/* Both entry points keep their first failure, whatever it was (a callback's
 * stop and a cancellation too): the decoder's state after it is undefined. */
int penlink_decoder_feed(penlink_decoder *d, const void *data, size_t len)
{
    if (!d || (!data && len))
        return PENLINK_ERR_INVALID_ARG;
    if (d->failed)
        return d->failed;
    int rc = feed_input(d, data, len);
    if (rc != PENLINK_OK)
        d->failed = rc;
    return rc;
}

/* What a capture that decoded leaves unsaid: frames cut short by its end,
 * replies without their LogEnd, no penlink traffic at all. */
static void capture_notes(penlink_decoder *d)
{
    for (int i = 0; i < DEC_MAX_STREAMS; i++) {
        const dec_stream *s = &d->streams[i];
        size_t n = s->used ? pl_frame_decoder_pending(&s->fdec) : 0;
        if (n >= 4) /* a magic at least: a frame began */
            add_note(d,
                     "the capture ends inside a frame (%s, stream %u): %zu bytes of it came, the "
                     "rest is missing",
                     s->dir == PL_DIR_TO_PEN ? "host->pen" : "pen->host", s->key, n);
    }
    for (int i = 0; i < DEC_MAX_STREAMS; i++)
        if (d->convs[i].used)
            note_open_pull(d, &d->convs[i], "the capture ends before it");
    if (d->frames == 0)
        add_note(d,
                 "no penlink frame in the capture (%llu packets): it holds no penlink "
                 "traffic, or not of a pen this decoder recognises",
                 (unsigned long long)d->cap.packets);
}

static int finish_input(penlink_decoder *d)
{
    if (d->format == PENLINK_INPUT_UNKNOWN && d->have_first_byte)
        return fail(d, PENLINK_ERR_PROTOCOL, 0,
                    "the input is 1 byte: too short for any format (file truncated?)", NULL);
    if (d->format == PENLINK_INPUT_FRAMES && pl_frame_decoder_pending(&d->fdec) > 0)
        return fail(d, PENLINK_ERR_PROTOCOL, d->offset - pl_frame_decoder_pending(&d->fdec),
                    "last frame cut short (file truncated?)", NULL);
    if (d->format == PENLINK_INPUT_CHUNKS && d->cbuf_len > 0)
        return drain_chunks(d, 1);
    if (d->format == PENLINK_INPUT_CAPTURE && pl_capture_pending(&d->cap) > 0)
        return fail(d, PENLINK_ERR_PROTOCOL, d->offset - pl_capture_pending(&d->cap),
                    "last capture block cut short (the capture was stopped while writing it?)",
                    NULL);
    if (d->format == PENLINK_INPUT_CAPTURE)
        capture_notes(d);
    return PENLINK_OK;
}

int penlink_decoder_finish(penlink_decoder *d)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    if (d->failed)
        return d->failed;
    int rc = finish_input(d);
    if (rc != PENLINK_OK)
        d->failed = rc;
    return rc;
}

const char *penlink_decoder_note(const penlink_decoder *d, size_t i)
{
    static const char more[] = "(more notes left out)";
    if (!d || i > d->n_notes || (i == d->n_notes && !d->n_notes_more))
        return NULL;
    return i < d->n_notes ? d->notes[i] : more;
}
