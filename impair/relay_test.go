package impair

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

// testTimeout bounds every wait of these tests.
const testTimeout = 5 * time.Second

// endpoint is a loopback UDP socket that records what it receives.
type endpoint struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	from []netip.AddrPort
	at   []time.Time
}

func newEndpoint(t *testing.T) *endpoint {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(loopback))
	if err != nil {
		t.Fatal(err)
	}
	e := &endpoint{conn: c}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, MaxDatagramSize)
		for {
			n, src, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.got = append(e.got, slices.Clone(buf[:n]))
			e.from = append(e.from, src)
			e.at = append(e.at, time.Now())
			e.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return e
}

func (e *endpoint) addr() netip.AddrPort { return e.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (e *endpoint) count() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.got)
}

func (e *endpoint) send(t *testing.T, to netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := e.conn.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds or testTimeout passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func startRelay(t *testing.T, upstream netip.AddrPort, cfg Config) *Relay {
	t.Helper()
	r, err := Listen(loopback, upstream, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	t.Cleanup(func() {
		r.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

func TestRelayForwardsBothWaysAndCountsByType(t *testing.T) {
	up, client := newEndpoint(t), newEndpoint(t)
	r := startRelay(t, up.addr(), Config{})
	msgs := [][]byte{{1, 0, 0, 0, 'i'}, {2, 0, 0, 0}, {3}, {4, 0, 0, 0, 'd'}, {4, 'd'}, {9, 'x'}}
	for _, m := range msgs {
		client.send(t, r.Addr(), m)
	}
	waitFor(t, "datagrams at the upstream", func() bool { return up.count() == len(msgs) })
	for i, m := range msgs {
		if !slices.Equal(up.got[i], m) || up.from[i] != r.Addr() {
			t.Errorf("upstream got %v from %v, want %v from the relay %v", up.got[i], up.from[i], m, r.Addr())
		}
	}
	up.send(t, r.Addr(), []byte{4, 'r'})
	up.send(t, r.Addr(), []byte{2, 'r'})
	waitFor(t, "replies at the client", func() bool { return client.count() == 2 })
	if client.from[0] != r.Addr() || client.got[1][0] != 2 {
		t.Errorf("client got %v from %v", client.got, client.from)
	}
	st := r.Stats()
	want := map[string]uint64{"initiation": 1, "response": 1, "cookie": 1, "transport": 2, "other": 1, "all": 6}
	for k, n := range want {
		if c := st.ToUpstream[k]; c.Received != n || c.Sent != n {
			t.Errorf("to upstream %s: %+v, want %d received and sent", k, c, n)
		}
	}
	if st.FromUpstream["transport"].Sent != 1 || st.FromUpstream["response"].Sent != 1 || st.Total["all"].Sent != 8 {
		t.Errorf("from upstream %+v, total %+v", st.FromUpstream, st.Total["all"])
	}
	if st.Client != client.addr().String() || st.Upstream != up.addr().String() {
		t.Errorf("client %q upstream %q", st.Client, st.Upstream)
	}
}

// TestRelayFollowsLastClient: a node that roams (a new source address) gets
// the upstream's datagrams from then on.
func TestRelayFollowsLastClient(t *testing.T) {
	up, c1, c2 := newEndpoint(t), newEndpoint(t), newEndpoint(t)
	r := startRelay(t, up.addr(), Config{})
	up.send(t, r.Addr(), []byte{4, 0})
	waitFor(t, "the datagram without a client to be counted", func() bool { return r.Stats().NoClient == 1 })
	c1.send(t, r.Addr(), []byte{1})
	waitFor(t, "c1's datagram", func() bool { return up.count() == 1 })
	up.send(t, r.Addr(), []byte{4, 1})
	waitFor(t, "the reply to c1", func() bool { return c1.count() == 1 })
	c2.send(t, r.Addr(), []byte{1})
	waitFor(t, "c2's datagram", func() bool { return up.count() == 2 })
	up.send(t, r.Addr(), []byte{4, 2})
	waitFor(t, "the reply to c2", func() bool { return c2.count() == 1 })
	if c1.count() != 1 || c2.got[0][1] != 2 {
		t.Fatalf("c1 got %v, c2 got %v", c1.got, c2.got)
	}
}

func TestRelayDelay(t *testing.T) {
	const delay = 30 * time.Millisecond
	up, client := newEndpoint(t), newEndpoint(t)
	r := startRelay(t, up.addr(), Config{Delay: delay})
	sent := make([]time.Time, 5)
	for i := range sent {
		sent[i] = time.Now()
		client.send(t, r.Addr(), []byte{4, byte(i)})
	}
	waitFor(t, "delayed datagrams", func() bool { return up.count() == len(sent) })
	for i := range sent {
		if up.got[i][1] != byte(i) {
			t.Errorf("datagram %d arrived as %d: a fixed delay keeps the order", up.got[i][1], i)
		}
		if d := up.at[i].Sub(sent[i]); d < delay {
			t.Errorf("datagram %d took %v, want at least %v", i, d, delay)
		}
	}
}

// TestRelayImpairs sends numbered transport datagrams through a lossy,
// duplicating, reordering relay and checks the receiver's view against the
// relay's counters; a second run with the same seed loses the same ones.
func TestRelayImpairs(t *testing.T) {
	cfg := Config{Loss: 0.1, Duplicate: 0.05, Reorder: 8, ReorderShare: 0.25, Seed: 7}
	const n, batch = 2000, 50
	runOnce := func() (lost []uint32) {
		up, client := newEndpoint(t), newEndpoint(t)
		r := startRelay(t, up.addr(), cfg)
		for i := 0; i < n; i += batch {
			for j := i; j < i+batch; j++ {
				b := make([]byte, 32)
				b[0] = 4
				binary.LittleEndian.PutUint32(b[8:], uint32(j))
				client.send(t, r.Addr(), b)
			}
			// In batches, so no socket buffer overflows: every datagram
			// that left the relay must arrive.
			waitFor(t, "the batch", func() bool {
				c := r.Stats().ToUpstream["transport"]
				return c.Received == uint64(i+batch) && uint64(up.count()) == c.Sent
			})
		}
		// The last ones held back leave after MaxHold.
		var c Counters
		waitFor(t, "every datagram held back", func() bool {
			c = r.Stats().ToUpstream["transport"]
			return c.Sent+c.SendErrors == c.Received-c.Lost+c.Duplicated && uint64(up.count()) == c.Sent
		})
		if c.SendErrors != 0 {
			t.Fatalf("send errors: %+v", c)
		}
		seen := map[uint32]int{}
		var order []uint64
		up.mu.Lock()
		for _, b := range up.got {
			v := binary.LittleEndian.Uint32(b[8:])
			seen[v]++
			order = append(order, uint64(v))
		}
		up.mu.Unlock()
		var twice uint64
		for v := range uint32(n) {
			switch seen[v] {
			case 0:
				lost = append(lost, v)
			case 2:
				twice++
			}
		}
		if uint64(len(lost)) != c.Lost || twice != c.Duplicated {
			t.Fatalf("receiver: %d missing, %d twice; relay: %+v", len(lost), twice, c)
		}
		// A copy is a later arrival than its original in the relay's
		// numbering, so measure on first appearances only.
		var firsts []uint64
		first := map[uint64]bool{}
		for _, v := range order {
			if !first[v] {
				first[v] = true
				firsts = append(firsts, v)
			}
		}
		if most := slices.Max(displacements(firsts)); most > cfg.Reorder-1 {
			t.Errorf("a datagram overtaken by %d, window %d", most, cfg.Reorder)
		}
		if c.Lost == 0 || c.Duplicated == 0 || c.Reordered == 0 {
			t.Errorf("nothing happened: %+v", c)
		}
		return lost
	}
	a, b := runOnce(), runOnce()
	if !slices.Equal(a, b) {
		t.Errorf("one seed, two runs: %d and %d lost, not the same ones", len(a), len(b))
	}
}

func TestRelayCloseEndsRun(t *testing.T) {
	r, err := Listen(loopback, netip.MustParseAddrPort("127.0.0.1:9"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	r.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after Close: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Run did not return after Close")
	}
}

// TestRelayCloseSendsWhatIsHeld: Close carries out every decision counted,
// so the counters add up exactly afterwards.
func TestRelayCloseSendsWhatIsHeld(t *testing.T) {
	up, client := newEndpoint(t), newEndpoint(t)
	r, err := Listen(loopback, up.addr(), Config{Duplicate: 0.5, Reorder: 4, ReorderShare: 1, MaxHold: MaxDelay, Delay: MaxDelay, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- r.Run() }()
	for i := range 20 {
		client.send(t, r.Addr(), []byte{4, byte(i)})
	}
	waitFor(t, "the relay to take them", func() bool { return r.Stats().ToUpstream["all"].Received == 20 })
	if up.count() != 0 {
		t.Fatal("sent before the hold and the delay")
	}
	r.Close()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	c := r.Stats().ToUpstream["all"]
	if c.Duplicated == 0 || c.Sent != 20+c.Duplicated {
		t.Fatalf("after Close: %+v", c)
	}
	waitFor(t, "every datagram at the upstream", func() bool { return uint64(up.count()) == c.Sent })
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestListenRefusesBadConfig(t *testing.T) {
	if _, err := Listen(loopback, netip.AddrPort{}, Config{}); err == nil {
		t.Error("no upstream accepted")
	}
	if _, err := Listen(loopback, netip.MustParseAddrPort("127.0.0.1:9"), Config{Loss: 2}); err == nil {
		t.Error("loss 2 accepted")
	}
	_, err := Listen(netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("127.0.0.1:9"), Config{})
	if err == nil {
		t.Error("listening on an address not ours succeeded")
	}
}
