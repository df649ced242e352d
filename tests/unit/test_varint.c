/* Varints, zigzag and the lowest-bit helper (pl/varint.h), at their edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pl/varint.h"
#include "testutil.h"

static void roundtrip(uint64_t v, uint32_t want_len)
{
    uint8_t buf[PL_VARINT_MAX + 4];
    memset(buf, 0xAA, sizeof buf);
    size_t n = pl_varint_put(buf, v);
    assert_int_equal(n, want_len);
    assert_int_equal(pl_varint_len(v), want_len);
    assert_int_equal(buf[n], 0xAA); /* nothing written past the varint */
    const uint8_t *p = buf;
    uint64_t got = 0;
    assert_int_equal(pl_varint_get(&p, buf + n, &got), 0);
    assert_true(p == buf + n);
    assert_true(got == v);
    /* one byte short: refused, the cursor not moved */
    p = buf;
    assert_int_equal(pl_varint_get(&p, buf + n - 1, &got), -1);
    assert_true(p == buf);
}

static void t_lengths(void **state)
{
    (void)state;
    roundtrip(0, 1);
    roundtrip(0x7F, 1);
    roundtrip(0x80, 2);
    roundtrip(0x3FFF, 2);
    roundtrip(0x4000, 3);
    roundtrip(UINT32_MAX, 5);
    roundtrip((uint64_t)INT64_MAX, 9);
    roundtrip((uint64_t)1 << 63, PL_VARINT_MAX);
    roundtrip(UINT64_MAX, PL_VARINT_MAX);
    uint64_t s = 17;
    for (int i = 0; i < 10000; i++) {
        uint64_t v = tu_rand(&s) >> (tu_rand(&s) % 64);
        roundtrip(v, pl_varint_len(v));
    }
}

static void t_overflow(void **state)
{
    (void)state;
    uint64_t v = 7;
    /* UINT64_MAX is nine 0xFF and a final 0x01; a final 0x02 is bit 64 */
    uint8_t b[PL_VARINT_MAX + 1];
    memset(b, 0xFF, sizeof b);
    b[PL_VARINT_MAX - 1] = 0x02;
    const uint8_t *p = b;
    assert_int_equal(pl_varint_get(&p, b + PL_VARINT_MAX, &v), -1);
    assert_true(p == b);
    assert_true(v == 7);
    b[PL_VARINT_MAX - 1] = 0x81; /* a tenth byte that goes on */
    b[PL_VARINT_MAX] = 0x00;
    assert_int_equal(pl_varint_get(&p, b + sizeof b, &v), -1);
    /* eleven bytes with a zero payload at the end: still too long */
    memset(b, 0x80, sizeof b);
    b[PL_VARINT_MAX] = 0x00;
    assert_int_equal(pl_varint_get(&p, b + sizeof b, &v), -1);
    /* a 0x80 padding within ten bytes is a valid (over-long) zero */
    b[PL_VARINT_MAX - 1] = 0x00;
    assert_int_equal(pl_varint_get(&p, b + PL_VARINT_MAX, &v), 0);
    assert_true(v == 0);
    assert_true(p == b + PL_VARINT_MAX);
    /* nothing to read */
    p = b;
    assert_int_equal(pl_varint_get(&p, b, &v), -1);
}

static void t_zigzag(void **state)
{
    (void)state;
    static const struct {
        int64_t s;
        uint64_t z;
    } v[] = {
        { 0, 0 },
        { -1, 1 },
        { 1, 2 },
        { -2, 3 },
        { 2, 4 },
        { INT32_MAX, 0xFFFFFFFEull },
        { INT32_MIN, 0xFFFFFFFFull },
        { INT64_MAX, UINT64_MAX - 1 },
        { INT64_MIN, UINT64_MAX },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_true(pl_zigzag(v[i].s) == v[i].z);
        assert_true(pl_unzigzag(v[i].z) == v[i].s);
    }
    uint64_t s = 5;
    for (int i = 0; i < 10000; i++) {
        int64_t x = (int64_t)tu_rand(&s);
        assert_true(pl_unzigzag(pl_zigzag(x)) == x);
    }
}

static void t_ctz(void **state)
{
    (void)state;
    for (int b = 0; b < 32; b++) {
        uint32_t m = (uint32_t)1 << b;
        assert_int_equal(pl_ctz32(m), b);
        assert_int_equal(pl_ctz32_portable(m), b);
        assert_int_equal(pl_ctz32_portable(m | 0x80000000u), b);
        assert_int_equal(pl_ctz32_portable(UINT32_MAX << b), b);
    }
    uint64_t s = 9;
    for (int i = 0; i < 10000; i++) {
        uint32_t m = (uint32_t)tu_rand(&s) | 0x80000000u;
        assert_int_equal(pl_ctz32_portable(m), pl_ctz32(m));
    }
}

/* The portable fallback against the compiler's builtin, directly (pl_ctz32()
 * itself is the builtin on gcc and clang, so only this keeps the fallback
 * right for the compilers that use it): every single bit, every bit with all
 * higher bits set, every value of 1..65535, and random values with random
 * numbers of trailing zeros. */
static void t_ctz_portable(void **state)
{
    (void)state;
#if defined(__GNUC__) || defined(__clang__)
    for (int b = 0; b < 32; b++) {
        uint32_t m = (uint32_t)1 << b;
        assert_int_equal(pl_ctz32_portable(m), __builtin_ctz(m));
        assert_int_equal(pl_ctz32_portable(~(m - 1)), __builtin_ctz(~(m - 1)));
    }
    for (uint32_t m = 1; m <= 0xFFFFu; m++)
        if (pl_ctz32_portable(m) != __builtin_ctz(m))
            fail_msg("pl_ctz32_portable(%#x) = %d, __builtin_ctz = %d", m, pl_ctz32_portable(m),
                     __builtin_ctz(m));
    uint64_t s = 17;
    for (int i = 0; i < 100000; i++) {
        uint64_t r = tu_rand(&s);
        uint32_t m = (uint32_t)r << (r >> 59); /* 0..31 zeros below the random bits */
        if (m == 0)
            continue; /* not defined for 0 */
        if (pl_ctz32_portable(m) != __builtin_ctz(m))
            fail_msg("pl_ctz32_portable(%#x) = %d, __builtin_ctz = %d", m, pl_ctz32_portable(m),
                     __builtin_ctz(m));
    }
#else /* no builtin to compare with: the index of each single bit */
    for (int b = 0; b < 32; b++)
        assert_int_equal(pl_ctz32_portable((uint32_t)1 << b), b);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_lengths), cmocka_unit_test(t_overflow),     cmocka_unit_test(t_zigzag),
        cmocka_unit_test(t_ctz),     cmocka_unit_test(t_ctz_portable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
