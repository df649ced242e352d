/* libFuzzer target: the incremental frame decoder, fed in fuzzer-chosen splits,
 * then every frame's payload through the Envelope unpacker. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "pl/envelope.h"
#include "pl/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[PL_FRAME_HEADER_SIZE + 4096];
    pl_frame_decoder d;
    if (size < 1)
        return 0;
    /* the first byte picks the maximum payload and the piece size */
    uint32_t max = 64u + (uint32_t)(data[0] & 0x3F) * 64u;
    size_t piece = 1 + (data[0] >> 6) * 7;
    pl_frame_decoder_init(&d, buf, sizeof buf, max);
    data++;
    size--;
    while (size > 0) {
        size_t n = size < piece ? size : piece, used = 0;
        pl_frame fr;
        pl_status st = pl_frame_decoder_feed(&d, data, n, &used, &fr);
        if (used > n)
            __builtin_trap();
        if (st == PL_OK) {
            if (fr.len > max)
                __builtin_trap();
            pl_envelope_free(NULL, pl_envelope_unpack(NULL, fr.payload, fr.len));
        }
        data += used;
        size -= used;
    }
    return 0;
}
