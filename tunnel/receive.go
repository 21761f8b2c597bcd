package tunnel

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/udp"
)

// opened is a transport message that Open authenticated, with what
// received needs to finish it.
type opened struct {
	kp   *noise.Keypair // the session it was addressed to
	pkt  []byte         // plaintext, in place after the transport header
	ctr  uint64         // its counter, for the replay window
	src  netip.AddrPort // where the datagram came from
	size int            // datagram length, for the counters
	// via is the relay that forwarded it, nil if it came straight from
	// the peer.
	via *Peer
}

// openJob is one transport message of a batch on its way in: kp, src and
// size are set when it is queued, pkt and ctr (or err) by Open.
type openJob struct {
	opened
	msg  int // index in the batch's msgs; pkt is at msgs[msg].Buf[16:]
	peer *Peer
	err  error
}

// receiveBatch holds the reusable state of the UDP→TUN loop.
type receiveBatch struct {
	msgs []udp.Message
	jobs []openJob
	out  [][]byte // plaintext packets at out[i][16:] for the TUN write
	job  cryptoJob
	// wire[i] keeps the datagram of msgs[i] as received, when there is a
	// tap: it is decrypted in place, and shown to the tap only once it
	// authenticated. Grown on demand, then reused.
	wire [][]byte
}

// work decrypts jobs [lo, hi); it runs on several cores at once. Only
// authentication happens here: the replay window and every other piece of
// state are updated afterwards, in order, on the reading goroutine.
func (b *receiveBatch) work(lo, hi int) {
	const off = noise.MessageTransportHeaderSize
	for i := lo; i < hi; i++ {
		j := &b.jobs[i]
		m := &b.msgs[j.msg]
		msg := m.Buf[:m.N]
		j.pkt, j.ctr, j.err = j.kp.Open(msg[off:off], msg)
	}
}

// handshakeMessage is a handshake datagram queued for the worker. The
// queue holds the bytes themselves: its channel is a fixed ring of
// handshakeQueueLen slots, each sized for the largest handshake message,
// so queuing allocates nothing whoever sends, and the memory is bounded.
type handshakeMessage struct {
	buf [noise.MessageInitiationSize]byte
	n   int
	src netip.AddrPort
	via *Peer     // the relay that forwarded it, if one did
	t   time.Time // received, for the tap
}

// handshakeSize is the one valid length of a handshake message of type typ.
func handshakeSize(typ uint32) int {
	switch typ {
	case noise.MessageInitiationType:
		return noise.MessageInitiationSize
	case noise.MessageResponseType:
		return noise.MessageResponseSize
	case noise.MessageCookieReplyType:
		return noise.MessageCookieReplySize
	}
	return -1
}

// routineReadUDP is the inbound path: UDP → authenticate/decrypt → TUN.
func (d *Device) routineReadUDP() error {
	const off = noise.MessageTransportHeaderSize
	bs := d.conn.BatchSize()
	b := &receiveBatch{msgs: make([]udp.Message, bs), jobs: make([]openJob, 0, bs), out: make([][]byte, 0, bs), wire: make([][]byte, bs)}
	for i := range b.msgs {
		b.msgs[i].Buf = make([]byte, bufSize)
	}
	crypto := newCryptoPool(d.cryptoWorkers)
	defer crypto.close()
	for {
		n, err := d.conn.ReadBatch(b.msgs)
		if err != nil && n == 0 {
			if d.isClosed() {
				return nil
			}
			return fmt.Errorf("reading UDP: %w", err)
		}
		now := d.clock.Now()
		// One tap for the whole batch: a datagram is copied for the tap
		// below only if there is one, and that copy is what it is shown.
		tap := d.loadTap()
		b.jobs = b.jobs[:0]
		for i := 0; i < n; i++ {
			m := &b.msgs[i]
			msg := m.Buf[:m.N]
			typ, ok := noise.Type(msg)
			if !ok {
				d.drop(DropMalformed)
				continue
			}
			switch typ {
			case noise.MessageTransportType:
				if p, kp, ok := d.session(msg, m.Addr, now); ok {
					b.jobs = append(b.jobs, openJob{msg: i, peer: p, opened: opened{kp: kp, src: m.Addr, size: m.N}})
					if tap != nil {
						b.wire[i] = append(b.wire[i][:0], msg...)
					}
				}
			case noise.MessageInitiationType, noise.MessageResponseType, noise.MessageCookieReplyType:
				d.queueHandshake(typ, m.Buf[:m.N], m.Addr, nil, now)
			default:
				d.drop(DropMalformed)
			}
		}
		crypto.run(&b.job, b, len(b.jobs))
		b.out = b.out[:0]
		var lastPeer *Peer
		var lastData bool
		for i := range b.jobs {
			j := &b.jobs[i]
			m := &b.msgs[j.msg]
			if j.err != nil {
				j.peer.drop(DropDecrypt)
				continue
			}
			pkt, data, ok := j.peer.received(j.opened, now)
			if !ok {
				continue
			}
			if tap != nil {
				// Authenticated and not a replay: from a member.
				tap.Outer(now, Inbound, m.Addr, d.localAddr, b.wire[j.msg][:m.N])
			}
			if j.peer != lastPeer {
				if lastPeer != nil {
					lastPeer.timers.packetReceived(lastData)
				}
				lastPeer, lastData = j.peer, false
			}
			lastData = lastData || data
			if len(pkt) == 0 {
				continue // keepalive, or a control message
			}
			if tap != nil {
				tap.Inner(now, Inbound, j.peer.Name(), pkt)
			}
			// pkt sits at m.Buf[16:]: hand the whole buffer over.
			b.out = append(b.out, m.Buf[:off+len(pkt)])
		}
		if lastPeer != nil {
			lastPeer.timers.packetReceived(lastData)
		}
		if len(b.out) > 0 {
			if _, err := d.tun.Write(b.out, off); err != nil && !d.isClosed() {
				d.log.Debug("tun write", "err", err)
			}
		}
	}
}

// session finds the session a transport message from src is addressed to.
func (d *Device) session(msg []byte, src netip.AddrPort, now time.Time) (*Peer, *noise.Keypair, bool) {
	receiver, _, ok := noise.ParseTransportHeader(msg)
	if !ok {
		d.drop(DropMalformed)
		return nil, nil, false
	}
	e, ok := d.index.lookup(receiver)
	if !ok || e.keypair == nil {
		d.drop(DropUnknownIndex)
		d.unknownSessionFrom(src, now)
		return nil, nil, false
	}
	if now.Sub(e.keypair.Created) >= noise.RejectAfterTime {
		e.peer.drop(DropExpired)
		return nil, nil, false
	}
	return e.peer, e.keypair, true
}

// unknownSessionFrom handles a transport message for no session of ours
// that came from the endpoint the mesh file gives a peer. When we have no
// session with that peer, it most likely still holds one from before this
// node restarted, and would send into it until its own timers give up
// (KeepaliveTimeout+RekeyTimeout, 15 s): a one-way flow toward a restarted
// node would stall that long. So we start a handshake ourselves, at most
// once per RekeyTimeout per peer and off this goroutine. The datagram is
// not authenticated: all a forger of that address gains is one initiation
// to the real peer per RekeyTimeout.
func (d *Device) unknownSessionFrom(src netip.AddrPort, now time.Time) {
	if p := d.peers.Load().byEndpoint[src]; p != nil && p.nudgeAfterRestart(now) {
		d.log.Debug("data for an unknown session from a peer's endpoint, handshaking", "peer", p.Name(), "from", src)
	}
}

// nudgeAfterRestart starts a handshake with p, which sent data on a
// session this node does not know (it restarted since), unless a usable
// session exists or a nudge was made within RekeyTimeout; it reports
// whether it started one.
func (p *Peer) nudgeAfterRestart(now time.Time) bool {
	if usable(p.current.Load(), now) {
		return false
	}
	last := p.lastRestartNudge.Load()
	if last != 0 && now.UnixNano()-last < int64(noise.RekeyTimeout) {
		return false
	}
	if !p.lastRestartNudge.CompareAndSwap(last, now.UnixNano()) {
		return false
	}
	go p.initiateHandshake(false)
	return true
}

// received finishes a transport message that authenticated (a failed Open
// is the caller's DropDecrypt): replay window, roaming, session
// confirmation, counters, and the admission of the inner packet, or the
// handling of a control message. It returns the packet to write to the TUN
// (empty for a keepalive or a control message), and whether what came
// counts as data for the timers (an IP packet, or a datagram relayed).
func (p *Peer) received(m opened, now time.Time) (pkt []byte, data, ok bool) {
	if !m.kp.CheckReplay(m.ctr) {
		p.drop(DropReplay)
		return nil, false, false
	}
	ctrl := isControl(m.pkt)
	switch {
	case m.via != nil:
		if ctrl {
			p.drop(DropControl) // control messages go straight, never relayed
			return nil, false, false
		}
		p.relayedFrom(m.via, now)
	case ctrl && isProbe(m.pkt):
		// A probe proves one direction only; its answer is handled
		// apart (directConfirmed).
	default:
		// Authenticated: roam to wherever it came from.
		p.setEndpoint(m.src, now)
	}
	if p.receivedWith(m.kp) {
		p.timers.handshakeComplete()
		go p.sendStaged()
	}
	p.rxPackets.Add(1)
	p.rxBytes.Add(uint64(m.size))
	// Near RejectAfterTime the initiator of the session in use asks for a
	// new one while the other side is still talking. The session in use,
	// not kp: a late packet on the previous session says nothing about
	// the age of the current one.
	if cur := p.current.Load(); cur != nil && cur.Initiator && now.Sub(cur.Created) > noise.RejectAfterTime-noise.KeepaliveTimeout-noise.RekeyTimeout {
		p.rekeyOnReceive()
	}
	if len(m.pkt) == 0 {
		return m.pkt, false, true
	}
	if ctrl {
		return nil, p.dev.handleControl(p, m.pkt, m.src, now), true
	}
	pkt, verdict := p.admit(m.pkt)
	switch verdict {
	case admitMalformed:
		p.dev.drop(DropMalformed)
		return nil, false, false
	case admitSpoofed:
		p.drop(DropSpoofedSource)
		return nil, false, false
	}
	return pkt, true, true
}

// admitVerdict is what admit decides about an inbound packet.
type admitVerdict int

const (
	admitForward   admitVerdict = iota
	admitMalformed              // not IPv4/IPv6, or shorter than its header says
	admitSpoofed                // inner source not among the sender's prefixes
)

// admit checks a decrypted packet from p: it strips the padding (the IP
// header's own length says where the packet ends) and accepts only inner
// sources that route back to p, so no peer can speak for another's prefixes.
func (p *Peer) admit(pkt []byte) ([]byte, admitVerdict) {
	plen, ok := ipLength(pkt)
	if !ok || plen > len(pkt) {
		return nil, admitMalformed
	}
	pkt = pkt[:plen]
	var q *Peer
	if ipVersion(pkt) == 4 {
		q, ok = p.dev.routes.LookupBytes(pkt[ipv4OffsetSrc : ipv4OffsetSrc+ipv4AddrLen])
	} else {
		q, ok = p.dev.routes.LookupBytes(pkt[ipv6OffsetSrc : ipv6OffsetSrc+ipv6AddrLen])
	}
	if !ok || q != p {
		return nil, admitSpoofed
	}
	return pkt, admitForward
}

// rekeyOnReceive starts a new handshake once per session when the session
// we initiated is about to expire and the other side is still talking.
func (p *Peer) rekeyOnReceive() {
	p.mu.Lock()
	already := p.rekeyRequested
	p.rekeyRequested = true
	p.mu.Unlock()
	if !already {
		p.initiateHandshake(false)
	}
}

// queueHandshake hands a handshake message b of type typ, from src (or
// forwarded by relay via), to the worker, copying it into the queue so the
// batch buffer can be reused; a message of the wrong size is malformed,
// and a full queue drops it.
func (d *Device) queueHandshake(typ uint32, b []byte, src netip.AddrPort, via *Peer, now time.Time) {
	if len(b) != handshakeSize(typ) {
		d.drop(DropMalformed)
		return
	}
	if len(d.handshakes) >= underLoadQueueLen {
		d.underLoad.Store(now.Add(underLoadAfterTime).UnixNano())
	}
	hm := handshakeMessage{n: len(b), src: src, via: via, t: now}
	copy(hm.buf[:], b)
	select {
	case d.handshakes <- hm:
	default:
		d.drop(DropHandshakeQueue)
	}
}

// tapInbound shows the tap a datagram received from src at t. It is called
// only once the datagram is known to come from a member: a transport
// message that authenticated and passed the replay check, an initiation
// from a peer's static key with a fresh timestamp, a response that
// completed our handshake, a cookie reply that decrypted. Nothing an unauthenticated sender does reaches the capture,
// whose work per source would otherwise be theirs to command.
func (d *Device) tapInbound(t time.Time, src netip.AddrPort, datagram []byte) {
	if tap := d.loadTap(); tap != nil {
		tap.Outer(t, Inbound, src, d.localAddr, datagram)
	}
}
