/* penlink decode: print the records (and messages) of a file of frames or
 * chunks, or of a capture. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink decode [OPTIONS] FILE\n"
    "\n"
    "Print the usage records in FILE: the output of `penlink pull -o`, a run of\n"
    "penlink frames, bare chunks (concatenated zlib streams of RecordBatch), or a\n"
    "capture (pcapng or pcap): a `penlink --trace` file, or a Wireshark, tcpdump\n"
    "(usbmon) or USBPcap capture of a pen's USB traffic. FILE '-' reads standard\n"
    "input. The format is detected from the first bytes.\n"
    "\n"
    "Options:\n"
    "  -f, --format FMT  text (default), csv (records only), or json (one JSON\n"
    "                    object per line; the global --json selects it too)\n"
    "  -m, --messages    also every protocol message with every field (links,\n"
    "                    signatures, keys and chunk data in hex), the hash chain\n"
    "                    and head signatures checked as they go; in JSON one\n"
    "                    object per message ({\"message\":NAME,...,\"fields\":{...}}),\n"
    "                    before the records of a log_chunk\n"
    "  -h, --help        this help\n"
    "\n"
    "A file written by `penlink pull -o` names its pen in a header: text output\n"
    "starts with a line \"# pen SERIAL, model M, device key HEX\", JSON with an\n"
    "object {\"header\":{\"serial\":...,\"model\":...,\"device_key\":...}}; CSV has\n"
    "records only. A file whose frames name two pens is refused (exit status 6).\n"
    "A file holds each record once: a seq met again with the same content (a file\n"
    "joined from copies of one pen's file) is shown and counted once, with a\n"
    "warning; with other content the decode stops (exit status 6). The hash chain\n"
    "is checked against the chunk right before each one in the file.\n"
    "\n"
    "Damaged input stops the decode with one error line naming the byte offset\n"
    "and the problem; the records before it are printed. In a capture, damaged\n"
    "frames are part of what was on the wire: each is listed as a message\n"
    "\"damaged\" (with --messages), counted on stderr, and the decode goes on;\n"
    "a capture whose own structure is broken (or cut short) stops it. What a\n"
    "capture leaves unsaid is noted on stderr, the exit status unchanged: a frame\n"
    "cut short by its end, a pen's reply without its LogEnd, no penlink traffic.\n"
    "Exit status\n"
    "5 for malformed input, 6 for a checksum or consistency failure (a broken\n"
    "hash chain or head signature included), 7 for I/O errors, 130 when\n"
    "interrupted (SIGINT, SIGTERM: the decode stops at once, after what it printed).\n";

enum fmt { FMT_TEXT, FMT_CSV, FMT_JSON };

struct out {
    enum fmt fmt;
    FILE *f;
    int messages;
    penlink_decoder *dec;
    int header_shown;
    uint64_t broken; /* chunks and heads whose chain check failed */
};

/* Whose log it is, once, before anything else of the file is printed. */
static void show_header(struct out *o)
{
    penlink_file_header h = PENLINK_FILE_HEADER_INIT;
    int have = 0;
    if (o->header_shown || !o->dec || penlink_decoder_header(o->dec, &h, &have) != PENLINK_OK ||
        !have)
        return;
    o->header_shown = 1;
    char hex[65] = "";
    if (h.has_device_key)
        penlink_key_to_hex(h.device_key, hex);
    if (o->fmt == FMT_TEXT) {
        fprintf(o->f, "# pen %s, model %s, %s%s\n", cli_safe(h.serial),
                h.model[0] ? cli_safe(h.model) : "?",
                h.has_device_key ? "device key " : "no device key", hex);
    } else if (o->fmt == FMT_JSON) {
        json_t *j = json_pack("{s:o, s:o, s:o}", "serial", cli_json_str(h.serial), "model",
                              cli_json_str(h.model), "device_key",
                              h.has_device_key ? json_string(hex) : json_null());
        cli_json_line(o->f, json_pack("{s:o}", "header", j));
    }
}

static void field_text(const penlink_record *r, uint32_t bit, char *buf, size_t cap)
{
    uint64_t v = penlink_record_field_get(r, bit);
    if (bit == PENLINK_F_CLOCK_DELTA_MS)
        snprintf(buf, cap, "%" PRId64, (int64_t)v);
    else
        snprintf(buf, cap, "%" PRIu64, v);
}

static void kind_text(uint32_t kind, char *buf, size_t cap)
{
    const char *name = penlink_record_kind_name(kind);
    if (name)
        snprintf(buf, cap, "%s", name);
    else
        snprintf(buf, cap, "kind_%u", kind);
}

static int on_record(void *user, const penlink_record *r)
{
    struct out *o = user;
    char t[40], kind[24], v[24];
    show_header(o);
    cli_format_time(r->time_ms, t, sizeof t);
    kind_text(r->kind, kind, sizeof kind);
    if (o->fmt == FMT_TEXT) {
        fprintf(o->f, "%10" PRIu64 "  %s  %-18s", r->seq, t, kind);
        for (uint32_t b = 0; b < PENLINK_FIELD_COUNT; b++)
            if (r->fields & (1u << b)) {
                field_text(r, 1u << b, v, sizeof v);
                fprintf(o->f, " %s=%s", penlink_record_field_name(1u << b), v);
            }
        fputc('\n', o->f);
    } else if (o->fmt == FMT_CSV) {
        fprintf(o->f, "%" PRIu64 ",%" PRId64 ",%s,%s", r->seq, r->time_ms, t, kind);
        for (uint32_t b = 0; b < PENLINK_FIELD_COUNT; b++) {
            v[0] = '\0';
            if (r->fields & (1u << b))
                field_text(r, 1u << b, v, sizeof v);
            fprintf(o->f, ",%s", v);
        }
        fputc('\n', o->f);
    } else {
        json_t *j = json_object();
        json_object_set_new(j, "seq", json_integer((json_int_t)r->seq));
        json_object_set_new(j, "time_ms", json_integer(r->time_ms));
        json_object_set_new(j, "time", json_string(t));
        json_object_set_new(j, "kind", json_string(kind));
        for (uint32_t b = 0; b < PENLINK_FIELD_COUNT; b++) {
            if (!(r->fields & (1u << b)))
                continue;
            uint64_t x = penlink_record_field_get(r, 1u << b);
            json_t *val;
            field_text(r, 1u << b, v, sizeof v);
            if ((1u << b) == PENLINK_F_CARTRIDGE_SERIAL || x > (uint64_t)INT64_MAX)
                val = json_string(v); /* identifiers and huge values stay exact */
            else if ((1u << b) == PENLINK_F_CLOCK_DELTA_MS)
                val = json_integer((json_int_t)(int64_t)x);
            else
                val = json_integer((json_int_t)x);
            json_object_set_new(j, penlink_record_field_name(1u << b), val);
        }
        cli_json_line(o->f, j);
    }
    return ferror(o->f) ? -1 : 0;
}

static int on_message(void *user, const penlink_message *m)
{
    struct out *o = user;
    show_header(o);
    if (m->chain && strcmp(m->chain, "broken") == 0)
        o->broken++;
    if (!o->messages)
        return 0;
    if (o->fmt == FMT_JSON)
        cli_json_line(o->f, cli_message_json(m));
    else if (o->fmt == FMT_TEXT)
        cli_message_text(o->f, m, 1, "# ");
    return ferror(o->f) ? -1 : 0;
}

const struct option cli_decode_options[] = {
    { "format", required_argument, NULL, 'f' },
    { "messages", no_argument, NULL, 'm' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 },
};

/* The command line: EXIT_OK to go on, else the exit status (--help is *done). */
static int parse_args(struct cli *c, int argc, char **argv, struct out *o, int *done)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "f:mh", cli_decode_options, NULL)) != -1) {
        switch (opt) {
        case 'f':
            if (strcmp(optarg, "text") == 0)
                o->fmt = FMT_TEXT;
            else if (strcmp(optarg, "csv") == 0)
                o->fmt = FMT_CSV;
            else if (strcmp(optarg, "json") == 0)
                o->fmt = FMT_JSON;
            else
                return cli_error(c, EXIT_USAGE, "decode: unknown format '%s' (text, csv, json)",
                                 optarg);
            break;
        case 'm': o->messages = 1; break;
        case 'h':
            fputs(usage, stdout);
            *done = 1;
            return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (o->messages && o->fmt == FMT_CSV)
        return cli_error(c, EXIT_USAGE,
                         "decode: --messages prints text or JSON (--format text|json), not CSV, "
                         "whose rows are records");
    return EXIT_OK;
}

/* Everything @p fd gives, fed to @p dec until its end, an error or SIGINT / SIGTERM; the
 * decoder's status, and errno of a failed read in @p read_err. */
static int feed_all(penlink_decoder *dec, int fd, int *read_err)
{
    static unsigned char buf[1 << 16];
    int st = PENLINK_OK;
    /* SIGINT and SIGTERM are let through only while waiting for input, so
     * that one arriving just before a read cannot leave it blocked for ever
     * (on a pipe): the wait sees it (EINTR) and the loop stops */
    sigset_t stop, orig;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigprocmask(SIG_BLOCK, &stop, &orig);
    while (st == PENLINK_OK && !cli_interrupted) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(fd, &rd);
        if (pselect(fd + 1, &rd, NULL, NULL, NULL, &orig) < 0) {
            if (errno == EINTR)
                continue;
            *read_err = errno;
            break;
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            *read_err = errno;
        if (n <= 0)
            break;
        st = penlink_decoder_feed(dec, buf, (size_t)n);
    }
    sigprocmask(SIG_SETMASK, &orig, NULL);
    return st;
}

/* A whole decode: its warnings (records twice, the decoder's notes, problems). */
static void say_decoded(struct cli *c, const char *path, penlink_decoder *dec)
{
    penlink_decoder_stats stats = PENLINK_DECODER_STATS_INIT;
    (void)penlink_decoder_stats_get(dec, &stats); /* cannot fail: dec exists */
    if (stats.duplicates)
        cli_warn(c,
                 "%s: %" PRIu64 " records come again with the same content (a file joined "
                 "from copies, or a chunk the pen sent again whole): each seq is shown and "
                 "counted once",
                 path, stats.duplicates);
    for (size_t i = 0; !c->quiet && penlink_decoder_note(dec, i); i++)
        cli_warn(c, "%s: %s", path, penlink_decoder_note(dec, i));
    if (stats.problems && !c->quiet)
        cli_warn(c, "%s: %" PRIu64 " damaged frames or messages with a problem (see --messages)",
                 path, stats.problems);
    if (c->verbose)
        fprintf(stderr, "%s: %" PRIu64 " records in %" PRIu64 " chunks\n", path, stats.records,
                stats.chunks);
}

/* The input decoded to its end: the exit status. */
static int decode_input(struct cli *c, const char *path, FILE *in, struct out *o,
                        penlink_decoder *dec)
{
    int read_err = 0;
    int st = feed_all(dec, fileno(in), &read_err);
    if (cli_interrupted) { /* a read cut by the signal, or the decoder stopped by it */
        penlink_decoder_stats stats = PENLINK_DECODER_STATS_INIT;
        (void)penlink_decoder_stats_get(dec, &stats); /* cannot fail: dec exists */
        fflush(stdout);
        return cli_error(c, EXIT_CANCELLED, "decode: %s: interrupted after %" PRIu64 " records",
                         path, stats.records);
    }
    if (st == PENLINK_OK && read_err)
        return cli_error(c, EXIT_IO, "decode: reading %s: %s", path, strerror(read_err));
    if (st == PENLINK_OK)
        st = penlink_decoder_finish(dec);
    fflush(stdout);
    if (st == PENLINK_OK && penlink_decoder_format(dec) == PENLINK_INPUT_UNKNOWN)
        return cli_error(c, EXIT_PROTOCOL, "decode: %s is empty", path);
    if (st == PENLINK_ERR_CANCELLED) /* a write to standard output failed */
        return EXIT_IO;              /* main's check of it says why, once */
    if (st != PENLINK_OK)
        return cli_error(c, cli_exit_for(st), "decode: %s: %s", path, penlink_ctx_errmsg(c->ctx));
    if (o->broken)
        return cli_error(c, EXIT_INTEGRITY,
                         "decode: %s: %" PRIu64 " chunks or heads fail the hash chain or "
                         "signature check (see --messages)",
                         path, o->broken);
    say_decoded(c, path, dec);
    return EXIT_OK;
}

int cmd_decode(struct cli *c, int argc, char **argv)
{
    struct out o = { .fmt = c->json ? FMT_JSON : FMT_TEXT, .f = stdout };
    int done = 0;
    int rc = parse_args(c, argc, argv, &o, &done);
    if (rc != EXIT_OK || done)
        return rc;
    const char *path = argv[optind];
    FILE *in = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (!in)
        return cli_error(c, EXIT_IO, "decode: cannot open %s: %s", path, strerror(errno));

    /* the command's context: SIGINT and SIGTERM cancel it, and the decoder stops */
    penlink_decoder *dec = NULL;
    rc = penlink_decoder_new(c->ctx, on_record, NULL, &o, &dec);
    if (rc == PENLINK_OK)
        rc = penlink_decoder_set_message_cb(dec, on_message, &o);
    o.dec = dec;
    if (rc != PENLINK_OK) {
        rc = cli_error(c, EXIT_INTERNAL, "decode: %s", penlink_strerror(rc));
        goto out;
    }
    if (o.fmt == FMT_CSV) {
        fputs("seq,time_ms,time,kind", stdout);
        for (uint32_t b = 0; b < PENLINK_FIELD_COUNT; b++)
            printf(",%s", penlink_record_field_name(1u << b));
        fputc('\n', stdout);
    }
    rc = decode_input(c, path, in, &o, dec);
out:
    penlink_decoder_free(dec);
    if (in != stdin)
        fclose(in);
    return rc;
}
