/* The fake transport of the host library's unit tests (fake_transport.h). */
#include "fake_transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/frame.h"

typedef struct fake_transport {
    transport base;
    fake_wire *w;
} fake_transport;

static fake_wire *wire_of(transport *t)
{
    return ((fake_transport *)t)->w;
}

static int f_send(transport *t, const uint8_t *p, size_t n, int timeout_ms)
{
    (void)timeout_ms;
    fake_wire *w = wire_of(t);
    w->sends++;
    if (n < PL_FRAME_HEADER_SIZE)
        return PENLINK_ERR_PROTOCOL;
    pl_envelope *req = pl_envelope_unpack(NULL, p + PL_FRAME_HEADER_SIZE, n - PL_FRAME_HEADER_SIZE);
    if (!req)
        return PENLINK_ERR_PROTOCOL; /* the library framed something that is not an Envelope */
    w->last_id = req->request_id;
    w->last = req->body_case;
    int st = w->respond ? w->respond(w, req, w->user) : PENLINK_OK;
    pl_envelope_free(NULL, req);
    return st;
}

static int f_recv(transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms)
{
    (void)timeout_ms;
    fake_wire *w = wire_of(t);
    w->recvs++;
    *got = 0;
    if (w->out_pos == w->out_len)
        return w->recv_status;
    size_t n = w->out_len - w->out_pos;
    if (n > cap)
        n = cap;
    memcpy(p, w->out + w->out_pos, n);
    w->out_pos += n;
    if (w->out_pos == w->out_len)
        w->out_pos = w->out_len = 0;
    *got = n;
    return PENLINK_OK;
}

static void f_close(transport *t)
{
    wire_of(t)->closed++;
    free(t);
}

static const transport_ops fake_ops = { "fake", f_send, f_recv, f_close };

void fake_wire_init(fake_wire *w, fake_responder respond, void *user)
{
    memset(w, 0, sizeof *w);
    w->respond = respond;
    w->user = user;
    w->recv_status = PENLINK_ERR_TIMEOUT;
}

transport *fake_transport_new(penlink_ctx *ctx, fake_wire *w)
{
    fake_transport *ft = calloc(1, sizeof *ft);
    if (!ft)
        return NULL;
    ft->base.ops = &fake_ops;
    ft->base.ctx = ctx;
    snprintf(ft->base.where, sizeof ft->base.where, "fake:pen");
    ft->w = w;
    return &ft->base;
}

void fake_wire_bytes(fake_wire *w, const void *p, size_t n)
{
    if (n > sizeof w->out - w->out_len)
        abort(); /* a test queuing more than a pen could: the test is wrong */
    memcpy(w->out + w->out_len, p, n);
    w->out_len += n;
}

void fake_wire_reply(fake_wire *w, const pl_envelope *env)
{
    /* no malloc: test_host_nomem makes the library's allocations fail */
    static uint8_t buf[PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD];
    size_t need = pl_envelope_frame_size(env);
    if (need > sizeof buf)
        abort();
    long n = pl_envelope_frame(env, buf, need);
    if (n < 0)
        abort();
    fake_wire_bytes(w, buf, (size_t)n);
}
