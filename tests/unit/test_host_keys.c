/*
 * Technician keys (host/src/keys.c): generated pairs and their files, and
 * every file a key load refuses (a public key for signing, another format, a
 * damaged one, one others can read, a directory, none), with the status and
 * words each gets; signatures, fingerprints, and whether a pen accepts a key.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "internal.h"

typedef struct fixture {
    penlink_ctx *ctx;
    char dir[64], key[96], pub[100];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    snprintf(f->dir, sizeof f->dir, "/tmp/penlink-keys-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->key, sizeof f->key, "%s/tech.key", f->dir);
    snprintf(f->pub, sizeof f->pub, "%s.pub", f->key);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char other[128];
    unlink(f->key);
    unlink(f->pub);
    snprintf(other, sizeof other, "%s/other", f->dir);
    unlink(other);
    rmdir(f->dir);
    penlink_ctx_free(f->ctx);
    free(f);
    return 0;
}

static void assert_says(const fixture *f, const char *words)
{
    if (!strstr(penlink_ctx_errmsg(f->ctx), words))
        fail_msg("\"%s\" does not say \"%s\"", penlink_ctx_errmsg(f->ctx), words);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

static void read_file(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    size_t n = fread(out, 1, cap - 1, fp);
    out[n] = '\0';
    fclose(fp);
}

static void test_generate_and_load(void **state)
{
    fixture *f = *state;
    penlink_key made = PENLINK_KEY_INIT, loaded = PENLINK_KEY_INIT;
    assert_int_equal(penlink_key_generate(f->ctx, f->key, &made), PENLINK_OK);
    struct stat sb;
    assert_int_equal(stat(f->key, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    assert_int_equal(stat(f->pub, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0644);
    assert_int_equal(penlink_key_load(f->ctx, f->key, &loaded), PENLINK_OK);
    assert_memory_equal(loaded.public_key, made.public_key, 32);
    assert_memory_equal(loaded.secret, made.secret, 64);
    uint8_t pk[32];
    assert_int_equal(penlink_key_load_public(f->ctx, f->pub, pk), PENLINK_OK);
    assert_memory_equal(pk, made.public_key, 32);
    memset(pk, 0, sizeof pk);
    assert_int_equal(penlink_key_load_public(f->ctx, f->key, pk), PENLINK_OK); /* from the secret */
    assert_memory_equal(pk, made.public_key, 32);
    /* what it signs verifies with its public half, and only what it signed */
    uint8_t sig[64], msg[] = "depth_max_um=2000";
    assert_int_equal(penlink_sign(&loaded, msg, sizeof msg, sig), 0);
    assert_int_equal(penlink_verify(sig, msg, sizeof msg, pk), 0);
    msg[0] ^= 1;
    assert_int_equal(penlink_verify(sig, msg, sizeof msg, pk), -1);
    char hex[65], want[65];
    penlink_key_to_hex(pk, hex);
    sodium_bin2hex(want, sizeof want, pk, 32);
    assert_string_equal(hex, want);
}

/* A key is never overwritten: neither half, and what was there stays. */
static void test_never_overwritten(void **state)
{
    fixture *f = *state;
    char before[512], after[512];
    assert_int_equal(penlink_key_generate(f->ctx, f->key, NULL), PENLINK_OK);
    read_file(f->key, before, sizeof before);
    assert_int_equal(penlink_key_generate(f->ctx, f->key, NULL), PENLINK_ERR_IO);
    assert_says(f, "a key is never overwritten");
    read_file(f->key, after, sizeof after);
    assert_string_equal(before, after);
    /* only the .pub there: refused before anything is written */
    unlink(f->key);
    assert_int_equal(penlink_key_generate(f->ctx, f->key, NULL), PENLINK_ERR_IO);
    assert_says(f, ".pub exists");
    assert_int_not_equal(access(f->key, F_OK), 0);
}

static void test_generate_bad_path(void **state)
{
    fixture *f = *state;
    assert_int_equal(penlink_key_generate(f->ctx, NULL, NULL), PENLINK_ERR_INVALID_ARG);
    char longer[1100];
    memset(longer, 'k', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(penlink_key_generate(f->ctx, longer, NULL), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "one too long");
    /* a missing directory is made; a file where a directory should be is refused */
    char nodir[128];
    snprintf(nodir, sizeof nodir, "%s/none/tech.key", f->dir);
    assert_int_equal(penlink_key_generate(f->ctx, nodir, NULL), PENLINK_OK);
    char file[128], under[160];
    snprintf(file, sizeof file, "%s/plain", f->dir);
    FILE *fp = fopen(file, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(under, sizeof under, "%s/tech.key", file);
    assert_int_equal(penlink_key_generate(f->ctx, under, NULL), PENLINK_ERR_IO);
    assert_says(f, "Not a directory");
    unlink(nodir);
    snprintf(nodir, sizeof nodir, "%s/none", f->dir);
    rmdir(nodir);
    unlink(file);
}

static void test_load_refusals(void **state)
{
    fixture *f = *state;
    penlink_key k = PENLINK_KEY_INIT;
    uint8_t pk[32];
    assert_int_equal(penlink_key_generate(f->ctx, f->key, NULL), PENLINK_OK);

    /* signing with the public half */
    assert_int_equal(penlink_key_load(f->ctx, f->pub, &k), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "is a public key; signing needs the secret key file");

    /* a secret key others can read */
    assert_int_equal(chmod(f->key, 0640), 0);
    assert_int_equal(penlink_key_load(f->ctx, f->key, &k), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "can be read by others (mode 640)");
    assert_int_equal(chmod(f->key, 0600), 0);

    /* its public half edited: not the seed's */
    char line[512];
    read_file(f->key, line, sizeof line);
    char *last = strchr(line, '\n') - 1;
    *last = *last == '0' ? '1' : '0';
    write_file(f->key, line, 0600);
    assert_int_equal(penlink_key_load(f->ctx, f->key, &k), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "its public half does not match its seed");

    /* other text */
    char other[128];
    snprintf(other, sizeof other, "%s/other", f->dir);
    static const char *not_keys[] = {
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n",
        "penlink-secret-key ed25519 0123abcd\n",
        "",
    };
    for (size_t i = 0; i < sizeof not_keys / sizeof not_keys[0]; i++) {
        write_file(other, not_keys[i], 0600);
        assert_int_equal(penlink_key_load(f->ctx, other, &k), PENLINK_ERR_INVALID_ARG);
        assert_says(f, "is not a penlink key file");
    }
    write_file(other,
               "penlink-public-key ed25519 "
               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n",
               0644);
    assert_int_equal(penlink_key_load_public(f->ctx, other, pk), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "not 64 hex digits after its tag");
    /* 64 characters that are not all hex digits; a file of neither tag */
    write_file(other,
               "penlink-public-key ed25519 "
               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg\n",
               0644);
    assert_int_equal(penlink_key_load_public(f->ctx, other, pk), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "not 64 hex digits after its tag");
    write_file(other, "neither\n", 0600);
    assert_int_equal(penlink_key_load_public(f->ctx, other, pk), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "is not a penlink key file");

    /* no file, a directory, no name */
    char none[128];
    snprintf(none, sizeof none, "%s/none.key", f->dir);
    assert_int_equal(penlink_key_load(f->ctx, none, &k), PENLINK_ERR_IO);
    assert_says(f, none);
    assert_int_equal(penlink_key_load(f->ctx, f->dir, &k), PENLINK_ERR_IO);
    assert_says(f, "not a readable file");
    assert_int_equal(penlink_key_load(f->ctx, NULL, &k), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_key_load(f->ctx, f->key, NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_key_load_public(f->ctx, NULL, pk), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_key_load_public(f->ctx, f->pub, NULL), PENLINK_ERR_INVALID_ARG);
}

/* The public file cannot be made (its name a dangling symbolic link, which
 * O_EXCL refuses): the secret key written just before is removed, so no
 * half key is left behind. */
static void test_generate_public_refused(void **state)
{
    fixture *f = *state;
    char target[160];
    snprintf(target, sizeof target, "%s/nowhere", f->dir);
    assert_int_equal(symlink(target, f->pub), 0);
    assert_int_equal(penlink_key_generate(f->ctx, f->key, NULL), PENLINK_ERR_IO);
    assert_says(f, "a key is never overwritten");
    assert_int_equal(access(f->key, F_OK), -1);
    assert_int_equal(access(target, F_OK), -1);
    unlink(f->pub);
}

/* Four groups of four hex digits of the key's SHA-256, stable, per key. */
static void test_fingerprint(void **state)
{
    (void)state;
    uint8_t a[32], b[32], h[32];
    memset(a, 0x11, sizeof a);
    memset(b, 0x12, sizeof b);
    char fa[PENLINK_KEY_FINGERPRINT_LEN], fa2[PENLINK_KEY_FINGERPRINT_LEN],
        fb[PENLINK_KEY_FINGERPRINT_LEN];
    penlink_key_to_fingerprint(a, fa);
    penlink_key_to_fingerprint(a, fa2);
    penlink_key_to_fingerprint(b, fb);
    assert_int_equal(strlen(fa), 19);
    assert_string_equal(fa, fa2);
    assert_string_not_equal(fa, fb);
    crypto_hash_sha256(h, a, 32);
    char want[20];
    snprintf(want, sizeof want, "%02x%02x:%02x%02x:%02x%02x:%02x%02x", h[0], h[1], h[2], h[3], h[4],
             h[5], h[6], h[7]);
    assert_string_equal(fa, want);
}

static void test_info_accepts_key(void **state)
{
    (void)state;
    penlink_info info = PENLINK_INFO_INIT;
    uint8_t keys[PENLINK_CONFIG_KEYS_MAX + 1][PENLINK_KEY_SIZE];
    for (size_t k = 0; k < PENLINK_CONFIG_KEYS_MAX + 1; k++)
        memset(keys[k], (int)k + 1, PENLINK_KEY_SIZE);
    const uint8_t *k1 = keys[0], *k2 = keys[1], *k3 = keys[2], *k5 = keys[4];
    int yes = -1;
    /* no keys listed: none accepted */
    assert_int_equal(penlink_info_accepts_key(&info, k1, &yes), PENLINK_OK);
    assert_int_equal(yes, 0);
    info.config_keys = (const uint8_t(*)[PENLINK_KEY_SIZE])keys;
    info.n_config_keys = 2; /* the third key is not listed */
    assert_int_equal(penlink_info_accepts_key(&info, k1, &yes), PENLINK_OK);
    assert_int_equal(yes, 1);
    assert_int_equal(penlink_info_accepts_key(&info, k2, &yes), PENLINK_OK);
    assert_int_equal(yes, 1);
    assert_int_equal(penlink_info_accepts_key(&info, k3, &yes), PENLINK_OK);
    assert_int_equal(yes, 0);
    info.n_config_keys = 1000; /* more than a pen may list: bounded by PENLINK_CONFIG_KEYS_MAX */
    assert_int_equal(penlink_info_accepts_key(&info, k3, &yes), PENLINK_OK);
    assert_int_equal(yes, 1);
    assert_int_equal(penlink_info_accepts_key(&info, k5, &yes), PENLINK_OK);
    assert_int_equal(yes, 0);
    assert_int_equal(penlink_info_accepts_key(NULL, k1, &yes), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_info_accepts_key(&info, NULL, &yes), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_info_accepts_key(&info, k1, NULL), PENLINK_ERR_INVALID_ARG);
    /* a penlink_info whose size is not set (an older caller's, or a forgotten init) */
    info.size = 0;
    assert_int_equal(penlink_info_accepts_key(&info, k1, &yes), PENLINK_ERR_INVALID_ARG);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_generate_and_load), T(test_never_overwritten),       T(test_generate_bad_path),
        T(test_load_refusals),     T(test_generate_public_refused), T(test_fingerprint),
        T(test_info_accepts_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
