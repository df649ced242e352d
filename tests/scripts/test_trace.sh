#!/bin/sh
# `penlink --trace` over the simulator and what reads a trace: `penlink
# decode` (records equal the pen's ground truth, every message with its
# fields, the hash chain and head signatures verified), -v / -vv (one line per
# frame), a trace of a killed penlink, and hostile or damaged captures.
# Usage: test_trace.sh PENLINK PENLINK_SIM ENOSPC_SHIM
# PENLINK_WRAP (e.g. a valgrind command line) is put before every penlink run.
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
SHIM=$3
here=$(cd "$(dirname "$0")" && pwd)
. "$here/harness.sh"

start_sim a --serial PEN-TRACE-1 --seed 5 --simulate-days 20 --start-time $T0
A="--device sim:$tmp/a.sock"
truth=$tmp/a/ground-truth.jsonl

# a traced pull, with -v: one line per frame on stderr
run 0 "pull --trace -v" $PL $A --trace "$tmp/t.pcapng" -v pull -o "$tmp/t.plog"
cp "$tmp/err" "$tmp/v.err"
check "the trace is a pcapng file" '[ "$(head -c 4 $tmp/t.pcapng | od -An -tx1 | tr -d " ")" = 0a0d0d0a ]'
run 0 "decode --messages --json of the trace" $PL decode --messages --json "$tmp/t.pcapng"
cp "$tmp/out" "$tmp/m.jsonl"
python3 - "$tmp/m.jsonl" "$truth" "$tmp/v.err" << 'PY' && ok "trace: records equal the ground truth, every message with its fields, chain verified, -v one line per frame" || bad "trace decode"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
msgs = [l for l in lines if "message" in l]
recs = [l for l in lines if "seq" in l]
want = [json.loads(l) for l in open(sys.argv[2])]
assert len(recs) == len(want), (len(recs), len(want))
for g, w in zip(recs, want):
    for k, v in w.items():
        if k != "time":
            assert str(g.get(k)) == str(v), (k, g, w)
names = [m["message"] for m in msgs]
for n in ("hello", "hello_reply", "get_info", "device_info", "pull_log", "log_chunk", "log_end",
          "ack_log", "ack_log_reply"):
    assert n in names, n
assert "damaged" not in names
for m in msgs:
    assert m["direction"] in ("to_pen", "to_host"), m
    assert m["fields"]["request_id"] == m["request_id"], m
    assert m["message"] in m["fields"], m  # the body, with its fields
    assert m["frame"]["length"] + 16 == m["size"], m
chunks = [m for m in msgs if m["message"] == "log_chunk"]
assert chunks and all(m["chain"] == "verified" for m in chunks), [m.get("chain") for m in chunks]
assert all(len(m["fields"]["log_chunk"]["link"]) == 64 for m in chunks)  # links in hex
ends = [m for m in msgs if m["message"] == "log_end"]
assert ends and all(m["chain"] == "verified" for m in ends), [m.get("chain") for m in ends]
assert len(ends[0]["fields"]["log_end"]["head_signature"]) == 128
hello = next(m for m in msgs if m["message"] == "hello")
assert hello["fields"]["hello"]["client"].startswith("penlink/"), hello
# -v: one line per frame, naming direction, message, request id and size
v = [l for l in open(sys.argv[3]) if "->" in l]
assert len(v) == len(msgs), (len(v), len(msgs))
for l, m in zip(v, msgs):
    arrow = "host->pen" if m["direction"] == "to_pen" else "pen->host"
    assert f"{arrow} {m['message']} request {m['request_id']} ({m['size']} bytes)" in l, (l, m)
PY
# text --messages: every field, links in hex
run 0 "decode --messages (text)" $PL decode --messages "$tmp/t.pcapng"
check "text: a line per message, and its fields" \
    'grep -q "^# packet [0-9]*: pen->host log_end request [0-9]* ([0-9]* bytes) chain verified" $tmp/out &&
     grep -q "^#   request_id=[0-9]* log_chunk{first_seq=0 .* link=[0-9a-f]\{64\} prev_link=" $tmp/out'
run 2 "decode --messages --format csv is refused, not silently empty" \
    $PL decode --messages --format csv "$tmp/t.pcapng"
check "says to use text or JSON" 'grep -q "text or JSON" $tmp/err'
# -vv adds the fields
run 0 "info -vv" $PL $A -vv info
check "-vv prints every field of DeviceInfo" \
    'grep -q "device_info{serial=\"PEN-TRACE-1\" .*limits{depth_min_um=" $tmp/err'
run 0 "info without -v prints no frames" $PL $A info
check "no frame lines without -v" '! grep -q "host->pen" $tmp/err'

# a trace of a pen that breaks its chain: decode says so (exit 6)
start_sim b --serial PEN-TRACE-2 --seed 6 --simulate-days 5 --start-time $T0 --tamper flip
$PL --device "sim:$tmp/b.sock" --trace "$tmp/flip.pcapng" pull -o "$tmp/flip.plog" > /dev/null 2>&1
run 6 "decode: a flipped chunk in a trace" $PL decode --messages --json "$tmp/flip.pcapng"
check "the flipped chunk is named" 'grep -q "\"chain\":\"broken\"" $tmp/out'

# the same trace as a classic pcap file (tcpdump's format), in the other byte order
python3 - "$tmp/t.pcapng" "$tmp/t.pcap" << 'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
out = [struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 147)]
off = 0
while off + 12 <= len(d):
    t, n = struct.unpack_from("<II", d, off)
    if t == 6:
        hi, lo, cap = struct.unpack_from("<III", d, off + 12)
        ts = hi << 32 | lo
        out.append(struct.pack(">IIII", ts // 1000000, ts % 1000000, cap, cap)
                   + d[off + 28:off + 28 + cap])
    off += n
open(sys.argv[2], "wb").write(b"".join(out))
PY
$PL --json decode "$tmp/t.pcap" > "$tmp/pcap.jsonl"
$PL --json decode "$tmp/t.pcapng" > "$tmp/pcapng.jsonl"
check "a classic pcap (big-endian) of the trace decodes to the same records" \
    '[ -s $tmp/pcap.jsonl ] && cmp -s $tmp/pcap.jsonl $tmp/pcapng.jsonl'

# hostile captures: cut short, a huge block, garbage; never a crash
size=$(wc -c < "$tmp/t.pcapng")
head -c $((size - 7)) "$tmp/t.pcapng" > "$tmp/cut.pcapng"
run 5 "decode of a trace cut inside a block" $PL decode "$tmp/cut.pcapng"
check "cut: says where" 'grep -q "cut short" $tmp/err'
check "cut: the records before the cut are printed" '[ "$(wc -l < $tmp/out)" -gt 0 ]'
python3 - "$tmp/huge.pcapng" << 'PY'
import struct, sys
shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
blk = struct.pack("<II", 6, 0xFFFFFFF0)
open(sys.argv[1], "wb").write(shb + blk + b"\0" * 64)
PY
run 5 "decode of a capture with a 4 GiB block" $PL decode "$tmp/huge.pcapng"
check "huge block refused before reading it" 'grep -q "larger than the reader" $tmp/err'
printf '\n\r\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' > "$tmp/junk.pcapng"
run 5 "decode of garbage with a pcapng magic" $PL decode "$tmp/junk.pcapng"

# honest captures of more than one session, pen or device (tests/fixtures/
# captures/README.md): each pen's chain is checked on its own conversation and
# across its sessions, never against another pen's or another session's chunks
fx="$here/../fixtures/captures"
for f in twice_same twice_2idb twopens usb_stick_in t2t3 usb_noise usb_noise_before_reply; do
    run 0 "decode --messages of $f.pcapng" $PL decode --messages --json "$fx/$f.pcapng"
    python3 - "$tmp/out" << 'PY' && ok "$f: every chunk and head verified" || bad "$f: chain"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
msgs = [m for m in msgs if "message" in m]
chained = [m for m in msgs if m["message"] in ("log_chunk", "log_end")]
assert chained, "no chunks"
bad = [(m["packet"], m.get("chain")) for m in chained if m.get("chain") != "verified"]
assert not bad, bad
PY
done
# a pen's second session re-sends a chunk whose predecessor came in the first
# session: its prev_link is checked against that one (a changed prev_link,
# with the link made to match it, is broken only by that check)
python3 "$here/mutate_prev_link.py" "$fx/t2t3.pcapng" "$tmp/t2t3_bad.pcapng"
run 6 "decode of a second session whose first chunk's prev_link is changed" \
    $PL decode --messages --json "$tmp/t2t3_bad.pcapng"
python3 - "$tmp/out" << 'PY' && ok "... broken by the check against the first session's chunk" || bad "cross-session prev_link"
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
c = [m for m in msgs if m.get("message") == "log_chunk" and m["packet"] == 24][0]
assert c["chain"] == "broken" and "ended where" in c["problem"], c
PY

# decode honours SIGINT and SIGTERM (penlink(1): exit 130): here while it waits
# for more of a capture on a pipe
for sig in TERM INT; do
    rm -f "$tmp/fifo"
    mkfifo "$tmp/fifo"
    $PL decode --messages "$tmp/fifo" > "$tmp/sig.out" 2> "$tmp/sig.err" &
    dp=$!
    exec 9> "$tmp/fifo"
    head -c 3000 "$tmp/t.pcapng" >&9
    i=0 # until decode has read those bytes (its handlers are in place by then)
    while [ "$(sed -n 's/^rchar: //p' /proc/$dp/io 2> /dev/null || echo 0)" -lt 3000 ] &&
        [ $i -lt 200 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    kill -$sig $dp
    i=0 # a decode that ignores the signal would wait for input for ever: fail it instead
    while kill -0 $dp 2> /dev/null && [ $i -lt 400 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    kill -KILL $dp 2> /dev/null
    wait $dp
    rc=$?
    exec 9>&-
    check "decode stopped by SIG$sig: exit 130 (got $rc), says so" \
        '[ $rc -eq 130 ] && grep -q "interrupted" $tmp/sig.err'
done

# the trace cannot be written to its end (a full disk) after the pen acknowledged:
# the pull says that its records were archived and acknowledged, and that the
# trace is incomplete (exit 7); the trace holds everything up to the failed packet.
# Two identical pens: the first's trace gives the AckLog frame; the shim fails
# the second's trace writes after the one holding it (its AckLogReply).
start_sim c1 --serial PEN-TRACE-3 --seed 7 --simulate-days 3 --start-time $T0
start_sim c2 --serial PEN-TRACE-3 --seed 7 --simulate-days 3 --start-time $T0
run 0 "pull --trace (a pen's twin)" $PL --device "sim:$tmp/c1.sock" --archive "$(archive c1)" \
    --trace "$tmp/c1.pcapng" pull
ack=$(python3 "$here/trace_frame_hex.py" "$tmp/c1.pcapng" 0 21)
run 7 "pull whose trace fails at the AckLogReply" env LD_PRELOAD="$SHIM" \
    PENLINK_ENOSPC_MATCH=c2.pcapng PENLINK_ENOSPC_AFTER_PATTERN="$ack" \
    $PL --device "sim:$tmp/c2.sock" --archive "$(archive c2)" --trace "$tmp/c2.pcapng" pull
cp "$tmp/err" "$tmp/c2.err"
check "... says the records were archived and acknowledged, and the trace is incomplete" \
    'grep -q "archived and acknowledged" $tmp/c2.err && grep -q "trace .*c2.pcapng is incomplete" $tmp/c2.err &&
     grep -q "No space left" $tmp/c2.err'
run 0 "info of both pens" sh -c "$PL --json --device sim:$tmp/c1.sock info > $tmp/c1.info &&
                                 $PL --json --device sim:$tmp/c2.sock info > $tmp/c2.info"
check "... and the pen did acknowledge them, as its twin did" \
    '[ "$(jget $tmp/c2.info log_acked_seq)" = "$(jget $tmp/c1.info log_acked_seq)" ] &&
     [ "$(jget $tmp/c2.info log_acked_seq)" -gt 0 ]'
run 0 "the incomplete trace decodes" $PL decode --messages --json "$tmp/c2.pcapng"
check "... up to the AckLog, without its reply" \
    'grep -q "\"message\":\"ack_log\"" $tmp/out && ! grep -q "\"message\":\"ack_log_reply\"" $tmp/out'

# what a capture that decodes leaves unsaid is said on stderr (the exit status
# stays 0): a frame cut short by the capture's end, a reply without its LogEnd,
# no penlink traffic at all
python3 "$here/wire_check.py" make split "$tmp/t.pcapng" "$tmp/split.pcapng"
python3 - "$tmp/split.pcapng" "$tmp/half.pcapng" "$tmp/other.pcapng" << 'PY'
import struct, sys
d = open(sys.argv[1], "rb").read()
blocks, i = [], 0
while i < len(d):
    ln = struct.unpack_from("<I", d, i + 4)[0]
    blocks.append(d[i:i + ln])
    i += ln
epbs = [k for k, b in enumerate(blocks) if struct.unpack_from("<I", b)[0] == 6]
# the first half of the packets: the capture stops inside the pull's reply
open(sys.argv[2], "wb").write(b"".join(blocks[:epbs[len(epbs) // 2]]))
# an Ethernet capture: no penlink traffic
shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
idb = struct.pack("<IIHHII", 1, 20, 1, 0, 0, 20)
pkt = bytes(60)
epb = struct.pack("<IIIIIII", 6, 32 + 60, 0, 0, 0, 60, 60) + pkt + struct.pack("<I", 32 + 60)
open(sys.argv[3], "wb").write(shb + idb + epb)
PY
run 0 "decode of a capture stopped inside a reply" $PL decode "$tmp/half.pcapng"
check "... says the capture ends inside a frame, and the reply has no LogEnd" \
    'grep -q "ends inside a frame" $tmp/err && grep -q "has no LogEnd: the capture ends before it" $tmp/err'
run 0 "decode of a capture with no penlink traffic" $PL decode "$tmp/other.pcapng"
check "... says so" 'grep -q "no penlink frame in the capture" $tmp/err'
run 0 "decode of a whole trace" $PL decode "$tmp/t.pcapng"
check "... has nothing of the kind to say" '! grep -q "ends inside\|no LogEnd\|no penlink frame" $tmp/err'

# small things: --help lists every exit status; in a capture every message has
# its time, the epoch itself (0) included; an empty Envelope says it has no fields
run 0 "penlink --help" $PL --help
check "--help lists exit status 9" 'grep -q "9 not authorised" $tmp/out'
python3 - "$tmp/zero.pcapng" << 'PY'
import struct, sys, zlib
h = b"PNLK\x01\x00" + struct.pack("<II", 0, 0)
frame = h + struct.pack("<H", zlib.crc32(h) & 0xFFFF)  # a zero-length payload
data = b"p\x01\x00\x00" + frame
shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
idb = struct.pack("<IIHHII", 1, 20, 147, 0, 0, 20)
ln = 32 + len(data)
epb = struct.pack("<IIIIIII", 6, ln, 0, 0, 0, len(data), len(data)) + data + struct.pack("<I", ln)
open(sys.argv[1], "wb").write(shb + idb + epb)
PY
run 0 "decode --messages --json of a packet at time 0" $PL decode --messages --json "$tmp/zero.pcapng"
check "... has time_ms 0, its time and time_us 0" \
    'grep -q "\"time_ms\":0,\"time\":\"1970-01-01T00:00:00.000Z\",\"time_us\":0" $tmp/out'
run 0 "decode --messages of a zero-length frame" $PL decode --messages "$tmp/zero.pcapng"
check "... says it is an empty Envelope" 'grep -q "^#   (no fields: an empty Envelope)$" $tmp/out'

finish
