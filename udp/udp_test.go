package udp

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// implementations lists the real-socket Conns under test; the Linux tests
// add the portable one so that both code paths run here.
var implementations = []struct {
	name   string
	listen func(port int) (Conn, error)
}{
	{"Listen", Listen},
}

// haveIPv6Loopback reports whether ::1 can be bound.
func haveIPv6Loopback() bool {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func listenT(t testing.TB, listen func(int) (Conn, error)) Conn {
	t.Helper()
	c, err := listen(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.LocalPort() == 0 {
		t.Fatal("LocalPort is 0")
	}
	return c
}

func loopbacks(t testing.TB) []netip.Addr {
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if haveIPv6Loopback() {
		addrs = append(addrs, netip.MustParseAddr("::1"))
	} else {
		t.Log("no IPv6 loopback: IPv4 only")
	}
	return addrs
}

func newMsgs(n, size int) []Message {
	msgs := make([]Message, n)
	for i := range msgs {
		msgs[i].Buf = make([]byte, size)
	}
	return msgs
}

// readN reads until want datagrams arrived, failing after a guard that only
// bounds a hang (it closes c, which unblocks ReadBatch). It must run on the
// test's goroutine.
func readN(t testing.TB, c Conn, want int) []Message {
	t.Helper()
	guard := time.AfterFunc(10*time.Second, func() { c.Close() })
	defer guard.Stop()
	var got []Message
	msgs := newMsgs(c.BatchSize(), 2000)
	for len(got) < want {
		n, err := c.ReadBatch(msgs)
		if err != nil {
			t.Fatalf("ReadBatch after %d of %d: %v", len(got), want, err)
		}
		for _, m := range msgs[:n] {
			got = append(got, Message{Buf: append([]byte(nil), m.Buf[:m.N]...), N: m.N, Addr: m.Addr})
		}
	}
	return got
}

func TestListenRejectsBadPort(t *testing.T) {
	for _, p := range []int{-1, 65536} {
		if c, err := Listen(p); err == nil {
			c.Close()
			t.Errorf("Listen(%d) succeeded", p)
		}
	}
}

func TestLoopbackRoundTrip(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			a, b := listenT(t, impl.listen), listenT(t, impl.listen)
			addrs := loopbacks(t)
			// Destinations alternate between families in one batch, and
			// include a v4-mapped form of 127.0.0.1.
			dsts := []netip.Addr{netip.MustParseAddr("::ffff:127.0.0.1")}
			for i := range 9 {
				dsts = append(dsts, addrs[i%len(addrs)])
			}
			out := make([]Message, len(dsts))
			want := map[string]netip.AddrPort{}
			for i, d := range dsts {
				p := fmt.Appendf(nil, "datagram %d to %v", i, d)
				out[i] = Message{Buf: p, N: len(p), Addr: netip.AddrPortFrom(d, b.LocalPort())}
				want[string(p)] = netip.AddrPortFrom(d.Unmap(), a.LocalPort())
			}
			if n, err := a.WriteBatch(out); err != nil || n != len(out) {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			got := readN(t, b, len(out))
			for _, m := range got {
				from, ok := want[string(m.Buf)]
				if !ok {
					t.Fatalf("unexpected datagram %q", m.Buf)
				}
				delete(want, string(m.Buf))
				if m.Addr != from {
					t.Errorf("%q from %v, want %v", m.Buf, m.Addr, from)
				}
				if m.Addr.Addr().Is4In6() {
					t.Errorf("mapped address %v", m.Addr)
				}
			}

			// Echo everything back to the addresses ReadBatch reported.
			for i := range got {
				got[i].Buf = append(got[i].Buf, " echoed"...)
				got[i].N = len(got[i].Buf)
			}
			if n, err := b.WriteBatch(got); err != nil || n != len(got) {
				t.Fatalf("echo WriteBatch = %d, %v", n, err)
			}
			echoed := readN(t, a, len(got))
			for _, m := range echoed {
				if !bytes.HasSuffix(m.Buf, []byte(" echoed")) || m.Addr.Port() != b.LocalPort() {
					t.Errorf("echo %q from %v", m.Buf, m.Addr)
				}
			}
		})
	}
}

func TestLoopbackMoreThanBatch(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			a := listenT(t, impl.listen)
			// Spread 300 datagrams over three receivers, round robin, so
			// that no receive buffer overflows while nobody reads.
			const total, receivers = 300, 3
			var rs [receivers]Conn
			for i := range rs {
				rs[i] = listenT(t, impl.listen)
			}
			out := make([]Message, total)
			for i := range out {
				p := fmt.Appendf(nil, "%03d", i)
				dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), rs[i%receivers].LocalPort())
				out[i] = Message{Buf: p, N: len(p), Addr: dst}
			}
			if n, err := a.WriteBatch(out); err != nil || n != total {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			for r, c := range rs {
				got := readN(t, c, total/receivers)
				for j, m := range got {
					if want := fmt.Sprintf("%03d", j*receivers+r); string(m.Buf) != want {
						t.Fatalf("receiver %d datagram %d = %q, want %q", r, j, m.Buf, want)
					}
				}
			}
		})
	}
}

func TestReadTruncates(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			a, b := listenT(t, impl.listen), listenT(t, impl.listen)
			p := bytes.Repeat([]byte("x"), 100)
			dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
			if _, err := a.WriteBatch([]Message{{Buf: p, N: len(p), Addr: dst}}); err != nil {
				t.Fatal(err)
			}
			msgs := newMsgs(1, 10)
			n, err := b.ReadBatch(msgs)
			if err != nil || n != 1 || msgs[0].N != 10 {
				t.Fatalf("ReadBatch = %d, %v, N=%d; want 1 datagram of 10 bytes", n, err, msgs[0].N)
			}
		})
	}
}

func TestWriteBatchBadMessages(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			a, b := listenT(t, impl.listen), listenT(t, impl.listen)
			good := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
			p := []byte("ok")
			tests := []struct {
				name string
				bad  Message
			}{
				{"zero address", Message{Buf: p, N: 2}},
				{"port 0", Message{Buf: p, N: 2, Addr: netip.AddrPortFrom(good.Addr(), 0)}},
				{"N past buffer", Message{Buf: p, N: 3, Addr: good}},
				{"negative N", Message{Buf: p, N: -1, Addr: good}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					msgs := []Message{{Buf: p, N: 2, Addr: good}, {Buf: p, N: 2, Addr: good}, tt.bad, {Buf: p, N: 2, Addr: good}}
					n, err := a.WriteBatch(msgs)
					if err == nil || n != 2 {
						t.Fatalf("WriteBatch = %d, %v; want 2 and an error", n, err)
					}
					readN(t, b, 2) // the two before the bad one went out
				})
			}
		})
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			c, err := impl.listen(0)
			if err != nil {
				t.Fatal(err)
			}
			testCloseUnblocks(t, c)
		})
	}
}

// testCloseUnblocks checks that Close ends a blocked ReadBatch with
// net.ErrClosed, and that later calls fail the same way.
func testCloseUnblocks(t *testing.T, c Conn) {
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
	if _, err := c.WriteBatch([]Message{{Buf: []byte{1}, N: 1, Addr: dst}}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteBatch after Close: %v", err)
	}
}

// roundTrip sends out from a to b and reads them back into in.
func roundTrip(tb testing.TB, a, b Conn, out, in []Message) {
	if n, err := a.WriteBatch(out); err != nil || n != len(out) {
		tb.Fatalf("WriteBatch = %d, %v", n, err)
	}
	for got := 0; got < len(out); {
		n, err := b.ReadBatch(in[got:])
		if err != nil {
			tb.Fatal(err)
		}
		got += n
	}
}

// batchPair returns two conns and a batch of 8 messages from a to b over
// every loopback family, plus receive buffers.
func batchPair(tb testing.TB, listen func(int) (Conn, error)) (a, b Conn, out, in []Message) {
	a, b = listenT(tb, listen), listenT(tb, listen)
	addrs := loopbacks(tb)
	out = make([]Message, 8)
	for i := range out {
		out[i] = Message{Buf: make([]byte, 1200), N: 1200, Addr: netip.AddrPortFrom(addrs[i%len(addrs)], b.LocalPort())}
	}
	return a, b, out, newMsgs(8, 1500)
}

func TestSteadyStateAllocs(t *testing.T) {
	for _, impl := range implementations {
		t.Run(impl.name, func(t *testing.T) {
			a, b, out, in := batchPair(t, impl.listen)
			roundTrip(t, a, b, out, in) // warm up
			allocs := testing.AllocsPerRun(200, func() { roundTrip(t, a, b, out, in) })
			t.Logf("%.1f allocs per WriteBatch+ReadBatch of %d", allocs, len(out))
			if allocs != 0 {
				t.Fatalf("%.1f allocs per round trip, want 0", allocs)
			}
		})
	}
}

func BenchmarkLoopbackBatch(b *testing.B) {
	for _, impl := range implementations {
		b.Run(impl.name, func(b *testing.B) {
			x, y, out, in := batchPair(b, impl.listen)
			b.ReportAllocs()
			b.SetBytes(int64(len(out) * out[0].N))
			for b.Loop() {
				roundTrip(b, x, y, out, in)
			}
		})
	}
}
