/*
 * The SQLite backend's private declarations, shared by its two files:
 * archive_sqlite_open.c (recognising, creating, migrating and opening the
 * file) and archive_sqlite.c (the operations of archive.h).
 */
#ifndef PENLINK_ARCHIVE_SQLITE_H
#define PENLINK_ARCHIVE_SQLITE_H

#include <sqlite3.h>

#include "archive.h"

/* The schema version this penlink writes (PRAGMA user_version). */
#define SCHEMA_VERSION 5
/* PRAGMA application_id of a penlink archive: "PLAR" (penlink archive). Set on
 * every archive this penlink creates or migrates; a file with another id is
 * another program's, and is never written. docs/audit-guide.md. */
#define ARCHIVE_APPLICATION_ID 0x504C4152
#define INSERT_BATCH 64

typedef struct sqlite_backend {
    archive_backend base;
    sqlite3 *db;
    char path[1024];
    sqlite3_stmt *ins_record, *ins_batch, *get_record, *ins_chunk, *find_chunk, *range;
    int bad_row;  /* a migration met a row that cannot be a record */
    int in_txn;   /* a transaction of ours is open */
    int txn_fail; /* a statement of the open transaction failed: it is never committed */
    char txn_msg[512];
    int savepoint; /* a savepoint is open in the transaction */
    char msg[512]; /* the last failure, in words (txn_msg copies the first of a transaction) */
    int pulling;   /* between pull_begin and pull_end: a full disk is said in a pull's words */
    /* New records wait here and go in INSERT_BATCH rows per statement: a
     * statement's own setup costs as much as the row it inserts. They are
     * flushed before every commit and every read of the records table. */
    int pending;
    struct pending_record {
        int64_t device, seq, chunk;
        size_t len;
        uint8_t body[ARCHIVE_BODY_MAX];
    } batch[INSERT_BATCH];
} sqlite_backend;

/* The operations (archive_sqlite.c). */
extern const archive_ops sq_ops;
/* Prepares the statements the operations keep (after the schema is current). */
int sq_statements(sqlite_backend *s);
/* Finalizes, closes the database, frees. */
void sq_free(sqlite_backend *s);

/* Failures, each setting the context's detail and msg. */
int sq_fail(sqlite_backend *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The one message for a damaged archive: what failed, and how to recover. */
int sq_damaged(sqlite_backend *s, const char *what, const char *why);
/* The failure of the last SQLite call, in the words its code calls for
 * (damaged, busy, disk full, or @p status with SQLite's message). */
int sq_db_fail(sqlite_backend *s, int status, const char *what);
int sq_exec(sqlite_backend *s, const char *sql, const char *what);
/* sq_exec() for statements SQLite may answer with BUSY without waiting. */
int sq_exec_patient(sqlite_backend *s, const char *sql, const char *what);
int sq_prep(sqlite_backend *s, sqlite3_stmt **st, const char *sql);
/* The first @p n integer columns of the one row @p sql gives (?1 bound to
 * *@p device unless NULL) into @p v; *@p null0 (may be NULL) says whether
 * the first was NULL (read as 0). @p what names the query in an error. */
int sq_row_ints(sqlite_backend *s, const char *sql, const int64_t *device, const char *what, int n,
                int64_t *v, int *null0);

#endif
