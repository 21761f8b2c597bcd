package tunnel

import (
	"net/netip"
	"testing"
	"time"

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
	msg := func(typ uint32, n int) *udp.Message {
		b := make([]byte, bufSize)
		b[0] = byte(typ)
		return &udp.Message{Buf: b, N: n, Addr: src}
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
		a.queueHandshake(tc.typ, msg(tc.typ, tc.n), now)
		if len(a.handshakes) != 0 || a.drops[DropMalformed].Load() != before+1 {
			t.Fatalf("type %d of %d bytes: queued %d, malformed drops %d", tc.typ, tc.n, len(a.handshakes), a.drops[DropMalformed].Load()-before)
		}
	}
	init := msg(noise.MessageInitiationType, noise.MessageInitiationSize)
	if allocs := testing.AllocsPerRun(1000, func() {
		a.queueHandshake(noise.MessageInitiationType, init, now)
		<-a.handshakes
	}); allocs != 0 {
		t.Fatalf("queuing a handshake message: %v allocations", allocs)
	}
	for i := 0; i < handshakeQueueLen+10; i++ {
		a.queueHandshake(noise.MessageInitiationType, init, now)
	}
	if n, full := len(a.handshakes), a.drops[DropHandshakeQueue].Load(); n != handshakeQueueLen || full != 10 {
		t.Fatalf("queue holds %d, %d dropped as full; want %d and 10", n, full, handshakeQueueLen)
	}
}
