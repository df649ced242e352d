#!/bin/sh
# Interop test: an independent Python client (written from docs/protocol.md
# and protocol/penlink.proto only) against a penlink pen simulator.
#
#   tests/interop/test_interop.sh PENLINK_SIM
#
# Prints one line per check and `N passed, M failed` last; exits non-zero on
# any failure.
set -u

SIM=${1:?usage: test_interop.sh PENLINK_SIM}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1
[ -x "$PY" ] || PY=python3

TMP=$(mktemp -d "${TMPDIR:-/tmp}/penlink-interop.XXXXXX")
SIM_PID=
cleanup() {
    if [ -n "$SIM_PID" ] && kill -0 "$SIM_PID" 2>/dev/null; then
        kill "$SIM_PID" 2>/dev/null
        wait "$SIM_PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail_setup() {
    echo "setup: $*"
    [ -f "$TMP/sim.log" ] && sed 's/^/sim: /' "$TMP/sim.log"
    echo "0 passed, 1 failed"
    exit 1
}

mkdir -p "$TMP/pb2" || fail_setup "mkdir"
protoc --python_out="$TMP/pb2" -I "$ROOT/protocol" "$ROOT/protocol/penlink.proto" \
    || fail_setup "protoc failed"
"$PY" -c 'import google.protobuf' 2>/dev/null \
    || fail_setup "$PY has no google.protobuf (apt-get install python3-protobuf)"

SOCK="$TMP/pen.sock"
"$SIM" --state "$TMP/state" --listen "$SOCK" --serial PEN-IOP-1 --seed 5 \
    --simulate-days 14 --start-time 1772409600000 >"$TMP/sim.log" 2>&1 &
SIM_PID=$!

# Wait (at most 30 s) until the simulator listens.
i=0
while [ ! -S "$SOCK" ]; do
    kill -0 "$SIM_PID" 2>/dev/null || fail_setup "simulator exited early"
    i=$((i + 1))
    [ $i -gt 300 ] && fail_setup "no socket after 30 s"
    sleep 0.1
done

PYTHONPATH="$TMP/pb2${PYTHONPATH:+:$PYTHONPATH}" PENLINK_PB2_DIR="$TMP/pb2" \
    timeout 50 "$PY" "$HERE/run_interop.py" --doc "$ROOT/docs/protocol.md" \
    --socket "$SOCK" --state "$TMP/state" --serial PEN-IOP-1 --sim-pid "$SIM_PID"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 1 ]; then
    echo "run_interop.py exited with status $rc"
    echo "0 passed, 1 failed"
    exit 1
fi
exit $rc
