#!/usr/bin/env bash
# nat-test.sh: relays and NAT traversal (issue 14), in network namespaces.
#
#   bash scripts/nat-test.sh [--bin PATH] [-v]
#
#                 "internet": br0 in namespace inet, 203.0.113.0/24
#      ┌──────────────────────────┼─────────────────────────────┐
#   r 203.0.113.10           n1 wan0 203.0.113.1            n2 wan0 203.0.113.2
#   (relay: true, the only     │ NAT                          │ NAT (phase 2: symmetric)
#    endpoint of the mesh)   n1 lan0 192.168.1.1            n2 lan0 192.168.2.1
#                              │ br0 in namespace lan1        │
#                  a 192.168.1.2    c 192.168.1.3           b 192.168.2.2
#
# One mesh file: r has endpoint 203.0.113.10:51820 and relay: true; a, b and c have no
# endpoint (each listens on 51820), so they are reached through r. Tunnel addresses
# 10.10.0.N/24, fd10::N/64 (a 1, b 2, c 3, r 10). n1 and n2 are NAT routers: they forward,
# masquerade what leaves their LAN by wan0 (nftables, postrouting), and drop whatever comes
# in by wan0 that conntrack does not know as established or related, forwarded or for the
# router itself (endpoint-dependent filtering). Plain masquerade keeps the source port when
# it is free (the same public port for every destination); phase 2's `masquerade random`
# picks a port per destination (a symmetric NAT). No namespace has a default route out of
# the topology; the root namespace is not touched.
# The topology is checked with plain tools first: a, b and c ping r; a pings c over the
# LAN; datagrams from a to two ports of r come from 203.0.113.1 with one source port (b's
# from 203.0.113.2 likewise); n2 drops unsolicited inbound (r, given a route to n2's LAN,
# cannot ping b, nor reach n2 itself, and n2's drop counters say so). Then, phase 1:
#   1. r is started, then a, b and c at once (time zero): a pings b's 10.10.0.2 within 5 s
#      (one ping at a time, 1 s wait each); r's status counts 3 registered members.
#   2. with a pinging b and c (every 0.2 s) from then on, within 15 s of time zero a's
#      status gives b's path as "direct 203.0.113.2:PORT" (n2's public address) and b's
#      gives a's as "direct 203.0.113.1:PORT". Then a burst of 50 pings of 500 bytes, 20 ms
#      apart, from a to b all get replies; r's relay counter "forwarded" does not grow
#      across it; and a capture of r's eth0 during it holds no UDP datagram over 400 bytes
#      to or from 203.0.113.1 or 203.0.113.2 (a relayed echo would be one; hellos are
#      smaller).
#   3. a capture of r's TUN from r's start to its end (check 5) holds no packet to or from
#      a's, b's or c's tunnel addresses: r relays datagrams, it never sees inner packets.
#   4. a pings c's 10.10.0.3 within 5 s, and within 15 s of its first ping a's path to c is
#      "direct 192.168.1.3:PORT" (the LAN address, not n1's) and c's to a is
#      "direct 192.168.1.2:PORT".
#   5. r's node gets SIGKILL: for 15 s a pings b and b pings a (75 each, every 0.2 s), each
#      getting at least 90% of the replies, and both paths are still direct afterwards.
# Phase 2: everything is stopped and the namespaces made again, n2 now with `masquerade
# random` (checked: b's datagrams to two ports of r leave n2 from two source ports). r is
# started, then a and b (time zero):
#   6. a pings b within 5 s; with a pinging b every 0.2 s, a's path to b and b's to a are
#      "via r" at every look (every 0.5 s) up to 15 s after time zero and at its end;
#      5 pings then all get replies; and a checked 4 MiB TCP transfer a -> b over the mesh
#      (scripts/tcpxfer.py, SHA-256 at both ends) completes within 30 s, during which r's
#      "forwarded" grows by at least the transfer's size over the tunnel MTU.
# Timers of the design behind these bounds: hellos to the relays at start and every 20 s;
# an introduction asked while traffic flows, then 5 probing rounds 200 ms apart; a direct
# path that stops answering falls back to the relay after about 10 s.
# Needs root; skips without it (fails if CI=true). Bounded to 150 s; a run takes about 45 s
# after the build. Prints what it measured (the times are seconds after time zero).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 150 "$@"
source "$PT_LIB_DIR/topology.sh"

pt_peer_args "$@"
require_cmds ip nft python3 ping sha256sum timeout dumpcap tshark awk ss
pt_use_peer
log "testing $BIN"

# What is asked, defined here once.
MESH_HOSTS=(r a b c)
declare -gA MESH_N=([r]=10 [a]=1 [b]=2 [c]=3)
# The nodes' interfaces are pN in their own namespaces; no wg(8) socket in the shared
# /var/run/wireguard.
declare -gA MESH_ARGS=([r]="-wg-socket none" [a]="-wg-socket none" [b]="-wg-socket none" [c]="-wg-socket none")
MTU=1420
R_WAN=203.0.113.10 N1_WAN=203.0.113.1 N2_WAN=203.0.113.2 # the internet segment, /24
LAN1=192.168.1 LAN2=192.168.2                           # n1's and n2's LANs, /24, router .1
declare -gA UL=([a]=$LAN1.2 [c]=$LAN1.3 [b]=$LAN2.2)    # the hosts behind them
FIRST_PING_SECS=5  # check 1 and 6: the first reply through the relay
DIRECT_SECS=15     # checks 2 and 4: the direct path, from time zero (or the first ping)
BURST=50 BURST_GAP=0.02 BURST_SIZE=500 BIG=400 # check 2's burst; a relayed echo is > BIG
NORELAY_PINGS=75 NORELAY_PCT=90                 # check 5: 15 s of pings every 0.2 s
XFER_MIB=4 XFER_SECS=30 XFER_PORT=5201          # check 6's transfer
PROBE_PORTS=(9001 9002)                         # r's UDP ports for the NAT checks

# ---- helpers ----

# by DEADLINE CMD...: polls CMD (quietly) every 100 ms until it succeeds or the clock passes
# DEADLINE (an ${EPOCHREALTIME/./} value); returns 1 then.
by() {
	local deadline=$1
	shift
	until "$@" >/dev/null 2>&1; do
		((${EPOCHREALTIME/./} < deadline)) || return 1
		sleep 0.1
	done
}

# after T0 SECONDS: the ${EPOCHREALTIME/./} value SECONDS after T0.
after() { echo $(($1 + $2 * 1000000)); }

# secs_since T0: seconds since T0, one decimal.
secs_since() { awk -v ms="$(pt_ms_since "$1")" 'BEGIN {printf "%.1f", ms / 1000}'; }

# status_field HOST EXPR: a field of HOST's `peer status -json`, picked by the Python
# expression EXPR over the document d (None prints as nothing).
status_field() {
	local js
	js=$(mesh_status "$1" -json) || return 1
	python3 -c '
import json, sys
d = json.loads(sys.argv[1])
peer = lambda name: next((p for p in d.get("peers") or [] if p.get("name") == name), {})
v = eval(sys.argv[2])
print("" if v is None else v)' "$js" "$2"
}

# path_of HOST PEER: the path HOST's status gives for PEER ("" when none).
path_of() { status_field "$1" "peer('$2').get('path')"; }

# path_has HOST PEER PREFIX: HOST's path to PEER begins with PREFIX.
path_has() {
	local p
	p=$(path_of "$1" "$2") || return 1
	[[ $p == "$3"* ]]
}

# relay_count FIELD: a counter of r's relay status ("" when r reports no relay).
relay_count() { status_field r "(d.get('relay') or {}).get('$1')"; }

# await_path T0 SECONDS HOST PEER PREFIX: HOST's path to PEER begins with PREFIX before
# SECONDS after T0; says when, or what the path was at the deadline.
await_path() {
	local t0=$1 secs=$2 h=$3 o=$4 want=$5
	if by "$(after "$t0" "$secs")" path_has "$h" "$o" "$want"; then
		echo "$h's path to $o: \"$(path_of "$h" "$o")\" $(secs_since "$t0") s after time zero"
		MEASURED[path-$h-$o$MESH_LOG_SUFFIX]=$(secs_since "$t0")
		return 0
	fi
	echo "$h's path to $o after ${secs} s: \"$(path_of "$h" "$o")\", not \"$want...\""
	mesh_status "$h"
	return 1
}

# await_first_ping T0 SECONDS FROM TO: FROM pings TO's tunnel address (one ping at a time,
# 1 s wait each) and gets a reply before SECONDS after T0.
await_first_ping() {
	local t0=$1 secs=$2 from=$3 to=$4
	if by "$(after "$t0" "$secs")" pt_ping_once "${MESH_NS[$from]}" "$(mesh_v4 "$to")"; then
		echo "first reply from $to $(secs_since "$t0") s after time zero"
		MEASURED[ping-$from-$to$MESH_LOG_SUFFIX]=$(secs_since "$t0")
		return 0
	fi
	echo "no reply from $to's $(mesh_v4 "$to") within $secs s"
	return 1
}

# ping_replies NS ADDR COUNT INTERVAL [SIZE]: how many of COUNT pings (1 s wait each) got
# a reply.
ping_replies() {
	local out
	out=$(ip netns exec "$1" timeout 60 ping -n -q -c "$3" -i "$4" -W 1 -s "${5:-56}" "$2" 2>&1 || true)
	awk '/packets transmitted/ {print $4 + 0; found = 1} END {if (!found) print 0}' <<<"$out"
}

# bg_ping VAR FROM TO SECONDS: FROM pings TO's tunnel address every 0.2 s for SECONDS in
# the background (traffic for the nodes to act on); the pid goes to VAR.
bg_ping() {
	pt_spawn "${MESH_NS[$2]}" "$PT_DIR/bgping-$2-$3$MESH_LOG_SUFFIX.txt" \
		ping -n -q -i 0.2 -W 1 -w "$4" "$(mesh_v4 "$3")"
	printf -v "$1" '%s' "$PT_LAST_PID"
}


# stop_pid PID: SIGTERM (SIGKILL after 5 s) and forget it.
stop_pid() {
	pt_stop "$1" 5 || true
	pt_forget_pid "$1"
}

# any_of FIELD VALUE...: display filter for FIELD being one of VALUE... (written out: the
# syntax of sets changed between tshark versions).
any_of() {
	local f=$1 v out=
	shift
	for v in "$@"; do out+="${out:+ || }$f == $v"; done
	echo "($out)"
}
# tcount FILE FILTER: how many frames of FILE match FILTER.
tcount() {
	local lines
	lines=$(pt_tfields "$1" "$2" frame.number) || return 1
	[[ -z $lines ]] && echo 0 || wc -l <<<"$lines"
}
# UDP_PY: "listen ADDR READY PORT..." binds UDP ADDR:PORT for each PORT, touches READY and
# prints "SRC:SPORT -> ADDR:PORT" for the first datagram each port gets (10 s at most;
# exit 1 if a port got none). "send SPORT DST PORT...": from one socket bound to SPORT,
# one datagram to DST:PORT for each PORT (so a NAT on the way maps one source to each).
UDP_PY='
import os, select, socket, sys, time
if sys.argv[1] == "listen":
    addr, ready, ports = sys.argv[2], sys.argv[3], [int(p) for p in sys.argv[4:]]
    socks = {}
    for p in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((addr, p))
        socks[s] = p
    open(ready, "w").close()
    seen, deadline = set(), time.time() + 10
    while len(seen) < len(ports) and time.time() < deadline:
        for s in select.select(list(socks), [], [], 0.2)[0]:
            _, src = s.recvfrom(2048)
            if socks[s] not in seen:
                seen.add(socks[s])
                print("%s:%d -> %s:%d" % (src[0], src[1], addr, socks[s]), flush=True)
    sys.exit(0 if len(seen) == len(ports) else 1)
sport, dst = int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("", sport))
for p in sys.argv[4:]:
    s.sendto(b"probe", (dst, int(p)))
'

# nat_sources HOST: HOST sends from UDP port 51820 to r's ports PROBE_PORTS; prints what r
# sees, one "SRC:SPORT -> DST:DPORT" line per port.
nat_sources() {
	local h=$1 ready=$PT_DIR/udp-ready-$1$MESH_LOG_SUFFIX out=$PT_DIR/udp-seen-$1$MESH_LOG_SUFFIX.txt pid
	pt_spawn "${MESH_NS[r]}" "$out" python3 -c "$UDP_PY" listen "$R_WAN" "$ready" "${PROBE_PORTS[@]}"
	pid=$PT_LAST_PID
	pt_wait_until 5 test -e "$ready" || { echo "the UDP listener on r did not start"; cat "$out"; return 1; }
	ip netns exec "${MESH_NS[$h]}" python3 -c "$UDP_PY" send "$MESH_PORT" "$R_WAN" "${PROBE_PORTS[@]}" ||
		{ echo "sending from $h failed"; return 1; }
	pt_wait_pid_exit "$pid" 12 || true
	stop_pid "$pid"
	cat "$out"
}

# nat_maps HOST PUBLIC SAME|DIFFERENT: r sees HOST's datagrams from PUBLIC, with the same
# source port for both destinations (SAME) or two different ones (DIFFERENT).
nat_maps() {
	local h=$1 pub=$2 want=$3 lines srcs ports n
	lines=$(nat_sources "$h") || { echo "$lines"; return 1; }
	echo "$lines"
	(($(wc -l <<<"$lines") == ${#PROBE_PORTS[@]})) || { echo "want one datagram per port"; return 1; }
	srcs=$(awk '{split($1, a, ":"); print a[1]}' <<<"$lines" | sort -u)
	[[ $srcs == "$pub" ]] || { echo "sources are $srcs, not $pub"; return 1; }
	ports=$(awk '{split($1, a, ":"); print a[2]}' <<<"$lines" | sort -u)
	n=$(wc -l <<<"$ports")
	case $want in
	SAME) ((n == 1)) || { echo "the NAT mapped one source port to $n public ports"; return 1; } ;;
	DIFFERENT) ((n == ${#PROBE_PORTS[@]})) || { echo "the NAT mapped the source port to one public port for both destinations"; return 1; } ;;
	esac
}

# nft_counter NS NAME: the packets of a named counter of table inet nat.
nft_counter() { ip netns exec "$1" nft list counter inet nat "$2" | awk '$1 == "packets" {print $2}'; }

# nat_rules NS LAN_PREFIX MASQ: the NAT router's ruleset (MASQ: "masquerade" or
# "masquerade random").
nat_rules() {
	ip netns exec "$1" nft -f - <<-EOF
		table inet nat {
			counter unsolicited_fwd { }
			counter unsolicited_in { }
			chain postrouting {
				type nat hook postrouting priority srcnat; policy accept;
				oifname "wan0" ip saddr $2 $3
			}
			chain forward {
				type filter hook forward priority filter; policy drop;
				iifname "lan0" oifname "wan0" accept
				iifname "wan0" oifname "lan0" ct state established,related accept
				counter name unsolicited_fwd drop
			}
			chain input {
				type filter hook input priority filter; policy accept;
				iifname "wan0" ct state established,related accept
				iifname "wan0" counter name unsolicited_in drop
			}
		}
	EOF
}

# switch_port SWITCH N NS IFACE ADDR/LEN: NS's IFACE on port N of SWITCH's br0.
switch_port() {
	pt_veth "$3" "$4" "$1" "port$2"
	ip -n "$1" link set "port$2" master br0
	pt_addr "$3" "$4" "$5"
}

# PHASE_NS: the namespaces of the current phase (deleted at its end).
PHASE_NS=()
# nat_topology PHASE MASQ2: the namespaces of a phase (their names end in PHASE), n2's
# postrouting rule being MASQ2. Sets MESH_NS[r|a|b|c], INET_NS, LAN1_NS, N1_NS, N2_NS.
nat_topology() {
	local p=$1 masq2=$2 h
	pt_netns INET_NS "inet$p"
	pt_bridge "$INET_NS" br0
	pt_netns LAN1_NS "lan1$p"
	pt_bridge "$LAN1_NS" br0
	pt_netns N1_NS "n1$p"
	pt_netns N2_NS "n2$p"
	for h in r a b c; do
		pt_netns "MESH_NS[$h]" "$h$p"
	done
	PHASE_NS=("$INET_NS" "$LAN1_NS" "$N1_NS" "$N2_NS" "${MESH_NS[r]}" "${MESH_NS[a]}" "${MESH_NS[b]}" "${MESH_NS[c]}")
	switch_port "$INET_NS" 1 "${MESH_NS[r]}" eth0 "$R_WAN/24"
	switch_port "$INET_NS" 2 "$N1_NS" wan0 "$N1_WAN/24"
	switch_port "$INET_NS" 3 "$N2_NS" wan0 "$N2_WAN/24"
	switch_port "$LAN1_NS" 1 "$N1_NS" lan0 "$LAN1.1/24"
	switch_port "$LAN1_NS" 2 "${MESH_NS[a]}" eth0 "${UL[a]}/24"
	switch_port "$LAN1_NS" 3 "${MESH_NS[c]}" eth0 "${UL[c]}/24"
	pt_veth "$N2_NS" lan0 "${MESH_NS[b]}" eth0
	pt_addr "$N2_NS" lan0 "$LAN2.1/24"
	pt_addr "${MESH_NS[b]}" eth0 "${UL[b]}/24"
	for h in a c; do
		ip -n "${MESH_NS[$h]}" route add default via "$LAN1.1"
	done
	ip -n "${MESH_NS[b]}" route add default via "$LAN2.1"
	for h in "$N1_NS" "$N2_NS"; do
		ip netns exec "$h" sysctl -q -w net.ipv4.ip_forward=1
	done
	nat_rules "$N1_NS" "$LAN1.0/24" masquerade
	nat_rules "$N2_NS" "$LAN2.0/24" "$masq2"
}

# nat_topology_down: stops what runs in the phase's namespaces and deletes them.
nat_topology_down() {
	local ns pid
	for ns in "${PHASE_NS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null || true
		done
		ip netns del "$ns" 2>/dev/null || true
	done
}

# underlay_ok: a, b and c reach r (through their NAT), a reaches c over the LAN.
underlay_ok() {
	local h
	for h in a b c; do
		pt_ping_once "${MESH_NS[$h]}" "$R_WAN" || { echo "$h -> r"; return 1; }
	done
	pt_ping_once "${MESH_NS[a]}" "${UL[c]}" || { echo "a -> c"; return 1; }
}

# unsolicited_dropped: r, with a route to n2's LAN, cannot ping b, nor send n2 a datagram,
# and n2's drop counters count both.
unsolicited_dropped() {
	local f0 i0 f1 i1 ok=0
	f0=$(nft_counter "$N2_NS" unsolicited_fwd) i0=$(nft_counter "$N2_NS" unsolicited_in)
	ip -n "${MESH_NS[r]}" route add "$LAN2.0/24" via "$N2_WAN"
	if ip netns exec "${MESH_NS[r]}" ping -n -q -c 2 -i 0.2 -W 1 "${UL[b]}"; then
		echo "r pinged b's ${UL[b]} unsolicited"
		ok=1
	fi
	ip -n "${MESH_NS[r]}" route del "$LAN2.0/24" via "$N2_WAN"
	ip netns exec "${MESH_NS[r]}" python3 -c "$UDP_PY" send "$MESH_PORT" "$N2_WAN" "$MESH_PORT"
	sleep 0.2
	f1=$(nft_counter "$N2_NS" unsolicited_fwd) i1=$(nft_counter "$N2_NS" unsolicited_in)
	echo "n2 dropped $((f1 - f0)) forwarded and $((i1 - i0)) addressed to itself"
	((f1 - f0 >= 2 && i1 - i0 >= 1)) || { echo "want 2 and 1"; ok=1; }
	return $ok
}

# last_passed: the last check passed (a node that did not start makes the rest pointless).
last_passed() { [[ $PT_LAST_RESULT == PASS:* ]]; }

# start_nodes HOST...: starts the nodes of HOST... (mesh_start on them alone).
start_nodes() {
	local MESH_HOSTS=("$@")
	mesh_start "$BIN"
}

declare -A MEASURED

# ---- phase 1: two cone NATs ----

log "phase 1 topology: namespaces ${PT_PREFIX}{inet,lan1,n1,n2,r,a,b,c}1"
FAILED0=$PT_FAILED
nat_topology 1 masquerade
check "underlay: a, b, c ping r's $R_WAN; a pings c's ${UL[c]}" pt_wait_until 10 underlay_ok
check "n1 masquerades: a's datagrams to r's ports ${PROBE_PORTS[*]} come from $N1_WAN, one source port" \
	nat_maps a "$N1_WAN" SAME
check "n2 masquerades: b's datagrams to r's ports ${PROBE_PORTS[*]} come from $N2_WAN, one source port" \
	nat_maps b "$N2_WAN" SAME
check "n2 drops unsolicited inbound (to b's LAN and to itself)" unsolicited_dropped
((PT_FAILED == FAILED0)) || die "the topology is not what the checks need"

# ---- the mesh file ----

mesh_keys "$BIN"
# Only the relay has an endpoint.
MESH_MTU=$MTU
MESH_ENDPOINT=([r]="$R_WAN:$MESH_PORT" [a]="" [b]="" [c]="")
MESH_EXTRA=([r]="relay: true")
mesh_write_config "$PT_DIR/mesh.yaml"
[[ -z ${PT_VERBOSE:-} ]] || sed 's/^/    | /' "$MESH_CONFIG"
for h in "${MESH_HOSTS[@]}"; do
	check "peer check accepts the mesh with $h's key" "$BIN" check -config "$MESH_CONFIG" -key "${MESH_KEY[$h]}"
done

((PT_FAILED == 0)) || exit 1

log "starting r"
check "r starts" start_nodes r
last_passed || exit 1
R_IF=${MESH_IFACE[r]}
TUN_CAP=$PT_DIR/r-tun.pcapng
# The probe: a ping from r to an address of the tunnel's prefix that no peer has.
tun_probe() { ip netns exec "${MESH_NS[r]}" ping -n -q -c 1 -W 0.2 10.10.0.99 >/dev/null 2>&1 || true; }
check "capture of r's $R_IF starts" pt_capture_start "${MESH_NS[r]}" "$R_IF" "$TUN_CAP" "" tun_probe
TUN_CAP_PID=$PT_CAP_PID

log "starting a, b and c (time zero)"
T0=${EPOCHREALTIME/./}
check "a, b and c start" start_nodes a b c
last_passed || exit 1

check "1. a pings b's $(mesh_v4 b) within ${FIRST_PING_SECS}s of time zero" \
	await_first_ping "$T0" "$FIRST_PING_SECS" a b
registered() { [[ $(relay_count registered) == 3 ]]; }
r_registered() {
	by "$(after "$T0" "$FIRST_PING_SECS")" registered || true
	echo "r's relay status: registered $(relay_count registered || true), forwarded $(relay_count forwarded || true)"
	registered
}
check "1. r counts 3 registered members (a, b, c) within ${FIRST_PING_SECS}s of time zero" r_registered

T0C=${EPOCHREALTIME/./}
check "4. a pings c's $(mesh_v4 c) within ${FIRST_PING_SECS}s" await_first_ping "$T0C" "$FIRST_PING_SECS" a c
log "a pings b and c every 0.2 s"
bg_ping PING_AB a b "$((DIRECT_SECS + 2))"
bg_ping PING_AC a c "$((DIRECT_SECS + 2))"
check "2. a's path to b is \"direct $N2_WAN:PORT\" within ${DIRECT_SECS}s of time zero" \
	await_path "$T0" "$DIRECT_SECS" a b "direct $N2_WAN:"
check "2. b's path to a is \"direct $N1_WAN:PORT\" within ${DIRECT_SECS}s of time zero" \
	await_path "$T0" "$DIRECT_SECS" b a "direct $N1_WAN:"
check "4. a's path to c is \"direct ${UL[c]}:PORT\" within ${DIRECT_SECS}s of a's first ping to c" \
	await_path "$T0C" "$DIRECT_SECS" a c "direct ${UL[c]}:"
check "4. c's path to a is \"direct ${UL[a]}:PORT\" within ${DIRECT_SECS}s of a's first ping to c" \
	await_path "$T0C" "$DIRECT_SECS" c a "direct ${UL[a]}:"
stop_pid "$PING_AB"
stop_pid "$PING_AC"

log "2. burst of $BURST pings of $BURST_SIZE bytes from a to b, capture on r's eth0"
BURST_CAP=$PT_DIR/r-eth0-burst.pcapng
# The probe: a small datagram from r to n1 (dropped there).
wan_probe() { ip netns exec "${MESH_NS[r]}" bash -c "echo probe >/dev/udp/$N1_WAN/9" 2>/dev/null || true; }
check "capture of r's eth0 (UDP) starts" pt_capture_start "${MESH_NS[r]}" eth0 "$BURST_CAP" udp wan_probe
BURST_CAP_PID=$PT_CAP_PID
FWD0=$(relay_count forwarded || true)
burst() {
	local n
	n=$(ping_replies "${MESH_NS[a]}" "$(mesh_v4 b)" "$BURST" "$BURST_GAP" "$BURST_SIZE")
	MEASURED[burst]="$n of $BURST replies"
	echo "${MEASURED[burst]}"
	((n == BURST))
}
check "2. $BURST pings of $BURST_SIZE bytes, ${BURST_GAP}s apart, from a to b all get replies" burst
FWD1=$(relay_count forwarded || true)
pt_capture_stop_settled "$BURST_CAP" "$BURST_CAP_PID"
not_forwarded() {
	echo "r's forwarded: $FWD0 before the burst, $FWD1 after"
	[[ -n $FWD0 && -n $FWD1 ]] || { echo "r's status has no relay counters"; return 1; }
	((FWD1 == FWD0))
}
check "2. r's relay forwarded nothing during the burst" not_forwarded
# nat_flow: display filter for datagrams between r and n1 or n2.
NAT_FLOW="udp && ((ip.src == $R_WAN && $(any_of ip.dst "$N1_WAN" "$N2_WAN")) || (ip.dst == $R_WAN && $(any_of ip.src "$N1_WAN" "$N2_WAN")))"
no_big_on_r() {
	local all big
	all=$(tcount "$BURST_CAP" "$NAT_FLOW") || return 1
	big=$(tcount "$BURST_CAP" "$NAT_FLOW && udp.length > $BIG") || return 1
	MEASURED[r-eth0]="$all datagrams between r and the NATs during the burst, $big over $BIG bytes"
	echo "${MEASURED[r-eth0]}"
	((big == 0)) || { pt_tlist "$BURST_CAP" "$NAT_FLOW && udp.length > $BIG"; return 1; }
}
check "2. r's eth0 during the burst: no datagram over $BIG bytes to or from $N1_WAN or $N2_WAN" no_big_on_r

# ---- 3: r's TUN ----

pt_capture_stop_settled "$TUN_CAP" "$TUN_CAP_PID"
MEMBERS_FILTER="$(any_of ip.addr "$(mesh_v4 a)" "$(mesh_v4 b)" "$(mesh_v4 c)") || $(any_of ipv6.addr "$(mesh_v6 a)" "$(mesh_v6 b)" "$(mesh_v6 c)")"
tun_clean() {
	local all seen
	all=$(tcount "$TUN_CAP" "frame") || return 1
	seen=$(tcount "$TUN_CAP" "$MEMBERS_FILTER") || return 1
	MEASURED[r-tun]="$all packets on r's $R_IF since r started, $seen to or from a, b or c"
	echo "${MEASURED[r-tun]}"
	((all > 0)) || { echo "not even the probes: the capture saw nothing"; return 1; }
	((seen == 0)) || { pt_tlist "$TUN_CAP" "$MEMBERS_FILTER"; return 1; }
}
check "3. r's $R_IF, from r's start until now: no packet to or from a's, b's or c's tunnel addresses" tun_clean

# ---- 5: the relay goes away ----

log "5. SIGKILL to r's node; a and b ping each other for 15 s"
# kill_quietly PID: SIGKILL, and the shell's "Killed" notice of the job kept out of the output.
kill_quietly() {
	{
		kill -KILL "$1"
		pt_wait_pid_exit "$1" 5
		wait "$1"
	} 2>/dev/null || true
	pt_forget_pid "$1"
}
kill_quietly "${MESH_PID[r]}"
NR_BA=$PT_DIR/norelay-b-a.txt
(ping_replies "${MESH_NS[b]}" "$(mesh_v4 a)" "$NORELAY_PINGS" 0.2 >"$NR_BA") &
NR_PID=$!
PT_PIDS+=("$NR_PID")
NR_AB=$(ping_replies "${MESH_NS[a]}" "$(mesh_v4 b)" "$NORELAY_PINGS" 0.2)
wait "$NR_PID" || true
pt_forget_pid "$NR_PID"
NR_BA=$(cat "$NR_BA")
MEASURED[norelay]="a -> b $NR_AB, b -> a $NR_BA of $NORELAY_PINGS replies"
enough() {
	echo "$1: $2 of $NORELAY_PINGS replies (want $NORELAY_PCT%)"
	(($2 * 100 >= NORELAY_PINGS * NORELAY_PCT))
}
check "5. without r, a pings b for 15 s: at least $NORELAY_PCT% replies" enough "a -> b" "$NR_AB"
check "5. without r, b pings a for 15 s: at least $NORELAY_PCT% replies" enough "b -> a" "$NR_BA"
still_direct() {
	local ok=0
	path_has a b "direct $N2_WAN:" || ok=1
	path_has b a "direct $N1_WAN:" || ok=1
	echo "a's path to b: \"$(path_of a b)\"; b's to a: \"$(path_of b a)\""
	return $ok
}
check "5. without r, a's and b's paths to each other are still direct" still_direct

# ---- phase 2: b behind a symmetric NAT ----

log "phase 2: stopping the nodes and the namespaces of phase 1"
for h in a b c; do
	stop_pid "${MESH_PID[$h]}"
done
nat_topology_down
MESH_LOG_SUFFIX=-2
log "phase 2 topology: namespaces ${PT_PREFIX}{inet,lan1,n1,n2,r,a,b,c}2, n2 with masquerade random"
FAILED0=$PT_FAILED
nat_topology 2 "masquerade random"
check "underlay: a, b, c ping r's $R_WAN; a pings c's ${UL[c]}" pt_wait_until 10 underlay_ok
check "n2 (masquerade random) maps b's datagrams to r's ports ${PROBE_PORTS[*]} to two source ports of $N2_WAN" \
	nat_maps b "$N2_WAN" DIFFERENT
check "n1 still maps a's datagrams to one source port of $N1_WAN" nat_maps a "$N1_WAN" SAME
((PT_FAILED == FAILED0)) || die "the topology is not what the checks need"

check "r starts (phase 2)" start_nodes r
last_passed || exit 1
log "starting a and b (time zero)"
T0=${EPOCHREALTIME/./}
check "a and b start (phase 2)" start_nodes a b
last_passed || exit 1
check "6. a pings b's $(mesh_v4 b) within ${FIRST_PING_SECS}s of time zero (b behind the symmetric NAT)" \
	await_first_ping "$T0" "$FIRST_PING_SECS" a b
bg_ping PING_AB a b "$((DIRECT_SECS + 1))"
# stays_relayed: up to DIRECT_SECS after time zero, at every look, a's path to b and b's to
# a are "via r".
stays_relayed() {
	local deadline looks=0 pa pb ok=0
	deadline=$(after "$T0" "$DIRECT_SECS")
	while :; do
		pa=$(path_of a b) pb=$(path_of b a)
		looks=$((looks + 1))
		if [[ $pa != "via r" || $pb != "via r" ]]; then
			echo "$(secs_since "$T0") s: a's path to b \"$pa\", b's to a \"$pb\""
			ok=1
		fi
		((${EPOCHREALTIME/./} < deadline)) || break
		sleep 0.5
	done
	echo "$looks looks up to $(secs_since "$T0") s after time zero; last: a's path to b \"$pa\", b's to a \"$pb\""
	return $ok
}
check "6. a's and b's paths to each other are \"via r\" at every look up to ${DIRECT_SECS}s after time zero" stays_relayed
stop_pid "$PING_AB"
check "6. a pings b through r: 5 pings, 5 replies" pt_ping "${MESH_NS[a]}" "$(mesh_v4 b)" 5
pt_make_payload "$PT_DIR/xfer.bin" "$XFER_MIB"
relayed_transfer() {
	local f0 f1 want
	f0=$(relay_count forwarded) || return 1
	pt_tcp_transfer "${MESH_NS[a]}" "${MESH_NS[b]}" "$(mesh_v4 b)" "$XFER_PORT" "$PT_DIR/xfer.bin" "$XFER_SECS" || return 1
	f1=$(relay_count forwarded) || return 1
	want=$((XFER_MIB * 1024 * 1024 / MTU))
	MEASURED[xfer]="r forwarded $((f1 - f0)) datagrams during the $XFER_MIB MiB transfer (want >= $want)"
	echo "${MEASURED[xfer]}"
	[[ -n $f0 && -n $f1 ]] && ((f1 - f0 >= want))
}
check "6. $XFER_MIB MiB over TCP from a to b through r within ${XFER_SECS}s: same SHA-256, forwarded by r" relayed_transfer
log "r's relay status: registered $(relay_count registered || true), forwarded $(relay_count forwarded || true), introductions $(relay_count introductions || true), refused $(relay_count refused || true)"

echo "---- measured"
for k in ping-a-b path-a-b path-b-a ping-a-c path-a-c path-c-a burst r-eth0 r-tun norelay ping-a-b-2 xfer; do
	echo "  $k: ${MEASURED[$k]:-not run}"
done
pt_summary nat-test
