package netconf

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Exit nodes need more than routes into the interface. A node that uses an
// exit sends everything outside the mesh into the tunnel, which must not
// swallow the node's own encrypted packets; a node that is an exit forwards
// the mesh's traffic to the internet behind its own address; and any node
// that forwards between the tunnel and another interface clamps the TCP MSS
// so that forwarded connections fit the tunnel's MTU. On Linux these are
// what wg-quick does for AllowedIPs 0.0.0.0/0 (a routing table, two rules
// per family, a few nftables rules) plus forwarding and masquerade; on
// darwin, wg-quick's split routes.

// DefaultFwmark is the firewall mark of the node's own UDP socket (SO_MARK)
// and the number of the routing table holding the default routes into the
// interface, the values wg-quick picks. A node using an exit routes every
// unmarked packet through that table, so its own marked packets to the
// peers' endpoints take the main table and do not loop into the tunnel.
const DefaultFwmark = 51820

// Sysctl is one kernel setting, Key as sysctl(8) names it, e.g.
// "net.ipv4.ip_forward". The node must know which settings it changes so
// that it can put them back when it stops.
type Sysctl struct{ Key, Value string }

// ManagedSysctls are every key any plan may set (see Plan.Sysctls). The
// daemon reads their values into Plan.SysctlsBefore before it changes
// anything, so that PolicyDown can restore them.
var ManagedSysctls = []string{"net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding", "net.ipv4.conf.all.src_valid_mark"}

// hasPolicy reports whether p needs anything beyond mesh routes on its OS.
func (p Plan) hasPolicy() bool {
	switch p.OS {
	case Linux:
		return p.UseExit || p.Exit || p.ClampMSS
	case Darwin:
		return p.UseExit
	}
	return false
}

// Sysctls returns the kernel settings p needs, in the order of
// ManagedSysctls: for Exit, IPv4 and IPv6 forwarding; for UseExit,
// src_valid_mark, so that reverse-path filtering takes the firewall mark
// into account and accepts the encrypted replies arriving on the uplink.
// It returns nil on darwin, where no plan changes kernel settings.
//
// Writing net.ipv4.ip_forward also resets every interface's forwarding
// setting and net.ipv4.conf.all.accept_redirects (the kernel's doing), so
// restoring it restores those only as far as they agreed with it before.
func (p Plan) Sysctls() []Sysctl {
	if p.OS != Linux {
		return nil
	}
	var out []Sysctl
	if p.Exit {
		out = append(out, Sysctl{"net.ipv4.ip_forward", "1"}, Sysctl{"net.ipv6.conf.all.forwarding", "1"})
	}
	if p.UseExit {
		out = append(out, Sysctl{"net.ipv4.conf.all.src_valid_mark", "1"})
	}
	return out
}

// PolicyUp returns the commands that set up everything beyond mesh routes.
// On Linux, in this order: the Sysctls (`sysctl -q -w KEY=VALUE`); one
// `nft SCRIPT` replacing the table `inet peer-IFACE` in a single
// transaction (see nftScript); for UseExit the default routes in table
// DefaultFwmark, then the rules that send unmarked traffic to it. The rules
// come last because they switch traffic over, so everything they rely on is
// in place first. On darwin (UseExit only; ClampMSS is ignored there, as it
// would need pf, which we do not manage): a host route to each Endpoint
// through the current default gateway, then the routes 0.0.0.0/1,
// 128.0.0.0/1, ::/1 and 8000::/1 into the interface, which are more
// specific than the default route and so win without replacing it.
//
// It returns nil when p has none of UseExit, Exit and ClampMSS (or the OS
// is unsupported). On Linux every command is idempotent except `ip rule
// add`, which adds a second copy of an existing rule; on darwin `route add`
// fails for an existing route. Script makes both idempotent.
func (p Plan) PolicyUp() [][]string {
	if !p.hasPolicy() {
		return nil
	}
	var cmds [][]string
	switch p.OS {
	case Linux:
		for _, s := range p.Sysctls() {
			cmds = append(cmds, sysctlCmd(s.Key, s.Value))
		}
		cmds = append(cmds, []string{"nft", p.nftScript()})
		if p.UseExit {
			cmds = append(cmds, p.exitRoutes("replace")...)
			cmds = append(cmds, p.exitRules("add")...)
		}
	case Darwin:
		for _, a := range p.endpoints() {
			cmds = append(cmds, darwinEndpointRoute(a))
		}
		cmds = append(cmds, p.darwinSplit().routeCmds("replace", "add")...)
	}
	return cmds
}

// PolicyDown returns the commands undoing PolicyUp, in reverse: on Linux the
// rules first (so traffic leaves the tunnel table before it empties), the
// table's routes, `nft delete table inet peer-IFACE`, then the sysctl
// restores: for each key Sysctls sets, the value SysctlsBefore holds, only
// if the key is there and its value differs. On darwin the split routes,
// then the endpoints' host routes. Like RoutesDown, its commands fail for
// state that is already gone; Script tolerates that, and RunTolerant runs
// them all regardless.
func (p Plan) PolicyDown() [][]string {
	if !p.hasPolicy() {
		return nil
	}
	var cmds [][]string
	switch p.OS {
	case Linux:
		if p.UseExit {
			cmds = append(cmds, p.exitRules("del")...)
			cmds = append(cmds, p.exitRoutes("del")...)
		}
		cmds = append(cmds, p.nftDelete())
		for _, s := range slices.Backward(p.Sysctls()) {
			cmds = append(cmds, p.sysctlRestore(s)...)
		}
	case Darwin:
		cmds = p.darwinSplit().routeCmds("del", "delete")
		for _, a := range p.endpoints() {
			cmds = append(cmds, darwinEndpointDel(a))
		}
	}
	return cmds
}

// sysctlRestore returns the command putting s.Key back to its value in
// SysctlsBefore: none if that is unknown, not a number, or what s sets.
func (p Plan) sysctlRestore(s Sysctl) [][]string {
	v, ok := p.SysctlsBefore[s.Key]
	if v = strings.TrimSpace(v); !ok || v == s.Value || !validSysctlValue(v) {
		return nil
	}
	return [][]string{sysctlCmd(s.Key, v)}
}

// nftDelete returns the command deleting the node's nftables table.
func (p Plan) nftDelete() []string { return []string{"nft", "delete", "table", "inet", p.nftTable()} }

// darwinEndpointDel returns the command removing the host route
// darwinEndpointRoute adds.
func darwinEndpointDel(a netip.Addr) []string {
	return []string{"route", "-q", "-n", "delete", darwinFamily(a), "-host", a.String()}
}

// NetworkUp returns everything a running interface needs after LinkUp:
// RoutesUp, then PolicyUp (whose rules and split routes must find the mesh
// routes in place, or mesh traffic would briefly go to the exit).
func (p Plan) NetworkUp() [][]string { return append(p.RoutesUp(), p.PolicyUp()...) }

// NetworkDown returns the commands undoing NetworkUp: PolicyDown, then
// RoutesDown.
func (p Plan) NetworkDown() [][]string { return append(p.PolicyDown(), p.RoutesDown()...) }

func sysctlCmd(key, value string) []string {
	return []string{"sysctl", "-q", "-w", key + "=" + value}
}

// validSysctlValue accepts what the managed keys hold: a decimal integer.
// Anything else read back from the system is not restored.
func validSysctlValue(v string) bool {
	_, err := strconv.Atoi(v)
	return err == nil
}

// nftTable is the name of the node's own nftables table. A table of our
// own, replaced and deleted as a whole, never touches anybody else's rules.
func (p Plan) nftTable() string { return "peer-" + p.Iface }

// nftScript returns the nft command buffer (nft parses its argv as one, and
// one invocation is one atomic transaction) that replaces the table
// `inet peer-IFACE` with the chains p needs. `add table` followed by
// `delete table` makes the replacement work whether or not the table
// exists, so running it twice leaves one copy. Statements inside a table
// block must be separated by newlines.
func (p Plan) nftScript() string {
	t := p.nftTable()
	q := strconv.Quote(p.Iface) // Validate allows only [A-Za-z0-9_.-]
	var b strings.Builder
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\ntable inet %s {\n", t, t, t)
	chain := func(name, hook string, rules []string) {
		if len(rules) == 0 {
			return
		}
		fmt.Fprintf(&b, "\tchain %s {\n\t\t%s; policy accept;\n", name, hook)
		for _, r := range rules {
			fmt.Fprintf(&b, "\t\t%s\n", r)
		}
		b.WriteString("\t}\n")
	}
	if p.ClampMSS {
		// SYNs both ways: the mesh's SYN out to the internet and the
		// internet's SYN into the tunnel each announce the MSS the other
		// side will send. Without a known MTU, clamp to the route's MTU
		// (family-independent, so one rule per direction).
		const syn = "tcp flags & (syn|rst) == syn"
		var rules []string
		if p.MTU == 0 {
			for _, dir := range []string{"oifname", "iifname"} {
				rules = append(rules, fmt.Sprintf("%s %s %s tcp option maxseg size set rt mtu", dir, q, syn))
			}
		} else {
			for _, fam := range []struct {
				name     string
				overhead int // IP and TCP headers
			}{{"ipv4", 40}, {"ipv6", 60}} {
				mss := p.MTU - fam.overhead
				for _, dir := range []string{"oifname", "iifname"} {
					rules = append(rules, fmt.Sprintf("meta nfproto %s %s %s %s tcp option maxseg size > %d tcp option maxseg size set %d", fam.name, dir, q, syn, mss, mss))
				}
			}
		}
		chain("forward", "type filter hook forward priority mangle", rules)
	}
	if p.Exit {
		// The inet family masquerades IPv4 and IPv6 alike.
		chain("postrouting", "type nat hook postrouting priority srcnat",
			[]string{fmt.Sprintf("iifname %s oifname != %s masquerade", q, q)})
	}
	if p.UseExit {
		// wg-quick's rules. The mark of the node's socket is saved in the
		// connection and given back to the replies, so that with
		// src_valid_mark a strict reverse-path filter finds their route
		// (through the main table, as for the marked requests).
		chain("premangle", "type filter hook prerouting priority mangle",
			[]string{"meta l4proto udp meta mark set ct mark"})
		chain("postmangle", "type filter hook postrouting priority mangle",
			[]string{fmt.Sprintf("meta l4proto udp meta mark %d ct mark set meta mark", DefaultFwmark)})
		// Nobody outside the tunnel may send to our tunnel addresses
		// (another host on the LAN would otherwise reach them).
		var raw []string
		for _, a := range p.addresses() {
			ip := "ip"
			if a.Addr().Is6() {
				ip = "ip6"
			}
			raw = append(raw, fmt.Sprintf("iifname != %s %s daddr %s fib saddr type != local drop", q, ip, a.Addr()))
		}
		chain("preraw", "type filter hook prerouting priority raw", raw)
	}
	b.WriteString("}")
	return b.String()
}

// exitRoutes returns the default routes of table DefaultFwmark (verb
// "replace" or "del"). IPv6 is always routed into the tunnel, even by a
// node without IPv6 addresses: otherwise its IPv6 traffic would leak past
// the exit.
func (p Plan) exitRoutes(verb string) [][]string {
	table := strconv.Itoa(DefaultFwmark)
	return [][]string{
		{"ip", "-4", "route", verb, "0.0.0.0/0", "dev", p.Iface, "table", table},
		{"ip", "-6", "route", verb, "::/0", "dev", p.Iface, "table", table},
	}
}

// exitRules returns wg-quick's two rules per family (verb "add" or "del"):
// every packet without the socket's mark goes to table DefaultFwmark, and
// before that the main table is consulted for everything but its default
// route, so mesh routes, the LAN and other specific routes still win. Rules
// added without a priority take the one below the first rule's, so the
// second rule added is consulted first.
func (p Plan) exitRules(verb string) [][]string {
	mark := strconv.Itoa(DefaultFwmark)
	var cmds [][]string
	for _, fam := range []string{"-4", "-6"} {
		cmds = append(cmds,
			[]string{"ip", fam, "rule", verb, "not", "fwmark", mark, "table", mark},
			[]string{"ip", fam, "rule", verb, "table", "main", "suppress_prefixlength", "0"})
	}
	return cmds
}

// darwinSplit is a plan whose routes are the two halves of each family's
// address space, wg-quick's way of overriding the default route on darwin.
func (p Plan) darwinSplit() Plan {
	return Plan{OS: p.OS, Iface: p.Iface, Routes: pfx("0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1")}
}

// pfx parses prefixes written as constants (it panics on a bad one).
func pfx(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func darwinFamily(a netip.Addr) string {
	if a.Is6() {
		return "-inet6"
	}
	return "-inet"
}

// endpoints returns the Endpoints that need a host route, without
// duplicates: valid ones (see Validate), and not loopback addresses, which
// never leave the host and would be broken by a route to the gateway.
func (p Plan) endpoints() []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range p.Endpoints {
		if validEndpoint(a) != nil || a.IsLoopback() || seen[a] {
			continue
		}
		seen[a] = true
		out = append(out, a)
	}
	return out
}

// validEndpoint refuses what cannot be a peer's endpoint, and zones, which
// would end up in a shell command line.
func validEndpoint(a netip.Addr) error {
	switch {
	case !a.IsValid():
		return fmt.Errorf("netconf: invalid endpoint %q", a)
	case a.Zone() != "":
		return fmt.Errorf("netconf: endpoint %s has a zone", a)
	case a.Is4In6():
		return fmt.Errorf("netconf: endpoint %s is IPv4-mapped IPv6; use the plain IPv4 form", a)
	case a.IsUnspecified():
		return fmt.Errorf("netconf: endpoint %s is unspecified", a)
	}
	return nil
}

// darwinEndpointRoute returns a command that routes the endpoint a through
// the default gateway of its family. The gateway is only known when the
// command runs, so the command is a small sh script: it looks the gateway
// up, fails with a message if there is none, and replaces any host route to
// a (delete, then add) so that it can run twice.
func darwinEndpointRoute(a netip.Addr) []string {
	fam := darwinFamily(a)
	s := fmt.Sprintf(`gw=$(route -n get %[1]s default 2>/dev/null | awk "/gateway:/ {print \$2}"); `+
		`[ -n "$gw" ] || { echo "no %[1]s default gateway for the route to endpoint %[2]s" >&2; exit 1; }; `+
		`route -q -n delete %[1]s -host %[2]s >/dev/null 2>&1; route -q -n add %[1]s -host %[2]s "$gw"`, fam, a)
	return []string{"sh", "-c", s}
}
