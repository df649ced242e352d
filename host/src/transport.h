/*
 * Transports: how bytes reach a pen. The client only sees this small table
 * of functions; the USB (libusb) and sim (Unix socket) backends fill it in,
 * so tests can put the simulator where a pen would be.
 */
#ifndef PENLINK_TRANSPORT_H
#define PENLINK_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

typedef struct transport transport;

typedef struct transport_ops {
    const char *name;
    /** Sends all @p n bytes or fails (GONE, TIMEOUT, IO...). */
    int (*send)(transport *t, const uint8_t *p, size_t n, int timeout_ms);
    /** Receives 1..@p cap bytes into @p p; PENLINK_ERR_TIMEOUT when none came in time. */
    int (*recv)(transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms);
    void (*close)(transport *t);
} transport_ops;

struct transport {
    const transport_ops *ops;
    penlink_ctx *ctx;
    char where[96]; /* for messages: "sim:/tmp/p.sock", "usb bus 1 device 4" */
    struct {        /* a USB pen: where it is, for traces (trace.c) */
        int present;
        uint16_t bus;
        uint8_t address, ep_in, ep_out;
    } usb;
};

int transport_sim_open(penlink_ctx *ctx, const char *path, transport **out);

/* serial NULL: the only pen plugged in. */
int transport_usb_open(penlink_ctx *ctx, const char *serial, transport **out);

/*
 * A kind of transport, as what is not about one open pen sees it: the
 * addresses it opens, the pens it finds, and what it keeps on a context (its
 * slot of penlink_ctx.transport_state, released by ctx_cleanup).
 * penlink_dev_open(), penlink_dev_list() and penlink_ctx_free() go through the
 * table, so neither the session nor the context knows a backend.
 */
typedef struct transport_backend {
    const char *name; /* also the scheme of the addresses it opens: "usb", "sim" */
    /* opens the pen that @p addr (what follows "name:" in the address, never
     * empty) names, or with @p addr NULL (the bare scheme) the one pen of
     * this kind, where bare_ok */
    int (*open)(penlink_ctx *ctx, const char *addr, transport **out);
    int bare_ok; /* the bare scheme names a pen ("usb": the only one plugged in) */
    /* the pens of this kind plugged in (NULL: it finds none by itself, as sim) */
    int (*list)(penlink_ctx *ctx, penlink_found *out, size_t cap, size_t *n);
    void (*ctx_cleanup)(penlink_ctx *ctx); /* NULL: it keeps nothing */
} transport_backend;

enum { TRANSPORT_USB, TRANSPORT_SIM };
extern const transport_backend transport_usb_backend, transport_sim_backend;

/* Opens the pen @p uri ("SCHEME" or "SCHEME:ADDRESS") names, through the
 * backend of that scheme; an address no backend takes is PENLINK_ERR_INVALID_ARG. */
int transport_open(penlink_ctx *ctx, const char *uri, transport **out);

/* Every backend's pens, in table order: *@p n counts them all, the first @p cap go to @p out. */
int transport_list(penlink_ctx *ctx, penlink_found *out, size_t cap, size_t *n);

#endif
