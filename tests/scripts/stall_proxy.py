#!/usr/bin/env python3
"""A pen link that stops: forwards frames between a host and a simulated pen
(Unix sockets) until the host sends its N-th frame (docs/protocol.md section
2: a 16-byte header whose bytes 6..9 are the payload length, little-endian),
which it holds, unanswered, until the proxy is killed. A host that pulls
through it then waits, holding the archive open mid-pull, for as long as the
test needs. Given an archive instead of N, it holds the first frame the host
sends once a pull in that archive is 'running' (the pull's request).

Usage: stall_proxy.py LISTEN_SOCKET PEN_SOCKET N|ARCHIVE
"""
import os
import sqlite3
import selectors
import socket
import struct
import sys

HEADER = 16


def running(archive):
    """Whether a pull in @archive is 'running' (read-only; no archive yet: no)."""
    if not os.path.exists(archive):
        return False
    try:
        con = sqlite3.connect("file:%s?mode=ro" % archive, uri=True)
        try:
            return con.execute("SELECT count(*) FROM pulls WHERE result = 'running'").fetchone()[0] > 0
        finally:
            con.close()
    except sqlite3.Error:
        return False


def main():
    listen, pen, when = sys.argv[1], sys.argv[2], sys.argv[3]
    stall_at = int(when) if when.isdigit() else None
    if os.path.exists(listen):
        os.unlink(listen)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(listen)
    srv.listen(1)
    host, _ = srv.accept()
    dev = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dev.connect(pen)
    sel = selectors.DefaultSelector()
    sel.register(host, selectors.EVENT_READ)
    sel.register(dev, selectors.EVENT_READ)
    pending = b""  # host bytes not yet forwarded: whole frames go through
    frames = 0
    stalled = False
    while True:
        for key, _ in sel.select():
            data = key.fileobj.recv(65536)
            if not data:
                return
            if key.fileobj is dev:
                host.sendall(data)
                continue
            if stalled:
                continue
            pending += data
            while len(pending) >= HEADER:
                (length,) = struct.unpack_from("<I", pending, 6)
                if len(pending) < HEADER + length:
                    break
                frame, pending = pending[:HEADER + length], pending[HEADER + length:]
                frames += 1
                if frames == stall_at or (stall_at is None and running(when)):
                    print("stall_proxy: holding host frame %d" % frames, file=sys.stderr,
                          flush=True)
                    stalled = True
                    break
                dev.sendall(frame)


if __name__ == "__main__":
    main()
