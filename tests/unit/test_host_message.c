/*
 * Messages as engineers see them (host/src/message.c): a frame's header
 * fields, the body's name, and penlink_message_fields() walking whatever a
 * message holds from its protobuf-c descriptor: a real DeviceInfo Envelope,
 * and a message of every field type and label (so that a field added to
 * penlink.proto, of any type, shows up), nested, repeated, optional and
 * absent; a callback that stops the walk at each field in turn.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "message.h"

/* ---- header and name ---------------------------------------------------- */

static void test_frame_header(void **state)
{
    (void)state;
    uint8_t frame[PL_FRAME_HEADER_SIZE + 3] = { 'P', 'L', 'N',  'K',  1,    2,    3,    0,
                                                0,   0,   0x78, 0x56, 0x34, 0x12, 0xcd, 0xab };
    penlink_message m;
    memset(&m, 0, sizeof m);
    msg_set_frame(&m, frame, PL_FRAME_HEADER_SIZE - 1); /* too short: nothing read */
    assert_int_equal(m.size, 0);
    assert_int_equal(m.version, 0);
    msg_set_frame(&m, frame, sizeof frame);
    assert_int_equal(m.version, 1);
    assert_int_equal(m.flags, 2);
    assert_int_equal(m.payload_len, 3);
    assert_int_equal(m.payload_crc, 0x12345678);
    assert_int_equal(m.header_check, 0xabcd);
    assert_int_equal(m.size, sizeof frame);
}

static void test_body_name(void **state)
{
    (void)state;
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    assert_string_equal(msg_body_name(NULL), "damaged");
    assert_string_equal(msg_body_name(&env), "none");
    Penlink__V1__GetInfo gi = PENLINK__V1__GET_INFO__INIT;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_INFO;
    env.get_info = &gi;
    assert_string_equal(msg_body_name(&env), "get_info");
    env.body_case = (Penlink__V1__Envelope__BodyCase)999; /* a newer pen's body */
    assert_string_equal(msg_body_name(&env), "none");
}

/* ---- walking ------------------------------------------------------------ */

#define MAX_SEEN 64

typedef struct seen {
    penlink_field f[MAX_SEEN];
    char text[MAX_SEEN][32];
    int n;
    int stop_at; /* 1-based call that returns non-zero; 0: none */
} seen;

static int record_field(void *user, const penlink_field *f)
{
    seen *s = user;
    assert_true(s->n < MAX_SEEN);
    s->f[s->n] = *f;
    if (f->type == PENLINK_FIELD_TEXT)
        snprintf(s->text[s->n], sizeof s->text[0], "%s", f->text);
    s->n++;
    return s->stop_at == s->n;
}

static void test_arguments(void **state)
{
    (void)state;
    penlink_message m;
    memset(&m, 0, sizeof m);
    seen s = { .n = 0 };
    /* a damaged stretch has no Envelope */
    assert_int_equal(penlink_message_fields(&m, record_field, &s), PENLINK_ERR_INVALID_ARG);
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    m.internal_ = &env;
    assert_int_equal(penlink_message_fields(NULL, record_field, &s), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_message_fields(&m, NULL, &s), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(s.n, 0);
}

/* A DeviceInfo as a pen sends it: the body opens at depth 0, its fields at
 * depth 1 in number order, a repeated bytes field once per element. */
static void test_device_info(void **state)
{
    (void)state;
    uint8_t k1[32] = { 1 }, k2[32] = { 2 };
    ProtobufCBinaryData keys[2] = { { 32, k1 }, { 32, k2 } };
    Penlink__V1__DeviceInfo di = PENLINK__V1__DEVICE_INFO__INIT;
    di.serial = "PEN-1";
    di.has_log_next_seq = 1;
    di.log_next_seq = 7;
    di.has_device_time_ms = 1;
    di.device_time_ms = -5;
    di.n_config_keys = 2;
    di.config_keys = keys;
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    env.has_request_id = 1;
    env.request_id = 9;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO;
    env.device_info = &di;
    penlink_message m;
    memset(&m, 0, sizeof m);
    m.internal_ = &env;
    seen s = { .n = 0 };
    assert_int_equal(penlink_message_fields(&m, record_field, &s), PENLINK_OK);
    /* request_id, BEGIN device_info, serial, log_next_seq, device_time_ms,
     * config_keys twice, END */
    assert_int_equal(s.n, 8);
    assert_string_equal(s.f[0].name, "request_id");
    assert_int_equal(s.f[0].u, 9);
    assert_int_equal(s.f[1].type, PENLINK_FIELD_BEGIN);
    assert_string_equal(s.f[1].name, "device_info");
    assert_int_equal(s.f[1].depth, 0);
    assert_int_equal(s.f[2].type, PENLINK_FIELD_TEXT);
    assert_string_equal(s.text[2], "PEN-1");
    assert_int_equal(s.f[2].depth, 1);
    assert_int_equal(s.f[3].type, PENLINK_FIELD_UINT);
    assert_int_equal(s.f[3].u, 7);
    assert_int_equal(s.f[4].type, PENLINK_FIELD_INT);
    assert_int_equal(s.f[4].i, -5);
    assert_int_equal(s.f[5].type, PENLINK_FIELD_BYTES);
    assert_true(s.f[5].repeated);
    assert_ptr_equal(s.f[5].bytes, k1);
    assert_ptr_equal(s.f[6].bytes, k2);
    assert_int_equal(s.f[7].type, PENLINK_FIELD_END);
    assert_string_equal(s.f[7].name, "device_info");
}

/* A message of every type and label, described by hand as protoc-c would. */
typedef struct inner {
    ProtobufCMessage base;
    protobuf_c_boolean has_v;
    uint32_t v;
} inner;

typedef struct every {
    ProtobufCMessage base;
    protobuf_c_boolean has_u32, has_u64, has_i32, has_i64, has_b, has_blob, has_absent, has_f;
    uint32_t u32;
    uint64_t u64;
    int32_t i32;
    int64_t i64;
    protobuf_c_boolean b;
    ProtobufCBinaryData blob;
    uint32_t absent; /* optional, not present */
    float f;         /* a type penlink.proto does not use: skipped */
    char *s, *null_s;
    inner *sub, *no_sub;
    int32_t req; /* required: always present */
    size_t n_r64;
    uint64_t *r64;
    size_t n_rb;
    protobuf_c_boolean *rb;
    size_t n_rs;
    char **rs;
    size_t n_rm;
    inner **rm;
    size_t n_rbytes;
    ProtobufCBinaryData *rbytes;
    size_t n_r32;
    int32_t *r32;
    size_t n_empty;
    uint32_t *empty;
    uint32_t which; /* a oneof's case */
    uint32_t one_a, one_b;
} every;

static const ProtobufCFieldDescriptor inner_fields[] = {
    { "v", 1, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_UINT32, offsetof(inner, has_v),
      offsetof(inner, v), NULL, NULL, 0, 0, NULL, NULL },
};
static const ProtobufCMessageDescriptor inner_descriptor = { PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
                                                             "t.Inner",
                                                             "Inner",
                                                             "Inner",
                                                             "t",
                                                             sizeof(inner),
                                                             1,
                                                             inner_fields,
                                                             NULL,
                                                             0,
                                                             NULL,
                                                             NULL,
                                                             NULL,
                                                             NULL,
                                                             NULL };

#define OPT(name, id, type, field)                                                                 \
    {                                                                                              \
        name, id, PROTOBUF_C_LABEL_OPTIONAL, type, offsetof(every, has_##field),                   \
            offsetof(every, field), NULL, NULL, 0, 0, NULL, NULL                                   \
    }
#define REP(name, id, type, field, desc)                                                           \
    {                                                                                              \
        name, id, PROTOBUF_C_LABEL_REPEATED, type, offsetof(every, n_##field),                     \
            offsetof(every, field), desc, NULL, 0, 0, NULL, NULL                                   \
    }

static const ProtobufCFieldDescriptor every_fields[] = {
    OPT("u32", 1, PROTOBUF_C_TYPE_FIXED32, u32),
    OPT("u64", 2, PROTOBUF_C_TYPE_FIXED64, u64),
    OPT("i32", 3, PROTOBUF_C_TYPE_SINT32, i32),
    OPT("i64", 4, PROTOBUF_C_TYPE_SFIXED64, i64),
    OPT("b", 5, PROTOBUF_C_TYPE_BOOL, b),
    OPT("blob", 6, PROTOBUF_C_TYPE_BYTES, blob),
    OPT("absent", 7, PROTOBUF_C_TYPE_UINT32, absent),
    OPT("f", 8, PROTOBUF_C_TYPE_FLOAT, f),
    { "s", 9, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0, offsetof(every, s), NULL, NULL,
      0, 0, NULL, NULL },
    { "null_s", 10, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_STRING, 0, offsetof(every, null_s),
      NULL, NULL, 0, 0, NULL, NULL },
    { "sub", 11, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_MESSAGE, 0, offsetof(every, sub),
      &inner_descriptor, NULL, 0, 0, NULL, NULL },
    { "no_sub", 12, PROTOBUF_C_LABEL_OPTIONAL, PROTOBUF_C_TYPE_MESSAGE, 0, offsetof(every, no_sub),
      &inner_descriptor, NULL, 0, 0, NULL, NULL },
    { "req", 13, PROTOBUF_C_LABEL_REQUIRED, PROTOBUF_C_TYPE_ENUM, 0, offsetof(every, req), NULL,
      NULL, 0, 0, NULL, NULL },
    REP("r64", 14, PROTOBUF_C_TYPE_INT64, r64, NULL),
    REP("rb", 15, PROTOBUF_C_TYPE_BOOL, rb, NULL),
    REP("rs", 16, PROTOBUF_C_TYPE_STRING, rs, NULL),
    REP("rm", 17, PROTOBUF_C_TYPE_MESSAGE, rm, &inner_descriptor),
    REP("rbytes", 18, PROTOBUF_C_TYPE_BYTES, rbytes, NULL),
    REP("r32", 19, PROTOBUF_C_TYPE_INT32, r32, NULL),
    REP("empty", 20, PROTOBUF_C_TYPE_UINT32, empty, NULL),
    { "one_a", 21, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_UINT32, offsetof(every, which),
      offsetof(every, one_a), NULL, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF, 0, NULL, NULL },
    { "one_b", 22, PROTOBUF_C_LABEL_NONE, PROTOBUF_C_TYPE_UINT32, offsetof(every, which),
      offsetof(every, one_b), NULL, NULL, PROTOBUF_C_FIELD_FLAG_ONEOF, 0, NULL, NULL },
};
static const ProtobufCMessageDescriptor every_descriptor = { PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
                                                             "t.Every",
                                                             "Every",
                                                             "Every",
                                                             "t",
                                                             sizeof(every),
                                                             sizeof every_fields /
                                                                 sizeof every_fields[0],
                                                             every_fields,
                                                             NULL,
                                                             0,
                                                             NULL,
                                                             NULL,
                                                             NULL,
                                                             NULL,
                                                             NULL };

/* The walk of one filled-in message, as (type, name, value) in order. */
static void walk_every(every *e, inner *in, seen *s)
{
    static uint8_t bytes[3] = { 7, 8, 9 };
    static uint64_t r64[2] = { (uint64_t)-2, 3 };
    static protobuf_c_boolean rb[2] = { 1, 0 };
    static char *rs[2] = { "x", "yz" };
    static ProtobufCBinaryData rbytes[1] = { { 3, bytes } };
    static int32_t r32[2] = { -1, 1 };
    static inner *rm[2];
    memset(e, 0, sizeof *e);
    memset(in, 0, sizeof *in);
    in->base.descriptor = &inner_descriptor;
    in->has_v = 1;
    in->v = 42;
    rm[0] = rm[1] = in;
    e->base.descriptor = &every_descriptor;
    e->has_u32 = e->has_u64 = e->has_i32 = e->has_i64 = e->has_b = e->has_blob = e->has_f = 1;
    e->u32 = 0xfffffffe;
    e->u64 = UINT64_MAX;
    e->i32 = -7;
    e->i64 = INT64_MIN;
    e->b = 5; /* any non-zero is true */
    e->blob.len = 2;
    e->blob.data = bytes;
    e->absent = 99;
    e->s = "hi";
    e->sub = in;
    e->req = 3;
    e->n_r64 = 2;
    e->r64 = r64;
    e->n_rb = 2;
    e->rb = rb;
    e->n_rs = 2;
    e->rs = rs;
    e->n_rm = 2;
    e->rm = rm;
    e->n_rbytes = 1;
    e->rbytes = rbytes;
    e->n_r32 = 2;
    e->r32 = r32;
    e->which = 22;
    e->one_a = 1;
    e->one_b = 2;
    penlink_message m;
    memset(&m, 0, sizeof m);
    m.internal_ = e;
    int rc = penlink_message_fields(&m, record_field, s);
    assert_int_equal(rc, s->stop_at && s->stop_at <= s->n ? PENLINK_ERR_CANCELLED : PENLINK_OK);
}

static void test_every_type(void **state)
{
    (void)state;
    every e;
    inner in;
    seen s = { .n = 0 };
    walk_every(&e, &in, &s);
    static const struct {
        const char *name;
        penlink_field_type type;
        int depth, repeated;
    } want[] = {
        { "u32", PENLINK_FIELD_UINT, 0, 0 },   { "u64", PENLINK_FIELD_UINT, 0, 0 },
        { "i32", PENLINK_FIELD_INT, 0, 0 },    { "i64", PENLINK_FIELD_INT, 0, 0 },
        { "b", PENLINK_FIELD_BOOL, 0, 0 },     { "blob", PENLINK_FIELD_BYTES, 0, 0 },
        { "s", PENLINK_FIELD_TEXT, 0, 0 },     { "sub", PENLINK_FIELD_BEGIN, 0, 0 },
        { "v", PENLINK_FIELD_UINT, 1, 0 },     { "sub", PENLINK_FIELD_END, 0, 0 },
        { "req", PENLINK_FIELD_INT, 0, 0 },    { "r64", PENLINK_FIELD_INT, 0, 1 },
        { "r64", PENLINK_FIELD_INT, 0, 1 },    { "rb", PENLINK_FIELD_BOOL, 0, 1 },
        { "rb", PENLINK_FIELD_BOOL, 0, 1 },    { "rs", PENLINK_FIELD_TEXT, 0, 1 },
        { "rs", PENLINK_FIELD_TEXT, 0, 1 },    { "rm", PENLINK_FIELD_BEGIN, 0, 1 },
        { "v", PENLINK_FIELD_UINT, 1, 0 },     { "rm", PENLINK_FIELD_END, 0, 1 },
        { "rm", PENLINK_FIELD_BEGIN, 0, 1 },   { "v", PENLINK_FIELD_UINT, 1, 0 },
        { "rm", PENLINK_FIELD_END, 0, 1 },     { "rbytes", PENLINK_FIELD_BYTES, 0, 1 },
        { "r32", PENLINK_FIELD_INT, 0, 1 },    { "r32", PENLINK_FIELD_INT, 0, 1 },
        { "one_b", PENLINK_FIELD_UINT, 0, 0 },
    };
    int n = (int)(sizeof want / sizeof want[0]);
    assert_int_equal(s.n, n);
    for (int i = 0; i < n; i++) {
        if (strcmp(s.f[i].name, want[i].name) != 0 || s.f[i].type != want[i].type ||
            s.f[i].depth != want[i].depth || s.f[i].repeated != want[i].repeated)
            fail_msg("field %d: %s type %d depth %d repeated %d, want %s %d %d %d", i, s.f[i].name,
                     s.f[i].type, s.f[i].depth, s.f[i].repeated, want[i].name, want[i].type,
                     want[i].depth, want[i].repeated);
    }
    assert_int_equal(s.f[0].u, 0xfffffffe);
    assert_int_equal(s.f[0].number, 1);
    assert_true(s.f[1].u == UINT64_MAX);
    assert_int_equal(s.f[2].i, -7);
    assert_true(s.f[3].i == INT64_MIN);
    assert_int_equal(s.f[4].u, 1);
    assert_int_equal(s.f[5].len, 2);
    assert_int_equal(s.f[5].bytes[1], 8);
    assert_string_equal(s.text[6], "hi");
    assert_int_equal(s.f[8].u, 42);
    assert_int_equal(s.f[10].i, 3);
    assert_int_equal(s.f[11].i, -2);
    assert_int_equal(s.f[12].i, 3);
    assert_int_equal(s.f[13].u, 1);
    assert_int_equal(s.f[14].u, 0);
    assert_string_equal(s.text[16], "yz");
    assert_int_equal(s.f[23].len, 3);
    assert_int_equal(s.f[24].i, -1);
    assert_int_equal(s.f[25].i, 1);
    assert_int_equal(s.f[26].u, 2);
    assert_int_equal(s.f[26].number, 22);

    /* a NULL string in a repeated field is an empty text, not a crash */
    static char *with_null[1] = { NULL };
    e.rs = with_null;
    e.n_rs = 1;
    memset(&s, 0, sizeof s);
    penlink_message m;
    memset(&m, 0, sizeof m);
    m.internal_ = &e;
    assert_int_equal(penlink_message_fields(&m, record_field, &s), PENLINK_OK);
    assert_int_equal(s.n, n - 1);
    assert_string_equal(s.text[15], "");

    /* stopped at each call in turn: nothing visited after it */
    for (int stop = 1; stop <= n; stop++) {
        memset(&s, 0, sizeof s);
        s.stop_at = stop;
        walk_every(&e, &in, &s);
        assert_int_equal(s.n, stop);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_header), cmocka_unit_test(test_body_name),
        cmocka_unit_test(test_arguments),    cmocka_unit_test(test_device_info),
        cmocka_unit_test(test_every_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
