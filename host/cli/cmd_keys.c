/*
 * penlink keys generate | show: technician keys that sign configuration.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cli.h"

static const char usage[] =
    "Usage: penlink keys generate [FILE]\n"
    "       penlink keys show FILE\n"
    "\n"
    "generate makes an Ed25519 key pair for signing configuration: FILE gets the\n"
    "secret key (mode 0600) and FILE.pub the public key. Without FILE:\n"
    "$XDG_CONFIG_HOME/penlink/technician.key (~/.config/penlink/technician.key).\n"
    "An existing file is never overwritten. Give the .pub file to whoever\n"
    "provisions the pens; keep the secret key on this computer only, and use it\n"
    "with 'penlink config set --key FILE' and 'config import --key FILE'.\n"
    "\n"
    "show prints the public key of a key file (secret or .pub), as 64 hex\n"
    "digits: compare it with the keys 'penlink info' lists for a pen.\n";

static int default_path(char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && *xdg)
        n = snprintf(buf, cap, "%s/penlink", xdg);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.config/penlink", home);
    else
        return -1;
    if (n <= 0 || (size_t)n >= cap - 20)
        return -1;
    /* the directory and its parents, made private if missing (mkdir -p) */
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int bad = mkdir(buf, 0700) != 0 && errno != EEXIST;
        *p = '/';
        if (bad)
            return -1;
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return -1;
    strcat(buf, "/technician.key");
    return 0;
}

int cmd_keys(struct cli *c, int argc, char **argv)
{
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
    char path[1024], hex[65];
    uint8_t pk[32];
    if (gen) {
        if (nargs == 2)
            snprintf(path, sizeof path, "%s", argv[optind + 1]);
        else if (default_path(path, sizeof path) != 0)
            return cli_error(c, EXIT_IO,
                             "keys generate: no place for the key (set HOME or "
                             "XDG_CONFIG_HOME, or name a FILE)");
        penlink_key k;
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
    penlink_key_hex(pk, hex);
    if (c->json) {
        json_t *o = json_pack("{s:s}", "public_key", hex);
        if (gen) {
            char pub[1100];
            snprintf(pub, sizeof pub, "%s.pub", path);
            json_object_set_new(o, "secret_key_file", cli_json_str(path));
            json_object_set_new(o, "public_key_file", cli_json_str(pub));
        }
        cli_json_out(o);
    } else if (gen && !c->quiet) {
        printf("secret key: %s (keep it private)\npublic key: %s.pub\n%s\n", path, path, hex);
    } else {
        printf("%s\n", hex);
    }
    return EXIT_OK;
}
