#!/bin/sh
# The penlink CLI end to end against penlink-sim: every subcommand and the
# error paths (no pen, pen gone mid-command, invalid and out-of-range config,
# a revision conflict, a pen speaking another major version).
# Usage: test_cli_sim.sh PENLINK PENLINK_SIM
# PENLINK_WRAP (e.g. a valgrind command line) is put before every penlink run.
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"

start_sim a --serial PEN-A001 --seed 11 --simulate-days 10 --start-time $T0
A="--device sim:$tmp/a.sock"
truth=$tmp/a/ground-truth.jsonl

# info
run 0 "info --json" $PL --device "sim:$tmp/a.sock" info --json
cp "$tmp/out" "$tmp/info.json"
check "info: serial" '[ "$(jget $tmp/info.json serial)" = PEN-A001 ]'
check "info: next seq = ground truth records" \
    '[ "$(jget $tmp/info.json log_next_seq)" -eq "$(wc -l < $truth)" ]'
check "info: firmware version" '[ -n "$(jget $tmp/info.json firmware_version)" ]'
check "info: config revision" '[ "$(jget $tmp/info.json config_revision)" -ge 1 ]'
check "info: first seq" '[ "$(jget $tmp/info.json log_first_seq)" -eq 0 ]'
run 0 "info (text)" $PL $A info
check "info text names the log range" 'grep -q "^log  *seq 0\.\." $tmp/out'
PENLINK_DEVICE=sim:$tmp/a.sock $PL info > /dev/null 2>&1 && ok "PENLINK_DEVICE picks the pen" ||
    bad "PENLINK_DEVICE"

# pull --no-ack leaves the records on the pen; --quiet prints nothing; --verbose says more
run 0 "pull --no-ack --quiet" $PL $A --quiet pull --no-ack -o "$tmp/noack.plog"
check "--quiet printed nothing" '[ ! -s $tmp/out ]'
$PL $A --json info > "$tmp/info1.json"
check "--no-ack acknowledged nothing" '[ "$(jget $tmp/info1.json log_acked_seq)" -eq 0 ]'
run 0 "decode --verbose" $PL --verbose decode "$tmp/noack.plog"
check "--verbose counts records" 'grep -q "records in .* chunks" $tmp/err'
rm -f "$tmp/noack.plog"

# pull: everything the pen logged, exactly once
run 0 "pull" $PL $A pull -o "$tmp/a.plog"
check "pull: nothing printed as a progress bar when stdout is a file" '! grep -q "ETA" $tmp/out'
$PL decode --format json "$tmp/a.plog" > "$tmp/a.jsonl"
python3 - "$tmp/a.jsonl" "$truth" << 'PY' && ok "pulled records equal the ground truth" || bad "pulled records differ"
import json, sys
got = [json.loads(l) for l in open(sys.argv[1])]
assert got[0]["header"]["serial"] == "PEN-A001", got[0]  # the file names its pen
got = got[1:]
want = [json.loads(l) for l in open(sys.argv[2])]
assert len(got) == len(want), (len(got), len(want))
for g, w in zip(got, want):
    for k, v in w.items():
        if k in ("time",):
            continue
        assert str(g.get(k)) == str(v), (k, g, w)
PY
run 0 "pull again" $PL $A --json pull -o "$tmp/a.plog"
check "second pull: no new records" '[ "$(jget $tmp/out records)" -eq 0 ]'
$PL $A --json info > "$tmp/info2.json"
check "everything acknowledged" \
    '[ "$(jget $tmp/info2.json log_acked_seq)" -eq "$(jget $tmp/info2.json log_next_seq)" ]'

# config
run 0 "config get" $PL $A config get
check "config get lists depth_max_um" 'grep -q "^depth_max_um" $tmp/out'
rev=$($PL $A --json config get | python3 -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
run 0 "config set" $PL $A config set depth_max_um=2500 device_label=Room-2
check "config set shows the diff" 'grep -q "depth_max_um .* -> 2500" $tmp/out'
run 0 "config get one key" $PL $A config get depth_max_um
check "the change is in force" '[ "$(cat $tmp/out)" = 2500 ]'
rev2=$($PL $A --json config get | python3 -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
check "revision bumped" '[ "$rev2" -eq $((rev + 1)) ]'
run 2 "out of range value refused before sending" $PL $A config set depth_max_um=99999
check "out of range message names the range" 'grep -q "depth_max_um = 99999 is outside" $tmp/err'
run 2 "value off the depth step" $PL $A config set depth_default_um=555
run 2 "not a number" $PL $A config set speed_max_sps=fast
run 2 "unknown key" $PL $A config set volume=11
check "unknown key lists the keys" 'grep -q "keys: depth_min_um" $tmp/err'
rev3=$($PL $A --json config get | python3 -c 'import json,sys; print(json.load(sys.stdin)["revision"])')
check "refused changes left the revision alone" '[ "$rev3" -eq "$rev2" ]'
run 0 "config export" $PL $A config export "$tmp/cfg.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); d["max_treatment_s"]=2700; json.dump(d,open(sys.argv[1],"w"))' "$tmp/cfg.json"
run 0 "config import --dry-run" $PL $A config import --dry-run "$tmp/cfg.json"
check "dry run shows the diff" 'grep -q "max_treatment_s .* -> 2700" $tmp/out'
$PL $A config set auto_off_s=600 > /dev/null   # someone else, meanwhile
run 4 "import of a stale export is a conflict" $PL $A config import "$tmp/cfg.json"
check "conflict explained" 'grep -q "someone changed it since" $tmp/err'
run 0 "import --force" $PL $A config import --force "$tmp/cfg.json"
run 0 "config get after import" $PL $A config get max_treatment_s
check "imported value in force" '[ "$(cat $tmp/out)" = 2700 ]'
printf '{"depth_max_um": "deep"}' > "$tmp/badcfg.json"
run 2 "import: wrong type" $PL $A config import "$tmp/badcfg.json"
check "the error names the key and its type" 'grep -q "badcfg.json: depth_max_um must be a whole number" $tmp/err'
printf '{"depth_max_um": 2000, ' > "$tmp/badcfg.json"
run 2 "import: broken JSON" $PL $A config import "$tmp/badcfg.json"
check "the error says where" 'grep -q "badcfg.json: line 1 column" $tmp/err'
printf '{"needle_colour": 2}' > "$tmp/badcfg.json"
run 2 "import: unknown key" $PL $A config import "$tmp/badcfg.json"
check "the error lists the known keys" 'grep -q "unknown configuration key .needle_colour. (keys: depth_min_um" $tmp/err'
python3 -c 'print("{\"clinic_id\": \"" + "x" * 70000 + "\"}")' > "$tmp/badcfg.json"
run 2 "import: a file too long to be a configuration" $PL $A config import "$tmp/badcfg.json"
check "the error says so" 'grep -q "longer than 65536 bytes" $tmp/err'
run 7 "import: no such file" $PL $A config import "$tmp/none.json"
printf '{"max_cartridge_uses": 0}' > "$tmp/badcfg.json"
run 2 "import: out of limits" $PL $A config import "$tmp/badcfg.json"

# clock
run 0 "clock sync --threshold 0 (always set)" $PL $A clock sync --threshold 0
check "clock sync shows the drift" 'grep -Eq "pen clock was [0-9.]+ s (ahead|behind)" $tmp/out'
run 0 "clock sync --json" $PL $A --json clock sync
check "drift is small after a sync" \
    'python3 -c "import json,sys; assert abs(json.load(open(sys.argv[1]))[\"drift_ms\"]) < 5000" $tmp/out'

# list, watch
run 0 "list shows the simulated pen" $PL $A list
check "list names the serial" 'grep -q PEN-A001 $tmp/out'
mkdir -p "$tmp/dock"
run 0 "watch --once" $PL $A watch --once --dir "$tmp/dock"
check "watch wrote SERIAL.plog" '[ -f $tmp/dock/PEN-A001.plog ]'
# --dir that cannot take files: the watcher's I/O error (7), not "no device"
run 7 "watch --dir that does not exist: I/O error" $PL $A watch --once --dir "$tmp/no/such/dir"
check "the error names the directory" 'grep -q "no/such/dir" $tmp/err'
run 7 "watch --dir that is a file: I/O error" $PL $A watch --once --dir "$tmp/dock/PEN-A001.plog"
run 7 "watch --dir, no pen plugged in: still the I/O error" \
    $PL --device "sim:$tmp/none.sock" watch --once --dir "$tmp/no/such/dir"

# errors: no pen, bad URI
run 3 "no pen at that socket" $PL --device "sim:$tmp/none.sock" info
check "no-pen message says how to start one" 'grep -q "penlink-sim" $tmp/err'
# list and watch --once say the same as info of a simulated pen not there
run 3 "list: no pen at that socket, exit 3 as info" $PL --device "sim:$tmp/none.sock" list
check "list: its row, and the error" 'grep -q "no pen found" $tmp/out && grep -q "no simulated pen there" $tmp/err'
run 3 "watch --once: no pen at that socket, exit 3 as info" $PL --device "sim:$tmp/none.sock" watch --once
check "watch --once: the error" 'grep -q "no simulated pen there" $tmp/err'
run 2 "not a pen address" $PL --device "bluetooth:x" info
run 2 "bad option" $PL $A info --frobnicate
for cmd in list info pull decode config clock watch; do
    $PL $cmd --help > "$tmp/out" 2>&1 && grep -q "^Usage: penlink" "$tmp/out" &&
        ok "$cmd --help" || bad "$cmd --help"
done

# pen gone mid-command: the cable is pulled after the 7th frame of the pull
start_sim b --serial PEN-B002 --seed 12 --simulate-days 60 --start-time $T0 --unplug-after-frames 7
B="--device sim:$tmp/b.sock"
run 3 "pull with the pen unplugged mid-pull" $PL $B pull -o "$tmp/b.plog"
check "unplug explained" 'grep -q "closed the connection" $tmp/err'
$PL decode "$tmp/b.plog" > "$tmp/b.part" 2>&1 && ok "the partial file decodes" || bad "partial file"
check "the partial file holds records" '[ "$(grep -vc "^#" $tmp/b.part)" -gt 0 ]'
check "but not all of them" '[ "$(grep -vc "^#" $tmp/b.part)" -lt "$(wc -l < $tmp/b/ground-truth.jsonl)" ]'
$PL $B --json info > "$tmp/binfo.json"
check "nothing was acknowledged" '[ "$(jget $tmp/binfo.json log_acked_seq)" -eq 0 ]'
run 0 "pull resumes when the pen is back" $PL $B pull -o "$tmp/b.plog"
$PL decode --format json "$tmp/b.plog" > "$tmp/b.jsonl"
python3 - "$tmp/b.jsonl" "$tmp/b/ground-truth.jsonl" << 'PY' && ok "resumed pull: nothing lost, nothing twice" || bad "resumed pull differs"
import json, sys
got = [json.loads(l)["seq"] for l in open(sys.argv[1]) if "header" not in l]
want = [json.loads(l)["seq"] for l in open(sys.argv[2])]
assert got == want, (len(got), len(want))
PY

# a pen speaking another major version
start_sim c --serial PEN-C003 --protocol-major 2
run 5 "another major version" $PL --device "sim:$tmp/c.sock" info
check "version message says who is too old" 'grep -q "too old" $tmp/err'

# the simulator's state directory: created, in a parent that must exist (as --help says)
run 1 "penlink-sim --state in a directory that does not exist" \
    $SIM --state "$tmp/no-such-dir/pen" --simulate-days 1 --start-time $T0
check "it says the parent must exist" 'grep -q "its parent must exist" $tmp/err'
check "and --help says so" '$SIM --help | grep -q "parent" '

finish
