package tunnel

import (
	"bytes"
	"context"
	"encoding/binary"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/udp"
	"github.com/peer-vpn/peer/udp/udptest"
)

// testNode is one node of an in-memory mesh.
type testNode struct {
	name     string
	priv     keys.Private
	addr     netip.AddrPort // underlay
	prefixes []netip.Prefix
	tun      *tuntest.Memory
	conn     udp.Conn
	dev      *Device
	done     chan error
	peers    []PeerConfig // the peer set it was started with
}

type testMesh struct {
	t     *testing.T
	net   *udptest.Network
	clock Clock
	nodes map[string]*testNode
	order []string
}

type nodeSpec struct {
	name       string
	prefixes   []string
	keepalive  time.Duration
	noEndpoint bool // others do not know where it is
	relay      bool // others have it as a relay, and it serves as one
	tap        Tap
	knows      []string // the peers it is configured with; nil: every other node
	// also maps a peer's name to prefixes this node routes to it beyond
	// the peer's own, as a node routes the internet to its exit.
	also map[string][]string
}

func mustPrefixes(t testing.TB, ss []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// newMesh wires the nodes together over an in-memory network and starts
// them; everything is torn down when the test ends.
func newMesh(t *testing.T, clock Clock, specs ...nodeSpec) *testMesh {
	t.Helper()
	m := &testMesh{t: t, net: udptest.NewNetwork(), clock: clock, nodes: map[string]*testNode{}}
	for i, s := range specs {
		k, err := keys.NewPrivate()
		if err != nil {
			t.Fatal(err)
		}
		n := &testNode{
			name:     s.name,
			priv:     k,
			addr:     netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 51820),
			prefixes: mustPrefixes(t, s.prefixes),
		}
		m.nodes[s.name] = n
		m.order = append(m.order, s.name)
	}
	// Every node listens before any starts, so nothing sent at start is lost.
	for _, s := range specs {
		n := m.nodes[s.name]
		c, err := m.net.Listen(n.addr)
		if err != nil {
			t.Fatal(err)
		}
		n.conn = c
		n.tun = tuntest.NewMemory("t-"+s.name, 1420, 16)
	}
	for _, s := range specs {
		n := m.nodes[s.name]
		var peers []PeerConfig
		for _, o := range specs {
			if o.name == s.name || (s.knows != nil && !slices.Contains(s.knows, o.name)) {
				continue
			}
			on := m.nodes[o.name]
			prefixes := append(slices.Clone(on.prefixes), mustPrefixes(t, s.also[o.name])...)
			pc := PeerConfig{Name: o.name, PublicKey: on.priv.Public(), Prefixes: prefixes, Keepalive: s.keepalive, Relay: o.relay}
			if !o.noEndpoint {
				pc.Endpoint = on.addr
			}
			peers = append(peers, pc)
		}
		// Three crypto workers, whatever the machine: batches are split
		// and the ordering across workers is exercised everywhere.
		dev, err := New(Config{Private: n.priv, Peers: peers, TUN: n.tun, Conn: n.conn, Clock: clock, Log: testLog(t, s.name), CryptoWorkers: 3, Tap: s.tap, ServeRelay: s.relay})
		if err != nil {
			t.Fatal(err)
		}
		n.dev = dev
		n.peers = peers
		n.done = make(chan error, 1)
		go func() { n.done <- dev.Run(context.Background()) }()
	}
	t.Cleanup(func() {
		for _, name := range m.order {
			n := m.nodes[name]
			n.dev.Close()
			select {
			case err := <-n.done:
				if err != nil {
					t.Errorf("%s: Run: %v", name, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: Run did not return after Close", name)
			}
		}
	})
	return m
}

// pass injects pkt into from's TUN and waits for it, unchanged, on to's.
func (m *testMesh) pass(from, to string, pkt []byte) {
	m.t.Helper()
	m.nodes[from].tun.Inject(pkt)
	m.expectPacket(to, pkt)
}

// expectPacket waits for want on n's TUN.
func (m *testMesh) expectPacket(n string, want []byte) {
	m.t.Helper()
	select {
	case got := <-m.nodes[n].tun.Written():
		if !bytes.Equal(got, want) {
			m.t.Fatalf("%s received\n%x\nwant\n%x", n, got, want)
		}
	case <-time.After(5 * time.Second):
		m.t.Fatalf("%s: no packet arrived", n)
	}
}

// expectNothing checks that n's TUN stays silent for a while.
func (m *testMesh) expectNothing(n string, wait time.Duration) {
	m.t.Helper()
	select {
	case got := <-m.nodes[n].tun.Written():
		m.t.Fatalf("%s received an unexpected packet %x", n, got)
	case <-time.After(wait):
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func peerStatus(d *Device, name string) PeerStatus {
	for _, p := range d.Status().Peers {
		if p.Name == name {
			return p
		}
	}
	return PeerStatus{}
}

func threeNodes(t *testing.T, clock Clock) *testMesh {
	return newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32", "fd10::1/128"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32", "fd10::2/128"}},
		nodeSpec{name: "gamma", prefixes: []string{"10.10.0.3/32", "fd10::3/128", "10.20.3.0/24", "fd20:3::/64"}},
	)
}

func TestTwoNodesBothDirectionsBothFamilies(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32", "fd10::1/128"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32", "fd10::2/128"}},
	)
	p := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("hello beta"))
	m.pass("alpha", "beta", p)
	r := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("hello alpha, a longer reply"))
	m.pass("beta", "alpha", r)
	p6 := tuntest.IPv6UDP("fd10::2", "fd10::1", bytes.Repeat([]byte{7}, 1000))
	m.pass("beta", "alpha", p6)
	// Counters are bumped after the write that delivered the packet.
	waitFor(t, "alpha's counters of beta", func() bool {
		st := peerStatus(m.nodes["alpha"].dev, "beta")
		return st.TxPackets == 1 && st.RxPackets >= 2 && !st.LastHandshake.IsZero()
	})
}

func TestThreeNodesEveryPairAndRoutedSubnet(t *testing.T) {
	m := threeNodes(t, nil)
	addrs := map[string][2]string{"alpha": {"10.10.0.1", "fd10::1"}, "beta": {"10.10.0.2", "fd10::2"}, "gamma": {"10.10.0.3", "fd10::3"}}
	for _, a := range m.order {
		for _, b := range m.order {
			if a == b {
				continue
			}
			p := tuntest.IPv4UDP(addrs[a][0], addrs[b][0], []byte(a+"→"+b))
			m.pass(a, b, p)
			p6 := tuntest.IPv6UDP(addrs[a][1], addrs[b][1], []byte(a+"→"+b))
			m.pass(a, b, p6)
		}
	}
	// Longest prefix: 10.20.3.7 is behind gamma.
	p := tuntest.IPv4UDP("10.10.0.1", "10.20.3.7", []byte("to the lan"))
	m.pass("alpha", "gamma", p)
	p6 := tuntest.IPv6UDP("fd10::2", "fd20:3::7", []byte("to the lan"))
	m.pass("beta", "gamma", p6)
	// And back from a host in the lan.
	back := tuntest.IPv4UDP("10.20.3.7", "10.10.0.1", []byte("from the lan"))
	m.pass("gamma", "alpha", back)
}

func TestNoRouteIsDroppedAndCounted(t *testing.T) {
	m := threeNodes(t, nil)
	m.nodes["alpha"].tun.Inject(tuntest.IPv4UDP("10.10.0.1", "172.16.0.1", []byte("nowhere")))
	waitFor(t, "no_route drop", func() bool { return m.nodes["alpha"].dev.Status().Drops["no_route"] == 1 })
	m.nodes["alpha"].tun.Inject([]byte{0x45, 0, 0}) // truncated
	waitFor(t, "malformed drop", func() bool { return m.nodes["alpha"].dev.Status().Drops["malformed"] == 1 })
}

func TestSpoofedSourceIsDropped(t *testing.T) {
	m := threeNodes(t, nil)
	// beta claims to be gamma's lan: alpha must refuse it.
	spoof := tuntest.IPv4UDP("10.20.3.9", "10.10.0.1", []byte("spoof"))
	m.nodes["beta"].tun.Inject(spoof)
	m.expectNothing("alpha", 200*time.Millisecond)
	waitFor(t, "spoofed_source drop", func() bool {
		return peerStatus(m.nodes["alpha"].dev, "beta").Drops["spoofed_source"] == 1
	})
	// A genuine packet still passes afterwards.
	ok := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("genuine"))
	m.pass("beta", "alpha", ok)
}

func TestReplayedTransportIsDropped(t *testing.T) {
	m := threeNodes(t, nil)
	var mu sync.Mutex
	var captured []byte
	var replay atomic.Bool
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		if typ, _ := noise.Type(b); typ == noise.MessageTransportType && len(b) > noise.MessageKeepaliveSize && replay.Load() {
			mu.Lock()
			if captured == nil {
				captured = append([]byte(nil), b...)
			}
			mu.Unlock()
		}
		return true
	})
	// Establish the session first, then start recording.
	warm := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("warm up"))
	m.pass("alpha", "beta", warm)
	replay.Store(true)
	p := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("only once"))
	m.pass("alpha", "beta", p)
	mu.Lock()
	dup := captured
	mu.Unlock()
	if dup == nil {
		t.Fatal("no transport message captured")
	}
	// Send the captured datagram again, from alpha's address.
	c, err := m.net.Listen(netip.MustParseAddrPort("192.0.2.200:1"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs := []udp.Message{{Buf: dup, N: len(dup), Addr: m.nodes["beta"].addr}}
	if _, err := c.WriteBatch(msgs); err != nil {
		t.Fatal(err)
	}
	m.expectNothing("beta", 200*time.Millisecond)
	waitFor(t, "replay drop", func() bool { return peerStatus(m.nodes["beta"].dev, "alpha").Drops["replay"] == 1 })
	// The replay did not move beta's idea of alpha's endpoint.
	if ep := peerStatus(m.nodes["beta"].dev, "alpha").Endpoint; ep != m.nodes["alpha"].addr.String() {
		t.Fatalf("endpoint moved to %s by a replay", ep)
	}
}

func TestUnknownKeyIsSilentlyDropped(t *testing.T) {
	m := threeNodes(t, nil)
	// A stranger who knows alpha's public key but is not in its mesh.
	stranger, _ := keys.NewPrivate()
	local := noise.NewLocal(stranger)
	hs, err := noise.NewHandshake(local, m.nodes["alpha"].priv.Public(), keys.Preshared{})
	if err != nil {
		t.Fatal(err)
	}
	init, err := hs.CreateInitiation(time.Now(), 42)
	if err != nil {
		t.Fatal(err)
	}
	b := init.Marshal(nil)
	noise.NewCookieGenerator(m.nodes["alpha"].priv.Public()).AddMACs(b, time.Now())
	c, err := m.net.Listen(netip.MustParseAddrPort("192.0.2.99:5555"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.WriteBatch([]udp.Message{{Buf: b, N: len(b), Addr: m.nodes["alpha"].addr}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bad_handshake drop", func() bool { return m.nodes["alpha"].dev.Status().Drops["bad_handshake"] == 1 })
	// No answer of any kind.
	got := make([]udp.Message, 1)
	got[0].Buf = make([]byte, 2048)
	readDone := make(chan int, 1)
	go func() { n, _ := c.ReadBatch(got); readDone <- n }()
	select {
	case <-readDone:
		t.Fatal("alpha answered an unknown key")
	case <-time.After(200 * time.Millisecond):
	}
}

func TestRoamingFollowsAuthenticatedPackets(t *testing.T) {
	m := threeNodes(t, nil)
	p := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("before"))
	m.pass("beta", "alpha", p)
	moved := netip.MustParseAddrPort("203.0.113.50:40000")
	if err := m.net.Move(m.nodes["beta"].conn, moved); err != nil {
		t.Fatal(err)
	}
	p2 := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("after moving"))
	m.pass("beta", "alpha", p2)
	if ep := peerStatus(m.nodes["alpha"].dev, "beta").Endpoint; ep != moved.String() {
		t.Fatalf("alpha still sends to %s, want %s", ep, moved)
	}
	// alpha's reply reaches beta at its new address.
	r := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("reply"))
	m.pass("alpha", "beta", r)
}

func TestStagedQueueIsBoundedAndFlushedInOrder(t *testing.T) {
	clock := newFakeClock(time.Unix(1_700_000_000, 0))
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	var block atomic.Bool
	block.Store(true)
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool { return !block.Load() })
	for i := 0; i < maxStaged+10; i++ {
		m.nodes["alpha"].tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{byte(i)}))
	}
	waitFor(t, "staged overflow", func() bool {
		return peerStatus(m.nodes["alpha"].dev, "beta").Drops["staged_full"] == 10
	})
	block.Store(false)
	// The retransmit timer completes the handshake; the staged packets then
	// arrive oldest first, the 10 oldest lost.
	clock.Advance(noise.RekeyTimeout + time.Second)
	for i := 10; i < maxStaged+10; i++ {
		select {
		case got := <-m.nodes["beta"].tun.Written():
			if got[28] != byte(i) {
				t.Fatalf("packet %d arrived as %d", i, got[28])
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("staged packet %d never arrived", i)
		}
	}
}

// testLog sends a node's debug log to the test log (shown on failure or -v).
func testLog(t *testing.T, name string) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestParallelCryptoKeepsOrder pushes full batches through both directions
// and checks every packet arrives once, in order, with its payload intact.
func TestParallelCryptoKeepsOrder(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	warm := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("warm"))
	m.pass("alpha", "beta", warm)
	const count = 2000
	// At most 128 in flight: the in-memory network drops beyond 256
	// queued datagrams, like a socket buffer, and loss is not the point.
	var arrived atomic.Int64
	go func() {
		for i := 0; i < count; i++ {
			for int64(i)-arrived.Load() > 128 {
				time.Sleep(50 * time.Microsecond)
			}
			payload := make([]byte, 100+i%1200)
			binary.BigEndian.PutUint32(payload, uint32(i))
			for k := 4; k < len(payload); k++ {
				payload[k] = byte(i + k)
			}
			m.nodes["alpha"].tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", payload))
		}
	}()
	for i := 0; i < count; i++ {
		select {
		case got := <-m.nodes["beta"].tun.Written():
			seq := binary.BigEndian.Uint32(got[28:])
			if seq != uint32(i) {
				t.Fatalf("packet %d arrived in place of %d", seq, i)
			}
			if len(got) != 28+100+i%1200 || got[28+50] != byte(i+50) {
				t.Fatalf("packet %d damaged (len %d)", i, len(got))
			}
			arrived.Add(1)
		case <-time.After(10 * time.Second):
			t.Fatalf("packet %d never arrived", i)
		}
	}
}

// restart stops node name (as a crash would: its sessions are gone) and
// starts it again with the same key, address and peers, on a fresh TUN.
func (m *testMesh) restart(name string) {
	m.t.Helper()
	n := m.nodes[name]
	cfg := Config{Private: n.priv, Clock: m.clock, Log: testLog(m.t, name), CryptoWorkers: 3}
	for _, p := range n.dev.peers.Load().list {
		c := *p.conf.Load()
		c.Endpoint = m.nodes[c.Name].addr
		cfg.Peers = append(cfg.Peers, c)
	}
	n.dev.Close()
	if err := <-n.done; err != nil {
		m.t.Fatalf("%s: Run: %v", name, err)
	}
	c, err := m.net.Listen(n.addr)
	if err != nil {
		m.t.Fatal(err)
	}
	n.conn, n.tun = c, tuntest.NewMemory("t-"+name, 1420, 16)
	cfg.Conn, cfg.TUN = n.conn, n.tun
	if n.dev, err = New(cfg); err != nil {
		m.t.Fatal(err)
	}
	n.done = make(chan error, 1)
	go func() { n.done <- n.dev.Run(context.Background()) }()
}

// TestRestartedPeerIsReachedWithoutWaiting: after beta restarts, alpha
// still holds the old session and sends into it. Only alpha sends (a
// one-way flow toward the restarted node), and the clock does not move:
// beta must notice the data for a session it no longer has from alpha's
// endpoint and handshake itself, rather than alpha's timers giving up after
// KeepaliveTimeout+RekeyTimeout (15 s).
func TestRestartedPeerIsReachedWithoutWaiting(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("before")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("before")))
	m.restart("beta")
	beta := m.nodes["beta"]
	deadline := time.Now().Add(10 * time.Second)
	sent := map[string]bool{}
	for i := 0; ; i++ {
		pkt := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", binary.BigEndian.AppendUint32(nil, uint32(i)))
		sent[string(pkt)] = true
		m.nodes["alpha"].tun.Inject(pkt)
		select {
		case got := <-beta.tun.Written():
			if !sent[string(got)] {
				t.Fatalf("beta received %x, which alpha never sent", got)
			}
			if d := peerStatus(beta.dev, "alpha").Drops; d["replay"]+d["decrypt"] != 0 {
				t.Errorf("drops at the restarted beta: %v", d)
			}
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d packets from alpha, none reached the restarted beta (status %+v)", i+1, peerStatus(beta.dev, "alpha"))
		}
	}
}

// TestUnknownSessionHandshakeIsBounded: data for an unknown session starts
// at most one handshake per RekeyTimeout, only from a peer's configured
// endpoint, and never while a session with that peer is usable.
func TestUnknownSessionHandshakeIsBounded(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	var w wireCounter
	w.block.Store(true) // nothing is answered: the count stays readable
	m.net.SetFilter(w.filter)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	stranger := netip.MustParseAddrPort("198.51.100.7:51820")
	for range 100 {
		beta.dev.unknownSessionFrom(stranger, clock.Now())
		beta.dev.unknownSessionFrom(alpha.addr, clock.Now())
	}
	waitFor(t, "beta's initiation", func() bool { return w.count(beta.addr, noise.MessageInitiationType) >= 1 })
	time.Sleep(50 * time.Millisecond) // a second one would be under way by now
	if n := w.count(beta.addr, noise.MessageInitiationType); n != 1 {
		t.Fatalf("%d initiations for 100 unknown-session datagrams, want 1", n)
	}

	// With a confirmed session, stale data for an old index starts nothing.
	w.block.Store(false)
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("up")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("up")))
	before := w.count(beta.addr, noise.MessageInitiationType)
	clock.Advance(noise.RekeyTimeout + time.Second)
	after := w.count(beta.addr, noise.MessageInitiationType)
	beta.dev.unknownSessionFrom(alpha.addr, clock.Now())
	time.Sleep(50 * time.Millisecond)
	if n := w.count(beta.addr, noise.MessageInitiationType); n != after {
		t.Fatalf("an unknown session started a handshake despite a live one (%d → %d → %d)", before, after, n)
	}
}
