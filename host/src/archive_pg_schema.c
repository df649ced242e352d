/*
 * The PostgreSQL archive backend's schema: its versions, the migrations
 * from one to the next under an advisory lock, and the server's roles
 * (penlink archive init-server: a writer with SELECT and INSERT only, a
 * reader with SELECT).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive_pg.h"
#include "clock.h"

static const char pg_schema_v1[] =
    "CREATE TABLE penlink.schema_version (\n"
    "  version integer PRIMARY KEY, applied_ms bigint NOT NULL, penlink_version text NOT NULL);\n"
    "CREATE TABLE penlink.pens (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, serial text NOT NULL UNIQUE,\n"
    "  first_seen_ms bigint NOT NULL);\n"
    "CREATE TABLE penlink.pen_keys (\n"
    "  device_id bigint PRIMARY KEY REFERENCES penlink.pens(id),\n"
    "  public_key bytea NOT NULL CHECK (length(public_key) = 32), pinned_ms bigint NOT NULL);\n"
    "CREATE TABLE penlink.pen_sightings (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), at_ms bigint NOT NULL,\n"
    "  model text, hardware_revision text, firmware_version text NOT NULL);\n"
    "CREATE INDEX pen_sightings_device ON penlink.pen_sightings (device_id, id);\n"
    "CREATE TABLE penlink.pull_starts (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), started_ms bigint NOT NULL,\n"
    "  host text, os_user text, penlink_version text, from_seq bigint);\n"
    "CREATE INDEX pull_starts_device ON penlink.pull_starts (device_id);\n"
    "CREATE TABLE penlink.pull_ends (\n"
    "  pull_id bigint PRIMARY KEY REFERENCES penlink.pull_starts(id),\n"
    "  finished_ms bigint NOT NULL, next_seq bigint, records_new bigint, records_dup bigint,\n"
    "  conflicts bigint, gap bigint, result text NOT NULL, message text);\n"
    "CREATE TABLE penlink.chunks (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id),\n"
    "  pull_id bigint REFERENCES penlink.pull_starts(id), received_ms bigint NOT NULL,\n"
    "  first_seq bigint NOT NULL, record_count integer NOT NULL, raw_size bigint NOT NULL,\n"
    "  data bytea NOT NULL, prev_link bytea, link bytea);\n"
    /* a chunk is stored once: its bytes by their hash (an index entry has a size limit) */
    "CREATE UNIQUE INDEX chunks_content ON penlink.chunks\n"
    "  (device_id, first_seq, record_count, sha256(data));\n"
    /* records reference their pen and chunk as in SQLite, unchecked per row: the pull
     * writes them in order itself, and a check per row would halve the bulk insert */
    "CREATE TABLE penlink.records (\n"
    "  device_id bigint NOT NULL, seq bigint NOT NULL CHECK (seq >= 0), body bytea NOT NULL,\n"
    "  chunk_id bigint NOT NULL, PRIMARY KEY (device_id, seq));\n"
    "CREATE TABLE penlink.alarms (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id),\n"
    "  pull_id bigint REFERENCES penlink.pull_starts(id), at_ms bigint NOT NULL,\n"
    "  kind text NOT NULL, seq bigint NOT NULL, count bigint NOT NULL, detail text);\n"
    "CREATE INDEX alarms_device ON penlink.alarms (device_id);\n"
    "CREATE TABLE penlink.config_history (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), at_ms bigint NOT NULL,\n"
    "  source text NOT NULL, os_user text, host text, revision bigint NOT NULL,\n"
    "  old_json text, new_json text NOT NULL);\n"
    "CREATE TABLE penlink.heads (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id),\n"
    "  pull_id bigint REFERENCES penlink.pull_starts(id), at_ms bigint NOT NULL,\n"
    "  next_seq bigint NOT NULL, link bytea NOT NULL, signature bytea NOT NULL);\n"
    "CREATE INDEX heads_device ON penlink.heads (device_id, id);\n"
    "CREATE TABLE penlink.verifications (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), at_ms bigint NOT NULL,\n"
    "  result text NOT NULL, through_seq bigint, records bigint NOT NULL,\n"
    "  chunks bigint NOT NULL, detail text);\n"
    "CREATE FUNCTION penlink.append_only() RETURNS trigger LANGUAGE plpgsql AS $$\n"
    "BEGIN\n"
    "  RAISE EXCEPTION '% are append-only', TG_ARGV[0] USING ERRCODE = 'insufficient_privilege';\n"
    "END $$;\n"
    "DO $$\n"
    "DECLARE t text;\n"
    "BEGIN\n"
    "  FOREACH t IN ARRAY ARRAY['schema_version', 'pens', 'pen_keys', 'pen_sightings',\n"
    "    'pull_starts', 'pull_ends', 'chunks', 'records', 'alarms', 'config_history', 'heads',\n"
    "    'verifications'] LOOP\n"
    "    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE OR TRUNCATE ON penlink.%I '\n"
    "      'FOR EACH STATEMENT EXECUTE FUNCTION penlink.append_only(%L)', t || '_append_only',\n"
    "      t, replace(t, '_', ' '));\n"
    "  END LOOP;\n"
    "END $$;\n"
    /* the SQLite archive's tables, as views */
    "CREATE VIEW penlink.devices AS\n"
    "  SELECT p.id, p.serial, s.model, s.hardware_revision, p.first_seen_ms,\n"
    "    coalesce(s.at_ms, p.first_seen_ms) AS last_seen_ms, k.public_key\n"
    "  FROM penlink.pens p LEFT JOIN penlink.pen_keys k ON k.device_id = p.id\n"
    "  LEFT JOIN LATERAL (SELECT model, hardware_revision, at_ms FROM penlink.pen_sightings x\n"
    "    WHERE x.device_id = p.id ORDER BY x.id DESC LIMIT 1) s ON true;\n"
    "CREATE VIEW penlink.device_firmware AS\n"
    "  SELECT device_id, firmware_version, min(at_ms) AS first_seen_ms,\n"
    "    max(at_ms) AS last_seen_ms FROM penlink.pen_sightings GROUP BY 1, 2;\n"
    "CREATE VIEW penlink.pulls AS\n"
    "  SELECT s.id, s.device_id, s.started_ms, e.finished_ms, s.host, s.os_user,\n"
    "    s.penlink_version, s.from_seq, e.next_seq, e.records_new, e.records_dup,\n"
    "    e.conflicts, e.gap, coalesce(e.result, 'running') AS result, e.message\n"
    "  FROM penlink.pull_starts s LEFT JOIN penlink.pull_ends e ON e.pull_id = s.id;\n";

/* Version 2: notes on findings (penlink audit annotate), append-only like the rest. */
static const char pg_schema_v2[] =
    "CREATE TABLE penlink.annotations (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, finding text NOT NULL,\n"
    "  at_ms bigint NOT NULL, author text NOT NULL, os_user text, host text,\n"
    "  text text NOT NULL);\n"
    "CREATE TRIGGER annotations_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON\n"
    "  penlink.annotations FOR EACH STATEMENT EXECUTE FUNCTION "
    "penlink.append_only('annotations');\n";

/* Version 3: a pen's sightings are ordered by their time, not by when they
 * were appended: archive push appends them from a laptop's archive, which
 * may have seen the pen before or after the server did. */
static const char pg_schema_v3[] =
    "CREATE INDEX pen_sightings_latest ON penlink.pen_sightings (device_id, at_ms DESC, id DESC);\n"
    "CREATE OR REPLACE VIEW penlink.devices AS\n"
    "  SELECT p.id, p.serial, s.model, s.hardware_revision, least(p.first_seen_ms, (SELECT\n"
    "    min(at_ms) FROM penlink.pen_sightings y WHERE y.device_id = p.id)) AS first_seen_ms,\n"
    "    coalesce(s.at_ms, p.first_seen_ms) AS last_seen_ms, k.public_key\n"
    "  FROM penlink.pens p LEFT JOIN penlink.pen_keys k ON k.device_id = p.id\n"
    "  LEFT JOIN LATERAL (SELECT model, hardware_revision, at_ms FROM penlink.pen_sightings x\n"
    "    WHERE x.device_id = p.id ORDER BY x.at_ms DESC, x.id DESC LIMIT 1) s ON true;\n";

/* Version 4: device keys replaced on purpose (penlink keys replace),
 * append-only like the rest. */
static const char pg_schema_v4[] =
    "CREATE TABLE penlink.key_replacements (\n"
    "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n"
    "  device_id bigint NOT NULL REFERENCES penlink.pens(id), at_ms bigint NOT NULL,\n"
    "  os_user text, host text, reason text NOT NULL,\n"
    "  old_key bytea NOT NULL CHECK (length(old_key) = 32),\n"
    "  new_key bytea NOT NULL CHECK (length(new_key) = 32),\n"
    "  from_seq bigint NOT NULL, heads_before bigint NOT NULL);\n"
    "CREATE TRIGGER key_replacements_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON\n"
    "  penlink.key_replacements FOR EACH STATEMENT\n"
    "  EXECUTE FUNCTION penlink.append_only('key replacements');\n";

/* Forward migrations: pg_migrations[v] takes the schema from version v to v+1. */
static const char *const pg_migrations[PG_SCHEMA_VERSION] = { pg_schema_v1, pg_schema_v2,
                                                              pg_schema_v3, pg_schema_v4 };

/* The tables a writer may INSERT into (and the views and tables everyone may read). */
static const char pg_insert_tables[] =
    "penlink.pens, penlink.pen_keys, penlink.pen_sightings, penlink.pull_starts, "
    "penlink.pull_ends, penlink.chunks, penlink.records, penlink.alarms, "
    "penlink.config_history, penlink.heads, penlink.verifications, penlink.annotations, "
    "penlink.key_replacements";
/* The one table an auditor's role may INSERT into: notes on findings. */
#define PG_READER_INSERT_TABLE "penlink.annotations"

/* ---- schema --------------------------------------------------------------- */

/* The schema's version, 0 when there is none. pg_class is read by a query
 * (a snapshot taken now), not through to_regclass() and the catalog caches,
 * which an advisory lock does not refresh: under the migration lock, a
 * schema another penlink just created must be seen.
 *
 * The server's counterpart of the SQLite archive's application_id: a schema
 * "penlink" is penlink's when it holds the table schema_version with its
 * columns (version, applied_ms, penlink_version). One that holds tables but
 * not that is another program's, and is refused before anything is written
 * to it (#PENLINK_ERR_UNSUPPORTED): penlink's tables are never added beside
 * another program's. */
int pg_schema_version(pg_backend *g, int *version)
{
    int rc;
    PGresult *r = pg_run(
        g,
        "SELECT count(*), count(*) FILTER (WHERE c.relname = 'schema_version'), (SELECT count(*) "
        "FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class t ON t.oid = a.attrelid JOIN "
        "pg_catalog.pg_namespace s ON s.oid = t.relnamespace WHERE s.nspname = 'penlink' AND "
        "t.relname = 'schema_version' AND a.attname IN ('version', 'applied_ms', "
        "'penlink_version') AND NOT a.attisdropped), coalesce(string_agg(c.relname, ', ' ORDER BY "
        "c.relname) FILTER (WHERE c.relname <> 'schema_version'), '') FROM pg_catalog.pg_class c "
        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'penlink' AND "
        "c.relkind IN ('r', 'p', 'v', 'm', 'f')",
        NULL, "schema version", &rc);
    if (!r)
        return rc;
    int64_t tables = pg_col_int(r, 0, 0), ours = pg_col_int(r, 0, 1), cols = pg_col_int(r, 0, 2);
    char names[160];
    pg_col_text(r, 0, 3, names, sizeof names);
    PQclear(r);
    *version = 0;
    if (tables == 0)
        return PENLINK_OK;
    if (!ours || cols != 3)
        return penlink_fail(g->base.ctx, PENLINK_ERR_UNSUPPORTED,
                            "archive %s is not a penlink archive: its schema penlink holds "
                            "another program's tables (%s) and no penlink schema_version. penlink "
                            "left it untouched; give the database of a penlink archive with "
                            "--archive",
                            g->name, names[0] ? names : "schema_version");
    int64_t v = 0;
    rc = pg_row_ints(g, "SELECT coalesce(max(version), 0)::int4 FROM penlink.schema_version", NULL,
                     "schema version", 1, &v, NULL);
    if (rc == PENLINK_OK)
        *version = (int)v;
    return rc;
}

static int migrate_locked(pg_backend *g, int *from)
{
    int version = 0;
    int rc =
        pg_do(g, "SELECT pg_advisory_xact_lock(" PG_STR(PG_LOCK_SCHEMA) ", 0)", NULL, "migrate");
    /* read it again under the lock: another penlink may have just migrated */
    if (rc == PENLINK_OK)
        rc = pg_schema_version(g, &version);
    *from = version;
    if (rc == PENLINK_OK && version == 0)
        rc = pg_do(g, "CREATE SCHEMA IF NOT EXISTS penlink", NULL, "create the schema");
    for (int v = version; rc == PENLINK_OK && v < PG_SCHEMA_VERSION; v++) {
        PGresult *r = pg_exec(g, g->conn, pg_migrations[v], NULL, 0, "migrate", &rc);
        if (r && PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = pg_fail(g, g->conn, r, "migrate");
        PQclear(r);
        pg_params p = { 0 };
        pg_param_int(&p, v + 1);
        pg_param_int(&p, pc_wall_ms());
        pg_param_text(&p, penlink_version());
        if (rc == PENLINK_OK)
            rc = pg_do(g,
                       "INSERT INTO penlink.schema_version (version, applied_ms, penlink_version) "
                       "VALUES ($1, $2, $3)",
                       &p, "migrate");
    }
    return rc;
}

/*
 * Brings the schema to this version in one transaction, or refuses a newer
 * one untouched. @p create: an archive with no schema yet may be set up
 * (a pull); else it is an error (audit, export, verify of a mistyped URI).
 * *from gets the version found.
 */
/* An archive written by a newer penlink: refused, left untouched. */
int pg_newer_schema(pg_backend *g, int version)
{
    return penlink_fail(g->base.ctx, PENLINK_ERR_UNSUPPORTED,
                        "archive %s has schema version %d, newer than this penlink's %d: update "
                        "penlink (the archive was left untouched)",
                        g->name, version, PG_SCHEMA_VERSION);
}

int pg_migrate(pg_backend *g, int create, int *from)
{
    int version;
    int rc = pg_schema_version(g, &version);
    *from = version;
    if (rc != PENLINK_OK || version == PG_SCHEMA_VERSION)
        return rc;
    if (version > PG_SCHEMA_VERSION)
        return pg_newer_schema(g, version);
    if (version == 0 && !create)
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s holds no penlink archive (schema penlink): pull a pen "
                            "into it first, run 'penlink archive init-server', or give the right "
                            "--archive",
                            g->name);
    if (g->read_only)
        return penlink_fail(g->base.ctx, PENLINK_ERR_IO,
                            "archive %s has schema version %d, older than this penlink's %d, and "
                            "is read-only (a standby): migrate it on the primary first",
                            g->name, version, PG_SCHEMA_VERSION);
    rc = pg_do(g, "BEGIN", NULL, "migrate");
    if (rc == PENLINK_OK)
        rc = migrate_locked(g, from);
    if (rc == PENLINK_OK)
        rc = pg_do(g, "COMMIT", NULL, "migrate");
    if (rc == PENLINK_OK)
        return PENLINK_OK;
    char why[400];
    snprintf(why, sizeof why, "%s", penlink_ctx_errmsg(g->base.ctx));
    int ignored;
    PQclear(pg_exec(g, g->conn, "ROLLBACK", NULL, 0, "migrate", &ignored));
    return penlink_fail(g->base.ctx, rc, "%s. The schema was left as it was (version %d)", why,
                        version);
}

/* ---- the server's roles ---------------------------------------------------- */

static void say(void (*report)(void *, const char *), void *user, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void say(void (*report)(void *, const char *), void *user, const char *fmt, ...)
{
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (report)
        report(user, line);
}

/* Creates @p role (NOLOGIN) unless it exists; *created says which. */
static int make_role(pg_backend *g, const char *role, const char *quoted, int *created)
{
    pg_params p = { 0 };
    pg_param_text(&p, role);
    int rc;
    PGresult *r = pg_run(g, "SELECT count(*) FROM pg_roles WHERE rolname = $1", &p, "roles", &rc);
    if (!r)
        return rc;
    *created = pg_col_int(r, 0, 0) == 0;
    PQclear(r);
    if (!*created)
        return PENLINK_OK;
    char sql[200];
    snprintf(sql, sizeof sql, "CREATE ROLE %s NOLOGIN", quoted);
    return pg_do(g, sql, NULL, "create a role");
}

/* The grants of init-server: both roles read everything; the writer appends;
 * the reader appends notes on findings (penlink audit annotate) only;
 * nobody updates, deletes or truncates. */
static int grant(pg_backend *g, const char *w, const char *r)
{
    char sql[5][600];
    snprintf(sql[0], sizeof sql[0], "GRANT USAGE ON SCHEMA penlink TO %s, %s", w, r);
    snprintf(sql[1], sizeof sql[1], "GRANT SELECT ON ALL TABLES IN SCHEMA penlink TO %s, %s", w, r);
    snprintf(sql[2], sizeof sql[2],
             "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA penlink FROM %s, %s",
             w, r);
    snprintf(sql[3], sizeof sql[3], "GRANT INSERT ON %s TO %s", pg_insert_tables, w);
    snprintf(sql[4], sizeof sql[4], "GRANT INSERT ON " PG_READER_INSERT_TABLE " TO %s", r);
    int rc = PENLINK_OK;
    for (size_t i = 0; rc == PENLINK_OK && i < sizeof sql / sizeof sql[0]; i++)
        rc = pg_do(g, sql[i], NULL, "grant");
    return rc;
}

/* What init-server needs, checked before anything is written (the schema
 * is migrated on open): a primary, and the right to create the roles that
 * do not exist yet (CREATEROLE). */
static int init_check(penlink_ctx *ctx, const char *uri, const char *writer, const char *reader)
{
    pg_backend g;
    memset(&g, 0, sizeof g);
    g.base.ctx = ctx;
    g.reply_wait_ms = pg_reply_wait_s() * 1000;
    int rc = pg_name_server(ctx, uri, g.name, sizeof g.name);
    if (rc != PENLINK_OK)
        return rc;
    PGconn *conn = pg_connect_to(uri);
    if (!conn)
        return PENLINK_ERR_NO_MEM;
    if (PQstatus(conn) != CONNECTION_OK) {
        char words[300];
        pg_server_words(conn, NULL, words, sizeof words);
        PQfinish(conn);
        return penlink_fail(ctx, PENLINK_ERR_IO, "archive %s: cannot connect: %s", g.name, words);
    }
    pg_params p = { 0 };
    pg_param_text(&p, writer);
    pg_param_text(&p, reader);
    PGresult *r = pg_exec(&g, conn,
                          "SELECT pg_is_in_recovery(), (SELECT rolcreaterole OR rolsuper FROM "
                          "pg_roles WHERE rolname = current_user), (SELECT count(*) FROM pg_roles "
                          "WHERE rolname IN ($1, $2))",
                          &p, 0, "init-server", &rc);
    if (r && PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = pg_fail(&g, conn, r, "init-server");
    else if (r && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
        rc = penlink_fail(ctx, PENLINK_ERR_IO,
                          "archive %s: init-server: the server is a hot standby, which can only "
                          "be read: run it on its primary (nothing was changed)",
                          g.name);
    else if (r && strcmp(PQgetvalue(r, 0, 1), "t") != 0 && atoi(PQgetvalue(r, 0, 2)) < 2)
        rc = penlink_fail(ctx, PENLINK_ERR_IO,
                          "archive %s: init-server creates the roles %s and %s, which needs a "
                          "login with CREATEROLE (the database owner's alone is not enough): "
                          "ALTER ROLE ... CREATEROLE, or have them created first (nothing was "
                          "changed)",
                          g.name, writer, reader);
    PQclear(r);
    PQfinish(conn);
    return rc;
}

int penlink_archive_init_server(penlink_ctx *ctx, const char *uri, const char *writer,
                                const char *reader, void (*report)(void *user, const char *line),
                                void *user)
{
    penlink_enter(ctx);
    if (!ctx || !uri || !writer || !reader || !*writer || !*reader || strcmp(writer, reader) == 0)
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "init-server needs a server and two different role names");
    if (!archive_is_server(uri))
        return penlink_fail(ctx, PENLINK_ERR_INVALID_ARG,
                            "'%s' is not a PostgreSQL connection string (postgresql://..., "
                            "postgres://... or service=NAME)",
                            uri);
    int rc = init_check(ctx, uri, writer, reader);
    if (rc != PENLINK_OK)
        return rc;
    pg_backend *g = NULL;
    int from = 0;
    rc = pg_open(ctx, uri, 1, 0, &g, &from);
    if (rc != PENLINK_OK)
        return rc;
    if (from == PG_SCHEMA_VERSION)
        say(report, user, "schema penlink: at version %d already", PG_SCHEMA_VERSION);
    else if (from == 0)
        say(report, user, "schema penlink: created, version %d", PG_SCHEMA_VERSION);
    else
        say(report, user, "schema penlink: migrated from version %d to %d", from,
            PG_SCHEMA_VERSION);
    char *w = PQescapeIdentifier(g->conn, writer, strlen(writer));
    char *rd = PQescapeIdentifier(g->conn, reader, strlen(reader));
    int wc = 0, rcr = 0;
    if (!w || !rd)
        rc = penlink_fail(ctx, PENLINK_ERR_INVALID_ARG, "a role name cannot be quoted");
    if (rc == PENLINK_OK)
        rc = pg_do(g, "BEGIN", NULL, "roles");
    if (rc == PENLINK_OK)
        rc = make_role(g, writer, w, &wc);
    if (rc == PENLINK_OK)
        rc = make_role(g, reader, rd, &rcr);
    if (rc == PENLINK_OK)
        rc = grant(g, w, rd);
    if (rc == PENLINK_OK)
        rc = pg_commit(&g->base);
    else
        pg_rollback(&g->base);
    if (rc == PENLINK_OK) {
        say(report, user, "role %s: %s (NOLOGIN): SELECT on every table, INSERT on the archive's",
            writer, wc ? "created" : "exists");
        say(report, user,
            "role %s: %s (NOLOGIN): SELECT on every table, INSERT on the notes on findings "
            "(annotations)",
            reader, rcr ? "created" : "exists");
        say(report, user,
            "nobody may UPDATE, DELETE or TRUNCATE: triggers refuse it on every table");
        say(report, user,
            "next: GRANT %s TO each technician's or docking station's login, GRANT %s TO each "
            "auditor's",
            writer, reader);
    }
    PQfreemem(w);
    PQfreemem(rd);
    pg_close(&g->base);
    return rc;
}
