/* The record model: which fields each kind uses, names, and field access by bit. */
#include <string.h>

#include "pl/record.h"

static const struct {
    const char *name;
    uint32_t fields;
} kinds[PL_REC_KIND_MAX + 1] = {
    [PL_REC_POWER_ON] = { "power_on", 0 },
    [PL_REC_POWER_OFF] = { "power_off", 0 },
    [PL_REC_TREATMENT_START] = { "treatment_start",
                                 PL_F_DEPTH_UM | PL_F_SPEED_SPS | PL_F_CARTRIDGE_SERIAL },
    [PL_REC_TREATMENT_END] = { "treatment_end", PL_F_DURATION_MS | PL_F_STROKES },
    [PL_REC_CARTRIDGE_INSERTED] = { "cartridge_inserted", PL_F_CARTRIDGE_SERIAL |
                                                              PL_F_CARTRIDGE_USES |
                                                              PL_F_LIFETIME_CARTRIDGES },
    [PL_REC_CARTRIDGE_REMOVED] = { "cartridge_removed", PL_F_CARTRIDGE_SERIAL },
    [PL_REC_CARTRIDGE_REFUSED] = { "cartridge_refused",
                                   PL_F_CARTRIDGE_SERIAL | PL_F_CARTRIDGE_USES },
    [PL_REC_DEPTH_CHANGED] = { "depth_changed", PL_F_DEPTH_UM },
    [PL_REC_SPEED_CHANGED] = { "speed_changed", PL_F_SPEED_SPS },
    [PL_REC_FAULT] = { "fault", PL_F_FAULT_CODE },
    [PL_REC_CONFIG_CHANGED] = { "config_changed", PL_F_CONFIG_REVISION },
    [PL_REC_CLOCK_SET] = { "clock_set", PL_F_CLOCK_DELTA_MS },
    [PL_REC_LOG_OVERFLOW] = { "log_overflow", PL_F_DROPPED },
    [PL_REC_SECURITY_EVENT] = { "security_event", PL_F_FAULT_CODE },
};

static const char *const field_names[PL_FIELD_COUNT] = {
    "depth_um",        "speed_sps",           "duration_ms", "cartridge_serial",
    "cartridge_uses",  "lifetime_cartridges", "strokes",     "fault_code",
    "config_revision", "clock_delta_ms",      "dropped",
};

uint32_t pl_record_kind_fields(uint32_t kind)
{
    return kind >= 1 && kind <= PL_REC_KIND_MAX ? kinds[kind].fields : 0;
}

const char *pl_record_kind_name(uint32_t kind)
{
    return kind >= 1 && kind <= PL_REC_KIND_MAX ? kinds[kind].name : NULL;
}

uint32_t pl_record_kind_from_name(const char *name)
{
    for (uint32_t k = 1; name && k <= PL_REC_KIND_MAX; k++)
        if (strcmp(kinds[k].name, name) == 0)
            return k;
    return 0;
}

const char *pl_record_field_name(uint32_t bit)
{
    for (int i = 0; i < PL_FIELD_COUNT; i++)
        if (bit == 1u << i)
            return field_names[i];
    return NULL;
}

uint64_t pl_record_get(const pl_record *r, uint32_t bit)
{
    switch (bit) {
    case PL_F_DEPTH_UM: return r->depth_um;
    case PL_F_SPEED_SPS: return r->speed_sps;
    case PL_F_DURATION_MS: return r->duration_ms;
    case PL_F_CARTRIDGE_SERIAL: return r->cartridge_serial;
    case PL_F_CARTRIDGE_USES: return r->cartridge_uses;
    case PL_F_LIFETIME_CARTRIDGES: return r->lifetime_cartridges;
    case PL_F_STROKES: return r->strokes;
    case PL_F_FAULT_CODE: return r->fault_code;
    case PL_F_CONFIG_REVISION: return r->config_revision;
    case PL_F_CLOCK_DELTA_MS: return (uint64_t)r->clock_delta_ms;
    case PL_F_DROPPED: return r->dropped;
    default: return 0;
    }
}

int pl_record_set(pl_record *r, uint32_t bit, uint64_t v)
{
    uint32_t *u32 = NULL;
    switch (bit) {
    case PL_F_DEPTH_UM: u32 = &r->depth_um; break;
    case PL_F_SPEED_SPS: u32 = &r->speed_sps; break;
    case PL_F_DURATION_MS: u32 = &r->duration_ms; break;
    case PL_F_CARTRIDGE_USES: u32 = &r->cartridge_uses; break;
    case PL_F_LIFETIME_CARTRIDGES: u32 = &r->lifetime_cartridges; break;
    case PL_F_FAULT_CODE: u32 = &r->fault_code; break;
    case PL_F_CONFIG_REVISION: u32 = &r->config_revision; break;
    case PL_F_CARTRIDGE_SERIAL: r->cartridge_serial = v; return 0;
    case PL_F_STROKES: r->strokes = v; return 0;
    case PL_F_CLOCK_DELTA_MS: r->clock_delta_ms = (int64_t)v; return 0;
    case PL_F_DROPPED: r->dropped = v; return 0;
    default: return -1;
    }
    if (v > UINT32_MAX)
        return -1;
    *u32 = (uint32_t)v;
    return 0;
}

int pl_record_equal(const pl_record *a, const pl_record *b)
{
    if (a->seq != b->seq || a->time_ms != b->time_ms || a->kind != b->kind ||
        a->fields != b->fields)
        return 0;
    for (uint32_t m = a->fields & PL_F_ALL; m; m &= m - 1) {
        uint32_t bit = m & -m;
        if (pl_record_get(a, bit) != pl_record_get(b, bit))
            return 0;
    }
    return 1;
}
