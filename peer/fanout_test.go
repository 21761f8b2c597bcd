package main

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/tunnel"
)

// countTap counts the packets it is handed.
type countTap struct {
	mu               sync.Mutex
	inner, outer, ek int
}

func (c *countTap) Inner(time.Time, tunnel.Direction, string, []byte) {
	c.mu.Lock()
	c.inner++
	c.mu.Unlock()
}
func (c *countTap) Outer(time.Time, tunnel.Direction, netip.AddrPort, netip.AddrPort, []byte) {
	c.mu.Lock()
	c.outer++
	c.mu.Unlock()
}
func (c *countTap) EphemeralKey(string, keys.Public, keys.Preshared, keys.Private) {
	c.mu.Lock()
	c.ek++
	c.mu.Unlock()
}

func TestTapFanout(t *testing.T) {
	var cur tunnel.Tap
	calls := 0
	pcap := &countTap{}
	f := newTapFanout(func(t tunnel.Tap) { cur = t; calls++ }, pcap)
	a, b := &countTap{}, &countTap{}
	removeA := f.add(a)
	if mt, ok := cur.(multiTap); !ok || len(mt) != 2 {
		t.Fatalf("-pcap and one live capture: device tap %T %v", cur, cur)
	}
	removeB := f.add(b)
	cur.Inner(time.Now(), tunnel.Outbound, "beta", nil)
	cur.Outer(time.Now(), tunnel.Outbound, netip.AddrPort{}, netip.AddrPort{}, nil)
	cur.EphemeralKey("beta", keys.Public{}, keys.Preshared{}, keys.Private{})
	for name, c := range map[string]*countTap{"pcap": pcap, "a": a, "b": b} {
		if c.inner != 1 || c.outer != 1 || c.ek != 1 {
			t.Errorf("%s saw %d/%d/%d, want each once", name, c.inner, c.outer, c.ek)
		}
	}
	// A reload replaces only the -pcap member.
	pcap2 := &countTap{}
	f.SetPcap(pcap2)
	if mt := cur.(multiTap); len(mt) != 3 || mt[0] != pcap2 || mt[1] != a || mt[2] != b {
		t.Errorf("after SetPcap: %v", mt)
	}
	removeA()
	removeA() // twice is harmless
	f.SetPcap(nil)
	if cur != b {
		t.Errorf("one tap left: device tap %T, want it alone", cur)
	}
	removeB()
	if cur != nil {
		t.Errorf("no tap left: device tap %T, want nil", cur)
	}
}
