/**
 * @file flash_file.h
 * A NOR flash kept in a file (host only): the simulated pen's flash survives
 * restarts the way a real pen's does. Reads are served from memory. Each
 * program or erase reaches the file (pwrite) before the next one starts, or
 * at flash_file_flush(): until then it is pending, and a process killed
 * meanwhile leaves the image as it was before that one operation, which is
 * what a power cut just before it would leave. The simulator uses that
 * moment to write the ground truth of a record before its staging slot
 * reaches the file. flash_file_sync() makes the image durable.
 *
 * A new image is created whole (blank, then renamed into place), so an
 * image of the wrong size is never left behind.
 *
 * Power-cut knob: with cut_after = N, the N-th program or erase from now is
 * torn (a random prefix of it happens, with one partially programmed byte)
 * and it and every later operation fail, as if the power had gone.
 */
#ifndef PENLINK_FLASH_FILE_H
#define PENLINK_FLASH_FILE_H

#include <stdbool.h>
#include <stdint.h>

typedef struct flash_file {
    int fd;
    uint8_t *mem; /**< the image, reads are served from here */
    uint32_t sector_size, sector_count;
    uint64_t ops;       /**< programs and erases so far */
    uint64_t cut_after; /**< 0: never */
    bool dead;          /**< the power is gone */
    uint64_t rng;
    bool pending; /**< an operation not yet in the file: [pend_addr, +pend_len) */
    uint32_t pend_addr, pend_len;
} flash_file;

/**
 * Opens @p path, creating a blank (all 0xFF) image of @p sector_count sectors
 * when it does not exist. An existing image must have the same size.
 * @return 0, or -1 with errno set.
 */
int flash_file_open(flash_file *f, const char *path, uint32_t sector_size, uint32_t sector_count);
/** Writes the pending operation, if any, to the file. 0 or -1. */
int flash_file_flush(flash_file *f);
/** Writes the pending operation and makes the image durable (fsync). 0 or -1. */
int flash_file_sync(flash_file *f);
/** Writes the pending operation and closes. */
void flash_file_close(flash_file *f);

/** pen_hal callbacks; ctx is the flash_file. */
int flash_file_read(void *ctx, uint32_t addr, void *buf, uint32_t len);
int flash_file_program(void *ctx, uint32_t addr, const void *buf, uint32_t len);
int flash_file_erase(void *ctx, uint32_t sector);

#endif
