/*
 * The audit as one self-contained HTML document an auditor can open, print
 * and hand over (report_html.c): inline CSS and SVG, nothing from the
 * network, no script. Fed by the audit's callbacks, written once the
 * verdict is known (it comes first).
 */
#ifndef PENLINK_REPORT_HTML_H
#define PENLINK_REPORT_HTML_H

#include <stdint.h>
#include <stdio.h>

#include "penlink/penlink.h"

typedef struct html_report html_report;

/* What the report was made of and by: its header, and what --check-report
 * needs to make it again (written into the document's meta tags). */
typedef struct html_meta {
    const char *pen; /* NULL: every pen */
    int has_since, has_until;
    int64_t since_ms, until_ms;
    const char *tz;        /* the zone's name */
    const char *archive;   /* the archive's path as given */
    const char *operator_; /* who made it: the OS user and host */
    int64_t generated_ms;  /* when */
    const char *version;   /* penlink's */
    /* The report's format: 2 (this penlink: the audit reads the pens' chunks, and the report
     * says so with verify's stored claims), 1 (a report made before, checked by its data). */
    int format;
    const char *claims; /* format 2: verify's stored verdicts when it was made (JSON array) */
} html_meta;

/* NULL when out of memory. */
html_report *html_report_new(void);
void html_report_free(html_report *h);

/* The audit's callbacks; 0, or -1 when out of memory. @p id: the finding's id. */
int html_treatment(html_report *h, const penlink_treatment *t);
int html_finding(html_report *h, const penlink_finding *f, const char *id);
int html_usage(html_report *h, const penlink_usage *u);
int html_verification(html_report *h, const penlink_verification *v);
int html_config(html_report *h, const penlink_config_entry *e);
int html_key_replacement(html_report *h, const penlink_key_replacement *r);

/* Writes the document; 0, or -1 when writing failed. */
int html_write(html_report *h, FILE *out, const html_meta *m, const penlink_audit_summary *s,
               const char *digest_hex);

/* Writes @p s for HTML text or an attribute: escaped as on a terminal
 * (cli_escape: control characters, bytes that are not UTF-8, invisible and
 * direction-changing characters), then markup and quotes as entities. */
void html_text(FILE *out, const char *s);

#endif
