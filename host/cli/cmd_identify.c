/* penlink identify: make a pen signal itself, to find it on a desk full of pens. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink [--device URI] identify [--seconds N] [--stop] [-h]\n"
    "\n"
    "Make the pen blink its light and beep for N seconds (default 10, at most 60),\n"
    "so that you can tell which pen on the desk it is. Choose the pen with\n"
    "--device: usb:SERIAL, or usb:BUS-PORT.PORT for the pen on that USB port (as\n"
    "'penlink list' shows it). --stop ends a signal early.\n"
    "\n"
    "Options:\n"
    "  -s, --seconds N  how long to signal, 1 to 60\n"
    "      --stop       stop signalling now\n"
    "  -h, --help       this help\n"
    "\n"
    "A pen whose firmware predates identify says so (exit status 4); nothing is\n"
    "sent to it.\n";

enum { OPT_STOP = 256 };
const struct option cli_identify_options[] = { { "seconds", required_argument, NULL, 's' },
                                               { "stop", no_argument, NULL, OPT_STOP },
                                               { "help", no_argument, NULL, 'h' },
                                               { NULL, 0, NULL, 0 } };

int cmd_identify(struct cli *c, int argc, char **argv)
{
    unsigned long seconds = PENLINK_IDENTIFY_DEFAULT_S;
    int opt;
    char *end;
    while ((opt = getopt_long(argc, argv, "s:h", cli_identify_options, NULL)) != -1) {
        switch (opt) {
        case 's':
            errno = 0;
            seconds = strtoul(optarg, &end, 10);
            if (!*optarg || *end || errno || optarg[0] == '-' || seconds < 1 ||
                seconds > PENLINK_IDENTIFY_MAX_S)
                return cli_error(c, EXIT_USAGE, "identify: --seconds takes 1 to %d, not '%s'",
                                 PENLINK_IDENTIFY_MAX_S, optarg);
            break;
        case OPT_STOP: seconds = 0; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    penlink_dev *dev = NULL;
    int rc = cli_open(c, &dev);
    if (rc != EXIT_OK)
        return rc;
    penlink_info info = PENLINK_INFO_INIT;
    uint32_t granted = 0;
    int st = penlink_dev_identify(dev, (uint32_t)seconds, &granted);
    if (st == PENLINK_OK) /* what to call it in the message */
        st = penlink_dev_info(dev, &info);
    penlink_dev_close(dev);
    if (st != PENLINK_OK)
        return cli_fail(c, "identify", st);
    if (c->json)
        cli_json_out(json_pack("{s:o, s:o, s:I}", "serial", cli_json_str(info.serial), "model",
                               cli_json_str(info.model), "seconds", (json_int_t)granted));
    else if (!c->quiet && granted)
        printf("%s (%s) is blinking and beeping for %u s\n", cli_safe(info.serial),
               cli_safe(info.model), granted);
    else if (!c->quiet)
        printf("%s stopped signalling\n", cli_safe(info.serial));
    return EXIT_OK;
}
