/*
 * penlink clock sync: measure the pen's drift, and set its clock only when
 * the drift is worth a record (every setting logs a clock_set record the
 * audit reads); signed on a pen that takes only signed clock settings.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

/* Below this drift (ms) the clock is left alone: a setting costs a clock_set
 * record in the pen's log and in every audit, and a USB round trip already
 * measures to a few milliseconds. docs/technician-guide.md says why. */
#define CLOCK_SYNC_THRESHOLD_MS 1000
#define CLOCK_SYNC_THRESHOLD_MAX_MS 3600000

static const char usage[] =
    "Usage: penlink [--device URI] clock sync [--threshold MS] [--key FILE] [-h]\n"
    "\n"
    "Measure how far the pen's clock is ahead (+) or behind (-) this computer's\n"
    "(UTC), and set it when the drift is 1 s or more (--threshold): the pen logs\n"
    "a clock_set record with the step, so the audit can tell a corrected clock\n"
    "from a tampered one, and a smaller drift is not worth a record. Keep this\n"
    "computer's clock right (NTP) first.\n"
    "\n"
    "A pen provisioned with config keys takes only a signed clock setting\n"
    "(penlink info: \"clock signing required\"): --key FILE signs it, else\n"
    "~/.config/penlink/technician.key when it exists. A key the pen does not\n"
    "accept is refused before anything is sent (exit status 9).\n"
    "\n"
    "Options:\n"
    "  -t, --threshold MS  set the clock only when it is off by MS milliseconds or\n"
    "                      more (default 1000; 0: always)\n"
    "  -k, --key FILE      sign with this secret key\n"
    "  -h, --help          this help\n";

const struct option cli_clock_options[] = { { "threshold", required_argument, NULL, 't' },
                                            { "key", required_argument, NULL, 'k' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };

int cmd_clock(struct cli *c, int argc, char **argv)
{
    long threshold = CLOCK_SYNC_THRESHOLD_MS;
    const char *key_file = NULL;
    char *end;
    int opt;
    while ((opt = getopt_long(argc, argv, "t:k:h", cli_clock_options, NULL)) != -1) {
        switch (opt) {
        case 't':
            errno = 0;
            threshold = strtol(optarg, &end, 10);
            if (!*optarg || *end || errno || threshold < 0 ||
                threshold > CLOCK_SYNC_THRESHOLD_MAX_MS)
                return cli_error(c, EXIT_USAGE,
                                 "clock sync: --threshold takes milliseconds, 0 to %d, not '%s'",
                                 CLOCK_SYNC_THRESHOLD_MAX_MS, optarg);
            break;
        case 'k': key_file = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || strcmp(argv[optind], "sync") != 0) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    penlink_dev *dev = NULL;
    int rc = cli_open(c, &dev);
    if (rc != EXIT_OK)
        return rc;
    penlink_info info;
    penlink_key key;
    int have_key = 0;
    /* the pen read its clock about half a round trip after we read ours */
    int64_t before = cli_now_ms();
    int st = penlink_dev_info(dev, &info);
    int64_t after = cli_now_ms();
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "clock sync", st);
        goto out;
    }
    int64_t drift = info.device_time_ms - (before + (after - before) / 2);
    int64_t size = drift < 0 ? -drift : drift;
    double secs = (double)size / 1e3;
    const char *dir = drift < 0 ? "behind" : "ahead of";
    if (size < threshold) {
        if (c->json)
            cli_json_out(json_pack("{s:o, s:I, s:I, s:b}", "serial", cli_json_str(info.serial),
                                   "drift_ms", (json_int_t)drift, "threshold_ms",
                                   (json_int_t)threshold, "set", 0));
        else if (!c->quiet)
            printf("%s: clock %.3f s %s this computer's, within %.3f s: left as it is (no "
                   "clock_set logged)\n",
                   cli_safe(info.serial), secs, dir, (double)threshold / 1e3);
        goto out;
    }
    rc =
        cli_signing_key(c, "clock sync", &info, (info.features & PENLINK_FEATURE_SIGNED_CLOCK) != 0,
                        key_file, &key, &have_key);
    if (rc != EXIT_OK)
        goto out;
    int64_t now = cli_now_ms(), previous = 0;
    st = penlink_dev_clock_set_signed(dev, now, have_key ? &key : NULL, &previous);
    after = cli_now_ms();
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "clock sync", st);
        goto out;
    }
    /* the drift the pen's own answer shows, as it was when corrected */
    drift = previous - (now + (after - now) / 2);
    size = drift < 0 ? -drift : drift;
    char t[40], pt[40];
    cli_format_time(now, t, sizeof t);
    cli_format_time(previous, pt, sizeof pt);
    if (c->json)
        cli_json_out(json_pack("{s:o, s:I, s:I, s:s, s:I, s:s, s:I, s:b, s:b}", "serial",
                               cli_json_str(info.serial), "drift_ms", (json_int_t)drift,
                               "previous_time_ms", (json_int_t)previous, "previous_time", pt,
                               "time_ms", (json_int_t)now, "time", t, "threshold_ms",
                               (json_int_t)threshold, "set", 1, "signed", have_key));
    else if (!c->quiet)
        printf("%s: pen clock was %.3f s %s; set to %s%s\n", cli_safe(info.serial),
               (double)size / 1e3, drift < 0 ? "behind" : "ahead", t, have_key ? " (signed)" : "");
out:
    penlink_dev_close(dev);
    return rc;
}
