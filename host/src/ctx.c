/* The library context, status sentences and the record helpers. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"
#include "trace.h"
#include "pl/record.h"

/* A flag a signal handler may set: only a lock-free atomic is async-signal-safe. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "cancellation needs a lock-free atomic int");

/* penlink_record is pl_record under its public name: same fields, same places. */
_Static_assert(sizeof(penlink_record) == sizeof(pl_record), "record layout");
_Static_assert(offsetof(penlink_record, dropped) == offsetof(pl_record, dropped), "record layout");
_Static_assert(offsetof(penlink_record, cartridge_serial) == offsetof(pl_record, cartridge_serial),
               "record layout");
_Static_assert(offsetof(penlink_record, strokes) == offsetof(pl_record, strokes), "record layout");

const char *penlink_strerror(int status)
{
    switch (status) {
    case PENLINK_OK: return "success";
    case PENLINK_ERR_INVALID_ARG: return "invalid argument";
    case PENLINK_ERR_NO_MEM: return "out of memory";
    case PENLINK_ERR_IO: return "input/output error";
    case PENLINK_ERR_PROTOCOL: return "bytes that do not follow the penlink protocol";
    case PENLINK_ERR_INTEGRITY: return "integrity check failed";
    case PENLINK_ERR_CANCELLED: return "cancelled";
    case PENLINK_ERR_UNSUPPORTED: return "unsupported format or version";
    case PENLINK_ERR_NOT_FOUND: return "no pen found";
    case PENLINK_ERR_ACCESS: return "permission denied (install the udev rule)";
    case PENLINK_ERR_BUSY: return "the pen is busy: another program holds it";
    case PENLINK_ERR_GONE: return "the pen went away";
    case PENLINK_ERR_TIMEOUT: return "the pen did not answer in time";
    case PENLINK_ERR_VERSION: return "the pen speaks another protocol version";
    case PENLINK_ERR_DEVICE: return "the pen refused the request";
    case PENLINK_ERR_CONFLICT: return "the configuration changed meanwhile";
    case PENLINK_ERR_AMBIGUOUS: return "several pens match: choose one";
    case PENLINK_ERR_INVALID_CONFIG: return "a configuration value is outside the pen's limits";
    case PENLINK_ERR_AUTH: return "not authorised: the pen refused the signature";
    default: return "unknown error";
    }
}

/* The enum's own spelling, so the name can never drift from the header. */
#define STATUS_NAME(s)                                                                             \
    case s: return #s

const char *penlink_status_name(int status)
{
    switch (status) {
        STATUS_NAME(PENLINK_OK);
        STATUS_NAME(PENLINK_ERR_INVALID_ARG);
        STATUS_NAME(PENLINK_ERR_NO_MEM);
        STATUS_NAME(PENLINK_ERR_IO);
        STATUS_NAME(PENLINK_ERR_PROTOCOL);
        STATUS_NAME(PENLINK_ERR_INTEGRITY);
        STATUS_NAME(PENLINK_ERR_CANCELLED);
        STATUS_NAME(PENLINK_ERR_UNSUPPORTED);
        STATUS_NAME(PENLINK_ERR_NOT_FOUND);
        STATUS_NAME(PENLINK_ERR_ACCESS);
        STATUS_NAME(PENLINK_ERR_BUSY);
        STATUS_NAME(PENLINK_ERR_GONE);
        STATUS_NAME(PENLINK_ERR_TIMEOUT);
        STATUS_NAME(PENLINK_ERR_VERSION);
        STATUS_NAME(PENLINK_ERR_DEVICE);
        STATUS_NAME(PENLINK_ERR_CONFLICT);
        STATUS_NAME(PENLINK_ERR_AMBIGUOUS);
        STATUS_NAME(PENLINK_ERR_INVALID_CONFIG);
        STATUS_NAME(PENLINK_ERR_AUTH);
    default: return "unknown";
    }
}

#undef STATUS_NAME

const char *penlink_version(void)
{
    return PENLINK_VERSION_STRING;
}

int penlink_ctx_new(penlink_ctx **out)
{
    if (!out)
        return PENLINK_ERR_INVALID_ARG;
    *out = calloc(1, sizeof **out);
    if (!*out)
        return PENLINK_ERR_NO_MEM;
    (*out)->timeout_ms = PENLINK_DEFAULT_TIMEOUT_MS;
    (*out)->retries = PENLINK_DEFAULT_RETRIES;
    return PENLINK_OK;
}

void penlink_ctx_set_timeout(penlink_ctx *ctx, int timeout_ms, int retries)
{
    if (!ctx)
        return;
    ctx->timeout_ms = timeout_ms > 0 ? timeout_ms : PENLINK_DEFAULT_TIMEOUT_MS;
    ctx->retries = retries >= 0 ? retries : PENLINK_DEFAULT_RETRIES;
}

void penlink_ctx_free(penlink_ctx *ctx)
{
    if (ctx) {
        transport_ctx_cleanup(ctx);
        trace_file_close(ctx->trace);
    }
    free(ctx);
}

int penlink_ctx_set_trace(penlink_ctx *ctx, const char *path)
{
    if (!ctx)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ctx);
    trace_file *tf = NULL;
    if (path) {
        int st = trace_file_open(ctx, path, &tf);
        if (st != PENLINK_OK)
            return st;
    }
    trace_file_close(ctx->trace);
    ctx->trace = tf;
    return PENLINK_OK;
}

void penlink_ctx_set_message_cb(penlink_ctx *ctx, penlink_message_ex_cb cb, void *user)
{
    if (!ctx)
        return;
    ctx->on_message = cb;
    ctx->on_message_user = user;
}

const char *penlink_ctx_trace_error(const penlink_ctx *ctx)
{
    return ctx ? trace_file_error(ctx->trace) : NULL;
}

void penlink_ctx_set_notice_cb(penlink_ctx *ctx, void (*cb)(void *user, const char *text),
                               void *user)
{
    if (!ctx)
        return;
    ctx->on_notice = cb;
    ctx->on_notice_user = user;
}

int penlink_ctx_set_progress_cb(penlink_ctx *ctx, penlink_work_progress_cb cb, void *user)
{
    if (!ctx)
        return PENLINK_ERR_INVALID_ARG;
    ctx->on_work = cb;
    ctx->on_work_user = user;
    return PENLINK_OK;
}

void penlink_ctx_cancel(penlink_ctx *ctx)
{
    if (ctx)
        atomic_store(&ctx->cancelled, 1);
}

void penlink_ctx_reset_cancel(penlink_ctx *ctx)
{
    if (ctx)
        atomic_store(&ctx->cancelled, 0);
}

const char *penlink_ctx_errmsg(const penlink_ctx *ctx)
{
    return ctx ? ctx->errmsg : "";
}

int penlink_fail(penlink_ctx *ctx, int status, const char *fmt, ...)
{
    if (!ctx)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->errmsg, sizeof ctx->errmsg, fmt, ap);
    va_end(ap);
    return status;
}

int penlink_from_pl(int st)
{
    switch (st) {
    case PL_OK: return PENLINK_OK;
    case PL_ERR_INVALID_ARG: return PENLINK_ERR_INVALID_ARG;
    case PL_ERR_FRAME_CRC:
    case PL_ERR_CHUNK_SIZE:
    case PL_ERR_CHUNK_COUNT:
    case PL_ERR_CHUNK_SEQ: return PENLINK_ERR_INTEGRITY;
    default: return PENLINK_ERR_PROTOCOL;
    }
}

const char *penlink_record_kind_name(uint32_t kind)
{
    return pl_record_kind_name(kind);
}

const char *penlink_record_field_name(uint32_t bit)
{
    return pl_record_field_name(bit);
}

uint64_t penlink_record_field_get(const penlink_record *rec, uint32_t bit)
{
    return pl_record_get((const pl_record *)rec, bit);
}
