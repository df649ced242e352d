/*
 * File-backed NOR flash for penlink-sim: an in-memory image mirrored to a
 * file operation by operation (each one written when the next begins), with
 * NOR rules enforced (program ANDs, erase sets 0xFF) and an optional torn
 * operation that simulates a power cut.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flash_file.h"
#include "splitmix64.h"
#include "state_dir.h"

static uint64_t next_rand(flash_file *f)
{
    return splitmix64_next(&f->rng);
}

static int persist(flash_file *f, uint32_t addr, uint32_t len)
{
    const uint8_t *p = f->mem + addr;
    off_t off = (off_t)addr;
    while (len > 0) {
        ssize_t n = pwrite(f->fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        off += n;
        len -= (uint32_t)n;
    }
    return 0;
}

int flash_file_flush(flash_file *f)
{
    if (!f->pending)
        return 0;
    if (persist(f, f->pend_addr, f->pend_len) != 0)
        return -1;
    f->pending = false;
    return 0;
}

/* Starts an operation on [addr, addr + len): the previous one goes to the
 * file first, this one stays pending. */
static int begin_op(flash_file *f, uint32_t addr, uint32_t len)
{
    if (flash_file_flush(f) != 0)
        return -1;
    f->pending = true;
    f->pend_addr = addr;
    f->pend_len = len;
    return 0;
}

int flash_file_open(flash_file *f, const char *path, uint32_t sector_size, uint32_t sector_count)
{
    struct stat st;
    size_t size = (size_t)sector_size * sector_count;

    memset(f, 0, sizeof *f);
    f->fd = -1;
    f->rng = 0x5EED;
    if (sector_size == 0 || sector_count == 0) {
        errno = EINVAL;
        return -1;
    }
    f->mem = malloc(size);
    if (!f->mem)
        goto fail;
    f->sector_size = sector_size;
    f->sector_count = sector_count;
    f->fd = open(path, O_RDWR | O_CLOEXEC);
    if (f->fd < 0 && errno == ENOENT) {
        memset(f->mem, 0xFF, size); /* a blank chip, in place only once it is whole */
        if (sd_write_atomic(path, f->mem, size, 0644) != 0)
            goto fail;
        f->fd = open(path, O_RDWR | O_CLOEXEC);
        if (f->fd < 0)
            goto fail;
        return 0;
    }
    if (f->fd < 0 || fstat(f->fd, &st) != 0)
        goto fail;
    if ((size_t)st.st_size != size) {
        errno = EINVAL;
        goto fail;
    }
    for (size_t got = 0; got < size;) {
        ssize_t n = pread(f->fd, f->mem + got, size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            errno = n == 0 ? EIO : errno;
            goto fail;
        }
        got += (size_t)n;
    }
    return 0;

fail : {
    int e = errno;
    flash_file_close(f);
    errno = e;
    return -1;
}
}

int flash_file_sync(flash_file *f)
{
    if (f->fd < 0)
        return 0;
    return flash_file_flush(f) == 0 ? fsync(f->fd) : -1;
}

void flash_file_close(flash_file *f)
{
    if (f->fd >= 0) {
        (void)flash_file_flush(f);
        close(f->fd);
    }
    free(f->mem);
    f->mem = NULL;
    f->fd = -1;
}

int flash_file_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    flash_file *f = ctx;
    uint64_t size = (uint64_t)f->sector_size * f->sector_count;
    if (f->dead || (uint64_t)addr + len > size)
        return -1;
    memcpy(buf, f->mem + addr, len);
    return 0;
}

/* True when this operation is the one the power cut interrupts. */
static bool cut_now(flash_file *f)
{
    f->ops++;
    return f->cut_after != 0 && f->ops == f->cut_after;
}

int flash_file_program(void *ctx, uint32_t addr, const void *buf, uint32_t len)
{
    flash_file *f = ctx;
    const uint8_t *d = buf;
    uint64_t size = (uint64_t)f->sector_size * f->sector_count;
    uint32_t n = len;

    if (f->dead || (uint64_t)addr + len > size || begin_op(f, addr, len) != 0)
        return -1;
    if (cut_now(f)) {
        n = len ? (uint32_t)(next_rand(f) % len) : 0;
        if (n < len) /* the byte being programmed gets some of its bits */
            f->mem[addr + n] &= (uint8_t)(d[n] | next_rand(f));
        f->dead = true;
    }
    for (uint32_t i = 0; i < n; i++)
        f->mem[addr + i] &= d[i];
    return f->dead ? -1 : 0;
}

int flash_file_erase(void *ctx, uint32_t sector)
{
    flash_file *f = ctx;
    uint32_t n = f->sector_size;
    if (f->dead || sector >= f->sector_count ||
        begin_op(f, sector * f->sector_size, f->sector_size) != 0)
        return -1;
    if (cut_now(f)) {
        n = (uint32_t)(next_rand(f) % f->sector_size);
        f->dead = true;
    }
    memset(f->mem + (size_t)sector * f->sector_size, 0xFF, n);
    return f->dead ? -1 : 0;
}
