package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/control"
	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/tunnel"
)

// Live captures are tested on a node run in memory with the fake device:
// the test plays the data path, handing the device's tap packets, and reads
// what `peer capture` (the real command) writes.

// liveClient is `peer capture` running against n.
type liveClient struct {
	out, errb syncBuffer
	done      chan int
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
func (s *syncBuffer) String() string { return string(s.Bytes()) }

func startCapture(t *testing.T, n *runningNode, args ...string) *liveClient {
	t.Helper()
	c := &liveClient{done: make(chan int, 1)}
	go func() {
		c.done <- run(append([]string{"capture", "-socket", n.socket, "-w", "-"}, args...), strings.NewReader(""), &c.out, &c.errb)
	}()
	return c
}

func (c *liveClient) wait(t *testing.T) {
	t.Helper()
	select {
	case code := <-c.done:
		if code != 0 {
			t.Fatalf("peer capture exit %d: %s", code, c.errb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("peer capture still running after 10 s: %s", c.errb.String())
	}
}

// waitLive waits until the node has want live captures.
func waitLive(t *testing.T, n *runningNode, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got := strings.Count(n.logs.String(), "live capture started") - strings.Count(n.logs.String(), "live capture ended"); got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d live captures:\n%s", want, n.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (d *fakeDevice) currentTap() tunnel.Tap { d.mu.Lock(); defer d.mu.Unlock(); return d.tap }

// feed hands the device's tap one packet to peer and its answer.
func feed(n *runningNode, peer string, seq int) {
	tap := n.fake.currentTap()
	if tap == nil {
		return
	}
	now := time.Now()
	payload := []byte{byte(seq >> 8), byte(seq)}
	tap.Inner(now, tunnel.Outbound, peer, tuntest.IPv4UDP("10.10.0.1", peerAddr[peer], payload))
	tap.Inner(now, tunnel.Inbound, peer, tuntest.IPv4UDP(peerAddr[peer], "10.10.0.1", payload))
}

var peerAddr = map[string]string{"beta": "10.10.0.2", "gamma": "10.10.0.3"}

type livePacket struct {
	iface string
	data  []byte
}

func readStream(t *testing.T, b []byte) (pkts []livePacket, dropped uint64) {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.NgReaderOptions{
		StatisticsCallback: func(_ int, s pcapgo.NgInterfaceStatistics) { dropped += s.PacketsDropped },
	})
	if err != nil {
		t.Fatalf("not pcapng (%d bytes): %v", len(b), err)
	}
	for {
		data, ci, err := r.ReadPacketData()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		i, _ := r.Interface(ci.InterfaceIndex)
		pkts = append(pkts, livePacket{iface: i.Name, data: data})
	}
	return pkts, dropped
}

func TestLiveCapture(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma")
	m.write(t, "", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24", "gamma 10.10.0.3/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	if n.fake.currentTap() != nil {
		t.Fatal("a node started without capture flags has a tap")
	}

	all := startCapture(t, n, "-c", "6")
	onlyGamma := startCapture(t, n, "-peer", "gamma", "-c", "2")
	waitLive(t, n, 2)
	if _, ok := n.fake.currentTap().(multiTap); !ok {
		t.Fatalf("two captures: the device's tap is %T, want the fan-out", n.fake.currentTap())
	}
	feed(n, "beta", 1)
	feed(n, "beta", 2)
	feed(n, "gamma", 3)
	all.wait(t)
	onlyGamma.wait(t)
	waitLive(t, n, 0)
	if tap := n.fake.currentTap(); tap != nil {
		t.Errorf("after both captures ended the device still has tap %T", tap)
	}

	pkts, _ := readStream(t, all.out.Bytes())
	var got []string
	for _, p := range pkts {
		got = append(got, p.iface)
	}
	if want := "tun→beta beta→tun tun→beta beta→tun tun→gamma gamma→tun"; strings.Join(got, " ") != want {
		t.Errorf("capture of all: interfaces %q, want %q", strings.Join(got, " "), want)
	}
	if !strings.Contains(all.errb.String(), "6 packets") {
		t.Errorf("client's stderr %q, want the packet count", all.errb.String())
	}
	pkts, _ = readStream(t, onlyGamma.out.Bytes())
	if len(pkts) != 2 || pkts[0].iface != "tun→gamma" || pkts[1].iface != "gamma→tun" {
		t.Errorf("-peer gamma: %d packets %+v, want gamma's request and reply", len(pkts), pkts)
	}
	if !strings.Contains(n.logs.String(), "live capture ended") {
		t.Errorf("node did not log the end of the captures:\n%s", n.logs)
	}
}

// TestLiveCaptureBesidePcap: a live capture and a -pcap capture share the
// data path, and a reload that replaces the -pcap tap keeps the live one.
func TestLiveCaptureBesidePcap(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	pcap := m.dir + "/cap.pcapng"
	m.write(t, "capture:\n  pcap: "+pcap+"\n", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	c := startCapture(t, n, "-c", "4")
	waitLive(t, n, 1)
	feed(n, "beta", 1)
	m.write(t, "capture:\n  pcap: "+pcap+"\n  max_size: 1000000\n", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24")
	if code, _, errOut := n.reload(); code != 0 {
		t.Fatalf("reload: exit %d, %s", code, errOut)
	}
	mt, ok := n.fake.currentTap().(multiTap)
	if !ok || len(mt) != 2 {
		t.Fatalf("after the reload the device's tap is %T %v, want the new -pcap tap and the live one", n.fake.currentTap(), mt)
	}
	feed(n, "beta", 2)
	c.wait(t)
	if pkts, _ := readStream(t, c.out.Bytes()); len(pkts) != 4 {
		t.Errorf("live capture across a reload: %d packets, want 4", len(pkts))
	}
	if _, ok := n.fake.currentTap().(*tap); !ok {
		t.Errorf("after the live capture ended the device's tap is %T, want the -pcap tap alone", n.fake.currentTap())
	}
}

// TestLiveCaptureClientGone: a client that disappears (its connection
// closed without a word) ends its capture on the node; drops of a client
// that does not read are counted, and the producer never waits.
func TestLiveCaptureClientGone(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	m.write(t, "", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := control.OpenStream(ctx, n.socket, control.RequestCapture, "{}")
	if err != nil {
		t.Fatal(err)
	}
	waitLive(t, n, 1)
	// Nobody reads: the socket buffers fill, then the writer's queue,
	// then packets are dropped, without feed ever blocking.
	start := time.Now()
	for i := 0; i < 20000; i++ {
		feed(n, "beta", i)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("feeding a capture nobody reads took %v", d)
	}
	st.Close() // killed
	waitLive(t, n, 0)
	if n.fake.currentTap() != nil {
		t.Errorf("the tap of a gone client is still in place: %T", n.fake.currentTap())
	}
	if !regexp.MustCompile(`live capture ended.* dropped=[1-9]`).MatchString(n.logs.String()) {
		t.Errorf("the end of a capture nobody read does not count its drops:\n%s", n.logs)
	}
	if code, _, errOut := runCmd(t, "", "status", "-socket", n.socket); code != 0 {
		t.Errorf("status after a killed capture: exit %d, %s", code, errOut)
	}
}

func TestLiveCaptureRefused(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	m.write(t, "", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-peer", "zeta"}, 1, `no peer "zeta"`},
		{[]string{"-keys"}, 2, "-keys needs -outer"},
		{[]string{"-c", "-1"}, 2, "-c must not be negative"},
	} {
		code, _, errOut := runCmd(t, "", append([]string{"capture", "-socket", n.socket, "-w", "-"}, tc.args...)...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("capture %v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
	if code, _, errOut := runCmd(t, "", "capture", "-socket", n.socket); code != 2 || !strings.Contains(errOut, "-w") {
		t.Errorf("capture without -w: exit %d, %q", code, errOut)
	}
}

// TestLiveCaptureKeys: -keys is said on the client's stderr and in the
// node's log, and carries the static key once a handshake is seen.
func TestLiveCaptureKeys(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	m.write(t, "", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	c := startCapture(t, n, "-outer", "-keys", "-c", "1")
	waitLive(t, n, 1)
	var eph keys.Private
	n.fake.currentTap().EphemeralKey("beta", keys.Public{}, keys.Preshared{}, eph)
	feed(n, "beta", 1)
	c.wait(t)
	if !strings.Contains(c.errb.String(), "PRIVATE KEY") {
		t.Errorf("client's stderr has no warning: %q", c.errb.String())
	}
	if !strings.Contains(n.logs.String(), "PRIVATE KEY") {
		t.Errorf("node's log has no warning:\n%s", n.logs)
	}
	if !bytes.Contains(c.out.Bytes(), []byte("LOCAL_STATIC_PRIVATE_KEY = ")) {
		t.Error("no key log in the stream")
	}
}

// TestLiveCapturesDropped: the node-wide counter sums the drops of the
// running captures and keeps those of the ended ones.
func TestLiveCapturesDropped(t *testing.T) {
	var mu sync.Mutex
	var cur tunnel.Tap
	fan := newTapFanout(func(t tunnel.Tap) { mu.Lock(); cur = t; mu.Unlock() }, nil)
	lc := newLiveCaptures(fan, func() *config.Node { return &config.Node{} }, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	node, client := net.Pipe() // synchronous: nobody reads, every write blocks
	done := make(chan struct{})
	go func() { lc.serve(node, &config.Node{}, captureRequest{}, nil); close(done) }()
	var tp tunnel.Tap
	for deadline := time.Now().Add(5 * time.Second); tp == nil && time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		mu.Lock()
		tp = cur
		mu.Unlock()
	}
	if tp == nil {
		t.Fatal("the live capture never reached the device")
	}
	pkt := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{1})
	for i := 0; i < 10000; i++ {
		tp.Inner(time.Now(), tunnel.Outbound, "beta", pkt)
	}
	running := lc.Dropped()
	if running == 0 {
		t.Fatal("no drops counted for a client that never reads")
	}
	client.Close()
	<-done
	if got := lc.Dropped(); got < running {
		t.Errorf("Dropped() went from %d to %d when the capture ended", running, got)
	}
	if got := captureDropped(nil, lc)(); got != lc.Dropped() {
		t.Errorf("node-wide capture drops %d, want the live ones (%d): no -pcap here", got, lc.Dropped())
	}
	if lc.Running() != 0 {
		t.Errorf("%d captures running after the client left", lc.Running())
	}
}

// TestLiveCaptureLimit: a node serves at most maxLiveCaptures at once.
func TestLiveCaptureLimit(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	m.write(t, "", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < maxLiveCaptures; i++ {
		st, err := control.OpenStream(ctx, n.socket, control.RequestCapture, "{}")
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		waitLive(t, n, i+1)
	}
	if _, err := control.OpenStream(ctx, n.socket, control.RequestCapture, "{}"); err == nil || !strings.Contains(err.Error(), "live captures are running") {
		t.Errorf("capture beyond the limit: %v, want refused", err)
	}
}

// TestLiveCaptureNodeStops: a node that stops ends its live captures in
// order: the client gets the whole stream, statistics included, and exits 0.
func TestLiveCaptureNodeStops(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	m.write(t, "", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	c := startCapture(t, n)
	waitLive(t, n, 1)
	feed(n, "beta", 1)
	n.stop()
	c.wait(t)
	pkts, _ := readStream(t, c.out.Bytes())
	if len(pkts) != 2 {
		t.Errorf("%d packets, want 2", len(pkts))
	}
	b := c.out.Bytes()
	last := int(binary.LittleEndian.Uint32(b[len(b)-4:])) // a block ends with its length
	if last > len(b) || binary.LittleEndian.Uint32(b[len(b)-last:]) != 5 {
		t.Error("the stream does not end with an interface statistics block")
	}
}
