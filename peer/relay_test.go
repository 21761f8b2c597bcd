package main

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// relayState is what the fake tunnel was told of relays: whether it
// serves as one, and which of its peers are relays.
func (d *fakeDevice) relayState() (serve bool, relays []string, localAddrs func() []netip.AddrPort) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.peers {
		if p.Relay {
			relays = append(relays, p.Name)
		}
	}
	slices.Sort(relays)
	return d.serveRelay, relays, d.localAddrs
}

// TestRelayWiring: the tunnel is told which peers are relays and whether
// this node serves as one, at start and at every reload; a change of this
// node's own relay: is applied with SetServeRelay and reported, one of
// another peer's updates that peer.
func TestRelayWiring(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma")
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 endpoint=192.0.2.2:51820 relay=true",
		"gamma 10.10.0.3/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	serve, relays, local := n.fake.relayState()
	if serve || !slices.Equal(relays, []string{"beta"}) || local == nil {
		t.Fatalf("at start: serve %v, relays %v, LocalAddrs set %v; want false, [beta], true", serve, relays, local != nil)
	}
	for _, a := range local() {
		if netip.MustParsePrefix("10.10.0.0/24").Contains(a.Addr()) || a.Port() != 51820 || a.Addr().IsLoopback() {
			t.Errorf("LocalAddrs offers %v", a)
		}
	}

	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820 relay=true",
		"beta 10.10.0.2/24 endpoint=192.0.2.2:51820",
		"gamma 10.10.0.3/24")
	code, out, errOut := n.reload()
	if want := "updated peers: beta\nserves as relay: no -> yes\n"; code != 0 || out != want {
		t.Errorf("reload: exit %d, stdout %q (stderr %q), want %q", code, out, errOut, want)
	}
	if serve, relays, _ := n.fake.relayState(); !serve || len(relays) != 0 {
		t.Errorf("after the reload: serve %v, relays %v; want true, none", serve, relays)
	}
	code, out, _ = n.reload("-json")
	if code != 0 || strings.Contains(out, "serve_relay") {
		t.Errorf("an unchanged reload: exit %d, %s", code, out)
	}

	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 endpoint=192.0.2.2:51820",
		"gamma 10.10.0.3/24")
	code, out, _ = n.reload("-json")
	if code != 0 || !strings.Contains(out, `"serve_relay":{"old":true,"new":false}`) {
		t.Errorf("relay off: exit %d, %s", code, out)
	}
	if serve, _, _ := n.fake.relayState(); serve {
		t.Error("still serving as relay")
	}
}

// TestPeerConfigsRelay: peerConfigs carries relay: of each other peer.
func TestPeerConfigsRelay(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma")
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820 relay=true",
		"beta 10.10.0.2/24 endpoint=192.0.2.2:51820 relay=true",
		"gamma 10.10.0.3/24")
	node, _, err := testRunFlags(t, []string{"-config", m.path(), "-key", m.keyFile("alpha")}).checkStart("linux")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range peerConfigs(node) {
		got[p.Name] = p.Relay
	}
	if want := map[string]bool{"beta": true, "gamma": false}; !maps.Equal(got, want) {
		t.Errorf("relays %v, want %v", got, want)
	}
}

// TestCheckRelays: peer check says which peers are relays, and whether
// this node is one; seen from no node, it marks the relays of the mesh.
func TestCheckRelays(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma")
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 endpoint=192.0.2.2:51820 relay=true",
		"gamma 10.10.0.3/24")
	for _, tc := range []struct {
		node      string
		want, not []string
	}{
		{"alpha", []string{"relays: beta (a peer this node cannot reach directly is reached through them)\n",
			"  beta  endpoint 192.0.2.2:51820  routes 10.10.0.2/32  relay\n", "  gamma  endpoint none (waits for it to connect)  routes 10.10.0.3/32\n"},
			[]string{"serves as relay"}},
		{"beta", []string{"serves as relay: forwards between the peers that cannot reach each other directly and introduces them\n"},
			[]string{"relays:", "  relay\n"}},
	} {
		code, out, errOut := runCmd(t, "", "check", "-config", m.path(), "-key", m.keyFile(tc.node))
		if code != 0 {
			t.Fatalf("%s: exit %d, %s", tc.node, code, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output lacks %q:\n%s", tc.node, w, out)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(out, w) {
				t.Errorf("%s: output has %q:\n%s", tc.node, w, out)
			}
		}
	}
	code, out, _ := runCmd(t, "", "check", "-config", m.path())
	if code != 0 || !strings.Contains(out, "  beta  endpoint 192.0.2.2:51820  routes 10.10.0.2/32  relay\n") || strings.Contains(out, "gamma  endpoint none  routes 10.10.0.3/32  relay") {
		t.Errorf("without a key: exit %d:\n%s", code, out)
	}
}
