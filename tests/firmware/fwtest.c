/* The firmware tests' rig: RAM flash, simulated hardware, protocol client. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "fwtest.h"
#include "splitmix64.h"

uint64_t fw_rand(uint64_t *s)
{
    return splitmix64_next(s);
}

/* ---- RAM flash --------------------------------------------------------- */

void rf_init(ramflash *f, uint32_t ssize, uint32_t count)
{
    memset(f, 0, sizeof *f);
    f->ssize = ssize;
    f->count = count;
    f->mem = malloc((size_t)ssize * count);
    assert_non_null(f->mem);
    memset(f->mem, 0xFF, (size_t)ssize * count);
    f->rng = 42;
}

void rf_free(ramflash *f)
{
    for (size_t i = 0; i < f->n; i++)
        free(f->trace[i].data);
    free(f->trace);
    free(f->mem);
    memset(f, 0, sizeof *f);
}

void rf_apply(uint8_t *mem, uint32_t ssize, const rf_op *op, bool torn, uint64_t seed)
{
    uint32_t n = op->len;
    uint64_t s = seed;
    if (torn)
        n = (uint32_t)(fw_rand(&s) % (op->len + 1u));
    if (op->erase) {
        (void)ssize;
        memset(mem + op->addr, 0xFF, n);
        return;
    }
    for (uint32_t i = 0; i < n; i++)
        mem[op->addr + i] &= op->data[i];
    if (torn && n < op->len) /* the byte in flight gets some of its bits */
        mem[op->addr + n] &= (uint8_t)(op->data[n] | fw_rand(&s));
}

static void record_op(ramflash *f, bool erase, uint32_t addr, const void *buf, uint32_t len)
{
    rf_op *op;
    if (!f->tracing)
        return;
    if (f->n == f->cap) {
        f->cap = f->cap ? 2 * f->cap : 1024;
        f->trace = realloc(f->trace, f->cap * sizeof *f->trace);
        assert_non_null(f->trace);
    }
    op = &f->trace[f->n++];
    op->erase = erase;
    op->addr = addr;
    op->len = len;
    op->data = NULL;
    if (!erase) {
        op->data = malloc(len);
        assert_non_null(op->data);
        memcpy(op->data, buf, len);
    }
}

static int rf_read(void *ctx, uint32_t addr, void *buf, uint32_t len)
{
    rig *r = ctx;
    ramflash *f = &r->fl;
    if (f->dead || (uint64_t)addr + len > (uint64_t)f->ssize * f->count)
        return -1;
    memcpy(buf, f->mem + addr, len);
    f->read_bytes += len;
    return 0;
}

static int rf_program(void *ctx, uint32_t addr, const void *buf, uint32_t len)
{
    rig *r = ctx;
    ramflash *f = &r->fl;
    rf_op op = { false, addr, len, (uint8_t *)buf };
    if (f->dead || (uint64_t)addr + len > (uint64_t)f->ssize * f->count)
        return -1;
    f->ops++;
    record_op(f, false, addr, buf, len);
    if (f->cut_at && f->ops == f->cut_at) {
        rf_apply(f->mem, f->ssize, &op, true, fw_rand(&f->rng));
        f->dead = true;
        return -1;
    }
    /* NOR: a program never sets a bit; the core must never rely on it */
    for (uint32_t i = 0; i < len; i++)
        assert_true((((const uint8_t *)buf)[i] & ~f->mem[addr + i]) == 0);
    rf_apply(f->mem, f->ssize, &op, false, 0);
    return 0;
}

static int rf_erase(void *ctx, uint32_t sector)
{
    rig *r = ctx;
    ramflash *f = &r->fl;
    rf_op op = { true, sector * f->ssize, f->ssize, NULL };
    if (f->dead || sector >= f->count)
        return -1;
    f->ops++;
    record_op(f, true, op.addr, NULL, op.len);
    if (f->cut_at && f->ops == f->cut_at) {
        rf_apply(f->mem, f->ssize, &op, true, fw_rand(&f->rng));
        f->dead = true;
        return -1;
    }
    rf_apply(f->mem, f->ssize, &op, false, 0);
    return 0;
}

/* ---- simulated hardware ------------------------------------------------ */

static uint64_t h_mono(void *ctx)
{
    rig *r = ctx;
    return (uint64_t)r->clock_ms;
}

static int64_t h_rtc_get(void *ctx)
{
    rig *r = ctx;
    return r->clock_ms + r->rtc_off;
}

static int h_rtc_set(void *ctx, int64_t ms)
{
    rig *r = ctx;
    r->rtc_off = ms - r->clock_ms;
    return 0;
}

static int h_send(void *ctx, const uint8_t *data, size_t len)
{
    rig *r = ctx;
    if (r->tx_len + len > r->tx_cap) {
        r->tx_cap = (r->tx_len + len) * 2;
        r->tx = realloc(r->tx, r->tx_cap);
        assert_non_null(r->tx);
    }
    memcpy(r->tx + r->tx_len, data, len);
    r->tx_len += len;
    if (len > r->max_frame_seen)
        r->max_frame_seen = len;
    return 0;
}

static int h_cart(void *ctx, pen_cartridge *out)
{
    rig *r = ctx;
    *out = r->cart;
    return 0;
}

static int h_cart_write(void *ctx, uint32_t uses)
{
    rig *r = ctx;
    r->cart.uses = uses;
    return 0;
}

static int h_sensors(void *ctx, pen_sensors *out)
{
    rig *r = ctx;
    *out = r->sens;
    return 0;
}

static void h_logged(void *ctx, const pl_record *rec)
{
    rig *r = ctx;
    if (r->gt_n == r->gt_cap) {
        r->gt_cap = r->gt_cap ? 2 * r->gt_cap : 1024;
        r->gt = realloc(r->gt, r->gt_cap * sizeof *r->gt);
        r->gt_op = realloc(r->gt_op, r->gt_cap * sizeof *r->gt_op);
        assert_non_null(r->gt);
        assert_non_null(r->gt_op);
    }
    r->gt[r->gt_n] = *rec;
    r->gt_op[r->gt_n++] = r->fl.ops;
}

/* Identify: the rig counts the signals it was asked for. */
static int h_identify(void *ctx, uint32_t seconds)
{
    rig *r = ctx;
    r->identify_calls++;
    r->identify_seconds = seconds;
    return 0;
}

void rig_init(rig *r, uint32_t ssize, uint32_t count, uint32_t batch)
{
    usage_params up;
    memset(r, 0, sizeof *r);
    rf_init(&r->fl, ssize, count);
    r->hal.ctx = r;
    r->hal.flash_sector_size = ssize;
    r->hal.flash_sector_count = count;
    r->hal.flash_read = rf_read;
    r->hal.flash_program = rf_program;
    r->hal.flash_erase = rf_erase;
    r->hal.mono_ms = h_mono;
    r->hal.rtc_get_ms = h_rtc_get;
    r->hal.rtc_set_ms = h_rtc_set;
    r->hal.usb_send = h_send;
    r->hal.cartridge_read = h_cart;
    r->hal.cartridge_write_uses = h_cart_write;
    r->hal.sensors_read = h_sensors;
    r->hal.record_logged = h_logged;
    r->hal.identify = h_identify;
    pen_opts_default(&r->opts);
    r->opts.serial = "PLTEST01";
    r->opts.batch_records = batch;
    r->p = malloc(sizeof *r->p);
    assert_non_null(r->p);
    r->clock_ms = 1767225600000ll;
    r->sens.depth_um = 500;
    r->sens.speed_sps = 100;
    r->host_max = 65536;
    usage_params_default(&up);
    up.seed = 7;
    up.start_ms = r->clock_ms;
    up.power_cycle_permille = 0;
    usage_model_init(&r->model, &up);
}

void rig_free(rig *r)
{
    if (r->up)
        pen_fini(r->p);
    free(r->p);
    free(r->tx);
    free(r->gt);
    free(r->gt_op);
    rf_free(&r->fl);
    memset(r, 0, sizeof *r);
}

pen_status rig_boot(rig *r)
{
    if (r->up)
        pen_fini(r->p);
    r->up = false;
    r->tx_len = 0;
    pen_status st = pen_init(r->p, &r->hal, &r->opts);
    r->up = st == PEN_OK;
    return st;
}

void rig_settle(rig *r)
{
    for (int i = 0; i < 100000; i++)
        if (!pen_poll(r->p))
            return;
    fail_msg("pen_poll does not become idle");
}

pen_status rig_event(rig *r)
{
    pl_record ev;
    const pen_config *c = pen_get_config(r->p);
    pen *p = r->p;
    pen_status st = PEN_OK;

    r->model.p.depth_min_um = c->depth_min_um;
    r->model.p.depth_max_um = c->depth_max_um;
    r->model.p.speed_min_sps = c->speed_min_sps;
    r->model.p.speed_max_sps = c->speed_max_sps;
    r->model.p.max_cartridge_uses = c->max_cartridge_uses;
    usage_model_next(&r->model, &ev);
    if (ev.time_ms > r->clock_ms)
        r->clock_ms = ev.time_ms;
    switch (ev.kind) {
    case PL_REC_POWER_ON: st = pen_power_on(p); break;
    case PL_REC_POWER_OFF: st = pen_power_off(p); break;
    case PL_REC_CARTRIDGE_INSERTED:
    case PL_REC_CARTRIDGE_REFUSED:
        r->cart.serial = ev.cartridge_serial;
        r->cart.uses = ev.cartridge_uses - 1;
        st = pen_cartridge_inserted(p);
        break;
    case PL_REC_CARTRIDGE_REMOVED: st = pen_cartridge_removed(p); break;
    case PL_REC_TREATMENT_START:
        r->sens.depth_um = ev.depth_um;
        r->sens.speed_sps = ev.speed_sps;
        st = pen_treatment_start(p);
        break;
    case PL_REC_TREATMENT_END:
        r->sens.strokes += ev.strokes;
        st = pen_treatment_end(p);
        break;
    case PL_REC_DEPTH_CHANGED:
        r->sens.depth_um = ev.depth_um;
        st = pen_depth_changed(p);
        break;
    case PL_REC_SPEED_CHANGED:
        r->sens.speed_sps = ev.speed_sps;
        st = pen_speed_changed(p);
        break;
    case PL_REC_FAULT: st = pen_fault(p, ev.fault_code); break;
    default: break;
    }
    if (st == PEN_ERR_STATE || st == PEN_REFUSED)
        st = PEN_OK; /* e.g. a treatment without an accepted cartridge after a reboot */
    return st;
}

/* ---- client ------------------------------------------------------------ */

size_t rig_frame(const pl_envelope *env, uint8_t *out, size_t cap)
{
    long n = pl_envelope_frame(env, out, cap);
    assert_true(n > 0);
    return (size_t)n;
}

size_t rig_take(rig *r, pl_envelope ***out)
{
    pl_frame_decoder d;
    size_t cap = PL_FRAME_HEADER_SIZE + PL_FRAME_MAX_PAYLOAD, n = 0, pos = 0, vcap = 0;
    uint8_t *buf = malloc(cap);
    pl_envelope **v = NULL;
    assert_non_null(buf);
    assert_int_equal(pl_frame_decoder_init(&d, buf, cap, PL_FRAME_MAX_PAYLOAD), PL_OK);
    while (pos < r->tx_len) {
        size_t used = 0;
        pl_frame f;
        pl_status st = pl_frame_decoder_feed(&d, r->tx + pos, r->tx_len - pos, &used, &f);
        pos += used;
        if (st == PL_NEED_MORE)
            break;
        assert_int_equal(st, PL_OK); /* the pen only sends well-formed frames */
        assert_true(f.len <= r->host_max || f.len <= PL_FRAME_MIN_PAYLOAD);
        pl_envelope *e = pl_envelope_unpack(NULL, f.payload, f.len);
        assert_non_null(e);
        if (n == vcap) {
            vcap = vcap ? 2 * vcap : 16;
            v = realloc(v, vcap * sizeof *v);
            assert_non_null(v);
        }
        v[n++] = e;
    }
    assert_int_equal(pos, r->tx_len); /* no partial frame left over */
    r->tx_len = 0;
    free(buf);
    *out = v;
    return n;
}

void rig_replies_free(pl_envelope **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pl_envelope_free(NULL, v[i]);
    free(v);
}

size_t rig_call(rig *r, pl_envelope *env, pl_envelope ***out)
{
    uint8_t buf[4096];
    size_t n = rig_frame(env, buf, sizeof buf);
    pen_usb_rx(r->p, buf, n);
    rig_settle(r);
    return rig_take(r, out);
}

int rig_error_code(const pl_envelope *e)
{
    if (e->body_case != PENLINK__V1__ENVELOPE__BODY_ERROR)
        return -1;
    return (int)e->error->code;
}

pl_envelope *rig_hello(rig *r)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__Hello h = PENLINK__V1__HELLO__INIT;
    h.has_protocol_major = h.has_protocol_minor = h.has_max_frame_payload = h.has_features = 1;
    h.protocol_major = 1;
    h.features = 7;
    h.max_frame_payload = r->host_max;
    h.client = "fwtest";
    env.has_request_id = 1;
    env.request_id = ++r->rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    size_t n = rig_call(r, &env, &v);
    assert_int_equal(n, 1);
    pl_envelope *e = v[0];
    free(v);
    return e;
}

void rig_pull_all(rig *r, uint64_t from, uint32_t max_chunks, pull_result *out)
{
    pl_chunk_dec dec;
    size_t cap = 0;
    memset(out, 0, sizeof *out);
    assert_int_equal(pl_chunk_dec_init(&dec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW), PL_OK);
    out->first_available = UINT64_MAX;
    for (int round = 0; round < 100000; round++) {
        pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
        Penlink__V1__PullLog q = PENLINK__V1__PULL_LOG__INIT;
        q.has_from_seq = q.has_max_chunks = 1;
        q.from_seq = from;
        q.max_chunks = max_chunks;
        env.has_request_id = 1;
        env.request_id = ++r->rid;
        env.body_case = PENLINK__V1__ENVELOPE__BODY_PULL_LOG;
        env.pull_log = &q;
        size_t n = rig_call(r, &env, &v);
        assert_true(n >= 1);
        bool more = false;
        for (size_t i = 0; i < n; i++) {
            pl_envelope *e = v[i];
            assert_int_equal(e->request_id, env.request_id);
            if (e->body_case == PENLINK__V1__ENVELOPE__BODY_ERROR) {
                out->error = (int)e->error->code;
                assert_int_equal(i, n - 1);
                break;
            }
            if (e->body_case == PENLINK__V1__ENVELOPE__BODY_LOG_END) {
                assert_int_equal(i, n - 1);
                more = e->log_end->more;
                out->next_seq = e->log_end->next_seq;
                if (out->first_available == UINT64_MAX)
                    out->first_available = e->log_end->first_available_seq;
                from = e->log_end->next_seq;
                continue;
            }
            assert_int_equal(e->body_case, PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK);
            Penlink__V1__LogChunk *c = e->log_chunk;
            if (out->n + c->record_count > cap) {
                cap = (out->n + c->record_count) * 2;
                out->rec = realloc(out->rec, cap * sizeof *out->rec);
                assert_non_null(out->rec);
            }
            pl_chunk_expect ex = { c->first_seq, c->record_count, c->raw_size, 1 };
            uint32_t got = 0;
            assert_int_equal(pl_chunk_decode(&dec, c->data.data, c->data.len, &ex,
                                             out->rec + out->n, c->record_count, &got),
                             PL_OK);
            assert_int_equal(got, c->record_count);
            out->n += got;
            out->chunks++;
        }
        rig_replies_free(v, n);
        if (out->error || !more)
            break;
    }
    pl_chunk_dec_fini(&dec);
}

void pull_result_free(pull_result *p)
{
    free(p->rec);
    memset(p, 0, sizeof *p);
}

int64_t rig_ack(rig *r, uint64_t through)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__AckLog a = PENLINK__V1__ACK_LOG__INIT;
    a.has_through_seq = 1;
    a.through_seq = through;
    env.has_request_id = 1;
    env.request_id = ++r->rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_ACK_LOG;
    env.ack_log = &a;
    size_t n = rig_call(r, &env, &v);
    assert_int_equal(n, 1);
    int64_t res = v[0]->body_case == PENLINK__V1__ENVELOPE__BODY_ACK_LOG_REPLY
                      ? (int64_t)v[0]->ack_log_reply->acked_seq
                      : -(int64_t)rig_error_code(v[0]);
    rig_replies_free(v, n);
    return res;
}

int rig_info(rig *r, uint64_t *first, uint64_t *next, uint64_t *acked, uint32_t *cfg_rev)
{
    pl_envelope env = PENLINK__V1__ENVELOPE__INIT, **v;
    Penlink__V1__GetInfo g = PENLINK__V1__GET_INFO__INIT;
    env.has_request_id = 1;
    env.request_id = ++r->rid;
    env.body_case = PENLINK__V1__ENVELOPE__BODY_GET_INFO;
    env.get_info = &g;
    size_t n = rig_call(r, &env, &v);
    assert_int_equal(n, 1);
    int rc = 0;
    if (v[0]->body_case == PENLINK__V1__ENVELOPE__BODY_DEVICE_INFO) {
        Penlink__V1__DeviceInfo *d = v[0]->device_info;
        if (first)
            *first = d->log_first_seq;
        if (next)
            *next = d->log_next_seq;
        if (acked)
            *acked = d->log_acked_seq;
        if (cfg_rev)
            *cfg_rev = d->config_revision;
    } else {
        rc = rig_error_code(v[0]);
    }
    rig_replies_free(v, n);
    return rc;
}

void rig_attach(rig *r, pen *p)
{
    memset(r, 0, sizeof *r);
    r->p = p;
    r->host_max = 65536;
}

int rig_send_hook(void *ctx, const uint8_t *data, size_t len)
{
    return h_send(ctx, data, len);
}

int fw_truth_parse(const char *line, pl_record *out)
{
    json_error_t err;
    json_t *o = json_loads(line, 0, &err), *v;
    const char *key;
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!o || !json_is_object(o))
        goto out;
    if (!json_is_integer(json_object_get(o, "seq")) ||
        !json_is_integer(json_object_get(o, "time_ms")) ||
        !json_is_string(json_object_get(o, "kind")))
        goto out;
    out->seq = (uint64_t)json_integer_value(json_object_get(o, "seq"));
    out->time_ms = (int64_t)json_integer_value(json_object_get(o, "time_ms"));
    out->kind = pl_record_kind_from_name(json_string_value(json_object_get(o, "kind")));
    if (out->kind == 0)
        goto out;
    json_object_foreach(o, key, v)
    {
        uint32_t bit = 0;
        if (!strcmp(key, "seq") || !strcmp(key, "time_ms") || !strcmp(key, "kind"))
            continue;
        for (uint32_t b = 1; b < PL_F_ALL; b <<= 1)
            if (pl_record_field_name(b) && !strcmp(pl_record_field_name(b), key))
                bit = b;
        if (!bit || !json_is_integer(v))
            goto out;
        out->fields |= bit;
        pl_record_set(out, bit, (uint64_t)json_integer_value(v));
    }
    rc = out->fields == pl_record_kind_fields(out->kind) ? 0 : -1;
out:
    json_decref(o);
    return rc;
}

void fw_truth_load(const char *dir, fw_truth *t)
{
    char path[512], line[1024];
    size_t cap = 0;
    snprintf(path, sizeof path, "%s/ground-truth.jsonl", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    memset(t, 0, sizeof *t);
    while (fgets(line, sizeof line, f)) {
        if (t->n == cap) {
            cap = cap ? 2 * cap : 1024;
            t->rec = realloc(t->rec, cap * sizeof *t->rec);
            assert_non_null(t->rec);
        }
        if (fw_truth_parse(line, &t->rec[t->n]) != 0)
            fail_msg("ground truth line %zu is not a record: %s", t->n + 1, line);
        if (t->rec[t->n].seq != t->n)
            fail_msg("ground truth line %zu has seq %" PRIu64, t->n + 1, t->rec[t->n].seq);
        t->n++;
    }
    fclose(f);
}
