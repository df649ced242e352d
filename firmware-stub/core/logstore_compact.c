/*
 * The flash log store's compaction: the staged records compressed into
 * chunks at the ring's write position, which moves on to the next sector
 * when one is full, dropping what no host acknowledged there.
 */
#include <string.h>

#include "logstore_internal.h"
#include "pen_util.h"

#define MIN_FILL 64u /* data bytes below which a sector's tail stays unused */

static uint32_t head_room(const pen_log *l)
{
    if (l->head_closed || l->head_off + PEN_CHUNK_HDR >= l->ssize)
        return 0;
    return l->ssize - l->head_off - PEN_CHUNK_HDR;
}

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

/* Compresses every staged record into chunks and erases staging. Reserved
 * records (a LOG_OVERFLOW this reserved) are left for flush_pending(). */
pen_status ls_compact(pen_log *l)
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
