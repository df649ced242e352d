/* penlink pull: new records into a file, then acknowledged on the pen. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink [--device URI] pull [-o FILE] [--no-ack] [-h]\n"
    "\n"
    "Pull the records the pen logged since the last pull into FILE (default\n"
    "SERIAL.plog in the current directory), as the frames the pen sent; read it\n"
    "with `penlink decode FILE`. The pull resumes after the last record already in\n"
    "FILE. Every chunk is checked (CRC, sizes, counts, sequence) before it is\n"
    "written; the file is synced to disk, and only then does the pen learn it may\n"
    "erase those records. Interrupted (Ctrl-C, unplug), nothing is lost: the next\n"
    "pull goes on where this one stopped.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE  where the records go (appended)\n"
    "      --no-ack       keep the records on the pen\n"
    "  -h, --help         this help\n"
    "\n"
    "A gap (records the pen dropped before they were pulled) is reported.\n";

int cmd_pull(struct cli *c, int argc, char **argv)
{
    enum { OPT_NO_ACK = 256 };
    static const struct option opts[] = { { "output", required_argument, NULL, 'o' },
                                          { "no-ack", no_argument, NULL, OPT_NO_ACK },
                                          { "help", no_argument, NULL, 'h' },
                                          { NULL, 0, NULL, 0 } };
    struct pull_opts o = { .ack = 1 };
    int opt;
    while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'o': o.path = optarg; break;
        case OPT_NO_ACK: o.ack = 0; break;
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
    char defpath[64];
    if (!o.path) {
        penlink_info info;
        int st = penlink_dev_info(dev, &info);
        if (st != PENLINK_OK) {
            penlink_dev_close(dev);
            return cli_fail(c, "pull", st);
        }
        snprintf(defpath, sizeof defpath, "%s.plog", info.serial[0] ? info.serial : "pen");
        o.path = defpath;
    }
    o.progress = !c->json && !c->quiet && isatty(STDOUT_FILENO);
    struct pull_summary s;
    rc = cli_pull_to_file(c, dev, &o, &s);
    penlink_dev_close(dev);
    if (rc != EXIT_OK)
        return rc;
    if (c->json) {
        cli_json_out(json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "serial", s.serial,
                               "file", o.path, "from_seq", (json_int_t)s.from_seq, "next_seq",
                               (json_int_t)s.next_seq, "records", (json_int_t)s.records, "bytes",
                               (json_int_t)s.bytes, "gap", (json_int_t)s.gap, "acked_seq",
                               (json_int_t)s.acked_seq, "resumed", s.resumed));
    } else if (!c->quiet) {
        if (s.records)
            printf("%s: %llu new records (seq %llu..%llu) into %s%s\n", s.serial, s.records,
                   s.next_seq - s.records, s.next_seq - 1, o.path,
                   o.ack ? ", acknowledged" : ", not acknowledged (--no-ack)");
        else
            printf("%s: no new records (next seq %llu); %s is up to date\n", s.serial, s.next_seq,
                   o.path);
    }
    if (s.gap)
        fprintf(stderr,
                "penlink: warning: %llu records (seq %llu..%llu) were no longer on the pen: "
                "its log overflowed before they were pulled\n",
                s.gap, s.from_seq, s.from_seq + s.gap - 1);
    return EXIT_OK;
}
