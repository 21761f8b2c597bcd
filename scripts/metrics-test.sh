#!/usr/bin/env bash
# metrics-test.sh: the Prometheus metrics of running nodes (issue 11), in network namespaces.
#
#   bash scripts/metrics-test.sh [--bin PATH] [-v]
#
# The three hosts of scripts/topology.sh run one mesh file that says
# `metrics: 127.0.0.1:9586`; beta overrides it with `-metrics [::1]:9587`. Inside each
# namespace, `curl` of /metrics must pass `promtool check metrics` (Debian's prometheus
# package) and hold the series the issue names, the Go runtime's and the process's. Then:
# alpha's rx/tx byte and packet counters of beta grow across a ping to beta; peer_up is 1
# on both ends of that session and 0 for gamma, which alpha never spoke to; the handshake
# counts by role and the last handshake time agree; the metrics are not reachable from
# another host (loopback only) and beta's flag replaced the file's address; a reload that
# removes gamma removes its series and counts in peer_reloads_total (promtool still
# passes); an address that would listen on every interface by
# accident (":9586") is refused, on the command line and in the file (exit 2, FILE:LINE);
# a stopped node serves nothing. Needs root; skips without it (fails if CI=true).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 120 "$@"
source "$PT_LIB_DIR/topology.sh"

pt_peer_args "$@"
require_cmds ip ping curl promtool timeout awk

pt_use_peer
log "testing $BIN"

FILE_ADDR=127.0.0.1:9586 # metrics: of the mesh file (alpha and gamma)
BETA_ADDR=[::1]:9587     # beta's -metrics
declare -A METRICS=([alpha]=$FILE_ADDR [beta]=$BETA_ADDR [gamma]=$FILE_ADDR)
MESH_ARGS[beta]="-metrics $BETA_ADDR"

# write_config: mesh.yaml of the hosts in MESH_HOSTS, with the metrics address.
write_config() {
	mesh_write_config "$PT_DIR/mesh.yaml.new"
	{
		echo "metrics: $FILE_ADDR"
		cat "$PT_DIR/mesh.yaml.new"
	} >"$PT_DIR/mesh.yaml.tmp"
	rm "$PT_DIR/mesh.yaml.new"
	mv "$PT_DIR/mesh.yaml.tmp" "$PT_DIR/mesh.yaml"
	MESH_CONFIG=$PT_DIR/mesh.yaml
}

log "topology: namespaces ${PT_PREFIX}{sw,alpha,beta,gamma,lan3}"
mesh_topology_up
check "underlay: hosts reach each other over IPv4 and IPv6" pt_wait_until 10 mesh_underlay_ok
mesh_keys "$BIN"
write_config

# refused WANT CMD...: CMD exits 2 and says WANT on stderr.
refused() {
	local want=$1 rc=0 err
	shift
	err=$("$@" 2>&1 >/dev/null) || rc=$?
	echo "exit $rc: $err"
	((rc == 2)) && [[ $err == *"$want"* ]]
}
check "-metrics :9586 is refused, saying to write 127.0.0.1:9586 or an explicit address" \
	refused '-metrics ":9586" has no host, which would listen on every interface; write 127.0.0.1:9586' \
	"$BIN" -config "$MESH_CONFIG" -key "${MESH_KEY[alpha]}" -metrics :9586
sed 's/^metrics: .*/metrics: ":9586"/' "$MESH_CONFIG" >"$PT_DIR/bad.yaml"
check "metrics: \":9586\" in the mesh file is refused with FILE:LINE" \
	refused "$PT_DIR/bad.yaml:1: metrics: \":9586\" has no host" "$BIN" check -config "$PT_DIR/bad.yaml"

log "starting nodes"
check "nodes start and bring their interfaces up" mesh_start "$BIN"
((PT_FAILED == 0)) || exit 1

# scrape HOST: /metrics of HOST's node, from inside its namespace.
scrape() {
	ip netns exec "${MESH_NS[$1]}" curl -fsS --max-time 5 "http://${METRICS[$1]}/metrics"
}
# value HOST SERIES: the value of one series (name and labels exactly as exposed).
value() {
	scrape "$1" | awk -v s="$2" '$1 == s {print $2; found=1} END {exit !found}'
}
# serving HOST: the node's /metrics answers (it listens once the device is up).
serving() { scrape "$1" >/dev/null; }
for h in "${MESH_HOSTS[@]}"; do
	check "$h serves /metrics at ${METRICS[$h]}" pt_wait_until 10 serving "$h"
done

# promtool_ok HOST: a scrape passes promtool's parser and linter; kept as HOST.metrics.txt.
promtool_ok() {
	local f=$PT_DIR/$1.metrics.txt
	scrape "$1" >"$f"
	promtool check metrics <"$f"
}
for h in "${MESH_HOSTS[@]}"; do
	check "curl of $h's /metrics passes promtool check metrics" promtool_ok "$h"
done

# has_series HOST PATTERN...: every PATTERN (an extended regexp) matches a line of a scrape.
has_series() {
	local h=$1 text p rc=0
	shift
	text=$(scrape "$h")
	for p in "$@"; do
		grep -Eq -- "$p" <<<"$text" || { echo "missing: $p"; rc=1; }
	done
	return $rc
}
check "alpha's /metrics has the series of issue 11, the Go runtime's and the process's" has_series alpha \
	'^# TYPE peer_rx_bytes_total counter$' '^# TYPE peer_tx_bytes_total counter$' \
	'^# TYPE peer_rx_packets_total counter$' '^# TYPE peer_tx_packets_total counter$' \
	'^# TYPE peer_handshakes_total counter$' '^# TYPE peer_drops_total counter$' \
	'^# TYPE peer_last_handshake_timestamp_seconds gauge$' '^# TYPE peer_up gauge$' \
	'^# TYPE peer_capture_dropped_total counter$' '^peer_capture_dropped_total 0$' \
	'^peer_rx_bytes_total\{peer="beta"\} ' '^peer_rx_bytes_total\{peer="gamma"\} ' \
	'^peer_handshakes_total\{peer="beta",result="timeout"\} 0$' \
	'^peer_drops_total\{peer="",reason="no_route"\} ' '^peer_drops_total\{peer="beta",reason="replay"\} 0$' \
	'^go_goroutines ' '^go_memstats_heap_alloc_bytes ' '^process_resident_memory_bytes ' \
	'^process_cpu_seconds_total ' '^process_open_fds '

# grows_across_ping: alpha's counters of beta, before and after 5 pings to beta.
grows_across_ping() {
	local s before=() after=() i rc=0
	local series=('peer_rx_bytes_total{peer="beta"}' 'peer_tx_bytes_total{peer="beta"}'
		'peer_rx_packets_total{peer="beta"}' 'peer_tx_packets_total{peer="beta"}')
	for s in "${series[@]}"; do before+=("$(value alpha "$s")"); done
	pt_await_ping 10 "${MESH_NS[alpha]}" "$(mesh_v4 beta)" >/dev/null || { echo "ping alpha -> beta failed"; return 1; }
	pt_ping "${MESH_NS[alpha]}" "$(mesh_v4 beta)" 5 >/dev/null || { echo "ping alpha -> beta failed"; return 1; }
	for s in "${series[@]}"; do after+=("$(value alpha "$s")"); done
	scrape alpha >"$PT_DIR/alpha.after-ping.metrics.txt" || true # for the artifacts
	for i in "${!series[@]}"; do
		echo "${series[i]}: ${before[i]} -> ${after[i]}"
		# 5 echo requests out and 5 replies in, each a transport message larger than its
		# 84-byte ICMP packet, whatever else went.
		local least=5
		[[ ${series[i]} == *bytes* ]] && least=$((5 * 84))
		awk -v b="${before[i]}" -v a="${after[i]}" -v l="$least" 'BEGIN {exit !(a - b >= l)}' || rc=1
	done
	return $rc
}
check "alpha's rx and tx counters of beta grow across a ping" grows_across_ping

# is HOST SERIES WANT: the series has the value WANT.
is() {
	local got
	got=$(value "$1" "$2") || { echo "$2: not exposed"; return 1; }
	echo "$2 = $got"
	[[ $got == "$3" ]]
}
check "peer_up is 1 on alpha for beta (a session)" is alpha 'peer_up{peer="beta"}' 1
check "peer_up is 1 on beta for alpha (the responder, confirmed)" is beta 'peer_up{peer="alpha"}' 1
check "peer_up is 0 on alpha for gamma (never spoken to)" is alpha 'peer_up{peer="gamma"}' 0

# handshakes_agree: alpha initiated the handshake with beta and beta answered it; alpha's
# last handshake time is within the last minute and none failed or timed out.
handshakes_agree() {
	local now last rc=0
	is alpha 'peer_handshakes_total{peer="beta",result="completed_initiator"}' 1 || rc=1
	is beta 'peer_handshakes_total{peer="alpha",result="completed_responder"}' 1 || rc=1
	is alpha 'peer_handshakes_total{peer="beta",result="failed"}' 0 || rc=1
	is alpha 'peer_handshakes_total{peer="beta",result="timeout"}' 0 || rc=1
	is alpha 'peer_last_handshake_timestamp_seconds{peer="gamma"}' 0 || rc=1
	last=$(value alpha 'peer_last_handshake_timestamp_seconds{peer="beta"}') || return 1
	now=$(date +%s)
	echo "last handshake with beta: $last, now $now"
	awk -v l="$last" -v n="$now" 'BEGIN {exit !(l > n - 60 && l <= n + 1)}' || rc=1
	return $rc
}
check "handshake counts by role and the last handshake time agree" handshakes_agree

# loopback_only: alpha's metrics port does not answer on its underlay address, from beta.
loopback_only() {
	if ip netns exec "${MESH_NS[beta]}" curl -fsS --max-time 3 -o /dev/null "http://10.99.0.1:9586/metrics"; then
		echo "alpha's metrics answer on 10.99.0.1:9586"
		return 1
	fi
	if ip netns exec "${MESH_NS[beta]}" curl -fsS --max-time 3 -o /dev/null "http://$FILE_ADDR/metrics"; then
		echo "beta serves the file's address $FILE_ADDR despite -metrics $BETA_ADDR"
		return 1
	fi
}
check "metrics listen on loopback only, and beta's -metrics replaced the file's address" loopback_only

log "reload: gamma leaves the mesh"
MESH_HOSTS=(alpha beta)
write_config
reloaded() { ip netns exec "${MESH_NS[alpha]}" "$BIN" reload -socket "${MESH_SOCK[alpha]}"; }
check "peer reload on alpha removes gamma" reloaded
gamma_gone() {
	local text
	text=$(scrape alpha)
	grep -q 'peer="gamma"' <<<"$text" && { echo "gamma still in alpha's /metrics"; return 1; }
	grep -q '^peer_up{peer="beta"} 1$' <<<"$text" || { echo "beta's session not shown after the reload"; return 1; }
}
check "alpha's /metrics drop gamma's series and keep beta's" gamma_gone
check "alpha counts the reload: peer_reloads_total{result=\"reloaded\"} 1" is alpha 'peer_reloads_total{result="reloaded"}' 1
check "alpha's last reload succeeded: peer_last_reload_successful 1" is alpha 'peer_last_reload_successful' 1
check "curl of alpha's /metrics after the reload passes promtool check metrics" promtool_ok alpha
MESH_HOSTS=(alpha beta gamma)

log "shutdown"
stopped() {
	pt_stop "${MESH_PID[alpha]}" 5 || { echo "alpha did not exit on SIGTERM"; return 1; }
	if scrape alpha >/dev/null 2>&1; then
		echo "alpha's metrics still answer after it stopped"
		return 1
	fi
}
check "a stopped node serves no metrics" stopped

pt_summary "metrics-test"
