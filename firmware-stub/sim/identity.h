/* The simulated pen's identity (identity.c): device key and config keys. */
#ifndef PENLINK_SIM_IDENTITY_H
#define PENLINK_SIM_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pen_hal.h"

#define SIM_CONFIG_KEYS_MAX 4u

typedef struct sim_identity {
    uint8_t sk[64]; /**< libsodium Ed25519 secret key: seed, then public key */
    uint8_t keys[SIM_CONFIG_KEYS_MAX][32];
    uint32_t n_keys;
    bool sign_with_other_key; /**< planted fault for tests */
} sim_identity;

/** A public key from 64 hex digits, or from a file whose first line ends with them. 0 or -1. */
int sim_parse_public_key(const char *arg, uint8_t out[32]);

/**
 * Loads the state's device key (making one for a new state) and its config
 * keys; @p keys (from the command line) provision a new state and must
 * match an existing one. 0; -1 an error; -2 keys contradicting the state.
 */
int sim_identity_open(sim_identity *id, const char *dir, bool new_state, const uint8_t (*keys)[32],
                      uint32_t n_keys, char *err, size_t errcap);

/** Points @p hal's crypto callbacks at @p id; they find it with sim_identity_of(). */
void sim_identity_hal(sim_identity *id, pen_hal *hal);

/** The HAL's verify and sha256 with libsodium (no state; also for test rigs). */
int sim_crypto_verify(void *ctx, const uint8_t sig[64], const uint8_t *msg, size_t len,
                      const uint8_t pk[32]);
int sim_crypto_sha256(void *ctx, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                      uint8_t out[32]);

/** The identity behind a HAL ctx (the simulator provides this). */
sim_identity *sim_identity_of(void *hal_ctx);

#endif
