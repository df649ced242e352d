/*
 * The benchmarks' plain way into PostgreSQL: records (device_id, seq, body,
 * chunk_id) sent with one binary COPY, the format archive_pg_copy.c writes
 * (PostgreSQL's documentation, "COPY", Binary Format), in buffers of 1 MiB.
 */
#ifndef PENLINK_BENCH_PG_H
#define PENLINK_BENCH_PG_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>

#include "archive.h"
#include "bench_util.h"

/* Records read back from an archive (penlink_archive_scan with bench_rows_keep). */
typedef struct bench_rows {
    penlink_record *r;
    size_t n, cap;
} bench_rows;

/* penlink_archive_scan()'s callback: appends @p rec to the bench_rows @p user; 1 (stop) when
 * memory runs out. */
static inline int bench_rows_keep(void *user, const char *serial, const penlink_record *rec)
{
    bench_rows *v = user;
    (void)serial;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 1 << 16;
        void *p = realloc(v->r, cap * sizeof *v->r);
        if (!p)
            return 1;
        v->r = p;
        v->cap = cap;
    }
    v->r[v->n++] = *rec;
    return 0;
}

typedef struct bench_copy {
    PGconn *c;
    uint8_t *buf, *p;
    int failed;
} bench_copy;

enum { BENCH_COPY_BUF = 1 << 20, BENCH_COPY_ROW_MAX = 256 };

static inline uint8_t *bench_put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

/* Runs @p sql (statements without results); 0 or -1 with the server's words on stderr. */
static inline int bench_pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "bench: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok ? 0 : -1;
}

/* Starts COPY @p target (a table and its column list) FROM STDIN, rows of at
 * most @p row_max bytes. 0 or -1. */
static inline int bench_copy_start(bench_copy *b, PGconn *c, const char *target, size_t row_max)
{
    static const uint8_t sig[11] = { 'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0 };
    char sql[300];
    memset(b, 0, sizeof *b);
    b->c = c;
    b->buf = malloc(BENCH_COPY_BUF + row_max);
    snprintf(sql, sizeof sql, "COPY %s FROM STDIN (FORMAT binary)", target);
    PGresult *r = b->buf ? PQexec(c, sql) : NULL;
    int ok = PQresultStatus(r) == PGRES_COPY_IN;
    if (!ok)
        fprintf(stderr, "bench: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    if (!ok) {
        free(b->buf);
        return -1;
    }
    memcpy(b->buf, sig, sizeof sig);
    b->p = bench_put_be(bench_put_be(b->buf + sizeof sig, 0, 4), 0, 4);
    return 0;
}

/* Starts COPY @p table (device_id, seq, body, chunk_id) FROM STDIN. 0 or -1. */
static inline int bench_copy_begin(bench_copy *b, PGconn *c, const char *table)
{
    char target[200];
    snprintf(target, sizeof target, "%s (device_id, seq, body, chunk_id)", table);
    return bench_copy_start(b, c, target, BENCH_COPY_ROW_MAX);
}

/* Sends what the buffer holds once it is full (after each row). */
static inline void bench_copy_next(bench_copy *b)
{
    if (b->p - b->buf >= BENCH_COPY_BUF) {
        if (PQputCopyData(b->c, (const char *)b->buf, (int)(b->p - b->buf)) != 1)
            b->failed = 1;
        b->p = b->buf;
    }
}

static inline void bench_copy_row(bench_copy *b, int64_t device, uint64_t seq, const uint8_t *body,
                                  size_t len, int64_t chunk)
{
    uint8_t *p = b->p;
    p = bench_put_be(p, 4, 2);
    p = bench_put_be(bench_put_be(p, 8, 4), (uint64_t)device, 8);
    p = bench_put_be(bench_put_be(p, 8, 4), seq, 8);
    p = bench_put_be(p, len, 4);
    memcpy(p, body, len);
    p += len;
    b->p = bench_put_be(bench_put_be(p, 8, 4), (uint64_t)chunk, 8);
    bench_copy_next(b);
}

/* Ends the COPY. 0 or -1. */
static inline int bench_copy_end(bench_copy *b)
{
    b->p = bench_put_be(b->p, 0xffff, 2);
    int rc = b->failed || PQputCopyData(b->c, (const char *)b->buf, (int)(b->p - b->buf)) != 1 ||
                     PQputCopyEnd(b->c, NULL) != 1
                 ? -1
                 : 0;
    PGresult *r;
    while ((r = PQgetResult(b->c)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            fprintf(stderr, "bench: copy: %s", PQerrorMessage(b->c));
            rc = -1;
        }
        PQclear(r);
    }
    free(b->buf);
    return rc;
}

/* The plain way for rows a benchmark compares with: a table of the records'
 * shape (bench_plain.records), one binary COPY of @p n records of one pen,
 * one transaction, committed as penlink commits (synchronous_commit on).
 * Returns the seconds it took, or -1. */
static inline double bench_pg_plain_copy(const char *uri, const penlink_record *rec, size_t n)
{
    PGconn *c = PQconnectdb(uri);
    bench_copy b;
    double t = -1;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench: %s", PQerrorMessage(c));
        goto out;
    }
    if (bench_pg_exec(c, "SET client_min_messages = warning; SET synchronous_commit = on; "
                         "DROP SCHEMA IF EXISTS bench_plain CASCADE; CREATE SCHEMA bench_plain; "
                         "CREATE TABLE bench_plain.records (device_id bigint NOT NULL, seq bigint "
                         "NOT NULL CHECK (seq >= 0), body bytea NOT NULL, chunk_id bigint NOT "
                         "NULL, PRIMARY KEY (device_id, seq))"))
        goto out;
    double t0 = bench_now_s();
    if (bench_pg_exec(c, "BEGIN") || bench_copy_begin(&b, c, "bench_plain.records"))
        goto out;
    for (size_t i = 0; i < n; i++) {
        uint8_t body[ARCHIVE_BODY_MAX];
        bench_copy_row(&b, 1, rec[i].seq, body, archive_body_pack(&rec[i], body), 1);
    }
    if (bench_copy_end(&b) || bench_pg_exec(c, "COMMIT"))
        goto out;
    t = bench_now_s() - t0;
    bench_pg_exec(c, "DROP SCHEMA bench_plain CASCADE");
out:
    PQfinish(c);
    return t;
}

/* An empty archive on the server: its schema dropped (made again when penlink opens it). */
static inline int bench_pg_drop_archive(const char *uri)
{
    PGconn *c = PQconnectdb(uri);
    int rc = PQstatus(c) == CONNECTION_OK
                 ? bench_pg_exec(c, "SET client_min_messages = warning; DROP SCHEMA IF EXISTS "
                                    "penlink CASCADE")
                 : -1;
    if (PQstatus(c) != CONNECTION_OK)
        fprintf(stderr, "bench: %s", PQerrorMessage(c));
    PQfinish(c);
    return rc;
}

#endif
