/* The chunk codec at its edges (pl/chunk.h), through its public functions:
 * every malformed RecordBatch pl_batch_parse refuses, written by hand field by
 * field (truncated, overlong, duplicate, wrong wire type, out of range, bad
 * lengths), what pl_chunk_decode refuses before and after inflating, and the
 * encoder's refusals (arguments, a failing or changing record source, too
 * many layouts, an output buffer exactly full and one byte short). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "pl/chunk.h"
#include "pl/varint.h"
#include "testutil.h"

/* RecordBatch field numbers (penlink.proto) */
#define F_FIRST_SEQ 1
#define F_COUNT 2
#define F_LAYOUT 3
#define F_KINDS 4
#define F_TIME_BASE 5
#define F_COL0 6 /* field bit b is field 6 + b */
#define F_WIDTH 17
#define F_PLANES 18
#define WT_VARINT 0
#define WT_I64 1
#define WT_LEN 2
#define WT_I32 5

#define TS_MASK (PL_F_DEPTH_UM | PL_F_SPEED_SPS | PL_F_CARTRIDGE_SERIAL)

typedef struct pb {
    uint8_t b[8192];
    size_t n;
} pb;

static void v(pb *p, uint64_t x)
{
    assert_true(p->n + PL_VARINT_MAX <= sizeof p->b);
    p->n += pl_varint_put(p->b + p->n, x);
}

static void raw(pb *p, const void *d, size_t n)
{
    assert_true(p->n + n <= sizeof p->b);
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void tag(pb *p, uint32_t field, uint32_t wt)
{
    v(p, (uint64_t)field << 3 | wt);
}

static void vfield(pb *p, uint32_t field, uint64_t x)
{
    tag(p, field, WT_VARINT);
    v(p, x);
}

static void lfield(pb *p, uint32_t field, const pb *body)
{
    tag(p, field, WT_LEN);
    v(p, body->n);
    raw(p, body->b, body->n);
}

/* A column of values, as the encoder writes it: zigzag deltas. */
static void column(pb *p, uint32_t field, const uint64_t *vals, int n)
{
    pb c = { .n = 0 };
    uint64_t prev = 0;
    for (int i = 0; i < n; i++) {
        v(&c, pl_zigzag((int64_t)(vals[i] - prev)));
        prev = vals[i];
    }
    lfield(p, field, &c);
}

static void kinds(pb *p, const uint64_t *k, int n)
{
    pb c = { .n = 0 };
    for (int i = 0; i < n; i++)
        v(&c, k[i]);
    lfield(p, F_KINDS, &c);
}

static void layout1(pb *p, uint64_t kind, uint64_t mask)
{
    pb c = { .n = 0 };
    v(&c, kind);
    v(&c, mask);
    lfield(p, F_LAYOUT, &c);
}

/* Parts of the standard batch: two treatment_start records, seq 100 and 101,
 * at times 5000 and 5010. Each part can be left out and replaced. */
enum {
    P_FIRST = 1,
    P_COUNT = 2,
    P_LAYOUT = 4,
    P_KINDS = 8,
    P_TIME = 16,
    P_COLS = 32,
    P_WIDTH = 64,
    P_PLANES = 128
};

static const uint64_t depth[2] = { 500, 500 }, speed[2] = { 90, 91 }, serial[2] = { UINT64_MAX, 7 };

static void batch(pb *p, unsigned without)
{
    if (!(without & P_FIRST))
        vfield(p, F_FIRST_SEQ, 100);
    if (!(without & P_COUNT))
        vfield(p, F_COUNT, 2);
    if (!(without & P_LAYOUT))
        layout1(p, PL_REC_TREATMENT_START, TS_MASK);
    if (!(without & P_KINDS)) {
        static const uint64_t k[2] = { PL_REC_TREATMENT_START, PL_REC_TREATMENT_START };
        kinds(p, k, 2);
    }
    if (!(without & P_TIME))
        vfield(p, F_TIME_BASE, pl_zigzag(5000));
    if (!(without & P_COLS)) {
        column(p, F_COL0 + 0, depth, 2);
        column(p, F_COL0 + 1, speed, 2);
        column(p, F_COL0 + 3, serial, 2);
    }
    if (!(without & P_WIDTH))
        vfield(p, F_WIDTH, 1);
    if (!(without & P_PLANES)) {
        static const uint8_t planes[2] = { 0, 20 }; /* zigzag(10) */
        tag(p, F_PLANES, WT_LEN);
        v(p, 2);
        raw(p, planes, 2);
    }
}

static pl_record out[PL_CHUNK_MAX_RECORDS];

/* Parses @p p; checks the status and, for a refused field, where. */
static void expect_parse_at(const pb *p, pl_status want, size_t want_at, int line)
{
    uint32_t n = 77;
    uint64_t first = 0;
    size_t at = 12345;
    pl_status st = pl_batch_parse(p->b, p->n, PL_CHUNK_MAX_RECORDS, out, PL_CHUNK_MAX_RECORDS, &n,
                                  &first, &at);
    if (st != want)
        fail_msg("line %d: status %d, want %d", line, st, want);
    if (st == PL_OK)
        return;
    assert_int_equal(n, 0);
    if (want == PL_ERR_CHUNK_FORMAT || want == PL_ERR_CHUNK_RANGE)
        assert_int_equal(at, want_at);
}

#define expect_parse(p, want, at) expect_parse_at(p, want, at, __LINE__)

static void test_standard_batch(void **state)
{
    (void)state;
    pb p = { .n = 0 };
    batch(&p, 0);
    uint32_t n = 0;
    uint64_t first = 0;
    size_t at = 0;
    assert_int_equal(pl_batch_parse(p.b, p.n, 2, out, 2, &n, &first, &at), PL_OK);
    assert_int_equal(n, 2);
    assert_true(first == 100);
    assert_true(out[0].seq == 100 && out[1].seq == 101);
    assert_true(out[0].time_ms == 5000 && out[1].time_ms == 5010);
    assert_int_equal(out[0].fields, TS_MASK);
    assert_int_equal(out[1].speed_sps, 91);
    assert_true(out[0].cartridge_serial == UINT64_MAX && out[1].cartridge_serial == 7);
    /* the optional outputs may be NULL */
    assert_int_equal(pl_batch_parse(p.b, p.n, 2, out, 2, &n, NULL, NULL), PL_OK);
    /* the fields may come in any order */
    pb q = { .n = 0 };
    vfield(&q, F_WIDTH, 1);
    column(&q, F_COL0 + 3, serial, 2);
    batch(&q, P_WIDTH | P_COLS);
    column(&q, F_COL0 + 1, speed, 2);
    column(&q, F_COL0 + 0, depth, 2);
    assert_int_equal(pl_batch_parse(q.b, q.n, 2, out, 2, &n, NULL, NULL), PL_OK);
    assert_true(out[1].cartridge_serial == 7 && out[1].depth_um == 500);
    /* unknown fields of every wire type are skipped */
    static const uint8_t eight[8] = { 0 }, four[4] = { 0 };
    pb u = { .n = 0 };
    vfield(&u, 30, UINT64_MAX);
    tag(&u, 31, WT_I64);
    raw(&u, eight, 8);
    tag(&u, 32, WT_I32);
    raw(&u, four, 4);
    tag(&u, 19, WT_LEN); /* the first field after the time planes */
    v(&u, 3);
    raw(&u, "abc", 3);
    batch(&u, 0);
    assert_int_equal(pl_batch_parse(u.b, u.n, 2, out, 2, &n, NULL, NULL), PL_OK);
    assert_int_equal(n, 2);
    /* an empty batch: a count of 0 needs no columns */
    pb e = { .n = 0 };
    vfield(&e, F_COUNT, 0);
    assert_int_equal(pl_batch_parse(e.b, e.n, 2, out, 2, &n, &first, NULL), PL_OK);
    assert_int_equal(n, 0);
}

/* Each refused field, and the offset of its tag. */
static void test_bad_fields(void **state)
{
    (void)state;
    pb p;
    size_t at;
#define START()                                                                                    \
    do {                                                                                           \
        p.n = 0;                                                                                   \
        batch(&p, 0);                                                                              \
        at = p.n;                                                                                  \
    } while (0)
    START();
    raw(&p, "\x80", 1); /* a tag cut short */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    {
        uint32_t n;
        assert_int_equal(pl_batch_parse(p.b, p.n, 2, out, 2, &n, NULL, NULL), PL_ERR_CHUNK_FORMAT);
    }
    START();
    raw(&p, "\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11); /* an 11-byte varint */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    v(&p, (uint64_t)1 << 35); /* a tag above 32 bits */
    v(&p, 0);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    vfield(&p, 0, 1); /* field number 0 */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    /* the single-value fields: wire type 0 only, value present */
    static const uint32_t fixed[] = { F_FIRST_SEQ, F_COUNT, F_TIME_BASE, F_WIDTH };
    for (int i = 0; i < 4; i++) {
        START();
        pb one = { .n = 1, .b = { 1 } };
        lfield(&p, fixed[i], &one);
        expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
        START();
        tag(&p, fixed[i], WT_VARINT);
        raw(&p, "\xFF", 1);
        expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    }
    /* unknown fields cut short */
    START();
    tag(&p, 30, WT_VARINT);
    raw(&p, "\x80", 1);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    tag(&p, 30, WT_I64);
    raw(&p, "1234567", 7);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    tag(&p, 30, WT_I32);
    raw(&p, "123", 3);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    tag(&p, 30, WT_LEN);
    v(&p, 4);
    raw(&p, "123", 3); /* a length past the end */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    tag(&p, 30, WT_LEN);
    raw(&p, "\x80", 1); /* its length cut short */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    /* groups (3, 4) and the wire types protobuf never defined (6, 7) */
    static const uint32_t groups[] = { 3, 4, 6, 7 };
    for (int i = 0; i < 4; i++) {
        START();
        tag(&p, 30, groups[i]);
        expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    }
    /* a field that appears twice: the layout, the time planes, a column */
    START();
    layout1(&p, PL_REC_TREATMENT_START, TS_MASK);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    pb two = { .n = 2 };
    lfield(&p, F_PLANES, &two);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    static const uint64_t k2[2] = { PL_REC_TREATMENT_START, PL_REC_TREATMENT_START };
    kinds(&p, k2, 2);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    START();
    column(&p, F_COL0 + 1, speed, 2);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
    /* the columns, the layout and the planes are always packed (wire type 2) */
    static const uint32_t packed[] = { F_LAYOUT, F_KINDS, F_COL0, F_COL0 + 10, F_PLANES };
    static const uint32_t other_wt[] = { WT_VARINT, WT_I64, WT_I32 };
    for (int i = 0; i < 5; i++)
        for (int w = 0; w < 3; w++) {
            START();
            tag(&p, packed[i], other_wt[w]);
            raw(&p, "\0\0\0\0\0\0\0\0", 8);
            expect_parse(&p, PL_ERR_CHUNK_FORMAT, at);
        }
#undef START
}

static void test_counts_and_seq(void **state)
{
    (void)state;
    pb p = { .n = 0 };
    uint32_t n;
    batch(&p, P_COUNT); /* no count */
    expect_parse(&p, PL_ERR_CHUNK_COUNT, 0);
    p.n = 0;
    batch(&p, 0);
    /* exactly at the limit and the caller's array: accepted; one below: refused */
    assert_int_equal(pl_batch_parse(p.b, p.n, 2, out, 2, &n, NULL, NULL), PL_OK);
    assert_int_equal(pl_batch_parse(p.b, p.n, 1, out, 2, &n, NULL, NULL), PL_ERR_CHUNK_COUNT);
    assert_int_equal(pl_batch_parse(p.b, p.n, 2, out, 1, &n, NULL, NULL), PL_ERR_CHUNK_COUNT);
    assert_int_equal(n, 0);
    /* sequence numbers that would wrap */
    p.n = 0;
    vfield(&p, F_FIRST_SEQ, UINT64_MAX);
    batch(&p, P_FIRST);
    expect_parse(&p, PL_ERR_CHUNK_SEQ, 0);
    p.n = 0;
    vfield(&p, F_FIRST_SEQ, UINT64_MAX - 1); /* the last two there are */
    batch(&p, P_FIRST);
    expect_parse(&p, PL_OK, 0);
    assert_true(out[1].seq == UINT64_MAX);
    /* a count of 2^32 + 2 is not a count of 2 */
    p.n = 0;
    vfield(&p, F_COUNT, ((uint64_t)1 << 32) + 2);
    batch(&p, P_COUNT);
    expect_parse(&p, PL_ERR_CHUNK_COUNT, 0);
}

/* The time planes: width 1..8, present, count * width bytes. */
static void test_time_planes(void **state)
{
    (void)state;
    pb p;
    static const uint64_t widths[] = { 0, 9, 1u << 31 };
    for (int i = 0; i < 3; i++) {
        p.n = 0;
        vfield(&p, F_WIDTH, widths[i]);
        batch(&p, P_WIDTH);
        expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    }
    p.n = 0;
    batch(&p, P_WIDTH); /* no width */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    p.n = 0;
    batch(&p, P_PLANES); /* no planes */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    p.n = 0;
    pb three = { .n = 3 };
    lfield(&p, F_PLANES, &three); /* one byte more than 2 records x 1 */
    batch(&p, P_PLANES);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    /* width 8: the planes hold each delta byte by byte, lowest first */
    p.n = 0;
    vfield(&p, F_WIDTH, 8);
    pb planes = { .n = 16 };
    uint64_t dz = pl_zigzag(-INT64_C(0x0102030405060708));
    for (int j = 0; j < 8; j++)
        planes.b[j * 2 + 1] = (uint8_t)(dz >> (8 * j));
    lfield(&p, F_PLANES, &planes);
    batch(&p, P_WIDTH | P_PLANES);
    expect_parse(&p, PL_OK, 0);
    assert_true(out[0].time_ms == 5000);
    assert_true(out[1].time_ms == 5000 - INT64_C(0x0102030405060708));
}

/* The layout table: well formed, one entry per kind, at most 64 kinds. */
static void test_layout(void **state)
{
    (void)state;
    pb p, l;
#define WITH_LAYOUT(...)                                                                           \
    do {                                                                                           \
        p.n = 0;                                                                                   \
        l.n = 0;                                                                                   \
        __VA_ARGS__;                                                                               \
        lfield(&p, F_LAYOUT, &l);                                                                  \
        batch(&p, P_LAYOUT);                                                                       \
    } while (0)
    WITH_LAYOUT(raw(&l, "\x83", 1)); /* a kind cut short */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    WITH_LAYOUT(v(&l, PL_REC_TREATMENT_START)); /* a kind without its mask */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    WITH_LAYOUT(v(&l, PL_REC_TREATMENT_START); raw(&l, "\x80", 1)); /* a mask cut short */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    WITH_LAYOUT(v(&l, (uint64_t)UINT32_MAX + 1); v(&l, 0)); /* a kind above 32 bits */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    WITH_LAYOUT(v(&l, PL_REC_TREATMENT_START); v(&l, (uint64_t)UINT32_MAX + 1 + TS_MASK));
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    WITH_LAYOUT(v(&l, PL_REC_TREATMENT_START); v(&l, TS_MASK); v(&l, PL_REC_TREATMENT_START);
                v(&l, TS_MASK)); /* one kind twice */
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    /* 64 kinds are the most: the 65th is refused */
    WITH_LAYOUT(for (uint64_t k = 100; k < 163; k++) {
        v(&l, k);
        v(&l, 0);
    } v(&l, PL_REC_TREATMENT_START);
                v(&l, TS_MASK));
    expect_parse(&p, PL_OK, 0);
    WITH_LAYOUT(for (uint64_t k = 100; k < 164; k++) {
        v(&l, k);
        v(&l, 0);
    } v(&l, PL_REC_TREATMENT_START);
                v(&l, TS_MASK));
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    /* a mask with bits of fields this version does not know: their columns are skipped */
    WITH_LAYOUT(v(&l, PL_REC_TREATMENT_START); v(&l, TS_MASK | 1u << 20));
    expect_parse(&p, PL_OK, 0);
    assert_int_equal(out[0].fields, TS_MASK);
    /* a kind in the kind column that the layout does not describe */
    p.n = 0;
    static const uint64_t k_other[2] = { PL_REC_TREATMENT_START, PL_REC_POWER_ON };
    kinds(&p, k_other, 2);
    batch(&p, P_KINDS);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    p.n = 0;
    static const uint64_t k_new[2] = { PL_REC_TREATMENT_START, 1000 };
    kinds(&p, k_new, 2);
    batch(&p, P_KINDS);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    /* a newer kind the layout describes decodes with its mask */
    static const uint64_t d3[3] = { 500, 500, 321 };
    {
        pb q = { .n = 0 };
        kinds(&q, k_new, 2);
        l.n = 0;
        v(&l, PL_REC_TREATMENT_START);
        v(&l, TS_MASK);
        v(&l, 1000);
        v(&l, PL_F_DEPTH_UM);
        lfield(&q, F_LAYOUT, &l);
        column(&q, F_COL0 + 0, d3, 3); /* depth of both records, then of the new kind */
        static const uint64_t sp1[1] = { 90 }, se1[1] = { 7 };
        column(&q, F_COL0 + 1, sp1, 1);
        column(&q, F_COL0 + 3, se1, 1);
        batch(&q, P_KINDS | P_LAYOUT | P_COLS);
        uint32_t n;
        assert_int_equal(pl_batch_parse(q.b, q.n, 2, out, 2, &n, NULL, NULL),
                         PL_ERR_CHUNK_FORMAT); /* the depth column has one value too many */
        q.n = 0;
        kinds(&q, k_new, 2);
        lfield(&q, F_LAYOUT, &l);
        column(&q, F_COL0 + 0, d3 + 1, 2);
        column(&q, F_COL0 + 1, sp1, 1);
        column(&q, F_COL0 + 3, se1, 1);
        batch(&q, P_KINDS | P_LAYOUT | P_COLS);
        assert_int_equal(pl_batch_parse(q.b, q.n, 2, out, 2, &n, NULL, NULL), PL_OK);
        assert_int_equal(out[1].kind, 1000);
        assert_int_equal(out[1].fields, PL_F_DEPTH_UM);
        assert_int_equal(out[1].depth_um, 321);
    }
#undef WITH_LAYOUT
}

/* The kind and field columns: as many values as records, each in range. */
static void test_columns(void **state)
{
    (void)state;
    pb p;
    static const uint64_t k1[1] = { PL_REC_TREATMENT_START },
                          k3[3] = { PL_REC_TREATMENT_START, PL_REC_TREATMENT_START,
                                    PL_REC_TREATMENT_START };
    /* a kind column one short: the count is wrong */
    p.n = 0;
    kinds(&p, k1, 1);
    batch(&p, P_KINDS);
    expect_parse(&p, PL_ERR_CHUNK_COUNT, 0);
    p.n = 0;
    batch(&p, P_KINDS); /* no kind column at all */
    expect_parse(&p, PL_ERR_CHUNK_COUNT, 0);
    /* one too many */
    p.n = 0;
    kinds(&p, k3, 3);
    batch(&p, P_KINDS);
    expect_parse(&p, PL_ERR_CHUNK_COUNT, 0);
    /* a kind above 32 bits is malformed, not a wrong count, wherever it is in the column */
    static const uint64_t kbig_last[2] = { PL_REC_TREATMENT_START, (uint64_t)UINT32_MAX + 1 },
                          kbig_first[2] = { (uint64_t)UINT32_MAX + 1, PL_REC_TREATMENT_START };
    p.n = 0;
    kinds(&p, kbig_first, 2);
    batch(&p, P_KINDS);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    p.n = 0;
    kinds(&p, kbig_last, 2);
    batch(&p, P_KINDS);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    /* a kind cut short inside its column */
    p.n = 0;
    {
        pb c = { .n = 0 };
        v(&c, PL_REC_TREATMENT_START);
        raw(&c, "\x83", 1);
        lfield(&p, F_KINDS, &c);
    }
    batch(&p, P_KINDS);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    /* a field column one short, one too long */
    p.n = 0;
    column(&p, F_COL0 + 0, depth, 2);
    column(&p, F_COL0 + 1, speed, 1);
    column(&p, F_COL0 + 3, serial, 2);
    batch(&p, P_COLS);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    p.n = 0;
    static const uint64_t s3[3] = { 90, 91, 92 };
    column(&p, F_COL0 + 0, depth, 2);
    column(&p, F_COL0 + 1, s3, 3);
    column(&p, F_COL0 + 3, serial, 2);
    batch(&p, P_COLS);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    /* a column of a field no record carries, with values in it */
    p.n = 0;
    batch(&p, 0);
    column(&p, F_COL0 + 6, speed, 2);
    expect_parse(&p, PL_ERR_CHUNK_FORMAT, p.n);
    /* a 32-bit field: UINT32_MAX is kept, one more is out of range */
    static const uint64_t d_max[2] = { UINT32_MAX, 0 }, d_over[2] = { 0, (uint64_t)UINT32_MAX + 1 };
    p.n = 0;
    column(&p, F_COL0 + 0, d_max, 2);
    column(&p, F_COL0 + 1, speed, 2);
    column(&p, F_COL0 + 3, serial, 2);
    batch(&p, P_COLS);
    expect_parse(&p, PL_OK, 0);
    assert_int_equal(out[0].depth_um, UINT32_MAX);
    assert_int_equal(out[1].depth_um, 0);
    p.n = 0;
    column(&p, F_COL0 + 0, d_over, 2);
    column(&p, F_COL0 + 1, speed, 2);
    column(&p, F_COL0 + 3, serial, 2);
    batch(&p, P_COLS);
    expect_parse(&p, PL_ERR_CHUNK_RANGE, p.n);
}

/* ---- pl_chunk_decode ---------------------------------------------------- */

static size_t deflate_batch(const pb *p, uint8_t *z, size_t cap)
{
    uLongf zl = cap;
    assert_int_equal(compress2(z, &zl, p->b, p->n, 9), Z_OK);
    return zl;
}

static void test_decode(void **state)
{
    (void)state;
    pl_chunk_dec d;
    assert_int_equal(pl_chunk_dec_init(&d, 2, 4096), PL_OK);
    pb p = { .n = 0 };
    batch(&p, 0);
    uint8_t z[8192];
    size_t zl = deflate_batch(&p, z, sizeof z);
    uint32_t n;
    /* the stream's length is reported; bytes after it are left alone */
    memcpy(z + zl, "TRAILER", 7);
    assert_int_equal(pl_chunk_decode(&d, z, zl + 7, NULL, out, 2, &n), PL_OK);
    assert_int_equal(n, 2);
    assert_int_equal(pl_chunk_dec_consumed(&d), zl);
    /* what LogChunk says, checked */
    pl_chunk_expect ex = { 100, 2, (uint32_t)p.n, 1 };
    assert_int_equal(pl_chunk_decode(&d, z, zl, &ex, out, 2, &n), PL_OK);
    ex.record_count = 3; /* above the decoder's limit: refused before inflating */
    assert_int_equal(pl_chunk_decode(&d, z, zl, &ex, out, 2, &n), PL_ERR_CHUNK_COUNT);
    assert_int_equal(pl_chunk_dec_consumed(&d), 0);
    ex.record_count = 1;
    assert_int_equal(pl_chunk_decode(&d, z, zl, &ex, out, 2, &n), PL_ERR_CHUNK_COUNT);
    assert_int_equal(n, 0);
    ex.record_count = 0; /* unknown: not checked */
    ex.raw_size = 0;
    ex.first_seq = 101;
    assert_int_equal(pl_chunk_decode(&d, z, zl, &ex, out, 2, &n), PL_ERR_CHUNK_SEQ);
    assert_int_equal(n, 0);
    ex.have_first_seq = 0;
    assert_int_equal(pl_chunk_decode(&d, z, zl, &ex, out, 2, &n), PL_OK);
    ex.raw_size = 4097;
    assert_int_equal(pl_chunk_decode(&d, z, zl, &ex, out, 2, &n), PL_ERR_CHUNK_TOO_LARGE);
    /* not zlib at all */
    assert_int_equal(pl_chunk_decode(&d, (const uint8_t *)"not zlib", 8, NULL, out, 2, &n),
                     PL_ERR_CHUNK_ZLIB);
    /* zlib whose checksum is wrong */
    z[zl - 1] ^= 1;
    assert_int_equal(pl_chunk_decode(&d, z, zl, NULL, out, 2, &n), PL_ERR_CHUNK_ZLIB);
    z[zl - 1] ^= 1;
    /* nothing at all: more is needed */
    assert_int_equal(pl_chunk_decode(&d, z, 0, NULL, out, 2, &n), PL_NEED_MORE);
    /* a malformed batch inside good zlib: the parser's status comes through */
    p.n = 0;
    batch(&p, P_PLANES);
    zl = deflate_batch(&p, z, sizeof z);
    assert_int_equal(pl_chunk_decode(&d, z, zl, NULL, out, 2, &n), PL_ERR_CHUNK_FORMAT);
    pl_chunk_dec_fini(&d);
    pl_chunk_dec_fini(&d); /* twice is harmless */
    pl_chunk_dec_fini(NULL);

    /* the decoder's own limits */
    assert_int_equal(pl_chunk_dec_init(NULL, 1, 1), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_dec_init(&d, 0, 1), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_dec_init(&d, PL_CHUNK_MAX_RECORDS + 1, 1), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_dec_init(&d, 1, 0), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_dec_init(&d, 1, PL_CHUNK_MAX_RAW + 1), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_dec_init(&d, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW), PL_OK);
    pl_chunk_dec_fini(&d);
}

/* ---- the encoder ---------------------------------------------------------- */

typedef struct enc_fixture {
    pl_chunk_enc e;
    _Alignas(16) uint8_t arena[PL_CHUNK_ENC_ARENA];
    uint8_t out[64 * 1024];
    pl_record rec[128];
    uint32_t calls, fail_at_call, change_at_call;
} enc_fixture;

/* An array source that fails, or changes a value, on a given call. */
static int counting_source(void *ctx, uint32_t i, pl_record *r)
{
    enc_fixture *f = ctx;
    f->calls++;
    if (f->calls == f->fail_at_call)
        return -1;
    *r = f->rec[i];
    if (f->change_at_call && f->calls >= f->change_at_call)
        r->depth_um = 1000000; /* a longer varint than the first pass saw */
    return 0;
}

static void treatments(enc_fixture *f, uint32_t n)
{
    memset(f->rec, 0, sizeof f->rec);
    for (uint32_t i = 0; i < n; i++) {
        pl_record *r = &f->rec[i];
        r->seq = 10 + i;
        r->time_ms = 1764000000000 + 1000 * (int64_t)i;
        r->kind = PL_REC_TREATMENT_START;
        r->fields = TS_MASK;
        r->depth_um = 500;
        r->speed_sps = 90 + i;
        r->cartridge_serial = 77;
    }
}

static void test_encoder(void **state)
{
    (void)state;
    enc_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pl_chunk_info info;
    /* arguments */
    assert_int_equal(pl_chunk_enc_init(NULL, f->arena, sizeof f->arena), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_enc_init(&f->e, NULL, sizeof f->arena), PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_enc_init(&f->e, f->arena, sizeof(z_stream) + 63), PL_ERR_INVALID_ARG);
    /* room for the stream but not for deflate's state: zlib's failure, cleanly */
    assert_int_equal(pl_chunk_enc_init(&f->e, f->arena, sizeof(z_stream) + 64), PL_ERR_ZLIB);
    /* an encoder that failed to start, or was finished, encodes nothing */
    treatments(f, 4);
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);
    assert_int_equal(pl_chunk_enc_init(&f->e, f->arena, sizeof f->arena), PL_OK);
    assert_int_equal(pl_chunk_encode(&f->e, NULL, f->rec, 4, f->out, sizeof f->out, &info),
                     PL_ERR_INVALID_ARG);
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, NULL, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, sizeof f->out, NULL),
        PL_ERR_INVALID_ARG);
    assert_int_equal(
        pl_chunk_encode(NULL, pl_record_array_source, f->rec, 4, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);

    /* the output exactly as long as the stream: written; one byte short: refused */
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, sizeof f->out, &info),
        PL_OK);
    uint32_t size = info.data_size;
    uint8_t *want = malloc(size);
    assert_non_null(want);
    memcpy(want, f->out, size);
    memset(f->out, 0xEE, sizeof f->out);
    assert_int_equal(pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, size, &info),
                     PL_OK);
    assert_int_equal(info.data_size, size);
    assert_memory_equal(f->out, want, size);
    assert_int_equal(f->out[size], 0xEE);
    memset(f->out, 0xEE, sizeof f->out);
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, size - 1, &info),
        PL_ERR_NO_SPACE);
    assert_int_equal(f->out[size - 1], 0xEE); /* nothing written past the buffer */
    assert_int_equal(pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, 0, &info),
                     PL_ERR_NO_SPACE);
    free(want);

    /* a capacity above 4 GiB is taken as 4 GiB: the stream is the same */
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, SIZE_MAX, &info), PL_OK);
    assert_int_equal(info.data_size, size);

    /* a source that fails in each pass: the first (sizes), the columns, the time planes */
    uint32_t calls_total;
    f->calls = 0;
    f->fail_at_call = 0;
    assert_int_equal(pl_chunk_encode(&f->e, counting_source, f, 4, f->out, sizeof f->out, &info),
                     PL_OK);
    calls_total = f->calls;
    assert_int_equal(calls_total, 4 + 4 * 4 + 4 * 2); /* 4 columns, width 2 (1000 ms deltas) */
    static const uint32_t fail_calls[] = { 1, 4, 5, 8, 20, 21, 28 };
    for (int i = 0; i < 7; i++) {
        f->calls = 0;
        f->fail_at_call = fail_calls[i];
        assert_int_equal(
            pl_chunk_encode(&f->e, counting_source, f, 4, f->out, sizeof f->out, &info),
            PL_ERR_INVALID_ARG);
    }
    /* a source whose records change between the passes */
    f->calls = 0;
    f->fail_at_call = 0;
    f->change_at_call = 5;
    assert_int_equal(pl_chunk_encode(&f->e, counting_source, f, 4, f->out, sizeof f->out, &info),
                     PL_ERR_INVALID_ARG);
    f->change_at_call = 0;

    /* sequence numbers: a gap, and a run that would wrap */
    treatments(f, 4);
    f->rec[2].seq = 99;
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);
    treatments(f, 2);
    f->rec[0].seq = UINT64_MAX;
    f->rec[1].seq = 0;
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 2, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);

    /* one newer kind with two field masks */
    treatments(f, 2);
    f->rec[0].kind = f->rec[1].kind = 500;
    f->rec[1].fields = PL_F_DEPTH_UM;
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 2, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);
    /* 64 kinds in one batch are the most; 65 are refused */
    treatments(f, 65);
    for (uint32_t i = 0; i < 65; i++) {
        f->rec[i].kind = 1000 + i;
        f->rec[i].fields = PL_F_STROKES;
        f->rec[i].strokes = i;
    }
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 64, f->out, sizeof f->out, &info),
        PL_OK);
    pl_chunk_dec d;
    uint32_t n;
    assert_int_equal(pl_chunk_dec_init(&d, 128, 64 * 1024), PL_OK);
    assert_int_equal(pl_chunk_decode(&d, f->out, info.data_size, NULL, out, 128, &n), PL_OK);
    assert_int_equal(n, 64);
    assert_int_equal(out[63].kind, 1063);
    assert_int_equal(out[63].fields, PL_F_STROKES);
    assert_true(out[63].strokes == 63);
    pl_chunk_dec_fini(&d);
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 65, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);
    pl_chunk_enc_fini(&f->e);
    pl_chunk_enc_fini(&f->e); /* twice is harmless */
    pl_chunk_enc_fini(NULL);
    treatments(f, 4);
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 4, f->out, sizeof f->out, &info),
        PL_ERR_INVALID_ARG);
    free(f);
}

/* Every output capacity below the stream's length is refused, wherever the
 * encoder is when the room runs out (a column, the kinds, the time planes, the
 * end), and nothing is written past the capacity. */
static void test_encoder_every_short_output(void **state)
{
    (void)state;
    enc_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(pl_chunk_enc_init(&f->e, f->arena, sizeof f->arena), PL_OK);
    uint64_t s = 77;
    tu_records(&s, f->rec, 128, 1, 1); /* extremes: little to compress */
    pl_chunk_info info;
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 128, f->out, sizeof f->out, &info),
        PL_OK);
    uint32_t size = info.data_size;
    assert_true(size > 1024);
    for (uint32_t cap = 0; cap < size; cap += 1 + cap / 64) {
        f->out[cap] = 0xEE;
        assert_int_equal(
            pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 128, f->out, cap, &info),
            PL_ERR_NO_SPACE);
        assert_int_equal(f->out[cap], 0xEE);
    }
    /* and the encoder is still good afterwards */
    assert_int_equal(
        pl_chunk_encode(&f->e, pl_record_array_source, f->rec, 128, f->out, size, &info), PL_OK);
    assert_int_equal(info.data_size, size);
    pl_chunk_enc_fini(&f->e);
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_standard_batch),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_counts_and_seq),
        cmocka_unit_test(test_time_planes),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_columns),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_encoder),
        cmocka_unit_test(test_encoder_every_short_output),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
