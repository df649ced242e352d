#!/bin/sh
# Signed configuration and signed clock settings against penlink-sim, from
# docs/protocol.md alone: a Python client (PyNaCl for Ed25519) signs what
# section 9 specifies; every wrong way is refused with its own code, changes
# nothing and is logged.
# Usage: test_trust.sh PENLINK_SIM
set -u
SIM=${1:?usage: test_trust.sh PENLINK_SIM}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
export PYTHONDONTWRITEBYTECODE=1
TMP=$(mktemp -d "${TMPDIR:-/tmp}/penlink-trust.XXXXXX")
SIM_PID=
cleanup() {
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2> /dev/null && wait "$SIM_PID" 2> /dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
"$PY" -c 'import nacl.signing, google.protobuf' 2> /dev/null || {
    echo "setup: python3-nacl and python3-protobuf are needed (tools/setup.sh installs them)"
    exit 1
}
mkdir -p "$TMP/pb2"
protoc --python_out="$TMP/pb2" -I "$ROOT/protocol" "$ROOT/protocol/penlink.proto" || exit 1
SEED=2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a
PUB=$("$PY" -c 'import sys, nacl.signing as s; print(bytes(s.SigningKey(bytes.fromhex(sys.argv[1])).verify_key).hex())' $SEED)
SOCK=$TMP/pen.sock
"$SIM" --state "$TMP/state" --listen "$SOCK" --serial PEN-TRUST-1 --config-key "$PUB" \
    --simulate-days 1 --start-time 1772409600000 > "$TMP/sim.log" 2>&1 &
SIM_PID=$!
i=0
while [ ! -S "$SOCK" ]; do
    kill -0 "$SIM_PID" 2> /dev/null || { cat "$TMP/sim.log"; exit 1; }
    i=$((i + 1))
    [ $i -gt 300 ] && { echo "no socket after 30 s"; exit 1; }
    sleep 0.1
done
PYTHONPATH="$TMP/pb2" PENLINK_PB2_DIR="$TMP/pb2" timeout 60 "$PY" "$HERE/run_trust.py" \
    --socket "$SOCK" --serial PEN-TRUST-1 --key-seed $SEED --doc "$ROOT/docs/protocol.md"
