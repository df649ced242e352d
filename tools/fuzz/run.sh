#!/bin/sh
# Runs every libFuzzer target for SECONDS each, starting from the seed corpus
# (copied, so the committed corpus stays small). A crash fails the run and
# leaves its input in tests/fuzz/crashes/.
# Usage: tools/fuzz/run.sh BUILD_FUZZ_DIR [SECONDS]
set -eu
b=$1
secs=${2:-60}
src=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$src/tests/fuzz/crashes"
for fz in "$b"/tools/fuzz/fuzz_*; do
    t=$(basename "$fz" | sed 's/^fuzz_//')
    work=$(mktemp -d)
    [ -d "$src/tests/fuzz/corpus/$t" ] && cp "$src/tests/fuzz/corpus/$t"/* "$work/" 2> /dev/null || true
    if "$fz" -max_total_time="$secs" -print_final_stats=1 \
        -artifact_prefix="$src/tests/fuzz/crashes/$t-" "$work" > "$work.log" 2>&1; then
        runs=$(grep -o 'number_of_executed_units: [0-9]*' "$work.log" | grep -o '[0-9]*$')
        echo "fuzz $t: ${runs:-?} runs, no crash"
    else
        tail -n 30 "$work.log"
        echo "fuzz $t: CRASH (input saved in tests/fuzz/crashes/)"
        exit 1
    fi
    rm -rf "$work" "$work.log"
done
