/*
 * bench_pull: the pull rate over the sim transport (penlink-sim's Unix
 * socket) next to the raw rate of a Unix stream socket on this machine,
 * measured in the same run. The ratio is what the protocol, the pen's chunk
 * reads, and the host's checks cost over moving the bytes.
 *
 * With --trace it also pulls the same pen with `penlink --trace` on (every
 * packet written to a pcapng file as it goes) and reports the traced pull's
 * time against the untraced one's, rounds interleaved.
 *
 *   bench_pull [--days D] [--rounds R] [--trace] PENLINK_SIM
 */
#define _DEFAULT_SOURCE
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_sim.h"
#include "bench_util.h"
#include "penlink/penlink.h"

static int count_record(void *user, const penlink_record *r)
{
    (void)r;
    (*(unsigned long long *)user)++;
    return 0;
}

/* Seconds to move @p bytes through a Unix stream socket between two processes. */
static double raw_socket(unsigned long long bytes)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return -1;
    static char buf[64 * 1024];
    double t0 = bench_now_s();
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        unsigned long long left = bytes;
        while (left > 0) {
            ssize_t n = write(sv[1], buf, left < sizeof buf ? left : sizeof buf);
            if (n <= 0)
                _exit(1);
            left -= (unsigned long long)n;
        }
        _exit(0);
    }
    close(sv[1]);
    unsigned long long got = 0;
    ssize_t n;
    while ((n = read(sv[0], buf, sizeof buf)) > 0)
        got += (unsigned long long)n;
    double t = bench_now_s() - t0;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return got == bytes ? t : -1;
}

/* One pull of the whole log from 0 (nothing acknowledged): seconds, or < 0. */
static double pull_once(penlink_dev *dev, unsigned long long *records, unsigned long long *bytes)
{
    unsigned long long n = 0;
    penlink_pull_cb cb = { .size = sizeof(penlink_pull_cb), .on_record = count_record, .user = &n };
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    double t0 = bench_now_s();
    int st = penlink_dev_pull(dev, 0, &cb, &res);
    double t = bench_now_s() - t0;
    if (st != PENLINK_OK)
        return -1;
    *records = n;
    *bytes = res.bytes;
    return t;
}

/* --trace: untraced and traced pulls of the same pen, interleaved; best of each. */
static int bench_trace(const char *uri, int rounds)
{
    char path[] = "/tmp/bench_pull_trace.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 1;
    close(fd);
    penlink_ctx *plain = NULL, *traced = NULL;
    penlink_dev *a = NULL, *b = NULL;
    int rc = 1;
    if (penlink_ctx_new(&plain) != PENLINK_OK || penlink_ctx_new(&traced) != PENLINK_OK) {
        fprintf(stderr, "bench_pull: no memory\n");
        goto out;
    }
    double best_plain = 1e30, best_traced = 1e30;
    unsigned long long records = 0, bytes = 0;
    /* the simulator serves one host at a time: one session after the other,
     * a fresh trace file for each traced one, so the file holds one pull */
    for (int r = 0; r < rounds; r++) {
        if (penlink_dev_open(plain, uri, &a) != PENLINK_OK) {
            fprintf(stderr, "bench_pull: %s\n", penlink_ctx_errmsg(plain));
            goto out;
        }
        double t = pull_once(a, &records, &bytes);
        penlink_dev_close(a);
        a = NULL;
        if (t < 0) {
            fprintf(stderr, "bench_pull: %s\n", penlink_ctx_errmsg(plain));
            goto out;
        }
        best_plain = t < best_plain ? t : best_plain;
        if (penlink_ctx_set_trace(traced, path) != PENLINK_OK ||
            penlink_dev_open(traced, uri, &b) != PENLINK_OK) {
            fprintf(stderr, "bench_pull: %s\n", penlink_ctx_errmsg(traced));
            goto out;
        }
        t = pull_once(b, &records, &bytes);
        penlink_dev_close(b);
        b = NULL;
        if (t < 0) {
            fprintf(stderr, "bench_pull: %s\n", penlink_ctx_errmsg(traced));
            goto out;
        }
        best_traced = t < best_traced ? t : best_traced;
    }
    penlink_dev_close(b);
    b = NULL;
    penlink_ctx_set_trace(traced, NULL);
    struct stat st;
    long long tsize = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    printf("pull without --trace: %.0f records/s (%llu records, %llu bytes; best of %d)\n",
           (double)records / best_plain, records, bytes, rounds);
    printf("pull with --trace:    %.0f records/s (trace of one pull: %lld bytes)\n",
           (double)records / best_traced, tsize);
    printf("ratio traced / untraced time = %.3f\n", best_traced / best_plain);
    rc = 0;
out:
    penlink_dev_close(a);
    penlink_dev_close(b);
    penlink_ctx_free(plain);
    penlink_ctx_free(traced);
    unlink(path);
    return rc;
}

int main(int argc, char **argv)
{
    int days = 365, rounds = 3, opt, trace = 0;
    static const struct option opts[] = { { "days", required_argument, NULL, 'd' },
                                          { "rounds", required_argument, NULL, 'r' },
                                          { "trace", no_argument, NULL, 't' },
                                          { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    while ((opt = getopt_long(argc, argv, "d:r:th", opts, NULL)) != -1) {
        switch (opt) {
        case 'd': days = atoi(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        case 't': trace = 1; break;
        case 'h':
            printf("Usage: bench_pull [--days D] [--rounds R] [--trace] PENLINK_SIM\n"
                   "Pull rate over penlink-sim's socket (D simulated days, default 365;\n"
                   "best of R rounds, default 3, nothing acknowledged) next to the raw\n"
                   "rate of a Unix stream socket moving the same bytes. With --trace,\n"
                   "instead the same pull with and without penlink --trace (a pcapng\n"
                   "file in /tmp, removed after), rounds interleaved.\n");
            return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1 || days < 1 || rounds < 1) {
        fprintf(stderr, "usage: bench_pull [--days D] [--rounds R] [--trace] PENLINK_SIM\n");
        return 2;
    }
    const char *sim = argv[optind];
    /* the pen's flash is filled first, outside the measurement */
    bench_sim pen;
    if (bench_sim_start(&pen, sim, days, NULL) != 0)
        return 1;
    if (trace) {
        int trc = bench_trace(pen.uri, rounds);
        if (bench_sim_stop(&pen) != 0)
            trc = 1;
        return trc;
    }
    penlink_ctx *ctx = NULL;
    penlink_dev *dev = NULL;
    int rc = 1;
    if (penlink_ctx_new(&ctx) != PENLINK_OK || penlink_dev_open(ctx, pen.uri, &dev) != PENLINK_OK) {
        fprintf(stderr, "bench_pull: %s\n", ctx ? penlink_ctx_errmsg(ctx) : "no memory");
        goto out;
    }
    double best_pull = 1e30, best_raw = 1e30;
    unsigned long long records = 0, bytes = 0;
    for (int r = 0; r < rounds; r++) {
        unsigned long long n = 0;
        penlink_pull_cb cb = { .size = sizeof(penlink_pull_cb),
                               .on_record = count_record,
                               .user = &n };
        penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
        double t0 = bench_now_s();
        int st = penlink_dev_pull(dev, 0, &cb, &res);
        double t = bench_now_s() - t0;
        if (st != PENLINK_OK) {
            fprintf(stderr, "bench_pull: %s\n", penlink_ctx_errmsg(ctx));
            goto out;
        }
        records = n;
        bytes = res.bytes;
        best_pull = t < best_pull ? t : best_pull;
        double raw = raw_socket(bytes);
        if (raw > 0 && raw < best_raw)
            best_raw = raw;
    }
    printf("pen: %d simulated days, %llu records in %llu bytes of frames (%.2f B/record)\n", days,
           records, bytes, (double)bytes / (double)records);
    printf("pull over the sim socket: %.0f records/s, %.1f MB/s (best of %d)\n",
           (double)records / best_pull, (double)bytes / best_pull / 1e6, rounds);
    printf("raw Unix stream socket, same bytes: %.1f MB/s\n", (double)bytes / best_raw / 1e6);
    printf("ratio pull / raw = %.3f\n", best_raw / best_pull);
    rc = 0;
out:
    penlink_dev_close(dev);
    penlink_ctx_free(ctx);
    if (bench_sim_stop(&pen) != 0)
        rc = 1;
    return rc;
}
