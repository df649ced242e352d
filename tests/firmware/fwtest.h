/*
 * The firmware tests' rig: a RAM-backed NOR flash with an operation trace and
 * a power-cut knob, simulated pen hardware, the ground truth the core reports
 * through record_logged, and a minimal protocol client (frames + envelopes
 * from penlink_protocol) that talks to the core in-process.
 */
#ifndef PENLINK_FWTEST_H
#define PENLINK_FWTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pen.h"
#include "usage_model.h"

/* ---- RAM flash --------------------------------------------------------- */

typedef struct rf_op {
    bool erase;
    uint32_t addr, len; /* erase: addr = sector * size, len = size */
    uint8_t *data;      /* program: the bytes */
} rf_op;

typedef struct ramflash {
    uint8_t *mem;
    uint32_t ssize, count;
    uint64_t ops;        /* programs + erases */
    uint64_t read_bytes; /* bytes read, all reads */
    uint64_t cut_at;     /* this op (1-based) is torn and the power is gone; 0: never */
    bool dead;
    uint64_t rng;
    bool tracing;
    rf_op *trace;
    size_t n, cap;
} ramflash;

void rf_init(ramflash *f, uint32_t ssize, uint32_t count);
void rf_free(ramflash *f);
/* Applies @p op to @p mem: fully, or torn (a prefix, one partial byte) using @p seed. */
void rf_apply(uint8_t *mem, uint32_t ssize, const rf_op *op, bool torn, uint64_t seed);

/* ---- the rig ----------------------------------------------------------- */

typedef struct rig {
    ramflash fl;
    pen_hal hal;
    pen_opts opts;
    pen *p;
    bool up;
    int64_t clock_ms, rtc_off;
    pen_cartridge cart;
    pen_sensors sens;
    /* frames the pen sent, not yet read */
    uint8_t *tx;
    size_t tx_len, tx_cap;
    size_t max_frame_seen;
    /* ground truth: every record committed, with the op count when it was */
    pl_record *gt;
    uint64_t *gt_op;
    size_t gt_n, gt_cap;
    uint32_t rid;
    uint32_t host_max; /* Hello.max_frame_payload */
    usage_model model;
    unsigned identify_calls; /* Identify signals the pen asked its HAL for */
    uint32_t identify_seconds;
} rig;

/* A rig over a fresh flash of @p count sectors of @p ssize bytes. */
void rig_init(rig *r, uint32_t ssize, uint32_t count, uint32_t batch);
void rig_free(rig *r);
/* (Re)boots the core over the rig's flash; returns pen_init's status. */
pen_status rig_boot(rig *r);
/* Feeds the next usage model event to the core (as the simulator does). */
pen_status rig_event(rig *r);
/* Runs pen_poll until idle (asserts it gets there). */
void rig_settle(rig *r);

/* ---- client ------------------------------------------------------------ */

/* Frames bytes of @p env (request_id set by the caller). Returns the length. */
size_t rig_frame(const pl_envelope *env, uint8_t *out, size_t cap);
/* Sends @p env to the core, settles, and returns the replies (malloc'ed,
 * free with rig_replies_free). */
size_t rig_call(rig *r, pl_envelope *env, pl_envelope ***out);
void rig_replies_free(pl_envelope **v, size_t n);
/* Reads every frame the pen sent so far. */
size_t rig_take(rig *r, pl_envelope ***out);

pl_envelope *rig_hello(rig *r);           /* opens a session; returns the reply */
int rig_error_code(const pl_envelope *e); /* Error.code, or -1 for another body */

/* Pulls everything from @p from; returns records (malloc'ed) and LogEnd facts. */
typedef struct pull_result {
    pl_record *rec;
    size_t n;
    uint64_t first_available, next_seq;
    uint64_t chunks;
    int error; /* Error.code if the pull failed, else 0 */
} pull_result;
void rig_pull_all(rig *r, uint64_t from, uint32_t max_chunks, pull_result *out);
void pull_result_free(pull_result *p);

/* AckLog through @p through; returns AckLogReply.acked_seq or -(error code). */
int64_t rig_ack(rig *r, uint64_t through);
/* GetInfo; fills the fields tests use. Returns 0 or the error code. */
int rig_info(rig *r, uint64_t *first, uint64_t *next, uint64_t *acked, uint32_t *cfg_rev);

/* A client-only rig over a pen someone else runs (the simulator): frames the
 * pen sends must go to rig_send_hook(rig). */
void rig_attach(rig *r, pen *p);
int rig_send_hook(void *ctx, const uint8_t *data, size_t len);

/* Parses one ground-truth JSON line into @p out; 0 or -1. */
int fw_truth_parse(const char *line, pl_record *out);

/* A simulator's ground truth, read whole. */
typedef struct fw_truth {
    pl_record *rec; /* malloc'd: free(rec) */
    size_t n;
} fw_truth;

/* @p dir's ground-truth.jsonl into @p t: every line whole, seqs 0..n-1 once
 * each, or the test fails. */
void fw_truth_load(const char *dir, fw_truth *t);

/* Deterministic PRNG for tests. */
uint64_t fw_rand(uint64_t *s);

#endif
