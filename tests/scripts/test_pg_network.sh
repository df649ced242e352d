#!/bin/sh
# A pull into PostgreSQL whose network is cut, or which is interrupted while
# it waits for the server or for another pull of its pen: it must end (never
# hang), acknowledge nothing that was not committed, and leave the pen's lock
# to the server. The cut is a proxy that stops forwarding without closing
# anything (blackhole_proxy.py), as a pulled cable or a dead VPN does.
#  1. SIGINT while the pull waits for the pen's lock (another pull holds it):
#     exit 130 at once, nothing pulled, the holder undisturbed.
#  2. The network cut mid-pull (after a commit): the pull stops with exit 7,
#     "the server did not answer" (PENLINK_SERVER_TIMEOUT bounds each wait),
#     nothing acknowledged; its sockets have TCP keepalives on.
#  3. The network cut while the pull waits for its pen, then SIGINT: exit 130,
#     nothing acknowledged.
#  4. A pull whose lock session the server ends mid-pull (pg_terminate_backend,
#     as idle_in_transaction_session_timeout would), and a second pull of the
#     same pen (an identical copy, at another docking station) that then
#     starts: the first stops before its next commit, exit 7, nothing
#     acknowledged, no raw server error; the second pulls the pen exactly.
# Each "must end" waits for the event with a generous bound, only so that a
# regression fails instead of hanging the suite.
# Usage: test_pg_network.sh PENLINK PENLINK_SIM (PENLINK_TEST_ARCHIVE=postgresql)
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"
[ "$backend" = postgresql ] || { echo "PENLINK_TEST_ARCHIVE=postgresql only"; exit 1; }
acked() { # sock: the pen's first unacknowledged seq
    $PL --device "sim:$1" --json info | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])'
}
ends_within() { # pid seconds: waits for the process to end; its status in $st
    i=0
    while kill -0 "$1" 2> /dev/null && [ $i -lt $(($2 * 20)) ]; do sleep 0.05; i=$((i + 1)); done
    if kill -0 "$1" 2> /dev/null; then
        kill -9 "$1" 2> /dev/null
        wait "$1" 2> /dev/null
        st=hung
        return 1
    fi
    wait "$1"
    st=$?
}
psql_bg() { # appname sql...: a session of its own, in the background
    app=$1
    shift
    for s in "$@"; do set -- "$@" -c "$s"; shift; done
    PGAPPNAME=$app psql -X -q -h "$tmp/pg" -p "$(cat "$tmp/pg/port")" -U penlink -d net "$@" \
        > /dev/null 2>&1 &
}
proxy_start() { # a fresh proxy to the cluster; its URI in $P
    rm -f "$tmp/proxy.port"
    "$PY" "$here/blackhole_proxy.py" "$tmp/pg/.s.PGSQL.$(cat "$tmp/pg/port")" "$tmp/proxy.port" &
    proxy=$!
    pids="$pids $proxy"
    i=0
    while [ ! -s "$tmp/proxy.port" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
    P="postgresql://penlink@127.0.0.1:$(cat "$tmp/proxy.port")/net"
}

N=$(archive net)
start_sim a --serial PEN-NET --seed 31 --simulate-days 5 --start-time $T0
run 0 "a first pull of the pen" $PL --device "sim:$tmp/a.sock" --archive "$N" pull
stop_sim a
$SIM --state "$tmp/a" --simulate-days 2 --start-time $T0 > /dev/null
start_sim a

# 1. SIGINT while waiting for the pen's lock
id=$(q "$N" "SELECT id FROM devices WHERE serial = 'PEN-NET'")
before=$(acked "$tmp/a.sock")
pulls=$(q "$N" "SELECT count(*) FROM pulls")
psql_bg holder "BEGIN" "SELECT pg_advisory_xact_lock(1886153474, $id)" "SELECT pg_sleep(300)"
holder=$!
i=0
while [ "$(q "$N" "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")" = 0 ] &&
    [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
$PL --device "sim:$tmp/a.sock" --archive "$N" pull > "$tmp/lock.out" 2> "$tmp/lock.err" &
p=$!
# it waits once its lock session has asked for the lock and been refused
i=0
while [ "$(q "$N" "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'penlink %'
    AND query LIKE '%lock_timeout%'")" = 0 ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
kill -INT $p
ends_within $p 60
check "SIGINT while waiting for the lock: exit 130" '[ "$st" = 130 ]'
sed 's/^/    /' "$tmp/lock.err"
check "it says what it was waiting for" 'grep -q "PEN-NET is being pulled into it by .holder.*interrupted" $tmp/lock.err'
check "nothing acknowledged, nothing pulled" \
    '[ "$(acked "$tmp/a.sock")" = "$before" ] && [ "$(q "$N" "SELECT count(*) FROM pulls")" = "$pulls" ]'
check "the holder still holds the lock" 'kill -0 $holder 2> /dev/null &&
    [ "$(q "$N" "SELECT count(*) FROM pg_locks WHERE locktype = '"'advisory'"' AND granted")" = 1 ]'
q "$N" "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'holder'" > /dev/null
wait $holder 2> /dev/null
stop_sim a

# 2. the network cut mid-pull, after a commit: the pull ends, exit 7
$SIM --state "$tmp/b" --serial PEN-CUT --seed 32 --simulate-days 400 --start-time $T0 > /dev/null
start_sim b
proxy_start
recs=$(q "$N" "SELECT count(*) FROM records")
PENLINK_SERVER_TIMEOUT=3 $PL --device "sim:$tmp/b.sock" --archive "$P" pull > "$tmp/cut.out" 2> "$tmp/cut.err" &
p=$!
i=0
while [ "$(q "$N" "SELECT count(*) FROM records")" = "$recs" ] && [ $i -lt 1200 ]; do
    sleep 0.02
    i=$((i + 1))
done
check "the pull is under way through the proxy, with TCP keepalives on its sockets" \
    'ss -tnoH state established "( dport = :$(cat "$tmp/proxy.port") )" | grep -q "timer:(keepalive"'
kill -USR1 $proxy
ends_within $p 120
check "a network cut mid-pull ends the pull: exit 7" '[ "$st" = 7 ]'
sed 's/^/    /' "$tmp/cut.err"
check "it says the server did not answer" 'grep -q "the server did not answer for 3 s" $tmp/cut.err'
check "nothing acknowledged" '[ "$(acked "$tmp/b.sock")" = 0 ]'
kill $proxy
wait $proxy 2> /dev/null

# 3. the network cut while the pull waits for its pen, then SIGINT
stop_sim b
proxy_start
rm -f "$tmp/hold.sock"
"$PY" "$here/stall_proxy.py" "$tmp/hold.sock" "$tmp/b.sock" 4 2> "$tmp/stall.log" &
stall=$!
pids="$pids $stall"
start_sim b
wait_sock "$tmp/hold.sock" || { echo "the stall proxy did not start"; exit 1; }
$PL --timeout 600000 --device "sim:$tmp/hold.sock" --archive "$P" pull > "$tmp/int.out" 2> "$tmp/int.err" &
p=$!
i=0
until grep -q holding "$tmp/stall.log" || [ $i -ge 400 ]; do sleep 0.05; i=$((i + 1)); done
kill -USR1 $proxy
kill -INT $p
ends_within $p 60
check "cut, then SIGINT while waiting: exit 130" '[ "$st" = 130 ]'
sed 's/^/    /' "$tmp/int.err"
kill $stall $proxy 2> /dev/null
wait $stall $proxy 2> /dev/null
check "nothing acknowledged" '[ "$(acked "$tmp/b.sock")" = 0 ]'
run 0 "the next pull, with the network back, archives the pen" $PL --device "sim:$tmp/b.sock" --archive "$N" pull
check "the pen's log is archived exactly" 'same "$N" PEN-CUT "$tmp/b/ground-truth.jsonl"'
stop_sim b

# 4. the lock's session ended by the server mid-pull, a second pull meanwhile.
# The pull may end before the poll sees its first commit (a fast run): then
# the lock is gone before it can be ended, and the section starts again with
# a fresh archive and pens (at most 5 tries, each logged).
try=0
while :; do
    try=$((try + 1))
    L=$(archive "lost$try")
    rm -rf "$tmp/c" "$tmp/c2"
    $SIM --state "$tmp/c" --serial PEN-LOST --seed 33 --simulate-days 400 --start-time $T0 > /dev/null
    cp -r "$tmp/c" "$tmp/c2"
    start_sim c
    start_sim c2
    $PL --device "sim:$tmp/c.sock" --archive "$L" pull > "$tmp/a.out" 2> "$tmp/a.err" &
    pa=$!
    i=0
    while [ "$(q "$L" "SELECT count(*) FROM records" 2> /dev/null || echo 0)" = 0 ] &&
        [ $i -lt 1200 ]; do
        sleep 0.02
        i=$((i + 1))
    done
    ended=$(q "$L" "SELECT count(pg_terminate_backend(l.pid))
        FROM pg_locks l WHERE l.locktype = 'advisory' AND l.classid = 1886153474")
    [ "$ended" = 1 ] || [ $try -ge 5 ] && break
    echo "try $try: the pull ended before its lock's session could be ended; again"
    wait $pa 2> /dev/null
    stop_sim c
    stop_sim c2
done
check "the lock's session is ended mid-pull (try $try)" '[ "$ended" = 1 ]'
$PL --device "sim:$tmp/c2.sock" --archive "$L" pull > "$tmp/b.out" 2> "$tmp/b.err" &
pb=$!
ends_within $pa 300
check "the pull that lost its lock stops: exit 7" '[ "$st" = 7 ]'
sed 's/^/    /' "$tmp/a.err"
check "it says it lost the pen's lock, no raw server error" \
    'grep -q "lost the pen.s lock" $tmp/a.err && ! grep -q "duplicate key" $tmp/a.err'
check "it acknowledged nothing" '[ "$(acked "$tmp/c.sock")" = 0 ]'
ends_within $pb 300
check "the second pull of the pen completes: exit 0" '[ "$st" = 0 ]'
sed 's/^/    /' "$tmp/b.err"
check "the pen's log is archived exactly" 'same "$L" PEN-LOST "$tmp/c/ground-truth.jsonl"'
check "no pull is said to be killed or crashed without naming the lost lock" \
    '[ "$(q "$L" "SELECT count(*) FROM pulls WHERE result = '"'interrupted'"' AND message NOT LIKE '"'%lock%'"'")" = 0 ]'
check "no pull is left running" '[ "$(q "$L" "SELECT count(*) FROM pulls WHERE result = '"'running'"'")" = 0 ]'
stop_sim c
stop_sim c2
finish
