#!/usr/bin/env bash
# exit-test.sh: exit nodes (exit: true, use_exit: NAME), in network namespaces.
#
#   bash scripts/exit-test.sh [--bin PATH] [--no-clamp] [-v]
#
#   client 192.0.2.1 ─┐                       internet 203.0.113.2, 2001:db8:ffff::2
#   exit   192.0.2.2 ─┼─ br0 (namespace sw)     │ (its only link: no route to the mesh,
#   third  192.0.2.3 ─┘   2001:db8::N/64 too    │  the lan or the underlay)
#     │                                       exit inet0 203.0.113.1, 2001:db8:ffff::1
#     └── lan0 10.20.1.1, fd20:1::1 (MTU 1500) ── lan host 10.20.1.2, fd20:1::2
#
# One mesh file: exit says exit: true; client says use_exit: exit and routes the lan
# (subnets 10.20.1.0/24, fd20:1::/64); third is a plain peer. Tunnel addresses 10.10.0.N/24,
# fd10::N/64, MTU 1420. Endpoints: client and third 192.0.2.N:51820 on the underlay's
# subnet; the exit 198.51.100.2:51820, an address of its own that the client reaches by
# its default route, as an exit on the internet would be. The client's default routes
# (both families) go to the exit's underlay address, so anything leaking past the tunnel
# is really sent (and forwarded by the exit); the exit's default routes go to the
# internet host. The client has rp_filter=1 (strict) on eth0: the exit's datagrams come
# from behind the default route, which the policy routing suppresses for unmarked
# packets, so they pass only with the mark restored. The client also forwards (set here,
# as its operator would: it routes the lan). The internet host drops every ICMP and
# ICMPv6 error it receives (a path-MTU black hole), first shown to drop a
# port-unreachable of each family from the exit.
# Before any node starts: `peer check` accepts the file for each key, `peer routes` prints
# the client's policy routing (table 51820, suppress_prefixlength) and the exit's
# masquerade, and the client cannot reach the internet host. Then, with the three nodes up:
#   0. the client has `not fwmark 51820 table 51820` and `table main suppress_prefixlength 0`
#      for both families and default routes of both into the tunnel in table 51820; the
#      exit has ip_forward and IPv6 forwarding on; both have the nft table inet peer-IFACE;
#      the client pings the exit's tunnel address.
#   1. the client downloads a random file of 4 MiB (CLIENT_MIB) over HTTP from the internet
#      host, over IPv4 and over IPv6, each within 20 s, with the file's SHA-256;
#   2. the HTTP server logged those requests from the exit's 203.0.113.1 / 2001:db8:ffff::1
#      only (the masquerade);
#   3. a capture of the client's eth0 during both downloads holds at least the file's bytes
#      twice in UDP between the client's and the exit's endpoints, no TCP at all, and no
#      other IP packet (allowed: ARP, IPv6 neighbour discovery, packets from link-local or
#      unspecified addresses);
#   4. the client pings third's tunnel addresses (both families) and a capture of its eth0
#      shows 5 echoes of 1000 bytes (BIG_PING) per family in datagrams to and from third's
#      endpoint and no datagram that large to or from the exit's;
#   5. the lan host (MTU 1500, behind the client) downloads 20 MiB (LAN_MIB) from the
#      internet host within 20 s, with the right SHA-256, over IPv4 and IPv6 (served to
#      the exit's addresses, as in 2): the internet
#      host's full-sized segments do not fit the tunnel and it never hears why, so only
#      the clamping of the forwarded SYNs' MSS (on the client and on the exit) gets them
#      through;
#   6. every node exits on SIGTERM within 5 s, with no WARN or ERROR in its log, and then `ip rule`, `ip -6 rule`, `ip route show table
#      all`, `ip -6 route show table all`, `nft list ruleset` and the sysctls
#      net.ipv4.ip_forward, net.ipv4.conf.*.{forwarding,rp_filter,src_valid_mark} and
#      net.ipv6.conf.*.forwarding of the client and of the exit are byte for byte what
#      they were before the nodes started (the diff is printed when not).
#   7. a node of the client and one of the exit, each started again and killed with
#      SIGKILL (which leaves its rules, nft table, sysctls and state file), are undone by
#      the script `peer routes -down` prints: it restores the sysctls from the state file
#      and removes it, and the same comparison as 6 holds.
# Needs root; skips without it (fails if CI=true). Prints what it measured.
#
# --no-clamp proves that check 5 can fail: once the nodes are up the MSS clamp rules (those
# with "maxseg") are deleted from the client's and the exit's nft tables, and the lan
# downloads must then FAIL (the run exits 1) while the black hole's counters show the
# ICMP errors it swallowed. A --no-clamp run that passes means check 5 proves nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 180 "$@"
source "$PT_LIB_DIR/topology.sh"

BIN='' CLAMP=yes
while (($#)); do
	case $1 in
	--bin) BIN=$2; shift 2 ;;
	--bin=*) BIN=${1#--bin=}; shift ;;
	--no-clamp) CLAMP=no; shift ;;
	-v) PT_VERBOSE=1; shift ;;
	*) echo "usage: $0 [--bin PATH] [--no-clamp] [-v]" >&2; exit 2 ;;
	esac
done
require_cmds ip nft python3 curl sha256sum ping timeout dumpcap tshark awk ss
pt_use_peer
log "testing $BIN"
[[ $CLAMP == yes ]] || log "--no-clamp: the MSS clamp rules are deleted; the lan downloads must fail"

# What is asked, defined here once.
MESH_HOSTS=(client exit third)
declare -gA MESH_N=([client]=1 [exit]=2 [third]=3)
MTU=1420 # the tunnel's
UL4=192.0.2 UL6=2001:db8:: # underlay: HOST is $UL4.N/24 and ${UL6}N/64
INET4_EXIT=203.0.113.1 INET4_HOST=203.0.113.2 INET6_EXIT=2001:db8:ffff::1 INET6_HOST=2001:db8:ffff::2
LAN_SUBNET4=10.20.1.0/24 LAN_SUBNET6=fd20:1::/64
LAN4_GW=10.20.1.1 LAN6_GW=fd20:1::1 LAN4_HOST=10.20.1.2 LAN6_HOST=fd20:1::2
LAN_LINK_MTU=1500
POLICY_MARK=51820 POLICY_TABLE=51820 # fwmark of the client's socket, its routing table
HTTP_PORT=8080
CLIENT_MIB=4 CLIENT_SECS=20 # the client's own downloads (checks 1-3)
LAN_MIB=20 LAN_SECS=20      # the lan host's downloads (check 5)
BIG_PING=1000 BIG_PINGS=5   # echo payload and count per family to third (check 4)
# The sysctls compared in check 6 (a regular expression over `sysctl -a`).
SYSCTLS='^net\.ipv4\.(ip_forward|conf\.[^.]+\.(forwarding|rp_filter|src_valid_mark)) |^net\.ipv6\.conf\.[^.]+\.forwarding '
# The nodes' interfaces are pN in their own namespaces; the userspace API socket in the
# shared /var/run/wireguard is not wanted here.
declare -gA MESH_ARGS=([client]="-wg-socket none" [exit]="-wg-socket none" [third]="-wg-socket none")

ul4() { echo "$UL4.${MESH_N[$1]}"; }
ul6() { echo "$UL6${MESH_N[$1]}"; }
# ep4 HOST: the address of HOST's endpoint. The exit's is not on the underlay's subnet
# but an address of its own behind the client's default route, as an exit on the
# internet would be: so the client's strict rp_filter accepts the exit's datagrams only
# when they carry the restored mark (the route back to the exit is then the default route,
# which the main table's rule suppresses for everything else).
EXIT_EP4=198.51.100.2
ep4() { if [[ $1 == exit ]]; then echo "$EXIT_EP4"; else ul4 "$1"; fi; }
declare -gA MESH_ENDPOINT=([client]="$(ep4 client):$MESH_PORT" [exit]="$(ep4 exit):$MESH_PORT" [third]="$(ep4 third):$MESH_PORT")

# ---- topology ----

log "topology: namespaces ${PT_PREFIX}{sw,client,exit,third,internet,lan}"
pt_netns SW_NS sw
pt_bridge "$SW_NS" br0
for h in "${MESH_HOSTS[@]}"; do
	pt_netns "MESH_NS[$h]" "$h"
	pt_veth "${MESH_NS[$h]}" eth0 "$SW_NS" "port${MESH_N[$h]}"
	ip -n "$SW_NS" link set "port${MESH_N[$h]}" master br0
	pt_addr "${MESH_NS[$h]}" eth0 "$(ul4 "$h")/24"
	pt_addr "${MESH_NS[$h]}" eth0 "$(ul6 "$h")/64"
done
C_NS=${MESH_NS[client]} E_NS=${MESH_NS[exit]} T_NS=${MESH_NS[third]}

pt_netns INET_NS internet
pt_veth "$E_NS" inet0 "$INET_NS" eth0
pt_addr "$E_NS" inet0 "$INET4_EXIT/24"
pt_addr "$E_NS" inet0 "$INET6_EXIT/64"
pt_addr "$INET_NS" eth0 "$INET4_HOST/24"
pt_addr "$INET_NS" eth0 "$INET6_HOST/64"
ip -n "$E_NS" route add default via "$INET4_HOST"
ip -n "$E_NS" -6 route add default via "$INET6_HOST"

pt_netns LAN_NS lan
pt_veth "$C_NS" lan0 "$LAN_NS" eth0
ip -n "$C_NS" link set lan0 mtu "$LAN_LINK_MTU"
ip -n "$LAN_NS" link set eth0 mtu "$LAN_LINK_MTU"
pt_addr "$C_NS" lan0 "$LAN4_GW/24"
pt_addr "$C_NS" lan0 "$LAN6_GW/64"
pt_addr "$LAN_NS" eth0 "$LAN4_HOST/24"
pt_addr "$LAN_NS" eth0 "$LAN6_HOST/64"
ip -n "$LAN_NS" route add default via "$LAN4_GW"
ip -n "$LAN_NS" -6 route add default via "$LAN6_GW"

# The client: default routes to the exit's underlay address, a subnet router for the
# lan, strict reverse-path filtering on its underlay.
ip -n "$C_NS" route add default via "$(ul4 exit)"
ip -n "$C_NS" -6 route add default via "$(ul6 exit)"
# The exit's endpoint address: the exit speaks to the underlay from it (its ARP from its
# underlay address, which the client's rp_filter accepts), third reaches it by a route.
pt_addr "$E_NS" eth0 "$EXIT_EP4/32"
ip -n "$E_NS" route replace "$UL4.0/24" dev eth0 proto kernel scope link src "$EXIT_EP4"
ip netns exec "$E_NS" sysctl -q -w net.ipv4.conf.eth0.arp_announce=2
ip -n "$T_NS" route add "$EXIT_EP4" via "$(ul4 exit)"
ip netns exec "$C_NS" sysctl -q -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.eth0.rp_filter=1

underlay_ok() {
	local a b
	for a in client third; do
		for b in "${MESH_HOSTS[@]}"; do
			[[ $a != "$b" ]] || continue
			pt_ping_once "${MESH_NS[$a]}" "$(ul4 "$b")" || { echo "$a -> $b v4"; return 1; }
			pt_ping_once "${MESH_NS[$a]}" "$(ul6 "$b")" || { echo "$a -> $b v6"; return 1; }
		done
	done
	pt_ping_once "$C_NS" "$EXIT_EP4" && pt_ping_once "$T_NS" "$EXIT_EP4" &&
		pt_ping_once "$E_NS" "$INET4_HOST" && pt_ping_once "$E_NS" "$INET6_HOST" &&
		pt_ping_once "$LAN_NS" "$LAN4_GW" && pt_ping_once "$LAN_NS" "$LAN6_GW"
}
check "underlay: client, exit, third reach each other and the exit's endpoint; exit reaches internet; lan reaches client" \
	pt_wait_until 10 underlay_ok

# no_route_back: the internet host has no route to the mesh, the lan or the underlay, so
# only the exit's masquerade can bring replies back.
no_route_back() {
	local a
	for a in "$(ul4 client)" "$(mesh_v4 client)" "$LAN4_HOST" "$(ul6 client)" "$(mesh_v6 client)" "$LAN6_HOST"; do
		if ip -n "$INET_NS" route get "$a" 2>&1; then
			echo "the internet host routes $a"
			return 1
		fi
	done
}
check "the internet host has no route to the underlay, the mesh or the lan" no_route_back

# ---- the internet host: the ICMP black hole and the HTTP servers ----

ip netns exec "$INET_NS" nft -f - <<-EOF
	table inet blackhole {
		counter icmp4 { }
		counter icmp6 { }
		chain pre {
			type filter hook prerouting priority -300; policy accept;
			icmp type { destination-unreachable, source-quench, time-exceeded, parameter-problem } counter name icmp4 drop
			icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem } counter name icmp6 drop
		}
	}
EOF

# blackhole_count FAMILY: ICMP errors (icmp4 or icmp6) the internet host has dropped.
blackhole_count() {
	ip netns exec "$INET_NS" nft list counter inet blackhole "$1" | awk '$1 == "packets" {print $2}'
}
# blackhole_above FAMILY N: the black hole has dropped more than N errors of FAMILY.
blackhole_above() { (($(blackhole_count "$1") > $2)); }
# blackhole_works: a datagram to a closed port of the exit, of each family, earns an
# ICMP port-unreachable that the black hole counts (and drops).
blackhole_works() {
	local f n0 addr
	for f in icmp4 icmp6; do
		n0=$(blackhole_count "$f")
		addr=$INET4_EXIT
		[[ $f == icmp4 ]] || addr=$INET6_EXIT
		ip netns exec "$INET_NS" bash -c "echo probe >/dev/udp/$addr/9" 2>/dev/null || true
		pt_wait_until 3 blackhole_above "$f" "$n0" || { echo "no $f error counted"; return 1; }
		echo "$f: the port-unreachable from $addr was dropped ($(blackhole_count "$f") so far)"
	done
}
check "the internet host drops ICMP and ICMPv6 errors (a port-unreachable from the exit each)" blackhole_works

pt_tmpdir WWW
pt_make_payload "$WWW/client.bin" "$CLIENT_MIB"
pt_make_payload "$WWW/lan.bin" "$LAN_MIB"
HTTP4_LOG=$PT_DIR/http4.log HTTP6_LOG=$PT_DIR/http6.log
pt_add_log http4 "$HTTP4_LOG"
pt_add_log http6 "$HTTP6_LOG"
pt_spawn "$INET_NS" "$HTTP4_LOG" python3 -u -m http.server --bind "$INET4_HOST" --directory "$WWW" "$HTTP_PORT"
pt_spawn "$INET_NS" "$HTTP6_LOG" python3 -u -m http.server --bind "$INET6_HOST" --directory "$WWW" "$HTTP_PORT"
http_up() { (($(ip netns exec "$INET_NS" ss -Hltn "sport = :$HTTP_PORT" | wc -l) == 2)); }
check "HTTP servers listen on $INET4_HOST and [$INET6_HOST] port $HTTP_PORT" pt_wait_until 10 http_up
URL4=http://$INET4_HOST:$HTTP_PORT URL6=http://[$INET6_HOST]:$HTTP_PORT

# ---- helpers ----

# fetch NS URL FILE SECS KEY: curl in NS downloads URL (at most SECS s) and must get the
# size and SHA-256 of FILE; "BYTES bytes in T s (R Mbit/s)" goes to MEASURED[KEY].
declare -A MEASURED
fetch() {
	local ns=$1 url=$2 file=$3 secs=$4 key=$5 rc=0 out stats want got
	out=$PT_DIR/fetch-$key.bin
	stats=$(ip netns exec "$ns" curl -sS -g --noproxy '*' --max-time "$secs" -o "$out" \
		-w '%{size_download} %{time_total}' "$url") || rc=$?
	want="$(stat -c %s "$file") $(sha256sum <"$file" | cut -d' ' -f1)"
	got="none (no file)"
	[[ ! -e $out ]] || got="$(stat -c %s "$out") $(sha256sum <"$out" | cut -d' ' -f1)"
	rm -f -- "$out"
	MEASURED[$key]=$(awk -v s="$stats" 'BEGIN{split(s, a, " "); printf "%d bytes in %.2f s (%.0f Mbit/s)", a[1], a[2], (a[2] > 0 ? a[1] * 8 / a[2] / 1e6 : 0)}')
	[[ $rc == 0 ]] || MEASURED[$key]="curl exit $rc after ${MEASURED[$key]}"
	echo "curl $url: ${MEASURED[$key]}"
	echo "  want: $want"
	echo "  got:  $got"
	((rc == 0)) && [[ $got == "$want" ]]
}

# served_only_to LOG PATH ADDR: the HTTP server's LOG has requests for PATH, all from ADDR.
served_only_to() {
	local lines others
	lines=$(grep -F "\"GET $2 " "$1" || true)
	echo "$lines"
	[[ -n $lines ]] || { echo "no request for $2 in $(basename "$1")"; return 1; }
	others=$(awk -v a="$3" '$1 != a' <<<"$lines")
	[[ -z $others ]] || { echo "requests from other addresses than $3"; return 1; }
}

# wg_flow FROM TO: display filter for datagrams from host FROM's endpoint to TO's.
wg_flow() {
	echo "(ip.src == $(ep4 "$1") && ip.dst == $(ep4 "$2") && udp.srcport == $MESH_PORT && udp.dstport == $MESH_PORT)"
}

# snapshot NS FILE: the routing, firewall and forwarding state check 6 compares.
snapshot() {
	local ns=$1
	{
		echo "## ip rule"
		ip -n "$ns" rule
		echo "## ip -6 rule"
		ip -n "$ns" -6 rule
		echo "## ip route show table all"
		ip -n "$ns" route show table all
		echo "## ip -6 route show table all"
		ip -n "$ns" -6 route show table all
		echo "## nft list ruleset"
		ip netns exec "$ns" nft list ruleset
		echo "## sysctl"
		ip netns exec "$ns" sysctl -a 2>/dev/null | grep -E "$SYSCTLS" | sort
	} >"$2" 2>&1
}

# same_state HOST: HOST's state now is its snapshot from before the nodes started.
same_state() {
	local h=$1
	snapshot "${MESH_NS[$h]}" "$PT_DIR/state-$h-after.txt"
	if diff -u "$PT_DIR/state-$h-before.txt" "$PT_DIR/state-$h-after.txt"; then
		echo "identical: $(wc -l <"$PT_DIR/state-$h-after.txt") lines (rules, routes, ruleset, sysctls)"
		return 0
	fi
	return 1
}

# ll_settled NS: every link of NS but lo has its IPv6 link-local address, and no address
# is tentative (the kernel adds their local routes only then, and they are in the snapshot).
ll_settled() {
	local ifc
	[[ -z $(ip -n "$1" -6 addr show tentative) ]] || return 1
	for ifc in $(ip -n "$1" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
		[[ $ifc == lo ]] && continue
		[[ -n $(ip -n "$1" -6 addr show dev "$ifc" scope link) ]] || return 1
	done
	ip -n "$1" -6 route show table local | grep -q '^local fe80::'
}

# ---- before the nodes ----

# The kernel's router solicitations into the new TUN would ride to the exit as data
# (::/0 goes there); none, so that the captures hold only what the checks make.
for h in "${MESH_HOSTS[@]}"; do
	ip netns exec "${MESH_NS[$h]}" sysctl -q -w net.ipv6.conf.default.router_solicitations=0
done
for h in client exit; do
	check "$h: IPv6 link-local addresses settled before the snapshot" pt_wait_until 10 ll_settled "${MESH_NS[$h]}"
	snapshot "${MESH_NS[$h]}" "$PT_DIR/state-$h-before.txt"
done

mesh_keys "$BIN"
MESH_MTU=$MTU
MESH_SUBNETS=([client]="$LAN_SUBNET4, $LAN_SUBNET6")
MESH_EXTRA=([client]="use_exit: exit" [exit]="exit: true")
mesh_write_config "$PT_DIR/mesh.yaml"
[[ -z ${PT_VERBOSE:-} ]] || sed 's/^/    | /' "$MESH_CONFIG"

for h in "${MESH_HOSTS[@]}"; do
	check "peer check accepts the mesh with $h's key" "$BIN" check -config "$MESH_CONFIG" -key "${MESH_KEY[$h]}"
done
# plan_has HOST TEXT...: `peer routes` for HOST prints every TEXT.
plan_has() {
	local h=$1 plan t
	shift
	plan=$("$BIN" routes -config "$MESH_CONFIG" -key "${MESH_KEY[$h]}") || { echo "peer routes failed"; return 1; }
	echo "$plan"
	for t in "$@"; do
		[[ $plan == *"$t"* ]] || { echo "the plan lacks \"$t\""; return 1; }
	done
}
check "peer routes for the client prints its policy routing" plan_has client "$POLICY_TABLE" suppress_prefixlength
check "peer routes for the exit prints its masquerade" plan_has exit masquerade
unreachable_before() {
	! pt_ping_once "$C_NS" "$INET4_HOST" && ! pt_ping_once "$C_NS" "$INET6_HOST"
}
check "before the nodes start, the client cannot reach the internet host" unreachable_before

# ---- the nodes ----

log "starting the nodes"
check "client, exit and third start" mesh_start "$BIN"
((PT_FAILED == 0)) || exit 1
C_IF=${MESH_IFACE[client]}

# 0. what the nodes set up
client_policy() {
	local fam out
	for fam in -4 -6; do
		out=$(ip -n "$C_NS" "$fam" rule)
		echo "ip $fam rule:"
		echo "$out"
		[[ $out == *"not from all fwmark $(printf '%#x' "$POLICY_MARK") lookup $POLICY_TABLE"* ]] ||
			{ echo "no 'not fwmark $POLICY_MARK table $POLICY_TABLE' rule ($fam)"; return 1; }
		[[ $out == *"from all lookup main suppress_prefixlength 0"* ]] ||
			{ echo "no 'table main suppress_prefixlength 0' rule ($fam)"; return 1; }
		out=$(ip -n "$C_NS" "$fam" route show table "$POLICY_TABLE")
		echo "ip $fam route show table $POLICY_TABLE:"
		echo "$out"
		[[ $out == *"default dev $C_IF"* ]] || { echo "no default route into $C_IF in table $POLICY_TABLE ($fam)"; return 1; }
	done
}
check "the client's policy routing: fwmark and suppress_prefixlength rules, table $POLICY_TABLE, both families" client_policy
exit_forwards() {
	local v
	v=$(ip netns exec "$E_NS" sysctl -n net.ipv4.ip_forward net.ipv6.conf.all.forwarding | tr '\n' ' ')
	echo "exit: net.ipv4.ip_forward, net.ipv6.conf.all.forwarding = $v"
	[[ $v == "1 1 " ]]
}
check "the exit forwards, IPv4 and IPv6" exit_forwards
for h in client exit; do
	check "$h has the nft table inet peer-${MESH_IFACE[$h]}" ip netns exec "${MESH_NS[$h]}" nft list table inet "peer-${MESH_IFACE[$h]}"
done
# The tunnel to the exit comes up with the first packet; the checks below are about
# steady traffic, not the handshake.
check "the client pings the exit's tunnel address" pt_await_ping 10 "$C_NS" "$(mesh_v4 exit)"

# --no-clamp: delete every rule with "maxseg" from the client's and the exit's tables.
# unclamp HOST: deletes them from HOST's table (there must be one at least).
unclamp() {
	local ns=${MESH_NS[$1]} tbl=peer-${MESH_IFACE[$1]} rules chain handle n=0
	rules=$(ip netns exec "$ns" nft -a list table inet "$tbl" |
		awk '$1 == "chain" {c = $2} /maxseg/ {print c, $NF}')
	while read -r chain handle; do
		[[ -n $chain ]] || continue
		ip netns exec "$ns" nft delete rule inet "$tbl" "$chain" handle "$handle" || return 1
		echo "deleted rule $handle of chain $chain"
		n=$((n + 1))
	done <<<"$rules"
	((n > 0)) || { echo "no rule with maxseg in table inet $tbl"; ip netns exec "$ns" nft list table inet "$tbl"; return 1; }
	ip netns exec "$ns" nft list table inet "$tbl"
}

# ---- 1-3: the client's own traffic goes out through the exit, and only through it ----

log "1-3. the client downloads $CLIENT_MIB MiB from the internet host, IPv4 and IPv6"
CAP1=$PT_DIR/client-eth0-downloads.pcapng
# The probe: an echo request to every node on the link, from a link-local address
# (noise the analysis allows).
ll_probe() { ip netns exec "$C_NS" ping -6 -n -q -c 1 -W 1 ff02::1%eth0 >/dev/null 2>&1 || true; }
check "capture of the client's eth0 starts" pt_capture_start "$C_NS" eth0 "$CAP1" "" ll_probe
check "1. the client downloads $CLIENT_MIB MiB over IPv4: same SHA-256" fetch "$C_NS" "$URL4/client.bin" "$WWW/client.bin" "$CLIENT_SECS" client4
check "1. the client downloads $CLIENT_MIB MiB over IPv6: same SHA-256" fetch "$C_NS" "$URL6/client.bin" "$WWW/client.bin" "$CLIENT_SECS" client6
pt_capture_stop_settled "$CAP1"
check "2. the internet host served the IPv4 download to the exit's $INET4_EXIT only" served_only_to "$HTTP4_LOG" /client.bin "$INET4_EXIT"
check "2. the internet host served the IPv6 download to the exit's $INET6_EXIT only" served_only_to "$HTTP6_LOG" /client.bin "$INET6_EXIT"

# underlay_only_tunnel: the capture of both downloads.
UL_BYTES=
underlay_only_tunnel() {
	local lines in_bytes out_bytes want allowed ok=0
	want=$((2 * CLIENT_MIB * 1024 * 1024))
	lines=$(pt_tfields "$CAP1" "$(wg_flow exit client)" udp.length) || return 1
	in_bytes=$(awk '{s += $1} END {print s + 0}' <<<"$lines")
	lines=$(pt_tfields "$CAP1" "$(wg_flow client exit)" udp.length) || return 1
	out_bytes=$(awk '{s += $1} END {print s + 0}' <<<"$lines")
	UL_BYTES="$in_bytes bytes of UDP from the exit's endpoint, $out_bytes to it"
	echo "$UL_BYTES"
	((in_bytes >= want)) || { echo "want at least $want bytes (the two downloads) from $EXIT_EP4:$MESH_PORT"; ok=1; }
	lines=$(pt_tfields "$CAP1" tcp frame.number) || return 1
	if [[ -n $lines ]]; then
		echo "TCP on the underlay ($(wc -l <<<"$lines") frames):"
		pt_tlist "$CAP1" tcp
		ok=1
	fi
	allowed="arp || $(wg_flow exit client) || $(wg_flow client exit) || ipv6.src == fe80::/10 || ipv6.src == :: || (icmpv6.type >= 133 && icmpv6.type <= 137)"
	lines=$(pt_tfields "$CAP1" "!($allowed) && !tcp" frame.number) || return 1
	if [[ -n $lines ]]; then
		echo "other packets on the underlay ($(wc -l <<<"$lines") frames):"
		pt_tlist "$CAP1" "!($allowed) && !tcp"
		ok=1
	fi
	((ok == 0)) && echo "no TCP, nothing else but ARP, neighbour discovery and link-local"
	return $ok
}
check "3. the client's eth0 during the downloads: UDP with the exit's endpoint, no TCP, nothing else" underlay_only_tunnel

# ---- 4: the mesh stays direct ----

log "4. the client pings third directly"
check "4. the client pings third's $(mesh_v4 third)" pt_await_ping 10 "$C_NS" "$(mesh_v4 third)"
check "4. the client pings third's $(mesh_v6 third)" pt_await_ping 10 "$C_NS" "$(mesh_v6 third)"
CAP2=$PT_DIR/client-eth0-third.pcapng
udp_probe() { ip netns exec "$C_NS" bash -c "echo probe >/dev/udp/$(ul4 third)/9" 2>/dev/null || true; }
check "capture of the client's eth0 (UDP) starts" pt_capture_start "$C_NS" eth0 "$CAP2" udp udp_probe
big_pings() {
	local a
	for a in "$(mesh_v4 third)" "$(mesh_v6 third)"; do
		ip netns exec "$C_NS" ping -n -q -c "$BIG_PINGS" -i 0.2 -W 2 -s "$BIG_PING" "$a" || return 1
	done
}
check "4. $BIG_PINGS pings of $BIG_PING bytes to each of third's addresses" big_pings
pt_capture_stop_settled "$CAP2"
THIRD_DGRAMS=
direct_to_third() {
	local big="udp.length > $BIG_PING" to fro ex
	to=$(pt_tfields "$CAP2" "$(wg_flow client third) && $big" frame.number | wc -l) || return 1
	fro=$(pt_tfields "$CAP2" "$(wg_flow third client) && $big" frame.number | wc -l) || return 1
	ex=$(pt_tfields "$CAP2" "($(wg_flow client exit) || $(wg_flow exit client)) && $big" frame.number | wc -l) || return 1
	THIRD_DGRAMS="$to datagrams over $BIG_PING bytes to third's endpoint, $fro from it, $ex to or from the exit's"
	echo "$THIRD_DGRAMS"
	((to >= 2 * BIG_PINGS && fro >= 2 * BIG_PINGS)) || { echo "want $((2 * BIG_PINGS)) each way"; return 1; }
	((ex == 0)) || { pt_tlist "$CAP2" "($(wg_flow client exit) || $(wg_flow exit client)) && $big"; return 1; }
}
check "4. those pings went to third's endpoint $(ep4 third):$MESH_PORT, none to the exit's" direct_to_third

# ---- 5: MSS clamping through a path-MTU black hole ----

if [[ $CLAMP == no ]]; then
	for h in client exit; do
		check "--no-clamp: delete the MSS clamp rules of $h's table" unclamp "$h"
	done
	E5=" (with --no-clamp this must FAIL)"
else
	E5=
fi
log "5. the lan host (MTU $LAN_LINK_MTU) downloads $LAN_MIB MiB through the black hole"
B4_0=$(blackhole_count icmp4) B6_0=$(blackhole_count icmp6)
check "5. the lan host downloads $LAN_MIB MiB over IPv4 within ${LAN_SECS}s: same SHA-256$E5" fetch "$LAN_NS" "$URL4/lan.bin" "$WWW/lan.bin" "$LAN_SECS" lan4
check "5. the lan host downloads $LAN_MIB MiB over IPv6 within ${LAN_SECS}s: same SHA-256$E5" fetch "$LAN_NS" "$URL6/lan.bin" "$WWW/lan.bin" "$LAN_SECS" lan6
BLACKHOLE="ICMP errors swallowed during them: $(($(blackhole_count icmp4) - B4_0)) IPv4, $(($(blackhole_count icmp6) - B6_0)) IPv6"
log "$BLACKHOLE"
lan_served() { served_only_to "$HTTP4_LOG" /lan.bin "$INET4_EXIT" && served_only_to "$HTTP6_LOG" /lan.bin "$INET6_EXIT"; }
check "5. the internet host served the lan downloads to the exit's addresses only" lan_served

# ---- 6: everything undone ----

log "6. SIGTERM to the nodes"
# stopped_clean HOST: SIGTERM ends HOST's node within 5 s, and its log (the whole run)
# has no WARN or ERROR, such as a failure taking the routes and policy down.
stopped_clean() {
	local bad
	pt_stop "${MESH_PID[$1]}" 5 || { echo "still running 5 s after SIGTERM (killed)"; return 1; }
	bad=$(grep -E 'level=(WARN|ERROR)' "${MESH_LOG[$1]}" || true)
	[[ -z $bad ]] || { echo "$bad"; return 1; }
}
for h in "${MESH_HOSTS[@]}"; do
	check "6. $h's node exits on SIGTERM within 5 s, with no WARN or ERROR in its log" stopped_clean "$h"
done
for h in client exit; do
	check "6. $h: rules, routes, nft ruleset and sysctls as before the node started" same_state "$h"
done

# ---- 7: after a crash, `peer routes -down` undoes what the node left ----

log "7. SIGKILL, then the script of peer routes -down"
# crash_then_down HOST: starts HOST's node again, waits for its policy, SIGKILLs it (the
# TUN and its routes go with the process; the rules, the nft table and the sysctls stay,
# and so does the state file beside its socket), then runs the script `peer routes
# -down` prints, which must restore the sysctls from that file and remove it.
crash_then_down() {
	local h=$1 ns=${MESH_NS[$1]} state script
	mesh_spawn_node "$BIN" "$h"
	if ! pt_wait_until 15 mesh_node_settled "$h" || ! pt_alive "${MESH_PID[$h]}"; then
		echo "$h did not come up"
		return 1
	fi
	pt_wait_until 5 ip netns exec "$ns" nft list table inet "peer-${MESH_IFACE[$h]}" || { echo "no nft table"; return 1; }
	kill -KILL "${MESH_PID[$h]}"
	pt_wait_pid_exit "${MESH_PID[$h]}" 5 || { echo "still running after SIGKILL"; return 1; }
	wait "${MESH_PID[$h]}" 2>/dev/null || true
	state=${MESH_SOCK[$h]%.sock}.sysctl
	[[ -s $state ]] || { echo "no state file $state after the crash"; return 1; }
	script=$PT_DIR/down-$h.sh
	"$BIN" routes -config "$MESH_CONFIG" -key "${MESH_KEY[$h]}" -iface "${MESH_IFACE[$h]}" \
		-socket "${MESH_SOCK[$h]}" -down >"$script" || return 1
	cat "$script"
	grep -q "^sysctl -q -w " "$script" || { echo "the script restores no sysctl"; return 1; }
	ip netns exec "$ns" sh "$script" || { echo "the script failed"; return 1; }
	[[ ! -e $state ]] || { echo "the script left $state"; return 1; }
}
for h in client exit; do
	check "7. $h after SIGKILL: peer routes -down restores the saved sysctls and removes the state file" crash_then_down "$h"
	check "7. $h: rules, routes, nft ruleset and sysctls as before the node started" same_state "$h"
done

echo "---- measured"
echo "  client downloads ($CLIENT_MIB MiB): IPv4 ${MEASURED[client4]:-not run}; IPv6 ${MEASURED[client6]:-not run}"
echo "  client's eth0 during them: ${UL_BYTES:-not measured}"
echo "  pings to third: ${THIRD_DGRAMS:-not measured}"
echo "  lan downloads ($LAN_MIB MiB, MSS clamp ${CLAMP/no/deleted}): IPv4 ${MEASURED[lan4]:-not run}; IPv6 ${MEASURED[lan6]:-not run}"
echo "  $BLACKHOLE"
pt_summary "exit-test${E5:+ (--no-clamp)}"
