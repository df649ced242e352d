#!/usr/bin/env python3
"""Signed configuration and signed clock settings, checked from
docs/protocol.md section 9 alone: this client signs with PyNaCl (libsodium)
over the bytes the document specifies, and every way of getting it wrong
must be refused with its own error code, change nothing, and leave a
security_event record in the pen's log (a SetClock's with 256 added).

Usage: run_trust.py --socket PATH --serial SERIAL --key-seed HEX [--doc PROTOCOL_MD]
(the simulator was provisioned with the public key of that seed; --doc: the
signed-clock example of section 9.4 is checked against these bytes).
"""
import argparse
import hashlib
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import penlink_client as pl  # noqa: E402
from nacl.exceptions import BadSignatureError  # noqa: E402
from nacl.signing import SigningKey, VerifyKey  # noqa: E402

PASSED = FAILED = 0
AUTH_REQUIRED, AUTH_FAILED, REVISION_CONFLICT, AUTH_NONCE = 12, 13, 8, 15
SIGNED_CONFIG, SIGNED_CHUNKS, SIGNED_CLOCK = 8, 16, 64
CLOCK_EVENT = 256  # added to a refused SetClock's security_event code (section 5, SetClock)


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
    else:
        FAILED += 1
    print("%s %s%s" % ("PASS" if ok else "FAIL", name, (": " + detail) if detail else ""))
    sys.stdout.flush()
    return ok


def text(b):
    return struct.pack("B", len(b)) + b


# Config fields in signing order: (field number, name, is_text)
FIELDS = [(2, "depth_min_um", 0), (3, "depth_max_um", 0), (4, "depth_default_um", 0),
          (5, "speed_min_sps", 0), (6, "speed_max_sps", 0), (7, "max_treatment_s", 0),
          (8, "max_cartridge_uses", 0), (9, "auto_off_s", 0), (10, "device_label", 1),
          (11, "clinic_id", 1)]


def signed_bytes(serial, expected_revision, nonce, change):
    """docs/protocol.md 9.2, byte by byte."""
    b = b"penlink-config-v1" + text(serial.encode()) + struct.pack("<I", expected_revision)
    b += nonce
    for num, name, is_text in FIELDS:
        if name in change:
            b += struct.pack("B", num)
            v = change[name]
            b += text(v.encode()) if is_text else struct.pack("<I", v)
    return b


def clock_bytes(serial, nonce, time_ms):
    """docs/protocol.md 9.4, byte by byte."""
    return b"penlink-clock-v1" + text(serial.encode()) + nonce + struct.pack("<q", time_ms)


def doc_vector(path, name):
    """The hex block tagged <!-- vector: NAME --> in the document."""
    doc = open(path).read()
    m = re.search(r"<!-- vector: %s -->\s*```hex\n(.*?)```" % re.escape(name), doc, re.S)
    return bytes.fromhex(m.group(1)) if m else None


class Pen:
    def __init__(self, sock):
        self.c = pl.Client(sock, timeout=10.0)
        self.c.drain()
        self.hello = self.c.hello(features=7 | SIGNED_CONFIG | SIGNED_CHUNKS)

    def nonce(self):
        return self.c.request(lambda e: e.get_nonce.SetInParent(), "nonce").nonce

    def set_config(self, expected, change, key=None, nonce=None, serial=None, sig_fn=None,
                   send_change=None):
        """Builds (and by default signs) a SetConfig; returns the Envelope fill function."""
        env_change = send_change if send_change is not None else change

        def fill(env):
            s = env.set_config
            s.expected_revision = expected
            for k, v in env_change.items():
                setattr(s.config, k, v)
            if key is not None:
                msg = signed_bytes(serial, expected, nonce, change)
                s.signature = sig_fn(msg) if sig_fn else key.sign(msg).signature
                s.key = bytes(key.verify_key)
                s.nonce = nonce
        return fill

    def send(self, fill):
        return self.c.request(fill, "set_config_reply")

    def config(self):
        return self.c.get_config()

    def set_clock(self, time_ms, key=None, nonce=None, serial=None, signed_ms=None):
        """A SetClock, signed (over signed_ms, by default time_ms) when a key is given."""
        def fill(env):
            s = env.set_clock
            s.time_ms = time_ms
            if key is not None:
                msg = clock_bytes(serial, nonce, time_ms if signed_ms is None else signed_ms)
                s.signature = key.sign(msg).signature
                s.key = bytes(key.verify_key)
                s.nonce = nonce
        return self.c.request(fill, "set_clock_reply")


def refused(name, fn, code):
    try:
        rep = fn()
    except pl.PenError as e:
        return check(name, e.code == code, "code %d: %s" % (e.code, e.message))
    return check(name, False, "applied: %s" % pl.message_to_dict(rep))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--socket", required=True)
    ap.add_argument("--serial", required=True)
    ap.add_argument("--key-seed", required=True)
    ap.add_argument("--doc")
    a = ap.parse_args()
    key = SigningKey(bytes.fromhex(a.key_seed))
    stranger = SigningKey(b"\x07" * 32)
    p = Pen(a.socket)
    info = p.c.get_info()
    check("HelloReply announces SIGNED_CONFIG and SIGNED_CHUNKS",
          p.hello.features & (SIGNED_CONFIG | SIGNED_CHUNKS) == SIGNED_CONFIG | SIGNED_CHUNKS)
    check("DeviceInfo: a 32-byte device key", len(info.device_key) == 32)
    check("DeviceInfo: the provisioned config key, and only it",
          list(info.config_keys) == [bytes(key.verify_key)])
    rev = p.config().revision
    events = []

    refused("unsigned SetConfig: AUTH_REQUIRED",
            lambda: p.send(p.set_config(rev, {"depth_max_um": 2000})), AUTH_REQUIRED)
    events.append(AUTH_REQUIRED)

    n = p.nonce()
    check("GetNonce: 32 bytes", len(n) == 32)
    good = p.set_config(rev, {"depth_max_um": 2000, "clinic_id": "Clinic 7"}, key, n, a.serial)
    rep = p.send(good)
    check("signed SetConfig: applied", rep.revision == rev + 1
          and rep.config.depth_max_um == 2000 and rep.config.clinic_id == "Clinic 7")
    rev += 1
    after = pl.message_to_dict(p.config())

    refused("the same SetConfig again (replayed): AUTH_NONCE", lambda: p.send(good), AUTH_NONCE)
    events.append(AUTH_NONCE)

    n = p.nonce()
    refused("signed by a key the pen does not know: AUTH_FAILED",
            lambda: p.send(p.set_config(rev, {"depth_max_um": 1500}, stranger, n, a.serial)),
            AUTH_FAILED)
    events.append(AUTH_FAILED)

    n = p.nonce()
    refused("signed for another pen's serial: AUTH_FAILED",
            lambda: p.send(p.set_config(rev, {"depth_max_um": 1500}, key, n, "PEN-OTHER")),
            AUTH_FAILED)
    events.append(AUTH_FAILED)

    n = p.nonce()
    refused("a value changed after signing: AUTH_FAILED",
            lambda: p.send(p.set_config(rev, {"depth_max_um": 1500}, key, n, a.serial,
                                        send_change={"depth_max_um": 3000})), AUTH_FAILED)
    events.append(AUTH_FAILED)

    old = p.nonce()
    n = p.nonce()  # a newer nonce replaces the older one
    refused("an older nonce after a newer one: AUTH_NONCE",
            lambda: p.send(p.set_config(rev, {"depth_max_um": 1500}, key, old, a.serial)),
            AUTH_NONCE)
    events.append(AUTH_NONCE)

    n = p.nonce()
    refused("a bit flipped in the signature: AUTH_FAILED",
            lambda: p.send(p.set_config(rev, {"depth_max_um": 1500}, key, n, a.serial,
                                        sig_fn=lambda m: bytes([key.sign(m).signature[0] ^ 1])
                                        + key.sign(m).signature[1:])), AUTH_FAILED)
    events.append(AUTH_FAILED)

    n = p.nonce()
    refused("a stale revision, signed: REVISION_CONFLICT",
            lambda: p.send(p.set_config(rev - 1, {"depth_max_um": 1500}, key, n, a.serial)),
            REVISION_CONFLICT)

    check("nothing changed by the refused requests",
          pl.message_to_dict(p.config()) == after)

    n = p.nonce()
    p.c.close()
    p = Pen(a.socket)  # a new session: the nonce of the last one is gone
    refused("a nonce from an earlier session: AUTH_NONCE",
            lambda: p.send(p.set_config(rev, {"depth_max_um": 1500}, key, n, a.serial)),
            AUTH_NONCE)
    events.append(AUTH_NONCE)

    n = p.nonce()
    rep = p.send(p.set_config(rev, {"depth_max_um": 2500}, key, n, a.serial))
    check("signed again with a fresh nonce: applied", rep.config.depth_max_um == 2500)

    # a signed clock (section 9.4): the same keys, the same nonce scheme
    if a.doc:
        check("the signed-clock bytes equal section 9.4's example",
              clock_bytes("PEN-TRUST-1", b"\x11" * 32, 1767258000000)
              == doc_vector(a.doc, "clock-signed-bytes"))
    check("HelloReply announces SIGNED_CLOCK", bool(p.hello.features & SIGNED_CLOCK))
    t = int(time.time() * 1000) + 3600 * 1000
    before = p.c.get_info().device_time_ms
    refused("unsigned SetClock: AUTH_REQUIRED", lambda: p.set_clock(t), AUTH_REQUIRED)
    events.append(AUTH_REQUIRED + CLOCK_EVENT)
    n = p.nonce()
    rep = p.set_clock(t, key, n, a.serial)
    check("signed SetClock: applied", rep.time_ms == t and abs(rep.previous_time_ms - before) < 60000)
    refused("the same SetClock again (replayed): AUTH_NONCE",
            lambda: p.set_clock(t, key, n, a.serial), AUTH_NONCE)
    events.append(AUTH_NONCE + CLOCK_EVENT)
    n = p.nonce()
    refused("SetClock signed over another time: AUTH_FAILED",
            lambda: p.set_clock(t - 7 * 86400 * 1000, key, n, a.serial, signed_ms=t), AUTH_FAILED)
    events.append(AUTH_FAILED + CLOCK_EVENT)
    n = p.nonce()
    refused("SetClock signed by a key the pen does not know: AUTH_FAILED",
            lambda: p.set_clock(t, stranger, n, a.serial), AUTH_FAILED)
    events.append(AUTH_FAILED + CLOCK_EVENT)
    n = p.nonce()
    refused("SetClock signed for another pen's serial: AUTH_FAILED",
            lambda: p.set_clock(t, key, n, "PEN-OTHER"), AUTH_FAILED)
    events.append(AUTH_FAILED + CLOCK_EVENT)
    now = p.c.get_info().device_time_ms
    check("the refused SetClocks left the clock where the signed one put it",
          t <= now < t + 60000, "pen clock %d, set to %d" % (now, t))

    # every refusal is a security_event in the log, in order, with its code
    # the log's hash chain and signed heads, checked from section 9.3 alone
    dev_key = VerifyKey(bytes(info.device_key))
    serial = a.serial.encode()
    prev = hashlib.sha256(b"penlink-genesis-v1" + text(serial)).digest()
    links_ok = heads_ok = True
    nheads = nchunks = 0
    want = 0
    while True:
        chunks, end = p.c.pull_once(want, 1)  # one chunk per reply: a head for each
        for ch in chunks:
            pre = b"penlink-chain-v1" + ch.prev_link + struct.pack(
                "<QIII", ch.first_seq, ch.record_count, ch.raw_size, len(ch.data))
            link = hashlib.sha256(pre + ch.data).digest()
            links_ok &= link == ch.link and ch.prev_link == prev
            prev = link
            nchunks += 1
        head = b"penlink-head-v1" + text(serial) + struct.pack("<Q", end.next_seq) + end.head_link
        try:
            dev_key.verify(head, end.head_signature)
        except BadSignatureError:
            heads_ok = False
        heads_ok &= end.head_link == prev
        nheads += 1
        want = end.next_seq
        if not end.more:
            break
    check("every chunk's link is SHA-256 of its previous link, fields and data, from the "
          "genesis link", links_ok and nchunks > 1, "%d chunks" % nchunks)
    check("every LogEnd's head is the last link, signed by the device key",
          heads_ok and nheads > 1, "%d heads" % nheads)
    bad = bytearray(end.head_signature)
    bad[5] ^= 1
    try:
        dev_key.verify(head, bytes(bad))
        check("a head signature with one bit flipped does not verify", False)
    except BadSignatureError:
        check("a head signature with one bit flipped does not verify", True)

    recs, _ = p.c.pull_log(0)
    got = [r.get("fault_code") for r in recs if r["kind"] in (14, "security_event")]
    check("each refusal logged as a security_event with its error code",
          got == events, "logged %s, refused %s" % (got, events))
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED or not PASSED else 0


if __name__ == "__main__":
    sys.exit(main())
