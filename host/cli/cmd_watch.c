/*
 * penlink watch: a clinic's docking station. Every pen that is plugged in is
 * pulled into the archive (or DIR/SERIAL.plog), one after another, until
 * interrupted. A pen is pulled once per plug-in; one unplugged mid-pull is
 * pulled again (from where it stopped) when it comes back. A serial names a
 * file only when it is a safe file name (cli_filename_ok): a pen could
 * otherwise choose "../../x" and write outside DIR, or take another pen's
 * file. Such a pen is skipped until it is plugged in again.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink [--device URI] [--archive PATH] watch [--dir DIR] [--once] [-h]\n"
    "\n"
    "Pull every pen that is plugged in, one after another, into the archive (or,\n"
    "with --dir, into DIR/SERIAL.plog files), acknowledging what was saved, until\n"
    "interrupted (Ctrl-C). Each pen is pulled once per plug-in; a pen unplugged\n"
    "mid-pull is pulled again when it returns, from where it stopped. With\n"
    "--device sim:PATH it watches that simulated pen instead of USB.\n"
    "\n"
    "With --dir, a pen whose serial is not a plain file name (1 to 64 of\n"
    "A-Z a-z 0-9 . _ -, not starting with '.') is skipped with an error: its\n"
    "serial is never used, or changed, to name a file.\n"
    "\n"
    "Options:\n"
    "  -D, --dir DIR  frames files in DIR instead of the archive\n"
    "  -1, --once     one round over the pens present, then exit\n"
    "  -h, --help     this help\n"
    "\n"
    "Exit status with --once: 0 when every pen present was pulled, else that of\n"
    "the first pen that failed (3 unreachable, 5 a serial that cannot name a\n"
    "file, 6 a file of another pen, ...). Interrupted (SIGINT, SIGTERM), the pull\n"
    "in progress stops at its next safe point (what it kept is committed, nothing\n"
    "else acknowledged) and watch exits with status 130.\n";

#define MAX_PENS 64

struct seen {
    char uri[96];
    int done; /* pulled since it was plugged in */
    int present;
};

const struct option cli_watch_options[] = { { "dir", required_argument, NULL, 'D' },
                                            { "once", no_argument, NULL, '1' },
                                            { "help", no_argument, NULL, 'h' },
                                            { NULL, 0, NULL, 0 } };

/* A watcher's state across its rounds. */
struct watch {
    struct cli *c;
    const char *dir; /* --dir, or NULL: the archive */
    const char *dev_uri;
    int sim;  /* a simulated pen (--device sim:PATH): the only one watched */
    int once; /* --once: a simulated pen that is not there is an error, as for info */
    struct seen seen[MAX_PENS];
    size_t nseen;
    unsigned long pulls, failures;
    int first_failure; /* the exit status of --once */
};

static void failed(struct watch *w, int rc)
{
    w->failures++;
    w->first_failure = w->first_failure ? w->first_failure : rc;
}

/* a --dir that cannot take files is the watcher's own I/O problem, said
 * once before any pen is waited for (not, per pen, as "no device") */
static int check_dir(struct cli *c, const char *dir)
{
    struct stat sb;
    if (stat(dir, &sb) != 0)
        return cli_error(c, EXIT_IO, "watch: --dir %s: %s", dir, strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return cli_error(c, EXIT_IO, "watch: --dir %s: not a directory", dir);
    if (access(dir, W_OK | X_OK) != 0)
        return cli_error(c, EXIT_IO, "watch: --dir %s: cannot write there: %s", dir,
                         strerror(errno));
    return EXIT_OK;
}

/* The pens present now: the simulated one, or those on USB. */
static int list_pens(struct watch *w, penlink_found *found, size_t *n)
{
    if (w->sim) {
        memset(found, 0, sizeof found[0]);
        snprintf(found[0].uri, sizeof found[0].uri, "%s", w->dev_uri);
        *n = 1;
        return EXIT_OK;
    }
    penlink_found **list = NULL;
    int st = penlink_dev_list(w->c->ctx, &list, n);
    if (st != PENLINK_OK)
        return cli_fail(w->c, "watch", st);
    if (*n > MAX_PENS)
        *n = MAX_PENS;
    for (size_t i = 0; i < *n; i++)
        found[i] = *list[i];
    penlink_dev_list_free(list);
    return EXIT_OK;
}

/* The pen at @p f seen before, else a new entry (NULL when the table is full). */
static struct seen *seen_pen(struct watch *w, const penlink_found *f)
{
    struct seen *s = NULL;
    for (size_t k = 0; k < w->nseen; k++)
        if (strcmp(w->seen[k].uri, f->uri) == 0)
            s = &w->seen[k];
    if (!s && w->nseen < MAX_PENS) {
        s = &w->seen[w->nseen++];
        memset(s, 0, sizeof *s);
        _Static_assert(sizeof s->uri == sizeof f->uri, "uri sizes");
        memcpy(s->uri, f->uri, sizeof s->uri);
        s->uri[sizeof s->uri - 1] = '\0';
    }
    return s;
}

/* An open pen pulled into the archive; closes @p dev. */
static void pull_into_archive(struct watch *w, struct seen *s, penlink_dev *dev)
{
    struct cli *c = w->c;
    penlink_archive_pull_result ar = PENLINK_ARCHIVE_PULL_RESULT_INIT;
    int rc = cli_pull_to_archive(c, dev, 0, &ar);
    penlink_dev_close(dev);
    if (rc != EXIT_OK) {
        failed(w, rc);
        return;
    }
    s->done = 1;
    w->pulls++;
    if (c->json)
        cli_json_out(json_pack("{s:o, s:o, s:I, s:I, s:I}", "uri", cli_json_str(s->uri), "serial",
                               cli_json_str(ar.serial), "records", (json_int_t)ar.records_new,
                               "next_seq", (json_int_t)ar.next_seq, "gap", (json_int_t)ar.gap));
    else if (!c->quiet)
        printf("%s: %llu new records archived\n", cli_safe(ar.serial),
               (unsigned long long)ar.records_new);
    fflush(stdout);
}

/* An open pen pulled into DIR/SERIAL.plog; closes @p dev. */
static void pull_into_dir(struct watch *w, struct seen *s, penlink_dev *dev)
{
    struct cli *c = w->c;
    penlink_info info = PENLINK_INFO_INIT;
    char path[4096];
    int st = penlink_dev_info(dev, &info);
    if (st != PENLINK_OK) {
        penlink_dev_close(dev);
        failed(w, cli_fail(c, s->uri, st));
        return;
    }
    if (!cli_filename_ok(info.serial)) {
        penlink_dev_close(dev);
        failed(w, cli_error(c, EXIT_PROTOCOL,
                            "watch: %s: the pen's serial '%s' is not usable as a file name "
                            "(1 to %d of A-Z a-z 0-9 . _ -, not starting with '.'): "
                            "skipped, nothing pulled or acknowledged",
                            s->uri, info.serial, CLI_FILENAME_SERIAL_MAX));
        s->done = 1; /* not again until it is plugged in again */
        return;
    }
    snprintf(path, sizeof path, "%s/%s.plog", w->dir, info.serial);
    struct pull_opts o = { .path = path, .ack = 1, .progress = 0 };
    struct pull_summary sum;
    int rc = cli_pull_to_file(c, dev, &o, &sum);
    penlink_dev_close(dev);
    if (rc != EXIT_OK) {
        failed(w, rc); /* e.g. unplugged mid-pull: tried again when it is back */
        /* DIR/SERIAL.plog is another pen's (a clone's): not again until replugged */
        s->done = rc == EXIT_INTEGRITY;
        return;
    }
    s->done = 1;
    w->pulls++;
    if (c->json)
        cli_json_out(json_pack("{s:o, s:o, s:o, s:I, s:I, s:I}", "uri", cli_json_str(s->uri),
                               "serial", cli_json_str(sum.serial), "file", cli_json_str(path),
                               "records", (json_int_t)sum.records, "next_seq",
                               (json_int_t)sum.next_seq, "gap", (json_int_t)sum.gap));
    else if (!c->quiet)
        printf("%s: %llu new records into %s\n", cli_safe(sum.serial), sum.records, cli_safe(path));
    fflush(stdout);
}

/* A pen present in this round, pulled unless it was since it was plugged in. 1: cancelled. */
static int visit(struct watch *w, struct seen *s)
{
    s->present = 1;
    if (s->done)
        return 0;
    penlink_dev *dev = NULL;
    int st = penlink_dev_open(w->c->ctx, s->uri, &dev);
    if (st == PENLINK_ERR_CANCELLED)
        return 1;
    if (st != PENLINK_OK) {
        if (!w->sim || st != PENLINK_ERR_NOT_FOUND || w->once)
            failed(w, cli_fail(w->c, s->uri, st));
        s->present = !(w->sim && st == PENLINK_ERR_NOT_FOUND);
        return 0;
    }
    if (w->dir)
        pull_into_dir(w, s, dev);
    else
        pull_into_archive(w, s, dev);
    return 0;
}

/* One round over the pens present. */
static int round_of_pens(struct watch *w)
{
    penlink_found found[MAX_PENS];
    size_t n = 0;
    int rc = list_pens(w, found, &n);
    if (rc != EXIT_OK)
        return rc;
    for (size_t i = 0; i < w->nseen; i++)
        w->seen[i].present = 0;
    for (size_t i = 0; i < n; i++) {
        struct seen *s = seen_pen(w, &found[i]);
        if (s && visit(w, s))
            break;
    }
    /* a pen that left may come back: pull it again then */
    for (size_t i = 0; i < w->nseen; i++)
        if (!w->seen[i].present)
            w->seen[i].done = 0;
    return EXIT_OK;
}

int cmd_watch(struct cli *c, int argc, char **argv)
{
    const char *dir = NULL;
    int once = 0, opt;
    while ((opt = getopt_long(argc, argv, "D:1h", cli_watch_options, NULL)) != -1) {
        switch (opt) {
        case 'D': dir = optarg; break;
        case '1': once = 1; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (dir) {
        int rc = check_dir(c, dir);
        if (rc != EXIT_OK)
            return rc;
    }
    static struct watch w;
    memset(&w, 0, sizeof w);
    w.c = c;
    w.dir = dir;
    w.dev_uri = c->device ? c->device : getenv("PENLINK_DEVICE");
    w.sim = w.dev_uri && strncmp(w.dev_uri, "sim:", 4) == 0;
    w.once = once;
    if (!c->quiet && !c->json)
        fprintf(stderr, "watching %s for pens; Ctrl-C to stop\n",
                w.sim ? cli_safe(w.dev_uri) : "USB");
    for (;;) {
        int rc = round_of_pens(&w);
        if (rc != EXIT_OK)
            return rc;
        if (once)
            break;
        int changed = 0;
        if (penlink_dev_wait_change(c->ctx, 1000, &changed) == PENLINK_ERR_CANCELLED)
            break;
    }
    if (!c->quiet && !c->json)
        fprintf(stderr, "watch: %lu pulls, %lu failed attempts\n", w.pulls, w.failures);
    /* stopped by SIGINT / SIGTERM: the pull in progress stopped at a safe point
     * (what it kept is committed, nothing uncommitted acknowledged) */
    if (cli_interrupted)
        return cli_error(c, EXIT_CANCELLED, "watch: interrupted after %lu pulls", w.pulls);
    return once ? w.first_failure : EXIT_OK;
}
