/*
 * A program of another project that uses an installed libpenlink: it sees the
 * public header and the shared library only, and checks a few answers that
 * depend on nothing but the library (no pen, no archive).
 */
#include <stdio.h>
#include <string.h>

#include <penlink/penlink.h>

int main(int argc, char **argv)
{
    int rc = 1;
    penlink_ctx *ctx = NULL;
    if (argc != 2) {
        fprintf(stderr, "usage: consumer EXPECTED-VERSION\n");
        return 2;
    }
    if (strcmp(penlink_version(), argv[1]) != 0) {
        fprintf(stderr, "consumer: libpenlink says version %s, expected %s\n", penlink_version(),
                argv[1]);
        goto fail;
    }
    if (penlink_ctx_new(&ctx) != PENLINK_OK || !ctx) {
        fprintf(stderr, "consumer: penlink_ctx_new failed\n");
        goto fail;
    }
    if (strcmp(penlink_ctx_errmsg(ctx), "") != 0) {
        fprintf(stderr, "consumer: a new context has a message: %s\n", penlink_ctx_errmsg(ctx));
        goto fail;
    }
    const char *ok = penlink_strerror(PENLINK_OK);
    const char *io = penlink_strerror(PENLINK_ERR_IO);
    if (!ok || !io || !*io || strcmp(ok, io) == 0) {
        fprintf(stderr, "consumer: penlink_strerror gives no distinct sentences\n");
        goto fail;
    }
    const penlink_config_key *key = penlink_config_key_find("depth_max_um");
    if (!key || strcmp(key->name, "depth_max_um") != 0 || key->is_text) {
        fprintf(stderr, "consumer: penlink_config_key_find(\"depth_max_um\") is wrong\n");
        goto fail;
    }
    printf("consumer: libpenlink %s, %s\n", penlink_version(), io);
    rc = 0;
fail:
    penlink_ctx_free(ctx);
    return rc;
}
