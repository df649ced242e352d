#!/usr/bin/env python3
"""Checks that a penlink output is safe to show: no raw control byte, and
what it promises about its format.

    safe_output.py text FILE [SHOWN]   UTF-8, no C0 control but newline, no
                                       DEL, no C1 control, no invisible or
                                       direction-changing character; SHOWN
                                       (if given) appears in it
    safe_output.py json FILE [KEY [SKIP_TYPE...]]
                                       printable ASCII lines, each one JSON;
                                       every object (or array element) whose
                                       "type" is not a SKIP_TYPE has KEY as a
                                       string, and there is at least one
    safe_output.py csv FILE            text rules, and every row has as many
                                       fields as the header line of its
                                       section (sections apart by a blank line)

Exit status 0 when the file passes; otherwise one line says what failed.
"""
import csv
import io
import json
import sys

INVISIBLE = set(range(0x80, 0xA0)) | {0x061C, 0xFEFF} | set(range(0x200B, 0x2010)) \
    | set(range(0x2028, 0x202F)) | set(range(0x2060, 0x206A))


def fail(why):
    print("unsafe output: " + why)
    sys.exit(1)


def check_text(data):
    for i, b in enumerate(data):
        if (b < 0x20 and b != 0x0A) or b == 0x7F:
            fail("raw control byte 0x%02x at offset %d: %r" % (b, i, data[max(0, i - 20):i + 20]))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        fail("not UTF-8: %s" % e)
    for i, ch in enumerate(text):
        if ord(ch) in INVISIBLE:
            fail("raw U+%04X at character %d" % (ord(ch), i))
    return text


def main():
    mode, path = sys.argv[1], sys.argv[2]
    data = open(path, "rb").read()
    if mode == "text":
        text = check_text(data)
        if len(sys.argv) > 3 and sys.argv[3] not in text:
            fail("%r does not appear in %r" % (sys.argv[3], text[:300]))
    elif mode == "json":
        for i, b in enumerate(data):
            if b >= 0x80 or (b < 0x20 and b != 0x0A):
                fail("raw byte 0x%02x in JSON at offset %d" % (b, i))
        key = sys.argv[3] if len(sys.argv) > 3 else None
        skip = set(sys.argv[4:])
        text = data.decode("ascii")
        try:  # one document (perhaps indented), else JSON lines
            lines = [json.dumps(json.loads(text))]
        except ValueError:
            lines = [l for l in text.split("\n") if l]
        if not lines:
            fail("no JSON at all")
        keyed = 0
        for l in lines:
            try:
                v = json.loads(l)
            except ValueError as e:
                fail("not JSON (%s): %r" % (e, l[:200]))
            for o in v if isinstance(v, list) else [v]:
                if key and isinstance(o, dict) and o.get("type") not in skip:
                    if not isinstance(o.get(key), str):
                        fail("%r lacks the string %r" % (l[:200], key))
                    keyed += 1
        if key and not keyed:
            fail("no object with %r at all" % key)
    elif mode == "csv":
        text = check_text(data)
        for section in text.split("\n\n"):
            rows = list(csv.reader(io.StringIO(section)))
            rows = [r for r in rows if r]
            if not rows:
                continue
            for r in rows[1:]:
                if len(r) != len(rows[0]):
                    fail("a row of %d fields under a header of %d: %r" % (len(r), len(rows[0]), r))
    else:
        fail("unknown mode " + mode)


main()
