#!/bin/sh
# penlink archive push: laptops' SQLite archives sent to the chain's server
# after their sites were offline. Two laptops pulled three signing pens
# (one pen on both, one pen also docked at the main site, into the server,
# in between). The first laptop's push is killed at random points (seeded;
# the seed is printed, PENLINK_TEST_SEED repeats a run) and pushed again,
# then the second's, each pushed twice: the server is exactly the union of
# what it held and the laptops' archives, no chunk or record twice, a second
# push changes nothing at all, and the server verifies. Then what a push
# must refuse: a chunk tampered with in a laptop's archive (refused with the
# pen, seq and check named; what verified before it is pushed, the other
# pens are), a record the server holds with other content (kept; alarm
# conflict, once), a serial the server pinned to another key.
# Usage: test_push.sh PENLINK PENLINK_SIM
# PENLINK_TEST_ARCHIVE=postgresql: the server is a PostgreSQL database
# (harness.sh), else a SQLite file; the laptops' archives are SQLite files.
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"
seed=${PENLINK_TEST_SEED:-$(date +%s)}
echo "seed $seed (PENLINK_TEST_SEED=$seed repeats this run)"
rnd() { # max: the next number in 1..max of the seeded sequence
    seed=$(((seed * 1103515245 + 12345) % 2147483648))
    echo $((seed % $1 + 1))
}
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
pull() { # pen archive: pulls a simulated pen (its state in $tmp/PEN) into an archive
    start_sim "$1"
    $PL --device "sim:$tmp/$1.sock" --archive "$2" --quiet pull > "$tmp/pull.out" 2>&1 ||
        { echo "pull of $1 failed:"; cat "$tmp/pull.out"; exit 1; }
    stop_sim "$1"
}
more() { $SIM --state "$tmp/$1" --simulate-days "$2" --start-time $T0 > /dev/null; } # pen days
# everything the server holds, in one line: a push that changes nothing leaves it equal
state() {
    q "$1" "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM chunks),
        (SELECT count(*) FROM heads), (SELECT count(*) FROM alarms),
        (SELECT count(*) FROM config_history), (SELECT count(*) FROM pulls),
        (SELECT count(*) FROM devices), (SELECT max(last_seen_ms) FROM devices),
        (SELECT count(*) FROM device_firmware), (SELECT sum(seq) FROM records)"
}

L1=$tmp/laptop1.db L2=$tmp/laptop2.db
for i in 1 2 3; do
    $SIM --state "$tmp/p$i" --serial "PEN-P$i" --seed "$((60 + i))" --simulate-days 120 \
        --start-time $T0 --flash-size 16777216 > /dev/null
done
S=$(archive server)
pull p1 "$L1" # site 1, offline: its laptop pulls P1 and P2
pull p2 "$L1"
more p1 30 # P1 then docks at the main site, straight into the server
pull p1 "$S"
more p2 20 # site 2, offline: P2 (pulled at site 1 before) and P3
pull p2 "$L2"
pull p3 "$L2"
BEFORE=$(archive_copy "$S" before)

# how long a push of laptop 1 takes here, for kills at random points inside one
C=$(archive calibrate)
t0=$(date +%s%N)
run 0 "a push into an empty archive" $PL --archive "$L1" archive push --to "$C"
span=$((($(date +%s%N) - t0) / 1000000))
echo "     (a push of laptop 1 takes $span ms here)"
"$PY" "$here/archive_db.py" union "$C" "$L1" && ok "it holds exactly laptop 1's archive" ||
    bad "the pushed archive differs from laptop 1's"

# 1. laptop 1's push killed half-way, then at random points, then pushed again
subset() { # what: the server holds nothing but what the sources hold, nothing twice
    "$PY" "$here/archive_db.py" union --subset "$S" "$BEFORE" "$L1" &&
        ok "$1: the server holds nothing but what the sources hold, nothing twice" ||
        bad "$1: the server holds what no source holds"
}
if [ "$backend" = postgresql ]; then
    # half-way for certain: the pens after PEN-P1 are locked by another
    # session (as a pull of them would lock them), so the push commits
    # PEN-P1, then waits for the next pen: killed there
    p1=$(q "$S" "SELECT id FROM devices WHERE serial = 'PEN-P1'")
    PGAPPNAME=holder psql -X -q -h "$tmp/pg" -p "$(cat "$tmp/pg/port")" -U penlink -d server -c "BEGIN" \
        -c "SELECT count(pg_advisory_xact_lock(1886153474, k)) FROM generate_series(1, 200) k WHERE k <> $p1" \
        -c "SELECT pg_sleep(120)" > /dev/null 2>&1 &
    holder=$!
    locks() { q "$S" "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND $1"; }
    i=0
    while [ "$(locks granted)" -lt 199 ] && [ $i -lt 500 ]; do sleep 0.02; i=$((i + 1)); done
    $PL --archive "$L1" --quiet archive push --to "$S" > /dev/null 2>&1 &
    p=$!
    i=0
    while [ "$(locks "NOT granted")" = 0 ] && [ $i -lt 1000 ]; do sleep 0.02; i=$((i + 1)); done
    kill -9 $p
    wait $p 2> /dev/null
    q "$S" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'holder'" > /dev/null
    wait $holder 2> /dev/null
    same "$S" PEN-P1 "$tmp/p1/ground-truth.jsonl" &&
        [ "$(q "$S" "SELECT count(*) FROM devices WHERE serial = 'PEN-P2'")" = 0 ] &&
        ok "killed half-way: PEN-P1 pushed and committed, PEN-P2 not begun" ||
        bad "the push killed half-way"
    subset "killed half-way"
fi
for k in 1 2 3; do
    $PL --archive "$L1" --quiet archive push --to "$S" > /dev/null 2>&1 &
    p=$!
    sleep_ms "$(rnd "$span")"
    kill -9 $p 2> /dev/null
    wait $p 2> /dev/null
    subset "killed at a random point ($k)"
done
run 0 "laptop 1 pushed again after the kills" $PL --archive "$L1" archive push --to "$S"
"$PY" "$here/archive_db.py" union "$S" "$BEFORE" "$L1" && ok "server = its own + laptop 1" ||
    bad "server after laptop 1's push"
s1=$(state "$S")
run 0 "laptop 1 pushed twice" $PL --archive "$L1" --json archive push --to "$S"
check "the second push stores nothing" '! grep -q "\"records\":[1-9]" $tmp/out && grep -q "\"records_held\":[1-9]" $tmp/out'
check "and changes nothing on the server" '[ "$(state "$S")" = "$s1" ]'

# 2. laptop 2: P2 from where laptop 1's records end, and P3
run 0 "laptop 2 pushed" $PL --archive "$L2" archive push --to "$S"
s2=$(state "$S")
run 0 "laptop 2 pushed twice" $PL --archive "$L2" archive push --to "$S"
check "nothing changes" '[ "$(state "$S")" = "$s2" ]'
run 0 "laptop 1 pushed a third time" $PL --archive "$L1" archive push --to "$S"
check "nothing changes" '[ "$(state "$S")" = "$s2" ]'
"$PY" "$here/archive_db.py" union "$S" "$BEFORE" "$L1" "$L2" &&
    ok "server = union of its own, laptop 1's and laptop 2's archives" || bad "server != union"
same "$S" PEN-P1 "$tmp/p1/ground-truth.jsonl" && same "$S" PEN-P2 "$tmp/p2/ground-truth.jsonl" &&
    same "$S" PEN-P3 "$tmp/p3/ground-truth.jsonl" && ok "every pen's records = its ground truth" ||
    bad "a pen differs from its ground truth"
run 0 "the server verifies" $PL --archive "$S" verify
check "every pen verified" '[ "$(grep -c " verified " $tmp/out)" = 3 ]'
check "each push is on record as a pull, from its archive" \
    '[ "$(q "$S" "SELECT count(*) FROM pulls WHERE message LIKE '"'pushed from archive %laptop_.db'"'")" -ge 2 ]'

# 3. a chunk tampered with in a laptop's archive: refused where it breaks
T=$(archive tampered)
cp "$L1" "$tmp/bad.db"
set -- $(q "$tmp/bad.db" "SELECT c.id, c.first_seq FROM chunks c JOIN devices d ON d.id = c.device_id
    WHERE d.serial = 'PEN-P1' ORDER BY c.first_seq LIMIT 1 OFFSET 40" | tr '|' ' ')
cid=$1 at=$2
"$PY" -c 'import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
con.execute("DROP TRIGGER chunks_append_only_u")
d = bytearray(con.execute("SELECT data FROM chunks WHERE id = ?", (sys.argv[2],)).fetchone()[0])
d[len(d) // 2] ^= 4
con.execute("UPDATE chunks SET data = ? WHERE id = ?", (bytes(d), sys.argv[2]))
con.commit()' "$tmp/bad.db" "$cid"
run 6 "a push of an archive with a chunk altered" $PL --archive "$tmp/bad.db" archive push --to "$T"
check "the error names the pen, the seq and the check" \
    'grep -q "PEN-P1, seq $at: chunk $cid .*do not hash to its link" $tmp/err'
check "the other pen is pushed" 'grep -q "^PEN-P2 .* [1-9][0-9]* new records" $tmp/out'
check "P1: only records below the altered chunk" \
    '[ "$(q "$T" "SELECT count(*) FROM records r JOIN devices d ON d.id = r.device_id WHERE d.serial = '"'PEN-P1'"' AND seq >= $at")" = 0 ]'
check "an alarm on the server says where" \
    '[ "$(q "$T" "SELECT count(*) FROM alarms WHERE kind = '"'unverified'"' AND seq = $at")" = 1 ]'
run 0 "what was pushed verifies" $PL --archive "$T" verify
run 6 "pushed again: refused again" $PL --archive "$tmp/bad.db" archive push --to "$T"
check "the alarm is not raised twice" \
    '[ "$(q "$T" "SELECT count(*) FROM alarms WHERE kind = '"'unverified'"'")" = 1 ]'

# 4. the server holds other content for some records: kept, alarm conflict
# (two copies of one pen's state, logging apart: one docked at the main
# site, the other's records on a laptop)
rm -rf "$tmp/ta" "$tmp/tb"
$SIM --state "$tmp/ta" --serial PEN-TWIN --seed 71 --simulate-days 10 --start-time $T0 > /dev/null
cp -r "$tmp/ta" "$tmp/tb"
$SIM --state "$tmp/ta" --simulate-days 2 --start-time $T0 > /dev/null
$SIM --state "$tmp/tb" --simulate-days 2 --start-time $T0 --clock-offset-ms 3600000 > /dev/null
pull ta "$S"
pull tb "$tmp/laptop3.db"
n=$(state "$S")
run 6 "a push of records the server holds with other content" $PL --archive "$tmp/laptop3.db" archive push --to "$S"
check "it says which records conflict" 'grep -q "CONFLICT: .* records of pen PEN-TWIN .* differ" $tmp/out'
same "$S" PEN-TWIN "$tmp/ta/ground-truth.jsonl" && ok "the server's records are kept as they were" ||
    bad "the server's records of the twin changed"
check "alarm conflict on the server" '[ "$(q "$S" "SELECT count(*) FROM alarms WHERE kind = '"'conflict'"'")" = 1 ]'
run 6 "pushed again" $PL --archive "$tmp/laptop3.db" archive push --to "$S"
check "the alarm is not raised twice" '[ "$(q "$S" "SELECT count(*) FROM alarms WHERE kind = '"'conflict'"'")" = 1 ]'

# 5. a serial the server pinned to another device key: nothing of it pushed
$SIM --state "$tmp/clone" --serial PEN-P3 --seed 81 --simulate-days 3 --start-time $T0 > /dev/null
pull clone "$tmp/laptop4.db"
n=$(q "$S" "SELECT count(*) FROM records")
run 6 "a push of a pen whose serial the server pinned to another key" $PL --archive "$tmp/laptop4.db" archive push --to "$S"
check "it says so" 'grep -q "pinned another device key for pen PEN-P3" $tmp/err'
check "nothing of it stored" '[ "$(q "$S" "SELECT count(*) FROM records")" = "$n" ]'
check "alarm key_changed on the server" '[ "$(q "$S" "SELECT count(*) FROM alarms WHERE kind = '"'key_changed'"'")" = 1 ]'
run 2 "an archive pushed into itself is refused" $PL --archive "$L1" archive push --to "$L1"
finish
