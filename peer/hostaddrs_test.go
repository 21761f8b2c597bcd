package main

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/peer-vpn/peer/config"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

// TestLocalCandidates: what a node offers peers behind its NAT is its
// host's routable addresses with its port, never one a peer could not
// reach over a LAN (loopback, link-local) nor one of the tunnel's own.
func TestLocalCandidates(t *testing.T) {
	mesh := []netip.Prefix{netip.MustParsePrefix("10.10.0.0/24"), netip.MustParsePrefix("fd10::/64"), netip.MustParsePrefix("10.20.1.0/24")}
	for _, tc := range []struct {
		name    string
		in      []netip.Addr
		exclude []netip.Prefix
		want    []string
	}{
		{"private v4 and v6", addrs("192.168.1.20", "fd00:1::20"), mesh, []string{"192.168.1.20:51820", "[fd00:1::20]:51820"}},
		{"global", addrs("198.51.100.7", "2001:db8::7"), mesh, []string{"198.51.100.7:51820", "[2001:db8::7]:51820"}},
		{"loopback", addrs("127.0.0.1", "::1", "127.1.2.3"), mesh, nil},
		{"link-local", addrs("169.254.3.4", "fe80::1", "fe80::2%eth0"), mesh, nil},
		{"multicast, unspecified, broadcast", addrs("224.0.0.1", "ff02::1", "0.0.0.0", "::", "255.255.255.255"), mesh, nil},
		{"tunnel addresses", addrs("10.10.0.1", "fd10::1", "10.20.1.1", "10.10.1.1"), mesh, []string{"10.10.1.1:51820"}},
		{"nothing to exclude", addrs("10.10.0.1"), nil, []string{"10.10.0.1:51820"}},
		{"mapped", addrs("::ffff:192.168.1.20"), mesh, []string{"192.168.1.20:51820"}},
		{"duplicates sorted", addrs("192.168.1.30", "10.0.0.5", "192.168.1.30"), mesh, []string{"10.0.0.5:51820", "192.168.1.30:51820"}},
		{"none", nil, mesh, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range localCandidates(tc.in, tc.exclude, 51820) {
				got = append(got, a.String())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHostAddrsFollowsTheMesh: the addresses excluded are those of the
// mesh as last applied, every peer's networks and subnets, not an exit's
// default routes; the host's addresses come from its interfaces.
func TestHostAddrsFollowsTheMesh(t *testing.T) {
	parse := func(src string) *config.Node {
		m, err := config.Parse("mesh.yaml", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return &config.Node{Mesh: m, Self: &m.Peers[0]}
	}
	const head = "peers:\n  - {name: a, public_key: \"mhahAQRhqTQAVk1F9RDhxow+sCHpzwHyqSG1UUUWNyU=\", address: 10.10.0.1/24}\n"
	h := newHostAddrs(parse(head+"  - {name: b, public_key: \"8M17H3V1nU9whb1SbIj9y8+hJNo2VnQGl2c/H1j8I2I=\", address: 10.10.0.2/24, exit: true, subnets: [192.168.7.0/24]}\n"),
		4000, slog.New(slog.DiscardHandler))
	h.interfaceAddrs = func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("10.10.0.1"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("192.168.7.9"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("203.0.113.5"), Mask: net.CIDRMask(24, 32)},
			&net.IPAddr{IP: net.ParseIP("198.51.100.1")}, // not an interface address
		}, nil
	}
	if got, want := h.addrs(), []netip.AddrPort{netip.MustParseAddrPort("203.0.113.5:4000")}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	h.setMesh(parse(head + "  - {name: b, public_key: \"8M17H3V1nU9whb1SbIj9y8+hJNo2VnQGl2c/H1j8I2I=\", address: 10.10.0.2/24}\n"))
	if got, want := h.addrs(), []netip.AddrPort{netip.MustParseAddrPort("192.168.7.9:4000"), netip.MustParseAddrPort("203.0.113.5:4000")}; !slices.Equal(got, want) {
		t.Errorf("after the subnet went: got %v, want %v", got, want)
	}
	h.interfaceAddrs = func() ([]net.Addr, error) { return nil, errors.New("no netlink") }
	if got := h.addrs(); got != nil {
		t.Errorf("on error: %v", got)
	}
}
