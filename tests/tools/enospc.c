/*
 * LD_PRELOAD shim: a disk that fills up, for the archive's disk-full tests
 * (no root, no small file system needed). Writes to files whose path
 * contains $PENLINK_ENOSPC_MATCH fail with ENOSPC once $PENLINK_ENOSPC_AFTER
 * bytes were written to such files in this process, or once they were
 * synced $PENLINK_ENOSPC_AFTER_SYNCS times, or (for the --trace tests) once
 * a write to such a file held the bytes $PENLINK_ENOSPC_AFTER_PATTERN (hex):
 * every later write fails; other files are not touched. Without
 * $PENLINK_ENOSPC_MATCH it changes nothing.
 *
 * With $PENLINK_ENOSPC_STDOUT set, standard output is a full device (as
 * "> /dev/full", which not every machine has): every write to it fails with
 * ENOSPC, whether through stdio (a stream that replaces stdout before main)
 * or write(2) on fd 1.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static long long limit = -1, used, syncs, sync_limit = -1;
static int stdout_full;
static const char *match;
static unsigned char pattern[4096];
static size_t pattern_len;
static int pattern_seen;

static void init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    const char *after = getenv("PENLINK_ENOSPC_AFTER"),
               *after_syncs = getenv("PENLINK_ENOSPC_AFTER_SYNCS");
    match = getenv("PENLINK_ENOSPC_MATCH");
    if (!match || !*match) {
        match = NULL;
        return;
    }
    if (after)
        limit = atoll(after);
    if (after_syncs)
        sync_limit = atoll(after_syncs);
    const char *hex = getenv("PENLINK_ENOSPC_AFTER_PATTERN");
    for (; hex && hex[0] && hex[1] && pattern_len < sizeof pattern; hex += 2) {
        char byte[3] = { hex[0], hex[1], '\0' };
        pattern[pattern_len++] = (unsigned char)strtoul(byte, NULL, 16);
    }
}

/* A full device's stream: nothing is ever written. */
static ssize_t full_write(void *cookie, const char *buf, size_t n)
{
    (void)cookie;
    (void)buf;
    (void)n;
    errno = ENOSPC;
    return -1;
}

__attribute__((constructor)) static void full_stdout(void)
{
    if (!getenv("PENLINK_ENOSPC_STDOUT"))
        return;
    cookie_io_functions_t io = { .write = full_write };
    FILE *f = fopencookie(NULL, "w", io);
    if (!f)
        return;
    stdout_full = 1;
    stdout = f; /* printf, puts and fputs(..., stdout) all read this variable */
}

/* Whether @p fd is a watched file. */
static int watched(int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len <= 0)
        return 0;
    path[len] = '\0';
    return strstr(path, match) != NULL;
}

/* The pattern mode: fails once a write held the pattern; notes a write that does. */
static int after_pattern(int fd, const struct iovec *iov, int cnt)
{
    init();
    if (!pattern_len || !match || !watched(fd))
        return 0;
    if (pattern_seen) {
        errno = ENOSPC;
        return 1;
    }
    for (int i = 0; i < cnt; i++)
        if (iov[i].iov_len >= pattern_len &&
            memmem(iov[i].iov_base, iov[i].iov_len, pattern, pattern_len))
            pattern_seen = 1; /* this write goes through; the next ones fail */
    return 0;
}

/* Whether writing @p n bytes to @p fd finds the disk full. */
static int full(int fd, size_t n)
{
    char link[64], path[4096];
    init();
    if (limit < 0 || !match)
        return 0;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len <= 0)
        return 0;
    path[len] = '\0';
    if (!strstr(path, match))
        return 0;
    if (used + (long long)n > limit) {
        errno = ENOSPC;
        return 1;
    }
    used += (long long)n;
    return 0;
}

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*sync_fn)(int);

ssize_t write(int fd, const void *buf, size_t n)
{
    static write_fn real;
    if (!real)
        real = (write_fn)dlsym(RTLD_NEXT, "write");
    struct iovec one = { (void *)buf, n };
    if (stdout_full && fd == STDOUT_FILENO) {
        errno = ENOSPC;
        return -1;
    }
    return after_pattern(fd, &one, 1) || full(fd, n) ? -1 : real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    static pwrite_fn real;
    if (!real)
        real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
    return full(fd, n) ? -1 : real(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    static pwrite_fn real;
    if (!real)
        real = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
    return full(fd, n) ? -1 : real(fd, buf, n, off);
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
    static writev_fn real;
    if (!real)
        real = (writev_fn)dlsym(RTLD_NEXT, "writev");
    size_t n = 0;
    for (int i = 0; i < cnt; i++)
        n += iov[i].iov_len;
    return after_pattern(fd, iov, cnt) || full(fd, n) ? -1 : real(fd, iov, cnt);
}

/* Each sync of a watched file is a commit made durable: counted, so that a
 * test can let the first K commits through ($PENLINK_ENOSPC_AFTER_SYNCS). */
static int synced(int fd)
{
    char link[64], path[4096];
    init();
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, path, sizeof path - 1);
    if (len > 0 && match) {
        path[len] = '\0';
        if (strstr(path, match) && ++syncs == sync_limit)
            limit = used; /* from now on, the disk is full */
    }
    if (getenv("PENLINK_ENOSPC_REPORT"))
        fprintf(stderr, "enospc: sync %lld of %s after %lld bytes\n", syncs, len > 0 ? path : "?",
                used);
    return 0;
}

int fsync(int fd)
{
    static sync_fn real;
    if (!real)
        real = (sync_fn)dlsym(RTLD_NEXT, "fsync");
    synced(fd);
    return real(fd);
}

int fdatasync(int fd)
{
    static sync_fn real;
    if (!real)
        real = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
    synced(fd);
    return real(fd);
}
