/**
 * @file pl/auth.h
 * The bytes that penlink signs and hashes, byte by byte as docs/protocol.md
 * specifies them. No cryptography here: the pen hands these bytes to its
 * crypto HAL, the host to libsodium. Integers are little-endian; strings are
 * a one-byte length and their bytes.
 *
 *  - Signed configuration: "penlink-config-v1", the pen's serial, the
 *    expected revision (u32), the pen's nonce (32 bytes), then each Config
 *    field present in the SetConfig, by ascending field number: the field
 *    number (u8) and its value (u32, or a string).
 *  - Chain link of a chunk: SHA-256 of "penlink-chain-v1", the previous link
 *    (32 bytes), first_seq (u64), record_count, raw_size and the data length
 *    (u32 each), then the chunk's data. The link before a pen's first chunk
 *    is SHA-256 of "penlink-genesis-v1" and the serial.
 *  - Signed head: "penlink-head-v1", the serial, next_seq (u64) and the link
 *    of the last chunk sent.
 *  - Signed clock: "penlink-clock-v1", the pen's serial, the pen's nonce (32
 *    bytes) and the time to set (i64, ms since the epoch).
 */
#ifndef PL_AUTH_H
#define PL_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "penlink.pb-c.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PL_KEY_BYTES 32u   /**< Ed25519 public key */
#define PL_SIG_BYTES 64u   /**< Ed25519 signature */
#define PL_NONCE_BYTES 32u /**< a pen's config nonce */
#define PL_LINK_BYTES 32u  /**< SHA-256 chain link */
#define PL_SERIAL_MAX 32u  /**< longest serial the signed forms take */

/** Longest signed configuration: header, serial, revision, nonce, every field. */
#define PL_AUTH_CONFIG_MAX (17u + 1u + PL_SERIAL_MAX + 4u + PL_NONCE_BYTES + 8u * 5u + 2u * 257u)
/** Bytes hashed before a chunk's data (pl_auth_link_prefix). */
#define PL_AUTH_LINK_PREFIX 68u
/** Longest signed head. */
#define PL_AUTH_HEAD_MAX (15u + 1u + PL_SERIAL_MAX + 8u + PL_LINK_BYTES)
/** Genesis input: "penlink-genesis-v1" and the serial. */
#define PL_AUTH_GENESIS_MAX (18u + 1u + PL_SERIAL_MAX)
/** Longest signed SetClock: header, serial, nonce, time. */
#define PL_AUTH_CLOCK_MAX (16u + 1u + PL_SERIAL_MAX + PL_NONCE_BYTES + 8u)

/**
 * Added to a security_event record's fault_code (the ErrorCode of the
 * refusal) when the refused request was a SetClock, not a SetConfig.
 */
#define PL_SECURITY_CLOCK 0x100u

/**
 * The signed bytes of a SetConfig for pen @p serial.
 * @return their length, or 0 when @p cap is too small or @p serial too long.
 */
size_t pl_auth_config_bytes(uint8_t *out, size_t cap, const char *serial,
                            uint32_t expected_revision, const uint8_t nonce[PL_NONCE_BYTES],
                            const Penlink__V1__Config *c);

/** The bytes hashed before a chunk's data for its link: always PL_AUTH_LINK_PREFIX. */
size_t pl_auth_link_prefix(uint8_t out[PL_AUTH_LINK_PREFIX], const uint8_t prev[PL_LINK_BYTES],
                           uint64_t first_seq, uint32_t record_count, uint32_t raw_size,
                           uint32_t data_len);

/** The bytes whose SHA-256 is the link before the first chunk; 0 if the serial is too long. */
size_t pl_auth_genesis_bytes(uint8_t out[PL_AUTH_GENESIS_MAX], const char *serial);

/** The signed bytes of a chain head; 0 if the serial is too long. */
size_t pl_auth_head_bytes(uint8_t out[PL_AUTH_HEAD_MAX], const char *serial, uint64_t next_seq,
                          const uint8_t link[PL_LINK_BYTES]);

/** The signed bytes of a SetClock for pen @p serial; 0 if the serial is too long. */
size_t pl_auth_clock_bytes(uint8_t out[PL_AUTH_CLOCK_MAX], const char *serial,
                           const uint8_t nonce[PL_NONCE_BYTES], int64_t time_ms);

#ifdef __cplusplus
}
#endif
#endif
