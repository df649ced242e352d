/*
 * The pull (host/src/pull.c) from a fake pen over the fake transport: a log
 * of real chunks served window by window, then made to misbehave one way at
 * a time (what its DeviceInfo says, chunks missing, repeated, empty, past
 * what it announced or failing their checks, LogEnds that contradict the
 * chunks, silence, refusals, bad signatures), and the caller's callbacks
 * stopping it. Each case: the status, the words, the result's counts, the
 * alarm the archive would record, and what the callbacks were given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "device.h"
#include "fake_transport.h"
#include "pl/auth.h"

#define SERIAL "PEN-000777"
#define RECORDS 40 /* the pen's log: seqs 0..39 */
#define PER_CHUNK 5
#define CHUNKS (RECORDS / PER_CHUNK)
#define T0_MS 1767225600000LL

typedef struct chunk {
    uint64_t first;
    uint32_t count, raw_size;
    size_t len;
    uint8_t data[1024];
    uint8_t prev_link[32], link[32];
} chunk;

/* The fake pen and how it misbehaves. */
typedef struct pen {
    chunk chunks[CHUNKS];
    int signs;
    penlink_key key;
    uint64_t first, next, acked; /* what DeviceInfo says, and what the pen holds */
    int has_claim;               /* DeviceInfo says claim_next instead of next */
    uint64_t claim_next;
    uint32_t count_override; /* a record_count other than the chunk's */
    const char *info_serial;
    int omit_key;        /* signs, but DeviceInfo carries no device key */
    int drop_chunk;      /* 1 + index of a chunk never sent */
    int repeat_first;    /* the first chunk of each window sent twice */
    int empty_chunk;     /* a chunk of no records */
    int corrupt_chunk;   /* 1 + index of a chunk whose data is damaged (its link still holds) */
    int end_delta;       /* added to each LogEnd's next_seq */
    int never_end;       /* LogEnd says more but sends nothing */
    int silent_pulls;    /* PullLogs left unanswered */
    uint32_t pull_error; /* PullLog refused with this code */
    int wrong_reply;     /* a Config in reply to PullLog */
    uint64_t shift;      /* added to every chunk's first_seq */
    int bad_signature;   /* heads signed over the wrong seq */
    int no_head;         /* LogEnds without a head */
    int relink;          /* 1 + index of a chunk sent with another link */
    int pulls, infos;    /* requests seen */
} pen;

typedef struct fixture {
    penlink_ctx *ctx;
    fake_wire w;
    pen p;
    penlink_dev *d;
    /* what the callbacks got */
    uint64_t records, chunks, heads, gaps, gap_first, gap_count, overlaps, bad_order;
    uint64_t next_expected;
    int stop_on_record, stop_on_chunk, stop_on_gap, stop_on_head;
    int notices;
    char notice[256];
} fixture;

static penlink_record rec_at(uint64_t seq)
{
    penlink_record r;
    memset(&r, 0, sizeof r);
    r.seq = seq;
    r.time_ms = T0_MS + (int64_t)seq * 1000;
    r.kind = PL_REC_DEPTH_CHANGED;
    r.fields = PL_F_DEPTH_UM;
    r.depth_um = 200 + (uint32_t)seq;
    return r;
}

static void build_log(pen *p)
{
    uint8_t g[PL_AUTH_GENESIS_MAX], link[32];
    crypto_hash_sha256(link, g, pl_auth_genesis_bytes(g, SERIAL));
    static uint8_t arena[PL_CHUNK_ENC_ARENA];
    for (int c = 0; c < CHUNKS; c++) {
        chunk *k = &p->chunks[c];
        pl_record recs[PER_CHUNK];
        for (int i = 0; i < PER_CHUNK; i++) {
            penlink_record r = rec_at((uint64_t)(c * PER_CHUNK + i));
            memcpy(&recs[i], &r, sizeof recs[i]);
        }
        pl_chunk_enc enc;
        pl_chunk_info info;
        assert_int_equal(pl_chunk_enc_init(&enc, arena, sizeof arena), PL_OK);
        assert_int_equal(pl_chunk_encode(&enc, pl_record_array_source, recs, PER_CHUNK, k->data,
                                         sizeof k->data, &info),
                         PL_OK);
        pl_chunk_enc_fini(&enc);
        k->first = (uint64_t)c * PER_CHUNK;
        k->count = PER_CHUNK;
        k->raw_size = info.raw_size;
        k->len = info.data_size;
        memcpy(k->prev_link, link, 32);
        uint8_t pre[PL_AUTH_LINK_PREFIX];
        pl_auth_link_prefix(pre, link, k->first, k->count, k->raw_size, (uint32_t)k->len);
        crypto_hash_sha256_state h;
        crypto_hash_sha256_init(&h);
        crypto_hash_sha256_update(&h, pre, sizeof pre);
        crypto_hash_sha256_update(&h, k->data, k->len);
        crypto_hash_sha256_final(&h, link);
        memcpy(k->link, link, 32);
    }
}

static void reply(fake_wire *w, uint32_t id, Penlink__V1__Envelope *env)
{
    env->has_request_id = 1;
    env->request_id = id;
    fake_wire_reply(w, env);
}

static void send_chunk(fake_wire *w, const pen *p, uint32_t id, int c)
{
    const chunk *k = &p->chunks[c];
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__LogChunk lc = PENLINK__V1__LOG_CHUNK__INIT;
    uint8_t data[sizeof k->data], link[32];
    memcpy(data, k->data, k->len);
    memcpy(link, k->link, 32);
    if (p->corrupt_chunk == c + 1)
        data[k->len / 2] ^= 0x5A;
    if (p->relink == c + 1)
        link[0] ^= 1;
    lc.has_first_seq = lc.has_record_count = lc.has_raw_size = lc.has_data = 1;
    lc.first_seq = k->first + p->shift;
    lc.record_count = p->empty_chunk ? 0 : p->count_override ? p->count_override : k->count;
    lc.raw_size = k->raw_size;
    lc.data.data = data;
    lc.data.len = k->len;
    if (p->signs) {
        lc.has_link = lc.has_prev_link = 1;
        lc.link.data = link;
        lc.link.len = 32;
        lc.prev_link.data = (uint8_t *)k->prev_link;
        lc.prev_link.len = 32;
    }
    env.body_case = PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK;
    env.log_chunk = &lc;
    reply(w, id, &env);
}

static void send_end(fake_wire *w, const pen *p, uint32_t id, uint64_t next, int more,
                     const uint8_t *head_link)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__LogEnd le = PENLINK__V1__LOG_END__INIT;
    le.has_next_seq = le.has_more = le.has_first_available_seq = 1;
    le.next_seq = next + (uint64_t)(int64_t)p->end_delta;
    le.more = more;
    le.first_available_seq = p->first;
    uint8_t sig[64];
    if (p->signs && head_link && !p->no_head) {
        uint8_t msg[PL_AUTH_HEAD_MAX];
        size_t n =
            pl_auth_head_bytes(msg, SERIAL, le.next_seq + (p->bad_signature ? 1 : 0), head_link);
        assert_int_equal(penlink_sign(&p->key, msg, n, sig), 0);
        le.has_head_link = le.has_head_signature = 1;
        le.head_link.data = (uint8_t *)head_link;
        le.head_link.len = 32;
        le.head_signature.data = sig;
        le.head_signature.len = 64;
    }
    env.body_case = PENLINK__V1__ENVELOPE__BODY_LOG_END;
    env.log_end = &le;
    reply(w, id, &env);
}

static void serve_pull(fake_wire *w, pen *p, uint32_t id, uint64_t from, uint32_t max)
{
    int sent = 0, c = 0;
    uint64_t lo = from > p->first ? from : p->first; /* it holds nothing below its first */
    while (c < CHUNKS && p->chunks[c].first + p->shift + p->chunks[c].count <= lo)
        c++;
    const uint8_t *last = NULL;
    uint64_t next = from;
    if (p->never_end) {
        send_end(w, p, id, from, 1, NULL);
        return;
    }
    for (; c < CHUNKS && sent < (int)max; c++, sent++) {
        if (p->chunks[c].first + p->shift >= p->next)
            break;
        if (p->drop_chunk != c + 1)
            send_chunk(w, p, id, c);
        if (sent == 0 && p->repeat_first)
            send_chunk(w, p, id, c);
        last = p->chunks[c].link;
        next = p->chunks[c].first + p->chunks[c].count + p->shift;
    }
    send_end(w, p, id, next, next < p->next, last);
}

static int respond(fake_wire *w, const pl_envelope *req, void *user)
{
    pen *p = user;
    uint32_t id = req->request_id;
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    switch (req->body_case) {
    case PENLINK__V1__ENVELOPE__BODY_HELLO: {
        Penlink__V1__HelloReply hr = PENLINK__V1__HELLO_REPLY__INIT;
        hr.has_protocol_major = hr.has_protocol_minor = hr.has_features = 1;
        hr.protocol_major = 1;
        hr.protocol_minor = 1;
        hr.features = PENLINK__V1__FEATURE__FEATURE_LOG_PULL |
                      (p->signs ? PENLINK__V1__FEATURE__FEATURE_SIGNED_CHUNKS : 0);
        hr.serial = SERIAL;
        env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY;
        env.hello_reply = &hr;
        reply(w, id, &env);
        break;
    }
    case PENLINK__V1__ENVELOPE__BODY_GET_INFO: {
        p->infos++;
        Penlink__V1__DeviceInfo di = PENLINK__V1__DEVICE_INFO__INIT;
        di.serial = (char *)(p->info_serial ? p->info_serial : SERIAL);
        di.has_log_first_seq = di.has_log_next_seq = di.has_log_acked_seq = 1;
        di.log_first_seq = p->first;
        di.log_next_seq = p->has_claim ? p->claim_next : p->next;
        di.log_acked_seq = p->acked;
        di.has_log_used_bytes = 1;
        di.log_used_bytes = 4000;
        if (p->signs && !p->omit_key) {
            di.has_device_key = 1;
            di.device_key.data = p->key.public_key;
            di.device_key.len = 32;
        }
        env.body_case = PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO;
        env.device_info = &di;
        reply(w, id, &env);
        break;
    }
    case PENLINK__V1__ENVELOPE__BODY_PULL_LOG:
        p->pulls++;
        if (p->silent_pulls > 0) {
            p->silent_pulls--;
        } else if (p->pull_error) {
            Penlink__V1__Error e = PENLINK__V1__ERROR__INIT;
            e.has_code = 1;
            e.code = p->pull_error;
            e.message = "no such records";
            env.body_case = PENLINK__V1__ENVELOPE__BODY_ERROR;
            env.error = &e;
            reply(w, id, &env);
        } else if (p->wrong_reply) {
            Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
            env.body_case = PENLINK__V1__ENVELOPE__BODY_CONFIG;
            env.config = &c;
            reply(w, id, &env);
        } else {
            serve_pull(w, p, id, req->pull_log->from_seq, req->pull_log->max_chunks);
        }
        break;
    default: break;
    }
    return PENLINK_OK;
}

static void on_notice(void *user, const char *text)
{
    fixture *f = user;
    f->notices++;
    snprintf(f->notice, sizeof f->notice, "%s", text);
}

static void open_pen(fixture *f)
{
    transport *t = fake_transport_new(f->ctx, &f->w);
    assert_non_null(t);
    assert_int_equal(dev_open_on(f->ctx, t, &f->d), PENLINK_OK);
}

static int setup_with(void **state, int signs)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_true(sodium_init() >= 0);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    penlink_ctx_set_notice_cb(f->ctx, on_notice, f);
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, 0x42, sizeof seed);
    assert_int_equal(crypto_sign_seed_keypair(f->p.key.public_key, f->p.key.secret, seed), 0);
    f->p.signs = signs;
    f->p.next = RECORDS;
    build_log(&f->p);
    fake_wire_init(&f->w, respond, &f->p);
    open_pen(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 0);
}

static int setup_signed(void **state)
{
    return setup_with(state, 1);
}

static int teardown(void **state)
{
    fixture *f = *state;
    penlink_dev_close(f->d);
    penlink_ctx_free(f->ctx);
    free(f);
    return 0;
}

static int on_record(void *user, const penlink_record *r)
{
    fixture *f = user;
    if (r->seq != f->next_expected)
        f->bad_order++;
    penlink_record want = rec_at(r->seq);
    if (r->depth_um != want.depth_um || r->time_ms != want.time_ms)
        f->bad_order++;
    f->next_expected = r->seq + 1;
    f->records++;
    return f->stop_on_record && f->records >= (uint64_t)f->stop_on_record;
}

static int on_chunk(void *user, const penlink_chunk *c)
{
    fixture *f = user;
    f->chunks++;
    if (f->p.signs && !c->has_link)
        f->bad_order++;
    return f->stop_on_chunk;
}

static int on_overlap(void *user, const penlink_record *r)
{
    fixture *f = user;
    (void)r;
    f->overlaps++;
    return 0;
}

static int on_head(void *user, const penlink_head *h)
{
    fixture *f = user;
    if (memcmp(h->device_key, f->p.key.public_key, 32) != 0)
        f->bad_order++;
    f->heads++;
    return f->stop_on_head;
}

static int on_gap(void *user, uint64_t first, uint64_t count, uint64_t acked)
{
    fixture *f = user;
    (void)acked;
    f->gaps++;
    f->gap_first = first;
    f->gap_count = count;
    f->next_expected = first + count;
    return f->stop_on_gap;
}

static int pull(fixture *f, uint64_t from, penlink_pull_result *res)
{
    penlink_pull_cb cb;
    memset(&cb, 0, sizeof cb);
    cb.on_record = on_record;
    cb.on_chunk = on_chunk;
    cb.on_overlap = on_overlap;
    cb.on_head = on_head;
    cb.on_gap = on_gap;
    cb.user = f;
    f->next_expected = from;
    return penlink_dev_pull(f->d, from, &cb, res);
}

static void assert_says(const fixture *f, const char *words)
{
    if (!strstr(penlink_ctx_errmsg(f->ctx), words))
        fail_msg("\"%s\" does not say \"%s\"", penlink_ctx_errmsg(f->ctx), words);
}

static void test_whole_log(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    assert_int_equal(pull(f, 0, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS);
    assert_int_equal(res.chunks, CHUNKS);
    assert_int_equal(res.first_seq, 0);
    assert_int_equal(res.next_seq, RECORDS);
    assert_int_equal(res.gap, 0);
    assert_int_equal(res.retries, 0);
    assert_int_equal(f->records, RECORDS);
    assert_int_equal(f->bad_order, 0);
    assert_string_equal(f->d->alarm, "");
}

/* From inside a stored chunk: its earlier records are overlaps, not records. */
static void test_from_inside_a_chunk(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    assert_int_equal(pull(f, 12, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS - 12);
    assert_int_equal(f->overlaps, 2); /* 10 and 11 */
    assert_int_equal(res.first_seq, 12);
    assert_int_equal(f->bad_order, 0);
}

static void test_info_contradicts_itself(void **state)
{
    fixture *f = *state;
    f->p.first = 50; /* oldest above next */
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "DeviceInfo contradicts itself (oldest record 50");
    f->p.first = 0;
    f->p.acked = RECORDS + 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    f->p.acked = 0;
    f->p.next = DEV_SEQ_LIMIT + 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "at or above 2^63");
    assert_int_equal(f->p.pulls, 0);
}

static void test_info_names_another_pen(void **state)
{
    fixture *f = *state;
    f->p.info_serial = "PEN-999999";
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "gives two serial numbers");
    assert_int_equal(f->p.pulls, 0);
}

static void test_from_outside_the_range(void **state)
{
    fixture *f = *state;
    assert_int_equal(pull(f, DEV_SEQ_LIMIT, NULL), PENLINK_ERR_INVALID_ARG);
    assert_says(f, "outside the protocol's range");
    assert_int_equal(penlink_dev_pull(NULL, 0, NULL, NULL), PENLINK_ERR_INVALID_ARG);
}

/* A chunk lost on the way (the pen still holds it): asked again, then given up. */
static void test_chunk_lost_every_time(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    f->p.drop_chunk = 3; /* records 10..14 */
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_PROTOCOL);
    assert_says(f, "records from seq 10 did not arrive whole (the pen still holds them)");
    assert_says(f, "asked 4 times");
    assert_says(f, "check the cable");
    assert_int_equal(res.next_seq, 10);
    assert_int_equal(res.records, 10);
    assert_int_equal(f->records, 10);
    assert_int_equal(f->gaps, 0); /* the pen still holds them: never a gap */
    assert_int_equal(f->p.pulls, 5);
    assert_int_equal(f->notices, 4);
    assert_non_null(strstr(f->notice, "retry 4 of 4"));
}

/* The pen says twice that records are gone: a gap, and the pull goes on. */
static void test_gap_confirmed(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    f->p.first = 10; /* it holds 10..39 only */
    assert_int_equal(pull(f, 0, &res), PENLINK_OK);
    assert_int_equal(f->gaps, 1);
    assert_int_equal(f->gap_first, 0);
    assert_int_equal(f->gap_count, 10);
    assert_int_equal(res.gap, 10);
    assert_int_equal(res.first_seq, 10);
    assert_int_equal(res.records, RECORDS - 10);
    assert_int_equal(f->bad_order, 0);
    /* the caller may refuse a gap */
    f->stop_on_gap = 1;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_CANCELLED);
    assert_says(f, "stopped by the gap callback");
}

/* A chunk sent twice costs its window, never a record twice. */
static void test_chunk_repeated(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    f->p.repeat_first = 1;
    assert_int_equal(pull(f, 0, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS);
    assert_int_equal(f->records, RECORDS);
    assert_int_equal(f->bad_order, 0);
    assert_int_equal(res.retries, CHUNKS);
    assert_non_null(strstr(f->notice, "a chunk at seq 35 came again or out of order"));
}

static void test_empty_chunk(void **state)
{
    fixture *f = *state;
    f->p.empty_chunk = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "the pen sent an empty chunk at seq 0");
    assert_int_equal(f->records, 0);
}

static void test_chunk_above_2_63(void **state)
{
    fixture *f = *state;
    f->p.shift = DEV_SEQ_LIMIT - 3;
    f->p.next = DEV_SEQ_LIMIT;
    assert_int_equal(pull(f, DEV_SEQ_LIMIT - 3, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "at or above 2^63, outside the protocol's range: refused");
}

/* Records beyond what DeviceInfo announced (and the margin): refused, alarm "overrun". */
static void test_overrun(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    f->p.has_claim = 1;
    f->p.claim_next = 0; /* "my log is empty" */
    f->p.count_override = 5000;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_INTEGRITY);
    assert_says(f, "the pen sent records up to seq 4999, but said it held records below 0 only");
    assert_string_equal(f->d->alarm, "overrun");
    assert_int_equal(f->d->alarm_seq, 0);
    assert_int_equal(f->d->alarm_count, 5000);
    assert_int_equal(res.records, 0);
}

/* A chunk whose frame passed its CRC but whose data fails: the pen's fault. */
static void test_chunk_fails_its_checks(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    f->p.corrupt_chunk = 2; /* records 5..9 */
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_INTEGRITY);
    assert_says(f, "the chunk at seq 5 (5 records) arrived intact but failed its checks");
    assert_string_equal(f->d->alarm, "contradiction");
    assert_int_equal(f->d->alarm_seq, 5);
    assert_int_equal(res.records, 5);
    assert_int_equal(res.next_seq, 5);
}

static void test_end_before_the_chunks(void **state)
{
    fixture *f = *state;
    f->p.end_delta = -2;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_INTEGRITY);
    assert_says(f, "says its reply ended at seq 38, but it sent records through 39");
    assert_string_equal(f->d->alarm, "contradiction");
}

/* The log ends below what DeviceInfo said it held. */
static void test_log_ends_early(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    f->p.has_claim = 1;
    f->p.claim_next = RECORDS + 5;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_INTEGRITY);
    assert_says(f, "says its log ends at seq 40, but it said it held records up to 44");
    assert_string_equal(f->d->alarm, "contradiction");
    assert_int_equal(f->d->alarm_seq, RECORDS);
    assert_int_equal(f->d->alarm_count, 5);
}

static void test_more_but_nothing(void **state)
{
    fixture *f = *state;
    f->p.never_end = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "the pen said more records follow seq 0 but sent none");
}

static void test_silent_pen(void **state)
{
    fixture *f = *state;
    penlink_ctx_set_timeout(f->ctx, 100, 0);
    penlink_dev_set_timeout(f->d, 100, 0);
    f->p.silent_pulls = 100;
    penlink_pull_result res;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_TIMEOUT);
    assert_says(f, "the pen sent nothing for 100 ms at seq 0");
    assert_says(f, "the pen may be hung");
    assert_int_equal(f->p.pulls, 4);
    assert_int_equal(res.retries, 4);
}

static void test_pull_refused(void **state)
{
    fixture *f = *state;
    f->p.pull_error = PENLINK__V1__ERROR_CODE__ERROR_SEQ_NOT_AVAILABLE;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_DEVICE);
    assert_says(f, "does not have the records asked for (no such records)");
    assert_int_equal(penlink_dev_error(f->d)->code,
                     PENLINK__V1__ERROR_CODE__ERROR_SEQ_NOT_AVAILABLE);
}

static void test_wrong_reply(void **state)
{
    fixture *f = *state;
    f->p.wrong_reply = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "the pen answered pull_log with config");
}

static void test_callbacks_stop(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    f->stop_on_record = 7;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_CANCELLED);
    assert_says(f, "stopped by the record callback");
    assert_int_equal(f->records, 7);
    f->stop_on_record = 0;
    f->stop_on_chunk = 1;
    f->records = 0;
    assert_int_equal(pull(f, 0, &res), PENLINK_ERR_CANCELLED);
    assert_says(f, "stopped by the chunk callback");
    assert_int_equal(f->records, 0);
}

static void test_cancelled(void **state)
{
    fixture *f = *state;
    penlink_ctx_cancel(f->ctx);
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_CANCELLED);
    assert_says(f, "pull cancelled at seq 0");
    assert_int_equal(f->p.pulls, 0);
    penlink_ctx_reset_cancel(f->ctx);
}

/* ---- a pen that signs its log ---- */

static void test_signed_whole_log(void **state)
{
    fixture *f = *state;
    penlink_pull_result res;
    assert_int_equal(pull(f, 0, &res), PENLINK_OK);
    assert_int_equal(res.records, RECORDS);
    assert_true(f->heads >= 1);
    assert_int_equal(f->bad_order, 0);
    assert_string_equal(f->d->alarm, "");
}

static void test_signed_without_key(void **state)
{
    fixture *f = *state;
    f->p.omit_key = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_PROTOCOL);
    assert_says(f, "says it signs its log but has no device key");
}

static void test_signed_bad_head(void **state)
{
    fixture *f = *state;
    f->p.bad_signature = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_INTEGRITY);
    assert_says(f, "does not verify with its device key");
    assert_string_equal(f->d->alarm, "unverified");
    assert_int_equal(f->heads, 0);
}

static void test_signed_no_head(void **state)
{
    fixture *f = *state;
    f->p.no_head = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_INTEGRITY);
    assert_says(f, "sent no signed head");
}

static void test_signed_chunk_relinked(void **state)
{
    fixture *f = *state;
    f->p.relink = 2;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_INTEGRITY);
    assert_says(f, "the chunk of records 5..9 does not match its hash-chain link");
    assert_string_equal(f->d->alarm, "unverified");
}

static void test_signed_head_callback_stops(void **state)
{
    fixture *f = *state;
    f->stop_on_head = 1;
    assert_int_equal(pull(f, 0, NULL), PENLINK_ERR_CANCELLED);
    assert_says(f, "stopped by the head callback");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
#define S(name) cmocka_unit_test_setup_teardown(name, setup_signed, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_whole_log),
        T(test_from_inside_a_chunk),
        T(test_info_contradicts_itself),
        T(test_info_names_another_pen),
        T(test_from_outside_the_range),
        T(test_chunk_lost_every_time),
        T(test_gap_confirmed),
        T(test_chunk_repeated),
        T(test_empty_chunk),
        T(test_chunk_above_2_63),
        T(test_overrun),
        T(test_chunk_fails_its_checks),
        T(test_end_before_the_chunks),
        T(test_log_ends_early),
        T(test_more_but_nothing),
        T(test_silent_pen),
        T(test_pull_refused),
        T(test_wrong_reply),
        T(test_callbacks_stop),
        T(test_cancelled),
        S(test_signed_whole_log),
        S(test_signed_without_key),
        S(test_signed_bad_head),
        S(test_signed_no_head),
        S(test_signed_chunk_relinked),
        S(test_signed_head_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
