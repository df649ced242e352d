/*
 * A decoder's pcapng / pcap captures: packets split into conversations (a
 * USB endpoint, or one direction of a socket), each with its own frame
 * decoder; damage is reported and the decode goes on.
 */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "decoder_internal.h"

/* The conversation (with one pen) of a stream: a USB device, or the
 * interface of a stream trace; NULL when too many are followed. */
static chain_state *conv_for(penlink_decoder *d, uint32_t key, int usb)
{
    for (int i = 0; i < DEC_MAX_STREAMS; i++) {
        chain_state *cs = &d->convs[i];
        if (cs->used && cs->key == key && cs->usb == usb)
            return cs;
        if (!cs->used) {
            cs->used = 1;
            cs->key = key;
            cs->usb = usb;
            return cs;
        }
    }
    return NULL;
}

/* The conversation a packet's bytes belong to; NULL when it is not followed. */
static dec_stream *stream_for(penlink_decoder *d, const pl_wire *w, uint32_t key, int usb)
{
    dec_stream *free_slot = NULL;
    for (int i = 0; i < DEC_MAX_STREAMS; i++) {
        dec_stream *s = &d->streams[i];
        if (s->used && s->key == key && s->dir == w->dir && s->usb == usb)
            return s;
        if (!s->used && !free_slot)
            free_slot = s;
    }
    /* a USB capture holds every device of the bus: follow an endpoint once a
     * frame's magic shows on it */
    if (!free_slot || (usb && !memmem(w->data, w->len, PL_FRAME_MAGIC, 4)))
        return NULL;
    free_slot->fbuf = malloc(DEC_FRAME_BUF);
    if (!free_slot->fbuf)
        return NULL;
    pl_frame_decoder_init(&free_slot->fdec, free_slot->fbuf, DEC_FRAME_BUF, PL_FRAME_MAX_PAYLOAD);
    free_slot->used = 1;
    free_slot->key = key;
    free_slot->dir = w->dir;
    free_slot->usb = usb;
    return free_slot;
}

static int on_packet(penlink_decoder *d, const pl_capture_packet *pk)
{
    pl_wire w;
    penlink_message m;
    memset(&m, 0, sizeof m);
    m.offset = pk->offset;
    m.packet = pk->number;
    m.time_us = pk->ts_us;
    int r = pl_capture_wire(pk, &w);
    if (r < 0) {
        m.size = pk->len;
        return dec_tell_damage(d, &m, PL_ERR_CAPTURE, pk->len);
    }
    if (r == 0)
        return PENLINK_OK;
    int usb = pk->linktype != PL_LINKTYPE_PENLINK;
    /* a stream trace: one conversation per interface (each session of a
     * trace, each trace of a merged capture); USB: per device and endpoint */
    uint32_t key = usb ? w.stream : pk->interface;
    dec_stream *s = stream_for(d, &w, key, usb);
    chain_state *cs =
        s ? conv_for(d, usb ? (uint32_t)w.bus << 16 | (uint32_t)w.device << 8 : key, usb) : NULL;
    if (!s || !cs)
        return PENLINK_OK;
    m.direction = w.dir == PL_DIR_TO_PEN ? PENLINK_DIR_TO_PEN : PENLINK_DIR_TO_HOST;
    m.stream = key;
    const uint8_t *p = w.data;
    size_t len = w.len;
    int again = 0; /* after a frame or a refusal the window may hold another frame */
    while (len > 0 || again) {
        size_t used = 0;
        pl_frame fr;
        pl_status st = pl_frame_decoder_feed(&s->fdec, p, len, &used, &fr);
        p += used;
        len -= used;
        again = st != PL_NEED_MORE;
        int rc = PENLINK_OK;
        if (st == PL_NEED_MORE)
            continue;
        if (st == PL_OK) {
            penlink_message fm = m;
            rc = dec_on_frame(d, &fm, &fr, cs, 0);
        } else {
            rc = dec_tell_damage(d, &m, st, s->fdec.skipped - s->skipped);
            s->skipped = s->fdec.skipped;
        }
        if (rc != PENLINK_OK)
            return rc;
    }
    return PENLINK_OK;
}

int dec_feed_capture(penlink_decoder *d, const uint8_t *p, size_t len)
{
    while (len > 0) {
        size_t used = 0;
        pl_capture_packet pk;
        pl_status st = pl_capture_feed(&d->cap, p, len, &used, &pk);
        p += used;
        len -= used;
        d->offset += used;
        if (st == PL_NEED_MORE)
            continue;
        if (st != PL_OK) {
            uint64_t at;
            const char *what = pl_capture_error(&d->cap, &at);
            return dec_fail(d, PENLINK_ERR_PROTOCOL, at, "capture", what);
        }
        int rc = on_packet(d, &pk);
        if (rc == PENLINK_OK && atomic_load(&d->ctx->cancelled))
            rc = penlink_fail(d->ctx, PENLINK_ERR_CANCELLED, "decode cancelled at packet %llu",
                              (unsigned long long)pk.number);
        if (rc != PENLINK_OK)
            return rc;
        d->good = d->offset;
    }
    return PENLINK_OK;
}

/* What a capture that decoded leaves unsaid: frames cut short by its end,
 * replies without their LogEnd, no penlink traffic at all. */
void dec_capture_notes(penlink_decoder *d)
{
    for (int i = 0; i < DEC_MAX_STREAMS; i++) {
        const dec_stream *s = &d->streams[i];
        size_t n = s->used ? pl_frame_decoder_pending(&s->fdec) : 0;
        if (n >= 4) /* a magic at least: a frame began */
            dec_add_note(
                d,
                "the capture ends inside a frame (%s, stream %u): %zu bytes of it came, the "
                "rest is missing",
                s->dir == PL_DIR_TO_PEN ? "host->pen" : "pen->host", s->key, n);
    }
    for (int i = 0; i < DEC_MAX_STREAMS; i++)
        if (d->convs[i].used)
            dec_note_open_pull(d, &d->convs[i], "the capture ends before it");
    if (d->frames == 0)
        dec_add_note(d,
                     "no penlink frame in the capture (%llu packets): it holds no penlink "
                     "traffic, or not of a pen this decoder recognises",
                     (unsigned long long)d->cap.packets);
}
