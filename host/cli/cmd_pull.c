/* penlink pull: new records into a file, then acknowledged on the pen. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink [--device URI] [--archive PATH] pull [-o FILE] [--no-ack] [-h]\n"
    "\n"
    "Pull the records the pen logged since the last pull into the archive\n"
    "(--archive, default $XDG_DATA_HOME/penlink/archive.db): records, the raw\n"
    "chunks as received, the pull itself, and the pen's configuration. The pull\n"
    "resumes after the archive's last record of that pen (a pen that does not sign\n"
    "its log first sends again the records it was never told it may erase, to be\n"
    "compared with the archived ones). Every chunk is checked\n"
    "(CRC, sizes, counts, sequence) before it is stored; the archive commits to\n"
    "disk, and only then does the pen learn it may erase those records.\n"
    "Interrupted (Ctrl-C, kill, unplug, a pen that stops answering), nothing is\n"
    "lost and nothing is stored twice: penlink says what was kept (not yet\n"
    "acknowledged: the pen keeps it too) and what is still only on the pen, and\n"
    "the next pull goes on where this one stopped. A pen that goes silent after\n"
    "it was sent the acknowledgement may have erased those records: penlink\n"
    "says so (sent, not confirmed; they are archived; exit status 5, as for any\n"
    "pen that stops answering). A record that arrives again\n"
    "with different content is an integrity alarm (exit status 6; both kept,\n"
    "nothing acknowledged).\n"
    "\n"
    "Progress goes to stderr: on a terminal a line redrawn 4 times a second\n"
    "(records received and megabytes against what the pen announced, the rate,\n"
    "the time left; while the pen is silent no time left but \"waiting for the\n"
    "pen\" and for how long; at the end what was kept); in a log a line every\n"
    "5 s; with --json one JSON object per line (\"event\":\"progress\", the last\n"
    "with \"kept\"); with --quiet nothing.\n"
    "\n"
    "Options:\n"
    "  -o, --output FILE  instead, append the frames the pen sent to FILE (read it\n"
    "                     with `penlink decode FILE`), resuming after its last record.\n"
    "                     A new FILE starts with a header naming the pen (serial,\n"
    "                     device key); a FILE of another pen, or one that names no\n"
    "                     pen (written by an earlier penlink), is refused untouched,\n"
    "                     nothing acknowledged (exit status 6). Records the pen\n"
    "                     sends again are compared with FILE's copies, as in the\n"
    "                     archive: other content is exit status 6, the chunk not\n"
    "                     written, nothing acknowledged\n"
    "      --no-ack       keep the records on the pen; only with -o (without it,\n"
    "                     a usage error: exit status 2)\n"
    "  -h, --help         this help\n"
    "\n"
    "A gap (records the pen dropped before they were pulled) is reported and\n"
    "recorded.\n";

enum { OPT_NO_ACK = 256 };
const struct option cli_pull_options[] = { { "output", required_argument, NULL, 'o' },
                                           { "no-ack", no_argument, NULL, OPT_NO_ACK },
                                           { "help", no_argument, NULL, 'h' },
                                           { NULL, 0, NULL, 0 } };

/* What a pull into the archive did: its JSON object, or a line for a person. */
static void say_archived(struct cli *c, const penlink_archive_pull_result *r, int rc)
{
    uint64_t left = r->pen_next_seq > r->next_seq ? r->pen_next_seq - r->next_seq : 0;
    if (c->json)
        cli_json_out(json_pack(
            "{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:I, s:I, s:b}", "serial",
            cli_json_str(r->serial), "from_seq", (json_int_t)r->from_seq, "next_seq",
            (json_int_t)r->next_seq, "records", (json_int_t)r->records_new, "duplicates",
            (json_int_t)r->records_dup, "conflicts", (json_int_t)r->conflicts, "gap",
            (json_int_t)r->gap, "overflows", (json_int_t)r->overflows, "acked_seq",
            (json_int_t)r->acked_seq, "retries", (json_int_t)r->retries, "acknowledged",
            rc == EXIT_OK && r->acked_seq >= r->next_seq, "ack_unconfirmed",
            r->ack_unconfirmed != 0, "pen_next_seq", (json_int_t)r->pen_next_seq, "not_pulled",
            (json_int_t)left, "ok", rc == EXIT_OK));
    else if (!c->quiet && r->records_new && r->acked_seq >= r->next_seq)
        printf("%s: %llu new records (seq %llu..%llu) archived and acknowledged\n",
               cli_safe(r->serial), (unsigned long long)r->records_new,
               (unsigned long long)r->from_seq,
               (unsigned long long)(r->next_seq ? r->next_seq - 1 : 0));
    else if (!c->quiet && rc == EXIT_OK)
        printf("%s: no new records (next seq %llu)\n", cli_safe(r->serial),
               (unsigned long long)r->next_seq);
}

/* pull: into the archive; closes @p dev. */
static int pull_archive(struct cli *c, penlink_dev *dev, const struct pull_opts *o)
{
    penlink_archive_pull_result r = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    int rc = cli_pull_to_archive(c, dev, o->progress, &r);
    penlink_dev_close(dev);
    say_archived(c, &r, rc);
    const char *te = penlink_ctx_trace_error(c->ctx);
    if (rc == EXIT_OK && te) {
        c->trace_told = 1;
        if (r.records_new)
            return cli_error(c, EXIT_IO,
                             "pull: %s: the pull succeeded: %llu new records archived and "
                             "acknowledged (seq %llu..%llu; the pen will not send them "
                             "again), but %s",
                             r.serial, (unsigned long long)r.records_new,
                             (unsigned long long)r.from_seq,
                             (unsigned long long)(r.next_seq ? r.next_seq - 1 : 0), te);
        return cli_error(c, EXIT_IO, "pull: %s: the pull succeeded (no new records), but %s",
                         r.serial, te);
    }
    return rc;
}

/* pull -o FILE; closes @p dev. */
static int pull_file(struct cli *c, penlink_dev *dev, const struct pull_opts *o)
{
    struct pull_summary s;
    int rc = cli_pull_to_file(c, dev, o, &s);
    penlink_dev_close(dev);
    if (rc != EXIT_OK)
        return rc;
    if (c->json) {
        cli_json_out(json_pack(
            "{s:o, s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:b}", "serial", cli_json_str(s.serial),
            "file", cli_json_str(o->path), "from_seq", (json_int_t)s.from_seq, "next_seq",
            (json_int_t)s.next_seq, "records", (json_int_t)s.records, "bytes", (json_int_t)s.bytes,
            "gap", (json_int_t)s.gap, "acked_seq", (json_int_t)s.acked_seq, "resumed", s.resumed));
    } else if (!c->quiet) {
        if (s.records)
            printf("%s: %llu new records (seq %llu..%llu) into %s%s\n", cli_safe(s.serial),
                   s.records, s.next_seq - s.records, s.next_seq - 1, cli_safe(o->path),
                   o->ack ? ", acknowledged" : ", not acknowledged (--no-ack)");
        else
            printf("%s: no new records (next seq %llu); %s is up to date\n", cli_safe(s.serial),
                   s.next_seq, cli_safe(o->path));
    }
    if (s.gap)
        cli_warn(c,
                 "%llu records (seq %llu..%llu) were no longer on the pen: its log overflowed "
                 "before they were pulled",
                 s.gap, s.from_seq, s.from_seq + s.gap - 1);
    const char *te = penlink_ctx_trace_error(c->ctx);
    if (te) {
        c->trace_told = 1;
        return cli_error(c, EXIT_IO,
                         "pull: %s: the pull succeeded: %llu new records saved in %s, %s, "
                         "but %s",
                         s.serial, s.records, o->path,
                         o->ack ? "and acknowledged (the pen will not send them again)"
                                : "not acknowledged (--no-ack)",
                         te);
    }
    return EXIT_OK;
}

int cmd_pull(struct cli *c, int argc, char **argv)
{
    struct pull_opts o = { .ack = 1 };
    int opt;
    while ((opt = getopt_long(argc, argv, "o:h", cli_pull_options, NULL)) != -1) {
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
    if (!o.ack && !o.path)
        return cli_error(c, EXIT_USAGE,
                         "pull: --no-ack works only with -o FILE (a pull into the archive always "
                         "acknowledges what it committed): add -o FILE to keep the records on "
                         "the pen, or leave out --no-ack; nothing was sent to the pen");
    penlink_dev *dev = NULL;
    int rc = cli_open(c, &dev);
    if (rc == EXIT_CANCELLED) { /* before the pen said who it is: nothing asked, nothing lost */
        struct pull_stop ps = { .where = o.path ? o.path : "the archive",
                                .status = PENLINK_ERR_CANCELLED,
                                .midway = 1 };
        cli_pull_stopped(c, &ps);
    }
    if (rc != EXIT_OK)
        return rc;
    o.progress = !c->quiet;
    return o.path ? pull_file(c, dev, &o) : pull_archive(c, dev, &o);
}
