#!/usr/bin/env python3
"""A network between penlink and its PostgreSQL server that can be cut
without either side being told: forwards TCP connections on 127.0.0.1 to the
server's Unix socket until SIGUSR1, after which it forwards nothing more in
either direction and closes nothing (no FIN, no RST): what a cable pulled out
of a switch, or a VPN that died, looks like to both ends. Connections made
after the cut are accepted and left unanswered.

Usage: blackhole_proxy.py SERVER_SOCKET PORT_FILE
Listens on a free port of 127.0.0.1, written to PORT_FILE once listening.
"""
import os
import selectors
import signal
import socket
import sys

cut = False


def on_cut(signum, frame):
    global cut
    cut = True


def main():
    server, port_file = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGUSR1, on_cut)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % listener.getsockname()[1])
    os.rename(tmp, port_file)
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, None)
    held = []  # sockets kept open, unanswered, after the cut
    while True:
        try:
            events = sel.select(timeout=0.2)
        except InterruptedError:
            continue
        if cut:
            # stop reading anything: both ends' data stays in their buffers
            for key in list(sel.get_map().values()):
                if key.fileobj is not listener:
                    sel.unregister(key.fileobj)
                    held.append(key.fileobj)
        for key, _ in events:
            if key.fileobj is listener:
                client, _ = listener.accept()
                if cut:
                    held.append(client)
                    continue
                upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                upstream.connect(server)
                sel.register(client, selectors.EVENT_READ, upstream)
                sel.register(upstream, selectors.EVENT_READ, client)
                continue
            if cut or key.fileobj not in sel.get_map():
                continue
            src, dst = key.fileobj, key.data
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                for s in (src, dst):
                    if s in sel.get_map():
                        sel.unregister(s)
                    s.close()
                continue
            dst.sendall(data)


if __name__ == "__main__":
    main()
