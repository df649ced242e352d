/*
 * The protocol handler: frames in from the bulk OUT endpoint, one Envelope
 * each, answered on the bulk IN endpoint. Every failure is an Error reply
 * with a specific code; nothing a host sends can make the pen allocate,
 * loop without consuming input, or touch memory outside its buffers.
 *
 * Session rules (docs/protocol.md): Hello first (anything else is NOT_READY),
 * a new Hello restarts the session and drops a pull in progress; replies
 * echo the request_id; the pen never sends a frame larger than the host's
 * max_frame_payload (PL_FRAME_MIN_PAYLOAD before Hello). A pull streams one
 * LogChunk per pen_poll() call, then LogEnd.
 */
#include <string.h>

#include "pen_internal.h"
#include "pen_util.h"
#include "pl/auth.h"

#define FEATURES                                                                                   \
    (PENLINK__V1__FEATURE__FEATURE_LOG_PULL | PENLINK__V1__FEATURE__FEATURE_CONFIG |               \
     PENLINK__V1__FEATURE__FEATURE_CLOCK)
/* SetClock accepts 1970-01-01 .. 2100-01-01 (ms since the epoch). */
#define TIME_MAX_MS 4102444800000ll

typedef Penlink__V1__Envelope envelope;

static void send_error(pen *p, uint32_t rid, uint32_t code, const char *msg, const char *field);

static void send_env(pen *p, envelope *env)
{
    size_t cap = PL_FRAME_HEADER_SIZE + (size_t)p->tx_max;
    if (cap > sizeof p->tx_buf)
        cap = sizeof p->tx_buf;
    long n = pl_envelope_frame(env, p->tx_buf, cap);
    if (n < 0) {
        if (env->body_case != PENLINK__V1__ENVELOPE__BODY_ERROR)
            send_error(p, env->request_id, PENLINK__V1__ERROR_CODE__ERROR_INTERNAL,
                       "reply larger than the frame limit", NULL);
        return;
    }
    p->frames_out++;
    if (p->hal->usb_send(p->hal->ctx, p->tx_buf, (size_t)n) != 0)
        p->pull.active = false; /* the host is gone: stop streaming */
}

static void env_init(envelope *env, uint32_t rid, Penlink__V1__Envelope__BodyCase body)
{
    penlink__v1__envelope__init(env);
    env->has_request_id = 1;
    env->request_id = rid;
    env->body_case = body;
}

static void send_error(pen *p, uint32_t rid, uint32_t code, const char *msg, const char *field)
{
    envelope env;
    Penlink__V1__Error e = PENLINK__V1__ERROR__INIT;
    e.has_code = 1;
    e.code = code;
    e.message = (char *)msg;
    e.field = (char *)field;
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_ERROR);
    env.error = &e;
    send_env(p, &env);
}

static void send_storage_error(pen *p, uint32_t rid, pen_status st)
{
    send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_STORAGE, pen_status_str(st), NULL);
}

/* ---- Hello ------------------------------------------------------------- */

static void on_hello(pen *p, uint32_t rid, const Penlink__V1__Hello *h)
{
    envelope env;
    Penlink__V1__HelloReply r = PENLINK__V1__HELLO_REPLY__INIT;
    uint32_t major = h->has_protocol_major ? h->protocol_major : 0;

    p->ready = false;
    p->pull.active = false;
    p->tx_max = PL_FRAME_MIN_PAYLOAD;
    if (major != p->proto_major) {
        char buf[128];
        pen_msg m;
        pen_msg_init(&m, buf, sizeof buf);
        pen_msg_str(&m, "the pen speaks protocol ");
        pen_msg_u64(&m, p->proto_major);
        pen_msg_str(&m, ".");
        pen_msg_u64(&m, PEN_PROTOCOL_MINOR);
        pen_msg_str(&m, ", the host ");
        pen_msg_u64(&m, major);
        pen_msg_str(&m, ".");
        pen_msg_u64(&m, h->has_protocol_minor ? h->protocol_minor : 0);
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_VERSION_MISMATCH, buf,
                   "hello.protocol_major");
        return;
    }
    if (h->has_max_frame_payload && h->max_frame_payload > PL_FRAME_MIN_PAYLOAD)
        p->tx_max = h->max_frame_payload > PL_FRAME_MAX_PAYLOAD ? PL_FRAME_MAX_PAYLOAD
                                                                : h->max_frame_payload;
    p->ready = true;
    r.has_protocol_major = r.has_protocol_minor = r.has_features = r.has_max_frame_payload = 1;
    r.protocol_major = p->proto_major;
    r.protocol_minor = PEN_PROTOCOL_MINOR;
    r.features = FEATURES;
    if (p->has_key)
        r.features |= PENLINK__V1__FEATURE__FEATURE_SIGNED_CHUNKS;
    if (p->hal->config_key_count)
        r.features |= PENLINK__V1__FEATURE__FEATURE_SIGNED_CONFIG;
    if (pen_config_key_count(p))
        r.features |= PENLINK__V1__FEATURE__FEATURE_SIGNED_CLOCK;
    if (p->hal->identify)
        r.features |= PENLINK__V1__FEATURE__FEATURE_IDENTIFY;
    r.max_frame_payload = PEN_RX_MAX_PAYLOAD;
    r.serial = p->serial;
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY);
    env.hello_reply = &r;
    send_env(p, &env);
}

/* ---- info and config --------------------------------------------------- */

static void on_get_info(pen *p, uint32_t rid)
{
    envelope env;
    Penlink__V1__DeviceInfo d = PENLINK__V1__DEVICE_INFO__INIT;
    Penlink__V1__ConfigLimits lim = PENLINK__V1__CONFIG_LIMITS__INIT;
    const pen_limits *l = &p->limits;
    uint64_t used = 0;

    pen_status st = pen_log_used(&p->log, &used);
    if (st != PEN_OK) {
        send_storage_error(p, rid, st);
        return;
    }
    lim.has_depth_min_um = lim.has_depth_max_um = lim.has_depth_step_um = 1;
    lim.has_speed_min_sps = lim.has_speed_max_sps = lim.has_max_treatment_s = 1;
    lim.has_max_cartridge_uses = lim.has_auto_off_min_s = lim.has_auto_off_max_s = 1;
    lim.has_max_text_len = 1;
    lim.depth_min_um = l->depth_min_um;
    lim.depth_max_um = l->depth_max_um;
    lim.depth_step_um = l->depth_step_um;
    lim.speed_min_sps = l->speed_min_sps;
    lim.speed_max_sps = l->speed_max_sps;
    lim.max_treatment_s = l->max_treatment_s;
    lim.max_cartridge_uses = l->max_cartridge_uses;
    lim.auto_off_min_s = l->auto_off_min_s;
    lim.auto_off_max_s = l->auto_off_max_s;
    lim.max_text_len = l->max_text_len;

    d.serial = p->serial;
    d.model = p->model;
    d.hardware_revision = p->hw_rev;
    d.firmware_version = p->fw_ver;
    d.has_log_first_seq = d.has_log_next_seq = d.has_log_capacity_bytes = 1;
    d.has_log_used_bytes = d.has_device_time_ms = d.has_uptime_ms = 1;
    d.has_config_revision = d.has_log_acked_seq = 1;
    d.log_first_seq = pen_log_first_seq(&p->log);
    d.log_next_seq = pen_log_next_seq(&p->log);
    d.log_acked_seq = pen_log_acked_seq(&p->log);
    d.log_capacity_bytes = pen_log_capacity(&p->log);
    d.log_used_bytes = used;
    d.device_time_ms = p->hal->rtc_get_ms(p->hal->ctx);
    d.uptime_ms = p->hal->mono_ms(p->hal->ctx) - p->boot_mono_ms;
    d.config_revision = p->cfg.cur.revision;
    d.limits = &lim;
    ProtobufCBinaryData keys[PEN_CONFIG_KEYS_MAX];
    if (p->has_key) {
        d.has_device_key = 1;
        d.device_key.data = p->device_pk;
        d.device_key.len = sizeof p->device_pk;
        d.n_config_keys = pen_config_key_count(p);
        for (size_t i = 0; i < d.n_config_keys; i++) {
            keys[i].data = (uint8_t *)p->hal->config_keys[i];
            keys[i].len = 32;
        }
        d.config_keys = keys;
    }
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO);
    env.device_info = &d;
    send_env(p, &env);
}

static void config_to_pb(const pen_config *c, Penlink__V1__Config *o)
{
    penlink__v1__config__init(o);
    o->has_revision = o->has_depth_min_um = o->has_depth_max_um = o->has_depth_default_um = 1;
    o->has_speed_min_sps = o->has_speed_max_sps = o->has_max_treatment_s = 1;
    o->has_max_cartridge_uses = o->has_auto_off_s = 1;
    o->revision = c->revision;
    o->depth_min_um = c->depth_min_um;
    o->depth_max_um = c->depth_max_um;
    o->depth_default_um = c->depth_default_um;
    o->speed_min_sps = c->speed_min_sps;
    o->speed_max_sps = c->speed_max_sps;
    o->max_treatment_s = c->max_treatment_s;
    o->max_cartridge_uses = c->max_cartridge_uses;
    o->auto_off_s = c->auto_off_s;
    o->device_label = (char *)c->device_label;
    o->clinic_id = (char *)c->clinic_id;
}

static void on_get_config(pen *p, uint32_t rid)
{
    envelope env;
    Penlink__V1__Config c;
    config_to_pb(&p->cfg.cur, &c);
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_CONFIG);
    env.config = &c;
    send_env(p, &env);
}

static void change_from_pb(const Penlink__V1__Config *c, pen_config_change *chg)
{
    memset(chg, 0, sizeof *chg);
    if (!c)
        return;
#define TAKE(has, field, bit)                                                                      \
    do {                                                                                           \
        if (c->has) {                                                                              \
            chg->set |= (bit);                                                                     \
            chg->v.field = c->field;                                                               \
        }                                                                                          \
    } while (0)
    TAKE(has_depth_min_um, depth_min_um, PEN_CFG_DEPTH_MIN);
    TAKE(has_depth_max_um, depth_max_um, PEN_CFG_DEPTH_MAX);
    TAKE(has_depth_default_um, depth_default_um, PEN_CFG_DEPTH_DEFAULT);
    TAKE(has_speed_min_sps, speed_min_sps, PEN_CFG_SPEED_MIN);
    TAKE(has_speed_max_sps, speed_max_sps, PEN_CFG_SPEED_MAX);
    TAKE(has_max_treatment_s, max_treatment_s, PEN_CFG_MAX_TREATMENT);
    TAKE(has_max_cartridge_uses, max_cartridge_uses, PEN_CFG_MAX_USES);
    TAKE(has_auto_off_s, auto_off_s, PEN_CFG_AUTO_OFF);
#undef TAKE
    if (c->device_label) {
        size_t n = strlen(c->device_label);
        chg->set |= PEN_CFG_LABEL;
        chg->label = c->device_label;
        chg->label_len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
    if (c->clinic_id) {
        size_t n = strlen(c->clinic_id);
        chg->set |= PEN_CFG_CLINIC;
        chg->clinic = c->clinic_id;
        chg->clinic_len = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    }
}

/* ---- trust ------------------------------------------------------------- */

static void on_get_nonce(pen *p, uint32_t rid)
{
    envelope env;
    Penlink__V1__Nonce n = PENLINK__V1__NONCE__INIT;
    p->nonce_valid = false;
    if (!p->has_key || p->hal->random(p->hal->ctx, p->nonce, sizeof p->nonce) != 0) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED,
                   p->has_key ? "no random" : "no identity", NULL);
        return;
    }
    p->nonce_valid = true;
    n.has_nonce = 1;
    n.nonce.data = p->nonce;
    n.nonce.len = sizeof p->nonce;
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_NONCE);
    env.nonce = &n;
    send_env(p, &env);
}

/* Equal without an early exit (the nonce and keys are not secret, but a
 * comparison that takes the same time everywhere is never wrong). */
static bool same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

/* A refused SetConfig or SetClock: the answer to the host, and a
 * SECURITY_EVENT in the log (@p event: the ErrorCode, plus PL_SECURITY_CLOCK
 * for a SetClock). */
static bool refuse(pen *p, uint32_t rid, Penlink__V1__ErrorCode code, uint32_t event,
                   const char *why, const char *field)
{
    pl_record r;
    memset(&r, 0, sizeof r);
    r.kind = PL_REC_SECURITY_EVENT;
    r.fields = pl_record_kind_fields(r.kind);
    r.fault_code = (uint32_t)code + event;
    pen_status st = pen_log_now(p, &r);
    if (st != PEN_OK) {
        send_storage_error(p, rid, st);
        return false;
    }
    send_error(p, rid, code, why, field);
    return false;
}

/* The signature fields a signed request carries (SetConfig, SetClock). */
typedef struct signed_req {
    protobuf_c_boolean has_signature, has_key, has_nonce;
    ProtobufCBinaryData signature, key, nonce;
} signed_req;

/* Checks a signed request on a pen provisioned with config keys: @p msg
 * (@p n bytes, 0 when they could not be formed) is what must be signed,
 * made with the pen's own nonce. The nonce is spent whatever the outcome.
 * On refusal the host has its answer and false is returned. */
static bool authentic(pen *p, uint32_t rid, const signed_req *s, const uint8_t *msg, size_t n,
                      uint32_t event)
{
    bool had_nonce = p->nonce_valid;
    p->nonce_valid = false;
    if (!s->has_signature && !s->has_key && !s->has_nonce)
        return refuse(p, rid, PENLINK__V1__ERROR_CODE__ERROR_AUTH_REQUIRED, event, "not signed",
                      "signature");
    if (!s->has_nonce || s->nonce.len != sizeof p->nonce || !had_nonce ||
        !same_bytes(s->nonce.data, p->nonce, sizeof p->nonce))
        return refuse(p, rid, PENLINK__V1__ERROR_CODE__ERROR_AUTH_NONCE, event, "stale nonce",
                      "nonce");
    const uint8_t *key = NULL;
    for (uint32_t i = 0; s->has_key && s->key.len == 32 && i < pen_config_key_count(p); i++)
        if (same_bytes(s->key.data, p->hal->config_keys[i], 32))
            key = p->hal->config_keys[i];
    if (!key)
        return refuse(p, rid, PENLINK__V1__ERROR_CODE__ERROR_AUTH_FAILED, event, "unknown key",
                      "key");
    if (!s->has_signature || s->signature.len != 64 || n == 0 ||
        p->hal->verify(p->hal->ctx, s->signature.data, msg, n, key) != 0)
        return refuse(p, rid, PENLINK__V1__ERROR_CODE__ERROR_AUTH_FAILED, event, "bad signature",
                      "signature");
    return true;
}

/* Checks the signature of a SetConfig on a pen provisioned with config keys. */
static bool config_authentic(pen *p, uint32_t rid, const Penlink__V1__SetConfig *s)
{
    uint8_t msg[PL_AUTH_CONFIG_MAX];
    signed_req q = { s->has_signature, s->has_key, s->has_nonce, s->signature, s->key, s->nonce };
    size_t n =
        pl_auth_config_bytes(msg, sizeof msg, p->serial, s->expected_revision, p->nonce, s->config);
    return authentic(p, rid, &q, msg, n, 0);
}

static void on_set_config(pen *p, uint32_t rid, const Penlink__V1__SetConfig *s)
{
    envelope env;
    Penlink__V1__SetConfigReply r = PENLINK__V1__SET_CONFIG_REPLY__INIT;
    Penlink__V1__Config c;
    pen_config_change chg;
    pen_config merged;
    pen_cfg_error err;

    if (!s->has_expected_revision) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT,
                   "expected_revision is required", "expected_revision");
        return;
    }
    if (pen_config_key_count(p) && !config_authentic(p, rid, s))
        return;
    change_from_pb(s->config, &chg);
    if (pen_config_check(&p->limits, &p->cfg.cur, &chg, &merged, &err) != PEN_OK) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT, err.message, err.field);
        return;
    }
    if (s->expected_revision != p->cfg.cur.revision) {
        char buf[96];
        pen_msg m;
        pen_msg_init(&m, buf, sizeof buf);
        pen_msg_str(&m, "expected revision ");
        pen_msg_u64(&m, s->expected_revision);
        pen_msg_str(&m, ", the pen's configuration is at revision ");
        pen_msg_u64(&m, p->cfg.cur.revision);
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_REVISION_CONFLICT, buf,
                   "expected_revision");
        return;
    }
    pen_status st = pen_apply_config(p, &merged);
    if (st != PEN_OK) {
        send_storage_error(p, rid, st);
        return;
    }
    config_to_pb(&p->cfg.cur, &c);
    r.has_revision = 1;
    r.revision = p->cfg.cur.revision;
    r.config = &c;
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_SET_CONFIG_REPLY);
    env.set_config_reply = &r;
    send_env(p, &env);
}

/* ---- clock ------------------------------------------------------------- */

static void on_set_clock(pen *p, uint32_t rid, const Penlink__V1__SetClock *s)
{
    envelope env;
    Penlink__V1__SetClockReply r = PENLINK__V1__SET_CLOCK_REPLY__INIT;
    pl_record rec;

    if (pen_config_key_count(p)) {
        /* a pen that takes only signed configuration takes only a signed clock: whoever
         * moves the clock moves treatments in and out of an audit's window */
        uint8_t msg[PL_AUTH_CLOCK_MAX];
        signed_req q = {
            s->has_signature, s->has_key, s->has_nonce, s->signature, s->key, s->nonce
        };
        size_t n = pl_auth_clock_bytes(msg, p->serial, p->nonce, s->time_ms);
        if (!authentic(p, rid, &q, msg, n, PL_SECURITY_CLOCK))
            return;
    }
    if (!s->has_time_ms || s->time_ms < 0 || s->time_ms > TIME_MAX_MS) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT,
                   "time_ms must be 0..4102444800000 (before 2100)", "time_ms");
        return;
    }
    int64_t old = p->hal->rtc_get_ms(p->hal->ctx);
    if (p->hal->rtc_set_ms(p->hal->ctx, s->time_ms) != 0) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_INTERNAL,
                   "the real-time clock could not be set", NULL);
        return;
    }
    memset(&rec, 0, sizeof rec);
    rec.kind = PL_REC_CLOCK_SET;
    rec.fields = pl_record_kind_fields(rec.kind);
    rec.clock_delta_ms = (int64_t)((uint64_t)s->time_ms - (uint64_t)old);
    pen_status st = pen_log_now(p, &rec);
    if (st != PEN_OK) {
        send_storage_error(p, rid, st);
        return;
    }
    r.has_previous_time_ms = r.has_time_ms = 1;
    r.previous_time_ms = old;
    r.time_ms = s->time_ms;
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_SET_CLOCK_REPLY);
    env.set_clock_reply = &r;
    send_env(p, &env);
}

/* ---- identify ---------------------------------------------------------- */

static void on_identify(pen *p, uint32_t rid, const Penlink__V1__Identify *q)
{
    envelope env;
    Penlink__V1__IdentifyReply r = PENLINK__V1__IDENTIFY_REPLY__INIT;
    uint32_t seconds = q->has_seconds ? q->seconds : PEN_IDENTIFY_DEFAULT_S;
    if (seconds > PEN_IDENTIFY_MAX_S)
        seconds = PEN_IDENTIFY_MAX_S;
    if (!p->hal->identify) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED, "this pen cannot signal",
                   NULL);
        return;
    }
    if (p->hal->identify(p->hal->ctx, seconds) != 0) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_INTERNAL, "the signal failed", NULL);
        return;
    }
    r.has_seconds = 1;
    r.seconds = seconds;
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_IDENTIFY_REPLY);
    env.identify_reply = &r;
    send_env(p, &env);
}

/* ---- log pull and ack -------------------------------------------------- */

static void seq_message(char *buf, size_t cap, const char *what, uint64_t v, const char *rel,
                        uint64_t next)
{
    pen_msg m;
    pen_msg_init(&m, buf, cap);
    pen_msg_str(&m, what);
    pen_msg_str(&m, " ");
    pen_msg_u64(&m, v);
    pen_msg_str(&m, rel);
    pen_msg_u64(&m, next);
}

static void on_pull(pen *p, uint32_t rid, const Penlink__V1__PullLog *q)
{
    uint64_t from = q->has_from_seq ? q->from_seq : 0;
    uint64_t next = pen_log_next_seq(&p->log);
    uint32_t max = q->has_max_chunks && q->max_chunks > 0 ? q->max_chunks : p->pull_max;

    p->pull.active = false;
    if (from > next) {
        char buf[96];
        seq_message(buf, sizeof buf, "from_seq", from, " is past log_next_seq ", next);
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_SEQ_NOT_AVAILABLE, buf,
                   "pull_log.from_seq");
        return;
    }
    if (max > p->pull_max)
        max = p->pull_max; /* the protocol lets a pen send fewer than asked */
    /* A window that goes on where the last one stopped keeps its place in the
     * ring; read_chunk checks the chunk there before it uses it. Any other
     * start walks the ring from its oldest sector. */
    if (from != p->pull.cursor)
        p->pull.hint.valid = false;
    p->pull.active = true;
    p->pull.request_id = rid;
    p->pull.cursor = from;
    p->pull.left = max;
    memcpy(p->pull.link, p->log.head_link, sizeof p->pull.link); /* the head if nothing is sent */
}

/* Sends the chunk in the scratch buffer; on a pen with a chain, with the
 * link before it and its own. */
static void send_chunk(pen *p, const pen_chunk_hdr *h)
{
    envelope env;
    Penlink__V1__LogChunk c = PENLINK__V1__LOG_CHUNK__INIT;
    c.has_first_seq = c.has_record_count = c.has_raw_size = c.has_data = 1;
    c.first_seq = h->first_seq;
    c.record_count = h->count;
    c.raw_size = h->raw_size;
    c.data.data = (uint8_t *)pen_log_scratch(&p->log);
    c.data.len = h->data_size;
    if (p->log.chained) {
        pen_status st = pen_log_link(&p->log, h->prev_link, h->first_seq, h->count, h->raw_size,
                                     h->data_size, p->pull.link);
        if (st != PEN_OK) {
            p->pull.active = false;
            send_storage_error(p, p->pull.request_id, st);
            return;
        }
        c.has_link = c.has_prev_link = 1;
        c.link.data = p->pull.link;
        c.link.len = 32;
        c.prev_link.data = (uint8_t *)h->prev_link;
        c.prev_link.len = 32;
    }
    env_init(&env, p->pull.request_id, PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK);
    env.log_chunk = &c;
    send_env(p, &env);
}

/* LogEnd; on a pen with a chain, with the head (the last link sent) signed. */
static void send_log_end(pen *p, uint64_t first, uint64_t next)
{
    envelope env;
    Penlink__V1__LogEnd e = PENLINK__V1__LOG_END__INIT;
    uint8_t msg[PL_AUTH_HEAD_MAX], sig[64];
    e.has_next_seq = e.has_more = e.has_first_available_seq = 1;
    e.next_seq = p->pull.cursor;
    e.more = p->pull.cursor < next;
    e.first_available_seq = first;
    p->pull.active = false;
    if (p->log.chained) {
        size_t n = pl_auth_head_bytes(msg, p->serial, e.next_seq, p->pull.link);
        if (n == 0 || p->hal->sign(p->hal->ctx, msg, n, sig) != 0) {
            send_error(p, p->pull.request_id, PENLINK__V1__ERROR_CODE__ERROR_INTERNAL,
                       "sign failed", NULL);
            return;
        }
        e.has_head_link = e.has_head_signature = 1;
        e.head_link.data = p->pull.link;
        e.head_link.len = 32;
        e.head_signature.data = sig;
        e.head_signature.len = sizeof sig;
    }
    env_init(&env, p->pull.request_id, PENLINK__V1__ENVELOPE__BODY_LOG_END);
    env.log_end = &e;
    send_env(p, &env);
}

void pen_pull_step(pen *p)
{
    uint64_t first = pen_log_first_seq(&p->log), next = pen_log_next_seq(&p->log);
    pen_chunk_hdr h;
    pen_status st;

    if (p->pull.cursor < first)
        p->pull.cursor = first; /* acknowledged or dropped: the host sees the gap */
    if (p->pull.left > 0 && p->pull.cursor < next) {
        st = pen_log_read_chunk(&p->log, p->pull.cursor, &p->pull.hint, &h);
        if (st == PEN_REFUSED) {
            /* staged records: seal them into chunks now, so that everything a host
             * receives is a stored chunk, a fixed link of the chain */
            p->pull.hint.valid = false;
            st = pen_log_compact(&p->log);
            first = pen_log_first_seq(&p->log); /* sealing may have dropped old records */
            next = pen_log_next_seq(&p->log);
            if (p->pull.cursor < first)
                p->pull.cursor = first;
            if (st == PEN_OK)
                st = pen_log_read_chunk(&p->log, p->pull.cursor, &p->pull.hint, &h);
        }
        if (st == PEN_OK) {
            p->pull.cursor = h.first_seq + h.count;
            p->pull.left--;
            send_chunk(p, &h);
            return;
        }
        if (st != PEN_REFUSED) {
            p->pull.active = false;
            send_storage_error(p, p->pull.request_id, st);
            return;
        }
    }
    send_log_end(p, first, next);
}

static void on_ack(pen *p, uint32_t rid, const Penlink__V1__AckLog *a)
{
    envelope env;
    Penlink__V1__AckLogReply r = PENLINK__V1__ACK_LOG_REPLY__INIT;
    uint64_t next = pen_log_next_seq(&p->log);

    if (!a->has_through_seq) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT,
                   "through_seq is required", "ack_log.through_seq");
        return;
    }
    if (a->through_seq >= next) {
        char buf[96];
        seq_message(buf, sizeof buf, "through_seq", a->through_seq, " must be below log_next_seq ",
                    next);
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT, buf,
                   "ack_log.through_seq");
        return;
    }
    pen_status st = pen_log_ack(&p->log, a->through_seq);
    if (st != PEN_OK) {
        send_storage_error(p, rid, st);
        return;
    }
    r.has_acked_seq = 1;
    r.acked_seq = pen_log_acked_seq(&p->log);
    env_init(&env, rid, PENLINK__V1__ENVELOPE__BODY_ACK_LOG_REPLY);
    env.ack_log_reply = &r;
    send_env(p, &env);
}

/* ---- frames ------------------------------------------------------------ */

static void unsupported(pen *p, uint32_t rid, const envelope *env)
{
    char buf[96];
    pen_msg m;
    pen_msg_init(&m, buf, sizeof buf);
    if (env->body_case == PENLINK__V1__ENVELOPE__BODY__NOT_SET) {
        pen_msg_str(&m, "no request this pen knows");
        if (env->base.n_unknown_fields > 0) {
            pen_msg_str(&m, " (envelope field ");
            pen_msg_u64(&m, env->base.unknown_fields[0].tag);
            pen_msg_str(&m, ")");
        }
    } else {
        pen_msg_str(&m, "envelope field ");
        pen_msg_u64(&m, (uint64_t)env->body_case);
        pen_msg_str(&m, " is a reply, not a request");
    }
    send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED, buf, NULL);
}

static void handle_frame(pen *p, const pl_frame *f)
{
    pl_arena_reset(&p->arena);
    p->arena_failed = false;
    envelope *env = pl_envelope_unpack(&p->alloc, f->payload, f->len);
    if (!env) {
        send_error(p, 0, PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_MESSAGE,
                   p->arena_failed ? "message too complex for the pen's memory"
                                   : "the payload is not a valid Envelope",
                   NULL);
        return;
    }
    uint32_t rid = env->has_request_id ? env->request_id : 0;
    switch (env->body_case) {
    case PENLINK__V1__ENVELOPE__BODY_HELLO: on_hello(p, rid, env->hello); return;
    case PENLINK__V1__ENVELOPE__BODY_GET_INFO:
    case PENLINK__V1__ENVELOPE__BODY_GET_CONFIG:
    case PENLINK__V1__ENVELOPE__BODY_SET_CONFIG:
    case PENLINK__V1__ENVELOPE__BODY_PULL_LOG:
    case PENLINK__V1__ENVELOPE__BODY_ACK_LOG:
    case PENLINK__V1__ENVELOPE__BODY_SET_CLOCK:
    case PENLINK__V1__ENVELOPE__BODY_GET_NONCE:
    case PENLINK__V1__ENVELOPE__BODY_IDENTIFY: break;
    default: unsupported(p, rid, env); return;
    }
    if (!p->ready) {
        send_error(p, rid, PENLINK__V1__ERROR_CODE__ERROR_NOT_READY,
                   "send Hello first: no session is open", NULL);
        return;
    }
    switch (env->body_case) {
    case PENLINK__V1__ENVELOPE__BODY_GET_INFO: on_get_info(p, rid); break;
    case PENLINK__V1__ENVELOPE__BODY_GET_CONFIG: on_get_config(p, rid); break;
    case PENLINK__V1__ENVELOPE__BODY_SET_CONFIG: on_set_config(p, rid, env->set_config); break;
    case PENLINK__V1__ENVELOPE__BODY_PULL_LOG: on_pull(p, rid, env->pull_log); break;
    case PENLINK__V1__ENVELOPE__BODY_ACK_LOG: on_ack(p, rid, env->ack_log); break;
    case PENLINK__V1__ENVELOPE__BODY_SET_CLOCK: on_set_clock(p, rid, env->set_clock); break;
    case PENLINK__V1__ENVELOPE__BODY_GET_NONCE: on_get_nonce(p, rid); break;
    case PENLINK__V1__ENVELOPE__BODY_IDENTIFY: on_identify(p, rid, env->identify); break;
    default: break;
    }
}

static void frame_error(pen *p, pl_status st)
{
    char buf[96];
    pen_msg m;
    uint32_t code = st == PL_ERR_FRAME_TOO_LARGE ? PENLINK__V1__ERROR_CODE__ERROR_FRAME_TOO_LARGE
                                                 : PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_FRAME;
    p->frame_errors++;
    pen_msg_init(&m, buf, sizeof buf);
    pen_msg_str(&m, pl_status_str(st));
    pen_msg_str(&m, " at stream offset ");
    pen_msg_u64(&m, pl_frame_decoder_error_offset(&p->rx));
    if (st == PL_ERR_FRAME_TOO_LARGE) {
        pen_msg_str(&m, "; the pen accepts ");
        pen_msg_u64(&m, PEN_RX_MAX_PAYLOAD);
        pen_msg_str(&m, " bytes");
    }
    send_error(p, 0, code, buf, NULL);
}

void pen_usb_rx(pen *p, const uint8_t *data, size_t len)
{
    while (len > 0 || pl_frame_decoder_pending(&p->rx) > 0) {
        size_t used = 0;
        pl_frame f;
        pl_status st = pl_frame_decoder_feed(&p->rx, data, len, &used, &f);
        data += used;
        len -= used;
        if (st == PL_OK) {
            p->frames_in++;
            handle_frame(p, &f);
        } else if (st == PL_NEED_MORE) {
            if (len == 0)
                break;
        } else {
            frame_error(p, st);
        }
    }
}

void pen_usb_reset(pen *p)
{
    p->ready = false;
    p->nonce_valid = false; /* a nonce lives for one session */
    p->pull.active = false;
    p->tx_max = PL_FRAME_MIN_PAYLOAD;
    pl_frame_decoder_reset(&p->rx);
}
