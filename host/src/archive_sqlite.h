/*
 * The SQLite backend's private declarations, shared by its files:
 * archive_sqlite_open.c (recognising, creating, migrating and opening the
 * file), archive_sqlite.c (statements, transactions, bulk insert, the
 * operations table) and the operations of archive.h in
 * archive_sqlite_write.c, archive_sqlite_read.c and archive_sqlite_verify.c.
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

#define RECORD_COLS "seq, body"

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

/* The operations table (archive_sqlite.c). */
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

/* Shared by archive_sqlite.c and its operations in archive_sqlite_write.c,
 * archive_sqlite_read.c and archive_sqlite_verify.c. */
int sq_flush(sqlite_backend *s);
int sq_step_done(sqlite_backend *s, sqlite3_stmt *st, const char *what);
int sq_device(archive_backend *b, const penlink_info *info, int64_t now, int64_t *id);
int sq_next_seq(archive_backend *b, int64_t device, uint64_t *next, int *have);
int sq_pull_begin(archive_backend *b, int64_t device, uint64_t from, int64_t now, int64_t *pull);
int sq_pull_end(archive_backend *b, int64_t pull, const penlink_archive_pull_result *r,
                const char *result, const char *message, int64_t now);
int sq_chunk(archive_backend *b, int64_t device, int64_t pull, const penlink_chunk *c, int64_t now,
             int64_t *chunk, int *stored);
const char *sq_value_record(sqlite3_value *seq, sqlite3_value *body, penlink_record *r);
int sq_pin_key(archive_backend *b, int64_t device, const uint8_t *key, int *outcome);
int sq_head(archive_backend *b, int64_t device, int64_t pull, const penlink_head *h, int64_t now);
int sq_record(archive_backend *b, int64_t device, int64_t chunk, const penlink_record *r, int fresh,
              int *outcome);
int sq_alarm(archive_backend *b, int64_t device, int64_t pull, const char *kind, uint64_t seq,
             uint64_t count, const char *detail, int64_t now);
int sq_scan(archive_backend *b, const penlink_archive_filter *f, penlink_archive_record_cb cb,
            archive_damage_cb bad, void *user);
void sq_copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col);
int sq_alarms(archive_backend *b, const penlink_archive_filter *f,
              int (*cb)(void *user, const penlink_alarm *a), void *user);
int sq_config_log(archive_backend *b, const char *serial, const char *source, const char *user,
                  const char *host, const penlink_config *old_cfg, const penlink_config *new_cfg,
                  int64_t now);
int sq_config_history(archive_backend *b, const char *serial,
                      int (*cb)(void *user, const penlink_config_entry *e), void *user);
int sq_devices(archive_backend *b, int (*cb)(void *user, const penlink_archive_device *d),
               void *user);
const uint8_t *sq_blob32(sqlite3_stmt *st, int col);
int sq_pens(archive_backend *b, const char *serial,
            int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                      uint64_t first_from),
            void *user);
int sq_chunks(archive_backend *b, int64_t device, int (*cb)(void *user, const archive_chunk_row *c),
              void *user);
int sq_records(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
               int (*cb)(void *user, const penlink_record *r), archive_damage_cb bad, void *user);
int sq_record_count(archive_backend *b, int64_t device, uint64_t *n);
int sq_pulled_to(archive_backend *b, int64_t device, uint64_t *next, int *have);
int sq_seq_outliers(archive_backend *b, int64_t device, uint64_t *n, int64_t *lowest);
int sq_heads(archive_backend *b, int64_t device,
             int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
                       const uint8_t *sig, size_t sig_len),
             void *user);
int sq_verification_log(archive_backend *b, const penlink_verify_report *r, int64_t now);
int sq_verification_last(archive_backend *b, const char *serial, penlink_verification *out);
int sq_key_replace(archive_backend *b, const penlink_key_replacement *r);
int sq_annotate(archive_backend *b, const penlink_annotation *a);
int sq_key_replacements(archive_backend *b, const char *serial,
                        int (*cb)(void *user, const penlink_key_replacement *r), void *user);
int sq_annotations(archive_backend *b, int (*cb)(void *user, const penlink_annotation *a),
                   void *user);

#endif
