/*
 * The flash log store's metadata journal: two sectors of 64-byte entries,
 * each a complete snapshot (acknowledged point, dropped point, last
 * overflow) with a generation number; the valid entry with the highest
 * generation wins.
 */
#include <string.h>

#include "logstore_internal.h"
#include "pen_util.h"

#define META_MAGIC 0x544D4C50u /* "PLMT" */

void ls_meta_current(const pen_log *l, meta_state *m)
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
pen_status ls_meta_write(pen_log *l, const meta_state *m)
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

pen_status ls_meta_scan(pen_log *l)
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
