/**
 * @file usb_desc.h
 * The USB descriptors a real pen exposes, defined once: the firmware's USB
 * stack serves them, and the host tests' emulated USB device (umockdev)
 * serves the very same bytes.
 *
 * The pen is a USB 2.1 high-speed device (full speed too) with one
 * vendor-specific interface (class 0xFF) holding bulk OUT 0x01 and bulk IN
 * 0x81, and a Microsoft OS 2.0 descriptor set (WINUSB compatible ID plus a
 * DeviceInterfaceGUIDs registry property) so that Windows binds WinUSB with
 * no driver or INF. Windows fetches that set with a vendor request
 * (bRequest PEN_USB_MS_VENDOR_CODE, wIndex 7) announced in the BOS.
 */
#ifndef PEN_USB_DESC_H
#define PEN_USB_DESC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PEN_USB_VID 0x1209u        /**< pid.codes */
#define PEN_USB_PID 0x0001u        /**< pid.codes test PID; overridable by a product build */
#define PEN_USB_BCD_DEVICE 0x0100u /**< device release 1.00 */
#define PEN_USB_EP_OUT 0x01u       /**< bulk OUT: host -> pen frames */
#define PEN_USB_EP_IN 0x81u        /**< bulk IN: pen -> host frames */
#define PEN_USB_HS_PACKET 512u     /**< bulk wMaxPacketSize at high speed */
#define PEN_USB_FS_PACKET 64u      /**< bulk wMaxPacketSize at full speed */
#define PEN_USB_EP0_PACKET 64u
#define PEN_USB_INTERFACE 0u
#define PEN_USB_MS_VENDOR_CODE 0x01u /**< bRequest of the MS OS 2.0 descriptor request */
#define PEN_USB_MS_OS20_INDEX 0x07u  /**< wIndex of that request */
/** DeviceInterfaceGUIDs value: how Windows applications find penlink pens. */
#define PEN_USB_INTERFACE_GUID "{8B3F4D2E-5A61-4C7B-9E0D-2F6A1C8B7E53}"

/** String descriptor indices. */
enum pen_usb_string {
    PEN_USB_STR_LANGID = 0,
    PEN_USB_STR_MANUFACTURER = 1, /**< "penlink" */
    PEN_USB_STR_PRODUCT = 2,      /**< "penlink microneedling pen" */
    PEN_USB_STR_SERIAL = 3,       /**< the pen's serial number */
    PEN_USB_STR_INTERFACE = 4     /**< "penlink telemetry" */
};

/** Device descriptor (bcdUSB 2.10, class defined at interface level). */
extern const uint8_t pen_usb_device_desc[18];
/** Device qualifier (what the device looks like at the other speed). */
extern const uint8_t pen_usb_qualifier_desc[10];
/** Configuration descriptor set at high speed (512-byte bulk packets). */
extern const uint8_t pen_usb_config_hs_desc[32];
/** Configuration descriptor set at full speed (64-byte bulk packets). */
extern const uint8_t pen_usb_config_fs_desc[32];
/** Binary device Object Store: one platform capability announcing MS OS 2.0. */
extern const uint8_t pen_usb_bos_desc[33];
/** Microsoft OS 2.0 descriptor set: compatible ID WINUSB, DeviceInterfaceGUIDs. */
extern const uint8_t pen_usb_msos20_desc[162];

/**
 * Builds string descriptor @p index in @p out (UTF-16LE; @p serial is ASCII
 * and serves index PEN_USB_STR_SERIAL).
 * @return the descriptor's length, or 0 for an unknown index or a too small @p cap.
 */
size_t pen_usb_string_desc(uint8_t index, const char *serial, uint8_t *out, size_t cap);

/**
 * Answers a control IN request (@p setup: the 8-byte SETUP packet):
 * GET_DESCRIPTOR for device, configuration, string, device qualifier,
 * other-speed configuration and BOS, and the MS OS 2.0 vendor request.
 * @p high_speed says at which speed the device is running.
 * @return bytes written to @p out (at most wLength), or -1 to STALL.
 */
long pen_usb_control_in(const uint8_t setup[8], const char *serial, bool high_speed, uint8_t *out,
                        size_t cap);

/**
 * Writes what Linux shows in sysfs as a device's "descriptors" file (the
 * device descriptor followed by the configuration set), for emulators.
 * @return bytes written, or 0 when @p cap is too small.
 */
size_t pen_usb_sysfs_descriptors(bool high_speed, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
