/*
 * penlink_archive_verify: the archive's log re-checked offline, pen by pen,
 * and the same checks as a walk that archive push copies a log by.
 *
 *  1. Heads: each signed head the pulls kept must verify with the pen's
 *     key in force when it was kept (the pinned key, then the new key of
 *     each recorded replacement from the head it was recorded before, in
 *     the order the heads were stored) and name the link of a chunk the
 *     archive holds. A replacement must name the key it replaced, and follow
 *     a stored head that verified (a key is pinned once a head verified with
 *     it) whose records end at or before its from_seq.
 *  2. Chunks, in seq order: each stored chunk's bytes must hash to its link
 *     (SHA-256 over the previous link, its header fields and its data), and
 *     its previous link must be the link of the stored chunk before it (the
 *     genesis link before seq 0). A hole is accepted only where a pull
 *     recorded a gap the pen reported; the chain then resumes from the link
 *     the next chunk names (an anchor, listed in the notes). Every chunk of
 *     the chain must be covered by a verified head: one that names its link
 *     or the link of a later chunk of the same unbroken stretch (a pull keeps
 *     nothing a head did not cover, so chunks past the last head were added).
 *  3. Records: every record row must equal the record its chunk carries, no
 *     chunk's record may be missing, and no row may lie outside the chunks.
 *     The audit's walk (archive_audit_pen) skips this step: it takes the
 *     records from the chunks it checked and reads no record row, so the
 *     rows (the index export reads) are verify's alone to compare.
 *
 * The heads are read and their signatures checked first, so that the walk
 * meets each verified head where the chain reaches the chunk it names: a
 * caller that copies the log (archive_walk_pen's hooks) sees every chunk
 * after its checks, with its records, then every verified head that covers
 * it, and can keep what a head covered when a later link breaks.
 *
 * Before these, for every pen, signing or not: record rows that hold a seq
 * no pen logs (at or above 2^63, stored as negative integers by an earlier
 * penlink from a hostile pen, or an edit). Rows and chunk rows that cannot
 * be what they claim make their pen BROKEN; they never stop the others.
 *
 * The first failure of each pen is named (chunk, seq, and what it means);
 * on an archive opened for writing penlink verify stores the verdict for
 * the audit.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "work_progress.h"
#include "clock.h"
#include "pl/auth.h"
#include "pl/chunk.h"

/* Most key replacements of one pen verify looks at. */
#define VERIFY_MAX_REPLACEMENTS 64

/* A stored head, its signature checked. */
typedef struct vhead {
    uint64_t next_seq;
    uint8_t link[PL_LINK_BYTES], sig[PL_SIG_BYTES];
    size_t order;  /* as stored: the first bad one is named */
    size_t key_no; /* the key in force when it was kept: 0 pinned, n after n replacements */
    int good;      /* the signature verifies with that key */
    int matched;   /* a chunk has its link */
} vhead;

struct archive_walker {
    pl_chunk_dec dec;
    pl_record *recs;
    const char *work; /* the progress reported as this work; NULL: none */
    pl_work pw;       /* the pen being walked */
};

typedef struct vstate {
    archive_backend *b;
    int64_t device;
    const char *serial;
    int signs;                 /* the pen has a pinned key: links and heads are checked */
    uint8_t key[PL_KEY_BYTES]; /* the pinned key */
    /* replacements (penlink keys replace): from head number heads_before on, new_key */
    penlink_key_replacement repl[VERIFY_MAX_REPLACEMENTS];
    size_t n_repl, next_repl;
    uint8_t key_now[PL_KEY_BYTES]; /* the key in force for the next stored head */
    int have_good;                 /* a stored head verified so far ... */
    uint64_t good_from;            /* ... and the lowest next seq of those that did */
    penlink_verify_report *r;
    const archive_walk_hooks *hooks;
    /* chain */
    int have_prev;
    uint8_t prev_link[PL_LINK_BYTES];
    uint64_t prev_end;
    uint64_t seg_start;  /* where the unbroken stretch of the chain being walked begins */
    uint64_t seg_signed; /* ... and how far into it a verified head reaches */
    vhead *heads;        /* sorted by link during the walk */
    size_t n_heads, cap_heads;
    uint64_t first_from; /* where the first pull began */
    penlink_alarm *gaps; /* gaps the pulls recorded: holes the chain may have */
    size_t n_gaps, cap_gaps;
    /* records */
    pl_chunk_dec *dec; /* the walker's, reused pen after pen */
    pl_record *recs;
    uint32_t n_recs;
    uint64_t covered_to; /* every seq below is covered by a checked stored chunk */
    uint64_t matched;    /* record rows equal to their chunk's */
    uint64_t want;       /* next seq expected in the current chunk's range */
    int from_chunks;     /* the audit's walk: the chunks' records, no record row read */
    uint64_t linked;     /* chunks with hash-chain links (a pen with no key: it signed once) */
    uint64_t linked_seq; /* ... the first of them */
    int st;
    /* progress: the records of the chunks from first_from up to work_hi, counted once */
    pl_work *pw;
    uint64_t work_hi, work_done;
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

static int cmp_head_link(const void *a, const void *b)
{
    return memcmp(((const vhead *)a)->link, ((const vhead *)b)->link, PL_LINK_BYTES);
}

static int cmp_head_order(const void *a, const void *b)
{
    size_t x = ((const vhead *)a)->order, y = ((const vhead *)b)->order;
    return x < y ? -1 : x > y;
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
 * them: SIZE_MAX): the key in force changes with each. 1 when broken. */
static int advance_key(vstate *v, size_t head_no)
{
    while (v->next_repl < v->n_repl && head_no >= v->repl[v->next_repl].heads_before) {
        const penlink_key_replacement *r = &v->repl[v->next_repl++];
        /* a key is pinned once a head verified with it: a genuine replacement follows one,
         * and its log went on from where that head's records end */
        if (!v->have_good || v->good_from > r->from_seq)
            return broken(v, r->from_seq,
                          "the key replacement recorded at seq %llu (%llu heads before it, by "
                          "%.24s on %.24s) follows no signed head that verified with the key it "
                          "replaces: the replacement record was forged or edited",
                          (unsigned long long)r->from_seq, (unsigned long long)r->heads_before,
                          r->user, r->host);
        if (memcmp(r->old_key, v->key_now, PL_KEY_BYTES) != 0)
            return broken(v, r->from_seq,
                          "the key replacement recorded at seq %llu names an old key that was "
                          "not the pen's key in force (the replacement record was edited)",
                          (unsigned long long)r->from_seq);
        memcpy(v->key_now, r->new_key, PL_KEY_BYTES);
        char what[96];
        snprintf(what, sizeof what, "device key replaced at seq %llu (heads after it: new key)",
                 (unsigned long long)r->from_seq);
        note(v, what);
    }
    return 0;
}

/* The key head @p h verified with. */
static const uint8_t *head_key(const vstate *v, const vhead *h)
{
    return h->key_no ? v->repl[h->key_no - 1].new_key : v->key;
}

static int on_stored_head(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                          const uint8_t *sig, size_t sig_len)
{
    vstate *v = u;
    if (v->n_heads == v->cap_heads) {
        size_t cap = v->cap_heads ? 2 * v->cap_heads : 64;
        void *p = realloc(v->heads, cap * sizeof *v->heads);
        if (!p) {
            v->st = PENLINK_ERR_NO_MEM;
            return 1;
        }
        v->heads = p;
        v->cap_heads = cap;
    }
    /* the heads kept after a recorded replacement verify with its new key */
    if (advance_key(v, v->n_heads))
        return 1;
    vhead *h = &v->heads[v->n_heads];
    memset(h, 0, sizeof *h);
    h->next_seq = next_seq;
    h->key_no = v->next_repl;
    h->order = v->n_heads++;
    if (link_len != PL_LINK_BYTES || sig_len != PL_SIG_BYTES)
        return 0; /* cannot verify: named at the end */
    memcpy(h->link, link, PL_LINK_BYTES);
    memcpy(h->sig, sig, PL_SIG_BYTES);
    uint8_t msg[PL_AUTH_HEAD_MAX];
    size_t n = pl_auth_head_bytes(msg, v->serial, next_seq, link);
    h->good = n > 0 && penlink_verify(sig, msg, n, v->key_now) == 0;
    if (h->good && (!v->have_good || next_seq < v->good_from)) {
        v->have_good = 1;
        v->good_from = next_seq;
    }
    return 0;
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

/* A row of a chunk's range that cannot be a record. */
static int on_bad_row(void *u, const archive_damage *d)
{
    vstate *v = u;
    return broken(v, (uint64_t)d->seq, "the record row of seq %llu cannot be a record: %s",
                  (unsigned long long)d->seq, d->why);
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
        if (!p) {
            v->st = PENLINK_ERR_NO_MEM;
            return 1;
        }
        v->gaps = p;
        v->cap_gaps = cap;
    }
    v->gaps[v->n_gaps++] = *a;
    return 0;
}

static int bad_head(vstate *v, const vhead *h)
{
    return broken(v, h->next_seq,
                  "the signed head through seq %llu does not verify with the pen's %s "
                  "(re-signed or edited)",
                  (unsigned long long)h->next_seq,
                  h->key_no ? "key in force when it was kept (the new key of a recorded "
                              "replacement)"
                            : "pinned key");
}

/* The stretch of the chain walked so far must end under a verified head. A
 * head whose signature fails is the likelier cause, and named first. */
static int stretch_signed(vstate *v)
{
    if (!v->signs || !v->have_prev || v->seg_signed >= v->prev_end)
        return 0;
    const vhead *first_bad = NULL;
    for (size_t i = 0; i < v->n_heads; i++)
        if (!v->heads[i].good && (!first_bad || v->heads[i].order < first_bad->order))
            first_bad = &v->heads[i];
    if (first_bad)
        return bad_head(v, first_bad);
    uint64_t from = v->seg_signed > v->seg_start ? v->seg_signed : v->seg_start;
    return broken(v, from,
                  "records %llu..%llu are covered by no signed head of the pen (added to the "
                  "archive, or the head that signed them was removed)",
                  (unsigned long long)from, (unsigned long long)(v->prev_end - 1));
}

/* Where a chunk stands in the chain: 0 a link of it, 1 a second copy of seqs
 * the chain holds (a conflict, already an alarm), or broken (the walk stops). */
static int place_chunk(vstate *v, const archive_chunk_row *c, const uint8_t *link, int *copy)
{
    unsigned long long a = (unsigned long long)c->first_seq,
                       z = (unsigned long long)(c->first_seq + c->record_count - 1);
    *copy = v->have_prev && c->first_seq < v->prev_end;
    if (*copy && v->signs && c->first_seq + c->record_count > v->prev_end)
        return broken(v, c->first_seq,
                      "chunk %lld (records %llu..%llu) seals again records %llu..%llu, which the "
                      "chunk before it holds, and goes on past them: the pen's hash chain forks "
                      "at seq %llu (its log was re-sealed or replaced under the same identity); "
                      "the records of both branches are in the archive",
                      (long long)c->id, a, z, a, (unsigned long long)v->prev_end - 1, a);
    if (*copy)
        return 0;
    if (!v->signs) {
        /* nothing to chain: the records are checked against the chunks all the same */
    } else if (v->have_prev && c->first_seq == v->prev_end) {
        if (memcmp(c->prev_link, v->prev_link, PL_LINK_BYTES) != 0)
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
        uint8_t g[PL_AUTH_GENESIS_MAX], gl[PL_LINK_BYTES];
        size_t n = pl_auth_genesis_bytes(g, v->serial);
        penlink_sha256(g, n, NULL, 0, gl);
        if (memcmp(c->prev_link, gl, PL_LINK_BYTES) != 0)
            return broken(v, 0,
                          "chunk %lld (records 0..%llu) does not start this pen's chain (it "
                          "belongs to another pen's log)",
                          (long long)c->id, z);
    } else {
        /* a new stretch of the chain, after a recorded gap or where the log starts */
        if (stretch_signed(v))
            return 1;
        char what[96];
        snprintf(what, sizeof what, "chain anchored at seq %llu", a);
        note(v, what);
        v->seg_start = v->seg_signed = c->first_seq;
    }
    if (v->signs)
        memcpy(v->prev_link, link, PL_LINK_BYTES);
    v->prev_end = c->first_seq + c->record_count;
    v->have_prev = 1;
    return 0;
}

/* The verified heads that name @p link: marked, and handed to the caller
 * once the chunk is (a head of the chain covers its stretch up to here). */
static int heads_at(vstate *v, const uint8_t *link, uint64_t end, int copy)
{
    vhead key;
    memcpy(key.link, link, PL_LINK_BYTES);
    /* no head stored: v->heads is NULL, which bsearch and qsort must not get */
    vhead *h =
        v->n_heads ? bsearch(&key, v->heads, v->n_heads, sizeof *v->heads, cmp_head_link) : NULL;
    if (!h)
        return 0;
    while (h > v->heads && memcmp(h[-1].link, link, PL_LINK_BYTES) == 0)
        h--;
    for (; h < v->heads + v->n_heads && memcmp(h->link, link, PL_LINK_BYTES) == 0; h++) {
        if (!h->good)
            continue;
        h->matched = 1;
        if (!copy && end > v->seg_signed)
            v->seg_signed = end;
        if (v->hooks && v->hooks->head) {
            penlink_head ph;
            memset(&ph, 0, sizeof ph);
            ph.next_seq = h->next_seq;
            memcpy(ph.link, h->link, PL_LINK_BYTES);
            memcpy(ph.signature, h->sig, PL_SIG_BYTES);
            memcpy(ph.device_key, head_key(v, h), PL_KEY_BYTES);
            int rc = v->hooks->head(v->hooks->user, &ph);
            if (rc != PENLINK_OK) {
                v->st = rc;
                return 1;
            }
        }
    }
    return 0;
}

/* A chunk's records to the hook, unchecked: past the first failure of an
 * audit's walk, each chunk that decodes still gives the records no earlier
 * chunk held (the first stored copy of each seq), so that the audit reports
 * on them next to the failure. A chunk that does not decode gives none. */
static int feed_unchecked(vstate *v, const archive_chunk_row *c)
{
    if (c->damage || c->first_seq + c->record_count <= v->covered_to)
        return 0;
    pl_chunk_expect ex = { c->first_seq, c->record_count, c->raw_size, 1 };
    if (pl_chunk_decode(v->dec, c->data, c->len, &ex, v->recs, PL_CHUNK_MAX_RECORDS, &v->n_recs) !=
            PL_OK ||
        v->n_recs != c->record_count)
        return 0;
    uint64_t end = c->first_seq + c->record_count;
    uint64_t from = c->first_seq > v->covered_to ? c->first_seq : v->covered_to;
    v->covered_to = end;
    int rc =
        v->hooks->chunk(v->hooks->user, c, (const penlink_record *)v->recs + (from - c->first_seq),
                        (uint32_t)(end - from), 0);
    if (rc != PENLINK_OK) {
        v->st = rc;
        return 1;
    }
    return 0;
}

static int check_chunk(vstate *v, const archive_chunk_row *c);

/* The chunk's records not counted yet (a copy or overlap counts once). */
static void chunk_progress(vstate *v, const archive_chunk_row *c)
{
    uint64_t lo = c->first_seq, end = c->first_seq + c->record_count;
    if (c->damage)
        return;
    if (lo < v->work_hi)
        lo = v->work_hi;
    if (lo < v->first_from)
        lo = v->first_from;
    if (end <= lo)
        return;
    v->work_hi = end;
    v->work_done += end - lo;
    pl_work_at(v->pw, v->work_done);
}

static int on_chunk(void *u, const archive_chunk_row *c)
{
    vstate *v = u;
    /* penlink_ctx_cancel (a Ctrl-C): verify, the audit and push stop at a
     * chunk, with CANCELLED and no verdict; nothing they wrote is half done */
    if (atomic_load(&v->b->ctx->cancelled)) {
        v->st = penlink_fail(v->b->ctx, PENLINK_ERR_CANCELLED, "%s: interrupted at seq %llu",
                             v->serial, (unsigned long long)c->first_seq);
        return 1;
    }
    if (v->pw->ctx)
        chunk_progress(v, c);
    if (!v->from_chunks)
        return check_chunk(v, c);
    if (!c->damage && (c->link || c->prev_link) && v->linked++ == 0)
        v->linked_seq = c->first_seq;
    if (v->r->state == PENLINK_VERIFY_BROKEN)
        return feed_unchecked(v, c);
    if (check_chunk(v, c) == 0)
        return 0;
    if (v->st != PENLINK_OK || v->r->state != PENLINK_VERIFY_BROKEN)
        return 1;
    return feed_unchecked(v, c);
}

/* The record rows of seqs [from, end) of a checked chunk, whose records are
 * decoded in v->recs: each must equal its record. 1 when broken. */
static int check_rows(vstate *v, const archive_chunk_row *c, uint64_t from, uint64_t end)
{
    v->want = from;
    int rc = v->b->ops->records(v->b, v->device, from, end, on_row, on_bad_row, v);
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
                      (unsigned long long)v->want, (unsigned long long)c->first_seq,
                      (unsigned long long)(c->first_seq + c->record_count - 1));
    return 0;
}

static int check_chunk(vstate *v, const archive_chunk_row *c)
{
    if (c->damage)
        return broken(v, (uint64_t)c->stored_seq, "chunk %lld (first seq stored as %lld): %s",
                      (long long)c->id, (long long)c->stored_seq, c->damage);
    unsigned long long a = (unsigned long long)c->first_seq,
                       z = (unsigned long long)(c->first_seq + c->record_count - 1);
    uint8_t link[PL_LINK_BYTES] = { 0 };
    if (v->signs) {
        if (!c->link || !c->prev_link)
            return broken(v, c->first_seq,
                          "chunk %lld (records %llu..%llu) has no hash-chain link, but the pen "
                          "signs its log (its links were removed)",
                          (long long)c->id, a, z);
        uint8_t pre[PL_AUTH_LINK_PREFIX];
        pl_auth_link_prefix(pre, c->prev_link, c->first_seq, c->record_count, c->raw_size,
                            (uint32_t)c->len);
        penlink_sha256(pre, sizeof pre, c->data, c->len, link);
        if (memcmp(link, c->link, PL_LINK_BYTES) != 0)
            return broken(v, c->first_seq,
                          "chunk %lld (records %llu..%llu): its bytes do not hash to its link "
                          "(the chunk was edited)",
                          (long long)c->id, a, z);
    }
    int copy;
    if (place_chunk(v, c, link, &copy) != 0)
        return 1;
    v->r->chunks++;
    /* the rows it is the first checked chunk to hold */
    uint64_t end = c->first_seq + c->record_count;
    uint64_t from = c->first_seq > v->covered_to ? c->first_seq : v->covered_to;
    if (end > v->covered_to) {
        pl_chunk_expect ex = { c->first_seq, c->record_count, c->raw_size, 1 };
        if (pl_chunk_decode(v->dec, c->data, c->len, &ex, v->recs, PL_CHUNK_MAX_RECORDS,
                            &v->n_recs) != PL_OK ||
            v->n_recs != c->record_count)
            return broken(v, c->first_seq,
                          "chunk %lld (records %llu..%llu) does not decode, though its link holds",
                          (long long)c->id, a, z);
        if (v->from_chunks) /* the audit: the records are the chunk's, no row is read */
            v->matched += end - from;
        else if (check_rows(v, c, from, end) != 0)
            return 1;
        v->covered_to = end;
    } else {
        from = end;
    }
    if (v->hooks && v->hooks->chunk) {
        int rc = v->hooks->chunk(v->hooks->user, c,
                                 (const penlink_record *)v->recs + (from - c->first_seq),
                                 (uint32_t)(end - from), copy);
        if (rc != PENLINK_OK) {
            v->st = rc;
            return 1;
        }
    }
    return v->signs ? heads_at(v, link, end, copy) : 0;
}

/* After the walk: the heads nothing matched, or whose signature fails. */
static void check_heads(vstate *v)
{
    if (v->n_heads)
        qsort(v->heads, v->n_heads, sizeof *v->heads, cmp_head_order);
    for (size_t i = 0; i < v->n_heads && v->r->state != PENLINK_VERIFY_BROKEN; i++) {
        const vhead *h = &v->heads[i];
        if (!h->good) {
            bad_head(v, h);
        } else if (!h->matched && h->next_seq <= v->first_from) {
            /* a head over records pulled before this archive's first pull of the pen (into
             * another archive): its chunk was never here, and nothing here depends on it */
            char what[96];
            snprintf(what, sizeof what, "a head through seq %llu before the archive's first record",
                     (unsigned long long)h->next_seq);
            note(v, what);
        } else if (!h->matched) {
            broken(v, h->next_seq,
                   "the signed head through seq %llu names a link no chunk in the archive "
                   "has (its chunk was removed or replaced)",
                   (unsigned long long)h->next_seq);
        } else {
            v->r->heads++;
            if (h->next_seq > v->r->signed_through)
                v->r->signed_through = h->next_seq;
        }
    }
}

/* Record rows of the pen that hold a seq no pen logs: its verdict BROKEN,
 * before anything else is checked (the status says whether it could be read). */
static int seq_outliers(archive_backend *b, int64_t device, penlink_verify_report *r)
{
    uint64_t outliers = 0;
    int64_t lowest = 0;
    int rc = b->ops->seq_outliers(b, device, &outliers, &lowest);
    if (rc == PENLINK_OK && outliers) {
        snprintf(r->detail, sizeof r->detail,
                 "%llu record rows hold a seq at or above 2^63 (stored as negative integers, the "
                 "lowest %lld, i.e. seq %llu): no pen logs such seqs; written by an earlier "
                 "penlink from a hostile pen, or edited",
                 (unsigned long long)outliers, (long long)lowest, (unsigned long long)lowest);
        r->state = PENLINK_VERIFY_BROKEN;
        r->where_seq = (uint64_t)lowest;
    }
    return rc;
}

int archive_walker_new(archive_walker **out)
{
    archive_walker *w = calloc(1, sizeof *w);
    if (w)
        w->recs = malloc(PL_CHUNK_MAX_RECORDS * sizeof *w->recs);
    if (!w || !w->recs ||
        pl_chunk_dec_init(&w->dec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW) != PL_OK) {
        if (w)
            free(w->recs);
        free(w);
        return PENLINK_ERR_NO_MEM;
    }
    *out = w;
    return PENLINK_OK;
}

void archive_walker_set_work(archive_walker *w, const char *work)
{
    w->work = work;
}

void archive_walker_free(archive_walker *w)
{
    if (!w)
        return;
    pl_chunk_dec_fini(&w->dec);
    free(w->recs);
    free(w);
}

static int on_any_head(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                       const uint8_t *sig, size_t sig_len);
static void signed_once(penlink_verify_report *r, uint64_t linked, uint64_t first_seq,
                        uint64_t heads);

/* The first progress call of a pen: its records expected from the seqs archived. */
static void progress_begin(archive_walker *w, archive_backend *b, int64_t device,
                           const char *serial, uint64_t first_from)
{
    uint64_t next = 0, total = 0;
    int have = 0;
    if (!w->work || !pl_work_wanted(b->ctx)) {
        memset(&w->pw, 0, sizeof w->pw);
        return;
    }
    /* an estimate: a failure to read it leaves the total unknown (the walk says why) */
    if (b->ops->next_seq(b, device, &next, &have) == PENLINK_OK && have && next > first_from)
        total = next - first_from;
    pl_work_begin(&w->pw, b->ctx, w->work, serial, total);
}

static int walk_pen(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                    const uint8_t *key, uint64_t first_from, const archive_walk_hooks *hooks,
                    int from_chunks, penlink_verify_report *r);

static int walk(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                const uint8_t *key, uint64_t first_from, const archive_walk_hooks *hooks,
                int from_chunks, penlink_verify_report *r)
{
    progress_begin(w, b, device, serial, first_from);
    int rc = walk_pen(w, b, device, serial, key, first_from, hooks, from_chunks, r);
    pl_work_end(&w->pw);
    return rc;
}

static int walk_pen(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                    const uint8_t *key, uint64_t first_from, const archive_walk_hooks *hooks,
                    int from_chunks, penlink_verify_report *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->serial, sizeof r->serial, "%s", serial);
    vstate v;
    memset(&v, 0, sizeof v);
    v.b = b;
    v.device = device;
    v.serial = serial;
    v.r = r;
    v.hooks = hooks;
    v.recs = w->recs;
    v.dec = &w->dec;
    v.first_from = first_from;
    v.from_chunks = from_chunks;
    v.pw = &w->pw;
    v.signs = key != NULL;
    if (key) {
        memcpy(v.key, key, PL_KEY_BYTES);
        memcpy(v.key_now, key, PL_KEY_BYTES);
    }
    /* the rows hold what no pen logs: the archive cannot be read, or BROKEN (the audit reads no
     * row: its records are the chunks') */
    int rc = from_chunks ? PENLINK_OK : seq_outliers(b, device, r);
    if (rc != PENLINK_OK || r->state == PENLINK_VERIFY_BROKEN)
        return rc;
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    f.serial = serial;
    rc = b->ops->alarms(b, &f, on_gap, &v);
    if (rc == PENLINK_OK && v.signs)
        rc = b->ops->key_replacements(b, serial, on_replacement, &v);
    if (rc == PENLINK_OK && v.signs)
        rc = b->ops->heads(b, device, on_stored_head, &v);
    /* a replacement or head found broken stops the heads; the audit still reads the chunks */
    if (rc == PENLINK_ERR_CANCELLED && v.st == PENLINK_OK && r->state == PENLINK_VERIFY_BROKEN)
        rc = PENLINK_OK;
    /* replacements recorded after the last head: checked, and named */
    if (rc == PENLINK_OK && v.signs && r->state == PENLINK_VERIFY_OK)
        advance_key(&v, SIZE_MAX);
    /* the audit's walk reads every chunk, past a failure too (for their records) */
    if (rc == PENLINK_OK && (r->state == PENLINK_VERIFY_OK || from_chunks)) {
        if (v.n_heads)
            qsort(v.heads, v.n_heads, sizeof *v.heads, cmp_head_link);
        rc = b->ops->chunks(b, device, on_chunk, &v);
    }
    if (rc == PENLINK_ERR_CANCELLED)
        rc = v.st;
    if (rc == PENLINK_OK && v.signs && r->state == PENLINK_VERIFY_OK)
        check_heads(&v);
    if (rc == PENLINK_OK && r->state == PENLINK_VERIFY_OK)
        stretch_signed(&v);
    uint64_t rows = 0;
    if (rc == PENLINK_OK && r->state == PENLINK_VERIFY_OK && !from_chunks)
        rc = b->ops->record_count(b, device, &rows);
    if (rc == PENLINK_OK && r->state == PENLINK_VERIFY_OK && !from_chunks && rows != v.matched)
        broken(&v, v.covered_to,
               "%llu record rows lie outside every %schunk (inserted, or their chunk removed)",
               (unsigned long long)(rows - v.matched), v.signs ? "signed " : "");
    r->records = v.matched;
    if (rc == PENLINK_OK && from_chunks && !v.signs && r->state == PENLINK_VERIFY_OK) {
        /* no key, yet linked chunks or stored heads: the pen signed and its key was removed */
        uint64_t heads = 0;
        rc = b->ops->heads(b, device, on_any_head, &heads);
        if (rc == PENLINK_OK && (v.linked || heads))
            signed_once(r, v.linked, v.linked_seq, heads);
    }
    if (!v.signs && r->state == PENLINK_VERIFY_OK) {
        r->state = PENLINK_VERIFY_UNSIGNED;
        snprintf(r->notes, sizeof r->notes, "the pen does not sign its log: nothing to verify");
    }
    free(v.heads);
    free(v.gaps);
    return rc;
}

int archive_walk_pen(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                     const uint8_t *key, uint64_t first_from, const archive_walk_hooks *hooks,
                     penlink_verify_report *r)
{
    return walk(w, b, device, serial, key, first_from, hooks, 0, r);
}

/* Stores a verdict in the verification log, in a transaction of its own. */
static int record(archive_backend *b, const penlink_verify_report *r)
{
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->verification_log(b, r, pc_wall_ms());
    if (rc == PENLINK_OK)
        return b->ops->commit(b);
    b->ops->rollback(b);
    return rc;
}

/* What a signing pen leaves in the archive: its chunks' hash-chain links
 * and the heads its pulls verified. A pen the archive holds no key for
 * but whose chunks or heads show it signed had its pinned key removed. */
typedef struct signing_seen {
    uint64_t linked;
    int64_t chunk_id;
    uint64_t first_seq;
} signing_seen;

static int on_linked_chunk(void *u, const archive_chunk_row *c)
{
    signing_seen *s = u;
    if (!c->link && !c->prev_link)
        return 0;
    if (s->linked++ == 0) {
        s->chunk_id = c->id;
        s->first_seq = c->first_seq;
    }
    return 0;
}

static int on_any_head(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                       const uint8_t *sig, size_t sig_len)
{
    (void)next_seq, (void)link, (void)link_len, (void)sig, (void)sig_len;
    (*(uint64_t *)u)++;
    return 0;
}

static void signed_once(penlink_verify_report *r, uint64_t linked, uint64_t first_seq,
                        uint64_t heads)
{
    r->state = PENLINK_VERIFY_BROKEN;
    r->where_seq = linked ? first_seq : 0;
    snprintf(r->detail, sizeof r->detail,
             "the archive holds no device key for this pen, yet %llu of its chunks carry "
             "hash-chain links and its pulls stored %llu signed heads: the pen signed its log "
             "and its pinned key was removed",
             (unsigned long long)linked, (unsigned long long)heads);
}

static int signing_without_key(archive_backend *b, int64_t device, penlink_verify_report *r)
{
    signing_seen s;
    memset(&s, 0, sizeof s);
    uint64_t heads = 0;
    int rc = b->ops->heads(b, device, on_any_head, &heads);
    if (rc == PENLINK_OK)
        rc = b->ops->chunks(b, device, on_linked_chunk, &s);
    if (rc != PENLINK_OK || (!s.linked && !heads))
        return rc;
    signed_once(r, s.linked, s.first_seq, heads);
    return PENLINK_OK;
}

typedef struct gaps_seen {
    uint64_t lo, hi; /* the range to explain */
    int explained;
} gaps_seen;

static int on_tail_gap(void *u, const penlink_alarm *a)
{
    gaps_seen *g = u;
    if (strcmp(a->kind, "gap") == 0 && a->seq <= g->lo && a->seq + a->count >= g->hi)
        g->explained = 1;
    return 0;
}

/* The records the pen's finished pulls recorded as stored must be in the
 * archive: a log cut short (its last chunks, records and heads deleted)
 * still ends below what its pulls said they committed. */
static int pulls_reach(archive_backend *b, int64_t device, const char *serial,
                       const uint64_t *chunks_end, penlink_verify_report *r)
{
    uint64_t pulled = 0, next = 0;
    int have_pulled = 0, have = 0;
    int rc = b->ops->pulled_to(b, device, &pulled, &have_pulled);
    if (rc == PENLINK_OK && have_pulled && chunks_end) { /* the audit: where its chunks end */
        next = *chunks_end;
        have = next > 0;
    } else if (rc == PENLINK_OK && have_pulled) {
        rc = b->ops->next_seq(b, device, &next, &have);
    }
    if (rc != PENLINK_OK || !have_pulled || pulled <= next)
        return rc;
    /* records the pen had dropped at the end of a pull: a gap it reported */
    gaps_seen g = { next, pulled, 0 };
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    f.serial = serial;
    rc = b->ops->alarms(b, &f, on_tail_gap, &g);
    if (rc != PENLINK_OK || g.explained)
        return rc;
    r->state = PENLINK_VERIFY_BROKEN;
    r->where_seq = next;
    snprintf(r->detail, sizeof r->detail,
             "the pulls recorded this pen's records through seq %llu as stored, but the "
             "archive's records %s; records %llu..%llu were removed (with their chunks and "
             "heads)",
             (unsigned long long)(pulled - 1), have ? "end before them" : "are all gone",
             (unsigned long long)next, (unsigned long long)(pulled - 1));
    return PENLINK_OK;
}

int archive_check_pen(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                      const uint8_t *key, uint64_t first_from, penlink_verify_report *r)
{
    int rc = PENLINK_OK;
    if (!key) {
        /* nothing to chain: the seqs its rows hold, and whether it signed once; no record
         * is read (a progress of 0 records) */
        if (w->work)
            pl_work_begin(&w->pw, b->ctx, w->work, serial, 0);
        pl_work_end(&w->pw);
        memset(r, 0, sizeof *r);
        snprintf(r->serial, sizeof r->serial, "%s", serial);
        rc = seq_outliers(b, device, r);
        if (rc == PENLINK_OK && r->state != PENLINK_VERIFY_BROKEN)
            rc = signing_without_key(b, device, r);
    } else {
        rc = archive_walk_pen(w, b, device, serial, key, first_from, NULL, r);
    }
    if (rc == PENLINK_OK && r->state != PENLINK_VERIFY_BROKEN)
        rc = pulls_reach(b, device, serial, NULL, r);
    if (rc == PENLINK_OK && !key && r->state != PENLINK_VERIFY_BROKEN) {
        r->state = PENLINK_VERIFY_UNSIGNED;
        snprintf(r->notes, sizeof r->notes, "the pen does not sign its log: nothing to verify");
    }
    return rc;
}

/* The audit's reading: each record the hook gets, and where they end. */
typedef struct audit_feed {
    const archive_walk_hooks *hooks;
    uint64_t end; /* one past the last record fed (0: none) */
} audit_feed;

static int feed_records(void *u, const archive_chunk_row *c, const penlink_record *recs, uint32_t n,
                        int copy)
{
    audit_feed *f = u;
    if (n && recs[n - 1].seq + 1 > f->end)
        f->end = recs[n - 1].seq + 1;
    return f->hooks->chunk(f->hooks->user, c, recs, n, copy);
}

int archive_audit_pen(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                      const uint8_t *key, uint64_t first_from, const archive_walk_hooks *hooks,
                      penlink_verify_report *r)
{
    audit_feed f = { hooks, 0 };
    archive_walk_hooks h = { feed_records, NULL, &f };
    int rc = walk(w, b, device, serial, key, first_from, &h, 1, r);
    if (rc == PENLINK_OK && r->state != PENLINK_VERIFY_BROKEN)
        rc = pulls_reach(b, device, serial, &f.end, r);
    if (rc == PENLINK_OK && !key && r->state != PENLINK_VERIFY_BROKEN) {
        r->state = PENLINK_VERIFY_UNSIGNED;
        snprintf(r->notes, sizeof r->notes, "the pen does not sign its log: nothing to verify");
    }
    return rc;
}

typedef struct vrun {
    penlink_archive *ar;
    int (*cb)(void *user, const penlink_verify_report *r);
    void *user;
    int st;
    archive_walker *w;
} vrun;

static int verify_pen(void *u, int64_t device, const char *serial, const uint8_t *key,
                      uint64_t first_from)
{
    vrun *run = u;
    archive_backend *b = run->ar->b;
    penlink_verify_report r;
    if (atomic_load(&b->ctx->cancelled)) { /* a Ctrl-C between pens (within one: on_chunk) */
        run->st = penlink_fail(b->ctx, PENLINK_ERR_CANCELLED, "%s: interrupted", serial);
        return 1;
    }
    int rc = archive_check_pen(run->w, b, device, serial, key, first_from, &r);
    if (rc != PENLINK_OK) {
        run->st = rc;
        return 1;
    }
    /* read-only (opened so, or a server role or standby that may not write): the verdict
     * goes to the caller only (penlink_archive_verification_save) */
    rc = b->readonly || !b->ops->writable(b) ? PENLINK_OK : record(b, &r);
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
    if (serial) { /* a mistyped serial would verify nothing and pass */
        int rc = penlink_archive_pen_check(ar, serial, NULL);
        if (rc != PENLINK_OK)
            return rc;
    }
    vrun run;
    memset(&run, 0, sizeof run);
    run.ar = ar;
    run.cb = cb;
    run.user = user;
    if (archive_walker_new(&run.w) != PENLINK_OK)
        return penlink_fail(ar->ctx, PENLINK_ERR_NO_MEM, "verify: out of memory");
    archive_walker_set_work(run.w, "verify");
    int rc = ar->b->ops->pens(ar->b, serial, verify_pen, &run);
    if (rc == PENLINK_ERR_CANCELLED || (rc == PENLINK_OK && run.st != PENLINK_OK))
        rc = run.st;
    archive_walker_free(run.w);
    return rc;
}

int penlink_archive_verification_save(penlink_archive *ar, const penlink_verify_report *r)
{
    if (!ar || !r)
        return PENLINK_ERR_INVALID_ARG;
    return record(ar->b, r);
}

int penlink_archive_verification_get(penlink_archive *ar, const char *serial,
                                     penlink_verification *out)
{
    if (!ar || !serial || !out || out->size < PL_VERIFICATION_SIZE_V1)
        return PENLINK_ERR_INVALID_ARG;
    penlink_verification all; /* the backend fills it whole; the caller gets what its size covers */
    int rc = ar->b->ops->verification_last(ar->b, serial, &all);
    all.size = sizeof all;
    pl_sized_copy(out, &all, sizeof all);
    return rc;
}
