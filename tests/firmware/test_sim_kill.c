/*
 * The simulator killed at the moments that decide whether its ground truth
 * and its flash agree. A child process runs the simulator in-process (three
 * clinic days, then a pull that seals the staged tail, then an
 * acknowledgement) and SIGKILLs itself at a chosen flash operation or
 * record, in one of five phases around the ground-truth write and the flash
 * write. The parent reopens the state directory: the pen must be the same
 * pen (serial), the ground truth's seqs must run 0..n-1 once each and end
 * where the pen's log ends, and what the pen serves must equal the ground
 * truth record for record, also after a day more of usage (new records take
 * the seqs a kill left unused).
 *
 * The kill points come from a seed, printed first; SIM_KILL_SEED=N replays
 * a run, SIM_KILL_CASES sets the number of kill points (valgrind: fewer).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fwtest.h"
#include "simulator.h"

#define SERIAL "PEN-KILL"
#define DEFAULT_CASES 30
#define START_MS 1767225600000ll /* 2026-01-01 */

/* Where the child dies. */
enum phase {
    OP_BEFORE,  /* at a flash operation, before anything of it happened */
    OP_TRUTH,   /* after the truth lines reached their file, before the flash op */
    OP_AFTER,   /* right after the flash operation */
    REC_BEFORE, /* at a record the core reports, before its truth line */
    REC_AFTER,  /* after its truth line reached the file */
    PHASES
};
static const char *const phase_name[PHASES] = { "op-before", "op-truth", "op-after", "rec-before",
                                                "rec-after" };

static sim *victim;
static uint64_t ops, recs, kill_at;
static enum phase kill_phase;
static pen_hal real;

static void die(void)
{
    kill(getpid(), SIGKILL);
}

/* Counts a flash operation (@p before it happens) and dies where told. */
static void at_op(bool before)
{
    if (before)
        ops++;
    if (ops != kill_at)
        return;
    if (before && kill_phase == OP_BEFORE)
        die();
    if (before && kill_phase == OP_TRUTH) {
        fflush(victim->gt); /* what the simulator's flash HAL does first */
        die();
    }
    if (!before && kill_phase == OP_AFTER)
        die();
}

static int k_program(void *ctx, uint32_t addr, const void *buf, uint32_t len)
{
    at_op(true);
    int rc = real.flash_program(ctx, addr, buf, len);
    at_op(false);
    return rc;
}

static int k_erase(void *ctx, uint32_t sector)
{
    at_op(true);
    int rc = real.flash_erase(ctx, sector);
    at_op(false);
    return rc;
}

static void k_logged(void *ctx, const pl_record *r)
{
    bool now = ++recs == kill_at;
    if (now && kill_phase == REC_BEFORE)
        die();
    real.record_logged(ctx, r);
    if (now && kill_phase == REC_AFTER) {
        fflush(victim->gt);
        die();
    }
}

/* The scenario: a new pen, three days, a pull and its acknowledgement. The
 * flash operations and records after boot are counted (and killed at). */
static int scenario(const char *dir)
{
    sim_opts o;
    rig c;
    pull_result p;
    int rc = -1;

    sim_opts_default(&o);
    o.state_dir = dir;
    o.serial = SERIAL;
    o.seed = 9;
    o.simulate_days = 3;
    o.start_ms = START_MS;
    o.flash_size = 128 * 1024;
    o.batch = 64; /* many compactions */
    victim = calloc(1, sizeof *victim);
    if (!victim || sim_open(victim, &o) != SIM_OK)
        goto out;
    real = victim->hal;
    ops = recs = 0;
    victim->hal.flash_program = k_program;
    victim->hal.flash_erase = k_erase;
    victim->hal.record_logged = k_logged;
    if (sim_simulate(victim) != SIM_OK)
        goto out;
    rig_attach(&c, victim->pen);
    sim_set_sender(victim, rig_send_hook, &c);
    pl_envelope_free(NULL, rig_hello(&c));
    rig_pull_all(&c, 0, 0, &p);
    if (p.error == 0 && p.n > 0 && rig_ack(&c, p.rec[p.n - 1].seq) >= 0)
        rc = 0;
    pull_result_free(&p);
    free(c.tx);
out:
    if (victim) {
        if (sim_close(victim) != SIM_OK)
            rc = -1;
        free(victim);
    }
    victim = NULL;
    return rc;
}

/* Reopens @p dir (with @p days more of usage): the same pen, and what it
 * serves equals the ground truth from its first seq on. */
static void check_pen(const char *dir, uint32_t days, const char *what)
{
    sim_opts o;
    fw_truth t;
    rig c;
    pull_result p;
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    sim_opts_default(&o);
    o.state_dir = dir;
    o.simulate_days = days;
    if (sim_open(s, &o) != SIM_OK)
        fail_msg("%s: reopening: %s", what, s->err);
    if (strcmp(s->serial, SERIAL) != 0)
        fail_msg("%s: the pen came back as %s, not %s", what, s->serial, SERIAL);
    if (days)
        assert_int_equal(sim_simulate(s), SIM_OK);
    fw_truth_load(dir, &t);
    uint64_t first = pen_log_first_seq(&s->pen->log), next = pen_log_next_seq(&s->pen->log);
    if (t.n != next)
        fail_msg("%s: the ground truth holds %zu records, the pen's log ends at %" PRIu64, what,
                 t.n, next);
    rig_attach(&c, s->pen);
    sim_set_sender(s, rig_send_hook, &c);
    pl_envelope_free(NULL, rig_hello(&c));
    rig_pull_all(&c, first, 0, &p);
    assert_int_equal(p.error, 0);
    if (p.n != next - first)
        fail_msg("%s: pulled %zu records from seq %" PRIu64 ", the ground truth has %" PRIu64, what,
                 p.n, first, next - first);
    for (size_t i = 0; i < p.n; i++)
        if (!pl_record_equal(&p.rec[i], &t.rec[first + i]))
            fail_msg("%s: record %" PRIu64 " differs from the ground truth", what, first + i);
    pull_result_free(&p);
    free(c.tx);
    free(t.rec);
    assert_int_equal(sim_close(s), SIM_OK);
    free(s);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_kill_points(void **state)
{
    uint64_t seed, total_ops, total_recs;
    unsigned cases = DEFAULT_CASES, killed = 0;
    const char *env = getenv("SIM_KILL_SEED");
    (void)state;
    seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 20;
    env = getenv("SIM_KILL_CASES");
    if (env)
        cases = (unsigned)strtoul(env, NULL, 0);
    printf("seed %" PRIu64 " (replay: SIM_KILL_SEED=%" PRIu64 "), %u kill points\n", seed, seed,
           cases);

    /* the whole scenario once, to count what can be killed at */
    char dir[] = "/tmp/penlink-simkill-XXXXXX";
    assert_non_null(mkdtemp(dir));
    kill_at = 0;
    assert_int_equal(scenario(dir), 0);
    total_ops = ops;
    total_recs = recs;
    check_pen(dir, 1, "without a kill");
    rm_rf(dir);
    printf("the scenario: %" PRIu64 " flash operations, %" PRIu64 " records\n", total_ops,
           total_recs);
    assert_true(total_ops > 100 && total_recs > 100);

    for (unsigned k = 0; k < cases; k++) {
        char what[96];
        kill_phase = (enum phase)(fw_rand(&seed) % PHASES);
        kill_at = 1 + fw_rand(&seed) % (kill_phase >= REC_BEFORE ? total_recs : total_ops);
        snprintf(what, sizeof what, "kill %u (%s %" PRIu64 ")", k + 1, phase_name[kill_phase],
                 kill_at);
        memcpy(dir, "/tmp/penlink-simkill-XXXXXX", sizeof dir);
        assert_non_null(mkdtemp(dir));
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            _exit(scenario(dir) == 0 ? 0 : 1);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
            fail_msg("%s: the child was not killed (status %#x)", what, (unsigned)status);
        killed++;
        check_pen(dir, 0, what); /* as the kill left it */
        check_pen(dir, 1, what); /* and once it logged again */
        rm_rf(dir);
    }
    assert_int_equal(killed, cases);
}

/* Appends @p n made-up lines from seq @p seq on to the ground truth, then
 * @p torn (a part of a line, no newline). */
static void append_lines(const char *dir, uint64_t seq, unsigned n, const char *torn)
{
    char path[512];
    snprintf(path, sizeof path, "%s/ground-truth.jsonl", dir);
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    for (unsigned i = 0; i < n; i++)
        fprintf(f, "{\"seq\":%" PRIu64 ",\"time_ms\":%lld,\"kind\":\"fault\",\"fault_code\":7}\n",
                seq + i, START_MS + 999 * 86400000ll);
    fputs(torn, f);
    assert_int_equal(fclose(f), 0);
}

/* What a kill can leave at the end of a long ground truth (more than the
 * tail the simulator reads at a start), and more than a kill can leave (a
 * cut before that tail): each start cuts it back to the pen's log. */
static void test_truth_cut(void **state)
{
    char dir[] = "/tmp/penlink-simcut-XXXXXX";
    sim_opts o;
    (void)state;
    assert_non_null(mkdtemp(dir));
    sim_opts_default(&o);
    o.state_dir = dir;
    o.serial = SERIAL;
    o.simulate_days = 8; /* about 1700 records: a ground truth over 64 KiB */
    o.start_ms = START_MS;
    sim *s = calloc(1, sizeof *s);
    assert_non_null(s);
    assert_int_equal(sim_open(s, &o), SIM_OK);
    assert_int_equal(sim_simulate(s), SIM_OK);
    uint64_t next = pen_log_next_seq(&s->pen->log);
    assert_int_equal(sim_close(s), SIM_OK);
    free(s);

    append_lines(dir, next, 1, "{\"seq\":"); /* a line whose slot never came, a torn one */
    check_pen(dir, 0, "one line past the log and a torn one");
    append_lines(dir, next, 0, "{\"seq\":12");
    check_pen(dir, 0, "a torn line");
    append_lines(dir, next, 3000, ""); /* 200 KB past the log */
    check_pen(dir, 0, "3000 lines past the log");
    append_lines(dir, next, 2, "");
    check_pen(dir, 1, "two lines past the log, then a day"); /* the new records take the seqs */
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truth_cut),
        cmocka_unit_test(test_kill_points),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
