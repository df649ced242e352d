/*
 * The REAL libusb transport of libpenlink against pens emulated by umockdev,
 * with the firmware-stub core behind their endpoints: enumeration, info, a
 * config round trip, a pull of more than 100,000 records, stall and recovery,
 * a timeout, an unplug mid-pull (clear error, nothing corrupted, the next
 * pull resumes), two pens, two pens of one serial (told apart by port), a
 * desk of two and of three pens on different
 * ports (one behind a hub): listed in port order with label, model and
 * firmware, opened by port path, made to signal with identify; and the
 * penlink program itself (its main(), linked into this test) running info
 * and pull over the emulated bus.
 *
 * Run under umockdev-wrapper; `test_usb NAME` runs one test (one ctest
 * entry each). Outside umockdev-wrapper it fails (exit 1): it never skips.
 */
#define _DEFAULT_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <getopt.h>

#include "emu_pen.h"
#include "fwtest.h"
#include "penlink/penlink.h"

int penlink_cli_main(int argc, char **argv);

#define MAX_RIGS 4

typedef struct fixture {
    emu_pen *emu;
    rig rigs[MAX_RIGS];
    int idx[MAX_RIGS];
    int n;
    penlink_ctx *ctx;
} fixture;

static fixture *cur; /* usb_send has only the rig as context */

static int to_usb(void *ctx, const uint8_t *data, size_t len)
{
    for (int i = 0; i < cur->n; i++)
        if (&cur->rigs[i] == ctx)
            return emu_pen_deliver(cur->emu, cur->idx[i], data, len);
    return -1;
}

/* A pen with @p records records logged (ground truth in rig.gt), on the bus
 * at port path @p ports ("2", "3.1"; NULL: the next free root port), with
 * device label @p label (NULL: none). */
static void add_pen_at(fixture *f, const char *serial, size_t records, const char *ports,
                       const char *label)
{
    int i = f->n++;
    rig *r = &f->rigs[i];
    rig_init(r, 4096, 320, PL_CHUNK_BATCH);
    r->opts.serial = serial;
    assert_int_equal(rig_boot(r), PEN_OK);
    while (r->gt_n < records) {
        pen_status st = rig_event(r);
        assert_true(st >= 0 || st == PEN_ERR_STATE);
        if (r->gt_n % 64 == 0)
            rig_settle(r);
    }
    rig_settle(r);
    if (label) {
        pen_config_change chg;
        memset(&chg, 0, sizeof chg);
        chg.set = PEN_CFG_LABEL;
        chg.label = label;
        chg.label_len = (uint32_t)strlen(label);
        assert_int_equal(pen_set_config(r->p, 0, &chg, NULL), PEN_OK);
        rig_settle(r);
    }
    r->hal.usb_send = to_usb; /* from now on the pen talks over the bus */
    f->idx[i] =
        ports ? emu_pen_add_at(f->emu, r->p, serial, ports) : emu_pen_add(f->emu, r->p, serial);
}

static void add_pen(fixture *f, const char *serial, size_t records)
{
    add_pen_at(f, serial, records, NULL, NULL);
}

static int setup_n(void **state, int pens, size_t records)
{
    fixture *f = calloc(1, sizeof *f);
    cur = f;
    f->emu = emu_pen_new();
    if (!f->emu) {
        /* a failure, never a skip: ctest always starts this under the wrapper */
        fprintf(stderr, "test_usb: no emulated USB device: run me under umockdev-wrapper\n");
        exit(1);
    }
    static const char *serials[] = { "PEN-USB-001", "PEN-USB-002" };
    for (int i = 0; i < pens; i++)
        add_pen(f, serials[i], records);
    assert_int_equal(penlink_ctx_new(&f->ctx), PENLINK_OK);
    *state = f;
    return 0;
}

static int setup_one(void **state)
{
    return setup_n(state, 1, 3000);
}

static int setup_big(void **state)
{
    return setup_n(state, 1, 100500);
}

static int setup_two(void **state)
{
    return setup_n(state, 2, 500);
}

/* Two pens on ports 1-2 and 1-1, plugged in in that order. */
static int setup_desk_two(void **state)
{
    setup_n(state, 0, 0);
    fixture *f = *state;
    add_pen_at(f, "PEN-DESK-B", 200, "2", "Room 2");
    add_pen_at(f, "PEN-DESK-A", 200, "1", NULL);
    return 0;
}

/* Three pens: on port 1-10, behind the hub on port 3 (1-3.1), and on 1-2. */
static int setup_desk_three(void **state)
{
    setup_n(state, 0, 0);
    fixture *f = *state;
    emu_pen_add_hub(f->emu, "3");
    add_pen_at(f, "PEN-D10", 200, "10", "Room 10");
    add_pen_at(f, "PEN-D31", 200, "3.1", "Treatment room");
    add_pen_at(f, "PEN-D2", 200, "2", NULL);
    return 0;
}

/* Two pens presenting the same serial, on ports 1-1 and 1-2. */
static int setup_same_serial(void **state)
{
    setup_n(state, 0, 0);
    fixture *f = *state;
    add_pen_at(f, "PEN-SAME", 200, "1", NULL);
    add_pen_at(f, "PEN-SAME", 300, "2", "Room 2");
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    penlink_ctx_free(f->ctx); /* libusb contexts are gone before the testbed */
    emu_pen_free(f->emu);
    for (int i = 0; i < f->n; i++)
        rig_free(&f->rigs[i]);
    free(f);
    return 0;
}

typedef struct collect {
    uint64_t n, next, bad;
    const rig *truth;
    emu_pen *emu;
    int unplug_after; /* records; 0 never */
} collect;

static int on_record(void *user, const penlink_record *rec)
{
    collect *c = user;
    if (c->n && rec->seq != c->next)
        c->bad++;
    if (rec->seq >= c->truth->gt_n ||
        !pl_record_equal((const pl_record *)rec, &c->truth->gt[rec->seq]))
        c->bad++;
    c->next = rec->seq + 1;
    c->n++;
    return 0;
}

static void on_progress(void *user, const penlink_progress *p)
{
    collect *c = user;
    if (c->unplug_after && p->records >= (uint64_t)c->unplug_after) {
        emu_pen_unplug(c->emu, 0);
        c->unplug_after = 0;
    }
}

static void test_enumerate(void **state)
{
    fixture *f = *state;
    penlink_found **found = NULL;
    size_t n = 0;
    assert_int_equal(penlink_dev_list(f->ctx, &found, &n), PENLINK_OK);
    assert_int_equal(n, 1);
    assert_string_equal(found[0]->serial, "PEN-USB-001");
    assert_string_equal(found[0]->uri, "usb:PEN-USB-001");
    assert_int_equal(found[0]->status, PENLINK_OK);
    assert_null(found[1]); /* NULL-terminated */
    penlink_dev_list_free(found);
    penlink_dev_list_free(NULL);
    assert_int_equal(penlink_dev_list(f->ctx, NULL, &n), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_list(f->ctx, &found, NULL), PENLINK_ERR_INVALID_ARG);
}

/* PENLINK_USB_ID: pens of another VID:PID are looked for instead; a value
 * that is not VID:PID in hex leaves the default. */
static void test_usb_id(void **state)
{
    fixture *f = *state;
    penlink_found **found = NULL;
    size_t n = 9;
    penlink_dev *d = NULL;
    assert_int_equal(setenv("PENLINK_USB_ID", "dead:beef", 1), 0);
    assert_int_equal(penlink_dev_list(f->ctx, &found, &n), PENLINK_OK);
    assert_int_equal(n, 0);
    assert_null(found[0]);
    penlink_dev_list_free(found);
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_ERR_NOT_FOUND);
    assert_null(d);
    char id[16];
    snprintf(id, sizeof id, "%04x:%04x", PENLINK_USB_VID, PENLINK_USB_PID);
    const char *found_as[] = { id, "not an id", "12345:1", "1209" };
    for (size_t i = 0; i < sizeof found_as / sizeof found_as[0]; i++) {
        assert_int_equal(setenv("PENLINK_USB_ID", found_as[i], 1), 0);
        n = 0;
        assert_int_equal(penlink_dev_list(f->ctx, &found, &n), PENLINK_OK);
        assert_int_equal(n, 1);
        assert_string_equal(found[0]->serial, "PEN-USB-001");
        penlink_dev_list_free(found);
    }
    unsetenv("PENLINK_USB_ID");
}

/* Waiting for a plug or unplug: nothing changes within no time; a cancelled
 * context stops the wait at once; no context is refused. */
static void test_wait_change(void **state)
{
    fixture *f = *state;
    int changed = -1;
    assert_int_equal(penlink_dev_wait_change(NULL, 0, &changed), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_wait_change(f->ctx, 0, NULL), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_wait_change(f->ctx, 0, &changed), PENLINK_OK);
    assert_int_equal(changed, 0);
    penlink_ctx_cancel(f->ctx);
    assert_int_equal(penlink_dev_wait_change(f->ctx, 60000, &changed), PENLINK_ERR_CANCELLED);
    penlink_ctx_reset_cancel(f->ctx);
    assert_int_equal(penlink_dev_wait_change(f->ctx, 0, &changed), PENLINK_OK);
    assert_int_equal(changed, 0);
}

static void test_info(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_OK);
    penlink_info i = PENLINK_INFO_INIT;
    assert_int_equal(penlink_dev_info(d, &i), PENLINK_OK);
    assert_string_equal(i.serial, "PEN-USB-001");
    assert_int_equal(i.log_next_seq, f->rigs[0].gt_n);
    assert_int_equal(i.protocol_major, 1);
    assert_true(i.limits.depth_max_um >= i.limits.depth_min_um);
    assert_int_equal(i.size, sizeof i);
    /* a penlink_info without its size (no PENLINK_INFO_INIT) is refused, untouched */
    penlink_info bare;
    memset(&bare, 0, sizeof bare);
    assert_int_equal(penlink_dev_info(d, &bare), PENLINK_ERR_INVALID_ARG);
    assert_string_equal(bare.serial, "");
    penlink_dev_close(d);
    /* by serial too, and a wrong serial is "not found" with a hint */
    assert_int_equal(penlink_dev_open(f->ctx, "usb:PEN-USB-001", &d), PENLINK_OK);
    penlink_dev_close(d);
    assert_int_equal(penlink_dev_open(f->ctx, "usb:NOPE", &d), PENLINK_ERR_NOT_FOUND);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "no pen with serial NOPE"));
}

static void test_config(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    penlink_config c = PENLINK_CONFIG_INIT, after = PENLINK_CONFIG_INIT,
                   result = PENLINK_CONFIG_INIT;
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_OK);
    assert_int_equal(penlink_dev_config_get(d, &c), PENLINK_OK);
    penlink_config change = PENLINK_CONFIG_INIT;
    penlink_config_set_u32(&change, PENLINK_CFG_DEPTH_MAX_UM, 2500);
    penlink_config_set_text(&change, PENLINK_CFG_CLINIC_ID, "CLINIC-USB");
    assert_int_equal(penlink_dev_config_set(d, c.revision, &change, &result), PENLINK_OK);
    assert_int_equal(result.revision, c.revision + 1);
    assert_int_equal(penlink_dev_config_get(d, &after), PENLINK_OK);
    assert_int_equal(after.depth_max_um, 2500);
    assert_string_equal(after.clinic_id, "CLINIC-USB");
    /* a stale revision is a conflict, and nothing changes */
    penlink_config_set_u32(&change, PENLINK_CFG_DEPTH_MAX_UM, 2000);
    assert_int_equal(penlink_dev_config_set(d, c.revision, &change, NULL), PENLINK_ERR_CONFLICT);
    assert_int_equal(penlink_dev_config_get(d, &after), PENLINK_OK);
    assert_int_equal(after.depth_max_um, 2500);
    penlink_dev_close(d);
}

static void pull_all(fixture *f, penlink_dev *d, uint64_t from, collect *c, int want)
{
    penlink_pull_cb cb = { .size = sizeof(penlink_pull_cb),
                           .on_record = on_record,
                           .on_progress = on_progress,
                           .user = c };
    penlink_pull_result res = PENLINK_PULL_RESULT_INIT;
    assert_int_equal(penlink_dev_pull(d, from, &cb, &res), want);
    (void)f;
}

static void test_pull_large(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    collect c = { .truth = &f->rigs[0] };
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_OK);
    pull_all(f, d, 0, &c, PENLINK_OK);
    assert_true(c.n >= 100000);
    assert_int_equal(c.n, f->rigs[0].gt_n);
    assert_int_equal(c.bad, 0);
    uint64_t acked = 0;
    assert_int_equal(penlink_dev_ack(d, c.next - 1, &acked), PENLINK_OK);
    assert_int_equal(acked, c.next);
    penlink_dev_close(d);
    print_message("pulled %llu records over emulated USB\n", (unsigned long long)c.n);
}

/* A stall on OUT, then on IN: cleared, and the requests still succeed. */
static void test_stall(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    penlink_info i = PENLINK_INFO_INIT;
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_OK);
    emu_pen_stall_next(f->emu, 0); /* the next bulk URB: the OUT of GetInfo */
    assert_int_equal(penlink_dev_info(d, &i), PENLINK_OK);
    assert_int_equal(i.log_next_seq, f->rigs[0].gt_n);
    collect c = { .truth = &f->rigs[0] };
    emu_pen_stall_next(f->emu, 0);
    pull_all(f, d, 0, &c, PENLINK_OK);
    assert_int_equal(c.n, f->rigs[0].gt_n);
    assert_int_equal(c.bad, 0);
    penlink_dev_close(d);
}

/* A transfer that never completes: a timeout that says what timed out, then
 * the next request works. */
static void test_timeout(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    penlink_info i = PENLINK_INFO_INIT;
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_OK);
    penlink_dev_set_timeout(d, 200, 0);
    emu_pen_never_complete_next(f->emu, 0);
    assert_int_equal(penlink_dev_info(d, &i), PENLINK_ERR_TIMEOUT);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "timed out"));
    penlink_dev_set_timeout(d, 2000, 2);
    assert_int_equal(penlink_dev_info(d, &i), PENLINK_OK);
    assert_int_equal(i.log_next_seq, f->rigs[0].gt_n);
    penlink_dev_close(d);
}

/* Unplugged mid-pull: a clear "gone" error, the records before it intact,
 * nothing acknowledged; plugged back in, the next pull resumes. */
static void test_unplug(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    collect c = { .truth = &f->rigs[0], .emu = f->emu, .unplug_after = 1000 };
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_OK);
    pull_all(f, d, 0, &c, PENLINK_ERR_GONE);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "gone"));
    assert_true(c.n >= 1000 && c.n < f->rigs[0].gt_n);
    assert_int_equal(c.bad, 0);
    penlink_dev_close(d);
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_ERR_NOT_FOUND);
    /* plugged in again (a new address, as after a real replug) */
    f->idx[0] = emu_pen_add(f->emu, f->rigs[0].p, "PEN-USB-001");
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_OK);
    penlink_info i = PENLINK_INFO_INIT;
    assert_int_equal(penlink_dev_info(d, &i), PENLINK_OK);
    assert_int_equal(i.log_acked_seq, 0);
    uint64_t had = c.n;
    pull_all(f, d, c.next, &c, PENLINK_OK);
    assert_int_equal(c.n, f->rigs[0].gt_n);
    assert_true(c.n > had);
    assert_int_equal(c.bad, 0);
    penlink_dev_close(d);
}

/* Two pens: "usb" names neither and lists both; a serial picks one. */
static void test_two_pens(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_ERR_AMBIGUOUS);
    const char *m = penlink_ctx_errmsg(f->ctx);
    assert_non_null(strstr(m, "usb:PEN-USB-001"));
    assert_non_null(strstr(m, "usb:PEN-USB-002"));
    assert_int_equal(penlink_dev_open(f->ctx, "usb:PEN-USB-002", &d), PENLINK_OK);
    penlink_info i = PENLINK_INFO_INIT;
    assert_int_equal(penlink_dev_info(d, &i), PENLINK_OK);
    assert_string_equal(i.serial, "PEN-USB-002");
    penlink_dev_close(d);
}

static int cli(const char *out, int argc, ...);

/* The whole of a file (static buffer). */
static const char *slurp(const char *path)
{
    static char buf[8192];
    FILE *o = fopen(path, "r");
    assert_non_null(o);
    size_t n = fread(buf, 1, sizeof buf - 1, o);
    fclose(o);
    buf[n] = '\0';
    return buf;
}

/* The rig whose pen has serial @p serial. */
static rig *rig_of(fixture *f, const char *serial)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->rigs[i].opts.serial, serial) == 0)
            return &f->rigs[i];
    fail_msg("no pen %s", serial);
    return NULL;
}

/* A desk of pens: listed in port order with port, label, model and firmware;
 * each opened by its port path; identify reaches the pen on that port only. */
static void check_desk(fixture *f, const char *const ports[], const char *const serials[],
                       const char *const labels[], size_t n)
{
    penlink_found **found = NULL;
    size_t got = 0;
    assert_int_equal(penlink_dev_list(f->ctx, &found, &got), PENLINK_OK);
    assert_int_equal(got, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(found[i]->port, ports[i]);
        assert_string_equal(found[i]->serial, serials[i]);
        assert_int_equal(found[i]->status, PENLINK_OK);
        char where[64];
        snprintf(where, sizeof where, "usb port %s (bus 1 device ", ports[i]);
        assert_non_null(strstr(found[i]->where, where));
    }
    assert_null(found[n]);
    penlink_dev_list_free(found);
    char dir[] = "/tmp/penlink-usb-desk.XXXXXX", out[64];
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/out", dir);
    /* the CLI's table: one line per pen, in port order */
    assert_int_equal(cli(out, 2, "penlink", "list"), 0);
    const char *text = slurp(out);
    print_message("$ penlink list\n%s", text); /* what docs/technician-guide.md shows */
    assert_non_null(
        strstr(text, "PORT       SERIAL           LABEL            MODEL          FIRMWARE"));
    const char *at = text;
    for (size_t i = 0; i < n; i++) {
        char row[160];
        snprintf(row, sizeof row, "\n%-10s %-16s %-16s %-14s %-9s ok\n", ports[i], serials[i],
                 labels[i] ? labels[i] : "-", "penlink MN-1", "0.1.0");
        const char *p = strstr(at, row);
        if (!p)
            fail_msg("penlink list: no row '%s' after the rows before it in:\n%s", row + 1, text);
        at = p + 1;
    }
    /* each pen by its port; identify signals that one alone */
    for (size_t i = 0; i < n; i++) {
        char uri[40];
        snprintf(uri, sizeof uri, "usb:%s", ports[i]);
        penlink_dev *d = NULL;
        assert_int_equal(penlink_dev_open(f->ctx, uri, &d), PENLINK_OK);
        penlink_info info = PENLINK_INFO_INIT;
        assert_int_equal(penlink_dev_info(d, &info), PENLINK_OK);
        assert_string_equal(info.serial, serials[i]);
        assert_true(info.features & PENLINK_FEATURE_IDENTIFY);
        penlink_dev_close(d);
        unsigned before[MAX_RIGS];
        for (int k = 0; k < f->n; k++)
            before[k] = f->rigs[k].identify_calls;
        char secs[8];
        snprintf(secs, sizeof secs, "%zu", 3 + i);
        assert_int_equal(cli(out, 6, "penlink", "--device", uri, "identify", "--seconds", secs), 0);
        for (int k = 0; k < f->n; k++) {
            int me = &f->rigs[k] == rig_of(f, serials[i]);
            assert_int_equal(f->rigs[k].identify_calls, before[k] + (me ? 1 : 0));
            if (me)
                assert_int_equal(f->rigs[k].identify_seconds, 3 + i);
        }
        char said[80];
        snprintf(said, sizeof said, "%s (penlink MN-1) is blinking and beeping for %zu s",
                 serials[i], 3 + i);
        assert_non_null(strstr(slurp(out), said));
    }
    /* "usb" names none of them: the message lists each with its port */
    penlink_dev *d = NULL;
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_ERR_AMBIGUOUS);
    for (size_t i = 0; i < n; i++) {
        char item[64];
        snprintf(item, sizeof item, "usb:%s (port %s)", serials[i], ports[i]);
        assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), item));
    }
    unlink(out);
    rmdir(dir);
}

static void test_desk_two(void **state)
{
    static const char *const ports[] = { "1-1", "1-2" };
    static const char *const serials[] = { "PEN-DESK-A", "PEN-DESK-B" };
    static const char *const labels[] = { NULL, "Room 2" };
    check_desk(*state, ports, serials, labels, 2);
}

static void test_desk_three(void **state)
{
    fixture *f = *state;
    static const char *const ports[] = { "1-2", "1-3.1", "1-10" };
    static const char *const serials[] = { "PEN-D2", "PEN-D31", "PEN-D10" };
    static const char *const labels[] = { NULL, "Treatment room", "Room 10" };
    check_desk(f, ports, serials, labels, 3);
    /* the hub is no pen; a serial of a port's shape is named serial= */
    penlink_dev *d = NULL;
    assert_int_equal(penlink_dev_open(f->ctx, "usb:1-3", &d), PENLINK_ERR_NOT_FOUND);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "no pen is plugged into USB port 1-3"));
    assert_int_equal(penlink_dev_open(f->ctx, "usb:serial=PEN-D31", &d), PENLINK_OK);
    penlink_dev_close(d);
}

/* Two pens of one serial: the serial names neither; penlink says the serials
 * clash and offers their ports, which do name each. */
static void test_same_serial(void **state)
{
    fixture *f = *state;
    penlink_dev *d = NULL;
    assert_int_equal(penlink_dev_open(f->ctx, "usb:PEN-SAME", &d), PENLINK_ERR_AMBIGUOUS);
    const char *m = penlink_ctx_errmsg(f->ctx);
    print_message("usb:PEN-SAME: %s\n", m);
    assert_non_null(strstr(m, "present serial PEN-SAME: the serials clash"));
    assert_non_null(strstr(m, "--device: usb:1-1 or usb:1-2"));
    assert_null(strstr(m, "usb:PEN-SAME"));
    assert_int_equal(penlink_dev_open(f->ctx, "usb", &d), PENLINK_ERR_AMBIGUOUS);
    m = penlink_ctx_errmsg(f->ctx);
    print_message("usb: %s\n", m);
    assert_non_null(strstr(m, "usb:1-1 (serial PEN-SAME)"));
    assert_non_null(strstr(m, "usb:1-2 (serial PEN-SAME)"));
    assert_non_null(strstr(m, "some serials clash"));
    assert_null(strstr(m, "usb:PEN-SAME"));
    /* what it offers works: each port opens its own pen */
    assert_int_equal(penlink_dev_open(f->ctx, "usb:1-2", &d), PENLINK_OK);
    penlink_info info = PENLINK_INFO_INIT;
    assert_int_equal(penlink_dev_info(d, &info), PENLINK_OK);
    assert_string_equal(info.serial, "PEN-SAME");
    assert_int_equal(info.log_next_seq, f->rigs[1].gt_n);
    penlink_dev_close(d);
    /* an empty serial= is a usage error, and a bare usb: names every form */
    assert_int_equal(penlink_dev_open(f->ctx, "usb:serial=", &d), PENLINK_ERR_INVALID_ARG);
    assert_int_equal(penlink_dev_open(f->ctx, "usb:", &d), PENLINK_ERR_INVALID_ARG);
    assert_non_null(strstr(penlink_ctx_errmsg(f->ctx), "usb:BUS-PORT.PORT"));
}

static int cli(const char *out, int argc, ...)
{
    char *argv[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    fflush(stdout);
    int saved = dup(1);
    FILE *f = freopen(out, "w", stdout);
    assert_non_null(f);
    optind = 0;
    int rc = penlink_cli_main(argc, argv);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    clearerr(stdout);
    return rc;
}

/* The penlink program itself over the emulated bus. */
static void test_cli(void **state)
{
    fixture *f = *state;
    char dir[] = "/tmp/penlink-usb-cli.XXXXXX", out[64], plog[64];
    assert_non_null(mkdtemp(dir));
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(plog, sizeof plog, "%s/pen.plog", dir);
    assert_int_equal(cli(out, 3, "penlink", "--json", "info"), 0);
    char buf[4096] = "";
    FILE *o = fopen(out, "r");
    size_t n = fread(buf, 1, sizeof buf - 1, o);
    fclose(o);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "\"serial\":\"PEN-USB-001\""));
    assert_int_equal(cli(out, 4, "penlink", "pull", "-o", plog), 0);
    assert_int_equal(cli(out, 5, "penlink", "decode", "--format", "csv", plog), 0);
    o = fopen(out, "r");
    size_t lines = 0;
    int ch;
    while ((ch = fgetc(o)) != EOF)
        lines += ch == '\n';
    fclose(o);
    assert_int_equal(lines, f->rigs[0].gt_n + 1); /* + header */
    unlink(out);
    unlink(plog);
    rmdir(dir);
}

typedef struct trace_check {
    const rig *truth;
    uint64_t n, bad, usb_messages;
} trace_check;

static int trace_record(void *user, const penlink_record *rec)
{
    trace_check *t = user;
    if (rec->seq != t->n || rec->seq >= t->truth->gt_n ||
        !pl_record_equal((const pl_record *)rec, &t->truth->gt[rec->seq]))
        t->bad++;
    t->n++;
    return 0;
}

static int trace_message(void *user, const penlink_message *m)
{
    trace_check *t = user;
    /* bulk OUT 0x01 and IN 0x81 of the pen (stream = bus << 16 | address << 8 | endpoint) */
    int ep = (int)(m->stream & 0xFF);
    if (m->problem || (m->direction == PENLINK_DIR_TO_PEN ? ep != 0x01 : ep != 0x81))
        t->bad++;
    t->usb_messages++;
    return 0;
}

/* The pen's records as penlink-sim writes ground-truth.jsonl. */
static void write_truth(const rig *r, const char *path)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < r->gt_n; i++) {
        const penlink_record *rec = (const penlink_record *)&r->gt[i];
        fprintf(f, "{\"seq\":%llu,\"time_ms\":%lld,\"kind\":\"%s\"", (unsigned long long)rec->seq,
                (long long)rec->time_ms, penlink_record_kind_name(rec->kind));
        for (uint32_t b = 0; b < PENLINK_FIELD_COUNT; b++)
            if (rec->fields & (1u << b)) {
                uint64_t v = penlink_record_field_get(rec, 1u << b);
                if ((1u << b) == PENLINK_F_CLOCK_DELTA_MS)
                    fprintf(f, ",\"%s\":%lld", penlink_record_field_name(1u << b), (long long)v);
                else
                    fprintf(f, ",\"%s\":%llu", penlink_record_field_name(1u << b),
                            (unsigned long long)v);
            }
        fputs("}\n", f);
    }
    fclose(f);
}

/* penlink --trace over the real libusb path: a usbmon-style pcapng whose
 * frames decode to the pen's records, on the pen's endpoints. With
 * PENLINK_TRACE_DIR set, the trace and the pen's ground truth are left
 * there for the tshark check (tests/scripts/test_wireshark.sh). */
static void test_trace(void **state)
{
    fixture *f = *state;
    char dir[] = "/tmp/penlink-usb-trace.XXXXXX", out[96], plog[96], trace[300], truth[300];
    assert_non_null(mkdtemp(dir));
    const char *keep = getenv("PENLINK_TRACE_DIR");
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(plog, sizeof plog, "%s/pen.plog", dir);
    snprintf(trace, sizeof trace, "%s/usb.pcapng", keep ? keep : dir);
    snprintf(truth, sizeof truth, "%s/ground-truth.jsonl", keep ? keep : dir);
    assert_int_equal(cli(out, 6, "penlink", "--trace", trace, "pull", "-o", plog), 0);
    write_truth(&f->rigs[0], truth);

    trace_check t = { .truth = &f->rigs[0] };
    penlink_decoder *dec = NULL;
    assert_int_equal(penlink_decoder_new(f->ctx, trace_record, NULL, &t, &dec), PENLINK_OK);
    assert_int_equal(penlink_decoder_set_message_cb(dec, trace_message, &t), PENLINK_OK);
    FILE *in = fopen(trace, "rb");
    assert_non_null(in);
    static unsigned char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(penlink_decoder_feed(dec, buf, n), PENLINK_OK);
    fclose(in);
    assert_int_equal(penlink_decoder_finish(dec), PENLINK_OK);
    assert_int_equal(penlink_decoder_format(dec), PENLINK_INPUT_CAPTURE);
    penlink_decoder_free(dec);
    assert_int_equal(t.n, f->rigs[0].gt_n);
    assert_int_equal(t.bad, 0);
    assert_true(t.usb_messages > 10);
    unlink(out);
    unlink(plog);
    if (!keep) {
        unlink(trace);
        unlink(truth);
    }
    rmdir(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enumerate, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_usb_id, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_wait_change, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_info, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_config, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_pull_large, setup_big, teardown),
        cmocka_unit_test_setup_teardown(test_stall, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_timeout, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_unplug, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_two_pens, setup_two, teardown),
        cmocka_unit_test_setup_teardown(test_desk_two, setup_desk_two, teardown),
        cmocka_unit_test_setup_teardown(test_desk_three, setup_desk_three, teardown),
        cmocka_unit_test_setup_teardown(test_same_serial, setup_same_serial, teardown),
        cmocka_unit_test_setup_teardown(test_cli, setup_one, teardown),
        cmocka_unit_test_setup_teardown(test_trace, setup_one, teardown),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests_name("usb", tests, NULL, NULL);
}
