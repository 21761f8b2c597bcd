package tunnel

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/peer-vpn/peer/noise"
)

// innerTap counts the plaintext packets and datagrams it is shown.
type innerTap struct {
	recordingTap
	inner atomic.Int64
}

func (t *innerTap) Inner(time.Time, bool, string, []byte) { t.inner.Add(1) }

func TestSetTapWhileRunning(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	alpha, beta := m.nodes["alpha"], m.nodes["beta"]
	m.pass("alpha", "beta", ipv4UDP("10.10.0.1", "10.10.0.2", []byte("untapped")))
	tap := new(innerTap)
	alpha.dev.SetTap(tap)
	m.pass("alpha", "beta", ipv4UDP("10.10.0.1", "10.10.0.2", []byte("tapped out")))
	m.pass("beta", "alpha", ipv4UDP("10.10.0.2", "10.10.0.1", []byte("tapped in")))
	waitFor(t, "the tap to see both directions", func() bool {
		tap.mu.Lock()
		out := tap.outTo[beta.addr]
		tap.mu.Unlock()
		return tap.inner.Load() == 2 && out >= 1 && tap.count(beta.addr, noise.MessageTransportType) >= 1
	})
	alpha.dev.SetTap(nil)
	before := tap.inner.Load()
	m.pass("alpha", "beta", ipv4UDP("10.10.0.1", "10.10.0.2", []byte("untapped again")))
	m.pass("beta", "alpha", ipv4UDP("10.10.0.2", "10.10.0.1", []byte("untapped again")))
	if n := tap.inner.Load(); n != before {
		t.Fatalf("a removed tap saw %d more packets", n-before)
	}
}

func TestSetMTUChangesPadding(t *testing.T) {
	m := newMesh(t, nil,
		nodeSpec{name: "alpha", prefixes: []string{"10.10.0.1/32"}},
		nodeSpec{name: "beta", prefixes: []string{"10.10.0.2/32"}},
	)
	var mu sync.Mutex
	var last int
	m.net.SetFilter(func(src, dst netip.AddrPort, b []byte) bool {
		if typ, _ := noise.Type(b); typ == noise.MessageTransportType && len(b) > noise.MessageKeepaliveSize {
			mu.Lock()
			last = len(b)
			mu.Unlock()
		}
		return true
	})
	sent := func() int {
		mu.Lock()
		defer mu.Unlock()
		return last
	}
	// 1401 bytes are padded to 1408 under an MTU of 1420, to 1402 under 1402.
	pkt := ipv4UDP("10.10.0.1", "10.10.0.2", make([]byte, 1401-28))
	m.pass("alpha", "beta", pkt)
	if got, want := sent(), noise.MessageTransportHeaderSize+1408+16; got != want {
		t.Fatalf("transport message of %d bytes under MTU 1420, want %d", got, want)
	}
	m.nodes["alpha"].dev.SetMTU(1402)
	m.pass("alpha", "beta", pkt)
	if got, want := sent(), noise.MessageTransportHeaderSize+1402+16; got != want {
		t.Fatalf("transport message of %d bytes under MTU 1402, want %d", got, want)
	}
	if mtu := m.nodes["alpha"].dev.Status().MTU; mtu != 1402 {
		t.Fatalf("status says MTU %d, want 1402", mtu)
	}
}
