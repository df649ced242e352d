/*
 * penlink_archive_push: the pens of one archive copied into another, as a
 * laptop's SQLite archive goes to a clinic chain's server after a site was
 * offline (docs/fleet.md).
 *
 * Nothing is taken on the source's word. Each pen's log is walked with the
 * checks of penlink verify (verify.c: each chunk's hash link and place in
 * the chain, each signed head against the pen's pinned key, each record row
 * against its chunk), and the walk's hooks store what passed: each chunk,
 * the records as the chunk carries them, each verified head. As in a pull,
 * what a verified head covers is kept (a savepoint, or a commit every so
 * many chunks) and a break drops what came after it. The destination sees a
 * push as a pull of the pen: its row in the pulls, the pen's lock on a
 * server, its commits at signed heads.
 *
 * What the destination holds already is recognised, never stored twice: a
 * chunk by its bytes, a record by (pen, seq) and compared, a head, an alarm
 * or a configuration entry by its content. A push that finds nothing new
 * rolls back (the destination is left exactly as it was, even the pull row),
 * and one that was stopped is completed by running it again. A record held
 * with other content is a conflict: kept as it is, the chunk that says
 * otherwise stored beside it, alarm "conflict".
 *
 * A device key replaced on purpose in the source (penlink keys replace)
 * goes along: the walk verifies the heads after it with its new key, and
 * the replacement is stored in the destination just before the first head
 * signed with that key (or at the end), so that there too the heads before
 * it verify with the old key and those after with the new one.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"
#include "clock.h"
#include "grow.h"
#include "pl/auth.h"
#include "pl/chunk.h"

/* Chunks stored between commits: as a pull commits at signed heads. */
#define PUSH_COMMIT_EVERY 256
/* The destination's records are read this many seqs at a time where it may
 * hold some of what is pushed (a round trip per chunk would be most of a push). */
#define PUSH_WINDOW (8 * PL_CHUNK_MAX_RECORDS)

typedef struct push_run {
    penlink_archive *from, *to;
    int (*cb)(void *user, const penlink_push_report *r);
    void *user;
    archive_walker *w;
    penlink_archive_device *devs; /* the source's pens, for their rows */
    size_t n_devs, cap_devs;
    int st;               /* an archive failure: stops the push */
    int refused;          /* pens whose status is not OK */
    char first[512];      /* the first of them, for the context's message */
    penlink_record *have; /* the destination's records of seqs have_lo..have_hi - 1 */
    uint32_t n_have;
} push_run;

/* The destination's content of one pen, to recognise what it holds. */
typedef struct held {
    penlink_head *heads;
    size_t n_heads, cap_heads;
    penlink_alarm *alarms;
    size_t n_alarms, cap_alarms;
    penlink_config_entry *configs;
    size_t n_configs, cap_configs;
    uint64_t heads_total; /* every head row of the pen, as verify counts them */
    /* the source's key replacements of the pen the destination lacks, in order */
    penlink_key_replacement *repl;
    size_t n_repl, cap_repl, next_repl;
    uint8_t key_now[PL_KEY_BYTES]; /* the destination's key in force */
    int have_key;
} held;

typedef struct push_pen {
    push_run *run;
    archive_backend *to;
    int64_t device, pull;          /* in the destination */
    uint64_t to_next;              /* the destination held no seq at or above this before */
    uint64_t have_lo, have_hi;     /* the seqs whose records in the destination are read */
    uint64_t pushed_next;          /* ... nor above this one, stored by this push */
    uint64_t kept_next;            /* pushed_next at the last savepoint */
    int chunks_open;               /* stored since the last commit */
    int committed;                 /* something new is committed already */
    uint64_t run_first, run_count; /* conflicting records not yet raised as one alarm */
    int64_t chunk;                 /* the destination's id of the chunk being stored */
    penlink_push_report *rep;
    penlink_push_report kept; /* the counts as of the last savepoint */
    held h;
    /* The source's key for the pen, pinned in the destination only once a
     * signed head verified under it (or the whole log did): a key that never
     * verified anything would block the real pen there for good. */
    const uint8_t *pin_key;
    int verified; /* a head verified under the key (new or held) */
    int discard;  /* refused before anything verified: the pen's transaction is dropped */
    /* A record held there with other content: the two logs fork. What the
     * source holds past the destination's records continues the other log,
     * not the destination's: it is not appended (its chain would not connect),
     * and stays in the source; the conflicting chunks are the evidence. */
    int forked;
    uint64_t fork_tail; /* records left out for it */
} push_pen;

static uint64_t news(const penlink_push_report *r)
{
    return r->records_new + r->chunks_new + r->heads_new + r->alarms_new + r->configs_new +
           r->keys_new;
}

/* ---- what the destination holds ----------------------------------------- */

static int held_head(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                     const uint8_t *sig, size_t sig_len)
{
    held *h = u;
    h->heads_total++;
    if (link_len != PL_LINK_BYTES || sig_len != PL_SIG_BYTES)
        return 0;
    if (pc_grow(&h->heads, &h->cap_heads, h->n_heads + 1, sizeof *h->heads) != 0)
        return 1;
    penlink_head *x = &h->heads[h->n_heads++];
    memset(x, 0, sizeof *x);
    x->next_seq = next_seq;
    memcpy(x->link, link, PL_LINK_BYTES);
    memcpy(x->signature, sig, PL_SIG_BYTES);
    return 0;
}

static int held_alarm(void *u, const penlink_alarm *a)
{
    held *h = u;
    if (pc_grow(&h->alarms, &h->cap_alarms, h->n_alarms + 1, sizeof *h->alarms) != 0)
        return 1;
    h->alarms[h->n_alarms++] = *a;
    return 0;
}

static int held_config(void *u, const penlink_config_entry *e)
{
    held *h = u;
    if (pc_grow(&h->configs, &h->cap_configs, h->n_configs + 1, sizeof *h->configs) != 0)
        return 1;
    h->configs[h->n_configs++] = *e;
    return 0;
}

static int hold(push_pen *pp, const char *serial)
{
    archive_backend *b = pp->to;
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    f.serial = serial;
    int rc = b->ops->heads(b, pp->device, held_head, &pp->h);
    if (rc == PENLINK_OK)
        rc = b->ops->alarms(b, &f, held_alarm, &pp->h);
    if (rc == PENLINK_OK)
        rc = b->ops->config_history(b, serial, held_config, &pp->h);
    if (rc == PENLINK_ERR_CANCELLED)
        rc = penlink_fail(b->ctx, PENLINK_ERR_NO_MEM, "push: out of memory");
    return rc;
}

static void held_free(held *h)
{
    free(h->heads);
    free(h->alarms);
    free(h->configs);
    free(h->repl);
}

/* An alarm is the same one when it says the same: kind, place, count and words. */
static int alarm_held(const held *h, const char *kind, uint64_t seq, uint64_t count,
                      const char *detail)
{
    for (size_t i = 0; i < h->n_alarms; i++) {
        const penlink_alarm *a = &h->alarms[i];
        if (a->seq == seq && a->count == count && strcmp(a->kind, kind) == 0 &&
            strncmp(a->detail, detail, sizeof a->detail - 1) == 0)
            return 1;
    }
    return 0;
}

/* Stores an alarm in the destination unless it holds the same one. */
static int push_alarm(push_pen *pp, const char *kind, uint64_t seq, uint64_t count,
                      const char *detail, int64_t at_ms)
{
    if (alarm_held(&pp->h, kind, seq, count, detail))
        return PENLINK_OK;
    archive_backend *b = pp->to;
    int rc = b->ops->alarm(b, pp->device, pp->pull, kind, seq, count, detail, at_ms);
    if (rc != PENLINK_OK)
        return rc;
    penlink_alarm a;
    memset(&a, 0, sizeof a);
    snprintf(a.kind, sizeof a.kind, "%s", kind);
    a.seq = seq;
    a.count = count;
    snprintf(a.detail, sizeof a.detail, "%s", detail);
    if (held_alarm(&pp->h, &a) != 0)
        return penlink_fail(b->ctx, PENLINK_ERR_NO_MEM, "push: out of memory");
    pp->rep->alarms_new++;
    return PENLINK_OK;
}

/* ---- replaced device keys ------------------------------------------------ */

typedef struct repl_visit {
    held *h;
    int held; /* 1: reading the destination's, 0: the source's */
    int failed;
} repl_visit;

/* The destination's replacements give its key in force; the source's that
 * it lacks wait in h->repl (one it holds is recognised by its keys: the
 * destination's key in force is already past it). */
static int take_repl(void *u, const penlink_key_replacement *r)
{
    repl_visit *rv = u;
    held *h = rv->h;
    if (rv->held) {
        memcpy(h->key_now, r->new_key, PL_KEY_BYTES);
        return 0;
    }
    if (memcmp(h->key_now, r->old_key, PL_KEY_BYTES) != 0)
        return 0; /* held already */
    if (pc_grow(&h->repl, &h->cap_repl, h->n_repl + 1, sizeof *h->repl) != 0) {
        rv->failed = 1;
        return 1;
    }
    h->repl[h->n_repl++] = *r;
    memcpy(h->key_now, r->new_key, PL_KEY_BYTES);
    return 0;
}

/* Reads what the destination holds of the pen's key history and what the
 * source adds to it. @p key: the pen's pinned key (the same in both). */
static int hold_replacements(push_pen *pp, const char *serial, const uint8_t *key)
{
    archive_backend *src = pp->run->from->b;
    held *h = &pp->h;
    if (!key)
        return PENLINK_OK; /* an unsigned pen has no key to replace */
    memcpy(h->key_now, key, PL_KEY_BYTES);
    h->have_key = 1;
    repl_visit rv = { h, 1, 0 };
    int rc = pp->to->ops->key_replacements(pp->to, serial, take_repl, &rv);
    uint8_t dest_key[PL_KEY_BYTES];
    memcpy(dest_key, h->key_now, PL_KEY_BYTES);
    rv.held = 0;
    if (rc == PENLINK_OK)
        rc = src->ops->key_replacements(src, serial, take_repl, &rv);
    memcpy(h->key_now, dest_key, PL_KEY_BYTES);
    if (rv.failed || rc == PENLINK_ERR_CANCELLED)
        rc = penlink_fail(pp->to->ctx, PENLINK_ERR_NO_MEM, "push: out of memory");
    return rc;
}

/* Stores the waiting replacements up to the one whose new key is @p key
 * (NULL: all of them), each counting the heads the destination holds then. */
static int push_replacements(push_pen *pp, const uint8_t *key)
{
    held *h = &pp->h;
    archive_backend *b = pp->to;
    if (!h->have_key || (key && memcmp(key, h->key_now, PL_KEY_BYTES) == 0))
        return PENLINK_OK;
    while (h->next_repl < h->n_repl) {
        penlink_key_replacement r = h->repl[h->next_repl++];
        r.heads_before = h->heads_total;
        int rc = b->ops->key_replace(b, &r);
        if (rc != PENLINK_OK)
            return rc;
        pp->rep->keys_new++;
        memcpy(h->key_now, r.new_key, PL_KEY_BYTES);
        if (key && memcmp(key, r.new_key, PL_KEY_BYTES) == 0)
            break;
    }
    return PENLINK_OK;
}

/* ---- the walk's hooks: what verified goes in ------------------------------ */

/* Raises the run of conflicting records as one alarm, in the destination's words. */
static int flush_conflicts(push_pen *pp)
{
    if (pp->run_count == 0)
        return PENLINK_OK;
    char detail[256];
    snprintf(detail, sizeof detail,
             "records %llu..%llu pushed from archive %s differ from the ones this archive "
             "holds (both kept: the archived records, and the chunk as pushed)",
             (unsigned long long)pp->run_first,
             (unsigned long long)(pp->run_first + pp->run_count - 1), pp->run->from->b->name);
    int rc = push_alarm(pp, "conflict", pp->run_first, pp->run_count, detail, pc_wall_ms());
    pp->run_count = 0;
    return rc;
}

static int conflict(push_pen *pp, uint64_t seq)
{
    pp->forked = 1;
    pp->rep->conflicts++;
    if (pp->run_count && seq != pp->run_first + pp->run_count) {
        int rc = flush_conflicts(pp);
        if (rc != PENLINK_OK)
            return rc;
    }
    if (pp->run_count++ == 0)
        pp->run_first = seq;
    return PENLINK_OK;
}

static int keep_have(void *u, const penlink_record *r)
{
    push_run *run = u;
    if (run->n_have >= PUSH_WINDOW)
        return 1;
    run->have[run->n_have++] = *r;
    return 0;
}

/* Reads the destination's records of seqs from @p lo on (PUSH_WINDOW of
 * them, not past what it held before the push began). */
static int read_window(push_pen *pp, uint64_t lo)
{
    archive_backend *b = pp->to;
    push_run *run = pp->run;
    uint64_t hi = lo + PUSH_WINDOW < pp->to_next ? lo + PUSH_WINDOW : pp->to_next;
    run->n_have = 0;
    pp->have_lo = lo;
    pp->have_hi = hi;
    /* a row there that cannot be a record stops the push (no damage callback) */
    int rc = b->ops->records(b, pp->device, lo, hi, keep_have, NULL, run);
    if (rc == PENLINK_ERR_CANCELLED)
        rc = penlink_fail(b->ctx, PENLINK_ERR_INTEGRITY,
                          "push: archive %s holds more records than seqs in a range", b->name);
    return rc;
}

/* A chunk's records: new ones stored, those the destination holds compared.
 * A chain's chunks follow each other, so a seq the destination did not hold
 * when the push began is not stored yet: new. */
static int push_records(push_pen *pp, const penlink_record *recs, uint32_t n)
{
    archive_backend *b = pp->to;
    push_run *run = pp->run;
    int rc;
    uint32_t j = 0;
    for (uint32_t i = 0; i < n; i++) {
        const penlink_record *r = &recs[i];
        if (r->seq < pp->to_next && (r->seq < pp->have_lo || r->seq >= pp->have_hi)) {
            if ((rc = read_window(pp, r->seq)) != PENLINK_OK)
                return rc;
            j = 0;
        }
        while (r->seq < pp->to_next && j < run->n_have && run->have[j].seq < r->seq)
            j++;
        if (r->seq < pp->to_next && j < run->n_have && run->have[j].seq == r->seq) {
            if (archive_record_same(&run->have[j], r))
                pp->rep->records_same++;
            else if ((rc = conflict(pp, r->seq)) != PENLINK_OK)
                return rc;
            continue;
        }
        if (pp->forked) { /* the other log's continuation: not appended */
            pp->fork_tail++;
            continue;
        }
        int outcome = REC_NEW;
        rc = b->ops->record(b, pp->device, pp->chunk, r, 1, &outcome);
        if (rc != PENLINK_OK)
            return rc;
        pp->rep->records_new++;
        if (r->seq + 1 > pp->pushed_next)
            pp->pushed_next = r->seq + 1;
    }
    return PENLINK_OK;
}

static int on_chunk(void *u, const archive_chunk_row *c, const penlink_record *recs, uint32_t n,
                    int copy)
{
    push_pen *pp = u;
    archive_backend *b = pp->to;
    penlink_chunk pc;
    memset(&pc, 0, sizeof pc);
    pc.first_seq = c->first_seq;
    pc.record_count = c->record_count;
    pc.raw_size = c->raw_size;
    pc.data = c->data;
    pc.len = c->len;
    pc.has_link = c->link && c->prev_link;
    if (pc.has_link) {
        memcpy(pc.prev_link, c->prev_link, PL_LINK_BYTES);
        memcpy(pc.link, c->link, PL_LINK_BYTES);
    }
    if (pp->forked && c->first_seq >= pp->to_next) { /* past a fork: left out */
        pp->fork_tail += c->record_count;
        return PENLINK_OK;
    }
    /* beyond everything the destination held: not stored there yet (a backend
     * that can may then send it without waiting for the answer) */
    int stored = 1;
    int fresh = !copy && c->first_seq >= pp->to_next;
    int rc = b->ops->chunk(b, pp->device, pp->pull, &pc, pc_wall_ms(), &pp->chunk,
                           fresh ? NULL : &stored);
    if (rc != PENLINK_OK)
        return rc;
    pp->rep->chunks_new += (uint64_t)stored;
    pp->chunks_open++;
    /* a second copy's records conflicted in the source already: its alarm comes along */
    rc = copy ? PENLINK_OK : push_records(pp, recs, n);
    uint64_t end = c->first_seq + c->record_count;
    if (pp->forked && end > pp->to_next) /* the rest continues the other log */
        end = pp->to_next > c->first_seq ? pp->to_next : c->first_seq;
    if (rc == PENLINK_OK && end > pp->rep->next_seq)
        pp->rep->next_seq = end;
    return rc;
}

/* Keeps what the walk stored so far (it verified): a savepoint, or a commit
 * every PUSH_COMMIT_EVERY chunks once there is something new to commit. */
static int keep(push_pen *pp)
{
    archive_backend *b = pp->to;
    int rc;
    if (pp->chunks_open >= PUSH_COMMIT_EVERY && news(pp->rep) > 0) {
        rc = b->ops->commit(b);
        if (rc == PENLINK_OK)
            rc = b->ops->begin(b);
        pp->chunks_open = 0;
        pp->committed = 1;
    } else {
        rc = b->ops->savepoint(b);
    }
    pp->kept = *pp->rep;
    pp->kept_next = pp->pushed_next;
    return rc;
}

/* Pins the source's key in the destination, once something verified under it. */
static int pin_now(push_pen *pp)
{
    archive_backend *b = pp->to;
    int pinned = KEY_NONE;
    if (!pp->pin_key)
        return PENLINK_OK;
    int rc = b->ops->pin_key(b, pp->device, pp->pin_key, &pinned);
    pp->pin_key = NULL;
    if (rc == PENLINK_OK && pinned == KEY_CHANGED) /* the pen's lock is held: cannot happen */
        rc = penlink_fail(b->ctx, PENLINK_ERR_INTEGRITY,
                          "push: archive %s pinned another key for the pen meanwhile", b->name);
    return rc;
}

static int on_head(void *u, const penlink_head *h)
{
    push_pen *pp = u;
    archive_backend *b = pp->to;
    pp->verified = 1;
    int rc = pin_now(pp);
    if (rc == PENLINK_OK)
        rc = flush_conflicts(pp); /* a run of them is one alarm, kept with what the head covers */
    if (rc != PENLINK_OK)
        return rc;
    if (pp->forked) /* a head of the other log: not stored */
        return keep(pp);
    for (size_t i = 0; i < pp->h.n_heads; i++) {
        const penlink_head *x = &pp->h.heads[i];
        if (x->next_seq == h->next_seq && memcmp(x->link, h->link, PL_LINK_BYTES) == 0 &&
            memcmp(x->signature, h->signature, PL_SIG_BYTES) == 0)
            return keep(pp);
    }
    /* a head signed with a replacement's new key: the replacement goes first */
    rc = push_replacements(pp, h->device_key);
    /* the destination verifies a head with the key in force where it is stored: one
     * signed with a key it replaced since cannot be added after the replacement */
    if (rc == PENLINK_OK && pp->h.have_key &&
        memcmp(h->device_key, pp->h.key_now, PL_KEY_BYTES) != 0) {
        char hex[2 * PL_KEY_BYTES + 1];
        penlink_key_to_hex(h->device_key, hex);
        return penlink_fail(b->ctx, PENLINK_ERR_INTEGRITY,
                            "push: pen %s's head through seq %llu in archive %s is signed with "
                            "device key %s, which archive %s replaced (penlink keys replace) "
                            "before it held this head, and a head is verified with the key in "
                            "force where it is stored: the push stops here; keep archive %s as the "
                            "record of those pulls (penlink verify checks it there)",
                            pp->rep->serial, (unsigned long long)h->next_seq,
                            pp->run->from->b->name, hex, b->name, pp->run->from->b->name);
    }
    if (rc == PENLINK_OK)
        rc = b->ops->head(b, pp->device, pp->pull, h, pc_wall_ms());
    if (rc != PENLINK_OK)
        return rc;
    if (pc_grow(&pp->h.heads, &pp->h.cap_heads, pp->h.n_heads + 1, sizeof *pp->h.heads) != 0)
        return penlink_fail(b->ctx, PENLINK_ERR_NO_MEM, "push: out of memory");
    pp->h.heads[pp->h.n_heads++] = *h;
    pp->h.heads_total++;
    pp->rep->heads_new++;
    return keep(pp);
}

/* ---- one pen ------------------------------------------------------------- */

static const penlink_archive_device *source_row(const push_run *run, const char *serial)
{
    for (size_t i = 0; i < run->n_devs; i++)
        if (strcmp(run->devs[i].serial, serial) == 0)
            return &run->devs[i];
    return NULL;
}

/* The pen's row in the destination: its sightings as the source has them
 * (first and last seen, each firmware version). */
static int pen_row(push_pen *pp, const char *serial)
{
    archive_backend *b = pp->to;
    const penlink_archive_device *d = source_row(pp->run, serial);
    penlink_info info = PENLINK_INFO_INIT;
    snprintf(info.serial, sizeof info.serial, "%s", serial);
    int64_t first = pc_wall_ms(), last = first;
    const char *fw = "";
    if (d) {
        snprintf(info.model, sizeof info.model, "%s", d->model);
        snprintf(info.hardware_revision, sizeof info.hardware_revision, "%s", d->hardware_revision);
        first = d->first_seen_ms;
        last = d->last_seen_ms;
        fw = d->firmware_versions;
    }
    /* the firmware versions, ", " between them */
    int rc = PENLINK_OK, calls = 0;
    for (const char *p = fw; rc == PENLINK_OK && (*p || calls == 0);) {
        size_t n = strcspn(p, ",");
        snprintf(info.firmware_version, sizeof info.firmware_version, "%.*s", (int)n, p);
        rc = b->ops->device(b, &info, calls++ ? last : first, &pp->device);
        p += n;
        while (*p == ',' || *p == ' ')
            p++;
    }
    if (rc == PENLINK_OK && first != last)
        rc = b->ops->device(b, &info, last, &pp->device);
    return rc;
}

/* The source's alarms and configuration history of the pen that the destination lacks. */
typedef struct copy_visit {
    push_pen *pp;
    int rc;
} copy_visit;

static int copy_alarm(void *u, const penlink_alarm *a)
{
    copy_visit *cv = u;
    cv->rc = push_alarm(cv->pp, a->kind, a->seq, a->count, a->detail, a->at_ms);
    return cv->rc != PENLINK_OK;
}

static int same_config(const penlink_config_entry *a, const penlink_config_entry *b)
{
    char x[1024], y[1024];
    if (a->at_ms != b->at_ms || a->has_old != b->has_old || strcmp(a->source, b->source) != 0 ||
        strcmp(a->user, b->user) != 0 || strcmp(a->host, b->host) != 0)
        return 0;
    archive_config_text(&a->config, x, sizeof x);
    archive_config_text(&b->config, y, sizeof y);
    if (strcmp(x, y) != 0)
        return 0;
    if (!a->has_old)
        return 1;
    archive_config_text(&a->old_config, x, sizeof x);
    archive_config_text(&b->old_config, y, sizeof y);
    return strcmp(x, y) == 0;
}

static int copy_config(void *u, const penlink_config_entry *e)
{
    copy_visit *cv = u;
    push_pen *pp = cv->pp;
    for (size_t i = 0; i < pp->h.n_configs; i++)
        if (same_config(&pp->h.configs[i], e))
            return 0;
    archive_backend *b = pp->to;
    cv->rc = b->ops->config_log(b, e->serial, e->source, e->user, e->host,
                                e->has_old ? &e->old_config : NULL, &e->config, e->at_ms);
    if (cv->rc == PENLINK_OK)
        pp->rep->configs_new++;
    return cv->rc != PENLINK_OK;
}

static int copy_history(push_pen *pp, const char *serial)
{
    archive_backend *src = pp->run->from->b;
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    f.serial = serial;
    copy_visit cv = { pp, PENLINK_OK };
    int rc = src->ops->alarms(src, &f, copy_alarm, &cv);
    if (rc == PENLINK_OK)
        rc = src->ops->config_history(src, serial, copy_config, &cv);
    return rc == PENLINK_ERR_CANCELLED ? cv.rc : rc;
}

/* The serial is pinned to another key there, or the key to another serial:
 * alarm there, nothing of the pen pushed. */
static int refuse_key(push_pen *pp, const char *kind, const char *detail)
{
    penlink_push_report *r = pp->rep;
    r->status = PENLINK_ERR_INTEGRITY;
    snprintf(r->detail, sizeof r->detail, "%.400s; nothing of it was pushed (alarm %s)", detail,
             kind);
    return push_alarm(pp, kind, 0, 0, detail, pc_wall_ms());
}

/* The key the destination pinned for the pen, read without pinning one. */
typedef struct pinned_visit {
    int64_t device;
    int have;
    uint8_t key[PL_KEY_BYTES];
} pinned_visit;

static int pinned_of(void *u, int64_t device, const char *serial, const uint8_t *key,
                     uint64_t first_from)
{
    pinned_visit *v = u;
    (void)serial, (void)first_from;
    if (device != v->device)
        return 0;
    v->have = key != NULL;
    if (key)
        memcpy(v->key, key, PL_KEY_BYTES);
    return 1;
}

/* Checks the pen's pinned key there: 0 to go on, 1 refused (r->status), or an
 * error. Nothing is pinned here: see pin_now(). */
static int check_key(push_pen *pp, const char *serial, const uint8_t *key)
{
    archive_backend *b = pp->to;
    char hex[2 * PL_KEY_BYTES + 1] = "", detail[600], owner[65];
    pinned_visit v = { .device = pp->device };
    int rc = b->ops->pens(b, serial, pinned_of, &v);
    if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED)
        return rc;
    rc = PENLINK_OK;
    int changed = v.have && (!key || memcmp(v.key, key, PL_KEY_BYTES) != 0);
    pp->pin_key = v.have ? NULL : key;
    if (key)
        penlink_key_to_hex(key, hex);
    if (changed) {
        if (key)
            snprintf(detail, sizeof detail,
                     "archive %.160s pinned another device key for pen %s than the one archive "
                     "%.160s holds (%s): a cloned or replaced pen",
                     b->name, serial, pp->run->from->b->name, hex);
        else
            snprintf(detail, sizeof detail,
                     "archive %.160s pinned a device key for pen %s, which archive %.160s holds "
                     "without one: a cloned or replaced pen",
                     b->name, serial, pp->run->from->b->name);
        rc = refuse_key(pp, "key_changed", detail);
        return rc == PENLINK_OK ? 1 : rc;
    }
    rc = archive_key_owner(b, pp->device, serial, key, owner, sizeof owner);
    if (rc == PENLINK_OK && owner[0]) {
        snprintf(detail, sizeof detail,
                 "pen %s presents device key %s, which archive %s pinned for pen %s: one of "
                 "them is a clone",
                 serial, hex, b->name, owner);
        rc = refuse_key(pp, "key_reused", detail);
        return rc == PENLINK_OK ? 1 : rc;
    }
    return rc;
}

/* After the walk: a log that did not verify keeps what its last verified
 * head covered, and says where it broke (alarm "unverified" there). */
static int walk_outcome(push_pen *pp, const penlink_verify_report *vr)
{
    archive_backend *b = pp->to;
    penlink_push_report *r = pp->rep;
    if (vr->state != PENLINK_VERIFY_BROKEN)
        return pin_now(pp); /* the log verified: its key with it */
    if (!pp->verified) {
        /* nothing of the log verified: not even its key is taken, nor an alarm
         * (the source may be anyone's), and the destination is left as it was */
        pp->discard = 1;
        uint64_t same = r->records_same;
        memset(&r->records_new, 0, sizeof *r - offsetof(penlink_push_report, records_new));
        r->records_same = same;
        r->status = PENLINK_ERR_INTEGRITY;
        r->where_seq = vr->where_seq;
        snprintf(r->detail, sizeof r->detail,
                 "pen %.32s, seq %llu: %.180s. Its log in archive %.60s does not verify and no "
                 "signed head of it did: nothing of the pen was stored in archive %.60s",
                 vr->serial, (unsigned long long)vr->where_seq, vr->detail, pp->run->from->b->name,
                 b->name);
        return PENLINK_OK;
    }
    int rc = b->ops->rollback_to_savepoint(b);
    *r = pp->kept;
    pp->run_count = 0; /* conflicts after the head: dropped with their records */
    pp->pushed_next = pp->kept_next;
    r->status = PENLINK_ERR_INTEGRITY;
    r->where_seq = vr->where_seq;
    char kept[96] = "nothing of it was pushed";
    if (r->next_seq > 0)
        snprintf(kept, sizeof kept,
                 "what signed heads covered was pushed (records through seq %llu)",
                 (unsigned long long)r->next_seq - 1);
    snprintf(r->detail, sizeof r->detail,
             "pen %s, seq %llu: %.230s. Its log in archive %.100s does not verify there: %s, "
             "nothing after it",
             vr->serial, (unsigned long long)vr->where_seq, vr->detail, pp->run->from->b->name,
             kept);
    char detail[512];
    snprintf(detail, sizeof detail, "a push from archive %.160s refused at seq %llu: %s",
             pp->run->from->b->name, (unsigned long long)vr->where_seq, vr->detail);
    if (rc == PENLINK_OK)
        rc = push_alarm(pp, "unverified", vr->where_seq, 0, detail, pc_wall_ms());
    return rc;
}

static int push_pen_into(push_run *run, push_pen *pp, int64_t src_device, const char *serial,
                         const uint8_t *key, uint64_t first_from)
{
    archive_backend *b = pp->to;
    uint64_t next = 0;
    int have = 0;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = pen_row(pp, serial);
    if (rc != PENLINK_OK)
        return rc;
    rc = hold(pp, serial);
    if (rc == PENLINK_OK) {
        int refused = check_key(pp, serial, key);
        if (refused != 0)
            return refused < 0 ? refused : PENLINK_OK; /* committed by the caller */
    }
    if (rc == PENLINK_OK)
        rc = b->ops->next_seq(b, pp->device, &next, &have);
    pp->to_next = have ? next : 0;
    if (rc == PENLINK_OK)
        rc = b->ops->pull_begin(b, pp->device, first_from, pc_wall_ms(), &pp->pull);
    if (rc == PENLINK_OK)
        rc = copy_history(pp, serial);
    if (rc == PENLINK_OK)
        rc = hold_replacements(pp, serial, key);
    /* the walk's failure keeps what came before it */
    if (rc == PENLINK_OK)
        rc = b->ops->savepoint(b);
    pp->kept = *pp->rep;
    if (rc != PENLINK_OK)
        return rc;
    archive_walk_hooks hooks = { on_chunk, on_head, pp };
    penlink_verify_report vr;
    archive_backend *src = run->from->b;
    rc = archive_walk_pen(run->w, src, src_device, serial, key, first_from, &hooks, &vr);
    if (rc == PENLINK_OK && vr.state != PENLINK_VERIFY_BROKEN)
        rc = flush_conflicts(pp);
    /* replacements after the last head pushed: recorded once the log verified */
    if (rc == PENLINK_OK && vr.state != PENLINK_VERIFY_BROKEN)
        rc = push_replacements(pp, NULL);
    if (rc == PENLINK_OK)
        rc = walk_outcome(pp, &vr);
    if (rc == PENLINK_OK && pp->rep->conflicts && pp->rep->status == PENLINK_OK) {
        pp->rep->status = PENLINK_ERR_INTEGRITY;
        snprintf(pp->rep->detail, sizeof pp->rep->detail,
                 "%llu records of pen %s in archive %.120s differ from the ones archive %.120s "
                 "holds: the two logs fork; both kept, alarm conflict raised there%s",
                 (unsigned long long)pp->rep->conflicts, serial, src->name, b->name,
                 pp->fork_tail ? "; the records after them continue the other log and were "
                                 "not pushed (they stay in the source)"
                               : "");
    }
    if (rc == PENLINK_OK && !pp->discard) {
        penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
        snprintf(res.serial, sizeof res.serial, "%s", serial);
        res.from_seq = first_from;
        res.next_seq = pp->rep->next_seq;
        res.records_new = pp->rep->records_new;
        res.records_dup = pp->rep->records_same;
        res.conflicts = pp->rep->conflicts;
        char message[300];
        snprintf(message, sizeof message, "pushed from archive %s", src->name);
        rc = b->ops->pull_end(
            b, pp->pull, &res,
            pp->rep->status != PENLINK_OK ? (pp->rep->conflicts ? "conflict" : "failed") : "ok",
            message, pc_wall_ms());
    }
    return rc;
}

static int push_one(void *u, int64_t device, const char *serial, const uint8_t *key,
                    uint64_t first_from)
{
    push_run *run = u;
    archive_backend *b = run->to->b;
    penlink_push_report rep;
    memset(&rep, 0, sizeof rep);
    snprintf(rep.serial, sizeof rep.serial, "%s", serial);
    push_pen pp;
    memset(&pp, 0, sizeof pp);
    pp.run = run;
    pp.to = b;
    pp.rep = &rep;
    int rc = push_pen_into(run, &pp, device, serial, key, first_from);
    /* a push that found nothing new leaves the destination as it was */
    if (rc == PENLINK_OK && !pp.discard && (news(&rep) > 0 || pp.committed))
        rc = b->ops->commit(b);
    else
        b->ops->rollback(b);
    held_free(&pp.h);
    if (rc != PENLINK_OK) {
        run->st = rc;
        return 1;
    }
    if (rep.status != PENLINK_OK && run->refused++ == 0)
        snprintf(run->first, sizeof run->first, "%s", rep.detail);
    if (run->cb && run->cb(run->user, &rep) != 0) {
        run->st = PENLINK_ERR_CANCELLED;
        return 1;
    }
    return 0;
}

static int keep_device(void *u, const penlink_archive_device *d)
{
    push_run *run = u;
    if (pc_grow(&run->devs, &run->cap_devs, run->n_devs + 1, sizeof *run->devs) != 0)
        return 1;
    run->devs[run->n_devs++] = *d;
    return 0;
}

int penlink_archive_push(penlink_archive *from, penlink_archive *to, const char *serial,
                         int (*cb)(void *user, const penlink_push_report *r), void *user)
{
    if (!from || !to)
        return PENLINK_ERR_INVALID_ARG;
    penlink_ctx *ctx = to->ctx;
    penlink_enter(ctx);
    if (from == to || strcmp(from->b->name, to->b->name) == 0)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "push: archive %s into itself: name another archive to push to",
                            to->b->name);
    push_run run;
    memset(&run, 0, sizeof run);
    run.from = from;
    run.to = to;
    run.cb = cb;
    run.user = user;
    run.have = malloc(PUSH_WINDOW * sizeof *run.have);
    int rc = run.have ? archive_walker_new(&run.w) : PENLINK_ERR_NO_MEM;
    if (rc == PENLINK_OK)
        archive_walker_set_work(run.w, "push");
    if (rc == PENLINK_OK)
        rc = from->b->ops->devices(from->b, keep_device, &run);
    if (rc == PENLINK_ERR_CANCELLED)
        rc = PENLINK_ERR_NO_MEM;
    if (rc == PENLINK_ERR_NO_MEM)
        penlink_fail(ctx, rc, "push: out of memory");
    if (rc == PENLINK_OK)
        rc = from->b->ops->pens(from->b, serial, push_one, &run);
    if (rc == PENLINK_ERR_CANCELLED || (rc == PENLINK_OK && run.st != PENLINK_OK))
        rc = run.st;
    if (rc == PENLINK_OK && run.refused)
        rc = penlink_fail(ctx, PENLINK_ERR_INTEGRITY, "%s%s", run.first,
                          run.refused > 1 ? " (and more pens: see each pen's report)" : "");
    archive_walker_free(run.w);
    free(run.have);
    free(run.devs);
    return rc;
}
