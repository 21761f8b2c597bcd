package tunnel

import (
	"errors"
	"fmt"
	"time"

	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/udp"
)

// sealJob is one packet of a batch on its way out.
type sealJob struct {
	peer      *Peer
	kp        *noise.Keypair
	ctr       uint64
	buf       []byte // plaintext at buf[16:16+paddedLen], sealed in place
	plainLen  int    // plaintext length before padding
	paddedLen int    // plaintext length after padding
	sealedLen int    // transport message length; 0 if Seal refused
}

// sendBatch holds the reusable state of the TUN→UDP loop.
type sendBatch struct {
	bufs  [][]byte
	sizes []int
	jobs  []sealJob
	msgs  []udp.Message
	// peers[i] is the peer msgs[i] goes to, for counters after the write.
	peers []*Peer
	job   cryptoJob
	// relayBuf is where a packet for a peer reached through a relay is
	// wrapped for it; grown on first use.
	relayBuf []byte
}

func newSendBatch(n int) *sendBatch {
	b := &sendBatch{
		bufs:  make([][]byte, n),
		sizes: make([]int, n),
		jobs:  make([]sealJob, 0, n),
		msgs:  make([]udp.Message, 0, n),
		peers: make([]*Peer, 0, n),
	}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, bufSize)
	}
	return b
}

// work seals jobs [lo, hi); it runs on several cores at once.
func (b *sendBatch) work(lo, hi int) {
	const off = noise.MessageTransportHeaderSize
	for i := lo; i < hi; i++ {
		j := &b.jobs[i]
		j.sealedLen = j.kp.Seal(j.buf, j.buf[off:off+j.paddedLen], j.ctr)
	}
}

// route picks the peer of an outbound packet by longest-prefix match of
// its destination; without one it says why.
func (d *Device) route(pkt []byte) (*Peer, DeviceDrop) {
	var p *Peer
	var ok bool
	switch {
	case len(pkt) >= ipv4HeaderLen && ipVersion(pkt) == 4:
		p, ok = d.routes.LookupBytes(pkt[ipv4OffsetDst : ipv4OffsetDst+ipv4AddrLen])
	case len(pkt) >= ipv6HeaderLen && ipVersion(pkt) == 6:
		p, ok = d.routes.LookupBytes(pkt[ipv6OffsetDst : ipv6OffsetDst+ipv6AddrLen])
	default:
		return nil, DropMalformed
	}
	if !ok {
		return nil, DropNoRoute
	}
	return p, 0
}

// routineReadTUN is the outbound path: TUN → route → encrypt → UDP.
func (d *Device) routineReadTUN() error {
	const off = noise.MessageTransportHeaderSize
	b := newSendBatch(d.tun.BatchSize())
	crypto := newCryptoPool(d.cryptoWorkers)
	defer crypto.close()
	for {
		n, err := d.tun.Read(b.bufs, b.sizes, off)
		if err != nil && n == 0 {
			if d.isClosed() {
				return nil
			}
			return fmt.Errorf("reading %s: %w", d.tun.Name(), err)
		}
		now := d.clock.Now()
		tap := d.loadTap()
		b.jobs = b.jobs[:0]
		for i := 0; i < n; i++ {
			pkt := b.bufs[i][off : off+b.sizes[i]]
			p, reason := d.route(pkt)
			if p == nil {
				d.drop(reason)
				continue
			}
			if tap != nil {
				tap.Inner(now, Outbound, p.Name(), pkt)
			}
			kp, ctr, padded, ok := p.prepare(b.bufs[i], len(pkt), now)
			if !ok {
				continue
			}
			b.jobs = append(b.jobs, sealJob{peer: p, kp: kp, ctr: ctr, buf: b.bufs[i], plainLen: len(pkt), paddedLen: padded})
		}
		crypto.run(&b.job, b, len(b.jobs))
		b.msgs, b.peers = b.msgs[:0], b.peers[:0]
		for i := range b.jobs {
			j := &b.jobs[i]
			if j.sealedLen == 0 {
				// The session was replaced and wiped between prepare and
				// Seal: seal again with whatever is current now (encrypt
				// stages the packet if nothing usable is left).
				m, ok := j.peer.encrypt(j.buf, j.plainLen, now)
				if !ok {
					continue
				}
				j.sealedLen = m
			}
			ep := j.peer.endpoint.Load()
			if ep == nil || ep.relay != nil {
				// Off the direct path: no address yet, or a relay.
				if ep = j.peer.path(now); ep == nil {
					j.peer.drop(DropNoEndpoint)
					continue
				}
				if ep.relay != nil {
					j.peer.sendRelayed(ep.relay, j.buf[:j.sealedLen], now, &b.relayBuf)
					continue
				}
			}
			b.msgs = append(b.msgs, udp.Message{Buf: j.buf, N: j.sealedLen, Addr: ep.addr})
			b.peers = append(b.peers, j.peer)
		}
		d.flushSend(b, now, tap)
	}
}

// flushSend writes the batch and accounts for it; tap is the one the batch
// loaded.
func (d *Device) flushSend(b *sendBatch, now time.Time, tap Tap) {
	if len(b.msgs) == 0 {
		return
	}
	if tap != nil {
		for _, m := range b.msgs {
			tap.Outer(now, Outbound, d.localAddr, m.Addr, m.Buf[:m.N])
		}
	}
	// Timers first: a reply may overtake the bookkeeping after the write,
	// and must find the "waiting for an answer" timer already armed.
	var last *Peer
	for _, p := range b.peers {
		if p != last {
			p.timers.packetSent(true)
			last = p
		}
	}
	sent, err := d.conn.WriteBatch(b.msgs)
	if err != nil {
		d.log.Debug("udp write", "err", err)
	}
	for i, m := range b.msgs {
		p := b.peers[i]
		if i >= sent {
			p.drop(DropSend)
			continue
		}
		p.txPackets.Add(1)
		p.txBytes.Add(uint64(m.N))
	}
}

// rekeyAfterMessages is noise.RekeyAfterMessages, in a variable only so a
// test can reach it without sending 2^60 packets.
var rekeyAfterMessages = noise.RekeyAfterMessages

// prepare readies the plaintext at buf[16:16+n] for sealing: it picks the
// session, reserves a counter and pads. Without a usable session the packet
// is staged and a handshake started; then ok is false. It runs on the
// reading goroutine, in packet order, so counters follow the order.
func (p *Peer) prepare(buf []byte, n int, now time.Time) (kp *noise.Keypair, ctr uint64, padded int, ok bool) {
	const off = noise.MessageTransportHeaderSize
	kp = p.current.Load()
	if usable(kp, now) {
		ctr, ok = kp.NextCounter()
	}
	if !ok {
		p.stage(buf[off : off+n])
		p.initiateHandshake(false)
		return nil, 0, 0, false
	}
	padded = noise.PaddedSize(n, int(p.dev.mtu.Load()))
	clear(buf[off+n : off+padded])
	p.keepFresh(kp, ctr, now)
	return kp, ctr, padded, true
}

// keepFresh starts a handshake when kp, which just reserved counter ctr
// (ctr+1 messages used), is worn or old. A worn session is rekeyed by
// whichever side sends; an old one by its initiator only, so the two
// sides do not both start a handshake at RekeyAfterTime (wireguard-go's
// keepKeyFreshSending).
func (p *Peer) keepFresh(kp *noise.Keypair, ctr uint64, now time.Time) {
	if ctr >= rekeyAfterMessages || (kp.Initiator && now.Sub(kp.Created) >= noise.RekeyAfterTime) {
		p.initiateHandshake(false)
	}
}

// sealNow seals the n bytes of plaintext at buf[16:16+n], padded, in
// place under p's current session, off the data path, and returns the
// transport message's length with the session and counter it used.
// Without a usable session it starts a handshake and returns 0.
func (p *Peer) sealNow(buf []byte, n int, now time.Time) (int, *noise.Keypair, uint64) {
	const off = noise.MessageTransportHeaderSize
	kp := p.current.Load()
	var ctr uint64
	ok := usable(kp, now)
	if ok {
		ctr, ok = kp.NextCounter()
	}
	if !ok {
		p.initiateHandshake(false)
		return 0, nil, 0
	}
	padded := noise.PaddedSize(n, 0)
	clear(buf[off+n : off+padded])
	m := kp.Seal(buf, buf[off:off+padded], ctr)
	if m == 0 {
		p.initiateHandshake(false)
		return 0, nil, 0
	}
	return m, kp, ctr
}

// encrypt is prepare and Seal for one packet, off the batch path: the
// plaintext at buf[16:16+n] becomes a transport message at buf[0:] and its
// length is returned.
func (p *Peer) encrypt(buf []byte, n int, now time.Time) (int, bool) {
	const off = noise.MessageTransportHeaderSize
	kp, ctr, padded, ok := p.prepare(buf, n, now)
	if !ok {
		return 0, false
	}
	m := kp.Seal(buf, buf[off:off+padded], ctr)
	if m == 0 {
		p.stage(buf[off : off+n])
		p.initiateHandshake(false)
		return 0, false
	}
	return m, true
}

// sendStaged encrypts and sends what waited for a session.
func (p *Peer) sendStaged() {
	staged := p.takeStaged()
	if len(staged) == 0 {
		return
	}
	d := p.dev
	now := d.clock.Now()
	ep := p.path(now)
	msgs := make([]udp.Message, 0, len(staged))
	for i, buf := range staged {
		n := len(buf) - noise.MessageTransportHeaderSize
		m, ok := p.encrypt(buf[:cap(buf)], n, now)
		if !ok {
			// The session vanished meanwhile: encrypt staged the packet
			// again; the rest stay staged too, in order.
			for _, rest := range staged[i+1:] {
				p.stage(rest[noise.MessageTransportHeaderSize:])
			}
			break
		}
		msgs = append(msgs, udp.Message{Buf: buf[:cap(buf)], N: m})
	}
	if ep == nil {
		for range msgs {
			p.drop(DropNoEndpoint)
		}
		return
	}
	if ep.relay != nil {
		for _, m := range msgs {
			p.sendRelayed(ep.relay, m.Buf[:m.N], now, nil)
		}
		return
	}
	for i := range msgs {
		msgs[i].Addr = ep.addr
	}
	peers := make([]*Peer, len(msgs))
	for i := range peers {
		peers[i] = p
	}
	d.flushSend(&sendBatch{msgs: msgs, peers: peers}, now, d.loadTap())
}

// sendKeepalive sends an empty transport message, or starts a handshake
// when there is no session to carry it.
func (p *Peer) sendKeepalive() {
	now := p.dev.clock.Now()
	var buf [noise.MessageKeepaliveSize]byte
	m, _, _ := p.sealNow(buf[:], 0, now)
	if m == 0 {
		return
	}
	p.timers.packetSent(false)
	if err := p.sendDatagram(buf[:m], now); err != nil {
		if errors.Is(err, errNoEndpoint) {
			p.drop(DropNoEndpoint)
		} else {
			p.drop(DropSend)
		}
		return
	}
	p.txPackets.Add(1)
	p.txBytes.Add(uint64(m))
}
