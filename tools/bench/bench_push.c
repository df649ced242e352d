/*
 * bench_push: penlink archive push of a laptop's SQLite archive into a
 * PostgreSQL server, next to a plain binary COPY of the same records into a
 * table of the same shape there, in the same run. The SQLite archive is a
 * pull of DAYS of simulated usage (about 1,000,000 records by default),
 * made outside any measurement. Each round pushes it into an empty archive
 * on the server (its schema dropped), then pushes it again (nothing new:
 * every chunk, record and head recognised, the destination left as it
 * was), then copies the rows plainly. penlink's CPU time next to the push's
 * wall time shows how much of it was spent waiting for the server.
 *
 *   bench_push [-d DAYS] [-r ROUNDS] --archive URI PENLINK_SIM
 *
 * tools/bench/bench_pg.sh starts a throwaway cluster for it.
 */
#define _DEFAULT_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "archive.h"
#include "bench_pg.h"
#include "bench_sim.h"
#include "bench_util.h"
#include "penlink/penlink.h"

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

typedef struct tally {
    uint64_t records_new, records_same, chunks_new;
} tally;

static int on_pen(void *user, const penlink_push_report *r)
{
    tally *t = user;
    t->records_new += r->records_new;
    t->records_same += r->records_same;
    t->chunks_new += r->chunks_new;
    return r->status != PENLINK_OK;
}

/* One push of @p src into @p uri; its wall and CPU seconds, or -1. */
static double push(penlink_ctx *ctx, penlink_archive *src, const char *uri, tally *t, double *cpu)
{
    penlink_archive *dst = NULL;
    memset(t, 0, sizeof *t);
    if (penlink_archive_open(ctx, uri, &dst) != PENLINK_OK) {
        fprintf(stderr, "bench_push: %s\n", penlink_ctx_errmsg(ctx));
        return -1;
    }
    double c0 = cpu_s(), t0 = bench_now_s();
    int st = penlink_archive_push(src, dst, NULL, on_pen, t);
    double dt = bench_now_s() - t0;
    *cpu = cpu_s() - c0;
    penlink_archive_close(dst);
    if (st != PENLINK_OK) {
        fprintf(stderr, "bench_push: %s\n", penlink_ctx_errmsg(ctx));
        return -1;
    }
    return dt;
}

int main(int argc, char **argv)
{
    bench_args a;
    int done =
        bench_args_parse(argc, argv,
                         "Usage: bench_push [-d DAYS] [-r ROUNDS] --archive URI PENLINK_SIM\n"
                         "Pulls DAYS (default 4500, about 1,000,000 records) of simulated usage\n"
                         "into a SQLite archive, then pushes it into the PostgreSQL server URI\n"
                         "(postgresql://..., service=NAME; its schema penlink is dropped each\n"
                         "round), pushes it again, and copies the same rows plainly there;\n"
                         "ROUNDS times (default 3), then the slowest push and the lowest ratio.\n",
                         archive_is_server, &a);
    if (done == 0)
        return done;
    if (done > 0 || !a.server) {
        fprintf(stderr, "bench_push: --archive URI and PENLINK_SIM are needed (--help)\n");
        return 2;
    }
    int days = a.days, rounds = a.rounds;
    const char *server = a.server, *sim = a.sim;
    bench_sim pen;
    penlink_ctx *ctx = NULL;
    penlink_dev *dev = NULL;
    penlink_archive *src = NULL;
    bench_rows v = { 0 };
    char path[128];
    int rc = 1;
    if (bench_sim_start(&pen, sim, days, "--power-cycle-permille 0") != 0 ||
        penlink_ctx_new(&ctx) != PENLINK_OK)
        return 1;
    snprintf(path, sizeof path, "%s/laptop.db", pen.dir);
    if (penlink_dev_open(ctx, pen.uri, &dev) != PENLINK_OK ||
        penlink_archive_open(ctx, path, &src) != PENLINK_OK ||
        penlink_archive_pull(src, dev, NULL, NULL) != PENLINK_OK ||
        penlink_archive_scan(src, NULL, bench_rows_keep, &v) != PENLINK_OK) {
        fprintf(stderr, "bench_push: %s\n", penlink_ctx_errmsg(ctx));
        goto out;
    }
    penlink_dev_close(dev);
    dev = NULL;
    printf("a SQLite archive of %zu records (one pen)\n", v.n);
    double worst_rate = 0, worst_ratio = 0;
    for (int r = 1; r <= rounds; r++) {
        tally t1, t2;
        double cpu1, cpu2;
        if (bench_pg_drop_archive(server) != 0)
            goto out;
        double push_s = push(ctx, src, server, &t1, &cpu1);
        double again_s = push_s > 0 ? push(ctx, src, server, &t2, &cpu2) : -1;
        double plain_s = again_s > 0 ? bench_pg_plain_copy(server, v.r, v.n) : -1;
        if (plain_s <= 0)
            goto out;
        if (t1.records_new != v.n || t2.records_new != 0 || t2.records_same != v.n) {
            fprintf(stderr, "bench_push: pushed %llu new records, then %llu (want %zu, then 0)\n",
                    (unsigned long long)t1.records_new, (unsigned long long)t2.records_new, v.n);
            goto out;
        }
        double rate = (double)v.n / push_s, ratio = plain_s / push_s;
        printf("round %d: push of %zu records (%llu chunks) into an empty archive %.2f s = %.0f "
               "records/s (penlink's CPU %.2f s); pushed again (nothing new) %.2f s = %.0f "
               "records/s checked (CPU %.2f s); plain COPY %.2f s = %.0f records/s; ratio %.2f\n",
               r, v.n, (unsigned long long)t1.chunks_new, push_s, rate, cpu1, again_s,
               (double)v.n / again_s, cpu2, plain_s, (double)v.n / plain_s, ratio);
        if (r == 1 || rate < worst_rate)
            worst_rate = rate;
        if (r == 1 || ratio < worst_ratio)
            worst_ratio = ratio;
    }
    printf("slowest push: %.0f records/s; lowest ratio push / plain COPY of the same rows: %.2f\n",
           worst_rate, worst_ratio);
    rc = 0;
out:
    free(v.r);
    penlink_archive_close(src);
    penlink_dev_close(dev);
    penlink_ctx_free(ctx);
    bench_sim_stop(&pen);
    return rc;
}
