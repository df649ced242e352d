/*
 * A record as the archive stores it (host/src/record_body.c): random
 * records, extremes included, packed and unpacked to themselves; every
 * truncation, a trailing byte, an impossible kind, unknown field bits and
 * a 32-bit field holding more refused; archive_record_same() telling apart
 * every field. And the configuration accessors (host/src/config.c) for
 * keys and bits that do not exist.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "archive.h"
#include "pl/varint.h"
#include "testutil.h"

#define ROUNDS 2000

static penlink_record as_public(const pl_record *r)
{
    penlink_record p;
    memset(&p, 0, sizeof p);
    memcpy(&p, r, sizeof *r < sizeof p ? sizeof *r : sizeof p);
    return p;
}

static void test_round_trip(void **state)
{
    (void)state;
    uint64_t seed = 17;
    pl_record recs[8];
    for (int round = 0; round < ROUNDS; round++) {
        tu_records(&seed, recs, 8, (uint64_t)round * 8, round % 2);
        for (int i = 0; i < 8; i++) {
            penlink_record r = as_public(&recs[i]), back;
            uint8_t body[ARCHIVE_BODY_MAX];
            size_t n = archive_body_pack(&r, body);
            assert_true(n >= 8 && n <= ARCHIVE_BODY_MAX);
            memset(&back, 0xa5, sizeof back);
            back.seq = r.seq;
            assert_int_equal(archive_body_unpack(body, n, &back), 0);
            assert_true(archive_record_same(&r, &back));
            assert_true(archive_record_same(&back, &r));
            /* every shorter body and one byte more are refused, *r untouched */
            for (size_t cut = 0; cut < n; cut++) {
                penlink_record keep = back;
                assert_int_equal(archive_body_unpack(body, cut, &back), -1);
                assert_memory_equal(&keep, &back, sizeof back);
            }
            body[n] = 0;
            assert_int_equal(archive_body_unpack(body, n + 1, &back), -1);
        }
    }
}

static size_t raw_body(uint8_t *out, uint64_t kind, uint64_t fields, const uint64_t *v, int nv)
{
    memset(out, 0, 8); /* time 0 */
    uint8_t *p = out + 8;
    p += pl_varint_put(p, kind);
    p += pl_varint_put(p, fields);
    for (int i = 0; i < nv; i++)
        p += pl_varint_put(p, v[i]);
    return (size_t)(p - out);
}

static void test_impossible_bodies(void **state)
{
    (void)state;
    uint8_t body[64];
    penlink_record r;
    memset(&r, 0, sizeof r);
    uint64_t depth = 1200;
    assert_int_equal(archive_body_unpack(body, raw_body(body, 1, PL_F_DEPTH_UM, &depth, 1), &r), 0);
    assert_int_equal(r.depth_um, 1200);
    /* a kind no pen logs, field bits no version knows */
    assert_int_equal(
        archive_body_unpack(body, raw_body(body, (uint64_t)UINT32_MAX + 1, 0, NULL, 0), &r), -1);
    assert_int_equal(archive_body_unpack(body, raw_body(body, 1, PL_F_ALL + 1, NULL, 0), &r), -1);
    /* a 32-bit field holding a 33-bit value */
    uint64_t big = (uint64_t)UINT32_MAX + 1;
    assert_int_equal(archive_body_unpack(body, raw_body(body, 1, PL_F_DEPTH_UM, &big, 1), &r), -1);
    /* a varint that never ends */
    size_t n = raw_body(body, 1, 0, NULL, 0);
    body[8] = 0x80;
    assert_int_equal(archive_body_unpack(body, 9, &r), -1);
    (void)n;
}

static void test_same(void **state)
{
    (void)state;
    uint64_t seed = 3;
    pl_record rec;
    tu_records(&seed, &rec, 1, 0, 0);
    rec.fields = PL_F_ALL;
    penlink_record a = as_public(&rec);
    assert_true(archive_record_same(&a, &a));
    penlink_record b = a;
    b.time_ms++;
    assert_false(archive_record_same(&a, &b));
    b = a;
    b.kind++;
    assert_false(archive_record_same(&a, &b));
    b = a;
    b.fields &= ~PL_F_DROPPED;
    assert_false(archive_record_same(&a, &b));
    for (int k = 0; k < PENLINK_FIELD_COUNT; k++) {
        b = a;
        pl_record *x = (pl_record *)&b;
        uint64_t v = penlink_record_field_get(&a, 1u << k);
        assert_int_equal(pl_record_set(x, 1u << k, v ^ 1), 0);
        if (archive_record_same(&a, &b))
            fail_msg("field %d differs, and the records are the same", k);
    }
}

/* The configuration's accessors for names and bits that are not keys. */
static void test_config_accessors(void **state)
{
    (void)state;
    penlink_config c = PENLINK_CONFIG_INIT;
    assert_null(penlink_config_key_find(NULL));
    assert_null(penlink_config_key_find("no_such_key"));
    assert_non_null(penlink_config_key_find("auto_off_s"));
    assert_int_equal(penlink_config_set_u32(&c, PENLINK_CFG_DEVICE_LABEL, 5), /* a text */
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_set_u32(&c, 1u << 30, 5), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(c.present, 0);
    assert_int_equal(penlink_config_get_u32(&c, 1u << 30), 0);
    assert_string_equal(penlink_config_get_text(&c, PENLINK_CFG_AUTO_OFF_S), "");
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_AUTO_OFF_S, "x"),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_CLINIC_ID, NULL),
                     PENLINK_ERR_INVALID_ARG);
    char longer[sizeof c.clinic_id + 1];
    memset(longer, 'c', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_CLINIC_ID, longer),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(c.present, 0);
    penlink_ctx *ctx = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    penlink_limits l;
    memset(&l, 0, sizeof l);
    assert_int_equal(penlink_config_check(ctx, NULL, &c), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_check(ctx, &l, NULL), PENLINK_ERR_INVALID_ARG);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), "no limits or configuration"));
    size_t n = 0;
    penlink_found **list = NULL;
    assert_int_equal(penlink_dev_list(NULL, &list, &n), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_list(ctx, &list, NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_list(ctx, NULL, &n), PENLINK_ERR_INVALID_ARG);
    assert_null(list);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), "no place for the pens found"));
    penlink_ctx_free(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_impossible_bodies),
        cmocka_unit_test(test_same),
        cmocka_unit_test(test_config_accessors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
