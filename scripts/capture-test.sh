#!/usr/bin/env bash
# capture-test.sh: peer's packet capture (-pcap, -pcap-outer, -pcap-keys, rotation) and
# packet log (-log-packets), checked with tshark and `peer decode`, in two namespaces.
#
#   bash scripts/capture-test.sh [--bin PATH] [-v]
#
#   alpha (underlay 10.97.0.1, tunnel 10.12.0.1 fd12::1) ── veth ── beta (10.97.0.2, 10.12.0.2 fd12::2)
#
# Round 1: alpha runs with -pcap -pcap-outer -pcap-keys -log-packets, beta with -pcap
# -pcap-outer but without -pcap-keys. alpha pings beta over both tunnel families and sends
# it a small TCP transfer; both nodes are stopped with SIGTERM (the capture is finished on
# exit). Then, in alpha's capture, tshark must see the ICMP echo requests on "tun→beta" and
# the replies on "beta→tun" with the tunnel addresses, the WireGuard handshake initiation
# on "wire-out" and the response on "wire-in" (found by tshark's own heuristics: no -d),
# and, decrypted with the keys embedded in the file, the inner ICMP and TCP packets inside
# the transport messages. `peer decode` must print the same echo request/reply lines and
# end with the per-flow summary; alpha's stderr must hold the -log-packets lines. Beta's
# capture is the control: same traffic, but no key in the file and nothing decrypted.
# Round 2: alpha with -pcap-max-size 20000 -pcap-max-files 3 and a larger transfer: at
# most 3 files are left, each under the limit and readable by tshark.
# Needs root; skips without it (fails if CI=true). Set PT_ARTIFACTS=DIR to keep captures.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 55 "$@"

pt_peer_args "$@"
require_cmds ip python3 ping sha256sum timeout tshark grep awk
pt_use_peer
log "testing $BIN with $(tshark --version 2>/dev/null | head -n 1)"

PORT=51820
IFACE=cap0
UA=10.97.0.1 UB=10.97.0.2       # underlay
TA4=10.12.0.1 TB4=10.12.0.2     # tunnel
TA6=fd12::1 TB6=fd12::2
XPORT=5201 # TCP transfer port

log "topology: namespaces ${PT_PREFIX}{alpha,beta}"
pt_netns NS_A alpha
pt_netns NS_B beta
pt_veth "$NS_A" eth0 "$NS_B" eth0
pt_addr "$NS_A" eth0 "$UA/24"
pt_addr "$NS_B" eth0 "$UB/24"
check "underlay: alpha reaches beta" pt_wait_until 10 pt_ping_once "$NS_A" "$UB"

declare -A KEY PUB NS=([alpha]=$NS_A [beta]=$NS_B) V4=([alpha]=$TA4 [beta]=$TB4) V6=([alpha]=$TA6 [beta]=$TB6)
mkdir -p "$PT_DIR/keys"
for h in alpha beta; do
	KEY[$h]=$PT_DIR/keys/$h.key
	(umask 077 && "$BIN" genkey >"${KEY[$h]}")
	PUB[$h]=$("$BIN" pubkey <"${KEY[$h]}")
done
CONFIG=$PT_DIR/mesh.yaml
cat >"$CONFIG" <<EOF
# Two-host mesh written by scripts/capture-test.sh.
interface:
  mtu: 1420
peers:
  - name: alpha
    public_key: "${PUB[alpha]}"
    address: [$TA4/24, $TA6/64]
    endpoint: "$UA:$PORT"
  - name: beta
    public_key: "${PUB[beta]}"
    address: [$TB4/24, $TB6/64]
    endpoint: "$UB:$PORT"
EOF

declare -A PID LOGF
# node_start HOST ROUND ARGS...: runs peer in HOST's namespace with extra ARGS, its
# stdout+stderr (the -log-packets lines included) in $PT_DIR/HOST-ROUND.log, and waits
# until its interface is up with both addresses.
node_start() {
	local h=$1 round=$2
	shift 2
	LOGF[$h]=$PT_DIR/$h-$round.log
	pt_add_log "$h ($round)" "${LOGF[$h]}"
	pt_spawn "${NS[$h]}" "${LOGF[$h]}" "$BIN" -config "$CONFIG" -key "${KEY[$h]}" -iface "$IFACE" \
		-socket "$PT_DIR/$h.sock" "$@"
	PID[$h]=$PT_LAST_PID
	pt_wait_until 10 node_settled "$h" || true
	pt_alive "${PID[$h]}" || { echo "$h exited during start-up"; tail -n 20 "${LOGF[$h]}"; return 1; }
	pt_iface_ready "${NS[$h]}" "$IFACE" "${V4[$h]}" "${V6[$h]}" || {
		echo "$h: $IFACE not up with its addresses after 10s"
		ip -n "${NS[$h]}" -br addr show
		return 1
	}
	echo "$h up (pid ${PID[$h]}): peer $*"
}
node_settled() {
	pt_alive "${PID[$1]}" || return 0
	pt_iface_ready "${NS[$1]}" "$IFACE" "${V4[$1]}" "${V6[$1]}"
}
# node_stop HOST: SIGTERM; the node must exit within 5 s (the capture is finished on exit).
node_stop() {
	pt_stop "${PID[$1]}" 5 || { echo "$1 did not exit within 5s of SIGTERM"; return 1; }
	echo "$1 exited"
}

# TSHARK: tshark reading a file, no name resolution, WireGuard inner dissection on (the
# default, made explicit). The WireGuard dissector is not forced with -d: its UDP
# heuristic must recognise the datagrams by itself.
TSHARK=(tshark -n -o wg.dissect_packet:TRUE)

# tcount FILE FILTER: prints the number of frames of FILE matching the display filter;
# fails (with tshark's message) when tshark does.
tcount() {
	local out rc=0
	out=$("${TSHARK[@]}" -r "$1" -Y "$2" -T fields -e frame.number 2>"$PT_DIR/tshark.err") || rc=$?
	if ((rc != 0)); then
		echo "tshark -r $1 -Y '$2' failed (exit $rc):" >&2
		grep -v 'Running as user' "$PT_DIR/tshark.err" >&2
		return 1
	fi
	grep -c . <<<"$out" || true
}

# tlist FILE [FILTER]: tshark's view of FILE, one line per frame with the fields the checks
# look at (printed when a check fails).
tlist() {
	echo "-- tshark -r $(basename "$1") ${2:+-Y '$2'}: frame iface wg.type sender receiver ip.src ip.dst ipv6.src ipv6.dst icmp icmpv6 tcp.len --"
	"${TSHARK[@]}" -r "$1" ${2:+-Y "$2"} -T fields -E separator=' ' -e frame.number -e frame.interface_name \
		-e wg.type -e wg.sender -e wg.receiver -e ip.src -e ip.dst -e ipv6.src -e ipv6.dst -e icmp.type \
		-e icmpv6.type -e tcp.len 2>&1 | grep -v 'Running as user' | head -n 60 || true # (SIGPIPE from head)
}

# Frame counts are batched: tshark takes about half a second to start, so the counting
# checks of a file are registered with `expect` and counted in one pass by `expect_run`
# (tshark's io,stat with one column per display filter).
EXP_FILE=() EXP_DESC=() EXP_OP=() EXP_N=() EXP_FILTER=()

# expect FILE DESC OP N FILTER: registers the check "frames matching FILTER is OP N" (OP is
# test(1)'s eq, ge, ...). FILTER must not contain a comma (io,stat separates columns by them).
expect() {
	[[ $5 != *,* ]] || die "internal: filter with a comma: $5"
	EXP_FILE+=("$1") EXP_DESC+=("$2") EXP_OP+=("$3") EXP_N+=("$4") EXP_FILTER+=("$5")
}

# expect_run FILE: counts the filters of every expectation registered for FILE in one
# tshark pass and records each as a check (tshark's listing of the file is printed at the
# end of a failed run).
expect_run() {
	local f=$1 i k idx=() cols=() out rc=0
	for i in "${!EXP_FILE[@]}"; do
		[[ ${EXP_FILE[i]} == "$f" ]] || continue
		idx+=("$i")
		cols+=("${EXP_FILTER[i]}")
	done
	((${#idx[@]} > 0)) || return 0
	out=$(IFS=,; "${TSHARK[@]}" -r "$f" -q -z "io,stat,0,${cols[*]}" 2>"$PT_DIR/tshark.err") || rc=$?
	# The one data row: "| 0.000 <> 1.255 |  8 |  960 |  4 | ..." (frames, bytes per column).
	EXP_COUNTS=()
	if ((rc == 0)); then
		read -r -a EXP_COUNTS <<<"$(awk -F'|' '/<>/ { for (i = 3; i < NF; i += 2) printf "%d ", $i; exit }' <<<"$out")"
	fi
	for k in "${!idx[@]}"; do
		check "${EXP_DESC[idx[k]]}" expect_eval "$f" "${idx[k]}" "$rc" "${EXP_COUNTS[k]:-}"
	done
	if ((rc != 0 || ${#EXP_COUNTS[@]} != ${#idx[@]})); then
		fail "tshark io,stat on $(basename "$f") (exit $rc, ${#EXP_COUNTS[@]} of ${#idx[@]} columns)"
		grep -v 'Running as user' "$PT_DIR/tshark.err" | sed 's/^/    | /'
		sed 's/^/    | /' <<<"$out"
	fi
}

expect_eval() {
	local f=$1 i=$2 rc=$3 got=$4
	if ((rc != 0)) || [[ -z $got ]]; then
		echo "tshark could not count (exit $rc) frames matching: ${EXP_FILTER[i]}"
		grep -v 'Running as user' "$PT_DIR/tshark.err"
		return 1
	fi
	echo "$got frames match: ${EXP_FILTER[i]}"
	if ! test "$got" "-${EXP_OP[i]}" "${EXP_N[i]}"; then
		echo "want ${EXP_OP[i]} ${EXP_N[i]} (tshark's view of $(basename "$f") is printed at the end)"
		return 1
	fi
}

# ---------------------------------------------------------------------------- round 1
CAP_A=$PT_DIR/alpha.pcapng
CAP_B=$PT_DIR/beta.pcapng
log "round 1: alpha with -pcap -pcap-outer -pcap-keys -log-packets, beta with -pcap -pcap-outer"
check "alpha starts with -pcap -pcap-outer -pcap-keys -log-packets" \
	node_start alpha r1 -pcap "$CAP_A" -pcap-outer -pcap-keys -log-packets
check "beta starts with -pcap -pcap-outer (no -pcap-keys)" \
	node_start beta r1 -pcap "$CAP_B" -pcap-outer
((PT_FAILED == 0)) || exit 1

check "ping alpha -> beta $TB4" pt_await_ping 10 "$NS_A" "$TB4"
check "ping alpha -> beta $TB6" pt_await_ping 10 "$NS_A" "$TB6"
PAYLOAD=$PT_DIR/payload.bin
head -c 262144 /dev/urandom >"$PAYLOAD"
check "tcp alpha -> beta $TB4:$XPORT (256 KiB)" pt_tcp_transfer "$NS_A" "$NS_B" "$TB4" "$XPORT" "$PAYLOAD"
check "alpha exits on SIGTERM" node_stop alpha
check "beta exits on SIGTERM" node_stop beta
LOG_A=${LOGF[alpha]} LOG_B=${LOGF[beta]}

log "round 1: tshark on alpha's capture"
IF_OUT='frame.interface_name == "tun→beta"'
IF_IN='frame.interface_name == "beta→tun"'
WOUT='frame.interface_name == "wire-out"'
WIN='frame.interface_name == "wire-in"'

# nonempty FILE: the capture file exists and is not empty.
nonempty() {
	[[ -s $1 ]] || { echo "$1 missing or empty"; ls -l "$(dirname "$1")"; return 1; }
	echo "$(basename "$1"): $(stat -c '%s bytes, mode %a' "$1")"
}
check "alpha's capture file exists" nonempty "$CAP_A"
expect "$CAP_A" "alpha's capture is readable by tshark" ge 1 frame

# The inner interfaces: at least the three echo requests of a clean ping run on tun→beta
# and replies on beta→tun, and none with other addresses.
expect_echo() {
	local f=$1 iface=$2 proto=$3 type=$4 ipp=$5 src=$6 dst=$7 name=$8
	expect "$f" "tshark: $name on ${iface#*== }, $src > $dst" ge 3 \
		"$iface && $proto.type == $type && $ipp.src == $src && $ipp.dst == $dst"
	expect "$f" "tshark: no $name on ${iface#*== } with other addresses" eq 0 \
		"$iface && $proto.type == $type && !($ipp.src == $src && $ipp.dst == $dst)"
}
expect_echo "$CAP_A" "$IF_OUT" icmp 8 ip "$TA4" "$TB4" "ICMP echo requests"
expect_echo "$CAP_A" "$IF_IN" icmp 0 ip "$TB4" "$TA4" "ICMP echo replies"
expect_echo "$CAP_A" "$IF_OUT" icmpv6 128 ipv6 "$TA6" "$TB6" "ICMPv6 echo requests"
expect_echo "$CAP_A" "$IF_IN" icmpv6 129 ipv6 "$TB6" "$TA6" "ICMPv6 echo replies"

# The handshake, recognised as WireGuard by tshark's heuristics (checked in detail below).
expect "$CAP_A" "tshark: WireGuard handshake initiation on wire-out, $UA > $UB:$PORT" ge 1 \
	"$WOUT && wg.type == 1 && ip.src == $UA && ip.dst == $UB && udp.dstport == $PORT"
expect "$CAP_A" "tshark: WireGuard handshake response on wire-in, $UB:$PORT > $UA" ge 1 \
	"$WIN && wg.type == 2 && ip.src == $UB && ip.dst == $UA && udp.srcport == $PORT"

# Decrypted inner packets inside transport messages (ip.src has both the outer and the
# inner address there).
expect "$CAP_A" "tshark: decrypted ICMP echo requests inside transport messages on wire-out" ge 3 \
	"$WOUT && wg.type == 4 && icmp.type == 8 && ip.src == $TA4 && ip.dst == $TB4 && ip.src == $UA"
expect "$CAP_A" "tshark: decrypted ICMP echo replies inside transport messages on wire-in" ge 3 \
	"$WIN && wg.type == 4 && icmp.type == 0 && ip.src == $TB4 && ip.dst == $TA4 && ip.src == $UB"
expect "$CAP_A" "tshark: decrypted ICMPv6 echo requests inside transport messages on wire-out" ge 3 \
	"$WOUT && wg.type == 4 && icmpv6.type == 128 && ipv6.src == $TA6 && ipv6.dst == $TB6"
expect "$CAP_A" "tshark: decrypted ICMPv6 echo replies inside transport messages on wire-in" ge 3 \
	"$WIN && wg.type == 4 && icmpv6.type == 129 && ipv6.src == $TB6 && ipv6.dst == $TA6"
expect "$CAP_A" "tshark: decrypted TCP segments inside transport messages on wire-out" ge 10 \
	"$WOUT && wg.type == 4 && tcp.dstport == $XPORT && ip.src == $TA4 && ip.dst == $TB4"
expect "$CAP_A" "tshark: every transport message with data has a decrypted inner packet" eq 0 \
	"wg.type == 4 && !wg.keepalive && !(ip.src == $TA4 || ip.src == $TB4 || ipv6.src == $TA6 || ipv6.src == $TB6)"
expect "$CAP_A" "tshark: no decryption error and nothing malformed" eq 0 \
	"wg.decryption_error || wg.bad_packet_length || _ws.malformed"
expect_run "$CAP_A"

# inner_tcp_bytes FILE: the TCP payload on tun→beta toward the transfer port adds up to
# at least the payload (retransmissions may add more).
inner_tcp_bytes() {
	local f=$1 want got
	want=$(stat -c %s "$PAYLOAD")
	got=$("${TSHARK[@]}" -r "$f" -Y "$IF_OUT && tcp.dstport == $XPORT" -T fields -e tcp.len 2>/dev/null |
		awk '{s += $1} END {print s + 0}')
	echo "tun→beta: $got TCP payload bytes to port $XPORT, payload $want"
	((got >= want)) || { tlist "$f" "tcp" | head -n 20; return 1; }
}
check "tshark: the TCP transfer on tun→beta carries the whole payload" inner_tcp_bytes "$CAP_A"

# handshake_decrypted FILE: tshark decrypted the handshake with the embedded keys: an
# initiation on wire-out whose encrypted static key decrypts to alpha's public key, and a
# response on wire-in to it (its receiver index is the initiation's sender index) that
# tshark marks "Handshake decryption successful".
handshake_decrypted() {
	local f=$1 hs s r
	hs=$("${TSHARK[@]}" -r "$f" -T fields -E separator=/t -e wg.type -e wg.sender -e wg.receiver -e wg.static \
		-e wg.handshake_ok -Y "($WOUT && wg.type == 1) || ($WIN && wg.type == 2)" 2>/dev/null) || true
	echo "handshake messages (type, sender, receiver, decrypted static key, decryption ok);"
	echo "alpha's public key is ${PUB[alpha]}:"
	echo "${hs:-  none}"
	for s in $(awk -F'\t' -v k="${PUB[alpha]}" '$1 == 1 && $4 == k {print $2}' <<<"$hs"); do
		for r in $(awk -F'\t' '$1 == 2 && $5 == 1 {print $3}' <<<"$hs"); do
			[[ $s != "$r" ]] || { echo "decrypted response to decrypted initiation $s"; return 0; }
		done
	done
	echo "no decrypted response whose receiver matches a decrypted initiation's sender"
	tlist "$f" wg
	return 1
}
check "tshark: the handshake decrypts with the embedded keys" handshake_decrypted "$CAP_A"

# has_keys FILE: the key log (a decryption-secrets block, plain text) is in the file.
has_keys() {
	local n k
	for k in LOCAL_STATIC_PRIVATE_KEY REMOTE_STATIC_PUBLIC_KEY LOCAL_EPHEMERAL_PRIVATE_KEY; do
		n=$(grep -a -c -F "$k = " "$1" || true)
		echo "$k: $n lines"
		((n > 0)) || return 1
	done
}
check "alpha's capture embeds the WireGuard key log" has_keys "$CAP_A"

log "round 1: peer decode and -log-packets"
# decode_ok FILE: `peer decode` prints the echo request/reply lines with the direction
# labels and ends with the per-flow summary ("flows: N" and one line per flow, the ICMP
# flows among them; only drop or malformed counts may follow).
decode_ok() {
	local f=$1 out=$PT_DIR/decode.txt
	"$BIN" decode "$f" >"$out" || { echo "peer decode failed"; tail -n 20 "$out"; return 1; }
	echo "$(wc -l <"$out") lines; the summary:"
	sed -n '/^flows: /,$p' "$out"
	grep -m 1 -F " tun→beta IPv4 $TA4 > $TB4 ICMP echo-request " "$out" ||
		{ echo "no 'tun→beta IPv4 $TA4 > $TB4 ICMP echo-request' line"; head -n 20 "$out"; return 1; }
	grep -m 1 -F " beta→tun IPv4 $TB4 > $TA4 ICMP echo-reply " "$out" ||
		{ echo "no 'beta→tun IPv4 $TB4 > $TA4 ICMP echo-reply' line"; head -n 20 "$out"; return 1; }
	awk -v a="$TA4" -v b="$TB4" '
		/^flows: [0-9]+$/ { insum = 1; want = $2; n = 0; next }
		!insum { next }
		/^  [A-Za-z0-9]+ .* > .* packets=[0-9]+ bytes=[0-9]+ first=.* last=.*$/ && !tail {
			n++
			if (index($0, "  ICMP " a " > " b " ") == 1) req = 1
			if (index($0, "  ICMP " b " > " a " ") == 1) rep = 1
			next
		}
		/^(dropped by capture on |malformed or not IP: )/ { tail = 1; next }
		{ print "unexpected line after the summary started: " $0; bad = 1 }
		END {
			if (!insum) { print "no \"flows: N\" line"; exit 1 }
			if (bad) exit 1
			if (n != want || n == 0) { print "flows: " want " but " n " flow lines"; exit 1 }
			if (!req || !rep) { print "no ICMP flow line for " a " > " b " and back"; exit 1 }
		}' "$out"
}
check "peer decode: echo request/reply lines with tun→beta/beta→tun, then the per-flow summary" decode_ok "$CAP_A"

# log_packets LOG: alpha's stderr has decoded lines for the pings, both ways.
log_packets() {
	local f=$1 re
	for re in "tun→beta IPv4 $TA4 > $TB4 ICMP echo-request" "beta→tun IPv4 $TB4 > $TA4 ICMP echo-reply" \
		"tun→beta IPv6 $TA6 > $TB6 ICMPv6 echo-request"; do
		grep -a -m 1 -E "^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6} ${re//./\\.}( |$)" "$f" ||
			{ echo "no line like '$re' in $f:"; grep -a -E '→' "$f" | head -n 10; return 1; }
	done
}
check "-log-packets: alpha's stderr has decoded tun→beta/beta→tun ICMP lines" log_packets "$LOG_A"
no_log_packets() {
	local n
	n=$(grep -a -c '→' "$1" || true)
	echo "$n packet lines in beta's log"
	((n == 0))
}
check "no -log-packets: beta's stderr has no packet lines" no_log_packets "$LOG_B"

log "round 1: beta's capture, written without -pcap-keys"
check "beta's capture file exists" nonempty "$CAP_B"
expect "$CAP_B" "beta's capture is readable by tshark" ge 1 frame
expect "$CAP_B" "beta's capture has the inner echo requests on alpha→tun" ge 3 \
	"frame.interface_name == \"alpha→tun\" && icmp.type == 8 && ip.src == $TA4 && ip.dst == $TB4"
expect "$CAP_B" "beta's capture has the handshake on the wire" ge 2 "wg.type == 1 || wg.type == 2"
expect "$CAP_B" "beta's capture has transport messages on the wire" ge 10 \
	"(frame.interface_name == \"wire-in\" || frame.interface_name == \"wire-out\") && wg.type == 4"
expect "$CAP_B" "without -pcap-keys: tshark decrypts nothing (no inner IP in transport messages)" eq 0 \
	"wg.type == 4 && (icmp || icmpv6 || tcp || ip.src == $TA4 || ip.dst == $TA4)"
expect "$CAP_B" "without -pcap-keys: tshark cannot decrypt the handshake" eq 0 \
	"wg.handshake_ok == 1 || wg.static || wg.timestamp.value"
expect_run "$CAP_B"
no_keys() {
	local k
	for k in LOCAL_STATIC_PRIVATE_KEY REMOTE_STATIC_PUBLIC_KEY LOCAL_EPHEMERAL_PRIVATE_KEY PRESHARED_KEY \
		"$(cat "${KEY[beta]}")" "$(cat "${KEY[alpha]}")"; do
		if grep -a -q -F -- "$k" "$1"; then
			echo "found '${k:0:12}...' in $1"
			return 1
		fi
	done
	echo "no key log name and no private key in $(basename "$1")"
}
check "without -pcap-keys: no key material in beta's capture" no_keys "$CAP_B"

# ---------------------------------------------------------------------------- round 2
log "round 2: rotation, alpha with -pcap-max-size 20000 -pcap-max-files 3"
ROT=$PT_DIR/rot
mkdir -p "$ROT"
failed_before=$PT_FAILED
check "alpha starts with rotation" node_start alpha r2 -pcap "$ROT/rot.pcapng" -pcap-outer -pcap-keys \
	-pcap-max-size 20000 -pcap-max-files 3
check "beta starts" node_start beta r2
if ((PT_FAILED == failed_before)); then
	head -c 1048576 /dev/urandom >"$PAYLOAD"
	check "ping alpha -> beta $TB4" pt_await_ping 10 "$NS_A" "$TB4"
	check "tcp alpha -> beta $TB4:$((XPORT + 1)) (1 MiB)" pt_tcp_transfer "$NS_A" "$NS_B" "$TB4" $((XPORT + 1)) "$PAYLOAD"
	check "alpha exits on SIGTERM" node_stop alpha
	check "beta exits on SIGTERM" node_stop beta
fi

# rotated: 2 or 3 files in $ROT (rotation happened, the oldest were removed), each at most
# 20000 bytes, readable by tshark with frames in it, and each starting with the key log.
rotated() {
	local f n files
	shopt -s nullglob
	files=("$ROT"/rot.pcapng*)
	shopt -u nullglob
	ls -l "$ROT"
	((${#files[@]} >= 2 && ${#files[@]} <= 3)) || { echo "want 2 or 3 files, got ${#files[@]}"; return 1; }
	for f in "${files[@]}"; do
		[[ $(basename "$f") =~ ^rot\.pcapng(\.[0-9]+)?$ ]] || { echo "unexpected file $f"; return 1; }
		(($(stat -c %s "$f") <= 20000)) || { echo "$f is larger than 20000 bytes"; return 1; }
		n=$(tcount "$f" frame) || return 1
		echo "$(basename "$f"): $n frames"
		((n > 0)) || return 1
		grep -a -q -F "LOCAL_STATIC_PRIVATE_KEY = " "$f" || { echo "$f has no key log"; return 1; }
	done
	# The highest rotation number shows how many files were written in all.
	echo "rotated $(printf '%s\n' "${files[@]}" | sed -n 's/.*\.pcapng\.//p' | sort -n | tail -n 1) times"
}
check "rotation: at most 3 files, each <= 20000 bytes and readable by tshark" rotated

# On failure, tshark's view of both captures: every frame but the bulk of the transfer.
if ((PT_FAILED > 0)); then
	for f in "$CAP_A" "$CAP_B"; do
		if [[ -s $f ]]; then
			tlist "$f" '!tcp || tcp.flags.syn == 1 || tcp.flags.fin == 1'
		fi
	done
fi
pt_summary "capture-test"
