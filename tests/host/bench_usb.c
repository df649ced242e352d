/*
 * bench_usb: the pull rate over the USB path (libpenlink's libusb transport,
 * the real libusb backend, a pen emulated by umockdev) next to the raw rate
 * of bulk IN transfers of the same bytes on the same emulated device, in the
 * same run. umockdev makes every URB a socket round trip, so only the ratio
 * means anything. Run under umockdev-wrapper: bench_usb [RECORDS].
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libusb.h>

#include "emu_pen.h"
#include "fwtest.h"
#include "penlink/penlink.h"

static emu_pen *emu;
static rig pen_rig;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int to_usb(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    return emu_pen_deliver(emu, 0, data, len);
}

static int count(void *user, const penlink_record *r)
{
    (void)r;
    (*(unsigned long long *)user)++;
    return 0;
}

struct fill {
    size_t bytes;
};

static void fill_in(void *arg)
{
    struct fill *f = arg;
    static uint8_t junk[4096];
    for (size_t done = 0; done < f->bytes; done += sizeof junk)
        emu_pen_deliver(emu, 0, junk,
                        f->bytes - done < sizeof junk ? f->bytes - done : sizeof junk);
}

int main(int argc, char **argv)
{
    size_t records = argc > 1 ? strtoul(argv[1], NULL, 10) : 50000;
    emu = emu_pen_new();
    if (!emu) {
        fprintf(stderr, "bench_usb: no emulated USB device: run me under umockdev-wrapper\n");
        return 1;
    }
    rig_init(&pen_rig, 4096, 320, PL_CHUNK_BATCH);
    pen_rig.opts.serial = "PEN-BENCH";
    if (rig_boot(&pen_rig) != PEN_OK)
        return 1;
    while (pen_rig.gt_n < records) {
        rig_event(&pen_rig);
        if (pen_rig.gt_n % 64 == 0)
            rig_settle(&pen_rig);
    }
    rig_settle(&pen_rig);
    pen_rig.hal.usb_send = to_usb;
    emu_pen_add(emu, pen_rig.p, "PEN-BENCH");

    penlink_ctx *ctx = NULL;
    penlink_dev *dev = NULL;
    penlink_ctx_new(&ctx);
    if (penlink_dev_open(ctx, "usb", &dev) != PENLINK_OK) {
        fprintf(stderr, "bench_usb: %s\n", penlink_ctx_errmsg(ctx));
        return 1;
    }
    unsigned long long n = 0;
    penlink_pull_cb cb = { .size = sizeof(penlink_pull_cb), .on_record = count, .user = &n };
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    double t0 = now_s();
    if (penlink_dev_pull(dev, 0, &cb, &res) != PENLINK_OK) {
        fprintf(stderr, "bench_usb: %s\n", penlink_ctx_errmsg(ctx));
        return 1;
    }
    double t_pull = now_s() - t0;
    penlink_dev_close(dev);

    /* raw: the same bytes queued on bulk IN, read in 16 KiB transfers */
    libusb_context *usb;
    libusb_init(&usb);
    libusb_device_handle *h =
        libusb_open_device_with_vid_pid(usb, PENLINK_USB_VID, PENLINK_USB_PID);
    if (!h || libusb_claim_interface(h, 0) != 0) {
        fprintf(stderr, "bench_usb: raw open failed\n");
        return 1;
    }
    struct fill f = { (size_t)res.bytes };
    emu_pen_locked(emu, 0, fill_in, &f);
    static unsigned char buf[16 * 1024];
    size_t got = 0;
    t0 = now_s();
    while (got < f.bytes) {
        int k = 0;
        if (libusb_bulk_transfer(h, 0x81, buf, sizeof buf, &k, 2000) != 0)
            break;
        got += (size_t)k;
    }
    double t_raw = now_s() - t0;
    libusb_release_interface(h, 0);
    libusb_close(h);
    libusb_exit(usb);
    penlink_ctx_free(ctx);
    emu_pen_free(emu);
    rig_free(&pen_rig);
    if (got != f.bytes) {
        fprintf(stderr, "bench_usb: raw read %zu of %zu bytes\n", got, f.bytes);
        return 1;
    }
    printf("pen: %llu records in %llu bytes of frames\n", n, (unsigned long long)res.bytes);
    printf("pull over emulated USB: %.0f records/s, %.2f MB/s\n", (double)n / t_pull,
           (double)res.bytes / t_pull / 1e6);
    printf("raw bulk IN of the same bytes (16 KiB transfers): %.2f MB/s\n",
           (double)f.bytes / t_raw / 1e6);
    printf("ratio pull / raw = %.3f\n", t_raw / t_pull);
    return 0;
}
