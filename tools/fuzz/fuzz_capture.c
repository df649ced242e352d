/* libFuzzer target: the capture reader (pcapng and pcap, what `penlink
 * decode` takes from Wireshark, tcpdump and `penlink --trace`), fed in pieces
 * whose sizes come from the input, each packet through the wire view; then
 * the whole input through libpenlink's decoder with every message's fields
 * walked, as `decode --messages` does. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "penlink/penlink.h"
#include "pl/capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_record(void *user, const penlink_record *r)
{
    (void)user;
    return r->kind == 0xFFFFFFFFu;
}

static int on_field(void *user, const penlink_field *f)
{
    size_t *n = user;
    if (f->type == PENLINK_FIELD_TEXT)
        *n += strlen(f->text); /* terminated (ASan reads it) */
    if (f->type == PENLINK_FIELD_BYTES && f->len)
        *n += f->bytes[f->len - 1];
    return 0;
}

static int on_message(void *user, const penlink_message *m)
{
    size_t n =
        strlen(m->name) + (m->problem ? strlen(m->problem) : 0) + (m->chain ? strlen(m->chain) : 0);
    penlink_message_fields(m, on_field, &n);
    *(size_t *)user += n;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_capture c;
    pl_capture_init(&c, 1u << 20);
    size_t pos = 0, step = size ? (size_t)data[size - 1] % 97u + 1u : 1u;
    while (pos < size) {
        size_t n = size - pos < step ? size - pos : step, used = 0;
        pl_capture_packet p;
        pl_status st = pl_capture_feed(&c, data + pos, n, &used, &p);
        pos += used;
        if (st == PL_OK) {
            pl_wire w;
            if (pl_capture_wire(&p, &w) == 1 && w.len && w.data[w.len - 1] == 0xFE)
                step = step % 13u + 1u;
        } else if (st != PL_NEED_MORE) {
            break;
        }
    }
    pl_capture_fini(&c);

    penlink_ctx *ctx = NULL;
    penlink_decoder *dec = NULL;
    size_t seen = 0;
    if (penlink_ctx_new(&ctx) != PENLINK_OK)
        return 0;
    if (penlink_decoder_new(ctx, on_record, NULL, NULL, &dec) == PENLINK_OK &&
        penlink_decoder_set_message_cb(dec, on_message, &seen) == PENLINK_OK && size >= 2) {
        if (penlink_decoder_feed(dec, data, size) == PENLINK_OK)
            penlink_decoder_finish(dec);
    }
    penlink_decoder_free(dec);
    penlink_ctx_free(ctx);
    return seen == SIZE_MAX;
}
