#!/bin/sh
# penlink-sim --replay: a pull traced over the simulator, replayed, gives the
# same pull output and the same archive; a host that asks something else
# gets the documented divergence error (docs/engineer-guide.md), naming the
# packet where it departed. Also a USB session (umockdev) replayed over the
# socket, and a trace that is not one.
# Usage: test_replay.sh PENLINK PENLINK_SIM [USB_TRACE_DIR]
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
USB=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh"

start_replay() { # name trace: socket $tmp/NAME.sock, pid in rpid
    rm -f "$tmp/$1.sock"
    ${PENLINK_WRAP:-} $SIM --replay "$2" --listen "$tmp/$1.sock" > "$tmp/$1.log" 2>&1 &
    rpid=$!
    pids="$pids $rpid"
    wait_sock "$tmp/$1.sock" || { echo "penlink-sim --replay did not start:"; cat "$tmp/$1.log"; exit 1; }
}
wait_replay() { # the replaying simulator's exit status, in $rrc
    wait "$rpid"
    rrc=$?
}
# what an archive holds of the pen, whatever the host's clock said
dump() {
    sqlite3 "$1" "select serial, model, hex(public_key) from devices;
                  select first_seq, record_count, raw_size, hex(data), hex(prev_link), hex(link)
                    from chunks order by first_seq;
                  select seq, hex(body) from records order by seq;
                  select next_seq, hex(link), hex(signature) from heads order by id;
                  select from_seq, next_seq, records_new, records_dup, conflicts, gap, result
                    from pulls order by id;
                  select revision, new_json from config_history order by id;"
}

start_sim a --serial PEN-REPLAY-1 --seed 21 --simulate-days 15 --start-time $T0
run 0 "traced pull into an archive" $PL --device "sim:$tmp/a.sock" --archive "$tmp/a1.db" \
    --trace "$tmp/pull.pcapng" --json pull
cp "$tmp/out" "$tmp/pull1.json"
stop_sim a

start_replay r "$tmp/pull.pcapng"
run 0 "the same pull against the replay" $PL --device "sim:$tmp/r.sock" --archive "$tmp/a2.db" \
    --json pull
cp "$tmp/out" "$tmp/pull2.json"
wait_replay
check "replay: the host followed the recording to its end (exit 0)" '[ $rrc -eq 0 ]'
check "replay: the same pull output" 'cmp -s $tmp/pull1.json $tmp/pull2.json'
dump "$tmp/a1.db" > "$tmp/a1.dump"
dump "$tmp/a2.db" > "$tmp/a2.dump"
check "replay: the same archive (records, chunks, heads, pulls, configuration)" \
    '[ -s $tmp/a1.dump ] && cmp -s $tmp/a1.dump $tmp/a2.dump'
check "replay: every record of the pen" \
    '[ "$(sqlite3 $tmp/a2.db "select count(*) from records")" -eq "$(wc -l < $tmp/a/ground-truth.jsonl)" ]'

# a host that asks something else: the documented divergence error
start_replay d "$tmp/pull.pcapng"
run 4 "a host that departs from the recording" $PL --device "sim:$tmp/d.sock" identify
wait_replay
check "departure: penlink-sim exits 5" '[ $rrc -eq 5 ]'
check "departure: the host is told where, in the pen's error" \
    'grep -q "the pen answered identify with error 14: replay: the host departed from the recording at packet [0-9]* of .*pull.pcapng (the host.s frame [0-9]*): it sent identify request [0-9]* ([0-9]* bytes), the recording has [a-z_]* request [0-9]* ([0-9]* bytes)" $tmp/err'
check "departure: penlink-sim says the same" 'grep -q "departed from the recording at packet 3" $tmp/d.log'

# a host that stops early
start_replay e "$tmp/pull.pcapng"
run 0 "a host that asks less (info)" $PL --device "sim:$tmp/e.sock" info
wait_replay
check "stopping early: penlink-sim exits 5 and says where" \
    '[ $rrc -eq 5 ] && grep -q "disconnected at packet [0-9]* of .*before the recording.s end" $tmp/e.log'

# a USB session (the real libusb path on umockdev) replayed over the socket
if [ -n "$USB" ]; then
    start_replay u "$USB/usb.pcapng"
    run 0 "the USB session's pull -o, replayed over the socket" \
        $PL --device "sim:$tmp/u.sock" pull -o "$tmp/usb.plog"
    wait_replay
    check "USB replay: followed to its end, every record" \
        '[ $rrc -eq 0 ] && [ "$($PL decode "$tmp/usb.plog" | grep -vc "^#")" -eq "$(wc -l < $USB/ground-truth.jsonl)" ]'
fi

# not a trace
echo "not a capture" > "$tmp/junk.pcapng"
run 1 "--replay of a file that is not a capture" $SIM --replay "$tmp/junk.pcapng" --listen "$tmp/j.sock"
check "says why" 'grep -q "not a pcapng or pcap file" $tmp/err'
run 2 "--replay with --state is refused" $SIM --replay "$tmp/pull.pcapng" --state "$tmp/x" \
    --listen "$tmp/j.sock"

# a usbmon capture where another device's bulk IN (holding a frame) comes before
# every transfer of the pen, its first reply included: the replay follows only
# the pen's endpoints (the device the host greeted), as decode does
python3 "$here/wire_check.py" make noise "$tmp/pull.pcapng" "$tmp/noise.pcapng"
start_replay n "$tmp/noise.pcapng"
run 0 "the same pull against the replay of a noisy USB capture" $PL --device "sim:$tmp/n.sock" \
    --archive "$tmp/a5.db" --json pull
cp "$tmp/out" "$tmp/pull5.json"
wait_replay
check "noisy USB capture: the host followed the recording to its end, same pull output" \
    '[ $rrc -eq 0 ] && cmp -s $tmp/pull1.json $tmp/pull5.json'

finish
