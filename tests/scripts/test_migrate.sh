#!/bin/sh
# An archive written by schema version 1 (tests/fixtures/archive-v1.sql, two
# pens with planted cartridge reuse, as an earlier penlink wrote it) is read
# by the read-only commands through a migrated private copy, the file left
# byte for byte as it was; the first command that writes migrates it (and
# gives it penlink's application_id): every record reads back with the values
# of its v1 row, the audit reports what it reported before, and a v1 archive
# with a damaged record row refuses the migration and stays exactly as it was.
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

bytes=$(cksum < "$A")
run 0 "export from a v1 archive" $PL --archive "$A" export records --format json
cp "$tmp/out" "$tmp/export.jsonl"
check "export read it without changing a byte" '[ "$(cksum < "$A")" = "$bytes" ]'
check "it is still at version 1" '[ "$(sqlite3 "$A" "PRAGMA user_version")" = 1 ]'
run 0 "verify --no-record reads it too" $PL --archive "$A" verify --no-record
check "and changes nothing" '[ "$(cksum < "$A")" = "$bytes" ]'
$PL --archive "$A" --json audit --report all | tail -n +2 > "$tmp/audit0.all"
# (the fixture is that penlink's JSON, before schema 1: compared through the
# documented changes, tests/json/upgrade_v0.py; the audit_scope line, where the
# audit's records came from, is newer than the v1 penlink)
"$PY" "$here/../json/upgrade_v0.py" same "$FX/archive-v1-audit.json" "$tmp/audit0.all" audit_scope &&
    ok "the audit of the v1 file as it is equals the one made by a v1 penlink" ||
    bad "audit of the v1 file"
check "and says it read the records from the pens' chunks (no verify stored yet)" \
    'grep -q "^{\"type\":\"audit_scope\",\"records_from\":\"chunks\",\"chunks\":[1-9][0-9]*,.*\"verify_claims\":\[{\"serial\":\"PEN-MIG-A\",\"result\":\"none\"}" "$tmp/audit0.all"'
check "and changes nothing" '[ "$(cksum < "$A")" = "$bytes" ]'
run 0 "verify, recording its verdict, opens it for writing" $PL --archive "$A" verify
check "the archive is now at the current version (5)" '[ "$(sqlite3 "$A" "PRAGMA user_version")" = 5 ]'
check "with penlink's application_id" '[ "$(sqlite3 "$A" "PRAGMA application_id")" = 1347174738 ]'
check "the v1 columns are gone" '! sqlite3 "$A" "SELECT depth_um FROM records" > /dev/null 2>&1'
check "the verdicts are recorded (two unsigned pens)" \
    '[ "$(sqlite3 "$A" "SELECT group_concat(result) FROM verifications")" = "unsigned,unsigned" ]'
python3 - "$tmp/v1rows.json" "$tmp/export.jsonl" << 'PY' && ok "every record equals its v1 row" || bad "migrated records differ"
import json, sys
rows = json.load(open(sys.argv[1]))
got = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == len(got) == 817, (len(rows), len(got))
fields = ["depth_um", "speed_sps", "duration_ms", "cartridge_serial", "cartridge_uses",
          "lifetime_cartridges", "strokes", "fault_code", "config_revision", "clock_delta_ms",
          "dropped"]
for v1, r in zip(rows, got):
    assert (v1["serial"], v1["seq"], v1["time_ms"]) == (r["serial"], r["seq"], r["time_ms"]), (v1, r)
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
# (the first line names this penlink's version and the zone: not compared)
$PL --archive "$A" --json audit --report all > "$tmp/audit-all.json"
rc=$?
head -1 "$tmp/audit-all.json" | grep -q '^{"type":"audit",.*"time_zone":"UTC","schema":1}$' &&
    ok "the audit's first line says what was audited, in which zone" || bad "audit header line"
tail -n +2 "$tmp/audit-all.json" > "$tmp/audit.json"
[ $rc -eq 1 ] && ok "the audit still finds the planted reuse (exit 1)" || bad "audit exit $rc"
# the verdicts recorded above are new; everything else is as it was
"$PY" "$here/../json/upgrade_v0.py" same "$FX/archive-v1-audit.json" "$tmp/audit.json" verification audit_scope &&
    ok "the audit equals the one made before the migration" || bad "audit after migration"
run 0 "the migrated archive exports" $PL --archive "$A" export records --format json
cmp -s "$tmp/out" "$tmp/export.jsonl" && ok "the same records as its private copy did" ||
    bad "the migrated archive reads differently"

# a v1 archive with an impossible row: the migration is refused, nothing changes
D=$tmp/bad.db
sqlite3 "$D" < "$FX/archive-v1.sql"
sqlite3 "$D" "DROP TRIGGER records_append_only_u; UPDATE records SET depth_um = 5000000000 WHERE seq = 10 AND device_id = 1"
sum_before=$(sqlite3 "$D" .dump | cksum)
for cmd in "export records" "verify"; do
    $PL --archive "$D" $cmd > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 6 ] && ok "damaged v1 row, $cmd: exit 6" || { bad "damaged v1 row, $cmd: exit $rc"; cat "$tmp/err"; }
    grep -q "damaged" "$tmp/err" && ok "the error says the archive is damaged" || { bad "message"; cat "$tmp/err"; }
done
check "the damaged v1 archive is left as it was" '[ "$(sqlite3 "$D" .dump | cksum)" = "$sum_before" ]'
check "and still at version 1" '[ "$(sqlite3 "$D" "PRAGMA user_version")" = 1 ]'
finish
