/* Framing and envelopes at their edges (pl/frame.h, pl/envelope.h): an
 * output buffer exactly full and one byte short, the decoder's arguments, its
 * maximum raised and lowered, flags passed through, reset, and the arena's
 * alignment and overflow refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "pl/envelope.h"
#include "pl/frame.h"

static void test_encode_room(void **state)
{
    (void)state;
    uint8_t out[64], payload[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    memset(out, 0xEE, sizeof out);
    /* exactly header + payload: written, nothing past it */
    assert_int_equal(pl_frame_encode(out, 24, payload, 8), 24);
    assert_memory_equal(out + 16, payload, 8);
    assert_int_equal(out[24], 0xEE);
    /* one byte short, a payload longer than the buffer, no room for the header */
    assert_int_equal(pl_frame_encode(out, 23, payload, 8), PL_ERR_NO_SPACE);
    assert_int_equal(pl_frame_encode(out, 7, payload, 8), PL_ERR_NO_SPACE);
    assert_int_equal(pl_frame_encode(out, 15, NULL, 0), PL_ERR_NO_SPACE);
    /* an empty payload: a header alone, its CRC that of nothing */
    assert_int_equal(pl_frame_encode(out, 16, NULL, 0), 16);
    assert_memory_equal(out, "PNLK\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00", 14);
    /* the payload may already sit where the frame puts it */
    memcpy(out + 16, payload, 8);
    assert_int_equal(pl_frame_encode(out, sizeof out, out + 16, 8), 24);
    assert_memory_equal(out + 16, payload, 8);
    uint8_t hdr[16];
    pl_frame_header(hdr, payload, 8);
    assert_memory_equal(out, hdr, 16);
}

static void test_decoder_args(void **state)
{
    (void)state;
    static uint8_t buf[16 + 100];
    pl_frame_decoder d;
    assert_int_equal(pl_frame_decoder_init(NULL, buf, sizeof buf, 100), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_frame_decoder_init(&d, NULL, sizeof buf, 100), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_frame_decoder_init(&d, buf, sizeof buf, 101), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_frame_decoder_init(&d, buf, sizeof buf - 1, 100), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_frame_decoder_init(&d, buf, SIZE_MAX, PL_FRAME_MAX_PAYLOAD + 1),
                     PL_ERR_INVALID_ARG);
    assert_int_equal(pl_frame_decoder_init(&d, buf, sizeof buf, 100), PL_OK);
    /* the maximum moves within the buffer and the protocol's bound only */
    assert_int_equal(pl_frame_decoder_set_max(&d, 101), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_frame_decoder_set_max(&d, PL_FRAME_MAX_PAYLOAD + 1), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_frame_decoder_set_max(&d, 10), PL_OK);
    assert_int_equal(pl_frame_decoder_set_max(&d, 100), PL_OK);
}

/* A frame of @p len payload bytes with header flags @p flags. */
static size_t frame(uint8_t *out, uint32_t len, uint8_t flags)
{
    uint8_t payload[256];
    for (uint32_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 7);
    long n = pl_frame_encode(out, 16 + len, payload, len);
    assert_true(n == (long)(16 + len));
    out[5] = flags;
    uint16_t hc = (uint16_t)(crc32(0L, out, 14) & 0xFFFF);
    out[14] = (uint8_t)hc;
    out[15] = (uint8_t)(hc >> 8);
    return (size_t)n;
}

static void test_set_max(void **state)
{
    (void)state;
    static uint8_t buf[16 + 200];
    uint8_t s[600];
    pl_frame_decoder d;
    pl_frame f;
    size_t used;
    assert_int_equal(pl_frame_decoder_init(&d, buf, sizeof buf, 200), PL_OK);
    /* lowered to 50: a 50-byte payload passes, 51 is too large */
    assert_int_equal(pl_frame_decoder_set_max(&d, 50), PL_OK);
    size_t n = frame(s, 50, 0);
    assert_int_equal(pl_frame_decoder_feed(&d, s, n, &used, &f), PL_OK);
    assert_int_equal(f.len, 50);
    n = frame(s, 51, 0);
    assert_int_equal(pl_frame_decoder_feed(&d, s, n, &used, &f), PL_ERR_FRAME_TOO_LARGE);
    /* raised again: the same frame passes */
    pl_frame_decoder_reset(&d);
    assert_int_equal(pl_frame_decoder_set_max(&d, 200), PL_OK);
    assert_int_equal(pl_frame_decoder_feed(&d, s, n, &used, &f), PL_OK);
    assert_int_equal(f.len, 51);
    assert_int_equal(used, n);
}

static void test_flags_pending_reset(void **state)
{
    (void)state;
    static uint8_t buf[16 + 256];
    uint8_t s[600];
    pl_frame_decoder d;
    pl_frame f;
    size_t used;
    assert_int_equal(pl_frame_decoder_init(&d, buf, sizeof buf, 256), PL_OK);
    /* flags the receiver does not know are passed through, not refused */
    size_t n = frame(s, 10, 0x81);
    assert_int_equal(pl_frame_decoder_feed(&d, s, n, &used, &f), PL_OK);
    assert_int_equal(f.flags, 0x81);
    assert_int_equal(pl_frame_decoder_pending(&d), 0);
    /* a frame cut short is pending; reset forgets it and the offsets */
    n = frame(s, 40, 0);
    assert_int_equal(pl_frame_decoder_feed(&d, s, 30, &used, &f), PL_NEED_MORE);
    assert_int_equal(used, 30);
    assert_int_equal(pl_frame_decoder_pending(&d), 30);
    assert_true(pl_frame_decoder_crc_bytes(&d) == 10);
    pl_frame_decoder_reset(&d);
    assert_int_equal(pl_frame_decoder_pending(&d), 0);
    assert_true(pl_frame_decoder_crc_bytes(&d) == 0);
    /* after the reset the next byte starts a frame: the whole one passes */
    assert_int_equal(pl_frame_decoder_feed(&d, s, n, &used, &f), PL_OK);
    assert_int_equal(f.len, 40);
    assert_int_equal(f.payload[39], (uint8_t)(39 * 7));
    /* garbage, then a frame: one error at offset 0 of the garbage, then the frame */
    pl_frame_decoder_reset(&d);
    memcpy(s, "xyz", 3);
    n = 3 + frame(s + 3, 5, 0);
    assert_int_equal(pl_frame_decoder_feed(&d, s, n, &used, &f), PL_ERR_FRAME_MAGIC);
    assert_true(pl_frame_decoder_error_offset(&d) == 0);
    size_t off = used;
    assert_int_equal(pl_frame_decoder_feed(&d, s + off, n - off, &used, &f), PL_OK);
    assert_int_equal(f.len, 5);
}

/* A refused frame inside a refused frame: both CRC errors, and the good frame
 * after them still found. */
static void test_nested_refused(void **state)
{
    (void)state;
    static uint8_t buf[16 + 256];
    uint8_t s[600];
    pl_frame_decoder d;
    pl_frame f;
    size_t used;
    assert_int_equal(pl_frame_decoder_init(&d, buf, sizeof buf, 256), PL_OK);
    /* outer: 100 bytes of payload holding inner (20 bytes) at payload offset 10 */
    size_t n = frame(s, 100, 0);
    frame(s + 16 + 10, 4, 0);
    s[16 + 10 + 16] ^= 0xFF; /* inner's payload damaged */
    /* outer's CRC no longer matches either (its payload changed) */
    size_t tail = frame(s + n, 3, 0);
    size_t total = n + tail, off = 0;
    int crc_errors = 0, frames = 0;
    while (off < total) {
        pl_status st = pl_frame_decoder_feed(&d, s + off, total - off, &used, &f);
        off += used;
        if (st == PL_ERR_FRAME_CRC)
            crc_errors++;
        else if (st == PL_OK)
            frames++, assert_int_equal(f.len, 3);
        else
            assert_int_equal(st, PL_NEED_MORE);
        if (st == PL_NEED_MORE && used == 0)
            break;
    }
    assert_int_equal(crc_errors, 2);
    assert_int_equal(frames, 1);
}

/* ---- envelopes ------------------------------------------------------------ */

static void test_envelope_room(void **state)
{
    (void)state;
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__LogChunk lc = PENLINK__V1__LOG_CHUNK__INIT;
    uint8_t data[64];
    memset(data, 0x5A, sizeof data);
    lc.has_data = 1;
    lc.data.data = data;
    lc.data.len = sizeof data;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK;
    env.log_chunk = &lc;
    size_t need = pl_envelope_frame_size(&env);
    uint8_t *out = malloc(need + 1);
    assert_non_null(out);
    out[need] = 0xEE;
    assert_int_equal(pl_envelope_frame(&env, out, need), (long)need);
    assert_int_equal(out[need], 0xEE);
    pl_envelope *back = pl_envelope_unpack(NULL, out + 16, need - 16);
    assert_non_null(back);
    assert_int_equal(back->log_chunk->data.len, sizeof data);
    pl_envelope_free(NULL, back);
    pl_envelope_free(NULL, NULL); /* nothing to free */
    assert_int_equal(pl_envelope_frame(&env, out, need - 1), PL_ERR_NO_SPACE);
    assert_int_equal(pl_envelope_frame(&env, out, 15), PL_ERR_NO_SPACE);
    free(out);
    /* a message above the largest payload is refused whatever the room */
    uint8_t *big = calloc(1, PL_FRAME_MAX_PAYLOAD + 64);
    assert_non_null(big);
    lc.data.data = big;
    lc.data.len = PL_FRAME_MAX_PAYLOAD;
    need = pl_envelope_frame_size(&env);
    assert_true(need > 16 + PL_FRAME_MAX_PAYLOAD);
    out = malloc(need);
    assert_non_null(out);
    assert_int_equal(pl_envelope_frame(&env, out, need), PL_ERR_NO_SPACE);
    /* and so is unpacking one, however well formed */
    size_t packed = penlink__v1__envelope__pack(&env, out);
    assert_true(packed > PL_FRAME_MAX_PAYLOAD);
    assert_null(pl_envelope_unpack(NULL, out, packed));
    free(out);
    free(big);
}

static void test_arena_alignment(void **state)
{
    (void)state;
    _Alignas(8) static uint8_t mem[64];
    pl_arena a;
    pl_arena_init(&a, mem, 20);
    uint8_t *p = pl_arena_alloc(&a, 3);
    assert_ptr_equal(p, mem);
    /* every allocation starts on 8 bytes and takes a multiple of 8 */
    uint8_t *q = pl_arena_alloc(&a, 5);
    assert_ptr_equal(q, mem + 8);
    assert_int_equal(a.used, 16);
    /* 4 bytes are left, but not 8: refused */
    assert_null(pl_arena_alloc(&a, 1));
    assert_int_equal(a.used, 16);
    assert_int_equal(a.peak, 16);
    pl_arena_reset(&a);
    assert_int_equal(a.used, 0);
    assert_int_equal(a.peak, 16); /* the peak survives a reset */
    assert_non_null(pl_arena_alloc(&a, 8));
    assert_null(pl_arena_alloc(&a, SIZE_MAX - 3)); /* rounding up would wrap */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_room),     cmocka_unit_test(test_decoder_args),
        cmocka_unit_test(test_set_max),         cmocka_unit_test(test_flags_pending_reset),
        cmocka_unit_test(test_nested_refused),  cmocka_unit_test(test_envelope_room),
        cmocka_unit_test(test_arena_alignment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
