/*
 * The audit's private header, shared by its files: audit.c (the run: the
 * pens read in turn, each record handed to the checks, the findings
 * emitted), audit_pens.c (the pen a serial names), audit_carts.c
 * (cartridges and their reuse), audit_limits.c (configuration limits),
 * audit_usage.c (treatments, and usage per calendar period) and
 * audit_integrity.c (alarms, records missing, the clock, the logs
 * verified).
 */
#ifndef PENLINK_AUDIT_INTERNAL_H
#define PENLINK_AUDIT_INTERNAL_H

#include <stdint.h>

#include "archive.h"
#include "grow.h"
#include "pl/auth.h"

/* later - earlier, for later >= earlier, without overflow (a hostile clock may
 * span more than int64_t holds): at most INT64_MAX. */
static inline int64_t audit_span_ms(int64_t later, int64_t earlier)
{
    uint64_t d = (uint64_t)later - (uint64_t)earlier;
    return d > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)d;
}

/* a + b for b >= 0, at most INT64_MAX. */
static inline int64_t audit_add_ms(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b;
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

/* audit.c */
int audit_in_window(const audit *a, int64_t ms);
void audit_stop(audit *a, int rc);
void audit_finding_init(audit *a, penlink_finding *fi, uint32_t kind, const char *report,
                        int compliance);
void audit_emit(audit *a, penlink_finding *fi);

/* audit_pens.c */
int audit_each_pen(penlink_archive *ar, const char *serial,
                   int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                             uint64_t first_from),
                   void *user);

/* audit_carts.c */
int audit_cart_add(audit *a, uint64_t serial, uint64_t seq, int64_t ms, uint32_t uses, int win);
void audit_report_reuses(audit *a);

/* audit_limits.c */
int audit_on_hist(void *u, const penlink_config_entry *e);
limits audit_lookup(const audit *a, uint32_t rev);
void audit_report_config_conflicts(audit *a, const char *serial);
void audit_check_depth(treat *t, const limits *l, uint32_t depth);
void audit_check_speed(treat *t, const limits *l, uint32_t speed);
void audit_check_duration(treat *t, const limits *l);
void audit_report_treatment(audit *a, const treat *t);
void audit_resolve_first_revision(audit *a, int have_rev, uint32_t rev);

/* audit_usage.c */
void audit_period_label(penlink_period by, int local, int64_t start, char *buf, size_t cap);
bucket *audit_bucket_at(audit *a, int64_t ms);
void audit_finish_treatment(audit *a, const penlink_record *r, int ended);
void audit_start_treatment(audit *a, const penlink_record *r);
void audit_depth_changed(audit *a, const penlink_record *r);
void audit_speed_changed(audit *a, const penlink_record *r);

/* audit_integrity.c */
void audit_emit_alarm(audit *a, incident *in);
void audit_alarms_at(audit *a, const penlink_record *r);
void audit_integrity(audit *a, const penlink_record *r);
void audit_report_verifications(audit *a);
int audit_on_alarm(void *u, const penlink_alarm *al);

#endif
