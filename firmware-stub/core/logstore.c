/*
 * The flash log store.
 *
 * Three areas, all in NOR flash (see firmware-stub/README.md for the byte
 * layouts and the power-loss argument):
 *
 *  - the staging journal: fixed 40-byte slots, one record each with its own
 *    CRC, written as events happen. It holds one batch plus a few spare slots
 *    and is erased as a whole once every record in it sits in a chunk;
 *  - the ring: compressed chunks (32-byte header with the seq range and two
 *    CRCs, then the zlib data), appended sector by sector. A chunk never
 *    spans sectors, so erasing a sector drops whole chunks. The newest chunk
 *    (highest first_seq) marks the write position;
 *  - the metadata journal: two sectors of 64-byte entries, each a complete
 *    snapshot (acknowledged point, dropped point, last overflow) with a
 *    generation number; the valid entry with the highest generation wins.
 *
 * Commit points: a record is committed when its slot is programmed; a chunk
 * when its data is programmed (header first, so a torn chunk has a known
 * length and a failing data CRC); an acknowledgement or a drop when its
 * metadata entry is programmed. Records whose content is decided before
 * their slot is written (LOG_OVERFLOW, CONFIG_CHANGED) get their seq
 * reserved in that other commit; boot writes any whose slot is missing.
 */
#include <string.h>

#include "logstore.h"
#include "pen_util.h"
#include "pl/auth.h"

#define CHUNK_MAGIC 0x32434C50u /* "PLC2": chunks with a chain link (v1 "PLCH" had none) */
#define META_MAGIC 0x544D4C50u  /* "PLMT" */
#define MIN_FILL 64u            /* data bytes below which a sector's tail stays unused */
#define BLOCK 64u               /* bytes read at a time when checking or summing flash */
#define SLOT_PAYLOAD 16u        /* field bytes in a slot */

enum { ITEM_END = 0, ITEM_CHUNK = 1, ITEM_JUNK = -1 };

static uint32_t ls_align8(uint32_t v)
{
    return (v + 7u) & ~7u;
}

static uint64_t ls_max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* ---- flash access ------------------------------------------------------ */

static pen_status ls_flash_read(pen_log *l, uint32_t addr, void *buf, uint32_t len)
{
    return l->hal->flash_read(l->hal->ctx, addr, buf, len) == 0 ? PEN_OK : PEN_ERR_FLASH;
}

static pen_status ls_flash_program(pen_log *l, uint32_t addr, const void *buf, uint32_t len)
{
    return l->hal->flash_program(l->hal->ctx, addr, buf, len) == 0 ? PEN_OK : PEN_ERR_FLASH;
}

static pen_status ls_region_erased(pen_log *l, uint32_t addr, uint32_t len, bool *erased)
{
    uint8_t b[BLOCK];
    *erased = true;
    while (len > 0) {
        uint32_t n = len < BLOCK ? len : BLOCK;
        pen_status st = ls_flash_read(l, addr, b, n);
        if (st != PEN_OK)
            return st;
        if (!pen_is_erased(b, n)) {
            *erased = false;
            return PEN_OK;
        }
        addr += n;
        len -= n;
    }
    return PEN_OK;
}

/* Erases @p sector unless it already reads as erased (saves wear and time). */
static pen_status ls_erase_if_needed(pen_log *l, uint32_t sector, uint64_t *counter)
{
    bool erased;
    pen_status st = ls_region_erased(l, sector * l->ssize, l->ssize, &erased);
    if (st != PEN_OK || erased)
        return st;
    if (l->hal->flash_erase(l->hal->ctx, sector) != 0)
        return PEN_ERR_FLASH;
    (*counter)++;
    return PEN_OK;
}

static pen_status ls_region_crc(pen_log *l, uint32_t addr, uint32_t len, uint32_t *crc)
{
    uint8_t b[BLOCK];
    uint32_t c = 0;
    while (len > 0) {
        uint32_t n = len < BLOCK ? len : BLOCK;
        pen_status st = ls_flash_read(l, addr, b, n);
        if (st != PEN_OK)
            return st;
        c = pen_crc32(c, b, n);
        addr += n;
        len -= n;
    }
    *crc = c;
    return PEN_OK;
}

/* ---- staged record slots ----------------------------------------------- */

static uint32_t field_width(uint32_t bit)
{
    return bit == PL_F_CARTRIDGE_SERIAL || bit == PL_F_STROKES || bit == PL_F_CLOCK_DELTA_MS ||
                   bit == PL_F_DROPPED
               ? 8u
               : 4u;
}

/*
 * Slot: seq u64 | time_ms i64 | kind u16 | 0 u16 | fields (16 bytes: the
 * kind's fields in bit order, 4 or 8 bytes each) | crc32 of bytes 0..35.
 */
static int slot_pack(uint8_t s[PEN_SLOT_SIZE], const pl_record *r)
{
    uint32_t off = 20;
    if (r->kind == 0 || r->kind > PL_REC_KIND_MAX)
        return -1;
    memset(s, 0, PEN_SLOT_SIZE);
    pen_put64(s, r->seq);
    pen_put64(s + 8, (uint64_t)r->time_ms);
    pen_put16(s + 16, (uint16_t)r->kind);
    for (uint32_t m = pl_record_kind_fields(r->kind); m; m &= m - 1) {
        uint32_t bit = m & (~m + 1u);
        uint64_t v = pl_record_get(r, bit);
        if (off + field_width(bit) > 20 + SLOT_PAYLOAD)
            return -1;
        if (field_width(bit) == 8)
            pen_put64(s + off, v);
        else
            pen_put32(s + off, (uint32_t)v);
        off += field_width(bit);
    }
    pen_put32(s + 36, pen_crc32(0, s, 36));
    return 0;
}

/* 1: a valid record; 0: erased; -1: torn or foreign. */
static int slot_unpack(const uint8_t s[PEN_SLOT_SIZE], pl_record *r)
{
    uint32_t off = 20;
    if (pen_is_erased(s, PEN_SLOT_SIZE))
        return 0;
    if (pen_get32(s + 36) != pen_crc32(0, s, 36))
        return -1;
    uint32_t kind = pen_get16(s + 16);
    if (kind == 0 || kind > PL_REC_KIND_MAX || pen_get16(s + 18) != 0)
        return -1;
    memset(r, 0, sizeof *r);
    r->seq = pen_get64(s);
    r->time_ms = (int64_t)pen_get64(s + 8);
    r->kind = kind;
    r->fields = pl_record_kind_fields(kind);
    for (uint32_t m = r->fields; m; m &= m - 1) {
        uint32_t bit = m & (~m + 1u);
        if (off + field_width(bit) > 20 + SLOT_PAYLOAD)
            return -1;
        uint64_t v = field_width(bit) == 8 ? pen_get64(s + off) : pen_get32(s + off);
        pl_record_set(r, bit, v);
        off += field_width(bit);
    }
    return 1;
}

static uint32_t slot_addr(const pen_log *l, uint32_t slot)
{
    return (l->stage_sector + slot / l->slots_per_sector) * l->ssize +
           (slot % l->slots_per_sector) * PEN_SLOT_SIZE;
}

static pen_status read_slot(pen_log *l, uint32_t slot, pl_record *r, int *kind)
{
    uint8_t s[PEN_SLOT_SIZE];
    pen_status st = ls_flash_read(l, slot_addr(l, slot), s, PEN_SLOT_SIZE);
    if (st == PEN_OK)
        *kind = slot_unpack(s, r);
    return st;
}

/* Commits @p r (whose seq is already decided) to the next staging slot. */
static pen_status ls_write_slot(pen_log *l, const pl_record *r)
{
    uint8_t s[PEN_SLOT_SIZE];
    bool live = l->stage_lo < l->stage_end;

    if (l->stage_pos >= l->stage_slots || (live && r->seq != l->stage_end) ||
        (!live && r->seq < l->stage_end) || slot_pack(s, r) != 0)
        return PEN_ERR_INTERNAL;
    pen_status st = ls_flash_program(l, slot_addr(l, l->stage_pos), s, PEN_SLOT_SIZE);
    if (st != PEN_OK)
        return st;
    if (!live) {
        l->stage_first_slot = l->stage_pos;
        l->stage_lo = r->seq;
    }
    l->stage_pos++;
    l->stage_end = r->seq + 1;
    if (r->kind == PL_REC_CARTRIDGE_INSERTED && r->lifetime_cartridges > l->lifetime)
        l->lifetime = r->lifetime_cartridges;
    l->stats.records++;
    if (l->hal->record_logged)
        l->hal->record_logged(l->hal->ctx, r);
    return PEN_OK;
}

/* Reads staged records by seq for the chunk encoder. Every encoder pass walks
 * the records in order, so a cursor makes each pass one sweep over the slots. */
typedef struct stage_src {
    pen_log *l;
    uint64_t first;
    uint32_t slot;       /* next slot to look at */
    uint32_t first_slot; /* slot holding @first, once found */
    bool first_known;
    pen_status err;
} stage_src;

static void ls_stage_src_init(stage_src *s, pen_log *l, uint64_t first)
{
    memset(s, 0, sizeof *s);
    s->l = l;
    s->first = first;
    s->slot = l->stage_first_slot;
}

static int ls_stage_source(void *ctx, uint32_t i, pl_record *out)
{
    stage_src *s = ctx;
    uint64_t want = s->first + i;
    if (i == 0)
        s->slot = s->first_known ? s->first_slot : s->l->stage_first_slot;
    while (s->slot < s->l->stage_pos) {
        int k;
        uint32_t at = s->slot++;
        pen_status st = read_slot(s->l, at, out, &k);
        if (st != PEN_OK) {
            s->err = st;
            return -1;
        }
        if (k != 1 || out->seq < want)
            continue;
        if (out->seq > want)
            break;
        if (i == 0) {
            s->first_slot = at;
            s->first_known = true;
        }
        return 0;
    }
    if (s->err == PEN_OK)
        s->err = PEN_ERR_CORRUPT;
    return -1;
}

/* ---- chunks ------------------------------------------------------------ */

/*
 * Chunk header: magic u32 | data_size u16 | count u16 | first_seq u64 |
 * raw_size u32 | lifetime u32 | overflow dropped u64 | data_crc u32 |
 * prev_link 32 bytes | crc32 of bytes 0..67.
 */
static void ls_hdr_pack(uint8_t b[PEN_CHUNK_HDR], const pen_chunk_hdr *h)
{
    pen_put32(b, CHUNK_MAGIC);
    pen_put16(b + 4, (uint16_t)h->data_size);
    pen_put16(b + 6, (uint16_t)h->count);
    pen_put64(b + 8, h->first_seq);
    pen_put32(b + 16, h->raw_size);
    pen_put32(b + 20, h->lifetime);
    pen_put64(b + 24, h->ovf_dropped);
    pen_put32(b + 32, h->data_crc);
    memcpy(b + 36, h->prev_link, 32);
    pen_put32(b + 68, pen_crc32(0, b, 68));
}

static uint32_t ls_ring_addr(const pen_log *l, uint32_t r)
{
    return (l->ring_sector + r) * l->ssize;
}

/* Reads the item at @p off of ring sector @p r into *@p h; *@p kind says what it is. */
static pen_status ls_ring_item(pen_log *l, uint32_t r, uint32_t off, pen_chunk_hdr *h, int *kind)
{
    uint8_t b[PEN_CHUNK_HDR];
    *kind = ITEM_END;
    if (off + PEN_CHUNK_HDR > l->ssize)
        return PEN_OK;
    pen_status st = ls_flash_read(l, ls_ring_addr(l, r) + off, b, PEN_CHUNK_HDR);
    if (st != PEN_OK || pen_is_erased(b, PEN_CHUNK_HDR))
        return st;
    *kind = ITEM_JUNK;
    if (pen_get32(b) != CHUNK_MAGIC || pen_get32(b + 68) != pen_crc32(0, b, 68))
        return PEN_OK;
    h->data_size = pen_get16(b + 4);
    h->count = pen_get16(b + 6);
    h->first_seq = pen_get64(b + 8);
    h->raw_size = pen_get32(b + 16);
    h->lifetime = pen_get32(b + 20);
    h->ovf_dropped = pen_get64(b + 24);
    h->data_crc = pen_get32(b + 32);
    memcpy(h->prev_link, b + 36, 32);
    if (h->data_size == 0 || h->count == 0 || off + PEN_CHUNK_HDR + h->data_size > l->ssize ||
        h->first_seq + h->count < h->first_seq)
        return PEN_OK;
    *kind = ITEM_CHUNK;
    return PEN_OK;
}

static uint32_t ls_item_next(uint32_t off, const pen_chunk_hdr *h)
{
    return ls_align8(off + PEN_CHUNK_HDR + h->data_size);
}

static pen_status ls_chunk_data_ok(pen_log *l, uint32_t r, uint32_t off, const pen_chunk_hdr *h,
                                   bool *ok)
{
    uint32_t crc;
    pen_status st = ls_region_crc(l, ls_ring_addr(l, r) + off + PEN_CHUNK_HDR, h->data_size, &crc);
    *ok = st == PEN_OK && crc == h->data_crc;
    return st;
}

static uint32_t head_room(const pen_log *l)
{
    if (l->head_closed || l->head_off + PEN_CHUNK_HDR >= l->ssize)
        return 0;
    return l->ssize - l->head_off - PEN_CHUNK_HDR;
}

/* ---- metadata journal -------------------------------------------------- */

typedef struct meta_state {
    uint64_t acked, dropped_through, ovf_seq, ovf_dropped;
    int64_t ovf_time_ms;
} meta_state;

static void ls_meta_current(const pen_log *l, meta_state *m)
{
    m->acked = l->acked_seq;
    m->dropped_through = l->dropped_through;
    m->ovf_seq = l->ovf_seq;
    m->ovf_dropped = l->ovf_dropped;
    m->ovf_time_ms = l->ovf_time_ms;
}

static uint32_t meta_addr(const pen_log *l, uint32_t s, uint32_t pos)
{
    return (l->meta_sector + s) * l->ssize + pos;
}

/*
 * Entry: magic u32 | generation u32 | acked u64 | dropped_through u64 |
 * overflow seq u64 | overflow dropped u64 | overflow time i64 | 0 (12) | crc32.
 */
static pen_status ls_meta_write(pen_log *l, const meta_state *m)
{
    uint8_t e[PEN_META_ENTRY];
    pen_status st;

    if (l->meta_pos + PEN_META_ENTRY > l->ssize) {
        uint32_t other = 1u - l->meta_active;
        st = ls_erase_if_needed(l, l->meta_sector + other, &l->stats.meta_erases);
        if (st != PEN_OK)
            return st;
        l->meta_active = other;
        l->meta_pos = 0;
    }
    memset(e, 0, sizeof e);
    pen_put32(e, META_MAGIC);
    pen_put32(e + 4, l->meta_gen + 1);
    pen_put64(e + 8, m->acked);
    pen_put64(e + 16, m->dropped_through);
    pen_put64(e + 24, m->ovf_seq);
    pen_put64(e + 32, m->ovf_dropped);
    pen_put64(e + 40, (uint64_t)m->ovf_time_ms);
    pen_put32(e + 60, pen_crc32(0, e, 60));
    st = ls_flash_program(l, meta_addr(l, l->meta_active, l->meta_pos), e, PEN_META_ENTRY);
    if (st != PEN_OK)
        return st;
    l->meta_pos += PEN_META_ENTRY;
    l->meta_gen++;
    l->acked_seq = m->acked;
    l->dropped_through = m->dropped_through;
    l->ovf_seq = m->ovf_seq;
    l->ovf_dropped = m->ovf_dropped;
    l->ovf_time_ms = m->ovf_time_ms;
    l->stats.meta_writes++;
    return PEN_OK;
}

static pen_status ls_meta_scan(pen_log *l)
{
    uint8_t e[PEN_META_ENTRY];
    uint32_t end[2] = { 0, 0 };
    bool found = false;

    for (uint32_t s = 0; s < 2; s++) {
        for (uint32_t pos = 0; pos + PEN_META_ENTRY <= l->ssize; pos += PEN_META_ENTRY) {
            pen_status st = ls_flash_read(l, meta_addr(l, s, pos), e, PEN_META_ENTRY);
            if (st != PEN_OK)
                return st;
            if (pen_is_erased(e, PEN_META_ENTRY))
                continue;
            end[s] = pos + PEN_META_ENTRY;
            if (pen_get32(e) != META_MAGIC || pen_get32(e + 60) != pen_crc32(0, e, 60))
                continue;
            uint32_t gen = pen_get32(e + 4);
            if (found && gen <= l->meta_gen)
                continue;
            found = true;
            l->meta_gen = gen;
            l->meta_active = s;
            l->acked_seq = pen_get64(e + 8);
            l->dropped_through = pen_get64(e + 16);
            l->ovf_seq = pen_get64(e + 24);
            l->ovf_dropped = pen_get64(e + 32);
            l->ovf_time_ms = (int64_t)pen_get64(e + 40);
        }
    }
    l->meta_pos = end[l->meta_active];
    return PEN_OK;
}

/* ---- boot -------------------------------------------------------------- */

uint32_t pen_log_stage_sectors(uint32_t sector_size, uint32_t batch)
{
    uint32_t per = sector_size / PEN_SLOT_SIZE;
    return per ? (batch + PEN_STAGE_SPARE + per - 1) / per : 0;
}

static pen_status ls_ring_scan(pen_log *l)
{
    pen_chunk_hdr h, best = { 0 };
    uint32_t best_r = 0, best_off = 0;
    bool found = false;

    for (uint32_t r = 0; r < l->ring_sectors; r++) {
        uint32_t off = 0;
        for (;;) {
            int k;
            bool ok;
            pen_status st = ls_ring_item(l, r, off, &h, &k);
            if (st != PEN_OK)
                return st;
            if (k != ITEM_CHUNK)
                break;
            if (!found || h.first_seq > best.first_seq) {
                st = ls_chunk_data_ok(l, r, off, &h, &ok);
                if (st != PEN_OK)
                    return st;
                if (ok) {
                    found = true;
                    best = h;
                    best_r = r;
                    best_off = off;
                }
            }
            off = ls_item_next(off, &h);
        }
    }
    if (!found) {
        /* Nothing written yet: the first chunk goes to ring sector 0. */
        l->ring_end = 0;
        l->head = l->ring_sectors - 1;
        l->head_off = l->ssize;
        l->head_closed = true;
        return PEN_OK;
    }
    l->ring_end = best.first_seq + best.count;
    l->head = best_r;
    if (l->chained) { /* the chain goes on from the newest chunk's link */
        pen_status st = ls_flash_read(l, ls_ring_addr(l, best_r) + best_off + PEN_CHUNK_HDR,
                                      l->scratch, best.data_size);
        if (st == PEN_OK)
            st = pen_log_link(l, best.prev_link, best.first_seq, best.count, best.raw_size,
                              best.data_size, l->head_link);
        if (st != PEN_OK)
            return st;
    }
    if (best.lifetime > l->lifetime)
        l->lifetime = best.lifetime;
    /* Items after the newest chunk in its sector (a torn chunk) are skipped. */
    uint32_t off = 0;
    l->head_closed = false;
    for (;;) {
        int k;
        pen_status st = ls_ring_item(l, best_r, off, &h, &k);
        if (st != PEN_OK)
            return st;
        if (k == ITEM_JUNK)
            l->head_closed = true;
        if (k != ITEM_CHUNK)
            break;
        off = ls_item_next(off, &h);
    }
    l->head_off = off;
    return PEN_OK;
}

static pen_status ls_stage_scan(pen_log *l)
{
    pl_record r;
    bool live = false;

    l->stage_pos = 0;
    l->stage_first_slot = 0;
    for (uint32_t slot = 0; slot < l->stage_slots; slot++) {
        int k;
        pen_status st = read_slot(l, slot, &r, &k);
        if (st != PEN_OK)
            return st;
        if (k == 0)
            continue;
        l->stage_pos = slot + 1;
        if (k != 1)
            continue; /* torn: its record was never committed */
        if (r.kind == PL_REC_CARTRIDGE_INSERTED && r.lifetime_cartridges > l->lifetime)
            l->lifetime = r.lifetime_cartridges;
        if (r.seq < l->ring_end)
            continue; /* already in a chunk */
        if (!live) {
            live = true;
            l->stage_first_slot = slot;
            l->stage_lo = r.seq;
            l->stage_end = r.seq + 1;
        } else if (r.seq == l->stage_end) {
            l->stage_end++;
        }
        /* anything else breaks the run: not written by this store, ignored */
    }
    if (!live)
        l->stage_lo = l->stage_end = 0;
    return PEN_OK;
}

pen_status pen_log_link(pen_log *l, const uint8_t prev[32], uint64_t first_seq, uint32_t count,
                        uint32_t raw_size, uint32_t size, uint8_t out[32])
{
    uint8_t pre[PL_AUTH_LINK_PREFIX];
    pl_auth_link_prefix(pre, prev, first_seq, count, raw_size, size);
    return l->hal->sha256(l->hal->ctx, pre, sizeof pre, l->scratch, size, out) == 0 ? PEN_OK
                                                                                    : PEN_ERR_HAL;
}

pen_status pen_log_open(pen_log *l, const pen_hal *hal, uint32_t first_sector, uint32_t batch,
                        pl_chunk_enc *enc, uint8_t *scratch, const uint8_t *genesis)
{
    pen_status st;
    uint32_t ss = hal ? hal->flash_sector_size : 0;

    if (!l || !hal || !enc || !scratch || batch == 0 || batch > PL_CHUNK_MAX_RECORDS)
        return PEN_ERR_ARG;
    if (ss < 512 || ss > 65536 || ss % 8 != 0)
        return PEN_ERR_GEOMETRY;
    memset(l, 0, sizeof *l);
    l->hal = hal;
    l->ssize = ss;
    l->batch = batch;
    l->enc = enc;
    l->scratch = scratch;
    if (genesis && hal->sha256) {
        l->chained = true;
        memcpy(l->head_link, genesis, 32);
    }
    l->data_max = ss - PEN_CHUNK_HDR < PEN_CHUNK_DATA_MAX ? ss - PEN_CHUNK_HDR : PEN_CHUNK_DATA_MAX;
    if (l->chained && l->data_max > PEN_CHUNK_DATA_MAX - PEN_CHUNK_CHAIN_FIELDS)
        l->data_max = PEN_CHUNK_DATA_MAX - PEN_CHUNK_CHAIN_FIELDS; /* frames stay within 1 KiB */
    l->slots_per_sector = ss / PEN_SLOT_SIZE;
    l->stage_sectors = pen_log_stage_sectors(ss, batch);
    l->stage_slots = l->stage_sectors * l->slots_per_sector;
    l->meta_sector = first_sector;
    l->stage_sector = first_sector + 2;
    l->ring_sector = l->stage_sector + l->stage_sectors;
    if (hal->flash_sector_count < l->ring_sector + PEN_RING_MIN_SECTORS)
        return PEN_ERR_GEOMETRY;
    l->ring_sectors = hal->flash_sector_count - l->ring_sector;

    st = ls_meta_scan(l);
    if (st == PEN_OK)
        st = ls_ring_scan(l);
    if (st == PEN_OK)
        st = ls_stage_scan(l);
    if (st != PEN_OK)
        return st;
    uint64_t next = pen_log_data_next(l);
    if (l->stage_lo == l->stage_end)
        l->stage_lo = l->stage_end = next;
    l->next_seq = next;
    /* A drop whose LOG_OVERFLOW record never reached staging. */
    if (l->ovf_dropped > 0 && l->ovf_seq >= next) {
        l->ovf_pending = true;
        l->next_seq = l->ovf_seq + 1;
    }
    return PEN_OK;
}

uint64_t pen_log_data_next(const pen_log *l)
{
    uint64_t n = ls_max64(l->ring_end, l->stage_end);
    return ls_max64(n, ls_max64(l->acked_seq, l->dropped_through));
}

/* ---- compaction -------------------------------------------------------- */

/* Moves the write position to the next ring sector, erasing it; records in
 * it that no host acknowledged are dropped, and a LOG_OVERFLOW is reserved. */
static pen_status advance_head(pen_log *l)
{
    uint32_t nx = (l->head + 1) % l->ring_sectors;
    uint64_t end_max = 0, folded = 0;
    uint64_t held = ls_max64(l->acked_seq, l->dropped_through);
    uint32_t off = 0;
    pen_chunk_hdr h;

    for (;;) {
        int k;
        bool ok;
        pen_status st = ls_ring_item(l, nx, off, &h, &k);
        if (st != PEN_OK)
            return st;
        if (k != ITEM_CHUNK)
            break;
        st = ls_chunk_data_ok(l, nx, off, &h, &ok);
        if (st != PEN_OK)
            return st;
        if (ok) {
            end_max = ls_max64(end_max, h.first_seq + h.count);
            /* a LOG_OVERFLOW no host acknowledged is lost too: carry its count on */
            if (h.first_seq >= held)
                folded += h.ovf_dropped;
        }
        off = ls_item_next(off, &h);
    }
    if (end_max > held) {
        meta_state m;
        ls_meta_current(l, &m);
        uint64_t lost = end_max - held + folded;
        m.dropped_through = end_max;
        if (l->ovf_pending) {
            m.ovf_dropped += lost; /* one LOG_OVERFLOW for every drop before it is written */
        } else {
            m.ovf_seq = l->next_seq;
            m.ovf_dropped = lost;
            m.ovf_time_ms = l->hal->rtc_get_ms(l->hal->ctx);
        }
        pen_status st = ls_meta_write(l, &m);
        if (st != PEN_OK)
            return st;
        if (!l->ovf_pending) {
            l->ovf_pending = true;
            l->next_seq++;
        }
        l->stats.dropped += end_max - held;
    }
    pen_status st = ls_erase_if_needed(l, l->ring_sector + nx, &l->stats.ring_erases);
    if (st != PEN_OK)
        return st;
    l->head = nx;
    l->head_off = 0;
    l->head_closed = false;
    return PEN_OK;
}

/*
 * Encodes the largest run of staged records from @p first (at most @p avail)
 * whose chunk fits @p cap bytes, leaving it in the scratch buffer. Probes all,
 * then a guess from the last chunk's bytes per record, then bisects.
 */
static pen_status fit(pen_log *l, uint64_t first, uint32_t avail, uint32_t cap, uint32_t *n_out,
                      pl_chunk_info *info, stage_src *src)
{
    uint32_t lo = 0, hi = avail + 1, in_scratch = 0, probe = avail;
    int round = 0;
    pl_chunk_info tmp;

    ls_stage_src_init(src, l, first);
    while (lo + 1 < hi) {
        pl_status ps = pl_chunk_encode(l->enc, ls_stage_source, src, probe, l->scratch, cap, &tmp);
        l->stats.encodes++;
        if (ps == PL_OK) {
            lo = probe;
            in_scratch = probe;
            *info = tmp;
        } else if (ps == PL_ERR_NO_SPACE) {
            hi = probe;
            in_scratch = 0; /* the failed attempt overwrote the scratch buffer */
        } else {
            return src->err != PEN_OK ? src->err : PEN_ERR_INTERNAL;
        }
        round++;
        probe = lo + (hi - lo) / 2;
        if (round == 1 && lo == 0) {
            /* records per chunk from the previous chunk's density */
            uint64_t g = l->stats.chunks ? (uint64_t)cap * l->stats.records_per_kb / 1024u : 0;
            if (g > lo && g < hi)
                probe = (uint32_t)g;
        } else if (round == 2) {
            /* close in on the guess from the side it fell on */
            uint32_t step = (lo > 0 ? lo : hi) / 16u + 1u;
            uint32_t g = lo > 0 ? lo + step : (hi > step ? hi - step : 1);
            if (g > lo && g < hi)
                probe = g;
        }
    }
    if (lo > 0 && in_scratch != lo) {
        pl_status ps = pl_chunk_encode(l->enc, ls_stage_source, src, lo, l->scratch, cap, info);
        l->stats.encodes++;
        if (ps != PL_OK)
            return src->err != PEN_OK ? src->err : PEN_ERR_INTERNAL;
    }
    *n_out = lo;
    return PEN_OK;
}

/* Programs the chunk in the scratch buffer at the write position. PEN_REFUSED:
 * the space there is not erased (a torn write before): the sector is closed. */
static pen_status write_chunk(pen_log *l, const pl_chunk_info *info, uint64_t ovf_dropped)
{
    uint8_t b[PEN_CHUNK_HDR];
    pen_chunk_hdr h;
    uint32_t addr = ls_ring_addr(l, l->head) + l->head_off;
    uint32_t need = PEN_CHUNK_HDR + info->data_size;
    bool erased;

    pen_status st = ls_region_erased(l, addr, need, &erased);
    if (st != PEN_OK)
        return st;
    if (!erased) {
        l->head_closed = true;
        return PEN_REFUSED;
    }
    h.first_seq = info->first_seq;
    h.count = info->record_count;
    h.raw_size = info->raw_size;
    h.data_size = info->data_size;
    h.lifetime = l->lifetime;
    h.ovf_dropped = ovf_dropped;
    h.data_crc = pen_crc32(0, l->scratch, info->data_size);
    uint8_t link[32];
    memcpy(h.prev_link, l->head_link, 32);
    if (l->chained) {
        st = pen_log_link(l, h.prev_link, h.first_seq, h.count, h.raw_size, h.data_size, link);
        if (st != PEN_OK)
            return st;
    }
    ls_hdr_pack(b, &h);
    st = ls_flash_program(l, addr, b, PEN_CHUNK_HDR);
    if (st == PEN_OK)
        st = ls_flash_program(l, addr + PEN_CHUNK_HDR, l->scratch, info->data_size);
    if (st != PEN_OK)
        return st;
    l->head_off = ls_align8(l->head_off + need);
    l->ring_end = info->first_seq + info->record_count;
    if (l->chained)
        memcpy(l->head_link, link, 32);
    l->stats.chunks++;
    l->stats.chunk_bytes += ls_align8(need);
    /* 32-bit: a chunk holds at most PL_CHUNK_MAX_RECORDS records, so no 64-bit division */
    l->stats.records_per_kb = (uint32_t)info->record_count * 1024u / info->data_size;
    return PEN_OK;
}

bool pen_log_wants_compaction(const pen_log *l)
{
    return l->stage_pos >= l->batch;
}

/* Compresses every staged record into chunks and erases staging. Reserved
 * records (a LOG_OVERFLOW this reserved) are left for flush_pending(). */
/*
 * Looks at the staged records from @p lo on: *@p lo_dropped is the dropped
 * count when the record at @p lo is a LOG_OVERFLOW (else 0), *@p next_ovf
 * the seq of the next LOG_OVERFLOW after it (else stage_end).
 */
static pen_status ls_staged_overflows(pen_log *l, uint64_t lo, uint64_t *lo_dropped,
                                      uint64_t *next_ovf)
{
    pl_record r;
    *lo_dropped = 0;
    *next_ovf = l->stage_end;
    for (uint32_t slot = l->stage_first_slot; slot < l->stage_pos; slot++) {
        int k;
        pen_status st = read_slot(l, slot, &r, &k);
        if (st != PEN_OK)
            return st;
        if (k != 1 || r.seq < lo || r.seq >= l->stage_end || r.kind != PL_REC_LOG_OVERFLOW)
            continue;
        if (r.seq == lo) {
            *lo_dropped = r.dropped;
        } else {
            *next_ovf = r.seq;
            break;
        }
    }
    return PEN_OK;
}

static pen_status ls_compact(pen_log *l)
{
    pen_status st;
    l->stats.compactions++;
    while (l->stage_lo < l->stage_end) {
        uint64_t ovf_dropped, next_ovf;
        /* a LOG_OVERFLOW always starts a chunk, whose header then carries its count */
        st = ls_staged_overflows(l, l->stage_lo, &ovf_dropped, &next_ovf);
        if (st != PEN_OK)
            return st;
        uint64_t left = next_ovf - l->stage_lo;
        uint32_t avail = left > PL_CHUNK_MAX_RECORDS ? PL_CHUNK_MAX_RECORDS : (uint32_t)left;
        uint32_t room = head_room(l);
        uint32_t cap = room < l->data_max ? room : l->data_max;
        uint32_t n = 0;
        pl_chunk_info info;
        stage_src src;

        if (cap >= MIN_FILL) {
            st = fit(l, l->stage_lo, avail, cap, &n, &info, &src);
            if (st != PEN_OK)
                return st;
        }
        if (n == 0) {
            if (l->head_off == 0 && !l->head_closed)
                return PEN_ERR_INTERNAL; /* one record does not fit a sector */
            st = advance_head(l);
            if (st != PEN_OK)
                return st;
            continue;
        }
        st = write_chunk(l, &info, ovf_dropped);
        if (st == PEN_REFUSED)
            continue;
        if (st != PEN_OK)
            return st;
        l->stage_lo += n;
        l->stage_first_slot = src.slot;
    }
    for (uint32_t s = 0; s < l->stage_sectors; s++) {
        st = ls_erase_if_needed(l, l->stage_sector + s, &l->stats.stage_erases);
        if (st != PEN_OK)
            return st;
    }
    l->stage_pos = 0;
    l->stage_first_slot = 0;
    return PEN_OK;
}

/* ---- appending --------------------------------------------------------- */

static pen_status ensure_room(pen_log *l, uint32_t slots)
{
    if (l->stage_pos + slots <= l->stage_slots)
        return PEN_OK;
    return ls_compact(l);
}

/* Writes reserved records (LOG_OVERFLOW, CONFIG_CHANGED) in seq order. */
static pen_status flush_pending(pen_log *l)
{
    while (l->ovf_pending || l->cfg_pending) {
        pl_record r;
        pen_status st = ensure_room(l, 1);
        if (st != PEN_OK)
            return st;
        bool ovf = l->ovf_pending && (!l->cfg_pending || l->ovf_seq < l->cfg_rec.seq);
        if (ovf) {
            memset(&r, 0, sizeof r);
            r.seq = l->ovf_seq;
            r.kind = PL_REC_LOG_OVERFLOW;
            r.fields = pl_record_kind_fields(r.kind);
            r.time_ms = l->ovf_time_ms;
            r.dropped = l->ovf_dropped;
        } else {
            r = l->cfg_rec;
        }
        st = ls_write_slot(l, &r);
        if (st != PEN_OK)
            return st;
        if (ovf)
            l->ovf_pending = false;
        else
            l->cfg_pending = false;
    }
    return PEN_OK;
}

pen_status pen_log_recover(pen_log *l, const pl_record *cfg_rec)
{
    pen_status st;
    if (cfg_rec && cfg_rec->seq >= pen_log_data_next(l)) {
        l->cfg_pending = true;
        l->cfg_rec = *cfg_rec;
        if (cfg_rec->seq + 1 > l->next_seq)
            l->next_seq = cfg_rec->seq + 1;
    }
    if (l->stage_lo == l->stage_end) {
        /* nothing live in staging: finish an interrupted erase */
        for (uint32_t s = 0; s < l->stage_sectors; s++) {
            st = ls_erase_if_needed(l, l->stage_sector + s, &l->stats.stage_erases);
            if (st != PEN_OK)
                return st;
        }
        l->stage_pos = 0;
        l->stage_first_slot = 0;
    }
    st = flush_pending(l);
    if (st == PEN_OK && pen_log_wants_compaction(l))
        st = pen_log_compact(l);
    return st;
}

pen_status pen_log_compact(pen_log *l)
{
    pen_status st = ls_compact(l);
    return st == PEN_OK ? flush_pending(l) : st;
}

pen_status pen_log_append(pen_log *l, pl_record *r)
{
    pen_status st = flush_pending(l);
    if (st == PEN_OK)
        st = ensure_room(l, 1);
    if (st == PEN_OK)
        st = flush_pending(l); /* compaction may have reserved a LOG_OVERFLOW */
    if (st == PEN_OK)
        st = ensure_room(l, 1);
    if (st != PEN_OK)
        return st;
    r->seq = l->next_seq;
    r->fields = pl_record_kind_fields(r->kind);
    st = ls_write_slot(l, r);
    if (st == PEN_OK)
        l->next_seq++;
    return st;
}

pen_status pen_log_reserve(pen_log *l, uint64_t *seq)
{
    pen_status st = flush_pending(l);
    if (st == PEN_OK)
        st = ensure_room(l, 2);
    if (st == PEN_OK)
        st = flush_pending(l);
    if (st != PEN_OK)
        return st;
    *seq = l->next_seq++;
    return PEN_OK;
}

void pen_log_unreserve(pen_log *l, uint64_t seq)
{
    if (seq + 1 == l->next_seq)
        l->next_seq = seq;
}

pen_status pen_log_commit_reserved(pen_log *l, const pl_record *r)
{
    return ls_write_slot(l, r);
}

pen_status pen_log_ack(pen_log *l, uint64_t through_seq)
{
    meta_state m;
    if (through_seq >= l->next_seq)
        return PEN_ERR_ARG;
    if (through_seq + 1 <= l->acked_seq)
        return PEN_OK;
    ls_meta_current(l, &m);
    m.acked = through_seq + 1;
    return ls_meta_write(l, &m);
}

/* ---- reading ----------------------------------------------------------- */

uint64_t pen_log_first_seq(const pen_log *l)
{
    return ls_max64(l->acked_seq, l->dropped_through);
}

uint64_t pen_log_next_seq(const pen_log *l)
{
    return l->next_seq;
}

uint64_t pen_log_acked_seq(const pen_log *l)
{
    return l->acked_seq;
}

uint64_t pen_log_ring_end(const pen_log *l)
{
    return l->ring_end;
}

uint32_t pen_log_lifetime(const pen_log *l)
{
    return l->lifetime;
}

uint64_t pen_log_capacity(const pen_log *l)
{
    return (uint64_t)l->ring_sectors * l->ssize + (uint64_t)l->stage_slots * PEN_SLOT_SIZE;
}

pen_status pen_log_usage_scan(pen_log *l, pen_log_usage *u)
{
    uint64_t first = pen_log_first_seq(l);
    pen_chunk_hdr h;
    memset(u, 0, sizeof *u);
    u->ring_sectors = l->ring_sectors;
    u->sector_size = l->ssize;
    for (uint32_t r = 0; r < l->ring_sectors; r++) {
        uint32_t off = 0;
        bool used = false;
        for (;;) {
            int k;
            pen_status st = ls_ring_item(l, r, off, &h, &k);
            if (st != PEN_OK)
                return st;
            if (k != ITEM_CHUNK)
                break;
            if (h.first_seq + h.count > first && h.first_seq + h.count <= l->ring_end) {
                u->chunks++;
                u->chunk_records += h.count;
                u->chunk_bytes += ls_item_next(0, &h);
                u->data_bytes += h.data_size;
                u->raw_bytes += h.raw_size;
                used = true;
            }
            off = ls_item_next(off, &h);
        }
        u->ring_sectors_used += used;
    }
    u->staged_records = l->stage_end - l->stage_lo;
    u->staging_bytes = (uint64_t)l->stage_pos * PEN_SLOT_SIZE;
    return PEN_OK;
}

pen_status pen_log_used(pen_log *l, uint64_t *used)
{
    pen_log_usage u;
    pen_status st = pen_log_usage_scan(l, &u);
    *used = st == PEN_OK ? u.chunk_bytes + u.staging_bytes : 0;
    return st;
}

const uint8_t *pen_log_scratch(const pen_log *l)
{
    return l->scratch;
}

/* Reads and checks the chunk at (r, off) into scratch; *ok says whether it is intact. */
static pen_status load_chunk(pen_log *l, uint32_t r, uint32_t off, const pen_chunk_hdr *h, bool *ok)
{
    *ok = false;
    if (h->data_size > PEN_CHUNK_DATA_MAX)
        return PEN_OK;
    pen_status st =
        ls_flash_read(l, ls_ring_addr(l, r) + off + PEN_CHUNK_HDR, l->scratch, h->data_size);
    if (st == PEN_OK)
        *ok = pen_crc32(0, l->scratch, h->data_size) == h->data_crc;
    return st;
}

static void hint_after(const pen_log *l, pen_log_pos *hint, uint32_t r, uint32_t off,
                       const pen_chunk_hdr *h)
{
    hint->sector = r;
    hint->off = ls_item_next(off, h);
    hint->valid = true;
    if (hint->off + PEN_CHUNK_HDR > l->ssize) {
        hint->sector = (r + 1) % l->ring_sectors;
        hint->off = 0;
    }
}

pen_status pen_log_read_chunk(pen_log *l, uint64_t seq, pen_log_pos *hint, pen_chunk_hdr *h)
{
    pen_status st;
    int k;
    bool ok;

    if (seq >= l->ring_end)
        return PEN_REFUSED;
    /* The hint points at the chunk after the last one served (or the start of the next sector). */
    for (int tries = 0; hint->valid && tries < 2; tries++) {
        st = ls_ring_item(l, hint->sector, hint->off, h, &k);
        if (st != PEN_OK)
            return st;
        if (k == ITEM_CHUNK) {
            if (h->first_seq <= seq && seq < h->first_seq + h->count) {
                st = load_chunk(l, hint->sector, hint->off, h, &ok);
                if (st != PEN_OK)
                    return st;
                if (ok) {
                    hint_after(l, hint, hint->sector, hint->off, h);
                    return PEN_OK;
                }
            }
            break;
        }
        hint->sector = (hint->sector + 1) % l->ring_sectors;
        hint->off = 0;
    }
    /* Walk the ring from its oldest sector: the first intact chunk ending after seq. */
    for (uint32_t i = 0; i < l->ring_sectors; i++) {
        uint32_t r = (l->head + 1 + i) % l->ring_sectors, off = 0;
        for (;;) {
            st = ls_ring_item(l, r, off, h, &k);
            if (st != PEN_OK)
                return st;
            if (k != ITEM_CHUNK)
                break;
            if (h->first_seq + h->count > seq && h->first_seq < l->ring_end) {
                st = load_chunk(l, r, off, h, &ok);
                if (st != PEN_OK)
                    return st;
                if (ok) {
                    hint_after(l, hint, r, off, h);
                    return PEN_OK;
                }
            }
            off = ls_item_next(off, h);
        }
    }
    hint->valid = false;
    return PEN_ERR_CORRUPT;
}
