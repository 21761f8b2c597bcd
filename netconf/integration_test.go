package netconf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
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
