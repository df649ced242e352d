#!/usr/bin/env python3
"""A penlink pen that lies on request, written from docs/protocol.md and
protocol/penlink.proto only.

It listens on a Unix stream socket (the host connects with `--device
sim:PATH`), serves one connection at a time and answers Hello, GetInfo,
GetConfig, SetConfig, GetNonce, PullLog (RecordBatch columns, zlib, the hash
chain and signed heads with its own Ed25519 device key, section 9.3), AckLog
and SetClock. Told to, it lies: every knob of HostilePen.__init__ is one
lie, named after what it changes, and the default of every knob is the
truth. It records every request it receives (`self.received`, tagged with
the phase the test sets) so a test can assert what the host sent.

The framing, the chunk decoder and the generated messages come from
penlink_client.py (the independent client); the encoders here are new.
"""

import hashlib
import os
import select
import socket
import struct
import sys
import threading
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import penlink_client as pl  # noqa: E402
from penlink_client import pb  # noqa: E402
from nacl.signing import SigningKey  # noqa: E402

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

# Feature bits (section 4 / Feature enum)
LOG_PULL, CONFIG, CLOCK, SIGNED_CONFIG, SIGNED_CHUNKS = 1, 2, 4, 8, 16

# Error codes used here (section 5)
E_MALFORMED_FRAME, E_MALFORMED_MESSAGE, E_UNSUPPORTED = 1, 3, 4
E_VERSION_MISMATCH, E_NOT_READY, E_INVALID_ARGUMENT = 5, 6, 7
E_REVISION_CONFLICT, E_BUSY, E_SEQ_NOT_AVAILABLE = 8, 9, 10

# Envelope body field numbers (section 3)
BODY = {"hello": 10, "hello_reply": 11, "get_info": 12, "device_info": 13,
        "get_config": 14, "config": 15, "set_config": 16, "set_config_reply": 17,
        "pull_log": 18, "log_chunk": 19, "log_end": 20, "ack_log": 21,
        "ack_log_reply": 22, "set_clock": 23, "set_clock_reply": 24, "error": 25,
        "get_nonce": 26, "nonce": 27}
UNKNOWN_BODY = 99           # a body field no version of the spec defines

# Record kinds and field bits (section 6)
K_POWER_ON, K_POWER_OFF, K_TSTART, K_TEND = 1, 2, 3, 4
K_CART_IN, K_CART_OUT, K_FAULT, K_DEPTH = 5, 6, 10, 8
K_CONFIG, K_CLOCK, K_OVERFLOW = 11, 12, 13
FIELDS = pl.RECORD_FIELDS            # (name, mask bit, type), column = 6 + bit index
KIND_MASK = {
    K_POWER_ON: 0, K_POWER_OFF: 0,
    K_TSTART: 1 | 2 | 8,              # depth_um, speed_sps, cartridge_serial
    K_TEND: 4 | 64,                   # duration_ms, strokes
    K_CART_IN: 8 | 16 | 32,           # cartridge_serial, uses, lifetime
    K_CART_OUT: 8,
    K_DEPTH: 1,
    K_FAULT: 128,
    K_CONFIG: 256,
    K_CLOCK: 512,
    K_OVERFLOW: 1024,
}

T0 = 1767258000000          # 2026-01-01T09:00:00Z, the first record's time
STEP_MS = 300000            # five minutes between records
CYCLE = 7                   # records per simulated treatment (see record())
DEFAULT_CHUNK = 50          # records per stored chunk
DEFAULT_PER_REPLY = 2       # chunks per PullLog reply: a 300-record log takes 3 rounds
PEN_MAX_PAYLOAD = 2048
BOMB_BYTES = 64 << 20       # what the zlib bomb inflates to


# --------------------------------------------------------------------------
# Protobuf by hand, where the generated classes refuse the lie (invalid
# UTF-8 in a string field) or the message must be one the spec lacks.


def varint(v):
    v &= U64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    """A length-delimited field: string, bytes or sub-message."""
    return varint((num << 3) | 2) + varint(len(data)) + data


def field_varint(num, v):
    return varint(num << 3) + varint(v)


def envelope(rid, body_field, inner):
    """An Envelope: request_id, then one body field holding `inner`."""
    out = b""
    if rid is not None:
        out += field_varint(1, rid)
    return out + field_bytes(body_field, inner)


def with_strings(msg, strings):
    """msg serialized, then the (field number, bytes) string fields, raw."""
    out = msg.SerializeToString()
    for num, val in strings:
        if val is not None:
            out += field_bytes(num, val)
    return out


def s(b):
    """str(x) of section 9: one length byte, then the bytes."""
    return struct.pack("B", len(b)) + b


def zigzag(v):
    v = pl.to_i64(v)
    return ((v << 1) ^ (v >> 63)) & U64


# --------------------------------------------------------------------------
# Records and chunks (section 6)


def honest_record(seq, base, tag):
    """The record at seq: a treatment every CYCLE records, each with a fresh
    cartridge (`tag` keeps pens' cartridge serials apart)."""
    i = seq - base
    tno, step = divmod(i, CYCLE)
    cart = 0x4D4E000000000000 + tag * 1000000 + tno
    r = {"seq": seq, "time_ms": T0 + i * STEP_MS}
    if step == 0:
        r["kind"] = K_POWER_ON
    elif step == 1:
        r.update(kind=K_CART_IN, cartridge_serial=cart, cartridge_uses=1,
                 lifetime_cartridges=tno + 1)
    elif step == 2:
        r.update(kind=K_TSTART, depth_um=500 + 100 * (tno % 10), speed_sps=100,
                 cartridge_serial=cart)
    elif step == 3:
        r.update(kind=K_DEPTH, depth_um=1000)
    elif step == 4:
        r.update(kind=K_TEND, duration_ms=2 * STEP_MS, strokes=60000)
    elif step == 5:
        r.update(kind=K_CART_OUT, cartridge_serial=cart)
    else:
        r["kind"] = K_POWER_OFF
    return r


def absurd_records(base):
    """Records a pen could say and no pen should: each valid on the wire."""
    three_years = 3 * 365 * 86400000
    b = base
    return {
        b + 9: {"kind": K_TSTART, "depth_um": 4000000000, "speed_sps": 4000000000,
                "cartridge_serial": U64},
        b + 10: {"kind": K_DEPTH, "depth_um": U32},
        b + 11: {"kind": K_TEND, "duration_ms": U32, "strokes": U64,
                 "time_ms": T0 + 11 * STEP_MS + three_years},
        b + 20: {"kind": K_CLOCK, "clock_delta_ms": INT64_MIN, "time_ms": INT64_MAX},
        b + 21: {"kind": K_POWER_ON, "time_ms": INT64_MIN},
        b + 22: {"kind": K_CLOCK, "clock_delta_ms": INT64_MAX, "time_ms": -1},
        b + 30: {"kind": K_OVERFLOW, "dropped": U64},
        b + 31: {"kind": K_FAULT, "fault_code": U32},
        b + 32: {"kind": K_CONFIG, "config_revision": U32},
        b + 33: {"kind": 200},       # a kind from a later version: decodes by its layout
        b + 34: {"kind": K_TSTART, "depth_um": 800, "speed_sps": 0,
                 "cartridge_serial": 0, "time_ms": T0 + 100 * three_years},
    }


def encode_batch(records):
    """One RecordBatch (section 6) of consecutive records."""
    kinds = []
    for r in records:
        if r["kind"] not in kinds:
            kinds.append(r["kind"])
    b = pb.RecordBatch()
    b.first_seq = records[0]["seq"]
    b.count = len(records)
    for k in kinds:
        b.layout.extend([k, KIND_MASK.get(k, 0)])
    b.kind.extend([r["kind"] for r in records])
    base = records[0]["time_ms"] & U64
    b.time_base_ms = pl.to_i64(base)
    prev = {name: 0 for name, _bit, _t in FIELDS}
    for r in records:
        mask = KIND_MASK.get(r["kind"], 0)
        for name, bit, _t in FIELDS:
            if mask & bit:
                v = r[name] & U64
                getattr(b, name).append(pl.to_i64(v - prev[name]))
                prev[name] = v
    t = base
    deltas = []
    for r in records:
        v = r["time_ms"] & U64
        deltas.append(zigzag(v - t))
        t = v
    width = max(1, max((d.bit_length() + 7) // 8 for d in deltas))
    planes = bytearray()
    for p in range(width):
        planes += bytes((d >> (8 * p)) & 0xFF for d in deltas)
    b.time_width = width
    b.time_planes = bytes(planes)
    return b.SerializeToString()


def compress(raw):
    c = zlib.compressobj(9, zlib.DEFLATED, 9, 2)     # the reference pen's settings
    return c.compress(raw) + c.flush()


def chain_link(prev, first_seq, record_count, raw_size, data):
    """Section 9.3: the link after a chunk, over its fields as sent."""
    return hashlib.sha256(b"penlink-chain-v1" + prev + struct.pack(
        "<QIII", first_seq & U64, record_count & U32, raw_size & U32, len(data))
        + data).digest()


class Chunk:
    """A stored chunk: what it says (first_seq, record_count, raw_size, data,
    links) and the records it really holds on the pen, lo..hi-1."""

    def __init__(self, first_seq, record_count, raw_size, data, prev=None, link=None):
        self.lo = first_seq
        self.hi = first_seq + record_count
        self.first_seq = first_seq
        self.record_count = record_count
        self.raw_size = raw_size
        self.data = data
        self.prev = prev
        self.link = link

    def message(self, sign):
        c = pb.LogChunk()
        c.first_seq = self.first_seq & U64
        c.record_count = self.record_count & U32
        c.raw_size = self.raw_size & U32
        c.data = self.data
        if sign:
            c.link = self.link
            c.prev_link = self.prev
        return c.SerializeToString()


# --------------------------------------------------------------------------
# The pen


class HostilePen:
    """A pen on a Unix socket. Every keyword is a lie; its default is the truth.

    Identity
      serial         HelloReply.serial (bytes; b"" and non-UTF-8 allowed)
      info_serial    DeviceInfo.serial (default: serial)
      model, hardware_revision, firmware_version   DeviceInfo strings (bytes)
      key_seed       32 bytes: the Ed25519 device key
      sign           hash-chains and signs its log (announces SIGNED_CHUNKS)
      present_key    DeviceInfo carries the device key (default: sign)
      features       HelloReply.features (default: LOG_PULL|CONFIG|CLOCK [+SIGNED_CHUNKS])
      hello_major    HelloReply.protocol_major (default 1)
      hello_error    (code, message) answered to every Hello instead of HelloReply
      device_label, clinic_id   Config strings (bytes)
    Log
      n, base        the pen holds seqs base..base+n-1 (base is its first seq ever)
      acked          DeviceInfo.log_acked_seq at the start (default: base)
      first_held     the oldest seq it still holds (records below were lost)
      chunk          records per stored chunk;  per_reply: chunks per PullLog reply
      absurd         replace some records with absurd values (absurd_records)
      tag            keeps the cartridge serials of pens apart
      layout         callable(pen) -> the stored chunks as specs (lo, hi, lies), lies a
                     dict of make_chunk keywords; the pen chains and signs them in
                     that order, so every round of every pull agrees with the lie
      info           DeviceInfo fields to override (log_first_seq, log_next_seq, ...)
      end            LogEnd fields to override: {field: value or callable(true value)}
      end_rounds     which replies (0-based, counted over the pen's life) get `end`
    Frames and replies
      damage         ("crc"|"truncate"|"foreign_id", chunk first_seq, times or None)
      inside_bad_crc set of reply kinds sent inside a frame refused for its CRC
      unknown_before set of reply kinds preceded by an Envelope of unknown body
      pull_error     (code, message bytes, field bytes) answered to every PullLog
      chatter        answer every PullLog with Envelopes of an unknown body, one every
                     50 ms, carrying its request id, until the host sends something
      ack_lie        callable(true acked_seq) -> the acked_seq claimed
    """

    def __init__(self, path, serial=b"PEN-H-0001", info_serial=None,
                 model=b"penlink MN-1", hardware_revision=b"A", firmware_version=b"1.0-py",
                 key_seed=b"\x01" * 32, sign=True, present_key=None, features=None,
                 hello_major=1, acked=None,
                 hello_error=None, device_label=b"Room 1", clinic_id=b"CLINIC-1",
                 n=300, base=0, first_held=None, chunk=DEFAULT_CHUNK,
                 per_reply=DEFAULT_PER_REPLY, absurd=False, tag=1, info=None, end=None,
                 end_rounds=None, damage=None, inside_bad_crc=(), unknown_before=(),
                 pull_error=None, ack_lie=None, layout=None, chatter=False):
        self.path = path
        self.serial = serial
        self.info_serial = serial if info_serial is None else info_serial
        self.model, self.hw, self.fw = model, hardware_revision, firmware_version
        self.key = SigningKey(key_seed)
        self.sign = sign
        self.present_key = sign if present_key is None else present_key
        self.features = features if features is not None else (
            LOG_PULL | CONFIG | CLOCK | (SIGNED_CHUNKS if sign else 0))
        self.hello_major = hello_major
        self.hello_error = hello_error
        self.label, self.clinic = device_label, clinic_id
        self.n, self.base, self.chunk_size, self.per_reply = n, base, chunk, per_reply
        self.first_held = base if first_held is None else first_held
        self.absurd = absurd_records(base) if absurd else {}
        self.tag = tag
        self.info_over = info or {}
        self.end_over = end or {}
        self.end_rounds = end_rounds
        self.damage = damage
        self.damaged = 0
        self.inside_bad_crc = set(inside_bad_crc)
        self.unknown_before = set(unknown_before)
        self.pull_error = pull_error
        self.chatter = chatter
        self.ack_lie = ack_lie
        self.specs = layout(self) if layout else self.regular_layout()
        self.acked = base if acked is None else acked
        self.config_revision = 1
        self.clock_ms = T0 + 400 * 86400000
        self.chunks = []            # the stored chunks, in order, chained
        self.phase = "setup"
        self.received = []          # (phase, body name, message)
        self.records_sent = 0
        self.rounds = 0
        self.errors = []            # exceptions in the pen itself (a test bug)
        self.lock = threading.Lock()
        self.idle = threading.Event()
        self.idle.set()
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(path)
        self.srv.listen(4)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    # -- the log --------------------------------------------------------

    @property
    def next_seq(self):
        return self.base + self.n

    def record(self, seq):
        r = honest_record(seq, self.base, self.tag)
        if seq in self.absurd:
            a = dict(self.absurd[seq])
            keep_time = a.pop("time_ms", r["time_ms"])
            r = {"seq": seq, "time_ms": keep_time}
            r.update(a)
        return r

    def records(self, lo, hi):
        return [self.record(q) for q in range(lo, hi)]

    def genesis(self):
        return hashlib.sha256(b"penlink-genesis-v1" + s(self.serial)).digest()

    def regular_layout(self):
        """Chunks of chunk_size consecutive records from base, the last partial."""
        return [(lo, min(lo + self.chunk_size, self.next_seq), {})
                for lo in range(self.base, self.next_seq, self.chunk_size)]

    def stored_chunk(self, i):
        """The i-th chunk the pen ever stored (immutable, chained), built on
        first use."""
        while len(self.chunks) <= i:
            lo, hi, lies = self.specs[len(self.chunks)]
            prev = self.chunks[-1].link if self.chunks else self.genesis()
            self.chunks.append(self.make_chunk(lo, hi, prev, **lies))
        return self.chunks[i]

    def head(self, chunks_sent):
        """The link a LogEnd names: the last chunk's, else the newest."""
        if chunks_sent:
            return chunks_sent[-1].link
        return self.stored_chunk(len(self.specs) - 1).link if self.specs else self.genesis()

    def make_chunk(self, lo, hi, prev, records=None, raw=None, data=None,
                   record_count=None, raw_size=None, raw_size_delta=0, seq_delta=0,
                   alter=None):
        """The chunk of records lo..hi-1, linked from prev over what it says.
        The lies: seq_delta (every seq moved), alter (records changed by a
        function), record_count / raw_size (+ raw_size_delta) / data (instead
        of the true ones)."""
        if raw is None:
            if records is None:
                records = self.records(lo, hi)
            for r in records:
                r["seq"] += seq_delta
                if alter:
                    alter(r)
            raw = encode_batch(records)
        if data is None:
            data = compress(raw)
        rc = hi - lo if record_count is None else record_count
        rs = (len(raw) if raw_size is None else raw_size) + raw_size_delta
        c = Chunk(lo + seq_delta, rc, rs, data, prev)
        c.lo, c.hi = lo, hi
        c.link = chain_link(prev, lo + seq_delta, rc, rs, data)
        return c

    # -- serving --------------------------------------------------------

    def stop(self):
        self.stopping = True
        try:
            self.srv.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.srv.close()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.idle.clear()
            try:
                self._session(conn)
            except (BrokenPipeError, ConnectionResetError):
                pass
            except Exception as e:  # a bug of the pen: the test reports it
                self.errors.append("%s: %s" % (type(e).__name__, e))
            finally:
                conn.close()
                self.idle.set()

    def _session(self, conn):
        rx = pl.FrameReceiver(pl.MAX_ANNOUNCED_PAYLOAD)
        self.hello_done = False
        while True:
            data = conn.recv(65536)
            if not data:
                return
            for ev, val in rx.feed(data):
                if ev == "error":
                    self._send(conn, [self._error_env(0, E_MALFORMED_FRAME, b"bad frame")])
                    continue
                env = pb.Envelope()
                try:
                    env.ParseFromString(val)
                except Exception:
                    self._send(conn, [self._error_env(0, E_MALFORMED_MESSAGE, b"bad envelope")])
                    continue
                body = env.WhichOneof("body")
                with self.lock:
                    msg = getattr(env, body) if body else None
                    self.received.append((self.phase, body, msg))
                if self.chatter and body == "pull_log":
                    # never a chunk, never an end: only messages the host cannot know
                    while not select.select([conn], [], [], 0.05)[0]:
                        self._send(conn, [envelope(env.request_id, UNKNOWN_BODY, b"\x08\x01")])
                    continue
                self._send(conn, self._answer(env.request_id, body, msg))

    def _send(self, conn, items):
        """items: Envelope bytes (framed here) or ("raw", bytes) frames."""
        out = bytearray()
        for it in items:
            if isinstance(it, tuple):
                out += it[1]
            else:
                out += pl.encode_frame(it)
        if out:
            conn.sendall(bytes(out))

    def _error_env(self, rid, code, message, field=None):
        e = pb.Error()
        e.code = code
        return envelope(rid, BODY["error"], with_strings(e, [(2, message), (3, field)]))

    def _reply(self, rid, kind, inner):
        """A reply frame, with the lies that wrap any reply."""
        items = []
        if kind in self.unknown_before:
            items.append(envelope(rid, UNKNOWN_BODY, b"\x08\x01"))
        env = envelope(rid, BODY[kind], inner)
        if kind in self.inside_bad_crc:
            items.append(("raw", inside_bad_crc_frame(pl.encode_frame(env))))
        else:
            items.append(env)
        return items

    def _answer(self, rid, body, msg):
        if body == "hello":
            return self._hello(rid, msg)
        if not self.hello_done:
            return [self._error_env(rid, E_NOT_READY, b"send Hello first")]
        if body == "get_info":
            return self._reply(rid, "device_info", self._device_info())
        if body == "get_config" and self.features & CONFIG:
            return self._reply(rid, "config", self._config())
        if body == "set_config" and self.features & CONFIG:
            return self._set_config(rid, msg)
        if body == "pull_log" and self.features & LOG_PULL:
            return self._pull(rid, msg)
        if body == "ack_log" and self.features & LOG_PULL:
            return self._ack(rid, msg)
        if body == "set_clock" and self.features & CLOCK:
            r = pb.SetClockReply()
            r.previous_time_ms = self.clock_ms
            self.clock_ms = msg.time_ms
            r.time_ms = msg.time_ms
            return self._reply(rid, "set_clock_reply", r.SerializeToString())
        if body == "get_nonce":
            r = pb.Nonce()
            r.nonce = os.urandom(32)
            return self._reply(rid, "nonce", r.SerializeToString())
        return [self._error_env(rid, E_UNSUPPORTED, b"not supported by this pen")]

    def _hello(self, rid, msg):
        if self.hello_error:
            code, text = self.hello_error
            return [self._error_env(rid, code, text)]
        if msg.protocol_major != 1:
            return [self._error_env(rid, E_VERSION_MISMATCH, b"pen speaks 1.0, host %d.%d"
                                    % (msg.protocol_major, msg.protocol_minor))]
        self.hello_done = True
        h = pb.HelloReply()
        h.protocol_major = self.hello_major
        h.protocol_minor = 0
        h.features = self.features
        h.max_frame_payload = PEN_MAX_PAYLOAD
        return self._reply(rid, "hello_reply", with_strings(h, [(5, self.serial)]))

    def _device_info(self):
        d = pb.DeviceInfo()
        d.log_first_seq = self.first_held
        d.log_next_seq = self.next_seq
        d.log_acked_seq = self.acked
        d.log_capacity_bytes = 1 << 20
        d.log_used_bytes = 4096
        d.device_time_ms = self.clock_ms
        d.uptime_ms = 3600000
        d.config_revision = self.config_revision
        lim = d.limits
        lim.depth_min_um, lim.depth_max_um, lim.depth_step_um = 0, 3000, 100
        lim.speed_min_sps, lim.speed_max_sps = 50, 150
        lim.max_treatment_s, lim.max_cartridge_uses = 7200, 10
        lim.auto_off_min_s, lim.auto_off_max_s, lim.max_text_len = 30, 3600, 32
        if self.present_key:
            d.device_key = bytes(self.key.verify_key)
        for k, v in self.info_over.items():
            setattr(d, k, v & U64 if isinstance(v, int) else v)
        return with_strings(d, [(1, self.info_serial), (2, self.model), (3, self.hw),
                                (4, self.fw)])

    def _config_msg(self):
        c = pb.Config()
        c.revision = self.config_revision
        c.depth_min_um, c.depth_max_um, c.depth_default_um = 0, 3000, 500
        c.speed_min_sps, c.speed_max_sps = 50, 150
        c.max_treatment_s, c.max_cartridge_uses, c.auto_off_s = 3600, 1, 300
        return c

    def _config(self):
        return with_strings(self._config_msg(), [(10, self.label), (11, self.clinic)])

    def _set_config(self, rid, msg):
        if msg.expected_revision != self.config_revision:
            return [self._error_env(rid, E_REVISION_CONFLICT, b"stale revision")]
        self.config_revision += 1
        r = pb.SetConfigReply()
        r.revision = self.config_revision
        inner = with_strings(r, [(2, self._config())])
        return self._reply(rid, "set_config_reply", inner)

    def _ack(self, rid, msg):
        t = msg.through_seq
        if t >= self.next_seq:
            return [self._error_env(rid, E_INVALID_ARGUMENT, b"through_seq beyond the log",
                                    b"ack_log.through_seq")]
        self.acked = max(self.acked, t + 1)
        r = pb.AckLogReply()
        r.acked_seq = self.ack_lie(self.acked) & U64 if self.ack_lie else self.acked
        return self._reply(rid, "ack_log_reply", r.SerializeToString())

    def _pull(self, rid, msg):
        if self.pull_error:
            code, text, field = self.pull_error
            return [self._error_env(rid, code, text, field)]
        frm = msg.from_seq
        if frm > self.next_seq:
            return [self._error_env(rid, E_SEQ_NOT_AVAILABLE, b"from_seq beyond the log",
                                    b"pull_log.from_seq")]
        rnd = self.rounds
        self.rounds += 1
        want = max(frm, self.first_held)
        limit = min(msg.max_chunks or 32, 32, self.per_reply)
        chunks = []
        # the first chunk holding `want`, else the first after it, in stored order
        start = [j for j, (lo, hi, _l) in enumerate(self.specs) if lo <= want < hi] or \
            [j for j, (lo, _h, _l) in enumerate(self.specs) if lo >= want]
        i = start[0] if start else len(self.specs)
        while len(chunks) < limit and i < len(self.specs):
            chunks.append(self.stored_chunk(i))
            i += 1
        items = []
        for c in chunks:
            self.records_sent += c.hi - c.lo
            f = pl.encode_frame(envelope(rid, BODY["log_chunk"], c.message(self.sign)))
            items.extend(self._damage(rid, c, f))
        end = pb.LogEnd()
        nxt = chunks[-1].hi if chunks else max(want, frm)
        truth = {"next_seq": nxt, "more": nxt < self.next_seq,
                 "first_available_seq": self.first_held}
        if self.end_rounds is None or rnd in self.end_rounds:
            for k, v in self.end_over.items():
                truth[k] = v(truth[k]) if callable(v) else v
        end.next_seq = truth["next_seq"] & U64
        end.more = truth["more"]
        end.first_available_seq = truth["first_available_seq"] & U64
        if self.sign:
            end.head_link = self.head(chunks)
            end.head_signature = self.key.sign(
                b"penlink-head-v1" + s(self.serial) + struct.pack("<Q", end.next_seq)
                + end.head_link).signature
        if "log_chunk" in self.inside_bad_crc and len(items) > 1:
            items[1] = ("raw", inside_bad_crc_frame(items[1][1]))
        if "log_chunk" in self.unknown_before and items:
            items.insert(1, envelope(rid, UNKNOWN_BODY, b""))
        items.extend(self._reply(rid, "log_end", end.SerializeToString()))
        return items

    def _damage(self, rid, c, frame):
        """The lies told about one chunk's frame on the wire."""
        d = self.damage
        if not d or c.lo != d[1] or (d[2] is not None and self.damaged >= d[2]):
            return [("raw", frame)]
        self.damaged += 1
        how = d[0]
        if how == "crc":       # one payload bit flipped: the CRC refuses the frame
            f = bytearray(frame)
            f[pl.HEADER_SIZE + len(f[pl.HEADER_SIZE:]) // 2] ^= 0x10
            return [("raw", bytes(f))]
        if how == "truncate":  # the frame ends early; the rest of the reply follows
            return [("raw", frame[:len(frame) // 2])]
        if how == "foreign_id":  # a whole, good frame with another request's id
            return [("raw", pl.encode_frame(
                envelope(rid + 1000, BODY["log_chunk"], c.message(self.sign))))]
        raise ValueError(how)


def inside_bad_crc_frame(good):
    """A frame whose header is good and whose payload CRC is not, with the
    good frame beginning inside its payload (section 2, rule 5). The padding
    holds no 0x50, so nothing but `good` can start a frame in it."""
    pad = b"\x00" * 24
    payload = b"\x11" * 8 + good + pad
    head = bytearray(pl.MAGIC)
    head.append(pl.FRAMING_VERSION)
    head.append(0)
    head += len(payload).to_bytes(4, "little")
    head += ((pl.crc32(payload) ^ 0xFFFF) & 0xFFFFFFFF).to_bytes(4, "little")
    head += (pl.crc32(bytes(head)) & 0xFFFF).to_bytes(2, "little")
    return bytes(head) + payload


def self_test():
    """The encoders against the independent decoder, so a failing case is
    the host's and not this pen's."""
    import tempfile
    d = tempfile.mkdtemp()
    try:
        for absurd in (False, True):
            p = HostilePen(os.path.join(d, "p%d.sock" % absurd), absurd=absurd, n=70)
            prev = p.genesis()
            for i in range(2):
                c = p.stored_chunk(i)
                m = pb.LogChunk()
                m.ParseFromString(c.message(True))
                got = pl.decode_chunk(m)
                want = p.records(c.lo, c.hi)
                for g, w in zip(got, want):
                    for k, v in w.items():
                        gv = g[k]
                        if k == "kind":
                            gv = {vv: kk for kk, vv in pl.KIND_NAMES.items()}.get(gv, gv)
                            if isinstance(gv, str) and gv.startswith("kind_"):
                                gv = int(gv[5:])
                        assert gv == (pl.to_i64(v) if k in ("time_ms", "clock_delta_ms")
                                      else v), (k, g, w)
                assert len(got) == len(want)
                assert c.prev == prev and c.link == chain_link(
                    prev, c.first_seq, c.record_count, c.raw_size, c.data)
                prev = c.link
            p.stop()
    finally:
        for f in os.listdir(d):
            os.unlink(os.path.join(d, f))
        os.rmdir(d)


if __name__ == "__main__":
    self_test()
    print("hostile_pen self-test passed")
