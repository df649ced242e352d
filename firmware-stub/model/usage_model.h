/**
 * @file usage_model.h
 * A deterministic, seeded model of a clinic's days with one pen, for the
 * simulator and the benchmarks (host only; the pen itself never runs it).
 *
 * Each call to usage_model_next() gives the next event the pen would log,
 * in time order: power on in the morning, treatments of 15-60 minutes (each
 * with a fresh cartridge inserted, the practitioner moving across face zones
 * and changing the depth in 0.1 or 0.25 mm steps within the configured
 * limits, a few speed changes), cartridge removal, occasional faults and
 * power cycles, power off in the evening. Sequence numbers are left to the
 * caller (the pen assigns them).
 *
 * Planted cartridge reuse: a fraction of treatments reinsert an already used
 * cartridge. When the cartridge has reached max_cartridge_uses the pen
 * refuses it (CARTRIDGE_REFUSED) and a fresh one follows; otherwise (a
 * misconfigured limit) the treatment proceeds with the reused cartridge.
 *
 * Power cycles: with power_cycle_permille > 0, the pen is switched off and on
 * again between treatments now and then (the simulator reboots the device
 * core there, which exercises its flash recovery). At 0 the event stream is
 * the same as without the knob.
 *
 * Planted overlong treatments: with over_limit_permille > 0 a fraction of
 * treatments run 1-15 minutes past max_treatment_s, which the pen logs but
 * does not stop; the audit must report each as out of limits. At 0 the event
 * stream is the same as without the knob.
 *
 * The other planted findings (each knob at 0 leaves the stream as it was):
 * treatments started with no cartridge (a pen whose firmware lets them),
 * depth and speed changes past the configured limits (a failed clamp), the
 * clock jumping back during a treatment with nothing logged (a glitch), the
 * clock set by hours between treatments (CLOCK_SET), a refused unsigned
 * configuration (SECURITY_EVENT), and cartridges of another pen reinserted
 * with a reset chip (cross-pen reuse). usage_model.plant says which event
 * carries a planted finding; the simulator turns it into the pen's records
 * and into its ground truth of planted findings.
 */
#ifndef PENLINK_USAGE_MODEL_H
#define PENLINK_USAGE_MODEL_H

#include <stdint.h>

#include "pl/record.h"

typedef struct usage_params {
    uint64_t seed;
    int64_t start_ms; /**< first day, ms since the epoch (midnight UTC) */
    uint32_t depth_min_um, depth_max_um, depth_step_um;
    uint32_t speed_min_sps, speed_max_sps;
    uint32_t max_cartridge_uses;      /**< 1 = single use (the pen refuses reuse) */
    uint32_t reuse_permille;          /**< treatments that try a used cartridge, per 1000 */
    uint32_t fault_permille;          /**< treatments with a fault, per 1000 */
    uint32_t power_cycle_permille;    /**< gaps between treatments with a power cycle, per 1000 */
    uint32_t over_limit_permille;     /**< treatments past max_treatment_s, per 1000 */
    uint32_t max_treatment_s;         /**< the pen's limit, for planting overlong treatments */
    uint32_t no_cartridge_permille;   /**< treatments started with no cartridge, per 1000 */
    uint32_t depth_out_permille;      /**< treatments with a depth past depth_max_um, per 1000 */
    uint32_t speed_out_permille;      /**< treatments with a speed past speed_max_sps, per 1000 */
    uint32_t clock_glitch_permille;   /**< treatments during which the clock jumps back */
    uint32_t clock_set_permille;      /**< gaps between treatments with a clock set by hours */
    uint32_t config_refused_permille; /**< gaps with a refused configuration change */
    uint32_t cross_reuse_permille;    /**< treatments with another pen's used cartridge */
    const uint64_t *foreign;          /**< that pen's cartridge serials (cross-pen reuse) */
    uint32_t n_foreign;
} usage_params;

/** What an event plants (bits of usage_model.plant), for the ground truth. */
enum usage_plant {
    PLANT_REUSE = 1u << 0,         /**< CARTRIDGE_INSERTED / REFUSED: a used one reinserted */
    PLANT_CROSS_REUSE = 1u << 1,   /**< CARTRIDGE_INSERTED: another pen's, its chip reset */
    PLANT_NO_CARTRIDGE = 1u << 2,  /**< TREATMENT_START with no cartridge accepted */
    PLANT_DEPTH_OUT = 1u << 3,     /**< DEPTH_CHANGED past depth_max_um */
    PLANT_SPEED_OUT = 1u << 4,     /**< SPEED_CHANGED past speed_max_sps */
    PLANT_OVER_LIMIT = 1u << 5,    /**< TREATMENT_START of one that runs past max_treatment_s */
    PLANT_CLOCK_GLITCH = 1u << 6,  /**< before this event the clock jumps by glitch_ms */
    PLANT_CLOCK_SET = 1u << 7,     /**< CLOCK_SET by clock_delta_ms */
    PLANT_CONFIG_REFUSED = 1u << 8 /**< SECURITY_EVENT */
};

/** Ground truth kept by the model about what it planted. */
typedef struct usage_stats {
    uint64_t events, treatments, days;
    uint64_t reuse_attempts;   /**< used cartridges reinserted */
    uint64_t reuse_refused;    /**< of those, refused by the pen */
    uint64_t reuse_treatments; /**< treatments done with a reused cartridge */
    uint64_t faults;
    uint64_t power_cycles; /**< off/on pairs planted between treatments */
    uint64_t over_limit;   /**< treatments planted outside the limits */
    uint64_t planted;      /**< events carrying any planted finding */
} usage_stats;

typedef struct usage_model {
    usage_params p;
    uint64_t rng;
    int64_t now_ms;
    int state;
    uint32_t left_in_day, left_in_treatment;
    uint32_t depth_um, speed_sps, zone;
    int64_t treat_start_ms, treat_end_ms;
    uint64_t strokes;
    uint64_t box_base, box_next;
    uint32_t box_left;
    uint64_t cartridge, cartridge_uses;
    uint32_t lifetime;
    uint64_t used[64]; /**< recently used cartridges (for planted reuse) */
    uint32_t used_uses[64];
    uint32_t used_n;
    int reuse_pending;
    int fault_pending;
    int no_cart; /* the treatment runs with no cartridge */
    int depth_out_pending, speed_out_pending, glitch_pending;
    int idle_planted;       /* this gap between treatments had its clock set or refusal */
    uint32_t plant;         /**< what the event just returned plants (usage_plant bits) */
    int64_t glitch_ms;      /**< PLANT_CLOCK_GLITCH: the clock's jump, before the event */
    uint32_t foreign_index; /**< PLANT_CROSS_REUSE: index into usage_params.foreign */
    usage_stats stats;
} usage_model;

/** Fills @p p with a typical pen: 0-3.0 mm in 0.1 mm steps, 50-150 strokes/s, single use. */
void usage_params_default(usage_params *p);

void usage_model_init(usage_model *m, const usage_params *p);

/** Next event (seq left 0, fields per kind). Never ends. */
void usage_model_next(usage_model *m, pl_record *out);

#endif
