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
#include "clock.h"

/* Below this drift (ms) the clock is left alone: a setting costs a clock_set
 * record in the pen's log and in every audit, and a USB round trip already
 * measures to a few milliseconds. docs/technician-guide.md says why. */
#define CLOCK_SYNC_THRESHOLD_MS 1000
#define CLOCK_SYNC_THRESHOLD_MAX_MS 3600000
#define DAY_MS 86400000LL

/* The day this penlink was built (host/CMakeLists.txt; SOURCE_DATE_EPOCH
 * when set): a computer whose clock is before it is surely wrong. */
#ifndef PENLINK_BUILD_EPOCH_S
#define PENLINK_BUILD_EPOCH_S 0
#endif

static const char usage[] =
    "Usage: penlink [--device URI] clock sync [--threshold MS] [--key FILE] [--force]\n"
    "\n"
    "Measure how far the pen's clock is ahead (+) or behind (-) this computer's\n"
    "(UTC), and set it when the drift is 1 s or more (--threshold): the pen logs\n"
    "a clock_set record with the step, so the audit can tell a corrected clock\n"
    "from a tampered one, and a smaller drift is not worth a record. Keep this\n"
    "computer's clock right (NTP) first: penlink refuses (exit status 2, nothing\n"
    "sent) to set the pen to a time before the pen's newest record or before\n"
    "the day this penlink was built, which only a wrong computer clock gives,\n"
    "unless --force.\n"
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
    "  -f, --force         set the pen to this computer's time even when it is\n"
    "                      before the pen's newest record or this penlink's build\n"
    "  -h, --help          this help\n";

const struct option cli_clock_options[] = { { "threshold", required_argument, NULL, 't' },
                                            { "key", required_argument, NULL, 'k' },
                                            { "force", no_argument, NULL, 'f' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };

/* The newest record's time among those the pen holds (a pull of its last
 * chunk, nothing acknowledged). */
static int take_time(void *user, const penlink_record *r)
{
    int64_t *newest = user;
    if (r->time_ms > *newest)
        *newest = r->time_ms;
    return 0;
}

/*
 * A computer clock that is surely wrong: before the day this penlink was
 * built, or before the newest record the pen holds. Setting the pen to it
 * would move its clock back over its own log (a treatment hidden from a
 * window). Refused unless --force; EXIT_OK when the clock is credible.
 */
static int check_host_clock(struct cli *c, penlink_dev *dev, const penlink_info *info, int force)
{
    int64_t now = pc_wall_ms(), newest = INT64_MIN;
    int64_t built = (int64_t)PENLINK_BUILD_EPOCH_S * 1000 / DAY_MS * DAY_MS;
    if (info->log_next_seq > info->log_first_seq) {
        penlink_pull_cb cb = { .size = sizeof(penlink_pull_cb),
                               .on_record = take_time,
                               .on_overlap = take_time,
                               .user = &newest };
        int st = penlink_dev_pull(dev, info->log_next_seq - 1, &cb, NULL);
        if (st != PENLINK_OK)
            return cli_fail(c, "clock sync: reading the pen's newest record", st);
    }
    char t[40], when[40];
    cli_format_time(now, t, sizeof t);
    if (newest != INT64_MIN && now < newest) {
        cli_format_time(newest, when, sizeof when);
        if (force) {
            cli_warn(c,
                     "this computer's clock (%s) is before pen %s's newest record (%s): set "
                     "anyway (--force)",
                     t, info->serial, when);
            return EXIT_OK;
        }
        return cli_error(c, EXIT_USAGE,
                         "clock sync: this computer's clock says %s, before pen %s's newest "
                         "record (%s): setting the pen to it would move its clock back over its "
                         "own log. This computer's clock is probably wrong: set it right (NTP) "
                         "and sync again. Nothing was sent; only if the pen's clock is the wrong "
                         "one (it ran ahead and stamped its records so), --force sets it",
                         t, info->serial, when);
    }
    if (now < built) {
        cli_format_time(built, when, sizeof when);
        if (force) {
            cli_warn(c,
                     "this computer's clock (%s) is before this penlink was built (%.10s): set "
                     "anyway (--force)",
                     t, when);
            return EXIT_OK;
        }
        return cli_error(c, EXIT_USAGE,
                         "clock sync: this computer's clock says %s, before this penlink was "
                         "built (%.10s): it is wrong. Set it right (NTP) and sync again; nothing "
                         "was sent (--force sets the pen to it anyway)",
                         t, when);
    }
    return EXIT_OK;
}

/* The command line: EXIT_OK to go on, else the exit status (--help is *done). */
static int clock_args(struct cli *c, int argc, char **argv, long *threshold, const char **key_file,
                      int *force, int *done)
{
    char *end;
    int opt;
    while ((opt = getopt_long(argc, argv, "t:k:fh", cli_clock_options, NULL)) != -1) {
        switch (opt) {
        case 't':
            errno = 0;
            *threshold = strtol(optarg, &end, 10);
            if (!*optarg || *end || errno || *threshold < 0 ||
                *threshold > CLOCK_SYNC_THRESHOLD_MAX_MS)
                return cli_error(c, EXIT_USAGE,
                                 "clock sync: --threshold takes milliseconds, 0 to %d, not '%s'",
                                 CLOCK_SYNC_THRESHOLD_MAX_MS, optarg);
            break;
        case 'k': *key_file = optarg; break;
        case 'f': *force = 1; break;
        case 'h':
            fputs(usage, stdout);
            *done = 1;
            return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || strcmp(argv[optind], "sync") != 0) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The pen's clock set to this computer's (signed with @p key when given), and what it was. */
static int set_clock(struct cli *c, penlink_dev *dev, const penlink_info *info,
                     const penlink_key *key, long threshold)
{
    int64_t now = pc_wall_ms(), previous = 0;
    int st = penlink_dev_clock_set_signed(dev, now, key, &previous);
    int64_t after = pc_wall_ms();
    if (st == PENLINK_ERR_DEVICE || st == PENLINK_ERR_INVALID_CONFIG) { /* the pen refused it */
        char t[40], why[600];
        cli_format_time(now, t, sizeof t);
        snprintf(why, sizeof why, "%s", penlink_ctx_errmsg(c->ctx));
        return cli_error(c, EXIT_DEVICE,
                         "clock sync: %s. This computer's clock says %s: if that is wrong, set it "
                         "right (NTP) and sync again",
                         why, t);
    }
    if (st != PENLINK_OK)
        return cli_fail(c, "clock sync", st);
    /* the drift the pen's own answer shows, as it was when corrected */
    int64_t drift = previous - (now + (after - now) / 2);
    int64_t size = drift < 0 ? -drift : drift;
    char t[40], pt[40];
    cli_format_time(now, t, sizeof t);
    cli_format_time(previous, pt, sizeof pt);
    if (c->json)
        cli_json_out(json_pack("{s:o, s:I, s:I, s:s, s:I, s:s, s:I, s:b, s:b}", "serial",
                               cli_json_str(info->serial), "drift_ms", (json_int_t)drift,
                               "previous_time_ms", (json_int_t)previous, "previous_time", pt,
                               "time_ms", (json_int_t)now, "time", t, "threshold_ms",
                               (json_int_t)threshold, "set", 1, "signed", key != NULL));
    else if (!c->quiet)
        printf("%s: pen clock was %.3f s %s; set to %s%s\n", cli_safe(info->serial),
               (double)size / 1e3, drift < 0 ? "behind" : "ahead", t, key ? " (signed)" : "");
    return EXIT_OK;
}

int cmd_clock(struct cli *c, int argc, char **argv)
{
    long threshold = CLOCK_SYNC_THRESHOLD_MS;
    const char *key_file = NULL;
    int force = 0, done = 0;
    int rc = clock_args(c, argc, argv, &threshold, &key_file, &force, &done);
    if (rc != EXIT_OK || done)
        return rc;
    penlink_dev *dev = NULL;
    rc = cli_open(c, &dev);
    if (rc != EXIT_OK)
        return rc;
    penlink_info info = PENLINK_INFO_INIT;
    penlink_key key = PENLINK_KEY_INIT;
    int have_key = 0;
    /* the pen read its clock about half a round trip after we read ours */
    int64_t before = pc_wall_ms();
    int st = penlink_dev_info(dev, &info);
    int64_t after = pc_wall_ms();
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "clock sync", st);
        goto out;
    }
    int64_t drift = info.device_time_ms - (before + (after - before) / 2);
    int64_t size = drift < 0 ? -drift : drift;
    if (size < threshold) {
        if (c->json)
            cli_json_out(json_pack("{s:o, s:I, s:I, s:b}", "serial", cli_json_str(info.serial),
                                   "drift_ms", (json_int_t)drift, "threshold_ms",
                                   (json_int_t)threshold, "set", 0));
        else if (!c->quiet)
            printf("%s: clock %.3f s %s this computer's, within %.3f s: left as it is (no "
                   "clock_set logged)\n",
                   cli_safe(info.serial), (double)size / 1e3, drift < 0 ? "behind" : "ahead of",
                   (double)threshold / 1e3);
        goto out;
    }
    rc = check_host_clock(c, dev, &info, force);
    if (rc == EXIT_OK)
        rc = cli_signing_key(c, "clock sync", &info,
                             (info.features & PENLINK_FEATURE_SIGNED_CLOCK) != 0, key_file, &key,
                             &have_key);
    if (rc == EXIT_OK)
        rc = set_clock(c, dev, &info, have_key ? &key : NULL, threshold);
out:
    penlink_dev_close(dev);
    return rc;
}
