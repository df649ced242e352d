/*
 * The progress of long archive work (push, verify, audit, export) as the
 * library reports it to penlink_ctx_set_progress_cb()'s callback: one
 * pl_work per pen, begun, moved on, ended. Cheap when nobody listens (one
 * test per step) and when someone does (a call every
 * PENLINK_WORK_PROGRESS_STEP units at most).
 */
#ifndef PENLINK_WORK_PROGRESS_H
#define PENLINK_WORK_PROGRESS_H

#include "internal.h"

typedef struct pl_work {
    penlink_ctx *ctx; /* NULL: nobody listens (or not begun) */
    penlink_work_progress p;
    uint64_t next_at; /* the next call once done reaches this */
} pl_work;

/* Starts @p work on pen @p serial (NULL: not per pen), @p total units
 * expected (0 unknown): the first call, done 0. Nothing when @p ctx has no
 * progress callback. */
void pl_work_begin(pl_work *w, penlink_ctx *ctx, const char *work, const char *serial,
                   uint64_t total);
/* 1 when @p ctx has a progress callback (worth computing a total for). */
int pl_work_wanted(const penlink_ctx *ctx);
/* The call itself (pl_work_at's rare branch). */
void pl_work_report(pl_work *w);
/* Done so far: @p done units (never fewer than before). */
static inline void pl_work_at(pl_work *w, uint64_t done)
{
    if (w->ctx && done > w->p.done) {
        w->p.done = done;
        if (done >= w->next_at)
            pl_work_report(w);
    }
}
/* The pen's last call: done final, total = done. Nothing when not begun. */
void pl_work_end(pl_work *w);

/* penlink_archive_scan's progress: each record passes through
 * pl_scan_work_record on its way to the caller's callback, pen by pen. */
typedef struct pl_scan_work {
    pl_work w;
    penlink_ctx *ctx;
    const char *pen;                  /* the scan's pointer for the pen being read */
    char serial[PENLINK_SERIAL_SIZE]; /* its serial, kept for the pen's last call */
    penlink_archive_record_cb cb;
    void *user;
} pl_scan_work;
void pl_scan_work_init(pl_scan_work *s, penlink_ctx *ctx, penlink_archive_record_cb cb, void *user);
int pl_scan_work_record(void *u, const char *serial, const penlink_record *rec);
void pl_scan_work_end(pl_scan_work *s);

#endif
