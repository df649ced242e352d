/* libFuzzer target: a configuration file for penlink config import
 * (host/configfile/config_json.c), which whoever hands the technician the file
 * controls. Whatever parses must hold only known keys with values in their
 * types' ranges, and text within 64 bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config_json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    penlink_config want = PENLINK_CONFIG_INIT;
    int has_rev;
    uint32_t rev;
    char err[700], serial[65];
    err[0] = '\0';
    if (config_json_parse((const char *)data, size, &want, &has_rev, &rev, serial, sizeof serial,
                          err, sizeof err) != 0) {
        if (err[0] == '\0' || memchr(err, '\0', sizeof err) == NULL)
            __builtin_trap(); /* a refusal always says why */
        return 0;
    }
    size_t n;
    const penlink_config_key *k = penlink_config_keys(&n);
    uint32_t known = 0;
    for (size_t i = 0; i < n; i++) {
        known |= k[i].bit;
        if (k[i].is_text && (want.present & k[i].bit) &&
            strlen(penlink_config_get_text(&want, k[i].bit)) > 64)
            __builtin_trap();
    }
    if (want.present & ~known)
        __builtin_trap();
    if (memchr(serial, '\0', sizeof serial) == NULL)
        __builtin_trap(); /* the pen a file names is a string within its buffer */
    return 0;
}
