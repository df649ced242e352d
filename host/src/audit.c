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
 * first CONFIG_CHANGED, see resolve_first_revision()). Nothing grows with
 * the number of records.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive.h"
#include "calendar.h"
#include "grow.h"
#include "pl/auth.h"

#define DAY_MS 86400000ll
#define CLOCK_JUMP_MS 3600000ll /* a clock_set step above this is reported */
/* Usage periods of pen times outside years 1..9999 (a broken or hostile clock)
 * are those of the nearest end: the calendar arithmetic stays in range. */
#define CALENDAR_MIN_MS (-62135596800000ll) /* 0001-01-01T00:00:00Z */
#define CALENDAR_MAX_MS 253402300799999ll   /* 9999-12-31T23:59:59.999Z */

/* later - earlier, for later >= earlier, without overflow (a hostile clock may
 * span more than int64_t holds): at most INT64_MAX. */
static int64_t span_ms(int64_t later, int64_t earlier)
{
    uint64_t d = (uint64_t)later - (uint64_t)earlier;
    return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* a + b for b >= 0, at most INT64_MAX. */
static int64_t add_ms(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
}
#define PEN_LIST_CHARS 300 /* of pen serials named when one is not found */
#define CLOSE_EDITS 2      /* a serial this many edits away is "close" */
#define SERIAL_MAX 32      /* characters of a serial (the API's serial[33]) */

/* ---- selecting a pen ------------------------------------------------ */

/* Edits (insert, delete, change) from @p a to @p b, ignoring case. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[SERIAL_MAX + 1];
    if (la > SERIAL_MAX || lb > SERIAL_MAX)
        return (size_t)-1;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            int same = tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1]);
            size_t best = diag + !same;
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

typedef struct pen_search {
    const char *want;
    int found;
    size_t pens, listed, best;
    char close[SERIAL_MAX + 1];
    char list[PEN_LIST_CHARS + 40];
} pen_search;

/* The archive's pens (all, or the one named), in serial order: the backend's
 * list, which costs no count of their records. */
static int each_pen(penlink_archive *ar, const char *serial,
                    int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                              uint64_t first_from),
                    void *user)
{
    return ar->b->ops->pens(ar->b, serial, cb, user);
}

static int on_pen(void *u, int64_t device, const char *serial, const uint8_t *key,
                  uint64_t first_from)
{
    pen_search *ps = u;
    (void)device, (void)key, (void)first_from;
    ps->pens++;
    /* the serial whole, or the first SERIAL_MAX bytes of a longer stored one (an
     * earlier penlink's archive): what the library hands out for it */
    if (strcmp(serial, ps->want) == 0 ||
        (strlen(serial) > SERIAL_MAX && strlen(ps->want) == SERIAL_MAX &&
         strncmp(serial, ps->want, SERIAL_MAX) == 0))
        ps->found = 1;
    size_t dist = edit_distance(serial, ps->want);
    size_t len = strlen(ps->want);
    /* close: the same but for case, or a typo or two in a serial long enough for it */
    if (dist < ps->best && (dist == 0 || (dist <= CLOSE_EDITS && dist * 3 <= len))) {
        ps->best = dist;
        snprintf(ps->close, sizeof ps->close, "%s", serial);
    }
    size_t used = strlen(ps->list);
    if (used + strlen(serial) + 2 <= PEN_LIST_CHARS) {
        snprintf(ps->list + used, sizeof ps->list - used, "%s%s", used ? ", " : "", serial);
        ps->listed++;
    }
    return 0;
}

int penlink_archive_pen_check(penlink_archive *ar, const char *serial, char close[33])
{
    if (close)
        close[0] = '\0';
    if (!ar || !serial)
        return PENLINK_ERR_INVALID_ARG;
    pen_search ps;
    memset(&ps, 0, sizeof ps);
    ps.want = serial;
    ps.best = (size_t)-1;
    int rc = each_pen(ar, NULL, on_pen, &ps);
    if (rc != PENLINK_OK || ps.found)
        return rc;
    if (close)
        snprintf(close, SERIAL_MAX + 1, "%s", ps.close);
    if (ps.pens == 0)
        return penlink_fail(ar->ctx, PENLINK_ERR_NOT_FOUND,
                            "no pen %s in the archive: it holds no pens at all", serial);
    char more[40] = "";
    if (ps.listed < ps.pens)
        snprintf(more, sizeof more, " and %zu more", ps.pens - ps.listed);
    return penlink_fail(ar->ctx, PENLINK_ERR_NOT_FOUND,
                        "no pen %s in the archive%s%s%s; it holds %zu pen%s: %s%s", serial,
                        ps.close[0] ? " (did you mean " : "", ps.close, ps.close[0] ? "?)" : "",
                        ps.pens, ps.pens == 1 ? "" : "s", ps.list, more);
}

/* ---- cartridges: serial -> first treatment, count ------------------- */

typedef struct use {
    uint32_t pen;
    uint32_t next; /* index + 1 of the next use, 0 = none */
    uint64_t seq;
    int64_t ms;
} use;

typedef struct cart {
    uint64_t serial;
    uint64_t first_seq;
    int64_t first_ms;
    uint32_t first_pen;
    uint32_t count;    /* treatments */
    uint32_t max_uses; /* the pen's highest use count */
    uint32_t extra;    /* index + 1 into uses[] of the second use, 0 = none */
    uint32_t last;     /* index + 1 of the last extra use */
    uint8_t in_window;
    uint8_t used;
} cart;

/* ---- configuration limits ------------------------------------------- */

enum { LIM_PENDING = 0, LIM_KNOWN = 1, LIM_UNKNOWN = 2 };

typedef struct limits {
    int state;
    uint32_t rev;
    uint32_t dmin, dmax, max_s, smin, smax;
} limits;

typedef struct hist {
    char serial[33];
    uint32_t rev;
    int complete; /* depth, speed and max_treatment_s limits known */
    int replaced; /* the old values of a change, not a revision read or written */
    uint32_t dmin, dmax, max_s, smin, smax;
} hist;

/* ---- one treatment being followed ------------------------------------ */

typedef struct treat {
    penlink_treatment t;
    int open, in_window;
    uint32_t cur_depth, cur_speed;
    int64_t seg_ms;
    double depth_ms; /* sum of depth x time */
    int64_t weight_ms;
    limits start_lim;
    /* limits: a violation found, or parts waiting for the revision */
    int viol_depth, viol_dur, viol_speed;
    uint32_t viol_depth_um, viol_rev, viol_lo, viol_hi, viol_max_s;
    uint32_t viol_speed_sps, viol_slo, viol_shi;
    int pend, pend_dur, pend_speed;
    uint32_t pend_min, pend_max, pend_smin, pend_smax;
    int unchecked;
    uint32_t unchecked_rev;
} treat;

typedef struct bucket {
    int64_t start;
    uint64_t treatments, ms, cartridges;
} bucket;

typedef struct unknown_rev {
    uint32_t rev;
    uint64_t count;
    uint64_t first_seq;
    int64_t first_ms;
} unknown_rev;

/* An integrity alarm as the audit reports it: one incident however often it
 * was raised (a refused pull of a cloned pen raises key_changed again at each
 * attempt), placed in time both by when it was raised and by the pen's
 * records it concerns. */
typedef struct incident {
    penlink_alarm al;   /* its first raise */
    uint64_t repeats;   /* raises of the same alarm */
    int64_t last_at_ms; /* host time of the last one */
    int raised_in_win;  /* one of its raises lies in the window */
    int rec_in_win;     /* a record it concerns lies in the window */
    int have_time;      /* time_ms: the pen time of the first record it concerns */
    int64_t time_ms;
    int seen_in_range; /* an archived record inside seq..seq+count-1 was met */
    int done;
} incident;

/* A selected pen: what its own verification needs, and where its records end. */
typedef struct selected {
    char *serial; /* as stored (a longer one of an earlier penlink too) */
    int64_t device;
    int has_key;
    uint8_t key[PL_KEY_BYTES];
    uint64_t first_from;
    uint64_t next;            /* one past its last archived record (0: none) */
    penlink_verify_report vr; /* its log, checked as its records were read from its chunks */
} selected;

typedef struct audit {
    penlink_archive *ar;
    const penlink_archive_filter *f;
    const penlink_audit_cb *cb;
    penlink_audit_summary sum;
    int rc;

    char **pens; /* pens with records, as the scan met them */
    size_t n_pens, cap_pens;
    selected *sel; /* every selected pen, records or not */
    size_t n_sel, cap_sel;

    cart *carts;
    size_t cap_carts, n_carts;
    use *uses;
    size_t n_uses, cap_uses;

    incident *alarms;
    size_t n_alarms, cap_alarms, next_alarm;
    penlink_annotation *notes; /* every annotation, by finding id then age */
    size_t n_notes, cap_notes;
    hist *hist;
    size_t n_hist, cap_hist;

    /* the pen being read */
    int have_pen;
    const char *serial_seen; /* the pointer to the current pen's serial */
    uint32_t pen;
    size_t alarm_lo, alarm_hi; /* its alarms */
    penlink_record prev;
    int have_prev;
    int cart_in;
    uint64_t cart_serial;
    uint32_t cart_uses;
    limits lim;
    treat tr;
    treat *pending;
    size_t n_pending, cap_pending;
    bucket *buckets;
    size_t n_buckets, cap_buckets;
    unknown_rev *unknown;
    size_t n_unknown, cap_unknown;

    /* an audit of one pen reads the other pens' cartridges too: a reuse of its
     * cartridges on them is its finding (pens[] below n_mine are selected) */
    int others;
    size_t n_mine;

} audit;

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

static int in_window(const audit *a, int64_t ms)
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

static void stop(audit *a, int rc)
{
    if (a->rc == PENLINK_OK)
        a->rc = rc;
}

static void finding_init(audit *a, penlink_finding *fi, uint32_t kind, const char *report,
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

static void emit(audit *a, penlink_finding *fi)
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
        stop(a, PENLINK_ERR_CANCELLED);
}

/* ---- cartridges ------------------------------------------------------ */

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int cart_rehash(audit *a)
{
    size_t cap = a->cap_carts ? a->cap_carts * 2 : 1024;
    cart *n = calloc(cap, sizeof *n);
    if (!n)
        return -1;
    for (size_t i = 0; i < a->cap_carts; i++) {
        if (!a->carts[i].used)
            continue;
        size_t j = mix(a->carts[i].serial) & (cap - 1);
        while (n[j].used)
            j = (j + 1) & (cap - 1);
        n[j] = a->carts[i];
    }
    free(a->carts);
    a->carts = n;
    a->cap_carts = cap;
    return 0;
}

/* Notes that a treatment used cartridge @p serial. */
static int cart_add(audit *a, uint64_t serial, uint64_t seq, int64_t ms, uint32_t uses, int win)
{
    if ((a->n_carts + 1) * 2 > a->cap_carts && cart_rehash(a) != 0)
        return -1;
    size_t j = mix(serial) & (a->cap_carts - 1);
    while (a->carts[j].used && a->carts[j].serial != serial)
        j = (j + 1) & (a->cap_carts - 1);
    cart *c = &a->carts[j];
    if (!c->used) {
        memset(c, 0, sizeof *c);
        c->used = 1;
        c->serial = serial;
        c->first_pen = a->pen;
        c->first_seq = seq;
        c->first_ms = ms;
        c->count = 1;
        c->max_uses = uses;
        c->in_window = (uint8_t)win;
        a->n_carts++;
        return 0;
    }
    if (pc_grow(&a->uses, &a->cap_uses, a->n_uses + 1, sizeof *a->uses) != 0)
        return -1;
    use *u = &a->uses[a->n_uses++];
    u->pen = a->pen;
    u->seq = seq;
    u->ms = ms;
    u->next = 0;
    if (c->last)
        a->uses[c->last - 1].next = (uint32_t)a->n_uses;
    else
        c->extra = (uint32_t)a->n_uses;
    c->last = (uint32_t)a->n_uses;
    c->count++;
    if (uses > c->max_uses)
        c->max_uses = uses;
    c->in_window |= (uint8_t)win;
    return 0;
}

static int cmp_cart(const void *x, const void *y)
{
    const cart *p = *(const cart *const *)x, *q = *(const cart *const *)y;
    if (p->first_pen != q->first_pen)
        return p->first_pen < q->first_pen ? -1 : 1;
    return p->first_seq < q->first_seq ? -1 : p->first_seq > q->first_seq;
}

/* Reuses can only be told once every pen was read. */
static void report_reuses(audit *a)
{
    size_t n = 0;
    for (size_t i = 0; i < a->cap_carts; i++) {
        const cart *c = &a->carts[i];
        if (c->used && c->in_window)
            a->sum.cartridges++;
        if (c->used && c->in_window && (c->count > 1 || c->max_uses > 1))
            n++;
    }
    if (n == 0)
        return;
    const cart **list = malloc(n * sizeof *list);
    if (!list) {
        stop(a, PENLINK_ERR_NO_MEM);
        return;
    }
    n = 0;
    for (size_t i = 0; i < a->cap_carts; i++) {
        const cart *c = &a->carts[i];
        if (c->used && c->in_window && (c->count > 1 || c->max_uses > 1))
            list[n++] = c;
    }
    qsort(list, n, sizeof *list, cmp_cart);
    for (size_t i = 0; i < n && a->rc == PENLINK_OK; i++) {
        const cart *c = list[i];
        penlink_evidence *ev = malloc(c->count * sizeof *ev);
        if (!ev) {
            stop(a, PENLINK_ERR_NO_MEM);
            break;
        }
        ev[0].serial = a->pens[c->first_pen];
        ev[0].seq = c->first_seq;
        ev[0].time_ms = c->first_ms;
        size_t k = 1;
        int other_pen = 0;
        for (uint32_t u = c->extra; u && k < c->count; u = a->uses[u - 1].next, k++) {
            ev[k].serial = a->pens[a->uses[u - 1].pen];
            ev[k].seq = a->uses[u - 1].seq;
            ev[k].time_ms = a->uses[u - 1].ms;
            other_pen |= a->uses[u - 1].pen != c->first_pen;
        }
        penlink_finding fi;
        finding_init(a, &fi, PENLINK_FIND_REUSE, "cartridges", 1);
        fi.serial = a->pens[c->first_pen];
        fi.seq = c->first_seq;
        fi.time_ms = c->first_ms;
        for (size_t e = 0; a->others && c->first_pen >= a->n_mine && e < k; e++)
            if (strcmp(ev[e].serial, a->pens[0]) == 0) {
                /* first used on another pen: the finding is the audited pen's */
                fi.serial = ev[e].serial;
                fi.seq = ev[e].seq;
                fi.time_ms = ev[e].time_ms;
                break;
            }
        fi.count = c->count;
        fi.cartridge_serial = c->serial;
        fi.cartridge_uses = c->max_uses;
        fi.evidence = ev;
        fi.n_evidence = k;
        if (c->count > 1)
            snprintf(fi.detail, sizeof fi.detail,
                     "cartridge %llu served %u treatments%s; the pen counted %u uses",
                     (unsigned long long)c->serial, c->count, other_pen ? " on different pens" : "",
                     c->max_uses);
        else
            snprintf(fi.detail, sizeof fi.detail,
                     "cartridge %llu: the pen counted %u uses; the earlier ones are not in this "
                     "archive",
                     (unsigned long long)c->serial, c->max_uses);
        emit(a, &fi);
        free(ev);
    }
    free(list);
}

/* ---- configuration --------------------------------------------------- */

static int add_hist(audit *a, const char *serial, const penlink_config *c, int replaced)
{
    if (pc_grow(&a->hist, &a->cap_hist, a->n_hist + 1, sizeof *a->hist) != 0) {
        stop(a, PENLINK_ERR_NO_MEM);
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
static int on_hist(void *u, const penlink_config_entry *e)
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
static limits lookup(const audit *a, uint32_t rev)
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
static void report_config_conflicts(audit *a, const char *serial)
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
    finding_init(a, &fi, PENLINK_FIND_CONFIG_CONFLICT, "integrity", 1);
    fi.serial = serial;
    fi.config_revision = first;
    fi.count = n;
    snprintf(fi.detail, sizeof fi.detail,
             "the archive's configuration history gives %u revision%s of this pen two different "
             "sets of values (first: revision %u): the history was edited; limits were checked "
             "against the strictest values, and the pen's own values are the reference "
             "(penlink config get)",
             n, n == 1 ? "" : "s", first);
    emit(a, &fi);
}

static void check_depth(treat *t, const limits *l, uint32_t depth)
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

static void check_speed(treat *t, const limits *l, uint32_t speed)
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

static void check_duration(treat *t, const limits *l)
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
        check_depth(t, l, t->pend_min);
        check_depth(t, l, t->pend_max);
    }
    if (t->pend_speed) {
        t->pend_speed = 0;
        check_speed(t, l, t->pend_smin);
        check_speed(t, l, t->pend_smax);
    }
    if (t->pend_dur) {
        t->pend_dur = 0;
        check_duration(t, l);
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
        stop(a, PENLINK_ERR_NO_MEM);
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
    finding_init(a, &fi, PENLINK_FIND_OUT_OF_LIMITS, "cartridges", 1);
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
    emit(a, &fi);
}

/* A finished treatment whose limits are decided: its row, then its findings. */
static void report_treatment(audit *a, const treat *t)
{
    if (!t->in_window)
        return;
    if (a->cb && a->cb->on_treatment && a->cb->on_treatment(a->cb->user, &t->t) != 0) {
        stop(a, PENLINK_ERR_CANCELLED);
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
static void resolve_first_revision(audit *a, int have_rev, uint32_t rev)
{
    if (a->lim.state != LIM_PENDING)
        return;
    limits l = { LIM_UNKNOWN, 0, 0, 0, 0, 0, 0 };
    if (have_rev && rev > 1) {
        l = lookup(a, rev - 1);
    } else if (!have_rev) {
        for (size_t i = 0; i < a->n_hist; i++)
            if (!a->hist[i].replaced && strcmp(a->hist[i].serial, a->pens[a->pen]) == 0) {
                l = lookup(a, a->hist[i].rev);
                break;
            }
    }
    a->lim = l;
    if (a->tr.open)
        resolve(&a->tr, &l);
    for (size_t i = 0; i < a->n_pending && a->rc == PENLINK_OK; i++) {
        resolve(&a->pending[i], &l);
        report_treatment(a, &a->pending[i]);
    }
    a->n_pending = 0;
}

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

static void period_label(penlink_period by, int local, int64_t start, char *buf, size_t cap)
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

static bucket *bucket_at(audit *a, int64_t ms)
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
        stop(a, PENLINK_ERR_NO_MEM);
        return NULL;
    }
    memmove(&a->buckets[lo + 1], &a->buckets[lo], (a->n_buckets - lo) * sizeof *a->buckets);
    a->n_buckets++;
    memset(&a->buckets[lo], 0, sizeof a->buckets[lo]);
    a->buckets[lo].start = start;
    return &a->buckets[lo];
}

/* ---- treatments ------------------------------------------------------ */

static void finish_treatment(audit *a, const penlink_record *r, int ended)
{
    treat *t = &a->tr;
    if (!t->open)
        return;
    t->open = 0;
    int64_t end = r->time_ms;
    if (end > t->seg_ms) {
        int64_t seg = span_ms(end, t->seg_ms);
        t->depth_ms += (double)t->cur_depth * (double)seg;
        t->weight_ms = add_ms(t->weight_ms, seg);
    }
    t->t.end_seq = r->seq;
    t->t.end_ms = end;
    t->t.ended = ended;
    if (ended && (r->fields & PENLINK_F_DURATION_MS))
        t->t.duration_ms = r->duration_ms;
    else
        t->t.duration_ms = end > t->t.start_ms ? (uint64_t)span_ms(end, t->t.start_ms) : 0;
    if (ended)
        t->t.strokes = r->strokes;
    /* a mean of 32-bit depths; rounding may not carry it past the largest of them */
    double mean = t->weight_ms > 0 ? t->depth_ms / (double)t->weight_ms + 0.5 : 0;
    t->t.depth_mean_um = t->weight_ms <= 0                   ? t->t.depth_min_um
                         : mean >= (double)t->t.depth_max_um ? t->t.depth_max_um
                                                             : (uint32_t)mean;
    check_duration(t, &t->start_lim);
    if (t->in_window) {
        a->sum.treatments++;
        bucket *b = bucket_at(a, t->t.start_ms);
        if (b) {
            b->treatments++;
            b->ms += t->t.duration_ms;
        }
    }
    if (t->pend || t->pend_speed || t->pend_dur) {
        /* reported once the revision in force is known */
        if (pc_grow(&a->pending, &a->cap_pending, a->n_pending + 1, sizeof *a->pending) != 0) {
            stop(a, PENLINK_ERR_NO_MEM);
            return;
        }
        a->pending[a->n_pending++] = *t;
    } else {
        report_treatment(a, t);
    }
}

static void start_treatment(audit *a, const penlink_record *r)
{
    treat *t = &a->tr;
    memset(t, 0, sizeof *t);
    t->open = 1;
    t->in_window = in_window(a, r->time_ms);
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
    check_depth(t, &a->lim, r->depth_um);
    check_speed(t, &a->lim, r->speed_sps);
    if (!t->t.has_cartridge && t->in_window) {
        penlink_finding fi;
        finding_init(a, &fi, PENLINK_FIND_NO_CARTRIDGE, "cartridges", 1);
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
        emit(a, &fi);
    }
    if ((a->cart_in || named) &&
        cart_add(a, serial, r->seq, r->time_ms, t->t.cartridge_uses, t->in_window) != 0)
        stop(a, PENLINK_ERR_NO_MEM);
}

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
static void emit_alarm(audit *a, incident *in)
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
    finding_init(a, &fi, kind, "integrity", !explained);
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
    emit(a, &fi);
}

/* Places the current pen's alarms on record @p r: an alarm concerns the
 * archived records of its range, or (a gap: they are not archived) the first
 * record after it; it is reported once the scan has passed its range. */
static void alarms_at(audit *a, const penlink_record *r)
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
            in->rec_in_win |= in_window(a, r->time_ms);
        in->seen_in_range |= inside;
        if (r->seq + 1 >= end && a->rc == PENLINK_OK)
            emit_alarm(a, in);
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

static void integrity(audit *a, const penlink_record *r)
{
    const penlink_record *p = &a->prev;
    penlink_finding fi;
    if (a->have_prev && r->seq > p->seq + 1 && !alarm_covers(a, p->seq + 1, r->seq - 1) &&
        in_window(a, r->time_ms)) {
        finding_init(a, &fi, PENLINK_FIND_MISSING, "integrity", 1);
        fi.seq = p->seq + 1;
        fi.time_ms = r->time_ms;
        fi.count = r->seq - p->seq - 1;
        snprintf(fi.detail, sizeof fi.detail,
                 "records %llu..%llu are not in the archive and no pull recorded a gap for them",
                 (unsigned long long)(p->seq + 1), (unsigned long long)(r->seq - 1));
        emit(a, &fi);
    }
    if (a->have_prev && r->time_ms < p->time_ms &&
        !(r->kind == PENLINK_REC_CLOCK_SET && r->clock_delta_ms < 0) &&
        !(p->kind == PENLINK_REC_CLOCK_SET && p->clock_delta_ms < 0) && in_window(a, r->time_ms)) {
        finding_init(a, &fi, PENLINK_FIND_CLOCK_BACKWARDS, "integrity", 0);
        fi.seq = r->seq;
        fi.time_ms = r->time_ms;
        fi.value = span_ms(p->time_ms, r->time_ms);
        snprintf(fi.detail, sizeof fi.detail,
                 "the pen's time went back %lld ms from record %llu to record %llu with no "
                 "clock_set to explain it",
                 (long long)fi.value, (unsigned long long)p->seq, (unsigned long long)r->seq);
        emit(a, &fi);
    }
    if (!in_window(a, r->time_ms))
        return;
    if (r->kind == PENLINK_REC_LOG_OVERFLOW) {
        finding_init(a, &fi, PENLINK_FIND_OVERFLOW, "integrity", 1);
        fi.seq = r->seq;
        fi.time_ms = r->time_ms;
        fi.count = r->dropped;
        snprintf(fi.detail, sizeof fi.detail,
                 "the pen's log was full and dropped %llu records before they were pulled",
                 (unsigned long long)r->dropped);
        emit(a, &fi);
    } else if (r->kind == PENLINK_REC_CLOCK_SET &&
               (r->clock_delta_ms > CLOCK_JUMP_MS || r->clock_delta_ms < -CLOCK_JUMP_MS)) {
        finding_init(a, &fi, PENLINK_FIND_CLOCK_JUMP, "integrity", 0);
        fi.seq = r->seq;
        fi.time_ms = r->time_ms;
        fi.value = r->clock_delta_ms;
        /* the magnitude in unsigned arithmetic: a pen may log a delta of INT64_MIN */
        uint64_t by =
            r->clock_delta_ms > 0 ? (uint64_t)r->clock_delta_ms : 0 - (uint64_t)r->clock_delta_ms;
        snprintf(fi.detail, sizeof fi.detail, "the clock was set %s by %llu s (over an hour)",
                 r->clock_delta_ms > 0 ? "forward" : "back", (unsigned long long)(by / 1000));
        emit(a, &fi);
    }
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
        finish_treatment(a, &a->prev, 0);
    resolve_first_revision(a, 0, 0);
    for (size_t i = 0; i < a->n_unknown && a->rc == PENLINK_OK; i++) {
        penlink_finding fi;
        finding_init(a, &fi, PENLINK_FIND_LIMITS_UNKNOWN, "cartridges", 0);
        fi.seq = a->unknown[i].first_seq;
        fi.time_ms = a->unknown[i].first_ms;
        fi.count = a->unknown[i].count;
        fi.config_revision = a->unknown[i].rev;
        snprintf(fi.detail, sizeof fi.detail,
                 "%llu treatments ran under configuration revision %u, whose values are not in "
                 "the archive: their limits were not checked",
                 (unsigned long long)fi.count, fi.config_revision);
        emit(a, &fi);
    }
    for (size_t i = a->alarm_lo; i < a->alarm_hi && a->rc == PENLINK_OK; i++)
        if (!a->alarms[i].done)
            emit_alarm(a, &a->alarms[i]);
    a->next_alarm = a->alarm_hi;
    penlink_period by = a->cb ? a->cb->usage_by : PENLINK_PERIOD_DAY;
    for (size_t i = 0; i < a->n_buckets && a->rc == PENLINK_OK; i++) {
        penlink_usage u;
        memset(&u, 0, sizeof u);
        u.serial = a->pens[a->pen];
        u.period_start_ms = a->buckets[i].start;
        period_label(by, a->cb && a->cb->local_time, u.period_start_ms, u.period, sizeof u.period);
        u.treatments = a->buckets[i].treatments;
        u.treatment_ms = a->buckets[i].ms;
        u.cartridges = a->buckets[i].cartridges;
        if (a->cb && a->cb->on_usage && a->cb->on_usage(a->cb->user, &u) != 0)
            stop(a, PENLINK_ERR_CANCELLED);
    }
    a->have_pen = 0;
}

/* Alarms of pens that sort before @p serial (NULL: all) and had no records. */
static void alarms_before(audit *a, const char *serial)
{
    while (a->next_alarm < a->n_alarms && a->rc == PENLINK_OK &&
           (!serial || strcmp(a->alarms[a->next_alarm].al.serial, serial) < 0))
        emit_alarm(a, &a->alarms[a->next_alarm++]);
}

static int begin_pen(audit *a, const char *serial)
{
    end_pen(a);
    if (pc_grow(&a->pens, &a->cap_pens, a->n_pens + 1, sizeof *a->pens) != 0)
        return -1;
    char *s = malloc(strlen(serial) + 1);
    if (!s)
        return -1;
    strcpy(s, serial);
    a->pens[a->n_pens] = s;
    a->pen = (uint32_t)a->n_pens++;
    a->have_pen = 1;
    a->have_prev = 0;
    a->cart_in = 0;
    a->cart_serial = 0;
    a->cart_uses = 0;
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

static int on_record(void *u, const char *serial, const penlink_record *r)
{
    audit *a = u;
    /* the scan passes one pointer for all of a pen's records, another for the next pen */
    if (!a->have_pen || serial != a->serial_seen) {
        a->serial_seen = serial;
        if (begin_pen(a, serial) != 0)
            stop(a, PENLINK_ERR_NO_MEM);
        if (a->rc != PENLINK_OK)
            return 1;
    }
    a->sum.records++;
    if (in_window(a, r->time_ms))
        a->sum.records_in_window++;
    alarms_at(a, r);
    integrity(a, r);
    treat *t = &a->tr;
    switch (r->kind) {
    case PENLINK_REC_TREATMENT_START:
        finish_treatment(a, r, 0);
        start_treatment(a, r);
        break;
    case PENLINK_REC_TREATMENT_END: finish_treatment(a, r, 1); break;
    case PENLINK_REC_POWER_ON:
    case PENLINK_REC_POWER_OFF: finish_treatment(a, r, 0); break;
    case PENLINK_REC_DEPTH_CHANGED:
        if (t->open) {
            if (r->time_ms > t->seg_ms) {
                int64_t seg = span_ms(r->time_ms, t->seg_ms);
                t->depth_ms += (double)t->cur_depth * (double)seg;
                t->weight_ms = add_ms(t->weight_ms, seg);
                t->seg_ms = r->time_ms;
            }
            t->cur_depth = r->depth_um;
            if (r->depth_um < t->t.depth_min_um)
                t->t.depth_min_um = r->depth_um;
            if (r->depth_um > t->t.depth_max_um)
                t->t.depth_max_um = r->depth_um;
            check_depth(t, &a->lim, r->depth_um);
        }
        break;
    case PENLINK_REC_SPEED_CHANGED:
        if (t->open) {
            if (r->speed_sps < t->t.speed_min_sps)
                t->t.speed_min_sps = r->speed_sps;
            if (r->speed_sps > t->t.speed_max_sps)
                t->t.speed_max_sps = r->speed_sps;
            t->cur_speed = r->speed_sps;
            check_speed(t, &a->lim, r->speed_sps);
        }
        break;
    case PENLINK_REC_CARTRIDGE_INSERTED:
        a->cart_in = 1;
        a->cart_serial = r->cartridge_serial;
        a->cart_uses = r->cartridge_uses;
        if (in_window(a, r->time_ms)) {
            bucket *b = bucket_at(a, r->time_ms);
            if (b)
                b->cartridges++;
        }
        break;
    case PENLINK_REC_CARTRIDGE_REMOVED: a->cart_in = 0; break;
    case PENLINK_REC_CARTRIDGE_REFUSED:
        if (in_window(a, r->time_ms)) {
            penlink_finding fi;
            finding_init(a, &fi, PENLINK_FIND_REFUSED, "cartridges", 0);
            fi.seq = r->seq;
            fi.time_ms = r->time_ms;
            fi.cartridge_serial = r->cartridge_serial;
            fi.cartridge_uses = r->cartridge_uses;
            snprintf(fi.detail, sizeof fi.detail,
                     "the pen refused cartridge %llu, already used (this would have been use "
                     "%u)",
                     (unsigned long long)r->cartridge_serial, r->cartridge_uses);
            emit(a, &fi);
        }
        break;
    case PENLINK_REC_SECURITY_EVENT:
        if (in_window(a, r->time_ms)) {
            penlink_finding fi;
            finding_init(a, &fi, PENLINK_FIND_CONFIG_REFUSED, "integrity", 1);
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
            emit(a, &fi);
        }
        break;
    case PENLINK_REC_CONFIG_CHANGED:
        resolve_first_revision(a, 1, r->config_revision);
        a->lim = lookup(a, r->config_revision);
        if (t->open) { /* the depth and speed now run under the new limits */
            check_depth(t, &a->lim, t->cur_depth);
            check_speed(t, &a->lim, t->cur_speed);
        }
        break;
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
        char *s = malloc(strlen(serial) + 1);
        if (!s || pc_grow(&a->pens, &a->cap_pens, a->n_pens + 1, sizeof *a->pens) != 0) {
            free(s);
            stop(a, PENLINK_ERR_NO_MEM);
            return 1;
        }
        strcpy(s, serial);
        a->pens[a->n_pens] = s;
        a->pen = (uint32_t)a->n_pens++;
        a->have_pen = 1;
        a->cart_in = 0;
        a->cart_serial = 0;
        a->cart_uses = 0;
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
        if ((a->cart_in || named) && cart_add(a, cs, r->seq, r->time_ms, uses, 0) != 0)
            stop(a, PENLINK_ERR_NO_MEM);
    }
    return a->rc != PENLINK_OK;
}

static int on_selected(void *u, int64_t device, const char *serial, const uint8_t *key,
                       uint64_t first_from)
{
    audit *a = u;
    if (pc_grow(&a->sel, &a->cap_sel, a->n_sel + 1, sizeof *a->sel) != 0) {
        stop(a, PENLINK_ERR_NO_MEM);
        return 1;
    }
    selected *p = &a->sel[a->n_sel];
    memset(p, 0, sizeof *p);
    p->serial = malloc(strlen(serial) + 1);
    if (!p->serial) {
        stop(a, PENLINK_ERR_NO_MEM);
        return 1;
    }
    strcpy(p->serial, serial);
    p->device = device;
    p->has_key = key != NULL;
    if (key)
        memcpy(p->key, key, PL_KEY_BYTES);
    p->first_from = first_from;
    a->n_sel++;
    return 0;
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
        stop(a, st);
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
    finding_init(a, &fi, PENLINK_FIND_MISSING, "integrity", 1);
    fi.serial = p->serial;
    fi.seq = p->next;
    fi.count = pulled - p->next;
    snprintf(fi.detail, sizeof fi.detail,
             "records %llu..%llu are not in the archive, though its pulls recorded them as "
             "stored, and no pull recorded a gap for them (removed from the archive)",
             (unsigned long long)p->next, (unsigned long long)(pulled - 1));
    emit(a, &fi);
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
static void report_verifications(audit *a)
{
    for (size_t i = 0; i < a->n_sel && a->rc == PENLINK_OK; i++) {
        const selected *p = &a->sel[i];
        report_config_conflicts(a, p->serial);
        report_missing_tail(a, p);
        if (a->rc != PENLINK_OK)
            break;
        const penlink_verify_report r = p->vr;
        penlink_verification v;
        verification_of(p, &r, &v);
        int broken = r.state == PENLINK_VERIFY_BROKEN;
        if (broken)
            a->sum.logs_broken++;
        else if (r.state == PENLINK_VERIFY_UNSIGNED)
            a->sum.logs_unsigned++;
        else
            a->sum.logs_verified++;
        if (a->cb && a->cb->on_verification && a->cb->on_verification(a->cb->user, &v) != 0) {
            stop(a, PENLINK_ERR_CANCELLED);
            break;
        }
        if (!broken)
            continue;
        penlink_finding fi;
        finding_init(a, &fi, PENLINK_FIND_LOG_BROKEN, "integrity", 1);
        fi.serial = p->serial;
        fi.seq = r.where_seq;
        snprintf(fi.detail, sizeof fi.detail,
                 "this pen's archived log does not verify (checked by this audit), first at seq "
                 "%llu: %.200s",
                 (unsigned long long)r.where_seq, r.detail);
        emit(a, &fi);
    }
}

/* Nothing examined is a finding, never a pass: the archive, the pen or the window is empty. */
static void report_nothing(audit *a)
{
    const penlink_archive_filter *f = a->f;
    int window = f && (f->has_since || f->has_until);
    const char *pen = f && f->serial ? f->serial : NULL;
    penlink_finding fi;
    finding_init(a, &fi, PENLINK_FIND_NO_RECORDS, "integrity", 1);
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
    emit(a, &fi);
}

/* Annotations are written by people: few. Each goes after those of its finding id. */
static int on_note(void *u, const penlink_annotation *n)
{
    audit *a = u;
    if (pc_grow(&a->notes, &a->cap_notes, a->n_notes + 1, sizeof *a->notes) != 0) {
        stop(a, PENLINK_ERR_NO_MEM);
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

static int same_alarm(const penlink_alarm *x, const penlink_alarm *y)
{
    return x->seq == y->seq && x->count == y->count && strcmp(x->serial, y->serial) == 0 &&
           strcmp(x->kind, y->kind) == 0 && strcmp(x->detail, y->detail) == 0;
}

/* Alarms arrive by pen, then seq: a repeat of an alarm is among the last ones of its seq. */
static int on_alarm(void *u, const penlink_alarm *al)
{
    audit *a = u;
    int raised_in = in_window(a, al->at_ms);
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
        stop(a, PENLINK_ERR_NO_MEM);
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
typedef struct pen_ref {
    int64_t device;
    char *serial;
    int has_key;
    uint8_t key[PL_KEY_BYTES];
    uint64_t first_from;
} pen_ref;

typedef struct pen_list {
    pen_ref *pens;
    size_t n, cap;
} pen_list;

static int on_any_pen(void *u, int64_t device, const char *serial, const uint8_t *key,
                      uint64_t first_from)
{
    pen_list *l = u;
    if (pc_grow(&l->pens, &l->cap, l->n + 1, sizeof *l->pens) != 0)
        return 1;
    char *s = malloc(strlen(serial) + 1);
    if (!s)
        return 1;
    strcpy(s, serial);
    pen_ref *p = &l->pens[l->n++];
    memset(p, 0, sizeof *p);
    p->device = device;
    p->serial = s;
    p->has_key = key != NULL;
    if (key)
        memcpy(p->key, key, PL_KEY_BYTES);
    p->first_from = first_from;
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
    finding_init(a, &fi, PENLINK_FIND_LOG_BROKEN, "integrity", 1);
    fi.serial = serial;
    fi.seq = r->where_seq;
    snprintf(fi.detail, sizeof fi.detail,
             "pen %.32s, read for reuses of %.32s's cartridges: its log does not verify, first "
             "at seq %llu: %.96s; none of its records is taken as evidence",
             serial, a->sel[0].serial, (unsigned long long)r->where_seq, r->detail);
    emit(a, &fi);
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
    int rc = each_pen(a->ar, NULL, on_any_pen, &l);
    if (rc == PENLINK_ERR_CANCELLED)
        rc = PENLINK_ERR_NO_MEM;
    if (rc == PENLINK_OK && archive_walker_new(&w) != PENLINK_OK)
        rc = PENLINK_ERR_NO_MEM;
    for (size_t i = 0; i < l.n && rc == PENLINK_OK && a->rc == PENLINK_OK; i++) {
        if (strcmp(l.pens[i].serial, a->sel[0].serial) == 0)
            continue;
        const pen_ref *p = &l.pens[i];
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
        stop(a, rc);
    archive_walker_free(w);
    for (size_t i = 0; i < l.n; i++)
        free(l.pens[i].serial);
    free(l.pens);
}

int penlink_audit_run(penlink_archive *ar, const penlink_archive_filter *f,
                      const penlink_audit_cb *cb, penlink_audit_summary *sum)
{
    if (!ar || !PL_SIZED_OK(f, PL_ARCHIVE_FILTER_SIZE_V1) || !PL_SIZED_OK(cb, PL_AUDIT_CB_SIZE_V1))
        return PENLINK_ERR_INVALID_ARG;
    audit a;
    memset(&a, 0, sizeof a);
    a.ar = ar;
    a.f = f;
    a.cb = cb;
    if (sum) {
        memset(sum, 0, sizeof *sum);
        sum->verdict = PENLINK_VERDICT_NOT_RUN; /* until it ran: an error never reads as a pass */
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
    int rc = each_pen(ar, pens.serial, on_selected, &a);
    a.sum.pens = a.n_sel;
    if (rc == PENLINK_OK)
        rc = penlink_archive_annotations(ar, on_note, &a);
    if (rc == PENLINK_OK)
        rc = penlink_archive_alarms(ar, &pens, on_alarm, &a);
    if (rc == PENLINK_OK)
        rc = penlink_archive_config_history(ar, pens.serial, on_hist, &a);
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
        report_reuses(&a);
        report_verifications(&a);
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
        *sum = a.sum;
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
