/*
 * The flash log store's private header, shared by its files: logstore.c
 * (opening, appending, acknowledging: most of logstore.h), logstore_flash.c
 * (flash access), logstore_stage.c (the staging journal), logstore_meta.c
 * (the metadata journal), logstore_ring.c (the chunk ring and its reads) and
 * logstore_compact.c (compaction).
 */
#ifndef PEN_LOGSTORE_INTERNAL_H
#define PEN_LOGSTORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "logstore.h"

/* What ls_ring_item() finds at an offset of a ring sector. */
enum { ITEM_END = 0, ITEM_CHUNK = 1, ITEM_JUNK = -1 };

static inline uint32_t ls_align8(uint32_t v)
{
    return (v + 7u) & ~7u;
}

static inline uint64_t ls_max64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* ---- flash access (logstore_flash.c) ----------------------------------- */

pen_status ls_flash_read(pen_log *l, uint32_t addr, void *buf, uint32_t len);
pen_status ls_flash_program(pen_log *l, uint32_t addr, const void *buf, uint32_t len);
pen_status ls_region_erased(pen_log *l, uint32_t addr, uint32_t len, bool *erased);
/* Erases @p sector unless it already reads as erased (saves wear and time). */
pen_status ls_erase_if_needed(pen_log *l, uint32_t sector, uint64_t *counter);
pen_status ls_region_crc(pen_log *l, uint32_t addr, uint32_t len, uint32_t *crc);

/* ---- staging journal (logstore_stage.c) -------------------------------- */

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

/* Commits @p r (whose seq is already decided) to the next staging slot. */
pen_status ls_write_slot(pen_log *l, const pl_record *r);
void ls_stage_src_init(stage_src *s, pen_log *l, uint64_t first);
/* A pl_chunk_encode() source: @p ctx is a stage_src. */
int ls_stage_source(void *ctx, uint32_t i, pl_record *out);
/* Finds the staged records at boot (after ls_ring_scan()). */
pen_status ls_stage_scan(pen_log *l);
pen_status ls_staged_overflows(pen_log *l, uint64_t lo, uint64_t *lo_dropped, uint64_t *next_ovf);

/* ---- metadata journal (logstore_meta.c) -------------------------------- */

typedef struct meta_state {
    uint64_t acked, dropped_through, ovf_seq, ovf_dropped;
    int64_t ovf_time_ms;
} meta_state;

void ls_meta_current(const pen_log *l, meta_state *m);
pen_status ls_meta_write(pen_log *l, const meta_state *m);
pen_status ls_meta_scan(pen_log *l);

/* ---- chunk ring (logstore_ring.c) -------------------------------------- */

void ls_hdr_pack(uint8_t b[PEN_CHUNK_HDR], const pen_chunk_hdr *h);
uint32_t ls_ring_addr(const pen_log *l, uint32_t r);
/* Reads the item at @p off of ring sector @p r into *@p h; *@p kind says what it is. */
pen_status ls_ring_item(pen_log *l, uint32_t r, uint32_t off, pen_chunk_hdr *h, int *kind);
uint32_t ls_item_next(uint32_t off, const pen_chunk_hdr *h);
pen_status ls_chunk_data_ok(pen_log *l, uint32_t r, uint32_t off, const pen_chunk_hdr *h, bool *ok);
/* Finds the newest intact chunk at boot: the write position and the chain's link. */
pen_status ls_ring_scan(pen_log *l);

/* ---- compaction (logstore_compact.c) ----------------------------------- */

/* Compresses every staged record into chunks and erases staging. */
pen_status ls_compact(pen_log *l);

#endif
