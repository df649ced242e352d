/*
 * A decoder's bare chunks (concatenated zlib streams, no frames): bytes
 * gathered until a chunk decodes, a truncated tail kept for later.
 */
#include <string.h>

#include "decoder_internal.h"

/* Decodes every complete chunk in cbuf; keeps a truncated tail for later. */
int dec_drain_chunks(penlink_decoder *d, int final)
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
                rc = dec_fail(d, PENLINK_ERR_PROTOCOL, at, "chunk cut short (file truncated?)",
                              NULL);
            else if (pos == 0 && d->cbuf_len == CHUNK_BUF_CAP)
                rc = dec_fail(d, PENLINK_ERR_PROTOCOL, at, "chunk larger than the 1 MiB limit",
                              NULL);
            break;
        }
        if (st != PL_OK) {
            rc = dec_fail(d, penlink_from_pl(st), at, "chunk", pl_status_str(st));
            break;
        }
        pos += pl_chunk_dec_consumed(&d->cdec);
        rc = dec_emit(d, n, at);
        if (rc != PENLINK_OK)
            break;
        d->good = d->cbuf_offset + pos;
    }
    memmove(d->cbuf, d->cbuf + pos, d->cbuf_len - pos);
    d->cbuf_len -= pos;
    d->cbuf_offset += pos;
    return rc;
}

int dec_feed_chunks(penlink_decoder *d, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t room = CHUNK_BUF_CAP - d->cbuf_len, n = len < room ? len : room;
        memcpy(d->cbuf + d->cbuf_len, p, n);
        d->cbuf_len += n;
        d->offset += n;
        p += n;
        len -= n;
        int rc = dec_drain_chunks(d, 0);
        if (rc != PENLINK_OK)
            return rc;
    }
    return PENLINK_OK;
}
