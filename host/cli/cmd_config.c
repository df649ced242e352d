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
    penlink_config_set_u32(cfg, k->bit, (uint32_t)x);
    return 0;
}

static int unknown_key(struct cli *c, const char *key)
{
    char err[700];
    config_json_unknown_key(key, err, sizeof err);
    return cli_error(c, EXIT_USAGE, "%s", err);
}

/*
 * Shows what @p want changes in @p cur and applies it as a compare-and-set
 * on cur->revision. @p want holds only the keys to set.
 */
static int apply(struct cli *c, penlink_dev *dev, const penlink_info *info,
                 const penlink_config *cur, const penlink_config *want, int dry_run,
                 const penlink_key *key)
{
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    penlink_config merged = *cur, change = PENLINK_CONFIG_INIT;
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
            penlink_config_set_text(&merged, k[i].bit, penlink_config_get_text(want, k[i].bit));
            penlink_config_set_text(&change, k[i].bit, penlink_config_get_text(want, k[i].bit));
        } else {
            penlink_config_set_u32(&merged, k[i].bit, penlink_config_get_u32(want, k[i].bit));
            penlink_config_set_u32(&change, k[i].bit, penlink_config_get_u32(want, k[i].bit));
        }
        json_array_append_new(diff, json_pack("{s:s, s:o, s:o}", "key", k[i].name, "old",
                                              cli_config_value_json(cur, &k[i]), "new",
                                              cli_config_value_json(want, &k[i])));
        if (!c->json && !c->quiet)
            printf("  %-20s %s -> %s\n", k[i].name, cli_safe(a), cli_safe(b));
    }
    int st = penlink_config_check(c->ctx, &info->limits, &merged);
    if (st != PENLINK_OK) {
        json_decref(diff);
        return cli_error(c, EXIT_USAGE, "not sent: %s (the pen's limits: see 'penlink info')",
                         penlink_ctx_errmsg(c->ctx));
    }
    if (change.present == 0) {
        if (c->json)
            cli_json_out(json_pack("{s:I, s:o, s:b}", "revision", (json_int_t)cur->revision,
                                   "changes", diff, "applied", 0));
        else {
            json_decref(diff);
            if (!c->quiet)
                printf("nothing to change (revision %u)\n", cur->revision);
        }
        return EXIT_OK;
    }
    if (dry_run) {
        if (c->json)
            cli_json_out(json_pack("{s:I, s:o, s:b}", "revision", (json_int_t)cur->revision,
                                   "changes", diff, "applied", 0));
        else {
            json_decref(diff);
            if (!c->quiet)
                printf("dry run: nothing sent (revision %u)\n", cur->revision);
        }
        return EXIT_OK;
    }
    /* the archive's configuration history says who changed what (the pen logs
     * it too): a change it cannot record (a hot standby, a login that may only
     * read, a read-only file) is not made, and nothing is sent to the pen */
    penlink_archive *ar = NULL;
    int writable = 0;
    st = penlink_archive_open(c->ctx, c->archive, &ar);
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
    st = penlink_dev_config_set_signed(dev, cur->revision, key, &change, &result);
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
        cli_json_out(json_pack("{s:I, s:I, s:o, s:b}", "old_revision", (json_int_t)cur->revision,
                               "revision", (json_int_t)result.revision, "changes", diff, "applied",
                               1));
    else {
        json_decref(diff);
        if (!c->quiet)
            printf("applied: revision %u -> %u\n", cur->revision, result.revision);
    }
    return EXIT_OK;
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

int cmd_config(struct cli *c, int argc, char **argv)
{
    int dry_run = 0, force = 0, template = 0, opt;
    const char *key_file = NULL;
    while ((opt = getopt_long(argc, argv, "+nftk:h", cli_config_options, NULL)) != -1) {
        switch (opt) {
        case 'n': dry_run = 1; break;
        case 'f': force = 1; break;
        case 't': template = 1; break;
        case 'k': key_file = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *verb = argv[optind++];
    /* options may also follow the verb */
    while ((opt = getopt_long(argc, argv, "nftk:h", cli_config_options, NULL)) != -1) {
        switch (opt) {
        case 'n': dry_run = 1; break;
        case 'f': force = 1; break;
        case 't': template = 1; break;
        case 'k': key_file = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    int nargs = argc - optind;
    char **args = argv + optind;
    int is_get = strcmp(verb, "get") == 0, is_set = strcmp(verb, "set") == 0;
    int is_export = strcmp(verb, "export") == 0, is_import = strcmp(verb, "import") == 0;
    if (!(is_get || is_set || is_export || is_import) || (is_get && nargs > 1) ||
        (is_set && nargs < 1) || (is_export && nargs > 1) || (is_import && nargs != 1)) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    /* check what we can before touching the pen */
    penlink_config want = PENLINK_CONFIG_INIT;
    const penlink_config_key *one = NULL;
    int has_rev = 0;
    uint32_t file_rev = 0;
    char file_serial[65] = "";
    if (is_get && nargs == 1) {
        one = penlink_config_key_find(args[0]);
        if (!one)
            return unknown_key(c, args[0]);
    }
    for (int i = 0; is_set && i < nargs; i++) {
        char *eq = strchr(args[i], '=');
        if (!eq)
            return cli_error(c, EXIT_USAGE, "config set: '%s' is not KEY=VALUE", args[i]);
        *eq = '\0';
        const penlink_config_key *k = penlink_config_key_find(args[i]);
        if (!k)
            return unknown_key(c, args[i]);
        if (want.present & k->bit)
            return cli_error(c, EXIT_USAGE,
                             "config set: %s is given twice: give each key once (nothing was "
                             "sent)",
                             k->name);
        if (parse_value(c, &want, k, eq + 1) != 0)
            return EXIT_USAGE;
    }
    if (is_import) {
        int rc = load_file(c, args[0], &want, &has_rev, &file_rev, file_serial, sizeof file_serial);
        if (rc != EXIT_OK)
            return rc;
    }
    if (template && !is_import)
        return cli_error(c, EXIT_USAGE, "config %s: --template is for config import", verb);
    if (template && force)
        return cli_error(c, EXIT_USAGE,
                         "config import: --force or --template, not both: a template's revision "
                         "is never compared, so there is nothing to force");
    if (is_import && !file_serial[0] && !template)
        return cli_error(c, EXIT_USAGE,
                         "config import: %s names no pen (it has no \"serial\": written by hand, "
                         "or exported by an earlier penlink), so it cannot be taken as this "
                         "pen's own configuration: refused, nothing was sent. To apply its "
                         "settings, add --template: its depths, speeds and times are applied, "
                         "never device_label or clinic_id, and its revision is not compared",
                         args[0]);
    penlink_key key;
    int have_key = 0;
    if (key_file && !(is_set || is_import))
        return cli_error(c, EXIT_USAGE, "config %s: --key signs changes; reading needs no key",
                         verb);
    if (key_file) { /* a file that is no key is said before the pen is touched */
        int st = penlink_key_load(c->ctx, key_file, &key);
        if (st != PENLINK_OK)
            return cli_fail(c, "config", st);
    }

    penlink_dev *dev = NULL;
    int rc = cli_open(c, &dev);
    if (rc != EXIT_OK)
        return rc;
    penlink_info info = PENLINK_INFO_INIT;
    penlink_config cur = PENLINK_CONFIG_INIT;
    int st = penlink_dev_info(dev, &info);
    if (st == PENLINK_OK)
        st = penlink_dev_config_get(dev, &cur);
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "config", st);
        goto out;
    }
    if (is_get) {
        size_t n;
        const penlink_config_key *k = penlink_config_keys(&n);
        if (c->json) {
            json_t *o = config_json(&cur, info.serial);
            if (one) {
                json_t *v = json_incref(json_object_get(o, one->name));
                json_decref(o);
                o = json_pack("{s:o, s:o, s:I}", "serial", cli_json_str(info.serial), one->name, v,
                              "revision", (json_int_t)cur.revision);
            }
            cli_json_out(o);
        } else if (one) {
            char v[80];
            cli_config_value_text(&cur, one, v, sizeof v);
            printf("%s\n", cli_safe(v));
        } else {
            printf("# %s, configuration revision %u\n", cli_safe(info.serial), cur.revision);
            for (size_t i = 0; i < n; i++) {
                char v[80];
                cli_config_value_text(&cur, &k[i], v, sizeof v);
                printf("%-20s = %-14s # %s\n", k[i].name, cli_safe(v), k[i].help);
            }
        }
    } else if (is_export) {
        json_t *o = config_json(&cur, info.serial);
        json_object_set_new(o, "schema", json_integer(CONFIG_JSON_SCHEMA));
        if (nargs == 1) {
            if (json_dump_file(o, args[0], CONFIG_JSON_FLAGS) != 0)
                rc = cli_error(c, EXIT_IO, "config export: cannot write %s", args[0]);
            else if (!c->quiet && !c->json)
                printf("revision %u of %s written to %s\n", cur.revision, cli_safe(info.serial),
                       cli_safe(args[0]));
        } else if (c->json) {
            cli_json_out(json_incref(o)); /* one line, like every --json output */
        } else {
            char *s = json_dumps(o, CONFIG_JSON_FLAGS);
            if (s)
                printf("%s\n", s);
            free(s);
        }
        json_decref(o);
    } else {
        char what[32];
        snprintf(what, sizeof what, "config %s", verb);
        if (is_import && file_serial[0] && strcmp(file_serial, info.serial) != 0 && !template) {
            rc = cli_error(c, EXIT_USAGE,
                           "config import: %s was exported from pen %s, not from this pen (%s): "
                           "refused, nothing was sent. To apply its settings to %s, add "
                           "--template: its depths, speeds and times are applied, never its "
                           "identity (device_label, clinic_id), and its revision is not "
                           "compared%s",
                           args[0], file_serial, info.serial, info.serial,
                           force ? " (--force only overrides a revision)" : "");
            goto out;
        }
        if (template) {
            /* settings only: the label and the clinic name the pen the file came from */
            uint32_t identity = PENLINK_CFG_DEVICE_LABEL | PENLINK_CFG_CLINIC_ID;
            if ((want.present & identity) && !c->json && !c->quiet)
                printf("template %s%s%s: device_label and clinic_id are not copied\n",
                       cli_safe(args[0]), file_serial[0] ? " of pen " : "", cli_safe(file_serial));
            want.present &= ~identity;
            has_rev = 0;
        }
        if (is_import && has_rev && file_rev != cur.revision && !force) {
            rc = cli_error(c, EXIT_DEVICE,
                           "config import: %s was exported at revision %u, but the pen is at "
                           "revision %u: someone changed it since. Export again and review, or "
                           "use --force to apply the file over the current configuration",
                           args[0], file_rev, cur.revision);
            goto out;
        }
        rc = cli_signing_key(c, what, &info,
                             (info.features & PENLINK_FEATURE_SIGNED_CONFIG) && !dry_run, key_file,
                             &key, &have_key);
        if (rc != EXIT_OK)
            goto out;
        if (!c->json && !c->quiet)
            printf("%s, revision %u:\n", cli_safe(info.serial), cur.revision);
        rc = apply(c, dev, &info, &cur, &want, dry_run, have_key ? &key : NULL);
    }
out:
    penlink_dev_close(dev);
    return rc;
}
