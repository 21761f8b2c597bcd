#!/bin/bash
# gen.sh regenerates the packet corpus in this directory from real traffic
# between two network namespaces joined by a veth pair. Run as root from the
# repository root: testdata/gen.sh
# Needs: iproute2, ethtool, tcpdump, tshark/editcap/text2pcap, ping, dig, python3.
# Every address used lives inside the two namespaces this script creates
# (10.99.0.0/24 and fd99::/64); nothing leaves the machine.
set -euo pipefail

out=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
A=capgen-a
B=capgen-b
pids=()

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$A"
ip netns add "$B"
ip -n "$A" link add va type veth peer name vb netns "$B"
for ns in "$A" "$B"; do
	ip -n "$ns" link set lo up
done
ip -n "$A" addr add 10.99.0.1/24 dev va
ip -n "$B" addr add 10.99.0.2/24 dev vb
ip -n "$A" addr add fd99::1/64 dev va nodad
ip -n "$B" addr add fd99::2/64 dev vb nodad
ip -n "$A" link set va up
ip -n "$B" link set vb up
# No segmentation offloads: every captured packet is a real on-the-wire packet
# (no 64 KiB GSO super-frames), as a TUN device without offload would see them.
ip netns exec "$A" ethtool -K va tso off gso off gro off >/dev/null
ip netns exec "$B" ethtool -K vb tso off gso off gro off >/dev/null
sleep 1

# capture FILE FILTER CMD...: capture on va in namespace A (Ethernet) while CMD runs.
capture() {
	local file=$1 filter=$2
	shift 2
	ip netns exec "$A" tcpdump -i va -U -s 0 -w "$work/$file" "$filter" 2>/dev/null &
	local tp=$!
	sleep 1
	"$@"
	sleep 1
	kill -INT "$tp"
	wait "$tp" || true
}

# toraw IN OUT: drop the 14-byte Ethernet header and relabel the file as raw IP
# (LINKTYPE_RAW, 101), the framing packets have on a TUN device; -L fixes the
# recorded original length to match.
toraw() {
	editcap -F pcap -C 14 -L -T rawip "$work/$1" "$out/$2"
}

# waitport PROTO PORT: wait until something in namespace B listens on PORT.
waitport() {
	for _ in $(seq 50); do
		if ip netns exec "$B" ss -Hln"$1" "sport = :$2" | grep -q .; then return 0; fi
		sleep 0.1
	done
	echo "nothing listens on $1 port $2" >&2
	return 1
}

flushneigh() {
	ip -n "$A" neigh flush dev va
	ip -n "$B" neigh flush dev vb
}

# --- ICMP echo over IPv4 ---------------------------------------------------------
flushneigh
capture icmp4.eth 'ip' ip netns exec "$A" ping -c 3 -i 0.2 10.99.0.2 >/dev/null
toraw icmp4.eth icmp4.pcap

# --- ICMPv6 echo with neighbour discovery ------------------------------------------
flushneigh
capture icmp6.eth 'ip6' ip netns exec "$A" ping -6 -c 3 -i 0.2 fd99::2 >/dev/null
toraw icmp6.eth icmp6_nd.pcap
# The same capture kept with its Ethernet framing, as pcapng, to test link types.
editcap -F pcapng "$work/icmp6.eth" "$out/icmp6_nd_ethernet.pcapng"

# --- TCP handshake, data both ways, FIN, over IPv4 and IPv6 ------------------------
cat >"$work/tcpserver.py" <<'EOF'
import socket, sys
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5201))
s.listen(1)
c, _ = s.accept()
got = 0
while True:
    b = c.recv(65536)
    if not b:
        break
    got += len(b)
c.sendall(b"received %d bytes\n" % got)
c.close()
EOF
cat >"$work/tcpclient.py" <<'EOF'
import socket, sys, time
fam = socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET
c = socket.socket(fam, socket.SOCK_STREAM)
c.connect((sys.argv[1], 5201))
c.sendall(b"x" * 3000)
c.shutdown(socket.SHUT_WR)
while c.recv(65536):
    pass
c.close()
EOF
tcp() {
	ip netns exec "$B" python3 "$work/tcpserver.py" "$1" &
	local sp=$!
	waitport t 5201
	ip netns exec "$A" python3 "$work/tcpclient.py" "$1"
	wait "$sp"
}
flushneigh
capture tcp4.eth 'tcp' tcp 10.99.0.2
toraw tcp4.eth tcp4.pcap
capture tcp6.eth 'tcp' tcp fd99::2
toraw tcp6.eth tcp6.pcap

# --- UDP: DNS queries answered by a tiny responder, and one to a closed port --------
cat >"$work/dns.py" <<'EOF'
import socket, select, struct
def answer(q, fam):
    # Echo the question, set QR|RD|RA, one answer pointing at the question name.
    qid, flags, qd = struct.unpack("!HHH", q[:6])
    end = 12
    while q[end] != 0:
        end += q[end] + 1
    qtype = struct.unpack("!H", q[end + 1:end + 3])[0]
    question = q[12:end + 5]
    if qtype == 28:
        rdata = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    else:
        qtype, rdata = 1, socket.inet_aton("192.0.2.7")
    hdr = struct.pack("!HHHHHH", qid, 0x8180, 1, 1, 0, 0)
    rr = struct.pack("!HHHIH", 0xC00C, qtype, 1, 300, len(rdata)) + rdata
    return hdr + question + rr
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s4.bind(("10.99.0.2", 53))
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.bind(("fd99::2", 53))
n = 0
while n < 2:
    r, _, _ = select.select([s4, s6], [], [], 10)
    if not r:
        break
    for s in r:
        q, addr = s.recvfrom(4096)
        s.sendto(answer(q, s.family), addr)
        n += 1
EOF
dns() {
	ip netns exec "$B" python3 "$work/dns.py" &
	local dp=$!
	waitport u 53
	ip netns exec "$A" dig +tries=1 +time=2 +noedns @10.99.0.2 www.example.test A >/dev/null
	ip netns exec "$A" dig +tries=1 +time=2 +noedns @fd99::2 www.example.test AAAA >/dev/null
	wait "$dp"
	# Nobody listens on 10.99.0.2:54 any more: the kernel answers port-unreachable.
	ip netns exec "$A" dig +tries=1 +time=1 +noedns -p 54 @10.99.0.2 closed.example.test A >/dev/null || true
}
capture udp_dns.eth 'udp or icmp' dns
toraw udp_dns.eth udp_dns.pcap

# --- IPv4 fragments -----------------------------------------------------------------
capture frag4.eth 'ip' ip netns exec "$A" ping -c 2 -i 0.2 -s 3000 10.99.0.2 >/dev/null
toraw frag4.eth frag4.pcap

# --- the same traffic through Linux "cooked" capture (SLL), tcpdump -i any ----------
ip netns exec "$A" tcpdump -i any -y LINUX_SLL -U -s 0 -w "$out/icmp4_sll.pcap" icmp 2>/dev/null &
tp=$!
sleep 1
ip netns exec "$A" ping -c 2 -i 0.2 10.99.0.2 >/dev/null
sleep 1
kill -INT "$tp"
wait "$tp" || true

# --- truncated packets --------------------------------------------------------------
# Snap length 60: headers complete, payload cut (the file records the real length).
editcap -F pcap -s 60 "$out/frag4.pcap" "$out/truncated_payload.pcap"
# Snap length 12: not even a complete IPv4 header.
editcap -F pcap -s 12 "$out/icmp4.pcap" "$out/truncated_header.pcap"

# --- garbage ------------------------------------------------------------------------
# Eight packets of random bytes (lengths 1..400) framed as raw IP by text2pcap ...
: >"$work/garbage.txt"
for len in 1 7 20 40 64 120 300 400; do
	head -c "$len" /dev/urandom | od -Ax -tx1 -v >>"$work/garbage.txt"
done
text2pcap -q -l 101 "$work/garbage.txt" "$out/garbage.pcap"
# ... and real packets with random byte errors injected by editcap.
editcap -F pcap -E 0.05 "$out/tcp4.pcap" "$out/garbage_biterrors.pcap"
# A file that is not a capture at all.
head -c 256 /dev/urandom >"$out/not_a_capture.bin"

echo "corpus written to $out"
