package tunnel

import (
	"github.com/peer-vpn/peer/tundev/tuntest"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peer-vpn/peer/noise"
)

// wireCounter counts datagrams by type and source as they cross the
// in-memory network.
type wireCounter struct {
	mu     sync.Mutex
	counts map[netip.AddrPort]map[int]int
	block  atomic.Bool
}

const keepaliveKind = 5 // pseudo type: transport message with no payload

func (w *wireCounter) filter(src, dst netip.AddrPort, b []byte) bool {
	typ, _ := noise.Type(b)
	kind := int(typ)
	if typ == noise.MessageTransportType && len(b) == noise.MessageKeepaliveSize {
		kind = keepaliveKind
	}
	w.mu.Lock()
	if w.counts == nil {
		w.counts = map[netip.AddrPort]map[int]int{}
	}
	if w.counts[src] == nil {
		w.counts[src] = map[int]int{}
	}
	w.counts[src][kind]++
	w.mu.Unlock()
	return !w.block.Load()
}

func (w *wireCounter) count(src netip.AddrPort, kind int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.counts[src][kind]
}

func startClock() *fakeClock { return newFakeClock(time.Unix(1_700_000_000, 0)) }

func TestHandshakeRetransmitsThenGivesUp(t *testing.T) {
	clock := startClock()
	m := threeNodes(t, clock)
	var w wireCounter
	w.block.Store(true)
	m.net.SetFilter(w.filter)
	alpha := m.nodes["alpha"]
	alpha.tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("lost")))
	waitFor(t, "first initiation", func() bool { return w.count(alpha.addr, noise.MessageInitiationType) == 1 })
	for i := 1; i <= maxHandshakeAttempts; i++ {
		clock.Advance(noise.RekeyTimeout + 400*time.Millisecond)
		if got := w.count(alpha.addr, noise.MessageInitiationType); got != 1+i {
			t.Fatalf("after %d timeouts: %d initiations, want %d", i, got, 1+i)
		}
	}
	clock.Advance(noise.RekeyTimeout + 400*time.Millisecond)
	if got := w.count(alpha.addr, noise.MessageInitiationType); got != 1+maxHandshakeAttempts {
		t.Fatalf("kept retrying after RekeyAttemptTime: %d initiations", got)
	}
	if d := peerStatus(alpha.dev, "beta").Drops["handshake_timeout"]; d != 1 {
		t.Fatalf("staged packet not dropped as handshake_timeout: %d", d)
	}
	if s := peerStatus(alpha.dev, "beta"); s.Handshakes != (HandshakeCounts{Timeout: 1}) || s.Session {
		t.Fatalf("after giving up: session %v, handshakes %+v, want one timeout", s.Session, s.Handshakes)
	}
}

// settle exchanges one packet each way and lets the keepalive timers run
// out, leaving both sides idle with a confirmed session.
func settle(t *testing.T, m *testMesh, clock *fakeClock, a, b string, srcA, srcB string) {
	t.Helper()
	p := tuntest.IPv4UDP(srcA, srcB, []byte("ping"))
	m.pass(a, b, p)
	r := tuntest.IPv4UDP(srcB, srcA, []byte("pong"))
	m.pass(b, a, r)
	// Both received data: each sends a keepalive after KeepaliveTimeout.
	clock.Advance(noise.KeepaliveTimeout + time.Second)
	pa, pb := m.nodes[a].dev.peerByName(b), m.nodes[b].dev.peerByName(a)
	idle := func() bool {
		return !pa.timers.newHandshake.isPending() && !pb.timers.newHandshake.isPending() &&
			!pa.timers.sendKeepalive.isPending() && !pb.timers.sendKeepalive.isPending()
	}
	deadline := time.Now().Add(20 * time.Second)
	for !idle() {
		if time.Now().After(deadline) {
			t.Fatalf("timers not idle: %s newHandshake=%v sendKeepalive=%v; %s newHandshake=%v sendKeepalive=%v",
				a, pa.timers.newHandshake.isPending(), pa.timers.sendKeepalive.isPending(),
				b, pb.timers.newHandshake.isPending(), pb.timers.sendKeepalive.isPending())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRekeyAfterTime(t *testing.T) {
	clock := startClock()
	m := threeNodes(t, clock)
	var w wireCounter
	m.net.SetFilter(w.filter)
	settle(t, m, clock, "alpha", "beta", "10.10.0.1", "10.10.0.2")
	pa := m.nodes["alpha"].dev.peerByName("beta")
	old := pa.current.Load()
	inits := w.count(m.nodes["alpha"].addr, noise.MessageInitiationType)
	// Young session: sending does not rekey.
	p := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("young"))
	m.pass("alpha", "beta", p)
	if pa.current.Load() != old || w.count(m.nodes["alpha"].addr, noise.MessageInitiationType) != inits {
		t.Fatal("rekeyed a young session")
	}
	// Let beta's keepalive answer that packet before time jumps, or
	// alpha's newHandshake timer would (rightly) fire first.
	clock.Advance(noise.KeepaliveTimeout + time.Second)
	waitFor(t, "keepalive answered", func() bool { return !pa.timers.newHandshake.isPending() })
	clock.Advance(noise.RekeyAfterTime)
	p = tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("old"))
	m.pass("alpha", "beta", p) // still sent on the old session...
	waitFor(t, "new session", func() bool { return pa.current.Load() != old && pa.current.Load() != nil })
	if got := w.count(m.nodes["alpha"].addr, noise.MessageInitiationType); got != inits+1 {
		t.Fatalf("%d initiations for one rekey", got-inits)
	}
	p = tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("new"))
	m.pass("alpha", "beta", p)
}

func TestRejectAfterTimeThenZeroKeyMaterial(t *testing.T) {
	clock := startClock()
	m := threeNodes(t, clock)
	var w wireCounter
	m.net.SetFilter(w.filter)
	settle(t, m, clock, "alpha", "beta", "10.10.0.1", "10.10.0.2")
	pa := m.nodes["alpha"].dev.peerByName("beta")
	pb := m.nodes["beta"].dev.peerByName("alpha")
	kp := pa.current.Load()
	if kp == nil {
		t.Fatal("no session")
	}
	// After RejectAfterTime the session may not carry data.
	clock.Advance(noise.RejectAfterTime)
	if usable(kp, clock.Now()) {
		t.Fatal("session usable after RejectAfterTime")
	}
	if peerStatus(m.nodes["alpha"].dev, "beta").Session {
		t.Fatal("status shows a session after RejectAfterTime")
	}
	// After 3×RejectAfterTime with no new handshake, everything is wiped.
	clock.Advance(2 * noise.RejectAfterTime)
	for _, p := range []*Peer{pa, pb} {
		p.mu.Lock()
		empty := p.keypairs.current == nil && p.keypairs.previous == nil && p.keypairs.next == nil
		p.mu.Unlock()
		if !empty || p.current.Load() != nil {
			t.Fatalf("%s still holds sessions after 3×RejectAfterTime", p.Name())
		}
	}
	if _, ok := m.nodes["alpha"].dev.index.lookup(kp.LocalIndex); ok {
		t.Fatal("wiped session still in the index table")
	}
	// Traffic still works: a fresh handshake.
	p := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("after wipe"))
	m.pass("alpha", "beta", p)
}

func TestPersistentKeepalive(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}, keepalive: 25 * time.Second},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha := m.nodes["alpha"]
	// The keepalive at start opened a session without any traffic.
	waitFor(t, "session at start", func() bool { return alpha.dev.peerByName("beta").current.Load() != nil })
	waitFor(t, "first keepalive", func() bool { return w.count(alpha.addr, keepaliveKind) >= 1 })
	base := w.count(alpha.addr, keepaliveKind)
	for i := 1; i <= 3; i++ {
		clock.Advance(25 * time.Second)
		waitFor(t, "periodic keepalive", func() bool { return w.count(alpha.addr, keepaliveKind) == base+i })
	}
}

func TestCookieUnderLoad(t *testing.T) {
	clock := startClock()
	m := threeNodes(t, clock)
	var w wireCounter
	m.net.SetFilter(w.filter)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	// alpha is under load: it answers beta's first initiation with a
	// cookie, and accepts the retry that carries mac2.
	alpha.dev.underLoad.Store(clock.Now().Add(time.Hour).UnixNano())
	p := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("knock knock"))
	beta.tun.Inject(p)
	waitFor(t, "cookie reply", func() bool { return w.count(alpha.addr, noise.MessageCookieReplyType) == 1 })
	if w.count(alpha.addr, noise.MessageResponseType) != 0 {
		t.Fatal("alpha answered an initiation without mac2 under load")
	}
	// The retry carries mac2 once beta has taken the cookie in; a retry
	// racing ahead of that gets another cookie, so allow a few.
	if !m.arrivesAfterRetries(clock, "alpha", p, nil) {
		t.Fatalf("no session after 5 retries under load; cookie replies: %d", w.count(alpha.addr, noise.MessageCookieReplyType))
	}
}

// arrivesAfterRetries moves the clock on one handshake retransmission at a
// time, calling between (if set) before each, until pkt arrives on n's TUN;
// it reports false after five retries.
func (m *testMesh) arrivesAfterRetries(clock *fakeClock, n string, pkt []byte, between func()) bool {
	m.t.Helper()
	for range 5 {
		if between != nil {
			between()
		}
		clock.Advance(noise.RekeyTimeout + 400*time.Millisecond)
		select {
		case got := <-m.nodes[n].tun.Written():
			if string(got) != string(pkt) {
				m.t.Fatalf("%s received %x", n, got)
			}
			return true
		case <-time.After(300 * time.Millisecond):
		}
	}
	return false
}

// sealWith seals a data packet from beta to alpha under kp, as beta's
// send path would.
func sealWith(t *testing.T, kp *noise.Keypair) []byte {
	t.Helper()
	pkt := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("late"))
	buf := make([]byte, bufSize)
	copy(buf[noise.MessageTransportHeaderSize:], pkt)
	ctr, ok := kp.NextCounter()
	if !ok {
		t.Fatal("no counter")
	}
	plen := noise.PaddedSize(len(pkt), 1420)
	n := kp.Seal(buf, buf[noise.MessageTransportHeaderSize:noise.MessageTransportHeaderSize+plen], ctr)
	if n == 0 {
		t.Fatal("seal failed")
	}
	return buf[:n]
}

func handshakeSent(p *Peer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.lastHandshakeSent.IsZero()
}

// TestRekeyOnReceiveLooksAtCurrentSession: near RejectAfterTime the
// initiator of the current session rekeys when it hears from the peer
// (wireguard-go's keepKeyFreshReceiving). What counts is the age of the
// current session, not of the one the packet came on: a late packet on
// the previous session must not start a handshake.
func TestRekeyOnReceiveLooksAtCurrentSession(t *testing.T) {
	const near = noise.RejectAfterTime - noise.KeepaliveTimeout - noise.RekeyTimeout + 5*time.Second
	for _, tc := range []struct {
		name      string
		fresh     bool // a young session replaced the old one before the packet arrived
		wantRekey bool
	}{
		{"packet on the old current session", false, true},
		{"late packet on the previous session", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, bd := benchDevices(t)
			pa, pb := a.peerByName("beta"), bd.peerByName("alpha")
			now := time.Now().Add(time.Second) // after benchDevices' handshake
			oldA, oldB := handshakeInto(t, a, pa, bd, pb, now)
			oldA.Created = now.Add(-near)
			msg := sealWith(t, oldB) // sealed before a new session retires it on beta's side
			if tc.fresh {
				handshakeInto(t, a, pa, bd, pb, now.Add(time.Second))
			}
			now = now.Add(2 * time.Second)
			if _, _, ok := a.decrypt(msg, netip.MustParseAddrPort("192.0.2.2:51820"), now); !ok {
				t.Fatal("packet refused")
			}
			if got := handshakeSent(pa); got != tc.wantRekey {
				t.Fatalf("handshake started: %v, want %v", got, tc.wantRekey)
			}
		})
	}
}

// TestRekeyOnSend: RekeyAfterMessages applies to whichever side sends
// (wireguard-go's keepKeyFreshSending), RekeyAfterTime only to the
// initiator.
func TestRekeyOnSend(t *testing.T) {
	defer func(n uint64) { rekeyAfterMessages = n }(rekeyAfterMessages)
	rekeyAfterMessages = 3
	pkt := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("x"))
	buf := make([]byte, bufSize)
	for _, tc := range []struct {
		name      string
		age       time.Duration
		sends     int
		wantRekey bool
	}{
		{"responder, few messages", 0, 3, false},
		{"responder, past RekeyAfterMessages", 0, 4, true},
		{"responder, past RekeyAfterTime", noise.RekeyAfterTime + time.Second, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, bd := benchDevices(t)
			pb := bd.peerByName("alpha") // the responder of its session
			now := pb.current.Load().Created.Add(tc.age)
			for i := 0; i < tc.sends; i++ {
				copy(buf[noise.MessageTransportHeaderSize:], pkt)
				if _, ok := pb.encrypt(buf, len(pkt), now); !ok {
					t.Fatal("encrypt failed")
				}
			}
			if got := handshakeSent(pb); got != tc.wantRekey {
				t.Fatalf("handshake started: %v, want %v", got, tc.wantRekey)
			}
		})
	}
}

// isPending reports whether the timer is armed; only tests ask.
func (t *peerTimer) isPending() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pending
}
