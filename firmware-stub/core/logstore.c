/*
 * The flash log store.
 *
 * Three areas, all in NOR flash (see firmware-stub/README.md for the byte
 * layouts and the power-loss argument):
 *
 *  - the staging journal: fixed 40-byte slots, one record each with its own
 *    CRC, written as events happen. It holds one batch plus a few spare slots
 *    and is erased as a whole once every record in it sits in a chunk;
 *  - the ring: compressed chunks (72-byte header with the seq range, two
 *    CRCs and the chain link before the chunk, then the zlib data), appended
 *    sector by sector. A chunk never spans sectors, so erasing a sector
 *    drops whole chunks. The newest chunk (highest first_seq) marks the
 *    write position;
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
 *
 * The code: this file opens the store (the scans at boot), takes records
 * (appending, reserving, the records a power cut left pending) and
 * acknowledgements; logstore_flash.c reads, programs and erases flash;
 * logstore_stage.c keeps the staging journal; logstore_meta.c the metadata
 * journal; logstore_ring.c the chunk ring (chunk headers, the boot scan, the
 * pull's reads); logstore_compact.c turns staged records into chunks.
 * logstore_internal.h is what they share.
 */
#include <string.h>

#include "logstore_internal.h"
#include "pl/auth.h"

/* ---- boot -------------------------------------------------------------- */

uint32_t pen_log_stage_sectors(uint32_t sector_size, uint32_t batch)
{
    uint32_t per = sector_size / PEN_SLOT_SIZE;
    return per ? (batch + PEN_STAGE_SPARE + per - 1) / per : 0;
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

/* ---- appending --------------------------------------------------------- */

bool pen_log_wants_compaction(const pen_log *l)
{
    return l->stage_pos >= l->batch;
}

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

const uint8_t *pen_log_scratch(const pen_log *l)
{
    return l->scratch;
}
