/* Envelopes: round trips of every message, unknown fields, the arena allocator. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pl/envelope.h"
#include "pl/frame.h"
#include "testutil.h"

static uint8_t fbuf[8192];

/* Packs @p env into a frame, decodes the frame, unpacks and returns it. */
static pl_envelope *through_wire(const pl_envelope *env)
{
    long n = pl_envelope_frame(env, fbuf, sizeof fbuf);
    assert_true(n > (long)PL_FRAME_HEADER_SIZE);
    assert_int_equal((size_t)n, pl_envelope_frame_size(env));
    static uint8_t dbuf[PL_FRAME_HEADER_SIZE + 8192];
    pl_frame_decoder d;
    pl_frame fr;
    size_t used;
    pl_frame_decoder_init(&d, dbuf, sizeof dbuf, 8192);
    assert_int_equal(pl_frame_decoder_feed(&d, fbuf, (size_t)n, &used, &fr), PL_OK);
    pl_envelope *out = pl_envelope_unpack(NULL, fr.payload, fr.len);
    assert_non_null(out);
    return out;
}

static void test_every_message(void **state)
{
    (void)state;
    Penlink__V1__Hello hello = PENLINK__V1__HELLO__INIT;
    Penlink__V1__HelloReply hr = PENLINK__V1__HELLO_REPLY__INIT;
    Penlink__V1__GetInfo gi = PENLINK__V1__GET_INFO__INIT;
    Penlink__V1__DeviceInfo di = PENLINK__V1__DEVICE_INFO__INIT;
    Penlink__V1__ConfigLimits lim = PENLINK__V1__CONFIG_LIMITS__INIT;
    Penlink__V1__GetConfig gc = PENLINK__V1__GET_CONFIG__INIT;
    Penlink__V1__Config cfg = PENLINK__V1__CONFIG__INIT;
    Penlink__V1__SetConfig sc = PENLINK__V1__SET_CONFIG__INIT;
    Penlink__V1__SetConfigReply scr = PENLINK__V1__SET_CONFIG_REPLY__INIT;
    Penlink__V1__PullLog pl = PENLINK__V1__PULL_LOG__INIT;
    Penlink__V1__LogChunk lc = PENLINK__V1__LOG_CHUNK__INIT;
    Penlink__V1__LogEnd le = PENLINK__V1__LOG_END__INIT;
    Penlink__V1__AckLog al = PENLINK__V1__ACK_LOG__INIT;
    Penlink__V1__AckLogReply alr = PENLINK__V1__ACK_LOG_REPLY__INIT;
    Penlink__V1__SetClock sck = PENLINK__V1__SET_CLOCK__INIT;
    Penlink__V1__SetClockReply sckr = PENLINK__V1__SET_CLOCK_REPLY__INIT;
    Penlink__V1__Error err = PENLINK__V1__ERROR__INIT;
    uint8_t data[100];
    memset(data, 0xAB, sizeof data);

    hello.has_protocol_major = 1;
    hello.protocol_major = 1;
    hello.client = "x";
    hr.has_max_frame_payload = 1;
    hr.max_frame_payload = 4096;
    hr.serial = "PEN-000123";
    lim.has_depth_max_um = 1;
    lim.depth_max_um = 3000;
    di.serial = "PEN-000123";
    di.has_log_next_seq = 1;
    di.log_next_seq = UINT64_MAX;
    di.has_device_time_ms = 1;
    di.device_time_ms = -5;
    di.limits = &lim;
    cfg.has_depth_max_um = 1;
    cfg.depth_max_um = 2500;
    cfg.device_label = "Room 2";
    sc.has_expected_revision = 1;
    sc.expected_revision = 9;
    sc.config = &cfg;
    scr.has_revision = 1;
    scr.revision = 10;
    scr.config = &cfg;
    pl.has_from_seq = 1;
    pl.from_seq = 1ull << 40;
    pl.has_max_chunks = 1;
    pl.max_chunks = 8;
    lc.has_first_seq = lc.has_record_count = lc.has_raw_size = lc.has_data = 1;
    lc.first_seq = 77;
    lc.record_count = 512;
    lc.raw_size = 3000;
    lc.data.data = data;
    lc.data.len = sizeof data;
    le.has_next_seq = le.has_more = 1;
    le.next_seq = 589;
    le.more = 1;
    al.has_through_seq = 1;
    al.through_seq = 588;
    alr.has_acked_seq = 1;
    alr.acked_seq = 589;
    sck.has_time_ms = 1;
    sck.time_ms = 1767258000000;
    sckr.has_previous_time_ms = 1;
    sckr.previous_time_ms = 1767257999000;
    err.has_code = 1;
    err.code = PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT;
    err.message = "depth_max_um must be 0..3000";
    err.field = "config.depth_max_um";

    struct {
        Penlink__V1__Envelope__BodyCase c;
        void *msg;
    } cases[] = {
        { PENLINK__V1__ENVELOPE__BODY_HELLO, &hello },
        { PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY, &hr },
        { PENLINK__V1__ENVELOPE__BODY_GET_INFO, &gi },
        { PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO, &di },
        { PENLINK__V1__ENVELOPE__BODY_GET_CONFIG, &gc },
        { PENLINK__V1__ENVELOPE__BODY_CONFIG, &cfg },
        { PENLINK__V1__ENVELOPE__BODY_SET_CONFIG, &sc },
        { PENLINK__V1__ENVELOPE__BODY_SET_CONFIG_REPLY, &scr },
        { PENLINK__V1__ENVELOPE__BODY_PULL_LOG, &pl },
        { PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK, &lc },
        { PENLINK__V1__ENVELOPE__BODY_LOG_END, &le },
        { PENLINK__V1__ENVELOPE__BODY_ACK_LOG, &al },
        { PENLINK__V1__ENVELOPE__BODY_ACK_LOG_REPLY, &alr },
        { PENLINK__V1__ENVELOPE__BODY_SET_CLOCK, &sck },
        { PENLINK__V1__ENVELOPE__BODY_SET_CLOCK_REPLY, &sckr },
        { PENLINK__V1__ENVELOPE__BODY_ERROR, &err },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
        env.has_request_id = 1;
        env.request_id = (uint32_t)(1000 + i);
        env.body_case = cases[i].c;
        env.hello = cases[i].msg; /* the body is a union: any member sets it */
        pl_envelope *out = through_wire(&env);
        assert_int_equal(out->request_id, 1000 + i);
        assert_int_equal(out->body_case, cases[i].c);
        /* packing the result again gives the same bytes */
        size_t a = penlink__v1__envelope__get_packed_size(&env);
        size_t b = penlink__v1__envelope__get_packed_size(out);
        assert_int_equal(a, b);
        uint8_t *pa = malloc(a), *pb = malloc(b);
        penlink__v1__envelope__pack(&env, pa);
        penlink__v1__envelope__pack(out, pb);
        assert_memory_equal(pa, pb, a);
        free(pa);
        free(pb);
        pl_envelope_free(NULL, out);
    }
}

/* A newer peer's fields and messages are ignored, not fatal. */
static void test_unknown_fields(void **state)
{
    (void)state;
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__GetInfo gi = PENLINK__V1__GET_INFO__INIT;
    env.has_request_id = 1;
    env.request_id = 5;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_INFO;
    env.get_info = &gi;
    uint8_t buf[256];
    size_t n = penlink__v1__envelope__pack(&env, buf);
    /* field 200 varint 42, field 201 bytes "new" */
    const uint8_t extra[] = { 0xC0, 0x0C, 42, 0xCA, 0x0C, 3, 'n', 'e', 'w' };
    memcpy(buf + n, extra, sizeof extra);
    pl_envelope *out = pl_envelope_unpack(NULL, buf, n + sizeof extra);
    assert_non_null(out);
    assert_int_equal(out->request_id, 5);
    assert_int_equal(out->body_case, PENLINK__V1__ENVELOPE__BODY_GET_INFO);
    pl_envelope_free(NULL, out);

    /* only an unknown oneof member (field 99, an empty message): body not set */
    const uint8_t newer[] = { 0x08, 9, 0x9A, 0x06, 0x00 };
    out = pl_envelope_unpack(NULL, newer, sizeof newer);
    assert_non_null(out);
    assert_int_equal(out->request_id, 9);
    assert_int_equal(out->body_case, PENLINK__V1__ENVELOPE__BODY__NOT_SET);
    pl_envelope_free(NULL, out);
}

static void test_malformed(void **state)
{
    (void)state;
    const uint8_t bad1[] = { 0x0A };             /* field 1 as bytes, length missing */
    const uint8_t bad2[] = { 0x52, 0x10, 0x01 }; /* hello with a length past the end */
    const uint8_t bad3[] = { 0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF };
    assert_null(pl_envelope_unpack(NULL, bad1, sizeof bad1));
    assert_null(pl_envelope_unpack(NULL, bad2, sizeof bad2));
    assert_null(pl_envelope_unpack(NULL, bad3, sizeof bad3));
    uint64_t s = 1;
    uint8_t junk[300];
    for (int round = 0; round < 5000; round++) {
        size_t n = tu_rand(&s) % sizeof junk;
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)tu_rand(&s);
        pl_envelope_free(NULL, pl_envelope_unpack(NULL, junk, n));
    }
}

/* The pen unpacks into a fixed arena: enough room works, too little fails cleanly. */
static void test_arena(void **state)
{
    (void)state;
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__SetConfig sc = PENLINK__V1__SET_CONFIG__INIT;
    Penlink__V1__Config cfg = PENLINK__V1__CONFIG__INIT;
    cfg.device_label = "Room 2";
    cfg.clinic_id = "CLINIC-0042";
    sc.config = &cfg;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CONFIG;
    env.set_config = &sc;
    uint8_t buf[256];
    size_t n = penlink__v1__envelope__pack(&env, buf);
    _Alignas(8) static uint8_t mem[2048];
    pl_arena a;
    pl_arena_init(&a, mem, sizeof mem);
    pl_envelope *out = pl_envelope_unpack(&a.alloc, buf, n);
    assert_non_null(out);
    assert_string_equal(out->set_config->config->clinic_id, "CLINIC-0042");
    assert_true(a.peak > 0 && a.peak <= sizeof mem);
    size_t need = a.peak;
    pl_envelope_free(&a.alloc, out);
    pl_arena_reset(&a);
    assert_int_equal(a.used, 0);
    pl_arena_init(&a, mem, need - 8);
    assert_null(pl_envelope_unpack(&a.alloc, buf, n));
    /* an arena allocation never wraps or overflows */
    pl_arena_init(&a, mem, sizeof mem);
    assert_null(pl_arena_alloc(&a, SIZE_MAX));
    assert_null(pl_arena_alloc(&a, sizeof mem + 1));
    assert_non_null(pl_arena_alloc(&a, sizeof mem));
    assert_null(pl_arena_alloc(&a, 1));
}

static void test_frame_too_small(void **state)
{
    (void)state;
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Error err = PENLINK__V1__ERROR__INIT;
    err.message = "a message that does not fit in a tiny buffer";
    env.body_case = PENLINK__V1__ENVELOPE__BODY_ERROR;
    env.error = &err;
    uint8_t small[20];
    assert_int_equal(pl_envelope_frame(&env, small, sizeof small), PL_ERR_NO_SPACE);
    assert_int_equal(pl_envelope_frame(&env, small, 3), PL_ERR_NO_SPACE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_message),   cmocka_unit_test(test_unknown_fields),
        cmocka_unit_test(test_malformed),       cmocka_unit_test(test_arena),
        cmocka_unit_test(test_frame_too_small),
    };
    return cmocka_run_group_tests_name("envelope", tests, NULL, NULL);
}
