/*
 * The audit report as one HTML document: header (what was audited, by whom,
 * when, from which archive, its data digest, each pen's log verification),
 * the verdict, the findings with their evidence, charts (treatments and
 * cartridges per week per pen, depth and duration distributions, a reuse
 * timeline), integrity, the configuration history and an appendix of every
 * treatment. Inline CSS (with print rules for A4 and Letter) and inline SVG;
 * no script, no font, nothing fetched. Every string that comes from a pen or
 * the archive goes through html_text().
 *
 * The verdict comes first but is known last, so the sections are collected
 * (findings in memory streams, the appendix in a temporary file, the charts
 * as counts) and written by html_write().
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_time.h"
#include "grow.h"
#include "report_html.h"

#define DEPTH_BIN_UM 250 /* depth histogram: 0-250 um, ... */
#define DEPTH_BINS 13    /* ... the last one from 3000 um up */
#define DURATION_BIN_MIN 5
#define DURATION_BINS 19 /* 0-5 min, ... the last one from 90 min up */
#define CHART_W 640      /* SVG user units; the page scales them */
#define CHART_H 170
#define BAR_MAX 26 /* the widest bar, for a pen of few weeks */
#define MARGIN_L 44
#define MARGIN_B 34
#define MARGIN_T 14
#define MAX_PENS_NAMED 64 /* clinics and pens listed in the header */

typedef struct week {
    char pen[33], period[16];
    uint64_t treatments, cartridges;
} week;

typedef struct use_dot {
    uint32_t row; /* the reused cartridge */
    char pen[33];
    uint64_t seq;
    int64_t time_ms;
} use_dot;

typedef struct pen_cfg {
    char serial[33];
    penlink_config last; /* the pen's latest known configuration */
    int have;
} pen_cfg;

/* The findings of a report (cartridges, integrity), compliance failures first. */
enum { PART_CART, PART_CART_NOTE, PART_INTEG, PART_INTEG_NOTE, PARTS };

struct html_report {
    FILE *part[PARTS], *config, *appendix; /* sections collected */
    char *part_buf[PARTS], *config_buf;
    size_t part_len[PARTS], config_len;
    uint64_t n_part[PARTS], n_config, n_treatments;
    uint64_t depth_bins[DEPTH_BINS], duration_bins[DURATION_BINS];
    week *weeks;
    size_t n_weeks, cap_weeks;
    use_dot *dots;
    size_t n_dots, cap_dots;
    char (*reuse_cart)[24];
    size_t n_reuse, cap_reuse;
    penlink_verification *v;
    size_t n_v, cap_v;
    penlink_key_replacement *kr; /* device keys replaced (penlink keys replace) */
    size_t n_kr, cap_kr;
    pen_cfg *cfg;
    size_t n_cfg, cap_cfg;
};

/* ---- text -------------------------------------------------------------- */

#define HTML_TEXT_STACK 512 /* most strings are escaped without an allocation */

/* The CLI's one boundary first (cli_escape: control characters, bytes that
 * are not UTF-8, invisible and direction-changing characters shown as in
 * every other format), then HTML's own: markup and quotes as entities. */
void html_text(FILE *out, const char *s)
{
    char small[HTML_TEXT_STACK];
    size_t cap = CLI_ESCAPED_CAP(strlen(s ? s : ""));
    char *buf = cap <= sizeof small ? small : malloc(cap);
    const char *e = buf ? cli_escape(buf, cap, s) : cli_safe(s);
    for (const char *p = e; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*p, out);
        }
    }
    if (buf != small)
        free(buf);
}

static void when(FILE *out, int64_t ms)
{
    char t[40];
    cli_time_short(ms, t, sizeof t);
    fputs(t, out);
}

/* ---- collecting -------------------------------------------------------- */

html_report *html_report_new(void)
{
    html_report *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    int ok = 1;
    for (int i = 0; i < PARTS; i++)
        ok &= (h->part[i] = open_memstream(&h->part_buf[i], &h->part_len[i])) != NULL;
    h->config = open_memstream(&h->config_buf, &h->config_len);
    h->appendix = tmpfile();
    if (!ok || !h->config || !h->appendix) {
        html_report_free(h);
        return NULL;
    }
    return h;
}

void html_report_free(html_report *h)
{
    if (!h)
        return;
    for (int i = 0; i < PARTS; i++) {
        if (h->part[i])
            fclose(h->part[i]);
        free(h->part_buf[i]);
    }
    if (h->config)
        fclose(h->config);
    if (h->appendix)
        fclose(h->appendix);
    free(h->config_buf);
    free(h->weeks);
    free(h->dots);
    free(h->reuse_cart);
    free(h->v);
    free(h->kr);
    free(h->cfg);
    free(h);
}

int html_treatment(html_report *h, const penlink_treatment *t)
{
    FILE *o = h->appendix;
    h->n_treatments++;
    size_t d = t->depth_mean_um / DEPTH_BIN_UM;
    h->depth_bins[d < DEPTH_BINS ? d : DEPTH_BINS - 1]++;
    size_t m = (size_t)(t->duration_ms / 60000 / DURATION_BIN_MIN);
    h->duration_bins[m < DURATION_BINS ? m : DURATION_BINS - 1]++;
    fputs("<tr class=\"treatment\" data-pen=\"", o);
    html_text(o, t->serial);
    fprintf(o, "\" data-seq=\"%" PRIu64 "\"><td>", t->start_seq);
    html_text(o, t->serial);
    fprintf(o, "</td><td class=\"n\">%" PRIu64 "</td><td class=\"nw\">", t->start_seq);
    when(o, t->start_ms);
    fprintf(o,
            "</td><td class=\"n\">%" PRIu64 ".%" PRIu64 "%s</td><td class=\"n\">%u&ndash;%u</td>"
            "<td class=\"n\">%u</td><td class=\"n\">%u&ndash;%u</td><td>",
            t->duration_ms / 60000, t->duration_ms % 60000 / 6000, t->ended ? "" : " (no end)",
            t->depth_min_um, t->depth_max_um, t->depth_mean_um, t->speed_min_sps, t->speed_max_sps);
    if (t->has_cartridge || t->cartridge_serial)
        fprintf(o, "%" PRIu64, t->cartridge_serial);
    else
        fputs("none", o);
    fprintf(o, "</td><td class=\"n\">%u</td><td class=\"n\">", t->cartridge_uses);
    if (t->config_revision)
        fprintf(o, "%u", t->config_revision);
    else
        fputs("?", o);
    fputs("</td></tr>\n", o);
    return ferror(o) ? -1 : 0;
}

int html_finding(html_report *h, const penlink_finding *f, const char *id)
{
    int integ = strcmp(f->report, "integrity") == 0;
    int part = (integ ? PART_INTEG : PART_CART) + !f->compliance;
    FILE *o = h->part[part];
    h->n_part[part]++;
    fprintf(o, "<tr class=\"finding%s\" data-id=\"", f->compliance ? " compliance" : "");
    html_text(o, id);
    fputs("\" data-kind=\"", o);
    html_text(o, f->name);
    fputs("\" data-pen=\"", o);
    html_text(o, f->serial);
    fprintf(o, "\" data-seq=\"%" PRIu64 "\" data-compliance=\"%d\"><td class=\"kind nw\">", f->seq,
            f->compliance);
    html_text(o, f->name);
    fprintf(o, "%s</td><td class=\"nw\">",
            f->compliance ? "" : "<br><span class=\"note\">(not a failure)</span>");
    html_text(o, f->serial);
    fprintf(o, "</td><td class=\"n nw\">%" PRIu64 "</td><td class=\"nw\">", f->seq);
    if (f->time_ms)
        when(o, f->time_ms);
    else
        fputs("&ndash;", o);
    fputs("</td><td>", o);
    html_text(o, f->detail);
    if (f->repeats) {
        fputs("<br><span class=\"note\">raised ", o);
        when(o, f->raised_ms);
        if (f->repeats > 1) {
            fprintf(o, ", %" PRIu64 " times, last ", f->repeats);
            when(o, f->raised_last_ms);
        }
        fputs(" (host time)</span>", o);
    }
    fputs("</td></tr>\n", o);
    for (size_t i = 0; i < f->n_annotations; i++) {
        const penlink_annotation *a = &f->annotations[i];
        fputs("<tr class=\"annotation\" data-finding=\"", o);
        html_text(o, id);
        fputs("\"><td class=\"kind nw\">&#9998; note</td><td class=\"nw\">", o);
        html_text(o, f->serial);
        fputs("</td><td></td><td class=\"nw\">", o);
        when(o, a->at_ms);
        fputs("</td><td><span class=\"note\">by ", o);
        html_text(o, a->author);
        fputs("</span> ", o);
        html_text(o, a->text);
        fputs("</td></tr>\n", o);
    }
    if (f->n_evidence &&
        pc_grow(&h->reuse_cart, &h->cap_reuse, h->n_reuse + 1, sizeof *h->reuse_cart))
        return -1;
    size_t row = h->n_reuse;
    if (f->n_evidence)
        snprintf(h->reuse_cart[row], sizeof h->reuse_cart[row], "%" PRIu64, f->cartridge_serial);
    for (size_t i = 0; i < f->n_evidence; i++) {
        const penlink_evidence *e = &f->evidence[i];
        fputs("<tr class=\"evidence\" data-pen=\"", o);
        html_text(o, e->serial);
        fprintf(o,
                "\" data-seq=\"%" PRIu64 "\"><td class=\"kind nw\">&#8627; treatment</td>"
                "<td class=\"nw\">",
                e->seq);
        html_text(o, e->serial);
        fprintf(o, "</td><td class=\"n nw\">%" PRIu64 "</td><td class=\"nw\">", e->seq);
        when(o, e->time_ms);
        fprintf(o, "</td><td>used cartridge %" PRIu64 "</td></tr>\n", f->cartridge_serial);
        if (pc_grow(&h->dots, &h->cap_dots, h->n_dots + 1, sizeof *h->dots))
            return -1;
        use_dot *d = &h->dots[h->n_dots++];
        d->row = (uint32_t)row;
        snprintf(d->pen, sizeof d->pen, "%s", e->serial);
        d->seq = e->seq;
        d->time_ms = e->time_ms;
    }
    if (f->n_evidence)
        h->n_reuse++;
    return ferror(o) ? -1 : 0;
}

int html_usage(html_report *h, const penlink_usage *u)
{
    if (pc_grow(&h->weeks, &h->cap_weeks, h->n_weeks + 1, sizeof *h->weeks))
        return -1;
    week *w = &h->weeks[h->n_weeks++];
    snprintf(w->pen, sizeof w->pen, "%s", u->serial);
    snprintf(w->period, sizeof w->period, "%s", u->period);
    w->treatments = u->treatments;
    w->cartridges = u->cartridges;
    return 0;
}

int html_verification(html_report *h, const penlink_verification *v)
{
    if (pc_grow(&h->v, &h->cap_v, h->n_v + 1, sizeof *h->v))
        return -1;
    h->v[h->n_v++] = *v;
    return 0;
}

int html_key_replacement(html_report *h, const penlink_key_replacement *r)
{
    if (pc_grow(&h->kr, &h->cap_kr, h->n_kr + 1, sizeof *h->kr))
        return -1;
    h->kr[h->n_kr++] = *r;
    return 0;
}

/* Every replacement of the pens audited, whatever the window: it is about the pen. */
static void write_key_replacements(FILE *o, const html_report *h)
{
    if (h->n_kr == 0)
        return;
    fputs("<h3>Device keys replaced</h3>\n<table id=\"key-replacements\"><thead><tr><th>Pen</th>"
          "<th>Recorded</th><th>By</th><th>Old key</th><th>New key</th><th>From seq</th>"
          "<th>Reason</th></tr></thead><tbody>\n",
          o);
    for (size_t i = 0; i < h->n_kr; i++) {
        const penlink_key_replacement *r = &h->kr[i];
        char old_fp[PENLINK_KEY_FINGERPRINT_LEN], new_fp[PENLINK_KEY_FINGERPRINT_LEN];
        penlink_key_to_fingerprint(r->old_key, old_fp);
        penlink_key_to_fingerprint(r->new_key, new_fp);
        fputs("<tr class=\"key-replacement\" data-pen=\"", o);
        html_text(o, r->serial);
        fputs("\"><td class=\"nw\">", o);
        html_text(o, r->serial);
        fputs("</td><td class=\"nw\">", o);
        when(o, r->at_ms);
        fputs("</td><td>", o);
        html_text(o, r->user);
        fputs("@", o);
        html_text(o, r->host);
        fprintf(o,
                "</td><td class=\"nw\"><code>%s</code></td><td class=\"nw\"><code>%s</code></td>"
                "<td class=\"n\">%" PRIu64 "</td><td>",
                old_fp, new_fp, r->from_seq);
        html_text(o, r->reason);
        fputs("</td></tr>\n", o);
    }
    fputs("</tbody></table>\n", o);
}

static const char *cfg_value(const penlink_config *c, const penlink_config_key *k, char *buf,
                             size_t cap)
{
    if (!(c->present & k->bit))
        return NULL;
    if (k->is_text)
        return penlink_config_get_text(c, k->bit);
    snprintf(buf, cap, "%u", penlink_config_get_u32(c, k->bit));
    return buf;
}

int html_config(html_report *h, const penlink_config_entry *e)
{
    pen_cfg *p = NULL;
    for (size_t i = 0; i < h->n_cfg; i++)
        if (strcmp(h->cfg[i].serial, e->serial) == 0)
            p = &h->cfg[i];
    if (!p) {
        if (pc_grow(&h->cfg, &h->cap_cfg, h->n_cfg + 1, sizeof *h->cfg))
            return -1;
        p = &h->cfg[h->n_cfg++];
        memset(p, 0, sizeof *p);
        snprintf(p->serial, sizeof p->serial, "%s", e->serial);
    }
    /* old -> new: the values a change replaced, else the pen's previous entry */
    const penlink_config *old = e->has_old ? &e->old_config : p->have ? &p->last : NULL;
    FILE *o = h->config;
    h->n_config++;
    fputs("<tr class=\"config\" data-pen=\"", o);
    html_text(o, e->serial);
    fprintf(o, "\" data-revision=\"%u\"><td>", e->config.revision);
    html_text(o, e->serial);
    fputs("</td><td>", o);
    when(o, e->at_ms);
    fputs("</td><td>", o);
    html_text(o, e->source);
    fputs("</td><td>", o);
    html_text(o, e->user);
    fputs("@", o);
    html_text(o, e->host);
    fprintf(o, "</td><td class=\"n\">");
    if (old)
        fprintf(o, "%u &rarr; ", old->revision);
    fprintf(o, "%u</td><td>", e->config.revision);
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    int changes = 0;
    for (size_t i = 0; i < n; i++) {
        char a[24], b[24];
        const char *nv = cfg_value(&e->config, &k[i], b, sizeof b);
        const char *ov = old ? cfg_value(old, &k[i], a, sizeof a) : NULL;
        if (!nv || (ov && strcmp(ov, nv) == 0))
            continue; /* the first revision known shows every value */
        fprintf(o, "%s<code>%s</code> ", changes++ ? "; " : "", k[i].name);
        if (ov) {
            html_text(o, ov);
            fputs(" &rarr; ", o);
        }
        html_text(o, nv);
    }
    if (!changes)
        fputs("unchanged", o);
    fputs("</td></tr>\n", o);
    p->last = e->config;
    p->have = 1;
    return ferror(o) ? -1 : 0;
}

/* ---- writing ----------------------------------------------------------- */

static const char css[] =
    "body{font:10.5pt/1.35 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
    "color:#111;margin:0 auto;max-width:180mm;padding:8mm 6mm}"
    "h1{font-size:18pt;margin:0 0 4mm}h2{font-size:13pt;margin:7mm 0 2mm;"
    "border-bottom:1px solid #999}h3{font-size:11pt;margin:4mm 0 1mm}"
    "table{border-collapse:collapse;width:100%;margin:1mm 0 3mm}"
    "th,td{text-align:left;vertical-align:top;padding:.6mm 1.5mm;border-bottom:1px solid #ddd;"
    "overflow-wrap:break-word}"
    "td.nw,th.nw{white-space:nowrap}table.list{font-size:9pt}"
    "thead{display:table-header-group}tr{page-break-inside:avoid;break-inside:avoid}"
    "td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
    "table.meta th{width:28mm;color:#444;font-weight:600}"
    ".verdict{border:2px solid;padding:2mm 4mm;margin:4mm 0;break-inside:avoid}"
    ".verdict.pass{border-color:#176d2c;background:#eef8f0}"
    ".verdict.fail{border-color:#a61b1b;background:#fbeeee}"
    ".verdict h2{border:0;margin:0 0 1mm;font-size:15pt}"
    "tr.annotation td{background:#fffbe6}tr.compliance "
    "td.kind{color:#a61b1b;font-weight:600}tr.evidence td{color:#333;"
    "font-size:9.5pt}.note{color:#555;font-size:9pt}code{font-size:9pt}"
    "svg{width:100%;height:auto;break-inside:avoid}svg text{font-size:10px;fill:#333}"
    ".bar.treatments{fill:#2f5d8a}.bar.cartridges{fill:#9cc0e0}.hist{fill:#5b7f3a}"
    ".axis{stroke:#777;stroke-width:1}.use{stroke:#a61b1b;fill:#fff;stroke-width:1.5}"
    ".span{stroke:#a61b1b;stroke-width:1}.small{font-size:8.5pt}"
    "section{break-inside:auto}.chart{break-inside:avoid;margin-bottom:3mm}"
    "@page{margin:14mm 12mm}"
    "@media print{body{max-width:none;padding:0}a{color:inherit;text-decoration:none}"
    "h2{break-after:avoid}}";

/* A meta tag whose content is percent-encoded: safe in the attribute, and
 * read back exactly by --check-report, whatever bytes a serial or path has. */
static void meta_tag(FILE *o, const char *name, const char *content)
{
    fprintf(o, "<meta name=\"%s\" content=\"", name);
    for (const unsigned char *p = (const unsigned char *)content; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("._/:@+,- ", *p))
            fputc(*p, o);
        else
            fprintf(o, "%%%02X", *p);
    }
    fputs("\">\n", o);
}

static int copy_stream(FILE *o, FILE *in)
{
    char buf[65536];
    size_t n;
    rewind(in);
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, o) != n)
            return -1;
    return ferror(in) ? -1 : 0;
}

/* Where the audit's records came from, and verify's stored verdicts as its claim. */
static void write_scope(FILE *o, const html_report *h, const html_meta *m)
{
    uint64_t chunks = cli_audit_chunks(h->v, h->n_v);
    size_t signing, unsigned_pens;
    cli_audit_pens_signing(h->v, h->n_v, &signing, &unsigned_pens);
    char pens[CLI_SCOPE_WORDS];
    cli_audit_scope_words(pens, sizeof pens, h->v, h->n_v);
    fprintf(o,
            "<p id=\"audit-scope\" data-records-from=\"chunks\" data-chunks=\"%" PRIu64
            "\" data-pens-checked=\"%zu\" data-pens-unsigned=\"%zu\">Records: read from the "
            "pens' chunks (%" PRIu64 " chunks; %s); record rows not compared (run <code>penlink "
            "verify</code>).</p>\n",
            chunks, signing, unsigned_pens, chunks, pens);
    fputs("<h3>Verify's claim</h3>\n<p class=\"note\">The last verdict <code>penlink verify</code> "
          "stored for each pen when this report was made: its claim, not used by this "
          "audit.</p>\n<table id=\"verify-claims\"><thead><tr><th>Pen</th><th>Verdict</th>"
          "<th>Stored</th><th>Through seq</th></tr></thead><tbody>\n",
          o);
    json_t *claims = m->claims ? json_loads(m->claims, 0, NULL) : NULL;
    size_t i;
    json_t *c;
    json_array_foreach(claims, i, c)
    {
        const char *at = json_string_value(json_object_get(c, "verified_at"));
        json_t *through = json_object_get(c, "through_seq");
        fputs("<tr class=\"claim\" data-pen=\"", o);
        html_text(o, json_string_value(json_object_get(c, "serial")));
        fputs("\"><td class=\"nw\">", o);
        html_text(o, json_string_value(json_object_get(c, "serial")));
        fputs("</td><td class=\"nw\">", o);
        html_text(o, at ? json_string_value(json_object_get(c, "result")) : "none stored");
        fputs("</td><td class=\"nw\">", o);
        html_text(o, at ? at : "");
        fputs("</td><td>", o);
        if (json_is_integer(through))
            fprintf(o, "%" JSON_INTEGER_FORMAT, json_integer_value(through));
        fputs("</td></tr>\n", o);
    }
    json_decref(claims);
    fputs("</tbody></table>\n", o);
}

/* The clinics the pens name (each once), or that none does. */
static void write_clinics(FILE *o, const html_report *h)
{
    int any = 0;
    for (size_t i = 0; i < h->n_cfg && i < MAX_PENS_NAMED; i++) {
        const char *c = h->cfg[i].have ? h->cfg[i].last.clinic_id : "";
        int seen = 0;
        for (size_t j = 0; j < i; j++)
            seen |= h->cfg[j].have && strcmp(h->cfg[j].last.clinic_id, c) == 0;
        if (!c[0] || seen)
            continue;
        fputs(any++ ? ", " : "", o);
        html_text(o, c);
    }
    if (!any)
        fputs("not set on the pens (clinic_id)", o);
}

/* The pens, each with its label. */
static void write_pens(FILE *o, const html_report *h)
{
    for (size_t i = 0; i < h->n_v && i < MAX_PENS_NAMED; i++) {
        fputs(i ? ", " : "", o);
        html_text(o, h->v[i].serial);
        const char *label = "";
        for (size_t j = 0; j < h->n_cfg; j++)
            if (strcmp(h->cfg[j].serial, h->v[i].serial) == 0 && h->cfg[j].have)
                label = h->cfg[j].last.device_label;
        if (label[0]) {
            fputs(" (", o);
            html_text(o, label);
            fputs(")", o);
        }
    }
    if (h->n_v > MAX_PENS_NAMED)
        fprintf(o, " and %zu more", h->n_v - MAX_PENS_NAMED);
    if (!h->n_v)
        fputs("none", o);
}

/* The window, its zone, and the pen filter. */
static void write_window(FILE *o, const html_meta *m)
{
    if (m->has_since) {
        fputs("from ", o);
        when(o, m->since_ms);
    }
    if (m->has_until) {
        fputs(m->has_since ? " to " : "up to ", o);
        when(o, m->until_ms);
        fputs(" (excluded)", o);
    }
    if (!m->has_since && !m->has_until)
        fputs("every record", o);
    fputs("; pen time (the pens' clocks), shown in ", o);
    html_text(o, m->tz);
    fputs("</td></tr>\n<tr><th>Filters</th><td id=\"filters\">", o);
    if (m->pen) {
        fputs("pen ", o);
        html_text(o, m->pen);
    } else {
        fputs("all pens", o);
    }
}

/* A pen's row in the log verification table. */
static void write_verification(FILE *o, const penlink_verification *v)
{
    const char *state = v->have ? v->result : !v->pinned ? "unsigned" : "not verified";
    fputs("<tr class=\"log\" data-pen=\"", o);
    html_text(o, v->serial);
    fputs("\" data-state=\"", o);
    html_text(o, state); /* a verification's result is the archive's text */
    fputs("\"><td class=\"nw\">", o);
    html_text(o, v->serial);
    fputs("</td><td class=\"nw\">", o);
    html_text(o, strcmp(state, "broken") == 0 ? "BROKEN" : state);
    fputs("</td><td>", o);
    if (!v->have && !v->pinned)
        fputs("the pen does not sign its log", o);
    else if (v->have && strcmp(v->result, "unsigned") == 0)
        fputs("the pen does not sign its log", o);
    else if (!v->have)
        fprintf(o,
                "not verified offline yet; the pulls verified its signed heads through seq "
                "%" PRIu64,
                v->signed_through);
    else {
        fprintf(o, "at seq %" PRIu64 ", ", v->through_seq);
        if (v->computed)
            fputs("checked by this audit", o);
        else
            when(o, v->at_ms);
        fputs(": ", o);
        html_text(o, v->detail[0] ? v->detail : "every record verified");
    }
    fputs("</td></tr>\n", o);
}

static void write_header(FILE *o, const html_report *h, const html_meta *m, const char *digest)
{
    char t[48], off[24];
    fputs("<header>\n<h1>Audit report</h1>\n<table class=\"meta\">\n", o);
    fputs("<tr><th>Clinic</th><td id=\"clinics\">", o);
    write_clinics(o, h);
    fputs("</td></tr>\n<tr><th>Pens</th><td id=\"pens\">", o);
    write_pens(o, h);
    fputs("</td></tr>\n<tr><th>Window</th><td id=\"window\">", o);
    write_window(o, m);
    cli_time_short(m->generated_ms, t, sizeof t);
    cli_time_offset(m->generated_ms, off, sizeof off);
    fprintf(o, "</td></tr>\n<tr><th>Generated</th><td id=\"generated\">%s ", t);
    html_text(o, m->tz);
    fprintf(o, " (%s)</td></tr>\n<tr><th>Operator</th><td id=\"operator\">", off);
    html_text(o, m->operator_);
    fputs("</td></tr>\n<tr><th>penlink</th><td id=\"version\">", o);
    html_text(o, m->version);
    fputs("</td></tr>\n<tr><th>Archive</th><td id=\"archive\">", o);
    html_text(o, m->archive);
    fprintf(o,
            "</td></tr>\n<tr><th>Data digest</th><td><code id=\"digest\">%s</code><br>"
            "<span class=\"note\">SHA-256 of the audited data; <code>penlink audit "
            "--check-report FILE</code> recomputes it from the archive</span></td></tr>\n"
            "</table>\n",
            digest);
    fputs("<h3>Log verification</h3>\n<table id=\"verification\"><thead><tr><th>Pen</th>"
          "<th>State</th><th>Detail</th></tr></thead><tbody>\n",
          o);
    for (size_t i = 0; i < h->n_v; i++)
        write_verification(o, &h->v[i]);
    fputs("</tbody></table>\n", o);
    write_scope(o, h, m);
    write_key_replacements(o, h);
    fputs("</header>\n", o);
}

static void write_verdict(FILE *o, const penlink_audit_summary *s)
{
    int pass = s->verdict == PENLINK_VERDICT_PASS;
    fprintf(o,
            "<section id=\"verdict\" class=\"verdict %s\" data-verdict=\"%s\" "
            "data-compliance=\"%" PRIu64 "\" data-integrity=\"%" PRIu64 "\">\n",
            pass ? "pass" : "fail", pass ? "pass" : "fail", s->compliance, s->integrity);
    if (pass)
        fprintf(o,
                "<h2>Verdict: PASS</h2>\n<p>No compliance finding in the %" PRIu64
                " records examined.</p>\n",
                s->records_in_window);
    else
        fprintf(o, "<h2>Verdict: FAIL</h2>\n<p>%" PRIu64 " compliance finding%s.</p>\n",
                s->compliance, s->compliance == 1 ? "" : "s");
    fprintf(o,
            "<table id=\"summary\"><tbody>\n"
            "<tr><th>Pens</th><td class=\"n\" id=\"n-pens\">%" PRIu64 "</td>"
            "<th>Records examined</th><td class=\"n\" id=\"n-records\">%" PRIu64 "</td></tr>\n"
            "<tr><th>Treatments</th><td class=\"n\" id=\"n-treatments\">%" PRIu64 "</td>"
            "<th>Cartridges</th><td class=\"n\" id=\"n-cartridges\">%" PRIu64 "</td></tr>\n"
            "<tr><th>Compliance findings</th><td class=\"n\" id=\"n-compliance\">%" PRIu64 "</td>"
            "<th>Integrity findings</th><td class=\"n\" id=\"n-integrity\">%" PRIu64 "</td></tr>\n"
            "<tr><th>Logs verified</th><td class=\"n\" id=\"n-verified\">%" PRIu64 "</td>"
            "<th>Logs broken</th><td class=\"n\" id=\"n-broken\">%" PRIu64 "</td></tr>\n",
            s->pens, s->records_in_window, s->treatments, s->cartridges, s->compliance,
            s->integrity, s->logs_verified, s->logs_broken);
    fputs("<tr><th>Findings by kind</th><td colspan=\"3\" id=\"by-kind\">", o);
    int any = 0;
    for (uint32_t k = 0; k < PENLINK_FIND_KINDS; k++) {
        const char *name = penlink_finding_kind_name(k);
        if (s->findings[k] && name)
            fprintf(o, "%s<span data-kind=\"%s\" data-count=\"%" PRIu64 "\">%s %" PRIu64 "</span>",
                    any++ ? ", " : "", name, s->findings[k], name, s->findings[k]);
    }
    fputs(any ? "" : "none", o);
    fputs("</td></tr>\n</tbody></table>\n</section>\n", o);
}

/* A report's findings: those that fail the audit, then the others. */
static void findings_table(FILE *o, const char *id, const html_report *h, int part)
{
    if (h->n_part[part] + h->n_part[part + 1] == 0) {
        fprintf(o, "<p id=\"%s\" class=\"none\">None.</p>\n", id);
        return;
    }
    fprintf(o,
            "<table id=\"%s\" class=\"list\"><thead><tr><th>Finding</th><th>Pen</th>"
            "<th class=\"n\">Seq</th><th>Time (pen)</th><th>Detail</th></tr></thead><tbody>\n",
            id);
    fwrite(h->part_buf[part], 1, h->part_len[part], o);
    fwrite(h->part_buf[part + 1], 1, h->part_len[part + 1], o);
    fputs("</tbody></table>\n", o);
}

/* Treatments (dark) and cartridges (light) per week, one chart per pen. */
static void weekly_charts(FILE *o, const html_report *h)
{
    for (size_t i = 0; i < h->n_weeks;) {
        size_t j = i;
        uint64_t top = 1;
        while (j < h->n_weeks && strcmp(h->weeks[j].pen, h->weeks[i].pen) == 0) {
            if (h->weeks[j].treatments > top)
                top = h->weeks[j].treatments;
            if (h->weeks[j].cartridges > top)
                top = h->weeks[j].cartridges;
            j++;
        }
        size_t n = j - i;
        double plot_w = CHART_W - MARGIN_L - 8, plot_h = CHART_H - MARGIN_B - MARGIN_T;
        double slot = plot_w / (double)n, bw = slot * 0.38 < BAR_MAX ? slot * 0.38 : BAR_MAX;
        fputs("<div class=\"chart\"><h3>Treatments and cartridges per week: ", o);
        html_text(o, h->weeks[i].pen);
        fputs("</h3>\n<svg class=\"weekly\" data-pen=\"", o);
        html_text(o, h->weeks[i].pen);
        fprintf(o, "\" viewBox=\"0 0 %d %d\" role=\"img\">\n", CHART_W, CHART_H);
        fprintf(o,
                "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
                "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%" PRIu64 "</text>"
                "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">0</text>\n",
                MARGIN_L, CHART_H - MARGIN_B, CHART_W - 8, CHART_H - MARGIN_B, MARGIN_L - 4,
                MARGIN_T + 4, top, MARGIN_L - 4, CHART_H - MARGIN_B);
        for (size_t k = 0; k < n; k++) {
            const week *w = &h->weeks[i + k];
            double x = MARGIN_L + slot * (double)k + (slot - 2 * bw) / 2;
            double ht = plot_h * (double)w->treatments / (double)top;
            double hc = plot_h * (double)w->cartridges / (double)top;
            fputs("<rect class=\"bar treatments\" data-pen=\"", o);
            html_text(o, w->pen);
            fprintf(o,
                    "\" data-week=\"%s\" data-count=\"%" PRIu64 "\" x=\"%.1f\" y=\"%.1f\" "
                    "width=\"%.1f\" height=\"%.1f\"><title>%s: %" PRIu64 " treatments</title>"
                    "</rect>",
                    w->period, w->treatments, x, CHART_H - MARGIN_B - ht, bw, ht, w->period,
                    w->treatments);
            fputs("<rect class=\"bar cartridges\" data-pen=\"", o);
            html_text(o, w->pen);
            fprintf(o,
                    "\" data-week=\"%s\" data-count=\"%" PRIu64 "\" x=\"%.1f\" y=\"%.1f\" "
                    "width=\"%.1f\" height=\"%.1f\"><title>%s: %" PRIu64 " cartridges</title>"
                    "</rect>",
                    w->period, w->cartridges, x + bw, CHART_H - MARGIN_B - hc, bw, hc, w->period,
                    w->cartridges);
            if (n <= 26 || k % (n / 26 + 1) == 0)
                fprintf(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>", x + bw,
                        CHART_H - MARGIN_B + 14, w->period);
            fputc('\n', o);
        }
        fprintf(o,
                "<text x=\"%d\" y=\"%d\">&#9632; treatments</text><text x=\"%d\" y=\"%d\" "
                "style=\"fill:#6b95bd\">&#9632; cartridges</text>\n</svg></div>\n",
                MARGIN_L, CHART_H - 4, MARGIN_L + 90, CHART_H - 4);
        i = j;
    }
}

static void histogram(FILE *o, const char *cls, const char *title, const uint64_t *bins, size_t n,
                      int step, const char *unit)
{
    uint64_t top = 1;
    for (size_t i = 0; i < n; i++)
        if (bins[i] > top)
            top = bins[i];
    double plot_w = CHART_W - MARGIN_L - 8, plot_h = CHART_H - MARGIN_B - MARGIN_T;
    double slot = plot_w / (double)n;
    fprintf(o,
            "<div class=\"chart\"><h3>%s</h3>\n<svg class=\"%s\" viewBox=\"0 0 %d %d\" "
            "role=\"img\">\n<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>"
            "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%" PRIu64 "</text>\n",
            title, cls, CHART_W, CHART_H, MARGIN_L, CHART_H - MARGIN_B, CHART_W - 8,
            CHART_H - MARGIN_B, MARGIN_L - 4, MARGIN_T + 4, top);
    for (size_t i = 0; i < n; i++) {
        double x = MARGIN_L + slot * (double)i + 1, hb = plot_h * (double)bins[i] / (double)top;
        fprintf(o,
                "<rect class=\"hist\" data-from=\"%zu\" data-count=\"%" PRIu64 "\" x=\"%.1f\" "
                "y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"><title>%zu%s%s: %" PRIu64
                "</title></rect>",
                i * (size_t)step, bins[i], x, CHART_H - MARGIN_B - hb, slot - 2, hb,
                i * (size_t)step, i + 1 < n ? "&ndash;" : "+ ", unit, bins[i]);
        if (i % 2 == 0)
            fprintf(o, "<text x=\"%.1f\" y=\"%d\">%zu</text>", x, CHART_H - MARGIN_B + 14,
                    i * (size_t)step);
        fputc('\n', o);
    }
    fprintf(o, "<text x=\"%d\" y=\"%d\">%s</text>\n</svg></div>\n", CHART_W - 120, CHART_H - 4,
            unit);
}

/* One row per reused cartridge: a dot at each treatment that used it, in time. */
static void reuse_timeline(FILE *o, const html_report *h)
{
    if (h->n_reuse == 0) {
        fputs("<div class=\"chart\"><h3>Cartridge reuse over time</h3><p class=\"none\">No "
              "cartridge was reused.</p></div>\n",
              o);
        return;
    }
    int64_t lo = h->dots[0].time_ms, hi = lo;
    for (size_t i = 0; i < h->n_dots; i++) {
        if (h->dots[i].time_ms < lo)
            lo = h->dots[i].time_ms;
        if (h->dots[i].time_ms > hi)
            hi = h->dots[i].time_ms;
    }
    if (hi == lo)
        hi = lo + 1;
    int row_h = 16, label_w = 150, height = MARGIN_T + row_h * (int)h->n_reuse + 30;
    double plot_w = CHART_W - label_w - 12;
    fprintf(o,
            "<div class=\"chart\"><h3>Cartridge reuse over time</h3>\n<svg class=\"reuse\" "
            "viewBox=\"0 0 %d %d\" role=\"img\">\n",
            CHART_W, height);
    for (size_t r = 0; r < h->n_reuse; r++) {
        int y = MARGIN_T + row_h * (int)r + row_h / 2;
        double x0 = -1, x1 = -1;
        for (size_t i = 0; i < h->n_dots; i++) {
            if (h->dots[i].row != r)
                continue;
            double x = label_w + plot_w * (double)(h->dots[i].time_ms - lo) / (double)(hi - lo);
            x0 = x0 < 0 || x < x0 ? x : x0;
            x1 = x > x1 ? x : x1;
        }
        fprintf(o,
                "<text x=\"0\" y=\"%d\" class=\"small\">%s</text><line class=\"span\" "
                "x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>\n",
                y + 3, h->reuse_cart[r], x0, y, x1, y);
        for (size_t i = 0; i < h->n_dots; i++) {
            const use_dot *d = &h->dots[i];
            if (d->row != r)
                continue;
            double x = label_w + plot_w * (double)(d->time_ms - lo) / (double)(hi - lo);
            fputs("<circle class=\"use\" data-pen=\"", o);
            html_text(o, d->pen);
            fprintf(o, "\" data-seq=\"%" PRIu64 "\" cx=\"%.1f\" cy=\"%d\" r=\"4\"><title>", d->seq,
                    x, y);
            html_text(o, d->pen);
            fprintf(o, " seq %" PRIu64 ", ", d->seq);
            when(o, d->time_ms);
            fputs("</title></circle>\n", o);
        }
    }
    char a[40], b[40];
    cli_time_short(lo, a, sizeof a);
    cli_time_short(hi, b, sizeof b);
    fprintf(o,
            "<text x=\"%d\" y=\"%d\">%.10s</text><text x=\"%d\" y=\"%d\" "
            "text-anchor=\"end\">%.10s</text>\n</svg></div>\n",
            label_w, height - 6, a, CHART_W - 12, height - 6, b);
}

int html_write(html_report *h, FILE *o, const html_meta *m, const penlink_audit_summary *s,
               const char *digest)
{
    char buf[64];
    for (int i = 0; i < PARTS; i++)
        fflush(h->part[i]);
    fflush(h->config);
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n", o);
    snprintf(buf, sizeof buf, "penlink %s", m->version);
    meta_tag(o, "generator", buf);
    meta_tag(o, "penlink-report", m->format == 1 ? "1" : "2");
    meta_tag(o, "penlink-version", m->version);
    meta_tag(o, "penlink-pen", m->pen ? m->pen : "");
    snprintf(buf, sizeof buf, "%" PRId64, m->since_ms);
    meta_tag(o, "penlink-since", m->has_since ? buf : "");
    snprintf(buf, sizeof buf, "%" PRId64, m->until_ms);
    meta_tag(o, "penlink-until", m->has_until ? buf : "");
    meta_tag(o, "penlink-tz", m->tz);
    meta_tag(o, "penlink-archive", m->archive);
    meta_tag(o, "penlink-operator", m->operator_);
    snprintf(buf, sizeof buf, "%" PRId64, m->generated_ms);
    meta_tag(o, "penlink-generated", buf);
    meta_tag(o, "penlink-digest", digest);
    if (m->format != 1)
        meta_tag(o, "penlink-verify-claims", m->claims ? m->claims : "[]");
    fprintf(o, "<title>penlink audit report</title>\n<style>%s</style>\n</head>\n<body>\n", css);
    write_header(o, h, m, digest);
    write_verdict(o, s);
    fputs("<section id=\"findings-section\">\n<h2>Findings</h2>\n", o);
    findings_table(o, "findings", h, PART_CART);
    fputs("</section>\n<section id=\"charts\">\n<h2>Usage</h2>\n", o);
    weekly_charts(o, h);
    if (h->n_weeks == 0)
        fputs("<p class=\"none\">No treatment in the window.</p>\n", o);
    histogram(o, "depth", "Mean depth of the treatments (time-weighted)", h->depth_bins, DEPTH_BINS,
              DEPTH_BIN_UM, "um");
    histogram(o, "duration", "Duration of the treatments", h->duration_bins, DURATION_BINS,
              DURATION_BIN_MIN, "min");
    reuse_timeline(o, h);
    fputs("</section>\n<section id=\"integrity-section\">\n<h2>Integrity</h2>\n", o);
    findings_table(o, "integrity", h, PART_INTEG);
    fputs("</section>\n<section id=\"config-section\">\n<h2>Configuration history</h2>\n", o);
    if (h->n_config) {
        fputs("<table id=\"config\" class=\"list\"><thead><tr><th>Pen</th><th>When "
              "(host)</th><th>How</th>"
              "<th>Who</th><th class=\"n\">Revision</th><th>Old &rarr; new</th></tr></thead>"
              "<tbody>\n",
              o);
        fwrite(h->config_buf, 1, h->config_len, o);
        fputs("</tbody></table>\n", o);
    } else {
        fputs("<p id=\"config\" class=\"none\">None.</p>\n", o);
    }
    fprintf(o,
            "</section>\n<section id=\"appendix-section\">\n<h2>Appendix: every treatment "
            "(%" PRIu64 ")</h2>\n",
            h->n_treatments);
    fputs("<table id=\"appendix\" class=\"list\"><thead><tr><th>Pen</th><th "
          "class=\"n\">Seq</th><th>Start</th>"
          "<th class=\"n\">Minutes</th><th class=\"n\">Depth um</th><th class=\"n\">Mean</th>"
          "<th class=\"n\">Speed</th><th>Cartridge</th><th class=\"n\">Uses</th>"
          "<th class=\"n\">Rev</th></tr></thead><tbody>\n",
          o);
    if (copy_stream(o, h->appendix) != 0)
        return -1;
    fprintf(o,
            "</tbody></table>\n</section>\n<footer><p class=\"note\">Data digest (SHA-256) "
            "<code>%s</code>. Check this report against the archive with <code>penlink audit "
            "--check-report FILE</code>.</p></footer>\n</body>\n</html>\n",
            digest);
    return ferror(o) ? -1 : 0;
}
