/* The signed and hashed byte forms (pl/auth.h), byte by byte as
 * docs/protocol.md gives them, at their longest, and every input they refuse:
 * a serial or a text too long, a buffer one byte short. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pl/auth.h"

typedef struct exp {
    uint8_t b[1024];
    size_t n;
} exp;

static void e_bytes(exp *e, const void *p, size_t n)
{
    memcpy(e->b + e->n, p, n);
    e->n += n;
}

static void e_le(exp *e, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        e->b[e->n++] = (uint8_t)(v >> (8 * i));
}

static void e_str(exp *e, const char *s)
{
    e_le(e, strlen(s), 1);
    e_bytes(e, s, strlen(s));
}

static uint8_t nonce[PL_NONCE_BYTES], link_[PL_LINK_BYTES];

static int setup(void **state)
{
    (void)state;
    for (unsigned i = 0; i < PL_NONCE_BYTES; i++)
        nonce[i] = (uint8_t)(0xC0 + i);
    for (unsigned i = 0; i < PL_LINK_BYTES; i++)
        link_[i] = (uint8_t)(0x10 + i);
    return 0;
}

static void full_config(Penlink__V1__Config *c, char *label, char *clinic)
{
    penlink__v1__config__init(c);
    c->has_depth_min_um = c->has_depth_max_um = c->has_depth_default_um = 1;
    c->has_speed_min_sps = c->has_speed_max_sps = c->has_max_treatment_s = 1;
    c->has_max_cartridge_uses = c->has_auto_off_s = 1;
    c->depth_min_um = 200;
    c->depth_max_um = 0x01020304;
    c->depth_default_um = 500;
    c->speed_min_sps = 50;
    c->speed_max_sps = 150;
    c->max_treatment_s = 3600;
    c->max_cartridge_uses = 10;
    c->auto_off_s = UINT32_MAX;
    c->device_label = label;
    c->clinic_id = clinic;
}

static void test_config_bytes(void **state)
{
    (void)state;
    Penlink__V1__Config c;
    char label[] = "Room 2", clinic[] = "CL-9";
    full_config(&c, label, clinic);
    exp e = { .n = 0 };
    e_bytes(&e, "penlink-config-v1", 17);
    e_str(&e, "PEN-0001");
    e_le(&e, 0xA0B0C0D0u, 4);
    e_bytes(&e, nonce, PL_NONCE_BYTES);
    static const unsigned field[] = { 2, 3, 4, 5, 6, 7, 8, 9 };
    const uint32_t val[] = { 200, 0x01020304, 500, 50, 150, 3600, 10, UINT32_MAX };
    for (int i = 0; i < 8; i++) {
        e_le(&e, field[i], 1);
        e_le(&e, val[i], 4);
    }
    e_le(&e, 10, 1);
    e_str(&e, label);
    e_le(&e, 11, 1);
    e_str(&e, clinic);

    uint8_t out[PL_AUTH_CONFIG_MAX + 8];
    memset(out, 0xEE, sizeof out);
    assert_int_equal(pl_auth_config_bytes(out, sizeof out, "PEN-0001", 0xA0B0C0D0u, nonce, &c),
                     e.n);
    assert_memory_equal(out, e.b, e.n);
    assert_int_equal(out[e.n], 0xEE);
    /* a buffer exactly the size: the same bytes; one byte short: nothing */
    memset(out, 0xEE, sizeof out);
    assert_int_equal(pl_auth_config_bytes(out, e.n, "PEN-0001", 0xA0B0C0D0u, nonce, &c), e.n);
    assert_memory_equal(out, e.b, e.n);
    for (size_t cap = 0; cap < e.n; cap++)
        assert_int_equal(pl_auth_config_bytes(out, cap, "PEN-0001", 0xA0B0C0D0u, nonce, &c), 0);

    /* only the fields present, in field order */
    penlink__v1__config__init(&c);
    c.has_speed_max_sps = 1;
    c.speed_max_sps = 120;
    c.clinic_id = clinic;
    e.n = 17 + 1 + 8 + 4 + PL_NONCE_BYTES;
    e_le(&e, 6, 1);
    e_le(&e, 120, 4);
    e_le(&e, 11, 1);
    e_str(&e, clinic);
    assert_int_equal(pl_auth_config_bytes(out, sizeof out, "PEN-0001", 0xA0B0C0D0u, nonce, &c),
                     e.n);
    assert_memory_equal(out, e.b, e.n);
    /* a value present but 0 is signed; an absent one is not */
    c.has_speed_max_sps = 1;
    c.speed_max_sps = 0;
    assert_int_equal(pl_auth_config_bytes(out, sizeof out, "PEN-0001", 0xA0B0C0D0u, nonce, &c),
                     e.n);
    /* no config at all, and no serial: the header, an empty serial, revision and nonce */
    assert_int_equal(pl_auth_config_bytes(out, sizeof out, NULL, 1, nonce, NULL),
                     17 + 1 + 4 + PL_NONCE_BYTES);
    assert_int_equal(out[17], 0);
}

static void test_config_longest(void **state)
{
    (void)state;
    char serial[PL_SERIAL_MAX + 2], text[257], text2[257];
    memset(serial, 'S', sizeof serial - 1);
    serial[PL_SERIAL_MAX] = 0;
    memset(text, 't', 255);
    text[255] = 0;
    memcpy(text2, text, sizeof text);
    Penlink__V1__Config c;
    full_config(&c, text, text2);
    uint8_t out[PL_AUTH_CONFIG_MAX + 8];
    /* every field at its longest fills PL_AUTH_CONFIG_MAX exactly */
    assert_int_equal(pl_auth_config_bytes(out, sizeof out, serial, 1, nonce, &c),
                     PL_AUTH_CONFIG_MAX);
    assert_int_equal(pl_auth_config_bytes(out, PL_AUTH_CONFIG_MAX, serial, 1, nonce, &c),
                     PL_AUTH_CONFIG_MAX);
    assert_int_equal(pl_auth_config_bytes(out, PL_AUTH_CONFIG_MAX - 1, serial, 1, nonce, &c), 0);
    /* one byte more of serial or of text is refused, whatever the room */
    serial[PL_SERIAL_MAX] = 'S';
    serial[PL_SERIAL_MAX + 1] = 0;
    assert_int_equal(pl_auth_config_bytes(out, sizeof out, serial, 1, nonce, &c), 0);
    serial[PL_SERIAL_MAX] = 0;
    text[255] = 't';
    text[256] = 0;
    assert_int_equal(pl_auth_config_bytes(out, sizeof out, serial, 1, nonce, &c), 0);
    c.device_label = NULL;
    text2[255] = 't';
    text2[256] = 0;
    assert_int_equal(pl_auth_config_bytes(out, sizeof out, serial, 1, nonce, &c), 0);
}

static void test_link_prefix(void **state)
{
    (void)state;
    exp e = { .n = 0 };
    e_bytes(&e, "penlink-chain-v1", 16);
    e_bytes(&e, link_, PL_LINK_BYTES);
    e_le(&e, 0x0102030405060708ull, 8);
    e_le(&e, 512, 4);
    e_le(&e, 0xDEADBEEF, 4);
    e_le(&e, UINT32_MAX, 4);
    assert_int_equal(e.n, PL_AUTH_LINK_PREFIX);
    uint8_t out[PL_AUTH_LINK_PREFIX + 1];
    out[PL_AUTH_LINK_PREFIX] = 0xEE;
    assert_int_equal(
        pl_auth_link_prefix(out, link_, 0x0102030405060708ull, 512, 0xDEADBEEF, UINT32_MAX),
        PL_AUTH_LINK_PREFIX);
    assert_memory_equal(out, e.b, e.n);
    assert_int_equal(out[PL_AUTH_LINK_PREFIX], 0xEE);
}

static void test_genesis_head_clock(void **state)
{
    (void)state;
    char serial[PL_SERIAL_MAX + 2];
    memset(serial, 'Q', sizeof serial - 1);
    serial[PL_SERIAL_MAX] = 0;

    uint8_t out[512];
    exp e = { .n = 0 };
    e_bytes(&e, "penlink-genesis-v1", 18);
    e_str(&e, serial);
    assert_int_equal(e.n, PL_AUTH_GENESIS_MAX);
    assert_int_equal(pl_auth_genesis_bytes(out, serial), PL_AUTH_GENESIS_MAX);
    assert_memory_equal(out, e.b, e.n);
    assert_int_equal(pl_auth_genesis_bytes(out, "P1"), 18 + 1 + 2);
    assert_int_equal(out[18], 2);

    e.n = 0;
    e_bytes(&e, "penlink-head-v1", 15);
    e_str(&e, serial);
    e_le(&e, 0x1122334455667788ull, 8);
    e_bytes(&e, link_, PL_LINK_BYTES);
    assert_int_equal(e.n, PL_AUTH_HEAD_MAX);
    assert_int_equal(pl_auth_head_bytes(out, serial, 0x1122334455667788ull, link_),
                     PL_AUTH_HEAD_MAX);
    assert_memory_equal(out, e.b, e.n);

    e.n = 0;
    e_bytes(&e, "penlink-clock-v1", 16);
    e_str(&e, serial);
    e_bytes(&e, nonce, PL_NONCE_BYTES);
    e_le(&e, (uint64_t)(int64_t)-2, 8); /* before the epoch: two's complement */
    assert_int_equal(e.n, PL_AUTH_CLOCK_MAX);
    assert_int_equal(pl_auth_clock_bytes(out, serial, nonce, -2), PL_AUTH_CLOCK_MAX);
    assert_memory_equal(out, e.b, e.n);

    /* a serial one byte too long: nothing for any of them */
    serial[PL_SERIAL_MAX] = 'Q';
    serial[PL_SERIAL_MAX + 1] = 0;
    assert_int_equal(pl_auth_genesis_bytes(out, serial), 0);
    assert_int_equal(pl_auth_head_bytes(out, serial, 1, link_), 0);
    assert_int_equal(pl_auth_clock_bytes(out, serial, nonce, 1), 0);
}

/* No serial (a pen that did not give one) is an empty one, in every form. */
static void test_no_serial(void **state)
{
    (void)state;
    uint8_t out[PL_AUTH_CONFIG_MAX];
    assert_int_equal(pl_auth_genesis_bytes(out, NULL), 18 + 1);
    assert_memory_equal(out, "penlink-genesis-v1\0", 19);
    assert_int_equal(pl_auth_head_bytes(out, NULL, 1, link_), 15 + 1 + 8 + PL_LINK_BYTES);
    assert_int_equal(out[15], 0);
    assert_int_equal(pl_auth_clock_bytes(out, NULL, nonce, 1), 16 + 1 + PL_NONCE_BYTES + 8);
    assert_int_equal(out[16], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_bytes), cmocka_unit_test(test_config_longest),
        cmocka_unit_test(test_link_prefix),  cmocka_unit_test(test_genesis_head_clock),
        cmocka_unit_test(test_no_serial),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
