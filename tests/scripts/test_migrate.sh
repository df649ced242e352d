#!/bin/sh
# An archive written by schema version 1 (tests/fixtures/archive-v1.sql, two
# pens with planted cartridge reuse, as an earlier penlink wrote it) is
# migrated on first open: every record reads back with the values of its v1
# row, the audit reports what it reported before, and a v1 archive with a
# damaged record row refuses the migration and stays exactly as it was.
# Usage: test_migrate.sh PENLINK
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=/bin/false
. "$(dirname "$0")/harness.sh"
FX=$(dirname "$0")/../fixtures
A=$tmp/v1.db
sqlite3 "$A" < "$FX/archive-v1.sql" || { echo "sqlite3 could not load the fixture"; exit 1; }
# the v1 rows, read with SQL before penlink touches the file
sqlite3 -json "$A" "SELECT d.serial, r.* FROM records r JOIN devices d ON d.id = r.device_id ORDER BY d.serial, r.seq" > "$tmp/v1rows.json"
check "the fixture is a version 1 archive" '[ "$(sqlite3 "$A" "PRAGMA user_version")" = 1 ]'

run 0 "export from a v1 archive" $PL --archive "$A" export records --format json
cp "$tmp/out" "$tmp/export.jsonl"
check "the archive is now at the current version (4)" '[ "$(sqlite3 "$A" "PRAGMA user_version")" = 4 ]'
check "the v1 columns are gone" '! sqlite3 "$A" "SELECT depth_um FROM records" > /dev/null 2>&1'
python3 - "$tmp/v1rows.json" "$tmp/export.jsonl" << 'PY' && ok "every record equals its v1 row" || bad "migrated records differ"
import json, sys
rows = json.load(open(sys.argv[1]))
got = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == len(got) == 817, (len(rows), len(got))
fields = ["depth_um", "speed_sps", "duration_ms", "cartridge_serial", "cartridge_uses",
          "lifetime_cartridges", "strokes", "fault_code", "config_revision", "clock_delta_ms",
          "dropped"]
for v1, r in zip(rows, got):
    assert (v1["serial"], v1["seq"], v1["time_ms"]) == (r["pen"], r["seq"], r["time_ms"]), (v1, r)
    for k, f in enumerate(fields):
        want = v1[f]
        if f == "cartridge_serial" and want is not None and want < 0:
            want += 1 << 64
        assert bool(v1["fields"] & (1 << k)) == (want is not None), v1
        have = r.get(f)
        if isinstance(have, str):  # 64-bit values are strings in JSON
            have = int(have)
        assert have == want, (f, v1, r)
PY
$PL --archive "$A" --json audit --report all > "$tmp/audit.json"
rc=$?
[ $rc -eq 1 ] && ok "the audit still finds the planted reuse (exit 1)" || bad "audit exit $rc"
cmp -s "$tmp/audit.json" "$FX/archive-v1-audit.json" && ok "the audit equals the one made before the migration" ||
    { bad "audit after migration"; diff "$FX/archive-v1-audit.json" "$tmp/audit.json" | head -10; }
run 0 "a second open does not migrate again" $PL --archive "$A" export records --format json
cmp -s "$tmp/out" "$tmp/export.jsonl" && ok "and reads the same records" || bad "second read differs"

# a v1 archive with an impossible row: the migration is refused, nothing changes
D=$tmp/bad.db
sqlite3 "$D" < "$FX/archive-v1.sql"
sqlite3 "$D" "DROP TRIGGER records_append_only_u; UPDATE records SET depth_um = 5000000000 WHERE seq = 10 AND device_id = 1"
sum_before=$(sqlite3 "$D" .dump | cksum)
$PL --archive "$D" export records > "$tmp/out" 2> "$tmp/err"
rc=$?
[ $rc -eq 6 ] && ok "damaged v1 row: exit 6" || { bad "damaged v1 row: exit $rc"; cat "$tmp/err"; }
grep -q "damaged" "$tmp/err" && ok "the error says the archive is damaged" || { bad "message"; cat "$tmp/err"; }
check "the damaged v1 archive is left as it was" '[ "$(sqlite3 "$D" .dump | cksum)" = "$sum_before" ]'
check "and still at version 1" '[ "$(sqlite3 "$D" "PRAGMA user_version")" = 1 ]'
finish
