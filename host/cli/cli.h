/* penlink CLI: shared declarations. The CLI uses only the public header. */
#ifndef PENLINK_CLI_H
#define PENLINK_CLI_H

#include <stdio.h>

#include "penlink/penlink.h"

/* Exit codes (documented in docs/penlink.1 and `penlink --help`). */
enum {
    EXIT_OK = 0,
    EXIT_FINDING = 1,    /* a compliance finding (audit) */
    EXIT_USAGE = 2,      /* bad command line */
    EXIT_NO_DEVICE = 3,  /* no pen found / not reachable */
    EXIT_DEVICE = 4,     /* the pen reported an error */
    EXIT_PROTOCOL = 5,   /* malformed frames, messages or chunks */
    EXIT_INTEGRITY = 6,  /* checksum or consistency failure */
    EXIT_IO = 7,         /* a file could not be read or written */
    EXIT_INTERNAL = 8,   /* out of memory, a bug */
    EXIT_AUTH = 9,       /* not authorised: unsigned or wrongly signed configuration */
    EXIT_CANCELLED = 130 /* interrupted (SIGINT / SIGTERM) */
};

struct cli {
    int json;    /* --json: machine-readable stdout, errors as JSON on stderr */
    int quiet;   /* --quiet: nothing but the requested output and errors */
    int verbose; /* --verbose */
    const char *prog;
    const char *device;  /* --device URI, else PENLINK_DEVICE, else "usb" */
    const char *archive; /* --archive PATH, else $XDG_DATA_HOME/penlink/archive.db */
    int timeout_ms;      /* --timeout MS, 0: the library's default */
    penlink_ctx *ctx;    /* cancelled by SIGINT / SIGTERM */
};

/* Prints one error line (text or JSON per --json) and returns @p code. */
int cli_error(const struct cli *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Maps a library status to an exit code. */
int cli_exit_for(int status);

/* Parses the arguments of a command whose only option is --help and which
 * takes @p nargs operands (any number when negative): -1 to go on
 * (operands from optind), else the
 * exit code to return (help printed, or a usage error). */
int cli_help_only(int argc, char **argv, const char *usage, int nargs);
/* Opens the pen of --device; on failure prints the error and returns its exit code. */
int cli_open(struct cli *c, penlink_dev **dev);
/* Prints the context's error for a failed library call; returns its exit code. */
int cli_fail(struct cli *c, const char *what, int status);
/* Prints a JSON value on stdout (compact, one line) and frees it. */
void cli_json_out(void *json);
/* Time as "2026-01-01T09:00:00.000Z". */
void cli_format_time(int64_t ms, char *buf, size_t cap);
/* Wall-clock now, ms since the epoch. */
int64_t cli_now_ms(void);

/* Pulls new records of an open pen into a frames file (resuming from its end),
 * syncs it, then acknowledges them. Shared by pull and watch. */
struct pull_opts {
    const char *path;
    int ack;
    int progress; /* draw a progress bar on stdout */
};
struct pull_summary {
    char serial[33];
    unsigned long long from_seq, next_seq, records, bytes, gap, acked_seq;
    int resumed;
};
int cli_pull_to_file(struct cli *c, penlink_dev *dev, const struct pull_opts *o,
                     struct pull_summary *s);
/* Pulls an open pen into the archive (--archive). Prints the summary unless
 * @p quiet_summary; returns an exit code. */
int cli_pull_to_archive(struct cli *c, penlink_dev *dev, int progress,
                        penlink_archive_pull_result *res);

int cmd_decode(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_info(struct cli *c, int argc, char **argv);
int cmd_pull(struct cli *c, int argc, char **argv);
int cmd_config(struct cli *c, int argc, char **argv);
int cmd_clock(struct cli *c, int argc, char **argv);
int cmd_watch(struct cli *c, int argc, char **argv);
int cmd_audit(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_keys(struct cli *c, int argc, char **argv);
int cmd_verify(struct cli *c, int argc, char **argv);

/* Shared by audit and export (cmd_audit.c): --tz ZONE, then --since and
 * --until DATE read in it (NULL when not given), checked and in order; the
 * pen filter (--pen, else --device usb:SERIAL), and whether the archive
 * holds that pen (a usage error naming its pens when not); a treatment as
 * CSV or JSON. Each returns EXIT_OK or the exit code after printing why. */
int cli_window(struct cli *c, const char *cmd, const char *tz, const char *since, const char *until,
               penlink_archive_filter *f);
int cli_pen_filter(struct cli *c, penlink_archive_filter *f, const char *pen);
int cli_pen_check(struct cli *c, penlink_archive *ar, const char *cmd, const char *serial);

/* penlink audit --format html (audit_html.c): the report of @p f into @p path
 * (NULL: standard output), made by @p operator_ (NULL: the OS user@host);
 * and --check-report PATH. Each returns an exit code. */
int cli_audit_html(struct cli *c, const penlink_archive_filter *f, const char *path,
                   const char *operator_);
int cli_audit_check_report(struct cli *c, const char *path);
/* The audit's results as JSON (audit_json.c): each returns a new json_t *
 * (NULL when out of memory), the one form of each result for the JSON
 * format, the HTML report's digest and export. */
extern const char cli_treatment_csv_header[];
void cli_treatment_csv(FILE *out, const penlink_treatment *t);
void *cli_treatment_json(const penlink_treatment *t);
void *cli_finding_json(const penlink_finding *f);
void *cli_usage_json(const penlink_usage *u);
void *cli_verification_json(const penlink_verification *v);
void *cli_summary_json(const penlink_audit_summary *s);
void *cli_config_json(const penlink_config_entry *e);
/* Whether a finding names a cartridge; its id "KIND:PEN:SEQ". */
int cli_finding_has_cartridge(const penlink_finding *f);
void cli_finding_id(const penlink_finding *f, char *buf, size_t cap);

#endif
