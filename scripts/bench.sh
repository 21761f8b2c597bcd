#!/usr/bin/env bash
# bench.sh: throughput, latency, CPU and memory of peer against stock wireguard-go (root).
#
#   bash scripts/bench.sh [--time SECONDS] [--rounds N] [--out FILE] [--raw FILE] [--profile DIR]
#                         [--configs "none wg peer-offload peer-water"] [--bin PATH] [--wireguard-go PATH]
#   (configurations: none wg peer-offload peer-water peer-netstack; the default is the first four)
#
# Two namespaces b<pid>a and b<pid>b joined by a veth pair (underlay 10.98.0.1/2, MTU 1500,
# default offloads). One tunnel runs at a time between them (10.10.0.1/2, MTU 1420) and is torn
# down before the next configuration starts:
#   none          iperf3 straight over the veth pair: the ceiling
#   wg            stock wireguard-go, the version our go.mod requires (lib.sh's pt_wireguard_go;
#                 --wireguard-go PATH for another), wg(8) + ip(8); the report names the version
#   peer-offload  peer -driver offload (TUN with GSO/GRO offloads)
#   peer-water    peer -driver water (one packet per read/write)
#   peer-netstack a runs peer -driver netstack (no TUN: the tunnel address lives in the node's
#                 own gVisor stack), b peer -driver offload. Not in the default list: it is not
#                 compared with wireguard-go and adds a fourth transfer. iperf3 cannot speak
#                 SOCKS5, so a's iperf3 connects to 127.0.0.1:5201, which a's node forwards
#                 (-forward tcp:127.0.0.1:5201=10.10.0.2:5201) into its stack: host TCP spliced to
#                 a netstack TCP connection, the path a SOCKS5 CONNECT takes. Its ping row is b→a
#                 (a ping from a cannot enter a stack that has no device); its one extra row, the
#                 SOCKS5 download, is curl --socks5 127.0.0.1:1080 (a's -socks5) fetching an endless
#                 HTTP stream from b (scripts/httpstream.py on 10.10.0.2:8000) for --time seconds.
# The loop is "for each round, for each configuration", so machine noise hits every one alike.
# Per configuration and round, from a to b: ping -c 50 -i 0.01 (median RTT); iperf3 one TCP stream
# a→b and b→a (-R), then 4 streams a→b (-P 4), --time seconds each, receiver-side bits/s from -J.
# Around every transfer it reads utime+stime of both tunnel processes (/proc/PID/stat) and divides
# by the bytes the receiver got: CPU seconds per GB (1e9 bytes) of single-stream traffic. Peak RSS
# is VmHWM of each tunnel process at the end of the configuration's run (the larger of the two).
#
# It prints a markdown table (median over rounds, [min–max] for throughput) and the ratios
# peer/wireguard-go, writes every raw measurement to a TSV file (path printed; --raw to choose it)
# and the report to --out FILE if given. --profile DIR runs peer with PEER_CPUPROFILE (one pprof
# CPU profile per node and round, kept in DIR) and prints `go tool pprof -top` per driver; profiling
# costs a little throughput, so compare profiled runs only with each other.
#
# PT_ARTIFACTS=DIR keeps the run's logs, iperf3 JSON and mesh file (see lib.sh).
#
# It is a benchmark, not a test: scripts/test.sh does not run it. It exits 1 if any measurement
# failed (the table still shows the rest, failed cells as n/a).
set -euo pipefail
PT_PREFIX=${PT_PREFIX:-b$$}
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
	sed -n '4,5p' "${BASH_SOURCE[0]}" | sed 's/^# //' >&2
	exit 2
}

TIME=10 ROUNDS=3 OUT='' RAW='' PROFILE='' BIN='' WGGO=''
CONFIGS="none wg peer-offload peer-water"
ARGS=("$@")
while (($#)); do
	case $1 in
	--time | --rounds | --out | --raw | --profile | --configs | --bin | --wireguard-go)
		(($# >= 2)) || usage
		case $1 in
		--time) TIME=$2 ;; --rounds) ROUNDS=$2 ;; --out) OUT=$2 ;; --raw) RAW=$2 ;;
		--profile) PROFILE=$2 ;; --configs) CONFIGS=$2 ;; --bin) BIN=$2 ;; --wireguard-go) WGGO=$2 ;;
		esac
		shift 2
		;;
	-h | --help) usage ;;
	*) echo "bench.sh: unknown argument $1" >&2; usage ;;
	esac
done
[[ $TIME =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --time wants whole seconds >= 1, got '$TIME'" >&2; exit 2; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "bench.sh: --rounds wants a count >= 1, got '$ROUNDS'" >&2; exit 2; }
read -r -a CONFIG_LIST <<<"$CONFIGS"
((${#CONFIG_LIST[@]} > 0)) || { echo "bench.sh: --configs is empty" >&2; exit 2; }
for c in "${CONFIG_LIST[@]}"; do
	case $c in none | wg | peer-offload | peer-water | peer-netstack) ;; *) echo "bench.sh: unknown config '$c'" >&2; exit 2 ;; esac
done

source "$BENCH_DIR/lib.sh"
# Bound: builds, plus per configuration and round three transfers (four for peer-netstack),
# a ping run, start and stop.
pt_init $((900 + ROUNDS * ${#CONFIG_LIST[@]} * (4 * TIME + 45))) "${ARGS[@]}"
require_cmds ip wg iperf3 ping python3 timeout ss getconf go git
REPORT="python3 $BENCH_DIR/bench-report.py"
TICK=$(getconf CLK_TCK)
FAILED=0
warn() {
	FAILED=$((FAILED + 1))
	echo "WARN: $*"
}

# ---- binaries -------------------------------------------------------------------------------
pt_use_peer
WGGO_VERSION=n/a
if [[ " ${CONFIG_LIST[*]} " == *" wg "* ]]; then
	pt_wireguard_go WGGO "$WGGO" || die "no wireguard-go"
	WGGO_VERSION=$PT_WGGO_VERSION
fi
PEER_VERSION=$(cd "$PT_REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(cd "$PT_REPO_DIR" && git status --porcelain --untracked-files=no 2>/dev/null) ]] || PEER_VERSION+="+dirty"
if [[ -n $PROFILE ]]; then
	mkdir -p "$PROFILE"
	PROFILE=$(realpath "$PROFILE")
fi
if [[ -z $RAW ]]; then
	RAW=/tmp/peer-bench-$(date +%Y%m%d-%H%M%S)-$$.tsv
fi
printf 'round\tconfig\tmetric\tvalue\n' >"$RAW"
log "raw results: $RAW"

# ---- topology -------------------------------------------------------------------------------
UA=10.98.0.1 UB=10.98.0.2 # underlay
TA=10.10.0.1 TB=10.10.0.2 # tunnel
PORT=51820 IPERF_PORT=5201
SOCKS=127.0.0.1:1080 STREAM_PORT=8000 # peer-netstack: a's -socks5, b's httpstream.py
pt_netns NSA a
pt_netns NSB b
pt_veth "$NSA" veth0 "$NSB" veth0
pt_addr "$NSA" veth0 "$UA/24"
pt_addr "$NSB" veth0 "$UB/24"
pt_wait_until 10 pt_ping_once "$NSA" "$UB" || die "underlay $UA -> $UB does not answer"

mkdir -p "$PT_DIR/keys"
(umask 077 && wg genkey >"$PT_DIR/keys/a.key" && wg genkey >"$PT_DIR/keys/b.key")
PUBA=$(wg pubkey <"$PT_DIR/keys/a.key")
PUBB=$(wg pubkey <"$PT_DIR/keys/b.key")
MESH=$PT_DIR/mesh.yaml
cat >"$MESH" <<EOF
# Two-node benchmark mesh written by scripts/bench.sh.
interface:
  mtu: 1420
peers:
  - name: a
    public_key: "$PUBA"
    address: $TA/24
    endpoint: "$UA:$PORT"
  - name: b
    public_key: "$PUBB"
    address: $TB/24
    endpoint: "$UB:$PORT"
EOF
ip netns exec "$NSA" "$BIN" check -config "$MESH" -key "$PT_DIR/keys/a.key" >/dev/null ||
	die "peer check rejects the benchmark mesh file"

# ---- tunnels --------------------------------------------------------------------------------
TUN_PIDS=() # the two tunnel processes of the running configuration (a's, then b's)
TUN_IFS=()
TUN_EXE= # the binary they must be running, checked before they are measured


# v4_ready NS IFACE ADDR: IFACE is up and carries ADDR.
v4_ready() {
	local link addrs
	link=$(ip -n "$1" link show dev "$2" 2>/dev/null) || return 1
	[[ $link =~ [\<,]UP[,\>] ]] || return 1
	addrs=$(ip -n "$1" -4 addr show dev "$2") || return 1
	[[ $addrs == *"inet $3/"* ]]
}

link_gone() { ! ip -n "$1" link show dev "$2" >/dev/null 2>&1; }

# wg_up NS IFACE KEY PEERPUB PEERTUNNEL PEERENDPOINT OWNTUNNEL: one wireguard-go node.
wg_up() {
	local ns=$1 ifc=$2
	pt_wggo_start "$ns" "$ifc" "$PT_DIR/$ifc.log" "$WGGO" || return 1
	TUN_PIDS+=("$PT_WGGO_PID")
	TUN_IFS+=("$ns:$ifc")
	ip netns exec "$ns" wg set "$ifc" listen-port "$PORT" private-key "$3" \
		peer "$4" allowed-ips "$5/32" endpoint "$6:$PORT"
	ip -n "$ns" link set "$ifc" mtu 1420 up
	ip -n "$ns" addr add "$7/24" dev "$ifc"
}

# peer_up NS NODE DRIVER CONFIG ROUND [FLAGS...]: one peer node on interface bt0 (one per
# namespace; with driver netstack only a name).
peer_up() {
	local ns=$1 node=$2 drv=$3 ifc=bt0 envs=()
	[[ -z $PROFILE ]] || envs=(PEER_CPUPROFILE="$PROFILE/$4-r$5-$node.pprof")
	pt_spawn "$ns" "$PT_DIR/$4-r$5-$node.log" env "${envs[@]}" "$BIN" -config "$MESH" \
		-key "$PT_DIR/keys/$node.key" -iface "$ifc" -socket "$PT_DIR/$node.sock" -driver "$drv" "${@:6}"
	TUN_PIDS+=("$PT_LAST_PID")
	TUN_IFS+=("$ns:$ifc")
	pt_add_log "peer $node ($4 round $5)" "$PT_DIR/$4-r$5-$node.log"
}

# tcp_listens NS PORT: something listens on TCP PORT in NS.
tcp_listens() { [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2") ]]; }

# netstack_ready PID: a's netstack node listens on its forward and SOCKS5 ports (or it died).
netstack_ready() {
	! pt_alive "$1" && return 0
	tcp_listens "$NSA" "$IPERF_PORT" && tcp_listens "$NSA" "${SOCKS##*:}"
}

# tunnel_up CONFIG ROUND: starts CONFIG's two nodes and waits for traffic through the tunnel.
tunnel_up() {
	local cfg=$1 rnd=$2 pid i
	local -A drv=([a]=${cfg#peer-} [b]=${cfg#peer-})
	TUN_PIDS=() TUN_IFS=()
	case $cfg in
	none) return 0 ;;
	wg)
		TUN_EXE=$WGGO
		wg_up "$NSA" "${PT_PREFIX}wa" "$PT_DIR/keys/a.key" "$PUBB" "$TB" "$UB" "$TA" || return 1
		wg_up "$NSB" "${PT_PREFIX}wb" "$PT_DIR/keys/b.key" "$PUBA" "$TA" "$UA" "$TB" || return 1
		;;
	peer-netstack)
		TUN_EXE=$BIN
		drv[b]=offload
		peer_up "$NSA" a netstack "$cfg" "$rnd" -forward "tcp:127.0.0.1:$IPERF_PORT=$TB:$IPERF_PORT" -socks5 "$SOCKS"
		TUN_IFS=() # a has no device
		peer_up "$NSB" b offload "$cfg" "$rnd"
		pt_wait_until 15 netstack_ready "${TUN_PIDS[0]}" || true
		pt_alive "${TUN_PIDS[0]}" || { echo "peer node a exited during start-up"; return 1; }
		netstack_ready "${TUN_PIDS[0]}" || { echo "node a does not listen on 127.0.0.1:$IPERF_PORT and $SOCKS"; return 1; }
		pt_wait_until 15 eval "! pt_alive ${TUN_PIDS[1]} || v4_ready $NSB bt0 $TB" || true
		pt_alive "${TUN_PIDS[1]}" || { echo "peer node b exited during start-up"; return 1; }
		;;&
	peer-offload | peer-water)
		TUN_EXE=$BIN
		peer_up "$NSA" a "${cfg#peer-}" "$cfg" "$rnd"
		peer_up "$NSB" b "${cfg#peer-}" "$cfg" "$rnd"
		for i in 0 1; do
			pid=${TUN_PIDS[i]}
			pt_wait_until 15 eval "! pt_alive $pid || v4_ready ${TUN_IFS[i]%%:*} ${TUN_IFS[i]#*:} $([[ $i == 0 ]] && echo $TA || echo $TB)" || true
			pt_alive "$pid" || { echo "peer node $i exited during start-up"; return 1; }
		done
		;;&
	peer-*)
		# The driver really in use is in the start-up log line; a silent fallback would
		# measure the wrong thing.
		for i in a b; do
			pt_wait_until 5 grep -q "driver=${drv[$i]}" "$PT_DIR/$cfg-r$rnd-$i.log" || {
				echo "node $i does not log driver=${drv[$i]}:"
				grep -m1 'peer up' "$PT_DIR/$cfg-r$rnd-$i.log" || tail -n 5 "$PT_DIR/$cfg-r$rnd-$i.log"
				return 1
			}
		done
		;;
	esac
	for pid in "${TUN_PIDS[@]}"; do
		[[ $(readlink "/proc/$pid/exe" 2>/dev/null) == "$TUN_EXE" ]] || {
			echo "pid $pid is $(readlink "/proc/$pid/exe" 2>/dev/null || echo gone), not $TUN_EXE"
			return 1
		}
	done
	if [[ $cfg == peer-netstack ]]; then
		# Only b can ping: a's tunnel address is in a's node, not in namespace a.
		pt_await_ping 15 "$NSB" "$TA" >/dev/null || { echo "no ping through the $cfg tunnel (b to a)"; return 1; }
	else
		pt_await_ping 15 "$NSA" "$TB" >/dev/null || { echo "no ping through the $cfg tunnel"; return 1; }
	fi
}

# tunnel_down: stops the running configuration's nodes and waits for their interfaces to go.
tunnel_down() {
	local pid e ok=0
	for pid in "${TUN_PIDS[@]}"; do
		pt_stop "$pid" 5 || { echo "pid $pid needed SIGKILL"; ok=1; }
		pt_forget_pid "$pid"
	done
	for e in "${TUN_IFS[@]}"; do
		pt_wait_until 5 link_gone "${e%%:*}" "${e#*:}" || {
			ip -n "${e%%:*}" link del "${e#*:}" 2>/dev/null || true
			echo "${e#*:} outlived its process"
			ok=1
		}
	done
	rm -f "/var/run/wireguard/${PT_PREFIX}wa.sock" "/var/run/wireguard/${PT_PREFIX}wb.sock"
	TUN_PIDS=() TUN_IFS=()
	return $ok
}

# ---- measurements ---------------------------------------------------------------------------
# rec ROUND CONFIG METRIC VALUE: one raw measurement.
rec() { printf '%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }

# cpu_ticks: utime+stime (clock ticks) summed over the running tunnel processes.
cpu_ticks() {
	local pid stat rest f sum=0
	for pid in "${TUN_PIDS[@]}"; do
		read -r stat <"/proc/$pid/stat" || return 1
		rest=${stat##*) } # the command name may hold spaces and parentheses
		read -r -a f <<<"$rest"
		sum=$((sum + f[11] + f[12])) # fields 14 and 15 of proc(5); f[0] is field 3
	done
	echo "$sum"
}

# peak_rss_kib: the larger VmHWM of the running tunnel processes.
peak_rss_kib() {
	local pid v max=0
	for pid in "${TUN_PIDS[@]}"; do
		v=$(awk '$1 == "VmHWM:" {print $2}' "/proc/$pid/status") || return 1
		((v <= max)) || max=$v
	done
	echo "$max"
}

srv_listening() {
	[[ -n $(ip netns exec "$NSB" ss -Hltn "sport = :$IPERF_PORT") ]]
}

# iperf ROUND CONFIG NAME DST CONNECT ARGS...: one iperf3 run from a (connecting to CONNECT)
# to a one-off server in b on DST; records NAME_bps, NAME_bytes, NAME_retransmits,
# NAME_min_interval_bps and, with a tunnel, NAME_cpu_s.
iperf() {
	local rnd=$1 cfg=$2 name=$3 dst=$4 connect=$5 spid json out rc=0 c0 c1 bps bytes retr slow
	shift 5
	json=$PT_DIR/$cfg-r$rnd-$name.json
	pt_spawn "$NSB" "$PT_DIR/iperf3-server.log" timeout $((TIME + 40)) iperf3 -s -1 -B "$dst" -p "$IPERF_PORT"
	spid=$PT_LAST_PID
	if ! pt_wait_until 5 srv_listening; then
		pt_stop "$spid" 2 || true
		pt_forget_pid "$spid"
		warn "$cfg round $rnd $name: iperf3 server did not listen: $(tail -n 3 "$PT_DIR/iperf3-server.log")"
		return 1
	fi
	c0=$(cpu_ticks) || c0=
	ip netns exec "$NSA" timeout $((TIME + 30)) iperf3 -c "$connect" -p "$IPERF_PORT" -t "$TIME" -J "$@" >"$json" 2>&1 || rc=$?
	c1=$(cpu_ticks) || c1=
	pt_wait_pid_exit "$spid" 5 || pt_stop "$spid" 2 || true
	wait "$spid" 2>/dev/null || true
	pt_forget_pid "$spid"
	if ! out=$($REPORT iperf "$json" 2>&1) || ((rc != 0)); then
		warn "$cfg round $rnd $name: iperf3 failed (exit $rc): $out"
		return 1
	fi
	read -r bps bytes retr slow <<<"$out"
	rec "$rnd" "$cfg" "${name}_bps" "$bps"
	rec "$rnd" "$cfg" "${name}_min_interval_bps" "$slow"
	rec "$rnd" "$cfg" "${name}_bytes" "$bytes"
	rec "$rnd" "$cfg" "${name}_retransmits" "$retr"
	if ((${#TUN_PIDS[@]} > 0)); then
		if [[ -n $c0 && -n $c1 ]]; then
			rec "$rnd" "$cfg" "${name}_cpu_s" "$(awk -v t=$((c1 - c0)) -v hz="$TICK" 'BEGIN{printf "%.2f", t/hz}')"
		else
			warn "$cfg round $rnd $name: a tunnel process vanished during the transfer"
		fi
	fi
	log "  $cfg $name: $(awk -v b="$bps" 'BEGIN{printf "%.2f Gbit/s", b/1e9}'), $retr retransmits"
}

# socks_stream ROUND CONFIG: curl --socks5 in a downloads httpstream.py's endless stream from b
# for TIME seconds through a's SOCKS5 proxy; records socks_bps, socks_bytes and socks_cpu_s.
socks_stream() {
	local rnd=$1 cfg=$2 spid out rc=0 c0 c1 bytes secs
	pt_spawn "$NSB" "$PT_DIR/httpstream.log" timeout $((TIME + 40)) python3 "$BENCH_DIR/httpstream.py" "$TB" "$STREAM_PORT"
	spid=$PT_LAST_PID
	if ! pt_wait_until 5 tcp_listens "$NSB" "$STREAM_PORT"; then
		pt_stop "$spid" 2 || true
		pt_forget_pid "$spid"
		warn "$cfg round $rnd socks: httpstream.py did not listen: $(tail -n 3 "$PT_DIR/httpstream.log")"
		return 1
	fi
	c0=$(cpu_ticks) || c0=
	# curl ends the endless download at --max-time, with exit 28: expected.
	out=$(ip netns exec "$NSA" curl -sS --socks5 "$SOCKS" --max-time "$TIME" -o /dev/null \
		-w '%{size_download} %{time_total}' "http://$TB:$STREAM_PORT/stream" 2>"$PT_DIR/curl.err") || rc=$?
	c1=$(cpu_ticks) || c1=
	pt_stop "$spid" 2 || true
	pt_forget_pid "$spid"
	read -r bytes secs <<<"$out"
	if ((rc != 0 && rc != 28)) || [[ -z $bytes ]] || ((bytes == 0)); then
		warn "$cfg round $rnd socks: curl --socks5 failed (exit $rc, ${bytes:-0} bytes): $(cat "$PT_DIR/curl.err")"
		return 1
	fi
	rec "$rnd" "$cfg" socks_bps "$(awk -v b="$bytes" -v s="$secs" 'BEGIN{printf "%.0f", b*8/s}')"
	rec "$rnd" "$cfg" socks_bytes "$bytes"
	[[ -z $c0 || -z $c1 ]] || rec "$rnd" "$cfg" socks_cpu_s "$(awk -v t=$((c1 - c0)) -v hz="$TICK" 'BEGIN{printf "%.2f", t/hz}')"
	log "  $cfg socks5 download b→a: $(awk -v b="$bytes" -v s="$secs" 'BEGIN{printf "%.2f Gbit/s (%d bytes in %.1f s)", b*8/s/1e9, b, s}')"
}

# measure ROUND CONFIG: everything for one configuration in one round.
measure() {
	local rnd=$1 cfg=$2 dst=$TB connect=$TB from=$NSA to=$TB out rss pid
	[[ $cfg != none ]] || dst=$UB connect=$UB to=$UB
	# peer-netstack: iperf3 reaches b through a's -forward; ping goes b→a (see the header).
	[[ $cfg != peer-netstack ]] || connect=127.0.0.1 from=$NSB to=$TA
	if ip netns exec "$from" ping -n -c 50 -i 0.01 -W 1 "$to" >"$PT_DIR/ping.txt" 2>&1 &&
		out=$($REPORT ping "$PT_DIR/ping.txt" 2>&1); then
		rec "$rnd" "$cfg" ping_ms "${out%% *}"
		log "  $cfg ping: median ${out%% *} ms"
	else
		warn "$cfg round $rnd: ping failed: $(tail -n 2 "$PT_DIR/ping.txt")"
	fi
	iperf "$rnd" "$cfg" ab "$dst" "$connect" || true
	iperf "$rnd" "$cfg" ba "$dst" "$connect" -R || true
	iperf "$rnd" "$cfg" p4 "$dst" "$connect" -P 4 || true
	[[ $cfg != peer-netstack ]] || socks_stream "$rnd" "$cfg" || true
	((${#TUN_PIDS[@]} > 0)) || return 0
	for pid in "${TUN_PIDS[@]}"; do
		pt_alive "$pid" || warn "$cfg round $rnd: tunnel process $pid died during the run"
	done
	if rss=$(peak_rss_kib); then
		rec "$rnd" "$cfg" rss_kib "$rss"
		log "  $cfg peak RSS: $((rss / 1024)) MiB"
	else
		warn "$cfg round $rnd: could not read VmHWM"
	fi
}

# ---- the run --------------------------------------------------------------------------------
log "peer $PEER_VERSION ($BIN), wireguard-go $WGGO_VERSION, $ROUNDS round(s) of ${TIME}s transfers: ${CONFIG_LIST[*]}"
for ((r = 1; r <= ROUNDS; r++)); do
	for cfg in "${CONFIG_LIST[@]}"; do
		log "round $r/$ROUNDS: $cfg"
		# Load from outside the benchmark (another build or test) shows up here in the raw file.
		rec "$r" "$cfg" load1 "$(cut -d' ' -f1 /proc/loadavg)"
		if tunnel_up "$cfg" "$r" >"$PT_DIR/up.out" 2>&1; then
			measure "$r" "$cfg"
		else
			warn "$cfg round $r: tunnel did not come up; skipped: $(tr '\n' ' ' <"$PT_DIR/up.out")"
		fi
		tunnel_down || warn "$cfg round $r: unclean teardown"
	done
done

# ---- report ---------------------------------------------------------------------------------
REPORT_FILE=$PT_DIR/report.md
{
	echo "peer benchmark, $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n): $(nproc) CPUs" \
		"($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), Linux $(uname -r)"
	echo "peer $PEER_VERSION, wireguard-go $WGGO_VERSION, $(iperf3 --version | head -n1 | awk '{print $1, $2}');" \
		"veth pair MTU 1500, tunnel MTU 1420; $ROUNDS round(s), ${TIME}s per transfer; median [min–max]"
	[[ -z $PROFILE ]] || echo "(peer ran with PEER_CPUPROFILE: CPU profiling on)"
	echo
	$REPORT table "$RAW"
} >"$REPORT_FILE" || die "bench-report.py could not build the table from $RAW"
echo
cat "$REPORT_FILE"
echo
echo "raw results: $RAW"
if [[ -n $OUT ]]; then
	cp "$REPORT_FILE" "$OUT"
	echo "report written to $OUT"
fi

if [[ -n $PROFILE ]]; then
	for cfg in peer-offload peer-water peer-netstack; do
		profs=("$PROFILE/$cfg"-r*-[ab].pprof)
		[[ -e ${profs[0]} ]] || continue
		echo
		echo "---- go tool pprof -top ($cfg, both nodes, all rounds: ${#profs[@]} profiles in $PROFILE) ----"
		go tool pprof -top -nodecount=30 "$BIN" "${profs[@]}" 2>&1 || echo "(pprof failed)"
	done
fi

if ((FAILED > 0)); then
	echo "FAIL: bench.sh: $FAILED measurement(s) failed; see the WARN lines above"
	exit 1
fi
echo "bench.sh: done in $(pt_elapsed)s"
