package tunnel

import (
	"testing"

	"github.com/peer-vpn/peer/tundev/tuntest"
)

// exitFamily is one address family's view of the exit mesh of
// TestExitSemantics.
type exitFamily struct {
	name               string
	client, exit, beta string // the nodes' own addresses
	internet           string // outside the mesh: only the exit's /0 has it
	inBeta             string // in beta's subnet, nested in the exit's
	inExit             string // in the exit's subnet, outside beta's
	packet             func(src, dst string, payload []byte) []byte
}

var exitFamilies = []exitFamily{
	{"IPv4", "10.10.0.1", "10.10.0.2", "10.10.0.3", "203.0.113.7", "10.20.5.9", "10.20.9.9", tuntest.IPv4UDP},
	{"IPv6", "fd10::1", "fd10::2", "fd10::3", "2001:db8:ffff::7", "fd20:0:0:5::9", "fd20:0:0:9::9", tuntest.IPv6UDP},
}

// exitMesh is three nodes: client routes everything outside the mesh to
// exit, whose entry in client's peer list alone carries 0.0.0.0/0 and ::/0;
// beta routes a subnet nested inside a wider one of the exit's. Exit and
// beta know the others by their own prefixes only.
func exitMesh(t *testing.T) *testMesh {
	return newMesh(t, nil,
		nodeSpec{name: "client", prefixes: []string{"10.10.0.1/32", "fd10::1/128"},
			also: map[string][]string{"exit": {"0.0.0.0/0", "::/0"}}},
		nodeSpec{name: "exit", prefixes: []string{"10.10.0.2/32", "fd10::2/128", "10.20.0.0/16", "fd20::/48"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.3/32", "fd10::3/128", "10.20.5.0/24", "fd20:0:0:5::/64"}},
	)
}

// TestExitSemantics checks, on the in-memory data path, what giving a
// peer 0.0.0.0/0 and ::/0 means with longest-prefix routing and the
// source check: everything outside the mesh goes to and comes from the
// exit, the other peers' prefixes stay direct, no other peer may send
// from the internet, and the exit cannot speak for another peer's
// prefixes.
//
// m.pass fails on the first packet at the receiver that is not the one
// sent, so each pass also shows that nothing sent before it went astray
// to that TUN; a drop is awaited on its counter, and a pass after it
// shows the dropped packet was not written.
func TestExitSemantics(t *testing.T) {
	for _, f := range exitFamilies {
		t.Run(f.name, func(t *testing.T) {
			m := exitMesh(t)
			client := m.nodes["client"].dev
			spoofed := func(from string, want uint64) {
				t.Helper()
				waitFor(t, "client's spoofed_source drops of "+from, func() bool {
					return peerStatus(client, from).Drops["spoofed_source"] == want
				})
			}

			// 1. The internet through the exit, both ways, unchanged.
			m.pass("client", "exit", f.packet(f.client, f.internet, []byte("to the internet")))
			m.pass("exit", "client", f.packet(f.internet, f.client, []byte("from the internet")))

			// 2. Other peers' prefixes stay direct: beta's address and
			// beta's subnet go to beta, never to the exit (the next pass
			// to the exit would meet them first); the rest of the exit's
			// wider subnet goes to the exit.
			m.pass("client", "beta", f.packet(f.client, f.beta, []byte("to beta")))
			m.pass("client", "beta", f.packet(f.client, f.inBeta, []byte("to beta's subnet")))
			m.pass("client", "exit", f.packet(f.client, f.inExit, []byte("to the exit's subnet")))
			// And back: each from its own prefixes, the nested one too.
			m.pass("beta", "client", f.packet(f.inBeta, f.client, []byte("from beta's subnet")))
			m.pass("exit", "client", f.packet(f.inExit, f.client, []byte("from the exit's subnet")))
			// The /0 is the client's alone: beta reaches the exit's subnet
			// by the exit's own prefix, and the internet not at all.
			m.pass("beta", "exit", f.packet(f.beta, f.inExit, []byte("beta to the exit's subnet")))
			m.pass("exit", "beta", f.packet(f.inExit, f.beta, []byte("the exit's subnet to beta")))
			m.nodes["beta"].tun.Inject(f.packet(f.beta, f.internet, []byte("beta to the internet")))
			waitFor(t, "beta's no_route drop", func() bool { return m.nodes["beta"].dev.Status().Drops["no_route"] == 1 })

			// 3. Only the exit speaks for the internet, and the exit speaks
			// for none of beta's prefixes, the one nested in its own
			// included.
			m.nodes["beta"].tun.Inject(f.packet(f.internet, f.client, []byte("beta as the internet")))
			spoofed("beta", 1)
			m.pass("beta", "client", f.packet(f.beta, f.client, []byte("beta as itself")))
			m.nodes["exit"].tun.Inject(f.packet(f.beta, f.client, []byte("the exit as beta")))
			spoofed("exit", 1)
			m.nodes["exit"].tun.Inject(f.packet(f.inBeta, f.client, []byte("the exit as beta's subnet")))
			spoofed("exit", 2)
			m.pass("exit", "client", f.packet(f.internet, f.client, []byte("the exit as the internet")))

			for _, peer := range []string{"exit", "beta"} {
				if d := peerStatus(client, peer).Drops; len(d) != 1 || d["spoofed_source"] == 0 {
					t.Errorf("client's drops of %s: %v, want spoofed_source only", peer, d)
				}
			}
			if d := client.Status().Drops; len(d) != 0 {
				t.Errorf("client's device drops: %v", d)
			}
		})
	}
}
