/*
 * The SQLite archive backend's reads: the records scanned inside SQLite's
 * own loop, the alarms, the configuration log and history, the pens.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <string.h>

#include "archive_sqlite.h"
#include "pl/auth.h"
#include "pl/chunk.h"
#include "pl/record.h"

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
    archive_damage_cb bad;
    void *user;
    const char *serial;
    char serial_buf[2][64]; /* consecutive pens alternate: a pen's records share one pointer */
    int64_t device;
    uint64_t last_seq;
    int started, rc;
    /* damaged rows, when no one takes them: counted, the first named at the end */
    uint64_t n_bad;
    char bad_serial[64];
    int64_t bad_seq;
    const char *bad_why;
} scan_state;

/* A row of the scan that cannot be a record: to the caller, or counted. */
static void scan_damage(sqlite3_context *cx, scan_state *sc, int64_t seq, const char *why)
{
    if (sc->bad) {
        archive_damage d = { sc->serial, "records", seq, why };
        if (sc->bad(sc->user, &d) != 0) {
            sc->rc = PENLINK_ERR_CANCELLED;
            sqlite3_result_error(cx, "cancelled", -1);
        }
        return;
    }
    if (sc->n_bad++ == 0) {
        snprintf(sc->bad_serial, sizeof sc->bad_serial, "%s", sc->serial);
        sc->bad_seq = seq;
        sc->bad_why = why;
    }
}

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
    const char *why = sq_value_record(argv[1], argv[2], &r);
    if (!why && sc->started && r.seq <= sc->last_seq)
        why = "it is out of seq order";
    if (why) {
        scan_damage(cx, sc, sqlite3_value_int64(argv[1]), why);
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
int sq_scan(archive_backend *b, const penlink_archive_filter *f, penlink_archive_record_cb cb,
            archive_damage_cb bad, void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    scan_state sc = { .s = s, .f = f, .cb = cb, .bad = bad, .user = user, .rc = PENLINK_OK };
    unsigned npens = 0;
    sqlite3_stmt *pens = NULL, *st = NULL;
    int rc = sq_flush(s);
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &pens,
                     "SELECT id, serial FROM devices WHERE ?1 IS NULL OR " SERIAL_IS(
                         "serial", "?1") " ORDER BY serial");
    if (rc == PENLINK_OK &&
        sqlite3_create_function(s->db, "penlink_scan_row", 3, SQLITE_UTF8 | SQLITE_DIRECTONLY, &sc,
                                sql_scan_row, NULL, NULL) != SQLITE_OK)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "scan");
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &st,
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
            rc = sq_db_fail(s, PENLINK_ERR_IO, "scan");
    }
    if (rc == PENLINK_OK && px != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "scan");
    sqlite3_finalize(st);
    sqlite3_finalize(pens);
    /* the statement that used it is gone: unregister the function and its pointer to sc */
    sqlite3_create_function(s->db, "penlink_scan_row", 3, SQLITE_UTF8, NULL, NULL, NULL, NULL);
    if (rc == PENLINK_OK && sc.n_bad)
        rc = sq_fail(s, PENLINK_ERR_INTEGRITY,
                     "archive %s: %llu record rows cannot be records and were skipped (the "
                     "first: pen %s, seq stored as %lld: %s); every other record was read",
                     s->path, (unsigned long long)sc.n_bad, sc.bad_serial, (long long)sc.bad_seq,
                     sc.bad_why);
    return rc;
}

void sq_copy_col(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

int sq_alarms(archive_backend *b, const penlink_archive_filter *f,
              int (*cb)(void *user, const penlink_alarm *a), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st,
                     "SELECT d.serial, a.at_ms, a.seq, a.count, a.kind, a.detail FROM alarms a "
                     "JOIN devices d ON d.id = a.device_id WHERE (?1 IS NULL OR " SERIAL_IS(
                         "d.serial", "?1") ") "
                                           "ORDER BY d.serial, a.seq, a.id");
    if (rc)
        return rc;
    bind_filter(st, f);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_alarm a;
        memset(&a, 0, sizeof a);
        sq_copy_col(a.serial, sizeof a.serial, st, 0);
        a.at_ms = sqlite3_column_int64(st, 1);
        a.seq = (uint64_t)sqlite3_column_int64(st, 2);
        a.count = (uint64_t)sqlite3_column_int64(st, 3);
        sq_copy_col(a.kind, sizeof a.kind, st, 4);
        sq_copy_col(a.detail, sizeof a.detail, st, 5);
        if (cb(user, &a) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "alarms");
    sqlite3_finalize(st);
    return rc;
}

int sq_config_log(archive_backend *b, const char *serial, const char *source, const char *user,
                  const char *host, const penlink_config *old_cfg, const penlink_config *new_cfg,
                  int64_t now)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    char oldj[1024], newj[1024];
    archive_config_text(new_cfg, newj, sizeof newj);
    if (old_cfg)
        archive_config_text(old_cfg, oldj, sizeof oldj);
    int rc =
        sq_prep(s, &st,
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
    rc = sq_step_done(s, st, "config history");
    sqlite3_finalize(st);
    return rc;
}

/* Ordered by what every archive holding the entries shares, never by row id
 * alone (a push appends them in another order): as the PostgreSQL backend. */
int sq_config_history(archive_backend *b, const char *serial,
                      int (*cb)(void *user, const penlink_config_entry *e), void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(
        s, &st,
        "SELECT d.serial, h.at_ms, h.source, h.os_user, h.host, h.new_json, h.old_json FROM "
        "config_history h JOIN devices d ON d.id = h.device_id WHERE (?1 IS NULL OR " SERIAL_IS(
            "d.serial", "?1") ") ORDER BY d.serial, h.revision, h.at_ms, h.source, "
                              "coalesce(h.os_user, ''), coalesce(h.host, ''), h.new_json, "
                              "coalesce(h.old_json, ''), h.id");
    if (rc)
        return rc;
    if (serial)
        sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_config_entry e;
        memset(&e, 0, sizeof e);
        e.config.size = e.old_config.size = sizeof e.config;
        sq_copy_col(e.serial, sizeof e.serial, st, 0);
        e.at_ms = sqlite3_column_int64(st, 1);
        sq_copy_col(e.source, sizeof e.source, st, 2);
        sq_copy_col(e.user, sizeof e.user, st, 3);
        sq_copy_col(e.host, sizeof e.host, st, 4);
        const unsigned char *j = sqlite3_column_text(st, 5);
        archive_config_parse(j ? (const char *)j : "", &e.config);
        /* the values the change replaced: revision 1's limits when it came before any pull */
        const unsigned char *old = sqlite3_column_text(st, 6);
        e.has_old = old != NULL;
        if (old)
            archive_config_parse((const char *)old, &e.old_config);
        if (cb(user, &e) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "config history");
    sqlite3_finalize(st);
    return rc;
}

int sq_devices(archive_backend *b, int (*cb)(void *user, const penlink_archive_device *d),
               void *user)
{
    sqlite_backend *s = (sqlite_backend *)b;
    sqlite3_stmt *st = NULL;
    int rc = sq_flush(s);
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &st,
                     "SELECT d.serial, d.model, d.first_seen_ms, d.last_seen_ms, (SELECT "
                     "group_concat(firmware_version, ', ') FROM (SELECT firmware_version FROM "
                     "device_firmware f WHERE f.device_id = d.id ORDER BY firmware_version)), "
                     "(SELECT count(*) FROM records r WHERE r.device_id = d.id), (SELECT max(seq) "
                     "+ 1 FROM records r WHERE r.device_id = d.id), d.hardware_revision FROM "
                     "devices d ORDER BY d.serial");
    if (rc)
        return rc;
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        penlink_archive_device d;
        memset(&d, 0, sizeof d);
        sq_copy_col(d.serial, sizeof d.serial, st, 0);
        sq_copy_col(d.model, sizeof d.model, st, 1);
        d.first_seen_ms = sqlite3_column_int64(st, 2);
        d.last_seen_ms = sqlite3_column_int64(st, 3);
        sq_copy_col(d.firmware_versions, sizeof d.firmware_versions, st, 4);
        d.records = (uint64_t)sqlite3_column_int64(st, 5);
        d.next_seq = (uint64_t)sqlite3_column_int64(st, 6);
        sq_copy_col(d.hardware_revision, sizeof d.hardware_revision, st, 7);
        if (cb(user, &d) != 0) {
            rc = PENLINK_ERR_CANCELLED;
            break;
        }
    }
    if (rc == PENLINK_OK && x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "devices");
    sqlite3_finalize(st);
    return rc;
}
