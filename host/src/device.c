/*
 * The client: one session with a pen over any transport. It frames and
 * unframes Envelopes, matches replies to requests by id (dropping stale
 * replies a killed earlier client left behind), retries idempotent requests
 * on timeout, and turns the pen's structured errors into statuses with
 * messages that say what to do.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "device.h"
#include "message.h"
#include "trace.h"

#define CLIENT_NAME "penlink/" PENLINK_VERSION_STRING

void dev_copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

void dev_notice(penlink_dev *d, const char *fmt, ...)
{
    char text[300];
    if (!d->ctx->on_notice)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    d->ctx->on_notice(d->ctx->on_notice_user, text);
}

/* ---- frames in and out ------------------------------------------------- */

static long long wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* `penlink -v`: one message sent or received, or a damaged stretch. */
static void show(penlink_dev *d, penlink_direction dir, const pl_envelope *env,
                 const uint8_t *frame, size_t len, const char *problem)
{
    penlink_message m;
    memset(&m, 0, sizeof m);
    m.index = ++d->messages;
    m.time_us = wall_us();
    m.direction = dir;
    m.size = (uint32_t)len;
    if (frame)
        msg_set_frame(&m, frame, len);
    m.request_id = env ? env->request_id : 0;
    m.name = msg_body_name(env);
    m.problem = problem;
    m.internal_ = env;
    d->on_message(d->on_message_user, &m);
}

int dev_send(penlink_dev *d, pl_envelope *env)
{
    size_t need = pl_envelope_frame_size(env);
    uint32_t limit = d->pen_max_payload ? d->pen_max_payload : PL_FRAME_MIN_PAYLOAD;
    if (need - PL_FRAME_HEADER_SIZE > limit)
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                            "request of %zu bytes exceeds the pen's maximum frame of %u bytes",
                            need - PL_FRAME_HEADER_SIZE, limit);
    if (need > d->txcap) {
        uint8_t *nt = realloc(d->tx, need);
        if (!nt)
            return penlink_fail(d->ctx, PENLINK_ERR_NO_MEM, "no memory for a request of %zu bytes",
                                need);
        d->tx = nt;
        d->txcap = need;
    }
    long n = pl_envelope_frame(env, d->tx, d->txcap);
    if (n < 0)
        return penlink_fail(d->ctx, PENLINK_ERR_NO_MEM, "a request could not be framed");
    int st = d->t->ops->send(d->t, d->tx, (size_t)n, d->timeout_ms);
    if (st == PENLINK_OK && d->on_message)
        show(d, PENLINK_DIR_TO_PEN, env, d->tx, (size_t)n, NULL);
    return st;
}

/*
 * Waits for the next intact frame until @p deadline; unpacks it into *env.
 * Damaged stretches are counted and skipped: the pen's reply to our request
 * either arrives intact or we time out and retry.
 */
int dev_recv(penlink_dev *d, long long deadline, pl_envelope **env, pl_frame *raw)
{
    for (;;) {
        /* After a frame or a refusal the decoder's window may still hold a
         * whole frame (one that began inside a refused one, §2 rule 5): let it
         * look again before waiting for bytes the pen may never send. */
        while (d->rpos < d->rlen || d->fdec_again) {
            size_t used = 0;
            pl_frame fr;
            pl_status st =
                pl_frame_decoder_feed(&d->fdec, d->rbuf + d->rpos, d->rlen - d->rpos, &used, &fr);
            d->rpos += used;
            d->fdec_again = st != PL_NEED_MORE;
            if (st == PL_OK) {
                *env = pl_envelope_unpack(NULL, fr.payload, fr.len);
                if (raw)
                    *raw = fr;
                if (d->on_message)
                    show(d, PENLINK_DIR_TO_HOST, *env, fr.payload - PL_FRAME_HEADER_SIZE,
                         PL_FRAME_HEADER_SIZE + fr.len,
                         *env ? NULL : "the payload is not a penlink Envelope");
                if (*env)
                    return PENLINK_OK;
                d->frame_errors++;
            } else if (st != PL_NEED_MORE) {
                d->frame_errors++;
                if (d->on_message)
                    show(d, PENLINK_DIR_TO_HOST, NULL, NULL, 0, pl_status_str(st));
            }
        }
        long long left = deadline - pc_mono_ms();
        if (left <= 0)
            return PENLINK_ERR_TIMEOUT;
        size_t got = 0;
        int st = d->t->ops->recv(d->t, d->rbuf, sizeof d->rbuf, &got, (int)left);
        if (st != PENLINK_OK)
            return st;
        d->rlen = got;
        d->rpos = 0;
    }
}

const char *dev_body_name(Penlink__V1__Envelope__BodyCase c)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(&penlink__v1__envelope__descriptor, (unsigned)c);
    return f ? f->name : "request";
}

/* Turns the pen's Error into a status and a message saying what to do. */
int dev_pen_error(penlink_dev *d, const Penlink__V1__Error *e, const char *req)
{
    d->err.code = e->code;
    dev_copy_str(d->err.message, sizeof d->err.message, e->message);
    dev_copy_str(d->err.field, sizeof d->err.field, e->field);
    const char *m = d->err.message;
    switch (e->code) {
    case PENLINK__V1__ERROR_CODE__ERROR_REVISION_CONFLICT:
        return penlink_fail(d->ctx, PENLINK_ERR_CONFLICT,
                            "the pen's configuration changed meanwhile (%s); read it again, "
                            "review, and retry",
                            m);
    case PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT:
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_CONFIG, "the pen refused %s%s%s: %s", req,
                            d->err.field[0] ? " field " : "", d->err.field, m);
    case PENLINK__V1__ERROR_CODE__ERROR_VERSION_MISMATCH:
        return penlink_fail(d->ctx, PENLINK_ERR_VERSION, "%s", m);
    case PENLINK__V1__ERROR_CODE__ERROR_BUSY:
        return penlink_fail(d->ctx, PENLINK_ERR_DEVICE,
                            "the pen is busy (%s); retry when the treatment has ended", m);
    case PENLINK__V1__ERROR_CODE__ERROR_SEQ_NOT_AVAILABLE:
        return penlink_fail(d->ctx, PENLINK_ERR_DEVICE,
                            "the pen does not have the records asked for (%s): the archive may "
                            "belong to another pen, or the pen was reset",
                            m);
    case PENLINK__V1__ERROR_CODE__ERROR_STORAGE:
        return penlink_fail(d->ctx, PENLINK_ERR_DEVICE,
                            "the pen reports a flash failure (%s): it needs service", m);
    case PENLINK__V1__ERROR_CODE__ERROR_AUTH_REQUIRED:
        return penlink_fail(d->ctx, PENLINK_ERR_AUTH,
                            "the pen takes only signed configuration (%s): sign with an "
                            "authorised key (--key FILE)",
                            m);
    case PENLINK__V1__ERROR_CODE__ERROR_AUTH_FAILED:
        return penlink_fail(d->ctx, PENLINK_ERR_AUTH,
                            "the pen refused the signature (%s): it must be made with one of the "
                            "pen's config keys (penlink info lists them) over this pen's serial, "
                            "the revision read, the pen's nonce and these values",
                            m);
    case PENLINK__V1__ERROR_CODE__ERROR_AUTH_NONCE:
        return penlink_fail(d->ctx, PENLINK_ERR_AUTH,
                            "the pen refused a stale or replayed request (%s): try again", m);
    case PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED:
        return penlink_fail(d->ctx, PENLINK_ERR_DEVICE,
                            "the pen does not support %s (%s): its firmware is older than this "
                            "penlink",
                            req, m);
    default:
        return penlink_fail(d->ctx, PENLINK_ERR_DEVICE, "the pen answered %s with error %u: %s",
                            req, e->code, m);
    }
}

/*
 * Sends @p req and waits for the reply with the same request id (replies to
 * other ids are stale and dropped). Idempotent requests are sent again, with
 * a new id, after a timeout.
 */
int dev_request(penlink_dev *d, pl_envelope *req, int idempotent,
                Penlink__V1__Envelope__BodyCase want, pl_envelope **reply)
{
    const char *name = dev_body_name(req->body_case);
    int tries = idempotent ? 1 + d->retries : 1;
    memset(&d->err, 0, sizeof d->err);
    int st = dev_supports(d, req->body_case);
    if (st != PENLINK_OK)
        return st;
    for (int attempt = 0; attempt < tries; attempt++) {
        req->has_request_id = 1;
        req->request_id = d->next_id++;
        st = dev_send(d, req);
        if (st != PENLINK_OK)
            return st;
        if (req->body_case == PENLINK__V1__ENVELOPE__BODY_ACK_LOG)
            d->ack_sent = 1;
        long long deadline = pc_mono_ms() + d->timeout_ms;
        for (;;) {
            pl_envelope *env = NULL;
            st = dev_recv(d, deadline, &env, NULL);
            if (st == PENLINK_ERR_TIMEOUT) {
                if (attempt + 1 < tries)
                    dev_notice(d,
                               "%s: the pen has not answered %s for %.1f s; asking again (try "
                               "%d of %d)",
                               d->serial[0] ? d->serial : d->t->where, name,
                               (double)d->timeout_ms / 1000.0, attempt + 2, tries);
                break;
            }
            if (st != PENLINK_OK)
                return st;
            if (env->request_id != req->request_id &&
                !(env->request_id == 0 && env->body_case == PENLINK__V1__ENVELOPE__BODY_ERROR)) {
                pl_envelope_free(NULL, env); /* stale: an earlier client's or request's */
                continue;
            }
            if (env->body_case == PENLINK__V1__ENVELOPE__BODY_ERROR) {
                if (env->request_id == 0) {
                    /* about a frame the pen could not read: ours got damaged (resend),
                     * or someone else's; either way this request is not answered */
                    pl_envelope_free(NULL, env);
                    break;
                }
                st = dev_pen_error(d, env->error, name);
                pl_envelope_free(NULL, env);
                return st;
            }
            if (env->body_case == PENLINK__V1__ENVELOPE__BODY__NOT_SET) {
                pl_envelope_free(NULL, env); /* a reply this version does not know: §3 */
                continue;
            }
            if (env->body_case != want) {
                st = penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL,
                                  "the pen answered %s with %s instead of %s", name,
                                  dev_body_name(env->body_case), dev_body_name(want));
                pl_envelope_free(NULL, env);
                return st;
            }
            *reply = env;
            return PENLINK_OK;
        }
    }
    return penlink_fail(d->ctx, PENLINK_ERR_TIMEOUT,
                        "%s: the pen did not answer %s within %d ms (%d %s): it may be hung. "
                        "Unplug it and plug it in again (or switch it off and on), then run the "
                        "command again",
                        d->t->where, name, d->timeout_ms, tries, tries == 1 ? "try" : "tries");
}

int dev_supports(penlink_dev *d, Penlink__V1__Envelope__BodyCase body)
{
    uint32_t need;
    const char *what;
    switch (body) {
    case PENLINK__V1__ENVELOPE__BODY_PULL_LOG:
    case PENLINK__V1__ENVELOPE__BODY_ACK_LOG:
        need = PENLINK__V1__FEATURE__FEATURE_LOG_PULL;
        what = "pulling its log";
        break;
    case PENLINK__V1__ENVELOPE__BODY_GET_CONFIG:
    case PENLINK__V1__ENVELOPE__BODY_SET_CONFIG:
        need = PENLINK__V1__FEATURE__FEATURE_CONFIG;
        what = "configuration";
        break;
    case PENLINK__V1__ENVELOPE__BODY_GET_NONCE: /* for a signed SetConfig or SetClock */
        need = PENLINK__V1__FEATURE__FEATURE_CONFIG | PENLINK__V1__FEATURE__FEATURE_SIGNED_CLOCK;
        what = "nonces";
        break;
    case PENLINK__V1__ENVELOPE__BODY_IDENTIFY:
        need = PENLINK__V1__FEATURE__FEATURE_IDENTIFY;
        what = "identify (signalling itself)";
        break;
    case PENLINK__V1__ENVELOPE__BODY_SET_CLOCK:
        need = PENLINK__V1__FEATURE__FEATURE_CLOCK;
        what = "setting its clock";
        break;
    default: return PENLINK_OK; /* Hello and GetInfo: every pen answers them */
    }
    if (d->features & need)
        return PENLINK_OK;
    return penlink_fail(d->ctx, PENLINK_ERR_DEVICE,
                        "the pen %s does not support %s (it did not announce the feature in its "
                        "HelloReply): nothing was sent",
                        d->serial, what);
}

/* ---- session ----------------------------------------------------------- */

/* A serial is 1..32 bytes of printable ASCII, not only spaces (docs/protocol.md §5). */
static int serial_ok(const char *s, size_t len)
{
    int visible = 0;
    if (len == 0 || len > DEV_SERIAL_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e)
            return 0;
        visible |= c != ' ';
    }
    return visible;
}

/* Reads and drops whatever a killed earlier client left queued. */
static int drain(penlink_dev *d)
{
    long long end = pc_mono_ms() + 1000;
    size_t total = 0;
    while (pc_mono_ms() < end && total < (8u << 20)) {
        size_t got = 0;
        int st = d->t->ops->recv(d->t, d->rbuf, sizeof d->rbuf, &got, 30);
        if (st == PENLINK_ERR_TIMEOUT)
            break;
        if (st != PENLINK_OK)
            return st;
        total += got;
    }
    d->rlen = d->rpos = 0;
    d->fdec_again = 0;
    pl_frame_decoder_reset(&d->fdec);
    return PENLINK_OK;
}

static int hello(penlink_dev *d)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Hello h = PENLINK__V1__HELLO__INIT;
    h.has_protocol_major = h.has_protocol_minor = h.has_features = h.has_max_frame_payload = 1;
    h.protocol_major = PENLINK_PROTOCOL_MAJOR;
    h.protocol_minor = PENLINK_PROTOCOL_MINOR;
    h.features = PENLINK__V1__FEATURE__FEATURE_LOG_PULL | PENLINK__V1__FEATURE__FEATURE_CONFIG |
                 PENLINK__V1__FEATURE__FEATURE_CLOCK | PENLINK__V1__FEATURE__FEATURE_SIGNED_CONFIG |
                 PENLINK__V1__FEATURE__FEATURE_SIGNED_CHUNKS;
    h.max_frame_payload = HOST_MAX_PAYLOAD;
    h.client = CLIENT_NAME;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    pl_envelope *r = NULL;
    int st = dev_request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY, &r);
    if (st == PENLINK_ERR_VERSION) {
        /* the pen's message names both versions; say which side to update */
        char msg[sizeof d->err.message + 96];
        unsigned pen_major = 0;
        const char *p = strstr(d->err.message, "protocol ");
        if (p)
            sscanf(p, "protocol %u", &pen_major);
        snprintf(msg, sizeof msg, "%s", d->err.message);
        return penlink_fail(d->ctx, PENLINK_ERR_VERSION,
                            "the pen speaks another protocol major version than this penlink "
                            "(%d.%d): %s; %s",
                            PENLINK_PROTOCOL_MAJOR, PENLINK_PROTOCOL_MINOR, msg,
                            pen_major > PENLINK_PROTOCOL_MAJOR
                                ? "penlink is too old: update it"
                                : "update the pen's firmware, or use an older penlink");
    }
    if (st != PENLINK_OK)
        return st;
    const Penlink__V1__HelloReply *hr = r->hello_reply;
    d->major = hr->protocol_major;
    d->minor = hr->protocol_minor;
    d->features = hr->features;
    d->pen_max_payload = hr->has_max_frame_payload && hr->max_frame_payload >= PL_FRAME_MIN_PAYLOAD
                             ? hr->max_frame_payload
                             : PL_FRAME_MIN_PAYLOAD;
    if (d->pen_max_payload > PL_FRAME_MAX_PAYLOAD)
        d->pen_max_payload = PL_FRAME_MAX_PAYLOAD;
    size_t slen = hr->serial ? strlen(hr->serial) : 0;
    if (!serial_ok(hr->serial, slen)) {
        const char *why = slen == 0                         ? "empty"
                          : slen > DEV_SERIAL_MAX           ? "too long"
                          : slen == strspn(hr->serial, " ") ? "only spaces"
                                                            : "not printable text";
        pl_envelope_free(NULL, r); /* why points to the library's words, not the reply */
        return penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL,
                            "%s: the pen's serial number is %s: a serial is 1 to %d printable "
                            "ASCII characters, not all spaces; this pen cannot be told apart "
                            "from others, so penlink will not talk to it (have it serviced)",
                            d->t->where, why, DEV_SERIAL_MAX);
    }
    dev_copy_str(d->serial, sizeof d->serial, hr->serial);
    pl_envelope_free(NULL, r);
    if (d->major != PENLINK_PROTOCOL_MAJOR)
        return penlink_fail(d->ctx, PENLINK_ERR_VERSION,
                            "the pen speaks protocol %u.%u, this penlink %d.%d: %s", d->major,
                            d->minor, PENLINK_PROTOCOL_MAJOR, PENLINK_PROTOCOL_MINOR,
                            d->major > PENLINK_PROTOCOL_MAJOR
                                ? "penlink is too old (host too old): update it"
                                : "the pen's firmware is too old (pen too old): update it");
    return PENLINK_OK;
}

int dev_open_on(penlink_ctx *ctx, transport *t, penlink_dev **out)
{
    *out = NULL;
    penlink_dev *d = calloc(1, sizeof *d);
    if (!d) {
        t->ops->close(t);
        return penlink_fail(ctx, PENLINK_ERR_NO_MEM, "no memory for a session with a pen");
    }
    d->ctx = ctx;
    d->t = t;
    d->timeout_ms = ctx->timeout_ms;
    d->retries = ctx->retries;
    d->next_id = 1;
    int st;
    d->fbuf = malloc(PL_FRAME_HEADER_SIZE + HOST_MAX_PAYLOAD);
    d->recs = malloc(sizeof(pl_record) * PL_CHUNK_MAX_RECORDS);
    if (!d->fbuf || !d->recs ||
        pl_chunk_dec_init(&d->cdec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW) != PL_OK) {
        st = penlink_fail(ctx, PENLINK_ERR_NO_MEM, "no memory for a session with a pen");
        goto fail;
    }
    pl_frame_decoder_init(&d->fdec, d->fbuf, PL_FRAME_HEADER_SIZE + HOST_MAX_PAYLOAD,
                          HOST_MAX_PAYLOAD);
    if (ctx->trace) {
        transport *traced = NULL;
        st = transport_trace_wrap(ctx, ctx->trace, d->t, &traced);
        if (st != PENLINK_OK)
            goto fail;
        d->t = traced;
    }
    d->on_message = ctx->on_message;
    d->on_message_user = ctx->on_message_user;
    st = drain(d);
    if (st == PENLINK_OK)
        st = hello(d);
    if (st != PENLINK_OK)
        goto fail;
    *out = d;
    return PENLINK_OK;
fail:
    penlink_dev_close(d);
    return st;
}

int penlink_dev_open(penlink_ctx *ctx, const char *uri, penlink_dev **out)
{
    if (!ctx || !out)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(ctx);
    *out = NULL;
    if (!uri || !*uri)
        uri = getenv("PENLINK_DEVICE");
    if (!uri || !*uri)
        uri = "usb";
    transport *t = NULL;
    int st = transport_open(ctx, uri, &t); /* the backend of the address's scheme */
    if (st != PENLINK_OK)
        return st;
    return dev_open_on(ctx, t, out);
}

void penlink_dev_close(penlink_dev *d)
{
    if (!d)
        return;
    if (d->t)
        d->t->ops->close(d->t);
    pl_chunk_dec_fini(&d->cdec);
    free(d->recs);
    free(d->fbuf);
    free(d->tx);
    free(d);
}

void penlink_dev_set_timeout(penlink_dev *d, int timeout_ms, int retries)
{
    if (!d)
        return;
    d->timeout_ms = timeout_ms > 0 ? timeout_ms : PENLINK_DEFAULT_TIMEOUT_MS;
    d->retries = retries >= 0 ? retries : 0;
}

const penlink_device_error *penlink_dev_error(const penlink_dev *d)
{
    return d ? &d->err : NULL;
}
