/*
 * A decoder's frames and the messages they carry: each intact frame's
 * Envelope told to the message callbacks, the file header that names a
 * file's pen, the replies of LogChunks a capture leaves open, and the
 * records of a file (a seq met again is compared, not counted twice).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decoder_internal.h"

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
int dec_emit(penlink_decoder *d, uint32_t n, uint64_t at)
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
        return dec_fail(d, PENLINK_ERR_PROTOCOL, at, "file header",
                        n ? "serial longer than 32 bytes" : "no serial");
    if (di->has_device_key && di->device_key.len != sizeof h.device_key)
        return dec_fail(d, PENLINK_ERR_PROTOCOL, at, "file header", "device key is not 32 bytes");
    memcpy(h.serial, di->serial, n);
    if (di->model)
        snprintf(h.model, sizeof h.model, "%s", di->model);
    h.has_device_key = di->has_device_key;
    if (h.has_device_key)
        memcpy(h.device_key, di->device_key.data, sizeof h.device_key);
    if (!d->have_header) {
        d->header = h;
        d->have_header = 1;
        dec_meet_pen(d, &d->chain, h.serial, h.has_device_key ? h.device_key : NULL, 0);
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

static int tell(penlink_decoder *d, penlink_message *m)
{
    m->index = ++d->messages;
    if (m->problem)
        d->problems++;
    if (d->on_message_ex && d->on_message_ex(d->user_ex, m) != 0)
        return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the message callback");
    return PENLINK_OK;
}

void dec_add_note(penlink_decoder *d, const char *fmt, ...)
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
void dec_note_open_pull(penlink_decoder *d, chain_state *cs, const char *why)
{
    if (!cs->open_pull)
        return;
    cs->open_pull = 0;
    dec_add_note(d,
                 "the pen's reply to request %u (its first LogChunk in packet %llu) has no LogEnd: "
                 "%s",
                 cs->open_reply, (unsigned long long)cs->open_packet, why);
}

/* A damaged stretch of a capture: reported, and the decode goes on. */
int dec_tell_damage(penlink_decoder *d, const penlink_message *where, pl_status st, uint64_t bytes)
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
            dec_note_open_pull(d, cs, "the host asked again before it came");
        return;
    }
    if (body == PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK &&
        !(cs->open_pull && cs->open_reply == env->request_id)) {
        dec_note_open_pull(d, cs, "another reply began before it came");
        cs->open_pull = 1;
        cs->open_reply = env->request_id;
        cs->open_packet = m->packet;
    } else if ((body == PENLINK__V1__ENVELOPE__BODY_LOG_END ||
                body == PENLINK__V1__ENVELOPE__BODY_ERROR) &&
               cs->open_pull && cs->open_reply == env->request_id) {
        cs->open_pull = 0;
    } else if (body == PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY) {
        dec_note_open_pull(d, cs, "a new session began before it came");
    }
}

/*
 * One intact frame: its message (callbacks), then its records. @p m holds
 * where it is (offset, packet, direction...); @p cs the pen's chain state.
 * In a file (@p strict) a payload that is not an Envelope or a chunk that
 * does not decode ends the decode; in a capture it is reported.
 */
int dec_on_frame(penlink_decoder *d, penlink_message *m, const pl_frame *fr, chain_state *cs,
                 int strict)
{
    uint64_t at = m->offset;
    msg_set_frame(m, fr->payload - PL_FRAME_HEADER_SIZE, PL_FRAME_HEADER_SIZE + fr->len);
    pl_envelope *env = pl_envelope_unpack(NULL, fr->payload, fr->len);
    if (!env) {
        if (strict)
            return dec_fail(d, PENLINK_ERR_PROTOCOL, at, "frame payload is not a penlink Envelope",
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
        dec_learn_pen(d, cs, env);
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
        m->chain = dec_check_chunk(cs, env->request_id, c, strict, repeat, &problem);
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
        m->chain = dec_check_head(cs, env->request_id, env->log_end, &problem);
        m->problem = problem;
    }
    if (rc == PENLINK_OK && d->on_message &&
        d->on_message(d->user, at, env->request_id, m->name) != 0)
        rc = penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the message callback");
    if (rc == PENLINK_OK)
        rc = tell(d, m);
    if (rc == PENLINK_OK && is_chunk) {
        if (chunk_st != PL_OK && strict)
            rc = dec_fail(d, penlink_from_pl(chunk_st), at, "log chunk", pl_status_str(chunk_st));
        else if (chunk_st == PL_OK)
            rc = dec_emit(d, n, at);
    }
    pl_envelope_free(NULL, env);
    return rc;
}

int dec_feed_frames(penlink_decoder *d, const uint8_t *p, size_t len)
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
            return dec_fail(d, penlink_from_pl(st), pl_frame_decoder_error_offset(&d->fdec),
                            pl_status_str(st), NULL);
        penlink_message m;
        memset(&m, 0, sizeof m);
        m.offset = at + used - PL_FRAME_HEADER_SIZE - fr.len;
        int rc = dec_on_frame(d, &m, &fr, &d->chain, 1);
        if (rc != PENLINK_OK)
            return rc;
        d->good = at + used;
    }
    return PENLINK_OK;
}
