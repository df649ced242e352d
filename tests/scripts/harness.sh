# Shared by the shell tests that drive penlink against penlink-sim: a temp
# dir removed on exit, pass/fail counting, and simulators started and
# stopped by name. Source it after setting PL (the penlink command, with
# $PENLINK_WRAP before it) and SIM (the penlink-sim binary).
tmp=$(mktemp -d)
# the default archive (and key) places are inside the test's own directory
export XDG_DATA_HOME="$tmp/data" XDG_CONFIG_HOME="$tmp/config"
# Nothing depends on the calendar or the machine's zone: every simulated pen's
# first day is T0 (2026-03-02T00:00:00Z, a Monday; pass --start-time $T0), and
# local time is UTC unless a test says otherwise.
T0=1772409600000
export TZ=UTC
pass=0
fail=0
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2> /dev/null; done
    wait 2> /dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }
run() { # want-exit name cmd... ; output in $tmp/out, $tmp/err
    want=$1 name=$2
    shift 2
    "$@" > "$tmp/out" 2> "$tmp/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else
        bad "$name: exit $got, want $want"; sed 's/^/    /' "$tmp/err" | head -5; fi
}
wait_sock() { # path: up to 20 s for a simulator to listen
    i=0
    while [ ! -S "$1" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
    [ -S "$1" ]
}
start_sim() { # name extra-args... ; state in $tmp/NAME, socket $tmp/NAME.sock, pid in pid_NAME
    name=$1
    shift
    rm -f "$tmp/$name.sock"
    $SIM --state "$tmp/$name" --listen "$tmp/$name.sock" "$@" > "$tmp/$name.log" 2>&1 &
    pids="$pids $!"
    eval "pid_$name=$!"
    wait_sock "$tmp/$name.sock" || { echo "penlink-sim did not start:"; cat "$tmp/$name.log"; exit 1; }
}
stop_sim() { # name
    eval "p=\$pid_$1"
    kill "$p" 2> /dev/null
    wait "$p" 2> /dev/null
}
jget() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$@"; }
finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
