#!/usr/bin/env python3
"""Writes hostile (and a few odd but honest) penlink stream captures into DIR,
for the checks that `penlink decode` and the Wireshark dissector agree on
them and stay bounded. Each is a pcapng of the penlink stream link type
(docs/protocol.md section 11): a PullLog request, then the pen's frames.

  hostile_captures.py DIR

  bomb.pcapng       a LogChunk whose 16 KiB of data inflate to 16 MiB, raw_size 100
  toobig.pcapng     a LogChunk whose raw_size is above the 512 KiB a chunk may hold
  stored.pcapng     honest records, deflated as stored blocks
  fixed.pcapng      honest records, deflated with the fixed Huffman codes only
  weirdrec.pcapng   a record batch with a kind beyond 32 bits
  seqwrap.pcapng    a record batch whose seqs wrap past 2^64
  t_max.pcapng      records at the largest time a record may have
  t_min.pcapng      records at the smallest
  quad.pcapng       256 KiB of intact frame headers, one every 16 bytes, each
                    claiming an 8 KiB payload (rule 5 of protocol.md section 2
                    would make it 16384 CRCs over 8 KiB), in 64 KiB packets
"""
import os
import struct
import sys
import zlib


def pad4(b):
    return b + b"\0" * ((4 - len(b) % 4) % 4)


def block(btype, body):
    return struct.pack("<II", btype, 12 + len(body)) + body + struct.pack("<I", 12 + len(body))


def shb():
    return block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(linktype):
    return block(1, struct.pack("<HHI", linktype, 0, 0))


def epb(data, ts):
    return block(6, struct.pack("<IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), len(data))
                 + pad4(data))


def frame(payload):
    h = b"PNLK\x01\x00" + struct.pack("<II", len(payload), zlib.crc32(payload))
    return h + struct.pack("<H", zlib.crc32(h) & 0xFFFF) + payload


def vint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def fv(num, v):
    return vint(num << 3) + vint(v)


def fb(num, b):
    return vint(num << 3 | 2) + vint(len(b)) + b


def env(rid, body_num, body):
    return fv(1, rid) + fb(body_num, body)


def zz(x):
    return ((x << 1) ^ (x >> 63)) & (2 ** 64 - 1)


def batch(first, kinds, times, width=8):
    """A RecordBatch (docs/protocol.md section 6) of records with no fields."""
    n = len(kinds)
    d = [0] + [times[i] - times[i - 1] for i in range(1, n)]
    planes = b"".join(bytes([(zz(x) >> (8 * b)) & 0xFF for x in d]) for b in range(width))
    layout = b"".join(vint(k) + vint(0) for k in sorted(set(kinds)))
    return (fv(1, first) + fv(2, n) + fb(3, layout) + fb(4, b"".join(vint(k) for k in kinds))
            + fv(5, zz(times[0])) + fv(17, width) + fb(18, planes))


def chunk(first, count, raw_size, data):
    return fv(1, first) + fv(2, count) + fv(3, raw_size) + fb(4, data)


def capture(chunk_body):
    frames = [(0, frame(env(4, 18, fv(1, 0)))), (1, frame(env(4, 19, chunk_body)))]
    return shb() + idb(147) + b"".join(
        epb(bytes([0x70, 1, d, 0]) + f, i + 1) for i, (d, f) in enumerate(frames))


def bare_header(length):
    h = b"PNLK\x01\x00" + struct.pack("<II", length, 0)
    return h + struct.pack("<H", zlib.crc32(h) & 0xFFFF)


def deflate(raw, level=6, strategy=zlib.Z_DEFAULT_STRATEGY):
    c = zlib.compressobj(level, zlib.DEFLATED, 15, 8, strategy)
    return c.compress(raw) + c.flush()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    def w(name, chunk_body):
        open(os.path.join(out, name), "wb").write(capture(chunk_body))

    w("bomb.pcapng", chunk(0, 1, 100, zlib.compress(b"\0" * (16 << 20), 9)))
    honest = batch(0, [1, 3, 8, 4, 2] * 40, [1772409600000 + 1000 * i for i in range(200)])
    w("toobig.pcapng", chunk(0, 200, 600 * 1024, zlib.compress(honest)))
    w("stored.pcapng", chunk(0, 200, len(honest), deflate(honest, 0)))
    w("fixed.pcapng", chunk(0, 200, len(honest), deflate(honest, 9, zlib.Z_FIXED)))
    b = batch(0, [1, 99, 2 ** 32 + 1], [2 ** 62, -2 ** 62, 0])
    w("weirdrec.pcapng", chunk(0, 3, len(b), zlib.compress(b)))
    b = batch(2 ** 64 - 2, [1, 1, 1], [0, 1, 2])
    w("seqwrap.pcapng", chunk(2 ** 64 - 2, 3, len(b), zlib.compress(b)))
    b = batch(0, [1, 2], [2 ** 63 - 1001, 2 ** 63 - 1])
    w("t_max.pcapng", chunk(0, 2, len(b), zlib.compress(b)))
    b = batch(0, [1, 2], [-2 ** 63, -2 ** 63 + 5])
    w("t_min.pcapng", chunk(0, 2, len(b), zlib.compress(b)))

    run = bare_header(8 << 10) * (16 << 10)
    packets = [run[i:i + (64 << 10)] for i in range(0, len(run), 64 << 10)]
    open(os.path.join(out, "quad.pcapng"), "wb").write(shb() + idb(147) + b"".join(
        epb(bytes([0x70, 1, 1, 0]) + p, i + 1) for i, p in enumerate(packets)))


main()
