/**
 * @file pen_hal.h
 * The pen's hardware abstraction: everything the device core needs from the
 * board, as one struct of function pointers. Porting the core to an MCU means
 * filling this struct; the host simulator (penlink-sim) and the tests fill it
 * with a file- or RAM-backed flash and simulated sensors.
 *
 * Flash has NOR semantics: flash_erase() sets a whole sector to 0xFF,
 * flash_program() can only clear bits (it writes @c old & @c new). The core
 * never programs a byte twice without an erase in between, never relies on
 * read-after-failed-write, and survives the power being cut during any
 * program or erase (a failing call is treated as "power is going away": the
 * core stops and returns ::PEN_ERR_FLASH).
 *
 * All callbacks are called from the thread that calls the pen_* functions;
 * none is called from pen_* functions re-entrantly.
 */
#ifndef PEN_HAL_H
#define PEN_HAL_H

#include <stddef.h>
#include <stdint.h>

#include "pl/record.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Status codes of the device core. Append-only; pen_status_str() names them. */
typedef enum pen_status {
    PEN_OK = 0,
    PEN_REFUSED = 1,       /**< not an error: a cartridge was refused (and logged) */
    PEN_ERR_ARG = -1,      /**< impossible argument */
    PEN_ERR_FLASH = -2,    /**< a flash callback failed (power loss or broken flash) */
    PEN_ERR_GEOMETRY = -3, /**< the flash is too small or its sector size is unusable */
    PEN_ERR_STATE = -4,    /**< the event makes no sense now (e.g. treatment without cartridge) */
    PEN_ERR_HAL = -5,      /**< a non-flash HAL callback failed (sensor, cartridge reader) */
    PEN_ERR_CORRUPT = -6,  /**< flash content fails its CRC where a valid record was expected */
    PEN_ERR_INTERNAL = -7, /**< a bug in the core */
    PEN_ERR_INVALID = -8,  /**< a configuration value is out of range */
    PEN_ERR__SENTINEL = -9 /**< never used; keeps the list append-only */
} pen_status;

/** A sentence describing @p st; never NULL. */
const char *pen_status_str(int st);

/** What the cartridge reader reports about the cartridge in the pen. */
typedef struct pen_cartridge {
    uint64_t serial; /**< serial from the cartridge's chip */
    uint32_t uses;   /**< uses recorded on the chip before this insertion */
} pen_cartridge;

/** What the treatment sensors report. */
typedef struct pen_sensors {
    uint32_t depth_um;  /**< needle depth set on the pen, micrometres */
    uint32_t speed_sps; /**< needle speed set on the pen, strokes per second */
    uint64_t strokes;   /**< motor stroke counter (free running, never reset) */
} pen_sensors;

/** The board interface. Unused optional callbacks may be NULL. */
typedef struct pen_hal {
    void *ctx; /**< passed to every callback */

    /** Erase unit in bytes: a multiple of 8, 512..65536. */
    uint32_t flash_sector_size;
    /** Number of sectors; the core needs at least pen_flash_min_sectors() of them. */
    uint32_t flash_sector_count;
    /** Reads @p len bytes at byte address @p addr. 0 or -1. */
    int (*flash_read)(void *ctx, uint32_t addr, void *buf, uint32_t len);
    /** Programs @p len bytes at @p addr (clears bits only). 0 or -1. */
    int (*flash_program)(void *ctx, uint32_t addr, const void *buf, uint32_t len);
    /** Erases sector @p sector (all bytes become 0xFF). 0 or -1. */
    int (*flash_erase)(void *ctx, uint32_t sector);

    /** Monotonic milliseconds (any origin; never goes back). */
    uint64_t (*mono_ms)(void *ctx);
    /** Real-time clock: milliseconds since the Unix epoch (UTC). */
    int64_t (*rtc_get_ms)(void *ctx);
    /** Sets the real-time clock. 0 or -1. */
    int (*rtc_set_ms)(void *ctx, int64_t ms);

    /**
     * Queues @p len bytes (always exactly one frame) on the bulk IN endpoint.
     * Returns 0, or -1 when the host is gone (the core then drops the pull in
     * progress). A USB HAL ends the transfer with a zero-length packet when
     * @p len is a multiple of the endpoint's packet size.
     */
    int (*usb_send)(void *ctx, const uint8_t *data, size_t len);

    /** Reads the inserted cartridge's chip. 0, or -1 when none can be read. */
    int (*cartridge_read)(void *ctx, pen_cartridge *out);
    /** Optional: writes the new use count to the cartridge's chip. 0 or -1. */
    int (*cartridge_write_uses)(void *ctx, uint32_t uses);
    /** Reads the depth and speed settings and the stroke counter. 0 or -1. */
    int (*sensors_read)(void *ctx, pen_sensors *out);

    /**
     * Optional: called after a record has been committed to flash (its seq
     * assigned, its CRC-protected copy durable). The simulator writes its
     * ground truth from here; firmware leaves it NULL.
     */
    void (*record_logged)(void *ctx, const pl_record *r);

    /*
     * Trust (docs/security.md). The device key never leaves the HAL: on a
     * real pen it lives in a secure element (Ed25519 capable, with a SHA-256
     * engine and a random source), the simulator keeps it in its state
     * directory. A pen whose HAL leaves these NULL has no identity: it
     * neither signs its log nor checks signatures on configuration.
     */
    /** Optional: the device's Ed25519 public key. 0 or -1. */
    int (*device_key)(void *ctx, uint8_t pk[32]);
    /** Optional: Ed25519 signature by the device key over @p msg. 0 or -1. */
    int (*sign)(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64]);
    /** Optional: 0 when @p sig is @p pk's Ed25519 signature over @p msg, else -1. */
    int (*verify)(void *ctx, const uint8_t sig[64], const uint8_t *msg, size_t len,
                  const uint8_t pk[32]);
    /** Optional: SHA-256 of @p a then @p b (either may be empty). 0 or -1. */
    int (*sha256)(void *ctx, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                  uint8_t out[32]);
    /** Optional: @p len bytes from a cryptographic random source. 0 or -1. */
    int (*random)(void *ctx, uint8_t *buf, size_t len);
    /**
     * Ed25519 public keys allowed to sign configuration, provisioned at the
     * factory. With none, configuration needs no signature (a development
     * pen); with one or more, every SetConfig must be signed by one of them.
     */
    const uint8_t (*config_keys)[32];
    uint32_t config_key_count;

    /**
     * Optional: make the pen signal itself for @p seconds (blink its LED,
     * beep), so that a person can tell which pen on a desk is which; 0 stops
     * a signal going on. Returns at once (the board times the signal). 0 or
     * -1. A pen whose HAL leaves it NULL does not announce Identify.
     */
    int (*identify)(void *ctx, uint32_t seconds);
} pen_hal;

#ifdef __cplusplus
}
#endif
#endif
