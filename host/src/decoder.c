/*
 * Streaming decoder of files and captures: a run of frames (what `penlink
 * pull` writes, or bytes captured off the wire), bare chunks (concatenated
 * zlib streams), or a pcapng / pcap capture (`penlink --trace`, usbmon,
 * USBPcap), whose packets are split into conversations (a USB endpoint, or
 * one direction of a socket), each with its own frame decoder. All sizes are
 * bounded before anything is allocated: the frame buffer by
 * PL_FRAME_MAX_PAYLOAD, the chunk buffer likewise, the records of one chunk
 * by PL_CHUNK_MAX_RECORDS, a capture block by PL_CAPTURE_DEFAULT_MAX_BLOCK,
 * the conversations of a capture by DEC_MAX_STREAMS.
 *
 * In a capture, damage is a fact of the wire, not the end of the input:
 * damaged stretches and messages that fail their checks are reported as
 * messages (penlink_message.problem) and the decode goes on. In a file, the
 * first damage stops it, as before.
 *
 * The hash chain of a signing pen is checked as the messages go (its own
 * link against its bytes, prev_link against the chunk before it in the same
 * reply, or against any chunk of the same pen earlier in the input that ended
 * where it starts, or against the genesis; the head against the last chunk
 * and, when the input names the pen's device key, the head's signature).
 * Each conversation of a capture (a USB device, a stream trace's interface)
 * has its own session state; a HelloReply or DeviceInfo starts a session;
 * pens are told apart by serial, so one pen's sessions share its chain.
 *
 * Also the file header that names a file's pen (penlink_file_header): it is
 * written here and read by the decoder (decoder_frames.c), so that the format
 * lives in one module. It is an ordinary frame, so every reader of frames
 * walks over it.
 *
 * This file is the decoder's public face, the input format's detection and
 * the feed; frames and their messages are decoder_frames.c's, the chain
 * check decoder_chain.c's, bare chunks decoder_chunks.c's, captures
 * decoder_capture.c's, the state they share decoder_internal.h's.
 */
#include <stdlib.h>
#include <string.h>

#include "decoder_internal.h"

int penlink_decoder_new(penlink_ctx *ctx, penlink_record_cb on_record,
                        penlink_message_cb on_message, void *user, penlink_decoder **out)
{
    if (!ctx || !on_record || !out)
        return PENLINK_ERR_INVALID_ARG;
    penlink_decoder *d = calloc(1, sizeof *d);
    if (!d)
        return PENLINK_ERR_NO_MEM;
    d->ctx = ctx;
    d->on_record = on_record;
    d->on_message = on_message;
    d->user = user;
    d->recs = malloc(sizeof(pl_record) * PL_CHUNK_MAX_RECORDS);
    if (!d->recs || pl_chunk_dec_init(&d->cdec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW) != PL_OK) {
        free(d->recs);
        free(d);
        return PENLINK_ERR_NO_MEM;
    }
    *out = d;
    return PENLINK_OK;
}

void penlink_decoder_free(penlink_decoder *d)
{
    if (!d)
        return;
    for (int i = 0; i < DEC_MAX_STREAMS; i++) {
        free(d->streams[i].fbuf);
        free(d->convs[i].own.seen);
    }
    for (int i = 0; i < DEC_MAX_PENS; i++)
        free(d->pens[i].seen);
    free(d->chain.own.seen);
    if (d->cap_open)
        pl_capture_fini(&d->cap);
    pl_chunk_dec_fini(&d->cdec);
    for (size_t i = 0; i < d->n_runs; i++)
        free(d->runs[i].dig);
    free(d->runs);
    free(d->recs);
    free(d->fbuf);
    free(d->cbuf);
    free(d);
}

penlink_input_format penlink_decoder_format(const penlink_decoder *d)
{
    return d->format;
}

int penlink_decoder_stats_get(const penlink_decoder *d, penlink_decoder_stats *out)
{
    if (!d || !out || out->size < PL_DECODER_STATS_SIZE_V1)
        return PENLINK_ERR_INVALID_ARG;
    penlink_decoder_stats all = { .size = out->size,
                                  .records = d->records,
                                  .chunks = d->chunks,
                                  .good_bytes = d->good,
                                  .duplicates = d->duplicates,
                                  .problems = d->problems };
    pl_sized_copy(out, &all, sizeof all);
    return PENLINK_OK;
}

int penlink_decoder_last_seq(const penlink_decoder *d, uint64_t *seq, int *have)
{
    if (!d || !have)
        return PENLINK_ERR_INVALID_ARG;
    *have = d->have_seq;
    if (d->have_seq && seq)
        *seq = d->last_seq;
    return PENLINK_OK;
}

int penlink_decoder_last_link(const penlink_decoder *d, uint8_t link[PENLINK_LINK_SIZE], int *have)
{
    if (!d || !have)
        return PENLINK_ERR_INVALID_ARG;
    *have = d->have_top_link;
    if (d->have_top_link && link)
        memcpy(link, d->top_link, PL_LINK_BYTES);
    return PENLINK_OK;
}

int penlink_decoder_set_message_cb(penlink_decoder *d, penlink_message_ex_cb cb, void *user)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    d->on_message_ex = cb;
    d->user_ex = user;
    return PENLINK_OK;
}

int penlink_decoder_header(const penlink_decoder *d, penlink_file_header *out, int *have)
{
    if (!d || !have || (out && out->size < PL_FILE_HEADER_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    *have = d->have_header;
    if (d->have_header && out)
        pl_sized_copy(out, &d->header, sizeof d->header);
    return PENLINK_OK;
}

int penlink_file_header_encode(const penlink_file_header *h, void *buf, size_t cap, size_t *len)
{
    if (!h || h->size < PL_FILE_HEADER_SIZE_V1 || !buf || !len ||
        !memchr(h->serial, '\0', sizeof h->serial) || !h->serial[0])
        return PENLINK_ERR_INVALID_ARG;
    char serial[sizeof h->serial], model[sizeof h->model];
    memcpy(serial, h->serial, sizeof serial);
    memcpy(model, h->model, sizeof model);
    model[sizeof model - 1] = '\0';
    Penlink__V1__DeviceInfo di = PENLINK__V1__DEVICE_INFO__INIT;
    di.serial = serial;
    di.model = model[0] ? model : NULL;
    if (h->has_device_key) {
        di.has_device_key = 1;
        di.device_key.data = (uint8_t *)h->device_key;
        di.device_key.len = sizeof h->device_key;
    }
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    env.has_request_id = 1;
    env.request_id = 0;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO;
    env.device_info = &di;
    long n =
        pl_envelope_frame(&env, buf, cap < PENLINK_FILE_HEADER_MAX ? cap : PENLINK_FILE_HEADER_MAX);
    if (n < 0)
        return PENLINK_ERR_INVALID_ARG;
    *len = (size_t)n;
    return PENLINK_OK;
}

int dec_fail(penlink_decoder *d, int status, uint64_t offset, const char *what, const char *detail)
{
    d->failed = status;
    return penlink_fail(d->ctx, status, "offset %llu: %s%s%s", (unsigned long long)offset, what,
                        detail ? ": " : "", detail ? detail : "");
}

static int detect(penlink_decoder *d, uint8_t b0, uint8_t b1)
{
    /* pcapng (0a 0d 0d 0a) and pcap (d4 c3 b2 a1, a1 b2 c3 d4, and the
     * nanosecond 4d 3c b2 a1, a1 b2 3c 4d): neither can start a frame or zlib */
    if ((b0 == 0x0A && b1 == 0x0D) || (b0 == 0xD4 && b1 == 0xC3) || (b0 == 0xA1 && b1 == 0xB2) ||
        (b0 == 0x4D && b1 == 0x3C)) {
        pl_capture_init(&d->cap, 0);
        d->cap_open = 1;
        d->format = PENLINK_INPUT_CAPTURE;
        return PENLINK_OK;
    }
    if (b0 == 'P') {
        d->fbuf = malloc(PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD);
        if (!d->fbuf)
            return PENLINK_ERR_NO_MEM;
        pl_frame_decoder_init(&d->fdec, d->fbuf, PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD,
                              PL_FRAME_MAX_PAYLOAD);
        d->format = PENLINK_INPUT_FRAMES;
        return PENLINK_OK;
    }
    /* RFC 1950 header: deflate, and a header check that divides by 31. */
    if ((b0 & 0x0F) == 8 && (b0 >> 4) <= 7 && ((unsigned)b0 * 256u + b1) % 31u == 0) {
        d->cbuf = malloc(CHUNK_BUF_CAP);
        if (!d->cbuf)
            return PENLINK_ERR_NO_MEM;
        d->format = PENLINK_INPUT_CHUNKS;
        return PENLINK_OK;
    }
    d->failed = PENLINK_ERR_UNSUPPORTED;
    return penlink_fail(d->ctx, PENLINK_ERR_UNSUPPORTED,
                        "offset 0: not penlink frames (magic \"PNLK\"), chunks (zlib "
                        "streams) nor a capture (pcapng, pcap): the input starts with %02x %02x",
                        b0, b1);
}

static int feed_format(penlink_decoder *d, const uint8_t *p, size_t len)
{
    if (d->format == PENLINK_INPUT_CAPTURE)
        return dec_feed_capture(d, p, len);
    return d->format == PENLINK_INPUT_FRAMES ? dec_feed_frames(d, p, len)
                                             : dec_feed_chunks(d, p, len);
}

static int feed_input(penlink_decoder *d, const uint8_t *p, size_t len)
{
    if (len == 0)
        return PENLINK_OK;
    if (atomic_load(&d->ctx->cancelled))
        return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "decode cancelled at offset %llu",
                            (unsigned long long)d->offset);
    if (d->format == PENLINK_INPUT_UNKNOWN) {
        /* the format is decided on two bytes: a first byte fed alone waits for the next */
        if (!d->have_first_byte) {
            d->first_byte = p[0];
            d->have_first_byte = 1;
            p++;
            len--;
            if (len == 0)
                return PENLINK_OK;
        }
        int rc = detect(d, d->first_byte, p[0]);
        if (rc == PENLINK_OK)
            rc = feed_format(d, &d->first_byte, 1);
        if (rc != PENLINK_OK)
            return rc;
    }
    return feed_format(d, p, len);
}

/* Both entry points keep their first failure, whatever it was (a callback's
 * stop and a cancellation too): the decoder's state after it is undefined. */
int penlink_decoder_feed(penlink_decoder *d, const void *data, size_t len)
{
    if (!d || (!data && len))
        return PENLINK_ERR_INVALID_ARG;
    if (d->failed)
        return d->failed;
    int rc = feed_input(d, data, len);
    if (rc != PENLINK_OK)
        d->failed = rc;
    return rc;
}

static int finish_input(penlink_decoder *d)
{
    if (d->format == PENLINK_INPUT_UNKNOWN && d->have_first_byte)
        return dec_fail(d, PENLINK_ERR_PROTOCOL, 0,
                        "the input is 1 byte: too short for any format (file truncated?)", NULL);
    if (d->format == PENLINK_INPUT_FRAMES && pl_frame_decoder_pending(&d->fdec) > 0)
        return dec_fail(d, PENLINK_ERR_PROTOCOL, d->offset - pl_frame_decoder_pending(&d->fdec),
                        "last frame cut short (file truncated?)", NULL);
    if (d->format == PENLINK_INPUT_CHUNKS && d->cbuf_len > 0)
        return dec_drain_chunks(d, 1);
    if (d->format == PENLINK_INPUT_CAPTURE && pl_capture_pending(&d->cap) > 0)
        return dec_fail(d, PENLINK_ERR_PROTOCOL, d->offset - pl_capture_pending(&d->cap),
                        "last capture block cut short (the capture was stopped while writing it?)",
                        NULL);
    if (d->format == PENLINK_INPUT_CAPTURE)
        dec_capture_notes(d);
    return PENLINK_OK;
}

int penlink_decoder_finish(penlink_decoder *d)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    if (d->failed)
        return d->failed;
    int rc = finish_input(d);
    if (rc != PENLINK_OK)
        d->failed = rc;
    return rc;
}

const char *penlink_decoder_note(const penlink_decoder *d, size_t i)
{
    static const char more[] = "(more notes left out)";
    if (!d || i > d->n_notes || (i == d->n_notes && !d->n_notes_more))
        return NULL;
    return i < d->n_notes ? d->notes[i] : more;
}
