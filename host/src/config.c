/*
 * Configuration keys and their checks. The pen validates every SetConfig
 * itself; the host checks the same rules first so that a technician sees
 * every problem, with the allowed range, before anything is sent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pl/config_rules.h"
#include "pl/limits.h"
#include "transport.h"

static const penlink_config_key keys[] = {
    { "depth_min_um", PENLINK_CFG_DEPTH_MIN_UM, 0, "shallowest needle depth allowed, micrometres" },
    { "depth_max_um", PENLINK_CFG_DEPTH_MAX_UM, 0, "deepest needle depth allowed, micrometres" },
    { "depth_default_um", PENLINK_CFG_DEPTH_DEFAULT_UM, 0, "depth at power on, micrometres" },
    { "speed_min_sps", PENLINK_CFG_SPEED_MIN_SPS, 0, "slowest speed, needle strokes per second" },
    { "speed_max_sps", PENLINK_CFG_SPEED_MAX_SPS, 0, "fastest speed, needle strokes per second" },
    { "max_treatment_s", PENLINK_CFG_MAX_TREATMENT_S, 0, "longest treatment, seconds" },
    { "max_cartridge_uses", PENLINK_CFG_MAX_CARTRIDGE_USES, 0,
      "uses allowed per cartridge (1 = single use)" },
    { "auto_off_s", PENLINK_CFG_AUTO_OFF_S, 0, "idle time before the pen turns off, seconds" },
    { "device_label", PENLINK_CFG_DEVICE_LABEL, 1, "free text naming the pen, e.g. a room" },
    { "clinic_id", PENLINK_CFG_CLINIC_ID, 1, "the clinic's identifier" },
};

const penlink_config_key *penlink_config_keys(size_t *n)
{
    *n = sizeof keys / sizeof keys[0];
    return keys;
}

const penlink_config_key *penlink_config_key_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof keys / sizeof keys[0]; i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static uint32_t *u32_slot(penlink_config *c, uint32_t bit)
{
    switch (bit) {
    case PENLINK_CFG_DEPTH_MIN_UM: return &c->depth_min_um;
    case PENLINK_CFG_DEPTH_MAX_UM: return &c->depth_max_um;
    case PENLINK_CFG_DEPTH_DEFAULT_UM: return &c->depth_default_um;
    case PENLINK_CFG_SPEED_MIN_SPS: return &c->speed_min_sps;
    case PENLINK_CFG_SPEED_MAX_SPS: return &c->speed_max_sps;
    case PENLINK_CFG_MAX_TREATMENT_S: return &c->max_treatment_s;
    case PENLINK_CFG_MAX_CARTRIDGE_USES: return &c->max_cartridge_uses;
    case PENLINK_CFG_AUTO_OFF_S: return &c->auto_off_s;
    default: return NULL;
    }
}

uint32_t penlink_config_get_u32(const penlink_config *c, uint32_t bit)
{
    if (!c || c->size < PL_CONFIG_SIZE_V1)
        return 0;
    uint32_t *p = u32_slot((penlink_config *)c, bit);
    return p ? *p : 0;
}

int penlink_config_set_u32(penlink_config *c, uint32_t bit, uint32_t v)
{
    uint32_t *p = c && c->size >= PL_CONFIG_SIZE_V1 ? u32_slot(c, bit) : NULL;
    if (!p)
        return PENLINK_ERR_INVALID_ARG;
    *p = v;
    c->present |= bit;
    return PENLINK_OK;
}

int penlink_config_set_text(penlink_config *c, uint32_t bit, const char *v)
{
    if (!c || c->size < PL_CONFIG_SIZE_V1)
        return PENLINK_ERR_INVALID_ARG;
    char *dst = bit == PENLINK_CFG_DEVICE_LABEL ? c->device_label
                : bit == PENLINK_CFG_CLINIC_ID  ? c->clinic_id
                                                : NULL;
    if (!dst || !v || strlen(v) > PENLINK_CONFIG_TEXT_MAX)
        return PENLINK_ERR_INVALID_ARG;
    strcpy(dst, v);
    c->present |= bit;
    return PENLINK_OK;
}

const char *penlink_config_get_text(const penlink_config *c, uint32_t bit)
{
    if (!c || c->size < PL_CONFIG_SIZE_V1)
        return "";
    return bit == PENLINK_CFG_DEVICE_LABEL ? c->device_label
           : bit == PENLINK_CFG_CLINIC_ID  ? c->clinic_id
                                           : "";
}

/* The public header cannot include protocol/: its copies of the shared bounds are checked here. */
_Static_assert(PENLINK_IDENTIFY_DEFAULT_S == PL_IDENTIFY_DEFAULT_S &&
                   PENLINK_IDENTIFY_MAX_S == PL_IDENTIFY_MAX_S,
               "penlink.h's identify bounds are pl/limits.h's");
_Static_assert(sizeof(((penlink_info *)0)->serial) == PL_SERIAL_MAX + 1 &&
                   sizeof(((penlink_info *)0)->model) == PL_IDENT_MAX + 1 &&
                   sizeof(((penlink_info *)0)->firmware_version) == PL_IDENT_MAX + 1 &&
                   PENLINK_CONFIG_KEYS_MAX == PL_CONFIG_KEYS_MAX,
               "penlink_info holds what pl/limits.h lets a pen send");
_Static_assert(sizeof(((penlink_config *)0)->device_label) > PL_CFG_TEXT_MAX,
               "penlink_config holds the longest text a pen keeps");

/* A pen's announced limits, as the shared rules take them. */
static pl_limits rule_limits(const penlink_limits *l)
{
    pl_limits r = { .depth_min_um = l->depth_min_um,
                    .depth_max_um = l->depth_max_um,
                    .depth_step_um = l->depth_step_um,
                    .speed_min_sps = l->speed_min_sps,
                    .speed_max_sps = l->speed_max_sps,
                    .max_treatment_s = l->max_treatment_s,
                    .max_cartridge_uses = l->max_cartridge_uses,
                    .auto_off_min_s = l->auto_off_min_s,
                    .auto_off_max_s = l->auto_off_max_s,
                    .max_text_len = l->max_text_len };
    return r;
}

/* The penlink_config bit of each of the rules' settings. */
static const uint32_t setting_bit[PL_SET_COUNT] = {
    [PL_SET_DEPTH_MIN] = PENLINK_CFG_DEPTH_MIN_UM,
    [PL_SET_DEPTH_MAX] = PENLINK_CFG_DEPTH_MAX_UM,
    [PL_SET_DEPTH_DEFAULT] = PENLINK_CFG_DEPTH_DEFAULT_UM,
    [PL_SET_SPEED_MIN] = PENLINK_CFG_SPEED_MIN_SPS,
    [PL_SET_SPEED_MAX] = PENLINK_CFG_SPEED_MAX_SPS,
    [PL_SET_MAX_TREATMENT] = PENLINK_CFG_MAX_TREATMENT_S,
    [PL_SET_MAX_USES] = PENLINK_CFG_MAX_CARTRIDGE_USES,
    [PL_SET_AUTO_OFF] = PENLINK_CFG_AUTO_OFF_S,
};

static int check_text(penlink_ctx *ctx, const char *key, const char *v, uint32_t max)
{
    size_t len = strlen(v);
    if (len > max)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG,
                            "%s is %zu bytes long; the pen keeps at most %u", key, len, max);
    if (!pl_cfg_text_ok(v, (uint32_t)len))
        return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG,
                            "%s must be UTF-8 text without control characters", key);
    return PENLINK_OK;
}

int penlink_config_check(penlink_ctx *ctx, const penlink_limits *l, const penlink_config *c)
{
    penlink_enter(ctx);
    if (!l || !c || c->size < PL_CONFIG_SIZE_V1 || l->size < PL_LIMITS_SIZE_V1)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "no limits or configuration to check, or one without its size "
                            "(PENLINK_LIMITS_INIT, PENLINK_CONFIG_INIT)");
    pl_limits lim = rule_limits(l);
    uint32_t v[PL_SET_COUNT];
    for (int s = 0; s < PL_SET_COUNT; s++) {
        const char *key = pl_cfg_rules[s].key, *unit = pl_cfg_rules[s].unit;
        uint32_t lo, hi, step;
        v[s] = penlink_config_get_u32(c, setting_bit[s]);
        pl_cfg_bounds(&lim, (pl_cfg_setting)s, &lo, &hi, &step);
        if (v[s] < lo || v[s] > hi)
            return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG, "%s = %u is outside %u..%u%s", key,
                                v[s], lo, hi, unit);
        if (!pl_cfg_value_ok(&lim, (pl_cfg_setting)s, v[s]))
            return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG,
                                "%s = %u is not on the pen's %u%s steps (from %u)", key, v[s], step,
                                unit, lo);
    }
    const pl_cfg_order *o = pl_cfg_order_broken(v);
    if (o) {
        pl_cfg_setting subject = o->blame_hi ? o->hi : o->lo, other = o->blame_hi ? o->lo : o->hi;
        return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG, "%s = %u %s %s (%u)",
                            pl_cfg_rules[subject].key, v[subject],
                            o->blame_hi ? "must not be below" : "must not exceed",
                            pl_cfg_rules[other].key, v[other]);
    }
    uint32_t tmax = pl_cfg_text_max(&lim);
    int rc = check_text(ctx, "device_label", c->device_label, tmax);
    if (rc == PENLINK_OK)
        rc = check_text(ctx, "clinic_id", c->clinic_id, tmax);
    return rc;
}

/* Room for a few pens more than were counted: one may be plugged in meanwhile. */
#define DEV_LIST_SPARE 4

int penlink_dev_list(penlink_ctx *ctx, penlink_found ***list, size_t *n)
{
    if (!ctx)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ctx);
    if (!list || !n)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "no place for the pens found");
    *list = NULL;
    *n = 0;
    size_t total = 0, cap = 0;
    penlink_found *flat = NULL;
    int rc = PENLINK_OK;
    /* the pens into a flat buffer, grown until every pen found fits */
    do {
        cap = total + DEV_LIST_SPARE;
        penlink_found *more = realloc(flat, cap * sizeof *flat);
        if (!more) {
            rc = penlink_fail(ctx, PENLINK_ERR_NO_MEM, "out of memory listing the pens");
            goto fail;
        }
        flat = more;
        rc = transport_list(ctx, flat, cap, &total);
        if (rc != PENLINK_OK)
            goto fail;
    } while (total > cap);
    /* one block: the NULL-terminated pointers, then the pens they point to */
    penlink_found **out = malloc((total + 1) * sizeof *out + total * sizeof *flat);
    if (!out) {
        rc = penlink_fail(ctx, PENLINK_ERR_NO_MEM, "out of memory listing the pens");
        goto fail;
    }
    penlink_found *pens = (penlink_found *)(out + total + 1);
    for (size_t i = 0; i < total; i++) {
        pens[i] = flat[i];
        out[i] = &pens[i];
    }
    out[total] = NULL;
    *list = out;
    *n = total;
fail:
    free(flat);
    return rc;
}

void penlink_dev_list_free(penlink_found **list)
{
    free(list);
}
