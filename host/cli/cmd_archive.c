/*
 * penlink archive init-server: a PostgreSQL server made ready for a shared
 * archive (docs/fleet.md).
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink --archive URI archive init-server [--writer ROLE] [--reader ROLE]\n"
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
    "  --reader ROLE   the reader role's name (default penlink_reader)\n";

static void say(void *user, const char *line)
{
    json_t *lines = user;
    if (lines)
        json_array_append_new(lines, json_string(line));
    else
        printf("%s\n", line);
}

static int init_server(struct cli *c, int argc, char **argv)
{
    static const struct option opts[] = {
        { "writer", required_argument, NULL, 'w' },
        { "reader", required_argument, NULL, 'r' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *writer = "penlink_writer", *reader = "penlink_reader";
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case 'w': writer = optarg; break;
        case 'r': reader = optarg; break;
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

int cmd_archive(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "init-server") == 0)
        return init_server(c, argc - 1, argv + 1);
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    fputs(usage, stderr);
    return EXIT_USAGE;
}
