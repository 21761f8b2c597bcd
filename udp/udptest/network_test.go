package udptest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peer-vpn/peer/udp"
)

var (
	memA = netip.MustParseAddrPort("192.0.2.1:51820")
	memB = netip.MustParseAddrPort("[2001:db8::2]:51821")
	memC = netip.MustParseAddrPort("198.51.100.7:4000")
)

func memListen(t *testing.T, n *Network, addr netip.AddrPort) udp.Conn {
	t.Helper()
	c, err := n.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(t *testing.T, c udp.Conn, dst netip.AddrPort, payloads ...string) {
	t.Helper()
	msgs := make([]udp.Message, len(payloads))
	for i, p := range payloads {
		msgs[i] = udp.Message{Buf: []byte(p), N: len(p), Addr: dst}
	}
	if n, err := c.WriteBatch(msgs); err != nil || n != len(msgs) {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
}

// drain returns what is queued at c without blocking past the first
// datagram: it sends itself a marker and reads up to it.
func drain(t *testing.T, n *Network, c udp.Conn, self netip.AddrPort) []udp.Message {
	t.Helper()
	if !n.Deliver(netip.MustParseAddrPort("203.0.113.99:1"), self, []byte("END")) {
		t.Fatal("marker not queued")
	}
	var got []udp.Message
	msgs := newMsgs(batchSize, 100)
	for {
		k, err := c.ReadBatch(msgs)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs[:k] {
			if string(m.Buf[:m.N]) == "END" {
				return got
			}
			got = append(got, udp.Message{Buf: append([]byte(nil), m.Buf[:m.N]...), N: m.N, Addr: m.Addr})
		}
	}
}

func payloads(msgs []udp.Message) []string {
	var s []string
	for _, m := range msgs {
		s = append(s, string(m.Buf[:m.N]))
	}
	return s
}

func TestNetworkDelivery(t *testing.T) {
	n := NewNetwork()
	a, b := memListen(t, n, memA), memListen(t, n, memB)
	if a.LocalPort() != memA.Port() || b.BatchSize() < 1 {
		t.Fatalf("LocalPort %d, BatchSize %d", a.LocalPort(), b.BatchSize())
	}
	buf := []byte("hello")
	msgs := []udp.Message{{Buf: buf, N: 5, Addr: memB}, {Buf: []byte("world!"), N: 3, Addr: memB}}
	if k, err := a.WriteBatch(msgs); err != nil || k != 2 {
		t.Fatalf("WriteBatch = %d, %v", k, err)
	}
	buf[0] = 'J' // the sender's buffer is not aliased
	in := newMsgs(4, 100)
	k, err := b.ReadBatch(in)
	if err != nil || k != 2 {
		t.Fatalf("ReadBatch = %d, %v", k, err)
	}
	if got := payloads(in[:k]); fmt.Sprint(got) != "[hello wor]" {
		t.Fatalf("payloads %q", got)
	}
	for _, m := range in[:k] {
		if m.Addr != memA {
			t.Fatalf("from %v, want %v", m.Addr, memA)
		}
	}

	// Replies to a mapped form of an IPv4 address arrive; sources are unmapped.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(memA.Addr().As16()), memA.Port())
	send(t, b, mapped, "reply")
	k, err = a.ReadBatch(in)
	if err != nil || k != 1 || string(in[0].Buf[:in[0].N]) != "reply" || in[0].Addr != memB {
		t.Fatalf("reply: %d, %v, %q from %v", k, err, in[0].Buf[:in[0].N], in[0].Addr)
	}

	// Nobody at memC: dropped silently, like UDP.
	send(t, a, memC, "lost")
	if got := drain(t, n, a, memA); len(got) != 0 {
		t.Fatalf("unexpected %q", payloads(got))
	}
}

// TestNetworkSetMark: a Network's Conn keeps the mark it is given, for the
// daemon's tests to read back, delivers as before, and refuses once closed.
func TestNetworkSetMark(t *testing.T) {
	n := NewNetwork()
	a, b := memListen(t, n, memA), memListen(t, n, memB)
	m, ok := a.(udp.Marker)
	if !ok {
		t.Fatalf("%T is not a udp.Marker", a)
	}
	r, ok := a.(interface{ Mark() uint32 })
	if !ok {
		t.Fatalf("%T has no Mark", a)
	}
	if got := r.Mark(); got != 0 {
		t.Fatalf("a new udp.Conn has mark %d", got)
	}
	for _, mark := range []uint32{51820, 0} {
		if err := m.SetMark(mark); err != nil {
			t.Fatalf("SetMark(%d): %v", mark, err)
		}
		if got := r.Mark(); got != mark {
			t.Fatalf("after SetMark(%d), Mark is %d", mark, got)
		}
	}
	if err := m.SetMark(51820); err != nil {
		t.Fatal(err)
	}
	send(t, a, memB, "marked")
	if got := drain(t, n, b, memB); fmt.Sprint(payloads(got)) != "[marked]" {
		t.Fatalf("a marked udp.Conn delivered %q", payloads(got))
	}
	a.Close()
	if err := m.SetMark(1); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("SetMark on a closed udp.Conn = %v, want net.ErrClosed", err)
	}
	if got := r.Mark(); got != 51820 {
		t.Fatalf("a refused SetMark changed the mark to %d", got)
	}
}

func TestNetworkReadTruncatesAndLimits(t *testing.T) {
	n := NewNetwork()
	a, b := memListen(t, n, memA), memListen(t, n, memB)
	send(t, a, memB, "0123456789", "x", "y")
	in := newMsgs(2, 4)
	k, err := b.ReadBatch(in)
	if err != nil || k != 2 || in[0].N != 4 || string(in[0].Buf) != "0123" {
		t.Fatalf("ReadBatch = %d, %v, %q", k, err, in[0].Buf[:in[0].N])
	}
	if k, err := b.ReadBatch(in); err != nil || k != 1 || string(in[0].Buf[:in[0].N]) != "y" {
		t.Fatalf("second ReadBatch = %d, %v", k, err)
	}
	if k, err := b.ReadBatch(nil); k != 0 || err != nil {
		t.Fatalf("empty ReadBatch = %d, %v", k, err)
	}
}

func TestNetworkListen(t *testing.T) {
	n := NewNetwork()
	memListen(t, n, memA)
	tests := []struct {
		name string
		addr netip.AddrPort
	}{
		{"taken", memA},
		{"taken, mapped form", netip.AddrPortFrom(netip.AddrFrom16(memA.Addr().As16()), memA.Port())},
		{"invalid", netip.AddrPort{}},
	}
	for _, tt := range tests {
		if c, err := n.Listen(tt.addr); err == nil {
			c.Close()
			t.Errorf("%s: Listen(%v) succeeded", tt.name, tt.addr)
		}
	}
	// Port 0 picks distinct free ports.
	e1 := memListen(t, n, netip.AddrPortFrom(memC.Addr(), 0))
	e2 := memListen(t, n, netip.AddrPortFrom(memC.Addr(), 0))
	if e1.LocalPort() == 0 || e1.LocalPort() == e2.LocalPort() {
		t.Fatalf("ephemeral ports %d, %d", e1.LocalPort(), e2.LocalPort())
	}
	// Close frees the address.
	c, err := n.Listen(memB)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	memListen(t, n, memB)
}

func TestNetworkFilter(t *testing.T) {
	n := NewNetwork()
	a, b := memListen(t, n, memA), memListen(t, n, memB)

	var held []byte // for reordering
	n.SetFilter(func(src, dst netip.AddrPort, p []byte) bool {
		if src != memA || dst != memB {
			t.Errorf("filter saw %v -> %v", src, dst)
		}
		switch string(p) {
		case "drop":
			return false
		case "alter":
			p[0] = 'A'
		case "dup":
			n.Deliver(src, dst, p)
		case "first":
			held = append([]byte(nil), p...)
			return false
		case "second":
			n.Deliver(src, dst, p)
			n.Deliver(src, dst, held)
			return false
		}
		return true
	})
	send(t, a, memB, "drop", "alter", "dup", "first", "second", "plain")
	got := payloads(drain(t, n, b, memB))
	if want := "[Alter dup dup second first plain]"; fmt.Sprint(got) != want {
		t.Fatalf("got %q, want %s", got, want)
	}

	n.SetFilter(nil)
	send(t, a, memB, "drop")
	if got := payloads(drain(t, n, b, memB)); fmt.Sprint(got) != "[drop]" {
		t.Fatalf("after removing the filter: %q", got)
	}
}

func TestNetworkMove(t *testing.T) {
	n := NewNetwork()
	a, b := memListen(t, n, memA), memListen(t, n, memB)
	send(t, a, memB, "before")
	if err := n.Move(a, memC); err != nil {
		t.Fatal(err)
	}
	send(t, a, memB, "after")
	got := drain(t, n, b, memB)
	if len(got) != 2 || got[0].Addr != memA || got[1].Addr != memC {
		t.Fatalf("sources %v", got)
	}
	if a.LocalPort() != memC.Port() {
		t.Fatalf("LocalPort %d after Move", a.LocalPort())
	}

	// The old address is free and no longer reaches a.
	send(t, b, memA, "to old address")
	send(t, b, memC, "to new address")
	if got := payloads(drain(t, n, a, memC)); fmt.Sprint(got) != "[to new address]" {
		t.Fatalf("a got %q", got)
	}
	memListen(t, n, memA)

	if err := n.Move(a, memB); err == nil {
		t.Error("Move onto a taken address succeeded")
	}
	if err := n.Move(a, memC); err != nil {
		t.Errorf("Move to own address: %v", err)
	}
	if err := NewNetwork().Move(a, memC); err == nil {
		t.Error("Move on another network succeeded")
	}
	if err := n.Move(nil, memC); err == nil {
		t.Error("Move of nil succeeded")
	}
	a.Close()
	if err := n.Move(a, netip.MustParseAddrPort("203.0.113.1:1")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Move of closed conn: %v", err)
	}
}

func TestNetworkBoundedQueue(t *testing.T) {
	n := NewNetwork()
	a, b := memListen(t, n, memA), memListen(t, n, memB)
	const extra = 10
	out := make([]udp.Message, queueLen+extra)
	for i := range out {
		p := fmt.Appendf(nil, "%d", i)
		out[i] = udp.Message{Buf: p, N: len(p), Addr: memB}
	}
	if k, err := a.WriteBatch(out); err != nil || k != len(out) {
		t.Fatalf("WriteBatch = %d, %v", k, err) // drops are silent, like UDP
	}
	if n.Deliver(memA, memB, []byte("more")) {
		t.Fatal("Deliver into a full queue succeeded")
	}
	got := 0
	in := newMsgs(batchSize, 10)
	for got < queueLen {
		k, err := b.ReadBatch(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range in[:k] {
			if want := fmt.Sprint(got); string(m.Buf[:m.N]) != want {
				t.Fatalf("datagram %q, want %q", m.Buf[:m.N], want)
			}
			got++
		}
	}
	if rest := drain(t, n, b, memB); len(rest) != 0 {
		t.Fatalf("%d datagrams beyond the queue bound", len(rest))
	}
}

func TestNetworkCloseUnblocks(t *testing.T) {
	n := NewNetwork()
	c, err := n.Listen(memA)
	if err != nil {
		t.Fatal(err)
	}
	testCloseUnblocks(t, c)
	if err := c.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
}

func TestNetworkBadWrite(t *testing.T) {
	n := NewNetwork()
	a, b := memListen(t, n, memA), memListen(t, n, memB)
	msgs := []udp.Message{{Buf: []byte("ok"), N: 2, Addr: memB}, {Buf: []byte("x"), N: 5, Addr: memB}}
	if k, err := a.WriteBatch(msgs); err == nil || k != 1 {
		t.Fatalf("WriteBatch = %d, %v; want 1 and an error", k, err)
	}
	if got := payloads(drain(t, n, b, memB)); fmt.Sprint(got) != "[ok]" {
		t.Fatalf("got %q", got)
	}
}

// TestNetworkConcurrent exercises the network from many goroutines; it is
// meant for -race.
func TestNetworkConcurrent(t *testing.T) {
	n := NewNetwork()
	const senders, each = 4, 50
	recv := memListen(t, n, memB)
	n.SetFilter(func(src, dst netip.AddrPort, p []byte) bool { return true })
	var wg sync.WaitGroup
	for s := range senders {
		c := memListen(t, n, netip.AddrPortFrom(memA.Addr(), uint16(1000+s)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := fmt.Appendf(nil, "%d-%d", s, i)
				if _, err := c.WriteBatch([]udp.Message{{Buf: p, N: len(p), Addr: memB}}); err != nil {
					t.Error(err)
				}
				if i == each/2 {
					if err := n.Move(c, netip.AddrPortFrom(memC.Addr(), uint16(1000+s))); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	got := readN(t, recv, senders*each) // the queue holds them all
	wg.Wait()
	seen := map[string]bool{}
	for _, m := range got {
		seen[string(m.Buf)] = true
	}
	if len(seen) != senders*each || !bytes.Contains(got[0].Buf, []byte("-")) {
		t.Fatalf("%d distinct datagrams", len(seen))
	}
}

func newMsgs(n, size int) []udp.Message {
	msgs := make([]udp.Message, n)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	return msgs
}

// readN reads until want datagrams arrived, failing after a guard that only
// bounds a hang (it closes c, which unblocks ReadBatch). It must run on the
// test's goroutine.
func readN(t testing.TB, c udp.Conn, want int) []udp.Message {
	t.Helper()
	guard := time.AfterFunc(10*time.Second, func() { c.Close() })
	defer guard.Stop()
	var got []udp.Message
	msgs := newMsgs(c.BatchSize(), 2000)
	for len(got) < want {
		n, err := c.ReadBatch(msgs)
		if err != nil {
			t.Fatalf("ReadBatch after %d of %d: %v", len(got), want, err)
		}
		for _, m := range msgs[:n] {
			got = append(got, udp.Message{Buf: append([]byte(nil), m.Buf[:m.N]...), N: m.N, Addr: m.Addr})
		}
	}
	return got
}

// testCloseUnblocks checks that Close unblocks a pending ReadBatch and that
// reads and writes after it fail with net.ErrClosed.
func testCloseUnblocks(t *testing.T, c udp.Conn) {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := c.ReadBatch(newMsgs(4, 100))
		errc <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ReadBatch did not return after Close")
	}
	if _, err := c.ReadBatch(newMsgs(1, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second ReadBatch: %v", err)
	}
	dst := netip.MustParseAddrPort("127.0.0.1:9")
	if _, err := c.WriteBatch([]udp.Message{{Buf: []byte{1}, N: 1, Addr: dst}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteBatch after Close: %v", err)
	}
}
