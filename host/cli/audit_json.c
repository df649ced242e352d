/*
 * The audit's results as JSON objects, one per line of `penlink audit
 * --format json` and of the HTML report's data digest, and as CSV rows for
 * export: built in one place, so that the formats cannot disagree. Every
 * string from a pen or the archive crosses the CLI's boundary here
 * (cli_json_str, cli_csv_text): a byte that is not UTF-8 never drops a key.
 */
#define _POSIX_C_SOURCE 200809L
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_time.h"

static void fmt_time(int64_t ms, char *buf, size_t cap)
{
    cli_time_iso(ms, buf, cap);
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
    json_object_set_new(j, "serial", cli_json_str(t->serial));
    json_object_set_new(j, "start_seq", json_integer((json_int_t)t->start_seq));
    json_object_set_new(j, "end_seq", json_integer((json_int_t)t->end_seq));
    json_object_set_new(j, "start", json_string(s));
    json_object_set_new(j, "end", json_string(e));
    json_object_set_new(j, "start_ms", json_integer(t->start_ms));
    json_object_set_new(j, "end_ms", json_integer(t->end_ms));
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

int cli_finding_has_cartridge(const penlink_finding *f)
{
    return f->kind == PENLINK_FIND_REUSE || f->kind == PENLINK_FIND_REFUSED ||
           f->kind == PENLINK_FIND_NO_CARTRIDGE || f->kind == PENLINK_FIND_OUT_OF_LIMITS;
}

/* A finding's id: its kind, pen and seq, which name it in every format. */
void cli_finding_id(const penlink_finding *f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", f->id);
}

/* A finding as one JSON object: the JSON format's line, and the HTML report's data. */
void *cli_finding_json(const penlink_finding *f)
{
    const char *kind = f->name ? f->name : penlink_finding_kind_name(f->kind);
    char t[40] = "", cs[24];
    if (f->time_ms)
        fmt_time(f->time_ms, t, sizeof t);
    fmt_serial(f->cartridge_serial, cs, sizeof cs);
    json_t *j = json_object();
    json_object_set_new(j, "type", json_string("finding"));
    json_object_set_new(j, "id", cli_json_str(f->id));
    json_object_set_new(j, "report", json_string(f->report));
    json_object_set_new(j, "finding", cli_json_str(kind ? kind : "unknown"));
    json_object_set_new(j, "compliance", json_boolean(f->compliance));
    json_object_set_new(j, "serial", cli_json_str(f->serial));
    json_object_set_new(j, "seq", cli_json_u64(f->seq));
    json_object_set_new(j, "time", f->time_ms ? json_string(t) : json_null());
    json_object_set_new(j, "time_ms", f->time_ms ? json_integer(f->time_ms) : json_null());
    if (cli_finding_has_cartridge(f)) {
        json_object_set_new(j, "cartridge_serial", json_string(cs));
        json_object_set_new(j, "cartridge_uses", json_integer(f->cartridge_uses));
    }
    if (f->count)
        json_object_set_new(j, "count", cli_json_u64(f->count));
    if (f->config_revision)
        json_object_set_new(j, "config_revision", json_integer(f->config_revision));
    if (f->value)
        json_object_set_new(j, "value", json_integer(f->value));
    if (f->n_evidence) {
        json_t *ev = json_array();
        for (size_t i = 0; i < f->n_evidence; i++) {
            char et[40];
            fmt_time(f->evidence[i].time_ms, et, sizeof et);
            json_array_append_new(ev, json_pack("{s:o, s:I, s:s, s:I}", "serial",
                                                cli_json_str(f->evidence[i].serial), "seq",
                                                (json_int_t)f->evidence[i].seq, "start", et,
                                                "start_ms", (json_int_t)f->evidence[i].time_ms));
        }
        json_object_set_new(j, "treatments", ev);
    }
    if (f->repeats) {
        char a[48], b[48];
        fmt_time(f->raised_ms, a, sizeof a);
        fmt_time(f->raised_last_ms, b, sizeof b);
        json_object_set_new(j, "raised", json_string(a));
        json_object_set_new(j, "raised_last", json_string(b));
        json_object_set_new(j, "raised_ms", json_integer(f->raised_ms));
        json_object_set_new(j, "raised_last_ms", json_integer(f->raised_last_ms));
        json_object_set_new(j, "repeats", json_integer((json_int_t)f->repeats));
    }
    json_object_set_new(j, "detail", cli_json_str(f->detail));
    if (f->n_annotations) {
        json_t *notes = json_array();
        for (size_t i = 0; i < f->n_annotations; i++) {
            const penlink_annotation *a = &f->annotations[i];
            char at[48];
            fmt_time(a->at_ms, at, sizeof at);
            json_array_append_new(
                notes, json_pack("{s:s, s:I, s:o, s:o}", "at", at, "at_ms", (json_int_t)a->at_ms,
                                 "by", cli_json_str(a->author), "text", cli_json_str(a->text)));
        }
        json_object_set_new(j, "annotations", notes);
    }
    return j;
}

void *cli_usage_json(const penlink_usage *u)
{
    char ps[40];
    fmt_time(u->period_start_ms, ps, sizeof ps);
    return json_pack("{s:s, s:o, s:s, s:s, s:I, s:I, s:f, s:I}", "type", "usage", "serial",
                     cli_json_str(u->serial), "period", u->period, "period_start", ps,
                     "period_start_ms", (json_int_t)u->period_start_ms, "treatments",
                     (json_int_t)u->treatments, "treatment_minutes",
                     (double)u->treatment_ms / 60000.0, "cartridges", (json_int_t)u->cartridges);
}

void *cli_config_json(const penlink_config_entry *e)
{
    char t[40];
    fmt_time(e->at_ms, t, sizeof t);
    json_t *j = json_pack("{s:s, s:o, s:s, s:I, s:o, s:o, s:o, s:I}", "type", "config", "serial",
                          cli_json_str(e->serial), "at", t, "at_ms", (json_int_t)e->at_ms, "source",
                          cli_json_str(e->source), "user", cli_json_str(e->user), "host",
                          cli_json_str(e->host), "revision", (json_int_t)e->config.revision);
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    for (int old = 0; old <= e->has_old; old++) {
        const penlink_config *c = old ? &e->old_config : &e->config;
        json_t *v = json_object();
        for (size_t i = 0; i < n; i++) {
            if (!(c->present & k[i].bit))
                continue;
            json_object_set_new(v, k[i].name, cli_config_value_json(c, &k[i]));
        }
        if (old)
            json_object_set_new(v, "revision", json_integer(c->revision));
        json_object_set_new(j, old ? "old" : "values", v);
    }
    return j;
}

void *cli_verification_json(const penlink_verification *v)
{
    char t[40] = "";
    if (v->have && !v->computed)
        fmt_time(v->at_ms, t, sizeof t);
    const char *state = v->have ? v->result : !v->pinned ? "unsigned" : "not_verified";
    json_t *o = json_pack("{s:s, s:o, s:o, s:I}", "type", "verification", "serial",
                          cli_json_str(v->serial), "state", cli_json_str(state),
                          "pull_verified_through", (json_int_t)v->signed_through);
    if (v->have) {
        /* computed by the audit: no time, so that the data (and its digest) is the archive's */
        json_object_set_new(o, v->computed ? "verified_by" : "verified_at",
                            json_string(v->computed ? "audit" : t));
        if (!v->computed)
            json_object_set_new(o, "verified_at_ms", json_integer(v->at_ms));
        json_object_set_new(o, "through_seq", cli_json_u64(v->through_seq));
        json_object_set_new(o, "records", json_integer((json_int_t)v->records));
        if (v->detail[0])
            json_object_set_new(o, "detail", cli_json_str(v->detail));
    }
    return o;
}

#define SCOPE_ROWS "not compared (penlink verify compares them with the chunks)"

void *cli_audit_scope_json(uint64_t chunks, void *claims)
{
    json_t *c = claims ? claims : json_array();
    return json_pack("{s:s, s:s, s:o, s:s, s:s, s:o}", "type", "audit_scope", "records_from",
                     "chunks", "chunks", cli_json_u64(chunks), "chain_and_heads",
                     "checked by this audit", "record_rows", SCOPE_ROWS, "verify_claims", c);
}

void *cli_verify_claims_json(penlink_archive *ar, const penlink_verification *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        penlink_verification st = PENLINK_VERIFICATION_INIT;
        if (penlink_archive_verification_get(ar, v[i].serial, &st) != PENLINK_OK) {
            json_decref(a);
            return NULL;
        }
        json_t *o = json_pack("{s:o, s:o}", "serial", cli_json_str(v[i].serial), "result",
                              cli_json_str(st.have ? st.result : "none"));
        if (o && st.have) {
            char t[40];
            fmt_time(st.at_ms, t, sizeof t);
            json_object_set_new(o, "verified_at", json_string(t));
            json_object_set_new(o, "verified_at_ms", json_integer(st.at_ms));
            json_object_set_new(o, "through_seq", cli_json_u64(st.through_seq));
        }
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

void cli_audit_pens_signing(const penlink_verification *v, size_t n, size_t *signing,
                            size_t *unsigned_pens)
{
    *signing = *unsigned_pens = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].pinned)
            (*signing)++;
        else
            (*unsigned_pens)++;
    }
}

void cli_audit_scope_pens_json(void *scope, const penlink_verification *v, size_t n)
{
    size_t signing, unsigned_pens;
    cli_audit_pens_signing(v, n, &signing, &unsigned_pens);
    json_object_set_new(scope, "pens_chain_and_heads_checked", json_integer((json_int_t)signing));
    json_object_set_new(scope, "pens_unsigned", json_integer((json_int_t)unsigned_pens));
}

void cli_audit_scope_words(char *buf, size_t cap, const penlink_verification *v, size_t n)
{
    size_t signing, unsigned_pens;
    cli_audit_pens_signing(v, n, &signing, &unsigned_pens);
    int k = snprintf(buf, cap, "%zu pen%s signing: chain and signed heads checked", signing,
                     signing == 1 ? "" : "s");
    if (unsigned_pens && k >= 0 && (size_t)k < cap)
        snprintf(buf + k, cap - (size_t)k,
                 "; %zu pen%s unsigned: no chain or signed heads to check", unsigned_pens,
                 unsigned_pens == 1 ? "" : "s");
}

uint64_t cli_audit_chunks(const penlink_verification *v, size_t n)
{
    uint64_t chunks = 0;
    for (size_t i = 0; i < n; i++)
        chunks += v[i].chunks;
    return chunks;
}

void cli_audit_scope_text(FILE *out, const penlink_verification *v, size_t n, const void *claims)
{
    char pens[CLI_SCOPE_WORDS];
    cli_audit_scope_words(pens, sizeof pens, v, n);
    fprintf(out,
            "Records: read from the pens' chunks (%" PRIu64
            " chunks; %s); record rows not compared (run 'penlink verify')\n",
            cli_audit_chunks(v, n), pens);
    fprintf(out, "  verify's claim (the last stored penlink verify, not used by this audit):\n");
    size_t i;
    json_t *o;
    if (!claims || json_array_size(claims) == 0)
        fprintf(out, "    none\n");
    json_array_foreach((json_t *)claims, i, o)
    {
        const char *result = json_string_value(json_object_get(o, "result"));
        const char *at = json_string_value(json_object_get(o, "verified_at"));
        json_t *through = json_object_get(o, "through_seq");
        fprintf(out, "    %-12s ", cli_safe(json_string_value(json_object_get(o, "serial"))));
        if (!at)
            fprintf(out, "no verify stored\n");
        else if (json_is_integer(through))
            fprintf(out, "%s at %s, through seq %" JSON_INTEGER_FORMAT "\n", cli_safe(result), at,
                    json_integer_value(through));
        else
            fprintf(out, "%s at %s\n", cli_safe(result), at);
    }
}

/* A device key replaced on purpose (penlink keys replace): in the integrity
 * report whatever the window, as it is about the pen, not a treatment. */
void *cli_key_replacement_json(const penlink_key_replacement *r)
{
    char t[48], old_hex[65], new_hex[65];
    char old_fp[PENLINK_KEY_FINGERPRINT_LEN], new_fp[PENLINK_KEY_FINGERPRINT_LEN];
    fmt_time(r->at_ms, t, sizeof t);
    penlink_key_to_hex(r->old_key, old_hex);
    penlink_key_to_hex(r->new_key, new_hex);
    penlink_key_to_fingerprint(r->old_key, old_fp);
    penlink_key_to_fingerprint(r->new_key, new_fp);
    return json_pack("{s:s, s:s, s:o, s:s, s:I, s:o, s:o, s:o, s:s, s:s, s:s, s:s, s:o, s:I}",
                     "type", "key_replacement", "report", "integrity", "serial",
                     cli_json_str(r->serial), "at", t, "at_ms", (json_int_t)r->at_ms, "user",
                     cli_json_str(r->user), "host", cli_json_str(r->host), "reason",
                     cli_json_str(r->reason), "old_key", old_hex, "old_fingerprint", old_fp,
                     "new_key", new_hex, "new_fingerprint", new_fp, "from_seq",
                     cli_json_u64(r->from_seq), "heads_before", (json_int_t)r->heads_before);
}

/* The summary, one set of figures for the table and JSON: both come from the
 * library's summary (the verdict is the library's), so they cannot disagree. */
void *cli_summary_json(const penlink_audit_summary *s)
{
    json_t *by = json_object();
    for (uint32_t k = 0; k < PENLINK_FIND_KINDS; k++) {
        const char *name = penlink_finding_kind_name(k);
        if (s->findings[k] && name)
            json_object_set_new(by, name, json_integer((json_int_t)s->findings[k]));
    }
    json_t *logs =
        json_pack("{s:I, s:I, s:I, s:I}", "verified", (json_int_t)s->logs_verified, "broken",
                  (json_int_t)s->logs_broken, "not_verified", (json_int_t)s->logs_not_verified,
                  "unsigned", (json_int_t)s->logs_unsigned);
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, "
                     "s:s}",
                     "type", "summary", "pens", (json_int_t)s->pens, "records",
                     (json_int_t)s->records, "records_in_window", (json_int_t)s->records_in_window,
                     "treatments", (json_int_t)s->treatments, "cartridges",
                     (json_int_t)s->cartridges, "reuses", (json_int_t)s->reuses, "refusals",
                     (json_int_t)s->refusals, "no_cartridge", (json_int_t)s->no_cartridge,
                     "out_of_limits", (json_int_t)s->out_of_limits, "limits_unknown",
                     (json_int_t)s->limits_unknown, "integrity", (json_int_t)s->integrity,
                     "compliance", (json_int_t)s->compliance, "findings", by, "logs", logs,
                     "verdict", s->verdict == PENLINK_VERDICT_PASS ? "pass" : "fail");
}
