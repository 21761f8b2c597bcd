#!/usr/bin/env bash
# demo.sh: peer's main job, shown end to end on one machine.
#
#   sudo bash scripts/demo.sh [--bin PATH] [-v]
#
# Builds ./peer, makes three hosts alpha, beta and gamma as network namespaces on a shared
# switch (plus the lan3 network behind gamma; see scripts/topology.sh), gives them keys from
# `peer genkey` and one mesh.yaml, and runs `peer` on each. Then every host pings the
# others over the tunnel (IPv4 and IPv6), alpha pings the lan3 host through gamma, and
# `peer status` of alpha is shown. Everything is torn down at the end, or on Ctrl-C.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 120 "$@"
source "$PT_LIB_DIR/topology.sh"

pt_peer_args "$@"
require_cmds ip ping go

# demo_ping NS ADDR: waits for the tunnel, then 3 pings summed up on one line.
demo_ping() {
	local out
	pt_wait_until 10 pt_ping_once "$1" "$2" || { echo "no reply from $2"; return 1; }
	out=$(pt_ping "$1" "$2" 3) || { echo "$out"; return 1; }
	awk -F'[ /]' '/packets transmitted/ {r = $4 "/" $1 " replies"} /^rtt/ {a = ", rtt avg " $8 " ms"} END {print r a}' <<<"$out"
}

pt_use_peer

log "three hosts on one switch: ${MESH_HOSTS[*]} (namespaces ${PT_PREFIX}*), lan3 behind gamma"
mesh_topology_up
pt_wait_until 10 mesh_underlay_ok || die "underlay does not work"
mesh_keys "$BIN"
mesh_write_config "$PT_DIR/mesh.yaml"
log "the mesh file every host runs (each with its own -key):"
sed 's/^/    /' "$MESH_CONFIG"

log "starting: peer -config mesh.yaml -key KEY -iface pN -socket N.sock, in each host"
PT_VERBOSE=1 check "peer runs on alpha, beta and gamma" mesh_start "$BIN"
((PT_FAILED == 0)) || exit 1

for a in "${MESH_HOSTS[@]}"; do
	for b in "${MESH_HOSTS[@]}"; do
		[[ $a != "$b" ]] || continue
		PT_VERBOSE=1 check "$a pings $b at $(mesh_v4 "$b")" demo_ping "${MESH_NS[$a]}" "$(mesh_v4 "$b")"
		PT_VERBOSE=1 check "$a pings $b at $(mesh_v6 "$b")" demo_ping "${MESH_NS[$a]}" "$(mesh_v6 "$b")"
	done
done
PT_VERBOSE=1 check "alpha pings the lan3 host $LAN3_V4 through gamma" demo_ping "${MESH_NS[alpha]}" "$LAN3_V4"
PT_VERBOSE=1 check "alpha pings the lan3 host $LAN3_V6 through gamma" demo_ping "${MESH_NS[alpha]}" "$LAN3_V6"

log "routes peer installed on alpha:"
(ip -n "${MESH_NS[alpha]}" route show dev p1; ip -n "${MESH_NS[alpha]}" -6 route show dev p1) | sed 's/^/    /'
log "peer status -socket ${MESH_SOCK[alpha]}  (alpha):"
mesh_status alpha | sed 's/^/    /' || fail "peer status of alpha"

log "tearing down"
pt_summary demo
