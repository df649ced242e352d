/*
 * bench_archive: a pull of N records from penlink-sim into an empty archive,
 * next to a plain SQLite insert of the same rows into a table of the same
 * shape, in one transaction with one prepared statement, measured in the
 * same run (targets: >= 0.5x of the plain insert, >= 500,000 records/s).
 *
 *   bench_archive [--days D] PENLINK_SIM
 */
#define _DEFAULT_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <sqlite3.h>

#include "archive.h"
#include "bench_sim.h"
#include "penlink/penlink.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

typedef struct rows {
    penlink_record *r;
    size_t n, cap;
} rows;

static int keep(void *user, const char *serial, const penlink_record *rec)
{
    rows *v = user;
    (void)serial;
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 1 << 16;
        v->r = realloc(v->r, v->cap * sizeof *v->r);
    }
    v->r[v->n++] = *rec;
    return 0;
}

/* The same rows, the plain way: one transaction, one prepared statement. */
static double plain_insert(const char *path, const rows *v)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    if (sqlite3_open(path, &db) != SQLITE_OK)
        return -1;
    sqlite3_exec(db,
                 "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;"
                 "CREATE TABLE records (device_id INTEGER NOT NULL, seq INTEGER NOT NULL,"
                 " body BLOB NOT NULL, chunk_id INTEGER NOT NULL, PRIMARY KEY (device_id, seq)) "
                 "WITHOUT ROWID",
                 NULL, NULL, NULL);
    sqlite3_prepare_v2(db, "INSERT INTO records VALUES (1, ?1, ?2, 1)", -1, &st, NULL);
    double t0 = now_s();
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    for (size_t i = 0; i < v->n; i++) {
        const penlink_record *r = &v->r[i];
        uint8_t body[ARCHIVE_BODY_MAX];
        sqlite3_bind_int64(st, 1, (sqlite3_int64)r->seq);
        sqlite3_bind_blob(st, 2, body, (int)archive_body_pack(r, body), SQLITE_STATIC);
        sqlite3_step(st);
        sqlite3_reset(st);
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    double t = now_s() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return t;
}

int main(int argc, char **argv)
{
    int days = 4500, opt;
    while ((opt = getopt(argc, argv, "d:h")) != -1) {
        if (opt == 'd') {
            days = atoi(optarg);
        } else {
            printf("Usage: bench_archive [-d DAYS] PENLINK_SIM\n"
                   "Pulls DAYS (default 4500, about 1,000,000 records) of simulated usage\n"
                   "into an empty archive, then inserts the same rows plainly, and prints\n"
                   "both rates and their ratio.\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1)
        return 2;
    const char *sim = argv[optind];
    bench_sim pen;
    char db[128], plain[128];
    if (bench_sim_start(&pen, sim, days, "--power-cycle-permille 0") != 0)
        return 1;
    snprintf(db, sizeof db, "%s/archive.db", pen.dir);
    snprintf(plain, sizeof plain, "%s/plain.db", pen.dir);
    penlink_ctx *ctx = NULL;
    penlink_dev *dev = NULL;
    penlink_archive *ar = NULL;
    penlink_ctx_new(&ctx);
    int rc = 1;
    if (penlink_dev_open(ctx, pen.uri, &dev) != PENLINK_OK ||
        penlink_archive_open(ctx, db, &ar) != PENLINK_OK) {
        fprintf(stderr, "bench_archive: %s\n", penlink_ctx_errmsg(ctx));
        goto out;
    }
    penlink_archive_pull_result res;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = now_s();
    if (penlink_archive_pull(ar, dev, NULL, &res) != PENLINK_OK) {
        fprintf(stderr, "bench_archive: %s\n", penlink_ctx_errmsg(ctx));
        goto out;
    }
    double t_pull = now_s() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    rows v = { 0 };
    penlink_archive_scan(ar, NULL, keep, &v);
    double t_plain = plain_insert(plain, &v);
    printf("pull into an empty archive: %llu records in %.2f s = %.0f records/s\n",
           (unsigned long long)res.records_new, t_pull, (double)res.records_new / t_pull);
    printf("plain SQLite insert of the same %zu rows (one transaction, prepared): %.2f s = "
           "%.0f records/s\n",
           v.n, t_plain, (double)v.n / t_plain);
    printf("ratio pull / plain insert = %.2f (target >= 0.5; and >= 500000 records/s)\n",
           t_plain / t_pull);
    printf("penlink's CPU time during the pull: %.2f s user, %.2f s system (the rest is waiting, "
           "for the pen or the disk)\n",
           tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime), tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime));
    free(v.r);
    rc = 0;
out:
    penlink_archive_close(ar);
    penlink_dev_close(dev);
    penlink_ctx_free(ctx);
    if (bench_sim_stop(&pen) != 0)
        rc = 1;
    return rc;
}
