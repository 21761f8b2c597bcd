package tunnel

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/udp"
	"github.com/peer-vpn/peer/udp/udptest"
)

// Benchmarks of the hot path; run with
//
//	go test -run '^$' -bench . -benchmem ./tunnel
//
// Every one must report 0 allocs/op in the steady state.
//
// The devices that are not running use the shared fakes (tuntest.Memory,
// udptest.Network): nothing reads or writes them. BenchmarkDataPath runs
// its devices, and the shared fakes copy every packet (an allocation each),
// so it has its own allocation-free ones below: sourceTUN, sinkTUN and
// pipeConn.

func benchPacket() []byte {
	return tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", make([]byte, 1420-28))
}

// BenchmarkEncrypt measures route lookup + padding + Seal of a 1420-byte
// packet, in place, as the TUN reader does.
func BenchmarkEncrypt(b *testing.B) {
	a, _ := benchDevices(b)
	pkt := benchPacket()
	buf := make([]byte, bufSize)
	now := time.Now()
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		copy(buf[noise.MessageTransportHeaderSize:], pkt)
		p, _ := a.route(pkt)
		if _, ok := p.encrypt(buf, len(pkt), now); !ok {
			b.Fatal("encrypt failed")
		}
	}
}

// BenchmarkDecrypt measures index lookup + Open + replay check + source
// check of a 1420-byte packet, in place, as the UDP reader does. Each
// iteration needs a fresh counter, so the messages are sealed beforehand in
// chunks outside the timer.
func BenchmarkDecrypt(b *testing.B) {
	a, bd := benchDevices(b)
	pkt := benchPacket()
	pa := a.peerByName("beta")
	src := netip.MustParseAddrPort("192.0.2.1:51820")
	const chunk = 1024
	msgs := make([][]byte, chunk)
	lens := make([]int, chunk)
	for i := range msgs {
		msgs[i] = make([]byte, bufSize)
	}
	now := time.Now()
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		b.StopTimer()
		n := min(chunk, b.N-done)
		for i := 0; i < n; i++ {
			copy(msgs[i][noise.MessageTransportHeaderSize:], pkt)
			m, ok := pa.encrypt(msgs[i], len(pkt), now)
			if !ok {
				b.Fatal("encrypt failed")
			}
			lens[i] = m
		}
		b.StartTimer()
		for i := 0; i < n; i++ {
			if _, _, ok := bd.decrypt(msgs[i][:lens[i]], src, now); !ok {
				b.Fatal("decrypt failed")
			}
		}
	}
}

// BenchmarkRouteLookup measures the longest-prefix match of a destination
// among 10,000 prefixes.
func BenchmarkRouteLookup(b *testing.B) {
	priv, _ := keys.NewPrivate()
	var peers []PeerConfig
	for i := 0; i < 1000; i++ {
		k, _ := keys.NewPrivate()
		var pfx []netip.Prefix
		for j := 0; j < 10; j++ {
			pfx = append(pfx, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 4), byte(i&15<<4 | j), 0}), 24))
		}
		peers = append(peers, PeerConfig{Name: fmt.Sprintf("p%d", i), PublicKey: k.Public(), Prefixes: pfx})
	}
	net := udptest.NewNetwork()
	c, _ := net.Listen(netip.MustParseAddrPort("192.0.2.1:1"))
	d, err := New(Config{Private: priv, Peers: peers, TUN: tuntest.NewMemory("bench", 1420, 64), Conn: c})
	if err != nil {
		b.Fatal(err)
	}
	pkt := tuntest.IPv4UDP("10.10.0.1", "10.33.41.7", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if p, _ := d.route(pkt); p == nil {
			b.Fatal("no route")
		}
	}
}

// benchDevices returns two devices with an established session, not
// running (their loops are not started), so the benchmark drives the
// functions directly.
func benchDevices(b testing.TB) (*Device, *Device) {
	b.Helper()
	ka, _ := keys.NewPrivate()
	kb, _ := keys.NewPrivate()
	net := udptest.NewNetwork()
	ca, _ := net.Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	cb, _ := net.Listen(netip.MustParseAddrPort("192.0.2.2:51820"))
	a, err := New(Config{Private: ka, TUN: tuntest.NewMemory("alpha", 1420, 64), Conn: ca, Peers: []PeerConfig{{Name: "beta", PublicKey: kb.Public(),
		Prefixes: mustPrefixes(b, []string{"10.10.0.2/32"}), Endpoint: netip.MustParseAddrPort("192.0.2.2:51820")}}})
	if err != nil {
		b.Fatal(err)
	}
	bd, err := New(Config{Private: kb, TUN: tuntest.NewMemory("beta", 1420, 64), Conn: cb, Peers: []PeerConfig{{Name: "alpha", PublicKey: ka.Public(),
		Prefixes: mustPrefixes(b, []string{"10.10.0.1/32"}), Endpoint: netip.MustParseAddrPort("192.0.2.1:51820")}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { a.Close(); bd.Close() })
	// Handshake by hand: alpha initiates, beta answers.
	pa, pb := a.peerByName("beta"), bd.peerByName("alpha")
	now := time.Now()
	init, err := pa.handshake.CreateInitiation(now, 1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := bd.local.ConsumeInitiation(init, now, func(keys.Public) *noise.Handshake { return pb.handshake }); err != nil {
		b.Fatal(err)
	}
	resp, err := pb.handshake.CreateResponse(2)
	if err != nil {
		b.Fatal(err)
	}
	kpb, err := pb.handshake.BeginSession(now)
	if err != nil {
		b.Fatal(err)
	}
	if err := pa.handshake.ConsumeResponse(resp); err != nil {
		b.Fatal(err)
	}
	kpa, err := pa.handshake.BeginSession(now)
	if err != nil {
		b.Fatal(err)
	}
	a.index.setKeypair(kpa.LocalIndex, pa, kpa)
	pa.installKeypair(kpa)
	bd.index.setKeypair(kpb.LocalIndex, pb, kpb)
	pb.installKeypair(kpb)
	pb.receivedWith(kpb) // confirm beta's side as the first data would
	return a, bd
}

// BenchmarkDataPath pushes 1420-byte packets through two running devices
// wired by an allocation-free in-memory link: alpha's TUN reader, encrypt,
// the link, beta's UDP reader, decrypt, beta's TUN writer; without crypto
// helpers and with one per direction.
func BenchmarkDataPath(b *testing.B) {
	for _, helpers := range []int{-1, 1} {
		b.Run(fmt.Sprintf("helpers=%d", max(helpers, 0)), func(b *testing.B) { benchDataPath(b, helpers) })
	}
}

func benchDataPath(b *testing.B, helpers int) {
	ka, _ := keys.NewPrivate()
	kb, _ := keys.NewPrivate()
	la, lb := newPipeConns(netip.MustParseAddrPort("192.0.2.1:51820"), netip.MustParseAddrPort("192.0.2.2:51820"))
	pkt := benchPacket()
	src := newSourceTUN(1420, pkt)
	sink := newSinkTUN(1420)
	a, err := New(Config{Private: ka, TUN: src, Conn: la, CryptoWorkers: helpers, Peers: []PeerConfig{{Name: "beta", PublicKey: kb.Public(),
		Prefixes: mustPrefixes(b, []string{"10.10.0.2/32"}), Endpoint: lb.addr}}})
	if err != nil {
		b.Fatal(err)
	}
	bd, err := New(Config{Private: kb, TUN: sink, Conn: lb, CryptoWorkers: helpers, Peers: []PeerConfig{{Name: "alpha", PublicKey: ka.Public(),
		Prefixes: mustPrefixes(b, []string{"10.10.0.1/32"}), Endpoint: la.addr}}})
	if err != nil {
		b.Fatal(err)
	}
	go a.Run(context.Background())
	go bd.Run(context.Background())
	defer a.Close()
	defer bd.Close()
	// Warm up: the first packets wait for the handshake.
	src.release(64)
	sink.waitFor(b, 1)
	base := sink.count.Load()
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	src.release(int64(b.N))
	sink.waitFor(b, base+int64(b.N))
}

// sourceTUN hands out copies of one packet, as many as released.
type sourceTUN struct {
	mtu    int
	pkt    []byte
	mu     sync.Mutex
	cond   *sync.Cond
	budget int64
	closed bool
}

func newSourceTUN(mtu int, pkt []byte) *sourceTUN {
	s := &sourceTUN{mtu: mtu, pkt: pkt}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *sourceTUN) release(n int64) {
	s.mu.Lock()
	s.budget += n
	s.mu.Unlock()
	s.cond.Broadcast()
}

func (s *sourceTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	s.mu.Lock()
	for s.budget == 0 && !s.closed {
		s.cond.Wait()
	}
	if s.closed {
		s.mu.Unlock()
		return 0, errClosed
	}
	n := int(min(int64(len(bufs)), s.budget))
	s.budget -= int64(n)
	s.mu.Unlock()
	for i := 0; i < n; i++ {
		sizes[i] = copy(bufs[i][offset:], s.pkt)
	}
	return n, nil
}

func (s *sourceTUN) Write(bufs [][]byte, offset int) (int, error) { return len(bufs), nil }
func (s *sourceTUN) BatchSize() int                               { return 64 }
func (s *sourceTUN) MTU() int                                     { return s.mtu }
func (s *sourceTUN) Name() string                                 { return "source" }
func (s *sourceTUN) Driver() string                               { return "memory" }
func (s *sourceTUN) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cond.Broadcast()
	return nil
}

// sinkTUN counts what is written to it and never yields a packet.
type sinkTUN struct {
	mtu    int
	count  atomic.Int64
	closed chan struct{}
	once   sync.Once
}

func newSinkTUN(mtu int) *sinkTUN { return &sinkTUN{mtu: mtu, closed: make(chan struct{})} }

func (s *sinkTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	<-s.closed
	return 0, errClosed
}
func (s *sinkTUN) Write(bufs [][]byte, offset int) (int, error) {
	s.count.Add(int64(len(bufs)))
	return len(bufs), nil
}
func (s *sinkTUN) BatchSize() int { return 64 }
func (s *sinkTUN) MTU() int       { return s.mtu }
func (s *sinkTUN) Name() string   { return "sink" }
func (s *sinkTUN) Driver() string { return "memory" }
func (s *sinkTUN) Close() error   { s.once.Do(func() { close(s.closed) }); return nil }

func (s *sinkTUN) waitFor(b *testing.B, n int64) {
	deadline := time.Now().Add(60 * time.Second)
	for s.count.Load() < n {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d packets arrived", s.count.Load(), n)
		}
		time.Sleep(50 * time.Microsecond)
	}
}

var errClosed = net.ErrClosed

// pipeConn is one end of an allocation-free in-memory UDP link with a
// fixed pool of datagram slots; a full link makes the writer wait, so the
// benchmark measures throughput, not loss.
type pipeConn struct {
	addr   netip.AddrPort
	peer   *pipeConn
	in     chan *slot
	free   chan *slot
	closed chan struct{}
	once   sync.Once
}

type slot struct {
	buf  [2048]byte
	n    int
	from netip.AddrPort
}

func newPipeConns(a, b netip.AddrPort) (*pipeConn, *pipeConn) {
	const slots = 1024
	free := make(chan *slot, 2*slots)
	for i := 0; i < 2*slots; i++ {
		free <- new(slot)
	}
	ca := &pipeConn{addr: a, in: make(chan *slot, 2*slots), free: free, closed: make(chan struct{})}
	cb := &pipeConn{addr: b, in: make(chan *slot, 2*slots), free: free, closed: make(chan struct{})}
	ca.peer, cb.peer = cb, ca
	return ca, cb
}

func (c *pipeConn) ReadBatch(msgs []udp.Message) (int, error) {
	var s *slot
	select {
	case s = <-c.in:
	case <-c.closed:
		return 0, errClosed
	}
	n := 0
	for {
		msgs[n].N = copy(msgs[n].Buf, s.buf[:s.n])
		msgs[n].Addr = s.from
		c.free <- s
		n++
		if n == len(msgs) {
			return n, nil
		}
		select {
		case s = <-c.in:
		default:
			return n, nil
		}
	}
}

func (c *pipeConn) WriteBatch(msgs []udp.Message) (int, error) {
	for i, m := range msgs {
		var s *slot
		select {
		case s = <-c.free:
		case <-c.closed:
			return i, errClosed
		}
		s.n = copy(s.buf[:], m.Buf[:m.N])
		s.from = c.addr
		c.peer.in <- s
	}
	return len(msgs), nil
}

func (c *pipeConn) LocalPort() uint16 { return c.addr.Port() }
func (c *pipeConn) BatchSize() int    { return 64 }
func (c *pipeConn) Close() error      { c.once.Do(func() { close(c.closed) }); return nil }
