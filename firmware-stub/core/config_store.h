/**
 * @file config_store.h
 * The pen's configuration: the hardware limits it is validated against, the
 * factory defaults, the validation rules of SetConfig, and the A/B flash
 * store that keeps the old or the new configuration through any power cut.
 */
#ifndef PEN_CONFIG_STORE_H
#define PEN_CONFIG_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "pen_hal.h"
#include "pl/config_rules.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest device_label / clinic_id in bytes (UTF-8), without the NUL. */
#define PEN_TEXT_MAX PL_CFG_TEXT_MAX
/** Bytes of one config slot on flash. */
#define PEN_CFG_SLOT_SIZE 256u

/** Limits fixed by the pen's hardware (ConfigLimits on the wire); the rules
 * that apply them, and the floors not on the wire, are pl/config_rules.h's. */
typedef pl_limits pen_limits;

/** The limits of this pen model: see firmware-stub/README.md. */
extern const pen_limits pen_limits_default;

/** A complete configuration (Config on the wire). */
typedef struct pen_config {
    uint32_t revision; /**< bumped on every change; factory defaults are 1 */
    uint32_t depth_min_um, depth_max_um, depth_default_um;
    uint32_t speed_min_sps, speed_max_sps;
    uint32_t max_treatment_s;
    uint32_t max_cartridge_uses; /**< 1 = single use */
    uint32_t auto_off_s;
    char device_label[PEN_TEXT_MAX + 1];
    char clinic_id[PEN_TEXT_MAX + 1];
} pen_config;

/** Bits of pen_config_change.set: which fields a change sets. */
enum pen_cfg_field {
    PEN_CFG_DEPTH_MIN = 1u << 0,
    PEN_CFG_DEPTH_MAX = 1u << 1,
    PEN_CFG_DEPTH_DEFAULT = 1u << 2,
    PEN_CFG_SPEED_MIN = 1u << 3,
    PEN_CFG_SPEED_MAX = 1u << 4,
    PEN_CFG_MAX_TREATMENT = 1u << 5,
    PEN_CFG_MAX_USES = 1u << 6,
    PEN_CFG_AUTO_OFF = 1u << 7,
    PEN_CFG_LABEL = 1u << 8,
    PEN_CFG_CLINIC = 1u << 9
};

/** A change request: the fields to set and their new values (others ignored). */
typedef struct pen_config_change {
    uint32_t set; /**< PEN_CFG_* bits */
    pen_config v;
    /** Text fields as received (not NUL-terminated, may be too long or bad UTF-8). */
    const char *label, *clinic;
    uint32_t label_len, clinic_len;
} pen_config_change;

/** Why a change was refused: the offending field and a sentence with the allowed range. */
typedef struct pen_cfg_error {
    const char *field; /**< e.g. "config.depth_max_um" (static string) */
    char message[128];
} pen_cfg_error;

/** Fills @p c with the factory defaults (revision 1). */
void pen_config_defaults(pen_config *c);

/**
 * Checks @p chg against @p lim and the cross-field rules, merged over @p cur.
 * @return PEN_OK with *@p out = the merged configuration (revision unchanged),
 *         or PEN_ERR_INVALID with *@p err filled.
 */
pen_status pen_config_check(const pen_limits *lim, const pen_config *cur,
                            const pen_config_change *chg, pen_config *out, pen_cfg_error *err);

/** The A/B store. Members are private to config_store.c. */
typedef struct pen_cfgstore {
    const pen_hal *hal;
    uint32_t sector; /**< slot A; slot B is the next sector */
    pen_config cur;
    int slot;            /**< 0 or 1: slot holding cur; -1: factory defaults */
    uint64_t record_seq; /**< seq reserved for cur's CONFIG_CHANGED */
    int64_t time_ms;     /**< when cur was written */
    uint64_t writes;     /**< slots written since boot */
} pen_cfgstore;

/** Reads both slots (no writes) and keeps the valid one with the higher revision. */
pen_status pen_cfg_open(pen_cfgstore *s, const pen_hal *hal, uint32_t sector);

/** True when the current configuration came from flash (not the factory defaults). */
bool pen_cfg_stored(const pen_cfgstore *s);

/**
 * Writes @p next (revision already bumped by the caller) to the slot not in
 * use, with the seq of its CONFIG_CHANGED record, and makes it current.
 */
pen_status pen_cfg_write(pen_cfgstore *s, const pen_config *next, uint64_t record_seq,
                         int64_t time_ms);

#ifdef __cplusplus
}
#endif
#endif
