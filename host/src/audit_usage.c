/*
 * The audit's treatments and usage: a treatment followed from its start to
 * its end, and the usage per calendar period (day, ISO week or month, in
 * UTC or the local time zone) it is counted in.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "calendar.h"

#include "audit_internal.h"

#define DAY_MS 86400000ll
/* Usage periods of pen times outside years 1..9999 (a broken or hostile clock)
 * are those of the nearest end: the calendar arithmetic stays in range. */
#define CALENDAR_MIN_MS (-62135596800000ll) /* 0001-01-01T00:00:00Z */
#define CALENDAR_MAX_MS 253402300799999ll   /* 9999-12-31T23:59:59.999Z */

/* ---- usage ----------------------------------------------------------- */

/* The start of the period holding @p ms in the process's local time zone. */
static int64_t period_start_local(penlink_period by, int64_t ms)
{
    time_t t = (time_t)pc_floor_div(ms, 1000);
    struct tm tm;
    if (!localtime_r(&t, &tm))
        return pc_floor_div(ms, DAY_MS) * DAY_MS;
    if (by == PENLINK_PERIOD_WEEK)
        tm.tm_mday -= (tm.tm_wday + 6) % 7; /* back to Monday */
    else if (by == PENLINK_PERIOD_MONTH)
        tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    tm.tm_isdst = -1;
    t = mktime(&tm);
    return (int64_t)t * 1000;
}

static int64_t period_start(penlink_period by, int local, int64_t ms)
{
    ms = ms < CALENDAR_MIN_MS ? CALENDAR_MIN_MS : ms > CALENDAR_MAX_MS ? CALENDAR_MAX_MS : ms;
    if (local)
        return period_start_local(by, ms);
    int64_t day = pc_floor_div(ms, DAY_MS);
    if (by == PENLINK_PERIOD_WEEK) {
        int64_t wd = ((day + 3) % 7 + 7) % 7; /* 1970-01-01 was a Thursday; 0 = Monday */
        return (day - wd) * DAY_MS;
    }
    if (by == PENLINK_PERIOD_MONTH) {
        time_t s = (time_t)(day * 86400);
        struct tm tm;
        if (gmtime_r(&s, &tm))
            return pc_days_from_civil(tm.tm_year + 1900LL, tm.tm_mon + 1, 1) * DAY_MS;
    }
    return day * DAY_MS;
}

void audit_period_label(penlink_period by, int local, int64_t start, char *buf, size_t cap)
{
    time_t s = (time_t)pc_floor_div(start, 1000);
    struct tm tm;
    /* strftime() says 0 when the label does not fit, leaving @p buf undefined */
    if (!(local ? localtime_r(&s, &tm) : gmtime_r(&s, &tm)) ||
        strftime(buf, cap,
                 by == PENLINK_PERIOD_WEEK    ? "%G-W%V"
                 : by == PENLINK_PERIOD_MONTH ? "%Y-%m"
                                              : "%Y-%m-%d",
                 &tm) == 0)
        snprintf(buf, cap, "%lld", (long long)start);
}

bucket *audit_bucket_at(audit *a, int64_t ms)
{
    penlink_period by = a->cb ? a->cb->usage_by : PENLINK_PERIOD_DAY;
    int64_t start = period_start(by, a->cb && a->cb->local_time, ms);
    size_t lo = 0, hi = a->n_buckets;
    if (hi && a->buckets[hi - 1].start == start)
        return &a->buckets[hi - 1];
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (a->buckets[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < a->n_buckets && a->buckets[lo].start == start)
        return &a->buckets[lo];
    if (pc_grow(&a->buckets, &a->cap_buckets, a->n_buckets + 1, sizeof *a->buckets) != 0) {
        audit_stop(a, PENLINK_ERR_NO_MEM);
        return NULL;
    }
    memmove(&a->buckets[lo + 1], &a->buckets[lo], (a->n_buckets - lo) * sizeof *a->buckets);
    a->n_buckets++;
    memset(&a->buckets[lo], 0, sizeof a->buckets[lo]);
    a->buckets[lo].start = start;
    return &a->buckets[lo];
}

/* ---- treatments ------------------------------------------------------ */

void audit_finish_treatment(audit *a, const penlink_record *r, int ended)
{
    treat *t = &a->tr;
    if (!t->open)
        return;
    t->open = 0;
    int64_t end = r->time_ms;
    if (end > t->seg_ms) {
        int64_t seg = audit_span_ms(end, t->seg_ms);
        t->depth_ms += (double)t->cur_depth * (double)seg;
        t->weight_ms = audit_add_ms(t->weight_ms, seg);
    }
    t->t.end_seq = r->seq;
    t->t.end_ms = end;
    t->t.ended = ended;
    if (ended && (r->fields & PENLINK_F_DURATION_MS))
        t->t.duration_ms = r->duration_ms;
    else
        t->t.duration_ms = end > t->t.start_ms ? (uint64_t)audit_span_ms(end, t->t.start_ms) : 0;
    if (ended)
        t->t.strokes = r->strokes;
    /* a mean of 32-bit depths; rounding may not carry it past the largest of them */
    double mean = t->weight_ms > 0 ? t->depth_ms / (double)t->weight_ms + 0.5 : 0;
    t->t.depth_mean_um = t->weight_ms <= 0                   ? t->t.depth_min_um
                         : mean >= (double)t->t.depth_max_um ? t->t.depth_max_um
                                                             : (uint32_t)mean;
    audit_check_duration(t, &t->start_lim);
    if (t->in_window) {
        a->sum.treatments++;
        bucket *b = audit_bucket_at(a, t->t.start_ms);
        if (b) {
            b->treatments++;
            b->ms += t->t.duration_ms;
        }
    }
    if (t->pend || t->pend_speed || t->pend_dur) {
        /* reported once the revision in force is known */
        if (pc_grow(&a->pending, &a->cap_pending, a->n_pending + 1, sizeof *a->pending) != 0) {
            audit_stop(a, PENLINK_ERR_NO_MEM);
            return;
        }
        a->pending[a->n_pending++] = *t;
    } else {
        audit_report_treatment(a, t);
    }
}

void audit_start_treatment(audit *a, const penlink_record *r)
{
    treat *t = &a->tr;
    memset(t, 0, sizeof *t);
    t->open = 1;
    t->in_window = audit_in_window(a, r->time_ms);
    t->t.serial = a->pens[a->pen];
    t->t.start_seq = r->seq;
    t->t.start_ms = r->time_ms;
    t->t.depth_min_um = t->t.depth_max_um = t->cur_depth = r->depth_um;
    t->t.speed_min_sps = t->t.speed_max_sps = t->cur_speed = r->speed_sps;
    t->seg_ms = r->time_ms;
    t->start_lim = a->lim;
    t->t.config_revision = a->lim.state == LIM_PENDING ? 0 : a->lim.rev;
    /* serial 0 is no chip read: a treatment that names it names no cartridge */
    int named = (r->fields & PENLINK_F_CARTRIDGE_SERIAL) != 0 && r->cartridge_serial != 0;
    uint64_t serial = named ? r->cartridge_serial : a->cart_serial;
    t->t.cartridge_serial = a->cart_in || named ? serial : 0;
    t->t.has_cartridge = a->cart_in && serial == a->cart_serial;
    t->t.cartridge_uses = t->t.has_cartridge ? a->cart_uses : 0;
    audit_check_depth(t, &a->lim, r->depth_um);
    audit_check_speed(t, &a->lim, r->speed_sps);
    if (!t->t.has_cartridge && t->in_window) {
        penlink_finding fi;
        audit_finding_init(a, &fi, PENLINK_FIND_NO_CARTRIDGE, "cartridges", 1);
        fi.seq = r->seq;
        fi.time_ms = r->time_ms;
        fi.cartridge_serial = t->t.cartridge_serial;
        if (!a->cart_in)
            snprintf(fi.detail, sizeof fi.detail,
                     "treatment started with no accepted cartridge in the pen");
        else
            snprintf(fi.detail, sizeof fi.detail,
                     "treatment names cartridge %llu but the pen accepted cartridge %llu",
                     (unsigned long long)serial, (unsigned long long)a->cart_serial);
        audit_emit(a, &fi);
    }
    if ((a->cart_in || named) &&
        audit_cart_add(a, serial, r->seq, r->time_ms, t->t.cartridge_uses, t->in_window) != 0)
        audit_stop(a, PENLINK_ERR_NO_MEM);
}

/* A depth change within the open treatment: its depth over time, its range,
 * and the limits. */
void audit_depth_changed(audit *a, const penlink_record *r)
{
    treat *t = &a->tr;
    if (!t->open)
        return;
    if (r->time_ms > t->seg_ms) {
        int64_t seg = audit_span_ms(r->time_ms, t->seg_ms);
        t->depth_ms += (double)t->cur_depth * (double)seg;
        t->weight_ms = audit_add_ms(t->weight_ms, seg);
        t->seg_ms = r->time_ms;
    }
    t->cur_depth = r->depth_um;
    if (r->depth_um < t->t.depth_min_um)
        t->t.depth_min_um = r->depth_um;
    if (r->depth_um > t->t.depth_max_um)
        t->t.depth_max_um = r->depth_um;
    audit_check_depth(t, &a->lim, r->depth_um);
}

/* A speed change within the open treatment: its range, and the limits. */
void audit_speed_changed(audit *a, const penlink_record *r)
{
    treat *t = &a->tr;
    if (!t->open)
        return;
    if (r->speed_sps < t->t.speed_min_sps)
        t->t.speed_min_sps = r->speed_sps;
    if (r->speed_sps > t->t.speed_max_sps)
        t->t.speed_max_sps = r->speed_sps;
    t->cur_speed = r->speed_sps;
    audit_check_speed(t, &a->lim, r->speed_sps);
}
