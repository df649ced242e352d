/*
 * penlink_decoder_feed()/_finish(): a failure sticks whatever stopped the
 * decode (the record callback, a message callback, penlink_ctx_cancel()),
 * the records passed to on_record are counted even when the callback
 * stopped there, and the input may come in any split, one byte at a time
 * included.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "penlink/penlink.h"
#include "pl/chunk.h"
#include "pl/envelope.h"

#define N_RECS 5

typedef struct seen {
    int records, messages;
    int stop_record_at; /* stop when this many records came; 0: never */
    int stop_messages;  /* non-zero: the message callback stops */
} seen;

static int on_record(void *user, const penlink_record *r)
{
    seen *s = user;
    assert_int_equal(r->seq, 100 + (uint64_t)s->records);
    s->records++;
    return s->stop_record_at && s->records >= s->stop_record_at;
}

static int on_message(void *user, uint64_t offset, uint32_t request_id, const char *name)
{
    (void)offset;
    (void)request_id;
    (void)name;
    seen *s = user;
    s->messages++;
    return s->stop_messages;
}

/* A bare chunk of N_RECS records, seqs 100..: its length. */
static size_t make_chunk(uint8_t *out, size_t cap)
{
    static uint8_t arena[PL_CHUNK_ENC_ARENA];
    pl_record recs[N_RECS];
    memset(recs, 0, sizeof recs);
    for (int i = 0; i < N_RECS; i++) {
        recs[i].seq = 100 + (uint64_t)i;
        recs[i].time_ms = 1767258045123 + i;
        recs[i].kind = PL_REC_POWER_ON;
    }
    pl_chunk_enc enc;
    pl_chunk_info info;
    assert_int_equal(pl_chunk_enc_init(&enc, arena, sizeof arena), PL_OK);
    assert_int_equal(pl_chunk_encode(&enc, pl_record_array_source, recs, N_RECS, out, cap, &info),
                     PL_OK);
    pl_chunk_enc_fini(&enc);
    return info.data_size;
}

static uint64_t stat_records(penlink_decoder *d)
{
    penlink_decoder_stats st = PENLINK_DECODER_STATS_INIT;
    assert_int_equal(penlink_decoder_stats_get(d, &st), PENLINK_OK);
    return st.records;
}

/* The record callback stops at the second record: CANCELLED, and it sticks. */
static void test_record_stop_sticks(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len = make_chunk(buf, sizeof buf);
    seen s = { .stop_record_at = 2 };
    penlink_ctx *ctx = NULL;
    penlink_decoder *d = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_decoder_new(ctx, on_record, NULL, &s, &d), PENLINK_OK);
    int st = penlink_decoder_feed(d, buf, len);
    if (st == PENLINK_OK) /* a bare chunk may wait for the end of input */
        st = penlink_decoder_finish(d);
    assert_int_equal(st, PENLINK_ERR_CANCELLED);
    assert_int_equal(s.records, 2);
    assert_int_equal(stat_records(d), 2); /* both were delivered */
    assert_int_equal(penlink_decoder_feed(d, buf, len), PENLINK_ERR_CANCELLED);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_ERR_CANCELLED);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_ERR_CANCELLED);
    assert_int_equal(s.records, 2); /* nothing more after the stop */
    penlink_decoder_free(d);
    penlink_ctx_free(ctx);
}

/* penlink_ctx_cancel(): CANCELLED, and resetting the context does not resume the decoder. */
static void test_cancel_sticks(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len = make_chunk(buf, sizeof buf);
    seen s = { 0 };
    penlink_ctx *ctx = NULL;
    penlink_decoder *d = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_decoder_new(ctx, on_record, NULL, &s, &d), PENLINK_OK);
    penlink_ctx_cancel(ctx);
    assert_int_equal(penlink_decoder_feed(d, buf, len), PENLINK_ERR_CANCELLED);
    penlink_ctx_reset_cancel(ctx);
    assert_int_equal(penlink_decoder_feed(d, buf, len), PENLINK_ERR_CANCELLED);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_ERR_CANCELLED);
    assert_int_equal(s.records, 0);
    assert_int_equal(stat_records(d), 0);
    penlink_decoder_free(d);
    penlink_ctx_free(ctx);
}

/* A message callback stops a file of frames: CANCELLED from finish too, not PROTOCOL. */
static void test_message_stop_sticks(void **state)
{
    (void)state;
    uint8_t buf[512];
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Hello hello = PENLINK__V1__HELLO__INIT;
    env.has_request_id = 1;
    env.request_id = 1;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    long n = pl_envelope_frame(&env, buf, 256);
    assert_true(n > 4);
    long m = pl_envelope_frame(&env, buf + n, 256);
    assert_true(m > 4);
    seen s = { .stop_messages = 1 };
    penlink_ctx *ctx = NULL;
    penlink_decoder *d = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_decoder_new(ctx, on_record, on_message, &s, &d), PENLINK_OK);
    /* the first frame and half of the second: finish would see a cut-short frame */
    assert_int_equal(penlink_decoder_feed(d, buf, (size_t)n + 3), PENLINK_ERR_CANCELLED);
    assert_int_equal(s.messages, 1);
    assert_int_equal(penlink_decoder_feed(d, buf + n + 3, (size_t)m - 3), PENLINK_ERR_CANCELLED);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_ERR_CANCELLED);
    assert_int_equal(s.messages, 1);
    penlink_decoder_free(d);
    penlink_ctx_free(ctx);
}

/* One byte a call, a call of 0 bytes first: the same records as one feed. */
static void test_any_split(void **state)
{
    (void)state;
    uint8_t buf[4096];
    size_t len = make_chunk(buf, sizeof buf);
    seen s = { 0 };
    penlink_ctx *ctx = NULL;
    penlink_decoder *d = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_decoder_new(ctx, on_record, NULL, &s, &d), PENLINK_OK);
    assert_int_equal(penlink_decoder_feed(d, buf, 0), PENLINK_OK);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(penlink_decoder_feed(d, buf + i, 1), PENLINK_OK);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_OK);
    assert_int_equal(penlink_decoder_format(d), PENLINK_INPUT_CHUNKS);
    assert_int_equal(s.records, N_RECS);
    assert_int_equal(stat_records(d), N_RECS);
    penlink_decoder_free(d);

    /* an input of one byte: too short for any format, said by finish, and it sticks */
    assert_int_equal(penlink_decoder_new(ctx, on_record, NULL, &s, &d), PENLINK_OK);
    assert_int_equal(penlink_decoder_feed(d, "P", 1), PENLINK_OK);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_ERR_PROTOCOL);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_ERR_PROTOCOL);
    assert_int_equal(penlink_decoder_feed(d, "N", 1), PENLINK_ERR_PROTOCOL);
    penlink_decoder_free(d);

    /* an unknown format told by the second byte of two calls: UNSUPPORTED, and it sticks */
    assert_int_equal(penlink_decoder_new(ctx, on_record, NULL, &s, &d), PENLINK_OK);
    assert_int_equal(penlink_decoder_feed(d, "x", 1), PENLINK_OK);
    assert_int_equal(penlink_decoder_feed(d, "y", 1), PENLINK_ERR_UNSUPPORTED);
    assert_int_equal(penlink_decoder_feed(d, buf, len), PENLINK_ERR_UNSUPPORTED);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_ERR_UNSUPPORTED);
    assert_int_equal(penlink_decoder_feed(NULL, buf, 1), PENLINK_ERR_INVALID_ARG);
    penlink_decoder_free(d);
    penlink_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_stop_sticks),
        cmocka_unit_test(test_cancel_sticks),
        cmocka_unit_test(test_message_stop_sticks),
        cmocka_unit_test(test_any_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
