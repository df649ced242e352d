#!/usr/bin/env python3
"""Prints, in hex, the first whole frame of a stream trace (penlink stream link
type) whose Envelope body is field BODY (e.g. 21, AckLog), in the direction DIR
(0 host to pen, 1 pen to host). Usage: trace_frame_hex.py TRACE.pcapng DIR BODY"""
import struct
import sys


def varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return v, i


def bodies(payload):
    i = 0
    while i < len(payload):
        k, i = varint(payload, i)
        if k & 7 == 0:
            _, i = varint(payload, i)
        elif k & 7 == 2:
            n, i = varint(payload, i)
            yield k >> 3
            i += n
        else:
            return


d = open(sys.argv[1], "rb").read()
want_dir, want_body = int(sys.argv[2]), int(sys.argv[3])
i = 0
while i + 12 <= len(d):
    t, ln = struct.unpack("<II", d[i:i + 8])
    if t == 6:
        cl = struct.unpack("<I", d[i + 20:i + 24])[0]
        data = d[i + 28:i + 28 + cl]
        if data[:1] == b"p" and data[2] == want_dir:
            f = 4
            while f + 16 <= len(data):
                n = struct.unpack("<I", data[f + 6:f + 10])[0]
                if want_body in bodies(data[f + 16:f + 16 + n]):
                    print(data[f:f + 16 + n].hex())
                    sys.exit(0)
                f += 16 + n
    i += ln
sys.exit("no such frame")
