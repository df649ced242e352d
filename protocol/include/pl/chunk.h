/**
 * @file pl/chunk.h
 * The chunk codec: a batch of consecutive records -> RecordBatch (columns,
 * delta + zigzag varints) -> zlib. Every chunk decodes on its own.
 *
 * The encoder runs on the pen: it allocates nothing after pl_chunk_enc_init(),
 * reads records through a callback (so they can stay in flash), and zlib works
 * inside an arena the caller provides. The decoder runs on the host, on
 * hostile bytes: its output and scratch sizes are fixed by the caller, and any
 * declared or actual size above them is an error, never an allocation.
 */
#ifndef PL_CHUNK_H
#define PL_CHUNK_H

#include <stddef.h>
#include <stdint.h>

#include "pl/record.h"
#include "pl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * zlib parameters of the encoder: a 512-byte window and small hash tables
 * keep its state near 10 KB. The window hardly matters (columns repeat
 * little); memLevel sets deflate's block size, which matters more, and the
 * batch size most (tools/bench/bench_codec prints the calibration).
 */
#define PL_CHUNK_WINDOW_BITS 9
#define PL_CHUNK_MEM_LEVEL 2
#define PL_CHUNK_LEVEL 9
/** Arena the encoder needs for zlib's state (measured; see tests/unit/test_chunk.c). */
#define PL_CHUNK_ENC_ARENA 10240u
/** Records per chunk the pen compresses (its staging journal holds one batch). */
#define PL_CHUNK_BATCH 512u
/** Limits every decoder enforces. */
#define PL_CHUNK_MAX_RECORDS 4096u
#define PL_CHUNK_MAX_RAW (512u * 1024u)

/** Gives record @p i (0-based) of the batch being encoded; returns 0 or -1 on failure. */
typedef int (*pl_record_source)(void *ctx, uint32_t i, pl_record *out);

/** Chunk encoder state. Treat the members as private. */
typedef struct pl_chunk_enc {
    void *zs; /**< z_stream, inside arena */
    uint8_t *arena;
    size_t arena_cap, arena_used, arena_peak;
    int ready;
} pl_chunk_enc;

/**
 * Prepares an encoder whose zlib state lives in @p arena (PL_CHUNK_ENC_ARENA
 * bytes is enough). No allocation happens after this call.
 */
pl_status pl_chunk_enc_init(pl_chunk_enc *e, void *arena, size_t arena_cap);
/** Releases zlib's state (the arena itself belongs to the caller). */
void pl_chunk_enc_fini(pl_chunk_enc *e);
/** Highest arena use seen so far, in bytes. */
size_t pl_chunk_enc_peak(const pl_chunk_enc *e);

/** Result of an encode: what LogChunk carries beside the data. */
typedef struct pl_chunk_info {
    uint64_t first_seq;
    uint32_t record_count;
    uint32_t raw_size;  /**< RecordBatch bytes before compression */
    uint32_t data_size; /**< zlib bytes written to out */
} pl_chunk_info;

/**
 * Encodes @p count records (seq first_seq, first_seq+1, ... as returned by
 * @p src; a record whose seq breaks the run is PL_ERR_INVALID_ARG) into the
 * zlib stream @p out.
 */
pl_status pl_chunk_encode(pl_chunk_enc *e, pl_record_source src, void *ctx, uint32_t count,
                          uint8_t *out, size_t out_cap, pl_chunk_info *info);

/** Convenience source over an array of records (ctx = the array). */
int pl_record_array_source(void *ctx, uint32_t i, pl_record *out);

/** Decoder scratch and limits. Treat the members as private. */
typedef struct pl_chunk_dec {
    void *zs;     /**< z_stream, allocated once */
    uint8_t *raw; /**< inflated RecordBatch, raw_cap bytes */
    size_t raw_cap;
    uint32_t max_records;
    size_t consumed; /**< bytes of input the last decode used */
    size_t fail_at;  /**< offset inside the raw batch of the last format error */
} pl_chunk_dec;

/**
 * Prepares a decoder that accepts batches of up to @p max_records records and
 * @p raw_cap uncompressed bytes (both at most the PL_CHUNK_MAX_* limits).
 * Allocates raw_cap bytes and zlib's inflate state once.
 */
pl_status pl_chunk_dec_init(pl_chunk_dec *d, uint32_t max_records, size_t raw_cap);
void pl_chunk_dec_fini(pl_chunk_dec *d);

/** What the caller knows about the chunk beforehand (from LogChunk); 0 = unknown. */
typedef struct pl_chunk_expect {
    uint64_t first_seq;
    uint32_t record_count;
    uint32_t raw_size;
    int have_first_seq;
} pl_chunk_expect;

/**
 * Inflates and decodes one chunk from @p data (a zlib stream; trailing bytes
 * after its end are left alone: pl_chunk_dec_consumed() says where it ended).
 * Writes up to @p out_cap records to @p out and their number to *@p n.
 * @p expect may be NULL.
 * @return PL_OK; PL_NEED_MORE when @p data ends before the zlib stream does
 *         (truncated); PL_ERR_CHUNK_* otherwise.
 */
pl_status pl_chunk_decode(pl_chunk_dec *d, const uint8_t *data, size_t len,
                          const pl_chunk_expect *expect, pl_record *out, uint32_t out_cap,
                          uint32_t *n);

/** Bytes of input the last pl_chunk_decode() consumed (the zlib stream's length). */
size_t pl_chunk_dec_consumed(const pl_chunk_dec *d);

/** Parses an uncompressed RecordBatch (used by pl_chunk_decode and the fuzzers). */
pl_status pl_batch_parse(const uint8_t *raw, size_t len, uint32_t max_records, pl_record *out,
                         uint32_t out_cap, uint32_t *n, uint64_t *first_seq, size_t *fail_at);

#ifdef __cplusplus
}
#endif
#endif
