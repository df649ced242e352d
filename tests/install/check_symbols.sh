#!/bin/sh
# The shared library's ABI surface: the symbols libpenlink.so exports must be
# exactly the committed list host/penlink.symbols, and that list exactly the
# PENLINK_API declarations of the public header. A symbol that appears or
# vanishes is an ABI change: update the list in the same commit, on purpose
# (and raise the SOVERSION when one vanished or changed meaning).
#   check_symbols.sh LIBPENLINK.so SYMBOLS-LIST PUBLIC-HEADER
set -eu
lib=$1 list=$2 header=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

nm -D --defined-only "$lib" | awk '{print $NF}' | sort > "$tmp/exported"
grep -v '^#' "$list" | sed '/^$/d' | sort > "$tmp/listed"
# each "PENLINK_API type name(" of the header, across line breaks
grep -v '^#' "$header" | tr '\n' ' ' | grep -o 'PENLINK_API [^(;]*(' | sed 's/($//; s/.*[ *]//' | sort > "$tmp/declared"

if ! diff -u "$tmp/listed" "$tmp/exported" > "$tmp/d1"; then
    echo "FAIL: $lib exports other symbols than $list:" >&2
    sed -n 's/^+\([^+]\)/  new export:      \1/p; s/^-\([^-]\)/  vanished export: \1/p' "$tmp/d1" >&2
    echo "  If this is meant, update $list in the same commit (a vanished export breaks" >&2
    echo "  programs linked against the current libpenlink.so.N: the SOVERSION must go up)." >&2
    status=1
fi
if ! diff -u "$tmp/declared" "$tmp/listed" > "$tmp/d2"; then
    echo "FAIL: the PENLINK_API declarations of $header and $list differ:" >&2
    sed -n 's/^+\([^+]\)/  listed, not declared PENLINK_API: \1/p; s/^-\([^-]\)/  declared PENLINK_API, not listed: \1/p' "$tmp/d2" >&2
    status=1
fi
[ "$status" -ne 0 ] || echo "ok: $(wc -l < "$tmp/exported") exported symbols, as listed and declared"
exit "$status"
