/* The configuration's rules (pl/config_rules.h): each numeric setting at its
 * bounds and one past them, the depth steps, the orders, and the text rule
 * (UTF-8 without control characters) on every kind of bad sequence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pl/config_rules.h"

static const pl_limits lim = {
    .depth_min_um = 200,
    .depth_max_um = 2500,
    .depth_step_um = 100,
    .speed_min_sps = 50,
    .speed_max_sps = 150,
    .max_treatment_s = 3600,
    .max_cartridge_uses = 10,
    .auto_off_min_s = 30,
    .auto_off_max_s = 900,
    .max_text_len = 24,
};

static void test_bounds(void **state)
{
    (void)state;
    static const struct {
        pl_cfg_setting s;
        uint32_t lo, hi, step;
        const char *key;
    } want[PL_SET_COUNT] = {
        { PL_SET_DEPTH_MIN, 200, 2500, 100, "depth_min_um" },
        { PL_SET_DEPTH_MAX, 200, 2500, 100, "depth_max_um" },
        { PL_SET_DEPTH_DEFAULT, 200, 2500, 100, "depth_default_um" },
        { PL_SET_SPEED_MIN, 50, 150, 0, "speed_min_sps" },
        { PL_SET_SPEED_MAX, 50, 150, 0, "speed_max_sps" },
        { PL_SET_MAX_TREATMENT, PL_CFG_MAX_TREATMENT_MIN_S, 3600, 0, "max_treatment_s" },
        { PL_SET_MAX_USES, PL_CFG_MAX_USES_MIN, 10, 0, "max_cartridge_uses" },
        { PL_SET_AUTO_OFF, 30, 900, 0, "auto_off_s" },
    };
    for (int i = 0; i < PL_SET_COUNT; i++) {
        uint32_t lo, hi, step;
        pl_cfg_bounds(&lim, want[i].s, &lo, &hi, &step);
        assert_int_equal(lo, want[i].lo);
        assert_int_equal(hi, want[i].hi);
        assert_int_equal(step, want[i].step);
        assert_string_equal(pl_cfg_rules[want[i].s].key, want[i].key);
        assert_non_null(strstr(pl_cfg_rules[want[i].s].path, want[i].key));
        /* exactly at the bounds: accepted; one past either: refused */
        assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, lo), 1);
        assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, hi), 1);
        assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, lo - 1), 0);
        assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, hi + 1), 0);
        assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, 0), 0);
        assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, UINT32_MAX), 0);
        if (step) {
            /* on the steps counted from the lower bound, not from 0 */
            assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, lo + step), 1);
            assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, lo + step - 1), 0);
            assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, lo + 1), 0);
        } else {
            assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, lo + 1), 1);
            assert_int_equal(pl_cfg_value_ok(&lim, want[i].s, hi - 1), 1);
        }
    }
    /* a pen without depth steps takes any depth in range */
    pl_limits any = lim;
    any.depth_step_um = 0;
    assert_int_equal(pl_cfg_value_ok(&any, PL_SET_DEPTH_DEFAULT, 201), 1);
    /* an announced limit below the protocol's floor: the floor still holds */
    any.max_treatment_s = 30;
    assert_int_equal(pl_cfg_value_ok(&any, PL_SET_MAX_TREATMENT, 30), 0);
    assert_int_equal(pl_cfg_value_ok(&any, PL_SET_MAX_TREATMENT, 60), 0);
}

static void test_orders(void **state)
{
    (void)state;
    uint32_t v[PL_SET_COUNT] = { 0 };
    v[PL_SET_DEPTH_MIN] = 500;
    v[PL_SET_DEPTH_DEFAULT] = 500;
    v[PL_SET_DEPTH_MAX] = 500;
    v[PL_SET_SPEED_MIN] = 80;
    v[PL_SET_SPEED_MAX] = 80;
    assert_null(pl_cfg_order_broken(v)); /* equal is in order */
    for (int i = 0; i < PL_CFG_ORDER_COUNT; i++) {
        const pl_cfg_order *o = &pl_cfg_orders[i];
        uint32_t w[PL_SET_COUNT];
        memcpy(w, v, sizeof w);
        w[o->lo] = w[o->hi] + 1;
        /* raising lo may break an earlier order too: the first broken is named */
        const pl_cfg_order *got = pl_cfg_order_broken(w);
        assert_non_null(got);
        assert_true(got <= o);
        assert_true(w[got->lo] > w[got->hi]);
        memcpy(w, v, sizeof w);
        w[o->hi] = w[o->lo] - 1;
        got = pl_cfg_order_broken(w);
        assert_non_null(got);
        assert_true(w[got->lo] > w[got->hi]);
    }
    /* the sequence: depth_min > depth_max is reported before the default's orders */
    v[PL_SET_DEPTH_MIN] = 900;
    assert_ptr_equal(pl_cfg_order_broken(v), &pl_cfg_orders[0]);
    v[PL_SET_DEPTH_MIN] = 500;
    v[PL_SET_DEPTH_DEFAULT] = 400;
    const pl_cfg_order *o = pl_cfg_order_broken(v);
    assert_ptr_equal(o, &pl_cfg_orders[1]);
    assert_int_equal(o->blame_hi, 1);
    v[PL_SET_DEPTH_DEFAULT] = 600;
    assert_ptr_equal(pl_cfg_order_broken(v), &pl_cfg_orders[2]);
    v[PL_SET_DEPTH_DEFAULT] = 500;
    v[PL_SET_SPEED_MIN] = 81;
    assert_ptr_equal(pl_cfg_order_broken(v), &pl_cfg_orders[3]);
}

static void test_text_max(void **state)
{
    (void)state;
    pl_limits l = lim;
    assert_int_equal(pl_cfg_text_max(&l), 24);
    l.max_text_len = PL_CFG_TEXT_MAX;
    assert_int_equal(pl_cfg_text_max(&l), PL_CFG_TEXT_MAX);
    l.max_text_len = PL_CFG_TEXT_MAX + 1;
    assert_int_equal(pl_cfg_text_max(&l), PL_CFG_TEXT_MAX);
    l.max_text_len = 0;
    assert_int_equal(pl_cfg_text_max(&l), 0);
}

static int text_ok(const char *s)
{
    return pl_cfg_text_ok(s, (uint32_t)strlen(s));
}

static void test_text(void **state)
{
    (void)state;
    static const char *const good[] = {
        "",
        "Clinic 12 ~",
        "\xC3\xA9t\xC3\xA9", /* é: two bytes */
        "\xC2\xA0",          /* U+00A0, just past the C1 controls */
        "\xDF\xBF",          /* U+07FF, the last two-byte */
        "\xE0\xA0\x80",      /* U+0800, the first three-byte */
        "\xED\x9F\xBF",      /* U+D7FF, below the surrogates */
        "\xEE\x80\x80",      /* U+E000, above them */
        "\xEF\xBF\xBF",      /* U+FFFF */
        "\xF0\x90\x80\x80",  /* U+10000, the first four-byte */
        "\xF4\x8F\xBF\xBF",  /* U+10FFFF, the last code point */
        "a\342\202\254b",    /* € inside ASCII */
    };
    static const char *const bad[] = {
        "\x01",     /* C0 */
        "ab\x1F",   /* the last C0 */
        "\x7F",     /* DEL */
        "\xC2\x80", /* U+0080, C1 */
        "\xC2\x9F", /* U+009F, the last C1 */
        "\x80",     /* a continuation byte alone */
        "\xBF",
        "\xC0\x80", /* overlong lead bytes */
        "\xC1\xBF",
        "\xE0\x80\x80", /* overlong three-byte */
        "\xE0\x9F\xBF",
        "\xED\xA0\x80",     /* U+D800, a surrogate */
        "\xED\xBF\xBF",     /* U+DFFF */
        "\xF0\x80\x80\x80", /* overlong four-byte */
        "\xF0\x8F\xBF\xBF",
        "\xF4\x90\x80\x80", /* U+110000, past Unicode */
        "\xF5\x80\x80\x80", /* leads that are never valid */
        "\xFF",
        "\xC3", /* cut short */
        "\xE2\x82",
        "\xF0\x90\x80",
        "\303A", /* a lead followed by no continuation */
        "\342\202A",
        "\360\220\200A",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!text_ok(good[i]))
            fail_msg("good text %zu refused", i);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (text_ok(bad[i]))
            fail_msg("bad text %zu accepted", i);
    /* the length is the caller's: a sequence cut by it is refused, a NUL inside it too */
    assert_int_equal(pl_cfg_text_ok("\xC3\xA9", 1), 0);
    assert_int_equal(pl_cfg_text_ok("ab\0cd", 5), 0);
    assert_int_equal(pl_cfg_text_ok("ab\x01", 2), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_orders),
        cmocka_unit_test(test_text_max),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
