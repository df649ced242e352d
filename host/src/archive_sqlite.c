/*
 * The SQLite archive backend. WAL mode with synchronous=FULL: a commit is on
 * disk when it returns, which is what lets the pull acknowledge records.
 * The schema is versioned with PRAGMA user_version and migrated forward in
 * one transaction. Audit-trail tables (records, chunks, alarms,
 * config_history) refuse UPDATE and DELETE by trigger.
 *
 * Values read back are checked like any outside input: a row whose kind,
 * field mask or 32-bit values do not fit is reported as damage.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <unistd.h>

#include <sqlite3.h>

#include "archive.h"
#include "pl/chunk.h"
#include "pl/record.h"

#define SCHEMA_VERSION 4
#define INSERT_BATCH 64

typedef struct sqlite_backend {
    archive_backend base;
    sqlite3 *db;
    char path[1024];
    sqlite3_stmt *ins_record, *ins_batch, *get_record, *ins_chunk, *find_chunk, *range;
    int bad_row; /* a migration met a row that cannot be a record */
    /* New records wait here and go in INSERT_BATCH rows per statement: a
     * statement's own setup costs as much as the row it inserts. They are
     * flushed before every commit and every read of the records table. */
    int pending;
    int savepoint; /* a savepoint is open in the transaction */
    struct pending_record {
        int64_t device, seq, chunk;
        size_t len;
        uint8_t body[ARCHIVE_BODY_MAX];
    } batch[INSERT_BATCH];
} sqlite_backend;

static const char schema_v1[] =
    "CREATE TABLE devices (\n"
    "  id INTEGER PRIMARY KEY, serial TEXT NOT NULL UNIQUE, model TEXT,\n"
    "  hardware_revision TEXT, first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL);\n"
    "CREATE TABLE device_firmware (\n"
    "  device_id INTEGER NOT NULL REFERENCES devices(id), firmware_version TEXT NOT NULL,\n"
    "  first_seen_ms INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL,\n"
    "  PRIMARY KEY (device_id, firmware_version));\n"
    "CREATE TABLE pulls (\n"
    "  id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices(id),\n"
    "  started_ms INTEGER NOT NULL, finished_ms INTEGER, host TEXT, os_user TEXT,\n"
    "  penlink_version TEXT, from_seq INTEGER, next_seq INTEGER, records_new INTEGER,\n"
    "  records_dup INTEGER, conflicts INTEGER, gap INTEGER, result TEXT NOT NULL,\n"
    "  message TEXT);\n"
    "CREATE TABLE chunks (\n"
    "  id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices(id),\n"
    "  pull_id INTEGER REFERENCES pulls(id), received_ms INTEGER NOT NULL,\n"
    "  first_seq INTEGER NOT NULL, record_count INTEGER NOT NULL, raw_size INTEGER NOT NULL,\n"
    "  data BLOB NOT NULL, UNIQUE (device_id, first_seq, record_count, data));\n"
    "CREATE TABLE records (\n"
    "  device_id INTEGER NOT NULL REFERENCES devices(id), seq INTEGER NOT NULL,\n"
    "  time_ms INTEGER NOT NULL, kind INTEGER NOT NULL, fields INTEGER NOT NULL,\n"
    "  depth_um INTEGER, speed_sps INTEGER, duration_ms INTEGER, cartridge_serial INTEGER,\n"
    "  cartridge_uses INTEGER, lifetime_cartridges INTEGER, strokes INTEGER,\n"
    "  fault_code INTEGER, config_revision INTEGER, clock_delta_ms INTEGER, dropped INTEGER,\n"
    "  chunk_id INTEGER NOT NULL REFERENCES chunks(id),\n"
    "  PRIMARY KEY (device_id, seq)) WITHOUT ROWID;\n"
    "CREATE TABLE alarms (\n"
    "  id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices(id),\n"
    "  pull_id INTEGER REFERENCES pulls(id), at_ms INTEGER NOT NULL, kind TEXT NOT NULL,\n"
    "  seq INTEGER NOT NULL, count INTEGER NOT NULL, detail TEXT);\n"
    "CREATE TABLE config_history (\n"
    "  id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices(id),\n"
    "  at_ms INTEGER NOT NULL, source TEXT NOT NULL, os_user TEXT, host TEXT,\n"
    "  revision INTEGER NOT NULL, old_json TEXT, new_json TEXT NOT NULL);\n"
    "CREATE TRIGGER records_append_only_u BEFORE UPDATE ON records\n"
    "  BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;\n"
    "CREATE TRIGGER records_append_only_d BEFORE DELETE ON records\n"
    "  BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;\n"
    "CREATE TRIGGER chunks_append_only_u BEFORE UPDATE ON chunks\n"
    "  BEGIN SELECT RAISE(ABORT, 'chunks are append-only'); END;\n"
    "CREATE TRIGGER chunks_append_only_d BEFORE DELETE ON chunks\n"
    "  BEGIN SELECT RAISE(ABORT, 'chunks are append-only'); END;\n"
    "CREATE TRIGGER alarms_append_only_u BEFORE UPDATE ON alarms\n"
    "  BEGIN SELECT RAISE(ABORT, 'alarms are append-only'); END;\n"
    "CREATE TRIGGER alarms_append_only_d BEFORE DELETE ON alarms\n"
    "  BEGIN SELECT RAISE(ABORT, 'alarms are append-only'); END;\n"
    "CREATE TRIGGER config_history_append_only_u BEFORE UPDATE ON config_history\n"
    "  BEGIN SELECT RAISE(ABORT, 'the configuration history is append-only'); END;\n"
    "CREATE TRIGGER config_history_append_only_d BEFORE DELETE ON config_history\n"
    "  BEGIN SELECT RAISE(ABORT, 'the configuration history is append-only'); END;\n";

/* Version 2 keeps all of a record but its seq packed in one BLOB
 * (record_body.c): reading a record back is then one column, not fourteen,
 * which is what the audit of millions of records spends its time on. penlink_pack_v1() is
 * registered on every connection; it refuses a v1 row whose values cannot be
 * a record, so a damaged v1 archive fails the migration and stays as it was. */
static const char schema_v2[] =
    "DROP TRIGGER IF EXISTS records_append_only_u;\n"
    "DROP TRIGGER IF EXISTS records_append_only_d;\n"
    "CREATE TABLE records_v2 (\n"
    "  device_id INTEGER NOT NULL REFERENCES devices(id), seq INTEGER NOT NULL,\n"
    "  body BLOB NOT NULL, chunk_id INTEGER NOT NULL REFERENCES chunks(id),\n"
    "  PRIMARY KEY (device_id, seq)) WITHOUT ROWID;\n"
    "INSERT INTO records_v2 SELECT device_id, seq,\n"
    "  penlink_pack_v1(time_ms, kind, fields, depth_um, speed_sps, duration_ms, cartridge_serial,\n"
    "    cartridge_uses, lifetime_cartridges, strokes, fault_code, config_revision,\n"
    "    clock_delta_ms, dropped), chunk_id FROM records ORDER BY device_id, seq;\n"
    "DROP TABLE records;\n"
    "ALTER TABLE records_v2 RENAME TO records;\n"
    "CREATE TRIGGER records_append_only_u BEFORE UPDATE ON records\n"
    "  BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;\n"
    "CREATE TRIGGER records_append_only_d BEFORE DELETE ON records\n"
    "  BEGIN SELECT RAISE(ABORT, 'records are append-only'); END;\n";

/* Version 3 keeps what makes the log tamper-evident (docs/security.md): each
 * pen's pinned device key, each chunk's hash-chain links, the pen-signed
 * heads the pulls verified, and the results of penlink verify. */
static const char schema_v3[] =
    "ALTER TABLE devices ADD COLUMN public_key BLOB;\n"
    "ALTER TABLE chunks ADD COLUMN prev_link BLOB;\n"
    "ALTER TABLE chunks ADD COLUMN link BLOB;\n"

    "CREATE TABLE heads (\n"
    "  id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices(id),\n"
    "  pull_id INTEGER REFERENCES pulls(id), at_ms INTEGER NOT NULL,\n"
    "  next_seq INTEGER NOT NULL, link BLOB NOT NULL, signature BLOB NOT NULL);\n"
    "CREATE TABLE verifications (\n"
    "  id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices(id),\n"
    "  at_ms INTEGER NOT NULL, result TEXT NOT NULL, through_seq INTEGER,\n"
    "  records INTEGER NOT NULL, chunks INTEGER NOT NULL, detail TEXT);\n"
    "CREATE TRIGGER heads_append_only_u BEFORE UPDATE ON heads\n"
    "  BEGIN SELECT RAISE(ABORT, 'heads are append-only'); END;\n"
    "CREATE TRIGGER heads_append_only_d BEFORE DELETE ON heads\n"
    "  BEGIN SELECT RAISE(ABORT, 'heads are append-only'); END;\n"
    "CREATE TRIGGER verifications_append_only_u BEFORE UPDATE ON verifications\n"
    "  BEGIN SELECT RAISE(ABORT, 'verifications are append-only'); END;\n"
    "CREATE TRIGGER verifications_append_only_d BEFORE DELETE ON verifications\n"
    "  BEGIN SELECT RAISE(ABORT, 'verifications are append-only'); END;\n"
    "CREATE TRIGGER devices_key_pinned BEFORE UPDATE OF public_key ON devices\n"
    "  WHEN OLD.public_key IS NOT NULL\n"
    "  BEGIN SELECT RAISE(ABORT, 'a pinned device key never changes'); END;\n";

/* Version 4 records device keys replaced on purpose (penlink keys replace: a
 * pen repaired with a new key), append-only like the rest of the trail. */
static const char schema_v4[] =
    "CREATE TABLE key_replacements (\n"
    "  id INTEGER PRIMARY KEY, device_id INTEGER NOT NULL REFERENCES devices(id),\n"
    "  at_ms INTEGER NOT NULL, os_user TEXT, host TEXT, reason TEXT NOT NULL,\n"
    "  old_key BLOB NOT NULL, new_key BLOB NOT NULL, from_seq INTEGER NOT NULL,\n"
    "  heads_before INTEGER NOT NULL);\n"
    "CREATE TRIGGER key_replacements_append_only_u BEFORE UPDATE ON key_replacements\n"
    "  BEGIN SELECT RAISE(ABORT, 'key replacements are append-only'); END;\n"
    "CREATE TRIGGER key_replacements_append_only_d BEFORE DELETE ON key_replacements\n"
    "  BEGIN SELECT RAISE(ABORT, 'key replacements are append-only'); END;\n";

/* Forward migrations: migrations[v] takes the schema from version v to v+1. */
static const char *const migrations[SCHEMA_VERSION] = { schema_v1, schema_v2, schema_v3,
                                                        schema_v4 };

/* penlink_pack_v1(time_ms, kind, fields, depth_um, ..., dropped): a v1 record row as a v2 body. */
static void sql_pack_v1(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    sqlite_backend *s = sqlite3_user_data(cx);
    penlink_record r;
    memset(&r, 0, sizeof r);
    int64_t kind = sqlite3_value_int64(argv[1]), fields = sqlite3_value_int64(argv[2]);
    if (argc != 3 + PENLINK_FIELD_COUNT || sqlite3_value_type(argv[0]) != SQLITE_INTEGER ||
        sqlite3_value_type(argv[1]) != SQLITE_INTEGER || kind < 0 || kind > UINT32_MAX ||
        sqlite3_value_type(argv[2]) != SQLITE_INTEGER || fields < 0 ||
        fields >= (1 << PENLINK_FIELD_COUNT)) {
        s->bad_row = 1;
        sqlite3_result_error(cx, "a record row with a bad time, kind or field mask", -1);
        return;
    }
    r.time_ms = sqlite3_value_int64(argv[0]);
    r.kind = (uint32_t)kind;
    r.fields = (uint32_t)fields;
    for (int b = 0; b < PENLINK_FIELD_COUNT; b++) {
        if (!(fields & (1 << b)))
            continue;
        if (sqlite3_value_type(argv[3 + b]) != SQLITE_INTEGER ||
            pl_record_set((pl_record *)&r, 1u << b, (uint64_t)sqlite3_value_int64(argv[3 + b])) !=
                0) {
            s->bad_row = 1;
            sqlite3_result_error(cx, "a record row with a bad field value", -1);
            return;
        }
    }
    uint8_t body[ARCHIVE_BODY_MAX];
    sqlite3_result_blob(cx, body, (int)archive_body_pack(&r, body), SQLITE_TRANSIENT);
}

/* The one message for a damaged archive: what failed, and how to recover. */
static int damaged(sqlite_backend *s, const char *what, const char *why)
{
    return penlink_fail(s->base.ctx, PENLINK_ERR_INTEGRITY,
                        "archive %s is damaged (%s: %s). Nothing was changed. Keep the file; "
                        "recover what is readable with 'sqlite3 %s .recover | sqlite3 new.db', "
                        "or restore a backup; the pens still hold every record not yet "
                        "acknowledged",
                        s->path, what, why, s->path);
}

static int db_fail(sqlite_backend *s, int status, const char *what)
{
    int code = sqlite3_errcode(s->db);
    if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
        return damaged(s, what, sqlite3_errmsg(s->db));
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED)
        return penlink_fail(s->base.ctx, PENLINK_ERR_BUSY,
                            "archive %s is busy (%s): another penlink holds it; try again", s->path,
                            what);
    return penlink_fail(s->base.ctx, status, "archive %s: %s: %s", s->path, what,
                        sqlite3_errmsg(s->db));
}

static int exec(sqlite_backend *s, const char *sql, const char *what)
{
    char *err = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        sqlite3_free(err);
        return db_fail(s, PENLINK_ERR_IO, what);
    }
    return PENLINK_OK;
}

/* exec() for the statements of opening that SQLite may answer with BUSY
 * without waiting (switching a new file to WAL while another penlink does). */
static int exec_patient(sqlite_backend *s, const char *sql, const char *what)
{
    for (int i = 0; i < 200; i++) {
        if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK)
            return PENLINK_OK;
        if (sqlite3_errcode(s->db) != SQLITE_BUSY && sqlite3_errcode(s->db) != SQLITE_LOCKED)
            break;
        sqlite3_sleep(50);
    }
    return db_fail(s, PENLINK_ERR_IO, what);
}

static int prep(sqlite_backend *s, sqlite3_stmt **st, const char *sql)
{
    if (sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL) != SQLITE_OK)
        return db_fail(s, PENLINK_ERR_IO, "prepare");
    return PENLINK_OK;
}

static void sq_close(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_finalize(s->ins_record);
    sqlite3_finalize(s->ins_batch);
    sqlite3_finalize(s->range);
    sqlite3_finalize(s->get_record);
    sqlite3_finalize(s->ins_chunk);
    sqlite3_finalize(s->find_chunk);
    sqlite3_close(s->db);
    free(s);
}

static int sq_begin(archive_backend *b)
{
    return exec((sqlite_backend *)b, "BEGIN IMMEDIATE", "begin");
}

static void bind_pending(sqlite3_stmt *st, int row, const struct pending_record *p)
{
    sqlite3_bind_int64(st, 4 * row + 1, p->device);
    sqlite3_bind_int64(st, 4 * row + 2, p->seq);
    sqlite3_bind_blob(st, 4 * row + 3, p->body, (int)p->len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4 * row + 4, p->chunk);
}

/* Inserts the waiting records: a full batch in one statement, a partial one row by row. */
static int flush(sqlite_backend *s)
{
    int n = s->pending;
    s->pending = 0;
    if (n == INSERT_BATCH) {
        for (int i = 0; i < n; i++)
            bind_pending(s->ins_batch, i, &s->batch[i]);
        int x = sqlite3_step(s->ins_batch);
        sqlite3_reset(s->ins_batch);
        return x == SQLITE_DONE ? PENLINK_OK : db_fail(s, PENLINK_ERR_IO, "store records");
    }
    for (int i = 0; i < n; i++) {
        bind_pending(s->ins_record, 0, &s->batch[i]);
        int x = sqlite3_step(s->ins_record);
        sqlite3_reset(s->ins_record);
        if (x != SQLITE_DONE)
            return db_fail(s, PENLINK_ERR_IO, "store record");
    }
    return PENLINK_OK;
}

static int sq_commit(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int rc = flush(s);
    s->savepoint = 0;
    return rc == PENLINK_OK ? exec(s, "COMMIT", "commit") : rc;
}

static int sq_rollback(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    s->pending = 0; /* they were never written */
    s->savepoint = 0;
    return exec(s, "ROLLBACK", "rollback");
}

/* One savepoint at a time: the newest mark replaces the one before. */
static int sq_savepoint(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int rc = flush(s);
    if (rc == PENLINK_OK && s->savepoint)
        rc = exec(s, "RELEASE kept", "release savepoint");
    if (rc == PENLINK_OK)
        rc = exec(s, "SAVEPOINT kept", "savepoint");
    s->savepoint = rc == PENLINK_OK;
    return rc;
}

static int sq_rollback_to_savepoint(archive_backend *b)
{
    sqlite_backend *s = (sqlite_backend *)b;
    s->pending = 0; /* they were never written */
    if (!s->savepoint) {
        int rc = exec(s, "ROLLBACK", "rollback");
        return rc == PENLINK_OK ? exec(s, "BEGIN IMMEDIATE", "begin") : rc;
    }
    return exec(s, "ROLLBACK TO kept", "rollback to savepoint");
}

static int step_done(sqlite_backend *s, sqlite3_stmt *st, const char *what)
{
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        return db_fail(s, PENLINK_ERR_IO, what);
    return PENLINK_OK;
}

static int sq_device(archive_backend *b, const penlink_info *info, int64_t now, int64_t *id)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "INSERT INTO devices (serial, model, hardware_revision, first_seen_ms, "
                  "last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (serial) DO UPDATE SET "
                  "model = ?2, hardware_revision = ?3, last_seen_ms = ?4 RETURNING id");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, info->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, info->model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, info->hardware_revision, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = db_fail(s, PENLINK_ERR_IO, "device");
        sqlite3_finalize(st);
        return rc;
    }
    *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    rc = prep(s, &st,
              "INSERT INTO device_firmware VALUES (?1, ?2, ?3, ?3) ON CONFLICT DO UPDATE SET "
              "last_seen_ms = ?3");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, *id);
    sqlite3_bind_text(st, 2, info->firmware_version, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now);
    rc = step_done(s, st, "device firmware");
    sqlite3_finalize(st);
    return rc;
}

static int sq_next_seq(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = prep(s, &st, "SELECT max(seq) FROM records WHERE device_id = ?1");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = db_fail(s, PENLINK_ERR_IO, "last seq");
    } else if (sqlite3_column_type(st, 0) == SQLITE_NULL) {
        *have = 0;
        *next = 0;
    } else {
        *have = 1;
        *next = (uint64_t)sqlite3_column_int64(st, 0) + 1;
    }
    sqlite3_finalize(st);
    return rc;
}

static int sq_pull_begin(archive_backend *b, int64_t device, uint64_t from, int64_t now,
                         int64_t *pull)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    char host[256] = "", user[64] = "";
    struct passwd *pw = getpwuid(geteuid());
    gethostname(host, sizeof host - 1);
    snprintf(user, sizeof user, "%s", pw && pw->pw_name ? pw->pw_name : "");
    int rc = prep(s, &st,
                  "INSERT INTO pulls (device_id, started_ms, host, os_user, penlink_version, "
                  "from_seq, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'running') RETURNING id");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, host, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, user, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, penlink_version(), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, (int64_t)from);
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = db_fail(s, PENLINK_ERR_IO, "pull");
    else
        *pull = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

static int sq_pull_end(archive_backend *b, int64_t pull, const penlink_archive_pull_result *r,
                       const char *result, const char *message, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "UPDATE pulls SET finished_ms = ?2, next_seq = ?3, records_new = ?4, "
                  "records_dup = ?5, conflicts = ?6, gap = ?7, result = ?8, message = ?9 "
                  "WHERE id = ?1");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, pull);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, (int64_t)r->next_seq);
    sqlite3_bind_int64(st, 4, (int64_t)r->records_new);
    sqlite3_bind_int64(st, 5, (int64_t)r->records_dup);
    sqlite3_bind_int64(st, 6, (int64_t)r->conflicts);
    sqlite3_bind_int64(st, 7, (int64_t)r->gap);
    sqlite3_bind_text(st, 8, result, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 9, message, -1, SQLITE_TRANSIENT);
    rc = step_done(s, st, "pull end");
    sqlite3_finalize(st);
    return rc;
}

static int sq_chunk(archive_backend *b, int64_t device, int64_t pull, const penlink_chunk *c,
                    int64_t now, int64_t *chunk)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = s->find_chunk;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, (int64_t)c->first_seq);
    sqlite3_bind_int64(st, 3, c->record_count);
    sqlite3_bind_blob(st, 4, c->data, (int)c->len, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_ROW) {
        *chunk = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        return PENLINK_OK;
    }
    sqlite3_reset(st);
    if (r != SQLITE_DONE)
        return db_fail(s, PENLINK_ERR_IO, "find chunk");
    st = s->ins_chunk;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, pull);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, (int64_t)c->first_seq);
    sqlite3_bind_int64(st, 5, c->record_count);
    sqlite3_bind_int64(st, 6, c->raw_size);
    sqlite3_bind_blob(st, 7, c->data, (int)c->len, SQLITE_STATIC);
    if (c->has_link) {
        sqlite3_bind_blob(st, 8, c->prev_link, 32, SQLITE_STATIC);
        sqlite3_bind_blob(st, 9, c->link, 32, SQLITE_STATIC);
    } else {
        sqlite3_bind_null(st, 8);
        sqlite3_bind_null(st, 9);
    }
    if (sqlite3_step(st) != SQLITE_DONE) {
        sqlite3_reset(st);
        return db_fail(s, PENLINK_ERR_IO, "store chunk");
    }
    sqlite3_reset(st);
    *chunk = sqlite3_last_insert_rowid(s->db);
    return PENLINK_OK;
}

/* Reads a record (seq, body) back, as hostile input: returns 0, or -1 when
 * it cannot be a record. */
static int value_record(sqlite3_value *seq, sqlite3_value *body, penlink_record *r)
{
    if (sqlite3_value_type(seq) != SQLITE_INTEGER || sqlite3_value_type(body) != SQLITE_BLOB)
        return -1;
    const void *p = sqlite3_value_blob(body);
    int len = sqlite3_value_bytes(body);
    if (!p || len <= 0 || len > ARCHIVE_BODY_MAX)
        return -1;
    r->seq = (uint64_t)sqlite3_value_int64(seq);
    return archive_body_unpack(p, (size_t)len, r);
}

#define RECORD_COLS "seq, body"

static int sq_pin_key(archive_backend *b, int64_t device, const uint8_t *key, int *outcome)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st, "SELECT public_key FROM devices WHERE id = ?1");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    int x = sqlite3_step(st);
    const void *old = x == SQLITE_ROW ? sqlite3_column_blob(st, 0) : NULL;
    int len = x == SQLITE_ROW ? sqlite3_column_bytes(st, 0) : 0;
    if (x != SQLITE_ROW) {
        rc = db_fail(s, PENLINK_ERR_IO, "device key");
    } else if (old) {
        *outcome = key && len == 32 && memcmp(old, key, 32) == 0 ? KEY_SAME : KEY_CHANGED;
    } else if (!key) {
        *outcome = KEY_NONE;
    } else {
        *outcome = KEY_PINNED;
    }
    sqlite3_finalize(st);
    if (rc != PENLINK_OK || *outcome != KEY_PINNED)
        return rc;
    rc = prep(s, &st, "UPDATE devices SET public_key = ?2 WHERE id = ?1 AND public_key IS NULL");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_blob(st, 2, key, 32, SQLITE_STATIC);
    rc = step_done(s, st, "pin device key");
    sqlite3_finalize(st);
    return rc;
}

static int sq_head(archive_backend *b, int64_t device, int64_t pull, const penlink_head *h,
                   int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "INSERT INTO heads (device_id, pull_id, at_ms, next_seq, link, signature) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, pull);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, (int64_t)h->next_seq);
    sqlite3_bind_blob(st, 5, h->link, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, h->signature, 64, SQLITE_STATIC);
    rc = step_done(s, st, "signed head");
    sqlite3_finalize(st);
    return rc;
}

static int sq_record(archive_backend *b, int64_t device, int64_t chunk, const penlink_record *r,
                     int fresh, int *outcome)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = s->get_record;
    int x = SQLITE_DONE;
    if (!fresh) {
        int rc = flush(s);
        if (rc != PENLINK_OK)
            return rc;
        sqlite3_bind_int64(st, 1, device);
        sqlite3_bind_int64(st, 2, (int64_t)r->seq);
        x = sqlite3_step(st);
    }
    if (x == SQLITE_ROW) {
        penlink_record old;
        int bad = value_record(sqlite3_column_value(st, 0), sqlite3_column_value(st, 1), &old);
        sqlite3_reset(st);
        if (bad)
            return penlink_fail(b->ctx, PENLINK_ERR_INTEGRITY,
                                "archive %s: the archived record %llu is damaged", s->path,
                                (unsigned long long)r->seq);
        int same = old.time_ms == r->time_ms && old.kind == r->kind && old.fields == r->fields;
        for (int k = 0; same && k < PENLINK_FIELD_COUNT; k++)
            if (r->fields & (1u << k))
                same = penlink_record_field(&old, 1u << k) == penlink_record_field(r, 1u << k);
        *outcome = same ? REC_SAME : REC_CONFLICT;
        return PENLINK_OK;
    }
    sqlite3_reset(st);
    if (x != SQLITE_DONE)
        return db_fail(s, PENLINK_ERR_IO, "read record");
    struct pending_record *p = &s->batch[s->pending++];
    p->device = device;
    p->seq = (int64_t)r->seq;
    p->chunk = chunk;
    p->len = archive_body_pack(r, p->body);
    *outcome = REC_NEW;
    return s->pending == INSERT_BATCH ? flush(s) : PENLINK_OK;
}

static int sq_alarm(archive_backend *b, int64_t device, int64_t pull, const char *kind,
                    uint64_t seq, uint64_t count, const char *detail, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "INSERT INTO alarms (device_id, pull_id, at_ms, kind, seq, count, detail) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, pull);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_text(st, 4, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (int64_t)seq);
    sqlite3_bind_int64(st, 6, (int64_t)count);
    sqlite3_bind_text(st, 7, detail, -1, SQLITE_TRANSIENT);
    rc = step_done(s, st, "alarm");
    sqlite3_finalize(st);
    return rc;
}

static void bind_filter(sqlite3_stmt *st, const penlink_archive_filter *f)
{
    if (f && f->serial)
        sqlite3_bind_text(st, 1, f->serial, -1, SQLITE_STATIC);
    if (f && f->has_since)
        sqlite3_bind_int64(st, 2, f->since_ms);
    if (f && f->has_until)
        sqlite3_bind_int64(st, 3, f->until_ms);
}

/* The scan hands each row to C from inside SQLite's own loop: the query
 * calls penlink_scan_row(device_id, seq, body) in its WHERE clause, which
 * decodes the record and calls the visitor, and answers false so that no
 * row is returned. Returning a million rows one sqlite3_step() at a time
 * costs more than the scan itself. The query starts at the pen's first row
 * (device_id >= ?1) and the sink answers true at the first row of another
 * pen, which LIMIT 1 turns into the end of the scan: no end-of-range
 * comparison per row. A WITHOUT ROWID table is stored in key order, so a
 * pen's rows arrive in seq order; the sink checks that anyway. */
typedef struct scan_state {
    sqlite_backend *s;
    const penlink_archive_filter *f;
    penlink_archive_record_cb cb;
    void *user;
    const char *serial;
    char serial_buf[2][64]; /* consecutive pens alternate: a pen's records share one pointer */
    int64_t device;
    uint64_t last_seq;
    int started, rc;
} scan_state;

static void sql_scan_row(sqlite3_context *cx, int argc, sqlite3_value **argv)
{
    scan_state *sc = sqlite3_user_data(cx);
    penlink_record r; /* the result stays NULL, false to WHERE, unless set below */
    if (argc != 3 || !sc || sc->rc != PENLINK_OK)
        return;
    if (sqlite3_value_int64(argv[0]) != sc->device) {
        sqlite3_result_int(cx, 1); /* the next pen's first row: the end */
        return;
    }
    if (value_record(argv[1], argv[2], &r) != 0 || (sc->started && r.seq <= sc->last_seq)) {
        sc->rc = penlink_fail(sc->s->base.ctx, PENLINK_ERR_INTEGRITY,
                              "archive %s: a damaged record row (pen %s)", sc->s->path, sc->serial);
        sqlite3_result_error(cx, "damaged record", -1);
        return;
    }
    sc->started = 1;
    sc->last_seq = r.seq;
    if ((sc->f && sc->f->has_since && r.time_ms < sc->f->since_ms) ||
        (sc->f && sc->f->has_until && r.time_ms >= sc->f->until_ms))
        return;
    if (sc->cb(sc->user, sc->serial, &r) != 0) {
        sc->rc = PENLINK_ERR_CANCELLED;
        sqlite3_result_error(cx, "cancelled", -1);
    }
}

/* Pen by pen in serial order, each pen's records in seq order. */
static int sq_scan(archive_backend *b, const penlink_archive_filter *f,
                   penlink_archive_record_cb cb, void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    scan_state sc = { .s = s, .f = f, .cb = cb, .user = user, .rc = PENLINK_OK };
    unsigned npens = 0;
    sqlite3_stmt *pens = NULL, *st = NULL;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = prep(s, &pens,
                  "SELECT id, serial FROM devices WHERE ?1 IS NULL OR serial = ?1 ORDER BY serial");
    if (rc == PENLINK_OK &&
        sqlite3_create_function(s->db, "penlink_scan_row", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY, &sc,
                                sql_scan_row, NULL, NULL) != SQLITE_OK)
        rc = db_fail(s, PENLINK_ERR_IO, "scan");
    if (rc == PENLINK_OK)
        rc = prep(s, &st,
                  "SELECT 1 FROM records WHERE device_id >= ?1 AND "
                  "penlink_scan_row(device_id, seq, body) ORDER BY device_id, seq LIMIT 1");
    if (rc) {
        sqlite3_finalize(pens);
        return rc;
    }
    if (f && f->serial)
        sqlite3_bind_text(pens, 1, f->serial, -1, SQLITE_STATIC);
    int px;
    for (px = sqlite3_step(pens); rc == PENLINK_OK && px == SQLITE_ROW; px = sqlite3_step(pens)) {
        const char *ser = (const char *)sqlite3_column_text(pens, 1);
        char *buf = sc.serial_buf[npens++ & 1];
        snprintf(buf, sizeof sc.serial_buf[0], "%s", ser ? ser : "?");
        sc.serial = buf;
        sc.started = 0;
        sc.device = sqlite3_column_int64(pens, 0);
        sqlite3_bind_int64(st, 1, sc.device);
        int x = sqlite3_step(st);
        sqlite3_reset(st);
        if (sc.rc != PENLINK_OK)
            rc = sc.rc;
        else if (x != SQLITE_DONE && x != SQLITE_ROW)
            rc = db_fail(s, PENLINK_ERR_IO, "scan");
    }
    if (rc == PENLINK_OK && px != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "scan");
    sqlite3_finalize(st);
    sqlite3_finalize(pens);
    /* the statement that used it is gone: unregister the function and its pointer to sc */
    sqlite3_create_function(s->db, "penlink_scan_row", 3, SQLITE_UTF8, NULL, NULL, NULL, NULL);
    return rc;
}

static void copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static int sq_alarms(archive_backend *b, const penlink_archive_filter *f,
                     int (*cb)(void *user, const penlink_alarm *a), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "SELECT d.serial, a.at_ms, a.seq, a.count, a.kind, a.detail FROM alarms a "
                  "JOIN devices d ON d.id = a.device_id WHERE (?1 IS NULL OR d.serial = ?1) "
                  "ORDER BY d.serial, a.seq, a.id");
    if (rc)
        return rc;
    bind_filter(st, f);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_alarm a;
        memset(&a, 0, sizeof a);
        copy_col(a.serial, sizeof a.serial, st, 0);
        a.at_ms = sqlite3_column_int64(st, 1);
        a.seq = (uint64_t)sqlite3_column_int64(st, 2);
        a.count = (uint64_t)sqlite3_column_int64(st, 3);
        copy_col(a.kind, sizeof a.kind, st, 4);
        copy_col(a.detail, sizeof a.detail, st, 5);
        if (cb(user, &a) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "alarms");
    sqlite3_finalize(st);
    return rc;
}

static int sq_config_log(archive_backend *b, const char *serial, const char *source,
                         const char *user, const char *host, const penlink_config *old_cfg,
                         const penlink_config *new_cfg, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    char oldj[1024], newj[1024];
    archive_config_text(new_cfg, newj, sizeof newj);
    if (old_cfg)
        archive_config_text(old_cfg, oldj, sizeof oldj);
    int rc = prep(s, &st,
                  "INSERT INTO config_history (device_id, at_ms, source, os_user, host, revision, "
                  "old_json, new_json) SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM devices WHERE "
                  "serial = ?1");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, source, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, host, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, new_cfg->revision);
    if (old_cfg)
        sqlite3_bind_text(st, 7, oldj, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 8, newj, -1, SQLITE_TRANSIENT);
    rc = step_done(s, st, "config history");
    sqlite3_finalize(st);
    return rc;
}

static int sq_config_history(archive_backend *b, const char *serial,
                             int (*cb)(void *user, const penlink_config_entry *e), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "SELECT d.serial, h.at_ms, h.source, h.os_user, h.host, h.new_json FROM "
                  "config_history h JOIN devices d ON d.id = h.device_id WHERE (?1 IS NULL OR "
                  "d.serial = ?1) ORDER BY h.id");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_config_entry e;
        memset(&e, 0, sizeof e);
        copy_col(e.serial, sizeof e.serial, st, 0);
        e.at_ms = sqlite3_column_int64(st, 1);
        copy_col(e.source, sizeof e.source, st, 2);
        copy_col(e.user, sizeof e.user, st, 3);
        copy_col(e.host, sizeof e.host, st, 4);
        const unsigned char *j = sqlite3_column_text(st, 5);
        archive_config_parse(j ? (const char *)j : "", &e.config);
        if (cb(user, &e) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "config history");
    sqlite3_finalize(st);
    return rc;
}

static int sq_devices(archive_backend *b, int (*cb)(void *user, const penlink_archive_device *d),
                      void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = prep(s, &st,
                  "SELECT d.serial, d.model, d.first_seen_ms, d.last_seen_ms, (SELECT "
                  "group_concat(firmware_version, ', ') FROM device_firmware f WHERE f.device_id "
                  "= d.id), (SELECT count(*) FROM records r WHERE r.device_id = d.id), (SELECT "
                  "max(seq) + 1 FROM records r WHERE r.device_id = d.id) FROM devices d ORDER BY "
                  "d.serial");
    if (rc)
        return rc;
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_archive_device d;
        memset(&d, 0, sizeof d);
        copy_col(d.serial, sizeof d.serial, st, 0);
        copy_col(d.model, sizeof d.model, st, 1);
        d.first_seen_ms = sqlite3_column_int64(st, 2);
        d.last_seen_ms = sqlite3_column_int64(st, 3);
        copy_col(d.firmware_versions, sizeof d.firmware_versions, st, 4);
        d.records = (uint64_t)sqlite3_column_int64(st, 5);
        d.next_seq = (uint64_t)sqlite3_column_int64(st, 6);
        if (cb(user, &d) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "devices");
    sqlite3_finalize(st);
    return rc;
}

/* ---- verification ------------------------------------------------------- */

static const uint8_t *blob32(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_BLOB && sqlite3_column_bytes(st, col) == 32
               ? sqlite3_column_blob(st, col)
               : NULL;
}

static int sq_pens(archive_backend *b, const char *serial,
                   int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                             uint64_t first_from),
                   void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = prep(s, &st,
                  "SELECT id, serial, public_key, (SELECT min(from_seq) FROM pulls p WHERE "
                  "p.device_id = d.id) FROM devices d WHERE ?1 IS NULL OR serial = ?1 ORDER BY "
                  "serial");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        const char *ser = (const char *)sqlite3_column_text(st, 1);
        if (cb(user, sqlite3_column_int64(st, 0), ser ? ser : "?", blob32(st, 2),
               (uint64_t)sqlite3_column_int64(st, 3)) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "pens");
    sqlite3_finalize(st);
    return rc;
}

static int sq_chunks(archive_backend *b, int64_t device,
                     int (*cb)(void *user, const archive_chunk_row *c), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "SELECT id, first_seq, record_count, raw_size, data, prev_link, link FROM "
                  "chunks WHERE device_id = ?1 ORDER BY first_seq, id");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        archive_chunk_row c;
        int64_t first = sqlite3_column_int64(st, 1), count = sqlite3_column_int64(st, 2),
                raw = sqlite3_column_int64(st, 3);
        c.id = sqlite3_column_int64(st, 0);
        c.data = sqlite3_column_blob(st, 4);
        c.len = (size_t)sqlite3_column_bytes(st, 4);
        c.prev_link = blob32(st, 5);
        c.link = blob32(st, 6);
        if (first < 0 || count < 0 || count > PL_CHUNK_MAX_RECORDS || raw < 0 || raw > UINT32_MAX ||
            !c.data) {
            rc = damaged(s, "chunks", "a chunk row with impossible values");
            break;
        }
        c.first_seq = (uint64_t)first;
        c.record_count = (uint32_t)count;
        c.raw_size = (uint32_t)raw;
        if (cb(user, &c) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "chunks");
    sqlite3_finalize(st);
    return rc;
}

static int sq_records(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
                      int (*cb)(void *user, const penlink_record *r), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = s->range;
    int frc = flush(s);
    if (frc != PENLINK_OK)
        return frc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, (int64_t)first);
    sqlite3_bind_int64(st, 3, (int64_t)end);
    int rc = PENLINK_OK, x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_record r;
        if (value_record(sqlite3_column_value(st, 0), sqlite3_column_value(st, 1), &r) != 0) {
            rc = penlink_fail(b->ctx, PENLINK_ERR_INTEGRITY,
                              "archive %s: a damaged record row (seq %lld)", s->path,
                              (long long)sqlite3_column_int64(st, 0));
            break;
        }
        if (cb(user, &r) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "records");
    sqlite3_reset(st);
    return rc;
}

static int sq_record_count(archive_backend *b, int64_t device, uint64_t *n)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = flush(s);
    if (rc == PENLINK_OK)
        rc = prep(s, &st, "SELECT count(*) FROM records WHERE device_id = ?1");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    if (sqlite3_step(st) == SQLITE_ROW)
        *n = (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = db_fail(s, PENLINK_ERR_IO, "count records");
    sqlite3_finalize(st);
    return rc;
}

static int sq_heads(archive_backend *b, int64_t device,
                    int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
                              const uint8_t *sig, size_t sig_len),
                    void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "SELECT next_seq, link, signature FROM heads WHERE device_id = ?1 ORDER BY id");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        if (cb(user, (uint64_t)sqlite3_column_int64(st, 0), sqlite3_column_blob(st, 1),
               (size_t)sqlite3_column_bytes(st, 1), sqlite3_column_blob(st, 2),
               (size_t)sqlite3_column_bytes(st, 2)) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "heads");
    sqlite3_finalize(st);
    return rc;
}

static const char *const verify_result[] = { "ok", "broken", "unsigned" };

static int sq_verification_log(archive_backend *b, int64_t device, const penlink_verify_report *r,
                               int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "INSERT INTO verifications (device_id, at_ms, result, through_seq, records, "
                  "chunks, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, verify_result[r->state], -1, SQLITE_STATIC);
    sqlite3_bind_int64(
        st, 4, (int64_t)(r->state == PENLINK_VERIFY_BROKEN ? r->where_seq : r->signed_through));
    sqlite3_bind_int64(st, 5, (int64_t)r->records);
    sqlite3_bind_int64(st, 6, (int64_t)r->chunks);
    sqlite3_bind_text(st, 7, r->state == PENLINK_VERIFY_BROKEN ? r->detail : r->notes, -1,
                      SQLITE_TRANSIENT);
    rc = step_done(s, st, "verification");
    sqlite3_finalize(st);
    return rc;
}

static int sq_verification_last(archive_backend *b, const char *serial, penlink_verification *out)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    snprintf(out->serial, sizeof out->serial, "%s", serial);
    int rc = prep(s, &st,
                  "SELECT d.public_key IS NOT NULL, (SELECT max(next_seq) FROM heads h WHERE "
                  "h.device_id = d.id), v.at_ms, v.result, v.through_seq, v.records, v.chunks, "
                  "v.detail FROM devices d LEFT JOIN verifications v ON v.id = (SELECT max(id) "
                  "FROM verifications WHERE device_id = d.id) WHERE d.serial = ?1");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x = sqlite3_step(st);
    if (x == SQLITE_ROW) {
        out->pinned = sqlite3_column_int(st, 0);
        out->signed_through = (uint64_t)sqlite3_column_int64(st, 1);
        out->have = sqlite3_column_type(st, 2) != SQLITE_NULL;
        out->at_ms = sqlite3_column_int64(st, 2);
        copy_col(out->result, sizeof out->result, st, 3);
        out->through_seq = (uint64_t)sqlite3_column_int64(st, 4);
        out->records = (uint64_t)sqlite3_column_int64(st, 5);
        out->chunks = (uint64_t)sqlite3_column_int64(st, 6);
        copy_col(out->detail, sizeof out->detail, st, 7);
    } else if (x == SQLITE_DONE) {
        rc = penlink_fail(b->ctx, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", serial);
    } else {
        rc = db_fail(s, PENLINK_ERR_IO, "verification");
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- replaced device keys ------------------------------------------------ */

static int sq_key_replace(archive_backend *b, const penlink_key_replacement *r)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st,
                  "INSERT INTO key_replacements (device_id, at_ms, os_user, host, reason, "
                  "old_key, new_key, from_seq, heads_before) SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, "
                  "?8, ?9 FROM devices WHERE serial = ?1");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, r->serial, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, r->at_ms);
    sqlite3_bind_text(st, 3, r->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, r->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, r->reason, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, r->old_key, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, r->new_key, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (int64_t)r->from_seq);
    sqlite3_bind_int64(st, 9, (int64_t)r->heads_before);
    rc = step_done(s, st, "key replacement");
    if (rc == PENLINK_OK && sqlite3_changes(s->db) != 1)
        rc = penlink_fail(b->ctx, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", r->serial);
    sqlite3_finalize(st);
    return rc;
}

static int sq_key_replacements(archive_backend *b, const char *serial,
                               int (*cb)(void *user, const penlink_key_replacement *r), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    /* an archive of an older schema read as it is (not migrated) has none */
    if (sqlite3_table_column_metadata(s->db, NULL, "key_replacements", NULL, NULL, NULL, NULL, NULL,
                                      NULL) != SQLITE_OK)
        return PENLINK_OK;
    int rc = prep(s, &st,
                  "SELECT d.serial, k.at_ms, k.os_user, k.host, k.reason, k.old_key, k.new_key, "
                  "k.from_seq, k.heads_before FROM key_replacements k JOIN devices d ON d.id = "
                  "k.device_id WHERE ?1 IS NULL OR d.serial = ?1 ORDER BY k.id");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_key_replacement r;
        memset(&r, 0, sizeof r);
        const uint8_t *old = blob32(st, 5), *new_key = blob32(st, 6);
        if (!old || !new_key) {
            rc = damaged(s, "key replacements", "a row whose keys are not 32 bytes");
            break;
        }
        copy_col(r.serial, sizeof r.serial, st, 0);
        r.at_ms = sqlite3_column_int64(st, 1);
        copy_col(r.user, sizeof r.user, st, 2);
        copy_col(r.host, sizeof r.host, st, 3);
        copy_col(r.reason, sizeof r.reason, st, 4);
        memcpy(r.old_key, old, 32);
        memcpy(r.new_key, new_key, 32);
        r.from_seq = (uint64_t)sqlite3_column_int64(st, 7);
        r.heads_before = (uint64_t)sqlite3_column_int64(st, 8);
        if (cb(user, &r) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = db_fail(s, PENLINK_ERR_IO, "key replacements");
    sqlite3_finalize(st);
    return rc;
}

static const archive_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .savepoint = sq_savepoint,
    .rollback_to_savepoint = sq_rollback_to_savepoint,
    .device = sq_device,
    .next_seq = sq_next_seq,
    .pull_begin = sq_pull_begin,
    .pull_end = sq_pull_end,
    .chunk = sq_chunk,
    .record = sq_record,
    .alarm = sq_alarm,
    .pin_key = sq_pin_key,
    .head = sq_head,
    .scan = sq_scan,
    .alarms = sq_alarms,
    .config_log = sq_config_log,
    .config_history = sq_config_history,
    .devices = sq_devices,
    .pens = sq_pens,
    .chunks = sq_chunks,
    .records = sq_records,
    .record_count = sq_record_count,
    .heads = sq_heads,
    .verification_log = sq_verification_log,
    .verification_last = sq_verification_last,
    .key_replace = sq_key_replace,
    .key_replacements = sq_key_replacements,
};

static int schema_version(sqlite_backend *s, int *version)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, &st, "PRAGMA user_version");
    if (rc)
        return rc;
    *version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return *version < 0 ? db_fail(s, PENLINK_ERR_IO, "schema version") : PENLINK_OK;
}

static int migrate(sqlite_backend *s)
{
    int version;
    int rc = schema_version(s, &version);
    if (rc == PENLINK_OK && version < SCHEMA_VERSION) {
        /* read it again under the write lock: another penlink may have just migrated */
        rc = exec_patient(s, "BEGIN IMMEDIATE", "migrate");
        if (rc == PENLINK_OK)
            rc = schema_version(s, &version);
        for (int v = version; rc == PENLINK_OK && v < SCHEMA_VERSION; v++) {
            char pragma[40];
            snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
            rc = exec(s, migrations[v], "migrate");
            if (rc != PENLINK_OK && s->bad_row)
                rc = damaged(s, "migrate", sqlite3_errmsg(s->db));
            if (rc == PENLINK_OK)
                rc = exec(s, pragma, "migrate");
        }
        if (rc == PENLINK_OK)
            return exec(s, "COMMIT", "migrate");
        exec(s, "ROLLBACK", "rollback");
        return rc;
    }
    if (rc == PENLINK_OK && version > SCHEMA_VERSION)
        return penlink_fail(s->base.ctx, PENLINK_ERR_UNSUPPORTED,
                            "archive %s has schema version %d, newer than this penlink's %d: "
                            "update penlink (the archive was left untouched)",
                            s->path, version, SCHEMA_VERSION);
    return rc;
}

int archive_sqlite_open(penlink_ctx *ctx, const char *path, archive_backend **out)
{
    sqlite_backend *s = calloc(1, sizeof *s);
    if (!s)
        return PENLINK_ERR_NO_MEM;
    s->base.ops = &sqlite_ops;
    s->base.ctx = ctx;
    snprintf(s->path, sizeof s->path, "%s", path);
    int rc = PENLINK_OK;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = db_fail(s, PENLINK_ERR_IO, "open");
        goto fail;
    }
    sqlite3_busy_timeout(s->db, 10000); /* a second penlink on the same archive waits */
    sqlite3_extended_result_codes(s->db, 0);
    /* Big pages for a new file (records are small and many), WAL, synced
     * commits, a generous cache; then a quick structural check. References
     * are declared in the schema; the pull writes them in order itself, so
     * SQLite is not asked to check them on every record. */
    static const char *const setup[] = {
        "PRAGMA page_size = 16384",
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA cache_size = -65536",
    };
    for (size_t i = 0; i < sizeof setup / sizeof setup[0]; i++) {
        rc = exec_patient(s, setup[i], "open");
        if (rc != PENLINK_OK)
            goto fail;
    }
    sqlite3_stmt *st = NULL;
    rc = prep(s, &st, "PRAGMA quick_check");
    if (rc != PENLINK_OK)
        goto fail;
    int x = sqlite3_step(st);
    const unsigned char *ok = x == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    int healthy = ok && strcmp((const char *)ok, "ok") == 0;
    char first[200] = "";
    if (!healthy && ok)
        snprintf(first, sizeof first, "%s", ok);
    sqlite3_finalize(st);
    if (!healthy) {
        if (x != SQLITE_ROW) {
            rc = db_fail(s, PENLINK_ERR_INTEGRITY, "check");
        } else {
            rc = damaged(s, "check", first);
        }
        goto fail;
    }
    if (sqlite3_create_function(s->db, "penlink_pack_v1", 3 + PENLINK_FIELD_COUNT,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, s,
                                sql_pack_v1, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(s, PENLINK_ERR_IO, "open");
        goto fail;
    }
    rc = migrate(s);
    if (rc != PENLINK_OK)
        goto fail;
    const struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        { &s->ins_record,
          "INSERT INTO records (device_id, " RECORD_COLS ", chunk_id) VALUES (?1, ?2, ?3, ?4)" },
        { &s->get_record, "SELECT " RECORD_COLS " FROM records WHERE device_id = ?1 AND seq = ?2" },
        { &s->range, "SELECT " RECORD_COLS " FROM records WHERE device_id = ?1 AND seq >= ?2 AND "
                     "seq < ?3 ORDER BY seq" },
        { &s->ins_chunk,
          "INSERT INTO chunks (device_id, pull_id, received_ms, first_seq, record_count, "
          "raw_size, data, prev_link, link) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)" },
        { &s->find_chunk, "SELECT id FROM chunks WHERE device_id = ?1 AND first_seq = ?2 AND "
                          "record_count = ?3 AND data = ?4" },
    };
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++) {
        rc = prep(s, stmts[i].st, stmts[i].sql);
        if (rc != PENLINK_OK)
            goto fail;
    }
    char batch[64 + INSERT_BATCH * 16] =
        "INSERT INTO records (device_id, " RECORD_COLS ", chunk_id) VALUES (?, ?, ?, ?)";
    for (int i = 1; i < INSERT_BATCH; i++)
        strcat(batch, ", (?, ?, ?, ?)");
    rc = prep(s, &s->ins_batch, batch);
    if (rc != PENLINK_OK)
        goto fail;
    *out = &s->base;
    return PENLINK_OK;
fail:
    sq_close(&s->base);
    return rc;
}
