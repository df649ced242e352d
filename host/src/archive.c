/*
 * The archive's public face and the lossless pull. Storage goes through the
 * backend table (archive.h). The pull commits durably before it
 * acknowledges anything, so a kill, an unplug or a crash at any point
 * leaves the archive with a prefix of the pen's log and the pen with
 * everything after it; the next pull resumes from the archive's last seq.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive.h"
#include "clock.h"
#include "device.h"
#include "fs.h"
#include "pl/auth.h"

#define ARCHIVE_DIR_MODE 0700 /* directories made for an archive: its owner's only */
#define COMMIT_EVERY 64       /* chunks per transaction during a pull */
/* From a pen that signs its log, at a verified head once this many chunks are open:
 * a crash costs re-pulling them, never losing them (nothing uncommitted is acked). */
#define COMMIT_SIGNED_EVERY 256

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
    if (!buf || cap == 0)
        return PENLINK_ERR_INVALID_ARG;
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
    char dir[PATH_MAX];
    if (pc_mkdir_parents(path, ARCHIVE_DIR_MODE, dir, sizeof dir) != 0)
        return penlink_fail(ctx, PENLINK_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    return PENLINK_OK;
}

/* NULL means $PENLINK_ARCHIVE, else the default path, written to @p buf. */
static int resolve_path(penlink_ctx *ctx, const char **path, char *buf, size_t cap)
{
    if (!*path && getenv("PENLINK_ARCHIVE") && *getenv("PENLINK_ARCHIVE"))
        *path = getenv("PENLINK_ARCHIVE");
    if (*path)
        return PENLINK_OK;
    if (penlink_archive_default_path(buf, cap) != PENLINK_OK)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "no archive path: set XDG_DATA_HOME or HOME, or give --archive");
    *path = buf;
    return PENLINK_OK;
}

/* A handle over the backend @p path names (a PostgreSQL server, else an
 * SQLite file), for writing or (@p readonly) reading only. @p create: a
 * server with no archive yet may be set up (a file is created by any
 * opening for writing). */
static int open_handle(penlink_ctx *ctx, const char *path, int readonly, int create,
                       penlink_archive **out)
{
    penlink_archive *ar = calloc(1, sizeof *ar);
    if (!ar)
        return PENLINK_ERR_NO_MEM;
    ar->ctx = ctx;
    int rc = archive_is_server(path) ? archive_pg_open(ctx, path, create, readonly, &ar->b)
                                     : archive_sqlite_open(ctx, path, readonly, &ar->b);
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
    if (rc == PENLINK_OK && !archive_is_server(path))
        rc = make_parent(ctx, path);
    return rc == PENLINK_OK ? open_handle(ctx, path, 0, 1, out) : rc;
}

int penlink_archive_open_readonly(penlink_ctx *ctx, const char *path, penlink_archive **out)
{
    char def[1024];
    if (!ctx || !out)
        return PENLINK_ERR_INVALID_ARG;
    *out = NULL;
    int rc = resolve_path(ctx, &path, def, sizeof def);
    return rc == PENLINK_OK ? open_handle(ctx, path, 1, 0, out) : rc;
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
    if (archive_is_server(path)) /* one with no archive in it is refused, not set up */
        return open_handle(ctx, path, 0, 0, out);
    if (stat(path, &sb) != 0)
        return penlink_fail(ctx, PENLINK_ERR_IO,
                            "archive %s: %s (pull a pen into it first, or give the right "
                            "--archive)",
                            path, strerror(errno));
    return penlink_archive_open(ctx, path, out);
}

int penlink_archive_writable(penlink_archive *ar, int *writable)
{
    if (!ar || !writable)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ar->ctx);
    *writable = ar->b->ops->writable(ar->b) ? 1 : 0;
    if (!*writable && !*penlink_ctx_errmsg(ar->ctx)) /* the backend may have said why */
        penlink_fail(ar->ctx, PENLINK_ERR_IO, "archive %s may not be written from here",
                     ar->b->name);
    return PENLINK_OK;
}

void penlink_archive_close(penlink_archive *ar)
{
    if (!ar)
        return;
    ar->b->ops->close(ar->b);
    free(ar->repl);
    free(ar);
}

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

/* Ends a transaction: committed (durably) when @p rc is PENLINK_OK, else rolled back. */
static int end_txn(archive_backend *b, int rc)
{
    if (rc == PENLINK_OK)
        return b->ops->commit(b);
    b->ops->rollback(b);
    return rc;
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

typedef struct key_owner {
    int64_t device;
    const char *serial_self; /* the pen being checked */
    const uint8_t *key;
    char serial[65];
} key_owner;

static int find_key_owner(void *u, int64_t device, const char *serial, const uint8_t *key,
                          uint64_t first_from)
{
    key_owner *k = u;
    (void)first_from;
    if (device != k->device && key && memcmp(key, k->key, PL_KEY_BYTES) == 0) {
        snprintf(k->serial, sizeof k->serial, "%s", serial);
        return 1;
    }
    return 0;
}

/* A replaced key of another pen, old or new, is that pen's as much as its pinned one. */
static int find_replaced_owner(void *u, const penlink_key_replacement *r)
{
    key_owner *k = u;
    if (strcmp(r->serial, k->serial_self) != 0 && (memcmp(r->old_key, k->key, PL_KEY_BYTES) == 0 ||
                                                   memcmp(r->new_key, k->key, PL_KEY_BYTES) == 0)) {
        snprintf(k->serial, sizeof k->serial, "%s", r->serial);
        return 1;
    }
    return 0;
}

int archive_key_owner(archive_backend *b, int64_t device, const char *self_serial,
                      const uint8_t *key, char *serial, size_t cap)
{
    key_owner k = { .device = device, .serial_self = self_serial, .key = key };
    serial[0] = '\0';
    if (!key)
        return PENLINK_OK;
    int rc = b->ops->pens(b, NULL, find_key_owner, &k);
    if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED)
        return rc;
    if (!k.serial[0]) {
        rc = b->ops->key_replacements(b, NULL, find_replaced_owner, &k);
        if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED)
            return rc;
    }
    snprintf(serial, cap, "%s", k.serial);
    return PENLINK_OK;
}

/* The key in force after a pen's replacements: the last one's new key. */
typedef struct key_history {
    int n;
    uint8_t current[32];
    const uint8_t *probe; /* a key to look for among the replaced ones */
    int probe_was_replaced;
    int64_t probe_replaced_ms;
} key_history;

static int take_replacement(void *u, const penlink_key_replacement *r)
{
    key_history *h = u;
    h->n++;
    memcpy(h->current, r->new_key, PL_KEY_BYTES);
    if (h->probe && memcmp(h->probe, r->old_key, PL_KEY_BYTES) == 0) {
        h->probe_was_replaced = 1;
        h->probe_replaced_ms = r->at_ms;
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
    key_history h = { .probe = info->has_device_key ? info->device_key : NULL };
    int rc = b->ops->key_replacements(b, info->serial, take_replacement, &h);
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
        rc = end_txn(b, rc);
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
            who(user, sizeof user, host, sizeof host);
            rc = b->ops->config_log(b, info->serial, "read", user, host, NULL, cfg, pc_wall_ms());
        }
    }
    return end_txn(b, rc);
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
    return end_txn(b, rc);
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
        st = end_txn(b, st);
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

int archive_scan(penlink_archive *ar, const penlink_archive_filter *f, penlink_archive_record_cb cb,
                 archive_damage_cb bad, void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    if (!PL_SIZED_OK(f, PL_ARCHIVE_FILTER_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->scan(ar->b, f, cb, bad, user);
}

int penlink_archive_scan(penlink_archive *ar, const penlink_archive_filter *f,
                         penlink_archive_record_cb cb, void *user)
{
    return archive_scan(ar, f, cb, NULL, user);
}

static int keep_replacement(void *u, const penlink_key_replacement *r)
{
    penlink_archive *ar = u;
    void *p = realloc(ar->repl, (ar->n_repl + 1) * sizeof *ar->repl);
    if (!p)
        return 1;
    ar->repl = p;
    ar->repl[ar->n_repl++] = *r;
    return 0;
}

int penlink_archive_alarms(penlink_archive *ar, const penlink_archive_filter *f,
                           penlink_alarm_cb cb, void *user)
{
    if (!ar || !cb || !PL_SIZED_OK(f, PL_ARCHIVE_FILTER_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    /* the replacements that may explain key_changed alarms, read now: the audit
     * asks about them while it scans (audit_key_change_explained) */
    ar->n_repl = 0;
    int rc = ar->b->ops->key_replacements(ar->b, f ? f->serial : NULL, keep_replacement, ar);
    if (rc == PENLINK_ERR_CANCELLED)
        return penlink_fail(ar->ctx, PENLINK_ERR_NO_MEM, "no memory for the key replacements");
    if (rc != PENLINK_OK)
        return rc;
    return ar->b->ops->alarms(ar->b, f, cb, user);
}

int penlink_archive_log_config(penlink_archive *ar, const char *serial, const char *source,
                               const penlink_config *old_cfg, const penlink_config *new_cfg)
{
    if (!ar || !serial || !source || !new_cfg || new_cfg->size < PL_CONFIG_SIZE_V1 ||
        (old_cfg && old_cfg->size < PL_CONFIG_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    char user[64], host[256];
    who(user, sizeof user, host, sizeof host);
    archive_backend *b = ar->b;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->config_log(b, serial, source, user, host, old_cfg, new_cfg, pc_wall_ms());
    if (rc == PENLINK_OK)
        return b->ops->commit(b);
    b->ops->rollback(b);
    return rc;
}

int penlink_archive_log_config_write(penlink_archive *ar, const penlink_info *info,
                                     const penlink_config *old_cfg, const penlink_config *new_cfg)
{
    if (!ar || !info || info->size < PL_INFO_SIZE_V1 || !new_cfg ||
        new_cfg->size < PL_CONFIG_SIZE_V1 || (old_cfg && old_cfg->size < PL_CONFIG_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    archive_backend *b = ar->b;
    int64_t device;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->device(b, info, pc_wall_ms(), &device);
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

typedef struct serials_visit {
    int (*cb)(void *user, const char *serial);
    void *user;
} serials_visit;

static int serial_of(void *u, int64_t device, const char *serial, const uint8_t *key,
                     uint64_t first_from)
{
    serials_visit *v = u;
    (void)device, (void)key, (void)first_from;
    return v->cb(v->user, serial) != 0;
}

int penlink_archive_serials(penlink_archive *ar, int (*cb)(void *user, const char *serial),
                            void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    serials_visit v = { cb, user };
    return ar->b->ops->pens(ar->b, NULL, serial_of, &v);
}

int penlink_archive_devices(penlink_archive *ar,
                            int (*cb)(void *user, const penlink_archive_device *d), void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->devices(ar->b, cb, user);
}

/* ---- replaced device keys --------------------------------------------------- */

typedef struct pen_row {
    int found;
    int64_t device;
    int pinned;
    uint8_t key[32];
} pen_row;

static int take_pen(void *u, int64_t device, const char *serial, const uint8_t *key,
                    uint64_t first_from)
{
    pen_row *p = u;
    (void)serial, (void)first_from;
    p->found = 1;
    p->device = device;
    p->pinned = key != NULL;
    if (key)
        memcpy(p->key, key, PL_KEY_BYTES);
    return 1;
}

/* The pen's row and the key in force (pinned, or its last replacement's). */
static int pen_key_now(penlink_archive *ar, const char *serial, pen_row *p, key_history *h)
{
    archive_backend *b = ar->b;
    memset(p, 0, sizeof *p);
    int rc = b->ops->pens(b, serial, take_pen, p);
    if (rc != PENLINK_OK && rc != PENLINK_ERR_CANCELLED)
        return rc;
    if (!p->found)
        return penlink_fail(ar->ctx, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", serial);
    rc = b->ops->key_replacements(b, serial, take_replacement, h);
    if (rc != PENLINK_OK)
        return rc;
    if (h->n > 0)
        memcpy(p->key, h->current, PL_KEY_BYTES);
    return PENLINK_OK;
}

int penlink_archive_pen_key(penlink_archive *ar, const char *serial, uint8_t key[32], int *have)
{
    if (!ar || !serial || !key || !have)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ar->ctx);
    pen_row p;
    key_history h = { 0 };
    int rc = pen_key_now(ar, serial, &p, &h);
    if (rc != PENLINK_OK)
        return rc;
    *have = p.pinned;
    memcpy(key, p.key, PL_KEY_BYTES);
    return PENLINK_OK;
}

static int count_head(void *u, uint64_t next_seq, const uint8_t *link, size_t link_len,
                      const uint8_t *sig, size_t sig_len)
{
    (void)next_seq, (void)link, (void)link_len, (void)sig, (void)sig_len;
    (*(uint64_t *)u)++;
    return 0;
}

/* Checks a replacement before it is recorded; fills r's keys. */
static int check_replacement(penlink_archive *ar, const penlink_info *info, const pen_row *p,
                             const key_history *h, penlink_key_replacement *r)
{
    char hex[65];
    if (!p->pinned)
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "the archive pinned no device key for pen %s (it never signed its "
                            "log here): there is no key to replace; pull it instead",
                            info->serial);
    if (!info->has_device_key)
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "pen %s presents no device key: a replacement needs the new key",
                            info->serial);
    penlink_key_to_hex(info->device_key, hex);
    if (memcmp(info->device_key, p->key, PL_KEY_BYTES) == 0)
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "pen %s presents device key %s, the key already in force: nothing "
                            "to replace",
                            info->serial, hex);
    if (h->probe_was_replaced)
        return penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                            "pen %s presents device key %s, a key it had before and that was "
                            "replaced: a replaced key is never taken back (the old board, or a "
                            "copy of it)",
                            info->serial, hex);
    char owner[65];
    int rc =
        archive_key_owner(ar->b, p->device, info->serial, info->device_key, owner, sizeof owner);
    if (rc != PENLINK_OK)
        return rc;
    if (owner[0])
        return penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                            "pen %s presents device key %s, which the archive holds for pen %s: "
                            "one of them is a clone; nothing was recorded",
                            info->serial, hex, owner);
    memcpy(r->old_key, p->key, PL_KEY_BYTES);
    memcpy(r->new_key, info->device_key, PL_KEY_BYTES);
    return PENLINK_OK;
}

int penlink_archive_key_replace(penlink_archive *ar, const penlink_info *info, const char *reason,
                                penlink_key_replacement *out)
{
    if (!ar || !info || info->size < PL_INFO_SIZE_V1 ||
        !PL_SIZED_OK(out, PL_KEY_REPLACEMENT_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ar->ctx);
    if (!reason || !*reason || strlen(reason) > PENLINK_KEY_REASON_MAX)
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "a key replacement needs a reason of 1 to %d bytes",
                            PENLINK_KEY_REASON_MAX);
    archive_backend *b = ar->b;
    penlink_key_replacement r = PENLINK_KEY_REPLACEMENT_INIT;
    snprintf(r.serial, sizeof r.serial, "%s", info->serial);
    snprintf(r.reason, sizeof r.reason, "%s", reason);
    who(r.user, sizeof r.user, r.host, sizeof r.host);
    int rc = b->ops->begin(b);
    if (rc != PENLINK_OK)
        return rc;
    pen_row p;
    key_history h = { .probe = info->has_device_key ? info->device_key : NULL };
    uint64_t next = 0;
    int have = 0;
    rc = pen_key_now(ar, info->serial, &p, &h);
    if (rc == PENLINK_OK)
        rc = check_replacement(ar, info, &p, &h, &r);
    if (rc == PENLINK_OK)
        rc = b->ops->next_seq(b, p.device, &next, &have);
    if (rc == PENLINK_OK && have && info->log_next_seq < next)
        rc = penlink_fail(ar->ctx, PENLINK_ERR_INTEGRITY,
                          "pen %s says its log ends before seq %llu, but the archive holds its "
                          "records up to seq %llu: its log was reset, or it is another pen. A key "
                          "replacement is for a pen that kept its log; nothing was recorded",
                          info->serial, (unsigned long long)info->log_next_seq,
                          (unsigned long long)next - 1);
    if (rc == PENLINK_OK)
        rc = b->ops->heads(b, p.device, count_head, &r.heads_before);
    r.from_seq = have ? next : 0;
    r.at_ms = pc_wall_ms();
    if (rc == PENLINK_OK)
        rc = b->ops->key_replace(b, &r);
    rc = end_txn(b, rc);
    if (rc == PENLINK_OK && out)
        pl_sized_copy(out, &r, sizeof r);
    return rc;
}

int penlink_archive_key_replacements(penlink_archive *ar, const char *serial,
                                     int (*cb)(void *user, const penlink_key_replacement *r),
                                     void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ar->ctx);
    return ar->b->ops->key_replacements(ar->b, serial, cb, user);
}

int audit_key_change_explained(penlink_archive *ar, const penlink_alarm *al, char *note, size_t cap)
{
    for (size_t i = 0; i < ar->n_repl; i++) {
        const penlink_key_replacement *r = &ar->repl[i];
        char hex[65], when[40];
        penlink_key_to_hex(r->new_key, hex);
        /* the alarm names the key the pen presented; the replacement came after it */
        if (strcmp(r->serial, al->serial) != 0 || r->at_ms < al->at_ms || !strstr(al->detail, hex))
            continue;
        time_t t = (time_t)(r->at_ms / 1000);
        struct tm tm;
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", gmtime_r(&t, &tm));
        snprintf(note, cap, " [explained: the new key was recorded on %s UTC by %.40s: %.60s]",
                 when, r->user, r->reason);
        return 1;
    }
    return 0;
}

int penlink_archive_annotate(penlink_archive *ar, const char *finding, const char *author,
                             const char *text)
{
    penlink_annotation a;
    if (!ar || !finding || !text)
        return PENLINK_ERR_INVALID_ARG;
    memset(&a, 0, sizeof a);
    if (!*finding || strlen(finding) >= sizeof a.finding || !*text ||
        strlen(text) >= sizeof a.text || (author && strlen(author) >= sizeof a.author))
        return penlink_fail(ar->ctx, PENLINK_ERR_INVALID_ARG,
                            "an annotation needs a finding id (under %zu bytes) and a text of 1 to "
                            "%zu bytes, by an author of under %zu",
                            sizeof a.finding, sizeof a.text - 1, sizeof a.author);
    snprintf(a.finding, sizeof a.finding, "%s", finding);
    snprintf(a.text, sizeof a.text, "%s", text);
    char host[256];
    who(a.user, sizeof a.user, host, sizeof host);
    snprintf(a.host, sizeof a.host, "%.63s", host);
    if (author)
        snprintf(a.author, sizeof a.author, "%s", author);
    else
        snprintf(a.author, sizeof a.author, "%.31s@%.31s", a.user, a.host);
    a.at_ms = pc_wall_ms();
    archive_backend *b = ar->b;
    int rc = b->ops->begin(b);
    if (rc == PENLINK_OK)
        rc = b->ops->annotate(b, &a);
    return end_txn(b, rc);
}

int penlink_archive_annotations(penlink_archive *ar,
                                int (*cb)(void *user, const penlink_annotation *a), void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->annotations(ar->b, cb, user);
}
