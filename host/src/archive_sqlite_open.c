/*
 * Opening the SQLite archive: recognising the file, creating it, migrating
 * an older schema forward, and opening it for reading only.
 *
 * Nothing is written to a file before it is known to be a penlink archive
 * of a schema this penlink handles. A read-only connection first reads its
 * PRAGMA application_id, user_version and table names (with immutable=1
 * when the file has no -wal, so that nothing is created beside it; with
 * mode=ro otherwise, where SQLite folds the log in for the reader):
 *
 *   application_id        tables            what it is
 *   ARCHIVE_APPLICATION_ID any               a penlink archive (its user_version)
 *   0                      none, version 0   empty: a new archive may be made in it
 *   0                      penlink's, 1..N   an archive of a penlink before ids
 *   anything else                            another program's file: refused
 *
 * A newer user_version is refused too. Only then is a read-write connection
 * opened (WAL, synchronous=FULL) and the schema migrated forward in one
 * transaction that also sets the application_id; a read-only opening never
 * writes: an older schema is migrated in a private temporary copy.
 *
 * Interrupted pulls: a pull's row says 'running' until it ends. When an
 * archive is opened for writing and this connection is the only one open on
 * it, the rows still 'running' belong to penlinks that died (killed, crashed,
 * power lost) and become 'interrupted'. "The only one" is SQLite's own test:
 * in WAL mode every open connection holds a shared lock on the database file
 * for as long as it is open (a pull holds its connection from start to end),
 * so an exclusive lock is granted only to the last one; this is how SQLite
 * decides at close whether to checkpoint and delete the log. The lock is
 * tried through the connection's own file (SQLITE_FCNTL_FILE_POINTER) and
 * put back at once. A reader (an audit) also holds the shared lock, so while
 * one runs the marking waits for the next opening.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive_sqlite.h"
#include "pl/record.h"

/* ---- the schema, version by version ------------------------------------- */

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

/* Version 4 keeps the auditors' annotations of findings, append-only. */
static const char schema_v4[] =
    "CREATE TABLE annotations (\n"
    "  id INTEGER PRIMARY KEY, finding TEXT NOT NULL, at_ms INTEGER NOT NULL,\n"
    "  author TEXT NOT NULL, os_user TEXT, host TEXT, text TEXT NOT NULL);\n"
    "CREATE TRIGGER annotations_append_only_u BEFORE UPDATE ON annotations\n"
    "  BEGIN SELECT RAISE(ABORT, 'annotations are append-only'); END;\n"
    "CREATE TRIGGER annotations_append_only_d BEFORE DELETE ON annotations\n"
    "  BEGIN SELECT RAISE(ABORT, 'annotations are append-only'); END;\n";

/* Version 5 records device keys replaced on purpose (penlink keys replace: a
 * pen repaired with a new key), append-only like the rest of the trail. */
static const char schema_v5[] =
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
static const char *const migrations[SCHEMA_VERSION] = { schema_v1, schema_v2, schema_v3, schema_v4,
                                                        schema_v5 };

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

/* ---- what the file is ---------------------------------------------------- */

/* penlink's tables since schema version 1: a file with all of them and a
 * user_version is an archive of a penlink from before application ids. */
static const char *const penlink_tables[] = { "alarms",  "chunks", "config_history",
                                              "devices", "pulls",  "records" };

typedef struct probe {
    int exists; /* the file exists and is not empty */
    int wal;    /* a -wal file lies beside it */
    off_t wal_size;
    uint32_t app_id; /* PRAGMA application_id */
    int version;     /* PRAGMA user_version */
    int tables;      /* how many tables */
    int ours;        /* penlink's tables are all there */
    char names[160]; /* the first table names, for the message */
} probe;

/* A "file:" URI for @p path with @p query ("mode=ro", "immutable=1"). An
 * absolute path gets an empty authority, so that one starting with "//" is
 * not read as a host name. */
static int make_uri(char *out, size_t cap, const char *path, const char *query)
{
    size_t n = (size_t)snprintf(out, cap, path[0] == '/' ? "file://" : "file:");
    for (const char *p = path; *p && n + 4 < cap; p++) {
        if (*p == '%' || *p == '?' || *p == '#')
            n += (size_t)snprintf(out + n, cap - n, "%%%02X", (unsigned char)*p);
        else
            out[n++] = *p;
    }
    int w = snprintf(out + n, cap > n ? cap - n : 0, "?%s", query);
    return w < 0 || (size_t)w >= cap - n ? -1 : 0;
}

/* Whether a failed read-only opening is SQLite saying it cannot make the
 * -shm (and -wal) it needs beside the file. */
static int shm_refused(int code)
{
    return code == SQLITE_CANTOPEN || code == SQLITE_READONLY || code == SQLITE_PERM;
}

/* The refusal of a WAL archive whose log cannot be read in a read-only place. */
static int wal_unreadable(sqlite_backend *s, const probe *p)
{
    return sq_fail(s, PENLINK_ERR_IO,
                   "archive %s cannot be read here: its write-ahead log (%s-wal, %lld bytes) "
                   "holds committed data that SQLite reads only with a -shm file beside it, and "
                   "neither can be created in this read-only place. Copy the archive together "
                   "with its -wal file to a writable directory and run the command on the copy "
                   "(or open it once for writing where it is writable)",
                   s->path, s->path, (long long)p->wal_size);
}

/* Fills @p p from the probe's connection. */
static int probe_read(sqlite_backend *s, probe *p)
{
    int64_t app = 0, version = 0;
    sqlite3_stmt *st = NULL;
    int rc = sq_row_ints(s, "PRAGMA application_id", NULL, "schema version", 1, &app, NULL);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s, "PRAGMA user_version", NULL, "schema version", 1, &version, NULL);
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &st, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    if (rc != PENLINK_OK)
        return rc;
    p->app_id = (uint32_t)app;
    p->version = (int)version;
    size_t have = 0, n = 0;
    int x;
    for (x = sqlite3_step(st); x == SQLITE_ROW; x = sqlite3_step(st)) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        p->tables++;
        for (size_t i = 0; name && i < sizeof penlink_tables / sizeof penlink_tables[0]; i++)
            have += strcmp(name, penlink_tables[i]) == 0;
        if (name && n + strlen(name) + 8 < sizeof p->names)
            n += (size_t)snprintf(p->names + n, sizeof p->names - n, "%s%s", n ? ", " : "", name);
        else if (n + 5 < sizeof p->names && !strstr(p->names, "..."))
            n += (size_t)snprintf(p->names + n, sizeof p->names - n, ", ...");
    }
    if (x != SQLITE_DONE)
        rc = sq_db_fail(s, PENLINK_ERR_IO, "open");
    sqlite3_finalize(st);
    p->ours = have == sizeof penlink_tables / sizeof penlink_tables[0];
    return rc;
}

/* Reads what the file is through a read-only connection; *@p p filled. */
static int probe_file(sqlite_backend *s, probe *p)
{
    struct stat sb;
    char wal[sizeof s->path + 8], uri[3 * sizeof s->path + 32];
    memset(p, 0, sizeof *p);
    if (stat(s->path, &sb) != 0) {
        if (errno == ENOENT)
            return PENLINK_OK;
        return sq_fail(s, PENLINK_ERR_IO, "archive %s: %s", s->path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return sq_fail(s, PENLINK_ERR_IO, "archive %s is a directory: give the archive's file",
                       s->path);
    if (sb.st_size == 0)
        return PENLINK_OK;
    p->exists = 1;
    snprintf(wal, sizeof wal, "%s-wal", s->path);
    p->wal = stat(wal, &sb) == 0;
    p->wal_size = p->wal ? sb.st_size : 0;
    /* without a log to fold in, the file alone is the database: read it as it is, creating
     * nothing beside it */
    if (make_uri(uri, sizeof uri, s->path, p->wal_size > 0 ? "mode=ro" : "immutable=1") != 0)
        return sq_fail(s, PENLINK_ERR_INVALID_ARG, "archive %s: the path is too long", s->path);
    int rc;
    if (sqlite3_open_v2(uri, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = sq_db_fail(s, PENLINK_ERR_IO, "open");
    } else {
        sqlite3_busy_timeout(s->db, 10000);
        sqlite3_extended_result_codes(s->db, 0);
        rc = probe_read(s, p);
        if (rc != PENLINK_OK && shm_refused(sqlite3_errcode(s->db)))
            rc = wal_unreadable(s, p);
        else if (rc != PENLINK_OK && sqlite3_errcode(s->db) == SQLITE_NOTADB)
            rc = sq_fail(s, PENLINK_ERR_INTEGRITY,
                         "%s is not a penlink archive, nor any SQLite database: another "
                         "program's file, or an archive damaged beyond SQLite's recognition. "
                         "penlink left it untouched; give the right --archive, or restore the "
                         "archive from a backup",
                         s->path);
    }
    sqlite3_close(s->db);
    s->db = NULL;
    return rc;
}

/* Whether a probed file may be opened: PENLINK_OK (*@p fresh: nothing in it
 * yet), or the refusal, with the file untouched. */
static int judge(sqlite_backend *s, const probe *p, int *fresh)
{
    *fresh = !p->exists || (p->tables == 0 && p->version == 0 &&
                            (p->app_id == 0 || p->app_id == ARCHIVE_APPLICATION_ID));
    if (*fresh)
        return PENLINK_OK;
    if (p->app_id != ARCHIVE_APPLICATION_ID && !(p->app_id == 0 && p->ours && p->version > 0))
        return sq_fail(s, PENLINK_ERR_UNSUPPORTED,
                       "%s is not a penlink archive: it is an SQLite database of another program "
                       "(application_id 0x%08X, tables: %s). penlink left it untouched; give the "
                       "path of a penlink archive with --archive",
                       s->path, (unsigned)p->app_id, p->names[0] ? p->names : "none");
    if (p->version > SCHEMA_VERSION)
        return sq_fail(s, PENLINK_ERR_UNSUPPORTED,
                       "archive %s has schema version %d, newer than this penlink's %d: update "
                       "penlink (the archive was left untouched)",
                       s->path, p->version, SCHEMA_VERSION);
    if (p->version < 1 || !p->ours)
        return sq_damaged(s, "open", "penlink's application id, but not penlink's tables");
    return PENLINK_OK;
}

/* ---- schema -------------------------------------------------------------- */

static int schema_state(sqlite_backend *s, int64_t *version, int64_t *app, int64_t *tables)
{
    int rc = sq_row_ints(s, "PRAGMA user_version", NULL, "schema version", 1, version, NULL);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s, "PRAGMA application_id", NULL, "schema version", 1, app, NULL);
    if (rc == PENLINK_OK)
        rc = sq_row_ints(s, "SELECT count(*) FROM sqlite_master WHERE type = 'table'", NULL,
                         "schema version", 1, tables, NULL);
    return rc;
}

/* Brings the schema to SCHEMA_VERSION and sets the application id, in one
 * transaction; writes nothing when both are current. */
static int migrate(sqlite_backend *s)
{
    int64_t version, app, tables;
    int rc = schema_state(s, &version, &app, &tables);
    if (rc != PENLINK_OK || (version == SCHEMA_VERSION && app == ARCHIVE_APPLICATION_ID))
        return rc;
    /* read it again under the write lock: another penlink may have just migrated */
    rc = sq_exec_patient(s, "BEGIN IMMEDIATE", "migrate");
    if (rc != PENLINK_OK)
        return rc;
    rc = schema_state(s, &version, &app, &tables);
    if (rc == PENLINK_OK && version > SCHEMA_VERSION)
        rc = sq_fail(s, PENLINK_ERR_UNSUPPORTED,
                     "archive %s has schema version %d, newer than this penlink's %d: update "
                     "penlink (the archive was left untouched)",
                     s->path, (int)version, SCHEMA_VERSION);
    else if (rc == PENLINK_OK && version == 0 && tables > 0)
        rc = sq_fail(s, PENLINK_ERR_UNSUPPORTED,
                     "%s is not a penlink archive: it has tables but no schema version. penlink "
                     "left it untouched",
                     s->path);
    for (int v = (int)version; rc == PENLINK_OK && v < SCHEMA_VERSION; v++) {
        char pragma[40];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", v + 1);
        rc = sq_exec(s, migrations[v], "migrate");
        if (rc != PENLINK_OK && s->bad_row)
            rc = sq_damaged(s, "migrate", sqlite3_errmsg(s->db));
        if (rc == PENLINK_OK)
            rc = sq_exec(s, pragma, "migrate");
    }
    if (rc == PENLINK_OK) {
        char pragma[48];
        snprintf(pragma, sizeof pragma, "PRAGMA application_id = %d", ARCHIVE_APPLICATION_ID);
        rc = sq_exec(s, pragma, "migrate");
    }
    if (rc == PENLINK_OK)
        return sq_exec(s, "COMMIT", "migrate");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* PRAGMA quick_check: a damaged file is refused before anything reads or writes it. */
static int check(sqlite_backend *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, &st, "PRAGMA quick_check");
    if (rc != PENLINK_OK)
        return rc;
    int x = sqlite3_step(st);
    const unsigned char *ok = x == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
    char first[200] = "";
    if (ok && strcmp((const char *)ok, "ok") != 0)
        snprintf(first, sizeof first, "%s", ok);
    if (x != SQLITE_ROW)
        rc = sq_db_fail(s, PENLINK_ERR_INTEGRITY, "check");
    else if (first[0])
        rc = sq_damaged(s, "check", first);
    sqlite3_finalize(st);
    return rc;
}

static int register_functions(sqlite_backend *s)
{
    if (sqlite3_create_function(s->db, "penlink_pack_v1", 3 + PENLINK_FIELD_COUNT,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_DIRECTONLY, s,
                                sql_pack_v1, NULL, NULL) != SQLITE_OK)
        return sq_db_fail(s, PENLINK_ERR_IO, "open");
    return PENLINK_OK;
}

/* ---- interrupted pulls --------------------------------------------------- */

/* Whether this connection is the only one open on the archive (see the top). */
static int alone(sqlite_backend *s)
{
    sqlite3_file *f = NULL;
    if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f ||
        !f->pMethods)
        return 0;
    if (f->pMethods->xLock(f, SQLITE_LOCK_SHARED) != SQLITE_OK)
        return 0;
    int only = f->pMethods->xLock(f, SQLITE_LOCK_EXCLUSIVE) == SQLITE_OK;
    f->pMethods->xUnlock(f, SQLITE_LOCK_SHARED); /* where the pager left it */
    return only;
}

static int mark_interrupted(sqlite_backend *s)
{
    int64_t last = 0;
    /* first the last row running now: a pull that starts after the lock test is not touched */
    int rc = sq_row_ints(s, "SELECT coalesce(max(id), 0) FROM pulls WHERE result = 'running'", NULL,
                         "interrupted pulls", 1, &last, NULL);
    if (rc != PENLINK_OK || last == 0 || !alone(s))
        return rc;
    sqlite3_stmt *st = NULL;
    rc = sq_exec_patient(s, "BEGIN IMMEDIATE", "interrupted pulls");
    if (rc == PENLINK_OK)
        rc = sq_prep(s, &st,
                     "UPDATE pulls SET result = 'interrupted', message = 'the pull never "
                     "recorded its end (its penlink was killed or crashed, the computer lost "
                     "power, or the disk was full): what it committed is kept, nothing after "
                     "that was acknowledged' WHERE result = 'running' AND id <= ?1");
    if (rc == PENLINK_OK) {
        sqlite3_bind_int64(st, 1, last);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = sq_db_fail(s, PENLINK_ERR_IO, "interrupted pulls");
    }
    sqlite3_finalize(st);
    if (rc == PENLINK_OK)
        return sq_exec(s, "COMMIT", "interrupted pulls");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- opening --------------------------------------------------------------- */

static int open_write(sqlite_backend *s)
{
    if (sqlite3_open_v2(s->path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK)
        return sq_db_fail(s, PENLINK_ERR_IO, "open");
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
        int rc = sq_exec_patient(s, setup[i], "open");
        if (rc != PENLINK_OK)
            return rc;
    }
    int rc = check(s);
    if (rc == PENLINK_OK)
        rc = register_functions(s);
    if (rc == PENLINK_OK)
        rc = migrate(s);
    if (rc == PENLINK_OK)
        rc = mark_interrupted(s);
    return rc;
}

/* An older schema, read-only: migrated in a private temporary copy (SQLite's
 * temporary directory), which goes away with the connection. */
static int migrated_copy(sqlite_backend *s)
{
    sqlite3 *tmp = NULL;
    if (sqlite3_open_v2("", &tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
        sqlite3_close(tmp);
        return sq_fail(s, PENLINK_ERR_IO,
                       "archive %s has an older schema, and no temporary copy could be made to "
                       "read it without changing it",
                       s->path);
    }
    sqlite3_backup *bk = sqlite3_backup_init(tmp, "main", s->db, "main");
    int x = bk ? sqlite3_backup_step(bk, -1) : SQLITE_ERROR;
    sqlite3_backup_finish(bk);
    if (x != SQLITE_DONE) {
        int rc = sq_db_fail(s, PENLINK_ERR_IO, "copy an older schema to read it");
        sqlite3_close(tmp);
        return rc;
    }
    sqlite3_close(s->db);
    s->db = tmp;
    int rc = register_functions(s);
    return rc == PENLINK_OK ? migrate(s) : rc;
}

static int open_read(sqlite_backend *s, const probe *p)
{
    char uri[3 * sizeof s->path + 32];
    const char *how = "mode=ro";
    int64_t version = 0, app, tables;
    int rc = PENLINK_OK;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (make_uri(uri, sizeof uri, s->path, how) != 0)
            return sq_fail(s, PENLINK_ERR_INVALID_ARG, "archive %s: the path is too long", s->path);
        if (sqlite3_open_v2(uri, &s->db,
                            SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_NOMUTEX,
                            NULL) == SQLITE_OK) {
            sqlite3_busy_timeout(s->db, 10000);
            sqlite3_extended_result_codes(s->db, 0);
            rc = schema_state(s, &version, &app, &tables);
            if (rc == PENLINK_OK)
                break;
        }
        int code = sqlite3_errcode(s->db);
        if (attempt == 0 && shm_refused(code) && p->wal_size == 0) {
            /* read-only media: nothing can write the file, and it has no log to fold in */
            sqlite3_close(s->db);
            s->db = NULL;
            how = "immutable=1";
            continue;
        }
        if (shm_refused(code))
            return wal_unreadable(s, p);
        return rc != PENLINK_OK ? rc : sq_db_fail(s, PENLINK_ERR_IO, "open");
    }
    sqlite3_exec(s->db, "PRAGMA cache_size = -65536", NULL, NULL, NULL);
    rc = check(s);
    if (rc == PENLINK_OK && version < SCHEMA_VERSION)
        rc = migrated_copy(s);
    return rc;
}

void *archive_sqlite_handle(archive_backend *b)
{
    return b ? ((sqlite_backend *)b)->db : NULL;
}

int archive_sqlite_open(penlink_ctx *ctx, const char *path, int readonly, archive_backend **out)
{
    sqlite_backend *s = calloc(1, sizeof *s);
    if (!s)
        return PENLINK_ERR_NO_MEM;
    s->base.ops = &sq_ops;
    s->base.ctx = ctx;
    s->base.name = s->path;
    s->base.readonly = readonly;
    int rc = PENLINK_OK;
    if (snprintf(s->path, sizeof s->path, "%s", path) >= (int)sizeof s->path) {
        rc = sq_fail(s, PENLINK_ERR_INVALID_ARG, "archive %.64s...: the path is too long", path);
        goto fail;
    }
    probe p;
    int fresh = 0;
    rc = probe_file(s, &p);
    if (rc == PENLINK_OK)
        rc = judge(s, &p, &fresh);
    if (rc == PENLINK_OK && readonly && fresh)
        rc = sq_fail(s, PENLINK_ERR_IO,
                     p.exists ? "archive %s is empty: pull a pen into it first, or give the "
                                "right --archive"
                              : "archive %s does not exist: pull a pen into it first, or give "
                                "the right --archive",
                     s->path);
    if (rc == PENLINK_OK)
        rc = readonly ? open_read(s, &p) : open_write(s);
    if (rc == PENLINK_OK)
        rc = sq_statements(s);
    if (rc != PENLINK_OK)
        goto fail;
    *out = &s->base;
    return PENLINK_OK;
fail:
    sq_free(s);
    return rc;
}
