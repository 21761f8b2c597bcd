#!/usr/bin/env bash
# mesh-test.sh: end-to-end test of a three-host peer mesh in network namespaces.
#
#   bash scripts/mesh-test.sh [--bin PATH] [--reference-wireguard-go] [-v]
#
# Builds ./peer (unless --bin), makes the topology of scripts/topology.sh, generates keys
# with `peer genkey`, writes one mesh.yaml and runs `peer` in alpha, beta and gamma. Then,
# between every pair over the IPv4 and IPv6 tunnel addresses: ping, and a 20 MiB TCP
# transfer whose SHA-256 is compared on both ends; ping and TCP from alpha to the lan3 host
# routed behind gamma over both families; `peer status -json` of every node; roaming (alpha
# changes its underlay address mid-session and beta follows it); and a clean
# shutdown that removes the routes. Needs root; skips without it (fails if CI=true).
#
# --reference-wireguard-go runs the identical checks with stock wireguard-go + wg(8) in
# place of peer: it proves the harness, so a failure with peer is peer's.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 170 "$@"
source "$PT_LIB_DIR/topology.sh"

BIN=
while (($#)); do
	case $1 in
	--bin) BIN=$2; shift 2 ;;
	--bin=*) BIN=${1#--bin=}; shift ;;
	--reference-wireguard-go) MESH_IMPL=wireguard-go; shift ;;
	-v) PT_VERBOSE=1; shift ;;
	*) echo "usage: $0 [--bin PATH] [--reference-wireguard-go] [-v]" >&2; exit 2 ;;
	esac
done
require_cmds ip python3 ping sha256sum timeout
[[ $MESH_IMPL == peer ]] || require_cmds wg

if [[ $MESH_IMPL == peer ]]; then
	pt_use_peer
	KEYTOOL=$BIN
	log "testing $BIN"
else
	pt_wireguard_go BIN || die "no wireguard-go"
	MESH_BIN=$BIN
	KEYTOOL=wg
	log "reference run: stock wireguard-go $PT_WGGO_VERSION ($BIN) configured with wg(8)"
fi

log "topology: namespaces ${PT_PREFIX}{sw,alpha,beta,gamma,lan3}"
mesh_topology_up
check "underlay: hosts reach each other over IPv4 and IPv6" pt_wait_until 10 mesh_underlay_ok

mesh_keys "$KEYTOOL"
keys_private() {
	local h m
	for h in "${MESH_HOSTS[@]}"; do
		m=$(stat -c %a "${MESH_KEY[$h]}")
		echo "$h.key mode $m"
		[[ $m == 600 ]] || return 1
	done
}
check "genkey: key files are mode 0600" keys_private
mesh_write_config "$PT_DIR/mesh.yaml"
if [[ $MESH_IMPL == peer ]]; then
	for h in "${MESH_HOSTS[@]}"; do
		check "peer check accepts mesh.yaml with $h's key" "$BIN" check -config "$MESH_CONFIG" -key "${MESH_KEY[$h]}"
	done
fi

log "starting nodes"
check "nodes start and bring their interfaces up" mesh_start "$BIN"
((PT_FAILED == 0)) || exit 1

log "ping every ordered pair over both tunnel families"
for a in "${MESH_HOSTS[@]}"; do
	for b in "${MESH_HOSTS[@]}"; do
		[[ $a != "$b" ]] || continue
		check "ping $a -> $b $(mesh_v4 "$b")" pt_await_ping 10 "${MESH_NS[$a]}" "$(mesh_v4 "$b")"
		check "ping $a -> $b $(mesh_v6 "$b")" pt_await_ping 10 "${MESH_NS[$a]}" "$(mesh_v6 "$b")"
	done
done

log "20 MiB TCP transfers, each pair and family, SHA-256 checked on both ends"
PAYLOAD=$PT_DIR/payload.bin
pt_make_payload "$PAYLOAD" 20
port=5001
for pair in alpha:beta alpha:gamma beta:gamma; do
	a=${pair%:*} b=${pair#*:}
	check "tcp $a -> $b $(mesh_v4 "$b")" pt_tcp_transfer "${MESH_NS[$a]}" "${MESH_NS[$b]}" "$(mesh_v4 "$b")" $((port++)) "$PAYLOAD"
	check "tcp $b -> $a $(mesh_v6 "$a")" pt_tcp_transfer "${MESH_NS[$b]}" "${MESH_NS[$a]}" "$(mesh_v6 "$a")" $((port++)) "$PAYLOAD"
done

log "routed subnet: alpha -> lan3 host behind gamma"
check "ping alpha -> lan3 $LAN3_V4" pt_await_ping 10 "${MESH_NS[alpha]}" "$LAN3_V4"
check "ping alpha -> lan3 $LAN3_V6" pt_await_ping 10 "${MESH_NS[alpha]}" "$LAN3_V6"
check "tcp alpha -> lan3 $LAN3_V4" pt_tcp_transfer "${MESH_NS[alpha]}" "$LAN3_NS" "$LAN3_V4" $((port++)) "$PAYLOAD"
check "tcp alpha -> lan3 $LAN3_V6" pt_tcp_transfer "${MESH_NS[alpha]}" "$LAN3_NS" "$LAN3_V6" $((port++)) "$PAYLOAD"

# status_ok HOST: `peer status -json` is valid JSON naming both other peers, each with a
# handshake and received bytes; the human
# form works too. Both are kept in the run directory and shown with -v.
status_ok() {
	local h=$1 out=$PT_DIR/status-$1.json
	mesh_status "$h" -json >"$out"
	cat "$out"
	python3 - "$out" "$h" "${MESH_HOSTS[@]}" <<-'EOF'
		import json, sys
		path, me, hosts = sys.argv[1], sys.argv[2], sys.argv[3:]
		doc = json.load(open(path))
		strings = []
		def walk(v):
		    if isinstance(v, dict):
		        for k, x in v.items():
		            strings.append(str(k)); walk(x)
		    elif isinstance(v, list):
		        for x in v: walk(x)
		    else:
		        strings.append(str(v))
		walk(doc)
		missing = [h for h in hosts if h != me and h not in strings]
		if missing:
		    sys.exit("status of %s does not mention peers %s" % (me, missing))
		# With the schema peer has ({"peers": [{"name", "last_handshake", "rx_bytes"}]}),
		# every other peer must show a handshake and received bytes after the transfers.
		for p in doc.get("peers", []) if isinstance(doc, dict) else []:
		    if p.get("name") in hosts and p.get("name") != me:
		        if not p.get("last_handshake") or not p.get("rx_bytes"):
		            sys.exit("status of %s: peer %s has no handshake or no rx bytes" % (me, p.get("name")))
	EOF
	mesh_status "$h"
}
if [[ $MESH_IMPL == peer ]]; then
	for h in "${MESH_HOSTS[@]}"; do
		check "peer status -json of $h names the other peers" status_ok "$h"
	done
else
	for h in "${MESH_HOSTS[@]}"; do
		ip netns exec "${MESH_NS[$h]}" wg show "${MESH_IFACE[$h]}" >"$PT_DIR/status-$h.txt"
	done
	[[ -z ${PT_VERBOSE:-} ]] || cat "$PT_DIR/status-alpha.txt"
fi

# stopped_clean HOST: SIGTERM ends the node within 5 s and its interface and routes to
# the other peers' prefixes are gone.
# roam: alpha's underlay address changes from 10.99.0.1 to 10.99.0.11 mid-session. alpha
# speaks first from the new address; beta, which only knows 10.99.0.1 from mesh.yaml, must
# follow the last authenticated packet and answer there.
roam() {
	local ns=${MESH_NS[alpha]}
	ip netns exec "$ns" sysctl -q -w net.ipv4.conf.eth0.promote_secondaries=1
	ip -n "$ns" addr add 10.99.0.11/24 dev eth0
	ip -n "$ns" addr del 10.99.0.1/24 dev eth0
	pt_await_ping 10 "$ns" "$(mesh_v4 beta)" || { echo "alpha cannot reach beta after moving"; return 1; }
	pt_await_ping 10 "${MESH_NS[beta]}" "$(mesh_v4 alpha)" || { echo "beta cannot reach alpha after it moved"; return 1; }
	if [[ $MESH_IMPL == peer ]]; then
		mesh_status beta -json | grep -q '"10.99.0.11:51820"' || {
			echo "beta's status does not show alpha at 10.99.0.11:51820:"
			mesh_status beta
			return 1
		}
	fi
}
log "roaming"
check "roaming: beta follows alpha from 10.99.0.1 to 10.99.0.11" roam

stopped_clean() {
	local h=$1 ns=${MESH_NS[$1]} r
	pt_stop "${MESH_PID[$h]}" 5 || { echo "$h did not exit within 5s of SIGTERM"; return 1; }
	if ip -n "$ns" link show dev "${MESH_IFACE[$h]}" >/dev/null 2>&1; then
		echo "$h: ${MESH_IFACE[$h]} still exists"
		return 1
	fi
	# gamma's own lan0 routes to lan3 stay, of course.
	r=$( (ip -n "$ns" route show; ip -n "$ns" -6 route show) | grep -v 'dev lan0' |
		grep -E '10\.10\.0\.|10\.20\.3\.|fd10::|fd20:3::' || true)
	[[ -z $r ]] || { echo "$h: routes left behind:"; echo "$r"; return 1; }
}
log "shutdown"
for h in "${MESH_HOSTS[@]}"; do
	check "$h exits on SIGTERM and removes its interface and routes" stopped_clean "$h"
done

pt_summary "mesh-test ($MESH_IMPL${PT_WGGO_VERSION:+ $PT_WGGO_VERSION})"
