package tunnel

import (
	"bytes"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/udp"
)

// TestResponderWaitsForConfirmation: the responder has data to send before
// the initiator's confirming packet arrives. It must wait for that packet
// (it answered a handshake less than RekeyTimeout ago) rather than start a
// handshake of its own: one handshake per session setup.
func TestResponderWaitsForConfirmation(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	var w wireCounter
	// Hold back alpha's first transport message (its staged data, which
	// confirms the session to beta).
	var mu sync.Mutex
	var held []byte
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		w.filter(src, dst, b)
		if typ, _ := noise.Type(b); src == alpha.addr && typ == noise.MessageTransportType {
			mu.Lock()
			defer mu.Unlock()
			if held == nil {
				held = append([]byte(nil), b...)
				return false
			}
		}
		return true
	})
	first := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("first"))
	alpha.tun.Inject(first)
	waitFor(t, "confirmation held back", func() bool { mu.Lock(); defer mu.Unlock(); return held != nil })
	// beta has a session it may not use yet: its data is staged.
	reply := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("reply"))
	beta.tun.Inject(reply)
	pb := beta.dev.peerByName("alpha")
	waitFor(t, "beta's data staged", func() bool {
		return pb.hasStaged() || w.count(beta.addr, noise.MessageInitiationType) > 0
	})
	// The confirmation arrives: the staged data goes, then a second packet
	// (read after the first, so the first's handling is over).
	m.net.Deliver(alpha.addr, beta.addr, held)
	m.expectPacket("beta", first)
	m.expectPacket("alpha", reply)
	second := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("second"))
	m.pass("beta", "alpha", second)
	if n := w.count(beta.addr, noise.MessageInitiationType); n != 0 {
		t.Fatalf("beta sent %d initiations while its session awaited confirmation", n)
	}
	if n := w.count(alpha.addr, noise.MessageInitiationType); n != 1 {
		t.Fatalf("alpha sent %d initiations, want 1", n)
	}
	// Nothing is pending that would start another handshake later.
	clock.Advance(noise.RekeyTimeout + time.Second)
	if n := w.count(beta.addr, noise.MessageInitiationType) + w.count(alpha.addr, noise.MessageInitiationType); n != 1 {
		t.Fatalf("%d initiations after RekeyTimeout, want 1", n)
	}
}

// TestConcurrentInitiationsAgree: the retransmit timer, the TUN path and
// the receive path may all start a handshake at once. Whatever the
// interleaving, the index table must name the handshake in flight, and
// the peer's response to it must complete.
func TestConcurrentInitiationsAgree(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	pa := alpha.dev.peerByName("beta")
	var mu sync.Mutex
	inits := map[uint32][]byte{} // alpha's initiations by sender index
	var open bool
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		if typ, _ := noise.Type(b); src == alpha.addr && typ == noise.MessageInitiationType {
			inits[senderIndex(b)] = append([]byte(nil), b...)
		}
		return open
	})
	const rounds, callers = 200, 4
	for r := 0; r < rounds; r++ {
		clock.Advance(noise.RekeyTimeout)
		var start, done sync.WaitGroup
		start.Add(1)
		for g := 0; g < callers; g++ {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				// The RekeyTimeout spacing lets only one of them through;
				// forget it, so that the handshake steps really overlap.
				pa.mu.Lock()
				pa.lastHandshakeSent = time.Time{}
				pa.mu.Unlock()
				pa.initiateHandshake(g%2 == 0)
			}()
		}
		start.Done()
		done.Wait()
		idx := inFlightIndex(pa)
		e, ok := alpha.dev.index.lookup(idx)
		if idx == 0 || !ok || e.peer != pa || e.keypair != nil {
			t.Fatalf("round %d: handshake in flight has index %d, not in the index table (found %v)", r, idx, ok)
		}
		alpha.dev.index.mu.RLock()
		n := len(alpha.dev.index.m)
		alpha.dev.index.mu.RUnlock()
		if n != 1 {
			t.Fatalf("round %d: %d index entries, want only the handshake in flight", r, n)
		}
	}
	// beta answers the initiation in flight; alpha completes the session.
	idx := inFlightIndex(pa)
	mu.Lock()
	b := inits[idx]
	open = true
	mu.Unlock()
	if b == nil {
		t.Fatalf("initiation with sender %d never sent", idx)
	}
	m.net.Deliver(alpha.addr, beta.addr, b)
	waitFor(t, "session from the last initiation", func() bool {
		kp := pa.current.Load()
		return kp != nil && kp.LocalIndex == idx
	})
}

// TestRetryDoesNotDoubleAnInitiation: a retransmission due just as the
// TUN path started a handshake must not send a second initiation at
// once: the peer would refuse one of the two as a flood or a replay, and
// if it kept the older, neither completes until the next retry.
func TestRetryDoesNotDoubleAnInitiation(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	var w wireCounter
	w.block.Store(true)
	m.net.SetFilter(w.filter)
	alpha := m.nodes["alpha"]
	pa := alpha.dev.peerByName("beta")
	pa.initiateHandshake(false)
	pa.initiateHandshake(true)
	if n := w.count(alpha.addr, noise.MessageInitiationType); n != 1 {
		t.Fatalf("%d initiations at once, want 1", n)
	}
	// The retransmission is not lost: it goes RekeyTimeout later, and the
	// handshake completes once the network lets it through.
	w.block.Store(false)
	clock.Advance(noise.RekeyTimeout + 400*time.Millisecond)
	if n := w.count(alpha.addr, noise.MessageInitiationType); n != 2 {
		t.Fatalf("%d initiations after RekeyTimeout, want 2", n)
	}
	waitFor(t, "session", func() bool { return pa.current.Load() != nil })
}

// TestHandshakeRateLimitUnderLoad: under load, a source that holds a valid
// cookie and floods initiations gets only a few of them processed (each
// costs Curve25519 work), while a member's handshake from another address
// still completes.
func TestHandshakeRateLimitUnderLoad(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	alpha.dev.underLoad.Store(clock.Now().Add(time.Hour).UnixNano())

	// The attacker: any key (membership is checked only after the
	// Curve25519 work), a real address that receives the cookie.
	attackerAddr := netip.MustParseAddrPort("198.51.100.66:4444")
	attacker, err := m.net.Listen(attackerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	priv, _ := keys.NewPrivate()
	hs, err := noise.NewHandshake(noise.NewLocal(priv), alpha.priv.Public(), keys.Preshared{})
	if err != nil {
		t.Fatal(err)
	}
	gen := noise.NewCookieGenerator(alpha.priv.Public())
	init, err := hs.CreateInitiation(clock.Now(), 42)
	if err != nil {
		t.Fatal(err)
	}
	flood := init.Marshal(nil)
	send := func(n int) {
		t.Helper()
		msgs := make([]udp.Message, n)
		for i := range msgs {
			msgs[i] = udp.Message{Buf: flood, N: len(flood), Addr: alpha.addr}
		}
		if _, err := attacker.WriteBatch(msgs); err != nil {
			t.Fatal(err)
		}
	}
	gen.AddMACs(flood, clock.Now())
	send(1)
	got := []udp.Message{{Buf: make([]byte, 2048)}}
	if _, err := attacker.ReadBatch(got); err != nil {
		t.Fatal(err)
	}
	var reply noise.CookieReply
	if err := reply.Unmarshal(got[0].Buf[:got[0].N]); err != nil {
		t.Fatalf("no cookie reply: %v", err)
	}
	if err := gen.ConsumeReply(&reply, clock.Now()); err != nil {
		t.Fatal(err)
	}
	gen.AddMACs(flood, clock.Now()) // now with mac2

	// 200 initiations, in chunks the in-memory socket queue holds.
	const total = 200
	limited := func() uint64 { return alpha.dev.Status().Drops["handshake_rate_limited"] }
	processed := func() uint64 { return alpha.dev.Status().Drops["bad_handshake"] } // the attacker's key is unknown
	for sent := 0; sent < total; sent += 50 {
		send(50)
		waitFor(t, "flood processed", func() bool { return limited()+processed() == uint64(sent+50) })
	}
	// wireguard-go's limiter: a burst of 5, then 20 a second of wall time.
	if limited() < total/2 {
		t.Fatalf("only %d of %d flooded initiations rate-limited (%d processed)", limited(), total, processed())
	}

	t.Logf("flood: %d rate-limited, %d processed", limited(), processed())
	// beta, a member, gets through: a cookie first, then its retry with
	// mac2 is processed while the attacker keeps on.
	p := tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("still there"))
	beta.tun.Inject(p)
	if !m.arrivesAfterRetries(clock, "alpha", p, func() { send(20) }) {
		t.Fatal("beta's handshake did not complete under the flood after 5 retries")
	}
}

// TestCloseStopsRateLimiter: the limiter's collector goroutine (it runs on
// the wall clock) ends with the device.
func TestCloseStopsRateLimiter(t *testing.T) {
	limiterRunning := func() bool {
		buf := make([]byte, 1<<20)
		return bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("wireguard/ratelimiter."))
	}
	// Devices of earlier tests are closed, their collectors on the way out.
	waitFor(t, "no limiter from earlier tests", func() bool { return !limiterRunning() })
	m := newMesh(t, nil, nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}})
	waitFor(t, "limiter started", limiterRunning)
	n := m.nodes["alpha"]
	n.dev.Close()
	if err := <-n.done; err != nil {
		t.Fatal(err)
	}
	n.done <- nil // for the mesh's cleanup
	waitFor(t, "limiter stopped", func() bool { return !limiterRunning() })
}

// TestHandshakeCountsAndSession: each side counts its handshake by the
// role it played; the responder has a session only once the initiator's
// first packet confirms it; a replayed initiation counts as failed.
func TestHandshakeCountsAndSession(t *testing.T) {
	clock := startClock()
	m := newMesh(t, clock,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	var mu sync.Mutex
	var initiation, held []byte
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		mu.Lock()
		defer mu.Unlock()
		typ, _ := noise.Type(b)
		switch {
		case src == alpha.addr && typ == noise.MessageInitiationType && initiation == nil:
			initiation = append([]byte(nil), b...)
		case src == alpha.addr && typ == noise.MessageTransportType && held == nil:
			held = append([]byte(nil), b...)
			return false
		}
		return true
	})
	if s := peerStatus(alpha.dev, "beta"); s.Session || s.Handshakes != (HandshakeCounts{}) {
		t.Fatalf("before any traffic: %+v", s)
	}
	first := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("first"))
	alpha.tun.Inject(first)
	waitFor(t, "confirmation held back", func() bool { mu.Lock(); defer mu.Unlock(); return held != nil })
	if s := peerStatus(alpha.dev, "beta"); !s.Session || s.Handshakes != (HandshakeCounts{CompletedInitiator: 1}) {
		t.Fatalf("alpha, initiator: session %v, handshakes %+v", s.Session, s.Handshakes)
	}
	if s := peerStatus(beta.dev, "alpha"); s.Session || s.Handshakes != (HandshakeCounts{CompletedResponder: 1}) {
		t.Fatalf("beta, responder before confirmation: session %v, handshakes %+v", s.Session, s.Handshakes)
	}
	m.net.Deliver(alpha.addr, beta.addr, held)
	m.expectPacket("beta", first)
	if s := peerStatus(beta.dev, "alpha"); !s.Session {
		t.Fatal("beta: no session after alpha's confirming packet")
	}
	mu.Lock()
	replay := initiation
	mu.Unlock()
	m.net.Deliver(alpha.addr, beta.addr, replay)
	waitFor(t, "replayed initiation counted", func() bool {
		return peerStatus(beta.dev, "alpha").Handshakes.Failed == 1
	})
	if s := peerStatus(beta.dev, "alpha"); !s.Session || s.Handshakes.CompletedResponder != 1 {
		t.Fatalf("beta after the replay: session %v, handshakes %+v", s.Session, s.Handshakes)
	}
}

// inFlightIndex is the index of p's initiation in flight, 0 if none.
func inFlightIndex(p *Peer) uint32 {
	p.hsMu.Lock()
	defer p.hsMu.Unlock()
	return p.handshakeIndex
}
