package tunnel

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
)

// innerTap counts the plaintext packets and datagrams it is shown.
type innerTap struct {
	recordingTap
	inner atomic.Int64
}

func (t *innerTap) Inner(time.Time, bool, string, []byte) { t.inner.Add(1) }

func TestSetTapWhileRunning(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	m.pass("alpha", "beta", ipv4UDP("10.10.0.1", "10.10.0.2", []byte("untapped")))
	tap := new(innerTap)
	alpha.dev.SetTap(tap)
	m.pass("alpha", "beta", ipv4UDP("10.10.0.1", "10.10.0.2", []byte("tapped out")))
	m.pass("beta", "alpha", ipv4UDP("10.10.0.2", "10.10.0.1", []byte("tapped in")))
	waitFor(t, "the tap to see both directions", func() bool {
		tap.mu.Lock()
		out := tap.outTo[beta.addr]
		tap.mu.Unlock()
		return tap.inner.Load() == 2 && out >= 1 && tap.count(beta.addr, noise.MessageTransportType) >= 1
	})
	alpha.dev.SetTap(nil)
	before := tap.inner.Load()
	m.pass("alpha", "beta", ipv4UDP("10.10.0.1", "10.10.0.2", []byte("untapped again")))
	m.pass("beta", "alpha", ipv4UDP("10.10.0.2", "10.10.0.1", []byte("untapped again")))
	if n := tap.inner.Load(); n != before {
		t.Fatalf("a removed tap saw %d more packets", n-before)
	}
}

func TestSetMTUChangesPadding(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	var mu sync.Mutex
	var last int
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		if typ, _ := noise.Type(b); typ == noise.MessageTransportType && len(b) > noise.MessageKeepaliveSize {
			mu.Lock()
			last = len(b)
			mu.Unlock()
		}
		return true
	})
	sent := func() int {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	// 1401 bytes are padded to 1408 under an MTU of 1420, to 1402 under 1402.
	pkt := ipv4UDP("10.10.0.1", "10.10.0.2", make([]byte, 1401-28))
	m.pass("alpha", "beta", pkt)
	if got, want := sent(), noise.MessageTransportHeaderSize+1408+16; got != want {
		t.Fatalf("transport message of %d bytes under MTU 1420, want %d", got, want)
	}
	m.nodes["alpha"].dev.SetMTU(1402)
	m.pass("alpha", "beta", pkt)
	if got, want := sent(), noise.MessageTransportHeaderSize+1402+16; got != want {
		t.Fatalf("transport message of %d bytes under MTU 1402, want %d", got, want)
	}
	if mtu := m.nodes["alpha"].dev.Status().MTU; mtu != 1402 {
		t.Fatalf("status says MTU %d, want 1402", mtu)
	}
}

// peersOf returns a copy of the peer set node n was started with, to edit
// into the set of a reload.
func (m *testMesh) peersOf(n string) []PeerConfig {
	var out []PeerConfig
	for _, pc := range m.nodes[n].peers {
		pc.Prefixes = slices.Clone(pc.Prefixes)
		out = append(out, pc)
	}
	return out
}

// entryFor is the peer configuration of node n as the mesh gives it.
func (m *testMesh) entryFor(n string) PeerConfig {
	o := m.nodes[n]
	return PeerConfig{Name: n, PublicKey: o.priv.Public(), Prefixes: slices.Clone(o.prefixes), Endpoint: o.addr}
}

// edit applies f to the entry called name in pcs.
func edit(t *testing.T, pcs []PeerConfig, name string, f func(*PeerConfig)) []PeerConfig {
	t.Helper()
	for i := range pcs {
		if pcs[i].Name == name {
			f(&pcs[i])
			return pcs
		}
	}
	t.Fatalf("no peer %q in the set", name)
	return nil
}

// without returns pcs without the entry called name.
func without(pcs []PeerConfig, name string) []PeerConfig {
	return slices.DeleteFunc(slices.Clone(pcs), func(pc PeerConfig) bool { return pc.Name == name })
}

// handshakeMessages counts the handshake messages (initiations, responses,
// cookie replies) sent from the given addresses.
func (w *wireCounter) handshakeMessages(from ...netip.AddrPort) int {
	n := 0
	for _, a := range from {
		for _, typ := range []uint32{noise.MessageInitiationType, noise.MessageResponseType, noise.MessageCookieReplyType} {
			n += w.count(a, int(typ))
		}
	}
	return n
}

// total counts every datagram sent from the given addresses.
func (w *wireCounter) total(from ...netip.AddrPort) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, a := range from {
		for _, c := range w.counts[a] {
			n += c
		}
	}
	return n
}

func reconfigure(t *testing.T, d *Device, pcs []PeerConfig) Changes {
	t.Helper()
	ch, err := d.Reconfigure(pcs)
	if err != nil {
		t.Fatalf("Reconfigure: %v", err)
	}
	return ch
}

func wantChanges(t *testing.T, got, want Changes) {
	t.Helper()
	norm := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	if !slices.Equal(norm(got.Added), norm(want.Added)) || !slices.Equal(norm(got.Removed), norm(want.Removed)) ||
		!slices.Equal(norm(got.Updated), norm(want.Updated)) || !slices.Equal(norm(got.Rekeyed), norm(want.Rekeyed)) {
		t.Fatalf("changes %+v, want %+v", got, want)
	}
}

func TestReconfigureSameSetIsEmpty(t *testing.T) {
	clock := startClock()
	m := threeNodes(t, clock)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha := m.nodes["alpha"]
	m.pass("alpha", "beta", ipv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", ipv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	set := alpha.dev.peers.Load()
	kp := alpha.dev.PeerByName("beta").current.Load()
	sent := w.total(alpha.addr)

	same := m.peersOf("alpha")
	// The order of the peers and of a peer's prefixes is no change.
	slices.Reverse(same)
	slices.Reverse(edit(t, same, "gamma", func(*PeerConfig) {})[0].Prefixes)
	for range 2 {
		ch := reconfigure(t, alpha.dev, same)
		if !ch.Empty() {
			t.Fatalf("the same set reported %+v", ch)
		}
	}
	if alpha.dev.peers.Load() != set {
		t.Fatal("the same set replaced the peer set")
	}
	if alpha.dev.PeerByName("beta").current.Load() != kp {
		t.Fatal("the same set replaced beta's session")
	}
	time.Sleep(50 * time.Millisecond) // anything sent would be on the wire by now
	if n := w.total(alpha.addr); n != sent {
		t.Fatalf("the same set sent %d datagrams", n-sent)
	}
}

func TestReconfigureInvalidChangesNothing(t *testing.T) {
	clock := startClock()
	m := threeNodes(t, clock)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha := m.nodes["alpha"]
	m.pass("alpha", "beta", ipv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", ipv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	set := alpha.dev.peers.Load()
	beta := alpha.dev.PeerByName("beta")
	kp := beta.current.Load()
	sent, hs := w.total(alpha.addr), w.handshakeMessages(alpha.addr)
	newKey, _ := keys.NewPrivate()
	delta := PeerConfig{Name: "delta", PublicKey: newKey.Public(), Prefixes: mustPrefixes(t, []string{"10.10.0.4/32"}),
		Endpoint: netip.MustParseAddrPort("192.0.2.4:51820"), Keepalive: time.Second}
	// Each set would also change what is valid in it: delta added, gamma
	// removed, beta's keepalive and prefixes changed.
	valid := func() []PeerConfig {
		pcs := append(without(m.peersOf("alpha"), "gamma"), delta)
		return edit(t, pcs, "beta", func(pc *PeerConfig) {
			pc.Keepalive = time.Second
			pc.Prefixes = append(pc.Prefixes, netip.MustParsePrefix("10.20.2.0/24"))
		})
	}
	tests := []struct {
		name string
		bad  func([]PeerConfig) []PeerConfig
		want string
	}{
		{"own key", func(pcs []PeerConfig) []PeerConfig {
			return edit(t, pcs, "delta", func(pc *PeerConfig) { pc.PublicKey = alpha.priv.Public() })
		}, "own public key"},
		{"key twice", func(pcs []PeerConfig) []PeerConfig {
			return edit(t, pcs, "delta", func(pc *PeerConfig) { pc.PublicKey = m.nodes["beta"].priv.Public() })
		}, "public key used twice"},
		{"name twice", func(pcs []PeerConfig) []PeerConfig {
			return edit(t, pcs, "delta", func(pc *PeerConfig) { pc.Name = "beta" })
		}, `name "beta" used twice`},
		{"identical prefix", func(pcs []PeerConfig) []PeerConfig {
			return edit(t, pcs, "delta", func(pc *PeerConfig) { pc.Prefixes = mustPrefixes(t, []string{"10.20.2.0/24"}) })
		}, "overlaps"},
		{"overlapping prefix", func(pcs []PeerConfig) []PeerConfig {
			return edit(t, pcs, "delta", func(pc *PeerConfig) { pc.Prefixes = mustPrefixes(t, []string{"10.20.0.0/16"}) })
		}, "overlaps"},
		{"low-order key", func(pcs []PeerConfig) []PeerConfig {
			return edit(t, pcs, "delta", func(pc *PeerConfig) { pc.PublicKey = keys.Public{} })
		}, "delta"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := alpha.dev.Reconfigure(tc.bad(valid()))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Reconfigure = %+v, %v; want an error with %q", ch, err, tc.want)
			}
			if !ch.Empty() {
				t.Fatalf("a refused set reported changes %+v", ch)
			}
			if alpha.dev.peers.Load() != set {
				t.Fatal("a refused set replaced the peer set")
			}
			if c := beta.conf.Load(); c.Keepalive != 0 || len(c.Prefixes) != 2 {
				t.Fatalf("a refused set changed beta: %+v", c)
			}
			if p, ok := alpha.dev.routes.LookupBytes([]byte{10, 20, 2, 1}); ok {
				t.Fatalf("a refused set routed 10.20.2.1 to %s", p.Name())
			}
			if p, _ := alpha.dev.routes.LookupBytes([]byte{10, 10, 0, 3}); p == nil || p.Name() != "gamma" {
				t.Fatal("a refused set removed gamma's route")
			}
		})
	}
	if beta.current.Load() != kp {
		t.Fatal("a refused set replaced beta's session")
	}
	m.pass("alpha", "gamma", ipv4UDP("10.10.0.1", "10.10.0.3", []byte("gamma still there")))
	if n := w.handshakeMessages(alpha.addr) - hs; n != 1 {
		// The one initiation is for gamma, just now.
		t.Fatalf("%d handshake messages from alpha since the refused sets, want 1 (to gamma)", n)
	}
	if n := w.total(alpha.addr) - sent; n != 2 {
		t.Fatalf("%d datagrams from alpha since the refused sets, want 2 (initiation and data to gamma)", n)
	}
	// A valid set is applied after all the refused ones.
	ch := reconfigure(t, alpha.dev, valid())
	wantChanges(t, ch, Changes{Added: []string{"delta"}, Removed: []string{"gamma"}, Updated: []string{"beta"}})
}
