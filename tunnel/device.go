// Package tunnel is the data path of a peer node: it reads IP packets from a
// TUN device, picks the peer by longest-prefix match, encrypts them with the
// WireGuard protocol and sends them over UDP; the reverse path authenticates,
// decrypts, checks the inner source against the sender's prefixes and writes
// to the TUN. One file per concern, as in wireguard-go: send.go, receive.go,
// handshake.go, timers.go, peer.go, index.go, and reconfig.go, which applies
// a new peer set to a running device.
package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/prefixtable"
	"github.com/peer-vpn/peer/tundev"
	"github.com/peer-vpn/peer/udp"
	"golang.zx2c4.com/wireguard/ratelimiter"
)

// PeerConfig describes one remote peer.
type PeerConfig struct {
	Name      string
	PublicKey keys.Public
	Preshared keys.Preshared
	// Prefixes are routed to this peer, and are the only inner sources
	// accepted from it. The longest prefix wins: another peer's prefix
	// inside one of these (such as any prefix inside an exit's 0.0.0.0/0)
	// is routed to, and accepted only from, that other peer.
	Prefixes []netip.Prefix
	// Endpoint is where to send before the peer has been heard from; zero
	// if unknown (the peer must then initiate).
	Endpoint netip.AddrPort
	// Keepalive is the persistent keepalive interval; zero disables it.
	Keepalive time.Duration
	// Relay says the peer is a relay (`relay: true` in the mesh file): it
	// forwards this node's datagrams to peers it cannot reach directly and
	// introduces them to each other (see docs/relay.md). Only a peer of
	// ours with an endpoint may be one; a stock WireGuard peer is never
	// sent a control message.
	Relay bool
}

// Direction is which way a packet shown to a Tap crosses the device.
type Direction uint8

const (
	// Outbound is TUN→peer: a packet read from the TUN device, or a
	// datagram this device sends.
	Outbound Direction = iota + 1
	// Inbound is peer→TUN: a datagram received, or the packet decrypted
	// from it.
	Inbound
)

// Tap receives copies of the traffic for capture and logging. Its methods
// are called on the forwarding goroutines and must not block.
type Tap interface {
	// Inner is a plaintext IP packet.
	Inner(t time.Time, dir Direction, peer string, pkt []byte)
	// Outer is a UDP datagram as sent or received on the wire. A received
	// one is shown only once it is known to come from a member (a transport
	// message that authenticated, a handshake message past mac1 and the
	// load checks, a cookie reply that decrypted): what strangers send
	// never reaches the tap.
	Outer(t time.Time, dir Direction, src, dst netip.AddrPort, datagram []byte)
	// EphemeralKey reports a local ephemeral private key of a handshake
	// with peer, for Wireshark key logs.
	EphemeralKey(peer string, remote keys.Public, psk keys.Preshared, ephemeral keys.Private)
}

// Config is what a Device needs.
type Config struct {
	Private keys.Private
	Peers   []PeerConfig
	TUN     tundev.Device
	Conn    udp.Conn
	// Clock defaults to RealClock.
	Clock Clock
	// Log defaults to slog.Default().
	Log *slog.Logger
	// Tap, if set, sees every packet sent, and those received from members;
	// SetTap replaces it on a running device.
	Tap Tap
	// CryptoWorkers is how many goroutines help each of the two forwarding
	// loops with encryption and decryption: 0 means GOMAXPROCS-2 (none on
	// two cores), negative none.
	CryptoWorkers int
	// ServeRelay makes this node a relay for the peers that name it one:
	// it forwards their datagrams between them and introduces them to each
	// other. SetServeRelay changes it on a running device.
	ServeRelay bool
	// LocalAddrs, if set, returns this node's own addresses with the
	// socket's port, offered to peers behind the same NAT as candidates
	// for a direct path over their LAN. It is called off the data path,
	// about every 20 seconds.
	LocalAddrs func() []netip.AddrPort
}

// Device is a running tunnel node.
type Device struct {
	local   *noise.Local
	cookies *noise.CookieChecker
	tun     tundev.Device
	conn    udp.Conn
	// localAddr is the socket's port with no address (it is bound to
	// all), as the tap is told; the capture fills in the address.
	localAddr netip.AddrPort
	clock     Clock
	log       *slog.Logger
	// tap is swapped by SetTap while packets flow; the forwarding loops
	// load it once per batch (see loadTap).
	tap tapHolder
	// mtu is what transport messages are padded up to (at most); SetMTU
	// changes it while the send path reads it.
	mtu atomic.Int64

	// peers is the current peer set, replaced whole (see peerSet); the
	// handshake worker, the receive path, Status and Close read it.
	peers atomic.Pointer[peerSet]
	// routes maps every peer's prefixes to it, for the send path's
	// lookup and the receive path's source check; a new set's table is
	// built apart and published with one Replace.
	routes prefixtable.Table[*Peer]
	index  indexTable
	// reconfMu serializes changes of the peer set with Run starting the
	// peers and Close stopping them, so that a peer added while the device
	// starts or stops is started (or stopped) exactly as the others.
	reconfMu sync.Mutex
	running  bool // Run has started the peers; guarded by reconfMu

	cryptoWorkers int

	serveRelay atomic.Bool
	localAddrs func() []netip.AddrPort
	// relays is what this node knows as a relay (registrations, pairs
	// introduced, counters); acks bounds its answers to probes.
	relays relayTable
	acks   ackBudget
	// fwdBuf and rxOne are the receive goroutine's buffers for datagrams
	// forwarded (as a relay) and packets relayed (to the TUN).
	fwdBuf []byte
	rxOne  [1][]byte
	// tamperForward, set by a test, alters each datagram this node
	// forwards as a relay.
	tamperForward func([]byte)
	pathTimerMu   sync.Mutex
	pathTimer     Timer

	handshakes chan handshakeMessage
	underLoad  atomic.Int64 // unix nanos until which the node counts as under load
	// limiter bounds, under load, the handshakes one source address may
	// have processed (wireguard-go's: 20 a second, bursts of 5; an entry
	// idle for a second goes at the next collection, run each second while
	// the table is not empty). It keeps its own wall clock and a collector
	// goroutine, so the handshake worker, its only user, owns it: Init
	// when it starts, Close when it stops.
	limiter ratelimiter.Ratelimiter

	drops [numDeviceDrops]atomic.Uint64

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

// DeviceDrop is a reason a packet was dropped before it could be tied to a
// peer.
type DeviceDrop int

// Device-level drop reasons.
const (
	DropNoRoute              DeviceDrop = iota // TUN packet with no peer for its destination
	DropMalformed                              // unparsable packet from TUN or network
	DropUnknownIndex                           // transport message for no session of ours
	DropBadMAC                                 // handshake message failing mac1
	DropHandshake                              // handshake message that did not authenticate (unknown key, replay...)
	DropHandshakeQueue                         // handshake queue full
	DropHandshakeRateLimited                   // under load, one source address sent handshakes too fast
	numDeviceDrops
)

var deviceDropNames = [numDeviceDrops]string{"no_route", "malformed", "unknown_index", "bad_mac", "bad_handshake", "handshake_queue_full", "handshake_rate_limited"}

func (r DeviceDrop) String() string { return deviceDropNames[r] }

const (
	// handshakeQueueLen bounds the handshake messages waiting for the worker.
	handshakeQueueLen = 1024
	// underLoadQueueLen is the backlog beyond which mac2 (a cookie) is
	// demanded of initiators, as in the whitepaper's section 5.3.
	underLoadQueueLen = handshakeQueueLen / 8
	// underLoadAfterTime keeps the node "under load" a while after the
	// backlog drains.
	underLoadAfterTime = time.Second
	// bufSize fits any IP packet plus the transport header and tag, so
	// offload drivers can coalesce in place.
	bufSize = noise.MessageTransportHeaderSize + 65535 + 16
)

// New builds a Device. It does not start forwarding; call Run.
func New(cfg Config) (*Device, error) {
	if cfg.TUN == nil || cfg.Conn == nil {
		return nil, errors.New("tunnel: TUN and Conn are required")
	}
	if cfg.Private.IsZero() {
		return nil, errors.New("tunnel: private key is zero")
	}
	d := &Device{
		local:      noise.NewLocal(cfg.Private),
		tun:        cfg.TUN,
		conn:       cfg.Conn,
		clock:      cfg.Clock,
		log:        cfg.Log,
		handshakes: make(chan handshakeMessage, handshakeQueueLen),
		closed:     make(chan struct{}),
		localAddr:  netip.AddrPortFrom(netip.Addr{}, cfg.Conn.LocalPort()),

		cryptoWorkers: cfg.CryptoWorkers,
		localAddrs:    cfg.LocalAddrs,
	}
	d.SetTap(cfg.Tap)
	d.serveRelay.Store(cfg.ServeRelay)
	d.mtu.Store(int64(cfg.TUN.MTU()))
	d.cookies = noise.NewCookieChecker(d.local.Public)
	if d.clock == nil {
		d.clock = RealClock
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	d.index.init()
	// The first peer set is a reload of an empty one: one path validates
	// and builds both.
	d.peers.Store(&peerSet{})
	if _, err := d.Reconfigure(cfg.Peers); err != nil {
		return nil, err
	}
	return d, nil
}

// peerSet is one version of the peer set. It is never modified once
// published: a change builds a new one, so a reader holding one sees a
// consistent set without locks.
type peerSet struct {
	list  []*Peer // in the order of the configuration
	byKey map[keys.Public]*Peer
	// byEndpoint maps the endpoints of the configuration to their peer
	// (an endpoint two peers share maps to nil).
	byEndpoint map[netip.AddrPort]*Peer
}

// newPeerSet indexes list, whose configurations are confs (those the peers
// are about to take), and builds the routing table of their prefixes.
func newPeerSet(list []*Peer, confs []*PeerConfig) (*peerSet, *prefixtable.Table[*Peer]) {
	s := &peerSet{
		list:       list,
		byKey:      make(map[keys.Public]*Peer, len(list)),
		byEndpoint: make(map[netip.AddrPort]*Peer, len(list)),
	}
	routes := new(prefixtable.Table[*Peer])
	for i, p := range list {
		c := confs[i]
		s.byKey[p.public] = p
		for _, pfx := range c.Prefixes {
			routes.Insert(pfx, p)
		}
		if c.Endpoint.IsValid() {
			if _, shared := s.byEndpoint[c.Endpoint]; shared {
				s.byEndpoint[c.Endpoint] = nil
			} else {
				s.byEndpoint[c.Endpoint] = p
			}
		}
	}
	return s, routes
}

// validatePeers refuses a peer set that cannot be applied whole: a peer
// with this node's own key, two peers with one key or one name (the diff
// of a reload goes by key, the status and the capture by name), or one
// prefix given to two peers (one would silently lose it, for routing and
// for the source check). Nested prefixes of two peers are accepted: the
// longest wins both ways, which is how an exit's 0.0.0.0/0 leaves the
// other peers' prefixes direct. New and Reconfigure call it before they
// change anything.
func validatePeers(local keys.Public, peers []PeerConfig) error {
	byKey := make(map[keys.Public]int, len(peers))
	byName := make(map[string]int, len(peers))
	byPrefix := make(map[netip.Prefix]int)
	for i := range peers {
		pc := &peers[i]
		if pc.PublicKey == local {
			return fmt.Errorf("tunnel: peer %q has this node's own public key", pc.Name)
		}
		if j, dup := byKey[pc.PublicKey]; dup {
			return fmt.Errorf("tunnel: peer %q: public key used twice (also peer %q)", pc.Name, peers[j].Name)
		}
		byKey[pc.PublicKey] = i
		if _, dup := byName[pc.Name]; dup {
			return fmt.Errorf("tunnel: peer name %q used twice", pc.Name)
		}
		byName[pc.Name] = i
		for _, pfx := range pc.Prefixes {
			if !pfx.IsValid() {
				continue // the routing table ignores it too
			}
			// Masked, as the routing table stores it.
			if j, dup := byPrefix[pfx.Masked()]; dup && j != i {
				return fmt.Errorf("tunnel: prefix %s of %q is also routed to %q", pfx, pc.Name, peers[j].Name)
			}
			byPrefix[pfx.Masked()] = i
		}
	}
	return nil
}

// Run forwards packets until ctx is done or Close is called. It returns the
// first fatal I/O error, or nil on a clean stop.
func (d *Device) Run(ctx context.Context) error {
	errc := make(chan error, 3)
	d.wg.Add(3)
	go func() { defer d.wg.Done(); errc <- d.routineReadTUN() }()
	go func() { defer d.wg.Done(); errc <- d.routineReadUDP() }()
	go func() { defer d.wg.Done(); d.routineHandshakes(); errc <- nil }()
	d.reconfMu.Lock()
	d.running = true
	for _, p := range d.peers.Load().list {
		p.start()
	}
	d.reconfMu.Unlock()
	d.startPathTicker()
	var err error
	select {
	case <-ctx.Done():
	case <-d.closed:
	case err = <-errc:
		if d.isClosed() {
			err = nil
		}
	}
	d.Close()
	d.wg.Wait()
	return err
}

// Close stops the device: it closes the TUN and the socket, stops every
// timer and wipes the key material.
func (d *Device) Close() {
	d.closeOnce.Do(func() {
		close(d.closed)
		d.pathTimerMu.Lock()
		if d.pathTimer != nil {
			d.pathTimer.Stop()
		}
		d.pathTimerMu.Unlock()
		d.conn.Close()
		d.tun.Close()
		d.reconfMu.Lock()
		defer d.reconfMu.Unlock()
		for _, p := range d.peers.Load().list {
			p.stop()
		}
	})
}

func (d *Device) isClosed() bool {
	select {
	case <-d.closed:
		return true
	default:
		return false
	}
}

func (d *Device) drop(r DeviceDrop) { d.drops[r].Add(1) }

// PeerEndpoint returns the current endpoint of the peer called name (the
// configured one, or where it last roamed to; its relay's, while its path
// goes through one), or the zero AddrPort if no peer has that name or the
// peer has no endpoint yet. A live capture of one
// peer asks it which outer datagrams are that peer's.
func (d *Device) PeerEndpoint(name string) netip.AddrPort {
	if p := d.peerByName(name); p != nil {
		return p.Path().Wire()
	}
	return netip.AddrPort{}
}

// peerByName returns the peer called name in the current peer set, or nil.
func (d *Device) peerByName(name string) *Peer {
	for _, p := range d.peers.Load().list {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// sendControl sends one datagram off the hot path (handshakes, cookies,
// keepalives).
func (d *Device) sendControl(b []byte, to netip.AddrPort) error {
	if !to.IsValid() {
		return errNoEndpoint
	}
	if tap := d.loadTap(); tap != nil {
		tap.Outer(d.clock.Now(), Outbound, d.localAddr, to, b)
	}
	return d.sendUntapped(b, to)
}

// sendUntapped sends one datagram that the capture does not see: a cookie
// reply, which answers whoever claims an address, so that a flood of
// strangers' initiations does not reach the capture through our answers.
func (d *Device) sendUntapped(b []byte, to netip.AddrPort) error {
	msgs := [1]udp.Message{{Buf: b, N: len(b), Addr: to}}
	_, err := d.conn.WriteBatch(msgs[:])
	return err
}

var errNoEndpoint = errors.New("peer has no known endpoint")

// tapHolder holds the current Tap. An atomic pointer to a box rather than
// an atomic.Value: a load is one plain pointer read, with no type
// assertion, and nil (no box) means no tap.
type tapHolder struct{ p atomic.Pointer[tapBox] }

type tapBox struct{ t Tap }

// loadTap returns the current tap, or nil. The forwarding loops call it
// once per batch and use that value for the whole batch: the receive loop
// keeps a copy of a datagram only when there is a tap, and must then show
// the tap that same copy.
func (d *Device) loadTap() Tap {
	if b := d.tap.p.Load(); b != nil {
		return b.t
	}
	return nil
}

// SetTap replaces the tap that sees the traffic (nil: none), while the
// device runs. A batch already under way, or a handshake being answered,
// may still hand packets to the previous tap after SetTap returns, so the
// previous one must tolerate calls after it was replaced or closed (a
// capture.Writer drops them).
func (d *Device) SetTap(t Tap) {
	if t == nil {
		d.tap.p.Store(nil)
		return
	}
	d.tap.p.Store(&tapBox{t: t})
}

// SetMTU changes the MTU transport messages are padded for (the packets
// themselves are whatever the TUN hands over), while the device runs: call
// it when the interface's MTU changes. An mtu below 1 is ignored.
func (d *Device) SetMTU(mtu int) {
	if mtu < 1 {
		return
	}
	d.mtu.Store(int64(mtu))
}

// SetServeRelay turns serving as a relay on or off while the device runs
// (a reload that changes `relay:` of this node's own entry).
func (d *Device) SetServeRelay(on bool) { d.serveRelay.Store(on) }
