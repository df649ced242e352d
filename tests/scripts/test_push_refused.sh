#!/bin/sh
# What a refused push must leave behind, on either backend.
#  1. A laptop's archive in which one pen carries another pen's device key
#     (an edit, or a clone's archive): no signed head of that pen verifies
#     under the key, so the push refuses the pen and stores nothing of it on
#     the server, its key above all (a pinned key is for good: pinning a
#     stranger's key there would refuse the real pens from then on). The
#     other pen is pushed; then both real pens pull into the server, and the
#     untampered archive pushes.
#  2. An HTML report made on a laptop checks against the server after the
#     laptop's push (the configuration history reads in the same order on
#     both, whatever order the push appended it in).
#  3. Two laptops' archives of one pen whose logs fork (a restored copy of
#     the pen logging apart): the second push is a conflict, its forked tail
#     kept as evidence, not as the continuation of the server's chain; verify
#     then names a fork, not an edit.
# Usage: test_push_refused.sh PENLINK PENLINK_SIM
# PENLINK_TEST_ARCHIVE=postgresql: the server is a PostgreSQL database.
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"
pull() { # pen archive: pulls a simulated pen (its state in $tmp/PEN) into an archive
    start_sim "$1"
    $PL --device "sim:$tmp/$1.sock" --archive "$2" --quiet pull > "$tmp/pull.out" 2>&1
    st=$?
    stop_sim "$1"
    return $st
}
state() { # everything the server holds, in one line
    q "$1" "SELECT (SELECT count(*) FROM records), (SELECT count(*) FROM chunks),
        (SELECT count(*) FROM heads), (SELECT count(*) FROM alarms),
        (SELECT count(*) FROM config_history), (SELECT count(*) FROM pulls),
        (SELECT count(*) FROM devices), (SELECT count(*) FROM devices WHERE public_key IS NOT NULL)"
}

# ---- 1. a pen carrying another pen's key -----------------------------------
for i in 1 2; do
    $SIM --state "$tmp/k$i" --serial "PEN-K$i" --seed "$((90 + i))" --simulate-days 20 \
        --start-time $T0 > /dev/null
done
L=$tmp/laptop.db
pull k1 "$L" && pull k2 "$L" || { echo "pulls into the laptop failed"; cat "$tmp/pull.out"; exit 1; }
cp "$L" "$tmp/tampered.db"
# PEN-K1 (pushed first: serial order) carries PEN-K2's key
edit "$tmp/tampered.db" "UPDATE devices SET public_key = (SELECT public_key FROM devices
    WHERE serial = 'PEN-K2') WHERE serial = 'PEN-K1'"
S=$(archive server)
run 6 "a push of a pen that carries another pen's key is refused" \
    $PL --archive "$tmp/tampered.db" archive push --to "$S"
check "the refusal says nothing of the pen was stored" \
    'grep -q "PEN-K1.*nothing of the pen was stored" $tmp/err'
check "no key pinned for the refused pen" \
    '[ "$(q "$S" "SELECT count(*) FROM devices WHERE serial = '"'PEN-K1'"'")" = 0 ]'
check "nothing of it stored" \
    '[ "$(q "$S" "SELECT count(*) FROM alarms")" = 0 ] &&
     [ "$(q "$S" "SELECT count(*) FROM pulls p JOIN devices d ON d.id = p.device_id
        WHERE d.serial = '"'PEN-K1'"'")" = 0 ]'
check "the other pen is pushed, its own key pinned" \
    '[ "$(q "$S" "SELECT count(*) FROM devices WHERE serial = '"'PEN-K2'"' AND public_key =
        (SELECT public_key FROM devices WHERE serial = '"'PEN-K2'"')")" = 1 ]'
# now that PEN-K2's key is pinned there, the same archive is a clone's claim:
# refused before its log is read, alarm key_reused (as a pull of a clone),
# still nothing of it pinned or stored
run 6 "pushed again: refused again" $PL --archive "$tmp/tampered.db" archive push --to "$S"
check "as a key another pen holds" 'grep -q "PEN-K1 presents device key .* pinned for pen PEN-K2" $tmp/err'
check "still no key and no record for it" \
    '[ "$(q "$S" "SELECT count(*) FROM devices WHERE serial = '"'PEN-K1'"' AND public_key IS NOT NULL")" = 0 ] &&
     [ "$(q "$S" "SELECT count(*) FROM records r JOIN devices d ON d.id = r.device_id
        WHERE d.serial = '"'PEN-K1'"'")" = 0 ]'
pull k1 "$S" && ok "the real PEN-K1 pulls into the server" ||
    { bad "the real PEN-K1 is refused by the server"; sed 's/^/    /' "$tmp/pull.out"; }
pull k2 "$S" && ok "the real PEN-K2 pulls into the server" ||
    { bad "the real PEN-K2 is refused by the server"; sed 's/^/    /' "$tmp/pull.out"; }
run 0 "the untampered archive pushes" $PL --archive "$L" archive push --to "$S"
run 0 "the server verifies" $PL --archive "$S" verify

# ---- 2. a report made before a push checks against the server after it ---
# the laptop pulls PEN-R2 before PEN-R1; the push goes in serial order
for i in 1 2; do
    $SIM --state "$tmp/r$i" --serial "PEN-R$i" --seed "$((95 + i))" --simulate-days 3 \
        --start-time $T0 > /dev/null
done
LR=$tmp/laptop-r.db
pull r2 "$LR" && pull r1 "$LR" || { echo "pulls into the laptop failed"; cat "$tmp/pull.out"; exit 1; }
run 0 "an HTML report on the laptop" $PL --archive "$LR" audit --format html --operator tech \
    -o "$tmp/laptop.html"
R=$(archive reports)
run 0 "the laptop pushed" $PL --archive "$LR" archive push --to "$R"
run 0 "the laptop's report checks against the server" \
    $PL --archive "$R" audit --check-report "$tmp/laptop.html"

# ---- 3. two laptops' logs of one pen fork ----------------------------------
# one pen's state restored onto a second pen (same serial and key), both then
# logging apart; the second logs longer: its tail continues its own log
rm -rf "$tmp/fa" "$tmp/fb"
$SIM --state "$tmp/fa" --serial PEN-FORK --seed 99 --simulate-days 10 --start-time $T0 > /dev/null
cp -r "$tmp/fa" "$tmp/fb"
$SIM --state "$tmp/fa" --simulate-days 2 --start-time $T0 > /dev/null
$SIM --state "$tmp/fb" --simulate-days 6 --start-time $T0 --clock-offset-ms 3600000 > /dev/null
F=$(archive forked)
pull fa "$tmp/g1.db" && pull fb "$tmp/g2.db" || { echo "pulls failed"; cat "$tmp/pull.out"; exit 1; }
run 0 "the first laptop pushed" $PL --archive "$tmp/g1.db" archive push --to "$F"
run 6 "the second laptop's push: a conflict" $PL --archive "$tmp/g2.db" archive push --to "$F"
check "it says the logs fork and the rest was not pushed" \
    'grep -q "the two logs fork.*not pushed" $tmp/out $tmp/err'
same "$F" PEN-FORK "$tmp/fa/ground-truth.jsonl" &&
    ok "the server's records are the first log's, nothing of the fork appended" ||
    bad "the fork's tail was appended to the server's log"
check "alarm conflict on the server" \
    '[ "$(q "$F" "SELECT count(*) FROM alarms WHERE kind = '"'conflict'"'")" = 1 ]'
$PL --archive "$F" verify > "$tmp/out" 2> "$tmp/err"
check "verify does not call the fork an edit" '! grep -qi "edited" $tmp/out $tmp/err'
sed 's/^/    /' "$tmp/out" "$tmp/err"
finish
