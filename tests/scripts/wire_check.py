#!/usr/bin/env python3
"""Checks of the Wireshark dissector (tools/wireshark/penlink.lua) with tshark,
against `penlink decode --messages --json` and a pen's ground truth, and the
captures those checks need.

  wire_check.py compare LUA PROTO_DIR CAPTURE DECODE_JSONL [TRUTH_JSONL]
      every penlink frame tshark finds equals the message decode printed at
      the same packet (direction, message, request id, header, and every
      protobuf field), and the records tshark shows equal decode's records
      and the ground truth
  wire_check.py agree LUA PROTO_DIR CAPTURE DECODE_JSONL [WORD]
      on each LogChunk: tshark flags it (expert penlink.chunk.bad, whose text
      holds WORD if given) exactly when decode names a problem with it, and
      otherwise shows the same records, their times printed alike
  wire_check.py experts LUA PROTO_DIR CAPTURE
      prints, one per line: frames N, then each expert info as NAME COUNT
  wire_check.py make MODE IN OUT
      rewrites the pen->host bytes of the trace IN into OUT (a usbmon capture,
      LINKTYPE_USB_LINUX_MMAPPED), host->pen bytes kept one transfer per
      frame: MODE split (transfers of 1..97 bytes, frames across them), merge
      (up to five frames per transfer), badcrc (the payload of the 3rd
      pen->host frame flipped), garbage (junk between frames), orphan (the
      host's first request left out: a capture started after it), noise
      (before every transfer, another device's bulk IN on the same endpoint
      number 0x81 holding a frame, so before the pen's first reply too)
  wire_check.py frames CAPTURE
      prints how many whole frames each direction of CAPTURE carries
"""
import json
import random
import struct
import subprocess
import sys

MAGIC = b"PNLK"


def tshark(lua, proto_dir, capture, *extra):
    cmd = ["tshark", "-r", capture, "-X", "lua_script:" + lua,
           "-o", 'uat:protobuf_search_paths:"%s","TRUE"' % proto_dir,
           "-o", "protobuf.pbf_as_hf:TRUE"] + list(extra)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rc = p.returncode
    if rc == 2 and b"cut short in the middle of a packet" in p.stderr:
        rc = 0  # a capture whose writer was killed: every whole packet was read
    return rc, p.stdout, p.stderr


def as_list(v):
    return v if isinstance(v, list) else [v]


def walk(obj, visit):
    if isinstance(obj, dict):
        for k, v in obj.items():
            for x in as_list(v):
                visit(k, x)
                walk(x, visit)
    elif isinstance(obj, list):
        for x in obj:
            walk(x, visit)


def frames_of(packet):
    layers = packet["_source"]["layers"]
    return [f for f in as_list(layers.get("penlink", [])) if isinstance(f, dict)]


def pbf_leaves(frame):
    out = []

    def visit(k, v):
        if k.startswith("pbf.penlink.v1.") and not isinstance(v, (dict, list)):
            out.append((k.rsplit(".", 1)[1], v.replace(":", "")))
    walk(frame.get("protobuf", {}), visit)
    return sorted(out)


def message_fields(fields):
    """Names of the message-typed fields in a decoded message (tshark shows their bytes)."""
    names = set()
    for k, v in fields.items():
        for x in as_list(v):
            if isinstance(x, dict):
                names.add(k)
                names |= message_fields(x)
    return names


def decode_leaves(fields):
    out = []

    def flat(obj):
        for k, v in obj.items():
            for x in as_list(v):
                if isinstance(x, dict):
                    flat(x)
                elif isinstance(x, bool):
                    out.append((k, "1" if x else "0"))
                else:
                    out.append((k, str(x)))
    flat(fields)
    return sorted(out)


def records_of(frame):
    recs = []

    def find(obj):
        if isinstance(obj, dict):
            if "penlink.record.seq" in obj:
                r = {}
                for k, v in obj.items():
                    if k.startswith("penlink.record."):
                        r[k[len("penlink.record."):]] = v
                recs.append(r)
                return
            for v in obj.values():
                for x in as_list(v):
                    find(x)
    find(frame)
    return recs


KINDS = {1: "power_on", 2: "power_off", 3: "treatment_start", 4: "treatment_end",
         5: "cartridge_inserted", 6: "cartridge_removed", 7: "cartridge_refused",
         8: "depth_changed", 9: "speed_changed", 10: "fault", 11: "config_changed",
         12: "clock_set", 13: "log_overflow", 14: "security_event"}


def norm_record(r):
    out = {"seq": str(r["seq"]), "time_ms": str(r["time_ms"])}
    kind = r["kind"]
    out["kind"] = KINDS.get(int(kind), kind) if str(kind).isdigit() else kind
    for k, v in r.items():
        if k not in ("seq", "time_ms", "kind", "time", "schema", "") and not k.startswith("_"):
            out[k] = str(v)
    return out


def compare(lua, proto_dir, capture, decode_jsonl, truth=None):
    rc, out, err = tshark(lua, proto_dir, capture, "-T", "json", "--no-duplicate-keys")
    if rc != 0:
        sys.exit("tshark failed: %s" % err.decode(errors="replace"))
    packets = json.loads(out)
    lines = [json.loads(l) for l in open(decode_jsonl)]
    msgs = [l for l in lines if "message" in l and l["message"] != "damaged"]
    drecs = [norm_record(l) for l in lines if "seq" in l and "message" not in l]
    got = []
    trecs = []
    for p in packets:
        num = int(p["_source"]["layers"]["frame"]["frame.number"])
        for f in frames_of(p):
            if "penlink.message" not in f:
                continue  # a refused frame: not a message
            got.append((num, f))
            trecs += [norm_record(r) for r in records_of(f)]
    assert len(got) == len(msgs), "tshark found %d frames, decode %d" % (len(got), len(msgs))
    for (num, f), m in zip(got, msgs):
        where = "packet %d %s" % (num, m["message"])
        assert num == m["packet"], (where, m["packet"])
        assert f["penlink.direction"] == m["direction"], where
        assert f["penlink.message"] == m["message"], where
        assert int(f["penlink.request_id"]) == m["request_id"], where
        assert int(f["penlink.length"]) == m["frame"]["length"], where
        assert int(f["penlink.crc"], 16) == int(m["frame"]["crc"], 16), where
        assert int(f["penlink.header_check"], 16) == int(m["frame"]["header_check"], 16), where
        assert f["penlink.crc.status"] == "Good", where
        skip = message_fields(m["fields"])
        a = [x for x in pbf_leaves(f) if x[0] not in skip]
        b = decode_leaves(m["fields"])
        assert a == b, (where, [x for x in a if x not in b][:5], [x for x in b if x not in a][:5])
    assert trecs == drecs, "records: tshark %d, decode %d; first difference %s" % (
        len(trecs), len(drecs), next(((x, y) for x, y in zip(trecs, drecs) if x != y), None))
    if truth:
        want = [norm_record(json.loads(l)) for l in open(truth)]
        assert trecs == want, "records: tshark %d, ground truth %d; first difference %s" % (
            len(trecs), len(want), next(((x, y) for x, y in zip(trecs, want) if x != y), None))
    print("%d frames and %d records: tshark equals decode%s" % (
        len(got), len(trecs), " and the ground truth" if truth else ""))


def expert_texts(obj):
    out = []

    def visit(k, v):
        if k == "_ws.expert" and isinstance(v, dict) and "penlink.chunk.bad" in v:
            out.append(v.get("_ws.expert.message", ""))
    walk(obj, visit)
    return out


def agree(lua, proto_dir, capture, decode_jsonl, word=None):
    rc, out, err = tshark(lua, proto_dir, capture, "-T", "json", "--no-duplicate-keys")
    if rc != 0:
        sys.exit("tshark failed: %s" % err.decode(errors="replace"))
    lines = [json.loads(l) for l in open(decode_jsonl)]
    chunks, recs, cur = [], {}, None
    for l in lines:
        if l.get("message") == "log_chunk":
            cur = l["index"]
            chunks.append(l)
            recs[cur] = []
        elif "message" in l:
            cur = None
        elif "seq" in l and cur is not None:
            recs[cur].append(l)
    shown = []
    for p in json.loads(out):
        for f in frames_of(p):
            if f.get("penlink.message") == "log_chunk":
                shown.append(f)
    assert len(shown) == len(chunks), ("log_chunks: tshark %d, decode %d" % (len(shown), len(chunks)))
    for f, m in zip(shown, chunks):
        bad = expert_texts(f)
        where = "packet %d" % m["packet"]
        if m.get("problem"):
            assert bad, (where, "decode: %s; tshark: no expert info" % m["problem"])
            assert not word or any(word in t for t in bad), (where, bad)
            assert not records_of(f), (where, "records shown of a bad chunk")
            continue
        assert not bad, (where, bad)
        got = [(str(r["seq"]), str(r["time_ms"]), r["time"]) for r in records_of(f)]
        want = [(str(r["seq"]), str(r["time_ms"]), r["time"]) for r in recs[m["index"]]]
        assert got == want, (where, got[:3], want[:3])
    print("%d log_chunks: tshark agrees with decode" % len(chunks))


def experts(lua, proto_dir, capture):
    rc, out, err = tshark(lua, proto_dir, capture, "-T", "json", "--no-duplicate-keys")
    if rc != 0:
        sys.exit("tshark failed: %s" % err.decode(errors="replace"))
    packets = json.loads(out)
    counts = {}
    nframes = 0
    for p in packets:
        for f in frames_of(p):
            if "penlink.message" in f:
                nframes += 1

        def visit(k, v):
            if k == "_ws.expert" and isinstance(v, dict):
                for kk in v:
                    if kk.startswith("penlink."):
                        counts[kk] = counts.get(kk, 0) + 1
        walk(p["_source"]["layers"], visit)
    print("frames", nframes)
    for k, v in sorted(counts.items()):
        print(k, v)


# ---- captures ------------------------------------------------------------------

def read_pcapng(path):
    """(linktype of each interface, [(interface, ts_us, data)])."""
    d = open(path, "rb").read()
    off, ifs, pkts = 0, [], []
    while off + 12 <= len(d):
        t, n = struct.unpack_from("<II", d, off)
        if t == 1:
            ifs.append(struct.unpack_from("<H", d, off + 8)[0])
        elif t == 6:
            i, hi, lo, cap = struct.unpack_from("<IIII", d, off + 8)
            pkts.append((i, (hi << 32) | lo, d[off + 28:off + 28 + cap]))
        off += n
    return ifs, pkts


def streams(path):
    """The host->pen and pen->host byte streams of a trace, and each packet's direction."""
    ifs, pkts = read_pcapng(path)
    out = []
    for i, ts, data in pkts:
        if ifs[i] == 147:
            out.append((ts, data[2], data[4:]))
        elif ifs[i] == 220 and data[9] == 3 and len(data) > 64:
            ep = data[10]
            if (ep & 0x80 and data[8:9] == b"C") or (not ep & 0x80 and data[8:9] == b"S"):
                out.append((ts, 1 if ep & 0x80 else 0, data[64:]))
    return out


def split_frames(b):
    out, pos = [], 0
    while pos + 16 <= len(b):
        assert b[pos:pos + 4] == MAGIC
        n = struct.unpack_from("<I", b, pos + 6)[0]
        out.append(b[pos:pos + 16 + n])
        pos += 16 + n
    return out


def usbmon_block(urb, ts, kind, xfer, ep, dev, status, length, data):
    hdr = struct.pack("<QBBBBHBBqiiII8siiII", urb, ord(kind), xfer, ep, dev, 1, ord("-"),
                      0 if data else ord("<"), ts // 1000000, ts % 1000000, status, length,
                      len(data), b"\0" * 8, 0, 0, 0, 0)
    body = hdr + data
    pad = (-len(body)) % 4
    return (struct.pack("<IIIIIII", 6, 32 + len(body) + pad, 0, ts >> 32, ts & 0xFFFFFFFF,
                        len(body), len(body)) + body + b"\0" * pad
            + struct.pack("<I", 32 + len(body) + pad))


def pcapng(packets, noise=None):
    """packets: [(ts_us, dir, data)] as usbmon records bulk transfers of device 1.5, the way
    the kernel writes them: an IN transfer's submission without data before its completion,
    an OUT transfer's completion without data after its submission, and control transfers
    of another device (1.2) in between."""
    shb = struct.pack("<IIIHHqI", 0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0, -1, 28)
    idb = struct.pack("<IIHHII", 1, 20, 220, 0, 0, 20)
    out = [shb, idb]
    for urb, (ts, d, data) in enumerate(packets, 1):
        if noise:  # another device (1.7) read on its bulk IN endpoint 0x81, frames in it
            out.append(usbmon_block(20000 + urb, ts, "C", 3, 0x81, 7, 0, len(noise), noise))
        if d:
            out.append(usbmon_block(urb, ts, "S", 3, 0x81, 5, -115, 16384, b""))
            out.append(usbmon_block(urb, ts, "C", 3, 0x81, 5, 0, len(data), data))
        else:
            out.append(usbmon_block(urb, ts, "S", 3, 0x01, 5, -115, len(data), data))
            out.append(usbmon_block(urb, ts, "C", 3, 0x01, 5, 0, len(data), b""))
        if urb % 3 == 0:  # another device's control transfer, with data
            out.append(usbmon_block(10000 + urb, ts, "C", 2, 0x80, 2, 0, 18,
                                    bytes(range(18))))
    return b"".join(out)


def make(mode, src, dst):
    packets, pen_frames = [], []
    for ts, d, data in streams(src):
        if d == 0:
            packets.append((ts, 0, data))
        else:
            for fr in split_frames(data):
                pen_frames.append((ts, fr))
    write_in_order(dst, packets, pen_frames, mode, random.Random(15))


def write_in_order(dst, host, pen_frames, mode, rnd):
    """Interleaves host packets and pen transfers by the time of the pen frames."""
    if mode == "orphan":
        host = host[1:]
    events = [(ts, 0, i, data) for i, (ts, _, data) in enumerate(host)]
    if mode == "split":
        # cut the pen stream at frame boundaries by time: pieces of each burst of frames
        bursts = []
        for ts, fr in pen_frames:
            if bursts and bursts[-1][0] == ts:
                bursts[-1][1].append(fr)
            else:
                bursts.append((ts, [fr]))
        k = 0
        for ts, frs in bursts:
            blob = b"".join(frs)
            pos = 0
            while pos < len(blob):
                n = rnd.randint(1, 97)
                events.append((ts, 1, k, blob[pos:pos + n]))
                pos += n
                k += 1
    else:
        groups = []
        for ts, fr in pen_frames:
            if mode == "merge" and groups and groups[-1][0] == ts and len(groups[-1][1]) < 5:
                groups[-1][1].append(fr)
            else:
                groups.append((ts, [fr]))
        for k, (ts, frs) in enumerate(groups):
            if mode == "badcrc" and k == 2:
                fr = bytearray(frs[0])
                fr[-1] ^= 0x01  # the payload's last byte: the CRC no longer matches
                frs = [bytes(fr)] + frs[1:]
            if mode == "garbage":
                frs = [bytes(rnd.choice(range(1, 0x50)) for _ in range(rnd.randint(1, 40)))
                       + fr for fr in frs]
            events.append((ts, 1, k, b"".join(frs)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    noise = pen_frames[-1][1] if mode == "noise" else None
    open(dst, "wb").write(pcapng([(ts, d, data) for ts, d, _, data in events], noise))


def count_frames(path):
    n = {0: 0, 1: 0}
    buf = {0: b"", 1: b""}
    for _, d, data in streams(path):
        buf[d] += data
        while len(buf[d]) >= 16:
            i = buf[d].find(MAGIC)
            if i < 0:
                buf[d] = buf[d][-3:]
                break
            buf[d] = buf[d][i:]
            ln = struct.unpack_from("<I", buf[d], 6)[0]
            if len(buf[d]) < 16 + ln:
                break
            n[d] += 1
            buf[d] = buf[d][16 + ln:]
    print(n[0], n[1])


def main():
    cmd = sys.argv[1]
    if cmd == "compare":
        compare(*sys.argv[2:])
    elif cmd == "agree":
        agree(*sys.argv[2:7])
    elif cmd == "experts":
        experts(*sys.argv[2:5])
    elif cmd == "make":
        make(*sys.argv[2:5])
    elif cmd == "frames":
        count_frames(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
