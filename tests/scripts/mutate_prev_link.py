"""Changes the prev_link of the second-to-last LogChunk of a stream trace
(penlink stream link type) and makes its link, CRC and header check match
again: the chunk then breaks only the check of prev_link against the pen's
chunk before it. Usage: mutate_prev_link.py IN.pcapng OUT.pcapng"""
import hashlib, struct, sys, zlib
d = bytearray(open(sys.argv[1], "rb").read())
def varint(b, i):
    v = s = 0
    while True:
        c = b[i]; i += 1; v |= (c & 0x7F) << s; s += 7
        if c < 0x80: return v, i
def fields(b, i, j):
    while i < j:
        k, i = varint(b, i); wt = k & 7
        if wt == 0:
            v, i = varint(b, i); yield k >> 3, v, None
        elif wt == 2:
            n, i = varint(b, i); yield k >> 3, (i, i + n), None; i += n
        else: raise ValueError(wt)
# the enhanced packet blocks; the LogChunks of the pen (direction byte 1)
i, chunks = 0, []
while i + 12 <= len(d):
    t, L = struct.unpack("<II", d[i:i + 8])
    if t == 6:
        cl = struct.unpack("<I", d[i + 20:i + 24])[0]
        a, b = i + 28, i + 28 + cl
        if d[a] == 0x70 and d[a + 2] == 1:
            f = a + 4
            while f + 16 <= b:
                n = struct.unpack("<I", d[f + 6:f + 10])[0]
                p, q = f + 16, f + 16 + n
                body = {k: v for k, v, _ in fields(d, p, q)}
                if 19 in body:
                    chunks.append((f, p, q, body[19]))
                f = q
    i += L
# the first chunk of the second session (t2t3.pcapng: the second session
# pulls two chunks which the first one pulled too)
f, p, q, (cs, ce) = chunks[-2]
c = {k: v for k, v, _ in fields(d, cs, ce)}
prev = c[12]; link = c[10]; data = c[4]
d[prev[0]] ^= 1
pre = (b"penlink-chain-v1" + bytes(d[prev[0]:prev[1]]) + struct.pack("<QIII", c.get(1, 0), c.get(2, 0), c.get(3, 0), data[1] - data[0]))
d[link[0]:link[1]] = hashlib.sha256(pre + bytes(d[data[0]:data[1]])).digest()
n = q - p
d[f + 10:f + 14] = struct.pack("<I", zlib.crc32(bytes(d[p:q])))
d[f + 14:f + 16] = struct.pack("<H", zlib.crc32(bytes(d[f:f + 14])) & 0xFFFF)
open(sys.argv[2], "wb").write(bytes(d))
