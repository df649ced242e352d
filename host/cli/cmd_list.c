/* penlink list: the pens plugged in, and why one can't be opened. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink list [-h]\n"
    "\n"
    "List the pens plugged in over USB (vendor interface on 1209:0001, or the IDs\n"
    "in PENLINK_USB_ID=VID:PID), with the URI to give --device, and the reason a\n"
    "pen can't be opened (e.g. permission denied: the udev rule is missing).\n"
    "With --device sim:PATH, also says whether that simulated pen answers.\n"
    "Exit status 0 when at least one pen is listed, 3 when none is.\n";

int cmd_list(struct cli *c, int argc, char **argv)
{
    int done = cli_help_only(argc, argv, usage, 0);
    if (done >= 0)
        return done;
    penlink_found found[64];
    size_t n = 0, shown;
    int st = penlink_list(c->ctx, found, 64, &n);
    if (st != PENLINK_OK)
        return cli_fail(c, "list", st);
    shown = n < 64 ? n : 64;
    /* a simulated pen named by --device / PENLINK_DEVICE is listed too */
    const char *dev = c->device ? c->device : getenv("PENLINK_DEVICE");
    if (dev && strncmp(dev, "sim:", 4) == 0 && shown < 64) {
        penlink_dev *d = NULL;
        penlink_found *f = &found[shown];
        memset(f, 0, sizeof *f);
        snprintf(f->uri, sizeof f->uri, "%s", dev);
        snprintf(f->where, sizeof f->where, "simulator");
        f->status = penlink_dev_open(c->ctx, dev, &d);
        if (f->status != PENLINK_OK)
            cli_warn(c, "%s", penlink_ctx_errmsg(c->ctx));
        if (f->status == PENLINK_OK) {
            penlink_info info;
            if (penlink_dev_info(d, &info) == PENLINK_OK)
                snprintf(f->serial, sizeof f->serial, "%s", info.serial);
        }
        penlink_dev_close(d);
        shown++;
        n++;
    }
    if (c->json) {
        json_t *a = json_array();
        for (size_t i = 0; i < shown; i++)
            json_array_append_new(
                a, json_pack("{s:o, s:o, s:o, s:s}", "uri", cli_json_str(found[i].uri), "serial",
                             cli_json_str(found[i].serial), "where", cli_json_str(found[i].where),
                             "status",
                             found[i].status == PENLINK_OK ? "ok"
                                                           : penlink_strerror(found[i].status)));
        cli_json_out(a);
    } else if (shown == 0) {
        if (!c->quiet)
            fprintf(stderr, "no pen found: plug one in; if it is plugged in, see "
                            "docs/technician-guide.md (permissions, cables)\n");
    } else {
        printf("%-28s %-16s %-22s %s\n", "URI", "SERIAL", "WHERE", "STATUS");
        for (size_t i = 0; i < shown; i++)
            printf("%-28s %-16s %-22s %s\n", cli_safe(found[i].uri),
                   found[i].serial[0] ? cli_safe(found[i].serial) : "?", cli_safe(found[i].where),
                   found[i].status == PENLINK_OK ? "ok" : penlink_strerror(found[i].status));
    }
    return shown ? EXIT_OK : EXIT_NO_DEVICE;
}
