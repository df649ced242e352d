/*
 * The configuration as the archive stores it, the same in every backend:
 * JSON text of our own making, written without a JSON library (only
 * numbers and bounded, escaped strings) and read back by the same rules.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive.h"

/* A configuration as JSON text without a JSON library: only numbers and
 * bounded, escaped strings. */
void archive_config_text(const penlink_config *c, char *out, size_t cap)
{
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    size_t used = (size_t)snprintf(out, cap, "{\"revision\":%u", c->revision);
    for (size_t i = 0; i < n && used < cap; i++) {
        if (!(c->present & k[i].bit))
            continue;
        if (k[i].is_text) {
            used += (size_t)snprintf(out + used, cap - used, ",\"%s\":\"", k[i].name);
            for (const char *p = penlink_config_get_text(c, k[i].bit); *p && used + 8 < cap; p++)
                used += (size_t)snprintf(out + used, cap - used,
                                         (*p == '"' || *p == '\\')    ? "\\%c"
                                         : ((unsigned char)*p < 0x20) ? "\\u%04x"
                                                                      : "%c",
                                         *p);
            if (used < cap)
                used += (size_t)snprintf(out + used, cap - used, "\"");
        } else {
            used += (size_t)snprintf(out + used, cap - used, ",\"%s\":%u", k[i].name,
                                     penlink_config_get_u32(c, k[i].bit));
        }
    }
    if (used < cap)
        snprintf(out + used, cap - used, "}");
}

#define ESCAPE_U_LEN 6 /* \u and four hex digits */

/* The character of a \uXXXX escape as archive_config_text() writes them
 * (control characters, below 0x20); 0 for anything else. */
static int escaped_char(const char *hex, char *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char h = hex[i];
        unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                     : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                     : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return 0;
        v = v << 4 | d;
    }
    if (v == 0 || v >= 0x20)
        return 0;
    *out = (char)v;
    return 1;
}

/* Parses one number or string of our own config JSON text (bounded). */
void archive_config_parse(const char *j, penlink_config *c)
{
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    memset(c, 0, sizeof *c);
    c->size = sizeof *c;
    const char *p = strstr(j, "\"revision\":");
    if (p)
        c->revision = (uint32_t)strtoul(p + 11, NULL, 10);
    for (size_t i = 0; i < n; i++) {
        char key[48];
        snprintf(key, sizeof key, "\"%s\":", k[i].name);
        p = strstr(j, key);
        if (!p)
            continue;
        p += strlen(key);
        if (!k[i].is_text) {
            penlink_config_set_u32(c, k[i].bit, (uint32_t)strtoul(p, NULL, 10));
            continue;
        }
        char v[65];
        size_t o = 0;
        if (*p++ != '"')
            continue;
        while (*p && *p != '"' && o + 1 < sizeof v) {
            if (*p == '\\' && p[1] == 'u' && escaped_char(p + 2, &v[o])) {
                o++;
                p += ESCAPE_U_LEN;
                continue;
            }
            if (*p == '\\' && p[1])
                p++;
            v[o++] = *p++;
        }
        v[o] = '\0';
        penlink_config_set_text(c, k[i].bit, v);
    }
}
