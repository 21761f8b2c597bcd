package tunnel

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
)

// errNoSession: a control message could not be sealed, since there is no
// usable session with its recipient yet (a handshake was started).
var errNoSession = errors.New("no session yet")

// relayOverhead is what forwarding through a relay adds to a datagram:
// the control header, a key, the padding and the outer transport message.
const relayOverhead = ctrlHeaderLen + keyLen + noise.PaddingMultiple + noise.MessageTransportOverhead

// ctrlBuf returns a buffer for a control message whose plaintext is n
// bytes, from *scratch when it is big enough (growing it otherwise), or a
// fresh one when scratch is nil.
func ctrlBuf(scratch *[]byte, n int) []byte {
	need := noise.MessageTransportHeaderSize + n + noise.PaddingMultiple + 16
	if scratch == nil {
		return make([]byte, need)
	}
	if cap(*scratch) < need {
		*scratch = make([]byte, need+need/2)
	}
	return (*scratch)[:need]
}

// sealControl seals the control message whose n bytes of plaintext are at
// buf[16:16+n] under p's current session, in place, and returns the
// transport message's length. Without a usable session it starts a
// handshake and returns 0. A session that carries nothing but control
// messages (the one with a relay) is rekeyed as data would rekey it.
func (p *Peer) sealControl(buf []byte, n int, now time.Time) int {
	m, kp, ctr := p.sealNow(buf, n, now)
	if m != 0 {
		p.keepFresh(kp, ctr, now)
	}
	return m
}

// sendControlMsg seals the control message at buf[16:16+n] for p and sends
// it straight to addr. data says whether it counts, for the timers, as data
// (a datagram forwarded, a registration) rather than as a keepalive (a
// probe).
func (p *Peer) sendControlMsg(buf []byte, n int, addr netip.AddrPort, data bool, now time.Time) error {
	m := p.sealControl(buf, n, now)
	if m == 0 {
		return errNoSession
	}
	p.timers.packetSent(data)
	if err := p.dev.sendControl(buf[:m], addr); err != nil {
		p.drop(DropSend)
		return err
	}
	p.ctrlTx.Add(1)
	p.txPackets.Add(1)
	p.txBytes.Add(uint64(m))
	return nil
}

// sendSimple sends p, straight to addr, a control message of type t whose
// payload is a key (or nothing, for a zero key) and then rest.
func (p *Peer) sendSimple(t ctrlType, key *keys.Public, rest []byte, addr netip.AddrPort, data bool, now time.Time) error {
	const off = noise.MessageTransportHeaderSize
	n := len(rest)
	if key != nil {
		n += keyLen
	}
	buf := ctrlBuf(nil, ctrlHeaderLen+n)
	putControlHeader(buf[off:], t, n)
	w := buf[off+ctrlHeaderLen:]
	if key != nil {
		w = w[copy(w, key[:]):]
	}
	copy(w, rest)
	return p.sendControlMsg(buf, ctrlHeaderLen+n, addr, data, now)
}

// relayDatagram sends dg, a whole WireGuard message for dest, through
// relay r. scratch, if not nil, is a buffer of the calling goroutine's
// to build the message in (the data path's; others pass nil).
func (d *Device) relayDatagram(r, dest *Peer, dg []byte, now time.Time, scratch *[]byte) error {
	const off = noise.MessageTransportHeaderSize
	addr, ok := r.Path().Direct()
	if !ok {
		return errNoEndpoint
	}
	n := ctrlHeaderLen + keyLen + len(dg)
	buf := ctrlBuf(scratch, n)
	putControlHeader(buf[off:], ctrlRelay, keyLen+len(dg))
	copy(buf[off+ctrlHeaderLen:], dest.public[:])
	copy(buf[off+ctrlHeaderLen+keyLen:], dg)
	return r.sendControlMsg(buf, n, addr, true, now)
}

// sendRelayed sends p's transport message dg through relay r, counting it
// as p's.
func (p *Peer) sendRelayed(r *Peer, dg []byte, now time.Time, scratch *[]byte) {
	if err := p.dev.relayDatagram(r, p, dg, now, scratch); err != nil {
		if errors.Is(err, errNoEndpoint) || errors.Is(err, errNoSession) {
			p.drop(DropNoEndpoint)
		} else {
			p.drop(DropSend)
		}
		return
	}
	p.timers.packetSent(true)
	p.txPackets.Add(1)
	p.txBytes.Add(uint64(len(dg)))
}

// sendDatagram sends a handshake message or keepalive to p on its path.
func (p *Peer) sendDatagram(b []byte, now time.Time) error {
	ep := p.path(now)
	if ep == nil {
		return errNoEndpoint
	}
	if ep.relay != nil {
		return p.dev.relayDatagram(ep.relay, p, b, now, nil)
	}
	return p.dev.sendControl(b, ep.addr)
}

// sendHello registers this node with p, a relay, offering its local
// addresses for peers behind the same NAT.
func (p *Peer) sendHello(now time.Time) {
	addr, ok := p.Path().Direct()
	if !ok {
		return
	}
	var locals []netip.AddrPort
	if f := p.dev.localAddrs; f != nil {
		locals = f()
	}
	// One candidate is the address the relay sees.
	if len(locals) > maxCandidates-1 {
		locals = locals[:maxCandidates-1]
	}
	if p.sendSimple(ctrlHello, nil, appendCandidates(nil, locals), addr, true, now) == nil {
		p.pathState.mu.Lock()
		p.pathState.hello = now
		p.pathState.mu.Unlock()
	}
}

// sendIntroRequest asks relay r to introduce this node and dest.
func (d *Device) sendIntroRequest(r, dest *Peer, now time.Time) {
	if addr, ok := r.Path().Direct(); ok {
		r.sendSimple(ctrlIntroRequest, &dest.public, nil, addr, true, now)
	}
}

// sendProbe probes the direct path to p at addr.
func (p *Peer) sendProbe(addr netip.AddrPort, now time.Time) {
	p.sendSimple(ctrlProbe, nil, nil, addr, false, now)
}

// registration is a member registered with this node, a relay.
type registration struct {
	observed netip.AddrPort   // where its hello came from
	locals   []netip.AddrPort // the addresses it offered
	expires  time.Time
}

// relayTable is a relay's state: its registered members and the pairs it
// introduced lately, with the counters status shows.
type relayTable struct {
	mu      sync.Mutex
	members map[keys.Public]*registration
	pairs   map[[2]keys.Public]time.Time

	forwarded, introductions, refused atomic.Uint64
}

// ackBudget bounds the probe answers of a node (every node's, relay or
// not) to maxAcksPerSecond.
type ackBudget struct {
	mu     sync.Mutex
	window time.Time
	n      int
}

func (t *relayTable) register(k keys.Public, observed netip.AddrPort, locals []netip.AddrPort, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.members == nil {
		t.members = make(map[keys.Public]*registration)
	}
	t.members[k] = &registration{observed: observed, locals: locals, expires: now.Add(registrationTTL)}
}

// lookup returns k's candidates, if k is registered.
func (t *relayTable) lookup(k keys.Public, now time.Time) ([]netip.AddrPort, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.members[k]
	if r == nil || !now.Before(r.expires) {
		return nil, false
	}
	return append([]netip.AddrPort{r.observed}, r.locals...), true
}

// expire forgets registrations and introductions that ran out.
func (t *relayTable) expire(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, r := range t.members {
		if !now.Before(r.expires) {
			delete(t.members, k)
		}
	}
	for k, at := range t.pairs {
		if now.Sub(at) >= introInterval {
			delete(t.pairs, k)
		}
	}
}

// registered counts the members registered now.
func (t *relayTable) registered(now time.Time) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, r := range t.members {
		if now.Before(r.expires) {
			n++
		}
	}
	return n
}

// mayIntroduce reports whether the pair a, b may be introduced now (once
// per introInterval, for at most maxIntroPairs pairs at a time), and if so
// records it.
func (t *relayTable) mayIntroduce(a, b keys.Public, now time.Time) bool {
	if string(b[:]) < string(a[:]) {
		a, b = b, a
	}
	k := [2]keys.Public{a, b}
	t.mu.Lock()
	defer t.mu.Unlock()
	if at, ok := t.pairs[k]; ok && now.Sub(at) < introInterval {
		return false
	}
	if t.pairs == nil {
		t.pairs = make(map[[2]keys.Public]time.Time)
	}
	if len(t.pairs) >= maxIntroPairs {
		for k, at := range t.pairs {
			if now.Sub(at) >= introInterval {
				delete(t.pairs, k)
			}
		}
		if len(t.pairs) >= maxIntroPairs {
			return false
		}
	}
	t.pairs[k] = now
	return true
}

// take takes one of the maxAcksPerSecond probe answers of this second.
func (b *ackBudget) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.Sub(b.window) >= time.Second {
		b.window, b.n = now, 0
	}
	if b.n >= maxAcksPerSecond {
		return false
	}
	b.n++
	return true
}

// handleControl acts on a control message that p sent, authenticated
// under p's session, straight from src, and reports whether it counts as
// data for p's timers (a datagram relayed: its sender expects traffic
// back, and a keepalive when there is none). It runs on the receive
// goroutine.
func (d *Device) handleControl(p *Peer, pkt []byte, src netip.AddrPort, now time.Time) (data bool) {
	typ, payload, ok := parseControl(pkt)
	if !ok {
		p.drop(DropControl)
		return false
	}
	p.speaksControl.Store(true)
	fromRelay := p.conf.Load().Relay
	switch typ {
	case ctrlHello, ctrlRelay, ctrlIntroRequest:
		if !d.serveRelay.Load() {
			// Not (or no longer) a relay: whoever thinks so is told nothing.
			d.relays.refused.Add(1)
			p.drop(DropControl)
			return false
		}
		switch typ {
		case ctrlHello:
			cands, ok := parseCandidates(payload)
			if !ok {
				p.drop(DropControl)
				return false
			}
			d.relays.register(p.public, src, cands, now)
			// Answered at once, so that the member knows its relay
			// is alive (relayScore).
			p.sendKeepalive()
		case ctrlRelay:
			d.forward(p, payload, src, now)
			return true
		case ctrlIntroRequest:
			d.introduce(p, payload, now)
		}
	case ctrlForwarded, ctrlUnreachable, ctrlIntro:
		if !fromRelay {
			p.drop(DropControl) // only a relay of ours forwards or introduces
			return false
		}
		key, rest, ok := parseKey(payload)
		q := d.peers.Load().byKey[key]
		if !ok || q == nil || q == p {
			p.drop(DropControl)
			return false
		}
		switch typ {
		case ctrlForwarded:
			d.receiveRelayed(p, q, rest, now)
			return true
		case ctrlUnreachable:
			d.relayUnreachable(p, q, now)
		case ctrlIntro:
			d.introduced(q, rest, now)
		}
	case ctrlProbe:
		if d.acks.take(now) {
			p.sendSimple(ctrlProbeAck, nil, nil, src, false, now)
		}
	case ctrlProbeAck:
		p.directConfirmed(src, now)
	}
	return false
}

// forward is a relay's work: the datagram in payload (after the key of
// its destination) goes from member "from" to that destination, if it is
// a member registered here; otherwise from is told it is unreachable.
func (d *Device) forward(from *Peer, payload []byte, src netip.AddrPort, now time.Time) {
	const off = noise.MessageTransportHeaderSize
	key, dg, ok := parseKey(payload)
	if !ok || !plausibleDatagram(dg) {
		from.drop(DropControl)
		return
	}
	to := d.peers.Load().byKey[key]
	addr, reachable := netip.AddrPort{}, false
	if to != nil && to != from {
		addr, reachable = to.Path().Direct()
	}
	if _, reg := d.relays.lookup(key, now); !reg || !reachable {
		d.relays.refused.Add(1)
		from.sendSimple(ctrlUnreachable, &key, nil, src, false, now)
		return
	}
	n := ctrlHeaderLen + keyLen + len(dg)
	buf := ctrlBuf(&d.fwdBuf, n)
	putControlHeader(buf[off:], ctrlForwarded, keyLen+len(dg))
	copy(buf[off+ctrlHeaderLen:], from.public[:])
	w := buf[off+ctrlHeaderLen+keyLen : off+n]
	copy(w, dg)
	if f := d.tamperForward; f != nil {
		f(w)
	}
	if to.sendControlMsg(buf, n, addr, true, now) == nil {
		d.relays.forwarded.Add(1)
	}
}

// plausibleDatagram reports whether dg looks like a WireGuard message: a
// relay forwards nothing else.
func plausibleDatagram(dg []byte) bool {
	typ, ok := noise.Type(dg)
	if !ok {
		return false
	}
	if typ == noise.MessageTransportType {
		return len(dg) >= noise.MessageKeepaliveSize
	}
	return len(dg) == handshakeSize(typ)
}

// introduce is a relay's answer to "introduce me to the peer with this
// key": both, if both are registered, learn the other's candidates.
func (d *Device) introduce(from *Peer, payload []byte, now time.Time) {
	key, rest, ok := parseKey(payload)
	to := d.peers.Load().byKey[key]
	if !ok || len(rest) != 0 || to == nil || to == from {
		d.relays.refused.Add(1)
		return
	}
	toCands, ok1 := d.relays.lookup(key, now)
	fromCands, ok2 := d.relays.lookup(from.public, now)
	toAddr, toOK := to.Path().Direct()
	fromAddr, fromOK := from.Path().Direct()
	if !ok1 || !ok2 || !toOK || !fromOK || !d.relays.mayIntroduce(from.public, key, now) {
		d.relays.refused.Add(1)
		return
	}
	from.sendSimple(ctrlIntro, &to.public, appendCandidates(nil, toCands), fromAddr, true, now)
	to.sendSimple(ctrlIntro, &from.public, appendCandidates(nil, fromCands), toAddr, true, now)
	d.relays.introductions.Add(1)
}

// introduced takes a relay's introduction of p at the candidates in
// payload, and probes those worth probing.
func (d *Device) introduced(p *Peer, payload []byte, now time.Time) {
	cands, ok := parseCandidates(payload)
	if !ok || p.conf.Load().Relay {
		p.drop(DropControl)
		return
	}
	p.speaksControl.Store(true)
	usableCands := cands[:0]
	for _, c := range cands {
		if d.usableCandidate(c) {
			usableCands = append(usableCands, c)
		}
	}
	p.pathState.mu.Lock()
	p.pathState.candidates = usableCands
	p.pathState.mu.Unlock()
	p.startProbes(usableCands, now)
}

// receiveRelayed takes dg, a datagram of peer "from" that relay r
// forwarded, as if it had arrived on the socket, with r as its path.
func (d *Device) receiveRelayed(r, from *Peer, dg []byte, now time.Time) {
	const off = noise.MessageTransportHeaderSize
	typ, ok := noise.Type(dg)
	if !ok {
		r.drop(DropControl)
		return
	}
	src, _ := r.Path().Direct()
	switch typ {
	case noise.MessageTransportType:
		p, kp, ok := d.session(dg, netip.AddrPort{}, now)
		if !ok {
			// The relay names the sender, which may hold a session
			// from before this node restarted.
			from.nudgeAfterRestart(now)
			return
		}
		pkt, ctr, err := kp.Open(dg[off:off], dg)
		if err != nil {
			p.drop(DropDecrypt)
			return
		}
		out, data, ok := p.received(opened{kp: kp, pkt: pkt, ctr: ctr, src: src, size: len(dg), via: r}, now)
		if !ok {
			return
		}
		p.timers.packetReceived(data)
		if len(out) == 0 {
			return
		}
		if tap := d.loadTap(); tap != nil {
			tap.Inner(now, Inbound, p.Name(), out)
		}
		d.rxOne[0] = dg[:off+len(out)]
		if _, err := d.tun.Write(d.rxOne[:], off); err != nil && !d.isClosed() {
			d.log.Debug("tun write", "err", err)
		}
	case noise.MessageInitiationType, noise.MessageResponseType, noise.MessageCookieReplyType:
		d.queueHandshake(typ, dg, src, r, now)
	default:
		r.drop(DropControl)
	}
}

// nameOrEmpty is p's name, or "" for nil (a log field of "no relay").
func (p *Peer) nameOrEmpty() string {
	if p == nil {
		return ""
	}
	return p.Name()
}

// kickWaiting retries at once the handshakes that wait for relay r: those
// of peers with packets staged, no session and r as their path, whose
// initiation was lost for want of a session with r (which now exists).
func (d *Device) kickWaiting(r *Peer, now time.Time) {
	for _, q := range d.peers.Load().list {
		if ep := q.endpoint.Load(); ep != nil && ep.relay == r && !usable(q.current.Load(), now) && q.hasStaged() {
			go q.rekey()
		}
	}
}
