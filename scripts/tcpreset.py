#!/usr/bin/env python3
"""TCP connections that end with a reset, for scripts/netstack-test.sh (standard library only).

  tcpreset.py serve ADDR PORT     accept connections on ADDR:PORT (until killed); to each send
                                  1 MiB, then close with a reset (SO_LINGER 0)
  tcpreset.py client ADDR PORT    connect, read until 64 KiB came, the peer closed or 10 s
                                  passed, then close with a reset; print how much came (none is
                                  no error: a reset in between may discard what it had); exit 1
                                  only if the connection failed

A relay in between sees its connection to us fail with ECONNRESET instead of a clean EOF:
the error path that a normal download never takes.
"""

import socket
import struct
import sys

RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends RST


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve(addr, port):
    srv = socket.socket(family(addr), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(8)
    block = b"x" * (1 << 20)
    while True:
        conn, _ = srv.accept()
        try:
            conn.settimeout(10)
            conn.sendall(block)
        except OSError:
            pass
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
        conn.close()


def client(addr, port):
    c = socket.create_connection((addr, port), timeout=10)
    got = 0
    try:
        while got < 65536:
            b = c.recv(65536)
            if not b:
                break
            got += len(b)
    except OSError:
        pass
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
    c.close()
    print(f"read {got} bytes, then reset")
    return True


def main(argv):
    if len(argv) != 4 or argv[1] not in ("serve", "client"):
        sys.exit(f"usage: {argv[0]} serve|client ADDR PORT")
    if argv[1] == "serve":
        serve(argv[2], int(argv[3]))
    else:
        sys.exit(0 if client(argv[2], int(argv[3])) else 1)


if __name__ == "__main__":
    main(sys.argv)
