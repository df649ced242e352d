/*
 * The flash log store through the protocol: logging, reboots, compaction,
 * pulls (ring chunks and the staged tail), acknowledgements, and the ring
 * wrapping over many cycles with exact overflow accounting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fwtest.h"

static void hello(rig *r)
{
    pl_envelope *e = rig_hello(r);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY);
    pl_envelope_free(NULL, e);
}

/* Every pulled record equals the ground truth record with the same seq. */
static void check_against_truth(const rig *r, const pull_result *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const pl_record *got = &p->rec[i];
        assert_true(got->seq < r->gt_n);
        assert_true(r->gt[got->seq].seq == got->seq);
        assert_true(pl_record_equal(got, &r->gt[got->seq]));
        if (i > 0)
            assert_true(got->seq == p->rec[i - 1].seq + 1);
    }
}

static void test_fresh_pen(void **state)
{
    rig r;
    uint64_t first = 1, next = 1, acked = 1;
    uint32_t rev = 0;
    pull_result p;
    (void)state;
    rig_init(&r, 4096, 64, 512);
    assert_int_equal(rig_boot(&r), PEN_OK);
    hello(&r);
    assert_int_equal(rig_info(&r, &first, &next, &acked, &rev), 0);
    assert_true(first == 0 && next == 0 && acked == 0);
    assert_int_equal(rev, 1);
    rig_pull_all(&r, 0, 0, &p);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.error, 0);
    assert_true(p.next_seq == 0);
    pull_result_free(&p);
    rig_free(&r);
}

static void test_log_reboot_pull(void **state)
{
    rig r;
    pull_result p;
    uint64_t first, next, acked;
    (void)state;
    rig_init(&r, 4096, 64, 64);
    assert_int_equal(rig_boot(&r), PEN_OK);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(rig_event(&r), PEN_OK);
        rig_settle(&r);
        if (i % 333 == 0)
            assert_int_equal(rig_boot(&r), PEN_OK); /* power cycles keep everything */
    }
    assert_int_equal(rig_boot(&r), PEN_OK);
    hello(&r);
    assert_int_equal(rig_info(&r, &first, &next, &acked, NULL), 0);
    assert_true(next == r.gt_n);
    assert_true(first == 0);
    /* most records are in chunks, the rest staged: both come back */
    assert_true(pen_log_ring_end(&r.p->log) > 0);
    assert_true(pen_log_ring_end(&r.p->log) < next);
    rig_pull_all(&r, 0, 0, &p);
    assert_int_equal(p.error, 0);
    assert_int_equal(p.n, r.gt_n);
    check_against_truth(&r, &p);
    pull_result_free(&p);

    /* a pull from the middle starts with the chunk holding from_seq */
    rig_pull_all(&r, 517, 1, &p);
    assert_true(p.n > 0);
    assert_true(p.rec[0].seq <= 517 && p.rec[p.n - 1].seq >= 517);
    check_against_truth(&r, &p);
    pull_result_free(&p);

    /* the first pull sealed the staged records into chunks (a pull only ever
     * sends stored chunks): the tail comes from the chunk that holds it */
    assert_true(pen_log_ring_end(&r.p->log) == next);
    uint64_t tail = next - 3;
    rig_pull_all(&r, tail, 0, &p);
    assert_int_equal(p.error, 0);
    assert_true(p.n > 0 && p.rec[0].seq <= tail);
    assert_true(p.rec[p.n - 1].seq == next - 1);
    check_against_truth(&r, &p);
    pull_result_free(&p);

    /* at the end: nothing, no error; past the end: SEQ_NOT_AVAILABLE */
    rig_pull_all(&r, next, 0, &p);
    assert_int_equal(p.n, 0);
    assert_int_equal(p.error, 0);
    pull_result_free(&p);
    rig_pull_all(&r, next + 1, 0, &p);
    assert_int_equal(p.error, PENLINK__V1__ERROR_CODE__ERROR_SEQ_NOT_AVAILABLE);
    pull_result_free(&p);
    rig_free(&r);
}

static void test_max_chunks_and_more(void **state)
{
    rig r;
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__PullLog q = PENLINK__V1__PULL_LOG__INIT;
    (void)state;
    rig_init(&r, 1024, 128, 32);
    assert_int_equal(rig_boot(&r), PEN_OK);
    for (int i = 0; i < 600; i++) {
        assert_int_equal(rig_event(&r), PEN_OK);
        rig_settle(&r);
    }
    hello(&r);
    q.has_from_seq = q.has_max_chunks = 1;
    q.from_seq = 0;
    q.max_chunks = 3;
    env.has_request_id = 1;
    env.request_id = 77;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
    env.pull_log = &q;
    size_t n = rig_call(&r, &env, &v);
    assert_int_equal(n, 4);
    uint64_t expect = 0;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(v[i]->body_case, PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK);
        assert_int_equal(v[i]->request_id, 77);
        assert_true(v[i]->log_chunk->first_seq == expect);
        expect += v[i]->log_chunk->record_count;
        /* every frame fits the smallest payload every host accepts */
        assert_true(v[i]->log_chunk->data.len <= PEN_CHUNK_DATA_MAX);
    }
    assert_int_equal(v[3]->body_case, PENLINK__V1__ENVELOPE__BODY_LOG_END);
    assert_true(v[3]->log_end->next_seq == expect);
    assert_true(v[3]->log_end->more);
    assert_true(v[3]->log_end->first_available_seq == 0);
    rig_replies_free(v, n);
    assert_true(r.max_frame_seen <= PL_FRAME_HEADER_SIZE + PL_FRAME_MIN_PAYLOAD);
    rig_free(&r);
}

/* Chunks in one PullLog reply: as many as asked, at most the pen's window. */
static size_t window_chunks(rig *r, uint32_t max_chunks, bool *more)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__PullLog q = PENLINK__V1__PULL_LOG__INIT;
    q.has_from_seq = q.has_max_chunks = 1;
    q.max_chunks = max_chunks;
    env.has_request_id = 1;
    env.request_id = ++r->rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
    env.pull_log = &q;
    size_t n = rig_call(r, &env, &v);
    assert_true(n >= 1);
    assert_int_equal(v[n - 1]->body_case, PENLINK__V1__ENVELOPE__BODY_LOG_END);
    *more = v[n - 1]->log_end->more;
    rig_replies_free(v, n);
    return n - 1;
}

static void test_pull_window(void **state)
{
    rig r;
    pull_result p;
    bool more;
    (void)state;
    rig_init(&r, 1024, 128, 32);
    r.opts.pull_max_chunks = PEN_PULL_MAX_CHUNKS + 1;
    assert_int_equal(rig_boot(&r), PEN_ERR_ARG);
    r.opts.pull_max_chunks = 2;
    assert_int_equal(rig_boot(&r), PEN_OK);
    for (int i = 0; i < 600; i++) {
        assert_int_equal(rig_event(&r), PEN_OK);
        rig_settle(&r);
    }
    hello(&r);
    assert_int_equal(window_chunks(&r, 3, &more), 2); /* fewer than asked */
    assert_true(more);
    assert_int_equal(window_chunks(&r, 0, &more), 2); /* the pen's default, capped */
    assert_int_equal(window_chunks(&r, 1, &more), 1); /* fewer asked: fewer sent */
    /* the whole log in windows of two chunks, nothing lost or doubled */
    rig_pull_all(&r, 0, 32, &p);
    assert_int_equal(p.error, 0);
    assert_int_equal(p.n, r.gt_n);
    check_against_truth(&r, &p);
    assert_true(p.chunks > 4);
    pull_result_free(&p);
    rig_free(&r);
}

static void test_ack(void **state)
{
    rig r;
    pull_result p;
    uint64_t first, next, acked;
    (void)state;
    rig_init(&r, 1024, 128, 32);
    assert_int_equal(rig_boot(&r), PEN_OK);
    for (int i = 0; i < 300; i++) {
        assert_int_equal(rig_event(&r), PEN_OK);
        rig_settle(&r);
    }
    hello(&r);
    next = r.gt_n;
    assert_true(rig_ack(&r, 99) == 100);
    assert_true(rig_ack(&r, 50) == 100); /* below the acked point: harmless */
    assert_true(rig_ack(&r, next) == -PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT);
    assert_true(rig_ack(&r, UINT64_MAX) == -PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT);
    assert_int_equal(rig_boot(&r), PEN_OK);
    hello(&r);
    assert_int_equal(rig_info(&r, &first, NULL, &acked, NULL), 0);
    assert_true(acked == 100 && first == 100);
    /* a pull from 0 starts at the chunk holding 100: acked records are not served again */
    rig_pull_all(&r, 0, 0, &p);
    assert_true(p.first_available == 100);
    assert_true(p.rec[0].seq <= 100 && p.rec[p.n - 1].seq == next - 1);
    for (size_t i = 0; i < p.chunks && i < 1; i++)
        assert_true(p.rec[0].seq + 200 > 100);
    check_against_truth(&r, &p);
    pull_result_free(&p);
    /* ack everything, staged tail included */
    assert_true(rig_ack(&r, next - 1) == (int64_t)next);
    assert_int_equal(rig_info(&r, &first, &next, &acked, NULL), 0);
    assert_true(first == next && acked == next);
    rig_pull_all(&r, 0, 0, &p);
    assert_int_equal(p.n, 0);
    pull_result_free(&p);
    rig_free(&r);
}

/* Lifetime cartridge count and seq survive reboots, also with everything acked. */
static void test_counters_survive(void **state)
{
    rig r;
    (void)state;
    rig_init(&r, 1024, 64, 16);
    assert_int_equal(rig_boot(&r), PEN_OK);
    for (int i = 0; i < 400; i++) {
        assert_int_equal(rig_event(&r), PEN_OK);
        rig_settle(&r);
    }
    uint32_t life = pen_log_lifetime(&r.p->log);
    uint64_t next = pen_log_next_seq(&r.p->log);
    assert_true(life > 0);
    hello(&r);
    assert_true(rig_ack(&r, next - 1) == (int64_t)next);
    assert_int_equal(rig_boot(&r), PEN_OK);
    assert_int_equal(pen_log_lifetime(&r.p->log), life);
    assert_true(pen_log_next_seq(&r.p->log) == next);
    rig_free(&r);
}

/*
 * The ring wraps many times; the host pulls and acks only now and then, so
 * some records are dropped. Every record the host never received was dropped
 * (never acked), and the LOG_OVERFLOW records' dropped counts cover every
 * record missing. They may count a few more: a pull seals the staged records
 * into a chunk, and on a full ring that can drop records the same pull had
 * already sent (the pen cannot know the host has them until it acks).
 */
static void test_wrap_overflow_accounting(void **state)
{
    rig r;
    pull_result p;
    uint64_t s = 99, dropped_sum = 0, received = 0;
    (void)state;
    /* 4 + staging + 6 ring sectors of 1 KiB */
    rig_init(&r, 1024, 4 + pen_log_stage_sectors(1024, 32) + 6, 32);
    uint8_t *seen = calloc(200000, 1);
    assert_non_null(seen);
    assert_int_equal(rig_boot(&r), PEN_OK);
    hello(&r);
    uint64_t from = 0;
    for (int i = 0; i < 40000; i++) {
        assert_int_equal(rig_event(&r), PEN_OK);
        rig_settle(&r);
        if (fw_rand(&s) % 1500 == 0) {
            rig_pull_all(&r, from, 0, &p);
            assert_int_equal(p.error, 0);
            check_against_truth(&r, &p);
            for (size_t k = 0; k < p.n; k++) {
                if (!seen[p.rec[k].seq]) {
                    received++;
                    if (p.rec[k].kind == PL_REC_LOG_OVERFLOW)
                        dropped_sum += p.rec[k].dropped;
                }
                seen[p.rec[k].seq] = 1;
            }
            if (p.next_seq > 0)
                assert_true(rig_ack(&r, p.next_seq - 1) == (int64_t)p.next_seq);
            from = p.next_seq;
            pull_result_free(&p);
        }
        if (i % 7000 == 6999)
            assert_int_equal(rig_boot(&r), PEN_OK), hello(&r);
    }
    rig_pull_all(&r, from, 0, &p);
    check_against_truth(&r, &p);
    for (size_t k = 0; k < p.n; k++) {
        if (!seen[p.rec[k].seq]) {
            received++;
            if (p.rec[k].kind == PL_REC_LOG_OVERFLOW)
                dropped_sum += p.rec[k].dropped;
        }
        seen[p.rec[k].seq] = 1;
    }
    pull_result_free(&p);
    uint64_t next = pen_log_next_seq(&r.p->log);
    assert_true(next == r.gt_n);
    uint64_t missing = next - received;
    /* the overflow records themselves tell the whole loss */
    printf("    %llu records, %llu received, %llu lost to overflow, all reported\n",
           (unsigned long long)next, (unsigned long long)received, (unsigned long long)missing);
    assert_true(missing > 0);
    assert_true(dropped_sum >= missing);
    assert_true(dropped_sum - missing <= 4 * 32 * 6); /* at most a few ring sectors' worth */
    uint64_t overflows = 0;
    for (size_t k = 0; k < r.gt_n; k++)
        overflows += r.gt[k].kind == PL_REC_LOG_OVERFLOW;
    assert_true(overflows > 10);
    /* the ring went round many times */
    assert_true(r.fl.ops > 40000);
    free(seen);
    rig_free(&r);
}

/*
 * A pull in many small windows reads each chunk about once: a window that
 * goes on where the last stopped keeps its place in the ring rather than
 * walking it again from the oldest sector (which made a long pull quadratic
 * in flash reads). A window that starts elsewhere, after the ring has
 * wrapped under the old place, still gets exactly the right records.
 */
static void test_pull_windows_keep_their_place(void **state)
{
    rig r;
    pull_result one, many;
    (void)state;
    rig_init(&r, 1024, 4 + pen_log_stage_sectors(1024, 32) + 96, 32);
    assert_int_equal(rig_boot(&r), PEN_OK);
    for (int i = 0; i < 8000; i++) {
        assert_int_equal(rig_event(&r), PEN_OK);
        rig_settle(&r);
    }
    hello(&r);
    rig_pull_all(&r, 0, 0, &one); /* seals the staged tail: the log is all chunks now */
    assert_int_equal(one.error, 0);
    pull_result_free(&one);
    uint64_t before = r.fl.read_bytes;
    rig_pull_all(&r, 0, 0, &one);
    uint64_t read_one = r.fl.read_bytes - before;
    before = r.fl.read_bytes;
    rig_pull_all(&r, 0, 1, &many);
    uint64_t read_many = r.fl.read_bytes - before;
    assert_int_equal(many.error, 0);
    assert_true(many.chunks > 200);
    assert_true(many.n == one.n && many.next_seq == one.next_seq);
    check_against_truth(&r, &many);
    printf("    %llu chunks: %llu bytes read in windows of 32, %llu in windows of 1\n",
           (unsigned long long)many.chunks, (unsigned long long)read_one,
           (unsigned long long)read_many);
    /* one window per chunk costs no more than a few reads more per chunk */
    assert_true(read_many <= read_one + many.chunks * 4 * PEN_CHUNK_HDR);
    pull_result_free(&one);
    pull_result_free(&many);

    /* a window of 2 chunks, then the ring wraps under the place it stopped */
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__PullLog q = PENLINK__V1__PULL_LOG__INIT;
    q.has_from_seq = q.has_max_chunks = 1;
    q.max_chunks = 2;
    env.has_request_id = 1;
    env.request_id = ++r.rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
    env.pull_log = &q;
    size_t n = rig_call(&r, &env, &v);
    assert_int_equal(n, 3);
    assert_int_equal(v[2]->body_case, PENLINK__V1__ENVELOPE__BODY_LOG_END);
    uint64_t stopped = v[2]->log_end->next_seq;
    rig_replies_free(v, n);
    for (int i = 0; i < 40000 && pen_log_first_seq(&r.p->log) <= stopped + 2000; i++) {
        assert_int_equal(rig_event(&r), PEN_OK);
        rig_settle(&r);
    }
    assert_true(pen_log_first_seq(&r.p->log) > stopped + 2000);
    rig_pull_all(&r, stopped, 1, &many);
    assert_int_equal(many.error, 0);
    assert_true(many.n > 0 && many.rec[0].seq >= pen_log_first_seq(&r.p->log));
    assert_true(many.first_available > stopped);
    assert_true(many.next_seq == r.gt_n);
    check_against_truth(&r, &many);
    pull_result_free(&many);
    rig_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_pen),
        cmocka_unit_test(test_log_reboot_pull),
        cmocka_unit_test(test_max_chunks_and_more),
        cmocka_unit_test(test_pull_window),
        cmocka_unit_test(test_ack),
        cmocka_unit_test(test_counters_survive),
        cmocka_unit_test(test_wrap_overflow_accounting),
        cmocka_unit_test(test_pull_windows_keep_their_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
