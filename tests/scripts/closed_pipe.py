#!/usr/bin/env python3
"""Runs a command whose standard output is a pipe nobody reads any more (its
read end closed before the command starts, as after `| head -c1` has
exited), standard error to ERR-FILE, and exits with the command's exit
status: 128 + N when a signal N killed it (as a shell says).
Usage: closed_pipe.py ERR-FILE CMD [ARG...]"""
import os
import subprocess
import sys

r, w = os.pipe()
os.close(r)
with open(sys.argv[1], "wb") as err:
    # restore_signals (the default): SIGPIPE as a shell leaves it, not ignored
    p = subprocess.run(sys.argv[2:], stdout=w, stderr=err, check=False)
os.close(w)
sys.exit(128 - p.returncode if p.returncode < 0 else p.returncode)
