/*
 * The sim transport (host/src/transport_sim.c) against a Unix socket the test
 * holds itself, no simulator: addresses that cannot be a pen, bytes both
 * ways, a pen that says nothing, takes nothing, or goes away, and a
 * cancelled context.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "transport.h"

typedef struct fixture {
    penlink_ctx *ctx;
    char dir[64], path[96];
    int listener; /* the pen's side */
    int peer;     /* the accepted connection */
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    snprintf(f->dir, sizeof f->dir, "/tmp/penlink-tsim-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/pen.sock", f->dir);
    f->listener = f->peer = -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (f->peer >= 0)
        close(f->peer);
    if (f->listener >= 0)
        close(f->listener);
    unlink(f->path);
    rmdir(f->dir);
    penlink_ctx_free(f->ctx);
    free(f);
    return 0;
}

static int bound_socket(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof a.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* A pen listening at f->path, connected to: the transport and the pen's end. */
static transport *connected(fixture *f)
{
    f->listener = bound_socket(f->path);
    assert_int_equal(listen(f->listener, 1), 0);
    transport *t = NULL;
    assert_int_equal(transport_sim_open(f->ctx, f->path, &t), PENLINK_OK);
    f->peer = accept(f->listener, NULL, NULL);
    assert_true(f->peer >= 0);
    return t;
}

static void assert_says(const fixture *f, const char *words)
{
    if (!strstr(penlink_ctx_errmsg(f->ctx), words))
        fail_msg("\"%s\" does not say \"%s\"", penlink_ctx_errmsg(f->ctx), words);
}

static void test_no_pen_there(void **state)
{
    fixture *f = *state;
    transport *t = NULL;
    assert_int_equal(transport_sim_open(f->ctx, f->path, &t), PENLINK_ERR_NOT_FOUND);
    assert_null(t);
    assert_says(f, "no simulated pen there");
    assert_says(f, "'penlink-sim --state DIR --listen ");
    /* a socket nobody listens on */
    int fd = bound_socket(f->path);
    assert_int_equal(transport_sim_open(f->ctx, f->path, &t), PENLINK_ERR_NOT_FOUND);
    close(fd);
    unlink(f->path);
    /* a file that is not a socket */
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(transport_sim_open(f->ctx, f->path, &t), PENLINK_ERR_NOT_FOUND);
}

static void test_path_too_long(void **state)
{
    fixture *f = *state;
    char path[sizeof((struct sockaddr_un *)0)->sun_path + 8];
    memset(path, 'p', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    transport *t = NULL;
    assert_int_equal(transport_sim_open(f->ctx, path, &t), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "socket path too long");
}

static void test_bytes_both_ways(void **state)
{
    fixture *f = *state;
    transport *t = connected(f);
    char where[128];
    snprintf(where, sizeof where, "sim:%s", f->path);
    assert_string_equal(t->where, where);
    assert_string_equal(t->ops->name, "sim");
    static const uint8_t out[] = "to the pen";
    assert_int_equal(t->ops->send(t, out, sizeof out, 100), PENLINK_OK);
    uint8_t got[64];
    assert_int_equal(read(f->peer, got, sizeof got), (ssize_t)sizeof out);
    assert_memory_equal(got, out, sizeof out);
    static const uint8_t in[] = "from the pen";
    assert_int_equal(write(f->peer, in, sizeof in), (ssize_t)sizeof in);
    size_t n = 0;
    assert_int_equal(t->ops->recv(t, got, sizeof got, &n, 1000), PENLINK_OK);
    assert_int_equal(n, sizeof in);
    assert_memory_equal(got, in, sizeof in);
    t->ops->close(t);
}

/* Nothing to read: TIMEOUT, with nothing received; cancelled: CANCELLED. */
static void test_silence_and_cancel(void **state)
{
    fixture *f = *state;
    transport *t = connected(f);
    uint8_t buf[16];
    size_t n = 99;
    assert_int_equal(t->ops->recv(t, buf, sizeof buf, &n, 0), PENLINK_ERR_TIMEOUT);
    assert_int_equal(n, 0);
    penlink_ctx_cancel(f->ctx);
    assert_int_equal(t->ops->recv(t, buf, sizeof buf, &n, 0), PENLINK_ERR_CANCELLED);
    assert_int_equal(t->ops->send(t, buf, sizeof buf, 0), PENLINK_ERR_CANCELLED);
    penlink_ctx_reset_cancel(f->ctx);
    t->ops->close(t);
}

/* A pen that takes nothing: the send gives up when its socket stays full. */
static void test_pen_takes_nothing(void **state)
{
    fixture *f = *state;
    transport *t = connected(f);
    enum { BIG = 16 << 20 };
    uint8_t *big = calloc(1, BIG);
    assert_non_null(big);
    assert_int_equal(t->ops->send(t, big, BIG, 0), PENLINK_ERR_TIMEOUT);
    assert_says(f, "the pen does not take data (0 ms)");
    free(big);
    t->ops->close(t);
}

/* The pen goes away: GONE both ways, saying so. */
static void test_pen_gone(void **state)
{
    fixture *f = *state;
    transport *t = connected(f);
    close(f->peer);
    f->peer = -1;
    uint8_t buf[16] = { 0 };
    size_t n = 0;
    assert_int_equal(t->ops->recv(t, buf, sizeof buf, &n, 1000), PENLINK_ERR_GONE);
    assert_says(f, "the simulated pen closed the connection");
    assert_int_equal(t->ops->send(t, buf, sizeof buf, 1000), PENLINK_ERR_GONE);
    t->ops->close(t);
}

/* The pen goes away without reading what it was sent: the connection is
 * reset (ECONNRESET), then broken (EPIPE): GONE both ways. */
static void test_pen_reset(void **state)
{
    fixture *f = *state;
    transport *t = connected(f);
    uint8_t buf[64] = { 1 };
    assert_int_equal(t->ops->send(t, buf, sizeof buf, 1000), PENLINK_OK);
    close(f->peer); /* unread bytes in its queue */
    f->peer = -1;
    size_t n = 0;
    assert_int_equal(t->ops->recv(t, buf, sizeof buf, &n, 1000), PENLINK_ERR_GONE);
    assert_int_equal(n, 0);
    assert_says(f, "the simulated pen closed the connection");
    penlink_enter(f->ctx); /* a new call: its own words */
    assert_int_equal(t->ops->send(t, buf, sizeof buf, 1000), PENLINK_ERR_GONE);
    assert_says(f, "the simulated pen closed the connection");
    t->ops->close(t);
}

/* A path through a file: neither a pen nor nothing, an I/O error naming it. */
static void test_path_through_a_file(void **state)
{
    fixture *f = *state;
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fclose(fp);
    char below[160];
    snprintf(below, sizeof below, "%s/pen.sock", f->path);
    transport *t = NULL;
    assert_int_equal(transport_sim_open(f->ctx, below, &t), PENLINK_ERR_IO);
    assert_null(t);
    assert_says(f, "connect: Not a directory");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_no_pen_there),       T(test_path_too_long),       T(test_bytes_both_ways),
        T(test_silence_and_cancel), T(test_pen_takes_nothing),   T(test_pen_gone),
        T(test_pen_reset),          T(test_path_through_a_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
