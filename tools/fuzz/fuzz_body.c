/* libFuzzer target: the archive's packed record body (host/src/record_body.c),
 * the bytes of a records row, which a damaged or edited archive controls.
 * Whatever unpacks must pack again into bytes that unpack to the same record. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    penlink_record r, again;
    memset(&r, 0, sizeof r);
    if (archive_body_unpack(data, size, &r) != 0)
        return 0;
    if (size > ARCHIVE_BODY_MAX)
        __builtin_trap(); /* nothing longer than a body can be one */
    uint8_t out[ARCHIVE_BODY_MAX];
    size_t n = archive_body_pack(&r, out);
    if (n > size) /* packing is canonical: never longer than what was read */
        __builtin_trap();
    memset(&again, 0, sizeof again);
    if (archive_body_unpack(out, n, &again) != 0 || memcmp(&r, &again, sizeof r) != 0)
        __builtin_trap();
    return 0;
}
