/*
 * make_capture: writes test input for `penlink decode` and the records it
 * must print.
 *   make_capture frames|chunks OUT EXPECTED.csv [RECORDS [SEED]]
 * frames: a Hello frame, then LogChunk frames of up to 512 records each;
 * chunks: the bare zlib streams back to back. EXPECTED.csv has the columns
 * seq,time_ms,kind,<fields> (decode's CSV without its ISO time column).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pl/chunk.h"
#include "pl/envelope.h"
#include "../unit/testutil.h"

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: make_capture frames|chunks OUT EXPECTED.csv [RECORDS [SEED]]\n");
        return 2;
    }
    int frames = strcmp(argv[1], "frames") == 0;
    uint32_t total = argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 2000;
    uint64_t seed = argc > 5 ? strtoull(argv[5], NULL, 10) : 1;
    FILE *out = fopen(argv[2], "wb"), *exp = fopen(argv[3], "w");
    if (!out || !exp)
        return 1;
    static _Alignas(16) uint8_t arena[PL_CHUNK_ENC_ARENA];
    static pl_record recs[PL_CHUNK_BATCH];
    static uint8_t data[PL_CHUNK_MAX_RAW], frame[PL_CHUNK_MAX_RAW + 64];
    pl_chunk_enc enc;
    if (pl_chunk_enc_init(&enc, arena, sizeof arena) != PL_OK)
        return 1;
    if (frames) {
        Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
        Penlink__V1__Hello h = PENLINK__V1__HELLO__INIT;
        env.has_request_id = 1;
        env.request_id = 1;
        env.body_case = PENLINK__V1__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        long n = pl_envelope_frame(&env, frame, sizeof frame);
        fwrite(frame, 1, (size_t)n, out);
    }
    uint64_t seq = 1000;
    for (uint32_t done = 0; done < total;) {
        uint32_t k = total - done < PL_CHUNK_BATCH ? total - done : PL_CHUNK_BATCH;
        k = k > 1 ? k - (uint32_t)(tu_rand(&seed) % (k / 2)) : k;
        tu_records(&seed, recs, k, seq, (done / PL_CHUNK_BATCH) % 2);
        pl_chunk_info info;
        if (pl_chunk_encode(&enc, pl_record_array_source, recs, k, data, sizeof data, &info) !=
            PL_OK)
            return 1;
        if (frames) {
            Penlink__V1__Envelope env = PENLINK__V1__ENVELOPE__INIT;
            Penlink__V1__LogChunk c = PENLINK__V1__LOG_CHUNK__INIT;
            c.has_first_seq = c.has_record_count = c.has_raw_size = c.has_data = 1;
            c.first_seq = info.first_seq;
            c.record_count = info.record_count;
            c.raw_size = info.raw_size;
            c.data.data = data;
            c.data.len = info.data_size;
            env.has_request_id = 1;
            env.request_id = 2;
            env.body_case = PENLINK__V1__ENVELOPE__BODY_LOG_CHUNK;
            env.log_chunk = &c;
            long n = pl_envelope_frame(&env, frame, sizeof frame);
            fwrite(frame, 1, (size_t)n, out);
        } else {
            fwrite(data, 1, info.data_size, out);
        }
        for (uint32_t i = 0; i < k; i++) {
            const pl_record *r = &recs[i];
            fprintf(exp, "%" PRIu64 ",%" PRId64 ",%s", r->seq, r->time_ms,
                    pl_record_kind_name(r->kind));
            for (uint32_t b = 0; b < PL_FIELD_COUNT; b++) {
                if (!(r->fields & (1u << b))) {
                    fputc(',', exp);
                    continue;
                }
                uint64_t v = pl_record_get(r, 1u << b);
                if ((1u << b) == PL_F_CLOCK_DELTA_MS)
                    fprintf(exp, ",%" PRId64, (int64_t)v);
                else
                    fprintf(exp, ",%" PRIu64, v);
            }
            fputc('\n', exp);
        }
        seq += k;
        done += k;
    }
    pl_chunk_enc_fini(&enc);
    return fclose(out) || fclose(exp) ? 1 : 0;
}
