/*
 * penlink verify: re-check the archive's signed logs offline and name the
 * first broken link of each pen (docs/security.md).
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"
#include "clock.h"

static const char usage[] =
    "Usage: penlink [--archive PATH] verify [--pen SERIAL] [--no-record] [-h]\n"
    "\n"
    "Re-check the archive offline, no pen needed. For every pen that signs its\n"
    "log: each chunk's bytes against its hash-chain link, each link against the\n"
    "chunk before it, each signed head the pulls kept against the pen's pinned\n"
    "device key, and every record row against the chunk that carries it. An\n"
    "edited, removed, reordered or inserted record or chunk breaks one of these;\n"
    "the first broken link of each pen is named. For every pen: record rows that\n"
    "cannot be records (a seq no pen logs) break it too, and so do records its\n"
    "finished pulls stored that are gone (no gap explains them), and a pen with\n"
    "no pinned key whose chunks carry links or whose pulls kept signed heads\n"
    "(its key was removed). 'penlink audit' runs these checks itself.\n"
    "\n"
    "The archive is checked read-only, so a read-only copy or medium will do.\n"
    "Then the verdicts are recorded in the archive's verification log (a\n"
    "history; the audit never relies on it) when the archive is writable here; on a read-only "
    "archive\n"
    "(a read-only file, copy or medium; on PostgreSQL a standby, or a role that\n"
    "may only read) they are only printed. --no-record never writes (an\n"
    "inspector's copy stays byte for byte as received).\n"
    "\n"
    "Exit status: 0 every pen verified (or does not sign its log), 2 a --pen the\n"
    "archive does not hold (the error names its pens), 6 a pen's log does not\n"
    "verify, 7 the archive cannot be read (or the verdicts cannot be recorded in\n"
    "a writable archive).\n"
    "\n"
    "Options:\n"
    "  -p, --pen SERIAL  one pen (the global --device usb:SERIAL too, and a\n"
    "                    PENLINK_DEVICE that names a serial)\n"
    "  -n, --no-record   do not record the verdicts in the archive\n"
    "  -h, --help        this help\n";

typedef struct vout {
    struct cli *c;
    int broken;
    uint64_t records;
    int pens;
    penlink_verify_report *kept; /* to record once the read-only check is done */
    size_t n_kept, cap_kept;
    int failed;
    int writable; /* the archive can be written from here: the verdicts are recorded */
} vout;

static int keep(vout *o, const penlink_verify_report *r)
{
    if (o->n_kept == o->cap_kept) {
        size_t cap = o->cap_kept ? 2 * o->cap_kept : 16;
        void *p = realloc(o->kept, cap * sizeof *o->kept);
        if (!p)
            return -1;
        o->kept = p;
        o->cap_kept = cap;
    }
    o->kept[o->n_kept++] = *r;
    return 0;
}

static const char *state_name(penlink_verify_state s)
{
    return s == PENLINK_VERIFY_OK ? "verified" : s == PENLINK_VERIFY_BROKEN ? "BROKEN" : "unsigned";
}

static int on_report(void *u, const penlink_verify_report *r)
{
    vout *o = u;
    if (keep(o, r) != 0) {
        o->failed = 1;
        return 1;
    }
    o->pens++;
    o->records += r->records;
    if (r->state == PENLINK_VERIFY_BROKEN)
        o->broken++;
    if (o->c->json) {
        json_t *j =
            json_pack("{s:o, s:s, s:I, s:I, s:I, s:I}", "serial", cli_json_str(r->serial), "state",
                      r->state == PENLINK_VERIFY_OK       ? "ok"
                      : r->state == PENLINK_VERIFY_BROKEN ? "broken"
                                                          : "unsigned",
                      "records", (json_int_t)r->records, "chunks", (json_int_t)r->chunks, "heads",
                      (json_int_t)r->heads, "signed_through", (json_int_t)r->signed_through);
        if (r->state == PENLINK_VERIFY_BROKEN) {
            json_object_set_new(j, "seq", cli_json_u64(r->where_seq));
            json_object_set_new(j, "detail", cli_json_str(r->detail));
        } else if (r->notes[0]) {
            json_object_set_new(j, "notes", cli_json_str(r->notes));
        }
        cli_json_out(j);
    } else if (!o->c->quiet || r->state == PENLINK_VERIFY_BROKEN) {
        printf("%-12s %-9s %10" PRIu64 " records, %7" PRIu64 " chunks, %6" PRIu64 " signed heads",
               cli_safe(r->serial), state_name(r->state), r->records, r->chunks, r->heads);
        if (r->state == PENLINK_VERIFY_BROKEN)
            printf("\n  first broken link at seq %" PRIu64 ": %s\n", r->where_seq,
                   cli_safe(r->detail));
        else if (r->notes[0])
            printf("\n  %s\n", cli_safe(r->notes));
        else
            printf("\n");
    }
    return 0;
}

/* Records the verdicts of the read-only check in the archive's verification log. */
static int record(struct cli *c, const vout *o)
{
    char def[1024];
    const char *path = c->archive, *env = getenv("PENLINK_ARCHIVE");
    if (!path && env && *env)
        path = env; /* as the library chose it */
    if (!path && penlink_archive_default_path(def, sizeof def) == PENLINK_OK)
        path = def;
    if (!path || o->n_kept == 0)
        return EXIT_OK;
    if (!o->writable) {
        char text[1200];
        snprintf(text, sizeof text,
                 "note: %s is read-only here: the verdicts above were not recorded in its "
                 "verification log",
                 path);
        cli_notice(c, text); /* a JSON event with --json, nothing with --quiet */
        return EXIT_OK;
    }
    penlink_archive *ar = NULL;
    int st = penlink_archive_open_existing(c->ctx, path, &ar);
    for (size_t i = 0; st == PENLINK_OK && i < o->n_kept; i++)
        st = penlink_archive_verification_save(ar, &o->kept[i]);
    penlink_archive_close(ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "verify: the verdicts were not recorded", st);
    return EXIT_OK;
}

const struct option cli_verify_options[] = {
    { "pen", required_argument, NULL, 'p' },
    { "no-record", no_argument, NULL, 'n' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

int cmd_verify(struct cli *c, int argc, char **argv)
{
    const char *pen = NULL;
    int opt, no_record = 0;
    while ((opt = getopt_long(argc, argv, "p:nh", cli_verify_options, NULL)) != -1) {
        switch (opt) {
        case 'p': pen = optarg; break;
        case 'n': no_record = 1; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    int rc = cli_pen_filter(c, &f, pen);
    if (rc != EXIT_OK)
        return rc;
    penlink_archive *ar = NULL;
    int st = penlink_archive_open_readonly(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "verify: cannot open the archive", st);
    rc = cli_pen_check(c, ar, "verify", f.serial);
    if (rc != EXIT_OK) {
        penlink_archive_close(ar);
        return rc;
    }
    vout o;
    memset(&o, 0, sizeof o);
    o.c = c;
    int64_t t0 = pc_mono_ms();
    struct cli_work *work = cli_work_begin(c, NULL, 0);
    st = penlink_archive_verify(ar, f.serial, on_report, &o);
    cli_work_end(work);
    double dt = (double)(pc_mono_ms() - t0) / 1000.0;
    if (penlink_archive_writable(ar, &o.writable) != PENLINK_OK)
        o.writable = 0;
    penlink_archive_close(ar);
    if (o.failed)
        rc = cli_error(c, EXIT_INTERNAL, "verify: out of memory");
    else if (st != PENLINK_OK)
        rc = cli_fail(c, "verify", st);
    if (o.failed || st != PENLINK_OK)
        goto out;
    if (!c->json && !c->quiet)
        printf("%d pens, %" PRIu64 " records checked in %.2f s%s\n", o.pens, o.records, dt,
               o.broken ? "; SOME LOGS DO NOT VERIFY: see above and docs/security.md" : "");
    fflush(stdout);
    rc = no_record ? EXIT_OK : record(c, &o);
    if (o.broken)
        rc = EXIT_INTEGRITY;
out:
    free(o.kept);
    return rc;
}
