#!/usr/bin/env bash
# interop-test.sh: peer against stock wireguard-go, in two namespaces on a veth pair.
#
#   bash scripts/interop-test.sh [--bin PATH] [--wireguard-go PATH] [--reference-wireguard-go] [-v]
#
# Node "pn" runs peer (10.11.0.1, fd11::1), node "wg" runs wireguard-go configured with
# wg(8) (10.11.0.2, fd11::2). Both are restarted between rounds so no session survives:
#   round 1: IPv4 underlay, no preshared key, peer sends first (peer initiates);
#   round 2: IPv6 underlay, preshared key, wireguard-go sends first (peer responds);
#   restart: wireguard-go is killed and started again mid-session; traffic it sends must
#            flow again within 5 s (new handshake), and traffic from peer must flow too;
#   restart 2: wireguard-go restarted again, this time only peer sends: peer must notice
#            the dead session and handshake again by itself (the protocol allows 15 s);
#   control: fresh nodes with different preshared keys get no traffic through either way;
#            restarting wireguard-go with the right key makes traffic flow.
# Each round: ping both ways over both tunnel families, a 10 MiB TCP transfer each way with
# SHA-256 checked on both ends, the first handshake initiation's sender checked in a
# dumpcap capture of the underlay, and `wg show` printed.
#
# It runs the wireguard-go version our go.mod requires (lib.sh's pt_wireguard_go) and names
# it in its log and summary. --wireguard-go uses a prebuilt one instead.
# --reference-wireguard-go runs wireguard-go in place of peer too, to prove the harness.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 240 "$@"

BIN='' WGGO='' IMPL=peer
while (($#)); do
	case $1 in
	--bin) BIN=$2; shift 2 ;;
	--bin=*) BIN=${1#--bin=}; shift ;;
	--wireguard-go) WGGO=$2; shift 2 ;;
	--wireguard-go=*) WGGO=${1#--wireguard-go=}; shift ;;
	--reference-wireguard-go) IMPL=wireguard-go; shift ;;
	-v) PT_VERBOSE=1; shift ;;
	*) echo "usage: $0 [--bin PATH] [--wireguard-go PATH] [--reference-wireguard-go] [-v]" >&2; exit 2 ;;
	esac
done
require_cmds ip wg python3 ping sha256sum timeout dumpcap tshark pgrep

pt_wireguard_go WGGO "$WGGO" || die "no wireguard-go"
if [[ $IMPL == peer ]]; then
	pt_use_peer
	log "testing $BIN against wireguard-go $PT_WGGO_VERSION ($WGGO)"
else
	log "reference run: wireguard-go $PT_WGGO_VERSION ($WGGO) on both sides"
fi

PORT=51820
A4=10.98.0.1 B4=10.98.0.2 A6=fd98::1 B6=fd98::2 # underlay
TA4=10.11.0.1 TB4=10.11.0.2 TA6=fd11::1 TB6=fd11::2 # tunnel
pt_netns NSA pn
pt_netns NSB wg
pt_veth "$NSA" eth0 "$NSB" eth0
pt_addr "$NSA" eth0 "$A4/24"
pt_addr "$NSA" eth0 "$A6/64"
pt_addr "$NSB" eth0 "$B4/24"
pt_addr "$NSB" eth0 "$B6/64"
check "underlay up over IPv4 and IPv6" pt_wait_until 10 eval "pt_ping_once $NSA $B4 && pt_ping_once $NSA $B6"

mkdir -p "$PT_DIR/keys"
(
	umask 077
	if [[ $IMPL == peer ]]; then "$BIN" genkey >"$PT_DIR/keys/pn.key"; else wg genkey >"$PT_DIR/keys/pn.key"; fi
	wg genkey >"$PT_DIR/keys/wg.key"
	wg genpsk >"$PT_DIR/keys/pair.psk"
	wg genpsk >"$PT_DIR/keys/wrong.psk"
)
if [[ $IMPL == peer ]]; then PUBA=$("$BIN" pubkey <"$PT_DIR/keys/pn.key"); else PUBA=$(wg pubkey <"$PT_DIR/keys/pn.key"); fi
PUBB=$(wg pubkey <"$PT_DIR/keys/wg.key")
[[ $PUBA == "$(wg pubkey <"$PT_DIR/keys/pn.key")" ]] || die "peer pubkey and wg pubkey disagree on the same private key"
IFA=pn0
[[ $IMPL == peer ]] || IFA=${PT_PREFIX}a
IFB=${PT_PREFIX}b
LOGA=$PT_DIR/pn.log LOGB=$PT_DIR/wg.log
pt_add_log "peer (pn)" "$LOGA"
pt_add_log "wireguard-go (wg)" "$LOGB"
PIDA='' PIDB=''

# write_config UNDERLAY PSKFILE: the two-node mesh file for node pn.
write_config() {
	local ua=$A4:$PORT ub=$B4:$PORT
	[[ $1 == 4 ]] || ua="[$A6]:$PORT" ub="[$B6]:$PORT"
	{
		echo "interface:"
		echo "  mtu: 1420"
		echo "peers:"
		echo "  - name: pn"
		echo "    public_key: \"$PUBA\""
		echo "    address: [$TA4/24, $TA6/64]"
		echo "    endpoint: \"$ua\""
		echo "  - name: wggo"
		echo "    public_key: \"$PUBB\""
		echo "    address: [$TB4/24, $TB6/64]"
		echo "    endpoint: \"$ub\""
		[[ -z $2 ]] || echo "    preshared_key_file: $2"
	} >"$PT_DIR/mesh.yaml"
}

# wggo_up NS IFACE LOG KEY PEERPUB PEERTUNNEL4 PEERTUNNEL6 ENDPOINT OWN4 OWN6 PSK:
# starts and configures one wireguard-go node; sets WGPID.
wggo_up() {
	local ns=$1 ifc=$2 logf=$3 key=$4 pub=$5 p4=$6 p6=$7 ep=$8 o4=$9 o6=${10} psk=${11}
	pt_wggo_start "$ns" "$ifc" "$logf" "$WGGO" || return 1
	WGPID=$PT_WGGO_PID
	ip netns exec "$ns" wg set "$ifc" listen-port "$PORT" private-key "$key" \
		peer "$pub" allowed-ips "$p4/32,$p6/128" endpoint "$ep" ${psk:+preshared-key "$psk"}
	ip -n "$ns" link set "$ifc" mtu 1420 up
	pt_addr "$ns" "$ifc" "$o4/24"
	pt_addr "$ns" "$ifc" "$o6/64"
}

# start_a UNDERLAY PSK: node pn (peer, or wireguard-go in a reference run).
start_a() {
	local ub=$B4:$PORT
	[[ $1 == 4 ]] || ub="[$B6]:$PORT"
	if [[ $IMPL == peer ]]; then
		write_config "$1" "$2"
		pt_spawn "$NSA" "$LOGA" "$BIN" -config "$PT_DIR/mesh.yaml" -key "$PT_DIR/keys/pn.key" \
			-iface "$IFA" -socket "$PT_DIR/pn.sock" -v
		PIDA=$PT_LAST_PID
	else
		wggo_up "$NSA" "$IFA" "$LOGA" "$PT_DIR/keys/pn.key" "$PUBB" "$TB4" "$TB6" "$ub" "$TA4" "$TA6" "$2" || return 1
		PIDA=$WGPID
	fi
	pt_wait_until 15 eval "! pt_alive $PIDA || pt_iface_ready $NSA $IFA $TA4 $TA6" || true
	pt_alive "$PIDA" || { echo "node pn exited during start-up"; tail -n 20 "$LOGA"; return 1; }
	pt_iface_ready "$NSA" "$IFA" "$TA4" "$TA6" || { echo "$IFA not up with its addresses"; ip -n "$NSA" -br addr; return 1; }
}

# start_b UNDERLAY PSK: node wg (wireguard-go).
start_b() {
	local ua=$A4:$PORT
	[[ $1 == 4 ]] || ua="[$A6]:$PORT"
	wggo_up "$NSB" "$IFB" "$LOGB" "$PT_DIR/keys/wg.key" "$PUBA" "$TA4" "$TA6" "$ua" "$TB4" "$TB6" "$2" || return 1
	PIDB=$WGPID
	pt_iface_ready "$NSB" "$IFB" "$TB4" "$TB6"
}

stop_a() { [[ -z $PIDA ]] || pt_stop "$PIDA" 5 || echo "node pn needed SIGKILL"; PIDA=; }
stop_b() { [[ -z $PIDB ]] || pt_stop "$PIDB" 5 || echo "node wg needed SIGKILL"; PIDB=; }

# first_initiation PCAP: "<src> <dst>" of the first WireGuard handshake initiation.
first_initiation() {
	tshark -r "$1" -Y 'wg.type == 1' -T fields -e ip.src -e ipv6.src -e ip.dst -e ipv6.dst 2>/dev/null |
		awk 'NR == 1 {print $1, $2}'
}

initiated_by() { # PCAP EXPECTED_SRC
	local got
	got=$(first_initiation "$1")
	echo "first handshake initiation: ${got:-none} (want from $2)"
	[[ ${got%% *} == "$2" ]]
}

show_wg() { # prints wg show of the wireguard-go node (keys are public; psk hidden by wg)
	echo "---- wg show $IFB (node wg) ----"
	ip netns exec "$NSB" wg show "$IFB" | sed 's/^/    /'
	if [[ $IMPL == peer ]]; then
		echo "---- peer status (node pn) ----"
		ip netns exec "$NSA" "$BIN" status -socket "$PT_DIR/pn.sock" 2>&1 | sed 's/^/    /' || true
	else
		ip netns exec "$NSA" wg show "$IFA" | sed 's/^/    /'
	fi
}

wg_has_handshake() { # a non-zero latest handshake on node wg
	local ts
	ts=$(ip netns exec "$NSB" wg show "$IFB" latest-handshakes | awk '{print $2}')
	echo "latest handshake: ${ts:-none}"
	[[ -n $ts && $ts != 0 ]]
}

wg_shows_psk() { [[ $(ip netns exec "$NSB" wg show "$IFB") == *"preshared key"* ]]; }

PAYLOAD=$PT_DIR/payload.bin
pt_make_payload "$PAYLOAD" 10
XPORT=5101

# round NAME UNDERLAY PSK FIRST: one full round with fresh nodes; FIRST is a or b.
round() {
	local name=$1 ul=$2 psk=$3 first=$4 cap=$PT_DIR/$1.pcapng probe want
	log "$name: underlay IPv$ul, preshared key: $([[ -n $psk ]] && echo yes || echo no), $([[ $first == a ]] && echo "peer" || echo "wireguard-go") sends first"
	probe="ip netns exec $NSA bash -c 'echo probe >/dev/udp/$B4/9'"
	check "$name: capture on the underlay" pt_capture_start "$NSA" eth0 "$cap" "udp port $PORT or udp port 9" eval "$probe"
	check "$name: peer node up" start_a "$ul" "$psk"
	check "$name: wireguard-go node up" start_b "$ul" "$psk"
	if [[ $first == a ]]; then
		check "$name: ping pn -> wg $TB4 (pn initiates)" pt_await_ping 10 "$NSA" "$TB4"
		check "$name: ping wg -> pn $TA4" pt_await_ping 10 "$NSB" "$TA4"
		want=$A4
	else
		check "$name: ping wg -> pn $TA4 (wg initiates)" pt_await_ping 10 "$NSB" "$TA4"
		check "$name: ping pn -> wg $TB4" pt_await_ping 10 "$NSA" "$TB4"
		want=$B4
	fi
	[[ $ul == 4 ]] || want=${want/10.98.0./fd98::}
	check "$name: ping pn -> wg $TB6" pt_await_ping 10 "$NSA" "$TB6"
	check "$name: ping wg -> pn $TA6" pt_await_ping 10 "$NSB" "$TA6"
	check "$name: tcp pn -> wg $TB4" pt_tcp_transfer "$NSA" "$NSB" "$TB4" $((XPORT++)) "$PAYLOAD"
	check "$name: tcp wg -> pn $TA6" pt_tcp_transfer "$NSB" "$NSA" "$TA6" $((XPORT++)) "$PAYLOAD"
	check "$name: tcp wg -> pn $TA4" pt_tcp_transfer "$NSB" "$NSA" "$TA4" $((XPORT++)) "$PAYLOAD"
	check "$name: wireguard-go reports a handshake" wg_has_handshake
	[[ -z $psk ]] || check "$name: wireguard-go has the preshared key" wg_shows_psk
	show_wg
	pt_capture_stop
	check "$name: first handshake initiation came from $([[ $first == a ]] && echo peer || echo wireguard-go)" initiated_by "$cap" "$want"
}

round round1 4 "" a
stop_a
stop_b
round round2 6 "$PT_DIR/keys/pair.psk" b

# restart_b PSK: kills node wg mid-session and starts it again with the same config.
restart_b() {
	pt_stop "$PIDB" 0 || true
	PIDB=
	pt_wait_until 5 eval "! ip -n $NSB link show dev $IFB" || true
	start_b 6 "$1"
}

log "restart: wireguard-go killed and started again; it sends first"
check "restart: wireguard-go node up again" restart_b "$PT_DIR/keys/pair.psk"
check "restart: ping wg -> pn $TA4 within 5s (new handshake)" pt_await_ping 5 "$NSB" "$TA4"
check "restart: ping pn -> wg $TB4" pt_await_ping 5 "$NSA" "$TB4"
check "restart: tcp pn -> wg $TB6" pt_tcp_transfer "$NSA" "$NSB" "$TB6" $((XPORT++)) "$PAYLOAD"
check "restart: wireguard-go reports a new handshake" wg_has_handshake
show_wg

log "restart 2: wireguard-go restarted again; only peer sends, so peer must handshake again by itself"
check "restart 2: wireguard-go node up again" restart_b "$PT_DIR/keys/pair.psk"
check "restart 2: ping pn -> wg $TB4 resumes within 25s (peer re-handshakes)" pt_await_ping 25 "$NSA" "$TB4"
check "restart 2: wireguard-go reports a new handshake" wg_has_handshake

log "control: fresh nodes, wireguard-go with a different preshared key, then the right one"
no_traffic() { # NS ADDR SECONDS: not a single reply for SECONDS
	! ip netns exec "$1" ping -n -q -c "$3" -i 1 -W 1 "$2"
}
stop_a
stop_b
check "control: peer node up" start_a 6 "$PT_DIR/keys/pair.psk"
check "control: wireguard-go node up with the wrong preshared key" start_b 6 "$PT_DIR/keys/wrong.psk"
check "control: no traffic wg -> pn with mismatched preshared keys (3s)" no_traffic "$NSB" "$TA4" 3
check "control: no traffic pn -> wg with mismatched preshared keys (3s)" no_traffic "$NSA" "$TB4" 3
check "control: wireguard-go restarted with the right preshared key" restart_b "$PT_DIR/keys/pair.psk"
check "control: ping wg -> pn $TA4 within 5s" pt_await_ping 5 "$NSB" "$TA4"

stop_a
stop_b
pt_summary "interop-test ($IMPL vs wireguard-go $PT_WGGO_VERSION)"
