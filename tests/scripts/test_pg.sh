#!/bin/sh
# What only a shared PostgreSQL archive has to answer for, on a throwaway
# cluster: many hosts pulling at once (4 pens by 4 processes, with 2 more
# processes on one pen and two copies of another pen pulled at the same
# moment, repeated), penlink killed at random points (seeded; the seed is
# printed, PENLINK_TEST_SEED repeats a run), the server stopped dead
# (pg_ctl stop -m immediate) in the middle of pulls and started again, the
# roles of init-server, a schema newer than the binary, one older (a version
# 1 server migrated), how a server is named, what the audit reads and keeps
# there (the values a configuration change replaced, notes on findings, the
# migration that adds them), pulls killed mid-pull marked interrupted, what
# opens it read-only (a reader's login, a standby), and a hot standby (a
# streaming replica of the cluster: audit, export and verify there equal the
# primary's once it caught up; a pull or push into it is refused in words).
# After each fault: the archive equals the simulators' ground truth,
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
revision() { # sock: the pen's configuration revision
    $PL --device "sim:$1" --json config get | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["revision"])'
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
    $SIM --state "$tmp/f$i" --serial "PEN-F$i" --seed "$((40 + i))" --simulate-days 20 --start-time $T0 > /dev/null
done
$SIM --state "$tmp/twin" --serial PEN-TWIN --seed 49 --simulate-days 20 --start-time $T0 > /dev/null
for round in 1 2 3; do
    if [ "$round" -gt 1 ]; then # the pens keep logging between rounds
        for i in 1 2 3 4; do
            stop_sim "f$i"
            $SIM --state "$tmp/f$i" --simulate-days 2 --start-time $T0 > /dev/null
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
        $SIM --state "$tmp/twin" --simulate-days 2 --start-time $T0 > /dev/null
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
$SIM --state "$tmp/f2" --simulate-days 1 --start-time $T0 > /dev/null
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
$SIM --state "$tmp/f2" --simulate-days 1 --start-time $T0 > /dev/null
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
start_sim k --serial PEN-KILL --seed 23 --simulate-days 30 --start-time $T0
kills=0 lost=0
for r in 1 2 3 4 5; do
    if [ "$r" -gt 1 ]; then
        stop_sim k
        start_sim k --simulate-days 1 --start-time $T0
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

# 3b. a killed pull's start has no end: it reads 'running' until a penlink
# that may write opens the archive and finds the pen's lock free (a live
# pull holds it to its end), then 'interrupted'; a live pull is left alone
I=$(archive interrupted)
start_sim i --serial PEN-INT --seed 26 --simulate-days 60 --start-time $T0
start_sim j --serial PEN-J --seed 27 --simulate-days 2 --start-time $T0
rm -f "$tmp/hold.sock"
# the host's frames: hello, device info (the CLI's, for the progress line), device info
# and configuration (the archive's checks), then the pull's own device info, held: the
# pull's row is written by then
"$PY" "$here/stall_proxy.py" "$tmp/hold.sock" "$tmp/i.sock" 5 2> "$tmp/proxy.log" &
proxy=$!
pids="$pids $proxy"
wait_sock "$tmp/hold.sock" || { echo "the proxy did not start"; cat "$tmp/proxy.log"; exit 1; }
$PL --timeout 600000 --device "sim:$tmp/hold.sock" --archive "$I" pull > "$tmp/held.out" 2>&1 &
held=$!
i=0
until grep -q holding "$tmp/proxy.log" || [ $i -ge 400 ]; do sleep 0.05; i=$((i + 1)); done
check "a pull is held mid-pull (its row says running)" '[ "$(q "$I" "SELECT result FROM pulls")" = running ]'
run 0 "meanwhile another pen is pulled into the archive" $PL --device "sim:$tmp/j.sock" --archive "$I" pull
check "the live pull is left running" \
    '[ "$(q "$I" "SELECT p.result FROM pulls p JOIN devices d ON d.id = p.device_id WHERE d.serial = '"'PEN-INT'"'")" = running ]'
kill -9 $held
wait $held 2> /dev/null
kill $proxy
wait $proxy 2> /dev/null
run 0 "an export (read-only) after the kill" $PL --archive "$I" export records
check "leaves the killed pull running" \
    '[ "$(q "$I" "SELECT p.result FROM pulls p JOIN devices d ON d.id = p.device_id WHERE d.serial = '"'PEN-INT'"'")" = running ]'
run 0 "the next pull opens the archive for writing" $PL --device "sim:$tmp/i.sock" --archive "$I" pull
check "the killed pull is now interrupted, with why" \
    '[ "$(q "$I" "SELECT count(*) FROM pulls WHERE result = '"'interrupted'"' AND message LIKE '"'%never recorded its end%'"'")" = 1 ]'
check "no pull is left running" '[ "$(q "$I" "SELECT count(*) FROM pulls WHERE result = '"'running'"'")" = 0 ]'
same "$I" PEN-INT "$tmp/i/ground-truth.jsonl" && ok "the pen's log is archived exactly" || bad "the killed pull's pen"
stop_sim i
stop_sim j

# 4. the server stopped dead mid-pull (pg_ctl stop -m immediate), then started
S=$(archive stop)
$SIM --state "$tmp/big" --serial PEN-BIG --seed 24 --simulate-days 400 --start-time $T0 > /dev/null
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
        $SIM --state "$tmp/big" --simulate-days 300 --start-time $T0 > /dev/null
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
check "again: nothing new" 'grep -q "at version 4 already" $tmp/out && grep -q "penlink_writer: exists" $tmp/out'
# the database's owner without CREATEROLE: refused before anything is written
psql_as penlink postgres "DROP DATABASE IF EXISTS owned" "DROP ROLE IF EXISTS dbowner" \
    "CREATE ROLE dbowner LOGIN" "CREATE DATABASE owned OWNER dbowner" ||
    { bad "could not make an owner's database"; cat "$tmp/psql"; }
run 7 "init-server by an owner without CREATEROLE is refused" \
    $PL --archive "$(pg_uri owned | sed 's|//penlink@|//dbowner@|')" archive init-server \
    --writer owned_writer --reader owned_reader
check "it says CREATEROLE is needed, and nothing was written" \
    'grep -q "needs a login with CREATEROLE" $tmp/err &&
     [ "$(psql -X -At -h "$tmp/pg" -p "$PGPORT" -U penlink -d owned -c "SELECT count(*) FROM pg_namespace WHERE nspname = '"'penlink'"'")" = 0 ]'
psql_as penlink roles "DROP ROLE IF EXISTS tech" "DROP ROLE IF EXISTS aud" \
    "CREATE ROLE tech LOGIN IN ROLE penlink_writer" "CREATE ROLE aud LOGIN IN ROLE penlink_reader"
start_sim r --serial PEN-ROLE --seed 25 --simulate-days 5 --start-time $T0
RT=$(pg_uri roles | sed 's|//penlink@|//tech@|')
RA=$(pg_uri roles | sed 's|//penlink@|//aud@|')
run 0 "the writer pulls" $PL --device "sim:$tmp/r.sock" --archive "$RT" pull
same "$R" PEN-ROLE "$tmp/r/ground-truth.jsonl" && ok "what the writer pulled is archived" || bad "writer's pull"
for sql in "UPDATE penlink.records SET seq = seq + 1000000" "DELETE FROM penlink.records" \
    "TRUNCATE penlink.records" "UPDATE penlink.pen_keys SET public_key = public_key" \
    "DELETE FROM penlink.alarms" "DELETE FROM penlink.key_replacements"; do
    psql_as tech roles "$sql" && bad "the writer may: $sql" ||
        { grep -q "permission denied" "$tmp/psql" && ok "the writer may not: $sql" ||
            { bad "the writer: $sql"; cat "$tmp/psql"; }; }
done
psql_as aud roles "INSERT INTO penlink.alarms (device_id, at_ms, kind, seq, count) SELECT id, 0, 'gap', 0, 1 FROM penlink.pens" &&
    bad "the reader may insert" ||
    { grep -q "permission denied" "$tmp/psql" && ok "the reader may not INSERT" || { bad "reader insert"; cat "$tmp/psql"; }; }
psql_as aud roles "INSERT INTO penlink.key_replacements (device_id, at_ms, reason, old_key, new_key, from_seq, heads_before) SELECT device_id, 0, 'x', public_key, public_key, 0, 0 FROM penlink.pen_keys" &&
    bad "the reader may record a key replacement" ||
    { grep -q "permission denied" "$tmp/psql" && ok "the reader may not record a key replacement" || { bad "reader key replacement"; cat "$tmp/psql"; }; }
check "the writer may record key replacements (keys replace), the reader read them" \
    '[ "$(q "$R" "SELECT CAST(has_table_privilege('"'penlink_writer'"', '"'penlink.key_replacements'"', '"'INSERT'"') AS integer) + CAST(has_table_privilege('"'penlink_reader'"', '"'penlink.key_replacements'"', '"'SELECT'"') AS integer)")" = 2 ]'
run 0 "the reader audits" $PL --archive "$RA" audit --report integrity
run 0 "the reader verifies" $PL --archive "$RA" verify
run 0 "the reader exports" $PL --archive "$RA" export records
check "one line per record" '[ $(($(wc -l < $tmp/out) - 1)) -eq "$(wc -l < $tmp/r/ground-truth.jsonl)" ]'
stop_sim r
$SIM --state "$tmp/r" --simulate-days 1 --start-time $T0 > /dev/null
start_sim r
before=$(acked "$tmp/r.sock")
run 7 "the reader cannot pull" $PL --device "sim:$tmp/r.sock" --archive "$RA" pull
check "the error says it is not allowed" 'grep -q "not allowed" $tmp/err'
check "and nothing was acknowledged" '[ "$(acked "$tmp/r.sock")" = "$before" ]'
# a configuration change the archive cannot record is not made: refused before
# anything is sent to the pen
rev=$(revision "$tmp/r.sock")
run 7 "the reader cannot change a pen's configuration" \
    $PL --device "sim:$tmp/r.sock" --archive "$RA" config set max_treatment_s=5400
check "it says why, and that nothing was sent" \
    'grep -q "nothing sent: .*may only read the archive" $tmp/err'
check "the pen's configuration is unchanged" '[ "$(revision "$tmp/r.sock")" = "$rev" ]'
# the owner too is held by the triggers
for sql in "UPDATE penlink.records SET body = body" "DELETE FROM penlink.chunks" \
    "TRUNCATE penlink.heads CASCADE" "UPDATE penlink.pull_ends SET result = 'ok'" \
    "DELETE FROM penlink.key_replacements"; do
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
# another program's schema of the same name: its tables and no schema_version
O=$(archive other)
psql_as penlink other "CREATE SCHEMA penlink" "CREATE TABLE penlink.pens (id int, name text)" \
    "INSERT INTO penlink.pens VALUES (1, 'not a pen')" || { bad "could not make another program's schema"; cat "$tmp/psql"; }
dump() { psql -X -q -At -h "$tmp/pg" -p "$PGPORT" -U penlink -d other -c \
    "SELECT string_agg(c.relname || ':' || c.relkind::text, ' ' ORDER BY c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'penlink'" \
    -c "SELECT * FROM penlink.pens"; }
other=$(dump)
for cmd in pull audit export verify; do
    case $cmd in
    pull) run 5 "another program's schema penlink: pull refuses it" $PL --device "sim:$tmp/r.sock" --archive "$O" pull ;;
    export) run 5 "another program's schema penlink: export refuses it" $PL --archive "$O" export records ;;
    *) run 5 "another program's schema penlink: $cmd refuses it" $PL --archive "$O" $cmd ;;
    esac
    check "$cmd says why" 'grep -q "is not a penlink archive: its schema penlink holds another program.s tables (pens)" $tmp/err'
done
check "its schema is as it was" '[ "$(dump)" = "$other" ]'
check "nothing acknowledged" '[ "$(acked "$tmp/r.sock")" = "$before" ]'
stop_sim r

# 7. a server at schema version 1 (tests/fixtures/archive-pg-v1.sql, as an
# earlier penlink left it) migrates on first open, in one transaction, and
# the audit is what it was
M=$(archive v1)
FX=$here/../fixtures
psql -X -q -h "$tmp/pg" -p "$PGPORT" -U penlink -d v1 -v ON_ERROR_STOP=1 -f "$FX/archive-pg-v1.sql" \
    > "$tmp/psql" 2>&1 || { bad "the v1 fixture does not load"; cat "$tmp/psql"; }
check "the fixture is at version 1" '[ "$(q "$M" "SELECT max(version) FROM schema_version")" = 1 ]'
# an audit reads the old schema as it is (it opens read-only, never migrates)
$PL --archive "$M" --json audit --report all > "$tmp/out" 2> "$tmp/err"
check "the audit of the version-1 archive, read as it is, is the one made before" \
    '"$PY" "$here/../json/upgrade_v0.py" same "$FX/archive-pg-v1-audit.json" "$tmp/out" audit audit_scope'
check "and says it read the records from the pens' chunks (newer than the fixture)" \
    'grep -q "^{\"type\":\"audit_scope\",\"records_from\":\"chunks\",\"chunks\":[1-9]" "$tmp/out"'
check "and left it at version 1" '[ "$(q "$M" "SELECT max(version) FROM schema_version")" = 1 ]'
# the first command that writes (verify records its verdict) migrates it
run 0 "and it verifies" $PL --archive "$M" verify
check "which migrated it to version 4" '[ "$(q "$M" "SELECT max(version) FROM schema_version")" = 4 ]'
check "with the notes on findings (version 2)" '[ "$(q "$M" "SELECT count(*) FROM annotations")" = 0 ]'
check "and the key replacements (version 4)" '[ "$(q "$M" "SELECT count(*) FROM key_replacements")" = 0 ]'
check "a pen's last sighting is its latest" \
    '[ "$(q "$M" "SELECT count(*) FROM pg_indexes WHERE indexname = '"'pen_sightings_latest'"'")" = 1 ]'
$PL --archive "$M" --json audit --report all > "$tmp/out" 2> "$tmp/err"
check "the audit after the migration is the same but for the new verdict" \
    '"$PY" "$here/../json/upgrade_v0.py" same "$FX/archive-pg-v1-audit.json" "$tmp/out" audit audit_scope verification'
check "which says verified" 'grep "\"type\":\"verification\"" "$tmp/out" | grep -q "\"state\":\"ok\""'

# 8. naming a server: PENLINK_ARCHIVE, service=NAME, never a password
run 0 "PENLINK_ARCHIVE selects the server" env PENLINK_ARCHIVE="$A" $PL verify
grep -v " verified " "$tmp/out" | grep -v "^5 pens" | sed 's/^/    /'
check "its pens are there" 'grep -q "PEN-F1 *verified" $tmp/out'
printf '[penlink-test]\nhost=%s\nport=%s\nuser=penlink\ndbname=fleet\n' "$tmp/pg" "$PGPORT" > "$tmp/services"
run 0 "service=NAME (a libpq service file)" env PGSERVICEFILE="$tmp/services" $PL --archive service=penlink-test export treatments --pen PEN-F3
check "the pen's treatments" '[ "$(wc -l < $tmp/out)" -gt 1 ]'
run 2 "a password in the URI is refused" $PL --archive "postgresql://penlink:secret@/fleet?host=$tmp/pg" audit
check "it says where passwords go" 'grep -q "pgpass" $tmp/err && ! grep -q secret $tmp/err'
run 2 "a password in a connection string inside dbname is refused" \
    $PL --archive "dbname=postgresql://penlink:secret@/fleet?host=$tmp/pg" audit
check "without echoing it" 'grep -q "pgpass" $tmp/err && ! grep -q secret $tmp/err'
run 7 "an unreachable server" $PL --archive "postgresql://penlink@/fleet?host=$tmp/nowhere" audit
check "it says it cannot connect" 'grep -q "cannot connect" $tmp/err'

# 9. what the audit reads and keeps on the server: the values a configuration
# change replaced (revision 1's limits, for a change made before the first
# pull), and notes on findings (append-only; an auditor's role may add them);
# a schema of version 1 (before the notes) is migrated by the owner
N=$(archive notes)
run 0 "init-server of another archive" $PL --archive "$N" archive init-server
check "the reader may add notes on findings, nothing else" \
    'grep -q "role penlink_reader: exists (NOLOGIN): SELECT on every table, INSERT on the notes on findings" $tmp/out'
start_sim c --serial PEN-C001 --seed 51 --simulate-days 3 --start-time $T0 --over-limit-permille 200
run 0 "config set before the first pull" $PL --archive "$N" --device "sim:$tmp/c.sock" config set max_treatment_s=5400
run 0 "then the first pull" $PL --archive "$N" --device "sim:$tmp/c.sock" pull
stop_sim c
check "the history holds revision 1 only as the change's old values" \
    '[ "$(q "$N" "SELECT revision, (old_json::json)->>'"'revision'"', (old_json::json)->>'"'max_treatment_s'"' FROM config_history")" = "2|1|3600" ]'
run 1 "audit" $PL --archive "$N" audit --format json
"$PY" - "$tmp/out" > "$tmp/id" << 'PY' && ok "revision 1's limits checked every treatment (no limits_unknown)" || bad "revision 1 unchecked on the server"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert not [r for r in rows if r.get("finding") == "limits_unknown"], "limits_unknown reported"
over = [r for r in rows if r.get("finding") == "out_of_limits"]
assert over and all(r["config_revision"] == 1 for r in over), over[:2]
print(over[0]["id"])
PY
id=$(cat "$tmp/id")
NA=$(pg_uri notes | sed 's|//penlink@|//aud@|')
run 0 "the reader annotates $id" $PL --archive "$NA" audit annotate "$id" --text "seen <b>1</b>" --operator "Dr. A"
run 0 "the owner adds a second note" $PL --archive "$N" audit annotate "$id" --text "checked again"
run 2 "a finding the audit does not make" $PL --archive "$N" audit annotate out_of_limits:PEN-C001:1 --text x
run 1 "the audit shows the notes" $PL --archive "$NA" audit --format json
"$PY" - "$tmp/out" "$id" << 'PY' && ok "json: both notes, oldest first, with who" || bad "notes on the server"
import json, sys
f = [x for x in map(json.loads, open(sys.argv[1])) if x.get("id") == sys.argv[2]][0]
a = f["annotations"]
assert [(x["by"], x["text"]) for x in a][0] == ("Dr. A", "seen <b>1</b>"), a
assert a[1]["text"] == "checked again" and "@" in a[1]["by"] and a[0]["at"] <= a[1]["at"], a
PY
for sql in "UPDATE penlink.annotations SET text = 'x'" "DELETE FROM penlink.annotations" \
    "TRUNCATE penlink.annotations"; do
    psql_as penlink notes "$sql" && bad "the owner may: $sql" ||
        { grep -q "append-only" "$tmp/psql" && ok "a trigger refuses the owner: $sql" ||
            { bad "owner: $sql"; cat "$tmp/psql"; }; }
done
psql_as aud notes "DELETE FROM penlink.annotations" && bad "the reader may delete notes" ||
    { grep -q "permission denied" "$tmp/psql" && ok "the reader may not delete notes" || { bad "reader delete"; cat "$tmp/psql"; }; }
check "both notes kept" '[ "$(q "$N" "SELECT count(*) FROM annotations")" = 2 ]'
psql_as penlink notes "ALTER TABLE penlink.schema_version DISABLE TRIGGER USER" \
    "DELETE FROM penlink.schema_version WHERE version >= 2" \
    "ALTER TABLE penlink.schema_version ENABLE TRIGGER USER" "DROP TABLE penlink.annotations" \
    "DROP INDEX penlink.pen_sightings_latest" "DROP TABLE penlink.key_replacements" ||
    { bad "could not make a version-1 schema"; cat "$tmp/psql"; }
run 1 "an audit of a version-1 schema, as the owner" $PL --archive "$N" audit
check "read as it is: still version 1, no notes table (audit never writes)" \
    '[ "$(q "$N" "SELECT max(version) FROM schema_version")" = 1 ] && [ "$(q "$N" "SELECT count(*) FROM pg_tables WHERE schemaname = '"'penlink'"' AND tablename = '"'annotations'"'")" = 0 ]'
run 0 "the owner's first write (a note) migrates it" $PL --archive "$N" audit annotate "$id" --text "after the upgrade"
check "the notes table is back, with that note" '[ "$(q "$N" "SELECT max(version) FROM schema_version")" = 4 ] && [ "$(q "$N" "SELECT count(*) FROM annotations")" = 1 ]'
run 0 "init-server again: at version 4" $PL --archive "$N" archive init-server
check "it says so" 'grep -q "at version 4 already" $tmp/out'
run 0 "the reader annotates the migrated archive" $PL --archive "$NA" audit annotate "$id" --text "by the reader, after the upgrade"

# 10. read-only on the server: audit, export and verify open a read-only
# session; verify records its verdicts only where the archive may be written
# from here (a writer's login on the primary), never from a reader's login
# or a standby, and never with --no-record
n=$(q "$N" "SELECT count(*) FROM verifications")
run 0 "the reader verifies" $PL --archive "$NA" verify
check "it says the verdicts were not recorded" 'grep -q "is read-only here: the verdicts above were not recorded" $tmp/err'
check "and none were" '[ "$(q "$N" "SELECT count(*) FROM verifications")" = "$n" ]'
NT=$(pg_uri notes | sed 's|//penlink@|//tech@|')
run 0 "the writer verifies" $PL --archive "$NT" verify
check "its verdict is recorded" '[ "$(q "$N" "SELECT count(*) FROM verifications")" = "$((n + 1))" ] && ! grep -q "not recorded" $tmp/err'
run 0 "the writer verifies with --no-record" $PL --archive "$NT" verify --no-record
check "nothing recorded" '[ "$(q "$N" "SELECT count(*) FROM verifications")" = "$((n + 1))" ]'
clusters="$clusters $tmp/sb"
sh "$here/pg_cluster.sh" standby "$tmp/sb" "$tmp/pg" "$PGPORT" || bad "a standby could not be made"
SB=$(pg_uri notes "$tmp/sb")
run 1 "the owner audits on the standby" $PL --archive "$SB" --json audit
check "the notes are there" 'grep -q "by the reader, after the upgrade" $tmp/out'
run 0 "and exports there" $PL --archive "$SB" export records
check "every record" '[ $(($(wc -l < $tmp/out) - 1)) -eq "$(q "$N" "SELECT count(*) FROM records")" ]'
run 0 "and verifies there" $PL --archive "$SB" verify
check "a standby: the verdicts were not recorded" 'grep -q "is read-only here: the verdicts above were not recorded" $tmp/err'
run 7 "a note cannot be added on the standby" $PL --archive "$SB" audit annotate "$id" --text "on the standby"
check "the server said why" 'grep -q "not allowed" $tmp/err'

# 11. a hot standby for auditors: a streaming replica of this cluster
# (pg_basebackup -R), written to through the primary only
clusters="$clusters $tmp/standby"
sh "$here/pg_cluster.sh" standby "$tmp/standby" "$tmp/pg" 5433 > /dev/null || bad "no standby"
SB="postgresql://penlink@/fleet?host=$tmp/standby&port=5433"
# the pens go on logging and are pulled into the primary while the standby streams
for f in f3 f4; do
    stop_sim $f
    $SIM --state "$tmp/$f" --simulate-days 2 --start-time $T0 > /dev/null
    start_sim $f
    run 0 "a pull into the primary ($f)" $PL --device "sim:$tmp/$f.sock" --archive "$A" pull
done
run 0 "verify on the primary (its verdicts stored there)" $PL --archive "$A" verify
caught_up() { # the standby replayed everything the primary wrote so far
    lsn=$(q "$A" "SELECT pg_current_wal_lsn()")
    i=0
    until [ "$(psql -X -At -h "$tmp/standby" -p 5433 -U penlink -d fleet -c \
        "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] || [ $i -ge 600 ]; do
        sleep 0.05
        i=$((i + 1))
    done
}
caught_up
same_out() { # what args...: the command's output on the standby equals the primary's
    $PL --archive "$A" "$@" > "$tmp/o.p" 2> "$tmp/e.p"
    x1=$?
    $PL --archive "$SB" "$@" > "$tmp/o.s" 2> "$tmp/e.s"
    x2=$?
    sed 's/checked in [0-9.]* s/checked in N s/' "$tmp/o.p" > "$tmp/o.primary"
    sed 's/checked in [0-9.]* s/checked in N s/' "$tmp/o.s" > "$tmp/o.standby"
    [ $x1 = $x2 ] && [ -s "$tmp/o.primary" ] && cmp -s "$tmp/o.primary" "$tmp/o.standby" &&
        ok "on the standby as on the primary: $* ($(wc -l < "$tmp/o.primary") lines)" ||
        { bad "standby: $*"; diff "$tmp/o.primary" "$tmp/o.standby" | head -5; }
}
same_out audit --format json
same_out audit
same_out export records --format csv
same_out export treatments --format json
same_out verify
check "verify on the standby says its verdicts were not recorded there" \
    'grep -q "is read-only here: the verdicts above were not recorded" $tmp/e.s && ! grep -q "read-only" $tmp/e.p'
same_out --json verify
check "the standby holds the pulls made after it started" \
    '[ "$(q "$SB" "SELECT count(*) FROM records")" = "$(q "$A" "SELECT count(*) FROM records")" ]'
stop_sim f3
$SIM --state "$tmp/f3" --simulate-days 1 --start-time $T0 > /dev/null
start_sim f3
before=$(acked "$tmp/f3.sock")
run 7 "a pull into the standby is refused" $PL --device "sim:$tmp/f3.sock" --archive "$SB" pull
check "in words: a hot standby, pull into the primary" \
    'grep -q "the server is a hot standby, which can only be read .*: pull and push into its primary" $tmp/err'
check "nothing acknowledged" '[ "$(acked "$tmp/f3.sock")" = "$before" ]'
run 7 "init-server on the standby is refused" $PL --archive "$SB" archive init-server
check "naming the standby" 'grep -q "init-server: the server is a hot standby" $tmp/err'
rev=$(revision "$tmp/f3.sock")
run 7 "a configuration change through the standby is refused" \
    $PL --device "sim:$tmp/f3.sock" --archive "$SB" config set max_treatment_s=5400
check "before anything is sent, in words" \
    'grep -q "nothing sent: .*hot standby" $tmp/err && [ "$(revision "$tmp/f3.sock")" = "$rev" ]'
$SIM --state "$tmp/s1" --serial PEN-S1 --seed 91 --simulate-days 1 --start-time $T0 > /dev/null
start_sim s1
$PL --device "sim:$tmp/s1.sock" --archive "$tmp/s1.db" --quiet pull > /dev/null 2>&1
run 7 "a push into the standby is refused" $PL --archive "$tmp/s1.db" archive push --to "$SB"
check "in the same words" 'grep -q "hot standby" $tmp/err'
run 0 "the pull into the primary" $PL --device "sim:$tmp/f3.sock" --archive "$A" pull
caught_up
same "$SB" PEN-F3 "$tmp/f3/ground-truth.jsonl" && ok "and the standby has it" || bad "standby after the pull"

finish
