/*
 * The SQLite archive backend's operations. WAL mode with synchronous=FULL: a
 * commit is on disk when it returns, which is what lets the pull acknowledge
 * records. Opening, the schema and its migrations are in
 * archive_sqlite_open.c. Audit-trail tables (records, chunks, alarms,
 * config_history, heads, verifications, annotations, key_replacements)
 * refuse UPDATE and DELETE by trigger.
 *
 * Transactions are exact: a transaction in which any statement failed is
 * never committed (SQLite may have undone only that statement), a failed
 * COMMIT says why in the words its cause calls for (a full disk above all),
 * and a rollback after SQLite already rolled back is a no-op.
 *
 * Values read back are checked like any outside input: a row whose seq, kind,
 * field mask or 32-bit values do not fit is damage, handed to the caller as
 * such (archive_damage) so that one pen's damaged rows never stop the reading
 * of another pen.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <unistd.h>

#include "archive_sqlite.h"
#include "pl/auth.h"
#include "pl/chunk.h"
#include "pl/record.h"

/* The SQL condition "column @p col names the pen @p p": the serial whole, or
 * its first SERIAL_BYTES bytes when the stored one is longer. The public
 * structs (penlink_archive_device, penlink_alarm, penlink_verify_report, ...)
 * hold that many, and an archive of an earlier penlink may hold a longer
 * serial: a pen must be found by the serial the library handed out. */
#define SERIAL_BYTES 32
#define SERIAL_BYTES_SQL "32"
_Static_assert(sizeof(((penlink_archive_device *)0)->serial) == SERIAL_BYTES + 1, "serial size");
_Static_assert(sizeof(((penlink_verify_report *)0)->serial) == SERIAL_BYTES + 1, "serial size");
#define SERIAL_IS(col, p)                                                                          \
    "(" col " = " p " OR (length(CAST(" col " AS BLOB)) > " SERIAL_BYTES_SQL                       \
    " AND substr(CAST(" col " AS BLOB), 1, " SERIAL_BYTES_SQL ") = CAST(" p " AS BLOB)))"

int sq_fail(sqlite_backend *s, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->msg, sizeof s->msg, fmt, ap);
    va_end(ap);
    return penlink_fail(s->base.ctx, status, "%s", s->msg);
}

/* A statement of the open transaction failed in SQLite: the transaction is
 * never committed (SQLite may have undone that statement only, or all of it). */
static int poison(sqlite_backend *s, int status)
{
    if (s->in_txn && !s->txn_fail) { /* the first failure is the one to tell */
        s->txn_fail = status;
        snprintf(s->txn_msg, sizeof s->txn_msg, "%s", s->msg);
    }
    return status;
}

int sq_damaged(sqlite_backend *s, const char *what, const char *why)
{
    return sq_fail(s, PENLINK_ERR_INTEGRITY,
                   "archive %s is damaged (%s: %s). Nothing was changed. Keep the file; "
                   "recover what is readable with 'sqlite3 %s .recover | sqlite3 new.db', "
                   "or restore a backup; the pens still hold every record not yet "
                   "acknowledged",
                   s->path, what, why, s->path);
}

static int db_fail_words(sqlite_backend *s, int status, const char *what)
{
    int code = sqlite3_errcode(s->db), err = sqlite3_system_errno(s->db);
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        return sq_damaged(s, what, sqlite3_errmsg(s->db));
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return sq_fail(s, PENLINK_ERR_BUSY,
                       "archive %s is busy (%s): another penlink holds it; try again", s->path,
                       what);
    if (code == SQLITE_FULL || (code == SQLITE_IOERR && (err == ENOSPC || err == EDQUOT))) {
        if (s->pulling)
            return sq_fail(s, PENLINK_ERR_IO,
                           "the disk holding %s is full: nothing of this pull was acknowledged; "
                           "free space and pull again",
                           s->path);
        return sq_fail(s, PENLINK_ERR_IO,
                       "the disk holding %s is full (%s): nothing of it was written; free space "
                       "and try again",
                       s->path, what);
    }
    if (code == SQLITE_READONLY)
        return sq_fail(s, PENLINK_ERR_IO,
                       "archive %s cannot be written here (%s: %s): penlink writes the archive "
                       "and the -wal and -shm files beside it; use a writable place",
                       s->path, what, sqlite3_errmsg(s->db));
    if (code == SQLITE_IOERR && err)
        return sq_fail(s, status, "archive %s: %s: %s (%s)", s->path, what, sqlite3_errmsg(s->db),
                       strerror(err));
    return sq_fail(s, status, "archive %s: %s: %s", s->path, what, sqlite3_errmsg(s->db));
}

int sq_db_fail(sqlite_backend *s, int status, const char *what)
{
    return poison(s, db_fail_words(s, status, what));
}

int sq_exec(sqlite_backend *s, const char *sql, const char *what)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
        return sq_db_fail(s, PENLINK_ERR_IO, what);
    return PENLINK_OK;
}

int sq_exec_patient(sqlite_backend *s, const char *sql, const char *what)
{
    for (int i = 0; i < 200; i++) {
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK)
            return PENLINK_OK;
        if (sqlite3_errcode(s->db) != SQLITE_BUSY && sqlite3_errcode(s->db) != SQLITE_LOCKED)
            break;
        sqlite3_sleep(50);
    }
    return sq_db_fail(s, PENLINK_ERR_IO, what);
}

int sq_prep(sqlite_backend *s, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return sq_db_fail(s, PENLINK_ERR_IO, "prepare");
    return PENLINK_OK;
}

int sq_row_ints(sqlite_backend *s, const char *sql, const int64_t *device, const char *what, int n,
                int64_t *v, int *null0)
{
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st, sql);
    if (rc != PENLINK_OK)
        return rc;
    if (device)
        sqlite3_bind_int64(st, 1, *device);
    if (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < n; i++)
            v[i] = sqlite3_column_int64(st, i);
        if (null0)
            *null0 = sqlite3_column_type(st, 0) == SQLITE_NULL;
    } else {
        rc = sq_db_fail(s, PENLINK_ERR_IO, what);
    }
    sqlite3_finalize(st);
    return rc;
}

void sq_free(sqlite_backend *s)
{
    sqlite3_finalize(s->ins_record);
    sqlite3_finalize(s->ins_batch);
    sqlite3_finalize(s->range);
    sqlite3_finalize(s->get_record);
    sqlite3_finalize(s->ins_chunk);
    sqlite3_finalize(s->find_chunk);
    sqlite3_close(s->db);
    free(s);
}

static void sq_close(archive_backend *b)
{
    sq_free((sqlite_backend *)b);
}

static int sq_begin(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    if (b->readonly)
        return sq_fail(s, PENLINK_ERR_INVALID_ARG,
                       "archive %s was opened read-only: open it for writing to change it",
                       s->path);
    s->pending = 0;
    s->txn_fail = 0;
    s->savepoint = 0;
    int rc = sq_exec(s, "BEGIN IMMEDIATE", "begin");
    s->in_txn = rc == PENLINK_OK;
    return rc;
}

static void bind_pending(sqlite3_stmt *st, int row, const struct pending_record *p)
{
    sqlite3_bind_int64(st, 4 * row + 1, p->device);
    sqlite3_bind_int64(st, 4 * row + 2, p->seq);
    sqlite3_bind_blob(st, 4 * row + 3, p->body, (int)p->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4 * row + 4, p->chunk);
}

/* Inserts the waiting records: a full batch in one statement, a partial one row by row. */
static int flush(sqlite_backend *s)
{
    int n = s->pending;
    s->pending = 0;
    if (n == INSERT_BATCH) {
        for (int i = 0; i < n; i++)
            bind_pending(s->ins_batch, i, &s->batch[i]);
        int x = sqlite3_step(s->ins_batch);
        sqlite3_reset(s->ins_batch);
        return x == SQLITE_DONE ? PENLINK_OK : sq_db_fail(s, PENLINK_ERR_IO, "store records");
    }
    for (int i = 0; i < n; i++) {
        bind_pending(s->ins_record, 0, &s->batch[i]);
        int x = sqlite3_step(s->ins_record);
        sqlite3_reset(s->ins_record);
        if (x != SQLITE_DONE)
            return sq_db_fail(s, PENLINK_ERR_IO, "store record");
    }
    return PENLINK_OK;
}

/* Ends the open transaction without committing it; a no-op when SQLite
 * already rolled it back (after SQLITE_FULL or SQLITE_IOERR it may have). */
static int undo(sqlite_backend *s)
{
    int rc = PENLINK_OK;
    s->pending = 0; /* they were never written */
    if (s->in_txn && !sqlite3_get_autocommit(s->db) &&
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_fail_words(s, PENLINK_ERR_IO, "rollback");
    s->in_txn = 0;
    s->savepoint = 0;
    return rc;
}

/* Durable when it returns PENLINK_OK. A transaction in which a statement
 * failed is rolled back instead, and its first failure is returned again
 * (as often as commit is called, until the next begin). */
static int sq_commit(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    if (!s->in_txn && !s->txn_fail)
        return sq_fail(s, PENLINK_ERR_INVALID_ARG, "archive %s: commit without a transaction",
                       s->path);
    if (!s->txn_fail && flush(s) == PENLINK_OK) {
        if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
            s->in_txn = 0;
            s->savepoint = 0;
            return PENLINK_OK;
        }
        sq_db_fail(s, PENLINK_ERR_IO, "commit");
    }
    undo(s);
    return sq_fail(s, s->txn_fail, "%s", s->txn_msg);
}

static int sq_rollback(archive_backend *b)
{
    return undo((sqlite_backend *)b);
}

/* One savepoint at a time: the newest mark replaces the one before. A
 * transaction in which a statement failed gets none: it is never committed. */
static int sq_savepoint(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    if (s->txn_fail)
        return sq_fail(s, s->txn_fail, "%s", s->txn_msg);
    int rc = flush(s);
    if (rc == PENLINK_OK && s->savepoint)
        rc = sq_exec(s, "RELEASE kept", "release savepoint");
    if (rc == PENLINK_OK)
        rc = sq_exec(s, "SAVEPOINT kept", "savepoint");
    s->savepoint = rc == PENLINK_OK;
    return rc;
}

/* Back to the last savepoint, the transaction kept open: what failed after
 * it is undone, so the transaction may be committed again. Without a
 * savepoint, all of it is rolled back and a new transaction begun. */
static int sq_rollback_to_savepoint(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    if (!s->savepoint) {
        int rc = undo(s);
        return rc == PENLINK_OK ? sq_begin(b) : rc;
    }
    s->pending = 0;                    /* they were never written */
    if (sqlite3_get_autocommit(s->db)) /* SQLite rolled all of it back (a full disk) */
        return sq_fail(s, s->txn_fail ? s->txn_fail : PENLINK_ERR_IO, "%s",
                       s->txn_fail ? s->txn_msg : "the transaction was rolled back");
    int rc = sq_exec(s, "ROLLBACK TO kept", "rollback to savepoint");
    if (rc == PENLINK_OK)
        s->txn_fail = 0;
    return rc;
}

static int step_done(sqlite_backend *s, sqlite3_stmt *st, const char *what)
{
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        return sq_db_fail(s, PENLINK_ERR_IO, what);
    return PENLINK_OK;
}

static int sq_device(archive_backend *b, const penlink_info *info, int64_t now, int64_t *id)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "INSERT INTO devices (serial, model, hardware_revision, first_seen_ms, "
                     "last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (serial) DO UPDATE SET "
                     "model = iif(?4 >= last_seen_ms, ?2, model), hardware_revision = "
                     "iif(?4 >= last_seen_ms, ?3, hardware_revision), first_seen_ms = "
                     "min(first_seen_ms, ?4), last_seen_ms = max(last_seen_ms, ?4) RETURNING id");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, info->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, info->model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, info->hardware_revision, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = sq_db_fail(s, PENLINK_ERR_IO, "device");
        sqlite3_finalize(st);
        return rc;
    }
    *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    rc = sq_prep(s, &st,
                 "INSERT INTO device_firmware VALUES (?1, ?2, ?3, ?3) ON CONFLICT DO UPDATE SET "
                 "first_seen_ms = min(first_seen_ms, ?3), last_seen_ms = max(last_seen_ms, ?3)");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, *id);
    sqlite3_bind_text(st, 2, info->firmware_version, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now);
    rc = step_done(s, st, "device firmware");
    sqlite3_finalize(st);
    return rc;
}

static int sq_next_seq(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int64_t max = 0;
    int null = 1;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s, "SELECT max(seq) FROM records WHERE device_id = ?1", &device,
                         "last seq", 1, &max, &null);
    if (rc == PENLINK_OK) {
        *have = !null;
        *next = null ? 0 : (uint64_t)max + 1;
    }
    return rc;
}

static int sq_pull_begin(archive_backend *b, int64_t device, uint64_t from, int64_t now,
                         int64_t *pull)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    char host[256] = "", user[64] = "";
    struct passwd *pw = getpwuid(geteuid());
    gethostname(host, sizeof host - 1);
    snprintf(user, sizeof user, "%s", pw && pw->pw_name ? pw->pw_name : "");
    int rc = sq_prep(s, &st,
                     "INSERT INTO pulls (device_id, started_ms, host, os_user, penlink_version, "
                     "from_seq, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running') RETURNING id");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, host, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, user, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, penlink_version(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (int64_t)from);
    s->pulling = 1; /* a failure from here on is this pull's */
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "pull");
    else
        *pull = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static int sq_pull_end(archive_backend *b, int64_t pull, const penlink_archive_pull_result *r,
                       const char *result, const char *message, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "UPDATE pulls SET finished_ms = ?2, next_seq = ?3, records_new = ?4, "
                     "records_dup = ?5, conflicts = ?6, gap = ?7, result = ?8, message = ?9 "
                     "WHERE id = ?1");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, pull);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, (int64_t)r->next_seq);
    sqlite3_bind_int64(st, 4, (int64_t)r->records_new);
    sqlite3_bind_int64(st, 5, (int64_t)r->records_dup);
    sqlite3_bind_int64(st, 6, (int64_t)r->conflicts);
    sqlite3_bind_int64(st, 7, (int64_t)r->gap);
    sqlite3_bind_text(st, 8, result, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, message, -1, SQLITE_TRANSIENT);
    rc = step_done(s, st, "pull end");
    sqlite3_finalize(st);
    s->pulling = 0;
    return rc;
}

static int sq_chunk(archive_backend *b, int64_t device, int64_t pull, const penlink_chunk *c,
                    int64_t now, int64_t *chunk, int *stored)
{
    if (stored)
        *stored = 0;
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = s->find_chunk;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, (int64_t)c->first_seq);
    sqlite3_bind_int64(st, 3, c->record_count);
    sqlite3_bind_blob(st, 4, c->data, (int)c->len, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *chunk = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return PENLINK_OK;
    }
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return sq_db_fail(s, PENLINK_ERR_IO, "find chunk");
    st = s->ins_chunk;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, pull);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, (int64_t)c->first_seq);
    sqlite3_bind_int64(st, 5, c->record_count);
    sqlite3_bind_int64(st, 6, c->raw_size);
    sqlite3_bind_blob(st, 7, c->data, (int)c->len, SQLITE_STATIC);
    if (c->has_link) {
        sqlite3_bind_blob(st, 8, c->prev_link, 32, SQLITE_STATIC);
        sqlite3_bind_blob(st, 9, c->link, 32, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 8);
        sqlite3_bind_null(st, 9);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        sqlite3_reset(st);
        return sq_db_fail(s, PENLINK_ERR_IO, "store chunk");
    }
    sqlite3_reset(st);
    *chunk = sqlite3_last_insert_rowid(s->db);
    if (stored)
        *stored = 1;
    return PENLINK_OK;
}

/* Reads a record (seq, body) back, as hostile input: NULL, or why it cannot
 * be a record. */
static const char *value_record(sqlite3_value *seq, sqlite3_value *body, penlink_record *r)
{
    if (sqlite3_value_type(seq) != SQLITE_INTEGER)
        return "its seq is not an integer";
    if (sqlite3_value_int64(seq) < 0)
        return "its seq is at or above 2^63 (stored as a negative integer), which no pen logs";
    if (sqlite3_value_type(body) != SQLITE_BLOB)
        return "its body is not a packed record";
    const void *p = sqlite3_value_blob(body);
    int len = sqlite3_value_bytes(body);
    r->seq = (uint64_t)sqlite3_value_int64(seq);
    if (!p || len <= 0 || len > ARCHIVE_BODY_MAX || archive_body_unpack(p, (size_t)len, r) != 0)
        return "its body is not a packed record";
    return NULL;
}

#define RECORD_COLS "seq, body"

static int sq_pin_key(archive_backend *b, int64_t device, const uint8_t *key, int *outcome)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st, "SELECT public_key FROM devices WHERE id = ?1");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    int x = sqlite3_step(st);
    const void *old = x == SQLITE_ROW ? sqlite3_column_blob(st, 0) : NULL;
    int len = x == SQLITE_ROW ? sqlite3_column_bytes(st, 0) : 0;
    if (x != SQLITE_ROW) {
        rc = sq_db_fail(s, PENLINK_ERR_IO, "device key");
    } else if (old) {
        *outcome = key && len == 32 && memcmp(old, key, 32) == 0 ? KEY_SAME : KEY_CHANGED;
    } else if (!key) {
        *outcome = KEY_NONE;
    } else {
        *outcome = KEY_PINNED;
    }
    sqlite3_finalize(st);
    if (rc != PENLINK_OK || *outcome != KEY_PINNED)
        return rc;
    rc = sq_prep(s, &st, "UPDATE devices SET public_key = ?2 WHERE id = ?1 AND public_key IS NULL");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_blob(st, 2, key, 32, SQLITE_STATIC);
    rc = step_done(s, st, "pin device key");
    sqlite3_finalize(st);
    return rc;
}

static int sq_head(archive_backend *b, int64_t device, int64_t pull, const penlink_head *h,
                   int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "INSERT INTO heads (device_id, pull_id, at_ms, next_seq, link, signature) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, pull);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, (int64_t)h->next_seq);
    sqlite3_bind_blob(st, 5, h->link, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, h->signature, 64, SQLITE_STATIC);
    rc = step_done(s, st, "signed head");
    sqlite3_finalize(st);
    return rc;
}

static int sq_record(archive_backend *b, int64_t device, int64_t chunk, const penlink_record *r,
                     int fresh, int *outcome)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = s->get_record;
    int x = SQLITE_DONE;
    if (!fresh) {
        int rc = flush(s);
        if (rc != PENLINK_OK)
            return rc;
        sqlite3_bind_int64(st, 1, device);
        sqlite3_bind_int64(st, 2, (int64_t)r->seq);
        x = sqlite3_step(st);
    }
    if (x == SQLITE_ROW) {
        penlink_record old;
        const char *bad =
            value_record(sqlite3_column_value(st, 0), sqlite3_column_value(st, 1), &old);
        sqlite3_reset(st);
        if (bad)
            return sq_fail(s, PENLINK_ERR_INTEGRITY,
                           "archive %s: the archived record %llu is damaged: %s", s->path,
                           (unsigned long long)r->seq, bad);
        *outcome = archive_record_same(&old, r) ? REC_SAME : REC_CONFLICT;
        return PENLINK_OK;
    }
    sqlite3_reset(st);
    if (x != SQLITE_DONE)
        return sq_db_fail(s, PENLINK_ERR_IO, "read record");
    struct pending_record *p = &s->batch[s->pending++];
    p->device = device;
    p->seq = (int64_t)r->seq;
    p->chunk = chunk;
    p->len = archive_body_pack(r, p->body);
    *outcome = REC_NEW;
    return s->pending == INSERT_BATCH ? flush(s) : PENLINK_OK;
}

static int sq_alarm(archive_backend *b, int64_t device, int64_t pull, const char *kind,
                    uint64_t seq, uint64_t count, const char *detail, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "INSERT INTO alarms (device_id, pull_id, at_ms, kind, seq, count, detail) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, pull);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (int64_t)seq);
    sqlite3_bind_int64(st, 6, (int64_t)count);
    sqlite3_bind_text(st, 7, detail, -1, SQLITE_TRANSIENT);
    rc = step_done(s, st, "alarm");
    sqlite3_finalize(st);
    return rc;
}

static void bind_filter(sqlite3_stmt *st, const penlink_archive_filter *f)
{
    if (f && f->serial)
        sqlite3_bind_text(st, 1, f->serial, -1, SQLITE_STATIC);
    if (f && f->has_since)
        sqlite3_bind_int64(st, 2, f->since_ms);
    if (f && f->has_until)
        sqlite3_bind_int64(st, 3, f->until_ms);
}

/* The scan hands each row to C from inside SQLite's own loop: the query
 * calls penlink_scan_row(device_id, seq, body) in its WHERE clause, which
 * decodes the record and calls the visitor, and answers false so that no
 * row is returned. Returning a million rows one sqlite3_step() at a time
 * costs more than the scan itself. The query starts at the pen's first row
 * (device_id >= ?1) and the sink answers true at the first row of another
 * pen, which LIMIT 1 turns into the end of the scan: no end-of-range
 * comparison per row. A WITHOUT ROWID table is stored in key order, so a
 * pen's rows arrive in seq order; the sink checks that anyway. */
typedef struct scan_state {
    sqlite_backend *s;
    const penlink_archive_filter *f;
    penlink_archive_record_cb cb;
    archive_damage_cb bad;
    void *user;
    const char *serial;
    char serial_buf[2][64]; /* consecutive pens alternate: a pen's records share one pointer */
    int64_t device;
    uint64_t last_seq;
    int started, rc;
    /* damaged rows, when no one takes them: counted, the first named at the end */
    uint64_t n_bad;
    char bad_serial[64];
    int64_t bad_seq;
    const char *bad_why;
} scan_state;

/* A row of the scan that cannot be a record: to the caller, or counted. */
static void scan_damage(sqlite3_context *cx, scan_state *sc, int64_t seq, const char *why)
{
    if (sc->bad) {
        archive_damage d = { sc->serial, "records", seq, why };
        if (sc->bad(sc->user, &d) != 0) {
            sc->rc = PENLINK_ERR_CANCELLED;
            sqlite3_result_error(cx, "cancelled", -1);
        }
        return;
    }
    if (sc->n_bad++ == 0) {
        snprintf(sc->bad_serial, sizeof sc->bad_serial, "%s", sc->serial);
        sc->bad_seq = seq;
        sc->bad_why = why;
    }
}

static void sql_scan_row(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    scan_state *sc = sqlite3_user_data(cx);
    penlink_record r; /* the result stays NULL, false to WHERE, unless set below */
    if (argc != 3 || !sc || sc->rc != PENLINK_OK)
        return;
    if (sqlite3_value_int64(argv[0]) != sc->device) {
        sqlite3_result_int(cx, 1); /* the next pen's first row: the end */
        return;
    }
    const char *why = value_record(argv[1], argv[2], &r);
    if (!why && sc->started && r.seq <= sc->last_seq)
        why = "it is out of seq order";
    if (why) {
        scan_damage(cx, sc, sqlite3_value_int64(argv[1]), why);
        return;
    }
    sc->started = 1;
    sc->last_seq = r.seq;
    if ((sc->f && sc->f->has_since && r.time_ms < sc->f->since_ms) ||
        (sc->f && sc->f->has_until && r.time_ms >= sc->f->until_ms))
        return;
    if (sc->cb(sc->user, sc->serial, &r) != 0) {
        sc->rc = PENLINK_ERR_CANCELLED;
        sqlite3_result_error(cx, "cancelled", -1);
    }
}

/* Pen by pen in serial order, each pen's records in seq order. */
static int sq_scan(archive_backend *b, const penlink_archive_filter *f,
                   penlink_archive_record_cb cb, archive_damage_cb bad, void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    scan_state sc = { .s = s, .f = f, .cb = cb, .bad = bad, .user = user, .rc = PENLINK_OK };
    unsigned npens = 0;
    sqlite3_stmt *pens = NULL, *st = NULL;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &pens,
                     "SELECT id, serial FROM devices WHERE ?1 IS NULL OR " SERIAL_IS(
                         "serial", "?1") " ORDER BY serial");
    if (rc == PENLINK_OK &&
        sqlite3_create_function(s->db, "penlink_scan_row", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY, &sc,
                                sql_scan_row, NULL, NULL) != SQLITE_OK)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "scan");
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &st,
                     "SELECT 1 FROM records WHERE device_id >= ?1 AND "
                     "penlink_scan_row(device_id, seq, body) ORDER BY device_id, seq LIMIT 1");
    if (rc) {
        sqlite3_finalize(pens);
        return rc;
    }
    if (f && f->serial)
        sqlite3_bind_text(pens, 1, f->serial, -1, SQLITE_STATIC);
    int px;
    for (px = sqlite3_step(pens); rc == PENLINK_OK && px == SQLITE_ROW; px = sqlite3_step(pens)) {
        const char *ser = (const char *)sqlite3_column_text(pens, 1);
        char *buf = sc.serial_buf[npens++ & 1];
        snprintf(buf, sizeof sc.serial_buf[0], "%s", ser ? ser : "?");
        sc.serial = buf;
        sc.started = 0;
        sc.device = sqlite3_column_int64(pens, 0);
        sqlite3_bind_int64(st, 1, sc.device);
        int x = sqlite3_step(st);
        sqlite3_reset(st);
        if (sc.rc != PENLINK_OK)
            rc = sc.rc;
        else if (x != SQLITE_DONE && x != SQLITE_ROW)
            rc = sq_db_fail(s, PENLINK_ERR_IO, "scan");
    }
    if (rc == PENLINK_OK && px != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "scan");
    sqlite3_finalize(st);
    sqlite3_finalize(pens);
    /* the statement that used it is gone: unregister the function and its pointer to sc */
    sqlite3_create_function(s->db, "penlink_scan_row", 3, SQLITE_UTF8, NULL, NULL, NULL, NULL);
    if (rc == PENLINK_OK && sc.n_bad)
        rc = sq_fail(s, PENLINK_ERR_INTEGRITY,
                     "archive %s: %llu record rows cannot be records and were skipped (the "
                     "first: pen %s, seq stored as %lld: %s); every other record was read",
                     s->path, (unsigned long long)sc.n_bad, sc.bad_serial, (long long)sc.bad_seq,
                     sc.bad_why);
    return rc;
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static int sq_alarms(archive_backend *b, const penlink_archive_filter *f,
                     int (*cb)(void *user, const penlink_alarm *a), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "SELECT d.serial, a.at_ms, a.seq, a.count, a.kind, a.detail FROM alarms a "
                     "JOIN devices d ON d.id = a.device_id WHERE (?1 IS NULL OR " SERIAL_IS(
                         "d.serial", "?1") ") "
                                           "ORDER BY d.serial, a.seq, a.id");
    if (rc)
        return rc;
    bind_filter(st, f);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_alarm a;
        memset(&a, 0, sizeof a);
        copy_col(a.serial, sizeof a.serial, st, 0);
        a.at_ms = sqlite3_column_int64(st, 1);
        a.seq = (uint64_t)sqlite3_column_int64(st, 2);
        a.count = (uint64_t)sqlite3_column_int64(st, 3);
        copy_col(a.kind, sizeof a.kind, st, 4);
        copy_col(a.detail, sizeof a.detail, st, 5);
        if (cb(user, &a) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "alarms");
    sqlite3_finalize(st);
    return rc;
}

static int sq_config_log(archive_backend *b, const char *serial, const char *source,
                         const char *user, const char *host, const penlink_config *old_cfg,
                         const penlink_config *new_cfg, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    char oldj[1024], newj[1024];
    archive_config_text(new_cfg, newj, sizeof newj);
    if (old_cfg)
        archive_config_text(old_cfg, oldj, sizeof oldj);
    int rc =
        sq_prep(s, &st,
                "INSERT INTO config_history (device_id, at_ms, source, os_user, host, revision, "
                "old_json, new_json) SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM devices WHERE "
                "serial = ?1");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, new_cfg->revision);
    if (old_cfg)
        sqlite3_bind_text(st, 7, oldj, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, newj, -1, SQLITE_TRANSIENT);
    rc = step_done(s, st, "config history");
    sqlite3_finalize(st);
    return rc;
}

/* Ordered by what every archive holding the entries shares, never by row id
 * alone (a push appends them in another order): as the PostgreSQL backend. */
static int sq_config_history(archive_backend *b, const char *serial,
                             int (*cb)(void *user, const penlink_config_entry *e), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(
        s, &st,
        "SELECT d.serial, h.at_ms, h.source, h.os_user, h.host, h.new_json, h.old_json FROM "
        "config_history h JOIN devices d ON d.id = h.device_id WHERE (?1 IS NULL OR " SERIAL_IS(
            "d.serial", "?1") ") ORDER BY d.serial, h.revision, h.at_ms, h.source, "
                              "coalesce(h.os_user, ''), coalesce(h.host, ''), h.new_json, "
                              "coalesce(h.old_json, ''), h.id");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_config_entry e;
        memset(&e, 0, sizeof e);
        e.config.size = e.old_config.size = sizeof e.config;
        copy_col(e.serial, sizeof e.serial, st, 0);
        e.at_ms = sqlite3_column_int64(st, 1);
        copy_col(e.source, sizeof e.source, st, 2);
        copy_col(e.user, sizeof e.user, st, 3);
        copy_col(e.host, sizeof e.host, st, 4);
        const unsigned char *j = sqlite3_column_text(st, 5);
        archive_config_parse(j ? (const char *)j : "", &e.config);
        /* the values the change replaced: revision 1's limits when it came before any pull */
        const unsigned char *old = sqlite3_column_text(st, 6);
        e.has_old = old != NULL;
        if (old)
            archive_config_parse((const char *)old, &e.old_config);
        if (cb(user, &e) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "config history");
    sqlite3_finalize(st);
    return rc;
}

static int sq_devices(archive_backend *b, int (*cb)(void *user, const penlink_archive_device *d),
                      void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &st,
                     "SELECT d.serial, d.model, d.first_seen_ms, d.last_seen_ms, (SELECT "
                     "group_concat(firmware_version, ', ') FROM (SELECT firmware_version FROM "
                     "device_firmware f WHERE f.device_id = d.id ORDER BY firmware_version)), "
                     "(SELECT count(*) FROM records r WHERE r.device_id = d.id), (SELECT max(seq) "
                     "+ 1 FROM records r WHERE r.device_id = d.id), d.hardware_revision FROM "
                     "devices d ORDER BY d.serial");
    if (rc)
        return rc;
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_archive_device d;
        memset(&d, 0, sizeof d);
        copy_col(d.serial, sizeof d.serial, st, 0);
        copy_col(d.model, sizeof d.model, st, 1);
        d.first_seen_ms = sqlite3_column_int64(st, 2);
        d.last_seen_ms = sqlite3_column_int64(st, 3);
        copy_col(d.firmware_versions, sizeof d.firmware_versions, st, 4);
        d.records = (uint64_t)sqlite3_column_int64(st, 5);
        d.next_seq = (uint64_t)sqlite3_column_int64(st, 6);
        copy_col(d.hardware_revision, sizeof d.hardware_revision, st, 7);
        if (cb(user, &d) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "devices");
    sqlite3_finalize(st);
    return rc;
}

/* ---- verification ------------------------------------------------------- */

static const uint8_t *blob32(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_BLOB && sqlite3_column_bytes(st, col) == 32
               ? sqlite3_column_blob(st, col)
               : NULL;
}

static int sq_pens(archive_backend *b, const char *serial,
                   int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                             uint64_t first_from),
                   void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &st,
                     "SELECT id, serial, public_key, (SELECT min(from_seq) FROM pulls p WHERE "
                     "p.device_id = d.id) FROM devices d WHERE ?1 IS NULL OR " SERIAL_IS(
                         "serial", "?1") " ORDER BY "
                                         "serial");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        const char *ser = (const char *)sqlite3_column_text(st, 1);
        if (cb(user, sqlite3_column_int64(st, 0), ser ? ser : "?", blob32(st, 2),
               (uint64_t)sqlite3_column_int64(st, 3)) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "pens");
    sqlite3_finalize(st);
    return rc;
}

static int sq_chunks(archive_backend *b, int64_t device,
                     int (*cb)(void *user, const archive_chunk_row *c), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "SELECT id, first_seq, record_count, raw_size, data, prev_link, link FROM "
                     "chunks WHERE device_id = ?1 ORDER BY first_seq, id");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        archive_chunk_row c;
        memset(&c, 0, sizeof c);
        int64_t first = sqlite3_column_int64(st, 1), count = sqlite3_column_int64(st, 2),
                raw = sqlite3_column_int64(st, 3);
        c.id = sqlite3_column_int64(st, 0);
        c.stored_seq = first;
        c.data = sqlite3_column_blob(st, 4);
        c.len = (size_t)sqlite3_column_bytes(st, 4);
        c.prev_link = blob32(st, 5);
        c.link = blob32(st, 6);
        if (sqlite3_column_type(st, 1) != SQLITE_INTEGER || first < 0)
            c.damage = "its first seq is at or above 2^63 (stored as a negative integer) or not "
                       "an integer: no pen logs such a seq";
        else if (count <= 0 || count > PL_CHUNK_MAX_RECORDS || raw < 0 || raw > UINT32_MAX ||
                 !c.data)
            c.damage = "its record count, size or data are impossible";
        if (!c.damage) {
            c.first_seq = (uint64_t)first;
            c.record_count = (uint32_t)count;
            c.raw_size = (uint32_t)raw;
        }
        if (cb(user, &c) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "chunks");
    sqlite3_finalize(st);
    return rc;
}

static int sq_records(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
                      int (*cb)(void *user, const penlink_record *r), archive_damage_cb bad,
                      void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = s->range;
    int frc = flush(s);
    if (frc != PENLINK_OK)
        return frc;
    if (end <= first || first > (uint64_t)INT64_MAX)
        return PENLINK_OK; /* no seq a record row can hold */
    uint64_t last = end - 1 > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : end - 1;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, (int64_t)first);
    sqlite3_bind_int64(st, 3, (int64_t)last);
    int rc = PENLINK_OK, x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_record r;
        const char *why =
            value_record(sqlite3_column_value(st, 0), sqlite3_column_value(st, 1), &r);
        if (why && bad) {
            archive_damage d = { NULL, "records", sqlite3_column_int64(st, 0), why };
            if (bad(user, &d) != 0) {
                rc = PENLINK_ERR_CANCELLED;
                break;
            }
            continue;
        }
        if (why) {
            rc = sq_fail(s, PENLINK_ERR_INTEGRITY, "archive %s: the record row of seq %lld: %s",
                         s->path, (long long)sqlite3_column_int64(st, 0), why);
            break;
        }
        if (cb(user, &r) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "records");
    sqlite3_reset(st);
    return rc;
}

static int sq_record_count(archive_backend *b, int64_t device, uint64_t *n)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int64_t count = 0;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s, "SELECT count(*) FROM records WHERE device_id = ?1", &device,
                         "count records", 1, &count, NULL);
    if (rc == PENLINK_OK)
        *n = (uint64_t)count;
    return rc;
}

static int sq_pulled_to(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int64_t max = 0;
    int null = 1;
    *next = 0;
    *have = 0;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s,
                         "SELECT max(next_seq) FROM pulls WHERE device_id = ?1 AND result IN "
                         "('ok', 'conflict') AND next_seq > from_seq",
                         &device, "pulls", 1, &max, &null);
    if (rc != PENLINK_OK)
        return rc;
    *have = !null && max >= 0;
    *next = *have ? (uint64_t)max : 0;
    return rc;
}

static int sq_seq_outliers(archive_backend *b, int64_t device, uint64_t *n, int64_t *lowest)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int64_t v[2] = { 0, 0 };
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s,
                         "SELECT count(*), min(seq) FROM records WHERE device_id = ?1 AND seq < 0",
                         &device, "records", 2, v, NULL);
    if (rc == PENLINK_OK) {
        *n = (uint64_t)v[0];
        *lowest = v[1];
    }
    return rc;
}

static int sq_heads(archive_backend *b, int64_t device,
                    int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
                              const uint8_t *sig, size_t sig_len),
                    void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(
        s, &st, "SELECT next_seq, link, signature FROM heads WHERE device_id = ?1 ORDER BY id");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        if (cb(user, (uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
               (size_t)sqlite3_column_bytes(st, 1), sqlite3_column_blob(st, 2),
               (size_t)sqlite3_column_bytes(st, 2)) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "heads");
    sqlite3_finalize(st);
    return rc;
}

static const char *const verify_result[] = { "ok", "broken", "unsigned" };

static int sq_verification_log(archive_backend *b, const penlink_verify_report *r, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    if ((unsigned)r->state >= sizeof verify_result / sizeof verify_result[0])
        return sq_fail(s, PENLINK_ERR_INVALID_ARG, "archive %s: a verification of no known state",
                       s->path);
    int rc =
        sq_prep(s, &st,
                "INSERT INTO verifications (device_id, at_ms, result, through_seq, records, "
                "chunks, detail) SELECT id, ?2, ?3, ?4, ?5, ?6, ?7 FROM devices WHERE " SERIAL_IS(
                    "serial", "?1") " ORDER BY serial = ?1 DESC, id LIMIT 1 RETURNING id");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, r->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, verify_result[r->state], -1, SQLITE_STATIC);
    sqlite3_bind_int64(
        st, 4, (int64_t)(r->state == PENLINK_VERIFY_BROKEN ? r->where_seq : r->signed_through));
    sqlite3_bind_int64(st, 5, (int64_t)r->records);
    sqlite3_bind_int64(st, 6, (int64_t)r->chunks);
    sqlite3_bind_text(st, 7, r->state == PENLINK_VERIFY_BROKEN ? r->detail : r->notes, -1,
                      SQLITE_TRANSIENT);
    int x = sqlite3_step(st);
    if (x == SQLITE_DONE)
        rc = sq_fail(s, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive %s", r->serial, s->path);
    else if (x != SQLITE_ROW)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "verification");
    sqlite3_finalize(st);
    return rc;
}

static int sq_verification_last(archive_backend *b, const char *serial, penlink_verification *out)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    snprintf(out->serial, sizeof out->serial, "%s", serial);
    int rc = sq_prep(s, &st,
                     "SELECT d.public_key IS NOT NULL, (SELECT max(next_seq) FROM heads h WHERE "
                     "h.device_id = d.id), v.at_ms, v.result, v.through_seq, v.records, v.chunks, "
                     "v.detail FROM devices d LEFT JOIN verifications v ON v.id = (SELECT max(id) "
                     "FROM verifications WHERE device_id = d.id) WHERE " SERIAL_IS(
                         "d.serial", "?1") " ORDER BY "
                                           "d.serial = ?1 DESC, d.id LIMIT 1");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x = sqlite3_step(st);
    if (x == SQLITE_ROW) {
        out->pinned = sqlite3_column_int(st, 0);
        out->signed_through = (uint64_t)sqlite3_column_int64(st, 1);
        out->have = sqlite3_column_type(st, 2) != SQLITE_NULL;
        out->at_ms = sqlite3_column_int64(st, 2);
        copy_col(out->result, sizeof out->result, st, 3);
        out->through_seq = (uint64_t)sqlite3_column_int64(st, 4);
        out->records = (uint64_t)sqlite3_column_int64(st, 5);
        out->chunks = (uint64_t)sqlite3_column_int64(st, 6);
        copy_col(out->detail, sizeof out->detail, st, 7);
    } else if (x == SQLITE_DONE) {
        rc = sq_fail(s, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", serial);
    } else {
        rc = sq_db_fail(s, PENLINK_ERR_IO, "verification");
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- replaced device keys ------------------------------------------------ */

static int sq_key_replace(archive_backend *b, const penlink_key_replacement *r)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "INSERT INTO key_replacements (device_id, at_ms, os_user, host, reason, "
                     "old_key, new_key, from_seq, heads_before) SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, "
                     "?8, ?9 FROM devices WHERE serial = ?1");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, r->serial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->at_ms);
    sqlite3_bind_text(st, 3, r->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->reason, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, r->old_key, PL_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, r->new_key, PL_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (int64_t)r->from_seq);
    sqlite3_bind_int64(st, 9, (int64_t)r->heads_before);
    rc = step_done(s, st, "key replacement");
    if (rc == PENLINK_OK && sqlite3_changes(s->db) != 1)
        rc = sq_fail(s, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", r->serial);
    sqlite3_finalize(st);
    return rc;
}

static int sq_annotate(archive_backend *b, const penlink_annotation *a)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "INSERT INTO annotations (finding, at_ms, author, os_user, host, text) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, a->finding, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a->at_ms);
    sqlite3_bind_text(st, 3, a->author, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, a->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->text, -1, SQLITE_STATIC);
    rc = step_done(s, st, "annotation");
    sqlite3_finalize(st);
    return rc;
}

static int sq_key_replacements(archive_backend *b, const char *serial,
                               int (*cb)(void *user, const penlink_key_replacement *r), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    /* an archive of an older schema read as it is (not migrated) has none */
    if (sqlite3_table_column_metadata(s->db, NULL, "key_replacements", NULL, NULL, NULL, NULL, NULL,
                                      NULL) != SQLITE_OK)
        return PENLINK_OK;
    int rc =
        sq_prep(s, &st,
                "SELECT d.serial, k.at_ms, k.os_user, k.host, k.reason, k.old_key, k.new_key, "
                "k.from_seq, k.heads_before FROM key_replacements k JOIN devices d ON d.id = "
                "k.device_id WHERE ?1 IS NULL OR " SERIAL_IS("d.serial", "?1") " ORDER BY k.id");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_key_replacement r;
        memset(&r, 0, sizeof r);
        const uint8_t *old = blob32(st, 5), *new_key = blob32(st, 6);
        if (!old || !new_key) {
            rc = sq_damaged(s, "key replacements", "a row whose keys are not 32 bytes");
            break;
        }
        copy_col(r.serial, sizeof r.serial, st, 0);
        r.at_ms = sqlite3_column_int64(st, 1);
        copy_col(r.user, sizeof r.user, st, 2);
        copy_col(r.host, sizeof r.host, st, 3);
        copy_col(r.reason, sizeof r.reason, st, 4);
        memcpy(r.old_key, old, PL_KEY_BYTES);
        memcpy(r.new_key, new_key, PL_KEY_BYTES);
        r.from_seq = (uint64_t)sqlite3_column_int64(st, 7);
        r.heads_before = (uint64_t)sqlite3_column_int64(st, 8);
        if (cb(user, &r) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "key replacements");
    sqlite3_finalize(st);
    return rc;
}

static int sq_annotations(archive_backend *b, int (*cb)(void *user, const penlink_annotation *a),
                          void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(
        s, &st, "SELECT finding, at_ms, author, os_user, host, text FROM annotations ORDER BY id");
    if (rc)
        return rc;
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_annotation a;
        memset(&a, 0, sizeof a);
        copy_col(a.finding, sizeof a.finding, st, 0);
        a.at_ms = sqlite3_column_int64(st, 1);
        copy_col(a.author, sizeof a.author, st, 2);
        copy_col(a.user, sizeof a.user, st, 3);
        copy_col(a.host, sizeof a.host, st, 4);
        copy_col(a.text, sizeof a.text, st, 5);
        if (cb(user, &a) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "annotations");
    sqlite3_finalize(st);
    return rc;
}

/* Opened for writing: what SQLite made of it. Opened read-only: the file,
 * and its directory for the -wal and -shm files, as the kernel tells them
 * (EROFS, permissions: a read-only copy, mount or medium). */
static int sq_writable(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    if (!b->readonly)
        return sqlite3_db_readonly(s->db, "main") == 0;
    char dir[sizeof s->path];
    snprintf(dir, sizeof dir, "%s", s->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    return access(s->path, W_OK) == 0 && access(dir, W_OK | X_OK) == 0;
}

const archive_ops sq_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .rollback_to_savepoint = sq_rollback_to_savepoint,
    .device = sq_device,
    .next_seq = sq_next_seq,
    .pull_begin = sq_pull_begin,
    .pull_end = sq_pull_end,
    .chunk = sq_chunk,
    .record = sq_record,
    .alarm = sq_alarm,
    .pin_key = sq_pin_key,
    .head = sq_head,
    .scan = sq_scan,
    .alarms = sq_alarms,
    .config_log = sq_config_log,
    .config_history = sq_config_history,
    .devices = sq_devices,
    .pens = sq_pens,
    .chunks = sq_chunks,
    .records = sq_records,
    .record_count = sq_record_count,
    .pulled_to = sq_pulled_to,
    .seq_outliers = sq_seq_outliers,
    .heads = sq_heads,
    .verification_log = sq_verification_log,
    .verification_last = sq_verification_last,
    .key_replace = sq_key_replace,
    .key_replacements = sq_key_replacements,
    .annotate = sq_annotate,
    .annotations = sq_annotations,
    .writable = sq_writable,
};

int sq_statements(sqlite_backend *s)
{
    const struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        { &s->ins_record,
          "INSERT INTO records (device_id, " RECORD_COLS ", chunk_id) VALUES (?1, ?2, ?3, ?4)" },
        { &s->get_record, "SELECT " RECORD_COLS " FROM records WHERE device_id = ?1 AND seq = ?2" },
        { &s->range, "SELECT " RECORD_COLS " FROM records WHERE device_id = ?1 AND seq >= ?2 AND "
                     "seq <= ?3 ORDER BY seq" },
        { &s->ins_chunk,
          "INSERT INTO chunks (device_id, pull_id, received_ms, first_seq, record_count, "
          "raw_size, data, prev_link, link) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)" },
        { &s->find_chunk, "SELECT id FROM chunks WHERE device_id = ?1 AND first_seq = ?2 AND "
                          "record_count = ?3 AND data = ?4" },
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        int rc = sq_prep(s, stmts[i].st, stmts[i].sql);
        if (rc != PENLINK_OK)
            return rc;
    }
    char batch[64 + INSERT_BATCH * 16] =
        "INSERT INTO records (device_id, " RECORD_COLS ", chunk_id) VALUES (?, ?, ?, ?)";
    for (int i = 1; i < INSERT_BATCH; i++)
        strcat(batch, ", (?, ?, ?, ?)");
    return sq_prep(s, &s->ins_batch, batch);
}
