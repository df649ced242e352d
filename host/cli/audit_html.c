/*
 * penlink audit --format html, and --check-report: the report document, and
 * the check an inspector runs on a report handed over to them.
 *
 * The report prints a SHA-256 of its data: the canonical data is the
 * audit's JSON lines (what `--format json` writes, the same builders), in
 * the order the audit produces them, then the configuration history, the
 * device keys replaced (penlink keys replace) and the summary. What the report was made of (pen,
 * window, zone, archive) and by (operator, time, penlink version) is in its meta tags,
 * percent-encoded so that any serial or path comes back exactly (report_html.c). --check-report
 * makes the report again from the archive with those, and says whether the data still gives the
 * same digest, and whether the document is byte for byte the one penlink wrote.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "cli.h"
#include "cli_time.h"
#include "clock.h"
#include "report_html.h"

/* the meta tags are in the document's head; verify's claims (about 130 bytes a
 * pen) may make it long */
#define META_SCAN_BYTES (4u << 20)
#define META_VALUE_MAX 1024
#define DIGEST_HEX (2 * crypto_hash_sha256_BYTES + 1)

typedef struct hrun {
    html_report *h;
    crypto_hash_sha256_state sha;
    int failed;
    penlink_verification *v; /* the pens verified: whose verify claims the report gives */
    size_t n_v, cap_v;
    int format; /* of the report made or checked: 1 digests the forms before --json schema 1 */
} hrun;

/* The ISO times to which --json schema 1 added a *_ms twin (docs/json.md). */
static const char *const schema1_twins[] = { "time",   "start",       "end",          "at",
                                             "raised", "raised_last", "period_start", "since",
                                             "until",  "verified_at" };

/* @p v as a penlink before --json schema 1 wrote it, which is what a report of
 * format 1 digested: the pen named "pen", no *_ms twin beside an ISO time but
 * a treatment's start_ms (it had that one), no "schema". A new value. */
static json_t *v0_form(json_t *v, int top)
{
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            if (!a || json_array_append_new(a, v0_form(x, 0)) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    if (!json_is_object(v))
        return json_incref(v);
    json_t *o = json_object();
    const char *k;
    json_t *x;
    const char *t = top ? json_string_value(json_object_get(v, "type")) : NULL;
    json_object_foreach(v, k, x)
    {
        if (strcmp(k, "schema") == 0)
            continue;
        size_t n = strlen(k);
        int twin = 0;
        if (n > 3 && strcmp(k + n - 3, "_ms") == 0)
            for (size_t i = 0; i < sizeof schema1_twins / sizeof schema1_twins[0]; i++)
                if (strlen(schema1_twins[i]) == n - 3 && strncmp(k, schema1_twins[i], n - 3) == 0 &&
                    json_object_get(v, schema1_twins[i]))
                    twin = 1;
        if (twin && !(t && strcmp(t, "treatment") == 0 && strcmp(k, "start_ms") == 0))
            continue;
        if (!o ||
            json_object_set_new(o, strcmp(k, "serial") == 0 ? "pen" : k, v0_form(x, 0)) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* Adds one JSON line to the data digest, and frees it. */
static void digest(hrun *r, void *json)
{
    if (json && r->format == 1) {
        json_t *old = v0_form(json, 1);
        json_decref(json);
        json = old;
    }
    char *s = json ? json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!s) {
        r->failed = 1;
    } else {
        crypto_hash_sha256_update(&r->sha, (const unsigned char *)s, strlen(s));
        crypto_hash_sha256_update(&r->sha, (const unsigned char *)"\n", 1);
    }
    free(s);
    json_decref(json);
}

static int h_treatment(void *u, const penlink_treatment *t)
{
    hrun *r = u;
    digest(r, cli_treatment_json(t));
    r->failed |= html_treatment(r->h, t) != 0;
    return 0;
}

static int h_finding(void *u, const penlink_finding *f)
{
    hrun *r = u;
    char id[128];
    cli_finding_id(f, id, sizeof id);
    digest(r, cli_finding_json(f));
    r->failed |= html_finding(r->h, f, id) != 0;
    return 0;
}

static int h_usage(void *u, const penlink_usage *us)
{
    hrun *r = u;
    digest(r, cli_usage_json(us));
    r->failed |= html_usage(r->h, us) != 0;
    return 0;
}

static int h_verification(void *u, const penlink_verification *v)
{
    hrun *r = u;
    digest(r, cli_verification_json(v));
    r->failed |= html_verification(r->h, v) != 0;
    if (r->n_v == r->cap_v) {
        size_t cap = r->cap_v ? 2 * r->cap_v : 8;
        void *p = realloc(r->v, cap * sizeof *r->v);
        if (!p) {
            r->failed = 1;
            return 0;
        }
        r->v = p;
        r->cap_v = cap;
    }
    r->v[r->n_v++] = *v;
    return 0;
}

static int h_key_replacement(void *u, const penlink_key_replacement *k)
{
    hrun *r = u;
    digest(r, cli_key_replacement_json(k));
    r->failed |= html_key_replacement(r->h, k) != 0;
    return 0;
}

static int h_config(void *u, const penlink_config_entry *e)
{
    hrun *r = u;
    digest(r, cli_config_json(e));
    r->failed |= html_config(r->h, e) != 0;
    return 0;
}

/* The parameters as the first line of the data: a report of another window is other data. */
static void *params_json(const html_meta *m)
{
    char a[48] = "", b[48] = "";
    if (m->has_since)
        cli_time_iso(m->since_ms, a, sizeof a);
    if (m->has_until)
        cli_time_iso(m->until_ms, b, sizeof b);
    /* who made it and when are in the digest too: a report's digest, written down when it
     * is handed over, then binds them (nothing else can: a report is not signed) */
    return json_pack("{s:s, s:o, s:o, s:o, s:s, s:o, s:I}", "type", "audit", "serial",
                     m->pen ? json_string(m->pen) : json_null(), "since",
                     m->has_since ? json_string(a) : json_null(), "until",
                     m->has_until ? json_string(b) : json_null(), "time_zone", m->tz, "operator",
                     cli_json_str(m->operator_ ? m->operator_ : ""), "generated_ms",
                     (json_int_t)m->generated_ms);
}

/* Audits @p archive as @p m says and writes the report to @p out; *@p hex
 * gets the data digest, *@p verdict the verdict. Returns an exit code. */
/* The scope line of the data (format 2): the chunks read and verify's claims as
 * the report gives them (@p claims, its JSON text). */
static void digest_scope(hrun *r, const char *claims)
{
    json_t *c = json_loads(claims, 0, NULL);
    if (!c || !json_is_array(c)) {
        json_decref(c);
        r->failed = 1;
        return;
    }
    digest(r, cli_audit_scope_json(cli_audit_chunks(r->v, r->n_v), c));
}

/* What --check-report says of the verify claims a report carries: kept as made. */
#define CHECK_CLAIMS                                                                               \
    "the verdicts penlink verify had stored when the report was made, as the report gives "        \
    "them: not checked again (run 'penlink verify' for the archive as it is now)"

static int make_report(struct cli *c, const char *archive, const html_meta *m_in, FILE *out,
                       char hex[DIGEST_HEX], penlink_audit_verdict *verdict)
{
    html_meta mm = *m_in, *m = &mm;
    char *claims_text = NULL;
    hrun r;
    memset(&r, 0, sizeof r);
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    f.serial = m->pen;
    f.has_since = m->has_since;
    f.since_ms = m->since_ms;
    f.has_until = m->has_until;
    f.until_ms = m->until_ms;
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_treatment = h_treatment,
                            .on_finding = h_finding,
                            .on_usage = h_usage,
                            .user = &r,
                            .usage_by = PENLINK_PERIOD_WEEK,
                            .local_time = 1,
                            .on_verification = h_verification };
    penlink_audit_summary sum = PENLINK_AUDIT_SUMMARY_INIT;
    penlink_archive *ar = NULL;
    int rc = EXIT_OK;
    if (sodium_init() < 0)
        return cli_error(c, EXIT_INTERNAL, "audit: libsodium failed to initialise");
    crypto_hash_sha256_init(&r.sha);
    r.format = m->format;
    r.h = html_report_new();
    if (!r.h)
        return cli_error(c, EXIT_INTERNAL, "audit: out of memory");
    int st = penlink_archive_open_readonly(c->ctx, archive, &ar);
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "audit: cannot open the archive", st);
        goto out;
    }
    rc = cli_pen_check(c, ar, "audit", f.serial);
    if (rc != EXIT_OK)
        goto out;
    digest(&r, params_json(m));
    struct cli_work *work = cli_work_begin(c, NULL, 0);
    st = penlink_audit_run(ar, &f, &cb, &sum);
    cli_work_end(work);
    if (st == PENLINK_OK && m->format != 1 && !m->claims) {
        /* verify's stored verdicts now: the report keeps them (a meta tag), so that a later
         * penlink verify does not make it another report */
        json_t *claims = cli_verify_claims_json(ar, r.v, r.n_v);
        claims_text = claims ? json_dumps(claims, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(claims);
        if (!claims_text)
            st = PENLINK_ERR_IO;
        m->claims = claims_text;
    }
    if (st == PENLINK_OK && m->format != 1)
        digest_scope(&r, m->claims);
    if (st == PENLINK_OK)
        st = penlink_archive_config_history(ar, f.serial, h_config, &r);
    if (st == PENLINK_OK)
        st = penlink_archive_key_replacements(ar, f.serial, h_key_replacement, &r);
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "audit", st);
        goto out;
    }
    digest(&r, cli_summary_json(&sum));
    if (r.failed) {
        rc = cli_error(c, EXIT_INTERNAL, "audit: out of memory");
        goto out;
    }
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&r.sha, d);
    sodium_bin2hex(hex, DIGEST_HEX, d, sizeof d);
    if (html_write(r.h, out, m, &sum, hex) != 0 || fflush(out) != 0 || ferror(out))
        rc = cli_error(c, EXIT_IO, "audit: writing the report failed: %s", strerror(errno));
    *verdict = sum.verdict;
out:
    penlink_archive_close(ar);
    html_report_free(r.h);
    free(r.v);
    free(claims_text);
    return rc;
}

static void operator_name(char *buf, size_t cap)
{
    struct passwd *pw = getpwuid(geteuid());
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(buf, cap, "%s@%s", pw && pw->pw_name ? pw->pw_name : "?", host);
}

static const char *archive_path(const struct cli *c, char *buf, size_t cap)
{
    if (c->archive)
        return c->archive;
    if (penlink_archive_default_path(buf, cap) != PENLINK_OK)
        snprintf(buf, cap, "(the default archive)");
    return buf;
}

int cli_audit_html(struct cli *c, const penlink_archive_filter *f, const char *path,
                   const char *operator_)
{
    char who[320], where[1024], hex[DIGEST_HEX];
    if (!operator_) {
        operator_name(who, sizeof who);
        operator_ = who;
    }
    html_meta m = { f->serial,
                    f->has_since,
                    f->has_until,
                    f->since_ms,
                    f->until_ms,
                    cli_tz_name(),
                    archive_path(c, where, sizeof where),
                    operator_,
                    pc_wall_ms(),
                    penlink_version(),
                    2,
                    NULL };
    /* A report into a file is written beside it, then renamed: whole or absent.
     * Anything else that exists under that name (a device such as /dev/null, a
     * pipe, a symbolic link) is written into as it is: renaming over it would
     * replace it with a file. */
    char tmp[1100];
    FILE *out = stdout;
    struct stat st;
    int direct = path && lstat(path, &st) == 0 && !S_ISREG(st.st_mode);
    if (path) {
        int n = snprintf(tmp, sizeof tmp, "%s.part", path);
        if (n < 0 || (size_t)n >= sizeof tmp)
            return cli_error(c, EXIT_USAGE, "audit: the report's file name is too long");
        out = fopen(direct ? path : tmp, "w");
        if (!out)
            return cli_error(c, EXIT_IO, "audit: cannot write %s: %s", direct ? path : tmp,
                             strerror(errno));
    }
    penlink_audit_verdict verdict = PENLINK_VERDICT_FAIL;
    int rc = make_report(c, c->archive, &m, out, hex, &verdict);
    if (path) {
        if (fclose(out) != 0 && rc == EXIT_OK)
            rc = cli_error(c, EXIT_IO, "audit: writing %s failed: %s", direct ? path : tmp,
                           strerror(errno));
        if (!direct && rc == EXIT_OK && rename(tmp, path) != 0)
            rc = cli_error(c, EXIT_IO, "audit: cannot write %s: %s", path, strerror(errno));
        if (!direct && rc != EXIT_OK)
            unlink(tmp);
    }
    if (rc != EXIT_OK)
        return rc;
    if (path) { /* a notice: a JSON event with --json, nothing with --quiet */
        char text[1400];
        snprintf(text, sizeof text, "report written to %s (data digest %s); verdict %s", path, hex,
                 verdict == PENLINK_VERDICT_PASS ? "PASS" : "FAIL");
        cli_notice(c, text);
    }
    return verdict == PENLINK_VERDICT_PASS ? EXIT_OK : EXIT_FINDING;
}

/* ---- --check-report --------------------------------------------------- */

typedef struct report_meta {
    char version[64], pen[META_VALUE_MAX], since[32], until[32], tz[128];
    char archive[META_VALUE_MAX], operator_[META_VALUE_MAX], generated[32], digest[DIGEST_HEX];
    char *claims; /* META_SCAN_BYTES + 1 bytes, format 2 only */
    int format;   /* 1: made before the audit read the pens' chunks; 2 */
    int found;
} report_meta;

static int hexval(int ch)
{
    return isdigit(ch) ? ch - '0' : isxdigit(ch) ? tolower(ch) - 'a' + 10 : -1;
}

/* Reads the content="..." of meta tag @p name from the head in @p buf, its
 * percent-encoding undone. */
static int meta_value(const char *buf, const char *name, char *out, size_t cap)
{
    char key[96];
    snprintf(key, sizeof key, "<meta name=\"%s\" content=\"", name);
    const char *p = strstr(buf, key);
    if (!p)
        return -1;
    p += strlen(key);
    size_t n = 0;
    while (*p && *p != '"' && n + 1 < cap) {
        if (p[0] == '%' && hexval((unsigned char)p[1]) >= 0 && hexval((unsigned char)p[2]) >= 0) {
            out[n++] = (char)(hexval((unsigned char)p[1]) * 16 + hexval((unsigned char)p[2]));
            p += 3;
        } else {
            out[n++] = *p++;
        }
    }
    out[n] = '\0';
    return *p == '"' ? 0 : -1;
}

static int read_meta(FILE *f, report_meta *r)
{
    char *buf = malloc(META_SCAN_BYTES + 1);
    if (!buf)
        return -1;
    size_t n = fread(buf, 1, META_SCAN_BYTES, f);
    buf[n] = '\0';
    memset(r, 0, sizeof *r);
    char fmt[8];
    int bad = meta_value(buf, "penlink-report", fmt, sizeof fmt) != 0 ||
              (strcmp(fmt, "1") != 0 && strcmp(fmt, "2") != 0);
    r->format = bad ? 0 : fmt[0] - '0';
    if (r->format == 2) {
        r->claims = malloc(META_SCAN_BYTES + 1);
        if (!r->claims) {
            free(buf);
            return -1;
        }
        bad |= meta_value(buf, "penlink-verify-claims", r->claims, META_SCAN_BYTES + 1);
    }
    bad |= meta_value(buf, "penlink-version", r->version, sizeof r->version);
    bad |= meta_value(buf, "penlink-pen", r->pen, sizeof r->pen);
    bad |= meta_value(buf, "penlink-since", r->since, sizeof r->since);
    bad |= meta_value(buf, "penlink-until", r->until, sizeof r->until);
    bad |= meta_value(buf, "penlink-tz", r->tz, sizeof r->tz);
    bad |= meta_value(buf, "penlink-archive", r->archive, sizeof r->archive);
    bad |= meta_value(buf, "penlink-operator", r->operator_, sizeof r->operator_);
    bad |= meta_value(buf, "penlink-generated", r->generated, sizeof r->generated);
    bad |= meta_value(buf, "penlink-digest", r->digest, sizeof r->digest);
    free(buf);
    r->found = !bad;
    return 0;
}

/* The first offset where two streams differ, or -1 when they are equal. */
static long long first_difference(FILE *a, FILE *b)
{
    char x[65536], y[65536];
    long long at = 0;
    rewind(a);
    rewind(b);
    for (;;) {
        size_t n = fread(x, 1, sizeof x, a), m = fread(y, 1, sizeof y, b);
        size_t k = n < m ? n : m;
        for (size_t i = 0; i < k; i++)
            if (x[i] != y[i])
                return at + (long long)i;
        if (n != m)
            return at + (long long)k;
        if (n == 0)
            return -1;
        at += (long long)n;
    }
}

/* What checking a report against the archive found. */
struct check {
    const char *path;    /* the report */
    const char *archive; /* the archive it was checked against */
    const report_meta *rm;
    char hex[DIGEST_HEX]; /* the archive's data digest */
    int data_ok;          /* the report's data digest is the archive's */
    int old_format;       /* a report of format 1: its document cannot be made again */
    int same_version;     /* made by this penlink: its document can be compared */
    long long diff;       /* where the document first differs, or -1 */
};

/* The report's metadata, and its time zone made this process's: EXIT_OK or the error. */
static int load_report(struct cli *c, const char *path, FILE *rep, report_meta *rm)
{
    if (read_meta(rep, rm) != 0)
        return cli_error(c, EXIT_INTERNAL, "audit: out of memory");
    if (!rm->found)
        return cli_error(c, EXIT_USAGE,
                         "audit: %s is not a penlink audit report (penlink audit --format html "
                         "makes them)",
                         path);
    char err[300];
    if (cli_tz_set(rm->tz, err, sizeof err) != 0)
        return cli_error(c, EXIT_USAGE, "audit: %s: its time zone: %s", path, err);
    return EXIT_OK;
}

/* The archive given (--archive, else PENLINK_ARCHIVE, else the default), never the one
 * the report names: a report is a file from outside, and a server it names would get
 * this user's credentials. Said when they differ. */
static const char *archive_to_check(struct cli *c, const char *path, const report_meta *rm,
                                    char *def, size_t cap)
{
    const char *env = getenv("PENLINK_ARCHIVE");
    const char *archive = c->archive ? c->archive : env && *env ? env : NULL;
    if (!archive && penlink_archive_default_path(def, cap) == PENLINK_OK)
        archive = def;
    if (!archive)
        archive = "";
    if (strcmp(archive, rm->archive) != 0) {
        char text[3200];
        snprintf(text, sizeof text,
                 "note: %s names the archive %s; it is checked against %s (--archive, else "
                 "PENLINK_ARCHIVE, else the default), never against the one a report names",
                 path, rm->archive, archive);
        cli_notice(c, text);
    }
    return archive;
}

static void say_check_json(const struct check *k)
{
    /* the report's words (its digest, the archive it names) are a file's from
     * outside: through the CLI's boundary like a pen's */
    json_t *j = json_pack(
        "{s:o, s:o, s:o, s:o, s:s, s:b, s:s, s:b}", "report", cli_json_str(k->path), "archive",
        cli_json_str(k->archive), "report_archive", cli_json_str(k->rm->archive), "report_digest",
        cli_json_str(k->rm->digest), "archive_digest", k->hex, "data_matches", k->data_ok,
        "document",
        !k->data_ok        ? "not compared"
        : k->old_format    ? "not compared (a report of format 1, made before the audit read the "
                             "pens' chunks): cannot be confirmed"
        : !k->same_version ? "not compared (another penlink version): cannot be confirmed"
        : k->diff < 0      ? "as made"
                           : "altered",
        "confirmed", k->data_ok && k->same_version && k->diff < 0);
    if (j)
        json_object_set_new(j, "verify_claims", json_string(CHECK_CLAIMS));
    cli_json_out(j);
}

static void say_check_text(const struct check *k)
{
    const char *path = cli_safe(k->path), *archive = cli_safe(k->archive);
    if (!k->data_ok) {
        printf("%s does NOT match the archive %s: the report's data digest is\n  %s\nthe "
               "archive gives\n  %s\nfor the same pen, window and zone. The archive changed "
               "after the report was made (a pull, a configuration change, a note), or it is "
               "another archive, or the report was edited (its data, operator or time).\n",
               path, archive, cli_safe(k->rm->digest), k->hex);
    } else if (k->old_format) {
        printf("%s CANNOT BE CONFIRMED: it is a report of format 1, made by a penlink whose audit "
               "read the record rows, not the pens' chunks, so only its data digest could be "
               "compared (it matches the archive %s: %s), not the document, which may have been "
               "edited (its verdict, its findings). Make the report again with this penlink and "
               "hand that over.\n",
               path, archive, k->hex);
    } else if (!k->same_version) {
        printf("%s CANNOT BE CONFIRMED: it says it was made by penlink %s and this is %s, so "
               "only its data digest could be compared (it matches the archive %s: %s), not "
               "the document, which may have been edited (its verdict, its findings). Make the "
               "report again with this penlink and hand that over.\n",
               path, cli_safe(k->rm->version), penlink_version(), archive, k->hex);
    } else if (k->diff >= 0) {
        printf("%s was ALTERED after it was made: its data digest matches the archive %s, but "
               "the document differs from the one penlink makes of that data (first at byte "
               "%lld).\n",
               path, archive, k->diff);
    } else {
        printf("%s matches the archive %s: the data gives the same digest (%s), and the "
               "document is the one penlink made of it.\n",
               path, archive, k->hex);
    }
    if (k->data_ok)
        printf("  Its verify's claims are %s.\n", CHECK_CLAIMS);
}

int cli_audit_check_report(struct cli *c, const char *path)
{
    FILE *rep = fopen(path, "r");
    if (!rep)
        return cli_error(c, EXIT_IO, "audit: cannot read %s: %s", path, strerror(errno));
    report_meta rm;
    memset(&rm, 0, sizeof rm);
    FILE *again = NULL;
    int rc = load_report(c, path, rep, &rm);
    if (rc != EXIT_OK)
        goto out;
    html_meta m = { rm.pen[0] ? rm.pen : NULL,
                    rm.since[0] != 0,
                    rm.until[0] != 0,
                    strtoll(rm.since, NULL, 10),
                    strtoll(rm.until, NULL, 10),
                    rm.tz,
                    rm.archive,
                    rm.operator_,
                    strtoll(rm.generated, NULL, 10),
                    rm.version,
                    rm.format,
                    rm.format == 2 ? rm.claims : NULL };
    char def[1024] = "";
    struct check k = { .path = path, .rm = &rm };
    k.archive = archive_to_check(c, path, &rm, def, sizeof def);
    again = tmpfile();
    if (!again) {
        rc = cli_error(c, EXIT_IO, "audit: cannot create a temporary file");
        goto out;
    }
    penlink_audit_verdict verdict;
    /* a report of format 1 was made before the audit read the pens' chunks and said so: its
     * data (the audit's lines, unchanged) is compared, its document cannot be made again */
    k.old_format = rm.format == 1;
    k.same_version = strcmp(rm.version, penlink_version()) == 0 && !k.old_format;
    if (strcmp(rm.version, penlink_version()) != 0)
        m.version = penlink_version();
    rc = make_report(c, c->archive, &m, again, k.hex, &verdict);
    if (rc != EXIT_OK)
        goto out;
    k.data_ok = strcmp(k.hex, rm.digest) == 0;
    k.diff = k.same_version && k.data_ok ? first_difference(rep, again) : -1;
    if (c->json)
        say_check_json(&k);
    else
        say_check_text(&k);
    rc = !k.data_ok || (k.same_version && k.diff >= 0) ? EXIT_INTEGRITY
         : !k.same_version                             ? EXIT_UNCONFIRMED
                                                       : EXIT_OK;
out:
    if (again)
        fclose(again);
    fclose(rep);
    free(rm.claims);
    return rc;
}
