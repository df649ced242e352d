#!/bin/sh
# The main job on the embedded default. Until the simulated pen can be pulled,
# it decodes the protocol's shipped test vectors and a generated log capture.
# Usage: tools/demo.sh BUILD_DIR
set -eu
b=${1:-build}
src=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk '$0 == "<!-- vector: chunk-frame -->" { f = 1; next } f && /^```hex/ { g = 1; next }
     g && /^```/ { exit } g { print }' "$src/docs/protocol.md" | xxd -r -p > "$tmp/vector.bin"
echo "== penlink decode: the chunk-of-three-records vector of docs/protocol.md"
"$b/host/penlink" decode --messages "$tmp/vector.bin"
"$b/tests/make_capture" frames "$tmp/capture.bin" "$tmp/expected.csv" 2000 1
echo
echo "== penlink decode --format csv: a capture of 2000 records (first lines)"
"$b/host/penlink" decode --format csv "$tmp/capture.bin" > "$tmp/out.csv"
head -n 6 "$tmp/out.csv"
echo "... $(($(wc -l < "$tmp/out.csv") - 1)) records decoded"
