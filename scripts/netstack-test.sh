#!/usr/bin/env bash
# netstack-test.sh: a node without root (-driver netstack) meshed with a kernel-TUN node,
# in network namespaces.
#
#   bash scripts/netstack-test.sh [--bin PATH] [-v]
#
#   namespace a: alpha 192.0.2.1 ── eth0 ═ veth ═ eth0 ── namespace b: beta 192.0.2.2
#     peer -driver netstack as nobody,                  peer (TUN p2) as root,
#     no capabilities, UDP port 51821                   UDP port 51820
#
# One mesh file; tunnel addresses 10.10.0.N/24 and fd10::N/64, MTU 1420. Alpha runs as
# nobody (setpriv: real and effective uid and gid nobody, no supplementary groups, empty
# inheritable and bounding sets, no_new_privs) with XDG_RUNTIME_DIR a scratch directory
# owned by nobody and its key owned by nobody (mode 0600); it is started with
#   -driver netstack -socks5 1080 -http-proxy 8118 -forward tcp:127.0.0.1:8001=10.10.0.2:8000
#   -expose tcp:8080=127.0.0.1:8000 -forward tcp:127.0.0.1:8002=beta:9000 (by name)
#   -expose tcp:9000=127.0.0.1:9000
# and no -socket, so its control socket must be $XDG_RUNTIME_DIR/peer/p1.sock. Beta serves
# a random file of 4 MiB (MIB) over HTTP on its two tunnel addresses, port 8000; namespace
# a serves another on its loopback 127.0.0.1:8000. The checks:
#   1. alpha comes up: /proc/PID/status says Uid 65534 and CapEff, CapPrm, CapBnd all zero;
#      namespace a has no link but lo and eth0 (no TUN) and the same addresses and routes
#      as before alpha started; alpha logs "peer up" with driver=netstack.
#   2. curl --socks5-hostname 127.0.0.1:1080 http://beta:8000/ in namespace a downloads
#      beta's file (by the peer's name) with the right size and SHA-256;
#   3. so do curl -x http://127.0.0.1:8118 (absolute-URI forwarding), the same with
#      --proxytunnel (HTTP CONNECT) and a plain curl of http://127.0.0.1:8001/ (the -forward);
#      and 20 datagrams of 1-1200 random bytes through SOCKS5 UDP ASSOCIATE (scripts/socks5udp.py)
#      to a UDP echo server on each of beta's tunnel addresses come back whole; a connection
#      through the second forward to beta's 9000, where scripts/tcpreset.py sends 1 MiB and
#      resets, leaves alpha running, and the first forward still works after it;
#   4. beta pings alpha's 10.10.0.1 and fd10::1 (answered by alpha's in-process stack);
#   5. curl in b of http://10.10.0.1:8080/ and http://[fd10::1]:8080/ (the -expose) downloads
#      namespace a's loopback file with the right size and SHA-256; a connection to the
#      second expose that both ends reset (tcpreset.py's client in b, its server on a's
#      127.0.0.1:9000) leaves alpha running, and the first expose still works after it;
#   6. `peer status -socket $XDG_RUNTIME_DIR/peer/p1.sock`, run as nobody, shows beta with
#      a handshake less than 2 minutes old (-json), and the human form names beta; so does
#      `peer status -iface p1` with no -socket (its default for nobody is the same path);
#   7. alpha exits on SIGTERM within 5 s with status 0 and leaves no socket file; its log has
#      one WARN, that it runs without a wg(8) socket (/var/run/wireguard is root's), and no
#      other WARN or ERROR.
# If alpha dies at a reset the run stops there (the rest would only time out).
# Needs root (to make the namespaces and to drop to nobody); skips without it (fails if
# CI=true). Bounded to 90 s; a run takes about 5 s after the build.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 90 "$@"

pt_peer_args "$@"
require_cmds ip ping curl python3 setpriv sha256sum timeout ss getent
# Proxies of the environment must not get between curl and the node's.
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY

pt_use_peer
log "testing $BIN"

# What is asked, defined here once.
UL4=192.0.2                            # underlay: alpha $UL4.1, beta $UL4.2
A_PORT=51821 B_PORT=51820              # the nodes' UDP ports (alpha's unprivileged, as any >= 1024)
A4=10.10.0.1 A6=fd10::1 B4=10.10.0.2 B6=fd10::2
A_IF=p1 B_IF=p2                        # alpha's is a name only (its socket's); beta's a TUN
MTU=1420
MIB=4                                  # size of each served file
HTTP_PORT=8000                         # beta's HTTP servers, and a's loopback one
SOCKS_PORT=1080 PROXY_PORT=8118        # alpha's -socks5 and -http-proxy (on 127.0.0.1)
FWD_PORT=8001                          # alpha's -forward tcp:127.0.0.1:8001=$B4:8000
EXPOSE_PORT=8080                       # alpha's -expose tcp:8080=127.0.0.1:8000
ECHO_PORT=7007 DGRAMS=20               # beta's UDP echo servers, datagrams sent to each
RESET_PORT=9000 RESET_FWD_PORT=8002    # tcpreset.py's in b and a; alpha's forward to b's
FETCH_SECS=20                          # curl --max-time of each download
NOBODY=nobody
NOGROUP=nogroup
getent group "$NOGROUP" >/dev/null || NOGROUP=nobody
getent passwd "$NOBODY" >/dev/null || die "no user nobody"
getent group "$NOGROUP" >/dev/null || die "no group nogroup or nobody"
NOBODY_UID=$(id -u "$NOBODY")
# AS_NOBODY runs a command as nobody with no capabilities, and nothing it runs can gain any.
AS_NOBODY=(setpriv --reuid "$NOBODY" --regid "$NOGROUP" --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs)

# ---- topology ----

log "topology: namespaces ${PT_PREFIX}{a,b}"
pt_netns NS_A a
pt_netns NS_B b
pt_veth "$NS_A" eth0 "$NS_B" eth0
pt_addr "$NS_A" eth0 "$UL4.1/24"
pt_addr "$NS_B" eth0 "$UL4.2/24"
check "underlay: a and b reach each other" pt_wait_until 10 pt_ping_once "$NS_A" "$UL4.2"

# state_of NS: the links, addresses and routes of NS (what alpha must not change).
state_of() {
	ip -n "$1" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1
	ip -n "$1" addr show | grep -E '^\s+inet6? ' | grep -v 'scope link'
	ip -n "$1" route show table all | grep -v ' fe80::'
	ip -n "$1" -6 route show table all | grep -v 'fe80::'
}
state_of "$NS_A" >"$PT_DIR/state-a-before.txt"

# The binary where nobody may run it (the build directory, or --bin's, may be private).
pt_tmpdir BIN_DIR
chmod 755 "$BIN_DIR"
cp "$BIN" "$BIN_DIR/peer"
BIN=$BIN_DIR/peer
# Alpha's home: mesh file, key and XDG_RUNTIME_DIR, owned by nobody.
pt_tmpdir A_HOME
A_RUN=$A_HOME/run
mkdir -m 700 "$A_RUN"

mkdir -p "$PT_DIR/keys"
for n in alpha beta; do
	(umask 077 && "$BIN" genkey >"$PT_DIR/keys/$n.key")
done
A_KEY=$A_HOME/alpha.key B_KEY=$PT_DIR/keys/beta.key
mv "$PT_DIR/keys/alpha.key" "$A_KEY"
A_PUB=$("$BIN" pubkey <"$A_KEY") B_PUB=$("$BIN" pubkey <"$B_KEY")
MESH=$A_HOME/mesh.yaml
cat >"$MESH" <<EOF
# Two-node mesh written by scripts/netstack-test.sh: alpha -driver netstack, beta a TUN.
interface:
  mtu: $MTU
peers:
  - name: alpha
    public_key: "$A_PUB"
    address: [$A4/24, $A6/64]
    endpoint: "$UL4.1:$A_PORT"
  - name: beta
    public_key: "$B_PUB"
    address: [$B4/24, $B6/64]
    endpoint: "$UL4.2:$B_PORT"
EOF
cp "$MESH" "$PT_DIR/mesh.yaml" # kept with PT_ARTIFACTS
chown -R "$NOBODY:$NOGROUP" "$A_HOME"
chown root:root "$MESH" # root's or nobody's, not writable by others: either is trusted
chmod 644 "$MESH"
check "peer check (as nobody) accepts the mesh with alpha's key" \
	"${AS_NOBODY[@]}" "$BIN" check -config "$MESH" -key "$A_KEY"

# ---- the nodes ----

A_LOG=$PT_DIR/alpha.log B_LOG=$PT_DIR/beta.log
pt_add_log alpha "$A_LOG"
pt_add_log beta "$B_LOG"
B_SOCK=$PT_DIR/beta.sock
pt_spawn "$NS_B" "$B_LOG" "$BIN" -config "$MESH" -key "$B_KEY" -iface "$B_IF" -socket "$B_SOCK" \
	-wg-socket none -v
B_PID=$PT_LAST_PID
A_ARGS=(-config "$MESH" -key "$A_KEY" -iface "$A_IF" -driver netstack -v
	-socks5 "$SOCKS_PORT" -http-proxy "$PROXY_PORT"
	-forward "tcp:127.0.0.1:$FWD_PORT=$B4:$HTTP_PORT"
	-expose "tcp:$EXPOSE_PORT=127.0.0.1:$HTTP_PORT"
	-forward "tcp:127.0.0.1:$RESET_FWD_PORT=beta:$RESET_PORT"
	-expose "tcp:$RESET_PORT=127.0.0.1:$RESET_PORT")
log "alpha: ${AS_NOBODY[*]} peer ${A_ARGS[*]}"
# ip netns exec, env and setpriv each exec the next, so the pid is the node's.
pt_spawn "$NS_A" "$A_LOG" env -i PATH=/usr/bin:/bin HOME="$A_HOME" XDG_RUNTIME_DIR="$A_RUN" \
	"${AS_NOBODY[@]}" "$BIN" "${A_ARGS[@]}"
A_PID=$PT_LAST_PID
A_SOCK=$A_RUN/peer/$A_IF.sock

# listening NS PORT: something listens on TCP PORT in NS.
listening() { [[ -n $(ip netns exec "$1" ss -Hltn "sport = :$2") ]]; }
alpha_settled() {
	pt_alive "$A_PID" || return 0
	grep -q 'msg="peer up"' "$A_LOG" && listening "$NS_A" "$SOCKS_PORT" &&
		listening "$NS_A" "$PROXY_PORT" && listening "$NS_A" "$FWD_PORT"
}
beta_settled() {
	pt_alive "$B_PID" || return 0
	pt_iface_ready "$NS_B" "$B_IF" "$B4" "$B6"
}
nodes_up() {
	pt_wait_until 15 alpha_settled || true
	pt_wait_until 15 beta_settled || true
	pt_alive "$A_PID" || { echo "alpha exited during start-up"; return 1; }
	pt_alive "$B_PID" || { echo "beta exited during start-up"; return 1; }
	alpha_settled || { echo "alpha: no 'peer up', or not listening on $SOCKS_PORT, $PROXY_PORT and $FWD_PORT after 15 s"; ip netns exec "$NS_A" ss -Hltn; return 1; }
	beta_settled || { echo "beta: $B_IF not up with $B4 and $B6 after 15 s"; return 1; }
	echo "alpha (pid $A_PID) and beta (pid $B_PID) up"
}
check "alpha and beta start (alpha's proxies and forward listen, beta's $B_IF has its addresses)" nodes_up
((PT_FAILED == 0)) || exit 1

# 1. alpha has no privilege and no device.
unprivileged() {
	local st
	st=$(grep -E '^(Uid|Gid|Groups|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):' "/proc/$A_PID/status")
	echo "$st"
	grep -Eq "^Uid:\s+$NOBODY_UID\s+$NOBODY_UID\s+$NOBODY_UID\s+$NOBODY_UID$" <<<"$st" || { echo "not uid $NOBODY_UID"; return 1; }
	for c in CapEff CapPrm CapBnd; do
		grep -Eq "^$c:\s+0000000000000000$" <<<"$st" || { echo "$c is not zero"; return 1; }
	done
	[[ $(readlink "/proc/$A_PID/exe") == "$BIN" ]] || { echo "pid $A_PID is $(readlink "/proc/$A_PID/exe"), not $BIN"; return 1; }
}
check "1. alpha runs as uid $NOBODY_UID ($NOBODY) with CapEff, CapPrm and CapBnd 0000000000000000" unprivileged
no_device() {
	local links
	links=$(ip -n "$NS_A" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1 | sort | tr '\n' ' ')
	echo "links of namespace a: $links"
	[[ $links == "eth0 lo " ]] || return 1
	! ip -n "$NS_A" -d link show | grep -qw tun || { echo "a TUN device:"; ip -n "$NS_A" -d link show; return 1; }
	state_of "$NS_A" >"$PT_DIR/state-a-after.txt"
	diff -u "$PT_DIR/state-a-before.txt" "$PT_DIR/state-a-after.txt" || { echo "links, addresses or routes changed"; return 1; }
	echo "links, addresses and routes as before alpha started"
}
check "1. namespace a has only lo and eth0 (no TUN), its addresses and routes untouched" no_device
logs_netstack() {
	grep -m1 'msg="peer up"' "$A_LOG"
	grep 'msg="peer up"' "$A_LOG" | grep -q 'driver=netstack'
}
check "1. alpha's log says peer up with driver=netstack" logs_netstack

# ---- the servers ----

pt_tmpdir WWW_B
pt_tmpdir WWW_A
pt_make_payload "$WWW_B/beta.bin" "$MIB"
pt_make_payload "$WWW_A/alpha.bin" "$MIB"
chmod 755 "$WWW_A" "$WWW_B"
pt_add_log http-b4 "$PT_DIR/http-b4.log"
pt_spawn "$NS_B" "$PT_DIR/http-b4.log" python3 -u -m http.server --bind "$B4" --directory "$WWW_B" "$HTTP_PORT"
pt_spawn "$NS_B" "$PT_DIR/http-b6.log" python3 -u -m http.server --bind "$B6" --directory "$WWW_B" "$HTTP_PORT"
pt_spawn "$NS_A" "$PT_DIR/http-a.log" python3 -u -m http.server --bind 127.0.0.1 --directory "$WWW_A" "$HTTP_PORT"
pt_spawn "$NS_B" "$PT_DIR/echo-b4.log" python3 "$PT_LIB_DIR/socks5udp.py" echo "$B4" "$ECHO_PORT"
pt_spawn "$NS_B" "$PT_DIR/echo-b6.log" python3 "$PT_LIB_DIR/socks5udp.py" echo "$B6" "$ECHO_PORT"
pt_spawn "$NS_B" "$PT_DIR/reset-b.log" python3 "$PT_LIB_DIR/tcpreset.py" serve "$B4" "$RESET_PORT"
pt_spawn "$NS_A" "$PT_DIR/reset-a.log" python3 "$PT_LIB_DIR/tcpreset.py" serve 127.0.0.1 "$RESET_PORT"
servers_up() {
	(($(ip netns exec "$NS_B" ss -Hltn "sport = :$HTTP_PORT" | wc -l) == 2)) && listening "$NS_A" "$HTTP_PORT" &&
		listening "$NS_B" "$RESET_PORT" && listening "$NS_A" "$RESET_PORT" &&
		(($(ip netns exec "$NS_B" ss -Hlun "sport = :$ECHO_PORT" | wc -l) == 2))
}
check "servers: HTTP on beta's $B4, [$B6] and a's 127.0.0.1 port $HTTP_PORT; UDP echo on beta's port $ECHO_PORT; tcpreset.py" \
	pt_wait_until 10 servers_up

# alpha_must_live: after a check that may kill alpha, the rest would only time out.
alpha_must_live() {
	pt_alive "$A_PID" || die "alpha is gone (see its log); the remaining checks are not run"
}

# fetch NS FILE KEY CURL_ARGS...: curl in NS (at most FETCH_SECS) must get the size and
# SHA-256 of FILE; "BYTES bytes in T s (R Mbit/s)" goes to MEASURED[KEY].
declare -A MEASURED
fetch() {
	local ns=$1 file=$2 key=$3 rc=0 out stats want got
	shift 3
	out=$PT_DIR/fetch-$key.bin
	stats=$(ip netns exec "$ns" curl -sS -g --max-time "$FETCH_SECS" -o "$out" \
		-w '%{size_download} %{time_total}' "$@") || rc=$?
	want="$(stat -c %s "$file") $(sha256sum <"$file" | cut -d' ' -f1)"
	got="none (no file)"
	[[ ! -e $out ]] || got="$(stat -c %s "$out") $(sha256sum <"$out" | cut -d' ' -f1)"
	rm -f -- "$out"
	MEASURED[$key]=$(awk -v s="$stats" 'BEGIN{split(s, a, " "); printf "%d bytes in %.2f s (%.0f Mbit/s)", a[1], a[2], (a[2] > 0 ? a[1] * 8 / a[2] / 1e6 : 0)}')
	[[ $rc == 0 ]] || MEASURED[$key]="curl exit $rc after ${MEASURED[$key]}"
	echo "curl $*: ${MEASURED[$key]}"
	echo "  want: $want"
	echo "  got:  $got"
	((rc == 0)) && [[ $got == "$want" ]]
}

# ---- 2-3: from a into the mesh, through alpha's proxies and forward ----

log "2-3. namespace a downloads $MIB MiB from beta through alpha"
URL_B=http://beta:$HTTP_PORT/beta.bin
check "2. curl --socks5-hostname 127.0.0.1:$SOCKS_PORT $URL_B: same SHA-256" \
	fetch "$NS_A" "$WWW_B/beta.bin" socks5 --socks5-hostname "127.0.0.1:$SOCKS_PORT" "$URL_B"
check "3. curl -x http://127.0.0.1:$PROXY_PORT $URL_B (absolute URI): same SHA-256" \
	fetch "$NS_A" "$WWW_B/beta.bin" http-proxy -x "http://127.0.0.1:$PROXY_PORT" "$URL_B"
check "3. curl -x http://127.0.0.1:$PROXY_PORT --proxytunnel $URL_B (CONNECT): same SHA-256" \
	fetch "$NS_A" "$WWW_B/beta.bin" http-connect -x "http://127.0.0.1:$PROXY_PORT" --proxytunnel "$URL_B"
check "3. curl http://127.0.0.1:$FWD_PORT/beta.bin (-forward to $B4:$HTTP_PORT): same SHA-256" \
	fetch "$NS_A" "$WWW_B/beta.bin" forward --noproxy '*' "http://127.0.0.1:$FWD_PORT/beta.bin"
for dst in "$B4" "$B6"; do
	check "3. SOCKS5 UDP ASSOCIATE: $DGRAMS datagrams to beta's $dst port $ECHO_PORT echoed whole" \
		ip netns exec "$NS_A" timeout 30 python3 "$PT_LIB_DIR/socks5udp.py" ask "127.0.0.1:$SOCKS_PORT" "$dst" "$ECHO_PORT" "$DGRAMS"
done
# forward_reset: a reads from the second forward until beta's end resets it; alpha lives on.
forward_reset() {
	local rc=0
	ip netns exec "$NS_A" timeout 10 bash -c "cat </dev/tcp/127.0.0.1/$RESET_FWD_PORT >/dev/null" || rc=$?
	echo "read from 127.0.0.1:$RESET_FWD_PORT until the end: exit $rc"
	sleep 0.5 # time for the relay to see the reset and tidy up
	pt_alive "$A_PID" || { echo "alpha died"; tail -n 30 "$A_LOG"; return 1; }
	echo "alpha still runs"
}
check "3. a connection through -forward to beta:$RESET_PORT (by name) that beta resets leaves alpha running" forward_reset
alpha_must_live
check "3. after the reset, the first forward still works: same SHA-256" \
	fetch "$NS_A" "$WWW_B/beta.bin" forward-after --noproxy '*' "http://127.0.0.1:$FWD_PORT/beta.bin"

# ---- 4-5: from the mesh into alpha ----

log "4-5. beta reaches alpha's tunnel addresses"
check "4. beta pings alpha's $A4" pt_await_ping 10 "$NS_B" "$A4"
check "4. beta pings alpha's $A6" pt_await_ping 10 "$NS_B" "$A6"
check "5. beta: curl http://$A4:$EXPOSE_PORT/alpha.bin (-expose to a's 127.0.0.1:$HTTP_PORT): same SHA-256" \
	fetch "$NS_B" "$WWW_A/alpha.bin" expose4 --noproxy '*' "http://$A4:$EXPOSE_PORT/alpha.bin"
check "5. beta: curl http://[$A6]:$EXPOSE_PORT/alpha.bin: same SHA-256" \
	fetch "$NS_B" "$WWW_A/alpha.bin" expose6 --noproxy '*' "http://[$A6]:$EXPOSE_PORT/alpha.bin"
# expose_reset: beta's connection to the second expose resets, and so does a's server; alpha lives on.
expose_reset() {
	ip netns exec "$NS_B" timeout 15 python3 "$PT_LIB_DIR/tcpreset.py" client "$A4" "$RESET_PORT" || return 1
	sleep 0.5
	pt_alive "$A_PID" || { echo "alpha died"; tail -n 30 "$A_LOG"; return 1; }
	echo "alpha still runs"
}
check "5. beta's connection to -expose $A4:$RESET_PORT, reset at both ends, leaves alpha running" expose_reset
alpha_must_live
check "5. after the reset, the first expose still works: same SHA-256" \
	fetch "$NS_B" "$WWW_A/alpha.bin" expose-after --noproxy '*' "http://$A4:$EXPOSE_PORT/alpha.bin"

# ---- 6: status over the socket in XDG_RUNTIME_DIR ----

# status_recent: alpha's status, asked as nobody, has beta with a handshake under 2 minutes old.
status_recent() {
	local js=$PT_DIR/status-alpha.json
	[[ -S $A_SOCK ]] || { echo "no socket $A_SOCK:"; ls -la "$A_RUN" "$A_RUN/peer" 2>&1; return 1; }
	"${AS_NOBODY[@]}" "$BIN" status -socket "$A_SOCK" -json >"$js" || return 1
	cat "$js"
	python3 - "$js" <<-'EOF' || return 1
		import datetime, json, re, sys
		doc = json.load(open(sys.argv[1]))
		if doc.get("driver") != "netstack":
		    sys.exit("driver is %r, not netstack" % doc.get("driver"))
		beta = [p for p in doc.get("peers", []) if p.get("name") == "beta"]
		if not beta or not beta[0].get("last_handshake"):
		    sys.exit("no handshake with beta")
		# RFC 3339 with nanoseconds: cut to microseconds for fromisoformat.
		t = re.sub(r"(\.\d{6})\d+", r"\1", beta[0]["last_handshake"]).replace("Z", "+00:00")
		age = (datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(t)).total_seconds()
		print("handshake with beta %.1f s ago" % age)
		if not -5 < age < 120:
		    sys.exit("not recent")
	EOF
	"${AS_NOBODY[@]}" "$BIN" status -socket "$A_SOCK" | tee "$PT_DIR/status-alpha.txt" | grep -Eq '^beta .* ago' ||
		{ echo "peer status -socket $A_SOCK shows no handshake with beta"; return 1; }
	env XDG_RUNTIME_DIR="$A_RUN" "${AS_NOBODY[@]}" "$BIN" status -iface "$A_IF" | grep -Eq '^beta .* ago' ||
		{ echo "peer status -iface $A_IF (XDG_RUNTIME_DIR=$A_RUN) shows no handshake with beta"; return 1; }
}
check "6. peer status -socket \$XDG_RUNTIME_DIR/peer/$A_IF.sock, and -iface $A_IF (as nobody): beta, handshake under 2 min ago" status_recent

# ---- 7: SIGTERM ----

stops_clean() {
	local rc=0
	kill -TERM "$A_PID"
	pt_wait_pid_exit "$A_PID" 5 || { echo "still running 5 s after SIGTERM"; return 1; }
	wait "$A_PID" || rc=$?
	pt_forget_pid "$A_PID"
	echo "exit status $rc"
	((rc == 0)) || return 1
	[[ ! -e $A_SOCK ]] || { echo "$A_SOCK left behind"; return 1; }
	grep 'msg="peer down"' "$A_LOG"
}
check "7. alpha exits on SIGTERM within 5 s, status 0, no socket file left" stops_clean
# quiet_log: the one WARN that nobody's node must give, and nothing else of that level.
quiet_log() {
	local bad wg
	wg=$(grep -E 'level=WARN .*wg socket' "$A_LOG" || true)
	bad=$(grep -E 'level=(WARN|ERROR)' "$A_LOG" | grep -v 'wg socket' || true)
	echo "${wg:-no line about the wg socket}"
	[[ -n $wg && $(wc -l <<<"$wg") == 1 ]] || return 1
	[[ -z $bad ]] || { echo "$bad"; return 1; }
}
check "7. alpha's log: one WARN (no wg socket), no other WARN or ERROR" quiet_log

echo "---- measured"
for k in socks5 http-proxy http-connect forward expose4 expose6; do
	echo "  $k: ${MEASURED[$k]:-not run}"
done
pt_summary netstack-test
