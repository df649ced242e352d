/* The record model (pl/record.h) and the status sentences (pl/status.h):
 * every kind and field by name and bit, values that do not fit refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pl/record.h"
#include "pl/status.h"

static void test_kinds(void **state)
{
    (void)state;
    for (uint32_t k = 1; k <= PL_REC_KIND_MAX; k++) {
        const char *name = pl_record_kind_name(k);
        assert_non_null(name);
        assert_int_equal(pl_record_kind_from_name(name), k);
        assert_int_equal(pl_record_kind_fields(k) & ~(uint32_t)PL_F_ALL, 0);
    }
    assert_string_equal(pl_record_kind_name(PL_REC_TREATMENT_START), "treatment_start");
    assert_int_equal(pl_record_kind_fields(PL_REC_TREATMENT_END), PL_F_DURATION_MS | PL_F_STROKES);
    assert_int_equal(pl_record_kind_fields(PL_REC_POWER_ON), 0);
    /* kinds this version does not know */
    assert_null(pl_record_kind_name(0));
    assert_null(pl_record_kind_name(PL_REC_KIND_MAX + 1));
    assert_null(pl_record_kind_name(UINT32_MAX));
    assert_int_equal(pl_record_kind_fields(0), 0);
    assert_int_equal(pl_record_kind_fields(PL_REC_KIND_MAX + 1), 0);
    assert_int_equal(pl_record_kind_from_name(NULL), 0);
    assert_int_equal(pl_record_kind_from_name("power"), 0);
    assert_int_equal(pl_record_kind_from_name(""), 0);
    assert_int_equal(pl_record_kind_from_name("POWER_ON"), 0);
}

static void test_field_names(void **state)
{
    (void)state;
    static const char *const want[PL_FIELD_COUNT] = {
        "depth_um",        "speed_sps",           "duration_ms", "cartridge_serial",
        "cartridge_uses",  "lifetime_cartridges", "strokes",     "fault_code",
        "config_revision", "clock_delta_ms",      "dropped",
    };
    for (int i = 0; i < PL_FIELD_COUNT; i++)
        assert_string_equal(pl_record_field_name(1u << i), want[i]);
    assert_null(pl_record_field_name(0));
    assert_null(pl_record_field_name(PL_F_DEPTH_UM | PL_F_SPEED_SPS)); /* not one bit */
    assert_null(pl_record_field_name(1u << PL_FIELD_COUNT));
    assert_null(pl_record_field_name(1u << 31));
}

static int is_wide(uint32_t bit)
{
    return bit == PL_F_CARTRIDGE_SERIAL || bit == PL_F_STROKES || bit == PL_F_CLOCK_DELTA_MS ||
           bit == PL_F_DROPPED;
}

static void test_get_set(void **state)
{
    (void)state;
    for (int i = 0; i < PL_FIELD_COUNT; i++) {
        uint32_t bit = 1u << i;
        pl_record r, zero;
        memset(&r, 0, sizeof r);
        memset(&zero, 0, sizeof zero);
        /* each field lands in its own place and nowhere else */
        assert_int_equal(pl_record_set(&r, bit, 1000u + (uint64_t)i), 0);
        assert_true(pl_record_get(&r, bit) == 1000u + (uint64_t)i);
        for (int j = 0; j < PL_FIELD_COUNT; j++)
            if (j != i)
                assert_true(pl_record_get(&r, 1u << j) == 0);
        assert_true(r.seq == 0 && r.time_ms == 0 && r.kind == 0 && r.fields == 0);
        /* the largest value a field holds, and one past it */
        assert_int_equal(pl_record_set(&r, bit, UINT32_MAX), 0);
        assert_true(pl_record_get(&r, bit) == UINT32_MAX);
        if (is_wide(bit)) {
            assert_int_equal(pl_record_set(&r, bit, (uint64_t)UINT32_MAX + 1), 0);
            assert_true(pl_record_get(&r, bit) == (uint64_t)UINT32_MAX + 1);
            assert_int_equal(pl_record_set(&r, bit, UINT64_MAX), 0);
            assert_true(pl_record_get(&r, bit) == UINT64_MAX);
        } else {
            assert_int_equal(pl_record_set(&r, bit, (uint64_t)UINT32_MAX + 1), -1);
            assert_true(pl_record_get(&r, bit) == UINT32_MAX); /* left as it was */
        }
    }
    pl_record r;
    memset(&r, 0, sizeof r);
    /* the signed field takes and gives two's complement */
    assert_int_equal(pl_record_set(&r, PL_F_CLOCK_DELTA_MS, (uint64_t)(int64_t)-5000), 0);
    assert_true(r.clock_delta_ms == -5000);
    assert_true(pl_record_get(&r, PL_F_CLOCK_DELTA_MS) == (uint64_t)(int64_t)-5000);
    /* not a field: refused, reads as 0 */
    r.depth_um = 7;
    assert_int_equal(pl_record_set(&r, 0, 1), -1);
    assert_int_equal(pl_record_set(&r, PL_F_DEPTH_UM | PL_F_SPEED_SPS, 1), -1);
    assert_int_equal(pl_record_set(&r, 1u << PL_FIELD_COUNT, 1), -1);
    assert_true(pl_record_get(&r, 0) == 0);
    assert_true(pl_record_get(&r, PL_F_DEPTH_UM | PL_F_SPEED_SPS) == 0);
    assert_true(pl_record_get(&r, 1u << PL_FIELD_COUNT) == 0);
    assert_int_equal(r.depth_um, 7);
}

static void test_equal(void **state)
{
    (void)state;
    pl_record a, b;
    memset(&a, 0, sizeof a);
    a.seq = 5;
    a.time_ms = -3;
    a.kind = PL_REC_TREATMENT_START;
    a.fields = PL_F_DEPTH_UM | PL_F_SPEED_SPS | PL_F_CARTRIDGE_SERIAL;
    a.depth_um = 500;
    a.speed_sps = 90;
    a.cartridge_serial = UINT64_MAX;
    b = a;
    assert_true(pl_record_equal(&a, &b));
    /* a field the record does not carry is not compared */
    b.strokes = 12;
    b.fault_code = 3;
    assert_true(pl_record_equal(&a, &b));
    b = a;
    b.seq++;
    assert_false(pl_record_equal(&a, &b));
    b = a;
    b.time_ms = 3;
    assert_false(pl_record_equal(&a, &b));
    b = a;
    b.kind = PL_REC_TREATMENT_END;
    assert_false(pl_record_equal(&a, &b));
    b = a;
    b.fields &= ~(uint32_t)PL_F_SPEED_SPS;
    assert_false(pl_record_equal(&a, &b));
    for (uint32_t m = a.fields; m; m &= m - 1) {
        uint32_t bit = m & -m;
        b = a;
        assert_int_equal(pl_record_set(&b, bit, pl_record_get(&a, bit) - 1), 0);
        assert_false(pl_record_equal(&a, &b));
    }
}

static void test_status_sentences(void **state)
{
    (void)state;
    /* every code has its own sentence; anything else is "unknown status" */
    const char *seen[32];
    int n = 0;
    for (int st = PL_NEED_MORE; st > PL_ERR__SENTINEL; st--) {
        const char *s = pl_status_str(st);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown status");
        for (int i = 0; i < n; i++)
            assert_string_not_equal(s, seen[i]);
        seen[n++] = s;
    }
    assert_int_equal(n, 2 - PL_ERR__SENTINEL - 1);
    assert_string_equal(pl_status_str(PL_OK), "success");
    assert_string_equal(pl_status_str(PL_ERR_CAPTURE), "malformed capture file");
    assert_string_equal(pl_status_str(PL_ERR__SENTINEL), "unknown status");
    assert_string_equal(pl_status_str(PL_NEED_MORE + 1), "unknown status");
    assert_string_equal(pl_status_str(-1000), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_get_set),
        cmocka_unit_test(test_equal),
        cmocka_unit_test(test_status_sentences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
