/*
 * The USB descriptors parsed back: lengths and types, wTotalLength of the
 * configuration and BOS sets, the vendor interface and its endpoints, the
 * serial string, and the Microsoft OS 2.0 set that makes Windows bind WinUSB.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "usb_desc.h"

static unsigned u16(const uint8_t *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static void test_device(void **state)
{
    const uint8_t *d = pen_usb_device_desc;
    (void)state;
    assert_int_equal(d[0], 18);
    assert_int_equal(d[1], 1);
    assert_int_equal(u16(d + 2), 0x0210); /* BOS needs USB 2.1 */
    assert_int_equal(d[4], 0);            /* class at interface level */
    assert_int_equal(d[7], 64);
    assert_int_equal(u16(d + 8), 0x1209);
    assert_int_equal(u16(d + 10), 0x0001);
    assert_int_equal(d[16], PEN_USB_STR_SERIAL);
    assert_int_equal(d[17], 1);
    assert_int_equal(pen_usb_qualifier_desc[0], 10);
    assert_int_equal(pen_usb_qualifier_desc[1], 6);
}

static void check_config(const uint8_t *c, unsigned packet, uint8_t type)
{
    unsigned total = u16(c + 2), off = 0, ifaces = 0, eps = 0;
    bool out_ok = false, in_ok = false;
    assert_int_equal(c[1], type);
    assert_int_equal(total, 32);
    assert_int_equal(c[4], 1); /* one interface */
    while (off < total) {
        const uint8_t *x = c + off;
        assert_true(x[0] >= 2 && off + x[0] <= total);
        if (x[1] == 4) {
            ifaces++;
            assert_int_equal(x[0], 9);
            assert_int_equal(x[4], 2);    /* two endpoints */
            assert_int_equal(x[5], 0xFF); /* vendor specific */
        } else if (x[1] == 5) {
            eps++;
            assert_int_equal(x[0], 7);
            assert_int_equal(x[3], 2); /* bulk */
            assert_int_equal(u16(x + 4), packet);
            out_ok |= x[2] == PEN_USB_EP_OUT;
            in_ok |= x[2] == PEN_USB_EP_IN;
        }
        off += x[0];
    }
    assert_int_equal(off, total);
    assert_int_equal(ifaces, 1);
    assert_int_equal(eps, 2);
    assert_true(out_ok && in_ok);
}

static void test_config(void **state)
{
    uint8_t setup[8] = { 0x80, 6, 0, 7, 0, 0, 0xFF, 0 }, buf[256];
    (void)state;
    check_config(pen_usb_config_hs_desc, 512, 2);
    check_config(pen_usb_config_fs_desc, 64, 2);
    long n = pen_usb_control_in(setup, "X", true, buf, sizeof buf); /* other speed */
    assert_int_equal(n, 32);
    check_config(buf, 64, 7);
    setup[3] = 2;
    setup[6] = 9; /* hosts read the first 9 bytes for wTotalLength */
    assert_int_equal(pen_usb_control_in(setup, "X", true, buf, sizeof buf), 9);
    assert_int_equal(u16(buf + 2), 32);
    assert_int_equal(pen_usb_sysfs_descriptors(true, buf, sizeof buf), 50);
    assert_memory_equal(buf, pen_usb_device_desc, 18);
    check_config(buf + 18, 512, 2);
}

static void test_strings(void **state)
{
    uint8_t buf[256];
    const char *serial = "PEN-A001";
    (void)state;
    assert_int_equal(pen_usb_string_desc(0, NULL, buf, sizeof buf), 4);
    assert_int_equal(u16(buf + 2), 0x0409);
    size_t n = pen_usb_string_desc(PEN_USB_STR_SERIAL, serial, buf, sizeof buf);
    assert_int_equal(n, 2 + 2 * strlen(serial));
    assert_int_equal(buf[0], n);
    assert_int_equal(buf[1], 3);
    for (size_t i = 0; i < strlen(serial); i++) {
        assert_int_equal(buf[2 + 2 * i], (uint8_t)serial[i]);
        assert_int_equal(buf[3 + 2 * i], 0);
    }
    for (uint8_t i = 1; i <= 4; i++)
        assert_true(pen_usb_string_desc(i, serial, buf, sizeof buf) > 2);
    assert_int_equal(pen_usb_string_desc(5, serial, buf, sizeof buf), 0);
    assert_int_equal(pen_usb_string_desc(PEN_USB_STR_SERIAL, serial, buf, 4), 0);
    uint8_t setup[8] = { 0x80, 6, 9, 3, 0x09, 0x04, 0xFF, 0 };
    assert_int_equal(pen_usb_control_in(setup, serial, true, buf, sizeof buf), -1);
}

static void test_bos_msos20(void **state)
{
    const uint8_t *b = pen_usb_bos_desc, *m = pen_usb_msos20_desc;
    static const uint8_t uuid[16] = { 0xDF, 0x60, 0xDD, 0xD8, 0x89, 0x45, 0xC7, 0x4C,
                                      0x9C, 0xD2, 0x65, 0x9D, 0x9E, 0x64, 0x8A, 0x9F };
    uint8_t setup[8] = { 0xC0, PEN_USB_MS_VENDOR_CODE, 0, 0, PEN_USB_MS_OS20_INDEX, 0, 0xFF, 0 };
    uint8_t buf[256];
    (void)state;
    assert_int_equal(b[0], 5);
    assert_int_equal(b[1], 0x0F);
    assert_int_equal(u16(b + 2), sizeof pen_usb_bos_desc);
    assert_int_equal(b[4], 1);
    const uint8_t *cap = b + 5;
    assert_int_equal(cap[0], 28);
    assert_int_equal(cap[1], 0x10);
    assert_int_equal(cap[2], 0x05); /* platform */
    assert_memory_equal(cap + 4, uuid, 16);
    assert_int_equal(u16(cap + 24), sizeof pen_usb_msos20_desc);
    assert_int_equal(cap[26], PEN_USB_MS_VENDOR_CODE);

    assert_int_equal(u16(m), 10);
    assert_int_equal(u16(m + 2), 0); /* set header */
    assert_int_equal(u16(m + 8), sizeof pen_usb_msos20_desc);
    const uint8_t *compat = m + 10;
    assert_int_equal(u16(compat), 20);
    assert_int_equal(u16(compat + 2), 3);
    assert_memory_equal(compat + 4, "WINUSB\0\0", 8);
    const uint8_t *reg = compat + 20;
    assert_int_equal(u16(reg), sizeof pen_usb_msos20_desc - 30);
    assert_int_equal(u16(reg + 2), 4);
    assert_int_equal(u16(reg + 4), 7); /* REG_MULTI_SZ */
    unsigned nlen = u16(reg + 6);
    const char *name = "DeviceInterfaceGUIDs";
    assert_int_equal(nlen, 2 * (strlen(name) + 1));
    for (size_t i = 0; i < strlen(name); i++)
        assert_int_equal(reg[8 + 2 * i], (uint8_t)name[i]);
    unsigned dlen = u16(reg + 8 + nlen);
    const char *guid = PEN_USB_INTERFACE_GUID;
    assert_int_equal(dlen, 2 * (strlen(guid) + 2));
    for (size_t i = 0; i < strlen(guid); i++)
        assert_int_equal(reg[10 + nlen + 2 * i], (uint8_t)guid[i]);
    assert_int_equal(10 + nlen + dlen, u16(reg));

    assert_int_equal(pen_usb_control_in(setup, "X", true, buf, sizeof buf),
                     (long)sizeof pen_usb_msos20_desc);
    assert_memory_equal(buf, m, sizeof pen_usb_msos20_desc);
    setup[4] = 4; /* another index: stall */
    assert_int_equal(pen_usb_control_in(setup, "X", true, buf, sizeof buf), -1);
    uint8_t bos_req[8] = { 0x80, 6, 0, 0x0F, 0, 0, 5, 0 };
    assert_int_equal(pen_usb_control_in(bos_req, "X", true, buf, sizeof buf), 5);
    assert_int_equal(u16(buf + 2), 33);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_bos_msos20),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
