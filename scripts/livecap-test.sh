#!/usr/bin/env bash
# livecap-test.sh: `peer capture`, the live capture of a running node over its control
# socket, read by tshark, on the three-host mesh of scripts/topology.sh.
#
#   bash scripts/livecap-test.sh [--bin PATH] [-v]
#
# Every node is started with NO capture flag. While alpha pings beta and gamma:
#   - `peer capture -w - -c 20 | tshark -r -` on alpha shows the ICMP echo requests on
#     "tun→beta" and the replies on "beta→tun" with the tunnel addresses, and gamma's too;
#   - at the same time, a second capture, `-peer gamma -outer -c 20`, shows only gamma's
#     inner packets, and datagrams to and from gamma's endpoint only ([fd99::3]:51820);
#   - `peer capture -w - | tshark -i -` (the pipe reader behind `wireshark -k -i -`) works;
#   - a capture into a file ended with SIGINT is complete and tshark reads it;
#   - a capture into a file that is then killed (SIGKILL: no goodbye) is noticed by the
#     node, which logs that the capture ended and keeps forwarding; `peer status` still
#     answers, and a new capture still works.
# Needs root; skips without it (fails if CI=true).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 90 "$@"
source "$PT_LIB_DIR/topology.sh"

pt_peer_args "$@"
require_cmds ip ping timeout tshark grep awk

pt_use_peer
log "testing $BIN with $(tshark --version 2>/dev/null | head -n 1)"

log "topology: namespaces ${PT_PREFIX}{sw,alpha,beta,gamma,lan3}"
mesh_topology_up
check "underlay: hosts reach each other over IPv4 and IPv6" pt_wait_until 10 mesh_underlay_ok
mesh_keys "$BIN"
mesh_write_config "$PT_DIR/mesh.yaml"
check "the three nodes start with no capture flag" mesh_start "$BIN"
((PT_FAILED == 0)) || exit 1
NS_A=${MESH_NS[alpha]} SOCK_A=${MESH_SOCK[alpha]} LOG_A=${MESH_LOG[alpha]}
A4=$(mesh_v4 alpha) B4=$(mesh_v4 beta) G4=$(mesh_v4 gamma)
check "ping alpha -> beta $B4" pt_await_ping 10 "$NS_A" "$B4"
check "ping alpha -> gamma $G4" pt_await_ping 10 "$NS_A" "$G4"

# Pings that run through the captures: 5 per second to each peer, for up to 30 s (killed
# at cleanup, or when the checks are done).
ip netns exec "$NS_A" ping -n -q -i 0.2 -c 150 "$B4" >"$PT_DIR/ping-beta.log" 2>&1 &
PING_B=$!
ip netns exec "$NS_A" ping -n -q -i 0.2 -c 150 "$G4" >"$PT_DIR/ping-gamma.log" 2>&1 &
PING_G=$!
PT_PIDS+=("$PING_B" "$PING_G")

# TSHARK_FIELDS: one line per frame, fields separated by |: interface, outer/inner IPv4 and IPv6 addresses, UDP
# ports, ICMP type.
TSHARK_FIELDS=(-n -T fields -E separator='|' -E occurrence=l -e frame.interface_name -e ip.src -e ip.dst
	-e ipv6.src -e ipv6.dst -e udp.srcport -e udp.dstport -e icmp.type)

# live_capture OUT ARGS...: `peer capture -socket SOCK_A -w - ARGS | tshark -r -` in
# alpha's namespace, tshark's lines in OUT, the client's stderr in OUT.err; bounded by 20 s.
live_capture() {
	local out=$1
	shift
	ip netns exec "$NS_A" timeout 20 "$BIN" capture -socket "$SOCK_A" -w - "$@" 2>"$out.err" |
		timeout 25 tshark -r - "${TSHARK_FIELDS[@]}" >"$out" 2>"$out.tshark"
}

log "two live captures at once from alpha: all peers, and -peer gamma -outer"
ALL=$PT_DIR/all.txt GAMMA=$PT_DIR/gamma.txt
live_capture "$ALL" -c 20 &
CAP1=$!
live_capture "$GAMMA" -peer gamma -outer -c 20 &
CAP2=$!
rc1=0 rc2=0
wait "$CAP1" || rc1=$?
wait "$CAP2" || rc2=$?

# capture_ok NAME RC OUT: the pipeline succeeded, tshark read 20 frames and the client
# reported them.
capture_ok() {
	local name=$1 rc=$2 out=$3 n
	n=$(grep -c . "$out" || true)
	echo "$name: exit $rc, $n frames; client: $(cat "$out.err")"
	((rc == 0)) || { grep -v 'Running as user' "$out.tshark" || true; return 1; }
	((n == 20)) || { cat "$out"; return 1; }
	grep -q -F "peer capture: 20 packets" "$out.err"
}
check "peer capture -w - -c 20 | tshark -r -: 20 frames" capture_ok all "$rc1" "$ALL"
check "peer capture -peer gamma -outer -c 20 (at the same time): 20 frames" capture_ok gamma "$rc2" "$GAMMA"

# frames OUT IFACE SRC DST TYPE: the number of ICMP frames of type TYPE on IFACE from SRC
# to DST (the inner addresses).
frames() {
	awk -F'|' -v i="$2" -v s="$3" -v d="$4" -v t="$5" '$1 == i && $2 == s && $3 == d && $NF == t' "$1" | grep -c . || true
}
# echoes OUT PEER ADDR: echo requests on tun→PEER from alpha to ADDR and replies on
# PEER→tun back; every ICMP frame has those addresses.
echoes() {
	local out=$1 p=$2 addr=$3 req rep bad
	req=$(frames "$out" "tun→$p" "$A4" "$addr" 8)
	rep=$(frames "$out" "$p→tun" "$addr" "$A4" 0)
	bad=$(awk -F'|' -v p="$p" -v a="$A4" -v b="$addr" '($1 == "tun→" p && !($2 == a && $3 == b)) ||
		($1 == p "→tun" && !($2 == b && $3 == a))' "$out" | grep -c . || true)
	echo "tun→$p: $req echo requests $A4 > $addr; $p→tun: $rep replies $addr > $A4; $bad with other addresses"
	((req >= 1 && rep >= 1 && bad == 0)) || { cat "$out"; return 1; }
}
check "live capture: ICMP echo requests and replies alpha <-> beta, right inner addresses" echoes "$ALL" beta "$B4"
check "live capture: ICMP echo requests and replies alpha <-> gamma, right inner addresses" echoes "$ALL" gamma "$G4"

# only_gamma OUT: -peer gamma -outer: inner frames only on gamma's interfaces, with its
# echoes among them, and the outer datagrams only to and from [fd99::3]:51820.
only_gamma() {
	local out=$1 other wire wrong
	other=$(awk -F'|' '$1 != "tun→gamma" && $1 != "gamma→tun" && $1 != "wire-out" && $1 != "wire-in"' "$out" | grep -c . || true)
	wire=$(awk -F'|' '$1 == "wire-out" || $1 == "wire-in"' "$out" | grep -c . || true)
	wrong=$(awk -F'|' '($1 == "wire-out" && !($5 == "fd99::3" && $7 == 51820)) ||
		($1 == "wire-in" && !($4 == "fd99::3" && $6 == 51820))' "$out" | grep -c . || true)
	echo "$other frames of other peers; $wire outer datagrams, $wrong of them not to/from [fd99::3]:51820"
	((other == 0 && wire >= 1 && wrong == 0)) || { cat "$out"; return 1; }
	echoes "$out" gamma "$G4"
}
check "-peer gamma -outer: only gamma's packets and its endpoint's datagrams" only_gamma "$GAMMA"

# live_pipe: `peer capture -w - | tshark -i -`, tshark reading the pipe as a live
# interface, as `wireshark -k -i -` does (dumpcap's pipe reader): it stops after 10
# frames, and peer capture ends when the pipe closes.
live_pipe() {
	local out=$PT_DIR/pipe.txt n
	ip netns exec "$NS_A" timeout 20 "$BIN" capture -socket "$SOCK_A" -w - 2>"$out.err" |
		timeout 25 tshark -i - -c 10 "${TSHARK_FIELDS[@]}" >"$out" 2>"$out.tshark" || true
	n=$(grep -c . "$out" || true)
	echo "tshark -i - read $n frames"
	((n == 10)) || { cat "$out" "$out.tshark" "$out.err"; return 1; }
	echoes "$out" beta "$B4" >/dev/null || echoes "$out" gamma "$G4"
}
check "peer capture -w - | tshark -i - (the live pipe reader of wireshark -k -i -): 10 frames" live_pipe

log "a capture into a file, ended with SIGINT"
INTF=$PT_DIR/sigint.pcapng
pt_spawn "$NS_A" "$PT_DIR/sigint.log" "$BIN" capture -socket "$SOCK_A" -peer beta -w "$INTF"
IPID=$PT_LAST_PID
check "the SIGINT capture's file gets packets" pt_wait_until 10 test -s "$INTF"
# sigint_ok: the client exits 0 within 5 s of SIGINT and leaves a whole capture: tshark
# reads it without error, with beta's echoes, and it ends with the interface statistics.
sigint_ok() {
	local rc=0 out
	kill -INT "$IPID"
	pt_wait_pid_exit "$IPID" 5 || { echo "peer capture still running 5 s after SIGINT"; return 1; }
	wait "$IPID" || rc=$?
	echo "exit $rc: $(cat "$PT_DIR/sigint.log")"
	((rc == 0)) || return 1
	out=$(tshark -r "$INTF" "${TSHARK_FIELDS[@]}" 2>&1 | grep -v 'Running as user') || { echo "$out"; return 1; }
	grep -v -e '^tun→beta|' -e '^beta→tun|' <<<"$out" && { echo "frames of other interfaces"; return 1; }
	grep -q '^tun→beta|' <<<"$out" && grep -q '^beta→tun|' <<<"$out" || { echo "$out"; return 1; }
	last_block_is_stats "$INTF"
}
# last_block_is_stats FILE: the last pcapng block (little-endian, as peer writes it) is an
# interface statistics block (type 5): the end of the stream, with the drop counts, arrived.
last_block_is_stats() {
	local size len typ
	size=$(stat -c %s "$1")
	len=$(od -An -t u4 -j $((size - 4)) -N 4 "$1" | tr -d ' ')
	typ=$(od -An -t u4 -j $((size - len)) -N 4 "$1" | tr -d ' ')
	echo "$(basename "$1"): $size bytes, last block of type $typ ($len bytes)"
	((typ == 5))
}
check "SIGINT ends the capture in order: exit 0, beta's packets only, ending with the statistics" sigint_ok

log "a capture whose client is killed"
KILLED=$PT_DIR/killed.pcapng
pt_spawn "$NS_A" "$PT_DIR/killed.log" "$BIN" capture -socket "$SOCK_A" -outer -w "$KILLED"
KPID=$PT_LAST_PID
started() { (($(grep -c 'live capture started' "$LOG_A") >= 5)); }
check "the node logs the killed capture's start" pt_wait_until 10 started
check "the killed client's file got packets" pt_wait_until 10 test -s "$KILLED"
kill -KILL "$KPID"
ended() {
	local n
	n=$(grep -c 'live capture ended' "$LOG_A" || true)
	echo "$n 'live capture ended' lines in alpha's log"
	((n >= 5))
}
check "the node notices the killed client and logs that its capture ended" pt_wait_until 10 ended
grep -a 'live capture' "$LOG_A" | sed 's/^/    | /'
check "alpha is still running" pt_alive "${MESH_PID[alpha]}"
check "alpha still forwards: ping alpha -> beta $B4" pt_ping "$NS_A" "$B4" 3
status_ok() {
	mesh_status alpha
}
check "peer status still answers on alpha" status_ok
after_kill() {
	live_capture "$PT_DIR/after.txt" -peer beta -c 4 || return 1
	echoes "$PT_DIR/after.txt" beta "$B4"
}
check "a new capture after the killed one: -peer beta -c 4" after_kill

kill "$PING_B" "$PING_G" 2>/dev/null || true
pt_summary "livecap-test"
