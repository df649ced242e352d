/* The progress of long archive work (work_progress.h). */
#include "work_progress.h"

#include <stdio.h>

#define WORK_UNIT_RECORDS "records"

int pl_work_wanted(const penlink_ctx *ctx)
{
    return ctx && ctx->on_work;
}

void pl_work_begin(pl_work *w, penlink_ctx *ctx, const char *work, const char *serial,
                   uint64_t total)
{
    memset(w, 0, sizeof *w);
    if (!pl_work_wanted(ctx))
        return;
    w->ctx = ctx;
    w->p.work = work;
    w->p.serial = serial;
    w->p.unit = WORK_UNIT_RECORDS;
    w->p.total = total;
    pl_work_report(w);
}

void pl_work_report(pl_work *w)
{
    if (!w->ctx)
        return;
    if (w->p.total && w->p.total < w->p.done) /* the estimate fell short */
        w->p.total = w->p.done;
    w->next_at = w->p.done + PENLINK_WORK_PROGRESS_STEP;
    w->ctx->on_work(w->ctx->on_work_user, &w->p);
}

void pl_work_end(pl_work *w)
{
    if (!w->ctx)
        return;
    w->p.finished = 1;
    w->p.total = w->p.done;
    pl_work_report(w);
    w->ctx = NULL;
}

void pl_scan_work_init(pl_scan_work *s, penlink_ctx *ctx, penlink_archive_record_cb cb, void *user)
{
    memset(s, 0, sizeof *s);
    s->ctx = ctx;
    s->cb = cb;
    s->user = user;
}

int pl_scan_work_record(void *u, const char *serial, const penlink_record *rec)
{
    pl_scan_work *s = u;
    if (serial != s->pen) { /* a new pen (one pointer per pen) */
        pl_work_end(&s->w);
        s->pen = serial;
        snprintf(s->serial, sizeof s->serial, "%s", serial ? serial : "");
        pl_work_begin(&s->w, s->ctx, "export", s->serial, 0);
    }
    pl_work_at(&s->w, s->w.p.done + 1);
    return s->cb(s->user, serial, rec);
}

void pl_scan_work_end(pl_scan_work *s)
{
    pl_work_end(&s->w);
}
