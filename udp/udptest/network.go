// Package udptest is an in-memory network of udp.Conns for tests, kept out
// of the production packages as wireguard-go keeps conn/bindtest.
package udptest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/peer-vpn/peer/udp"
)

// Network sizes: each Conn queues at most queueLen datagrams (more are
// dropped, as a full socket buffer drops them) and reads at most batchSize
// per ReadBatch.
const (
	queueLen       = 256
	batchSize      = 128
	firstEphemeral = 49152
)

// Network is an in-memory network for tests: Conns that deliver to each
// other by address, with an optional hook to drop, alter, duplicate or
// reorder datagrams. Addresses are matched exactly (no wildcards); IPv4 and
// v4-mapped IPv6 addresses are the same address. Datagrams to an address
// nobody listens on are dropped. The zero value is not usable: call
// NewNetwork.
type Network struct {
	mu     sync.Mutex
	conns  map[netip.AddrPort]*memConn
	filter func(src, dst netip.AddrPort, b []byte) bool
}

// NewNetwork returns an empty network.
func NewNetwork() *Network {
	return &Network{conns: make(map[netip.AddrPort]*memConn)}
}

// memDatagram is a datagram in flight; b is owned by the queue.
type memDatagram struct {
	b   []byte
	src netip.AddrPort
}

// memConn is a udp.Conn on a Network.
type memConn struct {
	net   *Network
	addr  netip.AddrPort // guarded by net.mu
	queue chan memDatagram
	done  chan struct{}

	closeOnce sync.Once
	readMu    sync.Mutex
	// mark is the last SetMark; it changes nothing on this network and is
	// kept for tests of the code that sets it.
	mark atomic.Uint32
}

var (
	_ udp.Conn   = (*memConn)(nil)
	_ udp.Marker = (*memConn)(nil)
)

// Listen returns a Conn bound to addr; port 0 picks a free ephemeral port.
// It is an error if the address is taken.
func (n *Network) Listen(addr netip.AddrPort) (udp.Conn, error) {
	c := &memConn{
		net:   n,
		queue: make(chan memDatagram, queueLen),
		done:  make(chan struct{}),
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	bound, err := n.bindLocked(c, addr)
	if err != nil {
		return nil, fmt.Errorf("udptest: listen on %v: %w", addr, err)
	}
	c.addr = bound
	return c, nil
}

// bindLocked registers c at addr (choosing a port if it is 0) and returns
// the bound address. n.mu must be held.
func (n *Network) bindLocked(c *memConn, addr netip.AddrPort) (netip.AddrPort, error) {
	if !addr.Addr().IsValid() {
		return netip.AddrPort{}, errors.New("invalid address")
	}
	addr = unmapPort(addr)
	if addr.Port() == 0 {
		for p := firstEphemeral; ; p++ {
			if p > 65535 {
				return netip.AddrPort{}, errors.New("no free port")
			}
			try := netip.AddrPortFrom(addr.Addr(), uint16(p))
			if _, taken := n.conns[try]; !taken {
				addr = try
				break
			}
		}
	}
	if _, taken := n.conns[addr]; taken {
		return netip.AddrPort{}, errors.New("address already in use")
	}
	n.conns[addr] = c
	return addr, nil
}

// SetFilter installs a hook called for every datagram in flight; returning
// false drops it. It may mutate b, which is the receiver's private copy, and
// it may call Deliver (for example to duplicate b, or to hold a datagram
// back and deliver it later, reordering). It is called without locks held,
// possibly from several goroutines at once. nil removes the filter.
func (n *Network) SetFilter(f func(src, dst netip.AddrPort, b []byte) bool) {
	n.mu.Lock()
	n.filter = f
	n.mu.Unlock()
}

// Deliver queues a copy of b at dst as if src had sent it, bypassing the
// filter. It reports whether the datagram was queued (false: nobody
// listens on dst, or its queue is full).
func (n *Network) Deliver(src, dst netip.AddrPort, b []byte) bool {
	return n.deliver(unmapPort(src), unmapPort(dst), append([]byte(nil), b...))
}

// deliver queues b (now owned by the receiver) at dst.
func (n *Network) deliver(src, dst netip.AddrPort, b []byte) bool {
	n.mu.Lock()
	c := n.conns[dst]
	n.mu.Unlock()
	if c == nil {
		return false
	}
	select {
	case c.queue <- memDatagram{b: b, src: src}:
		return true
	default:
		return false // full: dropped, like a full socket buffer
	}
}

// Move rebinds a Conn to a new address (to test roaming): later datagrams
// from it carry the new source, and datagrams to its old address are
// dropped. Datagrams already queued for it stay queued.
func (n *Network) Move(c udp.Conn, to netip.AddrPort) error {
	mc, ok := c.(*memConn)
	if !ok || mc.net != n {
		return fmt.Errorf("udptest: move to %v: conn is not on this network", to)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if mc.closed() {
		return fmt.Errorf("udptest: move %v to %v: %w", mc.addr, to, net.ErrClosed)
	}
	if unmapPort(to) == mc.addr {
		return nil
	}
	bound, err := n.bindLocked(mc, to)
	if err != nil {
		return fmt.Errorf("udptest: move %v to %v: %w", mc.addr, to, err)
	}
	delete(n.conns, mc.addr)
	mc.addr = bound
	return nil
}

// closed reports whether Close was called.
func (c *memConn) closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// localAddr returns c's current address.
func (c *memConn) localAddr() netip.AddrPort {
	c.net.mu.Lock()
	defer c.net.mu.Unlock()
	return c.addr
}

// ReadBatch implements udp.Conn: it blocks for the first datagram, then takes
// whatever else is already queued, up to len(msgs) and BatchSize.
func (c *memConn) ReadBatch(msgs []udp.Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	if c.closed() {
		return 0, fmt.Errorf("udptest: read: %w", net.ErrClosed)
	}
	var d memDatagram
	select {
	case d = <-c.queue:
	case <-c.done:
		return 0, fmt.Errorf("udptest: read: %w", net.ErrClosed)
	}
	limit := min(len(msgs), batchSize)
	n := 0
	for {
		msgs[n].N = copy(msgs[n].Buf, d.b) // truncates, like recvmsg
		msgs[n].Addr = d.src
		n++
		if n == limit {
			return n, nil
		}
		select {
		case d = <-c.queue:
		default:
			return n, nil
		}
	}
}

// WriteBatch implements udp.Conn: each datagram is copied, passed through the
// filter and queued at its destination (or dropped).
func (c *memConn) WriteBatch(msgs []udp.Message) (int, error) {
	for i := range msgs {
		m := &msgs[i]
		if c.closed() {
			return i, fmt.Errorf("udptest: write: %w", net.ErrClosed)
		}
		if err := udp.CheckOutgoing(m); err != nil {
			return i, err
		}
		c.net.mu.Lock()
		src, filter := c.addr, c.net.filter
		c.net.mu.Unlock()
		dst := unmapPort(m.Addr)
		b := append([]byte(nil), m.Buf[:m.N]...)
		if filter != nil && !filter(src, dst, b) {
			continue
		}
		c.net.deliver(src, dst, b)
	}
	return len(msgs), nil
}

// LocalPort implements udp.Conn.
func (c *memConn) LocalPort() uint16 { return c.localAddr().Port() }

// BatchSize implements udp.Conn.
func (c *memConn) BatchSize() int { return batchSize }

// SetMark implements udp.Marker: it records mark, for Mark to return, and
// fails as a socket does once the Conn is closed.
func (c *memConn) SetMark(mark uint32) error {
	if c.closed() {
		return fmt.Errorf("udptest: set mark %d: %w", mark, net.ErrClosed)
	}
	c.mark.Store(mark)
	return nil
}

// Mark returns the mark last set with SetMark (0 if none), so that a test
// can check the mark a daemon gave its socket: assert the Conn of
// Network.Listen to interface{ Mark() uint32 }.
func (c *memConn) Mark() uint32 { return c.mark.Load() }

// Close implements udp.Conn: it frees the address and unblocks ReadBatch.
func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		c.net.mu.Lock()
		if c.net.conns[c.addr] == c {
			delete(c.net.conns, c.addr)
		}
		close(c.done)
		c.net.mu.Unlock()
	})
	return nil
}

// unmapPort returns ap with a v4-mapped IPv6 address turned into IPv4.
func unmapPort(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}
