/*
 * The SQLite archive read and opened as hostile input: archives built row by
 * row with SQL (no pen), then opened, verified, audited and scanned through
 * the library. Files that are not ours, or of a newer schema, are refused
 * and left byte for byte as they were; read-only openings never write;
 * killed pulls are marked interrupted only when no one else has the archive
 * open; a full disk fails a transaction exactly; one pen's impossible rows
 * (seqs at or above 2^63) never stop the others.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "archive.h"
#include "pl/chunk.h"

typedef struct fx {
    char dir[64];
    char path[128];
    penlink_ctx *ctx;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/penlink-test-archive-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/a.db", f->dir);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
    penlink_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* ---- building archives with SQL --------------------------------------- */

static void sql(const char *path, const char *text)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, text, NULL, NULL, &err) != SQLITE_OK) {
        fprintf(stderr, "SQL failed: %s\n%s\n", err, text);
        fail();
    }
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* An empty archive of the current schema, as penlink makes it. */
static void make_archive(fx *f)
{
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    penlink_archive_close(ar);
}

static void add_device(const char *path, int id, const char *serial, int with_key)
{
    char q[512];
    snprintf(q, sizeof q,
             "INSERT INTO devices (id, serial, first_seen_ms, last_seen_ms, public_key) VALUES "
             "(%d, '%s', 0, 0, %s)",
             id, serial, with_key ? "zeroblob(32)" : "NULL");
    sql(path, q);
}

/* A record row with the stored seq @p seq (negative: a seq at or above 2^63). */
static void add_record(const char *path, int device, int64_t seq, const penlink_record *r)
{
    uint8_t body[ARCHIVE_BODY_MAX];
    size_t n = archive_body_pack(r, body);
    char hex[2 * ARCHIVE_BODY_MAX + 1], q[512];
    for (size_t i = 0; i < n; i++)
        snprintf(hex + 2 * i, 3, "%02x", body[i]);
    snprintf(q, sizeof q, "INSERT INTO records VALUES (%d, %lld, x'%s', 0)", device, (long long)seq,
             hex);
    sql(path, q);
}

/* Records @p r[0..n) (seqs first_seq on) as a pull leaves them: one unsigned
 * chunk encoded by the pen's codec, and the record rows naming it. The audit
 * reads the chunk; export and verify read the rows. */
static void add_chunk(const char *path, int device, penlink_record *r, uint32_t n)
{
    static uint8_t arena[PL_CHUNK_ENC_ARENA], data[PL_CHUNK_MAX_RAW];
    pl_chunk_enc enc;
    pl_chunk_info info;
    assert_int_equal(pl_chunk_enc_init(&enc, arena, sizeof arena), PL_OK);
    assert_int_equal(
        pl_chunk_encode(&enc, pl_record_array_source, (pl_record *)r, n, data, sizeof data, &info),
        PL_OK);
    pl_chunk_enc_fini(&enc);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO chunks (device_id, received_ms, first_seq, "
                                        "record_count, raw_size, data) VALUES (?1, 0, ?2, ?3, ?4, "
                                        "?5)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_int(st, 1, device);
    sqlite3_bind_int64(st, 2, (int64_t)info.first_seq);
    sqlite3_bind_int64(st, 3, info.record_count);
    sqlite3_bind_int64(st, 4, info.raw_size);
    sqlite3_bind_blob(st, 5, data, (int)info.data_size, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    int64_t chunk = sqlite3_last_insert_rowid(db);
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO records VALUES (?1, ?2, ?3, ?4)", -1, &st, NULL),
        SQLITE_OK);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t body[ARCHIVE_BODY_MAX];
        sqlite3_bind_int(st, 1, device);
        sqlite3_bind_int64(st, 2, (int64_t)r[i].seq);
        sqlite3_bind_blob(st, 3, body, (int)archive_body_pack(&r[i], body), SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, chunk);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static penlink_record rec(uint32_t kind, int64_t time_ms)
{
    penlink_record r;
    memset(&r, 0, sizeof r);
    r.kind = kind;
    r.time_ms = time_ms;
    return r;
}

/* A file's bytes, to compare before and after. */
static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void assert_same_bytes(const char *path, const uint8_t *before, size_t len)
{
    size_t n;
    uint8_t *now = slurp(path, &n);
    assert_int_equal(n, len);
    assert_memory_equal(now, before, len);
    free(now);
}

static int exists(const char *dir, const char *name)
{
    char p[256];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0;
}

/* ---- defect 12.12: verify and audit on hostile values ------------------- */

static int keep_report(void *u, const penlink_verify_report *r)
{
    penlink_verify_report *out = u;
    for (int i = 0; i < 8; i++)
        if (out[i].serial[0] == '\0') {
            out[i] = *r;
            return 0;
        }
    return 1;
}

static const penlink_verify_report *report_of(const penlink_verify_report *all, const char *s)
{
    for (int i = 0; i < 8; i++)
        if (strcmp(all[i].serial, s) == 0)
            return &all[i];
    return NULL;
}

/* A signing pen of which no chunk was ever archived (every pull refused):
 * verify sorted a NULL table of links (UBSan: null pointer passed to qsort). */
static void test_verify_pen_without_chunks(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-NOCHUNK", 1);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    penlink_verify_report got[8];
    memset(got, 0, sizeof got);
    assert_int_equal(penlink_archive_verify(ar, NULL, keep_report, got), PENLINK_OK);
    assert_string_equal(got[0].serial, "PEN-NOCHUNK");
    assert_int_equal(got[0].state, PENLINK_VERIFY_OK);
    assert_int_equal(got[0].chunks, 0);
    penlink_archive_close(ar);
}

typedef struct findings {
    penlink_finding f[16];
    char detail[16][320];
    char serial[16][64];
    int n;
    uint64_t treatments;
} findings;

static int keep_finding(void *u, const penlink_finding *fi)
{
    findings *fs = u;
    if (fs->n < 16) {
        fs->f[fs->n] = *fi;
        snprintf(fs->detail[fs->n], sizeof fs->detail[0], "%s", fi->detail);
        snprintf(fs->serial[fs->n], sizeof fs->serial[0], "%s", fi->serial);
        fs->n++;
    }
    return 0;
}

static int count_treatment(void *u, const penlink_treatment *t)
{
    (void)t;
    ((findings *)u)->treatments++;
    return 0;
}

static const penlink_finding *finding_of(const findings *fs, uint32_t kind, int *at)
{
    for (int i = 0; i < fs->n; i++)
        if (fs->f[i].kind == kind) {
            *at = i;
            return &fs->f[i];
        }
    return NULL;
}

/* A clock_set of -2^63 ms: the audit negated INT64_MIN to print its size. */
static void test_audit_clock_set_int64_min(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-CLOCK", 0);
    penlink_record r[2] = { rec(PENLINK_REC_POWER_ON, 1000), rec(PENLINK_REC_CLOCK_SET, 2000) };
    r[1].seq = 1;
    r[1].fields = PENLINK_F_CLOCK_DELTA_MS;
    r[1].clock_delta_ms = INT64_MIN;
    add_chunk(f->path, 1, r, 2);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    findings fs;
    memset(&fs, 0, sizeof fs);
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_finding = keep_finding,
                            .user = &fs,
                            .usage_by = PENLINK_PERIOD_DAY };
    assert_int_equal(penlink_audit_run(ar, NULL, &cb, NULL), PENLINK_OK);
    int at = 0;
    const penlink_finding *jump = finding_of(&fs, PENLINK_FIND_CLOCK_JUMP, &at);
    assert_non_null(jump);
    assert_true(jump->value == INT64_MIN);
    assert_non_null(strstr(fs.detail[at], "set back by 9223372036854775 s"));
    penlink_archive_close(ar);
}

static int keep_treatment(void *u, const penlink_treatment *t)
{
    *(penlink_treatment *)u = *t;
    return 0;
}

typedef struct usage_rows {
    int n;
    int64_t first, last;
} usage_rows;

static int keep_usage(void *u, const penlink_usage *g)
{
    usage_rows *ur = u;
    if (ur->n++ == 0)
        ur->first = g->period_start_ms;
    ur->last = g->period_start_ms;
    return 0;
}

/* Found by fuzz_archive: pen times at the ends of int64_t. The audit
 * subtracted them (clock_backwards, a treatment's duration and mean depth)
 * and multiplied days back into ms (usage periods), overflowing. */
static void test_audit_hostile_times(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-TIME", 0);
    penlink_record r[4] = {
        rec(PENLINK_REC_POWER_ON, INT64_MAX),
        rec(PENLINK_REC_TREATMENT_START, INT64_MIN), /* back by 2^64 - 1 ms */
        rec(PENLINK_REC_DEPTH_CHANGED, INT64_MAX),
        rec(PENLINK_REC_POWER_OFF, INT64_MAX),
    };
    for (int i = 0; i < 4; i++)
        r[i].seq = (uint64_t)i;
    r[1].fields = PENLINK_F_DEPTH_UM;
    r[1].depth_um = UINT32_MAX;
    r[2].fields = PENLINK_F_DEPTH_UM;
    r[2].depth_um = 7;
    add_chunk(f->path, 1, r, 4);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    for (int by = PENLINK_PERIOD_DAY; by <= PENLINK_PERIOD_MONTH; by++) {
        findings fs;
        penlink_treatment t;
        usage_rows ur;
        memset(&fs, 0, sizeof fs);
        memset(&t, 0, sizeof t);
        memset(&ur, 0, sizeof ur);
        penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                                .on_treatment = keep_treatment,
                                .user = &t,
                                .usage_by = (penlink_period)by };
        penlink_audit_cb fcb = { .size = sizeof(penlink_audit_cb),
                                 .on_finding = keep_finding,
                                 .user = &fs,
                                 .usage_by = (penlink_period)by };
        /* usage periods in UTC and in the local zone (TZ) */
        penlink_audit_cb ucb = { .size = sizeof(penlink_audit_cb),
                                 .on_usage = keep_usage,
                                 .user = &ur,
                                 .usage_by = (penlink_period)by,
                                 .local_time = by % 2 };
        assert_int_equal(penlink_audit_run(ar, NULL, &cb, NULL), PENLINK_OK);
        assert_int_equal(t.start_seq, 1);
        assert_true(t.duration_ms == (uint64_t)INT64_MAX); /* as long as it can say */
        assert_true(t.depth_mean_um == UINT32_MAX || t.depth_mean_um == 7);
        assert_int_equal(penlink_audit_run(ar, NULL, &fcb, NULL), PENLINK_OK);
        int at = 0;
        const penlink_finding *back = finding_of(&fs, PENLINK_FIND_CLOCK_BACKWARDS, &at);
        assert_non_null(back);
        assert_true(back->value == INT64_MAX);
        assert_int_equal(penlink_audit_run(ar, NULL, &ucb, NULL), PENLINK_OK);
        assert_int_equal(ur.n, 1); /* the one treatment, in the calendar's first period */
        assert_true(ur.first <= -62135596800000ll + 31ll * 86400000ll);
        assert_true(ur.first >= -62135596800000ll - 7ll * 86400000ll);
    }
    penlink_archive_close(ar);
}

/* ---- defect 12.5, read side: one pen's impossible seqs ----------------- */

static int count_record(void *u, const char *serial, const penlink_record *r)
{
    (void)serial;
    (void)r;
    (*(uint64_t *)u)++;
    return 0;
}

/*
 * Four pens: A (unsigned) with a treatment; B (unsigned) with good records
 * 0..4 and two more rows stored with negative seqs (seqs at or above 2^63, as
 * an earlier penlink stored them from a hostile pen); C (signing) whose only
 * chunk row has a negative first seq; D (signing) with nothing. Before: the
 * audit, the scan (export) and verify failed for every pen. The audit takes
 * the records from the chunks: B's odd rows are verify's finding (and
 * export's), and change nothing the audit says; C's chunk breaks C's log.
 */
static void test_hostile_seqs(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-A", 0);
    add_device(f->path, 2, "PEN-B", 0);
    add_device(f->path, 3, "PEN-C", 1);
    add_device(f->path, 4, "PEN-D", 1);
    penlink_record a[4] = {
        rec(PENLINK_REC_POWER_ON, 1767225600000),
        rec(PENLINK_REC_CARTRIDGE_INSERTED, 1767225601000),
        rec(PENLINK_REC_TREATMENT_START, 1767225602000),
        rec(PENLINK_REC_TREATMENT_END, 1767227402000),
    };
    for (int i = 0; i < 4; i++)
        a[i].seq = (uint64_t)i;
    a[1].fields = PENLINK_F_CARTRIDGE_SERIAL | PENLINK_F_CARTRIDGE_USES;
    a[1].cartridge_serial = 77;
    a[1].cartridge_uses = 1;
    a[2].fields = PENLINK_F_DEPTH_UM | PENLINK_F_CARTRIDGE_SERIAL;
    a[2].depth_um = 1000;
    a[2].cartridge_serial = 77;
    a[3].fields = PENLINK_F_DURATION_MS;
    a[3].duration_ms = 1800000;
    add_chunk(f->path, 1, a, 4);
    penlink_record b5[5];
    for (int s = 0; s < 5; s++) {
        b5[s] = rec(PENLINK_REC_POWER_ON, 1767225600000 + s);
        b5[s].seq = (uint64_t)s;
    }
    add_chunk(f->path, 2, b5, 5);
    sql(f->path, "INSERT INTO chunks (device_id, received_ms, first_seq, record_count, raw_size, "
                 "data, prev_link, link) VALUES (3, 0, -7, 1, 10, x'00', zeroblob(32), "
                 "zeroblob(32))");

    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    /* the audit before B's odd rows */
    findings before;
    memset(&before, 0, sizeof before);
    penlink_audit_cb cb0 = { .size = sizeof(penlink_audit_cb),
                             .on_treatment = count_treatment,
                             .on_finding = keep_finding,
                             .user = &before,
                             .usage_by = PENLINK_PERIOD_DAY };
    penlink_audit_summary sum0 = PENLINK_AUDIT_SUMMARY_INIT;
    assert_int_equal(penlink_audit_run(ar, NULL, &cb0, &sum0), PENLINK_OK);
    penlink_archive_close(ar);

    penlink_record r = rec(PENLINK_REC_POWER_ON, 1767225609000);
    add_record(f->path, 2, -5, &r);
    add_record(f->path, 2, INT64_MIN, &r);
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);

    penlink_verify_report got[8];
    memset(got, 0, sizeof got);
    assert_int_equal(penlink_archive_verify(ar, NULL, keep_report, got), PENLINK_OK);
    assert_int_equal(report_of(got, "PEN-A")->state, PENLINK_VERIFY_UNSIGNED);
    const penlink_verify_report *b = report_of(got, "PEN-B");
    assert_int_equal(b->state, PENLINK_VERIFY_BROKEN);
    assert_true(b->where_seq == (uint64_t)INT64_MIN);
    assert_non_null(strstr(b->detail, "2 record rows hold a seq at or above 2^63"));
    assert_non_null(strstr(b->detail, "-9223372036854775808"));
    const penlink_verify_report *c = report_of(got, "PEN-C");
    assert_int_equal(c->state, PENLINK_VERIFY_BROKEN);
    assert_non_null(strstr(c->detail, "first seq stored as -7"));
    assert_int_equal(report_of(got, "PEN-D")->state, PENLINK_VERIFY_OK);

    findings fs;
    memset(&fs, 0, sizeof fs);
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_treatment = count_treatment,
                            .on_finding = keep_finding,
                            .user = &fs,
                            .usage_by = PENLINK_PERIOD_DAY };
    penlink_audit_summary sum = PENLINK_AUDIT_SUMMARY_INIT;
    assert_int_equal(penlink_audit_run(ar, NULL, &cb, &sum), PENLINK_OK);
    assert_int_equal(sum.records, 9); /* A's 4 and B's 5, from their chunks */
    assert_int_equal(fs.treatments, 1);
    int at = 0;
    /* B's rows changed nothing: the same findings, the same verdict */
    assert_null(finding_of(&fs, PENLINK_FIND_DAMAGED, &at));
    assert_int_equal(fs.n, before.n);
    for (int i = 0; i < fs.n; i++) {
        assert_int_equal(fs.f[i].kind, before.f[i].kind);
        assert_string_equal(fs.serial[i], before.serial[i]);
        assert_true(fs.f[i].seq == before.f[i].seq);
        assert_string_equal(fs.detail[i], before.detail[i]);
    }
    assert_memory_equal(&sum, &sum0, sizeof sum);
    /* C's chunk that cannot be a chunk breaks C's log, and that alone */
    const penlink_finding *lb = finding_of(&fs, PENLINK_FIND_LOG_BROKEN, &at);
    assert_non_null(lb);
    assert_string_equal(fs.serial[at], "PEN-C");
    assert_int_equal(sum.logs_broken, 1);
    assert_int_equal(sum.verdict, PENLINK_VERDICT_FAIL);

    /* export's path: every good record, then the damage named */
    uint64_t n = 0;
    assert_int_equal(penlink_archive_scan(ar, NULL, count_record, &n), PENLINK_ERR_INTEGRITY);
    assert_int_equal(n, 9);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "2 record rows cannot be records"));
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "pen PEN-B"));
    /* and one pen alone */
    penlink_archive_filter only_a = { .size = sizeof(penlink_archive_filter), .serial = "PEN-A" };
    n = 0;
    assert_int_equal(penlink_archive_scan(ar, &only_a, count_record, &n), PENLINK_OK);
    assert_int_equal(n, 4);
    penlink_archive_close(ar);
}

/* The audit's records are the chunks', so both ways: a damaged record row
 * alone leaves every finding and the verdict as they were (verify names it),
 * and a chunk that cannot be one fails the audit, for a library caller as for
 * the CLI. */
static void test_damaged_fails_the_verdict(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-D", 0);
    penlink_record three[3];
    for (int s = 0; s < 3; s++) {
        three[s] = rec(PENLINK_REC_POWER_ON, 1767225600000 + s);
        three[s].seq = (uint64_t)s;
    }
    add_chunk(f->path, 1, three, 3);
    penlink_archive *ar = NULL;
    findings fs0;
    memset(&fs0, 0, sizeof fs0);
    penlink_audit_cb cb0 = { .size = sizeof(penlink_audit_cb),
                             .on_finding = keep_finding,
                             .user = &fs0,
                             .usage_by = PENLINK_PERIOD_DAY };
    penlink_audit_summary sum0 = PENLINK_AUDIT_SUMMARY_INIT;
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    assert_int_equal(penlink_audit_run(ar, NULL, &cb0, &sum0), PENLINK_OK);
    penlink_archive_close(ar);
    assert_int_equal(sum0.records, 3);
    assert_int_equal(sum0.verdict, PENLINK_VERDICT_PASS);

    penlink_record r = rec(PENLINK_REC_POWER_ON, 1767225609000);
    add_record(f->path, 1, -1, &r); /* seq 2^64 - 1 */
    sql(f->path, "DROP TRIGGER IF EXISTS records_append_only_u; UPDATE records SET body = "
                 "x'00' WHERE seq = 1");
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    findings fs;
    memset(&fs, 0, sizeof fs);
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_finding = keep_finding,
                            .user = &fs,
                            .usage_by = PENLINK_PERIOD_DAY };
    penlink_audit_summary sum = PENLINK_AUDIT_SUMMARY_INIT;
    assert_int_equal(penlink_audit_run(ar, NULL, &cb, &sum), PENLINK_OK);
    assert_int_equal(fs.n, fs0.n);
    assert_memory_equal(&sum, &sum0, sizeof sum);
    /* verify names the rows */
    penlink_verify_report got[8];
    memset(got, 0, sizeof got);
    assert_int_equal(penlink_archive_verify(ar, NULL, keep_report, got), PENLINK_OK);
    assert_int_equal(got[0].state, PENLINK_VERIFY_BROKEN);
    assert_non_null(strstr(got[0].detail, "record rows hold a seq at or above 2^63"));
    penlink_archive_close(ar);

    /* the chunk edited so that it cannot be one: the audit fails */
    sql(f->path, "DROP TRIGGER IF EXISTS chunks_append_only_u; UPDATE chunks SET record_count = 0");
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    memset(&fs, 0, sizeof fs);
    assert_int_equal(penlink_audit_run(ar, NULL, &cb, &sum), PENLINK_OK);
    int at = 0;
    const penlink_finding *lb = finding_of(&fs, PENLINK_FIND_LOG_BROKEN, &at);
    assert_non_null(lb);
    assert_string_equal(fs.f[at].report, "integrity");
    assert_non_null(strstr(fs.detail[at], "impossible"));
    assert_int_equal(sum.findings[PENLINK_FIND_LOG_BROKEN], 1);
    assert_int_equal(sum.verdict, PENLINK_VERDICT_FAIL);
    penlink_archive_close(ar);
}

/* ---- issue 13 defect 3: read-only openings never write ----------------- */

static int count_any(void *u, const void *x)
{
    (void)x;
    (*(int *)u)++;
    return 0;
}

static int on_alarm(void *u, const penlink_alarm *a)
{
    return count_any(u, a);
}

static int on_hist(void *u, const penlink_config_entry *e)
{
    return count_any(u, e);
}

static int on_dev(void *u, const penlink_archive_device *d)
{
    return count_any(u, d);
}

/* The caller-sized structs of the archive's reads (penlink_archive_filter,
 * penlink_audit_cb) are refused without their size, before anything is read;
 * NULL still means "everything" and "no callbacks". */
static int count_scanned(void *u, const char *serial, const penlink_record *r)
{
    (void)serial;
    (void)r;
    (*(int *)u)++;
    return 0;
}

static void test_sized_structs_refused(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-SIZE", 0);
    penlink_record r = rec(PENLINK_REC_POWER_ON, 1000);
    add_chunk(f->path, 1, &r, 1);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    findings fs;
    memset(&fs, 0, sizeof fs);
    penlink_audit_cb cb = PENLINK_AUDIT_CB_INIT;
    cb.on_finding = keep_finding;
    cb.user = &fs;
    penlink_archive_filter all = PENLINK_ARCHIVE_FILTER_INIT, bare;
    memset(&bare, 0, sizeof bare);
    int n = 0;
    penlink_audit_summary sum = PENLINK_AUDIT_SUMMARY_INIT;
    assert_int_equal(penlink_audit_run(ar, &bare, &cb, &sum), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_scan(ar, &bare, count_scanned, &n), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_archive_alarms(ar, &bare, on_alarm, &n), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(n, 0);
    penlink_audit_cb cb_bare = cb;
    cb_bare.size = 0;
    assert_int_equal(penlink_audit_run(ar, &all, &cb_bare, &sum), PENLINK_ERR_INVALID_ARG);
    cb_bare.size = sizeof cb_bare - 1;
    assert_int_equal(penlink_audit_run(ar, &all, &cb_bare, &sum), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(fs.n, 0); /* nothing was audited */
    /* with their sizes (or NULL) the same calls run */
    assert_int_equal(penlink_archive_scan(ar, &all, count_scanned, &n), PENLINK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(penlink_archive_scan(ar, NULL, count_scanned, &n), PENLINK_OK);
    assert_int_equal(n, 2);
    assert_int_equal(penlink_audit_run(ar, &all, &cb, &sum), PENLINK_OK);
    assert_int_equal(sum.records, 1);
    assert_int_equal(penlink_audit_run(ar, NULL, NULL, &sum), PENLINK_OK);
    penlink_archive_close(ar);
}

/* Progress (penlink_ctx_set_progress_cb): the calls a callback got. */
#define PROGRESS_CALLS 16
typedef struct progress_calls {
    penlink_work_progress got[PROGRESS_CALLS];
    char work[PROGRESS_CALLS][16], serial[PROGRESS_CALLS][PENLINK_SERIAL_SIZE];
    int n;
} progress_calls;

static void on_progress(void *u, const penlink_work_progress *p)
{
    progress_calls *c = u;
    if (c->n < PROGRESS_CALLS) {
        c->got[c->n] = *p;
        snprintf(c->work[c->n], sizeof c->work[c->n], "%s", p->work);
        snprintf(c->serial[c->n], sizeof c->serial[c->n], "%s", p->serial ? p->serial : "");
        assert_string_equal(p->unit, "records");
    }
    c->n++;
}

static void assert_call(const progress_calls *c, int i, const char *work, const char *serial,
                        uint64_t done, uint64_t total, int finished)
{
    assert_true(i < c->n);
    assert_string_equal(c->work[i], work);
    assert_string_equal(c->serial[i], serial);
    assert_int_equal(c->got[i].done, done);
    assert_int_equal(c->got[i].total, total);
    assert_int_equal(c->got[i].finished, finished);
}

#define BIG_CHUNKS 5 /* of PL_CHUNK_MAX_RECORDS: more than PENLINK_WORK_PROGRESS_STEP records */

/* Pen PEN-BIG with BIG_CHUNKS full chunks, PEN-SMALL with 3 records; neither signs. */
static void progress_archive(fx *f)
{
    make_archive(f);
    add_device(f->path, 1, "PEN-BIG", 0);
    add_device(f->path, 2, "PEN-SMALL", 0);
    static penlink_record r[PL_CHUNK_MAX_RECORDS];
    for (uint32_t c = 0; c < BIG_CHUNKS; c++) {
        for (uint32_t i = 0; i < PL_CHUNK_MAX_RECORDS; i++) {
            uint64_t seq = (uint64_t)c * PL_CHUNK_MAX_RECORDS + i;
            r[i] = rec(PENLINK_REC_POWER_ON, 1000 + (int64_t)seq);
            r[i].seq = seq;
        }
        add_chunk(f->path, 1, r, PL_CHUNK_MAX_RECORDS);
    }
    for (uint32_t i = 0; i < 3; i++) {
        r[i] = rec(PENLINK_REC_POWER_ON, 1000 + i);
        r[i].seq = i;
    }
    add_chunk(f->path, 2, r, 3);
}

/* Each pen's progress: the first call at 0, one every PENLINK_WORK_PROGRESS_STEP records at
 * most, the last finished with its total equal to what was done; none without a callback. */
static void test_progress(void **state)
{
    fx *f = *state;
    const uint64_t big = (uint64_t)BIG_CHUNKS * PL_CHUNK_MAX_RECORDS;
    _Static_assert(BIG_CHUNKS * PL_CHUNK_MAX_RECORDS > PENLINK_WORK_PROGRESS_STEP &&
                       BIG_CHUNKS * PL_CHUNK_MAX_RECORDS < 2 * PENLINK_WORK_PROGRESS_STEP,
                   "one call between the first and the last");
    progress_archive(f);
    assert_int_equal(penlink_ctx_set_progress_cb(NULL, on_progress, NULL), PENLINK_ERR_INVALID_ARG);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    progress_calls c;
    memset(&c, 0, sizeof c);
    assert_int_equal(penlink_ctx_set_progress_cb(f->ctx, on_progress, &c), PENLINK_OK);

    /* the scan: no total before the last call */
    int n = 0;
    assert_int_equal(penlink_archive_scan(ar, NULL, count_scanned, &n), PENLINK_OK);
    assert_int_equal(n, big + 3);
    assert_int_equal(c.n, 5);
    assert_call(&c, 0, "export", "PEN-BIG", 0, 0, 0);
    assert_call(&c, 1, "export", "PEN-BIG", PENLINK_WORK_PROGRESS_STEP, 0, 0);
    assert_call(&c, 2, "export", "PEN-BIG", big, big, 1);
    assert_call(&c, 3, "export", "PEN-SMALL", 0, 0, 0);
    assert_call(&c, 4, "export", "PEN-SMALL", 3, 3, 1);

    /* the audit: the total from the seqs archived */
    memset(&c, 0, sizeof c);
    penlink_audit_summary sum = PENLINK_AUDIT_SUMMARY_INIT;
    assert_int_equal(penlink_audit_run(ar, NULL, NULL, &sum), PENLINK_OK);
    assert_int_equal(sum.records, big + 3);
    assert_int_equal(c.n, 5);
    assert_call(&c, 0, "audit", "PEN-BIG", 0, big, 0);
    /* chunk by chunk: the first call at or past the step */
    assert_call(&c, 1, "audit", "PEN-BIG",
                (PENLINK_WORK_PROGRESS_STEP + PL_CHUNK_MAX_RECORDS - 1) / PL_CHUNK_MAX_RECORDS *
                    PL_CHUNK_MAX_RECORDS,
                big, 0);
    assert_call(&c, 2, "audit", "PEN-BIG", big, big, 1);
    assert_call(&c, 3, "audit", "PEN-SMALL", 0, 3, 0);
    assert_call(&c, 4, "audit", "PEN-SMALL", 3, 3, 1);

    /* verify: a pen that does not sign has no chain to walk: 0 records, first and last */
    memset(&c, 0, sizeof c);
    assert_int_equal(penlink_archive_verify(ar, NULL, NULL, NULL), PENLINK_OK);
    assert_int_equal(c.n, 4);
    assert_call(&c, 0, "verify", "PEN-BIG", 0, 0, 0);
    assert_call(&c, 1, "verify", "PEN-BIG", 0, 0, 1);
    assert_call(&c, 2, "verify", "PEN-SMALL", 0, 0, 0);
    assert_call(&c, 3, "verify", "PEN-SMALL", 0, 0, 1);

    /* no callback: no call */
    memset(&c, 0, sizeof c);
    assert_int_equal(penlink_ctx_set_progress_cb(f->ctx, NULL, NULL), PENLINK_OK);
    assert_int_equal(penlink_archive_scan(ar, NULL, count_scanned, &n), PENLINK_OK);
    assert_int_equal(penlink_audit_run(ar, NULL, NULL, &sum), PENLINK_OK);
    assert_int_equal(c.n, 0);
    penlink_archive_close(ar);
}

/* Review 17.3: the structs the archive and the audit fill carry their size:
 * 0 (no initialiser) is refused before anything is done; a later caller's
 * larger struct gets what this library knows and keeps the rest. */
static void test_filled_structs_need_size(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-SZ", 1);
    penlink_record r = rec(PENLINK_REC_POWER_ON, 1000);
    add_record(f->path, 1, 0, &r);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);

    penlink_audit_summary bare_sum;
    memset(&bare_sum, 0x5a, sizeof bare_sum);
    bare_sum.size = 0;
    assert_int_equal(penlink_audit_run(ar, NULL, NULL, &bare_sum), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(bare_sum.records, 0x5a5a5a5a5a5a5a5aull); /* untouched */
    struct {
        penlink_audit_summary now;
        uint64_t later;
    } big_sum;
    memset(&big_sum, 0, sizeof big_sum);
    big_sum.now.size = sizeof big_sum;
    big_sum.later = 42;
    assert_int_equal(penlink_audit_run(ar, NULL, NULL, &big_sum.now), PENLINK_OK);
    assert_int_equal(big_sum.now.size, sizeof big_sum);
    assert_int_equal(big_sum.now.pens, 1);
    assert_int_equal(big_sum.later, 42);

    penlink_verification bare_v;
    memset(&bare_v, 0x5a, sizeof bare_v);
    bare_v.size = 0;
    assert_int_equal(penlink_archive_verification_get(ar, "PEN-SZ", &bare_v),
                     PENLINK_ERR_INVALID_ARG);
    assert_int_equal(bare_v.have, 0x5a5a5a5a);
    struct {
        penlink_verification now;
        uint64_t later;
    } big_v;
    memset(&big_v, 0x5a, sizeof big_v);
    big_v.now.size = sizeof big_v;
    assert_int_equal(penlink_archive_verification_get(ar, "PEN-SZ", &big_v.now), PENLINK_OK);
    assert_int_equal(big_v.now.size, sizeof big_v);
    assert_string_equal(big_v.now.serial, "PEN-SZ");
    assert_int_equal(big_v.now.have, 0);
    assert_int_equal(big_v.later, 0x5a5a5a5a5a5a5a5aull);

    penlink_info info = PENLINK_INFO_INIT;
    snprintf(info.serial, sizeof info.serial, "PEN-SZ");
    penlink_key_replacement bare_r;
    memset(&bare_r, 0, sizeof bare_r);
    assert_int_equal(penlink_archive_key_replace(ar, &info, "repaired", &bare_r),
                     PENLINK_ERR_INVALID_ARG);
    assert_string_equal(bare_r.serial, "");
    penlink_archive_close(ar);
}

/* penlink_ctx_cancel (the CLI's Ctrl-C): verify, the audit and push stop at
 * a chunk with CANCELLED, verify stores no verdict and push copies no pen
 * half; the flag cleared, each runs whole. */
static void test_cancelled_work(void **state)
{
    fx *f = *state;
    progress_archive(f);
    char to_path[sizeof f->path + 8];
    snprintf(to_path, sizeof to_path, "%s.to", f->path);
    penlink_archive *ar = NULL, *to = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    assert_int_equal(penlink_archive_open(f->ctx, to_path, &to), PENLINK_OK);
    penlink_ctx_cancel(f->ctx);
    assert_int_equal(penlink_archive_verify(ar, NULL, NULL, NULL), PENLINK_ERR_CANCELLED);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "PEN-BIG: interrupted"));
    penlink_audit_summary sum = PENLINK_AUDIT_SUMMARY_INIT;
    assert_int_equal(penlink_audit_run(ar, NULL, NULL, &sum), PENLINK_ERR_CANCELLED);
    assert_int_equal(sum.verdict, PENLINK_VERDICT_NOT_RUN);
    assert_int_equal(penlink_archive_push(ar, to, NULL, NULL, NULL), PENLINK_ERR_CANCELLED);
    penlink_ctx_reset_cancel(f->ctx);
    penlink_verification v = PENLINK_VERIFICATION_INIT;
    assert_int_equal(penlink_archive_verification_get(ar, "PEN-BIG", &v), PENLINK_OK);
    assert_int_equal(v.have, 0); /* no verdict from the interrupted verify */
    int n = 0;
    assert_int_equal(penlink_archive_scan(to, NULL, count_scanned, &n), PENLINK_OK);
    assert_int_equal(n, 0); /* nothing of the interrupted push */
    assert_int_equal(penlink_archive_verify(ar, NULL, NULL, NULL), PENLINK_OK);
    assert_int_equal(penlink_archive_verification_get(ar, "PEN-BIG", &v), PENLINK_OK);
    assert_int_equal(v.have, 1);
    assert_int_equal(penlink_audit_run(ar, NULL, NULL, &sum), PENLINK_OK);
    assert_int_equal(penlink_archive_push(ar, to, NULL, NULL, NULL), PENLINK_OK);
    assert_int_equal(penlink_archive_scan(to, NULL, count_scanned, &n), PENLINK_OK);
    assert_true(n > 0);
    penlink_archive_close(to);
    penlink_archive_close(ar);
    remove(to_path);
}

static void test_readonly_never_writes(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-RO", 1);
    penlink_record r = rec(PENLINK_REC_POWER_ON, 1000);
    add_record(f->path, 1, 0, &r);
    sql(f->path, "INSERT INTO pulls (device_id, started_ms, result) VALUES (1, 0, 'running')");
    size_t len;
    uint8_t *before = slurp(f->path, &len);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    penlink_verify_report got[8];
    memset(got, 0, sizeof got);
    assert_int_equal(penlink_archive_verify(ar, NULL, keep_report, got), PENLINK_OK);
    assert_int_equal(got[0].state, PENLINK_VERIFY_BROKEN); /* a row outside every chunk */
    assert_int_equal(penlink_audit_run(ar, NULL, NULL, NULL), PENLINK_OK);
    int n = 0;
    assert_int_equal(penlink_archive_alarms(ar, NULL, on_alarm, &n), PENLINK_OK);
    assert_int_equal(penlink_archive_config_history(ar, NULL, on_hist, &n), PENLINK_OK);
    assert_int_equal(penlink_archive_devices(ar, on_dev, &n), PENLINK_OK);
    assert_int_equal(n, 1);
    penlink_verification v = PENLINK_VERIFICATION_INIT;
    assert_int_equal(penlink_archive_verification_get(ar, "PEN-RO", &v), PENLINK_OK);
    assert_int_equal(v.have, 0); /* read-only: the verdict was not stored */
    penlink_config cfg = PENLINK_CONFIG_INIT;
    assert_int_equal(penlink_archive_log_config(ar, "PEN-RO", "read", NULL, &cfg),
                     PENLINK_ERR_INVALID_ARG);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "opened read-only"));
    assert_int_equal(penlink_archive_verification_save(ar, &got[0]), PENLINK_ERR_INVALID_ARG);
    penlink_archive_close(ar);
    assert_same_bytes(f->path, before, len);
    free(before);

    /* the same report, recorded through a writable opening */
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    assert_int_equal(penlink_archive_verification_save(ar, &got[0]), PENLINK_OK);
    assert_int_equal(penlink_archive_verification_get(ar, "PEN-RO", &v), PENLINK_OK);
    assert_int_equal(v.have, 1);
    assert_string_equal(v.result, "broken");
    penlink_verify_report nobody = got[0];
    snprintf(nobody.serial, sizeof nobody.serial, "PEN-NONE");
    assert_int_equal(penlink_archive_verification_save(ar, &nobody), PENLINK_ERR_NOT_FOUND);
    penlink_archive_close(ar);

    /* a missing archive is not created by a read-only opening */
    char missing[160];
    snprintf(missing, sizeof missing, "%s/none.db", f->dir);
    assert_int_equal(penlink_archive_open_readonly(f->ctx, missing, &ar), PENLINK_ERR_IO);
    assert_false(exists(f->dir, "none.db"));
}

/* ---- defect 12.10: files that are not ours ----------------------------- */

/* Opening @p path for writing and for reading is refused with @p status and
 * the file stays byte for byte as it was, nothing created beside it. */
static void assert_refused(fx *f, const char *path, int status, const char *words)
{
    size_t len;
    uint8_t *before = slurp(path, &len);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, path, &ar), status);
    assert_null(ar);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), words));
    assert_int_equal(penlink_archive_open_readonly(f->ctx, path, &ar), status);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), words));
    assert_same_bytes(path, before, len);
    char wal[200], shm[200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    snprintf(shm, sizeof shm, "%s-shm", path);
    assert_int_not_equal(access(wal, F_OK), 0);
    assert_int_not_equal(access(shm, F_OK), 0);
    free(before);
}

static void test_not_ours(void **state)
{
    fx *f = *state;
    /* a newer penlink archive */
    make_archive(f);
    sql(f->path, "PRAGMA user_version = 99");
    assert_refused(f, f->path, PENLINK_ERR_UNSUPPORTED, "has schema version 99, newer than");
    /* another program's database, rollback journal */
    char other[160];
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    sql(other, "CREATE TABLE notes (x TEXT); INSERT INTO notes VALUES ('hello')");
    assert_refused(f, other, PENLINK_ERR_UNSUPPORTED, "not a penlink archive");
    /* with an application id of its own, and in WAL mode */
    snprintf(other, sizeof other, "%s/fossil.db", f->dir);
    sql(other, "PRAGMA application_id = 252006674; PRAGMA journal_mode = WAL; CREATE TABLE "
               "blob (x); INSERT INTO blob VALUES (1)");
    assert_refused(f, other, PENLINK_ERR_UNSUPPORTED, "application_id 0x0F055112");
    /* penlink's table names without penlink's id or version */
    snprintf(other, sizeof other, "%s/lookalike.db", f->dir);
    sql(other, "CREATE TABLE devices (x); CREATE TABLE pulls (x); CREATE TABLE chunks (x); "
               "CREATE TABLE records (x); CREATE TABLE alarms (x); CREATE TABLE config_history "
               "(x)");
    assert_refused(f, other, PENLINK_ERR_UNSUPPORTED, "not a penlink archive");
    /* not SQLite at all */
    snprintf(other, sizeof other, "%s/note.txt", f->dir);
    FILE *fp = fopen(other, "w");
    assert_non_null(fp);
    fputs("this is not a database, it is a note\n", fp);
    fclose(fp);
    assert_refused(f, other, PENLINK_ERR_INTEGRITY, "nor any SQLite database");
}

/* An archive of a penlink before application ids gets one at its first
 * writable opening, and none from a read-only one. */
static void test_old_archive_gets_its_id(void **state)
{
    fx *f = *state;
    make_archive(f);
    sql(f->path, "PRAGMA application_id = 0");
    size_t len;
    uint8_t *before = slurp(f->path, &len);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    penlink_archive_close(ar);
    assert_same_bytes(f->path, before, len);
    free(before);
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    sqlite3 *db = archive_sqlite_handle(ar->b);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), 0x504C4152);
    sqlite3_finalize(st);
    penlink_archive_close(ar);
}

/* ---- defect 12.10: pulls left running by a killed penlink --------------- */

static void pull_results(const char *path, char *out, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT group_concat(result, ',') FROM (SELECT result FROM pulls "
                           "ORDER BY id)",
                           -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static void test_interrupted_pulls(void **state)
{
    fx *f = *state;
    make_archive(f);
    add_device(f->path, 1, "PEN-K", 0);
    sql(f->path, "INSERT INTO pulls (device_id, started_ms, result) VALUES (1, 0, 'ok'), (1, 1, "
                 "'running'), (1, 2, 'running')");
    char got[128];
    /* another connection has it open (it may be pulling): nothing is marked */
    sqlite3 *other = NULL;
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "SELECT count(*) FROM pulls", NULL, NULL, NULL),
                     SQLITE_OK);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    pull_results(f->path, got, sizeof got);
    assert_string_equal(got, "ok,running,running");
    /* it still works after the lock test */
    penlink_config cfg = PENLINK_CONFIG_INIT;
    cfg.revision = 3;
    assert_int_equal(penlink_archive_log_config(ar, "PEN-K", "read", NULL, &cfg), PENLINK_OK);
    penlink_archive_close(ar);
    sqlite3_close(other);
    /* a read-only opening never marks */
    assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &ar), PENLINK_OK);
    penlink_archive_close(ar);
    pull_results(f->path, got, sizeof got);
    assert_string_equal(got, "ok,running,running");
    /* alone: the running pulls are the dead ones' */
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    penlink_archive_close(ar);
    pull_results(f->path, got, sizeof got);
    assert_string_equal(got, "ok,interrupted,interrupted");
}

/* ---- defect 12.9, the storage side: a full disk ------------------------ */

static void test_disk_full(void **state)
{
    fx *f = *state;
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    archive_backend *b = ar->b;
    sqlite3 *db = archive_sqlite_handle(b);
    penlink_info info = PENLINK_INFO_INIT;
    snprintf(info.serial, sizeof info.serial, "PEN-FULL");
    int64_t dev, pull, chunk;
    assert_int_equal(b->ops->begin(b), PENLINK_OK);
    assert_int_equal(b->ops->device(b, &info, 0, &dev), PENLINK_OK);
    assert_int_equal(b->ops->pull_begin(b, dev, 0, 0, &pull), PENLINK_OK);
    assert_int_equal(b->ops->commit(b), PENLINK_OK);
    /* the disk is full: no page can be added */
    assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(b->ops->begin(b), PENLINK_OK);
    uint8_t data[4000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7919u >> 3);
    penlink_chunk c;
    memset(&c, 0, sizeof c);
    c.record_count = 1;
    c.raw_size = sizeof data;
    c.data = data;
    c.len = sizeof data;
    int rc = PENLINK_OK;
    uint64_t stored = 0;
    for (uint64_t seq = 0; rc == PENLINK_OK && seq < 20000; seq++) {
        c.first_seq = seq;
        rc = b->ops->chunk(b, dev, pull, &c, 0, &chunk, NULL);
        if (rc == PENLINK_OK) {
            penlink_record r = rec(PENLINK_REC_POWER_ON, (int64_t)seq);
            r.seq = seq;
            int outcome;
            rc = b->ops->record(b, dev, chunk, &r, 1, &outcome);
            stored += rc == PENLINK_OK;
        }
    }
    assert_int_equal(rc, PENLINK_ERR_IO);
    assert_true(stored > 0); /* some went in before the disk filled */
    const char *want = "is full: nothing of this pull was acknowledged; free space and pull again";
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), want));
    /* a transaction in which a statement failed is not committed, and says why again */
    assert_int_equal(b->ops->commit(b), PENLINK_ERR_IO);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), want));
    assert_int_equal(b->ops->commit(b), PENLINK_ERR_IO);
    /* rolled back already: the rollback is a quiet no-op */
    assert_int_equal(b->ops->rollback(b), PENLINK_OK);
    assert_int_equal(b->ops->rollback(b), PENLINK_OK);
    assert_true(sqlite3_get_autocommit(db));
    uint64_t next;
    int have;
    assert_int_equal(b->ops->next_seq(b, dev, &next, &have), PENLINK_OK);
    assert_int_equal(have, 0); /* nothing of it was kept */
    /* SQLite may have rolled a transaction back by itself (after SQLITE_FULL or
     * SQLITE_IOERR): the rollback that follows is a quiet no-op, not "cannot
     * rollback - no transaction is active" */
    assert_int_equal(b->ops->begin(b), PENLINK_OK);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(b->ops->rollback(b), PENLINK_OK);
    /* space freed: the next transaction goes in */
    assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1000000", NULL, NULL, NULL),
                     SQLITE_OK);
    assert_int_equal(b->ops->begin(b), PENLINK_OK);
    c.first_seq = 0;
    assert_int_equal(b->ops->chunk(b, dev, pull, &c, 0, &chunk, NULL), PENLINK_OK);
    penlink_record r = rec(PENLINK_REC_POWER_ON, 5);
    int outcome;
    assert_int_equal(b->ops->record(b, dev, chunk, &r, 1, &outcome), PENLINK_OK);
    assert_int_equal(b->ops->commit(b), PENLINK_OK);
    assert_int_equal(b->ops->next_seq(b, dev, &next, &have), PENLINK_OK);
    assert_int_equal(have, 1);
    assert_int_equal(next, 1);
    penlink_archive_close(ar);
    /* outside a pull, the words say so */
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    db = archive_sqlite_handle(ar->b);
    assert_int_equal(sqlite3_exec(db, "PRAGMA max_page_count = 1", NULL, NULL, NULL), SQLITE_OK);
    penlink_config cfg = PENLINK_CONFIG_INIT;
    char who[600];
    memset(who, 'x', sizeof who - 1);
    who[sizeof who - 1] = '\0';
    rc = PENLINK_OK;
    for (int i = 0; rc == PENLINK_OK && i < 2000; i++) {
        cfg.revision = (uint32_t)i;
        rc = penlink_archive_log_config(ar, "PEN-FULL", who, NULL, &cfg);
    }
    assert_int_equal(rc, PENLINK_ERR_IO);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx),
                           "is full (config history): nothing of it was written; free space"));
    assert_true(sqlite3_get_autocommit(db));
    penlink_archive_close(ar);
}

/* The read-only opening goes through an SQLite URI: a path with the URI's
 * own characters in it (?, #, %, a leading //) must name the same file. */
static void test_odd_paths(void **state)
{
    fx *f = *state;
    char odd[96], doubled[160];
    snprintf(odd, sizeof odd, "%.60s/we?ird#d%%ir a", f->dir);
    assert_int_equal(mkdir(odd, 0700), 0);
    snprintf(f->path, sizeof f->path, "%s/x%%41.db", odd);
    make_archive(f);
    add_device(f->path, 1, "PEN-ODD", 0);
    snprintf(doubled, sizeof doubled, "/%s", f->path);
    const char *paths[] = { f->path, doubled };
    for (int i = 0; i < 2; i++) {
        penlink_archive *ar = NULL;
        int n = 0;
        assert_int_equal(penlink_archive_open_readonly(f->ctx, paths[i], &ar), PENLINK_OK);
        assert_int_equal(penlink_archive_devices(ar, on_dev, &n), PENLINK_OK);
        assert_int_equal(n, 1);
        penlink_archive_close(ar);
    }
    char p[300];
    static const char *const files[] = { "x%41.db", "x%41.db-wal", "x%41.db-shm" };
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", odd, files[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(odd), 0); /* nothing else was made there */
}

/* A relative path (its URI is "file:", not "file://"), a path below a
 * regular file (stat fails with ENOTDIR: an I/O error naming it), and a
 * database of another program with no table at all. */
static void test_relative_and_impossible_paths(void **state)
{
    fx *f = *state;
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    penlink_archive *ar = NULL;
    int rc = penlink_archive_open(f->ctx, "rel.db", &ar);
    penlink_archive_close(ar);
    ar = NULL;
    add_device("rel.db", 1, "PEN-REL", 0);
    int n = 0;
    int rc_ro = penlink_archive_open_readonly(f->ctx, "rel.db", &ar);
    if (rc_ro == PENLINK_OK)
        rc_ro = penlink_archive_devices(ar, on_dev, &n);
    penlink_archive_close(ar);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(rc, PENLINK_OK);
    assert_int_equal(rc_ro, PENLINK_OK);
    assert_int_equal(n, 1);

    char below[300];
    make_archive(f);
    snprintf(below, sizeof below, "%s/x.db", f->path);
    assert_int_equal(penlink_archive_open_readonly(f->ctx, below, &ar), PENLINK_ERR_IO);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "Not a directory"));
    assert_int_equal(penlink_archive_open(f->ctx, below, &ar), PENLINK_ERR_IO);

    char other[160];
    snprintf(other, sizeof other, "%s/other.db", f->dir);
    sql(other, "PRAGMA application_id = 7; PRAGMA user_version = 3");
    assert_int_equal(penlink_archive_open(f->ctx, other, &ar), PENLINK_ERR_UNSUPPORTED);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "tables: none"));
}

/* ---- found by fuzz_archive: a serial longer than the public structs hold --- */

static int first_device(void *u, const penlink_archive_device *d)
{
    snprintf(u, 64, "%s", d->serial);
    return 1; /* the first, in serial order, is enough */
}

/* An archive of an earlier penlink may hold a serial of more than 32 bytes;
 * the library hands out its first 32 bytes (penlink_archive_device.serial)
 * and must find the pen by them. Before: the audit's verification lookup and
 * verify's recording failed ("no pen ... in the archive") for every pen. */
static void test_long_serial(void **state)
{
    fx *f = *state;
    make_archive(f);
    const char *serial = "PEN-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    add_device(f->path, 1, serial, 0);
    add_device(f->path, 2, "PEN-SHORT", 0);
    penlink_record r = rec(PENLINK_REC_POWER_ON, 1000);
    add_record(f->path, 1, 0, &r);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    char listed[64];
    assert_int_equal(penlink_archive_devices(ar, first_device, listed), PENLINK_ERR_CANCELLED);
    assert_int_equal(strlen(listed), 32);
    assert_memory_equal(listed, serial, 32);
    penlink_verify_report got[8];
    memset(got, 0, sizeof got);
    assert_int_equal(penlink_archive_verify(ar, listed, keep_report, got), PENLINK_OK);
    assert_string_equal(got[0].serial, listed);
    assert_int_equal(got[1].serial[0], '\0'); /* PEN-SHORT is not a prefix match */
    penlink_verification v = PENLINK_VERIFICATION_INIT;
    assert_int_equal(penlink_archive_verification_get(ar, listed, &v), PENLINK_OK);
    assert_int_equal(v.have, 1);
    assert_string_equal(v.result, "unsigned");
    assert_int_equal(penlink_archive_verification_save(ar, &got[0]), PENLINK_OK);
    penlink_archive_close(ar);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verify_pen_without_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_clock_set_int64_min, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sized_structs_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_progress, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit_hostile_times, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hostile_seqs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_fails_the_verdict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_never_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_ours, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_archive_gets_its_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_pulls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_relative_and_impossible_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_serial, setup, teardown),
        cmocka_unit_test_setup_teardown(test_filled_structs_need_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_work, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
