/*
 * In bulk for the PostgreSQL backend: records in with COPY ... FROM STDIN
 * (binary), out with COPY ... TO STDOUT (binary); a pull's chunks in libpq's
 * pipeline mode. A statement per record costs a round trip per record; a
 * COPY costs one per batch, and its binary rows need no text escaping of the
 * packed bodies either way. A chunk needs a statement of its own (it is
 * stored once, found again by its bytes, and its id is what its records
 * refer to), but not a round trip: in pipeline mode the chunks go one after
 * another, their ids are read back in one go before the records that refer
 * to them are sent (every other statement, and every COPY, waits for that).
 *
 * The binary COPY format (PostgreSQL's documentation, "COPY", Binary
 * Format): an 11-byte signature, a 32-bit flags word and a 32-bit header
 * extension length; then each row as a 16-bit field count and, per field, a
 * 32-bit length and that many bytes; then a 16-bit -1. Integers are big-endian.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive_pg.h"

static const uint8_t copy_signature[11] = {
    'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0
};
#define COPY_HEADER_LEN (sizeof copy_signature + 4 + 4)
/* a row of records (device_id, seq, body, chunk_id): count, 3 integers, the body */
#define COPY_ROW_MAX (2 + 3 * (4 + 8) + 4 + ARCHIVE_BODY_MAX)

static uint8_t *put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

static uint8_t *put_int8(uint8_t *p, int64_t v)
{
    p = put32(p, 8);
    for (int i = 7; i >= 0; i--)
        *p++ = (uint8_t)((uint64_t)v >> (8 * i));
    return p;
}

int pg_copy_add(pg_backend *g, int64_t device, int64_t chunk, const penlink_record *r)
{
    struct pg_pending *x = &g->batch[g->pending++];
    x->device = device;
    x->seq = (int64_t)r->seq;
    x->chunk = chunk;
    x->len = (uint8_t)archive_body_pack(r, x->body);
    return g->pending == PG_COPY_BATCH ? pg_copy_flush(g) : PENLINK_OK;
}

void pg_copy_drop(pg_backend *g)
{
    g->pending = 0;
}

/* ---- chunks in pipeline mode ---------------------------------------------- */

int pg_chunk_send(pg_backend *g, const pg_params *p, int64_t *chunk)
{
    PGconn *c = g->conn;
    int rc = PENLINK_OK;
    if (!g->chunk_prepared && PQpipelineStatus(c) == PQ_PIPELINE_OFF) {
        PGresult *r = PQsendPrepare(c, "penlink_chunk", PG_CHUNK_SQL, 0, NULL)
                          ? pg_collect(g, c, "prepare to store chunks", &rc)
                          : NULL;
        if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = pg_fail(g, c, r, "prepare to store chunks");
        else if (!r && rc == PENLINK_OK)
            rc = pg_fail(g, c, NULL, "prepare to store chunks");
        PQclear(r);
        g->chunk_prepared = rc == PENLINK_OK;
    }
    if (rc != PENLINK_OK)
        return rc;
    if (g->n_slots == g->cap_slots) {
        int cap = g->cap_slots ? 2 * g->cap_slots : 1024;
        int64_t *s = realloc(g->slots, (size_t)cap * sizeof *s);
        if (!s)
            return penlink_fail(g->base.ctx, PENLINK_ERR_NO_MEM, "archive %s: out of memory",
                                g->name);
        g->slots = s;
        g->cap_slots = cap;
    }
    if ((PQpipelineStatus(c) == PQ_PIPELINE_OFF && PQenterPipelineMode(c) != 1) ||
        PQsendQueryPrepared(c, "penlink_chunk", p->n, p->values, p->lengths, p->formats, 1) != 1)
        return pg_fail(g, c, NULL, "store chunk");
    g->slots[g->n_slots] = 0;
    *chunk = -(int64_t)++g->n_slots;
    return g->n_slots - g->first_unread >= PG_PIPE_MAX ? pg_pipe_drain(g) : PENLINK_OK;
}

int pg_pipe_drain(pg_backend *g)
{
    PGconn *c = g->conn;
    if (PQpipelineStatus(c) == PQ_PIPELINE_OFF)
        return PENLINK_OK;
    int rc = PQpipelineSync(c) == 1 ? PENLINK_OK : pg_fail(g, c, NULL, "store chunk");
    /* each statement's result, then NULL; the sync's PGRES_PIPELINE_SYNC at the end */
    int i = g->first_unread, nulls = 0;
    while (rc == PENLINK_OK || PQstatus(c) == CONNECTION_OK) {
        /* bounded and interruptible: a server that stopped answering is dropped */
        int st = pg_wait(g, c, 1, "store chunk");
        if (st != PENLINK_OK) {
            rc = rc == PENLINK_OK ? st : rc;
            break;
        }
        PGresult *r = PQgetResult(c);
        if (!r) {
            if (++nulls > 1 && PQstatus(c) != CONNECTION_OK)
                break;
            continue;
        }
        nulls = 0;
        ExecStatusType x = PQresultStatus(r);
        if (x == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (x == PGRES_TUPLES_OK && PQntuples(r) == 1 && i < g->n_slots)
            g->slots[i] = pg_col_int(r, 0, 0);
        else if (rc == PENLINK_OK)
            rc = x == PGRES_PIPELINE_ABORTED
                     ? penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                                    "archive %s: store chunk: the statements were abandoned",
                                    g->name)
                     : pg_fail(g, c, r, "store chunk");
        i++;
        PQclear(r);
    }
    g->first_unread = g->n_slots;
    if (PQexitPipelineMode(c) != 1 && rc == PENLINK_OK)
        rc = pg_fail(g, c, NULL, "store chunk");
    return rc;
}

void pg_pipe_forget(pg_backend *g)
{
    g->n_slots = g->first_unread = 0;
}

/* ---- records in ---------------------------------------------------------- */

int pg_copy_flush(pg_backend *g)
{
    /* the chunks first: their ids, which the records refer to */
    int rc = pg_pipe_drain(g);
    int n = g->pending;
    if (rc != PENLINK_OK || n <= 0)
        return rc;
    g->pending = 0;
    for (int i = 0; i < n; i++) {
        struct pg_pending *x = &g->batch[i];
        if (x->chunk >= 0)
            continue;
        int64_t slot = -x->chunk - 1;
        x->chunk = slot < g->n_slots ? g->slots[slot] : 0;
        if (x->chunk <= 0)
            return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                                "archive %s: store records: their chunk was not stored", g->name);
    }
    size_t cap = COPY_HEADER_LEN + (size_t)n * COPY_ROW_MAX + 2;
    uint8_t *buf = malloc(cap), *p = buf;
    if (!buf)
        return penlink_fail(g->base.ctx, PENLINK_ERR_NO_MEM, "archive %s: out of memory", g->name);
    memcpy(p, copy_signature, sizeof copy_signature);
    p = put32(put32(p + sizeof copy_signature, 0), 0);
    for (int i = 0; i < n; i++) {
        const struct pg_pending *x = &g->batch[i];
        p = put16(p, 4);
        p = put_int8(p, x->device);
        p = put_int8(p, x->seq);
        p = put32(p, x->len);
        memcpy(p, x->body, x->len);
        p += x->len;
        p = put_int8(p, x->chunk);
    }
    p = put16(p, 0xffff);
    PGresult *r = pg_exec(
        g, g->conn, "COPY records (device_id, seq, body, chunk_id) FROM STDIN (FORMAT binary)",
        NULL, 0, "store records", &rc);
    if (!r || PQresultStatus(r) != PGRES_COPY_IN) {
        if (r)
            rc = pg_fail(g, g->conn, r, "store records");
        PQclear(r);
        free(buf);
        return rc;
    }
    PQclear(r);
    /* nonblocking: 0 is "the buffer is full, flush and try again" */
    int put = PQputCopyData(g->conn, (const char *)buf, (int)(p - buf));
    while (put == 0 && rc == PENLINK_OK) {
        rc = pg_wait(g, g->conn, 0, "store records");
        put = rc == PENLINK_OK ? PQputCopyData(g->conn, (const char *)buf, (int)(p - buf)) : -1;
    }
    free(buf);
    put = put == 1 ? PQputCopyEnd(g->conn, NULL) : put;
    while (put == 0 && rc == PENLINK_OK) {
        rc = pg_wait(g, g->conn, 0, "store records");
        put = rc == PENLINK_OK ? PQputCopyEnd(g->conn, NULL) : -1;
    }
    if (rc != PENLINK_OK)
        return rc;
    if (put != 1)
        return pg_fail(g, g->conn, NULL, "store records");
    r = pg_collect(g, g->conn, "store records", &rc);
    if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
        rc = pg_fail(g, g->conn, r, "store records");
    PQclear(r);
    return rc;
}

/* ---- reading records back ------------------------------------------------ */

typedef struct copy_out {
    pg_backend *g;
    int header_seen;
    int (*row)(void *u, const penlink_record *r); /* 0 go on, else stop (its status) */
    /* a row that cannot be a record, with its seq as stored: 0 go on, else stop */
    int (*bad)(void *u, int64_t seq, const char *why);
    void *u;
    int rc;
} copy_out;

/* One message of a binary COPY out: [header] a row of (seq, body), or the
 * end. -1 when the message is not what COPY sends (the stream itself is
 * broken); a row whose values cannot be a record goes to c->bad. */
static int copy_message(copy_out *c, const uint8_t *p, size_t n)
{
    if (!c->header_seen) {
        if (n < COPY_HEADER_LEN || memcmp(p, copy_signature, sizeof copy_signature) != 0)
            return -1;
        size_t ext = (size_t)pg_be_get(p + sizeof copy_signature + 4, 4);
        if (n < COPY_HEADER_LEN + ext)
            return -1;
        p += COPY_HEADER_LEN + ext;
        n -= COPY_HEADER_LEN + ext;
        c->header_seen = 1;
    }
    if (n < 2)
        return -1;
    uint16_t fields = (uint16_t)pg_be_get(p, 2);
    if (fields == 0xffff)
        return n == 2 ? 0 : -1;
    if (fields != 2 || n < 2 + 4 + 8 + 4 || pg_be_get(p + 2, 4) != 8)
        return -1;
    penlink_record r;
    memset(&r, 0, sizeof r);
    int64_t seq = (int64_t)pg_be_get(p + 6, 8);
    uint32_t len = (uint32_t)pg_be_get(p + 14, 4); /* 0xffffffff: NULL */
    if (len != 0xffffffffu && n != 18 + (size_t)len)
        return -1;
    if (len == 0xffffffffu && n != 18)
        return -1;
    const char *why = NULL;
    if (seq < 0)
        why = "its seq is at or above 2^63 (stored as a negative integer), which no pen logs";
    else if (len == 0xffffffffu || len == 0 || len > ARCHIVE_BODY_MAX ||
             archive_body_unpack(p + 18, len, &r) != 0)
        why = "its body is not a packed record";
    if (c->rc != PENLINK_OK)
        return 0;
    r.seq = (uint64_t)seq;
    c->rc = why ? c->bad(c->u, seq, why) : c->row(c->u, &r);
    return 0;
}

/* Runs a COPY (SELECT seq, body ...) TO STDOUT and hands each record to c->row. */
static int copy_records(copy_out *c, const char *sql, const char *what)
{
    pg_backend *g = c->g;
    int rc = pg_copy_flush(g);
    if (rc != PENLINK_OK)
        return rc;
    PGresult *r = PQexec(g->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        rc = pg_fail(g, g->conn, r, what);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    int bad = 0, n;
    char *buf = NULL;
    /* read to the end even after a stop: the connection must come out of COPY */
    while ((n = PQgetCopyData(g->conn, &buf, 0)) > 0) {
        if (!bad && copy_message(c, (const uint8_t *)buf, (size_t)n) != 0)
            bad = 1;
        PQfreemem(buf);
    }
    if (n == -2)
        rc = pg_fail(g, g->conn, NULL, what);
    while ((r = PQgetResult(g->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == PENLINK_OK)
            rc = pg_fail(g, g->conn, r, what);
        PQclear(r);
    }
    if (rc == PENLINK_OK && bad)
        rc = penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                          "archive %s: %s: the server's COPY data is not in its binary format",
                          g->name, what);
    return rc != PENLINK_OK ? rc : c->rc;
}

typedef struct scan_pen {
    const penlink_archive_filter *f;
    penlink_archive_record_cb cb;
    archive_damage_cb bad;
    void *user;
    const char *serial;
    uint64_t last_seq;
    int started;
    pg_backend *g;
    /* damaged rows, when no one takes them: counted, the first named at the end */
    uint64_t n_bad;
    char bad_serial[64];
    int64_t bad_seq;
    const char *bad_why;
} scan_pen;

/* A row of the scan that cannot be a record: to the caller, or counted. */
static int scan_bad(void *u, int64_t seq, const char *why)
{
    scan_pen *s = u;
    if (s->bad) {
        archive_damage d = { s->serial, "records", seq, why };
        return s->bad(s->user, &d) != 0 ? PENLINK_ERR_CANCELLED : 0;
    }
    if (s->n_bad++ == 0) {
        snprintf(s->bad_serial, sizeof s->bad_serial, "%s", s->serial);
        s->bad_seq = seq;
        s->bad_why = why;
    }
    return 0;
}

static int scan_row(void *u, const penlink_record *r)
{
    scan_pen *s = u;
    if (s->started && r->seq <= s->last_seq)
        return scan_bad(s, (int64_t)r->seq, "it is out of seq order");
    s->started = 1;
    s->last_seq = r->seq;
    if ((s->f && s->f->has_since && r->time_ms < s->f->since_ms) ||
        (s->f && s->f->has_until && r->time_ms >= s->f->until_ms))
        return 0;
    return s->cb(s->user, s->serial, r) != 0 ? PENLINK_ERR_CANCELLED : 0;
}

/* Pen by pen in serial order (byte order, as SQLite), each pen's records in seq order.
 *
 * export reads this (the rows are its index; a row per record is most of the
 * server's work here, about 0.25 s of CPU per million records). The audit
 * does not: on every backend it takes the records from the pens' chunks (a
 * row per 512 records, decoded here), which it checks anyway, and leaves
 * comparing the rows with the chunks to verify. */
int pg_scan(archive_backend *b, const penlink_archive_filter *f, penlink_archive_record_cb cb,
            archive_damage_cb bad, void *user)
{
    pg_backend *g = (pg_backend *)b;
    int rc = pg_copy_flush(g);
    if (rc != PENLINK_OK)
        return rc;
    pg_params p = { 0 };
    pg_param_text(&p, f ? f->serial : NULL);
    PGresult *pens = pg_run(g,
                            "SELECT id, serial FROM pens WHERE $1::text IS NULL OR " PG_SERIAL_IS(
                                "serial", "$1") " ORDER BY serial COLLATE \"C\"",
                            &p, "scan", &rc);
    if (!pens)
        return rc;
    char serial[2][64]; /* consecutive pens alternate: a pen's records share one pointer */
    scan_pen s = { .f = f, .cb = cb, .bad = bad, .user = user, .g = g };
    for (int i = 0; rc == PENLINK_OK && i < PQntuples(pens); i++) {
        char sql[200];
        snprintf(sql, sizeof sql,
                 "COPY (SELECT seq, body FROM records WHERE device_id = %lld ORDER BY seq) TO "
                 "STDOUT (FORMAT binary)",
                 (long long)pg_col_int(pens, i, 0));
        pg_col_text(pens, i, 1, serial[i & 1], sizeof serial[0]);
        s.serial = serial[i & 1];
        s.started = 0;
        copy_out c = { .g = g, .row = scan_row, .bad = scan_bad, .u = &s };
        rc = copy_records(&c, sql, "scan");
    }
    PQclear(pens);
    if (rc == PENLINK_OK && s.n_bad)
        rc = penlink_fail(g->base.ctx, PENLINK_ERR_INTEGRITY,
                          "archive %s: %llu record rows cannot be records and were skipped (the "
                          "first: pen %s, seq stored as %lld: %s); every other record was read",
                          g->name, (unsigned long long)s.n_bad, s.bad_serial, (long long)s.bad_seq,
                          s.bad_why);
    return rc;
}

typedef struct range_visit {
    pg_backend *g;
    int (*cb)(void *user, const penlink_record *r);
    archive_damage_cb bad;
    void *user;
} range_visit;

static int range_row(void *u, const penlink_record *r)
{
    range_visit *v = u;
    return v->cb(v->user, r) != 0 ? PENLINK_ERR_CANCELLED : 0;
}

static int range_bad(void *u, int64_t seq, const char *why)
{
    range_visit *v = u;
    if (!v->bad)
        return penlink_fail(v->g->base.ctx, PENLINK_ERR_INTEGRITY,
                            "archive %s: the record row of seq %lld: %s", v->g->name,
                            (long long)seq, why);
    archive_damage d = { NULL, "records", seq, why };
    return v->bad(v->user, &d) != 0 ? PENLINK_ERR_CANCELLED : 0;
}

int pg_records(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
               int (*cb)(void *user, const penlink_record *r), archive_damage_cb bad, void *user)
{
    pg_backend *g = (pg_backend *)b;
    char sql[256];
    if (end <= first || first > (uint64_t)INT64_MAX)
        return pg_copy_flush(g); /* no seq a record row can hold */
    uint64_t last = end - 1 > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : end - 1;
    snprintf(sql, sizeof sql,
             "COPY (SELECT seq, body FROM records WHERE device_id = %lld AND seq >= %lld AND seq "
             "<= %lld ORDER BY seq) TO STDOUT (FORMAT binary)",
             (long long)device, (long long)first, (long long)last);
    range_visit v = { g, cb, bad, user };
    copy_out c = { .g = g, .row = range_row, .bad = range_bad, .u = &v };
    return copy_records(&c, sql, "records");
}
