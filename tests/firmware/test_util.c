/* The core's small helpers: decimal formatting done without 64-bit division. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "fwtest.h"
#include "pen_util.h"

static void check_u64(uint64_t v)
{
    char buf[64], want[32];
    pen_msg m;
    pen_msg_init(&m, buf, sizeof buf);
    pen_msg_u64(&m, v);
    snprintf(want, sizeof want, "%llu", (unsigned long long)v);
    assert_string_equal(buf, want);
}

static void test_msg_u64(void **state)
{
    (void)state;
    static const uint64_t fixed[] = { 0,
                                      1,
                                      9,
                                      10,
                                      99,
                                      100,
                                      65535,
                                      65536,
                                      999999999,
                                      1000000000,
                                      4294967295u,
                                      4294967296u,
                                      4102444800000u,
                                      UINT64_MAX,
                                      UINT64_MAX - 1,
                                      10000000000000000000u };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        check_u64(fixed[i]);
    uint64_t s = 5;
    for (int i = 0; i < 20000; i++)
        check_u64(fw_rand(&s) >> (fw_rand(&s) % 64));
}

static void test_msg_i64(void **state)
{
    (void)state;
    char buf[64];
    pen_msg m;
    pen_msg_init(&m, buf, sizeof buf);
    pen_msg_i64(&m, INT64_MIN);
    assert_string_equal(buf, "-9223372036854775808");
    pen_msg_init(&m, buf, sizeof buf);
    pen_msg_i64(&m, -42);
    assert_string_equal(buf, "-42");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_u64),
        cmocka_unit_test(test_msg_i64),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
