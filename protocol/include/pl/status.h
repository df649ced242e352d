/**
 * @file pl/status.h
 * Status codes of the protocol library shared by the host and the pen.
 *
 * Every function of protocol/ returns a pl_status: PL_OK (0) on success or a
 * negative code. Values are append-only so that logs stay readable across
 * versions; pl_status_str() turns any of them into a sentence.
 */
#ifndef PL_STATUS_H
#define PL_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pl_status {
    PL_OK = 0,
    PL_NEED_MORE = 1,               /**< not an error: the frame decoder wants more bytes */
    PL_ERR_INVALID_ARG = -1,        /**< a caller passed an impossible argument */
    PL_ERR_NO_SPACE = -2,           /**< the output buffer is too small */
    PL_ERR_FRAME_MAGIC = -3,        /**< bytes that are not the start of a frame */
    PL_ERR_FRAME_VERSION = -4,      /**< a frame of another framing version */
    PL_ERR_FRAME_HEADER = -5,       /**< the header check does not match */
    PL_ERR_FRAME_TOO_LARGE = -6,    /**< payload length above the negotiated maximum */
    PL_ERR_FRAME_CRC = -7,          /**< payload CRC32 mismatch */
    PL_ERR_MESSAGE = -8,            /**< payload is not a valid protobuf message */
    PL_ERR_CHUNK_ZLIB = -9,         /**< chunk data is not a valid zlib stream */
    PL_ERR_CHUNK_TOO_LARGE = -10,   /**< declared or actual uncompressed size above the limit */
    PL_ERR_CHUNK_SIZE = -11,        /**< uncompressed size differs from the declared size */
    PL_ERR_CHUNK_COUNT = -12,       /**< record count differs from the declared count or limit */
    PL_ERR_CHUNK_FORMAT = -13,      /**< the RecordBatch inside is malformed */
    PL_ERR_CHUNK_RANGE = -14,       /**< a decoded value does not fit its field */
    PL_ERR_CHUNK_SEQ = -15,         /**< first_seq differs between chunk and batch, or overflows */
    PL_ERR_ZLIB = -16,              /**< zlib failed (out of arena memory on the encoder) */
    PL_ERR_CAPTURE = -17,           /**< a capture file (pcapng, pcap) is malformed */
    PL_ERR_CAPTURE_TOO_LARGE = -18, /**< a capture block above the reader's limit */
    PL_ERR_FRAME_SKIPPED = -19,     /**< a frame inside a refused one, not checked: the
                                         receiver's resynchronisation budget is spent */
    PL_ERR__SENTINEL = -20          /**< never used; keeps the list append-only */
} pl_status;

/** A sentence describing @p st; never NULL. */
const char *pl_status_str(int st);

#ifdef __cplusplus
}
#endif
#endif
