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
#include "pl/auth.h"
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
static int request(penlink_dev *d, pl_envelope *req, int idempotent,
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
    int st = request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY, &r);
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

/* ---- requests ---------------------------------------------------------- */

int penlink_dev_info(penlink_dev *d, penlink_info *caller)
{
    if (!d || !caller || caller->size < PL_INFO_SIZE_V1)
        return PENLINK_ERR_INVALID_ARG;
    penlink_info all = PENLINK_INFO_INIT, *out = &all;
    penlink_enter(d->ctx);
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__GetInfo gi = PENLINK__V1__GET_INFO__INIT;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_INFO;
    env.get_info = &gi;
    pl_envelope *r = NULL;
    int st = request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO, &r);
    if (st != PENLINK_OK)
        return st;
    const Penlink__V1__DeviceInfo *i = r->device_info;
    dev_copy_str(out->serial, sizeof out->serial, i->serial);
    dev_copy_str(out->model, sizeof out->model, i->model);
    dev_copy_str(out->hardware_revision, sizeof out->hardware_revision, i->hardware_revision);
    dev_copy_str(out->firmware_version, sizeof out->firmware_version, i->firmware_version);
    out->log_first_seq = i->log_first_seq;
    out->log_next_seq = i->log_next_seq;
    out->log_acked_seq = i->log_acked_seq;
    out->log_capacity_bytes = i->log_capacity_bytes;
    out->log_used_bytes = i->log_used_bytes;
    out->device_time_ms = i->device_time_ms;
    out->uptime_ms = i->uptime_ms;
    out->config_revision = i->config_revision;
    out->limits.size = sizeof out->limits;
    if (i->limits) {
        const Penlink__V1__ConfigLimits *l = i->limits;
        out->limits =
            (penlink_limits){ sizeof out->limits, l->depth_min_um,       l->depth_max_um,
                              l->depth_step_um,   l->speed_min_sps,      l->speed_max_sps,
                              l->max_treatment_s, l->max_cartridge_uses, l->auto_off_min_s,
                              l->auto_off_max_s,  l->max_text_len };
    }
    out->protocol_major = d->major;
    out->protocol_minor = d->minor;
    out->features = d->features;
    out->max_frame_payload = d->pen_max_payload;
    if (i->has_device_key && i->device_key.len == 32) {
        out->has_device_key = 1;
        memcpy(out->device_key, i->device_key.data, 32);
    }
    for (size_t k = 0; k < i->n_config_keys && out->n_config_keys < PENLINK_CONFIG_KEYS_MAX; k++)
        if (i->config_keys[k].len == PENLINK_KEY_SIZE)
            memcpy(d->config_keys[out->n_config_keys++], i->config_keys[k].data, PENLINK_KEY_SIZE);
    out->config_keys =
        out->n_config_keys ? (const uint8_t(*)[PENLINK_KEY_SIZE])d->config_keys : NULL;
    int same = !i->serial || !i->serial[0] || strcmp(i->serial, d->serial) == 0;
    pl_envelope_free(NULL, r);
    if (!same)
        return penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL,
                            "%s: the pen gives two serial numbers (one in HelloReply, another in "
                            "DeviceInfo): penlink will not tell which pen it is",
                            d->t->where);
    dev_copy_str(out->serial, sizeof out->serial, d->serial);
    d->info_acked = out->log_acked_seq;
    d->info_read = 1;
    pl_sized_copy(caller, &all, sizeof all);
    return PENLINK_OK;
}

/* Into a caller's config: only the fields its size covers. */
static void config_from_pb(penlink_config *out, const Penlink__V1__Config *p)
{
    penlink_config all = PENLINK_CONFIG_INIT, *c = &all;
    c->revision = p->revision;
#define TAKE(f, bit)                                                                               \
    if (p->has_##f) {                                                                              \
        c->f = p->f;                                                                               \
        c->present |= bit;                                                                         \
    }
    TAKE(depth_min_um, PENLINK_CFG_DEPTH_MIN_UM)
    TAKE(depth_max_um, PENLINK_CFG_DEPTH_MAX_UM)
    TAKE(depth_default_um, PENLINK_CFG_DEPTH_DEFAULT_UM)
    TAKE(speed_min_sps, PENLINK_CFG_SPEED_MIN_SPS)
    TAKE(speed_max_sps, PENLINK_CFG_SPEED_MAX_SPS)
    TAKE(max_treatment_s, PENLINK_CFG_MAX_TREATMENT_S)
    TAKE(max_cartridge_uses, PENLINK_CFG_MAX_CARTRIDGE_USES)
    TAKE(auto_off_s, PENLINK_CFG_AUTO_OFF_S)
#undef TAKE
    if (p->device_label) {
        dev_copy_str(c->device_label, sizeof c->device_label, p->device_label);
        c->present |= PENLINK_CFG_DEVICE_LABEL;
    }
    if (p->clinic_id) {
        dev_copy_str(c->clinic_id, sizeof c->clinic_id, p->clinic_id);
        c->present |= PENLINK_CFG_CLINIC_ID;
    }
    pl_sized_copy(out, &all, sizeof all);
}

int penlink_dev_config_get(penlink_dev *d, penlink_config *out)
{
    if (!d || !out || out->size < PL_CONFIG_SIZE_V1)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(d->ctx);
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__GetConfig gc = PENLINK__V1__GET_CONFIG__INIT;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_CONFIG;
    env.get_config = &gc;
    pl_envelope *r = NULL;
    int st = request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_CONFIG, &r);
    if (st != PENLINK_OK)
        return st;
    config_from_pb(out, r->config);
    pl_envelope_free(NULL, r);
    return PENLINK_OK;
}

int penlink_dev_config_set(penlink_dev *d, uint32_t expected_revision, const penlink_config *change,
                           penlink_config *result)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(d->ctx);
    return penlink_dev_config_set_signed(d, expected_revision, NULL, change, result);
}

/* A fresh nonce from the pen, for one signed SetConfig. */
static int get_nonce(penlink_dev *d, uint8_t nonce[PL_NONCE_BYTES])
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__GetNonce g = PENLINK__V1__GET_NONCE__INIT;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_NONCE;
    env.get_nonce = &g;
    pl_envelope *r = NULL;
    int st = request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_NONCE, &r);
    if (st != PENLINK_OK)
        return st;
    if (!r->nonce->has_nonce || r->nonce->nonce.len != PL_NONCE_BYTES)
        st = penlink_fail(d->ctx, PENLINK_ERR_PROTOCOL, "the pen's nonce is not %u bytes",
                          PL_NONCE_BYTES);
    else
        memcpy(nonce, r->nonce->nonce.data, PL_NONCE_BYTES);
    pl_envelope_free(NULL, r);
    return st;
}

int penlink_dev_config_set_signed(penlink_dev *d, uint32_t expected_revision,
                                  const penlink_key *key, const penlink_config *change,
                                  penlink_config *result)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(d->ctx);
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__SetConfig sc = PENLINK__V1__SET_CONFIG__INIT;
    Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
    if (!change || change->size < PL_CONFIG_SIZE_V1)
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG, "no configuration change given");
    if (result && result->size < PL_CONFIG_SIZE_V1)
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                            "the configuration's result has no size (PENLINK_CONFIG_INIT)");
    if (!PL_SIZED_OK(key, PL_KEY_SIZE_V1))
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                            "the signing key has no size (PENLINK_KEY_INIT)");
#define GIVE(f, bit)                                                                               \
    if (change->present & (bit)) {                                                                 \
        c.has_##f = 1;                                                                             \
        c.f = change->f;                                                                           \
    }
    GIVE(depth_min_um, PENLINK_CFG_DEPTH_MIN_UM)
    GIVE(depth_max_um, PENLINK_CFG_DEPTH_MAX_UM)
    GIVE(depth_default_um, PENLINK_CFG_DEPTH_DEFAULT_UM)
    GIVE(speed_min_sps, PENLINK_CFG_SPEED_MIN_SPS)
    GIVE(speed_max_sps, PENLINK_CFG_SPEED_MAX_SPS)
    GIVE(max_treatment_s, PENLINK_CFG_MAX_TREATMENT_S)
    GIVE(max_cartridge_uses, PENLINK_CFG_MAX_CARTRIDGE_USES)
    GIVE(auto_off_s, PENLINK_CFG_AUTO_OFF_S)
#undef GIVE
    char label[PENLINK_CONFIG_TEXT_SIZE], clinic[PENLINK_CONFIG_TEXT_SIZE];
    if (change->present & PENLINK_CFG_DEVICE_LABEL) {
        dev_copy_str(label, sizeof label, change->device_label);
        c.device_label = label;
    }
    if (change->present & PENLINK_CFG_CLINIC_ID) {
        dev_copy_str(clinic, sizeof clinic, change->clinic_id);
        c.clinic_id = clinic;
    }
    sc.has_expected_revision = 1;
    sc.expected_revision = expected_revision;
    sc.config = &c;
    uint8_t nonce[PL_NONCE_BYTES], sig[PL_SIG_BYTES], pk[PL_KEY_BYTES];
    if (key) {
        uint8_t msg[PL_AUTH_CONFIG_MAX];
        int st = get_nonce(d, nonce);
        if (st != PENLINK_OK)
            return st;
        size_t n = pl_auth_config_bytes(msg, sizeof msg, d->serial, expected_revision, nonce, &c);
        if (n == 0 || penlink_sign(key, msg, n, sig) != 0)
            return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                                "the configuration could not be signed (serial or text too "
                                "long)");
        memcpy(pk, key->public_key, sizeof pk);
        sc.has_signature = sc.has_key = sc.has_nonce = 1;
        sc.signature.data = sig;
        sc.signature.len = sizeof sig;
        sc.key.data = pk;
        sc.key.len = sizeof pk;
        sc.nonce.data = nonce;
        sc.nonce.len = sizeof nonce;
    }
    env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CONFIG;
    env.set_config = &sc;
    pl_envelope *r = NULL;
    /* not retried blindly: compare-and-set makes a retry after a lost reply a conflict */
    int st = request(d, &env, 0, PENLINK__V1__ENVELOPE__BODY_SET_CONFIG_REPLY, &r);
    if (st == PENLINK_ERR_TIMEOUT) {
        penlink_config now = PENLINK_CONFIG_INIT;
        char why[sizeof d->ctx->errmsg];
        dev_copy_str(why, sizeof why, d->ctx->errmsg);
        if (penlink_dev_config_get(d, &now) == PENLINK_OK &&
            now.revision == expected_revision + 1) {
            if (result)
                pl_sized_copy(result, &now, sizeof now);
            return PENLINK_OK; /* it was applied; only the reply was lost */
        }
        return penlink_fail(d->ctx, PENLINK_ERR_TIMEOUT, "%s; the configuration may be unchanged",
                            why);
    }
    if (st != PENLINK_OK)
        return st;
    if (result) {
        if (r->set_config_reply->config) {
            config_from_pb(result, r->set_config_reply->config);
        } else {
            penlink_config none = PENLINK_CONFIG_INIT;
            pl_sized_copy(result, &none, sizeof none);
        }
        result->revision = r->set_config_reply->revision;
    }
    pl_envelope_free(NULL, r);
    return PENLINK_OK;
}

int penlink_dev_clock_set(penlink_dev *d, int64_t time_ms, int64_t *previous_ms)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(d->ctx);
    return penlink_dev_clock_set_signed(d, time_ms, NULL, previous_ms);
}

int penlink_dev_clock_set_signed(penlink_dev *d, int64_t time_ms, const penlink_key *key,
                                 int64_t *previous_ms)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(d->ctx);
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__SetClock sc = PENLINK__V1__SET_CLOCK__INIT;
    uint8_t nonce[PL_NONCE_BYTES], sig[PL_SIG_BYTES], pk[PL_KEY_BYTES];
    if (!PL_SIZED_OK(key, PL_KEY_SIZE_V1))
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                            "the signing key has no size (PENLINK_KEY_INIT)");
    sc.has_time_ms = 1;
    sc.time_ms = time_ms;
    if (key) {
        uint8_t msg[PL_AUTH_CLOCK_MAX];
        int st = dev_supports(d, PENLINK__V1__ENVELOPE__BODY_SET_CLOCK);
        if (st == PENLINK_OK)
            st = get_nonce(d, nonce);
        if (st != PENLINK_OK)
            return st;
        size_t n = pl_auth_clock_bytes(msg, d->serial, nonce, time_ms);
        if (n == 0 || penlink_sign(key, msg, n, sig) != 0)
            return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                                "the clock setting could not be signed (serial too long)");
        memcpy(pk, key->public_key, sizeof pk);
        sc.has_signature = sc.has_key = sc.has_nonce = 1;
        sc.signature.data = sig;
        sc.signature.len = sizeof sig;
        sc.key.data = pk;
        sc.key.len = sizeof pk;
        sc.nonce.data = nonce;
        sc.nonce.len = sizeof nonce;
    }
    env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CLOCK;
    env.set_clock = &sc;
    pl_envelope *r = NULL;
    int st = request(d, &env, 0, PENLINK__V1__ENVELOPE__BODY_SET_CLOCK_REPLY, &r);
    if (st != PENLINK_OK)
        return st;
    if (previous_ms)
        *previous_ms = r->set_clock_reply->previous_time_ms;
    pl_envelope_free(NULL, r);
    return PENLINK_OK;
}

int penlink_dev_identify(penlink_dev *d, uint32_t seconds, uint32_t *granted)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(d->ctx);
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Identify q = PENLINK__V1__IDENTIFY__INIT;
    q.has_seconds = 1;
    q.seconds = seconds;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_IDENTIFY;
    env.identify = &q;
    pl_envelope *r = NULL;
    /* signalling again is harmless, so retrying is safe */
    int st = request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_IDENTIFY_REPLY, &r);
    if (st != PENLINK_OK)
        return st;
    if (granted)
        *granted = r->identify_reply->has_seconds ? r->identify_reply->seconds : seconds;
    pl_envelope_free(NULL, r);
    return PENLINK_OK;
}

int penlink_dev_ack(penlink_dev *d, uint64_t through_seq, uint64_t *acked_seq)
{
    if (!d)
        return PENLINK_ERR_INVALID_ARG;
    penlink_enter(d->ctx);
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__AckLog a = PENLINK__V1__ACK_LOG__INIT;
    a.has_through_seq = 1;
    a.through_seq = through_seq;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_ACK_LOG;
    env.ack_log = &a;
    pl_envelope *r = NULL;
    d->ack_sent = 0;
    if (acked_seq)
        *acked_seq = 0;
    if (!d->info_read) { /* the pen's earlier acknowledgement is part of the check */
        penlink_info info = PENLINK_INFO_INIT;
        int st = penlink_dev_info(d, &info);
        if (st != PENLINK_OK)
            return st;
    }
    if (through_seq >= DEV_SEQ_LIMIT - 1)
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                            "seq %llu is beyond the protocol's range",
                            (unsigned long long)through_seq);
    /* acknowledging again is harmless, so retrying is safe */
    int st = request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_ACK_LOG_REPLY, &r);
    /* the pen's INVALID_ARGUMENT: the seq is at or past its log's end, the
     * caller's mistake (records it cannot have pulled), not a config value */
    if (st == PENLINK_ERR_INVALID_CONFIG)
        return penlink_fail(d->ctx, PENLINK_ERR_INVALID_ARG,
                            "seq %llu is beyond the end of the pen's log (%s): nothing was "
                            "acknowledged; acknowledge through a pull's next_seq - 1",
                            (unsigned long long)through_seq, d->err.message);
    if (st != PENLINK_OK)
        return st;
    int has = r->ack_log_reply->has_acked_seq;
    uint64_t got = r->ack_log_reply->acked_seq;
    pl_envelope_free(NULL, r);
    /* every seq through through_seq, and whatever the pen had acknowledged before */
    uint64_t want = through_seq + 1 > d->info_acked ? through_seq + 1 : d->info_acked;
    if (acked_seq)
        *acked_seq = got;
    if (has && got == want) {
        d->info_acked = got;
        return PENLINK_OK;
    }
    if (has && got > want)
        return penlink_fail(d->ctx, PENLINK_ERR_INTEGRITY,
                            "the pen says every record below seq %llu is acknowledged, but penlink "
                            "acknowledged only through %llu: it may erase records no archive "
                            "holds; the alarm is recorded",
                            (unsigned long long)got, (unsigned long long)through_seq);
    return penlink_fail(d->ctx, PENLINK_ERR_DEVICE,
                        "the pen did not take the acknowledgement through seq %llu (it answered "
                        "%s%llu): it keeps those records, nothing is lost; pull again later",
                        (unsigned long long)through_seq, has ? "acknowledged below " : "no seq, ",
                        (unsigned long long)got);
}
