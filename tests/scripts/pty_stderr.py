#!/usr/bin/env python3
"""Runs a command with its stderr on a pseudo-terminal (as a technician's
terminal would be) and its stdout on a pipe, and says what the terminal
showed, as one JSON object on stdout:

  rc          the command's exit status
  redraws     how many times a line was redrawn (a carriage return)
  span_s      seconds from the first redraw to the last
  ticks       redraws of the progress bar on its own (not the redraw that
              follows a notice line), and tick_span_s from the first to the last
  lines       every state the line was drawn in, in order (escapes removed)
  stdout      what went to stdout

Usage: pty_stderr.py OUT.json -- COMMAND [ARGS...]
"""
import json
import os
import pty
import re
import select
import subprocess
import sys
import time
import tty


def main():
    out = sys.argv[1]
    cmd = sys.argv[sys.argv.index("--") + 1:]
    master, slave = pty.openpty()
    tty.setraw(slave)  # no newline translation: every carriage return is the command's
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave)
    os.close(slave)
    events = []  # (time, bytes)
    while True:
        r, _, _ = select.select([master], [], [], 0.05)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # the command ended and the terminal closed
                data = b""
            if not data:
                break
            events.append((time.monotonic(), data))
        elif p.poll() is not None:
            break
    stdout = p.stdout.read()
    rc = p.wait()
    os.close(master)
    # a redraw starts with a carriage return; note when each one arrived
    times, text = [], b""
    for t, data in events:
        times += [t] * data.count(b"\r")
        text += data
    states = [re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", s.decode("utf-8", "replace")).strip()
              for s in text.split(b"\r")]
    # the redraws of the timer: a bar drawn, not right after a notice line
    ticks = [times[k - 1] for k in range(1, len(states))
             if states[k].startswith("[") and not states[k - 1].startswith("penlink:")]
    json.dump({"rc": rc, "redraws": len(times),
               "span_s": (times[-1] - times[0]) if len(times) > 1 else 0.0,
               "ticks": len(ticks),
               "tick_span_s": (ticks[-1] - ticks[0]) if len(ticks) > 1 else 0.0,
               "lines": [s for s in states if s],
               "stdout": stdout.decode("utf-8", "replace")}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
