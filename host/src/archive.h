/*
 * The archive's storage backends. The pull logic (archive_pull.c) and the audit
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
    /* NULL, or why the row cannot be a chunk (a negative first_seq, an impossible
     * count): the row is still passed, so that one pen's damage is that pen's finding */
    const char *damage;
    int64_t stored_seq; /* first_seq as stored */
} archive_chunk_row;

/* A row that cannot be what its table says: an archive damaged, edited, or
 * written by an earlier penlink from a hostile pen. Reads hand such rows to
 * the caller and go on, so that one pen's damage never stops the others. */
typedef struct archive_damage {
    const char *serial; /* the pen */
    const char *table;  /* "records" */
    int64_t seq;        /* the seq as stored (negative: a seq at or above 2^63) */
    const char *why;    /* in words */
} archive_damage;
typedef int (*archive_damage_cb)(void *user, const archive_damage *d);

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
    /* Stores a chunk as received (an identical one again is not stored twice);
     * *stored (may be NULL) says whether it was new. */
    int (*chunk)(archive_backend *b, int64_t device, int64_t pull, const penlink_chunk *c,
                 int64_t now, int64_t *chunk, int *stored);
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
    /* Damaged rows go to @p bad and the scan goes on (NULL: skipped, and the
     * scan ends with PENLINK_ERR_INTEGRITY naming the first). */
    int (*scan)(archive_backend *b, const penlink_archive_filter *f, penlink_archive_record_cb cb,
                archive_damage_cb bad, void *user);
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
    /* A pen's records with first <= seq < end, in seq order; damaged rows to @p bad. */
    int (*records)(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
                   int (*cb)(void *user, const penlink_record *r), archive_damage_cb bad,
                   void *user);
    /* How many records a pen has. */
    int (*record_count)(archive_backend *b, int64_t device, uint64_t *n);
    /* The highest next_seq a finished pull of the pen recorded (result ok or
     * conflict: everything below it was committed or proven gone); *have 0 when none. */
    int (*pulled_to)(archive_backend *b, int64_t device, uint64_t *next, int *have);
    /* How many of a pen's record rows hold a seq no pen can log (at or above
     * 2^63, stored as a negative integer), and the lowest of them as stored. */
    int (*seq_outliers)(archive_backend *b, int64_t device, uint64_t *n, int64_t *lowest);
    /* A pen's verified heads, in the order stored. */
    int (*heads)(archive_backend *b, int64_t device,
                 int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
                           const uint8_t *sig, size_t sig_len),
                 void *user);
    /* Stores a verification result (of the pen r->serial); reads back the last one. */
    int (*verification_log)(archive_backend *b, const penlink_verify_report *r, int64_t now);
    int (*verification_last)(archive_backend *b, const char *serial, penlink_verification *out);

    /* Replaced device keys (penlink keys replace): appends one (its pen found
     * by r->serial); visits a pen's (every pen's when @p serial is NULL) in
     * the order recorded. */
    int (*key_replace)(archive_backend *b, const penlink_key_replacement *r);
    int (*key_replacements)(archive_backend *b, const char *serial,
                            int (*cb)(void *user, const penlink_key_replacement *r), void *user);

    /* Annotations of findings (append-only): one stored; all, in the order stored. */
    int (*annotate)(archive_backend *b, const penlink_annotation *a);
    int (*annotations)(archive_backend *b, int (*cb)(void *user, const penlink_annotation *a),
                       void *user);

    /* 1 when the archive could be written from here, however this handle was
     * opened (penlink_archive_writable()). */
    int (*writable)(archive_backend *b);
} archive_ops;

struct archive_backend {
    const archive_ops *ops;
    penlink_ctx *ctx;
    const char *name; /* for messages: the file's path, or user@host/database */
    /* opened for reading: nothing is ever written (a file stays byte for byte
     * as it was; a server session is read-only), and begin refuses */
    int readonly;
};

/* The packed record body (record_body.c): all of a record but its seq.
 * pack returns the length; unpack fills all but r->seq and returns 0, or -1
 * when the bytes cannot be a body. */
#define ARCHIVE_BODY_MAX (8 + 5 + 2 + 11 * 10)
size_t archive_body_pack(const penlink_record *r, uint8_t out[ARCHIVE_BODY_MAX]);
int archive_body_unpack(const uint8_t *p, size_t n, penlink_record *r);
/* 1 when two records of one seq say the same (time, kind and every field they carry). */
int archive_record_same(const penlink_record *a, const penlink_record *b);

/* The checks of penlink verify as a walk over one pen's log in a backend
 * (verify.c), for penlink verify and for archive push, which copies a log
 * only as far as it verifies. The hooks (any may be NULL) see each chunk once
 * its link, its place in the chain and its records checked, with the records
 * no earlier chunk held (@p copy: a second copy of seqs the chain holds, a
 * conflict kept as evidence), and each verified signed head right after the
 * chunk it names. A hook's non-zero status stops the walk and is returned. */
typedef struct archive_walk_hooks {
    int (*chunk)(void *user, const archive_chunk_row *c, const penlink_record *recs, uint32_t n,
                 int copy);
    int (*head)(void *user, const penlink_head *h);
    void *user;
} archive_walk_hooks;
typedef struct archive_walker archive_walker; /* a chunk decoder and its buffers */
int archive_walker_new(archive_walker **out);
void archive_walker_free(archive_walker *w);
/* The walks of @p w from now on report their progress (penlink_ctx_set_progress_cb, on the
 * walked backend's context) as @p work, pen by pen; NULL (the default): they report none. */
void archive_walker_set_work(archive_walker *w, const char *work);
/* Walks pen @p device: @p key NULL for a pen that does not sign (the records
 * are still checked against their chunks; the report says UNSIGNED). The
 * verdict is in @p r; the status says whether the walk could be done. */
int archive_walk_pen(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                     const uint8_t *key, uint64_t first_from, const archive_walk_hooks *hooks,
                     penlink_verify_report *r);
/* Everything penlink verify checks of one pen, storing nothing (verify.c):
 * the walk, and what the archive's other tables say the log must hold (the
 * records its pulls stored; the signing a removed key leaves behind). The
 * audit's own verification. */
int archive_check_pen(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                      const uint8_t *key, uint64_t first_from, penlink_verify_report *r);

/* The audit's reading of one pen (verify.c): the walk's checks of the chunks
 * and heads, and of what its pulls stored, as archive_check_pen, but its
 * records are taken from the chunks (to @p hooks->chunk) and no record row is
 * read or compared with them (that is penlink verify's). Past the first
 * failure the walk goes on: the records of every further chunk that decodes
 * go to the hook unchecked, each seq once (the first stored copy). */
int archive_audit_pen(archive_walker *w, archive_backend *b, int64_t device, const char *serial,
                      const uint8_t *key, uint64_t first_from, const archive_walk_hooks *hooks,
                      penlink_verify_report *r);

/* The configuration as the archive stores it (archive_text.c): JSON text
 * written and read without a JSON library, the same in every backend. */
void archive_config_text(const penlink_config *c, char *out, size_t cap);
void archive_config_parse(const char *json, penlink_config *c);

/* The serial (into @p serial, "" when none) of a pen other than @p device
 * (whose serial is @p self_serial) whose pinned key is @p key (NULL: none),
 * or that had @p key as the old or new key of a key replacement: a clone
 * (archive_keys.c). */
int archive_key_owner(archive_backend *b, int64_t device, const char *self_serial,
                      const uint8_t *key, char *serial, size_t cap);

/* The key in force after a pen's replacements: the last one's new key
 * (archive_keys.c; the pull checks a pen's key against it too). */
typedef struct archive_key_history {
    int n;
    uint8_t current[32];
    const uint8_t *probe; /* a key to look for among the replaced ones */
    int probe_was_replaced;
    int64_t probe_replaced_ms;
} archive_key_history;
/* A backend's key_replacements callback filling an archive_key_history. */
int archive_take_replacement(void *u, const penlink_key_replacement *r);

/* Who and where, for the audit trail: the OS user and the host name. */
void archive_who(char *user, size_t ucap, char *host, size_t hcap);
/* Ends a transaction: committed (durably) when @p rc is PENLINK_OK, else rolled back. */
int archive_end_txn(archive_backend *b, int rc);

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

/* Opens the SQLite archive at @p path: for writing (creating it if needed),
 * or with @p readonly for reading only (the file must exist; nothing is
 * written to it). Writes nothing before it knows the file is a penlink
 * archive of a schema it can handle (docs/audit-guide.md, "The archive file"). */
int archive_sqlite_open(penlink_ctx *ctx, const char *path, int readonly, archive_backend **out);

/* The backend's sqlite3 handle, for the tests and the archive fuzzer only. */
void *archive_sqlite_handle(archive_backend *b);

/* penlink_archive_scan() with damaged rows handed to @p bad (the audit's). */
int archive_scan(penlink_archive *ar, const penlink_archive_filter *f, penlink_archive_record_cb cb,
                 archive_damage_cb bad, void *user);

/* The PostgreSQL backend (archive_pg.c). archive_is_server(): @p uri names a
 * server (postgresql://..., postgres://..., or keyword=value such as
 * service=NAME), not a file. @p create: set up the schema when there is none;
 * @p readonly: a read-only session that never migrates (create must be 0). */
int archive_is_server(const char *uri);
int archive_pg_open(penlink_ctx *ctx, const char *uri, int create, int readonly,
                    archive_backend **out);

#endif
