/*
 * Configuration files: a JSON object of known keys (config_json.h).
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "config_json.h"

void config_json_unknown_key(const char *key, char *err, size_t errcap)
{
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    char list[512] = "";
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", k[i].name);
    }
    snprintf(err, errcap, "unknown configuration key '%.64s' (keys: %s)", key, list);
}

static int whole(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
           json_integer_value(v) <= (json_int_t)UINT32_MAX;
}

int config_json_parse(const char *text, size_t len, penlink_config *want, int *has_rev,
                      uint32_t *rev, char *serial, size_t serial_cap, char *err, size_t errcap)
{
    memset(want, 0, sizeof *want);
    want->size = sizeof *want;
    *has_rev = 0;
    *rev = 0;
    if (serial_cap)
        serial[0] = '\0';
    if (len > CONFIG_JSON_MAX) {
        snprintf(err, errcap,
                 "longer than %d bytes: not a configuration file (penlink config "
                 "export writes them)",
                 CONFIG_JSON_MAX);
        return -1;
    }
    json_error_t e;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!o) {
        snprintf(err, errcap, "line %d column %d: %s", e.line, e.column, e.text);
        return -1;
    }
    if (!json_is_object(o)) {
        snprintf(err, errcap, "expected a JSON object of keys");
        json_decref(o);
        return -1;
    }
    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        const penlink_config_key *k = penlink_config_key_find(key);
        if (strcmp(key, "serial") == 0 && json_is_string(v)) {
            if (serial_cap)
                snprintf(serial, serial_cap, "%s", json_string_value(v));
            continue;
        } else if (strcmp(key, "schema") == 0) {
            /* written by config export since schema 1 (docs/json.md); older
             * files have none */
            if (!json_is_integer(v) || json_integer_value(v) != CONFIG_JSON_SCHEMA) {
                snprintf(err, errcap,
                         "schema must be %d: a configuration file of another penlink "
                         "version",
                         CONFIG_JSON_SCHEMA);
                rc = -1;
            }
        } else if (strcmp(key, "revision") == 0) {
            if (whole(v)) {
                *has_rev = 1;
                *rev = (uint32_t)json_integer_value(v);
            } else {
                snprintf(err, errcap, "revision must be a number");
                rc = -1;
            }
        } else if (!k) {
            config_json_unknown_key(key, err, errcap);
            rc = -1;
        } else if (k->is_text) {
            if (!json_is_string(v) || penlink_config_set_text(want, k->bit, json_string_value(v))) {
                snprintf(err, errcap, "%s must be text of at most 64 bytes", key);
                rc = -1;
            }
        } else if (!whole(v)) {
            snprintf(err, errcap, "%s must be a whole number >= 0", key);
            rc = -1;
        } else {
            penlink_config_set_u32(want, k->bit, (uint32_t)json_integer_value(v));
        }
        if (rc != 0)
            break;
    }
    json_decref(o);
    return rc;
}
