#!/bin/sh
# Files that belong to one pen. `pull -o FILE` refuses a file of another pen
# (another serial, or the same serial with another device key) and a file
# written before .plog files named their pen, touching neither the file nor
# the pen (defect 12.2); `decode` names the pen of a file. `watch --dir`
# names files after serials only when a serial is a safe file name, and
# never writes outside DIR (defect 12.4).
# Usage: test_pen_files.sh PENLINK PENLINK_SIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"

acked() { # name: the pen's log_acked_seq
    $PL --device "sim:$tmp/$1.sock" --json info > "$tmp/acked.json" && jget "$tmp/acked.json" log_acked_seq
}
records() { # file: the records a decode of it prints (JSON lines that carry a seq)
    $PL --json decode "$1" | python3 -c '
import json, sys
print(sum(1 for l in sys.stdin if "seq" in json.loads(l)))'
}

start_sim a --serial PEN-A001 --seed 21 --simulate-days 2 --start-time $T0
start_sim b --serial PEN-B002 --seed 22 --simulate-days 6 --start-time $T0
A="--device sim:$tmp/a.sock"
B="--device sim:$tmp/b.sock"
f=$tmp/one.plog

# ---- a new file names its pen; decode says whose log it is ----------------
run 0 "pull pen A into a new file" $PL $A pull -o "$f"
$PL $A --json info > "$tmp/ainfo.json"
run 0 "decode the file (text)" $PL decode "$f"
check "decode names the pen first (text)" 'head -1 $tmp/out | grep -q "^# pen PEN-A001"'
check "and its device key" "head -1 \$tmp/out | grep -q \"$(jget "$tmp/ainfo.json" device_key)\""
run 0 "decode the file (json)" $PL --json decode "$f"
python3 - "$tmp/out" "$tmp/ainfo.json" 2> /dev/null << 'PY' && ok "decode --json: a header line names the pen and its key" || bad "decode --json header"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
info = json.load(open(sys.argv[2]))
h = lines[0]["header"]
assert h["serial"] == "PEN-A001", h
assert h["device_key"] == info["device_key"], (h, info["device_key"])
assert all("seq" in l for l in lines[1:]), "only the first line is the header"
PY
check "every record of pen A is in the file" \
    '[ "$(records $f)" -eq "$(wc -l < $tmp/a/ground-truth.jsonl)" ]'

# ---- another pen's file: refused, nothing touched, nothing acknowledged ----
sum_a=$(cksum < "$f")
check "pen B has nothing acknowledged yet" '[ "$(acked b)" -eq 0 ]'
run 6 "pull pen B into pen A's file is refused" $PL $B pull -o "$f"
check "the refusal says whose file it is" 'grep -q "holds the log of pen PEN-A001, not of pen PEN-B002" $tmp/err'
check "pen A's file is untouched" '[ "$(cksum < $f)" = "$sum_a" ]'
check "pen B: still nothing acknowledged" '[ "$(acked b)" -eq 0 ]'
run 6 "the same with --json" $PL $B --json pull -o "$f"
check "the JSON error carries exit code 6" \
    'python3 -c "import json,sys; assert json.load(open(sys.argv[1]))[\"exit_code\"] == 6" $tmp/err 2> /dev/null'
run 0 "pen B into its own file" $PL $B pull -o "$tmp/b.plog"
check "pen B's records all arrived there" \
    '[ "$(records $tmp/b.plog)" -eq "$(wc -l < $tmp/b/ground-truth.jsonl)" ]'

# ---- the same serial with another device key (a clone, or a re-keyed pen) -
start_sim a2 --serial PEN-A001 --seed 23 --simulate-days 6 --start-time $T0
$PL --device "sim:$tmp/a2.sock" --json info > "$tmp/a2info.json"
check "the second pen has another key" \
    '[ "$(jget $tmp/a2info.json device_key)" != "$(jget $tmp/ainfo.json device_key)" ]'
run 6 "a pen with A's serial but another key is refused" $PL --device "sim:$tmp/a2.sock" pull -o "$f"
check "the refusal speaks of the device key" 'grep -q "device key" $tmp/err'
check "pen A's file is still untouched" '[ "$(cksum < $f)" = "$sum_a" ]'
check "the second pen: nothing acknowledged" '[ "$(acked a2)" -eq 0 ]'

# ---- the file's own pen goes on where it stopped ---------------------------
run 0 "pen A pulls into its file again" $PL $A --json pull -o "$f"
check "it resumed" '[ "$(jget $tmp/out resumed)" = True ]'

# ---- a file written by an earlier penlink (no header) ----------------------
python3 - "$f" "$tmp/legacy.plog" << 'PY'
import sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"PNLK"
first = 16 + int.from_bytes(data[6:10], "little")  # the header frame
open(sys.argv[2], "wb").write(data[first:])
PY
sum_l=$(cksum < "$tmp/legacy.plog")
run 0 "decode still reads a file without a header" $PL decode "$tmp/legacy.plog"
check "and names no pen" '! grep -q "^# pen" $tmp/out'
start_sim c --serial PEN-C003 --seed 24 --simulate-days 2 --start-time $T0
run 6 "pulling into a file without a header is refused" $PL --device "sim:$tmp/c.sock" pull -o "$tmp/legacy.plog"
check "the refusal says to pull into a new file" 'grep -q "new file" $tmp/err'
check "the old file is untouched" '[ "$(cksum < $tmp/legacy.plog)" = "$sum_l" ]'
check "pen C: nothing acknowledged" '[ "$(acked c)" -eq 0 ]'
run 6 "even by the pen whose records it holds" $PL $A pull -o "$tmp/legacy.plog"
check "the old file is still untouched" '[ "$(cksum < $tmp/legacy.plog)" = "$sum_l" ]'

# ---- an empty file, and one cut short inside its header, become the pen's --
: > "$tmp/empty.plog"
run 0 "an empty file is a new file" $PL --device "sim:$tmp/c.sock" pull --no-ack -o "$tmp/empty.plog"
check "it now names pen C" '$PL decode $tmp/empty.plog | head -1 | grep -q "^# pen PEN-C003"'
head -c 20 "$f" > "$tmp/cut.plog"
run 0 "a file cut short inside its header holds no record: taken" \
    $PL --device "sim:$tmp/c.sock" pull --no-ack -o "$tmp/cut.plog"
check "it now names pen C" '$PL decode $tmp/cut.plog | head -1 | grep -q "^# pen PEN-C003"'

# ---- a file whose frames name two pens (two files joined) ------------------
cat "$f" "$tmp/b.plog" > "$tmp/joined.plog"
run 6 "decode refuses a file that names two pens" $PL decode "$tmp/joined.plog"
check "and says so" 'grep -q "PEN-B002" $tmp/err'
sum_j=$(cksum < "$tmp/joined.plog")
run 6 "pull refuses it too" $PL $A pull -o "$tmp/joined.plog"
check "untouched" '[ "$(cksum < $tmp/joined.plog)" = "$sum_j" ]'

# ---- watch --dir: DIR/SERIAL.plog of a clone's serial ------------------------
# the clone is refused once, not again each second until it is plugged in again
mkdir -p "$tmp/dock"
run 0 "watch --dir pulls pen A into DIR/SERIAL.plog" $PL $A watch --once --dir "$tmp/dock"
sum_w=$(cksum < "$tmp/dock/PEN-A001.plog")
$PL --device "sim:$tmp/a2.sock" watch --dir "$tmp/dock" > "$tmp/wout" 2> "$tmp/werr" &
watch=$!
i=0
while ! grep -q "device key" "$tmp/werr" && [ $i -lt 400 ]; do sleep 0.05; i=$((i + 1)); done
sleep 3 # three more rounds of the watch loop
kill -TERM $watch
wait $watch
rc=$?
check "watch stopped by SIGTERM: exit 130 (interrupted)" '[ $rc -eq 130 ]'
check "watch refused the clone" 'grep -q "device key" $tmp/werr'
check "once only" '[ "$(grep -c "device key" $tmp/werr)" -eq 1 ]'
check "pen A's file is untouched" '[ "$(cksum < $tmp/dock/PEN-A001.plog)" = "$sum_w" ]'
check "the clone: nothing acknowledged" '[ "$(acked a2)" -eq 0 ]'

# ---- watch --dir: file names from serials ----------------------------------
# a serial that climbs out of DIR
mkdir -p "$tmp/w/dock/in"
start_sim evil --serial ../../escaped --seed 25 --simulate-days 1 --start-time $T0
run 5 "watch --once refuses a serial that is not a file name" \
    $PL --device "sim:$tmp/evil.sock" watch --once --dir "$tmp/w/dock/in"
check "it says why" 'grep -q "not usable as a file name" $tmp/err'
check "nothing was written outside --dir" '[ -z "$(find $tmp/w -type f)" ] && [ ! -e $tmp/escaped.plog ] && [ ! -e $tmp/w/escaped.plog ]'
check "the pen: nothing acknowledged" '[ "$(acked evil)" -eq 0 ]'
# a serial that would hide its file, one that names a subdirectory
start_sim dot --serial .hidden --seed 26 --simulate-days 1 --start-time $T0
run 5 "a serial starting with '.' is refused" $PL --device "sim:$tmp/dot.sock" watch --once --dir "$tmp/w/dock/in"
start_sim sub --serial in/x --seed 27 --simulate-days 1 --start-time $T0
mkdir -p "$tmp/w/dock/in/in"
run 5 "a serial with '/' is refused" $PL --device "sim:$tmp/sub.sock" watch --once --dir "$tmp/w/dock/in"
check "still no file anywhere" '[ -z "$(find $tmp/w -type f)" ]'
# a good pen is still pulled
run 0 "a pen with a plain serial is pulled into DIR/SERIAL.plog" $PL $A watch --once --dir "$tmp/w/dock/in"
check "the file is there" '[ -f $tmp/w/dock/in/PEN-A001.plog ]'

finish
