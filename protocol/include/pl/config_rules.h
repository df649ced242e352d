/**
 * @file pl/config_rules.h
 * The rules a configuration must meet, in the one table both sides apply:
 * the pen's config store before it writes anything (firmware-stub/core/
 * config_store.c) and the host before it sends a change (host/src/config.c),
 * so that the host refuses exactly what the pen would.
 *
 * A rule bounds one numeric setting by the pen's announced limits (Limits on
 * the wire) or by a floor of the protocol's own (not announced), may ask for
 * the pen's depth steps, and orders two settings (a minimum not above its
 * maximum). Text settings have a length and a content rule.
 */
#ifndef PL_CONFIG_RULES_H
#define PL_CONFIG_RULES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** The numeric settings of a Config, in field-number order. */
typedef enum pl_cfg_setting {
    PL_SET_DEPTH_MIN,
    PL_SET_DEPTH_MAX,
    PL_SET_DEPTH_DEFAULT,
    PL_SET_SPEED_MIN,
    PL_SET_SPEED_MAX,
    PL_SET_MAX_TREATMENT,
    PL_SET_MAX_USES,
    PL_SET_AUTO_OFF,
    PL_SET_COUNT
} pl_cfg_setting;

/** A pen's limits, as ConfigLimits carries them. */
typedef struct pl_limits {
    uint32_t depth_min_um, depth_max_um, depth_step_um;
    uint32_t speed_min_sps, speed_max_sps;
    uint32_t max_treatment_s;    /**< upper bound of max_treatment_s */
    uint32_t max_cartridge_uses; /**< upper bound of max_cartridge_uses */
    uint32_t auto_off_min_s, auto_off_max_s;
    uint32_t max_text_len;
} pl_limits;

/** The floor of max_treatment_s: a treatment may always last a minute. Not announced. */
#define PL_CFG_MAX_TREATMENT_MIN_S 60u
/** The floor of max_cartridge_uses: 1 is a single-use cartridge. Not announced. */
#define PL_CFG_MAX_USES_MIN 1u
/** The longest text setting (device_label, clinic_id) any pen keeps, in bytes. */
#define PL_CFG_TEXT_MAX 32u

/** Where a bound comes from: a field of pl_limits (its offset), or the rule's own number. */
#define PL_CFG_FIXED SIZE_MAX

/** One numeric setting's rule. */
typedef struct pl_cfg_rule {
    const char *path; /**< where it is in a SetConfig, "config.depth_min_um" */
    const char *key;  /**< its name on the wire and in JSON, "depth_min_um" */
    const char *unit; /**< for messages: " um", " strokes/s", " s", "" */
    size_t lo, hi;    /**< offsetof(pl_limits, ...) of each bound, or PL_CFG_FIXED */
    uint32_t lo_fixed;
    int stepped; /**< on depth_step_um steps from the lower bound */
} pl_cfg_rule;

/** The rules, indexed by pl_cfg_setting. */
extern const pl_cfg_rule pl_cfg_rules[PL_SET_COUNT];

/** Two settings in order: setting lo must not be above setting hi. */
typedef struct pl_cfg_order {
    pl_cfg_setting lo, hi;
    int blame_hi; /**< the message is about hi ("must not be below"), else lo ("must not exceed") */
} pl_cfg_order;

#define PL_CFG_ORDER_COUNT 4
/** The orders, checked in this sequence on the whole configuration. */
extern const pl_cfg_order pl_cfg_orders[PL_CFG_ORDER_COUNT];

/**
 * The range of setting @p s under @p lim: *@p lo .. *@p hi, and *@p step
 * (0: any value; else the value minus *@p lo is a multiple of it).
 */
void pl_cfg_bounds(const pl_limits *lim, pl_cfg_setting s, uint32_t *lo, uint32_t *hi,
                   uint32_t *step);

/** 1 when @p v meets setting @p s's rule under @p lim, else 0. */
int pl_cfg_value_ok(const pl_limits *lim, pl_cfg_setting s, uint32_t v);

/**
 * The first order of pl_cfg_orders that the settings @p v (indexed by
 * pl_cfg_setting) break, or NULL when they break none.
 */
const pl_cfg_order *pl_cfg_order_broken(const uint32_t v[PL_SET_COUNT]);

/** The longest text setting @p lim allows: its max_text_len, at most PL_CFG_TEXT_MAX. */
uint32_t pl_cfg_text_max(const pl_limits *lim);

/** 1 when @p s[0..@p len) is UTF-8 without control characters (C0, DEL, C1). */
int pl_cfg_text_ok(const char *s, uint32_t len);

#ifdef __cplusplus
}
#endif
#endif
