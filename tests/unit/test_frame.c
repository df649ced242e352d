/* Framing: every split point, garbage between frames, every malformed class. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "pl/frame.h"
#include "testutil.h"

#define MAXP 4096

typedef struct sink {
    int frames, errors;
    int err_codes[64];
    uint32_t lens[64];
    uint8_t first[64];
} sink;

/* Feeds @p data in pieces of the given sizes (0-terminated list, the rest at the end). */
static void feed(pl_frame_decoder *d, const uint8_t *data, size_t len, const size_t *pieces,
                 sink *s)
{
    size_t pos = 0, k = 0;
    while (pos < len) {
        size_t n = pieces && pieces[k] ? pieces[k++] : len - pos;
        if (n > len - pos)
            n = len - pos;
        const uint8_t *p = data + pos;
        size_t left = n;
        while (left > 0) {
            size_t used = 0;
            pl_frame fr;
            pl_status st = pl_frame_decoder_feed(d, p, left, &used, &fr);
            assert_true(used <= left);
            p += used;
            left -= used;
            if (st == PL_OK) {
                if (s->frames < 64) {
                    s->lens[s->frames] = fr.len;
                    s->first[s->frames] = fr.len ? fr.payload[0] : 0;
                }
                s->frames++;
            } else if (st != PL_NEED_MORE) {
                if (s->errors < 64)
                    s->err_codes[s->errors] = st;
                s->errors++;
            } else {
                assert_int_equal(left, 0);
            }
        }
        pos += n;
    }
}

static size_t make_frame(uint8_t *out, uint32_t len, uint8_t fill)
{
    uint8_t payload[MAXP];
    for (uint32_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(fill + i * 7);
    long n = pl_frame_encode(out, PL_FRAME_HEADER_SIZE + MAXP, payload, len);
    assert_true(n == (long)(PL_FRAME_HEADER_SIZE + len));
    return (size_t)n;
}

static uint8_t dbuf[PL_FRAME_HEADER_SIZE + MAXP];

static void test_header_layout(void **state)
{
    (void)state;
    uint8_t f[64];
    const uint8_t payload[] = { 1, 2, 3 };
    assert_int_equal(pl_frame_encode(f, sizeof f, payload, 3), 19);
    assert_memory_equal(f, "PNLK", 4);
    assert_int_equal(f[4], 1);
    assert_int_equal(f[5], 0);
    assert_int_equal(f[6] | f[7] << 8 | f[8] << 16 | f[9] << 24, 3);
    uint32_t crc = (uint32_t)crc32(0, payload, 3);
    assert_int_equal((uint32_t)(f[10] | f[11] << 8 | f[12] << 16 | (uint32_t)f[13] << 24), crc);
    assert_int_equal(f[14] | f[15] << 8, crc32(0, f, 14) & 0xFFFF);
    assert_memory_equal(f + 16, payload, 3);
    assert_int_equal(pl_frame_encode(f, 18, payload, 3), PL_ERR_NO_SPACE);
}

/* Three frames (one empty) split into two pieces at every possible point,
 * and fed one byte at a time. */
static void test_every_split(void **state)
{
    (void)state;
    uint8_t stream[3 * (PL_FRAME_HEADER_SIZE + 300)];
    size_t len = make_frame(stream, 300, 1);
    len += make_frame(stream + len, 0, 0);
    len += make_frame(stream + len, 45, 9);
    for (size_t cut = 0; cut <= len; cut++) {
        pl_frame_decoder d;
        sink s = { 0 };
        assert_int_equal(pl_frame_decoder_init(&d, dbuf, sizeof dbuf, MAXP), PL_OK);
        size_t pieces[] = { cut, 0 };
        feed(&d, stream, len, cut ? pieces : NULL, &s);
        assert_int_equal(s.frames, 3);
        assert_int_equal(s.errors, 0);
        assert_int_equal(s.lens[0], 300);
        assert_int_equal(s.lens[1], 0);
        assert_int_equal(s.lens[2], 45);
        assert_int_equal(s.first[2], 9);
        assert_int_equal(pl_frame_decoder_pending(&d), 0);
    }
    pl_frame_decoder d;
    sink s = { 0 };
    pl_frame_decoder_init(&d, dbuf, sizeof dbuf, MAXP);
    size_t ones[sizeof stream + 1];
    for (size_t i = 0; i <= sizeof stream; i++)
        ones[i] = 1;
    ones[sizeof stream] = 0;
    feed(&d, stream, len, ones, &s);
    assert_int_equal(s.frames, 3);
    assert_int_equal(s.errors, 0);
}

/* Garbage before, between and after frames: one error per stretch, every
 * frame recovered, at every split of the stream. */
static void test_garbage_between(void **state)
{
    (void)state;
    uint8_t stream[2048];
    size_t len = 0;
    const char *junk1 = "hello, not a frame";
    memcpy(stream, junk1, strlen(junk1));
    len += strlen(junk1);
    len += make_frame(stream + len, 100, 3);
    memcpy(stream + len, "PNL", 3); /* a false start */
    len += 3;
    len += make_frame(stream + len, 10, 4);
    memcpy(stream + len, "PNLK\x01\x00garbage!", 14); /* a header that fails its check */
    len += 14;
    len += make_frame(stream + len, 20, 5);
    for (size_t cut = 0; cut <= len; cut += 1) {
        pl_frame_decoder d;
        sink s = { 0 };
        pl_frame_decoder_init(&d, dbuf, sizeof dbuf, MAXP);
        size_t pieces[] = { cut, 0 };
        feed(&d, stream, len, cut ? pieces : NULL, &s);
        assert_int_equal(s.frames, 3);
        assert_int_equal(s.lens[0], 100);
        assert_int_equal(s.lens[1], 10);
        assert_int_equal(s.lens[2], 20);
        assert_int_equal(s.errors, 3);
        assert_int_equal(s.err_codes[0], PL_ERR_FRAME_MAGIC);
    }
}

static void expect_one_error(const uint8_t *stream, size_t len, uint32_t max, pl_status want,
                             int frames_after)
{
    pl_frame_decoder d;
    sink s = { 0 };
    pl_frame_decoder_init(&d, dbuf, sizeof dbuf, max);
    feed(&d, stream, len, NULL, &s);
    assert_int_equal(s.errors, 1);
    assert_int_equal(s.err_codes[0], want);
    assert_int_equal(s.frames, frames_after);
}

/* Each class of damage, each followed by a good frame that must still arrive. */
static void test_malformed_classes(void **state)
{
    (void)state;
    uint8_t good[PL_FRAME_HEADER_SIZE + 50], s[1024];
    size_t glen = make_frame(good, 50, 7);

    /* bad magic */
    memcpy(s, "XNLK", 4);
    memcpy(s + 4, good, glen);
    expect_one_error(s, 4 + glen, MAXP, PL_ERR_FRAME_MAGIC, 1);
    /* bad version (header otherwise intact) */
    size_t n = make_frame(s, 8, 1);
    s[4] = 2;
    memcpy(s + n, good, glen);
    expect_one_error(s, n + glen, MAXP, PL_ERR_FRAME_VERSION, 1);
    /* header check mismatch: the length field damaged */
    n = make_frame(s, 8, 1);
    s[7] ^= 0x10;
    memcpy(s + n, good, glen);
    expect_one_error(s, n + glen, MAXP, PL_ERR_FRAME_HEADER, 1);
    /* payload CRC mismatch */
    n = make_frame(s, 30, 1);
    s[PL_FRAME_HEADER_SIZE + 5] ^= 1;
    memcpy(s + n, good, glen);
    expect_one_error(s, n + glen, MAXP, PL_ERR_FRAME_CRC, 1);
    /* length above the negotiated maximum: refused at the header */
    n = make_frame(s, 200, 1);
    memcpy(s + n, good, glen);
    expect_one_error(s, n + glen, 100, PL_ERR_FRAME_TOO_LARGE, 1);
    /* a frame cut short, then a new frame: the CRC fails, the next frame is found */
    n = make_frame(s, 40, 1);
    n -= 10;
    memcpy(s + n, good, glen);
    {
        pl_frame_decoder d;
        sink k = { 0 };
        pl_frame_decoder_init(&d, dbuf, sizeof dbuf, MAXP);
        feed(&d, s, n + glen, NULL, &k);
        /* the truncated frame swallows the start of the good one, fails its CRC
         * once enough bytes are in; the good frame is then found inside */
        assert_int_equal(k.frames, 1);
        assert_int_equal(k.lens[0], 50);
        assert_true(k.errors >= 1);
    }
}

/* A huge declared length is refused as soon as the header is complete: no
 * payload byte needs to arrive, and the buffer is never asked to grow. */
static void test_too_large_refused_early(void **state)
{
    (void)state;
    uint8_t hdr[PL_FRAME_HEADER_SIZE];
    uint8_t small[PL_FRAME_HEADER_SIZE + 64];
    memcpy(hdr, "PNLK\x01\x00", 6);
    uint32_t len = 0xFFFFFFF0u;
    hdr[6] = (uint8_t)len;
    hdr[7] = (uint8_t)(len >> 8);
    hdr[8] = (uint8_t)(len >> 16);
    hdr[9] = (uint8_t)(len >> 24);
    memset(hdr + 10, 0, 4);
    uint16_t hc = (uint16_t)crc32(0, hdr, 14);
    hdr[14] = (uint8_t)hc;
    hdr[15] = (uint8_t)(hc >> 8);
    pl_frame_decoder d;
    assert_int_equal(pl_frame_decoder_init(&d, small, sizeof small, 64), PL_OK);
    size_t used;
    pl_frame fr;
    assert_int_equal(pl_frame_decoder_feed(&d, hdr, sizeof hdr, &used, &fr),
                     PL_ERR_FRAME_TOO_LARGE);
    assert_int_equal(used, sizeof hdr);
    assert_int_equal(pl_frame_decoder_error_offset(&d), 0);
    /* init refuses a buffer smaller than the maximum it is asked to accept */
    assert_int_equal(pl_frame_decoder_init(&d, small, sizeof small, 65), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_frame_decoder_init(&d, small, sizeof small, PL_FRAME_MAX_PAYLOAD + 1),
                     PL_ERR_INVALID_ARG);
}

/* Random garbage of random lengths around random frames: every frame comes
 * out, in order, whatever the split; the decoder never reads out of bounds
 * (run under ASan). */
static void test_random_streams(void **state)
{
    (void)state;
    uint64_t seed = 77;
    uint8_t *stream = malloc(1 << 16);
    for (int round = 0; round < 300; round++) {
        size_t len = 0;
        int nframes = 1 + (int)(tu_rand(&seed) % 8);
        uint32_t want[8];
        for (int i = 0; i < nframes; i++) {
            size_t g = tu_rand(&seed) % 64;
            for (size_t k = 0; k < g; k++) {
                uint8_t b = (uint8_t)tu_rand(&seed);
                stream[len++] = (tu_rand(&seed) % 5 == 0) ? (uint8_t) "PNLK"[k % 4] : b;
            }
            want[i] = (uint32_t)(tu_rand(&seed) % 1500);
            len += make_frame(stream + len, want[i], (uint8_t)i);
        }
        size_t pieces[32];
        for (int i = 0; i < 31; i++)
            pieces[i] = 1 + tu_rand(&seed) % 200;
        pieces[31] = 0;
        pl_frame_decoder d;
        sink s = { 0 };
        pl_frame_decoder_init(&d, dbuf, sizeof dbuf, MAXP);
        feed(&d, stream, len, pieces, &s);
        assert_int_equal(s.frames, nframes);
        for (int i = 0; i < nframes; i++) {
            assert_int_equal(s.lens[i], want[i]);
            if (want[i])
                assert_int_equal(s.first[i], (uint8_t)i);
        }
    }
    free(stream);
}

/* Only bytes that can't start a frame: one error, nothing buffered. */
static void test_pure_garbage(void **state)
{
    (void)state;
    uint8_t junk[10000];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (uint8_t)(i % 200 + 1) == 'P' ? 'Q' : (uint8_t)(i % 200 + 1);
    expect_one_error(junk, sizeof junk, MAXP, PL_ERR_FRAME_MAGIC, 0);
    /* and a run of 'P's (each a possible start) with a frame at the end */
    static uint8_t ps[20000];
    memset(ps, 'P', 10000);
    size_t n = 10000 + make_frame(ps + 10000, 33, 1);
    pl_frame_decoder d;
    sink s = { 0 };
    pl_frame_decoder_init(&d, dbuf, sizeof dbuf, MAXP);
    feed(&d, ps, n, NULL, &s);
    assert_int_equal(s.frames, 1);
    assert_int_equal(s.errors, 1);
}

/* Feeds @p data in pieces of @p piece bytes, taking every frame and error. */
static void feed_all(pl_frame_decoder *d, const uint8_t *data, size_t len, size_t piece,
                     int *frames, int *errors, int *skipped)
{
    for (size_t pos = 0; pos < len; pos += piece) {
        const uint8_t *p = data + pos;
        size_t left = len - pos < piece ? len - pos : piece;
        int again = 0;
        while (left > 0 || again) {
            size_t used = 0;
            pl_frame fr;
            pl_status st = pl_frame_decoder_feed(d, p, left, &used, &fr);
            p += used;
            left -= used;
            again = st != PL_NEED_MORE;
            if (st == PL_OK)
                (*frames)++;
            else if (st != PL_NEED_MORE)
                (*errors)++;
            if (st == PL_ERR_FRAME_SKIPPED)
                (*skipped)++;
        }
    }
}

/* A header claiming @p len payload bytes with a CRC of 0 (no payload follows). */
static void bare_header(uint8_t out[PL_FRAME_HEADER_SIZE], uint32_t len)
{
    uint8_t none = 0;
    pl_frame_header(out, &none, 0);
    out[6] = (uint8_t)len;
    out[7] = (uint8_t)(len >> 8);
    out[8] = (uint8_t)(len >> 16);
    out[9] = (uint8_t)(len >> 24);
    memset(out + 10, 0, 4);
    uint16_t hc = (uint16_t)(crc32(0L, out, 14) & 0xFFFFu);
    out[14] = (uint8_t)hc;
    out[15] = (uint8_t)(hc >> 8);
}

/* Rule 5 on hostile input: intact headers every 16 bytes, each claiming 64 KiB.
 * Without a bound every one is a CRC over 64 KiB of the same bytes (8 GiB for
 * these 2 MiB); the decoder's CRC work must stay linear in the bytes fed. */
static void test_resync_work_is_linear(void **state)
{
    (void)state;
    const size_t n = 2u << 20;
    uint8_t *in = malloc(n), *buf = malloc(PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD);
    assert_non_null(in);
    assert_non_null(buf);
    for (size_t i = 0; i < n; i += PL_FRAME_HEADER_SIZE)
        bare_header(in + i, 64u * 1024u);
    pl_frame_decoder d;
    assert_int_equal(pl_frame_decoder_init(&d, buf, PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD,
                                           PL_FRAME_MAX_PAYLOAD),
                     PL_OK);
    int frames = 0, errors = 0, skipped = 0;
    feed_all(&d, in, n, 4096, &frames, &errors, &skipped);
    assert_int_equal(frames, 0);
    uint64_t work = pl_frame_decoder_crc_bytes(&d);
    print_message("2 MiB of headers: CRC over %llu bytes\n", (unsigned long long)work);
    assert_true(work > 0);
    assert_true(work <= 2 * (uint64_t)n + PL_FRAME_MAX_PAYLOAD);
    free(in);
    free(buf);
}

/* Honest damage keeps rule 5: a frame cut short (its header claims more than
 * came), a second one cut short inside it, then good frames: every good frame
 * inside the refused ones is found. */
static void test_good_frames_inside_refused_ones(void **state)
{
    (void)state;
    uint8_t in[40000], buf[PL_FRAME_HEADER_SIZE + MAXP * 4];
    size_t n = 0;
    bare_header(in + n, 3000);
    n += PL_FRAME_HEADER_SIZE + 50;
    memset(in + PL_FRAME_HEADER_SIZE, 0xAA, 50);
    bare_header(in + n, 6000);
    n += PL_FRAME_HEADER_SIZE + 20;
    memset(in + n - 20, 0xBB, 20);
    int want = 0;
    while (n < sizeof in - PL_FRAME_HEADER_SIZE - 400) {
        n += make_frame(in + n, 100 + (uint32_t)(want * 37) % 300, (uint8_t)want);
        want++;
    }
    pl_frame_decoder d;
    assert_int_equal(pl_frame_decoder_init(&d, buf, sizeof buf, MAXP * 4), PL_OK);
    int frames = 0, errors = 0, skipped = 0;
    feed_all(&d, in, n, 333, &frames, &errors, &skipped);
    assert_int_equal(frames, want);
    assert_int_equal(skipped, 0);
    assert_int_equal(errors, 2); /* the two refused frames, one error each */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_resync_work_is_linear),
        cmocka_unit_test(test_good_frames_inside_refused_ones),
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_garbage_between),
        cmocka_unit_test(test_malformed_classes),
        cmocka_unit_test(test_too_large_refused_early),
        cmocka_unit_test(test_random_streams),
        cmocka_unit_test(test_pure_garbage),
    };
    return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
