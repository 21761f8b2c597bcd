package main

import (
	"flag"
	"fmt"
	"log/slog"
	"sync"

	"github.com/peer-vpn/peer/capture"
	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/metrics"
	"github.com/peer-vpn/peer/tunnel"
)

// Prometheus metrics (-metrics ADDR, metrics: in the mesh file): the
// metrics package serves what a scrape reads from the device's Status, and
// the capture drops counted here. The address is checked with the mesh
// file (config.CheckMetricsAddr); changing it needs a restart.

// metricsFlag is -metrics ADDR, which replaces metrics: of the mesh file
// when given ("" then turns the metrics off).
type metricsFlag struct {
	addr string
	set  bool
}

func (mf *metricsFlag) register(fs *flag.FlagSet) {
	fs.StringVar(&mf.addr, "metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics: 127.0.0.1:9586 for this host only, or an\n"+
		"explicit address; every interface only when written out (0.0.0.0:9586, [::]:9586), never by leaving\n"+
		"the host off (default: metrics: of the mesh file, else none)")
}

// check refuses a bad -metrics before anything is touched, and notes
// whether it was given.
func (mf *metricsFlag) check(fs *flag.FlagSet) error {
	fs.Visit(func(f *flag.Flag) { mf.set = mf.set || f.Name == "metrics" })
	if mf.addr == "" {
		return nil
	}
	if err := config.CheckMetricsAddr(mf.addr); err != nil {
		return usageError{fmt.Errorf("-metrics %w", err)}
	}
	return nil
}

// apply puts a given -metrics in place of the mesh file's, at start and at
// every reload alike.
func (mf *metricsFlag) apply(node *config.Node) {
	if mf.set {
		node.Mesh.Metrics = mf.addr
	}
}

// startMetrics serves /metrics on addr ("" for nowhere) until the returned
// func is called. Every scrape reads the live status of st, so the series
// follow reloads, and what node adds (the reloads, the mesh source);
// captureDropped counts the packets the captures lost.
func startMetrics(addr string, st func() tunnel.Status, node func(*metrics.Snapshot), captureDropped func() uint64, log *slog.Logger) (func(), error) {
	if addr == "" {
		return func() {}, nil
	}
	c := metrics.NewCollector(func() metrics.Snapshot {
		s := snapshotOf(st())
		node(&s)
		return s
	}, captureDropped)
	s, err := metrics.Listen(addr, metrics.NewRegistry(c), log)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	log.Info("serving metrics", "url", "http://"+s.Addr().String()+"/metrics")
	return func() { s.Close() }, nil
}

// nodeMetrics adds to s how the reloads of o went and the link to the
// mesh of src.
func nodeMetrics(s *metrics.Snapshot, o *reloadOutcomes, src sourceState) {
	last, success, counts := o.snapshot()
	s.Reload = &metrics.Reload{Counts: counts, LastSuccessful: last == nil || last.succeeded(), LastSuccess: success}
	if e := src.Etcd; e != nil {
		s.Etcd = &metrics.Etcd{Connected: e.Connected, Revision: e.Revision}
	}
}

// snapshotOf is the metrics' view of a status. Every drop reason and
// handshake result is there, zero or not, so that a series exists before
// its first increment and rate() sees that one too.
func snapshotOf(st tunnel.Status) metrics.Snapshot {
	s := metrics.Snapshot{Drops: withZeros(st.Drops, tunnel.DeviceDropReasons())}
	if r := st.Relay; r != nil {
		s.Relay = &metrics.Relay{Registered: r.Registered, Forwarded: r.Forwarded, Introductions: r.Introductions, Refused: r.Refused}
	}
	peerReasons := tunnel.PeerDropReasons()
	for _, p := range st.Peers {
		h := p.Handshakes
		s.Peers = append(s.Peers, metrics.Peer{
			Name:    p.Name,
			RxBytes: p.RxBytes, RxPackets: p.RxPackets,
			TxBytes: p.TxBytes, TxPackets: p.TxPackets,
			Handshakes: map[string]uint64{
				tunnel.HandshakeCompletedInitiator.String(): h.CompletedInitiator,
				tunnel.HandshakeCompletedResponder.String(): h.CompletedResponder,
				tunnel.HandshakeFailed.String():             h.Failed,
				tunnel.HandshakeTimeout.String():            h.Timeout,
			},
			LastHandshake: p.LastHandshake,
			Drops:         withZeros(p.Drops, peerReasons),
			Up:            p.Session,
			Relayed:       p.Via != "",
			PathChanged:   p.PathChanged,
		})
	}
	return s
}

// withZeros is counts with every one of names present.
func withZeros(counts map[string]uint64, names []string) map[string]uint64 {
	m := make(map[string]uint64, len(names))
	for _, n := range names {
		m[n] = 0
	}
	for n, v := range counts {
		m[n] = v
	}
	return m
}

// captureDrops adds up the packets every capture writer of the node's life
// dropped: a reload that changes the capture replaces the writer, and the
// counter must not go back to zero then.
type captureDrops struct {
	mu     sync.Mutex
	closed uint64                       // dropped by the writers closed so far
	live   map[*capture.Writer]struct{} // writers still open
}

func newCaptureDrops() *captureDrops {
	return &captureDrops{live: map[*capture.Writer]struct{}{}}
}

// track counts the drops of t's writer (if it has one) from now on, and
// returns closeTap extended to keep its final count. Nil-safe: a reloader
// built without one (tests) tracks nothing.
func (c *captureDrops) track(t tunnel.Tap, closeTap func()) func() {
	tp, ok := t.(*tap)
	if c == nil || !ok || tp.w == nil {
		return closeTap
	}
	w := tp.w
	c.mu.Lock()
	c.live[w] = struct{}{}
	c.mu.Unlock()
	return func() {
		closeTap()
		// Until here a scrape read w live; its count only grows, so
		// moving it to closed keeps the sum monotonic.
		c.mu.Lock()
		if _, ok := c.live[w]; ok { // once, however often closed
			c.closed += w.Dropped()
			delete(c.live, w)
		}
		c.mu.Unlock()
	}
}

// Dropped is the packets dropped by every writer, closed or open.
func (c *captureDrops) Dropped() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.closed
	for w := range c.live {
		n += w.Dropped()
	}
	return n
}
