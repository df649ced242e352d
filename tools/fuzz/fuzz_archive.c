/*
 * libFuzzer target: the offline commands over a hostile archive. Whoever can
 * edit an archive file (or an earlier penlink that stored a hostile pen's
 * data) controls every row of it; verify, audit and export read those rows.
 *
 * The input is a program of rows, written into the real schema of an
 * in-memory archive (a snapshot of a new archive, restored for each input):
 *
 *   op byte % 10:  0 device   1 record   2 chunk (+ its records)   3 signed head
 *                  4 alarm    5 configuration history   6 pull   7 verification
 *                  8 firmware seen   9 a record row of raw bytes
 *
 * Each op reads what it needs from the bytes after it (zeros past the end).
 * To reach deep, rows are mostly consistent: seqs follow on from the pen's
 * last one, chunks are real encoded chunks (pl_chunk_encode) whose links
 * chain from the pen's genesis with SHA-256 as a pen makes them, their
 * records are stored as rows too (as the chunk decodes, as a pull stores
 * them), and heads are signed with the pen's key
 * (a fixed seed per pen); every so often a value is raw (a seq at or above
 * 2^63, a flipped byte, a foreign link, a bad signature, text that is not
 * UTF-8). Then, on the archive: penlink_archive_verify, penlink_audit_run with
 * every callback (all reports, each usage period, with and without a pen and
 * a time window, usage periods in UTC or in a local zone with summer time),
 * penlink_archive_scan as export uses it, the alarms, the configuration
 * history (old values too), the devices and each pen's stored
 * verification; the invariants between them are checked (the verdict among
 * them). The first byte's bit 6 also annotates the first audit's findings
 * (and one finding that does not exist) before the others run. For one
 * input in four, the archive is also written to a file (VACUUM INTO) and
 * the CLI runs one of audit (the HTML report too) and export in each format
 * and verify on it (the first byte chooses), through the read-only
 * opening.
 *
 * The CLI's reports are discarded (PENLINK_FUZZ_VERBOSE=1 shows them); its
 * errors go to stderr.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "archive.h"
#include "pl/auth.h"
#include "pl/chunk.h"
#include "pl/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int penlink_cli_main(int argc, char **argv);

#define PENS 4
#define MAX_OPS 64
#define CHUNK_RECORDS 8

/* ---- reading the input ----------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    size_t n;
} rd;

static uint8_t u8(rd *r)
{
    if (r->n == 0)
        return 0;
    r->n--;
    return *r->p++;
}

static uint64_t uN(rd *r, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)u8(r) << (8 * i);
    return v;
}

/* A value: mostly small, sometimes an extreme, sometimes any 64 bits. */
static uint64_t value(rd *r)
{
    static const uint64_t extremes[] = { 0,          1,          UINT32_MAX, (uint64_t)INT64_MAX,
                                         1ull << 63, UINT64_MAX, 3600001,    1ull << 32 };
    uint8_t m = u8(r);
    switch (m & 7) {
    case 0: return extremes[(m >> 3) % 8];
    case 1: return uN(r, 8);
    case 2: return uN(r, 4);
    default: return uN(r, 2);
    }
}

/* ---- the pens ------------------------------------------------------------ */

static const char *const serials[] = {
    "PEN-A", "PEN-B",
    "pen-a", "PEN-\x1b[2J\xff\xfe",
    "",      "PEN-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
};

typedef struct pen {
    int made;
    char serial[64];
    uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
    uint64_t next_seq; /* one past the last seq written (as stored, two's complement) */
    int64_t time_ms;
    uint8_t link[32]; /* the chain's last link */
    int have_link;
    int64_t device_id;
} pen;

typedef struct fuzz {
    sqlite3 *db;
    pen pens[PENS];
    pl_chunk_enc enc;
    _Alignas(16) uint8_t arena[PL_CHUNK_ENC_ARENA];
    pl_chunk_dec dec; /* the records as a pull stores them: as the chunk decodes */
    uint8_t chunk[PL_CHUNK_MAX_RAW];
} fuzz;

static int exec_sql(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
    return sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK ? 0 : -1;
}

static void step(sqlite3_stmt *st)
{
    sqlite3_step(st); /* a constraint may refuse the row: the archive stays as it was */
    sqlite3_finalize(st);
}

static pen *pick_pen(fuzz *z, rd *r)
{
    return &z->pens[u8(r) % PENS];
}

static void bind_text_bytes(sqlite3_stmt *st, int col, rd *r, size_t max)
{
    char buf[300];
    size_t n = u8(r) % (max + 1);
    for (size_t i = 0; i < n; i++)
        buf[i] = (char)u8(r);
    sqlite3_bind_text(st, col, buf, (int)n, SQLITE_TRANSIENT);
}

/* A seq: mostly the pen's next, sometimes a jump or a raw 64-bit value. */
static int64_t pick_seq(pen *p, rd *r)
{
    uint8_t m = u8(r);
    switch (m & 15) {
    case 0: return (int64_t)uN(r, 8); /* negative: a seq at or above 2^63 */
    case 1: return (int64_t)(p->next_seq + uN(r, 1));
    case 2: return (int64_t)uN(r, 2);
    case 3: return (int64_t)(p->next_seq - 1 - (m >> 4));
    default: return (int64_t)p->next_seq;
    }
}

static void make_pen(fuzz *z, rd *r)
{
    int i = u8(r) % PENS;
    pen *p = &z->pens[i];
    uint8_t m = u8(r);
    sqlite3_stmt *st;
    if (exec_sql(z->db,
                 "INSERT INTO devices (id, serial, model, first_seen_ms, last_seen_ms, "
                 "public_key) VALUES (?1, ?2, 'fuzz', ?3, ?3, ?4)",
                 &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, i + 1);
    const char *serial = serials[(m >> 2) % (sizeof serials / sizeof serials[0])];
    sqlite3_bind_text(st, 2, serial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (int64_t)value(r));
    switch (m & 3) {
    case 0: sqlite3_bind_null(st, 4); break;
    case 1: sqlite3_bind_blob(st, 4, p->pk, 32, SQLITE_STATIC); break;
    case 2: sqlite3_bind_blob(st, 4, p->sk, 32, SQLITE_STATIC); break; /* a key of no one */
    default: sqlite3_bind_blob(st, 4, p->pk, 31, SQLITE_STATIC); break;
    }
    if (sqlite3_step(st) == SQLITE_DONE) {
        p->made = 1;
        p->device_id = i + 1;
        snprintf(p->serial, sizeof p->serial, "%s", serial);
    }
    sqlite3_finalize(st);
}

/* A record as a pen logs one, with values from the input. */
static void gen_record(pen *p, rd *r, uint64_t seq, penlink_record *out)
{
    memset(out, 0, sizeof *out);
    uint8_t m = u8(r);
    out->seq = seq;
    out->kind = (m & 0x80) ? (uint32_t)value(r) : 1u + (m % 14u);
    uint64_t step = (m & 0x40) ? value(r) : uN(r, 2) * 1000;
    p->time_ms = (int64_t)((uint64_t)p->time_ms + step); /* wraps, as a hostile clock may */
    out->time_ms = p->time_ms;
    out->fields = (uint32_t)uN(r, 2) & PL_F_ALL;
    for (uint32_t f = out->fields; f; f &= f - 1) {
        uint32_t bit = f & -f;
        uint64_t v = value(r);
        if (bit != PL_F_CARTRIDGE_SERIAL && bit != PL_F_STROKES && bit != PL_F_CLOCK_DELTA_MS &&
            bit != PL_F_DROPPED)
            v &= UINT32_MAX;
        pl_record_set((pl_record *)out, bit, v);
    }
}

static void put_record(fuzz *z, pen *p, int64_t seq, const penlink_record *rec, int64_t chunk)
{
    uint8_t body[ARCHIVE_BODY_MAX];
    size_t n = archive_body_pack(rec, body);
    sqlite3_stmt *st;
    if (exec_sql(z->db, "INSERT INTO records VALUES (?1, ?2, ?3, ?4)", &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    sqlite3_bind_int64(st, 2, seq);
    sqlite3_bind_blob(st, 3, body, (int)n, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, chunk);
    step(st);
}

static void op_record(fuzz *z, rd *r)
{
    pen *p = pick_pen(z, r);
    int64_t seq = pick_seq(p, r);
    penlink_record rec;
    gen_record(p, r, (uint64_t)seq, &rec);
    put_record(z, p, seq, &rec, (int64_t)uN(r, 1));
    p->next_seq = (uint64_t)seq + 1;
}

static void op_raw_record(fuzz *z, rd *r)
{
    pen *p = pick_pen(z, r);
    sqlite3_stmt *st;
    if (exec_sql(z->db, "INSERT INTO records VALUES (?1, ?2, ?3, 0)", &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    sqlite3_bind_int64(st, 2, pick_seq(p, r));
    uint8_t m = u8(r);
    if (m & 1) {
        uint8_t body[ARCHIVE_BODY_MAX + 4];
        size_t n = u8(r) % sizeof body;
        for (size_t i = 0; i < n; i++)
            body[i] = u8(r);
        sqlite3_bind_blob(st, 3, body, (int)n, SQLITE_TRANSIENT);
    } else if (m & 2) {
        bind_text_bytes(st, 3, r, 20);
    } else {
        sqlite3_bind_int64(st, 3, (int64_t)value(r));
    }
    step(st);
}

/* A chunk as a pen makes it (or damaged), with its records stored as rows. */
static void op_chunk(fuzz *z, rd *r)
{
    pen *p = pick_pen(z, r);
    uint8_t m = u8(r);
    uint32_t n = 1 + u8(r) % CHUNK_RECORDS;
    int64_t first = pick_seq(p, r);
    penlink_record recs[CHUNK_RECORDS];
    for (uint32_t i = 0; i < n; i++)
        gen_record(p, r, (uint64_t)first + i, &recs[i]);
    pl_chunk_info info;
    if (pl_chunk_encode(&z->enc, pl_record_array_source, recs, n, z->chunk, sizeof z->chunk,
                        &info) != PL_OK)
        return;
    size_t len = info.data_size;
    pl_chunk_expect ex = { (uint64_t)first, n, info.raw_size, 1 };
    uint32_t got = 0;
    if (pl_chunk_decode(&z->dec, z->chunk, len, &ex, (pl_record *)recs, CHUNK_RECORDS, &got) !=
            PL_OK ||
        got != n)
        __builtin_trap(); /* what the encoder made must decode */
    uint8_t prev[32], link[32], pre[PL_AUTH_LINK_PREFIX];
    if (first == 0 || !p->have_link) {
        uint8_t g[PL_AUTH_GENESIS_MAX];
        size_t gn = pl_auth_genesis_bytes(g, p->serial);
        penlink_sha256(g, gn, NULL, 0, prev);
    } else {
        memcpy(prev, p->link, 32);
    }
    if (m & 0x10) /* a foreign chain */
        prev[u8(r) % 32] ^= 1;
    pl_auth_link_prefix(pre, prev, (uint64_t)first, n, info.raw_size, (uint32_t)len);
    penlink_sha256(pre, sizeof pre, z->chunk, len, link);
    if (m & 0x20) /* edited after it was linked */
        z->chunk[u8(r) % len] ^= (uint8_t)(1u << (u8(r) & 7));
    sqlite3_stmt *st;
    if (exec_sql(z->db,
                 "INSERT INTO chunks (device_id, pull_id, received_ms, first_seq, record_count, "
                 "raw_size, data, prev_link, link) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                 &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    sqlite3_bind_int64(st, 2, 1);
    sqlite3_bind_int64(st, 3, 0);
    sqlite3_bind_int64(st, 4, (m & 0x40) ? (int64_t)value(r) : first);
    sqlite3_bind_int64(st, 5, (m & 0x80) ? (int64_t)value(r) : (int64_t)n);
    sqlite3_bind_int64(st, 6, (m & 0x08) ? (int64_t)value(r) : (int64_t)info.raw_size);
    sqlite3_bind_blob(st, 7, z->chunk, (int)len, SQLITE_STATIC);
    if (m & 0x04) {
        sqlite3_bind_null(st, 8);
        sqlite3_bind_blob(st, 9, link, 31, SQLITE_STATIC);
    } else {
        sqlite3_bind_blob(st, 8, prev, 32, SQLITE_STATIC);
        sqlite3_bind_blob(st, 9, link, 32, SQLITE_STATIC);
    }
    int x = sqlite3_step(st);
    sqlite3_finalize(st);
    if (x != SQLITE_DONE)
        return;
    int64_t id = sqlite3_last_insert_rowid(z->db);
    memcpy(p->link, link, 32);
    p->have_link = 1;
    /* its records: all, all but one, one edited, or none */
    uint32_t skip = (m & 3) == 1 ? u8(r) % n : n;
    for (uint32_t i = 0; (m & 3) != 3 && i < n; i++) {
        if (i == skip)
            continue;
        if ((m & 3) == 2 && i == 0)
            recs[i].time_ms ^= 1;
        put_record(z, p, (int64_t)((uint64_t)first + i), &recs[i], id);
    }
    p->next_seq = (uint64_t)first + n;
}

static void op_head(fuzz *z, rd *r)
{
    pen *p = pick_pen(z, r);
    uint8_t m = u8(r);
    int64_t next = (int64_t)((m & 1) ? value(r) : p->next_seq);
    uint8_t link[32], msg[PL_AUTH_HEAD_MAX], sig[64];
    if (m & 2)
        for (int i = 0; i < 32; i++)
            link[i] = u8(r);
    else
        memcpy(link, p->link, 32);
    size_t n = pl_auth_head_bytes(msg, p->serial, (uint64_t)next, link);
    crypto_sign_detached(sig, NULL, msg, n, p->sk);
    if (m & 4)
        sig[u8(r) % 64] ^= 1;
    sqlite3_stmt *st;
    if (exec_sql(z->db,
                 "INSERT INTO heads (device_id, pull_id, at_ms, next_seq, link, signature) "
                 "VALUES (?1, 1, 0, ?2, ?3, ?4)",
                 &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    sqlite3_bind_int64(st, 2, next);
    sqlite3_bind_blob(st, 3, link, (m & 8) ? 16 : 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, sig, (m & 16) ? 63 : 64, SQLITE_STATIC);
    step(st);
}

static void op_alarm(fuzz *z, rd *r)
{
    static const char *const kinds[] = {
        "gap", "conflict", "key_changed", "unverified", "overrun", "", "a_kind_longer_than_sixteen"
    };
    pen *p = pick_pen(z, r);
    sqlite3_stmt *st;
    if (exec_sql(z->db,
                 "INSERT INTO alarms (device_id, pull_id, at_ms, kind, seq, count, detail) "
                 "VALUES (?1, 1, ?2, ?3, ?4, ?5, ?6)",
                 &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    sqlite3_bind_int64(st, 2, (int64_t)value(r));
    sqlite3_bind_text(st, 3, kinds[u8(r) % (sizeof kinds / sizeof kinds[0])], -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, pick_seq(p, r));
    sqlite3_bind_int64(st, 5, (int64_t)value(r));
    bind_text_bytes(st, 6, r, 255);
    step(st);
}

static void op_config(fuzz *z, rd *r)
{
    pen *p = pick_pen(z, r);
    uint8_t m = u8(r);
    char json[400];
    if (m & 1)
        snprintf(json, sizeof json,
                 "{\"revision\":%llu,\"depth_min_um\":%llu,\"depth_max_um\":%llu,"
                 "\"max_treatment_s\":%llu,\"clinic_name\":\"a \\\"b\\\\\"}",
                 (unsigned long long)value(r), (unsigned long long)value(r),
                 (unsigned long long)value(r), (unsigned long long)value(r));
    else {
        size_t n = u8(r) % 200;
        for (size_t i = 0; i < n; i++)
            json[i] = (char)(u8(r) | 1); /* no NUL inside */
        json[n] = '\0';
    }
    sqlite3_stmt *st;
    if (exec_sql(z->db,
                 "INSERT INTO config_history (device_id, at_ms, source, os_user, host, revision, "
                 "old_json, new_json) VALUES (?1, ?2, ?3, 'u', 'h', ?4, ?6, ?5)",
                 &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    sqlite3_bind_int64(st, 2, (int64_t)value(r));
    sqlite3_bind_text(st, 3, (m & 2) ? "written" : "read", -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, (int64_t)value(r));
    sqlite3_bind_text(st, 5, json, -1, SQLITE_TRANSIENT);
    if (m & 4) /* the values a change replaced: the same text, read as the old revision */
        sqlite3_bind_text(st, 6, json, -1, SQLITE_TRANSIENT);
    step(st);
}

static void op_pull(fuzz *z, rd *r)
{
    static const char *const results[] = { "ok", "running", "failed", "conflict", "interrupted" };
    pen *p = pick_pen(z, r);
    sqlite3_stmt *st;
    if (exec_sql(z->db,
                 "INSERT INTO pulls (device_id, started_ms, from_seq, next_seq, result) VALUES "
                 "(?1, ?2, ?3, ?4, ?5)",
                 &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    sqlite3_bind_int64(st, 2, (int64_t)value(r));
    sqlite3_bind_int64(st, 3, pick_seq(p, r));
    sqlite3_bind_int64(st, 4, pick_seq(p, r));
    sqlite3_bind_text(st, 5, results[u8(r) % 5], -1, SQLITE_STATIC);
    step(st);
}

static void op_verification(fuzz *z, rd *r)
{
    pen *p = pick_pen(z, r);
    sqlite3_stmt *st;
    if (exec_sql(z->db,
                 "INSERT INTO verifications (device_id, at_ms, result, through_seq, records, "
                 "chunks, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                 &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    sqlite3_bind_int64(st, 2, (int64_t)value(r));
    bind_text_bytes(st, 3, r, 20);
    sqlite3_bind_int64(st, 4, (int64_t)value(r));
    sqlite3_bind_int64(st, 5, (int64_t)value(r));
    sqlite3_bind_int64(st, 6, (int64_t)value(r));
    bind_text_bytes(st, 7, r, 255);
    step(st);
}

static void op_firmware(fuzz *z, rd *r)
{
    pen *p = pick_pen(z, r);
    sqlite3_stmt *st;
    if (exec_sql(z->db, "INSERT INTO device_firmware VALUES (?1, ?2, 0, 0)", &st) != 0)
        return;
    sqlite3_bind_int64(st, 1, p->device_id ? p->device_id : 1);
    bind_text_bytes(st, 2, r, 150);
    step(st);
}

/* ---- running the offline commands ----------------------------------------- */

#define NOTED 4 /* findings of the first audit that get notes */

typedef struct seen {
    uint64_t records, treatments, findings, usage, reports, verifications;
    uint64_t reports_ok; /* verify found the log intact, its rows equal to its chunks */
    uint64_t compliance; /* findings with compliance = 1 */
    size_t touched;      /* every string read, so ASan sees every byte */
    char ids[NOTED][128];
    int n_ids;
} seen;

static size_t touch(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        __builtin_trap(); /* a string without its NUL */
    return n;
}

static int on_record(void *u, const char *serial, const penlink_record *r)
{
    seen *s = u;
    s->records++;
    s->touched += strlen(serial) + (r->kind == 0);
    return 0;
}

static int on_treatment(void *u, const penlink_treatment *t)
{
    seen *s = u;
    s->treatments++;
    s->touched += strlen(t->serial) + (t->end_seq < t->start_seq);
    return 0;
}

static int on_finding(void *u, const penlink_finding *f)
{
    seen *s = u;
    s->findings++;
    if (!penlink_finding_kind_name(f->kind) || !f->report)
        __builtin_trap(); /* a finding of a kind this version does not name */
    s->touched += strlen(f->serial) + strlen(f->report) + touch(f->detail, sizeof f->detail) +
                  touch(f->id, sizeof f->id);
    for (size_t i = 0; i < f->n_evidence; i++)
        s->touched += strlen(f->evidence[i].serial) + (f->evidence[i].seq == 0);
    for (size_t i = 0; i < f->n_annotations; i++) {
        const penlink_annotation *a = &f->annotations[i];
        if (strcmp(a->finding, f->id) != 0)
            __builtin_trap(); /* a note shown under another finding */
        s->touched += touch(a->text, sizeof a->text) + touch(a->author, sizeof a->author);
    }
    s->compliance += f->compliance != 0;
    if (s->n_ids < NOTED)
        snprintf(s->ids[s->n_ids++], sizeof s->ids[0], "%s", f->id);
    return 0;
}

static int on_verification(void *u, const penlink_verification *v)
{
    seen *s = u;
    s->verifications++;
    s->touched += touch(v->serial, sizeof v->serial) + touch(v->result, sizeof v->result) +
                  touch(v->detail, sizeof v->detail);
    return 0;
}

/* Notes on the first audit's findings, and on one that does not exist. */
static void annotate(sqlite3 *db, const seen *s)
{
    for (int i = 0; i <= s->n_ids; i++) {
        sqlite3_stmt *st;
        if (exec_sql(db,
                     "INSERT INTO annotations (finding, at_ms, author, os_user, host, text) "
                     "VALUES (?1, ?2, 'Dr. \x1b[2J', 'u', 'h', ?3)",
                     &st) != 0)
            return;
        sqlite3_bind_text(st, 1, i < s->n_ids ? s->ids[i] : "reuse:PEN-NONE:0", -1,
                          SQLITE_TRANSIENT);
        sqlite3_bind_int64(st, 2, (int64_t)i - 1);
        sqlite3_bind_text(st, 3, i % 2 ? "<b>seen</b>" : "\xff\xfe not UTF-8", -1, SQLITE_STATIC);
        step(st);
    }
}

static int on_usage(void *u, const penlink_usage *g)
{
    seen *s = u;
    s->usage++;
    s->touched += strlen(g->serial) + touch(g->period, sizeof g->period);
    return 0;
}

static int on_report(void *u, const penlink_verify_report *r)
{
    seen *s = u;
    s->reports++;
    s->reports_ok += r->state == PENLINK_VERIFY_OK;
    if (r->state != PENLINK_VERIFY_OK && r->state != PENLINK_VERIFY_BROKEN &&
        r->state != PENLINK_VERIFY_UNSIGNED)
        __builtin_trap();
    s->touched += touch(r->serial, sizeof r->serial) + touch(r->detail, sizeof r->detail) +
                  touch(r->notes, sizeof r->notes);
    return 0;
}

static int on_alarm(void *u, const penlink_alarm *a)
{
    seen *s = u;
    s->touched += touch(a->kind, sizeof a->kind) + touch(a->detail, sizeof a->detail);
    return 0;
}

static int on_history(void *u, const penlink_config_entry *e)
{
    seen *s = u;
    s->touched += touch(e->source, sizeof e->source) + touch(e->user, sizeof e->user);
    return 0;
}

typedef struct devs {
    char serial[PENS + 4][33];
    int n;
    seen *s;
} devs;

static int on_device(void *u, const penlink_archive_device *d)
{
    devs *ds = u;
    ds->s->touched += touch(d->serial, sizeof d->serial) +
                      touch(d->firmware_versions, sizeof d->firmware_versions);
    if (ds->n < PENS + 4)
        snprintf(ds->serial[ds->n++], sizeof ds->serial[0], "%s", d->serial);
    return 0;
}

static void library_paths(penlink_archive *ar, rd *r, int notes)
{
    seen s;
    memset(&s, 0, sizeof s);
    devs ds;
    memset(&ds, 0, sizeof ds);
    ds.s = &s;
    if (penlink_archive_devices(ar, on_device, &ds) != PENLINK_OK)
        return;
    int rc = penlink_archive_verify(ar, NULL, on_report, &s);
    if (rc == PENLINK_OK && s.reports != (uint64_t)ds.n)
        __builtin_trap(); /* one verdict per pen, whatever the other pens hold */
    penlink_archive_alarms(ar, NULL, on_alarm, &s);
    penlink_archive_config_history(ar, NULL, on_history, &s);
    for (int i = 0; i < ds.n; i++) {
        penlink_verification v = PENLINK_VERIFICATION_INIT;
        if (penlink_archive_verification_get(ar, ds.serial[i], &v) == PENLINK_OK)
            s.touched += touch(v.result, sizeof v.result) + touch(v.detail, sizeof v.detail);
    }
    /* export records (the rows), and the audit (the chunks): the same records when
     * verify found every pen's log intact, rows and chunks alike */
    uint64_t scanned = 0;
    seen sc;
    memset(&sc, 0, sizeof sc);
    rc = penlink_archive_scan(ar, NULL, on_record, &sc);
    scanned = sc.records;
    penlink_audit_summary sum = PENLINK_AUDIT_SUMMARY_INIT;
    penlink_audit_cb cb = { .size = sizeof(penlink_audit_cb),
                            .on_treatment = on_treatment,
                            .on_finding = on_finding,
                            .on_usage = on_usage,
                            .user = &s,
                            .usage_by = PENLINK_PERIOD_DAY,
                            .on_verification = on_verification };
    uint64_t compliance = s.compliance;
    int arc = penlink_audit_run(ar, NULL, &cb, &sum);
    if (rc == PENLINK_OK && arc == PENLINK_OK && s.reports_ok == (uint64_t)ds.n &&
        sum.records != scanned)
        __builtin_trap(); /* the audit read every record of the intact logs */
    if (arc == PENLINK_OK &&
        (sum.compliance != s.compliance - compliance ||
         (sum.verdict == PENLINK_VERDICT_FAIL) != (sum.compliance > 0) ||
         (sum.records_in_window == 0 && sum.verdict != PENLINK_VERDICT_FAIL) ||
         (sum.findings[PENLINK_FIND_DAMAGED] && sum.verdict != PENLINK_VERDICT_FAIL) ||
         s.verifications != (uint64_t)ds.n))
        __builtin_trap(); /* the verdict is every compliance finding's; nothing found is no pass */
    if (notes && arc == PENLINK_OK)
        annotate(archive_sqlite_handle(ar->b), &s);
    /* one pen, a window, each period */
    penlink_archive_filter f = PENLINK_ARCHIVE_FILTER_INIT;
    uint8_t m = u8(r);
    if (ds.n)
        f.serial = ds.serial[m % ds.n];
    f.has_since = (m >> 4) & 1;
    f.since_ms = (int64_t)value(r);
    f.has_until = (m >> 5) & 1;
    f.until_ms = (int64_t)value(r);
    cb.local_time = (m >> 6) & 1; /* the zone set in init(): summer time and all */
    for (int by = PENLINK_PERIOD_DAY; by <= PENLINK_PERIOD_MONTH; by++) {
        cb.usage_by = (penlink_period)by;
        penlink_audit_run(ar, &f, &cb, &sum);
    }
    penlink_archive_scan(ar, &f, on_record, &s);
    penlink_archive_verify(ar, f.serial, on_report, &s);
}

/* ---- the CLI's formats over a file of the archive ------------------------- */

static char dir[64];

static void cli(const char *archive, int argc, const char *const *args)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)"penlink";
    argv[n++] = (char *)"--archive";
    argv[n++] = (char *)archive;
    for (int i = 0; i < argc && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    optind = 0;
    /* the reports go nowhere; the errors stay on stderr, where a sanitizer's report goes too */
    int quiet = !getenv("PENLINK_FUZZ_VERBOSE"), out = -1;
    fflush(stdout);
    if (quiet) {
        out = dup(1);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        close(null);
    }
    penlink_cli_main(n, argv);
    fflush(stdout);
    if (quiet) {
        dup2(out, 1);
        close(out);
    }
}

/* One CLI run, chosen by @p which, over the archive written to a file. */
static void cli_paths(sqlite3 *db, unsigned which)
{
    char path[128], q[200], side[140];
    snprintf(path, sizeof path, "%s/a.db", dir);
    unlink(path);
    snprintf(side, sizeof side, "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof side, "%s-shm", path);
    unlink(side);
    snprintf(q, sizeof q, "VACUUM INTO '%s'", path);
    if (sqlite3_exec(db, q, NULL, NULL, NULL) != SQLITE_OK)
        return;
    /* sixteen runs, so that the byte that chooses one keeps its meaning (a saved input
     * replays the same run); add one by replacing a repeat */
    static const char *const runs[16][9] = {
        { "--json", "audit", "--report", "all", "--by", "week", NULL },
        { "audit", "--format", "csv", "--by", "month", NULL },
        { "audit", "--format", "table", NULL },
        { "export", "records", "--format", "csv", NULL },
        { "export", "records", "--format", "json", NULL },
        { "export", "treatments", "--format", "json", NULL },
        { "export", "treatments", NULL },
        { "--json", "verify", "--no-record", NULL },
        { "verify", NULL },
        { "audit", "--since", "2026-01-01", "--until", "2026-01-02T12:00", "--pen", "PEN-A", NULL },
        { "export", "treatments", "--since", "2025-12-31", "--pen", "PEN-B", NULL },
        { "--json", "audit", "--report", "integrity", NULL },
        { "audit", "--format", "html", NULL },
        { "export", "records", "--format", "json", "--pen", "PEN-A", NULL },
        { "verify", "--pen", "PEN-B", NULL },
        { "audit", "--format", "csv", "--report", "cartridges", NULL },
    };
    const char *const *run = runs[which & 15];
    int argc = 0;
    while (run[argc])
        argc++;
    cli(path, argc, run);
}

/* ---- the target ------------------------------------------------------------ */

static fuzz z;
static penlink_ctx *ctx;
static penlink_archive *ar;
static unsigned char *snapshot;
static sqlite3_int64 snapshot_len;

/* The CLI's archive file and its directory go when the run ends. */
static void remove_dir(void)
{
    static const char *const files[] = { "a.db", "a.db-wal", "a.db-shm" };
    char path[128];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        unlink(path);
    }
    rmdir(dir);
}

static int init(void)
{
    if (sodium_init() < 0 || penlink_ctx_new(&ctx) != PENLINK_OK ||
        pl_chunk_enc_init(&z.enc, z.arena, sizeof z.arena) != PL_OK ||
        pl_chunk_dec_init(&z.dec, CHUNK_RECORDS, PL_CHUNK_MAX_RAW) != PL_OK)
        return -1;
    /* local periods in a zone with summer time, without the tz database */
    setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
    tzset();
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/penlink-fuzz-XXXXXX", tmp && strlen(tmp) < 30 ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    atexit(remove_dir);
    for (int i = 0; i < PENS; i++) {
        uint8_t seed[crypto_sign_SEEDBYTES];
        memset(seed, 0x40 + i, sizeof seed);
        crypto_sign_seed_keypair(z.pens[i].pk, z.pens[i].sk, seed);
    }
    /* a new archive in memory: its schema, once; each input starts from it */
    if (penlink_archive_open(ctx, ":memory:", &ar) != PENLINK_OK)
        return -1;
    z.db = archive_sqlite_handle(ar->b);
    snapshot = sqlite3_serialize(z.db, "main", &snapshot_len, 0);
    return snapshot ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        if (init() != 0)
            __builtin_trap();
        ready = 1;
    }
    unsigned char *copy = sqlite3_malloc64((sqlite3_uint64)snapshot_len);
    if (!copy)
        return 0;
    memcpy(copy, snapshot, (size_t)snapshot_len);
    if (sqlite3_deserialize(z.db, "main", copy, snapshot_len, snapshot_len,
                            SQLITE_DESERIALIZE_FREEONCLOSE | SQLITE_DESERIALIZE_RESIZEABLE) !=
        SQLITE_OK)
        __builtin_trap();
    for (int i = 0; i < PENS; i++) {
        pen *p = &z.pens[i];
        p->made = 0;
        p->device_id = 0;
        p->next_seq = 0;
        p->time_ms = 1767225600000;
        p->have_link = 0;
        snprintf(p->serial, sizeof p->serial, "%s", serials[i % 2]);
    }
    rd r = { data, size };
    uint8_t flags = u8(&r);
    sqlite3_exec(z.db, "BEGIN", NULL, NULL, NULL);
    for (int op = 0; op < MAX_OPS && r.n > 0; op++) {
        switch (u8(&r) % 10) {
        case 0: make_pen(&z, &r); break;
        case 1: op_record(&z, &r); break;
        case 2: op_chunk(&z, &r); break;
        case 3: op_head(&z, &r); break;
        case 4: op_alarm(&z, &r); break;
        case 5: op_config(&z, &r); break;
        case 6: op_pull(&z, &r); break;
        case 7: op_verification(&z, &r); break;
        case 8: op_firmware(&z, &r); break;
        default: op_raw_record(&z, &r); break;
        }
    }
    sqlite3_exec(z.db, "COMMIT", NULL, NULL, NULL);
    rd tail = { data, size }; /* the window and the pen are chosen from the start again */
    u8(&tail);
    library_paths(ar, &tail, (flags >> 6) & 1);
    if ((flags & 3) == 0)
        cli_paths(z.db, flags >> 2);
    return 0;
}
