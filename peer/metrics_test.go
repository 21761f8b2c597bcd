package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/tunnel"
)

// TestMetricsFlagRefusals: -metrics that would listen on every interface
// by accident, or is no address at all, is a usage error (exit 2) before
// the mesh file is even read.
func TestMetricsFlagRefusals(t *testing.T) {
	for _, tc := range []struct{ addr, want string }{
		{":9586", `-metrics ":9586" has no host, which would listen on every interface; write 127.0.0.1:9586 (this host only) or an explicit address`},
		{"localhost:9586", "the host must be an IP address, not a name"},
		{"9586", "is not HOST:PORT"},
	} {
		code, _, errOut := runCmd(t, "", "-config", "/nonexistent/mesh.yaml", "-metrics", tc.addr)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("-metrics %s: exit %d, stderr %q\nwant %q", tc.addr, code, errOut, tc.want)
		}
	}
	code, _, errOut := runCmd(t, "", "-h")
	if code != 0 || !strings.Contains(errOut, "-metrics ADDR") || !strings.Contains(errOut, "written out (0.0.0.0:9586, [::]:9586)") {
		t.Errorf("-h does not show -metrics: %q", errOut)
	}
}

// freePort is a TCP port of 127.0.0.1 free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

func scrape(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %v", resp.Status, err)
	}
	return string(b)
}

// TestMetricsFollowReloads runs a node with the real tunnel and metrics:
// in its mesh file. Every peer has its series, zeros included; a reload
// that removes gamma, adds delta and renames beta shows at the next scrape;
// a changed metrics address needs a restart.
func TestMetricsFollowReloads(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	addr := "127.0.0.1:" + freePort(t)
	head := "metrics: " + addr + "\n"
	m.write(t, head,
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 endpoint=192.0.2.2:51820",
		"gamma 10.10.0.3/24 endpoint=192.0.2.3:51820")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{real: true})
	text := scrape(t, addr)
	for _, want := range []string{
		`peer_rx_bytes_total{peer="beta"} 0`,
		`peer_tx_packets_total{peer="gamma"} 0`,
		`peer_up{peer="beta"} 0`,
		`peer_handshakes_total{peer="gamma",result="timeout"} 0`,
		`peer_last_handshake_timestamp_seconds{peer="beta"} 0`,
		`peer_drops_total{peer="",reason="no_route"} 0`,
		`peer_drops_total{peer="beta",reason="replay"} 0`,
		"peer_capture_dropped_total 0",
		`peer_reloads_total{result="reloaded"} 0`,
		`peer_reloads_total{result="refused"} 0`,
		"peer_last_reload_successful 1",
		"# TYPE go_goroutines gauge",
		"# TYPE process_open_fds gauge",
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// A packet to no peer counts as a device-level drop.
	n.tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.99.0.9", []byte("nowhere")))
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(scrape(t, addr), `peer_drops_total{peer="",reason="no_route"} 1`+"\n") {
		if time.Now().After(deadline) {
			t.Fatal("no_route drop not shown")
		}
		time.Sleep(10 * time.Millisecond)
	}

	m.keys["beta-2"] = m.keys["beta"]
	m.write(t, head,
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta-2 10.10.0.2/24 endpoint=192.0.2.2:51820",
		"delta 10.10.0.4/24 endpoint=192.0.2.4:51820")
	if code, out, errOut := n.reload(); code != 0 {
		t.Fatalf("reload: exit %d, %q, %q", code, out, errOut)
	}
	text = scrape(t, addr)
	for _, gone := range []string{`peer="gamma"`, `peer="beta"`} {
		if strings.Contains(text, gone) {
			t.Errorf("/metrics still shows %s after the reload", gone)
		}
	}
	for _, want := range []string{`peer_rx_bytes_total{peer="beta-2"} 0`, `peer_up{peer="delta"} 0`,
		`peer_reloads_total{result="reloaded"} 1`, "peer_last_reload_successful 1"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q after the reload", want)
		}
	}

	m.write(t, "metrics: 127.0.0.1:"+freePort(t)+"\n",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820")
	code, _, errOut := n.reload()
	if code != 2 || !strings.Contains(errOut, m.path()+":1: metrics address") || !strings.Contains(errOut, "restart peer to apply it") {
		t.Errorf("changed metrics address: exit %d, stderr %q", code, errOut)
	}
	text = scrape(t, addr)
	for _, want := range []string{`peer_reloads_total{result="refused"} 1`, "peer_last_reload_successful 0"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics lacks %q after a refused reload", want)
		}
	}
	if strings.Contains(text, "peer_etcd_connected") || strings.Contains(text, "peer_mesh_revision") {
		t.Error("/metrics shows etcd series for a mesh file")
	}
	if v := metricValue(t, text, "peer_last_reload_success_timestamp_seconds"); v == "" || v == "0" {
		t.Errorf("peer_last_reload_success_timestamp_seconds %q", v)
	}
	n.stop()
	if _, err := http.Get("http://" + addr + "/metrics"); err == nil {
		t.Error("metrics still served after the node stopped")
	}
}

// TestMetricsFlagOverridesFile: -metrics replaces the mesh file's
// address, and a reload then ignores the file's.
func TestMetricsFlagOverridesFile(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	m.write(t, "metrics: 127.0.0.1:"+freePort(t)+"\n", "alpha 10.10.0.1/24", "beta 10.10.0.2/24")
	addr := "127.0.0.1:" + freePort(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{args: []string{"-metrics", addr}})
	if text := scrape(t, addr); !strings.Contains(text, "peer_capture_dropped_total 0\n") {
		t.Errorf("/metrics at -metrics %s:\n%s", addr, text)
	}
	m.write(t, "metrics: 127.0.0.1:"+freePort(t)+"\n", "alpha 10.10.0.1/24", "beta 10.10.0.2/24 keepalive=5s")
	if code, out, errOut := n.reload(); code != 0 || out != "updated peers: beta\n" {
		t.Errorf("reload: exit %d, %q, %q", code, out, errOut)
	}
}

func TestSnapshotOf(t *testing.T) {
	hs := time.Unix(1_700_000_000, 0)
	s := snapshotOf(tunnel.Status{
		Drops: map[string]uint64{"no_route": 3},
		Peers: []tunnel.PeerStatus{{
			Name: "beta", RxBytes: 1, RxPackets: 2, TxBytes: 3, TxPackets: 4, LastHandshake: hs,
			Drops: map[string]uint64{"replay": 5}, Session: true,
			Handshakes: tunnel.HandshakeCounts{CompletedInitiator: 6, CompletedResponder: 7, Failed: 8, Timeout: 9},
		}},
	})
	if len(s.Drops) != len(tunnel.DeviceDropReasons()) || s.Drops["no_route"] != 3 || s.Drops["bad_mac"] != 0 {
		t.Errorf("device drops %v", s.Drops)
	}
	p := s.Peers[0]
	if p.Name != "beta" || p.RxBytes != 1 || p.RxPackets != 2 || p.TxBytes != 3 || p.TxPackets != 4 || !p.Up || !p.LastHandshake.Equal(hs) {
		t.Errorf("peer %+v", p)
	}
	if len(p.Drops) != len(tunnel.PeerDropReasons()) || p.Drops["replay"] != 5 || p.Drops["decrypt"] != 0 {
		t.Errorf("peer drops %v", p.Drops)
	}
	want := map[string]uint64{"completed_initiator": 6, "completed_responder": 7, "failed": 8, "timeout": 9}
	for k, v := range want {
		if p.Handshakes[k] != v {
			t.Errorf("handshakes %v, want %v", p.Handshakes, want)
			break
		}
	}
}

// TestCaptureDrops: the count goes on across writers: what a writer
// dropped stays counted after it is closed (once, however often closed).
func TestCaptureDrops(t *testing.T) {
	c := newCaptureDrops()
	o := captureOptions{Capture: config.Capture{Pcap: filepath.Join(t.TempDir(), "c.pcapng")}}
	tp, closeTap, err := newTap(testNode(t), o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	closeTap = c.track(tp, closeTap)
	// A closed writer counts what it is still handed as dropped.
	tp.(*tap).w.Close()
	pkt := tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("x"))
	for range 3 {
		tp.Inner(time.Now(), tunnel.Outbound, "beta", pkt)
	}
	if n := c.Dropped(); n != 3 {
		t.Fatalf("live writer: %d dropped, want 3", n)
	}
	closeTap()
	closeTap()
	if n := c.Dropped(); n != 3 {
		t.Fatalf("closed writer: %d dropped, want 3", n)
	}
	// No writer, or no tally: nothing tracked, the close func unchanged.
	var nilDrops *captureDrops
	called := false
	nilDrops.track(tp, func() { called = true })()
	c.track(nil, func() {})()
	if !called || c.Dropped() != 3 {
		t.Errorf("called %v, dropped %d", called, c.Dropped())
	}
}

// TestCheckShowsMetrics: peer check says where the node would serve them.
func TestCheckShowsMetrics(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	m.write(t, "metrics: \"[::1]:9586\"\n", "alpha 10.10.0.1/24", "beta 10.10.0.2/24")
	code, out, errOut := runCmd(t, "", "check", "-config", m.path(), "-key", m.keyFile("alpha"))
	if code != 0 || !strings.Contains(out, "\nmetrics: http://[::1]:9586/metrics\n") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
}

// TestSnapshotPaths: a peer is relayed when its path goes via a relay, not
// when it is direct or has none; the relay counters are the status's, and
// absent while the node serves as no relay.
func TestSnapshotPaths(t *testing.T) {
	changed := time.Unix(1_700_000_000, 0)
	st := tunnel.Status{
		Peers: []tunnel.PeerStatus{
			{Name: "beta", Path: "direct 192.0.2.2:51820", PathChanged: changed},
			{Name: "gamma", Path: "via beta", Via: "beta", PathChanged: changed.Add(time.Second)},
			{Name: "delta"},
		},
		Relay: &tunnel.RelayStatus{Registered: 2, Forwarded: 9, Introductions: 1, Refused: 3},
	}
	s := snapshotOf(st)
	for i, want := range []bool{false, true, false} {
		if p := s.Peers[i]; p.Relayed != want || !p.PathChanged.Equal(st.Peers[i].PathChanged) {
			t.Errorf("%s: relayed %v changed %v, want %v %v", p.Name, p.Relayed, p.PathChanged, want, st.Peers[i].PathChanged)
		}
	}
	if r := s.Relay; r == nil || r.Registered != 2 || r.Forwarded != 9 || r.Introductions != 1 || r.Refused != 3 {
		t.Errorf("relay %+v", r)
	}
	st.Relay = nil
	if s := snapshotOf(st); s.Relay != nil {
		t.Errorf("not serving, relay %+v", s.Relay)
	}
}
