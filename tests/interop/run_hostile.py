#!/usr/bin/env python3
"""The real `penlink` against a pen that lies (hostile_pen.py, written from
docs/protocol.md and the .proto alone): one case per defect of issue 12 a
pen can provoke and per class of lie, each with the exit status and the
archive effect it expects.

    run_hostile.py --penlink PATH [--only NAME[,NAME..]] [--list]

PENLINK_WRAP (e.g. a valgrind command line) is put before every penlink run.
Prints one PASS/FAIL line per case and `N passed, M failed` last; exits 1 on
any failure.

The expectations follow the host's pull and acknowledgement rules of issue
12 (to be written into docs/protocol.md): never acknowledge what is not
stored (or proven gone by the pen's own words and recorded as a gap), never
exit 0 for a lie that changes what is stored.
Exit statuses: 3 gone, 4 the pen refused / the pen lacks the feature, 5
protocol (malformed, out of spec, retries exhausted), 6 integrity
(contradictions, chain, pinning, overrun, a pen that lies about its acks).

Where the rules leave the choice open this suite decides by one principle,
said again in the cases it decides:
  * what a lost, damaged or reordered frame could explain is retried, and
    after bounded retries is exit 5 with nothing stored past the hole;
  * what no fault of the wire explains (the pen's own whole, consistent
    messages contradicting each other) is exit 6;
  * a chunk that arrives intact (its frame's CRC holds) but fails its checks
    (record_count, raw_size or first seq against its batch, a zlib bomb past
    the decoder's limit) is the pen contradicting itself (protocol.md section
    5, rule 3): exit 6 and alarm `contradiction`, whatever the check;
  * a string that reaches no record (model, labels, error text) is shown
    escaped and never fails a command by itself.
"""

import argparse
import hashlib
import json
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile_pen as hp  # noqa: E402
from hostile_pen import (CLOCK, CONFIG, LOG_PULL, SIGNED_CHUNKS,  # noqa: E402
                         E_BUSY, E_VERSION_MISMATCH)

U64 = hp.U64
TOP = 1 << 63                    # seqs must stay below 2^63
DEFAULT_TIMEOUT_MS = 500         # penlink --timeout: the pen answers in microseconds
ENDLESS_CAP = 20000              # records an endless pen sends past its DeviceInfo at most

# Strings a pen should never get onto a terminal or into JSON unescaped
ESC_CLEAR = b"\x1b[2J\x1b[H"                       # clear screen, cursor home
CR_FAKE = b"\r[ok] all records verified\r\n"       # a fake status line over the real one
BAD_UTF8 = b"\xff\xfe\xc3\x28\x9b\xe2\x82"          # invalid, incl. 8-bit CSI and a cut sequence
HOSTILE = b"X" + ESC_CLEAR + b"\x07\x08" + CR_FAKE + BAD_UTF8 + b"\x00\x7fY"
LONG_HOSTILE = HOSTILE * 40                        # ~1.6 kB, far past any spec bound
LONG_PRINTABLE = b"PEN-" + b"9" * 36               # 40 printable bytes: past the 32 allowed


# --------------------------------------------------------------------------
# Lies about the stored log: callables(pen) -> chunk specs (lo, hi, lies).
# The pen chains and signs its chunks in that order, so it lies consistently
# in every round and only the check of what the lie breaks can catch it.


def seqs_shifted(delta):
    """Every chunk's records carry seqs moved up by delta."""
    return lambda pen: [(lo, hi, dict(seq_delta=delta)) for lo, hi, _l in pen.regular_layout()]


def first_chunk(**lies):
    """The log's first chunk lies (record_count, raw_size_delta, bomb)."""
    def layout(pen):
        specs = pen.regular_layout()
        lo, hi, _l = specs[0]
        if lies.get("bomb"):
            raw = hp.encode_batch(pen.records(lo, hi))
            specs[0] = (lo, hi, dict(raw=raw, data=bomb()))   # raw_size: the true batch's
        else:
            specs[0] = (lo, hi, dict(lies))
        return specs
    return layout


_BOMB = []


def bomb():
    if not _BOMB:
        c = hp.zlib.compressobj(9)
        _BOMB.append(c.compress(b"\0" * hp.BOMB_BYTES) + c.flush())
    return _BOMB[0]


def deeper(r):
    if "depth_um" in r:
        r["depth_um"] += 100
    r["time_ms"] += 1000


def overlapping(pen):
    """[0,50) then [40,90) with other content for 40..49, then on from 90."""
    c = hp.DEFAULT_CHUNK
    specs = [(0, c, {}), (c - 10, 2 * c - 10, dict(alter=deeper))]
    specs += [(lo, min(lo + c, pen.next_seq), {}) for lo in range(2 * c - 10, pen.next_seq, c)]
    return specs


def backwards(pen):
    """[0,50), [100,150), [50,100), [150,200), ...: seqs go back and forth."""
    specs = pen.regular_layout()
    specs[1], specs[2] = specs[2], specs[1]
    return specs


def batch_first_seq_lies(pen):
    """Chunk 0 says first_seq 0; its batch holds records 1..50."""
    specs = pen.regular_layout()
    lo, hi, _l = specs[0]
    specs[0] = (lo, hi, dict(records=pen.records(lo + 1, hi + 1)))
    return specs


def resealed(at, to, alter=None):
    """The pen sealed its records from `at` again, as one chunk through `to`
    (after a host had stored its earlier, shorter chunk from `at`): the chunks
    before `at` as usual, then [at, to) linked after them, then on. With
    `alter`, the records sealed again also differ from the first sealing."""
    def layout(pen):
        c = pen.chunk_size
        specs = [(lo, min(lo + c, at), {}) for lo in range(pen.base, at, c)]
        specs.append((at, to, dict(alter=alter) if alter else {}))
        specs += [(lo, min(lo + c, pen.next_seq), {}) for lo in range(to, pen.next_seq, c)]
        return specs
    return layout


def later(r):
    r["time_ms"] += 7


def stops_at(seq):
    """The pen stores (and so sends) no chunk from seq on."""
    return lambda pen: [s for s in pen.regular_layout() if s[0] < seq]


# --------------------------------------------------------------------------
# Expectations

NONE = ("none",)            # no record of this pen in the archive
ALL = ("all",)              # exactly the records the pen holds


def exact(lo, hi):
    return ("exact", lo, hi)        # exactly seqs lo..hi


def runs_of(*ranges):
    return ("set", sorted(q for lo, hi in ranges for q in range(lo, hi + 1)))


def prefix(lo, hi, at_least=None):
    """A contiguous run lo..m, m <= hi, possibly empty (m >= at_least if given)."""
    return ("prefix", lo, hi, at_least)


class Without:
    """Any set of alarm kinds, none of these."""

    def __init__(self, *kinds):
        self.kinds = set(kinds)


def R(args, exit, **kw):
    """One penlink run against the hostile pen: args, expected exit status,
    and optionally out_keys / err_keys (JSON keys that must be there),
    err_has (a regex stderr must match), file_keys ((path, keys))."""
    d = {"args": args, "exit": exit}
    d.update(kw)
    return d


PULL = [R(["pull"], 0)]


def case(name, defect, why, pen=None, before=(), runs=PULL, stored=ALL, acked="last",
         alarms=frozenset(), not_sent=(), only_sent=None, pinned=True, after=(),
         check=None, timeout=DEFAULT_TIMEOUT_MS, mkdirs=()):
    return dict(name=name, defect=defect, why=why, pen=pen or {}, before=before, runs=runs,
                stored=stored, acked=acked, alarms=alarms, not_sent=set(not_sent),
                only_sent=only_sent, pinned=pinned, after=after, check=check,
                timeout=timeout, mkdirs=mkdirs)


GOOD = dict(serial=b"PEN-GOOD-1", key_seed=b"\x09" * 32, tag=9)   # a second, honest pen
FIRST = dict(serial=b"PEN-H-0001", key_seed=b"\x01" * 32)          # the hostile pen, earlier
GOOD_STILL_FINE = [(["verify"], 0), (["verify", "--pen", "PEN-GOOD-1"], 0),
                   (["audit", "--pen", "PEN-GOOD-1"], 0),
                   (["export", "records", "--pen", "PEN-GOOD-1", "--format", "json"], 0, 300),
                   (["export", "records", "--format", "json"], 0, 300), (["audit"], 0)]


def plog_unchanged(ctx):
    f = os.path.join(ctx["tmp"], "pen.plog")
    if ctx["snap"].get(f) != digest(f):
        return "the .plog of pen A was changed by pen B's pull"


def nothing_outside_dir(ctx):
    allowed = os.path.join(ctx["tmp"], "w", "a", "b")
    for f in snapshot(ctx["tmp"]):
        if f in ctx["snap"] or f.startswith(allowed + os.sep):
            continue
        if os.path.basename(f).startswith("archive.db"):
            continue
        return "a file was written outside --dir: %s" % f


def decode(ctx, path, *args):
    """penlink decode of a file: (exit status, stdout, stderr) as text."""
    c = ctx["ctx"]
    p = subprocess.run(list(c.penlink) + ["decode"] + list(args) + [path], capture_output=True)
    for label, data in (("stdout", p.stdout), ("stderr", p.stderr)):
        if SANITIZER.search(data):
            c.problems.append("sanitizer report from decode: %r" % data[-2000:])
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def plog_seqs(ctx, path, want_rc=0):
    """The seqs `decode --format csv` lists, or a string saying what is wrong."""
    rc, out, err = decode(ctx, path, "--format", "csv")
    if rc != want_rc:
        return "decode %s: exit %d, want %d: %s" % (os.path.basename(path), rc, want_rc,
                                                    err.strip()[-300:])
    return [int(x.split(",")[0]) for x in out.splitlines()[1:]]


def plog_holds(lo, hi, unchanged=False):
    """The .plog decodes (exit 0) to seqs lo..hi, each once."""
    def check(ctx):
        f = os.path.join(ctx["tmp"], "pen.plog")
        if unchanged and ctx["snap"].get(f) != digest(f):
            return "pen.plog was written, though nothing of the pull may be"
        got = plog_seqs(ctx, f)
        if isinstance(got, str):
            return got
        if got != list(range(lo, hi + 1)):
            return "pen.plog decodes to %s, want each of seq %d..%d once" % (summary(got), lo, hi)
    return check


def frames_of(path):
    """The frames of a .plog: (Envelope, frame bytes)."""
    with open(path, "rb") as f:
        data = f.read()
    rx = hp.pl.FrameReceiver(hp.pl.MAX_ANNOUNCED_PAYLOAD)
    out = []
    for ev, val in rx.feed(data):
        if ev == "error":
            raise ValueError("damaged frames in %s" % path)
        env = hp.pb.Envelope()
        env.ParseFromString(val)
        out.append((env, hp.pl.encode_frame(val)))
    return out


def joined_copies(ctx):
    """`cat f f`: every record once, a warning, the chain checked, exit 0."""
    f = os.path.join(ctx["tmp"], "pen.plog")
    j = os.path.join(ctx["tmp"], "joined.plog")
    with open(f, "rb") as a:
        data = a.read()
    with open(j, "wb") as b:
        b.write(data + data)
    rc, out, err = decode(ctx, j, "--format", "csv")
    seqs = [int(x.split(",")[0]) for x in out.splitlines()[1:]]
    if rc != 0 or seqs != list(range(0, 300)):
        return "decode of a file joined from two copies: exit %d, %s (want 0..299 once): %s" % (
            rc, summary(seqs), err.strip()[-200:])
    if "300 records come again" not in err:
        return "decode of a joined file does not say records come again: %r" % err
    rc, out, err = decode(ctx, j, "--messages")
    if rc != 0 or "broken" in out:
        return "decode --messages of a joined file: exit %d: %s" % (rc, (out + err)[-400:])


def two_versions(ctx):
    """The pen's two versions of 500..549, joined in one file: exit 6."""
    a, b = (os.path.join(ctx["tmp"], n) for n in ("pen.plog", "other.plog"))
    j = os.path.join(ctx["tmp"], "joined.plog")
    with open(j, "wb") as out:
        for f in (a, b):
            with open(f, "rb") as src:
                out.write(src.read())
    rc, out, err = decode(ctx, j)
    if rc != 6 or "seq 500 comes again with content different" not in err:
        return "decode of a file holding two versions of seq 500: exit %d: %s" % (
            rc, err.strip()[-300:])


def fork_in_file(ctx):
    """A .plog as an earlier penlink wrote it: 0..549, then the pen's
    re-sealed 500..599 and 600..649. decode --messages checks the re-sealed
    chunk against the chunk right before it in the file: broken, exit 6."""
    a, b = (os.path.join(ctx["tmp"], n) for n in ("pen.plog", "other.plog"))
    j = os.path.join(ctx["tmp"], "forked.plog")
    extra = [fr for env, fr in frames_of(b)
             if env.WhichOneof("body") == "log_chunk" and env.log_chunk.first_seq >= 500]
    with open(a, "rb") as src, open(j, "wb") as out:
        out.write(src.read() + b"".join(extra))
    rc, out, err = decode(ctx, j, "--messages")
    if rc != 6 or "unchecked" in out or "forks" not in out:
        return "decode --messages of a forked file: exit %d, want 6 naming the fork: %s" % (
            rc, (out + err)[-600:])


def splice_fork(ctx):
    """Stores the pen's forked log (pulled into a second archive) beside the
    archived one, as a penlink without the fork check stored it, then runs
    verify and checks its words."""
    c, pen = ctx["ctx"], ctx["pen"]
    other = os.path.join(ctx["tmp"], "fork.db")
    cmd = list(c.penlink) + ["--archive", other, "--device", "sim:" + pen.path, "--timeout",
                             str(c.timeout), "pull"]
    p = subprocess.run(cmd, capture_output=True)
    pen.idle.wait(5)
    if p.returncode != 0:
        return "pulling the forked log into a fresh archive: exit %d" % p.returncode
    con = sqlite3.connect(c.archive)
    try:
        con.execute("ATTACH ? AS f", (other,))
        dev = con.execute("SELECT id FROM devices").fetchone()[0]
        cols = [r[1] for r in con.execute("PRAGMA table_info(chunks)") if r[1] not in ("id",)]
        sel = ", ".join("? " if k == "device_id" else k for k in cols)
        con.execute("INSERT INTO chunks (%s) SELECT %s FROM f.chunks WHERE first_seq >= 500"
                    % (", ".join(cols), sel.replace("? ", str(dev))))
        con.execute("INSERT INTO records (device_id, seq, body, chunk_id) SELECT %d, r.seq, "
                    "r.body, (SELECT m.id FROM chunks m WHERE m.device_id = %d AND "
                    "m.first_seq = fc.first_seq AND m.data = fc.data) FROM f.records r JOIN "
                    "f.chunks fc ON fc.id = r.chunk_id WHERE r.seq >= 550" % (dev, dev))
        hcols = [r[1] for r in con.execute("PRAGMA table_info(heads)") if r[1] not in ("id",)]
        con.execute("INSERT INTO heads (%s) SELECT %s FROM f.heads WHERE next_seq > 550"
                    % (", ".join(hcols), ", ".join(str(dev) if k == "device_id" else k
                                                    for k in hcols)))
        con.commit()
    finally:
        con.close()
    p = subprocess.run(list(c.penlink) + ["--archive", c.archive, "verify"], capture_output=True)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    if p.returncode != 6:
        return "verify of the forked archive: exit %d, want 6: %s" % (p.returncode, out[-300:])
    if re.search(r"missing|removed", out) or "fork" not in out:
        return "verify of the forked archive does not name the fork: %s" % out[-400:]
    return None


def asked_from(seq):
    """The first PullLog of the test run asks from seq."""
    def check(ctx):
        pulls = [m.from_seq for ph, b, m in ctx["pen"].received
                 if b == "pull_log" and ph == "test"]
        if not pulls or pulls[0] != seq:
            return "the first PullLog asked from %s, want %d" % (
                pulls[0] if pulls else "nothing", seq)
        return None
    return check


def overrun_detail(ctx):
    for k, _s, _q, _n in ctx["ctx"].alarms():
        if k != "overrun":
            continue
        con = ctx["ctx"].db()
        try:
            details = [r[0].decode() for r in con.execute(
                "SELECT detail FROM alarms WHERE kind = 'overrun'")]
        finally:
            con.close()
        for d in details:
            if "through seq 3199" not in d or re.search(r"(through|kept)[^.]*\b(4099|4100)\b", d):
                return "the overrun alarm says %r; the archive holds 0..3199" % d
    return None


def endless_bounded(ctx):
    p = ctx["pen"]
    if p.records_sent >= p.n:
        return "the host pulled all %d records the pen would send (%d past DeviceInfo)" % (
            p.records_sent, p.n - 300)


# --------------------------------------------------------------------------
# THE TABLE. One row per case:
#   pen      the hostile pen's lies (hostile_pen.HostilePen keywords)
#   before   (pen keywords, penlink args) run first, each must exit 0
#   runs     penlink runs against the hostile pen, each with its exit status
#   stored   the hostile pen's records in the archive afterwards
#   acked    AckLog the pen received in `runs`: None (none), "last" (through the
#            last record it holds), a seq (the highest through_seq), "stored"
#            (at most the last stored record)
#   alarms   the set of alarm kinds in the archive (exact), or Without(...)
#   not_sent / only_sent   requests the pen must not / may only receive in `runs`
#   pinned   whether the pen's serial is in the archive's devices (None: either)
#   after    offline penlink runs (args, exit[, JSON lines on stdout])
# Every case also checks: stdout and stderr carry no raw control byte and are
# UTF-8; no sanitizer report; every AckLog ever sent covers only stored or
# gap-recorded records; `penlink verify` exits 0 at the end.

CASES = [
    # -- the pen itself is right: if these fail, nothing below means anything
    case("honest_pen", "control", "a truthful pen: everything stored and acknowledged",
         runs=[R(["pull"], 0), R(["--json", "pull"], 0, out_keys=["serial", "records"])],
         after=[(["audit"], 0), (["export", "records", "--format", "json"], 0, 300)]),
    case("honest_gap", "control",
         "pulled through 99; the pen then lost 100..199 (DeviceInfo.log_first_seq and "
         "LogEnd.first_available_seq both 200): a gap alarm, the rest stored and acknowledged",
         before=[(dict(FIRST, n=100), ["pull"])],
         pen=dict(FIRST, first_held=200, acked=100), stored=runs_of((0, 99), (200, 299)),
         alarms={"gap"}, after=[(["audit"], 1)]),

    case("first_pull_after_loss", "control",
         "a pen never pulled before that lost 0..99 before anyone acknowledged them "
         "(log_first_seq 100, log_acked_seq 0): the first pull asks from 0, so the pen's own "
         "words record the loss as a gap; the rest stored and acknowledged",
         pen=dict(first_held=100, acked=0), stored=runs_of((100, 299)), alarms={"gap"},
         after=[(["audit"], 1)]),

    # -- defect 1: a first LogChunk that never arrives whole, the pen saying seq 0 is held
    case("d1_first_chunk_bad_crc", "12.1",
         "the frame of chunk 0 always fails its CRC; DeviceInfo and LogEnd say seq 0 is held: "
         "never a gap; retries, then exit 5 with nothing stored past the hole (so nothing)",
         pen=dict(damage=("crc", 0, None)), runs=[R(["pull"], 5)], stored=NONE, acked=None,
         pinned=None),
    case("d1_first_chunk_truncated", "12.1",
         "chunk 0's frame is cut short, the rest of the reply follows (and begins inside it)",
         pen=dict(damage=("truncate", 0, None)), runs=[R(["pull"], 5)], stored=NONE,
         acked=None, pinned=None, timeout=300),
    case("d1_first_chunk_foreign_id", "12.1",
         "chunk 0 arrives whole but with another request's id: not ours, so missing",
         pen=dict(damage=("foreign_id", 0, None)), runs=[R(["pull"], 5)], stored=NONE,
         acked=None, pinned=None, timeout=300),
    case("d1_first_chunk_bad_crc_once", "12.1",
         "chunk 0 damaged once only: the retry from seq 0 gets everything",
         pen=dict(damage=("crc", 0, 1))),

    # -- defect 2: pull -o FILE mixes pens
    case("d2_plog_of_another_pen", "12.2",
         "pen B pulled into pen A's .plog: refused (decision: exit 6, the file names "
         "another pen, a consistency check) and the file left as it was; nothing of B "
         "acknowledged",
         before=[(dict(serial=b"PEN-A-0001", key_seed=b"\x0a" * 32, tag=3),
                  ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(serial=b"PEN-B-0001", key_seed=b"\x0b" * 32, tag=4, n=400),
         runs=[R(["pull", "-o", "{tmp}/pen.plog"], 6)], stored=None, acked=None,
         pinned=None, check=plog_unchanged),

    # -- defect 3: pinning
    case("d3_signing_dropped", "12.3",
         "pinned as signing; now the same key without SIGNED_CHUNKS: alarm signing_dropped, "
         "exit 6, nothing pulled or acknowledged",
         before=[(FIRST, ["pull"])],
         pen=dict(FIRST, sign=False, present_key=True, n=400, acked=300),
         runs=[R(["pull"], 6)], stored=exact(0, 299), acked=None, alarms={"signing_dropped"},
         not_sent={"pull_log", "ack_log"}),
    case("d3_key_reused", "12.3",
         "the device key of PEN-H-0001 under a second serial: alarm key_reused, exit 6; "
         "(decision, as for key_changed) nothing of the clone stored or acknowledged",
         before=[(FIRST, ["pull"])], pen=dict(FIRST, serial=b"PEN-CLONE-1", tag=5),
         runs=[R(["pull"], 6)], stored=NONE, acked=None, alarms={"key_reused"}, pinned=None),
    case("key_changed", "control",
         "another key under a pinned serial (pinning penlink already does): alarm "
         "key_changed, exit 6",
         before=[(FIRST, ["pull"])],
         pen=dict(FIRST, key_seed=b"\x02" * 32, n=400, acked=300),
         runs=[R(["pull"], 6)], stored=exact(0, 299), acked=None, alarms={"key_changed"}),

    # -- two pens that do not sign their log under one serial (no key tells them apart)
    case("twin_serial_same_count", "twin",
         "PEN-SAME's 0..299 archived and acknowledged; a second unsigned pen under the same "
         "serial holds its own 0..299, none acknowledged (log_acked_seq 0): the host asks "
         "from 0, not from the archive's next seq 300, and the records sent again differ from "
         "the archived ones: alarm conflict, exit 6, nothing acknowledged",
         before=[(dict(serial=b"PEN-SAME", sign=False, tag=1), ["pull"])],
         pen=dict(serial=b"PEN-SAME", sign=False, tag=2), runs=[R(["pull"], 6)],
         stored=None, acked=None, alarms={"conflict"}, check=asked_from(0),
         after=[(["audit", "--report", "integrity"], 1)]),
    case("twin_serial_longer_log", "twin",
         "as twin_serial_same_count, the second pen holding 0..599: its 0..299 are compared "
         "with the archived ones (conflict), never acknowledged unseen: exit 6, nothing "
         "acknowledged",
         before=[(dict(serial=b"PEN-SAME", sign=False, tag=1), ["pull"])],
         pen=dict(serial=b"PEN-SAME", sign=False, tag=2, n=600), runs=[R(["pull"], 6)],
         stored=None, acked=None, alarms={"conflict"}, check=asked_from(0),
         after=[(["audit", "--report", "integrity"], 1)]),
    case("unacked_resent_same", "twin",
         "an unsigned pen's 0..299 archived but not acknowledged (log_acked_seq still 0, the "
         "AckLog lost), 300..399 logged since: the host asks from 0, the records sent again "
         "equal the archived ones (duplicates), exit 0, acknowledged through 399",
         before=[(dict(FIRST, sign=False), ["pull"])],
         pen=dict(FIRST, sign=False, n=400), check=asked_from(0)),
    case("o_twin_serial_same_count", "twin",
         "pull -o: PEN-SAME's 0..299 in the file and acknowledged; a second unsigned pen under "
         "the same serial holds its own 0..299, none acknowledged: the host asks from 0 and "
         "compares them with the file's copies: exit 6, the file untouched, nothing "
         "acknowledged",
         before=[(dict(serial=b"PEN-SAME", sign=False, tag=1), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(serial=b"PEN-SAME", sign=False, tag=2),
         runs=[R(["pull", "-o", "{tmp}/pen.plog"], 6, err_has=r"arrived again")], stored=None,
         acked=None, pinned=None, check=plog_holds(0, 299, unchanged=True)),
    case("o_twin_serial_longer_log", "twin",
         "pull -o: as o_twin_serial_same_count, the second pen holding 0..599: its 0..299 are "
         "compared, never acknowledged unseen: exit 6, the file untouched, nothing acknowledged",
         before=[(dict(serial=b"PEN-SAME", sign=False, tag=1), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(serial=b"PEN-SAME", sign=False, tag=2, n=600),
         runs=[R(["pull", "-o", "{tmp}/pen.plog"], 6, err_has=r"arrived again")], stored=None,
         acked=None, pinned=None, check=plog_holds(0, 299, unchanged=True)),
    case("o_unacked_resent_same", "twin",
         "pull -o: an unsigned pen's 0..299 in the file but not acknowledged, 300..399 logged "
         "since: the host asks from 0, the records sent again equal the file's and are not "
         "written again: the file decodes to each of 0..399 once, exit 0",
         before=[(dict(FIRST, sign=False), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(FIRST, sign=False, n=400),
         runs=[R(["pull", "-o", "{tmp}/pen.plog"], 0,
                 err_has=r"\A(penlink: pull PEN-H-0001: (the pen announces|done:|\d+ of) [^\n]*\n)*\Z")],
         stored=None, pinned=None, check=plog_holds(0, 399)),
    case("acked_not_resent", "twin",
         "an unsigned pen whose acknowledged seq equals the archive's next seq (the normal "
         "case): the host asks from 300 only, nothing is sent again",
         before=[(dict(FIRST, sign=False), ["pull"])],
         pen=dict(FIRST, sign=False, n=400, acked=300), check=asked_from(300)),

    # -- defect 4: a serial that is a path
    case("d4_serial_is_a_path", "12.4",
         "serial ../../X is printable ASCII but no file name: watch --dir refuses the pen "
         "(decision: exit 5, as a serial refused at open), writes nothing outside DIR and "
         "acknowledges nothing",
         pen=dict(serial=b"../../X"), mkdirs=["w/a/b"],
         runs=[R(["watch", "--dir", "{tmp}/w/a/b", "--once"], 5)], stored=None, acked=None,
         pinned=None, check=nothing_outside_dir),

    # -- defect 5: seqs at and above 2^63, refused before storing; another pen unharmed
    case("d5_log_above_2^63", "12.5",
         "DeviceInfo, chunks and LogEnd all at 2^63 and above: refused before storing, exit 5",
         before=[(GOOD, ["pull"])], pen=dict(base=TOP), runs=[R(["pull"], 5)], stored=NONE,
         acked=None, pinned=None, after=GOOD_STILL_FINE),
    case("d5_deviceinfo_next_seq_2^63", "12.5",
         "only DeviceInfo.log_next_seq is 2^63 + 300: refused before pulling, exit 5",
         before=[(GOOD, ["pull"])], pen=dict(info={"log_next_seq": TOP + 300}),
         runs=[R(["pull"], 5)], stored=NONE, acked=None, pinned=None, after=GOOD_STILL_FINE),
    case("d5_chunks_at_2^63", "12.5",
         "DeviceInfo and LogEnd in range, the chunks' seqs moved up by 2^63: exit 5",
         before=[(GOOD, ["pull"])],
         pen=dict(layout=seqs_shifted(TOP)),
         runs=[R(["pull"], 5)], stored=NONE, acked=None, pinned=None, after=GOOD_STILL_FINE),
    case("d5_logend_next_seq_2^64-1", "12.5",
         "the first LogEnd says next_seq 2^64-1: nothing of that reply stored, exit 5",
         before=[(GOOD, ["pull"])], pen=dict(end={"next_seq": U64}),
         runs=[R(["pull"], 5)], stored=NONE, acked=None, pinned=None, after=GOOD_STILL_FINE),

    # -- defect 6 and identity: escapes, invalid UTF-8, over-long strings
    case("d6_serial_escapes", "12.6",
         "HelloReply.serial with ESC, CR, clear-screen, BEL, NUL, invalid UTF-8: refused at "
         "open (exit 5), shown escaped, never pinned",
         pen=dict(serial=b"PEN" + HOSTILE),
         runs=[R(["info"], 5), R(["--json", "info"], 5, err_keys=["error", "exit_code"]),
               R(["pull"], 5)],
         stored=NONE, acked=None, pinned=False),
    case("d6_serial_not_utf8", "12.6", "a serial of invalid UTF-8: refused at open, exit 5",
         pen=dict(serial=b"PEN-\xff\xfe\x9b1"),
         runs=[R(["--json", "pull"], 5, err_keys=["error", "exit_code"]), R(["info"], 5)],
         stored=NONE, acked=None, pinned=False),
    case("d6_serial_overlong", "12.6",
         "a 40-byte printable serial (spec and pull rules: 1..32 bytes; issue 12's sketch said "
         "64 characters, the rules are newer): refused at open, exit 5, not truncated",
         pen=dict(serial=LONG_PRINTABLE), runs=[R(["pull"], 5)], stored=NONE, acked=None,
         pinned=False),
    case("d6_serial_spaces", "12.R5", "a serial of spaces only: refused, exit 5, saying so",
         pen=dict(serial=b"    "), runs=[R(["pull"], 5, err_has="only spaces")], stored=NONE,
         acked=None,
         pinned=False),
    case("d6_deviceinfo_serial_differs", "12.6",
         "DeviceInfo.serial is not HelloReply.serial: refused at open, exit 5",
         pen=dict(info_serial=b"PEN-OTHER-1"), runs=[R(["info"], 5), R(["pull"], 5)],
         stored=NONE, acked=None, pinned=False),
    case("d6_identity_strings", "12.6",
         "model, hardware revision and firmware with escapes, invalid UTF-8 and 1.6 kB: "
         "(decision) no record depends on them, so info and pull succeed, escaped, and "
         "JSON keeps every key",
         pen=dict(model=b"M" + HOSTILE, hardware_revision=LONG_HOSTILE,
                  firmware_version=BAD_UTF8 + ESC_CLEAR),
         runs=[R(["info"], 0),
               R(["--json", "info"], 0,
                 out_keys=["serial", "model", "hardware_revision", "firmware_version"]),
               R(["--json", "pull"], 0, out_keys=["serial", "records"])]),
    case("d6_error_strings", "12.6",
         "the pen refuses PullLog (BUSY) with Error.message and Error.field full of escapes, "
         "invalid UTF-8 and 1.6 kB: exit 4, shown escaped, JSON error keeps its keys",
         pen=dict(pull_error=(E_BUSY, LONG_HOSTILE, b"pull_log." + HOSTILE)),
         runs=[R(["pull"], 4), R(["--json", "pull"], 4, err_keys=["error", "exit_code"])],
         stored=NONE, acked=None, pinned=None),
    case("d6_config_labels", "12.6",
         "device_label and clinic_id with escapes, invalid UTF-8, over max_text_len: "
         "(decision) shown escaped, exported as JSON that keeps the keys; the pull succeeds",
         pen=dict(device_label=HOSTILE, clinic_id=LONG_HOSTILE),
         runs=[R(["config", "get"], 0),
               R(["--json", "config", "get"], 0, out_keys=["device_label", "clinic_id"]),
               R(["config", "export", "{tmp}/cfg.json"], 0,
                 file_keys=("{tmp}/cfg.json", ["device_label", "clinic_id"])),
               R(["pull"], 0)]),

    # -- defect 7: spec and code disagree
    case("d7_unknown_body_replies", "12.7",
         "an Envelope of an unknown body before HelloReply, DeviceInfo, Config, inside the "
         "pull and before AckLogReply: discarded (section 3), all else as usual",
         pen=dict(unknown_before={"hello_reply", "device_info", "config", "log_chunk",
                                  "ack_log_reply"}),
         runs=[R(["info"], 0), R(["pull"], 0)]),
    case("pull_chatter", "12.7",
         "every PullLog is answered by an endless stream of Envelopes of an unknown body with "
         "its request id, never a chunk or a LogEnd: discarded, but they do not keep the host "
         "waiting; each reply times out, and after its retries the pull fails with exit 5, "
         "nothing stored or acknowledged",
         pen=dict(chatter=True), runs=[R(["pull"], 5)], stored=NONE, acked=None, timeout=300),
    case("d7_frame_inside_bad_crc_frame", "12.7",
         "HelloReply, DeviceInfo and a LogChunk of each reply each begin inside a frame "
         "refused for its CRC (section 2 rule 5): found, all else as usual",
         pen=dict(inside_bad_crc={"hello_reply", "device_info", "log_chunk"})),
    case("d7_ack_reply_higher", "12.7",
         "AckLogReply.acked_seq claims 1000 more than asked: exit 6, alarm ack_mismatch "
         "(the records were stored before the AckLog)",
         pen=dict(ack_lie=lambda a: a + 1000), runs=[R(["pull"], 6)],
         alarms={"ack_mismatch"}),
    case("d7_ack_reply_lower", "12.7",
         "AckLogReply.acked_seq says 100 after AckLog through 299: exit 4 naming 100",
         pen=dict(ack_lie=lambda a: 100), runs=[R(["pull"], 4, err_has=r"\b100\b")]),
    case("d7_serial_empty", "12.7", "an empty serial: refused at open, exit 5, never pinned",
         pen=dict(serial=b""), runs=[R(["info"], 5), R(["pull"], 5)], stored=NONE,
         acked=None, pinned=False),
    case("d7_no_log_pull", "12.7",
         "LOG_PULL not announced: pull refused locally (exit 4), no PullLog or AckLog sent",
         pen=dict(features=CONFIG | CLOCK, sign=False),
         runs=[R(["pull"], 4, err_has="does not support")], stored=NONE, acked=None,
         not_sent={"pull_log", "ack_log"}, pinned=None),
    case("d7_no_config", "12.7",
         "CONFIG not announced: config get/set refused locally (exit 4), none sent; "
         "a pull needs no configuration and succeeds",
         pen=dict(features=LOG_PULL | CLOCK | SIGNED_CHUNKS),
         runs=[R(["config", "get"], 4, err_has="does not support"),
               R(["config", "set", "depth_max_um=2000"], 4, err_has="does not support"),
               R(["pull"], 0)],
         not_sent={"get_config", "set_config"}),
    case("d7_no_clock", "12.7",
         "CLOCK not announced: clock sync refused locally (exit 4), no SetClock sent",
         pen=dict(features=LOG_PULL | CONFIG | SIGNED_CHUNKS),
         runs=[R(["clock", "sync"], 4, err_has="does not support"), R(["pull"], 0)],
         not_sent={"set_clock"}),
    case("no_features", "12.7",
         "a pen announcing no feature: info works; pull, config and clock refused locally",
         pen=dict(features=0, sign=False),
         runs=[R(["info"], 0), R(["pull"], 4), R(["config", "get"], 4),
               R(["clock", "sync"], 4)],
         stored=NONE, acked=None, only_sent={"hello", "get_info"}, pinned=None),

    # -- defect 8: an endless log
    case("d8_endless_log", "12.8",
         "DeviceInfo says 300 records; the pen answers `more` with valid chunks up to "
         "%d past it: the host stops within its documented margin, keeps 0..299, alarm "
         "overrun, exit 6, acknowledges nothing" % ENDLESS_CAP,
         pen=dict(n=300 + ENDLESS_CAP, info={"log_next_seq": 300}, chunk=100, per_reply=1),
         runs=[R(["pull"], 6)], stored=prefix(0, 300 + ENDLESS_CAP - 2, at_least=299),
         acked=None, alarms={"overrun"}, check=endless_bounded),

    case("overrun_says_what_is_kept", "12.R3",
         "DeviceInfo says log_next_seq 10, the pen sends 6,000 records, 32 chunks of 100 per "
         "signed reply: the overrun comes inside the second reply (at seq 4100), whose head "
         "never arrives, so only 0..3199 are kept; the alarm and the error say so, and no "
         "larger seq is called kept",
         pen=dict(n=6000, chunk=100, per_reply=32, info={"log_next_seq": 10}),
         runs=[R(["pull"], 6, err_has=r"archived the records through seq 3199\b")],
         stored=exact(0, 3199), acked=None, alarms={"overrun"}, check=overrun_detail),
    case("absurd_count_not_echoed", "16.6",
         "DeviceInfo says log_next_seq 2^62, the pen holds 300 records and ends its log there: "
         "it contradicts itself (exit 6, 0..299 kept, nothing acknowledged), and the stopped "
         "pull's summary does not repeat its count of records still on it",
         pen=dict(info={"log_next_seq": 1 << 62}),
         runs=[R(["pull"], 6, err_has=r"\A(?![\s\S]*\d+ more records)[\s\S]*"
                 r"\n  on the pen: more records, how many is unknown \(the pen's own count does "
                 r"not hold together\)\n  next:       ")],
         stored=ALL, acked=None, alarms={"contradiction"}),

    # -- a pen that seals archived records again (its chain forks from the archived one)
    case("reseal_archived_chunk", "12.R2",
         "0..549 archived (last chunk 500..549, not acknowledged); the pen then seals 500..599 "
         "as one new chunk after 450..499 (same records 500..549): its chain forks from the "
         "archived one: exit 6, alarm unverified, nothing new stored or acknowledged",
         before=[(dict(FIRST, n=550), ["pull"])],
         pen=dict(FIRST, n=650, layout=resealed(500, 600)), runs=[R(["pull"], 6)],
         stored=exact(0, 549), acked=None, alarms={"unverified"}),
    case("reseal_archived_chunk_altered", "12.R2",
         "as reseal_archived_chunk, the records 500..549 sealed again 7 ms later: exit 6, "
         "alarm unverified, nothing new stored or acknowledged",
         before=[(dict(FIRST, n=550), ["pull"])],
         pen=dict(FIRST, n=650, layout=resealed(500, 600, later)), runs=[R(["pull"], 6)],
         stored=exact(0, 549), acked=None, alarms={"unverified"}),
    case("next_chunk_after_other_link", "12.R2",
         "0..549 archived; the next chunk 550..599 starts at the archive's end but names "
         "another chunk before it (the pen re-sealed 500..549 differently and chained on): "
         "exit 6, alarm unverified, nothing new stored or acknowledged",
         before=[(dict(FIRST, n=550), ["pull"])],
         pen=dict(FIRST, n=650, layout=resealed(500, 550, later)), runs=[R(["pull"], 6)],
         stored=exact(0, 549), acked=None, alarms={"unverified"}),
    case("head_without_chunks_after_archive", "12.R2",
         "0..549 archived; the pen holds them with 500..549 not sealed yet (as a copy of the "
         "pen pulled alongside would), so its reply from 550 sends no chunk and its signed "
         "head names its newest sealed link (after 450..499): not a fork, exit 0",
         before=[(dict(FIRST, n=550), ["pull"])],
         pen=dict(FIRST, n=550, layout=stops_at(500)), stored=exact(0, 549)),
    case("reseal_unsigned_conflict", "12.R1",
         "a pen that does not sign: 0..549 archived, then 500..599 sealed again 7 ms later: "
         "no chain to fork, so the records are compared: alarm conflict, both kept (the "
         "chunk as evidence), exit 6 and, as for any lie of the pen, nothing acknowledged",
         before=[(dict(FIRST, sign=False, n=550), ["pull"])],
         pen=dict(FIRST, sign=False, n=650, layout=resealed(500, 600, later)),
         runs=[R(["pull"], 6)], stored=exact(0, 649), acked=None, alarms={"conflict"},
         after=[(["verify"], 0), (["audit", "--report", "integrity"], 1)]),
    case("verify_names_a_fork", "12.R2",
         "an archive holding a forked chain (0..549, then 500..649 sealed again by the pen, "
         "as an earlier penlink stored it): verify fails (exit 6) naming the fork, and does "
         "not call records that are in the archive missing or removed",
         before=[(dict(FIRST, n=550), ["pull"])],
         pen=dict(FIRST, n=650, layout=resealed(500, 600)), runs=[],
         stored=exact(0, 549), acked=None, alarms=frozenset(), check=splice_fork,
         after=[(["verify"], 6)]),

    # -- pull -o: records sent again are compared with the file's copies
    case("o_resent_other_content", "12.R1",
         "pull -o: 0..549 in the file (last chunk 500..549, not acknowledged); the pen sends "
         "500..599 with 500..549 7 ms later: exit 6, the file untouched, nothing acknowledged",
         before=[(dict(FIRST, sign=False, n=550), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(FIRST, sign=False, n=650, layout=resealed(500, 600, later)),
         runs=[R(["pull", "-o", "{tmp}/pen.plog"], 6, err_has=r"record 500 arrived again")],
         stored=None, acked=None, pinned=None, check=plog_holds(0, 549, unchanged=True)),
    case("o_resent_same_content", "12.R1",
         "pull -o: as o_resent_other_content, 500..549 sent again the same: compared, not new; "
         "the file decodes to each of 0..649 once; exit 0, acknowledged",
         before=[(dict(FIRST, sign=False, n=550), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(FIRST, sign=False, n=650, layout=resealed(500, 600)),
         # stderr: the pull's progress lines (a log: start and end), nothing else
         runs=[R(["pull", "-o", "{tmp}/pen.plog"], 0,
                 err_has=r"\A(penlink: pull PEN-H-0001: (the pen announces|done:|\d+ of) [^\n]*\n)*\Z")],
         stored=None, pinned=None, check=plog_holds(0, 649)),
    case("o_resealed_signed", "12.R1",
         "pull -o from a signing pen that seals 500..549 again in a new chunk after the file's "
         "450..499: its chain forks from the file's: exit 6, the file untouched, nothing "
         "acknowledged",
         before=[(dict(FIRST, n=550), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(FIRST, n=650, layout=resealed(500, 600)),
         runs=[R(["pull", "-o", "{tmp}/pen.plog"], 6, err_has="forks")], stored=None,
         acked=None, pinned=None, check=plog_holds(0, 549, unchanged=True)),
    case("o_next_chunk_after_other_link", "12.R1",
         "pull -o from a signing pen whose next chunk (550..599) names another chunk before it "
         "than the file's last: exit 6, the file untouched, nothing acknowledged",
         before=[(dict(FIRST, n=550), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(FIRST, n=650, layout=resealed(500, 550, later)),
         runs=[R(["pull", "-o", "{tmp}/pen.plog"], 6, err_has="does not follow the chain")],
         stored=None, acked=None, pinned=None, check=plog_holds(0, 549, unchanged=True)),
    case("decode_joined_copies", "12.R1",
         "`cat f f` of a signing pen's .plog: decode shows each of 0..299 once and says that "
         "300 records come again, exit 0; --messages finds the chain intact",
         before=[(FIRST, ["pull", "-o", "{tmp}/pen.plog"])], pen=dict(FIRST), runs=[],
         stored=None, acked=None, pinned=None, check=joined_copies),
    case("decode_two_versions", "12.R1",
         "a .plog joined from the pen's file and a later file of the same pen whose 500..549 "
         "differ: decode stops at seq 500, exit 6",
         before=[(dict(FIRST, sign=False, n=550), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(FIRST, sign=False, n=650, layout=resealed(500, 600, later)),
         runs=[R(["pull", "-o", "{tmp}/other.plog"], 0)], stored=None, pinned=None,
         check=two_versions),
    case("decode_messages_fork", "12.R1",
         "a .plog holding 0..549 then the pen's re-sealed 500..599 (as an earlier penlink "
         "wrote it): decode --messages checks that chunk's prev_link against the chunk right "
         "before it in the file: broken, the fork named, exit 6",
         before=[(dict(FIRST, n=550), ["pull", "-o", "{tmp}/pen.plog"])],
         pen=dict(FIRST, n=650, layout=resealed(500, 600)),
         runs=[R(["pull", "-o", "{tmp}/other.plog"], 0)], stored=None, pinned=None,
         check=fork_in_file),

    # -- DeviceInfo and LogEnd contradicting the chunks
    case("logend_next_seq_behind_chunks", "lie",
         "the first LogEnd says next_seq 70 after chunks through 99: no lost frame makes "
         "next_seq smaller, so (decision) a contradiction: exit 6, nothing of it stored",
         pen=dict(end={"next_seq": lambda v: v - 30}, end_rounds={0}), runs=[R(["pull"], 6)],
         stored=NONE, acked=None, alarms=Without("gap"), pinned=None),
    case("logend_next_seq_past_chunks", "lie",
         "an unsigned pen sends chunks through 99 only, LogEnd says next_seq 300, no more: "
         "(decision) as frames lost on the wire: retries, exit 5, no gap, nothing acked past "
         "what is stored",
         pen=dict(sign=False, layout=stops_at(100), end={"next_seq": 300, "more": False}),
         runs=[R(["pull"], 5)], stored=prefix(0, 99), acked="stored", alarms=Without("gap"),
         pinned=None),
    case("gap_not_proven_by_deviceinfo", "12.1",
         "pulled through 99; now DeviceInfo.log_first_seq says 100 is held, but chunks start "
         "at 200 and LogEnd says first available 200: not proven gone (both must say so): no "
         "gap, retries, exit 5, nothing new stored or acknowledged",
         before=[(dict(FIRST, n=100), ["pull"])],
         pen=dict(FIRST, first_held=200, acked=100, info={"log_first_seq": 100}),
         runs=[R(["pull"], 5)], stored=exact(0, 99), acked=None, alarms=Without("gap")),
    case("gap_not_proven_by_logend", "12.1",
         "pulled through 99; DeviceInfo says 200 is the first held, chunks start at 200, "
         "but LogEnd says first available 100: not proven gone: no gap, retries, exit 5",
         before=[(dict(FIRST, n=100), ["pull"])],
         pen=dict(FIRST, first_held=200, acked=100, end={"first_available_seq": 100}),
         runs=[R(["pull"], 5)], stored=exact(0, 99), acked=None, alarms=Without("gap")),

    # -- chunk counts and sizes that lie, seq ranges that overlap or go back
    case("chunk_record_count_lies", "lie",
         "chunk 0 says record_count 60 for a batch of 50 (consistently linked and signed): "
         "the chunk's fields disagree, a consistency check: exit 6, nothing stored",
         pen=dict(layout=first_chunk(record_count=60)), runs=[R(["pull"], 6)],
         stored=NONE, acked=None, alarms={"contradiction"}, pinned=None),
    case("chunk_raw_size_lies", "lie",
         "chunk 0's raw_size is 10 bytes more than its batch: a consistency check, exit 6",
         pen=dict(layout=first_chunk(raw_size_delta=10)), runs=[R(["pull"], 6)],
         stored=NONE, acked=None, alarms={"contradiction"}, pinned=None),
    case("chunks_overlap", "lie",
         "chunk [0,50) then [40,90) with other content for 40..49, linked and signed as "
         "sent: (decision) two records for one seq in one signed reply is a contradiction: "
         "exit 6, nothing of the reply kept",
         pen=dict(layout=overlapping), runs=[R(["pull"], 6)], stored=NONE, acked=None,
         alarms=Without("gap"), pinned=None),
    case("chunks_go_backwards", "lie",
         "chunks [0,50) [100,150) [50,100), relinked in that order and signed: (decision) no "
         "wire fault yields a verified chain out of order: exit 6, nothing kept",
         pen=dict(layout=backwards, per_reply=3), runs=[R(["pull"], 6)], stored=NONE,
         acked=None, alarms=Without("gap"), pinned=None),
    case("zlib_bomb", "12.R4",
         "chunk 0 inflates to %d MiB (raw_size says the batch's size), its frame intact: "
         "refused at the decoder's limit; no wire fault explains it, so (section 5 rule 3) "
         "exit 6, alarm contradiction, nothing stored" % (hp.BOMB_BYTES >> 20),
         pen=dict(layout=first_chunk(bomb=True)), runs=[R(["pull"], 6)], stored=NONE,
         acked=None, alarms={"contradiction"}, pinned=None),
    case("chunk_first_seq_lies", "12.R4",
         "chunk 0 says first_seq 0, its batch holds records 1..50 (linked and signed as sent): "
         "arrived intact, failed its checks: exit 6, alarm contradiction, nothing stored",
         pen=dict(layout=batch_first_seq_lies), runs=[R(["pull"], 6)], stored=NONE,
         acked=None, alarms={"contradiction"}, pinned=None),

    # -- absurd field values, validly encoded
    case("absurd_values", "12.12",
         "depth 4e9 um, a treatment of 3 years, 2^64-1 strokes, times at INT64_MIN/MAX and "
         "100 years ahead, a clock_set of -2^63, an unknown kind: (decision) they are the "
         "pen's records: stored and acknowledged (exit 0); the offline commands cope and the "
         "audit flags them (exit 1)",
         pen=dict(n=70, absurd=True),
         after=[(["audit", "--format", "json"], 1), (["audit"], 1),
                (["export", "records", "--format", "json"], 0, 70),
                (["export", "records", "--format", "csv"], 0),
                (["export", "treatments", "--format", "json"], 0)]),

    # -- a newer major version
    case("version_mismatch_error", "lie",
         "the pen answers Hello with VERSION_MISMATCH (it speaks 2.0): exit 5, nothing but "
         "Hello sent",
         pen=dict(hello_error=(E_VERSION_MISMATCH, b"pen speaks 2.0, host 1.0")),
         runs=[R(["info"], 5), R(["pull"], 5)], stored=NONE, acked=None,
         only_sent={"hello"}, pinned=False),
    case("version_newer_major_reply", "lie",
         "a HelloReply with protocol_major 2: the host stops (exit 5) before any request",
         pen=dict(hello_major=2), runs=[R(["info"], 5), R(["pull"], 5)], stored=NONE,
         acked=None, only_sent={"hello"}, pinned=False),
]


# --------------------------------------------------------------------------
# The runner


def digest(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


def snapshot(top):
    out = {}
    for d, _dirs, files in os.walk(top):
        for f in files:
            p = os.path.join(d, f)
            if not p.endswith(".sock"):
                out[p] = digest(p)
    return out


SANITIZER = re.compile(rb"AddressSanitizer|LeakSanitizer|runtime error:|==\d+==ERROR")


def hygiene(label, data):
    """None, or why these bytes must not reach a terminal or a JSON reader."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return "%s is not UTF-8 (byte 0x%02x at %d)" % (label, data[e.start], e.start)
    for i, ch in enumerate(text):
        o = ord(ch)
        if (o < 0x20 and ch not in "\n\t") or 0x7F <= o <= 0x9F:
            return "%s carries raw control U+%04X at %d: %r" % (
                label, o, i, text[max(0, i - 20):i + 20])
    return None


def first_json(data):
    """The first JSON object of a stream of one object or JSON lines."""
    text = data.decode("utf-8")
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(text.splitlines()[0])


def error_json(data):
    """The error object of --json's stderr: JSON lines (a pull's progress and
    notice events first), every one of them JSON, the error the last."""
    objs = [json.loads(line) for line in data.decode("utf-8").splitlines() if line]
    return objs[-1]


class Ctx:
    def __init__(self, penlink, tmp, timeout):
        self.penlink = penlink
        self.tmp = tmp
        self.archive = os.path.join(tmp, "archive.db")
        self.timeout = timeout
        self.problems = []
        self.log = []

    def run(self, args, sock=None):
        cmd = list(self.penlink) + ["--archive", self.archive]
        if sock:
            cmd += ["--device", "sim:" + sock, "--timeout", str(self.timeout)]
        cmd += [a.replace("{tmp}", self.tmp) for a in args]
        t = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
        err = p.stderr.decode("utf-8", "replace").strip().splitlines()
        self.log.append("  $ penlink %s -> %d (%.1f s)%s" % (
            " ".join(shlex.quote(a) for a in args), p.returncode, time.monotonic() - t,
            ("  # " + err[-1][:160]) if err else ""))
        for label, data in (("stdout", p.stdout), ("stderr", p.stderr)):
            why = hygiene("penlink %s: %s" % (" ".join(args), label), data)
            if why:
                self.problems.append(why)
        if SANITIZER.search(p.stderr):
            self.problems.append("sanitizer report from penlink %s:\n%s" % (
                " ".join(args), p.stderr.decode("utf-8", "replace")[-2000:]))
        return p

    def expect_exit(self, p, args, want):
        if p.returncode != want:
            err = p.stderr.decode("utf-8", "replace").strip().splitlines()
            self.problems.append("penlink %s: exit %d, want %d%s" % (
                " ".join(args), p.returncode, want,
                (" (" + " | ".join(err[-3:])[:400] + ")") if err else ""))
            return False
        return True

    # -- the archive --------------------------------------------------

    def db(self):
        if not os.path.exists(self.archive):
            return None
        con = sqlite3.connect(self.archive)
        con.text_factory = bytes
        return con

    def serials(self):
        con = self.db()
        if con is None:
            return set()
        try:
            return {r[0] for r in con.execute("SELECT CAST(serial AS BLOB) FROM devices")}
        finally:
            con.close()

    def seqs(self, serial):
        con = self.db()
        if con is None:
            return []
        try:
            return sorted(r[0] & U64 for r in con.execute(
                "SELECT r.seq FROM records r JOIN devices d ON d.id = r.device_id "
                "WHERE CAST(d.serial AS BLOB) = ?", (serial,)))
        finally:
            con.close()

    def alarms(self):
        con = self.db()
        if con is None:
            return []
        try:
            return [(k.decode(), s, q & U64, n) for k, s, q, n in
                    con.execute("SELECT a.kind, CAST(d.serial AS BLOB), a.seq, a.count "
                                "FROM alarms a JOIN devices d ON d.id = a.device_id")]
        finally:
            con.close()


def check_stored(ctx, pen, want, who):
    if want is None:
        return
    got = ctx.seqs(pen.serial)
    if want == NONE:
        if got:
            ctx.problems.append("%s: %d records stored (seq %d..%d), want none" % (
                who, len(got), got[0], got[-1]))
        return
    if want == ALL:
        want = exact(pen.first_held, pen.next_seq - 1)
    if want[0] == "set":
        if got != want[1]:
            ctx.problems.append("%s: stored %s, want %s" % (who, summary(got), summary(want[1])))
    elif want[0] == "exact":
        lo, hi = want[1], want[2]
        if got != list(range(lo, hi + 1)):
            ctx.problems.append("%s: stored %s, want seq %d..%d" % (who, summary(got), lo, hi))
    elif want[0] == "prefix":
        lo, hi, at_least = want[1], want[2], want[3]
        ok = got == list(range(lo, lo + len(got))) and (not got or got[-1] <= hi)
        if at_least is not None:
            ok = ok and got and got[-1] >= at_least
        if not ok:
            ctx.problems.append("%s: stored %s, want a run from %d up to at most %d%s" % (
                who, summary(got), lo, hi,
                "" if at_least is None else " and at least %d" % at_least))


def summary(seqs):
    if not seqs:
        return "nothing"
    runs = []
    start = prev = seqs[0]
    for q in seqs[1:] + [None]:
        if q is not None and q == prev + 1:
            prev = q
            continue
        runs.append("%d..%d" % (start, prev) if start != prev else "%d" % start)
        if q is not None:
            start = prev = q
    return "%d records (%s)" % (len(seqs), ", ".join(runs[:6]) + (" ..." if len(runs) > 6
                                                                    else ""))


def acks_of(pen, phase=None):
    return [m.through_seq for ph, b, m in pen.received
            if b == "ack_log" and (phase is None or ph == phase)]


def check_ack_invariant(ctx, pen, archived):
    """No AckLog ever acknowledges a record that is neither stored nor
    recorded as a gap, from the first seq the host asked for on."""
    pulls = [m.from_seq for _ph, b, m in pen.received if b == "pull_log"]
    acks = acks_of(pen)
    if not acks or not archived:
        return
    lo = min(pulls) if pulls else pen.base
    got = set(ctx.seqs(pen.serial))
    gaps = [(q, n) for k, s, q, n in ctx.alarms() if k == "gap" and s == pen.serial]
    for t in acks:
        hole = None
        q = lo
        while q <= t:
            if q in got:
                q += 1
                continue
            cover = [g for g in gaps if g[0] <= q < g[0] + g[1]]
            if cover:
                q = cover[0][0] + cover[0][1]
                continue
            hole = q
            break
        if hole is not None:
            ctx.problems.append("AckLog through %d acknowledges seq %d, neither stored nor a "
                                "recorded gap (NO-LOSS BROKEN)" % (t, hole))
            return


def run_case(penlink, c, keep=False):
    tmp = tempfile.mkdtemp(prefix="penlink-hostile.")
    ctx = Ctx(penlink, tmp, c["timeout"])
    pens = []
    try:
        for d in c["mkdirs"]:
            os.makedirs(os.path.join(tmp, d))
        before_serials = set()
        for i, (kw, args) in enumerate(c["before"]):
            p = hp.HostilePen(os.path.join(tmp, "before%d.sock" % i), **kw)
            pens.append((p, "-o" not in args))
            p.phase = "before"
            r = ctx.run(args, p.path)
            ctx.expect_exit(r, ["(before)"] + args, 0)
            p.idle.wait(5)
            if "-o" not in args:
                check_stored(ctx, p, ALL, "before pen %s" % p.serial.decode())
            before_serials.add(p.serial)
        snap = snapshot(tmp)
        pen = hp.HostilePen(os.path.join(tmp, "pen.sock"), **c["pen"])
        to_archive = all("-o" not in r["args"] and "watch" not in r["args"] for r in c["runs"])
        pens.append((pen, to_archive))
        pen.phase = "test"
        for run in c["runs"]:
            r = ctx.run(run["args"], pen.path)
            pen.idle.wait(5)
            ok = ctx.expect_exit(r, run["args"], run["exit"])
            for stream, data in (("out_keys", r.stdout), ("err_keys", r.stderr)):
                if run.get(stream) and ok:
                    try:
                        obj = first_json(data) if stream == "out_keys" else error_json(data)
                        missing = [k for k in run[stream] if k not in obj]
                        if missing:
                            ctx.problems.append("penlink %s: JSON on %s lacks %s: %s" % (
                                " ".join(run["args"]), stream[:3], missing, obj))
                    except (ValueError, UnicodeDecodeError, IndexError) as e:
                        ctx.problems.append("penlink %s: %s is not JSON (%s): %r" % (
                            " ".join(run["args"]), stream[:3], e, data[:200]))
            if run.get("err_has") and not re.search(run["err_has"],
                                                    r.stderr.decode("utf-8", "replace")):
                ctx.problems.append("penlink %s: stderr does not match /%s/: %r" % (
                    " ".join(run["args"]), run["err_has"], r.stderr[:300]))
            if run.get("file_keys") and ok:
                path, keys = run["file_keys"]
                path = path.replace("{tmp}", tmp)
                try:
                    with open(path, "rb") as f:
                        raw = f.read()
                    obj = json.loads(raw.decode("utf-8"))
                    missing = [k for k in keys if k not in obj]
                    if missing:
                        ctx.problems.append("%s lacks %s" % (os.path.basename(path), missing))
                except (OSError, ValueError, UnicodeDecodeError) as e:
                    ctx.problems.append("%s: not a JSON file (%s)" % (os.path.basename(path), e))

        # what the pen received
        sent = [b for ph, b, _m in pen.received if ph == "test"]
        bad = sorted(set(sent) & c["not_sent"])
        if bad:
            ctx.problems.append("the host sent %s, which it must not" % ", ".join(bad))
        if c["only_sent"] is not None:
            extra = sorted(set(sent) - set(c["only_sent"]))
            if extra:
                ctx.problems.append("the host sent %s; only %s allowed" % (
                    ", ".join(extra), ", ".join(sorted(c["only_sent"]))))
        # the archive
        check_stored(ctx, pen, c["stored"], "pen")
        acks = acks_of(pen, "test")
        want = c["acked"]
        if want is None and acks:
            ctx.problems.append("acknowledged through %d, want no AckLog" % max(acks))
        elif want == "last" and (not acks or max(acks) != pen.next_seq - 1):
            ctx.problems.append("acknowledged %s, want through %d" % (
                "nothing" if not acks else "through %d" % max(acks), pen.next_seq - 1))
        elif want == "stored" and acks:
            got = ctx.seqs(pen.serial)
            if not got or max(acks) > got[-1]:
                ctx.problems.append("acknowledged through %d past the last stored record (%s)"
                                    % (max(acks), summary(got)))
        elif isinstance(want, int) and not isinstance(want, bool) and \
                (not acks or max(acks) != want):
            ctx.problems.append("acknowledged %s, want through %d" % (acks or "nothing", want))
        kinds = {a[0] for a in ctx.alarms()}
        want = c["alarms"]
        if isinstance(want, Without):
            if kinds & want.kinds:
                ctx.problems.append("alarms %s: none of %s may be there" % (
                    sorted(kinds), sorted(want.kinds)))
        elif kinds != set(want):
            ctx.problems.append("alarms %s, want %s" % (sorted(kinds), sorted(want)))
        serials = ctx.serials()
        if c["pinned"] is True and pen.serial not in serials:
            ctx.problems.append("the pen's serial is not in the archive's devices")
        if c["pinned"] is False and serials - before_serials:
            ctx.problems.append("devices added to the archive: %s" % sorted(
                serials - before_serials))
        for p, archived in pens:
            check_ack_invariant(ctx, p, archived)
            if p.errors:
                ctx.problems.append("pen error (a bug of the test): %s" % p.errors)
        if c["check"]:
            why = c["check"]({"tmp": tmp, "snap": snap, "pen": pen, "ctx": ctx})
            if why:
                ctx.problems.append(why)
        # offline: what the case asks, then verify must pass on what is kept
        after = list(c["after"])
        if os.path.exists(ctx.archive) and not any(a[0] == ["verify"] for a in after):
            after.append((["verify"], 0))
        for a in after:
            r = ctx.run(a[0])
            if ctx.expect_exit(r, a[0], a[1]) and len(a) > 2:
                lines = r.stdout.decode("utf-8", "replace").splitlines()
                try:
                    [json.loads(x) for x in lines]
                    if len(lines) != a[2]:
                        ctx.problems.append("penlink %s: %d lines, want %d" % (
                            " ".join(a[0]), len(lines), a[2]))
                except ValueError as e:
                    ctx.problems.append("penlink %s: not JSON lines (%s)" % (" ".join(a[0]), e))
    except Exception as e:  # a bug of the test: report it as a failure
        ctx.problems.append("test error: %s: %s\n%s" % (type(e).__name__, e,
                                                        traceback.format_exc()))
    finally:
        for p, _a in pens:
            p.stop()
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return ctx


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--penlink", required=True)
    ap.add_argument("--only", default="")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep each case's temp dir")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.list:
        for c in CASES:
            print("%-40s %-8s %s" % (c["name"], c["defect"], c["why"]))
        return 0
    penlink = shlex.split(os.environ.get("PENLINK_WRAP", "")) + [a.penlink]
    hp.self_test()
    only = set(filter(None, a.only.split(",")))
    passed = failed = 0
    t0 = time.monotonic()
    for c in CASES:
        if only and c["name"] not in only:
            continue
        t = time.monotonic()
        ctx = run_case(penlink, c, a.keep)
        dt = time.monotonic() - t
        if ctx.problems:
            failed += 1
            print("FAIL %s [%s] (%.1f s): %s" % (c["name"], c["defect"], dt, c["why"]))
            for pr in ctx.problems:
                print("     - " + pr.replace("\n", "\n       "))
        else:
            passed += 1
            print("PASS %s [%s] (%.1f s)" % (c["name"], c["defect"], dt))
        if a.verbose or ctx.problems:
            print("\n".join(ctx.log))
        sys.stdout.flush()
    print("%d passed, %d failed (%.0f s)" % (passed, failed, time.monotonic() - t0))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
