/*
 * The PostgreSQL archive backend's per-pen lock: one pull of a pen at a
 * time across every host that shares the archive, held on a connection of
 * its own.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive_pg.h"
#include "clock.h"

/* ---- one pull of a pen at a time ----------------------------------------- */

/*
 * The pen's lock is still held: its session may have been ended by the
 * server (pg_terminate_backend, idle_in_transaction_session_timeout, a
 * network cut) while the pull's own connection lived on. A pull that lost
 * it is no longer the only one of its pen, so nothing more of it is
 * committed or acknowledged: asked before every commit of a pull.
 */
int pg_lock_alive(pg_backend *g)
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
int pg_quiet_do(pg_backend *g, PGconn *conn, const char *sql)
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
