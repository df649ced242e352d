/*
 * The PostgreSQL archive backend's statements and results: parameters, a
 * statement sent and its reply waited for (interruptible, with a limit on
 * the wait), a failure put in words, and the columns of a result read.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "archive_pg.h"
#include "clock.h"

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
void pg_server_words(PGconn *conn, const PGresult *res, char *out, size_t cap)
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

int pg_cancelled(const pg_backend *g)
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
