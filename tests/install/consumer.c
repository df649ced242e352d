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
    if (strcmp(penlink_status_name(PENLINK_ERR_IO), "PENLINK_ERR_IO") != 0) {
        fprintf(stderr, "consumer: penlink_status_name(PENLINK_ERR_IO) is wrong\n");
        goto fail;
    }
    /* the structs a caller sizes, with the header's initialisers */
    penlink_info info = PENLINK_INFO_INIT;
    penlink_pull_cb pcb = PENLINK_PULL_CB_INIT;
    penlink_decoder_stats stats = PENLINK_DECODER_STATS_INIT;
    if (info.size != sizeof info || pcb.size != sizeof pcb || stats.size != sizeof stats) {
        fprintf(stderr, "consumer: an initialiser does not set the struct's size\n");
        goto fail;
    }
    penlink_config cfg = PENLINK_CONFIG_INIT;
    char text[PENLINK_CONFIG_TEXT_MAX + 2];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    if (penlink_config_set_text(&cfg, PENLINK_CFG_CLINIC_ID, text) != PENLINK_ERR_INVALID_ARG) {
        fprintf(stderr, "consumer: a text over PENLINK_CONFIG_TEXT_MAX is not refused\n");
        goto fail;
    }
    printf("consumer: libpenlink %s, %s\n", penlink_version(), io);
    rc = 0;
fail:
    penlink_ctx_free(ctx);
    return rc;
}
