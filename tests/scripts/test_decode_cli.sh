#!/bin/sh
# `penlink decode` end to end: every format, every input kind, every error path.
# Usage: test_decode_cli.sh PENLINK MAKE_CAPTURE
# PENLINK_WRAP (e.g. a valgrind command line) is put before every penlink run.
set -u
penlink="${PENLINK_WRAP:-} $1"
mk=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
expect_exit() { # name want-code cmd...
    name=$1 want=$2
    shift 2
    "$@" > "$tmp/out" 2> "$tmp/err"
    got=$?
    if [ "$got" -eq "$want" ]; then ok "$name (exit $got)"; else
        bad "$name: exit $got, want $want"; cat "$tmp/err"; fi
}

"$mk" frames "$tmp/cap.bin" "$tmp/cap.csv" 3000 7 || exit 1
"$mk" chunks "$tmp/chunks.bin" "$tmp/chunks.csv" 2500 8 || exit 1

# CSV output equals the records written, in both input kinds and from stdin
for f in cap chunks; do
    $penlink decode --format csv "$tmp/$f.bin" > "$tmp/$f.out" 2> "$tmp/err"
    tail -n +2 "$tmp/$f.out" | cut -d, -f1,2,4- > "$tmp/$f.got"
    if [ $? -eq 0 ] && cmp -s "$tmp/$f.got" "$tmp/$f.csv"; then ok "csv of $f equals the source"
    else bad "csv of $f differs"; diff "$tmp/$f.got" "$tmp/$f.csv" | head -5; fi
done
$penlink decode -f csv - < "$tmp/cap.bin" | tail -n +2 | cut -d, -f1,2,4- > "$tmp/stdin.got"
cmp -s "$tmp/stdin.got" "$tmp/cap.csv" && ok "stdin input" || bad "stdin input"
head -1 "$tmp/cap.out" | grep -q '^seq,time_ms,time,kind,depth_um,' && ok "csv header" ||
    bad "csv header"

# JSON lines: one object per record, parseable, same count and seqs
$penlink --json decode "$tmp/cap.bin" > "$tmp/j.out"
n=$(wc -l < "$tmp/j.out")
[ "$n" -eq "$(wc -l < "$tmp/cap.csv")" ] && ok "json: one line per record ($n)" ||
    bad "json: $n lines"
python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
exp = [l.split(",") for l in open(sys.argv[2]).read().splitlines()]
assert all(str(r["seq"]) == e[0] and str(r["time_ms"]) == e[1] and r["kind"] == e[2]
           for r, e in zip(rows, exp)), "json differs"
' "$tmp/j.out" "$tmp/cap.csv" && ok "json values equal the source" || bad "json values"

# text: one line per record, with the kind name
$penlink decode "$tmp/cap.bin" > "$tmp/t.out"
[ "$(wc -l < "$tmp/t.out")" -eq "$(wc -l < "$tmp/cap.csv")" ] && ok "text: one line per record" ||
    bad "text line count"
$penlink decode --messages "$tmp/cap.bin" | grep -q '^# offset 0: hello request 1 ' &&
    ok "--messages lists the hello" || bad "--messages"

# damage: a flipped payload byte -> integrity exit 6 naming the offset; records before it printed
cp "$tmp/cap.bin" "$tmp/flip.bin"
size=$(wc -c < "$tmp/cap.bin")
printf '\377' | dd of="$tmp/flip.bin" bs=1 seek=$((size / 2)) conv=notrunc 2> /dev/null
expect_exit "flipped byte" 6 $penlink decode -f csv "$tmp/flip.bin"
grep -q 'offset [0-9][0-9]*: frame payload CRC mismatch' "$tmp/err" && ok "error names the offset" ||
    { bad "error text"; cat "$tmp/err"; }
[ "$(wc -l < "$tmp/err")" -eq 1 ] && ok "one error line" || bad "one error line"
[ "$(wc -l < "$tmp/out")" -gt 1 ] && ok "records before the damage printed" || bad "partial output"

# truncated file -> protocol error 5
head -c $((size - 7)) "$tmp/cap.bin" > "$tmp/trunc.bin"
expect_exit "truncated frames" 5 $penlink decode "$tmp/trunc.bin"
grep -q 'cut short' "$tmp/err" && ok "truncation explained" || bad "truncation text"
csize=$(wc -c < "$tmp/chunks.bin")
head -c $((csize - 3)) "$tmp/chunks.bin" > "$tmp/ctrunc.bin"
expect_exit "truncated chunks" 5 $penlink decode "$tmp/ctrunc.bin"

# garbage, empty, missing, usage
printf 'hello world, not penlink' > "$tmp/junk.bin"
expect_exit "not a penlink file" 5 $penlink decode "$tmp/junk.bin"
grep -q 'offset 0: not penlink frames' "$tmp/err" && ok "junk explained" || bad "junk text"
: > "$tmp/empty.bin"
expect_exit "empty file" 5 $penlink decode "$tmp/empty.bin"
expect_exit "missing file" 7 $penlink decode "$tmp/does-not-exist"
grep -q 'No such file' "$tmp/err" && ok "missing file explained" || bad "missing text"
expect_exit "bad format" 2 $penlink decode --format xml "$tmp/cap.bin"
expect_exit "no file" 2 $penlink decode
expect_exit "decode --help" 0 $penlink decode --help
grep -q 'Usage: penlink decode' "$tmp/out" && ok "help text" || bad "help text"
expect_exit "penlink --help" 0 $penlink --help
expect_exit "unknown command" 2 $penlink frobnicate
expect_exit "no command" 2 $penlink
$penlink --json decode "$tmp/does-not-exist" 2> "$tmp/err"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["exit_code"]==7 and "error" in d' \
    "$tmp/err" && ok "--json errors are JSON" || bad "--json error format"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
