/*
 * The PostgreSQL archive when the connection drops: a throwaway cluster
 * (tests/scripts/pg_cluster.sh), and every operation run again and again
 * with the connection cut (its socket shut down, as a network cut leaves
 * it) just before the n-th call into libpq on run n, until a run meets no
 * cut. Each run must return an error status in words or succeed with the
 * right answer, and the archive must be left as a transaction leaves it: a
 * pull's records a prefix of the pen's log covering everything the pen was
 * told to forget, a push's records a prefix of the source's, each write
 * whole or absent; a run without a cut completes what was cut.
 */
#define _POSIX_C_SOURCE 200809L
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "archive.h"
#include "device.h"
#include "fake_transport.h"
#include "script_pen.h"

#define SERIAL SCRIPT_PEN_SERIAL
#define RECORDS SCRIPT_PEN_RECORDS
#define SWEEP_MAX 100000 /* more libpq calls than any operation here makes */

/* ---- cutting the connection --------------------------------------------- */

static long countdown = -1; /* libpq calls left before the cut; -1: none */
static long cuts;           /* connections cut since armed */

static void maybe_cut(PGconn *conn)
{
    if (countdown < 0)
        return;
    if (countdown-- == 0 && conn && PQsocket(conn) >= 0) {
        shutdown(PQsocket(conn), SHUT_RDWR);
        cuts++;
    }
}

static void arm(long n)
{
    cuts = 0;
    countdown = n;
}

static void disarm(void)
{
    countdown = -1;
}

int __real_PQsendQueryParams(PGconn *c, const char *q, int n, const Oid *t, const char *const *v,
                             const int *l, const int *f, int rf);
int __real_PQsendQuery(PGconn *c, const char *q);
int __real_PQsendPrepare(PGconn *c, const char *s, const char *q, int n, const Oid *t);
int __real_PQsendQueryPrepared(PGconn *c, const char *s, int n, const char *const *v, const int *l,
                               const int *f, int rf);
int __real_PQpipelineSync(PGconn *c);
int __real_PQputCopyData(PGconn *c, const char *b, int n);
int __real_PQputCopyEnd(PGconn *c, const char *e);
PGresult *__real_PQexec(PGconn *c, const char *q);
PGresult *__real_PQgetResult(PGconn *c);
int __real_PQflush(PGconn *c);
int __real_PQgetCopyData(PGconn *c, char **b, int async);

int __wrap_PQsendQueryParams(PGconn *c, const char *q, int n, const Oid *t, const char *const *v,
                             const int *l, const int *f, int rf)
{
    maybe_cut(c);
    return __real_PQsendQueryParams(c, q, n, t, v, l, f, rf);
}

int __wrap_PQsendQuery(PGconn *c, const char *q)
{
    maybe_cut(c);
    return __real_PQsendQuery(c, q);
}

int __wrap_PQsendPrepare(PGconn *c, const char *s, const char *q, int n, const Oid *t)
{
    maybe_cut(c);
    return __real_PQsendPrepare(c, s, q, n, t);
}

int __wrap_PQsendQueryPrepared(PGconn *c, const char *s, int n, const char *const *v, const int *l,
                               const int *f, int rf)
{
    maybe_cut(c);
    return __real_PQsendQueryPrepared(c, s, n, v, l, f, rf);
}

int __wrap_PQpipelineSync(PGconn *c)
{
    maybe_cut(c);
    return __real_PQpipelineSync(c);
}

int __wrap_PQputCopyData(PGconn *c, const char *b, int n)
{
    maybe_cut(c);
    return __real_PQputCopyData(c, b, n);
}

int __wrap_PQputCopyEnd(PGconn *c, const char *e)
{
    maybe_cut(c);
    return __real_PQputCopyEnd(c, e);
}

PGresult *__wrap_PQexec(PGconn *c, const char *q)
{
    maybe_cut(c);
    return __real_PQexec(c, q);
}

PGresult *__wrap_PQgetResult(PGconn *c)
{
    maybe_cut(c);
    return __real_PQgetResult(c);
}

int __wrap_PQflush(PGconn *c)
{
    maybe_cut(c);
    return __real_PQflush(c);
}

int __wrap_PQgetCopyData(PGconn *c, char **b, int async)
{
    maybe_cut(c);
    return __real_PQgetCopyData(c, b, async);
}

/* ---- the cluster, and the fixture ---------------------------------------- */

static char cluster[64], uri[256], sqlite_path[128];
static const char *scripts; /* tests/scripts ($PENLINK_TEST_SCRIPTS) */

static int cluster_start(void **state)
{
    (void)state;
    /* in memory where the machine has it: the sweep's thousands of commits
     * wait on the disk's syncs otherwise; what is tested is a dropped
     * connection, not a power cut */
    snprintf(cluster, sizeof cluster, "/dev/shm/penlink-test-pgdrop-XXXXXX");
    if (!mkdtemp(cluster)) {
        snprintf(cluster, sizeof cluster, "/tmp/penlink-test-pgdrop-XXXXXX");
        if (!mkdtemp(cluster))
            return -1;
    }
    if (chmod(cluster, 0755) != 0)
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh %s/pg_cluster.sh start %s/pg 5432 > /dev/null", scripts, cluster);
    if (system(cmd) != 0)
        return -1;
    snprintf(uri, sizeof uri, "postgresql://penlink@/postgres?host=%s/pg&port=5432", cluster);
    snprintf(sqlite_path, sizeof sqlite_path, "%s/a.db", cluster);
    return 0;
}

static int cluster_stop(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh %s/pg_cluster.sh stop %s/pg; rm -rf %s", scripts, cluster,
             cluster);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct fx {
    penlink_ctx *ctx;
    fake_wire w;
    script_pen p;
    penlink_dev *d;
} fx;

static void new_pen(fx *f)
{
    if (f->d)
        penlink_dev_close(f->d);
    f->d = NULL;
    script_pen_init(&f->p, 1);
    fake_wire_init(&f->w, script_pen_respond, &f->p);
    transport *t = fake_transport_new(f->ctx, &f->w);
    assert_non_null(t);
    assert_int_equal(dev_open_on(f->ctx, t, &f->d), PENLINK_OK);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    disarm();
    if (f->d)
        penlink_dev_close(f->d);
    penlink_ctx_free(f->ctx);
    free(f);
    return 0;
}

/* The server's archive gone: the next opening makes it anew. */
static void server_empty(void)
{
    PGconn *c = PQconnectdb(uri);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SET client_min_messages = warning; "
                            "DROP SCHEMA IF EXISTS penlink CASCADE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

static void assert_failed_well(const fx *f, int rc)
{
    assert_true(rc <= PENLINK_OK && rc > PENLINK_ERR__SENTINEL);
    if (rc != PENLINK_OK && penlink_ctx_errmsg(f->ctx)[0] == '\0')
        fail_msg("status %d without words", rc);
}

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

/* The records on the server: seqs 0..n-1 of the pen's log, intact. */
static uint64_t archived_prefix(fx *f)
{
    penlink_archive *ar = NULL;
    int rc = penlink_archive_open(f->ctx, uri, &ar);
    if (rc != PENLINK_OK)
        fail_msg("%s", penlink_ctx_errmsg(f->ctx));
    seen s = { 0, 0, 1 };
    assert_int_equal(penlink_archive_scan(ar, NULL, on_record, &s), PENLINK_OK);
    penlink_archive_close(ar);
    assert_true(s.in_order);
    return s.n;
}

/* Every one of the first calls cut in turn, then every so many. */
#define SWEEP_NEXT(n) ((n) + 1 + (n) / 32)

/* ---- the pull ------------------------------------------------------------ */

static void test_pull(void **state)
{
    fx *f = *state;
    long failures = 0, n;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_NEXT(n)) {
        server_empty();
        new_pen(f);
        penlink_archive *ar = NULL;
        penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
        arm(n);
        int rc = penlink_archive_open(f->ctx, uri, &ar);
        if (rc == PENLINK_OK)
            rc = penlink_archive_pull(ar, f->d, NULL, &res);
        penlink_archive_close(ar);
        disarm();
        if (!cuts) {
            assert_int_equal(rc, PENLINK_OK);
            assert_int_equal(res.records_new, RECORDS);
            assert_int_equal(archived_prefix(f), RECORDS);
            break;
        }
        assert_failed_well(f, rc);
        failures += rc != PENLINK_OK;
        uint64_t have = archived_prefix(f);
        if (f->p.acks)
            assert_true(have > f->p.acked_through);
        new_pen(f);
        assert_int_equal(penlink_archive_open(f->ctx, uri, &ar), PENLINK_OK);
        rc = penlink_archive_pull(ar, f->d, NULL, &res);
        if (rc != PENLINK_OK)
            fail_msg("pull after a cut at call %ld: %s", n, penlink_ctx_errmsg(f->ctx));
        penlink_archive_close(ar);
        assert_int_equal(archived_prefix(f), RECORDS);
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
}

/* ---- a push from SQLite -------------------------------------------------- */

static int push_cb(void *user, const penlink_push_report *r)
{
    *(penlink_push_report *)user = *r;
    return 0;
}

static int push(fx *f, penlink_push_report *rep)
{
    penlink_archive *from = NULL, *to = NULL;
    memset(rep, 0, sizeof *rep);
    int rc = penlink_archive_open_readonly(f->ctx, sqlite_path, &from);
    if (rc == PENLINK_OK)
        rc = penlink_archive_open(f->ctx, uri, &to);
    if (rc == PENLINK_OK)
        rc = penlink_archive_push(from, to, NULL, push_cb, rep);
    penlink_archive_close(to);
    penlink_archive_close(from);
    return rc;
}

static void test_push(void **state)
{
    fx *f = *state;
    unlink(sqlite_path);
    new_pen(f);
    penlink_archive *ar = NULL;
    penlink_archive_pull_result res = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    assert_int_equal(penlink_archive_open(f->ctx, sqlite_path, &ar), PENLINK_OK);
    assert_int_equal(penlink_archive_pull(ar, f->d, NULL, &res), PENLINK_OK);
    penlink_config cfg = PENLINK_CONFIG_INIT;
    cfg.present = PENLINK_CFG_AUTO_OFF_S;
    cfg.revision = 2;
    cfg.auto_off_s = 300;
    assert_int_equal(penlink_archive_log_config(ar, SERIAL, "read", NULL, &cfg), PENLINK_OK);
    penlink_archive_close(ar);
    long failures = 0, n;
    penlink_push_report rep;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_NEXT(n)) {
        server_empty();
        arm(n);
        int rc = push(f, &rep);
        disarm();
        if (!cuts) {
            assert_int_equal(rc, PENLINK_OK);
            assert_int_equal(rep.records_new, RECORDS);
            assert_int_equal(rep.configs_new, 1);
            break;
        }
        assert_failed_well(f, rc);
        failures += rc != PENLINK_OK;
        uint64_t have = archived_prefix(f);
        assert_int_equal(push(f, &rep), PENLINK_OK);
        assert_int_equal(rep.records_new + rep.records_same, RECORDS);
        assert_true(rep.records_same <= have);
        assert_int_equal(archived_prefix(f), RECORDS);
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
}

/* ---- reading and writing ------------------------------------------------- */

typedef struct reading {
    uint64_t records, alarms, devices, configs, notes, keys, reports, verified, findings;
    penlink_audit_summary sum;
    penlink_verification last;
} reading;

static int count(void *user, const void *any)
{
    (void)any;
    (*(uint64_t *)user)++;
    return 0;
}

static int on_any_record(void *user, const char *serial, const penlink_record *r)
{
    (void)serial;
    return count(&((reading *)user)->records, r);
}

static int on_alarm(void *user, const penlink_alarm *a)
{
    return count(&((reading *)user)->alarms, a);
}

static int on_device(void *user, const penlink_archive_device *d)
{
    return count(&((reading *)user)->devices, d);
}

static int on_config(void *user, const penlink_config_entry *e)
{
    return count(&((reading *)user)->configs, e);
}

static int on_note(void *user, const penlink_annotation *a)
{
    return count(&((reading *)user)->notes, a);
}

static int on_key(void *user, const penlink_key_replacement *k)
{
    return count(&((reading *)user)->keys, k);
}

static int on_finding(void *user, const penlink_finding *x)
{
    return count(&((reading *)user)->findings, x);
}

static int on_report(void *user, const penlink_verify_report *r)
{
    reading *g = user;
    g->reports++;
    if (r->state == PENLINK_VERIFY_OK)
        g->verified += r->records;
    return 0;
}

static int read_all(fx *f, reading *g)
{
    penlink_archive *ar = NULL;
    memset(g, 0, sizeof *g);
    g->sum.size = sizeof g->sum;
    g->last.size = sizeof g->last;
    int rc = penlink_archive_open_readonly(f->ctx, uri, &ar);
    if (rc == PENLINK_OK)
        rc = penlink_archive_scan(ar, NULL, on_any_record, g);
    penlink_archive_filter one = { .size = sizeof(penlink_archive_filter), .serial = SERIAL };
    if (rc == PENLINK_OK)
        rc = penlink_archive_alarms(ar, &one, on_alarm, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_devices(ar, on_device, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_config_history(ar, SERIAL, on_config, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_annotations(ar, on_note, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_key_replacements(ar, NULL, on_key, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_verify(ar, NULL, on_report, g);
    if (rc == PENLINK_OK)
        rc = penlink_archive_verification_get(ar, SERIAL, &g->last);
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_finding = on_finding,
                            .user = g,
                            .usage_by = PENLINK_PERIOD_WEEK };
    if (rc == PENLINK_OK)
        rc = penlink_audit_run(ar, NULL, &cb, &g->sum);
    penlink_archive_close(ar);
    return rc;
}

static int write_all(fx *f, const penlink_info *info, int round)
{
    penlink_archive *ar = NULL;
    int rc = penlink_archive_open(f->ctx, uri, &ar);
    if (rc == PENLINK_OK)
        rc = penlink_archive_annotate(ar, "gap:" SERIAL ":3", "tech", "looked");
    penlink_config old_cfg, new_cfg;
    memset(&old_cfg, 0, sizeof old_cfg);
    old_cfg.size = sizeof old_cfg;
    old_cfg.present = PENLINK_CFG_AUTO_OFF_S;
    old_cfg.revision = (uint32_t)(2 + 2 * round);
    old_cfg.auto_off_s = 300;
    new_cfg = old_cfg;
    new_cfg.revision++;
    new_cfg.auto_off_s = 240;
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
    penlink_archive_close(ar);
    return rc;
}

/* Reading an archive a pull and a push filled, then writing to it. */
static void test_read_write(void **state)
{
    fx *f = *state;
    server_empty();
    penlink_push_report rep;
    assert_int_equal(push(f, &rep), PENLINK_OK);
    new_pen(f);
    penlink_info info = PENLINK_INFO_INIT;
    assert_int_equal(penlink_dev_info(f->d, &info), PENLINK_OK);
    reading want, got;
    assert_int_equal(read_all(f, &want), PENLINK_OK);
    assert_int_equal(want.records, RECORDS);
    assert_int_equal(want.verified, RECORDS);
    assert_int_equal(want.configs, 1);
    long failures = 0, n;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_NEXT(n)) {
        arm(n);
        int rc = read_all(f, &got);
        disarm();
        if (cuts)
            assert_failed_well(f, rc);
        else
            assert_int_equal(rc, PENLINK_OK);
        failures += rc != PENLINK_OK;
        if (rc == PENLINK_OK) {
            assert_int_equal(got.records, want.records);
            assert_int_equal(got.verified, want.verified);
            assert_int_equal(got.findings, want.findings);
        }
        if (!cuts)
            break;
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);

    failures = 0;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_NEXT(n)) {
        reading before;
        assert_int_equal(read_all(f, &before), PENLINK_OK);
        arm(n);
        int rc = write_all(f, &info, (int)n);
        disarm();
        if (cuts)
            assert_failed_well(f, rc);
        else
            assert_int_equal(rc, PENLINK_OK);
        failures += rc != PENLINK_OK;
        assert_int_equal(read_all(f, &got), PENLINK_OK);
        assert_in_range(got.notes, before.notes, before.notes + 1);
        assert_in_range(got.configs, before.configs, before.configs + 1);
        assert_int_equal(got.records, RECORDS);
        if (!cuts) {
            assert_int_equal(got.notes, before.notes + 1);
            assert_int_equal(got.configs, before.configs + 1);
            assert_true(got.last.have && !got.last.computed);
            break;
        }
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
}

/* ---- setting up the server ----------------------------------------------- */

static void on_line(void *user, const char *line)
{
    (void)line;
    (*(int *)user)++;
}

/* penlink archive init-server on an empty server: after a cut, running it
 * again sets everything up (it is safe to run again), and a third run finds
 * the schema at its version. */
static void test_init_server(void **state)
{
    fx *f = *state;
    long failures = 0, n;
    int lines = 0;
    for (n = 0; n < SWEEP_MAX; n = SWEEP_NEXT(n)) {
        server_empty();
        arm(n);
        int rc =
            penlink_archive_init_server(f->ctx, uri, "pl_writer", "pl_reader", on_line, &lines);
        disarm();
        if (cuts)
            assert_failed_well(f, rc);
        else
            assert_int_equal(rc, PENLINK_OK);
        failures += rc != PENLINK_OK;
        if (rc != PENLINK_OK)
            assert_int_equal(
                penlink_archive_init_server(f->ctx, uri, "pl_writer", "pl_reader", NULL, NULL),
                PENLINK_OK);
        lines = 0;
        assert_int_equal(
            penlink_archive_init_server(f->ctx, uri, "pl_writer", "pl_reader", on_line, &lines),
            PENLINK_OK);
        assert_true(lines >= 3); /* the schema, then each role */
        assert_int_equal(archived_prefix(f), 0);
        if (!cuts)
            break;
    }
    assert_true(n < SWEEP_MAX);
    assert_true(failures > 0);
}

int main(void)
{
    scripts = getenv("PENLINK_TEST_SCRIPTS");
    if (!scripts) {
        fprintf(stderr, "PENLINK_TEST_SCRIPTS: name the tests/scripts directory\n");
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_init_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pull, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, cluster_start, cluster_stop);
}
