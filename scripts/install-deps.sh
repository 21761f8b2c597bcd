#!/usr/bin/env bash
# install-deps.sh: installs, on Debian/Ubuntu as root, the packages the tests and the benchmark use,
# skipping those already installed. Called by .ci/run and by scripts/test.sh on a fresh machine.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
# iproute2: ip netns/veth/bridge; iputils-ping; wireguard-tools: wg(8) to drive stock
# wireguard-go; tshark (pulls dumpcap): capture checks; python3: checked TCP transfers;
# procps: pgrep/ps; iperf3 and nftables: the benchmark and firewall experiments;
# prometheus (for promtool) and curl: the metrics checks; etcd-server: a real etcd for the
# meshstore tests (etcd 3.4 on Debian 12).
PKGS=(iproute2 iputils-ping iperf3 tshark wireguard-tools nftables python3 procps ca-certificates git prometheus curl etcd-server)
missing=()
for p in "${PKGS[@]}"; do
	[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == 'install ok installed' ]] || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
	echo "installing: ${missing[*]}"
	# No setuid dumpcap and no debconf question: the tests run as root anyway.
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
	apt-get update -q
	apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
