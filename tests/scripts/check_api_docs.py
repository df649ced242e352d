#!/usr/bin/env python3
"""The public header is the library's manual (docs/api/Doxyfile.in).

Runs Doxygen over it with warnings as errors (every declaration, struct
member and macro documented, every reference resolved), then checks what
Doxygen cannot: the comment of every PENLINK_API function that returns int
(a penlink_status) has an @return naming the statuses it returns (#PENLINK_...).

    check_api_docs.py DOXYGEN DOXYFILE HEADER
"""
import re
import subprocess
import sys


def main():
    doxygen, doxyfile, header = sys.argv[1:4]
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
    for m in re.finditer(r"PENLINK_API\s+int\s+(penlink_\w+)\s*\(", text):
        end = text.rfind("*/", 0, m.start())
        start = text.rfind("/**", 0, end)
        between = text[end + 2:m.start()]
        doc = text[start:end] if start >= 0 and "PENLINK_API" not in between else ""
        returns = doc.split("@return", 1)
        if len(returns) < 2 or "#PENLINK_" not in returns[1]:
            undocumented.append(m.group(1))
    if undocumented:
        print("FAIL: these functions return a penlink_status but their comment has no "
              "@return naming the statuses (#PENLINK_OK, #PENLINK_ERR_...):")
        for name in undocumented:
            print("  " + name)
        status = 1
    if status == 0:
        n = len(re.findall(r"PENLINK_API\s+int\s+penlink_\w+\s*\(", text))
        print("ok: doxygen without warnings; %d status-returning functions name their statuses" % n)
    return status


if __name__ == "__main__":
    sys.exit(main())
