/*
 * Signing keys on the technician's side: where the default technician key
 * lives, and which key signs a change, checked against the keys the pen
 * accepts before anything is sent (a wrong key is refused here, not by the
 * pen, which would log it as a security event).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

int cli_default_key_path(char *buf, size_t cap)
{
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
    if (xdg && *xdg)
        n = snprintf(buf, cap, "%s/penlink", xdg);
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.config/penlink", home);
    else
        return -1;
    if (n <= 0 || (size_t)n >= cap - sizeof "/technician.key")
        return -1;
    strcat(buf, "/technician.key");
    return 0;
}

/* "3f1c:9a0e:7b21:44d0, 0b5e:..." : the keys @p info's pen accepts. */
static void accepted_keys(const penlink_info *info, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t k = 0; k < info->n_config_keys && n < cap; k++) {
        char fp[PENLINK_KEY_FINGERPRINT_LEN];
        penlink_key_to_fingerprint(info->config_keys[k], fp);
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", k ? ", " : "", fp);
    }
}

int cli_signing_key(struct cli *c, const char *what, const penlink_info *info, int need,
                    const char *key_file, penlink_key *key, int *have)
{
    char path[1024], fps[4 * PENLINK_KEY_FINGERPRINT_LEN + 8], fp[PENLINK_KEY_FINGERPRINT_LEN];
    int by_default = 0;
    *have = 0;
    accepted_keys(info, fps, sizeof fps);
    if (!key_file && need && cli_default_key_path(path, sizeof path) == 0 &&
        access(path, F_OK) == 0) {
        key_file = path;
        by_default = 1;
    }
    if (!key_file) {
        if (!need)
            return EXIT_OK;
        return cli_error(c, EXIT_AUTH,
                         "%s: pen %s takes only signed requests, by one of the keys with "
                         "fingerprint %s (penlink info lists them): add --key FILE with one of "
                         "them, or keep yours as ~/.config/penlink/technician.key. Nothing was "
                         "sent",
                         what, info->serial, fps[0] ? fps : "(none listed)");
    }
    int st = penlink_key_load(c->ctx, key_file, key);
    if (st != PENLINK_OK)
        return cli_fail(c, what, st);
    penlink_key_to_fingerprint(key->public_key, fp);
    int accepts = 0;
    st = penlink_info_accepts_key(info, key->public_key, &accepts);
    if (st != PENLINK_OK)
        return cli_fail(c, what, st);
    if (info->n_config_keys > 0 && !accepts)
        return cli_error(c, EXIT_AUTH,
                         "%s: %s %s (fingerprint %s) is not one pen %s accepts; it accepts %s. "
                         "Nothing was sent (the pen would refuse it and log a security event): "
                         "sign with one of those keys, or have yours provisioned on the pen "
                         "(penlink keys show FILE gives its .pub)",
                         what, by_default ? "the default technician key" : "the key in", key_file,
                         fp, info->serial, fps);
    if (by_default) {
        char text[1200];
        snprintf(text, sizeof text, "signing with the default technician key %s (fingerprint %s)",
                 key_file, fp);
        cli_notice(c, text);
    }
    *have = 1;
    return EXIT_OK;
}
