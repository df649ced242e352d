/*
 * The flash log store's staging journal: fixed 40-byte slots, one record
 * each with its own CRC (packed and unpacked here), written as events
 * happen; the source the chunk encoder reads staged records from; the scan
 * at boot; the LOG_OVERFLOW records among the staged ones.
 */
#include <string.h>

#include "logstore_internal.h"
#include "pen_util.h"

#define SLOT_PAYLOAD 16u /* field bytes in a slot */

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
pen_status ls_write_slot(pen_log *l, const pl_record *r)
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

void ls_stage_src_init(stage_src *s, pen_log *l, uint64_t first)
{
    memset(s, 0, sizeof *s);
    s->l = l;
    s->first = first;
    s->slot = l->stage_first_slot;
}

int ls_stage_source(void *ctx, uint32_t i, pl_record *out)
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

pen_status ls_stage_scan(pen_log *l)
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

/*
 * Looks at the staged records from @p lo on: *@p lo_dropped is the dropped
 * count when the record at @p lo is a LOG_OVERFLOW (else 0), *@p next_ovf
 * the seq of the next LOG_OVERFLOW after it (else stage_end).
 */
pen_status ls_staged_overflows(pen_log *l, uint64_t lo, uint64_t *lo_dropped, uint64_t *next_ovf)
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
