/*
 * The flash log store's chunk ring: the chunk header's layout, the items of
 * a ring sector, the scan at boot that finds the newest chunk (the write
 * position), and the reads: a pull's chunks and the usage figures.
 */
#include <string.h>

#include "logstore_internal.h"
#include "pen_util.h"

#define CHUNK_MAGIC 0x32434C50u /* "PLC2": chunks with a chain link (v1 "PLCH" had none) */

/*
 * Chunk header: magic u32 | data_size u16 | count u16 | first_seq u64 |
 * raw_size u32 | lifetime u32 | overflow dropped u64 | data_crc u32 |
 * prev_link 32 bytes | crc32 of bytes 0..67.
 */
void ls_hdr_pack(uint8_t b[PEN_CHUNK_HDR], const pen_chunk_hdr *h)
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

uint32_t ls_ring_addr(const pen_log *l, uint32_t r)
{
    return (l->ring_sector + r) * l->ssize;
}

/* Reads the item at @p off of ring sector @p r into *@p h; *@p kind says what it is. */
pen_status ls_ring_item(pen_log *l, uint32_t r, uint32_t off, pen_chunk_hdr *h, int *kind)
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

uint32_t ls_item_next(uint32_t off, const pen_chunk_hdr *h)
{
    return ls_align8(off + PEN_CHUNK_HDR + h->data_size);
}

pen_status ls_chunk_data_ok(pen_log *l, uint32_t r, uint32_t off, const pen_chunk_hdr *h, bool *ok)
{
    uint32_t crc;
    pen_status st = ls_region_crc(l, ls_ring_addr(l, r) + off + PEN_CHUNK_HDR, h->data_size, &crc);
    *ok = st == PEN_OK && crc == h->data_crc;
    return st;
}

pen_status ls_ring_scan(pen_log *l)
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
