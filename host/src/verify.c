/*
 * penlink_archive_verify: the archive's log re-checked offline, pen by pen.
 *
 *  1. Chunks, in seq order: each stored chunk's bytes must hash to its link
 *     (SHA-256 over the previous link, its header fields and its data), and
 *     its previous link must be the link of the stored chunk before it (the
 *     genesis link before seq 0). A hole is accepted only where a pull
 *     recorded a gap the pen reported; the chain then resumes from the link
 *     the next chunk names (an anchor, listed in the notes).
 *  2. Heads: each signed head the pulls kept must verify with the pen's
 *     key in force when it was kept (the pinned key, then the new key of
 *     each recorded replacement from the head it was recorded before) and
 *     name the link of a chunk the archive holds.
 *  3. Records: every record row must equal the record its chunk carries, no
 *     chunk's record may be missing, and no row may lie outside the chunks.
 *
 * The first failure of each pen is named (chunk, seq, and what it means);
 * the verdict is stored in the archive for the audit.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "pl/auth.h"
#include "pl/chunk.h"

/* Most key replacements of one pen verify looks at. */
#define VERIFY_MAX_REPLACEMENTS 64

typedef struct vstate {
    archive_backend *b;
    int64_t device;
    const char *serial;
    uint8_t key[32]; /* the key the next head must verify with */
    /* replacements: from head number heads_before on, new_key */
    penlink_key_replacement repl[VERIFY_MAX_REPLACEMENTS];
    size_t n_repl, next_repl;
    uint64_t head_no;
    penlink_verify_report *r;
    /* chain */
    int have_prev;
    uint8_t prev_link[32];
    uint64_t prev_end;
    /* links seen, for the heads (sorted later) */
    uint8_t (*links)[32];
    size_t n_links, cap_links;
    uint64_t first_from; /* where the first pull began */
    penlink_alarm *gaps; /* gaps the pulls recorded: holes the chain may have */
    size_t n_gaps, cap_gaps;
    /* records */
    pl_chunk_dec *dec; /* the run's, reused pen after pen */
    pl_record *recs;
    uint32_t n_recs;
    uint64_t covered_to; /* every seq below is covered by a checked stored chunk */
    uint64_t matched;    /* record rows equal to their chunk's */
    uint64_t want;       /* next seq expected in the current chunk's range */
    int st;
} vstate;

static int broken(vstate *v, uint64_t seq, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int broken(vstate *v, uint64_t seq, const char *fmt, ...)
{
    if (v->r->state != PENLINK_VERIFY_BROKEN) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(v->r->detail, sizeof v->r->detail, fmt, ap);
        va_end(ap);
        v->r->state = PENLINK_VERIFY_BROKEN;
        v->r->where_seq = seq;
    }
    return 1; /* stop at the first broken link */
}

static void note(vstate *v, const char *what)
{
    size_t n = strlen(v->r->notes);
    if (n + strlen(what) + 3 < sizeof v->r->notes)
        snprintf(v->r->notes + n, sizeof v->r->notes - n, "%s%s", n ? "; " : "", what);
}

static int keep_link(vstate *v, const uint8_t link[32])
{
    if (v->n_links == v->cap_links) {
        size_t cap = v->cap_links ? 2 * v->cap_links : 256;
        void *p = realloc(v->links, cap * 32);
        if (!p)
            return -1;
        v->links = p;
        v->cap_links = cap;
    }
    memcpy(v->links[v->n_links++], link, 32);
    return 0;
}

static int cmp_link(const void *a, const void *b)
{
    return memcmp(a, b, 32);
}

/* The records of a stored chunk against the rows. */
static int on_row(void *u, const penlink_record *row)
{
    vstate *v = u;
    if (row->seq != v->want)
        return broken(v, v->want,
                      "record %llu is missing from the records table, though the signed chunk "
                      "%llu..%llu holds it (deleted)",
                      (unsigned long long)v->want, (unsigned long long)v->recs[0].seq,
                      (unsigned long long)(v->recs[0].seq + v->n_recs - 1));
    const pl_record *want = &v->recs[row->seq - v->recs[0].seq];
    if (!pl_record_equal((const pl_record *)row, want))
        return broken(v, row->seq,
                      "record %llu differs from the record in its signed chunk (edited)",
                      (unsigned long long)row->seq);
    v->matched++;
    v->want++;
    return 0;
}

/* A hole [lo, hi) in the stored chain is accepted where a pull recorded a gap. */
static int gap_explains(const vstate *v, uint64_t lo, uint64_t hi)
{
    for (size_t i = 0; i < v->n_gaps; i++)
        if (v->gaps[i].seq < hi && v->gaps[i].seq + v->gaps[i].count > lo)
            return 1;
    return 0;
}

static int on_gap(void *u, const penlink_alarm *a)
{
    vstate *v = u;
    if (strcmp(a->kind, "gap") != 0)
        return 0;
    if (v->n_gaps == v->cap_gaps) {
        size_t cap = v->cap_gaps ? 2 * v->cap_gaps : 16;
        void *p = realloc(v->gaps, cap * sizeof *v->gaps);
        if (!p)
            return 1;
        v->gaps = p;
        v->cap_gaps = cap;
    }
    v->gaps[v->n_gaps++] = *a;
    return 0;
}

static int on_chunk(void *u, const archive_chunk_row *c)
{
    vstate *v = u;
    unsigned long long a = (unsigned long long)c->first_seq,
                       z = (unsigned long long)(c->first_seq + c->record_count - 1);
    if (!c->link || !c->prev_link)
        return broken(v, c->first_seq,
                      "chunk %lld (records %llu..%llu) has no hash-chain link, but the pen "
                      "signs its log (its links were removed)",
                      (long long)c->id, a, z);
    uint8_t pre[PL_AUTH_LINK_PREFIX], link[32];
    pl_auth_link_prefix(pre, c->prev_link, c->first_seq, c->record_count, c->raw_size,
                        (uint32_t)c->len);
    penlink_sha256(pre, sizeof pre, c->data, c->len, link);
    if (memcmp(link, c->link, 32) != 0)
        return broken(v, c->first_seq,
                      "chunk %lld (records %llu..%llu): its bytes do not hash to its link "
                      "(the chunk was edited)",
                      (long long)c->id, a, z);
    if (keep_link(v, link) != 0) {
        v->st = PENLINK_ERR_NO_MEM;
        return 1;
    }
    v->r->chunks++;
    uint64_t end = c->first_seq + c->record_count;
    if (v->have_prev && c->first_seq < v->prev_end)
        goto records; /* a second copy (a conflict, already an alarm): not a link of the chain */
    if (v->have_prev && c->first_seq == v->prev_end) {
        if (memcmp(c->prev_link, v->prev_link, 32) != 0)
            return broken(v, c->first_seq,
                          "chunk %lld (records %llu..%llu) does not follow the chunk before it "
                          "in the hash chain (a chunk removed, moved, or from another pen)",
                          (long long)c->id, a, z);
    } else if (v->have_prev && !gap_explains(v, v->prev_end, c->first_seq)) {
        return broken(v, v->prev_end,
                      "records %llu..%llu and their chunks are missing, and no pull recorded a "
                      "gap there (removed)",
                      (unsigned long long)v->prev_end, a - 1);
    } else if (!v->have_prev && c->first_seq > v->first_from &&
               !gap_explains(v, v->first_from, c->first_seq)) {
        return broken(v, v->first_from,
                      "records %llu..%llu and their chunks are missing from the start of the "
                      "pen's archived log (removed)",
                      (unsigned long long)v->first_from, a - 1);
    } else if (!v->have_prev && c->first_seq == 0) {
        uint8_t g[PL_AUTH_GENESIS_MAX], gl[32];
        size_t n = pl_auth_genesis_bytes(g, v->serial);
        penlink_sha256(g, n, NULL, 0, gl);
        if (memcmp(c->prev_link, gl, 32) != 0)
            return broken(v, 0,
                          "chunk %lld (records 0..%llu) does not start this pen's chain (it "
                          "belongs to another pen's log)",
                          (long long)c->id, z);
    } else {
        char what[96];
        snprintf(what, sizeof what, "chain anchored at seq %llu", a);
        note(v, what);
    }
    memcpy(v->prev_link, link, 32);
    v->prev_end = end;
    v->have_prev = 1;
records:
    /* the rows it is the first checked chunk to hold */
    if (end <= v->covered_to)
        return 0;
    pl_chunk_expect ex = { c->first_seq, c->record_count, c->raw_size, 1 };
    if (pl_chunk_decode(v->dec, c->data, c->len, &ex, v->recs, PL_CHUNK_MAX_RECORDS, &v->n_recs) !=
            PL_OK ||
        v->n_recs != c->record_count)
        return broken(v, c->first_seq,
                      "chunk %lld (records %llu..%llu) does not decode, though its link holds",
                      (long long)c->id, a, z);
    uint64_t from = c->first_seq > v->covered_to ? c->first_seq : v->covered_to;
    v->want = from;
    int rc = v->b->ops->records(v->b, v->device, from, end, on_row, v);
    if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED) {
        v->st = rc;
        return 1;
    }
    if (v->r->state == PENLINK_VERIFY_BROKEN)
        return 1;
    if (v->want != end)
        return broken(v, v->want,
                      "record %llu is missing from the records table, though the signed chunk "
                      "%llu..%llu holds it (deleted)",
                      (unsigned long long)v->want, a, z);
    v->covered_to = end;
    return 0;
}

static int on_replacement(void *u, const penlink_key_replacement *r)
{
    vstate *v = u;
    if (v->n_repl == VERIFY_MAX_REPLACEMENTS)
        return broken(v, r->from_seq,
                      "more than %d key replacements are recorded for this pen: not a repaired "
                      "pen",
                      VERIFY_MAX_REPLACEMENTS);
    v->repl[v->n_repl++] = *r;
    return 0;
}

/* Takes the replacements recorded before head number @p head_no (all of
 * them: UINT64_MAX): the key in force changes with each. 1 when broken. */
static int advance_key(vstate *v, uint64_t head_no)
{
    while (v->next_repl < v->n_repl && head_no >= v->repl[v->next_repl].heads_before) {
        const penlink_key_replacement *r = &v->repl[v->next_repl++];
        if (memcmp(r->old_key, v->key, 32) != 0)
            return broken(v, r->from_seq,
                          "the key replacement recorded at seq %llu names an old key that was "
                          "not the pen's key in force (the replacement record was edited)",
                          (unsigned long long)r->from_seq);
        memcpy(v->key, r->new_key, 32);
        char what[96];
        snprintf(what, sizeof what, "device key replaced at seq %llu (heads after it: new key)",
                 (unsigned long long)r->from_seq);
        note(v, what);
    }
    return 0;
}

static int on_head(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                   const uint8_t *sig, size_t sig_len)
{
    vstate *v = u;
    uint8_t msg[PL_AUTH_HEAD_MAX];
    /* the heads kept after a recorded replacement verify with its new key */
    if (advance_key(v, v->head_no))
        return 1;
    v->head_no++;
    size_t n = link_len == 32 ? pl_auth_head_bytes(msg, v->serial, next_seq, link) : 0;
    if (n == 0 || sig_len != 64 || penlink_verify(sig, msg, n, v->key) != 0)
        return broken(v, next_seq,
                      "the signed head through seq %llu does not verify with the pen's %s "
                      "(re-signed or edited)",
                      (unsigned long long)next_seq,
                      v->next_repl ? "key in force when it was kept (the new key of a recorded "
                                     "replacement)"
                                   : "pinned key");
    if (!bsearch(link, v->links, v->n_links, 32, cmp_link))
        return broken(v, next_seq,
                      "the signed head through seq %llu names a link no chunk in the archive "
                      "has (its chunk was removed or replaced)",
                      (unsigned long long)next_seq);
    v->r->heads++;
    if (next_seq > v->r->signed_through)
        v->r->signed_through = next_seq;
    return 0;
}

typedef struct vrun {
    penlink_archive *ar;
    int (*cb)(void *user, const penlink_verify_report *r);
    void *user;
    int st;
    pl_record *recs;
    pl_chunk_dec dec;
} vrun;

static int verify_pen(void *u, int64_t device, const char *serial, const uint8_t *key,
                      uint64_t first_from)
{
    vrun *run = u;
    archive_backend *b = run->ar->b;
    penlink_verify_report r;
    memset(&r, 0, sizeof r);
    snprintf(r.serial, sizeof r.serial, "%s", serial);
    vstate v;
    memset(&v, 0, sizeof v);
    v.b = b;
    v.device = device;
    v.serial = serial;
    v.r = &r;
    v.recs = run->recs;
    v.dec = &run->dec;
    v.first_from = first_from;
    int rc = PENLINK_OK;
    if (!key) {
        r.state = PENLINK_VERIFY_UNSIGNED;
        snprintf(r.notes, sizeof r.notes, "the pen does not sign its log: nothing to verify");
    } else {
        memcpy(v.key, key, 32);
        penlink_archive_filter f = { 0 };
        f.serial = serial;
        rc = b->ops->alarms(b, &f, on_gap, &v);
        if (rc == PENLINK_OK)
            rc = b->ops->chunks(b, device, on_chunk, &v);
        if (rc == PENLINK_ERR_CANCELLED)
            rc = v.st;
        if (rc == PENLINK_OK && r.state == PENLINK_VERIFY_OK) {
            rc = b->ops->key_replacements(b, serial, on_replacement, &v);
            if (rc == PENLINK_ERR_CANCELLED)
                rc = PENLINK_OK;
        }
        if (rc == PENLINK_OK && r.state == PENLINK_VERIFY_OK) {
            qsort(v.links, v.n_links, 32, cmp_link);
            rc = b->ops->heads(b, device, on_head, &v);
            if (rc == PENLINK_ERR_CANCELLED)
                rc = PENLINK_OK;
            if (rc == PENLINK_OK && r.state == PENLINK_VERIFY_OK)
                advance_key(&v, UINT64_MAX); /* replacements after the last head */
        }
        uint64_t rows = 0;
        if (rc == PENLINK_OK && r.state == PENLINK_VERIFY_OK)
            rc = b->ops->record_count(b, device, &rows);
        if (rc == PENLINK_OK && r.state == PENLINK_VERIFY_OK && rows != v.matched)
            broken(&v, v.covered_to,
                   "%llu record rows lie outside every signed chunk (inserted, or their chunk "
                   "removed)",
                   (unsigned long long)(rows - v.matched));
        r.records = v.matched;
    }
    free(v.links);
    free(v.gaps);
    if (rc != PENLINK_OK) {
        run->st = rc;
        return 1;
    }
    rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->verification_log(b, device, &r, archive_now_ms());
    if (rc == PENLINK_OK)
        rc = b->ops->commit(b);
    else
        b->ops->rollback(b);
    if (rc != PENLINK_OK) {
        run->st = rc;
        return 1;
    }
    if (run->cb && run->cb(run->user, &r) != 0) {
        run->st = PENLINK_ERR_CANCELLED;
        return 1;
    }
    return 0;
}

int penlink_archive_verify(penlink_archive *ar, const char *serial,
                           int (*cb)(void *user, const penlink_verify_report *r), void *user)
{
    if (!ar)
        return PENLINK_ERR_INVALID_ARG;
    vrun run;
    memset(&run, 0, sizeof run);
    run.ar = ar;
    run.cb = cb;
    run.user = user;
    run.recs = malloc(PL_CHUNK_MAX_RECORDS * sizeof *run.recs);
    if (!run.recs || pl_chunk_dec_init(&run.dec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW) != PL_OK) {
        free(run.recs);
        return penlink_fail(ar->ctx, PENLINK_ERR_NO_MEM, "verify: out of memory");
    }
    int rc = ar->b->ops->pens(ar->b, serial, verify_pen, &run);
    if (rc == PENLINK_ERR_CANCELLED || (rc == PENLINK_OK && run.st != PENLINK_OK))
        rc = run.st;
    pl_chunk_dec_fini(&run.dec);
    free(run.recs);
    return rc;
}

int penlink_archive_verification(penlink_archive *ar, const char *serial, penlink_verification *out)
{
    if (!ar || !serial || !out)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->verification_last(ar->b, serial, out);
}
