#!/bin/sh
# A service technician's day (docs/technician-guide.md), one situation per
# run, through the penlink CLI against penlink-sim:
#   keys_replace  a pen back from repair with a new device key
#   wrong_key     a key the pen does not accept, refused before sending;
#                 the default technician key
#   config_files  a configuration exported from another pen; --template
#   stopped_pull  a pen unplugged or hung mid-pull says where things stand
#   progress      the pull's progress on a terminal, in a log, as JSON, quiet
#   desk          identify, list (the USB side is tests/host/test_usb.c)
#   clock         no clock_set below the threshold; a signed clock setting;
#                 not moved back over the pen's own records
#   clock_host    a computer clock that is wrong (faketime)
# Usage: test_technician.sh PENLINK PENLINK_SIM SITUATION
# (PENLINK_TEST_ARCHIVE=postgresql: the archives on a throwaway cluster)
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
what=${3:?usage: test_technician.sh PENLINK PENLINK_SIM SITUATION}
. "$(dirname "$0")/harness.sh"
K=$tmp/keys
mkdir -p "$K"
T0=1767225600000 # 2026-01-01T00:00:00Z: the simulated days do not depend on today
jq_() { "$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print($1)" "$2"; }
# a client that skips penlink's own checks (tests/interop), for what only the pen refuses
pen_client() { # socket python-statements (c: a Client after Hello; pl: the module)
    [ -d "$tmp/pb2" ] || { mkdir -p "$tmp/pb2" &&
        protoc --python_out="$tmp/pb2" -I "$here/../../protocol" "$here/../../protocol/penlink.proto"; }
    PENLINK_PB2_DIR="$tmp/pb2" "$PY" -c "
import sys
sys.path.insert(0, sys.argv[1])
import penlink_client as pl
c = pl.Client(sys.argv[2])
c.drain()
c.hello()
$2" "$here/../interop" "$1"
}

case $what in
keys_replace)
    start_sim rma --serial PEN-RMA-1 --simulate-days 3 --start-time $T0
    A=$(archive rma)
    D="--device sim:$tmp/rma.sock --archive $A"
    run 0 "first pull pins the pen's device key" $PL $D pull
    stop_sim rma
    cp "$tmp/rma/device.key" "$K/rma-old.key"
    rm "$tmp/rma/device.key" # the factory's repair: a new secure element, the same flash
    start_sim rma --simulate-days 2 --start-time $T0
    run 6 "the repaired pen is refused (a new key under a pinned serial)" $PL $D pull
    check "the error says how to record a legitimate replacement" \
        'grep -q "penlink keys replace --pen SERIAL" $tmp/err'
    check "alarm key_changed recorded, nothing archived" \
        '[ "$(q "$A" "SELECT count(*) FROM alarms WHERE kind = '"'key_changed'"'")" = 1 ]'
    run 2 "keys replace: a reason is required" $PL $D keys replace --pen PEN-RMA-1 --yes
    run 2 "keys replace: no terminal to confirm on and no --yes" \
        $PL $D keys replace --pen PEN-RMA-1 --reason "RMA 4471"
    check "says to add --yes" 'grep -q -- "--yes" $tmp/err'
    run 2 "keys replace: the pen plugged in must be the one named" \
        $PL $D keys replace --pen PEN-RMA-2 --reason "RMA 4471" --yes
    run 2 "keys replace: a blank reason is no reason" $PL $D keys replace --pen PEN-RMA-1 --reason "   " --yes
    check "saying so" 'grep -q "reason TEXT is required (1 to [0-9]* bytes, not only spaces)" $tmp/err'
    "$PY" "$here/pty_answer.py" "Type yes" '\x03' -- $PL $D keys replace --pen PEN-RMA-1 \
        --reason "RMA 4471" > "$tmp/ctrlc.out" 2>&1
    check "Ctrl-C at the confirmation: exit 130, nothing recorded, said so" \
        'grep -q "^exit 130$" $tmp/ctrlc.out && grep -q "keys replace: interrupted: nothing was recorded" $tmp/ctrlc.out'
    check "nothing recorded by the refusals" '[ "$(q "$A" "SELECT count(*) FROM key_replacements")" = 0 ]'
    run 0 "keys replace --yes" $PL $D keys replace --pen PEN-RMA-1 --reason "RMA 4471: main board replaced" --yes
    check "shows the old and the new key" \
        'grep -q "key in the archive (old)" $tmp/out && grep -q "key the pen presents (new)" $tmp/out'
    check "recorded: who, when, why, the old and the new key, the heads under the old one" \
        '[ "$(q "$A" "SELECT os_user, reason, CAST(at_ms > 0 AS INTEGER), length(old_key), length(new_key), CAST(old_key != new_key AS INTEGER), heads_before FROM key_replacements")" = "$(id -un)|RMA 4471: main board replaced|1|32|32|1|1" ]'
    before=$(q "$A" "SELECT from_seq FROM key_replacements")
    check "the new key's records start where the archive stopped" \
        '[ "$before" = "$(q "$A" "SELECT max(seq) + 1 FROM records")" ]'
    run 2 "the same replacement twice: the new key is already in force" \
        $PL $D keys replace --pen PEN-RMA-1 --reason again --yes
    check "said as such, and nothing shown as if it were another key" \
        'grep -q "presents the device key already in force for it (fingerprint [0-9a-f:]*): nothing to replace" $tmp/err && [ ! -s $tmp/out ]'
    run 0 "the repaired pen is pulled now" $PL $D pull
    check "the archive equals the pen's log, before and after the replacement" \
        'same "$A" PEN-RMA-1 $tmp/rma/ground-truth.jsonl'
    run 0 "verify: the old chain with the old key, the new records with the new one" $PL --archive "$A" verify
    check "verify names the replacement" 'grep -q "device key replaced at seq $before" $tmp/out'
    run 0 "audit --format json (exit 0: the key change is explained)" \
        $PL --archive "$A" audit --format json --report integrity
    check "audit JSON: the replacement, with reason, keys and who" \
        'grep "\"type\":\"key_replacement\"" $tmp/out | grep "\"serial\":\"PEN-RMA-1\"" | grep -q "\"reason\":\"RMA 4471: main board replaced\".*\"old_fingerprint\":\"[0-9a-f:]\{19\}\".*\"new_fingerprint\""'
    check "audit JSON: the key_changed alarm shown, explained, not a compliance finding" \
        'grep "\"finding\":\"key_changed\"" $tmp/out | grep "\"compliance\":false" | grep -q "explained: the new key was recorded"'
    check "audit JSON: the alarm's words whole before the explanation (not cut for a count it has not)" \
        'grep "\"finding\":\"key_changed\"" $tmp/out | grep -q "replaced pen; nothing was pulled \[explained: "'
    run 0 "audit table" $PL --archive "$A" audit --report integrity
    check "the table's integrity report lists the replacement" \
        'grep -A1 "device keys replaced" $tmp/out | grep -q "PEN-RMA-1 .* from seq $before; reason: RMA 4471"'
    run 0 "the HTML report" $PL --archive "$A" audit --format html -o "$tmp/rma.html"
    check "the HTML report lists the replacement, with its reason" \
        'grep -A3 "id=\"key-replacements\"" "$tmp/rma.html" | grep "data-pen=\"PEN-RMA-1\"" | grep -q "RMA 4471: main board replaced"'
    run 0 "the report checks against the archive" $PL --archive "$A" audit --check-report "$tmp/rma.html"
    check "the replacements table is append-only" \
        '! q "$A" "DELETE FROM key_replacements" > /dev/null 2>&1 && [ "$(q "$A" "SELECT count(*) FROM key_replacements")" = 1 ]'
    # a key change nobody recorded still fails, and so does the old board back
    stop_sim rma
    cp "$tmp/rma/device.key" "$K/rma-new.key"
    rm "$tmp/rma/device.key"
    start_sim rma --simulate-days 1 --start-time $T0
    run 6 "an unrecorded key change still fails the pull" $PL $D pull
    stop_sim rma
    cp "$K/rma-old.key" "$tmp/rma/device.key"
    start_sim rma
    run 6 "the replaced key coming back is refused" $PL $D pull
    check "the error says it was replaced" 'grep -q "which was replaced on" $tmp/err'
    check "and to keep the pen apart, not to record it (keys replace would refuse it)" \
        'grep -q "keep this pen apart and report it" $tmp/err && ! grep -q "keys replace --pen SERIAL" $tmp/err'
    run 6 "and cannot be recorded as a replacement" \
        $PL $D keys replace --pen PEN-RMA-1 --reason "the old board" --yes
    check "a replaced key is never taken back" 'grep -q "never taken back" $tmp/err'
    # a pen whose log was reset (a new flash) is no repaired pen
    stop_sim rma
    mv "$tmp/rma" "$tmp/rma-kept"
    start_sim rma --serial PEN-RMA-1 --simulate-days 1 --start-time $T0
    run 6 "keys replace refuses a pen whose log was reset" \
        $PL $D keys replace --pen PEN-RMA-1 --reason "a new board" --yes
    check "saying so" 'grep -q "its log was reset, or it is another pen" $tmp/err'
    check "nothing recorded" '[ "$(q "$A" "SELECT count(*) FROM key_replacements")" = 1 ]'
    run 0 "verify still passes" $PL --archive "$A" verify
    # archive push carries the replacement: the heads after it verify there too
    B=$(archive rma-pushed)
    run 0 "archive push of the repaired pen's archive" $PL --archive "$A" --json archive push --to "$B"
    check "the push reports the replacement" 'grep -q "\"key_replacements\":1" $tmp/out'
    check "the destination holds it, with its heads before" \
        '[ "$(q "$B" "SELECT reason, heads_before FROM key_replacements")" = "RMA 4471: main board replaced|1" ]'
    run 0 "verify of the destination: old key, then new" $PL --archive "$B" verify
    check "naming the replacement" 'grep -q "device key replaced at seq $before" $tmp/out'
    run 0 "pushed again: nothing new" $PL --archive "$A" --json archive push --to "$B"
    check "the replacement is not stored twice" '[ "$(q "$B" "SELECT count(*) FROM key_replacements")" = 1 ]'
    edit "$A" "UPDATE key_replacements SET old_key = new_key"
    run 6 "verify: a replacement record edited is found" $PL --archive "$A" verify
    check "verify says so" 'grep -q "names an old key that was not the pen.s key in force" $tmp/out'
    ;;

wrong_key)
    $PL keys generate "$K/tech.key" > /dev/null && $PL keys generate "$K/other.key" > /dev/null || exit 1
    fp=$($PL keys show "$K/tech.key.pub" | sed -n 's/^fingerprint //p')
    start_sim wk --serial PEN-WK-1 --simulate-days 1 --start-time $T0 --config-key "$K/tech.key.pub"
    A=$(archive wk)
    D="--device sim:$tmp/wk.sock --archive $A"
    run 9 "a key the pen does not accept: refused by penlink (exit 9)" \
        $PL $D config set --key "$K/other.key" depth_max_um=2500
    check "names the pen's keys by fingerprint and says nothing was sent" \
        'grep -q "it accepts $fp. Nothing was sent" $tmp/err'
    run 9 "--json: the same refusal" $PL $D --json config set --key "$K/other.key" depth_max_um=2500
    check "as a JSON error with exit_code 9" 'grep -q "\"exit_code\":9" $tmp/err'
    run 9 "no key and no default technician key: exit 9" $PL $D config set depth_max_um=2500
    check "the message says where the default key lives" 'grep -q "technician.key" $tmp/err'
    run 0 "pull" $PL $D pull
    run 0 "export" $PL --archive "$A" export records --format csv
    check "the pen saw none of them: no security_event logged" '! grep -q security_event $tmp/out'
    mkdir -p "$XDG_CONFIG_HOME/penlink"
    cp "$K/other.key" "$XDG_CONFIG_HOME/penlink/technician.key"
    run 9 "a default key the pen does not accept: refused too" $PL $D config set depth_max_um=2500
    check "saying it is the default key" 'grep -q "the default technician key" $tmp/err'
    cp "$K/tech.key" "$XDG_CONFIG_HOME/penlink/technician.key"
    run 0 "the default technician key signs when the pen requires it" $PL $D config set depth_max_um=2500
    check "and penlink says so" 'grep -q "signing with the default technician key .*technician.key (fingerprint $fp)" $tmp/err'
    run 0 "config get" $PL $D config get depth_max_um
    check "the change is in force" '[ "$(cat $tmp/out)" = 2500 ]'
    ;;

config_files)
    start_sim a --serial PEN-CFG-A --simulate-days 1 --start-time $T0
    start_sim b --serial PEN-CFG-B --simulate-days 1 --start-time $T0
    DA="--device sim:$tmp/a.sock" DB="--device sim:$tmp/b.sock"
    run 0 "pen A: label, clinic and a setting" $PL $DA config set device_label="Room 2" clinic_id=CLINIC-A max_treatment_s=2700
    run 0 "pen B: its own label and clinic" $PL $DB config set device_label="Room 5" clinic_id=CLINIC-B
    run 0 "export pen A" $PL $DA config export "$tmp/room2.json"
    check "the export names its pen" '[ "$(jq_ "d[\"serial\"]" $tmp/room2.json)" = PEN-CFG-A ]'
    rev_b=$($PL $DB --json config get | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
    run 2 "import of pen A's file onto pen B: refused" $PL $DB config import "$tmp/room2.json"
    check "says whose file it is, and --template" \
        'grep -q "exported from pen PEN-CFG-A, not from this pen (PEN-CFG-B)" $tmp/err && grep -q -- "--template" $tmp/err'
    run 2 "--force does not make it pen B's" $PL $DB config import --force "$tmp/room2.json"
    run 2 "--dry-run is refused the same way" $PL $DB config import --dry-run "$tmp/room2.json"
    check "pen B unchanged" \
        '[ "$($PL $DB --json config get | "$PY" -c "import json,sys; print(json.load(sys.stdin)[\"revision\"])")" = "$rev_b" ]'
    "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); del d["serial"], d["revision"]; json.dump(d, open(sys.argv[2], "w"))' \
        "$tmp/room2.json" "$tmp/nopen.json"
    run 2 "a file naming no pen is not taken as pen B's own (--dry-run)" $PL $DB config import --dry-run "$tmp/nopen.json"
    check "says it names no pen, and --template" \
        'grep -q "nopen.json names no pen (it has no \"serial\"" $tmp/err && grep -q "add --template" $tmp/err && [ ! -s $tmp/out ]'
    run 2 "nor with --force" $PL $DB config import --force "$tmp/nopen.json"
    run 2 "--force and --template together: a usage error" $PL $DB config import --template --force "$tmp/room2.json"
    run 2 "config set: a key given twice is refused" $PL $DB config set max_treatment_s=2000 max_treatment_s=1000
    check "saying which" 'grep -q "max_treatment_s is given twice" $tmp/err'
    run 2 "config set: a number with a space before it is refused" $PL $DB config set "max_treatment_s= 2000"
    run 2 "config set: a number with a + is refused" $PL $DB config set max_treatment_s=+2000
    run 2 "config set: a number with a leading zero is refused (JSON has none)" $PL $DB config set auto_off_s=0600
    check "saying why" 'grep -q "auto_off_s: .0600. has a leading zero" $tmp/err'
    $PL $DB config set --dry-run auto_off_s=0 > /dev/null 2> "$tmp/err"
    check "config set: 0 itself has no leading zero" '! grep -q "leading zero" $tmp/err'
    check "pen B unchanged by all of them" \
        '[ "$($PL $DB --json config get | "$PY" -c "import json,sys; print(json.load(sys.stdin)[\"revision\"])")" = "$rev_b" ]'
    run 0 "a file naming no pen is taken with --template" $PL $DB config import --template --dry-run "$tmp/nopen.json"
    check "settings only" 'grep -q "device_label and clinic_id are not copied" $tmp/out && grep -q "max_treatment_s" $tmp/out'
    run 0 "import --template onto pen B" $PL $DB config import --template "$tmp/room2.json"
    check "says the identity fields are not copied" 'grep -q "device_label and clinic_id are not copied" $tmp/out'
    $PL $DB --json config get > "$tmp/b.json"
    check "pen B took the settings" '[ "$(jq_ "d[\"max_treatment_s\"]" $tmp/b.json)" = 2700 ]'
    check "and kept its label and clinic" \
        '[ "$(jq_ "d[\"device_label\"], d[\"clinic_id\"]" $tmp/b.json)" = "Room 5 CLINIC-B" ]'
    run 0 "pen A's own file goes back onto pen A" $PL $DA config import "$tmp/room2.json"
    check "nothing to change" 'grep -q "nothing to change" $tmp/out'
    ;;

stopped_pull)
    start_sim u --serial PEN-UNPLUG --simulate-days 60 --start-time $T0 --unplug-after-frames 40
    A=$(archive u)
    D="--device sim:$tmp/u.sock --archive $A"
    $PL $D --json info > "$tmp/info.json"
    next=$(jq_ 'd["log_next_seq"]' "$tmp/info.json")
    run 2 "pull --no-ack without -o: a usage error (exit 2)" $PL $D pull --no-ack
    check "saying to add -o FILE, and that nothing was sent" \
        'grep -q "add -o FILE to keep the records on the pen, or leave out --no-ack; nothing was sent" $tmp/err'
    check "nothing said on stdout, nothing archived" '[ ! -s $tmp/out ] && [ ! -s "$A" ]'
    run 3 "the pen unplugged mid-pull (exit 3)" $PL $D pull
    kept=$(q "$A" "SELECT count(*) FROM records")
    check "some records kept, not all" '[ "$kept" -gt 0 ] && [ "$kept" -lt "$next" ]'
    check "says where it stopped" 'grep -q "^PEN-UNPLUG: pull stopped at seq $kept\.$" $tmp/err'
    check "says what is kept and that it was not acknowledged" \
        'grep -q "kept:       $kept new records (seq 0\.\.$((kept - 1))) in the archive, NOT acknowledged: the pen keeps them too" $tmp/err'
    check "says how many remain on the pen" \
        'grep -q "on the pen: $((next - kept)) more records (seq $kept\.\.$((next - 1))), not yet pulled" $tmp/err'
    check "says that pull again resumes" \
        'grep -q "run .penlink pull. again when the pen answers: it resumes at seq $kept" $tmp/err'
    check "nothing said on stdout that could read as done" '[ ! -s $tmp/out ]'
    $PL $D --json info > "$tmp/info.json"
    check "the pen acknowledged nothing" '[ "$(jq_ "d[\"log_acked_seq\"]" $tmp/info.json)" = 0 ]'
    run 0 "pull again" $PL $D pull
    check "it resumed where it stopped" 'grep -q "new records (seq $kept\.\." $tmp/out'
    check "the archive equals the pen's log" 'same "$A" PEN-UNPLUG $tmp/u/ground-truth.jsonl'
    # a pen that stops answering mid-pull
    start_sim h --serial PEN-HUNG --simulate-days 60 --start-time $T0 --hang-after-frames 40
    HA=$(archive h)
    H="--device sim:$tmp/h.sock --archive $HA --timeout 300"
    run 5 "a pen that hangs mid-pull (exit 5)" $PL $H pull
    check "each wait in vain is said as it happens" \
        '[ "$(grep -c "the pen sent nothing for 300 ms at seq [0-9]*; asking again from seq [0-9]* (retry [1-3] of 3)" $tmp/err)" = 3 ]'
    check "the error says the pen may be hung and to replug it" \
        'grep -q "asked again 3 times in vain; the pen may be hung: unplug it and plug it in again (or switch it off and on)" $tmp/err'
    check "and where things stand" 'grep -q "NOT acknowledged" $tmp/err && grep -q "it resumes at seq" $tmp/err'
    hkept=$(q "$HA" "SELECT count(*) FROM records")
    check "one seq to resume at: the summary's, what the archive holds (the error names no other)" \
        'grep -q "pull stopped at seq $hkept\.$" $tmp/err && grep -q "it resumes at seq $hkept;" $tmp/err && ! grep -q "stay on the pen" $tmp/err'
    check "records received but not kept are said as such, not as kept" \
        'grep -q "kept:       $hkept new records" $tmp/err && grep -q "^penlink: pull PEN-HUNG: stopped: received [0-9]* of [0-9]* records (.*), kept $hkept$" $tmp/err'
    # the same with --json: one retry count, in the notices and the result
    start_sim h2 --serial PEN-HUNG --simulate-days 60 --start-time $T0 --hang-after-frames 40
    run 5 "--json: a pen that hangs mid-pull" $PL --device "sim:$tmp/h2.sock" --archive "$(archive h2)" --timeout 300 --json pull
    check "--json: the result's retries are the notices said" \
        '[ "$(grep -c "\"event\":\"notice\".*asking again" $tmp/err)" = "$(jq_ "d[\"retries\"]" $tmp/out)" ] && [ "$(jq_ "d[\"retries\"]" $tmp/out)" = 3 ]'
    # a pen that takes the acknowledgement and never answers it: it may have
    # erased those records, so penlink must not say the pen keeps them
    start_sim ak1 --serial PEN-ACK --simulate-days 3 --start-time $T0
    frames=$($PL -v --device "sim:$tmp/ak1.sock" --archive "$(archive ak1)" pull 2>&1 | grep -c "pen->host")
    m=$(wc -l < "$tmp/ak1/ground-truth.jsonl")
    start_sim ak2 --serial PEN-ACK --simulate-days 3 --start-time $T0 --hang-after-frames $((frames - 1))
    run 5 "a pen silent after the acknowledgement: exit 5, as for any pen that stops answering" \
        $PL --device "sim:$tmp/ak2.sock" --archive "$(archive ak2)" --timeout 300 pull
    check "says the acknowledgement was sent and not confirmed: the pen may have erased them, they are archived" \
        'grep -q "^PEN-ACK: pull stopped at the acknowledgement\.$" $tmp/err && grep -q "kept:       $m new records (seq 0\.\.$((m - 1))) in the archive$" $tmp/err && grep -q "ack:        sent through seq $((m - 1)), but NOT confirmed: .* may have erased those records (they are archived)" $tmp/err'
    check "and not that the pen keeps them" '! grep -q "NOT acknowledged" $tmp/err'
    $PL --device "sim:$tmp/ak2.sock" --json info > "$tmp/info.json"
    check "info shows what the summary says to look for: the pen took it" \
        '[ "$(jq_ "d[\"log_acked_seq\"]" $tmp/info.json)" = "$m" ] && grep -q "acknowledged below seq $m" $tmp/err'
    # Ctrl-C while a hung pen is asked again: what was kept, the one seq to resume at
    start_sim i --serial PEN-INT --simulate-days 60 --start-time $T0 --hang-after-frames 40
    IA=$(archive i)
    $PL --device "sim:$tmp/i.sock" --archive "$IA" --timeout 60000 pull > "$tmp/out" 2> "$tmp/err" &
    pl_pid=$!
    i=0
    while ! grep -q "hung after" "$tmp/i.log" && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
    sleep 0.5
    kill -INT $pl_pid
    wait $pl_pid
    rc=$?
    ikept=$(q "$IA" "SELECT count(*) FROM records")
    check "Ctrl-C mid-pull: exit 130" '[ $rc = 130 ]'
    check "and the summary: kept, on the pen, next (no pen to wait for)" \
        'grep -q "^PEN-INT: pull stopped at seq $ikept\.$" $tmp/err && grep -q "^  kept:       $ikept new records" $tmp/err && grep -q "^  on the pen: [0-9]* more records (seq $ikept\.\." $tmp/err && grep -q "^  next:       run .penlink pull. again: it resumes at seq $ikept; nothing is lost$" $tmp/err'
    # Ctrl-C before any record was asked for: the summary all the same
    start_sim e --serial PEN-EARLY --simulate-days 1 --start-time $T0 --hang-after-frames 2 -v
    $PL --device "sim:$tmp/e.sock" --archive "$(archive e)" --timeout 60000 pull > "$tmp/out" 2> "$tmp/err" &
    pl_pid=$!
    i=0
    while ! grep -q "hung after" "$tmp/e.log" && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
    kill -INT $pl_pid
    wait $pl_pid
    rc=$?
    enext=$(wc -l < "$tmp/e/ground-truth.jsonl")
    check "Ctrl-C while the pull starts: exit 130" '[ $rc = 130 ]'
    check "and the stopped pull's summary: kept, on the pen, next" \
        'grep -q "^PEN-EARLY: pull stopped before any record was asked for\.$" $tmp/err && grep -q "^  kept:       no new record$" $tmp/err && grep -q "^  on the pen: $enext records not yet acknowledged (seq 0\.\.$((enext - 1)))$" $tmp/err && grep -q "^  next:       run .penlink pull. again" $tmp/err'
    # a pen that hangs right after Hello
    start_sim g --serial PEN-MUTE --simulate-days 1 --start-time $T0 --hang-after-frames 1
    run 5 "a pen that answers nothing after Hello (exit 5)" $PL --device "sim:$tmp/g.sock" --timeout 300 info
    check "the waits are said" \
        'grep -q "PEN-MUTE: the pen has not answered get_info for 0.3 s; asking again (try 2 of 3)" $tmp/err'
    check "and what to do" 'grep -q "it may be hung. Unplug it and plug it in again" $tmp/err'
    ;;

progress)
    start_sim p --serial PEN-PROG --simulate-days 60 --start-time $T0 --hang-after-frames 60
    $PL --device "sim:$tmp/p.sock" --json info > "$tmp/info.json"
    total=$(jq_ 'd["log_next_seq"] - d["log_first_seq"]' "$tmp/info.json")
    PA=$(archive p)
    "$PY" "$here/pty_stderr.py" "$tmp/tty.json" -- $PL --device "sim:$tmp/p.sock" \
        --archive "$PA" --timeout 500 pull
    jq_ '"\n".join(d["lines"])' "$tmp/tty.json" > "$tmp/tty.txt"
    check "terminal: the pull stopped on the hung pen (exit 5)" '[ "$(jq_ "d[\"rc\"]" $tmp/tty.json)" = 5 ]'
    twice_a_second() {
        "$PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(not (d["tick_span_s"] > 1 and d["ticks"] - 1 >= 2 * d["tick_span_s"]))' "$tmp/tty.json"
    }
    check "terminal: the line is redrawn at least twice a second (by itself, not only at notices)" \
        twice_a_second
    check "terminal: records against the pen's announced total, and bytes against its total" \
        'grep -q "^\[[#.]\{16\}\] [0-9]*/$total records [0-9.]* [kM]\?B/[0-9.]* [kM]\?B " $tmp/tty.txt'
    check "terminal: the rate and the time left" 'grep -q "[0-9]* rec/s, [<0-9]* s left" $tmp/tty.txt'
    check "terminal: while the pen is silent, for how long" \
        'grep -q "no data from the pen for [0-9.]* s$" $tmp/tty.txt'
    pkept=$(q "$PA" "SELECT count(*) FROM records")
    check "terminal: the last line is what came and what was kept" \
        'grep "^\[" $tmp/tty.txt | tail -n 1 | grep -q "records .* stopped, $pkept kept$"'
    never_back() {
        "$PY" -c '
import re, sys
n = [int(m.group(1)) for m in (re.match(r"\[[#.]*\] ([0-9]+)/", l) for l in open(sys.argv[1])) if m]
assert n and all(a <= b for a, b in zip(n, n[1:])), n
' "$tmp/tty.txt"
    }
    check "terminal: the count never goes back" never_back
    never_back_work() {
        "$PY" -c '
import re, sys
n = [int(m.group(1)) for m in (re.match(r"\[[#.]*\] [a-z]+ [^:]*: ([0-9]+)", l) for l in open(sys.argv[1])) if m]
assert n and all(a <= b for a, b in zip(n, n[1:])), n
' "$tmp/tty.txt"
    }
    check "terminal: no time left shown while the pen is silent" \
        '! grep "no data from the pen\|waiting for the pen" $tmp/tty.txt | grep -q "left"'
    # the same pen's pull as JSON events
    start_sim p2 --serial PEN-PROG --simulate-days 60 --start-time $T0 --hang-after-frames 60
    P2A=$(archive p2)
    run 5 "--json: the pull of a pen that hangs" $PL --device "sim:$tmp/p2.sock" --archive "$P2A" --timeout 500 --json pull
    stalled_events() {
        "$PY" -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"event\":\"progress\"")]
n = [e["records"] for e in ev]
assert all(a <= b for a, b in zip(n, n[1:])), ("records went back", n)
last = ev[-1]
assert last["done"] and not last["ok"] and last["kept"] == int(sys.argv[2]), last
assert last["records"] >= last["kept"], last
silent = [e for e in ev if "silent_s" in e]
assert silent, "no event while the pen was silent"
assert not [e for e in silent if "left_s" in e], ("a time left while the pen is silent", silent)
for a, b in zip(ev, ev[1:]):  # the time left does not grow while nothing comes
    if a["records"] == b["records"] and "left_s" in a and "left_s" in b:
        assert b["left_s"] <= a["left_s"], (a, b)
' "$tmp/err" "$(q "$P2A" "SELECT count(*) FROM records")"
    }
    check "--json: records never go back, the last event says what was kept, no time left while the pen is silent" \
        stalled_events
    check "terminal: nothing of it on stdout" '[ -z "$(jq_ "d[\"stdout\"]" $tmp/tty.json)" ]'
    # one pen per way of showing it: a pull acknowledges, the next would find nothing
    for n in 1 2 3; do start_sim q$n --serial PEN-PROG-2 --simulate-days 60 --start-time $T0; done
    $PL --device "sim:$tmp/q1.sock" --json info > "$tmp/info.json"
    total=$(jq_ 'd["log_next_seq"] - d["log_first_seq"]' "$tmp/info.json")
    Q="--device sim:$tmp/q1.sock"
    QA=$(archive q1)
    run 0 "a log (stderr not a terminal)" $PL $Q --archive "$QA" pull
    check "log: the announced total at the start" \
        'grep -q "^penlink: pull PEN-PROG-2: the pen announces $total new records (about [0-9.]* [kM]\?B)$" $tmp/err'
    check "log: what was kept at the end" 'grep -q "^penlink: pull PEN-PROG-2: done: $total of $total records kept" $tmp/err'
    check "log: stdout keeps the summary only" '[ "$(wc -l < $tmp/out)" = 1 ] && ! grep -q "$(printf "\r")" $tmp/out'
    Q="--device sim:$tmp/q2.sock"
    run 0 "--json" $PL $Q --json --archive "$(archive q2)" pull
    json_events() {
        "$PY" -c '
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
assert ev and all(e["event"] == "progress" and e["serial"] == "PEN-PROG-2" for e in ev), ev
assert all(e["records_total"] == int(sys.argv[2]) and e["bytes_total"] > 0 for e in ev), ev
assert ev[0]["records"] == 0 and ev[0]["done"] is False, ev[0]
assert ev[-1]["done"] is True and ev[-1]["ok"] is True and ev[-1]["records"] == int(sys.argv[2]), ev[-1]
' "$tmp/err" "$total"
    }
    check "--json: every stderr line is a JSON progress event, totals as announced, the last done" \
        json_events
    check "--json: stdout is the one summary object" \
        '[ "$(wc -l < $tmp/out)" = 1 ] && [ "$(jq_ "d[\"records\"]" $tmp/out)" = "$total" ]'
    Q="--device sim:$tmp/q3.sock"
    run 0 "--quiet" $PL $Q --quiet --archive "$(archive q3)" pull
    check "--quiet: nothing at all" '[ ! -s $tmp/err ] && [ ! -s $tmp/out ]'
    # the archive's long work on a terminal: a bar per pen, as the pull's; in a log nothing
    for w in verify audit export push; do
        case $w in
        verify) args="verify" ;;
        audit) args="audit --format json -o $tmp/audit.json" ;;
        export) args="export records -o $tmp/records.csv" ;;
        push) args="archive push --to $(archive q1push)" ;;
        esac
        "$PY" "$here/pty_stderr.py" "$tmp/tty.json" -- $PL --archive "$QA" $args
        jq_ '"\n".join(d["lines"])' "$tmp/tty.json" > "$tmp/tty.txt"
        check "terminal: $w ends well (exit 0)" '[ "$(jq_ "d[\"rc\"]" $tmp/tty.json)" = 0 ]'
        check "terminal: $w draws the pen's bar, records against the records expected" \
            'grep -q "^\[[#.]\{16\}\] $w PEN-PROG-2: [0-9]*/\?[0-9]* records" $tmp/tty.txt'
        check "terminal: $w's count never goes back" never_back_work
        run 0 "$w in a log" $PL --archive "$QA" $args
        check "log: $w prints no progress" '[ ! -s $tmp/err ]'
    done
    ;;

desk)
    start_sim d --serial PEN-DESK --simulate-days 1 --start-time $T0
    D="--device sim:$tmp/d.sock"
    run 0 "identify" $PL $D identify --seconds 7
    check "says which pen signals, and how long" 'grep -q "^PEN-DESK (penlink MN-1) is blinking and beeping for 7 s$" $tmp/out'
    check "the pen signalled (the simulator logs it)" 'grep -q "identify: pen PEN-DESK blinks and beeps for 7 s" $tmp/d.log'
    run 0 "identify --stop" $PL $D identify --stop
    check "the pen stopped" 'grep -q "identify: pen PEN-DESK stops signalling" $tmp/d.log'
    run 2 "identify --seconds beyond 60: a usage error" $PL $D identify --seconds 61
    run 0 "identify --json" $PL $D --json identify
    check "json: serial and the seconds the pen granted" '[ "$(jq_ "d[\"serial\"], d[\"seconds\"]" $tmp/out)" = "PEN-DESK 10" ]'
    $PL $D config set device_label="Room 3" > /dev/null
    run 0 "list --json" $PL $D --json list
    check "list: label, model and firmware of the pen" \
        '[ "$(jq_ "d[\"serial\"], d[\"label\"], d[\"model\"], d[\"firmware\"]" $tmp/out)" = "PEN-DESK Room 3 penlink MN-1 0.1.0-sim" ]'
    run 0 "list" $PL $D list
    check "list: the columns" 'grep -q "^PORT  *SERIAL  *LABEL  *MODEL  *FIRMWARE  *STATUS$" $tmp/out && grep -q "PEN-DESK  *Room 3  *penlink MN-1" $tmp/out'
    $PL $D config set device_label="Treatment room 3, left cabinet" > /dev/null
    run 0 "list: a long label and a sim: port" $PL $D list
    aligned() {
        "$PY" -c '
import sys
head, row = open(sys.argv[1]).read().splitlines()[:2]
cols = ["PORT", "SERIAL", "LABEL", "MODEL", "FIRMWARE", "STATUS"]
at = [head.index(c) for c in cols]
cells = [sys.argv[2], "PEN-DESK", "Treatment room 3, left cabinet", "penlink MN-1", "0.1.0-sim", "ok"]
for c, a, v in zip(cols, at, cells):
    assert row[a:a + len(v)] == v and (a == 0 or row[a - 1] == " "), (c, head, row)
' "$tmp/out" "sim:$tmp/d.sock"
    }
    check "list: every cell under its heading" aligned
    ;;

clock)
    $PL keys generate "$K/tech.key" > /dev/null && $PL keys generate "$K/other.key" > /dev/null || exit 1
    start_sim c --serial PEN-CLK-1
    A=$(archive c)
    C="--device sim:$tmp/c.sock --archive $A"
    run 0 "clock sync of a pen on time" $PL $C clock sync
    check "reports the drift and changes nothing" \
        'grep -q "^PEN-CLK-1: clock [0-9.]* s \(ahead of\|behind\) this computer.s, within 1.000 s: left as it is (no clock_set logged)$" $tmp/out'
    run 0 "--json" $PL $C --json clock sync
    check "json: set false, the drift, the threshold" '[ "$(jq_ "d[\"set\"], d[\"threshold_ms\"]" $tmp/out)" = "False 1000" ]'
    run 0 "pull" $PL $C pull
    run 0 "export" $PL --archive "$A" export records --format csv
    check "no clock_set logged by the two syncs" '! grep -q clock_set $tmp/out'
    start_sim c2 --serial PEN-CLK-2 --clock-offset-ms 5000
    C2="--device sim:$tmp/c2.sock"
    run 0 "a threshold above the drift leaves it" $PL $C2 clock sync --threshold 6000
    check "left as it is" 'grep -q "left as it is" $tmp/out'
    run 0 "a drift of 5 s is corrected" $PL $C2 clock sync
    check "says by how much" 'grep -q "^PEN-CLK-2: pen clock was [45]\.[0-9]* s ahead; set to " $tmp/out'
    run 2 "--threshold takes milliseconds" $PL $C2 clock sync --threshold 1s
    # a pen whose records are stamped after this computer's clock: not moved back over them
    FUT=1893456000000 # 2030-01-01T00:00:00Z
    start_sim cfut --serial PEN-CLK-FUT --simulate-days 1 --start-time $FUT
    run 2 "a computer clock before the pen's newest record: refused (exit 2)" \
        $PL --device "sim:$tmp/cfut.sock" clock sync
    check "saying which clock is probably wrong, and that nothing was sent" \
        'grep -q "this computer.s clock says 20[0-9-]*T.*, before pen PEN-CLK-FUT.s newest record (2030-01-01T.*This computer.s clock is probably wrong: set it right (NTP) and sync again. Nothing was sent" $tmp/err'
    check "the pen's clock not moved back" \
        '[ "$($PL --device "sim:$tmp/cfut.sock" --json info | "$PY" -c "import json,sys; print(json.load(sys.stdin)[\"device_time_ms\"])")" -gt $FUT ]'
    run 0 "--force sets it all the same, with a warning" $PL --device "sim:$tmp/cfut.sock" clock sync --force
    check "warned" 'grep -q "is before pen PEN-CLK-FUT.s newest record .*set anyway (--force)" $tmp/err'
    # a pen that takes only signed configuration takes only a signed clock
    start_sim cs --serial PEN-CLK-S --clock-offset-ms -7000 --config-key "$K/tech.key.pub"
    S=$(archive cs)
    CS="--device sim:$tmp/cs.sock --archive $S"
    run 0 "info" $PL $CS info
    check "info says the clock needs a signature" 'grep -q "^clock signing     required" $tmp/out'
    run 9 "clock sync without a key: refused by penlink (exit 9)" $PL $CS clock sync
    run 9 "clock sync with a key the pen does not accept (exit 9)" $PL $CS clock sync --key "$K/other.key"
    check "names the pen's keys by fingerprint" 'grep -q "it accepts [0-9a-f:]\{19\}. Nothing was sent" $tmp/err'
    mkdir -p "$XDG_CONFIG_HOME/penlink"
    cp "$K/tech.key" "$XDG_CONFIG_HOME/penlink/technician.key"
    run 0 "clock sync with the default technician key" $PL $CS clock sync
    check "signed, and said so" 'grep -q "set to .* (signed)$" $tmp/out && grep -q "signing with the default technician key" $tmp/err'
    # what only the pen can refuse: an unsigned and a replayed SetClock
    pen_client "$tmp/cs.sock" '
try:
    c.set_clock(1767225600000)
    print("applied")
except pl.PenError as e:
    print("refused", e.code)
' > "$tmp/py.out" 2>&1
    check "an unsigned SetClock from another client: refused by the pen (AUTH_REQUIRED)" 'grep -q "refused 12" $tmp/py.out'
    run 0 "pull" $PL $CS pull
    run 0 "export" $PL --archive "$S" export records --format csv
    check "the signed setting logged a clock_set" 'grep -q clock_set $tmp/out'
    check "the refusal logged a security_event with code 268 (AUTH_REQUIRED + 256)" \
        'grep security_event $tmp/out | grep -q ",268,"'
    run 1 "the audit reports it (exit 1)" $PL --archive "$S" audit --report integrity
    check "as a refused clock setting" 'grep "config_refused" $tmp/out | grep -q "refused a clock setting: not signed (error 12)"'
    ;;

clock_host)
    # a computer whose clock is wrong (faketime: not under the sanitizers or
    # valgrind, whose runtimes it deadlocks): not copied to the pen
    start_sim cf --serial PEN-CLK-F --simulate-days 1 --start-time $T0
    CF="--device sim:$tmp/cf.sock --archive $(archive cf)"
    pen_time() { $PL $CF --json info | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["device_time_ms"])'; }
    run 2 "a computer clock in 2019, before the pen's newest record: refused" faketime "2019-01-01 00:00:00" $PL $CF clock sync
    check "saying the computer's clock is probably wrong, nothing sent" \
        'grep -q "this computer.s clock says 2019-01-01T.*, before pen PEN-CLK-F.s newest record (2026-.*This computer.s clock is probably wrong.*Nothing was sent" $tmp/err'
    check "the pen's clock not moved back" '[ "$(pen_time)" -gt $T0 ]'
    run 0 "pull (the pen erases its log)" $PL $CF pull
    run 2 "a pen with an empty log, a computer clock before this penlink was built: refused" \
        faketime "2019-01-01 00:00:00" $PL $CF clock sync
    check "saying so" 'grep -q "before this penlink was built (20[0-9-]*): it is wrong" $tmp/err'
    check "the pen's clock not moved back" '[ "$(pen_time)" -gt $T0 ]'
    run 4 "a computer clock in 2101: the pen refuses it (exit 4)" faketime "2101-01-01 00:00:00" $PL $CF clock sync
    check "and penlink says the computer's clock may be wrong" \
        'grep -q "This computer.s clock says 2101-01-01T.*: if that is wrong, set it right (NTP)" $tmp/err'
    run 0 "--force sets the pen to a clock before this penlink's build, with a warning" \
        faketime "2019-01-01 00:00:00" $PL $CF clock sync --force
    check "warned" 'grep -q "set anyway (--force)" $tmp/err'
    ;;

*)
    echo "unknown situation $what"
    exit 2
    ;;
esac
finish
