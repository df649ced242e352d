/**
 * @file pl/frame.h
 * Framing: the fixed 16-byte header that carries one Envelope on USB bulk
 * endpoints and on byte streams alike, and an incremental decoder that takes
 * bytes in any split and resynchronises after garbage.
 *
 * Header (all integers little-endian):
 * | off | size | field                                              |
 * |-----|------|----------------------------------------------------|
 * | 0   | 4    | magic "PNLK" (50 4E 4C 4B)                         |
 * | 4   | 1    | framing version, 1                                 |
 * | 5   | 1    | flags, 0 (receivers ignore bits they do not know)  |
 * | 6   | 4    | payload length in bytes                            |
 * | 10  | 4    | CRC-32 (zlib crc32) of the payload                 |
 * | 14  | 2    | header check: low 16 bits of crc32(bytes 0..13)    |
 *
 * The decoder never allocates: it works in a buffer the caller gives it, whose
 * size bounds the largest payload it accepts (a larger declared length is
 * refused as soon as the header is seen).
 *
 * Its work is linear in the bytes fed, whatever they are: payload CRCs are
 * computed over at most 2 * (bytes fed) + PL_FRAME_MAX_PAYLOAD bytes
 * (docs/protocol.md section 2, "Receiving", rule 6).
 */
#ifndef PL_FRAME_H
#define PL_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "pl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PL_FRAME_MAGIC "PNLK"
#define PL_FRAME_VERSION 1u
#define PL_FRAME_HEADER_SIZE 16u
/** Every peer accepts payloads of at least this size, before and after Hello. */
#define PL_FRAME_MIN_PAYLOAD 1024u
/** No peer may announce a larger maximum payload than this. */
#define PL_FRAME_MAX_PAYLOAD (1024u * 1024u)

/** Encodes the 16-byte header for @p payload (may be NULL when @p len is 0). */
void pl_frame_header(uint8_t hdr[PL_FRAME_HEADER_SIZE], const uint8_t *payload, uint32_t len);

/**
 * Writes header + payload to @p out.
 * @return bytes written, or PL_ERR_NO_SPACE when @p cap is too small.
 */
long pl_frame_encode(uint8_t *out, size_t cap, const uint8_t *payload, uint32_t len);

/** A decoded frame; payload points into the decoder's buffer. */
typedef struct pl_frame {
    const uint8_t *payload;
    uint32_t len;
    uint8_t flags;
} pl_frame;

/** Incremental frame decoder. Treat the members as private. */
typedef struct pl_frame_decoder {
    uint8_t *buf;
    size_t cap; /**< bytes of buf */
    uint32_t max_payload;
    size_t start;         /**< candidate frame start in buf */
    size_t have;          /**< bytes after start */
    int hunting;          /**< resynchronising: stay quiet about more garbage */
    int delivered;        /**< a frame was returned; drop it on the next call */
    uint64_t offset;      /**< stream offset of buf[start] */
    uint64_t err_offset;  /**< stream offset where the last error was seen */
    uint64_t skipped;     /**< bytes discarded while resynchronising, in total */
    uint64_t taken;       /**< bytes fed to the decoder since init/reset */
    uint64_t refused_end; /**< stream offset where the last frame refused for its CRC ends */
    uint64_t nested_crc;  /**< payload bytes checked of frames starting inside a refused one */
    uint64_t crc_bytes;   /**< payload bytes whose CRC was computed, in total */
} pl_frame_decoder;

/**
 * Initialises @p d over @p buf. @p cap must be at least PL_FRAME_HEADER_SIZE +
 * @p max_payload; @p max_payload at most PL_FRAME_MAX_PAYLOAD.
 */
pl_status pl_frame_decoder_init(pl_frame_decoder *d, uint8_t *buf, size_t cap,
                                uint32_t max_payload);

/** Lowers or raises the accepted payload size (after Hello), within the buffer. */
pl_status pl_frame_decoder_set_max(pl_frame_decoder *d, uint32_t max_payload);

/** Forgets any partial frame; the next byte is expected to start a frame. */
void pl_frame_decoder_reset(pl_frame_decoder *d);

/**
 * Feeds bytes. Consumes from @p data until a frame is complete, an error is
 * found, or the input is used up; *@p used says how many bytes were taken.
 * Call again with the rest of the input.
 *
 * @return PL_OK with *@p out filled (valid until the next call);
 *         PL_NEED_MORE when all input was consumed without a complete frame;
 *         PL_ERR_FRAME_* when the stream is damaged: the decoder has already
 *         started resynchronising, and pl_frame_decoder_error_offset() says where.
 *         One damaged stretch yields one error, however long it is.
 */
pl_status pl_frame_decoder_feed(pl_frame_decoder *d, const uint8_t *data, size_t len, size_t *used,
                                pl_frame *out);

/** Bytes held that are not part of a frame already returned (a partial frame). */
size_t pl_frame_decoder_pending(const pl_frame_decoder *d);

/** Payload bytes whose CRC the decoder computed since init/reset (its work; for tests). */
uint64_t pl_frame_decoder_crc_bytes(const pl_frame_decoder *d);

/** Stream offset (bytes fed since init/reset) of the frame start that the last error concerns. */
uint64_t pl_frame_decoder_error_offset(const pl_frame_decoder *d);

#ifdef __cplusplus
}
#endif
#endif
