#!/usr/bin/env python3
"""A pen that answers Hello, then refuses every other request with an Error
whose message is the bytes given (as hex): any bytes, UTF-8 or not, which a
protobuf library would refuse to put in a string field, so the messages are
encoded by hand from docs/protocol.md (framing, section 2) and
protocol/penlink.proto (Envelope, HelloReply, Error).

    pen_says.py SOCKET SERIAL MESSAGE_HEX

Serves one client after another on the Unix socket SOCKET until killed.
"""
import os
import socket
import sys
import zlib


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def field_bytes(num, b):
    return varint(num << 3 | 2) + varint(len(b)) + b


def frame(payload):
    head = b"PNLK" + bytes([1, 0]) + len(payload).to_bytes(4, "little")
    head += (zlib.crc32(payload) & 0xFFFFFFFF).to_bytes(4, "little")
    head += (zlib.crc32(head) & 0xFFFF).to_bytes(2, "little")
    return head + payload


def read_varint(b, i):
    v = shift = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return v, i


def envelope_fields(payload):
    """request_id and the body's field number of an Envelope."""
    rid, body, i = 0, 0, 0
    while i < len(payload):
        tag, i = read_varint(payload, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = read_varint(payload, i)
            if num == 1:
                rid = v
        elif wt == 2:
            n, i = read_varint(payload, i)
            i += n
            body = num
        else:
            return rid, body
    return rid, body


HELLO, HELLO_REPLY, ERROR = 10, 11, 25
ERROR_INTERNAL = 14


def serve(conn, serial, message):
    buf = b""
    while True:
        data = conn.recv(65536)
        if not data:
            return
        buf += data
        while len(buf) >= 16:
            n = int.from_bytes(buf[6:10], "little")
            if len(buf) < 16 + n:
                break
            payload, buf = buf[16:16 + n], buf[16 + n:]
            rid, body = envelope_fields(payload)
            if body == HELLO:
                reply = (field_varint(1, 1) + field_varint(2, 0) + field_varint(3, 7)
                         + field_varint(4, 1048576) + field_bytes(5, serial))
                env = field_varint(1, rid) + field_bytes(HELLO_REPLY, reply)
            else:
                err = field_varint(1, ERROR_INTERNAL) + field_bytes(2, message)
                env = field_varint(1, rid) + field_bytes(ERROR, err)
            conn.sendall(frame(env))


def main():
    path, serial, message = sys.argv[1], sys.argv[2].encode(), bytes.fromhex(sys.argv[3])
    tmp = path + ".tmp"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(tmp)
    s.listen(1)
    os.rename(tmp, path)  # the socket appears only once it listens
    while True:
        conn, _ = s.accept()
        with conn:
            try:
                serve(conn, serial, message)
            except OSError:
                pass


main()
