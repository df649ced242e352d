/*
 * The session trace (host/src/trace.c) when the disk fills up: the file
 * size limit (RLIMIT_FSIZE, failing writes as a full disk would) below the
 * file's header, then at every byte from the trace's header to the whole
 * trace of a session, one session each: the session opens unless the limit
 * falls in the description of the session (then IO, saying so), its bytes
 * go over the wire whatever the trace's fate, the trace keeps every packet
 * before the one that did not fit and none after, and
 * penlink_ctx_trace_error() names that packet.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "device.h"
#include "fake_transport.h"
#include "script_pen.h"

/* No room even for the file's header: the trace is not set, IO, in words. */
static void test_no_room_for_the_header(void **state)
{
    (void)state;
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/penlink-test-trace-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.pcapng", dir);
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
    penlink_ctx *ctx = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 10;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = penlink_ctx_set_trace(ctx, path);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_int_equal(rc, PENLINK_ERR_IO);
    assert_non_null(strstr(penlink_ctx_errmsg(ctx), ": write:"));
    assert_null(penlink_ctx_trace_error(ctx));
    penlink_ctx_free(ctx);
    unlink(path);
    rmdir(dir);
}

static off_t size_of(const char *path)
{
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    return sb.st_size;
}

/* One session with the pen, traced into @p path under a file size limit
 * of @p limit bytes (0: none). The session's status; *info the pen's serial. */
static int session(const char *path, rlim_t limit, penlink_ctx **out_ctx, char serial[33])
{
    penlink_ctx *ctx = NULL;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_ctx_set_trace(ctx, path), PENLINK_OK);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    if (limit)
        lim.rlim_cur = limit;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    static script_pen p;
    static fake_wire w;
    script_pen_init(&p, 1);
    fake_wire_init(&w, script_pen_respond, &p);
    transport *t = fake_transport_new(ctx, &w);
    assert_non_null(t);
    penlink_dev *d = NULL;
    int rc = dev_open_on(ctx, t, &d);
    if (rc == PENLINK_OK) {
        penlink_info info = PENLINK_INFO_INIT;
        rc = penlink_dev_info(d, &info);
        snprintf(serial, 33, "%s", info.serial);
        penlink_dev_close(d);
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    *out_ctx = ctx;
    return rc;
}

static void test_trace_fills_up(void **state)
{
    (void)state;
    char dir[64], path[96];
    snprintf(dir, sizeof dir, "/tmp/penlink-test-trace-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/t.pcapng", dir);
    signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
    penlink_ctx *ctx;
    char serial[33];
    /* the whole trace, and its header alone */
    assert_int_equal(session(path, 0, &ctx, serial), PENLINK_OK);
    assert_null(penlink_ctx_trace_error(ctx));
    off_t whole = size_of(path);
    penlink_ctx_free(ctx);
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_ctx_set_trace(ctx, path), PENLINK_OK);
    off_t header = size_of(path);
    penlink_ctx_free(ctx);
    assert_true(header > 0 && whole > header);
    int refused = 0, incomplete = 0;
    for (off_t limit = header; limit <= whole; limit++) {
        int rc = session(path, (rlim_t)limit, &ctx, serial);
        off_t got = size_of(path);
        assert_true(got <= limit);
        const char *why = penlink_ctx_trace_error(ctx);
        if (rc == PENLINK_ERR_IO) {
            /* the limit fell in the session's description */
            refused++;
            assert_non_null(strstr(penlink_ctx_errmsg(ctx), "write:"));
        } else {
            assert_int_equal(rc, PENLINK_OK);
            assert_string_equal(serial, SCRIPT_PEN_SERIAL);
            if (limit < whole) {
                incomplete++;
                assert_non_null(why);
                assert_non_null(strstr(why, "is incomplete: writing its packet"));
                assert_non_null(strstr(why, "and none after"));
            } else {
                assert_null(why);
                assert_int_equal(got, whole);
            }
        }
        penlink_ctx_free(ctx);
    }
    assert_true(refused > 0);
    assert_true(incomplete > 0);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_room_for_the_header),
        cmocka_unit_test(test_trace_fills_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
