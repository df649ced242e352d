#!/bin/sh
# The audit an inspector can rely on: one section per defect of issue 13
# that the audit had, each with the case that showed it.
#  13.1 nothing examined passed: an unknown pen, an empty archive, a window
#       with no records; bad and reversed dates; offsets; the time zone.
#  13.2 alarms were dated by a record, not by when they were raised, and
#       shown once per repeat; alarms of a newer kind passed for conflicts.
#  13.4 a configuration changed before the first pull left revision 1's
#       treatments unchecked (limits_unknown), though the history held it.
#  13.5 the verdict was the CLI's: a BROKEN log gave "integrity findings 0"
#       and "compliance": 0 with exit 1; "see above" under no findings.
#  13.7 a simulated pen's clock caught up with the host's once it served, so
#       what it logged after a pull depended on the calendar.
# Usage: test_audit_defects.sh PENLINK PENLINK_SIM AUDIT_SUMMARY
# (AUDIT_SUMMARY: tests/tools/audit_summary.c, a library caller of the audit)
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
LIBSUM=${3:-}
FX=$(dirname "$0")/../fixtures
. "$(dirname "$0")/harness.sh"

# PEN-A001: a week from 2026-03-02 (T0), pulled; its ground truth for windows
start_sim a --serial PEN-A001 --seed 41 --simulate-days 7 --start-time $T0
A=$tmp/a.db
run 0 "pull PEN-A001" $PL --archive "$A" --device "sim:$tmp/a.sock" pull
# treatments of the ground truth that start in [lo, hi) (ms)
starts_between() {
    python3 -c '
import json, sys
lo, hi = int(sys.argv[2]), int(sys.argv[3])
print(sum(1 for l in open(sys.argv[1]) if "\"treatment_start\"" in l
          and lo <= json.loads(l)["time_ms"] < hi))' "$tmp/a/ground-truth.jsonl" "$1" "$2"
}
ntreat() { grep -c '"type":"treatment"' "$1"; }

echo "# 13.1 nothing examined is never a pass"
run 2 "--pen a serial the archive does not hold: usage error" $PL --archive "$A" audit --pen PEN-9999
check "the error names the archive's pens" 'grep -q "no pen PEN-9999 in the archive; it holds 1 pen: PEN-A001" $tmp/err'
run 2 "--pen in the wrong case: usage error" $PL --archive "$A" audit --pen pen-a001
check "the error names the close match" 'grep -q "did you mean PEN-A001?" $tmp/err'
run 2 "--pen with a typo: usage error" $PL --archive "$A" audit --pen PEN-A01
check "the error names the close match" 'grep -q "did you mean PEN-A001?" $tmp/err'
run 2 "--device usb:SERIAL of no pen in the archive" $PL --archive "$A" --device usb:PEN-9999 audit
# a USB port (usb:BUS-PORT.PORT) names no serial: refused, as audit --help says
for port in 1-2 1-2.3; do
    run 2 "--device usb:$port (a USB port): usage error" $PL --archive "$A" --device usb:$port audit
    check "usb:$port: the error says it names no pen serial" 'grep -q "usb:$port names no pen serial" $tmp/err'
done
run 2 "--device usb:serial=1-2 is the serial 1-2 (not in the archive)" $PL --archive "$A" --device usb:serial=1-2 audit
check "usb:serial=1-2: the archive has no such pen" '! grep -q "names no pen serial" $tmp/err'
run 2 "verify --pen NOSUCH: usage error" $PL --archive "$A" verify --pen NOSUCH
check "verify names the archive's pens" 'grep -q "it holds 1 pen: PEN-A001" $tmp/err'
run 2 "export --pen NOSUCH: usage error" $PL --archive "$A" export records --pen NOSUCH
run 0 "the right serial passes" $PL --archive "$A" audit --pen PEN-A001 --report usage

# a pen with no record at all: its archive holds its row, nothing to audit
start_sim e --serial PEN-E001
E=$tmp/e.db
run 0 "pull a pen with an empty log" $PL --archive "$E" --device "sim:$tmp/e.sock" pull
run 1 "audit of an archive without records: exit 1" $PL --archive "$E" audit --format json
check "a no_records finding, compliance" \
    'grep -q "\"finding\":\"no_records\",\"compliance\":true" $tmp/out'
run 1 "the table says so too" $PL --archive "$E" audit
check "table: no records to audit" 'grep -q "no_records .*no records to audit" $tmp/out'
run 1 "and --pen of that pen" $PL --archive "$E" audit --pen PEN-E001 --format csv --report integrity
check "csv: the finding, with the pen" 'grep -q "^PEN-E001,no_records,1," $tmp/out'
# an archive without any pen
cp "$E" "$tmp/z.db"
sqlite3 "$tmp/z.db" "DROP TRIGGER config_history_append_only_d; DELETE FROM config_history;
    DELETE FROM pulls; DELETE FROM device_firmware; DELETE FROM devices;"
run 1 "audit of an archive without pens: exit 1" $PL --archive "$tmp/z.db" audit --format json
check "no_records" 'grep -q "\"finding\":\"no_records\"" $tmp/out'
run 2 "--pen on an archive without pens" $PL --archive "$tmp/z.db" audit --pen PEN-A001
check "the error says it holds no pens" 'grep -q "holds no pens at all" $tmp/err'

# windows without records
run 1 "a window after the last record: exit 1" $PL --archive "$A" audit --since 2027-01-01 --format json
check "no_records, naming the records outside the window" \
    'grep -q "\"finding\":\"no_records\".*has a pen time in the window" $tmp/out'
run 1 "a window before the first record: exit 1" $PL --archive "$A" audit --until 2026-03-01
run 0 "a window with records: exit 0" $PL --archive "$A" audit --since 2026-03-03 --until 2026-03-04

# dates
run 2 "--since 2026-02-30: usage error" $PL --archive "$A" audit --since 2026-02-30
check "the error says why" 'grep -q "2026-02 has no day 30" $tmp/err'
run 2 "--until 2026-02-29 (not a leap year)" $PL --archive "$A" audit --until 2026-02-29
run 2 "--since 2026-13-01" $PL --archive "$A" audit --since 2026-13-01
run 2 "--since T25:00" $PL --archive "$A" audit --since 2026-03-03T25:00
run 2 "export --since 2026-04-31" $PL --archive "$A" export records --since 2026-04-31
run 2 "--since after --until: usage error" $PL --archive "$A" audit --since 2026-03-05 --until 2026-03-04
check "the error says the window is empty" 'grep -q "is not before --until" $tmp/err'
run 2 "--since equal to --until" $PL --archive "$A" audit --since 2026-03-05T10:00 --until 2026-03-05T10:00
run 2 "export: reversed window" $PL --archive "$A" export treatments --since 2026-03-05 --until 2026-03-04

# UTC offsets: the same instants, the same treatments
lo=$((T0 + 86400000 + 8 * 3600000)) hi=$((T0 + 3 * 86400000 - 3600000))
expect=$(starts_between $lo $hi)
run 0 "--since/--until with +01:00 offsets" $PL --archive "$A" audit --format json --report treatments \
    --since 2026-03-03T09:00:00+01:00 --until 2026-03-05T00:00:00+01:00
cp "$tmp/out" "$tmp/off.json"
run 0 "the same window in Z" $PL --archive "$A" audit --format json --report treatments \
    --since 2026-03-03T08:00:00Z --until 2026-03-04T23:00:00Z
check "the same treatments ($expect, from the ground truth)" \
    '[ "$(ntreat $tmp/off.json)" -eq "$expect" ] && [ "$expect" -gt 0 ] && cmp -s "$(tail -n +2 $tmp/off.json > $tmp/o1; echo $tmp/o1)" "$(tail -n +2 $tmp/out > $tmp/o2; echo $tmp/o2)"'
run 0 "-0500 and fractions of a second" $PL --archive "$A" audit --format json --report treatments \
    --since 2026-03-03T03:00:00.000-0500 --until 2026-03-04T18:00:00,5-05
check "the same treatments" '[ "$(ntreat $tmp/out)" -eq "$expect" ]'

# the time zone: --tz, or TZ; dates without an offset are its local time
lo=$((T0 + 86400000 - 3600000)) hi=$((T0 + 3 * 86400000 - 3600000))
expect=$(starts_between $lo $hi)
run 0 "--tz Europe/Berlin: local days" $PL --archive "$A" audit --format json --tz Europe/Berlin \
    --since 2026-03-03 --until 2026-03-04
check "the treatments of those Berlin days ($expect)" '[ "$(ntreat $tmp/out)" -eq "$expect" ] && [ "$expect" -gt 0 ]'
check "json: the first line names the zone" 'head -1 $tmp/out | grep -q "\"time_zone\":\"Europe/Berlin\""'
check "json: times carry their offset" 'grep "\"type\":\"treatment\"" $tmp/out | grep -q "\"start\":\"2026-03-0[3-4]T[0-9:.]*+01:00\""'
run 0 "table in Berlin time" $PL --archive "$A" audit --tz Europe/Berlin --since 2026-03-03 --until 2026-03-04 --report treatments
check "the table states its zone and window" \
    'grep -q "times: the pens. clocks, shown in Europe/Berlin" $tmp/out && grep -q "window: from 2026-03-03 00:00:00 to 2026-03-05 00:00:00" $tmp/out'
run 0 "csv in Berlin time" $PL --archive "$A" audit --tz Europe/Berlin --format csv --report treatments --pen PEN-A001
check "csv: times carry their offset" 'sed -n 2p $tmp/out | grep -q ",2026-03-02T[0-9:.]*+01:00,"'
run 2 "--tz of no zone: usage error" $PL --archive "$A" audit --tz Nowhere/Atlantis
check "the error says so" 'grep -q "unknown time zone .Nowhere/Atlantis." $tmp/err'
run 2 "export --tz of no zone" $PL --archive "$A" export records --tz Nowhere/Atlantis
TZ=America/New_York $PL --archive "$A" audit --format json --report treatments > "$tmp/out"
check "the default zone is TZ's" 'head -1 $tmp/out | grep -q "\"time_zone\":\"America/New_York\"" && grep -q "\"start\":\"[0-9T:.-]*-05:00\"" $tmp/out'
TZ=America/New_York $PL --archive "$A" export records --format json > "$tmp/out"
check "export: times in TZ's zone" 'head -1 $tmp/out | grep -q "\"time\":\"2026-03-0[12]T[0-9:.]*-05:00\""'
# usage per day is per local day: in UTC+14 most treatments fall on the next day
run 0 "usage per day in Pacific/Kiritimati" $PL --archive "$A" audit --format json --tz Pacific/Kiritimati --report all --by day
python3 - "$tmp/out" << 'PY' && ok "each treatment counted on its local day" || bad "usage per local day"
import datetime, json, sys, zoneinfo
rows = [json.loads(l) for l in open(sys.argv[1])]
zone = zoneinfo.ZoneInfo("Pacific/Kiritimati")
want = {}
for t in (r for r in rows if r["type"] == "treatment"):
    day = datetime.datetime.fromtimestamp(t["start_ms"] / 1000, zone).date().isoformat()
    want[day] = want.get(day, 0) + 1
got = {r["period"]: r["treatments"] for r in rows if r["type"] == "usage" and r["treatments"]}
assert got == want, (got, want)
utc = {}
for t in (r for r in rows if r["type"] == "treatment"):
    day = datetime.datetime.fromtimestamp(t["start_ms"] / 1000, datetime.timezone.utc).date()
    utc[day.isoformat()] = utc.get(day.isoformat(), 0) + 1
assert got != utc, "the same days as in UTC: nothing was tested"
starts = [r["period_start"] for r in rows if r["type"] == "usage"]
assert all(s.endswith("T00:00:00.000+14:00") for s in starts), starts
PY
stop_sim e

echo "# 13.2 alarms: when raised, which records, one finding per incident"
# a clone of PEN-A001 (same serial, another device key) is refused at each try
$SIM --state "$tmp/clone" --serial PEN-A001 --seed 42 --simulate-days 2 --start-time $T0 > /dev/null
start_sim clone
cp "$A" "$tmp/k.db"
K=$tmp/k.db
run 6 "a clone's pull is refused" $PL --archive "$K" --device "sim:$tmp/clone.sock" pull
run 6 "and again" $PL --archive "$K" --device "sim:$tmp/clone.sock" pull
stop_sim clone
check "the archive holds the alarm once per attempt" \
    '[ "$(sqlite3 "$K" "SELECT count(*) FROM alarms WHERE kind = '"'key_changed'"'")" = 2 ]'
run 1 "audit: exit 1" $PL --archive "$K" audit --format json --report integrity
python3 - "$tmp/out" << 'PY' && ok "one key_changed finding, raised twice, first and last time" || bad "key_changed repeats"
import json, sys
f = [json.loads(l) for l in open(sys.argv[1])]
k = [x for x in f if x.get("finding") == "key_changed"]
assert len(k) == 1, k
k = k[0]
assert k["repeats"] == 2 and k["raised"] <= k["raised_last"] and k["compliance"], k
assert k["time"] is None, k  # it concerns no archived record: the clone's log was not pulled
assert "raised 2 times" in k["detail"], k
PY
run 1 "table: the same" $PL --archive "$K" audit --report integrity
check "one line, with when it was raised" \
    '[ "$(grep -c "^  PEN-A001 key_changed " $tmp/out)" = 1 ] && grep -q "key_changed .*(raised 2 times); raised 20[0-9-]* [0-9:]*, again until" $tmp/out'
run 1 "csv: the same" $PL --archive "$K" audit --format csv --report integrity
check "csv: raised, raised_last, repeats" \
    'head -1 $tmp/out | grep -q ",detail,raised,raised_last,repeats,id,annotations$" && [ "$(grep -c "^PEN-A001,key_changed,1,.*,2,key_changed:PEN-A001:0,$" $tmp/out)" = 1 ]'
# a window around the raise holds no record of the pen, but the alarm
at=$(sqlite3 "$K" "SELECT min(at_ms) FROM alarms")
iso() { python3 -c 'import datetime, sys; print(datetime.datetime.fromtimestamp(int(sys.argv[1]) / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))' "$1"; }
run 1 "a window around the raise only" $PL --archive "$K" audit --format json --report integrity \
    --since "$(iso $((at - 3600000)))" --until "$(iso $((at + 3600000)))"
check "shows key_changed (and that no record lies in it)" \
    'grep -q "\"finding\":\"key_changed\"" $tmp/out && grep -q "\"finding\":\"no_records\"" $tmp/out'
run 0 "a window over the records, long before the raise" $PL --archive "$K" audit --format json \
    --report integrity --since 2026-03-02 --until 2026-03-05
check "does not show it" '! grep -q key_changed $tmp/out'

# a gap: a chunk's records were never archived, the pull that saw it was later
G=$tmp/g.db
cp "$A" "$G"
raised=$((T0 + 200 * 86400000)) # 2026-09-18, months after the records
# the records of the log's second chunk (the audit reads the chunks, so the chunk goes too)
set -- $(sqlite3 -separator ' ' "$G" "SELECT first_seq, record_count FROM chunks
    ORDER BY first_seq LIMIT 1 OFFSET 1")
g0=$1 gn=$2 g1=$(($1 + $2))
sqlite3 "$G" "DROP TRIGGER records_append_only_d; DROP TRIGGER chunks_append_only_d;
    DELETE FROM records WHERE seq BETWEEN $g0 AND $((g1 - 1)); DELETE FROM chunks WHERE first_seq = $g0;
    INSERT INTO alarms (device_id, pull_id, at_ms, kind, seq, count, detail) VALUES
    (1, NULL, $raised, 'gap', $g0, $gn, 'records $g0..$((g1 - 1)) were no longer on the pen');"
t120=$(python3 -c 'import json, sys
print([json.loads(l) for l in open(sys.argv[1])][int(sys.argv[2])]["time_ms"])' "$tmp/a/ground-truth.jsonl" "$g1")
run 1 "a window holding the record after the gap" $PL --archive "$G" audit --format json \
    --report integrity --since "$(iso $((t120 - 60000)))" --until "$(iso $((t120 + 60000)))"
python3 - "$tmp/out" "$t120" "$g0" "$gn" << 'PY' && ok "shows the gap at that record's time, raised months later" || bad "gap by its record"
import datetime, json, sys
g = [json.loads(l) for l in open(sys.argv[1]) if '"finding":"gap"' in l]
assert len(g) == 1, g
t = datetime.datetime.fromtimestamp(int(sys.argv[2]) / 1000, datetime.timezone.utc)
assert g[0]["time"] == t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (int(sys.argv[2]) % 1000), g
assert (g[0]["seq"], g[0]["count"], g[0]["repeats"]) == (int(sys.argv[3]), int(sys.argv[4]), 1), g
assert g[0]["raised"] == "2026-09-18T00:00:00.000Z", g
PY
run 1 "a window holding the raise only" $PL --archive "$G" audit --format json --report integrity \
    --since 2026-09-18 --until 2026-09-19
check "shows the gap" 'grep -q "\"finding\":\"gap\",.*\"seq\":$g0," $tmp/out'
# (records deleted from a signed log: the audit's own verification finds the log broken)
run 1 "a window holding neither" $PL --archive "$G" audit --format json --report integrity \
    --since 2026-03-06 --until 2026-03-07
check "shows no gap, and no missing records either" '! grep -q "\"finding\":\"gap\"\|\"finding\":\"missing\"" $tmp/out'
check "the deletion is a broken log" 'grep -q "\"finding\":\"log_broken\"" $tmp/out'

# an alarm of a kind this audit does not know is an integrity finding by its name
sqlite3 "$G" "INSERT INTO alarms (device_id, pull_id, at_ms, kind, seq, count, detail) VALUES
    (1, NULL, $raised, 'signing_dropped', 0, 0, 'the pen no longer signs its log');"
run 1 "an alarm of a newer kind" $PL --archive "$G" audit --format json --report integrity
check "reported by its own name, as a compliance integrity finding" \
    'grep -q "\"report\":\"integrity\",\"finding\":\"signing_dropped\",\"compliance\":true" $tmp/out && ! grep -q "\"finding\":\"conflict\"" $tmp/out'
run 1 "table: by its name" $PL --archive "$G" audit --report integrity
check "table: signing_dropped" 'grep -q " signing_dropped .*no longer signs its log" $tmp/out'
stop_sim a

echo "# 13.4 the limits of the revision a change replaced"
# three days under revision 1 (max_treatment_s 3600, some treatments past it),
# then the configuration is changed before the pen was ever pulled
start_sim c --serial PEN-C001 --seed 51 --simulate-days 3 --start-time $T0 --over-limit-permille 200
C=$tmp/c.db
run 0 "config set before the first pull" $PL --archive "$C" --device "sim:$tmp/c.sock" config set max_treatment_s=5400
run 0 "then the first pull" $PL --archive "$C" --device "sim:$tmp/c.sock" pull
stop_sim c
check "the history holds revision 1 only as the change's old values" \
    '[ "$(sqlite3 "$C" "SELECT revision, json_extract(old_json, '"'$.revision'"'), json_extract(old_json, '"'$.max_treatment_s'"') FROM config_history")" = "2|1|3600" ]'
run 1 "audit" $PL --archive "$C" audit --format json
python3 - "$tmp/out" "$tmp/c/ground-truth.jsonl" << 'PY' && ok "no limits_unknown: revision 1's limits checked every treatment" || bad "revision 1 unchecked"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
truth = [json.loads(l) for l in open(sys.argv[2])]
assert not [r for r in rows if r.get("finding") == "limits_unknown"], "limits_unknown reported"
treat = [r for r in rows if r["type"] == "treatment"]
changed = [r for r in truth if r["kind"] == "config_changed"]
assert len(changed) == 1 and changed[0]["config_revision"] == 2, changed
assert treat and all(t["config_revision"] == 1 for t in treat), "treatments not under revision 1"
start, want = None, set()
for r in truth:
    if r["kind"] == "treatment_start":
        start = r["seq"]
    elif r["kind"] == "treatment_end" and r["duration_ms"] > 3600 * 1000:
        want.add(start)
got = {r["seq"] for r in rows if r.get("finding") == "out_of_limits"}
assert want and got == want, (sorted(got), sorted(want))
assert all(r["config_revision"] == 1 for r in rows if r.get("finding") == "out_of_limits")
print("   %d treatments under revision 1, %d past its max_treatment_s" % (len(treat), len(want)))
PY

echo "# 13.5 one verdict, the library's, said the same way everywhere"
# the table's summary, the JSON summary and a library caller's must agree
cat > "$tmp/same.py" << 'PY'
import json, re, sys
table = open(sys.argv[1]).read()
js = [json.loads(l) for l in open(sys.argv[2])]
s = [x for x in js if x["type"] == "summary"][-1]
lib = {}
for l in open(sys.argv[3]):
    k, v = l.rstrip("\n").rsplit(" ", 1)
    lib[k] = v
m = re.search(r"Summary: (\d+) pens, (\d+) records \((\d+) in the window\), (\d+) treatments, "
              r"(\d+) cartridges\n  findings: (.*)\n  compliance findings (\d+), integrity "
              r"findings (\d+)\n  logs: (\d+) verified, (\d+) broken, (\d+) not verified offline, "
              r"(\d+) unsigned\nVerdict: (PASS|FAIL)", table)
assert m, "no summary in the table"
g = m.groups()
want = (s["pens"], s["records"], s["records_in_window"], s["treatments"], s["cartridges"])
assert tuple(map(int, g[:5])) == want, (g, s)
kinds = {} if g[5] == "none" else {k: int(n) for k, n in (x.rsplit(" ", 1) for x in g[5].split(", "))}
assert kinds == s["findings"], (kinds, s["findings"])
assert (int(g[6]), int(g[7])) == (s["compliance"], s["integrity"]), (g, s)
logs = s["logs"]
assert tuple(map(int, g[8:12])) == (logs["verified"], logs["broken"], logs["not_verified"],
                                    logs["unsigned"]), (g, logs)
assert g[12].lower() == s["verdict"], (g[12], s["verdict"])
assert (s["verdict"] == "fail") == (s["compliance"] > 0)
assert lib["verdict"] == s["verdict"] and int(lib["compliance"]) == s["compliance"], (lib, s)
assert int(lib["integrity"]) == s["integrity"] and int(lib["logs_broken"]) == logs["broken"]
assert {k[8:]: int(v) for k, v in lib.items() if k.startswith("finding ")} == s["findings"]
print("   %s: %d compliance, %d integrity, findings %s" % (s["verdict"], s["compliance"],
                                                         s["integrity"], s["findings"]))
PY
same() { # name exit archive audit-args...: table, JSON and the library agree
    name=$1 code=$2 ar=$3
    shift 3
    $PL --archive "$ar" audit "$@" > "$tmp/t.txt" 2> "$tmp/err"
    t=$?
    $PL --archive "$ar" audit --format json "$@" > "$tmp/t.json" 2>> "$tmp/err"
    j=$?
    "$LIBSUM" "$ar" > "$tmp/t.lib" 2>> "$tmp/err" || : > "$tmp/t.lib"
    if [ $t -eq "$code" ] && [ $j -eq "$code" ] && [ -s "$tmp/t.lib" ] &&
        python3 "$tmp/same.py" "$tmp/t.txt" "$tmp/t.json" "$tmp/t.lib"; then
        ok "$name: table, JSON and library say the same (exit $code)"
    else
        bad "$name: exit $t (table), $j (json), want $code"
        sed 's/^/    /' "$tmp/err" | head -5
    fi
}
# a pen whose archived log penlink verify found altered
B=$tmp/broken.db
cp "$A" "$B"
run 0 "verify the intact copy" $PL --archive "$B" verify
same "verified, nothing found" 0 "$B"
$PL --archive "$B" audit --format json > "$tmp/intact.json" 2> /dev/null
$PL --archive "$B" audit > "$tmp/intact.txt" 2> /dev/null
# a record row edited: the audit reads the chunks, so nothing it says changes; verify names it
R=$tmp/row.db
cp "$B" "$R"
python3 - "$R" << 'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("DROP TRIGGER records_append_only_u")
seq, body = con.execute("SELECT seq, body FROM records ORDER BY seq LIMIT 1 OFFSET 300").fetchone()
b = bytearray(body); b[-1] ^= 1
con.execute("UPDATE records SET body = ? WHERE seq = ?", (bytes(b), seq))
con.commit()
PY
run 6 "verify finds the edited record row" $PL --archive "$R" verify --no-record
check "verify names it" 'grep -q "record 300 differs from the record in its signed chunk" $tmp/out'
run 0 "audit with the edited row: exit 0, as the untouched copy" $PL --archive "$R" audit --format json
check "its findings, verifications and verdict are the untouched copy's" 'cmp -s $tmp/out $tmp/intact.json'
run 0 "the table too" $PL --archive "$R" audit
check "the table is the untouched copy's" 'cmp -s $tmp/out $tmp/intact.txt'
same "a record row edited (verify's finding, not the audit's)" 0 "$R"
# a chunk edited: the log the audit checks itself is BROKEN, and the chunk no longer decodes,
# so its records are missing from what the audit read (a finding of its own)
b0=$(python3 - "$B" << 'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("DROP TRIGGER chunks_append_only_u")
cid, first, data = con.execute("SELECT id, first_seq, data FROM chunks WHERE first_seq <= 300 "
                               "ORDER BY first_seq DESC LIMIT 1").fetchone()
d = bytearray(data); d[len(d) // 2] ^= 4
con.execute("UPDATE chunks SET data = ? WHERE id = ?", (bytes(d), cid))
con.commit()
print(first)
PY
)
run 6 "verify finds the edited chunk" $PL --archive "$B" verify
run 1 "audit of the BROKEN log: exit 1" $PL --archive "$B" audit --format json
python3 - "$tmp/out" "$b0" << 'PY' && ok "a log_broken finding; the summary counts it as compliance and integrity" || bad "broken log summary"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
b = [r for r in rows if r.get("finding") == "log_broken"]
assert len(b) == 1 and b[0]["compliance"] and b[0]["report"] == "integrity" and b[0]["seq"] == int(sys.argv[2]), b
s = rows[-1]
assert s["type"] == "summary" and s["verdict"] == "fail", s
assert s["compliance"] >= 1 and s["integrity"] >= 1 and s["logs"]["broken"] == 1, s
assert s["findings"].get("log_broken") == 1, s
PY
same "a BROKEN log" 1 "$B"
run 1 "the table of the BROKEN log" $PL --archive "$B" audit --report integrity
check "table: the finding, the verification and the verdict" \
    'grep -q "log_broken .*does not verify (checked by this audit), first at seq $b0" $tmp/out && grep -q "BROKEN at seq $b0" $tmp/out && grep -q "integrity findings 2" $tmp/out && grep -q "^Verdict: FAIL, 2 compliance findings: missing 1, log_broken 1" $tmp/out'
# a report that shows none of the findings
run 1 "--report usage of an archive with a finding" $PL --archive "$K" audit --report usage
check "no \"see above\" under a report that shows no finding" '! grep -qi "see above" $tmp/out'
check "the verdict names the findings not shown" \
    'grep -q "^Verdict: FAIL, 1 compliance finding: key_changed 1" $tmp/out && grep -q "not in the reports shown: key_changed 1 (see them with --report all)" $tmp/out'
run 1 "--report cartridges of the BROKEN log" $PL --archive "$B" audit --report cartridges
check "names log_broken as not shown" 'grep -q "not in the reports shown: missing 1, log_broken 1" $tmp/out'
same "key_changed, --report usage" 1 "$K" --report usage
same "no records" 1 "$E"
same "a pen changed before its first pull" 1 "$C"
same "a gap and an alarm of a newer kind" 1 "$G"
same "a clean week" 0 "$A"

echo "# 13.7 a pen off the calendar stays off it"
# two days, a pull, a third day, a pull: every record within those three days
start_sim cal --serial PEN-CAL --seed 61 --simulate-days 2 --start-time $T0
run 0 "pull the first two days" $PL --archive "$tmp/cal.db" --device "sim:$tmp/cal.sock" pull
stop_sim cal
$SIM --state "$tmp/cal" --simulate-days 1 --start-time $T0 > /dev/null
start_sim cal
run 0 "pull the third" $PL --archive "$tmp/cal.db" --device "sim:$tmp/cal.sock" pull
stop_sim cal
check "every record lies in the three simulated days, none at the host's date" \
    '[ "$(sqlite3 "$tmp/cal.db" "SELECT count(*) FROM records")" -gt 300 ] && $PL --archive "$tmp/cal.db" export records --format json | python3 -c "
import json, sys
t = [json.loads(l)[\"time_ms\"] for l in sys.stdin]
sys.exit(0 if min(t) >= $T0 and max(t) < $T0 + 3 * 86400000 else 1)"'

# The report says where the audit's records came from, with verify's stored verdict as its
# claim; a report keeps the claim it was made with, so a later verify changes nothing
echo "# reports and the audit's records: format 2, and format 1 (made before, by its data)"
H=$tmp/h.db
cp "$A" "$H"
run 0 "a verify, stored" $PL --archive "$H" verify
run 0 "the HTML report" $PL --archive "$H" audit --tz UTC --format html -o "$tmp/h.html"
check "it says the records were read from the chunks, and gives verify's claim" \
    'grep -q "<p id=\"audit-scope\" data-records-from=\"chunks\" data-chunks=\"[1-9][0-9]*\" data-pens-checked=\"[1-9][0-9]*\" data-pens-unsigned=\"0\">Records: read from the pens" $tmp/h.html && grep -q "<tr class=\"claim\" data-pen=\"PEN-A001\"><td class=\"nw\">PEN-A001</td><td class=\"nw\">ok</td>" $tmp/h.html && grep -q "name=\"penlink-report\" content=\"2\"" $tmp/h.html'
run 0 "another verify, stored after the report" $PL --archive "$H" verify
run 0 "the report still matches (it keeps the claim it was made with)" $PL --archive "$H" audit --check-report "$tmp/h.html"
sed 's/%22result%22:%22ok%22/%22result%22:%22broken%22/' "$tmp/h.html" > "$tmp/h_claim.html"
check "a claim edited in the report's meta" '! cmp -s $tmp/h.html $tmp/h_claim.html'
run 6 "an edited claim does not match" $PL --archive "$H" audit --check-report "$tmp/h_claim.html"
# verify's claims of many pens (a chain's archive): the report still checks
M=$tmp/many.db
cp "$H" "$M"
python3 - "$M" << 'PY'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.executemany("INSERT INTO devices (serial, first_seen_ms, last_seen_ms) VALUES (?, 0, 0)",
                [("PEN-MANY-%04d" % i,) for i in range(600)])
con.commit()
PY
run 0 "verify of 601 pens, stored" $PL --archive "$M" verify
run 0 "the report of 601 pens" $PL --archive "$M" audit --tz UTC --format html -o "$tmp/many.html"
check "it gives verify's claim of each" '[ "$(grep -c "<tr class=\"claim\"" $tmp/many.html)" = 601 ]'
run 0 "and it checks" $PL --archive "$M" audit --check-report "$tmp/many.html"
# a report made by the penlink before (format 1: the audit read the rows), and its archive
F=$tmp/format1.db
sqlite3 "$F" < "$FX/report-format1.sql" || bad "sqlite3 could not load the fixture"
run 10 "a format 1 report whose data matches: cannot be confirmed (exit 10)" \
    $PL --archive "$F" audit --check-report "$FX/report-format1.html"
check "it says why" 'grep -q "CANNOT BE CONFIRMED: it is a report of format 1, made by a penlink whose audit read the record rows" $tmp/out'
run 10 "--json" $PL --archive "$F" --json audit --check-report "$FX/report-format1.html"
check "json: data matches, not confirmed" 'grep -q "\"data_matches\":true,\"document\":\"not compared (a report of format 1" $tmp/out && grep -q "\"confirmed\":false" $tmp/out'
sqlite3 "$F" "DROP TRIGGER config_history_append_only_d; DELETE FROM config_history"
run 6 "a format 1 report whose archive changed: does not match" $PL --archive "$F" audit --check-report "$FX/report-format1.html"

echo "# a report into what is not a plain file is written into it, never renamed over it"
mkfifo "$tmp/report.fifo"
cat "$tmp/report.fifo" > "$tmp/from_fifo.html" &
reader=$!
run 0 "the HTML report into a named pipe" $PL --archive "$H" audit --tz UTC --format html -o "$tmp/report.fifo"
# a penlink that renamed a file over the pipe never opened it: the reader would wait for ever
[ -p "$tmp/report.fifo" ] || kill $reader 2> /dev/null
wait $reader
check "the pipe is still a pipe" '[ -p "$tmp/report.fifo" ] && [ ! -e "$tmp/report.fifo.part" ]'
check "and the reader got the whole report" 'grep -q "</html>" "$tmp/from_fifo.html"'
: > "$tmp/target.html"
ln -s "$tmp/target.html" "$tmp/link.html"
run 0 "the HTML report through a symbolic link" $PL --archive "$H" audit --tz UTC --format html -o "$tmp/link.html"
check "the link is still a link, and its target holds the report" \
    '[ -L "$tmp/link.html" ] && grep -q "</html>" "$tmp/target.html"'
run 0 "the report checks through the link" $PL --archive "$H" audit --check-report "$tmp/link.html"

finish
