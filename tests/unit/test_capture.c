/* Captures (pl/capture.h): the block writers read back, the incremental
 * reader over pcapng (both byte orders) and pcap in every split, each
 * malformed file it refuses and why, and the wire view of each link type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pl/capture.h"

#define SHB_TYPE 0x0A0D0D0Au
#define IDB_TYPE 1u
#define PB_TYPE 2u
#define SPB_TYPE 3u
#define EPB_TYPE 6u
#define BOM 0x1A2B3C4Du
#define MAX_PACKETS 16

/* ---- a file builder, in either byte order ---------------------------- */

typedef struct bb {
    uint8_t b[16384];
    size_t n;
    int swap; /* write big-endian (this machine is little-endian in CI) */
} bb;

static void b_bytes(bb *f, const void *p, size_t n)
{
    assert_true(f->n + n <= sizeof f->b);
    memcpy(f->b + f->n, p, n);
    f->n += n;
}

static void b_u16(bb *f, uint16_t v)
{
    uint8_t p[2];
    for (int i = 0; i < 2; i++)
        p[i] = (uint8_t)(v >> (8 * (f->swap ? 1 - i : i)));
    b_bytes(f, p, 2);
}

static void b_u32(bb *f, uint32_t v)
{
    uint8_t p[4];
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * (f->swap ? 3 - i : i)));
    b_bytes(f, p, 4);
}

static void b_u64(bb *f, uint64_t v)
{
    uint8_t p[8];
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * (f->swap ? 7 - i : i)));
    b_bytes(f, p, 8);
}

static void b_pad(bb *f)
{
    while (f->n % 4)
        f->b[f->n++] = 0;
}

/* A block of @p type whose body is @p body (padded to 4). */
static void block(bb *f, uint32_t type, const bb *body)
{
    uint32_t total = (uint32_t)(12 + ((body->n + 3) & ~(size_t)3));
    b_u32(f, type);
    b_u32(f, total);
    b_bytes(f, body->b, body->n);
    b_pad(f);
    b_u32(f, total);
}

static void shb(bb *f, uint16_t major)
{
    b_u32(f, SHB_TYPE);
    b_u32(f, 28);
    b_u32(f, BOM);
    b_u16(f, major);
    b_u16(f, 0);
    b_u64(f, UINT64_MAX);
    b_u32(f, 28);
}

static bb *body_new(const bb *f)
{
    bb *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->swap = f->swap;
    return b;
}

/* An IDB with if_tsresol @p resol (0: none) and if_tsoffset @p off_s (0: none). */
static void idb(bb *f, uint16_t linktype, int resol, int64_t off_s)
{
    bb *b = body_new(f);
    b_u16(b, linktype);
    b_u16(b, 0);
    b_u32(b, 0);
    if (resol) {
        b_u16(b, 9);
        b_u16(b, 1);
        uint8_t r = (uint8_t)resol;
        b_bytes(b, &r, 1);
        b_pad(b);
    }
    if (off_s) {
        b_u16(b, 14);
        b_u16(b, 8);
        b_u64(b, (uint64_t)off_s);
    }
    b_u16(b, 99); /* an option the reader does not know, skipped */
    b_u16(b, 3);
    b_bytes(b, "abc", 3);
    b_pad(b);
    b_u32(b, 0);
    block(f, IDB_TYPE, b);
    free(b);
}

static void epb(bb *f, uint32_t ifc, uint64_t ts, const void *data, uint32_t len, uint32_t flags)
{
    bb *b = body_new(f);
    b_u32(b, ifc);
    b_u32(b, (uint32_t)(ts >> 32));
    b_u32(b, (uint32_t)ts);
    b_u32(b, len);
    b_u32(b, len + 7);
    b_bytes(b, data, len);
    b_pad(b);
    if (flags) {
        b_u16(b, 2);
        b_u16(b, 4);
        b_u32(b, flags);
    }
    b_u32(b, 0);
    block(f, EPB_TYPE, b);
    free(b);
}

/* ---- reading helpers --------------------------------------------------- */

typedef struct got {
    int n;
    pl_capture_packet p[MAX_PACKETS];
    uint8_t data[MAX_PACKETS][256];
} got;

/* Feeds @p f in pieces of @p piece bytes (0: at once); the last status. */
static pl_status read_all(pl_capture *c, const uint8_t *d, size_t len, size_t piece, got *g)
{
    size_t off = 0;
    pl_status st = PL_NEED_MORE;
    g->n = 0;
    while (off < len) {
        size_t n = piece && piece < len - off ? piece : len - off;
        size_t used = 0;
        pl_capture_packet p;
        st = pl_capture_feed(c, d + off, n, &used, &p);
        assert_true(used <= n);
        off += used;
        if (st == PL_OK) {
            assert_true(g->n < MAX_PACKETS);
            g->p[g->n] = p;
            assert_true(p.len <= sizeof g->data[0]);
            memcpy(g->data[g->n], p.data, p.len);
            g->p[g->n].data = g->data[g->n];
            g->n++;
            continue;
        }
        if (st != PL_NEED_MORE)
            return st;
        assert_int_equal(used, n); /* NEED_MORE takes everything */
    }
    return st;
}

/* One error from reading @p f whole: its status, with the message holding @p what. */
static void expect_error(const bb *f, size_t max_block, pl_status want, const char *what,
                         uint64_t want_offset)
{
    pl_capture c;
    got *g = calloc(1, sizeof *g);
    assert_non_null(g);
    pl_capture_init(&c, max_block);
    assert_int_equal(read_all(&c, f->b, f->n, 0, g), want);
    uint64_t at = 99;
    const char *msg = pl_capture_error(&c, &at);
    if (!strstr(msg, what))
        fail_msg("error '%s' does not say '%s'", msg, what);
    assert_true(at == want_offset);
    /* the reader stays failed, and takes nothing more */
    size_t used = 7;
    pl_capture_packet p;
    assert_int_equal(pl_capture_feed(&c, f->b, f->n, &used, &p), PL_ERR_CAPTURE);
    assert_int_equal(used, 0);
    pl_capture_fini(&c);
    free(g);
}

/* ---- writers, read back ------------------------------------------------ */

static void test_writers_read_back(void **state)
{
    (void)state;
    bb *f = calloc(1, sizeof *f);
    got *g = calloc(1, sizeof *g);
    assert_non_null(f);
    assert_non_null(g);
    uint8_t tmp[PL_CAPTURE_IDB_MAX + 8];
    f->n = pl_capture_shb(f->b);
    assert_int_equal(f->n, PL_CAPTURE_SHB_SIZE);
    assert_true(pl_capture_sniff(f->b, f->n));

    /* names are cut to 100 bytes; both at their longest still fit */
    char longname[151];
    memset(longname, 'n', 150);
    longname[150] = 0;
    memset(tmp, 0xEE, sizeof tmp);
    size_t n = pl_capture_idb(tmp, PL_LINKTYPE_USB_MMAPPED, longname, longname);
    assert_int_equal(n, 16 + 2 * (4 + 100) + 8 + 4 + 4);
    assert_true(n <= PL_CAPTURE_IDB_MAX);
    assert_int_equal(tmp[n], 0xEE);
    memcpy(f->b + f->n, tmp, n);
    f->n += n;
    n = pl_capture_idb(f->b + f->n, PL_LINKTYPE_PENLINK, NULL, "");
    assert_int_equal(n, 16 + 8 + 4 + 4); /* no name, no description */
    f->n += n;

    static const int64_t ts[] = { 1764000000123456, 0, -1500000 };
    for (uint32_t len = 0; len <= 5; len++) {
        uint8_t data[8];
        for (uint32_t i = 0; i < len; i++)
            data[i] = (uint8_t)(0xA0 + len + i);
        pl_dir dir = len % 2 ? PL_DIR_TO_HOST : PL_DIR_TO_PEN;
        size_t h = pl_capture_epb_head(f->b + f->n, len % 2, ts[len % 3], len);
        assert_int_equal(h, 28);
        f->n += h;
        memcpy(f->b + f->n, data, len);
        f->n += len;
        size_t t = pl_capture_epb_tail(f->b + f->n, len, dir);
        assert_int_equal(t, ((len + 3) & ~3u) - len + 16);
        f->n += t;
    }
    /* every split gives the same packets */
    for (size_t piece = 0; piece <= 9; piece++) {
        pl_capture c;
        pl_capture_init(&c, 0);
        assert_int_equal(read_all(&c, f->b, f->n, piece, g), PL_OK);
        assert_int_equal(g->n, 6);
        uint64_t off = PL_CAPTURE_SHB_SIZE + 240 + 32;
        for (uint32_t len = 0; len <= 5; len++) {
            const pl_capture_packet *p = &g->p[len];
            assert_true(p->number == len + 1);
            assert_true(p->offset == off);
            assert_int_equal(p->interface, len % 2);
            assert_int_equal(p->linktype, len % 2 ? PL_LINKTYPE_PENLINK : PL_LINKTYPE_USB_MMAPPED);
            assert_true(p->ts_us == ts[len % 3]);
            assert_int_equal(p->flags, len % 2 ? 1u : 2u);
            assert_int_equal(p->swapped, 0);
            assert_int_equal(p->len, len);
            assert_int_equal(p->orig_len, len);
            for (uint32_t i = 0; i < len; i++)
                assert_int_equal(p->data[i], 0xA0 + len + i);
            off += PL_CAPTURE_EPB_OVERHEAD + ((len + 3) & ~3u);
        }
        assert_int_equal(pl_capture_pending(&c), 0);
        assert_string_equal(pl_capture_error(&c, NULL), "");
        pl_capture_fini(&c);
    }
    free(f);
    free(g);
}

static void test_sniff(void **state)
{
    (void)state;
    static const uint8_t ng[] = { 0x0A, 0x0D, 0x0D, 0x0A }, us[] = { 0xD4, 0xC3, 0xB2, 0xA1 },
                         ns[] = { 0x4D, 0x3C, 0xB2, 0xA1 }, us_be[] = { 0xA1, 0xB2, 0xC3, 0xD4 },
                         ns_be[] = { 0xA1, 0xB2, 0x3C, 0x4D }, other[] = { 'P', 'N', 'L', 'K' };
    assert_int_equal(pl_capture_sniff(ng, 4), 1);
    assert_int_equal(pl_capture_sniff(us, 4), 1);
    assert_int_equal(pl_capture_sniff(ns, 4), 1);
    assert_int_equal(pl_capture_sniff(us_be, 4), 1);
    assert_int_equal(pl_capture_sniff(ns_be, 4), 1);
    assert_int_equal(pl_capture_sniff(other, 4), 0);
    assert_int_equal(pl_capture_sniff(ng, 3), 0); /* too short to tell */
}

/* ---- pcapng, both byte orders, every block kind ----------------------- */

static void build_rich(bb *f)
{
    static const uint8_t d1[] = { 1, 2, 3, 4, 5 }, d2[] = { 9, 8, 7 };
    shb(f, 1);
    idb(f, PL_LINKTYPE_PENLINK, 0, 0);             /* if 0: microseconds */
    idb(f, PL_LINKTYPE_USB_MMAPPED, 9, 0);         /* if 1: nanoseconds */
    idb(f, PL_LINKTYPE_USB_LINUX, 3, 100);         /* if 2: milliseconds, +100 s */
    idb(f, PL_LINKTYPE_USB_USBPCAP, 0x80 | 10, 0); /* if 3: 1/1024 s */
    idb(f, PL_LINKTYPE_PENLINK, 0x80 | 63, 0);     /* if 4: 2^-63 s, the finest */
    epb(f, 0, 1764000000123456ull, d1, 5, 1);
    epb(f, 1, 1764000000123456789ull, d2, 3, 2);
    epb(f, 2, 1764000000123ull, d1, 4, 0);
    epb(f, 3, (5ull << 10) | 512, d2, 2, 0);          /* 5.5 s */
    epb(f, 4, (1ull << 63) | (1ull << 62), d1, 1, 0); /* 1.5 s */
    /* a block of a type the reader does not know: skipped */
    bb *b = body_new(f);
    b_u32(b, 0xDEADBEEF);
    block(f, 0x0BADu, b);
    free(b);
    /* a simple packet block: interface 0, original length 6, 3 bytes kept */
    b = body_new(f);
    b_u32(b, 6);
    b_bytes(b, "xyz", 3);
    block(f, SPB_TYPE, b);
    free(b);
    /* a simple packet block cut shorter than its padding: original length 2 */
    b = body_new(f);
    b_u32(b, 2);
    b_bytes(b, "qrst", 4);
    block(f, SPB_TYPE, b);
    free(b);
    /* an obsolete packet block: 16-bit interface, 16-bit drops */
    b = body_new(f);
    b_u16(b, 1);
    b_u16(b, 0);
    b_u32(b, 0);
    b_u32(b, 1000);
    b_u32(b, 2);
    b_u32(b, 2);
    b_bytes(b, "ok", 2);
    block(f, PB_TYPE, b);
    free(b);
}

static void check_rich(const got *g, int swapped)
{
    assert_int_equal(g->n, 8);
    for (int i = 0; i < g->n; i++)
        assert_int_equal(g->p[i].swapped, swapped);
    assert_true(g->p[0].ts_us == 1764000000123456);
    assert_int_equal(g->p[0].flags, 1);
    assert_int_equal(g->p[0].len, 5);
    assert_int_equal(g->p[0].orig_len, 12);
    assert_memory_equal(g->p[0].data, "\1\2\3\4\5", 5);
    assert_true(g->p[1].ts_us == 1764000000123456);
    assert_int_equal(g->p[1].flags, 2);
    assert_int_equal(g->p[1].linktype, PL_LINKTYPE_USB_MMAPPED);
    assert_true(g->p[2].ts_us == (1764000000 + 100) * INT64_C(1000000) + 123000);
    assert_int_equal(g->p[2].linktype, PL_LINKTYPE_USB_LINUX);
    assert_true(g->p[3].ts_us == 5500000);
    assert_int_equal(g->p[3].linktype, PL_LINKTYPE_USB_USBPCAP);
    assert_true(g->p[4].ts_us == 1500000);
    /* the simple packets: interface 0, no time */
    assert_int_equal(g->p[5].interface, 0);
    assert_int_equal(g->p[5].len, 4); /* what the block holds (the padding) ... */
    assert_int_equal(g->p[5].orig_len, 6);
    assert_memory_equal(g->p[5].data, "xyz", 3);
    assert_int_equal(g->p[6].len, 2); /* ... or the original length, the smaller */
    assert_memory_equal(g->p[6].data, "qr", 2);
    assert_true(g->p[5].ts_us == 0);
    /* the obsolete packet block */
    assert_int_equal(g->p[7].interface, 1);
    assert_int_equal(g->p[7].len, 2);
    assert_memory_equal(g->p[7].data, "ok", 2);
    assert_true(g->p[7].ts_us == 1); /* 1000 ns on interface 1 */
    for (int i = 0; i < g->n; i++)
        assert_true(g->p[i].number == (uint64_t)i + 1);
}

static void test_pcapng_both_orders(void **state)
{
    (void)state;
    got *g = calloc(1, sizeof *g);
    assert_non_null(g);
    for (int swap = 0; swap <= 1; swap++) {
        bb *f = calloc(1, sizeof *f);
        assert_non_null(f);
        f->swap = swap;
        build_rich(f);
        for (size_t piece = 0; piece <= 13; piece += 1) {
            pl_capture c;
            pl_capture_init(&c, 0);
            assert_int_equal(read_all(&c, f->b, f->n, piece, g), PL_OK);
            check_rich(g, swap);
            assert_int_equal(pl_capture_pending(&c), 0);
            pl_capture_fini(&c);
        }
        free(f);
    }
    free(g);
}

/* Options are read up to their end marker or the block's end, whichever is
 * first; options too short for their value are ignored, not misread. */
static void test_options(void **state)
{
    (void)state;
    bb *f = calloc(1, sizeof *f);
    bb *b = calloc(1, sizeof *b);
    got *g = calloc(1, sizeof *g);
    assert_non_null(f);
    assert_non_null(b);
    assert_non_null(g);
    shb(f, 1);
    /* if 0: no options at all (a 20-byte block) */
    b_u16(b, PL_LINKTYPE_PENLINK);
    b_u16(b, 0);
    b_u32(b, 0);
    block(f, IDB_TYPE, b);
    /* if 1: if_tsresol of no bytes and if_tsoffset of 4 (both ignored), no end marker */
    b->n = 0;
    b_u16(b, PL_LINKTYPE_PENLINK);
    b_u16(b, 0);
    b_u32(b, 0);
    b_u16(b, 9);
    b_u16(b, 0);
    b_u16(b, 14);
    b_u16(b, 4);
    b_u32(b, 1000);
    block(f, IDB_TYPE, b);
    /* packets: no options, no end marker */
    b->n = 0;
    b_u32(b, 1);
    b_u32(b, 0);
    b_u32(b, 2500000);
    b_u32(b, 2);
    b_u32(b, 2);
    b_bytes(b, "hi", 2);
    b_pad(b);
    block(f, EPB_TYPE, b);
    /* a comment, an epb_flags of 2 bytes (ignored), another option, no end marker */
    b->n = 0;
    b_u32(b, 0);
    b_u32(b, 0);
    b_u32(b, 7);
    b_u32(b, 1);
    b_u32(b, 1);
    b_bytes(b, "!", 1);
    b_pad(b);
    b_u16(b, 1);
    b_u16(b, 5);
    b_bytes(b, "note.", 5);
    b_pad(b);
    b_u16(b, 2);
    b_u16(b, 2);
    b_u16(b, 1);
    b_u16(b, 0);
    b_u16(b, 3);
    b_u16(b, 8);
    b_u64(b, 0);
    block(f, EPB_TYPE, b);
    pl_capture c;
    pl_capture_init(&c, 0);
    assert_int_equal(read_all(&c, f->b, f->n, 0, g), PL_OK);
    assert_int_equal(g->n, 2);
    assert_int_equal(g->p[0].interface, 1);
    assert_true(g->p[0].ts_us == 2500000); /* microseconds, no offset */
    assert_int_equal(g->p[0].flags, 0);
    assert_memory_equal(g->p[0].data, "hi", 2);
    assert_int_equal(g->p[1].flags, 0);
    assert_true(g->p[1].ts_us == 7);
    pl_capture_fini(&c);
    free(f);
    free(b);
    free(g);
}

/* A second section forgets the interfaces of the first. */
static void test_sections(void **state)
{
    (void)state;
    bb *f = calloc(1, sizeof *f);
    got *g = calloc(1, sizeof *g);
    assert_non_null(f);
    assert_non_null(g);
    shb(f, 1);
    idb(f, PL_LINKTYPE_PENLINK, 0, 0);
    idb(f, PL_LINKTYPE_USB_MMAPPED, 0, 0);
    epb(f, 1, 7, "a", 1, 0);
    size_t second = f->n;
    f->swap = 1; /* and in the other byte order */
    shb(f, 1);
    idb(f, PL_LINKTYPE_USB_LINUX, 0, 0);
    epb(f, 0, 8, "b", 1, 0);
    size_t bad_at = f->n;
    epb(f, 1, 9, "c", 1, 0); /* interface 1 of the first section, gone */
    pl_capture c;
    pl_capture_init(&c, 0);
    assert_int_equal(read_all(&c, f->b, f->n, 0, g), PL_ERR_CAPTURE);
    assert_int_equal(g->n, 2);
    assert_int_equal(g->p[0].linktype, PL_LINKTYPE_USB_MMAPPED);
    assert_int_equal(g->p[1].linktype, PL_LINKTYPE_USB_LINUX);
    assert_int_equal(g->p[1].swapped, 1);
    assert_true(g->p[1].offset > second);
    uint64_t at;
    assert_non_null(strstr(pl_capture_error(&c, &at), "not described"));
    assert_true(at == bad_at);
    pl_capture_fini(&c);
    free(f);
    free(g);
}

/* A file cut inside a block: the bytes held are pending. */
static void test_pending(void **state)
{
    (void)state;
    bb *f = calloc(1, sizeof *f);
    got *g = calloc(1, sizeof *g);
    assert_non_null(f);
    assert_non_null(g);
    shb(f, 1);
    idb(f, PL_LINKTYPE_PENLINK, 0, 0);
    size_t whole = f->n;
    epb(f, 0, 1, "abcdef", 6, 0);
    pl_capture c;
    pl_capture_init(&c, 0);
    assert_int_equal(read_all(&c, f->b, f->n - 5, 3, g), PL_NEED_MORE);
    assert_int_equal(g->n, 0);
    assert_int_equal(pl_capture_pending(&c), f->n - 5 - whole);
    pl_capture_fini(&c);
    free(f);
    free(g);
}

/* Blocks up to the bound are read (the buffer grows, at most to it); one byte over is refused. */
static void test_block_bound(void **state)
{
    (void)state;
    bb *f = calloc(1, sizeof *f);
    got *g = calloc(1, sizeof *g);
    uint8_t *data = calloc(1, 6000);
    assert_non_null(f);
    assert_non_null(g);
    assert_non_null(data);
    for (int i = 0; i < 6000; i++)
        data[i] = (uint8_t)i;
    shb(f, 1);
    idb(f, PL_LINKTYPE_PENLINK, 0, 0);
    size_t at = f->n;
    /* an EPB of 44 + 6000 bytes: not kept in got, read by hand */
    epb(f, 0, 1, data, 6000, 0);
    size_t total = f->n - at;
    pl_capture c;
    pl_capture_packet p;
    size_t used;
    pl_capture_init(&c, total);
    assert_int_equal(pl_capture_feed(&c, f->b, f->n, &used, &p), PL_OK);
    assert_int_equal(used, f->n);
    assert_int_equal(p.len, 6000);
    assert_memory_equal(p.data, data, 6000);
    pl_capture_fini(&c);

    pl_capture_init(&c, total - 4);
    assert_int_equal(pl_capture_feed(&c, f->b, f->n, &used, &p), PL_ERR_CAPTURE_TOO_LARGE);
    assert_true(used < at + 12); /* refused on its header, before its bytes came */
    pl_capture_fini(&c);

    /* the bound is never below a section header */
    bb *s = calloc(1, sizeof *s);
    assert_non_null(s);
    shb(s, 1);
    idb(s, PL_LINKTYPE_PENLINK, 0, 0);
    pl_capture_init(&c, 1);
    assert_int_equal(pl_capture_feed(&c, s->b, s->n, &used, &p), PL_ERR_CAPTURE_TOO_LARGE);
    assert_int_equal(used, 28 + 8);
    pl_capture_fini(&c);
    free(s);
    free(data);
    free(f);
    free(g);
}

/* ---- every malformed pcapng the reader refuses ------------------------- */

static void test_pcapng_malformed(void **state)
{
    (void)state;
    bb *f = calloc(1, sizeof *f);
    bb *b = calloc(1, sizeof *b);
    assert_non_null(f);
    assert_non_null(b);

    memcpy(f->b, "GIF89a..", 8);
    f->n = 8;
    expect_error(f, 0, PL_ERR_CAPTURE, "not a pcapng or pcap file", 0);

    f->n = 0;
    shb(f, 1);
    memcpy(f->b + 8, "\x11\x22\x33\x44", 4);
    expect_error(f, 0, PL_ERR_CAPTURE, "unknown byte-order mark", 0);

    f->n = 0;
    shb(f, 2);
    expect_error(f, 0, PL_ERR_CAPTURE, "unknown pcapng major version", 0);

    /* a section header shorter than its fields */
    f->n = 0;
    shb(f, 1);
    f->b[4] = 24;
    expect_error(f, 0, PL_ERR_CAPTURE, "not a valid block size", 0);

    /* block lengths: below the minimum, not a multiple of 4 */
    static const uint32_t bad_len[] = { 8, 13, 0 };
    for (int i = 0; i < 3; i++) {
        f->n = 0;
        shb(f, 1);
        b_u32(f, IDB_TYPE);
        b_u32(f, bad_len[i]);
        b_u32(f, 0);
        b_u32(f, 0);
        expect_error(f, 0, PL_ERR_CAPTURE, "not a valid block size", 28);
    }

    /* trailing length differs from the leading one */
    f->n = 0;
    shb(f, 1);
    idb(f, PL_LINKTYPE_PENLINK, 0, 0);
    f->b[f->n - 4] ^= 4;
    expect_error(f, 0, PL_ERR_CAPTURE, "trailing length differs", 28);

    /* a block over the reader's bound */
    f->n = 0;
    shb(f, 1);
    idb(f, PL_LINKTYPE_PENLINK, 0, 0);
    expect_error(f, 31, PL_ERR_CAPTURE_TOO_LARGE, "larger than the reader's limit", 28);

    /* an IDB of 16 bytes: no room for its fields */
    f->n = 0;
    shb(f, 1);
    b->n = 0;
    b_u32(b, 0);
    block(f, IDB_TYPE, b);
    expect_error(f, 0, PL_ERR_CAPTURE, "interface description block too short", 28);

    /* an interface option longer than the block */
    f->n = 0;
    shb(f, 1);
    b->n = 0;
    b_u16(b, PL_LINKTYPE_PENLINK);
    b_u16(b, 0);
    b_u32(b, 0);
    b_u16(b, 2);
    b_u16(b, 200);
    b_u32(b, 0);
    block(f, IDB_TYPE, b);
    expect_error(f, 0, PL_ERR_CAPTURE, "interface option runs past its block", 28);

    /* timestamp resolutions no 64-bit count can hold */
    static const int resol[] = { 20, 0x80 | 64 };
    for (int i = 0; i < 2; i++) {
        f->n = 0;
        shb(f, 1);
        idb(f, PL_LINKTYPE_PENLINK, resol[i], 0);
        expect_error(f, 0, PL_ERR_CAPTURE, "timestamp resolution out of range", 28);
    }
    /* the largest decimal resolution is accepted */
    f->n = 0;
    shb(f, 1);
    idb(f, PL_LINKTYPE_PENLINK, 19, 0);
    epb(f, 0, 15000000000000000000ull, "z", 1, 0);
    {
        got *g = calloc(1, sizeof *g);
        assert_non_null(g);
        pl_capture c;
        pl_capture_init(&c, 0);
        assert_int_equal(read_all(&c, f->b, f->n, 0, g), PL_OK);
        assert_int_equal(g->n, 1);
        assert_true(g->p[0].ts_us == 1500000);
        pl_capture_fini(&c);
        free(g);
    }

    /* more interfaces than the reader keeps */
    f->n = 0;
    shb(f, 1);
    for (unsigned i = 0; i < PL_CAPTURE_MAX_IF; i++)
        idb(f, PL_LINKTYPE_PENLINK, 0, 0);
    size_t at = f->n;
    idb(f, PL_LINKTYPE_PENLINK, 0, 0);
    expect_error(f, 0, PL_ERR_CAPTURE, "too many interfaces", at);

    /* packet blocks too short for their headers */
    f->n = 0;
    shb(f, 1);
    idb(f, PL_LINKTYPE_PENLINK, 0, 0);
    at = f->n;
    b->n = 0;
    b_u32(b, 0);
    b_u32(b, 0);
    b_u32(b, 0);
    b_u32(b, 0);
    block(f, EPB_TYPE, b); /* 28 bytes */
    expect_error(f, 0, PL_ERR_CAPTURE, "packet block too short", at);
    f->n = at;
    b->n = 0;
    block(f, SPB_TYPE, b); /* 12 bytes */
    expect_error(f, 0, PL_ERR_CAPTURE, "simple packet block too short", at);

    /* packet data longer than its block */
    f->n = at;
    epb(f, 0, 1, "abcd", 4, 0);
    f->b[at + 20] = 9; /* captured length 9 in a block with room for 8 */
    expect_error(f, 0, PL_ERR_CAPTURE, "packet data runs past its block", at);
    f->n = at;
    epb(f, 0, 1, "abcd", 4, 0);
    memset(f->b + at + 20, 0xFF, 4); /* captured length 2^32 - 1 */
    expect_error(f, 0, PL_ERR_CAPTURE, "packet data runs past its block", at);

    /* a packet option longer than the block */
    f->n = at;
    epb(f, 0, 1, "abcd", 4, 1);
    f->b[at + 28 + 4 + 2] = 100;
    expect_error(f, 0, PL_ERR_CAPTURE, "packet option runs past its block", at);

    /* a packet on interface 1 when only 0 was described */
    f->n = at;
    epb(f, 1, 1, "abcd", 4, 0);
    expect_error(f, 0, PL_ERR_CAPTURE, "interface that was not described", at);
    free(f);
    free(b);
}

/* ---- classic pcap -------------------------------------------------------- */

static void pcap_global(bb *f, uint32_t magic, uint16_t major, uint32_t linktype)
{
    b_u32(f, magic);
    b_u16(f, major);
    b_u16(f, 4);
    b_u32(f, 0);
    b_u32(f, 0);
    b_u32(f, 65535);
    b_u32(f, linktype);
}

static void pcap_record(bb *f, uint32_t sec, uint32_t sub, const void *d, uint32_t len)
{
    b_u32(f, sec);
    b_u32(f, sub);
    b_u32(f, len);
    b_u32(f, len + 100);
    b_bytes(f, d, len);
}

static void test_pcap(void **state)
{
    (void)state;
    got *g = calloc(1, sizeof *g);
    assert_non_null(g);
    for (int swap = 0; swap <= 1; swap++) {
        for (int nano = 0; nano <= 1; nano++) {
            bb *f = calloc(1, sizeof *f);
            assert_non_null(f);
            f->swap = swap;
            pcap_global(f, nano ? 0xA1B23C4Du : 0xA1B2C3D4u, 2, PL_LINKTYPE_USB_LINUX);
            uint32_t sub = nano ? 999999999u : 999999u;
            pcap_record(f, 1764000000, sub, "hello", 5);
            pcap_record(f, 5, 0, "", 0);
            pcap_record(f, 6, 1, "xy", 2);
            for (size_t piece = 0; piece <= 7; piece++) {
                pl_capture c;
                pl_capture_init(&c, 0);
                assert_int_equal(read_all(&c, f->b, f->n, piece, g), PL_OK);
                assert_int_equal(g->n, 3);
                assert_true(g->p[0].ts_us == INT64_C(1764000000999999));
                assert_int_equal(g->p[0].linktype, PL_LINKTYPE_USB_LINUX);
                assert_int_equal(g->p[0].len, 5);
                assert_int_equal(g->p[0].orig_len, 105);
                assert_int_equal(g->p[0].swapped, swap);
                assert_int_equal(g->p[0].interface, 0);
                assert_true(g->p[0].offset == 24);
                assert_memory_equal(g->p[0].data, "hello", 5);
                assert_int_equal(g->p[1].len, 0);
                assert_true(g->p[1].offset == 24 + 16 + 5);
                assert_true(g->p[2].ts_us == (nano ? 6000000 : 6000001));
                assert_true(g->p[2].number == 3);
                pl_capture_fini(&c);
            }
            /* the same file with a sub-second count of a whole second: refused */
            size_t at = 24 + 16 + 5 + 16;
            size_t keep = f->n;
            f->n = at + 4;
            b_u32(f, nano ? 1000000000u : 1000000u);
            f->n = keep;
            expect_error(f, 0, PL_ERR_CAPTURE, "sub-second time out of range", at);
            free(f);
        }
    }
    free(g);

    bb *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pcap_global(f, 0xA1B2C3D4u, 3, 1);
    expect_error(f, 0, PL_ERR_CAPTURE, "unknown major version", 0);
    /* a record above the reader's bound: refused on its header */
    f->n = 0;
    pcap_global(f, 0xA1B2C3D4u, 2, 1);
    pcap_record(f, 1, 0, "0123456789abcdef", 16);
    expect_error(f, 31, PL_ERR_CAPTURE_TOO_LARGE, "larger than the reader's limit", 24);
    /* ... and the bound itself is accepted */
    {
        got *g2 = calloc(1, sizeof *g2);
        assert_non_null(g2);
        pl_capture c;
        pl_capture_init(&c, 32);
        assert_int_equal(read_all(&c, f->b, f->n, 0, g2), PL_OK);
        assert_int_equal(g2->n, 1);
        pl_capture_fini(&c);
        free(g2);
    }
    free(f);
}

/* ---- the wire view -------------------------------------------------------- */

static pl_capture_packet pkt(uint32_t linktype, const uint8_t *d, uint32_t len)
{
    pl_capture_packet p;
    memset(&p, 0, sizeof p);
    p.linktype = linktype;
    p.data = d;
    p.len = len;
    p.orig_len = len;
    return p;
}

static void test_wire_penlink(void **state)
{
    (void)state;
    uint8_t d[8] = { 0, 0, 0, 0, 'P', 'N', 'L', 'K' };
    pl_wire w;
    for (int dir = 0; dir <= 1; dir++) {
        pl_capture_stream_phdr(d, (pl_dir)dir);
        assert_int_equal(d[0], PL_STREAM_PHDR_MAGIC);
        assert_int_equal(d[1], PL_STREAM_PHDR_VERSION);
        assert_int_equal(d[3], 0);
        pl_capture_packet p = pkt(PL_LINKTYPE_PENLINK, d, 8);
        p.interface = 3;
        assert_int_equal(pl_capture_wire(&p, &w), 1);
        assert_int_equal(w.dir, dir);
        assert_int_equal(w.stream, 3);
        assert_int_equal(w.len, 4);
        assert_true(w.data == d + 4);
        p.len = 4; /* the pseudo-header alone: no bytes */
        assert_int_equal(pl_capture_wire(&p, &w), 0);
    }
    pl_capture_packet p = pkt(PL_LINKTYPE_PENLINK, d, 3);
    assert_int_equal(pl_capture_wire(&p, &w), PL_ERR_CAPTURE); /* shorter than its header */
    p.len = 8;
    d[0] = 'q';
    assert_int_equal(pl_capture_wire(&p, &w), PL_ERR_CAPTURE);
    d[0] = PL_STREAM_PHDR_MAGIC;
    d[1] = 2;
    assert_int_equal(pl_capture_wire(&p, &w), PL_ERR_CAPTURE);
    d[1] = PL_STREAM_PHDR_VERSION;
    d[2] = 2; /* no such direction */
    assert_int_equal(pl_capture_wire(&p, &w), PL_ERR_CAPTURE);
    d[2] = 1;
    assert_int_equal(pl_capture_wire(&p, &w), 1);
    /* a link type that carries no penlink bytes */
    p.linktype = 1;
    assert_int_equal(pl_capture_wire(&p, &w), 0);
}

static void test_wire_usbmon(void **state)
{
    (void)state;
    uint8_t d[PL_USBMON_HDR_SIZE + 8];
    pl_wire w;
    pl_usb_xfer x = { .urb_id = 0x1122334455667788ull,
                      .ts_us = 1764000000654321,
                      .bus = 3,
                      .device = 9,
                      .endpoint = 0x01,
                      .len = 8,
                      .status = 0,
                      .complete = 0 };
    for (int legacy = 0; legacy <= 1; legacy++) {
        uint32_t hdr = legacy ? PL_USBMON_HDR_SIZE_LEGACY : PL_USBMON_HDR_SIZE;
        uint32_t lt = legacy ? PL_LINKTYPE_USB_LINUX : PL_LINKTYPE_USB_MMAPPED;
        /* an OUT submission carries the request */
        x.endpoint = 0x01;
        x.complete = 0;
        x.status = 0;
        x.len = 8;
        pl_capture_usbmon_hdr(d, &x);
        assert_int_equal(d[8], 'S');
        assert_int_equal(d[9], 3);
        assert_int_equal(d[15], 0); /* data follows */
        memcpy(d + hdr, "PNLKdata", 8);
        pl_capture_packet p = pkt(lt, d, hdr + 8);
        assert_int_equal(pl_capture_wire(&p, &w), 1);
        assert_int_equal(w.dir, PL_DIR_TO_PEN);
        assert_int_equal(w.bus, 3);
        assert_int_equal(w.device, 9);
        assert_int_equal(w.endpoint, 0x01);
        assert_int_equal(w.stream, 3u << 16 | 9u << 8 | 0x01);
        assert_int_equal(w.len, 8);
        assert_true(w.data == d + hdr);
        /* the capture kept fewer bytes than the transfer had */
        p.len = hdr + 5;
        assert_int_equal(pl_capture_wire(&p, &w), 1);
        assert_int_equal(w.len, 5);
        /* its completion carries nothing new */
        x.complete = 1;
        pl_capture_usbmon_hdr(d, &x);
        assert_int_equal(d[8], 'C');
        p.len = hdr + 8;
        assert_int_equal(pl_capture_wire(&p, &w), 0);
        /* an IN completion carries the reply; -EREMOTEIO (short packet) too */
        x.endpoint = 0x81;
        for (int k = 0; k < 3; k++) {
            static const int32_t st[] = { 0, -121, -32 };
            x.status = st[k];
            pl_capture_usbmon_hdr(d, &x);
            assert_int_equal(pl_capture_wire(&p, &w), k < 2 ? 1 : 0);
            if (k < 2) {
                assert_int_equal(w.dir, PL_DIR_TO_HOST);
                assert_int_equal(w.endpoint, 0x81);
            }
        }
        /* an IN submission has no data; its direction mark says so */
        x.status = 0;
        x.complete = 0;
        x.len = 0;
        pl_capture_usbmon_hdr(d, &x);
        assert_int_equal(d[15], '<');
        p.len = hdr;
        assert_int_equal(pl_capture_wire(&p, &w), 0);
        x.endpoint = 0x01;
        pl_capture_usbmon_hdr(d, &x);
        assert_int_equal(d[15], '>');
        assert_int_equal(pl_capture_wire(&p, &w), 0); /* an OUT of no bytes */
        /* a control transfer: not penlink's */
        x.len = 8;
        pl_capture_usbmon_hdr(d, &x);
        d[9] = 2;
        p.len = hdr + 8;
        assert_int_equal(pl_capture_wire(&p, &w), 0);
        /* shorter than the header */
        p.len = hdr - 1;
        assert_int_equal(pl_capture_wire(&p, &w), PL_ERR_CAPTURE);
    }
    /* time, status and lengths of the header */
    x.status = -121;
    x.len = 77;
    pl_capture_usbmon_hdr(d, &x);
    uint64_t u64;
    uint32_t u32;
    memcpy(&u64, d, 8);
    assert_true(u64 == x.urb_id);
    memcpy(&u64, d + 16, 8);
    assert_true(u64 == 1764000000);
    memcpy(&u32, d + 24, 4);
    assert_int_equal(u32, 654321);
    memcpy(&u32, d + 28, 4);
    assert_int_equal((int32_t)u32, -121);
    memcpy(&u32, d + 32, 4);
    assert_int_equal(u32, 77);
    memcpy(&u32, d + 36, 4);
    assert_int_equal(u32, 77);

    /* a big-endian capture: the packet says so, the header is read swapped */
    memset(d, 0, sizeof d);
    d[8] = 'S';
    d[9] = 3;
    d[10] = 0x02;
    d[11] = 4;
    d[12] = 0x01; /* bus 0x0102 big-endian */
    d[13] = 0x02;
    d[39] = 3; /* 3 bytes captured, big-endian */
    pl_capture_packet p = pkt(PL_LINKTYPE_USB_MMAPPED, d, PL_USBMON_HDR_SIZE + 8);
    p.swapped = 1;
    assert_int_equal(pl_capture_wire(&p, &w), 1);
    assert_int_equal(w.bus, 0x0102);
    assert_int_equal(w.len, 3);
}

/* A USBPcap packet header (little-endian, 27 bytes) and @p n data bytes. */
static uint32_t usbpcap(uint8_t *d, uint16_t hlen, uint32_t status, uint8_t info, uint16_t bus,
                        uint16_t dev, uint8_t ep, uint8_t xfer, uint32_t dlen, uint32_t n)
{
    memset(d, 0, hlen + n);
    d[0] = (uint8_t)hlen;
    d[1] = (uint8_t)(hlen >> 8);
    memcpy(d + 10, &status, 4);
    d[16] = info;
    memcpy(d + 17, &bus, 2);
    memcpy(d + 19, &dev, 2);
    d[21] = ep;
    d[22] = xfer;
    memcpy(d + 23, &dlen, 4);
    for (uint32_t i = 0; i < n; i++)
        d[hlen + i] = (uint8_t)(0x30 + i);
    return hlen + n;
}

static void test_wire_usbpcap(void **state)
{
    (void)state;
    uint8_t d[64];
    pl_wire w;
    /* OUT submission: the request */
    uint32_t len = usbpcap(d, 27, 0, 0, 2, 7, 0x01, 3, 6, 6);
    pl_capture_packet p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 1);
    assert_int_equal(w.dir, PL_DIR_TO_PEN);
    assert_int_equal(w.bus, 2);
    assert_int_equal(w.device, 7);
    assert_int_equal(w.stream, 2u << 16 | 7u << 8 | 1u);
    assert_int_equal(w.len, 6);
    assert_true(w.data == d + 27);
    /* a longer header than the minimum is skipped whole */
    len = usbpcap(d, 30, 0, 0, 2, 7, 0x01, 3, 6, 6);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 1);
    assert_true(w.data == d + 30);
    /* fewer bytes captured than the transfer had */
    len = usbpcap(d, 27, 0, 0, 2, 7, 0x01, 3, 10, 4);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 1);
    assert_int_equal(w.len, 4);
    /* OUT completion: nothing new */
    len = usbpcap(d, 27, 0, 1, 2, 7, 0x01, 3, 6, 6);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 0);
    /* IN completion: the reply, unless it failed */
    len = usbpcap(d, 27, 0, 1, 2, 7, 0x81, 3, 6, 6);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 1);
    assert_int_equal(w.dir, PL_DIR_TO_HOST);
    len = usbpcap(d, 27, 0xC0000001u, 1, 2, 7, 0x81, 3, 6, 6);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 0);
    /* IN submission */
    len = usbpcap(d, 27, 0, 0, 2, 7, 0x81, 3, 0, 0);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 0);
    /* an OUT of no bytes */
    len = usbpcap(d, 27, 0, 0, 2, 7, 0x01, 3, 0, 0);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 0);
    /* a control transfer */
    len = usbpcap(d, 27, 0, 0, 2, 7, 0x01, 2, 6, 6);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), 0);
    /* malformed: short, a header length below the minimum or past the packet */
    len = usbpcap(d, 27, 0, 0, 2, 7, 0x01, 3, 6, 6);
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, 26);
    assert_int_equal(pl_capture_wire(&p, &w), PL_ERR_CAPTURE);
    len = usbpcap(d, 27, 0, 0, 2, 7, 0x01, 3, 6, 6);
    d[0] = 26;
    p = pkt(PL_LINKTYPE_USB_USBPCAP, d, len);
    assert_int_equal(pl_capture_wire(&p, &w), PL_ERR_CAPTURE);
    d[0] = (uint8_t)(len + 1);
    assert_int_equal(pl_capture_wire(&p, &w), PL_ERR_CAPTURE);
    d[0] = (uint8_t)len; /* the header is all there is */
    assert_int_equal(pl_capture_wire(&p, &w), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writers_read_back),
        cmocka_unit_test(test_sniff),
        cmocka_unit_test(test_pcapng_both_orders),
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_block_bound),
        cmocka_unit_test(test_pcapng_malformed),
        cmocka_unit_test(test_pcap),
        cmocka_unit_test(test_wire_penlink),
        cmocka_unit_test(test_wire_usbmon),
        cmocka_unit_test(test_wire_usbpcap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
