/*
 * SetConfig: a table of valid, boundary and invalid values (each with the
 * Error.field it must name), cross-field rules, compare-and-set on the
 * revision, CONFIG_CHANGED in the log, factory defaults, and the A/B slots
 * across reboots.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fwtest.h"

#define OK 0
#define INVALID PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT

typedef struct row {
    const char *name;
    int field; /* which Config field the row sets (see set_field) */
    uint32_t value;
    int want; /* OK or an ErrorCode */
    const char *want_field;
} row;

enum { F_DMIN, F_DMAX, F_DDEF, F_SMIN, F_SMAX, F_TREAT, F_USES, F_OFF };

static const row table[] = {
    { "depth max at the limit", F_DMAX, 3000, OK, NULL },
    { "depth max one step lower", F_DMAX, 2900, OK, NULL },
    { "depth max above the limit", F_DMAX, 3100, INVALID, "config.depth_max_um" },
    { "depth max off the step", F_DMAX, 2950, INVALID, "config.depth_max_um" },
    { "depth max below the default", F_DMAX, 400, INVALID, "config.depth_max_um" },
    { "depth max equal to the default", F_DMAX, 500, OK, NULL },
    { "depth min zero", F_DMIN, 0, OK, NULL },
    { "depth min one step", F_DMIN, 100, OK, NULL },
    { "depth min off the step", F_DMIN, 150, INVALID, "config.depth_min_um" },
    { "depth min above the default", F_DMIN, 600, INVALID, "config.depth_min_um" },
    { "depth min huge", F_DMIN, UINT32_MAX, INVALID, "config.depth_min_um" },
    { "depth default at max", F_DDEF, 3000, OK, NULL },
    { "depth default at min", F_DDEF, 0, OK, NULL },
    { "depth default off step", F_DDEF, 510, INVALID, "config.depth_default_um" },
    { "depth default above limit", F_DDEF, 3100, INVALID, "config.depth_default_um" },
    { "speed min at limit", F_SMIN, 50, OK, NULL },
    { "speed min below limit", F_SMIN, 49, INVALID, "config.speed_min_sps" },
    { "speed min equal to max", F_SMIN, 150, OK, NULL },
    { "speed max at limit", F_SMAX, 150, OK, NULL },
    { "speed max above limit", F_SMAX, 151, INVALID, "config.speed_max_sps" },
    { "speed max below min", F_SMAX, 60, OK, NULL }, /* min is 50 by default */
    { "max treatment lowest", F_TREAT, 60, OK, NULL },
    { "max treatment too low", F_TREAT, 59, INVALID, "config.max_treatment_s" },
    { "max treatment highest", F_TREAT, 7200, OK, NULL },
    { "max treatment too high", F_TREAT, 7201, INVALID, "config.max_treatment_s" },
    { "single use", F_USES, 1, OK, NULL },
    { "zero uses", F_USES, 0, INVALID, "config.max_cartridge_uses" },
    { "ten uses (misconfigured but allowed)", F_USES, 10, OK, NULL },
    { "eleven uses", F_USES, 11, INVALID, "config.max_cartridge_uses" },
    { "auto-off lowest", F_OFF, 30, OK, NULL },
    { "auto-off too low", F_OFF, 29, INVALID, "config.auto_off_s" },
    { "auto-off highest", F_OFF, 3600, OK, NULL },
    { "auto-off too high", F_OFF, 3601, INVALID, "config.auto_off_s" },
};

static void set_field(Penlink__V1__Config *c, int f, uint32_t v)
{
    switch (f) {
    case F_DMIN: c->has_depth_min_um = 1, c->depth_min_um = v; break;
    case F_DMAX: c->has_depth_max_um = 1, c->depth_max_um = v; break;
    case F_DDEF: c->has_depth_default_um = 1, c->depth_default_um = v; break;
    case F_SMIN: c->has_speed_min_sps = 1, c->speed_min_sps = v; break;
    case F_SMAX: c->has_speed_max_sps = 1, c->speed_max_sps = v; break;
    case F_TREAT: c->has_max_treatment_s = 1, c->max_treatment_s = v; break;
    case F_USES: c->has_max_cartridge_uses = 1, c->max_cartridge_uses = v; break;
    default: c->has_auto_off_s = 1, c->auto_off_s = v; break;
    }
}

/* Sends SetConfig; returns the reply (caller frees). */
static pl_envelope *set_config(rig *r, uint32_t expected, const Penlink__V1__Config *c,
                               bool has_expected)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__SetConfig s = PENLINK__V1__SET_CONFIG__INIT;
    s.has_expected_revision = has_expected;
    s.expected_revision = expected;
    s.config = (Penlink__V1__Config *)c;
    env.has_request_id = 1;
    env.request_id = ++r->rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CONFIG;
    env.set_config = &s;
    size_t n = rig_call(r, &env, &v);
    assert_int_equal(n, 1);
    assert_int_equal(v[0]->request_id, env.request_id);
    pl_envelope *e = v[0];
    free(v);
    return e;
}

static void fresh(rig *r)
{
    rig_init(r, 1024, 64, 32);
    assert_int_equal(rig_boot(r), PEN_OK);
    pl_envelope_free(NULL, rig_hello(r));
}

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        const row *t = &table[i];
        rig r;
        Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
        fresh(&r);
        set_field(&c, t->field, t->value);
        pl_envelope *e = set_config(&r, 1, &c, true);
        if (t->want == OK) {
            if (e->body_case != PENLINK__V1__ENVELOPE__BODY_SET_CONFIG_REPLY)
                fail_msg("%s: refused: %s", t->name, e->error ? e->error->message : "?");
            assert_int_equal(e->set_config_reply->revision, 2);
            assert_int_equal(pen_get_config(r.p)->revision, 2);
            /* logged with the new revision */
            assert_int_equal(r.gt[r.gt_n - 1].kind, PL_REC_CONFIG_CHANGED);
            assert_int_equal(r.gt[r.gt_n - 1].config_revision, 2);
        } else {
            if (rig_error_code(e) != t->want)
                fail_msg("%s: got body %d code %d", t->name, (int)e->body_case, rig_error_code(e));
            assert_string_equal(e->error->field, t->want_field);
            assert_non_null(e->error->message);
            assert_true(strlen(e->error->message) > 10);
            assert_int_equal(pen_get_config(r.p)->revision, 1); /* nothing applied */
            assert_int_equal(r.gt_n, 0);
        }
        pl_envelope_free(NULL, e);
        rig_free(&r);
    }
}

static void test_messages_and_text(void **state)
{
    rig r;
    Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
    char long_label[64];
    (void)state;
    fresh(&r);
    c.has_depth_max_um = 1;
    c.depth_max_um = 3500;
    pl_envelope *e = set_config(&r, 1, &c, true);
    assert_int_equal(rig_error_code(e), INVALID);
    assert_non_null(strstr(e->error->message, "0..3000"));
    assert_non_null(strstr(e->error->message, "steps of 100"));
    pl_envelope_free(NULL, e);

    /* min above max, both set: blames depth_min_um */
    c.depth_max_um = 1000;
    c.has_depth_min_um = 1;
    c.depth_min_um = 2000;
    e = set_config(&r, 1, &c, true);
    assert_int_equal(rig_error_code(e), INVALID);
    assert_string_equal(e->error->field, "config.depth_min_um");
    pl_envelope_free(NULL, e);

    /* text: 32 bytes fine, 33 not, control characters and bad UTF-8 not */
    Penlink__V1__Config t = PENLINK__V1__CONFIG__INIT;
    memset(long_label, 'a', 32);
    long_label[32] = '\0';
    t.device_label = long_label;
    t.clinic_id = "Klinik Zürich";
    e = set_config(&r, 1, &t, true);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_SET_CONFIG_REPLY);
    assert_string_equal(e->set_config_reply->config->clinic_id, "Klinik Zürich");
    pl_envelope_free(NULL, e);
    long_label[32] = 'a';
    long_label[33] = '\0';
    e = set_config(&r, 2, &t, true);
    assert_string_equal(e->error->field, "config.device_label");
    pl_envelope_free(NULL, e);
    t.device_label = "tab\there";
    e = set_config(&r, 2, &t, true);
    assert_string_equal(e->error->field, "config.device_label");
    pl_envelope_free(NULL, e);
    t.device_label = "ok";
    t.clinic_id = "\xC3\x28";
    e = set_config(&r, 2, &t, true);
    assert_string_equal(e->error->field, "config.clinic_id");
    pl_envelope_free(NULL, e);
    rig_free(&r);
}

static void test_revision_conflicts(void **state)
{
    rig r;
    Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
    (void)state;
    fresh(&r);
    c.has_max_cartridge_uses = 1;
    c.max_cartridge_uses = 2;
    pl_envelope *e = set_config(&r, 1, &c, false); /* no expected_revision */
    assert_int_equal(rig_error_code(e), INVALID);
    assert_string_equal(e->error->field, "expected_revision");
    pl_envelope_free(NULL, e);
    e = set_config(&r, 1, &c, true);
    assert_int_equal(e->set_config_reply->revision, 2);
    pl_envelope_free(NULL, e);
    /* a second host still holding revision 1 */
    c.max_cartridge_uses = 3;
    e = set_config(&r, 1, &c, true);
    assert_int_equal(rig_error_code(e), PENLINK__V1__ERROR_CODE__ERROR_REVISION_CONFLICT);
    assert_non_null(strstr(e->error->message, "revision 2"));
    pl_envelope_free(NULL, e);
    e = set_config(&r, 7, &c, true); /* from the future */
    assert_int_equal(rig_error_code(e), PENLINK__V1__ERROR_CODE__ERROR_REVISION_CONFLICT);
    pl_envelope_free(NULL, e);
    assert_int_equal(pen_get_config(r.p)->max_cartridge_uses, 2);
    /* an empty change still makes a revision (and a log entry) */
    Penlink__V1__Config none = PENLINK__V1__CONFIG__INIT;
    e = set_config(&r, 2, &none, true);
    assert_int_equal(e->set_config_reply->revision, 3);
    assert_int_equal(e->set_config_reply->config->max_cartridge_uses, 2);
    pl_envelope_free(NULL, e);
    rig_free(&r);
}

static void test_defaults_and_persistence(void **state)
{
    rig r;
    pen_config d;
    (void)state;
    fresh(&r);
    pen_config_defaults(&d);
    assert_memory_equal(pen_get_config(r.p), &d, sizeof d);
    assert_int_equal(d.depth_min_um, 0);
    assert_int_equal(d.depth_max_um, 3000);
    assert_int_equal(d.depth_default_um, 500);
    assert_int_equal(d.speed_min_sps, 50);
    assert_int_equal(d.speed_max_sps, 150);
    assert_int_equal(d.max_treatment_s, 3600);
    assert_int_equal(d.max_cartridge_uses, 1);
    assert_int_equal(d.auto_off_s, 300);
    for (uint32_t i = 0; i < 5; i++) {
        Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
        c.has_auto_off_s = 1;
        c.auto_off_s = 100 + i;
        pl_envelope *e = set_config(&r, 1 + i, &c, true);
        assert_int_equal(e->set_config_reply->revision, 2 + i);
        pl_envelope_free(NULL, e);
        assert_int_equal(rig_boot(&r), PEN_OK); /* A, B, A, ... each survives a reboot */
        pl_envelope_free(NULL, rig_hello(&r));
        assert_int_equal(pen_get_config(r.p)->revision, 2 + i);
        assert_int_equal(pen_get_config(r.p)->auto_off_s, 100 + i);
    }
    /* the local service API follows the same rules */
    pen_config_change chg;
    pen_cfg_error err;
    memset(&chg, 0, sizeof chg);
    chg.set = PEN_CFG_SPEED_MIN;
    chg.v.speed_min_sps = 10;
    assert_int_equal(pen_set_config(r.p, 0, &chg, &err), PEN_ERR_INVALID);
    assert_string_equal(err.field, "config.speed_min_sps");
    chg.v.speed_min_sps = 60;
    assert_int_equal(pen_set_config(r.p, 3, &chg, &err), PEN_ERR_STATE);
    assert_int_equal(pen_set_config(r.p, 6, &chg, &err), PEN_OK);
    assert_int_equal(pen_get_config(r.p)->revision, 7);
    rig_free(&r);
}

/* The pen enforces what the configuration says. */
static void test_enforcement(void **state)
{
    rig r;
    Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
    (void)state;
    fresh(&r);
    r.cart.serial = 0x4D4E000000000001ull;
    r.cart.uses = 1; /* used once already */
    assert_int_equal(pen_cartridge_inserted(r.p), PEN_REFUSED);
    assert_int_equal(r.gt[r.gt_n - 1].kind, PL_REC_CARTRIDGE_REFUSED);
    assert_int_equal(r.gt[r.gt_n - 1].cartridge_uses, 2);
    assert_int_equal(pen_treatment_start(r.p), PEN_ERR_STATE);
    c.has_max_cartridge_uses = c.has_depth_max_um = 1;
    c.max_cartridge_uses = 2;
    c.depth_max_um = 1500;
    pl_envelope *e = set_config(&r, 1, &c, true);
    pl_envelope_free(NULL, e);
    r.cart.uses = 1;
    assert_int_equal(pen_cartridge_inserted(r.p), PEN_OK);
    assert_int_equal(r.gt[r.gt_n - 1].kind, PL_REC_CARTRIDGE_INSERTED);
    assert_int_equal(r.gt[r.gt_n - 1].cartridge_uses, 2);
    assert_int_equal(r.cart.uses, 2); /* counted on the chip */
    r.sens.depth_um = 2500;
    assert_int_equal(pen_treatment_start(r.p), PEN_OK);
    assert_int_equal(r.gt[r.gt_n - 1].depth_um, 1500); /* clamped to the configured max */
    r.clock_ms += 7200 * 1000 + 1; /* longer than max_treatment_s: the pen stops it */
    pen_poll(r.p);
    assert_int_equal(r.gt[r.gt_n - 1].kind, PL_REC_TREATMENT_END);
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_messages_and_text),
        cmocka_unit_test(test_revision_conflicts),
        cmocka_unit_test(test_defaults_and_persistence),
        cmocka_unit_test(test_enforcement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
