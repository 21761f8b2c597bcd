#!/usr/bin/env python3
"""notify-listen.py: stands in for systemd's NOTIFY_SOCKET in scripts/package-test.sh.

    python3 notify-listen.py SOCKET LOG NETNS IFACE

Binds a unix datagram socket at SOCKET and appends one line per notification to LOG:
"MSG <lines joined by |>". At each READY=1 it runs, before reading the next message,
`ip -n NETNS addr show dev IFACE` and `ip -n NETNS [-6] route show dev IFACE` and appends
their output as "ADDR ..." and "ROUTE ..." lines: the state of the node at the moment
it said it was ready. Runs until killed.
"""
import os
import socket
import subprocess
import sys


def main():
    path, log, ns, iface = sys.argv[1:5]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    os.chmod(path, 0o600)
    with open(log, "a", buffering=1) as out:
        out.write("LISTENING\n")
        while True:
            msg = s.recv(4096).decode(errors="replace")
            lines = [l for l in msg.split("\n") if l]
            out.write("MSG " + "|".join(lines) + "\n")
            if "READY=1" in lines:
                for tag, args in (("ADDR", ["addr", "show", "dev", iface]),
                                  ("ROUTE", ["route", "show", "dev", iface]),
                                  ("ROUTE", ["-6", "route", "show", "dev", iface])):
                    r = subprocess.run(["ip", "-n", ns] + args, capture_output=True, text=True)
                    for l in (r.stdout + r.stderr).splitlines():
                        out.write(tag + " " + l.strip() + "\n")
                out.write("END\n")


if __name__ == "__main__":
    main()
