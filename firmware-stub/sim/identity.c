/*
 * The simulated pen's identity, as a factory would provision it: an Ed25519
 * device key pair, made once per state directory (device.key, 0600), and
 * the config-signing public keys it trusts (config-keys, one per line in
 * hex), fixed when the state is created. Both files are written whole and
 * renamed into place (state_dir.h): a kill never leaves half a key. The
 * crypto HAL is libsodium; a real pen has a secure element behind the same
 * callbacks.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "identity.h"
#include "state_dir.h"

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Exactly 64 hex digits into 32 bytes. */
static int parse_key_hex(const char *s, size_t n, uint8_t out[32])
{
    if (n != 64)
        return -1;
    for (size_t i = 0; i < 32; i++) {
        int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int sim_parse_public_key(const char *arg, uint8_t out[32])
{
    if (parse_key_hex(arg, strlen(arg), out) == 0)
        return 0;
    /* a file: the key is the last word of its first line
     * ("penlink-public-key ed25519 HEX", as penlink keys generate writes it) */
    FILE *f = fopen(arg, "r");
    if (!f)
        return -1;
    char line[256];
    int rc = -1;
    if (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        line[n] = '\0';
        char *last = strrchr(line, ' ');
        last = last ? last + 1 : line;
        rc = parse_key_hex(last, strlen(last), out);
    }
    fclose(f);
    return rc;
}

static int hal_device_key(void *ctx, uint8_t pk[32])
{
    sim_identity *id = sim_identity_of(ctx);
    memcpy(pk, id->sk + 32, 32);
    return 0;
}

static int hal_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
    sim_identity *id = sim_identity_of(ctx);
    if (id->sign_with_other_key) { /* a planted fault: a pen signing with a key it does not own */
        uint8_t pk[32], sk[64];
        crypto_sign_seed_keypair(pk, sk, (const uint8_t *)"penlink-sim: a key nobody pinned");
        return crypto_sign_detached(sig, NULL, msg, len, sk);
    }
    return crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

int sim_crypto_verify(void *ctx, const uint8_t sig[64], const uint8_t *msg, size_t len,
                      const uint8_t pk[32])
{
    (void)ctx;
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}

int sim_crypto_sha256(void *ctx, const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
                      uint8_t out[32])
{
    crypto_hash_sha256_state st;
    (void)ctx;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, a, alen);
    crypto_hash_sha256_update(&st, b, blen);
    crypto_hash_sha256_final(&st, out);
    return 0;
}

static int hal_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    randombytes_buf(buf, len);
    return 0;
}

static int load_or_make_key(const char *path, uint8_t sk[64], char *err, size_t errcap)
{
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, sk, 64);
        close(fd);
        uint8_t pk[32], check[64];
        if (n == 64) {
            crypto_sign_seed_keypair(pk, check, sk); /* the first half is the seed */
            if (sodium_memcmp(check, sk, 64) == 0)
                return 0;
        }
        snprintf(err, errcap, "%s: not a device key (64 bytes: seed and public key)", path);
        return -1;
    }
    if (errno != ENOENT) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t pk[32];
    crypto_sign_keypair(pk, sk);
    if (sd_write_atomic(path, sk, 64, 0600) != 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static int load_config_keys(sim_identity *id, const char *path, char *err, size_t errcap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[128];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\r\n");
        if (n == 0)
            continue;
        if (id->n_keys >= SIM_CONFIG_KEYS_MAX || parse_key_hex(line, n, id->keys[id->n_keys])) {
            snprintf(err, errcap, "%s: a line that is not a 64-digit hex key, or too many keys",
                     path);
            rc = -1;
            break;
        }
        id->n_keys++;
    }
    fclose(f);
    return rc;
}

/* config-keys of a new state; none: no file (one left by a creation that a
 * kill interrupted goes too). */
static int save_config_keys(const sim_identity *id, const char *path, char *err, size_t errcap)
{
    char text[SIM_CONFIG_KEYS_MAX * (2 * 32 + 1)];
    size_t n = 0;
    if (id->n_keys == 0) {
        if (unlink(path) == 0 || errno == ENOENT)
            return 0;
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (uint32_t k = 0; k < id->n_keys; k++) {
        for (int i = 0; i < 32; i++)
            n += (size_t)snprintf(text + n, sizeof text - n, "%02x", id->keys[k][i]);
        text[n++] = '\n';
    }
    if (sd_write_atomic(path, text, n, 0644) != 0) {
        snprintf(err, errcap, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int sim_identity_open(sim_identity *id, const char *dir, bool new_state, const uint8_t (*keys)[32],
                      uint32_t n_keys, char *err, size_t errcap)
{
    char path[600];
    memset(id, 0, sizeof *id);
    if (sodium_init() < 0) {
        snprintf(err, errcap, "libsodium failed to initialise");
        return -1;
    }
    snprintf(path, sizeof path, "%s/device.key", dir);
    if (load_or_make_key(path, id->sk, err, errcap) != 0)
        return -1;
    snprintf(path, sizeof path, "%s/config-keys", dir);
    if (new_state) {
        if (n_keys > SIM_CONFIG_KEYS_MAX) {
            snprintf(err, errcap, "at most %u config keys", SIM_CONFIG_KEYS_MAX);
            return -1;
        }
        if (n_keys)
            memcpy(id->keys, keys, n_keys * sizeof id->keys[0]);
        id->n_keys = n_keys;
        return save_config_keys(id, path, err, errcap);
    }
    if (load_config_keys(id, path, err, errcap) != 0)
        return -1;
    if (n_keys && (n_keys != id->n_keys || memcmp(keys, id->keys, n_keys * 32) != 0)) {
        snprintf(err, errcap,
                 "%s was provisioned with other config keys (they are fixed when the state "
                 "is made)",
                 dir);
        return -2;
    }
    return 0;
}

void sim_identity_hal(sim_identity *id, pen_hal *hal)
{
    hal->device_key = hal_device_key;
    hal->sign = hal_sign;
    hal->verify = sim_crypto_verify;
    hal->sha256 = sim_crypto_sha256;
    hal->random = hal_random;
    hal->config_keys = (const uint8_t(*)[32])id->keys;
    hal->config_key_count = id->n_keys;
}
