/* emu_pen.c - see emu_pen.h. The usbfs emulation follows umockdev's ioctl
 * model: SUBMITURB queues a URB, the "device" completes it now or later,
 * REAPURBNDELAY hands completed URBs back, DISCARDURB cancels them. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <linux/ioctl.h>
#include <linux/usb/ch9.h>
#include <linux/usbdevice_fs.h>
#include <umockdev.h>

#include "emu_pen.h"
#include "pen.h"
#include "usb_desc.h"

#define MAX_PENS 4

typedef struct port {
    emu_pen *e;
    int index;
    pen *p;
    char syspath[160], devnode[64];
    UMockdevIoctlBase *handler;
    GMutex lock;
    GQueue waiting; /* IN URBs waiting for data */
    GQueue hung;
    GQueue done;
    GByteArray *inq; /* bytes the pen sent, not yet read */
    bool halted[2];
    bool stall_next, hang_next, unplugged;
    uint8_t desc[512]; /* device + configuration descriptors, as sysfs shows them */
    size_t desc_len;
} port;

struct emu_pen {
    UMockdevTestbed *tb;
    int n;
    int devnums; /* device numbers given out on bus 1 (the root hub has 1) */
    port ports[MAX_PENS];
};

static const guint8 hub_desc[] = {
    18, 1, 0x00, 0x02, 9, 0,  1, 64, 0x6b, 0x1d, 0x02, 0x00, 0x00, 0x01, 0,
    0,  0, 1,    9,    2, 25, 0, 1,  1,    0,    0xe0, 0,    9,    4,    0,
    0,  1, 9,    0,    0, 0,  7, 5,  0x81, 0x03, 4,    0,    12,
};

#define URB(d) ((struct usbdevfs_urb *)(d)->data)

static void *arg_struct(UMockdevIoctlData *arg, gsize len)
{
    UMockdevIoctlData *d = umockdev_ioctl_data_resolve(arg, 0, len, NULL);
    void *p = d ? d->data : NULL;
    g_clear_object(&d);
    return p;
}

static void finish(port *pt, UMockdevIoctlData *u, int status, int len)
{
    URB(u)->status = status;
    URB(u)->actual_length = len;
    g_queue_push_tail(&pt->done, u);
}

int emu_pen_deliver(emu_pen *e, int index, const uint8_t *data, size_t len)
{
    port *pt = &e->ports[index];
    if (pt->unplugged)
        return -1;
    g_byte_array_append(pt->inq, data, (guint)len);
    return 0;
}

/* Answers waiting IN URBs; lets the pen produce more when nothing is queued. */
static void pump(port *pt)
{
    while (!g_queue_is_empty(&pt->waiting)) {
        if (pt->inq->len == 0 && !pen_poll(pt->p) && pt->inq->len == 0)
            break;
        if (pt->inq->len == 0)
            continue; /* the pen worked (e.g. compressed) but sent nothing yet */
        UMockdevIoctlData *u = g_queue_pop_head(&pt->waiting);
        guint n = MIN(pt->inq->len, (guint)URB(u)->buffer_length);
        memcpy(URB(u)->buffer, pt->inq->data, n);
        g_byte_array_remove_range(pt->inq, 0, n);
        finish(pt, u, 0, (int)n);
    }
}

/* EP0: the firmware's own answers (descriptors, strings, MS OS 2.0). */
static int control(port *pt, const uint8_t *setup, guint8 *data, int room)
{
    long n = pen_usb_control_in(setup, pt->p->serial, true, data, (size_t)room);
    return n < 0 ? -EPIPE : (int)n;
}

static int submit_urb(port *pt, UMockdevIoctlData *arg)
{
    UMockdevIoctlData *u = umockdev_ioctl_data_resolve(arg, 0, sizeof(struct usbdevfs_urb), NULL);
    if (!u)
        return EFAULT;
    struct usbdevfs_urb *urb = URB(u);
    if (urb->buffer_length < 0) {
        g_object_unref(u);
        return EINVAL;
    }
    UMockdevIoctlData *buf = umockdev_ioctl_data_resolve(
        u, G_STRUCT_OFFSET(struct usbdevfs_urb, buffer), (gsize)urb->buffer_length, NULL);
    g_clear_object(&buf);
    int in = (urb->endpoint & USB_DIR_IN) ? 1 : 0;

    if (urb->type == USBDEVFS_URB_TYPE_CONTROL && urb->buffer_length >= 8) {
        int r = control(pt, urb->buffer, (guint8 *)urb->buffer + 8, urb->buffer_length - 8);
        finish(pt, u, MIN(r, 0), MAX(r, 0));
    } else if (urb->type != USBDEVFS_URB_TYPE_BULK || (urb->endpoint & 0x7f) != 1) {
        g_object_unref(u);
        return ENOENT;
    } else if (pt->hang_next) {
        pt->hang_next = false;
        g_queue_push_tail(&pt->hung, u);
    } else if (pt->stall_next || pt->halted[in]) {
        pt->stall_next = false;
        pt->halted[in] = true;
        finish(pt, u, -EPIPE, 0);
    } else if (!in) {
        pen_usb_rx(pt->p, urb->buffer, (size_t)urb->buffer_length);
        finish(pt, u, 0, urb->buffer_length);
    } else {
        g_queue_push_tail(&pt->waiting, u);
    }
    pump(pt);
    return 0;
}

static int reap_urb(port *pt, UMockdevIoctlData *arg)
{
    pump(pt);
    if (g_queue_is_empty(&pt->done))
        return pt->unplugged ? ENODEV : EAGAIN;
    UMockdevIoctlData *slot = umockdev_ioctl_data_resolve(arg, 0, sizeof(void *), NULL);
    if (!slot)
        return EFAULT;
    UMockdevIoctlData *u = g_queue_pop_head(&pt->done);
    umockdev_ioctl_data_set_ptr(slot, 0, u);
    g_object_unref(slot);
    g_object_unref(u);
    return 0;
}

static int discard_urb(port *pt, UMockdevIoctlData *arg)
{
    gulong addr = *(gulong *)arg->data;
    GQueue *queues[] = { &pt->waiting, &pt->hung };
    for (int i = 0; i < 2; i++)
        for (GList *l = queues[i]->head; l; l = l->next)
            if (((UMockdevIoctlData *)l->data)->client_addr == addr) {
                UMockdevIoctlData *u = l->data;
                g_queue_delete_link(queues[i], l);
                finish(pt, u, -ENOENT, 0);
                return 0;
            }
    return EINVAL;
}

static gboolean handle_ioctl(G_GNUC_UNUSED UMockdevIoctlBase *handler, UMockdevIoctlClient *client,
                             gpointer data)
{
    port *pt = data;
    UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
    gulong req = umockdev_ioctl_client_get_request(client);
    unsigned int *num;
    struct usbdevfs_setinterface *si;
    long ret = 0;
    int err = 0;

    g_mutex_lock(&pt->lock);
    if (pt->unplugged && req != USBDEVFS_REAPURBNDELAY) {
        err = ENODEV;
    } else
        switch (req) {
        case USBDEVFS_GET_CAPABILITIES:
            num = arg_struct(arg, sizeof *num);
            if (num)
                *num = USBDEVFS_CAP_BULK_SCATTER_GATHER | USBDEVFS_CAP_NO_PACKET_SIZE_LIM |
                       USBDEVFS_CAP_ZERO_PACKET | USBDEVFS_CAP_REAP_AFTER_DISCONNECT;
            err = num ? 0 : EFAULT;
            break;
        case USBDEVFS_SUBMITURB: err = submit_urb(pt, arg); break;
        case USBDEVFS_REAPURBNDELAY: err = reap_urb(pt, arg); break;
        case USBDEVFS_DISCARDURB: err = discard_urb(pt, arg); break;
        case USBDEVFS_GET_SPEED: ret = USB_SPEED_HIGH; break;
        case USBDEVFS_CLAIMINTERFACE:
        case USBDEVFS_RELEASEINTERFACE:
            num = arg_struct(arg, sizeof *num);
            err = !num ? EFAULT : *num != 0 ? ENOENT : 0;
            if (!err && req == USBDEVFS_CLAIMINTERFACE)
                pen_usb_reset(pt->p); /* a new host session */
            break;
        case USBDEVFS_SETINTERFACE:
            si = arg_struct(arg, sizeof *si);
            err = !si ? EFAULT : (si->interface != 0 || si->altsetting != 0) ? EINVAL : 0;
            break;
        case USBDEVFS_CLEAR_HALT:
            num = arg_struct(arg, sizeof *num);
            err = !num ? EFAULT : (*num & 0x7f) != 1 ? ENOENT : 0;
            if (!err)
                pt->halted[(*num & USB_DIR_IN) ? 1 : 0] = false;
            break;
        case USBDEVFS_DISCONNECT_CLAIM: {
            /* libusb's auto-detach: "detach any kernel driver, then claim" */
            struct usbdevfs_disconnect_claim *dc = arg_struct(arg, sizeof *dc);
            err = !dc ? EFAULT : dc->interface != 0 ? ENOENT : 0;
            if (!err)
                pen_usb_reset(pt->p);
            break;
        }
        case USBDEVFS_IOCTL: err = ENODATA; break; /* no kernel driver to detach */
        default: err = ENOTTY;
        }
    g_mutex_unlock(&pt->lock);
    umockdev_ioctl_client_complete(client, err ? -1 : ret, err);
    return TRUE;
}

emu_pen *emu_pen_new(void)
{
    emu_pen *e = g_new0(emu_pen, 1);
    GError *error = NULL;
    e->tb = umockdev_testbed_new();
    if (!umockdev_in_mock_environment()) {
        g_object_unref(e->tb);
        g_free(e);
        return NULL;
    }
    if (!umockdev_testbed_add_from_string(
            e->tb,
            "P: /devices/usb1\nN: bus/usb/001/001\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\n"
            "E: DEVNAME=/dev/bus/usb/001/001\nE: BUSNUM=001\nE: DEVNUM=001\n"
            "A: busnum=1\\n\nA: devnum=1\\n\nA: speed=480\\n\nA: bConfigurationValue=1\\n\n\n",
            &error))
        g_error("umockdev setup failed: %s", error->message);
    umockdev_testbed_set_attribute_binary(e->tb, "/sys/devices/usb1", "descriptors",
                                          (guint8 *)hub_desc, sizeof hub_desc);
    return e;
}

/* "/devices/usb1/1-3/1-3.1" for port path "3.1" of bus 1 (as the kernel names
 * a device behind the hub on port 3); 0, or -1 when it does not fit. */
static int device_path(const char *ports, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "/devices/usb1");
    for (const char *p = ports; n < cap; p++) {
        if (*p != '.' && *p != '\0')
            continue;
        n += (size_t)snprintf(out + n, cap - n, "/1-%.*s", (int)(p - ports), ports);
        if (*p == '\0')
            break;
    }
    return n < cap ? 0 : -1;
}

void emu_pen_add_hub(emu_pen *e, const char *ports)
{
    GError *error = NULL;
    char path[128], dev[1024];
    int devnum = 2 + e->devnums++;
    if (device_path(ports, path, sizeof path) != 0)
        g_error("emu_pen: port path %s too long", ports);
    snprintf(dev, sizeof dev,
             "P: %s\nN: bus/usb/001/%03d\nE: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\n"
             "E: DEVNAME=/dev/bus/usb/001/%03d\nE: BUSNUM=001\nE: DEVNUM=%03d\n"
             "A: busnum=1\\n\nA: devnum=%d\\n\nA: speed=480\\n\nA: bConfigurationValue=1\\n\n\n",
             path, devnum, devnum, devnum, devnum);
    if (!umockdev_testbed_add_from_string(e->tb, dev, &error))
        g_error("umockdev add failed: %s", error->message);
    char sys[160];
    snprintf(sys, sizeof sys, "/sys%s", path);
    umockdev_testbed_set_attribute_binary(e->tb, sys, "descriptors", (guint8 *)hub_desc,
                                          sizeof hub_desc);
}

int emu_pen_add(emu_pen *e, pen *p, const char *serial)
{
    char ports[16];
    snprintf(ports, sizeof ports, "%d", e->n + 1);
    return emu_pen_add_at(e, p, serial, ports);
}

int emu_pen_add_at(emu_pen *e, pen *p, const char *serial, const char *ports)
{
    GError *error = NULL;
    char path[128];
    (void)serial; /* the serial string comes from the pen itself (pen->serial) */
    if (e->n >= MAX_PENS)
        g_error("emu_pen: at most %d pens", MAX_PENS);
    if (device_path(ports, path, sizeof path) != 0)
        g_error("emu_pen: port path %s too long", ports);
    int idx = e->n++;
    port *pt = &e->ports[idx];
    memset(pt, 0, sizeof *pt);
    pt->e = e;
    pt->index = idx;
    pt->p = p;
    g_mutex_init(&pt->lock);
    pt->inq = g_byte_array_new();
    int devnum = 2 + e->devnums++;
    snprintf(pt->syspath, sizeof pt->syspath, "/sys%s", path);
    snprintf(pt->devnode, sizeof pt->devnode, "/dev/bus/usb/001/%03d", devnum);
    pt->desc_len = pen_usb_sysfs_descriptors(true, pt->desc, sizeof pt->desc);
    if (pt->desc_len == 0)
        g_error("emu_pen: descriptors do not fit");
    pt->handler = umockdev_ioctl_base_new();
    g_signal_connect(pt->handler, "handle-ioctl", G_CALLBACK(handle_ioctl), pt);
    if (!umockdev_testbed_attach_ioctl(e->tb, pt->devnode, pt->handler, &error))
        g_error("umockdev attach failed: %s", error->message);
    char dev[1024];
    snprintf(dev, sizeof dev,
             "P: %s\nN: bus/usb/001/%03d\nE: SUBSYSTEM=usb\n"
             "E: DEVTYPE=usb_device\nE: DEVNAME=/dev/bus/usb/001/%03d\nE: BUSNUM=001\n"
             "E: DEVNUM=%03d\nA: busnum=1\\n\nA: devnum=%d\\n\nA: speed=480\\n\n"
             "A: bConfigurationValue=1\\n\nA: idVendor=%04x\\n\nA: idProduct=%04x\\n\n\n",
             path, devnum, devnum, devnum, devnum, PEN_USB_VID, PEN_USB_PID);
    if (!umockdev_testbed_add_from_string(e->tb, dev, &error))
        g_error("umockdev add failed: %s", error->message);
    umockdev_testbed_set_attribute_binary(e->tb, pt->syspath, "descriptors", pt->desc,
                                          pt->desc_len);
    return idx;
}

void emu_pen_free(emu_pen *e)
{
    for (int i = 0; i < e->n; i++)
        g_signal_handlers_disconnect_by_data(e->ports[i].handler, &e->ports[i]);
    g_object_unref(e->tb);
    for (int i = 0; i < e->n; i++) {
        port *pt = &e->ports[i];
        g_object_unref(pt->handler);
        g_queue_clear_full(&pt->waiting, g_object_unref);
        g_queue_clear_full(&pt->hung, g_object_unref);
        g_queue_clear_full(&pt->done, g_object_unref);
        g_byte_array_unref(pt->inq);
        g_mutex_clear(&pt->lock);
    }
    g_free(e);
}

static void set_flag(port *pt, bool *flag)
{
    g_mutex_lock(&pt->lock);
    *flag = true;
    g_mutex_unlock(&pt->lock);
}

void emu_pen_stall_next(emu_pen *e, int i)
{
    set_flag(&e->ports[i], &e->ports[i].stall_next);
}

void emu_pen_never_complete_next(emu_pen *e, int i)
{
    set_flag(&e->ports[i], &e->ports[i].hang_next);
}

void emu_pen_locked(emu_pen *e, int i, void (*fn)(void *), void *arg)
{
    g_mutex_lock(&e->ports[i].lock);
    fn(arg);
    g_mutex_unlock(&e->ports[i].lock);
}

void emu_pen_unplug(emu_pen *e, int i)
{
    port *pt = &e->ports[i];
    g_mutex_lock(&pt->lock);
    bool was = pt->unplugged;
    pt->unplugged = true;
    while (!g_queue_is_empty(&pt->waiting))
        finish(pt, g_queue_pop_head(&pt->waiting), -ESHUTDOWN, 0);
    while (!g_queue_is_empty(&pt->hung))
        finish(pt, g_queue_pop_head(&pt->hung), -ESHUTDOWN, 0);
    pen_usb_reset(pt->p);
    g_mutex_unlock(&pt->lock);
    if (was)
        return;
    umockdev_testbed_uevent(e->tb, pt->syspath, "remove");
    umockdev_testbed_remove_device(e->tb, pt->syspath);
}
