/*
 * The lossless pull into the archive. The pull commits durably before it
 * acknowledges anything, so a kill, an unplug or a crash at any point
 * leaves the archive with a prefix of the pen's log and the pen with
 * everything after it; the next pull resumes from the archive's last seq.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "archive.h"
#include "clock.h"
#include "device.h"
#include "pl/auth.h"

#define COMMIT_EVERY 64 /* chunks per transaction during a pull */
/* From a pen that signs its log, at a verified head once this many chunks are open:
 * a crash costs re-pulling them, never losing them (nothing uncommitted is acked). */
#define COMMIT_SIGNED_EVERY 256

typedef struct pull_state {
    penlink_archive *ar;
    penlink_dev *dev;
    const penlink_pull_cb *user;
    penlink_archive_pull_result *res;
    penlink_info info;
    int64_t device, pull, chunk;
    int chunks_open;        /* chunks in the open transaction */
    int st;                 /* first storage error */
    uint64_t archived_next; /* seqs from here on cannot be in the archive yet */
    uint64_t conflict_seq;
    uint64_t run_first, run_count; /* conflicting records not yet raised as one alarm */
    int signed_log;                /* the pen signs its log: commit only at verified heads */
    penlink_archive_pull_result committed; /* the counts as of the last commit */
    penlink_archive_pull_result kept;      /* ... as of the last savepoint (a verified head) */
    int have_kept;
    uint8_t anchor[PL_LINK_BYTES]; /* the link of the archived chain's end, at archived_next */
    int have_anchor;
    unsigned anchor_heads; /* heads met at archived_next */
    char why[512];         /* the detail of the storage failure in st */
} pull_state;

/* Stops the pull for the storage failure in ps->st, keeping its detail:
 * the pull replaces the context's message with its own ("stopped by the
 * chunk callback"), which would hide what the archive said. */
static int stop(pull_state *ps)
{
    if (!ps->why[0])
        snprintf(ps->why, sizeof ps->why, "%s", penlink_ctx_errmsg(ps->ar->ctx));
    return -1;
}

/* Raises the run of conflicting records as one alarm (seq, count). */
static int flush_conflicts(pull_state *ps)
{
    if (ps->run_count == 0 || ps->st != PENLINK_OK)
        return ps->st;
    archive_backend *b = ps->ar->b;
    char detail[200];
    snprintf(detail, sizeof detail,
             "records %llu..%llu arrived with content different from the archived ones (both "
             "kept: the archived records, and the chunk as received)",
             (unsigned long long)ps->run_first,
             (unsigned long long)(ps->run_first + ps->run_count - 1));
    ps->st = b->ops->alarm(b, ps->device, ps->pull, "conflict", ps->run_first, ps->run_count,
                           detail, pc_wall_ms());
    ps->run_count = 0;
    return ps->st;
}

/* Commits what the open transaction holds, durably, and opens the next.
 * The savepoint goes with the transaction whatever happens: after a failed
 * commit (a full disk) nothing it marked is kept, so the counts fall back to
 * the last commit's, not to the savepoint's. */
static int commit_open(pull_state *ps)
{
    archive_backend *b = ps->ar->b;
    ps->have_kept = 0;
    ps->st = b->ops->commit(b);
    if (ps->st != PENLINK_OK)
        return stop(ps);
    ps->chunks_open = 0;
    ps->committed = *ps->res;
    ps->st = b->ops->begin(b);
    return ps->st == PENLINK_OK ? 0 : stop(ps);
}

static int on_chunk(void *u, const penlink_chunk *c)
{
    pull_state *ps = u;
    archive_backend *b = ps->ar->b;
    if (flush_conflicts(ps) != PENLINK_OK)
        return stop(ps);
    if (!ps->signed_log && ps->chunks_open >= COMMIT_EVERY && commit_open(ps) != 0)
        return stop(ps);
    ps->st = b->ops->chunk(b, ps->device, ps->pull, c, pc_wall_ms(), &ps->chunk, NULL);
    ps->chunks_open++;
    ps->res->chunks++;
    return ps->st == PENLINK_OK ? 0 : stop(ps);
}

static int store_record(pull_state *ps, const penlink_record *r, int overlap)
{
    archive_backend *b = ps->ar->b;
    int outcome = REC_NEW;
    /* above everything archived before and everything stored by this pull */
    int fresh = !overlap && r->seq >= ps->archived_next && r->seq >= ps->res->next_seq;
    ps->st = b->ops->record(b, ps->device, ps->chunk, r, fresh, &outcome);
    if (ps->st != PENLINK_OK)
        return stop(ps);
    if (outcome == REC_NEW)
        ps->res->records_new++;
    else if (outcome == REC_SAME)
        ps->res->records_dup++;
    if (outcome == REC_CONFLICT) {
        if (ps->res->conflicts++ == 0)
            ps->conflict_seq = r->seq;
        if (ps->run_count && r->seq != ps->run_first + ps->run_count &&
            flush_conflicts(ps) != PENLINK_OK)
            return stop(ps);
        if (ps->run_count++ == 0)
            ps->run_first = r->seq;
    }
    if (r->kind == PENLINK_REC_LOG_OVERFLOW && outcome == REC_NEW)
        ps->res->overflows++;
    if (!overlap)
        ps->res->next_seq = r->seq + 1;
    return 0;
}

static int on_record(void *u, const penlink_record *r)
{
    return store_record(u, r, 0);
}

/* Records of the first chunk before the pull's start: archived already, so
 * each must equal its archived copy (a pen whose log was reset, restored or
 * replaced under the same serial does not); one missing is stored. */
static int on_overlap(void *u, const penlink_record *r)
{
    return store_record(u, r, 1);
}

/* A verified signed head: store it; everything it covers may now be
 * committed, which happens every COMMIT_SIGNED_EVERY chunks (and at the end). A later
 * failure rolls back to the last commit: what it drops was never acknowledged,
 * so the pen still holds it and the next pull fetches it again. */
static int on_head(void *u, const penlink_head *h)
{
    pull_state *ps = u;
    archive_backend *b = ps->ar->b;
    if (flush_conflicts(ps) != PENLINK_OK)
        return stop(ps);
    ps->st = b->ops->head(b, ps->device, ps->pull, h, pc_wall_ms());
    if (ps->st != PENLINK_OK)
        return stop(ps);
    if (ps->chunks_open >= COMMIT_SIGNED_EVERY)
        return commit_open(ps);
    /* kept even if a later reply fails: the head covers it */
    ps->st = b->ops->savepoint(b);
    if (ps->st != PENLINK_OK)
        return stop(ps);
    ps->kept = *ps->res;
    ps->have_kept = 1;
    return 0;
}

/* Records the pen confirmed gone: recorded with the records around them, so
 * the acknowledgement that covers them is backed by the alarm. */
static int on_gap(void *u, uint64_t first, uint64_t count, uint64_t acked)
{
    pull_state *ps = u;
    archive_backend *b = ps->ar->b;
    char detail[240];
    unsigned long long a = (unsigned long long)first, z = (unsigned long long)(first + count - 1);
    if (flush_conflicts(ps) != PENLINK_OK)
        return stop(ps);
    if (first + count <= acked)
        snprintf(detail, sizeof detail,
                 "records %llu..%llu are no longer on the pen: they were acknowledged before (by "
                 "another archive or host) and never reached this archive",
                 a, z);
    else if (first >= acked)
        snprintf(detail, sizeof detail,
                 "records %llu..%llu are no longer on the pen, which never had them "
                 "acknowledged: they were dropped before anyone pulled them (log overflow)",
                 a, z);
    else
        snprintf(detail, sizeof detail,
                 "records %llu..%llu are no longer on the pen: those below %llu were acknowledged "
                 "before by another archive or host, the rest were dropped before anyone pulled "
                 "them (log overflow)",
                 a, z, (unsigned long long)acked);
    ps->st = b->ops->alarm(b, ps->device, ps->pull, "gap", first, count, detail, pc_wall_ms());
    if (ps->st != PENLINK_OK)
        return stop(ps);
    ps->res->gap += count;
    ps->res->next_seq = first + count;
    return 0;
}

static void on_progress(void *u, const penlink_progress *p)
{
    pull_state *ps = u;
    if (ps->user && ps->user->on_progress)
        ps->user->on_progress(ps->user->user, p);
}

typedef struct last_rev {
    int have;
    uint32_t rev;
} last_rev;

static int take_last(void *u, const penlink_config_entry *e)
{
    last_rev *l = u;
    l->have = 1;
    l->rev = e->config.revision;
    return 0;
}

static int stop_at_first(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                         const uint8_t *sig, size_t sig_len)
{
    (void)next_seq, (void)link, (void)link_len, (void)sig, (void)sig_len;
    *(int *)u = 1;
    return 1;
}

/* The link of the verified heads at the end of the archived log: where the
 * pen's chain must go on from. A head of a reply that sent no chunk names the
 * pen's newest sealed link, which may end below (records not sealed yet, or a
 * copy of the pen pulled alongside): when the heads there disagree, none is
 * taken, and the records sent again are still compared one by one. */
static int find_anchor(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                       const uint8_t *sig, size_t sig_len)
{
    pull_state *ps = u;
    (void)sig, (void)sig_len;
    if (next_seq != ps->archived_next || link_len != PL_LINK_BYTES)
        return 0;
    if (ps->anchor_heads++ == 0) {
        memcpy(ps->anchor, link, PL_LINK_BYTES);
        ps->have_anchor = 1;
    } else if (memcmp(ps->anchor, link, PL_LINK_BYTES) != 0) {
        ps->have_anchor = 0;
        return 1; /* ambiguous: stop */
    }
    return 0;
}

/*
 * What the archive already knows of the pen must hold before anything is
 * pulled: its pinned key, that it signs if it signed before, and that no
 * other serial carries its key. Sets *why (an alarm kind) and a message on
 * failure; the caller records the alarm.
 */
static int check_pinning(pull_state *ps, int pinned, const char **why, int *retired, char *detail,
                         size_t cap)
{
    archive_backend *b = ps->ar->b;
    const penlink_info *info = &ps->info;
    char hex[65] = "";
    *why = NULL;
    if (info->has_device_key)
        penlink_key_to_hex(info->device_key, hex);
    /* a key replaced on purpose (penlink keys replace) is the one in force now,
     * and the keys it replaced are no longer accepted */
    archive_key_history h = { .probe = info->has_device_key ? info->device_key : NULL };
    int rc = b->ops->key_replacements(b, info->serial, archive_take_replacement, &h);
    if (rc != PENLINK_OK)
        return rc;
    if (h.n > 0 && pinned != KEY_NONE)
        pinned = info->has_device_key && memcmp(info->device_key, h.current, PL_KEY_BYTES) == 0
                     ? KEY_SAME
                     : KEY_CHANGED;
    if (pinned == KEY_CHANGED && h.probe_was_replaced) {
        char when[32];
        time_t t = (time_t)(h.probe_replaced_ms / 1000);
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d", gmtime_r(&t, &tm));
        *why = "key_changed";
        *retired = 1;
        snprintf(detail, cap,
                 "the pen presented device key %s, which was replaced on %s (penlink keys "
                 "replace) and is no longer pen %s's: the old board back, or a copy of it; "
                 "nothing was pulled",
                 hex, when, info->serial);
        return PENLINK_OK;
    }
    if (pinned == KEY_CHANGED) {
        *why = "key_changed";
        snprintf(detail, cap,
                 "the pen presented %s%s, not the key pinned for serial %s: a cloned or replaced "
                 "pen; nothing was pulled",
                 info->has_device_key ? "device key " : "no device key", hex, info->serial);
        return PENLINK_OK;
    }
    if (pinned == KEY_NONE)
        return PENLINK_OK;
    if (!(info->features & PENLINK_FEATURE_SIGNED_CHUNKS)) {
        int signed_before = 0;
        rc = b->ops->heads(b, ps->device, stop_at_first, &signed_before);
        if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED)
            return rc;
        if (signed_before) {
            *why = "signing_dropped";
            snprintf(detail, cap,
                     "the pen %s signed its log before, and now does not announce it (its "
                     "firmware was changed, or another device presents its key): nothing was "
                     "pulled",
                     info->serial);
            return PENLINK_OK;
        }
    }
    char owner[65];
    rc = archive_key_owner(b, ps->device, info->serial, info->device_key, owner, sizeof owner);
    if (rc != PENLINK_OK)
        return rc;
    if (owner[0]) {
        *why = "key_reused";
        snprintf(detail, cap,
                 "the pen %s presents device key %s, which the archive pinned for pen %s: one "
                 "of them is a clone; nothing was pulled",
                 info->serial, hex, owner);
    }
    return PENLINK_OK;
}

/*
 * Where a pull of a pen the archive holds records of starts (protocol.md §5,
 * "The host's pull"): at the archive's next seq, unless the pen does not sign
 * its log and still holds records below it that it was never told it may
 * forget (log_acked_seq below the archive's next seq). Those are asked for
 * again, from the higher of log_acked_seq and log_first_seq, and compared with
 * the archived copies: an acknowledgement then covers only records this pull
 * received and checked. Without it a second unsigned pen under the same serial
 * (nothing but the serial tells them apart) would have its own records below
 * the archive's next seq acknowledged unseen. A pen whose acknowledged seq is
 * the archive's next seq (the usual case) is asked for nothing again. A
 * signing pen goes on from the archived chain's end: its chain and pinned key
 * bind what it holds to what is archived.
 */
static uint64_t resume_seq(const penlink_info *info, uint64_t next, int signed_log)
{
    uint64_t held =
        info->log_acked_seq > info->log_first_seq ? info->log_acked_seq : info->log_first_seq;
    if (signed_log || held >= next)
        return next;
    return held;
}

/*
 * Step 1, one transaction: the device row, its pinned key and the checks on
 * it, the pull row, the configuration in force. *from gets the first seq to
 * ask for. A refused pen gets its alarm committed and PENLINK_ERR_INTEGRITY.
 */
static int pull_prepare(pull_state *ps, const penlink_config *cfg, uint64_t *from)
{
    archive_backend *b = ps->ar->b;
    const penlink_info *info = &ps->info;
    uint64_t next = 0;
    int have = 0, pinned = KEY_NONE, retired = 0;
    const char *why = NULL;
    char detail[400];
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->device(b, info, pc_wall_ms(), &ps->device);
    if (rc == PENLINK_OK)
        rc =
            b->ops->pin_key(b, ps->device, info->has_device_key ? info->device_key : NULL, &pinned);
    if (rc == PENLINK_OK)
        rc = check_pinning(ps, pinned, &why, &retired, detail, sizeof detail);
    if (rc == PENLINK_OK && why) {
        rc = b->ops->alarm(b, ps->device, 0, why, info->log_first_seq, 0, detail, pc_wall_ms());
        rc = archive_end_txn(b, rc);
        if (rc != PENLINK_OK)
            return rc;
        return penlink_fail(ps->ar->ctx, PENLINK_ERR_INTEGRITY,
                            "%s: %s. The alarm (%s) is recorded; nothing on the pen was "
                            "acknowledged%s",
                            info->serial, detail, why,
                            strcmp(why, "key_changed") == 0 && !retired
                                ? ". If this pen came back from repair with a new device key, "
                                  "check where it came from, then record the new key with "
                                  "'penlink keys replace --pen SERIAL' and pull again"
                            : retired ? ". A replaced key is never taken back (penlink keys "
                                        "replace refuses it too): keep this pen apart and "
                                        "report it"
                                      : "");
    }
    ps->signed_log = (info->features & PENLINK_FEATURE_SIGNED_CHUNKS) != 0;
    if (rc == PENLINK_OK)
        rc = b->ops->next_seq(b, ps->device, &next, &have);
    /* A pen seen for the first time is pulled from its oldest record; but records
     * it dropped before anyone acknowledged them (between log_acked_seq and
     * log_first_seq) were lost, not archived elsewhere: ask from there, so the
     * pen's own words record them as a gap. */
    if (have)
        *from = resume_seq(info, next, ps->signed_log);
    else if (info->log_acked_seq < info->log_first_seq)
        *from = info->log_acked_seq;
    else
        *from = info->log_first_seq;
    ps->archived_next = have ? next : 0;
    if (rc == PENLINK_OK && have && ps->signed_log) {
        rc = b->ops->heads(b, ps->device, find_anchor, ps);
        if (rc == PENLINK_ERR_CANCELLED) /* stopped at heads that disagree */
            rc = PENLINK_OK;
    }
    if (rc == PENLINK_OK)
        rc = b->ops->pull_begin(b, ps->device, *from, pc_wall_ms(), &ps->pull);
    if (rc == PENLINK_OK && cfg) {
        /* the configuration in force, once per revision: the audit's limits */
        last_rev l = { 0, 0 };
        rc = b->ops->config_history(b, info->serial, take_last, &l);
        if (rc == PENLINK_OK && (!l.have || l.rev != cfg->revision)) {
            char user[64], host[256];
            archive_who(user, sizeof user, host, sizeof host);
            rc = b->ops->config_log(b, info->serial, "read", user, host, NULL, cfg, pc_wall_ms());
        }
    }
    return archive_end_txn(b, rc);
}

/* A failed pull's message, and what the archive holds of the pen after it
 * (the pull's own words cannot know: a signing pen's records after its last
 * verified head are dropped here). */
static void kept_message(penlink_archive *ar, const penlink_archive_pull_result *res, char *out,
                         size_t cap)
{
    const char *why = penlink_ctx_errmsg(ar->ctx);
    size_t n = strlen(why);
    while (n > 0 && (why[n - 1] == '.' || why[n - 1] == ' '))
        n--;
    if (res->next_seq > res->from_seq)
        snprintf(out, cap, "%.*s. This pull archived the records through seq %llu", (int)n, why,
                 (unsigned long long)res->next_seq - 1);
    else
        snprintf(out, cap, "%.*s. This pull archived no record", (int)n, why);
}

/* Step 3, one transaction: the alarm a failed pull raised, and the pull's row. */
static int pull_record_outcome(pull_state *ps, int pull_rc, const char *message)
{
    archive_backend *b = ps->ar->b;
    penlink_dev *d = ps->dev;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK && pull_rc != PENLINK_OK && d->alarm[0])
        rc = b->ops->alarm(b, ps->device, ps->pull, d->alarm, d->alarm_seq, d->alarm_count, message,
                           pc_wall_ms());
    if (rc == PENLINK_OK)
        rc = b->ops->pull_end(b, ps->pull, ps->res,
                              pull_rc != PENLINK_OK ? "failed"
                              : ps->res->conflicts  ? "conflict"
                                                    : "ok",
                              message, pc_wall_ms());
    return archive_end_txn(b, rc);
}

/*
 * Step 4: the acknowledgement, the one place where the pen is told it may
 * forget. Everything from the first seq asked for through res->next_seq - 1
 * is committed or recorded as a gap the pen confirmed (pull.c never moves
 * next_seq over anything else), so that is what is acknowledged. A pen that
 * answers with more than it was told raises alarm "ack_mismatch".
 */
static int pull_acknowledge(pull_state *ps, uint64_t from, int have)
{
    penlink_archive_pull_result *res = ps->res;
    archive_backend *b = ps->ar->b;
    res->acked_seq = ps->info.log_acked_seq;
    if (res->next_seq == 0 || res->next_seq <= ps->info.log_acked_seq ||
        (res->next_seq == from && !have))
        return PENLINK_OK; /* nothing archived that the pen does not know acknowledged */
    uint64_t acked = 0;
    int rc = penlink_dev_ack(ps->dev, res->next_seq - 1, &acked);
    if (rc == PENLINK_OK) {
        res->acked_seq = acked;
        return PENLINK_OK;
    }
    if (rc == PENLINK_ERR_INVALID_ARG) {
        /* the seq came from the pen's own chunks: a pen that refuses it
         * contradicts itself; nothing was acknowledged, the records stay on it */
        char said[256];
        snprintf(said, sizeof said, "%s", penlink_ctx_errmsg(ps->ar->ctx));
        return penlink_fail(ps->ar->ctx, PENLINK_ERR_DEVICE,
                            "the pen refused to acknowledge the records it had just sent "
                            "(through seq %llu): they are archived and stay on the pen (%s)",
                            (unsigned long long)res->next_seq - 1, said);
    }
    if (ps->dev->ack_sent &&
        (rc == PENLINK_ERR_TIMEOUT || rc == PENLINK_ERR_GONE || rc == PENLINK_ERR_CANCELLED ||
         rc == PENLINK_ERR_IO || rc == PENLINK_ERR_PROTOCOL))
        res->ack_unconfirmed = res->next_seq; /* sent; whether the pen took it, unknown */
    if (rc == PENLINK_ERR_INTEGRITY) {
        char message[512];
        snprintf(message, sizeof message, "%s", penlink_ctx_errmsg(ps->ar->ctx));
        int st = b->ops->begin(b);
        if (st == PENLINK_OK)
            st = b->ops->alarm(b, ps->device, ps->pull, "ack_mismatch", res->next_seq,
                               acked > res->next_seq ? acked - res->next_seq : 0, message,
                               pc_wall_ms());
        st = archive_end_txn(b, st);
        penlink_fail(ps->ar->ctx, rc, "%s", message);
        if (st != PENLINK_OK)
            return st;
    }
    return rc;
}

/* Step 2's pull: the records, committed as they come (at verified heads from
 * a signing pen). The pull's status: the storage's when it failed. */
static int pull_records(pull_state *ps, uint64_t from, uint64_t *retries)
{
    penlink_pull_cb pcb = { .size = sizeof(penlink_pull_cb),
                            .on_chunk = on_chunk,
                            .on_record = on_record,
                            .on_progress = on_progress,
                            .user = ps,
                            .on_overlap = on_overlap,
                            .on_head = on_head,
                            .on_gap = on_gap,
                            .after_link = ps->have_anchor ? ps->anchor : NULL };
    penlink_pull_result pr = PENLINK_PULL_RESULT_INIT;
    int pull_rc = penlink_dev_pull(ps->dev, from, &pcb, &pr);
    flush_conflicts(ps);
    if (ps->st != PENLINK_OK) { /* the storage failed, not the pen */
        pull_rc = ps->st;
        if (ps->why[0])
            penlink_fail(ps->ar->ctx, ps->st, "%s", ps->why);
    }
    *retries = pr.retries;
    return pull_rc;
}

/* Step 2's end: whatever is kept is committed, durably, before anything else
 * (from a pen that signs its log, only what a verified head covered). The
 * pull's status, in the commit's words when only the commit failed; for a
 * failed pull, @p message says what was kept. */
static int pull_keep(pull_state *ps, int pull_rc, uint64_t retries, char *message, size_t cap)
{
    penlink_archive *ar = ps->ar;
    archive_backend *b = ar->b;
    penlink_archive_pull_result *res = ps->res;
    /* the failure's own words: what the rollback and commit below say (a
     * server that went away meanwhile) comes after it */
    char failed[512] = "";
    if (pull_rc != PENLINK_OK)
        snprintf(failed, sizeof failed, "%s",
                 *penlink_ctx_errmsg(ar->ctx)       ? penlink_ctx_errmsg(ar->ctx)
                 : pull_rc == PENLINK_ERR_CANCELLED ? "the pull was interrupted"
                                                    : penlink_strerror(pull_rc));
    int rc = PENLINK_OK;
    if (ps->signed_log && pull_rc != PENLINK_OK) {
        /* from a pen that signs its log, only what a verified head covered is kept */
        rc = b->ops->rollback_to_savepoint(b);
        if (ps->have_kept)
            *res = ps->kept;
        else
            *res = ps->committed;
    }
    /* whatever is kept is committed, durably, before anything else */
    if (rc == PENLINK_OK)
        rc = b->ops->commit(b);
    if (rc != PENLINK_OK) {
        b->ops->rollback(b);
        *res = ps->committed; /* only what an earlier commit holds is archived */
        if (pull_rc == PENLINK_OK)
            pull_rc = rc; /* a failed pull, in the commit's words (a full disk) */
    }
    res->retries = retries;
    if (failed[0])
        penlink_fail(ar->ctx, pull_rc, "%s", failed);
    if (pull_rc != PENLINK_OK)
        kept_message(ar, res, message, cap);
    return pull_rc;
}

/* The pull into the archive, into a result of this library's size
 * (penlink_archive_pull copies what the caller's size covers). */
static int archive_pull(penlink_archive *ar, penlink_dev *dev, const penlink_pull_cb *cb,
                        penlink_archive_pull_result *res)
{
    memset(res, 0, sizeof *res);
    res->size = sizeof *res;
    archive_backend *b = ar->b;
    pull_state ps = { .ar = ar, .dev = dev, .user = cb, .res = res, .info = PENLINK_INFO_INIT };
    penlink_config cfg = PENLINK_CONFIG_INIT;
    int have_cfg = 0;
    int rc = penlink_dev_info(dev, &ps.info);
    if (rc == PENLINK_OK && (ps.info.features & PENLINK_FEATURE_CONFIG)) {
        rc = penlink_dev_config_get(dev, &cfg);
        have_cfg = 1;
    }
    if (rc != PENLINK_OK)
        return rc;
    snprintf(res->serial, sizeof res->serial, "%s", ps.info.serial);
    res->acked_seq = ps.info.log_acked_seq;
    res->pen_next_seq = ps.info.log_next_seq;

    /* step 1: who the pen is, where to start */
    uint64_t from = 0;
    rc = pull_prepare(&ps, have_cfg ? &cfg : NULL, &from);
    if (rc != PENLINK_OK)
        return rc;
    int have = ps.archived_next > 0;
    res->from_seq = from;
    res->next_seq = from;
    ps.committed = *res;
    ps.kept = *res;

    /* step 2: the records, committed as they come (at verified heads from a signing pen) */
    rc = b->ops->begin(b);
    if (rc != PENLINK_OK)
        return rc;
    uint64_t retries = 0;
    int pull_rc = pull_records(&ps, from, &retries);
    char message[640] = "";
    pull_rc = pull_keep(&ps, pull_rc, retries, message, sizeof message);

    /* step 3: what happened, on record */
    rc = pull_record_outcome(&ps, pull_rc, message);
    if (pull_rc != PENLINK_OK) {
        penlink_fail(ar->ctx, pull_rc, "%s", message);
        return pull_rc;
    }
    if (rc != PENLINK_OK)
        return rc;

    /* A pen that sent other content for archived records contradicts itself:
     * it is told nothing (protocol.md §5 rule 3), and keeps its log for a look. */
    if (res->conflicts) {
        res->acked_seq = ps.info.log_acked_seq;
        return penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                            "%llu records of %s arrived with content different from the archived "
                            "ones (first: seq %llu); both are kept, the alarm is recorded and "
                            "nothing was acknowledged",
                            (unsigned long long)res->conflicts, res->serial,
                            (unsigned long long)ps.conflict_seq);
    }
    /* step 4: only now, with everything on disk, may the pen forget */
    return pull_acknowledge(&ps, from, have);
}

int penlink_archive_pull(penlink_archive *ar, penlink_dev *dev, const penlink_pull_cb *cb,
                         penlink_archive_pull_result *res)
{
    if (!ar || !dev || !PL_SIZED_OK(cb, PL_PULL_CB_SIZE_V1) ||
        !PL_SIZED_OK(res, PL_ARCHIVE_PULL_RESULT_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    penlink_archive_pull_result all = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    int rc = archive_pull(ar, dev, cb, &all);
    if (res)
        pl_sized_copy(res, &all, sizeof all);
    return rc;
}
