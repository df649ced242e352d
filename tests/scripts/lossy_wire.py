#!/usr/bin/env python3
"""A lossy wire between a penlink host and a pen, for tests.

A proxy on a Unix stream socket that knows the framing of docs/protocol.md
section 2 (16-byte header, then one Envelope) and damages one chosen frame of
one direction in one of these ways:

  flip_payload   one bit of the payload flipped (the CRC no longer matches)
  flip_header    one bit of the 16-byte header flipped
  drop           the frame never arrives
  duplicate      the frame arrives twice
  swap           the frame arrives after the next frame of its direction
  delay          the frame (and everything behind it) is held back DELAY ms
  foreign_id     the Envelope's request_id (field 1) is replaced by one no
                 request carried; CRC and header check are recomputed, so the
                 frame is well formed
  truncate_close the first half of the frame arrives, then the connection
                 closes both ways

Frames are counted per direction from 0 ("pen" frames go pen -> host, "host"
frames host -> pen), over one connection. Every frame seen is logged with
its body and request id, so a clean run gives the positions to fault.

Library use: Proxy(listen_path, target_path, fault, (direction, index)).
Command line, to replay one case by hand:

    lossy_wire.py LISTEN TARGET [FAULT DIRECTION:INDEX] [--delay MS] [--seed N]
"""

import os
import random
import selectors
import socket
import sys
import threading
import time
import zlib

MAGIC = b"PNLK"
HEADER = 16

FAULTS = ["flip_payload", "flip_header", "drop", "duplicate", "swap", "delay",
          "foreign_id", "truncate_close"]

# Envelope body fields (protocol/penlink.proto)
BODIES = {10: "hello", 11: "hello_reply", 12: "get_info", 13: "device_info",
          14: "get_config", 15: "config", 16: "set_config", 17: "set_config_reply",
          18: "pull_log", 19: "log_chunk", 20: "log_end", 21: "ack_log",
          22: "ack_log_reply", 23: "set_clock", 24: "set_clock_reply", 25: "error",
          26: "get_nonce", 27: "nonce"}

# A request id no request of a session carries (the reference host counts
# up from 1): the original plus this.
FOREIGN_ID_OFFSET = 0x10000


# ---- protobuf wire format, just enough to walk an Envelope ---------------

def varint(b, i):
    x = s = 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return x, i


def put_varint(v):
    out = bytearray()
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            out.append(c | 0x80)
        else:
            out.append(c)
            return bytes(out)


def fields(b):
    """[(number, wire type, value, raw bytes of the whole field)] of a message."""
    out = []
    i = 0
    while i < len(b):
        start = i
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, i = varint(b, i)
        elif wt == 1:
            val, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            val, i = b[i:i + n], i + n
        elif wt == 5:
            val, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.append((num, wt, val, b[start:i]))
    return out


def crc32(b):
    return zlib.crc32(b) & 0xFFFFFFFF


def frame(payload, flags=0):
    head = MAGIC + bytes([1, flags]) + len(payload).to_bytes(4, "little") + \
        crc32(payload).to_bytes(4, "little")
    return head + (crc32(head) & 0xFFFF).to_bytes(2, "little") + payload


def describe(fr):
    """(body name, request id, {field: value} of the body's varints) of a frame."""
    body, rid, inner = "none", None, {}
    for num, wt, val, _ in fields(fr[HEADER:]):
        if num == 1 and wt == 0:
            rid = val
        elif num in BODIES and wt == 2:
            body = BODIES[num]
            inner = {n: v for n, w, v, _ in fields(val) if w == 0}
        elif wt == 2:
            body = "unknown_%d" % num
    return body, rid, inner


def with_request_id(fr, rid):
    """The frame with the Envelope's field 1 set to @rid, CRC and check redone."""
    parts = [raw for num, wt, _, raw in fields(fr[HEADER:]) if not (num == 1 and wt == 0)]
    return frame(put_varint(1 << 3) + put_varint(rid) + b"".join(parts), fr[5])


# ---- the proxy -------------------------------------------------------------

def connect_pen(path):
    """Connects to the pen's socket; a socket file can appear a moment before
    its server listens, so a refused connection is tried again for 5 s."""
    for attempt in range(250):
        pen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            pen.connect(path)
            return pen
        except ConnectionRefusedError:
            pen.close()
            if attempt == 249:
                raise
            time.sleep(0.02)


class Proxy(threading.Thread):
    """Serves one connection on @listen_path, relayed to @target_path, with
    @fault applied to frame @at = (direction, index)."""

    def __init__(self, listen_path, target_path, fault=None, at=None, delay_ms=0, rng=None):
        super().__init__(daemon=True)
        if fault is not None and fault not in FAULTS:
            raise ValueError("unknown fault " + fault)
        self.target_path = target_path
        self.fault, self.at = fault, at
        self.delay = delay_ms / 1000.0
        self.rng = rng or random.Random(0)
        self.log = []          # (direction, index, body, request id, inner fields)
        self.applied = None    # what the fault did, in words
        self.error = None      # an exception in the proxy itself
        self._halt = threading.Event()
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(listen_path)
        self.lsock.listen(1)

    def stop(self):
        self._halt.set()
        self.join(30)

    def run(self):
        try:
            self._serve()
        except Exception as e:  # reported by the caller, never swallowed
            self.error = "%s: %s" % (type(e).__name__, e)
        finally:
            self.lsock.close()

    def _serve(self):
        sel = selectors.DefaultSelector()
        self.lsock.setblocking(False)
        sel.register(self.lsock, selectors.EVENT_READ)
        host = None
        while host is None:
            if self._halt.is_set():
                return
            if sel.select(0.02):
                host, _ = self.lsock.accept()
        sel.unregister(self.lsock)
        pen = connect_pen(self.target_path)
        self.socks = {"host": host, "pen": pen}      # source of each direction
        self.dst = {"host": pen, "pen": host}
        self.buf = {"host": bytearray(), "pen": bytearray()}
        self.count = {"host": 0, "pen": 0}
        self.queue = {"host": [], "pen": []}         # [release time, bytes]
        self.held = {"host": None, "pen": None}      # a frame waiting to be swapped
        self.closed = False
        for d, s in self.socks.items():
            s.setblocking(True)
            sel.register(s, selectors.EVENT_READ, d)
        try:
            while not self.closed and not self._halt.is_set():
                now = time.monotonic()
                wait = 0.02
                for q in self.queue.values():
                    if q:
                        wait = max(0.0, min(wait, q[0][0] - now))
                for key, _ in sel.select(wait):
                    d = key.data
                    try:
                        data = key.fileobj.recv(65536)
                    except ConnectionError:  # a peer left with bytes unread
                        data = b""
                    if not data:
                        self.closed = True  # a peer left: so does the wire
                        break
                    self._take(d, data)
                    if self.closed:
                        break
                self._flush()
        finally:
            for s in self.socks.values():
                s.close()

    def _flush(self):
        now = time.monotonic()
        for d, q in self.queue.items():
            while q and q[0][0] <= now and not self.closed:
                try:
                    self.dst[d].sendall(q.pop(0)[1])
                except OSError:
                    self.closed = True

    def _send(self, d, data, delay=0.0):
        q = self.queue[d]
        at = time.monotonic() + delay
        if q:
            at = max(at, q[-1][0])  # nothing overtakes a delayed frame
        q.append([at, data])

    def _take(self, d, data):
        b = self.buf[d]
        b += data
        while len(b) >= HEADER:
            if b[:4] != MAGIC:  # not from an honest peer: relay untouched
                self._send(d, bytes(b))
                del b[:]
                return
            n = int.from_bytes(b[6:10], "little")
            if len(b) < HEADER + n:
                return
            fr = bytes(b[:HEADER + n])
            del b[:HEADER + n]
            self._frame(d, fr)
            if self.closed:
                return

    def _frame(self, d, fr):
        idx = self.count[d]
        self.count[d] += 1
        body, rid, inner = describe(fr)
        self.log.append((d, idx, body, rid, inner))
        if self.fault is None or (d, idx) != tuple(self.at):
            self._send(d, fr)
            if self.held[d] is not None:  # the frame after a swapped one
                self._send(d, self.held[d])
                self.held[d] = None
            return
        f = self.fault
        what = "%s frame %d (%s, request %s)" % (d, idx, body, rid)
        if f == "flip_payload":
            bit = self.rng.randrange((len(fr) - HEADER) * 8)
            b = bytearray(fr)
            b[HEADER + bit // 8] ^= 1 << (bit % 8)
            self._send(d, bytes(b))
            self.applied = "flipped payload bit %d of %s" % (bit, what)
        elif f == "flip_header":
            bit = self.rng.randrange(HEADER * 8)
            b = bytearray(fr)
            b[bit // 8] ^= 1 << (bit % 8)
            self._send(d, bytes(b))
            self.applied = "flipped header bit %d of %s" % (bit, what)
        elif f == "drop":
            self.applied = "dropped " + what
        elif f == "duplicate":
            self._send(d, fr)
            self._send(d, fr)
            self.applied = "sent twice: " + what
        elif f == "swap":
            self.held[d] = fr
            self.applied = "held until after the next frame: " + what
        elif f == "delay":
            self._send(d, fr, self.delay)
            self.applied = "delayed %d ms: %s" % (self.delay * 1000, what)
        elif f == "foreign_id":
            new = (rid or 0) + FOREIGN_ID_OFFSET
            self._send(d, with_request_id(fr, new))
            self.applied = "request id %s -> %d: %s" % (rid, new, what)
        elif f == "truncate_close":
            cut = HEADER + (len(fr) - HEADER) // 2
            self._send(d, fr[:cut])
            self._flush_all()
            self.closed = True
            self.applied = "sent %d of %d bytes, then closed: %s" % (cut, len(fr), what)

    def _flush_all(self):
        for d, q in self.queue.items():
            while q:
                try:
                    self.dst[d].sendall(q.pop(0)[1])
                except OSError:
                    break
            try:
                self.dst[d].shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description="a lossy wire between penlink and a pen")
    ap.add_argument("listen")
    ap.add_argument("target")
    ap.add_argument("fault", nargs="?", choices=FAULTS)
    ap.add_argument("at", nargs="?", help="DIRECTION:INDEX, e.g. pen:4")
    ap.add_argument("--delay", type=int, default=2500, help="ms, for delay (2500)")
    ap.add_argument("--seed", type=int, default=1, help="for the flipped bit (1)")
    a = ap.parse_args(argv)
    at = None
    if a.fault:
        d, i = a.at.split(":")
        at = (d, int(i))
    while True:  # one connection after the other, until interrupted
        p = Proxy(a.listen, a.target, a.fault, at, a.delay, random.Random(a.seed))
        p.start()
        p.join()
        for d, i, body, rid, _ in p.log:
            print("%-4s %3d %-14s request %s" % (d, i, body, rid))
        print(p.applied or "no fault applied", flush=True)
        if p.error:
            print("proxy error:", p.error)
        os.unlink(a.listen)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        pass
