/**
 * @file pen.h
 * The pen's device core: what firmware (or the simulator) calls.
 *
 * The core is portable C11. It keeps all its state in one ::pen object that
 * the caller provides (static memory on an MCU), allocates nothing, and
 * reaches the hardware only through the ::pen_hal callbacks (pen_hal.h).
 *
 * Life cycle:
 *   1. pen_init() at boot: scans the flash, finishes anything a power cut
 *      interrupted, loads the configuration.
 *   2. The usage entry points (pen_power_on(), pen_cartridge_inserted(), ...)
 *      when something happens: the core decides and logs a record for each.
 *   3. pen_usb_rx() with the bytes that arrive on the bulk OUT endpoint, in
 *      any split; the core answers through pen_hal::usb_send(), one complete
 *      frame per call.
 *   4. pen_poll() from the main loop: streams the chunks of a pull, one frame
 *      per call, and compresses a full staging batch. It returns nonzero while
 *      it has more to do.
 *
 * The byte pipe: the host writes frames (protocol/include/pl/frame.h, one
 * penlink.v1.Envelope each) and the pen answers on the same pipe; nothing
 * else is exchanged. The same pipe runs over USB bulk endpoints and over the
 * simulator's Unix socket. pen_usb_reset() is a USB bus reset or a new
 * connection: the session ends and a partial frame is forgotten.
 *
 * Not re-entrant: call every function from one thread (the main loop), never
 * from an interrupt handler; a USB interrupt should queue bytes for the main
 * loop to hand to pen_usb_rx().
 */
#ifndef PEN_H
#define PEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config_store.h"
#include "logstore.h"
#include "pen_hal.h"
#include "pl/chunk.h"
#include "pl/envelope.h"
#include "pl/frame.h"
#include "pl/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Protocol version this core speaks. */
#define PEN_PROTOCOL_MAJOR 1u
#define PEN_PROTOCOL_MINOR 1u
/** Largest frame payload the pen accepts (HelloReply.max_frame_payload). */
#define PEN_RX_MAX_PAYLOAD 2048u
/** Arena for unpacking one request (protobuf-c allocations). */
#define PEN_ARENA_SIZE 3072u
/** LogChunk frames a PullLog gets when it asks for 0 (and the most it can ask for),
 *  unless pen_opts::pull_max_chunks sets fewer. */
#define PEN_PULL_MAX_CHUNKS 32u
/** Longest serial number, bytes. */
#define PEN_SERIAL_MAX PL_SERIAL_MAX
/** Model, hardware and firmware strings, bytes. */
#define PEN_IDENT_MAX PL_IDENT_MAX
/** Config-signing keys a pen takes from its HAL (more are ignored). */
#define PEN_CONFIG_KEYS_MAX PL_CONFIG_KEYS_MAX
/** Identify: seconds of signal when the request names none, and the most it grants. */
#define PEN_IDENTIFY_DEFAULT_S PL_IDENTIFY_DEFAULT_S
#define PEN_IDENTIFY_MAX_S PL_IDENTIFY_MAX_S

/** Options for pen_init(). Start from pen_opts_default(). */
typedef struct pen_opts {
    const char *serial;            /**< the pen's serial number (copied) */
    const char *model;             /**< DeviceInfo.model */
    const char *hardware_revision; /**< DeviceInfo.hardware_revision */
    const char *firmware_version;  /**< DeviceInfo.firmware_version */
    uint32_t protocol_major;       /**< major version to speak; another value than
                                        PEN_PROTOCOL_MAJOR exists for tests */
    uint32_t batch_records;        /**< records per staging batch, 1..PL_CHUNK_BATCH */
    uint32_t pull_max_chunks;      /**< most LogChunks the pen sends per PullLog,
                                        1..PEN_PULL_MAX_CHUNKS; 0: PEN_PULL_MAX_CHUNKS */
} pen_opts;

/** Fills @p o with the defaults: serial "PL0000000", batch PL_CHUNK_BATCH. */
void pen_opts_default(pen_opts *o);

/** Smallest pen_hal::flash_sector_count that pen_init() accepts. */
uint32_t pen_flash_min_sectors(uint32_t sector_size, uint32_t batch_records);

/** Counters the host tools and tests read (pen_get_info()). */
typedef struct pen_info {
    uint64_t log_first_seq; /**< oldest record served */
    uint64_t log_next_seq;  /**< seq of the next record */
    uint64_t log_acked_seq; /**< every seq below was acknowledged */
    uint64_t log_ring_end;  /**< records from here on are still staged */
    uint64_t log_capacity_bytes;
    uint64_t log_used_bytes;
    uint32_t config_revision;
    uint32_t lifetime_cartridges;
    bool session_ready; /**< a host completed Hello */
    bool pull_active;
    pen_log_stats log; /**< store counters since boot */
    uint64_t frames_in, frames_out, frame_errors;
} pen_info;

/** The pen. Allocate it (statically on an MCU); treat the members as private. */
typedef struct pen {
    const pen_hal *hal;
    pen_log log;
    pen_cfgstore cfg;
    pen_limits limits;
    char serial[PEN_SERIAL_MAX + 1];
    char model[PEN_IDENT_MAX + 1];
    char hw_rev[PEN_IDENT_MAX + 1];
    char fw_ver[PEN_IDENT_MAX + 1];
    uint32_t proto_major;
    uint64_t boot_mono_ms;

    /* trust */
    bool has_key;          /**< the HAL gave a device key: the log is signed */
    uint8_t device_pk[32]; /**< its public half */
    bool nonce_valid;      /**< a GetNonce answer not yet used by a SetConfig */
    uint8_t nonce[32];

    /* session */
    bool ready;
    uint32_t tx_max;   /**< host's max payload */
    uint32_t pull_max; /**< most chunks per PullLog reply (pen_opts::pull_max_chunks) */
    struct {
        bool active;
        uint32_t request_id;
        uint64_t cursor;
        uint32_t left;
        pen_log_pos hint;
        uint8_t link[32]; /**< chain link of the last chunk sent (the log's head before any) */
    } pull;

    /* usage */
    bool cart_ok;
    uint64_t cart_serial;
    bool treating;
    uint64_t treat_start_ms, treat_start_strokes;
    bool compact_failed;

    uint64_t frames_in, frames_out, frame_errors;

    /* memory */
    bool arena_failed;
    ProtobufCAllocator alloc;
    pl_arena arena;
    pl_frame_decoder rx;
    pl_chunk_enc enc;
    _Alignas(16) uint8_t enc_arena[PL_CHUNK_ENC_ARENA + 16];
    _Alignas(8) uint8_t arena_buf[PEN_ARENA_SIZE];
    uint8_t rx_buf[PL_FRAME_HEADER_SIZE + PEN_RX_MAX_PAYLOAD];
    uint8_t tx_buf[PL_FRAME_HEADER_SIZE + PL_FRAME_MIN_PAYLOAD];
    uint8_t chunk_buf[PEN_CHUNK_DATA_MAX];
} pen;

/**
 * Boots the core over @p hal (which must outlive @p p): scans and repairs the
 * flash, loads the configuration. @p opts may be NULL (defaults).
 * @return PEN_OK; PEN_ERR_ARG when the HAL lacks a callback or an option is out
 *         of range; PEN_ERR_GEOMETRY when the flash is too small;
 *         PEN_ERR_FLASH when a flash callback failed.
 */
pen_status pen_init(pen *p, const pen_hal *hal, const pen_opts *opts);

/** Releases the compressor (no memory is freed: the caller owns @p p). */
void pen_fini(pen *p);

/**
 * Hands the core bytes received on the bulk OUT endpoint (any split, any
 * garbage). Every complete frame is answered before this returns; a damaged
 * stretch is answered with one Error (request_id 0) and skipped.
 */
void pen_usb_rx(pen *p, const uint8_t *data, size_t len);

/** Bus reset, unplug or a new host connection: ends the session and any pull. */
void pen_usb_reset(pen *p);

/**
 * Does pending work: sends the next frame of a pull, or compresses staged
 * records when a batch is full.
 * @return 1 while more work is pending (call again), 0 when idle.
 */
int pen_poll(pen *p);

/** The pen was switched on (logs POWER_ON). */
pen_status pen_power_on(pen *p);
/** The pen is being switched off (ends a treatment, logs POWER_OFF). */
pen_status pen_power_off(pen *p);
/**
 * A cartridge was inserted: reads it; when its use count has reached
 * max_cartridge_uses logs CARTRIDGE_REFUSED and returns PEN_REFUSED,
 * otherwise counts the use (on the chip and in lifetime_cartridges) and logs
 * CARTRIDGE_INSERTED.
 */
pen_status pen_cartridge_inserted(pen *p);
/** The cartridge was removed (ends a treatment, logs CARTRIDGE_REMOVED). */
pen_status pen_cartridge_removed(pen *p);
/** The needle started: needs an accepted cartridge; logs TREATMENT_START. */
pen_status pen_treatment_start(pen *p);
/** The needle stopped: logs TREATMENT_END with duration and strokes. */
pen_status pen_treatment_end(pen *p);
/** The depth setting changed: logs DEPTH_CHANGED (clamped to the configured range). */
pen_status pen_depth_changed(pen *p);
/** The speed setting changed: logs SPEED_CHANGED (clamped to the configured range). */
pen_status pen_speed_changed(pen *p);
/** A fault was detected: logs FAULT with @p code. */
pen_status pen_fault(pen *p, uint32_t code);

/** The configuration in force. */
const pen_config *pen_get_config(const pen *p);

/**
 * Changes the configuration locally (a service menu, the simulator): the
 * same validation and compare-and-set as SetConfig. @p expected_revision 0
 * skips the compare. On success logs CONFIG_CHANGED.
 * @return PEN_OK; PEN_ERR_INVALID with *@p err filled (may be NULL);
 *         PEN_ERR_STATE on a revision conflict; PEN_ERR_FLASH.
 */
pen_status pen_set_config(pen *p, uint32_t expected_revision, const pen_config_change *chg,
                          pen_cfg_error *err);

/** Fills @p out with the pen's counters (scans chunk headers for the used bytes). */
pen_status pen_get_info(pen *p, pen_info *out);

#ifdef __cplusplus
}
#endif
#endif
