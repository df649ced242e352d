/*
 * The pen's operations over a session (device.c): what it is (DeviceInfo),
 * its configuration read and changed, signed or not, its clock set, its
 * identify blink, and the acknowledgement of the log the host has stored.
 * Each is one request and its reply through dev_request.
 */
#define _POSIX_C_SOURCE 200809L
#include <string.h>

#include "device.h"
#include "pl/auth.h"

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
    int st = dev_request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO, &r);
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
    int st = dev_request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_CONFIG, &r);
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
    int st = dev_request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_NONCE, &r);
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
    int st = dev_request(d, &env, 0, PENLINK__V1__ENVELOPE__BODY_SET_CONFIG_REPLY, &r);
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
    int st = dev_request(d, &env, 0, PENLINK__V1__ENVELOPE__BODY_SET_CLOCK_REPLY, &r);
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
    int st = dev_request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_IDENTIFY_REPLY, &r);
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
    int st = dev_request(d, &env, 1, PENLINK__V1__ENVELOPE__BODY_ACK_LOG_REPLY, &r);
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
