/*
 * Configuration keys and their checks. The pen validates every SetConfig
 * itself; the host checks the same rules first so that a technician sees
 * every problem, with the allowed range, before anything is sent.
 */
#include <stdio.h>
#include <string.h>

#include "internal.h"
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
    uint32_t *p = u32_slot((penlink_config *)c, bit);
    return p ? *p : 0;
}

void penlink_config_set_u32(penlink_config *c, uint32_t bit, uint32_t v)
{
    uint32_t *p = u32_slot(c, bit);
    if (p) {
        *p = v;
        c->present |= bit;
    }
}

int penlink_config_set_text(penlink_config *c, uint32_t bit, const char *v)
{
    char *dst = bit == PENLINK_CFG_DEVICE_LABEL ? c->device_label
                : bit == PENLINK_CFG_CLINIC_ID  ? c->clinic_id
                                                : NULL;
    if (!dst || !v || strlen(v) >= sizeof c->device_label)
        return -1;
    strcpy(dst, v);
    c->present |= bit;
    return 0;
}

const char *penlink_config_get_text(const penlink_config *c, uint32_t bit)
{
    return bit == PENLINK_CFG_DEVICE_LABEL ? c->device_label
           : bit == PENLINK_CFG_CLINIC_ID  ? c->clinic_id
                                           : "";
}

int penlink_config_check(penlink_ctx *ctx, const penlink_limits *l, const penlink_config *c)
{
    penlink_enter(ctx);
    if (!l || !c)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "no limits or configuration to check");
    const struct {
        const char *key;
        uint32_t v, lo, hi;
        const char *unit;
    } checks[] = {
        { "depth_min_um", c->depth_min_um, l->depth_min_um, l->depth_max_um, "micrometres" },
        { "depth_max_um", c->depth_max_um, c->depth_min_um, l->depth_max_um,
          "micrometres (depth_min_um..the pen's maximum)" },
        { "depth_default_um", c->depth_default_um, c->depth_min_um, c->depth_max_um,
          "micrometres (depth_min_um..depth_max_um)" },
        { "speed_min_sps", c->speed_min_sps, l->speed_min_sps, l->speed_max_sps, "strokes/s" },
        { "speed_max_sps", c->speed_max_sps, c->speed_min_sps, l->speed_max_sps,
          "strokes/s (speed_min_sps..the pen's maximum)" },
        { "max_treatment_s", c->max_treatment_s, 60, l->max_treatment_s, "seconds" },
        { "max_cartridge_uses", c->max_cartridge_uses, 1, l->max_cartridge_uses, "uses" },
        { "auto_off_s", c->auto_off_s, l->auto_off_min_s, l->auto_off_max_s, "seconds" },
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].v < checks[i].lo || checks[i].v > checks[i].hi)
            return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG, "%s = %u is outside %u..%u %s",
                                checks[i].key, checks[i].v, checks[i].lo, checks[i].hi,
                                checks[i].unit);
    if (l->depth_step_um) {
        const struct {
            const char *key;
            uint32_t v;
        } depths[] = { { "depth_min_um", c->depth_min_um },
                       { "depth_max_um", c->depth_max_um },
                       { "depth_default_um", c->depth_default_um } };
        for (int i = 0; i < 3; i++)
            if ((depths[i].v - l->depth_min_um) % l->depth_step_um != 0)
                return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG,
                                    "%s = %u is not on the pen's %u micrometre steps (from %u)",
                                    depths[i].key, depths[i].v, l->depth_step_um, l->depth_min_um);
    }
    if (strlen(c->device_label) > l->max_text_len)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG,
                            "device_label is %zu bytes long; the pen keeps at most %u",
                            strlen(c->device_label), l->max_text_len);
    if (strlen(c->clinic_id) > l->max_text_len)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_CONFIG,
                            "clinic_id is %zu bytes long; the pen keeps at most %u",
                            strlen(c->clinic_id), l->max_text_len);
    return PENLINK_OK;
}

int penlink_list(penlink_ctx *ctx, penlink_found *out, size_t cap, size_t *n)
{
    if (!ctx)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ctx);
    if (!n || (!out && cap))
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "no place for the pens found");
    return transport_usb_list(ctx, out, cap, n);
}
