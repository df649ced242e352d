/* penlink CLI: shared declarations. The CLI uses only the public header. */
#ifndef PENLINK_CLI_H
#define PENLINK_CLI_H

#include <stdio.h>

#include "penlink/penlink.h"

/* Exit codes (documented in docs/penlink.1 and `penlink --help`). */
enum {
    EXIT_OK = 0,
    EXIT_FINDING = 1,   /* a compliance finding (audit) */
    EXIT_USAGE = 2,     /* bad command line */
    EXIT_NO_DEVICE = 3, /* no pen found / not reachable */
    EXIT_DEVICE = 4,    /* the pen reported an error */
    EXIT_PROTOCOL = 5,  /* malformed frames, messages or chunks */
    EXIT_INTEGRITY = 6, /* checksum or consistency failure */
    EXIT_IO = 7,        /* a file could not be read or written */
    EXIT_INTERNAL = 8   /* out of memory, a bug */
};

struct cli {
    int json;    /* --json: machine-readable stdout, errors as JSON on stderr */
    int quiet;   /* --quiet: nothing but the requested output and errors */
    int verbose; /* --verbose */
    const char *prog;
};

/* Prints one error line (text or JSON per --json) and returns @p code. */
int cli_error(const struct cli *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a library status to an exit code. */
int cli_exit_for(int status);

int cmd_decode(struct cli *c, int argc, char **argv);

#endif
