/*
 * penlink export: the archive's records or treatments as CSV or JSON lines,
 * for spreadsheets and other tools (no pen needed).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_time.h"

static const char usage[] =
    "Usage: penlink [--archive PATH] export records|treatments [--format FMT]\n"
    "                [-o FILE] [--pen SERIAL] [--since DATE] [--until DATE]\n"
    "                [--tz ZONE] [-h]\n"
    "\n"
    "Write the archive's records (every record, by pen then seq) or its\n"
    "treatments (as `penlink audit --report treatments` computes them).\n"
    "\n"
    "Options:\n"
    "  -f, --format FMT    csv (default; a header line) or json (one object per\n"
    "                      line; the global --json too)\n"
    "  -o, --output FILE   write to FILE instead of standard output\n"
    "  -p, --pen SERIAL    one pen (the global --device usb:SERIAL too, and a\n"
    "                      PENLINK_DEVICE that names a serial)\n"
    "      --since DATE    records at or after DATE (pen time); treatments that\n"
    "                      start then: YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fff]],\n"
    "                      local time of --tz unless an offset (Z, +01:00) is given\n"
    "      --until DATE    before DATE (a bare date includes that whole day)\n"
    "      --tz ZONE       time zone of dates in and out (Europe/Berlin, UTC);\n"
    "                      default: the local zone (TZ)\n"
    "  -h, --help          this help\n"
    "\n"
    "Cartridge serials are written as decimal text (JSON strings), so that no\n"
    "tool rounds them. Times are ISO 8601 with their UTC offset (Z in UTC).\n"
    "A --pen the archive does not hold is a usage error (exit 2) naming its pens.\n"
    "The archive is only read (a read-only copy will do). Archived rows that\n"
    "cannot be records (an edited or damaged archive) are left out and named,\n"
    "every other record is written, and the exit status is 6.\n";

enum { FMT_CSV, FMT_JSON };

typedef struct export_out {
    FILE *f;
    int fmt;
    uint64_t n;
    uint64_t damaged; /* pens with rows that cannot be records (treatments) */
    char damage[400];
} export_out;

static int on_record(void *u, const char *serial, const penlink_record *r)
{
    export_out *e = u;
    if (cli_interrupted)
        return -1; /* a Ctrl-C: the scan stops, exit 130 */
    char t[40], v[24];
    const char *kind = penlink_record_kind_name(r->kind);
    char kbuf[24];
    if (!kind) {
        snprintf(kbuf, sizeof kbuf, "kind_%u", r->kind);
        kind = kbuf;
    }
    cli_time_iso(r->time_ms, t, sizeof t);
    e->n++;
    if (e->fmt == FMT_CSV) {
        cli_csv_text(e->f, serial);
        fprintf(e->f, ",%" PRIu64 ",%" PRId64 ",%s,%s", r->seq, r->time_ms, t, kind);
        for (uint32_t b = 0; b < PENLINK_FIELD_COUNT; b++) {
            uint32_t bit = 1u << b;
            if (!(r->fields & bit)) {
                fputc(',', e->f);
                continue;
            }
            uint64_t x = penlink_record_field_get(r, bit);
            if (bit == PENLINK_F_CLOCK_DELTA_MS)
                fprintf(e->f, ",%" PRId64, (int64_t)x);
            else
                fprintf(e->f, ",%" PRIu64, x);
        }
        fputc('\n', e->f);
        return ferror(e->f) ? -1 : 0;
    }
    json_t *j = json_object();
    json_object_set_new(j, "serial", cli_json_str(serial));
    json_object_set_new(j, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(j, "time_ms", json_integer(r->time_ms));
    json_object_set_new(j, "time", json_string(t));
    json_object_set_new(j, "kind", json_string(kind));
    for (uint32_t b = 0; b < PENLINK_FIELD_COUNT; b++) {
        uint32_t bit = 1u << b;
        if (!(r->fields & bit))
            continue;
        uint64_t x = penlink_record_field_get(r, bit);
        json_t *val;
        if (bit == PENLINK_F_CARTRIDGE_SERIAL ||
            (bit != PENLINK_F_CLOCK_DELTA_MS && x > (uint64_t)INT64_MAX)) {
            snprintf(v, sizeof v, "%" PRIu64, x);
            val = json_string(v); /* identifiers and huge values stay exact */
        } else {
            val = json_integer((json_int_t)(int64_t)x);
        }
        json_object_set_new(j, penlink_record_field_name(bit), val);
    }
    cli_json_line(e->f, j);
    return ferror(e->f) ? -1 : 0;
}

static int on_treatment(void *u, const penlink_treatment *t)
{
    export_out *e = u;
    if (cli_interrupted)
        return -1; /* a Ctrl-C: the audit stops, exit 130 */
    e->n++;
    if (e->fmt == FMT_CSV) {
        cli_treatment_csv(e->f, t);
    } else {
        json_t *j = cli_treatment_json(t);
        json_object_del(j, "type");
        cli_json_line(e->f, j);
    }
    return ferror(e->f) ? -1 : 0;
}

/* The audit's findings: only damaged rows matter to an export. */
static int on_finding(void *u, const penlink_finding *f)
{
    export_out *e = u;
    if (f->kind == PENLINK_FIND_DAMAGED && e->damaged++ == 0)
        snprintf(e->damage, sizeof e->damage, "pen %s: %s", f->serial, f->detail);
    return 0;
}

enum { OPT_SINCE = 256, OPT_UNTIL, OPT_TZ };
const struct option cli_export_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "output", required_argument, NULL, 'o' },
    { "pen", required_argument, NULL, 'p' },
    { "since", required_argument, NULL, OPT_SINCE },
    { "until", required_argument, NULL, OPT_UNTIL },
    { "tz", required_argument, NULL, OPT_TZ },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

int cmd_export(struct cli *c, int argc, char **argv)
{
    export_out e = { .f = stdout, .fmt = c->json ? FMT_JSON : FMT_CSV };
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    const char *path = NULL, *pen = NULL, *since = NULL, *until = NULL, *tz = NULL;
    int opt, rc;
    while ((opt = getopt_long(argc, argv, "f:o:p:h", cli_export_options, NULL)) != -1) {
        switch (opt) {
        case 'f':
            if (strcmp(optarg, "csv") == 0)
                e.fmt = FMT_CSV;
            else if (strcmp(optarg, "json") == 0)
                e.fmt = FMT_JSON;
            else
                return cli_error(c, EXIT_USAGE, "export: unknown format '%s' (csv, json)", optarg);
            break;
        case 'o': path = optarg; break;
        case 'p': pen = optarg; break;
        case OPT_SINCE: since = optarg; break;
        case OPT_UNTIL: until = optarg; break;
        case OPT_TZ: tz = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *what = argv[optind];
    int records = strcmp(what, "records") == 0;
    if (!records && strcmp(what, "treatments") != 0)
        return cli_error(c, EXIT_USAGE, "export: records or treatments, not '%s'", what);
    rc = cli_window(c, "export", tz, since, until, &f);
    if (rc == EXIT_OK)
        rc = cli_pen_filter(c, &f, pen);
    if (rc != EXIT_OK)
        return rc;

    penlink_archive *ar = NULL;
    int st = penlink_archive_open_readonly(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "export: cannot open the archive", st);
    rc = cli_pen_check(c, ar, "export", f.serial);
    if (rc != EXIT_OK) {
        penlink_archive_close(ar);
        return rc;
    }
    if (path && !(e.f = fopen(path, "w"))) {
        rc = cli_error(c, EXIT_IO, "export: cannot write %s: %s", path, strerror(errno));
        penlink_archive_close(ar);
        return rc;
    }
    if (records && e.fmt == FMT_CSV) {
        fputs("pen,seq,time_ms,time,kind", e.f);
        for (uint32_t b = 0; b < PENLINK_FIELD_COUNT; b++)
            fprintf(e.f, ",%s", penlink_record_field_name(1u << b));
        fputc('\n', e.f);
    } else if (e.fmt == FMT_CSV) {
        fprintf(e.f, "%s\n", cli_treatment_csv_header);
    }
    struct cli_work *work = cli_work_begin(c, "export", path == NULL);
    if (records) {
        st = penlink_archive_scan(ar, &f, on_record, &e);
    } else {
        penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                                .on_treatment = on_treatment,
                                .on_finding = on_finding,
                                .user = &e,
                                .usage_by = PENLINK_PERIOD_DAY,
                                .local_time = 1 };
        st = penlink_audit_run(ar, &f, &cb, NULL);
    }
    cli_work_end(work);
    penlink_archive_close(ar);
    int werr = fflush(e.f) != 0 || ferror(e.f);
    if (path && fclose(e.f) != 0)
        werr = 1;
    if (st == PENLINK_ERR_CANCELLED && werr && !path)
        return EXIT_IO; /* standard output: main's check says why, once */
    if (st == PENLINK_ERR_CANCELLED && werr)
        return cli_error(c, EXIT_IO, "export: writing %s failed", path);
    if (st != PENLINK_OK)
        return cli_fail(c, "export", st);
    if (werr && !path)
        return EXIT_IO; /* standard output: main's check says why, once */
    if (werr)
        return cli_error(c, EXIT_IO, "export: writing %s failed", path);
    if (e.damaged)
        return cli_error(c, EXIT_INTEGRITY,
                         "export: %s (%llu pens with such rows; every other treatment was written)",
                         e.damage, (unsigned long long)e.damaged);
    if (c->verbose)
        fprintf(stderr, "export: %" PRIu64 " %s\n", e.n, what);
    return EXIT_OK;
}
