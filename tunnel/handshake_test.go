package tunnel

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peer-vpn/peer/noise"
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
	first := ipv4UDP("10.10.0.1", "10.10.0.2", []byte("first"))
	alpha.tun.Inject(first)
	waitFor(t, "confirmation held back", func() bool { mu.Lock(); defer mu.Unlock(); return held != nil })
	// beta has a session it may not use yet: its data is staged.
	reply := ipv4UDP("10.10.0.2", "10.10.0.1", []byte("reply"))
	beta.tun.Inject(reply)
	pb := beta.dev.PeerByName("alpha")
	waitFor(t, "beta's data staged", func() bool {
		return pb.hasStaged() || w.count(beta.addr, noise.MessageInitiationType) > 0
	})
	// The confirmation arrives: the staged data goes, then a second packet
	// (read after the first, so the first's handling is over).
	m.net.Deliver(alpha.addr, beta.addr, held)
	m.expectPacket("beta", first)
	m.expectPacket("alpha", reply)
	second := ipv4UDP("10.10.0.2", "10.10.0.1", []byte("second"))
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
	pa := alpha.dev.PeerByName("beta")
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
	const rounds, callers = 500, 6
	for r := 0; r < rounds; r++ {
		clock.Advance(noise.RekeyTimeout)
		var start, done sync.WaitGroup
		start.Add(1)
		for g := 0; g < callers; g++ {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				pa.initiateHandshake(g%2 == 0)
			}()
		}
		start.Done()
		done.Wait()
		idx := pa.handshake.LocalIndex()
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
	idx := pa.handshake.LocalIndex()
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
	pa := alpha.dev.PeerByName("beta")
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
