/*
 * The SQLite archive when memory runs out: every operation run again and
 * again, the n-th allocation failing on run n (SQLite's own, through
 * sqlite3_config(SQLITE_CONFIG_MALLOC), and the library's, through the
 * linker's --wrap of malloc, calloc and realloc), until a run meets no
 * failure. Each run must return an error status with words in the context's
 * message, or succeed with the right answer (SQLite absorbs some failures);
 * it must never crash or leak (the ASan and valgrind tiers run this test),
 * and the archive must be left as a transaction leaves it: a pull's records
 * are a prefix of the pen's log, nothing the pen was told to forget is
 * missing, a write is there whole or not at all, and the archive opens and
 * verifies afterwards.
 */
#define _POSIX_C_SOURCE 200809L
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
#include "device.h"
#include "fake_transport.h"
#include "script_pen.h"

#define SERIAL SCRIPT_PEN_SERIAL
#define RECORDS SCRIPT_PEN_RECORDS
#define SWEEP_MAX 200000 /* more allocations than any operation here makes */
/* Every one of the first allocations fails in turn, then every so many: the
 * runs stay few (each opens archives and pulls whole logs) while the
 * failures still land in every kind of step. */
#define SWEEP_NEXT(n) ((n) + 1 + (n) / 96)
/* Every allocation in turn, for the operations that are cheap to run again
 * (SWEEP_NEXT with memory that stays gone, or with PENLINK_SWEEP_SPARSE set:
 * the valgrind tier, where each run costs fifty). */
static int sparse;
#define SWEEP_EVERY(n) (persistent || sparse ? SWEEP_NEXT(n) : (n) + 1)

/* ---- failing allocations ------------------------------------------------ */

static long countdown = -1; /* allocations left before the failing one; -1: none fails */
static long fired;          /* allocations failed since armed */
static int persistent;      /* 1: every allocation after the failing one fails too */

static int fail_now(void)
{
    if (countdown < 0)
        return 0;
    if (countdown == 0) {
        fired++;
        countdown = persistent ? 0 : -1;
        return 1;
    }
    countdown--;
    return 0;
}

static void arm(long n)
{
    fired = 0;
    countdown = n;
}

static void disarm(void)
{
    countdown = -1;
}

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n)
{
    return fail_now() ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}

static sqlite3_mem_methods sqlite_mem;

static void *sq_malloc(int n)
{
    return fail_now() ? NULL : sqlite_mem.xMalloc(n);
}

static void *sq_realloc(void *p, int n)
{
    return fail_now() ? NULL : sqlite_mem.xRealloc(p, n);
}

/* SQLite's allocator, each allocation through fail_now(); before SQLite starts. */
static void install_sqlite_allocator(void)
{
    if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_mem) != SQLITE_OK)
        abort();
    sqlite3_mem_methods m = sqlite_mem;
    m.xMalloc = sq_malloc;
    m.xRealloc = sq_realloc;
    /* no lookaside: every small allocation of a statement reaches the allocator */
    if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK ||
        sqlite3_config(SQLITE_CONFIG_LOOKASIDE, 0, 0) != SQLITE_OK)
        abort();
}

/* ---- fixture ------------------------------------------------------------ */

typedef struct fx {
    char dir[64], path[128], copy[128], other[128];
    penlink_ctx *ctx;
    fake_wire w;
    script_pen p;
    penlink_dev *d;
} fx;

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char p[512];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void remove_archive(const char *path)
{
    char p[160];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-journal", path);
    unlink(p);
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
}

/* A fresh pen (signed: @p signs) on the fake transport, its session open. */
static void new_pen(fx *f, int signs)
{
    if (f->d)
        penlink_dev_close(f->d);
    f->d = NULL;
    script_pen_init(&f->p, signs);
    fake_wire_init(&f->w, script_pen_respond, &f->p);
    transport *t = fake_transport_new(f->ctx, &f->w);
    assert_non_null(t);
    assert_int_equal(dev_open_on(f->ctx, t, &f->d), PENLINK_OK);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    /* in memory where the machine has it: the sweep runs thousands of
     * operations, each ending in a synced commit, and what is tested here is
     * what a failed allocation leaves, not what a power cut does */
    snprintf(f->dir, sizeof f->dir, "/dev/shm/penlink-test-nomem-XXXXXX");
    if (!mkdtemp(f->dir)) {
        snprintf(f->dir, sizeof f->dir, "/tmp/penlink-test-nomem-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
    }
    snprintf(f->path, sizeof f->path, "%s/a.db", f->dir);
    snprintf(f->copy, sizeof f->copy, "%s/copy.db", f->dir);
    snprintf(f->other, sizeof f->other, "%s/b.db", f->dir);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    disarm();
    persistent = 0;
    if (f->d)
        penlink_dev_close(f->d);
    penlink_ctx_free(f->ctx);
    remove_tree(f->dir);
    free(f);
    return 0;
}

/* The status of a run that met a failing allocation: an error the enum
 * knows, said in words unless it is PENLINK_ERR_NO_MEM itself (its
 * penlink_strerror() says it all); PENLINK_OK is allowed (SQLite retries
 * some allocations). */
static void assert_failed_well(const fx *f, int rc)
{
    assert_true(rc <= PENLINK_OK && rc > PENLINK_ERR__SENTINEL);
    if (rc != PENLINK_OK && rc != PENLINK_ERR_NO_MEM && penlink_ctx_errmsg(f->ctx)[0] == '\0')
        fail_msg("status %d without words", rc);
}

/* ---- what the archive holds --------------------------------------------- */

typedef struct seen {
    uint64_t n, next;
    int in_order;
} seen;

static int on_record(void *user, const char *serial, const penlink_record *r)
{
    seen *s = user;
    penlink_record want = script_pen_record(r->seq);
    if (strcmp(serial, SERIAL) != 0 || r->seq != s->next || r->kind != want.kind ||
        r->time_ms != want.time_ms)
        s->in_order = 0;
    s->next = r->seq + 1;
    s->n++;
    return 0;
}

/* The records archived: seqs 0..n-1 of the pen's log, intact (read with
 * every allocation succeeding). */
static uint64_t archived_prefix(fx *f, const char *path)
{
    penlink_archive *ar = NULL;
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size == 0)
        return 0; /* made, and nothing written yet */
    int rc = penlink_archive_open(f->ctx, path, &ar);
    if (rc != PENLINK_OK)
        fail_msg("%s: %s", path, penlink_ctx_errmsg(f->ctx));
    seen s = { 0, 0, 1 };
    assert_int_equal(penlink_archive_scan(ar, NULL, on_record, &s), PENLINK_OK);
    penlink_archive_close(ar);
    assert_true(s.in_order);
    return s.n;
}

static int count_cb(void *user, const void *any)
{
    (void)any;
    (*(uint64_t *)user)++;
    return 0;
}

/* An archive at f->path that a signed pen's full pull left, with a
 * configuration entry and an annotation. */
static void make_archive(fx *f)
{
    new_pen(f, 1);
    penlink_archive *ar = NULL;
    assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_pull(ar, f->d, NULL, &res), PENLINK_OK);
    assert_int_equal(res.next_seq, RECORDS);
    penlink_config cfg = PENLINK_CONFIG_INIT;
    cfg.present = PENLINK_CFG_DEPTH_MAX_UM;
    cfg.revision = 3;
    cfg.depth_max_um = 1500;
    assert_int_equal(penlink_archive_log_config(ar, SERIAL, "read", NULL, &cfg), PENLINK_OK);
    assert_int_equal(penlink_archive_annotate(ar, "gap:" SERIAL ":1", "tech", "seen"), PENLINK_OK);
    penlink_archive_close(ar);
}

/* ---- the pull ----------------------------------------------------------- */

/* A pull into a new archive: opened, the pen's log pulled, closed. After a
 * failure the archive holds a prefix of the log that covers every record
 * the pen was told to forget, and a pull without failures completes it. */
static void pull_sweep(fx *f, int signs)
{
    long failures = 0, n;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_NEXT(n)) {
        remove_archive(f->path);
        new_pen(f, signs);
        penlink_archive *ar = NULL;
        penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
        arm(n);
        int rc = penlink_archive_open(f->ctx, f->path, &ar);
        if (rc == PENLINK_OK)
            rc = penlink_archive_pull(ar, f->d, NULL, &res);
        penlink_archive_close(ar);
        disarm();
        if (!fired) {
            assert_int_equal(rc, PENLINK_OK);
            assert_int_equal(res.records_new, RECORDS);
            assert_int_equal(archived_prefix(f, f->path), RECORDS);
            break;
        }
        assert_failed_well(f, rc);
        if (rc != PENLINK_OK)
            failures++;
        if (access(f->path, F_OK) != 0)
            continue; /* failed before the file was made */
        uint64_t have = archived_prefix(f, f->path);
        if (f->p.acks)
            assert_true(have > f->p.acked_through);
        /* the next pull, without failures, brings the rest */
        new_pen(f, signs);
        assert_int_equal(penlink_archive_open(f->ctx, f->path, &ar), PENLINK_OK);
        rc = penlink_archive_pull(ar, f->d, NULL, &res);
        if (rc != PENLINK_OK)
            fail_msg("pull after a failure at allocation %ld (had %llu): %s", n,
                     (unsigned long long)have, penlink_ctx_errmsg(f->ctx));
        assert_int_equal(res.next_seq, RECORDS);
        penlink_archive_close(ar);
        assert_int_equal(archived_prefix(f, f->path), RECORDS);
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
}

static void test_pull_unsigned(void **state)
{
    pull_sweep(*state, 0);
}

static void test_pull_signed(void **state)
{
    pull_sweep(*state, 1);
}

/* ---- reading ------------------------------------------------------------ */

typedef struct reading {
    uint64_t records, alarms, devices, serials, configs, notes, reports, verified;
    uint64_t treatments, findings, usage, verifications, keys;
    penlink_audit_summary sum;
    penlink_verification last;
    int have_key;
} reading;

static int on_any_record(void *user, const char *serial, const penlink_record *r)
{
    (void)serial;
    (void)r;
    ((reading *)user)->records++;
    return 0;
}

static int on_alarm(void *user, const penlink_alarm *a)
{
    return count_cb(&((reading *)user)->alarms, a);
}

static int on_device(void *user, const penlink_archive_device *d)
{
    return count_cb(&((reading *)user)->devices, d);
}

static int on_serial(void *user, const char *s)
{
    return count_cb(&((reading *)user)->serials, s);
}

static int on_config(void *user, const penlink_config_entry *e)
{
    return count_cb(&((reading *)user)->configs, e);
}

static int on_note(void *user, const penlink_annotation *a)
{
    return count_cb(&((reading *)user)->notes, a);
}

static int on_key(void *user, const penlink_key_replacement *k)
{
    return count_cb(&((reading *)user)->keys, k);
}

static int on_report(void *user, const penlink_verify_report *r)
{
    reading *g = user;
    g->reports++;
    if (r->state == PENLINK_VERIFY_OK)
        g->verified += r->records;
    return 0;
}

static int on_treatment(void *user, const penlink_treatment *t)
{
    return count_cb(&((reading *)user)->treatments, t);
}

static int on_finding(void *user, const penlink_finding *x)
{
    return count_cb(&((reading *)user)->findings, x);
}

static int on_usage(void *user, const penlink_usage *u)
{
    return count_cb(&((reading *)user)->usage, u);
}

static int on_verification(void *user, const penlink_verification *v)
{
    return count_cb(&((reading *)user)->verifications, v);
}

/* Every reading operation, each through a read-only opening of its own. */
static int read_all(fx *f, reading *g)
{
    penlink_archive *ar = NULL;
    memset(g, 0, sizeof *g);
    g->sum.size = sizeof g->sum;
    g->last.size = sizeof g->last;
    int rc = penlink_archive_open_readonly(f->ctx, f->path, &ar);
    if (rc == PENLINK_OK)
        rc = penlink_archive_scan(ar, NULL, on_any_record, g);
    penlink_archive_filter one = { .size = sizeof(penlink_archive_filter), .serial = SERIAL };
    if (rc == PENLINK_OK)
        rc = penlink_archive_alarms(ar, &one, on_alarm, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_devices(ar, on_device, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_serials(ar, on_serial, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_config_history(ar, SERIAL, on_config, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_annotations(ar, on_note, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_key_replacements(ar, NULL, on_key, g);
    uint8_t key[32];
    if (rc == PENLINK_OK)
        rc = penlink_archive_pen_key(ar, SERIAL, key, &g->have_key);
    if (rc == PENLINK_OK)
        rc = penlink_archive_verify(ar, NULL, on_report, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_verification_get(ar, SERIAL, &g->last);
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_treatment = on_treatment,
                            .on_finding = on_finding,
                            .on_usage = on_usage,
                            .user = g,
                            .usage_by = PENLINK_PERIOD_MONTH,
                            .on_verification = on_verification };
    if (rc == PENLINK_OK)
        rc = penlink_audit_run(ar, NULL, &cb, &g->sum);
    penlink_archive_close(ar);
    return rc;
}

static void test_reading(void **state)
{
    fx *f = *state;
    make_archive(f);
    reading want, got;
    assert_int_equal(read_all(f, &want), PENLINK_OK);
    assert_int_equal(want.records, RECORDS);
    assert_int_equal(want.devices, 1);
    assert_int_equal(want.serials, 1);
    assert_int_equal(want.configs, 1);
    assert_int_equal(want.notes, 1);
    assert_int_equal(want.reports, 1);
    assert_int_equal(want.verified, RECORDS);
    assert_true(want.have_key);
    assert_int_equal(want.sum.records, RECORDS);
    long failures = 0, n;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_EVERY(n)) {
        arm(n);
        int rc = read_all(f, &got);
        disarm();
        if (!fired) {
            assert_int_equal(rc, PENLINK_OK);
            break;
        }
        assert_failed_well(f, rc);
        if (rc != PENLINK_OK) {
            failures++;
            continue;
        }
        /* absorbed: the same answers */
        assert_int_equal(got.records, want.records);
        assert_int_equal(got.alarms, want.alarms);
        assert_int_equal(got.verified, want.verified);
        assert_int_equal(got.treatments, want.treatments);
        assert_int_equal(got.findings, want.findings);
        assert_int_equal(got.sum.verdict, want.sum.verdict);
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
    assert_int_equal(got.records, want.records);
    assert_int_equal(got.findings, want.findings);
    assert_int_equal(got.usage, want.usage);
    assert_int_equal(got.verifications, want.verifications);
}

/* ---- writing ------------------------------------------------------------ */

typedef struct writes {
    uint64_t notes, configs, keys;
    int verification;
} writes;

static void what_is_written(fx *f, writes *w)
{
    reading g;
    assert_int_equal(read_all(f, &g), PENLINK_OK);
    assert_int_equal(g.records, RECORDS);
    assert_int_equal(g.verified, RECORDS);
    w->notes = g.notes;
    w->configs = g.configs;
    w->keys = g.keys;
    w->verification = g.last.have && !g.last.computed;
}

/* Each write on a copy of the archive: an annotation, a configuration
 * written, a verification stored, a device key replaced. */
static int write_all(fx *f, const penlink_info *info)
{
    penlink_archive *ar = NULL;
    int rc = penlink_archive_open(f->ctx, f->path, &ar);
    if (rc == PENLINK_OK)
        rc = penlink_archive_annotate(ar, "conflict:" SERIAL ":2", "tech", "checked");
    penlink_config old_cfg, new_cfg;
    memset(&old_cfg, 0, sizeof old_cfg);
    old_cfg.size = sizeof old_cfg;
    old_cfg.present = PENLINK_CFG_DEPTH_MAX_UM;
    old_cfg.revision = 3;
    old_cfg.depth_max_um = 1500;
    new_cfg = old_cfg;
    new_cfg.revision = 4;
    new_cfg.depth_max_um = 1200;
    if (rc == PENLINK_OK)
        rc = penlink_archive_log_config_write(ar, info, &old_cfg, &new_cfg);
    penlink_verify_report r;
    memset(&r, 0, sizeof r);
    snprintf(r.serial, sizeof r.serial, "%s", SERIAL);
    r.state = PENLINK_VERIFY_OK;
    r.records = RECORDS;
    r.signed_through = RECORDS;
    if (rc == PENLINK_OK)
        rc = penlink_archive_verification_save(ar, &r);
    penlink_info replaced = *info;
    memset(replaced.device_key, 0x5a, sizeof replaced.device_key);
    if (rc == PENLINK_OK)
        rc = penlink_archive_key_replace(ar, &replaced, "new board", NULL);
    penlink_archive_close(ar);
    return rc;
}

static void test_writing(void **state)
{
    fx *f = *state;
    make_archive(f);
    penlink_info info = PENLINK_INFO_INIT;
    assert_int_equal(penlink_dev_info(f->d, &info), PENLINK_OK);
    copy_file(f->path, f->copy);
    writes before, after;
    what_is_written(f, &before);
    long failures = 0, n;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_NEXT(n)) {
        remove_archive(f->path);
        copy_file(f->copy, f->path);
        arm(n);
        int rc = write_all(f, &info);
        disarm();
        if (!fired && rc != PENLINK_OK)
            fail_msg("%s", penlink_ctx_errmsg(f->ctx));
        if (fired)
            assert_failed_well(f, rc);
        failures += rc != PENLINK_OK;
        /* each write there whole or not at all, in order, the log intact */
        what_is_written(f, &after);
        assert_in_range(after.notes, before.notes, before.notes + 1);
        assert_in_range(after.configs, before.configs, before.configs + 1);
        assert_in_range(after.keys, before.keys, before.keys + 1);
        if (after.configs > before.configs)
            assert_true(after.notes > before.notes);
        if (after.keys > before.keys)
            assert_true(after.verification);
        if (!fired) {
            assert_true(after.notes > before.notes && after.keys > before.keys);
            break;
        }
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
}

/* ---- pushing ------------------------------------------------------------ */

static int push_cb(void *user, const penlink_push_report *r)
{
    *(penlink_push_report *)user = *r;
    return 0;
}

/* One archive pushed into a new one: what arrives verifies, and a push
 * again without failures completes it. */
static void test_push(void **state)
{
    fx *f = *state;
    make_archive(f);
    long failures = 0, n;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_NEXT(n)) {
        remove_archive(f->other);
        penlink_archive *from = NULL, *to = NULL;
        penlink_push_report rep;
        memset(&rep, 0, sizeof rep);
        arm(n);
        int rc = penlink_archive_open_readonly(f->ctx, f->path, &from);
        if (rc == PENLINK_OK)
            rc = penlink_archive_open(f->ctx, f->other, &to);
        if (rc == PENLINK_OK)
            rc = penlink_archive_push(from, to, NULL, push_cb, &rep);
        penlink_archive_close(to);
        penlink_archive_close(from);
        disarm();
        if (!fired) {
            assert_int_equal(rc, PENLINK_OK);
            assert_int_equal(rep.records_new, RECORDS);
            assert_int_equal(archived_prefix(f, f->other), RECORDS);
            break;
        }
        assert_failed_well(f, rc);
        failures += rc != PENLINK_OK;
        if (access(f->other, F_OK) != 0)
            continue;
        archived_prefix(f, f->other);
        assert_int_equal(penlink_archive_open_readonly(f->ctx, f->path, &from), PENLINK_OK);
        assert_int_equal(penlink_archive_open(f->ctx, f->other, &to), PENLINK_OK);
        assert_int_equal(penlink_archive_push(from, to, NULL, push_cb, &rep), PENLINK_OK);
        penlink_archive_close(to);
        penlink_archive_close(from);
        assert_int_equal(archived_prefix(f, f->other), RECORDS);
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
}

/* ---- an archive of schema 1, migrated --------------------------------- */

static const char *fixtures; /* tests/fixtures ($PENLINK_FIXTURES) */

static char *slurp(const char *path, size_t *len)
{
    FILE *in = fopen(path, "rb");
    if (!in)
        fail_msg("%s: cannot open", path);
    char *buf = NULL;
    size_t cap = 0, n = 0, r;
    do {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        r = fread(buf + n, 1, cap - n, in);
        n += r;
    } while (r > 0);
    fclose(in);
    buf[n] = '\0';
    *len = n;
    return buf;
}

typedef struct tally {
    uint64_t records, findings, treatments;
    penlink_audit_summary sum;
} tally;

static int tally_record(void *user, const char *serial, const penlink_record *r)
{
    (void)serial;
    (void)r;
    ((tally *)user)->records++;
    return 0;
}

static int tally_finding(void *user, const penlink_finding *x)
{
    return count_cb(&((tally *)user)->findings, x);
}

static int tally_treatment(void *user, const penlink_treatment *t)
{
    return count_cb(&((tally *)user)->treatments, t);
}

/* Opened for writing (which migrates), scanned and audited. */
static int open_and_audit(fx *f, tally *t)
{
    memset(t, 0, sizeof *t);
    t->sum.size = sizeof t->sum;
    penlink_archive *ar = NULL;
    int rc = penlink_archive_open(f->ctx, f->path, &ar);
    if (rc == PENLINK_OK)
        rc = penlink_archive_scan(ar, NULL, tally_record, t);
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_treatment = tally_treatment,
                            .on_finding = tally_finding,
                            .user = t,
                            .usage_by = PENLINK_PERIOD_DAY };
    if (rc == PENLINK_OK)
        rc = penlink_audit_run(ar, NULL, &cb, &t->sum);
    penlink_archive_close(ar);
    return rc;
}

/* Schema 1 (tests/fixtures/archive-v1.sql) migrated on opening: after a
 * failure the archive is of one schema or the other, whole, and opens. */
static void test_migration(void **state)
{
    fx *f = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/archive-v1.sql", fixtures);
    size_t len;
    char *text = slurp(path, &len);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->copy, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, text, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    free(text);
    tally want, got;
    remove_archive(f->path);
    copy_file(f->copy, f->path);
    assert_int_equal(open_and_audit(f, &want), PENLINK_OK);
    assert_true(want.records > 0);
    long failures = 0, n;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_EVERY(n)) {
        remove_archive(f->path);
        copy_file(f->copy, f->path);
        arm(n);
        int rc = open_and_audit(f, &got);
        disarm();
        if (fired)
            assert_failed_well(f, rc);
        else
            assert_int_equal(rc, PENLINK_OK);
        failures += rc != PENLINK_OK;
        if (rc != PENLINK_OK)
            assert_int_equal(open_and_audit(f, &got), PENLINK_OK);
        assert_int_equal(got.records, want.records);
        assert_int_equal(got.findings, want.findings);
        assert_int_equal(got.treatments, want.treatments);
        assert_int_equal(got.sum.verdict, want.sum.verdict);
        if (!fired)
            break;
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
}

/* ---- the decoder ---------------------------------------------------------- */

static int count_record(void *user, const penlink_record *r)
{
    (void)r;
    (*(uint64_t *)user)++;
    return 0;
}

static int decode(penlink_ctx *ctx, const char *data, size_t len, uint64_t *records)
{
    penlink_decoder *dec = NULL;
    *records = 0;
    int rc = penlink_decoder_new(ctx, count_record, NULL, records, &dec);
    /* in pieces, as a file is read */
    for (size_t at = 0; rc == PENLINK_OK && at < len; at += 4096)
        rc = penlink_decoder_feed(dec, data + at, len - at < 4096 ? len - at : 4096);
    if (rc == PENLINK_OK)
        rc = penlink_decoder_finish(dec);
    penlink_decoder_free(dec);
    return rc;
}

/* Captures of pulls decoded with the decoder's allocations failing: an
 * error, or every record. */
static void test_decoder(void **state)
{
    fx *f = *state;
    static const char *captures[] = { "twopens.pcapng", "t2t3.pcapng", "usb_noise.pcapng" };
    for (size_t c = 0; c < sizeof captures / sizeof captures[0]; c++) {
        char path[512];
        snprintf(path, sizeof path, "%s/captures/%s", fixtures, captures[c]);
        size_t len;
        char *data = slurp(path, &len);
        uint64_t want, got;
        assert_int_equal(decode(f->ctx, data, len, &want), PENLINK_OK);
        assert_true(want > 0);
        long failures = 0, n;
        for (n = 0; n < SWEEP_MAX; n++) {
            arm(n);
            int rc = decode(f->ctx, data, len, &got);
            disarm();
            if (!fired) {
                assert_int_equal(rc, PENLINK_OK);
                assert_int_equal(got, want);
                break;
            }
            assert_failed_well(f, rc);
            if (rc == PENLINK_OK)
                assert_int_equal(got, want);
            else
                failures++;
        }
        assert_true(failures > 0);
        free(data);
    }
}

/* The same sweeps with memory that, once gone, stays gone: the failures
 * then reach the rollbacks and the cleanups too. */
#define PERSISTENT(name)                                                                           \
    static void name##_persistent(void **state)                                                    \
    {                                                                                              \
        persistent = 1;                                                                            \
        name(state);                                                                               \
    }
PERSISTENT(test_pull_unsigned)
PERSISTENT(test_pull_signed)
PERSISTENT(test_reading)
PERSISTENT(test_writing)
PERSISTENT(test_push)
PERSISTENT(test_migration)

int main(void)
{
    fixtures = getenv("PENLINK_FIXTURES"); /* tests/fixtures, set by ctest */
    sparse = getenv("PENLINK_SWEEP_SPARSE") != NULL;
    if (!fixtures) {
        fprintf(stderr, "PENLINK_FIXTURES: name the tests/fixtures directory\n");
        return 2;
    }
    install_sqlite_allocator();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pull_unsigned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_signed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decoder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_unsigned_persistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull_signed_persistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reading_persistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writing_persistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_persistent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_persistent, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
