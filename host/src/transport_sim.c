/* The sim transport: penlink-sim's Unix stream socket. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "transport.h"

typedef struct sim_transport {
    transport base;
    int fd;
} sim_transport;

static int sim_wait(sim_transport *s, short events, int timeout_ms)
{
    struct pollfd p = { .fd = s->fd, .events = events };
    int r;
    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR && !s->base.ctx->cancelled);
    if (s->base.ctx->cancelled)
        return PENLINK_ERR_CANCELLED;
    if (r < 0)
        return penlink_fail(s->base.ctx, PENLINK_ERR_IO, "%s: poll: %s", s->base.where,
                            strerror(errno));
    if (r == 0)
        return PENLINK_ERR_TIMEOUT;
    return PENLINK_OK;
}

static int gone(sim_transport *s)
{
    return penlink_fail(s->base.ctx, PENLINK_ERR_GONE,
                        "%s: the simulated pen closed the connection (penlink-sim stopped?)",
                        s->base.where);
}

static int sim_send(transport *t, const uint8_t *p, size_t n, int timeout_ms)
{
    sim_transport *s = (sim_transport *)t;
    while (n > 0) {
        int st = sim_wait(s, POLLOUT, timeout_ms);
        if (st == PENLINK_ERR_TIMEOUT)
            return penlink_fail(t->ctx, st, "%s: the pen does not take data (%d ms)", t->where,
                                timeout_ms);
        if (st != PENLINK_OK)
            return st;
        /* never blocking: what the socket cannot take now waits in poll, under the timeout */
        ssize_t w = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            return gone(s);
        if (w < 0)
            return penlink_fail(t->ctx, PENLINK_ERR_IO, "%s: send: %s", t->where, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return PENLINK_OK;
}

static int sim_recv(transport *t, uint8_t *p, size_t cap, size_t *got, int timeout_ms)
{
    sim_transport *s = (sim_transport *)t;
    *got = 0;
    for (;;) {
        int st = sim_wait(s, POLLIN, timeout_ms);
        if (st != PENLINK_OK)
            return st;
        ssize_t r = recv(s->fd, p, cap, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return gone(s);
        if (r < 0)
            return penlink_fail(t->ctx, PENLINK_ERR_IO, "%s: recv: %s", t->where, strerror(errno));
        *got = (size_t)r;
        return PENLINK_OK;
    }
}

static void sim_close(transport *t)
{
    sim_transport *s = (sim_transport *)t;
    close(s->fd);
    free(s);
}

static const transport_ops sim_ops = { "sim", sim_send, sim_recv, sim_close };

int transport_sim_open(penlink_ctx *ctx, const char *path, transport **out)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof addr.sun_path)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "sim:%s: socket path too long", path);
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return penlink_fail(ctx, PENLINK_ERR_IO, "socket: %s", strerror(errno));
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        int e = errno;
        close(fd);
        if (e == EACCES || e == EPERM)
            return penlink_fail(ctx, PENLINK_ERR_ACCESS,
                                "sim:%s: permission denied: the socket belongs to another user",
                                path);
        if (e == ENOENT || e == ECONNREFUSED || e == ENOTSOCK)
            return penlink_fail(ctx, PENLINK_ERR_NOT_FOUND,
                                "sim:%s: no simulated pen there (%s); start one with "
                                "'penlink-sim --state DIR --listen %s'",
                                path, strerror(e), path);
        return penlink_fail(ctx, PENLINK_ERR_IO, "sim:%s: connect: %s", path, strerror(e));
    }
    sim_transport *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return penlink_fail(ctx, PENLINK_ERR_NO_MEM, "no memory for a session with sim:%s", path);
    }
    s->base.ops = &sim_ops;
    s->base.ctx = ctx;
    snprintf(s->base.where, sizeof s->base.where, "sim:%s", path);
    s->fd = fd;
    *out = &s->base;
    return PENLINK_OK;
}

/* A simulator is named by its socket: there is nothing to list, nothing kept on a context. */
const transport_backend transport_sim_backend = { "sim", transport_sim_open, 0, NULL, NULL };
