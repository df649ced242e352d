/*
 * The library context (host/src/ctx.c), white-box: the status sentences, the
 * session defaults a context hands to the pens opened from it, cancellation,
 * the trace file, the error detail, and the protocol library's statuses as
 * the public enum.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "internal.h"
#include "pl/record.h"

/* Every status of the public enum has a sentence of its own. */
static void test_strerror_each_status(void **state)
{
    (void)state;
    const char *seen[-PENLINK_ERR__SENTINEL];
    for (int st = PENLINK_OK; st > PENLINK_ERR__SENTINEL; st--) {
        const char *s = penlink_strerror(st);
        assert_non_null(s);
        assert_string_not_equal(s, "unknown error");
        for (int k = 0; k < -st; k++)
            assert_string_not_equal(s, seen[k]);
        seen[-st] = s;
    }
    assert_string_equal(penlink_strerror(PENLINK_OK), "success");
    assert_non_null(strstr(penlink_strerror(PENLINK_ERR_ACCESS), "udev rule"));
    assert_non_null(strstr(penlink_strerror(PENLINK_ERR_AMBIGUOUS), "choose one"));
    /* outside the enum, and the sentinel itself (never returned) */
    assert_string_equal(penlink_strerror(PENLINK_ERR__SENTINEL), "unknown error");
    assert_string_equal(penlink_strerror(1), "unknown error");
    assert_string_equal(penlink_strerror(-1000), "unknown error");
}

static void test_version(void **state)
{
    (void)state;
    assert_string_equal(penlink_version(), PENLINK_TEST_VERSION);
}

/* A new context holds the documented session defaults; set_timeout replaces
 * them, and falls back to them for values that mean "the default". */
static void test_timeout_defaults(void **state)
{
    (void)state;
    penlink_ctx *ctx = NULL;
    assert_int_equal(penlink_ctx_new(NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(ctx->timeout_ms, PENLINK_DEFAULT_TIMEOUT_MS);
    assert_int_equal(ctx->retries, PENLINK_DEFAULT_RETRIES);
    assert_string_equal(penlink_ctx_errmsg(ctx), "");

    penlink_ctx_set_timeout(ctx, 150, 0);
    assert_int_equal(ctx->timeout_ms, 150);
    assert_int_equal(ctx->retries, 0); /* no retry is a choice, not the default */
    penlink_ctx_set_timeout(ctx, 0, -1);
    assert_int_equal(ctx->timeout_ms, PENLINK_DEFAULT_TIMEOUT_MS);
    assert_int_equal(ctx->retries, PENLINK_DEFAULT_RETRIES);
    penlink_ctx_set_timeout(ctx, -5, 7);
    assert_int_equal(ctx->timeout_ms, PENLINK_DEFAULT_TIMEOUT_MS);
    assert_int_equal(ctx->retries, 7);
    penlink_ctx_set_timeout(NULL, 10, 1); /* NULL-safe, changes nothing */
    penlink_ctx_free(ctx);
}

static void test_cancel(void **state)
{
    (void)state;
    penlink_ctx *ctx = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(atomic_load(&ctx->cancelled), 0);
    penlink_ctx_cancel(ctx);
    assert_int_equal(atomic_load(&ctx->cancelled), 1);
    penlink_ctx_cancel(ctx); /* twice: still just cancelled */
    assert_int_equal(atomic_load(&ctx->cancelled), 1);
    penlink_ctx_reset_cancel(ctx);
    assert_int_equal(atomic_load(&ctx->cancelled), 0);
    penlink_ctx_cancel(NULL);
    penlink_ctx_reset_cancel(NULL);
    penlink_ctx_free(ctx);
}

static int on_message(void *user, const penlink_message *m)
{
    (void)user, (void)m;
    return 0;
}

static void on_notice(void *user, const char *text)
{
    (void)user, (void)text;
}

/* The callbacks are stored for the sessions opened from now on; NULL clears. */
static void test_callbacks_stored(void **state)
{
    (void)state;
    penlink_ctx *ctx = NULL;
    int user = 0;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    penlink_ctx_set_message_cb(ctx, on_message, &user);
    assert_ptr_equal(ctx->on_message, on_message);
    assert_ptr_equal(ctx->on_message_user, &user);
    penlink_ctx_set_notice_cb(ctx, on_notice, &user);
    assert_ptr_equal(ctx->on_notice, on_notice);
    assert_ptr_equal(ctx->on_notice_user, &user);
    penlink_ctx_set_message_cb(ctx, NULL, NULL);
    penlink_ctx_set_notice_cb(ctx, NULL, NULL);
    assert_null(ctx->on_message);
    assert_null(ctx->on_notice);
    penlink_ctx_set_message_cb(NULL, on_message, &user);
    penlink_ctx_set_notice_cb(NULL, on_notice, &user);
    penlink_ctx_free(ctx);
    penlink_ctx_free(NULL);
}

/* A trace that cannot be created fails with IO, names the path, and keeps
 * the trace set before; NULL stops tracing. */
static void test_trace(void **state)
{
    (void)state;
    char dir[] = "/tmp/penlink-ctx-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/t.pcapng", dir);
    penlink_ctx *ctx = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_ctx_set_trace(NULL, path), PENLINK_ERR_INVALID_ARG);
    assert_null(penlink_ctx_trace_error(NULL));

    assert_int_equal(penlink_ctx_set_trace(ctx, path), PENLINK_OK);
    assert_non_null(ctx->trace);
    assert_int_equal(access(path, F_OK), 0);
    assert_null(penlink_ctx_trace_error(ctx));
    struct trace_file *kept = ctx->trace;

    assert_int_equal(penlink_ctx_set_trace(ctx, "/nonexistent/dir/t.pcapng"), PENLINK_ERR_IO);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), "/nonexistent/dir/t.pcapng"));
    assert_ptr_equal(ctx->trace, kept);

    /* success clears the failure's detail */
    assert_int_equal(penlink_ctx_set_trace(ctx, NULL), PENLINK_OK);
    assert_null(ctx->trace);
    assert_string_equal(penlink_ctx_errmsg(ctx), "");
    penlink_ctx_free(ctx);
    unlink(path);
    rmdir(dir);
}

/* penlink_fail keeps the detail on the context and returns the status it got;
 * without a context it only returns it. */
static void test_fail_detail(void **state)
{
    (void)state;
    penlink_ctx *ctx = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_string_equal(penlink_ctx_errmsg(NULL), "");
    assert_int_equal(penlink_fail(ctx, PENLINK_ERR_BUSY, "pen %s held by %d", "PEN-1", 42),
                     PENLINK_ERR_BUSY);
    assert_string_equal(penlink_ctx_errmsg(ctx), "pen PEN-1 held by 42");
    assert_int_equal(penlink_fail(NULL, PENLINK_ERR_IO, "ignored"), PENLINK_ERR_IO);
    /* a detail longer than the buffer is cut, still a string */
    char longer[2 * sizeof ctx->errmsg];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    penlink_fail(ctx, PENLINK_ERR_IO, "%s", longer);
    assert_int_equal(strlen(penlink_ctx_errmsg(ctx)), sizeof ctx->errmsg - 1);
    penlink_enter(ctx);
    assert_string_equal(penlink_ctx_errmsg(ctx), "");
    penlink_ctx_free(ctx);
}

/* Damaged bytes are integrity errors; malformed ones protocol errors. */
static void test_from_pl(void **state)
{
    (void)state;
    assert_int_equal(penlink_from_pl(PL_OK), PENLINK_OK);
    assert_int_equal(penlink_from_pl(PL_ERR_INVALID_ARG), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_from_pl(PL_ERR_FRAME_CRC), PENLINK_ERR_INTEGRITY);
    assert_int_equal(penlink_from_pl(PL_ERR_CHUNK_SIZE), PENLINK_ERR_INTEGRITY);
    assert_int_equal(penlink_from_pl(PL_ERR_CHUNK_COUNT), PENLINK_ERR_INTEGRITY);
    assert_int_equal(penlink_from_pl(PL_ERR_CHUNK_SEQ), PENLINK_ERR_INTEGRITY);
    const int protocol[] = { PL_ERR_NO_SPACE,       PL_ERR_FRAME_MAGIC, PL_ERR_FRAME_VERSION,
                             PL_ERR_FRAME_HEADER,   PL_ERR_MESSAGE,     PL_ERR_CHUNK_ZLIB,
                             PL_ERR_CHUNK_FORMAT,   PL_ERR_CHUNK_RANGE, PL_ERR_CAPTURE,
                             PL_ERR_FRAME_TOO_LARGE };
    for (size_t i = 0; i < sizeof protocol / sizeof protocol[0]; i++)
        assert_int_equal(penlink_from_pl(protocol[i]), PENLINK_ERR_PROTOCOL);
}

/* The record helpers are the protocol library's, under their public names. */
static void test_record_helpers(void **state)
{
    (void)state;
    assert_string_equal(penlink_record_kind_name(PL_REC_TREATMENT_START),
                        pl_record_kind_name(PL_REC_TREATMENT_START));
    assert_null(penlink_record_kind_name(0));
    assert_null(penlink_record_kind_name(PL_REC_KIND_MAX + 1));
    assert_string_equal(penlink_record_field_name(PL_F_DEPTH_UM), "depth_um");
    assert_null(penlink_record_field_name(0));
    assert_null(penlink_record_field_name(3)); /* two bits: no field */
    penlink_record rec;
    memset(&rec, 0, sizeof rec);
    rec.depth_um = 1500;
    rec.speed_sps = 120;
    assert_int_equal(penlink_record_field_get(&rec, PL_F_DEPTH_UM), 1500);
    assert_int_equal(penlink_record_field_get(&rec, PL_F_SPEED_SPS), 120);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_each_status), cmocka_unit_test(test_version),
        cmocka_unit_test(test_timeout_defaults),     cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_callbacks_stored),     cmocka_unit_test(test_trace),
        cmocka_unit_test(test_fail_detail),          cmocka_unit_test(test_from_pl),
        cmocka_unit_test(test_record_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
