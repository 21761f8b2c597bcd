package tunnel

import (
	"errors"
	"net/netip"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
)

// HandshakeResult is how one handshake of a peer ended, as counted in its
// status.
type HandshakeResult int

// Handshake results.
const (
	HandshakeCompletedInitiator HandshakeResult = iota // our initiation was answered: a session as initiator
	HandshakeCompletedResponder                        // we answered the peer's initiation: a session as responder
	HandshakeFailed                                    // a message of the peer's handshake was refused (stale, replayed, not authentic)
	HandshakeTimeout                                   // no answer within RekeyAttemptTime: we gave up
	numHandshakeResults
)

var handshakeResultNames = [numHandshakeResults]string{"completed_initiator", "completed_responder", "failed", "timeout"}

func (r HandshakeResult) String() string { return handshakeResultNames[r] }

// countHandshake counts one handshake of p ending as r. Off the data path:
// only the handshake worker and the timers call it.
func (p *Peer) countHandshake(r HandshakeResult) { p.handshakes[r].Add(1) }

// initiateHandshake sends a handshake initiation to p, unless one (or a
// response) went out less than RekeyTimeout ago, as in wireguard-go's
// SendHandshakeInitiation. The retransmit timer (retry) obeys that too: it
// runs RekeyTimeout after its own initiation, so it is held back only when
// another caller just sent one, and two initiations at once would make
// the peer refuse one (flood, replay), possibly the newer.
func (p *Peer) initiateHandshake(retry bool) {
	d := p.dev
	now := d.clock.Now()
	p.mu.Lock()
	if p.gone {
		p.mu.Unlock()
		return
	}
	if !p.lastHandshakeSent.IsZero() && now.Sub(p.lastHandshakeSent) < noise.RekeyTimeout {
		p.mu.Unlock()
		if retry {
			// Keep retransmitting until a session is confirmed:
			// the initiation or response just sent may be lost too.
			p.timers.handshakeInitiated()
		}
		return
	}
	p.lastHandshakeSent = now
	p.mu.Unlock()

	msg, err := p.createInitiation()
	if errors.Is(err, errPeerRemoved) {
		return
	}
	if err != nil {
		d.log.Warn("creating handshake initiation", "peer", p.Name(), "err", err)
		return
	}
	var buf [noise.MessageInitiationSize]byte
	b := msg.Marshal(buf[:0])
	p.cookieGen.AddMACs(b, now)
	if !retry {
		p.timers.handshakeStarted()
	}
	p.timers.handshakeInitiated()
	ep := p.path(now)
	d.log.Debug("sending handshake initiation", "peer", p.Name(), "path", ep, "retry", retry)
	p.timers.packetSent(false)
	if err := p.sendDatagram(b, now); err != nil {
		d.log.Debug("handshake initiation not sent", "peer", p.Name(), "path", ep, "err", err)
	}
}

// createInitiation replaces our handshake in flight with a new one. Under
// hsMu, so that of two callers racing (the retransmit timer and the TUN
// path), the index left in the table is the one the handshake announces.
// The clock is read under the lock too: the later initiation carries the
// later timestamp, which is the one the peer keeps.
func (p *Peer) createInitiation() (*noise.Initiation, error) {
	d := p.dev
	p.hsMu.Lock()
	defer p.hsMu.Unlock()
	if p.gone {
		return nil, errPeerRemoved
	}
	if p.handshakeIndex != 0 {
		d.index.remove(p.handshakeIndex)
		p.handshakeIndex = 0
	}
	idx := d.index.newIndex(p)
	msg, err := p.handshake.CreateInitiation(d.clock.Now(), idx)
	if err != nil {
		// No handshake in flight then, and no index for one.
		d.index.remove(idx)
		p.handshake.Clear()
		return nil, err
	}
	p.handshakeIndex = idx
	return msg, nil
}

// routineHandshakes processes handshake messages one at a time, off the
// data path: they cost Curve25519 operations.
func (d *Device) routineHandshakes() {
	d.limiter.Init()
	// Only after the last Allow: Allow on a closed limiter can panic.
	defer d.limiter.Close()
	// One slot for the worker's life, received into: a fresh one per
	// message would be allocated, since its bytes are handed on.
	m := new(handshakeMessage)
	for {
		select {
		case <-d.closed:
			return
		case *m = <-d.handshakes:
			d.handleHandshake(m.buf[:m.n], m.src, m.via, m.t)
		}
	}
}

func (d *Device) isUnderLoad(now time.Time) bool {
	return now.UnixNano() < d.underLoad.Load()
}

// handleHandshake validates and answers one handshake message received
// from src at t (forwarded by relay via, if not nil), whose size
// queueHandshake checked.
func (d *Device) handleHandshake(msg []byte, src netip.AddrPort, via *Peer, t time.Time) {
	now := d.clock.Now()
	typ, _ := noise.Type(msg)
	if typ == noise.MessageCookieReplyType {
		if d.handleCookieReply(msg, now) && via == nil {
			d.tapInbound(t, src, msg)
		}
		return
	}
	if !d.cookies.CheckMAC1(msg) {
		d.drop(DropBadMAC)
		return
	}
	// A relayed message came in a datagram of a member's session (the
	// relay's), so no address is to be proven with a cookie: the relay
	// is a member, and its own handshakes are what the load checks guard.
	if via == nil && d.isUnderLoad(now) {
		if !d.cookies.CheckMAC2(msg, src, now) {
			// Under load an initiator must prove its address first:
			// answer with a cookie and do no Curve25519 work.
			sender := senderIndex(msg)
			reply, err := d.cookies.CreateReply(msg, sender, src, now)
			if err == nil {
				var buf [noise.MessageCookieReplySize]byte
				d.sendUntapped(reply.Marshal(buf[:0]), src)
			}
			return
		}
		// The address is proven, but one address may still not keep
		// the worker busy with Curve25519 and crowd out the others.
		if !d.limiter.Allow(rateLimitKey(src)) {
			d.drop(DropHandshakeRateLimited)
			return
		}
	}
	// The capture sees the message only once it authenticated (see
	// tapInbound): mac1 is no credential, since anyone who knows our public
	// key (it is in the mesh file) can compute it.
	switch typ {
	case noise.MessageInitiationType:
		d.handleInitiation(msg, src, via, now, t)
	case noise.MessageResponseType:
		d.handleResponse(msg, src, via, now, t)
	}
}

// rateLimitKey is the address src is rate-limited by: IPv4 addresses one
// by one, IPv6 ones by /64, as the Linux kernel's limiter does, since one
// host commonly holds a whole /64 and could otherwise multiply its share
// (and the limiter's table) at will.
func rateLimitKey(src netip.AddrPort) netip.Addr {
	a := src.Addr().Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		a = p.Addr()
	}
	return a
}

// senderIndex is the sender field, at the same offset in initiations and
// responses.
func senderIndex(msg []byte) uint32 {
	return uint32(msg[4]) | uint32(msg[5])<<8 | uint32(msg[6])<<16 | uint32(msg[7])<<24
}

// handleInitiation answers an initiation received from src at t, on the
// path it came by (through relay via, if not nil).
func (d *Device) handleInitiation(b []byte, src netip.AddrPort, via *Peer, now, t time.Time) {
	var msg noise.Initiation
	if err := msg.Unmarshal(b); err != nil {
		d.drop(DropMalformed)
		return
	}
	p, resp, err := d.respond(&msg, now)
	if err != nil {
		// Unknown keys and replays are dropped silently, only counted.
		d.drop(DropHandshake)
		d.log.Debug("refused handshake initiation", "from", src, "err", err)
		return
	}
	p.countHandshake(HandshakeCompletedResponder)
	// From a member (its static key and a fresh timestamp): captured,
	// before our response, which Wireshark decrypts only after it.
	var buf [noise.MessageResponseSize]byte
	out := resp.Marshal(buf[:0])
	p.cookieGen.AddMACs(out, now)
	p.timers.packetReceived(false)
	p.timers.packetSent(false)
	p.timers.sessionDerived()
	if via != nil {
		p.relayedFrom(via, now)
		err = d.relayDatagram(via, p, out, now, nil)
	} else {
		d.tapInbound(t, src, b)
		p.setEndpoint(src, now)
		err = d.sendControl(out, src)
	}
	if err != nil {
		d.log.Debug("sending handshake response", "peer", p.Name(), "err", err)
		return
	}
	d.log.Debug("answered handshake", "peer", p.Name(), "endpoint", src, "via", via.nameOrEmpty())
}

// respond consumes an initiation and answers it, deriving the responder's
// session, as one step under the initiator's hsMu: an initiation of ours
// created in between would replace the state ConsumeInitiation recorded.
func (d *Device) respond(msg *noise.Initiation, now time.Time) (*Peer, *noise.Response, error) {
	var p *Peer
	_, err := d.local.ConsumeInitiation(msg, now, func(k keys.Public) *noise.Handshake {
		if p = d.peers.Load().byKey[k]; p == nil {
			return nil
		}
		// The lookup is the first moment the peer is known, and comes
		// before ConsumeInitiation touches its handshake.
		p.hsMu.Lock()
		if p.gone {
			// Removed since the set was read: refused as any key
			// that is not a peer's.
			p.hsMu.Unlock()
			p = nil
			return nil
		}
		return p.handshake
	})
	if p == nil {
		return nil, nil, err
	}
	defer p.hsMu.Unlock()
	if err != nil {
		// A known key: a replayed or stale initiation of this peer.
		p.countHandshake(HandshakeFailed)
		return nil, nil, err // the handshake is unchanged
	}
	// Our own initiation in flight, if any, was just replaced.
	if p.handshakeIndex != 0 {
		d.index.remove(p.handshakeIndex)
		p.handshakeIndex = 0
	}
	// The session we answer is unusable until the initiator's first packet
	// confirms it; an initiation of ours before then (say, for data that
	// arrives meanwhile) would only replace it. As in wireguard-go, the
	// response counts as a handshake sent.
	p.mu.Lock()
	p.lastHandshakeSent = now
	p.mu.Unlock()
	idx := d.index.newIndex(p)
	resp, err := p.handshake.CreateResponse(idx)
	if err != nil {
		d.index.remove(idx)
		return nil, nil, err
	}
	kp, err := p.handshake.BeginSession(now)
	if err != nil {
		d.index.remove(idx)
		return nil, nil, err
	}
	d.index.setKeypair(kp.LocalIndex, p, kp)
	p.installKeypair(kp)
	return p, resp, nil
}

// handleResponse completes our handshake with a response received from src
// at t (through relay via, if not nil).
func (d *Device) handleResponse(b []byte, src netip.AddrPort, via *Peer, now, t time.Time) {
	var msg noise.Response
	if err := msg.Unmarshal(b); err != nil {
		d.drop(DropMalformed)
		return
	}
	e, ok := d.index.lookup(msg.Receiver)
	if !ok || e.keypair != nil {
		d.drop(DropUnknownIndex)
		return
	}
	p := e.peer
	if err := p.completeHandshake(&msg, now); err != nil {
		if errors.Is(err, errStaleResponse) {
			d.drop(DropUnknownIndex)
		} else {
			d.drop(DropHandshake)
			p.countHandshake(HandshakeFailed)
		}
		d.log.Debug("refused handshake response", "peer", p.Name(), "err", err)
		return
	}
	if via != nil {
		p.relayedFrom(via, now)
	} else {
		d.tapInbound(t, src, b) // it authenticated: from the peer we asked
		p.setEndpoint(src, now)
	}
	d.log.Debug("handshake complete", "peer", p.Name(), "endpoint", src, "via", via.nameOrEmpty())
	p.countHandshake(HandshakeCompletedInitiator)
	p.timers.handshakeComplete()
	p.timers.packetReceived(false)
	p.timers.sessionDerived()
	// Confirm the session to the responder with data, or a keepalive.
	switch {
	case p.hasStaged():
		p.sendStaged()
	case p.conf.Load().Relay:
		p.sendHello(now) // it confirms the session as well
		d.kickWaiting(p, now)
	default:
		p.sendKeepalive()
	}
}

var (
	errStaleResponse = errors.New("response to an initiation no longer in flight")
	errPeerRemoved   = errors.New("peer removed from the configuration")
)

// rekey starts a handshake at once, for a new preshared key. The hold-back
// of RekeyTimeout after the last handshake message does not apply: that
// one was made under the old key.
func (p *Peer) rekey() {
	p.mu.Lock()
	p.lastHandshakeSent = time.Time{}
	p.mu.Unlock()
	p.initiateHandshake(false)
}

// completeHandshake consumes the response to our initiation in flight and
// installs the session, as one step under hsMu (see createInitiation).
func (p *Peer) completeHandshake(msg *noise.Response, now time.Time) error {
	d := p.dev
	p.hsMu.Lock()
	defer p.hsMu.Unlock()
	if p.handshakeIndex == 0 || msg.Receiver != p.handshakeIndex {
		// Replaced between the index lookup and the lock.
		return errStaleResponse
	}
	if err := p.handshake.ConsumeResponse(msg); err != nil {
		return err
	}
	kp, err := p.handshake.BeginSession(now)
	if err != nil {
		return err
	}
	p.handshakeIndex = 0 // it now names the session
	d.index.setKeypair(kp.LocalIndex, p, kp)
	p.installKeypair(kp)
	return nil
}

// handleCookieReply takes in a cookie for one of our handshakes; it
// reports whether the reply decrypted (so it came from that peer).
func (d *Device) handleCookieReply(b []byte, now time.Time) bool {
	var msg noise.CookieReply
	if err := msg.Unmarshal(b); err != nil {
		d.drop(DropMalformed)
		return false
	}
	e, ok := d.index.lookup(msg.Receiver)
	if !ok {
		d.drop(DropUnknownIndex)
		return false
	}
	if err := e.peer.cookieGen.ConsumeReply(&msg, now); err != nil {
		d.drop(DropHandshake)
		return false
	}
	d.log.Debug("got cookie", "peer", e.peer.Name())
	return true
}
