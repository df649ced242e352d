/*
 * The archive's packed record body: everything of a record but its seq, in
 * one small BLOB beside the (device, seq) key, so that reading a record back
 * is one column, not fourteen.
 *
 *   body = time_ms (8 bytes, little-endian two's complement)
 *          varint(kind) varint(fields)
 *          { varint(value) for each bit of fields, lowest first }
 *
 * Varints are unsigned LEB128 as in protobuf; clock_delta_ms, the one signed
 * field, is zigzag-encoded like sint64. The time is fixed-width because it
 * is read for every record and a 6-byte varint costs more to decode than
 * the 2 bytes it saves. A depth change, the commonest record, packs into
 * 12 bytes. Unpacking treats the bytes as
 * hostile: every varint is bounded, 32-bit values must fit, and nothing may
 * follow the last value.
 */
#define _DEFAULT_SOURCE
#include <endian.h>
#include <string.h>

#include "archive.h"
#include "pl/record.h"

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* Reads one varint at p; returns the byte after it, or NULL past the end
 * or beyond 64 bits. */
static inline const uint8_t *get_varint(const uint8_t *p, const uint8_t *end, uint64_t *v)
{
    if (p < end && *p < 0x80) { /* most values are one byte */
        *v = *p;
        return p + 1;
    }
    uint64_t x = 0;
    for (unsigned shift = 0; p < end && shift < 64; shift += 7) {
        uint8_t b = *p++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (b < 0x80) {
            if (shift == 63 && b > 1)
                return NULL;
            *v = x;
            return p;
        }
    }
    return NULL;
}

static uint64_t zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

static int64_t unzigzag(uint64_t v)
{
    return (int64_t)((v >> 1) ^ (0 - (v & 1)));
}

size_t archive_body_pack(const penlink_record *r, uint8_t out[ARCHIVE_BODY_MAX])
{
    const pl_record *pr = (const pl_record *)r;
    uint64_t t = htole64((uint64_t)r->time_ms);
    memcpy(out, &t, 8);
    size_t n = 8;
    n += put_varint(out + n, r->kind);
    n += put_varint(out + n, r->fields & PL_F_ALL);
    for (uint32_t m = r->fields & PL_F_ALL; m; m &= m - 1) {
        uint32_t bit = m & -m;
        uint64_t v = pl_record_get(pr, bit);
        if (bit == PL_F_CLOCK_DELTA_MS)
            v = zigzag((int64_t)v);
        n += put_varint(out + n, v);
    }
    return n;
}

int archive_body_unpack(const uint8_t *p, size_t n, penlink_record *r)
{
    const uint8_t *end = p + n;
    uint64_t time, kind, fields;
    if (n < 8)
        return -1;
    memcpy(&time, p, 8);
    time = le64toh(time);
    p += 8;
    if (!(p = get_varint(p, end, &kind)) || kind > UINT32_MAX ||
        !(p = get_varint(p, end, &fields)) || fields > PL_F_ALL)
        return -1;
    penlink_record x; /* filled here, copied out once: the bytes cannot alias it */
    memset(&x, 0, sizeof x);
    x.seq = r->seq;
    x.time_ms = (int64_t)time;
    x.kind = (uint32_t)kind;
    x.fields = (uint32_t)fields;
    for (uint32_t m = x.fields; m; m &= m - 1) {
        uint32_t bit = m & -m;
        uint64_t v;
        if (!(p = get_varint(p, end, &v)))
            return -1;
        if (bit == PL_F_CLOCK_DELTA_MS)
            v = (uint64_t)unzigzag(v);
        if (pl_record_set((pl_record *)&x, bit, v) != 0)
            return -1;
    }
    if (p != end)
        return -1;
    *r = x;
    return 0;
}

int archive_record_same(const penlink_record *a, const penlink_record *b)
{
    if (a->time_ms != b->time_ms || a->kind != b->kind || a->fields != b->fields)
        return 0;
    for (int k = 0; k < PENLINK_FIELD_COUNT; k++)
        if ((b->fields & (1u << k)) &&
            penlink_record_field(a, 1u << k) != penlink_record_field(b, 1u << k))
            return 0;
    return 1;
}
