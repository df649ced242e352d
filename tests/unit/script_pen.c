/* The scripted pen of the host library's unit tests (script_pen.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "internal.h"
#include "pl/auth.h"
#include "pl/chunk.h"
#include "pl/record.h"
#include "script_pen.h"

#define T0_MS 1767225600000LL

penlink_record script_pen_record(uint64_t seq)
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

static void build_log(script_pen *p)
{
    uint8_t g[PL_AUTH_GENESIS_MAX], link[32];
    crypto_hash_sha256(link, g, pl_auth_genesis_bytes(g, SCRIPT_PEN_SERIAL));
    static uint8_t arena[PL_CHUNK_ENC_ARENA];
    for (int c = 0; c < SCRIPT_PEN_CHUNKS; c++) {
        script_chunk *k = &p->chunks[c];
        pl_record recs[SCRIPT_PEN_PER_CHUNK];
        for (int i = 0; i < SCRIPT_PEN_PER_CHUNK; i++) {
            penlink_record r = script_pen_record((uint64_t)(c * SCRIPT_PEN_PER_CHUNK + i));
            memcpy(&recs[i], &r, sizeof recs[i]);
        }
        pl_chunk_enc enc;
        pl_chunk_info info;
        assert_int_equal(pl_chunk_enc_init(&enc, arena, sizeof arena), PL_OK);
        assert_int_equal(pl_chunk_encode(&enc, pl_record_array_source, recs, SCRIPT_PEN_PER_CHUNK,
                                         k->data, sizeof k->data, &info),
                         PL_OK);
        pl_chunk_enc_fini(&enc);
        k->first = (uint64_t)c * SCRIPT_PEN_PER_CHUNK;
        k->count = SCRIPT_PEN_PER_CHUNK;
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

static void send_chunk(fake_wire *w, const script_pen *p, uint32_t id, int c)
{
    const script_chunk *k = &p->chunks[c];
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

static void send_end(fake_wire *w, const script_pen *p, uint32_t id, uint64_t next, int more,
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
        size_t n = pl_auth_head_bytes(msg, SCRIPT_PEN_SERIAL,
                                      le.next_seq + (p->bad_signature ? 1 : 0), head_link);
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

static void serve_pull(fake_wire *w, script_pen *p, uint32_t id, uint64_t from, uint32_t max)
{
    int sent = 0, c = 0;
    uint64_t lo = from > p->first ? from : p->first; /* it holds nothing below its first */
    while (c < SCRIPT_PEN_CHUNKS && p->chunks[c].first + p->shift + p->chunks[c].count <= lo)
        c++;
    /* as the firmware does: the head it holds when it sends no chunk */
    const uint8_t *last = c > 0 && c <= SCRIPT_PEN_CHUNKS ? p->chunks[c - 1].link : NULL;
    uint64_t next = from;
    if (p->never_end) {
        send_end(w, p, id, from, 1, NULL);
        return;
    }
    for (; c < SCRIPT_PEN_CHUNKS && sent < (int)max; c++, sent++) {
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

int script_pen_respond(fake_wire *w, const pl_envelope *req, void *user)
{
    script_pen *p = user;
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
        hr.serial = SCRIPT_PEN_SERIAL;
        env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO_REPLY;
        env.hello_reply = &hr;
        reply(w, id, &env);
        break;
    }
    case PENLINK__V1__ENVELOPE__BODY_GET_INFO: {
        p->infos++;
        Penlink__V1__DeviceInfo di = PENLINK__V1__DEVICE_INFO__INIT;
        di.serial = (char *)(p->info_serial ? p->info_serial : SCRIPT_PEN_SERIAL);
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
    case PENLINK__V1__ENVELOPE__BODY_ACK_LOG: {
        p->acks++;
        p->acked_through = req->ack_log->through_seq;
        if (req->ack_log->through_seq >= p->next || p->refuse_ack) { /* docs/protocol.md */
            Penlink__V1__Error e = PENLINK__V1__ERROR__INIT;
            e.has_code = 1;
            e.code = PENLINK__V1__ERROR_CODE__ERROR_INVALID_ARGUMENT;
            e.message = "through_seq is at or beyond the log's end";
            e.field = "through_seq";
            env.body_case = PENLINK__V1__ENVELOPE__BODY_ERROR;
            env.error = &e;
            reply(w, id, &env);
            break;
        }
        uint64_t through1 = req->ack_log->through_seq + 1;
        Penlink__V1__AckLogReply ar = PENLINK__V1__ACK_LOG_REPLY__INIT;
        ar.has_acked_seq = 1;
        if (through1 > p->acked)
            p->acked = through1;
        ar.acked_seq = p->acked + (uint64_t)(int64_t)p->ack_delta;
        env.body_case = PENLINK__V1__ENVELOPE__BODY_ACK_LOG_REPLY;
        env.ack_log_reply = &ar;
        reply(w, id, &env);
        break;
    }
    default: break;
    }
    return PENLINK_OK;
}

void script_pen_init(script_pen *p, int signs)
{
    memset(p, 0, sizeof *p);
    assert_true(sodium_init() >= 0);
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, 0x42, sizeof seed);
    assert_int_equal(crypto_sign_seed_keypair(p->key.public_key, p->key.secret, seed), 0);
    p->signs = signs;
    p->next = SCRIPT_PEN_RECORDS;
    build_log(p);
}
