#!/bin/sh
# The Wireshark dissector (tools/wireshark/penlink.lua) under tshark, on
# traces made by `penlink --trace` over the simulator and over the real
# libusb path on umockdev (the usb_trace test leaves one in USB_TRACE_DIR):
# for each frame, the fields tshark shows equal `penlink decode --messages
# --json` of the same file, and the records equal the pen's ground truth.
# Then frames split across transfers, several frames in one transfer, a
# frame with a bad CRC, garbage between frames, and the trace of a penlink
# killed mid-pull.
# Usage: test_wireshark.sh PENLINK PENLINK_SIM LUA PROTO_DIR USB_TRACE_DIR
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
LUA=$3
PROTO=$4
USB=$5
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh"
wcheck() { python3 "$here/wire_check.py" "$@"; }

command -v tshark > /dev/null || { echo "tshark is missing: sh tools/setup.sh installs it"; exit 1; }

# over the simulator
start_sim a --serial PEN-WS-1 --seed 9 --simulate-days 12 --start-time $T0
run 0 "pull --trace over the simulator" $PL --device "sim:$tmp/a.sock" --trace "$tmp/sim.pcapng" \
    pull -o "$tmp/sim.plog"
$PL decode --messages --json "$tmp/sim.pcapng" > "$tmp/sim.jsonl"
run 0 "sim trace: tshark equals decode --messages --json and the ground truth" \
    wcheck compare "$LUA" "$PROTO" "$tmp/sim.pcapng" "$tmp/sim.jsonl" "$tmp/a/ground-truth.jsonl"
sed 's/^/    /' "$tmp/out"

# over the real libusb path (umockdev), a usbmon-style trace
run 0 "usb trace: tshark equals decode --messages --json and the ground truth" \
    sh -c "$PL decode --messages --json '$USB/usb.pcapng' > '$tmp/usb.jsonl' &&
           python3 '$here/wire_check.py' compare '$LUA' '$PROTO' '$USB/usb.pcapng' \
               '$tmp/usb.jsonl' '$USB/ground-truth.jsonl'"
sed 's/^/    /' "$tmp/out"
tshark -r "$USB/usb.pcapng" -X "lua_script:$LUA" > "$tmp/usb.txt" 2> /dev/null
check "usb trace: Wireshark's USB dissector sees bulk URBs of the pen's address" \
    'tshark -r "$USB/usb.pcapng" -T fields -e usb.transfer_type -e usb.endpoint_address 2> /dev/null |
     sort -u | grep -q "^0x03	0x81" && grep -q "penlink .* pen->host log_chunk" $tmp/usb.txt'

# the bytes of the sim trace, re-cut as usbmon transfers
for mode in split merge garbage; do
    wcheck make $mode "$tmp/sim.pcapng" "$tmp/$mode.pcapng"
    $PL decode --messages --json "$tmp/$mode.pcapng" > "$tmp/$mode.jsonl"
    run 0 "$mode: tshark equals decode and the ground truth" \
        wcheck compare "$LUA" "$PROTO" "$tmp/$mode.pcapng" "$tmp/$mode.jsonl" "$tmp/a/ground-truth.jsonl"
done
check "split: frames really cross transfers" \
    'tshark -r $tmp/split.pcapng -X lua_script:$LUA -T fields -e penlink.begins_in 2> /dev/null | grep -q "[0-9]"'
check "merge: transfers really hold several frames" \
    'tshark -r $tmp/merge.pcapng -X lua_script:$LUA -T fields -e penlink.message 2> /dev/null | grep -q "log_chunk,log_chunk"'
wcheck experts "$LUA" "$PROTO" "$tmp/garbage.pcapng" > "$tmp/garbage.experts"
check "garbage: flagged (expert info), every frame still found" \
    'grep -q "^penlink.garbage [1-9]" $tmp/garbage.experts &&
     [ "$(sed -n "s/^frames //p" $tmp/garbage.experts)" -eq "$(grep -c "\"message\":\"[a-z_]*\",\"index\"" $tmp/sim.jsonl)" ]'

wcheck make badcrc "$tmp/sim.pcapng" "$tmp/badcrc.pcapng"
$PL decode --messages --json "$tmp/badcrc.pcapng" > "$tmp/badcrc.jsonl"
wcheck experts "$LUA" "$PROTO" "$tmp/badcrc.pcapng" > "$tmp/badcrc.experts"
all=$(grep -c '"message":"[a-z_]*","index"' "$tmp/sim.jsonl")
check "bad CRC: one expert info, and every other frame still found" \
    'grep -qx "penlink.crc.bad 1" $tmp/badcrc.experts &&
     [ "$(sed -n "s/^frames //p" $tmp/badcrc.experts)" -eq $((all - 1)) ]'
check "bad CRC: decode names the same frame damaged" \
    '[ "$(grep -c "\"message\":\"damaged\".*CRC" $tmp/badcrc.jsonl)" -eq 1 ]'
run 0 "bad CRC: the other frames equal decode's" \
    wcheck compare "$LUA" "$PROTO" "$tmp/badcrc.pcapng" "$tmp/badcrc.jsonl"

# a capture started after the host's first request: its reply is flagged, the rest paired
wcheck make orphan "$tmp/sim.pcapng" "$tmp/orphan.pcapng"
wcheck experts "$LUA" "$PROTO" "$tmp/orphan.pcapng" > "$tmp/orphan.experts"
check "a reply without its request: one expert info" \
    'grep -qx "penlink.reply_without_request 1" $tmp/orphan.experts'
check "replies name their requests" \
    '[ "$(tshark -r $tmp/sim.pcapng -X lua_script:$LUA -T fields -e penlink.request_in 2> /dev/null |
          grep -c "[0-9]")" -ge 4 ] &&
     ! grep -q reply_without_request $tmp/garbage.experts'

# a penlink killed mid-pull leaves a trace tshark opens up to its last whole frame: the
# pen is a replay of the first half of the split capture (the pen's bytes in small
# transfers), so the pull stops inside a reply and waits there (a long --timeout)
# until it is killed
size=$(stat -c %s "$tmp/split.pcapng")
head -c $((size / 2)) "$tmp/split.pcapng" > "$tmp/half.pcapng"
rm -f "$tmp/k.sock"
$SIM --replay "$tmp/half.pcapng" --listen "$tmp/k.sock" > "$tmp/k.log" 2>&1 &
pids="$pids $!"
wait_sock "$tmp/k.sock" || { echo "penlink-sim --replay did not start"; cat "$tmp/k.log"; exit 1; }
$PL --timeout 600000 --device "sim:$tmp/k.sock" --trace "$tmp/k.pcapng" pull -o "$tmp/k.plog" \
    > /dev/null 2>&1 &
kp=$!
last=-1 now=0 i=0
while [ "$now" -ne "$last" ] || [ "$now" -lt 1000 ]; do # until the trace stops growing
    [ $i -lt 400 ] || break
    last=$now
    sleep 0.2
    now=$(stat -c %s "$tmp/k.pcapng" 2> /dev/null || echo 0)
    i=$((i + 1))
done
check "the pull is waiting mid-reply" 'kill -0 $kp 2> /dev/null'
kill -9 $kp 2> /dev/null
wait $kp 2> /dev/null
tshark -r "$tmp/k.pcapng" -X "lua_script:$LUA" > "$tmp/k.txt" 2> "$tmp/k.err"
check "killed: tshark opens the trace" '[ -s $tmp/k.txt ] && ! grep -q "isn.t a capture file\|unknown format" $tmp/k.err'
$PL decode --messages --json "$tmp/k.pcapng" > "$tmp/k.jsonl" 2> /dev/null
run 0 "killed: every frame of the trace, tshark's equal to decode's" \
    wcheck compare "$LUA" "$PROTO" "$tmp/k.pcapng" "$tmp/k.jsonl"
check "killed: the trace ends inside the pull's reply" \
    'grep -q "\"message\":\"log_chunk\"" $tmp/k.jsonl && ! grep -q "\"message\":\"ack_log\"" $tmp/k.jsonl'
size=$(stat -c %s "$tmp/k.pcapng")
head -c $((size - 5)) "$tmp/k.pcapng" > "$tmp/kcut.pcapng" # as if killed inside a write
$PL decode --messages --json "$tmp/kcut.pcapng" > "$tmp/kcut.jsonl" 2> /dev/null
tshark -r "$tmp/kcut.pcapng" -X "lua_script:$LUA" > "$tmp/kcut.txt" 2> "$tmp/kcut.err"
check "killed inside a write: tshark says it was cut short, shows every whole packet" \
    'grep -q "cut short" $tmp/kcut.err && [ "$(wc -l < $tmp/kcut.txt)" -eq $(($(wc -l < $tmp/k.txt) - 1)) ]'
run 0 "killed inside a write: tshark's frames equal decode's up to the last whole one" \
    wcheck compare "$LUA" "$PROTO" "$tmp/kcut.pcapng" "$tmp/kcut.jsonl"

finish
