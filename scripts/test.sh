#!/usr/bin/env bash
# test.sh: everything CI checks, in one command (the README's test command).
#
#   bash scripts/test.sh [--fuzztime COUNTx]
#
# Steps: gofmt (no file may need formatting), go vet, go test -race, a short fuzz run of
# every Fuzz target (discovered with go test -list), go build for linux and darwin, then
# the namespace tests of NS_TESTS below (scripts/mesh-test.sh, interop-test.sh,
# capture-test.sh, fault-test.sh, reload-test.sh, wg-test.sh, metrics-test.sh, livecap-test.sh,
# exit-test.sh, etcd-test.sh, netstack-test.sh, nat-test.sh) against the peer built
# here, and scripts/package-test.sh (the .deb and sd_notify). Every step runs even after a
# failure (lib.sh's pt_step); the summary lists each step's result and the exit status is 0
# only when all passed. The namespace tests need root: without it they skip, unless CI=true,
# where they fail.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/lib.sh

# A count, not a duration: with a duration go1.26's fuzz coordinator can report a spurious
# "context deadline exceeded" at the deadline (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME=100000x
while (($#)); do
	case $1 in
	--fuzztime) FUZZTIME=$2; shift 2 ;;
	--fuzztime=*) FUZZTIME=${1#--fuzztime=}; shift ;;
	*) echo "usage: $0 [--fuzztime DURATION]" >&2; exit 2 ;;
	esac
done

# On a fresh machine, as root, install what the namespace tests use (no-op when present).
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
	for c in ip ping iperf3 tshark wg python3 promtool curl; do
		command -v "$c" >/dev/null || { bash scripts/install-deps.sh; break; }
	done
fi

TMP=$(mktemp -d /tmp/peer-test.XXXXXX)
trap 'rm -rf -- "$TMP"' EXIT

gofmt_clean() {
	local out
	out=$(gofmt -l .)
	[[ -z $out ]] && return 0
	echo "these files need gofmt:"
	echo "$out"
	return 1
}

# fuzz_smoke runs each Fuzz target of each package for $FUZZTIME.
fuzz_smoke() {
	local pkgs pkg targets t rc=0 n=0
	pkgs=$(go list ./...) || rc=1
	for pkg in $pkgs; do
		targets=$(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true)
		for t in $targets; do
			n=$((n + 1))
			echo "fuzz $pkg $t ($FUZZTIME)"
			go test -run '^$' -fuzz "^$t\$" -fuzztime "$FUZZTIME" "$pkg" || rc=1
		done
	done
	echo "$n fuzz targets"
	return $rc
}

pt_step "gofmt -l ." gofmt_clean
pt_step "go vet ./..." go vet ./...
pt_step "go test -race -count=1 ./..." go test -race -count=1 -timeout 10m ./...
pt_step "fuzz smoke (-fuzztime=$FUZZTIME per target)" fuzz_smoke
pt_step "go build ./..." go build ./...
pt_step "GOOS=darwin go build ./..." env GOOS=darwin go build ./...
pt_step "go build -o peer ./peer" go build -o "$TMP/peer" ./peer
# The namespace tests, each run against the peer built here.
NS_TESTS=(mesh-test interop-test capture-test fault-test reload-test wg-test metrics-test livecap-test exit-test etcd-test netstack-test nat-test)
for t in "${NS_TESTS[@]}"; do
	if [[ -x $TMP/peer ]]; then
		pt_step "scripts/$t.sh" bash "scripts/$t.sh" --bin "$TMP/peer"
	else
		pt_step "scripts/$t.sh (no peer binary)" false
	fi
done
# The Debian package builds its own binary, installs it, and removes it again.
pt_step "scripts/package-test.sh" bash scripts/package-test.sh

pt_summary test.sh
