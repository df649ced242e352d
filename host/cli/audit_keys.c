/*
 * The audit's record of replaced device keys (penlink keys replace): every
 * replacement of the pens audited, shown in the integrity report, whatever
 * the time window (a replacement is about the pen, not about a treatment).
 * Loaded while the archive is open, printed after the integrity findings;
 * the HTML report takes them with cli_keyrepl_count() and cli_keyrepl_get().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_time.h"

struct cli_keyrepl {
    penlink_key_replacement *r;
    size_t n, cap;
    int failed;
};

static int take(void *user, const penlink_key_replacement *r)
{
    struct cli_keyrepl *k = user;
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 8;
        void *p = realloc(k->r, cap * sizeof *k->r);
        if (!p) {
            k->failed = 1;
            return 1;
        }
        k->r = p;
        k->cap = cap;
    }
    k->r[k->n++] = *r;
    return 0;
}

int cli_keyrepl_load(struct cli *c, penlink_archive *ar, const char *serial,
                     struct cli_keyrepl **out)
{
    struct cli_keyrepl *k = calloc(1, sizeof *k);
    *out = k;
    if (!k)
        return cli_error(c, EXIT_INTERNAL, "audit: out of memory");
    int st = penlink_archive_key_replacements(ar, serial, take, k);
    if (k->failed)
        return cli_error(c, EXIT_INTERNAL, "audit: out of memory");
    if (st != PENLINK_OK)
        return cli_fail(c, "audit: key replacements", st);
    return EXIT_OK;
}

size_t cli_keyrepl_count(const struct cli_keyrepl *k)
{
    return k ? k->n : 0;
}

const penlink_key_replacement *cli_keyrepl_get(const struct cli_keyrepl *k, size_t i)
{
    return k && i < k->n ? &k->r[i] : NULL;
}

void cli_keyrepl_table(const struct cli_keyrepl *k)
{
    printf("Integrity: device keys replaced (penlink keys replace)\n");
    if (cli_keyrepl_count(k) == 0)
        printf("  none\n");
    for (size_t i = 0; i < cli_keyrepl_count(k); i++) {
        const penlink_key_replacement *r = &k->r[i];
        char t[40], old_fp[PENLINK_KEY_FINGERPRINT_LEN], new_fp[PENLINK_KEY_FINGERPRINT_LEN];
        cli_time_short(r->at_ms, t, sizeof t);
        penlink_key_to_fingerprint(r->old_key, old_fp);
        penlink_key_to_fingerprint(r->new_key, new_fp);
        printf("  %-12s %s by %s on %s: key %s -> %s from seq %llu; reason: %s\n",
               cli_safe(r->serial), t, cli_safe(r->user), cli_safe(r->host), old_fp, new_fp,
               (unsigned long long)r->from_seq, cli_safe(r->reason));
    }
    printf("\n");
}

void cli_keyrepl_json(const struct cli_keyrepl *k)
{
    for (size_t i = 0; i < cli_keyrepl_count(k); i++)
        cli_json_out(cli_key_replacement_json(&k->r[i]));
}

void cli_keyrepl_free(struct cli_keyrepl *k)
{
    if (k)
        free(k->r);
    free(k);
}
