#!/bin/sh
# The archive file at its edges, through the CLI and a simulated pen:
#  1. files that are not ours (a newer schema, another program's SQLite file,
#     in rollback or WAL mode, a text file): every command refuses them with
#     a clear error and leaves them byte for byte as they were, creating
#     nothing beside them, and a pull acknowledges nothing;
#  2. a pull left 'running' by a killed penlink becomes 'interrupted' at the
#     next writable opening, but not while another penlink is still pulling
#     (held mid-pull by a pen link that stops), nor by a read-only command;
#  2b. one pen's rows with seqs at or above 2^63 (an earlier penlink stored
#     them) make export, audit and verify name that pen, not fail for all;
#  3. a full disk mid-pull (an LD_PRELOAD shim that fails writes with ENOSPC
#     after the archive's N-th commit): exit 7 with the documented words,
#     nothing acknowledged, the summary counting only what was committed, and
#     a second pull completes the archive.
# Usage: test_archive_files.sh PENLINK PENLINK_SIM ENOSPC_SHIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
SHIM=$3
. "$(dirname "$0")/harness.sh"
PROXY="python3 $(dirname "$0")/stall_proxy.py"
START=1767225600000 # 2026-01-01: the pens' logs do not depend on the calendar
acked() { # sock: the pen's first unacknowledged seq
    $PL --device "sim:$1" --json info | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_acked_seq"])'
}
records() { # archive serial
    sqlite3 -readonly "$1" "SELECT count(*) FROM records r JOIN devices d ON d.id = r.device_id WHERE d.serial = '$2'"
}
no_sidecars() { [ ! -e "$1-wal" ] && [ ! -e "$1-shm" ]; }

# a pen, and a real archive of it
$SIM --state "$tmp/pen" --serial PEN-F --seed 7 --simulate-days 6 --start-time $START > /dev/null
start_sim pen
A=$tmp/a.db
run 0 "pull a pen into a new archive" $PL --device "sim:$tmp/pen.sock" --archive "$A" pull
check "the archive carries penlink's application_id (0x504C4152)" \
    '[ "$(sqlite3 -readonly "$A" "PRAGMA application_id")" = 1347174738 ]'

# 1. files that are not ours
cp "$A" "$tmp/newer.db"
sqlite3 "$tmp/newer.db" "PRAGMA user_version = 6"
# the same as a copy in rollback-journal mode (as sqlite3's .backup or another tool makes one)
cp "$tmp/newer.db" "$tmp/newercopy.db"
sqlite3 "$tmp/newercopy.db" "PRAGMA journal_mode = DELETE" > /dev/null
sqlite3 "$tmp/rollback.db" "CREATE TABLE notes (t TEXT); INSERT INTO notes VALUES ('mine')"
sqlite3 "$tmp/walapp.db" "PRAGMA journal_mode = WAL; PRAGMA application_id = 252006674;
    CREATE TABLE blob (x); INSERT INTO blob VALUES (1)" > /dev/null
printf 'this is not a database, it is a note\n' > "$tmp/note.db"
acked0=$(acked "$tmp/pen.sock")
for f in newer newercopy rollback walapp note; do
    F=$tmp/$f.db
    sum=$(cksum < "$F")
    case $f in
    newer*) want=5 words="has schema version 6, newer than this penlink's 5" ;;
    note) want=6 words="not a penlink archive, nor any SQLite database" ;;
    *) want=5 words="is not a penlink archive: it is an SQLite database of another program" ;;
    esac
    run $want "$f: pull refuses it" $PL --device "sim:$tmp/pen.sock" --archive "$F" pull
    check "$f: pull says why" 'grep -q "$words" "$tmp/err"'
    run $want "$f: audit refuses it" $PL --archive "$F" audit
    run $want "$f: export refuses it" $PL --archive "$F" export records
    run $want "$f: verify refuses it" $PL --archive "$F" verify
    check "$f: verify says why" 'grep -q "$words" "$tmp/err"'
    check "$f: the file is byte for byte as it was" '[ "$(cksum < "$F")" = "$sum" ]'
    check "$f: nothing was created beside it" 'no_sidecars "$F"'
done
check "the pen acknowledged nothing into them" '[ "$(acked "$tmp/pen.sock")" = "$acked0" ]'
check "the newer archive still says so" '[ "$(sqlite3 -readonly "$tmp/newer.db" "PRAGMA user_version")" = 6 ]'
stop_sim pen

# 2. interrupted pulls
$SIM --state "$tmp/pen" --simulate-days 2 --start-time $START > /dev/null
$SIM --state "$tmp/two" --serial PEN-G --seed 8 --simulate-days 3 --start-time $START > /dev/null
start_sim pen
start_sim two
rm -f "$tmp/hold.sock"
$PROXY "$tmp/hold.sock" "$tmp/pen.sock" "$A" 2> "$tmp/proxy.log" &
proxy=$!
pids="$pids $proxy"
wait_sock "$tmp/hold.sock" || { echo "the proxy did not start"; cat "$tmp/proxy.log"; exit 1; }
$PL --timeout 600000 --device "sim:$tmp/hold.sock" --archive "$A" pull > "$tmp/held.out" 2>&1 &
held=$!
wait_held "$tmp/proxy.log" $held
check "a pull is held mid-pull (its row says running)" \
    '[ "$(sqlite3 -readonly "$A" "SELECT group_concat(result) FROM pulls")" = "ok,running" ]'
# a pull holds the archive's write lock while it receives: another one opens
# the archive (which is where running pulls would be marked), waits 10 s for
# the lock, and gives up
run 3 "meanwhile another penlink tries to pull another pen into the archive" \
    $PL --device "sim:$tmp/two.sock" --archive "$A" pull
check "it says the archive is busy" 'grep -q "is busy (begin): another penlink holds it" "$tmp/err"'
check "and left the live pull running" \
    '[ "$(sqlite3 -readonly "$A" "SELECT group_concat(result) FROM pulls")" = "ok,running" ]'
kill -9 $held
wait $held 2> /dev/null
kill $proxy
wait $proxy 2> /dev/null
check "the killed pull's row still says running" \
    '[ "$(sqlite3 -readonly "$A" "SELECT result FROM pulls WHERE id = 2")" = running ]'
run 0 "an export (read-only) after the kill" $PL --archive "$A" export records
check "does not touch it" '[ "$(sqlite3 -readonly "$A" "SELECT result FROM pulls WHERE id = 2")" = running ]'
run 0 "the next pull opens the archive for writing" $PL --device "sim:$tmp/pen.sock" --archive "$A" pull
check "the killed pull is now interrupted, with why" \
    '[ "$(sqlite3 -readonly "$A" "SELECT result FROM pulls WHERE id = 2")" = interrupted ] &&
     sqlite3 -readonly "$A" "SELECT message FROM pulls WHERE id = 2" | grep -q "never recorded its end"'
check "no pull is left running" '[ "$(sqlite3 -readonly "$A" "SELECT count(*) FROM pulls WHERE result = '"'running'"'")" = 0 ]'
check "the pen acknowledged everything archived" \
    '[ "$(acked "$tmp/pen.sock")" = "$(sqlite3 -readonly "$A" "SELECT max(seq) + 1 FROM records r JOIN devices d ON d.id = r.device_id WHERE d.serial = '"'PEN-F'"'")" ]'
stop_sim pen
stop_sim two

# 2b. defect 12.5, read side: another pen (sorting first) whose rows hold seqs at or above 2^63
# (stored as negative integers, as an earlier penlink stored a hostile pen's)
# does not stop export, audit or verify for the others (the audit does not read rows at all)
$PL --archive "$A" export records > "$tmp/before.csv"
cp "$A" "$tmp/hostile.db"
H=$tmp/hostile.db
body=$(sqlite3 -readonly "$H" "SELECT hex(body) FROM records LIMIT 1")
sqlite3 "$H" "INSERT INTO devices (serial, first_seen_ms, last_seen_ms) VALUES ('PEN-0', 0, 0);
    INSERT INTO records SELECT id, -1, x'$body', 0 FROM devices WHERE serial = 'PEN-0';
    INSERT INTO records SELECT id, -9223372036854775808, x'$body', 0 FROM devices WHERE serial = 'PEN-0';
    INSERT INTO records SELECT id, 0, x'$body', 0 FROM devices WHERE serial = 'PEN-0';"
run 6 "export records of an archive with hostile seqs" $PL --archive "$H" export records
check "every other record is written" '[ "$(grep -vc "^PEN-0," "$tmp/out")" = "$(wc -l < "$tmp/before.csv")" ]'
check "and the damage is named" 'grep -q "2 record rows cannot be records and were skipped (the first: pen PEN-0, seq stored as -9223372036854775808" "$tmp/err"'
# the audit reads the pens' chunks, not the rows: PEN-0's rows (no chunk holds them) change
# nothing it finds; verify names them
$PL --archive "$A" --json audit > "$tmp/a_audit.json" 2> /dev/null
a_rc=$?
run $a_rc "audit of it: exit $a_rc, as the archive's without those rows" $PL --archive "$H" --json audit
check "no finding of PEN-0 (its rows are verify's)" \
    '! grep -q "\"finding\":\"damaged\"" "$tmp/out" && ! grep "\"serial\":\"PEN-0\"" "$tmp/out" | grep -q "\"finding\""'
check "the other pens' treatments, findings and usage are as without those rows" \
    'grep -v "\"type\":\"\(verification\|audit_scope\|summary\)\"" "$tmp/out" > "$tmp/h.lines" &&
     grep -v "\"type\":\"\(verification\|audit_scope\|summary\)\"" "$tmp/a_audit.json" > "$tmp/a.lines" &&
     [ -s "$tmp/a.lines" ] && cmp -s "$tmp/h.lines" "$tmp/a.lines"'
check "the other pens are audited" 'grep -q "\"type\":\"treatment\",\"serial\":\"PEN-F\"" "$tmp/out"'
run 6 "verify --json of it" $PL --archive "$H" --json verify --no-record
check "the broken pen's seq is unsigned too" \
    'grep -q "\"serial\":\"PEN-0\",\"state\":\"broken\".*\"seq\":\"9223372036854775808\"" "$tmp/out"'
run 6 "verify of it" $PL --archive "$H" verify --no-record
check "the damaged pen is BROKEN, its rows named" 'grep -q "PEN-0 .*BROKEN" "$tmp/out" && grep -q "2 record rows hold a seq at or above 2^63" "$tmp/out"'
if grep -q "PEN-F *verified" "$tmp/out" && grep -q "^2 pens" "$tmp/out"; then
    ok "the other pen verifies"
else
    bad "the other pen verifies"; sed 's/^/    /' "$tmp/out"
fi

# 3. a full disk mid-pull: a signing pen of ~350 chunks is committed twice
# (at a verified head after 256 chunks, and at the end); the disk fills
# after the archive's Nth sync. On an existing archive a pull's syncs are: the
# new -wal's header, the pull's start, the data at 256 chunks, the data at the
# end, the pull's end.
$SIM --state "$tmp/big0" --serial PEN-BIG --seed 3 --simulate-days 200 --start-time $START > /dev/null
cp -r "$tmp/big0" "$tmp/ref"
start_sim ref
run 0 "a clean pull of the big pen, for reference" $PL --device "sim:$tmp/ref.sock" --archive "$tmp/ref.db" pull
stop_sim ref
$PL --archive "$tmp/ref.db" export records --pen PEN-BIG > "$tmp/ref.csv"
n_ref=$(records "$tmp/ref.db" PEN-BIG)
for syncs in 2 3; do
    rm -rf "$tmp/big" "$tmp/full.db"*
    cp -r "$tmp/big0" "$tmp/big"
    start_sim two
    $PL --device "sim:$tmp/two.sock" --archive "$tmp/full.db" --quiet pull > /dev/null 2>&1
    stop_sim two
    # its records were acknowledged into the first archive: here only its signed head
    run 0 "a pen pulled before into another archive verifies in a new one" \
        $PL --archive "$tmp/full.db" verify --no-record
    start_sim big
    PENLINK_ENOSPC_MATCH="$tmp/full.db" PENLINK_ENOSPC_AFTER_SYNCS=$syncs LD_PRELOAD="$SHIM" \
        ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0" \
        $PL --device "sim:$tmp/big.sock" --archive "$tmp/full.db" --json pull > "$tmp/out" 2> "$tmp/err"
    rc=$?
    [ $rc -eq 7 ] && ok "disk full after $syncs syncs: exit 7" || { bad "disk full after $syncs syncs: exit $rc"; cat "$tmp/err"; }
    check "the error says the disk is full and what to do" \
        'grep -q "the disk holding .*full.db is full: nothing of this pull was acknowledged; free space and pull again" "$tmp/err"'
    check "not the old words" '! grep -q "no transaction is active" "$tmp/err"'
    have=$(records "$tmp/full.db" PEN-BIG)
    said=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["records"])' "$tmp/out")
    check "the summary counts what was committed ($said; archive $have)" '[ "$said" = "$have" ]'
    if [ $syncs -eq 2 ]; then
        check "nothing of the pen was committed" '[ "$have" = 0 ]'
    else
        check "the first 256 chunks' records were committed ($have of $n_ref)" '[ "$have" -gt 0 ] && [ "$have" -lt "$n_ref" ]'
    fi
    check "the pen acknowledged nothing" '[ "$(acked "$tmp/big.sock")" = 0 ]'
    run 0 "space again: the next pull" $PL --device "sim:$tmp/big.sock" --archive "$tmp/full.db" pull
    $PL --archive "$tmp/full.db" export records --pen PEN-BIG > "$tmp/got.csv"
    check "the archive holds the pen's log exactly (no record lost or twice)" 'cmp -s "$tmp/got.csv" "$tmp/ref.csv"'
    check "the pen acknowledged all of it" '[ "$(acked "$tmp/big.sock")" = "$n_ref" ]'
    check "the failed pull is not left running" \
        '[ "$(sqlite3 -readonly "$tmp/full.db" "SELECT count(*) FROM pulls WHERE result = '"'running'"'")" = 0 ]'
    run 0 "the archive verifies" $PL --archive "$tmp/full.db" verify --no-record
    stop_sim big
done
finish
