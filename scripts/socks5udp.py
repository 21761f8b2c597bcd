#!/usr/bin/env python3
"""SOCKS5 UDP ASSOCIATE (RFC 1928) for scripts/netstack-test.sh (standard library only).

  socks5udp.py echo ADDR PORT             a UDP echo server on ADDR:PORT (until killed)
  socks5udp.py ask PROXY DSTADDR PORT N   through the SOCKS5 proxy PROXY (HOST:PORT, no
                                          authentication), UDP ASSOCIATE, then send N datagrams
                                          of random bytes (1 to 1200) to DSTADDR:PORT and wait for
                                          each one's echo; every reply's SOCKS header must name
                                          DSTADDR:PORT. Prints "N of N echoed"; exit 1 otherwise.

A datagram may be lost (the first waits for a handshake), so each is sent up to 5 times,
1 s apart, before it counts as lost.
"""

import ipaddress
import os
import random
import socket
import struct
import sys

TRIES = 5


def echo(addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


def recv_exact(c, n):
    b = b""
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise SystemExit("proxy closed the control connection")
        b += chunk
    return b


def read_addr(c):
    atyp = recv_exact(c, 1)[0]
    if atyp == 1:
        host = str(ipaddress.IPv4Address(recv_exact(c, 4)))
    elif atyp == 4:
        host = str(ipaddress.IPv6Address(recv_exact(c, 16)))
    elif atyp == 3:
        host = recv_exact(c, recv_exact(c, 1)[0]).decode()
    else:
        raise SystemExit(f"reply with address type {atyp}")
    return host, struct.unpack("!H", recv_exact(c, 2))[0]


def pack_addr(addr, port):
    ip = ipaddress.ip_address(addr)
    return bytes([1 if ip.version == 4 else 4]) + ip.packed + struct.pack("!H", port)


def ask(proxy, dst, port, n):
    phost, pport = proxy.rsplit(":", 1)
    c = socket.create_connection((phost, int(pport)), timeout=10)
    c.sendall(b"\x05\x01\x00")
    if recv_exact(c, 2) != b"\x05\x00":
        raise SystemExit("proxy refused no-authentication")
    # The client's address is not known in advance: all zeros (RFC 1928, section 6).
    c.sendall(b"\x05\x03\x00" + pack_addr("0.0.0.0", 0))
    ver, rep, _ = recv_exact(c, 3)
    if ver != 5 or rep != 0:
        raise SystemExit(f"UDP ASSOCIATE refused: reply {rep}")
    rhost, rport = read_addr(c)
    if ipaddress.ip_address(rhost).is_unspecified:
        rhost = phost  # "the same address as the control connection"
    print(f"relay at {rhost}:{rport}")
    u = socket.socket(socket.AF_INET6 if ":" in rhost else socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(1)
    u.connect((rhost, rport))
    head = b"\x00\x00\x00" + pack_addr(dst, port)
    want_from = (str(ipaddress.ip_address(dst)), port)
    ok = 0
    for i in range(n):
        payload = os.urandom(random.randint(1, 1200))
        for _ in range(TRIES):
            u.send(head + payload)
            try:
                while True:
                    reply = u.recv(65535)
                    if reply[2] != 0:
                        raise SystemExit("fragmented reply")
                    atyp = reply[3]
                    alen = 4 if atyp == 1 else 16
                    src = (str(ipaddress.ip_address(reply[4:4 + alen])),
                           struct.unpack("!H", reply[4 + alen:6 + alen])[0])
                    if src != want_from:
                        raise SystemExit(f"reply from {src}, not {want_from}")
                    if reply[6 + alen:] == payload:
                        break
            except socket.timeout:
                continue
            ok += 1
            break
    print(f"{ok} of {n} echoed")
    c.close()
    return ok == n


def main(argv):
    if len(argv) == 4 and argv[1] == "echo":
        echo(argv[2], int(argv[3]))
    elif len(argv) == 6 and argv[1] == "ask":
        sys.exit(0 if ask(argv[2], argv[3], int(argv[4]), int(argv[5])) else 1)
    else:
        sys.exit(f"usage: {argv[0]} echo ADDR PORT | ask PROXY DSTADDR PORT N")


if __name__ == "__main__":
    main(sys.argv)
