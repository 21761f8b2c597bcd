package tunnel

import (
	"bytes"
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
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/udp/udptest"
)

// natFilter makes the in-memory network behave, for the addresses in
// hidden, like NATs with endpoint-dependent filtering: a datagram to a
// hidden address passes only from an address it has sent to before (so
// two hidden nodes reach each other only once both have sent, which is
// hole punching), and never from another hidden one while blocked is set. Datagrams to
// other addresses (the relay's) always pass.
type natFilter struct {
	hidden  map[netip.AddrPort]bool
	blocked atomic.Bool
	mu      sync.Mutex
	sent    map[[2]netip.AddrPort]bool
	// direct counts datagrams delivered between two hidden addresses.
	direct atomic.Int64
}

func newNATFilter(m *testMesh, hidden ...string) *natFilter {
	f := &natFilter{hidden: map[netip.AddrPort]bool{}, sent: map[[2]netip.AddrPort]bool{}}
	for _, n := range hidden {
		f.hidden[m.nodes[n].addr] = true
	}
	m.net.SetFilter(f.pass)
	return f
}

func (f *natFilter) pass(src, dst netip.AddrPort, _ []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent[[2]netip.AddrPort{src, dst}] = true
	if !f.hidden[dst] {
		return true
	}
	if !f.sent[[2]netip.AddrPort{dst, src}] || (f.hidden[src] && f.blocked.Load()) {
		return false
	}
	if f.hidden[src] {
		f.direct.Add(1)
	}
	return true
}

// relayMesh is a relay and two nodes without endpoints behind "NATs".
func relayMesh(t *testing.T, tap Tap) (*testMesh, *natFilter) {
	m := newMesh(t, nil,
		nodeSpec{name: "relay", prefixes: []string{"10.10.0.9/32"}, relay: true, tap: tap},
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}, noEndpoint: true},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}, noEndpoint: true},
	)
	// The filter is in place before either sends to the other: the
	// relay's hellos went out at start, which it lets through.
	return m, newNATFilter(m, "alpha", "beta")
}

func (m *testMesh) peer(node, peer string) *Peer {
	m.t.Helper()
	p := m.nodes[node].dev.peerByName(peer)
	if p == nil {
		m.t.Fatalf("%s has no peer %s", node, peer)
	}
	return p
}

// waitRegistered waits until the relay has every named node registered.
func (m *testMesh) waitRegistered(relay string, names ...string) {
	m.t.Helper()
	d := m.nodes[relay].dev
	waitFor(m.t, "registrations with "+relay, func() bool {
		for _, n := range names {
			if _, ok := d.relays.lookup(m.nodes[n].priv.Public(), time.Now()); !ok {
				return false
			}
		}
		return true
	})
}

// relayInnerTap records the inner packets a node's tap is shown.
type relayInnerTap struct {
	mu    sync.Mutex
	inner [][]byte
}

func (r *relayInnerTap) Inner(_ time.Time, _ Direction, _ string, pkt []byte) {
	r.mu.Lock()
	r.inner = append(r.inner, bytes.Clone(pkt))
	r.mu.Unlock()
}
func (r *relayInnerTap) Outer(time.Time, Direction, netip.AddrPort, netip.AddrPort, []byte) {}
func (r *relayInnerTap) EphemeralKey(string, keys.Public, keys.Preshared, keys.Private)     {}

// TestRelayForwardsWhatItCannotRead: two nodes without endpoints, which
// cannot reach each other, talk through the relay at once; the relay
// forwards their datagrams without ever holding their plaintext.
func TestRelayForwardsWhatItCannotRead(t *testing.T) {
	tap := &relayInnerTap{}
	m, nat := relayMesh(t, tap)
	nat.blocked.Store(true)
	m.waitRegistered("relay", "alpha", "beta")
	for i := range 3 {
		m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{'a', byte(i)}))
		m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte{'b', byte(i)}))
	}
	for _, c := range [][2]string{{"alpha", "beta"}, {"beta", "alpha"}} {
		if got := peerStatus(m.nodes[c[0]].dev, c[1]); got.Path != "via relay" || got.Via != "relay" || got.PathChanged.IsZero() {
			t.Errorf("%s's path to %s is %q, via %q (changed %v), want via relay", c[0], c[1], got.Path, got.Via, got.PathChanged)
		}
	}
	st := m.nodes["relay"].dev.Status()
	if st.Relay == nil || st.Relay.Forwarded < 6 || st.Relay.Registered != 2 {
		t.Errorf("relay status %+v: want 2 registered and at least 6 forwarded", st.Relay)
	}
	m.expectNothing("relay", 100*time.Millisecond)
	tap.mu.Lock()
	if len(tap.inner) != 0 {
		t.Errorf("the relay's tap saw %d inner packets", len(tap.inner))
	}
	tap.mu.Unlock()
	if n := nat.direct.Load(); n != 0 {
		t.Errorf("%d datagrams went directly while blocked", n)
	}
	if st := peerStatus(m.nodes["alpha"].dev, "relay"); !st.Relay || !strings.HasPrefix(st.Path, "direct ") || st.Via != "" {
		t.Errorf("alpha's status of the relay: relay %v, path %q, via %q", st.Relay, st.Path, st.Via)
	}
}

// TestRelayIntroducesThenDirectThenBack: behind NATs that let a peer in
// only once they sent to it, the two nodes are introduced by the relay,
// punch through and go direct; when the direct path breaks, they go back
// through the relay, and traffic goes on throughout.
func TestRelayIntroducesThenDirectThenBack(t *testing.T) {
	m, nat := relayMesh(t, nil)
	m.waitRegistered("relay", "alpha", "beta")
	ping := func(i int) {
		m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{'a', byte(i)}))
		m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte{'b', byte(i)}))
	}
	ping(0)
	direct := func() bool {
		return strings.HasPrefix(peerStatus(m.nodes["alpha"].dev, "beta").Path, "direct ") &&
			strings.HasPrefix(peerStatus(m.nodes["beta"].dev, "alpha").Path, "direct ")
	}
	start := time.Now()
	for i := 1; !direct(); i++ {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("no direct path after %v: alpha %q, beta %q", time.Since(start), peerStatus(m.nodes["alpha"].dev, "beta").Path, peerStatus(m.nodes["beta"].dev, "alpha").Path)
		}
		ping(i)
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("direct after %v", time.Since(start))
	if want := m.nodes["beta"].addr.String(); peerStatus(m.nodes["alpha"].dev, "beta").Path != "direct "+want {
		t.Errorf("alpha's path to beta is %q, want direct %s", peerStatus(m.nodes["alpha"].dev, "beta").Path, want)
	}
	if st := m.nodes["relay"].dev.Status().Relay; st.Introductions == 0 {
		t.Errorf("relay status %+v: no introduction counted", st)
	}
	fwd := m.nodes["relay"].dev.Status().Relay.Forwarded
	d0 := nat.direct.Load()
	for i := range 20 {
		ping(i)
	}
	if got := m.nodes["relay"].dev.Status().Relay.Forwarded; got != fwd {
		t.Errorf("the relay forwarded %d datagrams after the path went direct", got-fwd)
	}
	if nat.direct.Load() < d0+40 {
		t.Errorf("only %d datagrams went directly for 40 packets", nat.direct.Load()-d0)
	}

	// The direct path breaks: within directTimeout and a probe, both go
	// back through the relay; packets may be lost meanwhile, not after.
	nat.blocked.Store(true)
	start = time.Now()
	back := func() bool {
		return peerStatus(m.nodes["alpha"].dev, "beta").Path == "via relay" &&
			peerStatus(m.nodes["beta"].dev, "alpha").Path == "via relay"
	}
	for i := 0; !back(); i++ {
		if time.Since(start) > directTimeout+directProbeInterval+2*pathTick+time.Second {
			t.Fatalf("still direct %v after the direct path broke", time.Since(start))
		}
		m.nodes["alpha"].tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{'x', byte(i)}))
		m.nodes["beta"].tun.Inject(tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte{'y', byte(i)}))
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("back through the relay after %v", time.Since(start))
	drain := func(n string) {
		for {
			select {
			case <-m.nodes[n].tun.Written():
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}
	drain("alpha")
	drain("beta")
	ping(100)
}

// TestTamperingRelayIsDropped: a relay that alters the datagrams it
// forwards gets nothing through: the end peer's session refuses them.
func TestTamperingRelayIsDropped(t *testing.T) {
	m, nat := relayMesh(t, nil)
	nat.blocked.Store(true)
	m.waitRegistered("relay", "alpha", "beta")
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("before")))
	var tampered atomic.Int64
	m.nodes["relay"].dev.tamperForward = func(dg []byte) {
		if typ, _ := noise.Type(dg); typ == noise.MessageTransportType && len(dg) > noise.MessageKeepaliveSize {
			dg[len(dg)-20] ^= 1
			tampered.Add(1)
		}
	}
	for i := range 5 {
		m.nodes["alpha"].tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{'t', byte(i)}))
	}
	m.expectNothing("beta", 300*time.Millisecond)
	if tampered.Load() == 0 {
		t.Fatal("the relay tampered with nothing")
	}
	if got := peerStatus(m.nodes["beta"].dev, "alpha").Drops["decrypt"]; got != uint64(tampered.Load()) {
		t.Errorf("beta dropped %d as failing decryption, want %d", got, tampered.Load())
	}
}

// sendCtrl makes node send peer a control message of type t with key and
// rest as payload, straight to the peer.
func (m *testMesh) sendCtrl(node, peer string, typ ctrlType, key *keys.Public, rest []byte) {
	m.t.Helper()
	p := m.peer(node, peer)
	waitFor(m.t, node+"'s session with "+peer, func() bool { return usable(p.current.Load(), time.Now()) })
	if err := p.sendSimple(typ, key, rest, m.nodes[peer].addr, true, time.Now()); err != nil {
		m.t.Fatal(err)
	}
}

// TestRelayRefusesNonMembers: a relay forwards to and introduces only
// members registered with it, and a node takes introductions only from
// its relays and about members.
func TestRelayRefusesNonMembers(t *testing.T) {
	m, nat := relayMesh(t, nil)
	nat.blocked.Store(true)
	m.waitRegistered("relay", "alpha", "beta")
	relay := m.nodes["relay"].dev
	stranger, _ := keys.NewPrivate()
	sk := stranger.Public()
	var ka [noise.MessageKeepaliveSize]byte
	ka[0] = noise.MessageTransportType

	refused := relay.relays.refused.Load()
	m.sendCtrl("alpha", "relay", ctrlRelay, &sk, ka[:])
	m.sendCtrl("alpha", "relay", ctrlIntroRequest, &sk, nil)
	waitFor(t, "two refusals", func() bool { return relay.relays.refused.Load() == refused+2 })
	// alpha learns the stranger is unreachable (and has no such peer).
	waitFor(t, "alpha's drop of the answer about a stranger", func() bool {
		return peerStatus(m.nodes["alpha"].dev, "relay").Drops["control"] >= 1
	})
	// Garbage is not forwarded even to a member.
	bk := m.nodes["beta"].priv.Public()
	m.sendCtrl("alpha", "relay", ctrlRelay, &bk, []byte("not a wireguard message"))
	waitFor(t, "the relay's drop of garbage", func() bool { return peerStatus(relay, "alpha").Drops["control"] >= 1 })
	if got := relay.relays.forwarded.Load(); got != 0 {
		t.Errorf("the relay forwarded %d datagrams", got)
	}

	// An introduction from a member that is not a relay: beta ignores it
	// and probes nothing, not even a member's address.
	ak := m.nodes["alpha"].priv.Public()
	victim := netip.MustParseAddrPort("192.0.2.200:53")
	var probed atomic.Int64
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		if dst == victim {
			probed.Add(1)
		}
		return true // no NAT: the introduction must arrive to be refused
	})
	before := peerStatus(m.nodes["beta"].dev, "alpha").Drops["control"]
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("session")))
	m.sendCtrl("alpha", "beta", ctrlIntro, &ak, appendCandidates(nil, []netip.AddrPort{victim}))
	waitFor(t, "beta's refusal of alpha's introduction", func() bool {
		return peerStatus(m.nodes["beta"].dev, "alpha").Drops["control"] == before+1
	})
	// From its relay, an introduction naming a stranger is refused too.
	rb := m.peer("relay", "beta")
	rb.sendSimple(ctrlIntro, &sk, appendCandidates(nil, []netip.AddrPort{victim}), m.nodes["beta"].addr, true, time.Now())
	waitFor(t, "beta's refusal of an introduction of a stranger", func() bool {
		return peerStatus(m.nodes["beta"].dev, "relay").Drops["control"] >= 1
	})
	time.Sleep(probeRounds * probeSpacing)
	if n := probed.Load(); n != 0 {
		t.Errorf("%d probes went to an address nobody should have probed", n)
	}
}

// TestIntroductionIsBounded: however often a member asks, a pair is
// introduced once per introInterval, an introduction makes at most
// probeRounds probes per candidate, and a hello with more than
// maxCandidates addresses is refused.
func TestIntroductionIsBounded(t *testing.T) {
	m, nat := relayMesh(t, nil)
	nat.blocked.Store(true)
	m.waitRegistered("relay", "alpha", "beta")
	relay := m.nodes["relay"].dev
	// alpha registers again, offering the addresses of others (victims).
	var victims []netip.AddrPort
	for i := range maxCandidates - 1 {
		victims = append(victims, netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}), 9))
	}
	var probes atomic.Int64
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		if dst.Addr().Is4() && dst.Addr().As4()[0] == 198 {
			probes.Add(1)
		}
		return nat.pass(src, dst, b)
	})
	m.sendCtrl("alpha", "relay", ctrlHello, nil, appendCandidates(nil, victims))
	tooMany := slices.Repeat(victims[:1], maxCandidates+1)
	raw := make([]byte, 0, len(tooMany)*candidateLen)
	for _, c := range tooMany {
		a := c.Addr().As16()
		raw = append(raw, a[:]...)
		raw = append(raw, 0, 9)
	}
	m.sendCtrl("beta", "relay", ctrlHello, nil, raw)
	waitFor(t, "the relay's refusal of a hello of too many candidates", func() bool {
		return peerStatus(relay, "beta").Drops["control"] >= 1
	})
	// beta needs a session with alpha to probe at all.
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("session")))
	bk := m.nodes["beta"].priv.Public()
	intros := relay.relays.introductions.Load()
	for range 10 {
		m.sendCtrl("alpha", "relay", ctrlIntroRequest, &bk, nil)
	}
	waitFor(t, "beta's first probes of the victims", func() bool { return probes.Load() > 0 })
	// The upper bounds hold once every round of probes had its time.
	time.Sleep(probeRounds*probeSpacing + 200*time.Millisecond)
	if got := relay.relays.introductions.Load() - intros; got != 1 {
		t.Errorf("%d introductions for 10 requests within introInterval, want 1", got)
	}
	if got, most := probes.Load(), int64(len(victims)*probeRounds); got == 0 || got > most {
		t.Errorf("%d probes to the victims, want between 1 and %d", got, most)
	}
}

// TestNoControlForPlainPeers: a peer that never spoke our control
// protocol (a stock WireGuard peer, for all we know) is never sent a
// control message, however long traffic flows, even with a relay in the
// mesh.
func TestNoControlForPlainPeers(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "relay", prefixes: []string{"10.10.0.9/32"}, relay: true},
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	deadline := time.Now().Add(directProbeInterval + 2*pathTick)
	for i := 0; time.Now().Before(deadline); i++ {
		m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{byte(i)}))
		time.Sleep(100 * time.Millisecond)
	}
	if n := m.peer("alpha", "beta").ctrlTx.Load(); n != 0 {
		t.Errorf("alpha sent beta %d control messages", n)
	}
	if n := m.peer("alpha", "relay").ctrlTx.Load(); n == 0 {
		t.Error("alpha sent its relay no control message (no hello)")
	}
}

// TestUnreachableEndpointFallsBackToRelay: a peer with an endpoint that
// does not answer is reached through the relay after one unanswered
// initiation, and it answers the same way.
func TestUnreachableEndpointFallsBackToRelay(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "relay", prefixes: []string{"10.10.0.9/32"}, relay: true},
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	a, b := m.nodes["alpha"].addr, m.nodes["beta"].addr
	m.net.SetFilter(func(src, dst netip.AddrPort, _ []byte) bool {
		return !(src == a && dst == b) && !(src == b && dst == a)
	})
	m.waitRegistered("relay", "alpha", "beta")
	start := time.Now()
	m.nodes["alpha"].tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("first")))
	select {
	case <-m.nodes["beta"].tun.Written():
	case <-time.After(noise.RekeyTimeout + 2*time.Second):
		t.Fatalf("nothing arrived through the relay within %v", noise.RekeyTimeout+2*time.Second)
	}
	t.Logf("through the relay after %v", time.Since(start))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("back")))
	for _, c := range [][2]string{{"alpha", "beta"}, {"beta", "alpha"}} {
		if got := peerStatus(m.nodes[c[0]].dev, c[1]).Path; got != "via relay" {
			t.Errorf("%s's path to %s is %q, want via relay", c[0], c[1], got)
		}
	}
}

// TestRelayFailover: with two relays, a node uses the first that is
// alive; when that one goes silent (no answer to hellos for
// relayAliveTime, made to have passed here), traffic moves to the other.
func TestRelayFailover(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "r1", prefixes: []string{"10.10.0.8/32"}, relay: true},
		nodeSpec{name: "r2", prefixes: []string{"10.10.0.9/32"}, relay: true},
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}, noEndpoint: true},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}, noEndpoint: true},
	)
	nat := newNATFilter(m, "alpha", "beta")
	nat.blocked.Store(true)
	m.waitRegistered("r1", "alpha", "beta")
	m.waitRegistered("r2", "alpha", "beta")
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("via r1")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("via r1")))
	if got := peerStatus(m.nodes["alpha"].dev, "beta").Path; got != "via r1" {
		t.Fatalf("alpha's path to beta is %q, want via r1", got)
	}
	m.nodes["r1"].dev.Close()
	silent := time.Now().Add(-relayAliveTime - time.Second).UnixNano()
	m.peer("alpha", "r1").lastDirect.Store(silent)
	m.peer("beta", "r1").lastDirect.Store(silent)
	start := time.Now()
	for i := 0; ; i++ {
		if time.Since(start) > 3*pathTick+time.Second {
			t.Fatalf("still %q after %v", peerStatus(m.nodes["alpha"].dev, "beta").Path, time.Since(start))
		}
		m.nodes["alpha"].tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{'f', byte(i)}))
		select {
		case <-m.nodes["beta"].tun.Written():
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	t.Logf("through r2 after %v", time.Since(start))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("back via r2")))
	for _, c := range [][2]string{{"alpha", "beta"}, {"beta", "alpha"}} {
		if got := peerStatus(m.nodes[c[0]].dev, c[1]).Path; got != "via r2" {
			t.Errorf("%s's path to %s is %q, want via r2", c[0], c[1], got)
		}
	}
}

// TestRelayStopsServing: a node that stops serving as a relay (a reload
// of its own entry) forwards nothing more, and counts what it refused.
func TestRelayStopsServing(t *testing.T) {
	m, nat := relayMesh(t, nil)
	nat.blocked.Store(true)
	m.waitRegistered("relay", "alpha", "beta")
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("served")))
	relay := m.nodes["relay"].dev
	relay.SetServeRelay(false)
	if st := relay.Status(); st.Relay != nil {
		t.Errorf("status of a node that does not serve has relay counters %+v", st.Relay)
	}
	// The relay's receive goroutine counts a datagram it forwarded after
	// sending it, so the count of "served" may trail beta's receipt; it
	// is in once that goroutine refused a later datagram.
	refusedOne := func(what string) {
		refused := relay.relays.refused.Load()
		m.nodes["alpha"].tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte(what)))
		waitFor(t, "the relay's refusal of "+what, func() bool { return relay.relays.refused.Load() > refused })
	}
	refusedOne("refused")
	fwd := relay.relays.forwarded.Load()
	refusedOne("refused again")
	m.expectNothing("beta", 300*time.Millisecond)
	if got := relay.relays.forwarded.Load(); got != fwd {
		t.Errorf("forwarded %d after it stopped serving", got-fwd)
	}
	relay.SetServeRelay(true)
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("again")))
}

func TestControlMessageFraming(t *testing.T) {
	cands := []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("[2001:db8::1]:9")}
	payload := appendCandidates(nil, cands)
	b := make([]byte, ctrlHeaderLen+len(payload)+7) // and padding
	putControlHeader(b, ctrlHello, len(payload))
	copy(b[ctrlHeaderLen:], payload)
	typ, got, ok := parseControl(b)
	if !ok || typ != ctrlHello || !bytes.Equal(got, payload) {
		t.Fatalf("parseControl = %v %x %v", typ, got, ok)
	}
	back, ok := parseCandidates(got)
	if !ok || len(back) != 2 || back[0] != cands[0] || back[1] != cands[1] {
		t.Fatalf("parseCandidates = %v %v", back, ok)
	}
	for _, bad := range [][]byte{nil, {0}, {0, 1, 0}, {0, 0, 0, 0}, {0, byte(numCtrlTypes), 0, 0}, {0, 1, 0, 5, 1}, {4, 1, 0, 0}} {
		if _, _, ok := parseControl(bad); ok {
			t.Errorf("parseControl(%x) accepted", bad)
		}
	}
	if _, ok := parseCandidates(make([]byte, candidateLen+1)); ok {
		t.Error("a partial candidate accepted")
	}
	if _, ok := parseCandidates(make([]byte, candidateLen*(maxCandidates+1))); ok {
		t.Error("too many candidates accepted")
	}
	if isControl([]byte{0x45}) || isControl(nil) || !isControl([]byte{0}) {
		t.Error("isControl wrong")
	}
}

// FuzzControlMessage: whatever a peer sends as a control message, parsing
// it neither panics nor reads past it, and candidates round-trip.
func FuzzControlMessage(f *testing.F) {
	f.Add([]byte{0, byte(ctrlHello), 0, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1, 0xca, 0x6c})
	f.Add([]byte{0, byte(ctrlIntro), 0, 32})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, payload, ok := parseControl(b)
		if !ok {
			return
		}
		if typ == 0 || typ >= numCtrlTypes || len(payload) > len(b)-ctrlHeaderLen {
			t.Fatalf("parseControl(%x) = %v, %d bytes", b, typ, len(payload))
		}
		if key, rest, ok := parseKey(payload); ok && len(rest)+len(key) != len(payload) {
			t.Fatal("parseKey lost bytes")
		}
		if cands, ok := parseCandidates(payload); ok {
			if again := appendCandidates(nil, cands); len(again) != len(payload) {
				t.Fatalf("candidates %v re-encode to %d bytes, not %d", cands, len(again), len(payload))
			}
		}
	})
}

// FuzzHandleControl: whatever control message a member sends (a relay or
// not), a node serving as a relay neither panics nor forwards anything
// that is not a WireGuard message.
func FuzzHandleControl(f *testing.F) {
	for t := ctrlHello; t < numCtrlTypes; t++ {
		f.Add(uint8(0), []byte{0, byte(t), 0, 0})
		f.Add(uint8(1), append([]byte{0, byte(t), 0, keyLen + 4}, make([]byte, keyLen+4)...))
	}
	priv, _ := keys.NewPrivate()
	kr, _ := keys.NewPrivate()
	kb, _ := keys.NewPrivate()
	c, err := udptest.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		f.Fatal(err)
	}
	d, err := New(Config{
		Private: priv,
		TUN:     tuntest.NewMemory("fuzz", 1420, 1),
		Conn:    c,
		Peers: []PeerConfig{
			{Name: "relay", PublicKey: kr.Public(), Relay: true, Endpoint: netip.MustParseAddrPort("192.0.2.9:51820"), Prefixes: mustPrefixes(f, []string{"10.99.0.9/32"})},
			{Name: "beta", PublicKey: kb.Public(), Prefixes: mustPrefixes(f, []string{"10.99.0.2/32"})},
		},
		ServeRelay: true,
		Log:        slog.New(slog.DiscardHandler),
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(d.Close)
	src := netip.MustParseAddrPort("198.51.100.2:4000")
	f.Fuzz(func(t *testing.T, who uint8, pkt []byte) {
		p := d.peers.Load().list[int(who)%2]
		d.handleControl(p, pkt, src, time.Now())
		if n := d.relays.forwarded.Load(); n != 0 {
			t.Fatalf("forwarded %d datagrams without sessions", n)
		}
	})
}
