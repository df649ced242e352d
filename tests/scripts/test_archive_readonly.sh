#!/bin/sh
# Issue 13 defect 3: audit, export and verify on an archive that cannot be
# written. They open it read-only and never write: a read-only copy (a user
# who may not write it; when the test runs as root, the read-only commands run
# as nobody through setpriv, since chmod does not stop root; the HTML report
# and its check among them) and a WAL
# archive in a read-only directory are read, the file stays byte for byte as
# it was, verify prints its verdict and says it was not recorded. A WAL
# archive whose -wal holds committed data but whose -shm cannot be made in
# that place is refused with what to do, and read once the -shm is there.
# Usage: test_archive_readonly.sh PENLINK PENLINK_SIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"
PROXY="python3 $(dirname "$0")/stall_proxy.py"
START=1767225600000
if [ "$(id -u)" = 0 ]; then
    AS="setpriv --reuid=65534 --regid=65534 --clear-groups --"
    chmod 755 "$tmp"
else
    AS=""
fi
trap 'chmod -R u+w "$tmp" 2> /dev/null; cleanup' EXIT

$SIM --state "$tmp/pen" --serial PEN-RO --seed 11 --simulate-days 8 --start-time $START > /dev/null
start_sim pen
A=$tmp/a.db
run 0 "pull a signing pen" $PL --device "sim:$tmp/pen.sock" --archive "$A" pull
stop_sim pen
$PL --archive "$A" export records > "$tmp/records.csv"
$PL --archive "$A" --json audit > "$tmp/audit.json"
audit_rc=$?

# 1. a copy, read through the library's read-only path (whoever runs it)
cp "$A" "$tmp/copy.db"
sum=$(cksum < "$tmp/copy.db")
run $audit_rc "audit of a copy" $PL --archive "$tmp/copy.db" --json audit
run 0 "export of a copy" $PL --archive "$tmp/copy.db" export treatments
run 0 "verify --no-record of a copy" $PL --archive "$tmp/copy.db" verify --no-record
check "the copy is byte for byte as it was" '[ "$(cksum < "$tmp/copy.db")" = "$sum" ]'

# 2. a read-only copy in a read-only directory
mkdir "$tmp/ro"
cp "$A" "$tmp/ro/a.db"
chmod 444 "$tmp/ro/a.db"
chmod 555 "$tmp/ro"
sum=$(cksum < "$tmp/ro/a.db")
R=$tmp/ro/a.db
run $audit_rc "audit of a read-only archive" $AS $PL --archive "$R" --json audit
check "the same audit as of the original" 'cmp -s "$tmp/out" "$tmp/audit.json"'
run 0 "export of a read-only archive" $AS $PL --archive "$R" export records
check "the same records as the original's" 'cmp -s "$tmp/out" "$tmp/records.csv"'
run 0 "verify of a read-only archive" $AS $PL --archive "$R" verify
check "verify gives its verdict" 'grep -q "PEN-RO *verified" "$tmp/out"'
check "and says it was not recorded" 'grep -q "is read-only here: the verdicts above were not recorded" "$tmp/err"'
run $audit_rc "the HTML report of a read-only archive" $AS $PL --archive "$R" audit --format html
cp "$tmp/out" "$tmp/report.html"
run 0 "and its check" $AS $PL --archive "$R" audit --check-report "$tmp/report.html"
check "the read-only archive is byte for byte as it was" '[ "$(cksum < "$R")" = "$sum" ]'
check "nothing was created beside it" '[ "$(ls "$tmp/ro")" = a.db ]'
# the archive's name crosses the CLI's boundary like a pen's strings: a
# terminal escape in it is shown escaped, never sent to the terminal
mkdir "$tmp/ro2"
E=$(printf '%s/ro2/a\033[31m.db' "$tmp")
cp "$A" "$E"
chmod 444 "$E"
chmod 555 "$tmp/ro2"
run 0 "verify of a read-only archive whose name holds an escape" $AS $PL --archive "$E" verify
python3 - "$tmp/err" << 'PY' && ok "the note names it escaped" || { bad "the note's archive name"; cat "$tmp/err"; }
import sys
err = open(sys.argv[1], "rb").read()
assert b"\x1b" not in err, err
assert b"a\\e[31m.db is read-only here: the verdicts above were not recorded" in err, err
PY

# 3. a WAL archive whose log holds committed data: a new pen's pull held
# mid-pull (its device and pull rows are committed in the -wal), the files
# copied as they are
$SIM --state "$tmp/new" --serial PEN-WAL --seed 12 --simulate-days 2 --start-time $START > /dev/null
start_sim new
cp "$A" "$tmp/w.db"
rm -f "$tmp/hold.sock"
$PROXY "$tmp/hold.sock" "$tmp/new.sock" "$tmp/w.db" 2> "$tmp/proxy.log" &
proxy=$!
pids="$pids $proxy"
wait_sock "$tmp/hold.sock" || { echo "the proxy did not start"; cat "$tmp/proxy.log"; exit 1; }
$PL --timeout 600000 --device "sim:$tmp/hold.sock" --archive "$tmp/w.db" pull > /dev/null 2>&1 &
held=$!
wait_held "$tmp/proxy.log" $held
mkdir "$tmp/walonly" "$tmp/walshm"
cp "$tmp/w.db" "$tmp/w.db-wal" "$tmp/walonly/"
cp "$tmp/w.db" "$tmp/w.db-wal" "$tmp/w.db-shm" "$tmp/walshm/"
kill -9 $held
wait $held 2> /dev/null
kill $proxy
stop_sim new
check "the copied log holds data (the held pull's rows)" '[ -s "$tmp/walonly/w.db-wal" ]'
chmod 444 "$tmp"/walonly/* "$tmp"/walshm/*
chmod 555 "$tmp/walonly" "$tmp/walshm"
sum=$(cat "$tmp"/walonly/* | cksum)
run 7 "a WAL archive with data in its log, no -shm, read-only place: refused" \
    $AS $PL --archive "$tmp/walonly/w.db" audit
check "with what to do" 'grep -q "Copy the archive together with its -wal file to a writable directory" "$tmp/err"'
check "and unchanged" '[ "$(cat "$tmp"/walonly/* | cksum)" = "$sum" ] && [ "$(ls "$tmp/walonly" | wc -l)" = 2 ]'
run 0 "with its -shm beside it, it is read" $AS $PL --archive "$tmp/walshm/w.db" --json export records --pen PEN-RO
run 0 "with the log folded in: the held pull's pen is there" \
    $AS $PL --archive "$tmp/walshm/w.db" --json verify --pen PEN-WAL
check "verify lists it" 'grep -q "\"serial\":\"PEN-WAL\"" "$tmp/out"'
finish
