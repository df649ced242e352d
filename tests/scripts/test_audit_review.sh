#!/bin/sh
# The audit and verify against an archive edited by someone with full write
# access, and the report checker against an edited report: one section per
# finding of issue 13's adversarial review (R1..R11), each with the case
# that showed it. Runs on either backend (PENLINK_TEST_ARCHIVE).
# Usage: test_audit_review.sh PENLINK PENLINK_SIM [AUDIT_SUMMARY]
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
LIBSUM=${3:-}
. "$(dirname "$0")/harness.sh"

# PEN-O: a week with planted depth and duration over the limits, pulled
start_sim o --serial PEN-O --seed 11 --simulate-days 7 --start-time $T0 \
    --depth-out-permille 60 --over-limit-permille 60 --fault-permille 0
O=$(archive o)
run 0 "pull PEN-O" $PL --archive "$O" --device "sim:$tmp/o.sock" pull
stop_sim o
planted_limits=$(grep -c '"out_of_limits"' "$tmp/o/planted.jsonl")
run 1 "the audit finds the planted limits" $PL --archive "$O" audit --format json
check "as many out_of_limits as planted ($planted_limits)" \
    '[ "$(grep -c "\"finding\":\"out_of_limits\"" $tmp/out)" -eq "$planted_limits" ]'

echo "# R1 a second value set for one configuration revision"
F=$(archive_copy "$O" o_forged)
json=$(q "$F" "SELECT new_json FROM config_history ORDER BY id LIMIT 1" |
    sed 's/"depth_max_um":[0-9]*/"depth_max_um":9000/; s/"max_treatment_s":[0-9]*/"max_treatment_s":99999/')
over=""
[ "$backend" = postgresql ] && over="OVERRIDING SYSTEM VALUE"
# a plain INSERT (no guard lifted) placed first: the lowest id of its revision
edit "$F" "INSERT INTO config_history (id, device_id, at_ms, source, os_user, host, revision,
    old_json, new_json) $over SELECT 0, device_id, 1, 'read', 'x', 'x', revision, NULL,
    '$json' FROM config_history ORDER BY id LIMIT 1"
run 1 "audit of the forged history: exit 1" $PL --archive "$F" audit --format json
check "the limits still found ($planted_limits)" \
    '[ "$(grep -c "\"finding\":\"out_of_limits\"" $tmp/out)" -eq "$planted_limits" ]'
check "a config_conflict finding, compliance, integrity" \
    'grep -q "\"report\":\"integrity\",\"finding\":\"config_conflict\",\"compliance\":true" $tmp/out'
run 1 "the table says so" $PL --archive "$F" audit --report integrity
check "table: config_conflict, revision 1" \
    'grep -q "config_conflict .*two different sets of values (first: revision 1)" $tmp/out'
# the same values twice (a history read at two pulls) is no conflict
D=$(archive_copy "$O" o_twice)
edit "$D" "INSERT INTO config_history (device_id, at_ms, source, os_user, host, revision,
    old_json, new_json) SELECT device_id, at_ms + 1, source, os_user, host, revision, old_json,
    new_json FROM config_history ORDER BY id LIMIT 1"
run 1 "the same values recorded twice" $PL --archive "$D" audit --format json
check "no config_conflict for identical values" '! grep -q config_conflict $tmp/out'

echo "# R2 a log cut short where a head ends it, or swapped, its heads gone"
# PEN-T: pulled twice, so that each pull's records end under a head of their own
$SIM --state "$tmp/t" --serial PEN-T --seed 12 --simulate-days 4 --start-time $T0 > /dev/null
start_sim t
T=$(archive t)
run 0 "first pull of PEN-T" $PL --archive "$T" --device "sim:$tmp/t.sock" pull
stop_sim t
$SIM --state "$tmp/t" --simulate-days 3 --start-time $T0 > /dev/null
start_sim t
run 0 "second pull" $PL --archive "$T" --device "sim:$tmp/t.sock" pull
stop_sim t
run 0 "verify: intact" $PL --archive "$T" verify --no-record
cut=$(q "$T" "SELECT next_seq FROM pulls ORDER BY id LIMIT 1")
last=$(q "$T" "SELECT max(next_seq) FROM pulls")
C=$(archive_copy "$T" t_cut)
# the second pull's chunks, records and heads deleted: the first head still covers the rest
edit "$C" "DELETE FROM records WHERE seq >= $cut" "DELETE FROM chunks WHERE first_seq >= $cut" \
    "DELETE FROM heads WHERE next_seq > $cut"
run 6 "verify of the cut log: exit 6" $PL --archive "$C" verify --no-record
check "it names the records the pulls stored" \
    'grep -q "pulls recorded this pen.s records through seq $((last - 1)) as stored.*records $cut\.\.$((last - 1)) were removed" $tmp/out'
run 1 "the audit of the cut log fails" $PL --archive "$C" audit --format json
check "a missing finding for the cut records, from seq $cut" \
    'grep -q "\"finding\":\"missing\",\"compliance\":true,\"serial\":\"PEN-T\",\"seq\":$cut," $tmp/out'
# every record, chunk and head gone: the pulls still say what was stored
Z=$(archive_copy "$T" t_all)
edit "$Z" "DELETE FROM records" "DELETE FROM chunks" "DELETE FROM heads"
run 6 "verify of a pen whose whole log was deleted: exit 6" $PL --archive "$Z" verify --no-record
check "its records are all gone" 'grep -q "records are all gone; records 0\.\." $tmp/out'
run 1 "the audit fails" $PL --archive "$Z" audit --format json
check "missing, from seq 0" 'grep -q "\"finding\":\"missing\",\"compliance\":true,\"serial\":\"PEN-T\",\"seq\":0," $tmp/out'
# PEN-T's log swapped for another pen's clean one under its serial, the heads deleted
$SIM --state "$tmp/t2" --serial PEN-T --seed 99 --simulate-days 7 --start-time $T0 > /dev/null
start_sim t2
T2=$(archive t2)
run 0 "a clean log of another pen with the same serial" $PL --archive "$T2" --device "sim:$tmp/t2.sock" pull
stop_sim t2
S=$(archive_copy "$T" t_swapped)
edit "$S" "DELETE FROM records" "DELETE FROM chunks" "DELETE FROM heads"
"$PY" -c '
import sys
sys.path.insert(0, sys.argv[3])
from archive_db import Archive
src, dst = Archive(sys.argv[1]), Archive(sys.argv[2])
dst.unlock()
dev = dst.one("SELECT id FROM devices WHERE serial = ?", ("PEN-T",))[0]
ids = {}
for row in src.execute("SELECT id, received_ms, first_seq, record_count, raw_size, data, prev_link, link FROM chunks ORDER BY id"):
    dst.execute("INSERT INTO chunks (device_id, received_ms, first_seq, record_count, raw_size, data, prev_link, link) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (dev,) + row[1:])
    ids[row[0]] = dst.one("SELECT max(id) FROM chunks")[0]
for seq, body, chunk in src.execute("SELECT seq, body, chunk_id FROM records ORDER BY seq"):
    dst.execute("INSERT INTO records (device_id, seq, body, chunk_id) VALUES (?, ?, ?, ?)", (dev, seq, body, ids[chunk]))
dst.commit()
' "$T2" "$S" "$here"
run 6 "verify of the swapped log: exit 6" $PL --archive "$S" verify --no-record
run 1 "the audit of the swapped log fails" $PL --archive "$S" audit --format json
check "log_broken" 'grep -q "\"finding\":\"log_broken\"" $tmp/out'

echo "# F1 a forged key replacement from seq 0: a whole log signed with another key"
# the other PEN-T's archive (its own log, heads and pulls, signed with its key) given PEN-T's
# pinned key, and a replacement row naming PEN-T's key as the old key and its own as the new
RK=$(archive_copy "$T2" t_rekeyed)
"$PY" -c '
import sys
sys.path.insert(0, sys.argv[3])
from archive_db import Archive
genuine, dst = Archive(sys.argv[1]), Archive(sys.argv[2])
dst.unlock()
pinned = genuine.one("SELECT public_key FROM devices WHERE serial = ?", ("PEN-T",))[0]
dev, new = dst.one("SELECT id, public_key FROM devices WHERE serial = ?", ("PEN-T",))
dst.set_key("PEN-T", pinned)
dst.execute("INSERT INTO key_replacements (device_id, at_ms, os_user, host, reason, old_key, new_key, from_seq, heads_before) VALUES (?, 1, ?, ?, ?, ?, ?, 0, 0)", (dev, "tech", "bench", "board repair", pinned, new))
dst.commit()
' "$T" "$RK" "$here"
run 6 "F1: verify of the re-signed log: exit 6" $PL --archive "$RK" verify --no-record
check "F1: verify names the replacement row" \
    'grep -q "the key replacement recorded at seq 0 (0 heads before it, by tech on bench) follows no signed head that verified with the key it replaces" $tmp/out'
run 1 "F1: the audit of the re-signed log fails" $PL --archive "$RK" audit --format json
check "F1: log_broken at seq 0, naming the replacement" \
    'grep -q "\"finding\":\"log_broken\",\"compliance\":true,\"serial\":\"PEN-T\",\"seq\":0,.*the key replacement recorded at seq 0" $tmp/out'

echo "# R3 the pinned key removed: the pen counts as unsigned"
K=$(archive_copy "$T" t_nokey)
if [ "$backend" = postgresql ]; then
    edit "$K" "DELETE FROM pen_keys"
else
    edit "$K" "UPDATE devices SET public_key = NULL"
fi
run 6 "verify of a pen whose key was removed: exit 6" $PL --archive "$K" verify --no-record
check "its chunks' links and heads show it signed" \
    'grep -q "holds no device key for this pen, yet [0-9]* of its chunks carry hash-chain links and its pulls stored [0-9]* signed heads" $tmp/out'
run 1 "the audit fails" $PL --archive "$K" audit --format json
check "log_broken, not unsigned" 'grep -q "\"finding\":\"log_broken\"" $tmp/out'

echo "# R7 a stored verdict, stale or forged, is never the audit's proof; the rows are verify's"
# The audit takes the records from the pens' chained and signed chunks (their
# links and heads checked by the audit itself) and reads no record row: (a) an
# edited record row leaves every finding and the verdict as they were, and
# verify names the row; (b) an edited chunk fails the audit's own check.
V=$(archive_copy "$T" t_row)
run 0 "a genuine verify, stored" $PL --archive "$V" verify
$PL --archive "$V" audit --format json > "$tmp/r7.json" 2> /dev/null
r7_rc=$?
$PL --archive "$V" audit > "$tmp/r7.txt" 2> /dev/null
check "the untouched archive's audit says where its records come from" \
    'grep -q "\"type\":\"audit_scope\",\"records_from\":\"chunks\",\"chunks\":[1-9]" $tmp/r7.json && grep -q "^Records: read from the pens. chunks ([0-9]* chunks; 1 pen signing: chain and signed heads checked); record rows not compared" $tmp/r7.txt'
check "and gives verify's stored verdict as verify's claim, with its time" \
    'grep -q "\"verify_claims\":\[{\"serial\":\"PEN-T\",\"result\":\"ok\",\"verified_at\":\"20" $tmp/r7.json'
"$PY" -c '
import sys
sys.path.insert(0, sys.argv[2])
from archive_db import Archive
a = Archive(sys.argv[1])
a.unlock()
seq, body = a.one("SELECT seq, body FROM records ORDER BY seq LIMIT 1 OFFSET 300")
b = bytearray(body); b[-1] ^= 1
a.execute("UPDATE records SET body = ? WHERE seq = ?", (bytes(b), seq))
a.commit()
' "$V" "$here"
run "$r7_rc" "(a) a record row edited after the stored verify: the audit exits as before ($r7_rc)" \
    $PL --archive "$V" audit --format json
check "(a) every finding, treatment, verification and the verdict as on the untouched archive" \
    'cmp -s $tmp/out $tmp/r7.json'
run "$r7_rc" "(a) the table too" $PL --archive "$V" audit
check "(a) the table is the untouched archive's" 'cmp -s $tmp/out $tmp/r7.txt'
run 6 "(a) verify names the edited row" $PL --archive "$V" verify --no-record
check "(a) at seq 300" 'grep -q "first broken link at seq 300: record 300 differs from the record in its signed chunk (edited)" $tmp/out'

W=$(archive_copy "$T" t_chunk)
run 0 "a genuine verify, stored" $PL --archive "$W" verify
c0=$("$PY" -c '
import sys
sys.path.insert(0, sys.argv[2])
from archive_db import Archive
a = Archive(sys.argv[1])
a.unlock()
cid, first, data = a.one("SELECT id, first_seq, data FROM chunks WHERE first_seq <= 300 ORDER BY first_seq DESC LIMIT 1")
d = bytearray(data); d[len(d) // 2] ^= 4
a.execute("UPDATE chunks SET data = ? WHERE id = ?", (bytes(d), cid))
a.commit()
print(first)
' "$W" "$here")
run 1 "(b) a chunk edited after the stored verify: the audit fails" $PL --archive "$W" audit --format json
check "(b) log_broken at that chunk ($c0)" \
    'grep -q "\"finding\":\"log_broken\",\"compliance\":true,\"serial\":\"PEN-T\",\"seq\":$c0,.*do not hash to its link" $tmp/out'
check "(b) the verification is computed by the audit" \
    'grep -q "\"type\":\"verification\",\"serial\":\"PEN-T\",\"state\":\"broken\".*\"verified_by\":\"audit\"" $tmp/out'
check "(b) verify's stored claim is shown as verify's, still ok" \
    'grep -q "\"verify_claims\":\[{\"serial\":\"PEN-T\",\"result\":\"ok\"" $tmp/out'
run 6 "(b) verify stores BROKEN" $PL --archive "$W" verify
# an ok row added to the verification log after it
edit "$W" "INSERT INTO verifications (device_id, at_ms, result, through_seq, records, chunks,
    detail) SELECT device_id, at_ms + 1000, 'ok', through_seq, records, chunks, NULL
    FROM verifications ORDER BY id DESC LIMIT 1"
run 1 "(b) a forged ok verdict: the audit still fails" $PL --archive "$W" audit
check "(b) table: BROKEN, verified by this audit" \
    'grep -q "PEN-T *BROKEN at seq $c0 (verified by this audit)" $tmp/out'

echo "# R4 a report whose version, operator or time was edited"
R=$tmp/o.html
run 1 "the report of PEN-O" $PL --archive "$O" audit --tz UTC --format html -o "$R" --operator "A Auditor"
run 0 "it checks" $PL --archive "$O" audit --check-report "$R"
check "F4: the check says its verify claims are as stored when it was made, not checked again" \
    'grep -q "^  Its verify.s claims are the verdicts penlink verify had stored when the report was made, as the report gives them: not checked again (run .penlink verify. for the archive as it is now)" $tmp/out'
run 0 "F4: --json" $PL --archive "$O" --json audit --check-report "$R"
check "F4: json: verify_claims not checked again" \
    'grep -q "\"confirmed\":true,\"verify_claims\":\"the verdicts penlink verify had stored when the report was made, as the report gives them: not checked again" $tmp/out'
# a FAIL report turned PASS, claiming another version so that only its data is compared
python3 - "$R" "$tmp/forged.html" << 'PY'
import re, sys
s = open(sys.argv[1]).read()
s = s.replace('name="penlink-version" content="', 'name="penlink-version" content="0.0.9-', 1)
s = re.sub(r'data-verdict="fail"', 'data-verdict="pass"', s)
s = s.replace("Verdict: FAIL", "Verdict: PASS")
open(sys.argv[2], "w").write(s)
PY
run 10 "another version: cannot be confirmed (exit 10)" $PL --archive "$O" audit --check-report "$tmp/forged.html"
check "it says so" 'grep -q "CANNOT BE CONFIRMED" $tmp/out'
run 10 "--json" $PL --archive "$O" --json audit --check-report "$tmp/forged.html"
check "json: not confirmed" 'grep -q "\"confirmed\":false" $tmp/out'
sed 's/A%20Auditor/B%20Auditor/g; s/A Auditor/B Auditor/g' "$R" > "$tmp/op.html"
check "the operator edited in the meta and the text" 'grep -q "B Auditor" $tmp/op.html && ! grep -q "A Auditor" $tmp/op.html'
run 6 "an edited operator is caught" $PL --archive "$O" audit --check-report "$tmp/op.html"
gen=$(sed -n 's/.*name="penlink-generated" content="\([0-9]*\)".*/\1/p' "$R")
sed "s/name=\"penlink-generated\" content=\"$gen\"/name=\"penlink-generated\" content=\"$((gen + 86400000))\"/" "$R" > "$tmp/gen.html"
run 6 "an edited generation time is caught" $PL --archive "$O" audit --check-report "$tmp/gen.html"

echo "# R5 --check-report never opens the archive a report names"
# the report made to name another archive (in its meta and its text alike)
renamed() { # from to out
    python3 - "$R" "$1" "$2" "$3" << 'PY'
import html, sys, urllib.parse
s, a, b = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3]
for f in (lambda x: x, html.escape, lambda x: urllib.parse.quote(x, safe="/:@")):
    s = s.replace(f(a), f(b))
open(sys.argv[4], "w").write(s)
PY
}
renamed "$O" "$T" "$tmp/elsewhere.html"
check "the report now names PEN-T's archive" '! grep -q "$O" $tmp/elsewhere.html'
# PENLINK_ARCHIVE is PEN-O's: PEN-O's is checked (PEN-T's has no PEN-O: it would be exit 2)
run 0 "the archive of PENLINK_ARCHIVE is checked, not the one named" \
    env PENLINK_ARCHIVE="$O" $PL audit --check-report "$tmp/elsewhere.html"
check "the note names both" 'grep -q "names the archive .*; it is checked against " $tmp/err'
# a report naming a server: nothing is contacted (else: exit 7, cannot connect)
renamed "$O" "postgresql://127.0.0.1:1/clinic" "$tmp/server.html"
run 0 "a report naming a server is checked against PENLINK_ARCHIVE" \
    env PENLINK_ARCHIVE="$O" $PL audit --check-report "$tmp/server.html"

echo "# R8 the library's summary never reads as a pass when the audit returned an error"
if [ -n "$LIBSUM" ]; then
    run 1 "penlink_audit_run of a pen the archive does not hold" $LIBSUM "$O" pen-o
    check "its summary's verdict is not_run, not pass" 'grep -q "^verdict not_run" $tmp/out'
    run 0 "the right serial" $LIBSUM "$O" PEN-O
    check "verdict fail" 'grep -q "^verdict fail" $tmp/out'
else
    bad "no AUDIT_SUMMARY program given"
fi

echo "# R9 --tz with a POSIX rule, whose sign is the opposite of ISO's"
run 2 "--tz UTC+5: a usage error" $PL --archive "$O" audit --tz UTC+5 --report usage
check "it says how to write it" 'grep -q "POSIX TZ rule.*Etc/GMT-5" $tmp/err'
run 2 "--tz with a POSIX rule with DST too" $PL --archive "$O" audit --tz "CET-1CEST,M3.5.0,M10.5.0/3" --report usage
run 1 "--tz Etc/GMT-5 (the tz database name) is accepted (PEN-O has findings)" $PL --archive "$O" audit --tz Etc/GMT-5 --report usage --format json
check "its times are 5 hours ahead of UTC" 'grep -q "T[0-9:.]*+05:00" $tmp/out'

echo "# R6 an audit of one pen finds its cartridges reused on the other pens"
$SIM --state "$tmp/x1" --serial PEN-X1 --seed 21 --simulate-days 5 --start-time $T0 > /dev/null
$SIM --state "$tmp/x2" --serial PEN-X2 --seed 22 --simulate-days 5 --start-time $T0 \
    --reuse-from "$tmp/x1" --cross-reuse-permille 150 > /dev/null
X=$(archive x)
for p in x1 x2; do
    start_sim $p
    run 0 "pull $p" $PL --archive "$X" --device "sim:$tmp/$p.sock" pull
    stop_sim $p
done
# one finding per cartridge, however often it was reused
planted=$(python3 -c 'import json, sys
print(len({json.loads(l)["cartridge"] for l in open(sys.argv[1]) if "\"reuse\"" in l}))' "$tmp/x2/planted.jsonl")
run 1 "all pens: the planted cross-pen reuses" $PL --archive "$X" audit --format json
check "$planted reused cartridges" '[ "$(grep -c "\"finding\":\"reuse\"" $tmp/out)" -eq "$planted" ]'
for p in PEN-X1 PEN-X2; do
    run 1 "--pen $p fails" $PL --archive "$X" audit --pen $p --format json
    check "--pen $p: the $planted reuses, under $p" \
        '[ "$(grep -c "\"finding\":\"reuse\",\"compliance\":true,\"serial\":\"$p\"" $tmp/out)" -eq "$planted" ]'
done

echo "# F2/F3 the other pens' logs an audit of one pen reads are checked like their own"
x2="(SELECT id FROM devices WHERE serial = 'PEN-X2')"
run 1 "--pen PEN-X1 of the intact archive" $PL --archive "$X" audit --pen PEN-X1 --format json
check "no finding names PEN-X2's log" '! grep -q "\"finding\":\"log_broken\"" $tmp/out'
grep -v '"finding":"reuse"' "$tmp/out" | grep '"type":"finding"' > "$tmp/x1_own.json"
# F2: PEN-X2's log deleted (its chunks and their record rows)
XD=$(archive_copy "$X" x_deleted)
edit "$XD" "DELETE FROM records WHERE device_id = $x2" "DELETE FROM chunks WHERE device_id = $x2"
run 1 "F2: --pen PEN-X1, PEN-X2's chunks deleted: not a pass" \
    $PL --archive "$XD" audit --pen PEN-X1 --format json
check "F2: an integrity finding names PEN-X2's log" \
    'grep -q "\"report\":\"integrity\",\"finding\":\"log_broken\",\"compliance\":true,\"serial\":\"PEN-X2\".*read for reuses of PEN-X1.s cartridges: its log does not verify" $tmp/out'
check "F2: verdict fail" 'grep -q "\"verdict\":\"fail\"" $tmp/out'
grep -v '"finding":"reuse"' "$tmp/out" | grep '"type":"finding"' | grep -v '"serial":"PEN-X2"' > "$tmp/x1_f2.json"
check "F2: PEN-X1's own findings unchanged" 'cmp -s $tmp/x1_own.json $tmp/x1_f2.json'
run 1 "F2: the whole-archive audit names PEN-X2's log too" $PL --archive "$XD" audit --format json
check "F2: log_broken PEN-X2" 'grep -q "\"finding\":\"log_broken\",\"compliance\":true,\"serial\":\"PEN-X2\"" $tmp/out'
# F3: PEN-X2's first chunk replaced by PEN-X1's (another pen's chunk under its device id)
XF=$(archive_copy "$X" x_forged)
col() { echo "$1 = (SELECT c.$1 FROM chunks c JOIN devices d ON d.id = c.device_id WHERE d.serial = 'PEN-X1' AND c.first_seq = 0)"; }
edit "$XF" "UPDATE chunks SET $(col data), $(col record_count), $(col raw_size), $(col prev_link),
    $(col link) WHERE device_id = $x2 AND first_seq = 0"
run 1 "F3: --pen PEN-X1, PEN-X1's chunk under PEN-X2" $PL --archive "$XF" audit --pen PEN-X1 --format json
check "F3: the break of PEN-X2's log is named" \
    'grep -q "\"finding\":\"log_broken\",\"compliance\":true,\"serial\":\"PEN-X2\",\"seq\":0,.*does not start this pen.s chain" $tmp/out'
check "F3: no reuse taken from PEN-X2's broken log" '! grep -q "\"finding\":\"reuse\"" $tmp/out'
grep -v '"finding":"reuse"' "$tmp/out" | grep '"type":"finding"' | grep -v '"serial":"PEN-X2"' > "$tmp/x1_f3.json"
check "F3: PEN-X1's own findings unchanged" 'cmp -s $tmp/x1_own.json $tmp/x1_f3.json'

echo "# F5 the scope line says how many pens sign (chain and heads checked) and how many do not"
run 1 "both pens sign" $PL --archive "$X" audit --format json
check "json: 2 pens' chain and heads checked, none unsigned" \
    'grep -q "\"type\":\"audit_scope\".*\"pens_chain_and_heads_checked\":2,\"pens_unsigned\":0" $tmp/out'
XU=$(archive_copy "$X" x_unsigned)
x1="(SELECT id FROM devices WHERE serial = 'PEN-X1')"
if [ "$backend" = postgresql ]; then
    edit "$XU" "DELETE FROM pen_keys WHERE device_id = $x1"
else
    edit "$XU" "UPDATE devices SET public_key = NULL WHERE id = $x1"
fi
edit "$XU" "UPDATE chunks SET link = NULL, prev_link = NULL WHERE device_id = $x1" \
    "DELETE FROM heads WHERE device_id = $x1"
run 1 "PEN-X1 made a pen that does not sign" $PL --archive "$XU" audit --format json
check "json: PEN-X1 unsigned" 'grep -q "\"type\":\"verification\",\"serial\":\"PEN-X1\",\"state\":\"unsigned\"" $tmp/out'
check "json: 1 pen's chain and heads checked, 1 unsigned" \
    'grep -q "\"type\":\"audit_scope\".*\"pens_chain_and_heads_checked\":1,\"pens_unsigned\":1" $tmp/out'
run 1 "--pen PEN-X1: the table" $PL --archive "$XU" audit --pen PEN-X1
check "table: no pen's chain and heads checked, 1 unsigned" \
    'grep -q "^Records: read from the pens. chunks ([0-9]* chunks; 0 pens signing: chain and signed heads checked; 1 pen unsigned: no chain or signed heads to check)" $tmp/out'
check "table: the scope never claims signed chunks" '! grep -q "chained and signed chunks" $tmp/out'
run 1 "the HTML report" $PL --archive "$XU" audit --format html -o "$tmp/xu.html"
check "html: 1 pen checked, 1 unsigned" \
    'grep -q "data-pens-checked=\"1\" data-pens-unsigned=\"1\">Records: read from the pens. chunks ([0-9]* chunks; 1 pen signing: chain and signed heads checked; 1 pen unsigned: no chain or signed heads to check)" $tmp/xu.html'
run 0 "the report checks" $PL --archive "$XU" audit --check-report "$tmp/xu.html"

echo "# R11 dates that name no instant or one too finely; PENLINK_DEVICE; a missing archive"
run 2 "--since with 4 digits after the second: refused, not cut" \
    $PL --archive "$X" audit --tz UTC --since 2026-03-02T10:00:00.1234 --report usage
check "it says milliseconds" 'grep -q "at most 3 digits after the second" $tmp/err'
run 1 "--since with 3 digits is read to the millisecond" \
    $PL --archive "$X" audit --tz UTC --since 2020-03-02T10:00:00.123 --format json
check "since 10:00:00.123" 'head -1 $tmp/out | grep -q "\"since\":\"2020-03-02T10:00:00.123Z\""'
run 2 "a local time the spring DST change skips" \
    $PL --archive "$X" audit --tz Europe/Berlin --since 2026-03-29T02:30 --report usage
check "the message names the gap" 'grep -q "does not exist in Europe/Berlin: on 2026-03-29 the clocks jump from 02:00 to 03:00" $tmp/err'
run 2 "a local time the autumn DST change repeats, without an offset" \
    $PL --archive "$X" audit --tz Europe/Berlin --until 2026-10-25T02:30 --report usage
check "the message names both offsets" 'grep -q "ambiguous in Europe/Berlin.*UTC+02:00 and then at UTC+01:00" $tmp/err'
run 1 "the same with its offset" \
    $PL --archive "$X" audit --tz Europe/Berlin --until 2026-10-25T02:30+01:00 --format json
check "until 02:30+01:00" 'head -1 $tmp/out | grep -q "\"until\":\"2026-10-25T02:30:00.000+01:00\""'
run 1 "the hour before the repeated one is one instant" \
    $PL --archive "$X" audit --tz Europe/Berlin --until 2026-10-25T01:30 --format json
check "until 01:30+02:00" 'head -1 $tmp/out | grep -q "\"until\":\"2026-10-25T01:30:00.000+02:00\""'
run 1 "PENLINK_DEVICE=usb:PEN-X1 selects that pen, like --device" \
    env PENLINK_DEVICE=usb:PEN-X1 $PL --archive "$X" audit --format json
check "audit of PEN-X1 only" 'head -1 $tmp/out | grep -q "\"serial\":\"PEN-X1\"" && grep -q "\"type\":\"summary\",\"pens\":1," $tmp/out'
run 1 "PENLINK_DEVICE=sim:... names no pen: every pen is audited" \
    env PENLINK_DEVICE="sim:$tmp/nowhere.sock" $PL --archive "$X" audit --format json
check "both pens" 'head -1 $tmp/out | grep -q "\"serial\":null" && grep -q "\"type\":\"summary\",\"pens\":2," $tmp/out'
run 2 "--device sim:... still refused" $PL --archive "$X" --device "sim:$tmp/nowhere.sock" audit
run 7 "an archive file that does not exist: I/O, not an empty archive" \
    $PL --archive "$tmp/no-such-archive.db" audit
check "it names the path" 'grep -q "no-such-archive.db does not exist" $tmp/err'

# a flash far too small: the pull itself seals the staged records and drops the
# oldest; planted.jsonl must name those too, as the gaps the audit reports
$SIM --state "$tmp/sf" --serial PEN-SF --seed 3 --simulate-days 60 --flash-size 65536 \
    --start-time $T0 > /dev/null
SF=$(archive sf)
start_sim sf
run 0 "pull a pen whose flash overflowed" $PL --archive "$SF" --device "sim:$tmp/sf.sock" pull
stop_sim sf
run 1 "its audit" $PL --archive "$SF" audit --format json
merged='def merged(r):
    out = []
    for seq, n in sorted(r):
        if out and out[-1][1] == seq:
            out[-1][1] = seq + n
        else:
            out.append([seq, seq + n])
    return out'
gaps_seen=$(python3 -c "$merged"'
import json, sys
print(merged((o["seq"], o["count"]) for o in map(json.loads, open(sys.argv[1])) if o.get("finding") == "gap"))' "$tmp/out")
gaps_planted=$(python3 -c "$merged"'
import json, sys
print(merged((o["seq"], o["count"]) for o in map(json.loads, open(sys.argv[1])) if o["kind"] == "gap"))' "$tmp/sf/planted.jsonl")
check "planted.jsonl names the records the audit finds gone ($gaps_seen)" \
    '[ "$gaps_seen" = "$gaps_planted" ] && [ "$(grep -c "\"kind\":\"gap\"" $tmp/sf/planted.jsonl)" -ge 2 ]'

finish
