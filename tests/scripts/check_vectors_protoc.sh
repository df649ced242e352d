#!/bin/sh
# Stock protoc decodes the payload of every frame vector in docs/protocol.md
# given protocol/penlink.proto alone, and the RecordBatch vector too.
# Usage: check_vectors_protoc.sh SOURCE_DIR
set -eu
src=$1
doc=$src/docs/protocol.md
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
vector() {
    awk -v v="$1" '$0 == "<!-- vector: " v " -->" { f = 1; next }
                   f && /^```hex/ { g = 1; next }
                   g && /^```/ { exit }
                   g { print }' "$doc" | xxd -r -p > "$tmp/$1.bin"
    [ -s "$tmp/$1.bin" ] || { echo "FAIL: no vector $1 in $doc"; exit 1; }
}
check() { # name message expected-substring skip-bytes
    vector "$1"
    if tail -c +"$4" "$tmp/$1.bin" |
        protoc --decode="penlink.v1.$2" -I"$src/protocol" "$src/protocol/penlink.proto" \
            > "$tmp/$1.txt" 2> "$tmp/$1.err" && grep -q "$3" "$tmp/$1.txt"; then
        echo "ok   $1 decodes as $2"
    else
        echo "FAIL $1: protoc --decode=penlink.v1.$2"; cat "$tmp/$1.err" "$tmp/$1.txt"; fail=1
    fi
}
check hello-frame Envelope 'client: "penlink/0.1.0"' 17
check config-frame Envelope 'clinic_id: "CLINIC-0042"' 17
check chunk-frame Envelope 'raw_size: 68' 17
check chunk-batch RecordBatch 'time_width: 3' 1
check file-header-frame Envelope 'serial: "PEN-000123"' 17
check identify-frame Envelope 'seconds: 10' 17
check identify-reply-frame Envelope 'identify_reply' 17
[ $fail -eq 0 ] && echo "7 passed, 0 failed" || { echo "vector check failed"; exit 1; }
