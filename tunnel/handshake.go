package tunnel

import (
	"net/netip"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
)

// initiateHandshake sends a handshake initiation to p, unless one (or a
// response) went out less than RekeyTimeout ago (retry is for the
// retransmit timer, which paces itself).
func (p *Peer) initiateHandshake(retry bool) {
	d := p.dev
	now := d.clock.Now()
	p.mu.Lock()
	if !retry && !p.lastHandshakeSent.IsZero() && now.Sub(p.lastHandshakeSent) < noise.RekeyTimeout {
		p.mu.Unlock()
		return
	}
	p.lastHandshakeSent = now
	if p.handshakeIndex != 0 {
		d.index.remove(p.handshakeIndex)
	}
	idx := d.index.newIndex(p)
	p.handshakeIndex = idx
	p.mu.Unlock()

	msg, err := p.handshake.CreateInitiation(now, idx)
	if err != nil {
		d.log.Warn("creating handshake initiation", "peer", p.name, "err", err)
		return
	}
	var buf [noise.MessageInitiationSize]byte
	b := msg.Marshal(buf[:0])
	p.cookieGen.AddMACs(b, now)
	if !retry {
		p.timers.handshakeStarted()
	}
	p.timers.handshakeInitiated()
	ep := p.Endpoint()
	d.log.Debug("sending handshake initiation", "peer", p.name, "endpoint", ep, "retry", retry)
	p.timers.packetSent(false)
	if err := d.sendControl(b, ep); err != nil {
		d.log.Debug("handshake initiation not sent", "peer", p.name, "endpoint", ep, "err", err)
	}
}

// routineHandshakes processes handshake messages one at a time, off the
// data path: they cost Curve25519 operations.
func (d *Device) routineHandshakes() {
	for {
		select {
		case <-d.closed:
			return
		case m := <-d.handshakes:
			d.handleHandshake(m.buf, m.src)
		}
	}
}

func (d *Device) isUnderLoad(now time.Time) bool {
	return now.UnixNano() < d.underLoad.Load()
}

// handleHandshake validates and answers one handshake message.
func (d *Device) handleHandshake(msg []byte, src netip.AddrPort) {
	now := d.clock.Now()
	typ, _ := noise.Type(msg)
	if typ == noise.MessageCookieReplyType {
		d.handleCookieReply(msg, now)
		return
	}
	if (typ == noise.MessageInitiationType && len(msg) != noise.MessageInitiationSize) ||
		(typ == noise.MessageResponseType && len(msg) != noise.MessageResponseSize) {
		d.drop(DropMalformed)
		return
	}
	if !d.cookies.CheckMAC1(msg) {
		d.drop(DropBadMAC)
		return
	}
	if d.isUnderLoad(now) && !d.cookies.CheckMAC2(msg, src, now) {
		// Under load an initiator must prove its address first: answer
		// with a cookie and do no Curve25519 work.
		sender := senderIndex(msg)
		reply, err := d.cookies.CreateReply(msg, sender, src, now)
		if err == nil {
			var buf [noise.MessageCookieReplySize]byte
			d.sendControl(reply.Marshal(buf[:0]), src)
		}
		return
	}
	switch typ {
	case noise.MessageInitiationType:
		d.handleInitiation(msg, src, now)
	case noise.MessageResponseType:
		d.handleResponse(msg, src, now)
	}
}

// senderIndex is the sender field, at the same offset in initiations and
// responses.
func senderIndex(msg []byte) uint32 {
	return uint32(msg[4]) | uint32(msg[5])<<8 | uint32(msg[6])<<16 | uint32(msg[7])<<24
}

func (d *Device) handleInitiation(b []byte, src netip.AddrPort, now time.Time) {
	var msg noise.Initiation
	if err := msg.Unmarshal(b); err != nil {
		d.drop(DropMalformed)
		return
	}
	var peer *Peer
	_, err := d.local.ConsumeInitiation(&msg, now, func(k keys.Public) *noise.Handshake {
		peer = d.byKey[k]
		if peer == nil {
			return nil
		}
		return peer.handshake
	})
	if err != nil || peer == nil {
		// Unknown keys and replays are dropped silently, only counted.
		d.drop(DropHandshake)
		d.log.Debug("refused handshake initiation", "from", src, "err", err)
		return
	}
	p := peer
	p.setEndpoint(src)
	p.mu.Lock()
	if p.handshakeIndex != 0 {
		d.index.remove(p.handshakeIndex)
		p.handshakeIndex = 0
	}
	// The session we answer is unusable until the initiator's first packet
	// confirms it; an initiation of ours before then (say, for data that
	// arrives meanwhile) would only replace it. As in wireguard-go, the
	// response counts as a handshake sent.
	p.lastHandshakeSent = now
	p.mu.Unlock()
	idx := d.index.newIndex(p)
	resp, err := p.handshake.CreateResponse(idx)
	if err != nil {
		d.index.remove(idx)
		d.drop(DropHandshake)
		return
	}
	kp, err := p.handshake.BeginSession(now)
	if err != nil {
		d.index.remove(idx)
		d.drop(DropHandshake)
		return
	}
	d.index.setKeypair(kp.LocalIndex, p, kp)
	p.installKeypair(kp)
	var buf [noise.MessageResponseSize]byte
	out := resp.Marshal(buf[:0])
	p.cookieGen.AddMACs(out, now)
	p.timers.packetReceived(false)
	p.timers.packetSent(false)
	p.timers.sessionDerived()
	if err := d.sendControl(out, src); err != nil {
		d.log.Debug("sending handshake response", "peer", p.name, "err", err)
		return
	}
	d.log.Debug("answered handshake", "peer", p.name, "endpoint", src)
}

func (d *Device) handleResponse(b []byte, src netip.AddrPort, now time.Time) {
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
	if err := p.handshake.ConsumeResponse(&msg); err != nil {
		d.drop(DropHandshake)
		d.log.Debug("refused handshake response", "peer", p.name, "err", err)
		return
	}
	kp, err := p.handshake.BeginSession(now)
	if err != nil {
		d.drop(DropHandshake)
		return
	}
	p.setEndpoint(src)
	d.index.setKeypair(kp.LocalIndex, p, kp)
	p.installKeypair(kp)
	d.log.Debug("handshake complete", "peer", p.name, "endpoint", src)
	p.timers.handshakeComplete()
	p.timers.packetReceived(false)
	p.timers.sessionDerived()
	// Confirm the session to the responder with data, or a keepalive.
	if p.hasStaged() {
		p.sendStaged()
	} else {
		p.sendKeepalive()
	}
}

func (d *Device) handleCookieReply(b []byte, now time.Time) {
	var msg noise.CookieReply
	if err := msg.Unmarshal(b); err != nil {
		d.drop(DropMalformed)
		return
	}
	e, ok := d.index.lookup(msg.Receiver)
	if !ok {
		d.drop(DropUnknownIndex)
		return
	}
	if err := e.peer.cookieGen.ConsumeReply(&msg, now); err != nil {
		d.drop(DropHandshake)
		return
	}
	d.log.Debug("got cookie", "peer", e.peer.name)
}
