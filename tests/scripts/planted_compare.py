#!/usr/bin/env python3
"""The audit's findings against what the simulated pens planted.

Each penlink-sim state directory holds planted.jsonl (one line per finding
it planted: kind, pen, seq, ...) and ground-truth.jsonl (every record it
logged, for the times). From them this works out the findings an audit over
a window must report, and compares them with the audit's, read from its
JSON, CSV or table output: for every kind, the set of (pen, seq) must be
equal, and a reuse must name exactly the treatments that used its cartridge.
Kinds nobody planted must not be reported at all.

Usage: planted_compare.py FORMAT AUDIT_OUTPUT [--since MS] [--until MS]
                          [--expect KIND,...] STATE_DIR...
FORMAT: json, csv, table or html (the report document). --expect names kinds that must be planted (at
least one in the window), so that an empty comparison cannot pass.
Prints one line per kind; exit status 0 when everything matches.
"""
import argparse
import csv
import json
import re
import sys
import time

# kinds whose finding is (pen, seq) of one record, reported when its time is in the window
BY_RECORD = ("no_cartridge", "refused", "clock_backwards", "clock_jump", "config_refused",
             "overflow")
KINDS = BY_RECORD + ("out_of_limits", "reuse", "gap", "key_changed")
# planted gaps that go on from the one planted before them (the pen dropped more
# while a pull sealed its records): a host may see them as one gap or as two
GAP_GOES_ON = set()


def load(dirs):
    planted, times = [], {}
    for d in dirs:
        with open(d + "/ground-truth.jsonl") as f:
            truth = [json.loads(l) for l in f]
        serial = None
        with open(d + "/sim.state") as f:
            for l in f:
                k, _, v = l.strip().partition(" ")
                if k == "serial":
                    serial = v
        times[serial] = {r["seq"]: r["time_ms"] for r in truth}
        with open(d + "/planted.jsonl") as f:
            planted += [json.loads(l) for l in f]
    return planted, times


def expected(planted, times, since, until):
    def inside(pen, seq):
        t = times.get(pen, {}).get(seq)
        return t is not None and since <= t < until

    # an alarm is also placed by when a pull raised it: just now, in the test
    raised_inside = since <= time.time() * 1000 < until

    want = {k: {} for k in KINDS}
    carts = {}
    gap_end = {}
    for p in planted:
        if p["kind"] == "gap":
            if gap_end.get(p["pen"]) == p["seq"]:
                GAP_GOES_ON.add((p["pen"], p["seq"]))
            gap_end[p["pen"]] = p["seq"] + p["count"]
    for p in planted:
        k, pen, seq = p["kind"], p["pen"], p["seq"]
        if k in BY_RECORD or k == "out_of_limits":
            if inside(pen, seq):
                want[k][(pen, seq)] = None
        elif k == "reuse":
            c = carts.setdefault(p["cartridge"], set())
            c.add((p["first_pen"], p["first_seq"]))
            c.add((pen, seq))
        elif k == "gap":
            # placed by the first record after it, and by its raise
            if inside(pen, seq + p["count"]) or raised_inside:
                want[k][(pen, seq)] = None
        elif k == "key_changed":
            if raised_inside:  # it concerns no archived record: only its raise places it
                want[k][(pen, seq)] = None
    for cart, uses in carts.items():
        if any(inside(pen, seq) for pen, seq in uses):
            want["reuse"][min(uses)] = (cart, sorted(uses))
    return want


def reported_json(path):
    got = {}
    for l in open(path):
        f = json.loads(l)
        if f["type"] != "finding":
            continue
        ev = None
        if f["finding"] == "reuse":
            ev = (f["cartridge_serial"], sorted((t["serial"], t["seq"]) for t in f["treatments"]))
        got.setdefault(f["finding"], {})[(f["serial"], f["seq"])] = ev
    return got


def reported_csv(path):
    got = {}
    rows = list(csv.reader(open(path)))
    for row in rows:
        if len(row) < 12 or row[0] == "pen" or row[1] not in KINDS + ("missing", "limits_unknown",
                                                                       "no_records", "unverified",
                                                                       "conflict", "log_broken"):
            continue
        pen, kind, seq = row[0], row[1], int(row[3])
        ev = None
        if kind == "reuse":
            uses = [(m.group(1), int(m.group(2))) for m in re.finditer(r"(\S+):(\d+)@\S+", row[10])]
            ev = (row[5], sorted(uses))
        got.setdefault(kind, {})[(pen, seq)] = ev
    return got


def reported_table_lines(path):
    """The table's finding lines, with a reuse's treatment lines after it."""
    got, cur = {}, None
    for l in open(path):
        t = re.match(r"  (\S+) +  treatment +(\d+) ", l)
        if t and cur is not None:
            cur[1].append((t.group(1), int(t.group(2))))
            continue
        m = re.match(r"  (\S+) (\S+) +(\d+) +(?:\S+ \S+|-) +(\S*)", l)
        if not m or m.group(2) not in KINDS + ("missing", "limits_unknown", "no_records",
                                               "unverified", "conflict", "log_broken"):
            cur = None
            continue
        pen, kind, seq = m.group(1), m.group(2), int(m.group(3))
        if kind == "reuse":
            cur = [m.group(4), []]
            got.setdefault(kind, {})[(pen, seq)] = cur
        else:
            cur = None
            got.setdefault(kind, {})[(pen, seq)] = None
    for k, v in got.get("reuse", {}).items():
        got["reuse"][k] = (v[0], sorted(v[1]))
    return got


def reported_html(path):
    """The report document's finding rows (data-kind, data-pen, data-seq) and a reuse's
    evidence rows after it."""
    from html.parser import HTMLParser

    class P(HTMLParser):
        def __init__(self):
            super().__init__()
            self.got, self.cur = {}, None

        def handle_starttag(self, tag, attrs):
            a = dict(attrs)
            cls = a.get("class", "").split()
            if tag != "tr":
                return
            if "finding" in cls:
                key = (a["data-pen"], int(a["data-seq"]))
                if a["data-kind"] == "reuse":
                    self.cur = [None, []]
                    self.got.setdefault("reuse", {})[key] = self.cur
                else:
                    self.cur = None
                    self.got.setdefault(a["data-kind"], {})[key] = None
            elif "evidence" in cls and self.cur is not None:
                self.cur[1].append((a["data-pen"], int(a["data-seq"])))

    p = P()
    p.feed(open(path, encoding="utf-8").read())
    got = p.got
    # the cartridge is the JSON's; the document names it in the evidence text only
    for k, v in got.get("reuse", {}).items():
        got["reuse"][k] = (None, sorted(v[1]))
    return got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("format", choices=("json", "csv", "table", "html"))
    ap.add_argument("output")
    ap.add_argument("--since", type=float, default=float("-inf"))
    ap.add_argument("--until", type=float, default=float("inf"))
    ap.add_argument("--expect", default="")
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    planted, times = load(a.dirs)
    want = expected(planted, times, a.since, a.until)
    got = {"json": reported_json, "csv": reported_csv, "table": reported_table_lines,
           "html": reported_html}[a.format](a.output)
    if a.format == "html":  # compare a reuse by its treatments (the cartridge is in the text)
        want["reuse"] = {k: (None, v[1]) for k, v in want["reuse"].items()}
    ok = True
    for k in a.expect.split(",") if a.expect else []:
        if not want.get(k):
            ok = False
            print("   %s: expected to be planted in the window, but none is" % k)
    for k in sorted(set(want) | set(got)):
        w, g = want.get(k, {}), got.get(k, {})
        if k == "gap":  # one that goes on from the gap before may be reported with it
            w = {key: v for key, v in w.items() if key not in GAP_GOES_ON or key in g}
        if k not in want and g:
            ok = False
            print("   %s: %d reported, none planted: %s" % (k, len(g), sorted(g)[:5]))
        elif set(w) != set(g):
            ok = False
            print("   %s: %d reported, %d planted; missing %s; extra %s" % (
                k, len(g), len(w), sorted(set(w) - set(g))[:5], sorted(set(g) - set(w))[:5]))
        elif k == "reuse" and w != g:
            bad = [(key, w[key], g[key]) for key in w if w[key] != g[key]]
            ok = False
            print("   reuse: the treatments differ: %s" % bad[:3])
        elif w:
            print("   %s: %d planted, the same %d reported" % (k, len(w), len(g)))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
