#!/usr/bin/env bash
# wg-test.sh: the unmodified wg(8) of wireguard-tools against running peer nodes, over the
# WireGuard userspace API each node serves on /var/run/wireguard/<iface>.sock.
#
#   bash scripts/wg-test.sh [--bin PATH] [-v]
#
# Builds ./peer (unless --bin), runs the three-host mesh of scripts/topology.sh, pings
# every pair, then on every node: `wg show IFACE` and `wg show IFACE dump` list every other
# peer with its endpoint (gamma's over IPv6), its allowed IPs, a handshake of the last
# minute and transfer counters; latest-handshakes, transfer, endpoints and allowed-ips
# agree with the dump; the counters grow across a ping; `wg showconf` parses back to the
# node's key and peers; `wg set` fails with "Operation not supported" and the node logs
# why; after `peer reload` of a mesh file without gamma, wg no longer lists gamma; the
# socket is mode 0600 and goes with the node. /var/run/wireguard is shared by every
# namespace, so interface names carry the run's prefix and cleanup removes the sockets.
# Needs root; skips without it (fails if CI=true).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 150 "$@"
source "$PT_LIB_DIR/topology.sh"

pt_peer_args "$@"
require_cmds ip ping wg python3 timeout stat
pt_use_peer
log "testing $BIN with $(wg --version | head -n 1)"

log "topology: namespaces ${PT_PREFIX}{sw,alpha,beta,gamma,lan3}"
mesh_topology_up
check "underlay: hosts reach each other over IPv4 and IPv6" pt_wait_until 10 mesh_underlay_ok
mesh_keys "$BIN"
mesh_write_config "$PT_DIR/mesh.yaml"

# wg_spawn HOST: starts HOST's node on interface $PT_PREFIX<N> (unique on the machine, as
# its wg socket must be) and registers the removal of its wg socket.
wg_spawn() {
	local h=$1
	MESH_IFACE[$h]=${PT_PREFIX}${MESH_N[$h]}
	MESH_SOCK[$h]=$PT_DIR/${MESH_N[$h]}.sock
	MESH_LOG[$h]=$PT_DIR/$h.log
	pt_add_log "$h" "${MESH_LOG[$h]}"
	pt_on_cleanup "rm -f /var/run/wireguard/${MESH_IFACE[$h]}.sock"
	pt_spawn "${MESH_NS[$h]}" "${MESH_LOG[$h]}" "$BIN" -config "$MESH_CONFIG" -key "${MESH_KEY[$h]}" \
		-iface "${MESH_IFACE[$h]}" -socket "${MESH_SOCK[$h]}" -v
	MESH_PID[$h]=$PT_LAST_PID
}

wg_start() {
	local h
	for h in "${MESH_HOSTS[@]}"; do
		wg_spawn "$h"
	done
	pt_wait_until 15 mesh_all_settled || true
	for h in "${MESH_HOSTS[@]}"; do
		pt_alive "${MESH_PID[$h]}" || { echo "$h: node exited during start-up"; return 1; }
		mesh_node_settled "$h" || { echo "$h: ${MESH_IFACE[$h]} not up"; return 1; }
		pt_wait_until 5 test -S "/var/run/wireguard/${MESH_IFACE[$h]}.sock" ||
			{ echo "$h: no wg socket /var/run/wireguard/${MESH_IFACE[$h]}.sock"; return 1; }
		echo "$h: ${MESH_IFACE[$h]} up, wg socket /var/run/wireguard/${MESH_IFACE[$h]}.sock"
	done
}
log "starting nodes"
check "nodes start with their wg sockets" wg_start
((PT_FAILED == 0)) || exit 1

log "ping every pair, so that every pair has a handshake"
for pair in alpha:beta alpha:gamma beta:gamma; do
	a=${pair%:*} b=${pair#*:}
	check "ping $a -> $b" pt_await_ping 10 "${MESH_NS[$a]}" "$(mesh_v4 "$b")"
done

# wgx HOST ARGS...: wg(8) run in HOST's namespace.
wgx() {
	local h=$1
	shift
	ip netns exec "${MESH_NS[$h]}" wg "$@"
}

# allowed HOST: the allowed IPs every node lists for HOST, in the order of the mesh file.
allowed() {
	local a="$(mesh_v4 "$1")/32,$(mesh_v6 "$1")/128"
	[[ $1 != gamma ]] || a+=",$MESH_SUBNET4,$MESH_SUBNET6"
	echo "$a"
}

# endpoint_seen OBSERVER HOST: the endpoint OBSERVER's node has for HOST once HOST has
# spoken: gamma's endpoint is IPv6, so gamma and its peers talk over IPv6 and gamma
# follows the others to their IPv6 addresses (the last authenticated packet's source).
endpoint_seen() {
	if [[ $1 == gamma || $2 == gamma ]]; then
		echo "[fd99::${MESH_N[$2]}]:$MESH_PORT"
	else
		echo "10.99.0.${MESH_N[$2]}:$MESH_PORT"
	fi
}

# show_ok HOST: `wg show IFACE` names the interface, its public key (the private one
# hidden), the port, and every other peer with endpoint, allowed IPs, handshake, transfer.
show_ok() {
	local h=$1 out=$PT_DIR/wg-show-$1.txt o
	wgx "$h" show "${MESH_IFACE[$h]}" >"$out"
	cat "$out"
	python3 - "$out" "${MESH_IFACE[$h]}" "${MESH_PUB[$h]}" "$MESH_PORT" "$(
		for o in "${MESH_HOSTS[@]}"; do
			[[ $o == "$h" ]] || printf '%s %s %s\n' "${MESH_PUB[$o]}" "$(endpoint_seen "$h" "$o")" "$(allowed "$o")"
		done
	)" <<-'EOF'
		import sys
		path, iface, pub, port, peers = sys.argv[1:]
		text = open(path).read()
		blocks = text.split("\n\n")
		def fields(block):
		    out = {}
		    for line in block.strip().splitlines():
		        k, _, v = line.strip().partition(": ")
		        out[k] = v
		    return out
		dev = fields(blocks[0])
		want = {"interface": iface, "public key": pub, "private key": "(hidden)", "listening port": port}
		for k, v in want.items():
		    if dev.get(k) != v:
		        sys.exit("interface section: %s is %r, want %r" % (k, dev.get(k), v))
		got = {fields(b)["peer"]: fields(b) for b in blocks[1:] if b.strip()}
		for line in peers.splitlines():
		    key, ep, allowed = line.split()
		    p = got.get(key)
		    if p is None:
		        sys.exit("peer %s not listed" % key)
		    if p.get("endpoint") != ep:
		        sys.exit("peer %s: endpoint %r, want %r" % (key, p.get("endpoint"), ep))
		    if p.get("allowed ips") != allowed.replace(",", ", "):
		        sys.exit("peer %s: allowed ips %r, want %r" % (key, p.get("allowed ips"), allowed))
		    hs = p.get("latest handshake", "")
		    if hs != "Now" and (not hs.endswith("seconds ago") and not hs.endswith("second ago") or "minute" in hs):
		        sys.exit("peer %s: latest handshake %r, want seconds ago" % (key, hs))
		    if "received" not in p.get("transfer", "") or "sent" not in p.get("transfer", ""):
		        sys.exit("peer %s: transfer %r" % (key, p.get("transfer")))
		if len(got) != len(peers.splitlines()):
		    sys.exit("%d peers listed, want %d" % (len(got), len(peers.splitlines())))
	EOF
}

# dump_ok HOST: `wg show IFACE dump` (tab-separated): the interface line with both keys and
# the port, one line per other peer with endpoint, allowed IPs, a handshake of the last
# minute and non-zero counters; latest-handshakes, transfer, endpoints and allowed-ips
# print the same values.
dump_ok() {
	# The dump holds the private key: a .keys file, which PT_ARTIFACTS does not keep.
	local h=$1 out=$PT_DIR/wg-dump-$1.keys o sub
	wgx "$h" show "${MESH_IFACE[$h]}" dump >"$out"
	sed '1s/^[^\t]*/(private key)/' "$out"
	for sub in latest-handshakes transfer endpoints allowed-ips; do
		wgx "$h" show "${MESH_IFACE[$h]}" "$sub" >"$PT_DIR/wg-$sub-$h.txt"
	done
	python3 - "$out" "$PT_DIR" "$h" "$(cat "${MESH_KEY[$h]}")" "${MESH_PUB[$h]}" "$MESH_PORT" "$(date +%s)" "$(
		for o in "${MESH_HOSTS[@]}"; do
			[[ $o == "$h" ]] || printf '%s %s %s\n' "${MESH_PUB[$o]}" "$(endpoint_seen "$h" "$o")" "$(allowed "$o")"
		done
	)" <<-'EOF'
		import sys
		path, d, host, priv, pub, port, now, peers = sys.argv[1:]
		lines = [l.split("\t") for l in open(path).read().splitlines()]
		if lines[0] != [priv, pub, port, "off"]:
		    sys.exit("interface line %r, want [private key, %s, %s, off]" % (lines[0][1:], pub, port))
		got = {l[0]: l for l in lines[1:]}
		want = [l.split() for l in peers.splitlines()]
		if len(got) != len(want):
		    sys.exit("%d peer lines, want %d" % (len(got), len(want)))
		def sub(name):
		    return {k: v for k, v in (l.split("\t", 1) for l in open("%s/wg-%s-%s.txt" % (d, name, host)).read().splitlines())}
		hs, tr, eps, ips = sub("latest-handshakes"), sub("transfer"), sub("endpoints"), sub("allowed-ips")
		for key, ep, allowed in want:
		    p = got.get(key)
		    if p is None:
		        sys.exit("peer %s not in the dump" % key)
		    _, psk, pep, pips, phs, rx, tx, ka = p
		    if psk != "(none)" or pep != ep or pips != allowed or ka != "off":
		        sys.exit("peer %s: %r, want psk (none), endpoint %s, allowed %s, keepalive off" % (key, p[1:], ep, allowed))
		    if int(phs) == 0 or not 0 <= int(now) - int(phs) < 60:
		        sys.exit("peer %s: latest handshake %s, %d s before now" % (key, phs, int(now) - int(phs)))
		    if int(rx) == 0 or int(tx) == 0:
		        sys.exit("peer %s: rx %s tx %s" % (key, rx, tx))
		    if hs[key] != phs or tr[key] != rx + "\t" + tx or eps[key] != ep or ips[key] != allowed.replace(",", " "):
		        sys.exit("peer %s: subcommands disagree with the dump: %r %r %r %r" % (key, hs[key], tr[key], eps[key], ips[key]))
	EOF
}

for h in "${MESH_HOSTS[@]}"; do
	check "wg show ${MESH_IFACE[$h]} ($h) lists every peer: endpoint, allowed ips, handshake, transfer" show_ok "$h"
	check "wg show ${MESH_IFACE[$h]} dump ($h) and its subcommands agree and are recent" dump_ok "$h"
done

# all_lists HOST: plain `wg show` (every interface on the machine) includes HOST's.
all_lists() {
	local out
	out=$(wgx "$1" show)
	[[ $out == *"interface: ${MESH_IFACE[$1]}"* ]] || { echo "$out"; return 1; }
	wgx "$1" show interfaces | tr ' ' '\n' | grep -qxF -- "${MESH_IFACE[$1]}"
}
check "wg show and wg show interfaces list alpha's interface" all_lists alpha

# transfer_of HOST PEER: "rx tx" of PEER as HOST's node reports it to wg.
transfer_of() {
	wgx "$1" show "${MESH_IFACE[$1]}" transfer | awk -v k="${MESH_PUB[$2]}" '$1 == k {print $2, $3}'
}
# grows: alpha's counters for beta grow by at least five echo requests and replies.
grows() {
	local before after
	before=$(transfer_of alpha beta)
	pt_ping "${MESH_NS[alpha]}" "$(mesh_v4 beta)" 5 >/dev/null
	after=$(transfer_of alpha beta)
	echo "alpha's rx tx for beta: before $before, after $after"
	read -r rx0 tx0 <<<"$before"
	read -r rx1 tx1 <<<"$after"
	((rx1 >= rx0 + 5 * 84 && tx1 >= tx0 + 5 * 84))
}
check "transfer counters grow across a ping" grows

# showconf_ok HOST: `wg showconf` is a configuration wg's own format parses back to the
# node's private key and port and the other peers' keys, endpoints and allowed IPs.
showconf_ok() {
	# showconf holds the private key: a .keys file, which PT_ARTIFACTS does not keep.
	local h=$1 out=$PT_DIR/wg-showconf-$1.keys o
	wgx "$h" showconf "${MESH_IFACE[$h]}" >"$out"
	python3 - "$out" "$(cat "${MESH_KEY[$h]}")" "$MESH_PORT" "$(
		for o in "${MESH_HOSTS[@]}"; do
			[[ $o == "$h" ]] || printf '%s %s %s\n' "${MESH_PUB[$o]}" "$(endpoint_seen "$h" "$o")" "$(allowed "$o")"
		done
	)" <<-'EOF'
		import sys
		path, priv, port, peers = sys.argv[1:]
		sections, cur = [], None
		for line in open(path).read().splitlines():
		    line = line.strip()
		    if not line or line.startswith("#"):
		        continue
		    if line in ("[Interface]", "[Peer]"):
		        cur = {"": line}
		        sections.append(cur)
		        continue
		    k, sep, v = line.partition(" = ")
		    if not sep or cur is None:
		        sys.exit("line %r is not 'Key = value' inside a section" % line)
		    cur[k] = v
		if not sections or sections[0] != {"": "[Interface]", "PrivateKey": priv, "ListenPort": port}:
		    sys.exit("interface section %r" % (sections[:1],))
		got = {s["PublicKey"]: s for s in sections[1:]}
		for key, ep, allowed in (l.split() for l in peers.splitlines()):
		    want = {"": "[Peer]", "PublicKey": key, "AllowedIPs": allowed.replace(",", ", "), "Endpoint": ep}
		    if got.get(key) != want:
		        sys.exit("peer section %r, want %r" % (got.get(key), want))
		if len(got) != len(peers.splitlines()):
		    sys.exit("%d peer sections" % len(got))
	EOF
}
check "wg showconf ${MESH_IFACE[alpha]} parses back to alpha's key, port and peers" showconf_ok alpha

# set_refused: `wg set` fails with the errno's text, the node logs why, and wg still reads.
set_refused() {
	local rc=0 err
	err=$(wgx alpha set "${MESH_IFACE[alpha]}" listen-port 4242 2>&1) || rc=$?
	echo "wg set: exit $rc: $err"
	((rc != 0)) && [[ $err == *"Operation not supported"* ]] || return 1
	pt_wait_until 5 grep -q 'wg set refused: the mesh file is the source of truth' "${MESH_LOG[alpha]}" || {
		echo "no log line on the node"
		return 1
	}
	grep 'wg set refused' "${MESH_LOG[alpha]}"
	wgx alpha show "${MESH_IFACE[alpha]}" listen-port | grep -qx "$MESH_PORT"
}
check "wg set fails with 'Operation not supported'; the node logs to edit the mesh file and reload" set_refused

mode_600() {
	local m
	m=$(stat -c %a "/var/run/wireguard/${MESH_IFACE[alpha]}.sock")
	echo "mode $m"
	[[ $m == 600 ]]
}
check "the wg socket is mode 0600" mode_600

# reload_drops_gamma: alpha reloads a mesh file without gamma; wg follows without restart.
reload_drops_gamma() {
	local conf=$MESH_CONFIG hosts=("${MESH_HOSTS[@]}") out
	MESH_HOSTS=(alpha beta)
	mesh_write_config "$conf.tmp" # replaced by rename, as an editor does
	MESH_HOSTS=("${hosts[@]}") MESH_CONFIG=$conf
	mv "$conf.tmp" "$conf"
	ip netns exec "${MESH_NS[alpha]}" "$BIN" reload -socket "${MESH_SOCK[alpha]}" || return 1
	out=$(wgx alpha show "${MESH_IFACE[alpha]}" dump)
	echo "$out"
	[[ $out != *"${MESH_PUB[gamma]}"* && $out == *"${MESH_PUB[beta]}"* ]]
}
check "after peer reload without gamma, wg show lists beta only" reload_drops_gamma

socket_gone() {
	pt_stop "${MESH_PID[alpha]}" 5 || { echo "alpha did not exit on SIGTERM"; return 1; }
	[[ ! -e /var/run/wireguard/${MESH_IFACE[alpha]}.sock ]] || { echo "socket left"; return 1; }
	! wgx alpha show "${MESH_IFACE[alpha]}" >/dev/null 2>&1
}
check "the wg socket goes with the node" socket_gone

pt_summary "wg-test"
