/*
 * The state directory's durable writes and its lock. A file that defines
 * the pen (sim.state, device.key, config-keys, a new flash.bin) is never
 * rewritten in place: it is written whole beside its final name, synced,
 * and renamed over it, then the directory entry is synced, so a SIGKILL or
 * a power loss at any point leaves the old or the new file, never a part.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "state_dir.h"

#define PATH_CAP 600
#define PID_TEXT 24 /* a pid in decimal and a newline */

static int write_all(int fd, const void *data, size_t len)
{
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int sd_sync_parent(const char *path)
{
    char dir[PATH_CAP] = ".";
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t n = slash == path ? 1 : (size_t)(slash - path); /* a file in / keeps its slash */
        if (n >= sizeof dir) {
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int sd_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_CAP];
    int fd = -1, e;
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return -1;
    if (write_all(fd, data, len) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0)
        goto fail;
    return sd_sync_parent(path);

fail:
    e = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    errno = e;
    return -1;
}

/* The pid the holder wrote into the lock file, or 0. */
static long read_holder(int fd)
{
    char buf[PID_TEXT];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *end;
    long pid = strtol(buf, &end, 10);
    return end != buf && (*end == '\n' || *end == '\0') && pid > 0 ? pid : 0;
}

int sd_lock(const char *dir, long *holder)
{
    char path[PATH_CAP], pid[PID_TEXT];
    int n = snprintf(path, sizeof path, "%s/%s", dir, SIM_LOCK_FILE), e;
    *holder = 0;
    if (n < 0 || (size_t)n >= sizeof path) {
        errno = ENAMETOOLONG;
        return -1;
    }
    /* The file stays when the lock is released: removing it would let two
     * processes lock two different files of the same name. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EINTR)
            continue;
        e = errno;
        if (e == EWOULDBLOCK) {
            *holder = read_holder(fd);
            close(fd);
            return -2;
        }
        close(fd);
        errno = e;
        return -1;
    }
    n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}
