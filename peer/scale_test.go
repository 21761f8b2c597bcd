package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/tunnel"
	"github.com/peer-vpn/peer/udp/udptest"
)

// bigMesh writes a mesh file of n peers with 10 prefixes each (its address
// and 9 subnets) and returns its path and the key file of peer 0.
func bigMesh(tb testing.TB, n int) (meshPath, keyPath string) {
	tb.Helper()
	dir := tb.TempDir()
	var b strings.Builder
	b.WriteString("peers:\n")
	var self keys.Private
	for i := 0; i < n; i++ {
		k, err := keys.NewPrivate()
		if err != nil {
			tb.Fatal(err)
		}
		if i == 0 {
			self = k
		}
		hi, lo := byte(i>>8), byte(i)
		fmt.Fprintf(&b, "  - name: p%d\n    public_key: %q\n    address: 10.%d.%d.1/32\n    subnets: [", i, k.Public(), hi, lo)
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "172.%d.%d.%d/28", 16+j, i>>4, (i&15)<<4)
		}
		fmt.Fprintf(&b, "]\n    endpoint: 198.51.100.%d:%d\n", i%250+1, 20000+i)
	}
	meshPath = filepath.Join(dir, "mesh.yaml")
	keyPath = filepath.Join(dir, "key")
	if err := os.WriteFile(meshPath, []byte(b.String()), 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(self.Base64()+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return meshPath, keyPath
}

// loadAndStart does what `peer -config` does before touching the system:
// parse, validate, find itself, and build the device with every peer.
func loadAndStart(tb testing.TB, meshPath, keyPath string) *tunnel.Device {
	node, err := (&nodeFlags{config: meshPath, key: keyPath}).load()
	if err != nil {
		tb.Fatal(err)
	}
	peers := peerConfigs(node)
	conn, err := udptest.NewNetwork().Listen(netip.MustParseAddrPort("192.0.2.1:51820"))
	if err != nil {
		tb.Fatal(err)
	}
	dev, err := tunnel.New(tunnel.Config{Private: node.Private, Peers: peers, TUN: tuntest.NewMemory("scale", 1420, 1), Conn: conn})
	if err != nil {
		tb.Fatal(err)
	}
	return dev
}

// BenchmarkLoadAndStart1000Peers: a mesh of 1,000 peers and 10,000 prefixes
// must load and start in well under a second (the ns/op is that time).
func BenchmarkLoadAndStart1000Peers(b *testing.B) {
	meshPath, keyPath := bigMesh(b, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dev := loadAndStart(b, meshPath, keyPath)
		b.StopTimer()
		dev.Close()
		b.StartTimer()
	}
}

// BenchmarkIdlePeerMemory reports the heap bytes one idle peer entry costs
// (config, handshake state, timers, counters, 10 prefixes in the table).
func BenchmarkIdlePeerMemory(b *testing.B) {
	meshPath, keyPath := bigMesh(b, 1000)
	var devs []*tunnel.Device
	var before, after runtime.MemStats
	for i := 0; i < b.N; i++ {
		runtime.GC()
		runtime.ReadMemStats(&before)
		dev := loadAndStart(b, meshPath, keyPath)
		runtime.GC()
		runtime.ReadMemStats(&after)
		devs = append(devs, dev)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/999, "B/peer")
	}
	for _, d := range devs {
		d.Close()
	}
}

// TestLoadAndStartScale checks that the big mesh is accepted and the
// device routes to its last peer; the timing goal is the benchmark's, this
// only guards against an accidental quadratic blow-up with a loose bound.
func TestLoadAndStartScale(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	meshPath, keyPath := bigMesh(t, 1000)
	start := time.Now()
	dev := loadAndStart(t, meshPath, keyPath)
	defer dev.Close()
	took := time.Since(start)
	t.Logf("1000 peers, 10000 prefixes: loaded and started in %v", took)
	if got, want := dev.PeerEndpoint("p999"), netip.MustParseAddrPort("198.51.100.250:20999"); got != want {
		t.Fatalf("last peer's endpoint is %v, want %v", got, want)
	}
	if took > 30*time.Second {
		t.Fatalf("loading 1000 peers took %v", took)
	}
}
