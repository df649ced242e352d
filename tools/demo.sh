#!/bin/sh
# The main job on the embedded default, the simulated pen: three weeks of
# clinic usage on a fresh penlink-sim, then `penlink info`, `penlink pull`
# and a look at what was pulled.
# Usage: tools/demo.sh BUILD_DIR
set -eu
b=${1:-build}
PL=$b/host/penlink
SIM=$b/firmware-stub/penlink-sim
tmp=$(mktemp -d)
sim_pid=""
cleanup() {
    [ -n "$sim_pid" ] && kill "$sim_pid" 2> /dev/null && wait "$sim_pid" 2> /dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

echo "== penlink-sim: a pen with three weeks of clinic usage (some cartridge reuse planted)"
"$SIM" --state "$tmp/pen" --listen "$tmp/pen.sock" --serial PEN-DEMO-001 --seed 7 \
    --simulate-days 21 --reuse-permille 40 --max-uses 2 > "$tmp/sim.log" 2>&1 &
sim_pid=$!
i=0
while [ ! -S "$tmp/pen.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$tmp/pen.sock" ] || { cat "$tmp/sim.log"; exit 1; }
export PENLINK_DEVICE="sim:$tmp/pen.sock"

echo
echo "== penlink info"
"$PL" info
echo
echo "== penlink pull"
"$PL" pull -o "$tmp/PEN-DEMO-001.plog"
echo
echo "== what was pulled: records by kind"
"$PL" decode --format csv "$tmp/PEN-DEMO-001.plog" | tail -n +2 | cut -d, -f4 | sort | uniq -c |
    sort -rn
echo
echo "== the first treatment"
"$PL" decode "$tmp/PEN-DEMO-001.plog" |
    awk '/treatment_start/ { on = 1 } on { print } /treatment_end/ && on { exit }' | head -n 12
echo
echo "== penlink info after the pull: everything acknowledged"
"$PL" info | grep -E '^(log|not yet pulled)'
