/*
 * penlink: the command line tool of the penlink toolchain. This file holds the
 * global options and the dispatch to one file per subcommand (cmd_*.c).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Talk to a microneedling pen's usage log: decode logs and captured frames.\n"
    "\n"
    "Commands:\n"
    "  decode FILE     print the records in a file of frames or chunks\n"
    "\n"
    "Global options:\n"
    "  --json          machine-readable output on stdout, errors as JSON on stderr\n"
    "  -q, --quiet     print only what was asked for, and errors\n"
    "  -v, --verbose   say more about what happens\n"
    "  -h, --help      this help; `penlink COMMAND --help` for a command\n"
    "  -V, --version   print the version\n"
    "\n"
    "Exit status:\n"
    "  0 success, 1 compliance finding, 2 usage error, 3 no device,\n"
    "  4 device error, 5 protocol error, 6 integrity error, 7 I/O error,\n"
    "  8 internal error.\n";

int cli_error(const struct cli *c, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->json) {
        json_t *o = json_pack("{s:s, s:i}", "error", msg, "exit_code", code);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        fprintf(stderr, "%s\n", s ? s : "{\"error\":\"out of memory\"}");
        free(s);
        json_decref(o);
    } else {
        fprintf(stderr, "%s: %s\n", c->prog, msg);
    }
    return code;
}

int cli_exit_for(int status)
{
    switch (status) {
    case PENLINK_OK: return EXIT_OK;
    case PENLINK_ERR_INVALID_ARG: return EXIT_USAGE;
    case PENLINK_ERR_IO: return EXIT_IO;
    case PENLINK_ERR_PROTOCOL:
    case PENLINK_ERR_UNSUPPORTED: return EXIT_PROTOCOL;
    case PENLINK_ERR_INTEGRITY: return EXIT_INTEGRITY;
    default: return EXIT_INTERNAL;
    }
}

static const struct {
    const char *name;
    int (*run)(struct cli *, int, char **);
} commands[] = {
    { "decode", cmd_decode },
};

int main(int argc, char **argv)
{
    struct cli c = { .prog = "penlink" };
    enum { OPT_JSON = 256 };
    static const struct option opts[] = {
        { "json", no_argument, NULL, OPT_JSON }, { "quiet", no_argument, NULL, 'q' },
        { "verbose", no_argument, NULL, 'v' },   { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },   { NULL, 0, NULL, 0 },
    };
    int opt;
    /* '+': stop at the command name; its options belong to it. */
    while ((opt = getopt_long(argc, argv, "+qvhV", opts, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: c.json = 1; break;
        case 'q': c.quiet = 1; break;
        case 'v': c.verbose++; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        case 'V': printf("penlink %s\n", penlink_version()); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;
            optind = 0; /* reset getopt for the subcommand's own table */
            return commands[i].run(&c, sub_argc, sub_argv);
        }
    }
    return cli_error(&c, EXIT_USAGE, "unknown command '%s' (see 'penlink --help')", name);
}
