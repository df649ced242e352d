/*
 * The device core's life cycle and usage events: boot, the decisions the pen
 * makes when something happens (refusing a used cartridge, clamping a depth
 * to the configured range), and the main-loop work of pen_poll(). The
 * protocol handler is in handler.c, the stores in logstore.c and
 * config_store.c.
 */
#include <string.h>

#include "pen_internal.h"
#include "pl/auth.h"

static void copy_text(char *dst, size_t cap, const char *src, const char *dflt)
{
    size_t n;
    if (!src)
        src = dflt;
    n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

const char *pen_status_str(int st)
{
    switch (st) {
    case PEN_OK: return "success";
    case PEN_REFUSED: return "refused (and logged)";
    case PEN_ERR_ARG: return "invalid argument";
    case PEN_ERR_FLASH: return "flash operation failed";
    case PEN_ERR_GEOMETRY: return "flash too small or sector size unusable";
    case PEN_ERR_STATE: return "not possible in the pen's current state";
    case PEN_ERR_HAL: return "a sensor or the cartridge reader failed";
    case PEN_ERR_CORRUPT: return "flash content is corrupt";
    case PEN_ERR_INTERNAL: return "internal error in the device core";
    case PEN_ERR_INVALID: return "configuration value out of range";
    default: return "unknown status";
    }
}

void pen_opts_default(pen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->serial = "PL0000000";
    o->model = "penlink MN-1";
    o->hardware_revision = "A";
    o->firmware_version = "0.1.0";
    o->protocol_major = PEN_PROTOCOL_MAJOR;
    o->batch_records = PL_CHUNK_BATCH;
}

uint32_t pen_flash_min_sectors(uint32_t sector_size, uint32_t batch_records)
{
    return PEN_FIXED_SECTORS + pen_log_stage_sectors(sector_size, batch_records) +
           PEN_RING_MIN_SECTORS;
}

static void *pb_alloc(void *data, size_t n)
{
    pen *p = data;
    void *m = pl_arena_alloc(&p->arena, n);
    if (!m)
        p->arena_failed = true;
    return m;
}

static void pb_free(void *data, void *ptr)
{
    (void)data; /* the arena is reset as a whole before each request */
    (void)ptr;
}

pen_status pen_init(pen *p, const pen_hal *hal, const pen_opts *opts)
{
    pen_opts def;
    pl_record cfg_rec;
    const pl_record *pending = NULL;
    pen_status st;

    if (!p || !hal || !hal->flash_read || !hal->flash_program || !hal->flash_erase ||
        !hal->mono_ms || !hal->rtc_get_ms || !hal->rtc_set_ms || !hal->usb_send ||
        !hal->cartridge_read || !hal->sensors_read)
        return PEN_ERR_ARG;
    if (!opts) {
        pen_opts_default(&def);
        opts = &def;
    }
    uint32_t batch = opts->batch_records ? opts->batch_records : PL_CHUNK_BATCH;
    if (batch > PL_CHUNK_MAX_RECORDS || opts->pull_max_chunks > PEN_PULL_MAX_CHUNKS)
        return PEN_ERR_ARG;
    memset(p, 0, sizeof *p);
    p->hal = hal;
    p->limits = pen_limits_default;
    copy_text(p->serial, sizeof p->serial, opts->serial, "PL0000000");
    copy_text(p->model, sizeof p->model, opts->model, "penlink MN-1");
    copy_text(p->hw_rev, sizeof p->hw_rev, opts->hardware_revision, "A");
    copy_text(p->fw_ver, sizeof p->fw_ver, opts->firmware_version, "0.1.0");
    p->proto_major = opts->protocol_major ? opts->protocol_major : PEN_PROTOCOL_MAJOR;
    p->tx_max = PL_FRAME_MIN_PAYLOAD;
    p->pull_max = opts->pull_max_chunks ? opts->pull_max_chunks : PEN_PULL_MAX_CHUNKS;
    if (hal->device_key) {
        if (!hal->sign || !hal->verify || !hal->sha256 || !hal->random)
            return PEN_ERR_ARG;
        if (hal->device_key(hal->ctx, p->device_pk) != 0)
            return PEN_ERR_HAL;
        p->has_key = true;
    }
    if (hal->config_key_count && (!p->has_key || !hal->config_keys))
        return PEN_ERR_ARG; /* keys it could not check */
    uint8_t genesis[32], gen_in[PL_AUTH_GENESIS_MAX];
    if (p->has_key) { /* the link before this pen's first chunk */
        size_t n = pl_auth_genesis_bytes(gen_in, p->serial);
        if (n == 0 || hal->sha256(hal->ctx, gen_in, n, NULL, 0, genesis) != 0)
            return PEN_ERR_HAL;
    }

    pl_arena_init(&p->arena, p->arena_buf, sizeof p->arena_buf);
    p->alloc.alloc = pb_alloc;
    p->alloc.free = pb_free;
    p->alloc.allocator_data = p;
    if (pl_frame_decoder_init(&p->rx, p->rx_buf, sizeof p->rx_buf, PEN_RX_MAX_PAYLOAD) != PL_OK)
        return PEN_ERR_INTERNAL;
    if (pl_chunk_enc_init(&p->enc, p->enc_arena, sizeof p->enc_arena) != PL_OK)
        return PEN_ERR_INTERNAL;

    st = pen_cfg_open(&p->cfg, hal, 0);
    if (st == PEN_OK)
        st = pen_log_open(&p->log, hal, 2, batch, &p->enc, p->chunk_buf,
                          p->has_key ? genesis : NULL);
    if (st != PEN_OK)
        goto fail;
    if (pen_cfg_stored(&p->cfg)) {
        memset(&cfg_rec, 0, sizeof cfg_rec);
        cfg_rec.seq = p->cfg.record_seq;
        cfg_rec.time_ms = p->cfg.time_ms;
        cfg_rec.kind = PL_REC_CONFIG_CHANGED;
        cfg_rec.fields = pl_record_kind_fields(cfg_rec.kind);
        cfg_rec.config_revision = p->cfg.cur.revision;
        pending = &cfg_rec;
    }
    st = pen_log_recover(&p->log, pending);
    if (st != PEN_OK)
        goto fail;
    p->boot_mono_ms = hal->mono_ms(hal->ctx);
    return PEN_OK;

fail:
    pen_fini(p);
    return st;
}

void pen_fini(pen *p)
{
    if (p)
        pl_chunk_enc_fini(&p->enc);
}

pen_status pen_log_now(pen *p, pl_record *r)
{
    r->time_ms = p->hal->rtc_get_ms(p->hal->ctx);
    return pen_log_append(&p->log, r);
}

static void rec_init(pl_record *r, uint32_t kind)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->fields = pl_record_kind_fields(kind);
}

int pen_poll(pen *p)
{
    const pen_config *c = &p->cfg.cur;
    if (p->treating &&
        p->hal->mono_ms(p->hal->ctx) - p->treat_start_ms > (uint64_t)c->max_treatment_s * 1000u)
        (void)pen_treatment_end(p); /* the pen stops a treatment that runs too long */
    if (p->pull.active)
        pen_pull_step(p);
    else if (!p->compact_failed && pen_log_wants_compaction(&p->log) &&
             pen_log_compact(&p->log) != PEN_OK)
        p->compact_failed = true; /* retried when staging is full */
    return p->pull.active || (!p->compact_failed && pen_log_wants_compaction(&p->log));
}

/* ---- usage events ------------------------------------------------------ */

pen_status pen_power_on(pen *p)
{
    pl_record r;
    rec_init(&r, PL_REC_POWER_ON);
    return pen_log_now(p, &r);
}

pen_status pen_power_off(pen *p)
{
    pl_record r;
    if (p->treating) {
        pen_status st = pen_treatment_end(p);
        if (st != PEN_OK)
            return st;
    }
    rec_init(&r, PL_REC_POWER_OFF);
    return pen_log_now(p, &r);
}

pen_status pen_cartridge_inserted(pen *p)
{
    pen_cartridge c;
    pl_record r;
    pen_status st;

    if (p->treating)
        return PEN_ERR_STATE;
    if (p->hal->cartridge_read(p->hal->ctx, &c) != 0)
        return PEN_ERR_HAL;
    uint32_t uses = c.uses == UINT32_MAX ? c.uses : c.uses + 1;
    p->cart_ok = false;
    if (c.uses >= p->cfg.cur.max_cartridge_uses) {
        rec_init(&r, PL_REC_CARTRIDGE_REFUSED);
        r.cartridge_serial = c.serial;
        r.cartridge_uses = uses;
        st = pen_log_now(p, &r);
        return st == PEN_OK ? PEN_REFUSED : st;
    }
    /* the chip counts the use before the pen runs with it */
    if (p->hal->cartridge_write_uses && p->hal->cartridge_write_uses(p->hal->ctx, uses) != 0)
        return PEN_ERR_HAL;
    rec_init(&r, PL_REC_CARTRIDGE_INSERTED);
    r.cartridge_serial = c.serial;
    r.cartridge_uses = uses;
    r.lifetime_cartridges = pen_log_lifetime(&p->log) + 1;
    st = pen_log_now(p, &r);
    if (st == PEN_OK) {
        p->cart_ok = true;
        p->cart_serial = c.serial;
    }
    return st;
}

pen_status pen_cartridge_removed(pen *p)
{
    pl_record r;
    if (!p->cart_ok)
        return PEN_ERR_STATE;
    if (p->treating) {
        pen_status st = pen_treatment_end(p);
        if (st != PEN_OK)
            return st;
    }
    rec_init(&r, PL_REC_CARTRIDGE_REMOVED);
    r.cartridge_serial = p->cart_serial;
    p->cart_ok = false;
    return pen_log_now(p, &r);
}

static uint32_t clamp(uint32_t v, uint32_t lo, uint32_t hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static pen_status read_sensors(pen *p, pen_sensors *s)
{
    const pen_config *c = &p->cfg.cur;
    if (p->hal->sensors_read(p->hal->ctx, s) != 0)
        return PEN_ERR_HAL;
    s->depth_um = clamp(s->depth_um, c->depth_min_um, c->depth_max_um);
    s->speed_sps = clamp(s->speed_sps, c->speed_min_sps, c->speed_max_sps);
    return PEN_OK;
}

pen_status pen_treatment_start(pen *p)
{
    pen_sensors s;
    pl_record r;
    if (!p->cart_ok || p->treating)
        return PEN_ERR_STATE;
    pen_status st = read_sensors(p, &s);
    if (st != PEN_OK)
        return st;
    rec_init(&r, PL_REC_TREATMENT_START);
    r.depth_um = s.depth_um;
    r.speed_sps = s.speed_sps;
    r.cartridge_serial = p->cart_serial;
    st = pen_log_now(p, &r);
    if (st == PEN_OK) {
        p->treating = true;
        p->treat_start_ms = p->hal->mono_ms(p->hal->ctx);
        p->treat_start_strokes = s.strokes;
    }
    return st;
}

pen_status pen_treatment_end(pen *p)
{
    pen_sensors s;
    pl_record r;
    if (!p->treating)
        return PEN_ERR_STATE;
    pen_status st = read_sensors(p, &s);
    if (st != PEN_OK)
        return st;
    uint64_t dur = p->hal->mono_ms(p->hal->ctx) - p->treat_start_ms;
    rec_init(&r, PL_REC_TREATMENT_END);
    r.duration_ms = dur > UINT32_MAX ? UINT32_MAX : (uint32_t)dur;
    r.strokes = s.strokes - p->treat_start_strokes;
    p->treating = false;
    return pen_log_now(p, &r);
}

pen_status pen_depth_changed(pen *p)
{
    pen_sensors s;
    pl_record r;
    pen_status st = read_sensors(p, &s);
    if (st != PEN_OK)
        return st;
    rec_init(&r, PL_REC_DEPTH_CHANGED);
    r.depth_um = s.depth_um;
    return pen_log_now(p, &r);
}

pen_status pen_speed_changed(pen *p)
{
    pen_sensors s;
    pl_record r;
    pen_status st = read_sensors(p, &s);
    if (st != PEN_OK)
        return st;
    rec_init(&r, PL_REC_SPEED_CHANGED);
    r.speed_sps = s.speed_sps;
    return pen_log_now(p, &r);
}

pen_status pen_fault(pen *p, uint32_t code)
{
    pl_record r;
    rec_init(&r, PL_REC_FAULT);
    r.fault_code = code;
    return pen_log_now(p, &r);
}

/* ---- configuration and info -------------------------------------------- */

const pen_config *pen_get_config(const pen *p)
{
    return &p->cfg.cur;
}

pen_status pen_apply_config(pen *p, const pen_config *merged)
{
    pen_config next = *merged;
    pl_record r;
    uint64_t seq;

    next.revision = p->cfg.cur.revision + 1;
    pen_status st = pen_log_reserve(&p->log, &seq);
    if (st != PEN_OK)
        return st;
    int64_t now = p->hal->rtc_get_ms(p->hal->ctx);
    st = pen_cfg_write(&p->cfg, &next, seq, now);
    if (st != PEN_OK) {
        pen_log_unreserve(&p->log, seq);
        return st;
    }
    rec_init(&r, PL_REC_CONFIG_CHANGED);
    r.seq = seq;
    r.time_ms = now;
    r.config_revision = next.revision;
    return pen_log_commit_reserved(&p->log, &r);
}

pen_status pen_set_config(pen *p, uint32_t expected_revision, const pen_config_change *chg,
                          pen_cfg_error *err)
{
    pen_cfg_error tmp;
    pen_config merged;
    pen_status st = pen_config_check(&p->limits, &p->cfg.cur, chg, &merged, err ? err : &tmp);
    if (st != PEN_OK)
        return st;
    if (expected_revision != 0 && expected_revision != p->cfg.cur.revision)
        return PEN_ERR_STATE;
    return pen_apply_config(p, &merged);
}

pen_status pen_get_info(pen *p, pen_info *out)
{
    memset(out, 0, sizeof *out);
    out->log_first_seq = pen_log_first_seq(&p->log);
    out->log_next_seq = pen_log_next_seq(&p->log);
    out->log_acked_seq = pen_log_acked_seq(&p->log);
    out->log_ring_end = pen_log_ring_end(&p->log);
    out->log_capacity_bytes = pen_log_capacity(&p->log);
    out->config_revision = p->cfg.cur.revision;
    out->lifetime_cartridges = pen_log_lifetime(&p->log);
    out->session_ready = p->ready;
    out->pull_active = p->pull.active;
    out->log = p->log.stats;
    out->frames_in = p->frames_in;
    out->frames_out = p->frames_out;
    out->frame_errors = p->frame_errors;
    return pen_log_used(&p->log, &out->log_used_bytes);
}
