// Package netconf produces the system commands that configure the tunnel
// interface, its routes and what a node using or serving as an exit needs,
// and renders them as a shell script or runs them.
//
// It is the only place that knows the command syntax: iproute2's `ip`,
// `nft` and `sysctl` on Linux, and `ifconfig`/`route` on darwin (darwin
// commands are generated and rendered but only ever run on a Mac). Commands
// are plain argument vectors ([][]string), run without a shell.
package netconf

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Plan describes the desired configuration of one tunnel interface.
type Plan struct {
	// OS selects the command syntax: "linux" or "darwin".
	OS string
	// Iface is the interface name, e.g. "peer0" or "utun3".
	Iface string
	// MTU is the link MTU; 0 leaves it unchanged.
	MTU int
	// Addresses are the interface's own addresses with their network
	// length, e.g. 10.10.0.1/24 (host bits are kept, not masked).
	Addresses []netip.Prefix
	// Routes are the prefixes to route into the interface. Host bits are
	// cleared and duplicates dropped when commands are generated. A route
	// already covered by the interface's own connected network (such as
	// 10.10.0.2/32 inside 10.10.0.1/24) is kept on purpose: it is harmless
	// and makes the routing table state every peer explicitly.
	Routes []netip.Prefix

	// UseExit makes this node send every destination outside the mesh
	// into the interface, to the peer serving as the mesh's exit, as
	// wg-quick does for AllowedIPs 0.0.0.0/0 and ::/0. Routes still win:
	// they are more specific. See PolicyUp.
	UseExit bool
	// Endpoints are the other peers' endpoint addresses. With UseExit on
	// darwin each gets a host route through the default gateway, so that
	// the encrypted packets to it do not loop into the tunnel. Linux
	// ignores them: there the node's socket carries DefaultFwmark, which
	// the rules exempt from the tunnel.
	Endpoints []netip.Addr
	// Exit makes this node an exit: IP forwarding on for both families,
	// and what arrives from the interface for elsewhere masqueraded
	// behind the address of the interface it leaves by. Linux only.
	Exit bool
	// ClampMSS is for a node that forwards between the interface and
	// others (an exit, or a node with routed subnets): the MSS of
	// forwarded TCP SYNs is clamped to what fits the tunnel, since
	// endpoints beyond the interface do not know its smaller MTU and
	// path MTU discovery is often blocked. Linux only; ignored on darwin.
	ClampMSS bool
	// SysctlsBefore holds the values the ManagedSysctls had before the
	// node changed them, as read from the system. PolicyDown restores
	// exactly those; a key missing here is not restored.
	SysctlsBefore map[string]string
}

// Supported values of Plan.OS.
const (
	Linux  = "linux"
	Darwin = "darwin"
)

// MTU limits enforced by Validate. They are tundev's (MinMTU, MaxMTU,
// MinMTUIPv6), which owns them and says why; netconf is a leaf package and
// may not import tundev, so it keeps this copy for plans handed to it by
// anyone, and the peer package's TestLimitsAgree fails if the two differ.
const (
	MinMTU     = 72
	MaxMTU     = 65535
	MinMTUIPv6 = 1280
)

// MaxIfaceName is the longest interface name: IFNAMSIZ-1 on Linux (and the
// same on darwin).
const MaxIfaceName = 15

// Validate reports the first problem with p, if any: an unsupported OS, an
// interface name that is empty, too long or contains characters outside
// [A-Za-z0-9_.-] (or starts with '-'), an MTU outside [MinMTU, MaxMTU] or
// below MinMTUIPv6 while IPv6 is configured, or an invalid or IPv4-mapped
// IPv6 address or route; Exit on darwin; an invalid, IPv4-mapped,
// unspecified or zoned endpoint; a SysctlsBefore key outside ManagedSysctls
// or a value that is not an integer. Command generators skip entries
// Validate rejects, so call Validate first.
func (p Plan) Validate() error {
	if p.OS != Linux && p.OS != Darwin {
		return fmt.Errorf("netconf: unsupported OS %q (want %q or %q)", p.OS, Linux, Darwin)
	}
	if err := CheckIfaceName(p.Iface); err != nil {
		return fmt.Errorf("netconf: %w", err)
	}
	if p.Exit && p.OS != Linux {
		return errors.New("netconf: serving as an exit is supported on Linux only")
	}
	for _, a := range p.Endpoints {
		if err := validEndpoint(a); err != nil {
			return err
		}
	}
	for k, v := range p.SysctlsBefore {
		if !slices.Contains(ManagedSysctls, k) {
			return fmt.Errorf("netconf: SysctlsBefore has %q, which is not one of ManagedSysctls", k)
		}
		if !validSysctlValue(strings.TrimSpace(v)) {
			return fmt.Errorf("netconf: SysctlsBefore[%q] = %q is not an integer", k, v)
		}
	}
	hasV6 := false
	for _, a := range p.Addresses {
		if err := validPrefix("address", a); err != nil {
			return err
		}
		hasV6 = hasV6 || a.Addr().Is6()
	}
	for _, r := range p.Routes {
		if err := validPrefix("route", r); err != nil {
			return err
		}
		hasV6 = hasV6 || r.Addr().Is6()
	}
	if p.MTU != 0 {
		if p.MTU < MinMTU || p.MTU > MaxMTU {
			return fmt.Errorf("netconf: MTU %d out of range [%d, %d]", p.MTU, MinMTU, MaxMTU)
		}
		if hasV6 && p.MTU < MinMTUIPv6 {
			return fmt.Errorf("netconf: MTU %d is below the IPv6 minimum %d, but IPv6 addresses or routes are configured", p.MTU, MinMTUIPv6)
		}
	}
	return nil
}

// CheckIfaceName reports whether name may be the interface's name: 1 to
// MaxIfaceName bytes from [A-Za-z0-9_.-], not "." or "..", and not starting
// with '-'. The kernel takes more (Linux refuses only '/', ':' and white
// space), but the name goes into the commands and scripts this package
// writes, where these are safe without quoting and cannot be read as an
// option. Every check of an interface name (the mesh file, -iface, Plan)
// is this one.
func CheckIfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("interface name is empty")
	case len(name) > MaxIfaceName:
		return fmt.Errorf("interface name %q is %d characters long; the limit is %d", name, len(name), MaxIfaceName)
	case name == "." || name == "..":
		return fmt.Errorf("interface name %q is not allowed", name)
	case name[0] == '-':
		return fmt.Errorf("interface name %q starts with '-'", name)
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("interface name %q has the character %q; use letters, digits, '_', '.' or '-'", name, c)
		}
	}
	return nil
}

func validPrefix(what string, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("netconf: invalid %s %q", what, p)
	}
	if p.Addr().Is4In6() {
		return fmt.Errorf("netconf: %s %s is IPv4-mapped IPv6; use the plain IPv4 form", what, p)
	}
	return nil
}

func usable(p netip.Prefix) bool { return p.IsValid() && !p.Addr().Is4In6() }

// addresses returns the valid addresses without exact duplicates.
func (p Plan) addresses() []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, a := range p.Addresses {
		if usable(a) && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// routes returns the valid routes, masked, without duplicates, in order.
func (p Plan) routes() []netip.Prefix {
	var out []netip.Prefix
	seen := map[netip.Prefix]bool{}
	for _, r := range p.Routes {
		if !usable(r) {
			continue
		}
		r = r.Masked()
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// LinkUp returns the commands that set the MTU (if nonzero), add each
// address, and bring the link up, in that order. On Linux addresses use
// `ip addr replace`, so repeating them is harmless. On darwin IPv4 addresses
// are point-to-point with the local address as destination, as utun requires.
// It returns nil for an unsupported OS.
func (p Plan) LinkUp() [][]string {
	var up []string
	switch p.OS {
	case Linux:
		up = []string{"ip", "link", "set", "dev", p.Iface, "up"}
	case Darwin:
		up = []string{"ifconfig", p.Iface, "up"}
	default:
		return nil
	}
	return append(append(p.mtuCmds(), p.addrCmds()...), up)
}

// RoutesUp returns one command per route sending it into the interface:
// `ip [-6] route replace PREFIX dev IFACE` on Linux (idempotent), and
// `route -q -n add -inet[6] PREFIX -interface IFACE` on darwin (Script makes
// that idempotent). It returns nil for an unsupported OS.
func (p Plan) RoutesUp() [][]string { return p.routeCmds("replace", "add") }

// RoutesDown returns the commands removing the routes RoutesUp adds:
// `ip [-6] route del PREFIX dev IFACE` on Linux and
// `route -q -n delete -inet[6] PREFIX -interface IFACE` on darwin. They fail
// for a route that is already gone; Script tolerates that, and RunTolerant
// runs them all regardless.
func (p Plan) RoutesDown() [][]string { return p.routeCmds("del", "delete") }

func (p Plan) routeCmds(linuxVerb, darwinVerb string) [][]string {
	var cmds [][]string
	for _, r := range p.routes() {
		switch p.OS {
		case Linux:
			cmds = append(cmds, ipCmd(r, "route", linuxVerb, r.String(), "dev", p.Iface))
		case Darwin:
			fam := "-inet"
			if r.Addr().Is6() {
				fam = "-inet6"
			}
			cmds = append(cmds, []string{"route", "-q", "-n", darwinVerb, fam, r.String(), "-interface", p.Iface})
		}
	}
	return cmds
}

// ipCmd builds an `ip` command, adding -6 for IPv6 prefixes.
func ipCmd(p netip.Prefix, args ...string) []string {
	cmd := []string{"ip"}
	if p.Addr().Is6() {
		cmd = append(cmd, "-6")
	}
	return append(cmd, args...)
}

// UpScript validates p and renders LinkUp followed by NetworkUp (RoutesUp,
// then PolicyUp) as a script (see Script) whose header names the interface.
func (p Plan) UpScript() (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	what := "MTU, addresses, link, routes"
	if p.hasPolicy() {
		what += ", exit and forwarding policy"
	}
	h := fmt.Sprintf("peer: bring up interface %s (%s): %s.\nSafe to run more than once.", p.Iface, p.OS, what)
	return Script(h, append(p.LinkUp(), p.NetworkUp()...)), nil
}

// DownScript validates p and renders NetworkDown (PolicyDown, then
// RoutesDown) as a script (see Script) whose header names the interface.
func (p Plan) DownScript() (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	h := fmt.Sprintf("peer: remove the routes of interface %s (%s).\nSafe to run more than once; routes already gone are skipped.", p.Iface, p.OS)
	if p.hasPolicy() {
		h = fmt.Sprintf("peer: remove the exit and forwarding policy and the routes of interface %s (%s).\nSafe to run more than once; what is already gone is skipped.", p.Iface, p.OS)
	}
	return Script(h, p.NetworkDown()), nil
}

// InNamespace returns copies of cmds that run inside the Linux network
// namespace ns, by prefixing each with `ip netns exec NS`. An empty ns
// returns an unchanged copy. Script still recognizes the wrapped commands.
func InNamespace(ns string, cmds [][]string) [][]string {
	out := make([][]string, 0, len(cmds))
	for _, c := range cmds {
		var w []string
		if ns != "" {
			w = append(w, "ip", "netns", "exec", ns)
		}
		out = append(out, append(w, c...))
	}
	return out
}
