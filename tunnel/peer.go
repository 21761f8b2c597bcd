package tunnel

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
)

// PeerDrop is a reason a packet of a known peer was dropped.
type PeerDrop int

// Per-peer drop reasons.
const (
	DropSpoofedSource    PeerDrop = iota // inner source outside the peer's prefixes
	DropReplay                           // counter seen before or too old
	DropDecrypt                          // transport message failing authentication
	DropExpired                          // session past its reject limits
	DropStagedFull                       // waiting-for-handshake queue full
	DropNoEndpoint                       // nowhere to send: peer never heard from, no endpoint
	DropSend                             // socket write failed
	DropHandshakeTimeout                 // staged packets discarded after RekeyAttemptTime
	DropControl                          // control message refused: malformed, or not for us to act on
	numPeerDrops
)

var peerDropNames = [numPeerDrops]string{"spoofed_source", "replay", "decrypt", "expired", "staged_full", "no_endpoint", "send_error", "handshake_timeout", "control"}

func (r PeerDrop) String() string { return peerDropNames[r] }

// maxStaged bounds the packets queued per peer while a handshake is under way.
const maxStaged = 128

// Peer is one remote node of the mesh.
type Peer struct {
	dev    *Device
	public keys.Public
	// conf is the peer's configuration (name, prefixes, endpoint as
	// configured, keepalive, preshared key), read by the forwarding loops,
	// the timers and Status while Reconfigure may replace it: a new one is
	// stored whole, one is never modified.
	conf atomic.Pointer[PeerConfig]

	handshake *noise.Handshake
	cookieGen *noise.CookieGenerator

	// endpoint is the path in use (see Endpoint): nil until the peer has
	// an address or a relay.
	endpoint atomic.Pointer[Endpoint]
	// lastDirect is when (unix nanos) the direct path last proved to work:
	// a packet straight from the peer, or an answer to a probe.
	lastDirect atomic.Int64
	// speaksControl is set once the peer is known to run peer, not stock
	// WireGuard: it sent a control message, or came through a relay. Only
	// then is it probed.
	speaksControl atomic.Bool
	// ctrlTx counts the control messages among txPackets, so that the
	// path machinery tells data sent from its own probes.
	ctrlTx    atomic.Uint64
	pathState pathState

	// current is the session used for sending; mirrored from keypairs for
	// a lock-free hot path.
	current atomic.Pointer[noise.Keypair]

	// hsMu makes each handshake step one with the index table, so the
	// index named in the noise.Handshake is always the one registered:
	// allocating our index with CreateInitiation, ConsumeInitiation through
	// BeginSession, ConsumeResponse through BeginSession, and the wipe. It
	// is held for Curve25519 work but never across a send, and never on
	// the transport path; it is taken before mu.
	hsMu           sync.Mutex
	handshakeIndex uint32 // index of our initiation in flight, 0 if none; guarded by hsMu
	// gone is set when Reconfigure removed the peer: from then on nothing
	// creates state for it (an index, a session, a staged packet, a
	// handshake). Written holding hsMu and mu, read holding either.
	gone bool

	mu       sync.Mutex // guards the fields below
	keypairs struct{ previous, current, next *noise.Keypair }
	staged   [][]byte
	// lastHandshakeSent is when we last sent an initiation or a response:
	// within RekeyTimeout of either, a new initiation is redundant (the
	// other side is still answering, or still confirming ours).
	lastHandshakeSent time.Time
	lastHandshake     time.Time // completion of the latest handshake
	rekeyRequested    bool      // the receive-side rekey was already asked for this session

	timers peerTimers

	// lastRestartNudge is when (unix nanos) a transport message for an
	// unknown session from this peer's endpoint last started a handshake.
	lastRestartNudge atomic.Int64

	rxPackets, rxBytes, txPackets, txBytes atomic.Uint64
	drops                                  [numPeerDrops]atomic.Uint64
	handshakes                             [numHandshakeResults]atomic.Uint64
}

func newPeer(d *Device, pc *PeerConfig) (*Peer, error) {
	p := &Peer{
		dev:       d,
		public:    pc.PublicKey,
		cookieGen: noise.NewCookieGenerator(pc.PublicKey),
	}
	// The key log is always on: a tap may be set later (SetTap), and a
	// handshake costs a Curve25519 operation anyway, beside which the
	// tap's load is nothing.
	hs, err := noise.NewHandshake(d.local, pc.PublicKey, pc.Preshared, noise.WithKeyLog(p.tapEphemeral))
	if err != nil {
		return nil, fmt.Errorf("tunnel: peer %q: %w", pc.Name, err)
	}
	p.handshake = hs
	p.conf.Store(cloneConfig(pc))
	if pc.Endpoint.IsValid() {
		p.endpoint.Store(direct(pc.Endpoint, d.clock.Now()))
	}
	p.timers.init(p)
	return p, nil
}

// tapEphemeral shows the tap, if any, an ephemeral key of p's handshake
// (noise.WithKeyLog).
func (p *Peer) tapEphemeral(eph keys.Private) {
	if tap := p.dev.loadTap(); tap != nil {
		c := p.conf.Load()
		tap.EphemeralKey(c.Name, p.public, c.Preshared, eph)
	}
}

// cloneConfig copies pc with a prefix list of its own, so that what the
// caller does with its slice later cannot reach a running peer.
func cloneConfig(pc *PeerConfig) *PeerConfig {
	c := *pc
	c.Prefixes = slices.Clone(pc.Prefixes)
	return &c
}

// Name returns the peer's name from the mesh file.
func (p *Peer) Name() string { return p.conf.Load().Name }

// Endpoint returns the peer's address while the path to it is direct
// (zero if unknown, or while it goes through a relay).
func (p *Peer) Endpoint() netip.AddrPort {
	if ep := p.endpoint.Load(); ep != nil && ep.relay == nil {
		return ep.addr
	}
	return netip.AddrPort{}
}

func (p *Peer) drop(r PeerDrop) { p.drops[r].Add(1) }

func (p *Peer) start() {
	if p.conf.Load().Relay {
		// Register with a relay at once: peers behind NAT are reached
		// through it from the first packet.
		p.tickRelay(p.dev.clock.Now())
	}
	if p.conf.Load().Keepalive > 0 {
		// A persistent keepalive also opens the session at start, so a peer
		// behind NAT is reachable without waiting for traffic.
		p.sendKeepalive()
	}
}

// remove takes p out of service for good, once it has left the peer set:
// nothing may create state for it from now on (see gone), its staged
// packets are dropped, its timers stop and its key material is wiped,
// which retires its indices.
func (p *Peer) remove() {
	p.hsMu.Lock()
	p.mu.Lock()
	p.gone = true
	p.staged = nil
	p.mu.Unlock()
	p.hsMu.Unlock()
	p.stop()
}

// stop cancels the timers and wipes every session and handshake.
func (p *Peer) stop() {
	p.timers.stopAll()
	p.zeroKeyMaterial()
}

// zeroKeyMaterial drops every session and the handshake state.
func (p *Peer) zeroKeyMaterial() {
	p.hsMu.Lock()
	defer p.hsMu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, kp := range []*noise.Keypair{p.keypairs.previous, p.keypairs.current, p.keypairs.next} {
		if kp != nil {
			p.dev.index.remove(kp.LocalIndex)
			kp.Zero()
		}
	}
	p.keypairs.previous, p.keypairs.current, p.keypairs.next = nil, nil, nil
	p.current.Store(nil)
	if p.handshakeIndex != 0 {
		p.dev.index.remove(p.handshakeIndex)
		p.handshakeIndex = 0
	}
	p.handshake.Clear()
}

// usable reports whether kp may still carry data at now.
func usable(kp *noise.Keypair, now time.Time) bool {
	return kp != nil && now.Sub(kp.Created) < noise.RejectAfterTime && kp.SendCount() < noise.RejectAfterMessages
}

// installKeypair records a new session. The initiator uses it at once; the
// responder keeps it as "next" until the initiator's first data confirms it.
func (p *Peer) installKeypair(kp *noise.Keypair) {
	p.mu.Lock()
	defer p.mu.Unlock()
	retire := func(old *noise.Keypair) {
		if old != nil {
			p.dev.index.remove(old.LocalIndex)
			old.Zero()
		}
	}
	if kp.Initiator {
		if p.keypairs.next != nil {
			// An unconfirmed session from the other side's handshake
			// becomes the fallback; the current one is superseded twice.
			retire(p.keypairs.previous)
			retire(p.keypairs.current)
			p.keypairs.previous = p.keypairs.next
			p.keypairs.next = nil
		} else {
			retire(p.keypairs.previous)
			p.keypairs.previous = p.keypairs.current
		}
		p.keypairs.current = kp
		p.current.Store(kp)
	} else {
		retire(p.keypairs.next)
		p.keypairs.next = kp
	}
	p.lastHandshake = kp.Created
	p.rekeyRequested = false
}

// receivedWith is called after a transport message authenticated under kp.
// It confirms a responder's "next" session. It reports whether the current
// session changed (so staged packets can go).
func (p *Peer) receivedWith(kp *noise.Keypair) bool {
	if p.current.Load() == kp {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.keypairs.next != kp {
		return false
	}
	if old := p.keypairs.previous; old != nil {
		p.dev.index.remove(old.LocalIndex)
		old.Zero()
	}
	p.keypairs.previous = p.keypairs.current
	p.keypairs.current = kp
	p.keypairs.next = nil
	p.current.Store(kp)
	return true
}

// stage keeps a copy of pkt until a session exists; the oldest packet is
// dropped when the queue is full. The copy is sized for in-place
// encryption later (header, padding, tag): staging is the rare path, so it
// may allocate, and an idle peer holds no buffers.
func (p *Peer) stage(pkt []byte) {
	const off = noise.MessageTransportHeaderSize
	b := make([]byte, off+len(pkt), off+len(pkt)+noise.PaddingMultiple+16)
	copy(b[off:], pkt)
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		return // routed just before the peer was removed
	}
	if len(p.staged) >= maxStaged {
		copy(p.staged, p.staged[1:])
		p.staged = p.staged[:len(p.staged)-1]
		p.drop(DropStagedFull)
	}
	p.staged = append(p.staged, b)
	p.mu.Unlock()
}

// hasStaged reports whether packets wait for a session.
func (p *Peer) hasStaged() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.staged) > 0
}

// takeStaged removes and returns the staged packets.
func (p *Peer) takeStaged() [][]byte {
	p.mu.Lock()
	s := p.staged
	p.staged = nil
	p.mu.Unlock()
	return s
}

// dropStaged discards the staged packets, counting them as reason.
func (p *Peer) dropStaged(reason PeerDrop) {
	for range p.takeStaged() {
		p.drop(reason)
	}
}
