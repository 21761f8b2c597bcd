#!/usr/bin/env bash
# package-test.sh: the Debian package and the systemd side of peer, on this machine.
#
#   bash scripts/package-test.sh [--deb FILE] [-v]
#
# Builds the package with scripts/package.sh (unless --deb), installs it with dpkg -i,
# and checks the installed files: `peer version` names this checkout's commit, `peer
# check` accepts /usr/share/doc/peer/peers.example.yaml, the shipped manual is `peer
# help`, and systemd-analyze verify accepts the unit (when systemd-analyze is here).
# Then the notification protocol of the installed binary: a node in a namespace, with
# NOTIFY_SOCKET naming a datagram socket that scripts/notify-listen.py serves, must send
# READY=1 only once its TUN is up with its addresses and its routes installed (the
# listener reads them with ip(8) the moment READY=1 arrives), RELOADING=1 (with
# MONOTONIC_USEC) then READY=1 on SIGHUP, and STOPPING=1 on SIGTERM; it runs with no
# capability but those of the unit's CapabilityBoundingSet, and NoNewPrivileges. Last, dpkg -r must
# remove every file dpkg -L listed, and dpkg -P its database entry. Cleanup purges the
# package even when a check fails.
# Refuses to run when a peer package is already installed (it is not ours to remove).
# Needs root; skips without it (fails if CI=true).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pt_init 120 "$@"

DEB=
# shellcheck disable=SC2034 # PT_VERBOSE is read by lib.sh's check
while (($#)); do
	case $1 in
	--deb) DEB=$2; shift 2 ;;
	-v) PT_VERBOSE=1; shift ;;
	*) echo "usage: $0 [--deb FILE] [-v]" >&2; exit 2 ;;
	esac
done
require_cmds dpkg dpkg-deb dpkg-query go git ip python3 setpriv timeout

installed() { [[ $(dpkg-query -W -f='${db:Status-Status}' peer 2>/dev/null) == installed ]]; }
installed && die "a peer package is already installed here; remove it first (this test will not)"

if [[ -z $DEB ]]; then
	log "building the package"
	DEB=$(bash "$PT_LIB_DIR/package.sh" -o "$PT_DIR") || die "scripts/package.sh"
fi
DEB=$(realpath "$DEB")
log "testing $DEB"
check "the package is named peer_<version>_<arch>.deb" \
	bash -c '[[ $(basename "$1") == "peer_$(dpkg-deb -f "$1" Version)_$(dpkg-deb -f "$1" Architecture).deb" ]]' _ "$DEB"
check "the package depends on iproute2 and recommends wireguard-tools" \
	bash -c '[[ $(dpkg-deb -f "$1" Depends) == *iproute2* && $(dpkg-deb -f "$1" Recommends) == *wireguard-tools* ]]' _ "$DEB"

# From here on the package may be installed: cleanup removes it whatever happens.
# (purge: the postrm keeps a removed package in dpkg's database as config-files.)
pt_on_cleanup "dpkg-query -W -f='\${db:Status-Status}' peer | grep -qxE 'installed|config-files|half-.*|unpacked' && dpkg -P peer"
check "dpkg -i installs the package" dpkg -i "$DEB"
installed || die "the package is not installed; nothing else to test"
dpkg -L peer >"$PT_DIR/files.txt"
# Which listed paths are ours alone: the files, and the directories named peer.
grep -E '^/(usr/bin/peer|lib/systemd/system/peer@\.service|usr/share/doc/peer.*|etc/peer)$' "$PT_DIR/files.txt" >"$PT_DIR/ours.txt" || true

COMMIT=$(git -C "$PT_REPO_DIR" rev-parse HEAD)
version_names_commit() {
	local out
	out=$(/usr/bin/peer version)
	echo "$out"
	[[ $out == "peer $(dpkg-query -W -f='${Version}' peer) commit $COMMIT"* ]]
}
check "peer version names the package version and commit ${COMMIT:0:12}" version_names_commit
check "peer check accepts the installed example mesh file" /usr/bin/peer check -config /usr/share/doc/peer/peers.example.yaml
check "the shipped manual is peer help" bash -c 'diff <(/usr/bin/peer help) /usr/share/doc/peer/peer-help.txt'
check "/etc/peer is a 0700 directory" bash -c '[[ $(stat -c %a /etc/peer) == 700 ]]'
if command -v systemd-analyze >/dev/null; then
	check "systemd-analyze verify accepts peer@peer0.service" \
		systemd-analyze verify --man=no /lib/systemd/system/peer@peer0.service
fi

# ---- sd_notify ----
IFACE=${PT_PREFIX%-}n
IFACE=${IFACE:0:15}
pt_netns NS node
/usr/bin/peer genkey >"$PT_DIR/alpha.key"
/usr/bin/peer genkey >"$PT_DIR/beta.key"
chmod 600 "$PT_DIR/alpha.key" "$PT_DIR/beta.key"
cat >"$PT_DIR/mesh.yaml" <<MESH
interface:
  mtu: 1420
peers:
  - name: alpha
    public_key: "$(/usr/bin/peer pubkey <"$PT_DIR/alpha.key")"
    address: [10.77.0.1/24, fd77::1/64]
  - name: beta
    public_key: "$(/usr/bin/peer pubkey <"$PT_DIR/beta.key")"
    address: [10.77.0.2/24, fd77::2/64]
    subnets: [10.77.2.0/24, fd77:2::/64]
    endpoint: "192.0.2.2:51820"
MESH
NLOG=$PT_DIR/notify.txt
NSOCK=$PT_DIR/notify.sock
pt_spawn "$NS" "$PT_DIR/listener.log" python3 "$PT_LIB_DIR/notify-listen.py" "$NSOCK" "$NLOG" "$NS" "$IFACE"
pt_add_log listener "$PT_DIR/listener.log"
pt_wait_until 10 grep -qx LISTENING "$NLOG" || die "the notify listener did not start"
# The node's ip(8) is a wrapper that waits 0.5 s before each call: a READY=1 sent before
# the addresses or routes are in would then reach the listener well before they are,
# where without it the listener's own ip(8) could lose the race and see them anyway.
mkdir -p "$PT_DIR/slowip"
printf '#!/bin/sh\nsleep 0.5\nexec %s "$@"\n' "$(command -v ip)" >"$PT_DIR/slowip/ip"
chmod 755 "$PT_DIR/slowip/ip"
# The node runs with the capabilities the unit leaves it (CapabilityBoundingSet of the
# installed unit, as setpriv(1) words) and NoNewPrivileges, so the test also shows that
# they are enough for a node with its TUN, addresses and routes.
UNIT_CAPS=$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/peer@.service)
SETPRIV_CAPS=-all
for c in $UNIT_CAPS; do
	c=${c#CAP_}
	SETPRIV_CAPS+=,+${c,,}
done
log "node capabilities: $UNIT_CAPS (setpriv --bounding-set=$SETPRIV_CAPS)"
pt_add_log node "$PT_DIR/node.log"
pt_spawn "$NS" "$PT_DIR/node.log" setpriv --bounding-set="$SETPRIV_CAPS" --inh-caps=-all --no-new-privs \
	env PATH="$PT_DIR/slowip:$PATH" NOTIFY_SOCKET="$NSOCK" /usr/bin/peer -config "$PT_DIR/mesh.yaml" \
	-key "$PT_DIR/alpha.key" -iface "$IFACE" -socket "$PT_DIR/node.sock" -log-format json
NODE=$PT_LAST_PID

# msgs prints the notifications received so far, one a line.
msgs() { sed -n 's/^MSG //p' "$NLOG"; }
nth_msg_is() { [[ $(msgs | sed -n "$1p") == $2 ]]; }
ready_state() {
	local first
	first=$(msgs | head -n 1)
	echo "first notification: $first"
	echo "state of $IFACE when it arrived:"
	sed -n '/^ADDR\|^ROUTE/p;/^END/q' "$NLOG"
	[[ $first == READY=1* ]] || return 1
	local state
	state=$(sed -n '/^ADDR\|^ROUTE/p;/^END/q' "$NLOG")
	[[ $state == *"inet 10.77.0.1/24"* && $state == *"inet6 fd77::1/64"* && $state == *"UP"* ]] || return 1
	[[ $state == *"ROUTE 10.77.2.0/24"* && $state == *"ROUTE fd77:2::/64"* ]] || return 1
}
check "READY=1 arrives" pt_wait_until 15 nth_msg_is 1 'READY=1*'
check "at READY=1 the TUN is up with its addresses and the routes are installed" ready_state
check "READY=1 carries a STATUS= line" bash -c '[[ $(sed -n "s/^MSG //p" "$1" | head -n 1) == *"|STATUS=running"* ]]' _ "$NLOG"
check "the node logs JSON with -log-format json" bash -c 'grep -m1 "\"msg\":\"peer up\"" "$1" | python3 -c "import json,sys; json.loads(sys.stdin.read())"' _ "$PT_DIR/node.log"

kill -HUP "$NODE"
check "SIGHUP: RELOADING=1 with MONOTONIC_USEC" pt_wait_until 10 nth_msg_is 2 'RELOADING=1|MONOTONIC_USEC=[0-9]*'
check "SIGHUP: then READY=1" pt_wait_until 10 nth_msg_is 3 'READY=1*'
check "the node still runs after the reload" pt_alive "$NODE"
only_unit_caps() {
	local eff
	eff=$(awk '$1 == "CapEff:" {print $2}' "/proc/$NODE/status")
	echo "CapEff $eff, the unit allows $UNIT_CAPS"
	# 0x1000 is bit 12, CAP_NET_ADMIN; a unit that allows more must update this check.
	[[ $UNIT_CAPS == CAP_NET_ADMIN && $eff == 0000000000001000 ]]
}
check "the node ran with only the unit's capabilities" only_unit_caps

kill -TERM "$NODE"
check "SIGTERM: STOPPING=1" pt_wait_until 10 nth_msg_is 4 'STOPPING=1*'
check "the node exits 0 on SIGTERM" pt_stop "$NODE" 10
[[ -z ${PT_VERBOSE:-} ]] || { echo "notifications:"; sed 's/^/    | /' "$NLOG"; }

# ---- removal ----
check "dpkg -r removes the package" dpkg -r peer
nothing_left() {
	local f left=0
	while IFS= read -r f; do
		if [[ -e $f ]]; then
			echo "left behind: $f"
			left=1
		fi
	done <"$PT_DIR/ours.txt"
	(($(wc -l <"$PT_DIR/ours.txt") >= 6)) || { echo "dpkg -L listed too little:"; cat "$PT_DIR/files.txt"; return 1; }
	! installed || { echo "still installed"; return 1; }
	return $left
}
check "no file of the package is left ($(wc -l <"$PT_DIR/ours.txt") paths of dpkg -L)" nothing_left
purged() { dpkg -P peer && [[ $(dpkg-query -W -f='${db:Status-Status}' peer 2>/dev/null || echo not-installed) == not-installed ]]; }
check "dpkg -P then leaves no trace in dpkg's database" purged

pt_summary package-test
