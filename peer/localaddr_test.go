package main

import (
	"net/netip"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peer-vpn/peer/capture"
	"github.com/peer-vpn/peer/tunnel"
)

// countingResolver answers 192.0.2.99 for every remote and counts its calls.
type countingResolver struct{ calls atomic.Int64 }

var resolvedAddr = netip.MustParseAddr("192.0.2.99")

func (c *countingResolver) resolve(netip.AddrPort) netip.Addr {
	c.calls.Add(1)
	return resolvedAddr
}

func (l *localAddrs) used() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.slots {
		if s.used {
			n++
		}
	}
	return n
}

// spoofed returns the i-th of many distinct remote addresses.
func spoofed(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(1024+i%5000))
}

// TestTapOuterForgedSources: 20,000 datagrams from distinct sources, as a
// flood of forged ones would be, neither grow the tap's memory nor make a
// route lookup on the forwarding goroutine. The resolver goroutine is not
// started here, so any call of it came from Outer's caller.
func TestTapOuterForgedSources(t *testing.T) {
	w, err := capture.NewWriter(capture.Options{Path: filepath.Join(t.TempDir(), "c.pcapng"), Outer: true, QueueLen: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var r countingResolver
	tp := &tap{w: w, locals: newLocalAddrs(r.resolve)}
	local := netip.MustParseAddrPort("0.0.0.0:51820")
	datagram := make([]byte, 32)
	datagram[0] = 4
	for i := 0; i < 20000; i++ {
		tp.Outer(time.Now(), tunnel.Inbound, spoofed(i), local, datagram)
		tp.Outer(time.Now(), tunnel.Outbound, local, spoofed(i), datagram)
	}
	if n := r.calls.Load(); n != 0 {
		t.Errorf("%d route lookups on the forwarding goroutine", n)
	}
	if n := tp.locals.used(); n > localAddrSlots {
		t.Errorf("%d cache entries", n)
	}
	if n := len(tp.locals.req); n > localAddrQueue {
		t.Errorf("%d queued lookups", n)
	}
	if n := testing.AllocsPerRun(1000, func() { tp.locals.lookup(time.Now(), spoofed(7)) }); n != 0 {
		t.Errorf("lookup allocates %.1f times", n)
	}
}

// TestLocalAddrsResolves: a remote gets its answer from the resolver
// goroutine (unspecified until then), a full queue evicts nothing, primed
// remotes are known at once, and an answer older than the TTL is asked for
// again while it keeps being used.
func TestLocalAddrsResolves(t *testing.T) {
	var r countingResolver
	l := newLocalAddrs(r.resolve)
	primed := netip.MustParseAddrPort("203.0.113.1:51820")
	l.prime(primed)
	now := time.Now()
	for _, tc := range []struct {
		remote netip.AddrPort
		want   netip.Addr
	}{
		{primed, resolvedAddr},
		{netip.MustParseAddrPort("203.0.113.2:51820"), netip.IPv4Unspecified()},
		{netip.MustParseAddrPort("[2001:db8::2]:51820"), netip.IPv6Unspecified()},
		{netip.MustParseAddrPort("[::ffff:203.0.113.3]:51820"), netip.IPv4Unspecified()},
	} {
		if got := l.lookup(now, tc.remote); got != tc.want {
			t.Errorf("lookup(%v) before the resolver ran = %v, want %v", tc.remote, got, tc.want)
		}
	}
	// Fill the queue, then one more remote: it cannot be asked for, and
	// must not evict the primed entry even if it hashes to the same slot.
	for i := 0; len(l.req) < localAddrQueue; i++ {
		l.lookup(now, spoofed(i))
	}
	for i := 0; i < 1000; i++ {
		l.lookup(now, spoofed(10000+i))
	}
	if got := l.lookup(now, primed); got != resolvedAddr {
		t.Errorf("primed remote evicted by remotes that could not be queued: %v", got)
	}
	queued := l.used()
	for len(l.req) > 0 { // empty the queue: misses can be asked for again
		<-l.req
	}
	for i := 0; i < 1000; i++ {
		l.lookup(now, spoofed(20000+i))
	}
	if got := l.lookup(now, primed); got != resolvedAddr {
		t.Errorf("primed remote evicted by a flood of other remotes: %v", got)
	}
	if l.used() <= queued {
		t.Errorf("no slot taken by the flood once the queue had room")
	}

	l.start()
	defer l.close()
	late := netip.MustParseAddrPort("203.0.113.9:4000")
	waitFor(t, func() bool { return l.lookup(now, late) == resolvedAddr })

	// Past the TTL, the old answer is still used while a new one is asked.
	calls := r.calls.Load()
	later := now.Add(localAddrTTL + time.Second)
	if got := l.lookup(later, primed); got != resolvedAddr {
		t.Errorf("stale answer not used meanwhile: %v", got)
	}
	waitFor(t, func() bool { return r.calls.Load() > calls })
}

// waitFor waits until cond holds, for at most 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		runtime.Gosched()
	}
}
