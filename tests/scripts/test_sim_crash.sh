#!/bin/sh
# penlink-sim killed with SIGKILL at random points, then restarted on the same
# --state: while it simulates days (its first run, before it ever exited),
# while it logs live usage, and while it serves a pull. After each kill the
# pen must be the same pen (serial, device key), its log and ground-truth.jsonl
# must agree, a pull into a fresh archive must give exactly the ground truth
# from the first seq the pen still serves (nothing twice, nothing missing;
# what a pull acknowledged before the kill is no longer served, so the fresh
# archive pulls from a copy of the killed state), and the archive that pulled
# before the kill must take the pull after the restart with no duplicate and
# no conflict. Then two simulators on one state: the second is refused (exit
# 4, naming the directory and the pid that holds it) and the first goes on
# serving.
#
# Usage: test_sim_crash.sh PENLINK PENLINK_SIM
# SIM_CRASH_ROUNDS: rounds of the three kills (default 2; the valgrind tier
# sets 1). SIM_CRASH_SEED: replay a run's kill schedule (the seed is printed
# first; the schedule is in milliseconds, so a replay lands near, not exactly
# on, the same instruction: tests/firmware/test_sim_kill.c kills at exact
# points). PENLINK_WRAP (e.g. a valgrind command line) is put before penlink
# and penlink-sim.
set -u
PL="${PENLINK_WRAP:-} $1"
SIM="${PENLINK_WRAP:-} $2"
ROUNDS=${SIM_CRASH_ROUNDS:-2}
. "$(dirname "$0")/harness.sh"

seed=${SIM_CRASH_SEED:-$(($(date +%s%N) / 1000 % 2147483647))}
echo "seed $seed (replay: SIM_CRASH_SEED=$seed), $ROUNDS rounds"
rng=$seed
rnd() { # N: a number in 0..N-1 into $r
    rng=$(((rng * 1103515245 + 12345) % 2147483648))
    r=$((rng / 65536 % $1))
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
pubkey() { od -An -tx1 -j32 -N32 "$1/device.key" | tr -d ' \n'; }
info() { # name: DeviceInfo as JSON into $tmp/NAME.info
    $PL --device "sim:$tmp/$1.sock" --json info > "$tmp/$1.info" 2> "$tmp/err" ||
        { bad "$1: info"; cat "$tmp/err"; }
}
stop_clean() { # name: SIGTERM, and the simulator must exit 0 (valgrind: no errors)
    eval "p=\$pid_$1"
    kill "$p" 2> /dev/null
    wait "$p"
    st=$?
    [ $st -eq 0 ] || { bad "$1: penlink-sim exit $st after SIGTERM"; sed 's/^/    /' "$tmp/$1.log"; }
}
jf() { # info-file key: a string or number field of penlink's JSON (no python: it is slow to start)
    sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$1"
}
# The archive's records (penlink export, as the ground truth writes them)
# against the ground truth from seq FROM on, line for line: one pen, each
# seq once, nothing missing, every field equal.
same() { # archive serial truth-file from-seq
    $PL --archive "$1" export records --format json > "$tmp/export.jsonl" 2> "$tmp/err" ||
        { sed 's/^/    /' "$tmp/err"; return 1; }
    awk -F'[:,]' '$2 != NR - 1 { print "    ground truth line " NR ": " $0; exit 1 }' "$3" ||
        return 1
    if grep -qv "^{\"serial\":\"$2\"," "$tmp/export.jsonl"; then
        echo "    records of another pen: $(grep -v "^{\"serial\":\"$2\"," "$tmp/export.jsonl" | head -1)"
        return 1
    fi
    sed -e 's/^{"serial":"[^"]*",/{/' -e 's/,"schema":1}$/}/' -e 's/,"time":"[^"]*"//' -e 's/:"\(-\{0,1\}[0-9][0-9]*\)"/:\1/g' \
        "$tmp/export.jsonl" > "$tmp/export.norm"
    tail -n +$(($4 + 1)) "$3" > "$tmp/truth.part"
    cmp -s "$tmp/export.norm" "$tmp/truth.part" && return 0
    echo "    $(wc -l < "$tmp/export.norm") archived from seq $4, $(wc -l < "$tmp/truth.part") in the ground truth"
    diff "$tmp/export.norm" "$tmp/truth.part" | head -4 | sed 's/^/    /'
    return 1
}
archived() { # archive: how many records it holds
    if [ -e "$1" ]; then $PL --archive "$1" export records --format json | wc -l; else echo 0; fi
}
# After the kill: the same pen, its log = the ground truth, and the pulls.
# A pull acknowledges what it archived, so the fresh archive pulls from a
# twin: a copy of the killed pen's state directory, restarted beside it.
after_restart() { # name serial key first-seq-min first-seq-max [archive pulled before the kill]
    n=${1}t serial=$2 key=$3
    rm -rf "$tmp/$n"
    cp -r "$tmp/$1" "$tmp/$n"
    start_sim "$n"
    info "$n"
    check "$n: the same serial" '[ "$(jf $tmp/$n.info serial)" = "$serial" ]'
    check "$n: the same device key" '[ "$(jf $tmp/$n.info device_key)" = "$key" ]'
    check "$n: the pen's next seq = ground-truth records" \
        '[ "$(jf $tmp/$n.info log_next_seq)" -eq "$(wc -l < $tmp/$n/ground-truth.jsonl)" ]'
    first=$(jf "$tmp/$n.info" log_first_seq)
    [ "$first" -ge "$4" ] && [ "$first" -le "$5" ] ||
        bad "$n: the pen serves from seq $first, not $4..$5"
    run 0 "$n: pull into a fresh archive" $PL --device "sim:$tmp/$n.sock" --archive "$tmp/$n.db" \
        --quiet pull
    same "$tmp/$n.db" "$serial" "$tmp/$n/ground-truth.jsonl" "$first" &&
        ok "$n: fresh archive = ground truth from seq $first" || bad "$n: fresh archive differs"
    stop_clean "$n"
    n=$1
    start_sim "$n"
    info "$n"
    check "$n: the same serial" '[ "$(jf $tmp/$n.info serial)" = "$serial" ]'
    check "$n: the same device key" '[ "$(jf $tmp/$n.info device_key)" = "$key" ]'
    if [ $# -ge 6 ]; then
        run 0 "$n: the archive of before the kill pulls again" $PL --device "sim:$tmp/$n.sock" \
            --archive "$6" --quiet pull
        same "$6" "$serial" "$tmp/$n/ground-truth.jsonl" 0 &&
            ok "$n: that archive = ground truth, nothing twice" || bad "$n: that archive differs"
    fi
    stop_clean "$n"
}
landed=0
killed() { # pid: SIGKILL it; counts the kills that hit a running simulator
    kill -9 "$1" 2> /dev/null
    wait "$1"
    [ $? -eq 137 ] && landed=$((landed + 1))
}

# calibration: how long 20 simulated days, a penlink info and a pull of 30 days take here
t0=$(now_ms)
$SIM --state "$tmp/cal" --seed 7 --simulate-days 20 --start-time $T0 > /dev/null 2>&1
t_days=$(($(now_ms) - t0 + 1))
rm -rf "$tmp/cal"
start_sim cal --seed 7 --simulate-days 30 --start-time $T0
t0=$(now_ms)
$PL --device "sim:$tmp/cal.sock" info > /dev/null
t_info=$(($(now_ms) - t0))
t0=$(now_ms)
$PL --device "sim:$tmp/cal.sock" --archive "$tmp/cal.db" --quiet pull --no-ack
t_pull=$(($(now_ms) - t0 + 1))
stop_sim cal
echo "calibration: 20 days simulated in $t_days ms, info in $t_info ms, 30 days pulled in $t_pull ms"

k=0 # (harness's wait_sock uses $i)
while [ $k -lt "$ROUNDS" ]; do
    k=$((k + 1))

    # 1. killed while simulating days, in the run that made the state
    n=days$k
    rnd 1000
    $SIM --state "$tmp/$n" --serial "PEN-D$k" --seed $((r + 1)) --simulate-days 400 --start-time $T0 \
        > "$tmp/$n.log" 2>&1 &
    p=$!
    pids="$pids $p"
    w=0
    while [ ! -s "$tmp/$n/ground-truth.jsonl" ] && [ $w -lt 4000 ]; do sleep 0.005; w=$((w + 1)); done
    rnd $((2 * t_days))
    echo "# $n: kill at $r ms into the records"
    sleep_ms $r
    killed $p
    key=$(pubkey "$tmp/$n")
    after_restart "$n" "PEN-D$k" "$key" 0 0

    # 2. killed while logging live usage (an event a millisecond), after a pull
    n=live$k
    rnd 1000
    start_sim "$n" --serial "PEN-L$k" --seed $((r + 1)) --simulate-days 2 --start-time $T0 --live=1
    info "$n"
    key=$(jf "$tmp/$n.info" device_key)
    run 0 "$n: pull while it logs" $PL --device "sim:$tmp/$n.sock" --archive "$tmp/$n.db" --quiet pull
    info "$n"
    acked=$(jf "$tmp/$n.info" log_acked_seq)
    rnd 300
    echo "# $n: kill $r ms after the pull"
    sleep_ms $r
    eval "killed \$pid_$n"
    # what it acknowledged before the kill stays acknowledged
    after_restart "$n" "PEN-L$k" "$key" "$acked" "$acked" "$tmp/$n.db"

    # 3. killed while serving a pull (that commits and acknowledges as it goes)
    n=pull$k
    rnd 1000
    start_sim "$n" --serial "PEN-P$k" --seed $((r + 1)) --simulate-days 30 --start-time $T0
    info "$n"
    key=$(jf "$tmp/$n.info" device_key)
    $PL --device "sim:$tmp/$n.sock" --archive "$tmp/$n.db" --quiet pull > /dev/null 2>&1 &
    pl=$!
    span=$((t_pull - t_info))
    rnd $((span > 0 ? span : 1))
    r=$((r + t_info))
    echo "# $n: kill $r ms into the pull"
    sleep_ms $r
    eval "killed \$pid_$n"
    wait $pl
    echo "# $n: the pull ended with exit $?"
    # the pen acknowledged no more than the archive holds
    after_restart "$n" "PEN-P$k" "$key" 0 "$(archived "$tmp/$n.db")" "$tmp/$n.db"
done
echo "# $landed of $((3 * ROUNDS)) kills hit a running simulator"
check "the kills hit running simulators" '[ $landed -gt 0 ]'

# 4. two simulators on one state: the second is refused, the first serves on
start_sim one --serial PEN-ONE --seed 3 --simulate-days 2 --start-time $T0
before=$(wc -l < "$tmp/one/ground-truth.jsonl")
# (with --once: one that serves anyway ends after the client below)
($SIM --state "$tmp/one" --listen "$tmp/two.sock" --once > "$tmp/out" 2> "$tmp/err"
    echo $? > "$tmp/two.rc") &
while [ ! -e "$tmp/two.rc" ] && [ ! -S "$tmp/two.sock" ]; do sleep 0.01; done
if [ -S "$tmp/two.sock" ]; then
    bad "a second penlink-sim on the same --state serves"
    $PL --device "sim:$tmp/two.sock" info > /dev/null 2>&1
fi
wait $!
check "a second penlink-sim on the same --state exits 4" '[ "$(cat $tmp/two.rc)" -eq 4 ]'
check "it names the directory" 'grep -qF "$tmp/one" $tmp/err'
check "it names the pid holding it" 'grep -q "pid $pid_one\b" $tmp/err'
check "it did not listen" '[ ! -e $tmp/two.sock ]'
run 4 "one that would simulate days on it" $SIM --state "$tmp/one" --simulate-days 3 --start-time $T0
check "the ground truth is untouched" '[ "$(wc -l < $tmp/one/ground-truth.jsonl)" -eq "$before" ]'
info one
check "the first one still serves" '[ "$(jf $tmp/one.info serial)" = PEN-ONE ]'
run 0 "and its log pulls" $PL --device "sim:$tmp/one.sock" --archive "$tmp/one.db" --quiet pull
same "$tmp/one.db" PEN-ONE "$tmp/one/ground-truth.jsonl" 0 && ok "archive = ground truth, each seq once" ||
    bad "archive after the refused second simulator"
stop_clean one
run 0 "once it is gone the state is free" $SIM --state "$tmp/one" --simulate-days 1 --start-time $T0
finish
