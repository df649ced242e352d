/*
 * The host refuses exactly what the pen refuses. Both apply the rules of
 * pl/config_rules.h: the pen's config store (pen_config_check) before it
 * writes, the host (penlink_config_check) before it sends. Values are taken
 * from the rules table itself, at and around every bound and step, under the
 * pen's limits and others, one setting at a time and in random mixes; for
 * each configuration the two verdicts must be the same.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config_store.h"
#include "penlink/penlink.h"
#include "pl/config_rules.h"

#define CANDIDATES_MAX 16
#define MIXES 20000

static const uint32_t host_bit[PL_SET_COUNT] = {
    [PL_SET_DEPTH_MIN] = PENLINK_CFG_DEPTH_MIN_UM,
    [PL_SET_DEPTH_MAX] = PENLINK_CFG_DEPTH_MAX_UM,
    [PL_SET_DEPTH_DEFAULT] = PENLINK_CFG_DEPTH_DEFAULT_UM,
    [PL_SET_SPEED_MIN] = PENLINK_CFG_SPEED_MIN_SPS,
    [PL_SET_SPEED_MAX] = PENLINK_CFG_SPEED_MAX_SPS,
    [PL_SET_MAX_TREATMENT] = PENLINK_CFG_MAX_TREATMENT_S,
    [PL_SET_MAX_USES] = PENLINK_CFG_MAX_CARTRIDGE_USES,
    [PL_SET_AUTO_OFF] = PENLINK_CFG_AUTO_OFF_S,
};

static const size_t pen_off[PL_SET_COUNT] = {
    [PL_SET_DEPTH_MIN] = offsetof(pen_config, depth_min_um),
    [PL_SET_DEPTH_MAX] = offsetof(pen_config, depth_max_um),
    [PL_SET_DEPTH_DEFAULT] = offsetof(pen_config, depth_default_um),
    [PL_SET_SPEED_MIN] = offsetof(pen_config, speed_min_sps),
    [PL_SET_SPEED_MAX] = offsetof(pen_config, speed_max_sps),
    [PL_SET_MAX_TREATMENT] = offsetof(pen_config, max_treatment_s),
    [PL_SET_MAX_USES] = offsetof(pen_config, max_cartridge_uses),
    [PL_SET_AUTO_OFF] = offsetof(pen_config, auto_off_s),
};

typedef struct candidates {
    uint32_t v[PL_SET_COUNT][CANDIDATES_MAX];
    int n[PL_SET_COUNT];
} candidates;

static void add(candidates *c, int s, uint64_t v)
{
    if (v > UINT32_MAX || c->n[s] == CANDIDATES_MAX)
        return;
    c->v[s][c->n[s]++] = (uint32_t)v;
}

/* Every setting's values at and around its bounds and steps, from the table. */
static void candidates_of(const pl_limits *lim, candidates *c)
{
    memset(c, 0, sizeof *c);
    for (int s = 0; s < PL_SET_COUNT; s++) {
        uint32_t lo, hi, step;
        pl_cfg_bounds(lim, (pl_cfg_setting)s, &lo, &hi, &step);
        uint64_t l = lo, h = hi;
        add(c, s, l);
        add(c, s, h);
        if (l > 0)
            add(c, s, l - 1);
        add(c, s, l + 1);
        add(c, s, h - 1);
        add(c, s, h + 1);
        add(c, s, 0);
        add(c, s, UINT32_MAX);
        add(c, s, (l + h) / 2);
        if (step > 1) {
            add(c, s, l + step);
            add(c, s, l + step - 1);
            add(c, s, l + step + 1);
            add(c, s, h - (h - l) % step);
            add(c, s, h - (h - l) % step - step);
        }
    }
}

static penlink_limits host_limits(const pl_limits *l)
{
    penlink_limits h = PENLINK_LIMITS_INIT;
    h.depth_min_um = l->depth_min_um;
    h.depth_max_um = l->depth_max_um;
    h.depth_step_um = l->depth_step_um;
    h.speed_min_sps = l->speed_min_sps;
    h.speed_max_sps = l->speed_max_sps;
    h.max_treatment_s = l->max_treatment_s;
    h.max_cartridge_uses = l->max_cartridge_uses;
    h.auto_off_min_s = l->auto_off_min_s;
    h.auto_off_max_s = l->auto_off_max_s;
    h.max_text_len = l->max_text_len;
    return h;
}

/* The two verdicts on settings @p v and texts @p label, @p clinic: both accept or both refuse. */
static int agree(const pl_limits *lim, const uint32_t v[PL_SET_COUNT], const char *label,
                 const char *clinic, int *accepted)
{
    pen_config cur, out;
    pen_config_defaults(&cur);
    pen_config_change chg;
    memset(&chg, 0, sizeof chg);
    chg.set = ((1u << PL_SET_COUNT) - 1) | PEN_CFG_LABEL | PEN_CFG_CLINIC;
    for (int s = 0; s < PL_SET_COUNT; s++)
        memcpy((unsigned char *)&chg.v + pen_off[s], &v[s], sizeof v[s]);
    chg.label = label;
    chg.label_len = (uint32_t)strlen(label);
    chg.clinic = clinic;
    chg.clinic_len = (uint32_t)strlen(clinic);
    pen_cfg_error err;
    int pen_ok = pen_config_check(lim, &cur, &chg, &out, &err) == PEN_OK;

    penlink_config c = PENLINK_CONFIG_INIT;
    for (int s = 0; s < PL_SET_COUNT; s++)
        penlink_config_set_u32(&c, host_bit[s], v[s]);
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_DEVICE_LABEL, label), 0);
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_CLINIC_ID, clinic), 0);
    penlink_limits hl = host_limits(lim);
    int host_ok = penlink_config_check(NULL, &hl, &c) == PENLINK_OK;
    if (pen_ok != host_ok) {
        print_message("disagree: pen %s, host %s:", pen_ok ? "accepts" : "refuses",
                      host_ok ? "accepts" : "refuses");
        for (int s = 0; s < PL_SET_COUNT; s++)
            print_message(" %s=%u", pl_cfg_rules[s].key, v[s]);
        print_message(" label (%zu bytes) clinic (%zu bytes)%s%s\n", strlen(label), strlen(clinic),
                      pen_ok ? "" : "; the pen: ", pen_ok ? "" : err.message);
    }
    *accepted += pen_ok;
    return pen_ok == host_ok;
}

/* A configuration every rule accepts: each setting at its lower bound. */
static void base_of(const pl_limits *lim, uint32_t v[PL_SET_COUNT])
{
    for (int s = 0; s < PL_SET_COUNT; s++) {
        uint32_t hi, step;
        pl_cfg_bounds(lim, (pl_cfg_setting)s, &v[s], &hi, &step);
    }
}

static pl_limits limits_variant(int i)
{
    pl_limits l = pen_limits_default;
    switch (i) {
    case 0: break;
    case 1: /* no depth steps, a raised floor */
        l.depth_step_um = 0;
        l.depth_min_um = 200;
        break;
    case 2: /* steps that do not divide the range, short texts */
        l.depth_min_um = 50;
        l.depth_max_um = 2000;
        l.depth_step_um = 250;
        l.max_text_len = 10;
        break;
    case 3: /* a pen that announces more text than any pen keeps, one speed */
        l.max_text_len = 200;
        l.speed_min_sps = l.speed_max_sps = 100;
        l.max_cartridge_uses = 1;
        l.max_treatment_s = 60;
        break;
    }
    return l;
}

#define VARIANTS 4

static void t_each_setting_at_its_bounds(void **state)
{
    (void)state;
    for (int i = 0; i < VARIANTS; i++) {
        pl_limits lim = limits_variant(i);
        candidates c;
        candidates_of(&lim, &c);
        int bad = 0, accepted = 0, cases = 0;
        for (int s = 0; s < PL_SET_COUNT; s++)
            for (int k = 0; k < c.n[s]; k++) {
                uint32_t v[PL_SET_COUNT];
                base_of(&lim, v);
                v[s] = c.v[s][k];
                bad += !agree(&lim, v, "", "", &accepted);
                /* and against the other settings at their upper bounds (the orders) */
                for (int o = 0; o < PL_SET_COUNT; o++) {
                    uint32_t lo, step;
                    if (o != s)
                        pl_cfg_bounds(&lim, (pl_cfg_setting)o, &lo, &v[o], &step);
                }
                bad += !agree(&lim, v, "", "", &accepted);
                cases += 2;
            }
        /* the cases must hold both verdicts, or the comparison proves little */
        assert_true(accepted > 0 && accepted < cases);
        assert_int_equal(bad, 0);
    }
}

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void t_random_mixes(void **state)
{
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < VARIANTS; i++) {
        pl_limits lim = limits_variant(i);
        candidates c;
        candidates_of(&lim, &c);
        int bad = 0, accepted = 0;
        for (int m = 0; m < MIXES; m++) {
            uint32_t v[PL_SET_COUNT];
            base_of(&lim, v);
            /* a few settings off their base, so that some mixes pass */
            for (int k = (int)(rnd(&x) % 4); k > 0; k--) {
                int s = (int)(rnd(&x) % PL_SET_COUNT);
                v[s] = c.v[s][rnd(&x) % (uint64_t)c.n[s]];
            }
            bad += !agree(&lim, v, "", "", &accepted);
        }
        assert_true(accepted > 0 && accepted < MIXES);
        assert_int_equal(bad, 0);
    }
}

static void t_texts(void **state)
{
    (void)state;
    static const char *texts[] = {
        "",
        "Room 2",
        "aaaaaaaaa",                         /* 9 */
        "aaaaaaaaaa",                        /* 10 */
        "aaaaaaaaaaa",                       /* 11 */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  /* 32 */
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 33 */
        "Zimmer f\xc3\xbcnf",                /* UTF-8 */
        "\xe2\x82\xac 100",                  /* a 3-byte character */
        "\xf0\x9f\x92\x89",                  /* a 4-byte character */
        "R\x1b]0;pwned\x07",                 /* escapes */
        "tab\there",
        "del\x7f",
        "\xc2\x85next line", /* C1 */
        "\xff\xfe",          /* not UTF-8 */
        "\xc0\xaf",          /* over-long */
        "\xed\xa0\x80",      /* a surrogate */
        "\xe2\x82",          /* cut short */
        "\xf4\x90\x80\x80",  /* above U+10FFFF */
    };
    const size_t n = sizeof texts / sizeof texts[0];
    for (int i = 0; i < VARIANTS; i++) {
        pl_limits lim = limits_variant(i);
        uint32_t v[PL_SET_COUNT];
        base_of(&lim, v);
        int bad = 0, accepted = 0;
        for (size_t a = 0; a < n; a++) {
            bad += !agree(&lim, v, texts[a], "", &accepted);
            bad += !agree(&lim, v, "", texts[a], &accepted);
        }
        assert_true(accepted > 0 && accepted < (int)(2 * n));
        assert_int_equal(bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_each_setting_at_its_bounds),
        cmocka_unit_test(t_random_mixes),
        cmocka_unit_test(t_texts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
