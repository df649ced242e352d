/* Chunk codec: round trips, every kind/field combination, limits, corruption, bombs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "penlink.pb-c.h"
#include "pl/chunk.h"
#include "testutil.h"

#define OUT_CAP (PL_CHUNK_MAX_RAW + 1024)

typedef struct fixture {
    pl_chunk_enc enc;
    _Alignas(16) uint8_t arena[PL_CHUNK_ENC_ARENA];
    pl_chunk_dec dec;
    uint8_t out[OUT_CAP];
    pl_record in[PL_CHUNK_MAX_RECORDS];
    pl_record got[PL_CHUNK_MAX_RECORDS];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(pl_chunk_enc_init(&f->enc, f->arena, sizeof f->arena), PL_OK);
    assert_int_equal(pl_chunk_dec_init(&f->dec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW), PL_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    pl_chunk_enc_fini(&f->enc);
    pl_chunk_dec_fini(&f->dec);
    free(f);
    return 0;
}

static void roundtrip(fixture *f, uint32_t n)
{
    pl_chunk_info info;
    uint32_t got = 0;
    assert_int_equal(
        pl_chunk_encode(&f->enc, pl_record_array_source, f->in, n, f->out, sizeof f->out, &info),
        PL_OK);
    assert_int_equal(info.record_count, n);
    assert_true(info.first_seq == f->in[0].seq);
    pl_chunk_expect ex = { info.first_seq, n, info.raw_size, 1 };
    assert_int_equal(
        pl_chunk_decode(&f->dec, f->out, info.data_size, &ex, f->got, PL_CHUNK_MAX_RECORDS, &got),
        PL_OK);
    assert_int_equal(got, n);
    assert_int_equal(pl_chunk_dec_consumed(&f->dec), info.data_size);
    for (uint32_t i = 0; i < n; i++)
        if (!pl_record_equal(&f->in[i], &f->got[i]))
            fail_msg("record %u (seq %llu, kind %u) differs after a round trip", i,
                     (unsigned long long)f->in[i].seq, f->in[i].kind);
}

static void test_roundtrip_random(void **state)
{
    fixture *f = *state;
    uint64_t s = 42;
    static const uint32_t sizes[] = { 1, 2, 3, 17, 256, 1000, PL_CHUNK_MAX_RECORDS };
    for (int round = 0; round < 30; round++) {
        uint32_t n = sizes[round % 7];
        tu_records(&s, f->in, n, tu_rand(&s) >> (round % 2 ? 1 : 40), 0);
        roundtrip(f, n);
    }
}

static void test_roundtrip_extremes(void **state)
{
    fixture *f = *state;
    uint64_t s = 7;
    for (int round = 0; round < 40; round++) {
        uint32_t n = 1 + (uint32_t)(tu_rand(&s) % 600);
        uint64_t first = round == 0 ? UINT64_MAX - n + 1 : round == 1 ? 0 : tu_rand(&s) >> 1;
        tu_records(&s, f->in, n, first, 1);
        roundtrip(f, n);
    }
}

/* Every kind with every subset of its fields at 0, at its maximum, and in between. */
static void test_every_kind_and_field(void **state)
{
    fixture *f = *state;
    uint32_t n = 0;
    for (uint32_t kind = 1; kind <= PL_REC_KIND_MAX; kind++) {
        uint32_t mask = pl_record_kind_fields(kind);
        for (uint32_t b = 0; b < PL_FIELD_COUNT; b++) {
            uint32_t bit = 1u << b;
            if (!(mask & bit))
                continue;
            static const uint64_t vals[] = { 0, 1, 0xFFFFFFFFu, UINT64_MAX };
            for (int v = 0; v < 4; v++) {
                pl_record *r = &f->in[n];
                memset(r, 0, sizeof *r);
                r->seq = 1000 + n;
                r->time_ms = (int64_t)n * 37 - 5;
                r->kind = kind;
                r->fields = mask;
                if (pl_record_set(r, bit, vals[v]) != 0)
                    pl_record_set(r, bit, 0xFFFFFFFFu); /* 32-bit field: its max */
                n++;
            }
        }
        /* and the kind with no field set to anything but 0 */
        pl_record *r = &f->in[n];
        memset(r, 0, sizeof *r);
        r->seq = 1000 + n;
        r->kind = kind;
        r->fields = mask;
        n++;
    }
    roundtrip(f, n);
}

/* A kind this version does not know still travels, with its own layout. */
static void test_unknown_kind(void **state)
{
    fixture *f = *state;
    uint64_t s = 3;
    tu_records(&s, f->in, 50, 10, 0);
    for (int i = 0; i < 50; i += 5) {
        f->in[i].kind = 4000;
        f->in[i].fields = PL_F_DEPTH_UM | PL_F_DROPPED;
        f->in[i].depth_um = 9;
        f->in[i].dropped = 77;
        f->in[i].speed_sps = 0;
        f->in[i].duration_ms = 0;
        f->in[i].strokes = 0;
        f->in[i].cartridge_serial = 0;
        f->in[i].cartridge_uses = 0;
        f->in[i].lifetime_cartridges = 0;
        f->in[i].fault_code = 0;
        f->in[i].config_revision = 0;
        f->in[i].clock_delta_ms = 0;
    }
    roundtrip(f, 50);
}

/* The encoder's bytes are ordinary protobuf: protobuf-c reads the same batch. */
static void test_batch_is_protobuf(void **state)
{
    fixture *f = *state;
    uint64_t s = 11;
    pl_chunk_info info;
    tu_records(&s, f->in, 300, 5000, 0);
    assert_int_equal(
        pl_chunk_encode(&f->enc, pl_record_array_source, f->in, 300, f->out, sizeof f->out, &info),
        PL_OK);
    uint8_t *raw = malloc(info.raw_size);
    uLongf rawlen = info.raw_size;
    assert_int_equal(uncompress(raw, &rawlen, f->out, info.data_size), Z_OK);
    assert_int_equal(rawlen, info.raw_size);
    Penlink__V1__RecordBatch *b = penlink__v1__record_batch__unpack(NULL, rawlen, raw);
    assert_non_null(b);
    assert_true(b->first_seq == 5000);
    assert_int_equal(b->count, 300);
    assert_int_equal(b->n_kind, 300);
    assert_int_equal(b->time_width * 300, b->time_planes.len);
    int64_t t = b->time_base_ms, d = 0;
    size_t di = 0;
    for (size_t i = 0; i < 300; i++) {
        assert_int_equal(b->kind[i], f->in[i].kind);
        uint64_t z = 0;
        for (uint32_t j = 0; j < b->time_width; j++)
            z |= (uint64_t)b->time_planes.data[j * 300 + i] << (8 * j);
        t += (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
        assert_true(t == f->in[i].time_ms);
        if (f->in[i].fields & PL_F_DEPTH_UM) {
            d += b->depth_um[di++];
            assert_true(d == f->in[i].depth_um);
        }
    }
    assert_int_equal(di, b->n_depth_um);
    /* packed again by protobuf-c, our decoder reads it the same */
    size_t len = penlink__v1__record_batch__get_packed_size(b);
    uint8_t *again = malloc(len);
    penlink__v1__record_batch__pack(b, again);
    uint32_t n = 0;
    uint64_t first = 0;
    assert_int_equal(pl_batch_parse(again, len, PL_CHUNK_MAX_RECORDS, f->got, PL_CHUNK_MAX_RECORDS,
                                    &n, &first, NULL),
                     PL_OK);
    assert_int_equal(n, 300);
    for (uint32_t i = 0; i < n; i++)
        assert_true(pl_record_equal(&f->in[i], &f->got[i]));
    free(again);
    penlink__v1__record_batch__free_unpacked(b, NULL);
    free(raw);
}

static void test_encoder_rejects(void **state)
{
    fixture *f = *state;
    uint64_t s = 5;
    pl_chunk_info info;
    tu_records(&s, f->in, 10, 100, 0);
    f->in[4].seq = 999; /* a hole in the run */
    assert_int_equal(
        pl_chunk_encode(&f->enc, pl_record_array_source, f->in, 10, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);
    tu_records(&s, f->in, 10, 100, 0);
    assert_int_equal(
        pl_chunk_encode(&f->enc, pl_record_array_source, f->in, 0, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_encode(&f->enc, pl_record_array_source, f->in,
                                     PL_CHUNK_MAX_RECORDS + 1, f->out, sizeof f->out, &info),
                     PL_ERR_INVALID_ARG);
    /* too small an output buffer is a clean error, and the encoder still works */
    assert_int_equal(pl_chunk_encode(&f->enc, pl_record_array_source, f->in, 10, f->out, 8, &info),
                     PL_ERR_NO_SPACE);
    roundtrip(f, 10);
}

/* The limits of the decoder hold whatever the chunk says. */
static void test_decoder_limits(void **state)
{
    fixture *f = *state;
    uint64_t s = 9;
    pl_chunk_info info;
    uint32_t n;
    tu_records(&s, f->in, 100, 1, 0);
    assert_int_equal(
        pl_chunk_encode(&f->enc, pl_record_array_source, f->in, 100, f->out, sizeof f->out, &info),
        PL_OK);
    pl_chunk_expect ex = { info.first_seq, 100, info.raw_size, 1 };
    ex.record_count = 99;
    assert_int_equal(
        pl_chunk_decode(&f->dec, f->out, info.data_size, &ex, f->got, PL_CHUNK_MAX_RECORDS, &n),
        PL_ERR_CHUNK_COUNT);
    ex.record_count = 100;
    ex.raw_size = info.raw_size + 1;
    assert_int_equal(
        pl_chunk_decode(&f->dec, f->out, info.data_size, &ex, f->got, PL_CHUNK_MAX_RECORDS, &n),
        PL_ERR_CHUNK_SIZE);
    ex.raw_size = PL_CHUNK_MAX_RAW + 1;
    assert_int_equal(
        pl_chunk_decode(&f->dec, f->out, info.data_size, &ex, f->got, PL_CHUNK_MAX_RECORDS, &n),
        PL_ERR_CHUNK_TOO_LARGE);
    ex.raw_size = info.raw_size;
    ex.first_seq = 2;
    assert_int_equal(
        pl_chunk_decode(&f->dec, f->out, info.data_size, &ex, f->got, PL_CHUNK_MAX_RECORDS, &n),
        PL_ERR_CHUNK_SEQ);
    /* more records than the caller's array: refused, nothing written past it */
    assert_int_equal(pl_chunk_decode(&f->dec, f->out, info.data_size, NULL, f->got, 50, &n),
                     PL_ERR_CHUNK_COUNT);
    /* a truncated stream asks for more */
    assert_int_equal(pl_chunk_decode(&f->dec, f->out, info.data_size - 3, NULL, f->got,
                                     PL_CHUNK_MAX_RECORDS, &n),
                     PL_NEED_MORE);
    /* a small decoder refuses a batch above its raw limit */
    pl_chunk_dec small;
    assert_int_equal(pl_chunk_dec_init(&small, 4096, 64), PL_OK);
    assert_int_equal(
        pl_chunk_decode(&small, f->out, info.data_size, NULL, f->got, PL_CHUNK_MAX_RECORDS, &n),
        PL_ERR_CHUNK_TOO_LARGE);
    pl_chunk_dec_fini(&small);
}

/* 10,000 random corruptions of valid chunks: each a clean error or a valid
 * decode (a flip can land in a value and still be valid protobuf + zlib... but
 * the adler32 check catches almost all); never a crash or an over-read. */
static void test_random_corruption(void **state)
{
    fixture *f = *state;
    uint64_t s = 1234;
    pl_chunk_info info;
    uint8_t *bad = malloc(OUT_CAP);
    int errors = 0, ok = 0;
    for (int round = 0; round < 10000; round++) {
        if (round % 100 == 0) {
            uint32_t n = 1 + (uint32_t)(tu_rand(&s) % 400);
            tu_records(&s, f->in, n, tu_rand(&s) >> 20, round % 200 == 0);
            assert_int_equal(pl_chunk_encode(&f->enc, pl_record_array_source, f->in, n, f->out,
                                             sizeof f->out, &info),
                             PL_OK);
        }
        size_t len = info.data_size;
        memcpy(bad, f->out, len);
        switch (tu_rand(&s) % 4) {
        case 0: /* flip bits */
            for (int k = 0; k < 1 + (int)(tu_rand(&s) % 4); k++)
                bad[tu_rand(&s) % len] ^= (uint8_t)(1u << (tu_rand(&s) % 8));
            break;
        case 1: /* truncate */ len = tu_rand(&s) % len; break;
        case 2: /* overwrite a run with random bytes */
        {
            size_t at = tu_rand(&s) % len, k = 1 + tu_rand(&s) % 16;
            for (size_t i = at; i < len && i < at + k; i++)
                bad[i] = (uint8_t)tu_rand(&s);
            break;
        }
        default: /* duplicate a slice into another place */
        {
            size_t a = tu_rand(&s) % len, b = tu_rand(&s) % len, k = 1 + tu_rand(&s) % 32;
            for (size_t i = 0; i < k && a + i < len && b + i < len; i++)
                bad[b + i] = bad[a + i];
            break;
        }
        }
        uint32_t n = 0;
        pl_chunk_expect ex = { info.first_seq, info.record_count, info.raw_size, 1 };
        int st = pl_chunk_decode(&f->dec, bad, len, round % 2 ? &ex : NULL, f->got,
                                 PL_CHUNK_MAX_RECORDS, &n);
        if (st == PL_OK)
            ok++;
        else
            errors++;
        assert_true(st == PL_OK || st == PL_NEED_MORE || (st < 0 && st > PL_ERR__SENTINEL));
        assert_true(n <= PL_CHUNK_MAX_RECORDS);
    }
    free(bad);
    print_message("corruptions: %d errors, %d still valid (identical bytes)\n", errors, ok);
    assert_true(errors > 9000);
}

/* A zlib stream of 1 GiB of zeros, built cheaply: after a full flush deflate
 * forgets its history, so every further 64 KiB segment compresses to the
 * same bytes and can be repeated. */
static uint8_t *make_bomb(size_t *len_out)
{
    static uint8_t zeros[1 << 16];
    const size_t segments = 1u << 14; /* 16384 x 64 KiB = 1 GiB */
    uint8_t first[1024], seg[1024], tail[64];
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit(&zs, 9), Z_OK);
    zs.next_in = zeros;
    zs.avail_in = sizeof zeros;
    zs.next_out = first;
    zs.avail_out = sizeof first;
    assert_int_equal(deflate(&zs, Z_FULL_FLUSH), Z_OK);
    size_t first_len = sizeof first - zs.avail_out;
    zs.next_in = zeros;
    zs.avail_in = sizeof zeros;
    zs.next_out = seg;
    zs.avail_out = sizeof seg;
    assert_int_equal(deflate(&zs, Z_FULL_FLUSH), Z_OK);
    size_t seg_len = sizeof seg - zs.avail_out;
    zs.next_out = tail;
    zs.avail_out = sizeof tail;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t tail_len = sizeof tail - zs.avail_out - 4; /* the trailer is rewritten below */
    deflateEnd(&zs);
    size_t len = first_len + (segments - 1) * seg_len + tail_len + 4;
    uint8_t *bomb = malloc(len), *p = bomb;
    memcpy(p, first, first_len);
    p += first_len;
    for (size_t i = 1; i < segments; i++, p += seg_len)
        memcpy(p, seg, seg_len);
    memcpy(p, tail, tail_len);
    p += tail_len;
    uLong adler = adler32(0L, Z_NULL, 0), a64 = adler32(adler, zeros, sizeof zeros);
    for (size_t i = 0; i < segments; i++)
        adler = adler32_combine(adler, a64, sizeof zeros);
    p[0] = (uint8_t)(adler >> 24);
    p[1] = (uint8_t)(adler >> 16);
    p[2] = (uint8_t)(adler >> 8);
    p[3] = (uint8_t)adler;
    *len_out = len;
    return bomb;
}

/* 1 GiB of zeros in about 1 MB of zlib: refused once the output would pass
 * the decoder's limit, with no allocation beyond it. */
static void test_decompression_bomb(void **state)
{
    fixture *f = *state;
    size_t len;
    uint8_t *bomb = make_bomb(&len);
    /* it really is a valid stream of 1 GiB */
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit(&zs), Z_OK);
    static uint8_t sink[1 << 20];
    zs.next_in = bomb;
    zs.avail_in = (uInt)len;
    int r;
    do {
        zs.next_out = sink;
        zs.avail_out = sizeof sink;
        r = inflate(&zs, Z_NO_FLUSH);
    } while (r == Z_OK);
    assert_int_equal(r, Z_STREAM_END);
    assert_true(zs.total_out == (1ul << 30));
    inflateEnd(&zs);
    print_message("bomb: 1 GiB of zeros in %zu bytes\n", len);

    uint32_t n = 7;
    assert_int_equal(pl_chunk_decode(&f->dec, bomb, len, NULL, f->got, PL_CHUNK_MAX_RECORDS, &n),
                     PL_ERR_CHUNK_TOO_LARGE);
    assert_int_equal(n, 0);
    pl_chunk_expect ex = { 0, 10, 1000, 0 };
    assert_int_equal(pl_chunk_decode(&f->dec, bomb, len, &ex, f->got, PL_CHUNK_MAX_RECORDS, &n),
                     PL_ERR_CHUNK_TOO_LARGE);
    free(bomb);
}

/* The encoder's zlib state fits its arena, and the peak is what we document. */
static void test_encoder_ram(void **state)
{
    fixture *f = *state;
    uint64_t s = 99;
    pl_chunk_info info;
    tu_records(&s, f->in, PL_CHUNK_MAX_RECORDS, 0, 1);
    assert_int_equal(pl_chunk_encode(&f->enc, pl_record_array_source, f->in, PL_CHUNK_MAX_RECORDS,
                                     f->out, sizeof f->out, &info),
                     PL_OK);
    size_t peak = pl_chunk_enc_peak(&f->enc);
    size_t total = peak + sizeof(pl_chunk_enc) + 128 /* writer buffer on the stack */;
    print_message("encoder RAM: zlib arena peak %zu bytes + %zu state = %zu bytes (limit 12288)\n",
                  peak, sizeof(pl_chunk_enc) + 128, total);
    assert_true(total <= 12 * 1024);
    assert_true(peak <= PL_CHUNK_ENC_ARENA);
    /* an arena too small for zlib is a clean init failure */
    pl_chunk_enc small;
    uint8_t tiny[4096];
    assert_int_equal(pl_chunk_enc_init(&small, tiny, sizeof tiny), PL_ERR_ZLIB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roundtrip_random, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roundtrip_extremes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_kind_and_field, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_is_protobuf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encoder_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decoder_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decompression_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_encoder_ram, setup, teardown),
    };
    return cmocka_run_group_tests_name("chunk", tests, NULL, NULL);
}
