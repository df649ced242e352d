#!/usr/bin/env python3
"""The lossy-wire matrix: `penlink pull` of a signing pen through a wire that
damages one frame, at every frame position of the session, in every way.

A filled signing pen is made once (penlink-sim, a few hundred records in
several chunks, --pull-window so that the pull takes several PullLog rounds);
every case starts from a copy of it. A clean run through the proxy
(lossy_wire.py) lists the frames of the session: every frame the pen sends
(HelloReply, DeviceInfo, Config, each LogChunk, each LogEnd, AckLogReply) and
every frame the host sends. Each case then pulls through the proxy with one
fault applied to one frame, and checks the host's pull and acknowledgement
rules against the simulator's ground truth (ground-truth.jsonl):

  * the archive holds seq 0..k-1 exactly as the pen logged them (a prefix of
    the ground truth, possibly empty), each once;
  * the pen acknowledged nothing at or past k (DeviceInfo.log_acked_seq <= k);
  * no alarm: a damaged, missing, doubled, reordered, late or foreign frame
    is never a gap, never an integrity failure;
  * the exit status is one the rules allow: 0 (then the archive is complete
    and acknowledged), 5 (protocol error after bounded retries) and, only
    where the connection was closed, 3;
  * the pull's summary claims no more than was stored: as JSON (half the
    cases), records, next_seq and acked_seq at most k, no gap, "ok" only
    with exit 0; as text (the other half), the "N new records (seq A..B)
    archived" line names only stored records, "acknowledged" only with exit 0;
  * `penlink verify` passes;
  * a second, clean pull (straight to the pen) exits 0 and completes the
    archive to exactly the ground truth, the pen acknowledged through its end,
    and `penlink verify` passes with every record verified.

Usage: test_wire_matrix.py PENLINK PENLINK_SIM [--subset]
  --subset  the valgrind tier's subset: every fault at the first LogChunk of
            the first and of the second round, and at the first PullLog
Environment:
  PENLINK_WRAP        a command to run penlink under (valgrind)
  PENLINK_WIRE_SEED   the seed of the flipped bits (printed; random otherwise)
  PENLINK_WIRE_ONLY   run only the cases whose name contains this text,
                      e.g. "flip_payload@pen:4" (to replay one)
  PENLINK_WIRE_TIMEOUT_MS  penlink --timeout of the faulted pulls (300;
                      under PENLINK_WRAP 3000)
  PENLINK_WIRE_JOBS   cases run at once (2)
Exit status 0 when every case holds, 1 otherwise.
"""

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True  # nothing written into the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lossy_wire  # noqa: E402

SERIAL = "PEN-WIRE"
SIM_SEED = 7
DAYS = 2            # 387 records
START_TIME = 1772409600000  # the first simulated day, 2026-03-02: no test depends on the date
BATCH = 64          # 6 stored chunks + the staged tail, sealed at the pull: 7
PULL_WINDOW = 2     # 2 chunks per PullLog: 4 rounds
MIN_ROUNDS = 3
ALLOWED = {0, 5}    # and 3 where the connection was closed

COLS = ["depth_um", "speed_sps", "duration_ms", "cartridge_serial", "cartridge_uses",
        "lifetime_cartridges", "strokes", "fault_code", "config_revision", "clock_delta_ms",
        "dropped"]
KINDS = ["power_on", "power_off", "treatment_start", "treatment_end", "cartridge_inserted",
         "cartridge_removed", "cartridge_refused", "depth_changed", "speed_changed", "fault",
         "config_changed", "clock_set", "log_overflow", "security_event"]


def body(b):
    """A record row's body, decoded from its description in host/src/record_body.c."""
    r = {"time_ms": struct.unpack_from("<q", b)[0]}
    r["kind"], i = lossy_wire.varint(b, 8)
    mask, i = lossy_wire.varint(b, i)
    for k, c in enumerate(COLS):
        if mask & (1 << k):
            r[c], i = lossy_wire.varint(b, i)
            if c == "clock_delta_ms":
                r[c] = (r[c] >> 1) ^ -(r[c] & 1)
    if i != len(b):
        raise ValueError("record body of %d bytes, %d decoded" % (len(b), i))
    return r


class Env:
    def __init__(self, penlink, sim, subset):
        self.pl = os.environ.get("PENLINK_WRAP", "").split() + [penlink]
        self.sim = sim
        self.subset = subset
        wrapped = bool(os.environ.get("PENLINK_WRAP", "").strip())
        self.timeout = int(os.environ.get("PENLINK_WIRE_TIMEOUT_MS", 3000 if wrapped else 300))
        self.delay = self.timeout + max(300, self.timeout // 2)
        # clean pulls: penlink's default timeout; under valgrind a generous one
        self.clean_timeout = ["--timeout", "10000"] if wrapped else []
        seed = os.environ.get("PENLINK_WIRE_SEED")
        self.seed = int(seed) if seed else random.SystemRandom().randrange(1 << 31)
        self.only = os.environ.get("PENLINK_WIRE_ONLY", "")
        # cases mostly wait (timeouts, the host's drain on connect): two at a time
        self.jobs = max(1, int(os.environ.get("PENLINK_WIRE_JOBS", 2)))
        self.lock = threading.Lock()
        self.tmp = tempfile.mkdtemp(prefix="plwire.")
        self.template = os.path.join(self.tmp, "template")
        # penlink's default archive and key places: inside the test's directory
        os.environ["XDG_DATA_HOME"] = os.path.join(self.tmp, "data")
        os.environ["XDG_CONFIG_HOME"] = os.path.join(self.tmp, "config")
        self.sims = []

    def penlink(self, *args):
        p = subprocess.run(self.pl + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, errors="replace")
        return p.returncode, p.stdout, p.stderr

    def start_sim(self, state, sock):
        log = open(state + ".log", "w")
        p = subprocess.Popen([self.sim, "--state", state, "--listen", sock, "--pull-window",
                              str(PULL_WINDOW)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        with self.lock:
            self.sims.append(p)
        for _ in range(2000):
            if os.path.exists(sock):
                return p
            if p.poll() is not None:
                break
            time.sleep(0.01)
        raise RuntimeError("penlink-sim did not start: " + open(state + ".log").read())

    def stop_sim(self, p):
        """SIGTERM; returns its exit status (0: a clean shutdown)."""
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        rc = p.wait()
        with self.lock:
            self.sims.remove(p)
        return rc

    def cleanup(self):
        for p in list(self.sims):
            p.kill()
            p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)


def archive_rows(db):
    """[(seq, body)] of the pen's records, and its alarms [(kind, seq, count, detail)]."""
    if not os.path.exists(db):
        return [], []
    con = sqlite3.connect(db)
    try:
        have = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "records" not in have:
            return [], []
        rows = con.execute("SELECT r.seq, r.body FROM records r JOIN devices d ON d.id ="
                           " r.device_id WHERE d.serial = ? ORDER BY r.seq", (SERIAL,)).fetchall()
        alarms = con.execute("SELECT a.kind, a.seq, a.count, a.detail FROM alarms a JOIN devices d"
                             " ON d.id = a.device_id WHERE d.serial = ?", (SERIAL,)).fetchall()
        return rows, alarms
    finally:
        con.close()


def prefix_len(rows, truth):
    """(k, why): the archive's rows hold seq 0..k-1 exactly as the pen logged them;
    why says what else they hold, or is None when that is all."""
    for i, (seq, b) in enumerate(rows):
        if i >= len(truth):
            return i, "record seq %d is past the pen's ground truth (%d records)" % (
                seq, len(truth))
        if seq != i:
            return i, "the archive holds seq %d where seq %d belongs (%s)" % (
                seq, i, "records %d..%d missing" % (i, seq - 1) if seq > i else
                "twice or out of order")
        r, w = body(b), truth[i]
        if r["time_ms"] != w["time_ms"] or KINDS[r["kind"] - 1] != w["kind"] or \
                any(r.get(c) != w.get(c) for c in COLS):
            return i, "record seq %d differs from the ground truth: %s vs %s" % (i, r, w)
    return len(rows), None


def held(k):
    return "seq 0..%d" % (k - 1) if k else "no record from seq 0"


def pen_info(env, sock, bad):
    """The pen's DeviceInfo as penlink info --json gives it, straight from the pen."""
    rc, out, err = env.penlink("--device", "sim:" + sock, "--json", "info")
    if rc != 0:
        bad.append("penlink info: exit %d: %s" % (rc, err.strip()[:200]))
        return {"log_acked_seq": 1 << 64, "log_next_seq": 0}
    return json.loads(out)


SUMMARY_TEXT = re.compile(r"^(\S+): (\d+) new records \(seq (\d+)\.\.(\d+)\) archived( and "
                          r"acknowledged)?$")


def check_summary(out, json_mode, rc, rows, k, bad):
    """What the pull printed claims no more than the archive holds."""
    seqs = {seq for seq, _ in rows}
    if not json_mode:
        for line in out.splitlines():
            m = SUMMARY_TEXT.match(line)
            if not m:
                continue
            n, a, b = int(m.group(2)), int(m.group(3)), int(m.group(4))
            missing = [s for s in range(a, b + 1) if s not in seqs]
            if n > len(rows) or missing:
                bad.append("stdout claims %d new records, seq %d..%d, archived; the archive holds "
                           "%d records%s" % (n, a, b, len(rows), ", not seq %d..%d" % (
                               missing[0], missing[-1]) if missing else ""))
            if m.group(5) and rc != 0:
                bad.append("stdout says acknowledged, exit %d" % rc)
        return
    if not out.strip():
        return  # the pull ended before it had a summary (the pen never answered Hello)
    try:
        summary = json.loads(out)
    except ValueError:
        bad.append("stdout is not JSON: %r" % out[:200])
        return
    stored_next = rows[-1][0] + 1 if rows else 0
    claims = (("records", len(rows), "records stored"),
              ("next_seq", stored_next, "one past the last seq stored"),
              ("acked_seq", k, "one past the stored prefix"))
    for key, limit, what in claims:
        if summary.get(key, 0) > limit:
            bad.append("the summary claims %s %d, %s is %d" % (key, summary[key], what, limit))
    if summary.get("gap"):
        bad.append("the summary claims a gap of %d records" % summary["gap"])
    if summary.get("ok") and rc != 0:
        bad.append("the summary says ok, exit %d" % rc)


def run_case(env, name, fault, at, json_mode=True):
    """One case: a pull through the wire with @fault at frame @at (None: a clean
    wire), then the checks. Returns (ok, the pull's exit status, [what was
    wrong], the proxy's log of frames, what the fault did)."""
    d = os.path.join(env.tmp, name)
    shutil.rmtree(d, ignore_errors=True)
    os.mkdir(d)
    state, simsock, psock = d + "/pen", d + "/pen.sock", d + "/wire.sock"
    db = d + "/a.db"
    shutil.copytree(env.template, state)
    sim = env.start_sim(state, simsock)
    bad = []
    proxy = lossy_wire.Proxy(psock, simsock, fault, at, env.delay,
                             random.Random("%d/%s" % (env.seed, name)))
    proxy.start()
    try:
        timeout = env.clean_timeout if fault is None else ["--timeout", str(env.timeout)]
        mode = ["--json"] if json_mode else []
        rc, out, err = env.penlink(*timeout, "--device", "sim:" + psock, "--archive", db,
                                   *mode, "pull")
        proxy.stop()
        if proxy.error:
            bad.append("the proxy failed: " + proxy.error)
        if fault is not None and proxy.applied is None:
            bad.append("the fault was never applied (the session has no frame %s:%d)" % at)
        errs = [line for line in err.strip().splitlines() if "warning" not in line]
        first_err = errs[-1] if errs else ""

        # 1. after the faulted pull
        truth = [json.loads(line) for line in open(state + "/ground-truth.jsonl")]
        rows, alarms = archive_rows(db)
        first_alarms = len(alarms)
        k, why = prefix_len(rows, truth)
        if why:
            bad.append("archive: " + why)
        info = pen_info(env, simsock, bad)
        acked = info["log_acked_seq"]
        if acked > k:
            stored = {seq for seq, _ in rows}
            lost = [s for s in range(k, min(acked, len(truth))) if s not in stored]
            bad.append("the pen acknowledged through seq %d, the archive holds %s as logged%s" % (
                acked - 1, held(k), ": seq %d..%d are lost (%d records)" % (
                    lost[0], lost[-1], len(lost)) if lost else ""))
        if alarms:
            bad.append("alarms: " + "; ".join("%s at seq %d (+%d): %s" % a for a in alarms))
        closes = fault == "truncate_close"
        if rc == 3 and not closes:
            bad.append("exit 3 (no device) though the connection stayed open")
        elif closes and rc != 3:
            bad.append("exit %d after the connection closed mid-frame, want 3" % rc)
        elif not closes and rc not in ALLOWED:
            bad.append("exit %d, the rules allow %s here (%s)" % (
                rc, " or ".join(map(str, sorted(ALLOWED))), first_err))
        if rc == 0 and (k != len(truth) or acked != info["log_next_seq"]):
            bad.append("exit 0, but the archive holds %s of the pen's %d records as logged "
                       "(%d rows); the pen acknowledged %s" % (
                           held(k), len(truth), len(rows),
                           "through seq %d" % (acked - 1) if acked else "nothing"))
        check_summary(out, json_mode, rc, rows, k, bad)
        if os.path.exists(db):  # a pull that failed before it opened the archive made none
            vrc, vout, verr = env.penlink("--archive", db, "verify")
            if vrc != 0:
                bad.append("verify after the faulted pull: exit %d: %s" % (
                    vrc, " ".join((vout + verr).split())[:240]))

        # 2. a second, clean pull completes the archive
        rc2, _, err2 = env.penlink(*env.clean_timeout, "--device", "sim:" + simsock, "--archive",
                                   db, "pull")
        if rc2 != 0:
            bad.append("the clean pull after it: exit %d: %s" % (rc2, err2.strip()[-200:]))
            # what the simulator was doing then, to tell a test rig fault from penlink's
            bad.append("penlink-sim %s, its socket %s; its log: %s" % (
                "running" if sim.poll() is None else "exited with status %d" % sim.poll(),
                "present" if os.path.exists(simsock) else "absent",
                " ".join(open(state + ".log").read().split())[-300:]))
        truth = [json.loads(line) for line in open(state + "/ground-truth.jsonl")]
        rows, alarms = archive_rows(db)
        k2, why = prefix_len(rows, truth)
        if why:
            bad.append("after the clean pull: " + why)
        elif k2 != len(truth):
            bad.append("after the clean pull: %d of %d records archived" % (k2, len(truth)))
        if alarms[first_alarms:]:  # (alarms are append-only: the first pull's stay)
            bad.append("alarms raised by the clean pull: " + "; ".join(
                "%s at seq %d (+%d)" % a[:3] for a in alarms[first_alarms:]))
        info = pen_info(env, simsock, bad)
        if info["log_acked_seq"] != info["log_next_seq"]:
            bad.append("after the clean pull the pen holds unacknowledged records (acked %d, "
                       "next %d)" % (info["log_acked_seq"], info["log_next_seq"]))
        vrc, vout, verr = env.penlink("--archive", db, "--json", "verify")
        if vrc != 0 or '"state":"ok"' not in vout.replace(" ", "") or \
                '"records":%d' % len(truth) not in vout.replace(" ", ""):
            bad.append("verify after the clean pull (want state ok, %d records): exit %d: %s %s" % (
                len(truth), vrc, vout.strip()[:200], verr.strip()[-200:]))
        src = env.stop_sim(sim)
        if src != 0:  # it crashed, or a sanitizer found something
            bad.append("penlink-sim exited with status %d: %s" % (
                src, " ".join(open(state + ".log").read().split())[:240]))
        return not bad, rc, bad, proxy.log, proxy.applied
    finally:
        proxy.stop()
        if sim in env.sims:
            env.stop_sim(sim)
        shutil.rmtree(d, ignore_errors=True)


def label(log):
    """Names for each frame position of a clean session, with its pull round."""
    names = {}
    rnd = 0
    for d, i, bodyname, rid, inner in log:
        extra = ""
        if bodyname == "pull_log":
            rnd += 1
            extra = " from %d" % inner.get(1, 0)
        if bodyname == "log_chunk":
            extra = " %d..%d" % (inner.get(1, 0), inner.get(1, 0) + inner.get(2, 0) - 1)
        if bodyname in ("pull_log", "log_chunk", "log_end"):
            extra += " r%d" % rnd
        names[(d, i)] = bodyname + extra
    return names, rnd


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    env = Env(argv[0], argv[1], "--subset" in argv[2:])
    t0 = time.monotonic()
    try:
        return matrix(env, t0)
    finally:
        env.cleanup()


def matrix(env, t0):
    print("lossy-wire matrix: seed %d (replay: PENLINK_WIRE_SEED=%d), timeout %d ms, "
          "delay %d ms" % (env.seed, env.seed, env.timeout, env.delay), flush=True)
    subprocess.run([env.sim, "--state", env.template, "--serial", SERIAL, "--seed",
                    str(SIM_SEED), "--simulate-days", str(DAYS), "--start-time", str(START_TIME),
                    "--batch", str(BATCH)],
                   check=True, stdout=subprocess.DEVNULL)

    # the clean session: its frames are the positions
    ok, rc, bad, log, _ = run_case(env, "clean", None, None)
    names, rounds = label(log)
    print("clean session: %d pen frames, %d host frames, %d PullLog rounds" % (
        sum(1 for k in names if k[0] == "pen"), sum(1 for k in names if k[0] == "host"),
        rounds))
    if not ok or rc != 0:
        print("FAIL the clean pull through the wire: exit %d" % rc)
        for b in bad:
            print("     " + b)
        return 1
    if rounds < MIN_ROUNDS:
        print("FAIL the pull took %d PullLog rounds, the matrix needs %d" % (rounds, MIN_ROUNDS))
        return 1

    positions = sorted(names, key=lambda k: (k[0] != "pen", k[1]))
    if env.subset:  # the first chunk of rounds 1 and 2, the first PullLog
        firsts = {}
        for k in positions:
            kind, rnd = names[k].split()[0], names[k].split()[-1]
            firsts.setdefault((kind, rnd), k)
        keep = {firsts[("log_chunk", "r1")], firsts[("log_chunk", "r2")],
                firsts[("pull_log", "r1")]}
        positions = [k for k in positions if k in keep]
    cases = [(f, k) for k in positions for f in lossy_wire.FAULTS]
    if env.only:
        cases = [(f, k) for f, k in cases if env.only in "%s@%s:%d" % (f, k[0], k[1])]
    print("%d cases: %d faults x %d positions%s" % (
        len(cases), len(lossy_wire.FAULTS), len(positions), " (subset)" if env.subset else ""),
        flush=True)

    results = {}
    failures = []

    def one(case):
        f, k = case
        name = "%s@%s:%d" % (f, k[0], k[1])
        # the pull's summary as JSON or as text, like a checkerboard over the table
        json_mode = (lossy_wire.FAULTS.index(f) + k[1]) % 2 == 0
        ok, rc, bad, log, applied = run_case(env, name, f, k, json_mode)
        # frames before the fault are those of the clean session, unless the host
        # timed out early (a loaded machine): then the fault hit another frame
        hit = [e[2] for e in log if (e[0], e[1]) == k]
        note = "" if hit == [names[k].split()[0]] else \
            "; note: frame %s:%d was %s in this run" % (k[0], k[1], hit[0] if hit else "never sent")
        with env.lock:
            results[(f, k)] = "ok" if ok else "F%d" % rc
            print("%s %-32s %-28s exit %d, %s%s" % ("ok  " if ok else "FAIL", name, names[k], rc,
                                                     "json" if json_mode else "text", note),
                  flush=True)
            if not ok:
                failures.append((name, names[k], rc, applied, bad))
                for b in bad:
                    print("       " + b)

    with ThreadPoolExecutor(env.jobs) as pool:
        for r in [pool.submit(one, c) for c in cases]:
            r.result()  # an exception in a case ends the test with its traceback
    order = {"%s@%s:%d" % (f, k[0], k[1]): i for i, (f, k) in enumerate(cases)}
    failures.sort(key=lambda x: order[x[0]])

    # the table: positions x faults
    short = {"flip_payload": "flip_p", "flip_header": "flip_h", "drop": "drop",
             "duplicate": "dup", "swap": "swap", "delay": "delay", "foreign_id": "foreign",
             "truncate_close": "trunc"}
    print()
    print("%-30s " % "position" + " ".join("%-7s" % short[f] for f in lossy_wire.FAULTS))
    for k in positions:
        cells = [results.get((f, k), "-") for f in lossy_wire.FAULTS]
        if all(c == "-" for c in cells):
            continue
        print("%-30s " % ("%s %2d %s" % (k[0], k[1], names[k])) +
              " ".join("%-7s" % c for c in cells))
    print("ok: the invariant held; Fn: it did not (n: the faulted pull's exit status).\n"
          "The pull's summary is read as JSON where the fault's column number plus the frame\n"
          "index is even (counting from 0), as text elsewhere.")
    passed = sum(1 for v in results.values() if v == "ok")
    print("%d cases (%d faults x %d positions%s): %d passed, %d failed; seed %d; %.0f s" % (
        len(results), len(lossy_wire.FAULTS), len(positions),
        ", only those matching " + env.only if env.only else "", passed,
        len(results) - passed, env.seed, time.monotonic() - t0))
    if failures:
        print("\nfailures (replay one: PENLINK_WIRE_SEED=%d PENLINK_WIRE_ONLY=NAME):" % env.seed)
        for name, where, rc, applied, bad in failures:
            print("  %s (%s): exit %d; %s" % (name, where, rc, applied))
            for b in bad:
                print("      " + b)
    return 0 if not failures and results else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
