#!/usr/bin/env python3
"""The public header is the library's manual (docs/api/Doxyfile.in).

Runs Doxygen over it with warnings as errors (every declaration, struct
member and macro documented, every reference resolved), then checks what
Doxygen cannot: the comment of every PENLINK_API function that returns int
(a penlink_status) has an @return naming the statuses it returns (#PENLINK_...),
and, given the library's sources, that it names every PENLINK_ERR_... its
definition returns itself or through the static helpers of its own file (a
status passed on from another public function or another file is not
followed: the comment says whose statuses those are).

    check_api_docs.py DOXYGEN DOXYFILE HEADER [SRC_DIR]
"""
import glob
import os
import re
import subprocess
import sys


# A status a function gives: not one it compares with (st == PENLINK_ERR_X),
# and not one only recorded as detail (a statement that starts penlink_fail()).
STATUS = re.compile(r"(?<![=!]=\s)(?<![=!]=)\b(PENLINK_ERR_\w+)")


def definitions(src):
    """name -> body of every function defined in @p src (Linux braces: a '{' line opens it)."""
    out = {}
    for m in re.finditer(r"^(?:static\s+)?(?:inline\s+)?[\w ]+?\**\s*\b(\w+)\s*\(", src, re.M):
        a = src.find("\n{\n", m.end())
        b = src.find("\n}\n", a)
        if a < 0 or b < 0 or ";" in src[m.end():a]:
            continue
        out[m.group(1)] = src[a:b]
    return out


def statuses(body):
    found = set()
    for line in body.splitlines():
        if line.lstrip().startswith("penlink_fail("):
            continue
        found.update(STATUS.findall(line))
    return found


def missing_statuses(src_dir, docs):
    """(function, file, statuses its @return leaves out) for each public function."""
    out = []
    for path in sorted(glob.glob(os.path.join(src_dir, "*.c"))):
        src = open(path, encoding="utf-8").read()
        defs = definitions(src)
        static = set(re.findall(r"^static\b[^\n;]*?\b(\w+)\s*\(", src, re.M))
        for name in defs:
            if name not in docs:
                continue
            used, seen, todo = set(), set(), [name]
            while todo:
                fn = todo.pop()
                if fn in seen:
                    continue
                seen.add(fn)
                used |= statuses(defs[fn])
                todo += [c for c in re.findall(r"\b(\w+)\s*\(", defs[fn])
                         if c in defs and c in static]
            returns = docs[name].split("@return", 1)
            named = set(re.findall(r"PENLINK_ERR_\w+", returns[1])) if len(returns) > 1 else set()
            if used - named:
                out.append((name, os.path.basename(path), sorted(used - named)))
    return out


def main():
    doxygen, doxyfile, header = sys.argv[1:4]
    src_dir = sys.argv[4] if len(sys.argv) > 4 else None
    status = 0
    run = subprocess.run([doxygen, doxyfile], capture_output=True, text=True)
    warnings = [line for line in (run.stdout + run.stderr).splitlines() if "warning" in line]
    if run.returncode != 0 or warnings:
        print("FAIL: doxygen %s reports (exit status %d):" % (doxyfile, run.returncode))
        for line in warnings or (run.stdout + run.stderr).splitlines():
            print("  " + line)
        status = 1

    text = open(header, encoding="utf-8").read()
    undocumented = []
    docs = {}
    for m in re.finditer(r"PENLINK_API\s+int\s+(penlink_\w+)\s*\(", text):
        end = text.rfind("*/", 0, m.start())
        start = text.rfind("/**", 0, end)
        between = text[end + 2:m.start()]
        doc = text[start:end] if start >= 0 and "PENLINK_API" not in between else ""
        docs[m.group(1)] = doc
        returns = doc.split("@return", 1)
        if len(returns) < 2 or "#PENLINK_" not in returns[1]:
            undocumented.append(m.group(1))
    if undocumented:
        print("FAIL: these functions return a penlink_status but their comment has no "
              "@return naming the statuses (#PENLINK_OK, #PENLINK_ERR_...):")
        for name in undocumented:
            print("  " + name)
        status = 1
    # sizes are named constants: no array of the header declared by a bare number
    bare = [line.strip() for line in text.splitlines()
            if re.search(r"\w\s*\[\s*[0-9]+\s*\]", line.split("/*")[0])]
    if bare:
        print("FAIL: arrays declared by a bare number, not a named PENLINK_..._SIZE:")
        for line in bare:
            print("  " + line)
        status = 1
    if src_dir:
        missing = missing_statuses(src_dir, docs)
        if missing:
            print("FAIL: these functions return statuses their @return does not name:")
            for name, path, names in missing:
                print("  %s (%s): %s" % (name, path, ", ".join(names)))
            status = 1
    if status == 0:
        n = len(re.findall(r"PENLINK_API\s+int\s+penlink_\w+\s*\(", text))
        print("ok: doxygen without warnings; %d status-returning functions name their statuses; "
              "no array sized by a bare number" % n)
    return status


if __name__ == "__main__":
    sys.exit(main())
