/* libpenlink internals shared between its source files; not installed. */
#ifndef PENLINK_INTERNAL_H
#define PENLINK_INTERNAL_H

#define PENLINK_BUILDING 1
#include "penlink/penlink.h"
#include "pl/status.h"

struct penlink_ctx {
    char errmsg[512];
    volatile int cancelled;
};

/** Records @p status with a printf-style detail on @p ctx; returns @p status. */
int penlink_fail(penlink_ctx *ctx, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/** Maps a protocol-library status to the public enum. */
int penlink_from_pl(int pl_status);

#endif
