/*
 * Streaming decoder of files and captures: a run of frames (what `penlink
 * pull` writes, or bytes captured off the wire) or bare chunks (concatenated
 * zlib streams). All sizes are bounded before anything is allocated: the
 * frame buffer by PL_FRAME_MAX_PAYLOAD, the chunk buffer likewise, the records
 * of one chunk by PL_CHUNK_MAX_RECORDS.
 *
 * Also the file header that names a file's pen (penlink_file_header): it is
 * written here and read here, so that the format lives in one place. It is
 * an ordinary frame, so every reader of frames walks over it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pl/chunk.h"
#include "pl/envelope.h"
#include "pl/frame.h"

struct penlink_decoder {
    penlink_ctx *ctx;
    penlink_record_cb on_record;
    penlink_message_cb on_message;
    void *user;
    penlink_input_format format;
    int failed;
    uint64_t offset; /* input bytes taken so far */
    uint64_t records, chunks;
    uint64_t good; /* input offset past the last complete frame/chunk */
    uint64_t last_seq;
    int have_seq;
    uint64_t frames;            /* complete frames so far */
    int have_header;            /* the input began with a file header */
    penlink_file_header header; /* ...naming this pen */
    pl_frame_decoder fdec;
    uint8_t *fbuf;
    pl_chunk_dec cdec;
    pl_record *recs;
    uint8_t *cbuf; /* bare-chunk mode: bytes not yet decoded */
    size_t cbuf_len;
    uint64_t cbuf_offset; /* input offset of cbuf[0] */
};

#define CHUNK_BUF_CAP ((size_t)PL_FRAME_MAX_PAYLOAD)

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
    pl_chunk_dec_fini(&d->cdec);
    free(d->recs);
    free(d->fbuf);
    free(d->cbuf);
    free(d);
}

penlink_input_format penlink_decoder_format(const penlink_decoder *d)
{
    return d->format;
}

uint64_t penlink_decoder_records(const penlink_decoder *d)
{
    return d->records;
}

uint64_t penlink_decoder_good_bytes(const penlink_decoder *d)
{
    return d->good;
}

int penlink_decoder_last_seq(const penlink_decoder *d, uint64_t *seq)
{
    if (d->have_seq && seq)
        *seq = d->last_seq;
    return d->have_seq;
}

uint64_t penlink_decoder_chunks(const penlink_decoder *d)
{
    return d->chunks;
}

int penlink_decoder_header(const penlink_decoder *d, penlink_file_header *out)
{
    if (!d || !d->have_header)
        return 0;
    if (out)
        *out = d->header;
    return 1;
}

int penlink_file_header_encode(const penlink_file_header *h, void *buf, size_t cap, size_t *len)
{
    if (!h || !buf || !len || !memchr(h->serial, '\0', sizeof h->serial) || !h->serial[0])
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

static int fail(penlink_decoder *d, int status, uint64_t offset, const char *what,
                const char *detail)
{
    d->failed = status;
    return penlink_fail(d->ctx, status, "offset %llu: %s%s%s", (unsigned long long)offset, what,
                        detail ? ": " : "", detail ? detail : "");
}

static int emit(penlink_decoder *d, uint32_t n)
{
    if (n) {
        d->last_seq = d->recs[n - 1].seq;
        d->have_seq = 1;
    }
    for (uint32_t i = 0; i < n; i++)
        if (d->on_record(d->user, (const penlink_record *)&d->recs[i]) != 0)
            return penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the record callback");
    d->records += n;
    d->chunks++;
    return PENLINK_OK;
}

static const char *body_name(const pl_envelope *env)
{
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &penlink__v1__envelope__descriptor, (unsigned)env->body_case);
    return f ? f->name : "unknown";
}

/* A DeviceInfo with request_id 0: a file header (no pen sends one, no host
 * asks with id 0). Only a header the input began with names the file. */
static int on_header(penlink_decoder *d, uint64_t at, const pl_envelope *env)
{
    const Penlink__V1__DeviceInfo *di = env->device_info;
    if (d->frames > 0 && !d->have_header)
        return PENLINK_OK;
    penlink_file_header h;
    memset(&h, 0, sizeof h);
    size_t n = di->serial ? strlen(di->serial) : 0;
    if (n == 0 || n >= sizeof h.serial)
        return fail(d, PENLINK_ERR_PROTOCOL, at, "file header",
                    n ? "serial longer than 32 bytes" : "no serial");
    if (di->has_device_key && di->device_key.len != sizeof h.device_key)
        return fail(d, PENLINK_ERR_PROTOCOL, at, "file header", "device key is not 32 bytes");
    memcpy(h.serial, di->serial, n);
    if (di->model)
        snprintf(h.model, sizeof h.model, "%s", di->model);
    h.has_device_key = di->has_device_key;
    if (h.has_device_key)
        memcpy(h.device_key, di->device_key.data, sizeof h.device_key);
    if (!d->have_header) {
        d->header = h;
        d->have_header = 1;
        return PENLINK_OK;
    }
    if (strcmp(h.serial, d->header.serial) != 0 || h.has_device_key != d->header.has_device_key ||
        memcmp(h.device_key, d->header.device_key, sizeof h.device_key) != 0) {
        d->failed = PENLINK_ERR_INTEGRITY;
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "offset %llu: a file header names pen %s%s, but the file began as the "
                            "log of pen %s: two pens' files joined",
                            (unsigned long long)at, h.serial,
                            strcmp(h.serial, d->header.serial) == 0 ? " with another device key"
                                                                    : "",
                            d->header.serial);
    }
    return PENLINK_OK;
}

static int on_frame(penlink_decoder *d, uint64_t at, const pl_frame *fr)
{
    pl_envelope *env = pl_envelope_unpack(NULL, fr->payload, fr->len);
    if (!env)
        return fail(d, PENLINK_ERR_PROTOCOL, at, "frame payload is not a penlink Envelope", NULL);
    int rc = PENLINK_OK;
    if (env->body_case == PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO && env->request_id == 0)
        rc = on_header(d, at, env);
    d->frames++;
    if (rc == PENLINK_OK && d->on_message &&
        d->on_message(d->user, at, env->request_id, body_name(env)) != 0)
        rc = penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "stopped by the message callback");
    if (rc == PENLINK_OK && env->body_case == PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK) {
        const Penlink__V1__LogChunk *c = env->log_chunk;
        pl_chunk_expect ex = {
            .first_seq = c->first_seq,
            .record_count = c->record_count,
            .raw_size = c->raw_size,
            .have_first_seq = c->has_first_seq,
        };
        uint32_t n = 0;
        int st = pl_chunk_decode(&d->cdec, c->data.data, c->data.len, &ex, d->recs,
                                 PL_CHUNK_MAX_RECORDS, &n);
        if (st == PL_NEED_MORE)
            st = PL_ERR_CHUNK_ZLIB;
        if (st == PL_OK && pl_chunk_dec_consumed(&d->cdec) != c->data.len)
            st = PL_ERR_CHUNK_FORMAT;
        if (st != PL_OK)
            rc = fail(d, penlink_from_pl(st), at, "log chunk", pl_status_str(st));
        else
            rc = emit(d, n);
    }
    pl_envelope_free(NULL, env);
    return rc;
}

static int feed_frames(penlink_decoder *d, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t used = 0;
        pl_frame fr;
        pl_status st = pl_frame_decoder_feed(&d->fdec, p, len, &used, &fr);
        uint64_t at = d->offset;
        p += used;
        len -= used;
        d->offset += used;
        if (st == PL_NEED_MORE)
            continue;
        if (st != PL_OK)
            return fail(d, penlink_from_pl(st), pl_frame_decoder_error_offset(&d->fdec),
                        pl_status_str(st), NULL);
        int rc = on_frame(d, at + used - PL_FRAME_HEADER_SIZE - fr.len, &fr);
        if (rc != PENLINK_OK)
            return rc;
        d->good = at + used;
    }
    return PENLINK_OK;
}

/* Decodes every complete chunk in cbuf; keeps a truncated tail for later. */
static int drain_chunks(penlink_decoder *d, int final)
{
    size_t pos = 0;
    int rc = PENLINK_OK;
    while (pos < d->cbuf_len) {
        uint32_t n = 0;
        uint64_t at = d->cbuf_offset + pos;
        int st = pl_chunk_decode(&d->cdec, d->cbuf + pos, d->cbuf_len - pos, NULL, d->recs,
                                 PL_CHUNK_MAX_RECORDS, &n);
        if (st == PL_NEED_MORE) {
            if (final)
                rc = fail(d, PENLINK_ERR_PROTOCOL, at, "chunk cut short (file truncated?)", NULL);
            else if (pos == 0 && d->cbuf_len == CHUNK_BUF_CAP)
                rc = fail(d, PENLINK_ERR_PROTOCOL, at, "chunk larger than the 1 MiB limit", NULL);
            break;
        }
        if (st != PL_OK) {
            rc = fail(d, penlink_from_pl(st), at, "chunk", pl_status_str(st));
            break;
        }
        pos += pl_chunk_dec_consumed(&d->cdec);
        rc = emit(d, n);
        if (rc != PENLINK_OK)
            break;
        d->good = d->cbuf_offset + pos;
    }
    memmove(d->cbuf, d->cbuf + pos, d->cbuf_len - pos);
    d->cbuf_len -= pos;
    d->cbuf_offset += pos;
    return rc;
}

static int feed_chunks(penlink_decoder *d, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t room = CHUNK_BUF_CAP - d->cbuf_len, n = len < room ? len : room;
        memcpy(d->cbuf + d->cbuf_len, p, n);
        d->cbuf_len += n;
        d->offset += n;
        p += n;
        len -= n;
        int rc = drain_chunks(d, 0);
        if (rc != PENLINK_OK)
            return rc;
    }
    return PENLINK_OK;
}

static int detect(penlink_decoder *d, uint8_t b0, uint8_t b1)
{
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
                        "offset 0: not penlink frames (magic \"PNLK\") nor chunks (zlib "
                        "streams): the input starts with %02x %02x",
                        b0, b1);
}

int penlink_decoder_feed(penlink_decoder *d, const void *data, size_t len)
{
    const uint8_t *p = data;
    if (!d || (!data && len))
        return PENLINK_ERR_INVALID_ARG;
    if (d->failed)
        return d->failed;
    if (len == 0)
        return PENLINK_OK;
    if (d->format == PENLINK_INPUT_UNKNOWN) {
        if (len < 2) /* keep it simple: decide on two bytes */
            return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG, "feed at least 2 bytes first");
        int rc = detect(d, p[0], p[1]);
        if (rc != PENLINK_OK)
            return rc;
    }
    return d->format == PENLINK_INPUT_FRAMES ? feed_frames(d, p, len) : feed_chunks(d, p, len);
}

int penlink_decoder_finish(penlink_decoder *d)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    if (d->failed)
        return d->failed;
    if (d->format == PENLINK_INPUT_FRAMES && pl_frame_decoder_pending(&d->fdec) > 0)
        return fail(d, PENLINK_ERR_PROTOCOL, d->offset - pl_frame_decoder_pending(&d->fdec),
                    "last frame cut short (file truncated?)", NULL);
    if (d->format == PENLINK_INPUT_CHUNKS && d->cbuf_len > 0)
        return drain_chunks(d, 1);
    return PENLINK_OK;
}
