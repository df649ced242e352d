/* docs/protocol.md's hex vectors equal, byte for byte, what the code produces,
 * and they decode to the values the document states. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pl/chunk.h"
#include "pl/envelope.h"
#include "pl/frame.h"
#include "vectors.h"

static char *doc;

/* Hex bytes of the block tagged "<!-- vector: NAME -->"; -1 when absent. */
static long doc_vector(const char *name, uint8_t *out, size_t cap)
{
    char tag[128];
    snprintf(tag, sizeof tag, "<!-- vector: %s -->", name);
    const char *p = strstr(doc, tag);
    if (!p)
        return -1;
    p = strstr(p, "```hex");
    if (!p)
        return -1;
    p += 6;
    const char *end = strstr(p, "```");
    if (!end)
        return -1;
    size_t n = 0;
    while (p < end) {
        unsigned v;
        int used;
        if (sscanf(p, " %2x%n", &v, &used) != 1)
            break;
        if (n == cap)
            return -1;
        out[n++] = (uint8_t)v;
        p += used;
        while (p < end && (*p == ' ' || *p == '\n'))
            p++;
    }
    return (long)n;
}

static void test_doc_matches_code(void **state)
{
    (void)state;
    uint8_t want[VEC_MAX], got[VEC_MAX];
    for (size_t v = 0; v < n_vectors; v++) {
        size_t n = vectors[v].build(want);
        assert_true(n > 0);
        long m = doc_vector(vectors[v].name, got, sizeof got);
        if (m < 0)
            fail_msg("docs/protocol.md has no vector '%s' (run print_vectors)", vectors[v].name);
        if ((size_t)m != n || memcmp(want, got, n) != 0)
            fail_msg("vector '%s' in docs/protocol.md differs from the code (run print_vectors)",
                     vectors[v].name);
    }
}

/* The documented frames decode to the documented values. */
static void test_doc_vectors_decode(void **state)
{
    (void)state;
    uint8_t buf[VEC_MAX];
    long n = doc_vector("hello-frame", buf, sizeof buf);
    assert_true(n > (long)PL_FRAME_HEADER_SIZE);
    static uint8_t dbuf[PL_FRAME_HEADER_SIZE + 4096];
    pl_frame_decoder d;
    pl_frame fr;
    size_t used;
    pl_frame_decoder_init(&d, dbuf, sizeof dbuf, 4096);
    assert_int_equal(pl_frame_decoder_feed(&d, buf, (size_t)n, &used, &fr), PL_OK);
    pl_envelope *env = pl_envelope_unpack(NULL, fr.payload, fr.len);
    assert_non_null(env);
    assert_int_equal(env->request_id, 1);
    assert_int_equal(env->body_case, PENLINK__V1__ENVELOPE__BODY_HELLO);
    assert_int_equal(env->hello->protocol_major, 1);
    assert_int_equal(env->hello->max_frame_payload, 1048576);
    assert_string_equal(env->hello->client, "penlink/0.1.0");
    pl_envelope_free(NULL, env);

    n = doc_vector("config-frame", buf, sizeof buf);
    pl_frame_decoder_reset(&d);
    assert_int_equal(pl_frame_decoder_feed(&d, buf, (size_t)n, &used, &fr), PL_OK);
    env = pl_envelope_unpack(NULL, fr.payload, fr.len);
    assert_non_null(env);
    assert_int_equal(env->body_case, PENLINK__V1__ENVELOPE__BODY_CONFIG);
    assert_int_equal(env->config->depth_max_um, 2500);
    assert_string_equal(env->config->clinic_id, "CLINIC-0042");
    pl_envelope_free(NULL, env);

    n = doc_vector("chunk-zlib", buf, sizeof buf);
    assert_true(n > 0);
    pl_chunk_dec dec;
    pl_record got[8], want[3];
    uint32_t k = 0;
    vec_chunk_records(want);
    pl_chunk_dec_init(&dec, 16, 4096);
    assert_int_equal(pl_chunk_decode(&dec, buf, (size_t)n, NULL, got, 8, &k), PL_OK);
    assert_int_equal(k, 3);
    for (int i = 0; i < 3; i++)
        assert_true(pl_record_equal(&got[i], &want[i]));
    pl_chunk_dec_fini(&dec);
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "docs/protocol.md";
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "test_vectors: cannot open %s\n", path);
        return 1;
    }
    doc = calloc(1, 1 << 20);
    size_t got = fread(doc, 1, (1 << 20) - 1, f);
    fclose(f);
    (void)got;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_matches_code),
        cmocka_unit_test(test_doc_vectors_decode),
    };
    int rc = cmocka_run_group_tests_name("vectors", tests, NULL, NULL);
    free(doc);
    return rc;
}
