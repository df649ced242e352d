/*
 * bench_archive: a pull of N records from penlink-sim into an empty archive,
 * next to a plain SQLite insert of the same rows into a table of the same
 * shape, in one transaction with one prepared statement, measured in the
 * same run (targets: >= 0.5x of the plain insert, >= 500,000 records/s).
 * Each round starts a fresh pen; the slowest pull and the lowest ratio are
 * what the targets are checked against. penlink's CPU time next to the
 * pull's wall time shows how much of it was spent waiting.
 *
 * With --archive postgresql://... (or service=NAME) the pull goes into the
 * archive on that server (its schema dropped and made again each round),
 * next to a plain binary COPY of the same rows into a table of the same
 * shape there, in one transaction, committed as penlink commits
 * (synchronous_commit on) (target >= 0.5x). tools/bench/bench_pg.sh starts
 * a throwaway cluster for it.
 *
 *   bench_archive [-d DAYS] [-r ROUNDS] [--archive URI] PENLINK_SIM
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
#include "bench_pg.h"
#include "bench_sim.h"
#include "bench_util.h"
#include "penlink/penlink.h"

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

/* The same rows, the plain way: one transaction, one prepared statement. */
static double plain_insert(const char *path, const bench_rows *v)
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
    double t0 = bench_now_s();
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
    double t = bench_now_s() - t0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return t;
}

/* Removes the SQLite database at @p path, with its WAL and shared-memory files. */
static void remove_db(const char *path)
{
    static const char *const ext[] = { "", "-wal", "-shm" };
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        char p[160];
        snprintf(p, sizeof p, "%s%s", path, ext[i]);
        unlink(p);
    }
}

/* One round: a fresh pen, a pull into an empty archive, the same rows inserted
 * plainly. Returns 0 and the figures, or -1. */
typedef struct round_figures {
    uint64_t records;
    double pull_s, plain_s, user_s, sys_s;
} round_figures;

static int one_round(bench_sim *pen, const char *sim, const char *server, round_figures *f)
{
    char db[128], plain[128];
    if (bench_sim_serve(pen, sim) != 0)
        return -1;
    snprintf(db, sizeof db, "%s/archive.db", pen->dir);
    snprintf(plain, sizeof plain, "%s/plain.db", pen->dir);
    remove_db(db);
    remove_db(plain);
    if (server && bench_pg_drop_archive(server) != 0)
        return -1;
    penlink_ctx *ctx = NULL;
    penlink_dev *dev = NULL;
    penlink_archive *ar = NULL;
    penlink_ctx_new(&ctx);
    int rc = -1;
    if (penlink_dev_open(ctx, pen->uri, &dev) != PENLINK_OK ||
        penlink_archive_open(ctx, server ? server : db, &ar) != PENLINK_OK) {
        fprintf(stderr, "bench_archive: %s\n", penlink_ctx_errmsg(ctx));
        goto out;
    }
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    double t0 = bench_now_s();
    if (penlink_archive_pull(ar, dev, NULL, &res) != PENLINK_OK) {
        fprintf(stderr, "bench_archive: %s\n", penlink_ctx_errmsg(ctx));
        goto out;
    }
    f->pull_s = bench_now_s() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    f->records = res.records_new;
    f->user_s = tv_s(ru1.ru_utime) - tv_s(ru0.ru_utime);
    f->sys_s = tv_s(ru1.ru_stime) - tv_s(ru0.ru_stime);
    bench_rows v = { 0 };
    penlink_archive_scan(ar, NULL, bench_rows_keep, &v);
    if (v.n != res.records_new) {
        fprintf(stderr, "bench_archive: %zu rows archived, %llu pulled\n", v.n,
                (unsigned long long)res.records_new);
        free(v.r);
        goto out;
    }
    f->plain_s = server ? bench_pg_plain_copy(server, v.r, v.n) : plain_insert(plain, &v);
    free(v.r);
    rc = f->plain_s > 0 ? 0 : -1;
out:
    penlink_archive_close(ar);
    penlink_dev_close(dev);
    penlink_ctx_free(ctx);
    bench_sim_halt(pen);
    return rc;
}

int main(int argc, char **argv)
{
    bench_args a;
    int done =
        bench_args_parse(argc, argv,
                         "Usage: bench_archive [-d DAYS] [-r ROUNDS] [--archive URI] PENLINK_SIM\n"
                         "Pulls DAYS (default 4500, about 1,000,000 records) of simulated usage\n"
                         "into an empty archive, then inserts the same rows plainly, and prints\n"
                         "both rates and their ratio; ROUNDS times (default 3), each with a fresh\n"
                         "pen, then the slowest pull and the lowest ratio. --archive: into a\n"
                         "PostgreSQL server (postgresql://..., service=NAME; its schema penlink\n"
                         "is dropped each round), against a plain binary COPY there.\n",
                         archive_is_server, &a);
    if (done >= 0)
        return done;
    int days = a.days, rounds = a.rounds;
    const char *server = a.server, *sim = a.sim;
    bench_sim pen;
    if (bench_sim_fill(&pen, sim, days, "--power-cycle-permille 0") != 0)
        return 1;
    double worst_rate = 0, worst_ratio = 0;
    for (int r = 1; r <= rounds; r++) {
        round_figures f;
        if (one_round(&pen, sim, server, &f) != 0) {
            bench_sim_stop(&pen);
            return 1;
        }
        double rate = (double)f.records / f.pull_s, ratio = f.plain_s / f.pull_s;
        printf("round %d: pull of %llu records into an empty archive %.2f s = %.0f records/s "
               "(penlink's CPU %.2f s user, %.2f s system); plain %s %.2f s = %.0f "
               "records/s; ratio %.2f\n",
               r, (unsigned long long)f.records, f.pull_s, rate, f.user_s, f.sys_s,
               server ? "COPY" : "insert", f.plain_s, (double)f.records / f.plain_s, ratio);
        if (r == 1 || rate < worst_rate)
            worst_rate = rate;
        if (r == 1 || ratio < worst_ratio)
            worst_ratio = ratio;
    }
    if (bench_sim_stop(&pen) != 0)
        return 1;
    printf("slowest pull: %.0f records/s (target >= 500000)\n", worst_rate);
    if (server)
        printf("lowest ratio pull into PostgreSQL / plain COPY of the same rows (one "
               "transaction): %.2f (target >= 0.5)\n",
               worst_ratio);
    else
        printf("lowest ratio pull / plain SQLite insert (one transaction, prepared): %.2f "
               "(target >= 0.5)\n",
               worst_ratio);
    return 0;
}
