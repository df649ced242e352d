/*
 * The archive's storage backends. The pull logic (archive.c) and the audit
 * talk to storage only through this table, so a PostgreSQL backend for
 * clinics sharing one archive is one more file beside archive_sqlite.c.
 */
#ifndef PENLINK_ARCHIVE_H
#define PENLINK_ARCHIVE_H

#include "internal.h"

typedef struct archive_backend archive_backend;

/* A chunk as stored, for verification. Pointers are valid during the callback. */
typedef struct archive_chunk_row {
    int64_t id;
    uint64_t first_seq;
    uint32_t record_count, raw_size;
    const uint8_t *data;
    size_t len;
    const uint8_t *prev_link, *link; /* NULL when not 32 bytes (an unsigned pen's chunk) */
} archive_chunk_row;

/* Outcome of storing one record. */
enum { REC_NEW = 0, REC_SAME = 1, REC_CONFLICT = 2 };

/* Outcome of pinning a pen's device key. */
enum { KEY_PINNED = 0, KEY_SAME = 1, KEY_CHANGED = 2, KEY_NONE = 3 };

typedef struct archive_ops {
    const char *name;
    void (*close)(archive_backend *b);
    int (*begin)(archive_backend *b);
    int (*commit)(archive_backend *b); /* durable when it returns */
    int (*rollback)(archive_backend *b);
    /* Marks what the open transaction holds so far as kept whatever follows (a
     * verified head); rollback_to_savepoint drops what came after the last mark
     * (everything, when there is none) and keeps the transaction open. */
    int (*savepoint)(archive_backend *b);
    int (*rollback_to_savepoint)(archive_backend *b);
    /* Creates or refreshes the device row; *id gets its key. */
    int (*device)(archive_backend *b, const penlink_info *info, int64_t now, int64_t *id);
    /* One past the highest archived seq of the device (0 and *have = 0 when none). */
    int (*next_seq)(archive_backend *b, int64_t device, uint64_t *next, int *have);
    int (*pull_begin)(archive_backend *b, int64_t device, uint64_t from, int64_t now,
                      int64_t *pull);
    int (*pull_end)(archive_backend *b, int64_t pull, const penlink_archive_pull_result *r,
                    const char *result, const char *message, int64_t now);
    /* Stores a chunk as received (an identical one again is not stored twice). */
    int (*chunk)(archive_backend *b, int64_t device, int64_t pull, const penlink_chunk *c,
                 int64_t now, int64_t *chunk);
    /* Stores a record; *outcome REC_NEW, REC_SAME or REC_CONFLICT (then kept as is).
     * @p fresh: the caller knows the seq is above everything archived, so the
     * lookup for an earlier copy can be skipped. */
    int (*record)(archive_backend *b, int64_t device, int64_t chunk, const penlink_record *r,
                  int fresh, int *outcome);
    int (*alarm)(archive_backend *b, int64_t device, int64_t pull, const char *kind, uint64_t seq,
                 uint64_t count, const char *detail, int64_t now);
    /* Pins @p key (NULL: the pen has none) on first contact; *outcome KEY_*. */
    int (*pin_key)(archive_backend *b, int64_t device, const uint8_t *key, int *outcome);
    /* Stores a verified signed head. */
    int (*head)(archive_backend *b, int64_t device, int64_t pull, const penlink_head *h,
                int64_t now);
    int (*scan)(archive_backend *b, const penlink_archive_filter *f, penlink_archive_record_cb cb,
                void *user);
    int (*alarms)(archive_backend *b, const penlink_archive_filter *f,
                  int (*cb)(void *user, const penlink_alarm *a), void *user);
    int (*config_log)(archive_backend *b, const char *serial, const char *source, const char *user,
                      const char *host, const penlink_config *old_cfg,
                      const penlink_config *new_cfg, int64_t now);
    int (*config_history)(archive_backend *b, const char *serial,
                          int (*cb)(void *user, const penlink_config_entry *e), void *user);
    int (*devices)(archive_backend *b, int (*cb)(void *user, const penlink_archive_device *d),
                   void *user);

    /* Verification (verify.c). */
    /* The pens (one, or all when @p serial is NULL) in serial order, with their pinned key. */
    /* first_from: where the pen's first pull began (its records start there). */
    int (*pens)(archive_backend *b, const char *serial,
                int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                          uint64_t first_from),
                void *user);
    /* A pen's chunks in seq order (in the order received at the same seq). */
    int (*chunks)(archive_backend *b, int64_t device,
                  int (*cb)(void *user, const archive_chunk_row *c), void *user);
    /* A pen's records with first <= seq < end, in seq order. */
    int (*records)(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
                   int (*cb)(void *user, const penlink_record *r), void *user);
    /* How many records a pen has. */
    int (*record_count)(archive_backend *b, int64_t device, uint64_t *n);
    /* A pen's verified heads, in the order stored. */
    int (*heads)(archive_backend *b, int64_t device,
                 int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
                           const uint8_t *sig, size_t sig_len),
                 void *user);
    /* Stores a verification result; reads back the last one. */
    int (*verification_log)(archive_backend *b, int64_t device, const penlink_verify_report *r,
                            int64_t now);
    int (*verification_last)(archive_backend *b, const char *serial, penlink_verification *out);

    /* Replaced device keys (penlink keys replace): appends one (its pen found
     * by r->serial); visits a pen's (every pen's when @p serial is NULL) in
     * the order recorded. */
    int (*key_replace)(archive_backend *b, const penlink_key_replacement *r);
    int (*key_replacements)(archive_backend *b, const char *serial,
                            int (*cb)(void *user, const penlink_key_replacement *r), void *user);
} archive_ops;

struct archive_backend {
    const archive_ops *ops;
    penlink_ctx *ctx;
};

/* The packed record body (record_body.c): all of a record but its seq.
 * pack returns the length; unpack fills all but r->seq and returns 0, or -1
 * when the bytes cannot be a body. */
#define ARCHIVE_BODY_MAX (8 + 5 + 2 + 11 * 10)
size_t archive_body_pack(const penlink_record *r, uint8_t out[ARCHIVE_BODY_MAX]);
int archive_body_unpack(const uint8_t *p, size_t n, penlink_record *r);
/* 1 when two records of one seq say the same (time, kind and every field they carry). */
int archive_record_same(const penlink_record *a, const penlink_record *b);

/* The configuration as the archive stores it (archive_text.c): JSON text
 * written and read without a JSON library, the same in every backend. */
void archive_config_text(const penlink_config *c, char *out, size_t cap);
void archive_config_parse(const char *json, penlink_config *c);

/* The host's clock, ms since the epoch: what the archive stamps rows with. */
int64_t archive_now_ms(void);

/* The public handle: a context and a backend. */
struct penlink_archive {
    penlink_ctx *ctx;
    archive_backend *b;
    /* The key replacements as of the last penlink_archive_alarms(): what the
     * audit checks its key_changed alarms against while it scans (a backend
     * may not be asked anything else during a scan). */
    penlink_key_replacement *repl;
    size_t n_repl;
};

int archive_sqlite_open(penlink_ctx *ctx, const char *path, archive_backend **out);

/* The PostgreSQL backend (archive_pg.c). archive_is_server(): @p uri names a
 * server (postgresql://..., postgres://..., or keyword=value such as
 * service=NAME), not a file. @p create: set up the schema when there is none. */
int archive_is_server(const char *uri);
int archive_pg_open(penlink_ctx *ctx, const char *uri, int create, archive_backend **out);

#endif
