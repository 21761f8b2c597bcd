// Package metrics serves a node's counters to Prometheus, in its text
// format, with the official client (github.com/prometheus/client_golang).
//
// Nothing is counted here: the data path already keeps its counters
// (atomics, per peer and per drop reason), and a scrape reads them through
// a Snapshot taken at that moment. So reading metrics costs the data path
// nothing, and the series follow the running peer set: a peer added by a
// reload appears at the next scrape, a removed one disappears, a renamed
// one is shown under its new name. The package knows nothing of the
// tunnel: its caller fills in the Snapshot.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot is the state of a node at one scrape.
type Snapshot struct {
	// Drops counts, by reason, the packets dropped before they could be
	// tied to a peer; they are shown with peer="".
	Drops map[string]uint64
	Peers []Peer
	// Relay is what the node did as a relay; nil while it serves as none,
	// and then the peer_relay_ series are left out rather than shown as 0:
	// a node that is no relay forwards nothing, and a 0 would make a
	// relay that stopped serving look like one whose counters were reset.
	Relay *Relay
	// Reload is how the node's reloads went; nil leaves its series out.
	Reload *Reload
	// Etcd is the node's link to its mesh in etcd; nil (a mesh file)
	// leaves the peer_etcd_ and peer_mesh_revision series out.
	Etcd *Etcd
}

// Reload is how a node's reloads of its mesh went since it started.
type Reload struct {
	Counts map[string]uint64 // by result: reloaded, unchanged, refused, incomplete
	// LastSuccessful says the last reload left the node on the mesh it
	// was given (true before the first: the start's mesh is in place);
	// LastSuccess is when (the start before the first success).
	LastSuccessful bool
	LastSuccess    time.Time
}

// Etcd is a node's link to its mesh in etcd.
type Etcd struct {
	Connected bool  // etcd answers
	Revision  int64 // of the mesh the node runs; 0 for a cache without one
}

// Relay counts what a node serving as a relay did since it started.
type Relay struct {
	Registered                        int // peers using it as their relay now
	Forwarded, Introductions, Refused uint64
}

// Peer is one peer of a Snapshot.
type Peer struct {
	Name               string
	RxBytes, RxPackets uint64
	TxBytes, TxPackets uint64
	Handshakes         map[string]uint64 // by result: completed_initiator, completed_responder, failed, timeout
	LastHandshake      time.Time         // zero if never
	Drops              map[string]uint64 // by reason
	Up                 bool              // a session can carry data now
	Relayed            bool              // its datagrams go through a relay now
	PathChanged        time.Time         // when its path last changed; zero if never
}

var (
	descRxBytes = prometheus.NewDesc("peer_rx_bytes_total",
		"Bytes of the transport messages from the peer that authenticated (header, padded packet and tag; keepalives too), as wg counts transfer.", []string{"peer"}, nil)
	descTxBytes = prometheus.NewDesc("peer_tx_bytes_total",
		"Bytes of the transport messages sent to the peer (header, padded packet and tag; keepalives too), as wg counts transfer.", []string{"peer"}, nil)
	descRxPackets = prometheus.NewDesc("peer_rx_packets_total",
		"Transport messages from the peer that authenticated, keepalives included.", []string{"peer"}, nil)
	descTxPackets = prometheus.NewDesc("peer_tx_packets_total",
		"Transport messages sent to the peer, keepalives included.", []string{"peer"}, nil)
	descHandshakes = prometheus.NewDesc("peer_handshakes_total",
		"Handshakes with the peer by result: completed_initiator, completed_responder, failed (a message of it refused), timeout (no answer within 90 s).",
		[]string{"peer", "result"}, nil)
	descLastHandshake = prometheus.NewDesc("peer_last_handshake_timestamp_seconds",
		"Unix time of the peer's latest completed handshake; 0 if none.", []string{"peer"}, nil)
	descDrops = prometheus.NewDesc("peer_drops_total",
		"Packets dropped, by peer and reason; peer=\"\" for those that could not be tied to a peer.", []string{"peer", "reason"}, nil)
	descUp = prometheus.NewDesc("peer_up",
		"1 while the peer has a session that can carry data, else 0.", []string{"peer"}, nil)
	descPathRelayed = prometheus.NewDesc("peer_path_relayed",
		"1 while the datagrams to the peer go through a relay, 0 while they go directly or nowhere.", []string{"peer"}, nil)
	descPathChanged = prometheus.NewDesc("peer_path_changed_timestamp_seconds",
		"Unix time the path to the peer (direct, or through which relay) last changed; 0 if it never had one.", []string{"peer"}, nil)
	descRelayRegistered = prometheus.NewDesc("peer_relay_registered_peers",
		"Peers using this node as their relay now; only while it serves as a relay.", nil, nil)
	descRelayForwarded = prometheus.NewDesc("peer_relay_forwarded_total",
		"Datagrams this node forwarded as a relay between two peers; only while it serves as a relay.", nil, nil)
	descRelayIntroductions = prometheus.NewDesc("peer_relay_introductions_total",
		"Introductions this node sent as a relay, for two peers to try a direct path; only while it serves as a relay.", nil, nil)
	descRelayRefused = prometheus.NewDesc("peer_relay_refused_total",
		"Requests this node refused as a relay (the target not registered, or a limit reached); only while it serves as a relay.", nil, nil)
	descReloads = prometheus.NewDesc("peer_reloads_total",
		"Reloads of the mesh by result: reloaded, unchanged, refused (a bad mesh; the running one stays), incomplete (applied in part).", []string{"result"}, nil)
	descLastReloadSuccessful = prometheus.NewDesc("peer_last_reload_successful",
		"1 if the last reload left the node on the mesh it was given (reloaded or unchanged), or none happened yet; 0 after a refused or incomplete one.", nil, nil)
	descLastReloadSuccess = prometheus.NewDesc("peer_last_reload_success_timestamp_seconds",
		"Unix time of the last successful reload, or of the start before the first.", nil, nil)
	descEtcdConnected = prometheus.NewDesc("peer_etcd_connected",
		"1 while the etcd the mesh comes from answers, else 0; only for a mesh in etcd.", nil, nil)
	descMeshRevision = prometheus.NewDesc("peer_mesh_revision",
		"The etcd revision of the mesh the node runs (0 for a cache without one); only for a mesh in etcd.", nil, nil)
	descCaptureDropped = prometheus.NewDesc("peer_capture_dropped_total",
		"Packets the captures did not write (queue full, or the capture stopped).", nil, nil)
)

// Collector is a prometheus.Collector that reads a Snapshot at every
// scrape and shows it as constant metrics.
type Collector struct {
	snapshot       func() Snapshot
	captureDropped func() uint64
}

// NewCollector returns a Collector of what snapshot returns and of the
// capture drops captureDropped counts (nil: none). Both are called once per
// scrape, possibly by several scrapes at once, and must not block.
func NewCollector(snapshot func() Snapshot, captureDropped func() uint64) *Collector {
	return &Collector{snapshot: snapshot, captureDropped: captureDropped}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRxBytes, descTxBytes, descRxPackets, descTxPackets,
		descHandshakes, descLastHandshake, descDrops, descUp, descPathRelayed, descPathChanged,
		descRelayRegistered, descRelayForwarded, descRelayIntroductions, descRelayRefused,
		descReloads, descLastReloadSuccessful, descLastReloadSuccess, descEtcdConnected, descMeshRevision, descCaptureDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot()
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for reason, v := range s.Drops {
		counter(descDrops, v, "", reason)
	}
	for i := range s.Peers {
		p := &s.Peers[i]
		counter(descRxBytes, p.RxBytes, p.Name)
		counter(descTxBytes, p.TxBytes, p.Name)
		counter(descRxPackets, p.RxPackets, p.Name)
		counter(descTxPackets, p.TxPackets, p.Name)
		for result, v := range p.Handshakes {
			counter(descHandshakes, v, p.Name, result)
		}
		gauge(descLastHandshake, unixSeconds(p.LastHandshake), p.Name)
		for reason, v := range p.Drops {
			counter(descDrops, v, p.Name, reason)
		}
		gauge(descUp, bit(p.Up), p.Name)
		gauge(descPathRelayed, bit(p.Relayed), p.Name)
		gauge(descPathChanged, unixSeconds(p.PathChanged), p.Name)
	}
	if r := s.Relay; r != nil {
		gauge(descRelayRegistered, float64(r.Registered))
		counter(descRelayForwarded, r.Forwarded)
		counter(descRelayIntroductions, r.Introductions)
		counter(descRelayRefused, r.Refused)
	}
	if r := s.Reload; r != nil {
		for result, v := range r.Counts {
			counter(descReloads, v, result)
		}
		gauge(descLastReloadSuccessful, bit(r.LastSuccessful))
		gauge(descLastReloadSuccess, unixSeconds(r.LastSuccess))
	}
	if e := s.Etcd; e != nil {
		gauge(descEtcdConnected, bit(e.Connected))
		gauge(descMeshRevision, float64(e.Revision))
	}
	var dropped uint64
	if c.captureDropped != nil {
		dropped = c.captureDropped()
	}
	counter(descCaptureDropped, dropped)
}

// bit is b as a 0/1 gauge.
func bit(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// unixSeconds is t as a Prometheus timestamp gauge: Unix seconds, 0 for
// the zero time (never).
func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.Unix()) + float64(t.Nanosecond())/1e9
}
