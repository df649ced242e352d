/* Test vectors: every byte comes from the code, so the doc cannot drift. */
#include <string.h>
#include <zlib.h>

#include "pl/auth.h"
#include "pl/chunk.h"
#include "pl/envelope.h"
#include "vectors.h"

static size_t hello_frame(uint8_t *out)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Hello h = PENLINK__V1__HELLO__INIT;
    h.has_protocol_major = h.has_protocol_minor = h.has_features = 1;
    h.has_max_frame_payload = 1;
    h.protocol_major = 1;
    h.protocol_minor = 0;
    h.features = 7;
    h.max_frame_payload = 1048576;
    h.client = "penlink/0.1.0";
    env.has_request_id = 1;
    env.request_id = 1;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    return (size_t)pl_envelope_frame(&env, out, VEC_MAX);
}

static size_t config_frame(uint8_t *out)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Config c = PENLINK__V1__CONFIG__INIT;
    c.has_revision = c.has_depth_min_um = c.has_depth_max_um = c.has_depth_default_um = 1;
    c.has_speed_min_sps = c.has_speed_max_sps = c.has_max_treatment_s = 1;
    c.has_max_cartridge_uses = c.has_auto_off_s = 1;
    c.revision = 3;
    c.depth_min_um = 0;
    c.depth_max_um = 2500;
    c.depth_default_um = 500;
    c.speed_min_sps = 50;
    c.speed_max_sps = 150;
    c.max_treatment_s = 3600;
    c.max_cartridge_uses = 1;
    c.auto_off_s = 300;
    c.device_label = "Room 2";
    c.clinic_id = "CLINIC-0042";
    env.has_request_id = 1;
    env.request_id = 2;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_CONFIG;
    env.config = &c;
    return (size_t)pl_envelope_frame(&env, out, VEC_MAX);
}

void vec_chunk_records(pl_record r[3])
{
    memset(r, 0, 3 * sizeof *r);
    r[0].seq = 100;
    r[0].time_ms = 1767258000000; /* 2026-01-01T09:00:00.000Z */
    r[0].kind = PL_REC_CARTRIDGE_INSERTED;
    r[0].fields = pl_record_kind_fields(r[0].kind);
    r[0].cartridge_serial = 0x4D4E00000000A001ull;
    r[0].cartridge_uses = 1;
    r[0].lifetime_cartridges = 17;
    r[1].seq = 101;
    r[1].time_ms = 1767258045123; /* +45.123 s */
    r[1].kind = PL_REC_TREATMENT_START;
    r[1].fields = pl_record_kind_fields(r[1].kind);
    r[1].depth_um = 500;
    r[1].speed_sps = 100;
    r[1].cartridge_serial = 0x4D4E00000000A001ull;
    r[2].seq = 102;
    r[2].time_ms = 1767258106130; /* +61.007 s */
    r[2].kind = PL_REC_DEPTH_CHANGED;
    r[2].fields = pl_record_kind_fields(r[2].kind);
    r[2].depth_um = 1000;
}

static size_t encode3(uint8_t *out, pl_chunk_info *info)
{
    static _Alignas(16) uint8_t arena[PL_CHUNK_ENC_ARENA];
    pl_chunk_enc enc;
    pl_record r[3];
    vec_chunk_records(r);
    if (pl_chunk_enc_init(&enc, arena, sizeof arena) != PL_OK)
        return 0;
    int st = pl_chunk_encode(&enc, pl_record_array_source, r, 3, out, VEC_MAX, info);
    pl_chunk_enc_fini(&enc);
    return st == PL_OK ? info->data_size : 0;
}

static size_t chunk_zlib(uint8_t *out)
{
    pl_chunk_info info;
    return encode3(out, &info);
}

static size_t chunk_raw(uint8_t *out)
{
    uint8_t z[VEC_MAX];
    pl_chunk_info info;
    size_t n = encode3(z, &info);
    uLongf len = VEC_MAX;
    if (!n || uncompress(out, &len, z, n) != Z_OK)
        return 0;
    return len;
}

static size_t chunk_frame(uint8_t *out)
{
    uint8_t z[VEC_MAX];
    pl_chunk_info info;
    size_t n = encode3(z, &info);
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__LogChunk c = PENLINK__V1__LOG_CHUNK__INIT;
    c.has_first_seq = c.has_record_count = c.has_raw_size = c.has_data = 1;
    c.first_seq = info.first_seq;
    c.record_count = info.record_count;
    c.raw_size = info.raw_size;
    c.data.data = z;
    c.data.len = n;
    env.has_request_id = 1;
    env.request_id = 7;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK;
    env.log_chunk = &c;
    return n ? (size_t)pl_envelope_frame(&env, out, VEC_MAX) : 0;
}

static size_t identify_frame(uint8_t *out)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Identify q = PENLINK__V1__IDENTIFY__INIT;
    q.has_seconds = 1;
    q.seconds = 10;
    env.has_request_id = 1;
    env.request_id = 9;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_IDENTIFY;
    env.identify = &q;
    return (size_t)pl_envelope_frame(&env, out, VEC_MAX);
}

static size_t identify_reply_frame(uint8_t *out)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__IdentifyReply r = PENLINK__V1__IDENTIFY_REPLY__INIT;
    r.has_seconds = 1;
    r.seconds = 10;
    env.has_request_id = 1;
    env.request_id = 9;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_IDENTIFY_REPLY;
    env.identify_reply = &r;
    return (size_t)pl_envelope_frame(&env, out, VEC_MAX);
}

/* The signed bytes of a SetClock (section 9.4): pen PEN-TRUST-1, nonce 32
 * bytes of 0x11, time 2026-01-01T09:00:00.000Z. */
static size_t clock_signed_bytes(uint8_t *out)
{
    uint8_t nonce[PL_NONCE_BYTES];
    memset(nonce, 0x11, sizeof nonce);
    return pl_auth_clock_bytes(out, "PEN-TRUST-1", nonce, 1767258000000);
}

const vector vectors[] = {
    { "hello-frame", hello_frame },
    { "config-frame", config_frame },
    { "chunk-batch", chunk_raw },
    { "chunk-zlib", chunk_zlib },
    { "chunk-frame", chunk_frame },
    { "identify-frame", identify_frame },
    { "identify-reply-frame", identify_reply_frame },
    { "clock-signed-bytes", clock_signed_bytes },
};
const size_t n_vectors = sizeof vectors / sizeof vectors[0];
