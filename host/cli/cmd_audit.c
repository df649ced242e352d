/*
 * penlink audit: the clinic auditor's report over the archive (no pen
 * needed): treatments, cartridges (reuse, refusals, limits), integrity and
 * usage. Also the helpers penlink export shares: the pen and time filter,
 * and a treatment as CSV or JSON.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cli_time.h"

static const char usage[] =
    "Usage: penlink [--archive PATH] audit [--report WHICH] [--by PERIOD]\n"
    "                [--since DATE] [--until DATE] [--tz ZONE] [--pen SERIAL]\n"
    "                [--format FMT] [-o FILE] [--operator NAME] [-h]\n"
    "       penlink [--archive PATH] audit --check-report FILE\n"
    "       penlink [--archive PATH] audit annotate FINDING --text TEXT\n"
    "\n"
    "Audit the archive (no pen needed): prove that every treatment used a fresh,\n"
    "single-use cartridge within the configured limits, that no record is missing,\n"
    "and show the usage per pen and period. See docs/audit-guide.md.\n"
    "\n"
    "Options:\n"
    "  -r, --report WHICH  treatments, cartridges, integrity, usage, or all (default)\n"
    "  -b, --by PERIOD     usage per day (default), week (ISO 8601, from Monday) or\n"
    "                      month, in the time zone of --tz\n"
    "      --since DATE    from DATE on (pen time): YYYY-MM-DD or\n"
    "                      YYYY-MM-DDTHH:MM[:SS[.fff]], local time of --tz unless\n"
    "                      a UTC offset follows (Z, +01:00, -0500)\n"
    "      --until DATE    up to DATE: a bare date includes that whole day, a time\n"
    "                      is exclusive; it must come after --since\n"
    "      --tz ZONE       the time zone of every date read and shown (a tz\n"
    "                      database name: Europe/Berlin, UTC); default: the local\n"
    "                      zone (TZ). The output names it; JSON and CSV times\n"
    "                      carry their UTC offset. POSIX rules (UTC+5: 5 hours\n"
    "                      behind UTC) are refused; a fixed offset is Etc/GMT-5\n"
    "                      (UTC+05:00: the Etc names keep POSIX's sign)\n"
    "  -p, --pen SERIAL    one pen; the global --device usb:SERIAL (or a bare\n"
    "                      SERIAL) selects it too, and so does PENLINK_DEVICE\n"
    "                      (--device's default) when it names a serial; other\n"
    "                      --device forms are refused (in PENLINK_DEVICE: ignored).\n"
    "                      A serial the archive does not hold is a usage error\n"
    "                      that names its pens (and the closest one)\n"
    "  -f, --format FMT    table (default: aligned columns for a terminal), csv\n"
    "                      (one header line per report, reports apart by a blank\n"
    "                      line: use --report for one table per file) or json (one\n"
    "                      object per line with a \"type\"; the global --json too)\n"
    "                      or html (the report document to hand over: header,\n"
    "                      verdict, findings with evidence, charts, integrity,\n"
    "                      configuration history, every treatment; one file with\n"
    "                      nothing from the network; every report, usage by week)\n"
    "  -o, --output FILE   write to FILE (an HTML report: whole or not at all)\n"
    "      --operator NAME who makes the HTML report (default: user@host)\n"
    "      --check-report FILE  make FILE's report again from the archive (--archive,\n"
    "                      else PENLINK_ARCHIVE, else the default; never the one the\n"
    "                      report names), with its pen, window and zone:\n"
    "                      exit 0 when its data digest and the document itself are\n"
    "                      what penlink makes, 6 when not (its verify claims are\n"
    "                      as stored when it was made: not checked again)\n"
    "  -h, --help          this help\n"
    "\n"
    "The time window selects what is reported (treatments that start in it,\n"
    "findings whose record lies in it); every record of the pen is still read,\n"
    "so a cartridge used before the window and again inside it is a reuse.\n"
    "An audit with no record in its window (an empty archive, a pen without\n"
    "records, a window without any) reports the finding no_records: nothing\n"
    "examined is never a pass. The records are read from the pens' chained and\n"
    "signed chunks, whose links and heads the audit checks itself (read-only, the\n"
    "checks of penlink verify): a log that does not verify is the finding\n"
    "log_broken. The record rows are not read: comparing them with the chunks is\n"
    "penlink verify's job; its last stored verdict is shown as its claim, never\n"
    "relied on.\n"
    "\n"
    "Exit status: 0 no compliance finding; 1 a compliance finding: a reused\n"
    "cartridge, a treatment without an accepted cartridge, a treatment outside\n"
    "the configured limits, no records to audit, or an integrity problem (gap,\n"
    "conflict, missing records, log overflow, a log that does not verify, a\n"
    "configuration history with two values for one revision) -- whichever\n"
    "report is shown.\n"
    "Refused cartridges, clock anomalies and unknown configuration revisions are\n"
    "reported but do not fail the audit. 2 a usage error: a bad or reversed\n"
    "date (a local time a DST change skips or repeats included), an unknown zone\n"
    "or pen. 7 an archive that cannot be read, or a file that does not exist\n"
    "(not an empty archive). Other codes as in `penlink --help`.\n";

/* ---- shared with penlink export -------------------------------------- */

int cli_window(struct cli *c, const char *cmd, const char *tz, const char *since, const char *until,
               penlink_archive_filter *f)
{
    char err[300];
    if (cli_tz_set(tz, err, sizeof err) != 0)
        return cli_error(c, EXIT_USAGE, "%s: --tz: %s", cmd, err);
    if (since) {
        if (cli_parse_time(since, 0, &f->since_ms, err, sizeof err) != 0)
            return cli_error(c, EXIT_USAGE, "%s: --since: %s", cmd, err);
        f->has_since = 1;
    }
    if (until) {
        if (cli_parse_time(until, 1, &f->until_ms, err, sizeof err) != 0)
            return cli_error(c, EXIT_USAGE, "%s: --until: %s", cmd, err);
        f->has_until = 1;
    }
    if (f->has_since && f->has_until && f->since_ms >= f->until_ms) {
        char a[48], b[48];
        cli_time_iso(f->since_ms, a, sizeof a);
        cli_time_iso(f->until_ms, b, sizeof b);
        return cli_error(c, EXIT_USAGE,
                         "%s: --since %s (%s) is not before --until %s (%s): the window is "
                         "empty",
                         cmd, since, a, until, b);
    }
    return EXIT_OK;
}

int cli_pen_check(struct cli *c, penlink_archive *ar, const char *cmd, const char *serial)
{
    if (!serial)
        return EXIT_OK;
    int st = penlink_archive_pen_check(ar, serial, NULL);
    if (st == PENLINK_ERR_NOT_FOUND)
        return cli_error(c, EXIT_USAGE, "%s: %s", cmd, penlink_ctx_errmsg(c->ctx));
    return st == PENLINK_OK ? EXIT_OK : cli_fail(c, cmd, st);
}

/* 1 when @p s is a USB port path, BUS-PORT[.PORT]... (1-2, 1-2.3), as the
 * pen commands read usb:S (else S is a serial) */
static int usb_port_path(const char *s)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || s[n] != '-')
        return 0;
    for (s += n + 1;; s++) {
        n = strspn(s, "0123456789");
        if (n == 0)
            return 0;
        s += n;
        if (*s != '.')
            return *s == '\0';
    }
}

int cli_pen_filter(struct cli *c, penlink_archive_filter *f, const char *pen)
{
    if (pen) {
        f->serial = pen;
        return EXIT_OK;
    }
    /* PENLINK_DEVICE is --device's default: a serial it names selects that pen
     * here too; one that names none (usb, sim:PATH) is the pen commands'
     * default, not a choice of pen, and leaves every pen selected */
    const char *dev = c->device;
    int from_env = 0;
    if (!dev) {
        dev = getenv("PENLINK_DEVICE");
        from_env = 1;
    }
    if (!dev || !*dev)
        return EXIT_OK;
    int port = strncmp(dev, "usb:", 4) == 0 && usb_port_path(dev + 4);
    if (strncmp(dev, "usb:", 4) == 0 && dev[4] && !port) {
        /* usb:serial=S names serial S as the pen commands read it (a serial
         * shaped like a port path) */
        f->serial = strncmp(dev + 4, "serial=", 7) == 0 && dev[11] ? dev + 11 : dev + 4;
        return EXIT_OK;
    }
    /* usb:BUS-PORT.PORT names a USB port, as the pen commands read it: no serial */
    if (strcmp(dev, "usb") == 0 || strchr(dev, ':')) {
        if (from_env)
            return EXIT_OK;
        return cli_error(c, EXIT_USAGE,
                         "--device %s names no pen serial: use --pen SERIAL (or --device "
                         "usb:SERIAL) to select a pen in the archive",
                         dev);
    }
    f->serial = dev;
    return EXIT_OK;
}

static void fmt_time(int64_t ms, char *buf, size_t cap)
{
    cli_time_iso(ms, buf, cap);
}

static void fmt_serial(uint64_t v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%" PRIu64, v);
}

/* ---- tables ----------------------------------------------------------- */

enum { FMT_TABLE, FMT_CSV, FMT_JSON, FMT_HTML };
enum { SEC_TREAT, SEC_CART, SEC_INTEG, SEC_USAGE, SEC_N };

typedef struct table {
    size_t ncol, nrows, cap;
    char **cells; /* nrows x ncol */
} table;

static int table_row(table *t, const char *const *cols)
{
    if ((t->nrows + 1) * t->ncol > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64 * t->ncol;
        char **n = realloc(t->cells, cap * sizeof *n);
        if (!n)
            return -1;
        t->cells = n;
        t->cap = cap;
    }
    for (size_t i = 0; i < t->ncol; i++) {
        const char *v = cols[i] ? cols[i] : "";
        char *d = malloc(strlen(v) + 1);
        if (!d)
            return -1;
        strcpy(d, v);
        t->cells[t->nrows * t->ncol + i] = d;
    }
    t->nrows++;
    return 0;
}

static void table_print(const table *t, const char *title)
{
    size_t w[16] = { 0 };
    for (size_t r = 0; r < t->nrows; r++)
        for (size_t i = 0; i < t->ncol && i < 16; i++) {
            size_t l = strlen(t->cells[r * t->ncol + i]);
            if (l > w[i])
                w[i] = l;
        }
    printf("%s\n", title);
    for (size_t r = 0; r < t->nrows; r++) {
        printf(" ");
        for (size_t i = 0; i < t->ncol; i++) {
            const char *v = t->cells[r * t->ncol + i];
            if (i + 1 == t->ncol)
                printf(" %s", v);
            else
                printf(" %-*s", (int)w[i], v);
        }
        printf("\n");
        if (r == 0) {
            printf(" ");
            for (size_t i = 0; i < t->ncol; i++) {
                printf(" ");
                for (size_t k = 0; k < (i + 1 == t->ncol ? strlen(t->cells[i]) : w[i]); k++)
                    putchar('-');
            }
            printf("\n");
        }
    }
    printf("\n");
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncol; i++)
        free(t->cells[i]);
    free(t->cells);
}

static const char *const headers[SEC_N][12] = {
    { "pen", "start", "end", "minutes", "depth um", "mean", "speed", "strokes", "cartridge", "uses",
      "rev", NULL },
    { "pen", "finding", "seq", "time", "cartridge", "detail", NULL },
    { "pen", "finding", "seq", "time", "count", "detail", NULL },
    { "pen", "period", "treatments", "minutes", "cartridges", NULL },
};
static const char *const csv_headers[SEC_N] = {
    NULL, /* cli_treatment_csv_header */
    "pen,finding,compliance,seq,time,cartridge_serial,cartridge_uses,count,config_revision,"
    "value,evidence,detail,raised,raised_last,repeats,id,annotations",
    "pen,finding,compliance,seq,time,cartridge_serial,cartridge_uses,count,config_revision,"
    "value,evidence,detail,raised,raised_last,repeats,id,annotations",
    "pen,period,period_start,treatments,treatment_minutes,cartridges",
};

typedef struct out {
    struct cli *c;
    int fmt;
    int want[SEC_N];
    table tab[SEC_N];
    FILE *csv[SEC_N]; /* csv sections are collected apart, then printed one after another */
    int failed;
    uint64_t compliance[PENLINK_FIND_KINDS]; /* compliance findings per kind */
    uint64_t hidden[PENLINK_FIND_KINDS];     /* of those, in a report not shown */
    penlink_verification *v;                 /* each selected pen's verification */
    size_t n_v, cap_v;
} out;

static void minutes(uint64_t ms, char *buf, size_t cap)
{
    snprintf(buf, cap, "%" PRIu64 ".%" PRIu64, ms / 60000, ms % 60000 / 6000);
}

static void short_time(int64_t ms, char *buf, size_t cap)
{
    cli_time_short(ms, buf, cap); /* "2026-01-01 09:00:00" */
}

static int on_treatment(void *u, const penlink_treatment *t)
{
    out *o = u;
    if (!o->want[SEC_TREAT])
        return 0;
    if (o->fmt == FMT_JSON) {
        cli_json_out(cli_treatment_json(t));
        return 0;
    }
    if (o->fmt == FMT_CSV) {
        cli_treatment_csv(o->csv[SEC_TREAT], t);
        return 0;
    }
    char s[24], e[24], m[48], d[24], mean[16], sp[24], st[24], cs[24], uses[12], rev[12];
    short_time(t->start_ms, s, sizeof s);
    short_time(t->end_ms, e, sizeof e);
    minutes(t->duration_ms, m, sizeof m);
    if (!t->ended) /* bounded: a pen's times can make the minutes 20 digits long */
        snprintf(m + strlen(m), sizeof m - strlen(m), " (no end)");
    snprintf(d, sizeof d, "%u-%u", t->depth_min_um, t->depth_max_um);
    snprintf(mean, sizeof mean, "%u", t->depth_mean_um);
    snprintf(sp, sizeof sp, "%u-%u", t->speed_min_sps, t->speed_max_sps);
    snprintf(st, sizeof st, "%" PRIu64, t->strokes);
    if (t->has_cartridge || t->cartridge_serial)
        fmt_serial(t->cartridge_serial, cs, sizeof cs);
    else
        snprintf(cs, sizeof cs, "none");
    snprintf(uses, sizeof uses, "%u", t->cartridge_uses);
    snprintf(rev, sizeof rev, t->config_revision ? "%u" : "?", t->config_revision);
    /* the end's date only when it differs from the start's */
    const char *end = strncmp(s, e, 10) == 0 ? e + 11 : e;
    const char *row[] = { cli_safe(t->serial), s, end, m, d, mean, sp, st, cs, uses, rev };
    if (table_row(&o->tab[SEC_TREAT], row) != 0)
        o->failed = 1;
    return 0;
}

/* A finding's evidence as one CSV cell: "SERIAL:SEQ@TIME" joined by spaces. */
static void evidence_text(const penlink_finding *f, char *ev, size_t cap)
{
    size_t n = 0;
    ev[0] = '\0';
    for (size_t i = 0; i < f->n_evidence && n < cap; i++) {
        char et[40];
        fmt_time(f->evidence[i].time_ms, et, sizeof et);
        n += (size_t)snprintf(ev + n, cap - n, "%s%s:%" PRIu64 "@%s", i ? " " : "",
                              f->evidence[i].serial, f->evidence[i].seq, et);
    }
}

/* A finding's notes as one CSV cell, escaped whole: authors and texts are the archive's. */
static void csv_notes(out *o, FILE *c, const penlink_finding *f)
{
    char *notes = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&notes, &len);
    for (size_t i = 0; m && i < f->n_annotations; i++) {
        char at[48];
        fmt_time(f->annotations[i].at_ms, at, sizeof at);
        fprintf(m, "%s%s %s: %s", i ? " | " : "", at, f->annotations[i].author,
                f->annotations[i].text);
    }
    if (m && fclose(m) == 0)
        cli_csv_text(c, notes);
    else
        o->failed = 1;
    free(notes);
}

static void finding_csv(out *o, const penlink_finding *f, int sec, const char *kind)
{
    FILE *c = o->csv[sec];
    char t[40] = "", cs[24], raised[48] = "", raised_last[48] = "", ev[1024];
    if (f->repeats) {
        fmt_time(f->raised_ms, raised, sizeof raised);
        fmt_time(f->raised_last_ms, raised_last, sizeof raised_last);
    }
    if (f->time_ms)
        fmt_time(f->time_ms, t, sizeof t);
    int has_cart = cli_finding_has_cartridge(f);
    fmt_serial(f->cartridge_serial, cs, sizeof cs);
    evidence_text(f, ev, sizeof ev);
    cli_csv_text(c, f->serial);
    fputc(',', c);
    cli_csv_text(c, kind ? kind : "unknown"); /* an alarm's kind is the archive's text */
    fprintf(c, ",%d,%" PRIu64 ",%s,%s,", f->compliance, f->seq, t, has_cart ? cs : "");
    if (has_cart)
        fprintf(c, "%u", f->cartridge_uses);
    fprintf(c, ",%" PRIu64 ",%u,%" PRId64 ",", f->count, f->config_revision, f->value);
    cli_csv_text(c, ev);
    fputc(',', c);
    cli_csv_text(c, f->detail);
    fprintf(c, ",%s,%s,", raised, raised_last);
    if (f->repeats)
        fprintf(c, "%" PRIu64, f->repeats);
    fputc(',', c);
    cli_csv_text(c, f->id);
    fputc(',', c);
    csv_notes(o, c, f);
    fputc('\n', c);
}

/* The detail column: the archive's words escaped, then penlink's own about when it was raised. */
static void finding_detail(const penlink_finding *f, char *detail, size_t cap)
{
    cli_escape(detail, CLI_ESCAPED_CAP(sizeof f->detail), f->detail);
    if (f->repeats) {
        char a[24], b[24];
        short_time(f->raised_ms, a, sizeof a);
        short_time(f->raised_last_ms, b, sizeof b);
        size_t n = strlen(detail);
        if (f->repeats > 1)
            snprintf(detail + n, cap - n, "; raised %s, again until %s", a, b);
        else
            snprintf(detail + n, cap - n, "; raised %s", a);
    }
}

/* A finding's rows in its table: the finding, its notes, the treatments that used its cartridge. */
static void finding_table(out *o, const penlink_finding *f, int sec, const char *kind)
{
    char cs[24], seq[24], st[24], third[24];
    int has_cart = cli_finding_has_cartridge(f);
    fmt_serial(f->cartridge_serial, cs, sizeof cs);
    snprintf(seq, sizeof seq, "%" PRIu64, f->seq);
    if (f->time_ms)
        short_time(f->time_ms, st, sizeof st);
    else
        snprintf(st, sizeof st, "-");
    if (sec == SEC_CART)
        snprintf(third, sizeof third, "%s", has_cart ? cs : "");
    else
        snprintf(third, sizeof third, "%" PRIu64, f->count);
    char detail[CLI_ESCAPED_CAP(sizeof f->detail) + 160];
    finding_detail(f, detail, sizeof detail);
    const char *row[] = {
        cli_safe(f->serial), cli_safe(kind ? kind : "unknown"), seq, st, third, detail
    };
    if (table_row(&o->tab[sec], row) != 0)
        o->failed = 1;
    for (size_t i = 0; i < f->n_annotations; i++) {
        const penlink_annotation *a = &f->annotations[i];
        char at[24], raw[sizeof a->text + sizeof a->author + 8], text[CLI_ESCAPED_CAP(sizeof raw)];
        short_time(a->at_ms, at, sizeof at);
        snprintf(raw, sizeof raw, "%s: %s", a->author, a->text);
        cli_escape(text, sizeof text, raw); /* the note's author and words are the archive's */
        const char *nrow[] = { cli_safe(f->serial), "  note", "", at, "", text };
        if (table_row(&o->tab[sec], nrow) != 0)
            o->failed = 1;
    }
    for (size_t i = 0; i < f->n_evidence; i++) {
        char es[24], eseq[24];
        short_time(f->evidence[i].time_ms, es, sizeof es);
        snprintf(eseq, sizeof eseq, "%" PRIu64, f->evidence[i].seq);
        const char *erow[] = {
            cli_safe(f->evidence[i].serial), "  treatment", eseq, es, cs, "used this cartridge"
        };
        if (table_row(&o->tab[sec], erow) != 0)
            o->failed = 1;
    }
}

static int on_finding(void *u, const penlink_finding *f)
{
    out *o = u;
    int sec = strcmp(f->report, "integrity") == 0 ? SEC_INTEG : SEC_CART;
    if (f->compliance && f->kind < PENLINK_FIND_KINDS) {
        o->compliance[f->kind]++;
        o->hidden[f->kind] += !o->want[sec];
    }
    if (!o->want[sec])
        return 0;
    const char *kind = f->name ? f->name : penlink_finding_kind_name(f->kind);
    if (o->fmt == FMT_JSON)
        cli_json_out(cli_finding_json(f));
    else if (o->fmt == FMT_CSV)
        finding_csv(o, f, sec, kind);
    else
        finding_table(o, f, sec, kind);
    return 0;
}

static int on_usage(void *u, const penlink_usage *us)
{
    out *o = u;
    if (!o->want[SEC_USAGE])
        return 0;
    char ps[40], n[24], m[24], cs[24];
    if (o->fmt == FMT_JSON) {
        cli_json_out(cli_usage_json(us));
        return 0;
    }
    if (o->fmt == FMT_CSV) {
        fmt_time(us->period_start_ms, ps, sizeof ps);
        cli_csv_text(o->csv[SEC_USAGE], us->serial);
        fprintf(o->csv[SEC_USAGE], ",%s,%s,%" PRIu64 ",%.3f,%" PRIu64 "\n", us->period, ps,
                us->treatments, (double)us->treatment_ms / 60000.0, us->cartridges);
        return 0;
    }
    snprintf(n, sizeof n, "%" PRIu64, us->treatments);
    minutes(us->treatment_ms, m, sizeof m);
    snprintf(cs, sizeof cs, "%" PRIu64, us->cartridges);
    const char *row[] = { cli_safe(us->serial), us->period, n, m, cs };
    if (table_row(&o->tab[SEC_USAGE], row) != 0)
        o->failed = 1;
    return 0;
}

static void print_csv_section(FILE *tmp, const char *header, int *first)
{
    if (!*first)
        putchar('\n');
    *first = 0;
    puts(header);
    rewind(tmp);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, tmp)) > 0)
        fwrite(buf, 1, n, stdout);
}

/* The verification state of each pen (penlink verify, and the pulls' heads). */
static int on_verification(void *u, const penlink_verification *v)
{
    out *o = u;
    if (o->n_v == o->cap_v) {
        size_t cap = o->cap_v ? 2 * o->cap_v : 8;
        void *p = realloc(o->v, cap * sizeof *o->v);
        if (!p)
            return 1;
        o->v = p;
        o->cap_v = cap;
    }
    o->v[o->n_v++] = *v;
    return 0;
}

static void print_verifications(const out *o)
{
    printf("Integrity: log verification (the checks of penlink verify, run by this audit)\n");
    if (o->n_v == 0)
        printf("  none\n");
    for (size_t i = 0; i < o->n_v; i++) {
        const penlink_verification *v = &o->v[i];
        char t[48] = "by this audit";
        if (!v->computed)
            fmt_time(v->at_ms, t, sizeof t);
        if (!v->have && !v->pinned)
            printf("  %-12s unsigned: the pen does not sign its log\n", cli_safe(v->serial));
        else if (!v->have)
            printf("  %-12s not verified offline yet; the pulls verified its signed heads "
                   "through seq %" PRIu64 " (run penlink verify)\n",
                   cli_safe(v->serial), v->signed_through);
        else if (strcmp(v->result, "broken") == 0)
            printf("  %-12s BROKEN at seq %" PRIu64 " (verified %s): %s\n", cli_safe(v->serial),
                   v->through_seq, t, cli_safe(v->detail));
        else if (strcmp(v->result, "unsigned") == 0)
            printf("  %-12s unsigned: the pen does not sign its log (its records were checked "
                   "against the archive's pulls only)\n",
                   cli_safe(v->serial));
        else
            printf("  %-12s verified %s: %" PRIu64 " records, %" PRIu64
                   " chunks, signed through seq %" PRIu64 "\n",
                   cli_safe(v->serial), t, v->records, v->chunks, v->through_seq);
    }
    printf("\n");
}

/* "reuse 4, gap 1" from per-kind counts; "" when all are 0. */
static void kinds_text(const uint64_t *n, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (uint32_t k = 0; k < PENLINK_FIND_KINDS && used < cap; k++) {
        const char *name = penlink_finding_kind_name(k);
        if (n[k] && name)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s %" PRIu64, used ? ", " : "",
                                     name, n[k]);
    }
}

static void print_summary(const out *o, const penlink_audit_summary *s)
{
    char all[512], comp[512], hidden[512];
    kinds_text(s->findings, all, sizeof all);
    kinds_text(o->compliance, comp, sizeof comp);
    kinds_text(o->hidden, hidden, sizeof hidden);
    printf("Summary: %" PRIu64 " pens, %" PRIu64 " records (%" PRIu64 " in the window), %" PRIu64
           " treatments, %" PRIu64 " cartridges\n",
           s->pens, s->records, s->records_in_window, s->treatments, s->cartridges);
    printf("  findings: %s\n", all[0] ? all : "none");
    printf("  compliance findings %" PRIu64 ", integrity findings %" PRIu64 "\n", s->compliance,
           s->integrity);
    printf("  logs: %" PRIu64 " verified, %" PRIu64 " broken, %" PRIu64
           " not verified offline, %" PRIu64 " unsigned\n",
           s->logs_verified, s->logs_broken, s->logs_not_verified, s->logs_unsigned);
    if (s->verdict == PENLINK_VERDICT_PASS) {
        printf("Verdict: PASS, no compliance finding in %" PRIu64 " records examined\n",
               s->records_in_window);
        return;
    }
    printf("Verdict: FAIL, %" PRIu64 " compliance finding%s: %s\n", s->compliance,
           s->compliance == 1 ? "" : "s", comp);
    if (hidden[0])
        printf("  not in the reports shown: %s (see them with --report all)\n", hidden);
}

/* What was audited, and the time zone of every time shown: first, in every format but CSV
 * (whose times carry their offsets). */
static void print_header(const out *o, const penlink_archive_filter *f)
{
    char since[48] = "", until[48] = "";
    if (f->has_since)
        fmt_time(f->since_ms, since, sizeof since);
    if (f->has_until)
        fmt_time(f->until_ms, until, sizeof until);
    if (o->fmt == FMT_JSON) {
        json_t *j = json_pack(
            "{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:s}", "type", "audit", "penlink_version",
            penlink_version(), "serial", f->serial ? cli_json_str(f->serial) : json_null(), "since",
            f->has_since ? json_string(since) : json_null(), "since_ms",
            f->has_since ? json_integer(f->since_ms) : json_null(), "until",
            f->has_until ? json_string(until) : json_null(), "until_ms",
            f->has_until ? json_integer(f->until_ms) : json_null(), "time_zone", cli_tz_name());
        cli_json_out(j);
    } else if (o->fmt == FMT_TABLE) {
        char a[32] = "", b[32] = "";
        if (f->has_since)
            short_time(f->since_ms, a, sizeof a);
        if (f->has_until)
            short_time(f->until_ms, b, sizeof b);
        if (f->serial)
            printf("Audit of pen %s\n", cli_safe(f->serial));
        else
            printf("Audit of all pens\n");
        if (f->has_since && f->has_until)
            printf("  window: from %s to %s (excluded)\n", a, b);
        else if (f->has_since)
            printf("  window: from %s on\n", a);
        else if (f->has_until)
            printf("  window: up to %s (excluded)\n", b);
        else
            printf("  window: every record\n");
        printf("  times: the pens' clocks, shown in %s\n\n", cli_tz_name());
    }
}

static const char annotate_usage[] =
    "Usage: penlink [--archive PATH] audit annotate FINDING --text TEXT\n"
    "                [--operator NAME] [-h]\n"
    "\n"
    "Add a note to a finding, e.g. what was done about it. FINDING is the\n"
    "finding's id, KIND:PEN:SEQ (\"id\" in --format json and csv, e.g.\n"
    "reuse:PEN-0002:80). Notes are kept in the archive for good: none is ever\n"
    "changed or deleted; a correction is another note. Every format of the\n"
    "audit shows them under their finding, with who wrote them and when.\n"
    "\n"
    "Options:\n"
    "  -t, --text TEXT     the note (1 to 1023 bytes)\n"
    "      --operator NAME who writes it (default: the OS user@host)\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 added; 2 no such finding in the archive's audit, or no text.\n";

typedef struct find_id {
    const char *id;
    int found;
} find_id;

static int on_find_id(void *u, const penlink_finding *f)
{
    find_id *k = u;
    k->found |= strcmp(f->id, k->id) == 0;
    return 0;
}

enum { ANNOTATE_OPT_OPERATOR = 256 };
const struct option cli_audit_annotate_options[] = {
    { "text", required_argument, NULL, 't' },
    { "operator", required_argument, NULL, ANNOTATE_OPT_OPERATOR },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* penlink audit annotate FINDING --text TEXT: the finding must be one the audit makes. */
static int cmd_annotate(struct cli *c, int argc, char **argv)
{
    const char *text = NULL, *author = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "t:h", cli_audit_annotate_options, NULL)) != -1) {
        switch (opt) {
        case 't': text = optarg; break;
        case ANNOTATE_OPT_OPERATOR: author = optarg; break;
        case 'h': fputs(annotate_usage, stdout); return EXIT_OK;
        default: fputs(annotate_usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !text) {
        fputs(annotate_usage, stderr);
        return EXIT_USAGE;
    }
    const char *id = argv[optind];
    char err[300];
    if (cli_tz_set(NULL, err, sizeof err) != 0)
        return cli_error(c, EXIT_USAGE, "audit annotate: %s", err);
    penlink_archive *ar = NULL;
    int st = penlink_archive_open_existing(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "audit annotate: cannot open the archive", st);
    find_id k = { id, 0 };
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_finding = on_find_id,
                            .user = &k,
                            .usage_by = PENLINK_PERIOD_DAY };
    st = penlink_audit_run(ar, NULL, &cb, NULL);
    int rc = EXIT_OK;
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "audit annotate", st);
        goto out;
    }
    if (!k.found) {
        rc = cli_error(c, EXIT_USAGE,
                       "audit annotate: no finding %s in this archive's audit (the ids are "
                       "KIND:PEN:SEQ, as \"id\" in penlink audit --format json shows them)",
                       id);
        goto out;
    }
    st = penlink_archive_annotate(ar, id, author, text);
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "audit annotate", st);
        goto out;
    }
    if (c->json)
        cli_json_out(json_pack("{s:o, s:b}", "finding", cli_json_str(id), "added", 1));
    else if (!c->quiet)
        printf("note added to %s\n", cli_safe(id));
out:
    penlink_archive_close(ar);
    return rc;
}

enum { OPT_SINCE = 256, OPT_UNTIL, OPT_TZ, OPT_CHECK, OPT_OPERATOR };
const struct option cli_audit_options[] = {
    { "report", required_argument, NULL, 'r' },
    { "output", required_argument, NULL, 'o' },
    { "check-report", required_argument, NULL, OPT_CHECK },
    { "operator", required_argument, NULL, OPT_OPERATOR },
    { "by", required_argument, NULL, 'b' },
    { "since", required_argument, NULL, OPT_SINCE },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "tz", required_argument, NULL, OPT_TZ },
    { "pen", required_argument, NULL, 'p' },
    { "format", required_argument, NULL, 'f' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* The options of an audit (not annotate), as given. */
struct audit_args {
    const char *report, *pen, *since, *until, *tz, *output, *check, *operator_;
};

/* --by and --format: EXIT_OK, or the usage error. */
static int parse_by(struct cli *c, const char *arg, penlink_audit_cb *cb)
{
    if (strcmp(arg, "day") == 0)
        cb->usage_by = PENLINK_PERIOD_DAY;
    else if (strcmp(arg, "week") == 0)
        cb->usage_by = PENLINK_PERIOD_WEEK;
    else if (strcmp(arg, "month") == 0)
        cb->usage_by = PENLINK_PERIOD_MONTH;
    else
        return cli_error(c, EXIT_USAGE, "audit: --by day, week or month, not '%s'", arg);
    return EXIT_OK;
}

static int parse_format(struct cli *c, const char *arg, out *o)
{
    if (strcmp(arg, "table") == 0)
        o->fmt = FMT_TABLE;
    else if (strcmp(arg, "csv") == 0)
        o->fmt = FMT_CSV;
    else if (strcmp(arg, "json") == 0)
        o->fmt = FMT_JSON;
    else if (strcmp(arg, "html") == 0)
        o->fmt = FMT_HTML;
    else
        return cli_error(c, EXIT_USAGE, "audit: unknown format '%s' (table, csv, json, html)", arg);
    return EXIT_OK;
}

/* The command line: EXIT_OK to go on, else the exit status (--help is *done). */
static int parse_args(struct cli *c, int argc, char **argv, out *o, penlink_audit_cb *cb,
                      struct audit_args *a, int *done)
{
    int opt, rc = EXIT_OK;
    while (rc == EXIT_OK &&
           (opt = getopt_long(argc, argv, "r:b:p:f:o:h", cli_audit_options, NULL)) != -1) {
        switch (opt) {
        case 'r': a->report = optarg; break;
        case 'o': a->output = optarg; break;
        case OPT_CHECK: a->check = optarg; break;
        case OPT_OPERATOR: a->operator_ = optarg; break;
        case 'b': rc = parse_by(c, optarg, cb); break;
        case OPT_SINCE: a->since = optarg; break;
        case OPT_UNTIL: a->until = optarg; break;
        case OPT_TZ: a->tz = optarg; break;
        case 'p': a->pen = optarg; break;
        case 'f': rc = parse_format(c, optarg, o); break;
        case 'h':
            fputs(usage, stdout);
            *done = 1;
            return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (rc == EXIT_OK && optind != argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    return rc;
}

/* Which reports are shown, and the options that go together: EXIT_OK or a usage error. */
static int check_args(struct cli *c, out *o, struct audit_args *a)
{
    static const char *const sec_names[SEC_N] = { "treatments", "cartridges", "integrity",
                                                  "usage" };
    if (o->fmt == FMT_HTML && a->report && strcmp(a->report, "all") != 0)
        return cli_error(c, EXIT_USAGE, "audit: the HTML report shows every report (no --report)");
    if (o->fmt != FMT_HTML && a->operator_)
        return cli_error(c, EXIT_USAGE, "audit: --operator names who made an HTML report");
    if (!a->report)
        a->report = "all";
    int any = 0;
    for (int i = 0; i < SEC_N; i++) {
        o->want[i] = strcmp(a->report, "all") == 0 || strcmp(a->report, sec_names[i]) == 0;
        any |= o->want[i];
    }
    if (!any)
        return cli_error(c, EXIT_USAGE,
                         "audit: --report treatments, cartridges, integrity, usage or all, not "
                         "'%s'",
                         a->report);
    return EXIT_OK;
}

/* The tables' headers and the CSV sections' temporary files. */
static int prepare_sections(struct cli *c, out *o)
{
    for (int i = 0; i < SEC_N; i++) {
        size_t n = 0;
        while (headers[i][n])
            n++;
        o->tab[i].ncol = n;
        if (o->fmt == FMT_TABLE && o->want[i])
            table_row(&o->tab[i], headers[i]);
        if (o->fmt == FMT_CSV && o->want[i] && !(o->csv[i] = tmpfile()))
            return cli_error(c, EXIT_IO, "audit: cannot create a temporary file");
    }
    return EXIT_OK;
}

/* The audit over the archive: the reports through the callbacks into @p o, the summary, and
 * for the integrity report the key replacements and verify's stored verdicts. */
static int run_audit(struct cli *c, out *o, const penlink_archive_filter *f,
                     const penlink_audit_cb *cb, penlink_audit_summary *sum,
                     struct cli_keyrepl **keys, void **claims)
{
    penlink_archive *ar = NULL;
    int st = penlink_archive_open_readonly(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "audit: cannot open the archive", st);
    int rc = cli_pen_check(c, ar, "audit", f->serial);
    if (rc != EXIT_OK)
        goto fail;
    print_header(o, f);
    struct cli_work *work = cli_work_begin(c, NULL, 1);
    st = penlink_audit_run(ar, f, cb, sum);
    cli_work_end(work);
    if (st == PENLINK_OK && o->want[SEC_INTEG]) {
        rc = cli_keyrepl_load(c, ar, f->serial, keys);
        if (rc != EXIT_OK)
            goto fail;
        /* verify's stored verdicts: shown as its claim, next to what the audit checked */
        *claims = cli_verify_claims_json(ar, o->v, o->n_v);
        if (!*claims)
            st = PENLINK_ERR_IO;
    }
    penlink_archive_close(ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "audit", st);
    if (o->failed)
        return cli_error(c, EXIT_INTERNAL, "audit: out of memory");
    return EXIT_OK;
fail:
    penlink_archive_close(ar);
    return rc;
}

static void print_tables(const out *o, const penlink_audit_cb *cb, const penlink_audit_summary *sum,
                         const struct cli_keyrepl *keys, void *claims)
{
    static const char *const titles[SEC_N] = { "Treatments", "Cartridges: findings",
                                               "Integrity: findings", "Usage" };
    static const char *const by_names[] = { "day", "week", "month" };
    for (int i = 0; i < SEC_N; i++) {
        if (!o->want[i])
            continue;
        char title[64];
        if (i == SEC_USAGE)
            snprintf(title, sizeof title, "Usage per pen and %s", by_names[cb->usage_by]);
        else
            snprintf(title, sizeof title, "%s", titles[i]);
        if (o->tab[i].nrows > 1)
            table_print(&o->tab[i], title);
        else
            printf("%s\n  none\n\n", title);
        if (i == SEC_INTEG) {
            print_verifications(o);
            cli_audit_scope_text(stdout, o->v, o->n_v, claims);
            printf("\n");
            cli_keyrepl_table(keys);
        }
    }
    print_summary(o, sum);
}

/* The JSON lines after the reports: verifications, the scope (it takes @p claims), the key
 * replacements, the summary. */
static void print_json_tail(const out *o, const penlink_audit_summary *sum,
                            const struct cli_keyrepl *keys, void *claims)
{
    for (size_t i = 0; o->want[SEC_INTEG] && i < o->n_v; i++)
        cli_json_out(cli_verification_json(&o->v[i]));
    if (o->want[SEC_INTEG]) {
        json_t *scope = cli_audit_scope_json(cli_audit_chunks(o->v, o->n_v), claims);
        if (scope)
            cli_audit_scope_pens_json(scope, o->v, o->n_v);
        cli_json_out(scope);
    }
    cli_keyrepl_json(keys);
    cli_json_out(cli_summary_json(sum));
}

int cmd_audit(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "annotate") == 0)
        return cmd_annotate(c, argc - 1, argv + 1);
    out o;
    memset(&o, 0, sizeof o);
    o.c = c;
    o.fmt = c->json ? FMT_JSON : FMT_TABLE;
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_treatment = on_treatment,
                            .on_finding = on_finding,
                            .on_usage = on_usage,
                            .user = &o,
                            .usage_by = PENLINK_PERIOD_DAY,
                            .local_time = 1,
                            .on_verification = on_verification };
    struct audit_args a;
    memset(&a, 0, sizeof a);
    struct cli_keyrepl *keys = NULL; /* replaced device keys: part of the integrity report */
    void *claims = NULL;             /* verify's stored verdicts (json_t *) */
    int done = 0;
    int rc = parse_args(c, argc, argv, &o, &cb, &a, &done);
    if (rc != EXIT_OK || done)
        return rc;
    if (a.check) {
        if (a.report || a.pen || a.since || a.until || a.tz || a.output || a.operator_ ||
            o.fmt == FMT_HTML)
            return cli_error(c, EXIT_USAGE,
                             "audit: --check-report takes no other option: the report names its "
                             "pen, window and zone (--archive selects the archive to check it "
                             "against)");
        return cli_audit_check_report(c, a.check);
    }
    rc = check_args(c, &o, &a);
    if (rc == EXIT_OK)
        rc = cli_window(c, "audit", a.tz, a.since, a.until, &f);
    if (rc == EXIT_OK)
        rc = cli_pen_filter(c, &f, a.pen);
    if (rc != EXIT_OK)
        return rc;
    if (o.fmt == FMT_HTML)
        return cli_audit_html(c, &f, a.output, a.operator_);
    if (a.output && !freopen(a.output, "w", stdout))
        return cli_error(c, EXIT_IO, "audit: cannot write %s: %s", a.output, strerror(errno));
    penlink_audit_summary sum = PENLINK_AUDIT_SUMMARY_INIT;
    rc = prepare_sections(c, &o);
    if (rc == EXIT_OK)
        rc = run_audit(c, &o, &f, &cb, &sum, &keys, &claims);
    if (rc != EXIT_OK)
        goto out;
    if (o.fmt == FMT_TABLE) {
        print_tables(&o, &cb, &sum, keys, claims);
    } else if (o.fmt == FMT_CSV) {
        int first = 1;
        for (int i = 0; i < SEC_N; i++)
            if (o.want[i])
                print_csv_section(
                    o.csv[i], i == SEC_TREAT ? cli_treatment_csv_header : csv_headers[i], &first);
    } else {
        print_json_tail(&o, &sum, keys, claims);
        if (o.want[SEC_INTEG])
            claims = NULL; /* the scope's line took it */
    }
    fflush(stdout);
    if (ferror(stdout))
        rc = EXIT_IO; /* main's check of standard output says why, once */
    else
        rc = sum.verdict == PENLINK_VERDICT_PASS ? EXIT_OK : EXIT_FINDING;
out:
    cli_keyrepl_free(keys);
    json_decref(claims);
    free(o.v);
    for (int i = 0; i < SEC_N; i++) {
        table_free(&o.tab[i]);
        if (o.csv[i])
            fclose(o.csv[i]);
    }
    return rc;
}
