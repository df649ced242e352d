/*
 * The archive's public face: opening and closing it, whether it is writable,
 * its scans (records, alarms, pens, devices) and annotations. Storage goes
 * through the backend table (archive.h); the pull into the archive is
 * archive_pull.c's, the pens' keys archive_keys.c's, the configuration log
 * archive_config.c's.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive.h"
#include "clock.h"
#include "fs.h"
#include "work_progress.h"

#define ARCHIVE_DIR_MODE 0700 /* directories made for an archive: its owner's only */

/* Who and where, for the audit trail: the OS user and the host name. */
void archive_who(char *user, size_t ucap, char *host, size_t hcap)
{
    struct passwd *pw = getpwuid(geteuid());
    snprintf(user, ucap, "%s", pw && pw->pw_name ? pw->pw_name : "");
    host[0] = '\0';
    gethostname(host, hcap - 1);
    host[hcap - 1] = '\0';
}

int penlink_archive_default_path(char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return PENLINK_ERR_INVALID_ARG;
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

/* Ends a transaction: committed (durably) when @p rc is PENLINK_OK, else rolled back. */
int archive_end_txn(archive_backend *b, int rc)
{
    if (rc == PENLINK_OK)
        return b->ops->commit(b);
    b->ops->rollback(b);
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
    if (!ar || !cb || !pl_work_wanted(ar->ctx))
        return archive_scan(ar, f, cb, NULL, user);
    pl_scan_work sw; /* each pen's progress (work_progress.c) */
    pl_scan_work_init(&sw, ar->ctx, cb, user);
    int rc = archive_scan(ar, f, pl_scan_work_record, NULL, &sw);
    pl_scan_work_end(&sw);
    return rc;
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
    archive_who(a.user, sizeof a.user, host, sizeof host);
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
    return archive_end_txn(b, rc);
}

int penlink_archive_annotations(penlink_archive *ar,
                                int (*cb)(void *user, const penlink_annotation *a), void *user)
{
    if (!ar || !cb)
        return PENLINK_ERR_INVALID_ARG;
    return ar->b->ops->annotations(ar->b, cb, user);
}
