/*
 * bench_codec: the chunk codec against baselines measured in the same run.
 *
 *  - size: bytes per record of the chunks, next to gzip -9 and xz -9 of the
 *    same events written as CSV (seq,time_ms,kind,<one column per field>);
 *  - decode: records/s of pl_chunk_decode next to a plain zlib inflate of
 *    the very same chunk bytes (the floor any zlib-based codec pays);
 *  - encoder RAM: the zlib arena peak + encoder state.
 *
 * Events come from the clinic-day model (firmware-stub/model/usage_model.c) or
 * from a CSV file in the format `penlink decode --format csv` writes.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "bench_util.h"
#include "pl/chunk.h"
#include "usage_model.h"

static const char usage[] =
    "Usage: bench_codec [OPTIONS] [EVENTS.csv]\n"
    "\n"
    "Measures the chunk codec: bytes per record against gzip -9 and xz -9 of the\n"
    "same events as CSV, and decode rate against plain zlib inflate of the same\n"
    "bytes. Without a file, events come from the clinic-day model.\n"
    "\n"
    "EVENTS.csv: a header line naming the columns, then one event per line.\n"
    "Columns are found by name: time_ms (device ms since the epoch) and kind\n"
    "(a name such as treatment_start, or a number) are required; depth_um,\n"
    "speed_sps, duration_ms, cartridge_serial, cartridge_uses,\n"
    "lifetime_cartridges, strokes, fault_code, config_revision, clock_delta_ms\n"
    "and dropped hold a record's fields (empty = the kind does not use it);\n"
    "others (seq, time) are ignored. `penlink decode --format csv` and\n"
    "--write-csv write this format. Records are numbered in file order.\n"
    "\n"
    "Options:\n"
    "  -n, --records N   records to generate (default 1000000)\n"
    "  -b, --batch N     records per chunk (default PL_CHUNK_BATCH, the pen's)\n"
    "  -s, --seed N      model seed (default 1)\n"
    "  -r, --rounds N    decode timing rounds, best kept (default 5)\n"
    "  -w, --write-csv F also write the events to F as CSV, then continue\n"
    "  -h, --help        this help\n";

static int write_csv(FILE *f, const pl_record *r, size_t n)
{
    fputs("seq,time_ms,kind", f);
    for (uint32_t b = 0; b < PL_FIELD_COUNT; b++)
        fprintf(f, ",%s", pl_record_field_name(1u << b));
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%" PRIu64 ",%" PRId64 ",%s", r[i].seq, r[i].time_ms,
                pl_record_kind_name(r[i].kind) ? pl_record_kind_name(r[i].kind) : "?");
        for (uint32_t b = 0; b < PL_FIELD_COUNT; b++) {
            if (r[i].fields & (1u << b)) {
                uint64_t v = pl_record_get(&r[i], 1u << b);
                if ((1u << b) == PL_F_CLOCK_DELTA_MS)
                    fprintf(f, ",%" PRId64, (int64_t)v);
                else
                    fprintf(f, ",%" PRIu64, v);
            } else {
                fputc(',', f);
            }
        }
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}

/* Size of `cmd < path` on stdout, e.g. "gzip -9 -c". */
static long compressed_size(const char *cmd, const char *path)
{
    char line[512];
    snprintf(line, sizeof line, "%s < '%s' | wc -c", cmd, path);
    FILE *p = popen(line, "r");
    long n = -1;
    if (!p || fscanf(p, "%ld", &n) != 1)
        n = -1;
    if (p)
        pclose(p);
    return n;
}

/* Column index of each name in the header line; -1 when absent. */
static int header_index(char *header, const char *name)
{
    int i = 0;
    for (char *p = header, *tok; (tok = strsep(&p, ",\r\n")) != NULL; i++)
        if (strcmp(tok, name) == 0)
            return i;
    return -1;
}

static int read_csv(const char *path, pl_record **out, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_codec: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL, *copy;
    size_t cap = 0, len = 0, have = 0;
    pl_record *recs = NULL;
    int lineno = 1, rc = 0;
    int col_time, col_kind, col_field[PL_FIELD_COUNT];
    if (getline(&line, &cap, f) <= 0) {
        fprintf(stderr, "bench_codec: %s: empty file\n", path);
        fclose(f);
        return -1;
    }
    copy = strdup(line);
    col_time = header_index(copy, "time_ms");
    free(copy);
    copy = strdup(line);
    col_kind = header_index(copy, "kind");
    free(copy);
    for (uint32_t b = 0; b < PL_FIELD_COUNT; b++) {
        copy = strdup(line);
        col_field[b] = header_index(copy, pl_record_field_name(1u << b));
        free(copy);
    }
    if (col_time < 0 || col_kind < 0) {
        fprintf(stderr, "bench_codec: %s: the header needs time_ms and kind columns\n", path);
        fclose(f);
        free(line);
        return -1;
    }
    while (rc == 0 && getline(&line, &cap, f) > 0) {
        lineno++;
        if (len == have) {
            have = have ? have * 2 : 4096;
            pl_record *nr = realloc(recs, have * sizeof *recs);
            if (!nr) {
                rc = -1;
                break;
            }
            recs = nr;
        }
        pl_record *r = &recs[len];
        memset(r, 0, sizeof *r);
        char *tok, *p = line;
        for (int col = 0; (tok = strsep(&p, ",\r\n")) != NULL; col++) {
            if (col == col_time)
                r->time_ms = strtoll(tok, NULL, 10);
            if (col == col_kind) {
                r->kind = pl_record_kind_from_name(tok);
                if (!r->kind)
                    r->kind = (uint32_t)strtoul(tok, NULL, 10);
            }
            for (uint32_t b = 0; b < PL_FIELD_COUNT; b++) {
                if (col != col_field[b] || !*tok)
                    continue;
                uint32_t bit = 1u << b;
                uint64_t v = bit == PL_F_CLOCK_DELTA_MS ? (uint64_t)strtoll(tok, NULL, 10)
                                                        : strtoull(tok, NULL, 10);
                r->fields |= bit;
                if (pl_record_set(r, bit, v) != 0) {
                    fprintf(stderr, "bench_codec: %s:%d: value out of range\n", path, lineno);
                    rc = -1;
                }
            }
        }
        uint32_t want = pl_record_kind_fields(r->kind);
        if (rc == 0 && (r->kind == 0 || (want && r->fields != want))) {
            fprintf(stderr, "bench_codec: %s:%d: unknown kind or fields that kind does not use\n",
                    path, lineno);
            rc = -1;
        }
        r->seq = len; /* the codec wants consecutive records */
        len++;
    }
    free(line);
    fclose(f);
    *out = recs;
    *n = len;
    return rc;
}

/* Chunk bytes for the whole set at one batch size. */
static size_t encoded_size(pl_chunk_enc *enc, pl_record *recs, size_t n, uint32_t batch,
                           uint8_t *buf, size_t cap)
{
    size_t total = 0;
    for (size_t c = 0; c * batch < n; c++) {
        uint32_t k = (uint32_t)(n - c * batch < batch ? n - c * batch : batch);
        pl_chunk_info info;
        if (pl_chunk_encode(enc, pl_record_array_source, recs + c * batch, k, buf, cap, &info) !=
            PL_OK)
            return 0;
        total += info.data_size;
    }
    return total;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "records", required_argument, NULL, 'n' },
        { "batch", required_argument, NULL, 'b' },
        { "seed", required_argument, NULL, 's' },
        { "rounds", required_argument, NULL, 'r' },
        { "write-csv", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    size_t n = 1000000;
    uint32_t batch = PL_CHUNK_BATCH;
    uint64_t seed = 1;
    int rounds = 5, opt;
    const char *csv_out = NULL;
    while ((opt = getopt_long(argc, argv, "n:b:s:r:w:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'b': batch = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 's': seed = strtoull(optarg, NULL, 10); break;
        case 'r': rounds = atoi(optarg); break;
        case 'w': csv_out = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (batch == 0 || batch > PL_CHUNK_MAX_RECORDS || rounds < 1 || n == 0) {
        fputs(usage, stderr);
        return 2;
    }
    pl_record *recs = NULL;
    const char *source = "clinic-day model";
    if (optind < argc) {
        if (read_csv(argv[optind], &recs, &n) != 0 || n == 0)
            return 1;
        source = argv[optind];
    } else {
        recs = malloc(n * sizeof *recs);
        usage_params p;
        usage_params_default(&p);
        p.seed = seed;
        p.reuse_permille = 20;
        usage_model m;
        usage_model_init(&m, &p);
        for (size_t i = 0; i < n; i++) {
            usage_model_next(&m, &recs[i]);
            recs[i].seq = i;
        }
    }

    if (csv_out) {
        FILE *f = fopen(csv_out, "w");
        if (!f || write_csv(f, recs, n) != 0 || fclose(f) != 0) {
            fprintf(stderr, "bench_codec: cannot write %s\n", csv_out);
            return 1;
        }
    }

    /* CSV baselines */
    char tmpl[] = "/tmp/bench_codec.XXXXXX";
    int fd = mkstemp(tmpl);
    FILE *csv = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!csv || write_csv(csv, recs, n) != 0 || fclose(csv) != 0) {
        fprintf(stderr, "bench_codec: cannot write a temporary CSV\n");
        return 1;
    }
    long csv_size = compressed_size("cat", tmpl);
    long gz = compressed_size("gzip -9 -c", tmpl);
    long xz = compressed_size("xz -9 -c", tmpl);
    unlink(tmpl);

    /* encode */
    static _Alignas(16) uint8_t arena[PL_CHUNK_ENC_ARENA];
    pl_chunk_enc enc;
    if (pl_chunk_enc_init(&enc, arena, sizeof arena) != PL_OK) {
        fprintf(stderr, "bench_codec: encoder init failed\n");
        return 1;
    }
    size_t nchunks = (n + batch - 1) / batch, data_cap = n * 32 + nchunks * 64, data_len = 0;
    uint8_t *data = malloc(data_cap);
    size_t *off = malloc((nchunks + 1) * sizeof *off);
    uint64_t raw_total = 0;
    double t0 = bench_now_s();
    for (size_t c = 0; c < nchunks; c++) {
        uint32_t k = (uint32_t)(n - c * batch < batch ? n - c * batch : batch);
        pl_chunk_info info;
        off[c] = data_len;
        int st = pl_chunk_encode(&enc, pl_record_array_source, recs + c * batch, k, data + data_len,
                                 data_cap - data_len, &info);
        if (st != PL_OK) {
            fprintf(stderr, "bench_codec: encode chunk %zu: %s\n", c, pl_status_str(st));
            return 1;
        }
        data_len += info.data_size;
        raw_total += info.raw_size;
    }
    off[nchunks] = data_len;
    double t_enc = bench_now_s() - t0;

    /* decode, best of rounds; baseline inflate of the same bytes */
    pl_chunk_dec dec;
    pl_chunk_dec_init(&dec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW);
    pl_record *out = malloc(PL_CHUNK_MAX_RECORDS * sizeof *out);
    uint8_t *raw = malloc(PL_CHUNK_MAX_RAW);
    double best_dec = 1e30, best_inf = 1e30;
    uint64_t checked = 0;
    for (int r = 0; r < rounds; r++) {
        t0 = bench_now_s();
        for (size_t c = 0; c < nchunks; c++) {
            uLongf rl = PL_CHUNK_MAX_RAW;
            if (uncompress(raw, &rl, data + off[c], off[c + 1] - off[c]) != Z_OK)
                return 1;
        }
        double t = bench_now_s() - t0;
        best_inf = t < best_inf ? t : best_inf;
        t0 = bench_now_s();
        for (size_t c = 0; c < nchunks; c++) {
            uint32_t got = 0;
            if (pl_chunk_decode(&dec, data + off[c], off[c + 1] - off[c], NULL, out,
                                PL_CHUNK_MAX_RECORDS, &got) != PL_OK)
                return 1;
            if (r == 0) /* the first round also proves the round trip */
                for (uint32_t i = 0; i < got; i++)
                    checked += pl_record_equal(&out[i], &recs[c * batch + i]);
        }
        t = bench_now_s() - t0;
        best_dec = t < best_dec ? t : best_dec;
    }
    if (checked != n) {
        fprintf(stderr, "bench_codec: round trip differs (%" PRIu64 " of %zu equal)\n", checked, n);
        return 1;
    }

    double bpr = (double)data_len / (double)n;
    printf("source: %s, %zu records, %zu chunks of %u\n", source, n, nchunks, batch);
    printf("zlib: windowBits %d, memLevel %d, level %d\n", PL_CHUNK_WINDOW_BITS, PL_CHUNK_MEM_LEVEL,
           PL_CHUNK_LEVEL);
    printf("size   CSV              %10ld bytes  %7.2f B/record\n", csv_size,
           (double)csv_size / (double)n);
    printf("size   CSV + gzip -9    %10ld bytes  %7.2f B/record\n", gz, (double)gz / (double)n);
    printf("size   CSV + xz -9      %10ld bytes  %7.2f B/record\n", xz, (double)xz / (double)n);
    printf("size   RecordBatch raw  %10" PRIu64 " bytes  %7.2f B/record\n", raw_total,
           (double)raw_total / (double)n);
    printf("size   penlink chunks   %10zu bytes  %7.2f B/record\n", data_len, bpr);
    printf("ratio  chunks / (CSV+gzip -9) = %.3f   (target <= 0.5)\n",
           (double)data_len / (double)gz);
    printf("ratio  chunks / (CSV+xz -9)   = %.3f   (target < 1)\n", (double)data_len / (double)xz);
    printf("encode %.1f M records/s\n", (double)n / t_enc / 1e6);
    printf("decode %.1f M records/s; plain inflate of the same bytes %.1f M records/s "
           "(%.0f MB/s out); ratio %.2f\n",
           (double)n / best_dec / 1e6, (double)n / best_inf / 1e6,
           (double)raw_total / best_inf / 1e6, best_inf / best_dec);
    printf("encoder RAM: zlib arena peak %zu + state %zu = %zu bytes (target <= 12288)\n",
           pl_chunk_enc_peak(&enc), sizeof enc + 128, pl_chunk_enc_peak(&enc) + sizeof enc + 128);
    printf("calibration: records per chunk -> bytes per record (ratio to CSV+gzip -9)\n");
    static const uint32_t sizes[] = { 32, 64, 128, 256, 512, 1024, 2048, 4096 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t total = encoded_size(&enc, recs, n, sizes[i], raw, PL_CHUNK_MAX_RAW);
        printf("  %4u%s %6.2f B/record (%.3f)\n", sizes[i], sizes[i] == PL_CHUNK_BATCH ? "*" : " ",
               (double)total / (double)n, (double)total / (double)gz);
    }
    printf("  (* = PL_CHUNK_BATCH, the pen's batch)\n");
    pl_chunk_enc_fini(&enc);
    pl_chunk_dec_fini(&dec);
    free(out);
    free(raw);
    free(data);
    free(off);
    free(recs);
    return 0;
}
