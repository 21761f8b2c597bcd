#!/usr/bin/env bash
# reload-test.sh: a running mesh follows its file (issue 9), in network namespaces.
#
#   bash scripts/reload-test.sh [--bin PATH] [--reference-restart] [-v]
#
# The hosts of scripts/topology.sh plus a LAN behind beta (namespace lan2: 10.20.2.0/24,
# fd20:2::/64, host 10.20.2.2; beta forwards). All nodes run one mesh file, rewritten
# between the phases:
# 1. Reload under traffic. alpha and beta run a two-peer mesh. While alpha pings beta 10
#    times a second and sends it a TCP transfer paced to last about 10 s, the file gains
#    gamma and beta's lan2 subnet; alpha reloads on SIGHUP, beta by `peer reload`, which must
#    print exactly what changed. At most one ping may be lost, the transfer must arrive
#    intact (SHA-256 on both ends), and a capture of alpha's underlay (dumpcap on its veth,
#    WireGuard message type 1 = the first 4 bytes of the UDP payload) must hold no handshake
#    initiation between alpha and beta from the first reload until the traffic ends, while
#    it holds the one before (so it does see them); the last handshake both nodes report
#    stays the same, and neither drops a packet as no_route or spoofed_source (what a
#    half-swapped prefix table would do). Then gamma starts: alpha reaches gamma, the lan3 host behind gamma and
#    the lan2 host behind beta.
# 2. Removal. beta leaves the file; alpha reloads by `peer reload`, gamma on SIGHUP: alpha
#    has no route left to beta's prefixes, its status no session with beta, and beta's
#    packets no longer reach alpha.
# 3. Refusal. An invalid file (an unknown field): `peer reload` exits 2 with the FILE:LINE
#    error `peer check` gives for it, a SIGHUP is refused too (WARN in the log), both nodes
#    keep running the old mesh: alpha and gamma still ping each other and lan3.
# 4. -watch. alpha restarts with -watch; an edit of the file in place, then one replacing
#    it by rename, with no signal, must each show in alpha's routes within 2 s (timed).
# 5. `peer reload` against a node that is not running (stale socket, no socket): exit 1,
#    an error naming the socket.
# Needs root; skips without it (fails if CI=true). Prints what it measured.
#
# --reference-restart proves the harness without the feature: every reload is a restart
# of the node with the new file (what users do today), phases 3-5 and the checks of
# `peer reload` itself (and of the drop counters, which restart at 0) are not run, the
# losses are reported but not judged, and the
# capture must show the handshakes the restarts cause (so it would see one a reload made).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 150 "$@"
source "$PT_LIB_DIR/topology.sh"

BIN='' MODE=reload R=''
while (($#)); do
	case $1 in
	--bin) BIN=$2; shift 2 ;;
	--bin=*) BIN=${1#--bin=}; shift ;;
	--reference-restart) MODE=restart R="(restart instead) "; shift ;;
	-v) PT_VERBOSE=1; shift ;;
	*) echo "usage: $0 [--bin PATH] [--reference-restart] [-v]" >&2; exit 2 ;;
	esac
done
require_cmds ip python3 ping sha256sum timeout dumpcap tshark awk

# What is asked, defined here once.
PING_INTERVAL=0.1             # 10 echo requests a second, alpha -> beta, all through phase 1
MAX_LOST=1                    # pings that may go unanswered across both reloads
XFER_MIB=32                   # the TCP transfer alpha -> beta during phase 1 ...
XFER_RATE=$((3 * 1024 * 1024)) # ... paced to 3 MiB/s (about 10 s), bytes per second
APPLY_SECS=5                  # a SIGHUP shows in the node's status within this
WATCH_MS=2000                 # -watch applies an edit within this
LAN2_SUBNETS="10.20.2.0/24, fd20:2::/64"
LAN2_V4=10.20.2.2 LAN2_V6=fd20:2::2
# The capture filter: IPv4 UDP of a WireGuard handshake initiation (148 bytes of payload
# whose first 4 bytes are the little-endian message type 1).
CAP_FILTER='ip and udp and udp[4:2] = 156 and udp[8:4] = 0x01000000'

pt_use_peer
log "testing $BIN"
[[ $MODE == reload ]] || log "reference run: every reload is a restart of the node"

log "topology: namespaces ${PT_PREFIX}{sw,alpha,beta,gamma,lan3,lan2}"
mesh_topology_up
mesh_lan LAN2_NS beta 2
underlay_ok() { mesh_underlay_ok && pt_ping_once "$LAN2_NS" 10.20.2.1 && pt_ping_once "$LAN2_NS" fd20:2::1; }
check "underlay: hosts reach each other, lan2 reaches beta" pt_wait_until 10 underlay_ok
mesh_keys "$BIN"
MESH_CONFIG=$PT_DIR/mesh.yaml

# ---- helpers ----

# write_mesh FILE HOST...: the mesh file with only these hosts (and MESH_SUBNETS as now);
# MESH_CONFIG keeps naming the file the nodes run with.
write_mesh() {
	local f=$1 cfg=$MESH_CONFIG
	shift
	local saved=("${MESH_HOSTS[@]}")
	MESH_HOSTS=("$@")
	mesh_write_config "$f"
	MESH_HOSTS=("${saved[@]}")
	MESH_CONFIG=$cfg
}

# start_node HOST [TAG]: starts HOST's node (log $PT_DIR/HOST$TAG.log) and waits until its
# interface is up with both addresses.
start_node() {
	local h=$1
	MESH_LOG[$h]=$PT_DIR/$h${2:-}.log
	pt_add_log "$h${2:-}" "${MESH_LOG[$h]}"
	mesh_spawn_node "$BIN" "$h"
	pt_wait_until 15 mesh_node_settled "$h" || true
	if ! pt_alive "${MESH_PID[$h]}"; then
		echo "$h: the node exited at start-up:"
		tail -n 5 "${MESH_LOG[$h]}"
		return 1
	fi
	mesh_node_settled "$h" || { echo "$h: ${MESH_IFACE[$h]} not up after 15s"; return 1; }
	echo "$h: ${MESH_IFACE[$h]} up (pid ${MESH_PID[$h]})"
}

# running HOST: the node runs, or says it does not, with its exit status (a SIGHUP where
# nothing handles it kills the process: 129).
declare -A EXIT_STATUS
running() {
	local pid=${MESH_PID[$1]:-none} rc=0
	pt_alive "$pid" && return 0
	if [[ -z ${EXIT_STATUS[$pid]:-} ]]; then
		wait "$pid" 2>/dev/null || rc=$?
		EXIT_STATUS[$pid]=$rc
	fi
	rc=${EXIT_STATUS[$pid]}
	echo "$1's node is not running (exit status $rc$( ((rc != 129)) || echo ': killed by SIGHUP, which nothing handles'))"
	return 1
}

# ping_from HOST ADDR: pt_await_ping from HOST's namespace, at once failing when its
# node is not running.
ping_from() { running "$1" && pt_await_ping 10 "${MESH_NS[$1]}" "$2"; }

# peer_get HOST PEER FIELD: FIELD of PEER in HOST's `peer status -json` (a list joined by
# spaces); "absent" when PEER is not listed.
peer_get() {
	local st
	st=$(mesh_status "$1" -json) || return 1
	python3 -c '
import json, sys
p = next((p for p in json.load(sys.stdin)["peers"] if p["name"] == sys.argv[1]), None)
v = "absent" if p is None else p.get(sys.argv[2])
v = "" if v is None else v
print(" ".join(v) if isinstance(v, list) else v)' "$2" "$3" <<<"$st"
}

# swap_drops HOST: what HOST's node dropped as no_route (device) and spoofed_source (all
# peers): the drops a half-swapped prefix table would cause.
swap_drops() {
	local st
	st=$(mesh_status "$1" -json) || return 1
	python3 -c '
import json, sys
d = json.load(sys.stdin)
print("no_route=%d spoofed_source=%d" % ((d.get("drops") or {}).get("no_route", 0),
      sum((p.get("drops") or {}).get("spoofed_source", 0) for p in d["peers"])))' <<<"$st"
}

# has_prefix HOST PEER PREFIX: HOST's status lists PREFIX among PEER's.
has_prefix() { [[ " $(peer_get "$1" "$2" prefixes) " == *" $3 "* ]]; }

# log_count HOST TEXT: lines of HOST's current log containing TEXT.
log_count() { grep -c -F -- "$2" "${MESH_LOG[$1]}" || true; }

# mesh_routes HOST: the routes in HOST's namespace through its tunnel interface.
mesh_routes() {
	local ns=${MESH_NS[$1]} ifc=${MESH_IFACE[$1]}
	ip -n "$ns" route show dev "$ifc"
	ip -n "$ns" -6 route show dev "$ifc"
}

# restart_node HOST TAG: the reference run's "reload": SIGTERM, start with the file as it is now.
restart_node() {
	pt_stop "${MESH_PID[$1]}" 5 || true
	start_node "$1" "$2"
}

# logged_since HOST N TEXT: HOST's log has more than N lines with TEXT, or its node
# is gone (for wait loops, which then stop waiting).
logged_since() {
	! pt_alive "${MESH_PID[$1]}" || (($(log_count "$1" "$3") > $2))
}

# reload_signal HOST WHAT...: SIGHUP to HOST's node; waits until the log says "mesh
# reloaded" and WHAT (a command) holds. Sets RELOAD_MS[HOST] to the time from the signal.
declare -A RELOAD_MS
reload_signal() {
	local h=$1 t0=${EPOCHREALTIME/./} n0
	shift
	if [[ $MODE == restart ]]; then
		restart_node "$h" "-r$((++RESTARTS))" || return 1
	else
		running "$h" || return 1
		n0=$(log_count "$h" 'msg="mesh reloaded"')
		kill -HUP "${MESH_PID[$h]}"
		pt_wait_until "$APPLY_SECS" logged_since "$h" "$n0" 'msg="mesh reloaded"' || true
		running "$h" || return 1
		logged_since "$h" "$n0" 'msg="mesh reloaded"' || { echo "no msg=\"mesh reloaded\" in $h's log within ${APPLY_SECS}s"; tail -n 5 "${MESH_LOG[$h]}"; return 1; }
		pt_wait_until "$APPLY_SECS" "$@" || true
	fi
	"$@" || { echo "after the reload: $* does not hold"; return 1; }
	RELOAD_MS[$h]=$(pt_ms_since "$t0")
	echo "$h applied the file ${RELOAD_MS[$h]} ms after the SIGHUP"
}

# reload_command HOST WANT...: `peer reload` of HOST's node must exit 0 and print the
# lines WANT (each line's items in any order); the log says "mesh reloaded".
reload_command() {
	local h=$1 t0=${EPOCHREALTIME/./} rc=0 out=$PT_DIR/reload-$1.out n0 ms
	shift
	if [[ $MODE == restart ]]; then
		restart_node "$h" "-r$((++RESTARTS))" || return 1
		RELOAD_MS[$h]=$(pt_ms_since "$t0")
		return 0
	fi
	running "$h" || return 1
	n0=$(log_count "$h" 'msg="mesh reloaded"')
	ip netns exec "${MESH_NS[$h]}" "$BIN" reload -socket "${MESH_SOCK[$h]}" >"$out" 2>"$out.err" || rc=$?
	ms=$(pt_ms_since "$t0")
	echo "peer reload -socket ${MESH_SOCK[$h]}: exit $rc in $ms ms"
	sed 's/^/  stdout: /' "$out"
	sed 's/^/  stderr: /' "$out.err"
	((rc == 0)) || return 1
	pt_wait_until 2 logged_since "$h" "$n0" 'msg="mesh reloaded"' || true
	running "$h" || return 1
	logged_since "$h" "$n0" 'msg="mesh reloaded"' || { echo "no msg=\"mesh reloaded\" in $h's log"; return 1; }
	same_changes "$out" "$@" || return 1
	RELOAD_MS[$h]=$ms
}
RESTARTS=0

# same_changes OUT WANT...: the non-empty lines of OUT are WANT, in that order, the words
# after each "category:" compared as sets.
same_changes() {
	python3 - "$@" <<-'EOF'
		import sys
		got = [l.strip() for l in open(sys.argv[1]) if l.strip()]
		want = sys.argv[2:]
		def norm(l):
		    k, _, v = l.partition(":")
		    return (k.strip(), sorted(v.split()))
		if [norm(l) for l in got] != [norm(l) for l in want]:
		    print("want these lines (the items of each in any order):")
		    for l in want:
		        print("  " + l)
		    sys.exit(1)
	EOF
}

# only_in_reload_mode DESC: says why a check of the feature itself is not run in the
# reference run; fails nothing. Returns 1 there, so callers write `only_in_reload_mode D && check D ...`.
only_in_reload_mode() {
	[[ $MODE == reload ]] && return 0
	echo "not run (reference run): $1"
	return 1
}

# ==== 1. reload under traffic ====

log "1. alpha and beta; the file gains gamma and beta's lan2 under traffic"
write_mesh "$MESH_CONFIG" alpha beta
for h in alpha beta; do
	check "peer check accepts the two-peer mesh with $h's key" "$BIN" check -config "$MESH_CONFIG" -key "${MESH_KEY[$h]}"
done

# The capture runs from before the nodes start, so it holds their first handshake: the
# proof that it sees initiations. Its probe is a fake initiation to the discard port,
# which the counting below leaves out (it counts port 51820 only).
CAP=$PT_DIR/alpha-underlay.pcapng
probe() {
	ip netns exec "${MESH_NS[alpha]}" bash -c 'printf "\x01\x00\x00\x00%0144d" 0 >/dev/udp/10.99.0.2/9' 2>/dev/null || true
}
check "dumpcap captures handshake initiations on alpha's eth0" pt_capture_start "${MESH_NS[alpha]}" eth0 "$CAP" "$CAP_FILTER" probe

# The kernel's IPv6 router solicitations into a new TUN (at start and again 4 s later)
# have no peer to go to and count as no_route; without them every no_route is peer's.
for h in "${MESH_HOSTS[@]}"; do
	ip netns exec "${MESH_NS[$h]}" sysctl -q -w net.ipv6.conf.default.router_solicitations=0
done
fails=$PT_FAILED
check "alpha starts" start_node alpha
check "beta starts" start_node beta
check "alpha and beta ping each other" eval 'ping_from alpha "$(mesh_v4 beta)" && ping_from beta "$(mesh_v4 alpha)"'
((PT_FAILED == fails)) || exit 1
HS_A0=$(peer_get alpha beta last_handshake || true) HS_B0=$(peer_get beta alpha last_handshake || true)
DROPS_A0=$(swap_drops alpha || true) DROPS_B0=$(swap_drops beta || true)

# The traffic: a ping every 100 ms and the paced transfer, both alpha -> beta.
PING_OUT=$PT_DIR/ping.txt
ip netns exec "${MESH_NS[alpha]}" ping -n -i "$PING_INTERVAL" -W 1 "$(mesh_v4 beta)" >"$PING_OUT" 2>&1 &
PING_PID=$!
PT_PIDS+=("$PING_PID")
PAYLOAD=$PT_DIR/payload.bin
pt_make_payload "$PAYLOAD" "$XFER_MIB"
XFER_OUT=$PT_DIR/xfer.txt
XFER_T0=${EPOCHREALTIME/./}
pt_bg_transfer "$XFER_OUT" "${MESH_NS[alpha]}" "${MESH_NS[beta]}" "$(mesh_v4 beta)" 5301 "$PAYLOAD" 90 "$XFER_RATE"
XFER_PID=$PT_BG_PID
rx0=$(peer_get beta alpha rx_bytes || true)
under_way() {
	local rx
	rx=$(peer_get beta alpha rx_bytes) || return 1
	((${rx:-0} > ${rx0:-0} + 2 * 1024 * 1024))
}
check "traffic alpha -> beta under way (ping every ${PING_INTERVAL}s, $XFER_MIB MiB at $((XFER_RATE / 1024 / 1024)) MiB/s)" pt_wait_until 10 under_way

MESH_SUBNETS[beta]=$LAN2_SUBNETS
write_mesh "$MESH_CONFIG" alpha beta gamma
RELOAD_T0=$EPOCHREALTIME # the capture's clock: seconds since the epoch
alpha_has_v2() { [[ $(peer_get alpha gamma name) == gamma ]] && has_prefix alpha beta 10.20.2.0/24; }
check "${R}alpha reloads on SIGHUP: its status lists gamma and beta's 10.20.2.0/24" reload_signal alpha alpha_has_v2
check "${R}beta reloads by peer reload, which prints what changed" reload_command beta \
	"added peers: gamma" "routes added: $(mesh_v4 gamma)/32 $(mesh_v6 gamma)/128 $MESH_SUBNET4 $MESH_SUBNET6" \
	"policy: clamps MSS to MTU $MESH_MTU"
beta_has_v2() { [[ $(peer_get beta gamma name) == gamma ]]; }
check "beta's status lists gamma" beta_has_v2
# The transfer must still be going, or it proved nothing about the reloads.
XFER_SPANNED=no
! pt_alive "$XFER_PID" || XFER_SPANNED=yes

xfer_done() {
	pt_wait_pid_exit "$XFER_PID" 90 || { echo "transfer still running"; return 1; }
	local ms
	ms=$(pt_ms_since "$XFER_T0")
	pt_bg_result "$XFER_OUT" || return 1
	XFER_MS="$ms ms"
	[[ $XFER_SPANNED == yes ]] || { echo "the transfer ended before the reloads did: make it longer"; return 1; }
	echo "it was still going on when beta's reload returned"
}
XFER_MS=
check "the $XFER_MIB MiB transfer across both reloads arrives intact" xfer_done

# ping_result: stops the ping and counts the requests without a reply, leaving out the
# last one sent (it may have been on its way when the ping was stopped).
ping_result() {
	kill -INT "$PING_PID" 2>/dev/null || true
	pt_wait_pid_exit "$PING_PID" 5 || kill -KILL "$PING_PID" 2>/dev/null || true
	wait "$PING_PID" 2>/dev/null || true
	tail -n 2 "$PING_OUT"
	read -r PING_SENT PING_LOST PING_MISSING < <(awk '
		/bytes from/ { for (i = 1; i <= NF; i++) if ($i ~ /^icmp_seq=/) got[substr($i, 10)] = 1 }
		/packets transmitted/ { tx = $1 }
		END { for (i = 1; i < tx; i++) if (!(i in got)) { n++; if (n <= 10) m = m (m == "" ? "" : ",") i; else if (n == 11) m = m ",..." }
		      printf "%d %d %s\n", tx, n, (m == "" ? "-" : m) }' "$PING_OUT")
	echo "$PING_SENT sent, $PING_LOST lost (icmp_seq $PING_MISSING)"
	((PING_SENT > 0)) || return 1
	[[ $MODE == restart ]] && return 0
	((PING_LOST <= MAX_LOST))
}
PING_SENT=0 PING_LOST='?' PING_MISSING=''
if [[ $MODE == reload ]]; then
	check "at most $MAX_LOST ping lost across both reloads" ping_result
else
	check "the ping ran (losses reported, not judged, in the reference run)" ping_result
fi

# initiations: the handshake initiations between alpha and beta in the capture, before
# the first reload and after it. Sets INIT_BEFORE, INIT_DURING.
initiations() {
	pt_capture_stop
	local fields
	fields=$(tshark -n -r "$CAP" -T fields -e frame.time_epoch -e ip.src -e ip.dst -e udp.dstport 2>"$PT_DIR/tshark.err") || {
		echo "tshark -r $CAP failed:"
		cat "$PT_DIR/tshark.err"
		return 1
	}
	read -r INIT_BEFORE INIT_DURING < <(awk -v t0="$RELOAD_T0" '
		$4 == 51820 && ($2 " " $3 == "10.99.0.1 10.99.0.2" || $2 " " $3 == "10.99.0.2 10.99.0.1") {
			if ($1 + 0 < t0 + 0) b++; else d++ }
		END { printf "%d %d\n", b, d }' <<<"$fields")
	echo "initiations between alpha and beta: $INIT_BEFORE before the first reload, $INIT_DURING from it to the end of the traffic"
	awk '$4 == 51820' <<<"$fields" | sed 's/^/  /'
	((INIT_BEFORE > 0)) || { echo "the capture missed the first handshake: it would miss others too"; return 1; }
	if [[ $MODE == restart ]]; then
		((INIT_DURING > 0)) || { echo "the restarts must have handshaked: the capture does not see it"; return 1; }
	else
		((INIT_DURING == 0))
	fi
}
INIT_BEFORE='?' INIT_DURING='?'
if [[ $MODE == reload ]]; then
	check "the underlay holds no handshake initiation between alpha and beta during the reloads" initiations
else
	check "the underlay holds the handshakes the restarts caused (the capture would see a reload's)" initiations
fi
same_session() {
	local a b
	a=$(peer_get alpha beta last_handshake) b=$(peer_get beta alpha last_handshake)
	echo "alpha's last handshake with beta: $HS_A0 -> $a; beta's with alpha: $HS_B0 -> $b"
	[[ -n $HS_A0 && $a == "$HS_A0" && $b == "$HS_B0" ]]
}
[[ $MODE == restart ]] || check "alpha and beta report the same last handshake as before the reloads" same_session
no_swap_drops() {
	local a b
	a=$(swap_drops alpha) && b=$(swap_drops beta) || return 1
	echo "alpha: $DROPS_A0 -> $a; beta: $DROPS_B0 -> $b"
	[[ $a == "$DROPS_A0" && $b == "$DROPS_B0" ]]
}
[[ $MODE == restart ]] || check "no packet dropped as no_route or spoofed_source across the reloads" no_swap_drops

fails=$PT_FAILED
check "gamma starts (with the new file)" start_node gamma
check "alpha reaches gamma over both families" eval 'ping_from alpha "$(mesh_v4 gamma)" && ping_from alpha "$(mesh_v6 gamma)"'
check "alpha reaches the lan3 host behind gamma ($LAN3_V4, $LAN3_V6)" eval 'ping_from alpha "$LAN3_V4" && ping_from alpha "$LAN3_V6"'
check "alpha reaches beta's new subnet: the lan2 host ($LAN2_V4, $LAN2_V6)" eval 'ping_from alpha "$LAN2_V4" && ping_from alpha "$LAN2_V6"'
check "beta reaches gamma" ping_from beta "$(mesh_v4 gamma)"

# ==== 2. removal ====

log "2. beta leaves the file"
write_mesh "$MESH_CONFIG" alpha gamma
check "${R}alpha reloads by peer reload: beta and its routes removed" reload_command alpha \
	"removed peers: beta" "routes removed: $(mesh_v4 beta)/32 $(mesh_v6 beta)/128 ${LAN2_SUBNETS/,/}"
gamma_without_beta() { [[ $(peer_get gamma beta name) == absent ]]; }
check "${R}gamma reloads on SIGHUP: its status has no beta" reload_signal gamma gamma_without_beta

# no_route_to_beta: alpha's namespace routes none of beta's prefixes into the tunnel (the
# on-link 10.10.0.0/24 and fd10::/64 of alpha's own addresses stay, of course).
no_route_to_beta() {
	running alpha || return 1
	local r
	r=$(mesh_routes alpha)
	echo "$r"
	! grep -E "^($(mesh_v4 beta)|$(mesh_v6 beta)|10\.20\.2\.0/24|fd20:2::/64)( |$)" <<<"$r"
}
check "alpha's namespace has no route left to beta's prefixes" no_route_to_beta
no_session_with_beta() {
	local hs
	hs=$(peer_get alpha beta last_handshake) || return 1
	echo "alpha's status about beta: ${hs:-listed, no session}"
	[[ $hs == absent || -z $hs ]]
}
check "alpha's status shows no session with beta" no_session_with_beta
beta_shut_out() {
	running alpha && running beta || return 1
	if ip netns exec "${MESH_NS[beta]}" ping -n -q -c 5 -i 0.2 -W 1 "$(mesh_v4 alpha)"; then
		echo "alpha still answers beta"
		return 1
	fi
	echo "no reply: alpha drops what beta sends"
}
check "beta, still running the old file, no longer reaches alpha" beta_shut_out
check "alpha still reaches gamma" ping_from alpha "$(mesh_v4 gamma)"

if [[ $MODE == reload ]]; then
	# ==== 3. refusal ====

	log "3. an invalid file"
	{ cat "$MESH_CONFIG"; echo "    bogus: 1"; } >"$MESH_CONFIG.bad" # a field of gamma's entry
	BAD_LINE=$(wc -l <"$MESH_CONFIG.bad")
	mv "$MESH_CONFIG.bad" "$MESH_CONFIG"
	WANT_ERR="$MESH_CONFIG:$BAD_LINE:"
	check_refuses() {
		local rc=0
		"$BIN" check -config "$MESH_CONFIG" -key "${MESH_KEY[alpha]}" 2>"$PT_DIR/check.err" || rc=$?
		cat "$PT_DIR/check.err"
		((rc == 2)) && grep -q -F -- "$WANT_ERR" "$PT_DIR/check.err"
	}
	check "peer check refuses the file with $WANT_ERR (as at start)" check_refuses
	reload_refused() {
		running alpha || return 1
		local rc=0 out=$PT_DIR/reload-bad.out
		ip netns exec "${MESH_NS[alpha]}" "$BIN" reload -socket "${MESH_SOCK[alpha]}" >"$out" 2>"$out.err" || rc=$?
		echo "peer reload: exit $rc"
		sed 's/^/  stdout: /' "$out"
		sed 's/^/  stderr: /' "$out.err"
		((rc == 2)) || { echo "want exit 2"; return 1; }
		grep -q -F -- "$WANT_ERR" "$out.err" || { echo "want $WANT_ERR on stderr"; return 1; }
		grep -q -F 'msg="mesh reload refused"' "${MESH_LOG[alpha]}" || { echo "no WARN msg=\"mesh reload refused\" in alpha's log"; return 1; }
		running alpha
	}
	check "peer reload on alpha: exit 2, $WANT_ERR on stderr, WARN in the log, alpha runs on" reload_refused
	sighup_refused() {
		running gamma || return 1
		local n0
		n0=$(log_count gamma 'msg="mesh reload refused"')
		kill -HUP "${MESH_PID[gamma]}"
		pt_wait_until "$APPLY_SECS" logged_since gamma "$n0" 'msg="mesh reload refused"' || true
		running gamma || return 1
		logged_since gamma "$n0" 'msg="mesh reload refused"' || { echo "no WARN msg=\"mesh reload refused\" in gamma's log"; return 1; }
		grep -F 'mesh reload refused' "${MESH_LOG[gamma]}" | tail -n 1
	}
	check "SIGHUP on gamma with the invalid file: refused (WARN), gamma runs on" sighup_refused
	still_meshed() {
		ping_from alpha "$(mesh_v4 gamma)" && ping_from gamma "$(mesh_v4 alpha)" && ping_from alpha "$LAN3_V4" &&
			has_prefix alpha gamma "$MESH_SUBNET4"
	}
	check "alpha and gamma run the old mesh: ping both ways, lan3, gamma's prefixes in alpha's status" still_meshed

	# ==== 4. -watch ====

	log "4. alpha restarts with -watch; edits with no signal"
	write_mesh "$MESH_CONFIG" alpha gamma # valid again (the nodes still run this mesh)
	pt_stop "${MESH_PID[alpha]}" 5 || true
	MESH_ARGS[alpha]=-watch
	check "alpha restarts with -watch" start_node alpha -watch
	check "alpha reaches gamma after the restart" ping_from alpha "$(mesh_v4 gamma)"

	# watch_applies HOW ADD [GONE]: rewrites the file (HOW: in-place or rename) with ADD in
	# gamma's subnets; alpha must route ADD (and no longer GONE) within WATCH_MS, no signal.
	declare -A WATCH_RESULT
	watch_applies() {
		local how=$1 add=$2 gone=${3:-} t0 ms
		running alpha || return 1
		MESH_SUBNETS[gamma]="$MESH_SUBNET4, $MESH_SUBNET6, $add"
		t0=${EPOCHREALTIME/./}
		if [[ $how == in-place ]]; then
			write_mesh "$MESH_CONFIG" alpha gamma # truncates and writes the same inode
		else
			write_mesh "$MESH_CONFIG.new" alpha gamma
			mv -f "$MESH_CONFIG.new" "$MESH_CONFIG"
		fi
		applied() {
			local r
			r=$(mesh_routes alpha)
			grep -q "^$add " <<<"$r" && { [[ -z $gone ]] || ! grep -q "^$gone " <<<"$r"; }
		}
		# Polled every 20 ms for 2.5 times the limit, so a late one is measured too.
		while ! applied; do
			(($(pt_ms_since "$t0") < WATCH_MS * 5 / 2)) || break
			sleep 0.02
		done
		ms=$(pt_ms_since "$t0")
		mesh_routes alpha
		if ! applied; then
			WATCH_RESULT[$how]="not applied in ${ms} ms"
			echo "${WATCH_RESULT[$how]}"
			return 1
		fi
		WATCH_RESULT[$how]="$ms ms"
		echo "alpha routes $add ${gone:+and no longer $gone }$ms ms after the file was written ($how)"
		((ms <= WATCH_MS))
	}
	check "-watch: an edit in place (gamma gains 10.20.30.0/24) is in alpha's routes within ${WATCH_MS} ms" \
		watch_applies in-place 10.20.30.0/24
	check "-watch: a file replaced by rename (10.20.31.0/24 for 10.20.30.0/24) within ${WATCH_MS} ms" \
		watch_applies rename 10.20.31.0/24 10.20.30.0/24
	check "alpha still reaches gamma" ping_from alpha "$(mesh_v4 gamma)"

	# ==== 5. a node that is not running ====

	log "5. peer reload with no node behind the socket"
	# not_running SOCKET: `peer reload` exits 1 with an error that names the socket.
	not_running() {
		local rc=0 err=$PT_DIR/reload-none.err
		"$BIN" reload -socket "$1" >"$err.out" 2>"$err" || rc=$?
		echo "peer reload -socket $1: exit $rc"
		sed 's/^/  stderr: /' "$err"
		((rc == 1)) || { echo "want exit 1"; return 1; }
		grep -q -F -- "$1" "$err" || { echo "want an error naming $1"; return 1; }
	}
	kill -KILL "${MESH_PID[beta]}" 2>/dev/null || true
	pt_wait_pid_exit "${MESH_PID[beta]}" 5 || true
	wait "${MESH_PID[beta]}" 2>/dev/null || true
	check "peer reload on beta's stale socket (beta killed): exit 1, a clear error" not_running "${MESH_SOCK[beta]}"
	check "peer reload on a socket that never existed: exit 1, a clear error" not_running "$PT_DIR/nobody.sock"
else
	echo "not run (reference run): 3. refusal, 4. -watch, 5. peer reload with no node"
fi

for h in "${MESH_HOSTS[@]}"; do
	[[ -z ${MESH_PID[$h]:-} ]] || pt_stop "${MESH_PID[$h]}" 5 || true
done

echo "---- measured"
echo "  pings alpha -> beta every ${PING_INTERVAL}s across the reloads: $PING_SENT sent, $PING_LOST lost (icmp_seq ${PING_MISSING:--})"
echo "  transfer alpha -> beta, $XFER_MIB MiB paced at $((XFER_RATE / 1024 / 1024)) MiB/s: ${XFER_MS:-failed} ($(sed -n 's/^ok: [0-9]* bytes, sha256 [0-9a-f]*, //p' "$XFER_OUT" 2>/dev/null || true))"
echo "  reload to applied: alpha SIGHUP ${RELOAD_MS[alpha]:-?} ms, beta peer reload ${RELOAD_MS[beta]:-?} ms, gamma SIGHUP ${RELOAD_MS[gamma]:-?} ms"
echo "  handshake initiations alpha<->beta on the underlay: $INIT_BEFORE before the reloads, $INIT_DURING during them"
if [[ $MODE == reload ]]; then
	echo "  -watch, write to route: in place ${WATCH_RESULT[in-place]:-?}, by rename ${WATCH_RESULT[rename]:-?}"
fi
pt_summary "reload-test${R:+ (reference run: restarts)}"
