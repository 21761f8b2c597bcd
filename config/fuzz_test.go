package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
)

// FuzzParse checks that Parse never panics, that every refusal is a
// well-formed ErrorList, and that whatever it accepts obeys the rules it is
// meant to enforce.
func FuzzParse(f *testing.F) {
	if ex, err := os.ReadFile(filepath.Join("..", "peers.example.yaml")); err == nil {
		f.Add(ex)
	}
	f.Add([]byte(keyNames.Replace(two)))
	f.Add([]byte(keyNames.Replace("interface: {mtu: 1280}\n" + edit(7, "    address: [10.10.0.2/24, fd10::2/64]\n    subnets: 10.20.0.0/16\n    endpoint: b.example:1\n    keepalive: 25"))))
	f.Add([]byte(keyNames.Replace(edit(7, "    address: *x"))))
	f.Add([]byte("peers:\n  - &a {name: a}\n  - *a\n"))
	f.Add([]byte(keyNames.Replace(edit(7, "    address: 10.10.0.2/24\n    endpoint: 203.0.113.2:51820\n    relay: true"))))
	f.Add([]byte(keyNames.Replace(edit(7, "    address: 10.10.0.2/24\n    relay: true"))))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yaml", data)
		if err != nil {
			var list ErrorList
			if m != nil || !errors.As(err, &list) || len(list) == 0 || len(list) > maxErrors+1 {
				t.Fatalf("bad refusal: mesh %v, error %T %v", m, err, err)
			}
			for i, e := range list {
				if e.File != "f.yaml" || e.Line < 0 || e.Msg == "" || (i > 0 && e.Line < list[i-1].Line) {
					t.Fatalf("bad error %d: %+v", i, e)
				}
			}
			return
		}
		checkMesh(t, m)
	})
}

// checkMesh verifies the invariants of an accepted mesh independently of the
// parser's own code paths.
func checkMesh(t *testing.T, m *Mesh) {
	t.Helper()
	if len(m.Peers) == 0 {
		t.Fatal("accepted a mesh without peers")
	}
	if m.Interface.MTU < tundev.MinMTU || m.Interface.MTU > tundev.MaxMTU || netconf.CheckIfaceName(m.Interface.Name) != nil {
		t.Fatalf("bad interface %+v", m.Interface)
	}
	if tundev.CheckDriver(m.Interface.Driver) != nil {
		t.Fatalf("bad driver %q", m.Interface.Driver)
	}
	names := map[string]bool{}
	for i := range m.Peers {
		p := &m.Peers[i]
		if !validName(p.Name) || names[p.Name] || p.PublicKey.IsZero() || len(p.Addresses) == 0 || p.Line < 1 {
			t.Fatalf("bad peer %+v", p)
		}
		names[p.Name] = true
		for j := range m.Peers[:i] {
			if m.Peers[j].PublicKey == p.PublicKey {
				t.Fatalf("peers %d and %d share a key", j, i)
			}
		}
		for _, s := range p.Subnets {
			if s != s.Masked() {
				t.Fatalf("unmasked subnet %v", s)
			}
		}
		for _, a := range p.Addresses {
			if a.Addr().Is6() && m.Interface.MTU < tundev.MinMTUIPv6 {
				t.Fatalf("MTU %d with IPv6 address %v", m.Interface.MTU, a)
			}
		}
		if p.Endpoint != "" {
			if _, port, _, err := splitEndpoint(p.Endpoint); err != nil || port == 0 {
				t.Fatalf("bad endpoint %q", p.Endpoint)
			}
		}
		if p.Relay && p.Endpoint == "" {
			t.Fatalf("relay %s without an endpoint", p.Name)
		}
		if p.Keepalive < 0 || p.Keepalive > MaxKeepalive {
			t.Fatalf("bad keepalive %v", p.Keepalive)
		}
		for j := range m.Peers[:i] {
			for _, a := range p.Prefixes() {
				for _, b := range m.Peers[j].Prefixes() {
					if a == b {
						t.Fatalf("%v of %s is also routed to %s", a, p.Name, m.Peers[j].Name)
					}
				}
			}
		}
	}
}

// TestFuzzSeedsAccepted makes sure the valid seeds really pass checkMesh, so
// the fuzz target exercises the accepting path too.
func TestFuzzSeedsAccepted(t *testing.T) {
	for _, src := range []string{two, strings.Replace(two, "10.10.0.2/24", "[10.10.0.2/24, fd10::2/64]\n    subnets: 10.20.0.0/16", 1),
		strings.Replace(two, "10.10.0.2/24", "10.10.0.2/24\n    endpoint: 203.0.113.2:51820\n    relay: true", 1)} {
		checkMesh(t, mustParse(t, "f.yaml", src))
	}
}
