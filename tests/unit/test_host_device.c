/*
 * A session with a pen (host/src/device.c) over the fake transport: Hello and
 * what a pen may answer to it (bad serials, other protocol versions, silence,
 * stale, unknown, damaged and wrong replies, a send that fails), the bytes an
 * earlier client left queued, and every Error a pen may send, as statuses,
 * words and penlink_dev_error().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "device.h"
#include "fake_transport.h"
#include "pl/frame.h"

#define ALL_FEATURES                                                                               \
    (PENLINK__V1__FEATURE__FEATURE_LOG_PULL | PENLINK__V1__FEATURE__FEATURE_CONFIG |               \
     PENLINK__V1__FEATURE__FEATURE_CLOCK | PENLINK__V1__FEATURE__FEATURE_SIGNED_CONFIG |           \
     PENLINK__V1__FEATURE__FEATURE_SIGNED_CHUNKS | PENLINK__V1__FEATURE__FEATURE_IDENTIFY |        \
     PENLINK__V1__FEATURE__FEATURE_SIGNED_CLOCK)

/* How the fake pen behaves. */
typedef struct pen {
    const char *serial;
    uint32_t major, features, max_payload;
    int send_status;      /* every send fails so */
    int silent;           /* Hellos left unanswered */
    int zero_error;       /* Hellos answered by an Error about an unreadable frame (id 0) */
    int stale, unknown;   /* a reply to another id / of an unknown body, before the reply */
    int junk;             /* damaged bytes before the reply */
    int wrong_body;       /* a Config in reply to Hello */
    uint32_t hello_error; /* Hello refused with this code */
    const char *hello_error_msg;
    uint32_t error_code; /* GetConfig refused with this code */
    const char *error_field;
} pen;

typedef struct fixture {
    penlink_ctx *ctx;
    fake_wire w;
    pen p;
    int notices;
    char notice[256];
} fixture;

static void send_error(fake_wire *w, uint32_t id, uint32_t code, const char *msg, const char *field)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Error e = PENLINK__V1__ERROR__INIT;
    e.has_code = 1;
    e.code = code;
    e.message = (char *)msg;
    e.field = (char *)field;
    env.has_request_id = 1;
    env.request_id = id;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_ERROR;
    env.error = &e;
    fake_wire_reply(w, &env);
}

static void send_hello_reply(fake_wire *w, const pen *p, uint32_t id)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__HelloReply hr = PENLINK__V1__HELLO_REPLY__INIT;
    hr.has_protocol_major = hr.has_protocol_minor = hr.has_features = 1;
    hr.protocol_major = p->major;
    hr.protocol_minor = 1;
    hr.features = p->features;
    hr.has_max_frame_payload = p->max_payload != 0;
    hr.max_frame_payload = p->max_payload;
    hr.serial = (char *)p->serial;
    env.has_request_id = 1;
    env.request_id = id;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY;
    env.hello_reply = &hr;
    fake_wire_reply(w, &env);
}

static void send_config(fake_wire *w, uint32_t id)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
    c.has_revision = c.has_depth_max_um = 1;
    c.revision = 4;
    c.depth_max_um = 2500;
    env.has_request_id = 1;
    env.request_id = id;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_CONFIG;
    env.config = &c;
    fake_wire_reply(w, &env);
}

static int respond(fake_wire *w, const pl_envelope *req, void *user)
{
    pen *p = user;
    if (p->send_status)
        return p->send_status;
    uint32_t id = req->request_id;
    if (req->body_case == PENLINK__V1__ENVELOPE__BODY_HELLO) {
        if (p->silent > 0) {
            p->silent--;
            return PENLINK_OK;
        }
        if (p->zero_error > 0) {
            p->zero_error--;
            send_error(w, 0, PENLINK__V1__ERROR_CODE__ERROR_MALFORMED_FRAME, "bad crc", NULL);
            return PENLINK_OK;
        }
        if (p->stale) {
            pen other = *p;
            other.serial = "PEN-STALE";
            send_hello_reply(w, &other, id + 100);
        }
        if (p->unknown) {
            Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
            env.has_request_id = 1;
            env.request_id = id;
            fake_wire_reply(w, &env);
        }
        if (p->junk) {
            static const uint8_t junk[] = { 'P',  'L',  0x01, 0x00, 0xff, 0xff, 0xff,
                                            0x7f, 0x13, 0x37, 0x00, 0x00, 0xde, 0xad };
            fake_wire_bytes(w, junk, sizeof junk);
        }
        if (p->hello_error)
            send_error(w, id, p->hello_error, p->hello_error_msg, NULL);
        else if (p->wrong_body)
            send_config(w, id);
        else
            send_hello_reply(w, p, id);
    } else if (req->body_case == PENLINK__V1__ENVELOPE__BODY_GET_CONFIG) {
        if (p->error_code)
            send_error(w, id, p->error_code, "the pen's words", p->error_field);
        else
            send_config(w, id);
    }
    return PENLINK_OK;
}

static void on_notice(void *user, const char *text)
{
    fixture *f = user;
    f->notices++;
    snprintf(f->notice, sizeof f->notice, "%s", text);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    penlink_ctx_set_notice_cb(f->ctx, on_notice, f);
    f->p.serial = "PEN-000123";
    f->p.major = 1;
    f->p.features = ALL_FEATURES;
    f->p.max_payload = 4096;
    fake_wire_init(&f->w, respond, &f->p);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    penlink_ctx_free(f->ctx);
    free(f);
    return 0;
}

static int open_pen(fixture *f, penlink_dev **d)
{
    transport *t = fake_transport_new(f->ctx, &f->w);
    assert_non_null(t);
    *d = (penlink_dev *)1; /* cleared by the open, whatever happens */
    return dev_open_on(f->ctx, t, d);
}

static void assert_says(const penlink_ctx *ctx, const char *words)
{
    if (!strstr(penlink_ctx_errmsg(ctx), words))
        fail_msg("\"%s\" does not say \"%s\"", penlink_ctx_errmsg(ctx), words);
}

static void test_open(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    assert_string_equal(d->serial, "PEN-000123");
    assert_int_equal(d->features, ALL_FEATURES);
    assert_int_equal(d->major, 1);
    assert_int_equal(d->pen_max_payload, 4096);
    assert_int_equal(f->w.sends, 1);
    assert_int_equal(f->w.last, PENLINK__V1__ENVELOPE__BODY_HELLO);
    assert_int_equal(f->w.last_id, 1);
    penlink_dev_close(d);
    assert_int_equal(f->w.closed, 1);
}

/* What the pen says it can take is bounded on both sides. */
static void test_max_payload_bounded(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.max_payload = PL_FRAME_MAX_PAYLOAD + 1;
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    assert_int_equal(d->pen_max_payload, PL_FRAME_MAX_PAYLOAD);
    penlink_dev_close(d);
    f->p.max_payload = PL_FRAME_MIN_PAYLOAD - 1;
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    assert_int_equal(d->pen_max_payload, PL_FRAME_MIN_PAYLOAD);
    penlink_dev_close(d);
    f->p.max_payload = 0; /* not said */
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    assert_int_equal(d->pen_max_payload, PL_FRAME_MIN_PAYLOAD);
    penlink_dev_close(d);
}

/* A pen whose serial cannot tell it apart: refused, each reason said. */
static void test_bad_serials(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *serial, *why;
    } bad[] = {
        { "", "is empty" },
        { "PEN-0123456789-0123456789-0123456", "is too long" },
        { "    ", "is only spaces" },
        { "PEN\x01", "is not printable text" },
        { "PEN\x7f", "is not printable text" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        penlink_dev *d = NULL;
        f->p.serial = bad[i].serial;
        f->w.closed = 0;
        assert_int_equal(open_pen(f, &d), PENLINK_ERR_PROTOCOL);
        assert_null(d);
        assert_says(f->ctx, bad[i].why);
        assert_says(f->ctx, "fake:pen");
        assert_int_equal(f->w.closed, 1);
    }
    /* 32 bytes, spaces inside: a serial */
    penlink_dev *d = NULL;
    f->p.serial = "PEN 0123456789 0123456789 012345";
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    penlink_dev_close(d);
}

static void test_other_major_version(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.major = 2;
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_VERSION);
    assert_says(f->ctx, "the pen speaks protocol 2.1");
    assert_says(f->ctx, "host too old");
    f->p.major = 0;
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_VERSION);
    assert_says(f->ctx, "pen too old");
    assert_int_equal(f->w.closed, 2);
}

/* The pen refuses Hello for its version: which side to update. */
static void test_pen_refuses_version(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.hello_error = PENLINK__V1__ERROR_CODE__ERROR_VERSION_MISMATCH;
    f->p.hello_error_msg = "this pen speaks protocol 2.0";
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_VERSION);
    assert_says(f->ctx, "this pen speaks protocol 2.0; penlink is too old: update it");
    f->p.hello_error_msg = "this pen speaks protocol 0.9";
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_VERSION);
    assert_says(f->ctx, "update the pen's firmware, or use an older penlink");
    f->p.hello_error_msg = "no version named";
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_VERSION);
    assert_says(f->ctx, "update the pen's firmware");
}

/* Silence: Hello asked again (a notice each time), then TIMEOUT naming the tries. */
static void test_no_answer(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.silent = 100;
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_TIMEOUT);
    assert_int_equal(f->w.sends, 1 + PENLINK_DEFAULT_RETRIES);
    assert_int_equal(f->notices, PENLINK_DEFAULT_RETRIES);
    assert_non_null(strstr(f->notice, "asking again (try 3 of 3)"));
    assert_says(f->ctx, "did not answer hello within 2000 ms (3 tries)");
    assert_int_equal(f->w.closed, 1);

    penlink_ctx_set_timeout(f->ctx, 150, 0);
    f->w.sends = 0;
    f->notices = 0;
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_TIMEOUT);
    assert_int_equal(f->w.sends, 1);
    assert_int_equal(f->notices, 0);
    assert_says(f->ctx, "within 150 ms (1 try)");
}

/* An answer to the second Hello is taken, under the second's id. */
static void test_answer_after_retry(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.silent = 1;
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    assert_int_equal(f->w.sends, 2);
    assert_int_equal(f->w.last_id, 2);
    assert_int_equal(f->notices, 1);
    penlink_dev_close(d);
}

/* Replies to other ids, of unknown bodies, and damaged bytes are passed over. */
static void test_stale_unknown_and_damage_skipped(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.stale = f->p.unknown = f->p.junk = 1;
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    assert_int_equal(f->w.sends, 1);
    assert_string_equal(d->serial, "PEN-000123");
    assert_true(d->frame_errors >= 1);
    penlink_dev_close(d);
}

/* An Error about a frame the pen could not read answers nothing: ask again. */
static void test_unreadable_frame_resent(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.zero_error = 1;
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    assert_int_equal(f->w.sends, 2);
    penlink_dev_close(d);
}

static void test_wrong_reply(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.wrong_body = 1;
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_PROTOCOL);
    assert_says(f->ctx, "the pen answered hello with config instead of hello_reply");
}

static void test_send_fails(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.send_status = PENLINK_ERR_GONE;
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_GONE);
    assert_null(d);
    assert_int_equal(f->w.sends, 1);
    assert_int_equal(f->w.closed, 1);
}

/* Bytes an earlier client left queued are dropped before Hello, undecoded;
 * a transport that fails while draining fails the open before Hello. */
static void test_drain(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    send_hello_reply(&f->w, &f->p, 1); /* an old reply with the id the new Hello will use */
    static const uint8_t junk[64] = { 0xAA };
    fake_wire_bytes(&f->w, junk, sizeof junk);
    f->p.serial = "PEN-000124"; /* the reply that counts */
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    assert_string_equal(d->serial, "PEN-000124");
    assert_int_equal(d->frame_errors, 0);
    penlink_dev_close(d);

    fake_wire_bytes(&f->w, junk, sizeof junk);
    f->w.recv_status = PENLINK_ERR_GONE;
    f->w.sends = 0;
    assert_int_equal(open_pen(f, &d), PENLINK_ERR_GONE);
    assert_int_equal(f->w.sends, 0);
}

/* Every Error a pen may answer: the status, what it says, what is kept. */
static void test_pen_errors(void **state)
{
    fixture *f = *state;
    static const struct {
        uint32_t code;
        int status;
        const char *words;
    } cases[] = {
        { PENLINK__V1__ERROR_CODE__ERROR_REVISION_CONFLICT, PENLINK_ERR_CONFLICT,
          "changed meanwhile (the pen's words); read it again" },
        { PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT, PENLINK_ERR_INVALID_CONFIG,
          "the pen refused get_config field config.depth_max_um: the pen's words" },
        { PENLINK__V1__ERROR_CODE__ERROR_VERSION_MISMATCH, PENLINK_ERR_VERSION, "the pen's words" },
        { PENLINK__V1__ERROR_CODE__ERROR_BUSY, PENLINK_ERR_DEVICE, "the pen is busy" },
        { PENLINK__V1__ERROR_CODE__ERROR_SEQ_NOT_AVAILABLE, PENLINK_ERR_DEVICE,
          "does not have the records asked for" },
        { PENLINK__V1__ERROR_CODE__ERROR_STORAGE, PENLINK_ERR_DEVICE, "flash failure" },
        { PENLINK__V1__ERROR_CODE__ERROR_AUTH_REQUIRED, PENLINK_ERR_AUTH,
          "takes only signed configuration" },
        { PENLINK__V1__ERROR_CODE__ERROR_AUTH_FAILED, PENLINK_ERR_AUTH, "refused the signature" },
        { PENLINK__V1__ERROR_CODE__ERROR_AUTH_NONCE, PENLINK_ERR_AUTH, "stale or replayed" },
        { PENLINK__V1__ERROR_CODE__ERROR_UNSUPPORTED, PENLINK_ERR_DEVICE,
          "does not support get_config" },
        { 999, PENLINK_ERR_DEVICE, "the pen answered get_config with error 999: the pen's words" },
    };
    penlink_dev *d = NULL;
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    penlink_config c = PENLINK_CONFIG_INIT;
    f->p.error_field = "config.depth_max_um";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        f->p.error_code = cases[i].code;
        assert_int_equal(penlink_dev_config_get(d, &c), cases[i].status);
        assert_says(f->ctx, cases[i].words);
        const penlink_device_error *e = penlink_dev_error(d);
        assert_int_equal(e->code, cases[i].code);
        assert_string_equal(e->message, "the pen's words");
        assert_string_equal(e->field, "config.depth_max_um");
    }
    /* a success clears what the last refusal left */
    f->p.error_code = 0;
    assert_int_equal(penlink_dev_config_get(d, &c), PENLINK_OK);
    assert_int_equal(c.revision, 4);
    assert_int_equal(c.depth_max_um, 2500);
    assert_int_equal(penlink_dev_error(d)->code, 0);
    assert_string_equal(penlink_ctx_errmsg(f->ctx), "");
    penlink_dev_close(d);
}

/* A request of a feature the pen did not announce is refused here, unsent. */
static void test_feature_not_announced(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    f->p.features = PENLINK__V1__FEATURE__FEATURE_LOG_PULL;
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    int sends = f->w.sends;
    penlink_config c = PENLINK_CONFIG_INIT;
    assert_int_equal(penlink_dev_config_get(d, &c), PENLINK_ERR_DEVICE);
    assert_says(f->ctx, "does not support configuration");
    assert_says(f->ctx, "nothing was sent");
    assert_int_equal(f->w.sends, sends);
    uint32_t granted = 0;
    assert_int_equal(penlink_dev_identify(d, 3, &granted), PENLINK_ERR_DEVICE);
    assert_says(f->ctx, "does not support identify");
    assert_int_equal(f->w.sends, sends);
    penlink_dev_close(d);
}

static void test_invalid_arguments(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    penlink_config c = PENLINK_CONFIG_INIT;
    assert_int_equal(penlink_dev_open(NULL, "sim:/x", &d), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_open(f->ctx, "sim:/x", NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_open(f->ctx, "tcp:pen", &d), PENLINK_ERR_INVALID_ARG);
    assert_says(f->ctx, "'tcp:pen' is not a pen address");
    /* a scheme without the address it needs, or a scheme that is only a prefix */
    const char *no_pen[] = { "sim", "sim:", "usb:", "us", "usbx:1", "simple:/x" };
    for (size_t i = 0; i < sizeof no_pen / sizeof no_pen[0]; i++) {
        assert_int_equal(penlink_dev_open(f->ctx, no_pen[i], &d), PENLINK_ERR_INVALID_ARG);
        assert_says(f->ctx, "is not a pen address");
        assert_null(d);
    }
    assert_int_equal(penlink_dev_config_get(NULL, &c), PENLINK_ERR_INVALID_ARG);
    /* a configuration without its size is refused before anything is sent */
    assert_int_equal(open_pen(f, &d), PENLINK_OK);
    int sends = f->w.sends;
    penlink_config bare;
    memset(&bare, 0, sizeof bare);
    assert_int_equal(penlink_dev_config_get(d, &bare), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_config_set(d, 1, &bare, NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_config_set(d, 1, &c, &bare), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(f->w.sends, sends);
    penlink_dev_close(d);
    penlink_dev_close(NULL);
    penlink_dev_set_timeout(NULL, 1, 1);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_open),
        T(test_max_payload_bounded),
        T(test_bad_serials),
        T(test_other_major_version),
        T(test_pen_refuses_version),
        T(test_no_answer),
        T(test_answer_after_retry),
        T(test_stale_unknown_and_damage_skipped),
        T(test_unreadable_frame_resent),
        T(test_wrong_reply),
        T(test_send_fails),
        T(test_drain),
        T(test_pen_errors),
        T(test_feature_not_announced),
        T(test_invalid_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
