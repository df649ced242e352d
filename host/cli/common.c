/*
 * Helpers every subcommand shares: opening the pen, errors, JSON, time, and
 * the one boundary that every string from a pen or the archive crosses
 * before it reaches a terminal, a CSV or JSON output, or a file name.
 */
#define _POSIX_C_SOURCE 200809L
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "cli.h"

int cli_exit_for(int status)
{
    switch (status) {
    case PENLINK_OK: return EXIT_OK;
    case PENLINK_ERR_INVALID_ARG: return EXIT_USAGE;
    case PENLINK_ERR_IO: return EXIT_IO;
    case PENLINK_ERR_NOT_FOUND:
    case PENLINK_ERR_ACCESS:
    case PENLINK_ERR_BUSY:
    case PENLINK_ERR_GONE:
    case PENLINK_ERR_AMBIGUOUS: return EXIT_NO_DEVICE;
    case PENLINK_ERR_DEVICE:
    case PENLINK_ERR_CONFLICT:
    case PENLINK_ERR_INVALID_CONFIG: return EXIT_DEVICE;
    case PENLINK_ERR_AUTH: return EXIT_AUTH;
    case PENLINK_ERR_PROTOCOL:
    case PENLINK_ERR_UNSUPPORTED:
    case PENLINK_ERR_TIMEOUT:
    case PENLINK_ERR_VERSION: return EXIT_PROTOCOL;
    case PENLINK_ERR_INTEGRITY: return EXIT_INTEGRITY;
    case PENLINK_ERR_CANCELLED: return EXIT_CANCELLED;
    default: return EXIT_INTERNAL;
    }
}

int cli_fail(struct cli *c, const char *what, int status)
{
    const char *detail = penlink_ctx_errmsg(c->ctx);
    return cli_error_status(c, status, "%s: %s", what,
                            detail && *detail ? detail : penlink_strerror(status));
}

const struct option cli_help_options[] = { { "help", no_argument, NULL, 'h' },
                                           { NULL, 0, NULL, 0 } };

int cli_help_only(int argc, char **argv, const char *usage, int nargs)
{
    int opt;
    while ((opt = getopt_long(argc, argv, "h", cli_help_options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(usage, stdout);
            return EXIT_OK;
        }
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (nargs >= 0 && argc - optind != nargs) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    return -1;
}

int cli_open(struct cli *c, penlink_dev **dev)
{
    int st = penlink_dev_open(c->ctx, c->device, dev);
    if (st != PENLINK_OK)
        return cli_fail(c, "cannot open the pen", st);
    return EXIT_OK;
}

void cli_json_line(FILE *f, void *json)
{
    /* every object a command prints names the version of its form
     * (docs/json.md); an object that already says it is left alone */
    if (json_is_object((json_t *)json) && !json_object_get(json, "schema"))
        json_object_set_new(json, "schema", json_integer(CLI_JSON_SCHEMA));
    /* ASCII only: a string's C1 controls and direction overrides reach a
     * terminal as \u escapes, never raw; parsers read back the same text */
    char *s = json ? json_dumps(json, CLI_JSON_FLAGS) : NULL;
    if (s)
        fprintf(f, "%s\n", s);
    free(s);
    json_decref(json);
}

void cli_json_out(void *json)
{
    cli_json_line(stdout, json);
}

void cli_format_time(int64_t ms, char *buf, size_t cap)
{
    time_t s = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    if (frac < 0) {
        frac += 1000;
        s -= 1;
    }
    struct tm tm;
    /* the ms when the date has none or does not fit (strftime() then says 0) */
    size_t n = gmtime_r(&s, &tm) ? strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm) : 0;
    if (n == 0) {
        snprintf(buf, cap, "%lld", (long long)ms);
        return;
    }
    snprintf(buf + n, cap - n, ".%03dZ", frac);
}

/* ---- strings from a pen or the archive ----------------------------------
 *
 * A pen's serial, model, labels and error messages, and whatever an archive
 * holds, are bytes an attacker may choose: terminal escape sequences (clear
 * the screen, move the cursor, rewrite the title), a carriage return that
 * overwrites the line with a fake verdict, bytes that are not UTF-8 (which
 * jansson refuses, so a JSON key would vanish), a "../" that leaves a
 * directory. Everything such a string meets goes through the functions
 * below; docs/penlink.1 (SECURITY OF OUTPUT) documents the conventions.
 */

/* Length (1..4) of the valid UTF-8 sequence at @p s and its code point, or 0
 * when the byte at @p s starts none (overlong forms, surrogates and code
 * points above U+10FFFF are not valid). Reads no further than a NUL. */
static int utf8_seq(const unsigned char *s, uint32_t *cp)
{
    unsigned c = s[0];
    int n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1F;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0F;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    for (int i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) /* a NUL ends the check here too */
            return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* Characters a terminal does not show as themselves: C1 controls, and the
 * invisible or direction-changing ones that make one string look like
 * another (zero-width spaces, bidi embeddings, overrides and isolates). */
static int invisible(uint32_t cp)
{
    return (cp >= 0x80 && cp <= 0x9F) || cp == 0x061C || (cp >= 0x200B && cp <= 0x200F) ||
           (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2060 && cp <= 0x2069) || cp == 0xFEFF;
}

char *cli_escape(char *buf, size_t cap, const char *s)
{
    static const char ellipsis[] = "...";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t pos = 0;
    if (cap == 0)
        return buf;
    while (*p) {
        char piece[16];
        uint32_t cp = 0;
        int n = utf8_seq(p, &cp);
        if (n == 0) {
            snprintf(piece, sizeof piece, "\\x%02x", *p); /* not UTF-8: the byte */
            n = 1;
        } else if (cp == '\n' || cp == '\r' || cp == '\t' || cp == 0x1B) {
            snprintf(piece, sizeof piece, "\\%c",
                     cp == '\n'   ? 'n'
                     : cp == '\r' ? 'r'
                     : cp == '\t' ? 't'
                                  : 'e');
        } else if (cp < 0x20 || cp == 0x7F) {
            snprintf(piece, sizeof piece, "\\x%02x", (unsigned)cp);
        } else if (cp == '\\') {
            snprintf(piece, sizeof piece, "\\\\");
        } else if (invisible(cp)) {
            snprintf(piece, sizeof piece, "\\u%04x", (unsigned)cp);
        } else {
            memcpy(piece, p, (size_t)n);
            piece[n] = '\0';
        }
        size_t k = strlen(piece);
        /* room for this piece, and for "..." should more follow */
        if (pos + k + sizeof ellipsis > cap) {
            if (pos + sizeof ellipsis <= cap) {
                memcpy(buf + pos, ellipsis, sizeof ellipsis - 1);
                pos += sizeof ellipsis - 1;
            }
            break;
        }
        memcpy(buf + pos, piece, k);
        pos += k;
        p += n;
    }
    buf[pos] = '\0';
    return buf;
}

#define SAFE_SLOTS 8
#define SAFE_CAP 2048

const char *cli_safe(const char *s)
{
    static char slots[SAFE_SLOTS][SAFE_CAP];
    static unsigned next;
    char *buf = slots[next++ % SAFE_SLOTS];
    return cli_escape(buf, SAFE_CAP, s);
}

void *cli_json_str(const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)p);
    char *buf = malloc(4 * len + 1); /* an invalid byte grows to 4 */
    json_t *j = NULL;
    if (buf) {
        size_t pos = 0;
        while (*p) {
            uint32_t cp;
            int n = utf8_seq(p, &cp);
            if (n == 0) {
                pos += (size_t)snprintf(buf + pos, 5, "\\x%02x", *p);
                p++;
            } else {
                memcpy(buf + pos, p, (size_t)n);
                pos += (size_t)n;
                p += n;
            }
        }
        j = json_stringn(buf, pos);
        free(buf);
    }
    /* out of memory: the key stays, with null */
    return j ? j : json_null();
}

void *cli_json_u64(uint64_t v)
{
    char buf[24];
    if (v <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)v);
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
    return json_string(buf);
}

void *cli_config_value_json(const penlink_config *cfg, const penlink_config_key *k)
{
    if (k->is_text)
        return cli_json_str(penlink_config_get_text(cfg, k->bit));
    return json_integer(penlink_config_get_u32(cfg, k->bit));
}

void cli_config_value_text(const penlink_config *cfg, const penlink_config_key *k, char *buf,
                           size_t cap)
{
    if (k->is_text)
        snprintf(buf, cap, "\"%s\"", penlink_config_get_text(cfg, k->bit));
    else
        snprintf(buf, cap, "%" PRIu32, penlink_config_get_u32(cfg, k->bit));
}

void cli_csv_text(FILE *f, const char *s)
{
    /* a field is never cut (notes on a finding run to kilobytes): cli_safe's
     * buffers only when memory runs out */
    size_t cap = CLI_ESCAPED_CAP(strlen(s ? s : ""));
    char *buf = malloc(cap);
    const char *e = buf ? cli_escape(buf, cap, s) : cli_safe(s);
    /* a spreadsheet runs a cell that starts with = + - @ as a formula */
    int formula = strchr("=+-@", e[0]) != NULL && e[0] != '\0';
    if (!formula && !strpbrk(e, ",\"")) {
        fputs(e, f);
        free(buf);
        return;
    }
    fputc('"', f);
    if (formula)
        fputc('\'', f);
    for (; *e; e++) {
        if (*e == '"')
            fputc('"', f);
        fputc(*e, f);
    }
    fputc('"', f);
    free(buf);
}

int cli_filename_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > CLI_FILENAME_SERIAL_MAX || s[0] == '.')
        return 0;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") == n;
}

void cli_warn(const struct cli *c, const char *fmt, ...)
{
    char msg[1024], safe[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->json)
        cli_json_line(stderr, json_pack("{s:o}", "warning", cli_json_str(msg)));
    else
        fprintf(stderr, "%s: warning: %s\n", c->prog, cli_escape(safe, sizeof safe, msg));
}
