/**
 * @file logstore.h
 * The flash log store (internal to the device core): a raw staging journal
 * that takes every record as it happens, an append-only ring of compressed
 * chunks, and a small metadata journal for the acknowledged and dropped
 * points. firmware-stub/README.md describes the flash layout and the
 * power-loss argument; this header is the interface pen.c uses.
 *
 * Sequence numbers start at 0 and are never reused. Every record below
 * pen_log_first_seq() was acknowledged by a host or dropped by an overflow
 * (and a LOG_OVERFLOW record says how many).
 */
#ifndef PEN_LOGSTORE_H
#define PEN_LOGSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "pen_hal.h"
#include "pl/chunk.h"
#include "pl/frame.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Bytes of one staged record on flash. */
#define PEN_SLOT_SIZE 40u
/** Bytes of a chunk header on flash (the data follows it). */
#define PEN_CHUNK_HDR 72u
/** Bytes of one metadata journal entry. */
#define PEN_META_ENTRY 64u
/**
 * Largest compressed chunk the pen stores: a LogChunk frame carrying it stays
 * within PL_FRAME_MIN_PAYLOAD, which every host accepts (the envelope and
 * LogChunk fields around the data take at most 40 bytes).
 */
#define PEN_CHUNK_DATA_MAX (PL_FRAME_MIN_PAYLOAD - 64u)
/** What a chained pen's LogChunk adds (link and prev_link): its chunks are that much
 * smaller. */
#define PEN_CHUNK_CHAIN_FIELDS 72u
/** Staging slots beyond one batch (room for records logged while compacting). */
#define PEN_STAGE_SPARE 32u
/** Sectors outside the ring: config A/B, metadata journal A/B. */
#define PEN_FIXED_SECTORS 4u
/** The ring needs at least this many sectors. */
#define PEN_RING_MIN_SECTORS 3u

/** Where a chunk sits in the ring (a hint the pull keeps between frames). */
typedef struct pen_log_pos {
    uint32_t sector; /**< ring sector index */
    uint32_t off;    /**< byte offset in the sector */
    bool valid;
} pen_log_pos;

/** A chunk's header as the store keeps it. */
typedef struct pen_chunk_hdr {
    uint64_t first_seq;
    uint32_t count;
    uint32_t raw_size;
    uint32_t data_size;
    uint32_t lifetime; /**< lifetime cartridge count when the chunk was written */
    uint32_t data_crc;
    uint64_t ovf_dropped;  /**< first record is a LOG_OVERFLOW: its dropped count, else 0 */
    uint8_t prev_link[32]; /**< the hash chain before this chunk (zero on a pen without one) */
} pen_chunk_hdr;

/** Counters for diagnostics, tests and the simulator's report. */
typedef struct pen_log_stats {
    uint64_t records;     /**< records appended since boot */
    uint64_t chunks;      /**< chunks written since boot */
    uint64_t chunk_bytes; /**< ring bytes those chunks took (header, data, alignment) */
    uint64_t compactions;
    uint64_t encodes; /**< pl_chunk_encode calls (fitting chunks to space) */
    uint64_t ring_erases, stage_erases, meta_erases, meta_writes;
    uint64_t dropped;        /**< records lost to overflow since boot */
    uint32_t records_per_kb; /**< density of the last chunk written (guides the next fit) */
} pen_log_stats;

/** The store. Members are private to logstore*.c (logstore_internal.h). */
typedef struct pen_log {
    const pen_hal *hal;
    uint32_t ssize;
    uint32_t meta_sector, stage_sector, stage_sectors, ring_sector, ring_sectors;
    uint32_t slots_per_sector, stage_slots, batch, data_max;

    uint64_t next_seq;        /**< seq the next new record gets */
    uint64_t acked_seq;       /**< every seq below was acknowledged */
    uint64_t dropped_through; /**< every seq below is gone (acked or dropped) */
    uint64_t ring_end;        /**< seq after the newest chunk (0: no chunk yet) */
    uint32_t head, head_off;  /**< ring write position */
    bool head_closed;         /**< the head sector takes no more chunks */
    uint32_t stage_pos;       /**< next staging slot */
    uint32_t stage_first_slot;
    uint64_t stage_lo, stage_end; /**< staged records not yet in a chunk: [lo, end) */
    uint32_t lifetime;            /**< highest lifetime_cartridges committed */

    uint32_t meta_gen, meta_active, meta_pos;
    bool ovf_pending, cfg_pending;
    uint64_t ovf_seq, ovf_dropped;
    int64_t ovf_time_ms;
    pl_record cfg_rec; /**< CONFIG_CHANGED reserved by the config store */

    pl_chunk_enc *enc;
    uint8_t *scratch; /**< PEN_CHUNK_DATA_MAX bytes: chunk being written or read */
    pen_log_stats stats;

    bool chained;          /**< chunks extend a SHA-256 hash chain (docs/protocol.md 9.3) */
    uint8_t head_link[32]; /**< the chain after the newest chunk (the genesis link before any) */
} pen_log;

/** Staging sectors the store uses for @p batch records per chunk. */
uint32_t pen_log_stage_sectors(uint32_t sector_size, uint32_t batch);

/**
 * Scans the flash (no writes): finds the metadata, the ring's newest chunk
 * and the staged records. @p first_sector is the first sector after the
 * config slots. Call pen_log_recover() next.
 */
pen_status pen_log_open(pen_log *l, const pen_hal *hal, uint32_t first_sector, uint32_t batch,
                        pl_chunk_enc *enc, uint8_t *scratch, const uint8_t *genesis);

/**
 * The chain link of the chunk in the scratch buffer (its data, @p size
 * bytes) after @p prev: SHA-256 through the HAL (pl_auth_link_prefix()).
 */
pen_status pen_log_link(pen_log *l, const uint8_t prev[32], uint64_t first_seq, uint32_t count,
                        uint32_t raw_size, uint32_t size, uint8_t out[32]);

/** The seq after the last record found on flash (before any pending record). */
uint64_t pen_log_data_next(const pen_log *l);

/**
 * Finishes what a power cut interrupted: erases a stale staging area, writes
 * the records reserved before the cut (LOG_OVERFLOW from the metadata, and
 * @p cfg_rec when not NULL: the config store's CONFIG_CHANGED whose seq is
 * at or past pen_log_data_next()), and compacts a full staging area.
 */
pen_status pen_log_recover(pen_log *l, const pl_record *cfg_rec);

/** Appends a record: assigns r->seq (and writes it back) and commits it to staging. */
pen_status pen_log_append(pen_log *l, pl_record *r);

/**
 * Reserves the next seq for a record whose content another store commits
 * first (the config store's CONFIG_CHANGED). Makes sure staging has room,
 * so that pen_log_commit_reserved() follows without compaction.
 */
pen_status pen_log_reserve(pen_log *l, uint64_t *seq);
/** Gives a reservation back after the other store failed. */
void pen_log_unreserve(pen_log *l, uint64_t seq);
/** Commits the reserved record @p r (r->seq is the reserved seq). */
pen_status pen_log_commit_reserved(pen_log *l, const pl_record *r);

/** True when enough records are staged to compact them. */
bool pen_log_wants_compaction(const pen_log *l);
/** Compresses every staged record into chunks of the ring and frees staging. */
pen_status pen_log_compact(pen_log *l);

/**
 * Acknowledges every record up to and including @p through_seq (which must
 * be below pen_log_next_seq()). Acknowledging below the current point is a
 * no-op. Acknowledged chunks are erased when the ring needs their space.
 */
pen_status pen_log_ack(pen_log *l, uint64_t through_seq);

/** Oldest record still served (records below it were acknowledged or dropped). */
uint64_t pen_log_first_seq(const pen_log *l);
/** The seq the next record will get. */
uint64_t pen_log_next_seq(const pen_log *l);
/** Every seq below this was acknowledged. */
uint64_t pen_log_acked_seq(const pen_log *l);
/** The seq after the newest chunk in the ring: records from here on are staged. */
uint64_t pen_log_ring_end(const pen_log *l);
/** Highest lifetime cartridge count committed. */
uint32_t pen_log_lifetime(const pen_log *l);
/** Bytes of flash that hold the log (ring and staging). */
uint64_t pen_log_capacity(const pen_log *l);
/** Bytes of those that hold records still served. Scans chunk headers. */
pen_status pen_log_used(pen_log *l, uint64_t *used);

/** How the records still served sit on flash (pen_log_usage()). */
typedef struct pen_log_usage {
    uint64_t chunks, chunk_records;
    uint64_t chunk_bytes; /**< headers, data and alignment */
    uint64_t data_bytes;  /**< compressed data alone */
    uint64_t raw_bytes;   /**< the same records as uncompressed RecordBatch */
    uint64_t staged_records, staging_bytes;
    uint32_t ring_sectors, ring_sectors_used, sector_size;
} pen_log_usage;

/** Scans the ring's chunk headers. */
pen_status pen_log_usage_scan(pen_log *l, pen_log_usage *u);

/**
 * Finds the stored chunk holding @p seq (or, after a gap, the first one
 * after it) and reads its compressed data into the scratch buffer.
 * @p hint speeds up a pull that walks the ring; it is updated to the next chunk.
 * @return PEN_OK with *@p h filled and the data at pen_log_scratch();
 *         PEN_REFUSED when @p seq is at or past pen_log_ring_end() (staged);
 *         PEN_ERR_* on flash failure.
 */
pen_status pen_log_read_chunk(pen_log *l, uint64_t seq, pen_log_pos *hint, pen_chunk_hdr *h);

/** The scratch buffer holding the last chunk read or encoded. */
const uint8_t *pen_log_scratch(const pen_log *l);

#ifdef __cplusplus
}
#endif
#endif
