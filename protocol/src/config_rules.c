/* The configuration's rules (pl/config_rules.h): one table for both sides. */
#include <string.h>

#include "pl/config_rules.h"

#define LIM(f) offsetof(pl_limits, f)
#define RULE(key) "config." key, key

const pl_cfg_rule pl_cfg_rules[PL_SET_COUNT] = {
    [PL_SET_DEPTH_MIN] = { RULE("depth_min_um"), " um", LIM(depth_min_um), LIM(depth_max_um), 0,
                           1 },
    [PL_SET_DEPTH_MAX] = { RULE("depth_max_um"), " um", LIM(depth_min_um), LIM(depth_max_um), 0,
                           1 },
    [PL_SET_DEPTH_DEFAULT] = { RULE("depth_default_um"), " um", LIM(depth_min_um),
                               LIM(depth_max_um), 0, 1 },
    [PL_SET_SPEED_MIN] = { RULE("speed_min_sps"), " strokes/s", LIM(speed_min_sps),
                           LIM(speed_max_sps), 0, 0 },
    [PL_SET_SPEED_MAX] = { RULE("speed_max_sps"), " strokes/s", LIM(speed_min_sps),
                           LIM(speed_max_sps), 0, 0 },
    [PL_SET_MAX_TREATMENT] = { RULE("max_treatment_s"), " s", PL_CFG_FIXED, LIM(max_treatment_s),
                               PL_CFG_MAX_TREATMENT_MIN_S, 0 },
    [PL_SET_MAX_USES] = { RULE("max_cartridge_uses"), "", PL_CFG_FIXED, LIM(max_cartridge_uses),
                          PL_CFG_MAX_USES_MIN, 0 },
    [PL_SET_AUTO_OFF] = { RULE("auto_off_s"), " s", LIM(auto_off_min_s), LIM(auto_off_max_s), 0,
                          0 },
};

const pl_cfg_order pl_cfg_orders[PL_CFG_ORDER_COUNT] = {
    { PL_SET_DEPTH_MIN, PL_SET_DEPTH_MAX, 0 },
    { PL_SET_DEPTH_MIN, PL_SET_DEPTH_DEFAULT, 1 },
    { PL_SET_DEPTH_DEFAULT, PL_SET_DEPTH_MAX, 0 },
    { PL_SET_SPEED_MIN, PL_SET_SPEED_MAX, 0 },
};

static uint32_t limit_at(const pl_limits *lim, size_t off)
{
    uint32_t v;
    memcpy(&v, (const unsigned char *)lim + off, sizeof v);
    return v;
}

void pl_cfg_bounds(const pl_limits *lim, pl_cfg_setting s, uint32_t *lo, uint32_t *hi,
                   uint32_t *step)
{
    const pl_cfg_rule *r = &pl_cfg_rules[s];
    *lo = r->lo == PL_CFG_FIXED ? r->lo_fixed : limit_at(lim, r->lo);
    *hi = limit_at(lim, r->hi);
    *step = r->stepped ? lim->depth_step_um : 0;
}

int pl_cfg_value_ok(const pl_limits *lim, pl_cfg_setting s, uint32_t v)
{
    uint32_t lo, hi, step;
    pl_cfg_bounds(lim, s, &lo, &hi, &step);
    return v >= lo && v <= hi && (step == 0 || (v - lo) % step == 0);
}

const pl_cfg_order *pl_cfg_order_broken(const uint32_t v[PL_SET_COUNT])
{
    for (int i = 0; i < PL_CFG_ORDER_COUNT; i++)
        if (v[pl_cfg_orders[i].lo] > v[pl_cfg_orders[i].hi])
            return &pl_cfg_orders[i];
    return NULL;
}

uint32_t pl_cfg_text_max(const pl_limits *lim)
{
    return lim->max_text_len < PL_CFG_TEXT_MAX ? lim->max_text_len : PL_CFG_TEXT_MAX;
}

int pl_cfg_text_ok(const char *s, uint32_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    uint32_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        uint32_t n;
        uint32_t cp;
        if (c < 0x20 || c == 0x7F)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (uint32_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3Fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F))
            return 0;
        i += n + 1;
    }
    return 1;
}
