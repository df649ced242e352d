/*
 * The pull: every record a pen holds from a seq on, in windows (one PullLog,
 * its LogChunks, its LogEnd), handed to the caller in seq order, each once.
 *
 * This file holds the wire half of the acknowledgement rule (docs/protocol.md
 * §5, "Acknowledgement"): the caller acknowledges through next_seq - 1 of the
 * result, so next_seq moves only over records the caller was given, or over
 * records the pen itself says are gone. A frame that is refused (CRC,
 * header), missing, doubled, reordered, late or not ours never moves it: the
 * window is abandoned and asked for again from the first record not taken,
 * PULL_TRIES windows in a row at most at one seq (the first ask and
 * PULL_TRIES - 1 retries, each said as a notice and counted in the result's
 * retries), then the pull fails with nothing taken past the hole. A hole is taken as a gap only
 * when the pen says so twice, in the LogEnd of the window that showed it and in a DeviceInfo read
 * after it; then on_gap() is called so the caller records it. From a pen that signs its log, a gap
 * is taken only where every record before it is covered by a verified head.
 *
 * A pull is bounded by what the pen said it holds: records past its
 * DeviceInfo.log_next_seq plus PULL_MARGIN are refused (alarm "overrun").
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "device.h"
#include "pl/auth.h"

#define PULL_WINDOW 32 /* chunks per PullLog */
#define PULL_TRIES 4   /* windows in a row that fail at one seq, then the pull fails */
/* Records a pen may log while it is being pulled, beyond the log_next_seq it
 * announced first: a pen logs a few records a minute while treating, so this
 * covers more than an hour at one record a second. */
#define PULL_MARGIN 4096u

/* How a window ended. */
enum { WIN_END, WIN_MORE, WIN_RETRY };

typedef struct pull_state {
    penlink_dev *d;
    const penlink_pull_cb *cb;
    penlink_pull_result *res;
    uint64_t next;  /* the first seq not taken */
    uint64_t bound; /* records at or above this were never announced */
    uint64_t info_next;
    int started; /* a record has arrived */
    int took;    /* a chunk was taken */
    penlink_progress prog;
    /* a pen that signs its log: chunks must chain, each LogEnd's head must verify */
    int signed_log;
    uint8_t device_key[32];
    uint8_t last_link[32]; /* link of the last chunk taken (or the caller's, ps->anchored) */
    int have_last;
    int anchored; /* last_link is the caller's: the chain it already holds ends at from_seq */
    uint32_t unverified; /* chunks taken since the last verified head */
    char why[200];       /* what went wrong in the last abandoned window */
    int why_timeout;
} pull_state;

static void set_alarm(penlink_dev *d, const char *kind, uint64_t seq, uint64_t count)
{
    snprintf(d->alarm, sizeof d->alarm, "%s", kind);
    d->alarm_seq = seq;
    d->alarm_count = count;
}

/* The window is abandoned: say why, for the error if the tries run out. */
static int retry(pull_state *ps, int timeout, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int retry(pull_state *ps, int timeout, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->why, sizeof ps->why, fmt, ap);
    va_end(ap);
    ps->why_timeout = timeout;
    return WIN_RETRY;
}

/* Checks a chunk's link against its content and the chunk before it. */
static int check_link(pull_state *ps, const Penlink__V1__LogChunk *c, penlink_chunk *pc)
{
    penlink_dev *d = ps->d;
    unsigned long long a = (unsigned long long)c->first_seq,
                       b = (unsigned long long)(c->first_seq + c->record_count - 1);
    set_alarm(d, "unverified", c->first_seq, c->record_count);
    if (!c->has_link || !c->has_prev_link || c->link.len != 32 || c->prev_link.len != 32)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the chunk of records %llu..%llu has no hash-chain link, but the pen "
                            "signs its log: refused",
                            a, b);
    uint8_t pre[PL_AUTH_LINK_PREFIX], link[32];
    pl_auth_link_prefix(pre, c->prev_link.data, c->first_seq, c->record_count, c->raw_size,
                        (uint32_t)c->data.len);
    penlink_sha256(pre, sizeof pre, c->data.data, c->data.len, link);
    if (memcmp(link, c->link.data, 32) != 0)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the chunk of records %llu..%llu does not match its hash-chain link: "
                            "it was altered on the pen or on the way; nothing from it is kept",
                            a, b);
    if (ps->have_last && ps->anchored && !ps->took &&
        memcmp(c->prev_link.data, ps->last_link, 32) != 0)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the chunk of records %llu..%llu does not follow the chain already "
                            "stored, which ends at seq %llu: the pen's log forks from the copy "
                            "kept here (a log replaced or re-sealed under the same identity); "
                            "nothing from it is kept",
                            a, b, (unsigned long long)ps->next);
    if (ps->have_last && memcmp(c->prev_link.data, ps->last_link, 32) != 0)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the chunk of records %llu..%llu does not follow the chunk before it "
                            "in the hash chain (a chunk missing, moved or from another log)",
                            a, b);
    d->alarm[0] = '\0';
    memcpy(pc->prev_link, c->prev_link.data, 32);
    memcpy(pc->link, link, 32);
    pc->has_link = 1;
    return PENLINK_OK;
}

/* Checks a LogEnd's signed head against the last chunk taken, and hands it on. */
static int check_head(pull_state *ps, const Penlink__V1__LogEnd *e)
{
    penlink_dev *d = ps->d;
    uint8_t msg[PL_AUTH_HEAD_MAX];
    set_alarm(d, "unverified", ps->next, 0);
    if (!e->has_head_link || !e->has_head_signature || e->head_link.len != 32 ||
        e->head_signature.len != 64)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the pen signs its log but sent no signed head: nothing of this pull "
                            "is kept");
    /* A reply without chunks names the pen's newest sealed link, which may end
     * below from_seq (records not sealed yet): not the caller's link. */
    int sent = ps->took || !ps->anchored;
    if (ps->have_last && sent && memcmp(e->head_link.data, ps->last_link, 32) != 0)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the pen's signed head is not the link of the last chunk it sent "
                            "(seq %llu): nothing of this pull is kept",
                            (unsigned long long)e->next_seq);
    size_t n = pl_auth_head_bytes(msg, d->serial, e->next_seq, e->head_link.data);
    if (n == 0 || penlink_verify(e->head_signature.data, msg, n, ps->device_key) != 0)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the signature over the pen's log head (through seq %llu) does not "
                            "verify with its device key: nothing of this pull is kept",
                            (unsigned long long)e->next_seq);
    d->alarm[0] = '\0';
    ps->unverified = 0;
    if (ps->cb && ps->cb->on_head) {
        penlink_head h;
        h.next_seq = e->next_seq;
        memcpy(h.link, e->head_link.data, 32);
        memcpy(h.signature, e->head_signature.data, 64);
        memcpy(h.device_key, ps->device_key, 32);
        if (ps->cb->on_head(ps->cb->user, &h) != 0)
            return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the head callback");
    }
    return PENLINK_OK;
}

/*
 * Where a chunk starts against what is wanted: 0 it is the next one, 1 it
 * starts above (a hole: lost on the way, or gone from the pen), -1 it comes
 * again or out of order, -2 the pen's stored chunks overlap (a contradiction).
 */
static int placement(const pull_state *ps, const Penlink__V1__LogChunk *c, int first_in_window)
{
    uint64_t end = c->first_seq + c->record_count;
    if (c->first_seq > ps->next)
        return 1;
    if (c->first_seq == ps->next)
        return 0;
    if (!first_in_window || end <= ps->next)
        return -1;
    /* A window's first chunk is the stored one holding from_seq: it may start
     * before, but not before the end of a chunk this pull already took. */
    return ps->took ? -2 : 0;
}

/* Decodes and hands on a chunk that starts where it should; PENLINK_OK when taken. */
static int take_chunk(pull_state *ps, const Penlink__V1__LogChunk *c, const pl_frame *raw)
{
    penlink_dev *d = ps->d;
    pl_chunk_expect ex = { c->first_seq, c->record_count, c->raw_size, 1 };
    uint64_t first = c->first_seq, end = first + c->record_count;
    uint32_t n = 0;
    if (end > ps->bound) {
        set_alarm(d, "overrun", ps->next, end - ps->next);
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the pen sent records up to seq %llu, but said it held records below "
                            "%llu only: the pull stops at seq %llu, nothing of that chunk is kept "
                            "and nothing is acknowledged",
                            (unsigned long long)end - 1, (unsigned long long)ps->info_next,
                            (unsigned long long)ps->next);
    }
    penlink_chunk pc;
    memset(&pc, 0, sizeof pc);
    if (ps->signed_log && ps->anchored && first < ps->next) {
        set_alarm(d, "unverified", first, ps->next - first);
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the pen sent a chunk of records %llu..%llu that seals again records "
                            "%llu..%llu, which the host already holds in another signed chunk: "
                            "the pen's hash chain forks from the one stored (a log replaced or "
                            "re-sealed under the same identity); nothing from it is kept",
                            (unsigned long long)first, (unsigned long long)end - 1,
                            (unsigned long long)first, (unsigned long long)ps->next - 1);
    }
    if (ps->signed_log) {
        int st = check_link(ps, c, &pc);
        if (st != PENLINK_OK)
            return st;
    }
    int st = pl_chunk_decode(&d->cdec, c->data.data, c->data.len, &ex, d->recs,
                             PL_CHUNK_MAX_RECORDS, &n);
    if (st == PL_NEED_MORE)
        st = PL_ERR_CHUNK_ZLIB;
    if (st == PL_OK && pl_chunk_dec_consumed(&d->cdec) != c->data.len)
        st = PL_ERR_CHUNK_FORMAT;
    if (st != PL_OK) {
        /* its frame passed its CRC: no noise of the wire explains it (§5 rule 3) */
        set_alarm(d, "contradiction", first, c->record_count);
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the chunk at seq %llu (%u records) arrived intact but failed its "
                            "checks: %s; nothing of it is kept and nothing is acknowledged",
                            (unsigned long long)first, c->record_count, pl_status_str(st));
    }
    if (ps->signed_log) {
        memcpy(ps->last_link, pc.link, 32);
        ps->have_last = 1;
        ps->unverified++;
    }
    if (!ps->started) {
        ps->res->first_seq = first > ps->next ? first : ps->next;
        ps->started = 1;
    }
    ps->took = 1;
    if (ps->cb && ps->cb->on_chunk) {
        pc.first_seq = first;
        pc.record_count = n;
        pc.raw_size = c->raw_size;
        pc.data = c->data.data;
        pc.len = c->data.len;
        pc.frame = raw->payload - PL_FRAME_HEADER_SIZE;
        pc.frame_len = raw->len + PL_FRAME_HEADER_SIZE;
        if (ps->cb->on_chunk(ps->cb->user, &pc) != 0)
            return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the chunk callback");
    }
    uint64_t fresh = 0;
    for (uint32_t i = 0; i < n; i++) {
        const penlink_record *r = (const penlink_record *)&d->recs[i];
        if (r->seq < ps->next) { /* the stored chunk starts before what was asked */
            if (ps->cb && ps->cb->on_overlap && ps->cb->on_overlap(ps->cb->user, r) != 0)
                return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED,
                                    "stopped by the overlap callback");
            continue;
        }
        fresh++;
        if (ps->cb && ps->cb->on_record && ps->cb->on_record(ps->cb->user, r) != 0)
            return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the record callback");
    }
    ps->next = end;
    ps->res->next_seq = end;
    ps->res->records += fresh;
    ps->res->chunks++;
    ps->res->bytes += raw->len + PL_FRAME_HEADER_SIZE;
    ps->prog.records = ps->res->records;
    ps->prog.bytes = ps->res->bytes;
    ps->prog.next_seq = end;
    if (ps->cb && ps->cb->on_progress)
        ps->cb->on_progress(ps->cb->user, &ps->prog);
    return PENLINK_OK;
}

/*
 * A hole at ps->next, up to @p upto (where the pen went on), showed in a
 * window whose LogEnd said its oldest record is @p avail (UINT64_MAX: it did
 * not say). The records are gone only if a DeviceInfo read now says so too;
 * then the gap is handed on and the pull goes on after it. Else they were
 * lost on the way: the window is asked for again.
 */
static int settle_hole(pull_state *ps, uint64_t upto, uint64_t avail, int *out)
{
    penlink_dev *d = ps->d;
    penlink_info info = PENLINK_INFO_INIT;
    int st = penlink_dev_info(d, &info);
    if (st != PENLINK_OK)
        return st;
    uint64_t gone = upto;
    if (avail < gone)
        gone = avail;
    if (info.log_first_seq < gone)
        gone = info.log_first_seq;
    if (gone <= ps->next) {
        *out = retry(ps, 0, "records from seq %llu did not arrive whole (the pen still holds them)",
                     (unsigned long long)ps->next);
        return PENLINK_OK;
    }
    if (ps->signed_log && ps->unverified > 0)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the pen no longer holds records %llu..%llu, which it held when this "
                            "pull began, and the records before them are not yet covered by its "
                            "signature: nothing of this window is kept; pull again",
                            (unsigned long long)ps->next, (unsigned long long)gone - 1);
    uint64_t count = gone - ps->next;
    if (ps->cb && ps->cb->on_gap &&
        ps->cb->on_gap(ps->cb->user, ps->next, count, info.log_acked_seq) != 0)
        return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the gap callback");
    ps->res->gap += count;
    ps->next = gone;
    ps->res->next_seq = gone;
    ps->prog.next_seq = gone;
    ps->have_last = 0; /* the chain goes on from a chunk whose predecessor is gone */
    ps->anchored = 0;
    if (!ps->started) {
        ps->res->first_seq = gone;
        ps->started = 1;
    }
    *out = WIN_MORE;
    return PENLINK_OK;
}

/* Reads the rest of an abandoned window up to its LogEnd (or a timeout), for
 * the pen's word on its oldest record; UINT64_MAX when none came. */
static int drain_window(pull_state *ps, uint32_t rid, uint64_t *avail)
{
    penlink_dev *d = ps->d;
    *avail = UINT64_MAX;
    long long deadline = pc_mono_ms() + d->timeout_ms;
    for (;;) {
        pl_envelope *r = NULL;
        int st = dev_recv(d, deadline, &r, NULL);
        if (st == PENLINK_ERR_TIMEOUT)
            return PENLINK_OK;
        if (st != PENLINK_OK)
            return st;
        if (r->request_id == rid) /* the window goes on: another timeout from here */
            deadline = pc_mono_ms() + d->timeout_ms;
        int done = r->request_id == rid && (r->body_case == PENLINK__V1__ENVELOPE__BODY_LOG_END ||
                                            r->body_case == PENLINK__V1__ENVELOPE__BODY_ERROR);
        if (done && r->body_case == PENLINK__V1__ENVELOPE__BODY_LOG_END &&
            r->log_end->has_first_available_seq)
            *avail = r->log_end->first_available_seq;
        pl_envelope_free(NULL, r);
        if (done)
            return PENLINK_OK;
    }
}

/* A LogEnd that matches the chunks taken. */
static int end_window(pull_state *ps, const Penlink__V1__LogEnd *e, uint64_t before, int *out)
{
    penlink_dev *d = ps->d;
    if (e->next_seq >= DEV_SEQ_LIMIT || e->first_available_seq >= DEV_SEQ_LIMIT)
        return penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL,
                            "the pen's LogEnd gives a seq at or above 2^63, outside the "
                            "protocol's range");
    if (e->next_seq < ps->next) {
        set_alarm(d, "contradiction", e->next_seq, ps->next - e->next_seq);
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the pen says its reply ended at seq %llu, but it sent records "
                            "through %llu: it contradicts itself",
                            (unsigned long long)e->next_seq, (unsigned long long)ps->next - 1);
    }
    if (e->next_seq > ps->next) /* chunks missing at the end, or records gone */
        return settle_hole(ps, e->next_seq,
                           e->has_first_available_seq ? e->first_available_seq : UINT64_MAX, out);
    if (ps->signed_log) {
        int st = check_head(ps, e);
        if (st != PENLINK_OK)
            return st;
    }
    if (!e->more) {
        if (ps->next < ps->info_next) {
            set_alarm(d, "contradiction", ps->next, ps->info_next - ps->next);
            return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                                "the pen says its log ends at seq %llu, but it said it held "
                                "records up to %llu: it contradicts itself; nothing is "
                                "acknowledged",
                                (unsigned long long)ps->next,
                                (unsigned long long)ps->info_next - 1);
        }
        *out = WIN_END;
        return PENLINK_OK;
    }
    if (ps->next == before) {
        *out = retry(ps, 0, "the pen said more records follow seq %llu but sent none",
                     (unsigned long long)ps->next);
        return PENLINK_OK;
    }
    *out = WIN_MORE;
    return PENLINK_OK;
}

/* Sends the window's PullLog; @p rid: its request id. */
static int send_pull_log(pull_state *ps, uint32_t *rid)
{
    penlink_dev *d = ps->d;
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__PullLog p = PENLINK__V1__PULL_LOG__INIT;
    p.has_from_seq = p.has_max_chunks = 1;
    p.from_seq = ps->next;
    p.max_chunks = PULL_WINDOW;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
    env.pull_log = &p;
    env.has_request_id = 1;
    env.request_id = d->next_id++;
    memset(&d->err, 0, sizeof d->err);
    *rid = env.request_id;
    return dev_send(d, &env);
}

/* A window's chunk @p r (freed here): refused, taken (the clock restarts),
 * or a repeat or a hole, which end the window: then *done is set and *out
 * says how it ended. */
static int window_chunk(pull_state *ps, pl_envelope *r, const pl_frame *raw, uint32_t rid,
                        int *chunks, long long *deadline, int *out, int *done)
{
    penlink_dev *d = ps->d;
    const Penlink__V1__LogChunk *c = r->log_chunk;
    int st = PENLINK_OK;
    if (!c->has_data || c->record_count == 0 || !c->has_first_seq) {
        st = penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL, "the pen sent an empty chunk at seq %llu",
                          (unsigned long long)c->first_seq);
    } else if (c->first_seq >= DEV_SEQ_LIMIT || c->record_count > DEV_SEQ_LIMIT - c->first_seq) {
        st = penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL,
                          "the pen sent a chunk of seqs %llu.. (%u records) at or above "
                          "2^63, outside the protocol's range: refused",
                          (unsigned long long)c->first_seq, c->record_count);
    } else {
        int where = placement(ps, c, *chunks == 0);
        if (where == -2) {
            set_alarm(d, "contradiction", c->first_seq, ps->next - c->first_seq);
            st = penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                              "the pen sent a chunk of records %llu..%llu, which overlaps "
                              "records it sent before (through %llu): its log "
                              "contradicts itself; nothing of this reply is kept",
                              (unsigned long long)c->first_seq,
                              (unsigned long long)(c->first_seq + c->record_count - 1),
                              (unsigned long long)ps->next - 1);
        } else if (where == 0) {
            st = take_chunk(ps, c, raw);
            (*chunks)++;
            *deadline = pc_mono_ms() + d->timeout_ms;
        } else {
            uint64_t upto = c->first_seq;
            pl_envelope_free(NULL, r);
            *done = 1;
            if (where < 0) {
                *out = retry(ps, 0,
                             "a chunk at seq %llu came again or out of order (the next "
                             "wanted is %llu)",
                             (unsigned long long)upto, (unsigned long long)ps->next);
                return PENLINK_OK;
            }
            uint64_t avail;
            st = drain_window(ps, rid, &avail);
            if (st != PENLINK_OK)
                return st;
            return settle_hole(ps, upto, avail, out);
        }
    }
    pl_envelope_free(NULL, r);
    *done = st != PENLINK_OK;
    return st;
}

/* One PullLog: chunks until LogEnd. *out: WIN_END, WIN_MORE or WIN_RETRY. */
static int pull_window(pull_state *ps, int *out)
{
    penlink_dev *d = ps->d;
    uint32_t rid;
    int st = send_pull_log(ps, &rid);
    if (st != PENLINK_OK)
        return st;
    uint64_t before = ps->next;
    int chunks = 0, done = 0;
    /* Only the window's own chunks restart the clock: stale frames or messages
     * this version does not know, however many, do not keep it waiting. */
    long long deadline = pc_mono_ms() + d->timeout_ms;
    for (;;) {
        pl_envelope *r = NULL;
        pl_frame raw;
        st = dev_recv(d, deadline, &r, &raw);
        if (st == PENLINK_ERR_TIMEOUT) {
            *out = retry(ps, 1, "%s: the pen sent nothing for %d ms at seq %llu", d->t->where,
                         d->timeout_ms, (unsigned long long)ps->next);
            return PENLINK_OK;
        }
        if (st != PENLINK_OK)
            return st;
        if (r->request_id != rid) {
            int unread = r->request_id == 0 && r->body_case == PENLINK__V1__ENVELOPE__BODY_ERROR;
            pl_envelope_free(NULL, r); /* stale, or the pen could not read our request */
            if (!unread)
                continue;
            *out = retry(ps, 0, "the pen could not read the request for seq %llu",
                         (unsigned long long)ps->next);
            return PENLINK_OK;
        }
        switch (r->body_case) {
        case PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK:
            st = window_chunk(ps, r, &raw, rid, &chunks, &deadline, out, &done);
            if (done)
                return st;
            continue;
        case PENLINK__V1__ENVELOPE__BODY_LOG_END:
            st = end_window(ps, r->log_end, before, out);
            pl_envelope_free(NULL, r);
            return st;
        case PENLINK__V1__ENVELOPE__BODY_ERROR:
            st = dev_pen_error(d, r->error, "pull_log");
            pl_envelope_free(NULL, r);
            return st;
        case PENLINK__V1__ENVELOPE__BODY__NOT_SET:
            pl_envelope_free(NULL, r); /* a message this version does not know: §3 */
            continue;
        default:
            st = penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL, "the pen answered pull_log with %s",
                              dev_body_name(r->body_case));
            pl_envelope_free(NULL, r);
            return st;
        }
    }
}

/* What the pen says it holds must make sense before anything is asked of it. */
static int check_info(penlink_dev *d, const penlink_info *info)
{
    if (info->log_next_seq > DEV_SEQ_LIMIT)
        return penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL,
                            "the pen says its next seq is %llu, at or above 2^63, outside the "
                            "protocol's range: nothing is pulled",
                            (unsigned long long)info->log_next_seq);
    if (info->log_first_seq > info->log_next_seq || info->log_acked_seq > info->log_next_seq)
        return penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL,
                            "the pen's DeviceInfo contradicts itself (oldest record %llu, "
                            "acknowledged below %llu, next %llu): nothing is pulled",
                            (unsigned long long)info->log_first_seq,
                            (unsigned long long)info->log_acked_seq,
                            (unsigned long long)info->log_next_seq);
    return PENLINK_OK;
}

/* The pull, into a result of this library's size (penlink_dev_pull copies
 * what the caller's size covers). */
static int dev_pull(penlink_dev *d, uint64_t from_seq, const penlink_pull_cb *cb,
                    penlink_pull_result *res)
{
    penlink_enter(d->ctx);
    memset(res, 0, sizeof *res);
    res->size = sizeof *res;
    d->alarm[0] = '\0';
    res->from_seq = from_seq;
    res->first_seq = res->next_seq = from_seq;
    pull_state ps = { .d = d, .cb = cb, .res = res, .next = from_seq };
    penlink_info info = PENLINK_INFO_INIT;
    int st = penlink_dev_info(d, &info);
    if (st == PENLINK_OK)
        st = check_info(d, &info);
    if (st == PENLINK_OK)
        st = dev_supports(d, PENLINK__V1__ENVELOPE__BODY_PULL_LOG);
    if (st != PENLINK_OK)
        return st;
    if (from_seq >= DEV_SEQ_LIMIT)
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                            "seq %llu is outside the protocol's range",
                            (unsigned long long)from_seq);
    if (d->features & PENLINK__V1__FEATURE__FEATURE_SIGNED_CHUNKS) {
        if (!info.has_device_key)
            return penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL,
                                "the pen says it signs its log but has no device key");
        ps.signed_log = 1;
        memcpy(ps.device_key, info.device_key, 32);
    }
    if (ps.signed_log && cb && cb->after_link) {
        memcpy(ps.last_link, cb->after_link, 32);
        ps.have_last = 1;
        ps.anchored = 1;
    }
    ps.info_next = info.log_next_seq;
    ps.bound = info.log_next_seq + PULL_MARGIN;
    if (info.log_next_seq > from_seq)
        ps.prog.records_total =
            info.log_next_seq - (from_seq > info.log_first_seq ? from_seq : info.log_first_seq);
    /* the bytes to come: the flash the pen says its records use, pro rata */
    uint64_t held = info.log_next_seq - info.log_first_seq;
    if (held > 0 && ps.prog.records_total <= held)
        ps.prog.bytes_total =
            (uint64_t)((double)info.log_used_bytes * (double)ps.prog.records_total / (double)held);
    ps.prog.next_seq = from_seq;
    if (cb && cb->on_progress) /* the totals, before the first record */
        cb->on_progress(cb->user, &ps.prog);
    /* windows in a row that failed at ps.next: the first ask and its retries */
    int failed = 0;
    for (;;) {
        if (atomic_load(&d->ctx->cancelled))
            return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "pull cancelled at seq %llu",
                                (unsigned long long)ps.next);
        uint64_t before = ps.next;
        int win = WIN_RETRY;
        st = pull_window(&ps, &win);
        if (st != PENLINK_OK)
            return st;
        if (win == WIN_END)
            break;
        if (ps.next > before)
            failed = 0; /* progress: a new seq to ask at */
        if (win != WIN_RETRY)
            continue;
        if (++failed < PULL_TRIES) {
            res->retries++; /* one count: the notices said, the result's retries */
            dev_notice(d, "%s: %s; asking again from seq %llu (retry %d of %d)", d->serial, ps.why,
                       (unsigned long long)ps.next, failed, PULL_TRIES - 1);
            continue;
        }
        /* nothing is acknowledged by a pull: the caller says what it kept and
         * where the next pull resumes (one seq, its own) */
        return penlink_fail(d->ctx, ps.why_timeout ? PENLINK_ERR_TIMEOUT : PENLINK_ERR_PROTOCOL,
                            "%s; asked again %d times in vain; %s, and pull again", ps.why,
                            PULL_TRIES - 1,
                            ps.why_timeout ? "the pen may be hung: unplug it and plug it in "
                                             "again (or switch it off and on)"
                                           : "check the cable, replug the pen");
    }
    if (!ps.started)
        res->first_seq = res->next_seq = ps.next;
    return PENLINK_OK;
}

int penlink_dev_pull(penlink_dev *d, uint64_t from_seq, const penlink_pull_cb *cb,
                     penlink_pull_result *result)
{
    if (!d || !PL_SIZED_OK(cb, PL_PULL_CB_SIZE_V1) || !PL_SIZED_OK(result, PL_PULL_RESULT_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    penlink_pull_result all = PENLINK_PULL_RESULT_INIT;
    int st = dev_pull(d, from_seq, cb, &all);
    if (result)
        pl_sized_copy(result, &all, sizeof all);
    return st;
}
