#!/bin/sh
# The main job on the embedded default, the simulated pen: three weeks of
# clinic usage with some planted cartridge reuse on a fresh penlink-sim,
# then `penlink info`, `penlink pull` into a fresh archive, `penlink verify`
# and the audit, ending with the audit report document (HTML) and where it is.
# The archive and the report are kept in BUILD_DIR/demo/.
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
echo "== penlink pull (into a fresh archive)"
out=$b/demo
rm -rf "$out"
mkdir -p "$out"
ar=$out/archive.db
"$PL" --archive "$ar" pull
echo
echo "== penlink info after the pull: everything acknowledged"
"$PL" info | grep -E '^(log|not yet pulled|device key)'
echo
echo "== penlink verify: the pen's signed, hash-chained log, re-checked in the archive"
"$PL" --archive "$ar" verify
echo
echo "== penlink audit: cartridges (the pen was misconfigured to accept 2 uses)"
set +e
"$PL" --archive "$ar" audit --report cartridges
rc=$?
"$PL" --archive "$ar" audit --report usage --by week
set -e
echo
if [ $rc -eq 1 ]; then
    echo "penlink audit exited 1: compliance findings (reused cartridges) - as planted"
else
    echo "penlink audit exited $rc"
fi
echo
echo "== penlink audit --format html: the report to hand over"
set +e
"$PL" --archive "$ar" audit --format html -o "$out/audit-report.html"
set -e
"$PL" --archive "$ar" audit --check-report "$out/audit-report.html"
echo
echo "The audit report: $out/audit-report.html"
echo "  open it in a browser and print it, or make a PDF of it:"
echo "  chromium --headless --no-pdf-header-footer --print-to-pdf=audit-report.pdf $out/audit-report.html"
echo "  check a copy later: $PL --archive $ar audit --check-report FILE"
