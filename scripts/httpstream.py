#!/usr/bin/env python3
"""Endless HTTP download for scripts/bench.sh (standard library only).

  httpstream.py ADDR PORT   listen on ADDR:PORT; to every request (any path) answer
                            "HTTP/1.0 200 OK" with no length and stream bytes until the
                            client hangs up (curl --max-time ends the download)

Each connection gets a thread of its own; the payload is one pseudo-random 1 MiB block sent
again and again, so the sender costs almost no CPU and nothing along the way can compress it.
"""

import os
import socket
import sys
import threading

BLOCK = memoryview(os.urandom(1 << 20))


def serve(conn):
    with conn:
        try:
            conn.settimeout(30)
            req = b""
            while b"\r\n\r\n" not in req and len(req) < 65536:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                req += chunk
            conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n")
            while True:
                conn.sendall(BLOCK)
        except OSError:
            pass  # the client hung up: the end of every download


def main(argv):
    if len(argv) != 3:
        sys.exit(f"usage: {argv[0]} ADDR PORT")
    addr, port = argv[1], int(argv[2])
    srv = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(8)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main(sys.argv)
