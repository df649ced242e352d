/*
 * The PostgreSQL archive backend's operations (archive.h's table): each is
 * the SQLite backend's, appended instead of updated where SQLite updates a
 * row (archive_pg.c explains the schema). Pens are listed in serial order
 * byte by byte (COLLATE "C", as SQLite compares text), so the audit, export
 * and verify see both backends' archives in the same order.
 *
 * Values read back are checked like any outside input: a row that cannot
 * be a chunk or a record is handed to the caller as damage (archive.h), and
 * the reading goes on, so that one pen's damaged rows never stop another's.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pwd.h>
#include <unistd.h>

#include "archive_pg.h"
#include "clock.h"
#include "pl/auth.h"
#include "pl/chunk.h"

/* Visits the rows of a query: @p fn returns 0 to go on, 1 to stop
 * (PENLINK_ERR_CANCELLED) or a negative status. The result is read whole
 * before the first visit, so the visitor may query the archive itself
 * (verify does: a pen's chunks, then each chunk's records); a query of many
 * rows is read in pages (pens' chunks). */
typedef int (*pg_row_fn)(void *u, const PGresult *r, int row);

static int pg_each(pg_backend *g, const char *sql, const pg_params *p, const char *what,
                   pg_row_fn fn, void *u, int *rows)
{
    int rc = pg_copy_flush(g);
    if (rc != PENLINK_OK)
        return rc;
    PGresult *r = pg_run(g, sql, p, what, &rc);
    if (!r)
        return rc;
    int n = PQntuples(r);
    for (int i = 0; rc == PENLINK_OK && i < n; i++) {
        int c = fn(u, r, i);
        if (c > 0)
            rc = PENLINK_ERR_CANCELLED;
        else if (c < 0)
            rc = c;
    }
    if (rows)
        *rows = n;
    PQclear(r);
    return rc;
}

/* 0 for "no pull" (an alarm raised before a pull began) is NULL here: a reference. */
static void param_pull(pg_params *p, int64_t pull)
{
    if (pull > 0)
        pg_param_int(p, pull);
    else
        pg_param_text(p, NULL);
}

static int p_device(archive_backend *b, const penlink_info *info, int64_t now, int64_t *id)
{
    pg_backend *g = (pg_backend *)b;
    /* the first write of a pull, a push or a configuration change: refused in words */
    int rc = pg_may_write(g, "store pen");
    if (rc != PENLINK_OK)
        return rc;
    pg_params p = { 0 };
    pg_param_text(&p, info->serial);
    pg_param_int(&p, now);
    PGresult *r = pg_run(g,
                         "INSERT INTO pens (serial, first_seen_ms) VALUES ($1, $2) ON CONFLICT "
                         "(serial) DO NOTHING RETURNING id",
                         &p, "device", &rc);
    if (r && PQntuples(r) == 0) {
        PQclear(r);
        p.n = 1;
        r = pg_run(g, "SELECT id FROM pens WHERE serial = $1", &p, "device", &rc);
    }
    if (!r)
        return rc;
    *id = PQntuples(r) == 1 ? pg_col_int(r, 0, 0) : 0;
    PQclear(r);
    if (*id == 0)
        return penlink_fail(b->ctx, PENLINK_ERR_IO, "archive %s: pen %s has no row", g->name,
                            info->serial);
    /* the pen is ours until this pull ends: taken before anything of it is read */
    rc = pg_lock_pen(g, *id, info->serial);
    if (rc != PENLINK_OK)
        return rc;
    pg_params q = { 0 };
    pg_param_int(&q, *id);
    pg_param_int(&q, now);
    pg_param_text(&q, info->model);
    pg_param_text(&q, info->hardware_revision);
    pg_param_text(&q, info->firmware_version);
    return pg_do(g,
                 "INSERT INTO pen_sightings (device_id, at_ms, model, hardware_revision, "
                 "firmware_version) VALUES ($1, $2, $3, $4, $5)",
                 &q, "device sighting");
}

static int p_next_seq(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    pg_backend *g = (pg_backend *)b;
    int64_t max = 0;
    int null = 1;
    int rc = pg_copy_flush(g);
    if (rc == PENLINK_OK)
        rc = pg_row_ints(g, "SELECT max(seq) FROM records WHERE device_id = $1", &device,
                         "last seq", 1, &max, &null);
    if (rc == PENLINK_OK) {
        *have = !null;
        *next = null ? 0 : (uint64_t)max + 1;
    }
    return rc;
}

static int p_pull_begin(archive_backend *b, int64_t device, uint64_t from, int64_t now,
                        int64_t *pull)
{
    pg_backend *g = (pg_backend *)b;
    char host[256] = "", user[64] = "";
    struct passwd *pw = getpwuid(geteuid());
    gethostname(host, sizeof host - 1);
    snprintf(user, sizeof user, "%s", pw && pw->pw_name ? pw->pw_name : "");
    pg_params p = { 0 };
    pg_param_int(&p, device);
    pg_param_int(&p, now);
    pg_param_text(&p, host);
    pg_param_text(&p, user);
    pg_param_text(&p, penlink_version());
    pg_param_int(&p, (int64_t)from);
    int rc;
    PGresult *r = pg_run(g,
                         "INSERT INTO pull_starts (device_id, started_ms, host, os_user, "
                         "penlink_version, from_seq) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                         &p, "pull", &rc);
    if (!r)
        return rc;
    *pull = pg_col_int(r, 0, 0);
    PQclear(r);
    g->pull_open = 1; /* the pen's lock is kept across the pull's commits */
    return PENLINK_OK;
}

static int p_pull_end(archive_backend *b, int64_t pull, const penlink_archive_pull_result *res,
                      const char *result, const char *message, int64_t now)
{
    pg_backend *g = (pg_backend *)b;
    pg_params p = { 0 };
    pg_param_int(&p, pull);
    pg_param_int(&p, now);
    pg_param_int(&p, (int64_t)res->next_seq);
    pg_param_int(&p, (int64_t)res->records_new);
    pg_param_int(&p, (int64_t)res->records_dup);
    pg_param_int(&p, (int64_t)res->conflicts);
    pg_param_int(&p, (int64_t)res->gap);
    pg_param_text(&p, result);
    pg_param_text(&p, message);
    g->pull_open = 0; /* released when this transaction ends */
    return pg_do(g,
                 "INSERT INTO pull_ends (pull_id, finished_ms, next_seq, records_new, records_dup, "
                 "conflicts, gap, result, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                 /* a pull that lost its pen's lock may have been marked interrupted by
                  * another meanwhile (mark_interrupted): that end stands */
                 "ON CONFLICT (pull_id) DO NOTHING",
                 &p, "pull end");
}

static int p_chunk(archive_backend *b, int64_t device, int64_t pull, const penlink_chunk *c,
                   int64_t now, int64_t *chunk, int *stored)
{
    pg_backend *g = (pg_backend *)b;
    pg_params p = { 0 };
    pg_param_int(&p, device);
    param_pull(&p, pull);
    pg_param_int(&p, now);
    pg_param_int(&p, (int64_t)c->first_seq);
    pg_param_int(&p, c->record_count);
    pg_param_int(&p, c->raw_size);
    pg_param_bytes(&p, c->data, c->len);
    pg_param_bytes(&p, c->has_link ? c->prev_link : NULL, 32);
    pg_param_bytes(&p, c->has_link ? c->link : NULL, 32);
    /* a pull: sent without waiting for the id (one round trip per chunk is most
     * of a pull's time); its records carry a provisional one until they go */
    if (!stored)
        return pg_chunk_send(g, &p, chunk);
    int rc;
    /* stored once: an identical chunk again (a pull that resumes inside it) is found */
    PGresult *r = pg_run(g, PG_CHUNK_SQL, &p, "store chunk", &rc);
    if (!r)
        return rc;
    *chunk = PQntuples(r) == 1 ? pg_col_int(r, 0, 0) : 0;
    if (stored)
        *stored = PQntuples(r) == 1 && pg_col_int(r, 0, 1) != 0;
    PQclear(r);
    return *chunk ? PENLINK_OK
                  : penlink_fail(b->ctx, PENLINK_ERR_IO, "archive %s: a chunk was not stored",
                                 g->name);
}

/* A record (seq, body) read back, as hostile input: 0, or -1 when it cannot be one. */
static int row_record(const PGresult *r, int row, penlink_record *out)
{
    size_t len;
    const uint8_t *body = pg_col_bytes(r, row, 1, &len);
    if (pg_col_null(r, row, 0) || !body || len == 0 || len > ARCHIVE_BODY_MAX)
        return -1;
    out->seq = (uint64_t)pg_col_int(r, row, 0);
    return archive_body_unpack(body, len, out);
}

static int p_record(archive_backend *b, int64_t device, int64_t chunk, const penlink_record *r,
                    int fresh, int *outcome)
{
    pg_backend *g = (pg_backend *)b;
    if (fresh) {
        *outcome = REC_NEW;
        return pg_copy_add(g, device, chunk, r);
    }
    int rc = pg_copy_flush(g);
    if (rc != PENLINK_OK)
        return rc;
    pg_params p = { 0 };
    pg_param_int(&p, device);
    pg_param_int(&p, (int64_t)r->seq);
    PGresult *res = pg_run(g, "SELECT seq, body FROM records WHERE device_id = $1 AND seq = $2", &p,
                           "read record", &rc);
    if (!res)
        return rc;
    if (PQntuples(res) == 0) {
        PQclear(res);
        *outcome = REC_NEW;
        return pg_copy_add(g, device, chunk, r);
    }
    penlink_record old;
    int bad = row_record(res, 0, &old);
    PQclear(res);
    if (bad)
        return penlink_fail(b->ctx, PENLINK_ERR_INTEGRITY,
                            "archive %s: the archived record %llu is damaged", g->name,
                            (unsigned long long)r->seq);
    *outcome = archive_record_same(&old, r) ? REC_SAME : REC_CONFLICT;
    return PENLINK_OK;
}

static int p_alarm(archive_backend *b, int64_t device, int64_t pull, const char *kind, uint64_t seq,
                   uint64_t count, const char *detail, int64_t now)
{
    pg_backend *g = (pg_backend *)b;
    pg_params p = { 0 };
    pg_param_int(&p, device);
    param_pull(&p, pull);
    pg_param_int(&p, now);
    pg_param_text(&p, kind);
    pg_param_int(&p, (int64_t)seq);
    pg_param_int(&p, (int64_t)count);
    pg_param_text(&p, detail);
    return pg_do(g,
                 "INSERT INTO alarms (device_id, pull_id, at_ms, kind, seq, count, detail) VALUES "
                 "($1, $2, $3, $4, $5, $6, $7)",
                 &p, "alarm");
}

static int p_pin_key(archive_backend *b, int64_t device, const uint8_t *key, int *outcome)
{
    pg_backend *g = (pg_backend *)b;
    pg_params p = { 0 };
    pg_param_int(&p, device);
    int rc;
    PGresult *r =
        pg_run(g, "SELECT public_key FROM pen_keys WHERE device_id = $1", &p, "device key", &rc);
    if (!r)
        return rc;
    size_t len = 0;
    const uint8_t *old = PQntuples(r) == 1 ? pg_col_bytes(r, 0, 0, &len) : NULL;
    if (old)
        *outcome = key && len == 32 && memcmp(old, key, 32) == 0 ? KEY_SAME : KEY_CHANGED;
    else
        *outcome = key ? KEY_PINNED : KEY_NONE;
    PQclear(r);
    if (*outcome != KEY_PINNED)
        return PENLINK_OK;
    pg_param_bytes(&p, key, 32);
    pg_param_int(&p, pc_wall_ms());
    return pg_do(g, "INSERT INTO pen_keys (device_id, public_key, pinned_ms) VALUES ($1, $2, $3)",
                 &p, "pin device key");
}

static int p_head(archive_backend *b, int64_t device, int64_t pull, const penlink_head *h,
                  int64_t now)
{
    pg_backend *g = (pg_backend *)b;
    pg_params p = { 0 };
    pg_param_int(&p, device);
    param_pull(&p, pull);
    pg_param_int(&p, now);
    pg_param_int(&p, (int64_t)h->next_seq);
    pg_param_bytes(&p, h->link, 32);
    pg_param_bytes(&p, h->signature, 64);
    return pg_do(g,
                 "INSERT INTO heads (device_id, pull_id, at_ms, next_seq, link, signature) VALUES "
                 "($1, $2, $3, $4, $5, $6)",
                 &p, "signed head");
}

/* ---- reading ------------------------------------------------------------- */

typedef struct alarms_visit {
    int (*cb)(void *user, const penlink_alarm *a);
    void *user;
} alarms_visit;

static int alarm_row(void *u, const PGresult *r, int row)
{
    alarms_visit *v = u;
    penlink_alarm a;
    memset(&a, 0, sizeof a);
    pg_col_text(r, row, 0, a.serial, sizeof a.serial);
    a.at_ms = pg_col_int(r, row, 1);
    a.seq = (uint64_t)pg_col_int(r, row, 2);
    a.count = (uint64_t)pg_col_int(r, row, 3);
    pg_col_text(r, row, 4, a.kind, sizeof a.kind);
    pg_col_text(r, row, 5, a.detail, sizeof a.detail);
    return v->cb(v->user, &a) != 0;
}

static int p_alarms(archive_backend *b, const penlink_archive_filter *f,
                    int (*cb)(void *user, const penlink_alarm *a), void *user)
{
    pg_params p = { 0 };
    pg_param_text(&p, f ? f->serial : NULL);
    alarms_visit v = { cb, user };
    return pg_each((pg_backend *)b,
                   "SELECT d.serial, a.at_ms, a.seq, a.count, a.kind, a.detail FROM alarms a "
                   "JOIN pens d ON d.id = a.device_id WHERE ($1::text IS NULL OR " PG_SERIAL_IS(
                       "d.serial", "$1") ") "
                                         "ORDER BY d.serial COLLATE \"C\", a.seq, a.id",
                   &p, "alarms", alarm_row, &v, NULL);
}

static int p_config_log(archive_backend *b, const char *serial, const char *source,
                        const char *user, const char *host, const penlink_config *old_cfg,
                        const penlink_config *new_cfg, int64_t now)
{
    int rc = pg_may_write((pg_backend *)b, "store the configuration history");
    if (rc != PENLINK_OK)
        return rc;
    char oldj[1024], newj[1024];
    archive_config_text(new_cfg, newj, sizeof newj);
    if (old_cfg)
        archive_config_text(old_cfg, oldj, sizeof oldj);
    pg_params p = { 0 };
    pg_param_text(&p, serial);
    pg_param_int(&p, now);
    pg_param_text(&p, source);
    pg_param_text(&p, user);
    pg_param_text(&p, host);
    pg_param_int(&p, new_cfg->revision);
    pg_param_text(&p, old_cfg ? oldj : NULL);
    pg_param_text(&p, newj);
    return pg_do((pg_backend *)b,
                 "INSERT INTO config_history (device_id, at_ms, source, os_user, host, revision, "
                 "old_json, new_json) SELECT id, $2, $3, $4, $5, $6, $7, $8 FROM pens WHERE "
                 "serial = $1",
                 &p, "config history");
}

typedef struct config_visit {
    int (*cb)(void *user, const penlink_config_entry *e);
    void *user;
} config_visit;

static int config_row(void *u, const PGresult *r, int row)
{
    config_visit *v = u;
    penlink_config_entry e;
    memset(&e, 0, sizeof e);
    e.config.size = e.old_config.size = sizeof e.config;
    pg_col_text(r, row, 0, e.serial, sizeof e.serial);
    e.at_ms = pg_col_int(r, row, 1);
    pg_col_text(r, row, 2, e.source, sizeof e.source);
    pg_col_text(r, row, 3, e.user, sizeof e.user);
    pg_col_text(r, row, 4, e.host, sizeof e.host);
    archive_config_parse(pg_col_null(r, row, 5) ? "" : PQgetvalue(r, row, 5), &e.config);
    /* the values the change replaced: revision 1's limits when it came before any pull */
    e.has_old = !pg_col_null(r, row, 6);
    if (e.has_old)
        archive_config_parse(PQgetvalue(r, row, 6), &e.old_config);
    return v->cb(v->user, &e) != 0;
}

/* By what every archive holding the entries shares (a push copies them in
 * another order than they were appended), never by row id: the SQLite
 * backend's order (archive_sqlite.c), so that the same history reads the
 * same, and an HTML report made before a push checks against the server. */
#define PG_CONFIG_ORDER                                                                            \
    "d.serial COLLATE \"C\", h.revision, h.at_ms, h.source COLLATE \"C\", coalesce(h.os_user, "    \
    "'') "                                                                                         \
    "COLLATE \"C\", coalesce(h.host, '') COLLATE \"C\", h.new_json COLLATE \"C\", "                \
    "coalesce(h.old_json, '') COLLATE \"C\", h.id"

static int p_config_history(archive_backend *b, const char *serial,
                            int (*cb)(void *user, const penlink_config_entry *e), void *user)
{
    pg_params p = { 0 };
    pg_param_text(&p, serial);
    config_visit v = { cb, user };
    return pg_each(
        (pg_backend *)b,
        "SELECT d.serial, h.at_ms, h.source, h.os_user, h.host, h.new_json, "
        "h.old_json FROM config_history h JOIN pens d ON d.id = h.device_id WHERE "
        "($1::text IS NULL OR " PG_SERIAL_IS("d.serial", "$1") ") ORDER BY " PG_CONFIG_ORDER,
        &p, "config history", config_row, &v, NULL);
}

typedef struct devices_visit {
    int (*cb)(void *user, const penlink_archive_device *d);
    void *user;
} devices_visit;

static int device_row(void *u, const PGresult *r, int row)
{
    devices_visit *v = u;
    penlink_archive_device d;
    memset(&d, 0, sizeof d);
    pg_col_text(r, row, 0, d.serial, sizeof d.serial);
    pg_col_text(r, row, 1, d.model, sizeof d.model);
    d.first_seen_ms = pg_col_int(r, row, 2);
    d.last_seen_ms = pg_col_int(r, row, 3);
    pg_col_text(r, row, 4, d.firmware_versions, sizeof d.firmware_versions);
    d.records = (uint64_t)pg_col_int(r, row, 5);
    d.next_seq = (uint64_t)pg_col_int(r, row, 6);
    pg_col_text(r, row, 7, d.hardware_revision, sizeof d.hardware_revision);
    return v->cb(v->user, &d) != 0;
}

static int p_devices(archive_backend *b, int (*cb)(void *user, const penlink_archive_device *d),
                     void *user)
{
    devices_visit v = { cb, user };
    return pg_each(
        (pg_backend *)b,
        "SELECT d.serial, d.model, d.first_seen_ms, d.last_seen_ms, (SELECT "
        "string_agg(firmware_version, ', ' ORDER BY firmware_version COLLATE \"C\") "
        "FROM device_firmware f WHERE f.device_id = d.id), r.n, r.next, d.hardware_revision "
        "FROM devices d "
        "LEFT JOIN LATERAL (SELECT count(*) AS n, max(seq) + 1 AS next FROM records x "
        "WHERE x.device_id = d.id) r ON true ORDER BY d.serial COLLATE \"C\"",
        NULL, "devices", device_row, &v, NULL);
}

/* ---- verification ------------------------------------------------------- */

static const uint8_t *bytes32(const PGresult *r, int row, int col)
{
    size_t len;
    const uint8_t *p = pg_col_bytes(r, row, col, &len);
    return p && len == 32 ? p : NULL;
}

typedef struct pens_visit {
    int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
              uint64_t first_from);
    void *user;
} pens_visit;

static int pen_row(void *u, const PGresult *r, int row)
{
    pens_visit *v = u;
    return v->cb(v->user, pg_col_int(r, row, 0), PQgetvalue(r, row, 1), bytes32(r, row, 2),
                 (uint64_t)pg_col_int(r, row, 3)) != 0;
}

static int p_pens(archive_backend *b, const char *serial,
                  int (*cb)(void *user, int64_t device, const char *serial, const uint8_t *key,
                            uint64_t first_from),
                  void *user)
{
    pg_params p = { 0 };
    pg_param_text(&p, serial);
    pens_visit v = { cb, user };
    return pg_each((pg_backend *)b,
                   "SELECT d.id, d.serial, k.public_key, (SELECT min(from_seq) FROM pull_starts "
                   "s WHERE s.device_id = d.id) FROM pens d LEFT JOIN pen_keys k ON "
                   "k.device_id = d.id WHERE $1::text IS NULL OR " PG_SERIAL_IS(
                       "d.serial", "$1") " ORDER BY "
                                         "d.serial COLLATE \"C\"",
                   &p, "pens", pen_row, &v, NULL);
}

typedef struct chunks_visit {
    pg_backend *g;
    int (*cb)(void *user, const archive_chunk_row *c);
    void *user;
    int started;
    int64_t last_first, last_id; /* where the next page starts */
} chunks_visit;

static int chunk_row(void *u, const PGresult *r, int row)
{
    chunks_visit *v = u;
    archive_chunk_row c;
    memset(&c, 0, sizeof c);
    int64_t first = pg_col_int(r, row, 1), count = pg_col_int(r, row, 2),
            raw = pg_col_int(r, row, 3);
    c.id = pg_col_int(r, row, 0);
    c.stored_seq = first;
    c.data = pg_col_bytes(r, row, 4, &c.len);
    c.prev_link = bytes32(r, row, 5);
    c.link = bytes32(r, row, 6);
    /* passed on as damage: one pen's impossible row is that pen's finding */
    if (first < 0)
        c.damage = "its first seq is at or above 2^63 (stored as a negative integer): no pen "
                   "logs such a seq";
    else if (count <= 0 || count > PL_CHUNK_MAX_RECORDS || raw < 0 || raw > UINT32_MAX || !c.data)
        c.damage = "its record count, size or data are impossible";
    if (!c.damage) {
        c.first_seq = (uint64_t)first;
        c.record_count = (uint32_t)count;
        c.raw_size = (uint32_t)raw;
    }
    v->started = 1;
    v->last_first = first;
    v->last_id = c.id;
    return v->cb(v->user, &c) != 0;
}

#define PG_CHUNK_PAGE 256 /* chunks read at a time: a few hundred kB */

static int p_chunks(archive_backend *b, int64_t device,
                    int (*cb)(void *user, const archive_chunk_row *c), void *user)
{
    chunks_visit v = { (pg_backend *)b, cb, user, 0, 0, 0 };
    int rc = PENLINK_OK, rows = PG_CHUNK_PAGE;
    while (rc == PENLINK_OK && rows == PG_CHUNK_PAGE) {
        pg_params p = { 0 };
        pg_param_int(&p, device);
        pg_param_int(&p, v.started ? v.last_first : -1);
        pg_param_int(&p, v.last_id);
        rc = pg_each((pg_backend *)b,
                     "SELECT id, first_seq, record_count, raw_size, data, prev_link, link FROM "
                     "chunks WHERE device_id = $1 AND (first_seq, id) > ($2, $3) ORDER BY "
                     "first_seq, id LIMIT " PG_STR(PG_CHUNK_PAGE),
                     &p, "chunks", chunk_row, &v, &rows);
    }
    return rc;
}

static int p_record_count(archive_backend *b, int64_t device, uint64_t *n)
{
    pg_backend *g = (pg_backend *)b;
    int rc = pg_copy_flush(g);
    if (rc != PENLINK_OK)
        return rc;
    int64_t count = 0;
    rc = pg_row_ints(g, "SELECT count(*) FROM records WHERE device_id = $1", &device,
                     "count records", 1, &count, NULL);
    if (rc == PENLINK_OK)
        *n = (uint64_t)count;
    return rc;
}

static int p_pulled_to(archive_backend *b, int64_t device, uint64_t *next, int *have)
{
    pg_backend *g = (pg_backend *)b;
    int rc = pg_copy_flush(g);
    if (rc != PENLINK_OK)
        return rc;
    int64_t max = 0;
    int null = 1;
    rc = pg_row_ints(g,
                     "SELECT max(e.next_seq) FROM pull_starts s JOIN pull_ends e ON e.pull_id = "
                     "s.id WHERE s.device_id = $1 AND e.result IN ('ok', 'conflict') AND "
                     "e.next_seq > s.from_seq",
                     &device, "pulls", 1, &max, &null);
    if (rc != PENLINK_OK)
        return rc;
    *have = !null && max >= 0;
    *next = *have ? (uint64_t)max : 0;
    return PENLINK_OK;
}

static int p_seq_outliers(archive_backend *b, int64_t device, uint64_t *n, int64_t *lowest)
{
    pg_backend *g = (pg_backend *)b;
    int rc = pg_copy_flush(g);
    if (rc != PENLINK_OK)
        return rc;
    /* none while the table's CHECK (seq >= 0) holds; an edited archive may lack it */
    int64_t v[2] = { 0, 0 };
    rc = pg_row_ints(g,
                     "SELECT count(*), coalesce(min(seq), 0) FROM records WHERE device_id = $1 "
                     "AND seq < 0",
                     &device, "records", 2, v, NULL);
    if (rc == PENLINK_OK) {
        *n = (uint64_t)v[0];
        *lowest = v[1];
    }
    return rc;
}

typedef struct heads_visit {
    int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
              const uint8_t *sig, size_t sig_len);
    void *user;
} heads_visit;

static int head_row(void *u, const PGresult *r, int row)
{
    heads_visit *v = u;
    size_t ll, sl;
    const uint8_t *link = pg_col_bytes(r, row, 1, &ll), *sig = pg_col_bytes(r, row, 2, &sl);
    return v->cb(v->user, (uint64_t)pg_col_int(r, row, 0), link, ll, sig, sl) != 0;
}

static int p_heads(archive_backend *b, int64_t device,
                   int (*cb)(void *user, uint64_t next_seq, const uint8_t *link, size_t link_len,
                             const uint8_t *sig, size_t sig_len),
                   void *user)
{
    pg_params p = { 0 };
    pg_param_int(&p, device);
    heads_visit v = { cb, user };
    return pg_each((pg_backend *)b,
                   "SELECT next_seq, link, signature FROM heads WHERE device_id = $1 ORDER BY id",
                   &p, "heads", head_row, &v, NULL);
}

static const char *const verify_result[] = { "ok", "broken", "unsigned" };

static int p_verification_log(archive_backend *b, const penlink_verify_report *r, int64_t now)
{
    pg_backend *g = (pg_backend *)b;
    if ((unsigned)r->state >= sizeof verify_result / sizeof verify_result[0])
        return penlink_fail(b->ctx, PENLINK_ERR_INVALID_ARG,
                            "archive %s: a verification of no known state", g->name);
    pg_params p = { 0 };
    pg_param_text(&p, r->serial);
    pg_param_int(&p, now);
    pg_param_text(&p, verify_result[r->state]);
    pg_param_int(&p,
                 (int64_t)(r->state == PENLINK_VERIFY_BROKEN ? r->where_seq : r->signed_through));
    pg_param_int(&p, (int64_t)r->records);
    pg_param_int(&p, (int64_t)r->chunks);
    pg_param_text(&p, r->state == PENLINK_VERIFY_BROKEN ? r->detail : r->notes);
    int rc;
    PGresult *res = pg_run(g,
                           "INSERT INTO verifications (device_id, at_ms, result, through_seq, "
                           "records, chunks, detail) SELECT id, $2, $3, $4, $5, $6, $7 FROM pens "
                           "WHERE " PG_SERIAL_IS("serial", "$1") " ORDER BY serial = $1 DESC, id "
                                                                 "LIMIT 1 RETURNING id",
                           &p, "verification", &rc);
    if (!res)
        return rc;
    if (PQntuples(res) == 0)
        rc = penlink_fail(b->ctx, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive %s", r->serial,
                          g->name);
    PQclear(res);
    return rc;
}

static int p_verification_last(archive_backend *b, const char *serial, penlink_verification *out)
{
    pg_backend *g = (pg_backend *)b;
    memset(out, 0, sizeof *out);
    snprintf(out->serial, sizeof out->serial, "%s", serial);
    pg_params p = { 0 };
    pg_param_text(&p, serial);
    int rc;
    PGresult *r = pg_run(g,
                         "SELECT k.public_key IS NOT NULL, (SELECT max(next_seq) FROM heads h "
                         "WHERE h.device_id = d.id), v.at_ms, v.result, v.through_seq, v.records, "
                         "v.chunks, v.detail FROM pens d LEFT JOIN pen_keys k ON k.device_id = "
                         "d.id LEFT JOIN verifications v ON v.id = (SELECT max(id) FROM "
                         "verifications WHERE device_id = d.id) WHERE " PG_SERIAL_IS(
                             "d.serial", "$1") " ORDER BY d.serial = $1 DESC, d.id LIMIT 1",
                         &p, "verification", &rc);
    if (!r)
        return rc;
    if (PQntuples(r) == 1) {
        out->pinned = (int)pg_col_int(r, 0, 0);
        out->signed_through = (uint64_t)pg_col_int(r, 0, 1);
        out->have = !pg_col_null(r, 0, 2);
        out->at_ms = pg_col_int(r, 0, 2);
        pg_col_text(r, 0, 3, out->result, sizeof out->result);
        out->through_seq = (uint64_t)pg_col_int(r, 0, 4);
        out->records = (uint64_t)pg_col_int(r, 0, 5);
        out->chunks = (uint64_t)pg_col_int(r, 0, 6);
        pg_col_text(r, 0, 7, out->detail, sizeof out->detail);
    } else {
        rc = penlink_fail(b->ctx, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", serial);
    }
    PQclear(r);
    return rc;
}

/* ---- replaced device keys ------------------------------------------------ */

static int p_key_replace(archive_backend *b, const penlink_key_replacement *r)
{
    pg_backend *g = (pg_backend *)b;
    pg_params p = { 0 };
    pg_param_text(&p, r->serial);
    pg_param_int(&p, r->at_ms);
    pg_param_text(&p, r->user);
    pg_param_text(&p, r->host);
    pg_param_text(&p, r->reason);
    pg_param_bytes(&p, r->old_key, PL_KEY_BYTES);
    pg_param_bytes(&p, r->new_key, PL_KEY_BYTES);
    pg_param_int(&p, (int64_t)r->from_seq);
    pg_param_int(&p, (int64_t)r->heads_before);
    int rc = pg_may_write(g, "record a key replacement");
    if (rc != PENLINK_OK)
        return rc;
    PGresult *res = pg_run(g,
                           "INSERT INTO key_replacements (device_id, at_ms, os_user, host, reason, "
                           "old_key, new_key, from_seq, heads_before) SELECT id, $2, $3, $4, $5, "
                           "$6, $7, $8, $9 FROM pens WHERE serial = $1 RETURNING id",
                           &p, "key replacement", &rc);
    if (!res)
        return rc;
    int n = PQntuples(res);
    PQclear(res);
    return n == 1
               ? PENLINK_OK
               : penlink_fail(b->ctx, PENLINK_ERR_NOT_FOUND, "no pen %s in the archive", r->serial);
}

typedef struct replacements_visit {
    pg_backend *g;
    int (*cb)(void *user, const penlink_key_replacement *r);
    void *user;
} replacements_visit;

static int replacement_row(void *u, const PGresult *res, int row)
{
    replacements_visit *v = u;
    penlink_key_replacement r = PENLINK_KEY_REPLACEMENT_INIT;
    size_t ol = 0, nl = 0;
    const uint8_t *old = pg_col_bytes(res, row, 5, &ol), *new_key = pg_col_bytes(res, row, 6, &nl);
    if (!old || !new_key || ol != PL_KEY_BYTES || nl != PL_KEY_BYTES)
        return penlink_fail(v->g->base.ctx, PENLINK_ERR_INTEGRITY,
                            "archive %s is damaged (key replacements: a row whose keys are not "
                            "%u bytes)",
                            v->g->name, PL_KEY_BYTES);
    pg_col_text(res, row, 0, r.serial, sizeof r.serial);
    r.at_ms = pg_col_int(res, row, 1);
    pg_col_text(res, row, 2, r.user, sizeof r.user);
    pg_col_text(res, row, 3, r.host, sizeof r.host);
    pg_col_text(res, row, 4, r.reason, sizeof r.reason);
    memcpy(r.old_key, old, PL_KEY_BYTES);
    memcpy(r.new_key, new_key, PL_KEY_BYTES);
    r.from_seq = (uint64_t)pg_col_int(res, row, 7);
    r.heads_before = (uint64_t)pg_col_int(res, row, 8);
    return v->cb(v->user, &r) != 0;
}

static int p_key_replacements(archive_backend *b, const char *serial,
                              int (*cb)(void *user, const penlink_key_replacement *r), void *user)
{
    pg_backend *g = (pg_backend *)b;
    pg_params p = { 0 };
    if (g->schema < 4)
        return PENLINK_OK; /* an older schema read as it is: no key replacements table yet */
    pg_param_text(&p, serial);
    replacements_visit v = { g, cb, user };
    return pg_each(
        g,
        "SELECT d.serial, k.at_ms, k.os_user, k.host, k.reason, k.old_key, k.new_key, "
        "k.from_seq, k.heads_before FROM key_replacements k JOIN pens d ON d.id = "
        "k.device_id WHERE $1::text IS NULL OR " PG_SERIAL_IS("d.serial", "$1") " ORDER BY k.id",
        &p, "key replacements", replacement_row, &v, NULL);
}

static int p_annotate(archive_backend *b, const penlink_annotation *a)
{
    pg_params p = { 0 };
    pg_param_text(&p, a->finding);
    pg_param_int(&p, a->at_ms);
    pg_param_text(&p, a->author);
    pg_param_text(&p, a->user);
    pg_param_text(&p, a->host);
    pg_param_text(&p, a->text);
    return pg_do((pg_backend *)b,
                 "INSERT INTO annotations (finding, at_ms, author, os_user, host, text) VALUES "
                 "($1, $2, $3, $4, $5, $6)",
                 &p, "annotation");
}

typedef struct annotation_visit {
    int (*cb)(void *user, const penlink_annotation *a);
    void *user;
} annotation_visit;

static int annotation_row(void *u, const PGresult *r, int row)
{
    annotation_visit *v = u;
    penlink_annotation a;
    memset(&a, 0, sizeof a);
    pg_col_text(r, row, 0, a.finding, sizeof a.finding);
    a.at_ms = pg_col_int(r, row, 1);
    pg_col_text(r, row, 2, a.author, sizeof a.author);
    pg_col_text(r, row, 3, a.user, sizeof a.user);
    pg_col_text(r, row, 4, a.host, sizeof a.host);
    pg_col_text(r, row, 5, a.text, sizeof a.text);
    return v->cb(v->user, &a) != 0;
}

static int p_annotations(archive_backend *b, int (*cb)(void *user, const penlink_annotation *a),
                         void *user)
{
    annotation_visit v = { cb, user };
    if (((pg_backend *)b)->schema < 2)
        return PENLINK_OK; /* an older schema read as it is: no notes table yet */
    return pg_each((pg_backend *)b,
                   "SELECT finding, at_ms, author, os_user, host, text FROM annotations ORDER BY "
                   "id",
                   NULL, "annotations", annotation_row, &v, NULL);
}

const archive_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .savepoint = pg_savepoint,
    .rollback_to_savepoint = pg_rollback_to_savepoint,
    .device = p_device,
    .next_seq = p_next_seq,
    .pull_begin = p_pull_begin,
    .pull_end = p_pull_end,
    .chunk = p_chunk,
    .record = p_record,
    .alarm = p_alarm,
    .pin_key = p_pin_key,
    .head = p_head,
    .scan = pg_scan,
    .alarms = p_alarms,
    .config_log = p_config_log,
    .config_history = p_config_history,
    .devices = p_devices,
    .pens = p_pens,
    .chunks = p_chunks,
    .records = pg_records,
    .record_count = p_record_count,
    .pulled_to = p_pulled_to,
    .seq_outliers = p_seq_outliers,
    .heads = p_heads,
    .verification_log = p_verification_log,
    .verification_last = p_verification_last,
    .key_replace = p_key_replace,
    .key_replacements = p_key_replacements,
    .annotate = p_annotate,
    .annotations = p_annotations,
    .writable = pg_writable,
};
