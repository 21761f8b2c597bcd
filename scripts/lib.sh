# shellcheck shell=bash
# lib.sh: helpers shared by peer's namespace tests and demo. Source it, don't run it.
#
# Everything a script creates goes through this file so that one EXIT/INT/TERM trap can
# undo it: processes (pt_spawn), network namespaces (pt_netns; deleting a namespace also
# deletes every link inside it) and scratch directories (pt_tmpdir). Names carry a per-run
# prefix (pt<pid>-) so two runs never collide and a leftover is easy to attribute. Links are
# only ever created inside our own namespaces; the root namespace is not touched.
# Set PT_ARTIFACTS=DIR to keep the run's logs, mesh.yaml, status output and captures.

# PT_PREFIX names everything this run creates.
PT_PREFIX=${PT_PREFIX:-pt$$-}
PT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PT_REPO_DIR=$(cd "$PT_LIB_DIR/.." && pwd)
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

PT_PIDS=()     # background processes to stop
PT_NETNS=()    # namespaces to delete
PT_DIRS=()     # directories to remove
PT_LOGS=()     # logs to show when something failed
PT_CLEANUP_HOOKS=()
PT_STEPS=()    # pt_step's results, for pt_summary
PT_PASSED=0
PT_FAILED=0
PT_START=${EPOCHREALTIME/./}

# log prints a timestamped progress line.
log() { printf '[%6.1fs] %s\n' "$(pt_elapsed)" "$*"; }

# pt_elapsed prints seconds since the script started.
pt_elapsed() {
	local now=${EPOCHREALTIME/./}
	printf '%d.%d' $(((now - PT_START) / 1000000)) $((((now - PT_START) / 100000) % 10))
}

# pass and fail record the outcome of one check with a greppable line.
pass() {
	PT_PASSED=$((PT_PASSED + 1))
	PT_LAST_RESULT="PASS: $*"
	echo "$PT_LAST_RESULT"
}
fail() {
	PT_FAILED=$((PT_FAILED + 1))
	PT_LAST_RESULT="FAIL: $*"
	echo "$PT_LAST_RESULT"
}

# die records a failure that makes going on pointless; the EXIT trap cleans up.
die() {
	fail "$*"
	exit 1
}

# check DESCRIPTION CMD...: runs CMD in this shell (so it may register processes and
# directories), records PASS/FAIL, and on failure shows the end of its output. It never
# aborts the script, so one run reports every broken check.
check() {
	local desc=$1 rc=0 out=$PT_DIR/check.out
	shift
	"$@" >"$out" 2>&1 || rc=$?
	if ((rc == 0)); then
		pass "$desc"
		[[ -z ${PT_VERBOSE:-} ]] || sed 's/^/    | /' "$out"
	else
		fail "$desc (exit $rc)"
		if (($(wc -l <"$out") > 30)); then
			head -n 8 "$out" | sed 's/^/    | /'
			echo "    | ..."
			tail -n 20 "$out" | sed 's/^/    | /'
		else
			sed 's/^/    | /' "$out"
		fi
	fi
	return 0
}

# pt_step NAME CMD...: check for long steps (test.sh's): CMD's output streams as it comes
# instead of being kept for a failure, the result line gives the duration, and pt_summary
# lists every step's result again. It never aborts either.
pt_step() {
	local name=$1 rc=0 t0=$SECONDS
	shift
	echo
	echo "==> $name"
	"$@" || rc=$?
	if ((rc == 0)); then
		pass "$name ($((SECONDS - t0))s)"
	else
		fail "$name (exit $rc, $((SECONDS - t0))s)"
	fi
	PT_STEPS+=("$PT_LAST_RESULT")
	return 0
}

# pt_summary NAME prints the steps' results (if any) and the totals, and returns non-zero
# when any check failed or none ran.
pt_summary() {
	local name=$1
	echo "----"
	((${#PT_STEPS[@]} == 0)) || printf '%s\n' "${PT_STEPS[@]}"
	if ((PT_FAILED == 0 && PT_PASSED > 0)); then
		echo "PASS: $name: all $PT_PASSED checks passed in $(pt_elapsed)s"
		return 0
	fi
	echo "FAIL: $name: $PT_FAILED of $((PT_PASSED + PT_FAILED)) checks failed ($(pt_elapsed)s)"
	return 1
}

# require_root skips the script (exit 0) when not root, unless CI=true, where that is a failure.
require_root() {
	((EUID == 0)) && return 0
	if [[ ${CI:-} == true ]]; then
		echo "FAIL: $(basename "$0") needs root (network namespaces, TUN) and CI=true"
		exit 1
	fi
	echo "SKIP: $(basename "$0") needs root (network namespaces, TUN); not run"
	exit 0
}

# require_cmds fails when a tool is missing, naming it.
require_cmds() {
	local c missing=()
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	((${#missing[@]} == 0)) || die "missing tools: ${missing[*]} (see .ci/run for the packages)"
}

# pt_init SECONDS "$@": the common prologue. It re-executes the calling script under
# timeout(1) once so the whole run is bounded (on expiry the script gets SIGTERM and its
# trap still cleans up), skips or fails without root, arms the cleanup traps and makes
# the run's scratch directory $PT_DIR.
pt_init() {
	local secs=$1
	shift
	require_root
	# peer refuses a mesh file that group or others can write: whatever the
	# caller's umask, what this run writes is not group-writable.
	umask 022
	if [[ -z ${PT_TIME_BOUND_SET:-} ]]; then
		export PT_TIME_BOUND_SET=1 PT_PREFIX
		local rc tpid
		# In the background so that a Ctrl-C or SIGTERM here can be forwarded: timeout
		# runs its command in a process group of its own, which the terminal does not
		# signal. The signal goes to that group but not to timeout itself, which would
		# otherwise answer with SIGKILL at its deadline and cut the cleanup short.
		timeout -k 30 "$secs" bash "$0" "$@" &
		tpid=$!
		trap 'pt_signal_group_except_leader "$tpid"' INT TERM
		while :; do
			rc=0
			wait "$tpid" || rc=$?
			kill -0 "$tpid" 2>/dev/null || break
		done
		((rc != 124)) || echo "FAIL: $(basename "$0") exceeded its time bound of ${secs}s"
		exit "$rc"
	fi
	pt_install_traps
	pt_tmpdir PT_DIR
}

# pt_signal_group_except_leader PGID: SIGTERM to every process of the group but its leader.
pt_signal_group_except_leader() {
	local p
	for p in $(pgrep -g "$1"); do
		[[ $p == "$1" ]] || kill -TERM "$p" 2>/dev/null || true
	done
}

# pt_cleanup undoes everything registered. It is idempotent and runs from the traps.
pt_cleanup() {
	local rc=${1:-$?} pid ns i left
	trap - EXIT INT TERM
	set +e
	if ((rc != 0 && rc != 124)) && ((${#PT_LOGS[@]} > 0)) && [[ -z ${PT_LOGS_SHOWN:-} ]]; then
		pt_show_logs
	fi
	for ((i = ${#PT_CLEANUP_HOOKS[@]} - 1; i >= 0; i--)); do
		eval "${PT_CLEANUP_HOOKS[i]}" >/dev/null 2>&1
	done
	for pid in "${PT_PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PT_PIDS[@]}"; do
		pt_wait_pid_exit "$pid" 3 || kill -KILL "$pid" 2>/dev/null
	done
	# Anything else still running inside our namespaces was started by us too.
	for ns in "${PT_NETNS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
	done
	for ns in "${PT_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	if [[ -n ${PT_ARTIFACTS:-} && -n ${PT_DIR:-} ]]; then
		# Keep logs, configs, status output and captures; not keys, payloads or binaries.
		mkdir -p "$PT_ARTIFACTS" &&
			(cd "$PT_DIR" && find . -type f \( -name '*.log' -o -name '*.yaml' -o -name '*.json' \
				-o -name '*.txt' -o -name '*.pcapng' \) -exec cp --parents {} "$PT_ARTIFACTS/" \;) &&
			echo "artifacts kept in $PT_ARTIFACTS"
	fi
	for i in "${PT_DIRS[@]}"; do
		[[ -n $i && $i == /tmp/* ]] && rm -rf -- "$i"
	done
	left=$(ip netns list 2>/dev/null | awk '{print $1}' | grep -F -- "$PT_PREFIX" || true)
	[[ -z $left ]] || echo "WARN: namespaces left behind: $left"
	exit "$rc"
}

# pt_install_traps arms the cleanup for normal exit, Ctrl-C and SIGTERM (e.g. the time bound).
pt_install_traps() {
	trap 'pt_cleanup' EXIT
	trap 'echo "FAIL: interrupted (SIGINT)"; pt_cleanup 130' INT
	trap 'echo "FAIL: terminated (SIGTERM, time bound?)"; pt_cleanup 143' TERM
}

# pt_on_cleanup registers a shell command to run first during cleanup.
pt_on_cleanup() { PT_CLEANUP_HOOKS+=("$1"); }

# pt_tmpdir VAR: makes a scratch directory that cleanup removes and stores its path in VAR.
# (Helpers that register things set variables instead of printing: a $(...) would run
# them in a subshell and the registration would be lost.)
pt_tmpdir() {
	local d
	d=$(mktemp -d "/tmp/${PT_PREFIX}XXXXXX")
	chmod 700 "$d"
	PT_DIRS+=("$d")
	printf -v "$1" '%s' "$d"
}

# pt_netns VAR NAME: creates namespace $PT_PREFIX$NAME with lo up; stores its name in VAR.
pt_netns() {
	local ns=$PT_PREFIX$2
	PT_NETNS+=("$ns")
	ip netns add "$ns"
	ip -n "$ns" link set lo up
	printf -v "$1" '%s' "$ns"
}

# pt_veth NS1 IF1 NS2 IF2: a veth pair between two of our namespaces, both ends up.
# It is created from inside NS1, so it never exists in the root namespace.
pt_veth() {
	ip -n "$1" link add "$2" type veth peer name "$4" netns "$3"
	ip -n "$1" link set "$2" up
	ip -n "$3" link set "$4" up
}

# pt_bridge NS BR: a bridge inside NS. Multicast snooping is off so IPv6 neighbour
# discovery never depends on querier state.
pt_bridge() {
	ip -n "$1" link add "$2" type bridge mcast_snooping 0
	ip -n "$1" link set "$2" up
}

# pt_addr NS IF ADDR/LEN: adds an address (IPv6 without duplicate address detection,
# so it is usable at once).
pt_addr() {
	if [[ $3 == *:* ]]; then
		ip -n "$1" -6 addr add "$3" dev "$2" nodad
	else
		ip -n "$1" addr add "$3" dev "$2"
	fi
}

# pt_spawn NS LOGFILE CMD...: starts CMD in NS in the background with output to LOGFILE,
# registers it for cleanup and sets PT_LAST_PID.
pt_spawn() {
	local ns=$1 logf=$2
	shift 2
	ip netns exec "$ns" "$@" >"$logf" 2>&1 &
	PT_LAST_PID=$!
	PT_PIDS+=("$PT_LAST_PID")
}

# pt_stop PID [SECONDS]: SIGTERM, wait for exit, SIGKILL after the grace period.
# Returns 0 when the process exited on SIGTERM within the grace period.
pt_stop() {
	local pid=$1 grace=${2:-5}
	kill -TERM "$pid" 2>/dev/null || return 0
	if pt_wait_pid_exit "$pid" "$grace"; then
		wait "$pid" 2>/dev/null || true
		return 0
	fi
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || true
	return 1
}

# pt_forget_pid PID: a process that ended and was waited for leaves the cleanup list
# (PT_PIDS), so a later reuse of its number is never signalled.
pt_forget_pid() {
	local p keep=()
	for p in "${PT_PIDS[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	PT_PIDS=("${keep[@]}")
}

# pt_tfields FILE FILTER FIELD...: the FIELDs of the frames of capture FILE matching the
# display FILTER, one line each, read with "${TSHARK[@]}" (default: tshark -n, no name
# resolution); fails, with tshark's message, when tshark does.
pt_tfields() {
	local f=$1 filt=$2 rc=0 out x fl=() ts=(tshark -n)
	shift 2
	[[ -z ${TSHARK+x} ]] || ts=("${TSHARK[@]}")
	for x in "$@"; do fl+=(-e "$x"); done
	out=$("${ts[@]}" -r "$f" -Y "$filt" -T fields -E separator=' ' "${fl[@]}" 2>"$PT_DIR/tshark.err") || rc=$?
	if ((rc != 0)); then
		echo "tshark -r $f -Y '$filt' failed (exit $rc):" >&2
		grep -v 'Running as user' "$PT_DIR/tshark.err" >&2
		return 1
	fi
	[[ -z $out ]] || echo "$out"
}

# pt_wait_pid_exit PID SECONDS: waits for a process to be gone.
pt_wait_pid_exit() {
	pt_wait_until "$2" pt_pid_gone "$1"
}

pt_pid_gone() {
	! kill -0 "$1" 2>/dev/null && return 0
	# A zombie child counts as gone.
	[[ $(ps -o stat= -p "$1" 2>/dev/null) == Z* ]]
}

# pt_alive PID: the process is running (not exited, not a zombie).
pt_alive() { ! pt_pid_gone "$1"; }

# pt_wait_until SECONDS CMD...: polls CMD (quietly) every 100 ms until it succeeds or the
# deadline passes; returns 1 on timeout. Use this instead of fixed sleeps.
pt_wait_until() {
	local secs=$1
	shift
	local deadline=$((${EPOCHREALTIME/./} + ${secs%.*} * 1000000))
	until "$@" >/dev/null 2>&1; do
		((${EPOCHREALTIME/./} < deadline)) || return 1
		sleep 0.1
	done
	return 0
}

# pt_iface_ready NS IFACE ADDR4 ADDR6: IFACE is up and has both addresses, the IPv6 one
# past duplicate address detection. (Output is captured, not piped into grep -q: with
# pipefail, grep quitting early can fail the pipeline with SIGPIPE.)
pt_iface_ready() {
	local link addrs line
	link=$(ip -n "$1" link show dev "$2" 2>/dev/null) || return 1
	[[ $link =~ [\<,]UP[,\>] ]] || return 1
	addrs=$(ip -n "$1" addr show dev "$2") || return 1
	[[ $addrs == *"inet $3/"* ]] || return 1
	while IFS= read -r line; do
		[[ $line == *"inet6 $4/"* && $line != *tentative* ]] && return 0
	done <<<"$addrs"
	return 1
}

# pt_add_log NAME FILE: a log to show (tail) when the run fails.
pt_add_log() { PT_LOGS+=("$1=$2"); }

# pt_show_logs prints the last lines of every registered log.
pt_show_logs() {
	local e name f
	PT_LOGS_SHOWN=1
	for e in "${PT_LOGS[@]}"; do
		name=${e%%=*}
		f=${e#*=}
		echo "---- last lines of $name ($f) ----"
		tail -n 25 "$f" 2>/dev/null | sed 's/^/    | /'
	done
}

# pt_ping NS ADDR [COUNT]: ping that must get every reply. ping picks IPv4/IPv6 from ADDR.
pt_ping() {
	local n=${3:-3}
	ip netns exec "$1" ping -n -q -c "$n" -i 0.2 -W 2 "$2"
}

# pt_ping_once NS ADDR: one quick probe, for wait loops.
pt_ping_once() { ip netns exec "$1" ping -n -q -c 1 -W 1 "$2" >/dev/null 2>&1; }

# pt_await_ping SECONDS NS ADDR: waits until ADDR answers from NS (the first packets may
# wait for a handshake), then requires a clean run of 3 pings.
pt_await_ping() {
	local secs=$1 ns=$2 addr=$3
	pt_wait_until "$secs" pt_ping_once "$ns" "$addr" || {
		echo "no reply from $addr within ${secs}s"
		return 1
	}
	pt_ping "$ns" "$addr" 3
}

# pt_make_payload FILE MEGABYTES: random payload for transfers.
pt_make_payload() {
	head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1"
}

# pt_tcp_transfer FROM_NS TO_NS ADDR PORT FILE [SECONDS [RATE]]: sends FILE over TCP from
# FROM_NS to ADDR:PORT (listening in TO_NS) and requires the byte count and SHA-256 seen
# by the receiver, by the sender and by sha256sum of FILE to agree. Each end is given
# SECONDS (default 60) in all, and tcpxfer.py's own 30 s without progress. RATE (bytes
# per second) paces the sender's socket; 0 or none: as fast as it goes.
pt_tcp_transfer() {
	local from=$1 to=$2 addr=$3 port=$4 file=$5 secs=${6:-60} rate=${7:-0}
	local d ready rpid want sent got rc=0 t0 t1
	d=$(mktemp -d "$PT_DIR/xfer.XXXXXX")
	ready=$d/ready
	ip netns exec "$to" timeout "$secs" python3 "$PT_LIB_DIR/tcpxfer.py" recv "$addr" "$port" "$ready" \
		>"$d/recv.out" 2>"$d/recv.err" &
	rpid=$!
	PT_PIDS+=("$rpid")
	if ! pt_wait_until 10 test -e "$ready"; then
		echo "receiver did not start listening on $addr:$port"
		cat "$d/recv.err"
		return 1
	fi
	want="$(stat -c %s "$file") $(sha256sum "$file" | cut -d' ' -f1)"
	t0=${EPOCHREALTIME/./}
	sent=$(ip netns exec "$from" timeout "$secs" python3 "$PT_LIB_DIR/tcpxfer.py" send "$addr" "$port" "$file" "$rate" 2>"$d/send.err") || rc=$?
	wait "$rpid" || rc=$?
	t1=${EPOCHREALTIME/./}
	got=$(cat "$d/recv.out")
	if ((rc != 0)) || [[ $sent != "$want" || $got != "$want" ]]; then
		echo "transfer to $addr:$port failed (rc=$rc)"
		echo "  file:     $want"
		echo "  sender:   $sent"
		echo "  receiver: $got"
		cat "$d/send.err" "$d/recv.err"
		return 1
	fi
	echo "ok: ${want%% *} bytes, sha256 ${want#* }, $(awk -v b="${want%% *}" -v us=$((t1 - t0)) 'BEGIN{printf "%.1f s, %.1f Mbit/s", us/1e6, b*8/us}')"
}

# pt_bg_transfer OUT FROM TO ADDR PORT FILE [SECONDS [RATE]]: pt_tcp_transfer in the background,
# its output in OUT and its exit status in OUT.rc. Sets PT_BG_PID.
pt_bg_transfer() {
	local out=$1
	shift
	(
		rc=0
		pt_tcp_transfer "$@" >"$out" 2>&1 || rc=$?
		echo "$rc" >"$out.rc"
	) &
	PT_BG_PID=$!
	PT_PIDS+=("$PT_BG_PID")
}

# pt_bg_result OUT: the result of a pt_bg_transfer once it ended.
pt_bg_result() {
	cat "$1"
	[[ $(cat "$1.rc" 2>/dev/null) == 0 ]]
}

# pt_ms_since T0: milliseconds since T0 (an ${EPOCHREALTIME/./} value).
pt_ms_since() { echo $(((${EPOCHREALTIME/./} - $1) / 1000)); }

# pt_peer_args "$@": the command line of a test that takes only [--bin PATH] [-v]. Sets
# BIN (empty unless given) and PT_VERBOSE; anything else is a usage error (exit 2).
pt_peer_args() {
	BIN=
	while (($#)); do
		case $1 in
		--bin) BIN=$2; shift 2 ;;
		--bin=*) BIN=${1#--bin=}; shift ;;
		-v) PT_VERBOSE=1; shift ;;
		*) echo "usage: $0 [--bin PATH] [-v]" >&2; exit 2 ;;
		esac
	done
}

# pt_use_peer: builds ./peer into $PT_DIR unless BIN names one, makes BIN absolute and
# sets MESH_BIN (topology.sh's nodes run it).
pt_use_peer() {
	if [[ -z $BIN ]]; then
		log "building ./peer"
		BIN=$PT_DIR/peer
		pt_build_peer "$BIN" || die "go build ./peer"
	fi
	BIN=$(realpath "$BIN")
	# shellcheck disable=SC2034 # read by topology.sh
	MESH_BIN=$BIN
}

# pt_build_peer OUT: builds ./peer from this checkout into OUT.
pt_build_peer() {
	(cd "$PT_REPO_DIR" && go build -o "$1" ./peer)
}

# pt_build_impair OUT: builds the impairment relay and flood generator ./cmd/impair into OUT.
pt_build_impair() {
	(cd "$PT_REPO_DIR" && go build -o "$1" ./cmd/impair)
}

# pt_vm_kib PID FIELD: a memory figure of a process in KiB from /proc/PID/status
# (VmRSS: resident now, VmHWM: the peak resident set).
pt_vm_kib() {
	awk -v f="$2:" '$1 == f {print $2; found=1} END {exit !found}' "/proc/$1/status"
}

# PT_CACHE_DIR keeps what a run builds and a later run may reuse (stock wireguard-go).
PT_CACHE_DIR=${PT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/peer-scripts}

# pt_wireguard_go VAR [PATH]: stores in VAR the stock wireguard-go to run and sets
# PT_WGGO_VERSION to its module version (from the binary's build info). PATH, if given,
# is a prebuilt one; otherwise it is the version of golang.zx2c4.com/wireguard that our
# go.mod requires, installed once with go install MODULE@VERSION into
# $PT_CACHE_DIR/wireguard-go@VERSION and reused by later runs. Pinned, not @latest, so
# that interop results and benchmark figures compare across runs.
pt_wireguard_go() {
	local var=$1 bin=${2:-} v dir tmp
	if [[ -z $bin ]]; then
		v=$(cd "$PT_REPO_DIR" && go list -m -f '{{.Version}}' golang.zx2c4.com/wireguard) ||
			{ echo "no golang.zx2c4.com/wireguard in go.mod"; return 1; }
		dir=$PT_CACHE_DIR/wireguard-go@$v
		bin=$dir/wireguard
		if [[ ! -x $bin ]]; then
			log "installing wireguard-go $v: GOBIN=$dir go install golang.zx2c4.com/wireguard@$v"
			mkdir -p "$PT_CACHE_DIR"
			tmp=$(mktemp -d "$PT_CACHE_DIR/.wireguard-go.XXXXXX")
			# Outside our module, so its own go.mod chooses its dependencies.
			if ! (cd "$tmp" && GOBIN=$tmp GOFLAGS='' go install "golang.zx2c4.com/wireguard@$v"); then
				rm -rf -- "$tmp"
				return 1
			fi
			# Another run may have got there first; its copy is as good.
			mv -T "$tmp" "$dir" 2>/dev/null || rm -rf -- "$tmp"
		fi
	fi
	bin=$(realpath "$bin") || return 1
	PT_WGGO_VERSION=$(go version -m "$bin" 2>/dev/null |
		awk '($1 == "mod" || $1 == "dep") && $2 == "golang.zx2c4.com/wireguard" {print $3; exit}')
	PT_WGGO_VERSION=${PT_WGGO_VERSION:-unknown}
	printf -v "$var" '%s' "$bin"
}

# pt_wggo_start NS IFACE LOGFILE BIN: starts wireguard-go in NS in the foreground mode and
# waits for its control socket. The interface name must be unique on the machine, since
# the socket /var/run/wireguard/IFACE.sock lives in the shared filesystem.
pt_wggo_start() {
	local ns=$1 ifc=$2 logf=$3 bin=$4
	pt_on_cleanup "rm -f /var/run/wireguard/$ifc.sock"
	rm -f "/var/run/wireguard/$ifc.sock" # stale after a SIGKILL; we wait for the new one
	pt_spawn "$ns" "$logf" env WG_PROCESS_FOREGROUND=1 LOG_LEVEL=verbose "$bin" "$ifc"
	# shellcheck disable=SC2034 # read by the caller
	PT_WGGO_PID=$PT_LAST_PID
	pt_wait_until 10 test -S "/var/run/wireguard/$ifc.sock" || {
		echo "wireguard-go did not create its socket for $ifc"
		tail -n 20 "$logf"
		return 1
	}
}

# pt_capture_start NS IFACE FILE FILTER PROBE...: runs dumpcap on IFACE in NS and waits
# until it really captures: dumpcap says "Capturing on" before the capture is live, so
# PROBE (a command making a packet that FILTER matches) is repeated until dumpcap counts
# one. Sets PT_CAP_PID.
pt_capture_start() {
	local ns=$1 ifc=$2 file=$3 filter=$4
	shift 4
	pt_spawn "$ns" "$file.log" dumpcap -i "$ifc" -f "$filter" -w "$file"
	PT_CAP_PID=$PT_LAST_PID
	pt_wait_until 10 pt_capture_live "$file.log" "$@" || {
		echo "dumpcap on $ifc did not start capturing"
		cat "$file.log"
		return 1
	}
}

pt_capture_live() {
	local logf=$1
	shift
	"$@" || true
	grep 'Packets' "$logf" >/dev/null
}

# pt_capture_stop: ends the capture started last and waits for the file to be complete.
pt_capture_stop() {
	pt_stop "$PT_CAP_PID" 5 || true
}

# pt_capture_count FILE: packets the running capture into FILE has counted so far.
pt_capture_count() { tr '\r' '\n' <"$1.log" | awk '$1 == "Packets:" {n = $2} END {print n + 0}'; }

# pt_capture_stop_settled FILE [PID]: stops the capture PID (default: the one started
# last) into FILE once its count has not grown for a second (at most 5 s): dumpcap reads
# the kernel's buffer in blocks, and one stopped right after the traffic misses the last
# packets.
pt_capture_stop_settled() {
	local last=-1 now i
	for ((i = 0; i < 5; i++)); do
		now=$(pt_capture_count "$1")
		((now != last)) || break
		last=$now
		sleep 1
	done
	local pid=${2:-$PT_CAP_PID}
	pt_stop "$pid" 5 || true
	pt_forget_pid "$pid"
}

# pt_tlist FILE FILTER: tshark's one-line summaries of the frames of FILE matching the
# display FILTER (at most 15), for a failure's evidence.
pt_tlist() { tshark -n -r "$1" -Y "$2" 2>/dev/null | head -n 15; }
