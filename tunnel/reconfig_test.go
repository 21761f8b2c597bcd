package tunnel

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/peer-vpn/peer/tundev/tuntest"
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

func (t *innerTap) Inner(time.Time, Direction, string, []byte) { t.inner.Add(1) }

func TestSetTapWhileRunning(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("untapped")))
	tap := new(innerTap)
	alpha.dev.SetTap(tap)
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("tapped out")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("tapped in")))
	waitFor(t, "the tap to see both directions", func() bool {
		tap.mu.Lock()
		out := tap.outTo[beta.addr]
		tap.mu.Unlock()
		return tap.inner.Load() == 2 && out >= 1 && tap.count(beta.addr, noise.MessageTransportType) >= 1
	})
	alpha.dev.SetTap(nil)
	before := tap.inner.Load()
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("untapped again")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("untapped again")))
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
	pkt := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", make([]byte, 1401-28))
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
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	set := alpha.dev.peers.Load()
	kp := alpha.dev.peerByName("beta").current.Load()
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
	if alpha.dev.peerByName("beta").current.Load() != kp {
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
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	set := alpha.dev.peers.Load()
	beta := alpha.dev.peerByName("beta")
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
		}, `also routed to "beta"`},
		{"identical prefix once masked", func(pcs []PeerConfig) []PeerConfig {
			return edit(t, pcs, "delta", func(pc *PeerConfig) { pc.Prefixes = mustPrefixes(t, []string{"10.20.2.7/24"}) })
		}, `also routed to "beta"`},
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
	m.pass("alpha", "gamma", tuntest.IPv4UDP("10.10.0.1", "10.10.0.3", []byte("gamma still there")))
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

// TestReconfigureUpdatesInPlace: a new name, a new subnet, a keepalive and
// an endpoint the peer moved to are applied to the running peer, which
// keeps its session (the same keypair, its counter going on) and sends no
// handshake message.
func TestReconfigureUpdatesInPlace(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	pb := alpha.dev.peerByName("beta")
	kp := pb.current.Load()
	used := kp.SendCount()
	moved := netip.MustParseAddrPort("203.0.113.2:51820")
	if err := m.net.Move(beta.conn, moved); err != nil {
		t.Fatal(err)
	}
	hs := w.handshakeMessages(alpha.addr, beta.addr, moved)

	ch := reconfigure(t, alpha.dev, edit(t, m.peersOf("alpha"), "beta", func(pc *PeerConfig) {
		pc.Name = "beta-2"
		pc.Prefixes = append(pc.Prefixes, netip.MustParsePrefix("10.20.2.0/24"))
		pc.Keepalive = 25 * time.Second
		pc.Endpoint = moved
	}))
	wantChanges(t, ch, Changes{Updated: []string{"beta-2"}})
	if alpha.dev.peerByName("beta-2") != pb || alpha.dev.peerByName("beta") != nil {
		t.Fatal("the renamed peer is not the same peer under its new name")
	}
	if ep := pb.Endpoint(); ep != moved {
		t.Fatalf("endpoint %s after the configuration moved it to %s", ep, moved)
	}
	// alpha speaks first: it reaches beta at the configured address.
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("after")))
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.20.2.7", []byte("to the new subnet")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.20.2.7", "10.10.0.1", []byte("from the new subnet")))
	if pb.current.Load() != kp {
		t.Fatal("the update replaced the session")
	}
	if got := kp.SendCount(); got != used+2 {
		t.Fatalf("session counter at %d after 2 more packets, was %d", got, used)
	}
	if n := w.handshakeMessages(alpha.addr, beta.addr, moved) - hs; n != 0 {
		t.Fatalf("%d handshake messages after an update", n)
	}
	st := peerStatus(alpha.dev, "beta-2")
	if st.Keepalive != "25s" || !slices.Equal(st.Prefixes, []string{"10.10.0.2/32", "10.20.2.0/24"}) {
		t.Fatalf("status after the update: %+v", st)
	}
	// The new keepalive runs on the same session. First the keepalives
	// that answer the data above, so that no timer waits for an answer.
	clock.Advance(noise.KeepaliveTimeout + time.Second)
	pa := beta.dev.peerByName("alpha")
	waitFor(t, "idle timers", func() bool {
		return !pa.timers.newHandshake.isPending() && !pb.timers.newHandshake.isPending() &&
			!pa.timers.sendKeepalive.isPending() && !pb.timers.sendKeepalive.isPending()
	})
	keepalives := w.count(alpha.addr, keepaliveKind)
	clock.Advance(25*time.Second + time.Second)
	waitFor(t, "a persistent keepalive", func() bool { return w.count(alpha.addr, keepaliveKind) > keepalives })
	if pb.current.Load() != kp || w.handshakeMessages(alpha.addr, beta.addr, moved) != hs {
		t.Fatal("the keepalive came with a new handshake")
	}
}

// TestReconfigureKeepsRoamedEndpoint: the endpoint learned from the peer's
// traffic survives a reload that leaves the configured endpoint alone, and
// gives way to a configured one that changed.
func TestReconfigureKeepsRoamedEndpoint(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	roamed := netip.MustParseAddrPort("203.0.113.50:40000")
	if err := m.net.Move(beta.conn, roamed); err != nil {
		t.Fatal(err)
	}
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("from elsewhere")))
	pb := alpha.dev.peerByName("beta")
	if ep := pb.Endpoint(); ep != roamed {
		t.Fatalf("alpha did not roam: %s", ep)
	}
	ch := reconfigure(t, alpha.dev, edit(t, m.peersOf("alpha"), "beta", func(pc *PeerConfig) { pc.Keepalive = time.Minute }))
	wantChanges(t, ch, Changes{Updated: []string{"beta"}})
	if ep := pb.Endpoint(); ep != roamed {
		t.Fatalf("a reload that left beta's endpoint alone moved it from %s to %s", roamed, ep)
	}
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("to the roamed address")))

	configured := netip.MustParseAddrPort("203.0.113.60:51820")
	if err := m.net.Move(beta.conn, configured); err != nil {
		t.Fatal(err)
	}
	reconfigure(t, alpha.dev, edit(t, m.peersOf("alpha"), "beta", func(pc *PeerConfig) {
		pc.Keepalive = time.Minute
		pc.Endpoint = configured
	}))
	if ep := pb.Endpoint(); ep != configured {
		t.Fatalf("endpoint %s, want the newly configured %s", ep, configured)
	}
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("to the configured address")))
}

// TestReconfigureMovesPrefix: a subnet moves from beta to gamma; both keep
// their sessions, packets to the subnet go to gamma, and the subnet's
// sources are accepted from gamma and refused from beta.
func TestReconfigureMovesPrefix(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32", "10.20.0.0/24"}},
		nodeSpec{name: "gamma", prefixes: []string{"10.10.0.3/32"}},
	)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha, beta, gamma := m.nodes["alpha"], m.nodes["beta"], m.nodes["gamma"]
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.20.0.9", []byte("to beta's subnet")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.20.0.9", "10.10.0.1", []byte("from beta's subnet")))
	m.pass("alpha", "gamma", tuntest.IPv4UDP("10.10.0.1", "10.10.0.3", []byte("up")))
	m.pass("gamma", "alpha", tuntest.IPv4UDP("10.10.0.3", "10.10.0.1", []byte("up")))
	pb, pg := alpha.dev.peerByName("beta"), alpha.dev.peerByName("gamma")
	kb, kg := pb.current.Load(), pg.current.Load()
	hs := w.handshakeMessages(alpha.addr, beta.addr, gamma.addr)

	subnet := netip.MustParsePrefix("10.20.0.0/24")
	pcs := edit(t, m.peersOf("alpha"), "beta", func(pc *PeerConfig) { pc.Prefixes = mustPrefixes(t, []string{"10.10.0.2/32"}) })
	pcs = edit(t, pcs, "gamma", func(pc *PeerConfig) { pc.Prefixes = append(pc.Prefixes, subnet) })
	wantChanges(t, reconfigure(t, alpha.dev, pcs), Changes{Updated: []string{"beta", "gamma"}})

	m.pass("alpha", "gamma", tuntest.IPv4UDP("10.10.0.1", "10.20.0.9", []byte("to gamma's subnet now")))
	m.pass("gamma", "alpha", tuntest.IPv4UDP("10.20.0.9", "10.10.0.1", []byte("from gamma's subnet")))
	beta.tun.Inject(tuntest.IPv4UDP("10.20.0.9", "10.10.0.1", []byte("from a subnet beta lost")))
	waitFor(t, "beta's packet refused as spoofed", func() bool {
		return peerStatus(alpha.dev, "beta").Drops["spoofed_source"] == 1
	})
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("beta itself still passes")))
	if pb.current.Load() != kb || pg.current.Load() != kg {
		t.Fatal("moving a prefix replaced a session")
	}
	if n := w.handshakeMessages(alpha.addr, beta.addr, gamma.addr) - hs; n != 0 {
		t.Fatalf("%d handshake messages after moving a prefix", n)
	}
}

// TestReconfigureAddsAndRemovesPeers: gamma, unknown to alpha, is refused;
// a reload adds it and removes beta. gamma then handshakes with alpha at
// once; beta's session is wiped at alpha, its data counts as unknown_index
// and its initiations are refused as an unknown key's.
func TestReconfigureAddsAndRemovesPeers(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}, knows: []string{"beta"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
		nodeSpec{name: "gamma", prefixes: []string{"10.10.0.3/32"}},
	)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha, beta, gamma := m.nodes["alpha"], m.nodes["beta"], m.nodes["gamma"]
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	gamma.tun.Inject(tuntest.IPv4UDP("10.10.0.3", "10.10.0.1", []byte("from a stranger")))
	waitFor(t, "gamma refused", func() bool { return alpha.dev.Status().Drops["bad_handshake"] == 1 })

	pb := alpha.dev.peerByName("beta")
	pb.stage(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("staged")))
	pcs := append(without(m.peersOf("alpha"), "beta"), m.entryFor("gamma"))
	wantChanges(t, reconfigure(t, alpha.dev, pcs), Changes{Added: []string{"gamma"}, Removed: []string{"beta"}})

	// beta is gone from every table.
	if alpha.dev.peerByName("beta") != nil || alpha.dev.peers.Load().byKey[beta.priv.Public()] != nil ||
		alpha.dev.peers.Load().byEndpoint[beta.addr] != nil {
		t.Fatal("beta is still in the peer set")
	}
	if p, ok := alpha.dev.routes.LookupBytes([]byte{10, 10, 0, 2}); ok {
		t.Fatalf("10.10.0.2 still routes to %s", p.Name())
	}
	pb.mu.Lock()
	kps, staged := pb.keypairs, len(pb.staged)
	pb.mu.Unlock()
	if kps.previous != nil || kps.current != nil || kps.next != nil || pb.current.Load() != nil || staged != 0 {
		t.Fatalf("beta's state survived its removal: %+v, %d staged", kps, staged)
	}
	alpha.dev.index.mu.RLock()
	for idx, e := range alpha.dev.index.m {
		if e.peer == pb {
			t.Errorf("index %d still names beta", idx)
		}
	}
	alpha.dev.index.mu.RUnlock()
	pb.stage(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("routed just before")))
	if pb.hasStaged() {
		t.Fatal("a removed peer staged a packet")
	}

	// gamma can handshake at once; its packet that waited arrives too.
	m.pass("alpha", "gamma", tuntest.IPv4UDP("10.10.0.1", "10.10.0.3", []byte("welcome")))
	m.expectPacket("alpha", tuntest.IPv4UDP("10.10.0.3", "10.10.0.1", []byte("from a stranger")))
	m.pass("gamma", "alpha", tuntest.IPv4UDP("10.10.0.3", "10.10.0.1", []byte("member now")))

	// beta still holds its session: its data is for an index alpha retired.
	beta.tun.Inject(tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("still here?")))
	waitFor(t, "beta's data counted as unknown_index", func() bool { return alpha.dev.Status().Drops["unknown_index"] == 1 })
	// And its new handshake is refused like any stranger's.
	responses := w.count(alpha.addr, int(noise.MessageResponseType))
	clock.Advance(time.Second) // a fresh timestamp
	beta.dev.peerByName("alpha").rekey()
	waitFor(t, "beta's initiation refused", func() bool { return alpha.dev.Status().Drops["bad_handshake"] == 2 })
	m.expectNothing("alpha", 50*time.Millisecond)
	if n := w.count(alpha.addr, int(noise.MessageResponseType)); n != responses {
		t.Fatal("alpha answered the removed beta")
	}
	if pb.current.Load() != nil {
		t.Fatal("the removed beta got a session")
	}
	for _, tm := range []*peerTimer{&pb.timers.retransmitHandshake, &pb.timers.sendKeepalive, &pb.timers.newHandshake, &pb.timers.zeroKeyMaterial, &pb.timers.persistentKeepalive} {
		tm.mu.Lock()
		stopped := tm.stopped
		tm.mu.Unlock()
		if !stopped {
			t.Fatal("a timer of the removed beta still runs")
		}
	}
}

// TestReconfigurePresharedKeyRehandshakes: a new preshared key starts a
// handshake at once; until both sides have the key the old session carries
// the traffic, and then a new one does.
func TestReconfigurePresharedKeyRehandshakes(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	pa, pb := beta.dev.peerByName("alpha"), alpha.dev.peerByName("beta")
	ka, kb := pa.current.Load(), pb.current.Load()
	var psk keys.Preshared
	psk[0] = 7

	// beta first: its initiation is answered under alpha's old key, and
	// fails; the old session still works both ways.
	clock.Advance(time.Second) // a fresh timestamp for the initiation
	inits := w.count(beta.addr, int(noise.MessageInitiationType))
	wantChanges(t, reconfigure(t, beta.dev, edit(t, m.peersOf("beta"), "alpha", func(pc *PeerConfig) { pc.Preshared = psk })),
		Changes{Rekeyed: []string{"alpha"}})
	if n := w.count(beta.addr, int(noise.MessageInitiationType)); n != inits+1 {
		t.Fatalf("%d initiations from beta after its new key, want 1", n-inits)
	}
	waitFor(t, "the response under the old key refused", func() bool { return beta.dev.Status().Drops["bad_handshake"] == 1 })
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("old session")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("old session")))
	if pa.current.Load() != ka || pb.current.Load() != kb {
		t.Fatal("a failed handshake replaced a session")
	}

	// Then alpha: its initiation under the new key completes.
	clock.Advance(time.Second)
	wantChanges(t, reconfigure(t, alpha.dev, edit(t, m.peersOf("alpha"), "beta", func(pc *PeerConfig) { pc.Preshared = psk })),
		Changes{Rekeyed: []string{"beta"}})
	waitFor(t, "new sessions on both sides", func() bool {
		na, nb := pa.current.Load(), pb.current.Load()
		return na != ka && nb != kb && na != nil && nb != nil && na.LocalIndex == nb.RemoteIndex
	})
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("new session")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("new session")))
}

// TestReconfigureUnderTraffic: alpha and beta exchange packets both ways,
// over both families, while both are reloaded again and again (a subnet and
// a keepalive come and go, a prefix moves between gamma and beta, gamma is
// renamed, a peer is added and removed) and Status is read. Every packet
// arrives, in order, none is dropped as no_route or spoofed_source, and the
// session alpha and beta started with carries all of it. Run it with -race.
func TestReconfigureUnderTraffic(t *testing.T) {
	clock := startClock()
	m := threeNodes(t, clock)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	kb := alpha.dev.peerByName("beta").current.Load()
	ka := beta.dev.peerByName("alpha").current.Load()
	hs := w.handshakeMessages(alpha.addr, beta.addr)

	deltaKey, _ := keys.NewPrivate()
	delta := PeerConfig{Name: "delta", PublicKey: deltaKey.Public(), Prefixes: mustPrefixes(t, []string{"10.10.0.4/32", "10.30.0.0/16"})}
	alphaSets := [2][]PeerConfig{m.peersOf("alpha")}
	alphaSets[1] = edit(t, m.peersOf("alpha"), "beta", func(pc *PeerConfig) {
		pc.Prefixes = append(pc.Prefixes, netip.MustParsePrefix("10.20.2.0/24"), netip.MustParsePrefix("10.20.3.0/24"))
		pc.Keepalive = 25 * time.Second
	})
	alphaSets[1] = edit(t, alphaSets[1], "gamma", func(pc *PeerConfig) {
		pc.Name = "gamma-renamed"
		pc.Prefixes = slices.DeleteFunc(pc.Prefixes, func(p netip.Prefix) bool { return p == netip.MustParsePrefix("10.20.3.0/24") })
	})
	alphaSets[1] = append(alphaSets[1], delta)
	betaSets := [2][]PeerConfig{m.peersOf("beta"), edit(t, m.peersOf("beta"), "alpha", func(pc *PeerConfig) {
		pc.Prefixes = append(pc.Prefixes, netip.MustParsePrefix("10.20.1.0/24"))
		pc.Keepalive = 25 * time.Second
	})}

	stop := make(chan struct{})
	var reloads atomic.Int64
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := alpha.dev.Reconfigure(alphaSets[i%2]); err != nil {
				t.Errorf("alpha: Reconfigure: %v", err)
				return
			}
			if _, err := beta.dev.Reconfigure(betaSets[i%2]); err != nil {
				t.Errorf("beta: Reconfigure: %v", err)
				return
			}
			reloads.Add(1)
		}
	}()
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, n := range []*testNode{alpha, beta} {
				n.dev.Status()
				n.dev.peerByName("gamma")
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()

	// count packets each way, and at least minReloads reloads of both
	// nodes while they flow: the senders pace themselves on the reloads
	// (packet i waits for (i+1)*minReloads/count of them), so a fast
	// machine cannot finish the traffic between two reloads.
	const count, minReloads = 5000, 10
	packet := func(from, to string, i int) []byte {
		payload := binary.BigEndian.AppendUint32(nil, uint32(i))
		if i%2 == 0 {
			return tuntest.IPv4UDP("10.10.0."+from, "10.10.0."+to, payload)
		}
		return tuntest.IPv6UDP("fd10::"+from, "fd10::"+to, payload)
	}
	flow := func(from, to *testNode, src, dst string, errs chan<- error) {
		var arrived atomic.Int64
		go func() {
			for i := 0; i < count; i++ {
				// A window, or the memory network's queue (256)
				// would overflow: loss is not what is tested.
				for int64(i)-arrived.Load() > 64 || reloads.Load() < int64((i+1)*minReloads/count) {
					time.Sleep(20 * time.Microsecond)
				}
				from.tun.Inject(packet(src, dst, i))
			}
		}()
		for i := 0; i < count; i++ {
			select {
			case got := <-to.tun.Written():
				if want := packet(src, dst, i); !bytes.Equal(got, want) {
					errs <- fmt.Errorf("%s → %s: packet %d arrived as %x", from.name, to.name, i, got)
					return
				}
				arrived.Add(1)
			case <-time.After(10 * time.Second):
				errs <- fmt.Errorf("%s → %s: packet %d of %d lost", from.name, to.name, i, count)
				return
			}
		}
		errs <- nil
	}
	errs := make(chan error, 2)
	go flow(alpha, beta, "1", "2", errs)
	go flow(beta, alpha, "2", "1", errs)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	close(stop)
	bg.Wait()
	if t.Failed() {
		return
	}
	if n := reloads.Load(); n < minReloads {
		t.Fatalf("only %d reloads during the traffic", n)
	}
	t.Logf("%d reloads of each node during %d packets each way", reloads.Load(), count)
	for _, c := range []struct {
		n    *testNode
		peer string
	}{{alpha, "beta"}, {beta, "alpha"}} {
		if d := c.n.dev.Status().Drops; d["no_route"]+d["malformed"]+d["unknown_index"] != 0 {
			t.Errorf("%s: device drops %v", c.n.name, d)
		}
		if d := peerStatus(c.n.dev, c.peer).Drops; len(d) != 0 {
			t.Errorf("%s: drops of %s's packets: %v", c.n.name, c.peer, d)
		}
	}
	if alpha.dev.peerByName("beta").current.Load() != kb || beta.dev.peerByName("alpha").current.Load() != ka {
		t.Error("the reloads replaced the session between alpha and beta")
	}
	if n := w.handshakeMessages(alpha.addr, beta.addr) - hs; n != 0 {
		t.Errorf("%d handshake messages between alpha and beta during the reloads", n)
	}
}
