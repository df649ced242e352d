/*
 * A library caller of the audit, as another program would write it: opens
 * an archive, runs penlink_audit_run() with no callback at all, and prints
 * the summary it returns, one "name value" per line. The tests compare it
 * with what the CLI prints: the verdict must be the library's, not one that
 * only the CLI works out.
 *
 * Usage: audit_summary ARCHIVE [SERIAL]
 * Exit status: 0 the audit ran, 1 it failed (the reason on stderr).
 */
#include <inttypes.h>
#include <stdio.h>

#include "penlink/penlink.h"

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: audit_summary ARCHIVE [SERIAL]\n");
        return 1;
    }
    penlink_ctx *ctx = NULL;
    penlink_archive *ar = NULL;
    penlink_audit_summary s =
        PENLINK_AUDIT_SUMMARY_INIT; /* verdict 0 is PASS: the library must overwrite it */
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    f.serial = argc == 3 ? argv[2] : NULL;
    int st = penlink_ctx_new(&ctx);
    if (st == PENLINK_OK)
        st = penlink_archive_open_existing(ctx, argv[1], &ar);
    if (st == PENLINK_OK)
        st = penlink_audit_run(ar, &f, NULL, &s);
    if (st != PENLINK_OK) {
        fprintf(stderr, "audit_summary: %s: %s\n", penlink_strerror(st),
                ctx ? penlink_ctx_errmsg(ctx) : "");
        if (ar) /* what a caller that reads the summary anyway would see */
            printf("verdict %s\n", s.verdict == PENLINK_VERDICT_PASS   ? "pass"
                                   : s.verdict == PENLINK_VERDICT_FAIL ? "fail"
                                                                       : "not_run");
        penlink_archive_close(ar);
        penlink_ctx_free(ctx);
        return 1;
    }
    printf("verdict %s\n", s.verdict == PENLINK_VERDICT_PASS ? "pass" : "fail");
    printf("compliance %" PRIu64 "\nintegrity %" PRIu64 "\n", s.compliance, s.integrity);
    printf("records %" PRIu64 "\nrecords_in_window %" PRIu64 "\npens %" PRIu64 "\n", s.records,
           s.records_in_window, s.pens);
    printf("logs_verified %" PRIu64 "\nlogs_broken %" PRIu64 "\nlogs_not_verified %" PRIu64
           "\nlogs_unsigned %" PRIu64 "\n",
           s.logs_verified, s.logs_broken, s.logs_not_verified, s.logs_unsigned);
    for (uint32_t k = 0; k < PENLINK_FIND_KINDS; k++)
        if (s.findings[k] && penlink_finding_kind_name(k))
            printf("finding %s %" PRIu64 "\n", penlink_finding_kind_name(k), s.findings[k]);
    penlink_archive_close(ar);
    penlink_ctx_free(ctx);
    return 0;
}
