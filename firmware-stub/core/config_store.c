/*
 * The config store and SetConfig's validation rules.
 *
 * Two slots, one sector each. A write erases the slot not in use and
 * programs the whole new configuration there with a CRC; boot takes the
 * valid slot with the higher revision. A cut during the erase or the program
 * leaves the other slot, the old configuration, untouched; once the program
 * is complete the new one wins. The slot also carries the seq reserved for
 * the CONFIG_CHANGED record, so that boot can write that record if the power
 * failed between the two commits.
 */
#include <stddef.h>
#include <string.h>

#include "config_store.h"
#include "pen_util.h"

#define CFG_MAGIC 0x46434C50u /* "PLCF" */
#define CFG_VERSION 1u

const pen_limits pen_limits_default = {
    .depth_min_um = 0,
    .depth_max_um = 3000,
    .depth_step_um = 100,
    .speed_min_sps = 50,
    .speed_max_sps = 150,
    .max_treatment_s = 7200,
    .max_cartridge_uses = 10,
    .auto_off_min_s = 30,
    .auto_off_max_s = 3600,
    .max_text_len = PEN_TEXT_MAX,
};

void pen_config_defaults(pen_config *c)
{
    memset(c, 0, sizeof *c);
    c->revision = 1;
    c->depth_min_um = 0;
    c->depth_max_um = 3000;
    c->depth_default_um = 500;
    c->speed_min_sps = 50;
    c->speed_max_sps = 150;
    c->max_treatment_s = 3600;
    c->max_cartridge_uses = 1;
    c->auto_off_s = 300;
}

/* ---- validation -------------------------------------------------------- */

static pen_status fail(pen_cfg_error *err, const char *field, pen_msg *m)
{
    (void)m;
    err->field = field;
    return PEN_ERR_INVALID;
}

/* The pen's numeric settings, indexed by pl_cfg_setting (PEN_CFG_* bit order). */
static const size_t setting_off[PL_SET_COUNT] = {
    [PL_SET_DEPTH_MIN] = offsetof(pen_config, depth_min_um),
    [PL_SET_DEPTH_MAX] = offsetof(pen_config, depth_max_um),
    [PL_SET_DEPTH_DEFAULT] = offsetof(pen_config, depth_default_um),
    [PL_SET_SPEED_MIN] = offsetof(pen_config, speed_min_sps),
    [PL_SET_SPEED_MAX] = offsetof(pen_config, speed_max_sps),
    [PL_SET_MAX_TREATMENT] = offsetof(pen_config, max_treatment_s),
    [PL_SET_MAX_USES] = offsetof(pen_config, max_cartridge_uses),
    [PL_SET_AUTO_OFF] = offsetof(pen_config, auto_off_s),
};

/* PEN_CFG_* bits are the settings' bits in the rules' order */
_Static_assert(PEN_CFG_DEPTH_MIN == 1u << PL_SET_DEPTH_MIN &&
                   PEN_CFG_DEPTH_DEFAULT == 1u << PL_SET_DEPTH_DEFAULT &&
                   PEN_CFG_SPEED_MAX == 1u << PL_SET_SPEED_MAX &&
                   PEN_CFG_AUTO_OFF == 1u << PL_SET_AUTO_OFF && PL_SET_COUNT == 8,
               "PEN_CFG_* bits follow pl_cfg_setting");

static uint32_t setting_get(const pen_config *c, int s)
{
    uint32_t v;
    memcpy(&v, (const unsigned char *)c + setting_off[s], sizeof v);
    return v;
}

static void setting_put(pen_config *c, int s, uint32_t v)
{
    memcpy((unsigned char *)c + setting_off[s], &v, sizeof v);
}

static pen_status range(pen_cfg_error *err, const pen_limits *lim, int s, uint32_t v)
{
    const pl_cfg_rule *r = &pl_cfg_rules[s];
    uint32_t lo, hi, step;
    pen_msg m;
    if (pl_cfg_value_ok(lim, (pl_cfg_setting)s, v))
        return PEN_OK;
    pl_cfg_bounds(lim, (pl_cfg_setting)s, &lo, &hi, &step);
    pen_msg_init(&m, err->message, sizeof err->message);
    pen_msg_str(&m, r->key);
    pen_msg_str(&m, " must be ");
    pen_msg_u64(&m, lo);
    pen_msg_str(&m, "..");
    pen_msg_u64(&m, hi);
    pen_msg_str(&m, r->unit);
    if (step > 1) {
        pen_msg_str(&m, " in steps of ");
        pen_msg_u64(&m, step);
    }
    pen_msg_str(&m, " (got ");
    pen_msg_u64(&m, v);
    pen_msg_str(&m, ")");
    return fail(err, r->path, &m);
}

static pen_status text(pen_cfg_error *err, const char *field, const char *name, const char *s,
                       uint32_t len, uint32_t max, char *dst)
{
    pen_msg m;
    pen_msg_init(&m, err->message, sizeof err->message);
    if (len > max) {
        pen_msg_str(&m, name);
        pen_msg_str(&m, " must be at most ");
        pen_msg_u64(&m, max);
        pen_msg_str(&m, " bytes (got ");
        pen_msg_u64(&m, len);
        pen_msg_str(&m, ")");
        return fail(err, field, &m);
    }
    if (len > 0 && (!s || !pl_cfg_text_ok(s, len))) {
        pen_msg_str(&m, name);
        pen_msg_str(&m, " must be UTF-8 text without control characters");
        return fail(err, field, &m);
    }
    if (len > 0)
        memcpy(dst, s, len);
    dst[len] = '\0';
    return PEN_OK;
}

static pen_status order(pen_cfg_error *err, const char *field, const char *a, uint32_t av,
                        const char *rel, const char *b, uint32_t bv)
{
    pen_msg m;
    pen_msg_init(&m, err->message, sizeof err->message);
    pen_msg_str(&m, a);
    pen_msg_str(&m, " (");
    pen_msg_u64(&m, av);
    pen_msg_str(&m, ") ");
    pen_msg_str(&m, rel);
    pen_msg_str(&m, " ");
    pen_msg_str(&m, b);
    pen_msg_str(&m, " (");
    pen_msg_u64(&m, bv);
    pen_msg_str(&m, ")");
    return fail(err, field, &m);
}

pen_status pen_config_check(const pen_limits *lim, const pen_config *cur,
                            const pen_config_change *chg, pen_config *out, pen_cfg_error *err)
{
    pen_status st = PEN_OK;
    uint32_t set = chg->set;
    pen_config n = *cur;
    const pen_config *v = &chg->v;
    uint32_t tmax = pl_cfg_text_max(lim);
    uint32_t merged[PL_SET_COUNT];

    memset(err, 0, sizeof *err);
    /* each field on its own, in field-number order */
    for (int s = 0; s < PL_SET_COUNT && st == PEN_OK; s++)
        if (set & (1u << s))
            st = range(err, lim, s, setting_get(v, s));
    if (st == PEN_OK && (set & PEN_CFG_LABEL))
        st = text(err, "config.device_label", "device_label", chg->label, chg->label_len, tmax,
                  n.device_label);
    if (st == PEN_OK && (set & PEN_CFG_CLINIC))
        st = text(err, "config.clinic_id", "clinic_id", chg->clinic, chg->clinic_len, tmax,
                  n.clinic_id);
    if (st != PEN_OK)
        return st;

    for (int s = 0; s < PL_SET_COUNT; s++) {
        if (set & (1u << s))
            setting_put(&n, s, setting_get(v, s));
        merged[s] = setting_get(&n, s);
    }

    /* cross-field rules on the merged result; blame a field the request set */
    const pl_cfg_order *o = pl_cfg_order_broken(merged);
    if (o) {
        pl_cfg_setting subject = o->blame_hi ? o->hi : o->lo, other = o->blame_hi ? o->lo : o->hi;
        const char *field = (set & (1u << subject)) || !(set & (1u << other))
                                ? pl_cfg_rules[subject].path
                                : pl_cfg_rules[other].path;
        return order(err, field, pl_cfg_rules[subject].key, merged[subject],
                     o->blame_hi ? "must not be below" : "must not exceed", pl_cfg_rules[other].key,
                     merged[other]);
    }
    *out = n;
    return PEN_OK;
}

/* ---- the A/B store ----------------------------------------------------- */

/*
 * Slot: magic u32 | version u32 | revision u32 | eight u32 settings (depth
 * min/max/default, speed min/max, max treatment, max uses, auto-off) |
 * label length u8 | clinic length u8 | 0 u16 | label[32] | clinic[32] |
 * CONFIG_CHANGED seq u64 | time_ms i64 | zeros | crc32 of bytes 0..251.
 */
#define OFF_SETTINGS 12
#define OFF_LENS 44
#define OFF_LABEL 48
#define OFF_CLINIC (OFF_LABEL + PEN_TEXT_MAX)
#define OFF_SEQ (OFF_CLINIC + PEN_TEXT_MAX)
#define OFF_CRC (PEN_CFG_SLOT_SIZE - 4)

static void cfg_pack(uint8_t *b, const pen_config *c, uint64_t seq, int64_t time_ms)
{
    const uint32_t v[8] = { c->depth_min_um,       c->depth_max_um,  c->depth_default_um,
                            c->speed_min_sps,      c->speed_max_sps, c->max_treatment_s,
                            c->max_cartridge_uses, c->auto_off_s };
    size_t ll = strlen(c->device_label), cl = strlen(c->clinic_id);
    memset(b, 0, PEN_CFG_SLOT_SIZE);
    pen_put32(b, CFG_MAGIC);
    pen_put32(b + 4, CFG_VERSION);
    pen_put32(b + 8, c->revision);
    for (int i = 0; i < 8; i++)
        pen_put32(b + OFF_SETTINGS + 4 * i, v[i]);
    b[OFF_LENS] = (uint8_t)ll;
    b[OFF_LENS + 1] = (uint8_t)cl;
    memcpy(b + OFF_LABEL, c->device_label, ll);
    memcpy(b + OFF_CLINIC, c->clinic_id, cl);
    pen_put64(b + OFF_SEQ, seq);
    pen_put64(b + OFF_SEQ + 8, (uint64_t)time_ms);
    pen_put32(b + OFF_CRC, pen_crc32(0, b, OFF_CRC));
}

static int cfg_unpack(const uint8_t *b, pen_config *c, uint64_t *seq, int64_t *time_ms)
{
    uint32_t v[8];
    if (pen_get32(b) != CFG_MAGIC || pen_get32(b + 4) != CFG_VERSION ||
        pen_get32(b + OFF_CRC) != pen_crc32(0, b, OFF_CRC) || b[OFF_LENS] > PEN_TEXT_MAX ||
        b[OFF_LENS + 1] > PEN_TEXT_MAX)
        return -1;
    memset(c, 0, sizeof *c);
    c->revision = pen_get32(b + 8);
    for (int i = 0; i < 8; i++)
        v[i] = pen_get32(b + OFF_SETTINGS + 4 * i);
    c->depth_min_um = v[0];
    c->depth_max_um = v[1];
    c->depth_default_um = v[2];
    c->speed_min_sps = v[3];
    c->speed_max_sps = v[4];
    c->max_treatment_s = v[5];
    c->max_cartridge_uses = v[6];
    c->auto_off_s = v[7];
    memcpy(c->device_label, b + OFF_LABEL, b[OFF_LENS]);
    memcpy(c->clinic_id, b + OFF_CLINIC, b[OFF_LENS + 1]);
    *seq = pen_get64(b + OFF_SEQ);
    *time_ms = (int64_t)pen_get64(b + OFF_SEQ + 8);
    return 0;
}

pen_status pen_cfg_open(pen_cfgstore *s, const pen_hal *hal, uint32_t sector)
{
    uint8_t b[PEN_CFG_SLOT_SIZE];
    if (!s || !hal || hal->flash_sector_size < PEN_CFG_SLOT_SIZE)
        return PEN_ERR_ARG;
    memset(s, 0, sizeof *s);
    s->hal = hal;
    s->sector = sector;
    s->slot = -1;
    pen_config_defaults(&s->cur);
    for (int i = 0; i < 2; i++) {
        pen_config c;
        uint64_t seq;
        int64_t t;
        uint32_t addr = (sector + (uint32_t)i) * hal->flash_sector_size;
        if (hal->flash_read(hal->ctx, addr, b, sizeof b) != 0)
            return PEN_ERR_FLASH;
        if (cfg_unpack(b, &c, &seq, &t) != 0)
            continue;
        if (s->slot < 0 || c.revision > s->cur.revision) {
            s->cur = c;
            s->slot = i;
            s->record_seq = seq;
            s->time_ms = t;
        }
    }
    return PEN_OK;
}

bool pen_cfg_stored(const pen_cfgstore *s)
{
    return s->slot >= 0;
}

pen_status pen_cfg_write(pen_cfgstore *s, const pen_config *next, uint64_t record_seq,
                         int64_t time_ms)
{
    uint8_t b[PEN_CFG_SLOT_SIZE], chk[64];
    const pen_hal *hal = s->hal;
    int slot = s->slot == 0 ? 1 : 0;
    uint32_t sector = s->sector + (uint32_t)slot;
    uint32_t addr = sector * hal->flash_sector_size;
    bool erased = true;

    if (strlen(next->device_label) > PEN_TEXT_MAX || strlen(next->clinic_id) > PEN_TEXT_MAX)
        return PEN_ERR_ARG;
    for (uint32_t off = 0; off < PEN_CFG_SLOT_SIZE && erased; off += sizeof chk) {
        if (hal->flash_read(hal->ctx, addr + off, chk, sizeof chk) != 0)
            return PEN_ERR_FLASH;
        erased = pen_is_erased(chk, sizeof chk);
    }
    if (!erased && hal->flash_erase(hal->ctx, sector) != 0)
        return PEN_ERR_FLASH;
    cfg_pack(b, next, record_seq, time_ms);
    if (hal->flash_program(hal->ctx, addr, b, sizeof b) != 0)
        return PEN_ERR_FLASH;
    s->cur = *next;
    s->slot = slot;
    s->record_seq = record_seq;
    s->time_ms = time_ms;
    s->writes++;
    return PEN_OK;
}
