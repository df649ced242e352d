/*
 * The file header that names a .plog file's pen (penlink_file_header_encode,
 * penlink_decoder_header): it round-trips; it names the file only as the
 * first frame; a malformed one is refused; a second one naming another pen
 * (two files joined) stops the decode; readers of frames walk over it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "penlink/penlink.h"
#include "pl/envelope.h"

static int on_record(void *user, const penlink_record *r)
{
    (void)user;
    (void)r;
    return 0;
}

static int on_message(void *user, uint64_t offset, uint32_t request_id, const char *name)
{
    (void)offset;
    (void)request_id;
    int *n = user;
    (*n)++;
    assert_non_null(name);
    return 0;
}

static penlink_file_header pen(const char *serial, int key)
{
    penlink_file_header h = PENLINK_FILE_HEADER_INIT;
    snprintf(h.serial, sizeof h.serial, "%s", serial);
    snprintf(h.model, sizeof h.model, "penlink MN-1");
    h.has_device_key = key != 0;
    memset(h.device_key, key, sizeof h.device_key);
    return h;
}

static size_t put_header(uint8_t *buf, size_t at, const penlink_file_header *h)
{
    size_t n = 0;
    assert_int_equal(penlink_file_header_encode(h, buf + at, PENLINK_FILE_HEADER_MAX, &n),
                     PENLINK_OK);
    assert_true(n > 16 && n <= PENLINK_FILE_HEADER_MAX);
    return at + n;
}

static size_t put_hello(uint8_t *buf, size_t at)
{
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__Hello hello = PENLINK__V1__HELLO__INIT;
    env.has_request_id = 1;
    env.request_id = 1;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
    env.hello = &hello;
    long n = pl_envelope_frame(&env, buf + at, 256);
    assert_true(n > 0);
    return at + (size_t)n;
}

/* Decodes @p buf in one feed; the status, and the header in *@p h. */
static int decode(const uint8_t *buf, size_t len, int *have, penlink_file_header *h, int *msgs)
{
    penlink_ctx *ctx = NULL;
    penlink_decoder *d = NULL;
    int n = 0;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_decoder_new(ctx, on_record, on_message, &n, &d), PENLINK_OK);
    *have = -1;
    assert_int_equal(penlink_decoder_header(d, h, have), PENLINK_OK);
    assert_int_equal(*have, 0); /* nothing fed yet */
    assert_int_equal(penlink_decoder_header(d, h, NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_decoder_header(NULL, h, have), PENLINK_ERR_INVALID_ARG);
    int st = penlink_decoder_feed(d, buf, len);
    if (st == PENLINK_OK)
        st = penlink_decoder_finish(d);
    assert_int_equal(penlink_decoder_header(d, h, have), PENLINK_OK);
    if (msgs)
        *msgs = n;
    penlink_decoder_free(d);
    penlink_ctx_free(ctx);
    return st;
}

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t buf[1024];
    penlink_file_header a = pen("PEN-A001", 0x5a), got = PENLINK_FILE_HEADER_INIT;
    size_t n = put_header(buf, 0, &a);
    assert_memory_equal(buf, "PNLK", 4); /* an ordinary frame */
    int have = 0, msgs = 0;
    assert_int_equal(decode(buf, n, &have, &got, &msgs), PENLINK_OK);
    assert_int_equal(have, 1);
    assert_int_equal(msgs, 1); /* a reader of messages sees one, device_info */
    assert_string_equal(got.serial, "PEN-A001");
    assert_string_equal(got.model, "penlink MN-1");
    assert_int_equal(got.has_device_key, 1);
    assert_memory_equal(got.device_key, a.device_key, sizeof a.device_key);
    /* without a key */
    penlink_file_header b = pen("PEN-B002", 0);
    n = put_header(buf, 0, &b);
    assert_int_equal(decode(buf, n, &have, &got, NULL), PENLINK_OK);
    assert_int_equal(have, 1);
    assert_int_equal(got.has_device_key, 0);
    /* any bytes in a serial travel as they are; showing them is the reader's job */
    penlink_file_header c = pen("P\x1b[2J\xff", 1);
    n = put_header(buf, 0, &c);
    assert_int_equal(decode(buf, n, &have, &got, NULL), PENLINK_OK);
    assert_string_equal(got.serial, "P\x1b[2J\xff");
}

static void test_encode_refuses(void **state)
{
    (void)state;
    uint8_t buf[PENLINK_FILE_HEADER_MAX];
    size_t n;
    penlink_file_header h = pen("", 1);
    assert_int_equal(penlink_file_header_encode(&h, buf, sizeof buf, &n), PENLINK_ERR_INVALID_ARG);
    h = pen("PEN-A001", 1);
    assert_int_equal(penlink_file_header_encode(&h, buf, 20, &n), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_file_header_encode(NULL, buf, sizeof buf, &n),
                     PENLINK_ERR_INVALID_ARG);
    memset(h.serial, 'x', sizeof h.serial); /* not terminated */
    assert_int_equal(penlink_file_header_encode(&h, buf, sizeof buf, &n), PENLINK_ERR_INVALID_ARG);
    /* the longest identity fits the documented bound */
    h = pen("12345678901234567890123456789012", 1);
    memset(h.model, 'm', sizeof h.model - 1);
    assert_int_equal(penlink_file_header_encode(&h, buf, sizeof buf, &n), PENLINK_OK);
    /* a header without its size (no PENLINK_FILE_HEADER_INIT) */
    h.size = 0;
    assert_int_equal(penlink_file_header_encode(&h, buf, sizeof buf, &n), PENLINK_ERR_INVALID_ARG);
}

/* penlink_decoder_header() fills only a header that carries its size. */
static void test_header_out_needs_size(void **state)
{
    (void)state;
    uint8_t buf[PENLINK_FILE_HEADER_MAX];
    penlink_file_header a = pen("PEN-A001", 1);
    size_t len = put_header(buf, 0, &a);
    penlink_ctx *ctx = NULL;
    penlink_decoder *d = NULL;
    int n = 0, have = -1;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_decoder_new(ctx, on_record, on_message, &n, &d), PENLINK_OK);
    assert_int_equal(penlink_decoder_feed(d, buf, len), PENLINK_OK);
    penlink_file_header bare;
    memset(&bare, 0, sizeof bare);
    assert_int_equal(penlink_decoder_header(d, &bare, &have), PENLINK_ERR_INVALID_ARG);
    assert_string_equal(bare.serial, "");
    assert_int_equal(penlink_decoder_header(d, NULL, &have), PENLINK_OK); /* NULL: only have */
    assert_int_equal(have, 1);
    penlink_file_header got = PENLINK_FILE_HEADER_INIT;
    assert_int_equal(penlink_decoder_header(d, &got, &have), PENLINK_OK);
    assert_string_equal(got.serial, "PEN-A001");
    assert_int_equal(got.size, sizeof got);
    penlink_decoder_free(d);
    penlink_ctx_free(ctx);
}

static void test_only_first_frame_names(void **state)
{
    (void)state;
    uint8_t buf[1024];
    penlink_file_header a = pen("PEN-A001", 1), got = PENLINK_FILE_HEADER_INIT;
    size_t n = put_hello(buf, 0);
    n = put_header(buf, n, &a);
    int have = 1;
    assert_int_equal(decode(buf, n, &have, &got, NULL), PENLINK_OK);
    assert_int_equal(have, 0); /* a capture: the header is just a message */
}

static void test_second_header(void **state)
{
    (void)state;
    uint8_t buf[1024];
    penlink_file_header a = pen("PEN-A001", 1), got = PENLINK_FILE_HEADER_INIT;
    int have = 0;
    /* the same pen again (one pen's files joined): fine */
    size_t n = put_header(buf, 0, &a);
    n = put_hello(buf, n);
    n = put_header(buf, n, &a);
    assert_int_equal(decode(buf, n, &have, &got, NULL), PENLINK_OK);
    assert_int_equal(have, 1);
    /* another serial */
    penlink_file_header b = pen("PEN-B002", 1);
    n = put_header(buf, 0, &a);
    n = put_header(buf, n, &b);
    assert_int_equal(decode(buf, n, &have, &got, NULL), PENLINK_ERR_INTEGRITY);
    assert_string_equal(got.serial, "PEN-A001");
    /* the same serial, another key; and a key that went away */
    penlink_file_header a2 = pen("PEN-A001", 2), a0 = pen("PEN-A001", 0);
    n = put_header(buf, 0, &a);
    n = put_header(buf, n, &a2);
    assert_int_equal(decode(buf, n, &have, &got, NULL), PENLINK_ERR_INTEGRITY);
    n = put_header(buf, 0, &a);
    n = put_header(buf, n, &a0);
    assert_int_equal(decode(buf, n, &have, &got, NULL), PENLINK_ERR_INTEGRITY);
}

/* penlink_decoder_stats_get(): the totals, and the size contract of a sized
 * struct (too small is refused; a newer caller's larger struct gets the
 * fields this library knows and keeps the rest as the caller set it). */
static void test_stats(void **state)
{
    (void)state;
    uint8_t buf[1024];
    penlink_file_header h = pen("PEN-STATS", 0);
    size_t len = put_hello(buf, put_header(buf, 0, &h));
    penlink_ctx *ctx = NULL;
    penlink_decoder *d = NULL;
    int n = 0;
    assert_int_equal(penlink_ctx_new(&ctx), PENLINK_OK);
    assert_int_equal(penlink_decoder_new(ctx, on_record, on_message, &n, &d), PENLINK_OK);
    assert_int_equal(penlink_decoder_feed(d, buf, len), PENLINK_OK);
    assert_int_equal(penlink_decoder_finish(d), PENLINK_OK);

    penlink_decoder_stats st = PENLINK_DECODER_STATS_INIT;
    assert_int_equal(penlink_decoder_stats_get(d, &st), PENLINK_OK);
    assert_int_equal(st.size, sizeof st);
    assert_int_equal(st.good_bytes, len); /* two whole frames */
    assert_int_equal(st.records, 0);
    assert_int_equal(st.chunks, 0);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(st.problems, 0);

    /* a size of 0 (no init) or smaller than the first layout: refused, untouched */
    penlink_decoder_stats bad;
    memset(&bad, 0x5a, sizeof bad);
    bad.size = 0;
    assert_int_equal(penlink_decoder_stats_get(d, &bad), PENLINK_ERR_INVALID_ARG);
    bad.size = sizeof bad - 1;
    assert_int_equal(penlink_decoder_stats_get(d, &bad), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(bad.good_bytes, 0x5a5a5a5a5a5a5a5aull);
    assert_int_equal(penlink_decoder_stats_get(NULL, &st), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_decoder_stats_get(d, NULL), PENLINK_ERR_INVALID_ARG);

    /* a caller built against a later header, whose struct has a field more */
    struct {
        penlink_decoder_stats now;
        uint64_t later;
    } big;
    memset(&big, 0, sizeof big);
    big.now.size = sizeof big;
    big.later = 42;
    assert_int_equal(penlink_decoder_stats_get(d, &big.now), PENLINK_OK);
    assert_int_equal(big.now.size, sizeof big);
    assert_int_equal(big.now.good_bytes, len);
    assert_int_equal(big.later, 42);

    penlink_decoder_free(d);
    penlink_ctx_free(ctx);
}

static void test_malformed(void **state)
{
    (void)state;
    uint8_t buf[1024];
    char serial[40];
    uint8_t key[31] = { 0 };
    Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
    Penlink__V1__DeviceInfo di = PENLINK__V1__DEVICE_INFO__INIT;
    env.has_request_id = 1;
    env.request_id = 0;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO;
    env.device_info = &di;
    penlink_file_header got = PENLINK_FILE_HEADER_INIT;
    int have = 1;
    /* no serial */
    long n = pl_envelope_frame(&env, buf, sizeof buf);
    assert_int_equal(decode(buf, (size_t)n, &have, &got, NULL), PENLINK_ERR_PROTOCOL);
    assert_int_equal(have, 0);
    /* a serial over 32 bytes */
    memset(serial, 'x', 33);
    serial[33] = '\0';
    di.serial = serial;
    n = pl_envelope_frame(&env, buf, sizeof buf);
    assert_int_equal(decode(buf, (size_t)n, &have, &got, NULL), PENLINK_ERR_PROTOCOL);
    /* a key that is not 32 bytes */
    serial[8] = '\0';
    di.has_device_key = 1;
    di.device_key.data = key;
    di.device_key.len = sizeof key;
    n = pl_envelope_frame(&env, buf, sizeof buf);
    assert_int_equal(decode(buf, (size_t)n, &have, &got, NULL), PENLINK_ERR_PROTOCOL);
    /* a DeviceInfo that answers a request is no header */
    di.has_device_key = 0;
    env.request_id = 7;
    n = pl_envelope_frame(&env, buf, sizeof buf);
    assert_int_equal(decode(buf, (size_t)n, &have, &got, NULL), PENLINK_OK);
    assert_int_equal(have, 0);
}

static const char *doc_path;

/* docs/protocol.md's vector "file-header-frame" is what the code writes. */
static void test_doc_vector(void **state)
{
    (void)state;
    penlink_file_header h = pen("PEN-000123", 0);
    h.has_device_key = 1;
    for (size_t i = 0; i < sizeof h.device_key; i++)
        h.device_key[i] = (uint8_t)i;
    uint8_t want[PENLINK_FILE_HEADER_MAX];
    size_t n = 0;
    assert_int_equal(penlink_file_header_encode(&h, want, sizeof want, &n), PENLINK_OK);
    FILE *f = fopen(doc_path, "r");
    assert_non_null(f);
    static char doc[1 << 20];
    size_t len = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[len] = '\0';
    const char *p = strstr(doc, "<!-- vector: file-header-frame -->");
    p = p ? strstr(p, "```hex") : NULL;
    const char *end = p ? strstr(p + 6, "```") : NULL;
    uint8_t got[PENLINK_FILE_HEADER_MAX];
    size_t m = 0;
    for (p = p ? p + 6 : NULL; p && p < end && m < sizeof got;) {
        unsigned v;
        int used;
        if (sscanf(p, " %2x%n", &v, &used) != 1)
            break;
        got[m++] = (uint8_t)v;
        p += used;
    }
    if (m != n || memcmp(got, want, n) != 0) {
        print_message("docs/protocol.md's file-header-frame should read:\n");
        for (size_t i = 0; i < n; i++)
            print_message("%02x%s", want[i], i % 16 == 15 || i + 1 == n ? "\n" : " ");
        fail();
    }
}

int main(int argc, char **argv)
{
    doc_path = argc > 1 ? argv[1] : "docs/protocol.md";
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_vector),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_header_out_needs_size),
        cmocka_unit_test(test_only_first_frame_names),
        cmocka_unit_test(test_second_header),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
