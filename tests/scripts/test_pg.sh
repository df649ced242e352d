#!/bin/sh
# What only a shared PostgreSQL archive has to answer for, on a throwaway
# cluster: many hosts pulling at once (4 pens by 4 processes, with 2 more
# processes on one pen and two copies of another pen pulled at the same
# moment, repeated), penlink killed at random points (seeded; the seed is
# printed, PENLINK_TEST_SEED repeats a run), the server stopped dead
# (pg_ctl stop -m immediate) in the middle of pulls and started again, the
# roles of init-server, a schema newer than the binary, and how a server is
# named. After each fault: the archive equals the simulators' ground truth,
# no record twice, and nothing the pen forgot is missing from the archive.
# Usage: test_pg.sh PENLINK PENLINK_SIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
PENLINK_TEST_ARCHIVE=postgresql
. "$(dirname "$0")/harness.sh"
PGPORT=$(cat "$tmp/pg/port")
psql_as() { # role database sql...: psql's answer (errors included) in $tmp/psql
    r=$1 db=$2
    shift 2
    for s in "$@"; do set -- "$@" -c "$s"; shift; done
    psql -X -q -At -h "$tmp/pg" -p "$PGPORT" -U "$r" -d "$db" -v ON_ERROR_STOP=1 "$@" \
        > "$tmp/psql" 2>&1
}
acked() { # sock: the pen's first unacknowledged seq
    $PL --device "sim:$1" --json info | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])'
}
# Everything the pen acknowledged is in the archive, from seq 0 without a hole.
nothing_lost() { # archive serial sock
    a=$(acked "$3")
    # (a pull killed before it set the archive up left none: nothing archived)
    set -- $({ q "$1" "SELECT count(*), coalesce(max(seq) + 1, 0) FROM records r JOIN devices d
        ON d.id = r.device_id WHERE d.serial = '$2'" 2> /dev/null || echo "0|0"; } | tr '|' ' ')
    [ "$1" = "$2" ] && [ "$2" -ge "$a" ]
}
seed=${PENLINK_TEST_SEED:-$(date +%s)}
echo "seed $seed (PENLINK_TEST_SEED=$seed repeats this run)"
rnd() { # max: the next number in 1..max of the seeded sequence
    seed=$(((seed * 1103515245 + 12345) % 2147483648))
    echo $((seed % $1 + 1))
}
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# 1. concurrency: 4 pens by 4 processes at once, 2 more processes on pen 1,
# and two copies of one pen (one pen seen at two docking stations), repeated
A=$(archive fleet)
for i in 1 2 3 4; do
    $SIM --state "$tmp/f$i" --serial "PEN-F$i" --seed "$((40 + i))" --simulate-days 20 > /dev/null
done
$SIM --state "$tmp/twin" --serial PEN-TWIN --seed 49 --simulate-days 20 > /dev/null
for round in 1 2 3; do
    if [ "$round" -gt 1 ]; then # the pens keep logging between rounds
        for i in 1 2 3 4; do
            stop_sim "f$i"
            $SIM --state "$tmp/f$i" --simulate-days 2 > /dev/null
        done
        # one pen goes on: the copy whose pull took its records (and sealed its
        # staged tail into a chunk for it); the other waited for it, found
        # nothing new and only acknowledged
        won=twa
        grep -q '"records":0,' "$tmp/o.twa" && won=twb
        stop_sim twa
        stop_sim twb
        rm -rf "$tmp/twin"
        mv "$tmp/$won" "$tmp/twin"
        $SIM --state "$tmp/twin" --simulate-days 2 > /dev/null
    fi
    rm -rf "$tmp/twa" "$tmp/twb"
    cp -r "$tmp/twin" "$tmp/twa"
    cp -r "$tmp/twin" "$tmp/twb"
    for i in 1 2 3 4; do start_sim "f$i"; done
    start_sim twa
    start_sim twb
    jobs="" n=0
    for s in f1 f2 f3 f4 f1 f1 twa twb; do
        n=$((n + 1))
        $PL --device "sim:$tmp/$s.sock" --archive "$A" --json pull > "$tmp/o.$n" 2> "$tmp/e.$n" &
        jobs="$jobs $!"
    done
    failed=0
    for j in $jobs; do wait "$j" || failed=$((failed + 1)); done
    [ $failed -eq 0 ] && ok "round $round: 8 pulls at once, all succeed" ||
        { bad "round $round: $failed pulls failed"; cat "$tmp"/o.* "$tmp"/e.* | head -20; }
    mv "$tmp/o.7" "$tmp/o.twa"
    mv "$tmp/o.8" "$tmp/o.twb"
    rm -f "$tmp"/o.[0-9]* "$tmp"/e.[0-9]*
    check "round $round: one copy of the twin pulled its new records, the other none" \
        '[ "$(cat $tmp/o.twa $tmp/o.twb | grep -c "\"records\":0,")" = 1 ]'
    good=1
    for i in 1 2 3 4; do
        same "$A" "PEN-F$i" "$tmp/f$i/ground-truth.jsonl" || good=0
        [ "$(acked "$tmp/f$i.sock")" = "$(wc -l < "$tmp/f$i/ground-truth.jsonl")" ] || good=0
    done
    same "$A" PEN-TWIN "$tmp/twin/ground-truth.jsonl" || good=0
    [ $good -eq 1 ] && ok "round $round: archive = ground truth for every pen, every pen acknowledged" ||
        bad "round $round: archive differs"
    check "round $round: no chunk twice" \
        '[ "$(q "$A" "SELECT count(*) FROM (SELECT 1 FROM chunks GROUP BY device_id, first_seq, record_count, data HAVING count(*) > 1) x")" = 0 ]'
    # the lock: two pulls of one pen never ran at the same time
    check "round $round: pulls of one pen never overlapped" '[ "$(q "$A" "SELECT count(*) FROM pulls a
        JOIN pulls b ON a.device_id = b.device_id AND a.id < b.id AND a.started_ms < b.finished_ms
        AND b.started_ms < a.finished_ms")" = 0 ]'
done
check "no alarm" '[ "$(q "$A" "SELECT count(*) FROM alarms")" = 0 ]'

# 2. the pen lock, held by another session: the pull waits for it
id=$(q "$A" "SELECT id FROM devices WHERE serial = 'PEN-F2'")
db=fleet
stop_sim f2
$SIM --state "$tmp/f2" --simulate-days 1 > /dev/null
start_sim f2
psql -X -q -At -h "$tmp/pg" -p "$PGPORT" -U penlink -d "$db" -c "BEGIN" \
    -c "SELECT pg_advisory_xact_lock(1886153474, $id)" -c "SELECT pg_sleep(2)" \
    -c "CREATE TABLE public.released AS SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms" \
    -c "COMMIT" > "$tmp/holder" 2>&1 &
holder=$!
sleep 0.5
run 0 "a pull of a pen whose lock another session holds" $PL --device "sim:$tmp/f2.sock" --archive "$A" pull
wait $holder
check "it waited for the lock: its pull began after the holder let go" \
    '[ "$(q "$A" "SELECT count(*) FROM pulls p, public.released r WHERE p.device_id = '"$id"' AND p.started_ms >= r.ms")" = 1 ]'
same "$A" PEN-F2 "$tmp/f2/ground-truth.jsonl" && ok "and archived the pen exactly" || bad "pen after the lock"
# held for longer than this pull will wait (lock_timeout in the connection's
# options): it gives up, says who holds the lock, acknowledges nothing
stop_sim f2
$SIM --state "$tmp/f2" --simulate-days 1 > /dev/null
start_sim f2
psql -X -q -At -h "$tmp/pg" -p "$PGPORT" -U penlink -d "$db" -c "SET application_name = 'dock-7 of site B'" \
    -c "BEGIN" -c "SELECT pg_advisory_xact_lock(1886153474, $id)" -c "SELECT pg_sleep(6)" \
    -c "COMMIT" > "$tmp/holder" 2>&1 &
holder=$!
sleep 0.5
before=$(acked "$tmp/f2.sock")
run 3 "a pull that waits longer than its lock_timeout" env PGOPTIONS="-c lock_timeout=1s" \
    $PL --device "sim:$tmp/f2.sock" --archive "$A" pull
check "it says who holds the pen" 'grep -q "PEN-F2 is being pulled into it by .dock-7 of site B." $tmp/err && grep -q "waited 1s" $tmp/err'
check "nothing acknowledged" '[ "$(acked "$tmp/f2.sock")" = "$before" ]'
wait $holder
run 0 "once it is free, the pull goes on" $PL --device "sim:$tmp/f2.sock" --archive "$A" pull
same "$A" PEN-F2 "$tmp/f2/ground-truth.jsonl" && ok "and archives the pen exactly" || bad "pen after the lock timeout"

# 3. SIGKILL at random points while the pen keeps logging
K=$(archive kill)
start_sim k --serial PEN-KILL --seed 23 --simulate-days 30
kills=0 lost=0
for r in 1 2 3 4 5; do
    if [ "$r" -gt 1 ]; then
        stop_sim k
        start_sim k --simulate-days 1
    fi
    for k in 1 2 3 4 5; do
        $PL --device "sim:$tmp/k.sock" --archive "$K" --quiet pull > /dev/null 2>&1 &
        p=$!
        sleep_ms "$(rnd 400)"
        kill -9 $p 2> /dev/null
        wait $p 2> /dev/null
        kills=$((kills + 1))
        nothing_lost "$K" PEN-KILL "$tmp/k.sock" || lost=$((lost + 1))
    done
done
[ $lost -eq 0 ] && ok "$kills SIGKILLs: after each, everything the pen forgot is archived" ||
    bad "$lost of $kills kills left acknowledged records missing"
run 0 "a pull after the kills" $PL --device "sim:$tmp/k.sock" --archive "$K" pull
same "$K" PEN-KILL "$tmp/k/ground-truth.jsonl" && ok "archive = ground truth after $kills kills" ||
    bad "archive after kills"
check "the pen holds nothing unacknowledged" '[ "$(acked "$tmp/k.sock")" = "$(wc -l < "$tmp/k/ground-truth.jsonl")" ]'
stop_sim k

# 4. the server stopped dead mid-pull (pg_ctl stop -m immediate), then started
S=$(archive stop)
$SIM --state "$tmp/big" --serial PEN-BIG --seed 24 --simulate-days 400 > /dev/null
# how long a pull of it takes here, for stops at random points inside one
cp -r "$tmp/big" "$tmp/cal"
start_sim cal
t0=$(date +%s%N)
$PL --device "sim:$tmp/cal.sock" --archive "$(archive cal)" --quiet pull > /dev/null 2>&1
span=$((($(date +%s%N) - t0) / 1000000))
stop_sim cal
echo "     (a pull of the pen takes $span ms here)"
start_sim big
for round in 1 2 3; do
    if [ "$round" -gt 1 ]; then # as much again, stopped at a random point of its pull
        stop_sim big
        $SIM --state "$tmp/big" --simulate-days 300 > /dev/null
        start_sim big
    fi
    before=$(q "$S" "SELECT count(*) FROM records" 2> /dev/null || echo 0)
    $PL --device "sim:$tmp/big.sock" --archive "$S" --quiet pull > "$tmp/stop.out" 2>&1 &
    p=$!
    if [ "$round" -eq 1 ]; then # after a commit mid-pull
        i=0
        while [ "$(q "$S" "SELECT count(*) FROM records" 2> /dev/null || echo 0)" = "$before" ] &&
            [ $i -lt 600 ]; do
            sleep 0.02
            i=$((i + 1))
        done
    else # at a random point
        sleep_ms "$(rnd $((span * 2 / 3)))"
    fi
    sh "$here/pg_cluster.sh" stop "$tmp/pg"
    wait $p
    rc=$?
    sh "$here/pg_cluster.sh" restart "$tmp/pg"
    if [ $rc -eq 0 ]; then
        echo "     (round $round: the pull had finished before the server stopped)"
    else
        [ $rc -eq 7 ] && grep -q "server went away\|cannot connect" "$tmp/stop.out" &&
            ok "round $round: the pull stops with an I/O error naming the server (exit 7)" ||
            { bad "round $round: pull exit $rc"; cat "$tmp/stop.out"; }
    fi
    nothing_lost "$S" PEN-BIG "$tmp/big.sock" && ok "round $round: everything the pen forgot is archived" ||
        bad "round $round: acknowledged records missing after the server stopped"
    run 0 "round $round: the next pull resumes" $PL --device "sim:$tmp/big.sock" --archive "$S" pull
    same "$S" PEN-BIG "$tmp/big/ground-truth.jsonl" && ok "round $round: archive = ground truth" ||
        bad "round $round: archive after the server stopped"
done
run 0 "the archive verifies" $PL --archive "$S" verify
stop_sim big

# 5. roles: init-server, a writer that only appends, a reader that only reads
R=$(archive roles)
run 0 "init-server" $PL --archive "$R" archive init-server
check "it says what it did" 'grep -q "schema penlink: created" $tmp/out && grep -q "role penlink_writer: created" $tmp/out && grep -q "role penlink_reader: created" $tmp/out'
run 0 "init-server again" $PL --archive "$R" archive init-server --json
check "again: nothing new" 'grep -q "at version 2 already" $tmp/out && grep -q "penlink_writer: exists" $tmp/out'
psql_as penlink roles "DROP ROLE IF EXISTS tech" "DROP ROLE IF EXISTS aud" \
    "CREATE ROLE tech LOGIN IN ROLE penlink_writer" "CREATE ROLE aud LOGIN IN ROLE penlink_reader"
start_sim r --serial PEN-ROLE --seed 25 --simulate-days 5
RT=$(pg_uri roles | sed 's|//penlink@|//tech@|')
RA=$(pg_uri roles | sed 's|//penlink@|//aud@|')
run 0 "the writer pulls" $PL --device "sim:$tmp/r.sock" --archive "$RT" pull
same "$R" PEN-ROLE "$tmp/r/ground-truth.jsonl" && ok "what the writer pulled is archived" || bad "writer's pull"
for sql in "UPDATE penlink.records SET seq = seq + 1000000" "DELETE FROM penlink.records" \
    "TRUNCATE penlink.records" "UPDATE penlink.pen_keys SET public_key = public_key" \
    "DELETE FROM penlink.alarms"; do
    psql_as tech roles "$sql" && bad "the writer may: $sql" ||
        { grep -q "permission denied" "$tmp/psql" && ok "the writer may not: $sql" ||
            { bad "the writer: $sql"; cat "$tmp/psql"; }; }
done
psql_as aud roles "INSERT INTO penlink.alarms (device_id, at_ms, kind, seq, count) SELECT id, 0, 'gap', 0, 1 FROM penlink.pens" &&
    bad "the reader may insert" ||
    { grep -q "permission denied" "$tmp/psql" && ok "the reader may not INSERT" || { bad "reader insert"; cat "$tmp/psql"; }; }
run 0 "the reader audits" $PL --archive "$RA" audit --report integrity
run 0 "the reader verifies" $PL --archive "$RA" verify
run 0 "the reader exports" $PL --archive "$RA" export records
check "one line per record" '[ $(($(wc -l < $tmp/out) - 1)) -eq "$(wc -l < $tmp/r/ground-truth.jsonl)" ]'
stop_sim r
$SIM --state "$tmp/r" --simulate-days 1 > /dev/null
start_sim r
before=$(acked "$tmp/r.sock")
run 7 "the reader cannot pull" $PL --device "sim:$tmp/r.sock" --archive "$RA" pull
check "the error says it is not allowed" 'grep -q "not allowed" $tmp/err'
check "and nothing was acknowledged" '[ "$(acked "$tmp/r.sock")" = "$before" ]'
# the owner too is held by the triggers
for sql in "UPDATE penlink.records SET body = body" "DELETE FROM penlink.chunks" \
    "TRUNCATE penlink.heads CASCADE" "UPDATE penlink.pull_ends SET result = 'ok'"; do
    psql_as penlink roles "$sql" && bad "the owner may: $sql" ||
        { grep -q "append-only" "$tmp/psql" && ok "a trigger refuses the owner: $sql" ||
            { bad "owner: $sql"; cat "$tmp/psql"; }; }
done

# 6. a server schema newer than this penlink: refused, nothing changed
psql_as penlink roles "INSERT INTO penlink.schema_version VALUES (99, 0, 'a later penlink')"
n=$(q "$R" "SELECT (SELECT count(*) FROM pulls) + (SELECT count(*) FROM records)")
run 5 "a newer schema is refused" $PL --device "sim:$tmp/r.sock" --archive "$R" pull
check "the message says so" 'grep -q "schema version 99, newer than this penlink" $tmp/err && grep -q "left untouched" $tmp/err'
check "nothing changed" '[ "$(q "$R" "SELECT (SELECT count(*) FROM pulls) + (SELECT count(*) FROM records)")" = "$n" ]'
check "nothing acknowledged" '[ "$(acked "$tmp/r.sock")" = "$before" ]'
run 5 "an audit too" $PL --archive "$R" audit
stop_sim r

# 7. naming a server: PENLINK_ARCHIVE, service=NAME, never a password
run 0 "PENLINK_ARCHIVE selects the server" env PENLINK_ARCHIVE="$A" $PL verify
grep -v " verified " "$tmp/out" | grep -v "^5 pens" | sed 's/^/    /'
check "its pens are there" 'grep -q "PEN-F1 *verified" $tmp/out'
printf '[penlink-test]\nhost=%s\nport=%s\nuser=penlink\ndbname=fleet\n' "$tmp/pg" "$PGPORT" > "$tmp/services"
run 0 "service=NAME (a libpq service file)" env PGSERVICEFILE="$tmp/services" $PL --archive service=penlink-test export treatments --pen PEN-F3
check "the pen's treatments" '[ "$(wc -l < $tmp/out)" -gt 1 ]'
run 2 "a password in the URI is refused" $PL --archive "postgresql://penlink:secret@/fleet?host=$tmp/pg" audit
check "it says where passwords go" 'grep -q "pgpass" $tmp/err && ! grep -q secret $tmp/err'
run 7 "an unreachable server" $PL --archive "postgresql://penlink@/fleet?host=$tmp/nowhere" audit
check "it says it cannot connect" 'grep -q "cannot connect" $tmp/err'
finish
