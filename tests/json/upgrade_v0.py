#!/usr/bin/env python3
"""JSON lines of a penlink before schema 1 (no "schema" field), made into
schema 1, as docs/json.md says the forms changed: "pen" is "serial", every
point in time given only as an ISO 8601 string gains its *_ms twin, and each
object carries "schema": 1. The committed audits of old archives
(tests/fixtures/*-audit.json, made by an earlier penlink) are compared
through it, so they stay as that penlink wrote them.

  upgrade_v0.py same OLD NEW [SKIP_TYPE...]
      exit 0 when OLD, upgraded, equals NEW line by line (as JSON values),
      lines whose "type" is one of SKIP_TYPE left out of both
  upgrade_v0.py upgrade OLD      the upgraded lines on stdout
"""
import datetime
import json
import sys

# ISO string field -> its *_ms twin, where schema 1 added one
TWINS = {
    "time": "time_ms",
    "start": "start_ms",
    "end": "end_ms",
    "at": "at_ms",
    "raised": "raised_ms",
    "raised_last": "raised_last_ms",
    "period_start": "period_start_ms",
    "verified_at": "verified_at_ms",
    "since": "since_ms",
    "until": "until_ms",
}
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def ms(iso):
    if iso is None:
        return None
    t = datetime.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (t - EPOCH) // datetime.timedelta(milliseconds=1)


def upgrade(v, top=True):
    if isinstance(v, list):
        return [upgrade(x, False) for x in v]
    if not isinstance(v, dict):
        return v
    out = {}
    for k, x in v.items():
        out["serial" if k == "pen" else k] = upgrade(x, False)
    for k, twin in TWINS.items():
        if k in out and twin not in out and (out[k] is None or isinstance(out[k], str)):
            if k == "verified_at" and out[k] is None:
                continue
            out[twin] = ms(out[k])
    if top:
        out["schema"] = 1
    return out


def lines(path, skip=()):
    rows = [json.loads(l) for l in open(path) if l.strip()]
    return [r for r in rows if r.get("type") not in skip]


def main(argv):
    if len(argv) >= 3 and argv[1] == "same":
        old = [upgrade(r) for r in lines(argv[2], argv[4:])]
        new = lines(argv[3], argv[4:])
        if len(old) != len(new):
            print("%d lines, want %d" % (len(new), len(old)))
            return 1
        for i, (a, b) in enumerate(zip(old, new)):
            if a != b:
                print("line %d differs:\n  want %s\n  got  %s" % (i + 1, json.dumps(a), json.dumps(b)))
                return 1
        return 0
    if len(argv) == 3 and argv[1] == "upgrade":
        for r in lines(argv[2]):
            print(json.dumps(upgrade(r), separators=(",", ":")))
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
