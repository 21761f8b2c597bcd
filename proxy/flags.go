package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Host name limits, from RFC 1035 (section 2.3.4) in text form.
const (
	maxHostname = 253 // characters of a whole name, without a trailing dot
	maxLabel    = 63  // characters between dots
)

// defaultListenIP is where a listen value without an address listens:
// the proxies have no authentication, so only the host's own users may
// reach them unless the operator names another address.
var defaultListenIP = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// HostPort is a host (a name or an IP literal) and a port: a target that
// is resolved when dialed.
type HostPort struct {
	Host string
	Port uint16
}

// String returns host:port, IPv6 literals in brackets.
func (h HostPort) String() string { return net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port))) }

// Forward is a parsed -forward value: listen on Local on the host and relay
// each connection (tcp) or client address (udp) to Target in the mesh.
type Forward struct {
	Net    string // "tcp" or "udp"
	Local  netip.AddrPort
	Target HostPort
}

// String returns the canonical form, NET:LOCALIP:PORT=HOST:PORT.
func (f Forward) String() string { return f.Net + ":" + f.Local.String() + "=" + f.Target.String() }

// Expose is a parsed -expose value: listen on Port of the node's tunnel
// addresses and relay to Local on the host.
type Expose struct {
	Net   string // "tcp" or "udp"
	Port  uint16
	Local HostPort
}

// String returns the canonical form, NET:PORT=HOST:PORT.
func (e Expose) String() string {
	return e.Net + ":" + strconv.Itoa(int(e.Port)) + "=" + e.Local.String()
}

// ParseListen parses the address of a -socks5 or -http-proxy flag: "1080"
// or ":1080" is 127.0.0.1:1080 (loopback unless an address is given),
// "0.0.0.0:1080", "[::1]:1080" and "192.0.2.1:1080" are as given. The
// address must be an IP literal and the port in 1..65535.
func ParseListen(s string) (netip.AddrPort, error) {
	ap, err := parseListen(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("listen address %q: %w", s, err)
	}
	return ap, nil
}

func parseListen(s string) (netip.AddrPort, error) {
	if rest := strings.TrimPrefix(s, ":"); !strings.Contains(rest, ":") {
		port, err := parsePort(rest)
		if err != nil {
			return netip.AddrPort{}, err
		}
		return netip.AddrPortFrom(defaultListenIP, port), nil
	}
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want [IP:]PORT: %w", stripAddrErr(err))
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("host %q: want an IP address", host)
	}
	port, err := parsePort(portStr)
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(ip, port), nil
}

// stripAddrErr returns the reason of a net.AddrError without the address,
// which the caller already quotes.
func stripAddrErr(err error) error {
	if ae, ok := err.(*net.AddrError); ok {
		return fmt.Errorf("%s", ae.Err)
	}
	return err
}

// parsePort parses a port in 1..65535.
func parsePort(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q: want a number in 1-65535", s)
	}
	return uint16(n), nil
}

// parseHostPort parses host:port where host is a name or an IP literal
// (IPv6 in brackets).
func parseHostPort(s string) (HostPort, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return HostPort{}, fmt.Errorf("want HOST:PORT: %w", stripAddrErr(err))
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.String() // canonical
	} else if err := checkHostname(host); err != nil {
		return HostPort{}, err
	}
	port, err := parsePort(portStr)
	if err != nil {
		return HostPort{}, err
	}
	return HostPort{host, port}, nil
}

// checkHostname accepts a DNS-style name: labels of letters, digits, '-'
// and '_' (used by service names), with at most one trailing dot.
func checkHostname(name string) error {
	if name == "" {
		return fmt.Errorf("missing host")
	}
	s := strings.TrimSuffix(name, ".")
	if len(s) > maxHostname {
		return fmt.Errorf("host %q: longer than %d characters", name, maxHostname)
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > maxLabel {
			return fmt.Errorf("host %q: empty label or longer than %d", name, maxLabel)
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("host %q: a label starts or ends with '-'", name)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q: character %q is not allowed in a name", name, c)
			}
		}
	}
	return nil
}

// splitRelay splits NET:FROM=TO, checking NET.
func splitRelay(s, form string) (network, from, to string, err error) {
	network, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", "", fmt.Errorf("want %s", form)
	}
	if network != "tcp" && network != "udp" {
		return "", "", "", fmt.Errorf("protocol %q: want tcp or udp", network)
	}
	from, to, ok = strings.Cut(rest, "=")
	if !ok {
		return "", "", "", fmt.Errorf("missing '=': want %s", form)
	}
	return network, from, to, nil
}

// ParseForward parses a -forward value, NET:LOCALADDR=MESHADDR: for
// example "tcp:127.0.0.1:8080=beta:80" or "udp:5353=10.10.0.2:53". NET is
// tcp or udp; LOCALADDR is as for ParseListen (no address means
// 127.0.0.1); MESHADDR is HOST:PORT, HOST a name or an IP literal.
func ParseForward(s string) (Forward, error) {
	const form = "tcp|udp:[LOCALIP:]PORT=HOST:PORT"
	network, local, target, err := splitRelay(s, form)
	if err != nil {
		return Forward{}, fmt.Errorf("forward %q: %w", s, err)
	}
	f := Forward{Net: network}
	if f.Local, err = parseListen(local); err != nil {
		return Forward{}, fmt.Errorf("forward %q: local address %q: %w", s, local, err)
	}
	if f.Target, err = parseHostPort(target); err != nil {
		return Forward{}, fmt.Errorf("forward %q: mesh address %q: %w", s, target, err)
	}
	return f, nil
}

// ParseExpose parses an -expose value, NET:MESHPORT=LOCALADDR: for example
// "tcp:8080=127.0.0.1:80" or "udp:53=127.0.0.1:5353". NET is tcp or udp;
// MESHPORT is the port on the node's tunnel addresses; LOCALADDR is
// HOST:PORT on the host, HOST a name or an IP literal.
func ParseExpose(s string) (Expose, error) {
	const form = "tcp|udp:PORT=HOST:PORT"
	network, port, local, err := splitRelay(s, form)
	if err != nil {
		return Expose{}, fmt.Errorf("expose %q: %w", s, err)
	}
	e := Expose{Net: network}
	if e.Port, err = parsePort(port); err != nil {
		return Expose{}, fmt.Errorf("expose %q: mesh %w", s, err)
	}
	if e.Local, err = parseHostPort(local); err != nil {
		return Expose{}, fmt.Errorf("expose %q: local address %q: %w", s, local, err)
	}
	return e, nil
}
