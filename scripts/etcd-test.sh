#!/usr/bin/env bash
# etcd-test.sh: a fleet whose mesh lives in etcd (issue 13), in network namespaces.
#
#   bash scripts/etcd-test.sh [--bin PATH] [-v]
#
# The hosts of scripts/topology.sh plus delta (10.99.0.4, fd99::4, tunnel 10.10.0.4,
# fd10::4) and "store" (10.99.0.9), all on br0. etcd (Debian's /usr/bin/etcd) runs in store,
# serving clients on http://10.99.0.9:2379 only (its peer port on store's own loopback), its
# data dir in the run's scratch directory. The mesh file is written here and only ever reaches
# the nodes through etcd; every push is `peer mesh push` run in store. Every node runs
# `peer -config etcd://10.99.0.9:2379/fleet -key K -cache $PT_DIR/HOST.mesh.yaml`.
# 1. A push of alpha, beta and gamma exits 0 and prints the one line
#    "pushed revision N: added alpha, beta, gamma; settings changed"; the three nodes start
#    and ping each other over both families.
# 2. A push adding delta prints "pushed revision N: added delta"; delta starts. No signal
#    and no `peer reload` is sent: alpha, beta and gamma, pinging delta every 50 ms from
#    the moment delta's interface is up, must each get a reply within 2 s (DELTA_MS) of the
#    push (timed from ping -D's timestamps, for 5 s, so a late one is measured too; a node
#    whose watch did not work never gets one), and log msg="mesh reloaded" trigger=etcd;
#    delta reaches the three over both families and they reach it over IPv6.
# 3. etcd stops (SIGTERM, exits within 10 s). alpha, gamma and delta log "lost etcd" within
#    15 s (LOST_SECS: the 2 s probe and its 5 s timeout, with room) and run on. beta exits on SIGTERM and starts again with etcd down: its log says "etcd
#    unreachable: started from the cached mesh" and it pings alpha, gamma and delta (both
#    families). Every node's cache file is mode 0600.
# 4. etcd starts again on the same data dir; a push of MTU 1380 (was 1420) and a subnet
#    10.20.4.0/24 for delta prints "pushed revision N: changed delta; settings changed".
#    Every node (beta too, which never read etcd since its restart) must log "etcd back" and
#    show the change within 15 s of the push (RESUME_SECS: the README's retry interval
#    of at most 4 s and its 2 s probe, with room): MTU 1380 in `peer status` and on its interface,
#    10.20.4.0/24 among delta's prefixes (alpha, beta, gamma), and its cache must then be at
#    the new revision. alpha still reaches delta.
# 5. `peer mesh pull` prints "# mesh from etcd://10.99.0.9:2379/fleet at revision N" of the
#    last push, with mtu 1380 and the subnet. Every node exits on SIGTERM within 5 s; etcd
#    exits on SIGTERM and its data dir is removed.
# Needs root; skips without it (fails if CI=true). Prints what it measured.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 150 "$@"
source "$PT_LIB_DIR/topology.sh"

pt_peer_args "$@"
require_cmds ip ping curl etcd timeout awk python3 stat

# What is asked, defined here once.
STORE_N=9                  # store is 10.99.0.9 on br0
ETCD_PORT=2379             # etcd's client port, on store's underlay address only
PREFIX=fleet               # the key prefix of the mesh in etcd
DELTA_MS=2000              # a push adding delta: the others reach it within this, no signal
DELTA_PING_SECS=5          # how long they ping delta from the push (a late reply is still timed)
LOST_SECS=15               # a node logs "lost etcd" within this (2 s probe, 5 s timeout, room for a loaded CI host)
RESUME_SECS=15             # after etcd is back, a push is applied within this (retries up to every 4 s)
NEW_MTU=1380               # what the last push changes: the MTU ...
DELTA_SUBNET=10.20.4.0/24  # ... and a subnet of delta's
STORE_V4=10.99.0.$STORE_N
URL=etcd://$STORE_V4:$ETCD_PORT/$PREFIX
ETCD_DIR=$PT_DIR/etcd      # etcd's data dir, kept across its restart

pt_use_peer
log "testing $BIN against $(etcd --version | head -n 1)"

MESH_HOSTS=(alpha beta gamma delta)
MESH_N[delta]=4
log "topology: namespaces ${PT_PREFIX}{sw,alpha,beta,gamma,delta,lan3,store}"
mesh_topology_up
STORE_NS=
mesh_switch_host STORE_NS store "$STORE_N"
store_ok() { mesh_underlay_ok && pt_ping_once "$STORE_NS" 10.99.0.1 && pt_ping_once "${MESH_NS[delta]}" "$STORE_V4"; }
check "underlay: the hosts reach each other and store" pt_wait_until 10 store_ok
mesh_keys "$BIN"
MESH_FILE=$PT_DIR/mesh.yaml
# The nodes' -config is the etcd URL; each keeps its own cache.
MESH_CONFIG=$URL
for h in "${MESH_HOSTS[@]}"; do
	MESH_ARGS[$h]="-cache $PT_DIR/$h.mesh.yaml"
done

# ---- helpers ----

# write_mesh HOST...: $MESH_FILE with only these hosts (MESH_MTU, MESH_SUBNETS as now).
write_mesh() {
	local saved=("${MESH_HOSTS[@]}")
	MESH_HOSTS=("$@")
	mesh_write_config "$MESH_FILE"
	MESH_HOSTS=("${saved[@]}")
	MESH_CONFIG=$URL
}

# etcd_start: etcd in store on $ETCD_DIR (created the first time, reused after); waits
# until it answers /health. Sets ETCD_PID.
ETCD_STARTS=0
etcd_start() {
	local logf=$PT_DIR/etcd$((++ETCD_STARTS)).log
	pt_add_log "etcd (start $ETCD_STARTS)" "$logf"
	pt_spawn "$STORE_NS" "$logf" etcd --name store --data-dir "$ETCD_DIR" \
		--listen-client-urls "http://$STORE_V4:$ETCD_PORT" --advertise-client-urls "http://$STORE_V4:$ETCD_PORT" \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster store=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
	ETCD_PID=$PT_LAST_PID
	pt_wait_until 15 etcd_healthy || { echo "etcd not healthy after 15s"; tail -n 5 "$logf"; return 1; }
	echo "etcd up (pid $ETCD_PID): $(ip netns exec "$STORE_NS" curl -fsS -m 1 "http://$STORE_V4:$ETCD_PORT/health")"
}

etcd_healthy() { ip netns exec "$STORE_NS" curl -fsS -m 1 "http://$STORE_V4:$ETCD_PORT/health" | grep -q '"health":"true"'; }

# push WANT_RE: `peer mesh push` of $MESH_FILE from store must exit 0 and print one line
# matching WANT_RE (an extended regular expression, anchored). Sets PUSH_REV and PUSH_T0
# (the time just before the push).
push() {
	local out=$PT_DIR/push.out rc=0
	PUSH_T0=${EPOCHREALTIME/./}
	ip netns exec "$STORE_NS" "$BIN" mesh push -config "$MESH_FILE" -to "$URL" >"$out" 2>"$out.err" || rc=$?
	echo "peer mesh push -config $MESH_FILE -to $URL: exit $rc in $(pt_ms_since "$PUSH_T0") ms"
	sed 's/^/  stdout: /' "$out"
	sed 's/^/  stderr: /' "$out.err"
	((rc == 0)) || return 1
	[[ $(wc -l <"$out") == 1 ]] || { echo "want exactly one line"; return 1; }
	grep -q -E "^$1\$" "$out" || { echo "want: $1"; return 1; }
	PUSH_REV=$(sed -n 's/^pushed revision \([0-9]*\):.*/\1/p' "$out")
}

# start_node HOST [TAG] [SECONDS]: starts HOST's node (log $PT_DIR/HOST$TAG.log) and waits
# up to SECONDS (15) until its interface is up with both addresses.
start_node() {
	local h=$1 secs=${3:-15}
	MESH_LOG[$h]=$PT_DIR/$h${2:-}.log
	pt_add_log "$h${2:-}" "${MESH_LOG[$h]}"
	mesh_spawn_node "$BIN" "$h"
	pt_wait_until "$secs" mesh_node_settled "$h" || true
	if ! pt_alive "${MESH_PID[$h]}"; then
		echo "$h: the node exited at start-up:"
		tail -n 5 "${MESH_LOG[$h]}"
		return 1
	fi
	mesh_node_settled "$h" || { echo "$h: ${MESH_IFACE[$h]} not up after ${secs}s"; return 1; }
	echo "$h: ${MESH_IFACE[$h]} up (pid ${MESH_PID[$h]})"
}

# running HOST: the node runs, or says it does not.
running() {
	pt_alive "${MESH_PID[$1]:-none}" && return 0
	echo "$1's node is not running"
	return 1
}

# ping_from HOST ADDR: pt_await_ping from HOST's namespace, at once failing when its node
# is not running.
ping_from() { running "$1" && pt_await_ping 10 "${MESH_NS[$1]}" "$2"; }

# reaches HOST OTHER...: HOST pings each OTHER's tunnel addresses, both families.
reaches() {
	local h=$1 o
	shift
	for o in "$@"; do
		ping_from "$h" "$(mesh_v4 "$o")" && ping_from "$h" "$(mesh_v6 "$o")" || return 1
	done
}

# log_has HOST TEXT: HOST's current log has a line with TEXT (shown).
log_has() { grep -F -- "$2" "${MESH_LOG[$1]}"; }

# status_get HOST EXPR: a Python expression of d (HOST's `peer status -json`) and peer(NAME)
# (that peer's entry, {} when absent), printed.
status_get() {
	local st
	st=$(mesh_status "$1" -json) || return 1
	python3 -c '
import json, sys
d = json.load(sys.stdin)
def peer(n): return next((p for p in d["peers"] if p["name"] == n), {})
print(eval(sys.argv[1]))' "$2" <<<"$st"
}

# ==== 1. three nodes from etcd ====

log "1. etcd in store; the mesh of alpha, beta, gamma pushed; three nodes from etcd"
fails=$PT_FAILED
check "etcd starts in store, listening on $STORE_V4:$ETCD_PORT" etcd_start
write_mesh alpha beta gamma
check "peer mesh push of alpha, beta, gamma: exit 0, one line" push \
	"pushed revision [0-9]+: added alpha, beta, gamma; settings changed"
for h in alpha beta gamma; do
	check "$h starts with -config $URL" start_node "$h"
done
((PT_FAILED == fails)) || exit 1
for h in alpha beta gamma; do
	others=()
	for o in alpha beta gamma; do [[ $o == "$h" ]] || others+=("$o"); done
	check "$h pings ${others[*]} over IPv4 and IPv6" reaches "$h" "${others[@]}"
done

# ==== 2. a push adds delta ====

log "2. a push adds delta; no signal sent"
declare -A DELTA_REACH_MS
# delta_pingers: alpha, beta, gamma ping delta every 50 ms, with timestamps, for
# DELTA_PING_SECS. Sets DELTA_PING_PIDS.
DELTA_PING_PIDS=()
delta_pingers() {
	local h
	for h in alpha beta gamma; do
		ip netns exec "${MESH_NS[$h]}" ping -n -D -i 0.05 -W 1 -w "$DELTA_PING_SECS" "$(mesh_v4 delta)" \
			>"$PT_DIR/$h-to-delta.txt" 2>&1 &
		DELTA_PING_PIDS+=($!)
		PT_PIDS+=($!)
	done
}
# delta_reached HOST: the time from the push to HOST's first reply from delta, within DELTA_MS.
delta_reached() {
	local h=$1 first ms
	first=$(awk '/bytes from/ { gsub(/[][]/, "", $1); print $1; exit }' "$PT_DIR/$h-to-delta.txt")
	tail -n 2 "$PT_DIR/$h-to-delta.txt"
	if [[ -z $first ]]; then
		DELTA_REACH_MS[$h]="no reply in ${DELTA_PING_SECS}s"
		echo "$h: ${DELTA_REACH_MS[$h]}"
		return 1
	fi
	ms=$(((${first/./} - PUSH_T0) / 1000))
	DELTA_REACH_MS[$h]="$ms ms"
	echo "$h: first reply from delta $ms ms after the push"
	((ms <= DELTA_MS))
}
MESH_SUBNETS[delta]=
write_mesh alpha beta gamma delta
check "peer mesh push adding delta: exit 0, one line" push "pushed revision [0-9]+: added delta"
DELTA_PUSH_REV=${PUSH_REV:-?}
check "delta starts with -config $URL" start_node delta
# Only now: an initiation sent before delta's socket exists is lost and, as in WireGuard,
# retried only after REKEY_TIMEOUT (5 s), which would time the handshake, not the watch.
delta_pingers
for p in "${DELTA_PING_PIDS[@]}"; do
	pt_wait_pid_exit "$p" $((DELTA_PING_SECS + 3)) || kill -KILL "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
done
for h in alpha beta gamma; do
	check "$h reaches delta within $DELTA_MS ms of the push, no signal sent" delta_reached "$h"
	check "$h's log: msg=\"mesh reloaded\" trigger=etcd" log_has "$h" 'msg="mesh reloaded" trigger=etcd'
done
check "delta pings alpha, beta, gamma over IPv4 and IPv6" reaches delta alpha beta gamma
v6_to_delta() { ping_from alpha "$(mesh_v6 delta)" && ping_from beta "$(mesh_v6 delta)" && ping_from gamma "$(mesh_v6 delta)"; }
check "alpha, beta, gamma ping delta over IPv6" v6_to_delta

# ==== 3. etcd down; beta restarts from its cache ====

log "3. etcd stops; beta restarts from its cache"
check "etcd exits on SIGTERM" pt_stop "$ETCD_PID" 10
# lost_etcd HOST: HOST logs "lost etcd" within LOST_SECS and runs on.
lost_etcd() {
	pt_wait_until "$LOST_SECS" log_has "$1" "lost etcd" || true
	log_has "$1" "lost etcd" && running "$1"
}
for h in alpha gamma delta; do
	check "$h logs \"lost etcd\" within ${LOST_SECS}s and runs on" lost_etcd "$h"
done
check "beta exits on SIGTERM" pt_stop "${MESH_PID[beta]}" 5
BETA_T0=${EPOCHREALTIME/./}
check "beta starts again with etcd down" start_node beta -r 20
BETA_START_MS=$(pt_ms_since "$BETA_T0")
check "beta's log: \"etcd unreachable: started from the cached mesh\"" log_has beta "etcd unreachable: started from the cached mesh"
check "beta, from its cache, pings alpha, gamma, delta over IPv4 and IPv6" reaches beta alpha gamma delta
cache_private() {
	local h m rc=0
	for h in "${MESH_HOSTS[@]}"; do
		m=$(stat -c %a "$PT_DIR/$h.mesh.yaml") || { rc=1; continue; }
		echo "$PT_DIR/$h.mesh.yaml: mode $m, $(head -n 1 "$PT_DIR/$h.mesh.yaml")"
		[[ $m == 600 ]] || rc=1
	done
	return $rc
}
check "every node's cache file is mode 0600" cache_private

# ==== 4. etcd back; a push is applied again ====

log "4. etcd starts again; a push changes the MTU and delta's subnets"
check "etcd starts again on the same data dir" etcd_start
MESH_MTU=$NEW_MTU
MESH_SUBNETS[delta]=$DELTA_SUBNET
write_mesh alpha beta gamma delta
check "peer mesh push of MTU $NEW_MTU and $DELTA_SUBNET for delta: exit 0, one line" push \
	"pushed revision [0-9]+: changed delta; settings changed"
LAST_REV=${PUSH_REV:-?}
# applied HOST: HOST's node shows the last push: MTU in its status and on its interface,
# delta's new subnet (but on delta itself), its cache at the push's revision.
applied() {
	local h=$1
	[[ $(status_get "$h" 'd["mtu"]') == "$NEW_MTU" ]] || return 1
	[[ $(ip -n "${MESH_NS[$h]}" link show dev "${MESH_IFACE[$h]}") == *" mtu $NEW_MTU "* ]] || return 1
	[[ $h == delta || " $(status_get "$h" '" ".join(peer("delta").get("prefixes") or [])') " == *" $DELTA_SUBNET "* ]] || return 1
	[[ $(head -n 1 "$PT_DIR/$h.mesh.yaml") == *"at revision $LAST_REV "* ]]
}
declare -A RESUME_MS
# all_applied: polls every node every 50 ms until each applied the push, for 2.5 times
# RESUME_SECS; records each one's time in RESUME_MS.
all_applied() {
	local h left=("${MESH_HOSTS[@]}") still
	RESUME_MS=()
	while ((${#left[@]} > 0 && $(pt_ms_since "$PUSH_T0") < RESUME_SECS * 2500)); do
		still=()
		for h in "${left[@]}"; do
			if applied "$h" >/dev/null 2>&1; then
				RESUME_MS[$h]="$(pt_ms_since "$PUSH_T0") ms"
			else
				still+=("$h")
			fi
		done
		left=("${still[@]}")
		sleep 0.05
	done
	for h in "${left[@]}"; do RESUME_MS[$h]="not applied in $(pt_ms_since "$PUSH_T0") ms"; done
}
all_applied
# resumed HOST: HOST is back on etcd and applied the push within RESUME_SECS.
resumed() {
	local h=$1 ms
	echo "$h: ${RESUME_MS[$h]}; mtu $(status_get "$h" 'd["mtu"]'), cache: $(head -n 1 "$PT_DIR/$h.mesh.yaml")"
	[[ $h == delta ]] || echo "  delta's prefixes: $(status_get "$h" '" ".join(peer("delta").get("prefixes") or [])')"
	log_has "$h" "etcd back" || { echo "no \"etcd back\" in $h's log"; return 1; }
	ms=${RESUME_MS[$h]% ms}
	[[ $ms =~ ^[0-9]+$ ]] && ((ms <= RESUME_SECS * 1000))
}
for h in "${MESH_HOSTS[@]}"; do
	check "$h: etcd back, the push applied within ${RESUME_SECS}s (status, interface, cache at revision $LAST_REV)" resumed "$h"
done
check "alpha still reaches delta" reaches alpha delta

# ==== 5. pull; every node and etcd stop ====

log "5. peer mesh pull; stop everything"
pulled() {
	local out=$PT_DIR/pull.yaml
	ip netns exec "$STORE_NS" "$BIN" mesh pull -from "$URL" >"$out" || return 1
	cat "$out"
	[[ $(head -n 1 "$out") == "# mesh from $URL at revision $LAST_REV "* ]] || { echo "want revision $LAST_REV in the first line"; return 1; }
	grep -q -E "mtu: $NEW_MTU\$" "$out" && grep -q -F "$DELTA_SUBNET" "$out"
}
check "peer mesh pull prints revision $LAST_REV, with mtu $NEW_MTU and $DELTA_SUBNET" pulled
for h in "${MESH_HOSTS[@]}"; do
	check "$h exits on SIGTERM within 5s" pt_stop "${MESH_PID[$h]}" 5
done
check "etcd exits on SIGTERM" pt_stop "$ETCD_PID" 10
etcd_dir_removed() { rm -rf -- "$ETCD_DIR" && [[ ! -e $ETCD_DIR ]]; }
check "etcd's data dir removed" etcd_dir_removed

echo "---- measured"
echo "  push adding delta (revision $DELTA_PUSH_REV) to the first reply from delta: alpha ${DELTA_REACH_MS[alpha]:-?}, beta ${DELTA_REACH_MS[beta]:-?}, gamma ${DELTA_REACH_MS[gamma]:-?} (limit $DELTA_MS ms)"
echo "  beta's start from its cache with etcd down: ${BETA_START_MS:-?} ms to its interface up"
echo "  push after etcd came back (revision $LAST_REV) to applied: alpha ${RESUME_MS[alpha]:-?}, beta ${RESUME_MS[beta]:-?}, gamma ${RESUME_MS[gamma]:-?}, delta ${RESUME_MS[delta]:-?} (limit ${RESUME_SECS}s)"
pt_summary etcd-test
