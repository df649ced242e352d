/*
 * penlink audit: the clinic auditor's report over the archive (no pen
 * needed): treatments, cartridges (reuse, refusals, limits), integrity and
 * usage. Also the helpers penlink export shares: the pen and time filter,
 * and a treatment as CSV or JSON.
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink [--archive PATH] audit [--report WHICH] [--by PERIOD]\n"
    "                [--since DATE] [--until DATE] [--pen SERIAL] [--format FMT] [-h]\n"
    "\n"
    "Audit the archive (no pen needed): prove that every treatment used a fresh,\n"
    "single-use cartridge within the configured limits, that no record is missing,\n"
    "and show the usage per pen and period. See docs/audit-guide.md.\n"
    "\n"
    "Options:\n"
    "  -r, --report WHICH  treatments, cartridges, integrity, usage, or all (default)\n"
    "  -b, --by PERIOD     usage per day (default), week (ISO 8601) or month (UTC)\n"
    "      --since DATE    from DATE on (pen time, UTC): YYYY-MM-DD or\n"
    "                      YYYY-MM-DDTHH:MM[:SS][Z]\n"
    "      --until DATE    up to DATE: a bare date includes that whole day, a time\n"
    "                      is exclusive\n"
    "  -p, --pen SERIAL    one pen; the global --device usb:SERIAL (or a bare\n"
    "                      SERIAL) selects it too; other --device forms are refused\n"
    "  -f, --format FMT    table (default: aligned columns for a terminal), csv\n"
    "                      (one header line per report, reports apart by a blank\n"
    "                      line: use --report for one table per file) or json (one\n"
    "                      object per line with a \"type\"; the global --json too)\n"
    "  -h, --help          this help\n"
    "\n"
    "The time window selects what is reported (treatments that start in it,\n"
    "findings whose record lies in it); every record of the pen is still read,\n"
    "so a cartridge used before the window and again inside it is a reuse.\n"
    "\n"
    "Exit status: 0 no compliance finding; 1 a compliance finding: a reused\n"
    "cartridge, a treatment without an accepted cartridge, a treatment outside\n"
    "the configured limits, or an integrity problem (gap, conflict, missing\n"
    "records, log overflow) -- whichever report is shown. Refused cartridges,\n"
    "clock anomalies and unknown configuration revisions are reported but do\n"
    "not fail the audit. Other codes as in `penlink --help`.\n";

/* ---- shared with penlink export -------------------------------------- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* "YYYY-MM-DD[THH:MM[:SS]][Z]" (UTC) -> ms; *date_only when no time was given. */
static int parse_date(const char *s, int64_t *ms, int *date_only)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || mo < 1 || mo > 12 || d < 1 || d > 31)
        return -1;
    const char *p = s + n;
    *date_only = *p == '\0';
    if (*p == 'T' || *p == ' ') {
        int m = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &h, &mi, &m) != 2)
            return -1;
        p += 1 + m;
        if (*p == ':') {
            if (sscanf(p + 1, "%2d%n", &sec, &m) != 1)
                return -1;
            p += 1 + m;
        }
        if (*p == 'Z')
            p++;
        if (*p || h > 23 || mi > 59 || sec > 60)
            return -1;
    } else if (*p) {
        return -1;
    }
    *ms = ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60000ll + sec * 1000ll;
    return 0;
}

int cli_window_option(struct cli *c, penlink_archive_filter *f, int until, const char *arg)
{
    int64_t ms;
    int date_only;
    if (parse_date(arg, &ms, &date_only) != 0)
        return cli_error(c, EXIT_USAGE,
                         "bad date '%s': use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][Z] (UTC)", arg);
    if (until) {
        f->has_until = 1;
        f->until_ms = date_only ? ms + 86400000ll : ms;
    } else {
        f->has_since = 1;
        f->since_ms = ms;
    }
    return EXIT_OK;
}

int cli_pen_filter(struct cli *c, penlink_archive_filter *f, const char *pen)
{
    if (pen) {
        f->serial = pen;
        return EXIT_OK;
    }
    if (!c->device)
        return EXIT_OK;
    if (strncmp(c->device, "usb:", 4) == 0 && c->device[4]) {
        f->serial = c->device + 4;
        return EXIT_OK;
    }
    if (strcmp(c->device, "usb") == 0 || strchr(c->device, ':'))
        return cli_error(c, EXIT_USAGE,
                         "--device %s names no pen serial: use --pen SERIAL (or --device "
                         "usb:SERIAL) to select a pen in the archive",
                         c->device);
    f->serial = c->device;
    return EXIT_OK;
}

static void fmt_time(int64_t ms, char *buf, size_t cap)
{
    cli_format_time(ms, buf, cap);
}

static void fmt_serial(uint64_t v, char *buf, size_t cap)
{
    snprintf(buf, cap, "%" PRIu64, v);
}

const char cli_treatment_csv_header[] =
    "pen,start_seq,start,end,duration_ms,ended,depth_min_um,depth_max_um,depth_mean_um,"
    "speed_min_sps,speed_max_sps,strokes,cartridge_serial,has_cartridge,cartridge_uses,"
    "config_revision";

void cli_treatment_csv(FILE *out, const penlink_treatment *t)
{
    char s[40], e[40], cs[24];
    fmt_time(t->start_ms, s, sizeof s);
    fmt_time(t->end_ms, e, sizeof e);
    fmt_serial(t->cartridge_serial, cs, sizeof cs);
    cli_csv_text(out, t->serial);
    fprintf(out, ",%" PRIu64 ",%s,%s,%" PRIu64 ",%d,%u,%u,%u,%u,%u,%" PRIu64 ",%s,%d,%u,%u\n",
            t->start_seq, s, e, t->duration_ms, t->ended, t->depth_min_um, t->depth_max_um,
            t->depth_mean_um, t->speed_min_sps, t->speed_max_sps, t->strokes,
            t->has_cartridge || t->cartridge_serial ? cs : "", t->has_cartridge, t->cartridge_uses,
            t->config_revision);
}

void *cli_treatment_json(const penlink_treatment *t)
{
    char s[40], e[40], cs[24];
    fmt_time(t->start_ms, s, sizeof s);
    fmt_time(t->end_ms, e, sizeof e);
    fmt_serial(t->cartridge_serial, cs, sizeof cs);
    json_t *j = json_object();
    json_object_set_new(j, "type", json_string("treatment"));
    json_object_set_new(j, "pen", cli_json_str(t->serial));
    json_object_set_new(j, "start_seq", json_integer((json_int_t)t->start_seq));
    json_object_set_new(j, "end_seq", json_integer((json_int_t)t->end_seq));
    json_object_set_new(j, "start", json_string(s));
    json_object_set_new(j, "end", json_string(e));
    json_object_set_new(j, "start_ms", json_integer(t->start_ms));
    json_object_set_new(j, "duration_ms", json_integer((json_int_t)t->duration_ms));
    json_object_set_new(j, "ended", json_boolean(t->ended));
    json_object_set_new(j, "depth_min_um", json_integer(t->depth_min_um));
    json_object_set_new(j, "depth_max_um", json_integer(t->depth_max_um));
    json_object_set_new(j, "depth_mean_um", json_integer(t->depth_mean_um));
    json_object_set_new(j, "speed_min_sps", json_integer(t->speed_min_sps));
    json_object_set_new(j, "speed_max_sps", json_integer(t->speed_max_sps));
    json_object_set_new(j, "strokes", json_integer((json_int_t)t->strokes));
    json_object_set_new(j, "cartridge_serial",
                        t->has_cartridge || t->cartridge_serial ? json_string(cs) : json_null());
    json_object_set_new(j, "has_cartridge", json_boolean(t->has_cartridge));
    json_object_set_new(j, "cartridge_uses", json_integer(t->cartridge_uses));
    json_object_set_new(j, "config_revision", json_integer(t->config_revision));
    return j;
}

/* ---- tables ----------------------------------------------------------- */

enum { FMT_TABLE, FMT_CSV, FMT_JSON };
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
    "value,evidence,detail",
    "pen,finding,compliance,seq,time,cartridge_serial,cartridge_uses,count,config_revision,"
    "value,evidence,detail",
    "pen,period,period_start,treatments,treatment_minutes,cartridges",
};

typedef struct out {
    struct cli *c;
    int fmt;
    int want[SEC_N];
    table tab[SEC_N];
    FILE *csv[SEC_N]; /* csv sections are collected apart, then printed one after another */
    int failed;
} out;

static void minutes(uint64_t ms, char *buf, size_t cap)
{
    snprintf(buf, cap, "%" PRIu64 ".%" PRIu64, ms / 60000, ms % 60000 / 6000);
}

static void short_time(int64_t ms, char *buf, size_t cap)
{
    char t[40];
    cli_format_time(ms, t, sizeof t);
    t[10] = ' ';
    snprintf(buf, cap, "%.19s", t); /* "2026-01-01 09:00:00" */
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
    char s[24], e[24], m[24], d[24], mean[16], sp[24], st[24], cs[24], uses[12], rev[12];
    short_time(t->start_ms, s, sizeof s);
    short_time(t->end_ms, e, sizeof e);
    minutes(t->duration_ms, m, sizeof m);
    if (!t->ended)
        strcat(m, " (no end)");
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

static int on_finding(void *u, const penlink_finding *f)
{
    out *o = u;
    int sec = strcmp(f->report, "integrity") == 0 ? SEC_INTEG : SEC_CART;
    if (!o->want[sec])
        return 0;
    const char *kind = penlink_finding_kind_name(f->kind);
    char t[40], cs[24];
    if (f->time_ms)
        cli_format_time(f->time_ms, t, sizeof t);
    else
        t[0] = '\0';
    int has_cart = f->kind == PENLINK_FIND_REUSE || f->kind == PENLINK_FIND_REFUSED ||
                   f->kind == PENLINK_FIND_NO_CARTRIDGE || f->kind == PENLINK_FIND_OUT_OF_LIMITS;
    fmt_serial(f->cartridge_serial, cs, sizeof cs);
    if (o->fmt == FMT_JSON) {
        json_t *j = json_object();
        json_object_set_new(j, "type", json_string("finding"));
        json_object_set_new(j, "report", json_string(f->report));
        json_object_set_new(j, "finding", json_string(kind ? kind : "unknown"));
        json_object_set_new(j, "compliance", json_boolean(f->compliance));
        json_object_set_new(j, "pen", cli_json_str(f->serial));
        json_object_set_new(j, "seq", json_integer((json_int_t)f->seq));
        json_object_set_new(j, "time", f->time_ms ? json_string(t) : json_null());
        if (has_cart) {
            json_object_set_new(j, "cartridge_serial", json_string(cs));
            json_object_set_new(j, "cartridge_uses", json_integer(f->cartridge_uses));
        }
        if (f->count)
            json_object_set_new(j, "count", json_integer((json_int_t)f->count));
        if (f->config_revision)
            json_object_set_new(j, "config_revision", json_integer(f->config_revision));
        if (f->value)
            json_object_set_new(j, "value", json_integer(f->value));
        if (f->n_evidence) {
            json_t *ev = json_array();
            for (size_t i = 0; i < f->n_evidence; i++) {
                char et[40];
                cli_format_time(f->evidence[i].time_ms, et, sizeof et);
                json_array_append_new(ev, json_pack("{s:o, s:I, s:s}", "pen",
                                                    cli_json_str(f->evidence[i].serial), "seq",
                                                    (json_int_t)f->evidence[i].seq, "start", et));
            }
            json_object_set_new(j, "treatments", ev);
        }
        json_object_set_new(j, "detail", cli_json_str(f->detail));
        cli_json_out(j);
        return 0;
    }
    if (o->fmt == FMT_CSV) {
        FILE *c = o->csv[sec];
        char ev[1024] = "";
        size_t n = 0;
        for (size_t i = 0; i < f->n_evidence && n < sizeof ev; i++) {
            char et[40];
            cli_format_time(f->evidence[i].time_ms, et, sizeof et);
            n += (size_t)snprintf(ev + n, sizeof ev - n, "%s%s:%" PRIu64 "@%s", i ? " " : "",
                                  f->evidence[i].serial, f->evidence[i].seq, et);
        }
        cli_csv_text(c, f->serial);
        fprintf(c, ",%s,%d,%" PRIu64 ",%s,%s,", kind ? kind : "unknown", f->compliance, f->seq, t,
                has_cart ? cs : "");
        if (has_cart)
            fprintf(c, "%u", f->cartridge_uses);
        fprintf(c, ",%" PRIu64 ",%u,%" PRId64 ",", f->count, f->config_revision, f->value);
        cli_csv_text(c, ev);
        fputc(',', c);
        cli_csv_text(c, f->detail);
        fputc('\n', c);
        return 0;
    }
    char seq[24], st[24], third[24];
    snprintf(seq, sizeof seq, "%" PRIu64, f->seq);
    if (f->time_ms)
        short_time(f->time_ms, st, sizeof st);
    else
        snprintf(st, sizeof st, "-");
    if (sec == SEC_CART)
        snprintf(third, sizeof third, "%s", has_cart ? cs : "");
    else
        snprintf(third, sizeof third, "%" PRIu64, f->count);
    const char *row[] = { cli_safe(f->serial), kind ? kind : "unknown", seq, st, third,
                          cli_safe(f->detail) };
    if (table_row(&o->tab[sec], row) != 0)
        o->failed = 1;
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
    return 0;
}

static int on_usage(void *u, const penlink_usage *us)
{
    out *o = u;
    if (!o->want[SEC_USAGE])
        return 0;
    char ps[40], n[24], m[24], cs[24];
    if (o->fmt == FMT_JSON) {
        cli_format_time(us->period_start_ms, ps, sizeof ps);
        cli_json_out(json_pack("{s:s, s:o, s:s, s:s, s:I, s:f, s:I}", "type", "usage", "pen",
                               cli_json_str(us->serial), "period", us->period, "period_start", ps,
                               "treatments", (json_int_t)us->treatments, "treatment_minutes",
                               (double)us->treatment_ms / 60000.0, "cartridges",
                               (json_int_t)us->cartridges));
        return 0;
    }
    if (o->fmt == FMT_CSV) {
        cli_format_time(us->period_start_ms, ps, sizeof ps);
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
typedef struct verif {
    penlink_archive *ar;
    const char *serial;
    penlink_verification *v;
    size_t n, cap;
    int broken;
} verif;

static int on_verif_pen(void *u, const penlink_archive_device *d)
{
    verif *vs = u;
    if (vs->serial && strcmp(vs->serial, d->serial) != 0)
        return 0;
    if (vs->n == vs->cap) {
        size_t cap = vs->cap ? 2 * vs->cap : 8;
        void *p = realloc(vs->v, cap * sizeof *vs->v);
        if (!p)
            return 1;
        vs->v = p;
        vs->cap = cap;
    }
    penlink_verification *v = &vs->v[vs->n];
    if (penlink_archive_verification(vs->ar, d->serial, v) != PENLINK_OK)
        return 1;
    vs->n++;
    vs->broken += v->have && strcmp(v->result, "broken") == 0;
    return 0;
}

static void print_verifications(const verif *vs)
{
    printf("Integrity: log verification (penlink verify)\n");
    if (vs->n == 0)
        printf("  none\n");
    for (size_t i = 0; i < vs->n; i++) {
        const penlink_verification *v = &vs->v[i];
        char t[40];
        cli_format_time(v->at_ms, t, sizeof t);
        if (!v->pinned)
            printf("  %-12s unsigned: the pen does not sign its log\n", cli_safe(v->serial));
        else if (!v->have)
            printf("  %-12s not verified offline yet; the pulls verified its signed heads "
                   "through seq %" PRIu64 " (run penlink verify)\n",
                   cli_safe(v->serial), v->signed_through);
        else if (strcmp(v->result, "broken") == 0)
            printf("  %-12s BROKEN at seq %" PRIu64 " (verified %s): %s\n", cli_safe(v->serial),
                   v->through_seq, t, cli_safe(v->detail));
        else
            printf("  %-12s verified %s: %" PRIu64 " records, %" PRIu64
                   " chunks, signed through seq %" PRIu64 "\n",
                   cli_safe(v->serial), t, v->records, v->chunks, v->through_seq);
    }
    printf("\n");
}

static json_t *verif_json(const penlink_verification *v)
{
    char t[40] = "";
    if (v->have)
        cli_format_time(v->at_ms, t, sizeof t);
    const char *state = !v->pinned ? "unsigned" : !v->have ? "not_verified" : v->result;
    json_t *o = json_pack("{s:s, s:o, s:o, s:I}", "type", "verification", "pen",
                          cli_json_str(v->serial), "state", cli_json_str(state),
                          "pull_verified_through", (json_int_t)v->signed_through);
    if (v->have) {
        json_object_set_new(o, "verified_at", json_string(t));
        json_object_set_new(o, "through_seq", json_integer((json_int_t)v->through_seq));
        json_object_set_new(o, "records", json_integer((json_int_t)v->records));
        if (v->detail[0])
            json_object_set_new(o, "detail", cli_json_str(v->detail));
    }
    return o;
}

int cmd_audit(struct cli *c, int argc, char **argv)
{
    enum { OPT_SINCE = 256, OPT_UNTIL };
    static const struct option opts[] = {
        { "report", required_argument, NULL, 'r' },
        { "by", required_argument, NULL, 'b' },
        { "since", required_argument, NULL, OPT_SINCE },
        { "until", required_argument, NULL, OPT_UNTIL },
        { "pen", required_argument, NULL, 'p' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    static const char *const sec_names[SEC_N] = { "treatments", "cartridges", "integrity",
                                                  "usage" };
    out o;
    memset(&o, 0, sizeof o);
    o.c = c;
    o.fmt = c->json ? FMT_JSON : FMT_TABLE;
    penlink_archive_filter f;
    memset(&f, 0, sizeof f);
    penlink_audit_cb cb = { on_treatment, on_finding, on_usage, &o, PENLINK_PERIOD_DAY };
    const char *report = "all", *pen = NULL;
    int opt, rc;
    struct cli_keyrepl *keys = NULL; /* replaced device keys: part of the integrity report */
    while ((opt = getopt_long(argc, argv, "r:b:p:f:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'r': report = optarg; break;
        case 'b':
            if (strcmp(optarg, "day") == 0)
                cb.usage_by = PENLINK_PERIOD_DAY;
            else if (strcmp(optarg, "week") == 0)
                cb.usage_by = PENLINK_PERIOD_WEEK;
            else if (strcmp(optarg, "month") == 0)
                cb.usage_by = PENLINK_PERIOD_MONTH;
            else
                return cli_error(c, EXIT_USAGE, "audit: --by day, week or month, not '%s'", optarg);
            break;
        case OPT_SINCE:
        case OPT_UNTIL:
            rc = cli_window_option(c, &f, opt == OPT_UNTIL, optarg);
            if (rc != EXIT_OK)
                return rc;
            break;
        case 'p': pen = optarg; break;
        case 'f':
            if (strcmp(optarg, "table") == 0)
                o.fmt = FMT_TABLE;
            else if (strcmp(optarg, "csv") == 0)
                o.fmt = FMT_CSV;
            else if (strcmp(optarg, "json") == 0)
                o.fmt = FMT_JSON;
            else
                return cli_error(c, EXIT_USAGE, "audit: unknown format '%s' (table, csv, json)",
                                 optarg);
            break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    int any = 0;
    for (int i = 0; i < SEC_N; i++) {
        o.want[i] = strcmp(report, "all") == 0 || strcmp(report, sec_names[i]) == 0;
        any |= o.want[i];
    }
    if (!any)
        return cli_error(c, EXIT_USAGE,
                         "audit: --report treatments, cartridges, integrity, usage or all, not "
                         "'%s'",
                         report);
    rc = cli_pen_filter(c, &f, pen);
    if (rc != EXIT_OK)
        return rc;
    static const char *const titles[SEC_N] = { "Treatments", "Cartridges: findings",
                                               "Integrity: findings", "Usage" };
    for (int i = 0; i < SEC_N; i++) {
        size_t n = 0;
        while (headers[i][n])
            n++;
        o.tab[i].ncol = n;
        if (o.fmt == FMT_TABLE && o.want[i])
            table_row(&o.tab[i], headers[i]);
        if (o.fmt == FMT_CSV && o.want[i] && !(o.csv[i] = tmpfile())) {
            rc = cli_error(c, EXIT_IO, "audit: cannot create a temporary file");
            goto out;
        }
    }

    penlink_archive *ar = NULL;
    int st = penlink_archive_open_existing(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "audit: cannot open the archive", st);
        goto out;
    }
    penlink_audit_summary sum;
    st = penlink_audit_run(ar, &f, &cb, &sum);
    verif vs = { 0 };
    if (st == PENLINK_OK && o.want[SEC_INTEG]) {
        vs.ar = ar;
        vs.serial = f.serial;
        st = penlink_archive_devices(ar, on_verif_pen, &vs);
    }
    if (st == PENLINK_OK && o.want[SEC_INTEG] && cli_keyrepl_load(c, ar, f.serial, &keys)) {
        penlink_archive_close(ar);
        rc = EXIT_INTERNAL;
        goto out;
    }
    penlink_archive_close(ar);
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "audit", st);
        goto out;
    }
    if (o.failed) {
        rc = cli_error(c, EXIT_INTERNAL, "audit: out of memory");
        goto out;
    }
    if (o.fmt == FMT_TABLE) {
        static const char *const by_names[] = { "day", "week", "month" };
        for (int i = 0; i < SEC_N; i++) {
            if (!o.want[i])
                continue;
            char title[64];
            if (i == SEC_USAGE)
                snprintf(title, sizeof title, "Usage per pen and %s", by_names[cb.usage_by]);
            else
                snprintf(title, sizeof title, "%s", titles[i]);
            if (o.tab[i].nrows > 1)
                table_print(&o.tab[i], title);
            else
                printf("%s\n  none\n\n", title);
            if (i == SEC_INTEG) {
                print_verifications(&vs);
                cli_keyrepl_table(keys);
            }
        }
        printf("Summary: %" PRIu64 " pens, %" PRIu64 " records, %" PRIu64 " treatments, %" PRIu64
               " cartridges\n",
               sum.pens, sum.records, sum.treatments, sum.cartridges);
        printf("  reused cartridges %" PRIu64 ", treatments without a cartridge %" PRIu64
               ", out of limits %" PRIu64 ", refused cartridges %" PRIu64
               ", integrity findings %" PRIu64 "\n",
               sum.reuses, sum.no_cartridge, sum.out_of_limits, sum.refusals, sum.integrity);
        printf("  %s\n",
               sum.compliance ? "COMPLIANCE FINDINGS: see above" : "no compliance finding");
    } else if (o.fmt == FMT_CSV) {
        int first = 1;
        for (int i = 0; i < SEC_N; i++)
            if (o.want[i])
                print_csv_section(
                    o.csv[i], i == SEC_TREAT ? cli_treatment_csv_header : csv_headers[i], &first);
    } else {
        for (size_t i = 0; i < vs.n; i++)
            cli_json_out(verif_json(&vs.v[i]));
        cli_keyrepl_json(keys);
        cli_json_out(json_pack(
            "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "type", "summary",
            "pens", (json_int_t)sum.pens, "records", (json_int_t)sum.records, "treatments",
            (json_int_t)sum.treatments, "cartridges", (json_int_t)sum.cartridges, "reuses",
            (json_int_t)sum.reuses, "refusals", (json_int_t)sum.refusals, "no_cartridge",
            (json_int_t)sum.no_cartridge, "out_of_limits", (json_int_t)sum.out_of_limits,
            "limits_unknown", (json_int_t)sum.limits_unknown, "integrity",
            (json_int_t)sum.integrity, "compliance", (json_int_t)sum.compliance));
    }
    fflush(stdout);
    if (ferror(stdout))
        rc = cli_error(c, EXIT_IO, "audit: writing the report failed");
    else
        rc = sum.compliance || vs.broken ? EXIT_FINDING : EXIT_OK;
    free(vs.v);
out:
    cli_keyrepl_free(keys);
    for (int i = 0; i < SEC_N; i++) {
        table_free(&o.tab[i]);
        if (o.csv[i])
            fclose(o.csv[i]);
    }
    return rc;
}
