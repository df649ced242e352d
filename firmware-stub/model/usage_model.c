/*
 * The clinic-day model. A small state machine walks through a day; times are
 * drawn at millisecond resolution (a real pen stamps events as they happen,
 * so timestamps carry their real entropy, which is what dominates a chunk's
 * size).
 */
#include <string.h>

#include "splitmix64.h"
#include "usage_model.h"

enum {
    S_MORNING,  /* pen off, next: power on */
    S_IDLE,     /* between treatments */
    S_INSERTED, /* cartridge in, next: treatment start */
    S_TREATING, /* depth / speed changes until the end */
    S_ENDED,    /* next: cartridge removed */
    S_EVENING,  /* next: power off, then the night */
    S_CYCLED    /* switched off between treatments, next: power on */
};

#define MIN_MS 60000ll
#define HOUR_MS (60 * MIN_MS)
#define DAY_MS (24 * HOUR_MS)

static uint64_t rnd(usage_model *m)
{
    return splitmix64_next(&m->rng);
}

/* Uniform in [lo, hi]. */
static int64_t range(usage_model *m, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd(m) % (uint64_t)(hi - lo + 1));
}

void usage_params_default(usage_params *p)
{
    memset(p, 0, sizeof *p);
    p->seed = 1;
    p->start_ms = 1767225600000ll; /* 2026-01-01T00:00:00Z */
    p->depth_min_um = 0;
    p->depth_max_um = 3000;
    p->depth_step_um = 100;
    p->speed_min_sps = 50;
    p->speed_max_sps = 150;
    p->max_cartridge_uses = 1;
    p->reuse_permille = 0;
    p->fault_permille = 10;
}

void usage_model_init(usage_model *m, const usage_params *p)
{
    memset(m, 0, sizeof *m);
    m->p = *p;
    if (m->p.depth_step_um == 0)
        m->p.depth_step_um = 100;
    if (m->p.speed_max_sps < m->p.speed_min_sps)
        m->p.speed_max_sps = m->p.speed_min_sps;
    m->rng = p->seed;
    m->now_ms = p->start_ms + 8 * HOUR_MS; /* a clinic opens around 08:00-09:00 UTC */
    m->state = S_MORNING;
    m->box_base = 0x4D4E000000000000ull | (rnd(m) & 0xFFFFFFFFull) << 8;
    m->lifetime = 0;
}

/* Face zones and their usual depths (micrometres), as practitioners treat them. */
static const uint32_t zone_depth[] = { 500, 500, 1000, 1500, 1250, 500, 1000, 750, 2000, 250 };

static uint32_t clamp_depth(const usage_model *m, int64_t d)
{
    int64_t lo = m->p.depth_min_um, hi = m->p.depth_max_um, st = m->p.depth_step_um;
    if (d < 200)
        d = 200; /* practitioners never treat shallower than 0.2 mm */
    if (d < lo)
        d = lo;
    if (d > hi)
        d = hi;
    d = lo + (d - lo) / st * st;
    return (uint32_t)d;
}

static uint64_t next_cartridge(usage_model *m)
{
    if (m->box_left == 0) { /* a new box of 10 or 20, serials in a run */
        m->box_base = 0x4D4E000000000000ull | (rnd(m) & 0xFFFFFFFFull) << 8;
        m->box_next = 0;
        m->box_left = rnd(m) % 2 ? 10 : 20;
    }
    m->box_left--;
    return m->box_base + m->box_next++;
}

static void remember(usage_model *m, uint64_t serial, uint32_t uses)
{
    for (uint32_t i = 0; i < m->used_n; i++)
        if (m->used[i] == serial) {
            m->used_uses[i] = uses;
            return;
        }
    uint32_t i = m->used_n < 64 ? m->used_n++ : (uint32_t)(rnd(m) % 64);
    m->used[i] = serial;
    m->used_uses[i] = uses;
}

static void event(usage_model *m, pl_record *r, uint32_t kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->fields = pl_record_kind_fields(kind);
    r->time_ms = m->now_ms;
    m->stats.events++;
}

/* A knob's draw: a knob at 0 draws nothing, so the stream stays as without it. */
static int chance(usage_model *m, uint32_t permille)
{
    return permille > 0 && (uint32_t)(rnd(m) % 1000) < permille;
}

static void plant(usage_model *m, uint32_t what)
{
    if (!m->plant)
        m->stats.planted++;
    m->plant |= what;
}

/* Refusal codes a pen logs for a configuration it does not take (ErrorCode). */
static const uint32_t refusal_codes[] = { 12, 13, 15 };

static void model_next(usage_model *m, pl_record *r);

void usage_model_next(usage_model *m, pl_record *r)
{
    m->plant = 0;
    m->glitch_ms = 0;
    model_next(m, r);
}

static void step_morning(usage_model *m, pl_record *r)
{
    m->left_in_day = (uint32_t)range(m, 5, 10);
    m->stats.days++;
    m->idle_planted = 0;
    event(m, r, PL_REC_POWER_ON);
    m->state = S_IDLE;
}

/* Between treatments, a planted event now and then: 1 when one was logged. */
static int idle_planted_event(usage_model *m, pl_record *r)
{
    if (!m->idle_planted && chance(m, m->p.clock_set_permille)) {
        /* someone sets the pen's clock by hours (a wrong zone, a wrong day) */
        m->idle_planted = 1;
        m->now_ms += range(m, MIN_MS, 10 * MIN_MS);
        event(m, r, PL_REC_CLOCK_SET);
        int64_t d = range(m, 2 * HOUR_MS, 6 * HOUR_MS);
        r->clock_delta_ms = rnd(m) % 2 ? d : -d;
        plant(m, PLANT_CLOCK_SET);
        return 1;
    }
    if (!m->idle_planted && chance(m, m->p.config_refused_permille)) {
        /* someone without an authorised key tries to change the configuration */
        m->idle_planted = 1;
        m->now_ms += range(m, MIN_MS, 10 * MIN_MS);
        event(m, r, PL_REC_SECURITY_EVENT);
        r->fault_code = refusal_codes[rnd(m) % 3];
        plant(m, PLANT_CONFIG_REFUSED);
        return 1;
    }
    return 0;
}

/* The cartridge of the next treatment, inserted: a fresh one, one used
 * before (refused when its chip's count is spent) or another pen's. */
static void insert_cartridge(usage_model *m, pl_record *r)
{
    m->reuse_pending = m->used_n > 0 && (uint32_t)(rnd(m) % 1000) < m->p.reuse_permille;
    if (!m->reuse_pending && m->p.n_foreign && chance(m, m->p.cross_reuse_permille)) {
        /* another pen's used cartridge, its chip's count reset: the pen takes it */
        m->foreign_index = (uint32_t)(rnd(m) % m->p.n_foreign);
        m->cartridge = m->p.foreign[m->foreign_index];
        m->cartridge_uses = 1;
        plant(m, PLANT_CROSS_REUSE);
    } else if (m->reuse_pending) {
        uint32_t i = (uint32_t)(rnd(m) % m->used_n);
        m->cartridge = m->used[i];
        m->cartridge_uses = m->used_uses[i] + 1ull;
        m->stats.reuse_attempts++;
        plant(m, PLANT_REUSE);
        if (m->cartridge_uses > m->p.max_cartridge_uses) {
            /* the pen reads the chip, sees the count, and refuses */
            event(m, r, PL_REC_CARTRIDGE_REFUSED);
            r->cartridge_serial = m->cartridge;
            r->cartridge_uses = (uint32_t)m->cartridge_uses;
            m->stats.reuse_refused++;
            m->reuse_pending = 0;
            m->now_ms += range(m, 20000, 120000); /* fetches a fresh one */
            return;
        }
        m->stats.reuse_treatments++;
    } else {
        m->cartridge = next_cartridge(m);
        m->cartridge_uses = 1;
    }
    m->lifetime++;
    event(m, r, PL_REC_CARTRIDGE_INSERTED);
    r->cartridge_serial = m->cartridge;
    r->cartridge_uses = (uint32_t)m->cartridge_uses;
    r->lifetime_cartridges = m->lifetime;
    remember(m, m->cartridge, (uint32_t)m->cartridge_uses);
    m->state = S_INSERTED;
}

static void step_idle(usage_model *m, pl_record *r)
{
    if (m->left_in_day == 0) {
        m->now_ms += range(m, 5 * MIN_MS, 40 * MIN_MS);
        m->state = S_EVENING;
        model_next(m, r);
        return;
    }
    if (m->p.power_cycle_permille > 0 && (uint32_t)(rnd(m) % 1000) < m->p.power_cycle_permille) {
        m->now_ms += range(m, MIN_MS, 20 * MIN_MS);
        m->stats.power_cycles++;
        event(m, r, PL_REC_POWER_OFF);
        m->state = S_CYCLED;
        return;
    }
    if (idle_planted_event(m, r))
        return;
    m->now_ms += range(m, 5 * MIN_MS, 45 * MIN_MS);
    if (chance(m, m->p.no_cartridge_permille)) {
        /* a treatment started with no cartridge: the firmware should refuse it */
        m->no_cart = 1;
        m->state = S_INSERTED;
        model_next(m, r);
        plant(m, PLANT_NO_CARTRIDGE);
        return;
    }
    insert_cartridge(m, r);
}

static void step_inserted(usage_model *m, pl_record *r)
{
    m->now_ms += range(m, 10000, 180000);
    int64_t dur = range(m, 15 * MIN_MS, 60 * MIN_MS);
    m->treat_start_ms = m->now_ms;
    m->treat_end_ms = m->now_ms + dur;
    m->zone = (uint32_t)(rnd(m) % 10);
    m->depth_um = clamp_depth(m, zone_depth[m->zone]);
    m->speed_sps = (uint32_t)range(m, m->p.speed_min_sps, m->p.speed_max_sps) / 10 * 10;
    if (m->speed_sps < m->p.speed_min_sps)
        m->speed_sps = m->p.speed_min_sps;
    m->strokes = 0;
    m->fault_pending = (uint32_t)(rnd(m) % 1000) < m->p.fault_permille;
    if (m->p.over_limit_permille > 0 && m->p.max_treatment_s > 0 &&
        (uint32_t)(rnd(m) % 1000) < m->p.over_limit_permille) {
        /* the practitioner goes on past max_treatment_s, which the pen
         * logs but does not stop (its depth and speed it does clamp) */
        m->stats.over_limit++;
        m->treat_end_ms =
            m->now_ms + (int64_t)m->p.max_treatment_s * 1000 + range(m, MIN_MS, 15 * MIN_MS);
        plant(m, PLANT_OVER_LIMIT);
    }
    m->idle_planted = 0;
    m->depth_out_pending = chance(m, m->p.depth_out_permille);
    m->speed_out_pending = chance(m, m->p.speed_out_permille);
    m->glitch_pending = chance(m, m->p.clock_glitch_permille);
    m->stats.treatments++;
    event(m, r, PL_REC_TREATMENT_START);
    r->depth_um = m->depth_um;
    r->speed_sps = m->speed_sps;
    r->cartridge_serial = m->cartridge;
    m->state = S_TREATING;
}

static void speed_change(usage_model *m, pl_record *r)
{
    int64_t sp = (int64_t)m->speed_sps + (rnd(m) % 2 ? 10 : -10) * range(m, 1, 3);
    if (sp < m->p.speed_min_sps)
        sp = m->p.speed_min_sps;
    if (sp > m->p.speed_max_sps)
        sp = m->p.speed_max_sps;
    m->speed_sps = (uint32_t)sp;
    event(m, r, PL_REC_SPEED_CHANGED);
    r->speed_sps = m->speed_sps;
    if (m->speed_out_pending) {
        /* the speed runs away past the limit (the clamp failed), for a moment */
        m->speed_out_pending = 0;
        r->speed_sps = m->p.speed_max_sps + 10 * (uint32_t)range(m, 1, 5);
        plant(m, PLANT_SPEED_OUT);
    }
}

static void depth_change(usage_model *m, pl_record *r)
{
    /* the next zone, with a small adjustment around its usual depth */
    m->zone = (m->zone + 1 + (uint32_t)(rnd(m) % 3)) % 10;
    int64_t d = (int64_t)zone_depth[m->zone] + (int64_t)m->p.depth_step_um * range(m, -2, 2);
    m->depth_um = clamp_depth(m, d);
    event(m, r, PL_REC_DEPTH_CHANGED);
    r->depth_um = m->depth_um;
    if (m->depth_out_pending) {
        /* a depth past the configured maximum (the clamp failed) */
        m->depth_out_pending = 0;
        r->depth_um = m->p.depth_max_um + m->p.depth_step_um * (uint32_t)range(m, 1, 5);
        plant(m, PLANT_DEPTH_OUT);
    }
}

static void step_treating(usage_model *m, pl_record *r)
{
    int64_t step = range(m, 20000, 150000); /* a zone takes 20 s - 2.5 min */
    if (m->now_ms + step >= m->treat_end_ms) {
        m->strokes += (uint64_t)(m->treat_end_ms - m->now_ms) * m->speed_sps / 1000;
        m->now_ms = m->treat_end_ms;
        event(m, r, PL_REC_TREATMENT_END);
        r->duration_ms = (uint32_t)(m->treat_end_ms - m->treat_start_ms);
        r->strokes = m->strokes;
        m->state = S_ENDED;
        return;
    }
    m->strokes += (uint64_t)step * m->speed_sps / 1000;
    m->now_ms += step;
    if (m->glitch_pending) {
        /* the pen's clock jumps back hours (a flat backup cell), nothing logged */
        m->glitch_pending = 0;
        m->glitch_ms = -range(m, 2 * HOUR_MS, 4 * HOUR_MS);
        plant(m, PLANT_CLOCK_GLITCH);
    }
    uint64_t what = rnd(m) % 100;
    if (m->fault_pending && what < 3) {
        m->fault_pending = 0;
        m->stats.faults++;
        event(m, r, PL_REC_FAULT);
        r->fault_code = (uint32_t)range(m, 1, 12);
    } else if (what < 15) {
        speed_change(m, r);
    } else {
        depth_change(m, r);
    }
}

static void step_ended(usage_model *m, pl_record *r)
{
    if (m->no_cart) { /* no cartridge to remove */
        m->no_cart = 0;
        m->left_in_day--;
        m->state = S_IDLE;
        model_next(m, r);
        return;
    }
    m->now_ms += range(m, 5000, 90000);
    event(m, r, PL_REC_CARTRIDGE_REMOVED);
    r->cartridge_serial = m->cartridge;
    m->left_in_day--;
    m->state = S_IDLE;
}

static void step_cycled(usage_model *m, pl_record *r)
{
    m->now_ms += range(m, 30000, 10 * MIN_MS);
    event(m, r, PL_REC_POWER_ON);
    m->state = S_IDLE;
}

static void step_evening(usage_model *m, pl_record *r)
{
    event(m, r, PL_REC_POWER_OFF);
    /* next morning, 08:00-09:30 */
    int64_t day = (m->now_ms - m->p.start_ms) / DAY_MS + 1;
    m->now_ms = m->p.start_ms + day * DAY_MS + 8 * HOUR_MS + range(m, 0, 90 * MIN_MS);
    m->state = S_MORNING;
}

/* One step of the day's state machine: the next record in @p r. */
static void model_next(usage_model *m, pl_record *r)
{
    switch (m->state) {
    case S_MORNING: step_morning(m, r); return;
    case S_IDLE: step_idle(m, r); return;
    case S_INSERTED: step_inserted(m, r); return;
    case S_TREATING: step_treating(m, r); return;
    case S_ENDED: step_ended(m, r); return;
    case S_CYCLED: step_cycled(m, r); return;
    case S_EVENING:
    default: step_evening(m, r); return;
    }
}
