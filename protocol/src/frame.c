/*
 * Framing. The decoder keeps a window [start, start+have) over the caller's
 * buffer: the bytes of the current candidate frame. On any error it moves the
 * window one byte on and looks for the next magic, so a frame that starts
 * inside a damaged one is still found. Moving the window is O(1); the bytes
 * are compacted to the front only when the buffer would overflow.
 *
 * Rule 5 (a good frame inside a refused one is found) alone is quadratic on
 * hostile input: a run of intact headers, each claiming a 1 MiB payload,
 * makes every one of them a CRC over 1 MiB of the same bytes. So a frame
 * that starts inside a frame refused for its CRC (its bytes were checked
 * before) is checked only while such checks have cost no more than the
 * bytes fed so far plus one largest payload; past that it is skipped as part
 * of the damaged stretch without its payload being waited for (rule 6 of
 * docs/protocol.md section 2). A frame starting after the refused ones costs
 * its own, new, bytes. Honest damage (a frame cut short, good frames after
 * it) never comes near the bound.
 */
#include <string.h>
#include <zlib.h>

#include "pl/frame.h"

static const uint8_t magic[4] = { 'P', 'N', 'L', 'K' };

/* Internal to this file: the window moved quietly, examine it again. */
#define RESYNCED 2

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t header_check(const uint8_t *hdr)
{
    return (uint16_t)(crc32(0L, hdr, 14) & 0xFFFFu);
}

void pl_frame_header(uint8_t hdr[PL_FRAME_HEADER_SIZE], const uint8_t *payload, uint32_t len)
{
    memcpy(hdr, magic, 4);
    hdr[4] = PL_FRAME_VERSION;
    hdr[5] = 0;
    put32(hdr + 6, len);
    put32(hdr + 10, (uint32_t)crc32(0L, len ? payload : Z_NULL, len));
    uint16_t hc = header_check(hdr);
    hdr[14] = (uint8_t)hc;
    hdr[15] = (uint8_t)(hc >> 8);
}

long pl_frame_encode(uint8_t *out, size_t cap, const uint8_t *payload, uint32_t len)
{
    if ((size_t)len > cap || cap - len < PL_FRAME_HEADER_SIZE)
        return PL_ERR_NO_SPACE;
    if (len)
        memmove(out + PL_FRAME_HEADER_SIZE, payload, len);
    pl_frame_header(out, out + PL_FRAME_HEADER_SIZE, len);
    return (long)(PL_FRAME_HEADER_SIZE + len);
}

pl_status pl_frame_decoder_init(pl_frame_decoder *d, uint8_t *buf, size_t cap, uint32_t max_payload)
{
    if (!d || !buf || max_payload > PL_FRAME_MAX_PAYLOAD ||
        cap < (size_t)PL_FRAME_HEADER_SIZE + max_payload)
        return PL_ERR_INVALID_ARG;
    memset(d, 0, sizeof *d);
    d->buf = buf;
    d->cap = cap;
    d->max_payload = max_payload;
    return PL_OK;
}

pl_status pl_frame_decoder_set_max(pl_frame_decoder *d, uint32_t max_payload)
{
    if (max_payload > PL_FRAME_MAX_PAYLOAD || d->cap < (size_t)PL_FRAME_HEADER_SIZE + max_payload)
        return PL_ERR_INVALID_ARG;
    d->max_payload = max_payload;
    return PL_OK;
}

void pl_frame_decoder_reset(pl_frame_decoder *d)
{
    d->start = d->have = 0;
    d->hunting = d->delivered = 0;
    d->offset = d->err_offset = d->skipped = 0;
    d->taken = d->refused_end = d->nested_crc = d->crc_bytes = 0;
}

uint64_t pl_frame_decoder_crc_bytes(const pl_frame_decoder *d)
{
    return d->crc_bytes;
}

size_t pl_frame_decoder_pending(const pl_frame_decoder *d)
{
    if (d->delivered)
        return d->have - (PL_FRAME_HEADER_SIZE + (size_t)get32(d->buf + d->start + 6));
    return d->have;
}

uint64_t pl_frame_decoder_error_offset(const pl_frame_decoder *d)
{
    return d->err_offset;
}

/* Drops @p n bytes from the front of the window. */
static void drop(pl_frame_decoder *d, size_t n)
{
    d->start += n;
    d->have -= n;
    d->offset += n;
    if (d->have == 0)
        d->start = 0;
}

/* Moves the window to the next byte that could begin the magic. */
static void resync(pl_frame_decoder *d)
{
    const uint8_t *p = d->buf + d->start;
    size_t i = 1;
    while (i < d->have && p[i] != magic[0])
        i++;
    d->skipped += i;
    drop(d, i);
    d->hunting = 1;
}

/* One error per damaged stretch: quiet while already hunting, except for a
 * frame whose header is intact (a too-large or CRC-damaged frame is news). */
static pl_status fail(pl_frame_decoder *d, pl_status st, int header_ok)
{
    int report = !d->hunting || header_ok;
    d->err_offset = d->offset;
    resync(d);
    return report ? st : (pl_status)RESYNCED;
}

/* Checks what is in the window; PL_NEED_MORE means "feed more bytes". */
static pl_status examine(pl_frame_decoder *d, pl_frame *out)
{
    const uint8_t *p = d->buf + d->start;
    size_t m = d->have < 4 ? d->have : 4;
    if (memcmp(p, magic, m) != 0)
        return fail(d, PL_ERR_FRAME_MAGIC, 0);
    if (d->have < 5)
        return PL_NEED_MORE;
    if (p[4] != PL_FRAME_VERSION)
        return fail(d, PL_ERR_FRAME_VERSION, 0);
    if (d->have < PL_FRAME_HEADER_SIZE)
        return PL_NEED_MORE;
    if (header_check(p) != (uint16_t)(p[14] | p[15] << 8))
        return fail(d, PL_ERR_FRAME_HEADER, 0);
    uint32_t len = get32(p + 6);
    if (len > d->max_payload)
        return fail(d, PL_ERR_FRAME_TOO_LARGE, 1);
    /* inside a refused frame, and its check would exceed the budget: skipped */
    int nested = d->offset < d->refused_end;
    if (nested && d->nested_crc + len > d->taken + PL_FRAME_MAX_PAYLOAD)
        return fail(d, PL_ERR_FRAME_SKIPPED, 0);
    if (d->have < PL_FRAME_HEADER_SIZE + (size_t)len)
        return PL_NEED_MORE;
    const uint8_t *payload = p + PL_FRAME_HEADER_SIZE;
    d->crc_bytes += len;
    if (nested)
        d->nested_crc += len;
    if ((uint32_t)crc32(0L, len ? payload : Z_NULL, len) != get32(p + 10)) {
        uint64_t end = d->offset + PL_FRAME_HEADER_SIZE + len;
        if (end > d->refused_end)
            d->refused_end = end;
        return fail(d, PL_ERR_FRAME_CRC, 1);
    }
    out->payload = payload;
    out->len = len;
    out->flags = p[5];
    d->hunting = 0;
    d->delivered = 1;
    return PL_OK;
}

/* How many more bytes the window needs before examine() can decide; only
 * called after examine() said PL_NEED_MORE, so a full header is valid. */
static size_t wanted(const pl_frame_decoder *d)
{
    if (d->have < PL_FRAME_HEADER_SIZE)
        return PL_FRAME_HEADER_SIZE - d->have;
    uint32_t len = get32(d->buf + d->start + 6);
    return PL_FRAME_HEADER_SIZE + (size_t)len - d->have;
}

pl_status pl_frame_decoder_feed(pl_frame_decoder *d, const uint8_t *data, size_t len, size_t *used,
                                pl_frame *out)
{
    size_t pos = 0;
    pl_status st = PL_NEED_MORE;

    if (d->delivered) {
        const uint8_t *p = d->buf + d->start;
        drop(d, PL_FRAME_HEADER_SIZE + (size_t)get32(p + 6));
        d->delivered = 0;
    }
    for (;;) {
        /* Re-examine what is buffered first: after a resync it may hold a frame. */
        if (d->have > 0) {
            st = examine(d, out);
            if ((int)st == RESYNCED)
                continue;
            if (st != PL_NEED_MORE)
                break;
        }
        if (pos == len) {
            st = PL_NEED_MORE;
            break;
        }
        if (d->have == 0) {
            /* Skip garbage without copying it: only a magic byte can start a frame. */
            size_t s = pos;
            while (pos < len && data[pos] != magic[0])
                pos++;
            if (pos > s) {
                d->offset += pos - s;
                d->skipped += pos - s;
                d->taken += pos - s;
                if (!d->hunting) {
                    d->hunting = 1;
                    d->err_offset = d->offset - (pos - s);
                    st = PL_ERR_FRAME_MAGIC;
                    break;
                }
            }
            if (pos == len) {
                st = PL_NEED_MORE;
                break;
            }
        }
        size_t n = wanted(d);
        if (n > len - pos)
            n = len - pos;
        if (d->start + d->have + n > d->cap) {
            memmove(d->buf, d->buf + d->start, d->have);
            d->start = 0;
        }
        memcpy(d->buf + d->start + d->have, data + pos, n);
        d->have += n;
        d->taken += n;
        pos += n;
    }
    *used = pos;
    return st;
}
