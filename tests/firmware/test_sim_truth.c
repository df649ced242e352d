/*
 * The simulator in-process: weeks of clinic usage with planted cartridge
 * reuse and power cycles (each a reboot of the core from flash); what the
 * flash store serves, decoded with pl_chunk_decode, equals the ground truth
 * file line for line; a misconfigured pen accepts reused cartridges; the
 * state directory survives a restart.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fwtest.h"
#include "simulator.h"

static void pull_and_compare(sim *s, const fw_truth *t)
{
    rig c;
    pull_result p;
    rig_attach(&c, s->pen);
    sim_set_sender(s, rig_send_hook, &c);
    pl_envelope *e = rig_hello(&c);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY);
    pl_envelope_free(NULL, e);
    rig_pull_all(&c, 0, 0, &p);
    assert_int_equal(p.error, 0);
    assert_int_equal(p.n, t->n);
    for (size_t i = 0; i < p.n; i++)
        if (!pl_record_equal(&p.rec[i], &t->rec[i]))
            fail_msg("record %zu differs from the ground truth", i);
    pull_result_free(&p);
    sim_set_sender(s, NULL, NULL);
    free(c.tx);
}

static void test_truth_equals_store(void **state)
{
    char dir[] = "/tmp/penlink-simtruth-XXXXXX";
    sim_opts o;
    fw_truth t;
    size_t refused = 0, reused = 0, cycles = 0;
    (void)state;
    assert_non_null(mkdtemp(dir));
    sim_opts_default(&o);
    o.state_dir = dir;
    o.seed = 3;
    o.simulate_days = 21;
    o.start_ms = 1767225600000ll;
    o.reuse_permille = 150;
    o.power_cycle_permille = 80;
    o.flash_size = 512 * 1024;
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(sim_open(s, &o), SIM_OK);
    assert_int_equal(sim_simulate(s), SIM_OK);
    fw_truth_load(dir, &t);
    assert_true(t.n > 3000);
    pull_and_compare(s, &t);
    for (size_t i = 0; i < t.n; i++) {
        refused += t.rec[i].kind == PL_REC_CARTRIDGE_REFUSED;
        cycles += t.rec[i].kind == PL_REC_POWER_ON;
    }
    assert_true(refused > 5); /* single use: planted reuse refused and logged */
    assert_true(cycles > 21); /* more power-ons than days: power cycles */
    assert_true(s->reboots > 21);
    assert_int_equal(sim_close(s), SIM_OK);
    free(t.rec);

    /* restart, misconfigured: reused cartridges now go through */
    memset(s, 0, sizeof *s);
    o.max_uses = 3;
    o.simulate_days = 7;
    assert_int_equal(sim_open(s, &o), SIM_OK);
    assert_int_equal(sim_simulate(s), SIM_OK);
    fw_truth_load(dir, &t);
    pull_and_compare(s, &t);
    for (size_t i = 0; i < t.n; i++) {
        if (t.rec[i].kind == PL_REC_CARTRIDGE_INSERTED && t.rec[i].cartridge_uses > 1)
            reused++;
        if (t.rec[i].kind == PL_REC_CONFIG_CHANGED)
            assert_int_equal(t.rec[i].config_revision, 2);
    }
    assert_true(reused > 0);
    assert_int_equal(pen_get_config(s->pen)->max_cartridge_uses, 3);
    /* lifetime count is the number of accepted insertions, across restarts */
    size_t inserted = 0;
    for (size_t i = 0; i < t.n; i++)
        inserted += t.rec[i].kind == PL_REC_CARTRIDGE_INSERTED;
    assert_int_equal(pen_log_lifetime(&s->pen->log), inserted);
    assert_int_equal(sim_close(s), SIM_OK);
    free(t.rec);

    /* an option that contradicts the state directory */
    memset(s, 0, sizeof *s);
    o.serial = "SOMEONE-ELSE";
    assert_int_equal(sim_open(s, &o), SIM_USAGE);
    sim_close(s);
    free(s);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truth_equals_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
