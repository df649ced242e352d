#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal (stdin, stdout and stderr), waits for
PROMPT in what it prints, then types ANSWER (\\x03 is Ctrl-C: the terminal
sends SIGINT) and prints everything the terminal showed, then "exit N".

Usage: pty_answer.py PROMPT ANSWER -- COMMAND [ARGS...]
"""
import os
import pty
import sys


def main():
    prompt = sys.argv[1].encode()
    answer = sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
    cmd = sys.argv[sys.argv.index("--") + 1:]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(cmd[0], cmd)
    out = b""
    asked = False
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:  # the command ended and the terminal closed
            data = b""
        if not data:
            break
        out += data
        if not asked and prompt in out:
            os.write(fd, answer)
            asked = True
    _, st = os.waitpid(pid, 0)
    sys.stdout.write(out.decode("utf-8", "replace").replace("\r\n", "\n"))
    print("exit", os.waitstatus_to_exitcode(st))


main()
