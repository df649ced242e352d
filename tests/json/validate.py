#!/usr/bin/env python3
"""Checks what one penlink --json run printed against schema 1
(tests/json/penlink.schema.json, docs/json.md).

  validate.py SCHEMA DEF STDOUT STDERR [--may-be-empty]
              [--progress | --work WORK | --no-progress]

Every line of STDOUT must be one JSON object valid against $defs/DEF (and
there must be one, unless --may-be-empty); every line of STDERR must be
one JSON object valid against $defs/stderr (with --json nothing else goes
there). Beyond what JSON Schema says, every point in time given as an ISO
8601 string (a key whose value is one) has its *_ms twin beside it, equal
to it.

--progress: STDERR carries one pull's progress events as docs/json.md says
(a command that shows a progress line on a terminal): the first when the
pen announced its totals (done false), the last and only one with done
true, ok and kept; counts and times never go back, the serial is the
pen's, and the last event's kept is the records STDOUT reports.
--work WORK: STDERR carries the progress events of the archive's work WORK
(push, verify, audit, export) as docs/json.md says, pen by pen: each pen's
events together, the first with count 0 and done false, the last and only
one with done true and total equal to its count; counts and times never go
back, count never above a total that is not 0; every pen STDOUT names has
its events, and where STDOUT counts a pen's records (verify's and push's
reports, export's records) the last event's count says the same.
--no-progress: STDERR carries no progress event (a command that shows no
progress on a terminal emits none with --json).

Prints each failure; exit 1 when there was one.
"""
import datetime
import json
import re
import sys

import jsonschema

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?(Z|[+-]\d\d:\d\d)$")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def twins(v, where, bad):
    """Every ISO time string of @v has an equal *_ms integer beside it."""
    if isinstance(v, list):
        for i, x in enumerate(v):
            twins(x, "%s[%d]" % (where, i), bad)
        return
    if not isinstance(v, dict):
        return
    for k, x in v.items():
        if isinstance(x, str) and ISO.match(x):
            ms = v.get(k + "_ms")
            t = datetime.datetime.fromisoformat(x.replace("Z", "+00:00"))
            want = (t - EPOCH) // datetime.timedelta(milliseconds=1)
            if ms != want:
                bad.append("%s.%s is %s: %s_ms must be %d, not %r" % (where, k, x, k, want, ms))
        twins(x, "%s.%s" % (where, k), bad)


def check(validator, path, what, bad, objects=None):
    n = 0
    for i, line in enumerate(open(path, encoding="utf-8", errors="replace"), 1):
        line = line.rstrip("\n")
        where = "%s line %d" % (what, i)
        try:
            v = json.loads(line)
        except ValueError:
            bad.append("%s is not JSON: %.200s" % (where, line))
            continue
        n += 1
        if objects is not None:
            objects.append(v)
        for e in validator.iter_errors(v):
            bad.append("%s: %s at %s: %.300s" % (where, e.message[:300],
                                                 "/".join(map(str, e.absolute_path)), line))
        twins(v, where, bad)
    return n


def progress_events(events, out, bad):
    """@events (one pull's progress events, in order) as docs/json.md says,
    ending with what @out (the command's stdout objects) reports."""
    if len(events) < 2:
        bad.append("stderr: %d progress events, not the first (done false) and the last "
                   "(done true) at least" % len(events))
        return
    if events[0].get("done") is not False:
        bad.append("stderr: the first progress event is not done false: %s" % events[0])
    ends = [i for i, e in enumerate(events) if e.get("done") is True]
    if ends != [len(events) - 1]:
        bad.append("stderr: the events with done true are %s of %d, not only the last"
                   % (ends, len(events)))
    for e in events:
        if e.get("work") != "pull" or e.get("count") != e.get("records") \
                or e.get("total") != e.get("records_total"):
            bad.append("stderr: a pull's progress event is not work pull with count records and "
                       "total records_total: %s" % e)
    for a, b in zip(events, events[1:]):
        for k in ("records", "bytes", "elapsed_s"):
            if isinstance(a.get(k), (int, float)) and isinstance(b.get(k), (int, float)) \
                    and b[k] < a[k]:
                bad.append("stderr: progress %s went back from %s to %s" % (k, a[k], b[k]))
    for e in events:
        for k, total in (("records", "records_total"), ("bytes", "bytes_total")):
            if isinstance(e.get(k), int) and isinstance(e.get(total), int) and e[k] > e[total]:
                bad.append("stderr: progress %s %d above %s %d" % (k, e[k], total, e[total]))
    last = events[-1]
    serials = {e.get("serial") for e in events}
    first = out[0] if out else {}
    if len(serials) != 1 or ("serial" in first and serials != {first["serial"]}):
        bad.append("stderr: progress serials %s, stdout's %r" % (serials, first.get("serial")))
    if "records" in first and last.get("kept") != first["records"]:
        bad.append("stderr: the last progress event kept %r, stdout says records %r"
                   % (last.get("kept"), first["records"]))
    if last.get("ok") is not first.get("ok", True):
        bad.append("stderr: the last progress event says ok %r, stdout %r"
                   % (last.get("ok"), first.get("ok", True)))


def stdout_counts(work, out):
    """{serial: records} as @out (the command's stdout objects) counts them
    for @work, and the pens whose work it reports (verify's, push's
    reports, the audit's treatments, export's records); counts only where
    they must equal the progress: a verify or push report whose log
    verified, export's records (one object per record)."""
    counts, named = {}, set()
    for o in out:
        if not isinstance(o, dict) or not isinstance(o.get("serial"), str):
            continue
        if work == "audit" and o.get("type") == "treatment":
            named.add(o["serial"])
        if work in ("verify", "push") and "state" in o or work == "export" and "seq" in o:
            named.add(o["serial"])
        if work == "verify" and o.get("state") in ("ok", "unsigned"):
            counts[o["serial"]] = o.get("records")
        elif work == "push" and o.get("state") == "ok":
            counts[o["serial"]] = o.get("records", 0) + o.get("records_held", 0)
        elif work == "export" and "seq" in o:
            counts[o["serial"]] = counts.get(o["serial"], 0) + 1
    return counts, named


def work_events(work, events, out, bad):
    """@events (the archive's work @work, pen by pen) as docs/json.md says,
    their counts as @out (stdout) reports them."""
    pens = []  # [serial, [events]] in order
    for e in events:
        if e.get("work") != work:
            bad.append("stderr: a progress event of work %r, not %r: %s" % (e.get("work"), work, e))
        if not pens or pens[-1][0] != e.get("serial") or pens[-1][1][-1].get("done") is True:
            pens.append([e.get("serial"), []])
        pens[-1][1].append(e)
    seen = [s for s, _ in pens]
    if len(set(seen)) != len(seen):
        bad.append("stderr: the progress of the pens %s is not pen by pen" % seen)
    if not pens:
        bad.append("stderr: no progress event of %s" % work)
    for serial, ev in pens:
        where = "stderr: pen %r" % serial
        if ev[0].get("done") is not False or ev[0].get("count") != 0:
            bad.append("%s: the first progress event is not count 0, done false: %s" % (where, ev[0]))
        if ev[-1].get("done") is not True:
            bad.append("%s: the last progress event is not done true: %s" % (where, ev[-1]))
        if ev[-1].get("total") != ev[-1].get("count"):
            bad.append("%s: the last progress event's total is not its count: %s" % (where, ev[-1]))
        for a, b in zip(ev, ev[1:]):
            for k in ("count", "elapsed_s"):
                if isinstance(a.get(k), (int, float)) and isinstance(b.get(k), (int, float)) \
                        and b[k] < a[k]:
                    bad.append("%s: progress %s went back from %s to %s" % (where, k, a[k], b[k]))
        for e in ev:
            if isinstance(e.get("total"), int) and e["total"] and \
                    isinstance(e.get("count"), int) and e["count"] > e["total"]:
                bad.append("%s: progress count %d above total %d" % (where, e["count"], e["total"]))
    counts, named = stdout_counts(work, out)
    last = {s: ev[-1] for s, ev in pens}
    for serial in sorted(named - set(last)):
        bad.append("stderr: no progress event of pen %r, which stdout names" % serial)
    for serial, n in sorted(counts.items()):
        if serial in last and last[serial].get("count") != n:
            bad.append("stderr: pen %r's last progress event counts %r, stdout %r"
                       % (serial, last[serial].get("count"), n))


def main(argv):
    if len(argv) < 5:
        print(__doc__)
        return 2
    schema = json.load(open(argv[1]))
    jsonschema.Draft202012Validator.check_schema(schema)
    if argv[2] not in schema["$defs"]:
        print("no $defs/%s in %s" % (argv[2], argv[1]))
        return 2

    def validator(name):
        return jsonschema.Draft202012Validator(dict(schema, **{"$ref": "#/$defs/" + name}))

    bad = []
    out, err = [], []
    n = check(validator(argv[2]), argv[3], "stdout", bad, out)
    if n == 0 and "--may-be-empty" not in argv[5:]:
        bad.append("stdout: no JSON line at all")
    check(validator("stderr"), argv[4], "stderr", bad, err)
    events = [e for e in err if isinstance(e, dict) and e.get("event") == "progress"]
    opts = argv[5:]
    if "--progress" in opts:
        progress_events(events, out, bad)
    elif "--work" in opts and opts.index("--work") + 1 < len(opts):
        work_events(opts[opts.index("--work") + 1], events, out, bad)
    elif "--no-progress" in argv[5:] and events:
        bad.append("stderr: %d progress events from a command that shows no progress"
                   % len(events))
    for b in bad[:20]:
        print("    " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
