/*
 * penlink config get | set | export | import. Every change is checked
 * against the pen's limits before it is sent, shown as a diff, and sent as a
 * compare-and-set on the revision that was read: a change someone else made
 * meanwhile is a conflict, never silently overwritten.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "config_json.h"

/* An exported configuration: indented for people, ASCII like all JSON output. */
#define CONFIG_JSON_FLAGS (JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII)

static const char usage[] =
    "Usage: penlink [--device URI] config get [KEY]\n"
    "       penlink [--device URI] config set [--dry-run] [--key FILE] KEY=VALUE...\n"
    "       penlink [--device URI] config export [FILE]\n"
    "       penlink [--device URI] config import [--dry-run] [--force | --template]\n"
    "                                           [--key FILE] FILE\n"
    "       penlink [--archive PATH] config history [--pen SERIAL]\n"
    "\n"
    "Read and change a pen's configuration. Keys carry their unit in the name:\n"
    "  depth_min_um, depth_max_um, depth_default_um   needle depth, micrometres\n"
    "  speed_min_sps, speed_max_sps                   needle strokes per second\n"
    "  max_treatment_s                                longest treatment, seconds\n"
    "  max_cartridge_uses                             1 = single use\n"
    "  auto_off_s                                     idle seconds before power off\n"
    "  device_label, clinic_id                        text\n"
    "\n"
    "set and import check every value against the pen's limits (penlink info),\n"
    "show the changes, then apply them as one compare-and-set on the revision\n"
    "read: if someone changed the configuration meanwhile, nothing is applied\n"
    "and the exit status is 4. export writes JSON (stdout without FILE) naming\n"
    "the pen it came from (serial) and the revision; import takes it back onto\n"
    "that pen, and refuses a file exported at another revision than the pen's\n"
    "unless --force. A file of another pen, or one that names no pen (no\n"
    "\"serial\"), is refused (exit status 2) unless --template: its settings are\n"
    "applied, never its identity (device_label, clinic_id), and its revision is\n"
    "not compared (so --force and --template do not go together). set takes\n"
    "each key once, numbers as plain digits (no sign, no space).\n"
    "history shows a pen's configurations from the archive, no pen needed: who,\n"
    "when, old -> new (penlink config history --help).\n"
    "\n"
    "A pen provisioned with config-signing keys (penlink info shows them) takes\n"
    "only configuration signed by one of them: --key names the secret key file\n"
    "(penlink keys generate); without --key, ~/.config/penlink/technician.key\n"
    "signs when it exists (penlink says so). A key the pen does not accept is\n"
    "refused before anything is sent: exit status 9, naming the keys the pen\n"
    "accepts by fingerprint (penlink keys show FILE gives yours). The signature\n"
    "covers the pen's serial, the revision read, a fresh nonce from the pen and\n"
    "every value, so it cannot be replayed or used on another pen. Reading needs\n"
    "no key. A signature the pen refuses is exit status 9, and the pen logs it as\n"
    "a security event.\n"
    "\n"
    "Options:\n"
    "  -n, --dry-run   show the changes, send nothing\n"
    "  -f, --force     import over a configuration changed since the export\n"
    "  -t, --template  import a file of another pen (or of none): settings only,\n"
    "                  never its device_label and clinic_id\n"
    "  -k, --key FILE  sign with this secret key\n"
    "  -h, --help      this help\n";

static json_t *config_json(const penlink_config *cfg, const char *serial)
{
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    json_t *o = json_object();
    json_object_set_new(o, "serial", cli_json_str(serial));
    json_object_set_new(o, "revision", json_integer(cfg->revision));
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, k[i].name, cli_config_value_json(cfg, &k[i]));
    return o;
}

/* Parses VALUE for key @p k into @p cfg; 0 or -1. */
static int parse_value(struct cli *c, penlink_config *cfg, const penlink_config_key *k,
                       const char *v)
{
    if (k->is_text) {
        if (penlink_config_set_text(cfg, k->bit, v) != 0) {
            cli_error(c, EXIT_USAGE, "%s: at most 64 bytes", k->name);
            return -1;
        }
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    /* digits only, as in an imported file: no sign, no space before */
    if (!isdigit((unsigned char)v[0]) || *end || errno || x > UINT32_MAX) {
        cli_error(c, EXIT_USAGE, "%s: '%s' is not a whole number of %s", k->name, v,
                  strstr(k->name, "_um")    ? "micrometres"
                  : strstr(k->name, "_sps") ? "strokes per second"
                  : strstr(k->name, "_s")   ? "seconds"
                                            : "uses");
        return -1;
    }
    /* a leading zero (0600) is refused like a JSON number with one in an
     * imported file: octal to some, a typo to others */
    if (v[0] == '0' && v[1]) {
        cli_error(c, EXIT_USAGE, "%s: '%s' has a leading zero: write the number without it",
                  k->name, v);
        return -1;
    }
    penlink_config_set_u32(cfg, k->bit, (uint32_t)x);
    return 0;
}

static int unknown_key(struct cli *c, const char *key)
{
    char err[700];
    config_json_unknown_key(key, err, sizeof err);
    return cli_error(c, EXIT_USAGE, "%s", err);
}

/* Nothing sent (no change, or a dry run): the changes that would be made, then @p text. */
static int say_not_sent(struct cli *c, const penlink_info *info, const penlink_config *cur,
                        json_t *diff, const char *text)
{
    if (c->json)
        cli_json_out(json_pack("{s:o, s:I, s:o, s:b}", "serial", cli_json_str(info->serial),
                               "revision", (json_int_t)cur->revision, "changes", diff, "applied",
                               0));
    else {
        json_decref(diff);
        if (!c->quiet)
            printf("%s (revision %u)\n", text, cur->revision);
    }
    return EXIT_OK;
}

/* The keys of @p want that differ from @p cur: into @p merged and @p change, shown, and
 * returned as the JSON array of changes. */
static json_t *diff_config(struct cli *c, const penlink_config *cur, const penlink_config *want,
                           penlink_config *merged, penlink_config *change)
{
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    json_t *diff = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!(want->present & k[i].bit))
            continue;
        char a[80], b[80];
        cli_config_value_text(cur, &k[i], a, sizeof a);
        cli_config_value_text(want, &k[i], b, sizeof b);
        if (strcmp(a, b) == 0)
            continue;
        if (k[i].is_text) {
            penlink_config_set_text(merged, k[i].bit, penlink_config_get_text(want, k[i].bit));
            penlink_config_set_text(change, k[i].bit, penlink_config_get_text(want, k[i].bit));
        } else {
            penlink_config_set_u32(merged, k[i].bit, penlink_config_get_u32(want, k[i].bit));
            penlink_config_set_u32(change, k[i].bit, penlink_config_get_u32(want, k[i].bit));
        }
        json_array_append_new(diff, json_pack("{s:s, s:o, s:o}", "key", k[i].name, "old",
                                              cli_config_value_json(cur, &k[i]), "new",
                                              cli_config_value_json(want, &k[i])));
        if (!c->json && !c->quiet)
            printf("  %-20s %s -> %s\n", k[i].name, cli_safe(a), cli_safe(b));
    }
    return diff;
}

/*
 * Sends @p change as a compare-and-set on cur->revision, recorded in the archive's
 * configuration history; takes @p diff.
 */
static int send_change(struct cli *c, penlink_dev *dev, const penlink_info *info,
                       const penlink_config *cur, const penlink_config *change,
                       const penlink_key *key, json_t *diff)
{
    /* the archive's configuration history says who changed what (the pen logs
     * it too): a change it cannot record (a hot standby, a login that may only
     * read, a read-only file) is not made, and nothing is sent to the pen */
    penlink_archive *ar = NULL;
    int st = penlink_archive_open(c->ctx, c->archive, &ar);
    int writable = 0;
    if (st == PENLINK_OK)
        st = penlink_archive_writable(ar, &writable);
    if (st == PENLINK_OK && !writable)
        st = PENLINK_ERR_IO;
    if (st != PENLINK_OK) {
        penlink_archive_close(ar);
        json_decref(diff);
        return cli_fail(c, "config not changed, nothing sent: the archive cannot record the change",
                        st);
    }
    penlink_config result = PENLINK_CONFIG_INIT;
    st = penlink_dev_config_set_signed(dev, cur->revision, key, change, &result);
    if (st != PENLINK_OK) {
        penlink_archive_close(ar);
        json_decref(diff);
        return cli_fail(c, "config not changed", st);
    }
    st = penlink_archive_log_config_write(ar, info, cur, &result);
    penlink_archive_close(ar);
    if (st != PENLINK_OK)
        cli_warn(c,
                 "applied, but not recorded in the archive's configuration history (%s); the "
                 "next pull records the new revision",
                 penlink_ctx_errmsg(c->ctx));
    if (c->json)
        cli_json_out(json_pack("{s:o, s:I, s:I, s:o, s:b}", "serial", cli_json_str(info->serial),
                               "old_revision", (json_int_t)cur->revision, "revision",
                               (json_int_t)result.revision, "changes", diff, "applied", 1));
    else {
        json_decref(diff);
        if (!c->quiet)
            printf("applied: revision %u -> %u\n", cur->revision, result.revision);
    }
    return EXIT_OK;
}

/*
 * Shows what @p want changes in @p cur and applies it as a compare-and-set
 * on cur->revision. @p want holds only the keys to set.
 */
static int apply(struct cli *c, penlink_dev *dev, const penlink_info *info,
                 const penlink_config *cur, const penlink_config *want, int dry_run,
                 const penlink_key *key)
{
    penlink_config merged = *cur, change = PENLINK_CONFIG_INIT;
    json_t *diff = diff_config(c, cur, want, &merged, &change);
    int st = penlink_config_check(c->ctx, &info->limits, &merged);
    if (st != PENLINK_OK) {
        json_decref(diff);
        return cli_error(c, EXIT_USAGE, "not sent: %s (the pen's limits: see 'penlink info')",
                         penlink_ctx_errmsg(c->ctx));
    }
    if (change.present == 0)
        return say_not_sent(c, info, cur, diff, "nothing to change");
    if (dry_run)
        return say_not_sent(c, info, cur, diff, "dry run: nothing sent");
    return send_change(c, dev, info, cur, &change, key, diff);
}

/* Reads a config file (hostile input: bounded, typed, known keys only). */
static int load_file(struct cli *c, const char *path, penlink_config *want, int *has_rev,
                     uint32_t *rev, char *serial, size_t serial_cap)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cli_error(c, EXIT_IO, "config import: %s: %s", path, strerror(errno));
    static char text[CONFIG_JSON_MAX + 1];
    size_t n = fread(text, 1, sizeof text, f);
    int failed = ferror(f);
    fclose(f);
    if (failed)
        return cli_error(c, EXIT_IO, "config import: %s: cannot read it", path);
    char err[700];
    if (config_json_parse(text, n, want, has_rev, rev, serial, serial_cap, err, sizeof err) != 0)
        return cli_error(c, EXIT_USAGE, "config import: %s: %s", path, err);
    return EXIT_OK;
}

const struct option cli_config_options[] = {
    { "dry-run", no_argument, NULL, 'n' },  { "force", no_argument, NULL, 'f' },
    { "template", no_argument, NULL, 't' }, { "key", required_argument, NULL, 'k' },
    { "help", no_argument, NULL, 'h' },     { NULL, 0, NULL, 0 }
};

/* What a config command line asks, checked before the pen is touched. */
struct config_req {
    int dry_run, force, template;
    const char *key_file, *verb;
    int nargs;
    char **args;
    int is_get, is_set, is_export, is_import;
    penlink_config want;           /* set, import: the keys to set */
    const penlink_config_key *one; /* get KEY */
    int has_rev;                   /* import: the file's revision */
    uint32_t file_rev;
    char file_serial[65];
};

/* One run of the options (before the verb, with "+", or after it): EXIT_OK to go on, else the
 * exit status (--help is *done). */
static int parse_options(int argc, char **argv, const char *optstring, struct config_req *r,
                         int *done)
{
    int opt;
    while ((opt = getopt_long(argc, argv, optstring, cli_config_options, NULL)) != -1) {
        switch (opt) {
        case 'n': r->dry_run = 1; break;
        case 'f': r->force = 1; break;
        case 't': r->template = 1; break;
        case 'k': r->key_file = optarg; break;
        case 'h':
            fputs(usage, stdout);
            *done = 1;
            return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    return EXIT_OK;
}

/* The command line: options, the verb, its arguments. */
static int parse_command(int argc, char **argv, struct config_req *r, int *done)
{
    int rc = parse_options(argc, argv, "+nftk:h", r, done);
    if (rc != EXIT_OK || *done)
        return rc;
    if (optind >= argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    r->verb = argv[optind++];
    /* options may also follow the verb */
    rc = parse_options(argc, argv, "nftk:h", r, done);
    if (rc != EXIT_OK || *done)
        return rc;
    r->nargs = argc - optind;
    r->args = argv + optind;
    r->is_get = strcmp(r->verb, "get") == 0;
    r->is_set = strcmp(r->verb, "set") == 0;
    r->is_export = strcmp(r->verb, "export") == 0;
    r->is_import = strcmp(r->verb, "import") == 0;
    if (!(r->is_get || r->is_set || r->is_export || r->is_import) || (r->is_get && r->nargs > 1) ||
        (r->is_set && r->nargs < 1) || (r->is_export && r->nargs > 1) ||
        (r->is_import && r->nargs != 1)) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* config set's KEY=VALUE arguments into r->want. */
static int parse_assignments(struct cli *c, struct config_req *r)
{
    for (int i = 0; i < r->nargs; i++) {
        char *eq = strchr(r->args[i], '=');
        if (!eq)
            return cli_error(c, EXIT_USAGE, "config set: '%s' is not KEY=VALUE", r->args[i]);
        *eq = '\0';
        const penlink_config_key *k = penlink_config_key_find(r->args[i]);
        if (!k)
            return unknown_key(c, r->args[i]);
        if (r->want.present & k->bit)
            return cli_error(c, EXIT_USAGE,
                             "config set: %s is given twice: give each key once (nothing was "
                             "sent)",
                             k->name);
        if (parse_value(c, &r->want, k, eq + 1) != 0)
            return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* What can be checked before touching the pen: keys, values, the file, options together. */
static int check_request(struct cli *c, struct config_req *r)
{
    if (r->is_get && r->nargs == 1) {
        r->one = penlink_config_key_find(r->args[0]);
        if (!r->one)
            return unknown_key(c, r->args[0]);
    }
    if (r->is_set) {
        int rc = parse_assignments(c, r);
        if (rc != EXIT_OK)
            return rc;
    }
    if (r->is_import) {
        int rc = load_file(c, r->args[0], &r->want, &r->has_rev, &r->file_rev, r->file_serial,
                           sizeof r->file_serial);
        if (rc != EXIT_OK)
            return rc;
    }
    if (r->template && !r->is_import)
        return cli_error(c, EXIT_USAGE, "config %s: --template is for config import", r->verb);
    if (r->template && r->force)
        return cli_error(c, EXIT_USAGE,
                         "config import: --force or --template, not both: a template's revision "
                         "is never compared, so there is nothing to force");
    if (r->is_import && !r->file_serial[0] && !r->template)
        return cli_error(c, EXIT_USAGE,
                         "config import: %s names no pen (it has no \"serial\": written by hand, "
                         "or exported by an earlier penlink), so it cannot be taken as this "
                         "pen's own configuration: refused, nothing was sent. To apply its "
                         "settings, add --template: its depths, speeds and times are applied, "
                         "never device_label or clinic_id, and its revision is not compared",
                         r->args[0]);
    if (r->key_file && !(r->is_set || r->is_import))
        return cli_error(c, EXIT_USAGE, "config %s: --key signs changes; reading needs no key",
                         r->verb);
    return EXIT_OK;
}

/* config get [KEY] */
static void show_config(struct cli *c, const struct config_req *r, const penlink_info *info,
                        const penlink_config *cur)
{
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    if (c->json) {
        json_t *o = config_json(cur, info->serial);
        if (r->one) {
            json_t *v = json_incref(json_object_get(o, r->one->name));
            json_decref(o);
            o = json_pack("{s:o, s:o, s:I}", "serial", cli_json_str(info->serial), r->one->name, v,
                          "revision", (json_int_t)cur->revision);
        }
        cli_json_out(o);
    } else if (r->one) {
        char v[80];
        cli_config_value_text(cur, r->one, v, sizeof v);
        printf("%s\n", cli_safe(v));
    } else {
        printf("# %s, configuration revision %u\n", cli_safe(info->serial), cur->revision);
        for (size_t i = 0; i < n; i++) {
            char v[80];
            cli_config_value_text(cur, &k[i], v, sizeof v);
            printf("%-20s = %-14s # %s\n", k[i].name, cli_safe(v), k[i].help);
        }
    }
}

/* config export [FILE] */
static int export_config(struct cli *c, const struct config_req *r, const penlink_info *info,
                         const penlink_config *cur)
{
    int rc = EXIT_OK;
    json_t *o = config_json(cur, info->serial);
    json_object_set_new(o, "schema", json_integer(CONFIG_JSON_SCHEMA));
    if (r->nargs == 1) {
        if (json_dump_file(o, r->args[0], CONFIG_JSON_FLAGS) != 0)
            rc = cli_error(c, EXIT_IO, "config export: cannot write %s", r->args[0]);
        else if (!c->quiet && !c->json)
            printf("revision %u of %s written to %s\n", cur->revision, cli_safe(info->serial),
                   cli_safe(r->args[0]));
    } else if (c->json) {
        cli_json_out(json_incref(o)); /* one line, like every --json output */
    } else {
        char *s = json_dumps(o, CONFIG_JSON_FLAGS);
        if (s)
            printf("%s\n", s);
        free(s);
    }
    json_decref(o);
    return rc;
}

/* config set, config import: the file checked against this pen, then the change applied. */
static int change_config(struct cli *c, struct config_req *r, penlink_dev *dev,
                         const penlink_info *info, const penlink_config *cur, penlink_key *key,
                         int *have_key)
{
    char what[32];
    snprintf(what, sizeof what, "config %s", r->verb);
    if (r->is_import && r->file_serial[0] && strcmp(r->file_serial, info->serial) != 0 &&
        !r->template)
        return cli_error(c, EXIT_USAGE,
                         "config import: %s was exported from pen %s, not from this pen (%s): "
                         "refused, nothing was sent. To apply its settings to %s, add "
                         "--template: its depths, speeds and times are applied, never its "
                         "identity (device_label, clinic_id), and its revision is not "
                         "compared%s",
                         r->args[0], r->file_serial, info->serial, info->serial,
                         r->force ? " (--force only overrides a revision)" : "");
    if (r->template) {
        /* settings only: the label and the clinic name the pen the file came from */
        uint32_t identity = PENLINK_CFG_DEVICE_LABEL | PENLINK_CFG_CLINIC_ID;
        if ((r->want.present & identity) && !c->json && !c->quiet)
            printf("template %s%s%s: device_label and clinic_id are not copied\n",
                   cli_safe(r->args[0]), r->file_serial[0] ? " of pen " : "",
                   cli_safe(r->file_serial));
        r->want.present &= ~identity;
        r->has_rev = 0;
    }
    if (r->is_import && r->has_rev && r->file_rev != cur->revision && !r->force)
        return cli_error(c, EXIT_DEVICE,
                         "config import: %s was exported at revision %u, but the pen is at "
                         "revision %u: someone changed it since. Export again and review, or "
                         "use --force to apply the file over the current configuration",
                         r->args[0], r->file_rev, cur->revision);
    int rc = cli_signing_key(c, what, info,
                             (info->features & PENLINK_FEATURE_SIGNED_CONFIG) && !r->dry_run,
                             r->key_file, key, have_key);
    if (rc != EXIT_OK)
        return rc;
    if (!c->json && !c->quiet)
        printf("%s, revision %u:\n", cli_safe(info->serial), cur->revision);
    return apply(c, dev, info, cur, &r->want, r->dry_run, *have_key ? key : NULL);
}

int cmd_config(struct cli *c, int argc, char **argv)
{
    struct config_req r;
    memset(&r, 0, sizeof r);
    r.want.size = sizeof r.want;
    int done = 0;
    int rc = parse_command(argc, argv, &r, &done);
    if (rc != EXIT_OK || done)
        return rc;
    rc = check_request(c, &r);
    if (rc != EXIT_OK)
        return rc;
    penlink_key key = PENLINK_KEY_INIT;
    int have_key = 0;
    if (r.key_file) { /* a file that is no key is said before the pen is touched */
        int st = penlink_key_load(c->ctx, r.key_file, &key);
        if (st != PENLINK_OK)
            return cli_fail(c, "config", st);
    }

    penlink_dev *dev = NULL;
    rc = cli_open(c, &dev);
    if (rc != EXIT_OK)
        return rc;
    penlink_info info = PENLINK_INFO_INIT;
    penlink_config cur = PENLINK_CONFIG_INIT;
    int st = penlink_dev_info(dev, &info);
    if (st == PENLINK_OK)
        st = penlink_dev_config_get(dev, &cur);
    if (st != PENLINK_OK)
        rc = cli_fail(c, "config", st);
    else if (r.is_get)
        show_config(c, &r, &info, &cur);
    else if (r.is_export)
        rc = export_config(c, &r, &info, &cur);
    else
        rc = change_config(c, &r, dev, &info, &cur, &key, &have_key);
    penlink_dev_close(dev);
    return rc;
}
