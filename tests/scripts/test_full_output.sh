#!/bin/sh
# Output to a full device is exit 7 for every command, with the reason on
# stderr: a command's last write, flush or close of standard output that
# fails means its output is incomplete, and a script must not take it for
# done. Standard output is made a full device by the LD_PRELOAD shim
# (PENLINK_ENOSPC_STDOUT: every write to it fails with ENOSPC, through stdio
# or write(2)); where the machine has /dev/full, "> /dev/full" is checked
# too (without it nothing here depends on it).
# A pipe whose reader went away is the same: exit 7, not death by SIGPIPE.
# Usage: test_full_output.sh PENLINK PENLINK_SIM ENOSPC_SHIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
SHIM=$3
. "$(dirname "$0")/harness.sh"

FULL="env LD_PRELOAD=$SHIM PENLINK_ENOSPC_STDOUT=1 ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0"
start_sim a --serial PEN-F001 --seed 5 --simulate-days 3 --start-time $T0
A="--device sim:$tmp/a.sock"
AR=$(archive full)
K=$tmp/keys
mkdir -p "$K"
$PL keys generate "$K/tech.key" > /dev/null 2>&1 || bad "keys generate"
$PL $A pull --no-ack -o "$tmp/a.plog" > /dev/null 2>&1 || bad "pull -o"
$PL $A --archive "$AR" pull > /dev/null 2>&1 || bad "pull into the archive"
$PL $A config export "$tmp/cfg.json" > /dev/null 2>&1 || bad "config export"

one_error() { # name: stderr gives one error, the output check's (a command's own
    # "writing the output failed" beside it would say the same thing twice)
    check "$1: one error, not two" '[ "$(grep -c "\"error\"" $tmp/err)" -le 1 ] &&
        ! grep -v "standard output: " $tmp/err | grep -qi "writ"'
}
full() { # name penlink-args...: exit 7 with standard output full, and why on stderr
    name=$1
    shift
    run 7 "$name, standard output full" $FULL $PL "$@"
    check "$name: stderr says the output is incomplete" \
        'grep -q "standard output: .*the output is incomplete" $tmp/err'
    one_error "$name"
}
full "--version" --version
full "--help" --help
full "info" $A info
full "info --json" $A --json info
full "identify --json" $A --json identify
full "list --json" $A --json list
full "list" $A list
full "pull -o FILE" $A pull --no-ack -o "$tmp/b.plog"
full "pull (archive)" $A --archive "$AR" pull
full "decode" decode "$tmp/a.plog"
full "decode --json" --json decode "$tmp/a.plog"
full "config get" $A config get
full "config get KEY" $A config get depth_max_um
full "config export (stdout)" $A config export
full "config history" --archive "$AR" config history --pen PEN-F001
full "clock sync" $A clock sync --threshold 100000
full "audit" --archive "$AR" audit
full "audit --json" --archive "$AR" --json audit
full "export records" --archive "$AR" export records
full "export treatments" --archive "$AR" export treatments
full "verify" --archive "$AR" verify
full "keys show" keys show "$K/tech.key"
full "archive push" --archive "$AR" archive push --to "$tmp/shared.db"
full "watch --once" $A watch --once --dir "$tmp"
full "completion bash" completion bash
# the usage error of a bad command line stays 2: its help goes to stderr
run 2 "a usage error with standard output full stays a usage error" $FULL $PL info --frobnicate

# A pipe whose reader went away (`penlink ... | head -c1`): not killed by
# SIGPIPE (141) but exit 7, the same I/O error, with one line on stderr
closed() { # name penlink-args...
    name=$1
    shift
    # shellcheck disable=SC2086
    "$PY" "$here/closed_pipe.py" "$tmp/err" $PL "$@"
    got=$?
    [ "$got" -eq 7 ] && ok "$name, standard output a closed pipe (exit 7)" ||
        bad "$name, standard output a closed pipe: exit $got, want 7"
    check "$name: stderr says the pipe broke" 'grep -q "standard output: Broken pipe: the output is incomplete" $tmp/err'
    one_error "$name"
}
closed "decode --json" --json decode "$tmp/a.plog"
closed "decode" decode "$tmp/a.plog"
closed "info --json" $A --json info
closed "export records" --archive "$AR" export records
closed "audit --json" --archive "$AR" --json audit
closed "completion bash" completion bash

if [ -c /dev/full ]; then
    for args in "--version" "$A info" "--archive $AR export records" "decode $tmp/a.plog"; do
        # shellcheck disable=SC2086
        $PL $args > /dev/full 2> "$tmp/err"
        got=$?
        [ "$got" -eq 7 ] && ok "$args > /dev/full (exit 7)" || bad "$args > /dev/full: exit $got, want 7"
    done
fi
finish
