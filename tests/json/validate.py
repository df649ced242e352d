#!/usr/bin/env python3
"""Checks what one penlink --json run printed against schema 1
(tests/json/penlink.schema.json, docs/json.md).

  validate.py SCHEMA DEF STDOUT STDERR [--may-be-empty]

Every line of STDOUT must be one JSON object valid against $defs/DEF (and
there must be one, unless --may-be-empty); every line of STDERR must be
one JSON object valid against $defs/stderr (with --json nothing else goes
there). Beyond what JSON Schema says, every point in time given as an ISO
8601 string (a key whose value is one) has its *_ms twin beside it, equal
to it. Prints each failure; exit 1 when there was one.
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


def check(validator, path, what, bad):
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
        for e in validator.iter_errors(v):
            bad.append("%s: %s at %s: %.300s" % (where, e.message[:300],
                                                 "/".join(map(str, e.absolute_path)), line))
        twins(v, where, bad)
    return n


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
    n = check(validator(argv[2]), argv[3], "stdout", bad)
    if n == 0 and "--may-be-empty" not in argv[5:]:
        bad.append("stdout: no JSON line at all")
    check(validator("stderr"), argv[4], "stderr", bad)
    for b in bad[:20]:
        print("    " + b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
