package tunnel

import (
	"net/netip"
	"slices"
	"sync"
	"time"
)

// The timers and limits of paths and relays, all here (docs/relay.md
// explains each).
const (
	// pathTick is how often the device looks at every peer's path.
	pathTick = time.Second
	// probeRounds probes are sent to each candidate of an introduction,
	// probeSpacing apart: the two sides' first ones open their NATs for
	// the other's later ones.
	probeRounds  = 5
	probeSpacing = 200 * time.Millisecond
	// introInterval is the least time between two introductions of one
	// pair of peers (asked for, sent by a relay, or acted on).
	introInterval = 10 * time.Second
	// directProbeInterval: a direct path with traffic that has heard
	// nothing from the peer for this long is probed.
	directProbeInterval = 3 * time.Second
	// directTimeout: a direct path that has heard nothing for this long,
	// and left a probe unanswered for probeAnswerTime, is given up for a
	// relay.
	directTimeout   = 10 * time.Second
	probeAnswerTime = 2 * time.Second
	// lastDirectResolution is how fresh the data path keeps the time a
	// direct packet last arrived: far finer than the timers above.
	lastDirectResolution = 100 * time.Millisecond
	// activeTime is how long after its last packet sent a peer counts as
	// in use: only then are introductions asked for and paths probed.
	activeTime = 2 * time.Minute
	// helloInterval is how often a node registers with each relay; a
	// registration lasts registrationTTL. The hello also keeps the NAT's
	// mapping toward the relay open (most keep UDP for 30 s or more).
	helloInterval   = 20 * time.Second
	registrationTTL = 3 * helloInterval
	// relayAliveTime: a relay not heard from for this long (it answers
	// each hello at once) is used only if no relay is heard from.
	relayAliveTime = helloInterval + 5*time.Second
	// relayBadTime: a relay that said a peer is not registered with it is
	// not used for that peer for this long if another relay is there.
	relayBadTime = 4 * time.Second
	// unreachableRetry is when a handshake that a relay could not deliver
	// is tried again (if packets wait for it).
	unreachableRetry = time.Second
	// maxAcksPerSecond bounds the probe answers of a node, whoever asks.
	maxAcksPerSecond = 32
	// maxIntroPairs bounds the pairs a relay remembers introducing.
	maxIntroPairs = 256
)

// pathState is what a peer's path machinery remembers, off the data path.
type pathState struct {
	mu sync.Mutex
	// candidates are the addresses of the last introduction.
	candidates   []netip.AddrPort
	probeStarted time.Time // the last round of probes of candidates began
	introAsked   time.Time // we last asked a relay to introduce us
	directProbe  time.Time // we last probed the direct path
	active       time.Time // last tick that saw data sent to the peer
	txSeen       uint64    // data messages sent, at that tick
	// badRelays are relays that could not reach the peer, until when.
	badRelays map[*Peer]time.Time
	// hello is when we last registered with the peer, a relay.
	hello        time.Time
	retryPending bool // a handshake retry after "unreachable" is scheduled
}

// path returns where p's datagrams go now, choosing a relay when p has no
// direct address (or the relay in use left the peer set, or is no relay
// since a reload); nil if there is nowhere to send.
func (p *Peer) path(now time.Time) *Endpoint {
	ep := p.endpoint.Load()
	if ep != nil && (ep.relay == nil || (p.dev.isMember(ep.relay) && ep.relay.conf.Load().Relay)) {
		return ep
	}
	if r := p.dev.pickRelay(p, now); r != nil {
		nep := viaRelay(r, now)
		if p.endpoint.CompareAndSwap(ep, nep) {
			p.dev.log.Debug("path", "peer", p.Name(), "path", nep.String())
			return nep
		}
		return p.endpoint.Load()
	}
	if ep != nil && ep.relay != nil {
		return nil // its relay is gone and no other is there
	}
	return ep
}

// Path returns how p's datagrams go now (the zero Endpoint if nowhere).
func (p *Peer) Path() Endpoint {
	if ep := p.endpoint.Load(); ep != nil {
		return *ep
	}
	return Endpoint{}
}

// isMember reports whether q is in the current peer set.
func (d *Device) isMember(q *Peer) bool { return d.peers.Load().byKey[q.public] == q }

// pickRelay chooses a relay for dest: the best (see relayScore) of the
// peers the mesh file makes relays, the first in file order among equals;
// nil if there is none.
func (d *Device) pickRelay(dest *Peer, now time.Time) *Peer {
	if dest.conf.Load().Relay {
		return nil // a relay is reached directly or not at all
	}
	var best *Peer
	bestScore := 0
	for _, q := range d.peers.Load().list {
		if q == dest || !q.conf.Load().Relay {
			continue
		}
		if s := dest.relayScore(q, now); s > bestScore {
			best, bestScore = q, s
		}
	}
	return best
}

// relayScore ranks relay r for reaching p: 0 unusable (no direct
// endpoint), 1 marked bad for p (it said p is not registered there), 2
// without a session, 3 with a session but not heard from for
// relayAliveTime (it answers every hello, so a live one is heard from at
// least every helloInterval), 4 alive.
func (p *Peer) relayScore(r *Peer, now time.Time) int {
	if _, ok := r.Path().Direct(); !ok {
		return 0
	}
	p.pathState.mu.Lock()
	until, bad := p.pathState.badRelays[r]
	p.pathState.mu.Unlock()
	switch {
	case bad && now.Before(until):
		return 1
	case !usable(r.current.Load(), now):
		return 2
	case now.UnixNano()-r.lastDirect.Load() >= int64(relayAliveTime):
		return 3
	}
	return 4
}

// setEndpoint roams: the endpoint follows the last authenticated packet
// that came straight from the peer, which also proves the direct path.
func (p *Peer) setEndpoint(src netip.AddrPort, now time.Time) {
	// Per packet, so written only when it moved by lastDirectResolution:
	// a store each time would bounce its cache line, which the send loop
	// reads (endpoint), between the two loops' cores.
	if t := now.UnixNano(); t-p.lastDirect.Load() >= int64(lastDirectResolution) {
		p.lastDirect.Store(t)
	}
	cur := p.endpoint.Load()
	if cur != nil && cur.relay == nil && cur.addr == src {
		return
	}
	p.endpoint.Store(direct(src, now))
	if cur != nil && cur.relay != nil {
		p.dev.log.Info("direct path", "peer", p.Name(), "endpoint", src, "was", cur.String())
	}
}

// relayedFrom records that an authenticated packet of p came through
// relay r: p is one of ours, and r reaches it. The path moves to r unless
// a direct path answered within directTimeout (the peer may simply not
// have found it yet).
func (p *Peer) relayedFrom(r *Peer, now time.Time) {
	p.speaksControl.Store(true)
	cur := p.endpoint.Load()
	if cur != nil && cur.relay == r {
		return
	}
	if cur != nil && cur.relay == nil && now.UnixNano()-p.lastDirect.Load() < int64(directTimeout) {
		return
	}
	p.endpoint.Store(viaRelay(r, now))
	p.dev.log.Info("path through a relay", "peer", p.Name(), "relay", r.Name())
}

// directConfirmed takes a probe answer from addr: the path there works
// both ways. It becomes the path unless another direct one is healthy.
func (p *Peer) directConfirmed(addr netip.AddrPort, now time.Time) {
	p.speaksControl.Store(true)
	cur := p.endpoint.Load()
	if cur != nil && cur.relay == nil {
		if cur.addr == addr {
			p.lastDirect.Store(now.UnixNano())
			return
		}
		if now.UnixNano()-p.lastDirect.Load() < int64(directProbeInterval) {
			return // the direct path in use answers too
		}
	}
	p.lastDirect.Store(now.UnixNano())
	p.endpoint.Store(direct(addr, now))
	p.dev.log.Info("direct path", "peer", p.Name(), "endpoint", addr)
}

// handshakeUnanswered is called before an initiation is retransmitted:
// the path it went on did not answer, so the next goes on the other one,
// a relay after the direct endpoint and the direct endpoint (if there is
// one) after a relay.
func (p *Peer) handshakeUnanswered(now time.Time) {
	cur := p.endpoint.Load()
	if cur == nil {
		return
	}
	if cur.relay == nil {
		if r := p.dev.pickRelay(p, now); r != nil {
			p.endpoint.Store(viaRelay(r, now))
			p.dev.log.Debug("no answer directly, trying a relay", "peer", p.Name(), "relay", r.Name())
		}
		return
	}
	if ep := p.conf.Load().Endpoint; ep.IsValid() {
		p.endpoint.Store(direct(ep, now))
	}
}

// relayUnreachable takes relay r's word that dest is not registered with
// it: r is avoided for dest a while, the path moves to another relay or
// the configured endpoint, and a handshake waiting for dest is retried
// soon rather than at its next retransmission.
func (d *Device) relayUnreachable(r, dest *Peer, now time.Time) {
	dest.pathState.mu.Lock()
	if dest.pathState.badRelays == nil {
		dest.pathState.badRelays = make(map[*Peer]time.Time)
	}
	dest.pathState.badRelays[r] = now.Add(relayBadTime)
	retry := !dest.pathState.retryPending && !usable(dest.current.Load(), now) && dest.hasStaged()
	if retry {
		dest.pathState.retryPending = true
	}
	dest.pathState.mu.Unlock()
	if cur := dest.endpoint.Load(); cur != nil && cur.relay == r {
		if alt := d.pickRelay(dest, now); alt != nil && alt != r {
			dest.endpoint.Store(viaRelay(alt, now))
		} else if ep := dest.conf.Load().Endpoint; ep.IsValid() {
			dest.endpoint.Store(direct(ep, now))
		}
	}
	if retry {
		d.clock.AfterFunc(unreachableRetry, func() {
			dest.pathState.mu.Lock()
			dest.pathState.retryPending = false
			dest.pathState.mu.Unlock()
			if !usable(dest.current.Load(), d.clock.Now()) && dest.hasStaged() {
				dest.rekey()
			}
		})
	}
}

// startPathTicker runs tickPaths every pathTick until the device closes.
func (d *Device) startPathTicker() {
	tick := func() {
		if d.isClosed() {
			return
		}
		d.tickPaths(d.clock.Now())
		d.pathTimerMu.Lock()
		if !d.isClosed() {
			d.pathTimer.Reset(pathTick)
		}
		d.pathTimerMu.Unlock()
	}
	d.pathTimerMu.Lock()
	d.pathTimer = d.clock.AfterFunc(pathTick, tick)
	d.pathTimerMu.Unlock()
}

// tickPaths is the path machinery's clock: registration with relays,
// introductions for peers reached through one, probes of direct paths and
// the fallback of those that stopped answering, expiry of registrations.
func (d *Device) tickPaths(now time.Time) {
	if d.serveRelay.Load() {
		d.relays.expire(now)
	}
	set := d.peers.Load()
	hasRelay := false
	for _, p := range set.list {
		if p.conf.Load().Relay {
			hasRelay = true
			p.tickRelay(now)
		}
	}
	if !hasRelay {
		return
	}
	for _, p := range set.list {
		if !p.conf.Load().Relay {
			p.tickPath(now)
		}
	}
}

// tickRelay registers with p, a relay, when it is time to.
func (p *Peer) tickRelay(now time.Time) {
	if _, ok := p.Path().Direct(); !ok {
		return
	}
	p.pathState.mu.Lock()
	due := p.pathState.hello.IsZero() || now.Sub(p.pathState.hello) >= helloInterval
	p.pathState.mu.Unlock()
	if due {
		p.sendHello(now)
	}
}

// tickPath looks after the path of p, an ordinary peer, while it is in
// use: through a relay, it asks for introductions; direct, it probes a
// path that went quiet and falls back to a relay when it stays so.
func (p *Peer) tickPath(now time.Time) {
	ps := &p.pathState
	data := p.txPackets.Load() - p.ctrlTx.Load()
	ps.mu.Lock()
	if data != ps.txSeen {
		ps.txSeen = data
		ps.active = now
	}
	active := !ps.active.IsZero() && now.Sub(ps.active) < activeTime
	ps.mu.Unlock()
	if !active {
		return
	}
	ep := p.endpoint.Load()
	if ep == nil || ep.relay != nil {
		r := p.dev.pickRelay(p, now)
		if ep != nil && (r == nil || p.relayScore(ep.relay, now) >= p.relayScore(r, now)) {
			r = ep.relay // the relay in use is as good as any
		} else if r != nil && ep != nil {
			p.endpoint.Store(viaRelay(r, now))
			p.dev.log.Info("path through another relay", "peer", p.Name(), "relay", r.Name(), "was", ep.relay.Name())
		}
		if r == nil {
			return
		}
		ps.mu.Lock()
		ask := ps.introAsked.IsZero() || now.Sub(ps.introAsked) >= introInterval
		if ask {
			ps.introAsked = now
		}
		again := len(ps.candidates) > 0 && now.Sub(ps.probeStarted) >= introInterval
		cands := slices.Clone(ps.candidates)
		ps.mu.Unlock()
		if ask {
			p.dev.sendIntroRequest(r, p, now)
		}
		if again {
			p.startProbes(cands, now)
		}
		return
	}
	if !p.speaksControl.Load() {
		return // perhaps a stock WireGuard peer: it would not understand a probe
	}
	quiet := time.Duration(now.UnixNano() - p.lastDirect.Load())
	ps.mu.Lock()
	sinceProbe := now.Sub(ps.directProbe)
	unanswered := !ps.directProbe.IsZero() && ps.directProbe.UnixNano() > p.lastDirect.Load() && sinceProbe >= probeAnswerTime
	probe := quiet >= directProbeInterval && sinceProbe >= directProbeInterval
	if probe {
		ps.directProbe = now
	}
	ps.mu.Unlock()
	if quiet >= directTimeout && unanswered {
		if r := p.dev.pickRelay(p, now); r != nil {
			p.endpoint.Store(viaRelay(r, now))
			p.dev.log.Info("direct path stopped answering, back through a relay", "peer", p.Name(), "was", ep.addr, "relay", r.Name())
			ps.mu.Lock()
			ps.introAsked = time.Time{}
			ps.mu.Unlock()
			return
		}
	}
	if probe {
		p.sendProbe(ep.addr, now)
	}
}

// startProbes sends probeRounds rounds of probes to cands, probeSpacing
// apart, unless a round of probes started less than that long ago.
func (p *Peer) startProbes(cands []netip.AddrPort, now time.Time) {
	if len(cands) == 0 || !usable(p.current.Load(), now) {
		return
	}
	ps := &p.pathState
	ps.mu.Lock()
	if !ps.probeStarted.IsZero() && now.Sub(ps.probeStarted) < probeRounds*probeSpacing {
		ps.mu.Unlock()
		return
	}
	ps.probeStarted = now
	ps.mu.Unlock()
	round := func() {
		t := p.dev.clock.Now()
		for _, c := range cands {
			p.sendProbe(c, t)
		}
	}
	round()
	for i := 1; i < probeRounds; i++ {
		p.dev.clock.AfterFunc(time.Duration(i)*probeSpacing, func() {
			if !p.dev.isClosed() && p.dev.isMember(p) {
				round()
			}
		})
	}
}

// usableCandidate reports whether an address a relay offers may be
// probed: a unicast address with a port, outside the mesh's own prefixes
// (probing a tunnel address would send the tunnel into itself; an exit's
// default route does not count, the socket's traffic bypasses it).
func (d *Device) usableCandidate(c netip.AddrPort) bool {
	a := c.Addr()
	if !c.IsValid() || c.Port() == 0 || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalUnicast() {
		return false
	}
	pfx, _, inMesh := d.routes.LookupPrefix(a)
	return !inMesh || pfx.Bits() == 0
}
