package impair

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"time"
)

// datagram is one datagram on its way through the relay.
type datagram struct {
	buf []byte // owned by the relay from the moment it is read
	dst netip.AddrPort
	typ MessageType
	seq uint64 // arrival order within its direction
}

// held is a datagram kept back until left later datagrams have overtaken it
// or until is reached.
type held struct {
	d     datagram
	left  int
	until time.Time
}

// shaper makes the loss, duplication and reordering decisions of one
// direction. It does no I/O and reads no clock, so its output is a function
// of the seed, the datagrams pushed and the times given. Only the relay's
// loop goroutine uses it.
type shaper struct {
	cfg     Config
	rng     *rand.Rand
	stats   *dirCounters
	held    []held     // in arrival order
	pending []datagram // released, to be sent lowest seq first
	next    uint64     // seq of the next datagram pushed or copied
}

func newShaper(cfg Config, stream uint64, stats *dirCounters) *shaper {
	return &shaper{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, stream)), stats: stats}
}

// push takes one arriving datagram and passes send, in order, whatever is
// to leave now: nothing (lost, or held back), the datagram, its copy, and
// held datagrams that it and the copy released.
func (s *shaper) push(d datagram, now time.Time, send func(datagram)) {
	c := &s.stats[d.typ]
	c.received.Add(1)
	if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
		c.lost.Add(1)
		return
	}
	dup := s.cfg.Duplicate > 0 && s.rng.Float64() < s.cfg.Duplicate
	s.place(d, now, send)
	if dup {
		c.duplicated.Add(1)
		cp := d
		cp.buf = bytes.Clone(d.buf)
		s.place(cp, now, send)
	}
}

// place sends d at once or holds it back.
func (s *shaper) place(d datagram, now time.Time, send func(datagram)) {
	d.seq = s.next
	s.next++
	if s.cfg.Reorder >= 2 && s.rng.Float64() < s.cfg.ReorderShare {
		left := 1 + s.rng.IntN(s.cfg.Reorder-1)
		s.held = append(s.held, held{d: d, left: left, until: now.Add(s.cfg.maxHold())})
		s.stats[d.typ].reordered.Add(1)
		return
	}
	s.pending = append(s.pending, d)
	s.drain(send)
}

// expire releases every held datagram whose time is up at now. They are
// the oldest (all wait the same MaxHold), so sending them in arrival order
// overtakes none of the others.
func (s *shaper) expire(now time.Time, send func(datagram)) {
	n := 0
	for n < len(s.held) && !now.Before(s.held[n].until) {
		n++
	}
	s.release(n, send)
}

// flush sends everything held, in arrival order.
func (s *shaper) flush(send func(datagram)) { s.release(len(s.held), send) }

// release sends the first n held datagrams in arrival order.
func (s *shaper) release(n int, send func(datagram)) {
	for _, h := range s.held[:n] {
		send(h.d)
	}
	rest := copy(s.held, s.held[n:])
	clear(s.held[rest:])
	s.held = s.held[:rest]
}

// nextExpiry returns when the first held datagram is due, if any is held.
func (s *shaper) nextExpiry() (time.Time, bool) {
	if len(s.held) == 0 {
		return time.Time{}, false
	}
	return s.held[0].until, true // held in arrival order, all with the same MaxHold
}

// drain sends the pending datagrams, lowest seq first. Each one sent has
// overtaken every held datagram that arrived before it; a held datagram
// overtaken as often as it was to be is released in turn. Sending the
// lowest seq first keeps a released datagram from being overtaken by one
// released at the same time, so none moves more than Reorder-1 places.
func (s *shaper) drain(send func(datagram)) {
	for len(s.pending) > 0 {
		lo := 0
		for i := range s.pending {
			if s.pending[i].seq < s.pending[lo].seq {
				lo = i
			}
		}
		d := s.pending[lo]
		s.pending[lo] = s.pending[len(s.pending)-1]
		s.pending[len(s.pending)-1] = datagram{}
		s.pending = s.pending[:len(s.pending)-1]
		send(d)
		kept := s.held[:0]
		for _, h := range s.held {
			if h.d.seq < d.seq {
				h.left--
			}
			if h.left == 0 {
				s.pending = append(s.pending, h.d)
			} else {
				kept = append(kept, h)
			}
		}
		clear(s.held[len(kept):])
		s.held = kept
	}
}
