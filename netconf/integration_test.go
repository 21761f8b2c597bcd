package netconf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// needRoot skips the test unless running as root; under CI=true a missing
// privilege is a failure, so the integration test cannot silently vanish.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("integration test needs root, and CI=true forbids skipping it")
	}
	t.Skip("integration test needs root (network namespaces)")
}

// newNamespace creates a uniquely named network namespace holding a dummy
// link d0 (or a TUN device if the kernel has no dummy driver) and arranges for the namespace to be deleted when the test ends.
func newNamespace(t *testing.T, ctx context.Context) string {
	t.Helper()
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("netconf-%d-%s", os.Getpid(), hex.EncodeToString(rnd[:]))
	if err := Run(ctx, [][]string{{"ip", "netns", "add", ns}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Not ctx: the namespace must go even if the test timed out.
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := Run(cctx, [][]string{{"ip", "netns", "del", ns}}); err != nil {
			t.Errorf("deleting namespace: %v", err)
		}
	})
	err := Run(ctx, [][]string{{"ip", "-n", ns, "link", "add", "d0", "type", "dummy"}})
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Unknown device type") {
		// Kernel without the dummy driver: a persistent TUN device (what
		// peer really configures) serves the same purpose. With no process
		// attached it has no carrier, which does not stop configuration.
		t.Log("no dummy link support; using a TUN device as d0")
		err = Run(ctx, [][]string{{"ip", "-n", ns, "tuntap", "add", "dev", "d0", "mode", "tun"}})
	}
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// nsOutput runs `ip -n NS ARGS...` and returns its stdout.
func nsOutput(t *testing.T, ctx context.Context, ns string, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"-n", ns}, args...)...).Output()
	if err != nil {
		t.Fatalf("ip -n %s %s: %v", ns, strings.Join(args, " "), err)
	}
	return string(out)
}

// routesIn returns the destinations of routes on d0 in the namespace, both
// families, one per element, e.g. "10.20.1.0/24" or "fd10::2".
func routesIn(t *testing.T, ctx context.Context, ns string) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, fam := range []string{"-4", "-6"} {
		for line := range strings.Lines(nsOutput(t, ctx, ns, fam, "route", "show", "dev", "d0")) {
			if f := strings.Fields(line); len(f) > 0 {
				got[f[0]] = true
			}
		}
	}
	return got
}

// ipRouteForm is how `ip route` prints a prefix: host routes without /32 or
// /128.
func ipRouteForm(s string) string {
	s = strings.TrimSuffix(s, "/32")
	return strings.TrimSuffix(s, "/128")
}

func TestIntegrationNamespace(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := newNamespace(t, ctx)

	p := examplePlan(Linux, "d0")
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	routes := p.routes()

	if err := Run(ctx, InNamespace(ns, p.LinkUp())); err != nil {
		t.Fatalf("LinkUp: %v", err)
	}
	link := nsOutput(t, ctx, ns, "link", "show", "dev", "d0")
	if !strings.Contains(link, "mtu 1420") || !strings.Contains(link, ",UP") {
		t.Errorf("link not configured: %s", link)
	}
	addrs := nsOutput(t, ctx, ns, "addr", "show", "dev", "d0")
	for _, a := range p.Addresses {
		if !strings.Contains(addrs, " "+a.String()+" ") {
			t.Errorf("address %s missing:\n%s", a, addrs)
		}
	}
	// LinkUp is idempotent too.
	if err := Run(ctx, InNamespace(ns, p.LinkUp())); err != nil {
		t.Fatalf("LinkUp again: %v", err)
	}

	for i := range 2 {
		if err := Run(ctx, InNamespace(ns, p.RoutesUp())); err != nil {
			t.Fatalf("RoutesUp run %d: %v", i+1, err)
		}
	}
	got := routesIn(t, ctx, ns)
	t.Logf("routes on d0 after RoutesUp: %v", got)
	for _, r := range routes {
		if !got[ipRouteForm(r.String())] {
			t.Errorf("route %s missing after RoutesUp; routes on d0: %v", r, got)
		}
	}

	if err := Run(ctx, InNamespace(ns, p.RoutesDown())); err != nil {
		t.Fatalf("RoutesDown: %v", err)
	}
	got = routesIn(t, ctx, ns)
	for _, r := range routes {
		if got[ipRouteForm(r.String())] {
			t.Errorf("route %s still present after RoutesDown", r)
		}
	}
	// The connected networks of the addresses are not ours to remove.
	if !got["10.10.0.0/24"] || !got["fd10::/64"] {
		t.Errorf("connected routes disappeared: %v", got)
	}

	// A second teardown fails command by command: Run stops at the first
	// and names it, RunTolerant reports every one.
	err := Run(ctx, InNamespace(ns, p.RoutesDown()))
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "route del "+routes[0].String()) {
		t.Errorf("Run of RoutesDown on missing routes = %v, want an error naming the first del", err)
	}
	err = RunTolerant(ctx, InNamespace(ns, p.RoutesDown()))
	if j, ok := err.(interface{ Unwrap() []error }); !ok || len(j.Unwrap()) != len(routes) {
		t.Errorf("RunTolerant on missing routes = %v, want %d errors", err, len(routes))
	}

	// The rendered scripts, run twice each in the namespace, converge.
	up, err := p.UpScript()
	if err != nil {
		t.Fatal(err)
	}
	down, err := p.DownScript()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := Run(ctx, [][]string{{"ip", "netns", "exec", ns, "sh", "-c", up}}); err != nil {
			t.Fatalf("up script run %d: %v", i+1, err)
		}
	}
	got = routesIn(t, ctx, ns)
	for _, r := range routes {
		if !got[ipRouteForm(r.String())] {
			t.Errorf("route %s missing after up script", r)
		}
	}
	for i := range 2 {
		if err := Run(ctx, [][]string{{"ip", "netns", "exec", ns, "sh", "-c", down}}); err != nil {
			t.Fatalf("down script run %d: %v", i+1, err)
		}
	}
	got = routesIn(t, ctx, ns)
	for _, r := range routes {
		if got[ipRouteForm(r.String())] {
			t.Errorf("route %s still present after down script", r)
		}
	}
}

// TestIntegrationV6RoutesWithoutV6Address checks the note in the brief: an
// IPv6 route on a link with only IPv4 addresses is still accepted.
func TestIntegrationV6RoutesWithoutV6Address(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns := newNamespace(t, ctx)
	p := v4OnlyPlan(Linux, "d0")
	if err := Run(ctx, InNamespace(ns, append(p.LinkUp(), p.RoutesUp()...))); err != nil {
		t.Fatal(err)
	}
	got := routesIn(t, ctx, ns)
	if !got["fd00:20:1::/64"] || !got["10.10.0.1"] {
		t.Errorf("routes on d0: %v", got)
	}
}

// linkState is the addresses, MTU and routes of d0 in the namespace.
func linkState(t *testing.T, ctx context.Context, ns string) string {
	t.Helper()
	var b strings.Builder
	link := nsOutput(t, ctx, ns, "link", "show", "dev", "d0")
	if i := strings.Index(link, " mtu "); i >= 0 {
		b.WriteString(strings.Fields(link[i:])[1] + "\n")
	}
	var lines []string
	for line := range strings.Lines(nsOutput(t, ctx, ns, "-o", "addr", "show", "dev", "d0")) {
		f := strings.Fields(line)
		// N: d0 inet 10.10.0.1/24 ...; skip the kernel's link-local.
		if len(f) > 3 && !strings.HasPrefix(f[3], "fe80:") {
			lines = append(lines, f[2]+" "+f[3])
		}
	}
	for r := range routesIn(t, ctx, ns) {
		if !strings.HasPrefix(r, "fe80:") {
			lines = append(lines, "route "+r)
		}
	}
	slices.Sort(lines)
	b.WriteString(strings.Join(lines, "\n"))
	return b.String()
}

// TestIntegrationDiff: the system configured for one plan, then changed by
// LinkDiff and RoutesDiff, is the system configured for the next plan from
// scratch, with the kernel's promote_secondaries off (deleting a primary
// IPv4 address takes the secondaries of its network with it, and the last
// IPv4 address the interface's IPv4 routes) and on.
func TestIntegrationDiff(t *testing.T) {
	needRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	otherNet := examplePlan(Linux, "d0")
	otherNet.Addresses = pfx("10.11.0.1/24", "fd10::1/64")
	twoV4 := examplePlan(Linux, "d0")
	twoV4.Addresses = pfx("10.10.0.1/24", "10.10.0.7/24", "fd10::1/64")
	keepSecondary := examplePlan(Linux, "d0")
	keepSecondary.Addresses = pfx("10.10.0.7/24", "fd10::1/64")
	for _, tc := range []struct {
		name     string
		from, to Plan
	}{
		{"address in the same network, mtu, routes", examplePlan(Linux, "d0"), reloadedPlan(Linux, "d0")},
		{"address in another network", examplePlan(Linux, "d0"), otherNet},
		{"primary removed, secondary kept", twoV4, keepSecondary},
		{"back", reloadedPlan(Linux, "d0"), examplePlan(Linux, "d0")},
	} {
		for _, promote := range []string{"0", "1"} {
			t.Run(tc.name+"/promote_secondaries="+promote, func(t *testing.T) {
				want := newNamespace(t, ctx)
				if err := Run(ctx, InNamespace(want, append(tc.to.LinkUp(), tc.to.RoutesUp()...))); err != nil {
					t.Fatal(err)
				}
				ns := newNamespace(t, ctx)
				sysctl := fmt.Sprintf("echo %s > /proc/sys/net/ipv4/conf/d0/promote_secondaries", promote)
				if err := Run(ctx, InNamespace(ns, [][]string{{"sh", "-c", sysctl}})); err != nil {
					t.Fatal(err)
				}
				if err := Run(ctx, InNamespace(ns, append(tc.from.LinkUp(), tc.from.RoutesUp()...))); err != nil {
					t.Fatal(err)
				}
				// Every command succeeds: no route is deleted after
				// the kernel flushed it with an address.
				diff := Diff(tc.from, tc.to)
				if err := Run(ctx, InNamespace(ns, diff)); err != nil {
					t.Fatalf("diff: %v", err)
				}
				if got, want := linkState(t, ctx, ns), linkState(t, ctx, want); got != want {
					t.Errorf("after the diff\n%s\nfrom scratch\n%s\ncommands:\n%s", got, want, Script("", diff))
				}
			})
		}
	}
}

// nsExec runs a command inside the namespace with `ip netns exec` and
// returns its stdout.
func nsExec(t *testing.T, ctx context.Context, ns string, args ...string) string {
	t.Helper()
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, args...)...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", ns, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// exitIntegrationPlan uses an exit, serves as one and clamps, on d0.
func exitIntegrationPlan(before map[string]string) Plan {
	return Plan{
		OS:        Linux,
		Iface:     "d0",
		MTU:       1420,
		Addresses: pfx("10.10.0.1/24", "fd10::1/64"),
		Routes:    pfx("10.10.0.2/32", "10.20.1.0/24", "fd00:20:1::/64"),
		UseExit:   true, Exit: true, ClampMSS: true,
		SysctlsBefore: before,
	}
}

// The helper process: TestIntegrationExit runs this test binary inside its
// namespace, so that Run executes the plan natively, batching included (a
// command wrapped by InNamespace is never batched, and the batch is where
// an IPv6 rule could lose its family).
const exitHelperEnv = "NETCONF_EXIT_HELPER"

func TestIntegrationExitHelper(t *testing.T) {
	mode := os.Getenv(exitHelperEnv)
	if mode == "" {
		t.Skip("helper process of TestIntegrationExit")
	}
	var before map[string]string
	if err := json.Unmarshal([]byte(os.Getenv(exitHelperEnv+"_BEFORE")), &before); err != nil {
		t.Fatal(err)
	}
	p := exitIntegrationPlan(before)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	switch mode {
	case "up":
		if err := Run(ctx, p.NetworkUp()); err != nil {
			t.Fatalf("Run(NetworkUp): %v", err)
		}
	case "down":
		if err := RunTolerant(ctx, p.NetworkDown()); err != nil {
			t.Fatalf("RunTolerant(NetworkDown): %v", err)
		}
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}

// TestIntegrationExit brings up a plan using and serving as an exit in a
// namespace, checks the rules (IPv6 ones included), table, nftables table
// and sysctls, runs the up script over it (no duplicated rule), tears it
// down, and checks that rules, routes, nftables and sysctls are exactly as
// before, twice (the down script after the teardown must find nothing to
// do).
func TestIntegrationExit(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"nft", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not found, and CI=true forbids skipping", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ns := newNamespace(t, ctx)
	// No duplicate address detection: the addresses' local routes must
	// not change on their own between snapshots.
	nsExec(t, ctx, ns, "sysctl", "-q", "-w", "net.ipv6.conf.d0.accept_dad=0")

	before := map[string]string{}
	for _, k := range ManagedSysctls {
		before[k] = strings.TrimSpace(nsExec(t, ctx, ns, "sysctl", "-n", k))
	}
	t.Logf("sysctls before: %v", before)
	p := exitIntegrationPlan(before)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := Run(ctx, InNamespace(ns, p.LinkUp())); err != nil {
		t.Fatalf("LinkUp: %v", err)
	}

	type snap map[string]string
	snapshot := func() snap {
		s := snap{}
		for _, c := range [][]string{
			{"ip", "rule"}, {"ip", "-6", "rule"},
			{"ip", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
			{"nft", "list", "ruleset"},
			append([]string{"sysctl"}, ManagedSysctls...),
		} {
			s[strings.Join(c, " ")] = nsExec(t, ctx, ns, c...)
		}
		return s
	}
	compare := func(when string, got, want snap) {
		t.Helper()
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s differs\n--- now\n%s--- before\n%s", when, k, got[k], w)
			}
		}
	}
	helper := func(mode string) {
		t.Helper()
		b, _ := json.Marshal(before)
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self, "-test.run=^TestIntegrationExitHelper$", "-test.v", "-test.timeout=30s")
		cmd.Env = append(os.Environ(), exitHelperEnv+"="+mode, exitHelperEnv+"_BEFORE="+string(b))
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestIntegrationExitHelper") {
			t.Fatalf("helper %s: %v\n%s", mode, err, out)
		}
	}
	count := func(out, substr string) int { return strings.Count(out, substr) }
	check := func(when string) {
		t.Helper()
		for _, fam := range []string{"-4", "-6"} {
			rules := nsOutput(t, ctx, ns, fam, "rule")
			for _, r := range []string{"not from all fwmark 0xca6c lookup 51820", "from all lookup main suppress_prefixlength 0"} {
				if n := count(rules, r); n != 1 {
					t.Errorf("%s: ip %s rule has %q %d times, want once:\n%s", when, fam, r, n, rules)
				}
			}
			if table := nsOutput(t, ctx, ns, fam, "route", "show", "table", "51820"); !strings.HasPrefix(table, "default dev d0") {
				t.Errorf("%s: ip %s route show table 51820:\n%s", when, fam, table)
			}
		}
		if tables := nsExec(t, ctx, ns, "nft", "list", "tables"); tables != "table inet peer-d0\n" {
			t.Errorf("%s: nft tables:\n%s", when, tables)
		}
		table := nsExec(t, ctx, ns, "nft", "list", "table", "inet", "peer-d0")
		for _, want := range []string{
			"chain forward", "maxseg size > 1380 tcp option maxseg size set 1380", "maxseg size > 1360 tcp option maxseg size set 1360",
			"chain postrouting", `iifname "d0" oifname != "d0" masquerade`,
			"chain premangle", "chain postmangle", "meta mark 0x0000ca6c ct mark set meta mark",
			"chain preraw", "ip daddr 10.10.0.1 fib saddr type != local drop", "ip6 daddr fd10::1 fib saddr type != local drop",
		} {
			if !strings.Contains(table, want) {
				t.Errorf("%s: nft table lacks %q:\n%s", when, want, table)
			}
		}
		for _, k := range ManagedSysctls {
			if v := strings.TrimSpace(nsExec(t, ctx, ns, "sysctl", "-n", k)); v != "1" {
				t.Errorf("%s: %s = %s, want 1", when, k, v)
			}
		}
	}

	orig := snapshot()
	helper("up")
	check("after Run(NetworkUp)")

	up, err := p.UpScript()
	if err != nil {
		t.Fatal(err)
	}
	nsExec(t, ctx, ns, "sh", "-c", up)
	check("after the up script over it")

	helper("down")
	compare("after RunTolerant(NetworkDown)", snapshot(), orig)

	down, err := p.DownScript()
	if err != nil {
		t.Fatal(err)
	}
	nsExec(t, ctx, ns, "sh", "-c", down)
	compare("after the down script over it", snapshot(), orig)
}

// policyState is what a policy changes in a namespace: the rules, table
// DefaultFwmark of both families, the nftables ruleset and the sysctls.
func policyState(t *testing.T, ctx context.Context, ns string) string {
	t.Helper()
	var b strings.Builder
	for _, c := range [][]string{
		{"ip", "-4", "rule"}, {"ip", "-6", "rule"},
		// A table that never existed is an error, one that was emptied is
		// not: both print nothing here.
		{"sh", "-c", "ip -4 route show table 51820 2>/dev/null || true"},
		{"sh", "-c", "ip -6 route show table 51820 2>/dev/null || true"},
		{"nft", "list", "ruleset"},
		append([]string{"sysctl"}, ManagedSysctls...),
	} {
		fmt.Fprintf(&b, "$ %s\n%s", strings.Join(c, " "), nsExec(t, ctx, ns, c...))
	}
	return b.String()
}

// TestIntegrationPolicyDiff: the commands of Diff take a namespace
// configured with one plan to exactly the policy a namespace configured
// with the other from scratch has, for each way a reload changes it.
func TestIntegrationPolicyDiff(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("nft"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("nft not found, and CI=true forbids skipping")
		}
		t.Skip("nft not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	zero := map[string]string{"net.ipv4.ip_forward": "0", "net.ipv6.conf.all.forwarding": "0", "net.ipv4.conf.all.src_valid_mark": "0"}
	with := func(edit func(*Plan)) Plan {
		p := examplePlan(Linux, "d0")
		p.SysctlsBefore = zero
		edit(&p)
		return p
	}
	plain := with(func(*Plan) {})
	client := with(func(p *Plan) { p.UseExit = true })
	clientMoved := with(func(p *Plan) {
		p.UseExit, p.ClampMSS, p.MTU = true, true, 1380
		p.Addresses = pfx("10.10.0.9/24", "fd10::9/64")
	})
	exit := with(func(p *Plan) { p.Exit, p.ClampMSS = true, true })
	router := with(func(p *Plan) { p.ClampMSS = true })
	everything := with(func(p *Plan) { p.UseExit, p.Exit, p.ClampMSS = true, true, true })
	for _, tc := range []struct {
		name     string
		from, to Plan
	}{
		{"starts using an exit", plain, client},
		{"stops using an exit", client, plain},
		{"moves and clamps while using an exit", client, clientMoved},
		{"stops being an exit", exit, router},
		{"becomes an exit and uses one", router, everything},
		{"drops it all", everything, plain},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setUp := func(p Plan) string {
				ns := newNamespace(t, ctx)
				cmds := append([][]string{{"sysctl", "-q", "-w", "net.ipv6.conf.d0.accept_dad=0"}}, p.LinkUp()...)
				if err := Run(ctx, InNamespace(ns, append(cmds, p.NetworkUp()...))); err != nil {
					t.Fatal(err)
				}
				return ns
			}
			want := setUp(tc.to)
			ns := setUp(tc.from)
			diff := Diff(tc.from, tc.to)
			if err := Run(ctx, InNamespace(ns, diff)); err != nil {
				t.Fatalf("diff: %v\n%s", err, Script("", diff))
			}
			if got, want := policyState(t, ctx, ns), policyState(t, ctx, want); got != want {
				t.Errorf("after the diff\n%s\nfrom scratch\n%s\ncommands:\n%s", got, want, Script("", diff))
			}
		})
	}
}
