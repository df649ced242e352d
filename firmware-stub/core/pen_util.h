/**
 * @file pen_util.h
 * Small helpers the device core shares: little-endian field access for the
 * on-flash formats (which are defined byte by byte, independent of the MCU's
 * endianness and alignment), and a bounded text builder for the messages of
 * Error replies (the core has no stdio).
 */
#ifndef PEN_UTIL_H
#define PEN_UTIL_H

#include <stddef.h>
#include <stdint.h>

static inline void pen_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void pen_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void pen_put64(uint8_t *p, uint64_t v)
{
    pen_put32(p, (uint32_t)v);
    pen_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint16_t pen_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t pen_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t pen_get64(const uint8_t *p)
{
    return (uint64_t)pen_get32(p) | (uint64_t)pen_get32(p + 4) << 32;
}

/** CRC-32 (zlib's polynomial) of @p len bytes, continuing from @p crc (0 to start). */
uint32_t pen_crc32(uint32_t crc, const void *data, size_t len);

/** 1 when @p len bytes at @p p are all 0xFF (erased flash). */
int pen_is_erased(const uint8_t *p, size_t len);

/** A text builder over a fixed buffer; silently truncates, always NUL-terminated. */
typedef struct pen_msg {
    char *buf;
    size_t cap;
    size_t len;
} pen_msg;

/** Starts an empty message in @p buf (@p cap >= 1). */
void pen_msg_init(pen_msg *m, char *buf, size_t cap);
/** Appends a string. */
void pen_msg_str(pen_msg *m, const char *s);
/** Appends an unsigned number in decimal. */
void pen_msg_u64(pen_msg *m, uint64_t v);
/** Appends a signed number in decimal. */
void pen_msg_i64(pen_msg *m, int64_t v);

#endif
