#!/usr/bin/env python3
"""Checked one-shot TCP transfer for peer's namespace tests.

  tcpxfer.py recv ADDR PORT READYFILE   listen on ADDR:PORT, touch READYFILE once listening,
                                        accept one connection, hash everything up to EOF,
                                        send "<bytes> <sha256>\\n" back, print the same line.
  tcpxfer.py send ADDR PORT FILE [RATE] connect, stream FILE while hashing it, half-close,
                                        read the receiver's line, print "<bytes> <sha256>";
                                        exit 1 if the receiver saw something else. RATE
                                        (bytes per second) paces the socket (the kernel's
                                        SO_MAX_PACING_RATE), so a transfer lasts long enough
                                        without a qdisc that would delay or drop other traffic.

Both ends hash independently, so a corrupted, truncated or duplicated byte anywhere in the
tunnel fails the transfer. Standard library only.
"""

import hashlib
import socket
import sys

TIMEOUT = 30  # seconds without progress before giving up
CHUNK = 256 * 1024
SO_MAX_PACING_RATE = getattr(socket, "SO_MAX_PACING_RATE", 47)  # Linux


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def recv(addr, port, ready):
    srv = socket.socket(family(addr), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(1)
    srv.settimeout(TIMEOUT)
    open(ready, "w").close()
    conn, _ = srv.accept()
    conn.settimeout(TIMEOUT)
    h = hashlib.sha256()
    n = 0
    while True:
        b = conn.recv(CHUNK)
        if not b:
            break
        h.update(b)
        n += len(b)
    line = "%d %s" % (n, h.hexdigest())
    conn.sendall((line + "\n").encode())
    conn.close()
    print(line)
    return 0


def send(addr, port, path, rate=0):
    conn = socket.create_connection((addr, port), timeout=TIMEOUT)
    if rate > 0:
        conn.setsockopt(socket.SOL_SOCKET, SO_MAX_PACING_RATE, rate)
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
            n += len(b)
            conn.sendall(b)
    conn.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        b = conn.recv(4096)
        if not b:
            break
        reply += b
    conn.close()
    line = "%d %s" % (n, h.hexdigest())
    print(line)
    theirs = reply.decode(errors="replace").strip()
    if theirs != line:
        print("receiver saw: %r" % theirs, file=sys.stderr)
        return 1
    return 0


def main(argv):
    if argv[1:2] == ["send"] and len(argv) == 6:
        rate = int(argv[5])
    elif len(argv) != 5 or argv[1] not in ("recv", "send"):
        print(__doc__, file=sys.stderr)
        return 2
    else:
        rate = 0
    mode, addr, port, arg = argv[1], argv[2], int(argv[3]), argv[4]
    try:
        return recv(addr, port, arg) if mode == "recv" else send(addr, port, arg, rate)
    except OSError as e:
        print("%s %s:%d: %s" % (mode, addr, port, e), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
