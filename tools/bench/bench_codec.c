/*
 * bench_codec: the chunk codec against baselines measured in the same run.
 *
 *  - size: bytes per record of the chunks, next to gzip -9 and xz -9 of the
 *    same events written as CSV (seq,time_ms,kind,<one column per field>);
 *  - decode: records/s of pl_chunk_decode next to a plain zlib inflate of
 *    the very same chunk bytes (the floor any zlib-based codec pays);
 *  - encoder RAM: the zlib arena peak + encoder state.
 *
 * Events come from the clinic-day model (firmware-stub/sim/usage_model.c) or
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

#include "pl/chunk.h"
#include "usage_model.h"

static const char usage[] =
    "Usage: bench_codec [OPTIONS] [EVENTS.csv]\n"
    "\n"
    "Measures the chunk codec: bytes per record against gzip -9 and xz -9 of the\n"
    "same events as CSV, and decode rate against plain zlib inflate of the same\n"
    "bytes. Without a file, events come from the clinic-day model.\n"
    "\n"
    "EVENTS.csv: a header line, then one event per line with the columns\n"
    "  seq,time_ms,time,kind,depth_um,speed_sps,duration_ms,cartridge_serial,\n"
    "  cartridge_uses,lifetime_cartridges,strokes,fault_code,config_revision,\n"
    "  clock_delta_ms,dropped\n"
    "exactly as `penlink decode --format csv` prints them (time is ignored; kind\n"
    "is a name such as treatment_start or a number; empty = field not used).\n"
    "\n"
    "Options:\n"
    "  -n, --records N   records to generate (default 1000000)\n"
    "  -b, --batch N     records per chunk (default 256)\n"
    "  -s, --seed N      model seed (default 1)\n"
    "  -r, --rounds N    decode timing rounds, best kept (default 5)\n"
    "  -w, --write-csv F also write the events to F as CSV, then continue\n"
    "  -h, --help        this help\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

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
                    fprintf(f, ",%" PRId64, (int64_t) v);
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

static int read_csv(const char *path, pl_record **out, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "bench_codec: %s: %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, len = 0, have = 0;
    pl_record *recs = NULL;
    int lineno = 0, rc = 0;
    while (getline(&line, &cap, f) > 0) {
        if (lineno++ == 0)
            continue; /* header */
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
        char *save = NULL, *tok;
        int col = 0;
        /* strsep keeps empty columns */
        char *p = line;
        while ((tok = strsep(&p, ",\n")) != NULL && col < 4 + PL_FIELD_COUNT) {
            if (col == 0)
                r->seq = strtoull(tok, NULL, 10);
            else if (col == 1)
                r->time_ms = strtoll(tok, NULL, 10);
            else if (col == 3) {
                r->kind = pl_record_kind_from_name(tok);
                if (!r->kind)
                    r->kind = (uint32_t) strtoul(tok, NULL, 10);
            } else if (col >= 4 && *tok) {
                uint32_t bit = 1u << (col - 4);
                r->fields |= bit;
                uint64_t v = bit == PL_F_CLOCK_DELTA_MS ? (uint64_t) strtoll(tok, NULL, 10)
                                                        : strtoull(tok, NULL, 10);
                if (pl_record_set(r, bit, v) != 0) {
                    fprintf(stderr, "bench_codec: %s:%d: value out of range\n", path, lineno);
                    rc = -1;
                }
            }
            col++;
        }
        (void) save;
        if (col < 4) {
            fprintf(stderr, "bench_codec: %s:%d: expected at least 4 columns\n", path, lineno);
            rc = -1;
            break;
        }
        uint32_t want = pl_record_kind_fields(r->kind);
        if (want && r->fields != want) {
            fprintf(stderr, "bench_codec: %s:%d: kind %u uses other fields\n", path, lineno,
                    r->kind);
            rc = -1;
            break;
        }
        len++;
    }
    free(line);
    fclose(f);
    /* records must be consecutive: number them from the first */
    for (size_t i = 1; i < len; i++)
        recs[i].seq = recs[0].seq + i;
    *out = recs;
    *n = len;
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "records", required_argument, NULL, 'n' }, { "batch", required_argument, NULL, 'b' },
        { "seed", required_argument, NULL, 's' },    { "rounds", required_argument, NULL, 'r' },
        { "write-csv", required_argument, NULL, 'w' },
        { "help", no_argument, NULL, 'h' },          { NULL, 0, NULL, 0 },
    };
    size_t n = 1000000;
    uint32_t batch = 256;
    uint64_t seed = 1;
    int rounds = 5, opt;
    const char *csv_out = NULL;
    while ((opt = getopt_long(argc, argv, "n:b:s:r:w:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'n': n = strtoull(optarg, NULL, 10); break;
        case 'b': batch = (uint32_t) strtoul(optarg, NULL, 10); break;
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
    double t0 = now_s();
    for (size_t c = 0; c < nchunks; c++) {
        uint32_t k = (uint32_t) (n - c * batch < batch ? n - c * batch : batch);
        pl_chunk_info info;
        off[c] = data_len;
        int st = pl_chunk_encode(&enc, pl_record_array_source, recs + c * batch, k,
                                 data + data_len, data_cap - data_len, &info);
        if (st != PL_OK) {
            fprintf(stderr, "bench_codec: encode chunk %zu: %s\n", c, pl_status_str(st));
            return 1;
        }
        data_len += info.data_size;
        raw_total += info.raw_size;
    }
    off[nchunks] = data_len;
    double t_enc = now_s() - t0;

    /* decode, best of rounds; baseline inflate of the same bytes */
    pl_chunk_dec dec;
    pl_chunk_dec_init(&dec, PL_CHUNK_MAX_RECORDS, PL_CHUNK_MAX_RAW);
    pl_record *out = malloc(PL_CHUNK_MAX_RECORDS * sizeof *out);
    uint8_t *raw = malloc(PL_CHUNK_MAX_RAW);
    double best_dec = 1e30, best_inf = 1e30;
    uint64_t checked = 0;
    for (int r = 0; r < rounds; r++) {
        t0 = now_s();
        for (size_t c = 0; c < nchunks; c++) {
            uLongf rl = PL_CHUNK_MAX_RAW;
            if (uncompress(raw, &rl, data + off[c], off[c + 1] - off[c]) != Z_OK)
                return 1;
        }
        double t = now_s() - t0;
        best_inf = t < best_inf ? t : best_inf;
        t0 = now_s();
        for (size_t c = 0; c < nchunks; c++) {
            uint32_t got = 0;
            if (pl_chunk_decode(&dec, data + off[c], off[c + 1] - off[c], NULL, out,
                                PL_CHUNK_MAX_RECORDS, &got) != PL_OK)
                return 1;
            if (r == 0) /* the first round also proves the round trip */
                for (uint32_t i = 0; i < got; i++)
                    checked += pl_record_equal(&out[i], &recs[c * batch + i]);
        }
        t = now_s() - t0;
        best_dec = t < best_dec ? t : best_dec;
    }
    if (checked != n) {
        fprintf(stderr, "bench_codec: round trip differs (%" PRIu64 " of %zu equal)\n", checked,
                n);
        return 1;
    }

    double bpr = (double) data_len / (double) n;
    printf("source: %s, %zu records, %zu chunks of %u\n", source, n, nchunks, batch);
    printf("zlib: windowBits %d, memLevel %d, level %d\n", PL_CHUNK_WINDOW_BITS,
           PL_CHUNK_MEM_LEVEL, PL_CHUNK_LEVEL);
    printf("size   CSV              %10ld bytes  %7.2f B/record\n", csv_size,
           (double) csv_size / (double) n);
    printf("size   CSV + gzip -9    %10ld bytes  %7.2f B/record\n", gz, (double) gz / (double) n);
    printf("size   CSV + xz -9      %10ld bytes  %7.2f B/record\n", xz, (double) xz / (double) n);
    printf("size   RecordBatch raw  %10" PRIu64 " bytes  %7.2f B/record\n", raw_total,
           (double) raw_total / (double) n);
    printf("size   penlink chunks   %10zu bytes  %7.2f B/record\n", data_len, bpr);
    printf("ratio  chunks / (CSV+gzip -9) = %.3f   (target <= 0.5)\n",
           (double) data_len / (double) gz);
    printf("ratio  chunks / (CSV+xz -9)   = %.3f   (target < 1)\n",
           (double) data_len / (double) xz);
    printf("encode %.1f M records/s\n", (double) n / t_enc / 1e6);
    printf("decode %.1f M records/s; plain inflate of the same bytes %.1f M records/s "
           "(%.0f MB/s out); ratio %.2f\n",
           (double) n / best_dec / 1e6, (double) n / best_inf / 1e6,
           (double) raw_total / best_inf / 1e6, best_inf / best_dec);
    printf("encoder RAM: zlib arena peak %zu + state %zu = %zu bytes (target <= 12288)\n",
           pl_chunk_enc_peak(&enc), sizeof enc + 128, pl_chunk_enc_peak(&enc) + sizeof enc + 128);
    pl_chunk_enc_fini(&enc);
    pl_chunk_dec_fini(&dec);
    free(out);
    free(raw);
    free(data);
    free(off);
    free(recs);
    return 0;
}
