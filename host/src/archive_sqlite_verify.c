/*
 * The SQLite archive backend's operations for verification and audit: a
 * pen's chunks, records and signed heads read back for checking, the
 * verifications logged, replaced device keys and the auditors' annotations.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "archive_sqlite.h"
#include "pl/auth.h"
#include "pl/chunk.h"
#include "pl/record.h"

/* ---- verification ------------------------------------------------------- */

const uint8_t *sq_blob32(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_BLOB && sqlite3_column_bytes(st, col) == 32
               ? sqlite3_column_blob(st, col)
               : NULL;
}

int sq_pens(archive_backend *b, const char *serial,
            int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                      uint64_t first_from),
            void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_flush(s);
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &st,
                     "SELECT id, serial, public_key, (SELECT min(from_seq) FROM pulls p WHERE "
                     "p.device_id = d.id) FROM devices d WHERE ?1 IS NULL OR " SERIAL_IS(
                         "serial", "?1") " ORDER BY "
                                         "serial");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        const char *ser = (const char *)sqlite3_column_text(st, 1);
        if (cb(user, sqlite3_column_int64(st, 0), ser ? ser : "?", sq_blob32(st, 2),
               (uint64_t)sqlite3_column_int64(st, 3)) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "pens");
    sqlite3_finalize(st);
    return rc;
}

int sq_chunks(archive_backend *b, int64_t device, int (*cb)(void *user, const archive_chunk_row *c),
              void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "SELECT id, first_seq, record_count, raw_size, data, prev_link, link FROM "
                     "chunks WHERE device_id = ?1 ORDER BY first_seq, id");
    if (rc)
        return rc;
    sqlite3_bind_int64(st, 1, device);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        archive_chunk_row c;
        memset(&c, 0, sizeof c);
        int64_t first = sqlite3_column_int64(st, 1), count = sqlite3_column_int64(st, 2),
                raw = sqlite3_column_int64(st, 3);
        c.id = sqlite3_column_int64(st, 0);
        c.stored_seq = first;
        c.data = sqlite3_column_blob(st, 4);
        c.len = (size_t)sqlite3_column_bytes(st, 4);
        c.prev_link = sq_blob32(st, 5);
        c.link = sq_blob32(st, 6);
        if (sqlite3_column_type(st, 1) != SQLITE_INTEGER || first < 0)
            c.damage = "its first seq is at or above 2^63 (stored as a negative integer) or not "
                       "an integer: no pen logs such a seq";
        else if (count <= 0 || count > PL_CHUNK_MAX_RECORDS || raw < 0 || raw > UINT32_MAX ||
                 !c.data)
            c.damage = "its record count, size or data are impossible";
        if (!c.damage) {
            c.first_seq = (uint64_t)first;
            c.record_count = (uint32_t)count;
            c.raw_size = (uint32_t)raw;
        }
        if (cb(user, &c) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "chunks");
    sqlite3_finalize(st);
    return rc;
}

int sq_records(archive_backend *b, int64_t device, uint64_t first, uint64_t end,
               int (*cb)(void *user, const penlink_record *r), archive_damage_cb bad, void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = s->range;
    int frc = sq_flush(s);
    if (frc != PENLINK_OK)
        return frc;
    if (end <= first || first > (uint64_t)INT64_MAX)
        return PENLINK_OK; /* no seq a record row can hold */
    uint64_t last = end - 1 > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : end - 1;
    sqlite3_bind_int64(st, 1, device);
    sqlite3_bind_int64(st, 2, (int64_t)first);
    sqlite3_bind_int64(st, 3, (int64_t)last);
    int rc = PENLINK_OK, x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_record r;
        const char *why =
            sq_value_record(sqlite3_column_value(st, 0), sqlite3_column_value(st, 1), &r);
        if (why && bad) {
            archive_damage d = { NULL, "records", sqlite3_column_int64(st, 0), why };
            if (bad(user, &d) != 0) {
                rc = PENLINK_ERR_CANCELLED;
                break;
            }
            continue;
        }
        if (why) {
            rc = sq_fail(s, PENLINK_ERR_INTEGRITY, "archive %s: the record row of seq %lld: %s",
                         s->path, (long long)sqlite3_column_int64(st, 0), why);
            break;
        }
        if (cb(user, &r) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "records");
    sqlite3_reset(st);
    return rc;
}

int sq_record_count(archive_backend *b, int64_t device, uint64_t *n)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int64_t count = 0;
    int rc = sq_flush(s);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s, "SELECT count(*) FROM records WHERE device_id = ?1", &device,
                         "count records", 1, &count, NULL);
    if (rc == PENLINK_OK)
        *n = (uint64_t)count;
    return rc;
}

int sq_pulled_to(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int64_t max = 0;
    int null = 1;
    *next = 0;
    *have = 0;
    int rc = sq_flush(s);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s,
                         "SELECT max(next_seq) FROM pulls WHERE device_id = ?1 AND result IN "
                         "('ok', 'conflict') AND next_seq > from_seq",
                         &device, "pulls", 1, &max, &null);
    if (rc != PENLINK_OK)
        return rc;
    *have = !null && max >= 0;
    *next = *have ? (uint64_t)max : 0;
    return rc;
}

int sq_seq_outliers(archive_backend *b, int64_t device, uint64_t *n, int64_t *lowest)
{
    sqlite_backend *s = (sqlite_backend *)b;
    int64_t v[2] = { 0, 0 };
    int rc = sq_flush(s);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s,
                         "SELECT count(*), min(seq) FROM records WHERE device_id = ?1 AND seq < 0",
                         &device, "records", 2, v, NULL);
    if (rc == PENLINK_OK) {
        *n = (uint64_t)v[0];
        *lowest = v[1];
    }
    return rc;
}

int sq_heads(archive_backend *b, int64_t device,
             int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
                       const uint8_t *sig, size_t sig_len),
             void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(
        s, &st, "SELECT next_seq, link, signature FROM heads WHERE device_id = ?1 ORDER BY id");
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
        rc = sq_db_fail(s, PENLINK_ERR_IO, "heads");
    sqlite3_finalize(st);
    return rc;
}

static const char *const verify_result[] = { "ok", "broken", "unsigned" };

int sq_verification_log(archive_backend *b, const penlink_verify_report *r, int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    if ((unsigned)r->state >= sizeof verify_result / sizeof verify_result[0])
        return sq_fail(s, PENLINK_ERR_INVALID_ARG, "archive %s: a verification of no known state",
                       s->path);
    int rc =
        sq_prep(s, &st,
                "INSERT INTO verifications (device_id, at_ms, result, through_seq, records, "
                "chunks, detail) SELECT id, ?2, ?3, ?4, ?5, ?6, ?7 FROM devices WHERE " SERIAL_IS(
                    "serial", "?1") " ORDER BY serial = ?1 DESC, id LIMIT 1 RETURNING id");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, r->serial, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_text(st, 3, verify_result[r->state], -1, SQLITE_STATIC);
    sqlite3_bind_int64(
        st, 4, (int64_t)(r->state == PENLINK_VERIFY_BROKEN ? r->where_seq : r->signed_through));
    sqlite3_bind_int64(st, 5, (int64_t)r->records);
    sqlite3_bind_int64(st, 6, (int64_t)r->chunks);
    sqlite3_bind_text(st, 7, r->state == PENLINK_VERIFY_BROKEN ? r->detail : r->notes, -1,
                      SQLITE_TRANSIENT);
    int x = sqlite3_step(st);
    if (x == SQLITE_DONE)
        rc = sq_fail(s, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive %s", r->serial, s->path);
    else if (x != SQLITE_ROW)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "verification");
    sqlite3_finalize(st);
    return rc;
}

int sq_verification_last(archive_backend *b, const char *serial, penlink_verification *out)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    memset(out, 0, sizeof *out);
    snprintf(out->serial, sizeof out->serial, "%s", serial);
    int rc = sq_prep(s, &st,
                     "SELECT d.public_key IS NOT NULL, (SELECT max(next_seq) FROM heads h WHERE "
                     "h.device_id = d.id), v.at_ms, v.result, v.through_seq, v.records, v.chunks, "
                     "v.detail FROM devices d LEFT JOIN verifications v ON v.id = (SELECT max(id) "
                     "FROM verifications WHERE device_id = d.id) WHERE " SERIAL_IS(
                         "d.serial", "?1") " ORDER BY "
                                           "d.serial = ?1 DESC, d.id LIMIT 1");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x = sqlite3_step(st);
    if (x == SQLITE_ROW) {
        out->pinned = sqlite3_column_int(st, 0);
        out->signed_through = (uint64_t)sqlite3_column_int64(st, 1);
        out->have = sqlite3_column_type(st, 2) != SQLITE_NULL;
        out->at_ms = sqlite3_column_int64(st, 2);
        sq_copy_col(out->result, sizeof out->result, st, 3);
        out->through_seq = (uint64_t)sqlite3_column_int64(st, 4);
        out->records = (uint64_t)sqlite3_column_int64(st, 5);
        out->chunks = (uint64_t)sqlite3_column_int64(st, 6);
        sq_copy_col(out->detail, sizeof out->detail, st, 7);
    } else if (x == SQLITE_DONE) {
        rc = sq_fail(s, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", serial);
    } else {
        rc = sq_db_fail(s, PENLINK_ERR_IO, "verification");
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- replaced device keys ------------------------------------------------ */

int sq_key_replace(archive_backend *b, const penlink_key_replacement *r)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
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
    sqlite3_bind_blob(st, 6, r->old_key, PL_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 7, r->new_key, PL_KEY_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (int64_t)r->from_seq);
    sqlite3_bind_int64(st, 9, (int64_t)r->heads_before);
    rc = sq_step_done(s, st, "key replacement");
    if (rc == PENLINK_OK && sqlite3_changes(s->db) != 1)
        rc = sq_fail(s, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", r->serial);
    sqlite3_finalize(st);
    return rc;
}

int sq_annotate(archive_backend *b, const penlink_annotation *a)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "INSERT INTO annotations (finding, at_ms, author, os_user, host, text) "
                     "VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (rc)
        return rc;
    sqlite3_bind_text(st, 1, a->finding, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, a->at_ms);
    sqlite3_bind_text(st, 3, a->author, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, a->user, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, a->host, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 6, a->text, -1, SQLITE_STATIC);
    rc = sq_step_done(s, st, "annotation");
    sqlite3_finalize(st);
    return rc;
}

int sq_key_replacements(archive_backend *b, const char *serial,
                        int (*cb)(void *user, const penlink_key_replacement *r), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    /* an archive of an older schema read as it is (not migrated) has none */
    if (sqlite3_table_column_metadata(s->db, NULL, "key_replacements", NULL, NULL, NULL, NULL, NULL,
                                      NULL) != SQLITE_OK)
        return PENLINK_OK;
    int rc =
        sq_prep(s, &st,
                "SELECT d.serial, k.at_ms, k.os_user, k.host, k.reason, k.old_key, k.new_key, "
                "k.from_seq, k.heads_before FROM key_replacements k JOIN devices d ON d.id = "
                "k.device_id WHERE ?1 IS NULL OR " SERIAL_IS("d.serial", "?1") " ORDER BY k.id");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_key_replacement r = PENLINK_KEY_REPLACEMENT_INIT;
        const uint8_t *old = sq_blob32(st, 5), *new_key = sq_blob32(st, 6);
        if (!old || !new_key) {
            rc = sq_damaged(s, "key replacements", "a row whose keys are not 32 bytes");
            break;
        }
        sq_copy_col(r.serial, sizeof r.serial, st, 0);
        r.at_ms = sqlite3_column_int64(st, 1);
        sq_copy_col(r.user, sizeof r.user, st, 2);
        sq_copy_col(r.host, sizeof r.host, st, 3);
        sq_copy_col(r.reason, sizeof r.reason, st, 4);
        memcpy(r.old_key, old, PL_KEY_BYTES);
        memcpy(r.new_key, new_key, PL_KEY_BYTES);
        r.from_seq = (uint64_t)sqlite3_column_int64(st, 7);
        r.heads_before = (uint64_t)sqlite3_column_int64(st, 8);
        if (cb(user, &r) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "key replacements");
    sqlite3_finalize(st);
    return rc;
}

int sq_annotations(archive_backend *b, int (*cb)(void *user, const penlink_annotation *a),
                   void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(
        s, &st, "SELECT finding, at_ms, author, os_user, host, text FROM annotations ORDER BY id");
    if (rc)
        return rc;
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_annotation a;
        memset(&a, 0, sizeof a);
        sq_copy_col(a.finding, sizeof a.finding, st, 0);
        a.at_ms = sqlite3_column_int64(st, 1);
        sq_copy_col(a.author, sizeof a.author, st, 2);
        sq_copy_col(a.user, sizeof a.user, st, 3);
        sq_copy_col(a.host, sizeof a.host, st, 4);
        sq_copy_col(a.text, sizeof a.text, st, 5);
        if (cb(user, &a) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "annotations");
    sqlite3_finalize(st);
    return rc;
}
