package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/tunnel"
	"github.com/peer-vpn/peer/udp"
	"github.com/peer-vpn/peer/udp/udptest"
)

// fleetMesh is a mesh of bigMesh's shape (an address and 9 subnets per
// peer, endpoints in 198.51.100.0/24) whose first nodes peers keep their
// private key in a file each, to run as nodes.
type fleetMesh struct {
	dir  string
	pubs []keys.Public
}

func newFleetMesh(tb testing.TB, peers, nodes int) *fleetMesh {
	tb.Helper()
	m := &fleetMesh{dir: tb.TempDir()}
	for i := 0; i < peers; i++ {
		k, err := keys.NewPrivate()
		if err != nil {
			tb.Fatal(err)
		}
		m.pubs = append(m.pubs, k.Public())
		if i < nodes {
			if err := os.WriteFile(m.keyFile(i), []byte(k.Base64()+"\n"), 0o600); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return m
}

func (m *fleetMesh) keyFile(i int) string { return filepath.Join(m.dir, fmt.Sprintf("p%d.key", i)) }

// endpoint is peer i's endpoint, where its node listens.
func (m *fleetMesh) endpoint(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i%250 + 1)}), uint16(20000+i))
}

// mesh is the parsed mesh; extra, if not "", is one more subnet of
// fleetChanged.
func (m *fleetMesh) mesh(tb testing.TB, extra string) *config.Mesh {
	return m.firstPeers(tb, len(m.pubs), extra)
}

// firstPeers is the mesh of the first n peers only.
func (m *fleetMesh) firstPeers(tb testing.TB, n int, extra string) *config.Mesh {
	tb.Helper()
	var b strings.Builder
	b.WriteString("peers:\n")
	for i, pub := range m.pubs[:n] {
		name := fmt.Sprintf("p%d", i)
		fmt.Fprintf(&b, "  - name: %s\n    public_key: %q\n    address: 10.%d.%d.1/32\n    subnets: [", name, pub, i>>8, i&255)
		for j := 0; j < 9; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "172.%d.%d.%d/28", 16+j, i>>4, (i&15)<<4)
		}
		if name == fleetChanged && extra != "" {
			b.WriteString(", " + extra)
		}
		fmt.Fprintf(&b, "]\n    endpoint: %s\n", m.endpoint(i))
	}
	mesh, err := config.Parse(filepath.Join(m.dir, "mesh.yaml"), []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	return mesh
}

// fleetEvent is a node's log line ending a reload, and when it was written.
type fleetEvent struct {
	node int
	at   time.Time
	line string
}

// fleetLog is a node's log; it reports each line that ends a reload.
type fleetLog struct {
	lockedBuffer
	node   int
	events chan<- fleetEvent
}

func (l *fleetLog) Write(p []byte) (int, error) {
	at := time.Now()
	// slog's text handler writes one whole line per call.
	for _, msg := range []string{`msg="mesh reloaded"`, `msg="mesh reload refused"`, `msg="mesh reload incomplete"`, `msg="mesh unchanged"`} {
		if bytes.Contains(p, []byte(msg)) {
			l.events <- fleetEvent{node: l.node, at: at, line: strings.TrimSuffix(string(p), "\n")}
			break
		}
	}
	return l.lockedBuffer.Write(p)
}

// fleetTiming is what the last reload of a node took.
type fleetTiming struct {
	apply       time.Duration // the mesh read to the reload applied
	reconfigure time.Duration // Device.Reconfigure
	changes     tunnel.Changes
}

// fleetNode is one node of the fleet, run by runNode in memory as
// startNode runs one (which a benchmark cannot use: it takes a *testing.T).
type fleetNode struct {
	logs   *fleetLog
	cmds   *recorder
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
	stopErr  error

	mu     sync.Mutex
	loaded time.Time // when the source's last load returned
	t      fleetTiming
}

func (n *fleetNode) timing() fleetTiming {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.t
}

// timedSource is the node's mesh source, noting when a load returns and
// when the reload says it applied that load.
type timedSource struct {
	meshSource
	n *fleetNode
}

func (s timedSource) load() (*config.Mesh, error) {
	m, err := s.meshSource.load()
	s.n.mu.Lock()
	s.n.loaded = time.Now()
	s.n.mu.Unlock()
	return m, err
}

func (s timedSource) applied(log *slog.Logger) {
	s.n.mu.Lock()
	s.n.t.apply = time.Since(s.n.loaded)
	s.n.mu.Unlock()
	s.meshSource.applied(log)
}

// timedDevice is the real tunnel, timing Reconfigure.
type timedDevice struct {
	device
	n *fleetNode
}

func (d timedDevice) Reconfigure(peers []tunnel.PeerConfig) (tunnel.Changes, error) {
	start := time.Now()
	c, err := d.device.Reconfigure(peers)
	took := time.Since(start)
	d.n.mu.Lock()
	d.n.t.reconfigure, d.n.t.changes = took, c
	d.n.mu.Unlock()
	return c, err
}

// startFleetNode runs peer i of fm as `peer -config URL -key KEY -cache
// FILE` would, in memory: a tuntest.Memory TUN, a socket on net at its
// endpoint, a recorder for the system commands.
func startFleetNode(b *testing.B, url string, fm *fleetMesh, i int, net *udptest.Network, events chan<- fleetEvent) *fleetNode {
	b.Helper()
	dir := b.TempDir()
	n := &fleetNode{logs: &fleetLog{node: i, events: events}, cmds: &recorder{}, done: make(chan error, 1)}
	rf := testRunFlags(b, []string{"-config", url, "-key", fm.keyFile(i), "-cache", filepath.Join(dir, "fleet.mesh.yaml"),
		"-socket", filepath.Join(dir, "peer.sock")})
	node, capOpts, err := rf.checkStart(netconf.Linux)
	if err != nil {
		b.Fatal(err)
	}
	rf.src = timedSource{meshSource: rf.src, n: n}
	sys := system{
		goos: netconf.Linux,
		openTUN: func(name, driver string, mtu int) (tundev.Device, error) {
			return tuntest.NewMemory(name, mtu, 8), nil
		},
		listenUDP: func(port int) (udp.Conn, error) {
			return net.Listen(netip.AddrPortFrom(fm.endpoint(i).Addr(), uint16(port)))
		},
		run:         n.cmds.run,
		runTolerant: n.cmds.run,
		newDevice: func(cfg tunnel.Config) (device, error) {
			d, err := newTunnel(cfg)
			if err != nil {
				return nil, err
			}
			return timedDevice{device: d, n: n}, nil
		},
	}
	level := new(slog.LevelVar)
	level.Set(logLevel(node.Mesh.LogLevel, false))
	log := slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- runNode(ctx, node, rf, capOpts, log, level, sys) }()
	b.Cleanup(func() {
		if err := n.stop(); err != nil {
			b.Errorf("p%d: %v", i, err)
		}
	})
	return n
}

// stop ends the node and waits until it is down.
func (n *fleetNode) stop() error {
	n.stopOnce.Do(func() {
		n.cancel()
		select {
		case n.stopErr = <-n.done:
		case <-time.After(10 * time.Second):
			n.stopErr = fmt.Errorf("did not stop")
		}
	})
	return n.stopErr
}

// waitUp waits until the node logs that it is up.
func (n *fleetNode) waitUp(b *testing.B) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(n.logs.String(), `msg="peer up"`) {
		select {
		case err := <-n.done:
			b.Fatalf("p%d stopped: %v\n%s", n.logs.node, err, n.logs)
		default:
		}
		if time.Now().After(deadline) {
			b.Fatalf("p%d not up within 30 s:\n%s", n.logs.node, n.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
