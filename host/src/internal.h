/* libpenlink internals shared between its source files; not installed. */
#ifndef PENLINK_INTERNAL_H
#define PENLINK_INTERNAL_H

#define PENLINK_BUILDING 1
#include "penlink/penlink.h"
#include "pl/status.h"

#include <signal.h>

/* The protocol version this library speaks (docs/protocol.md). */
#define PENLINK_PROTOCOL_MAJOR 1
#define PENLINK_PROTOCOL_MINOR 0

struct penlink_ctx {
    char errmsg[512];
    volatile sig_atomic_t cancelled; /* set from signal handlers and other threads */
    void *hotplug_usb;               /* libusb context of penlink_usb_wait_change() */
    int hotplug_state;               /* 0 not tried, 1 hotplug, -1 polling */
    int hotplug_changed;
};

/* Releases what penlink_usb_wait_change() set up on @p ctx. */
void transport_usb_ctx_cleanup(penlink_ctx *ctx);

/** Records @p status with a printf-style detail on @p ctx; returns @p status. */
int penlink_fail(penlink_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Maps a protocol-library status to the public enum. */
int penlink_from_pl(int pl_status);

#endif
