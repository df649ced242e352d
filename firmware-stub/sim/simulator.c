/*
 * The simulated pen: pen_hal over a file-backed flash and simulated
 * hardware, the usage model turned into calls of the device core's entry
 * points (the core decides what it logs), and the ground truth: every record
 * the core commits, as one JSON line.
 *
 * The ground truth and the flash agree after a SIGKILL at any point. The
 * core programs a record's staging slot, then reports the record
 * (record_logged); the slot program stays pending in flash_file until the
 * next flash operation, and every flash operation first writes the truth
 * lines before it. So a slot reaches flash.bin only after its line reached
 * ground-truth.jsonl, and a kill leaves at worst a line (or part of one)
 * whose slot never arrived: sim_open() cuts it once the pen has booted and
 * said where its log ends (sim_truth_trim()).
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
#include "sim_store.h"
#include "simulator.h"
#include "state_dir.h"

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

int sim_flush(sim *s)
{
    if (sim_truth_flush(s) != 0)
        return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_TRUTH_FILE, strerror(s->gt_errno));
    if (s->planted && fflush(s->planted) != 0)
        return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_PLANTED_FILE, strerror(errno));
    if (flash_file_flush(&s->flash) != 0)
        return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_FLASH_FILE, strerror(errno));
    return SIM_OK;
}

/* ---- HAL --------------------------------------------------------------- */

static int hal_flash_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    sim *s = ctx;
    return flash_file_read(&s->flash, addr, buf, len);
}

/* Truth first: the operation before this one (perhaps the slot of the
 * record just reported) reaches flash.bin only after the record's line. */
static int hal_flash_program(void *ctx, uint32_t addr, const void *buf, uint32_t len)
{
    sim *s = ctx;
    if (sim_truth_flush(s) != 0)
        return -1;
    return flash_file_program(&s->flash, addr, buf, len);
}

static int hal_flash_erase(void *ctx, uint32_t sector)
{
    sim *s = ctx;
    if (sim_truth_flush(s) != 0)
        return -1;
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

/* The RTC is part of the pen's state: kept in sim.state before the core logs
 * the change. */
static int hal_rtc_set(void *ctx, int64_t ms)
{
    sim *s = ctx;
    int64_t old = s->rtc_offset_ms;
    s->rtc_offset_ms = ms - sim_clock(s);
    if (sim_state_save(s, sim_clock(s)) != 0) {
        s->rtc_offset_ms = old;
        return -1;
    }
    return 0;
}

/* What the host is told is on flash.bin first (a record in a chunk, an
 * acknowledgement): a kill after this frame cannot take it back. */
static int hal_send(void *ctx, const uint8_t *data, size_t len)
{
    sim *s = ctx;
    if (sim_flush(s) != SIM_OK)
        return -1;
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

/* A serial as the text of a JSON string: a quote, a backslash and control
 * characters escaped (a serial may hold any printable byte). */
static void json_text(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && o + 7 <= cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20 || *p == 0x7f) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", *p);
        } else {
            out[o++] = (char)*p;
        }
    }
    out[o] = '\0';
}

/* One line of planted.jsonl: kind, pen, seq and time of the record the audit
 * must name, then @p extra (",\"key\":value..." or ""). */
static void planted(sim *s, const char *kind, uint64_t seq, int64_t time_ms, const char *extra)
{
    char serial[6 * PEN_SERIAL_MAX + 1];
    if (!s->planted)
        return;
    json_text(s->serial, serial, sizeof serial);
    fprintf(s->planted,
            "{\"kind\":\"%s\",\"pen\":\"%s\",\"seq\":%" PRIu64 ",\"time_ms\":%" PRId64 "%s}\n",
            kind, serial, seq, time_ms, extra);
}

static int plant_store(sim *s);

int sim_plant_store(sim *s)
{
    return plant_store(s);
}

int sim_plant(sim *s, const char *kind, uint64_t seq, uint64_t count)
{
    char extra[40];
    snprintf(extra, sizeof extra, ",\"count\":%" PRIu64, count);
    planted(s, kind, seq, 0, extra);
    if (s->planted && fflush(s->planted) != 0)
        return fail(s, SIM_ERR, "planted.jsonl: %s", strerror(errno));
    return SIM_OK;
}

/* The ground truth of what the event being applied planted, from the records
 * the pen logs for it (their seqs are the pen's to give). */
static void plant_logged(sim *s, const pl_record *r)
{
    char extra[160 + 6 * PEN_SERIAL_MAX];
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
            char first_pen[6 * PEN_SERIAL_MAX + 1];
            json_text(f->foreign ? s->foreign_serial : s->serial, first_pen, sizeof first_pen);
            snprintf(extra, sizeof extra,
                     ",\"cartridge\":\"%" PRIu64 "\",\"first_pen\":\"%s\",\"first_seq\":%" PRIu64
                     ",\"first_time_ms\":%" PRId64,
                     r->cartridge_serial, first_pen, f->seq, f->time_ms);
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
    int rc = sim_state_serial(dir, s->foreign_serial, sizeof s->foreign_serial);
    if (rc != 0)
        return fail(s, SIM_USAGE, "--reuse-from %s/%s: %s", dir, SIM_STATE_FILE,
                    rc == -2 ? "not a whole penlink-sim state" : strerror(errno));
    snprintf(path, sizeof path, "%s/%s", dir, SIM_TRUTH_FILE);
    FILE *f = fopen(path, "r");
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
    sim_truth_append(s, r);
}

/* Identify: a real pen blinks and beeps; the simulator says so on stderr
 * (always, not only with -v: it is the pen's visible answer). */
static int hal_identify(void *ctx, uint32_t seconds)
{
    sim *s = ctx;
    if (seconds)
        fprintf(stderr, "penlink-sim: identify: pen %s blinks and beeps for %" PRIu32 " s\n",
                s->serial, seconds);
    else
        fprintf(stderr, "penlink-sim: identify: pen %s stops signalling\n", s->serial);
    fflush(stderr);
    return 0;
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
    if (s->gt_errno) /* the flash refused to go on without its ground truth */
        return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_TRUTH_FILE, strerror(s->gt_errno));
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

/* Takes the state directory's lock: one simulator per pen. */
static int lock_dir(sim *s)
{
    long holder;
    s->lock_fd = sd_lock(s->dir, &holder);
    if (s->lock_fd == -2 && holder)
        return fail(s, SIM_BUSY,
                    "%s is in use by another penlink-sim (pid %ld): one simulator per state "
                    "directory",
                    s->dir, holder);
    if (s->lock_fd == -2)
        return fail(s, SIM_BUSY,
                    "%s is in use by another penlink-sim: one simulator per state directory",
                    s->dir);
    if (s->lock_fd < 0)
        return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_LOCK_FILE, strerror(errno));
    s->locked = true;
    return SIM_OK;
}

/* Loads sim.state, or fills a new state from the options; checks both. */
static int load_or_new_state(sim *s, const sim_opts *o, bool *exists)
{
    char path[600];
    int rc = sim_state_load(s, exists);
    if (rc == -2)
        return fail(s, SIM_ERR,
                    "%s/%s: not a whole penlink-sim state (serial, sector_size, sector_count "
                    "and batch are required)",
                    s->dir, SIM_STATE_FILE);
    if (rc != 0)
        return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_STATE_FILE, strerror(errno));
    if (*exists) {
        if (o->serial && strcmp(o->serial, s->serial) != 0)
            return fail(s, SIM_USAGE, "%s holds pen %s, not %s", s->dir, s->serial, o->serial);
    } else {
        /* sim.state is written before the flash image is made: an image
         * without it belongs to no pen this simulator knows */
        if (sim_path(s, SIM_FLASH_FILE, path, sizeof path) == 0 && access(path, F_OK) == 0)
            return fail(s, SIM_ERR,
                        "%s holds %s but no %s: whose flash it is is lost (a penlink-sim before "
                        "this one wrote %s only on a clean exit); use a new directory",
                        s->dir, SIM_FLASH_FILE, SIM_STATE_FILE, SIM_STATE_FILE);
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
    return SIM_OK;
}

/*
 * The pen's files, in an order a kill can interrupt anywhere: the identity
 * (device.key, config-keys), then sim.state, the commit point of a new
 * state, then the flash image, the ground truth and the planted findings.
 */
static int open_files(sim *s, const sim_opts *o, bool exists)
{
    char path[600], why[300];
    if (o->replace_key && exists) {
        /* a pen replaced under the same serial: a new device key, the same log */
        if (sim_path(s, "device.key", path, sizeof path) != 0 ||
            (unlink(path) != 0 && errno != ENOENT))
            return fail(s, SIM_ERR, "%s/device.key: %s", s->dir, strerror(errno));
    }
    int idrc = sim_identity_open(&s->id, s->dir, !exists, o->config_keys, o->config_key_count, why,
                                 sizeof why);
    if (idrc != 0)
        return fail(s, idrc == -2 ? SIM_USAGE : SIM_ERR, "%s", why);
    s->id.sign_with_other_key = o->sign_with_other_key;
    if (sim_state_save(s, sim_clock(s)) != 0)
        return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_STATE_FILE, strerror(errno));
    s->state_saved = true;

    if (sim_path(s, SIM_FLASH_FILE, path, sizeof path) != 0 ||
        flash_file_open(&s->flash, path, s->sector_size, s->sector_count) != 0)
        return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_FLASH_FILE, strerror(errno));
    s->flash.cut_after = o->power_cut_after;
    s->flash.rng ^= o->seed;
    if (sim_path(s, SIM_TRUTH_FILE, path, sizeof path) != 0)
        return fail(s, SIM_ERR, "path too long");
    s->gt = fopen(path, "a");
    if (!s->gt)
        return fail(s, SIM_ERR, "%s: %s", path, strerror(errno));
    if (sim_truth_trim(s, UINT64_MAX) != 0) /* a line torn by a kill */
        return fail(s, SIM_ERR, "%s: %s", path, strerror(s->gt_errno));
    if (sim_path(s, SIM_PLANTED_FILE, path, sizeof path) != 0)
        return fail(s, SIM_ERR, "path too long");
    s->planted = fopen(path, "a");
    if (!s->planted)
        return fail(s, SIM_ERR, "%s: %s", path, strerror(errno));
    return SIM_OK;
}

static void hal_setup(sim *s)
{
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
    s->hal.identify = hal_identify;
    sim_identity_hal(&s->id, &s->hal);
}

/*
 * The clock starts where it stopped, and never before the pen's last
 * record (@p last_ms, on the simulator's clock: sim.state's clock is only
 * as recent as its last save); at the first simulated day when days are
 * simulated (they lie in the past, after the last simulated day and the
 * last record; for a pen off the calendar, they go on from its last
 * simulated day), else now (a pen off the calendar: where it stopped).
 */
static void place_clock(sim *s, const sim_opts *o, int64_t last_ms)
{
    if (last_ms != SIM_NO_TIME && s->clock_ms < last_ms)
        s->clock_ms = last_ms;
    if (o->simulate_days > 0) {
        int64_t start = o->start_ms;
        if (start == 0 && s->fixed_calendar) /* a pen off the calendar goes on from its days */
            start = s->model_end_ms ? s->model_end_ms : s->clock_ms / DAY_MS * DAY_MS;
        if (start == 0)
            start = (realtime_ms() / DAY_MS - (int64_t)o->simulate_days) * DAY_MS;
        if (s->model_end_ms && start < s->model_end_ms)
            start = (s->model_end_ms + DAY_MS - 1) / DAY_MS * DAY_MS;
        if (last_ms != SIM_NO_TIME && start <= last_ms)
            start = (last_ms / DAY_MS + 1) * DAY_MS;
        s->sim_start_ms = start;
        s->clock_ms = s->clock_ms > start ? s->clock_ms : start;
    } else if (!s->fixed_calendar) {
        int64_t now = realtime_ms();
        s->clock_ms = s->clock_ms > now ? s->clock_ms : now;
    }
    s->virt = true;
}

static int apply_max_uses(sim *s, uint32_t max_uses)
{
    pen_config_change chg;
    pen_cfg_error err;
    if (!max_uses || pen_get_config(s->pen)->max_cartridge_uses == max_uses)
        return SIM_OK;
    memset(&chg, 0, sizeof chg);
    chg.set = PEN_CFG_MAX_USES;
    chg.v.max_cartridge_uses = max_uses;
    pen_status st = pen_set_config(s->pen, 0, &chg, &err);
    if (st == PEN_ERR_INVALID)
        return fail(s, SIM_USAGE, "--max-uses: %s", err.message);
    return sim_check(s, st);
}

int sim_open(sim *s, const sim_opts *o)
{
    bool exists;
    int rc;

    memset(s, 0, sizeof *s);
    s->o = *o;
    s->virt = true;
    s->lock_fd = -1;
    s->gt_last_ms = SIM_NO_TIME;
    if (!o->state_dir || snprintf(s->dir, sizeof s->dir, "%s", o->state_dir) >= (int)sizeof s->dir)
        return fail(s, SIM_USAGE, "state directory name missing or too long");
    if (mkdir(s->dir, 0755) != 0 && errno != EEXIST)
        return fail(s, SIM_ERR, "%s: %s%s", s->dir, strerror(errno),
                    errno == ENOENT ? " (the state directory is created, its parent must exist)"
                                    : "");
    rc = lock_dir(s);
    if (rc == SIM_OK)
        rc = load_or_new_state(s, o, &exists);
    if (rc != SIM_OK)
        return rc;
    int64_t logged_offset = s->rtc_offset_ms; /* the truth's times were logged with it */
    if (o->set_clock_offset)
        s->rtc_offset_ms = o->clock_offset_ms;
    if (o->start_ms)
        s->fixed_calendar = true; /* kept in sim.state: later runs stay off the calendar */
    s->runs++;
    rc = open_files(s, o, exists);
    if (rc == SIM_OK && o->reuse_from)
        rc = load_foreign(s, o->reuse_from);
    if (rc != SIM_OK)
        return rc;
    hal_setup(s);
    pen_opts_default(&s->popts);
    s->popts.serial = s->serial;
    s->popts.firmware_version = "0.1.0-sim";
    s->popts.protocol_major = o->protocol_major;
    s->popts.batch_records = s->batch;
    s->popts.pull_max_chunks = o->pull_window;

    s->pen = malloc(sizeof *s->pen);
    if (!s->pen)
        return fail(s, SIM_ERR, "out of memory");
    place_clock(s, o, s->gt_last_ms == SIM_NO_TIME ? SIM_NO_TIME : s->gt_last_ms - logged_offset);
    s->sensors.depth_um = 500;
    s->sensors.speed_sps = 100;
    rc = boot(s);
    if (rc != SIM_OK)
        return rc;
    /* truth of records whose slot a kill kept from the flash */
    if (pen_log_next_seq(&s->pen->log) < s->gt_next &&
        sim_truth_trim(s, pen_log_next_seq(&s->pen->log)) != 0)
        return sim_check(s, PEN_ERR_FLASH);
    if (o->replace_key && exists)
        planted(s, "key_changed", pen_log_first_seq(&s->pen->log), 0, "");
    note(s,
         "penlink-sim: pen %s, %" PRIu32 " sectors of %" PRIu32 " bytes, log %" PRIu64 "..%" PRIu64
         "\n",
         s->serial, s->sector_count, s->sector_size, pen_log_first_seq(&s->pen->log),
         pen_log_next_seq(&s->pen->log));
    rc = apply_max_uses(s, o->max_uses);
    if (rc == SIM_OK)
        rc = sim_flush(s);
    return rc;
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
        if (p->hal->rtc_set_ms(p->hal->ctx, old + ev->clock_delta_ms) != 0)
            return PEN_ERR_FLASH; /* sim.state could not keep the new clock */
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
        if (hal_rtc_set(s, hal_rtc_get(s) + s->model.glitch_ms) != 0) /* kept in sim.state */
            return fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_STATE_FILE, strerror(errno));
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
    if (rc == SIM_OK)
        rc = sim_flush(s);
    if (rc == SIM_OK && sim_state_save(s, sim_clock(s)) !=
                            0) /* these days are done: a restart goes on after them */
        rc = fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_STATE_FILE, strerror(errno));
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
    if (rc == SIM_OK)
        rc = sim_flush(s);
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
    if (s->gt) {
        if (sim_truth_flush(s) != 0)
            rc = fail(s, SIM_ERR, "ground truth: %s", strerror(s->gt_errno));
        if (fclose(s->gt) != 0)
            rc = fail(s, SIM_ERR, "ground truth: %s", strerror(errno));
    }
    s->gt = NULL;
    if (s->planted && fclose(s->planted) != 0)
        rc = fail(s, SIM_ERR, "%s: %s", SIM_PLANTED_FILE, strerror(errno));
    s->planted = NULL;
    free(s->firsts);
    free(s->foreign);
    free(s->overflows);
    s->firsts = NULL;
    s->foreign = NULL;
    s->overflows = NULL;
    if (s->state_saved && sim_state_save(s, sim_clock(s)) != 0)
        rc = fail(s, SIM_ERR, "%s/%s: %s", s->dir, SIM_STATE_FILE, strerror(errno));
    if (s->flash.mem) {
        if (flash_file_sync(&s->flash) != 0)
            rc = fail(s, SIM_ERR, "%s: %s", SIM_FLASH_FILE, strerror(errno));
        flash_file_close(&s->flash);
    }
    if (s->locked) /* last: nobody else may touch the directory before this */
        close(s->lock_fd);
    s->locked = false;
    s->lock_fd = -1;
    return rc;
}
