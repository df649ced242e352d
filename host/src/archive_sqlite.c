/*
 * The SQLite archive backend's operations. WAL mode with synchronous=FULL: a
 * commit is on disk when it returns, which is what lets the pull acknowledge
 * records. This file holds the statements, failures, transactions and the
 * records' bulk insert, and the operations table; opening, the schema and
 * its migrations are in archive_sqlite_open.c, a pull's writes in
 * archive_sqlite_write.c, reads in archive_sqlite_read.c, verification and
 * audit in archive_sqlite_verify.c. Audit-trail tables (records, chunks, alarms,
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
int sq_flush(sqlite_backend *s)
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
    if (!s->txn_fail && sq_flush(s) == PENLINK_OK) {
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
    int rc = sq_flush(s);
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
