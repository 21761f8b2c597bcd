package impair

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"
)

// The two directions through a relay.
const (
	toUpstream   = 0 // from a client to the upstream
	fromUpstream = 1 // from the upstream to the last client
)

// delayed is a datagram waiting out Config.Delay.
type delayed struct {
	d   datagram
	dir int
	due time.Time
}

// Relay forwards datagrams between clients and one upstream address through
// one socket: a datagram from the upstream goes to the last client address
// seen, a datagram from any other address goes to the upstream (and makes
// that address the client). A WireGuard node whose peer's endpoint is the
// relay's address therefore keeps working, and the node behind the upstream
// sees the relay as its peer's (roamed) endpoint.
type Relay struct {
	conn     *net.UDPConn
	upstream netip.AddrPort
	cfg      Config
	counters [2]dirCounters
	noClient atomic.Uint64
	client   atomic.Pointer[netip.AddrPort]
	closed   atomic.Bool
	started  atomic.Bool
	done     chan struct{} // closed when Run returns

	// Owned by the Run goroutine.
	shapers [2]*shaper
	emit    [2]func(datagram)
	queue   []delayed // in due order: the delay is the same for all
	now     time.Time
}

// Listen opens the relay's socket on listen, forwarding to upstream as cfg
// says. Call Run to start forwarding.
func Listen(listen, upstream netip.AddrPort, cfg Config) (*Relay, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !upstream.IsValid() || upstream.Port() == 0 {
		return nil, fmt.Errorf("impair: upstream %v: want an address with a port", upstream)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(listen))
	if err != nil {
		return nil, fmt.Errorf("impair: listening on %v: %w", listen, err)
	}
	r := &Relay{conn: conn, upstream: unmap(upstream), cfg: cfg, done: make(chan struct{})}
	for dir := range r.shapers {
		// A stream per direction: one direction's traffic never shifts the
		// other's decisions.
		r.shapers[dir] = newShaper(cfg, uint64(dir), &r.counters[dir])
		r.emit[dir] = func(d datagram) { r.output(dir, d) }
	}
	return r, nil
}

// Addr returns the address the relay listens on.
func (r *Relay) Addr() netip.AddrPort {
	return r.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close stops Run and waits for it to return. What is still held back or
// delayed is sent at once first, so that every decision counted is carried
// out: once Close returns, Sent+SendErrors = Received-Lost+Duplicated for
// every type and direction.
func (r *Relay) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	if !r.started.Load() {
		return r.conn.Close()
	}
	// Wake Run; it sees closed (set before this deadline or before its own).
	r.conn.SetReadDeadline(time.Now())
	<-r.done
	return nil
}

// Run forwards datagrams until Close; it returns nil after Close and the
// error otherwise. It may be called once.
func (r *Relay) Run() error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("impair: Run called twice")
	}
	defer func() {
		r.conn.Close()
		close(r.done)
	}()
	buf := make([]byte, MaxDatagramSize)
	for {
		r.now = time.Now()
		r.release()
		if err := r.conn.SetReadDeadline(r.deadline()); err != nil {
			return r.ended(err)
		}
		if r.closed.Load() {
			r.flush()
			return nil
		}
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue
		}
		if err != nil {
			return r.ended(err)
		}
		r.now = time.Now()
		r.handle(unmap(src), buf[:n])
	}
}

// flush sends everything held back or delayed, now.
func (r *Relay) flush() {
	r.now = time.Now()
	for dir, s := range r.shapers {
		s.flush(r.emit[dir])
	}
	for _, q := range r.queue {
		r.write(q.dir, q.d)
	}
	r.queue = nil
}

func (r *Relay) ended(err error) error {
	if r.closed.Load() {
		return nil
	}
	return fmt.Errorf("impair: relay on %v: %w", r.Addr(), err)
}

// handle sends one datagram that arrived from src into its direction.
func (r *Relay) handle(src netip.AddrPort, b []byte) {
	d := datagram{buf: bytes.Clone(b), typ: TypeOf(b)}
	dir := toUpstream
	if src == r.upstream {
		c := r.client.Load()
		if c == nil {
			r.noClient.Add(1)
			return
		}
		dir, d.dst = fromUpstream, *c
	} else {
		if c := r.client.Load(); c == nil || *c != src {
			r.client.Store(&src)
		}
		d.dst = r.upstream
	}
	r.shapers[dir].push(d, r.now, r.emit[dir])
}

// release sends what is due at r.now: held datagrams past MaxHold, then
// delayed ones.
func (r *Relay) release() {
	for dir, s := range r.shapers {
		s.expire(r.now, r.emit[dir])
	}
	i := 0
	for ; i < len(r.queue) && !r.now.Before(r.queue[i].due); i++ {
		r.write(r.queue[i].dir, r.queue[i].d)
		r.queue[i] = delayed{}
	}
	r.queue = r.queue[i:]
}

// deadline is when release next has something to do (zero: nothing waits).
func (r *Relay) deadline() time.Time {
	var t time.Time
	for _, s := range r.shapers {
		if e, ok := s.nextExpiry(); ok && (t.IsZero() || e.Before(t)) {
			t = e
		}
	}
	if len(r.queue) > 0 && (t.IsZero() || r.queue[0].due.Before(t)) {
		t = r.queue[0].due
	}
	return t
}

// output takes a datagram the shaper let go: it is sent now or after the delay.
func (r *Relay) output(dir int, d datagram) {
	if r.cfg.Delay == 0 {
		r.write(dir, d)
		return
	}
	r.queue = append(r.queue, delayed{d: d, dir: dir, due: r.now.Add(r.cfg.Delay)})
}

func (r *Relay) write(dir int, d datagram) {
	c := &r.counters[dir][d.typ]
	if _, err := r.conn.WriteToUDPAddrPort(d.buf, d.dst); err != nil {
		c.sendErrors.Add(1)
		return
	}
	c.sent.Add(1)
}

// Stats returns a snapshot of the counters; it is safe to call at any time.
func (r *Relay) Stats() Stats {
	s := Stats{
		Upstream:     r.upstream.String(),
		ToUpstream:   r.counters[toUpstream].snapshot(),
		FromUpstream: r.counters[fromUpstream].snapshot(),
		NoClient:     r.noClient.Load(),
		Config:       r.cfg,
	}
	s.Total = sumDirections(s.ToUpstream, s.FromUpstream)
	if c := r.client.Load(); c != nil {
		s.Client = c.String()
	}
	return s
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
