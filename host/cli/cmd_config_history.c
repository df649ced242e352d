/*
 * penlink config history: a pen's configuration history from the archive,
 * entry by entry in the archive's order (by pen, then revision): when, from
 * which source (read from the pen by a pull, or written to it by config set
 * or import), by whom (OS user and host), and each key's old and new value.
 * Only reads the archive, so a read-only copy or a hot standby will do, and
 * needs no pen.
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "cli_time.h"

static const char usage[] =
    "Usage: penlink [--archive PATH|URI] config history [--pen SERIAL] [--json]\n"
    "\n"
    "A pen's configuration history from the archive, oldest revision first: each\n"
    "configuration a pull read from the pen (source read) or that config set or\n"
    "config import wrote to it (source written), when (this computer's clock, in\n"
    "the local zone), by whom (OS user@host), the revision, and every key whose\n"
    "value changed, old -> new. The old values are those the change replaced;\n"
    "for a configuration read, those of the pen's entry before it; the first\n"
    "entry of a pen shows every value. No pen is needed.\n"
    "\n"
    "Options:\n"
    "  -p, --pen SERIAL  one pen (the global --device usb:SERIAL too, and a\n"
    "                    PENLINK_DEVICE that names a serial); default: every pen\n"
    "  -h, --help        this help\n"
    "\n"
    "With --json, one JSON object per entry and line: serial, at_ms, at (ISO\n"
    "8601), source, user, host, revision, old_revision (null for a pen's first\n"
    "entry), changes (an array of {key, old, new}; old is null in a first entry)\n"
    "and values (the whole configuration of the entry). Numbers are numbers.\n"
    "\n"
    "The archive is only read (a read-only copy, the reader role or a hot\n"
    "standby will do). A --pen the archive does not hold is a usage error (exit\n"
    "status 2) naming its pens; an archive that cannot be read is exit status 7.\n";

const struct option cli_config_history_options[] = {
    { "pen", required_argument, NULL, 'p' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* The pen whose entries are being shown, and its configuration before the entry. */
typedef struct history_out {
    struct cli *c;
    char serial[sizeof(((penlink_config_entry *)0)->serial)];
    int have_last;
    penlink_config last;
    uint64_t entries;
    int failed; /* out of memory */
} history_out;

/* A key's value in @p cfg as JSON: a number or a string; NULL when absent. */
static json_t *value_json(const penlink_config *cfg, const penlink_config_key *k)
{
    return cfg->present & k->bit ? cli_config_value_json(cfg, k) : NULL;
}

/* A key's value in @p cfg as text ("2500", "\"Room 2\""); 0 when absent. */
static int value_text(const penlink_config *cfg, const penlink_config_key *k, char *buf, size_t cap)
{
    if (!(cfg->present & k->bit))
        return 0;
    cli_config_value_text(cfg, k, buf, cap);
    return 1;
}

static int entry_json(history_out *h, const penlink_config_entry *e, const penlink_config *old)
{
    char at[40];
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    cli_time_iso(e->at_ms, at, sizeof at);
    json_t *changes = json_array(), *values = json_object();
    json_t *o =
        json_pack("{s:o, s:I, s:s, s:o, s:o, s:o, s:I, s:o}", "serial", cli_json_str(e->serial),
                  "at_ms", (json_int_t)e->at_ms, "at", at, "source", cli_json_str(e->source),
                  "user", cli_json_str(e->user), "host", cli_json_str(e->host), "revision",
                  (json_int_t)e->config.revision, "old_revision",
                  old ? json_integer((json_int_t)old->revision) : json_null());
    if (!o || !changes || !values)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *nv = value_json(&e->config, &k[i]);
        if (!nv)
            continue;
        json_object_set(values, k[i].name, nv);
        json_t *ov = old ? value_json(old, &k[i]) : NULL;
        if (ov && json_equal(ov, nv)) {
            json_decref(ov);
            json_decref(nv);
            continue;
        }
        json_array_append_new(changes, json_pack("{s:s, s:o, s:o}", "key", k[i].name, "old",
                                                 ov ? ov : json_null(), "new", nv));
    }
    json_object_set_new(o, "changes", changes);
    json_object_set_new(o, "values", values);
    cli_json_out(o);
    return 0;
fail:
    json_decref(o);
    json_decref(changes);
    json_decref(values);
    h->failed = 1;
    return -1;
}

static void entry_text(const penlink_config_entry *e, const penlink_config *old)
{
    char at[40];
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    cli_time_iso(e->at_ms, at, sizeof at);
    printf("  %s  %-7s  %s@%s  revision ", at, cli_safe(e->source), cli_safe(e->user),
           cli_safe(e->host));
    if (old)
        printf("%u -> ", old->revision);
    printf("%u\n", e->config.revision);
    int changes = 0;
    for (size_t i = 0; i < n; i++) {
        char a[80], b[80];
        if (!value_text(&e->config, &k[i], b, sizeof b))
            continue;
        int had = old && value_text(old, &k[i], a, sizeof a);
        if (had && strcmp(a, b) == 0)
            continue;
        changes++;
        if (had)
            printf("    %-20s %s -> %s\n", k[i].name, cli_safe(a), cli_safe(b));
        else
            printf("    %-20s %s\n", k[i].name, cli_safe(b));
    }
    if (!changes)
        printf("    (no value changed)\n");
}

static int on_entry(void *user, const penlink_config_entry *e)
{
    history_out *h = user;
    if (strcmp(h->serial, e->serial) != 0) { /* the next pen's entries */
        snprintf(h->serial, sizeof h->serial, "%s", e->serial);
        h->have_last = 0;
        if (!h->c->json)
            printf("%s%s\n", h->entries ? "\n" : "", cli_safe(e->serial));
    }
    /* old -> new: the values a change replaced, else the pen's entry before */
    const penlink_config *old = e->has_old ? &e->old_config : h->have_last ? &h->last : NULL;
    h->entries++;
    if (h->c->json) {
        if (entry_json(h, e, old) != 0)
            return -1;
    } else {
        entry_text(e, old);
    }
    h->last = e->config;
    h->have_last = 1;
    return ferror(stdout) ? -1 : 0;
}

int cmd_config_history(struct cli *c, int argc, char **argv)
{
    history_out h = { .c = c };
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    const char *pen = NULL;
    int opt, rc;
    while ((opt = getopt_long(argc, argv, "p:h", cli_config_history_options, NULL)) != -1) {
        switch (opt) {
        case 'p': pen = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    rc = cli_pen_filter(c, &f, pen);
    if (rc != EXIT_OK)
        return rc;
    penlink_archive *ar = NULL;
    int st = penlink_archive_open_readonly(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK)
        return cli_fail(c, "config history: cannot open the archive", st);
    rc = cli_pen_check(c, ar, "config history", f.serial);
    if (rc == EXIT_OK)
        st = penlink_archive_config_history(ar, f.serial, on_entry, &h);
    penlink_archive_close(ar);
    if (rc != EXIT_OK)
        return rc;
    int werr = fflush(stdout) != 0 || ferror(stdout);
    if (h.failed)
        return cli_error(c, EXIT_INTERNAL, "config history: out of memory");
    if (werr)
        return EXIT_IO; /* main's check of standard output says why, once */
    if (st != PENLINK_OK)
        return cli_fail(c, "config history", st);
    if (h.entries == 0 && !c->json && !c->quiet) {
        if (f.serial)
            printf("%s: no configuration in the archive's history\n", cli_safe(f.serial));
        else
            printf("no configuration in the archive's history\n");
    }
    return EXIT_OK;
}

int cmd_config_verbs(struct cli *c, int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "history") == 0)
        return cmd_config_history(c, argc - 1, argv + 1);
    return cmd_config(c, argc, argv);
}
