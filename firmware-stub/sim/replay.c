/*
 * penlink-sim --replay TRACE: the pen's side of a recorded session, served
 * again, so that an engineer reproduces a field failure with the same host
 * build. The trace (a `penlink --trace` file, or a usbmon / USBPcap capture
 * of a pen) is read into the frames each side sent, in order; every frame
 * the host sends must equal the next one the host sent in the recording
 * (the Envelope's bytes), and is answered with the frames the pen sent
 * after it, up to the host's next one. A host that departs from the
 * recording is told (an Error, code INTERNAL, naming the packet where it
 * departed) and the replay ends with exit status SIM_DIVERGED
 * (docs/engineer-guide.md).
 *
 * A USB capture holds every device of the bus: each endpoint that shows a
 * frame's magic is decoded on its own, and the pen is the device the host
 * greeted (the first Hello sent), or else the first one sent a frame; only
 * its frames are served, as penlink decode follows them.
 */
#define _GNU_SOURCE /* memmem */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pl/capture.h"
#include "pl/envelope.h"
#include "pl/frame.h"
#include "replay.h"

#define READ_CHUNK 65536
#define HOST_GONE (-2)
#define FRAME_BUF (PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD)
/* Endpoints (byte streams) of a recording followed; more are ignored. */
#define MAX_SIDES 8

static void replay_error(replay *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void replay_error(replay *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof r->err, fmt, ap);
    va_end(ap);
}

static int add_frame(replay *r, pl_dir dir, uint64_t packet, uint32_t device, const uint8_t *frame,
                     size_t len)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        replay_frame *f = realloc(r->frames, cap * sizeof *f);
        if (!f)
            return -1;
        r->frames = f;
        r->cap = cap;
    }
    uint8_t *copy = malloc(len);
    if (!copy)
        return -1;
    memcpy(copy, frame, len);
    r->frames[r->n++] = (replay_frame){ dir, packet, device, copy, len };
    return 0;
}

/* The byte streams of the recording (one per endpoint), each through a frame decoder. */
typedef struct side {
    int used;
    uint32_t stream;
    pl_dir dir;
    pl_frame_decoder fdec;
    uint8_t *buf;
} side;

/* The side of a packet's bytes: known, or new once a frame's magic shows on it. */
static side *side_for(side *sides, const pl_wire *w, uint32_t stream)
{
    side *free_slot = NULL;
    for (int i = 0; i < MAX_SIDES; i++) {
        if (sides[i].used && sides[i].stream == stream && sides[i].dir == w->dir)
            return &sides[i];
        if (!sides[i].used && !free_slot)
            free_slot = &sides[i];
    }
    if (!free_slot || !memmem(w->data, w->len, PL_FRAME_MAGIC, 4))
        return NULL;
    free_slot->buf = malloc(FRAME_BUF);
    if (!free_slot->buf)
        return NULL;
    pl_frame_decoder_init(&free_slot->fdec, free_slot->buf, FRAME_BUF, PL_FRAME_MAX_PAYLOAD);
    free_slot->used = 1;
    free_slot->stream = stream;
    free_slot->dir = w->dir;
    return free_slot;
}

/* Keeps the frames of the pen's device only (see the top of this file). */
static void keep_pen(replay *r)
{
    uint32_t pen = 0;
    int found = 0;
    for (size_t i = 0; i < r->n && !found; i++) {
        const replay_frame *f = &r->frames[i];
        if (f->dir != PL_DIR_TO_PEN || f->len < PL_FRAME_HEADER_SIZE)
            continue;
        pl_envelope *env = pl_envelope_unpack(NULL, f->bytes + PL_FRAME_HEADER_SIZE,
                                              f->len - PL_FRAME_HEADER_SIZE);
        if (env && env->body_case == PENLINK__V1__ENVELOPE__BODY_HELLO) {
            pen = f->device;
            found = 1;
        }
        if (env)
            pl_envelope_free(NULL, env);
    }
    for (size_t i = 0; i < r->n && !found; i++)
        if (r->frames[i].dir == PL_DIR_TO_PEN) {
            pen = r->frames[i].device;
            found = 1;
        }
    if (!found)
        return;
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++) {
        if (r->frames[i].device == pen)
            r->frames[k++] = r->frames[i];
        else
            free(r->frames[i].bytes);
    }
    r->n = k;
}

static int take_bytes(replay *r, side *s, pl_dir dir, uint64_t packet, uint32_t device,
                      const uint8_t *p, size_t len)
{
    int again = 0;
    while (len > 0 || again) {
        size_t used = 0;
        pl_frame fr;
        pl_status st = pl_frame_decoder_feed(&s->fdec, p, len, &used, &fr);
        p += used;
        len -= used;
        again = st != PL_NEED_MORE;
        if (st == PL_OK && add_frame(r, dir, packet, device, fr.payload - PL_FRAME_HEADER_SIZE,
                                     PL_FRAME_HEADER_SIZE + fr.len) != 0) {
            replay_error(r, "out of memory reading the recording");
            return -1;
        }
    }
    return 0;
}

int replay_load(replay *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    FILE *in = fopen(path, "rb");
    if (!in) {
        replay_error(r, "%s: %s", path, strerror(errno));
        return -1;
    }
    pl_capture cap;
    pl_capture_init(&cap, 0);
    side sides[MAX_SIDES];
    memset(sides, 0, sizeof sides);
    uint8_t *chunk = malloc(READ_CHUNK);
    int rc = -1;
    size_t n;
    if (!chunk) {
        replay_error(r, "out of memory");
        goto out;
    }
    while ((n = fread(chunk, 1, READ_CHUNK, in)) > 0) {
        const uint8_t *p = chunk;
        while (n > 0) {
            size_t used = 0;
            pl_capture_packet pk;
            pl_status st = pl_capture_feed(&cap, p, n, &used, &pk);
            p += used;
            n -= used;
            if (st == PL_NEED_MORE)
                continue;
            if (st != PL_OK) {
                uint64_t at;
                const char *what = pl_capture_error(&cap, &at);
                replay_error(r, "%s: offset %llu: %s (%s)", path, (unsigned long long)at, what,
                             pl_status_str(st));
                goto out;
            }
            pl_wire w;
            if (pl_capture_wire(&pk, &w) != 1)
                continue;
            int usb = pk.linktype != PL_LINKTYPE_PENLINK;
            side *s = side_for(sides, &w, usb ? w.stream : 0);
            if (!s)
                continue; /* no frame on this endpoint yet, or too many endpoints */
            uint32_t device = usb ? (uint32_t)w.bus << 16 | (uint32_t)w.device << 8 : 0;
            if (take_bytes(r, s, w.dir, pk.number, device, w.data, w.len) != 0)
                goto out;
        }
    }
    if (ferror(in)) {
        replay_error(r, "%s: %s", path, strerror(errno));
        goto out;
    }
    keep_pen(r);
    if (r->n == 0) {
        replay_error(r, "%s holds no penlink frame", path);
        goto out;
    }
    rc = 0;
out:
    free(chunk);
    for (int i = 0; i < MAX_SIDES; i++)
        free(sides[i].buf);
    pl_capture_fini(&cap);
    fclose(in);
    return rc;
}

void replay_free(replay *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->frames[i].bytes);
    free(r->frames);
    r->frames = NULL;
    r->n = 0;
}

/* "get_config request 7 (20 bytes)" for messages. */
static void describe(const uint8_t *frame, size_t len, char *out, size_t cap)
{
    pl_envelope *env = NULL;
    if (len >= PL_FRAME_HEADER_SIZE)
        env = pl_envelope_unpack(NULL, frame + PL_FRAME_HEADER_SIZE, len - PL_FRAME_HEADER_SIZE);
    if (!env) {
        snprintf(out, cap, "a frame that is not an Envelope (%zu bytes)", len);
        return;
    }
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &penlink__v1__envelope__descriptor, (unsigned)env->body_case);
    snprintf(out, cap, "%s request %u (%zu bytes)", f ? f->name : "an Envelope without a body",
             env->request_id, len);
    pl_envelope_free(NULL, env);
}

static uint32_t request_id_of(const uint8_t *frame, size_t len)
{
    uint32_t id = 0;
    pl_envelope *env = NULL;
    if (len >= PL_FRAME_HEADER_SIZE)
        env = pl_envelope_unpack(NULL, frame + PL_FRAME_HEADER_SIZE, len - PL_FRAME_HEADER_SIZE);
    if (env) {
        id = env->request_id;
        pl_envelope_free(NULL, env);
    }
    return id;
}

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The pen's frames from the cursor up to the host's next one. */
static int send_pen_frames(replay *r, int fd)
{
    while (r->next < r->n && r->frames[r->next].dir == PL_DIR_TO_HOST) {
        const replay_frame *f = &r->frames[r->next];
        if (send_all(fd, f->bytes, f->len) != 0)
            return -1;
        r->next++;
    }
    return 0;
}

/* Tells the host where it departed, as an Error to its request. */
static void tell_host(int fd, uint32_t request_id, const char *msg)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Error e = PENLINK__V1__ERROR__INIT;
    e.has_code = 1;
    e.code = PENLINK__V1__ERROR_CODE__ERROR_INTERNAL;
    e.message = (char *)msg;
    e.field = "replay";
    env.has_request_id = 1;
    env.request_id = request_id;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_ERROR;
    env.error = &e;
    uint8_t out[2048];
    long n = pl_envelope_frame(&env, out, sizeof out);
    if (n > 0)
        (void)send_all(fd, out, (size_t)n);
}

/* A frame from the host: the recording's next one, or a departure. */
static int host_frame(replay *r, int fd, const uint8_t *frame, size_t len)
{
    char got[96], want[96];
    if (r->next < r->n && r->frames[r->next].len == len &&
        memcmp(r->frames[r->next].bytes, frame, len) == 0) {
        r->next++;
        r->matched++;
        return send_pen_frames(r, fd) == 0 ? 0 : HOST_GONE;
    }
    describe(frame, len, got, sizeof got);
    if (r->next < r->n) {
        const replay_frame *f = &r->frames[r->next];
        describe(f->bytes, f->len, want, sizeof want);
        snprintf(r->err, sizeof r->err,
                 "replay: the host departed from the recording at packet %llu of %s (the host's "
                 "frame %zu): it sent %s, the recording has %s",
                 (unsigned long long)f->packet, r->path, r->matched + 1, got, want);
    } else {
        snprintf(r->err, sizeof r->err,
                 "replay: the host departed from the recording after its end (the host's frame "
                 "%zu): it sent %s, the recording of %s has no more",
                 r->matched + 1, got, r->path);
    }
    tell_host(fd, request_id_of(frame, len), r->err);
    r->diverged = 1;
    return -1;
}

/* Waits for a host: 0 with @p *fd its connection, or 1 when stopped first. */
static int accept_host(replay *r, int listen_fd, int stop_fd, int *fd)
{
    for (;;) {
        struct pollfd p[2] = { { stop_fd, POLLIN, 0 }, { listen_fd, POLLIN, 0 } };
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[0].revents & POLLIN)) {
            replay_error(r, "replay: stopped before a host connected");
            return 1;
        }
        *fd = accept(listen_fd, NULL, NULL);
        if (*fd >= 0)
            return 0;
    }
}

/* The host's bytes, through the frame decoder, each frame checked against
 * the recording: 0, HOST_GONE, or -1 when the host departed from it (r->err
 * says how). */
static int host_bytes(replay *r, int fd, pl_frame_decoder *fdec, const uint8_t *q, size_t left)
{
    int again = 0;
    while (left > 0 || again) {
        size_t used = 0;
        pl_frame fr;
        pl_status st = pl_frame_decoder_feed(fdec, q, left, &used, &fr);
        q += used;
        left -= used;
        again = st != PL_NEED_MORE;
        int h = st == PL_OK ? host_frame(r, fd, fr.payload - PL_FRAME_HEADER_SIZE,
                                         PL_FRAME_HEADER_SIZE + fr.len)
                            : 0;
        if (h == HOST_GONE)
            return HOST_GONE;
        if (h != 0)
            return -1;
        if (st != PL_OK && st != PL_NEED_MORE) {
            snprintf(r->err, sizeof r->err,
                     "replay: the host sent damaged bytes (%s) after %zu frames as recorded",
                     pl_status_str(st), r->matched);
            r->diverged = 1;
            return -1;
        }
    }
    return 0;
}

int replay_serve(replay *r, int listen_fd, int stop_fd, int verbose)
{
    int fd = -1, rc = SIM_DIVERGED;
    uint8_t *fbuf = malloc(FRAME_BUF), *buf = malloc(READ_CHUNK);
    pl_frame_decoder fdec;
    if (!fbuf || !buf) {
        replay_error(r, "out of memory");
        rc = 1;
        goto out;
    }
    pl_frame_decoder_init(&fdec, fbuf, FRAME_BUF, PL_FRAME_MAX_PAYLOAD);
    if (accept_host(r, listen_fd, stop_fd, &fd) != 0) {
        rc = 0;
        goto out;
    }
    if (verbose)
        fprintf(stderr, "penlink-sim: replaying %zu frames of %s\n", r->n, r->path);
    if (send_pen_frames(r, fd) != 0)
        goto gone;
    for (;;) {
        struct pollfd p[2] = { { stop_fd, POLLIN, 0 }, { fd, POLLIN, 0 } };
        int n = poll(p, 2, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (p[0].revents & POLLIN)) {
            replay_error(r, "replay: stopped at the recording's frame %zu of %zu", r->next, r->n);
            rc = 0;
            goto out;
        }
        ssize_t got = recv(fd, buf, READ_CHUNK, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            goto gone;
        int h = host_bytes(r, fd, &fdec, buf, (size_t)got);
        if (h == HOST_GONE)
            goto gone;
        if (h != 0)
            goto out;
    }
gone:
    if (r->next < r->n) {
        snprintf(r->err, sizeof r->err,
                 "replay: the host disconnected at packet %llu of %s, before the recording's end "
                 "(%zu of %zu frames replayed)",
                 (unsigned long long)r->frames[r->next].packet, r->path, r->next, r->n);
        r->diverged = 1;
    } else {
        rc = 0;
        if (verbose)
            fprintf(stderr,
                    "penlink-sim: the host followed the recording to its end (%zu "
                    "frames)\n",
                    r->n);
    }
out:
    if (fd >= 0)
        close(fd);
    free(fbuf);
    free(buf);
    return rc;
}
