#!/bin/sh
# Tamper evidence, end to end. A pen that signs its log is pulled; every way
# of altering its log on the way (a flipped bit under a good CRC, a head
# signed by another key) is caught by the pull, which keeps nothing and
# acknowledges nothing; chunks dropped, swapped or doubled on the way are
# asked for again, and the pull completes. Then the archive itself is edited
# in every way (a chunk's bit, a record's value, a deleted, inserted or
# moved record or chunk, a chunk from another pen, a head re-signed by
# another key, the last head removed): penlink verify names the first broken
# link each time, and the intact archive verifies. A record row that cannot be
# a record is named by export and verify as its pen's damage, and every
# other pen is read as usual. The audit takes its records from the chunks:
# the damaged row changes none of its findings (verify names it).
# Usage: test_verify.sh PENLINK PENLINK_SIM
# PENLINK_TEST_ARCHIVE=postgresql: the same, on PostgreSQL (harness.sh).
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"

# a pen with a few weeks of log, pulled twice (two signed heads at least)
$SIM --state "$tmp/base" --serial PEN-V1 --seed 4 --simulate-days 14 --start-time $T0 > /dev/null
cp -r "$tmp/base" "$tmp/pristine"
start_sim base
A=$(archive a)
run 0 "pull a signing pen" $PL --device "sim:$tmp/base.sock" --archive "$A" pull
stop_sim base
$SIM --state "$tmp/base" --simulate-days 3 --start-time $T0 > /dev/null
start_sim base
run 0 "pull it again" $PL --device "sim:$tmp/base.sock" --archive "$A" pull
stop_sim base
run 0 "verify: the intact archive" $PL --archive "$A" verify
check "verified, with its records and heads" 'grep -q "PEN-V1 *verified" $tmp/out'
run 0 "verify --json" $PL --archive "$A" --json verify
check "json: state ok" 'grep -q "\"state\":\"ok\"" $tmp/out && grep -q "\"heads\":[1-9]" $tmp/out'
# another pen, for splicing
$SIM --state "$tmp/pen2" --serial PEN-V2 --seed 5 --simulate-days 5 --start-time $T0 > /dev/null
start_sim pen2
B=$(archive b)
$PL --device "sim:$tmp/pen2.sock" --archive "$B" --quiet pull > /dev/null 2>&1
stop_sim pen2

# 1. on the way. A chunk altered under a good frame CRC is a lie: the pull
# catches it, keeps nothing and acknowledges nothing. A chunk dropped,
# swapped or sent again (frames well formed, content intact) is a lossy
# link, not a lie: the reply is asked for again from the last record taken,
# and the pull completes with every record once.
rm -rf "$tmp/t"
cp -r "$tmp/pristine" "$tmp/t"
start_sim t --tamper flip
T=$(archive t)
run 6 "pull through a pen link that does 'flip'" $PL --device "sim:$tmp/t.sock" --archive "$T" pull
check "flip: the error names the chunk" 'grep -q "the chunk of records [0-9]*\.\.[0-9]*" $tmp/err'
check "flip: nothing archived" '[ "$(q "$T" "SELECT count(*) FROM records")" = 0 ]'
check "flip: an alarm says why" '[ "$(q "$T" "SELECT count(*) FROM alarms WHERE kind = '"'unverified'"'")" = 1 ]'
$PL --device "sim:$tmp/t.sock" --json info > "$tmp/info" 2>&1
check "flip: the pen still holds every record" 'grep -q "\"log_acked_seq\":0" $tmp/info'
run 0 "verify: a pen whose key is pinned, with no chunk or head yet" $PL --archive "$T" verify
stop_sim t
for m in drop swap splice; do
    rm -rf "$tmp/t"
    cp -r "$tmp/pristine" "$tmp/t"
    T=$(archive t)
    start_sim t --tamper $m
    $PL --device "sim:$tmp/t.sock" --json info > "$tmp/info" 2>&1
    held=$(jget "$tmp/info" log_next_seq)
    run 0 "pull through a pen link that does '$m'" $PL --device "sim:$tmp/t.sock" --archive "$T" --json pull
    check "$m: every record archived once" '[ "$(q "$T" "SELECT count(*), count(DISTINCT seq), min(seq), max(seq) FROM records")" = "$held|$held|0|$((held - 1))" ]'
    check "$m: no gap, no alarm" '[ "$(q "$T" "SELECT count(*) FROM alarms")" = 0 ]'
    check "$m: the reply was asked for again" '[ "$(jget $tmp/out retries)" -ge 1 ]'
    $PL --device "sim:$tmp/t.sock" --json info > "$tmp/info" 2>&1
    check "$m: acknowledged through the last record" '[ "$(jget $tmp/info log_acked_seq)" = "$held" ]'
    run 0 "$m: the archive verifies" $PL --archive "$T" verify
    stop_sim t
done
rm -rf "$tmp/t"
cp -r "$tmp/pristine" "$tmp/t"
start_sim t --sign-with-other-key
T=$(archive t)
run 6 "pull from a pen that signs with a key not its own" $PL --device "sim:$tmp/t.sock" --archive "$T" pull
check "the error says the signature does not verify" 'grep -q "does not verify with its device key" $tmp/err'
check "nothing archived" '[ "$(q "$T" "SELECT count(*) FROM records")" = 0 ]'
stop_sim t

# 2. in the archive: penlink verify names the first broken link
tamper() { # name python-statements: edits a copy of the archive, then verifies it
    name=$1
    E=$(archive_copy "$A" e)
    PYTHONPATH="$here" "$PY" - "$E" "$B" << PY
import sys
from archive_db import Archive
con = Archive(sys.argv[1])
other = Archive(sys.argv[2])
con.unlock()
def chunk(i):
    return con.execute("SELECT id, first_seq, record_count, data FROM chunks ORDER BY first_seq "
                       "LIMIT 1 OFFSET ?", (i,))[0]
$2
con.commit()
PY
    $PL --archive "$E" verify > "$tmp/out" 2> "$tmp/err"
    rc=$?
    if [ $rc -eq 6 ] && grep -q "first broken link at seq [0-9]*: .*$3" "$tmp/out"; then
        ok "verify finds: $name"
    else
        bad "verify misses: $name (exit $rc)"; cat "$tmp/out" "$tmp/err" | sed 's/^/    /'
    fi
}
tamper "a bit flipped in a chunk" '
cid, first, n, data = chunk(3)
d = bytearray(data); d[len(d) // 2] ^= 4
con.execute("UPDATE chunks SET data = ? WHERE id = ?", (bytes(d), cid))' "do not hash to its link"
tamper "a record edited" '
seq, body = con.one("SELECT seq, body FROM records ORDER BY seq LIMIT 1 OFFSET 500")
b = bytearray(body); b[-1] ^= 1
con.execute("UPDATE records SET body = ? WHERE seq = ?", (bytes(b), seq))' "differs from the record in its signed chunk"
tamper "a record deleted" '
con.execute("DELETE FROM records WHERE seq = (SELECT seq FROM records ORDER BY seq LIMIT 1 OFFSET 700)")' "is missing from the records table"
tamper "a record inserted" '
dev, seq, body, ch = con.one("SELECT device_id, seq, body, chunk_id FROM records ORDER BY seq DESC LIMIT 1")
con.execute("INSERT INTO records VALUES (?, ?, ?, ?)", (dev, seq + 1, body, ch))' "outside every signed chunk"
tamper "two chunks swapped" '
a, b = chunk(2), chunk(3)
con.execute("UPDATE chunks SET first_seq = -1 WHERE id = ?", (a[0],))
con.execute("UPDATE chunks SET first_seq = ? WHERE id = ?", (a[1], b[0]))
con.execute("UPDATE chunks SET first_seq = ? WHERE id = ?", (b[1], a[0]))' "its bytes do not hash to its link"
tamper "a chunk and its records removed" '
cid, first, n, data = chunk(4)
con.execute("DELETE FROM chunks WHERE id = ?", (cid,))
con.execute("DELETE FROM records WHERE seq >= ? AND seq < ?", (first, first + n))' "and their chunks are missing"
tamper "a chunk spliced in from another pen" '
cid, first, n, data = chunk(1)
o = other.one("SELECT data, prev_link, link, record_count, raw_size FROM chunks ORDER BY first_seq LIMIT 1 OFFSET 1")
con.execute("UPDATE chunks SET data = ?, prev_link = ?, link = ?, record_count = ?, raw_size = ?, first_seq = (SELECT first_seq FROM chunks WHERE id = ?) WHERE id = ?", (o[0], o[1], o[2], o[3], o[4], cid, cid))
# its own links hold; it claims the place of the chunk it replaced' "\(does not follow the chunk before it\|do not hash\)"
tamper "a head re-signed with another key" '
import struct
from nacl.signing import SigningKey
k = SigningKey(b"\x09" * 32)
hid, nxt, link = con.one("SELECT id, next_seq, link FROM heads ORDER BY id LIMIT 1")
serial = b"PEN-V1"
msg = b"penlink-head-v1" + bytes([len(serial)]) + serial + struct.pack("<Q", nxt) + link
con.execute("UPDATE heads SET signature = ? WHERE id = ?", (k.sign(msg).signature, hid))' "does not verify with the pen's pinned key"
# a pull keeps only what a signed head covers: records past the last head were added
tamper "the last signed head removed" '
con.execute("DELETE FROM heads WHERE next_seq = (SELECT max(next_seq) FROM heads)")' "are covered by no signed head"
tamper "the pinned key replaced" '
con.set_key("PEN-V1", b"\x01" * 32)' "does not verify with the pen's pinned key"

# 3. a record row that cannot be a record (its body is not a packed record):
# that pen's damage, named by every command, and never another pen's
D=$(archive_copy "$A" d)
$SIM --state "$tmp/pen3" --serial PEN-V3 --seed 6 --simulate-days 4 --start-time $T0 > /dev/null
start_sim pen3
run 0 "pull another pen into a copy" $PL --device "sim:$tmp/pen3.sock" --archive "$D" pull
stop_sim pen3
bad_seq=$(q "$D" "SELECT seq FROM records r JOIN devices d ON d.id = r.device_id WHERE d.serial = 'PEN-V1' ORDER BY seq LIMIT 1 OFFSET 600")
n1=$(q "$D" "SELECT count(*) FROM records r JOIN devices d ON d.id = r.device_id WHERE d.serial = 'PEN-V1'")
n3=$(q "$D" "SELECT count(*) FROM records r JOIN devices d ON d.id = r.device_id WHERE d.serial = 'PEN-V3'")
# the audit of the copy before the row is damaged: what it must still say after
$PL --archive "$D" --json audit > "$tmp/audit_before" 2> /dev/null
audit_rc=$?
PYTHONPATH="$here" "$PY" - "$D" "$bad_seq" << 'PY' || bad "could not damage a record row"
import sys
from archive_db import Archive
con = Archive(sys.argv[1])
con.unlock()
con.execute("UPDATE records SET body = ? WHERE seq = ? AND device_id = (SELECT id FROM devices "
            "WHERE serial = 'PEN-V1')", (b"\xff", int(sys.argv[2])))
con.commit()
PY
run 6 "export records of it" $PL --archive "$D" export records
check "every other record of both pens is written" \
    '[ "$(grep -c "^PEN-V1," $tmp/out)" = $((n1 - 1)) ] && [ "$(grep -c "^PEN-V3," $tmp/out)" = "$n3" ]'
check "the damage is named" 'grep -q "1 record rows cannot be records and were skipped (the first: pen PEN-V1, seq stored as $bad_seq: its body is not a packed record)" $tmp/err'
# the audit takes the records from the chunks: a row alone changes none of its findings
run $audit_rc "audit of it: exit $audit_rc, as before the row was damaged" $PL --archive "$D" --json audit
check "every finding, treatment and the verdict as before (no damaged finding)" \
    'cmp -s "$tmp/out" "$tmp/audit_before" && ! grep -q "\"finding\":\"damaged\"" $tmp/out'
check "the other pen's treatments are audited" 'grep -q "\"type\":\"treatment\",\"serial\":\"PEN-V3\"" $tmp/out'
run 6 "verify of it" $PL --archive "$D" verify --no-record
check "that pen is BROKEN at that row" 'grep -q "first broken link at seq $bad_seq: the record row of seq $bad_seq cannot be a record: its body is not a packed record" $tmp/out'
check "the other pen verifies" 'grep -q "PEN-V3 *verified" $tmp/out'

run 0 "the intact archive still verifies" $PL --archive "$A" verify
run 0 "the audit shows the verification" $PL --archive "$A" audit --report integrity
check "audit: verified state per pen" 'grep -q "PEN-V1.*verified" $tmp/out'
finish
