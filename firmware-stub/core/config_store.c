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
    .max_treatment_min_s = 60,
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

static pen_status range(pen_cfg_error *err, const char *field, const char *name, uint32_t v,
                        uint32_t lo, uint32_t hi, uint32_t step, const char *unit)
{
    pen_msg m;
    if (v >= lo && v <= hi && (step == 0 || (v - lo) % step == 0))
        return PEN_OK;
    pen_msg_init(&m, err->message, sizeof err->message);
    pen_msg_str(&m, name);
    pen_msg_str(&m, " must be ");
    pen_msg_u64(&m, lo);
    pen_msg_str(&m, "..");
    pen_msg_u64(&m, hi);
    pen_msg_str(&m, unit);
    if (step > 1) {
        pen_msg_str(&m, " in steps of ");
        pen_msg_u64(&m, step);
    }
    pen_msg_str(&m, " (got ");
    pen_msg_u64(&m, v);
    pen_msg_str(&m, ")");
    return fail(err, field, &m);
}

/* 1 when s[0..len) is UTF-8 without control characters. */
static int text_ok(const char *s, uint32_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    uint32_t i = 0;
    while (i < len) {
        uint8_t c = p[i];
        uint32_t n;
        uint32_t cp;
        if (c < 0x20 || c == 0x7F)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1Fu;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0Fu;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (uint32_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3Fu);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F))
            return 0;
        i += n + 1;
    }
    return 1;
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
    if (len > 0 && (!s || !text_ok(s, len))) {
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
    uint32_t tmax = lim->max_text_len < PEN_TEXT_MAX ? lim->max_text_len : PEN_TEXT_MAX;

    memset(err, 0, sizeof *err);
    /* each field on its own, in field-number order */
    if (set & PEN_CFG_DEPTH_MIN)
        st = range(err, "config.depth_min_um", "depth_min_um", v->depth_min_um, lim->depth_min_um,
                   lim->depth_max_um, lim->depth_step_um, " um");
    if (st == PEN_OK && (set & PEN_CFG_DEPTH_MAX))
        st = range(err, "config.depth_max_um", "depth_max_um", v->depth_max_um, lim->depth_min_um,
                   lim->depth_max_um, lim->depth_step_um, " um");
    if (st == PEN_OK && (set & PEN_CFG_DEPTH_DEFAULT))
        st = range(err, "config.depth_default_um", "depth_default_um", v->depth_default_um,
                   lim->depth_min_um, lim->depth_max_um, lim->depth_step_um, " um");
    if (st == PEN_OK && (set & PEN_CFG_SPEED_MIN))
        st = range(err, "config.speed_min_sps", "speed_min_sps", v->speed_min_sps,
                   lim->speed_min_sps, lim->speed_max_sps, 0, " strokes/s");
    if (st == PEN_OK && (set & PEN_CFG_SPEED_MAX))
        st = range(err, "config.speed_max_sps", "speed_max_sps", v->speed_max_sps,
                   lim->speed_min_sps, lim->speed_max_sps, 0, " strokes/s");
    if (st == PEN_OK && (set & PEN_CFG_MAX_TREATMENT))
        st = range(err, "config.max_treatment_s", "max_treatment_s", v->max_treatment_s,
                   lim->max_treatment_min_s, lim->max_treatment_s, 0, " s");
    if (st == PEN_OK && (set & PEN_CFG_MAX_USES))
        st = range(err, "config.max_cartridge_uses", "max_cartridge_uses", v->max_cartridge_uses, 1,
                   lim->max_cartridge_uses, 0, "");
    if (st == PEN_OK && (set & PEN_CFG_AUTO_OFF))
        st = range(err, "config.auto_off_s", "auto_off_s", v->auto_off_s, lim->auto_off_min_s,
                   lim->auto_off_max_s, 0, " s");
    if (st == PEN_OK && (set & PEN_CFG_LABEL))
        st = text(err, "config.device_label", "device_label", chg->label, chg->label_len, tmax,
                  n.device_label);
    if (st == PEN_OK && (set & PEN_CFG_CLINIC))
        st = text(err, "config.clinic_id", "clinic_id", chg->clinic, chg->clinic_len, tmax,
                  n.clinic_id);
    if (st != PEN_OK)
        return st;

    if (set & PEN_CFG_DEPTH_MIN)
        n.depth_min_um = v->depth_min_um;
    if (set & PEN_CFG_DEPTH_MAX)
        n.depth_max_um = v->depth_max_um;
    if (set & PEN_CFG_DEPTH_DEFAULT)
        n.depth_default_um = v->depth_default_um;
    if (set & PEN_CFG_SPEED_MIN)
        n.speed_min_sps = v->speed_min_sps;
    if (set & PEN_CFG_SPEED_MAX)
        n.speed_max_sps = v->speed_max_sps;
    if (set & PEN_CFG_MAX_TREATMENT)
        n.max_treatment_s = v->max_treatment_s;
    if (set & PEN_CFG_MAX_USES)
        n.max_cartridge_uses = v->max_cartridge_uses;
    if (set & PEN_CFG_AUTO_OFF)
        n.auto_off_s = v->auto_off_s;

    /* cross-field rules on the merged result; blame a field the request set */
    if (n.depth_min_um > n.depth_max_um)
        return order(
            err,
            (set & PEN_CFG_DEPTH_MIN) || !(set & PEN_CFG_DEPTH_MAX) ? "config.depth_min_um"
                                                                    : "config.depth_max_um",
            "depth_min_um", n.depth_min_um, "must not exceed", "depth_max_um", n.depth_max_um);
    if (n.depth_default_um < n.depth_min_um)
        return order(err,
                     (set & PEN_CFG_DEPTH_DEFAULT) || !(set & PEN_CFG_DEPTH_MIN)
                         ? "config.depth_default_um"
                         : "config.depth_min_um",
                     "depth_default_um", n.depth_default_um, "must not be below", "depth_min_um",
                     n.depth_min_um);
    if (n.depth_default_um > n.depth_max_um)
        return order(err,
                     (set & PEN_CFG_DEPTH_DEFAULT) || !(set & PEN_CFG_DEPTH_MAX)
                         ? "config.depth_default_um"
                         : "config.depth_max_um",
                     "depth_default_um", n.depth_default_um, "must not exceed", "depth_max_um",
                     n.depth_max_um);
    if (n.speed_min_sps > n.speed_max_sps)
        return order(
            err,
            (set & PEN_CFG_SPEED_MIN) || !(set & PEN_CFG_SPEED_MAX) ? "config.speed_min_sps"
                                                                    : "config.speed_max_sps",
            "speed_min_sps", n.speed_min_sps, "must not exceed", "speed_max_sps", n.speed_max_sps);
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
