/*
 * The archive's public face and the lossless pull. Storage goes through the
 * backend table (archive.h). The pull commits durably before it
 * acknowledges anything, so a kill, an unplug or a crash at any point
 * leaves the archive with a prefix of the pen's log and the pen with
 * everything after it; the next pull resumes from the archive's last seq.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"

#define COMMIT_EVERY 64 /* chunks per transaction during a pull */
/* From a pen that signs its log, at a verified head once this many chunks are open:
 * a crash costs re-pulling them, never losing them (nothing uncommitted is acked). */
#define COMMIT_SIGNED_EVERY 256

int64_t archive_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Who and where, for the audit trail: the OS user and the host name. */
static void who(char *user, size_t ucap, char *host, size_t hcap)
{
    struct passwd *pw = getpwuid(geteuid());
    snprintf(user, ucap, "%s", pw && pw->pw_name ? pw->pw_name : "");
    host[0] = '\0';
    gethostname(host, hcap - 1);
    host[hcap - 1] = '\0';
}

int penlink_archive_default_path(char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && *xdg)
        n = snprintf(buf, cap, "%s/penlink/archive.db", xdg);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.local/share/penlink/archive.db", home);
    else
        return PENLINK_ERR_NOT_FOUND;
    return n > 0 && (size_t)n < cap ? PENLINK_OK : PENLINK_ERR_INVALID_ARG;
}

/* mkdir -p of the directory part of @p path. */
static int make_parent(penlink_ctx *ctx, const char *path)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return PENLINK_OK;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return penlink_fail(ctx, PENLINK_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
        *p = '/';
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return penlink_fail(ctx, PENLINK_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    return PENLINK_OK;
}

/* NULL means the default path, written to @p buf. */
static int resolve_path(penlink_ctx *ctx, const char **path, char *buf, size_t cap)
{
    if (*path)
        return PENLINK_OK;
    if (penlink_archive_default_path(buf, cap) != PENLINK_OK)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "no archive path: set XDG_DATA_HOME or HOME, or give --archive");
    *path = buf;
    return PENLINK_OK;
}

/* A handle over the SQLite backend, for writing or (@p readonly) reading only. */
static int open_handle(penlink_ctx *ctx, const char *path, int readonly, penlink_archive **out)
{
    penlink_archive *ar = calloc(1, sizeof *ar);
    if (!ar)
        return PENLINK_ERR_NO_MEM;
    ar->ctx = ctx;
    int rc = archive_sqlite_open(ctx, path, readonly, &ar->b);
    if (rc != PENLINK_OK) {
        free(ar);
        return rc;
    }
    *out = ar;
    return PENLINK_OK;
}

int penlink_archive_open(penlink_ctx *ctx, const char *path, penlink_archive **out)
{
    char def[1024];
    if (!ctx || !out)
        return PENLINK_ERR_INVALID_ARG;
    *out = NULL;
    int rc = resolve_path(ctx, &path, def, sizeof def);
    if (rc == PENLINK_OK)
        rc = make_parent(ctx, path);
    return rc == PENLINK_OK ? open_handle(ctx, path, 0, out) : rc;
}

int penlink_archive_open_readonly(penlink_ctx *ctx, const char *path, penlink_archive **out)
{
    char def[1024];
    if (!ctx || !out)
        return PENLINK_ERR_INVALID_ARG;
    *out = NULL;
    int rc = resolve_path(ctx, &path, def, sizeof def);
    return rc == PENLINK_OK ? open_handle(ctx, path, 1, out) : rc;
}

int penlink_archive_open_existing(penlink_ctx *ctx, const char *path, penlink_archive **out)
{
    char def[1024];
    struct stat sb;
    if (!ctx || !out)
        return PENLINK_ERR_INVALID_ARG;
    *out = NULL;
    int rc = resolve_path(ctx, &path, def, sizeof def);
    if (rc != PENLINK_OK)
        return rc;
    if (stat(path, &sb) != 0)
        return penlink_fail(ctx, PENLINK_ERR_IO,
                            "archive %s: %s (pull a pen into it first, or give the right "
                            "--archive)",
                            path, strerror(errno));
    return penlink_archive_open(ctx, path, out);
}

void penlink_archive_close(penlink_archive *ar)
{
    if (!ar)
        return;
    ar->b->ops->close(ar->b);
    free(ar);
}

typedef struct pull_state {
    penlink_archive *ar;
    const penlink_pull_cb *user;
    penlink_archive_pull_result *res;
    int64_t device, pull, chunk;
    int chunks_open;        /* chunks in the open transaction */
    int st;                 /* first storage error */
    uint64_t archived_next; /* seqs from here on cannot be in the archive yet */
    uint64_t conflict_seq;
    uint64_t run_first, run_count; /* conflicting records not yet raised as one alarm */
    int signed_log;                /* the pen signs its log: commit only at verified heads */
    penlink_archive_pull_result committed; /* the counts as of the last commit */
} pull_state;

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
                           detail, archive_now_ms());
    ps->run_count = 0;
    return ps->st;
}

/* Ends a transaction: committed (durably) when @p rc is PENLINK_OK, else rolled back. */
static int end_txn(archive_backend *b, int rc)
{
    if (rc == PENLINK_OK)
        return b->ops->commit(b);
    b->ops->rollback(b);
    return rc;
}

/* Commits what the open transaction holds, durably, and opens the next. */
static int commit_open(pull_state *ps)
{
    archive_backend *b = ps->ar->b;
    ps->st = b->ops->commit(b);
    if (ps->st == PENLINK_OK)
        ps->st = b->ops->begin(b);
    if (ps->st != PENLINK_OK)
        return -1;
    ps->chunks_open = 0;
    ps->committed = *ps->res;
    return 0;
}

static int on_chunk(void *u, const penlink_chunk *c)
{
    pull_state *ps = u;
    archive_backend *b = ps->ar->b;
    if (flush_conflicts(ps) != PENLINK_OK)
        return -1;
    if (!ps->signed_log && ps->chunks_open >= COMMIT_EVERY && commit_open(ps) != 0)
        return -1;
    ps->st = b->ops->chunk(b, ps->device, ps->pull, c, archive_now_ms(), &ps->chunk);
    ps->chunks_open++;
    ps->res->chunks++;
    return ps->st == PENLINK_OK ? 0 : -1;
}

static int store_record(pull_state *ps, const penlink_record *r, int overlap)
{
    archive_backend *b = ps->ar->b;
    int outcome = REC_NEW;
    ps->st = b->ops->record(b, ps->device, ps->chunk, r, !overlap && r->seq >= ps->archived_next,
                            &outcome);
    if (ps->st != PENLINK_OK)
        return -1;
    if (outcome == REC_NEW)
        ps->res->records_new++;
    else if (outcome == REC_SAME)
        ps->res->records_dup++;
    if (outcome == REC_CONFLICT) {
        if (ps->res->conflicts++ == 0)
            ps->conflict_seq = r->seq;
        if (ps->run_count && r->seq != ps->run_first + ps->run_count &&
            flush_conflicts(ps) != PENLINK_OK)
            return -1;
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
        return -1;
    ps->st = b->ops->head(b, ps->device, ps->pull, h, archive_now_ms());
    if (ps->st != PENLINK_OK)
        return -1;
    return ps->chunks_open < COMMIT_SIGNED_EVERY ? 0 : commit_open(ps);
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

int penlink_archive_pull(penlink_archive *ar, penlink_dev *dev, const penlink_pull_cb *cb,
                         penlink_archive_pull_result *res)
{
    penlink_archive_pull_result local;
    if (!ar || !dev)
        return PENLINK_ERR_INVALID_ARG;
    if (!res)
        res = &local;
    memset(res, 0, sizeof *res);
    archive_backend *b = ar->b;
    penlink_info info;
    penlink_config cfg;
    int rc = penlink_dev_info(dev, &info);
    if (rc == PENLINK_OK)
        rc = penlink_dev_config_get(dev, &cfg);
    if (rc != PENLINK_OK)
        return rc;
    snprintf(res->serial, sizeof res->serial, "%s", info.serial);

    pull_state ps = { .ar = ar, .user = cb, .res = res };
    uint64_t next = 0;
    int have = 0;
    rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->device(b, &info, archive_now_ms(), &ps.device);
    int pinned = KEY_NONE;
    if (rc == PENLINK_OK)
        rc = b->ops->pin_key(b, ps.device, info.has_device_key ? info.device_key : NULL, &pinned);
    if (rc == PENLINK_OK && pinned == KEY_CHANGED) {
        char detail[320], hex[65] = "";
        if (info.has_device_key)
            penlink_key_hex(info.device_key, hex);
        snprintf(detail, sizeof detail,
                 "the pen presented %s%s, not the key pinned for serial %s: a cloned or replaced "
                 "pen; nothing was pulled",
                 info.has_device_key ? "device key " : "no device key",
                 info.has_device_key ? hex : "", info.serial);
        rc = b->ops->alarm(b, ps.device, 0, "key_changed", info.log_first_seq, 0, detail,
                           archive_now_ms());
        rc = end_txn(b, rc);
        if (rc != PENLINK_OK)
            return rc;
        return penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                            "%s: %s. The alarm is recorded; if the pen was legitimately "
                            "replaced, archive it under a new archive or serial",
                            info.serial, detail);
    }
    ps.signed_log = (info.features & PENLINK_FEATURE_SIGNED_CHUNKS) != 0;
    if (rc == PENLINK_OK)
        rc = b->ops->next_seq(b, ps.device, &next, &have);
    uint64_t from = have ? next : info.log_first_seq;
    ps.archived_next = have ? next : 0;
    if (rc == PENLINK_OK)
        rc = b->ops->pull_begin(b, ps.device, from, archive_now_ms(), &ps.pull);
    if (rc == PENLINK_OK) {
        /* the configuration in force, once per revision: the audit's limits */
        last_rev l = { 0, 0 };
        rc = b->ops->config_history(b, info.serial, take_last, &l);
        if (rc == PENLINK_OK && (!l.have || l.rev != cfg.revision)) {
            char user[64], host[256];
            who(user, sizeof user, host, sizeof host);
            rc = b->ops->config_log(b, info.serial, "read", user, host, NULL, &cfg,
                                    archive_now_ms());
        }
    }
    rc = end_txn(b, rc);
    if (rc != PENLINK_OK)
        return rc;

    res->from_seq = from;
    res->next_seq = from;
    ps.committed = *res;
    rc = b->ops->begin(b);
    if (rc != PENLINK_OK)
        return rc;
    penlink_pull_cb pcb = { .on_chunk = on_chunk,
                            .on_record = on_record,
                            .on_progress = on_progress,
                            .user = &ps,
                            .on_overlap = on_overlap,
                            .on_head = on_head };
    penlink_pull_result pr;
    int pull_rc = penlink_dev_pull(dev, from, &pcb, &pr);
    flush_conflicts(&ps);
    if (pull_rc != PENLINK_OK && ps.st != PENLINK_OK)
        pull_rc = ps.st; /* the storage failed, not the pen */
    else if (pull_rc == PENLINK_OK && ps.st != PENLINK_OK)
        pull_rc = ps.st;
    if (ps.st != PENLINK_OK) /* in the storage's words, not the callback's "stopped by" */
        penlink_fail(ar->ctx, ps.st, "%s", b->errmsg);
    if (ps.signed_log && pull_rc != PENLINK_OK) {
        /* from a pen that signs its log, only what a verified head covered and was
         * committed is kept */
        rc = b->ops->rollback(b);
        *res = ps.committed;
    } else {
        /* whatever arrived intact (from a signing pen: under its last, verified head)
         * is kept: commit it, durably, before anything else */
        rc = b->ops->commit(b);
    }
    if (rc != PENLINK_OK) {
        b->ops->rollback(b);
        *res = ps.committed; /* only what is durable is reported */
        if (pull_rc == PENLINK_OK)
            pull_rc = rc; /* a failed pull, in the commit's words (a full disk) */
    }
    res->gap = pr.gap;
    char message[256] = "";
    if (pull_rc != PENLINK_OK)
        snprintf(message, sizeof message, "%s", penlink_ctx_errmsg(ar->ctx));
    rc = b->ops->begin(b);
    if (rc == PENLINK_OK && ps.signed_log && pull_rc == PENLINK_ERR_INTEGRITY) {
        /* the pen's log failed its chain or signature: nothing of it was kept, the pen
         * was not acknowledged, and the audit reports this */
        rc = b->ops->alarm(b, ps.device, ps.pull, "unverified", res->next_seq, 0, message,
                           archive_now_ms());
    }
    if (rc == PENLINK_OK && pr.gap) {
        char detail[160];
        snprintf(detail, sizeof detail,
                 "records %llu..%llu were no longer on the pen (its log overflowed, or they "
                 "were acknowledged elsewhere)",
                 (unsigned long long)from, (unsigned long long)(from + pr.gap - 1));
        rc = b->ops->alarm(b, ps.device, ps.pull, "gap", from, pr.gap, detail, archive_now_ms());
    }
    if (rc == PENLINK_OK)
        rc = b->ops->pull_end(b, ps.pull, res,
                              pull_rc != PENLINK_OK ? "failed"
                              : res->conflicts      ? "conflict"
                                                    : "ok",
                              message, archive_now_ms());
    rc = end_txn(b, rc);
    if (pull_rc != PENLINK_OK) {
        penlink_fail(ar->ctx, pull_rc, "%s", message);
        return pull_rc;
    }
    if (rc != PENLINK_OK)
        return rc;
    /* only now, with everything on disk, may the pen forget */
    res->acked_seq = info.log_acked_seq;
    if (res->next_seq > from || (have && next > info.log_acked_seq)) {
        uint64_t through = res->next_seq - 1, acked = 0;
        if (res->next_seq > 0) {
            rc = penlink_dev_ack(dev, through, &acked);
            if (rc != PENLINK_OK)
                return rc;
            res->acked_seq = acked;
        }
    }
    if (res->conflicts)
        return penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                            "%llu records of %s arrived with content different from the archived "
                            "ones (first: seq %llu); both are kept and the alarm is recorded",
                            (unsigned long long)res->conflicts, res->serial,
                            (unsigned long long)ps.conflict_seq);
    return PENLINK_OK;
}

int archive_scan(penlink_archive *ar, const penlink_archive_filter *f, penlink_archive_record_cb cb,
                 archive_damage_cb bad, void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->scan(ar->b, f, cb, bad, user);
}

int penlink_archive_scan(penlink_archive *ar, const penlink_archive_filter *f,
                         penlink_archive_record_cb cb, void *user)
{
    return archive_scan(ar, f, cb, NULL, user);
}

int penlink_archive_alarms(penlink_archive *ar, const penlink_archive_filter *f,
                           int (*cb)(void *user, const penlink_alarm *a), void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->alarms(ar->b, f, cb, user);
}

int penlink_archive_log_config(penlink_archive *ar, const char *serial, const char *source,
                               const penlink_config *old_cfg, const penlink_config *new_cfg)
{
    if (!ar || !serial || !source || !new_cfg)
        return PENLINK_ERR_INVALID_ARG;
    char user[64], host[256];
    who(user, sizeof user, host, sizeof host);
    archive_backend *b = ar->b;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->config_log(b, serial, source, user, host, old_cfg, new_cfg, archive_now_ms());
    if (rc == PENLINK_OK)
        return b->ops->commit(b);
    b->ops->rollback(b);
    return rc;
}

int penlink_archive_log_config_write(penlink_archive *ar, const penlink_info *info,
                                     const penlink_config *old_cfg, const penlink_config *new_cfg)
{
    if (!ar || !info || !new_cfg)
        return PENLINK_ERR_INVALID_ARG;
    archive_backend *b = ar->b;
    int64_t device;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->device(b, info, archive_now_ms(), &device);
    rc = end_txn(b, rc);
    if (rc != PENLINK_OK)
        return rc;
    return penlink_archive_log_config(ar, info->serial, "written", old_cfg, new_cfg);
}

int penlink_archive_config_history(penlink_archive *ar, const char *serial,
                                   int (*cb)(void *user, const penlink_config_entry *e), void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->config_history(ar->b, serial, cb, user);
}

int penlink_archive_devices(penlink_archive *ar,
                            int (*cb)(void *user, const penlink_archive_device *d), void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->devices(ar->b, cb, user);
}
