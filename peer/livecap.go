package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peer-vpn/peer/capture"
	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/tunnel"
)

// A live capture is `peer capture` attached to the running node through the
// control socket: the node streams pcapng to the connection with the same
// Writer as -pcap, through a tap of its own in the fan-out, until the client
// closes its end (or goes away). The client is root on a 0600 socket, so it
// may ask for what -pcap-keys gives; the node asks nothing of it it cannot
// bound: a client that reads slowly or not at all only fills its writer's
// queue, whose drops are counted in the stream and in Dropped.

// captureRequest is the argument of a capture request, as JSON.
type captureRequest struct {
	Peer  string `json:"peer,omitempty"` // only this peer's packets
	Outer bool   `json:"outer,omitempty"`
	Keys  bool   `json:"keys,omitempty"` // the key log; needs Outer
}

// maxLiveCaptures bounds the captures attached at once: each holds a writer
// goroutine and a queue of up to liveQueueLen packet buffers.
const maxLiveCaptures = 8

// liveQueueLen is the queue of a live capture's writer: a client is a pipe
// that keeps up or does not, so the queue needs to absorb bursts, not a
// slow disk.
const liveQueueLen = 1024

// liveFinishTimeout bounds how long the end of a stream (the statistics
// blocks) may take to reach a client that stopped reading.
const liveFinishTimeout = 5 * time.Second

// liveCaptures serves the capture requests of a node.
type liveCaptures struct {
	fan *tapFanout
	log *slog.Logger
	// node returns the node's current view (a reload may change the peers).
	node func() *config.Node
	// endpoint returns where a peer's datagrams go now (it roams); nil
	// means its endpoint in the mesh file.
	endpoint func(peer string) netip.AddrPort

	nextID  atomic.Uint64
	ended   atomic.Uint64 // drops of the captures that ended
	mu      sync.Mutex
	running map[*capture.Writer]struct{}
}

func newLiveCaptures(fan *tapFanout, node func() *config.Node, endpoint func(string) netip.AddrPort, log *slog.Logger) *liveCaptures {
	return &liveCaptures{fan: fan, node: node, endpoint: endpoint, log: log, running: make(map[*capture.Writer]struct{})}
}

// Dropped is the number of packets the live captures, running and ended,
// could not write (their queues were full): peer_capture_dropped_total
// adds it to the -pcap writer's.
func (lc *liveCaptures) Dropped() uint64 {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	n := lc.ended.Load()
	for w := range lc.running {
		n += w.Dropped()
	}
	return n
}

// Running is the number of live captures attached now.
func (lc *liveCaptures) Running() int {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	return len(lc.running)
}

// handle is the control socket's StreamHandler for capture requests: it
// checks the request and returns what serves the connection.
func (lc *liveCaptures) handle(arg string) (func(net.Conn), error) {
	var req captureRequest
	if arg != "" {
		if err := json.Unmarshal([]byte(arg), &req); err != nil {
			return nil, fmt.Errorf("capture request: %w", err)
		}
	}
	if req.Keys && !req.Outer {
		return nil, errors.New("-keys needs -outer: the keys decrypt only the encrypted datagrams")
	}
	node := lc.node()
	var remote *config.Remote
	if req.Peer != "" {
		for i := range node.Remotes {
			if node.Remotes[i].Peer.Name == req.Peer {
				remote = &node.Remotes[i]
			}
		}
		if remote == nil {
			names := make([]string, 0, len(node.Remotes))
			for _, r := range node.Remotes {
				names = append(names, r.Peer.Name)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("no peer %q in this node's mesh (peers: %v)", req.Peer, names)
		}
	}
	// Checked before the capture starts: requests arriving together may
	// overshoot by the few in flight, which still bounds them.
	if lc.Running() >= maxLiveCaptures {
		return nil, fmt.Errorf("%d live captures are running already, the most a node serves at once", maxLiveCaptures)
	}
	return func(c net.Conn) { lc.serve(c, node, req, remote) }, nil
}

// serve streams one capture to c until the client closes its end.
func (lc *liveCaptures) serve(c net.Conn, node *config.Node, req captureRequest, remote *config.Remote) {
	id := lc.nextID.Add(1)
	log := lc.log.With("capture", id)
	w, err := capture.NewWriter(capture.Options{
		Sink: c, Outer: req.Outer, Keys: req.Keys, KeyLifetime: 3 * noise.RejectAfterTime, QueueLen: liveQueueLen, Log: log,
	})
	if err != nil {
		log.Error("live capture", "err", err)
		return
	}
	t := &tap{w: w, node: node, keys: req.Keys}
	if req.Outer {
		t.locals = startLocalAddrs(node)
		defer t.locals.close()
	}
	var tt tunnel.Tap = t
	if remote != nil {
		f := &peerFilter{tap: t, peer: remote.Peer.Name, configured: remote.Endpoint, lookup: lc.endpoint}
		tt = f
	}
	lc.mu.Lock()
	lc.running[w] = struct{}{}
	lc.mu.Unlock()
	remove := lc.fan.add(tt)
	log.Info("live capture started", "peer", req.Peer, "outer", req.Outer, "keys", req.Keys)
	if req.Keys {
		log.Warn("live capture with -keys: " + keysWarning)
	}

	// The client sends nothing after its request: a read returns when it
	// closes its end (peer capture does on SIGINT or -c) or goes away.
	_, err = io.Copy(io.Discard, c)
	reason := "client closed"
	if err != nil {
		reason = err.Error()
	}
	remove()
	c.SetWriteDeadline(time.Now().Add(liveFinishTimeout))
	werr := w.Close() // the statistics with the drop counts end the stream
	dropped := w.Dropped()
	lc.mu.Lock()
	delete(lc.running, w)
	lc.ended.Add(dropped)
	lc.mu.Unlock()
	if werr != nil {
		reason = "client gone: " + werr.Error()
	}
	log.Info("live capture ended", "reason", reason, "dropped", dropped)
}

// peerFilter passes on one peer's packets: its inner packets, its key log
// lines and, with -outer, the datagrams to and from its current endpoint
// (looked up at most once a second: it follows roaming within that).
type peerFilter struct {
	tap        tunnel.Tap
	peer       string
	configured netip.AddrPort
	lookup     func(string) netip.AddrPort // nil: configured

	ep atomic.Pointer[endpointAt]
}

type endpointAt struct {
	ep netip.AddrPort
	at time.Time
}

func (f *peerFilter) Inner(t time.Time, dir tunnel.Direction, peer string, pkt []byte) {
	if peer == f.peer {
		f.tap.Inner(t, dir, peer, pkt)
	}
}

func (f *peerFilter) Outer(t time.Time, dir tunnel.Direction, src, dst netip.AddrPort, datagram []byte) {
	remote := src
	if dir == tunnel.Outbound {
		remote = dst
	}
	if remote == f.endpoint(t) {
		f.tap.Outer(t, dir, src, dst, datagram)
	}
}

func (f *peerFilter) endpoint(now time.Time) netip.AddrPort {
	if e := f.ep.Load(); e != nil && now.Sub(e.at) < time.Second && now.Sub(e.at) >= 0 {
		return e.ep
	}
	ep := f.configured
	if f.lookup != nil {
		if cur := f.lookup(f.peer); cur.IsValid() {
			ep = cur
		}
	}
	f.ep.Store(&endpointAt{ep: ep, at: now})
	return ep
}

func (f *peerFilter) EphemeralKey(peer string, remote keys.Public, psk keys.Preshared, eph keys.Private) {
	if peer == f.peer {
		f.tap.EphemeralKey(peer, remote, psk, eph)
	}
}
