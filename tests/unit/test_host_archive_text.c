/*
 * The configuration as the archive stores it (host/src/archive_text.c): JSON
 * text of our own making read back by the same rules. Every key round-trips,
 * texts with quotes, backslashes and control characters (a pen that breaks
 * its own rules still has its configuration kept as it said it) come back
 * byte for byte, a short buffer gets a bounded prefix, and text that is not
 * ours leaves the fields it cannot read unset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "archive.h"

static penlink_config every_key(const char *label, const char *clinic)
{
    penlink_config c = PENLINK_CONFIG_INIT;
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    for (size_t i = 0; i < n; i++)
        if (!k[i].is_text)
            penlink_config_set_u32(&c, k[i].bit, 1000u + (uint32_t)i);
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_DEVICE_LABEL, label), 0);
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_CLINIC_ID, clinic), 0);
    c.revision = 4000000000u;
    return c;
}

static void assert_same(const penlink_config *a, const penlink_config *b)
{
    assert_int_equal(a->present, b->present);
    assert_int_equal(a->revision, b->revision);
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    for (size_t i = 0; i < n; i++)
        if (k[i].is_text)
            assert_string_equal(penlink_config_get_text(a, k[i].bit),
                                penlink_config_get_text(b, k[i].bit));
        else
            assert_int_equal(penlink_config_get_u32(a, k[i].bit),
                             penlink_config_get_u32(b, k[i].bit));
}

static void test_round_trip(void **state)
{
    (void)state;
    char text[1024];
    penlink_config c = every_key("Room \"2\" \\ left", "clinic-7"), back;
    archive_config_text(&c, text, sizeof text);
    assert_non_null(strstr(text, "\"device_label\":\"Room \\\"2\\\" \\\\ left\""));
    archive_config_parse(text, &back);
    assert_same(&c, &back);
    /* only what is present is written */
    penlink_config one = PENLINK_CONFIG_INIT;
    one.revision = 1;
    penlink_config_set_u32(&one, PENLINK_CFG_AUTO_OFF_S, 300);
    archive_config_text(&one, text, sizeof text);
    assert_string_equal(text, "{\"revision\":1,\"auto_off_s\":300}");
    archive_config_parse(text, &back);
    assert_same(&one, &back);
}

/* Control characters are written as \uXXXX and must be read back as the
 * character, not as the letters "u0009". */
static void test_control_characters(void **state)
{
    (void)state;
    char text[1024];
    penlink_config c = every_key("tab\there", "bell\a\x1f"), back;
    archive_config_text(&c, text, sizeof text);
    assert_non_null(strstr(text, "tab\\u0009here"));
    archive_config_parse(text, &back);
    assert_same(&c, &back);
}

/* A buffer too short: bounded and terminated, never written past its end. */
static void test_short_buffer(void **state)
{
    (void)state;
    penlink_config c =
        every_key("a label long enough to be cut off somewhere in the middle", "\"\"\"\"\"\"");
    char full[1024];
    archive_config_text(&c, full, sizeof full);
    for (size_t cap = 1; cap < strlen(full) + 2; cap++) {
        char buf[1100];
        memset(buf, '#', sizeof buf);
        archive_config_text(&c, buf, cap);
        assert_true(strlen(buf) < cap);
        assert_int_equal(buf[cap], '#');
        /* what it holds reads back as far as it goes */
        penlink_config back;
        archive_config_parse(buf, &back);
        if (strstr(buf, "\"revision\":4000000000,"))
            assert_int_equal(back.revision, c.revision);
    }
}

/* Not our text: what cannot be read is left unset, nothing is overrun. */
static void test_not_ours(void **state)
{
    (void)state;
    penlink_config back;
    archive_config_parse("{}", &back);
    assert_int_equal(back.present, 0);
    assert_int_equal(back.revision, 0);
    archive_config_parse("{\"revision\":7,\"device_label\":12,\"clinic_id\":\"x\\", &back);
    assert_int_equal(back.revision, 7);
    assert_false(back.present & PENLINK_CFG_DEVICE_LABEL);
    assert_true(back.present & PENLINK_CFG_CLINIC_ID);
    assert_string_equal(back.clinic_id, "x\\");
    char longer[300];
    memset(longer, 0, sizeof longer);
    strcpy(longer, "{\"device_label\":\"");
    memset(longer + strlen(longer), 'z', 200);
    archive_config_parse(longer, &back);
    assert_int_equal(strlen(back.device_label), sizeof back.device_label - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_short_buffer),
        cmocka_unit_test(test_not_ours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
