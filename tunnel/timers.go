package tunnel

import (
	"math/rand/v2"
	"sync"
	"time"

	"github.com/peer-vpn/peer/noise"
)

// maxHandshakeAttempts is how many initiations are sent (RekeyTimeout
// apart) before giving up, which together last RekeyAttemptTime.
const maxHandshakeAttempts = int(noise.RekeyAttemptTime / noise.RekeyTimeout)

// jitter spreads retransmissions so peers do not synchronise.
func jitter() time.Duration { return time.Duration(rand.Int64N(int64(333 * time.Millisecond))) }

// peerTimer is one of a peer's protocol timers, with wireguard-go's "mod"
// (arm or re-arm) and "del" (disarm) vocabulary.
type peerTimer struct {
	mu      sync.Mutex
	t       Timer
	pending bool
	stopped bool
	f       func()
}

func (t *peerTimer) init(c Clock, f func()) {
	t.f = f
	t.t = c.AfterFunc(time.Hour, t.fire)
	t.t.Stop()
}

func (t *peerTimer) fire() {
	t.mu.Lock()
	run := t.pending && !t.stopped
	t.pending = false
	t.mu.Unlock()
	if run {
		t.f()
	}
}

// mod arms the timer to fire after d, replacing any earlier deadline.
func (t *peerTimer) mod(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.pending = true
	t.t.Reset(d)
}

// modIfIdle arms the timer only if it is not already pending.
func (t *peerTimer) modIfIdle(d time.Duration) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped || t.pending {
		return false
	}
	t.pending = true
	t.t.Reset(d)
	return true
}

func (t *peerTimer) del() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending = false
	t.t.Stop()
}

func (t *peerTimer) stop() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.stopped = true
	t.pending = false
	t.t.Stop()
}

// peerTimers implements the timer state machine of the whitepaper's
// section 6, as events (packetSent, packetReceived, ...) arming and
// disarming five timers.
type peerTimers struct {
	p                   *Peer
	retransmitHandshake peerTimer
	sendKeepalive       peerTimer
	newHandshake        peerTimer
	zeroKeyMaterial     peerTimer
	persistentKeepalive peerTimer

	mu                   sync.Mutex
	attempts             int
	needAnotherKeepalive bool
}

func (ts *peerTimers) init(p *Peer) {
	ts.p = p
	c := p.dev.clock
	ts.retransmitHandshake.init(c, ts.expiredRetransmitHandshake)
	ts.sendKeepalive.init(c, ts.expiredSendKeepalive)
	ts.newHandshake.init(c, ts.expiredNewHandshake)
	ts.zeroKeyMaterial.init(c, ts.expiredZeroKeyMaterial)
	ts.persistentKeepalive.init(c, ts.expiredPersistentKeepalive)
}

func (ts *peerTimers) stopAll() {
	ts.retransmitHandshake.stop()
	ts.sendKeepalive.stop()
	ts.newHandshake.stop()
	ts.zeroKeyMaterial.stop()
	ts.persistentKeepalive.stop()
}

// expiredRetransmitHandshake: no response to our initiation within
// RekeyTimeout; try again, or give up after RekeyAttemptTime.
func (ts *peerTimers) expiredRetransmitHandshake() {
	ts.mu.Lock()
	give := ts.attempts >= maxHandshakeAttempts
	if !give {
		ts.attempts++
	}
	ts.mu.Unlock()
	if give {
		ts.p.dev.log.Debug("handshake did not complete, giving up", "peer", ts.p.Name(), "after", noise.RekeyAttemptTime)
		ts.p.countHandshake(HandshakeTimeout)
		ts.sendKeepalive.del()
		ts.p.dropStaged(DropHandshakeTimeout)
		// Wipe what is left unless a wipe is already scheduled.
		ts.zeroKeyMaterial.modIfIdle(3 * noise.RejectAfterTime)
		return
	}
	ts.p.handshakeUnanswered(ts.p.dev.clock.Now())
	ts.p.initiateHandshake(true)
}

// expiredSendKeepalive: we received data and sent nothing back for
// KeepaliveTimeout; tell the peer we are alive.
func (ts *peerTimers) expiredSendKeepalive() {
	ts.p.sendKeepalive()
	ts.mu.Lock()
	again := ts.needAnotherKeepalive
	ts.needAnotherKeepalive = false
	ts.mu.Unlock()
	if again {
		ts.sendKeepalive.mod(noise.KeepaliveTimeout)
	}
}

// expiredNewHandshake: we sent data and heard nothing for
// KeepaliveTimeout+RekeyTimeout; the session may be dead, start afresh.
func (ts *peerTimers) expiredNewHandshake() {
	ts.p.dev.log.Debug("no reply to sent data, new handshake", "peer", ts.p.Name())
	ts.p.initiateHandshake(false)
}

// expiredZeroKeyMaterial: no new session for 3×RejectAfterTime.
func (ts *peerTimers) expiredZeroKeyMaterial() {
	ts.p.dev.log.Debug("wiping key material", "peer", ts.p.Name())
	ts.p.zeroKeyMaterial()
}

func (ts *peerTimers) expiredPersistentKeepalive() {
	if ts.p.conf.Load().Keepalive > 0 {
		ts.p.sendKeepalive()
	}
}

// handshakeStarted is a fresh (non-retry) initiation.
func (ts *peerTimers) handshakeStarted() {
	ts.mu.Lock()
	ts.attempts = 0
	ts.mu.Unlock()
}

// handshakeInitiated arms the retransmission of the initiation just sent.
func (ts *peerTimers) handshakeInitiated() {
	ts.retransmitHandshake.mod(noise.RekeyTimeout + jitter())
}

// handshakeComplete: a session is confirmed.
func (ts *peerTimers) handshakeComplete() {
	ts.retransmitHandshake.del()
	ts.mu.Lock()
	ts.attempts = 0
	ts.mu.Unlock()
}

// sessionDerived: new keys exist; wipe them if nothing newer comes.
func (ts *peerTimers) sessionDerived() {
	ts.zeroKeyMaterial.mod(3 * noise.RejectAfterTime)
}

// packetSent is any authenticated packet sent; data is true unless it was
// a keepalive or handshake message.
func (ts *peerTimers) packetSent(data bool) {
	ts.sendKeepalive.del()
	if data {
		ts.newHandshake.modIfIdle(noise.KeepaliveTimeout + noise.RekeyTimeout + jitter())
	}
	ts.traversal()
}

// packetReceived is any authenticated packet received; data is true
// unless it was a keepalive or handshake message.
func (ts *peerTimers) packetReceived(data bool) {
	ts.newHandshake.del()
	if data {
		if !ts.sendKeepalive.modIfIdle(noise.KeepaliveTimeout) {
			ts.mu.Lock()
			ts.needAnotherKeepalive = true
			ts.mu.Unlock()
		}
	}
	ts.traversal()
}

func (ts *peerTimers) traversal() {
	if ka := ts.p.conf.Load().Keepalive; ka > 0 {
		ts.persistentKeepalive.mod(ka)
	}
}
