/*
 * Technician keys: Ed25519 key pairs (libsodium) that sign configuration.
 * Files are one line of text, so they can be read and copied by hand:
 *
 *   secret (0600):  penlink-secret-key ed25519 <128 hex digits: seed, public key>
 *   public (.pub):  penlink-public-key ed25519 <64 hex digits>
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "fs.h"
#include "internal.h"

#define SECRET_TAG "penlink-secret-key ed25519 "
#define PUBLIC_TAG "penlink-public-key ed25519 "
#define KEY_DIR_MODE 0700 /* directories made for a key file: its owner's only */

static int sodium_ready(penlink_ctx *ctx)
{
    if (sodium_init() < 0)
        return penlink_fail(ctx, PENLINK_ERR_UNSUPPORTED, "libsodium failed to initialise");
    return PENLINK_OK;
}

void penlink_key_to_hex(const uint8_t pk[32], char hex[65])
{
    sodium_bin2hex(hex, 65, pk, 32);
}

/* Writes one line to a new file (never over an existing one). */
static int write_new(penlink_ctx *ctx, const char *path, mode_t mode, const char *tag,
                     const uint8_t *bytes, size_t n)
{
    char hex[2 * 64 + 1];
    sodium_bin2hex(hex, sizeof hex, bytes, n);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return penlink_fail(ctx, PENLINK_ERR_IO, "%s: %s%s", path, strerror(errno),
                            errno == EEXIST ? " (a key is never overwritten: choose another "
                                              "file, or remove this one yourself)"
                                            : "");
    char line[sizeof SECRET_TAG + sizeof hex + 1];
    int len = snprintf(line, sizeof line, "%s%s\n", tag, hex);
    int ok = write(fd, line, (size_t)len) == len && fsync(fd) == 0;
    int err = errno;
    sodium_memzero(line, sizeof line);
    sodium_memzero(hex, sizeof hex);
    if (close(fd) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        unlink(path);
        return penlink_fail(ctx, PENLINK_ERR_IO, "%s: %s", path, strerror(err));
    }
    return PENLINK_OK;
}

int penlink_key_generate(penlink_ctx *ctx, const char *path, penlink_key *out)
{
    penlink_enter(ctx);
    char pub[1024];
    penlink_key k = PENLINK_KEY_INIT;
    if (!path || snprintf(pub, sizeof pub, "%s.pub", path) >= (int)sizeof pub)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "no key file name, or one too long");
    if (!PL_SIZED_OK(out, PL_KEY_SIZE_V1))
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "the key has no size (PENLINK_KEY_INIT)");
    int rc = sodium_ready(ctx);
    if (rc != PENLINK_OK)
        return rc;
    crypto_sign_keypair(k.public_key, k.secret);
    struct stat sb;
    if (stat(pub, &sb) == 0)
        return penlink_fail(ctx, PENLINK_ERR_IO,
                            "%s exists (a key is never overwritten: choose another file)", pub);
    char dir[PATH_MAX];
    if (pc_mkdir_parents(path, KEY_DIR_MODE, dir, sizeof dir) != 0)
        return penlink_fail(ctx, PENLINK_ERR_IO, "cannot create %s: %s", dir, strerror(errno));
    rc = write_new(ctx, path, 0600, SECRET_TAG, k.secret, sizeof k.secret);
    if (rc == PENLINK_OK) {
        rc = write_new(ctx, pub, 0644, PUBLIC_TAG, k.public_key, sizeof k.public_key);
        if (rc != PENLINK_OK)
            unlink(path);
    }
    if (rc == PENLINK_OK && out)
        pl_sized_copy(out, &k, sizeof k);
    sodium_memzero(&k, sizeof k);
    return rc;
}

/* The first line of a key file (a regular file), NUL-terminated, and its mode. */
static int read_key_line(penlink_ctx *ctx, const char *path, char line[256], mode_t *mode)
{
    int rc = sodium_ready(ctx);
    if (rc != PENLINK_OK)
        return rc;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return penlink_fail(ctx, PENLINK_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    ssize_t n = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        n = read(fd, line, 255);
    close(fd);
    if (n < 0)
        return penlink_fail(ctx, PENLINK_ERR_IO, "%s: not a readable file", path);
    line[n] = '\0';
    *mode = sb.st_mode;
    return PENLINK_OK;
}

int penlink_key_load_public(penlink_ctx *ctx, const char *path, uint8_t pk[32])
{
    penlink_enter(ctx);
    if (!path || !pk)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "no key file given");
    char line[256];
    mode_t mode;
    int rc = read_key_line(ctx, path, line, &mode);
    if (rc != PENLINK_OK)
        return rc;
    size_t tag = strlen(PUBLIC_TAG), bin = 0;
    if (strncmp(line, PUBLIC_TAG, tag) != 0) { /* a secret key file holds it too */
        penlink_key k = PENLINK_KEY_INIT;
        rc = penlink_key_load(ctx, path, &k);
        if (rc == PENLINK_OK)
            memcpy(pk, k.public_key, 32);
        sodium_memzero(&k, sizeof k);
        return rc;
    }
    if (strcspn(line + tag, "\r\n") != 64 ||
        sodium_hex2bin(pk, 32, line + tag, 64, NULL, &bin, NULL) != 0 || bin != 32)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "%s is damaged: not 64 hex digits after its tag", path);
    return PENLINK_OK;
}

int penlink_key_load(penlink_ctx *ctx, const char *path, penlink_key *out)
{
    penlink_enter(ctx);
    if (!path || !out)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "no key file given");
    if (out->size < PL_KEY_SIZE_V1)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "the key has no size (PENLINK_KEY_INIT)");
    char line[256];
    mode_t mode;
    int rc = read_key_line(ctx, path, line, &mode);
    if (rc != PENLINK_OK)
        return rc;
    rc = PENLINK_OK;
    size_t tag = strlen(SECRET_TAG), bin = 0;
    if (strncmp(line, PUBLIC_TAG, tag) == 0)
        rc = penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                          "%s is a public key; signing needs the secret key file (the one "
                          "without .pub)",
                          path);
    else if (strncmp(line, SECRET_TAG, tag) != 0 || strcspn(line + tag, "\r\n") != 128 ||
             sodium_hex2bin(out->secret, sizeof out->secret, line + tag, 128, NULL, &bin, NULL) !=
                 0 ||
             bin != sizeof out->secret)
        rc = penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                          "%s is not a penlink key file (penlink keys generate writes them)", path);
    else if (mode & 077)
        rc = penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                          "%s can be read by others (mode %03o): a secret key must be private; "
                          "chmod 600 it, and make a new key if others may have read it",
                          path, (unsigned)(mode & 0777));
    sodium_memzero(line, sizeof line);
    if (rc != PENLINK_OK)
        return rc;
    /* the public half must be the one the seed makes */
    uint8_t pk[32], sk[64];
    crypto_sign_seed_keypair(pk, sk, out->secret);
    int same = sodium_memcmp(sk, out->secret, sizeof sk) == 0;
    sodium_memzero(sk, sizeof sk);
    if (!same)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "%s is damaged: its public half does not match its seed", path);
    memcpy(out->public_key, pk, sizeof pk);
    return PENLINK_OK;
}

int penlink_sign(const penlink_key *key, const uint8_t *msg, size_t len, uint8_t sig[64])
{
    return crypto_sign_detached(sig, NULL, msg, len, key->secret) == 0 ? 0 : -1;
}

int penlink_verify(const uint8_t sig[64], const uint8_t *msg, size_t len, const uint8_t pk[32])
{
    return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -1;
}

void penlink_sha256(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, uint8_t out[32])
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, a, alen);
    crypto_hash_sha256_update(&st, b, blen);
    crypto_hash_sha256_final(&st, out);
}

void penlink_key_to_fingerprint(const uint8_t pk[32], char out[PENLINK_KEY_FINGERPRINT_LEN])
{
    static const char digits[] = "0123456789abcdef";
    enum { FP_BYTES = 8, GROUP = 2 };
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, pk, 32);
    size_t n = 0;
    for (int i = 0; i < FP_BYTES; i++) {
        if (i && i % GROUP == 0)
            out[n++] = ':';
        out[n++] = digits[h[i] >> 4];
        out[n++] = digits[h[i] & 15];
    }
    out[n] = '\0';
}

int penlink_info_accepts_key(const penlink_info *info, const uint8_t pk[PENLINK_KEY_SIZE],
                             int *accepts)
{
    if (!info || !pk || !accepts)
        return PENLINK_ERR_INVALID_ARG;
    *accepts = 0;
    if (info->size < PL_INFO_SIZE_V1)
        return PENLINK_ERR_INVALID_ARG;
    for (uint32_t i = 0;
         info->config_keys && i < info->n_config_keys && i < PENLINK_CONFIG_KEYS_MAX; i++)
        if (sodium_memcmp(info->config_keys[i], pk, PENLINK_KEY_SIZE) == 0)
            *accepts = 1;
    return PENLINK_OK;
}
