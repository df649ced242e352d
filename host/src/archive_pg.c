/*
 * The PostgreSQL archive backend, for clinics that share one archive: the
 * connection, the schema and its migrations, transactions, the per-pen lock
 * and the server's roles. The operations are in archive_pg_ops.c, records
 * in bulk in archive_pg_copy.c.
 *
 * The logical schema is the SQLite archive's, in a schema of its own
 * ("penlink"), with one difference that makes it append-only throughout:
 * nothing is ever updated. What SQLite keeps in a row it updates (a pen's
 * last sighting, a pull's outcome, a pinned key) is a row appended here
 * (pen_sightings, pull_ends, pen_keys), and views with the SQLite tables'
 * names and columns (devices, device_firmware, pulls) put them together.
 * Every table refuses UPDATE, DELETE and TRUNCATE by trigger, and the
 * writer role that init-server creates has SELECT and INSERT only.
 *
 * Commits are durable when they return (synchronous_commit is set on for
 * penlink's sessions whatever the server's default), which is what lets the
 * pull acknowledge records: archive.c commits before it acknowledges, and a
 * COMMIT the server answers with anything but COMMIT is a failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "archive_pg.h"
#include "clock.h"

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

static const char pg_schema_v1[] =
    "CREATE TABLE penlink.schema_version (\n"
    "  version integer PRIMARY KEY, applied_ms bigint NOT NULL, penlink_version text NOT NULL);\n"
    "CREATE TABLE penlink.pens (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, serial text NOT NULL UNIQUE,\n"
    "  first_seen_ms bigint NOT NULL);\n"
    "CREATE TABLE penlink.pen_keys (\n"
    "  device_id bigint PRIMARY KEY REFERENCES penlink.pens(id),\n"
    "  public_key bytea NOT NULL CHECK (length(public_key) = 32), pinned_ms bigint NOT NULL);\n"
    "CREATE TABLE penlink.pen_sightings (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), at_ms bigint NOT NULL,\n"
    "  model text, hardware_revision text, firmware_version text NOT NULL);\n"
    "CREATE INDEX pen_sightings_device ON penlink.pen_sightings (device_id, id);\n"
    "CREATE TABLE penlink.pull_starts (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), started_ms bigint NOT NULL,\n"
    "  host text, os_user text, penlink_version text, from_seq bigint);\n"
    "CREATE INDEX pull_starts_device ON penlink.pull_starts (device_id);\n"
    "CREATE TABLE penlink.pull_ends (\n"
    "  pull_id bigint PRIMARY KEY REFERENCES penlink.pull_starts(id),\n"
    "  finished_ms bigint NOT NULL, next_seq bigint, records_new bigint, records_dup bigint,\n"
    "  conflicts bigint, gap bigint, result text NOT NULL, message text);\n"
    "CREATE TABLE penlink.chunks (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id),\n"
    "  pull_id bigint REFERENCES penlink.pull_starts(id), received_ms bigint NOT NULL,\n"
    "  first_seq bigint NOT NULL, record_count integer NOT NULL, raw_size bigint NOT NULL,\n"
    "  data bytea NOT NULL, prev_link bytea, link bytea);\n"
    /* a chunk is stored once: its bytes by their hash (an index entry has a size limit) */
    "CREATE UNIQUE INDEX chunks_content ON penlink.chunks\n"
    "  (device_id, first_seq, record_count, sha256(data));\n"
    /* records reference their pen and chunk as in SQLite, unchecked per row: the pull
     * writes them in order itself, and a check per row would halve the bulk insert */
    "CREATE TABLE penlink.records (\n"
    "  device_id bigint NOT NULL, seq bigint NOT NULL CHECK (seq >= 0), body bytea NOT NULL,\n"
    "  chunk_id bigint NOT NULL, PRIMARY KEY (device_id, seq));\n"
    "CREATE TABLE penlink.alarms (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id),\n"
    "  pull_id bigint REFERENCES penlink.pull_starts(id), at_ms bigint NOT NULL,\n"
    "  kind text NOT NULL, seq bigint NOT NULL, count bigint NOT NULL, detail text);\n"
    "CREATE INDEX alarms_device ON penlink.alarms (device_id);\n"
    "CREATE TABLE penlink.config_history (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), at_ms bigint NOT NULL,\n"
    "  source text NOT NULL, os_user text, host text, revision bigint NOT NULL,\n"
    "  old_json text, new_json text NOT NULL);\n"
    "CREATE TABLE penlink.heads (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id),\n"
    "  pull_id bigint REFERENCES penlink.pull_starts(id), at_ms bigint NOT NULL,\n"
    "  next_seq bigint NOT NULL, link bytea NOT NULL, signature bytea NOT NULL);\n"
    "CREATE INDEX heads_device ON penlink.heads (device_id, id);\n"
    "CREATE TABLE penlink.verifications (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), at_ms bigint NOT NULL,\n"
    "  result text NOT NULL, through_seq bigint, records bigint NOT NULL,\n"
    "  chunks bigint NOT NULL, detail text);\n"
    "CREATE FUNCTION penlink.append_only() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  RAISE EXCEPTION '% are append-only', TG_ARGV[0] USING ERRCODE = 'insufficient_privilege';\n"
    "END $$;\n"
    "DO $$\n"
    "DECLARE t text;\n"
    "BEGIN\n"
    "  FOREACH t IN ARRAY ARRAY['schema_version', 'pens', 'pen_keys', 'pen_sightings',\n"
    "    'pull_starts', 'pull_ends', 'chunks', 'records', 'alarms', 'config_history', 'heads',\n"
    "    'verifications'] LOOP\n"
    "    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON penlink.%I '\n"
    "      'FOR EACH STATEMENT EXECUTE FUNCTION penlink.append_only(%L)', t || '_append_only',\n"
    "      t, replace(t, '_', ' '));\n"
    "  END LOOP;\n"
    "END $$;\n"
    /* the SQLite archive's tables, as views */
    "CREATE VIEW penlink.devices AS\n"
    "  SELECT p.id, p.serial, s.model, s.hardware_revision, p.first_seen_ms,\n"
    "    coalesce(s.at_ms, p.first_seen_ms) AS last_seen_ms, k.public_key\n"
    "  FROM penlink.pens p LEFT JOIN penlink.pen_keys k ON k.device_id = p.id\n"
    "  LEFT JOIN LATERAL (SELECT model, hardware_revision, at_ms FROM penlink.pen_sightings x\n"
    "    WHERE x.device_id = p.id ORDER BY x.id DESC LIMIT 1) s ON true;\n"
    "CREATE VIEW penlink.device_firmware AS\n"
    "  SELECT device_id, firmware_version, min(at_ms) AS first_seen_ms,\n"
    "    max(at_ms) AS last_seen_ms FROM penlink.pen_sightings GROUP BY 1, 2;\n"
    "CREATE VIEW penlink.pulls AS\n"
    "  SELECT s.id, s.device_id, s.started_ms, e.finished_ms, s.host, s.os_user,\n"
    "    s.penlink_version, s.from_seq, e.next_seq, e.records_new, e.records_dup,\n"
    "    e.conflicts, e.gap, coalesce(e.result, 'running') AS result, e.message\n"
    "  FROM penlink.pull_starts s LEFT JOIN penlink.pull_ends e ON e.pull_id = s.id;\n";

/* Version 2: notes on findings (penlink audit annotate), append-only like the rest. */
static const char pg_schema_v2[] =
    "CREATE TABLE penlink.annotations (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, finding text NOT NULL,\n"
    "  at_ms bigint NOT NULL, author text NOT NULL, os_user text, host text,\n"
    "  text text NOT NULL);\n"
    "CREATE TRIGGER annotations_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON\n"
    "  penlink.annotations FOR EACH STATEMENT EXECUTE FUNCTION "
    "penlink.append_only('annotations');\n";

/* Version 3: a pen's sightings are ordered by their time, not by when they
 * were appended: archive push appends them from a laptop's archive, which
 * may have seen the pen before or after the server did. */
static const char pg_schema_v3[] =
    "CREATE INDEX pen_sightings_latest ON penlink.pen_sightings (device_id, at_ms DESC, id DESC);\n"
    "CREATE OR REPLACE VIEW penlink.devices AS\n"
    "  SELECT p.id, p.serial, s.model, s.hardware_revision, least(p.first_seen_ms, (SELECT\n"
    "    min(at_ms) FROM penlink.pen_sightings y WHERE y.device_id = p.id)) AS first_seen_ms,\n"
    "    coalesce(s.at_ms, p.first_seen_ms) AS last_seen_ms, k.public_key\n"
    "  FROM penlink.pens p LEFT JOIN penlink.pen_keys k ON k.device_id = p.id\n"
    "  LEFT JOIN LATERAL (SELECT model, hardware_revision, at_ms FROM penlink.pen_sightings x\n"
    "    WHERE x.device_id = p.id ORDER BY x.at_ms DESC, x.id DESC LIMIT 1) s ON true;\n";

/* Version 4: device keys replaced on purpose (penlink keys replace),
 * append-only like the rest. */
static const char pg_schema_v4[] =
    "CREATE TABLE penlink.key_replacements (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), at_ms bigint NOT NULL,\n"
    "  os_user text, host text, reason text NOT NULL,\n"
    "  old_key bytea NOT NULL CHECK (length(old_key) = 32),\n"
    "  new_key bytea NOT NULL CHECK (length(new_key) = 32),\n"
    "  from_seq bigint NOT NULL, heads_before bigint NOT NULL);\n"
    "CREATE TRIGGER key_replacements_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON\n"
    "  penlink.key_replacements FOR EACH STATEMENT\n"
    "  EXECUTE FUNCTION penlink.append_only('key replacements');\n";

/* Forward migrations: pg_migrations[v] takes the schema from version v to v+1. */
static const char *const pg_migrations[PG_SCHEMA_VERSION] = { pg_schema_v1, pg_schema_v2,
                                                              pg_schema_v3, pg_schema_v4 };

/* The tables a writer may INSERT into (and the views and tables everyone may read). */
static const char pg_insert_tables[] =
    "penlink.pens, penlink.pen_keys, penlink.pen_sightings, penlink.pull_starts, "
    "penlink.pull_ends, penlink.chunks, penlink.records, penlink.alarms, "
    "penlink.config_history, penlink.heads, penlink.verifications, penlink.annotations, "
    "penlink.key_replacements";
/* The one table an auditor's role may INSERT into: notes on findings. */
#define PG_READER_INSERT_TABLE "penlink.annotations"

/* ---- statements and results --------------------------------------------- */

void pg_param_int(pg_params *p, int64_t v)
{
    snprintf(p->num[p->n], sizeof p->num[0], "%lld", (long long)v);
    p->values[p->n] = p->num[p->n];
    p->lengths[p->n] = 0;
    p->formats[p->n++] = 0;
}

void pg_param_text(pg_params *p, const char *s)
{
    p->values[p->n] = s;
    p->lengths[p->n] = 0;
    p->formats[p->n++] = 0;
}

void pg_param_bytes(pg_params *p, const void *b, size_t len)
{
    p->values[p->n] = b;
    p->lengths[p->n] = (int)len;
    p->formats[p->n++] = 1;
}

/* The server's words without the trailing newline. */
static void pg_server_words(PGconn *conn, const PGresult *res, char *out, size_t cap)
{
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !*m)
        m = conn ? PQerrorMessage(conn) : "no connection";
    snprintf(out, cap, "%s", m);
    for (char *p = out; *p; p++) /* one line: libpq's messages have several */
        if (*p == '\n' || *p == '\t')
            *p = ' ';
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
}

static int pg_fail_words(pg_backend *g, PGconn *conn, const PGresult *res, const char *what);
static int pg_lock_alive(pg_backend *g);
static int pg_quiet_do(pg_backend *g, PGconn *conn, const char *sql);

int pg_fail(pg_backend *g, PGconn *conn, const PGresult *res, const char *what)
{
    int rc = pg_fail_words(g, conn, res, what);
    /* the first failure of a transaction is the one its COMMIT reports */
    if (g->in_txn && conn == g->conn && !g->txn_msg[0])
        snprintf(g->txn_msg, sizeof g->txn_msg, "%s", penlink_ctx_errmsg(g->base.ctx));
    return rc;
}

static int pg_fail_words(pg_backend *g, PGconn *conn, const PGresult *res, const char *what)
{
    char words[300];
    pg_server_words(conn, res, words, sizeof words);
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* A failed result without an SQLSTATE is libpq's own: the connection broke.
     * libpq may not call it CONNECTION_BAD yet (a failed write waits for the
     * read side to see the end), so the status alone does not tell. */
    if (!conn || PQstatus(conn) != CONNECTION_OK || (res && !state) ||
        (state && strncmp(state, "08", 2) == 0) || (state && strncmp(state, "57P", 3) == 0))
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s: %s: the server went away (%s). What was not committed "
                            "was not acknowledged: the pens still hold it; pull again when the "
                            "server is back",
                            g->name, what, words);
    if (state && strcmp(state, "53100") == 0) /* disk_full */
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            g->pull_open ? "archive %s: the server's disk is full (%s): nothing of "
                                           "this pull was acknowledged; free space on the server "
                                           "and pull again"
                                         : "archive %s: the server's disk is full (%s): nothing of "
                                           "it was written; free space on the server and try again",
                            g->name, words);
    if (state && (strcmp(state, "42501") == 0 || strcmp(state, "25006") == 0))
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s: %s: not allowed (%s). Writing needs the writer role on "
                            "the primary server, setting the archive up the database owner's "
                            "rights (penlink archive init-server)",
                            g->name, what, words);
    if (state &&
        (strcmp(state, "55P03") == 0 || strcmp(state, "40P01") == 0 || strcmp(state, "40001") == 0))
        return penlink_fail(g->base.ctx, PENLINK_ERR_BUSY, "archive %s is busy (%s): %s; try again",
                            g->name, what, words);
    return penlink_fail(g->base.ctx, PENLINK_ERR_IO, "archive %s: %s: %s", g->name, what, words);
}

int pg_may_write(pg_backend *g, const char *what)
{
    if (g->standby)
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s: %s: the server is a hot standby, which can only be read "
                            "(audit, export, verify): pull and push into its primary",
                            g->name, what);
    if (g->read_only)
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s: %s: not allowed: this login may only read the archive "
                            "(the reader role); writing needs the writer role",
                            g->name, what);
    return PENLINK_OK;
}

static int pg_cancelled(const pg_backend *g)
{
    return atomic_load(&g->base.ctx->cancelled) != 0;
}

/* Ends a connection whose server did not answer, or whose wait was
 * interrupted: its state is unknown, so it is not used again (every later
 * call on it fails at once), and the server ends its transaction when it
 * sees the connection closed. */
static void pg_drop(PGconn *conn)
{
    if (PQsocket(conn) >= 0)
        shutdown(PQsocket(conn), SHUT_RDWR);
}

int pg_wait(pg_backend *g, PGconn *conn, int for_result, const char *what)
{
    int64_t start = pc_mono_ms();
    for (;;) {
        int f = PQflush(conn);
        if (f < 0)
            return pg_fail(g, conn, NULL, what);
        if (for_result) {
            if (!PQconsumeInput(conn))
                return pg_fail(g, conn, NULL, what);
            if (!PQisBusy(conn))
                return PENLINK_OK;
        } else if (f == 0) {
            return PENLINK_OK;
        }
        int stop = pg_cancelled(g);
        int64_t limit = g->reply_wait_ms, waited = pc_mono_ms() - start;
        if (stop && limit > PG_CANCEL_GRACE_MS)
            limit = PG_CANCEL_GRACE_MS;
        if (waited >= limit) {
            pg_drop(conn);
            if (conn == g->conn)
                g->dropped = 1;
            if (stop)
                return penlink_fail(g->base.ctx, PENLINK_ERR_CANCELLED,
                                    "archive %s: %s: interrupted while waiting for the server; "
                                    "what was not committed was not acknowledged",
                                    g->name, what);
            return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                                "archive %s: %s: the server did not answer for %lld s (a network "
                                "cut?), the connection was dropped: the server went away. What "
                                "was not committed was not acknowledged: the pens still hold it; "
                                "pull again when the server is back",
                                g->name, what, (long long)(limit / 1000));
        }
        struct pollfd pfd = { .fd = PQsocket(conn), .events = POLLIN | (f ? POLLOUT : 0) };
        int64_t slice = limit - waited < PG_WAIT_SLICE_MS ? limit - waited : PG_WAIT_SLICE_MS;
        if (poll(&pfd, 1, (int)slice) < 0 && errno != EINTR)
            return penlink_fail(g->base.ctx, PENLINK_ERR_IO, "archive %s: %s: poll: %s", g->name,
                                what, strerror(errno));
    }
}

PGresult *pg_exec(pg_backend *g, PGconn *conn, const char *sql, const pg_params *p, int binary,
                  const char *what, int *status)
{
    *status = PENLINK_OK;
    if (conn == g->conn && g->dropped) {
        *status =
            penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                         "archive %s: %s: the connection to the server was dropped", g->name, what);
        return NULL;
    }
    int sent = p || binary ? PQsendQueryParams(conn, sql, p ? p->n : 0, NULL, p ? p->values : NULL,
                                               p ? p->lengths : NULL, p ? p->formats : NULL, binary)
                           : PQsendQuery(conn, sql);
    if (!sent) {
        *status = pg_fail(g, conn, NULL, what);
        return NULL;
    }
    return pg_collect(g, conn, what, status);
}

PGresult *pg_collect(pg_backend *g, PGconn *conn, const char *what, int *status)
{
    /* as PQexec: the last result, or the first that failed; a COPY at once */
    PGresult *last = NULL;
    for (;;) {
        *status = pg_wait(g, conn, 1, what);
        if (*status != PENLINK_OK) {
            PQclear(last);
            return NULL;
        }
        PGresult *r = PQgetResult(conn);
        if (!r)
            break;
        ExecStatusType x = PQresultStatus(r);
        if (x == PGRES_COPY_IN || x == PGRES_COPY_OUT) {
            PQclear(last);
            return r;
        }
        if (last && PQresultStatus(last) == PGRES_FATAL_ERROR) {
            PQclear(r);
            continue;
        }
        PQclear(last);
        last = r;
    }
    if (!last)
        *status = pg_fail(g, conn, NULL, what);
    return last;
}

PGresult *pg_run(pg_backend *g, const char *sql, const pg_params *p, const char *what, int *status)
{
    *status = pg_pipe_drain(g);
    if (*status != PENLINK_OK)
        return NULL;
    PGresult *r = pg_exec(g, g->conn, sql, p, 1, what, status);
    if (!r)
        return NULL;
    ExecStatusType x = PQresultStatus(r);
    if (x == PGRES_COMMAND_OK || x == PGRES_TUPLES_OK) {
        *status = PENLINK_OK;
        return r;
    }
    *status = pg_fail(g, g->conn, r, what);
    PQclear(r);
    return NULL;
}

int pg_do(pg_backend *g, const char *sql, const pg_params *p, const char *what)
{
    int rc;
    PQclear(pg_run(g, sql, p, what, &rc));
    return rc;
}

int pg_row_ints(pg_backend *g, const char *sql, const int64_t *device, const char *what, int n,
                int64_t *v, int *null0)
{
    pg_params p = { 0 };
    if (device)
        pg_param_int(&p, *device);
    int rc;
    PGresult *r = pg_run(g, sql, device ? &p : NULL, what, &rc);
    if (!r)
        return rc;
    for (int i = 0; i < n; i++)
        v[i] = pg_col_int(r, 0, i);
    if (null0)
        *null0 = pg_col_null(r, 0, 0);
    PQclear(r);
    return PENLINK_OK;
}

uint64_t pg_be_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int64_t pg_col_int(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    const uint8_t *p = (const uint8_t *)PQgetvalue(r, row, col);
    switch (PQgetlength(r, row, col)) {
    case 8: return (int64_t)pg_be_get(p, 8);
    case 4: return (int32_t)(uint32_t)pg_be_get(p, 4);
    case 2: return (int16_t)(uint16_t)pg_be_get(p, 2);
    case 1: return p[0]; /* bool */
    default: return 0;
    }
}

int pg_col_null(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col);
}

const uint8_t *pg_col_bytes(const PGresult *r, int row, int col, size_t *len)
{
    *len = PQgetisnull(r, row, col) ? 0 : (size_t)PQgetlength(r, row, col);
    return PQgetisnull(r, row, col) ? NULL : (const uint8_t *)PQgetvalue(r, row, col);
}

void pg_col_text(const PGresult *r, int row, int col, char *dst, size_t cap)
{
    snprintf(dst, cap, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* ---- naming a server ------------------------------------------------------ */

int archive_is_server(const char *uri)
{
    if (!uri)
        return 0;
    if (strncmp(uri, "postgresql://", 13) == 0 || strncmp(uri, "postgres://", 11) == 0)
        return 1;
    /* a keyword/value connection string: "service=NAME", "host=... dbname=..." */
    size_t n = strspn(uri, "abcdefghijklmnopqrstuvwxyz_");
    return n > 0 && uri[n] == '=';
}

/*
 * Checks a connection string and names the server for messages: a
 * password in it is refused (it would be seen in ps and shell histories;
 * libpq reads ~/.pgpass, PGPASSFILE and service files for that).
 */
static int name_server_in(penlink_ctx *ctx, const char *uri, char *name, size_t cap, int depth)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(uri, &err);
    if (!opts) {
        int rc = penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "archive: not a connection string: %s",
                              err ? err : "out of memory");
        PQfreemem(err);
        return rc;
    }
    const char *host = NULL, *db = NULL, *user = NULL, *service = NULL, *port = NULL;
    int password = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (strcmp(o->keyword, "password") == 0)
            password = 1;
        else if (strcmp(o->keyword, "host") == 0)
            host = o->val;
        else if (strcmp(o->keyword, "dbname") == 0)
            db = o->val;
        else if (strcmp(o->keyword, "user") == 0)
            user = o->val;
        else if (strcmp(o->keyword, "service") == 0)
            service = o->val;
        else if (strcmp(o->keyword, "port") == 0)
            port = o->val;
    }
    /* a dbname that is itself a connection string (libpq expands it): named,
     * and checked for a password, as the one it is; never echoed whole */
    if (db && archive_is_server(db) && depth < 1) {
        int rc = name_server_in(ctx, db, name, cap, depth + 1);
        PQconninfoFree(opts);
        return rc;
    }
    if (service)
        snprintf(name, cap, "service=%s", service);
    else
        snprintf(name, cap, "postgresql://%s%s%s%s%s/%s", user ? user : "", user ? "@" : "",
                 host ? host : "", port ? ":" : "", port ? port : "",
                 db && !strchr(db, '=') && !strstr(db, "://") ? db : "");
    PQconninfoFree(opts);
    if (password)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "archive %s: a password in the connection string would show in ps "
                            "and shell histories: put it in ~/.pgpass (or PGPASSFILE, or a "
                            "service file) instead",
                            name);
    return PENLINK_OK;
}

static int pg_name_server(penlink_ctx *ctx, const char *uri, char *name, size_t cap)
{
    return name_server_in(ctx, uri, name, cap, 0);
}

/* What pg_stat_activity shows for our sessions: who pulls, from where. */
static void pg_application_name(char *out, size_t cap)
{
    char host[64] = "";
    struct passwd *pw = getpwuid(geteuid());
    gethostname(host, sizeof host - 1);
    snprintf(out, cap, "penlink %.20s@%.24s pid %ld", pw && pw->pw_name ? pw->pw_name : "?", host,
             (long)getpid());
}

/* The library never prints: the server's notices and warnings are dropped
 * (an error that matters comes back as the result of the statement). */
static void quiet(void *arg, const char *message)
{
    (void)arg, (void)message;
}

static PGconn *pg_connect_to(const char *uri)
{
    char app[128]; /* the server keeps 63 bytes of it */
    pg_application_name(app, sizeof app);
    /* the connection string's own settings (expanded from dbname) override all
     * but dbname: its keepalives, its connect_timeout */
    const char *const keys[] = {
        "connect_timeout",     "fallback_application_name", "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count",          "dbname",     NULL
    };
    const char *const vals[] = {
        PG_CONNECT_TIMEOUT_S, app, "1", PG_KEEPALIVES_IDLE_S, PG_KEEPALIVES_INTERVAL_S,
        PG_KEEPALIVES_COUNT,  uri, NULL
    };
    PGconn *conn = PQconnectdbParams(keys, vals, 1);
    if (conn)
        PQsetNoticeProcessor(conn, quiet, NULL);
    /* every wait for the server is pg_wait's, bounded and interruptible */
    if (conn && PQstatus(conn) == CONNECTION_OK)
        PQsetnonblocking(conn, 1);
    return conn;
}

/* Our sessions: our schema first, commits that are durable when they return. */
static int pg_session_setup(pg_backend *g, PGconn *conn)
{
    int rc;
    PGresult *r = pg_exec(g, conn,
                          "SET search_path = penlink; SET synchronous_commit = on; "
                          "SET client_min_messages = warning",
                          NULL, 0, "connect", &rc);
    if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = pg_fail(g, conn, r, "connect");
    PQclear(r);
    return rc;
}

/* ---- schema --------------------------------------------------------------- */

/* The schema's version, 0 when there is none. pg_class is read by a query
 * (a snapshot taken now), not through to_regclass() and the catalog caches,
 * which an advisory lock does not refresh: under the migration lock, a
 * schema another penlink just created must be seen.
 *
 * The server's counterpart of the SQLite archive's application_id: a schema
 * "penlink" is penlink's when it holds the table schema_version with its
 * columns (version, applied_ms, penlink_version). One that holds tables but
 * not that is another program's, and is refused before anything is written
 * to it (#PENLINK_ERR_UNSUPPORTED): penlink's tables are never added beside
 * another program's. */
static int pg_schema_version(pg_backend *g, int *version)
{
    int rc;
    PGresult *r = pg_run(
        g,
        "SELECT count(*), count(*) FILTER (WHERE c.relname = 'schema_version'), (SELECT count(*) "
        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class t ON t.oid = a.attrelid JOIN "
        "pg_catalog.pg_namespace s ON s.oid = t.relnamespace WHERE s.nspname = 'penlink' AND "
        "t.relname = 'schema_version' AND a.attname IN ('version', 'applied_ms', "
        "'penlink_version') AND NOT a.attisdropped), coalesce(string_agg(c.relname, ', ' ORDER BY "
        "c.relname) FILTER (WHERE c.relname <> 'schema_version'), '') FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'penlink' AND "
        "c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        NULL, "schema version", &rc);
    if (!r)
        return rc;
    int64_t tables = pg_col_int(r, 0, 0), ours = pg_col_int(r, 0, 1), cols = pg_col_int(r, 0, 2);
    char names[160];
    pg_col_text(r, 0, 3, names, sizeof names);
    PQclear(r);
    *version = 0;
    if (tables == 0)
        return PENLINK_OK;
    if (!ours || cols != 3)
        return penlink_fail(g->base.ctx, PENLINK_ERR_UNSUPPORTED,
                            "archive %s is not a penlink archive: its schema penlink holds "
                            "another program's tables (%s) and no penlink schema_version. penlink "
                            "left it untouched; give the database of a penlink archive with "
                            "--archive",
                            g->name, names[0] ? names : "schema_version");
    int64_t v = 0;
    rc = pg_row_ints(g, "SELECT coalesce(max(version), 0)::int4 FROM penlink.schema_version", NULL,
                     "schema version", 1, &v, NULL);
    if (rc == PENLINK_OK)
        *version = (int)v;
    return rc;
}

static int migrate_locked(pg_backend *g, int *from)
{
    int version = 0;
    int rc =
        pg_do(g, "SELECT pg_advisory_xact_lock(" PG_STR(PG_LOCK_SCHEMA) ", 0)", NULL, "migrate");
    /* read it again under the lock: another penlink may have just migrated */
    if (rc == PENLINK_OK)
        rc = pg_schema_version(g, &version);
    *from = version;
    if (rc == PENLINK_OK && version == 0)
        rc = pg_do(g, "CREATE SCHEMA IF NOT EXISTS penlink", NULL, "create the schema");
    for (int v = version; rc == PENLINK_OK && v < PG_SCHEMA_VERSION; v++) {
        PGresult *r = pg_exec(g, g->conn, pg_migrations[v], NULL, 0, "migrate", &rc);
        if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = pg_fail(g, g->conn, r, "migrate");
        PQclear(r);
        pg_params p = { 0 };
        pg_param_int(&p, v + 1);
        pg_param_int(&p, pc_wall_ms());
        pg_param_text(&p, penlink_version());
        if (rc == PENLINK_OK)
            rc = pg_do(g,
                       "INSERT INTO penlink.schema_version (version, applied_ms, penlink_version) "
                       "VALUES ($1, $2, $3)",
                       &p, "migrate");
    }
    return rc;
}

/*
 * Brings the schema to this version in one transaction, or refuses a newer
 * one untouched. @p create: an archive with no schema yet may be set up
 * (a pull); else it is an error (audit, export, verify of a mistyped URI).
 * *from gets the version found.
 */
/* An archive written by a newer penlink: refused, left untouched. */
static int pg_newer_schema(pg_backend *g, int version)
{
    return penlink_fail(g->base.ctx, PENLINK_ERR_UNSUPPORTED,
                        "archive %s has schema version %d, newer than this penlink's %d: update "
                        "penlink (the archive was left untouched)",
                        g->name, version, PG_SCHEMA_VERSION);
}

static int pg_migrate(pg_backend *g, int create, int *from)
{
    int version;
    int rc = pg_schema_version(g, &version);
    *from = version;
    if (rc != PENLINK_OK || version == PG_SCHEMA_VERSION)
        return rc;
    if (version > PG_SCHEMA_VERSION)
        return pg_newer_schema(g, version);
    if (version == 0 && !create)
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s holds no penlink archive (schema penlink): pull a pen "
                            "into it first, run 'penlink archive init-server', or give the right "
                            "--archive",
                            g->name);
    if (g->read_only)
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s has schema version %d, older than this penlink's %d, and "
                            "is read-only (a standby): migrate it on the primary first",
                            g->name, version, PG_SCHEMA_VERSION);
    rc = pg_do(g, "BEGIN", NULL, "migrate");
    if (rc == PENLINK_OK)
        rc = migrate_locked(g, from);
    if (rc == PENLINK_OK)
        rc = pg_do(g, "COMMIT", NULL, "migrate");
    if (rc == PENLINK_OK)
        return PENLINK_OK;
    char why[400];
    snprintf(why, sizeof why, "%s", penlink_ctx_errmsg(g->base.ctx));
    int ignored;
    PQclear(pg_exec(g, g->conn, "ROLLBACK", NULL, 0, "migrate", &ignored));
    return penlink_fail(g->base.ctx, rc, "%s. The schema was left as it was (version %d)", why,
                        version);
}

/* ---- interrupted pulls --------------------------------------------------- */

/*
 * A pull's start without an end is a live pull or a dead one. A live pull
 * holds its pen's advisory lock (pg_lock_pen) from before its start is
 * written until its end is committed, on a connection of its own that dies
 * with its penlink; so a pen whose lock this session can take has no live
 * pull, and its open starts belong to penlinks that were killed, crashed,
 * lost power or their connection. They get an end appended ('interrupted'),
 * as the SQLite archive marks them, by a session that may write. Taken
 * with the lock held, so that no pull of that pen can start meanwhile; a
 * pull that lost its lock may still write its own end at the same moment,
 * and that end stands (ON CONFLICT DO NOTHING).
 */
static int mark_interrupted(pg_backend *g)
{
    int rc;
    PGresult *open = pg_run(g,
                            "SELECT DISTINCT s.device_id FROM pull_starts s LEFT JOIN pull_ends e "
                            "ON e.pull_id = s.id WHERE e.pull_id IS NULL",
                            NULL, "interrupted pulls", &rc);
    if (!open)
        return rc;
    for (int i = 0; rc == PENLINK_OK && i < PQntuples(open); i++) {
        int64_t device = pg_col_int(open, i, 0);
        pg_params p = { 0 };
        pg_param_int(&p, device & 0x7fffffff);
        rc = pg_do(g, "BEGIN", NULL, "interrupted pulls");
        PGresult *r =
            rc == PENLINK_OK
                ? pg_run(g, "SELECT pg_try_advisory_xact_lock(" PG_STR(PG_LOCK_PEN) ", $1::int4)",
                         &p, "interrupted pulls", &rc)
                : NULL;
        int free_pen = r && pg_col_int(r, 0, 0);
        PQclear(r);
        pg_params q = { 0 };
        pg_param_int(&q, device);
        pg_param_int(&q, pc_wall_ms());
        if (rc == PENLINK_OK && free_pen)
            rc = pg_do(g,
                       "INSERT INTO pull_ends (pull_id, finished_ms, result, message) SELECT s.id, "
                       "$2, 'interrupted', 'the pull never recorded its end and no longer held "
                       "the pen''s lock (its penlink was killed or crashed, the computer lost "
                       "power, or its connection or its lock''s connection to the server was "
                       "cut or ended): what it committed is kept, nothing after that was "
                       "acknowledged' FROM pull_starts s LEFT JOIN pull_ends e ON e.pull_id = "
                       "s.id WHERE s.device_id = $1 AND e.pull_id IS NULL "
                       "ON CONFLICT (pull_id) DO NOTHING",
                       &q, "interrupted pulls");
        if (rc == PENLINK_OK)
            rc = pg_do(g, "COMMIT", NULL, "interrupted pulls"); /* and the lock goes */
        else
            pg_do(g, "ROLLBACK", NULL, "interrupted pulls");
    }
    PQclear(open);
    return rc;
}

/* ---- opening and closing ----------------------------------------------- */

/*
 * Opened read-only: the session refuses every write (the server's own
 * default_transaction_read_only), and the schema is taken as it is: none is
 * an error, a newer one is refused, an older one is read, what it lacks
 * reading as empty (the SQLite backend reads an older schema through a
 * migrated private copy; a server's schema is not ours to copy).
 */
static int check_read_only(pg_backend *g, int *from)
{
    int version = 0;
    int rc = pg_do(g, "SET default_transaction_read_only = on", NULL, "open");
    if (rc == PENLINK_OK)
        rc = pg_schema_version(g, &version);
    *from = version;
    if (rc != PENLINK_OK)
        return rc;
    if (version > PG_SCHEMA_VERSION)
        return pg_newer_schema(g, version);
    if (version == 0)
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s holds no penlink archive (schema penlink): pull a pen "
                            "into it first, or give the right --archive",
                            g->name);
    return PENLINK_OK;
}

/* PENLINK_SERVER_TIMEOUT: the longest wait for one reply of the server, in
 * seconds (1..PG_REPLY_WAIT_MAX_S); else PG_REPLY_WAIT_S. */
static int64_t pg_reply_wait_s(void)
{
    const char *e = getenv("PENLINK_SERVER_TIMEOUT");
    char *end = NULL;
    long long v = e && *e ? strtoll(e, &end, 10) : 0;
    return end && !*end && v >= 1 && v <= PG_REPLY_WAIT_MAX_S ? v : PG_REPLY_WAIT_S;
}

static int pg_open(penlink_ctx *ctx, const char *uri, int create, int readonly, pg_backend **out,
                   int *from)
{
    pg_backend *g = calloc(1, sizeof *g);
    if (!g)
        return PENLINK_ERR_NO_MEM;
    g->base.ops = &pg_ops;
    g->base.ctx = ctx;
    g->base.name = g->name;
    g->base.readonly = readonly;
    int rc = pg_name_server(ctx, uri, g->name, sizeof g->name);
    if (rc != PENLINK_OK) {
        free(g);
        return rc;
    }
    g->reply_wait_ms = pg_reply_wait_s() * 1000;
    g->batch = malloc(PG_COPY_BATCH * sizeof *g->batch);
    g->conn = pg_connect_to(uri);
    if (!g->batch || !g->conn) {
        pg_close(&g->base);
        return PENLINK_ERR_NO_MEM;
    }
    if (PQstatus(g->conn) != CONNECTION_OK) {
        char words[300];
        pg_server_words(g->conn, NULL, words, sizeof words);
        rc = penlink_fail(ctx, PENLINK_ERR_IO, "archive %s: cannot connect: %s", g->name, words);
        pg_close(&g->base);
        return rc;
    }
    rc = pg_session_setup(g, g->conn);
    int64_t flag = 0;
    if (rc == PENLINK_OK)
        rc = pg_row_ints(g, "SELECT pg_is_in_recovery()", NULL, "open", 1, &flag, NULL);
    if (rc == PENLINK_OK)
        g->read_only = g->standby = (int)flag;
    if (rc == PENLINK_OK)
        rc = readonly ? check_read_only(g, from) : pg_migrate(g, create, from);
    g->schema = rc == PENLINK_OK && !readonly ? PG_SCHEMA_VERSION : *from;
    /* a role that may read only (an auditor's): nothing is stored, not even verifications */
    if (rc == PENLINK_OK)
        rc = pg_row_ints(g, "SELECT NOT has_table_privilege('penlink.verifications', 'INSERT')",
                         NULL, "open", 1, &flag, NULL);
    if (rc == PENLINK_OK)
        g->read_only |= (int)flag;
    if (rc == PENLINK_OK && !readonly && !g->read_only)
        rc = mark_interrupted(g);
    if (rc != PENLINK_OK) {
        pg_close(&g->base);
        return rc;
    }
    /* the connection string, for the lock's connection */
    g->uri = strdup(uri);
    if (!g->uri) {
        pg_close(&g->base);
        return PENLINK_ERR_NO_MEM;
    }
    *out = g;
    return PENLINK_OK;
}

int archive_pg_open(penlink_ctx *ctx, const char *uri, int create, int readonly,
                    archive_backend **out)
{
    pg_backend *g = NULL;
    int from = 0;
    int rc = pg_open(ctx, uri, create && !readonly, readonly, &g, &from);
    if (rc == PENLINK_OK)
        *out = &g->base;
    return rc;
}

void pg_close(archive_backend *b)
{
    pg_backend *g = (pg_backend *)b;
    if (g->lock_conn)
        PQfinish(g->lock_conn);
    if (g->conn)
        PQfinish(g->conn);
    free(g->batch);
    free(g->slots);
    free(g->uri);
    free(g);
}

/* ---- transactions ------------------------------------------------------ */

int pg_begin(archive_backend *b)
{
    pg_backend *g = (pg_backend *)b;
    if (b->readonly)
        return penlink_fail(b->ctx, PENLINK_ERR_INVALID_ARG,
                            "archive %s was opened read-only: open it for writing to change it",
                            g->name);
    g->txn_msg[0] = '\0';
    int rc = pg_do(g, "BEGIN", NULL, "begin");
    g->in_txn = rc == PENLINK_OK;
    return rc;
}

int pg_commit(archive_backend *b)
{
    pg_backend *g = (pg_backend *)b;
    int rc = pg_copy_flush(g);
    /* once the lock is lost, only the pull's outcome (after pull_end) is committed */
    if (rc == PENLINK_OK && g->locked_device && (g->pull_open || !g->lock_lost))
        rc = pg_lock_alive(g);
    if (rc != PENLINK_OK)
        return rc;
    pg_pipe_forget(g);
    PGresult *r = pg_exec(g, g->conn, "COMMIT", NULL, 0, "commit", &rc);
    g->in_txn = 0;
    g->savepoint = 0;
    /* a transaction that failed earlier answers COMMIT with ROLLBACK (no
     * result: the server did not answer, rc says so) */
    if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = pg_fail(g, g->conn, r, "commit");
    else if (r && strcmp(PQcmdStatus(r), "COMMIT") != 0 &&
             g->txn_msg[0]) /* in the words of the statement that failed */
        rc = penlink_fail(b->ctx, PENLINK_ERR_IO, "%s", g->txn_msg);
    else if (r && strcmp(PQcmdStatus(r), "COMMIT") != 0)
        rc = penlink_fail(b->ctx, PENLINK_ERR_IO,
                          "archive %s: commit: the server rolled the transaction back", g->name);
    PQclear(r);
    if (!g->pull_open)
        pg_unlock_pen(g);
    return rc;
}

int pg_rollback(archive_backend *b)
{
    pg_backend *g = (pg_backend *)b;
    pg_copy_drop(g);
    pg_pipe_drain(g); /* whatever it says: all of it is rolled back */
    pg_pipe_forget(g);
    g->in_txn = 0;
    g->savepoint = 0;
    if (PQstatus(g->conn) != CONNECTION_OK || g->dropped) {
        pg_unlock_pen(g);
        return PENLINK_OK; /* the server ended the transaction with the connection */
    }
    int rc = pg_quiet_do(g, g->conn, "ROLLBACK");
    if (!g->pull_open)
        pg_unlock_pen(g);
    return rc;
}

/* One savepoint at a time: the newest mark replaces the one before. */
int pg_savepoint(archive_backend *b)
{
    pg_backend *g = (pg_backend *)b;
    int rc = pg_copy_flush(g);
    if (rc == PENLINK_OK && g->savepoint)
        rc = pg_do(g, "RELEASE SAVEPOINT kept", NULL, "release savepoint");
    if (rc == PENLINK_OK)
        rc = pg_do(g, "SAVEPOINT kept", NULL, "savepoint");
    g->savepoint = rc == PENLINK_OK;
    return rc;
}

int pg_rollback_to_savepoint(archive_backend *b)
{
    pg_backend *g = (pg_backend *)b;
    if (!g->savepoint) { /* all of it; the pen's lock lives on its own connection */
        int rc = pg_rollback(b);
        return rc == PENLINK_OK ? pg_begin(b) : rc;
    }
    pg_copy_drop(g);
    int rc = pg_do(g, "ROLLBACK TO SAVEPOINT kept", NULL, "rollback to savepoint");
    if (rc == PENLINK_OK) /* what failed after the savepoint is undone */
        g->txn_msg[0] = '\0';
    return rc;
}

int pg_writable(archive_backend *b)
{
    pg_backend *g = (pg_backend *)b;
    if (g->read_only) /* why, in the context's message */
        pg_may_write(g, "write");
    return !g->read_only;
}

/* ---- one pull of a pen at a time ----------------------------------------- */

/*
 * The pen's lock is still held: its session may have been ended by the
 * server (pg_terminate_backend, idle_in_transaction_session_timeout, a
 * network cut) while the pull's own connection lived on. A pull that lost
 * it is no longer the only one of its pen, so nothing more of it is
 * committed or acknowledged: asked before every commit of a pull.
 */
static int pg_lock_alive(pg_backend *g)
{
    pg_params p = { 0 };
    pg_param_int(&p, g->locked_device & 0x7fffffff);
    int rc = PENLINK_ERR_IO;
    PGresult *r =
        g->lock_conn
            ? pg_exec(g, g->lock_conn,
                      "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                      "pid = pg_backend_pid() AND classid = " PG_STR(
                          PG_LOCK_PEN) " AND objid = $1::oid AND objsubid = 2",
                      &p, 0, "check the pen's lock", &rc)
            : NULL;
    int held = r && PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "1") == 0;
    PQclear(r);
    if (held)
        return PENLINK_OK;
    g->lock_lost = 1;
    return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                        "archive %s: the pull lost the pen's lock (its session on the server "
                        "ended: terminated, idle_in_transaction_session_timeout, or its "
                        "connection cut), so another pull of the pen may run: it stopped before "
                        "committing more, and acknowledged nothing; pull again",
                        g->name);
}

/* A statement of cleanup on @p conn (a rollback): its failure is not the
 * error to report, so the context's message is left as it was. */
static int pg_quiet_do(pg_backend *g, PGconn *conn, const char *sql)
{
    char saved[sizeof g->base.ctx->errmsg];
    memcpy(saved, g->base.ctx->errmsg, sizeof saved);
    int rc;
    PGresult *r = pg_exec(g, conn, sql, NULL, 0, "clean up", &rc);
    if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = PENLINK_ERR_IO;
    PQclear(r);
    memcpy(g->base.ctx->errmsg, saved, sizeof saved);
    return rc;
}

/* Who holds a pen's lock, in words, from pg_stat_activity. Another login's
 * session shows its application_name and user, not its address or start
 * (unless this login has pg_read_all_stats): only what is shown is said. */
static void lock_holder(pg_backend *g, int64_t device, char *out, size_t cap)
{
    pg_params p = { 0 };
    pg_param_int(&p, device & 0x7fffffff);
    char saved[sizeof g->base.ctx->errmsg];
    memcpy(saved, g->base.ctx->errmsg, sizeof saved);
    int rc;
    PGresult *r =
        pg_exec(g, g->lock_conn,
                "SELECT coalesce(a.application_name, ''), a.pid, coalesce(a.usename, ''), "
                "a.usename IS NOT DISTINCT FROM session_user, "
                "coalesce(host(a.client_addr), CASE WHEN a.backend_start IS NOT NULL "
                "THEN 'a local socket' END), "
                "to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS TZ') FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = "
                "'advisory' AND l.granted AND l.classid = " PG_STR(
                    PG_LOCK_PEN) " AND l.objid = $1::oid AND l.objsubid = 2",
                &p, 0, "lock the pen", &rc);
    memcpy(g->base.ctx->errmsg, saved, sizeof saved);
    if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        char login[120] = "", from[120] = "", since[80] = "";
        if (strcmp(PQgetvalue(r, 0, 3), "t") != 0)
            snprintf(login, sizeof login, ", another login: %s", PQgetvalue(r, 0, 2));
        if (!PQgetisnull(r, 0, 4))
            snprintf(from, sizeof from, ", from %s", PQgetvalue(r, 0, 4));
        if (!PQgetisnull(r, 0, 5))
            snprintf(since, sizeof since, ", since %s", PQgetvalue(r, 0, 5));
        snprintf(out, cap, "'%s' (server pid %s%s%s%s)", PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1),
                 login, from, since);
    } else {
        snprintf(out, cap, "another penlink");
    }
    PQclear(r);
}

/* How long a second pull of a pen waits for the first, in ms: the session's
 * lock_timeout when the connection sets one (options=-c lock_timeout=...),
 * else PG_PEN_LOCK_WAIT_S. */
static int64_t lock_wait_ms(pg_backend *g)
{
    int rc;
    PGresult *r = pg_exec(g, g->lock_conn,
                          "SELECT (extract(epoch FROM current_setting('lock_timeout')::interval) "
                          "* 1000)::bigint",
                          NULL, 0, "lock the pen", &rc);
    int64_t ms = r && PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : 0;
    PQclear(r);
    return ms > 0 ? ms : (int64_t)PG_PEN_LOCK_WAIT_S * 1000;
}

/* Sleeps @p ms, cut short by a signal (the caller then looks at the cancel flag). */
static void pause_ms(int64_t ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

/* Takes the pen's lock on lock_conn, in its open transaction. The lock is
 * asked for with pg_try_advisory_xact_lock every PG_LOCK_POLL_MS, never
 * waited for in the server: a wait there could not be interrupted, and a
 * SIGINT must stop a pull that waits for another (exit 130, nothing pulled). */
static int lock_take(pg_backend *g, int64_t device, const char *serial)
{
    pg_params p = { 0 };
    pg_param_int(&p, device & 0x7fffffff);
    int64_t start = pc_mono_ms(), limit = -1;
    char who[300] = "";
    for (;;) {
        int rc;
        PGresult *r = pg_exec(g, g->lock_conn,
                              "SELECT pg_try_advisory_xact_lock(" PG_STR(PG_LOCK_PEN) ", $1)", &p,
                              0, "lock the pen", &rc);
        if (r && PQresultStatus(r) != PGRES_TUPLES_OK)
            rc = pg_fail(g, g->lock_conn, r, "lock the pen");
        int got = rc == PENLINK_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (rc != PENLINK_OK || got)
            return rc;
        if (limit < 0) { /* the first refusal: who holds it, how long to wait */
            lock_holder(g, device, who, sizeof who);
            limit = lock_wait_ms(g);
        }
        if (pg_cancelled(g))
            return penlink_fail(g->base.ctx, PENLINK_ERR_CANCELLED,
                                "archive %s: pen %s is being pulled into it by %s: interrupted "
                                "while waiting for that pull to end; nothing was pulled or "
                                "acknowledged",
                                g->name, serial, who);
        int64_t waited = pc_mono_ms() - start;
        if (waited >= limit)
            return penlink_fail(g->base.ctx, PENLINK_ERR_BUSY,
                                "archive %s: pen %s is being pulled into it by %s; waited %llds "
                                "for that pull to end: try again later",
                                g->name, serial, who, (long long)(limit + 999) / 1000);
        pause_ms(limit - waited < PG_LOCK_POLL_MS ? limit - waited : PG_LOCK_POLL_MS);
    }
}

int pg_lock_pen(pg_backend *g, int64_t device, const char *serial)
{
    if (g->locked_device == device)
        return PENLINK_OK;
    pg_unlock_pen(g);
    if (!g->lock_conn) {
        g->lock_conn = pg_connect_to(g->uri);
        if (!g->lock_conn)
            return PENLINK_ERR_NO_MEM;
        int rc = PQstatus(g->lock_conn) == CONNECTION_OK
                     ? pg_session_setup(g, g->lock_conn)
                     : pg_fail(g, g->lock_conn, NULL, "lock the pen");
        if (rc != PENLINK_OK) {
            PQfinish(g->lock_conn);
            g->lock_conn = NULL;
            return rc;
        }
    }
    int rc;
    PGresult *r = pg_exec(g, g->lock_conn, "BEGIN", NULL, 0, "lock the pen", &rc);
    if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = pg_fail(g, g->lock_conn, r, "lock the pen");
    PQclear(r);
    if (rc == PENLINK_OK)
        rc = lock_take(g, device, serial);
    if (rc != PENLINK_OK) {
        if (pg_quiet_do(g, g->lock_conn, "ROLLBACK") != PENLINK_OK) {
            PQfinish(g->lock_conn);
            g->lock_conn = NULL;
        }
        return rc;
    }
    g->locked_device = device;
    return PENLINK_OK;
}

void pg_unlock_pen(pg_backend *g)
{
    if (!g->lock_conn || !g->locked_device)
        return;
    g->locked_device = 0;
    g->lock_lost = 0;
    if (pg_quiet_do(g, g->lock_conn, "ROLLBACK") != PENLINK_OK ||
        PQstatus(g->lock_conn) != CONNECTION_OK) {
        PQfinish(g->lock_conn);
        g->lock_conn = NULL;
    }
}

/* ---- the server's roles ---------------------------------------------------- */

static void say(void (*report)(void *, const char *), void *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(void (*report)(void *, const char *), void *user, const char *fmt, ...)
{
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (report)
        report(user, line);
}

/* Creates @p role (NOLOGIN) unless it exists; *created says which. */
static int make_role(pg_backend *g, const char *role, const char *quoted, int *created)
{
    pg_params p = { 0 };
    pg_param_text(&p, role);
    int rc;
    PGresult *r = pg_run(g, "SELECT count(*) FROM pg_roles WHERE rolname = $1", &p, "roles", &rc);
    if (!r)
        return rc;
    *created = pg_col_int(r, 0, 0) == 0;
    PQclear(r);
    if (!*created)
        return PENLINK_OK;
    char sql[200];
    snprintf(sql, sizeof sql, "CREATE ROLE %s NOLOGIN", quoted);
    return pg_do(g, sql, NULL, "create a role");
}

/* The grants of init-server: both roles read everything; the writer appends;
 * the reader appends notes on findings (penlink audit annotate) only;
 * nobody updates, deletes or truncates. */
static int grant(pg_backend *g, const char *w, const char *r)
{
    char sql[5][600];
    snprintf(sql[0], sizeof sql[0], "GRANT USAGE ON SCHEMA penlink TO %s, %s", w, r);
    snprintf(sql[1], sizeof sql[1], "GRANT SELECT ON ALL TABLES IN SCHEMA penlink TO %s, %s", w, r);
    snprintf(sql[2], sizeof sql[2],
             "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA penlink FROM %s, %s",
             w, r);
    snprintf(sql[3], sizeof sql[3], "GRANT INSERT ON %s TO %s", pg_insert_tables, w);
    snprintf(sql[4], sizeof sql[4], "GRANT INSERT ON " PG_READER_INSERT_TABLE " TO %s", r);
    int rc = PENLINK_OK;
    for (size_t i = 0; rc == PENLINK_OK && i < sizeof sql / sizeof sql[0]; i++)
        rc = pg_do(g, sql[i], NULL, "grant");
    return rc;
}

/* What init-server needs, checked before anything is written (the schema
 * is migrated on open): a primary, and the right to create the roles that
 * do not exist yet (CREATEROLE). */
static int init_check(penlink_ctx *ctx, const char *uri, const char *writer, const char *reader)
{
    pg_backend g;
    memset(&g, 0, sizeof g);
    g.base.ctx = ctx;
    g.reply_wait_ms = pg_reply_wait_s() * 1000;
    int rc = pg_name_server(ctx, uri, g.name, sizeof g.name);
    if (rc != PENLINK_OK)
        return rc;
    PGconn *conn = pg_connect_to(uri);
    if (!conn)
        return PENLINK_ERR_NO_MEM;
    if (PQstatus(conn) != CONNECTION_OK) {
        char words[300];
        pg_server_words(conn, NULL, words, sizeof words);
        PQfinish(conn);
        return penlink_fail(ctx, PENLINK_ERR_IO, "archive %s: cannot connect: %s", g.name, words);
    }
    pg_params p = { 0 };
    pg_param_text(&p, writer);
    pg_param_text(&p, reader);
    PGresult *r = pg_exec(&g, conn,
                          "SELECT pg_is_in_recovery(), (SELECT rolcreaterole OR rolsuper FROM "
                          "pg_roles WHERE rolname = current_user), (SELECT count(*) FROM pg_roles "
                          "WHERE rolname IN ($1, $2))",
                          &p, 0, "init-server", &rc);
    if (r && PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = pg_fail(&g, conn, r, "init-server");
    else if (r && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
        rc = penlink_fail(ctx, PENLINK_ERR_IO,
                          "archive %s: init-server: the server is a hot standby, which can only "
                          "be read: run it on its primary (nothing was changed)",
                          g.name);
    else if (r && strcmp(PQgetvalue(r, 0, 1), "t") != 0 && atoi(PQgetvalue(r, 0, 2)) < 2)
        rc = penlink_fail(ctx, PENLINK_ERR_IO,
                          "archive %s: init-server creates the roles %s and %s, which needs a "
                          "login with CREATEROLE (the database owner's alone is not enough): "
                          "ALTER ROLE ... CREATEROLE, or have them created first (nothing was "
                          "changed)",
                          g.name, writer, reader);
    PQclear(r);
    PQfinish(conn);
    return rc;
}

int penlink_archive_init_server(penlink_ctx *ctx, const char *uri, const char *writer,
                                const char *reader, void (*report)(void *user, const char *line),
                                void *user)
{
    penlink_enter(ctx);
    if (!ctx || !uri || !writer || !reader || !*writer || !*reader || strcmp(writer, reader) == 0)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "init-server needs a server and two different role names");
    if (!archive_is_server(uri))
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "'%s' is not a PostgreSQL connection string (postgresql://..., "
                            "postgres://... or service=NAME)",
                            uri);
    int rc = init_check(ctx, uri, writer, reader);
    if (rc != PENLINK_OK)
        return rc;
    pg_backend *g = NULL;
    int from = 0;
    rc = pg_open(ctx, uri, 1, 0, &g, &from);
    if (rc != PENLINK_OK)
        return rc;
    if (from == PG_SCHEMA_VERSION)
        say(report, user, "schema penlink: at version %d already", PG_SCHEMA_VERSION);
    else if (from == 0)
        say(report, user, "schema penlink: created, version %d", PG_SCHEMA_VERSION);
    else
        say(report, user, "schema penlink: migrated from version %d to %d", from,
            PG_SCHEMA_VERSION);
    char *w = PQescapeIdentifier(g->conn, writer, strlen(writer));
    char *rd = PQescapeIdentifier(g->conn, reader, strlen(reader));
    int wc = 0, rcr = 0;
    if (!w || !rd)
        rc = penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "a role name cannot be quoted");
    if (rc == PENLINK_OK)
        rc = pg_do(g, "BEGIN", NULL, "roles");
    if (rc == PENLINK_OK)
        rc = make_role(g, writer, w, &wc);
    if (rc == PENLINK_OK)
        rc = make_role(g, reader, rd, &rcr);
    if (rc == PENLINK_OK)
        rc = grant(g, w, rd);
    if (rc == PENLINK_OK)
        rc = pg_commit(&g->base);
    else
        pg_rollback(&g->base);
    if (rc == PENLINK_OK) {
        say(report, user, "role %s: %s (NOLOGIN): SELECT on every table, INSERT on the archive's",
            writer, wc ? "created" : "exists");
        say(report, user,
            "role %s: %s (NOLOGIN): SELECT on every table, INSERT on the notes on findings "
            "(annotations)",
            reader, rcr ? "created" : "exists");
        say(report, user,
            "nobody may UPDATE, DELETE or TRUNCATE: triggers refuse it on every table");
        say(report, user,
            "next: GRANT %s TO each technician's or docking station's login, GRANT %s TO each "
            "auditor's",
            writer, reader);
    }
    PQfreemem(w);
    PQfreemem(rd);
    pg_close(&g->base);
    return rc;
}
