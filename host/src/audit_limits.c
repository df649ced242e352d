/*
 * The audit's configuration limits: the values of each revision from the
 * archive's configuration history, the revision in force for each
 * treatment, and the out_of_limits, limits_unknown and config_conflict
 * findings.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "audit_internal.h"

/* ---- configuration --------------------------------------------------- */

static int add_hist(audit *a, const char *serial, const penlink_config *c, int replaced)
{
    if (pc_grow(&a->hist, &a->cap_hist, a->n_hist + 1, sizeof *a->hist) != 0) {
        audit_stop(a, PENLINK_ERR_NO_MEM);
        return 1;
    }
    hist *h = &a->hist[a->n_hist++];
    memset(h, 0, sizeof *h);
    snprintf(h->serial, sizeof h->serial, "%s", serial);
    h->rev = c->revision;
    const uint32_t need = PENLINK_CFG_DEPTH_MIN_UM | PENLINK_CFG_DEPTH_MAX_UM |
                          PENLINK_CFG_MAX_TREATMENT_S | PENLINK_CFG_SPEED_MIN_SPS |
                          PENLINK_CFG_SPEED_MAX_SPS;
    h->complete = (c->present & need) == need;
    h->replaced = replaced;
    h->dmin = c->depth_min_um;
    h->dmax = c->depth_max_um;
    h->max_s = c->max_treatment_s;
    h->smin = c->speed_min_sps;
    h->smax = c->speed_max_sps;
    return 0;
}

/* Every revision the history knows the values of: those read or written, and
 * those a change written by this host replaced (a pen changed before its
 * first pull: its first revision is known only as that change's old values). */
int audit_on_hist(void *u, const penlink_config_entry *e)
{
    audit *a = u;
    if (add_hist(a, e->serial, &e->config, 0) != 0)
        return 1;
    if (e->has_old && e->old_config.revision != 0)
        return add_hist(a, e->serial, &e->old_config, 1);
    return 0;
}

/* 1 when two value sets of one revision differ in a limit the audit checks. */
static int hist_differs(const hist *x, const hist *y)
{
    return x->dmin != y->dmin || x->dmax != y->dmax || x->max_s != y->max_s || x->smin != y->smin ||
           x->smax != y->smax;
}

/*
 * The values of revision @p rev of the current pen (unknown if not in the
 * history). The pen's log proves which revision was in force, never its
 * values: those are the history's rows, which nothing signs. Where the rows
 * give one revision different values (an edited history: a config_conflict
 * finding), the strictest of them is checked, so that a row added with laxer
 * limits hides nothing.
 */
limits audit_lookup(const audit *a, uint32_t rev)
{
    limits l = { LIM_UNKNOWN, rev, 0, 0, 0, 0, 0 };
    const char *pen = a->pens[a->pen];
    for (size_t i = 0; i < a->n_hist; i++) {
        const hist *h = &a->hist[i];
        if (h->rev != rev || !h->complete || strcmp(h->serial, pen) != 0)
            continue;
        if (l.state != LIM_KNOWN) {
            l.state = LIM_KNOWN;
            l.dmin = h->dmin;
            l.dmax = h->dmax;
            l.max_s = h->max_s;
            l.smin = h->smin;
            l.smax = h->smax;
            continue;
        }
        l.dmin = h->dmin > l.dmin ? h->dmin : l.dmin;
        l.dmax = h->dmax < l.dmax ? h->dmax : l.dmax;
        l.max_s = h->max_s < l.max_s ? h->max_s : l.max_s;
        l.smin = h->smin > l.smin ? h->smin : l.smin;
        l.smax = h->smax < l.smax ? h->smax : l.smax;
    }
    return l;
}

/* The selected pen @p serial's revisions with more than one value set: one
 * integrity finding per pen, naming the first and counting them. */
void audit_report_config_conflicts(audit *a, const char *serial)
{
    uint32_t first = 0, n = 0;
    for (size_t i = 0; i < a->n_hist; i++) {
        const hist *h = &a->hist[i];
        if (!h->complete || strcmp(h->serial, serial) != 0)
            continue;
        int earlier = 0, differs = 0; /* a revision is counted at its first row */
        for (size_t j = 0; j < a->n_hist && !earlier; j++) {
            const hist *o = &a->hist[j];
            if (j == i || o->rev != h->rev || !o->complete || strcmp(o->serial, serial) != 0)
                continue;
            if (j < i)
                earlier = 1;
            else
                differs |= hist_differs(h, o);
        }
        if (earlier || !differs)
            continue;
        if (n++ == 0 || h->rev < first)
            first = h->rev;
    }
    if (n == 0)
        return;
    penlink_finding fi;
    audit_finding_init(a, &fi, PENLINK_FIND_CONFIG_CONFLICT, "integrity", 1);
    fi.serial = serial;
    fi.config_revision = first;
    fi.count = n;
    snprintf(fi.detail, sizeof fi.detail,
             "the archive's configuration history gives %u revision%s of this pen two different "
             "sets of values (first: revision %u): the history was edited; limits were checked "
             "against the strictest values, and the pen's own values are the reference "
             "(penlink config get)",
             n, n == 1 ? "" : "s", first);
    audit_emit(a, &fi);
}

void audit_check_depth(treat *t, const limits *l, uint32_t depth)
{
    if (l->state == LIM_PENDING) {
        if (!t->pend || depth < t->pend_min)
            t->pend_min = depth;
        if (!t->pend || depth > t->pend_max)
            t->pend_max = depth;
        t->pend = 1;
    } else if (l->state == LIM_UNKNOWN) {
        if (!t->unchecked)
            t->unchecked_rev = l->rev;
        t->unchecked = 1;
    } else if ((depth < l->dmin || depth > l->dmax) && !t->viol_depth) {
        t->viol_depth = 1;
        t->viol_depth_um = depth;
        t->viol_rev = l->rev;
        t->viol_lo = l->dmin;
        t->viol_hi = l->dmax;
    }
}

void audit_check_speed(treat *t, const limits *l, uint32_t speed)
{
    if (l->state == LIM_PENDING) {
        if (!t->pend_speed || speed < t->pend_smin)
            t->pend_smin = speed;
        if (!t->pend_speed || speed > t->pend_smax)
            t->pend_smax = speed;
        t->pend_speed = 1;
    } else if (l->state == LIM_UNKNOWN) {
        if (!t->unchecked)
            t->unchecked_rev = l->rev;
        t->unchecked = 1;
    } else if ((speed < l->smin || speed > l->smax) && !t->viol_speed) {
        t->viol_speed = 1;
        t->viol_speed_sps = speed;
        t->viol_slo = l->smin;
        t->viol_shi = l->smax;
        if (!t->viol_depth)
            t->viol_rev = l->rev;
    }
}

void audit_check_duration(treat *t, const limits *l)
{
    if (l->state == LIM_PENDING) {
        t->pend_dur = 1;
    } else if (l->state == LIM_UNKNOWN) {
        if (!t->unchecked)
            t->unchecked_rev = l->rev;
        t->unchecked = 1;
    } else if (t->t.duration_ms > (uint64_t)l->max_s * 1000u) {
        t->viol_dur = 1;
        t->viol_max_s = l->max_s;
        if (!t->viol_depth && !t->viol_speed)
            t->viol_rev = l->rev;
    }
}

/* Decides what waited for the first revision, now known to be @p l. */
static void resolve(treat *t, const limits *l)
{
    if (t->pend) {
        t->pend = 0;
        audit_check_depth(t, l, t->pend_min);
        audit_check_depth(t, l, t->pend_max);
    }
    if (t->pend_speed) {
        t->pend_speed = 0;
        audit_check_speed(t, l, t->pend_smin);
        audit_check_speed(t, l, t->pend_smax);
    }
    if (t->pend_dur) {
        t->pend_dur = 0;
        audit_check_duration(t, l);
    }
    if (t->t.config_revision == 0 && l->state != LIM_PENDING)
        t->t.config_revision = l->rev;
}

static void count_unknown(audit *a, const treat *t)
{
    for (size_t i = 0; i < a->n_unknown; i++)
        if (a->unknown[i].rev == t->unchecked_rev) {
            a->unknown[i].count++;
            return;
        }
    if (pc_grow(&a->unknown, &a->cap_unknown, a->n_unknown + 1, sizeof *a->unknown) != 0) {
        audit_stop(a, PENLINK_ERR_NO_MEM);
        return;
    }
    unknown_rev *u = &a->unknown[a->n_unknown++];
    u->rev = t->unchecked_rev;
    u->count = 1;
    u->first_seq = t->t.start_seq;
    u->first_ms = t->t.start_ms;
}

/* The limit findings of a treatment whose limits are all decided. */
static void limit_findings(audit *a, const treat *t)
{
    if (!t->in_window)
        return;
    if (t->unchecked)
        count_unknown(a, t);
    if (!t->viol_depth && !t->viol_speed && !t->viol_dur)
        return;
    penlink_finding fi;
    audit_finding_init(a, &fi, PENLINK_FIND_OUT_OF_LIMITS, "cartridges", 1);
    fi.seq = t->t.start_seq;
    fi.time_ms = t->t.start_ms;
    fi.cartridge_serial = t->t.cartridge_serial;
    fi.cartridge_uses = t->t.cartridge_uses;
    fi.config_revision = t->viol_rev;
    int n = 0;
    if (t->viol_depth) {
        fi.value = t->viol_depth_um;
        n = snprintf(fi.detail, sizeof fi.detail,
                     "depth %u um outside depth_min_um..depth_max_um %u..%u of revision %u",
                     t->viol_depth_um, t->viol_lo, t->viol_hi, t->viol_rev);
    }
    if (t->viol_speed) {
        if (!t->viol_depth)
            fi.value = t->viol_speed_sps;
        n += snprintf(fi.detail + n, sizeof fi.detail - (size_t)n,
                      "%sspeed %u strokes/s outside speed_min_sps..speed_max_sps %u..%u",
                      n ? "; " : "", t->viol_speed_sps, t->viol_slo, t->viol_shi);
    }
    if (t->viol_dur) {
        if (!t->viol_depth && !t->viol_speed)
            fi.value = (int64_t)t->t.duration_ms;
        snprintf(fi.detail + n, sizeof fi.detail - (size_t)n,
                 "%sduration %llu s above max_treatment_s %u", n ? "; " : "",
                 (unsigned long long)(t->t.duration_ms / 1000), t->viol_max_s);
    }
    audit_emit(a, &fi);
}

/* A finished treatment whose limits are decided: its row, then its findings. */
void audit_report_treatment(audit *a, const treat *t)
{
    if (!t->in_window)
        return;
    if (a->cb && a->cb->on_treatment && a->cb->on_treatment(a->cb->user, &t->t) != 0) {
        audit_stop(a, PENLINK_ERR_CANCELLED);
        return;
    }
    limit_findings(a, t);
}

/*
 * The revision in force before the pen's first CONFIG_CHANGED record: the
 * pen raises the revision by one per change, so it is the first changed
 * revision minus one; with no change in the archive it is the revision read
 * at the pen's first pull (nothing changed since, or a record would say so).
 */
void audit_resolve_first_revision(audit *a, int have_rev, uint32_t rev)
{
    if (a->lim.state != LIM_PENDING)
        return;
    limits l = { LIM_UNKNOWN, 0, 0, 0, 0, 0, 0 };
    if (have_rev && rev > 1) {
        l = audit_lookup(a, rev - 1);
    } else if (!have_rev) {
        for (size_t i = 0; i < a->n_hist; i++)
            if (!a->hist[i].replaced && strcmp(a->hist[i].serial, a->pens[a->pen]) == 0) {
                l = audit_lookup(a, a->hist[i].rev);
                break;
            }
    }
    a->lim = l;
    if (a->tr.open)
        resolve(&a->tr, &l);
    for (size_t i = 0; i < a->n_pending && a->rc == PENLINK_OK; i++) {
        resolve(&a->pending[i], &l);
        audit_report_treatment(a, &a->pending[i]);
    }
    a->n_pending = 0;
}
