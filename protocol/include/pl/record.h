/**
 * @file pl/record.h
 * The usage record: one event on the pen, with a sequence number that is
 * never reused. Which fields a kind uses is fixed by pl_record_kind_fields()
 * for the kinds this version knows; a chunk carries its own layout table, so
 * records of kinds added later still decode (with their field mask).
 */
#ifndef PL_RECORD_H
#define PL_RECORD_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Record kinds (RecordKind in penlink.proto). Append-only. */
enum pl_record_kind {
    PL_REC_POWER_ON = 1,
    PL_REC_POWER_OFF = 2,
    PL_REC_TREATMENT_START = 3,
    PL_REC_TREATMENT_END = 4,
    PL_REC_CARTRIDGE_INSERTED = 5,
    PL_REC_CARTRIDGE_REMOVED = 6,
    PL_REC_CARTRIDGE_REFUSED = 7,
    PL_REC_DEPTH_CHANGED = 8,
    PL_REC_SPEED_CHANGED = 9,
    PL_REC_FAULT = 10,
    PL_REC_CONFIG_CHANGED = 11,
    PL_REC_CLOCK_SET = 12,
    PL_REC_LOG_OVERFLOW = 13,
    PL_REC_SECURITY_EVENT = 14, /**< a refused SetConfig; fault_code = the ErrorCode */
    PL_REC_KIND_MAX = 14        /**< highest kind this version knows */
};

/** Field bits (RecordField in penlink.proto), also the column order. */
enum pl_record_field {
    PL_F_DEPTH_UM = 1u << 0,
    PL_F_SPEED_SPS = 1u << 1,
    PL_F_DURATION_MS = 1u << 2,
    PL_F_CARTRIDGE_SERIAL = 1u << 3,
    PL_F_CARTRIDGE_USES = 1u << 4,
    PL_F_LIFETIME_CARTRIDGES = 1u << 5,
    PL_F_STROKES = 1u << 6,
    PL_F_FAULT_CODE = 1u << 7,
    PL_F_CONFIG_REVISION = 1u << 8,
    PL_F_CLOCK_DELTA_MS = 1u << 9,
    PL_F_DROPPED = 1u << 10,
    PL_F_ALL = (1u << 11) - 1
};

#define PL_FIELD_COUNT 11

/** One usage record. Fields the kind does not use are zero. */
typedef struct pl_record {
    uint64_t seq;                 /**< never reused, contiguous */
    int64_t time_ms;              /**< device clock, ms since the Unix epoch (UTC) */
    uint32_t kind;                /**< enum pl_record_kind (or a newer kind) */
    uint32_t fields;              /**< PL_F_* bits this record carries */
    uint32_t depth_um;            /**< needle depth, micrometres */
    uint32_t speed_sps;           /**< needle strokes per second */
    uint32_t duration_ms;         /**< treatment duration */
    uint32_t cartridge_uses;      /**< uses of this cartridge, this one included */
    uint64_t cartridge_serial;    /**< serial read from the cartridge chip */
    uint32_t lifetime_cartridges; /**< cartridges inserted over the pen's life */
    uint32_t fault_code;
    uint64_t strokes; /**< needle strokes during the treatment */
    uint32_t config_revision;
    uint32_t reserved_;     /**< padding, always 0 */
    int64_t clock_delta_ms; /**< CLOCK_SET: new time minus old time */
    uint64_t dropped;       /**< LOG_OVERFLOW: records lost to the full ring */
} pl_record;

/** Fields a kind of this version uses; 0 for unknown kinds. */
uint32_t pl_record_kind_fields(uint32_t kind);

/** Lower-case name ("treatment_start"), or NULL for a kind this version does not know. */
const char *pl_record_kind_name(uint32_t kind);

/** Kind for a name given by pl_record_kind_name(), or 0. */
uint32_t pl_record_kind_from_name(const char *name);

/** Column name of one PL_F_* bit ("depth_um"), or NULL. */
const char *pl_record_field_name(uint32_t field_bit);

/** Value of one field as unsigned 64-bit (signed fields two's complement). */
uint64_t pl_record_get(const pl_record *r, uint32_t field_bit);

/**
 * Sets one field; returns 0, or -1 when @p v does not fit (unsigned 32-bit fields).
 * Signed fields take the two's complement of @p v.
 */
int pl_record_set(pl_record *r, uint32_t field_bit, uint64_t v);

/** 1 when two records are equal in every field the wire carries. */
int pl_record_equal(const pl_record *a, const pl_record *b);

#ifdef __cplusplus
}
#endif
#endif
