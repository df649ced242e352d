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
#include "pl/varint.h"

size_t archive_body_pack(const penlink_record *r, uint8_t out[ARCHIVE_BODY_MAX])
{
    const pl_record *pr = (const pl_record *)r;
    uint64_t t = htole64((uint64_t)r->time_ms);
    memcpy(out, &t, 8);
    size_t n = 8;
    n += pl_varint_put(out + n, r->kind);
    n += pl_varint_put(out + n, r->fields & PL_F_ALL);
    for (uint32_t m = r->fields & PL_F_ALL; m; m &= m - 1) {
        uint32_t bit = m & -m;
        uint64_t v = pl_record_get(pr, bit);
        if (bit == PL_F_CLOCK_DELTA_MS)
            v = pl_zigzag((int64_t)v);
        n += pl_varint_put(out + n, v);
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
    if (pl_varint_get(&p, end, &kind) != 0 || kind > UINT32_MAX ||
        pl_varint_get(&p, end, &fields) != 0 || fields > PL_F_ALL)
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
        if (pl_varint_get(&p, end, &v) != 0)
            return -1;
        if (bit == PL_F_CLOCK_DELTA_MS)
            v = (uint64_t)pl_unzigzag(v);
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
            penlink_record_field_get(a, 1u << k) != penlink_record_field_get(b, 1u << k))
            return 0;
    return 1;
}
