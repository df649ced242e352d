/*
 * libFuzzer target for the pen's protocol handler (clang, -DPENLINK_FUZZ=ON):
 * arbitrary bytes on the bulk OUT endpoint, see fuzz_entry.c. The normal
 * build runs the same entry over random inputs (test_handler.c).
 */
#include <stddef.h>
#include <stdint.h>

int pen_fuzz_one(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return pen_fuzz_one(data, size);
}
