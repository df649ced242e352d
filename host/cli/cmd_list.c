/*
 * penlink list: the pens plugged in, in USB port order, each with what tells
 * it apart on a desk (its port, label, model and firmware), and why one
 * can't be opened.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"

#define LIST_MAX 64

static const char usage[] =
    "Usage: penlink list [-h]\n"
    "\n"
    "List the pens plugged in over USB (vendor interface on 1209:0001, or the IDs\n"
    "in PENLINK_USB_ID=VID:PID), sorted by USB port: the port path (as udev and\n"
    "'lsusb -t' show it: 1-2.3 is bus 1, port 3 of the hub on port 2), the\n"
    "serial, the pen's label, model and firmware, and the reason a pen can't be\n"
    "opened (e.g. permission denied: the udev rule is missing). Choose a pen for\n"
    "another command with --device usb:SERIAL or --device usb:PORT (usb:1-2.3);\n"
    "'penlink identify' makes it blink to find it. With --device sim:PATH, also\n"
    "says whether that simulated pen answers (if not: its row, its error and the\n"
    "exit status of info). Each column is as wide as its\n"
    "widest cell (a long label, a sim: path).\n"
    "Exit status 0 when at least one pen is listed, 3 when none is (with --json\n"
    "its error object on stderr, code PENLINK_ERR_NOT_FOUND).\n";

/* What a session tells of a pen: label, model, firmware. */
struct details {
    char label[65], model[33], firmware[33];
    int status;
};

static void read_details(struct cli *c, const char *uri, struct details *d)
{
    penlink_dev *dev = NULL;
    memset(d, 0, sizeof *d);
    d->status = penlink_dev_open(c->ctx, uri, &dev);
    penlink_info info = PENLINK_INFO_INIT;
    if (d->status == PENLINK_OK)
        d->status = penlink_dev_info(dev, &info);
    if (d->status == PENLINK_OK) {
        snprintf(d->model, sizeof d->model, "%s", info.model);
        snprintf(d->firmware, sizeof d->firmware, "%s", info.firmware_version);
        penlink_config cfg = PENLINK_CONFIG_INIT;
        if ((info.features & PENLINK_FEATURE_CONFIG) &&
            penlink_dev_config_get(dev, &cfg) == PENLINK_OK)
            snprintf(d->label, sizeof d->label, "%s", cfg.device_label);
    }
    penlink_dev_close(dev);
}

#define LIST_COLS 6 /* port, serial, label, model, firmware, status */

/* A pen's row of the table, unescaped. */
static void cells(const penlink_found *f, const struct details *d, const char *cell[LIST_COLS])
{
    cell[0] = f->port[0] ? f->port : f->uri;
    cell[1] = f->serial[0] ? f->serial : "?";
    cell[2] = d->label[0] ? d->label : "-";
    cell[3] = d->model[0] ? d->model : "-";
    cell[4] = d->firmware[0] ? d->firmware : "-";
    cell[5] = d->status == PENLINK_OK ? "ok" : penlink_strerror(d->status);
}

/* A simulated pen named by --device / PENLINK_DEVICE, listed after the USB pens. */
static void add_simulator(struct cli *c, const char *dev, penlink_found *f, struct details *det)
{
    penlink_dev *d = NULL;
    memset(f, 0, sizeof *f);
    snprintf(f->uri, sizeof f->uri, "%s", dev);
    snprintf(f->where, sizeof f->where, "simulator");
    f->status = penlink_dev_open(c->ctx, dev, &d);
    if (f->status == PENLINK_OK) {
        penlink_info info = PENLINK_INFO_INIT;
        if (penlink_dev_info(d, &info) == PENLINK_OK)
            snprintf(f->serial, sizeof f->serial, "%s", info.serial);
    }
    penlink_dev_close(d);
    if (f->status == PENLINK_OK)
        read_details(c, dev, det);
    else
        memset(det, 0, sizeof *det);
    det->status = f->status;
}

/* JSON lines, one object per pen, like every command that prints a list
 * (docs/json.md); none at all when no pen is found */
static void list_json(const penlink_found *found, const struct details *det, size_t shown)
{
    for (size_t i = 0; i < shown; i++) {
        const char *status = det[i].status == PENLINK_OK ? "ok" : penlink_strerror(det[i].status);
        cli_json_out(json_pack(
            "{s:o, s:o, s:o, s:s, s:s, s:o, s:o, s:o, s:o}", "uri", cli_json_str(found[i].uri),
            "serial", cli_json_str(found[i].serial), "where", cli_json_str(found[i].where),
            "status", status, "code", penlink_status_name(det[i].status), "port",
            found[i].port[0] ? cli_json_str(found[i].port) : json_null(), "label",
            cli_json_str(det[i].label), "model", cli_json_str(det[i].model), "firmware",
            cli_json_str(det[i].firmware)));
    }
}

/* the columns as wide as their widest cell (a long label, a sim: path) */
static void list_table(const penlink_found *found, const struct details *det, size_t shown)
{
    static const char *const head[LIST_COLS] = { "PORT",  "SERIAL",   "LABEL",
                                                 "MODEL", "FIRMWARE", "STATUS" };
    static const int least[LIST_COLS] = { 10, 16, 16, 14, 9, 0 };
    int width[LIST_COLS];
    for (int k = 0; k < LIST_COLS; k++)
        width[k] = least[k];
    for (size_t i = 0; i < shown; i++) {
        const char *cell[LIST_COLS];
        cells(&found[i], &det[i], cell);
        for (int k = 0; k < LIST_COLS; k++) {
            int w = (int)strlen(cli_safe(cell[k]));
            if (w > width[k])
                width[k] = w;
        }
    }
    for (int k = 0; k < LIST_COLS; k++)
        printf(k + 1 < LIST_COLS ? "%-*s " : "%-*s\n", k + 1 < LIST_COLS ? width[k] : 0, head[k]);
    for (size_t i = 0; i < shown; i++) {
        const char *cell[LIST_COLS];
        cells(&found[i], &det[i], cell);
        for (int k = 0; k < LIST_COLS; k++)
            printf(k + 1 < LIST_COLS ? "%-*s " : "%-*s\n", k + 1 < LIST_COLS ? width[k] : 0,
                   cli_safe(cell[k]));
    }
}

int cmd_list(struct cli *c, int argc, char **argv)
{
    int done = cli_help_only(argc, argv, usage, 0);
    if (done >= 0)
        return done;
    static penlink_found found[LIST_MAX];
    static struct details det[LIST_MAX];
    size_t n = 0, shown;
    penlink_found **list = NULL;
    int st = penlink_dev_list(c->ctx, &list, &n);
    if (st != PENLINK_OK)
        return cli_fail(c, "list", st);
    shown = n < LIST_MAX ? n : LIST_MAX;
    for (size_t i = 0; i < shown; i++)
        found[i] = *list[i];
    penlink_dev_list_free(list);
    for (size_t i = 0; i < shown; i++) {
        memset(&det[i], 0, sizeof det[i]);
        det[i].status = found[i].status;
        if (found[i].status == PENLINK_OK) {
            char uri[PENLINK_PORT_MAX + 8];
            snprintf(uri, sizeof uri, "usb:%s", found[i].port);
            read_details(c, uri, &det[i]);
        }
    }
    const char *dev = c->device ? c->device : getenv("PENLINK_DEVICE");
    int sim_status = PENLINK_OK;
    char sim_err[512] = "";
    if (dev && strncmp(dev, "sim:", 4) == 0 && shown < LIST_MAX) {
        add_simulator(c, dev, &found[shown], &det[shown]);
        sim_status = found[shown].status;
        if (sim_status != PENLINK_OK)
            snprintf(sim_err, sizeof sim_err, "%s", penlink_ctx_errmsg(c->ctx));
        shown++;
    }
    if (shown == 0 && c->json)
        return cli_error_status(c, PENLINK_ERR_NOT_FOUND,
                                "no pen found: plug one in; if it is plugged in, see "
                                "docs/technician-guide.md (permissions, cables)");
    if (c->json)
        list_json(found, det, shown);
    else if (shown == 0 && !c->quiet)
        fprintf(stderr, "no pen found: plug one in; if it is plugged in, see "
                        "docs/technician-guide.md (permissions, cables)\n");
    else if (shown > 0)
        list_table(found, det, shown);
    /* the simulated pen asked for is not there: its row, and its error (as info's) */
    if (sim_status != PENLINK_OK)
        return cli_error_status(c, sim_status, "%s", sim_err);
    return shown ? EXIT_OK : EXIT_NO_DEVICE;
}
