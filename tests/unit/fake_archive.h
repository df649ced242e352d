/*
 * A fake archive backend (host/src/archive.h's table) for the host library's
 * unit tests: pens, chunks, heads, records, alarms and key replacements held
 * in arrays the test fills, any operation made to fail with a chosen status,
 * and the writes it gets counted. The operations the tests never reach are
 * NULL: a call to one is a crash the test shows.
 */
#ifndef PENLINK_FAKE_ARCHIVE_H
#define PENLINK_FAKE_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "archive.h"

#define FAKE_MAX_PENS 4
#define FAKE_MAX_CHUNKS 16
#define FAKE_MAX_HEADS 16
#define FAKE_MAX_RECORDS 256
#define FAKE_MAX_ALARMS 8
#define FAKE_CHUNK_BYTES 2048
#define FAKE_LINK_BYTES 32
#define FAKE_SIG_BYTES 64

typedef struct fake_pen {
    int64_t device;
    char serial[33];
    int has_key;
    uint8_t key[32];
    uint64_t first_from;
    uint64_t outliers; /* record rows at or above 2^63 ... */
    int64_t outlier_lowest;
    uint64_t pulled_to; /* what its finished pulls recorded (have_pulled) */
    int have_pulled;
} fake_pen;

typedef struct fake_chunk {
    int64_t device;
    archive_chunk_row row; /* data, prev_link and link point into this struct */
    uint8_t data[FAKE_CHUNK_BYTES];
    uint8_t prev_link[FAKE_LINK_BYTES], link[FAKE_LINK_BYTES];
} fake_chunk;

typedef struct fake_head {
    int64_t device;
    uint64_t next_seq;
    uint8_t link[FAKE_LINK_BYTES], sig[FAKE_SIG_BYTES];
    size_t link_len, sig_len;
} fake_head;

typedef struct fake_record {
    int64_t device;
    penlink_record r;
    const char *damage; /* non-NULL: the row cannot be a record (handed to bad) */
} fake_record;

typedef struct fake_archive {
    archive_backend base;
    fake_pen pens[FAKE_MAX_PENS];
    size_t n_pens;
    fake_chunk chunks[FAKE_MAX_CHUNKS];
    size_t n_chunks;
    fake_head heads[FAKE_MAX_HEADS];
    size_t n_heads;
    fake_record records[FAKE_MAX_RECORDS];
    size_t n_records;
    penlink_alarm alarms[FAKE_MAX_ALARMS];
    size_t n_alarms;
    penlink_key_replacement *repl; /* the test's array */
    size_t n_repl;
    int writable;
    /* the operation (its name in archive_ops) that fails, with fail_status:
     * from its fail_at-th call on (0 or 1: every call) */
    const char *fail_op;
    int fail_status, fail_at, fail_calls;
    /* what was asked of it */
    int begins, commits, rollbacks, logs, savepoints, to_savepoint;
    penlink_verify_report logged; /* the last verification_log */
    int pull_begins, pull_ends, chunks_stored;
    uint64_t pull_from;   /* the last pull_begin's */
    char pull_result[16]; /* the last pull_end's */
    char pull_message[640];
} fake_archive;

/* An empty, writable archive on @p ctx. */
void fake_archive_init(fake_archive *fa, penlink_ctx *ctx);
fake_pen *fake_archive_pen(fake_archive *fa, int64_t device, const char *serial,
                           const uint8_t *key);
/* A copy of @p data as a chunk of @p device; links may be NULL (a pen that does not sign). */
fake_chunk *fake_archive_chunk(fake_archive *fa, int64_t device, uint64_t first_seq,
                               uint32_t record_count, uint32_t raw_size, const uint8_t *data,
                               size_t len, const uint8_t *prev_link, const uint8_t *link);
fake_head *fake_archive_head(fake_archive *fa, int64_t device, uint64_t next_seq,
                             const uint8_t *link, const uint8_t *sig);
fake_record *fake_archive_record(fake_archive *fa, int64_t device, const penlink_record *r);
penlink_alarm *fake_archive_alarm(fake_archive *fa, const char *serial, const char *kind,
                                  uint64_t seq, uint64_t count);

#endif
