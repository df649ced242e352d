/*
 * The protocol handler: the session rules (Hello, versions, NOT_READY, a new
 * Hello dropping a pull), every reply echoing request_id, the frame limit of
 * the host, SetClock and GetInfo, Identify, the signed SetClock of a pen
 * with config keys (unsigned, replayed and wrongly signed ones refused and
 * logged), every class of malformed frame and message (each answered, then
 * resynchronised), input split at every byte, and random bytes through the
 * same entry point as the libFuzzer target.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <zlib.h>

#include "fwtest.h"
#include "identity.h"
#include "pl/auth.h"

int pen_fuzz_one(const uint8_t *data, size_t len);

static void boot(rig *r)
{
    rig_init(r, 1024, 64, 32);
    assert_int_equal(rig_boot(r), PEN_OK);
    for (int i = 0; i < 120; i++) {
        assert_int_equal(rig_event(r), PEN_OK);
        rig_settle(r);
    }
}

static size_t frame_get_info(uint32_t rid, uint8_t *buf, size_t cap)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__GetInfo g = PENLINK__V1__GET_INFO__INIT;
    env.has_request_id = 1;
    env.request_id = rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_INFO;
    env.get_info = &g;
    return rig_frame(&env, buf, cap);
}

/* Feeds raw bytes and returns the replies. */
static size_t feed(rig *r, const uint8_t *b, size_t n, pl_envelope ***out)
{
    pen_usb_rx(r->p, b, n);
    rig_settle(r);
    return rig_take(r, out);
}

static pl_envelope *hello_major(rig *r, uint32_t major, bool has_major)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__Hello h = PENLINK__V1__HELLO__INIT;
    h.has_protocol_major = has_major;
    h.protocol_major = major;
    h.has_protocol_minor = 1;
    h.protocol_minor = 3;
    env.has_request_id = 1;
    env.request_id = 5;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    size_t n = rig_call(r, &env, &v);
    assert_int_equal(n, 1);
    pl_envelope *e = v[0];
    free(v);
    return e;
}

static void test_session_rules(void **state)
{
    rig r;
    uint8_t buf[256];
    pl_envelope **v;
    (void)state;
    boot(&r);
    /* before Hello */
    size_t n = feed(&r, buf, frame_get_info(9, buf, sizeof buf), &v);
    assert_int_equal(n, 1);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_NOT_READY);
    assert_int_equal(v[0]->request_id, 9);
    rig_replies_free(v, n);
    /* another major version, both named */
    pl_envelope *e = hello_major(&r, 2, true);
    assert_int_equal(rig_error_code(e), PENLINK__V1__ERROR_CODE__ERROR_VERSION_MISMATCH);
    assert_non_null(strstr(e->error->message, "1.1"));
    assert_non_null(strstr(e->error->message, "2.3"));
    assert_int_equal(e->request_id, 5);
    pl_envelope_free(NULL, e);
    e = hello_major(&r, 0, false);
    assert_int_equal(rig_error_code(e), PENLINK__V1__ERROR_CODE__ERROR_VERSION_MISMATCH);
    pl_envelope_free(NULL, e);
    n = feed(&r, buf, frame_get_info(10, buf, sizeof buf), &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_NOT_READY);
    rig_replies_free(v, n);
    /* a newer minor version is fine */
    e = hello_major(&r, 1, true);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY);
    assert_int_equal(e->hello_reply->protocol_major, 1);
    assert_int_equal(e->hello_reply->protocol_minor, 1);
    assert_int_equal(e->hello_reply->features, 7 | PENLINK__V1__FEATURE__FEATURE_IDENTIFY);
    assert_int_equal(e->hello_reply->max_frame_payload, PEN_RX_MAX_PAYLOAD);
    assert_string_equal(e->hello_reply->serial, "PLTEST01");
    pl_envelope_free(NULL, e);
    n = feed(&r, buf, frame_get_info(11, buf, sizeof buf), &v);
    assert_int_equal(v[0]->body_case, PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO);
    Penlink__V1__DeviceInfo *d = v[0]->device_info;
    assert_string_equal(d->serial, "PLTEST01");
    assert_non_null(d->model);
    assert_non_null(d->firmware_version);
    assert_non_null(d->hardware_revision);
    assert_true(d->has_log_next_seq && d->log_next_seq == r.gt_n);
    assert_true(d->has_log_acked_seq && d->has_log_first_seq && d->has_uptime_ms);
    assert_true(d->log_capacity_bytes > d->log_used_bytes && d->log_used_bytes > 0);
    assert_true(d->device_time_ms == r.clock_ms);
    assert_int_equal(d->config_revision, 1);
    assert_non_null(d->limits);
    assert_int_equal(d->limits->depth_max_um, 3000);
    assert_int_equal(d->limits->depth_step_um, 100);
    assert_int_equal(d->limits->max_text_len, 32);
    rig_replies_free(v, n);
    /* the pen speaking another major version (penlink-sim --protocol-major) */
    rig_free(&r);
    rig_init(&r, 1024, 64, 32);
    r.opts.protocol_major = 2;
    assert_int_equal(rig_boot(&r), PEN_OK);
    e = hello_major(&r, 1, true);
    assert_int_equal(rig_error_code(e), PENLINK__V1__ERROR_CODE__ERROR_VERSION_MISMATCH);
    assert_non_null(strstr(e->error->message, "2.1"));
    pl_envelope_free(NULL, e);
    rig_free(&r);
}

static void test_new_hello_drops_pull(void **state)
{
    rig r;
    uint8_t buf[512];
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__PullLog q = PENLINK__V1__PULL_LOG__INIT;
    (void)state;
    boot(&r);
    pl_envelope_free(NULL, rig_hello(&r));
    q.has_from_seq = 1;
    env.has_request_id = 1;
    env.request_id = 40;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
    env.pull_log = &q;
    pen_usb_rx(r.p, buf, rig_frame(&env, buf, sizeof buf));
    pen_poll(r.p); /* one chunk out */
    size_t n = rig_take(&r, &v);
    assert_int_equal(n, 1);
    assert_int_equal(v[0]->body_case, PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK);
    rig_replies_free(v, n);
    pl_envelope *e = rig_hello(&r);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY);
    pl_envelope_free(NULL, e);
    assert_false(r.p->pull.active);
    /* a request in the middle of a pull is answered between chunks */
    pen_usb_rx(r.p, buf, rig_frame(&env, buf, sizeof buf));
    pen_poll(r.p);
    pen_usb_rx(r.p, buf, frame_get_info(41, buf, sizeof buf));
    rig_settle(&r);
    n = rig_take(&r, &v);
    bool info = false, end = false;
    for (size_t i = 0; i < n; i++) {
        info |=
            v[i]->request_id == 41 && v[i]->body_case == PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO;
        end |= v[i]->request_id == 40 && v[i]->body_case == PENLINK__V1__ENVELOPE__BODY_LOG_END;
    }
    assert_true(info && end);
    rig_replies_free(v, n);
    /* a bus reset ends the session */
    pen_usb_reset(r.p);
    n = feed(&r, buf, frame_get_info(42, buf, sizeof buf), &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_NOT_READY);
    rig_replies_free(v, n);
    rig_free(&r);
}

static void test_unsupported_and_malformed_message(void **state)
{
    rig r;
    uint8_t buf[512], payload[64];
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__DeviceInfo d = PENLINK__V1__DEVICE_INFO__INIT;
    (void)state;
    boot(&r);
    pl_envelope_free(NULL, rig_hello(&r));
    /* a reply sent as a request */
    env.has_request_id = 1;
    env.request_id = 3;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO;
    env.device_info = &d;
    size_t n = rig_call(&r, &env, &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED);
    assert_int_equal(v[0]->request_id, 3);
    rig_replies_free(v, n);
    /* no body */
    env.body_case = PENLINK__V1__ENVELOPE__BODY__NOT_SET;
    n = rig_call(&r, &env, &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED);
    rig_replies_free(v, n);
    /* a newer host's request: request_id 4, field 40 (empty message) */
    const uint8_t newer[] = { 0x08, 0x04, 0xC2, 0x02, 0x00 };
    long fl = pl_frame_encode(buf, sizeof buf, newer, sizeof newer);
    n = feed(&r, buf, (size_t)fl, &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED);
    assert_int_equal(v[0]->request_id, 4);
    assert_non_null(strstr(v[0]->error->message, "40"));
    rig_replies_free(v, n);
    /* not protobuf: a truncated length-delimited field */
    memcpy(payload, "\x0a\x7f\x01\x02", 4);
    fl = pl_frame_encode(buf, sizeof buf, payload, 4);
    n = feed(&r, buf, (size_t)fl, &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_MESSAGE);
    assert_int_equal(v[0]->request_id, 0);
    rig_replies_free(v, n);
    /* an empty payload is an empty Envelope: no body */
    fl = pl_frame_encode(buf, sizeof buf, NULL, 0);
    n = feed(&r, buf, (size_t)fl, &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED);
    rig_replies_free(v, n);
    /* many unknown fields: more than the pen's arena holds, still an answer */
    uint8_t big[2000];
    for (size_t i = 0; i < sizeof big; i += 2) {
        big[i] = 0xF8; /* field 31, varint */
        big[i + 1] = 0x01;
    }
    uint8_t *fb = malloc(sizeof big + 16);
    fl = pl_frame_encode(fb, sizeof big + 16, big, 2000);
    n = feed(&r, fb, (size_t)fl, &v);
    free(fb);
    assert_int_equal(n, 1);
    assert_true(rig_error_code(v[0]) == PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_MESSAGE ||
                rig_error_code(v[0]) == PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED);
    rig_replies_free(v, n);
    rig_free(&r);
}

/* Each class of damaged frame gets one Error (request_id 0), and the valid
 * frame right behind it is still answered. */
static void test_malformed_frames(void **state)
{
    rig r;
    uint8_t good[256], bad[4096];
    pl_envelope **v;
    (void)state;
    boot(&r);
    pl_envelope_free(NULL, rig_hello(&r));
    size_t gl = frame_get_info(77, good, sizeof good);
    struct {
        const char *name;
        int code;
    } cls[] = {
        { "garbage", PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_FRAME },
        { "version", PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_FRAME },
        { "header check", PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_FRAME },
        { "crc", PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_FRAME },
        { "too large", PENLINK__V1__ERROR_CODE__ERROR_FRAME_TOO_LARGE },
        { "truncated then new frame", PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_FRAME },
    };
    for (size_t c = 0; c < sizeof cls / sizeof cls[0]; c++) {
        size_t bl;
        memcpy(bad, good, gl);
        bl = gl;
        switch (c) {
        case 0: memcpy(bad, "hello pen, are you there?", 25), bl = 25; break;
        case 1: bad[4] = 2; break;
        case 2: bad[14] ^= 0x55; break;
        case 3: bad[gl - 1] ^= 1; break;
        case 4: {
            uint8_t *payload = calloc(1, PEN_RX_MAX_PAYLOAD + 1);
            long n = pl_frame_encode(bad, sizeof bad, payload, PEN_RX_MAX_PAYLOAD + 1);
            free(payload);
            bl = (size_t)n;
            break;
        }
        default: bl = gl - 3; break; /* the frame stops; the next one starts */
        }
        memcpy(bad + bl, good, gl);
        size_t n = feed(&r, bad, bl + gl, &v);
        int errors = 0;
        bool answered = false;
        for (size_t i = 0; i < n; i++) {
            if (v[i]->body_case == PENLINK__V1__ENVELOPE__BODY_ERROR) {
                errors++;
                assert_int_equal(v[i]->request_id, 0);
                if (rig_error_code(v[i]) != cls[c].code)
                    fail_msg("%s: code %d", cls[c].name, rig_error_code(v[i]));
            } else {
                answered |= v[i]->request_id == 77;
            }
        }
        if (errors < 1 || !answered)
            fail_msg("%s: %d errors, answered %d", cls[c].name, errors, answered);
        rig_replies_free(v, n);
    }
    rig_free(&r);
}

/* A request split at every possible byte boundary gets the same answer. */
static void test_any_split(void **state)
{
    rig r;
    uint8_t buf[256];
    pl_envelope **v;
    (void)state;
    boot(&r);
    pl_envelope_free(NULL, rig_hello(&r));
    size_t len = frame_get_info(12, buf, sizeof buf);
    for (size_t cut = 0; cut <= len; cut++) {
        pen_usb_rx(r.p, buf, cut);
        assert_int_equal(r.tx_len, cut == len ? r.tx_len : 0);
        pen_usb_rx(r.p, buf + cut, len - cut);
        size_t n = rig_take(&r, &v);
        assert_int_equal(n, 1);
        assert_int_equal(v[0]->body_case, PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO);
        rig_replies_free(v, n);
    }
    for (size_t i = 0; i < len; i++) /* byte by byte */
        pen_usb_rx(r.p, buf + i, 1);
    size_t n = rig_take(&r, &v);
    assert_int_equal(n, 1);
    rig_replies_free(v, n);
    rig_free(&r);
}

static void test_set_clock(void **state)
{
    rig r;
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__SetClock s = PENLINK__V1__SET_CLOCK__INIT;
    (void)state;
    boot(&r);
    pl_envelope_free(NULL, rig_hello(&r));
    int64_t before = r.clock_ms;
    s.has_time_ms = 1;
    s.time_ms = before + 90000;
    env.has_request_id = 1;
    env.request_id = 8;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CLOCK;
    env.set_clock = &s;
    size_t n = rig_call(&r, &env, &v);
    assert_int_equal(v[0]->body_case, PENLINK__V1__ENVELOPE__BODY_SET_CLOCK_REPLY);
    assert_true(v[0]->set_clock_reply->previous_time_ms == before);
    assert_true(v[0]->set_clock_reply->time_ms == before + 90000);
    rig_replies_free(v, n);
    assert_int_equal(r.gt[r.gt_n - 1].kind, PL_REC_CLOCK_SET);
    assert_true(r.gt[r.gt_n - 1].clock_delta_ms == 90000);
    assert_true(r.gt[r.gt_n - 1].time_ms == before + 90000);
    s.time_ms = -1;
    n = rig_call(&r, &env, &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT);
    assert_string_equal(v[0]->error->field, "time_ms");
    rig_replies_free(v, n);
    s.has_time_ms = 0;
    n = rig_call(&r, &env, &v);
    assert_int_equal(rig_error_code(v[0]), PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT);
    rig_replies_free(v, n);
    rig_free(&r);
}

/* Sends one request built by the caller; returns its one reply. */
static pl_envelope *call1(rig *r, pl_envelope *env)
{
    pl_envelope **v;
    env->has_request_id = 1;
    env->request_id = ++r->rid;
    size_t n = rig_call(r, env, &v);
    assert_int_equal(n, 1);
    pl_envelope *e = v[0];
    free(v);
    return e;
}

static pl_envelope *identify(rig *r, bool has, uint32_t seconds)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Identify q = PENLINK__V1__IDENTIFY__INIT;
    q.has_seconds = has;
    q.seconds = seconds;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_IDENTIFY;
    env.identify = &q;
    return call1(r, &env);
}

/* Identify: announced when the HAL can signal; the default, the maximum, stop. */
static void test_identify(void **state)
{
    rig r;
    (void)state;
    boot(&r);
    pl_envelope *e = rig_hello(&r);
    assert_true(e->hello_reply->features & PENLINK__V1__FEATURE__FEATURE_IDENTIFY);
    pl_envelope_free(NULL, e);
    uint64_t records = r.gt_n;
    struct {
        bool has;
        uint32_t asked, granted;
    } cases[] = { { false, 0, PEN_IDENTIFY_DEFAULT_S },
                  { true, 5, 5 },
                  { true, 3600, PEN_IDENTIFY_MAX_S },
                  { true, 0, 0 } };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e = identify(&r, cases[i].has, cases[i].asked);
        assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_IDENTIFY_REPLY);
        assert_int_equal(e->request_id, r.rid);
        assert_int_equal(e->identify_reply->seconds, cases[i].granted);
        assert_int_equal(r.identify_seconds, cases[i].granted);
        assert_int_equal(r.identify_calls, i + 1);
        pl_envelope_free(NULL, e);
    }
    assert_int_equal(r.gt_n, records); /* nothing logged */
    rig_free(&r);

    /* a pen that cannot signal does not announce it, and refuses it */
    boot(&r);
    r.hal.identify = NULL;
    e = rig_hello(&r);
    assert_false(e->hello_reply->features & PENLINK__V1__FEATURE__FEATURE_IDENTIFY);
    pl_envelope_free(NULL, e);
    e = identify(&r, true, 5);
    assert_int_equal(rig_error_code(e), PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED);
    pl_envelope_free(NULL, e);
    rig_free(&r);
}

/* ---- a pen with an identity and a config key: signed SetClock ---------- */

static uint8_t dev_sk[64], cfg_sk[64], cfg_pk[1][32], other_sk[64], other_pk[32];

static int s_key(void *ctx, uint8_t pk[32])
{
    (void)ctx;
    memcpy(pk, dev_sk + 32, 32);
    return 0;
}

static int s_sign(void *ctx, const uint8_t *msg, size_t len, uint8_t sig[64])
{
    (void)ctx;
    return crypto_sign_detached(sig, NULL, msg, len, dev_sk);
}

static int s_random(void *ctx, uint8_t *buf, size_t len)
{
    (void)ctx;
    randombytes_buf(buf, len);
    return 0;
}

static void boot_signing(rig *r)
{
    uint8_t seed[32];
    assert_true(sodium_init() >= 0);
    memset(seed, 7, sizeof seed);
    crypto_sign_seed_keypair(dev_sk + 32, dev_sk, seed);
    memset(seed, 8, sizeof seed);
    crypto_sign_seed_keypair(cfg_pk[0], cfg_sk, seed);
    memset(seed, 9, sizeof seed);
    crypto_sign_seed_keypair(other_pk, other_sk, seed);
    rig_init(r, 1024, 64, 32);
    r->hal.device_key = s_key;
    r->hal.sign = s_sign;
    r->hal.verify = sim_crypto_verify;
    r->hal.sha256 = sim_crypto_sha256;
    r->hal.random = s_random;
    r->hal.config_keys = (const uint8_t(*)[32])cfg_pk;
    r->hal.config_key_count = 1;
    assert_int_equal(rig_boot(r), PEN_OK);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(rig_event(r), PEN_OK);
        rig_settle(r);
    }
}

static void get_nonce(rig *r, uint8_t nonce[32])
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__GetNonce g = PENLINK__V1__GET_NONCE__INIT;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_NONCE;
    env.get_nonce = &g;
    pl_envelope *e = call1(r, &env);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_NONCE);
    assert_int_equal(e->nonce->nonce.len, 32);
    memcpy(nonce, e->nonce->nonce.data, 32);
    pl_envelope_free(NULL, e);
}

/* A SetClock to @p time_ms; signed (over @p signed_ms, by @p sk, naming @p pk,
 * with @p nonce) when @p sk is given. Returns the reply. */
static pl_envelope *set_clock(rig *r, int64_t time_ms, const uint8_t *sk, const uint8_t *pk,
                              const uint8_t *nonce, int64_t signed_ms)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__SetClock c = PENLINK__V1__SET_CLOCK__INIT;
    uint8_t msg[PL_AUTH_CLOCK_MAX], sig[64], key[32], n[32];
    c.has_time_ms = 1;
    c.time_ms = time_ms;
    if (sk) {
        size_t len = pl_auth_clock_bytes(msg, r->opts.serial, nonce, signed_ms);
        assert_true(len > 0);
        crypto_sign_detached(sig, NULL, msg, len, sk);
        memcpy(key, pk, 32);
        memcpy(n, nonce, 32);
        c.has_signature = c.has_key = c.has_nonce = 1;
        c.signature.data = sig;
        c.signature.len = 64;
        c.key.data = key;
        c.key.len = 32;
        c.nonce.data = n;
        c.nonce.len = 32;
    }
    env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CLOCK;
    env.set_clock = &c;
    return call1(r, &env);
}

/* Refused with @p code, a security_event (code + 256) logged, the clock where it was. */
static void refused(rig *r, pl_envelope *e, uint32_t code, int64_t rtc_off)
{
    assert_int_equal(rig_error_code(e), code);
    pl_envelope_free(NULL, e);
    assert_int_equal(r->gt[r->gt_n - 1].kind, PL_REC_SECURITY_EVENT);
    assert_int_equal(r->gt[r->gt_n - 1].fault_code, code + PL_SECURITY_CLOCK);
    assert_true(r->rtc_off == rtc_off);
}

static void test_signed_clock(void **state)
{
    rig r;
    uint8_t n1[32], n2[32];
    (void)state;
    boot_signing(&r);
    pl_envelope *e = rig_hello(&r);
    assert_true(e->hello_reply->features & PENLINK__V1__FEATURE__FEATURE_SIGNED_CLOCK);
    assert_true(e->hello_reply->features & PENLINK__V1__FEATURE__FEATURE_SIGNED_CONFIG);
    pl_envelope_free(NULL, e);
    int64_t t = r.clock_ms + 90000;
    /* unsigned */
    refused(&r, set_clock(&r, t, NULL, NULL, NULL, 0), PENLINK__V1__ERROR_CODE__ERROR_AUTH_REQUIRED,
            0);
    /* signed, but no nonce was asked for */
    memset(n1, 0x11, sizeof n1);
    refused(&r, set_clock(&r, t, cfg_sk, cfg_pk[0], n1, t),
            PENLINK__V1__ERROR_CODE__ERROR_AUTH_NONCE, 0);
    /* a key the pen does not hold */
    get_nonce(&r, n1);
    refused(&r, set_clock(&r, t, other_sk, other_pk, n1, t),
            PENLINK__V1__ERROR_CODE__ERROR_AUTH_FAILED, 0);
    /* the right key over another time */
    get_nonce(&r, n1);
    refused(&r, set_clock(&r, t, cfg_sk, cfg_pk[0], n1, t + 1),
            PENLINK__V1__ERROR_CODE__ERROR_AUTH_FAILED, 0);
    /* good */
    get_nonce(&r, n2);
    e = set_clock(&r, t, cfg_sk, cfg_pk[0], n2, t);
    assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_SET_CLOCK_REPLY);
    assert_true(e->set_clock_reply->time_ms == t);
    pl_envelope_free(NULL, e);
    assert_int_equal(r.gt[r.gt_n - 1].kind, PL_REC_CLOCK_SET);
    assert_true(r.gt[r.gt_n - 1].clock_delta_ms == 90000);
    /* the same request again: a replay */
    int64_t off = r.rtc_off;
    refused(&r, set_clock(&r, t + 5000, cfg_sk, cfg_pk[0], n2, t + 5000),
            PENLINK__V1__ERROR_CODE__ERROR_AUTH_NONCE, off);
    rig_free(&r);
}

/* The pen never sends a frame larger than the host's maximum. */
static void test_host_frame_limit(void **state)
{
    rig r;
    pull_result p;
    (void)state;
    boot(&r);
    r.host_max = PL_FRAME_MIN_PAYLOAD; /* the smallest a host may announce */
    pl_envelope_free(NULL, rig_hello(&r));
    rig_pull_all(&r, 0, 0, &p);
    assert_int_equal(p.n, r.gt_n);
    pull_result_free(&p);
    assert_true(r.max_frame_seen <= PL_FRAME_HEADER_SIZE + PL_FRAME_MIN_PAYLOAD);
    rig_free(&r);
}

/* Random bytes, and mutated valid frames, through pen_fuzz_one. */
static void test_random_input(void **state)
{
    uint64_t s = 2024;
    uint8_t buf[3000];
    (void)state;
    for (int i = 0; i < 4000; i++) {
        size_t len = (size_t)(fw_rand(&s) % sizeof buf);
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)fw_rand(&s);
        if (i % 2 == 0 && len > 40) {
            /* a well-formed frame around random protobuf, sometimes damaged */
            size_t pl = len - 1 - PL_FRAME_HEADER_SIZE;
            long n =
                pl_frame_encode(buf + 1, len - 1, buf + 1 + PL_FRAME_HEADER_SIZE, (uint32_t)pl);
            assert_true(n > 0);
            if (i % 6 == 0)
                buf[1 + fw_rand(&s) % (len - 1)] ^= (uint8_t)(1u << (fw_rand(&s) % 8));
        }
        pen_fuzz_one(buf, len);
    }
    /* valid requests of every kind with random field values */
    for (int i = 0; i < 2000; i++) {
        pl_envelope env = PENLINK__V1__ENVELOPE__INIT;
        Penlink__V1__PullLog q = PENLINK__V1__PULL_LOG__INIT;
        Penlink__V1__AckLog a = PENLINK__V1__ACK_LOG__INIT;
        Penlink__V1__SetClock c = PENLINK__V1__SET_CLOCK__INIT;
        Penlink__V1__SetConfig sc = PENLINK__V1__SET_CONFIG__INIT;
        Penlink__V1__Config cfg = PENLINK__V1__CONFIG__INIT;
        env.has_request_id = 1;
        env.request_id = (uint32_t)fw_rand(&s);
        switch (i % 4) {
        case 0:
            q.has_from_seq = q.has_max_chunks = 1;
            q.from_seq = fw_rand(&s) % 3 ? fw_rand(&s) % 2000 : fw_rand(&s);
            q.max_chunks = (uint32_t)fw_rand(&s) % 40;
            env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
            env.pull_log = &q;
            break;
        case 1:
            a.has_through_seq = 1;
            a.through_seq = fw_rand(&s) % 3 ? fw_rand(&s) % 400 : fw_rand(&s);
            env.body_case = PENLINK__V1__ENVELOPE__BODY_ACK_LOG;
            env.ack_log = &a;
            break;
        case 2:
            c.has_time_ms = 1;
            c.time_ms = (int64_t)fw_rand(&s) % 5000000000000ll;
            env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CLOCK;
            env.set_clock = &c;
            break;
        default:
            sc.has_expected_revision = 1;
            sc.expected_revision = (uint32_t)(fw_rand(&s) % 4);
            cfg.has_depth_max_um = cfg.has_speed_min_sps = 1;
            cfg.depth_max_um = (uint32_t)(fw_rand(&s) % 4000);
            cfg.speed_min_sps = (uint32_t)(fw_rand(&s) % 200);
            sc.config = &cfg;
            env.body_case = PENLINK__V1__ENVELOPE__BODY_SET_CONFIG;
            env.set_config = &sc;
            break;
        }
        buf[0] = (uint8_t)(1 | (fw_rand(&s) & 2)); /* Hello first */
        size_t n = rig_frame(&env, buf + 1, sizeof buf - 1);
        pen_fuzz_one(buf, n + 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_rules),
        cmocka_unit_test(test_new_hello_drops_pull),
        cmocka_unit_test(test_unsupported_and_malformed_message),
        cmocka_unit_test(test_malformed_frames),
        cmocka_unit_test(test_any_split),
        cmocka_unit_test(test_set_clock),
        cmocka_unit_test(test_host_frame_limit),
        cmocka_unit_test(test_identify),
        cmocka_unit_test(test_signed_clock),
        cmocka_unit_test(test_random_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
