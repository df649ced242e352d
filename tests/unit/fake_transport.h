/*
 * A fake transport (host/src/transport.h's table) for the host library's unit
 * tests: a pen made of a function. Each request the library sends is unpacked
 * and handed to the test's responder, which queues the pen's replies (framed
 * envelopes, or any bytes) and says how the send went. With nothing queued a
 * receive returns recv_status at once (a timeout unless the test says
 * otherwise): no test waits on a clock.
 */
#ifndef PENLINK_FAKE_TRANSPORT_H
#define PENLINK_FAKE_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "pl/envelope.h"
#include "transport.h"

#define FAKE_WIRE_BYTES (256 * 1024)

typedef struct fake_wire fake_wire;
/* The pen's answer to @p req: fake_wire_reply() / fake_wire_bytes(); returns
 * the send's status (PENLINK_OK, or e.g. PENLINK_ERR_GONE). */
typedef int (*fake_responder)(fake_wire *w, const pl_envelope *req, void *user);

struct fake_wire {
    fake_responder respond;
    void *user;
    int recv_status; /* with nothing queued; PENLINK_ERR_TIMEOUT after fake_wire_init */
    uint8_t out[FAKE_WIRE_BYTES]; /* bytes on their way to the host */
    size_t out_len, out_pos;
    /* what happened */
    int sends, recvs, closed;
    uint32_t last_id;                     /* the last request's request_id */
    Penlink__V1__Envelope__BodyCase last; /* ... and its body */
};

void fake_wire_init(fake_wire *w, fake_responder respond, void *user);
/* A transport on @p w (which must outlive it); closing it frees it and counts. */
transport *fake_transport_new(penlink_ctx *ctx, fake_wire *w);
/* Queues @p env framed, as the pen sends it. */
void fake_wire_reply(fake_wire *w, const pl_envelope *env);
void fake_wire_bytes(fake_wire *w, const void *p, size_t n);

#endif
