/* The signed and hashed byte forms of pl/auth.h. */
#include <string.h>

#include "pl/auth.h"

typedef struct out {
    uint8_t *p;
    size_t n, cap;
    int bad;
} out;

static void put(out *o, const void *b, size_t n)
{
    if (o->bad || n > o->cap - o->n) {
        o->bad = 1;
        return;
    }
    if (n == 0)
        return; /* b may be NULL (no serial): memcpy must not see it */
    memcpy(o->p + o->n, b, n);
    o->n += n;
}

static void put_le(out *o, uint64_t v, unsigned bytes)
{
    uint8_t b[8];
    for (unsigned i = 0; i < bytes; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(o, b, bytes);
}

static void put_str(out *o, const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n > max) {
        o->bad = 1;
        return;
    }
    put_le(o, n, 1);
    put(o, s, n);
}

static void put_u32_field(out *o, unsigned field, int has, uint32_t v)
{
    if (!has)
        return;
    put_le(o, field, 1);
    put_le(o, v, 4);
}

static void put_str_field(out *o, unsigned field, const char *s)
{
    if (!s)
        return;
    put_le(o, field, 1);
    put_str(o, s, 255);
}

size_t pl_auth_config_bytes(uint8_t *buf, size_t cap, const char *serial,
                            uint32_t expected_revision, const uint8_t nonce[PL_NONCE_BYTES],
                            const Penlink__V1__Config *c)
{
    out o = { buf, 0, cap, 0 };
    put(&o, "penlink-config-v1", 17);
    put_str(&o, serial, PL_SERIAL_MAX);
    put_le(&o, expected_revision, 4);
    put(&o, nonce, PL_NONCE_BYTES);
    if (c) {
        put_u32_field(&o, 2, c->has_depth_min_um, c->depth_min_um);
        put_u32_field(&o, 3, c->has_depth_max_um, c->depth_max_um);
        put_u32_field(&o, 4, c->has_depth_default_um, c->depth_default_um);
        put_u32_field(&o, 5, c->has_speed_min_sps, c->speed_min_sps);
        put_u32_field(&o, 6, c->has_speed_max_sps, c->speed_max_sps);
        put_u32_field(&o, 7, c->has_max_treatment_s, c->max_treatment_s);
        put_u32_field(&o, 8, c->has_max_cartridge_uses, c->max_cartridge_uses);
        put_u32_field(&o, 9, c->has_auto_off_s, c->auto_off_s);
        put_str_field(&o, 10, c->device_label);
        put_str_field(&o, 11, c->clinic_id);
    }
    return o.bad ? 0 : o.n;
}

size_t pl_auth_link_prefix(uint8_t buf[PL_AUTH_LINK_PREFIX], const uint8_t prev[PL_LINK_BYTES],
                           uint64_t first_seq, uint32_t record_count, uint32_t raw_size,
                           uint32_t data_len)
{
    out o = { buf, 0, PL_AUTH_LINK_PREFIX, 0 };
    put(&o, "penlink-chain-v1", 16);
    put(&o, prev, PL_LINK_BYTES);
    put_le(&o, first_seq, 8);
    put_le(&o, record_count, 4);
    put_le(&o, raw_size, 4);
    put_le(&o, data_len, 4);
    return o.n;
}

size_t pl_auth_genesis_bytes(uint8_t buf[PL_AUTH_GENESIS_MAX], const char *serial)
{
    out o = { buf, 0, PL_AUTH_GENESIS_MAX, 0 };
    put(&o, "penlink-genesis-v1", 18);
    put_str(&o, serial, PL_SERIAL_MAX);
    return o.bad ? 0 : o.n;
}

size_t pl_auth_head_bytes(uint8_t buf[PL_AUTH_HEAD_MAX], const char *serial, uint64_t next_seq,
                          const uint8_t link[PL_LINK_BYTES])
{
    out o = { buf, 0, PL_AUTH_HEAD_MAX, 0 };
    put(&o, "penlink-head-v1", 15);
    put_str(&o, serial, PL_SERIAL_MAX);
    put_le(&o, next_seq, 8);
    put(&o, link, PL_LINK_BYTES);
    return o.bad ? 0 : o.n;
}

size_t pl_auth_clock_bytes(uint8_t buf[PL_AUTH_CLOCK_MAX], const char *serial,
                           const uint8_t nonce[PL_NONCE_BYTES], int64_t time_ms)
{
    out o = { buf, 0, PL_AUTH_CLOCK_MAX, 0 };
    put(&o, "penlink-clock-v1", 16);
    put_str(&o, serial, PL_SERIAL_MAX);
    put(&o, nonce, PL_NONCE_BYTES);
    put_le(&o, (uint64_t)time_ms, 8);
    return o.bad ? 0 : o.n;
}
