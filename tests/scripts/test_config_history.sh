#!/bin/sh
# penlink config history: a pen pulled (its configuration read), then set
# twice; the history shows the three entries in order with who, when and
# old -> new for each key, as text and as JSON lines; --pen selects one pen
# of two, a serial the archive does not hold is a usage error; and it only
# reads the archive: a read-only copy in a read-only directory (SQLite) or a
# hot standby (PostgreSQL) gives the same history, the file byte for byte
# as it was.
# Usage: test_config_history.sh PENLINK PENLINK_SIM
# PENLINK_TEST_ARCHIVE=postgresql: the same, on PostgreSQL (harness.sh).
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"
me=$(id -un)
if [ "$(id -u)" = 0 ]; then # chmod does not stop root: read as nobody
    AS="setpriv --reuid=65534 --regid=65534 --clear-groups --"
    chmod 755 "$tmp"
else
    AS=""
fi
trap 'chmod -R u+w "$tmp" 2> /dev/null; cleanup' EXIT

A=$(archive hist)
start_sim c1 --serial PEN-C1 --seed 31 --simulate-days 2 --start-time $T0
start_sim c2 --serial PEN-C2 --seed 32 --simulate-days 2 --start-time $T0
run 0 "pull PEN-C1 (its configuration read)" $PL --device "sim:$tmp/c1.sock" --archive "$A" pull
run 0 "pull PEN-C2" $PL --device "sim:$tmp/c2.sock" --archive "$A" pull
run 0 "config set, first" $PL --device "sim:$tmp/c1.sock" --archive "$A" config set depth_max_um=2000
run 0 "config set, second" $PL --device "sim:$tmp/c1.sock" --archive "$A" \
    config set depth_max_um=1800 device_label=Room-2
run 0 "PEN-C2 set once" $PL --device "sim:$tmp/c2.sock" --archive "$A" config set auto_off_s=600
stop_sim c1
stop_sim c2

# text
run 0 "config history --pen PEN-C1" $PL --archive "$A" config history --pen PEN-C1
cp "$tmp/out" "$tmp/c1.txt"
check "the pen's name first" '[ "$(head -n 1 "$tmp/c1.txt")" = PEN-C1 ]'
check "three entries, in revision order: read 1, written 1 -> 2, written 2 -> 3" \
    '[ "$(grep -o "  \(read\|written\) .*revision.*" "$tmp/c1.txt" | sed "s/ *$me@[^ ]* */ /" | tr -s " ")" = \
"$(printf " read revision 1\n written revision 1 -> 2\n written revision 2 -> 3")" ]'
check "who and when on each entry" \
    '[ "$(grep -c "^  [0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9:.]*Z  [a-z]* *  $me@" "$tmp/c1.txt")" = 3 ]'
check "the first entry shows every value" 'sed -n "3,12p" "$tmp/c1.txt" | grep -q "^    depth_max_um  *3000$"'
check "the first change: depth_max_um 3000 -> 2000, nothing else" \
    '[ "$(sed -n "/revision 1 -> 2/,/revision 2 -> 3/p" "$tmp/c1.txt" | grep -c "^    ")" = 1 ] &&
     sed -n "/revision 1 -> 2/,/revision 2 -> 3/p" "$tmp/c1.txt" | grep -q "^    depth_max_um  *3000 -> 2000$"'
check "the second: depth_max_um 2000 -> 1800, device_label \"\" -> \"Room-2\"" \
    '[ "$(sed -n "/revision 2 -> 3/,\$p" "$tmp/c1.txt" | grep "^    " | tr -s " ")" = \
"$(printf " depth_max_um 2000 -> 1800\n device_label \"\" -> \"Room-2\"")" ]'
check "no other pen" '! grep -q PEN-C2 "$tmp/c1.txt"'

# JSON lines
run 0 "config history --json" $PL --archive "$A" --json config history --pen PEN-C1
cp "$tmp/out" "$tmp/c1.json"
check "JSON: the entries, their order and values" '"$PY" - "$tmp/c1.json" "$me" <<"EOF"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
me = sys.argv[2]
assert [r["revision"] for r in rows] == [1, 2, 3], rows
assert [r["old_revision"] for r in rows] == [None, 1, 2], rows
assert [r["source"] for r in rows] == ["read", "written", "written"], rows
for r in rows:
    assert r["serial"] == "PEN-C1" and r["user"] == me and r["host"], r
    assert isinstance(r["at_ms"], int) and re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", r["at"]), r
assert [r["at_ms"] for r in rows] == sorted(r["at_ms"] for r in rows), rows
first = {c["key"]: c for c in rows[0]["changes"]}
assert len(first) == 10 and first["depth_max_um"] == {"key": "depth_max_um", "old": None, "new": 3000}, first
assert rows[1]["changes"] == [{"key": "depth_max_um", "old": 3000, "new": 2000}], rows[1]
assert rows[2]["changes"] == [{"key": "depth_max_um", "old": 2000, "new": 1800},
                              {"key": "device_label", "old": "", "new": "Room-2"}], rows[2]
assert rows[2]["values"]["depth_max_um"] == 1800 and rows[2]["values"]["device_label"] == "Room-2"
assert rows[1]["values"]["auto_off_s"] == rows[2]["values"]["auto_off_s"] == 300
EOF'

# every pen, one pen, no such pen
run 0 "config history of every pen" $PL --archive "$A" config history
check "both pens, PEN-C1 first, each with its own entries" \
    '[ "$(grep "^PEN" "$tmp/out" | tr "\n" " ")" = "PEN-C1 PEN-C2 " ] &&
     sed -n "/^PEN-C2/,\$p" "$tmp/out" | grep -q "^    auto_off_s  *300 -> 600$" &&
     sed -n "/^PEN-C1/,/^PEN-C2/p" "$tmp/out" | grep -v "^PEN-C2" | grep -v "^$" | cmp -s - "$tmp/c1.txt"'
run 0 "--device usb:PEN-C2 selects a pen too" $PL --archive "$A" --device usb:PEN-C2 config history
check "only PEN-C2" 'head -n 1 "$tmp/out" | grep -qx PEN-C2 && ! grep -q PEN-C1 "$tmp/out"'
run 0 "--device usb:serial=PEN-C2, as the pen commands take it" \
    $PL --archive "$A" --device usb:serial=PEN-C2 config history
check "only PEN-C2" 'head -n 1 "$tmp/out" | grep -qx PEN-C2 && ! grep -q PEN-C1 "$tmp/out"'
run 0 "a bare serial in --device selects it here" $PL --archive "$A" --device PEN-C1 config history
check "only PEN-C1" 'cmp -s "$tmp/out" "$tmp/c1.txt"'
run 2 "a pen the archive does not hold" $PL --archive "$A" config history --pen PEN-C9
check "the error names the archive's pens" 'grep -q "PEN-C1, PEN-C2" "$tmp/err"'
run 2 "an argument too many" $PL --archive "$A" config history PEN-C1
run 0 "config history --help" $PL config history --help
check "its help names --pen" 'grep -q -- "--pen SERIAL" "$tmp/out"'

# read-only: the same history from an archive that cannot be written
if [ "$backend" = postgresql ]; then
    clusters="$clusters $tmp/standby"
    sh "$here/pg_cluster.sh" standby "$tmp/standby" "$tmp/pg" 5433 > /dev/null || bad "no standby"
    R=$(pg_uri hist "$tmp/standby")
    AS="" # a standby is read-only to everyone
    i=0 # until the standby replayed the primary's last entry
    while [ "$($PL --archive "$R" config history 2> /dev/null | grep -c revision)" != 5 ] && [ $i -lt 200 ]; do
        sleep 0.1
        i=$((i + 1))
    done
else
    mkdir "$tmp/ro"
    cp "$A" "$tmp/ro/a.db"
    chmod 444 "$tmp/ro/a.db"
    chmod 555 "$tmp/ro"
    R=$tmp/ro/a.db
fi
[ "$backend" = postgresql ] || sum=$(cksum < "$R")
run 0 "config history of a read-only archive ($backend)" $AS $PL --archive "$R" config history --pen PEN-C1
check "the same history" 'cmp -s "$tmp/out" "$tmp/c1.txt"'
run 0 "and as JSON" $AS $PL --archive "$R" --json config history --pen PEN-C1
check "the same JSON" 'cmp -s "$tmp/out" "$tmp/c1.json"'
[ "$backend" = postgresql ] || check "the file is byte for byte as it was" '[ "$(cksum < "$R")" = "$sum" ]'
finish
