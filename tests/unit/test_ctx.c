/*
 * The context's error detail (defect 12.13): cleared at the start of every
 * call that can fail, set on failure, and NULL-safe, so a caller never
 * prints the detail of an earlier, unrelated failure.
 */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "penlink/penlink.h"

static penlink_limits limits(void)
{
    penlink_limits l = PENLINK_LIMITS_INIT;
    l.depth_max_um = 3000;
    l.depth_step_um = 100;
    l.speed_min_sps = 50;
    l.speed_max_sps = 150;
    l.max_treatment_s = 3600;
    l.max_cartridge_uses = 1;
    l.auto_off_min_s = 60;
    l.auto_off_max_s = 600;
    l.max_text_len = 32;
    return l;
}

static penlink_config valid(void)
{
    penlink_config c = PENLINK_CONFIG_INIT;
    c.depth_max_um = 2500;
    c.depth_default_um = 500;
    c.speed_min_sps = 50;
    c.speed_max_sps = 150;
    c.max_treatment_s = 3600;
    c.max_cartridge_uses = 1;
    c.auto_off_s = 300;
    return c;
}

/* A failure, then a call that succeeds: the detail is gone. */
static void test_cleared_on_success(void **state)
{
    (void)state;
    penlink_ctx *ctx = NULL;
    penlink_dev *d = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_dev_open(ctx, "bogus:x", &d), PENLINK_ERR_INVALID_ARG);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), "bogus:x"));
    penlink_limits l = limits();
    penlink_config c = valid();
    assert_int_equal(penlink_config_check(ctx, &l, &c), PENLINK_OK);
    assert_string_equal(penlink_ctx_errmsg(ctx), "");
    penlink_ctx_free(ctx);
}

/* A failure, then another: the detail is the second's, never the first's. */
static void test_replaced_by_the_next_failure(void **state)
{
    (void)state;
    penlink_ctx *ctx = NULL;
    penlink_dev *d = NULL;
    penlink_key k = PENLINK_KEY_INIT;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_dev_open(ctx, "bogus:x", &d), PENLINK_ERR_INVALID_ARG);
    assert_int_not_equal(penlink_key_load(ctx, "/nonexistent/penlink.key", &k), PENLINK_OK);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), "/nonexistent/penlink.key"));
    assert_null(strstr(penlink_ctx_errmsg(ctx), "bogus"));
    /* a failure of an argument check says so, instead of leaving the old detail */
    assert_int_equal(penlink_dev_open(ctx, "bogus:x", &d), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_key_load(ctx, NULL, &k), PENLINK_ERR_INVALID_ARG);
    assert_null(strstr(penlink_ctx_errmsg(ctx), "bogus"));
    assert_string_not_equal(penlink_ctx_errmsg(ctx), "");
    penlink_ctx_free(ctx);
}

/* Calls without a context report their status and do not crash. */
static void test_null_context(void **state)
{
    (void)state;
    penlink_limits l = limits();
    penlink_config c = valid();
    c.depth_max_um = 9000; /* outside the limits: the check fails with no context to tell */
    assert_int_equal(penlink_config_check(NULL, &l, &c), PENLINK_ERR_INVALID_CONFIG);
    penlink_key k = PENLINK_KEY_INIT;
    assert_int_equal(penlink_key_load(NULL, NULL, &k), PENLINK_ERR_INVALID_ARG);
    assert_string_equal(penlink_ctx_errmsg(NULL), "");
    assert_int_equal(penlink_dev_info(NULL, NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_pull(NULL, 0, NULL, NULL), PENLINK_ERR_INVALID_ARG);
}

/* Review 17.3: penlink_limits and penlink_key carry their size: without it
 * (0, the initialiser forgotten) they are refused before anything is done. */
static void test_limits_and_key_need_size(void **state)
{
    (void)state;
    penlink_ctx *ctx = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    penlink_limits l = limits();
    penlink_config c = valid();
    assert_int_equal(penlink_config_check(ctx, &l, &c), PENLINK_OK);
    l.size = 0;
    assert_int_equal(penlink_config_check(ctx, &l, &c), PENLINK_ERR_INVALID_ARG);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), "PENLINK_LIMITS_INIT"));
    penlink_key k;
    memset(&k, 0, sizeof k);
    assert_int_equal(penlink_key_load(ctx, "/nonexistent/key", &k), PENLINK_ERR_INVALID_ARG);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), "PENLINK_KEY_INIT"));
    assert_int_equal(penlink_key_generate(ctx, "/nonexistent/key", &k), PENLINK_ERR_INVALID_ARG);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), "PENLINK_KEY_INIT"));
    penlink_key sized = PENLINK_KEY_INIT;
    assert_int_equal(sized.size, sizeof sized);
    assert_int_equal(penlink_key_load(ctx, "/nonexistent/key", &sized), PENLINK_ERR_IO);
    penlink_ctx_free(ctx);
}

/* penlink_archive_default_path(): NULL or no room is INVALID_ARG, as for every other function. */
static void test_archive_default_path(void **state)
{
    (void)state;
    assert_int_equal(setenv("XDG_DATA_HOME", "/xdg", 1), 0);
    char buf[64];
    assert_int_equal(penlink_archive_default_path(NULL, 100), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_default_path(NULL, 0), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_default_path(buf, 0), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_default_path(buf, 5), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_default_path(buf, sizeof buf), PENLINK_OK);
    assert_string_equal(buf, "/xdg/penlink/archive.db");
}

/* Waiting for a USB change keeps the transport's state on the context: it
 * times out, is cancelled, starts again, and goes with the context (the
 * sanitizer and valgrind builds see a leak). */
static void test_usb_wait_change(void **state)
{
    (void)state;
    penlink_ctx *ctx = NULL;
    int changed = -1;
    assert_int_equal(penlink_dev_wait_change(NULL, 0, &changed), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_dev_wait_change(ctx, 0, NULL), PENLINK_ERR_INVALID_ARG);
    /* no time to wait: no change (hotplug does not report the pens already there) */
    assert_int_equal(penlink_dev_wait_change(ctx, 0, &changed), PENLINK_OK);
    assert_int_equal(changed, 0);
    changed = -1;
    assert_int_equal(penlink_dev_wait_change(ctx, 0, &changed), PENLINK_OK);
    assert_int_equal(changed, 0);
    penlink_ctx_cancel(ctx);
    assert_int_equal(penlink_dev_wait_change(ctx, 10000, &changed), PENLINK_ERR_CANCELLED);
    penlink_ctx_reset_cancel(ctx);
    assert_int_equal(penlink_dev_wait_change(ctx, 0, &changed), PENLINK_OK);
    penlink_ctx_free(ctx);
}

/*
 * Every status from PENLINK_OK down to the sentinel has its own name, spelt
 * as in the enum; a status appended without a name reads "unknown" and
 * fails here. Anything outside the enum is "unknown".
 */
/* The configuration setters say what they refused, as statuses (0.2's
 * penlink_config_set_text returned -1, penlink_config_set_u32 nothing). */
static void test_config_setters(void **state)
{
    (void)state;
    penlink_config c = PENLINK_CONFIG_INIT;
    char longest[PENLINK_CONFIG_TEXT_MAX + 2];
    memset(longest, 'x', sizeof longest);
    longest[PENLINK_CONFIG_TEXT_MAX] = '\0';
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_CLINIC_ID, longest), PENLINK_OK);
    assert_int_equal(strlen(penlink_config_get_text(&c, PENLINK_CFG_CLINIC_ID)),
                     PENLINK_CONFIG_TEXT_MAX);
    longest[PENLINK_CONFIG_TEXT_MAX] = 'x';
    longest[PENLINK_CONFIG_TEXT_MAX + 1] = '\0';
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_DEVICE_LABEL, longest),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(c.present, PENLINK_CFG_CLINIC_ID); /* nothing changed */
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_DEPTH_MAX_UM, "1"),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_set_text(NULL, PENLINK_CFG_CLINIC_ID, "a"),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_set_text(&c, PENLINK_CFG_CLINIC_ID, NULL),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_set_u32(&c, PENLINK_CFG_DEPTH_MAX_UM, 2500), PENLINK_OK);
    assert_int_equal(penlink_config_get_u32(&c, PENLINK_CFG_DEPTH_MAX_UM), 2500);
    assert_int_equal(penlink_config_set_u32(&c, PENLINK_CFG_CLINIC_ID, 1), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_set_u32(&c, 1u << 30, 1), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_set_u32(NULL, PENLINK_CFG_DEPTH_MAX_UM, 1),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(c.present, PENLINK_CFG_CLINIC_ID | PENLINK_CFG_DEPTH_MAX_UM);
    /* a configuration without its size (no PENLINK_CONFIG_INIT): refused, read as empty */
    penlink_config bare = c;
    bare.size = 0;
    assert_int_equal(penlink_config_set_u32(&bare, PENLINK_CFG_DEPTH_MAX_UM, 1),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_set_text(&bare, PENLINK_CFG_CLINIC_ID, "a"),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_config_get_u32(&bare, PENLINK_CFG_DEPTH_MAX_UM), 0);
    assert_string_equal(penlink_config_get_text(&bare, PENLINK_CFG_CLINIC_ID), "");
    assert_int_equal(bare.depth_max_um, 2500);
}

static void test_status_names(void **state)
{
    (void)state;
    const char *seen[-PENLINK_ERR__SENTINEL];
    size_t n = 0;
    for (int s = PENLINK_OK; s > PENLINK_ERR__SENTINEL; s--) {
        const char *name = penlink_status_name(s);
        assert_non_null(name);
        if (strncmp(name, "PENLINK_", 8) != 0)
            fail_msg("status %d has no name (\"%s\")", s, name);
        for (size_t i = 0; i < n; i++)
            if (strcmp(seen[i], name) == 0)
                fail_msg("status %d shares the name %s", s, name);
        seen[n++] = name;
    }
    assert_string_equal(penlink_status_name(PENLINK_OK), "PENLINK_OK");
    assert_string_equal(penlink_status_name(PENLINK_ERR_IO), "PENLINK_ERR_IO");
    assert_string_equal(penlink_status_name(PENLINK_ERR_AUTH), "PENLINK_ERR_AUTH");
    assert_string_equal(penlink_status_name(PENLINK_ERR__SENTINEL), "unknown");
    assert_string_equal(penlink_status_name(1), "unknown");
    assert_string_equal(penlink_status_name(-1000), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cleared_on_success),
        cmocka_unit_test(test_replaced_by_the_next_failure),
        cmocka_unit_test(test_null_context),
        cmocka_unit_test(test_usb_wait_change),
        cmocka_unit_test(test_config_setters),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_archive_default_path),
        cmocka_unit_test(test_limits_and_key_need_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
