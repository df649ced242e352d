/*
 * The PostgreSQL archive backend, for clinics that share one archive: the
 * connection, opening and closing, and transactions. The schema, its
 * migrations and the server's roles are in archive_pg_schema.c, statements
 * and results in archive_pg_sql.c, the per-pen lock in archive_pg_lock.c,
 * the operations in archive_pg_ops.c, records in bulk in archive_pg_copy.c.
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
 * pull acknowledge records: archive_pull.c commits before it acknowledges, and a
 * COMMIT the server answers with anything but COMMIT is a failure.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <unistd.h>

#include "archive_pg.h"
#include "clock.h"

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

int pg_name_server(penlink_ctx *ctx, const char *uri, char *name, size_t cap)
{
    return name_server_in(ctx, uri, name, cap, 0);
}

/* What pg_stat_activity shows for our sessions: who pulls, from where. */
void pg_application_name(char *out, size_t cap)
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

PGconn *pg_connect_to(const char *uri)
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
int pg_session_setup(pg_backend *g, PGconn *conn)
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
int64_t pg_reply_wait_s(void)
{
    const char *e = getenv("PENLINK_SERVER_TIMEOUT");
    char *end = NULL;
    long long v = e && *e ? strtoll(e, &end, 10) : 0;
    return end && !*end && v >= 1 && v <= PG_REPLY_WAIT_MAX_S ? v : PG_REPLY_WAIT_S;
}

int pg_open(penlink_ctx *ctx, const char *uri, int create, int readonly, pg_backend **out,
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
