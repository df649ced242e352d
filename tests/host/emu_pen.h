/*
 * emu_pen: pens on an emulated USB bus. umockdev emulates usbfs in-process,
 * so the REAL libusb Linux backend (and libpenlink's USB transport) talks to
 * them; behind each pen's bulk endpoints runs the firmware-stub core, with
 * the USB descriptors the firmware defines. The process must run under
 * umockdev-wrapper.
 *
 * The core runs inside umockdev's ioctl handler thread: an OUT transfer is
 * handed to pen_usb_rx(), an IN transfer is filled from what the pen sent,
 * calling pen_poll() when nothing is queued (so a pull streams as fast as
 * the host reads). The handler never blocks.
 */
#ifndef PENLINK_EMU_PEN_H
#define PENLINK_EMU_PEN_H

#include <stddef.h>
#include <stdint.h>

typedef struct pen pen;
typedef struct emu_pen emu_pen;

/** Creates an empty testbed (root hub only). NULL when not under umockdev-wrapper. */
emu_pen *emu_pen_new(void);

/**
 * Plugs in a pen served by @p p (initialised, its HAL's usb_send calling
 * emu_pen_deliver() with the returned index). Call before libusb_init() so
 * enumeration sees it, or later to emulate a hot plug. Returns the index.
 */
int emu_pen_add(emu_pen *e, pen *p, const char *serial);

/**
 * emu_pen_add() on a port path of bus 1: "2" is port 2 of the root hub,
 * "3.1" port 1 of the hub on port 3 (add that hub first), as udev names
 * them (1-2, 1-3.1). emu_pen_add() takes port n + 1 for the n-th pen.
 */
int emu_pen_add_at(emu_pen *e, pen *p, const char *serial, const char *ports);

/** Plugs in a USB hub on port path @p ports, for pens behind it. */
void emu_pen_add_hub(emu_pen *e, const char *ports);

/**
 * What the pen's HAL usb_send does: queues @p len bytes on the IN endpoint
 * of pen @p index. Only called from inside the pen core, i.e. from the
 * handler thread with the lock held. Returns 0, or -1 once unplugged.
 */
int emu_pen_deliver(emu_pen *e, int index, const uint8_t *data, size_t len);

/** Removes the testbed. Call AFTER libusb_exit(). */
void emu_pen_free(emu_pen *e);

/* Fault knobs (thread-safe, from the test thread). */
void emu_pen_stall_next(emu_pen *e, int index);          /**< next bulk URB stalls */
void emu_pen_never_complete_next(emu_pen *e, int index); /**< next bulk URB hangs */
void emu_pen_unplug(emu_pen *e, int index);              /**< surprise removal */
/** Runs @p fn(arg) with the pen's lock held (to touch the pen from the test thread). */
void emu_pen_locked(emu_pen *e, int index, void (*fn)(void *), void *arg);

#endif
