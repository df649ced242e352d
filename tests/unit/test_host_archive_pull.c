/*
 * penlink_archive_pull (host/src/archive.c): the scripted pen over the fake
 * transport into the fake archive backend. The pull's steps (prepare, the
 * records, the outcome on record, the acknowledgement) against storage that
 * fails at each of them, records that contradict the archive, gaps of each
 * kind with the words their alarm keeps, and a pen that acknowledges more
 * than it was told. The rule under test throughout: nothing is acknowledged
 * that is not committed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "archive.h"
#include "device.h"
#include "fake_archive.h"
#include "fake_transport.h"
#include "script_pen.h"

#define SERIAL SCRIPT_PEN_SERIAL
#define RECORDS SCRIPT_PEN_RECORDS

typedef struct fixture {
    penlink_ctx *ctx;
    fake_wire w;
    script_pen p;
    penlink_dev *d;
    fake_archive fa;
    penlink_archive ar;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    script_pen_init(&f->p, 0);
    fake_wire_init(&f->w, script_pen_respond, &f->p);
    transport *t = fake_transport_new(f->ctx, &f->w);
    assert_non_null(t);
    assert_int_equal(dev_open_on(f->ctx, t, &f->d), PENLINK_OK);
    fake_archive_init(&f->fa, f->ctx);
    f->ar.ctx = f->ctx;
    f->ar.b = &f->fa.base;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    penlink_dev_close(f->d);
    penlink_ctx_free(f->ctx);
    free(f);
    return 0;
}

static void assert_says(const char *text, const char *words)
{
    if (!strstr(text, words))
        fail_msg("\"%s\" does not say \"%s\"", text, words);
}

/* Records 0..n-1 archived by an earlier pull, as device 1. */
static void archived(fixture *f, uint64_t n)
{
    if (f->fa.n_pens == 0)
        fake_archive_pen(&f->fa, 1, SERIAL, NULL);
    for (uint64_t s = 0; s < n; s++) {
        penlink_record r = script_pen_record(s);
        fake_archive_record(&f->fa, 1, &r);
    }
}

static const penlink_alarm *alarm_of(const fixture *f, const char *kind)
{
    for (size_t i = 0; i < f->fa.n_alarms; i++)
        if (strcmp(f->fa.alarms[i].kind, kind) == 0)
            return &f->fa.alarms[i];
    return NULL;
}

static void test_first_pull(void **state)
{
    fixture *f = *state;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT, bare;
    /* a result without its size is refused before anything is pulled or stored */
    memset(&bare, 0, sizeof bare);
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &bare), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(f->fa.n_records, 0);
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_OK);
    assert_string_equal(res.serial, SERIAL);
    assert_int_equal(res.from_seq, 0);
    assert_int_equal(res.next_seq, RECORDS);
    assert_int_equal(res.records_new, RECORDS);
    assert_int_equal(res.records_dup, 0);
    assert_int_equal(res.conflicts, 0);
    assert_int_equal(res.pen_next_seq, RECORDS);
    assert_int_equal(f->fa.n_records, RECORDS);
    assert_int_equal(f->fa.pull_begins, 1);
    assert_string_equal(f->fa.pull_result, "ok");
    assert_int_equal(f->fa.n_alarms, 0);
    /* acknowledged once, through the last record committed */
    assert_int_equal(f->p.acks, 1);
    assert_int_equal(f->p.acked_through, RECORDS - 1);
    assert_int_equal(res.acked_seq, RECORDS);
    assert_int_equal(penlink_archive_pull(NULL, f->d, NULL, &res), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_pull(&f->ar, NULL, NULL, &res), PENLINK_ERR_INVALID_ARG);
}

/* Again: from where the archive ends, nothing new, nothing acknowledged again. */
static void test_second_pull(void **state)
{
    fixture *f = *state;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_OK);
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_OK);
    assert_int_equal(f->fa.pull_from, RECORDS);
    assert_int_equal(res.records_new, 0);
    assert_int_equal(f->fa.n_records, RECORDS);
    assert_int_equal(f->p.acks, 1);
}

/* An unsigned pen that still holds records it was never told to forget:
 * asked for again and compared, then acknowledged. */
static void test_unacknowledged_records_asked_again(void **state)
{
    fixture *f = *state;
    archived(f, 20);
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_OK);
    assert_int_equal(f->fa.pull_from, 0);
    assert_int_equal(res.records_dup, 20);
    assert_int_equal(res.records_new, RECORDS - 20);
    assert_int_equal(f->p.acked_through, RECORDS - 1);
}

/* The pen sends other content for an archived record: both kept, the alarm
 * recorded, the pull said so, the pen told nothing. */
static void test_conflict(void **state)
{
    fixture *f = *state;
    archived(f, 10);
    f->fa.records[7].r.depth_um += 100;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_ERR_INTEGRITY);
    assert_says(penlink_ctx_errmsg(f->ctx), "1 records of " SERIAL " arrived with content "
                                            "different from the archived ones (first: seq 7)");
    assert_int_equal(res.conflicts, 1);
    const penlink_alarm *a = alarm_of(f, "conflict");
    assert_non_null(a);
    assert_int_equal(a->seq, 7);
    assert_int_equal(a->count, 1);
    assert_string_equal(f->fa.pull_result, "conflict");
    assert_int_equal(f->p.acks, 0);
}

/* Storage that fails during the records: the pull fails in its words, what
 * came before is kept (a pen that does not sign), the outcome is on record,
 * and the pen is told nothing. */
static void test_store_fails_midway(void **state)
{
    static const struct {
        const char *op, *kept;
        uint64_t next;
    } cases[] = {
        { "record", "This pull archived the records through seq 1", 2 },
        { "chunk", "This pull archived the records through seq 9", 10 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fixture *f = *state;
        fake_archive_init(&f->fa, f->ctx);
        f->p.acks = 0;
        f->fa.fail_op = cases[i].op;
        f->fa.fail_at = 3;
        f->fa.fail_status = PENLINK_ERR_IO;
        penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
        assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_ERR_IO);
        assert_int_equal(res.next_seq, cases[i].next);
        assert_int_equal(f->p.acks, 0);
        assert_int_equal(f->fa.pull_ends, 1);
        assert_string_equal(f->fa.pull_result, "failed");
        assert_says(f->fa.pull_message, cases[i].op);
        assert_says(f->fa.pull_message, cases[i].kept);
        assert_string_equal(penlink_ctx_errmsg(f->ctx), f->fa.pull_message);
    }
}

/* The last commit fails (a full disk): rolled back, failed, not acknowledged. */
static void test_final_commit_fails(void **state)
{
    fixture *f = *state;
    f->fa.fail_op = "commit";
    f->fa.fail_at = 2; /* the prepare's commit goes through */
    f->fa.fail_status = PENLINK_ERR_IO;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_ERR_IO);
    assert_int_equal(f->p.acks, 0);
    assert_int_equal(res.next_seq, 0); /* only what an earlier commit holds is archived */
    assert_true(f->fa.rollbacks >= 1);
}

/* Storage that fails before the records: nothing asked of the pen. */
static void test_prepare_fails(void **state)
{
    static const char *ops[] = { "begin",    "device",    "pin_key", "key_replacements",
                                 "next_seq", "pull_begin" };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        fixture *f = *state;
        fake_archive_init(&f->fa, f->ctx);
        f->fa.fail_op = ops[i];
        f->fa.fail_status = PENLINK_ERR_IO;
        f->p.pulls = 0;
        penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
        int rc = penlink_archive_pull(&f->ar, f->d, NULL, &res);
        if (rc != PENLINK_ERR_IO)
            fail_msg("%s failing: the pull returned %d", ops[i], rc);
        assert_int_equal(f->p.pulls, 0);
        assert_int_equal(f->p.acks, 0);
        assert_int_equal(f->fa.commits, 0);
    }
}

/* Records gone from the pen, each way, and what their alarm says. */
static void test_gap_never_acknowledged(void **state)
{
    fixture *f = *state;
    f->p.first = 10; /* dropped before anyone pulled them */
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_OK);
    assert_int_equal(res.gap, 10);
    assert_int_equal(res.records_new, RECORDS - 10);
    const penlink_alarm *a = alarm_of(f, "gap");
    assert_non_null(a);
    assert_int_equal(a->seq, 0);
    assert_int_equal(a->count, 10);
    assert_says(a->detail, "records 0..9 are no longer on the pen, which never had them "
                           "acknowledged: they were dropped before anyone pulled them");
    assert_int_equal(f->p.acked_through, RECORDS - 1);
}

static void test_gap_acknowledged_elsewhere(void **state)
{
    fixture *f = *state;
    archived(f, 3);
    f->p.first = f->p.acked = 10;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_OK);
    assert_int_equal(f->fa.pull_from, 3);
    const penlink_alarm *a = alarm_of(f, "gap");
    assert_non_null(a);
    assert_int_equal(a->seq, 3);
    assert_int_equal(a->count, 7);
    assert_says(a->detail, "records 3..9 are no longer on the pen: they were acknowledged "
                           "before (by another archive or host)");
    assert_int_equal(res.records_new, RECORDS - 10);
}

static void test_gap_partly_acknowledged(void **state)
{
    fixture *f = *state;
    archived(f, 3);
    f->p.first = 10;
    f->p.acked = 6;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_OK);
    const penlink_alarm *a = alarm_of(f, "gap");
    assert_non_null(a);
    assert_says(a->detail, "records 3..9 are no longer on the pen: those below 6 were "
                           "acknowledged before");
}

/* The gap's alarm cannot be stored: the pull fails, nothing acknowledged. */
static void test_gap_alarm_fails(void **state)
{
    fixture *f = *state;
    f->p.first = 10;
    f->fa.fail_op = "alarm";
    f->fa.fail_status = PENLINK_ERR_IO;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_ERR_IO);
    assert_int_equal(f->p.acks, 0);
    assert_string_equal(f->fa.pull_result, "failed");
}

/* A pen that says it acknowledged more than it was told: alarm ack_mismatch. */
static void test_ack_mismatch(void **state)
{
    fixture *f = *state;
    f->p.ack_delta = 5;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_ERR_INTEGRITY);
    assert_says(penlink_ctx_errmsg(f->ctx), "the pen says every record below seq 45 is "
                                            "acknowledged, but penlink acknowledged only through "
                                            "39");
    const penlink_alarm *a = alarm_of(f, "ack_mismatch");
    assert_non_null(a);
    assert_int_equal(a->seq, RECORDS);
    assert_int_equal(a->count, 5);
    assert_int_equal(f->fa.n_records, RECORDS); /* what was pulled stays archived */
}

/* A pen that refuses to acknowledge the records it has just sent contradicts
 * itself: a device error (not the caller's invalid argument); what was
 * pulled stays archived. */
static void test_ack_refused(void **state)
{
    fixture *f = *state;
    f->p.refuse_ack = 1;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_ERR_DEVICE);
    assert_says(penlink_ctx_errmsg(f->ctx), "the pen refused to acknowledge the records it had "
                                            "just sent (through seq 39)");
    assert_int_equal(f->p.acks, 1);
    assert_int_equal(f->fa.n_records, RECORDS);
}

/* The pen fails the pull (its words, its alarm on record) and keeps its log. */
static void test_pen_fails_the_pull(void **state)
{
    fixture *f = *state;
    f->p.corrupt_chunk = 3; /* records 10..14 */
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(&f->ar, f->d, NULL, &res), PENLINK_ERR_INTEGRITY);
    const penlink_alarm *a = alarm_of(f, "contradiction");
    assert_non_null(a);
    assert_int_equal(a->seq, 10);
    assert_string_equal(f->fa.pull_result, "failed");
    assert_says(f->fa.pull_message, "arrived intact but failed its checks");
    assert_says(f->fa.pull_message, "This pull archived the records through seq 9");
    assert_int_equal(res.next_seq, 10);
    assert_int_equal(f->p.acks, 0);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_first_pull),
        T(test_second_pull),
        T(test_unacknowledged_records_asked_again),
        T(test_conflict),
        T(test_store_fails_midway),
        T(test_final_commit_fails),
        T(test_prepare_fails),
        T(test_gap_never_acknowledged),
        T(test_gap_acknowledged_elsewhere),
        T(test_gap_partly_acknowledged),
        T(test_gap_alarm_fails),
        T(test_ack_mismatch),
        T(test_ack_refused),
        T(test_pen_fails_the_pull),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
