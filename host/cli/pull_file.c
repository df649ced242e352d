/*
 * Pulling into a frames file, the store `pull` and `watch` share until the
 * archive exists. The file is append-only: each LogChunk frame is written as
 * received; the file is synced before the pen is told it may erase
 * anything. A pull resumes after the last record in the file; a tail cut
 * short by a crash is dropped first (those records were never acknowledged,
 * so the pen still has them).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct pull_ctx {
    struct cli *c;
    int fd;
    int err; /* errno of a failed write */
    int progress;
    struct timespec start, last;
    unsigned long long total;
};

static int on_null_record(void *user, const penlink_record *r)
{
    (void)user;
    (void)r;
    return 0;
}

/* What the file holds: the next seq to pull and the bytes to keep. */
static int scan_file(struct cli *c, const char *path, int fd, unsigned long long *next, off_t *keep,
                     int *have)
{
    penlink_decoder *dec = NULL;
    int st = penlink_decoder_new(c->ctx, on_null_record, NULL, NULL, &dec);
    if (st != PENLINK_OK)
        return cli_fail(c, "pull", st);
    static unsigned char buf[1 << 16];
    ssize_t n;
    int fst = PENLINK_OK;
    for (n = read(fd, buf, sizeof buf); n > 0 && fst == PENLINK_OK; n = read(fd, buf, sizeof buf))
        fst = penlink_decoder_feed(dec, buf, (size_t)n);
    if (n < 0) {
        penlink_decoder_free(dec);
        return cli_error(c, EXIT_IO, "pull: reading %s: %s", path, strerror(errno));
    }
    if (fst == PENLINK_OK)
        fst = penlink_decoder_finish(dec);
    uint64_t last = 0;
    *have = penlink_decoder_last_seq(dec, &last);
    *next = *have ? last + 1 : 0;
    *keep = (off_t)penlink_decoder_good_bytes(dec);
    const char *why = penlink_ctx_errmsg(c->ctx);
    int cut_short = fst == PENLINK_ERR_PROTOCOL && strstr(why, "cut short") != NULL;
    penlink_decoder_free(dec);
    if (fst != PENLINK_OK && !cut_short)
        return cli_error(c, cli_exit_for(fst),
                         "pull: %s is damaged (%s); it is left untouched: move it away or "
                         "pull into another file with -o",
                         path, why);
    return EXIT_OK;
}

static double secs(const struct timespec *a, const struct timespec *b)
{
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static int on_chunk(void *user, const penlink_chunk *ch)
{
    struct pull_ctx *p = user;
    const unsigned char *b = ch->frame;
    size_t left = ch->frame_len;
    while (left > 0) {
        ssize_t w = write(p->fd, b, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            p->err = errno;
            return -1;
        }
        b += w;
        left -= (size_t)w;
    }
    return 0;
}

static void on_progress(void *user, const penlink_progress *pr)
{
    struct pull_ctx *p = user;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int done = pr->records_total && pr->records >= pr->records_total;
    if (!p->progress || (!done && secs(&p->last, &now) < 0.1))
        return;
    p->last = now;
    double t = secs(&p->start, &now), rate = t > 0 ? (double)pr->records / t : 0;
    unsigned long long total = pr->records_total > pr->records ? pr->records_total : pr->records;
    int width = 30, fill = total ? (int)((double)width * (double)pr->records / (double)total) : 0;
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[width] = '\0';
    double eta = rate > 0 && total > pr->records ? (double)(total - pr->records) / rate : 0;
    printf("\r[%s] %llu/%llu records  %.1f MB  %.0f rec/s  ETA %.0fs ", bar,
           (unsigned long long)pr->records, total, (double)pr->bytes / 1e6, rate, eta);
    fflush(stdout);
}

int cli_pull_to_file(struct cli *c, penlink_dev *dev, const struct pull_opts *o,
                     struct pull_summary *s)
{
    penlink_info info;
    int st = penlink_dev_info(dev, &info);
    memset(s, 0, sizeof *s);
    if (st != PENLINK_OK)
        return cli_fail(c, "pull", st);
    snprintf(s->serial, sizeof s->serial, "%s", info.serial);
    int fd = open(o->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return cli_error(c, EXIT_IO, "pull: cannot open %s: %s", o->path, strerror(errno));
    unsigned long long from = info.log_first_seq;
    off_t keep = 0;
    int have = 0;
    int rc = scan_file(c, o->path, fd, &from, &keep, &have);
    if (rc != EXIT_OK)
        goto out;
    if (!have)
        from = info.log_first_seq;
    s->resumed = have;
    struct stat sb;
    if (fstat(fd, &sb) == 0 && sb.st_size > keep) {
        /* a crash cut the last frame short: its records were never acked */
        if (ftruncate(fd, keep) != 0) {
            rc = cli_error(c, EXIT_IO, "pull: %s: %s", o->path, strerror(errno));
            goto out;
        }
        if (c->verbose)
            fprintf(stderr, "pull: dropped a %lld-byte incomplete tail of %s\n",
                    (long long)(sb.st_size - keep), o->path);
    }
    struct pull_ctx pc = { .c = c, .fd = fd, .progress = o->progress };
    clock_gettime(CLOCK_MONOTONIC, &pc.start);
    pc.last = pc.start;
    pc.last.tv_sec -= 1;
    penlink_pull_cb cb = { .on_chunk = on_chunk, .on_progress = on_progress, .user = &pc };
    penlink_pull_result res;
    st = penlink_dev_pull(dev, from, &cb, &res);
    if (o->progress)
        printf("\n");
    s->from_seq = from;
    s->next_seq = res.next_seq;
    s->records = res.records;
    s->bytes = res.bytes;
    s->gap = res.gap;
    /* whatever arrived intact is kept: make it durable before anything else */
    if (fsync(fd) != 0) {
        rc = cli_error(c, EXIT_IO, "pull: syncing %s: %s (nothing acknowledged)", o->path,
                       strerror(errno));
        goto out;
    }
    if (pc.err) {
        rc = cli_error(c, EXIT_IO, "pull: writing %s: %s (nothing acknowledged)", o->path,
                       strerror(pc.err));
        goto out;
    }
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "pull", st);
        goto out;
    }
    s->acked_seq = info.log_acked_seq;
    if (o->ack && res.next_seq > 0 && res.next_seq - 1 >= info.log_acked_seq &&
        res.next_seq > from) {
        uint64_t acked = 0;
        st = penlink_dev_ack(dev, res.next_seq - 1, &acked);
        if (st != PENLINK_OK) {
            rc = cli_fail(c,
                          "pull: records saved, but the acknowledgement failed (the next pull "
                          "acknowledges them)",
                          st);
            goto out;
        }
        s->acked_seq = acked;
    }
    rc = EXIT_OK;
out:
    close(fd);
    return rc;
}

/* ---- pulling into the archive ------------------------------------------- */

struct arch_progress {
    struct pull_ctx p;
};

int cli_pull_to_archive(struct cli *c, penlink_dev *dev, int progress,
                        penlink_archive_pull_result *res)
{
    penlink_archive *ar = NULL;
    memset(res, 0, sizeof *res); /* callers report it even when the archive won't open */
    int st = penlink_archive_open(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "archive", st);
    struct pull_ctx pc = { .c = c, .fd = -1, .progress = progress };
    clock_gettime(CLOCK_MONOTONIC, &pc.start);
    pc.last = pc.start;
    pc.last.tv_sec -= 1;
    penlink_pull_cb cb = { .on_progress = on_progress, .user = &pc };
    st = penlink_archive_pull(ar, dev, &cb, res);
    if (progress)
        printf("\n");
    penlink_archive_close(ar);
    if (res->gap)
        cli_warn(c,
                 "%s: %llu records (seq %llu..%llu) were no longer on the pen: acknowledged "
                 "elsewhere, or lost to a full log before they were pulled (recorded in the "
                 "archive)",
                 res->serial, (unsigned long long)res->gap, (unsigned long long)res->from_seq,
                 (unsigned long long)(res->from_seq + res->gap - 1));
    if (res->overflows)
        cli_warn(c,
                 "%s: %llu log_overflow records: the pen dropped records before they were "
                 "pulled",
                 res->serial, (unsigned long long)res->overflows);
    if (st != PENLINK_OK)
        return cli_fail(c, "pull", st);
    return EXIT_OK;
}
