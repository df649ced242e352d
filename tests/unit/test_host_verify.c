/*
 * penlink_archive_verify and the walk archive push copies by (host/src/verify.c),
 * over the fake archive backend: logs built here chunk by chunk (real chunks,
 * real hash-chain links, heads signed with a fixed key), then altered one way
 * at a time; every verdict, where it points, the words it uses, what is
 * stored, and every backend failure passed on.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "archive.h"
#include "fake_archive.h"
#include "pl/auth.h"
#include "pl/chunk.h"

#define SERIAL "PEN-000123"
#define DEV 7
#define T0_MS 1767225600000LL

typedef struct fixture {
    penlink_ctx *ctx;
    fake_archive fa;
    penlink_archive ar;
    penlink_key key, key2;
    uint8_t link[PL_LINK_BYTES]; /* the link of the last chunk added */
    /* the reports the callback got */
    penlink_verify_report got[4];
    int n_got;
    int stop_after; /* the callback returns non-zero after this many (0: never) */
} fixture;

static void seed_key(penlink_key *k, uint8_t fill)
{
    uint8_t seed[crypto_sign_SEEDBYTES];
    memset(seed, fill, sizeof seed);
    k->size = sizeof *k;
    assert_int_equal(crypto_sign_seed_keypair(k->public_key, k->secret, seed), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_true(sodium_init() >= 0);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    fake_archive_init(&f->fa, f->ctx);
    f->ar.ctx = f->ctx;
    f->ar.b = &f->fa.base;
    seed_key(&f->key, 0x11);
    seed_key(&f->key2, 0x22);
    uint8_t g[PL_AUTH_GENESIS_MAX];
    size_t n = pl_auth_genesis_bytes(g, SERIAL);
    crypto_hash_sha256(f->link, g, n);
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

static penlink_record rec_at(uint64_t seq)
{
    penlink_record r;
    memset(&r, 0, sizeof r);
    r.seq = seq;
    r.time_ms = T0_MS + (int64_t)seq * 60000;
    r.kind = PL_REC_DEPTH_CHANGED;
    r.fields = PL_F_DEPTH_UM;
    r.depth_um = 500 + (uint32_t)seq;
    return r;
}

/* Records first..first+n-1 as a chunk chained after f->link (with their rows
 * when @p rows), signed or not; f->link becomes its link. */
static fake_chunk *add_chunk(fixture *f, uint64_t first, uint32_t n, int signed_, int rows)
{
    pl_record recs[16];
    assert_true(n <= 16);
    for (uint32_t i = 0; i < n; i++) {
        penlink_record r = rec_at(first + i);
        memcpy(&recs[i], &r, sizeof recs[i]);
        if (rows)
            assert_non_null(fake_archive_record(&f->fa, DEV, &r));
    }
    static uint8_t arena[PL_CHUNK_ENC_ARENA];
    pl_chunk_enc enc;
    assert_int_equal(pl_chunk_enc_init(&enc, arena, sizeof arena), PL_OK);
    uint8_t data[FAKE_CHUNK_BYTES];
    pl_chunk_info info;
    assert_int_equal(
        pl_chunk_encode(&enc, pl_record_array_source, recs, n, data, sizeof data, &info), PL_OK);
    pl_chunk_enc_fini(&enc);
    uint8_t pre[PL_AUTH_LINK_PREFIX], link[PL_LINK_BYTES];
    pl_auth_link_prefix(pre, f->link, first, n, info.raw_size, info.data_size);
    crypto_hash_sha256_state h;
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, pre, sizeof pre);
    crypto_hash_sha256_update(&h, data, info.data_size);
    crypto_hash_sha256_final(&h, link);
    fake_chunk *c = fake_archive_chunk(&f->fa, DEV, first, n, info.raw_size, data, info.data_size,
                                       signed_ ? f->link : NULL, signed_ ? link : NULL);
    assert_non_null(c);
    memcpy(f->link, link, sizeof link);
    return c;
}

/* A head through @p next_seq on the last chunk's link, signed with @p key. */
static void add_head(fixture *f, uint64_t next_seq, const penlink_key *key)
{
    uint8_t msg[PL_AUTH_HEAD_MAX], sig[PL_SIG_BYTES];
    size_t n = pl_auth_head_bytes(msg, SERIAL, next_seq, f->link);
    assert_true(n > 0);
    assert_int_equal(penlink_sign(key, msg, n, sig), 0);
    assert_non_null(fake_archive_head(&f->fa, DEV, next_seq, f->link, sig));
}

/* A signing pen with records 0..9 in two chunks under one head. */
static fake_pen *good_log(fixture *f)
{
    fake_pen *p = fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key);
    return p;
}

static int on_report(void *user, const penlink_verify_report *r)
{
    fixture *f = user;
    if (f->n_got < 4)
        f->got[f->n_got] = *r;
    f->n_got++;
    return f->stop_after && f->n_got >= f->stop_after;
}

/* The one pen's report, after a verify that must succeed. */
static const penlink_verify_report *verify_one(fixture *f)
{
    assert_int_equal(penlink_archive_verify(&f->ar, NULL, on_report, f), PENLINK_OK);
    assert_int_equal(f->n_got, 1);
    return &f->got[0];
}

static void assert_broken(const penlink_verify_report *r, uint64_t where, const char *words)
{
    assert_int_equal(r->state, PENLINK_VERIFY_BROKEN);
    assert_int_equal(r->where_seq, where);
    if (!strstr(r->detail, words))
        fail_msg("detail \"%s\" does not say \"%s\"", r->detail, words);
}

static void test_good_log_verifies_and_is_stored(void **state)
{
    fixture *f = *state;
    good_log(f);
    const penlink_verify_report *r = verify_one(f);
    assert_int_equal(r->state, PENLINK_VERIFY_OK);
    assert_string_equal(r->serial, SERIAL);
    assert_int_equal(r->chunks, 2);
    assert_int_equal(r->records, 10);
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->signed_through, 10);
    /* stored once, in a transaction of its own */
    assert_int_equal(f->fa.begins, 1);
    assert_int_equal(f->fa.logs, 1);
    assert_int_equal(f->fa.commits, 1);
    assert_int_equal(f->fa.rollbacks, 0);
    assert_int_equal(f->fa.logged.state, PENLINK_VERIFY_OK);
    penlink_verification v = PENLINK_VERIFICATION_INIT;
    assert_int_equal(penlink_archive_verification_get(&f->ar, SERIAL, &v), PENLINK_OK);
    assert_true(v.have);
}

static void test_edited_record(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.records[7].r.depth_um = 3000;
    assert_broken(verify_one(f), 7, "differs from the record in its signed chunk");
}

static void test_deleted_record(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.records[3].device = DEV + 1; /* gone from this pen */
    assert_broken(verify_one(f), 3, "record 3 is missing from the records table");
}

static void test_deleted_last_record_of_a_chunk(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.records[9].device = DEV + 1;
    assert_broken(verify_one(f), 9, "record 9 is missing");
}

static void test_damaged_row(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.records[4].damage = "a body that is not a record";
    assert_broken(verify_one(f), 4, "cannot be a record: a body that is not a record");
}

static void test_row_outside_every_chunk(void **state)
{
    fixture *f = *state;
    good_log(f);
    penlink_record extra = rec_at(40);
    fake_archive_record(&f->fa, DEV, &extra);
    assert_broken(verify_one(f), 10, "1 record rows lie outside every signed chunk");
}

static void test_edited_chunk_bytes(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.chunks[1].data[3] ^= 0x40;
    assert_broken(verify_one(f), 5, "do not hash to its link");
}

static void test_chunk_without_links(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.chunks[1].row.link = NULL;
    assert_broken(verify_one(f), 5, "has no hash-chain link, but the pen signs its log");
}

static void test_damaged_chunk_row(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.chunks[0].row.damage = "a negative first seq";
    f->fa.chunks[0].row.stored_seq = -5;
    assert_broken(verify_one(f), (uint64_t)-5, "first seq stored as -5): a negative first seq");
}

static void test_chunk_of_another_chain(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    memset(f->link, 0xAB, sizeof f->link); /* not this pen's genesis */
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    assert_broken(verify_one(f), 0, "does not start this pen's chain");
}

static void test_chunk_not_following(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    memset(f->link, 0x33, sizeof f->link); /* chained after another chunk than the one before */
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key);
    assert_broken(verify_one(f), 5, "does not follow the chunk before it in the hash chain");
}

static void test_hole_without_gap(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    add_chunk(f, 5, 5, 1, 0);
    f->fa.n_chunks--; /* chunk 5..9 removed (no rows either) */
    add_chunk(f, 10, 5, 1, 1);
    add_head(f, 15, &f->key);
    assert_broken(verify_one(f), 5, "records 5..9 and their chunks are missing, and no pull");
}

/* The same hole where a pull recorded the pen's gap: the chain resumes (an anchor). */
static void test_hole_explained_by_gap(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    add_chunk(f, 5, 5, 1, 0);
    f->fa.n_chunks--;
    add_chunk(f, 10, 5, 1, 1);
    add_head(f, 15, &f->key);
    fake_archive_alarm(&f->fa, SERIAL, "conflict", 5, 5); /* not a gap: ignored */
    fake_archive_alarm(&f->fa, SERIAL, "gap", 5, 5);
    const penlink_verify_report *r = verify_one(f);
    assert_int_equal(r->state, PENLINK_VERIFY_OK);
    assert_non_null(strstr(r->notes, "chain anchored at seq 10"));
    assert_int_equal(r->records, 10);
    assert_int_equal(r->heads, 2);
}

static void test_start_missing(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 0);
    f->fa.n_chunks--;
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key);
    assert_broken(verify_one(f), 0, "records 0..4 and their chunks are missing from the start");
}

static void test_no_head_covers_the_chain(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    add_chunk(f, 5, 5, 1, 1); /* appended, no head */
    assert_broken(verify_one(f), 5, "records 5..9 are covered by no signed head");
}

static void test_forged_head(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key2); /* signed by a key the pen never had */
    assert_broken(verify_one(f), 5, "does not verify with the pen's pinned key");
}

static void test_head_naming_no_chunk(void **state)
{
    fixture *f = *state;
    good_log(f);
    memset(f->link, 0x5A, sizeof f->link);
    add_head(f, 20, &f->key);
    assert_broken(verify_one(f), 20, "names a link no chunk in the archive has");
}

/* A head over records pulled into another archive before this one's first pull. */
static void test_head_before_first_pull(void **state)
{
    fixture *f = *state;
    fake_pen *p = fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    p->first_from = 5;
    add_chunk(f, 0, 5, 1, 0);
    add_head(f, 5, &f->key);
    f->fa.n_chunks--; /* that chunk is in the other archive */
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key);
    const penlink_verify_report *r = verify_one(f);
    assert_int_equal(r->state, PENLINK_VERIFY_OK);
    assert_non_null(strstr(r->notes, "a head through seq 5 before the archive's first record"));
    assert_int_equal(r->heads, 1);
}

static penlink_key_replacement replacement(const uint8_t *old_key, const uint8_t *new_key,
                                           uint64_t from_seq, uint64_t heads_before)
{
    penlink_key_replacement r;
    memset(&r, 0, sizeof r);
    snprintf(r.serial, sizeof r.serial, "%s", SERIAL);
    memcpy(r.old_key, old_key, 32);
    memcpy(r.new_key, new_key, 32);
    r.from_seq = from_seq;
    r.heads_before = heads_before;
    return r;
}

/* A repaired pen: heads kept after the recorded replacement verify with its new key. */
static void test_key_replaced(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key2);
    penlink_key_replacement r = replacement(f->key.public_key, f->key2.public_key, 5, 1);
    f->fa.repl = &r;
    f->fa.n_repl = 1;
    const penlink_verify_report *v = verify_one(f);
    assert_int_equal(v->state, PENLINK_VERIFY_OK);
    assert_non_null(strstr(v->notes, "device key replaced at seq 5"));
    assert_int_equal(v->heads, 2);
}

/* Without the replacement record the second head is the pinned key's forgery. */
static void test_key_replaced_unrecorded(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key2);
    assert_broken(verify_one(f), 10, "does not verify with the pen's pinned key");
}

/* A forged replacement from seq 0: the whole log re-signed with another key, the pinned key
 * left as it was. No head ever verified with the key it claims to replace. */
static void test_replacement_before_any_head(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key2);
    penlink_key_replacement r = replacement(f->key.public_key, f->key2.public_key, 0, 0);
    f->fa.repl = &r;
    f->fa.n_repl = 1;
    assert_broken(verify_one(f), 0,
                  "follows no signed head that verified with the key it replaces");
}

/* A replacement placed before the records of the only head of the pinned key. */
static void test_replacement_before_first_head(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key2);
    penlink_key_replacement r = replacement(f->key.public_key, f->key2.public_key, 3, 1);
    f->fa.repl = &r;
    f->fa.n_repl = 1;
    assert_broken(verify_one(f), 3, "recorded at seq 3 (1 heads before it");
}

/* Replaced twice between two pulls: the second follows the pinned key's head too. */
static void test_key_replaced_twice(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, f->key.public_key);
    add_chunk(f, 0, 5, 1, 1);
    add_head(f, 5, &f->key);
    add_chunk(f, 5, 5, 1, 1);
    add_head(f, 10, &f->key);
    penlink_key_replacement r[2] = { replacement(f->key.public_key, f->key2.public_key, 10, 2),
                                     replacement(f->key2.public_key, f->key.public_key, 10, 2) };
    f->fa.repl = r;
    f->fa.n_repl = 2;
    const penlink_verify_report *v = verify_one(f);
    assert_int_equal(v->state, PENLINK_VERIFY_OK);
    assert_non_null(strstr(v->notes, "device key replaced at seq 10"));
}

static void test_replacement_edited(void **state)
{
    fixture *f = *state;
    good_log(f);
    /* names key2 as the key replaced, which the pen never had in force */
    penlink_key_replacement r = replacement(f->key2.public_key, f->key.public_key, 10, 1);
    f->fa.repl = &r;
    f->fa.n_repl = 1;
    assert_broken(verify_one(f), 10, "names an old key that was not the pen's key in force");
}

static void test_too_many_replacements(void **state)
{
    fixture *f = *state;
    good_log(f);
    enum { N = 65 };
    penlink_key_replacement *r = calloc(N, sizeof *r);
    assert_non_null(r);
    for (int i = 0; i < N; i++)
        r[i] = replacement(f->key.public_key, f->key.public_key, 100 + (uint64_t)i, 5);
    f->fa.repl = r;
    f->fa.n_repl = N;
    assert_broken(verify_one(f), 164, "more than 64 key replacements");
    free(r);
}

static void test_unsigned_pen(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, NULL);
    add_chunk(f, 0, 5, 0, 1);
    const penlink_verify_report *r = verify_one(f);
    assert_int_equal(r->state, PENLINK_VERIFY_UNSIGNED);
    assert_non_null(strstr(r->notes, "does not sign its log"));
    assert_int_equal(f->fa.logged.state, PENLINK_VERIFY_UNSIGNED);
}

/* No pinned key, yet links and heads: the key was removed from the archive. */
static void test_pinned_key_removed(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.pens[0].has_key = 0;
    assert_broken(verify_one(f), 0, "2 of its chunks carry hash-chain links");
    assert_non_null(strstr(f->got[0].detail, "1 signed heads"));
}

static void test_seq_outliers(void **state)
{
    fixture *f = *state;
    fake_pen *p = good_log(f);
    p->outliers = 2;
    p->outlier_lowest = -9;
    const penlink_verify_report *r = verify_one(f);
    assert_broken(r, (uint64_t)-9, "2 record rows hold a seq at or above 2^63");
    assert_int_equal(r->chunks, 0); /* nothing else looked at */
}

/* The pulls recorded records the archive no longer has. */
static void test_log_cut_short(void **state)
{
    fixture *f = *state;
    fake_pen *p = good_log(f);
    p->pulled_to = 15;
    p->have_pulled = 1;
    assert_broken(verify_one(f), 10, "records 10..14 were removed");
    assert_non_null(strstr(f->got[0].detail, "end before them"));
}

static void test_log_cut_short_unsigned_all_gone(void **state)
{
    fixture *f = *state;
    fake_pen *p = fake_archive_pen(&f->fa, DEV, SERIAL, NULL);
    p->pulled_to = 3;
    p->have_pulled = 1;
    assert_broken(verify_one(f), 0, "are all gone");
}

static void test_tail_dropped_by_the_pen(void **state)
{
    fixture *f = *state;
    fake_pen *p = good_log(f);
    p->pulled_to = 15;
    p->have_pulled = 1;
    fake_archive_alarm(&f->fa, SERIAL, "gap", 10, 5);
    assert_int_equal(verify_one(f)->state, PENLINK_VERIFY_OK);
}

/* Every read the verify makes: its failure is the verify's status, no
 * verdict reaches the caller and none is stored. */
static void test_backend_failures_passed_on(void **state)
{
    static const char *ops[] = { "pens",      "seq_outliers", "alarms",  "key_replacements",
                                 "heads",     "chunks",       "records", "record_count",
                                 "pulled_to", "next_seq",     "begin",   "verification_log",
                                 "commit" };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        fixture *f = *state;
        fake_archive_init(&f->fa, f->ctx);
        memset(f->link, 0, sizeof f->link);
        uint8_t g[PL_AUTH_GENESIS_MAX];
        crypto_hash_sha256(f->link, g, pl_auth_genesis_bytes(g, SERIAL));
        f->n_got = 0;
        fake_pen *p = good_log(f);
        p->pulled_to = 10;
        p->have_pulled = 1;
        f->fa.fail_op = ops[i];
        f->fa.fail_status = PENLINK_ERR_IO;
        int rc = penlink_archive_verify(&f->ar, NULL, on_report, f);
        if (rc != PENLINK_ERR_IO)
            fail_msg("%s failing: verify returned %d", ops[i], rc);
        assert_int_equal(f->n_got, 0);
        assert_int_equal(f->fa.commits, 0);
    }
}

static void test_store_failure_rolls_back(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.fail_op = "verification_log";
    f->fa.fail_status = PENLINK_ERR_IO;
    assert_int_equal(penlink_archive_verify(&f->ar, NULL, on_report, f), PENLINK_ERR_IO);
    assert_int_equal(f->fa.begins, 1);
    assert_int_equal(f->fa.rollbacks, 1);
    assert_int_equal(f->fa.commits, 0);
}

/* Opened read-only, or not writable from here: the verdict goes to the caller only. */
static void test_readonly_stores_nothing(void **state)
{
    fixture *f = *state;
    good_log(f);
    f->fa.base.readonly = 1;
    assert_int_equal(verify_one(f)->state, PENLINK_VERIFY_OK);
    f->fa.base.readonly = 0;
    f->fa.writable = 0;
    f->n_got = 0;
    assert_int_equal(verify_one(f)->state, PENLINK_VERIFY_OK);
    assert_int_equal(f->fa.begins, 0);
    assert_int_equal(f->fa.logs, 0);
    /* ... and can be stored elsewhere */
    f->fa.writable = 1;
    assert_int_equal(penlink_archive_verification_save(&f->ar, &f->got[0]), PENLINK_OK);
    assert_int_equal(f->fa.logs, 1);
    assert_int_equal(f->fa.commits, 1);
}

/* The callback stops the verify: CANCELLED, and the pens after are not verified. */
static void test_callback_stops(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, NULL);
    fake_archive_pen(&f->fa, DEV + 1, "PEN-000124", NULL);
    f->stop_after = 1;
    assert_int_equal(penlink_archive_verify(&f->ar, NULL, on_report, f), PENLINK_ERR_CANCELLED);
    assert_int_equal(f->n_got, 1);
    assert_string_equal(f->got[0].serial, SERIAL);
    assert_int_equal(f->fa.logs, 1); /* the first pen's verdict was stored */
}

static void test_invalid_arguments(void **state)
{
    fixture *f = *state;
    penlink_verification v = PENLINK_VERIFICATION_INIT;
    assert_int_equal(penlink_archive_verify(NULL, NULL, on_report, f), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_verification_save(NULL, &f->got[0]), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_verification_save(&f->ar, NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_verification_get(&f->ar, NULL, &v), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_verification_get(&f->ar, SERIAL, NULL),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_verification_get(NULL, SERIAL, &v), PENLINK_ERR_INVALID_ARG);
}

/* The walk's hooks (archive push): each chunk with its new records, each
 * verified head with the key it verified with; a hook's status stops it. */
typedef struct hooked {
    int chunks, heads, fail_at_chunk;
    uint32_t records;
    uint8_t head_key[32];
} hooked;

static int on_walk_chunk(void *user, const archive_chunk_row *c, const penlink_record *recs,
                         uint32_t n, int copy)
{
    hooked *h = user;
    assert_int_equal(copy, 0);
    assert_int_equal(recs[0].seq, c->first_seq);
    h->records += n;
    return ++h->chunks == h->fail_at_chunk ? PENLINK_ERR_IO : PENLINK_OK;
}

static int on_walk_head(void *user, const penlink_head *ph)
{
    hooked *h = user;
    memcpy(h->head_key, ph->device_key, 32);
    h->heads++;
    return PENLINK_OK;
}

static void test_walk_hooks(void **state)
{
    fixture *f = *state;
    good_log(f);
    archive_walker *w = NULL;
    assert_int_equal(archive_walker_new(&w), PENLINK_OK);
    hooked h = { 0 };
    archive_walk_hooks hooks = { on_walk_chunk, on_walk_head, &h };
    penlink_verify_report r;
    assert_int_equal(
        archive_walk_pen(w, &f->fa.base, DEV, SERIAL, f->key.public_key, 0, &hooks, &r),
        PENLINK_OK);
    assert_int_equal(r.state, PENLINK_VERIFY_OK);
    assert_int_equal(h.chunks, 2);
    assert_int_equal(h.records, 10);
    assert_int_equal(h.heads, 1);
    assert_memory_equal(h.head_key, f->key.public_key, 32);

    hooked stop = { .fail_at_chunk = 1 };
    hooks.user = &stop;
    assert_int_equal(
        archive_walk_pen(w, &f->fa.base, DEV, SERIAL, f->key.public_key, 0, &hooks, &r),
        PENLINK_ERR_IO);
    assert_int_equal(stop.chunks, 1);
    assert_int_equal(stop.heads, 0);
    archive_walker_free(w);
    archive_walker_free(NULL);
}

/* A pen that does not sign, walked: records still checked against chunks. */
static void test_walk_unsigned(void **state)
{
    fixture *f = *state;
    fake_archive_pen(&f->fa, DEV, SERIAL, NULL);
    add_chunk(f, 0, 5, 0, 1);
    penlink_record extra = rec_at(7);
    fake_archive_record(&f->fa, DEV, &extra);
    archive_walker *w = NULL;
    assert_int_equal(archive_walker_new(&w), PENLINK_OK);
    penlink_verify_report r;
    assert_int_equal(archive_walk_pen(w, &f->fa.base, DEV, SERIAL, NULL, 0, NULL, &r), PENLINK_OK);
    assert_broken(&r, 5, "1 record rows lie outside every chunk");
    f->fa.n_records--;
    assert_int_equal(archive_walk_pen(w, &f->fa.base, DEV, SERIAL, NULL, 0, NULL, &r), PENLINK_OK);
    assert_int_equal(r.state, PENLINK_VERIFY_UNSIGNED);
    assert_int_equal(r.records, 5);
    archive_walker_free(w);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_good_log_verifies_and_is_stored),
        T(test_edited_record),
        T(test_deleted_record),
        T(test_deleted_last_record_of_a_chunk),
        T(test_damaged_row),
        T(test_row_outside_every_chunk),
        T(test_edited_chunk_bytes),
        T(test_chunk_without_links),
        T(test_damaged_chunk_row),
        T(test_chunk_of_another_chain),
        T(test_chunk_not_following),
        T(test_hole_without_gap),
        T(test_hole_explained_by_gap),
        T(test_start_missing),
        T(test_no_head_covers_the_chain),
        T(test_forged_head),
        T(test_head_naming_no_chunk),
        T(test_head_before_first_pull),
        T(test_key_replaced),
        T(test_key_replaced_unrecorded),
        T(test_replacement_before_any_head),
        T(test_replacement_before_first_head),
        T(test_key_replaced_twice),
        T(test_replacement_edited),
        T(test_too_many_replacements),
        T(test_unsigned_pen),
        T(test_pinned_key_removed),
        T(test_seq_outliers),
        T(test_log_cut_short),
        T(test_log_cut_short_unsigned_all_gone),
        T(test_tail_dropped_by_the_pen),
        T(test_backend_failures_passed_on),
        T(test_store_failure_rolls_back),
        T(test_readonly_stores_nothing),
        T(test_callback_stops),
        T(test_invalid_arguments),
        T(test_walk_hooks),
        T(test_walk_unsigned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
