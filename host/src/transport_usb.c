/*
 * The USB transport over libusb-1.0. A pen is a device with a vendor-specific
 * interface (class 0xFF) holding one bulk OUT and one bulk IN endpoint.
 *
 * Reading keeps several IN transfers in flight at all times, so the pen can
 * stream chunks during a pull without waiting for the host to ask for each
 * USB transfer; completed transfers are handed out in order. A stall is
 * cleared (after cancelling what is in flight, as libusb asks) and the
 * transfers are submitted again.
 *
 * The three ways opening fails are told apart, because users lose hours when
 * they look alike: no pen (NOT_FOUND), no permission (ACCESS: the udev
 * rule), and another program holding the interface (BUSY).
 *
 * Pens are named by serial or by the USB port they are plugged into, as
 * udev and `lsusb -t` name ports ("1-2.3": bus 1, port 3 of the hub on
 * port 2), and listed in port order, so that a desk of pens reads the same
 * way every time.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libusb.h>

#include "clock.h"
#include "transport.h"

#define IN_TRANSFERS 4
#define IN_SIZE (16 * 1024)
#define USB_MAX_TIERS 7       /* port numbers in a path: USB allows 7 tiers */
#define USB_MAX_CANDIDATES 32 /* pens looked at on one bus scan */

/* PENLINK_UDEV_RULE: where the build installs the rule (host/CMakeLists.txt). */
static const char udev_hint[] =
    "the udev rule " PENLINK_UDEV_RULE " gives access to the user at the seat and to the "
    "group plugdev; install it (the penlink package, or cmake --install), run 'sudo udevadm "
    "control --reload && sudo udevadm trigger', then unplug and replug the pen";

typedef struct usb_in {
    struct libusb_transfer *xfer;
    struct usb_transport *owner;
    int done; /* completed, data waiting in buf[pos..len) */
    int busy; /* submitted */
    size_t pos;
    uint8_t buf[IN_SIZE];
} usb_in;

typedef struct usb_transport {
    transport base;
    libusb_context *usb;
    libusb_device_handle *h;
    int iface;
    uint8_t ep_in, ep_out;
    usb_in in[IN_TRANSFERS];
    int head;  /* the next transfer whose data comes out */
    int fatal; /* a transfer failed for good: the status to return */
} usb_transport;

static void usb_ids(uint16_t *vid, uint16_t *pid)
{
    *vid = PENLINK_USB_VID;
    *pid = PENLINK_USB_PID;
    const char *e = getenv("PENLINK_USB_ID");
    unsigned v, p;
    if (e && sscanf(e, "%x:%x", &v, &p) == 2 && v <= 0xFFFF && p <= 0xFFFF) {
        *vid = (uint16_t)v;
        *pid = (uint16_t)p;
    }
}

static int usb_status(penlink_ctx *ctx, int r, const char *where, const char *what)
{
    switch (r) {
    case LIBUSB_ERROR_ACCESS:
        return penlink_fail(ctx, PENLINK_ERR_ACCESS, "%s: %s: permission denied: %s", where, what,
                            udev_hint);
    case LIBUSB_ERROR_BUSY:
        return penlink_fail(ctx, PENLINK_ERR_BUSY,
                            "%s: %s: another program holds the pen (a running 'penlink watch', "
                            "or another tool); close it and try again",
                            where, what);
    case LIBUSB_ERROR_NO_DEVICE:
        return penlink_fail(ctx, PENLINK_ERR_GONE,
                            "%s: %s: the pen is gone (unplugged?); plug it in and try again", where,
                            what);
    case LIBUSB_ERROR_NOT_FOUND:
        return penlink_fail(ctx, PENLINK_ERR_NOT_FOUND, "%s: %s: not found", where, what);
    case LIBUSB_ERROR_TIMEOUT:
        return penlink_fail(ctx, PENLINK_ERR_TIMEOUT, "%s: %s: timed out", where, what);
    case LIBUSB_ERROR_NO_MEM:
        return penlink_fail(ctx, PENLINK_ERR_NO_MEM, "%s: %s: out of memory", where, what);
    default:
        return penlink_fail(ctx, PENLINK_ERR_IO, "%s: %s: %s", where, what, libusb_strerror(r));
    }
}

/* The vendor interface with one bulk IN and one bulk OUT endpoint, if any. */
static int find_iface(libusb_device *d, int *iface, uint8_t *in, uint8_t *out)
{
    struct libusb_config_descriptor *cfg;
    int found = 0;
    if (libusb_get_active_config_descriptor(d, &cfg) != 0 &&
        libusb_get_config_descriptor(d, 0, &cfg) != 0)
        return 0;
    for (int i = 0; i < cfg->bNumInterfaces && !found; i++) {
        const struct libusb_interface *it = &cfg->interface[i];
        for (int a = 0; a < it->num_altsetting && !found; a++) {
            const struct libusb_interface_descriptor *id = &it->altsetting[a];
            if (id->bInterfaceClass != LIBUSB_CLASS_VENDOR_SPEC)
                continue;
            uint8_t ei = 0, eo = 0;
            for (int e = 0; e < id->bNumEndpoints; e++) {
                const struct libusb_endpoint_descriptor *ep = &id->endpoint[e];
                if ((ep->bmAttributes & 3) != LIBUSB_TRANSFER_TYPE_BULK)
                    continue;
                if (ep->bEndpointAddress & LIBUSB_ENDPOINT_IN)
                    ei = ep->bEndpointAddress;
                else
                    eo = ep->bEndpointAddress;
            }
            if (ei && eo) {
                *iface = id->bInterfaceNumber;
                *in = ei;
                *out = eo;
                found = 1;
            }
        }
    }
    libusb_free_config_descriptor(cfg);
    return found;
}

/* Reads the serial string; returns a libusb error when the device can't be opened. */
static int read_serial(libusb_device *d, char *serial, size_t cap)
{
    struct libusb_device_descriptor dd;
    libusb_device_handle *h;
    serial[0] = '\0';
    if (libusb_get_device_descriptor(d, &dd) != 0)
        return LIBUSB_ERROR_IO;
    int r = libusb_open(d, &h);
    if (r != 0)
        return r;
    if (dd.iSerialNumber) {
        r = libusb_get_string_descriptor_ascii(h, dd.iSerialNumber, (unsigned char *)serial,
                                               (int)cap);
        if (r < 0)
            serial[0] = '\0';
    }
    libusb_close(h);
    return 0;
}

typedef struct candidate {
    libusb_device *dev;
    char serial[33];
    int open_err;
    int iface;
    uint8_t in, out;
    uint8_t bus;
    uint8_t ports[USB_MAX_TIERS];
    int nports;
    char port[PENLINK_PORT_MAX]; /* "1-2.3" */
} candidate;

/* "BUS-PORT.PORT..." of a device, as udev names it. */
static void port_path(candidate *k)
{
    int n = libusb_get_port_numbers(k->dev, k->ports, USB_MAX_TIERS);
    k->bus = libusb_get_bus_number(k->dev);
    k->nports = n > 0 ? n : 0;
    size_t len = (size_t)snprintf(k->port, sizeof k->port, "%u", k->bus);
    for (int i = 0; i < k->nports && len < sizeof k->port; i++)
        len += (size_t)snprintf(k->port + len, sizeof k->port - len, "%c%u", i ? '.' : '-',
                                k->ports[i]);
}

/* Port order: bus, then port numbers one tier at a time (1-2 < 1-2.1 < 1-10). */
static int by_port(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->bus != y->bus)
        return x->bus < y->bus ? -1 : 1;
    for (int i = 0; i < x->nports && i < y->nports; i++)
        if (x->ports[i] != y->ports[i])
            return x->ports[i] < y->ports[i] ? -1 : 1;
    return x->nports - y->nports;
}

/* 1 when @p s is a port path "BUS-PORT[.PORT...]" (digits only). */
static int is_port_path(const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || s[n] != '-')
        return 0;
    s += n + 1;
    for (;;) {
        n = strspn(s, "0123456789");
        if (n == 0)
            return 0;
        s += n;
        if (*s == '\0')
            return 1;
        if (*s != '.')
            return 0;
        s++;
    }
}

/* Every pen on the bus; the caller unrefs the devices. */
static int scan(libusb_context *usb, candidate *c, size_t cap, size_t *n)
{
    libusb_device **list;
    ssize_t cnt = libusb_get_device_list(usb, &list);
    uint16_t vid, pid;
    usb_ids(&vid, &pid);
    *n = 0;
    if (cnt < 0)
        return (int)cnt;
    for (ssize_t i = 0; i < cnt; i++) {
        struct libusb_device_descriptor dd;
        if (libusb_get_device_descriptor(list[i], &dd) != 0 || dd.idVendor != vid ||
            dd.idProduct != pid)
            continue;
        candidate k = { 0 };
        if (!find_iface(list[i], &k.iface, &k.in, &k.out))
            continue;
        k.open_err = read_serial(list[i], k.serial, sizeof k.serial);
        k.dev = libusb_ref_device(list[i]);
        port_path(&k);
        if (*n < cap)
            c[*n] = k;
        else
            libusb_unref_device(k.dev);
        (*n)++;
    }
    libusb_free_device_list(list, 1);
    qsort(c, *n < cap ? *n : cap, sizeof *c, by_port);
    return 0;
}

static void describe(const candidate *k, char *out, size_t cap)
{
    snprintf(out, cap, "usb port %s (bus %u device %u)", k->port, k->bus,
             libusb_get_device_address(k->dev));
}

static int usb_list(penlink_ctx *ctx, penlink_found *out, size_t cap, size_t *n)
{
    libusb_context *usb;
    candidate c[USB_MAX_CANDIDATES];
    size_t found = 0;
    int r = libusb_init(&usb);
    if (r != 0)
        return usb_status(ctx, r, "usb", "libusb_init");
    r = scan(usb, c, USB_MAX_CANDIDATES, &found);
    for (size_t i = 0; i < found && i < USB_MAX_CANDIDATES; i++) {
        if (i < cap) {
            penlink_found *f = &out[i];
            memset(f, 0, sizeof *f);
            snprintf(f->serial, sizeof f->serial, "%s", c[i].serial);
            snprintf(f->port, sizeof f->port, "%s", c[i].port);
            describe(&c[i], f->where, sizeof f->where);
            if (c[i].serial[0])
                snprintf(f->uri, sizeof f->uri, "usb:%s", c[i].serial);
            else
                snprintf(f->uri, sizeof f->uri, "usb");
            f->status =
                c[i].open_err ? usb_status(ctx, c[i].open_err, f->where, "open") : PENLINK_OK;
        }
        libusb_unref_device(c[i].dev);
    }
    libusb_exit(usb);
    *n = found;
    return r ? usb_status(ctx, r, "usb", "list devices") : PENLINK_OK;
}

static void LIBUSB_CALL in_done(struct libusb_transfer *x)
{
    usb_in *in = x->user_data;
    in->busy = 0;
    in->done = 1;
    in->pos = 0;
}

static int submit(usb_transport *u, usb_in *in)
{
    in->done = 0;
    in->pos = 0;
    libusb_fill_bulk_transfer(in->xfer, u->h, u->ep_in, in->buf, IN_SIZE, in_done, in, 0);
    int r = libusb_submit_transfer(in->xfer);
    if (r != 0)
        return r;
    in->busy = 1;
    return 0;
}

/* How long close and a stall wait for cancelled transfers: libusb forbids
 * freeing a transfer before its callback ran, so they wait for that; a host
 * controller completes a cancelled transfer at once, so this is a safeguard
 * against a broken stack, not a pen's pace. */
#define CANCEL_WAIT_MS 30000
#define CANCEL_AGAIN_MS 1000

static int in_flight(const usb_transport *u)
{
    int n = 0;
    for (int i = 0; i < IN_TRANSFERS; i++)
        n += u->in[i].busy != 0;
    return n;
}

/*
 * Cancels every transfer in flight and waits until each one's callback has
 * run (only then may it be freed or submitted again). Returns 0, or the
 * number of transfers still in flight when it gave up after CANCEL_WAIT_MS:
 * those must never be freed.
 */
static int cancel_all(usb_transport *u)
{
    long long start = pc_mono_ms(), asked = 0;
    int busy;
    for (busy = in_flight(u); busy > 0; busy = in_flight(u)) {
        long long t = pc_mono_ms();
        if (t - start >= CANCEL_WAIT_MS)
            break;
        if (asked == 0 || t - asked >= CANCEL_AGAIN_MS) {
            for (int i = 0; i < IN_TRANSFERS; i++)
                if (u->in[i].busy)
                    libusb_cancel_transfer(u->in[i].xfer);
            asked = t;
        }
        /* wake when the first busy transfer completes, or after 100 ms */
        int i = 0;
        while (!u->in[i].busy)
            i++;
        struct timeval tv = { 0, 100000 };
        libusb_handle_events_timeout_completed(u->usb, &tv, &u->in[i].done);
    }
    return busy;
}

static int restart_in(usb_transport *u)
{
    for (int i = 0; i < IN_TRANSFERS; i++) {
        int r = submit(u, &u->in[(u->head + i) % IN_TRANSFERS]);
        if (r != 0)
            return r;
    }
    return 0;
}

static int usb_recv(transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms)
{
    usb_transport *u = (usb_transport *)t;
    long long end = pc_mono_ms() + timeout_ms;
    *got = 0;
    for (;;) {
        if (u->fatal)
            return u->fatal;
        usb_in *in = &u->in[u->head];
        if (in->done) {
            struct libusb_transfer *x = in->xfer;
            if (x->status == LIBUSB_TRANSFER_COMPLETED) {
                size_t avail = (size_t)x->actual_length - in->pos;
                size_t n = avail < cap ? avail : cap;
                memcpy(p, in->buf + in->pos, n);
                in->pos += n;
                *got = n;
                if (in->pos == (size_t)x->actual_length) {
                    u->head = (u->head + 1) % IN_TRANSFERS;
                    int r = submit(u, in);
                    if (r != 0) {
                        u->fatal = usb_status(t->ctx, r, t->where, "bulk IN");
                        return n ? PENLINK_OK : u->fatal;
                    }
                }
                if (n)
                    return PENLINK_OK;
                continue;
            }
            if (x->status == LIBUSB_TRANSFER_STALL) {
                /* libusb: cancel what is in flight, clear the halt, start again */
                in->done = 0;
                if (cancel_all(u) != 0) {
                    u->fatal = penlink_fail(t->ctx, PENLINK_ERR_IO,
                                            "%s: bulk IN stalled and its transfers did not "
                                            "finish after cancelling; replug the pen",
                                            t->where);
                    return u->fatal;
                }
                int r = libusb_clear_halt(u->h, u->ep_in);
                if (r == 0)
                    r = restart_in(u);
                if (r != 0) {
                    u->fatal = usb_status(t->ctx, r, t->where, "clear stall on bulk IN");
                    return u->fatal;
                }
                continue;
            }
            if (x->status == LIBUSB_TRANSFER_NO_DEVICE) {
                u->fatal = usb_status(t->ctx, LIBUSB_ERROR_NO_DEVICE, t->where, "bulk IN");
                return u->fatal;
            }
            if (x->status == LIBUSB_TRANSFER_CANCELLED || x->status == LIBUSB_TRANSFER_TIMED_OUT) {
                int r = submit(u, in);
                if (r != 0) {
                    u->fatal = usb_status(t->ctx, r, t->where, "bulk IN");
                    return u->fatal;
                }
                continue;
            }
            u->fatal = penlink_fail(t->ctx, PENLINK_ERR_IO, "%s: bulk IN failed (status %d)",
                                    t->where, (int)x->status);
            return u->fatal;
        }
        if (t->ctx->cancelled)
            return PENLINK_ERR_CANCELLED;
        long long left = end - pc_mono_ms();
        if (left <= 0)
            return PENLINK_ERR_TIMEOUT;
        if (left > 100)
            left = 100; /* stay responsive to cancellation */
        struct timeval tv = { 0, (suseconds_t)(left * 1000) };
        int r = libusb_handle_events_timeout_completed(u->usb, &tv, &in->done);
        if (r != 0 && r != LIBUSB_ERROR_INTERRUPTED) {
            u->fatal = usb_status(t->ctx, r, t->where, "handle events");
            return u->fatal;
        }
    }
}

static int usb_send(transport *t, const uint8_t *p, size_t n, int timeout_ms)
{
    usb_transport *u = (usb_transport *)t;
    int stalls = 0;
    while (n > 0) {
        int sent = 0;
        int chunk = n > (1u << 20) ? 1 << 20 : (int)n;
        int r = libusb_bulk_transfer(u->h, u->ep_out, (unsigned char *)p, chunk, &sent,
                                     (unsigned)timeout_ms);
        if (r == LIBUSB_ERROR_PIPE && stalls++ < 2) {
            /* the pen halted OUT (it does so on overload): clear and go on */
            int c = libusb_clear_halt(u->h, u->ep_out);
            if (c != 0)
                return usb_status(t->ctx, c, t->where, "clear stall on bulk OUT");
            p += sent;
            n -= (size_t)sent;
            continue;
        }
        if (r != 0)
            return usb_status(t->ctx, r, t->where, "bulk OUT");
        p += sent;
        n -= (size_t)sent;
    }
    return PENLINK_OK;
}

static void usb_close(transport *t)
{
    usb_transport *u = (usb_transport *)t;
    int stuck = u->h ? cancel_all(u) : 0;
    if (stuck) {
        /* freeing a transfer libusb may still complete would corrupt memory: leave
         * them, the device handle and the libusb context allocated instead */
        penlink_fail(t->ctx, PENLINK_ERR_IO,
                     "%s: %d USB transfers did not finish %d s after they were cancelled; "
                     "their memory is left allocated (replug the pen)",
                     t->where, stuck, CANCEL_WAIT_MS / 1000);
        return;
    }
    if (u->h) {
        libusb_release_interface(u->h, u->iface);
        libusb_close(u->h);
    }
    for (int i = 0; i < IN_TRANSFERS; i++)
        libusb_free_transfer(u->in[i].xfer);
    if (u->usb)
        libusb_exit(u->usb);
    free(u);
}

/* Hotplug: a libusb context kept in the USB backend's slot of the penlink
 * context, for waiting on arrivals and removals. */
typedef struct usb_hotplug {
    libusb_context *usb;
    int state; /* 1 hotplug, -1 polling */
    int changed;
} usb_hotplug;

static int LIBUSB_CALL hp_cb(libusb_context *c, libusb_device *dev, libusb_hotplug_event ev,
                             void *user)
{
    (void)c;
    (void)dev;
    (void)ev;
    ((usb_hotplug *)user)->changed = 1;
    return 0;
}

/* The context's hotplug state, set up on first use; NULL when out of memory. */
static usb_hotplug *hotplug_of(penlink_ctx *ctx)
{
    usb_hotplug *h = ctx->transport_state[TRANSPORT_USB];
    if (h)
        return h;
    h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    ctx->transport_state[TRANSPORT_USB] = h;
    libusb_context *c = NULL;
    uint16_t vid, pid;
    usb_ids(&vid, &pid);
    h->state = -1;
    if (libusb_init(&c) == 0) {
        if (libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG) &&
            libusb_hotplug_register_callback(
                c, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT, 0, vid,
                pid, LIBUSB_HOTPLUG_MATCH_ANY, hp_cb, h, NULL) == 0) {
            h->state = 1;
            h->usb = c;
        } else {
            libusb_exit(c);
        }
    }
    return h;
}

int penlink_dev_wait_change(penlink_ctx *ctx, int timeout_ms, int *changed)
{
    if (!ctx || !changed)
        return PENLINK_ERR_INVALID_ARG;
    *changed = 0;
    penlink_enter(ctx);
    usb_hotplug *h = hotplug_of(ctx);
    if (!h)
        return penlink_fail(ctx, PENLINK_ERR_NO_MEM, "out of memory");
    long long end = pc_mono_ms() + timeout_ms;
    while (!ctx->cancelled) {
        long long left = end - pc_mono_ms();
        if (h->changed) {
            h->changed = 0;
            *changed = 1;
            return PENLINK_OK;
        }
        if (left <= 0)
            return PENLINK_OK;
        if (left > 100)
            left = 100;
        if (h->state == 1) {
            struct timeval tv = { 0, (suseconds_t)(left * 1000) };
            libusb_handle_events_timeout_completed(h->usb, &tv, &h->changed);
        } else {
            struct timespec ts = { 0, (long)left * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    return PENLINK_ERR_CANCELLED;
}

static void usb_ctx_cleanup(penlink_ctx *ctx)
{
    usb_hotplug *h = ctx->transport_state[TRANSPORT_USB];
    if (!h)
        return;
    if (h->usb)
        libusb_exit(h->usb); /* also drops the callback */
    free(h);
    ctx->transport_state[TRANSPORT_USB] = NULL;
}

/* "usb" (addr NULL: the only pen), "usb:SERIAL", "usb:BUS-PORT.PORT", "usb:serial=SERIAL" */
static int usb_open_addr(penlink_ctx *ctx, const char *addr, transport **out)
{
    if (addr && strcmp(addr, "serial=") == 0)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "'usb:%s' names no serial: use usb:serial=SERIAL (or usb:SERIAL)",
                            addr);
    return transport_usb_open(ctx, addr, out);
}

const transport_backend transport_usb_backend = { "usb", usb_open_addr, 1, usb_list,
                                                  usb_ctx_cleanup };

static const transport_ops usb_ops = { "usb", usb_send, usb_recv, usb_close };

/* No pen matches the address: what was looked for, and what is plugged in instead. */
static int no_match(penlink_ctx *ctx, size_t n, const char *serial, const char *port)
{
    uint16_t vid, pid;
    usb_ids(&vid, &pid);
    if (port)
        return penlink_fail(ctx, PENLINK_ERR_NOT_FOUND,
                            "no pen is plugged into USB port %s (%zu pen%s elsewhere: see "
                            "'penlink list')",
                            port, n, n == 1 ? "" : "s");
    if (serial && n > 0)
        return penlink_fail(ctx, PENLINK_ERR_NOT_FOUND,
                            "no pen with serial %s is plugged in (%zu other pen%s: see "
                            "'penlink list')",
                            serial, n, n == 1 ? "" : "s");
    return penlink_fail(ctx, PENLINK_ERR_NOT_FOUND,
                        "no pen found on USB (%04x:%04x with a vendor interface): plug "
                        "it in, check the cable, and see 'penlink list'",
                        vid, pid);
}

/* One serial on several pens: only their ports tell them apart. */
static int serial_clash(penlink_ctx *ctx, const candidate *c, size_t n, const char *serial,
                        size_t matches)
{
    char list[512] = "";
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(serial, c[i].serial) != 0)
            continue;
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s usb:%s",
                 k == 0             ? ""
                 : k + 1 == matches ? " or"
                                    : ",",
                 c[i].port);
        k++;
    }
    return penlink_fail(ctx, PENLINK_ERR_AMBIGUOUS,
                        "%zu pens plugged in present serial %s: the serials clash (one of them "
                        "is mislabelled or a clone); choose one by its USB port with --device:%s "
                        "(see 'penlink list')",
                        matches, serial, list);
}

/* Several pens and no address: each by its serial, or by its port where the
 * serial does not name it alone. */
static int several_pens(penlink_ctx *ctx, const candidate *c, size_t n, size_t matches)
{
    char list[512] = "";
    int clash = 0;
    for (size_t i = 0; i < n; i++) {
        int unique = c[i].serial[0] != '\0';
        for (size_t j = 0; j < n && unique; j++)
            if (j != i && strcmp(c[i].serial, c[j].serial) == 0)
                unique = 0;
        clash |= !unique;
        size_t l = strlen(list);
        if (unique)
            snprintf(list + l, sizeof list - l, "%s usb:%s (port %s)", i ? "," : "", c[i].serial,
                     c[i].port);
        else
            snprintf(list + l, sizeof list - l, "%s usb:%s (serial %s)", i ? "," : "", c[i].port,
                     c[i].serial[0] ? c[i].serial : "none");
    }
    return penlink_fail(ctx, PENLINK_ERR_AMBIGUOUS,
                        "%zu pens are plugged in; choose one with --device:%s%s", matches, list,
                        clash ? " (some serials clash: those pens are named by their USB port)"
                              : "");
}

/* The one candidate the address names (@p port, else @p serial, else the
 * only pen) into *pick; else a failure that says what tells them apart. */
static int pick_candidate(penlink_ctx *ctx, const candidate *c, size_t n, const char *serial,
                          const char *port, size_t *pick)
{
    size_t matches = 0;
    for (size_t i = 0; i < n; i++)
        if (port ? strcmp(port, c[i].port) == 0 : !serial || strcmp(serial, c[i].serial) == 0) {
            if (matches++ == 0)
                *pick = i;
        }
    if (matches == 0)
        return no_match(ctx, n, serial, port);
    if (matches > 1 && serial)
        return serial_clash(ctx, c, n, serial, matches);
    if (matches > 1)
        return several_pens(ctx, c, n, matches);
    return PENLINK_OK;
}

/* Opens the pen @p k and claims its vendor interface (the kernel driver
 * detached while it is claimed). */
static int open_candidate(usb_transport *u, const candidate *k)
{
    penlink_ctx *ctx = u->base.ctx;
    describe(k, u->base.where, sizeof u->base.where);
    if (k->open_err)
        return usb_status(ctx, k->open_err, u->base.where, "open");
    int r = libusb_open(k->dev, &u->h);
    if (r != 0) {
        u->h = NULL;
        return usb_status(ctx, r, u->base.where, "open");
    }
    u->iface = k->iface;
    u->ep_in = k->in;
    u->ep_out = k->out;
    u->base.usb.present = 1;
    u->base.usb.bus = libusb_get_bus_number(k->dev);
    u->base.usb.address = libusb_get_device_address(k->dev);
    u->base.usb.ep_in = u->ep_in;
    u->base.usb.ep_out = u->ep_out;
    libusb_set_auto_detach_kernel_driver(u->h, 1);
    r = libusb_claim_interface(u->h, u->iface);
    if (r != 0) {
        libusb_close(u->h);
        u->h = NULL;
        return usb_status(ctx, r, u->base.where, "claim interface");
    }
    return PENLINK_OK;
}

/* The IN transfers allocated and submitted: the pen's bytes are read from here on. */
static int start_reading(usb_transport *u)
{
    for (int i = 0; i < IN_TRANSFERS; i++) {
        u->in[i].owner = u;
        u->in[i].xfer = libusb_alloc_transfer(0);
        if (!u->in[i].xfer)
            return PENLINK_ERR_NO_MEM;
    }
    int r = restart_in(u);
    if (r != 0)
        return usb_status(u->base.ctx, r, u->base.where, "bulk IN");
    return PENLINK_OK;
}

int transport_usb_open(penlink_ctx *ctx, const char *serial, transport **out)
{
    usb_transport *u = calloc(1, sizeof *u);
    candidate c[USB_MAX_CANDIDATES];
    size_t n = 0, pick = 0;
    int rc = PENLINK_OK, r;
    /* "usb:1-2.3" names a port, "usb:serial=S" (or any other text) a serial */
    const char *port = NULL;
    if (serial && strncmp(serial, "serial=", 7) == 0)
        serial += 7;
    else if (serial && is_port_path(serial)) {
        port = serial;
        serial = NULL;
    }
    if (!u)
        return penlink_fail(ctx, PENLINK_ERR_NO_MEM, "no memory for a USB session");
    u->base.ops = &usb_ops;
    u->base.ctx = ctx;
    r = libusb_init(&u->usb);
    if (r != 0) {
        u->usb = NULL;
        rc = usb_status(ctx, r, "usb", "libusb_init");
        goto fail;
    }
    r = scan(u->usb, c, USB_MAX_CANDIDATES, &n);
    if (r != 0) {
        rc = usb_status(ctx, r, "usb", "list devices");
        goto fail;
    }
    if (n > USB_MAX_CANDIDATES)
        n = USB_MAX_CANDIDATES;
    rc = pick_candidate(ctx, c, n, serial, port, &pick);
    if (rc != PENLINK_OK)
        goto fail_unref;
    rc = open_candidate(u, &c[pick]);
    if (rc != PENLINK_OK)
        goto fail_unref;
    for (size_t i = 0; i < n; i++)
        libusb_unref_device(c[i].dev);
    n = 0;
    rc = start_reading(u);
    if (rc != PENLINK_OK)
        goto fail;
    *out = &u->base;
    return PENLINK_OK;
fail_unref:
    for (size_t i = 0; i < n; i++)
        libusb_unref_device(c[i].dev);
fail:
    usb_close(&u->base);
    return rc;
}
