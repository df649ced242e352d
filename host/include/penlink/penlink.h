/**
 * @file penlink.h
 * libpenlink: the host side of penlink, the USB toolchain of a microneedling
 * pen's usage log.
 *
 * This is the library's only public header. Every object is an opaque handle
 * created by a `_new` function and released by the matching `_free`. Every
 * function that can fail returns a #penlink_status: #PENLINK_OK (0) or a
 * negative code; penlink_strerror() turns a code into a sentence and
 * penlink_ctx_errmsg() gives the detail of the last failure on a context
 * (offset, field, the pen's own words). The library never prints and never
 * exits.
 *
 * Thread safety: a context and the objects made from it are used by one
 * thread at a time.
 */
#ifndef PENLINK_H
#define PENLINK_H

#include <stddef.h>
#include <stdint.h>

#if defined(PENLINK_BUILDING)
#define PENLINK_API __attribute__((visibility("default")))
#else
#define PENLINK_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes. Append-only: a value never changes meaning. */
typedef enum penlink_status {
    PENLINK_OK = 0,
    PENLINK_ERR_INVALID_ARG = -1, /**< a caller passed an impossible argument */
    PENLINK_ERR_NO_MEM = -2,      /**< out of memory */
    PENLINK_ERR_IO = -3,          /**< reading or writing a file failed (errno in the detail) */
    PENLINK_ERR_PROTOCOL = -4,    /**< bytes that do not follow the penlink protocol */
    PENLINK_ERR_INTEGRITY = -5,   /**< a checksum or a consistency check failed */
    PENLINK_ERR_CANCELLED = -6,   /**< stopped by a callback or penlink_ctx_cancel() */
    PENLINK_ERR_UNSUPPORTED = -7, /**< input of a format or version this build does not know */
    PENLINK_ERR__SENTINEL = -8    /**< never returned; keeps the list append-only */
} penlink_status;

/** A sentence describing @p status ("bytes that do not follow ..."); never NULL. */
PENLINK_API const char *penlink_strerror(int status);

/** Library version as "MAJOR.MINOR.PATCH". */
PENLINK_API const char *penlink_version(void);

/** A library context: holds the last error's detail. */
typedef struct penlink_ctx penlink_ctx;

/** Creates a context in *@p out. @return #PENLINK_OK or #PENLINK_ERR_NO_MEM. */
PENLINK_API int penlink_ctx_new(penlink_ctx **out);
/** Frees a context (NULL is fine). */
PENLINK_API void penlink_ctx_free(penlink_ctx *ctx);
/**
 * Detail of the last failure on @p ctx ("offset 1234: frame payload CRC
 * mismatch"), or "" when there is none. Valid until the next call on @p ctx.
 */
PENLINK_API const char *penlink_ctx_errmsg(const penlink_ctx *ctx);

/** Record kinds (RecordKind in protocol/penlink.proto). */
enum penlink_record_kind {
    PENLINK_REC_POWER_ON = 1,
    PENLINK_REC_POWER_OFF = 2,
    PENLINK_REC_TREATMENT_START = 3,
    PENLINK_REC_TREATMENT_END = 4,
    PENLINK_REC_CARTRIDGE_INSERTED = 5,
    PENLINK_REC_CARTRIDGE_REMOVED = 6,
    PENLINK_REC_CARTRIDGE_REFUSED = 7,
    PENLINK_REC_DEPTH_CHANGED = 8,
    PENLINK_REC_SPEED_CHANGED = 9,
    PENLINK_REC_FAULT = 10,
    PENLINK_REC_CONFIG_CHANGED = 11,
    PENLINK_REC_CLOCK_SET = 12,
    PENLINK_REC_LOG_OVERFLOW = 13
};

/** Field bits of penlink_record.fields (RecordField in penlink.proto). */
enum penlink_record_field {
    PENLINK_F_DEPTH_UM = 1u << 0,
    PENLINK_F_SPEED_SPS = 1u << 1,
    PENLINK_F_DURATION_MS = 1u << 2,
    PENLINK_F_CARTRIDGE_SERIAL = 1u << 3,
    PENLINK_F_CARTRIDGE_USES = 1u << 4,
    PENLINK_F_LIFETIME_CARTRIDGES = 1u << 5,
    PENLINK_F_STROKES = 1u << 6,
    PENLINK_F_FAULT_CODE = 1u << 7,
    PENLINK_F_CONFIG_REVISION = 1u << 8,
    PENLINK_F_CLOCK_DELTA_MS = 1u << 9,
    PENLINK_F_DROPPED = 1u << 10
};

/** Number of field bits of this version. */
#define PENLINK_FIELD_COUNT 11

/** One usage record as logged by the pen. Fields not in @c fields are 0. */
typedef struct penlink_record {
    uint64_t seq;                 /**< sequence number: contiguous, never reused */
    int64_t time_ms;              /**< pen clock, ms since the Unix epoch (UTC) */
    uint32_t kind;                /**< #penlink_record_kind, or a newer kind */
    uint32_t fields;              /**< #penlink_record_field bits present */
    uint32_t depth_um;            /**< needle depth, micrometres */
    uint32_t speed_sps;           /**< needle strokes per second */
    uint32_t duration_ms;         /**< treatment duration */
    uint32_t cartridge_uses;      /**< uses of this cartridge, this one included */
    uint64_t cartridge_serial;    /**< serial read from the cartridge's chip */
    uint32_t lifetime_cartridges; /**< cartridges inserted over the pen's life */
    uint32_t fault_code;          /**< pen-specific fault number */
    uint64_t strokes;             /**< needle strokes during the treatment */
    uint32_t config_revision;     /**< configuration revision now in force */
    uint32_t reserved_;           /**< always 0 */
    int64_t clock_delta_ms;       /**< CLOCK_SET: new time minus old time */
    uint64_t dropped;             /**< LOG_OVERFLOW: records the full log had to drop */
} penlink_record;

/** "treatment_start", ..., or NULL for a kind this version does not know. */
PENLINK_API const char *penlink_record_kind_name(uint32_t kind);
/** Column name of one field bit ("depth_um"), or NULL. */
PENLINK_API const char *penlink_record_field_name(uint32_t field_bit);
/** Value of one field bit, unsigned (clock_delta_ms as two's complement). */
PENLINK_API uint64_t penlink_record_field(const penlink_record *rec, uint32_t field_bit);

/**
 * Called for every decoded record, in order. Return 0 to go on, non-zero
 * to stop (the decode then returns #PENLINK_ERR_CANCELLED).
 */
typedef int (*penlink_record_cb)(void *user, const penlink_record *rec);

/**
 * Called for every protocol message met while decoding a capture of frames
 * (@p name is the Envelope body, e.g. "hello" or "log_chunk"; @p offset the
 * frame's offset in the input). May be NULL.
 */
typedef int (*penlink_message_cb)(void *user, uint64_t offset, uint32_t request_id,
                                  const char *name);

/** Streaming decoder of files and captures. */
typedef struct penlink_decoder penlink_decoder;

/** What a decoder found the input to be. */
typedef enum penlink_input_format {
    PENLINK_INPUT_UNKNOWN = 0, /**< nothing decided yet */
    PENLINK_INPUT_FRAMES = 1,  /**< penlink frames (a capture, or `penlink pull` output) */
    PENLINK_INPUT_CHUNKS = 2   /**< bare chunks: concatenated zlib streams of RecordBatch */
} penlink_input_format;

/**
 * Creates a decoder. The input format is detected from its first bytes.
 * @p on_record is required; @p on_message may be NULL.
 */
PENLINK_API int penlink_decoder_new(penlink_ctx *ctx, penlink_record_cb on_record,
                                    penlink_message_cb on_message, void *user,
                                    penlink_decoder **out);
PENLINK_API void penlink_decoder_free(penlink_decoder *dec);

/**
 * Feeds input bytes in any split. Stops at the first damage: the return is
 * then #PENLINK_ERR_PROTOCOL or #PENLINK_ERR_INTEGRITY and penlink_ctx_errmsg()
 * names the input offset and the problem.
 */
PENLINK_API int penlink_decoder_feed(penlink_decoder *dec, const void *data, size_t len);

/** Ends the input: a truncated last frame or chunk is an error. */
PENLINK_API int penlink_decoder_finish(penlink_decoder *dec);

/** The detected format. */
PENLINK_API penlink_input_format penlink_decoder_format(const penlink_decoder *dec);

/** Totals so far. */
PENLINK_API uint64_t penlink_decoder_records(const penlink_decoder *dec);
PENLINK_API uint64_t penlink_decoder_chunks(const penlink_decoder *dec);

#ifdef __cplusplus
}
#endif
#endif
