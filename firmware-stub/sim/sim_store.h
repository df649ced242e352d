/*
 * sim.state and ground-truth.jsonl (sim_store.c): internal to the simulator.
 */
#ifndef PENLINK_SIM_STORE_H
#define PENLINK_SIM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "simulator.h"

#define SIM_STATE_FILE "sim.state"
#define SIM_TRUTH_FILE "ground-truth.jsonl"
#define SIM_FLASH_FILE "flash.bin"
#define SIM_PLANTED_FILE "planted.jsonl"
/** sim::gt_last_ms when the ground truth holds no record. */
#define SIM_NO_TIME INT64_MIN

/** DIR/@p name into @p out. 0, or -1 when it does not fit. */
int sim_path(const sim *s, const char *name, char *out, size_t cap);

/**
 * sim.state into @p s. 0 (*@p exists says whether there is one), -1 with
 * errno, -2 a file that lacks the serial or the flash geometry.
 */
int sim_state_load(sim *s, bool *exists);
/**
 * The serial of the pen whose state is in directory @p dir (another pen's,
 * for --reuse-from) into @p out. 0, -1 with errno (ENOENT: no state there),
 * -2 a file that is not a whole state.
 */
int sim_state_serial(const char *dir, char *out, size_t cap);
/** Replaces sim.state atomically with @p s, its clock at @p clock_ms. 0 or -1 with errno. */
int sim_state_save(sim *s, int64_t clock_ms);

/** Appends @p r's line to the ground truth (buffered; first cuts lines of its seq and after). */
void sim_truth_append(sim *s, const pl_record *r);
/** Writes the buffered lines to the file. 0, or -1 (sim::gt_errno says why). */
int sim_truth_flush(sim *s);
/**
 * Keeps the complete lines of records below seq @p limit and cuts the rest;
 * sets sim::gt_next and sim::gt_last_ms. 0, or -1 (sim::gt_errno).
 */
int sim_truth_trim(sim *s, uint64_t limit);

#endif
