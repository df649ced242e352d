/*
 * Power cut at every flash program and erase.
 *
 * Each scenario runs once, uncut, with every flash operation traced. Then for
 * every operation N the flash is rebuilt as it was just before N, operation N
 * is applied torn (a random prefix, possibly none or all of it, with one
 * partially programmed byte), and a fresh pen boots on that image. Checks:
 *  - boot succeeds; the log is contiguous; every record equals the uncut
 *    run's record with the same seq (nothing different under a known seq);
 *  - every record committed before N (and not acknowledged) is there, plus at
 *    most one more: the record whose write N was;
 *  - the acknowledged point is the one before N or the one N was writing;
 *    no acknowledged record is served again;
 *  - the configuration is the one before N or the one N was writing, intact;
 *  - the pen keeps working: more events, and the log stays contiguous with no
 *    duplicate seq.
 * When the boot itself writes (finishing what the cut interrupted), it is cut
 * at each of its operations too, and booted once more.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fwtest.h"

enum { SC_LOGGING, SC_ACK_ERASE, SC_OVERFLOW, SC_CONFIG };

typedef struct milestone {
    uint64_t op;    /* the flash operation that committed it */
    uint64_t value; /* acked point, or config revision */
    pen_config cfg;
} milestone;

typedef struct scenario {
    int kind;
    uint32_t ssize, sectors, batch;
    rig r; /* the uncut, traced run */
    milestone acks[256], cfgs[256];
    size_t n_acks, n_cfgs;
    bool overflow;
    uint64_t cut_points, boots, nested;
} scenario;

static void hello(rig *r)
{
    pl_envelope *e = rig_hello(r);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY);
    pl_envelope_free(NULL, e);
}

/* The last program of a config slot between two op counts (the commit). */
static uint64_t config_commit_op(const rig *r, uint64_t from, uint64_t to)
{
    uint64_t found = 0;
    for (uint64_t i = from; i < to; i++) {
        const rf_op *op = &r->fl.trace[i];
        if (!op->erase && op->addr < 2 * r->fl.ssize)
            found = i + 1; /* ops are numbered from 1 */
    }
    return found;
}

static void set_config(scenario *sc, uint32_t step)
{
    rig *r = &sc->r;
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__SetConfig s = PENLINK__V1__SET_CONFIG__INIT;
    Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
    char label[24];
    c.has_depth_max_um = c.has_max_cartridge_uses = 1;
    c.depth_max_um = 2000 + 100 * (step % 10);
    c.max_cartridge_uses = 1 + step % 3;
    snprintf(label, sizeof label, "room %u", step);
    c.device_label = label;
    s.has_expected_revision = 1;
    s.expected_revision = pen_get_config(r->p)->revision;
    s.config = &c;
    env.has_request_id = 1;
    env.request_id = ++r->rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CONFIG;
    env.set_config = &s;
    uint64_t before = r->fl.ops;
    size_t n = rig_call(r, &env, &v);
    assert_int_equal(n, 1);
    assert_int_equal(v[0]->body_case, PENLINK__V1__ENVELOPE__BODY_SET_CONFIG_REPLY);
    rig_replies_free(v, n);
    milestone *m = &sc->cfgs[sc->n_cfgs++];
    m->op = config_commit_op(r, before, r->fl.ops);
    assert_true(m->op > 0);
    m->cfg = *pen_get_config(r->p);
    m->value = m->cfg.revision;
}

static void set_clock(rig *r, int64_t delta)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__SetClock s = PENLINK__V1__SET_CLOCK__INIT;
    s.has_time_ms = 1;
    s.time_ms = r->clock_ms + r->rtc_off + delta;
    env.has_request_id = 1;
    env.request_id = ++r->rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CLOCK;
    env.set_clock = &s;
    size_t n = rig_call(r, &env, &v);
    assert_int_equal(n, 1);
    assert_int_equal(v[0]->body_case, PENLINK__V1__ENVELOPE__BODY_SET_CLOCK_REPLY);
    rig_replies_free(v, n);
}

static void pull_and_ack(scenario *sc)
{
    rig *r = &sc->r;
    pull_result p;
    rig_pull_all(r, 0, 0, &p);
    assert_int_equal(p.error, 0);
    if (p.next_seq > 0) {
        uint64_t before = r->fl.ops;
        assert_true(rig_ack(r, p.next_seq - 1) == (int64_t)p.next_seq);
        if (r->fl.ops > before) {
            milestone *m = &sc->acks[sc->n_acks++];
            m->op = r->fl.ops; /* the metadata entry is the last operation */
            m->value = p.next_seq;
        }
    }
    pull_result_free(&p);
}

static void run_uncut(scenario *sc)
{
    rig *r = &sc->r;
    rig_init(r, sc->ssize, sc->sectors, sc->batch);
    r->fl.tracing = true;
    assert_int_equal(rig_boot(r), PEN_OK);
    hello(r);
    int events = sc->kind == SC_LOGGING ? 500 : sc->kind == SC_CONFIG ? 400 : 900;
    for (int i = 0; i < events; i++) {
        assert_int_equal(rig_event(r), PEN_OK);
        rig_settle(r);
        if (sc->kind == SC_ACK_ERASE && i % 25 == 24)
            pull_and_ack(sc);
        if (sc->kind == SC_CONFIG && i % 13 == 5)
            set_config(sc, (uint32_t)i);
        if (sc->kind == SC_CONFIG && i % 50 == 20)
            set_clock(r, (i % 100 == 20) ? 3600000 : -120000);
        if (sc->kind == SC_CONFIG && i % 70 == 69)
            pull_and_ack(sc);
    }
    for (size_t i = 0; i < r->gt_n; i++)
        assert_true(r->gt[i].seq == i);
    for (size_t i = 0; i < r->gt_n; i++)
        sc->overflow |= r->gt[i].kind == PL_REC_LOG_OVERFLOW;
}

/* The acked point and config revision allowed after a cut at op N. */
static void allowed(const milestone *m, size_t n, uint64_t cut, uint64_t dflt, uint64_t *lo,
                    uint64_t *hi, const pen_config **lo_cfg, const pen_config **hi_cfg)
{
    *lo = *hi = dflt;
    *lo_cfg = *hi_cfg = NULL;
    for (size_t i = 0; i < n; i++) {
        if (m[i].op < cut) {
            *lo = *hi = m[i].value;
            *lo_cfg = *hi_cfg = &m[i].cfg;
        } else if (m[i].op == cut) {
            *hi = m[i].value;
            *hi_cfg = &m[i].cfg;
        }
    }
}

static const pl_record *find_gt(const rig *r, uint64_t seq)
{
    for (size_t i = r->gt_n; i-- > 0;)
        if (r->gt[i].seq == seq)
            return &r->gt[i];
    return NULL;
}

static void check_config(rig *v, const pen_config *lo, const pen_config *hi)
{
    pen_config dflt;
    const pen_config *c = pen_get_config(v->p);
    pen_config_defaults(&dflt);
    if (!lo)
        lo = &dflt;
    if (!hi)
        hi = &dflt;
    const pen_config *want = c->revision == hi->revision ? hi : lo;
    assert_int_equal(c->revision, want->revision);
    assert_memory_equal(c, want, sizeof *c);
}

/* Boots @p v on its flash and checks it against the uncut run for a cut at @p cut. */
static void verify(scenario *sc, rig *v, uint64_t cut, size_t boot_gt, bool keep_going,
                   size_t max_extra)
{
    const rig *u = &sc->r;
    pull_result p, p2;
    uint64_t first, next, acked, ack_lo, ack_hi, rev_lo, rev_hi;
    const pen_config *cfg_lo, *cfg_hi, *dummy;

    hello(v);
    assert_int_equal(rig_info(v, &first, &next, &acked, NULL), 0);
    allowed(sc->acks, sc->n_acks, cut, 0, &ack_lo, &ack_hi, &dummy, &dummy);
    assert_true(acked >= ack_lo && acked <= ack_hi);
    assert_true(first >= acked && first <= next);
    if (!sc->overflow)
        assert_true(first == acked);
    allowed(sc->cfgs, sc->n_cfgs, cut, 1, &rev_lo, &rev_hi, &cfg_lo, &cfg_hi);
    check_config(v, cfg_lo, cfg_hi);

    rig_pull_all(v, 0, 0, &p);
    assert_int_equal(p.error, 0);
    /* the pull seals staged records; on a full ring that may drop the oldest */
    assert_true(p.first_available == first || (sc->overflow && p.first_available > first));
    size_t extra = 0;
    for (size_t i = 0; i < p.n; i++) {
        const pl_record *g = &p.rec[i], *booted = NULL;
        if (i > 0)
            assert_true(g->seq == p.rec[i - 1].seq + 1);
        /* records the booted pen wrote itself: reserved before the cut, or a new
         * LOG_OVERFLOW when the repaired flash (at boot, or sealing staged records
         * for the pull) had to make room earlier than the uncut run */
        for (size_t k = 0; k < v->gt_n; k++)
            if (v->gt[k].seq == g->seq)
                booted = &v->gt[k];
        if (booted) {
            assert_true(pl_record_equal(g, booted));
            continue;
        }
        assert_true(g->seq < u->gt_n);
        if (!pl_record_equal(g, &u->gt[g->seq])) {
            /* only the record a cut boot was writing when it lost power may be
             * new and unreported: a LOG_OVERFLOW or CONFIG_CHANGED it reserved */
            assert_true(max_extra > 1 && u->gt_op[g->seq] >= cut);
            assert_true(g->kind == PL_REC_LOG_OVERFLOW || g->kind == PL_REC_CONFIG_CHANGED);
            extra++;
            continue;
        }
        extra += u->gt_op[g->seq] >= cut;
    }
    assert_true(extra <= max_extra);
    uint64_t next_after; /* sealing for the pull may have logged a LOG_OVERFLOW */
    assert_int_equal(rig_info(v, NULL, &next_after, NULL, NULL), 0);
    assert_true(next_after == next || (sc->overflow && next_after == next + 1));
    next = next_after;
    if (p.n > 0) {
        assert_true(p.rec[0].seq <= p.first_available);
        assert_true(p.rec[p.n - 1].seq + 1 == next);
        /* the first chunk holds first_available: acknowledged chunks are not served */
        assert_true(p.rec[0].seq + PL_CHUNK_MAX_RECORDS > p.first_available);
    } else {
        assert_true(first == next);
    }
    /* every committed record not yet acknowledged (nor dropped making room) is there */
    for (uint64_t s = p.first_available; s < u->gt_n; s++)
        if (u->gt_op[s] < cut)
            assert_true(p.n > 0 && s >= p.rec[0].seq && s <= p.rec[p.n - 1].seq);
    for (size_t k = 0; k < boot_gt; k++)
        assert_true(v->gt[k].seq < next);

    if (keep_going) {
        /* more usage, then everything must still line up */
        size_t gt0 = v->gt_n;
        for (int i = 0; i < 6; i++) {
            assert_int_equal(rig_event(v), PEN_OK);
            rig_settle(v);
        }
        rig_pull_all(v, 0, 0, &p2);
        assert_int_equal(p2.error, 0);
        for (size_t i = 0; i < p2.n; i++) {
            const pl_record *g = &p2.rec[i];
            if (i > 0)
                assert_true(g->seq == p2.rec[i - 1].seq + 1);
            if (p.n > 0 && g->seq >= p.rec[0].seq && g->seq <= p.rec[p.n - 1].seq)
                assert_true(pl_record_equal(g, &p.rec[g->seq - p.rec[0].seq]));
            else if (g->seq >= next) {
                const pl_record *want = find_gt(v, g->seq);
                assert_non_null(want);
                assert_true(pl_record_equal(g, want));
            }
        }
        assert_true(v->gt_n >= gt0);
        for (size_t k = gt0; k < v->gt_n; k++)
            assert_true(v->gt[k].seq >= next);
        pull_result_free(&p2);
    }
    pull_result_free(&p);
}

static void boot_on(scenario *sc, rig *v, const uint8_t *img)
{
    memcpy(v->fl.mem, img, (size_t)sc->ssize * sc->sectors);
    v->fl.ops = 0;
    v->fl.dead = false;
    v->fl.cut_at = 0;
    v->gt_n = 0;
    v->clock_ms = sc->r.clock_ms + 3600000;
    v->rtc_off = sc->r.rtc_off;
    v->model = sc->r.model; /* the usage goes on where it was */
}

static void run_cuts(scenario *sc)
{
    rig *u = &sc->r;
    size_t size = (size_t)sc->ssize * sc->sectors;
    uint8_t *base = malloc(size), *img = malloc(size);
    rig v;
    assert_non_null(base);
    assert_non_null(img);
    memset(base, 0xFF, size);
    rig_init(&v, sc->ssize, sc->sectors, sc->batch);

    for (size_t i = 0; i < u->fl.n; i++) {
        uint64_t cut = i + 1;
        const rf_op *op = &u->fl.trace[i];
        memcpy(img, base, size);
        rf_apply(img, sc->ssize, op, true, cut * 2654435761u);

        boot_on(sc, &v, img);
        assert_int_equal(rig_boot(&v), PEN_OK);
        uint64_t boot_ops = v.fl.ops;
        verify(sc, &v, cut, v.gt_n, true, 1);
        sc->cut_points++;
        sc->boots++;

        /* a second cut while the boot repairs the first one */
        for (uint64_t m = 1; m <= boot_ops; m++) {
            boot_on(sc, &v, img);
            v.fl.cut_at = m;
            v.fl.rng = cut * 31 + m;
            assert_int_equal(rig_boot(&v), PEN_ERR_FLASH);
            /* reboot on what the cut boot left, keeping what it reported committed */
            v.fl.ops = 0;
            v.fl.dead = false;
            v.fl.cut_at = 0;
            assert_int_equal(rig_boot(&v), PEN_OK);
            verify(sc, &v, cut, v.gt_n, false, 2);
            sc->nested++;
            sc->boots += 2;
        }
        rf_apply(base, sc->ssize, op, false, 0);
    }
    /* the fully applied trace is the uncut flash */
    assert_memory_equal(base, u->fl.mem, size);
    rig_free(&v);
    free(base);
    free(img);
}

static void run(int kind, uint32_t ring_sectors, const char *name)
{
    scenario *sc = calloc(1, sizeof *sc);
    assert_non_null(sc);
    sc->kind = kind;
    sc->ssize = 512;
    sc->batch = 32;
    sc->sectors = 4 + pen_log_stage_sectors(sc->ssize, sc->batch) + ring_sectors;
    run_uncut(sc);
    run_cuts(sc);
    if (kind == SC_ACK_ERASE) /* the ring wrapped over acknowledged chunks */
        assert_true(sc->r.p->log.stats.ring_erases >= 3 && !sc->overflow);
    printf("    %s: %zu records, %llu cut points, %llu nested cuts in recovery, %llu boots, "
           "%zu acks, %zu config writes%s\n",
           name, sc->r.gt_n, (unsigned long long)sc->cut_points, (unsigned long long)sc->nested,
           (unsigned long long)sc->boots, sc->n_acks, sc->n_cfgs,
           sc->overflow ? ", with overflow" : "");
    rig_free(&sc->r);
    free(sc);
}

static void test_cut_while_logging(void **state)
{
    (void)state;
    run(SC_LOGGING, 12, "logging and compaction");
}

static void test_cut_during_ack_and_erase(void **state)
{
    (void)state;
    run(SC_ACK_ERASE, 3, "ack and erase, ring wrapping");
}

static void test_cut_during_overflow(void **state)
{
    (void)state;
    run(SC_OVERFLOW, 3, "compaction into a full ring (overflow)");
}

static void test_cut_during_config(void **state)
{
    (void)state;
    run(SC_CONFIG, 6, "config and clock writes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_while_logging),
        cmocka_unit_test(test_cut_during_ack_and_erase),
        cmocka_unit_test(test_cut_during_overflow),
        cmocka_unit_test(test_cut_during_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
