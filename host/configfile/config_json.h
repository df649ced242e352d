/*
 * A configuration file (penlink config export writes them, config import
 * reads them): one JSON object of known keys with typed values. The text is
 * hostile input; it is parsed here on its own so it can be fuzzed.
 */
#ifndef PENLINK_CLI_CONFIG_JSON_H
#define PENLINK_CLI_CONFIG_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "penlink/penlink.h"

/** The "schema" config export writes into a file (docs/json.md): the
 * version of the CLI's JSON forms, CLI_JSON_SCHEMA. A file without one (an
 * earlier penlink's) is read the same. */
#define CONFIG_JSON_SCHEMA 1

/** The largest configuration file read, in bytes. */
#define CONFIG_JSON_MAX (64 * 1024)

/**
 * Parses @p len bytes of @p text into @p want (only the keys present are
 * set); "revision" is optional (*@p has_rev), "serial" (the pen the file was
 * exported from) too: it goes to @p serial ("" when absent; cut to
 * @p serial_cap - 1 bytes, unchecked text); "schema", when present, must be
 * CONFIG_JSON_SCHEMA. Returns 0, or -1 with what is
 * wrong in @p err (unknown key, wrong type, bad JSON with its line and
 * column, too long).
 */
int config_json_parse(const char *text, size_t len, penlink_config *want, int *has_rev,
                      uint32_t *rev, char *serial, size_t serial_cap, char *err, size_t errcap);

/** The message for an unknown key, listing the known ones. */
void config_json_unknown_key(const char *key, char *err, size_t errcap);

#endif
