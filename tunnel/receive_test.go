package tunnel

import (
	"encoding/binary"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/udp"
)

// TestHandshakeQueue: whoever sends, queuing a handshake message costs no
// allocation, the queue is bounded, and a datagram of the wrong size for
// its type never reaches it.
func TestHandshakeQueue(t *testing.T) {
	a, _ := benchDevices(t) // not running: nothing drains the queue
	src := netip.MustParseAddrPort("198.51.100.7:9")
	now := time.Now()
	msg := func(typ uint32, n int) []byte {
		b := make([]byte, bufSize)
		b[0] = byte(typ)
		return b[:n]
	}
	for _, tc := range []struct {
		typ uint32
		n   int
	}{
		{noise.MessageInitiationType, noise.MessageInitiationSize + 1},
		{noise.MessageInitiationType, 1400},
		{noise.MessageInitiationType, noise.MessageResponseSize},
		{noise.MessageResponseType, noise.MessageResponseSize - 1},
		{noise.MessageCookieReplyType, noise.MessageInitiationSize},
	} {
		before := a.drops[DropMalformed].Load()
		a.queueHandshake(tc.typ, msg(tc.typ, tc.n), src, nil, now)
		if len(a.handshakes) != 0 || a.drops[DropMalformed].Load() != before+1 {
			t.Fatalf("type %d of %d bytes: queued %d, malformed drops %d", tc.typ, tc.n, len(a.handshakes), a.drops[DropMalformed].Load()-before)
		}
	}
	init := msg(noise.MessageInitiationType, noise.MessageInitiationSize)
	if allocs := testing.AllocsPerRun(1000, func() {
		a.queueHandshake(noise.MessageInitiationType, init, src, nil, now)
		<-a.handshakes
	}); allocs != 0 {
		t.Fatalf("queuing a handshake message: %v allocations", allocs)
	}
	for i := 0; i < handshakeQueueLen+10; i++ {
		a.queueHandshake(noise.MessageInitiationType, init, src, nil, now)
	}
	if n, full := len(a.handshakes), a.drops[DropHandshakeQueue].Load(); n != handshakeQueueLen || full != 10 {
		t.Fatalf("queue holds %d, %d dropped as full; want %d and 10", n, full, handshakeQueueLen)
	}
}

// recordingTap counts the datagrams the tap is shown as received, by
// source and message type.
type recordingTap struct {
	mu      sync.Mutex
	inbound map[netip.AddrPort]map[uint32]int
	outTo   map[netip.AddrPort]int // outbound datagrams by destination
}

func (r *recordingTap) Inner(time.Time, Direction, string, []byte) {}
func (r *recordingTap) EphemeralKey(string, keys.Public, keys.Preshared, keys.Private) {
}

func (r *recordingTap) Outer(_ time.Time, dir Direction, src, dst netip.AddrPort, b []byte) {
	typ, _ := noise.Type(b)
	r.mu.Lock()
	defer r.mu.Unlock()
	if dir == Outbound {
		if r.outTo == nil {
			r.outTo = map[netip.AddrPort]int{}
		}
		r.outTo[dst]++
		return
	}
	if r.inbound == nil {
		r.inbound = map[netip.AddrPort]map[uint32]int{}
	}
	if r.inbound[src] == nil {
		r.inbound[src] = map[uint32]int{}
	}
	r.inbound[src][typ]++
}

func (r *recordingTap) count(src netip.AddrPort, typ uint32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inbound[src][typ]
}

func (r *recordingTap) from(src netip.AddrPort) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.inbound[src] {
		n += c
	}
	return n
}

// TestTapSeesOnlyMembers: a received datagram reaches the tap only once it
// is known to come from a member (authenticated transport, handshake past
// mac1, a cookie reply that decrypted); garbage, forgeries and replays from
// anyone else never do.
func TestTapSeesOnlyMembers(t *testing.T) {
	tap := &recordingTap{}
	m := newMesh(t, nil,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}, tap: tap},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	var mu sync.Mutex
	var transport []byte // a data message from beta, to replay
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		if typ, _ := noise.Type(b); src == beta.addr && typ == noise.MessageTransportType && len(b) > noise.MessageKeepaliveSize {
			mu.Lock()
			transport = append([]byte(nil), b...)
			mu.Unlock()
		}
		return true
	})
	m.pass("alpha", "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("hello")))
	m.pass("beta", "alpha", tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("hello back")))
	// Authenticated datagrams are still shown: beta's response and data.
	waitFor(t, "beta's datagrams tapped", func() bool {
		return tap.count(beta.addr, noise.MessageResponseType) == 1 && tap.count(beta.addr, noise.MessageTransportType) >= 1
	})

	strangerAddr := netip.MustParseAddrPort("192.0.2.99:5555")
	stranger, err := m.net.Listen(strangerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	send := func(b []byte) {
		t.Helper()
		if _, err := stranger.WriteBatch([]udp.Message{{Buf: b, N: len(b), Addr: alpha.addr}}); err != nil {
			t.Fatal(err)
		}
	}
	typed := func(typ uint32, n int) []byte {
		b := make([]byte, n)
		b[0] = byte(typ)
		for i := 4; i < n; i++ {
			b[i] = byte(i * 7)
		}
		return b
	}
	kp := alpha.dev.peerByName("beta").current.Load()
	withIndex := func(b []byte, idx uint32) []byte {
		binary.LittleEndian.PutUint32(b[4:], idx)
		return b
	}
	mu.Lock()
	replay := transport
	mu.Unlock()
	forged := append([]byte(nil), replay...)
	forged[len(forged)-1] ^= 1
	send([]byte{1, 2, 3})                                                                             // malformed
	send(typed(9, 100))                                                                               // malformed
	send(typed(noise.MessageInitiationType, 400))                                                     // malformed
	send(typed(noise.MessageInitiationType, noise.MessageInitiationSize))                             // bad_mac
	send(typed(noise.MessageCookieReplyType, noise.MessageCookieReplySize))                           // unknown_index
	send(withIndex(typed(noise.MessageCookieReplyType, noise.MessageCookieReplySize), kp.LocalIndex)) // bad_handshake
	send(typed(noise.MessageTransportType, 200))                                                      // unknown_index
	send(forged)                                                                                      // decrypt
	send(replay)                                                                                      // replay
	send(strangerInitiation(t, alpha.priv.Public()))                                                  // bad_handshake: mac1 is no credential
	waitFor(t, "every forgery dropped", func() bool {
		st := alpha.dev.Status()
		pb := peerStatus(alpha.dev, "beta")
		return st.Drops["malformed"] == 3 && st.Drops["bad_mac"] == 1 && st.Drops["unknown_index"] == 2 &&
			st.Drops["bad_handshake"] == 2 && pb.Drops["decrypt"] == 1 && pb.Drops["replay"] == 1
	})
	if n := tap.from(strangerAddr); n != 0 {
		t.Fatalf("the tap saw %d datagrams from a stranger", n)
	}

	// Under load, a stranger's initiation earns a cookie reply, which the
	// capture does not see either: a flood must not reach it through our
	// answers.
	alpha.dev.underLoad.Store(time.Now().Add(time.Hour).UnixNano())
	send(strangerInitiation(t, alpha.priv.Public()))
	got := make(chan uint32, 1)
	go func() {
		msgs := []udp.Message{{Buf: make([]byte, 2048)}}
		if n, err := stranger.ReadBatch(msgs); err == nil && n == 1 {
			typ, _ := noise.Type(msgs[0].Buf[:msgs[0].N])
			got <- typ
		}
	}()
	select {
	case typ := <-got:
		if typ != noise.MessageCookieReplyType {
			t.Fatalf("the stranger got a message of type %d, want a cookie reply", typ)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no cookie reply to the stranger under load")
	}
	tap.mu.Lock()
	out := tap.outTo[strangerAddr]
	tap.mu.Unlock()
	if n := tap.from(strangerAddr); n != 0 || out != 0 {
		t.Fatalf("under load the tap saw %d datagrams from the stranger and %d to it", n, out)
	}
}

// strangerInitiation is a well-formed initiation to the node with public
// key to, from a key in no mesh, with a valid mac1: anyone who knows a
// node's public key (it is in the mesh file) can make one.
func strangerInitiation(t *testing.T, to keys.Public) []byte {
	t.Helper()
	k, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	hs, err := noise.NewHandshake(noise.NewLocal(k), to, keys.Preshared{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := hs.CreateInitiation(time.Now(), 7)
	if err != nil {
		t.Fatal(err)
	}
	b := msg.Marshal(nil)
	noise.NewCookieGenerator(to).AddMACs(b, time.Now())
	return b
}

// decrypt is session, Open and received for one message, off the batch
// path, for benchmarks and tests: the inner packet is decrypted in place at
// msg[16:].
func (d *Device) decrypt(msg []byte, src netip.AddrPort, now time.Time) (*Peer, []byte, bool) {
	const off = noise.MessageTransportHeaderSize
	p, kp, ok := d.session(msg, src, now)
	if !ok {
		return nil, nil, false
	}
	m := opened{kp: kp, src: src, size: len(msg)}
	var err error
	m.pkt, m.ctr, err = kp.Open(msg[off:off], msg)
	if err != nil {
		p.drop(DropDecrypt)
		return p, nil, false
	}
	pkt, _, ok := p.received(m, now)
	return p, pkt, ok
}
