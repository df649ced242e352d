/* penlink CLI: shared declarations. The CLI uses only the public header. */
#ifndef PENLINK_CLI_H
#define PENLINK_CLI_H

#include <getopt.h>
#include <signal.h>
#include <stdio.h>

#include "penlink/penlink.h"

/* Exit codes (documented in docs/penlink.1 and `penlink --help`). */
enum {
    EXIT_OK = 0,
    EXIT_FINDING = 1,      /* a compliance finding (audit) */
    EXIT_USAGE = 2,        /* bad command line */
    EXIT_NO_DEVICE = 3,    /* no pen found / not reachable */
    EXIT_DEVICE = 4,       /* the pen reported an error */
    EXIT_PROTOCOL = 5,     /* malformed frames, messages or chunks */
    EXIT_INTEGRITY = 6,    /* checksum or consistency failure */
    EXIT_IO = 7,           /* a file could not be read or written */
    EXIT_INTERNAL = 8,     /* out of memory, a bug */
    EXIT_AUTH = 9,         /* not authorised: unsigned or wrongly signed configuration */
    EXIT_UNCONFIRMED = 10, /* audit --check-report: a report that cannot be confirmed */
    EXIT_CANCELLED = 130   /* interrupted (SIGINT / SIGTERM) */
};

struct cli_progress;

struct cli {
    int json;    /* --json: machine-readable stdout, errors as JSON on stderr */
    int quiet;   /* --quiet: nothing but the requested output and errors */
    int verbose; /* --verbose */
    const char *prog;
    const char *device;  /* --device URI, else PENLINK_DEVICE, else "usb" */
    const char *archive; /* --archive PATH|URI, else $PENLINK_ARCHIVE, else the default file */
    int timeout_ms;      /* --timeout MS, 0: the library's default */
    const char *trace;   /* --trace FILE: every frame of the session, as pcapng */
    penlink_ctx *ctx;    /* cancelled by SIGINT / SIGTERM */
    int trace_told;      /* the command said that its --trace is incomplete */
    struct cli_progress *progress; /* a pull's progress being shown (progress.c), or NULL */
};

/* Set (to the signal's number) by SIGINT / SIGTERM while a command runs. */
extern volatile sig_atomic_t cli_interrupted;

/*
 * Prints one error line (text or JSON per --json) and returns @p code. The
 * whole message crosses the boundary below (cli_escape, cli_json_str), so
 * pass strings from a pen or the archive to it raw, never pre-escaped.
 */
int cli_error(const struct cli *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same for a failed library call: exit code cli_exit_for(@p status),
 * and with --json its "code" is penlink_status_name(@p status) rather than
 * the exit code's name (cli_exit_name). */
int cli_error_status(const struct cli *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The machine name of an exit code ("usage", "io", ...; docs/json.md). */
const char *cli_exit_name(int code);
/* "penlink: warning: ..." on stderr, escaped like cli_error's text. */
void cli_warn(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * The one boundary for strings that came from a pen or the archive (serial,
 * model, firmware, labels, details, the pen's error messages): every one
 * passes here before a terminal, a CSV or JSON output, or a file name.
 *
 * For terminals (and CSV): printable text is kept; a backslash becomes
 * "\\", newline, CR, tab and ESC "\n" "\r" "\t" "\e", other control bytes
 * and bytes that are not UTF-8 "\xNN", C1 controls and invisible or
 * direction-changing characters "\uNNNN". cli_escape writes to @p buf (at
 * most @p cap - 1 bytes; a string cut short ends in "...") and returns it;
 * cli_safe returns one of 8 rotating static buffers of 2 KiB, so up to 8
 * may be used in one printf.
 */
char *cli_escape(char *buf, size_t cap, const char *s);
const char *cli_safe(const char *s);
/* A @p cap for cli_escape that never cuts a string of @p n bytes: no piece
 * grows more than 4 times (a byte that is not UTF-8 becomes "\xNN"), and
 * room for "..." is always kept. */
#define CLI_ESCAPED_CAP(n) (4 * (size_t)(n) + 4)
/* A JSON string (json_t *) for @p s, never NULL and never refused: valid
 * UTF-8 is kept exactly, each byte that is not becomes the text "\xNN". */
void *cli_json_str(const char *s);
/* A JSON value (json_t *) for an unsigned 64-bit count or seq: an integer up
 * to 2^63 - 1, above it (a damaged row's stored seq) its decimal text, since
 * no JSON integer a reader keeps holds it; never negative. */
void *cli_json_u64(uint64_t v);
/* A configuration key's value in @p cfg as JSON (json_t *): a number, or a
 * string for a text key (the schema-1 form, whether present or not). */
void *cli_config_value_json(const penlink_config *cfg, const penlink_config_key *k);
/* The same as text: "2500", or a text key quoted, "\"Room 2\"". */
void cli_config_value_text(const penlink_config *cfg, const penlink_config_key *k, char *buf,
                           size_t cap);
/* One CSV field: escaped as for terminals (whole, however long), quoted
 * (RFC 4180) when it holds a comma or a quote, and a field that starts with
 * = + - @ gets a leading ' so that no spreadsheet runs it as a formula. */
void cli_csv_text(FILE *f, const char *s);
/* Longest serial that names a file. */
#define CLI_FILENAME_SERIAL_MAX 64
/* 1 when @p s may name a file: 1..CLI_FILENAME_SERIAL_MAX of [A-Za-z0-9._-],
 * not starting with '.'. Anything else is refused, never rewritten. */
int cli_filename_ok(const char *s);
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
/* The version of the --json forms (docs/json.md): every object printed
 * carries "schema": CLI_JSON_SCHEMA (cli_json_line adds it). */
#define CLI_JSON_SCHEMA 1 /* config_json.h's CONFIG_JSON_SCHEMA is the same */
/* Prints a JSON value on stdout (compact, one line, ASCII) and frees it. */
void cli_json_out(void *json);
/* The same on @p f. */
void cli_json_line(FILE *f, void *json);
/* json_dumps flags of every JSON output: compact, in order, ASCII only. */
#define CLI_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII)
/* Time as "2026-01-01T09:00:00.000Z". */
void cli_format_time(int64_t ms, char *buf, size_t cap);

/* A pull's progress on stderr (progress.c): a line redrawn 4 times a second
 * on a terminal, a line every few seconds in a log, JSON events with --json,
 * nothing with --quiet (then begin returns NULL; every call takes NULL).
 * update is the pull's on_progress; end draws what was kept, ends the line. */
struct cli_progress *cli_progress_begin(struct cli *c, const char *serial);
void cli_progress_update(struct cli_progress *g, const penlink_progress *p);
void cli_progress_end(struct cli_progress *g, uint64_t records, int ok);
/* The archive's long work (push, verify, audit, export) on stderr (progress.c):
 * begin sets c->ctx's progress callback (penlink_ctx_set_progress_cb), end
 * unsets it. A bar per pen on a terminal, JSON events with --json, nothing
 * in a log or with --quiet (then begin returns NULL; end takes NULL). @p as
 * names the work in what is shown (NULL: the library's name for it);
 * @p streams: the command prints its results on stdout while the work goes
 * on (then no line is drawn when stdout is a terminal too). */
struct cli_work;
struct cli_work *cli_work_begin(struct cli *c, const char *as, int streams);
void cli_work_end(struct cli_work *w);
/* The library's notices (penlink_ctx_set_notice_cb; user: the struct cli),
 * on stderr between the progress line's redraws. */
void cli_notice(void *user, const char *text);

/* Where the default technician key is ($XDG_CONFIG_HOME/penlink/technician.key,
 * else ~/.config/penlink/technician.key); penlink_key_generate() makes its
 * directory. 0, or -1 when there is no place for it. */
int cli_default_key_path(char *buf, size_t cap);
/* The signing key for a change to @p info's pen: @p key_file when given;
 * else, when the pen requires signing (@p need), the default technician key
 * if it exists (said on stderr unless --quiet); else none. The key must be
 * one the pen accepts: otherwise exit 9 naming the pen's keys by
 * fingerprint, before anything is sent. Returns EXIT_OK with *@p have set
 * (0: no key), or the exit code after printing the error. @p what names
 * the command ("config set"). */
int cli_signing_key(struct cli *c, const char *what, const penlink_info *info, int need,
                    const char *key_file, penlink_key *key, int *have);

/* What a pull that stopped leaves behind, in words on stderr (pull_file.c):
 * what is kept in @p where (@p kept records from @p from_seq, none
 * acknowledged, or an acknowledgement sent and not confirmed), what is
 * still only on the pen (when the pen's count can be believed), and what to
 * do next: when it stopped midway (the pen gone or hung, or interrupted),
 * that the next pull resumes. */
struct pull_stop {
    const char *serial; /* NULL: the pen did not say */
    const char *where;  /* "the archive", a file */
    int status;         /* the library's status */
    int midway;         /* the pen gone or hung, or interrupted */
    int have_seq;       /* from_seq and next_seq are known */
    uint64_t from_seq, next_seq, kept;
    uint64_t received;        /* new records the pen sent (kept or not) */
    uint64_t pen_next_seq;    /* what the pen said it holds (0: unknown) */
    uint64_t pen_acked_seq;   /* and acknowledged */
    uint64_t capacity_bytes;  /* its flash (0: unknown): no more records than that */
    int signs;                /* the pen signs its log: only what a signed head covers is kept */
    uint64_t ack_unconfirmed; /* an acknowledgement below this seq sent, not confirmed */
};
void cli_pull_stopped(struct cli *c, const struct pull_stop *s);
/* Which statuses stop a pull half way, the records before kept: the pen gone,
 * hung, or the pull interrupted. */
int cli_stopped_midway(int status);

/* Pulls new records of an open pen into a frames file (resuming from its end),
 * syncs it, then acknowledges them. Shared by pull and watch. */
struct pull_opts {
    const char *path;
    int ack;
    int progress; /* show the pull's progress on stderr (cli_progress_begin) */
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

/* Protocol messages (messages.c): one line, and with @p fields every field,
 * each line starting with @p prefix; one JSON object (a json_t *); and the
 * session callback of -v / -vv (user: the struct cli), lines on stderr. */
void cli_message_text(FILE *f, const penlink_message *m, int fields, const char *prefix);
void *cli_message_json(const penlink_message *m);
int cli_message_verbose(void *user, const penlink_message *m);

int cmd_decode(struct cli *c, int argc, char **argv);
int cmd_list(struct cli *c, int argc, char **argv);
int cmd_info(struct cli *c, int argc, char **argv);
int cmd_pull(struct cli *c, int argc, char **argv);
int cmd_config(struct cli *c, int argc, char **argv);
/* config history (cmd_config_history.c), from the archive; and the config
 * command of the table: history there, every other verb to cmd_config. */
int cmd_config_history(struct cli *c, int argc, char **argv);
int cmd_config_verbs(struct cli *c, int argc, char **argv);
int cmd_clock(struct cli *c, int argc, char **argv);
int cmd_watch(struct cli *c, int argc, char **argv);
int cmd_audit(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_keys(struct cli *c, int argc, char **argv);
int cmd_verify(struct cli *c, int argc, char **argv);
int cmd_archive(struct cli *c, int argc, char **argv);
int cmd_identify(struct cli *c, int argc, char **argv);
int cmd_completion(struct cli *c, int argc, char **argv);

/* The audit's key replacements (audit_keys.c): loaded while the archive is
 * open, then shown in the integrity report (table and JSON); the HTML
 * report reads them with count/get. */
struct cli_keyrepl;
int cli_keyrepl_load(struct cli *c, penlink_archive *ar, const char *serial,
                     struct cli_keyrepl **out);
void cli_keyrepl_table(const struct cli_keyrepl *k);
void cli_keyrepl_json(const struct cli_keyrepl *k);
size_t cli_keyrepl_count(const struct cli_keyrepl *k);
const penlink_key_replacement *cli_keyrepl_get(const struct cli_keyrepl *k, size_t i);
void cli_keyrepl_free(struct cli_keyrepl *k);

/*
 * The command table (main.c): dispatch, the Commands section of --help and
 * the shell completions (`penlink completion`) all come from it, so a command,
 * subcommand or option added here and to its getopt_long table appears in all
 * three.
 */
struct cli_command {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
    const char *help;                    /* its lines of --help's Commands section */
    const char *const *subcommands;      /* NULL-terminated, or NULL */
    const struct option *const *options; /* its getopt_long tables (one per subcommand
                                            that has its own), NULL-terminated */
};
extern const struct cli_command cli_commands[]; /* ends with a NULL name */
extern const struct option cli_global_options[];

/* The getopt_long tables of the commands, for the command table. */
extern const struct option cli_help_options[]; /* --help only (cli_help_only) */
extern const struct option cli_archive_init_server_options[];
extern const struct option cli_archive_push_options[];
extern const struct option cli_audit_options[];
extern const struct option cli_audit_annotate_options[];
extern const struct option cli_clock_options[];
extern const struct option cli_config_options[];
extern const struct option cli_config_history_options[];
extern const struct option cli_decode_options[];
extern const struct option cli_export_options[];
extern const struct option cli_identify_options[];
extern const struct option cli_keys_replace_options[];
extern const struct option cli_pull_options[];
extern const struct option cli_verify_options[];
extern const struct option cli_watch_options[];

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
/* What the audit read (its records from the pens' chained and signed chunks,
 * @p chunks of them; the record rows not compared) and, as verify's claim,
 * the last verdict penlink verify stored per pen (@p claims, a JSON array from
 * cli_verify_claims_json; the line takes it over). */
void *cli_audit_scope_json(uint64_t chunks, void *claims);
/* The last stored penlink verify verdict of each of the @p n pens (json_t *
 * array, NULL when out of memory or the archive failed): a claim, shown as
 * verify's, never used by the audit. */
void *cli_verify_claims_json(penlink_archive *ar, const penlink_verification *v, size_t n);
/* The chunks the audit read of the @p n pens. */
uint64_t cli_audit_chunks(const penlink_verification *v, size_t n);
/* The pens of @p v whose chain and signed heads the audit checked (a pinned
 * key) and those that do not sign (nothing chained or signed to check). */
void cli_audit_pens_signing(const penlink_verification *v, size_t n, size_t *signing,
                            size_t *unsigned_pens);
/* Adds those counts to a scope line of cli_audit_scope_json (the audit's
 * output only: the report's data digest keeps the line without them). */
void cli_audit_scope_pens_json(void *scope, const penlink_verification *v, size_t n);
/* Those counts in words: "2 pens signing: chain and signed heads checked; ...". */
#define CLI_SCOPE_WORDS 160
void cli_audit_scope_words(char *buf, size_t cap, const penlink_verification *v, size_t n);
/* The scope as the table prints it: "Records: read from ..." and verify's claims. */
void cli_audit_scope_text(FILE *out, const penlink_verification *v, size_t n, const void *claims);
void *cli_key_replacement_json(const penlink_key_replacement *r);
void *cli_summary_json(const penlink_audit_summary *s);
void *cli_config_json(const penlink_config_entry *e);
/* Whether a finding names a cartridge; its id "KIND:PEN:SEQ". */
int cli_finding_has_cartridge(const penlink_finding *f);
void cli_finding_id(const penlink_finding *f, char *buf, size_t cap);

#endif
