/*
 * The SQLite archive backend's writes of a pull: the pen's row, the pull's
 * begin and end, its chunks, records, signed heads and alarms, and the
 * pen's pinned key.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>
#include <pwd.h>
#include <unistd.h>

#include "archive_sqlite.h"
#include "pl/auth.h"
#include "pl/chunk.h"
#include "pl/record.h"

int sq_step_done(sqlite_backend *s, sqlite3_stmt *st, const char *what)
{
    int r = sqlite3_step(st);
    sqlite3_reset(st);
    if (r != SQLITE_DONE && r != SQLITE_ROW)
        return sq_db_fail(s, PENLINK_ERR_IO, what);
    return PENLINK_OK;
}

int sq_device(archive_backend *b, const penlink_info *info, int64_t now, int64_t *id)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "INSERT INTO devices (serial, model, hardware_revision, first_seen_ms, "
                     "last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (serial) DO UPDATE SET "
                     "model = iif(?4 >= last_seen_ms, ?2, model), hardware_revision = "
                     "iif(?4 >= last_seen_ms, ?3, hardware_revision), first_seen_ms = "
                     "min(first_seen_ms, ?4), last_seen_ms = max(last_seen_ms, ?4) RETURNING id");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, info->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, info->model, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, info->hardware_revision, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 4, now);
    if (sqlite3_step(st) != SQLITE_ROW) {
        rc = sq_db_fail(s, PENLINK_ERR_IO, "device");
        sqlite3_finalize(st);
        return rc;
    }
    *id = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    rc = sq_prep(s, &st,
                 "INSERT INTO device_firmware VALUES (?1, ?2, ?3, ?3) ON CONFLICT DO UPDATE SET "
                 "first_seen_ms = min(first_seen_ms, ?3), last_seen_ms = max(last_seen_ms, ?3)");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, *id);
    sqlite3_bind_text(st, 2, info->firmware_version, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, now);
    rc = sq_step_done(s, st, "device firmware");
    sqlite3_finalize(st);
    return rc;
}

int sq_next_seq(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int64_t max = 0;
    int null = 1;
    int rc = sq_flush(s);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s, "SELECT max(seq) FROM records WHERE device_id = ?1", &device,
                         "last seq", 1, &max, &null);
    if (rc == PENLINK_OK) {
        *have = !null;
        *next = null ? 0 : (uint64_t)max + 1;
    }
    return rc;
}

int sq_pull_begin(archive_backend *b, int64_t device, uint64_t from, int64_t now, int64_t *pull)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    char host[256] = "", user[64] = "";
    struct passwd *pw = getpwuid(geteuid());
    gethostname(host, sizeof host - 1);
    snprintf(user, sizeof user, "%s", pw && pw->pw_name ? pw->pw_name : "");
    int rc = sq_prep(s, &st,
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
    s->pulling = 1; /* a failure from here on is this pull's */
    if (sqlite3_step(st) != SQLITE_ROW)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "pull");
    else
        *pull = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

int sq_pull_end(archive_backend *b, int64_t pull, const penlink_archive_pull_result *r,
                const char *result, const char *message, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
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
    rc = sq_step_done(s, st, "pull end");
    sqlite3_finalize(st);
    s->pulling = 0;
    return rc;
}

int sq_chunk(archive_backend *b, int64_t device, int64_t pull, const penlink_chunk *c, int64_t now,
             int64_t *chunk, int *stored)
{
    if (stored)
        *stored = 0;
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
        return sq_db_fail(s, PENLINK_ERR_IO, "find chunk");
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
        return sq_db_fail(s, PENLINK_ERR_IO, "store chunk");
    }
    sqlite3_reset(st);
    *chunk = sqlite3_last_insert_rowid(s->db);
    if (stored)
        *stored = 1;
    return PENLINK_OK;
}

/* Reads a record (seq, body) back, as hostile input: NULL, or why it cannot
 * be a record. */
const char *sq_value_record(sqlite3_value *seq, sqlite3_value *body, penlink_record *r)
{
    if (sqlite3_value_type(seq) != SQLITE_INTEGER)
        return "its seq is not an integer";
    if (sqlite3_value_int64(seq) < 0)
        return "its seq is at or above 2^63 (stored as a negative integer), which no pen logs";
    if (sqlite3_value_type(body) != SQLITE_BLOB)
        return "its body is not a packed record";
    const void *p = sqlite3_value_blob(body);
    int len = sqlite3_value_bytes(body);
    r->seq = (uint64_t)sqlite3_value_int64(seq);
    if (!p || len <= 0 || len > ARCHIVE_BODY_MAX || archive_body_unpack(p, (size_t)len, r) != 0)
        return "its body is not a packed record";
    return NULL;
}
int sq_pin_key(archive_backend *b, int64_t device, const uint8_t *key, int *outcome)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st, "SELECT public_key FROM devices WHERE id = ?1");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    int x = sqlite3_step(st);
    const void *old = x == SQLITE_ROW ? sqlite3_column_blob(st, 0) : NULL;
    int len = x == SQLITE_ROW ? sqlite3_column_bytes(st, 0) : 0;
    if (x != SQLITE_ROW) {
        rc = sq_db_fail(s, PENLINK_ERR_IO, "device key");
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
    rc = sq_prep(s, &st, "UPDATE devices SET public_key = ?2 WHERE id = ?1 AND public_key IS NULL");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_blob(st, 2, key, 32, SQLITE_STATIC);
    rc = sq_step_done(s, st, "pin device key");
    sqlite3_finalize(st);
    return rc;
}

int sq_head(archive_backend *b, int64_t device, int64_t pull, const penlink_head *h, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
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
    rc = sq_step_done(s, st, "signed head");
    sqlite3_finalize(st);
    return rc;
}

int sq_record(archive_backend *b, int64_t device, int64_t chunk, const penlink_record *r, int fresh,
              int *outcome)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = s->get_record;
    int x = SQLITE_DONE;
    if (!fresh) {
        int rc = sq_flush(s);
        if (rc != PENLINK_OK)
            return rc;
        sqlite3_bind_int64(st, 1, device);
        sqlite3_bind_int64(st, 2, (int64_t)r->seq);
        x = sqlite3_step(st);
    }
    if (x == SQLITE_ROW) {
        penlink_record old;
        const char *bad =
            sq_value_record(sqlite3_column_value(st, 0), sqlite3_column_value(st, 1), &old);
        sqlite3_reset(st);
        if (bad)
            return sq_fail(s, PENLINK_ERR_INTEGRITY,
                           "archive %s: the archived record %llu is damaged: %s", s->path,
                           (unsigned long long)r->seq, bad);
        *outcome = archive_record_same(&old, r) ? REC_SAME : REC_CONFLICT;
        return PENLINK_OK;
    }
    sqlite3_reset(st);
    if (x != SQLITE_DONE)
        return sq_db_fail(s, PENLINK_ERR_IO, "read record");
    struct pending_record *p = &s->batch[s->pending++];
    p->device = device;
    p->seq = (int64_t)r->seq;
    p->chunk = chunk;
    p->len = archive_body_pack(r, p->body);
    *outcome = REC_NEW;
    return s->pending == INSERT_BATCH ? sq_flush(s) : PENLINK_OK;
}

int sq_alarm(archive_backend *b, int64_t device, int64_t pull, const char *kind, uint64_t seq,
             uint64_t count, const char *detail, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
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
    rc = sq_step_done(s, st, "alarm");
    sqlite3_finalize(st);
    return rc;
}
