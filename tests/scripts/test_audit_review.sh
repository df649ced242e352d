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

finish
