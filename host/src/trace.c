/*
 * Traces (`penlink --trace FILE`): a transport that wraps another and
 * records every byte it moves into a pcapng file, so that USB and the
 * simulator's socket are traced by the same code. Over USB each send and
 * each receive is one bulk transfer (the USB transport hands out one
 * completed IN transfer per receive), recorded as usbmon records it
 * (LINKTYPE_USB_LINUX_MMAPPED) with the device's bus, address and
 * endpoints, so Wireshark decodes a trace like a kernel capture; over the
 * socket each read and write is one packet of the penlink stream link type
 * (docs/protocol.md section 11).
 *
 * Each packet is one writev() to the file, made before the call returns, so
 * a penlink killed at any point leaves every packet before it in the file
 * and at most the last one cut short.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pl/capture.h"
#include "trace.h"

struct trace_file {
    int fd;
    int refs;            /* the context's, and one per session recording into it */
    uint32_t interfaces; /* described so far */
    uint64_t urb_id;
    uint64_t packets; /* recorded so far */
    int failed;       /* a write failed: nothing more is recorded */
    char path[256];
    char error[400]; /* what failed, for penlink_ctx_trace_error() */
};

typedef struct trace_transport {
    transport base;
    transport *inner;
    trace_file *tf;
    uint32_t interface;
} trace_transport;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int write_all(trace_file *tf, struct iovec *iov, int n)
{
    for (;;) {
        ssize_t w = writev(tf->fd, iov, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        while (n > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n == 0)
            return 0;
        iov->iov_base = (uint8_t *)iov->iov_base + w;
        iov->iov_len -= (size_t)w;
    }
}

static int trace_fail(penlink_ctx *ctx, trace_file *tf)
{
    return penlink_fail(ctx, PENLINK_ERR_IO, "trace %s: write: %s", tf->path, strerror(errno));
}

int trace_file_open(penlink_ctx *ctx, const char *path, trace_file **out)
{
    trace_file *tf = calloc(1, sizeof *tf);
    if (!tf)
        return penlink_fail(ctx, PENLINK_ERR_NO_MEM, "no memory for a trace");
    snprintf(tf->path, sizeof tf->path, "%s", path);
    tf->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (tf->fd < 0) {
        int st = penlink_fail(ctx, PENLINK_ERR_IO, "trace %s: %s", path, strerror(errno));
        free(tf);
        return st;
    }
    uint8_t shb[PL_CAPTURE_SHB_SIZE];
    struct iovec iov = { shb, pl_capture_shb(shb) };
    if (write_all(tf, &iov, 1) != 0) {
        int st = trace_fail(ctx, tf);
        trace_file_close(tf);
        return st;
    }
    tf->refs = 1;
    *out = tf;
    return PENLINK_OK;
}

void trace_file_close(trace_file *tf)
{
    if (!tf || --tf->refs > 0)
        return;
    close(tf->fd);
    free(tf);
}

/* One packet: the block head, a pseudo-header, the bytes, the block tail. */
static int record(trace_transport *tt, pl_dir dir, const uint8_t *p, size_t n)
{
    trace_file *tf = tt->tf;
    transport *in = tt->inner;
    if (tf->failed)
        return PENLINK_OK;
    uint8_t head[28], tail[19], phdr[PL_USBMON_HDR_SIZE];
    size_t plen;
    int64_t ts = now_us();
    if (in->usb.present) {
        pl_usb_xfer x = {
            .urb_id = ++tf->urb_id,
            .ts_us = ts,
            .bus = in->usb.bus,
            .device = in->usb.address,
            .endpoint = dir == PL_DIR_TO_HOST ? in->usb.ep_in : in->usb.ep_out,
            .len = (uint32_t)n,
            .status = dir == PL_DIR_TO_HOST ? 0 : -EINPROGRESS,
            .complete = dir == PL_DIR_TO_HOST,
        };
        pl_capture_usbmon_hdr(phdr, &x);
        plen = PL_USBMON_HDR_SIZE;
    } else {
        pl_capture_stream_phdr(phdr, dir);
        plen = PL_STREAM_PHDR_SIZE;
    }
    uint32_t len = (uint32_t)(plen + n);
    struct iovec iov[4] = {
        { head, pl_capture_epb_head(head, tt->interface, ts, len) },
        { phdr, plen },
        { (void *)p, n },
        { tail, pl_capture_epb_tail(tail, len, dir) },
    };
    if (write_all(tf, iov, 4) != 0) {
        /* The bytes went over the wire whatever the trace's fate: the
         * operation goes on and says what happened; the trace stops here. */
        tf->failed = 1;
        snprintf(tf->error, sizeof tf->error,
                 "the trace %s is incomplete: writing its packet %llu (%s, %zu bytes) failed: %s; "
                 "it holds the %llu packets before it, and none after",
                 tf->path, (unsigned long long)tf->packets + 1,
                 dir == PL_DIR_TO_HOST ? "pen to host" : "host to pen", n, strerror(errno),
                 (unsigned long long)tf->packets);
        return PENLINK_OK;
    }
    tf->packets++;
    return PENLINK_OK;
}

const char *trace_file_error(const trace_file *tf)
{
    return tf && tf->failed ? tf->error : NULL;
}

static int tr_send(transport *t, const uint8_t *p, size_t n, int timeout_ms)
{
    trace_transport *tt = (trace_transport *)t;
    int st = tt->inner->ops->send(tt->inner, p, n, timeout_ms);
    if (st != PENLINK_OK)
        return st;
    return record(tt, PL_DIR_TO_PEN, p, n);
}

static int tr_recv(transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms)
{
    trace_transport *tt = (trace_transport *)t;
    int st = tt->inner->ops->recv(tt->inner, p, cap, got, timeout_ms);
    if (st != PENLINK_OK || *got == 0)
        return st;
    return record(tt, PL_DIR_TO_HOST, p, *got);
}

static void tr_close(transport *t)
{
    trace_transport *tt = (trace_transport *)t;
    tt->inner->ops->close(tt->inner);
    trace_file_close(tt->tf);
    free(tt);
}

static const transport_ops trace_ops = { "trace", tr_send, tr_recv, tr_close };

int transport_trace_wrap(penlink_ctx *ctx, trace_file *tf, transport *inner, transport **out)
{
    trace_transport *tt = calloc(1, sizeof *tt);
    if (!tt)
        return penlink_fail(ctx, PENLINK_ERR_NO_MEM, "no memory for a trace");
    char desc[160], name[32];
    snprintf(desc, sizeof desc, "penlink %s %s", PENLINK_VERSION_STRING, inner->where);
    snprintf(name, sizeof name, "usbmon%u", inner->usb.bus);
    uint8_t idb[PL_CAPTURE_IDB_MAX];
    struct iovec iov = { idb, 0 };
    iov.iov_len =
        pl_capture_idb(idb, inner->usb.present ? PL_LINKTYPE_USB_MMAPPED : PL_LINKTYPE_PENLINK,
                       inner->usb.present ? name : inner->where, desc);
    if (write_all(tf, &iov, 1) != 0) {
        free(tt);
        return trace_fail(ctx, tf);
    }
    tt->base = *inner;
    tt->base.ops = &trace_ops;
    tt->inner = inner;
    tt->tf = tf;
    tf->refs++;
    tt->interface = tf->interfaces++;
    *out = &tt->base;
    return PENLINK_OK;
}
