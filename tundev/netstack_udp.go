package tundev

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// ListenUDP opens a UDP socket in the stack on laddr. With the zero laddr
// the socket can send to and receive from either family: it is one socket
// per family the stack holds, each on the first address of that family (the
// stack binds no wildcard address), behind one net.PacketConn that sends
// each datagram on the socket of its destination's family.
func (n *Netstack) ListenUDP(laddr netip.AddrPort) (net.PacketConn, error) {
	if laddr.IsValid() {
		pc, err := n.net.ListenUDPAddrPort(laddr)
		if err != nil {
			return nil, fmt.Errorf("netstack: listen udp %v: %w", laddr, err)
		}
		return pc, nil
	}
	d := &dualPacketConn{in: make(chan datagram), done: make(chan struct{})}
	for _, a := range n.addrs {
		slot := &d.v4
		if a.Is6() {
			slot = &d.v6
		}
		if *slot != nil {
			continue
		}
		pc, err := n.net.ListenUDPAddrPort(netip.AddrPortFrom(a, 0))
		if err != nil {
			d.Close()
			return nil, fmt.Errorf("netstack: listen udp on %v: %w", a, err)
		}
		*slot = pc
		d.readers.Add(1)
		go d.read(pc)
	}
	if d.v4 == nil && d.v6 == nil {
		return nil, errors.New("netstack: listen udp: the stack has no address")
	}
	return d, nil
}

// datagram is one datagram read by a dualPacketConn's reader.
type datagram struct {
	b    []byte
	from net.Addr
}

// dualPacketConn is the either-family socket of ListenUDP.
type dualPacketConn struct {
	v4, v6  net.PacketConn
	in      chan datagram
	done    chan struct{}
	readers sync.WaitGroup
	once    sync.Once

	mu       sync.Mutex
	deadline time.Time
}

// read hands what pc receives to ReadFrom until the conn closes.
func (d *dualPacketConn) read(pc net.PacketConn) {
	defer d.readers.Done()
	buf := make([]byte, MaxMTU)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		select {
		case d.in <- datagram{append([]byte(nil), buf[:n]...), from}:
		case <-d.done:
			return
		}
	}
}

func (d *dualPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	d.mu.Lock()
	deadline := d.deadline
	d.mu.Unlock()
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case dg := <-d.in:
		return copy(p, dg.b), dg.from, nil
	case <-d.done:
		return 0, nil, net.ErrClosed
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (d *dualPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("netstack: write to %v: not a UDP address", addr)
	}
	pc := d.v6
	if ua.IP.To4() != nil {
		pc = d.v4
	}
	if pc == nil {
		return 0, fmt.Errorf("netstack: write to %v: the stack has no address of that family", addr)
	}
	ap := ua.AddrPort()
	return pc.WriteTo(p, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())))
}

func (d *dualPacketConn) Close() error {
	d.once.Do(func() {
		close(d.done)
		for _, pc := range []net.PacketConn{d.v4, d.v6} {
			if pc != nil {
				pc.Close()
			}
		}
		d.readers.Wait()
	})
	return nil
}

// LocalAddr is the IPv4 socket's address, else the IPv6 one's.
func (d *dualPacketConn) LocalAddr() net.Addr {
	if d.v4 != nil {
		return d.v4.LocalAddr()
	}
	return d.v6.LocalAddr()
}

func (d *dualPacketConn) SetDeadline(t time.Time) error {
	d.SetReadDeadline(t)
	return d.SetWriteDeadline(t)
}

func (d *dualPacketConn) SetReadDeadline(t time.Time) error {
	d.mu.Lock()
	d.deadline = t
	d.mu.Unlock()
	return nil
}

func (d *dualPacketConn) SetWriteDeadline(t time.Time) error {
	for _, pc := range []net.PacketConn{d.v4, d.v6} {
		if pc != nil {
			if err := pc.SetWriteDeadline(t); err != nil {
				return err
			}
		}
	}
	return nil
}
