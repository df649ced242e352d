/*
 * penlink archive init-server: a PostgreSQL server made ready for a shared
 * archive; penlink archive push: a laptop's archive sent to it after a site
 * was offline (docs/fleet.md).
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink --archive URI archive init-server [--writer ROLE] [--reader ROLE]\n"
    "       penlink [--archive PATH] archive push --to URI [--pen SERIAL]\n"
    "\n"
    "init-server sets up a PostgreSQL server for an archive shared by many\n"
    "laptops and docking stations: the schema 'penlink' (created, or migrated to\n"
    "this version), a writer role for technicians and docking stations (SELECT\n"
    "and INSERT only) and a reader role for auditors (SELECT only), both\n"
    "NOLOGIN, and their grants. It prints what it did. Run it as the database's\n"
    "owner; running it again is harmless (after an upgrade it migrates).\n"
    "\n"
    "URI (--archive, else $PENLINK_ARCHIVE): postgresql://[user@]host[:port]/db\n"
    "with libpq's options (e.g. ?sslmode=verify-full), or service=NAME. The\n"
    "password comes from ~/.pgpass, PGPASSFILE or the service file, never from\n"
    "the URI.\n"
    "\n"
    "Options:\n"
    "  --writer ROLE   the writer role's name (default penlink_writer)\n"
    "  --reader ROLE   the reader role's name (default penlink_reader)\n"
    "\n"
    "push sends the archive (--archive, else $PENLINK_ARCHIVE, else the default\n"
    "file) to the archive named by --to: a laptop's archive to the chain's server\n"
    "once an offline site is back. Each pen's log is checked on the way as\n"
    "penlink verify checks it (hash chain, signed heads, records against their\n"
    "chunks), and only what verifies is stored, committed at signed heads. What\n"
    "the server holds already is recognised, never stored twice: running push\n"
    "again after an interruption completes it, and a push with nothing new\n"
    "changes nothing. A record the server holds with other content is kept as it\n"
    "is (alarm conflict there); a log that does not verify is refused from its\n"
    "first broken link on, named by pen and seq (alarm unverified there). Device\n"
    "keys replaced with penlink keys replace go along, placed so that the heads\n"
    "after each verify there with the new key.\n"
    "\n"
    "  -t, --to URI      where to push: postgresql://..., service=NAME, or a file\n"
    "  -p, --pen SERIAL  one pen (default: every pen of the archive)\n"
    "\n"
    "Exit status: 0 every pen pushed; 6 a log that does not verify, a conflict or\n"
    "a pen pinned to another key on the server (the other pens are pushed); 7 an\n"
    "archive cannot be read or written (what was committed stays: push again).\n";

static void say(void *user, const char *line)
{
    json_t *lines = user;
    if (lines)
        json_array_append_new(lines, json_string(line));
    else
        printf("%s\n", line);
}

/* --writer and --reader have no short form (their getopt string is "h") */
enum { OPT_WRITER = 256, OPT_READER };
const struct option cli_archive_init_server_options[] = {
    { "writer", required_argument, NULL, OPT_WRITER },
    { "reader", required_argument, NULL, OPT_READER },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static int init_server(struct cli *c, int argc, char **argv)
{
    const char *writer = "penlink_writer", *reader = "penlink_reader";
    int opt;
    while ((opt = getopt_long(argc, argv, "h", cli_archive_init_server_options, NULL)) != -1) {
        switch (opt) {
        case OPT_WRITER: writer = optarg; break;
        case OPT_READER: reader = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *uri = c->archive ? c->archive : getenv("PENLINK_ARCHIVE");
    if (!uri || !*uri)
        return cli_error(c, EXIT_USAGE,
                         "archive init-server: name the server with --archive URI (or "
                         "PENLINK_ARCHIVE)");
    json_t *lines = c->json ? json_array() : NULL;
    int st = penlink_archive_init_server(c->ctx, uri, writer, reader, say, lines);
    if (st != PENLINK_OK) {
        json_decref(lines);
        return cli_fail(c, "archive init-server", st);
    }
    if (lines)
        cli_json_out(
            json_pack("{s:o, s:s, s:s}", "done", lines, "writer", writer, "reader", reader));
    return EXIT_OK;
}

typedef struct push_out {
    struct cli *c;
    int pens;
    uint64_t records;
} push_out;

static int on_pushed(void *user, const penlink_push_report *r)
{
    push_out *o = user;
    o->pens++;
    o->records += r->records_new;
    if (o->c->json) {
        json_t *j = json_pack(
            "{s:o, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "serial", cli_json_str(r->serial),
            "state",
            r->status == PENLINK_OK ? "ok"
            : r->conflicts          ? "conflict"
                                    : "refused",
            "records", (json_int_t)r->records_new, "records_held", (json_int_t)r->records_same,
            "conflicts", (json_int_t)r->conflicts, "chunks", (json_int_t)r->chunks_new, "heads",
            (json_int_t)r->heads_new, "alarms", (json_int_t)r->alarms_new, "configs",
            (json_int_t)r->configs_new, "next_seq", (json_int_t)r->next_seq);
        json_object_set_new(j, "key_replacements", json_integer((json_int_t)r->keys_new));
        if (r->status != PENLINK_OK) {
            json_object_set_new(j, "detail", cli_json_str(r->detail));
            if (!r->conflicts)
                json_object_set_new(j, "seq", json_integer((json_int_t)r->where_seq));
        }
        cli_json_out(j);
        return 0;
    }
    if (o->c->quiet && r->status == PENLINK_OK)
        return 0;
    printf("%-12s %" PRIu64 " new records (%" PRIu64 " held already), %" PRIu64 " chunks, %" PRIu64
           " signed heads, %" PRIu64 " alarms, %" PRIu64 " configuration entries\n",
           cli_safe(r->serial), r->records_new, r->records_same, r->chunks_new, r->heads_new,
           r->alarms_new, r->configs_new);
    if (r->keys_new)
        printf("  %" PRIu64 " device key replacements (penlink keys replace)\n", r->keys_new);
    if (r->status != PENLINK_OK)
        printf("  %s: %s\n", r->conflicts ? "CONFLICT" : "REFUSED", cli_safe(r->detail));
    return 0;
}

const struct option cli_archive_push_options[] = {
    { "to", required_argument, NULL, 't' },
    { "pen", required_argument, NULL, 'p' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

static int push(struct cli *c, int argc, char **argv)
{
    const char *to = NULL, *pen = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "t:p:h", cli_archive_push_options, NULL)) != -1) {
        switch (opt) {
        case 't': to = optarg; break;
        case 'p': pen = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc || !to || !*to) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    penlink_archive *from = NULL, *dst = NULL;
    int st = penlink_archive_open_existing(c->ctx, c->archive, &from);
    if (st != PENLINK_OK)
        return cli_fail(c, "archive push: cannot open the archive", st);
    st = penlink_archive_open(c->ctx, to, &dst);
    if (st != PENLINK_OK) {
        penlink_archive_close(from);
        return cli_fail(c, "archive push: cannot open the archive to push to", st);
    }
    push_out o = { c, 0, 0 };
    struct cli_work *work = cli_work_begin(c, NULL, 0);
    st = penlink_archive_push(from, dst, pen, on_pushed, &o);
    cli_work_end(work);
    penlink_archive_close(dst);
    penlink_archive_close(from);
    if (st != PENLINK_OK)
        return cli_fail(c, "archive push", st);
    if (!c->json && !c->quiet)
        printf("%d pens, %" PRIu64 " new records pushed\n", o.pens, o.records);
    return EXIT_OK;
}

int cmd_archive(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "init-server") == 0)
        return init_server(c, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "push") == 0)
        return push(c, argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    fputs(usage, stderr);
    return EXIT_USAGE;
}
