/**
 * @file simulator.h
 * The simulated pen (host only): the device core over a file-backed flash,
 * simulated clock, cartridge reader and sensors, driven by the usage model.
 * penlink-sim serves it on a socket; tests drive it in-process.
 *
 * State directory (survives restarts like a pen's flash):
 *   flash.bin          the flash image
 *   sim.state          the simulator's own state (serial, geometry, clock)
 *   device.key, config-keys  the pen's identity (identity.h)
 *   ground-truth.jsonl one JSON object per record the pen committed, appended
 *   planted.jsonl      one JSON object per finding planted, as the audit must
 *                      report it (kind, pen, seq ...), appended
 *   sim.lock           held (flock) by the simulator using the directory
 *
 * Crash safety: sim.state and the identity files are replaced atomically
 * (state_dir.h) when made and whenever they change; sim.state is written
 * last when a state is made, so a directory without it holds no pen yet. A
 * record's ground-truth line is written before its staging slot reaches
 * flash.bin (flash_file.h), and sim_open() cuts truth lines past the end of
 * the pen's log: after a SIGKILL at any point, the restarted pen's log and
 * the ground truth hold the same records.
 *
 * Time: while simulating days the clock jumps from event to event; while
 * serving it runs with the host's monotonic clock, never going back. The
 * pen's RTC is that clock plus an offset (SetClock changes the offset).
 * Without --start-time the simulated days end today and serving goes on from
 * now; with it (kept in sim.state) serving goes on from the simulated clock,
 * so that nothing the pen logs depends on the calendar.
 */
#ifndef PENLINK_SIMULATOR_H
#define PENLINK_SIMULATOR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "flash_file.h"
#include "pen.h"
#include "identity.h"
#include "usage_model.h"

/** Results (the exit codes of penlink-sim). */
enum sim_result {
    SIM_OK = 0,
    SIM_ERR = 1,       /**< an I/O or device error; sim->err says what */
    SIM_USAGE = 2,     /**< an option does not fit the state directory */
    SIM_POWER_CUT = 3, /**< the planted power cut happened */
    SIM_BUSY = 4       /**< another simulator holds the state directory */
};

typedef struct sim_opts {
    const char *state_dir;
    const char *serial; /**< NULL: keep the state's, or derive from the seed */
    uint64_t seed;
    uint32_t reuse_permille, fault_permille, power_cycle_permille, over_limit_permille;
    uint32_t max_uses;                       /**< 0: leave the configuration alone */
    uint32_t flash_size, sector_size, batch; /**< for a new state directory */
    uint32_t protocol_major;                 /**< 0: PEN_PROTOCOL_MAJOR */
    uint32_t pull_window;                    /**< most chunks per PullLog; 0: the pen's */
    uint64_t power_cut_after;                /**< 0: never */
    uint32_t simulate_days;                  /**< days sim_simulate() runs */
    int64_t start_ms;                        /**< first simulated day; 0: automatic */
    bool set_clock_offset;
    int64_t clock_offset_ms;          /**< the pen's RTC minus true time */
    const uint8_t (*config_keys)[32]; /**< provision a new state with these */
    uint32_t config_key_count;
    bool sign_with_other_key; /**< planted fault: heads signed by a key not the pen's */
    FILE *log;                /**< progress messages, or NULL */
    /* planted findings (usage_model.h), per 1000 treatments or gaps between them */
    uint32_t no_cartridge_permille, depth_out_permille, speed_out_permille;
    uint32_t clock_glitch_permille, clock_set_permille, config_refused_permille;
    uint32_t cross_reuse_permille;
    const char *reuse_from; /**< another pen's state directory: its cartridges to reuse */
    bool replace_key;       /**< a new device key under the same serial (a replaced pen) */
} sim_opts;

/** The first treatment of a cartridge: on this pen, or on the pen of --reuse-from. */
typedef struct sim_first_use {
    uint64_t cartridge, seq;
    int64_t time_ms;
    bool foreign;
} sim_first_use;

/** A LOG_OVERFLOW the pen logged: planted once it is known to reach a host. */
typedef struct sim_overflow {
    uint64_t seq, dropped;
    int64_t time_ms;
} sim_overflow;

/** Fills @p o with the defaults (1 MiB flash in 4 KiB sectors, seed 1). */
void sim_opts_default(sim_opts *o);

typedef struct sim {
    sim_opts o;
    char dir[512];
    flash_file flash;
    pen_hal hal;
    sim_identity id;
    pen_opts popts;
    pen *pen;
    bool pen_up;
    usage_model model;
    bool model_ready;
    /* clock */
    bool virt;
    int64_t clock_ms, clock_base_ms;
    uint64_t mono_base_ms;
    int64_t rtc_offset_ms;
    int64_t model_end_ms, sim_start_ms;
    uint32_t runs;
    bool fixed_calendar; /**< --start-time given: the clock never catches up with the host's */
    /* hardware the pen reads */
    pen_cartridge cart;
    pen_sensors sensors;
    /* state directory */
    int lock_fd;
    bool locked;      /**< lock_fd holds the directory's lock */
    bool state_saved; /**< sim.state describes this pen (the state exists) */
    /* output */
    FILE *gt;
    uint64_t gt_records;
    uint64_t gt_next;   /**< seq after the ground truth's last line */
    int64_t gt_last_ms; /**< time_ms of that line (INT64_MIN: none) */
    bool gt_dirty;      /**< lines written to gt but not yet flushed to the file */
    int gt_errno;       /**< the ground truth could not be written */
    int (*send)(void *ctx, const uint8_t *data, size_t len);
    void *send_ctx;
    char serial[PEN_SERIAL_MAX + 1];
    uint32_t sector_size, sector_count, batch;
    uint64_t events, ignored, reboots;
    pen_log_stats log_total; /**< store counters of earlier boots in this run */
    char err[256];
    /* planted findings: what the event being applied plants, and the ground truth */
    FILE *planted;
    uint32_t plant;        /**< usage_plant bits of the event being applied */
    bool glitch_pending;   /**< the next record logged follows a clock glitch */
    bool reuse_pending;    /**< a reused cartridge was accepted: its treatment next */
    uint64_t treat_seq;    /**< the treatment being logged (its start) */
    sim_first_use *firsts; /**< first treatment of each cartridge */
    size_t n_firsts, cap_firsts;
    uint64_t *foreign; /**< --reuse-from: the other pen's cartridges */
    uint32_t n_foreign;
    char foreign_serial[PEN_SERIAL_MAX + 1];
    sim_overflow *overflows; /**< LOG_OVERFLOW records not planted yet */
    size_t n_overflows, cap_overflows;
    uint64_t gap_planted_to; /**< the gap up to here is in planted.jsonl (kept) */
} sim;

/**
 * Locks, opens (or creates) the state directory and boots the pen.
 * @return SIM_OK, SIM_USAGE (an option contradicts the state), SIM_BUSY
 *         (another simulator holds the directory), SIM_ERR, SIM_POWER_CUT.
 */
int sim_open(sim *s, const sim_opts *o);

/** Runs the usage model for sim_opts::simulate_days days on accelerated time. */
int sim_simulate(sim *s);

/** Switches the clock to real time (before serving). */
void sim_realtime(sim *s);

/** Generates and applies the model's next event now (live mode). */
int sim_step(sim *s);

/** Where the pen's frames go (the socket); NULL drops them. */
void sim_set_sender(sim *s, int (*send)(void *ctx, const uint8_t *data, size_t len), void *ctx);

/**
 * Writes what is pending to the ground truth, then to the flash image (so
 * that nothing waits for a later event). SIM_OK or SIM_ERR.
 */
int sim_flush(sim *s);

/** Result of the flash after a failing pen call: SIM_POWER_CUT when the cut happened. */
int sim_check(sim *s, pen_status st);

/** Prints flash statistics (records, chunks, bytes per record) to @p out. */
int sim_print_stats(sim *s, FILE *out);

/** Saves the state, syncs the flash, releases the lock and closes. SIM_OK or SIM_ERR. */
int sim_close(sim *s);

#endif
