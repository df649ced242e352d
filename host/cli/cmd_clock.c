/* penlink clock sync: set the pen's clock, show the drift it corrected. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink [--device URI] clock sync [-h]\n"
    "\n"
    "Set the pen's clock to this computer's (UTC) and show the drift corrected:\n"
    "how far the pen's clock was ahead (+) or behind (-). The pen logs a\n"
    "clock_set record with the step, so the audit can tell a corrected clock\n"
    "from a tampered one. Keep this computer's clock right (NTP) first.\n";

int cmd_clock(struct cli *c, int argc, char **argv)
{
    int done = cli_help_only(argc, argv, usage, 1);
    if (done < 0 && strcmp(argv[optind], "sync") != 0) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (done >= 0)
        return done;
    penlink_dev *dev = NULL;
    int rc = cli_open(c, &dev);
    if (rc != EXIT_OK)
        return rc;
    int64_t now = cli_now_ms(), previous = 0;
    int st = penlink_dev_clock_set(dev, now, &previous);
    int64_t after = cli_now_ms();
    penlink_dev_close(dev);
    if (st != PENLINK_OK)
        return cli_fail(c, "clock sync", st);
    /* the pen read its clock about half a round trip after we read ours */
    int64_t drift = previous - (now + (after - now) / 2);
    char t[40];
    cli_format_time(now, t, sizeof t);
    if (c->json) {
        cli_json_out(json_pack("{s:I, s:I, s:s}", "drift_ms", (json_int_t)drift, "previous_time_ms",
                               (json_int_t)previous, "time", t));
    } else if (!c->quiet) {
        printf("pen clock was %.3f s %s; set to %s\n", (double)(drift < 0 ? -drift : drift) / 1e3,
               drift < 0 ? "behind" : "ahead", t);
    }
    return EXIT_OK;
}
