/*
 * The pen's USB descriptors as const bytes (they live in flash on an MCU),
 * the serial-number string builder, and the control request dispatcher that
 * a USB stack or an emulator calls for descriptor requests.
 */
#include <string.h>

#include "usb_desc.h"

#define LO(v) ((uint8_t)((v)&0xFFu))
#define HI(v) ((uint8_t)(((v) >> 8) & 0xFFu))

const uint8_t pen_usb_device_desc[18] = {
    18,
    0x01, /* bLength, DEVICE */
    0x10,
    0x02, /* bcdUSB 2.10 (BOS capable) */
    0x00,
    0x00,
    0x00, /* class per interface */
    PEN_USB_EP0_PACKET,
    LO(PEN_USB_VID),
    HI(PEN_USB_VID),
    LO(PEN_USB_PID),
    HI(PEN_USB_PID),
    LO(PEN_USB_BCD_DEVICE),
    HI(PEN_USB_BCD_DEVICE),
    PEN_USB_STR_MANUFACTURER,
    PEN_USB_STR_PRODUCT,
    PEN_USB_STR_SERIAL,
    1, /* bNumConfigurations */
};

const uint8_t pen_usb_qualifier_desc[10] = {
    10, 0x06, 0x00, 0x02, 0x00, 0x00, 0x00, PEN_USB_EP0_PACKET, 1, 0,
};

#define CONFIG_SET(packet)                                                                         \
    {                                                                                              \
        9, 0x02, 32, 0, 1, 1, 0, 0xC0, 50, /* 1 interface, self-powered, 100 mA */                 \
            9, 0x04, PEN_USB_INTERFACE, 0, 2, 0xFF, 0x00, 0x00, PEN_USB_STR_INTERFACE, 7, 0x05,    \
            PEN_USB_EP_OUT, 0x02, LO(packet), HI(packet), 0, 7, 0x05, PEN_USB_EP_IN, 0x02,         \
            LO(packet), HI(packet), 0,                                                             \
    }

const uint8_t pen_usb_config_hs_desc[32] = CONFIG_SET(PEN_USB_HS_PACKET);
const uint8_t pen_usb_config_fs_desc[32] = CONFIG_SET(PEN_USB_FS_PACKET);

/*
 * BOS: header, then a platform capability with the MS OS 2.0 UUID
 * {D8DD60DF-4589-4CC7-9CD2-659D9E648A9F}, Windows 8.1 (0x06030000), the
 * descriptor set's length (162) and the vendor code.
 *
 * MS OS 2.0 set: set header (Windows 8.1, 162 bytes), compatible ID
 * "WINUSB", registry property DeviceInterfaceGUIDs (REG_MULTI_SZ) =
 * PEN_USB_INTERFACE_GUID, both in UTF-16LE.
 */
const uint8_t pen_usb_bos_desc[33] = {
    0x05, 0x0F, 0x21, 0x00, 0x01, 0x1C, 0x10, 0x05, 0x00, 0xDF, 0x60,
    0xDD, 0xD8, 0x89, 0x45, 0xC7, 0x4C, 0x9C, 0xD2, 0x65, 0x9D, 0x9E,
    0x64, 0x8A, 0x9F, 0x00, 0x00, 0x03, 0x06, 0xA2, 0x00, 0x01, 0x00,
};

const uint8_t pen_usb_msos20_desc[162] = {
    0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x03, 0x06, 0xA2, 0x00, 0x14, 0x00, 0x03, 0x00, 0x57,
    0x49, 0x4E, 0x55, 0x53, 0x42, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x84, 0x00, 0x04, 0x00, 0x07, 0x00, 0x2A, 0x00, 0x44, 0x00, 0x65, 0x00, 0x76, 0x00, 0x69,
    0x00, 0x63, 0x00, 0x65, 0x00, 0x49, 0x00, 0x6E, 0x00, 0x74, 0x00, 0x65, 0x00, 0x72, 0x00,
    0x66, 0x00, 0x61, 0x00, 0x63, 0x00, 0x65, 0x00, 0x47, 0x00, 0x55, 0x00, 0x49, 0x00, 0x44,
    0x00, 0x73, 0x00, 0x00, 0x00, 0x50, 0x00, 0x7B, 0x00, 0x38, 0x00, 0x42, 0x00, 0x33, 0x00,
    0x46, 0x00, 0x34, 0x00, 0x44, 0x00, 0x32, 0x00, 0x45, 0x00, 0x2D, 0x00, 0x35, 0x00, 0x41,
    0x00, 0x36, 0x00, 0x31, 0x00, 0x2D, 0x00, 0x34, 0x00, 0x43, 0x00, 0x37, 0x00, 0x42, 0x00,
    0x2D, 0x00, 0x39, 0x00, 0x45, 0x00, 0x30, 0x00, 0x44, 0x00, 0x2D, 0x00, 0x32, 0x00, 0x46,
    0x00, 0x36, 0x00, 0x41, 0x00, 0x31, 0x00, 0x43, 0x00, 0x38, 0x00, 0x42, 0x00, 0x37, 0x00,
    0x45, 0x00, 0x35, 0x00, 0x33, 0x00, 0x7D, 0x00, 0x00, 0x00, 0x00, 0x00,
};

static const char *const strings[] = {
    [PEN_USB_STR_MANUFACTURER] = "penlink",
    [PEN_USB_STR_PRODUCT] = "penlink microneedling pen",
    [PEN_USB_STR_INTERFACE] = "penlink telemetry",
};

size_t pen_usb_string_desc(uint8_t index, const char *serial, uint8_t *out, size_t cap)
{
    const char *s;
    size_t n;
    if (index == PEN_USB_STR_LANGID) {
        if (cap < 4)
            return 0;
        out[0] = 4;
        out[1] = 0x03;
        out[2] = 0x09; /* 0x0409 English (United States) */
        out[3] = 0x04;
        return 4;
    }
    if (index == PEN_USB_STR_SERIAL)
        s = serial ? serial : "";
    else if (index < sizeof strings / sizeof strings[0] && strings[index])
        s = strings[index];
    else
        return 0;
    n = strlen(s);
    if (n > 126)
        n = 126; /* bLength is one byte */
    if (cap < 2 + 2 * n)
        return 0;
    out[0] = (uint8_t)(2 + 2 * n);
    out[1] = 0x03;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        out[2 + 2 * i] = c < 0x80 ? c : (uint8_t)'?';
        out[3 + 2 * i] = 0;
    }
    return 2 + 2 * n;
}

static long copy_out(const uint8_t *d, size_t len, uint16_t wlength, uint8_t *out, size_t cap)
{
    if (len > wlength)
        len = wlength;
    if (len > cap)
        return -1;
    memcpy(out, d, len);
    return (long)len;
}

long pen_usb_control_in(const uint8_t setup[8], const char *serial, bool high_speed, uint8_t *out,
                        size_t cap)
{
    uint8_t type = setup[0], req = setup[1];
    uint16_t wvalue = (uint16_t)(setup[2] | setup[3] << 8);
    uint16_t windex = (uint16_t)(setup[4] | setup[5] << 8);
    uint16_t wlength = (uint16_t)(setup[6] | setup[7] << 8);
    uint8_t tmp[256];

    if (type == 0xC0 && req == PEN_USB_MS_VENDOR_CODE && windex == PEN_USB_MS_OS20_INDEX)
        return copy_out(pen_usb_msos20_desc, sizeof pen_usb_msos20_desc, wlength, out, cap);
    if (type != 0x80 || req != 0x06) /* standard, device, GET_DESCRIPTOR */
        return -1;
    switch (wvalue >> 8) {
    case 0x01: return copy_out(pen_usb_device_desc, sizeof pen_usb_device_desc, wlength, out, cap);
    case 0x02:
        if ((wvalue & 0xFF) != 0)
            return -1;
        return copy_out(high_speed ? pen_usb_config_hs_desc : pen_usb_config_fs_desc, 32, wlength,
                        out, cap);
    case 0x03: {
        size_t n = pen_usb_string_desc((uint8_t)wvalue, serial, tmp, sizeof tmp);
        return n ? copy_out(tmp, n, wlength, out, cap) : -1;
    }
    case 0x06:
        return copy_out(pen_usb_qualifier_desc, sizeof pen_usb_qualifier_desc, wlength, out, cap);
    case 0x07: /* other-speed configuration: the other speed's set, type 7 */
        if ((wvalue & 0xFF) != 0)
            return -1;
        memcpy(tmp, high_speed ? pen_usb_config_fs_desc : pen_usb_config_hs_desc, 32);
        tmp[1] = 0x07;
        return copy_out(tmp, 32, wlength, out, cap);
    case 0x0F: return copy_out(pen_usb_bos_desc, sizeof pen_usb_bos_desc, wlength, out, cap);
    default: return -1;
    }
}

size_t pen_usb_sysfs_descriptors(bool high_speed, uint8_t *out, size_t cap)
{
    const uint8_t *cfg = high_speed ? pen_usb_config_hs_desc : pen_usb_config_fs_desc;
    if (cap < sizeof pen_usb_device_desc + 32)
        return 0;
    memcpy(out, pen_usb_device_desc, sizeof pen_usb_device_desc);
    memcpy(out + sizeof pen_usb_device_desc, cfg, 32);
    return sizeof pen_usb_device_desc + 32;
}
