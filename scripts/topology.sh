# shellcheck shell=bash
# topology.sh: the three-host mesh shared by mesh-test.sh and demo.sh. Source after lib.sh
# and pt_init.
#
#   alpha (10.99.0.1, fd99::1) ─┐
#   beta  (10.99.0.2, fd99::2) ─┼─ br0 in namespace "sw"
#   gamma (10.99.0.3, fd99::3) ─┘
#     └── lan0 10.20.3.1, fd20:3::1 ── lan3 host 10.20.3.2, fd20:3::2 (default route via gamma)
#
# Tunnel addresses are 10.10.0.N/24 and fd10::N/64; gamma also routes 10.20.3.0/24 and
# fd20:3::/64 for the lan3 host behind it (gamma forwards). Gamma's endpoint is written as
# [fd99::3]:51820 so that packets to and from it travel over the IPv6 underlay.

MESH_HOSTS=(alpha beta gamma)
declare -gA MESH_N=([alpha]=1 [beta]=2 [gamma]=3)
declare -gA MESH_NS MESH_IFACE MESH_SOCK MESH_LOG MESH_PID MESH_KEY MESH_PUB
# MESH_ARGS[HOST]: extra command-line flags for HOST's node (split on spaces).
declare -gA MESH_ARGS
MESH_PORT=51820
MESH_SUBNET4=10.20.3.0/24
MESH_SUBNET6=fd20:3::/64
LAN3_V4=10.20.3.2
LAN3_V6=fd20:3::2
MESH_IMPL=peer # or wireguard-go (reference run that proves the harness itself)
# MESH_SUBNETS[HOST]: the subnets mesh.yaml routes to HOST besides its addresses, as the
# inside of a YAML list (the wireguard-go reference configuration knows gamma's only).
declare -gA MESH_SUBNETS=([gamma]="$MESH_SUBNET4, $MESH_SUBNET6")
# MESH_ENDPOINT[HOST], when set, replaces HOST's endpoint in mesh.yaml; empty means none
# (fault-test.sh points beta at a relay and gives alpha no endpoint).
declare -gA MESH_ENDPOINT=()
# MESH_EXTRA[HOST]: more keys of HOST's entry in mesh.yaml, one per line without the
# indentation ("exit: true", "relay: true").
declare -gA MESH_EXTRA=()
MESH_MTU=1420     # the tunnel MTU of mesh.yaml (and of the wireguard-go reference)
MESH_LOG_SUFFIX= # mesh_start writes $PT_DIR/HOST$MESH_LOG_SUFFIX.log (one set of logs per mesh)

# mesh_v4 / mesh_v6 HOST: the host's tunnel address (no prefix length).
mesh_v4() { echo "10.10.0.${MESH_N[$1]}"; }
mesh_v6() { echo "fd10::${MESH_N[$1]}"; }

# mesh_endpoint HOST: the host's underlay endpoint as written in mesh.yaml.
mesh_endpoint() {
	if [[ -v MESH_ENDPOINT[$1] ]]; then
		echo "${MESH_ENDPOINT[$1]}"
	elif [[ $1 == gamma ]]; then
		echo "[fd99::3]:$MESH_PORT"
	else
		echo "10.99.0.${MESH_N[$1]}:$MESH_PORT"
	fi
}

# mesh_switch_host VAR NAME N: a namespace NAME on the switch (eth0 = 10.99.0.N/24,
# fd99::N/64, on port N of br0); stores its name in VAR. Call after mesh_topology_up for
# hosts that are not mesh members (a relay, an attacker).
mesh_switch_host() {
	local n=$3
	pt_netns "$1" "$2"
	pt_veth "${!1}" eth0 "$MESH_SW" "port$n"
	ip -n "$MESH_SW" link set "port$n" master br0
	pt_addr "${!1}" eth0 "10.99.0.$n/24"
	pt_addr "${!1}" eth0 "fd99::$n/64"
}

# mesh_topology_up builds the namespaces, the switch and the lan3 segment.
mesh_topology_up() {
	local h
	pt_netns MESH_SW sw
	pt_bridge "$MESH_SW" br0
	for h in "${MESH_HOSTS[@]}"; do
		mesh_switch_host "MESH_NS[$h]" "$h" "${MESH_N[$h]}"
	done
	mesh_lan LAN3_NS gamma 3
}

# mesh_lan VAR HOST N: a LAN segment 10.20.N.0/24, fd20:N::/64 behind HOST (which
# forwards): HOST's lan0 is 10.20.N.1, fd20:N::1, and the one host on it, namespace lanN
# (stored in VAR), is 10.20.N.2, fd20:N::2 with its default routes via HOST. The mesh
# file routes the segment to HOST only if MESH_SUBNETS[HOST] says so.
mesh_lan() {
	local ns=${MESH_NS[$2]} n=$3
	pt_netns "$1" "lan$n"
	pt_veth "$ns" lan0 "${!1}" eth0
	pt_addr "$ns" lan0 "10.20.$n.1/24"
	pt_addr "$ns" lan0 "fd20:$n::1/64"
	pt_addr "${!1}" eth0 "10.20.$n.2/24"
	pt_addr "${!1}" eth0 "fd20:$n::2/64"
	ip -n "${!1}" route add default via "10.20.$n.1"
	ip -n "${!1}" -6 route add default via "fd20:$n::1"
	ip netns exec "$ns" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
}

# mesh_underlay_ok: every host reaches every other over both underlay families.
mesh_underlay_ok() {
	local a b
	for a in "${MESH_HOSTS[@]}"; do
		for b in "${MESH_HOSTS[@]}"; do
			[[ $a != "$b" ]] || continue
			pt_ping_once "${MESH_NS[$a]}" "10.99.0.${MESH_N[$b]}" || { echo "$a -> $b v4"; return 1; }
			pt_ping_once "${MESH_NS[$a]}" "fd99::${MESH_N[$b]}" || { echo "$a -> $b v6"; return 1; }
		done
	done
	pt_ping_once "$LAN3_NS" 10.20.3.1 && pt_ping_once "$LAN3_NS" fd20:3::1
}

# mesh_keys BIN: a private key per host (mode 0600) with `BIN genkey`, public with `BIN pubkey`.
mesh_keys() {
	local bin=$1 h k
	mkdir -p "$PT_DIR/keys"
	for h in "${MESH_HOSTS[@]}"; do
		k=$PT_DIR/keys/$h.key
		(umask 077 && "$bin" genkey >"$k")
		MESH_KEY[$h]=$k
		MESH_PUB[$h]=$("$bin" pubkey <"$k")
	done
}

# mesh_write_config FILE: the one mesh file every host runs with.
mesh_write_config() {
	local f=$1 h line
	{
		echo "# Test mesh of scripts/$(basename "$0") (written by topology.sh); each host runs it with its own -key."
		echo "interface:"
		echo "  mtu: $MESH_MTU"
		echo "peers:"
		for h in "${MESH_HOSTS[@]}"; do
			echo "  - name: $h"
			echo "    public_key: \"${MESH_PUB[$h]}\""
			echo "    address: [$(mesh_v4 "$h")/24, $(mesh_v6 "$h")/64]"
			[[ -z ${MESH_SUBNETS[$h]:-} ]] || echo "    subnets: [${MESH_SUBNETS[$h]}]"
			[[ -z $(mesh_endpoint "$h") ]] || echo "    endpoint: \"$(mesh_endpoint "$h")\""
			[[ -z ${MESH_EXTRA[$h]:-} ]] || while IFS= read -r line; do echo "    $line"; done <<<"${MESH_EXTRA[$h]}"
		done
	} >"$f"
	MESH_CONFIG=$f
}

# mesh_node_settled HOST: the node is up with both tunnel addresses, or its process died
# (the caller tells which by checking the process).
mesh_node_settled() {
	local h=$1 ns=${MESH_NS[$1]} ifc=${MESH_IFACE[$1]}
	pt_alive "${MESH_PID[$h]}" || return 0
	pt_iface_ready "$ns" "$ifc" "$(mesh_v4 "$h")" "$(mesh_v6 "$h")"
}

mesh_all_settled() {
	local h
	for h in "${MESH_HOSTS[@]}"; do
		mesh_node_settled "$h" || return 1
	done
}

# mesh_spawn_node BIN HOST: starts `peer` for HOST in its namespace (interface pN, control
# socket $PT_DIR/N.sock, output to MESH_LOG[HOST]) and sets MESH_PID[HOST]. It does
# not wait; mesh_start does, and a test restarting a node waits with mesh_node_settled.
mesh_spawn_node() {
	local bin=$1 h=$2
	MESH_IFACE[$h]=p${MESH_N[$h]}
	MESH_SOCK[$h]=$PT_DIR/${MESH_N[$h]}.sock
	local extra=()
	read -r -a extra <<<"${MESH_ARGS[$h]:-}"
	pt_spawn "${MESH_NS[$h]}" "${MESH_LOG[$h]}" "$bin" -config "$MESH_CONFIG" -key "${MESH_KEY[$h]}" \
		-iface "${MESH_IFACE[$h]}" -socket "${MESH_SOCK[$h]}" -v "${extra[@]}"
	MESH_PID[$h]=$PT_LAST_PID
}

# mesh_start BIN: starts a node in every host and waits until each has its tunnel
# interface up. With MESH_IMPL=wireguard-go, BIN is wireguard-go and the same mesh is
# configured with wg(8) and ip(8) instead.
mesh_start() {
	local bin=$1 h ok=0
	for h in "${MESH_HOSTS[@]}"; do
		MESH_LOG[$h]=$PT_DIR/$h$MESH_LOG_SUFFIX.log
		pt_add_log "$h" "${MESH_LOG[$h]}"
		if [[ $MESH_IMPL == peer ]]; then
			mesh_spawn_node "$bin" "$h"
		else
			MESH_IFACE[$h]=${PT_PREFIX}w${MESH_N[$h]}
			pt_wggo_start "${MESH_NS[$h]}" "${MESH_IFACE[$h]}" "${MESH_LOG[$h]}" "$bin" || return 1
			MESH_PID[$h]=$PT_WGGO_PID
			mesh_configure_wggo "$h"
		fi
	done
	pt_wait_until 15 mesh_all_settled || true
	for h in "${MESH_HOSTS[@]}"; do
		if ! pt_alive "${MESH_PID[$h]}"; then
			echo "$h: node exited during start-up"
			ok=1
		elif ! mesh_node_settled "$h"; then
			echo "$h: ${MESH_IFACE[$h]} not up with its addresses after 15s"
			ip -n "${MESH_NS[$h]}" -br addr show
			ok=1
		else
			echo "$h: ${MESH_IFACE[$h]} up (pid ${MESH_PID[$h]})"
		fi
	done
	return $ok
}

# mesh_configure_wggo HOST: the reference configuration of HOST with wg(8) and ip(8).
mesh_configure_wggo() {
	local h=$1 o ns=${MESH_NS[$1]} ifc=${MESH_IFACE[$1]} allowed
	ip netns exec "$ns" wg set "$ifc" listen-port "$MESH_PORT" private-key "${MESH_KEY[$h]}"
	for o in "${MESH_HOSTS[@]}"; do
		[[ $o != "$h" ]] || continue
		allowed="$(mesh_v4 "$o")/32,$(mesh_v6 "$o")/128"
		[[ $o != gamma ]] || allowed+=",$MESH_SUBNET4,$MESH_SUBNET6"
		ip netns exec "$ns" wg set "$ifc" peer "${MESH_PUB[$o]}" allowed-ips "$allowed" endpoint "$(mesh_endpoint "$o")"
	done
	ip -n "$ns" link set "$ifc" mtu "$MESH_MTU" up
	pt_addr "$ns" "$ifc" "$(mesh_v4 "$h")/24"
	pt_addr "$ns" "$ifc" "$(mesh_v6 "$h")/64"
	if [[ $h != gamma ]]; then
		ip -n "$ns" route add "$MESH_SUBNET4" dev "$ifc"
		ip -n "$ns" -6 route add "$MESH_SUBNET6" dev "$ifc"
	fi
}

# mesh_status HOST [ARGS...]: `peer status` of HOST's node.
mesh_status() {
	local h=$1
	shift
	ip netns exec "${MESH_NS[$h]}" "$MESH_BIN" status -socket "${MESH_SOCK[$h]}" "$@"
}
