/*
 * The simulated pen: pen_hal over a file-backed flash and simulated
 * hardware, the usage model turned into calls of the device core's entry
 * points (the core decides what it logs), and the ground truth: every record
 * the core commits, as one JSON line.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pen_internal.h" /* pen_log_now(): planted faults log what a faulty pen would */
#include "simulator.h"

#define DAY_MS 86400000ll

static int64_t realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

__attribute__((format(printf, 3, 4))) static int fail(sim *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    return code;
}

__attribute__((format(printf, 2, 3))) static void note(sim *s, const char *fmt, ...)
{
    va_list ap;
    if (!s->o.log)
        return;
    va_start(ap, fmt);
    vfprintf(s->o.log, fmt, ap);
    va_end(ap);
}

void sim_opts_default(sim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->fault_permille = 10;
    o->power_cycle_permille = 30;
    o->flash_size = 1024 * 1024;
    o->sector_size = 4096;
    o->batch = PL_CHUNK_BATCH;
}

/* ---- clock ------------------------------------------------------------- */

static int64_t sim_clock(const sim *s)
{
    if (s->virt)
        return s->clock_ms;
    return s->clock_base_ms + (int64_t)(monotonic_ms() - s->mono_base_ms);
}

void sim_realtime(sim *s)
{
    int64_t now = realtime_ms(), c = sim_clock(s);
    /* a pen whose days began at --start-time goes on from its own clock, so that
     * nothing it logs depends on the calendar; otherwise it catches up with now */
    s->clock_base_ms = c > now || s->fixed_calendar ? c : now;
    s->mono_base_ms = monotonic_ms();
    s->virt = false;
}

/* Moves the clock forward to @p t (never back). */
static void advance_to(sim *s, int64_t t)
{
    int64_t c = sim_clock(s);
    if (t <= c)
        return;
    if (s->virt)
        s->clock_ms = t;
    else
        s->clock_base_ms += t - c;
}

/* ---- HAL --------------------------------------------------------------- */

static int hal_flash_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    sim *s = ctx;
    return flash_file_read(&s->flash, addr, buf, len);
}

static int hal_flash_program(void *ctx, uint32_t addr, const void *buf, uint32_t len)
{
    sim *s = ctx;
    return flash_file_program(&s->flash, addr, buf, len);
}

static int hal_flash_erase(void *ctx, uint32_t sector)
{
    sim *s = ctx;
    return flash_file_erase(&s->flash, sector);
}

static uint64_t hal_mono(void *ctx)
{
    sim *s = ctx;
    return (uint64_t)(sim_clock(s) - INT64_C(946684800000)); /* any origin */
}

static int64_t hal_rtc_get(void *ctx)
{
    sim *s = ctx;
    return sim_clock(s) + s->rtc_offset_ms;
}

static int hal_rtc_set(void *ctx, int64_t ms)
{
    sim *s = ctx;
    s->rtc_offset_ms = ms - sim_clock(s);
    return 0;
}

static int hal_send(void *ctx, const uint8_t *data, size_t len)
{
    sim *s = ctx;
    return s->send ? s->send(s->send_ctx, data, len) : 0;
}

static int hal_cart_read(void *ctx, pen_cartridge *out)
{
    sim *s = ctx;
    *out = s->cart;
    return 0;
}

static int hal_cart_write(void *ctx, uint32_t uses)
{
    sim *s = ctx;
    s->cart.uses = uses;
    return 0;
}

static int hal_sensors(void *ctx, pen_sensors *out)
{
    sim *s = ctx;
    *out = s->sensors;
    return 0;
}

/* ---- planted findings ---------------------------------------------------- */

static sim_first_use *first_use(sim *s, uint64_t cartridge)
{
    for (size_t i = 0; i < s->n_firsts; i++)
        if (s->firsts[i].cartridge == cartridge)
            return &s->firsts[i];
    return NULL;
}

static void add_first_use(sim *s, uint64_t cartridge, uint64_t seq, int64_t time_ms, bool foreign)
{
    if (first_use(s, cartridge))
        return;
    if (s->n_firsts == s->cap_firsts) {
        size_t cap = s->cap_firsts ? 2 * s->cap_firsts : 256;
        sim_first_use *n = realloc(s->firsts, cap * sizeof *n);
        if (!n)
            return; /* the ground truth then lacks this first use: the test says so */
        s->firsts = n;
        s->cap_firsts = cap;
    }
    s->firsts[s->n_firsts++] = (sim_first_use){ cartridge, seq, time_ms, foreign };
}

/* One line of planted.jsonl: kind, pen, seq and time of the record the audit
 * must name, then @p extra (",\"key\":value..." or ""). */
static void planted(sim *s, const char *kind, uint64_t seq, int64_t time_ms, const char *extra)
{
    if (!s->planted)
        return;
    fprintf(s->planted,
            "{\"kind\":\"%s\",\"pen\":\"%s\",\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64 "%s}\n",
            kind, s->serial, seq, time_ms, extra);
}

/* The ground truth of what the event being applied planted, from the records
 * the pen logs for it (their seqs are the pen's to give). */
static void plant_logged(sim *s, const pl_record *r)
{
    char extra[160];
    if (s->glitch_pending) { /* the first record after the jump is the one that went back */
        s->glitch_pending = false;
        planted(s, "clock_backwards", r->seq, r->time_ms, "");
    }
    switch (r->kind) {
    case PL_REC_CARTRIDGE_REFUSED:
        if (s->plant & PLANT_REUSE) {
            snprintf(extra, sizeof extra, ",\"cartridge\":\"%" PRIu64 "\"", r->cartridge_serial);
            planted(s, "refused", r->seq, r->time_ms, extra);
        }
        break;
    case PL_REC_CARTRIDGE_INSERTED:
        s->reuse_pending = (s->plant & (PLANT_REUSE | PLANT_CROSS_REUSE)) != 0;
        break;
    case PL_REC_TREATMENT_START: {
        s->treat_seq = r->seq;
        if (s->plant & PLANT_NO_CARTRIDGE)
            planted(s, "no_cartridge", r->seq, r->time_ms, "");
        if (s->plant & PLANT_OVER_LIMIT)
            planted(s, "out_of_limits", r->seq, r->time_ms, ",\"what\":\"duration\"");
        if (!(r->fields & PL_F_CARTRIDGE_SERIAL) || r->cartridge_serial == 0)
            break;
        const sim_first_use *f = first_use(s, r->cartridge_serial);
        if (s->reuse_pending && f) {
            /* the audit names the cartridge's treatments: its first one, and this */
            snprintf(extra, sizeof extra,
                     ",\"cartridge\":\"%" PRIu64 "\",\"first_pen\":\"%s\",\"first_seq\":%" PRIu64
                     ",\"first_time_ms\":%" PRId64,
                     r->cartridge_serial, f->foreign ? s->foreign_serial : s->serial, f->seq,
                     f->time_ms);
            planted(s, "reuse", r->seq, r->time_ms, extra);
        } else {
            add_first_use(s, r->cartridge_serial, r->seq, r->time_ms, false);
        }
        s->reuse_pending = false;
        break;
    }
    case PL_REC_DEPTH_CHANGED:
        if (s->plant & PLANT_DEPTH_OUT) {
            snprintf(extra, sizeof extra, ",\"what\":\"depth\",\"record\":%" PRIu64, r->seq);
            planted(s, "out_of_limits", s->treat_seq, r->time_ms, extra);
        }
        break;
    case PL_REC_SPEED_CHANGED:
        if (s->plant & PLANT_SPEED_OUT) {
            snprintf(extra, sizeof extra, ",\"what\":\"speed\",\"record\":%" PRIu64, r->seq);
            planted(s, "out_of_limits", s->treat_seq, r->time_ms, extra);
        }
        break;
    case PL_REC_CLOCK_SET:
        if (s->plant & PLANT_CLOCK_SET) {
            snprintf(extra, sizeof extra, ",\"delta_ms\":%" PRId64, r->clock_delta_ms);
            planted(s, "clock_jump", r->seq, r->time_ms, extra);
        }
        break;
    case PL_REC_SECURITY_EVENT:
        if (s->plant & PLANT_CONFIG_REFUSED)
            planted(s, "config_refused", r->seq, r->time_ms, "");
        break;
    case PL_REC_LOG_OVERFLOW:
        if (s->n_overflows == s->cap_overflows) {
            size_t cap = s->cap_overflows ? 2 * s->cap_overflows : 64;
            sim_overflow *n = realloc(s->overflows, cap * sizeof *n);
            if (!n)
                break;
            s->overflows = n;
            s->cap_overflows = cap;
        }
        s->overflows[s->n_overflows++] = (sim_overflow){ r->seq, r->dropped, r->time_ms };
        break;
    default: break;
    }
}

/* What a host pulling next will find that the pen's log store made, not the
 * usage model: the records dropped before any host acknowledged them (a gap)
 * and the LOG_OVERFLOW records still held. At the end of simulated days, and
 * of a run (the store may write a LOG_OVERFLOW while serving). */
static int plant_store(sim *s)
{
    if (!s->pen_up)
        return SIM_OK;
    pen_log *l = &s->pen->log;
    uint64_t first = pen_log_first_seq(l), acked = pen_log_acked_seq(l);
    char extra[80];
    if (first > acked && first > s->gap_planted_to) {
        uint64_t from = acked > s->gap_planted_to ? acked : s->gap_planted_to;
        snprintf(extra, sizeof extra, ",\"count\":%" PRIu64, first - from);
        planted(s, "gap", from, 0, extra);
        s->gap_planted_to = first;
    }
    for (size_t i = 0; i < s->n_overflows; i++) {
        const sim_overflow *o = &s->overflows[i];
        if (o->seq < first && o->seq >= acked)
            continue; /* dropped in turn: its count went on to a later LOG_OVERFLOW */
        snprintf(extra, sizeof extra, ",\"count\":%" PRIu64, o->dropped);
        planted(s, "overflow", o->seq, o->time_ms, extra);
    }
    s->n_overflows = 0;
    if (s->planted && fflush(s->planted) != 0)
        return fail(s, SIM_ERR, "planted.jsonl: %s", strerror(errno));
    return SIM_OK;
}

/* --reuse-from DIR: the other pen's serial and its cartridges' first treatments. */
static int load_foreign(sim *s, const char *dir)
{
    char path[600], line[1024];
    snprintf(path, sizeof path, "%s/sim.state", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(s, SIM_USAGE, "--reuse-from %s: %s", path, strerror(errno));
    char key[32], val[64];
    while (fscanf(f, "%31s %63s", key, val) == 2)
        if (strcmp(key, "serial") == 0 && strlen(val) < sizeof s->foreign_serial)
            memcpy(s->foreign_serial, val, strlen(val) + 1);
    fclose(f);
    snprintf(path, sizeof path, "%s/ground-truth.jsonl", dir);
    f = fopen(path, "r");
    if (!f)
        return fail(s, SIM_USAGE, "--reuse-from %s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        const char *c = strstr(line, "\"cartridge_serial\":");
        unsigned long long seq;
        long long t;
        if (!strstr(line, "\"kind\":\"treatment_start\"") || !c ||
            sscanf(line, "{\"seq\":%llu,\"time_ms\":%lld", &seq, &t) != 2)
            continue;
        uint64_t cart = strtoull(c + strlen("\"cartridge_serial\":"), NULL, 10);
        if (first_use(s, cart))
            continue;
        add_first_use(s, cart, seq, t, true);
        uint64_t *n = realloc(s->foreign, (s->n_foreign + 1) * sizeof *n);
        if (!n) {
            fclose(f);
            return fail(s, SIM_ERR, "out of memory");
        }
        s->foreign = n;
        s->foreign[s->n_foreign++] = cart;
    }
    fclose(f);
    if (!s->foreign_serial[0] || s->n_foreign == 0)
        return fail(s, SIM_USAGE, "--reuse-from %s: no pen with treatments there", dir);
    return SIM_OK;
}

static void hal_logged(void *ctx, const pl_record *r)
{
    sim *s = ctx;
    plant_logged(s, r);
    const char *name = pl_record_kind_name(r->kind);
    s->gt_records++;
    if (!s->gt)
        return;
    fprintf(s->gt, "{\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64 ",\"kind\":\"%s\"", r->seq,
            r->time_ms, name ? name : "unknown");
    for (uint32_t m = r->fields; m; m &= m - 1) {
        uint32_t bit = m & (~m + 1u);
        uint64_t v = pl_record_get(r, bit);
        if (bit == PL_F_CLOCK_DELTA_MS)
            fprintf(s->gt, ",\"%s\":%" PRId64, pl_record_field_name(bit), (int64_t)v);
        else
            fprintf(s->gt, ",\"%s\":%" PRIu64, pl_record_field_name(bit), v);
    }
    fputs("}\n", s->gt);
}

/* ---- state file -------------------------------------------------------- */

static int state_path(const sim *s, const char *name, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s/%s", s->dir, name);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

static int load_state(sim *s, bool *exists)
{
    char path[600], key[32], val[64];
    FILE *f;
    *exists = false;
    if (state_path(s, "sim.state", path, sizeof path) != 0)
        return -1;
    f = fopen(path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    *exists = true;
    while (fscanf(f, "%31s %63s", key, val) == 2) {
        if (strcmp(key, "serial") == 0 && strlen(val) < sizeof s->serial)
            memcpy(s->serial, val, strlen(val) + 1);
        else if (strcmp(key, "sector_size") == 0)
            s->sector_size = (uint32_t)strtoul(val, NULL, 10);
        else if (strcmp(key, "sector_count") == 0)
            s->sector_count = (uint32_t)strtoul(val, NULL, 10);
        else if (strcmp(key, "batch") == 0)
            s->batch = (uint32_t)strtoul(val, NULL, 10);
        else if (strcmp(key, "rtc_offset_ms") == 0)
            s->rtc_offset_ms = strtoll(val, NULL, 10);
        else if (strcmp(key, "clock_ms") == 0)
            s->clock_ms = strtoll(val, NULL, 10);
        else if (strcmp(key, "model_end_ms") == 0)
            s->model_end_ms = strtoll(val, NULL, 10);
        else if (strcmp(key, "runs") == 0)
            s->runs = (uint32_t)strtoul(val, NULL, 10);
        else if (strcmp(key, "fixed_calendar") == 0)
            s->fixed_calendar = strcmp(val, "1") == 0;
        else if (strcmp(key, "gap_planted_to") == 0)
            s->gap_planted_to = strtoull(val, NULL, 10);
    }
    fclose(f);
    return 0;
}

static int save_state(sim *s)
{
    char path[600], tmp[610];
    FILE *f;
    if (state_path(s, "sim.state", path, sizeof path) != 0)
        return -1;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f,
            "serial %s\nsector_size %" PRIu32 "\nsector_count %" PRIu32 "\nbatch %" PRIu32
            "\nrtc_offset_ms %" PRId64 "\nclock_ms %" PRId64 "\nmodel_end_ms %" PRId64
            "\nruns %" PRIu32 "\nfixed_calendar %d\ngap_planted_to %" PRIu64 "\n",
            s->serial, s->sector_size, s->sector_count, s->batch, s->rtc_offset_ms, sim_clock(s),
            s->model_end_ms, s->runs, s->fixed_calendar ? 1 : 0, s->gap_planted_to);
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path);
}

sim_identity *sim_identity_of(void *hal_ctx)
{
    return &((sim *)hal_ctx)->id;
}

/* ---- boot -------------------------------------------------------------- */

int sim_check(sim *s, pen_status st)
{
    if (st == PEN_OK || st == PEN_REFUSED)
        return SIM_OK;
    if (s->flash.dead)
        return fail(s, SIM_POWER_CUT, "power cut after %" PRIu64 " flash operations", s->flash.ops);
    return fail(s, SIM_ERR, "device core: %s", pen_status_str(st));
}

static void add_stats(pen_log_stats *t, const pen_log_stats *a)
{
    t->records += a->records;
    t->chunks += a->chunks;
    t->chunk_bytes += a->chunk_bytes;
    t->compactions += a->compactions;
    t->encodes += a->encodes;
    t->ring_erases += a->ring_erases;
    t->stage_erases += a->stage_erases;
    t->meta_erases += a->meta_erases;
    t->meta_writes += a->meta_writes;
    t->dropped += a->dropped;
}

static int boot(sim *s)
{
    if (s->pen_up) {
        add_stats(&s->log_total, &s->pen->log.stats);
        pen_fini(s->pen);
    }
    s->pen_up = false;
    pen_status st = pen_init(s->pen, &s->hal, &s->popts);
    if (st != PEN_OK)
        return sim_check(s, st);
    s->pen_up = true;
    s->reboots++;
    return SIM_OK;
}

int sim_open(sim *s, const sim_opts *o)
{
    char path[600];
    bool exists;
    int rc;

    memset(s, 0, sizeof *s);
    s->o = *o;
    s->virt = true;
    if (!o->state_dir || snprintf(s->dir, sizeof s->dir, "%s", o->state_dir) >= (int)sizeof s->dir)
        return fail(s, SIM_USAGE, "state directory name missing or too long");
    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST)
        return fail(s, SIM_ERR, "%s: %s", s->dir, strerror(errno));
    if (load_state(s, &exists) != 0)
        return fail(s, SIM_ERR, "%s/sim.state: %s", s->dir, strerror(errno));
    if (exists) {
        if (o->serial && strcmp(o->serial, s->serial) != 0)
            return fail(s, SIM_USAGE, "%s holds pen %s, not %s", s->dir, s->serial, o->serial);
    } else {
        if (o->serial && strlen(o->serial) < sizeof s->serial)
            memcpy(s->serial, o->serial, strlen(o->serial) + 1);
        else if (o->serial)
            return fail(s, SIM_USAGE, "serial must be 1..%u characters", PEN_SERIAL_MAX);
        else
            snprintf(s->serial, sizeof s->serial, "PLS%07" PRIu64, o->seed % 10000000u);
        s->sector_size = o->sector_size;
        s->sector_count = o->sector_size ? o->flash_size / o->sector_size : 0;
        s->batch = o->batch;
        s->clock_ms = 0;
    }
    if (strlen(s->serial) == 0 || strlen(s->serial) > PEN_SERIAL_MAX)
        return fail(s, SIM_USAGE, "serial must be 1..%u characters", PEN_SERIAL_MAX);
    if (s->batch == 0 || s->batch > PL_CHUNK_MAX_RECORDS)
        return fail(s, SIM_USAGE, "batch must be 1..%u records", PL_CHUNK_MAX_RECORDS);
    if (s->sector_size < 512 || s->sector_size > 65536 || s->sector_size % 8 != 0 ||
        s->sector_count < pen_flash_min_sectors(s->sector_size, s->batch))
        return fail(s, SIM_USAGE,
                    "flash geometry unusable: %" PRIu32 " sectors of %" PRIu32
                    " bytes (sectors: 512..65536 bytes, a multiple of 8; at least %" PRIu32
                    " of them)",
                    s->sector_count, s->sector_size,
                    pen_flash_min_sectors(s->sector_size ? s->sector_size : 4096, s->batch));
    if (o->set_clock_offset)
        s->rtc_offset_ms = o->clock_offset_ms;
    if (o->start_ms)
        s->fixed_calendar = true; /* kept in sim.state: later runs stay off the calendar */
    s->runs++;

    if (state_path(s, "flash.bin", path, sizeof path) != 0 ||
        flash_file_open(&s->flash, path, s->sector_size, s->sector_count) != 0)
        return fail(s, SIM_ERR, "%s/flash.bin: %s", s->dir, strerror(errno));
    s->flash.cut_after = o->power_cut_after;
    s->flash.rng ^= o->seed;
    if (state_path(s, "ground-truth.jsonl", path, sizeof path) != 0)
        return fail(s, SIM_ERR, "path too long");
    s->gt = fopen(path, "a");
    if (!s->gt)
        return fail(s, SIM_ERR, "%s: %s", path, strerror(errno));
    if (state_path(s, "planted.jsonl", path, sizeof path) != 0 || !(s->planted = fopen(path, "a")))
        return fail(s, SIM_ERR, "%s/planted.jsonl: %s", s->dir, strerror(errno));
    if (o->reuse_from) {
        rc = load_foreign(s, o->reuse_from);
        if (rc != SIM_OK)
            return rc;
    }
    if (o->replace_key && exists) {
        /* a pen replaced under the same serial: a new device key, the same log */
        if (state_path(s, "device.key", path, sizeof path) != 0 ||
            (unlink(path) != 0 && errno != ENOENT))
            return fail(s, SIM_ERR, "%s/device.key: %s", s->dir, strerror(errno));
    }

    s->hal.ctx = s;
    s->hal.flash_sector_size = s->sector_size;
    s->hal.flash_sector_count = s->sector_count;
    s->hal.flash_read = hal_flash_read;
    s->hal.flash_program = hal_flash_program;
    s->hal.flash_erase = hal_flash_erase;
    s->hal.mono_ms = hal_mono;
    s->hal.rtc_get_ms = hal_rtc_get;
    s->hal.rtc_set_ms = hal_rtc_set;
    s->hal.usb_send = hal_send;
    s->hal.cartridge_read = hal_cart_read;
    s->hal.cartridge_write_uses = hal_cart_write;
    s->hal.sensors_read = hal_sensors;
    s->hal.record_logged = hal_logged;
    char why[300];
    int idrc = sim_identity_open(&s->id, s->dir, !exists, o->config_keys, o->config_key_count, why,
                                 sizeof why);
    if (idrc != 0)
        return fail(s, idrc == -2 ? SIM_USAGE : SIM_ERR, "%s", why);
    s->id.sign_with_other_key = o->sign_with_other_key;
    sim_identity_hal(&s->id, &s->hal);
    pen_opts_default(&s->popts);
    s->popts.serial = s->serial;
    s->popts.firmware_version = "0.1.0-sim";
    s->popts.protocol_major = o->protocol_major;
    s->popts.batch_records = s->batch;
    s->popts.pull_max_chunks = o->pull_window;

    s->pen = malloc(sizeof *s->pen);
    if (!s->pen)
        return fail(s, SIM_ERR, "out of memory");
    /* The clock starts where it stopped; at the first simulated day when
     * days are simulated (they lie in the past, or go on from the last
     * simulated day of a pen off the calendar), else now. */
    if (o->simulate_days > 0) {
        int64_t start = o->start_ms;
        if (start == 0 && s->fixed_calendar)
            start = s->model_end_ms ? s->model_end_ms : s->clock_ms / DAY_MS * DAY_MS;
        if (start == 0)
            start = (realtime_ms() / DAY_MS - (int64_t)o->simulate_days) * DAY_MS;
        if (s->model_end_ms && start < s->model_end_ms)
            start = (s->model_end_ms + DAY_MS - 1) / DAY_MS * DAY_MS;
        s->sim_start_ms = start;
        s->clock_ms = s->clock_ms > start ? s->clock_ms : start;
    } else if (!s->fixed_calendar) {
        int64_t now = realtime_ms();
        s->clock_ms = s->clock_ms > now ? s->clock_ms : now;
    }
    s->virt = true;
    s->sensors.depth_um = 500;
    s->sensors.speed_sps = 100;
    rc = boot(s);
    if (rc != SIM_OK)
        return rc;
    if (o->replace_key && exists)
        planted(s, "key_changed", pen_log_first_seq(&s->pen->log), 0, "");
    note(s,
         "penlink-sim: pen %s, %" PRIu32 " sectors of %" PRIu32 " bytes, log %" PRIu64 "..%" PRIu64
         "\n",
         s->serial, s->sector_count, s->sector_size, pen_log_first_seq(&s->pen->log),
         pen_log_next_seq(&s->pen->log));

    if (o->max_uses && pen_get_config(s->pen)->max_cartridge_uses != o->max_uses) {
        pen_config_change chg;
        pen_cfg_error err;
        memset(&chg, 0, sizeof chg);
        chg.set = PEN_CFG_MAX_USES;
        chg.v.max_cartridge_uses = o->max_uses;
        pen_status st = pen_set_config(s->pen, 0, &chg, &err);
        if (st == PEN_ERR_INVALID)
            return fail(s, SIM_USAGE, "--max-uses: %s", err.message);
        rc = sim_check(s, st);
        if (rc != SIM_OK)
            return rc;
    }
    return SIM_OK;
}

/* ---- events ------------------------------------------------------------ */

/* The model's decisions follow the pen's configuration. */
static void sync_model(sim *s)
{
    const pen_config *c = pen_get_config(s->pen);
    s->model.p.depth_min_um = c->depth_min_um;
    s->model.p.depth_max_um = c->depth_max_um;
    s->model.p.depth_step_um = s->pen->limits.depth_step_um;
    s->model.p.speed_min_sps = c->speed_min_sps;
    s->model.p.speed_max_sps = c->speed_max_sps;
    s->model.p.max_cartridge_uses = c->max_cartridge_uses;
    s->model.p.max_treatment_s = c->max_treatment_s;
}

static void model_start(sim *s, int64_t start_ms)
{
    usage_params p;
    usage_params_default(&p);
    p.seed = s->o.seed + (uint64_t)s->runs * 0x9E3779B97F4A7C15ull;
    p.start_ms = start_ms;
    p.reuse_permille = s->o.reuse_permille;
    p.fault_permille = s->o.fault_permille;
    p.power_cycle_permille = s->o.power_cycle_permille;
    p.over_limit_permille = s->o.over_limit_permille;
    p.no_cartridge_permille = s->o.no_cartridge_permille;
    p.depth_out_permille = s->o.depth_out_permille;
    p.speed_out_permille = s->o.speed_out_permille;
    p.clock_glitch_permille = s->o.clock_glitch_permille;
    p.clock_set_permille = s->o.clock_set_permille;
    p.config_refused_permille = s->o.config_refused_permille;
    p.cross_reuse_permille = s->o.cross_reuse_permille;
    p.foreign = s->foreign;
    p.n_foreign = s->n_foreign;
    usage_model_init(&s->model, &p);
    s->model_ready = true;
}

/* A planted fault the firmware would never commit: the records a faulty pen
 * logs (a clamp that failed, a treatment let start with no cartridge), or
 * what a host does to it (a clock set by hours, a refused configuration,
 * logged as the protocol handler logs them). *@p done is false for an event
 * that is not one. */
static pen_status apply_planted(sim *s, const pl_record *ev, bool *done)
{
    pen *p = s->pen;
    pl_record r;
    pen_status st;
    *done = true;
    memset(&r, 0, sizeof r);
    r.kind = ev->kind;
    r.fields = pl_record_kind_fields(ev->kind);
    if (ev->kind == PL_REC_TREATMENT_START && (s->plant & PLANT_NO_CARTRIDGE)) {
        s->sensors.depth_um = ev->depth_um;
        s->sensors.speed_sps = ev->speed_sps;
        p->cart_ok = true; /* the firmware's check that failed */
        p->cart_serial = 0;
        st = pen_treatment_start(p);
        p->cart_ok = false;
        return st;
    }
    if (ev->kind == PL_REC_DEPTH_CHANGED && (s->plant & PLANT_DEPTH_OUT)) {
        r.depth_um = ev->depth_um;
        return p->treating ? pen_log_now(p, &r) : PEN_ERR_STATE;
    }
    if (ev->kind == PL_REC_SPEED_CHANGED && (s->plant & PLANT_SPEED_OUT)) {
        r.speed_sps = ev->speed_sps;
        return p->treating ? pen_log_now(p, &r) : PEN_ERR_STATE;
    }
    if (ev->kind == PL_REC_CLOCK_SET) {
        int64_t old = p->hal->rtc_get_ms(p->hal->ctx);
        p->hal->rtc_set_ms(p->hal->ctx, old + ev->clock_delta_ms);
        r.clock_delta_ms = ev->clock_delta_ms;
        return pen_log_now(p, &r);
    }
    if (ev->kind == PL_REC_SECURITY_EVENT) {
        r.fault_code = ev->fault_code;
        return pen_log_now(p, &r);
    }
    *done = false;
    return PEN_OK;
}

static int apply(sim *s, const pl_record *ev, bool may_reboot)
{
    pen *p = s->pen;
    pen_status st = PEN_OK;
    bool done;

    s->events++;
    if (s->plant & PLANT_CLOCK_GLITCH) { /* the clock jumps before this event */
        s->rtc_offset_ms += s->model.glitch_ms;
        s->glitch_pending = true;
    }
    st = apply_planted(s, ev, &done);
    if (done)
        ev = NULL;
    switch (ev ? ev->kind : 0) {
    case PL_REC_POWER_ON: st = pen_power_on(p); break;
    case PL_REC_POWER_OFF:
        st = pen_power_off(p);
        if (st == PEN_OK && may_reboot) {
            int rc = boot(s); /* the core restarts from flash at the next power on */
            if (rc != SIM_OK)
                return rc;
        }
        break;
    case PL_REC_CARTRIDGE_INSERTED:
    case PL_REC_CARTRIDGE_REFUSED:
        s->cart.serial = ev->cartridge_serial;
        s->cart.uses = ev->cartridge_uses ? ev->cartridge_uses - 1 : 0;
        st = pen_cartridge_inserted(p);
        break;
    case PL_REC_CARTRIDGE_REMOVED: st = pen_cartridge_removed(p); break;
    case PL_REC_TREATMENT_START:
        s->sensors.depth_um = ev->depth_um;
        s->sensors.speed_sps = ev->speed_sps;
        st = pen_treatment_start(p);
        break;
    case PL_REC_TREATMENT_END:
        s->sensors.strokes += ev->strokes;
        st = pen_treatment_end(p);
        break;
    case PL_REC_DEPTH_CHANGED:
        s->sensors.depth_um = ev->depth_um;
        st = pen_depth_changed(p);
        break;
    case PL_REC_SPEED_CHANGED:
        s->sensors.speed_sps = ev->speed_sps;
        st = pen_speed_changed(p);
        break;
    case PL_REC_FAULT: st = pen_fault(p, ev->fault_code); break;
    default: break;
    }
    if (st == PEN_ERR_STATE || st == PEN_ERR_HAL) {
        s->ignored++; /* the pen would not act on it (e.g. no cartridge accepted) */
        return SIM_OK;
    }
    return sim_check(s, st);
}

static int settle(sim *s)
{
    while (pen_poll(s->pen))
        ;
    return s->flash.dead ? sim_check(s, PEN_ERR_FLASH) : SIM_OK;
}

int sim_simulate(sim *s)
{
    pl_record ev;
    uint32_t days = s->o.simulate_days;
    int64_t start = s->sim_start_ms;
    int rc = SIM_OK;

    if (days == 0)
        return SIM_OK;
    int64_t end = start + (int64_t)days * DAY_MS;
    s->virt = true;
    model_start(s, start);
    note(s, "penlink-sim: simulating %" PRIu32 " days from %" PRId64 "\n", days, start);
    for (;;) {
        sync_model(s);
        usage_model_next(&s->model, &ev);
        if (ev.time_ms >= end)
            break;
        advance_to(s, ev.time_ms);
        s->plant = s->model.plant;
        rc = apply(s, &ev, true);
        s->plant = 0;
        if (rc == SIM_OK)
            rc = settle(s);
        if (rc != SIM_OK)
            break;
    }
    s->model_end_ms = end;
    if (rc == SIM_OK)
        rc = plant_store(s);
    fflush(s->gt);
    note(s,
         "penlink-sim: %" PRIu64 " events, %" PRIu64 " records committed, log %" PRIu64 "..%" PRIu64
         "\n",
         s->events, s->gt_records, pen_log_first_seq(&s->pen->log), pen_log_next_seq(&s->pen->log));
    return rc;
}

int sim_step(sim *s)
{
    pl_record ev;
    if (!s->model_ready)
        model_start(s, s->model_end_ms ? s->model_end_ms : sim_clock(s) / DAY_MS * DAY_MS);
    sync_model(s);
    usage_model_next(&s->model, &ev);
    advance_to(s, ev.time_ms);
    s->plant = s->model.plant;
    int rc = apply(s, &ev, false);
    s->plant = 0;
    fflush(s->gt);
    return rc;
}

void sim_set_sender(sim *s, int (*send)(void *ctx, const uint8_t *data, size_t len), void *ctx)
{
    s->send = send;
    s->send_ctx = ctx;
}

int sim_print_stats(sim *s, FILE *out)
{
    pen_log_usage u;
    pen_log *l = &s->pen->log;
    pen_status st = pen_log_usage_scan(l, &u);
    if (st != PEN_OK)
        return sim_check(s, st);
    uint64_t held = pen_log_next_seq(l) - pen_log_first_seq(l);
    fprintf(out, "pen             %s\n", s->serial);
    fprintf(out,
            "records         %" PRIu64 " held (seq %" PRIu64 "..%" PRIu64 "), acked below %" PRIu64
            "\n",
            held, pen_log_first_seq(l), pen_log_next_seq(l), pen_log_acked_seq(l));
    fprintf(out, "chunks          %" PRIu64 " holding %" PRIu64 " records\n", u.chunks,
            u.chunk_records);
    if (u.chunk_records) {
        fprintf(out, "chunk bytes     %" PRIu64 " with headers: %.2f B/record\n", u.chunk_bytes,
                (double)u.chunk_bytes / (double)u.chunk_records);
        fprintf(out,
                "data bytes      %" PRIu64 " compressed: %.2f B/record (raw RecordBatch %.2f)\n",
                u.data_bytes, (double)u.data_bytes / (double)u.chunk_records,
                (double)u.raw_bytes / (double)u.chunk_records);
        fprintf(out,
                "ring sectors    %" PRIu32 " of %" PRIu32 " (%" PRIu32 " B) in use: %.2f "
                "B/record\n",
                u.ring_sectors_used, u.ring_sectors, u.sector_size,
                (double)u.ring_sectors_used * u.sector_size / (double)u.chunk_records);
    }
    fprintf(out,
            "staged          %" PRIu64 " records in %" PRIu64 " bytes of staging (%u B each)\n",
            u.staged_records, u.staging_bytes, PEN_SLOT_SIZE);
    if (held)
        fprintf(out, "flash per record %.2f B (chunks + staging, all held records)\n",
                (double)(u.chunk_bytes + u.staging_bytes) / (double)held);
    pen_log_stats t = s->log_total;
    add_stats(&t, &l->stats);
    fprintf(out,
            "this run        %" PRIu64 " events, %" PRIu64 " records, %" PRIu64 " boots, %" PRIu64
            " compactions, %" PRIu64 " encodes, %" PRIu64 " chunks, %" PRIu64 " dropped\n",
            s->events, s->gt_records, s->reboots, t.compactions, t.encodes, t.chunks, t.dropped);
    return SIM_OK;
}

int sim_close(sim *s)
{
    int rc = SIM_OK;
    if (s->pen && s->pen_up && !s->flash.dead)
        rc = plant_store(s); /* a LOG_OVERFLOW the pen wrote while serving */
    if (s->pen) {
        if (s->pen_up)
            pen_fini(s->pen);
        free(s->pen);
        s->pen = NULL;
    }
    if (s->gt && fclose(s->gt) != 0)
        rc = fail(s, SIM_ERR, "ground truth: %s", strerror(errno));
    s->gt = NULL;
    if (s->planted && fclose(s->planted) != 0)
        rc = fail(s, SIM_ERR, "planted.jsonl: %s", strerror(errno));
    s->planted = NULL;
    free(s->firsts);
    free(s->foreign);
    free(s->overflows);
    s->firsts = NULL;
    s->foreign = NULL;
    s->overflows = NULL;
    if (s->dir[0] && s->sector_size && save_state(s) != 0)
        rc = fail(s, SIM_ERR, "%s/sim.state: %s", s->dir, strerror(errno));
    if (s->flash.mem) {
        if (flash_file_sync(&s->flash) != 0)
            rc = fail(s, SIM_ERR, "flash.bin: %s", strerror(errno));
        flash_file_close(&s->flash);
    }
    return rc;
}
