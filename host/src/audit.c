/*
 * The audit: treatments, cartridges, integrity and usage, computed from the
 * archive alone in one pass over each selected pen's chunks (records ordered
 * by pen, then seq; the chain and signed heads checked on the way, see
 * read_selected()) plus the alarms and the configuration history, all
 * through the backend table, so any backend works. No record row is read.
 *
 * Memory: a hash table with one small entry per distinct cartridge serial
 * (a reuse can only be told once every pen was read), the alarms and the
 * configuration history (small), and per pen the usage buckets and the
 * treatments whose limits cannot be decided yet (those before the pen's
 * first CONFIG_CHANGED, see audit_resolve_first_revision()). Nothing grows with
 * the number of records.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit_internal.h"

static const char *const finding_names[] = {
    [PENLINK_FIND_REUSE] = "reuse",
    [PENLINK_FIND_NO_CARTRIDGE] = "no_cartridge",
    [PENLINK_FIND_OUT_OF_LIMITS] = "out_of_limits",
    [PENLINK_FIND_LIMITS_UNKNOWN] = "limits_unknown",
    [PENLINK_FIND_REFUSED] = "refused",
    [PENLINK_FIND_GAP] = "gap",
    [PENLINK_FIND_CONFLICT] = "conflict",
    [PENLINK_FIND_MISSING] = "missing",
    [PENLINK_FIND_OVERFLOW] = "overflow",
    [PENLINK_FIND_CLOCK_BACKWARDS] = "clock_backwards",
    [PENLINK_FIND_CLOCK_JUMP] = "clock_jump",
    [PENLINK_FIND_KEY_CHANGED] = "key_changed",
    [PENLINK_FIND_UNVERIFIED] = "unverified",
    [PENLINK_FIND_CONFIG_REFUSED] = "config_refused",
    [PENLINK_FIND_NO_RECORDS] = "no_records",
    [PENLINK_FIND_ALARM] = "alarm",
    [PENLINK_FIND_LOG_BROKEN] = "log_broken",
    [PENLINK_FIND_DAMAGED] = "damaged",
    [PENLINK_FIND_CONFIG_CONFLICT] = "config_conflict",
};
_Static_assert(sizeof finding_names / sizeof finding_names[0] <= PENLINK_FIND_KINDS,
               "penlink_audit_summary.findings has a slot for every kind");

const char *penlink_finding_kind_name(uint32_t kind)
{
    return kind < sizeof finding_names / sizeof finding_names[0] ? finding_names[kind] : NULL;
}

int audit_in_window(const audit *a, int64_t ms)
{
    const penlink_archive_filter *f = a->f;
    if (!f)
        return 1;
    if (f->has_since && ms < f->since_ms)
        return 0;
    if (f->has_until && ms >= f->until_ms)
        return 0;
    return 1;
}

void audit_stop(audit *a, int rc)
{
    if (a->rc == PENLINK_OK)
        a->rc = rc;
}

void audit_finding_init(audit *a, penlink_finding *fi, uint32_t kind, const char *report,
                        int compliance)
{
    memset(fi, 0, sizeof *fi);
    fi->kind = kind;
    fi->report = report;
    fi->compliance = compliance;
    fi->serial = a->have_pen ? a->pens[a->pen] : "";
}

/* The annotations of finding @p id: the first, and how many. */
static const penlink_annotation *notes_of(const audit *a, const char *id, size_t *n)
{
    size_t lo = 0, hi = a->n_notes;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(a->notes[mid].finding, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *n = 0;
    while (lo + *n < a->n_notes && strcmp(a->notes[lo + *n].finding, id) == 0)
        (*n)++;
    return *n ? &a->notes[lo] : NULL;
}

void audit_emit(audit *a, penlink_finding *fi)
{
    if (!fi->name)
        fi->name = penlink_finding_kind_name(fi->kind);
    snprintf(fi->id, sizeof fi->id, "%s:%s:%llu", fi->name ? fi->name : "unknown", fi->serial,
             (unsigned long long)fi->seq);
    fi->annotations = notes_of(a, fi->id, &fi->n_annotations);
    if (fi->kind < PENLINK_FIND_KINDS)
        a->sum.findings[fi->kind]++;
    if (fi->compliance)
        a->sum.compliance++;
    if (strcmp(fi->report, "integrity") == 0)
        a->sum.integrity++;
    switch (fi->kind) {
    case PENLINK_FIND_REUSE: a->sum.reuses++; break;
    case PENLINK_FIND_REFUSED: a->sum.refusals++; break;
    case PENLINK_FIND_NO_CARTRIDGE: a->sum.no_cartridge++; break;
    case PENLINK_FIND_OUT_OF_LIMITS: a->sum.out_of_limits++; break;
    case PENLINK_FIND_LIMITS_UNKNOWN: a->sum.limits_unknown++; break;
    default: break;
    }
    if (a->cb && a->cb->on_finding && a->cb->on_finding(a->cb->user, fi) != 0)
        audit_stop(a, PENLINK_ERR_CANCELLED);
}

/* ---- pens ------------------------------------------------------------ */

static void end_pen(audit *a)
{
    if (!a->have_pen)
        return;
    for (size_t i = 0; i < a->n_sel && a->have_prev; i++)
        if (strcmp(a->sel[i].serial, a->pens[a->pen]) == 0)
            a->sel[i].next = a->prev.seq + 1;
    if (a->tr.open)
        audit_finish_treatment(a, &a->prev, 0);
    audit_resolve_first_revision(a, 0, 0);
    for (size_t i = 0; i < a->n_unknown && a->rc == PENLINK_OK; i++) {
        penlink_finding fi;
        audit_finding_init(a, &fi, PENLINK_FIND_LIMITS_UNKNOWN, "cartridges", 0);
        fi.seq = a->unknown[i].first_seq;
        fi.time_ms = a->unknown[i].first_ms;
        fi.count = a->unknown[i].count;
        fi.config_revision = a->unknown[i].rev;
        snprintf(fi.detail, sizeof fi.detail,
                 "%llu treatments ran under configuration revision %u, whose values are not in "
                 "the archive: their limits were not checked",
                 (unsigned long long)fi.count, fi.config_revision);
        audit_emit(a, &fi);
    }
    for (size_t i = a->alarm_lo; i < a->alarm_hi && a->rc == PENLINK_OK; i++)
        if (!a->alarms[i].done)
            audit_emit_alarm(a, &a->alarms[i]);
    a->next_alarm = a->alarm_hi;
    penlink_period by = a->cb ? a->cb->usage_by : PENLINK_PERIOD_DAY;
    for (size_t i = 0; i < a->n_buckets && a->rc == PENLINK_OK; i++) {
        penlink_usage u;
        memset(&u, 0, sizeof u);
        u.serial = a->pens[a->pen];
        u.period_start_ms = a->buckets[i].start;
        audit_period_label(by, a->cb && a->cb->local_time, u.period_start_ms, u.period,
                           sizeof u.period);
        u.treatments = a->buckets[i].treatments;
        u.treatment_ms = a->buckets[i].ms;
        u.cartridges = a->buckets[i].cartridges;
        if (a->cb && a->cb->on_usage && a->cb->on_usage(a->cb->user, &u) != 0)
            audit_stop(a, PENLINK_ERR_CANCELLED);
    }
    a->have_pen = 0;
}

/* Alarms of pens that sort before @p serial (NULL: all) and had no records. */
static void alarms_before(audit *a, const char *serial)
{
    while (a->next_alarm < a->n_alarms && a->rc == PENLINK_OK &&
           (!serial || strcmp(a->alarms[a->next_alarm].al.serial, serial) < 0))
        audit_emit_alarm(a, &a->alarms[a->next_alarm++]);
}

/* Pen @p serial, met by the scan, becomes the current one: its serial
 * copied, no cartridge in it yet. 0, or -1 out of memory. */
static int add_pen(audit *a, const char *serial)
{
    if (pc_grow(&a->pens, &a->cap_pens, a->n_pens + 1, sizeof *a->pens) != 0)
        return -1;
    char *s = malloc(strlen(serial) + 1);
    if (!s)
        return -1;
    strcpy(s, serial);
    a->pens[a->n_pens] = s;
    a->pen = (uint32_t)a->n_pens++;
    a->have_pen = 1;
    a->cart_in = 0;
    a->cart_serial = 0;
    a->cart_uses = 0;
    return 0;
}

static int begin_pen(audit *a, const char *serial)
{
    end_pen(a);
    if (add_pen(a, serial) != 0)
        return -1;
    a->have_prev = 0;
    memset(&a->lim, 0, sizeof a->lim);
    a->lim.state = LIM_PENDING;
    memset(&a->tr, 0, sizeof a->tr);
    a->n_pending = a->n_buckets = a->n_unknown = 0;
    alarms_before(a, serial);
    a->alarm_lo = a->alarm_hi = a->next_alarm;
    while (a->alarm_hi < a->n_alarms && strcmp(a->alarms[a->alarm_hi].al.serial, serial) == 0)
        a->alarm_hi++;
    return 0;
}

static void cartridge_inserted(audit *a, const penlink_record *r)
{
    a->cart_in = 1;
    a->cart_serial = r->cartridge_serial;
    a->cart_uses = r->cartridge_uses;
    if (audit_in_window(a, r->time_ms)) {
        bucket *b = audit_bucket_at(a, r->time_ms);
        if (b)
            b->cartridges++;
    }
}

static void cartridge_refused(audit *a, const penlink_record *r)
{
    if (!audit_in_window(a, r->time_ms))
        return;
    penlink_finding fi;
    audit_finding_init(a, &fi, PENLINK_FIND_REFUSED, "cartridges", 0);
    fi.seq = r->seq;
    fi.time_ms = r->time_ms;
    fi.cartridge_serial = r->cartridge_serial;
    fi.cartridge_uses = r->cartridge_uses;
    snprintf(fi.detail, sizeof fi.detail,
             "the pen refused cartridge %llu, already used (this would have been use "
             "%u)",
             (unsigned long long)r->cartridge_serial, r->cartridge_uses);
    audit_emit(a, &fi);
}

static void security_event(audit *a, const penlink_record *r)
{
    if (!audit_in_window(a, r->time_ms))
        return;
    penlink_finding fi;
    audit_finding_init(a, &fi, PENLINK_FIND_CONFIG_REFUSED, "integrity", 1);
    fi.seq = r->seq;
    fi.time_ms = r->time_ms;
    fi.value = r->fault_code;
    /* a refused clock setting carries the error code + 256 (PL_SECURITY_CLOCK) */
    uint32_t code = r->fault_code & 0xFFu;
    snprintf(fi.detail, sizeof fi.detail, "the pen refused a %s: %s (error %u)",
             r->fault_code >> 8 == 1 ? "clock setting" : "configuration change",
             code == 12   ? "not signed"
             : code == 13 ? "signed by an unknown key, or a bad signature"
             : code == 15 ? "a stale or replayed request"
                          : "not authorised",
             code);
    audit_emit(a, &fi);
}

static void config_changed(audit *a, const penlink_record *r)
{
    treat *t = &a->tr;
    audit_resolve_first_revision(a, 1, r->config_revision);
    a->lim = audit_lookup(a, r->config_revision);
    if (t->open) { /* the depth and speed now run under the new limits */
        audit_check_depth(t, &a->lim, t->cur_depth);
        audit_check_speed(t, &a->lim, t->cur_speed);
    }
}

static int on_record(void *u, const char *serial, const penlink_record *r)
{
    audit *a = u;
    /* the scan passes one pointer for all of a pen's records, another for the next pen */
    if (!a->have_pen || serial != a->serial_seen) {
        a->serial_seen = serial;
        if (begin_pen(a, serial) != 0)
            audit_stop(a, PENLINK_ERR_NO_MEM);
        if (a->rc != PENLINK_OK)
            return 1;
    }
    a->sum.records++;
    if (audit_in_window(a, r->time_ms))
        a->sum.records_in_window++;
    audit_alarms_at(a, r);
    audit_integrity(a, r);
    switch (r->kind) {
    case PENLINK_REC_TREATMENT_START:
        audit_finish_treatment(a, r, 0);
        audit_start_treatment(a, r);
        break;
    case PENLINK_REC_TREATMENT_END: audit_finish_treatment(a, r, 1); break;
    case PENLINK_REC_POWER_ON:
    case PENLINK_REC_POWER_OFF: audit_finish_treatment(a, r, 0); break;
    case PENLINK_REC_DEPTH_CHANGED: audit_depth_changed(a, r); break;
    case PENLINK_REC_SPEED_CHANGED: audit_speed_changed(a, r); break;
    case PENLINK_REC_CARTRIDGE_INSERTED: cartridge_inserted(a, r); break;
    case PENLINK_REC_CARTRIDGE_REMOVED: a->cart_in = 0; break;
    case PENLINK_REC_CARTRIDGE_REFUSED: cartridge_refused(a, r); break;
    case PENLINK_REC_SECURITY_EVENT: security_event(a, r); break;
    case PENLINK_REC_CONFIG_CHANGED: config_changed(a, r); break;
    default: break;
    }
    a->prev = *r;
    a->have_prev = 1;
    return a->rc != PENLINK_OK;
}

/* The cartridges of a pen the audit did not select: its treatments' uses, nothing else. */
static int on_other(void *u, const char *serial, const penlink_record *r)
{
    audit *a = u;
    if (strcmp(serial, a->sel[0].serial) == 0)
        return 0;
    if (!a->have_pen || serial != a->serial_seen) {
        a->serial_seen = serial;
        if (add_pen(a, serial) != 0) {
            audit_stop(a, PENLINK_ERR_NO_MEM);
            return 1;
        }
    }
    if (r->kind == PENLINK_REC_CARTRIDGE_INSERTED) {
        a->cart_in = 1;
        a->cart_serial = r->cartridge_serial;
        a->cart_uses = r->cartridge_uses;
    } else if (r->kind == PENLINK_REC_CARTRIDGE_REMOVED) {
        a->cart_in = 0;
    } else if (r->kind == PENLINK_REC_TREATMENT_START) {
        int named = (r->fields & PENLINK_F_CARTRIDGE_SERIAL) != 0 && r->cartridge_serial != 0;
        uint64_t cs = named ? r->cartridge_serial : a->cart_serial;
        uint32_t uses = a->cart_in && cs == a->cart_serial ? a->cart_uses : 0;
        /* never in the window: only the audited pen's uses put a reuse in it */
        if ((a->cart_in || named) && audit_cart_add(a, cs, r->seq, r->time_ms, uses, 0) != 0)
            audit_stop(a, PENLINK_ERR_NO_MEM);
    }
    return a->rc != PENLINK_OK;
}

/* @p p: a pen of the backend's list, its serial copied. 0, or -1 out of memory. */
static int pen_of_row(selected *p, int64_t device, const char *serial, const uint8_t *key,
                      uint64_t first_from)
{
    memset(p, 0, sizeof *p);
    p->serial = malloc(strlen(serial) + 1);
    if (!p->serial)
        return -1;
    strcpy(p->serial, serial);
    p->device = device;
    p->has_key = key != NULL;
    if (key)
        memcpy(p->key, key, PL_KEY_BYTES);
    p->first_from = first_from;
    return 0;
}

static int on_selected(void *u, int64_t device, const char *serial, const uint8_t *key,
                       uint64_t first_from)
{
    audit *a = u;
    if (pc_grow(&a->sel, &a->cap_sel, a->n_sel + 1, sizeof *a->sel) != 0 ||
        pen_of_row(&a->sel[a->n_sel], device, serial, key, first_from) != 0) {
        audit_stop(a, PENLINK_ERR_NO_MEM);
        return 1;
    }
    a->n_sel++;
    return 0;
}

/* Nothing examined is a finding, never a pass: the archive, the pen or the window is empty. */
static void report_nothing(audit *a)
{
    const penlink_archive_filter *f = a->f;
    int window = f && (f->has_since || f->has_until);
    const char *pen = f && f->serial ? f->serial : NULL;
    penlink_finding fi;
    audit_finding_init(a, &fi, PENLINK_FIND_NO_RECORDS, "integrity", 1);
    fi.serial = pen ? pen : "";
    if (a->sum.records == 0)
        snprintf(fi.detail, sizeof fi.detail,
                 "no records to audit: the archive holds no record%s%s%s; nothing was examined, "
                 "so nothing is shown to comply",
                 pen ? " of pen " : "", pen ? pen : "", window ? " at all" : "");
    else
        snprintf(fi.detail, sizeof fi.detail,
                 "no records to audit: none of the %llu records of %s%s has a pen time in the "
                 "window; nothing was examined, so nothing is shown to comply",
                 (unsigned long long)a->sum.records, pen ? "pen " : "the selected pens",
                 pen ? pen : "");
    audit_emit(a, &fi);
}

/* Annotations are written by people: few. Each goes after those of its finding id. */
static int on_note(void *u, const penlink_annotation *n)
{
    audit *a = u;
    if (pc_grow(&a->notes, &a->cap_notes, a->n_notes + 1, sizeof *a->notes) != 0) {
        audit_stop(a, PENLINK_ERR_NO_MEM);
        return 1;
    }
    size_t at = a->n_notes;
    while (at > 0 && strcmp(a->notes[at - 1].finding, n->finding) > 0)
        at--;
    memmove(&a->notes[at + 1], &a->notes[at], (a->n_notes - at) * sizeof *a->notes);
    a->notes[at] = *n;
    a->n_notes++;
    return 0;
}

/* The records a pen's chunks give, to @p fn: the audit's records. */
typedef struct chunk_feed {
    audit *a;
    const char *serial;
    int (*fn)(void *u, const char *serial, const penlink_record *r);
} chunk_feed;

static int feed_chunk(void *u, const archive_chunk_row *c, const penlink_record *recs, uint32_t n,
                      int copy)
{
    chunk_feed *cf = u;
    (void)c, (void)copy; /* records no earlier chunk held: a later copy adds only new seqs */
    for (uint32_t i = 0; i < n; i++)
        if (cf->fn(cf->a, cf->serial, &recs[i]) != 0)
            return PENLINK_ERR_CANCELLED;
    return PENLINK_OK;
}

/*
 * Each selected pen's records, from its chunks, in seq order: the walk of
 * penlink verify checks each chunk's hash-chain link and place and the
 * signed heads on the way (the pen's own words), and reads no record row.
 * The record rows are the index export reads; whether they still equal
 * the chunks is penlink verify's check, not the audit's, so an edited row
 * changes no finding. Every record is read; the window selects what is
 * reported (a chunk may straddle it).
 */
static int read_selected(audit *a)
{
    archive_walker *w = NULL;
    if (archive_walker_new(&w) != PENLINK_OK)
        return PENLINK_ERR_NO_MEM;
    archive_walker_set_work(w, "audit"); /* the selected pens; the others read are not */
    int rc = PENLINK_OK;
    for (size_t i = 0; i < a->n_sel && rc == PENLINK_OK && a->rc == PENLINK_OK; i++) {
        selected *p = &a->sel[i];
        chunk_feed cf = { a, p->serial, on_record };
        archive_walk_hooks h = { feed_chunk, NULL, &cf };
        rc = archive_audit_pen(w, a->ar->b, p->device, p->serial, p->has_key ? p->key : NULL,
                               p->first_from, &h, &p->vr);
        if (rc == PENLINK_ERR_CANCELLED && a->rc != PENLINK_OK)
            rc = a->rc;
    }
    archive_walker_free(w);
    return rc;
}

/* Every pen of the archive, for the cartridges of the ones not selected. */
typedef struct pen_list {
    selected *pens; /* their verification reports unused */
    size_t n, cap;
} pen_list;

static int on_any_pen(void *u, int64_t device, const char *serial, const uint8_t *key,
                      uint64_t first_from)
{
    pen_list *l = u;
    if (pc_grow(&l->pens, &l->cap, l->n + 1, sizeof *l->pens) != 0 ||
        pen_of_row(&l->pens[l->n], device, serial, key, first_from) != 0)
        return 1;
    l->n++;
    return 0;
}

static int skip_chunk(void *u, const archive_chunk_row *c, const penlink_record *recs, uint32_t n,
                      int copy)
{
    (void)u, (void)c, (void)recs, (void)n, (void)copy;
    return PENLINK_OK;
}

/* Another pen's log broke where the audited pen's cartridges are looked for:
 * the evidence of their reuse there is not all checked, an integrity finding. */
static void report_other_broken(audit *a, const char *serial, const penlink_verify_report *r)
{
    penlink_finding fi;
    audit_finding_init(a, &fi, PENLINK_FIND_LOG_BROKEN, "integrity", 1);
    fi.serial = serial;
    fi.seq = r->where_seq;
    snprintf(fi.detail, sizeof fi.detail,
             "pen %.32s, read for reuses of %.32s's cartridges: its log does not verify, first "
             "at seq %llu: %.96s; none of its records is taken as evidence",
             serial, a->sel[0].serial, (unsigned long long)r->where_seq, r->detail);
    audit_emit(a, &fi);
}

/*
 * The other pens' records, for the audited pen's cartridges: each pen's
 * log through the same walk as its own audit (chain, heads, pulls), its
 * records taken only when all of it verifies. A pen whose log is broken or
 * lacks records gives none, and is named in an integrity finding, as its
 * own audit would name it.
 */
static void read_others(audit *a)
{
    pen_list l = { NULL, 0, 0 };
    archive_walker *w = NULL;
    int rc = audit_each_pen(a->ar, NULL, on_any_pen, &l);
    if (rc == PENLINK_ERR_CANCELLED)
        rc = PENLINK_ERR_NO_MEM;
    if (rc == PENLINK_OK && archive_walker_new(&w) != PENLINK_OK)
        rc = PENLINK_ERR_NO_MEM;
    for (size_t i = 0; i < l.n && rc == PENLINK_OK && a->rc == PENLINK_OK; i++) {
        if (strcmp(l.pens[i].serial, a->sel[0].serial) == 0)
            continue;
        const selected *p = &l.pens[i];
        const uint8_t *key = p->has_key ? p->key : NULL;
        penlink_verify_report vr;
        /* first the checks alone: a log that breaks anywhere gives no evidence at all (a
         * failure found at its end, a head, undoes what came before it) */
        archive_walk_hooks check = { skip_chunk, NULL, NULL };
        rc = archive_audit_pen(w, a->ar->b, p->device, p->serial, key, p->first_from, &check, &vr);
        if (rc != PENLINK_OK)
            break;
        if (vr.state == PENLINK_VERIFY_BROKEN) {
            report_other_broken(a, p->serial, &vr);
            continue;
        }
        chunk_feed cf = { a, p->serial, on_other };
        archive_walk_hooks h = { feed_chunk, NULL, &cf };
        rc = archive_audit_pen(w, a->ar->b, p->device, p->serial, key, p->first_from, &h, &vr);
        if (rc == PENLINK_ERR_CANCELLED && a->rc != PENLINK_OK)
            rc = a->rc;
        if (rc == PENLINK_OK && vr.state == PENLINK_VERIFY_BROKEN)
            report_other_broken(a, p->serial, &vr);
    }
    if (rc != PENLINK_OK && a->rc == PENLINK_OK)
        audit_stop(a, rc);
    archive_walker_free(w);
    for (size_t i = 0; i < l.n; i++)
        free(l.pens[i].serial);
    free(l.pens);
}

int penlink_audit_run(penlink_archive *ar, const penlink_archive_filter *f,
                      const penlink_audit_cb *cb, penlink_audit_summary *sum)
{
    if (!ar || !PL_SIZED_OK(f, PL_ARCHIVE_FILTER_SIZE_V1) ||
        !PL_SIZED_OK(cb, PL_AUDIT_CB_SIZE_V1) || !PL_SIZED_OK(sum, PL_AUDIT_SUMMARY_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    audit a;
    memset(&a, 0, sizeof a);
    a.ar = ar;
    a.f = f;
    a.cb = cb;
    a.sum.size = sizeof a.sum;
    if (sum) {
        penlink_audit_summary none = PENLINK_AUDIT_SUMMARY_INIT;
        none.verdict = PENLINK_VERDICT_NOT_RUN; /* until it ran: an error never reads as a pass */
        pl_sized_copy(sum, &none, sizeof none);
    }
    /* a mistyped serial selects nothing, which must not pass for a clean audit */
    if (f && f->serial) {
        int rc = penlink_archive_pen_check(ar, f->serial, NULL);
        if (rc != PENLINK_OK)
            return rc;
    }
    /* every record of the selected pens is read; the window only selects what is reported */
    penlink_archive_filter pens = PENLINK_ARCHIVE_FILTER_INIT;
    pens.serial = f ? f->serial : NULL;
    int rc = audit_each_pen(ar, pens.serial, on_selected, &a);
    a.sum.pens = a.n_sel;
    if (rc == PENLINK_OK)
        rc = penlink_archive_annotations(ar, on_note, &a);
    if (rc == PENLINK_OK)
        rc = penlink_archive_alarms(ar, &pens, audit_on_alarm, &a);
    if (rc == PENLINK_OK)
        rc = penlink_archive_config_history(ar, pens.serial, audit_on_hist, &a);
    if (rc == PENLINK_OK)
        rc = read_selected(&a);
    if (a.rc != PENLINK_OK)
        rc = a.rc;
    if (rc == PENLINK_OK) {
        end_pen(&a);
        alarms_before(&a, NULL);
        if (f && f->serial && a.n_sel == 1) {
            /* the audited pen's cartridges reused on any other pen of the archive */
            a.others = 1;
            a.n_mine = a.n_pens;
            a.have_pen = 0;
            read_others(&a);
        }
        audit_report_reuses(&a);
        audit_report_verifications(&a);
        if (a.rc == PENLINK_OK && a.sum.records_in_window == 0)
            report_nothing(&a);
        rc = a.rc;
    } else if (a.rc != PENLINK_OK) {
        rc = a.rc;
    }
    a.sum.verdict = rc != PENLINK_OK   ? PENLINK_VERDICT_NOT_RUN
                    : a.sum.compliance ? PENLINK_VERDICT_FAIL
                                       : PENLINK_VERDICT_PASS;
    if (sum)
        pl_sized_copy(sum, &a.sum, sizeof a.sum);
    for (size_t i = 0; i < a.n_sel; i++)
        free(a.sel[i].serial);
    free(a.sel);
    free(a.notes);
    for (size_t i = 0; i < a.n_pens; i++)
        free(a.pens[i]);
    free(a.pens);
    free(a.carts);
    free(a.uses);
    free(a.alarms);
    free(a.hist);
    free(a.pending);
    free(a.buckets);
    free(a.unknown);
    return rc;
}
