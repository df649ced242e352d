#!/bin/sh
# The lossless pull into the archive under faults: penlink killed (SIGKILL)
# at seeded points of hundreds of pulls, the pen unplugged at every frame of
# a pull, two pens pulled at once with another penlink on the same archive,
# a damaged archive file, a pull that starts inside a stored chunk, and a pen
# whose log conflicts with the archive. After each, the archive must equal the
# simulator's ground truth: nothing missing, nothing twice, and the pen must
# hold only unacknowledged records.
# Usage: test_archive.sh PENLINK PENLINK_SIM [KILL_RUNS]
# PENLINK_FAULT_SEED=N replays the kill delays and the damage of a run that
# printed "fault seed N".
# PENLINK_TEST_ARCHIVE=postgresql: the same, into PostgreSQL (harness.sh).
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
KILLS=${3:-200}
. "$(dirname "$0")/harness.sh"
# the pen acknowledged everything
acked_all() { # sock
    $PL --device "sim:$1" --json info | python3 -c '
import json, sys
i = json.load(sys.stdin)
assert i["log_acked_seq"] == i["log_next_seq"], i'
}

# Every fault's place (the kill delays, the damaged bytes) comes from one seed:
# a new one each run, printed, or the one in PENLINK_FAULT_SEED to replay a run.
seed=${PENLINK_FAULT_SEED:-$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}
case $seed in '' | *[!0-9]*) echo "PENLINK_FAULT_SEED must be a number, not '$seed'"; exit 2 ;; esac
echo "fault seed $seed (replay this run with PENLINK_FAULT_SEED=$seed)"
seedr=$((seed % 2147483648))
lcg() { seedr=$(( (seedr * 1103515245 + 12345) % 2147483648 )); }

# 1. SIGKILL at seeded points, hundreds of times, while the pen keeps logging
A=$(archive kill)
start_sim k --serial PEN-KILL --seed 21 --simulate-days 4 --start-time $T0
rounds=$((KILLS / 10))
# the kill comes 1..range ms after the start; a slow start (a sanitizer build,
# a loaded machine) can outlast the whole range, so a round in which no pull
# got as far as recording itself doubles it (logged, so a run can be replayed)
if [ -n "${PENLINK_WRAP:-}" ]; then # valgrind: a start takes a second or so
    range=2500
elif [ "$backend" = postgresql ]; then # two connections, a schema check: slower to start
    range=250
else
    range=60
fi
for r in $(seq 1 $rounds); do
    if [ "$r" -gt 1 ]; then
        stop_sim k
        start_sim k --simulate-days 1 --start-time $T0
    fi
    for k in $(seq 1 10); do
        $PL --device "sim:$tmp/k.sock" --archive "$A" --quiet pull > /dev/null 2>&1 &
        p=$!
        lcg
        ms=$(( seedr % range + 1 ))
        sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
        kill -9 $p 2> /dev/null
        wait $p 2> /dev/null
    done
    n=0 # (no archive file yet: no pull got as far as creating it)
    if [ "$backend" = postgresql ] || [ -s "$A" ]; then
        n=$(q "$A" "select count(*) from pulls" 2> /dev/null)
    fi
    if [ "${n:-0}" = 0 ] && [ "$range" -lt 10000 ]; then
        range=$((range * 2))
        echo "round $r: no pull got far enough to be recorded; kills now 1..$range ms after the start"
    fi
done
$PL --device "sim:$tmp/k.sock" --archive "$A" --quiet pull > "$tmp/out" 2>&1 &&
    ok "a pull after $KILLS kills succeeds" || { bad "pull after kills"; cat "$tmp/out"; }
same "$A" PEN-KILL "$tmp/k/ground-truth.jsonl" && ok "archive = ground truth after $KILLS SIGKILLs" ||
    bad "archive differs after kills"
acked_all "$tmp/k.sock" && ok "the pen holds nothing unacknowledged" || bad "pen acks"
pulls=$(q "$A" "select count(*) from pulls")
[ "$pulls" -gt 1 ] && ok "pulls recorded ($pulls, some cut short)" || bad "pulls recorded"
stop_sim k

# 2. the pen unplugged after every frame of a pull, one run per frame
$SIM --state "$tmp/tmpl" --serial PEN-UNPLUG --seed 22 --simulate-days 3 --start-time $T0 > /dev/null 2>&1
frames=0
unplug_bad=0
n=1
while :; do
    rm -rf "$tmp/u"
    U=$(archive u)
    cp -r "$tmp/tmpl" "$tmp/u"
    start_sim u --unplug-after-frames "$n"
    $PL --device "sim:$tmp/u.sock" --archive "$U" --quiet pull > "$tmp/out" 2>&1
    first=$?
    $PL --device "sim:$tmp/u.sock" --archive "$U" --quiet pull > "$tmp/out2" 2>&1
    second=$?
    if [ $second -ne 0 ] || ! same "$U" PEN-UNPLUG "$tmp/u/ground-truth.jsonl" ||
        ! acked_all "$tmp/u.sock"; then
        bad "unplug after frame $n (first pull exit $first)"
        unplug_bad=$((unplug_bad + 1))
        cat "$tmp/out" "$tmp/out2"
    fi
    stop_sim u
    frames=$n
    [ $first -eq 0 ] && break # the unplug came after the whole pull: every frame covered
    [ $first -eq 3 ] || {
        bad "unplug after frame $n: exit $first, want 3"
        unplug_bad=$((unplug_bad + 1))
        cat "$tmp/out"
    }
    n=$((n + 1))
    [ $n -gt 200 ] && { bad "unplug loop did not end"; unplug_bad=$((unplug_bad + 1)); break; }
done
# a pull of three days has a Hello, an info, a config, chunks and an ack: many frames
check "unplugged at each of the $frames frames of a pull: archive = ground truth each time" \
    '[ "$unplug_bad" -eq 0 ] && [ "$frames" -ge 5 ]'

# 2b. watch: a pen unplugged mid-pull is pulled again when it returns
rm -rf "$tmp/w"
W=$(archive w)
cp -r "$tmp/tmpl" "$tmp/w"
start_sim w --unplug-after-frames 5
$PL --device "sim:$tmp/w.sock" --archive "$W" watch > "$tmp/wout" 2> "$tmp/werr" &
watch=$!
i=0
until grep -q "new records archived" "$tmp/wout" 2> /dev/null || [ $i -ge 300 ]; do
    sleep 0.1
    i=$((i + 1))
done
kill -INT $watch
wait $watch
rc=$?
[ $rc -eq 130 ] && ok "watch stops cleanly on SIGINT, exit 130 (interrupted)" || bad "watch exit $rc"
grep -q "closed the connection" "$tmp/werr" && ok "watch saw the unplug mid-pull" ||
    { bad "watch unplug"; cat "$tmp/werr"; }
same "$W" PEN-UNPLUG "$tmp/w/ground-truth.jsonl" && acked_all "$tmp/w.sock" &&
    ok "watch pulled the pen again when it returned: archive = ground truth" ||
    { bad "watch re-pull"; cat "$tmp/wout" "$tmp/werr"; }
stop_sim w

# 3. two pens at once into one archive, and another penlink on it meanwhile
B=$(archive two)
start_sim p1 --serial PEN-ONE --seed 31 --simulate-days 30 --start-time $T0
start_sim p2 --serial PEN-TWO --seed 32 --simulate-days 30 --start-time $T0
$PL --device "sim:$tmp/p1.sock" --archive "$B" --quiet pull > "$tmp/o1" 2>&1 &
a=$!
$PL --device "sim:$tmp/p2.sock" --archive "$B" --quiet pull > "$tmp/o2" 2>&1 &
b=$!
$PL --device "sim:$tmp/p1.sock" --archive "$B" --quiet pull > "$tmp/o3" 2>&1 &
c=$!
wait $a && wait $b && wait $c && ok "two pens and a second process on one archive" ||
    { bad "concurrent pulls"; cat "$tmp/o1" "$tmp/o2" "$tmp/o3"; }
same "$B" PEN-ONE "$tmp/p1/ground-truth.jsonl" && same "$B" PEN-TWO "$tmp/p2/ground-truth.jsonl" &&
    ok "both pens archived exactly" || bad "concurrent archive content"

# 4. a damaged archive file (SQLite's own failure; a server that goes away
# is tested in test_pg.sh): a clear error with a way out, nothing acknowledged
if [ "$backend" = sqlite ]; then
    cp "$B" "$tmp/damaged.db"
    size=$(wc -c < "$tmp/damaged.db")
    lcg
    python3 -c 'import random, sys; sys.stdout.buffer.write(random.Random(int(sys.argv[1])).randbytes(12288))' \
        "$seedr" | dd of="$tmp/damaged.db" bs=4096 seek=$((size / 4096 / 2)) count=3 conv=notrunc 2> /dev/null
    stop_sim p1
    start_sim p1 --simulate-days 2 --start-time $T0
    before=$($PL --device "sim:$tmp/p1.sock" --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])')
    $PL --device "sim:$tmp/p1.sock" --archive "$tmp/damaged.db" pull > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 6 ] && ok "damaged archive: integrity exit 6" || { bad "damaged archive: exit $rc"; cat "$tmp/err"; }
    grep -q "is damaged" "$tmp/err" && grep -q "recover" "$tmp/err" && ok "the error says how to recover" ||
        bad "damage message"
    after=$($PL --device "sim:$tmp/p1.sock" --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])')
    [ "$before" = "$after" ] && ok "nothing acknowledged into a damaged archive" || bad "acked into damage"
    printf 'this is not a database, it is a note' > "$tmp/note.db"
    $PL --device "sim:$tmp/p1.sock" --archive "$tmp/note.db" pull > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 6 ] && ok "not an archive: exit 6" || { bad "not an archive: exit $rc"; cat "$tmp/err"; }
    $PL --device "sim:$tmp/p1.sock" --archive "$B" --quiet pull > /dev/null 2>&1 &&
        same "$B" PEN-ONE "$tmp/p1/ground-truth.jsonl" && ok "the intact archive goes on" ||
        bad "the intact archive"
fi

# 5a. a pull that starts inside a stored chunk: the pen sends the whole chunk,
# and the records before the start, which the archive holds, come back as
# duplicates: compared, counted, not stored twice. An archive that ends
# inside a chunk is one cut short by hand (as here) or written by a tool that
# stored records without their whole chunk.
M=$(archive mid)
$SIM --state "$tmp/mid0" --serial PEN-MID --seed 5 --simulate-days 3 --start-time $T0 > /dev/null
cp -r "$tmp/mid0" "$tmp/mid1"
cp -r "$tmp/mid0" "$tmp/mid2" # the same pen, nothing acknowledged yet
start_sim mid1
$PL --device "sim:$tmp/mid1.sock" --archive "$M" --quiet pull > /dev/null 2>&1
stop_sim mid1
set -- $(q "$M" "SELECT first_seq, record_count FROM chunks
    WHERE record_count >= 4 ORDER BY first_seq DESC LIMIT 1 OFFSET 3" | tr '|' ' ')
cut=$(($1 + $2 / 2)) kept=$(($2 / 2))
edit "$M" "DELETE FROM records WHERE seq >= $cut" "DELETE FROM chunks WHERE first_seq >= $cut" \
    "DELETE FROM heads WHERE next_seq > $cut"
start_sim mid2
run 0 "a pull that starts inside a stored chunk" $PL --device "sim:$tmp/mid2.sock" --archive "$M" --json pull
stop_sim mid2
check "the records before its start come back as duplicates ($kept), no conflict" \
    'python3 -c "import json,sys; r = json.load(open(sys.argv[1])); assert (r[\"duplicates\"], r[\"conflicts\"], r[\"from_seq\"]) == ($kept, 0, $cut), r" "$tmp/out"'
same "$M" PEN-MID "$tmp/mid2/ground-truth.jsonl" && ok "archive = ground truth: nothing twice" ||
    bad "archive after a pull from inside a chunk"
check "no alarm" '[ "$(q "$M" "SELECT count(*) FROM alarms")" = 0 ]'
run 0 "the archive verifies" $PL --archive "$M" verify

# 5. re-received records: the pen sends whole stored chunks, so a pull that
# starts inside one receives records the archive has; they must be equal
# (5a). A pen whose log was replaced under the same serial and device key
# (e.g. restored from another copy) and that signs its log shows it in its
# hash chain: its first chunk seals again records the archive holds in
# another signed chunk, a fork of the archived chain: refused before
# anything is stored, alarm unverified, exit 6, nothing acknowledged. A pen
# presenting another device key under a pinned serial is refused before
# anything is pulled.
C=$(archive conflict)
$SIM --state "$tmp/orig" --serial PEN-SAME --seed 1 --simulate-days 2 --start-time $T0 > /dev/null
$SIM --state "$tmp/clone" --serial PEN-SAME --seed 9 --simulate-days 3 --start-time $T0 > /dev/null
$SIM --state "$tmp/other" --serial PEN-SAME --seed 9 --simulate-days 10 --start-time $T0 > /dev/null
cp "$tmp/orig/device.key" "$tmp/other/device.key"
start_sim orig
$PL --device "sim:$tmp/orig.sock" --archive "$C" --quiet pull > /dev/null 2>&1
stop_sim orig
$SIM --state "$tmp/orig" --simulate-days 1 --start-time $T0 > /dev/null
start_sim orig
$PL --device "sim:$tmp/orig.sock" --archive "$C" --quiet pull > /dev/null 2>&1
stop_sim orig
same "$C" PEN-SAME "$tmp/orig/ground-truth.jsonl" && ok "the archive equals the pen's log" || bad "archive after two pulls"
check "the same pen again: its key pinned once, no alarm" \
    '[ "$(q "$C" "SELECT count(*) FROM alarms") $(q "$C" "SELECT length(public_key) FROM devices")" = "0 32" ]'
start_sim clone
before=$($PL --device "sim:$tmp/clone.sock" --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])')
run 6 "a pen with another device key under a pinned serial" $PL --device "sim:$tmp/clone.sock" --archive "$C" pull
check "the error names the key change" 'grep -q "not the key pinned" $tmp/err'
check "a key_changed alarm is recorded" '[ "$(q "$C" "SELECT count(*) FROM alarms WHERE kind = '"'key_changed'"'")" = 1 ]'
after=$($PL --device "sim:$tmp/clone.sock" --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])')
check "nothing pulled from it, nothing acknowledged" '[ "$before" = "$after" ]'
stop_sim clone
same "$C" PEN-SAME "$tmp/orig/ground-truth.jsonl" && ok "the archive is untouched by it" || bad "archive changed by the clone"
$PL --archive "$C" audit --report integrity > "$tmp/out" 2>&1
check "the audit reports the key change" 'grep -q "key_changed" $tmp/out'
start_sim other
before=$($PL --device "sim:$tmp/other.sock" --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])')
run 6 "a replaced log under the same serial" $PL --device "sim:$tmp/other.sock" --archive "$C" --json pull
check "the error names the fork" 'grep -q "forks from the one stored" $tmp/err'
check "one unverified alarm for it, no conflict stored" \
    '[ "$(q "$C" "SELECT count(*) FROM alarms WHERE kind = '"'unverified'"'") $(q "$C" "SELECT count(*) FROM alarms WHERE kind = '"'conflict'"'")" = "1 0" ]'
same "$C" PEN-SAME "$tmp/orig/ground-truth.jsonl" && ok "the archive is untouched by it" ||
    bad "archived records changed by the replaced log"
after=$($PL --device "sim:$tmp/other.sock" --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])')
check "nothing acknowledged" '[ "$before" = "$after" ]'
stop_sim other
$PL --archive "$C" audit --report integrity > "$tmp/out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q unverified "$tmp/out" && ok "the audit reports the fork (exit 1)" ||
    { bad "audit of the fork: exit $rc"; cat "$tmp/out"; }
run 0 "the archive verifies" $PL --archive "$C" verify

finish
