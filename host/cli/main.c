/*
 * penlink: the command line tool of the penlink toolchain. This file holds the
 * global options and the dispatch to one file per subcommand (cmd_*.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char usage_head[] =
    "Usage: penlink [GLOBAL OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Talk to a microneedling pen over USB: read its state, pull its usage log\n"
    "without losing a record, fix its configuration and clock, decode logs.\n"
    "\n"
    "Commands:\n";
static const char usage_tail[] =
    "\n"
    "Global options:\n"
    "  -d, --device URI  usb (the only pen plugged in), usb:SERIAL, usb:BUS-PORT.PORT\n"
    "                  (the pen on that USB port, as 'penlink list' shows it), or\n"
    "                  sim:PATH (a simulated pen's socket); default: $PENLINK_DEVICE,\n"
    "                  else usb\n"
    "      --archive PATH|URI  the archive: a SQLite file, or a PostgreSQL server\n"
    "                  (postgresql://user@host/db, service=NAME); default:\n"
    "                  $PENLINK_ARCHIVE, else $XDG_DATA_HOME/penlink/archive.db\n"
    "                  (~/.local/share/penlink/archive.db)\n"
    "      --timeout MS  wait MS milliseconds for each reply of the pen (default\n"
    "                  2000; a slow or distant link may need more)\n"
    "      --trace FILE  record every frame of the session as pcapng (Wireshark)\n"
    "  --json          machine-readable output on stdout (JSON lines, schema 1:\n"
    "                  docs/json.md), errors as JSON on stderr\n"
    "  -q, --quiet     print only what was asked for, and errors\n"
    "  -v, --verbose   say more about what happens\n"
    "  -h, --help      this help; `penlink COMMAND --help` for a command\n"
    "  -V, --version   print the version\n"
    "\n"
    "Exit status:\n"
    "  0 success, 1 compliance finding, 2 usage error (also a key file that\n"
    "  cannot be used: a public key, or one others can read), 3 no device (not\n"
    "  found, permission denied, busy, unplugged, or several pens and none\n"
    "  chosen), 4 device error (the pen refused), 5 protocol error (or timeout),\n"
    "  6 integrity error, 7 I/O error (a file, a --dir, or standard output: a\n"
    "  full disk, a closed pipe), 8 internal error, 9 not authorised (a key the\n"
    "  pen does not accept, or a signature it refused), 10 a report audit\n"
    "  --check-report cannot confirm (made by another penlink version),\n"
    "  130 interrupted.\n";

const char *cli_exit_name(int code)
{
    switch (code) {
    case EXIT_OK: return "ok";
    case EXIT_FINDING: return "finding";
    case EXIT_USAGE: return "usage";
    case EXIT_NO_DEVICE: return "no_device";
    case EXIT_DEVICE: return "device";
    case EXIT_PROTOCOL: return "protocol";
    case EXIT_INTEGRITY: return "integrity";
    case EXIT_IO: return "io";
    case EXIT_INTERNAL: return "internal";
    case EXIT_AUTH: return "auth";
    case EXIT_UNCONFIRMED: return "unconfirmed";
    case EXIT_CANCELLED: return "cancelled";
    default: return "unknown";
    }
}

/* One error line on stderr: text, or with --json one object with the
 * message, a machine code (@p name) and the exit code. */
static int error_line(const struct cli *c, int code, const char *name, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static int error_line(const struct cli *c, int code, const char *name, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (c->json) {
        json_t *o = json_pack("{s:o, s:s, s:i, s:i}", "error", cli_json_str(msg), "code", name,
                              "exit_code", code, "schema", CLI_JSON_SCHEMA);
        char *s = o ? json_dumps(o, CLI_JSON_FLAGS) : NULL;
        if (s)
            fprintf(stderr, "%s\n", s);
        else
            fprintf(stderr,
                    "{\"error\":\"out of memory\",\"code\":\"%s\",\"exit_code\":%d,"
                    "\"schema\":%d}\n",
                    name, code, CLI_JSON_SCHEMA);
        free(s);
        json_decref(o);
    } else {
        char safe[4 * sizeof msg];
        fprintf(stderr, "%s: %s\n", c->prog, cli_escape(safe, sizeof safe, msg));
    }
    return code;
}

int cli_error(const struct cli *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_line(c, code, cli_exit_name(code), fmt, ap);
    va_end(ap);
    return code;
}

int cli_error_status(const struct cli *c, int status, const char *fmt, ...)
{
    int code = cli_exit_for(status);
    va_list ap;
    va_start(ap, fmt);
    error_line(c, code, penlink_status_name(status), fmt, ap);
    va_end(ap);
    return code;
}

/* Subcommands and getopt_long tables of each command, for cli_commands. */
static const char *const config_subs[] = { "get", "set", "export", "import", "history", NULL };
static const char *const clock_subs[] = { "sync", NULL };
static const char *const audit_subs[] = { "annotate", NULL };
static const char *const export_subs[] = { "records", "treatments", NULL };
static const char *const keys_subs[] = { "generate", "show", "replace", NULL };
static const char *const archive_subs[] = { "init-server", "push", NULL };
static const char *const completion_subs[] = { "bash", "zsh", "fish", NULL };
static const struct option *const help_opts[] = { cli_help_options, NULL };
static const struct option *const identify_opts[] = { cli_identify_options, NULL };
static const struct option *const pull_opts[] = { cli_pull_options, NULL };
static const struct option *const decode_opts[] = { cli_decode_options, NULL };
static const struct option *const config_opts[] = { cli_config_options, cli_config_history_options,
                                                    NULL };
static const struct option *const clock_opts[] = { cli_clock_options, NULL };
static const struct option *const watch_opts[] = { cli_watch_options, NULL };
static const struct option *const audit_opts[] = { cli_audit_options, cli_audit_annotate_options,
                                                   NULL };
static const struct option *const export_opts[] = { cli_export_options, NULL };
static const struct option *const keys_opts[] = { cli_help_options, cli_keys_replace_options,
                                                  NULL };
static const struct option *const verify_opts[] = { cli_verify_options, NULL };
static const struct option *const archive_opts[] = { cli_archive_init_server_options,
                                                     cli_archive_push_options, NULL };

const struct cli_command cli_commands[] = {
    { "list", cmd_list,
      "  list                    the pens plugged in, by USB port, with label and model\n", NULL,
      help_opts },
    { "identify", cmd_identify,
      "  identify                make a pen blink and beep, to find it on the desk\n", NULL,
      identify_opts },
    { "info", cmd_info,
      "  info                    identity, log range, clock and limits of a pen\n", NULL,
      help_opts },
    { "pull", cmd_pull,
      "  pull [-o FILE]          pull new records into the archive (or FILE), then\n"
      "                          acknowledge them\n",
      NULL, pull_opts },
    { "decode", cmd_decode,
      "  decode FILE             print the records (--messages: and every message) of\n"
      "                          a file of frames or chunks, or of a capture\n",
      NULL, decode_opts },
    /* config history reads the archive (cmd_config_history.c); the other
     * verbs talk to the pen (cmd_config.c) */
    { "config", cmd_config_verbs,
      "  config get [KEY]        show the configuration (or one key)\n"
      "  config set KEY=VALUE..  change keys (checked against the pen's limits)\n"
      "  config export [FILE]    write the configuration as JSON\n"
      "  config import FILE      show the changes a JSON file makes, then apply them\n"
      "  config history          a pen's configuration history from the archive (who,\n"
      "                          when, old -> new)\n",
      config_subs, config_opts },
    { "clock", cmd_clock,
      "  clock sync              show the pen's clock drift; set it when 1 s or more\n", clock_subs,
      clock_opts },
    { "watch", cmd_watch,
      "  watch                   pull every pen that is plugged in, until interrupted\n", NULL,
      watch_opts },
    { "audit", cmd_audit,
      "  audit [--report R]      cartridge reuse, limits, integrity and usage from\n"
      "                          the archive; exit status 1 on a compliance finding\n"
      "  audit annotate FINDING  a note on a finding (who, when, why), kept beside it\n",
      audit_subs, audit_opts },
    { "export", cmd_export, "  export records|treatments  the archive as CSV or JSON lines\n",
      export_subs, export_opts },
    { "keys", cmd_keys,
      "  keys generate [FILE]    a technician key pair for signing configuration\n"
      "  keys show FILE          a key file's public key (hex) and fingerprint\n"
      "  keys replace --pen S    record a repaired pen's new device key\n",
      keys_subs, keys_opts },
    { "verify", cmd_verify,
      "  verify                  re-check the archive's signed logs; name what broke\n", NULL,
      verify_opts },
    { "archive", cmd_archive,
      "  archive init-server     set up a PostgreSQL server for a shared archive\n"
      "  archive push --to URI   send the archive to a shared one (an offline site)\n",
      archive_subs, archive_opts },
    { "completion", cmd_completion,
      "  completion bash|zsh|fish  the shell's completion script for penlink\n", completion_subs,
      help_opts },
    { NULL, NULL, NULL, NULL, NULL },
};

/* --timeout MS: 1..3600000. */
static int parse_timeout(struct cli *c, const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > 3600000)
        return -1;
    c->timeout_ms = (int)v;
    return 0;
}

/*
 * Global options may also follow the command ("penlink info --json"): they
 * are taken out of the command's arguments before its own parser runs.
 * No command uses these names for anything else.
 */
static int take_global_options(struct cli *c, int *argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            while (i < *argc)
                argv[out++] = argv[i++];
            break;
        }
        if (strcmp(a, "--json") == 0) {
            c->json = 1;
        } else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
            c->quiet = 1;
        } else if (strcmp(a, "--verbose") == 0 || strcmp(a, "-v") == 0) {
            c->verbose++;
        } else if (strncmp(a, "--archive=", 10) == 0) {
            c->archive = a + 10;
        } else if (strcmp(a, "--archive") == 0) {
            if (i + 1 >= *argc)
                return -1;
            c->archive = argv[++i];
        } else if (strncmp(a, "--timeout=", 10) == 0) {
            if (parse_timeout(c, a + 10) != 0)
                return -1;
        } else if (strcmp(a, "--timeout") == 0) {
            if (i + 1 >= *argc || parse_timeout(c, argv[++i]) != 0)
                return -1;
        } else if (strncmp(a, "--trace=", 8) == 0) {
            c->trace = a + 8;
        } else if (strcmp(a, "--trace") == 0) {
            if (i + 1 >= *argc)
                return -1;
            c->trace = argv[++i];
        } else if (strncmp(a, "--device=", 9) == 0) {
            c->device = a + 9;
        } else if (strcmp(a, "--device") == 0 || strcmp(a, "-d") == 0) {
            if (i + 1 >= *argc)
                return -1;
            c->device = argv[++i];
        } else {
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    *argc = out;
    return 0;
}

enum { OPT_JSON = 256, OPT_ARCHIVE, OPT_TIMEOUT, OPT_TRACE };
const struct option cli_global_options[] = {
    { "archive", required_argument, NULL, OPT_ARCHIVE },
    { "timeout", required_argument, NULL, OPT_TIMEOUT },
    { "trace", required_argument, NULL, OPT_TRACE },
    { "device", required_argument, NULL, 'd' },
    { "json", no_argument, NULL, OPT_JSON },
    { "quiet", no_argument, NULL, 'q' },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

static void print_usage(FILE *f)
{
    fputs(usage_head, f);
    for (const struct cli_command *cmd = cli_commands; cmd->name; cmd++)
        fputs(cmd->help, f);
    fputs(usage_tail, f);
}

static penlink_ctx *signal_ctx;
volatile sig_atomic_t cli_interrupted;

static void on_signal(int sig)
{
    cli_interrupted = sig;
    penlink_ctx_cancel(signal_ctx); /* only sets a flag: async-signal-safe */
}

/* --json anywhere on the command line (up to a "--"), before any option is
 * parsed: an error found in an option before it is JSON too. */
static int wants_json(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--json") == 0)
            return 1;
    return 0;
}

static int run(struct cli *c, int argc, char **argv)
{
    int opt;
    c->json = wants_json(argc, argv);
    /* '+': stop at the command name; its options belong to it. */
    while ((opt = getopt_long(argc, argv, "+d:qvhV", cli_global_options, NULL)) != -1) {
        switch (opt) {
        case OPT_JSON: c->json = 1; break;
        case 'd': c->device = optarg; break;
        case OPT_ARCHIVE: c->archive = optarg; break;
        case OPT_TRACE: c->trace = optarg; break;
        case OPT_TIMEOUT:
            if (parse_timeout(c, optarg) != 0)
                return cli_error(c, EXIT_USAGE,
                                 "--timeout takes milliseconds, 1 to 3600000, not '%s'", optarg);
            break;
        case 'q': c->quiet = 1; break;
        case 'v': c->verbose++; break;
        case 'h': print_usage(stdout); return EXIT_OK;
        case 'V': printf("penlink %s\n", penlink_version()); return EXIT_OK;
        default: print_usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        print_usage(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[optind];
    for (const struct cli_command *cmd = cli_commands; cmd->name; cmd++) {
        if (strcmp(name, cmd->name) == 0) {
            int sub_argc = argc - optind;
            char **sub_argv = argv + optind;
            if (take_global_options(c, &sub_argc, sub_argv) != 0)
                return cli_error(c, EXIT_USAGE,
                                 "--device, --archive and --trace need a value; --timeout "
                                 "takes milliseconds, 1 to 3600000");
            optind = 0; /* reset getopt for the subcommand's own table */
            if (penlink_ctx_new(&c->ctx) != PENLINK_OK)
                return cli_error(c, EXIT_INTERNAL, "out of memory");
            if (c->timeout_ms)
                penlink_ctx_set_timeout(c->ctx, c->timeout_ms, -1);
            if (c->trace && penlink_ctx_set_trace(c->ctx, c->trace) != PENLINK_OK) {
                int rc = cli_fail(c, "--trace", PENLINK_ERR_IO);
                penlink_ctx_free(c->ctx);
                return rc;
            }
            if (c->verbose)
                penlink_ctx_set_message_cb(c->ctx, cli_message_verbose, c);
            penlink_ctx_set_notice_cb(c->ctx, cli_notice, c);
            signal_ctx = c->ctx;
            struct sigaction sa;
            memset(&sa, 0, sizeof sa);
            sa.sa_handler = on_signal;
            sigaction(SIGINT, &sa, NULL);
            sigaction(SIGTERM, &sa, NULL);
            int rc = cmd->run(c, sub_argc, sub_argv);
            signal(SIGINT, SIG_DFL);
            signal(SIGTERM, SIG_DFL);
            /* a trace that could not be written to its end: an I/O error, said
             * after what the command did (which happened all the same) */
            const char *te = penlink_ctx_trace_error(c->ctx);
            if (te && !c->trace_told) {
                if (rc == EXIT_OK)
                    rc = cli_error(c, EXIT_IO, "%s: the command succeeded, but %s", name, te);
                else
                    cli_warn(c, "%s", te);
            }
            penlink_ctx_free(c->ctx);
            return rc;
        }
    }
    return cli_error(c, EXIT_USAGE, "unknown command '%s' (see 'penlink --help')", name);
}

/*
 * What a command printed must have reached standard output: a full disk
 * (> /dev/full), a quota or a vanished NFS server shows only in a write,
 * the last flush or the close. Then the output is incomplete: exit 7 with
 * the reason on stderr, whatever the command otherwise reported (its own
 * error, if any, was said first), except an interruption (130). The stream
 * itself stays open (tests and fuzzers run main() again); closing a
 * duplicate of its descriptor reports what the close would (NFS flushes on
 * each close).
 */
/* 1 when @p fd is a pipe (or socket) whose reader went away: a write
 * failed with EPIPE (SIGPIPE is ignored). */
static int reader_gone(int fd)
{
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    return fd >= 0 && poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP));
}

static int check_stdout(const struct cli *c, int rc)
{
    errno = 0;
    int bad = fflush(stdout) != 0;
    int err = errno;
    bad |= ferror(stdout) != 0;
    int fd = fileno(stdout) >= 0 ? dup(fileno(stdout)) : -1;
    if (fd >= 0 && close(fd) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (!bad || rc == EXIT_CANCELLED)
        return rc;
    if (!err) /* stdio keeps no errno: a pipe without a reader says so in poll() */
        err = reader_gone(fileno(stdout)) ? EPIPE : 0;
    return cli_error(c, EXIT_IO, "standard output: %s: the output is incomplete",
                     err ? strerror(err) : "a write failed");
}

int main(int argc, char **argv)
{
    struct cli c = { .prog = "penlink" };
    /* a reader that went away (`penlink ... | head -1`) makes the next write
     * fail with EPIPE instead of killing the process: the output is
     * incomplete, exit 7 with one line saying so (check_stdout), as for a
     * full disk */
    signal(SIGPIPE, SIG_IGN);
    return check_stdout(&c, run(&c, argc, argv));
}
