/* Helpers shared by the unit tests: a seeded PRNG and random records. */
#ifndef PENLINK_TESTUTIL_H
#define PENLINK_TESTUTIL_H

#include <stdint.h>
#include <string.h>

#include "pl/record.h"

static inline uint64_t tu_rand(uint64_t *s)
{
    /* splitmix64: deterministic, good enough to pick test values */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A value for one field: usually realistic, sometimes at the extremes. */
static inline uint64_t tu_value(uint64_t *s, uint32_t bit)
{
    static const uint64_t extremes[] = {
        0, 1, UINT32_MAX, UINT32_MAX - 1, (uint64_t)INT64_MAX, (uint64_t)INT64_MIN, UINT64_MAX
    };
    int is32 = bit != PL_F_CARTRIDGE_SERIAL && bit != PL_F_STROKES && bit != PL_F_CLOCK_DELTA_MS &&
               bit != PL_F_DROPPED;
    uint64_t r = tu_rand(s);
    uint64_t v;
    switch (r % 4) {
    case 0: v = extremes[(r >> 8) % 7]; break;
    case 1: v = tu_rand(s); break;
    default: v = (r >> 8) % 5000; break;
    }
    return is32 ? (v & 0xFFFFFFFFu) : v;
}

/* Fills @p out with @p n consecutive random records from @p first_seq. */
static inline void tu_records(uint64_t *s, pl_record *out, uint32_t n, uint64_t first_seq,
                              int extremes)
{
    int64_t t = extremes ? (int64_t)tu_rand(s) : 1764000000000 + (int64_t)(tu_rand(s) % 1000000);
    for (uint32_t i = 0; i < n; i++) {
        pl_record *r = &out[i];
        memset(r, 0, sizeof *r);
        r->seq = first_seq + i;
        r->kind = 1 + (uint32_t)(tu_rand(s) % PL_REC_KIND_MAX);
        if (extremes && tu_rand(s) % 3 == 0)
            t = (int64_t)tu_rand(s);
        else
            t += (int64_t)(tu_rand(s) % 100000);
        r->time_ms = t;
        r->fields = pl_record_kind_fields(r->kind);
        for (uint32_t m = r->fields; m; m &= m - 1) {
            uint32_t bit = m & -m;
            uint64_t v = extremes ? tu_value(s, bit) : tu_rand(s) % 3000;
            pl_record_set(r, bit, v);
        }
    }
}

#endif
