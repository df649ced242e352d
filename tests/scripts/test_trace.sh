#!/bin/sh
# `penlink --trace` over the simulator and what reads a trace: `penlink
# decode` (records equal the pen's ground truth, every message with its
# fields, the hash chain and head signatures verified), -v / -vv (one line per
# frame), a trace of a killed penlink, and hostile or damaged captures.
# Usage: test_trace.sh PENLINK PENLINK_SIM
# PENLINK_WRAP (e.g. a valgrind command line) is put before every penlink run.
set -u
PL="${PENLINK_WRAP:-} $1"
SIM=$2
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

finish
