package udp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listenOffloads opens a Linux Conn with at most the given offloads,
// skipping the test if the kernel lacks one that is asked for.
func listenOffloads(t testing.TB, want offloads) *mmsgConn {
	t.Helper()
	pc, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := newMmsgConn(pc, want)
	if err != nil {
		pc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if want.gso && !c.gso {
		t.Skip("kernel without UDP_SEGMENT")
	}
	if want.gro && c.gro == nil {
		t.Skip("kernel without readable UDP_GRO (Linux 5.12)")
	}
	if !want.gso && c.gso || !want.gro && c.gro != nil {
		t.Fatalf("offloads %+v enabled, only %+v wanted", offloads{c.gso, c.gro != nil}, want)
	}
	return c
}

// counters returns a batch's system call and datagram counts.
func (b *batch) counters() (syscalls, datagrams uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.syscalls, b.datagrams
}

// payload returns a distinct, checkable payload of n bytes for sequence
// number seq (n >= 4 carries seq itself).
func payload(seq, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(seq*7 + i)
	}
	if n >= 4 {
		binary.BigEndian.PutUint32(p, uint32(seq))
	}
	return p
}

// readExactly reads want datagrams from c into buffers of size bytes,
// failing on a hang (the guard closes c) or on more datagrams than wanted.
func readExactly(t testing.TB, c Conn, want, size int) []Message {
	t.Helper()
	guard := time.AfterFunc(10*time.Second, func() { c.Close() })
	defer guard.Stop()
	msgs := newMsgs(c.BatchSize(), size)
	var got []Message
	for len(got) < want {
		n, err := c.ReadBatch(msgs)
		if err != nil {
			t.Fatalf("ReadBatch after %d of %d: %v", len(got), want, err)
		}
		for _, m := range msgs[:n] {
			got = append(got, Message{Buf: bytes.Clone(m.Buf[:m.N]), N: m.N, Addr: m.Addr})
		}
	}
	if len(got) != want {
		t.Fatalf("read %d datagrams, want %d", len(got), want)
	}
	return got
}

// checkArrived compares what arrived with what was sent, datagram by
// datagram: same boundaries, bytes, order and source.
func checkArrived(t testing.TB, got, sent []Message, from netip.AddrPort) {
	t.Helper()
	for i := range sent {
		want := sent[i].Buf[:sent[i].N]
		if !bytes.Equal(got[i].Buf[:got[i].N], want) {
			t.Fatalf("datagram %d: %d bytes %x..., want %d bytes %x...", i,
				got[i].N, got[i].Buf[:min(8, got[i].N)], len(want), want[:min(8, len(want))])
		}
		if got[i].Addr != from {
			t.Fatalf("datagram %d from %v, want %v", i, got[i].Addr, from)
		}
	}
}

// burst returns count messages of size bytes to dst, then one of last bytes
// if last > 0, numbered from seq.
func burst(dst netip.AddrPort, seq, count, size, last int) []Message {
	var msgs []Message
	for i := range count {
		p := payload(seq+i, size)
		msgs = append(msgs, Message{Buf: p, N: size, Addr: dst})
	}
	if last > 0 {
		p := payload(seq+count, last)
		msgs = append(msgs, Message{Buf: p, N: last, Addr: dst})
	}
	return msgs
}

func TestOffloadsDetected(t *testing.T) {
	// Probe the kernel on a socket of our own, then check that Listen
	// turned on exactly what it supports, and the big buffers.
	pc, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var segErr, groErr error
	var groOn int
	rc, _ := pc.SyscallConn()
	rc.Control(func(fd uintptr) {
		_, segErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		if groErr = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 1); groErr == nil {
			groOn, groErr = unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO)
		}
	})
	c, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mc := c.(*mmsgConn)
	if mc.gso != (segErr == nil) {
		t.Errorf("gso = %v, but UDP_SEGMENT getsockopt: %v", mc.gso, segErr)
	}
	if (mc.gro != nil) != (groErr == nil && groOn == 1) {
		t.Errorf("gro = %v, but UDP_GRO: %d, %v", mc.gro != nil, groOn, groErr)
	}
	t.Logf("UDP GSO %v, UDP GRO %v", mc.gso, mc.gro != nil)

	var rcv, snd int
	var rerr, serr error
	mc.rc.Control(func(fd uintptr) {
		rcv, rerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	})
	if rerr != nil || serr != nil {
		t.Fatal(rerr, serr)
	}
	t.Logf("SO_RCVBUF %d, SO_SNDBUF %d", rcv, snd)
	if os.Geteuid() != 0 {
		t.Skip("not root: the buffers are capped by net.core.[rw]mem_max")
	}
	// The kernel reports twice what was set, for its bookkeeping.
	if rcv < socketBufferSize || snd < socketBufferSize {
		t.Errorf("buffers %d/%d, want at least %d as root", rcv, snd, socketBufferSize)
	}
}

// TestGSOGROSuperPacket sends what the device sends for one TCP super-packet
// (runs of 1452-byte datagrams and a shorter last one, all to one peer) in
// every combination of sender GSO and receiver GRO, and checks that exactly
// those datagrams arrive, and how many kernel datagrams carried them.
func TestGSOGROSuperPacket(t *testing.T) {
	tests := []struct {
		name        string
		count, last int
		runs        int // kernel datagrams with GSO
	}{
		{"44x1452+700", 44, 1452, 1},
		{"45x1452", 45, 0, 1},
		{"45x1452+700", 45, 700, 2}, // 65340+700 crosses the IPv4 limit
		{"1x1452", 1, 0, 1},
	}
	for _, dst := range loopbacks(t) {
		for _, gso := range []bool{true, false} {
			for _, gro := range []bool{true, false} {
				for _, tt := range tests {
					name := fmt.Sprintf("%v/gso=%v/gro=%v/%s", dst, gso, gro, tt.name)
					t.Run(name, func(t *testing.T) {
						a := listenOffloads(t, offloads{gso: gso})
						b := listenOffloads(t, offloads{gro: gro})
						out := burst(netip.AddrPortFrom(dst, b.LocalPort()), 0, tt.count, 1452, tt.last)
						if n, err := a.WriteBatch(out); err != nil || n != len(out) {
							t.Fatalf("WriteBatch = %d, %v", n, err)
						}
						got := readExactly(t, b, len(out), 2000)
						checkArrived(t, got, out, netip.AddrPortFrom(dst, a.LocalPort()))

						wantSent := len(out)
						if gso {
							wantSent = tt.runs
						}
						if _, dg := a.w.counters(); dg != uint64(wantSent) {
							t.Errorf("sender moved %d kernel datagrams, want %d", dg, wantSent)
						}
						// On loopback a GSO send reaches a GRO socket whole.
						wantRead := len(out)
						if gso && gro {
							wantRead = tt.runs
						}
						if _, dg := b.r.counters(); dg != uint64(wantRead) {
							t.Errorf("receiver read %d kernel datagrams, want %d", dg, wantRead)
						}
					})
				}
			}
		}
	}
}

// TestGSORuns checks where runs break: destination changes, a longer
// message, a shorter one (which ends its run), empty messages, 64 segments,
// the payload limits of each family, and more messages than one sendmmsg.
func TestGSORuns(t *testing.T) {
	a := listenOffloads(t, offloads{gso: true})
	var rs [2]*mmsgConn
	for i := range rs {
		rs[i] = listenOffloads(t, offloads{gro: i == 0})
	}
	type part struct {
		to          int // receiver index
		count, size int
	}
	tests := []struct {
		name  string
		v6    bool // IPv6 destinations (else IPv4)
		parts []part
		runs  int
	}{
		{"alternating destinations", false, []part{{0, 1, 1000}, {1, 1, 1000}, {0, 1, 1000}, {1, 1, 1000}}, 4},
		{"longer breaks the run", false, []part{{0, 3, 1000}, {0, 3, 1200}}, 2},
		{"shorter ends the run", false, []part{{0, 1, 1000}, {0, 1, 500}, {0, 1, 500}}, 2},
		{"destination change mid-run", false, []part{{0, 5, 300}, {1, 5, 300}, {0, 5, 300}}, 3},
		{"empty datagrams", false, []part{{0, 1, 100}, {0, 1, 0}, {0, 1, 0}, {0, 2, 100}}, 4},
		{"64 segments at most", false, []part{{0, 100, 100}}, 2},
		{"more than one sendmmsg", false, []part{{0, 200, 100}, {1, 60, 50}}, 6},
		{"IPv4 limit exactly", false, []part{{0, 13, 5000}, {0, 1, 507}}, 1},
		{"IPv4 limit plus one", false, []part{{0, 13, 5000}, {0, 1, 508}}, 2},
		{"IPv6 limit exactly", true, []part{{0, 13, 5000}, {0, 1, 527}}, 1},
		{"IPv6 limit plus one", true, []part{{0, 13, 5000}, {0, 1, 528}}, 2},
		{"IPv6 interleaved", true, []part{{0, 2, 1452}, {1, 2, 1452}, {0, 1, 10}, {0, 1, 10}}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := netip.MustParseAddr("127.0.0.1")
			if tt.v6 {
				if !haveIPv6Loopback() {
					t.Skip("no IPv6")
				}
				host = netip.MustParseAddr("::1")
			}
			var out []Message
			var sent [2][]Message
			seq := 0
			for _, p := range tt.parts {
				dst := netip.AddrPortFrom(host, rs[p.to].LocalPort())
				ms := burst(dst, seq, p.count, p.size, 0)
				seq += p.count
				out = append(out, ms...)
				sent[p.to] = append(sent[p.to], ms...)
			}
			_, before := a.w.counters()
			if n, err := a.WriteBatch(out); err != nil || n != len(out) {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			if _, after := a.w.counters(); after-before != uint64(tt.runs) {
				t.Errorf("%d kernel datagrams, want %d", after-before, tt.runs)
			}
			for i, r := range rs {
				got := readExactly(t, r, len(sent[i]), 6000)
				checkArrived(t, got, sent[i], netip.AddrPortFrom(host, a.LocalPort()))
			}
		})
	}
}

// TestGSOMappedAndPlainDoNotMix checks that the v4-mapped and plain forms of
// one address, which the kernel sends alike, still start separate runs.
func TestGSOMappedAndPlainDoNotMix(t *testing.T) {
	a := listenOffloads(t, offloads{gso: true})
	if !a.v6 {
		t.Skip("IPv4-only socket")
	}
	b := listenOffloads(t, offloads{gro: true})
	plain := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
	mapped := netip.AddrPortFrom(netip.MustParseAddr("::ffff:127.0.0.1"), b.LocalPort())
	out := append(burst(mapped, 0, 3, 800, 0), burst(plain, 3, 3, 800, 0)...)
	if n, err := a.WriteBatch(out); err != nil || n != len(out) {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	if _, dg := a.w.counters(); dg != 2 {
		t.Errorf("%d kernel datagrams, want 2", dg)
	}
	got := readExactly(t, b, len(out), 1000)
	checkArrived(t, got, out, netip.AddrPortFrom(plain.Addr(), a.LocalPort()))
}

// TestGSOFallback makes the kernel's rejection of UDP_SEGMENT happen through
// the test hook, after a datagram that went out plainly, and checks that
// the batch still arrives whole and in order, and that GSO stays off; an
// error that says nothing about GSO is returned instead.
func TestGSOFallback(t *testing.T) {
	tests := []struct {
		errno    syscall.Errno
		fallback bool
	}{
		{unix.EIO, true},
		{unix.EINVAL, true},
		{unix.ENOPROTOOPT, true},
		{unix.EOPNOTSUPP, true},
		{unix.EPERM, false},
	}
	for _, tt := range tests {
		t.Run(tt.errno.Error(), func(t *testing.T) {
			a := listenOffloads(t, offloads{gso: true})
			b := listenOffloads(t, offloads{gro: true})
			other := listenOffloads(t, offloads{})
			dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
			first := Message{Buf: payload(100, 50), N: 50,
				Addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), other.LocalPort())}
			out := append([]Message{first}, burst(dst, 0, 20, 1452, 300)...)
			a.w.failGSO = tt.errno
			n, err := a.WriteBatch(out)
			a.w.failGSO = 0
			checkArrived(t, readExactly(t, other, 1, 100), out[:1], netip.AddrPortFrom(dst.Addr(), a.LocalPort()))
			if !tt.fallback {
				if n != 1 || !errors.Is(err, tt.errno) {
					t.Fatalf("WriteBatch = %d, %v; want 1 and %v", n, err, tt.errno)
				}
				if a.gsoOff.Load() {
					t.Fatal("GSO turned off by an unrelated error")
				}
				return
			}
			if err != nil || n != len(out) {
				t.Fatalf("WriteBatch = %d, %v", n, err)
			}
			if !a.gsoOff.Load() {
				t.Fatal("GSO still on")
			}
			checkArrived(t, readExactly(t, b, len(out)-1, 2000), out[1:], netip.AddrPortFrom(dst.Addr(), a.LocalPort()))
			if _, dg := a.w.counters(); dg != uint64(len(out)) {
				t.Errorf("%d kernel datagrams, want %d, one per message", dg, len(out))
			}
			// Later batches go without GSO from the start.
			_, before := a.w.counters()
			again := burst(dst, 50, 10, 1000, 0)
			if n, err := a.WriteBatch(again); err != nil || n != len(again) {
				t.Fatalf("second WriteBatch = %d, %v", n, err)
			}
			if _, after := a.w.counters(); after-before != uint64(len(again)) {
				t.Errorf("second batch: %d kernel datagrams, want %d", after-before, len(again))
			}
			checkArrived(t, readExactly(t, b, len(again), 2000), again, netip.AddrPortFrom(dst.Addr(), a.LocalPort()))
		})
	}
}

// TestGSOBadMessageEndsRun checks that an invalid message inside what would
// be a run is reported at its own index, after the ones before it went out.
func TestGSOBadMessageEndsRun(t *testing.T) {
	a := listenOffloads(t, offloads{gso: true})
	b := listenOffloads(t, offloads{gro: true})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
	out := burst(dst, 0, 10, 500, 0)
	out[6].N = len(out[6].Buf) + 1
	n, err := a.WriteBatch(out)
	if n != 6 || err == nil {
		t.Fatalf("WriteBatch = %d, %v; want 6 and an error", n, err)
	}
	checkArrived(t, readExactly(t, b, 6, 1000), out[:6], netip.AddrPortFrom(dst.Addr(), a.LocalPort()))
}

// TestGROLeftovers reads a coalesced datagram into fewer messages than it
// has segments: the rest must come from later calls without another system
// call (so without blocking), in order, before anything newer.
func TestGROLeftovers(t *testing.T) {
	a := listenOffloads(t, offloads{gso: true})
	b := listenOffloads(t, offloads{gro: true})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
	from := netip.AddrPortFrom(dst.Addr(), a.LocalPort())
	first := burst(dst, 0, 44, 1452, 700)
	second := burst(dst, 100, 3, 1000, 0)
	for _, out := range [][]Message{first, second} {
		if n, err := a.WriteBatch(out); err != nil || n != len(out) {
			t.Fatalf("WriteBatch = %d, %v", n, err)
		}
	}
	msgs := newMsgs(10, 2000)
	var got []Message
	var sizes []int
	for len(got) < len(first)+len(second) {
		n, err := b.ReadBatch(msgs)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, n)
		for _, m := range msgs[:n] {
			got = append(got, Message{Buf: bytes.Clone(m.Buf[:m.N]), N: m.N, Addr: m.Addr})
		}
	}
	// The last call hands out the end of the first run and all of the
	// second, which the same recvmmsg read.
	if want := []int{10, 10, 10, 10, 8}; fmt.Sprint(sizes) != fmt.Sprint(want) {
		t.Errorf("ReadBatch returned %v messages, want %v", sizes, want)
	}
	checkArrived(t, got, append(first, second...), from)
	calls, dgrams := b.r.counters()
	if dgrams != 2 {
		t.Errorf("%d kernel datagrams read, want the 2 runs", dgrams)
	}
	if calls != 1 {
		t.Errorf("%d system calls, want 1: leftovers must not need another", calls)
	}

	// A short buffer truncates each segment on its own.
	third := burst(dst, 200, 3, 1000, 0)
	if n, err := a.WriteBatch(third); err != nil || n != len(third) {
		t.Fatalf("WriteBatch = %d, %v", n, err)
	}
	small := newMsgs(128, 600)
	n, err := b.ReadBatch(small)
	if err != nil || n != len(third) {
		t.Fatalf("ReadBatch = %d, %v; want %d", n, err, len(third))
	}
	for i := range n {
		if want := third[i].Buf[:600]; !bytes.Equal(small[i].Buf[:small[i].N], want) {
			t.Errorf("truncated segment %d = %d bytes, want the first 600 of its own", i, small[i].N)
		}
	}
	if calls, dgrams := b.r.counters(); calls != 2 || dgrams != 3 {
		t.Errorf("%d system calls, %d datagrams; want 2 and 3", calls, dgrams)
	}
}

// TestGROPendingDroppedOnClose checks that segments still pending are not
// handed out after Close.
func TestGROPendingDroppedOnClose(t *testing.T) {
	a := listenOffloads(t, offloads{gso: true})
	b := listenOffloads(t, offloads{gro: true})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
	if _, err := a.WriteBatch(burst(dst, 0, 10, 500, 0)); err != nil {
		t.Fatal(err)
	}
	msgs := newMsgs(2, 600)
	if n, err := b.ReadBatch(msgs); err != nil || n != 2 {
		t.Fatalf("ReadBatch = %d, %v", n, err)
	}
	b.Close()
	if n, err := b.ReadBatch(msgs); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadBatch after Close = %d, %v; want net.ErrClosed", n, err)
	}
}

// TestGSOGROConcurrent runs writers and a reader at once, for -race: every
// datagram arrives, in each writer's order.
func TestGSOGROConcurrent(t *testing.T) {
	const writers, batches, per, size = 4, 40, 20, 500
	b := listenOffloads(t, offloads{gro: true})
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
	var rcv int
	b.rc.Control(func(fd uintptr) { rcv, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) })
	if rcv < 4*writers*batches*per*size {
		t.Skipf("receive buffer of %d bytes could overflow", rcv)
	}
	a := listenOffloads(t, offloads{gso: true})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range batches {
				out := burst(dst, (w<<16)|(i*per), per, size, 0)
				if n, err := a.WriteBatch(out); err != nil || n != per {
					t.Errorf("WriteBatch = %d, %v", n, err)
					return
				}
			}
		}()
	}
	got := readExactly(t, b, writers*batches*per, 1000)
	wg.Wait()
	var next [writers]int
	for _, m := range got {
		seq := int(binary.BigEndian.Uint32(m.Buf))
		w, i := seq>>16, seq&0xffff
		if w >= writers || i != next[w] || !bytes.Equal(m.Buf, payload(seq, size)) {
			t.Fatalf("datagram %d of writer %d, want %d (%d bytes)", i, w, next[min(w, writers-1)], m.N)
		}
		next[w]++
	}
}

func TestGROSegmentSize(t *testing.T) {
	cmsg := func(level, typ int32, data []byte) []byte {
		var h unix.Cmsghdr
		h.Level, h.Type = level, typ
		h.SetLen(unix.CmsgLen(len(data)))
		b := make([]byte, unix.CmsgSpace(len(data)))
		copy(b, unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr))
		copy(b[unix.CmsgLen(0):], data)
		return b
	}
	int32Bytes := func(v int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(v)) }
	gro := cmsg(unix.SOL_UDP, unix.UDP_GRO, int32Bytes(1452))
	tests := []struct {
		name string
		b    []byte
		want int
	}{
		{"none", nil, 0},
		{"int", gro, 1452},
		{"u16", cmsg(unix.SOL_UDP, unix.UDP_GRO, binary.NativeEndian.AppendUint16(nil, 1200)), 1200},
		{"after another", append(cmsg(unix.SOL_IP, unix.IP_TOS, []byte{1}), gro...), 1452},
		{"other level", cmsg(unix.SOL_IP, unix.UDP_GRO, int32Bytes(1452)), 0},
		{"other type", cmsg(unix.SOL_UDP, unix.UDP_SEGMENT, int32Bytes(1452)), 0},
		{"negative", cmsg(unix.SOL_UDP, unix.UDP_GRO, int32Bytes(-1)), 0},
		{"too large", cmsg(unix.SOL_UDP, unix.UDP_GRO, int32Bytes(1<<16)), 0},
		{"no data", cmsg(unix.SOL_UDP, unix.UDP_GRO, nil), 0},
		{"cut short", gro[:unix.CmsgLen(2)], 0},
		{"header only", gro[:unix.SizeofCmsghdr], 0},
		{"unaligned", append([]byte{0}, gro...)[1:], 1452},
	}
	for _, tt := range tests {
		if got := groSegmentSize(tt.b); got != tt.want {
			t.Errorf("%s: groSegmentSize = %d, want %d", tt.name, got, tt.want)
		}
	}
	// What putSegmentSize writes is well formed.
	var c control
	n := c.putSegmentSize(1452)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&c))
	if n != unix.CmsgSpace(2) || h.Level != unix.SOL_UDP || h.Type != unix.UDP_SEGMENT ||
		uint64(h.Len) != uint64(unix.CmsgLen(2)) || binary.NativeEndian.Uint16(c.bytes()[unix.CmsgLen(0):]) != 1452 {
		t.Errorf("UDP_SEGMENT control message %x", c.bytes()[:n])
	}
}

// FuzzGROSegmentSize feeds arbitrary control data, as the kernel would
// return it, to groSegmentSize: it must not panic, and a size it returns
// must be a possible UDP payload size.
func FuzzGROSegmentSize(f *testing.F) {
	var c control
	n := c.putSegmentSize(1452)
	f.Add(c.bytes()[:n])
	seg := bytes.Clone(c.bytes()[:n])
	binary.NativeEndian.PutUint32(seg[unix.SizeofCmsghdr-4:], unix.UDP_GRO)
	f.Add(seg)
	f.Add(append(bytes.Clone(seg), seg...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if size := groSegmentSize(b); size < 0 || size > 65535 {
			t.Fatalf("segment size %d", size)
		}
	})
}

// superPacket is the device's batch for one 64 KiB TCP super-packet.
func superPacket(dst netip.AddrPort) []Message {
	return burst(dst, 0, 45, 1452, 0)
}

func TestGSOGROSteadyStateAllocs(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("offloads=%v", on), func(t *testing.T) {
			a := listenOffloads(t, offloads{gso: on})
			b := listenOffloads(t, offloads{gro: on})
			out := superPacket(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort()))
			in := newMsgs(linuxBatchSize, 2000)
			roundTrip(t, a, b, out, in)
			allocs := testing.AllocsPerRun(100, func() { roundTrip(t, a, b, out, in) })
			if allocs != 0 {
				t.Fatalf("%.1f allocs per round trip of %d, want 0", allocs, len(out))
			}
		})
	}
}

// BenchmarkSuperPacket moves the device's batch for one TCP super-packet
// (45 datagrams of 1452 bytes to one peer) over loopback, with and without
// the offloads, and reports system calls per batch on each side.
func BenchmarkSuperPacket(b *testing.B) {
	for _, host := range []string{"127.0.0.1", "::1"} {
		for _, o := range []offloads{{true, true}, {true, false}, {false, true}, {false, false}} {
			b.Run(fmt.Sprintf("%s/gso=%v/gro=%v", host, o.gso, o.gro), func(b *testing.B) {
				if host == "::1" && !haveIPv6Loopback() {
					b.Skip("no IPv6")
				}
				x := listenOffloads(b, offloads{gso: o.gso})
				y := listenOffloads(b, offloads{gro: o.gro})
				out := superPacket(netip.AddrPortFrom(netip.MustParseAddr(host), y.LocalPort()))
				in := newMsgs(linuxBatchSize, 2000)
				b.ReportAllocs()
				b.SetBytes(int64(len(out) * 1452))
				for b.Loop() {
					roundTrip(b, x, y, out, in)
				}
				ws, _ := x.w.counters()
				rs, _ := y.r.counters()
				b.ReportMetric(float64(ws)/float64(b.N), "sendcalls/op")
				b.ReportMetric(float64(rs)/float64(b.N), "recvcalls/op")
			})
		}
	}
}
