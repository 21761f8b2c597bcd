package netconf

import (
	"net/netip"
	"slices"
	"strconv"
)

// A running node that reloads its mesh file changes only what differs: the
// commands below take the system from the plan it applied to the new one,
// with the same syntax (and the same generators) as LinkUp and RoutesUp, so
// `peer routes` prints the truth after any number of reloads.
//
// Both plans must describe the same interface on the same OS: a new
// interface is a new device (LinkUp and RoutesUp), not a diff.

// Changes lists what differs between two plans of one interface.
type Changes struct {
	// OldMTU and NewMTU are the MTUs of the two plans; equal when the MTU
	// does not change.
	OldMTU, NewMTU int
	// AddressesAdded and AddressesRemoved are exact addresses (with their
	// network length): 10.10.0.1/24 → 10.10.0.1/16 is one of each.
	AddressesAdded, AddressesRemoved []netip.Prefix
	// RoutesAdded and RoutesRemoved are masked prefixes, in plan order.
	RoutesAdded, RoutesRemoved []netip.Prefix
	// PolicyChanged reports that the plans' PolicyUp commands differ
	// (exit use or service, MSS clamping, or what those depend on: the
	// addresses, the MTU, darwin's endpoints). The policy is replaced as a
	// whole rather than diffed: it is a handful of commands.
	PolicyChanged bool
}

// Empty reports whether the plans configure the system the same way.
func (c Changes) Empty() bool {
	return c.OldMTU == c.NewMTU && len(c.AddressesAdded) == 0 && len(c.AddressesRemoved) == 0 &&
		len(c.RoutesAdded) == 0 && len(c.RoutesRemoved) == 0 && !c.PolicyChanged
}

// Compare returns what differs between from and to. Entries Validate
// rejects are skipped, as the command generators skip them. A prefix moved
// from one peer to another is no change: every route goes into the same
// interface.
func Compare(from, to Plan) Changes {
	c := Changes{OldMTU: from.MTU, NewMTU: to.MTU}
	c.AddressesAdded, c.AddressesRemoved = setDiff(from.addresses(), to.addresses())
	c.RoutesAdded, c.RoutesRemoved = setDiff(from.routes(), to.routes())
	c.PolicyChanged = !slices.EqualFunc(from.PolicyUp(), to.PolicyUp(), slices.Equal)
	return c
}

// setDiff returns the prefixes of to missing from from (added) and those
// of from missing from to (removed), each in its own slice's order.
func setDiff(from, to []netip.Prefix) (added, removed []netip.Prefix) {
	in := func(s []netip.Prefix) map[netip.Prefix]bool {
		m := make(map[netip.Prefix]bool, len(s))
		for _, p := range s {
			m[p] = true
		}
		return m
	}
	fromSet, toSet := in(from), in(to)
	for _, p := range to {
		if !fromSet[p] {
			added = append(added, p)
		}
	}
	for _, p := range from {
		if !toSet[p] {
			removed = append(removed, p)
		}
	}
	return added, removed
}

// RoutesDiff returns the commands that take the system's routes from those
// of from to those of to: a removal (as RoutesDown writes it) for each
// prefix only from has, then an addition (as RoutesUp) for each prefix only
// to has; nothing for the prefixes both have. It returns nil when the
// routes are the same or the OS is unsupported. Run the removals
// tolerantly or not: a route already gone makes `ip route del` fail.
func RoutesDiff(from, to Plan) [][]string {
	c := Compare(from, to)
	del := Plan{OS: to.OS, Iface: to.Iface, Routes: c.RoutesRemoved}.RoutesDown()
	add := Plan{OS: to.OS, Iface: to.Iface, Routes: c.RoutesAdded}.RoutesUp()
	return append(del, add...)
}

// LinkDiff returns the commands that take the interface from the MTU and
// addresses of from to those of to: the new MTU (if it changed and is not
// 0), each new address (as LinkUp adds it), then the removal of each
// address only from has. New addresses go first so that the interface is
// never without an address of a family it keeps.
//
// On Linux, removing an IPv4 address can take more with it: deleting a
// primary address deletes the secondaries of its network unless the
// interface has promote_secondaries, and deleting the last IPv4 address
// flushes every IPv4 route through the interface. So after an IPv4 address
// is removed, LinkDiff adds back (with the idempotent `replace`) every IPv4
// address of to and every IPv4 route both plans have (RoutesDiff adds the
// new ones; a plan without routes, for a node that does not manage them,
// restores none). It returns nil when nothing changed.
func LinkDiff(from, to Plan) [][]string {
	c := Compare(from, to)
	return append(linkAdds(c, to), linkRemovals(c, to)...)
}

// Diff returns the commands of LinkDiff and RoutesDiff in the order a
// running interface needs them: the MTU and new addresses, the removal of
// old routes, the removal of old addresses (and the restore LinkDiff
// describes), then the new routes. Routes go before addresses so that a
// route the kernel flushes with an address is not deleted after it is
// gone, which would fail. Give it plans without routes to leave the
// routes alone.
//
// When the policy changed (Changes.PolicyChanged), Diff ends with
// PolicyDiff, once the link and routes the policy relies on are in place.
func Diff(from, to Plan) [][]string {
	c := Compare(from, to)
	cmds := linkAdds(c, to)
	cmds = append(cmds, Plan{OS: to.OS, Iface: to.Iface, Routes: c.RoutesRemoved}.RoutesDown()...)
	cmds = append(cmds, linkRemovals(c, to)...)
	cmds = append(cmds, Plan{OS: to.OS, Iface: to.Iface, Routes: c.RoutesAdded}.RoutesUp()...)
	if c.PolicyChanged {
		cmds = append(cmds, PolicyDiff(from, to)...)
	}
	return cmds
}

// PolicyDiff returns the commands that take the policy of from to that of
// to without ever taking it down in between: a node using an exit that
// reloads (new addresses, a new MTU, a new subnet) must not leak a single
// packet past the tunnel. On Linux: the sysctls to sets that from did not
// (or to another value); the nftables table replaced in its one atomic
// transaction when its script changed (or deleted when to has none); the
// exit's routes and rules added when to starts using an exit, removed when
// it stops; and the restore of each sysctl from set and to does not (from
// from.SysctlsBefore, as PolicyDown would). On darwin: the split routes
// come or go with UseExit; while both use an exit only the endpoints' host
// routes that changed are added or removed. It returns nil when the
// policies are the same.
func PolicyDiff(from, to Plan) [][]string {
	if slices.EqualFunc(from.PolicyUp(), to.PolicyUp(), slices.Equal) {
		return nil
	}
	switch to.OS {
	case Linux:
		return linuxPolicyDiff(from, to)
	case Darwin:
		switch {
		case from.UseExit && to.UseExit:
			var cmds [][]string
			added, removed := addrDiff(from.endpoints(), to.endpoints())
			for _, a := range removed {
				cmds = append(cmds, darwinEndpointDel(a))
			}
			for _, a := range added {
				cmds = append(cmds, darwinEndpointRoute(a))
			}
			return cmds
		case to.UseExit:
			return to.PolicyUp()
		default:
			return from.PolicyDown()
		}
	}
	return nil
}

func linuxPolicyDiff(from, to Plan) [][]string {
	values := func(p Plan) map[string]string {
		m := map[string]string{}
		for _, s := range p.Sysctls() {
			m[s.Key] = s.Value
		}
		return m
	}
	fromSet, toSet := values(from), values(to)
	var cmds [][]string
	for _, s := range to.Sysctls() {
		if v, ok := fromSet[s.Key]; !ok || v != s.Value {
			cmds = append(cmds, sysctlCmd(s.Key, s.Value))
		}
	}
	switch {
	case to.hasPolicy() && (!from.hasPolicy() || from.nftScript() != to.nftScript()):
		cmds = append(cmds, []string{"nft", to.nftScript()})
	case !to.hasPolicy() && from.hasPolicy():
		cmds = append(cmds, from.nftDelete())
	}
	switch {
	case to.UseExit && !from.UseExit:
		cmds = append(cmds, to.exitRoutes("replace")...)
		cmds = append(cmds, to.exitRules("add")...)
	case from.UseExit && !to.UseExit:
		cmds = append(cmds, from.exitRules("del")...)
		cmds = append(cmds, from.exitRoutes("del")...)
	}
	for _, s := range slices.Backward(from.Sysctls()) {
		if _, kept := toSet[s.Key]; !kept {
			cmds = append(cmds, from.sysctlRestore(s)...)
		}
	}
	return cmds
}

// addrDiff returns the addresses of to missing from from (added) and those
// of from missing from to (removed), each in its own slice's order.
func addrDiff(from, to []netip.Addr) (added, removed []netip.Addr) {
	for _, a := range to {
		if !slices.Contains(from, a) {
			added = append(added, a)
		}
	}
	for _, a := range from {
		if !slices.Contains(to, a) {
			removed = append(removed, a)
		}
	}
	return added, removed
}

// linkAdds is the first half of LinkDiff: the MTU and the new addresses.
func linkAdds(c Changes, to Plan) [][]string {
	var cmds [][]string
	if c.OldMTU != c.NewMTU && to.MTU != 0 {
		cmds = append(cmds, Plan{OS: to.OS, Iface: to.Iface, MTU: to.MTU}.mtuCmds()...)
	}
	return append(cmds, Plan{OS: to.OS, Iface: to.Iface, Addresses: c.AddressesAdded}.addrCmds()...)
}

// linkRemovals is the second half of LinkDiff: the old addresses go, and
// on Linux what an IPv4 removal may have taken along comes back.
func linkRemovals(c Changes, to Plan) [][]string {
	var cmds [][]string
	removedV4 := false
	for _, a := range c.AddressesRemoved {
		removedV4 = removedV4 || a.Addr().Is4()
		switch to.OS {
		case Linux:
			cmds = append(cmds, ipCmd(a, "addr", "del", a.String(), "dev", to.Iface))
		case Darwin:
			fam := "inet"
			if a.Addr().Is6() {
				fam = "inet6"
			}
			cmds = append(cmds, []string{"ifconfig", to.Iface, fam, a.Addr().String(), "-alias"})
		}
	}
	if !removedV4 || to.OS != Linux {
		return cmds
	}
	restore := Plan{OS: to.OS, Iface: to.Iface}
	for _, a := range to.addresses() {
		if a.Addr().Is4() {
			restore.Addresses = append(restore.Addresses, a)
		}
	}
	added := make(map[netip.Prefix]bool, len(c.RoutesAdded))
	for _, r := range c.RoutesAdded {
		added[r] = true
	}
	for _, r := range to.routes() {
		if r.Addr().Is4() && !added[r] {
			restore.Routes = append(restore.Routes, r)
		}
	}
	cmds = append(cmds, restore.addrCmds()...)
	return append(cmds, restore.RoutesUp()...)
}

// mtuCmds returns the command setting p.MTU, none if it is 0.
func (p Plan) mtuCmds() [][]string {
	if p.MTU == 0 {
		return nil
	}
	switch p.OS {
	case Linux:
		return [][]string{{"ip", "link", "set", "dev", p.Iface, "mtu", strconv.Itoa(p.MTU)}}
	case Darwin:
		return [][]string{{"ifconfig", p.Iface, "mtu", strconv.Itoa(p.MTU)}}
	}
	return nil
}

// addrCmds returns the commands adding p's addresses.
func (p Plan) addrCmds() [][]string {
	var cmds [][]string
	for _, a := range p.addresses() {
		switch p.OS {
		case Linux:
			cmds = append(cmds, ipCmd(a, "addr", "replace", a.String(), "dev", p.Iface))
		case Darwin:
			if a.Addr().Is4() {
				cmds = append(cmds, []string{"ifconfig", p.Iface, "inet", a.String(), a.Addr().String(), "alias"})
			} else {
				cmds = append(cmds, []string{"ifconfig", p.Iface, "inet6", a.String(), "alias"})
			}
		}
	}
	return cmds
}
