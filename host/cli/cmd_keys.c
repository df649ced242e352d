/*
 * penlink keys generate | show | replace: technician keys that sign
 * configuration, and the record of a pen given a new device key.
 */
#define _POSIX_C_SOURCE 200809L
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink keys generate [FILE]\n"
    "       penlink keys show FILE\n"
    "       penlink [--device URI] [--archive PATH] keys replace --pen SERIAL\n"
    "                                           --reason TEXT [--yes]\n"
    "\n"
    "generate makes an Ed25519 key pair for signing configuration: FILE gets the\n"
    "secret key (mode 0600) and FILE.pub the public key. Without FILE:\n"
    "$XDG_CONFIG_HOME/penlink/technician.key (~/.config/penlink/technician.key),\n"
    "the key config set, config import and clock sync use when no --key is\n"
    "given and the pen requires signing. An existing file is never overwritten;\n"
    "missing directories of FILE are made (private).\n"
    "Give the .pub file to whoever provisions the pens; keep the secret key on\n"
    "this computer only.\n"
    "\n"
    "show prints the public key of a key file (secret or .pub), as 64 hex\n"
    "digits, and its fingerprint: compare them with what 'penlink info' lists.\n"
    "\n"
    "replace records that a pen came back (from repair, RMA) with its serial\n"
    "and its log but a new device key, which the archive otherwise refuses\n"
    "(exit status 6, alarm key_changed). The pen must be plugged in (--device):\n"
    "penlink shows the key the archive holds and the key the pen presents (and\n"
    "checks that the pen signs with it), asks for confirmation, and records who,\n"
    "when, on which computer, why, the old key and the new one, in an\n"
    "append-only table. From then on pulls expect the new key; the records\n"
    "archived before stay verifiable with the old key (penlink verify), and the\n"
    "audit's integrity report shows every replacement. Nothing is ever\n"
    "replaced silently: a pen presenting a third key is refused again. A pen\n"
    "presenting the key already in force is a usage error (exit status 2), the\n"
    "old key coming back is refused (exit status 6: keep that pen apart), and\n"
    "Ctrl-C at the question records nothing (exit status 130).\n"
    "\n"
    "Options of replace:\n"
    "  -p, --pen SERIAL    the pen (it must be the one plugged in)\n"
    "  -r, --reason TEXT   why, for the audit trail (required, not blank), e.g. \"RMA 4471:\n"
    "                      main board replaced\"\n"
    "  -y, --yes           do not ask for confirmation (scripts)\n";

static int replace(struct cli *c, int argc, char **argv);

int cmd_keys(struct cli *c, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "replace") == 0)
        return replace(c, argc - 1, argv + 1);
    int done = cli_help_only(argc, argv, usage, -1);
    if (done >= 0)
        return done;
    int nargs = argc - optind;
    const char *verb = nargs > 0 ? argv[optind] : "";
    int gen = strcmp(verb, "generate") == 0, show = strcmp(verb, "show") == 0;
    if (!(gen && nargs <= 2) && !(show && nargs == 2)) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    char path[1024], hex[65], fp[PENLINK_KEY_FINGERPRINT_LEN];
    uint8_t pk[32];
    if (gen) {
        if (nargs == 2)
            snprintf(path, sizeof path, "%s", argv[optind + 1]);
        else if (cli_default_key_path(path, sizeof path) != 0)
            return cli_error(c, EXIT_IO,
                             "keys generate: no place for the key (set HOME or "
                             "XDG_CONFIG_HOME, or name a FILE)");
        penlink_key k = PENLINK_KEY_INIT;
        int st = penlink_key_generate(c->ctx, path, &k);
        if (st != PENLINK_OK)
            return cli_fail(c, "keys generate", st);
        memcpy(pk, k.public_key, 32);
        memset(&k, 0, sizeof k);
    } else {
        snprintf(path, sizeof path, "%s", argv[optind + 1]);
        int st = penlink_key_load_public(c->ctx, path, pk);
        if (st != PENLINK_OK)
            return cli_fail(c, "keys show", st);
    }
    penlink_key_to_hex(pk, hex);
    penlink_key_to_fingerprint(pk, fp);
    if (c->json) {
        json_t *o = json_pack("{s:s, s:s}", "public_key", hex, "fingerprint", fp);
        if (gen) {
            char pub[1100];
            snprintf(pub, sizeof pub, "%s.pub", path);
            json_object_set_new(o, "secret_key_file", cli_json_str(path));
            json_object_set_new(o, "public_key_file", cli_json_str(pub));
        }
        cli_json_out(o);
    } else if (gen && !c->quiet) {
        printf("secret key: %s (keep it private)\npublic key: %s.pub\n%s\nfingerprint %s\n", path,
               path, hex, fp);
    } else {
        printf("%s\nfingerprint %s\n", hex, fp);
    }
    return EXIT_OK;
}

/* ---- keys replace ----------------------------------------------------------- */

static void key_line(const char *label, const uint8_t key[32])
{
    char hex[65], fp[PENLINK_KEY_FINGERPRINT_LEN];
    penlink_key_to_hex(key, hex);
    penlink_key_to_fingerprint(key, fp);
    printf("  %-26s %s  %s\n", label, fp, hex);
}

/* 1 when @p s holds nothing but white space: no reason at all. */
static int blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

/* Asks on the terminal; 1 when the answer is "yes". */
#define ANSWER_POLL_MS 100 /* how often the confirmation prompt looks for a Ctrl-C */

static int confirmed(const char *serial)
{
    char answer[64];
    printf("Record the new key of %s? Only if the pen came back from repair with a new\n"
           "device key and you checked where it came from. Type yes to record it: ",
           cli_safe(serial));
    fflush(stdout);
    /* A Ctrl-C typed as the prompt appears may come before the read starts:
     * a blocking read would then wait for ever. Wait for the answer in short
     * polls, looking at the flag the SIGINT handler sets between them. */
    for (;;) {
        if (cli_interrupted)
            return 0;
        struct pollfd p = { STDIN_FILENO, POLLIN, 0 };
        int n = poll(&p, 1, ANSWER_POLL_MS);
        if (n > 0)
            break;
        if (n < 0 && errno != EINTR)
            return 0;
    }
    if (!fgets(answer, sizeof answer, stdin))
        return 0;
    answer[strcspn(answer, "\r\n")] = '\0';
    return strcmp(answer, "yes") == 0;
}

static json_t *replacement_json(const penlink_key_replacement *r)
{
    char old_hex[65], new_hex[65], old_fp[PENLINK_KEY_FINGERPRINT_LEN],
        new_fp[PENLINK_KEY_FINGERPRINT_LEN], t[40];
    penlink_key_to_hex(r->old_key, old_hex);
    penlink_key_to_hex(r->new_key, new_hex);
    penlink_key_to_fingerprint(r->old_key, old_fp);
    penlink_key_to_fingerprint(r->new_key, new_fp);
    cli_format_time(r->at_ms, t, sizeof t);
    return json_pack("{s:o, s:s, s:I, s:o, s:o, s:o, s:s, s:s, s:s, s:s, s:I, s:I}", "serial",
                     cli_json_str(r->serial), "at", t, "at_ms", (json_int_t)r->at_ms, "user",
                     cli_json_str(r->user), "host", cli_json_str(r->host), "reason",
                     cli_json_str(r->reason), "old_key", old_hex, "old_fingerprint", old_fp,
                     "new_key", new_hex, "new_fingerprint", new_fp, "from_seq",
                     (json_int_t)r->from_seq, "heads_before", (json_int_t)r->heads_before);
}

const struct option cli_keys_replace_options[] = { { "pen", required_argument, NULL, 'p' },
                                                   { "reason", required_argument, NULL, 'r' },
                                                   { "yes", no_argument, NULL, 'y' },
                                                   { "help", no_argument, NULL, 'h' },
                                                   { NULL, 0, NULL, 0 } };

/* The command line of keys replace: EXIT_OK to go on, else the exit status (--help is
 * *done). */
static int replace_args(struct cli *c, int argc, char **argv, const char **pen, const char **reason,
                        int *yes, int *done)
{
    int opt;
    optind = 0;
    while ((opt = getopt_long(argc, argv, "p:r:yh", cli_keys_replace_options, NULL)) != -1) {
        switch (opt) {
        case 'p': *pen = optarg; break;
        case 'r': *reason = optarg; break;
        case 'y': *yes = 1; break;
        case 'h':
            fputs(usage, stdout);
            *done = 1;
            return EXIT_OK;
        default: fputs(usage, stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc || !*pen) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (!*reason || blank(*reason) || strlen(*reason) > PENLINK_KEY_REASON_MAX)
        return cli_error(c, EXIT_USAGE,
                         "keys replace: --reason TEXT is required (1 to %d bytes, not only "
                         "spaces): the audit "
                         "trail says why the key changed, e.g. \"RMA 4471: main board replaced\"",
                         PENLINK_KEY_REASON_MAX);
    if (!*yes && (c->json || !isatty(STDIN_FILENO)))
        return cli_error(c, EXIT_USAGE,
                         "keys replace: confirmation needed and there is no terminal to ask it "
                         "on: add --yes (nothing was recorded)");
    return EXIT_OK;
}

/* The device key the archive holds for @p pen (one it pinned): EXIT_OK or the error. */
static int archived_key(struct cli *c, penlink_archive *ar, const char *pen, uint8_t old_key[32])
{
    int pinned = 0;
    int st = penlink_archive_pen_key(ar, pen, old_key, &pinned);
    if (st == PENLINK_ERR_NOT_FOUND)
        return cli_error(c, EXIT_USAGE,
                         "keys replace: no pen %s in the archive: nothing to replace", pen);
    if (st != PENLINK_OK)
        return cli_fail(c, "keys replace", st);
    if (!pinned)
        return cli_error(c, EXIT_USAGE,
                         "keys replace: the archive holds no device key for pen %s (it never "
                         "signed its log): there is no key to replace",
                         pen);
    return EXIT_OK;
}

/* The pen plugged in is @p pen, presents a new device key and proves it holds its secret. */
static int check_new_key(struct cli *c, penlink_dev *dev, const char *pen,
                         const uint8_t old_key[32], penlink_info *info)
{
    int st = penlink_dev_info(dev, info);
    if (st != PENLINK_OK)
        return cli_fail(c, "keys replace", st);
    if (strcmp(info->serial, pen) != 0)
        return cli_error(c, EXIT_USAGE,
                         "keys replace: the pen plugged in is %s, not %s: plug in pen %s (or "
                         "choose it with --device)",
                         info->serial, pen, pen);
    if (!info->has_device_key || !(info->features & PENLINK_FEATURE_SIGNED_CHUNKS))
        return cli_error(c, EXIT_INTEGRITY,
                         "keys replace: pen %s presents no device key (or does not sign its log "
                         "with it): a pen that signed its log must go on signing; have it "
                         "checked",
                         pen);
    /* the pen holds the new key's secret: it signs its log head with it (an empty pull) */
    st = penlink_dev_pull(dev, info->log_next_seq, NULL, NULL);
    if (st != PENLINK_OK)
        return cli_fail(c, "keys replace: the pen did not prove it holds its new key", st);
    if (memcmp(info->device_key, old_key, 32) == 0) {
        char fp[PENLINK_KEY_FINGERPRINT_LEN];
        penlink_key_to_fingerprint(old_key, fp);
        return cli_error(c, EXIT_USAGE,
                         "keys replace: pen %s presents the device key already in force for it "
                         "(fingerprint %s): nothing to replace, nothing was recorded",
                         pen, fp);
    }
    return EXIT_OK;
}

/* The old and new keys shown, and the replacement confirmed (unless --yes). */
static int confirm_replacement(struct cli *c, const char *pen, const char *reason, int yes,
                               const uint8_t old_key[32], const penlink_info *info)
{
    if (!c->json) {
        printf("Pen %s presents another device key than the archive holds for it.\n",
               cli_safe(pen));
        key_line("key in the archive (old)", old_key);
        key_line("key the pen presents (new)", info->device_key);
        printf("  the pen signed its log head with the new key: it holds its secret half\n");
        printf("  reason: %s\n", cli_safe(reason));
    }
    if (yes || confirmed(pen))
        return EXIT_OK;
    if (cli_interrupted) {
        fputc('\n', stdout); /* the prompt's line, cut short */
        return cli_error(c, EXIT_CANCELLED, "keys replace: interrupted: nothing was recorded");
    }
    return cli_error(c, EXIT_USAGE, "keys replace: not confirmed: nothing was recorded");
}

static void say_replaced(struct cli *c, const penlink_key_replacement *r)
{
    if (c->json) {
        cli_json_out(replacement_json(r));
    } else if (!c->quiet) {
        char t[40];
        cli_format_time(r->at_ms, t, sizeof t);
        printf("recorded %s by %s on %s.\n"
               "Records from seq %llu on come under the new key; the signed heads archived\n"
               "before (%llu) stay verifiable with the old one. Pull the pen now.\n",
               t, cli_safe(r->user), cli_safe(r->host), (unsigned long long)r->from_seq,
               (unsigned long long)r->heads_before);
    }
}

static int replace(struct cli *c, int argc, char **argv)
{
    const char *pen = NULL, *reason = NULL;
    int yes = 0, done = 0;
    int rc = replace_args(c, argc, argv, &pen, &reason, &yes, &done);
    if (rc != EXIT_OK || done)
        return rc;
    penlink_archive *ar = NULL;
    penlink_dev *dev = NULL;
    uint8_t old_key[32];
    penlink_info info = PENLINK_INFO_INIT;
    int st = penlink_archive_open(c->ctx, c->archive, &ar);
    if (st != PENLINK_OK) {
        rc = st == PENLINK_ERR_NOT_FOUND
                 ? cli_error(c, EXIT_USAGE,
                             "keys replace: no pen %s in the archive: nothing to replace", pen)
                 : cli_fail(c, "keys replace", st);
        goto out;
    }
    rc = archived_key(c, ar, pen, old_key);
    if (rc == EXIT_OK)
        rc = cli_open(c, &dev);
    if (rc == EXIT_OK)
        rc = check_new_key(c, dev, pen, old_key, &info);
    if (rc == EXIT_OK)
        rc = confirm_replacement(c, pen, reason, yes, old_key, &info);
    if (rc != EXIT_OK)
        goto out;
    penlink_key_replacement r = PENLINK_KEY_REPLACEMENT_INIT;
    st = penlink_archive_key_replace(ar, &info, reason, &r);
    if (st != PENLINK_OK) {
        rc = cli_fail(c, "keys replace", st);
        goto out;
    }
    say_replaced(c, &r);
out:
    penlink_dev_close(dev);
    penlink_archive_close(ar);
    return rc;
}
