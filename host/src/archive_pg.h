/*
 * The PostgreSQL archive backend's private header, shared by its files:
 * archive_pg.c (connection, opening and closing, transactions),
 * archive_pg_sql.c (statements and results), archive_pg_schema.c (schema,
 * migrations, the server's roles), archive_pg_lock.c (the per-pen lock),
 * archive_pg_ops.c (the archive's operations) and archive_pg_copy.c (in
 * bulk: records by COPY in and out, a pull's chunks in pipeline mode).
 */
#ifndef PENLINK_ARCHIVE_PG_H
#define PENLINK_ARCHIVE_PG_H

#include <libpq-fe.h>

#include "archive.h"

/* Version 1 is the SQLite schema's version 3, made append-only throughout;
 * version 2 adds the auditors' annotations of findings (SQLite's version 4);
 * version 3 reads pens' rows as pushes write them; version 4 adds
 * key_replacements (SQLite's version 5). */
#define PG_SCHEMA_VERSION 4
/* Advisory lock classes (the first key of pg_advisory_xact_lock(int, int)). */
#define PG_LOCK_SCHEMA 1886153473 /* 0x706c6b01: migrations, key 0 */
#define PG_LOCK_PEN 1886153474    /* 0x706c6b02: one pull of a pen at a time, key: its device id */
/* How long a second pull of a pen waits for the first before it gives up. */
#define PG_PEN_LOCK_WAIT_S 600
#define PG_CONNECT_TIMEOUT_S "10"
/* A second pull of a pen asks for the lock this often while it waits (a
 * wait in the server could not be interrupted from here). */
#define PG_LOCK_POLL_MS 200
/* TCP keepalives unless the connection string sets them: a network cut is
 * noticed in about a minute (idle 30 s, then 3 probes 10 s apart), not the
 * system's two hours, by us and by the server, which then ends the
 * transaction and releases the pen's lock. */
#define PG_KEEPALIVES_IDLE_S "30"
#define PG_KEEPALIVES_INTERVAL_S "10"
#define PG_KEEPALIVES_COUNT "3"
/* The longest wait for one reply of the server, unless PENLINK_SERVER_TIMEOUT
 * (seconds) says otherwise: past it the connection is dropped as dead. */
#define PG_REPLY_WAIT_S 300
#define PG_REPLY_WAIT_MAX_S 86400
/* Once interrupted (SIGINT, SIGTERM: the context cancelled), a wait for the
 * server lasts at most this long: what was stored may still be committed,
 * but a server that does not answer does not keep penlink from exiting. */
#define PG_CANCEL_GRACE_MS 3000
/* How often a wait looks at the clock and the cancel flag. */
#define PG_WAIT_SLICE_MS 100

#define PG_MAX_PARAMS 12
/* Records wait in memory and go to the server in one COPY of this many
 * (or fewer: before every commit and every read of the records table). */
#define PG_COPY_BATCH 8192
/* A pull's chunks go in pipeline mode, their ids read back at most this many
 * statements later: the results wait in the server's socket buffer meanwhile,
 * which must not fill (the server would stop reading what we send). */
#define PG_PIPE_MAX 256

#define PG_STR_(x) #x
#define PG_STR(x) PG_STR_(x) /* a constant spelled into SQL */

/* The SQL condition "column @p col names the pen @p p": the serial whole, or
 * its first PG_SERIAL_BYTES bytes when the stored one is longer, as in the
 * SQLite backend: the public structs hold that many, and a pen must be found
 * by the serial the library handed out. */
#define PG_SERIAL_BYTES 32
#define PG_SERIAL_IS(col, p)                                                                       \
    "(" col " = " p " OR (octet_length(" col                                                       \
    ") > " PG_STR(PG_SERIAL_BYTES) " AND substring("                                               \
                                   "convert_to(" col ", 'UTF8') FROM 1 FOR " PG_STR(               \
                                       PG_SERIAL_BYTES) ") = convert_to(" p ", 'UTF8')))"

typedef struct pg_backend {
    archive_backend base;
    PGconn *conn;
    char name[256]; /* for messages: user@host/database, never a password */
    char *uri;      /* the connection string, for the lock's connection */
    int read_only;  /* a hot standby, or a role without INSERT: nothing is stored */
    int standby;    /* a hot standby (in recovery) */
    int schema;     /* the schema's version (older than ours only when opened read-only) */
    int in_txn;
    int64_t reply_wait_ms; /* the longest wait for one reply (pg_wait) */
    int dropped;           /* conn was dropped (a reply never came): not used again */
    int savepoint;         /* a savepoint is open in the transaction */
    /* the first failure of the open transaction: a COMMIT the server answers
     * with ROLLBACK is reported in its words */
    char txn_msg[512];

    /* The pen being pulled: its advisory lock is held by a transaction of
     * its own on a second connection, so it lasts across the pull's commits
     * and dies with that transaction however the process ends. */
    PGconn *lock_conn;
    int64_t locked_device; /* 0: none held */
    int lock_lost;         /* its session ended: nothing more of the pull is committed */
    int pull_open;         /* between pull_begin and pull_end: keep the lock */

    /* chunks sent in pipeline mode (archive_pg_copy.c): a chunk's id is
     * provisional, -(i + 1), until the results are read into slots[i] */
    int chunk_prepared; /* the chunk statement is prepared on conn */
    int64_t *slots;     /* the ids read back (0: not yet) */
    int n_slots, cap_slots;
    int first_unread; /* the slots whose results are still in the pipeline */

    /* records waiting for COPY (archive_pg_copy.c) */
    int pending;
    struct pg_pending {
        int64_t device, seq, chunk;
        uint8_t len;
        uint8_t body[ARCHIVE_BODY_MAX];
    } * batch;
} pg_backend;

/* Parameters of one statement: integers and text as text, bytes as binary. */
typedef struct pg_params {
    int n;
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS];
    int formats[PG_MAX_PARAMS];
    char num[PG_MAX_PARAMS][24];
} pg_params;

void pg_param_int(pg_params *p, int64_t v);
void pg_param_text(pg_params *p, const char *s);              /* NULL: SQL NULL */
void pg_param_bytes(pg_params *p, const void *b, size_t len); /* NULL: SQL NULL */

/* Waits for the server on @p conn, bounded (reply_wait_ms, shorter once the
 * context is cancelled) and interruptible: until what was sent is flushed
 * and, with @p for_result, a result can be read without blocking. A wait
 * that ends without it drops the connection (PENLINK_ERR_IO; after a cancel,
 * PENLINK_ERR_CANCELLED). Every call on a connection that may block goes
 * through it: the connections are in nonblocking mode. */
int pg_wait(pg_backend *g, PGconn *conn, int for_result, const char *what);
/* PQexec / PQexecParams (@p binary: results in binary) with pg_wait's bounds:
 * the result (the caller checks its status and PQclear()s it), or NULL with
 * *status set. */
PGresult *pg_exec(pg_backend *g, PGconn *conn, const char *sql, const pg_params *p, int binary,
                  const char *what, int *status);
/* The results of what was sent on @p conn, as pg_exec() returns them. */
PGresult *pg_collect(pg_backend *g, PGconn *conn, const char *what, int *status);
/* Runs a statement (results in binary); NULL on failure, with the error set
 * on the context (*status gets it). The caller PQclear()s the result. */
PGresult *pg_run(pg_backend *g, const char *sql, const pg_params *p, const char *what, int *status);
/* The first @p n integer columns of the one row @p sql gives ($1 bound to
 * *@p device unless NULL) into @p v; *@p null0 (may be NULL) says whether
 * the first was NULL (read as 0). @p what names the query in an error. */
int pg_row_ints(pg_backend *g, const char *sql, const int64_t *device, const char *what, int n,
                int64_t *v, int *null0);
/* pg_run() for statements whose result is not needed. */
int pg_do(pg_backend *g, const char *sql, const pg_params *p, const char *what);
/* PENLINK_OK when the archive may be written, else the error in words: a
 * standby, or a role that may only read. @p what: what was to be stored. */
int pg_may_write(pg_backend *g, const char *what);
/* Sets the context's error for the last failure on @p conn; returns the status. */
int pg_fail(pg_backend *g, PGconn *conn, const PGresult *res, const char *what);

/* The @p n-byte big-endian number at @p p (binary results and COPY data). */
uint64_t pg_be_get(const uint8_t *p, int n);
/* Binary result columns. */
int64_t pg_col_int(const PGresult *r, int row, int col);
int pg_col_null(const PGresult *r, int row, int col);
const uint8_t *pg_col_bytes(const PGresult *r, int row, int col, size_t *len);
void pg_col_text(const PGresult *r, int row, int col, char *dst, size_t cap);

/* The per-pen lock (archive_pg_lock.c): taken by the device operation. */
int pg_lock_pen(pg_backend *g, int64_t device, const char *serial);
void pg_unlock_pen(pg_backend *g);

/* A chunk sent in pipeline mode (archive_pg_copy.c): @p p are the chunk
 * statement's parameters (PG_CHUNK_SQL); *chunk gets a provisional id, good
 * for the records of the chunk, resolved before they are sent. */
int pg_chunk_send(pg_backend *g, const pg_params *p, int64_t *chunk);
/* Reads the pipeline's results and leaves pipeline mode; PENLINK_OK or the
 * first failure. Every other statement on conn runs after it (pg_run does). */
int pg_pipe_drain(pg_backend *g);
/* Forgets the provisional ids at the end of a transaction. */
void pg_pipe_forget(pg_backend *g);
/* Stores a chunk once: the id of the new row and true, or of the stored one and false. */
#define PG_CHUNK_SQL                                                                               \
    "WITH ins AS (INSERT INTO chunks (device_id, pull_id, received_ms, first_seq, record_count, "  \
    "raw_size, data, prev_link, link) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT "    \
    "(device_id, first_seq, record_count, sha256(data)) DO NOTHING RETURNING id) SELECT id, true " \
    "FROM ins UNION ALL SELECT id, false FROM chunks WHERE device_id = $1 AND first_seq = $4 AND " \
    "record_count = $5 AND sha256(data) = sha256($7) AND data = $7 LIMIT 1"

/* Records in bulk (archive_pg_copy.c). */
int pg_copy_add(pg_backend *g, int64_t device, int64_t chunk, const penlink_record *r);
int pg_copy_flush(pg_backend *g); /* sends the waiting records */
void pg_copy_drop(pg_backend *g); /* forgets them (a rollback) */
/* Rows that cannot be records go to @p bad (archive.h); the reading goes on. */
int pg_scan(archive_backend *b, const penlink_archive_filter *f, penlink_archive_record_cb cb,
            archive_damage_cb bad, void *user);
int pg_records(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
               int (*cb)(void *user, const penlink_record *r), archive_damage_cb bad, void *user);

/* The operations table (archive_pg_ops.c); begin, commit, rollback and
 * close are archive_pg.c's and filled in there. */
extern const archive_ops pg_ops;
void pg_close(archive_backend *b);
int pg_begin(archive_backend *b);
int pg_commit(archive_backend *b);
int pg_savepoint(archive_backend *b);
int pg_rollback_to_savepoint(archive_backend *b);
int pg_rollback(archive_backend *b);
int pg_writable(archive_backend *b);

/* Shared by archive_pg.c, archive_pg_sql.c, archive_pg_schema.c and archive_pg_lock.c. */
int pg_lock_alive(pg_backend *g);
int pg_quiet_do(pg_backend *g, PGconn *conn, const char *sql);
int pg_cancelled(const pg_backend *g);
void pg_server_words(PGconn *conn, const PGresult *res, char *out, size_t cap);
int64_t pg_reply_wait_s(void);
int pg_open(penlink_ctx *ctx, const char *uri, int create, int readonly, pg_backend **out,
            int *from);
int pg_name_server(penlink_ctx *ctx, const char *uri, char *name, size_t cap);
void pg_application_name(char *out, size_t cap);
PGconn *pg_connect_to(const char *uri);
int pg_session_setup(pg_backend *g, PGconn *conn);
int pg_schema_version(pg_backend *g, int *version);
int pg_newer_schema(pg_backend *g, int version);
int pg_migrate(pg_backend *g, int create, int *from);

#endif
