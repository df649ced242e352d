/*
 * Chunk codec. A RecordBatch is written by hand, column by column, straight
 * into deflate: the pen has no room for the arrays protobuf-c would want, and
 * a packed column only needs its byte length up front, which a first pass
 * over the records gives. The bytes are ordinary protobuf (penlink.proto), so
 * any protobuf library reads them; tests check that protobuf-c does.
 *
 * The decoder parses the inflated batch itself for the same reason in
 * reverse: no per-column arrays, one pass that walks all columns at once.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pl/chunk.h"
#include "pl/varint.h"

#define COLS (2 + PL_FIELD_COUNT) /* kind, (time), then one per field bit */
#define FIELD_FIRST_SEQ 1
#define FIELD_COUNT 2
#define FIELD_LAYOUT 3
#define FIELD_KIND 4      /* column c is proto field 4 + c; c == 1 is unused */
#define FIELD_TIME_BASE 5 /* field bit b is proto field 6 + b */
#define FIELD_TIME_WIDTH 17
#define FIELD_TIME_PLANES 18
#define MAX_LAYOUT 64 /* distinct kinds in one batch */

/* ---- encoder ---------------------------------------------------------- */

static voidpf arena_zalloc(voidpf opaque, uInt items, uInt size)
{
    pl_chunk_enc *e = opaque;
    size_t n = (size_t)items * size;
    n = (n + 15u) & ~(size_t)15u;
    if (n > e->arena_cap - e->arena_used)
        return Z_NULL;
    void *p = e->arena + e->arena_used;
    e->arena_used += n;
    if (e->arena_used > e->arena_peak)
        e->arena_peak = e->arena_used;
    return p;
}

static void arena_zfree(voidpf opaque, voidpf p)
{
    (void)opaque; /* the arena is released as a whole */
    (void)p;
}

pl_status pl_chunk_enc_init(pl_chunk_enc *e, void *arena, size_t arena_cap)
{
    if (!e || !arena || arena_cap < sizeof(z_stream) + 64)
        return PL_ERR_INVALID_ARG;
    memset(e, 0, sizeof *e);
    /* Align the arena start; z_stream itself lives at its front. */
    uintptr_t a = (uintptr_t)arena, al = (a + 15u) & ~(uintptr_t)15u;
    e->arena = (uint8_t *)al;
    e->arena_cap = arena_cap - (size_t)(al - a);
    z_stream *zs = (z_stream *)e->arena;
    e->arena_used = e->arena_peak = (sizeof(z_stream) + 15u) & ~(size_t)15u;
    memset(zs, 0, sizeof *zs);
    zs->zalloc = arena_zalloc;
    zs->zfree = arena_zfree;
    zs->opaque = e;
    if (deflateInit2(zs, PL_CHUNK_LEVEL, Z_DEFLATED, PL_CHUNK_WINDOW_BITS, PL_CHUNK_MEM_LEVEL,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return PL_ERR_ZLIB;
    e->zs = zs;
    e->ready = 1;
    return PL_OK;
}

void pl_chunk_enc_fini(pl_chunk_enc *e)
{
    if (e && e->ready) {
        deflateEnd(e->zs);
        e->ready = 0;
    }
}

size_t pl_chunk_enc_peak(const pl_chunk_enc *e)
{
    return e->arena_peak;
}

int pl_record_array_source(void *ctx, uint32_t i, pl_record *out)
{
    *out = ((const pl_record *)ctx)[i];
    return 0;
}

typedef struct writer {
    z_stream *zs;
    size_t n;
    pl_status st;
    uint8_t buf[128];
} writer;

static void w_flush(writer *w, int mode)
{
    w->zs->next_in = w->buf;
    w->zs->avail_in = (uInt)w->n;
    for (;;) {
        int r = deflate(w->zs, mode);
        if (mode == Z_FINISH && r == Z_STREAM_END)
            break;
        if (r != Z_OK && r != Z_BUF_ERROR) {
            w->st = PL_ERR_ZLIB;
            break;
        }
        if (w->zs->avail_in == 0 && mode != Z_FINISH)
            break;
        if (w->zs->avail_out == 0) {
            w->st = PL_ERR_NO_SPACE;
            break;
        }
    }
    w->n = 0;
}

static inline void w_varint(writer *w, uint64_t v)
{
    if (w->n + PL_VARINT_MAX > sizeof w->buf)
        w_flush(w, Z_NO_FLUSH);
    w->n += pl_varint_put(w->buf + w->n, v);
}

typedef struct layout {
    uint32_t n;
    uint32_t kind[MAX_LAYOUT];
    uint32_t mask[MAX_LAYOUT];
} layout;

static int layout_find(const layout *l, uint32_t kind)
{
    for (uint32_t i = 0; i < l->n; i++)
        if (l->kind[i] == kind)
            return (int)i;
    return -1;
}

/* The mask a record is written with: the kind's own for kinds we know. */
static uint32_t record_mask(const pl_record *r)
{
    uint32_t m = pl_record_kind_fields(r->kind);
    return m ? m : (r->kind > PL_REC_KIND_MAX ? r->fields & PL_F_ALL : 0);
}

/* What pass 1 learns of a chunk's records: its layout and each column's size. */
typedef struct measure {
    uint64_t colbytes[COLS];
    layout lay;
    uint64_t first_seq, time_base;
    uint32_t width; /* bytes of the widest time delta */
} measure;

/* Pass 1: validate, build the layout, size every column. */
static pl_status enc_measure(measure *ms, pl_record_source src, void *ctx, uint32_t count)
{
    uint64_t prev[COLS] = { 0 };
    pl_record r;
    layout *lay = &ms->lay;
    ms->width = 1;
    for (uint32_t i = 0; i < count; i++) {
        if (src(ctx, i, &r) != 0)
            return PL_ERR_INVALID_ARG;
        if (i == 0)
            ms->first_seq = r.seq;
        if (r.seq != ms->first_seq + i || r.seq < ms->first_seq)
            return PL_ERR_INVALID_ARG;
        uint32_t m = record_mask(&r);
        int li = layout_find(lay, r.kind);
        if (li < 0) {
            if (lay->n == MAX_LAYOUT)
                return PL_ERR_INVALID_ARG;
            lay->kind[lay->n] = r.kind;
            lay->mask[lay->n++] = m;
        } else if (lay->mask[li] != m) {
            return PL_ERR_INVALID_ARG; /* one kind, two layouts */
        }
        ms->colbytes[0] += pl_varint_len(r.kind);
        if (i == 0)
            ms->time_base = prev[1] = (uint64_t)r.time_ms;
        uint64_t dz = pl_zigzag((int64_t)((uint64_t)r.time_ms - prev[1]));
        prev[1] = (uint64_t)r.time_ms;
        while (ms->width < 8 && (dz >> (8 * ms->width)) != 0)
            ms->width++;
        for (uint32_t b = 0; b < PL_FIELD_COUNT; b++) {
            if (!(m & (1u << b)))
                continue;
            uint64_t v = pl_record_get(&r, 1u << b);
            ms->colbytes[2 + b] += pl_varint_len(pl_zigzag((int64_t)(v - prev[2 + b])));
            prev[2 + b] = v;
        }
    }
    return PL_OK;
}

/* The bytes of the layout field's value. */
static uint64_t enc_layout_bytes(const layout *lay)
{
    uint64_t laybytes = 0;
    for (uint32_t i = 0; i < lay->n; i++)
        laybytes += pl_varint_len(lay->kind[i]) + pl_varint_len(lay->mask[i]);
    return laybytes;
}

/* The size of the raw batch the measured records make. */
static uint64_t enc_raw_size(const measure *ms, uint32_t count, uint64_t laybytes)
{
    uint64_t raw = 1 + pl_varint_len(ms->first_seq) + 1 + pl_varint_len(count);
    if (laybytes)
        raw += 1 + pl_varint_len(laybytes) + laybytes;
    for (int c = 0; c < COLS; c++)
        if (ms->colbytes[c])
            raw += pl_varint_len(((uint64_t)(FIELD_KIND + c) << 3) | 2) +
                   pl_varint_len(ms->colbytes[c]) + ms->colbytes[c];
    uint64_t planes = (uint64_t)count * ms->width;
    raw += 1 + pl_varint_len(pl_zigzag((int64_t)ms->time_base)) + 2 + 1 + 2 +
           pl_varint_len(planes) + planes;
    return raw;
}

/* Pass 2: one column at a time, in field-number order. */
static pl_status enc_columns(writer *w, const measure *ms, pl_record_source src, void *ctx,
                             uint32_t count)
{
    pl_record r;
    for (int c = 0; c < COLS && w->st == PL_OK; c++) {
        if (c == 1) {
            w_varint(w, (FIELD_TIME_BASE << 3) | 0);
            w_varint(w, pl_zigzag((int64_t)ms->time_base));
            continue;
        }
        if (!ms->colbytes[c])
            continue;
        w_varint(w, ((uint64_t)(FIELD_KIND + c) << 3) | 2);
        w_varint(w, ms->colbytes[c]);
        uint64_t p = 0;
        for (uint32_t i = 0; i < count && w->st == PL_OK; i++) {
            if (src(ctx, i, &r) != 0)
                return PL_ERR_INVALID_ARG;
            if (c == 0) {
                w_varint(w, r.kind);
            } else {
                uint32_t bit = 1u << (c - 2);
                if (!(record_mask(&r) & bit))
                    continue;
                uint64_t v = pl_record_get(&r, bit);
                w_varint(w, pl_zigzag((int64_t)(v - p)));
                p = v;
            }
        }
    }
    return PL_OK;
}

/* The time deltas, byte plane by byte plane. */
static pl_status enc_time_planes(writer *w, const measure *ms, pl_record_source src, void *ctx,
                                 uint32_t count)
{
    pl_record r;
    w_varint(w, (FIELD_TIME_WIDTH << 3) | 0);
    w_varint(w, ms->width);
    w_varint(w, (FIELD_TIME_PLANES << 3) | 2);
    w_varint(w, (uint64_t)count * ms->width);
    for (uint32_t j = 0; j < ms->width && w->st == PL_OK; j++) {
        uint64_t p = ms->time_base;
        for (uint32_t i = 0; i < count && w->st == PL_OK; i++) {
            if (src(ctx, i, &r) != 0)
                return PL_ERR_INVALID_ARG;
            uint64_t dz = pl_zigzag((int64_t)((uint64_t)r.time_ms - p));
            p = (uint64_t)r.time_ms;
            if (w->n == sizeof w->buf)
                w_flush(w, Z_NO_FLUSH);
            w->buf[w->n++] = (uint8_t)(dz >> (8 * j));
        }
    }
    return PL_OK;
}

pl_status pl_chunk_encode(pl_chunk_enc *e, pl_record_source src, void *ctx, uint32_t count,
                          uint8_t *out, size_t out_cap, pl_chunk_info *info)
{
    measure ms;
    memset(&ms, 0, sizeof ms);

    if (!e || !e->ready || !src || !out || !info || count == 0 || count > PL_CHUNK_MAX_RECORDS)
        return PL_ERR_INVALID_ARG;
    pl_status st = enc_measure(&ms, src, ctx, count);
    if (st != PL_OK)
        return st;
    uint64_t laybytes = enc_layout_bytes(&ms.lay);
    uint64_t raw = enc_raw_size(&ms, count, laybytes);
    if (raw > PL_CHUNK_MAX_RAW)
        return PL_ERR_INVALID_ARG;

    z_stream *zs = e->zs;
    if (deflateReset(zs) != Z_OK)
        return PL_ERR_ZLIB;
    zs->next_out = out;
    zs->avail_out = (uInt)(out_cap > UINT32_MAX ? UINT32_MAX : out_cap);

    writer w = { .zs = zs, .n = 0, .st = PL_OK };
    w_varint(&w, (FIELD_FIRST_SEQ << 3) | 0);
    w_varint(&w, ms.first_seq);
    w_varint(&w, (FIELD_COUNT << 3) | 0);
    w_varint(&w, count);
    if (laybytes) {
        w_varint(&w, (FIELD_LAYOUT << 3) | 2);
        w_varint(&w, laybytes);
        for (uint32_t i = 0; i < ms.lay.n; i++) {
            w_varint(&w, ms.lay.kind[i]);
            w_varint(&w, ms.lay.mask[i]);
        }
    }
    if (enc_columns(&w, &ms, src, ctx, count) != PL_OK ||
        enc_time_planes(&w, &ms, src, ctx, count) != PL_OK)
        return PL_ERR_INVALID_ARG;
    if (w.st == PL_OK)
        w_flush(&w, Z_FINISH);
    if (w.st != PL_OK)
        return w.st;
    if (zs->total_in != raw)
        return PL_ERR_INVALID_ARG; /* the source changed between passes */
    info->first_seq = ms.first_seq;
    info->record_count = count;
    info->raw_size = (uint32_t)raw;
    info->data_size = (uint32_t)zs->total_out;
    return PL_OK;
}

/* ---- decoder ---------------------------------------------------------- */

pl_status pl_chunk_dec_init(pl_chunk_dec *d, uint32_t max_records, size_t raw_cap)
{
    if (!d || max_records == 0 || max_records > PL_CHUNK_MAX_RECORDS || raw_cap == 0 ||
        raw_cap > PL_CHUNK_MAX_RAW)
        return PL_ERR_INVALID_ARG;
    memset(d, 0, sizeof *d);
    z_stream *zs = calloc(1, sizeof *zs);
    d->raw = malloc(raw_cap);
    if (!zs || !d->raw || inflateInit2(zs, 15) != Z_OK) {
        free(zs);
        free(d->raw);
        d->raw = NULL;
        return PL_ERR_ZLIB;
    }
    d->zs = zs;
    d->raw_cap = raw_cap;
    d->max_records = max_records;
    return PL_OK;
}

void pl_chunk_dec_fini(pl_chunk_dec *d)
{
    if (!d || !d->zs)
        return;
    inflateEnd(d->zs);
    free(d->zs);
    free(d->raw);
    memset(d, 0, sizeof *d);
}

size_t pl_chunk_dec_consumed(const pl_chunk_dec *d)
{
    return d->consumed;
}

/* Where each field bit lives in pl_record, for a store without a switch. */
static const struct {
    uint16_t off;
    uint8_t wide; /* 64-bit field */
} slot[PL_FIELD_COUNT] = {
    { offsetof(pl_record, depth_um), 0 },        { offsetof(pl_record, speed_sps), 0 },
    { offsetof(pl_record, duration_ms), 0 },     { offsetof(pl_record, cartridge_serial), 1 },
    { offsetof(pl_record, cartridge_uses), 0 },  { offsetof(pl_record, lifetime_cartridges), 0 },
    { offsetof(pl_record, strokes), 1 },         { offsetof(pl_record, fault_code), 0 },
    { offsetof(pl_record, config_revision), 0 }, { offsetof(pl_record, clock_delta_ms), 1 },
    { offsetof(pl_record, dropped), 1 },
};

typedef struct cursor {
    const uint8_t *p, *end;
    uint64_t prev;
} cursor;

/* A batch's fields as read from its top level: the columns still packed. */
typedef struct batch {
    cursor col[COLS];
    int seen[COLS];
    const uint8_t *lay_p, *lay_end;
    uint64_t first_seq, count, time_base, width;
    const uint8_t *planes;
    uint64_t planes_len;
    int have_count;
} batch;

/* One top-level field at @p *pp into @p b: 0, or -1 when it is malformed. */
static int batch_field(batch *b, const uint8_t **pp, const uint8_t *end)
{
    const uint8_t *p = *pp;
    uint64_t tag, v;
    if (pl_varint_get(&p, end, &tag) != 0 || tag > UINT32_MAX || (tag >> 3) == 0)
        return -1;
    uint32_t field = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
    if (field == FIELD_FIRST_SEQ || field == FIELD_COUNT || field == FIELD_TIME_BASE ||
        field == FIELD_TIME_WIDTH) {
        if (wt != 0 || pl_varint_get(&p, end, &v) != 0)
            return -1;
        if (field == FIELD_FIRST_SEQ) {
            b->first_seq = v;
        } else if (field == FIELD_COUNT) {
            b->count = v;
            b->have_count = 1;
        } else if (field == FIELD_TIME_BASE) {
            b->time_base = (uint64_t)pl_unzigzag(v);
        } else {
            b->width = v;
        }
        *pp = p;
        return 0;
    }
    if (wt == 0) {
        if (pl_varint_get(&p, end, &v) != 0)
            return -1;
    } else if (wt == 1 || wt == 5) {
        size_t k = wt == 1 ? 8 : 4;
        if ((size_t)(end - p) < k)
            return -1;
        p += k;
    } else if (wt == 2) {
        if (pl_varint_get(&p, end, &v) != 0 || v > (uint64_t)(end - p))
            return -1;
        if (field == FIELD_LAYOUT) {
            if (b->lay_p)
                return -1; /* a column appears once */
            b->lay_p = p;
            b->lay_end = p + v;
        } else if (field == FIELD_TIME_PLANES) {
            if (b->planes)
                return -1;
            b->planes = p;
            b->planes_len = v;
        } else if (field >= FIELD_KIND && field < FIELD_KIND + COLS && field != FIELD_TIME_BASE) {
            int c = (int)(field - FIELD_KIND);
            if (b->seen[c])
                return -1;
            b->seen[c] = 1;
            b->col[c].p = p;
            b->col[c].end = p + v;
        }
        p += v;
    } else {
        return -1; /* groups are not used */
    }
    if (((field >= FIELD_LAYOUT && field < FIELD_KIND + COLS) || field == FIELD_TIME_PLANES) &&
        wt != 2)
        return -1; /* columns are always packed */
    *pp = p;
    return 0;
}

/* The layout's kinds and masks into @p lay and, for the kinds this code
 * knows, @p direct (UINT32_MAX: not in this batch): 0, or -1. */
static int batch_layout(batch *b, layout *lay, uint32_t direct[PL_REC_KIND_MAX + 1])
{
    for (int k = 0; k <= PL_REC_KIND_MAX; k++)
        direct[k] = UINT32_MAX; /* not in this batch */
    while (b->lay_p && b->lay_p < b->lay_end) {
        uint64_t kind, mask;
        if (pl_varint_get(&b->lay_p, b->lay_end, &kind) != 0 ||
            pl_varint_get(&b->lay_p, b->lay_end, &mask) != 0 || kind > UINT32_MAX ||
            mask > UINT32_MAX || lay->n == MAX_LAYOUT || layout_find(lay, (uint32_t)kind) >= 0)
            return -1;
        lay->kind[lay->n] = (uint32_t)kind;
        lay->mask[lay->n++] = (uint32_t)mask & PL_F_ALL; /* columns of newer fields are skipped */
        if (kind <= PL_REC_KIND_MAX)
            direct[kind] = (uint32_t)mask & PL_F_ALL;
    }
    return 0;
}

/* Record @p i of the batch, from its columns, into @p r. */
static pl_status batch_record(batch *b, const layout *lay, const uint32_t *direct, uint64_t i,
                              pl_record *r)
{
    uint64_t kind, t, v;
    memset(r, 0, sizeof *r);
    const uint8_t *kind_at = b->col[0].p;
    if (pl_varint_get(&b->col[0].p, b->col[0].end, &kind) != 0 || kind > UINT32_MAX) {
        /* the column ran out: too few kinds; else a value that is not a kind */
        return kind_at >= b->col[0].end ? PL_ERR_CHUNK_COUNT : PL_ERR_CHUNK_FORMAT;
    }
    uint32_t m;
    if (kind <= PL_REC_KIND_MAX) {
        m = direct[kind];
    } else {
        int li = layout_find(lay, (uint32_t)kind);
        m = li < 0 ? UINT32_MAX : lay->mask[li];
    }
    if (m == UINT32_MAX)
        return PL_ERR_CHUNK_FORMAT; /* a kind the layout does not describe */
    t = 0;
    for (uint64_t j = 0; j < b->width; j++)
        t |= (uint64_t)b->planes[j * b->count + i] << (8 * j);
    b->time_base += (uint64_t)pl_unzigzag(t);
    r->seq = b->first_seq + i;
    r->time_ms = (int64_t)b->time_base;
    r->kind = (uint32_t)kind;
    r->fields = m;
    for (uint32_t mm = m; mm; mm &= mm - 1) {
        int bit = pl_ctz32(mm);
        cursor *c = &b->col[2 + bit];
        if (pl_varint_get(&c->p, c->end, &v) != 0)
            return PL_ERR_CHUNK_FORMAT;
        c->prev += (uint64_t)pl_unzigzag(v);
        uint8_t *dst = (uint8_t *)r + slot[bit].off;
        if (slot[bit].wide) {
            memcpy(dst, &c->prev, 8);
        } else if (c->prev <= UINT32_MAX) {
            uint32_t x = (uint32_t)c->prev;
            memcpy(dst, &x, 4);
        } else {
            return PL_ERR_CHUNK_RANGE;
        }
    }
    return PL_OK;
}

pl_status pl_batch_parse(const uint8_t *raw, size_t len, uint32_t max_records, pl_record *out,
                         uint32_t out_cap, uint32_t *n, uint64_t *first_seq_out, size_t *fail_at)
{
    const uint8_t *p = raw, *end = raw + len;
    batch b;
    pl_status st = PL_ERR_CHUNK_FORMAT;

    *n = 0;
    memset(&b, 0, sizeof b);
    while (p < end) {
        const uint8_t *field_at = p;
        if (batch_field(&b, &p, end) != 0) {
            if (fail_at)
                *fail_at = (size_t)(field_at - raw);
            return PL_ERR_CHUNK_FORMAT;
        }
    }

    if (!b.have_count || b.count > max_records || b.count > out_cap)
        return PL_ERR_CHUNK_COUNT;
    if (b.count && b.first_seq + (b.count - 1) < b.first_seq)
        return PL_ERR_CHUNK_SEQ;
    if (b.count && (b.width < 1 || b.width > 8 || !b.planes || b.planes_len != b.count * b.width))
        goto out;

    layout lay = { 0 };
    uint32_t direct[PL_REC_KIND_MAX + 1];
    if (batch_layout(&b, &lay, direct) != 0)
        goto out;
    for (uint64_t i = 0; i < b.count; i++) {
        st = batch_record(&b, &lay, direct, i, &out[i]);
        if (st != PL_OK)
            goto out;
    }
    for (int c = 0; c < COLS; c++)
        if (b.col[c].p != b.col[c].end) {
            st = c == 0 ? PL_ERR_CHUNK_COUNT : PL_ERR_CHUNK_FORMAT;
            goto out;
        }
    *n = (uint32_t)b.count;
    if (first_seq_out)
        *first_seq_out = b.first_seq;
    return PL_OK;
out:
    if (fail_at)
        *fail_at = len;
    return st;
}

pl_status pl_chunk_decode(pl_chunk_dec *d, const uint8_t *data, size_t len,
                          const pl_chunk_expect *expect, pl_record *out, uint32_t out_cap,
                          uint32_t *n)
{
    z_stream *zs = d->zs;
    uint64_t first_seq = 0;

    *n = 0;
    d->consumed = 0;
    d->fail_at = 0;
    if (expect && expect->raw_size > d->raw_cap)
        return PL_ERR_CHUNK_TOO_LARGE;
    if (expect && expect->record_count > d->max_records)
        return PL_ERR_CHUNK_COUNT;
    if (inflateReset(zs) != Z_OK)
        return PL_ERR_ZLIB;
    zs->next_in = (Bytef *)data;
    zs->avail_in = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
    zs->next_out = d->raw;
    zs->avail_out = (uInt)d->raw_cap;
    int r = inflate(zs, Z_FINISH);
    d->consumed = (size_t)(zs->next_in - data);
    if (r != Z_STREAM_END) {
        if (r == Z_BUF_ERROR && zs->avail_out == 0)
            return PL_ERR_CHUNK_TOO_LARGE; /* would inflate past the limit */
        if (r == Z_BUF_ERROR && zs->avail_in == 0)
            return PL_NEED_MORE; /* the stream is cut short */
        return PL_ERR_CHUNK_ZLIB;
    }
    size_t raw = zs->total_out;
    if (expect && expect->raw_size && raw != expect->raw_size)
        return PL_ERR_CHUNK_SIZE;
    pl_status st =
        pl_batch_parse(d->raw, raw, d->max_records, out, out_cap, n, &first_seq, &d->fail_at);
    if (st != PL_OK)
        return st;
    if (expect && expect->record_count && *n != expect->record_count) {
        *n = 0;
        return PL_ERR_CHUNK_COUNT;
    }
    if (expect && expect->have_first_seq && first_seq != expect->first_seq) {
        *n = 0;
        return PL_ERR_CHUNK_SEQ;
    }
    return PL_OK;
}
