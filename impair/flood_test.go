package impair

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
)

// TestFlood floods a loopback target: the counts and the rate are kept, every
// initiation has a valid mac1 for the target and decrypts to a static key
// the target does not know, and replies are counted.
func TestFlood(t *testing.T) {
	priv, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	target := newEndpoint(t)
	src, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// A reply waiting on the flood's socket, as a target under load would send.
	reply := make([]byte, noise.MessageCookieReplySize)
	reply[0] = noise.MessageCookieReplyType
	target.send(t, src.LocalAddr().(*net.UDPAddr).AddrPort(), reply)

	cfg := FloodConfig{Target: target.addr(), TargetKey: priv.Public(), Garbage: 800, Initiations: 200, Rate: 10_000, Seed: 1}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	res, err := Flood(ctx, src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Garbage != 800 || res.Initiations != 200 || res.SendErrors != 0 {
		t.Fatalf("sent %+v", res)
	}
	if res.Replies["cookie"] != 1 || len(res.Replies) != 1 {
		t.Errorf("replies %v, want the one cookie reply", res.Replies)
	}
	// 1000 datagrams at 10,000/s, paced in bursts of DefaultFloodBurst.
	if min := float64(1000-DefaultFloodBurst) / 10_000; res.Seconds < min {
		t.Errorf("took %.3fs, want at least %.3fs at the rate asked for", res.Seconds, min)
	}
	// Flood lingered for replies; what the target has by now is what
	// arrived (loopback may drop some when the reader falls behind, so the
	// exact counts are the sender's, checked above).
	waitFor(t, "the flood to arrive", func() bool { return target.count() > 0 })

	checker := noise.NewCookieChecker(priv.Public())
	local := noise.NewLocal(priv)
	var inits, garbage int
	target.mu.Lock()
	defer target.mu.Unlock()
	for _, b := range target.got {
		if len(b) == noise.MessageInitiationSize && b[0] == noise.MessageInitiationType {
			inits++
			if !checker.CheckMAC1(b) {
				t.Fatal("initiation with a bad mac1")
			}
			var m noise.Initiation
			if err := m.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			_, err := local.ConsumeInitiation(&m, time.Now(), func(keys.Public) *noise.Handshake { return nil })
			if !errors.Is(err, noise.ErrUnknownPeer) {
				t.Fatalf("initiation consumed with %v, want %v", err, noise.ErrUnknownPeer)
			}
			continue
		}
		if len(b) < 1 || len(b) > MaxGarbageSize {
			t.Fatalf("garbage of %d bytes", len(b))
		}
		garbage++
	}
	if inits > 200 || garbage > 800 || inits == 0 || garbage == 0 {
		t.Errorf("target got %d initiations and %d garbage datagrams", inits, garbage)
	}
}

func TestFloodLimits(t *testing.T) {
	pub := keys.Public{1}
	dst := netip.MustParseAddrPort("127.0.0.1:9")
	for _, cfg := range []FloodConfig{
		{Garbage: 1, Rate: 1},
		{Target: dst, Garbage: -1, Rate: 1},
		{Target: dst, Garbage: MaxFloodDatagrams, Initiations: 1, TargetKey: pub, Rate: 1},
		{Target: dst, Initiations: 1, Rate: 1},
		{Target: dst, Garbage: 1, Rate: 0},
		{Target: dst, Garbage: 1, Rate: MaxFloodRate + 1},
		{Target: dst, Garbage: 1, Rate: 1, Burst: -1},
		{Target: dst, Garbage: 1, Rate: 1, Burst: MaxFloodBurst + 1},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) accepted it", cfg)
		}
	}
	ok := FloodConfig{Target: dst, Garbage: 10, Initiations: 10, TargetKey: pub, Rate: 1000}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v): %v", ok, err)
	}
}

func TestFloodStopsWithContext(t *testing.T) {
	target := newEndpoint(t)
	src, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Flood(ctx, src, FloodConfig{Target: target.addr(), Garbage: 1_000_000, Rate: 1000})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Flood = %v, want the context's error", err)
	}
	if time.Since(start) > testTimeout || res.Garbage >= 1_000_000 {
		t.Fatalf("did not stop: %+v", res)
	}
}

// TestFloodBurst: the pauses come between bursts, so the average rate holds.
func TestFloodBurst(t *testing.T) {
	target := newEndpoint(t)
	src, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	// 3 bursts of 100 at 1000/s: the second starts at 100 ms, the third at 200 ms.
	res, err := Flood(ctx, src, FloodConfig{Target: target.addr(), Garbage: 300, Rate: 1000, Burst: 100})
	if err != nil {
		t.Fatal(err)
	}
	if res.Garbage != 300 || res.Seconds < 0.2 || res.Seconds > 0.2+testTimeout.Seconds()/2 {
		t.Fatalf("%+v", res)
	}
}
