package netconf

import (
	"net/netip"
	"slices"
	"testing"
)

// reloadedPlan is examplePlan after a reload: the MTU drops, the IPv4
// address changes, a route is gone (192.0.2.0/24), one is new
// (10.20.3.0/24, fd00:30::/64), and the rest is unchanged, one of them
// written with host bits and in another order (no change once masked).
func reloadedPlan(os, iface string) Plan {
	return Plan{
		OS:        os,
		Iface:     iface,
		MTU:       1380,
		Addresses: pfx("10.10.0.5/24", "fd10::1/64"),
		Routes: pfx("fd10::2/128", "10.10.0.2/32", "10.20.1.1/24", "fd00:20:1::/64",
			"10.20.3.0/24", "fd00:30::/64"),
	}
}

func TestDiffGolden(t *testing.T) {
	for _, tc := range []struct{ name, os, iface string }{
		{"linux", Linux, "peer0"},
		{"darwin", Darwin, "utun3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			from, to := examplePlan(tc.os, tc.iface), reloadedPlan(tc.os, tc.iface)
			h := "peer: reload of " + tc.iface
			golden(t, tc.name+"_diff", Script(h, Diff(from, to)))
			// Diff is LinkDiff and RoutesDiff, reordered.
			want := append(LinkDiff(from, to), RoutesDiff(from, to)...)
			got := Diff(from, to)
			slices.SortFunc(want, slices.Compare)
			slices.SortFunc(got, slices.Compare)
			if !slices.EqualFunc(got, want, slices.Equal) {
				t.Errorf("Diff %q\nis not LinkDiff and RoutesDiff %q", got, want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	from, to := examplePlan(Linux, "peer0"), reloadedPlan(Linux, "peer0")
	c := Compare(from, to)
	if c.OldMTU != 1420 || c.NewMTU != 1380 {
		t.Errorf("mtu %d -> %d", c.OldMTU, c.NewMTU)
	}
	eq := func(what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}
	eq("addresses added", strs(c.AddressesAdded), "10.10.0.5/24")
	eq("addresses removed", strs(c.AddressesRemoved), "10.10.0.1/24")
	eq("routes added", strs(c.RoutesAdded), "10.20.3.0/24", "fd00:30::/64")
	eq("routes removed", strs(c.RoutesRemoved), "192.0.2.0/24")
	if c.Empty() || !Compare(from, from).Empty() {
		t.Error("Empty is wrong")
	}
}

func TestDiffOfTheSamePlanIsNothing(t *testing.T) {
	for _, goos := range []string{Linux, Darwin, "plan9"} {
		p := examplePlan(goos, "peer0")
		// The same routes in another order, one duplicated, one with
		// host bits: the same system state.
		q := p
		q.Routes = append(slices.Clone(p.Routes), p.Routes[0])
		slices.Reverse(q.Routes)
		if cmds := append(Diff(p, q), append(LinkDiff(p, q), RoutesDiff(p, q)...)...); len(cmds) != 0 {
			t.Errorf("%s: %q", goos, cmds)
		}
	}
}

func TestDiffOnlyRoutes(t *testing.T) {
	from := examplePlan(Linux, "peer0")
	to := from
	to.Routes = pfx("10.10.0.2/32", "fd00:20:1::/64", "192.0.2.0/24", "fd10::2/128", "10.30.0.0/16")
	if cmds := LinkDiff(from, to); len(cmds) != 0 {
		t.Errorf("routes alone changed the link: %q", cmds)
	}
	want := [][]string{
		{"ip", "route", "del", "10.20.1.0/24", "dev", "peer0"},
		{"ip", "route", "replace", "10.30.0.0/16", "dev", "peer0"},
	}
	if got := RoutesDiff(from, to); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("RoutesDiff: %q, want %q", got, want)
	}
}

func TestLinkDiffIPv6AddressOnly(t *testing.T) {
	from := examplePlan(Linux, "peer0")
	to := from
	to.Addresses = pfx("10.10.0.1/24", "fd10::9/64")
	// IPv6 routes survive an address removal: no restore.
	want := [][]string{
		{"ip", "-6", "addr", "replace", "fd10::9/64", "dev", "peer0"},
		{"ip", "-6", "addr", "del", "fd10::1/64", "dev", "peer0"},
	}
	if got := LinkDiff(from, to); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("LinkDiff: %q, want %q", got, want)
	}
}

func strs(ps []netip.Prefix) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}

func TestPolicyDiffGolden(t *testing.T) {
	exitOff := exitPlan(Linux, "peer0")
	exitOff.Exit = false
	for _, tc := range []struct {
		name     string
		from, to Plan
	}{
		{"linux_diff_useexit_on", examplePlan(Linux, "peer0"), exitClientPlan(Linux, "peer0")},
		{"linux_diff_exit_off", exitPlan(Linux, "peer0"), exitOff},
		{"darwin_diff_useexit_on", examplePlan(Darwin, "utun3"), exitClientPlan(Darwin, "utun3")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Compare(tc.from, tc.to)
			if !c.PolicyChanged || c.Empty() {
				t.Errorf("Compare = %+v, want PolicyChanged", c)
			}
			diff := Diff(tc.from, tc.to)
			golden(t, tc.name, Script("peer: reload of "+tc.to.Iface, diff))
			// The routes and link as without policy, then PolicyDiff.
			plainFrom, plainTo := tc.from, tc.to
			plainFrom.UseExit, plainFrom.Exit, plainFrom.ClampMSS = false, false, false
			plainTo.UseExit, plainTo.Exit, plainTo.ClampMSS = false, false, false
			want := slices.Concat(Diff(plainFrom, plainTo), PolicyDiff(tc.from, tc.to))
			if !slices.EqualFunc(diff, want, slices.Equal) {
				t.Errorf("Diff =\n%q\nwant\n%q", diff, want)
			}
		})
	}
}

// TestPolicyDiffNoGap: a reload that keeps using an exit never takes its
// protection down, not even for a moment: no rule, route or table of the
// policy is deleted, and what changed is replaced atomically.
func TestPolicyDiffNoGap(t *testing.T) {
	from := exitClientPlan(Linux, "peer0")
	from.ClampMSS = true
	for _, tc := range []struct {
		name string
		edit func(*Plan)
		want [][]string // exactly PolicyDiff
	}{
		{"new address", func(p *Plan) { p.Addresses = append(slices.Clone(p.Addresses), netip.MustParsePrefix("10.10.9.1/24")) }, nil},
		{"new MTU", func(p *Plan) { p.MTU = 1380 }, nil},
		{"becomes an exit too", func(p *Plan) { p.Exit = true }, [][]string{
			{"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
			{"sysctl", "-q", "-w", "net.ipv6.conf.all.forwarding=1"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			to := from
			tc.edit(&to)
			got := PolicyDiff(from, to)
			if len(got) == 0 {
				t.Fatal("no change")
			}
			for _, c := range got {
				if kind(c) == teardown {
					t.Errorf("takes down %q", c)
				}
			}
			nft := got[len(got)-1]
			if nft[0] != "nft" || nft[1] != to.nftScript() {
				t.Errorf("last command %q, want the new nft script", nft)
			}
			if tc.want != nil && !slices.EqualFunc(got[:len(got)-1], tc.want, slices.Equal) {
				t.Errorf("before the nft script: %q, want %q", got[:len(got)-1], tc.want)
			}
		})
	}
	if got := PolicyDiff(from, from); got != nil {
		t.Errorf("PolicyDiff of a plan with itself = %q", got)
	}
	// Stopping to use the exit removes exactly its rules and routes, and
	// restores src_valid_mark; the table stays for the clamping.
	to := from
	to.UseExit = false
	to.SysctlsBefore = map[string]string{"net.ipv4.conf.all.src_valid_mark": "0"}
	from.SysctlsBefore = to.SysctlsBefore
	got := PolicyDiff(from, to)
	want := slices.Concat([][]string{{"nft", to.nftScript()}}, from.exitRules("del"), from.exitRoutes("del"),
		[][]string{{"sysctl", "-q", "-w", "net.ipv4.conf.all.src_valid_mark=0"}})
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("exit off:\n%q\nwant\n%q", got, want)
	}
}

func TestPolicyUnchanged(t *testing.T) {
	p := exitClientPlan(Linux, "peer0")
	q := p
	// Sysctls read at another time and endpoints, which Linux ignores,
	// are no change of policy.
	q.SysctlsBefore = map[string]string{"net.ipv4.conf.all.src_valid_mark": "1"}
	q.Endpoints = addrs("203.0.113.9")
	if c := Compare(p, q); !c.Empty() {
		t.Errorf("Compare = %+v, want empty", c)
	}
	if cmds := Diff(p, q); len(cmds) != 0 {
		t.Errorf("Diff = %q", cmds)
	}
	// On darwin the endpoints are policy.
	d, e := exitClientPlan(Darwin, "utun3"), exitClientPlan(Darwin, "utun3")
	e.Endpoints = addrs("203.0.113.9")
	if !Compare(d, e).PolicyChanged {
		t.Error("darwin: new endpoints are no policy change")
	}
	// The MTU is policy only when clamping.
	r, s := subnetRouterPlan(Linux, "peer0"), subnetRouterPlan(Linux, "peer0")
	s.MTU = 1380
	if !Compare(r, s).PolicyChanged {
		t.Error("new MTU of a clamping plan is no policy change")
	}
	p.MTU = 1380
	if Compare(exitClientPlan(Linux, "peer0"), p).PolicyChanged {
		t.Error("new MTU of a plan without clamping is a policy change")
	}
}
