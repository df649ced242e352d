#!/bin/sh
# The real penlink against a pen that lies: hostile_pen.py (written from
# docs/protocol.md and protocol/penlink.proto only) serves each case of
# run_hostile.py's table on a Unix socket; penlink connects with
# --device sim:PATH. Each case states the exit status and the archive effect
# it expects (records stored, what was acknowledged, alarms).
#
#   tests/interop/test_hostile.sh PENLINK [CASE,CASE...]
#
# PENLINK_WRAP (e.g. a valgrind command line) is put before every penlink run.
# Prints one PASS/FAIL line per case and `N passed, M failed` last; exits
# non-zero on any failure.
set -u
PL=${1:?usage: test_hostile.sh PENLINK [CASES]}
ONLY=${2:-}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
export PYTHONDONTWRITEBYTECODE=1

TMP=$(mktemp -d "${TMPDIR:-/tmp}/penlink-hostile-pb2.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 130' INT TERM

"$PY" -c 'import google.protobuf, nacl.signing, sqlite3' 2> /dev/null || {
    echo "setup: $PY needs python3-protobuf and python3-nacl (tools/setup.sh installs them)"
    echo "0 passed, 1 failed"
    exit 1
}
protoc --python_out="$TMP" -I "$ROOT/protocol" "$ROOT/protocol/penlink.proto" || {
    echo "setup: protoc failed"
    echo "0 passed, 1 failed"
    exit 1
}
PYTHONPATH="$TMP${PYTHONPATH:+:$PYTHONPATH}" PENLINK_PB2_DIR="$TMP" \
    "$PY" "$HERE/run_hostile.py" --penlink "$PL" ${ONLY:+--only "$ONLY"}
