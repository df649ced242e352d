/* libFuzzer target: the chunk decoder (zlib + RecordBatch), with and without
 * the expectations a LogChunk carries. Also the bare RecordBatch parser,
 * which random bytes reach far more often than through inflate. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pl/chunk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pl_chunk_dec dec;
    static int ready;
    static pl_record out[PL_CHUNK_MAX_RECORDS];
    if (!ready) {
        if (pl_chunk_dec_init(&dec, PL_CHUNK_MAX_RECORDS, 64 * 1024) != PL_OK)
            abort();
        ready = 1;
    }
    uint32_t n = 0;
    if (size > 0 && data[0] == 0xB0) { /* raw batch mode */
        uint64_t first;
        pl_batch_parse(data + 1, size - 1, PL_CHUNK_MAX_RECORDS, out, PL_CHUNK_MAX_RECORDS, &n,
                       &first, NULL);
    } else {
        pl_chunk_decode(&dec, data, size, NULL, out, PL_CHUNK_MAX_RECORDS, &n);
        if (n > PL_CHUNK_MAX_RECORDS || pl_chunk_dec_consumed(&dec) > size)
            __builtin_trap();
        pl_chunk_expect ex = { 1, 3, 64, 1 };
        pl_chunk_decode(&dec, data, size, &ex, out, 16, &n);
        if (n > 16)
            __builtin_trap();
    }
    return 0;
}
