package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func twoPeers() Snapshot {
	return Snapshot{
		Drops: map[string]uint64{"no_route": 2, "bad_mac": 0},
		Peers: []Peer{
			{
				Name: "beta", RxBytes: 1500, RxPackets: 3, TxBytes: 840, TxPackets: 2,
				Handshakes:    map[string]uint64{"completed_initiator": 1, "completed_responder": 0, "failed": 0, "timeout": 0},
				LastHandshake: time.Unix(1_700_000_000, 500_000_000),
				Drops:         map[string]uint64{"replay": 1, "decrypt": 0},
				Up:            true,
				PathChanged:   time.Unix(1_700_000_100, 0),
			},
			{
				Name:        "gamma",
				Handshakes:  map[string]uint64{"completed_initiator": 0, "completed_responder": 0, "failed": 0, "timeout": 2},
				Drops:       map[string]uint64{"replay": 0, "decrypt": 0},
				Relayed:     true,
				PathChanged: time.Unix(1_700_000_200, 250_000_000),
			},
		},
		Relay: &Relay{Registered: 2, Forwarded: 1234, Introductions: 3, Refused: 1},
		Reload: &Reload{Counts: map[string]uint64{"reloaded": 4, "unchanged": 1, "refused": 2, "incomplete": 0},
			LastSuccessful: false, LastSuccess: time.Unix(1_700_000_300, 0)},
		Etcd: &Etcd{Connected: true, Revision: 42},
	}
}

const wantTwoPeers = `
# HELP peer_capture_dropped_total Packets the captures did not write (queue full, or the capture stopped).
# TYPE peer_capture_dropped_total counter
peer_capture_dropped_total 7
# HELP peer_drops_total Packets dropped, by peer and reason; peer="" for those that could not be tied to a peer.
# TYPE peer_drops_total counter
peer_drops_total{peer="",reason="bad_mac"} 0
peer_drops_total{peer="",reason="no_route"} 2
peer_drops_total{peer="beta",reason="decrypt"} 0
peer_drops_total{peer="beta",reason="replay"} 1
peer_drops_total{peer="gamma",reason="decrypt"} 0
peer_drops_total{peer="gamma",reason="replay"} 0
# HELP peer_etcd_connected 1 while the etcd the mesh comes from answers, else 0; only for a mesh in etcd.
# TYPE peer_etcd_connected gauge
peer_etcd_connected 1
# HELP peer_handshakes_total Handshakes with the peer by result: completed_initiator, completed_responder, failed (a message of it refused), timeout (no answer within 90 s).
# TYPE peer_handshakes_total counter
peer_handshakes_total{peer="beta",result="completed_initiator"} 1
peer_handshakes_total{peer="beta",result="completed_responder"} 0
peer_handshakes_total{peer="beta",result="failed"} 0
peer_handshakes_total{peer="beta",result="timeout"} 0
peer_handshakes_total{peer="gamma",result="completed_initiator"} 0
peer_handshakes_total{peer="gamma",result="completed_responder"} 0
peer_handshakes_total{peer="gamma",result="failed"} 0
peer_handshakes_total{peer="gamma",result="timeout"} 2
# HELP peer_last_handshake_timestamp_seconds Unix time of the peer's latest completed handshake; 0 if none.
# TYPE peer_last_handshake_timestamp_seconds gauge
peer_last_handshake_timestamp_seconds{peer="beta"} 1.7000000005e+09
peer_last_handshake_timestamp_seconds{peer="gamma"} 0
# HELP peer_last_reload_success_timestamp_seconds Unix time of the last successful reload, or of the start before the first.
# TYPE peer_last_reload_success_timestamp_seconds gauge
peer_last_reload_success_timestamp_seconds 1.7000003e+09
# HELP peer_last_reload_successful 1 if the last reload left the node on the mesh it was given (reloaded or unchanged), or none happened yet; 0 after a refused or incomplete one.
# TYPE peer_last_reload_successful gauge
peer_last_reload_successful 0
# HELP peer_mesh_revision The etcd revision of the mesh the node runs (0 for a cache without one); only for a mesh in etcd.
# TYPE peer_mesh_revision gauge
peer_mesh_revision 42
# HELP peer_path_changed_timestamp_seconds Unix time the path to the peer (direct, or through which relay) last changed; 0 if it never had one.
# TYPE peer_path_changed_timestamp_seconds gauge
peer_path_changed_timestamp_seconds{peer="beta"} 1.7000001e+09
peer_path_changed_timestamp_seconds{peer="gamma"} 1.70000020025e+09
# HELP peer_path_relayed 1 while the datagrams to the peer go through a relay, 0 while they go directly or nowhere.
# TYPE peer_path_relayed gauge
peer_path_relayed{peer="beta"} 0
peer_path_relayed{peer="gamma"} 1
# HELP peer_relay_forwarded_total Datagrams this node forwarded as a relay between two peers; only while it serves as a relay.
# TYPE peer_relay_forwarded_total counter
peer_relay_forwarded_total 1234
# HELP peer_relay_introductions_total Introductions this node sent as a relay, for two peers to try a direct path; only while it serves as a relay.
# TYPE peer_relay_introductions_total counter
peer_relay_introductions_total 3
# HELP peer_relay_refused_total Requests this node refused as a relay (the target not registered, or a limit reached); only while it serves as a relay.
# TYPE peer_relay_refused_total counter
peer_relay_refused_total 1
# HELP peer_relay_registered_peers Peers using this node as their relay now; only while it serves as a relay.
# TYPE peer_relay_registered_peers gauge
peer_relay_registered_peers 2
# HELP peer_reloads_total Reloads of the mesh by result: reloaded, unchanged, refused (a bad mesh; the running one stays), incomplete (applied in part).
# TYPE peer_reloads_total counter
peer_reloads_total{result="incomplete"} 0
peer_reloads_total{result="refused"} 2
peer_reloads_total{result="reloaded"} 4
peer_reloads_total{result="unchanged"} 1
# HELP peer_rx_bytes_total Bytes of the transport messages from the peer that authenticated (header, padded packet and tag; keepalives too), as wg counts transfer.
# TYPE peer_rx_bytes_total counter
peer_rx_bytes_total{peer="beta"} 1500
peer_rx_bytes_total{peer="gamma"} 0
# HELP peer_rx_packets_total Transport messages from the peer that authenticated, keepalives included.
# TYPE peer_rx_packets_total counter
peer_rx_packets_total{peer="beta"} 3
peer_rx_packets_total{peer="gamma"} 0
# HELP peer_tx_bytes_total Bytes of the transport messages sent to the peer (header, padded packet and tag; keepalives too), as wg counts transfer.
# TYPE peer_tx_bytes_total counter
peer_tx_bytes_total{peer="beta"} 840
peer_tx_bytes_total{peer="gamma"} 0
# HELP peer_tx_packets_total Transport messages sent to the peer, keepalives included.
# TYPE peer_tx_packets_total counter
peer_tx_packets_total{peer="beta"} 2
peer_tx_packets_total{peer="gamma"} 0
# HELP peer_up 1 while the peer has a session that can carry data, else 0.
# TYPE peer_up gauge
peer_up{peer="beta"} 1
peer_up{peer="gamma"} 0
`

func TestCollect(t *testing.T) {
	c := NewCollector(twoPeers, func() uint64 { return 7 })
	if err := testutil.CollectAndCompare(c, strings.NewReader(wantTwoPeers)); err != nil {
		t.Fatal(err)
	}
}

// TestNoCaptureDropsFunc: without a capture the counter is there, at 0.
func TestNoCaptureDropsFunc(t *testing.T) {
	c := NewCollector(func() Snapshot { return Snapshot{} }, nil)
	want := `
# HELP peer_capture_dropped_total Packets the captures did not write (queue full, or the capture stopped).
# TYPE peer_capture_dropped_total counter
peer_capture_dropped_total 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

// TestRelaySeriesOnlyWhileServing: a node that serves as no relay has no
// peer_relay_ series at all (not zeros); one that does has all four, zeros
// included, from its first scrape.
func TestRelaySeriesOnlyWhileServing(t *testing.T) {
	var serving atomic.Bool
	c := NewCollector(func() Snapshot {
		s := Snapshot{Peers: []Peer{{Name: "beta"}}}
		if serving.Load() {
			s.Relay = &Relay{}
		}
		return s
	}, nil)
	relayNames := []string{"peer_relay_registered_peers", "peer_relay_forwarded_total", "peer_relay_introductions_total", "peer_relay_refused_total"}
	if n := testutil.CollectAndCount(c, relayNames...); n != 0 {
		t.Errorf("not serving: %d relay series, want none", n)
	}
	serving.Store(true)
	if n := testutil.CollectAndCount(c, relayNames...); n != 4 {
		t.Errorf("serving: %d relay series, want 4", n)
	}
	// The per-peer path series are there either way, 0 for a direct path
	// that never changed.
	want := `
# HELP peer_path_relayed 1 while the datagrams to the peer go through a relay, 0 while they go directly or nowhere.
# TYPE peer_path_relayed gauge
peer_path_relayed{peer="beta"} 0
# HELP peer_path_changed_timestamp_seconds Unix time the path to the peer (direct, or through which relay) last changed; 0 if it never had one.
# TYPE peer_path_changed_timestamp_seconds gauge
peer_path_changed_timestamp_seconds{peer="beta"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "peer_path_relayed", "peer_path_changed_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

// TestFollowsThePeerSet: every scrape reads the snapshot anew, so a peer
// removed by a reload disappears, an added one appears and a renamed one
// is shown by its new name.
func TestFollowsThePeerSet(t *testing.T) {
	var gen atomic.Int32
	c := NewCollector(func() Snapshot {
		switch gen.Load() {
		case 0:
			return Snapshot{Peers: []Peer{{Name: "beta", RxBytes: 10}, {Name: "gamma", RxBytes: 20}}}
		default:
			return Snapshot{Peers: []Peer{{Name: "beta-2", RxBytes: 11}, {Name: "delta", RxBytes: 1}}}
		}
	}, nil)
	const rx = `
# HELP peer_rx_bytes_total Bytes of the transport messages from the peer that authenticated (header, padded packet and tag; keepalives too), as wg counts transfer.
# TYPE peer_rx_bytes_total counter
`
	want := rx + "peer_rx_bytes_total{peer=\"beta\"} 10\npeer_rx_bytes_total{peer=\"gamma\"} 20\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "peer_rx_bytes_total"); err != nil {
		t.Fatal(err)
	}
	gen.Store(1)
	want = rx + "peer_rx_bytes_total{peer=\"beta-2\"} 11\npeer_rx_bytes_total{peer=\"delta\"} 1\n"
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "peer_rx_bytes_total"); err != nil {
		t.Fatal(err)
	}
}

// TestServeAndLint scrapes /metrics over HTTP as Prometheus does: the
// text format, our series and the Go runtime's and process's, with no
// problem the client's linter (promtool's rules) finds in ours.
func TestServeAndLint(t *testing.T) {
	reg := NewRegistry(NewCollector(twoPeers, func() uint64 { return 7 }))
	log := slog.New(slog.DiscardHandler)
	s, err := Listen("127.0.0.1:0", reg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := "http://" + s.Addr().String()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		"# TYPE peer_rx_bytes_total counter\n",
		"peer_rx_bytes_total{peer=\"beta\"} 1500\n",
		"# TYPE peer_up gauge\n",
		"peer_up{peer=\"beta\"} 1\n",
		"peer_drops_total{peer=\"\",reason=\"no_route\"} 2\n",
		"# TYPE go_goroutines gauge\n",
		"# TYPE process_resident_memory_bytes gauge\n",
		"# TYPE process_cpu_seconds_total counter\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(text)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "peer_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
	resp, err = http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %s, want 404", resp.Status)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Error("still serving after Close")
	}
}
