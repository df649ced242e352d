/*
 * The pull (host/src/pull.c) from a fake pen over the fake transport: a log
 * of real chunks served window by window, then made to misbehave one way at
 * a time (what its DeviceInfo says, chunks missing, repeated, empty, past
 * what it announced or failing their checks, LogEnds that contradict the
 * chunks, silence, refusals, bad signatures), and the caller's callbacks
 * stopping it. Each case: the status, the words, the result's counts, the
 * alarm the archive would record, and what the callbacks were given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "fake_transport.h"
#include "script_pen.h"

#define SERIAL SCRIPT_PEN_SERIAL
#define RECORDS SCRIPT_PEN_RECORDS
#define CHUNKS SCRIPT_PEN_CHUNKS

typedef struct fixture {
    penlink_ctx *ctx;
    fake_wire w;
    script_pen p;
    penlink_dev *d;
    /* what the callbacks got */
    uint64_t records, chunks, heads, gaps, gap_first, gap_count, overlaps, bad_order;
    uint64_t next_expected;
    int stop_on_record, stop_on_chunk, stop_on_gap, stop_on_head;
    int notices;
    char notice[256];
} fixture;

static void on_notice(void *user, const char *text)
{
    fixture *f = user;
    f->notices++;
    snprintf(f->notice, sizeof f->notice, "%s", text);
}

static void open_pen(fixture *f)
{
    transport *t = fake_transport_new(f->ctx, &f->w);
    assert_non_null(t);
    assert_int_equal(dev_open_on(f->ctx, t, &f->d), PENLINK_OK);
}

static int setup_with(void **state, int signs)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    penlink_ctx_set_notice_cb(f->ctx, on_notice, f);
    script_pen_init(&f->p, signs);
    fake_wire_init(&f->w, script_pen_respond, &f->p);
    open_pen(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 0);
}

static int setup_signed(void **state)
{
    return setup_with(state, 1);
}

static int teardown(void **state)
{
    fixture *f = *state;
    penlink_dev_close(f->d);
    penlink_ctx_free(f->ctx);
    free(f);
    return 0;
}

static int on_record(void *user, const penlink_record *r)
{
    fixture *f = user;
    if (r->seq != f->next_expected)
        f->bad_order++;
    penlink_record want = script_pen_record(r->seq);
    if (r->depth_um != want.depth_um || r->time_ms != want.time_ms)
        f->bad_order++;
    f->next_expected = r->seq + 1;
    f->records++;
    return f->stop_on_record && f->records >= (uint64_t)f->stop_on_record;
}

static int on_chunk(void *user, const penlink_chunk *c)
{
    fixture *f = user;
    f->chunks++;
    if (f->p.signs && !c->has_link)
        f->bad_order++;
    return f->stop_on_chunk;
}

static int on_overlap(void *user, const penlink_record *r)
{
    fixture *f = user;
    (void)r;
    f->overlaps++;
    return 0;
}

static int on_head(void *user, const penlink_head *h)
{
    fixture *f = user;
    if (memcmp(h->device_key, f->p.key.public_key, 32) != 0)
        f->bad_order++;
    f->heads++;
    return f->stop_on_head;
}

static int on_gap(void *user, uint64_t first, uint64_t count, uint64_t acked)
{
    fixture *f = user;
    (void)acked;
    f->gaps++;
    f->gap_first = first;
    f->gap_count = count;
    f->next_expected = first + count;
    return f->stop_on_gap;
}

static int pull(fixture *f, uint64_t from, penlink_pull_result *res)
{
    penlink_pull_cb cb = PENLINK_PULL_CB_INIT;
    cb.on_record = on_record;
    cb.on_chunk = on_chunk;
    cb.on_overlap = on_overlap;
    cb.on_head = on_head;
    cb.on_gap = on_gap;
    cb.user = f;
    f->next_expected = from;
    return penlink_dev_pull(f->d, from, &cb, res);
}

static void assert_says(const fixture *f, const char *words)
{
    if (!strstr(penlink_ctx_errmsg(f->ctx), words))
        fail_msg("\"%s\" does not say \"%s\"", penlink_ctx_errmsg(f->ctx), words);
}

static void test_whole_log(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    assert_int_equal(pull(f, 0, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS);
    assert_int_equal(res.chunks, CHUNKS);
    assert_int_equal(res.first_seq, 0);
    assert_int_equal(res.next_seq, RECORDS);
    assert_int_equal(res.gap, 0);
    assert_int_equal(res.retries, 0);
    assert_int_equal(f->records, RECORDS);
    assert_int_equal(f->bad_order, 0);
    assert_string_equal(f->d->alarm, "");
}

/* A penlink_pull_cb without its size (no PENLINK_PULL_CB_INIT) is refused
 * before anything is asked of the pen; a NULL one is no callbacks. */
static void test_callbacks_without_size(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    penlink_pull_cb bare;
    memset(&bare, 0, sizeof bare);
    bare.on_record = on_record;
    bare.user = f;
    assert_int_equal(penlink_dev_pull(f->d, 0, &bare, &res), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(f->records, 0);
    bare.size = sizeof bare - 1;
    assert_int_equal(penlink_dev_pull(f->d, 0, &bare, &res), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_pull(f->d, 0, NULL, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS);
    assert_int_equal(f->records, 0);
    /* a result without its size is refused too; NULL is no result */
    penlink_pull_result bare_res;
    memset(&bare_res, 0, sizeof bare_res);
    assert_int_equal(penlink_dev_pull(f->d, 0, NULL, &bare_res), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(bare_res.records, 0);
    assert_int_equal(penlink_dev_pull(f->d, 0, NULL, NULL), PENLINK_OK);
    /* a later caller's larger result: this library's fields, the rest untouched */
    struct {
        penlink_pull_result now;
        uint64_t later;
    } big;
    memset(&big, 0, sizeof big);
    big.now.size = sizeof big;
    big.later = 7;
    assert_int_equal(penlink_dev_pull(f->d, 0, NULL, &big.now), PENLINK_OK);
    assert_int_equal(big.now.records, RECORDS);
    assert_int_equal(big.now.size, sizeof big);
    assert_int_equal(big.later, 7);
}

/* From inside a stored chunk: its earlier records are overlaps, not records. */
static void test_from_inside_a_chunk(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    assert_int_equal(pull(f, 12, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS - 12);
    assert_int_equal(f->overlaps, 2); /* 10 and 11 */
    assert_int_equal(res.first_seq, 12);
    assert_int_equal(f->bad_order, 0);
}

static void test_info_contradicts_itself(void **state)
{
    fixture *f = *state;
    f->p.first = 50; /* oldest above next */
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "DeviceInfo contradicts itself (oldest record 50");
    f->p.first = 0;
    f->p.acked = RECORDS + 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    f->p.acked = 0;
    f->p.next = DEV_SEQ_LIMIT + 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "at or above 2^63");
    assert_int_equal(f->p.pulls, 0);
}

static void test_info_names_another_pen(void **state)
{
    fixture *f = *state;
    f->p.info_serial = "PEN-999999";
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "gives two serial numbers");
    assert_int_equal(f->p.pulls, 0);
}

static void test_from_outside_the_range(void **state)
{
    fixture *f = *state;
    assert_int_equal(pull(f, DEV_SEQ_LIMIT, NULL), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "outside the protocol's range");
    assert_int_equal(penlink_dev_pull(NULL, 0, NULL, NULL), PENLINK_ERR_INVALID_ARG);
}

/* A chunk lost on the way (the pen still holds it): asked again, then given up. */
static void test_chunk_lost_every_time(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    f->p.drop_chunk = 3; /* records 10..14 */
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_PROTOCOL);
    assert_says(f, "records from seq 10 did not arrive whole (the pen still holds them)");
    assert_says(f, "asked again 3 times");
    assert_says(f, "check the cable");
    assert_int_equal(res.next_seq, 10);
    assert_int_equal(res.records, 10);
    assert_int_equal(f->records, 10);
    assert_int_equal(f->gaps, 0); /* the pen still holds them: never a gap */
    /* four windows at seq 10, the first of which also brought 0..9 */
    assert_int_equal(f->p.pulls, 4);
    assert_int_equal(f->notices, 3);
    assert_non_null(strstr(f->notice, "retry 3 of 3"));
}

/* The pen says twice that records are gone: a gap, and the pull goes on. */
static void test_gap_confirmed(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    f->p.first = 10; /* it holds 10..39 only */
    assert_int_equal(pull(f, 0, &res), PENLINK_OK);
    assert_int_equal(f->gaps, 1);
    assert_int_equal(f->gap_first, 0);
    assert_int_equal(f->gap_count, 10);
    assert_int_equal(res.gap, 10);
    assert_int_equal(res.first_seq, 10);
    assert_int_equal(res.records, RECORDS - 10);
    assert_int_equal(f->bad_order, 0);
    /* the caller may refuse a gap */
    f->stop_on_gap = 1;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_CANCELLED);
    assert_says(f, "stopped by the gap callback");
}

/* A chunk sent twice costs its window, never a record twice. */
static void test_chunk_repeated(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    f->p.repeat_first = 1;
    assert_int_equal(pull(f, 0, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS);
    assert_int_equal(f->records, RECORDS);
    assert_int_equal(f->bad_order, 0);
    assert_int_equal(res.retries, CHUNKS);
    assert_non_null(strstr(f->notice, "a chunk at seq 35 came again or out of order"));
}

static void test_empty_chunk(void **state)
{
    fixture *f = *state;
    f->p.empty_chunk = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "the pen sent an empty chunk at seq 0");
    assert_int_equal(f->records, 0);
}

static void test_chunk_above_2_63(void **state)
{
    fixture *f = *state;
    f->p.shift = DEV_SEQ_LIMIT - 3;
    f->p.next = DEV_SEQ_LIMIT;
    assert_int_equal(pull(f, DEV_SEQ_LIMIT - 3, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "at or above 2^63, outside the protocol's range: refused");
}

/* Records beyond what DeviceInfo announced (and the margin): refused, alarm "overrun". */
static void test_overrun(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    f->p.has_claim = 1;
    f->p.claim_next = 0; /* "my log is empty" */
    f->p.count_override = 5000;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_INTEGRITY);
    assert_says(f, "the pen sent records up to seq 4999, but said it held records below 0 only");
    assert_string_equal(f->d->alarm, "overrun");
    assert_int_equal(f->d->alarm_seq, 0);
    assert_int_equal(f->d->alarm_count, 5000);
    assert_int_equal(res.records, 0);
}

/* A chunk whose frame passed its CRC but whose data fails: the pen's fault. */
static void test_chunk_fails_its_checks(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    f->p.corrupt_chunk = 2; /* records 5..9 */
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_INTEGRITY);
    assert_says(f, "the chunk at seq 5 (5 records) arrived intact but failed its checks");
    assert_string_equal(f->d->alarm, "contradiction");
    assert_int_equal(f->d->alarm_seq, 5);
    assert_int_equal(res.records, 5);
    assert_int_equal(res.next_seq, 5);
}

static void test_end_before_the_chunks(void **state)
{
    fixture *f = *state;
    f->p.end_delta = -2;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_INTEGRITY);
    assert_says(f, "says its reply ended at seq 38, but it sent records through 39");
    assert_string_equal(f->d->alarm, "contradiction");
}

/* The log ends below what DeviceInfo said it held. */
static void test_log_ends_early(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    f->p.has_claim = 1;
    f->p.claim_next = RECORDS + 5;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_INTEGRITY);
    assert_says(f, "says its log ends at seq 40, but it said it held records up to 44");
    assert_string_equal(f->d->alarm, "contradiction");
    assert_int_equal(f->d->alarm_seq, RECORDS);
    assert_int_equal(f->d->alarm_count, 5);
}

static void test_more_but_nothing(void **state)
{
    fixture *f = *state;
    f->p.never_end = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "the pen said more records follow seq 0 but sent none");
}

static void test_silent_pen(void **state)
{
    fixture *f = *state;
    penlink_ctx_set_timeout(f->ctx, 100, 0);
    penlink_dev_set_timeout(f->d, 100, 0);
    f->p.silent_pulls = 100;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_TIMEOUT);
    assert_says(f, "the pen sent nothing for 100 ms at seq 0");
    assert_says(f, "the pen may be hung");
    assert_int_equal(f->p.pulls, 4);
    assert_int_equal(res.retries, 3); /* asked again: 3 times after the first */
}

static void test_pull_refused(void **state)
{
    fixture *f = *state;
    f->p.pull_error = PENLINK__V1__ERROR_CODE__ERROR_SEQ_NOT_AVAILABLE;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_DEVICE);
    assert_says(f, "does not have the records asked for (no such records)");
    assert_int_equal(penlink_dev_error(f->d)->code,
                     PENLINK__V1__ERROR_CODE__ERROR_SEQ_NOT_AVAILABLE);
}

/* An acknowledgement beyond the log's end: the pen refuses it (INVALID_ARGUMENT),
 * and the caller is told its argument was wrong, not that a config value was. */
static void test_ack_beyond_the_end(void **state)
{
    fixture *f = *state;
    uint64_t acked = 1;
    assert_int_equal(penlink_dev_ack(f->d, RECORDS, &acked), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(acked, 0);
    assert_int_equal(f->p.acks, 1);
    assert_says(f, "beyond the end of the pen's log");
    assert_int_equal(penlink_dev_error(f->d)->code,
                     PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT);
    /* the last record is fine */
    assert_int_equal(penlink_dev_ack(f->d, RECORDS - 1, &acked), PENLINK_OK);
    assert_int_equal(acked, RECORDS);
}

/* Review 17.3: a signing key without its size is refused before anything is sent. */
static void test_key_without_size(void **state)
{
    fixture *f = *state;
    penlink_key k;
    memset(&k, 0, sizeof k);
    int infos = f->p.infos;
    assert_int_equal(penlink_dev_clock_set_signed(f->d, 1000, &k, NULL), PENLINK_ERR_INVALID_ARG);
    penlink_config change = PENLINK_CONFIG_INIT;
    assert_int_equal(penlink_config_set_u32(&change, PENLINK_CFG_DEPTH_MAX_UM, 2000), PENLINK_OK);
    assert_int_equal(penlink_dev_config_set_signed(f->d, 1, &k, &change, NULL),
                     PENLINK_ERR_INVALID_ARG);
    assert_says(f, "PENLINK_KEY_INIT");
    assert_int_equal(f->p.infos, infos);
}

static void test_wrong_reply(void **state)
{
    fixture *f = *state;
    f->p.wrong_reply = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "the pen answered pull_log with config");
}

static void test_callbacks_stop(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    f->stop_on_record = 7;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_CANCELLED);
    assert_says(f, "stopped by the record callback");
    assert_int_equal(f->records, 7);
    f->stop_on_record = 0;
    f->stop_on_chunk = 1;
    f->records = 0;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_CANCELLED);
    assert_says(f, "stopped by the chunk callback");
    assert_int_equal(f->records, 0);
}

static void test_cancelled(void **state)
{
    fixture *f = *state;
    penlink_ctx_cancel(f->ctx);
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_CANCELLED);
    assert_says(f, "pull cancelled at seq 0");
    assert_int_equal(f->p.pulls, 0);
    penlink_ctx_reset_cancel(f->ctx);
}

/* ---- a pen that signs its log ---- */

static void test_signed_whole_log(void **state)
{
    fixture *f = *state;
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    assert_int_equal(pull(f, 0, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS);
    assert_true(f->heads >= 1);
    assert_int_equal(f->bad_order, 0);
    assert_string_equal(f->d->alarm, "");
}

static void test_signed_without_key(void **state)
{
    fixture *f = *state;
    f->p.omit_key = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "says it signs its log but has no device key");
}

static void test_signed_bad_head(void **state)
{
    fixture *f = *state;
    f->p.bad_signature = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_INTEGRITY);
    assert_says(f, "does not verify with its device key");
    assert_string_equal(f->d->alarm, "unverified");
    assert_int_equal(f->heads, 0);
}

static void test_signed_no_head(void **state)
{
    fixture *f = *state;
    f->p.no_head = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_INTEGRITY);
    assert_says(f, "sent no signed head");
}

static void test_signed_chunk_relinked(void **state)
{
    fixture *f = *state;
    f->p.relink = 2;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_INTEGRITY);
    assert_says(f, "the chunk of records 5..9 does not match its hash-chain link");
    assert_string_equal(f->d->alarm, "unverified");
}

static void test_signed_head_callback_stops(void **state)
{
    fixture *f = *state;
    f->stop_on_head = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_CANCELLED);
    assert_says(f, "stopped by the head callback");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define S(name) cmocka_unit_test_setup_teardown(name, setup_signed, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_whole_log),
        T(test_callbacks_without_size),
        T(test_from_inside_a_chunk),
        T(test_info_contradicts_itself),
        T(test_info_names_another_pen),
        T(test_from_outside_the_range),
        T(test_chunk_lost_every_time),
        T(test_gap_confirmed),
        T(test_chunk_repeated),
        T(test_empty_chunk),
        T(test_chunk_above_2_63),
        T(test_overrun),
        T(test_chunk_fails_its_checks),
        T(test_end_before_the_chunks),
        T(test_log_ends_early),
        T(test_more_but_nothing),
        T(test_silent_pen),
        T(test_pull_refused),
        T(test_ack_beyond_the_end),
        T(test_key_without_size),
        T(test_wrong_reply),
        T(test_callbacks_stop),
        T(test_cancelled),
        S(test_signed_whole_log),
        S(test_signed_without_key),
        S(test_signed_bad_head),
        S(test_signed_no_head),
        S(test_signed_chunk_relinked),
        S(test_signed_head_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
