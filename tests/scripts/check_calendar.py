#!/usr/bin/env python3
"""Tests must not depend on the calendar.

penlink-sim's first simulated day is "today minus N days" unless --start-time
names it, so a test that simulates days without --start-time sees other ISO
weeks, other windows and other month ends each time it runs. This check reads
every test and fails, naming file and line, for each simulator start that
simulates days without naming its first day: a shell command line (backslash
continuations joined) that runs the simulator with --simulate-days, a C
statement whose argument string does, a C sim_opts given simulate_days
without start_ms, or a Python argument list (or string) that does.

Usage: check_calendar.py TESTS_DIR
"""
import ast
import os
import re
import sys

SIM_SH = re.compile(r'(\$SIM\b|\$\{SIM\}|start_sim\b|penlink-sim\b)')
DAYS = re.compile(r'--simulate-days[ =]')


def shell_lines(text):
    """Logical lines of a shell script: continuations joined, with the first line's number."""
    buf, first = "", None
    for no, line in enumerate(text.splitlines(), 1):
        if first is None:
            first = no
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        yield first, buf + line
        buf, first = "", None
    if first is not None:
        yield first, buf


def check_shell(path, text):
    bad = []
    for no, line in shell_lines(text):
        code = line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
        if SIM_SH.search(code) and DAYS.search(code) and "--start-time" not in code:
            bad.append((no, line.strip()))
    return bad


def check_c(path, text):
    bad = []
    # statements: an argument string split over several literals stays in one
    pos = 0
    for stmt in text.split(";"):
        start = pos + len(stmt) - len(stmt.lstrip())
        no = text.count("\n", 0, start) + 1
        pos += len(stmt) + 1
        literal = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', stmt))
        if re.search(r'--simulate-days \d', literal) and "--start-time" not in literal:
            bad.append((no, " ".join(stmt.split())[:120]))
    # sim_opts filled in C: simulate_days set, start_ms never
    if re.search(r'\.simulate_days\s*=\s*[1-9]', text) and not re.search(r'\.start_ms\s*=', text):
        bad.append((1, "sets sim_opts.simulate_days but never start_ms"))
    return bad


def check_python(path, text):
    bad = []
    for node in ast.walk(ast.parse(text, path)):
        if isinstance(node, (ast.List, ast.Tuple)):
            words = [e.value for e in node.elts
                     if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            if "--simulate-days" in words and "--start-time" not in words:
                bad.append((node.lineno, " ".join(words)[:120]))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if re.search(r'--simulate-days \d', node.value) and "--start-time" not in node.value:
                bad.append((node.lineno, node.value[:120]))
    return bad


def main():
    root = sys.argv[1]
    bad = []
    files = 0
    for d, _, names in os.walk(root):
        if os.sep + "fuzz" + os.sep in d + os.sep:
            continue
        for n in sorted(names):
            p = os.path.join(d, n)
            if n.endswith(".sh"):
                check = check_shell
            elif n.endswith(".c"):
                check = check_c
            elif n.endswith(".py") and n != os.path.basename(__file__):
                check = check_python
            else:
                continue
            files += 1
            with open(p, encoding="utf-8") as f:
                text = f.read()
            bad += [(p, no, what) for no, what in check(p, text)]
    for p, no, what in bad:
        print("%s:%d: simulates days without --start-time: %s" % (p, no, what))
    print("%d files read, %d simulator starts depend on the calendar" % (files, len(bad)))
    return 1 if bad or files == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
