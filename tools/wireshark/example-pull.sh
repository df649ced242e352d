#!/bin/sh
# One pull of a small simulated pen, traced and shown by tshark with the
# penlink dissector: what docs/engineer-guide.md quotes.
#   sh tools/wireshark/example-pull.sh [BUILD_DIR [TSHARK OPTIONS...]]
# BUILD_DIR defaults to build/; tshark prints one line per packet unless
# options say otherwise (e.g. -V -O penlink,protobuf -Y 'frame.number == 8').
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
[ $# -gt 0 ] && shift
tmp=$(mktemp -d)
trap 'kill $sim 2> /dev/null; wait $sim 2> /dev/null; rm -rf "$tmp"' EXIT
"$build/firmware-stub/penlink-sim" --state "$tmp/pen" --listen "$tmp/pen.sock" \
    --serial PEN-EXAMPLE --seed 3 --start-time 1798761600000 --simulate-days 1 --batch 64 \
    > /dev/null 2>&1 &
sim=$!
i=0
while [ ! -S "$tmp/pen.sock" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
"$build/host/penlink" --device "sim:$tmp/pen.sock" --trace "$tmp/pull.pcapng" \
    pull -o "$tmp/pull.plog" > /dev/null
tshark -r "$tmp/pull.pcapng" -X "lua_script:$src/tools/wireshark/penlink.lua" \
    -o "uat:protobuf_search_paths:\"$src/protocol\",\"TRUE\"" -o protobuf.pbf_as_hf:TRUE \
    "$@" 2> /dev/null
