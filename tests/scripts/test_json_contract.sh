#!/bin/sh
# The --json contract (docs/json.md, schema 1): every command is run with
# --json against penlink-sim, and every line it prints is checked against
# tests/json/penlink.schema.json: stdout against the form of that command,
# stderr (progress, notices, warnings, errors) against the stderr forms.
# Errors too: each exit code's error object carries its code and exit code.
# With PENLINK_TEST_ARCHIVE=postgresql every archive is on a server (and
# archive init-server is run too).
# Usage: test_json_contract.sh PENLINK PENLINK_SIM
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
. "$(dirname "$0")/harness.sh"
SCHEMA="$here/../json/penlink.schema.json"
VALIDATE="$here/../json/validate.py"

# js WANT-EXIT DEF NAME penlink-args... : run with --json, check the exit
# code and every line of stdout (DEF) and stderr; stdout may be empty only
# for a failure, or when $quiet_stdout is set. Progress events: a command
# that shows a progress line on a terminal (the pulls: $progress set) emits
# them whole (the first, the last with kept, in order); the archive's long
# work ($work set: push, verify, audit, export) emits them pen by pen, their
# counts as stdout's; any other emits none.
# --json goes first, or with $json_last set last (after the command's
# arguments: it counts wherever it is, for errors found before it too).
quiet_stdout=""
progress=""
work=""
json_last=""
js() {
    want=$1 def=$2 name=$3
    shift 3
    if [ -n "$json_last" ]; then
        run "$want" "$name" $PL "$@" --json
    else
        run "$want" "$name" $PL --json "$@"
    fi
    empty="" events=--no-progress
    [ "$want" -eq 0 ] && [ -z "$quiet_stdout" ] || empty=--may-be-empty
    [ -z "$progress" ] || events=--progress
    [ -z "$work" ] || events="--work $work"
    if "$PY" "$VALIDATE" "$SCHEMA" "$def" "$tmp/out" "$tmp/err" $empty $events > "$tmp/why"; then
        ok "$name: every line is schema 1 ($def)"
    else
        bad "$name: not schema 1 ($def)"
        cat "$tmp/why"
    fi
}
# an error: exit WANT, one error object on stderr with that exit code and CODE
js_error() {
    want=$1 code=$2 name=$3
    shift 3
    js "$want" error "$name" "$@"
    check "$name: the error says code $code, exit_code $want" \
        '"$PY" -c "import json,sys
e = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l).get(\"error\")]
assert e and all(x[\"code\"] == sys.argv[2] and x[\"exit_code\"] == int(sys.argv[3]) for x in e), e" \
        $tmp/err "$code" "$want"'
}

start_sim a --serial PEN-J001 --seed 3 --simulate-days 4 --start-time $T0 --reuse-permille 200
AR=$(archive j)
A="--device sim:$tmp/a.sock --archive $AR"
R="--archive $AR"
K=$tmp/keys
mkdir -p "$K" "$tmp/dock"

js 0 list "list" $A list
js 0 info "info" $A info
js 0 identify "identify" $A identify
progress=1
js 0 pull_file "pull -o FILE (its progress events)" $A pull --no-ack -o "$tmp/a.plog"
js 0 pull_archive "pull (its progress events)" $A pull
check "pull: progress numbers have at most 3 decimals (0.008, not 0.0080000000000000002)" \
    '! grep -E "[0-9]\.[0-9]{4,}" $tmp/err'
check "pull: the last progress event kept records" \
    '"$PY" -c "import json,sys
e = [json.loads(l) for l in open(sys.argv[1]) if json.loads(l).get(\"event\") == \"progress\"]
assert e[-1][\"done\"] and e[-1][\"ok\"] and e[-1][\"kept\"] > 0, e[-1]" $tmp/err'
js 0 pull_archive "pull, nothing new (its progress events)" $A pull
check "pull: progress numbers have at most 3 decimals (0.008, not 0.0080000000000000002)" \
    '! grep -E "[0-9]\.[0-9]{4,}" $tmp/err'
progress=""
js 0 decode "decode" decode "$tmp/a.plog"
js 0 decode "decode --messages" decode --messages "$tmp/a.plog"
# a capture (pcapng) of a session: its messages by packet, timed by the
# time rule (time_ms and time) with the packet's microseconds beside them
js 0 info "info --trace" $A --trace "$tmp/t.pcapng" info
js 0 decode "decode --messages of a --trace capture" decode --messages "$tmp/t.pcapng"
check "the capture's messages: offset, packet, time_ms = time_us / 1000, time its ISO text" \
    '"$PY" -c "import json,sys,datetime
m = [o for o in map(json.loads, open(sys.argv[1])) if \"message\" in o]
assert len(m) >= 2, m
for o in m:
    assert o[\"packet\"] >= 1 and o[\"offset\"] > 0 and o[\"time_ms\"] == o[\"time_us\"] // 1000, o
    t = datetime.datetime.fromtimestamp(o[\"time_ms\"] / 1000, datetime.timezone.utc)
    assert o[\"time\"] == t.strftime(\"%Y-%m-%dT%H:%M:%S.\") + \"%03dZ\" % (o[\"time_ms\"] % 1000), o" $tmp/out'
js 0 config "config get" $A config get
js 0 config "config get KEY" $A config get depth_max_um
js 0 config_file "config export" $A config export
cp "$tmp/out" "$tmp/cfg.json"
js 0 config_change "config import (the exported file, schema 1)" $A config import "$tmp/cfg.json"
js 0 config_change "config set" $A config set depth_max_um=2400 device_label=Room-1
check "config set: old and new are numbers for a number" \
    '"$PY" -c "import json,sys; c = json.load(open(sys.argv[1]))[\"changes\"]
assert {(x[\"key\"], x[\"old\"], x[\"new\"]) for x in c} == {(\"depth_max_um\", 3000, 2400), (\"device_label\", \"\", \"Room-1\")}, c" $tmp/out'
js 0 config_change "config set --dry-run" $A config set --dry-run depth_max_um=2300
js 0 config_history "config history" $R config history --pen PEN-J001
js 0 clock "clock sync (set)" $A clock sync --threshold 0
js 0 clock "clock sync (left)" $A clock sync --threshold 3600000
js 0 watch "watch --once (archive)" $A watch --once
js 0 watch "watch --once --dir" $A watch --once --dir "$tmp/dock"
work=audit
js 0 audit "audit (a planted reuse the pen refused: findings, verdict pass)" $R audit
check "audit: a finding, usage and the summary were checked" \
    'grep -q "\"type\":\"finding\"" $tmp/out && grep -q "\"type\":\"usage\"" $tmp/out && grep -q "\"type\":\"summary\"" $tmp/out'
id=$("$PY" -c 'import json,sys
print(next(o["id"] for o in map(json.loads, open(sys.argv[1])) if o.get("type") == "finding"))' "$tmp/out")
work=""
js 0 audit_annotate "audit annotate" $R audit annotate "$id" --text "seen" --operator "A Auditor"
work=audit
js 0 audit "audit, a finding with its note" $R audit --report cartridges
check "the note has at and at_ms" 'grep -q "\"annotations\":\[{\"at\":\"[^\"]*\",\"at_ms\":[0-9]*," $tmp/out'
quiet_stdout=1
js 0 audit "audit --format html -o FILE: nothing on stdout, the notice JSON" \
    $R audit --format html -o "$tmp/r.html" --operator "A Auditor"
quiet_stdout=""
check "the report's notice is a JSON event" 'grep -q "^{\"event\":\"notice\",\"text\":\"report written to " $tmp/err'

js 0 audit_check_report "audit --check-report" $R audit --check-report "$tmp/r.html"
work=export
js 0 export_record "export records" $R export records
js 0 export_treatment "export treatments" $R export treatments
work=verify
js 0 verify "verify" $R verify
work=""
js 0 keys "keys generate" keys generate "$K/tech.key"
js 0 keys "keys show" keys show "$K/tech.key"
work=push
if [ "$backend" = postgresql ]; then
    js 0 archive_push "archive push" $R archive push --to "$(archive shared)"
    work=""
    js 0 archive_init_server "archive init-server" --archive "$(archive srv)" archive init-server
else
    js 0 archive_push "archive push" $R archive push --to "$tmp/shared.db"
    js 0 archive_push "archive push again (nothing new: every record held)" $R archive push --to "$tmp/shared.db"
fi
work=""

# a repaired pen: its new key recorded, then in the audit's integrity report
stop_sim a
rm "$tmp/a/device.key"
start_sim a --start-time $T0
work=""
js 0 key_replacement "keys replace" $A keys replace --pen PEN-J001 --reason "RMA 1" --yes
work=audit
js 0 audit "audit --report integrity (a key replacement)" $R audit --report integrity
work=""
check "the key replacement is in it" 'grep -q "\"type\":\"key_replacement\"" $tmp/out'

# errors: each carries a code and the exit code
js_error 2 usage "an unknown command" frobnicate
js_error 2 PENLINK_ERR_INVALID_ARG "not a pen address" --device bluetooth:x info
js_error 3 PENLINK_ERR_NOT_FOUND "no pen there" --device "sim:$tmp/none.sock" info
js_error 2 usage "config set: an unknown key" $A config set frob=1
# no pen at all (no PENLINK_DEVICE, no USB pen of an ID nobody makes)
unset PENLINK_DEVICE
export PENLINK_USB_ID=ffff:fffe
js_error 3 PENLINK_ERR_NOT_FOUND "list, no pen plugged in" list
unset PENLINK_USB_ID
js_error 7 io "watch --dir that does not exist" $A watch --once --dir "$tmp/none/dir"
json_last=1
js_error 2 usage "--timeout 0 before the command, --json last" --timeout 0 info
js_error 2 usage "--timeout 0 after the command, --json last" info --timeout 0
js_error 2 usage "an unknown command, --json last" frobnicate
js_error 3 PENLINK_ERR_NOT_FOUND "no pen there, --json last" --device "sim:$tmp/none.sock" info
json_last=""
js 3 list "list: a simulated pen not there (its row; exit 3 as info)" --device "sim:$tmp/none.sock" list
check "list: the error object of info" 'grep -q "^{\"error\":.*\"code\":\"PENLINK_ERR_NOT_FOUND\",\"exit_code\":3," $tmp/err'
js_error 3 PENLINK_ERR_NOT_FOUND "watch --once: a simulated pen not there" --device "sim:$tmp/none.sock" watch --once
# watch interrupted: exit 130 and a cancelled error object
$PL --json $A watch > "$tmp/out" 2> "$tmp/err" &
wpid=$!
until grep -q '"serial"' "$tmp/out" || ! kill -0 $wpid 2> /dev/null; do sleep 0.05; done
kill -INT $wpid
wait $wpid
got=$?
[ "$got" -eq 130 ] && ok "watch interrupted (exit 130)" || bad "watch interrupted: exit $got, want 130"
check "watch interrupted: a cancelled error object" \
    'grep -q "^{\"error\":\"watch: interrupted after 1 pulls\",\"code\":\"cancelled\",\"exit_code\":130," $tmp/err'
chmod 644 "$K/tech.key"
js_error 2 PENLINK_ERR_INVALID_ARG "a key file others can read" keys show "$K/tech.key"
finish
