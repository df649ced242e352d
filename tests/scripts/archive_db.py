"""The tests' one way into an archive, whichever backend holds it: a SQLite
file or a PostgreSQL database (a postgresql:// URI). The tests read and edit
archives through this with the same SQL (the PostgreSQL archive has views
with the SQLite tables' names), so one set of test code checks both.

As a program:
  archive_db.py query ARCHIVE SQL     rows as sqlite3 prints them (a|b|c)
  archive_db.py edit ARCHIVE SQL...   runs the statements with the append-only
                                      guards lifted (as a hand edit would)
  archive_db.py same ARCHIVE SERIAL TRUTH [prefix]
                                      the pen's archived records equal the
                                      simulator's ground truth (exit 1 if not)
  archive_db.py union [--subset] ARCHIVE SOURCE...
                                      the archive holds exactly the union of
                                      the sources (records, chunks, heads,
                                      alarms, configuration history, pinned
                                      keys), each chunk once (exit 1 if not);
                                      --subset: nothing but what they hold
"""
import json
import sqlite3
import struct
import sys

# SQLite's triggers by name; PostgreSQL's per table (disabled, not dropped)
SQLITE_TRIGGERS = [t + s for t in ("records", "chunks", "heads", "alarms", "verifications",
                             "config_history", "annotations", "key_replacements")
                   for s in ("_append_only_u", "_append_only_d")] + ["devices_key_pinned"]
PG_TABLES = ["pens", "pen_keys", "pen_sightings", "pull_starts", "pull_ends", "chunks", "records",
             "alarms", "config_history", "heads", "verifications", "schema_version", "annotations",
             "key_replacements"]


def is_server(archive):
    return archive.startswith(("postgresql://", "postgres://"))


class Archive:
    def __init__(self, archive):
        self.pg = is_server(archive)
        if self.pg:
            import psycopg2
            self.con = psycopg2.connect(archive)
            self.con.cursor().execute("SET search_path = penlink")
        else:
            self.con = sqlite3.connect(archive)

    def execute(self, sql, params=()):
        """Runs SQL with ? placeholders; returns the rows (bytes for blobs)."""
        if self.pg:
            cur = self.con.cursor()
            cur.execute(sql.replace("%", "%%").replace("?", "%s"), params)
            rows = cur.fetchall() if cur.description else []
        else:
            rows = self.con.execute(sql, params).fetchall()
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r) for r in rows]

    def one(self, sql, params=()):
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def unlock(self):
        """Lifts the append-only guards, as someone editing the archive by hand would."""
        for t in (PG_TABLES if self.pg else SQLITE_TRIGGERS):
            if self.pg:
                self.execute("ALTER TABLE penlink.%s DISABLE TRIGGER USER" % t)
            else:
                self.execute("DROP TRIGGER IF EXISTS " + t)

    def set_key(self, serial, key):
        """Replaces a pen's pinned key (a tampering)."""
        if self.pg:
            self.execute("UPDATE pen_keys SET public_key = ? WHERE device_id = "
                         "(SELECT id FROM pens WHERE serial = ?)", (key, serial))
        else:
            self.execute("UPDATE devices SET public_key = ? WHERE serial = ?", (key, serial))

    def commit(self):
        self.con.commit()


# the record body, decoded here from its description in host/src/record_body.c
COLS = ["depth_um", "speed_sps", "duration_ms", "cartridge_serial", "cartridge_uses",
        "lifetime_cartridges", "strokes", "fault_code", "config_revision", "clock_delta_ms",
        "dropped"]
KINDS = ["power_on", "power_off", "treatment_start", "treatment_end", "cartridge_inserted",
         "cartridge_removed", "cartridge_refused", "depth_changed", "speed_changed", "fault",
         "config_changed", "clock_set", "log_overflow"]


def varint(b, i):
    x = s = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7f) << s
        s += 7
        if c < 0x80:
            return x, i


def body(b):
    r = {"time_ms": struct.unpack_from("<q", b)[0]}
    r["kind"], i = varint(b, 8)
    mask, i = varint(b, i)
    for k, c in enumerate(COLS):
        if mask & (1 << k):
            r[c], i = varint(b, i)
            if c == "clock_delta_ms":
                r[c] = (r[c] >> 1) ^ -(r[c] & 1)
    assert i == len(b), b
    return r


def same(archive, serial, truth, prefix=False):
    """The pen's archived records == the ground truth (a prefix of the archive with prefix)."""
    rows = Archive(archive).execute(
        "SELECT r.seq, r.body FROM records r JOIN devices d ON d.id = r.device_id "
        "WHERE d.serial = ? ORDER BY r.seq", (serial,))
    want = [json.loads(line) for line in open(truth)]
    if prefix:
        rows = rows[:len(want)]
    assert len(rows) == len(want), f"{len(rows)} archived, {len(want)} logged"
    for (seq, b), w in zip(rows, want):
        r = body(b)
        assert seq == w["seq"] and r["time_ms"] == w["time_ms"], (seq, r, w)
        assert KINDS[r["kind"] - 1] == w["kind"], (seq, r, w)
        for c in COLS:
            assert r.get(c) == w.get(c), (c, r, w)


# What a push carries, per table: the rows as sets, the pen named by its serial.
CONTENT = {
    "records": "SELECT d.serial, x.seq, x.body FROM records x JOIN devices d ON d.id = x.device_id",
    "chunks": "SELECT d.serial, x.first_seq, x.record_count, x.raw_size, x.data, x.prev_link, "
              "x.link FROM chunks x JOIN devices d ON d.id = x.device_id",
    "heads": "SELECT d.serial, x.next_seq, x.link, x.signature FROM heads x JOIN devices d "
             "ON d.id = x.device_id",
    "alarms": "SELECT d.serial, x.kind, x.seq, x.count, x.detail FROM alarms x JOIN devices d "
              "ON d.id = x.device_id",
    "config history": "SELECT d.serial, x.at_ms, x.source, x.os_user, x.host, x.revision, "
                      "x.old_json, x.new_json FROM config_history x JOIN devices d "
                      "ON d.id = x.device_id",
    "pinned keys": "SELECT serial, public_key FROM devices WHERE public_key IS NOT NULL",
}


def union(archive, sources, subset=False):
    """The archive == the union of the sources (or a part of it), table by table; no chunk
    or record twice."""
    got = {t: Archive(archive).execute(q) for t, q in CONTENT.items()}
    for t, q in CONTENT.items():
        want = set()
        for src in sources:
            want |= set(Archive(src).execute(q))
        have = set(got[t])
        assert have <= want if subset else have == want, "%s: %d rows, want %d; %d missing, %d not in any source" % (
            t, len(have), len(want), len(want - have), len(have - want))
    assert len(got["chunks"]) == len(set(got["chunks"])), "a chunk stored twice"
    seqs = [(r[0], r[1]) for r in got["records"]]
    assert len(seqs) == len(set(seqs)), "a record stored twice"


def main():
    cmd = sys.argv[1]
    if cmd == "query":
        a = Archive(sys.argv[2])
        for row in a.execute(sys.argv[3]):
            print("|".join("" if v is None else str(v) for v in row))
        a.commit()
    elif cmd == "edit":
        a = Archive(sys.argv[2])
        a.unlock()
        for sql in sys.argv[3:]:
            a.execute(sql)
        a.commit()
    elif cmd == "same":
        try:
            same(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:] == ["prefix"])
        except AssertionError as e:
            print("archive differs from the ground truth:", e, file=sys.stderr)
            sys.exit(1)
    elif cmd == "union":
        try:
            subset = sys.argv[2] == "--subset"
            union(sys.argv[2 + subset], sys.argv[3 + subset:], subset)
        except AssertionError as e:
            print("archive is not the union of its sources:", e, file=sys.stderr)
            sys.exit(1)
    else:
        sys.exit("usage: archive_db.py query|edit|same|union ...")


if __name__ == "__main__":
    main()
