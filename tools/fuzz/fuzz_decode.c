/* libFuzzer target: libpenlink's file decoder (what `penlink decode` runs on
 * files from anywhere), fed in two pieces. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "penlink/penlink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_record(void *user, const penlink_record *r)
{
    (void)user;
    return r->kind == 0xFFFFFFFFu; /* touch the record; never stop */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    penlink_ctx *ctx = NULL;
    penlink_decoder *dec = NULL;
    if (penlink_ctx_new(&ctx) != PENLINK_OK)
        return 0;
    if (penlink_decoder_new(ctx, on_record, NULL, NULL, &dec) == PENLINK_OK) {
        size_t half = size / 2 < 2 ? size : size / 2;
        if (penlink_decoder_feed(dec, data, half) == PENLINK_OK &&
            penlink_decoder_feed(dec, data + half, size - half) == PENLINK_OK)
            penlink_decoder_finish(dec);
        penlink_file_header h =
            PENLINK_FILE_HEADER_INIT; /* a file header's strings are terminated (ASan reads them) */
        int have = 0;
        if (penlink_decoder_header(dec, &h, &have) == PENLINK_OK && have &&
            strlen(h.serial) + strlen(h.model) == SIZE_MAX)
            h.serial[0] = '\0';
    }
    penlink_decoder_free(dec);
    penlink_ctx_free(ctx);
    return 0;
}
