package netconf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
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
	otherNet.Addresses = pfxs("10.11.0.1/24", "fd10::1/64")
	twoV4 := examplePlan(Linux, "d0")
	twoV4.Addresses = pfxs("10.10.0.1/24", "10.10.0.7/24", "fd10::1/64")
	keepSecondary := examplePlan(Linux, "d0")
	keepSecondary.Addresses = pfxs("10.10.0.7/24", "fd10::1/64")
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
