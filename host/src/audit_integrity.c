/*
 * The audit's integrity findings: the alarms the pulls raised, placed on
 * the records they concern; records missing, the pen's clock going back or
 * jumping, its log overflowing; and each selected pen's log, verified by
 * the audit itself.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "audit_internal.h"

#define CLOCK_JUMP_MS 3600000ll /* a clock_set step above this is reported */

/* ---- integrity ------------------------------------------------------- */

/* The seq after the last record an alarm concerns (its seq for one that
 * concerns no archived record: a refused pull's key_changed, unverified). */
static uint64_t alarm_end(const penlink_alarm *al)
{
    return al->count ? al->seq + al->count : al->seq;
}

static uint32_t alarm_kind(const char *kind)
{
    static const struct {
        const char *name;
        uint32_t kind;
    } known[] = {
        { "gap", PENLINK_FIND_GAP },
        { "conflict", PENLINK_FIND_CONFLICT },
        { "key_changed", PENLINK_FIND_KEY_CHANGED },
        { "unverified", PENLINK_FIND_UNVERIFIED },
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(kind, known[i].name) == 0)
            return known[i].kind;
    return PENLINK_FIND_ALARM; /* a kind newer than this audit: reported by its name */
}

/* The room " (raised N times)" takes after an alarm's words. */
#define ALARM_REPEATS_ROOM 40

/* Reports an incident when it was raised in the window or concerns a record that lies in it. */
void audit_emit_alarm(audit *a, incident *in)
{
    in->done = 1;
    if (!in->raised_in_win && !in->rec_in_win)
        return;
    const penlink_alarm *al = &in->al;
    penlink_finding fi;
    uint32_t kind = alarm_kind(al->kind);
    char why[160] = ""; /* a key change recorded since (penlink keys replace) explains it */
    int explained =
        kind == PENLINK_FIND_KEY_CHANGED && audit_key_change_explained(a->ar, al, why, sizeof why);
    audit_finding_init(a, &fi, kind, "integrity", !explained);
    fi.name = al->kind;
    fi.serial = al->serial;
    fi.seq = al->seq;
    fi.time_ms = in->have_time ? in->time_ms : 0;
    fi.count = al->count;
    fi.raised_ms = al->at_ms;
    fi.raised_last_ms = in->last_at_ms;
    fi.repeats = in->repeats;
    /* room for the count (when there is one) and the explanation: the alarm's
     * words are cut, never they */
    int room =
        (int)(sizeof fi.detail - 1 - strlen(why) - (in->repeats > 1 ? ALARM_REPEATS_ROOM : 0));
    if (in->repeats > 1)
        snprintf(fi.detail, sizeof fi.detail, "%.*s (raised %llu times)%s", room, al->detail,
                 (unsigned long long)in->repeats, why);
    else
        snprintf(fi.detail, sizeof fi.detail, "%.*s%s", room, al->detail, why);
    audit_emit(a, &fi);
}

/* Places the current pen's alarms on record @p r: an alarm concerns the
 * archived records of its range, or (a gap: they are not archived) the first
 * record after it; it is reported once the scan has passed its range. */
void audit_alarms_at(audit *a, const penlink_record *r)
{
    for (size_t i = a->next_alarm; i < a->alarm_hi && a->alarms[i].al.seq <= r->seq; i++) {
        incident *in = &a->alarms[i];
        if (in->done || in->al.count == 0)
            continue;
        uint64_t end = alarm_end(&in->al);
        int inside = r->seq < end;
        if (!in->have_time) {
            in->have_time = 1;
            in->time_ms = r->time_ms;
        }
        if (inside || !in->seen_in_range)
            in->rec_in_win |= audit_in_window(a, r->time_ms);
        in->seen_in_range |= inside;
        if (r->seq + 1 >= end && a->rc == PENLINK_OK)
            audit_emit_alarm(a, in);
    }
    while (a->next_alarm < a->alarm_hi &&
           (a->alarms[a->next_alarm].done || a->alarms[a->next_alarm].al.count == 0))
        a->next_alarm++;
}

static int alarm_covers(const audit *a, uint64_t first, uint64_t last)
{
    for (size_t i = a->alarm_lo; i < a->alarm_hi; i++) {
        const penlink_alarm *al = &a->alarms[i].al;
        if (strcmp(al->kind, "gap") == 0 && strcmp(al->serial, a->pens[a->pen]) == 0 &&
            al->seq <= first && al->seq + al->count > last)
            return 1;
    }
    return 0;
}

void audit_integrity(audit *a, const penlink_record *r)
{
    const penlink_record *p = &a->prev;
    penlink_finding fi;
    if (a->have_prev && r->seq > p->seq + 1 && !alarm_covers(a, p->seq + 1, r->seq - 1) &&
        audit_in_window(a, r->time_ms)) {
        audit_finding_init(a, &fi, PENLINK_FIND_MISSING, "integrity", 1);
        fi.seq = p->seq + 1;
        fi.time_ms = r->time_ms;
        fi.count = r->seq - p->seq - 1;
        snprintf(fi.detail, sizeof fi.detail,
                 "records %llu..%llu are not in the archive and no pull recorded a gap for them",
                 (unsigned long long)(p->seq + 1), (unsigned long long)(r->seq - 1));
        audit_emit(a, &fi);
    }
    if (a->have_prev && r->time_ms < p->time_ms &&
        !(r->kind == PENLINK_REC_CLOCK_SET && r->clock_delta_ms < 0) &&
        !(p->kind == PENLINK_REC_CLOCK_SET && p->clock_delta_ms < 0) &&
        audit_in_window(a, r->time_ms)) {
        audit_finding_init(a, &fi, PENLINK_FIND_CLOCK_BACKWARDS, "integrity", 0);
        fi.seq = r->seq;
        fi.time_ms = r->time_ms;
        fi.value = audit_span_ms(p->time_ms, r->time_ms);
        snprintf(fi.detail, sizeof fi.detail,
                 "the pen's time went back %lld ms from record %llu to record %llu with no "
                 "clock_set to explain it",
                 (long long)fi.value, (unsigned long long)p->seq, (unsigned long long)r->seq);
        audit_emit(a, &fi);
    }
    if (!audit_in_window(a, r->time_ms))
        return;
    if (r->kind == PENLINK_REC_LOG_OVERFLOW) {
        audit_finding_init(a, &fi, PENLINK_FIND_OVERFLOW, "integrity", 1);
        fi.seq = r->seq;
        fi.time_ms = r->time_ms;
        fi.count = r->dropped;
        snprintf(fi.detail, sizeof fi.detail,
                 "the pen's log was full and dropped %llu records before they were pulled",
                 (unsigned long long)r->dropped);
        audit_emit(a, &fi);
    } else if (r->kind == PENLINK_REC_CLOCK_SET &&
               (r->clock_delta_ms > CLOCK_JUMP_MS || r->clock_delta_ms < -CLOCK_JUMP_MS)) {
        audit_finding_init(a, &fi, PENLINK_FIND_CLOCK_JUMP, "integrity", 0);
        fi.seq = r->seq;
        fi.time_ms = r->time_ms;
        fi.value = r->clock_delta_ms;
        /* the magnitude in unsigned arithmetic: a pen may log a delta of INT64_MIN */
        uint64_t by =
            r->clock_delta_ms > 0 ? (uint64_t)r->clock_delta_ms : 0 - (uint64_t)r->clock_delta_ms;
        snprintf(fi.detail, sizeof fi.detail, "the clock was set %s by %llu s (over an hour)",
                 r->clock_delta_ms > 0 ? "forward" : "back", (unsigned long long)(by / 1000));
        audit_emit(a, &fi);
    }
}

/* The records a selected pen's finished pulls recorded as stored beyond its
 * last archived record, with no gap the pen reported for them: removed. */
static void report_missing_tail(audit *a, const selected *p)
{
    archive_backend *b = a->ar->b;
    uint64_t pulled = 0;
    int have = 0;
    int st = b->ops->pulled_to(b, p->device, &pulled, &have);
    if (st != PENLINK_OK) {
        audit_stop(a, st);
        return;
    }
    if (!have || pulled <= p->next)
        return;
    for (size_t i = 0; i < a->n_alarms; i++) {
        const penlink_alarm *al = &a->alarms[i].al;
        if (strcmp(al->kind, "gap") == 0 && strcmp(al->serial, p->serial) == 0 &&
            al->seq <= p->next && al->seq + al->count >= pulled)
            return;
    }
    penlink_finding fi;
    audit_finding_init(a, &fi, PENLINK_FIND_MISSING, "integrity", 1);
    fi.serial = p->serial;
    fi.seq = p->next;
    fi.count = pulled - p->next;
    snprintf(fi.detail, sizeof fi.detail,
             "records %llu..%llu are not in the archive, though its pulls recorded them as "
             "stored, and no pull recorded a gap for them (removed from the archive)",
             (unsigned long long)p->next, (unsigned long long)(pulled - 1));
    audit_emit(a, &fi);
}

/* The verification of a selected pen as the audit shows it: computed now. */
static void verification_of(const selected *p, const penlink_verify_report *r,
                            penlink_verification *v)
{
    memset(v, 0, sizeof *v);
    snprintf(v->serial, sizeof v->serial, "%s", p->serial);
    snprintf(v->result, sizeof v->result, "%s",
             r->state == PENLINK_VERIFY_BROKEN     ? "broken"
             : r->state == PENLINK_VERIFY_UNSIGNED ? "unsigned"
                                                   : "ok");
    v->through_seq = r->state == PENLINK_VERIFY_BROKEN ? r->where_seq : r->signed_through;
    v->records = r->records;
    v->chunks = r->chunks;
    snprintf(v->detail, sizeof v->detail, "%s", r->detail);
    /* a pen that does not sign: nothing was verified, as a stored "unsigned" says */
    v->have = r->state != PENLINK_VERIFY_UNSIGNED;
    v->signed_through = r->signed_through;
    v->pinned = p->has_key;
    v->computed = 1;
}

/*
 * Each selected pen's log, verified by the audit itself (read-only, the
 * checks of penlink verify): a stored verdict could be stale (records edited
 * after it) or forged (a row added), so none is read. A log that does not
 * verify undermines every finding and non-finding of that pen: it is one.
 */
void audit_report_verifications(audit *a)
{
    for (size_t i = 0; i < a->n_sel && a->rc == PENLINK_OK; i++) {
        const selected *p = &a->sel[i];
        audit_report_config_conflicts(a, p->serial);
        report_missing_tail(a, p);
        if (a->rc != PENLINK_OK)
            break;
        const penlink_verify_report r = p->vr;
        penlink_verification v;
        verification_of(p, &r, &v);
        v.size = sizeof v;
        int broken = r.state == PENLINK_VERIFY_BROKEN;
        if (broken)
            a->sum.logs_broken++;
        else if (r.state == PENLINK_VERIFY_UNSIGNED)
            a->sum.logs_unsigned++;
        else
            a->sum.logs_verified++;
        if (a->cb && a->cb->on_verification && a->cb->on_verification(a->cb->user, &v) != 0) {
            audit_stop(a, PENLINK_ERR_CANCELLED);
            break;
        }
        if (!broken)
            continue;
        penlink_finding fi;
        audit_finding_init(a, &fi, PENLINK_FIND_LOG_BROKEN, "integrity", 1);
        fi.serial = p->serial;
        fi.seq = r.where_seq;
        snprintf(fi.detail, sizeof fi.detail,
                 "this pen's archived log does not verify (checked by this audit), first at seq "
                 "%llu: %.200s",
                 (unsigned long long)r.where_seq, r.detail);
        audit_emit(a, &fi);
    }
}

static int same_alarm(const penlink_alarm *x, const penlink_alarm *y)
{
    return x->seq == y->seq && x->count == y->count && strcmp(x->serial, y->serial) == 0 &&
           strcmp(x->kind, y->kind) == 0 && strcmp(x->detail, y->detail) == 0;
}

/* Alarms arrive by pen, then seq: a repeat of an alarm is among the last ones of its seq. */
int audit_on_alarm(void *u, const penlink_alarm *al)
{
    audit *a = u;
    int raised_in = audit_in_window(a, al->at_ms);
    for (size_t i = a->n_alarms; i > 0 && a->alarms[i - 1].al.seq == al->seq &&
                                 strcmp(a->alarms[i - 1].al.serial, al->serial) == 0;
         i--) {
        incident *in = &a->alarms[i - 1];
        if (!same_alarm(&in->al, al))
            continue;
        in->repeats++;
        if (al->at_ms < in->al.at_ms)
            in->al.at_ms = al->at_ms;
        if (al->at_ms > in->last_at_ms)
            in->last_at_ms = al->at_ms;
        in->raised_in_win |= raised_in;
        return 0;
    }
    if (pc_grow(&a->alarms, &a->cap_alarms, a->n_alarms + 1, sizeof *a->alarms) != 0) {
        audit_stop(a, PENLINK_ERR_NO_MEM);
        return 1;
    }
    incident *in = &a->alarms[a->n_alarms++];
    memset(in, 0, sizeof *in);
    in->al = *al;
    in->repeats = 1;
    in->last_at_ms = al->at_ms;
    in->raised_in_win = raised_in;
    return 0;
}
