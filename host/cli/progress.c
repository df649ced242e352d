/*
 * Progress on stderr (stdout keeps the command's result): a pull's, and
 * the archive's long work (push, verify, audit, export) reported by the
 * library (penlink_ctx_set_progress_cb), each drawn with the same bar, mode
 * and JSON event; the archive's work is at the end of this file.
 *
 * A pull's progress as a technician sees it: records and bytes against the
 * totals the pen announced, the rate and the time left.
 *
 *  - a terminal: one line redrawn PROG_TICK_MS apart by a thread of its own,
 *    so that it moves even while the pen sends nothing (then it says for how
 *    long the pen has been silent);
 *  - not a terminal (a log): a line when the pull starts, one every
 *    PROG_LINE_MS, one at the end;
 *  - --json: JSON events, one object per line ("event":"progress"), at the
 *    start, PROG_JSON_MS apart, and at the end ("done":true);
 *  - --quiet: nothing.
 *
 * The library's notices (a reply awaited in vain and asked for again) go
 * through here too, so that they are printed between redraws, never inside
 * a line. The thread only reads what the pull's callback stored under the
 * lock; it never calls the library.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

#define PROG_TICK_MS 250   /* a terminal's line is redrawn this often (4 times a second) */
#define PROG_JSON_MS 500   /* --json: a progress event this often */
#define PROG_LINE_MS 5000  /* a log: a line this often */
#define PROG_FRESH_MS 500  /* no record for this long: no time left is shown (the pen waits) */
#define PROG_STALL_MS 1000 /* no record for this long: say for how long the pen is silent */
#define PROG_BAR 16        /* characters of the bar */

enum { PROG_TTY = 1, PROG_LINES, PROG_JSON };

/* How progress is shown on this run's stderr: PROG_*, 0 with --quiet. */
static int progress_mode(const struct cli *c)
{
    if (c->quiet)
        return 0;
    return c->json ? PROG_JSON : isatty(STDERR_FILENO) ? PROG_TTY : PROG_LINES;
}

/* The bar: @p done of @p total as PROG_BAR characters ('#' done, '.' not). */
static void bar_text(char bar[PROG_BAR + 1], uint64_t done, uint64_t total)
{
    int fill = total ? (int)((double)PROG_BAR * (double)done / (double)total) : 0;
    for (int i = 0; i < PROG_BAR; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[PROG_BAR] = '\0';
}

struct cli_progress {
    struct cli *c;
    int mode;
    char serial[33]; /* as the pen sent it, for JSON */
    char shown[160]; /* escaped once (cli_safe's buffers are not the thread's) */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int thread_on, stop;
    penlink_progress p; /* the library's last word */
    int have;
    int64_t start_ms, last_data_ms, last_emit_ms;
    int on_screen; /* a terminal line is drawn and not yet ended */
    int ended;     /* 0 running, 1 done, 2 stopped */
    uint64_t kept; /* at the end: what the caller kept of the records received */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "640 B", "97.7 kB", "3.9 MB" */
static void size_text(uint64_t bytes, char *buf, size_t cap)
{
    if (bytes < 1000)
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else if (bytes < 1000000)
        snprintf(buf, cap, "%.1f kB", (double)bytes / 1e3);
    else
        snprintf(buf, cap, "%.1f MB", (double)bytes / 1e6);
}

/* "<1 s", "42 s", "3 min 20 s", "2 h 5 min". */
static void duration(double s, char *buf, size_t cap)
{
    long t = (long)(s + 0.5);
    if (s < 1)
        snprintf(buf, cap, "<1 s");
    else if (t < 60)
        snprintf(buf, cap, "%ld s", t);
    else if (t < 3600)
        snprintf(buf, cap, "%ld min %ld s", t / 60, t % 60);
    else
        snprintf(buf, cap, "%ld h %ld min", t / 3600, t % 3600 / 60);
}

/* What the numbers say now; under the lock. records counts what the pen
 * sent (it never goes back); what the caller kept is said at the end. The
 * rate is over the time data came, so a silent pen does not slow it, and
 * there is no time left while the pen is silent (waiting). */
struct view {
    uint64_t records, total, bytes, bytes_total;
    double rate, left_s, silent_s;
    int waiting, stalled;
};

static struct view look(const struct cli_progress *g, int64_t now)
{
    struct view v;
    memset(&v, 0, sizeof v);
    v.records = g->p.records;
    v.total = g->p.records_total > v.records ? g->p.records_total : v.records;
    v.bytes = g->p.bytes;
    v.bytes_total = g->p.bytes_total > v.bytes ? g->p.bytes_total : v.bytes;
    double t = (double)(g->last_data_ms - g->start_ms) / 1000.0;
    v.rate = t > 0 ? (double)v.records / t : 0;
    v.silent_s = (double)(now - g->last_data_ms) / 1000.0;
    v.waiting = !g->ended && now - g->last_data_ms >= PROG_FRESH_MS && v.records < v.total;
    v.stalled = v.waiting && now - g->last_data_ms >= PROG_STALL_MS;
    v.left_s = v.rate > 0 && !v.waiting ? (double)(v.total - v.records) / v.rate : -1;
    return v;
}

static void draw_tty(struct cli_progress *g, int64_t now)
{
    struct view v = look(g, now);
    char bar[PROG_BAR + 1], tail[96], left[32], got[24], all[24];
    bar_text(bar, v.records, v.total);
    if (g->ended == 1 && g->kept == v.records)
        snprintf(tail, sizeof tail, "done, %.0f rec/s", v.rate);
    else if (g->ended == 1)
        snprintf(tail, sizeof tail, "done, %.0f rec/s, %llu new kept", v.rate,
                 (unsigned long long)g->kept);
    else if (g->ended)
        snprintf(tail, sizeof tail, "stopped, %llu kept", (unsigned long long)g->kept);
    else if (v.stalled)
        snprintf(tail, sizeof tail, "no data from the pen for %.1f s", v.silent_s);
    else if (v.waiting)
        snprintf(tail, sizeof tail, "waiting for the pen");
    else if (v.left_s >= 0 && v.records < v.total) {
        duration(v.left_s, left, sizeof left);
        snprintf(tail, sizeof tail, "%.0f rec/s, %s left", v.rate, left);
    } else if (v.rate > 0)
        snprintf(tail, sizeof tail, "%.0f rec/s", v.rate);
    else
        tail[0] = '\0'; /* no rate before the second chunk */
    size_text(v.bytes, got, sizeof got);
    size_text(v.bytes_total, all, sizeof all);
    fprintf(stderr, "\r[%s] %llu/%llu records %s/%s %s\033[K", bar, (unsigned long long)v.records,
            (unsigned long long)v.total, got, all, tail);
    fflush(stderr);
    g->on_screen = 1;
}

/* A log's line: @p kind LINE_START (what the pen announced), LINE_NOW, or
 * LINE_DONE / LINE_STOPPED (the end: what was kept). */
enum { LINE_START, LINE_NOW, LINE_DONE, LINE_STOPPED };

static void line(struct cli_progress *g, int64_t now, int kind)
{
    struct view v = look(g, now);
    char left[32] = "", got[24], all[24];
    size_text(v.bytes, got, sizeof got);
    size_text(v.bytes_total, all, sizeof all);
    if (kind == LINE_START)
        fprintf(stderr, "%s: pull %s: the pen announces %llu new records (about %s)\n", g->c->prog,
                g->shown, (unsigned long long)v.total, all);
    else if (kind != LINE_NOW && g->kept == v.records)
        fprintf(stderr, "%s: pull %s: %s: %llu of %llu records kept, %s received\n", g->c->prog,
                g->shown, kind == LINE_DONE ? "done" : "stopped", (unsigned long long)v.records,
                (unsigned long long)v.total, got);
    else if (kind != LINE_NOW)
        fprintf(stderr, "%s: pull %s: %s: received %llu of %llu records (%s), kept %llu%s\n",
                g->c->prog, g->shown, kind == LINE_DONE ? "done" : "stopped",
                (unsigned long long)v.records, (unsigned long long)v.total, got,
                (unsigned long long)g->kept, kind == LINE_DONE ? " new" : "");
    else {
        if (v.left_s >= 0 && v.records < v.total)
            duration(v.left_s, left, sizeof left);
        fprintf(stderr, "%s: pull %s: %llu of %llu records, %s of %s", g->c->prog, g->shown,
                (unsigned long long)v.records, (unsigned long long)v.total, got, all);
        if (v.stalled)
            fprintf(stderr, ", no data from the pen for %.1f s\n", v.silent_s);
        else if (v.waiting)
            fprintf(stderr, ", waiting for the pen\n");
        else if (left[0])
            fprintf(stderr, ", %.0f records/s, about %s left\n", v.rate, left);
        else
            fprintf(stderr, ", %.0f records/s\n", v.rate);
    }
    fflush(stderr);
}

/* A rate or a time in seconds as an event gives it: 3 decimals (a
 * millisecond), printed as such (PROGRESS_JSON_FLAGS), not
 * 0.0080000000000000002 */
#define PROGRESS_JSON_FLAGS (CLI_JSON_FLAGS | JSON_REAL_PRECISION(15))
static double decimals3(double x)
{
    return x >= 0 ? (double)(int64_t)(x * 1000.0 + 0.5) / 1000.0 : x; /* never below 0 */
}

/* An event on stderr: cli_json_line's line, with 15 significant digits (a
 * double's 17 would show its binary rounding, 0.0080000000000000002). */
static void progress_line(json_t *o)
{
    if (o)
        json_object_set_new(o, "schema", json_integer(CLI_JSON_SCHEMA));
    char *s = o ? json_dumps(o, PROGRESS_JSON_FLAGS) : NULL;
    if (s)
        fprintf(stderr, "%s\n", s);
    free(s);
    json_decref(o);
    fflush(stderr);
}

static void event(struct cli_progress *g, int64_t now, int done, int ok)
{
    struct view v = look(g, now);
    json_t *o =
        json_pack("{s:s, s:s, s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}", "event",
                  "progress", "work", "pull", "serial", cli_json_str(g->serial), "unit", "records",
                  "count", (json_int_t)v.records, "total", (json_int_t)v.total, "records",
                  (json_int_t)v.records, "records_total", (json_int_t)v.total, "bytes",
                  (json_int_t)v.bytes, "bytes_total", (json_int_t)v.bytes_total, "rate",
                  decimals3(v.rate), "elapsed_s", decimals3((double)(now - g->start_ms) / 1000.0));
    if (o && v.left_s >= 0 && !done)
        json_object_set_new(o, "left_s", json_real(decimals3(v.left_s)));
    if (o && v.waiting && !done)
        json_object_set_new(o, "silent_s", json_real(decimals3(v.silent_s)));
    if (o)
        json_object_set_new(o, "done", json_boolean(done));
    if (o && done)
        json_object_set_new(o, "kept", json_integer((json_int_t)g->kept));
    if (o && done)
        json_object_set_new(o, "ok", json_boolean(ok));
    progress_line(o);
}

/* The redraws and periodic events: the thread's loop. */
static void *ticker(void *arg)
{
    struct cli_progress *g = arg;
    pthread_mutex_lock(&g->lock);
    while (!g->stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += PROG_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->wake, &g->lock, &until);
        if (g->stop || !g->have)
            continue;
        int64_t now = mono_ms();
        if (g->mode == PROG_TTY) {
            draw_tty(g, now);
        } else if (g->mode == PROG_JSON && now - g->last_emit_ms >= PROG_JSON_MS) {
            event(g, now, 0, 1);
            g->last_emit_ms = now;
        } else if (g->mode == PROG_LINES && now - g->last_emit_ms >= PROG_LINE_MS) {
            line(g, now, LINE_NOW);
            g->last_emit_ms = now;
        }
    }
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

struct cli_progress *cli_progress_begin(struct cli *c, const char *serial)
{
    int mode = progress_mode(c);
    if (!mode)
        return NULL;
    struct cli_progress *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->c = c;
    g->mode = mode;
    snprintf(g->serial, sizeof g->serial, "%s", serial ? serial : "");
    cli_escape(g->shown, sizeof g->shown, g->serial);
    g->start_ms = g->last_data_ms = g->last_emit_ms = mono_ms();
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->wake, NULL);
    g->thread_on = pthread_create(&g->thread, NULL, ticker, g) == 0;
    c->progress = g;
    return g;
}

void cli_progress_update(struct cli_progress *g, const penlink_progress *pr)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    int64_t now = mono_ms();
    int first = !g->have;
    if (first || pr->records != g->p.records)
        g->last_data_ms = now;
    g->p = *pr;
    g->have = 1;
    if (first) { /* the totals the pen announced: said at once */
        g->start_ms = now;
        if (g->mode == PROG_JSON)
            event(g, now, 0, 1);
        else if (g->mode == PROG_LINES)
            line(g, now, LINE_START);
        else
            draw_tty(g, now);
        g->last_emit_ms = now;
    }
    pthread_mutex_unlock(&g->lock);
}

void cli_progress_end(struct cli_progress *g, uint64_t records, int ok)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->stop = 1;
    pthread_cond_signal(&g->wake);
    pthread_mutex_unlock(&g->lock);
    if (g->thread_on)
        pthread_join(g->thread, NULL);
    int64_t now = mono_ms();
    /* the last word: what came (the count never goes back) and what was kept */
    if (g->have) {
        g->kept = records;
        if (g->p.records < records) /* records the callback was not told of */
            g->p.records = records;
        if (ok) /* the total was an estimate; what came is the total */
            g->p.bytes_total = g->p.bytes;
        g->ended = ok ? 1 : 2;
        if (g->mode == PROG_TTY) {
            draw_tty(g, now);
            fputc('\n', stderr);
        } else if (g->mode == PROG_JSON) {
            event(g, now, 1, ok);
        } else {
            line(g, now, ok ? LINE_DONE : LINE_STOPPED);
        }
    } else if (g->on_screen) {
        fputc('\n', stderr);
    }
    fflush(stderr);
    pthread_cond_destroy(&g->wake);
    pthread_mutex_destroy(&g->lock);
    if (g->c->progress == g)
        g->c->progress = NULL;
    free(g);
}

/* The library's notices: on their own line, between redraws. */
void cli_notice(void *user, const char *text)
{
    struct cli *c = user;
    struct cli_progress *g = c->progress;
    if (c->quiet)
        return;
    if (g)
        pthread_mutex_lock(&g->lock);
    if (c->json) {
        cli_json_line(stderr,
                      json_pack("{s:s, s:o}", "event", "notice", "text", cli_json_str(text)));
    } else {
        if (g && g->on_screen)
            fputs("\r\033[K", stderr);
        fprintf(stderr, "%s: %s\n", c->prog, cli_safe(text));
        if (g && g->mode == PROG_TTY && g->have)
            draw_tty(g, mono_ms());
    }
    fflush(stderr);
    if (g)
        pthread_mutex_unlock(&g->lock);
}

/*
 * The archive's long work (push, verify, audit, export), pen by pen, as the
 * library reports it: on a terminal a line per pen redrawn at most
 * PROG_TICK_MS apart and erased when the pen is done (the command's own
 * output follows on a clean line); with --json an event when a pen starts,
 * at most PROG_JSON_MS apart, and when it is done ("done":true); in a log
 * (stderr not a terminal) and with --quiet nothing. A command whose results
 * go to stdout while the work goes on (the audit, export) draws no line
 * when stdout is a terminal too: results and line would mix. No thread: the library
 * calls often enough, from the thread doing the work.
 */
struct cli_work {
    struct cli *c;
    int mode;
    const char *as;                   /* the work's name for people and events, or NULL */
    char serial[PENLINK_SERIAL_SIZE]; /* the pen being worked on */
    char shown[160];                  /* ... escaped for the terminal */
    int64_t start_ms, last_ms;        /* the pen's start; the last line or event */
    int on_screen;                    /* a terminal line is drawn and not yet erased */
};

static void work_draw(struct cli_work *w, const penlink_work_progress *p, int64_t now)
{
    char bar[PROG_BAR + 1], left[32] = "";
    double t = (double)(now - w->start_ms) / 1000.0;
    double rate = t > 0 ? (double)p->done / t : 0;
    bar_text(bar, p->done, p->total);
    if (rate > 0 && p->total > p->done)
        duration((double)(p->total - p->done) / rate, left, sizeof left);
    if (p->total)
        fprintf(stderr, "\r[%s] %s %s: %llu/%llu %s", bar, w->as ? w->as : p->work, w->shown,
                (unsigned long long)p->done, (unsigned long long)p->total, p->unit);
    else
        fprintf(stderr, "\r[%s] %s %s: %llu %s", bar, w->as ? w->as : p->work, w->shown,
                (unsigned long long)p->done, p->unit);
    if (left[0])
        fprintf(stderr, ", %.0f/s, %s left", rate, left);
    fputs("\033[K", stderr);
    fflush(stderr);
    w->on_screen = 1;
}

static void work_event(struct cli_work *w, const penlink_work_progress *p, int64_t now)
{
    double t = (double)(now - w->start_ms) / 1000.0;
    json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:f, s:f}", "event", "progress", "work",
                          w->as ? w->as : p->work, "unit", p->unit, "count", (json_int_t)p->done,
                          "total", (json_int_t)p->total, "rate",
                          decimals3(t > 0 ? (double)p->done / t : 0.0), "elapsed_s", decimals3(t));
    if (o && p->serial)
        json_object_set_new(o, "serial", cli_json_str(p->serial));
    if (o)
        json_object_set_new(o, "done", json_boolean(p->finished));
    progress_line(o);
}

static void work_progress(void *user, const penlink_work_progress *p)
{
    struct cli_work *w = user;
    int64_t now = mono_ms();
    int first = p->done == 0 && !p->finished;
    if (first || strcmp(w->serial, p->serial ? p->serial : "") != 0) { /* a pen starts */
        snprintf(w->serial, sizeof w->serial, "%s", p->serial ? p->serial : "");
        cli_escape(w->shown, sizeof w->shown, w->serial);
        w->start_ms = now;
        first = 1;
    }
    if (w->mode == PROG_JSON) {
        if (first || p->finished || now - w->last_ms >= PROG_JSON_MS) {
            work_event(w, p, now);
            w->last_ms = now;
        }
    } else if (p->finished) {
        if (w->on_screen)
            fputs("\r\033[K", stderr);
        fflush(stderr);
        w->on_screen = 0;
    } else if (first || now - w->last_ms >= PROG_TICK_MS) {
        work_draw(w, p, now);
        w->last_ms = now;
    }
}

struct cli_work *cli_work_begin(struct cli *c, const char *as, int streams)
{
    int mode = progress_mode(c);
    if (mode == PROG_TTY && streams && isatty(STDOUT_FILENO))
        return NULL; /* the results on the same terminal as they come: no line between them */
    if (mode != PROG_TTY && mode != PROG_JSON)
        return NULL;
    struct cli_work *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->c = c;
    w->mode = mode;
    w->as = as;
    if (penlink_ctx_set_progress_cb(c->ctx, work_progress, w) != PENLINK_OK) {
        free(w);
        return NULL;
    }
    return w;
}

void cli_work_end(struct cli_work *w)
{
    if (!w)
        return;
    penlink_ctx_set_progress_cb(w->c->ctx, NULL, NULL);
    if (w->on_screen)
        fputs("\r\033[K", stderr);
    fflush(stderr);
    free(w);
}
