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
#   clock         no clock_set below the threshold; a signed clock setting
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
    H="--device sim:$tmp/h.sock --archive $(archive h) --timeout 300"
    run 5 "a pen that hangs mid-pull (exit 5)" $PL $H pull
    check "each wait in vain is said as it happens" \
        '[ "$(grep -c "the pen sent nothing for 300 ms at seq [0-9]*; asking again from seq [0-9]* (retry [1-4] of 4)" $tmp/err)" = 4 ]'
    check "the error says the pen may be hung and to replug it" \
        'grep -q "the pen may be hung: unplug it and plug it in again (or switch it off and on)" $tmp/err'
    check "and where things stand" 'grep -q "NOT acknowledged" $tmp/err && grep -q "it resumes at seq" $tmp/err'
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
    "$PY" "$here/pty_stderr.py" "$tmp/tty.json" -- $PL --device "sim:$tmp/p.sock" \
        --archive "$(archive p)" --timeout 500 pull
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
    check "terminal: the last line is what was kept" 'grep -q "records .* stopped$" $tmp/tty.txt'
    check "terminal: nothing of it on stdout" '[ -z "$(jq_ "d[\"stdout\"]" $tmp/tty.json)" ]'
    # one pen per way of showing it: a pull acknowledges, the next would find nothing
    for n in 1 2 3; do start_sim q$n --serial PEN-PROG-2 --simulate-days 60 --start-time $T0; done
    $PL --device "sim:$tmp/q1.sock" --json info > "$tmp/info.json"
    total=$(jq_ 'd["log_next_seq"] - d["log_first_seq"]' "$tmp/info.json")
    Q="--device sim:$tmp/q1.sock"
    run 0 "a log (stderr not a terminal)" $PL $Q --archive "$(archive q1)" pull
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

*)
    echo "unknown situation $what"
    exit 2
    ;;
esac
finish
