/* Helpers every subcommand shares: opening the pen, errors, JSON, time. */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

int cli_exit_for(int status)
{
    switch (status) {
    case PENLINK_OK: return EXIT_OK;
    case PENLINK_ERR_INVALID_ARG: return EXIT_USAGE;
    case PENLINK_ERR_IO: return EXIT_IO;
    case PENLINK_ERR_NOT_FOUND:
    case PENLINK_ERR_ACCESS:
    case PENLINK_ERR_BUSY:
    case PENLINK_ERR_GONE:
    case PENLINK_ERR_AMBIGUOUS: return EXIT_NO_DEVICE;
    case PENLINK_ERR_DEVICE:
    case PENLINK_ERR_CONFLICT:
    case PENLINK_ERR_INVALID_CONFIG: return EXIT_DEVICE;
    case PENLINK_ERR_AUTH: return EXIT_AUTH;
    case PENLINK_ERR_PROTOCOL:
    case PENLINK_ERR_UNSUPPORTED:
    case PENLINK_ERR_TIMEOUT:
    case PENLINK_ERR_VERSION: return EXIT_PROTOCOL;
    case PENLINK_ERR_INTEGRITY: return EXIT_INTEGRITY;
    case PENLINK_ERR_CANCELLED: return EXIT_CANCELLED;
    default: return EXIT_INTERNAL;
    }
}

int cli_fail(struct cli *c, const char *what, int status)
{
    const char *detail = penlink_ctx_errmsg(c->ctx);
    return cli_error(c, cli_exit_for(status), "%s: %s", what,
                     detail && *detail ? detail : penlink_strerror(status));
}

int cli_help_only(int argc, char **argv, const char *usage, int nargs)
{
    static const struct option opts[] = { { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    int opt;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return EXIT_OK;
        }
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (nargs >= 0 && argc - optind != nargs) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    return -1;
}

int cli_open(struct cli *c, penlink_dev **dev)
{
    int st = penlink_dev_open(c->ctx, c->device, dev);
    if (st != PENLINK_OK)
        return cli_fail(c, "cannot open the pen", st);
    return EXIT_OK;
}

void cli_json_out(void *json)
{
    char *s = json ? json_dumps(json, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(json);
}

void cli_format_time(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        s -= 1;
    }
    struct tm tm;
    if (!gmtime_r(&s, &tm)) {
        snprintf(buf, cap, "%lld", (long long)ms);
        return;
    }
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03dZ", frac);
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
