/*
 * bench_trust: what trust costs.
 *
 *  1. Per chunk: the SHA-256 chain link of a typical chunk, the Ed25519
 *     signature over a log head and its verification (libsodium), next to
 *     inflating the same chunk, the work a pull does for every chunk anyway.
 *  2. penlink verify over a large archive: DAYS of simulated usage pulled
 *     from penlink-sim (a pen that signs its log) into an empty archive, then
 *     penlink_archive_verify() timed next to penlink_archive_scan() of the
 *     same records (the cheapest way to read them all), in the same run.
 *
 *   bench_trust [-d DAYS] [-r ROUNDS] PENLINK_SIM
 */
#define _DEFAULT_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>
#include <zlib.h>

#include "bench_sim.h"
#include "bench_util.h"
#include "penlink/penlink.h"
#include "pl/auth.h"

typedef struct first_chunk {
    uint8_t data[2048];
    size_t len;
    uint32_t raw;
    int have;
} first_chunk;

static int grab(void *u, const penlink_chunk *c)
{
    first_chunk *f = u;
    if (!f->have && c->len <= sizeof f->data && c->len > 800) {
        memcpy(f->data, c->data, c->len);
        f->len = c->len;
        f->raw = c->raw_size;
        f->have = 1;
    }
    return 0;
}

static int count_rec(void *u, const char *serial, const penlink_record *r)
{
    (void)serial;
    *(uint64_t *)u += r->depth_um;
    return 0;
}

static int count_verify(void *u, const penlink_verify_report *r)
{
    if (r->state != PENLINK_VERIFY_OK) {
        fprintf(stderr, "bench_trust: the archive does not verify: %s\n", r->detail);
        return 1;
    }
    *(uint64_t *)u += r->records;
    return 0;
}

static void per_chunk(const first_chunk *f)
{
    enum { N = 20000 };
    uint8_t prev[32] = { 0 }, link[32], pre[PL_AUTH_LINK_PREFIX], pk[32], sk[64], sig[64];
    uint8_t head[PL_AUTH_HEAD_MAX], raw[64 * 1024];
    crypto_sign_keypair(pk, sk);
    double t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        pl_auth_link_prefix(pre, prev, (uint64_t)i, 160, f->raw, (uint32_t)f->len);
        crypto_hash_sha256_state st;
        crypto_hash_sha256_init(&st);
        crypto_hash_sha256_update(&st, pre, sizeof pre);
        crypto_hash_sha256_update(&st, f->data, f->len);
        crypto_hash_sha256_final(&st, link);
        prev[0] ^= link[0];
    }
    double t_link = (bench_now_s() - t0) / N;
    size_t hn = pl_auth_head_bytes(head, "PEN-BENCH", 12345, link);
    t0 = bench_now_s();
    for (int i = 0; i < N / 10; i++)
        crypto_sign_detached(sig, NULL, head, hn, sk);
    double t_sign = (bench_now_s() - t0) / (N / 10);
    t0 = bench_now_s();
    int bad = 0;
    for (int i = 0; i < N / 10; i++)
        bad |= crypto_sign_verify_detached(sig, head, hn, pk);
    double t_verify = (bench_now_s() - t0) / (N / 10);
    t0 = bench_now_s();
    for (int i = 0; i < N; i++) {
        uLongf out = sizeof raw;
        if (uncompress(raw, &out, f->data, f->len) != Z_OK)
            bad = 1;
    }
    double t_inflate = (bench_now_s() - t0) / N;
    printf("per chunk (%zu bytes of data, %u raw):\n", f->len, f->raw);
    printf("  inflate (baseline, done for every chunk)  %8.2f us\n", t_inflate * 1e6);
    printf("  SHA-256 chain link                        %8.2f us  = %.2fx inflate\n", t_link * 1e6,
           t_link / t_inflate);
    printf("  Ed25519 sign of a head (pen, per reply)   %8.2f us  = %.2fx inflate\n", t_sign * 1e6,
           t_sign / t_inflate);
    printf("  Ed25519 verify of a head (host)           %8.2f us  = %.2fx inflate%s\n",
           t_verify * 1e6, t_verify / t_inflate, bad ? " (FAILED)" : "");
}

int main(int argc, char **argv)
{
    int days = 1500, rounds = 2, opt;
    while ((opt = getopt(argc, argv, "d:r:h")) != -1) {
        if (opt == 'd') {
            days = atoi(optarg);
        } else if (opt == 'r') {
            rounds = atoi(optarg);
        } else {
            printf("Usage: bench_trust [-d DAYS (1500)] [-r ROUNDS (2)] PENLINK_SIM\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    if (optind != argc - 1 || sodium_init() < 0)
        return 2;
    const char *sim = argv[optind];
    bench_sim pen;
    char db[128];
    if (bench_sim_start(&pen, sim, days, "--serial PEN-BENCH --power-cycle-permille 0") != 0)
        return 1;
    snprintf(db, sizeof db, "%s/archive.db", pen.dir);
    penlink_ctx *ctx = NULL;
    penlink_dev *dev = NULL;
    penlink_archive *ar = NULL;
    penlink_ctx_new(&ctx);
    int rc = 1;
    first_chunk f = { 0 };
    if (penlink_dev_open(ctx, pen.uri, &dev) != PENLINK_OK ||
        penlink_archive_open(ctx, db, &ar) != PENLINK_OK) {
        fprintf(stderr, "bench_trust: %s\n", penlink_ctx_errmsg(ctx));
        goto out;
    }
    penlink_pull_cb g = { .size = sizeof(penlink_pull_cb), .on_chunk = grab, .user = &f };
    penlink_pull_result pr = PENLINK_PULL_RESULT_INIT;
    if (penlink_dev_pull(dev, 0, &g, &pr) != PENLINK_OK || !f.have) {
        fprintf(stderr, "bench_trust: %s\n", penlink_ctx_errmsg(ctx));
        goto out;
    }
    per_chunk(&f);
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    if (penlink_archive_pull(ar, dev, NULL, &res) != PENLINK_OK) {
        fprintf(stderr, "bench_trust: %s\n", penlink_ctx_errmsg(ctx));
        goto out;
    }
    double best_v = 1e30, best_s = 1e30;
    uint64_t nv = 0, ns = 0;
    for (int r = 0; r < rounds; r++) {
        nv = 0;
        double t0 = bench_now_s();
        if (penlink_archive_verify(ar, NULL, count_verify, &nv) != PENLINK_OK)
            goto out;
        double tv = bench_now_s() - t0;
        t0 = bench_now_s();
        ns = 0;
        if (penlink_archive_scan(ar, NULL, count_rec, &ns) != PENLINK_OK)
            goto out;
        double ts = bench_now_s() - t0;
        best_v = tv < best_v ? tv : best_v;
        best_s = ts < best_s ? ts : best_s;
    }
    printf("penlink verify of %llu records (%llu chunks pulled): %.3f s = %.0f records/s\n",
           (unsigned long long)nv, (unsigned long long)res.chunks, best_v, (double)nv / best_v);
    printf("penlink_archive_scan of the same records:            %.3f s = %.0f records/s\n", best_s,
           (double)res.records_new / best_s);
    printf("ratio verify / scan = %.2f\n", best_v / best_s);
    rc = 0;
out:
    penlink_archive_close(ar);
    penlink_dev_close(dev);
    penlink_ctx_free(ctx);
    if (bench_sim_stop(&pen) != 0)
        rc = 1;
    return rc;
}
