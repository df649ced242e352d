/**
 * @file pl/varint.h
 * Protobuf's integer encodings, in the one place both the chunk codec
 * (protocol/src/chunk_codec.c) and the archive's record body
 * (host/src/record_body.c) take them from: unsigned LEB128 varints, zigzag
 * for signed values (sint64), and the lowest set bit of a field mask.
 *
 * Inline: each is called once per value on the hottest paths (a chunk's
 * columns, every archived record), and the pen has no room for calls it
 * does not need. Readers treat the bytes as hostile: a varint that runs past
 * the end or beyond 64 bits is refused, never read on.
 */
#ifndef PL_VARINT_H
#define PL_VARINT_H

#include <stddef.h>
#include <stdint.h>

/** The longest varint: 64 bits in 7-bit groups. */
#define PL_VARINT_MAX 10u

/** Bytes the varint of @p v takes (1..PL_VARINT_MAX). */
static inline uint32_t pl_varint_len(uint64_t v)
{
    uint32_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/** Writes the varint of @p v at @p p (room for PL_VARINT_MAX bytes); returns its length. */
static inline size_t pl_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/**
 * Reads one varint from *@p pp, not past @p end, into *@p v and advances
 * *@p pp past it. Returns 0, or -1 (nothing advanced) when the bytes end
 * first or the value does not fit in 64 bits (a tenth byte above 1, or an
 * eleventh byte).
 */
static inline int pl_varint_get(const uint8_t **pp, const uint8_t *end, uint64_t *v)
{
    const uint8_t *p = *pp;
    if (p < end && *p < 0x80) { /* most values are one byte */
        *v = *p;
        *pp = p + 1;
        return 0;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (p >= end)
            return -1;
        uint8_t b = *p++;
        if (shift == 63 && b > 1)
            return -1;
        x |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *v = x;
            *pp = p;
            return 0;
        }
    }
    return -1;
}

/** Zigzag (sint64): 0, -1, 1, -2, ... become 0, 1, 2, 3, ... */
static inline uint64_t pl_zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
}

/** The inverse of pl_zigzag(). */
static inline int64_t pl_unzigzag(uint64_t v)
{
    return (int64_t)((v >> 1) ^ (0 - (v & 1)));
}

/** pl_ctz32() for compilers without a count-trailing-zeros builtin. */
static inline int pl_ctz32_portable(uint32_t m)
{
    int n = 0;
    while (!(m & 1u)) {
        m >>= 1;
        n++;
    }
    return n;
}

/** The index of the lowest set bit of @p m, which must not be 0. */
static inline int pl_ctz32(uint32_t m)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctz(m);
#else
    return pl_ctz32_portable(m);
#endif
}

#endif
