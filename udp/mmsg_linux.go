package udp

import (
	"fmt"
	"net"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// linuxBatchSize is how many datagrams one recvmmsg/sendmmsg moves at most
// (wireguard-go's IdealBatchSize).
const linuxBatchSize = 128

// mmsghdr is struct mmsghdr. Go pads the struct to Msghdr's alignment, so an
// array of them has the kernel's layout.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// batch holds the preallocated kernel-facing arrays for one direction, and
// the callback handed to syscall.RawConn, bound once so calls allocate
// nothing.
//
// Seam for UDP GSO/GRO: each hdrs[i] gets its msg_control here. GSO would
// coalesce consecutive same-destination, same-size messages into one iovec
// list with a UDP_SEGMENT cmsg in prepareWrite; GRO would enable UDP_GRO on
// the socket, give each read header a control buffer, and split a
// coalesced datagram by its UDP_GRO cmsg in ReadBatch.
type batch struct {
	mu    sync.Mutex
	hdrs  [linuxBatchSize]mmsghdr
	iovs  [linuxBatchSize]unix.Iovec
	names [linuxBatchSize]sockaddr

	// Inputs and outputs of fn, valid while mu is held.
	start, end int // hdrs[start:end] are passed to the kernel
	got        int
	errno      syscall.Errno
	fn         func(fd uintptr) bool
}

// mmsgConn is the Linux Conn using recvmmsg and sendmmsg.
type mmsgConn struct {
	pc    *net.UDPConn
	rc    syscall.RawConn
	v6    bool
	port  uint16
	zones zoneCache
	r, w  batch
}

var _ Conn = (*mmsgConn)(nil)

// newConn wraps pc in the batching Conn.
func newConn(pc *net.UDPConn) (Conn, error) {
	return newMmsgConn(pc)
}

func newMmsgConn(pc *net.UDPConn) (*mmsgConn, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var family int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); err != nil {
		return nil, err
	}
	if serr != nil {
		return nil, fmt.Errorf("SO_DOMAIN: %w", serr)
	}
	c := &mmsgConn{
		pc:   pc,
		rc:   rc,
		v6:   family == unix.AF_INET6,
		port: uint16(pc.LocalAddr().(*net.UDPAddr).Port),
	}
	c.r.fn = c.r.call(unix.SYS_RECVMMSG)
	c.w.fn = c.w.call(unix.SYS_SENDMMSG)
	for i := range linuxBatchSize {
		for _, b := range []*batch{&c.r, &c.w} {
			b.hdrs[i].hdr.Iov = &b.iovs[i]
			b.hdrs[i].hdr.SetIovlen(1)
			b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		}
	}
	return c, nil
}

// call returns the RawConn callback that runs the mmsg system call trap on
// hdrs[start:end]. It returns false on EAGAIN so that the netpoller waits.
func (b *batch) call(trap uintptr) func(fd uintptr) bool {
	return func(fd uintptr) bool {
		for {
			n, _, errno := unix.Syscall6(trap, fd,
				uintptr(unsafe.Pointer(&b.hdrs[b.start])), uintptr(b.end-b.start), 0, 0, 0)
			switch errno {
			case 0:
				b.got, b.errno = int(n), 0
				return true
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false
			default:
				b.got, b.errno = 0, errno
				return true
			}
		}
	}
}

// ReadBatch implements Conn with one recvmmsg call.
func (c *mmsgConn) ReadBatch(msgs []Message) (int, error) {
	n := min(len(msgs), linuxBatchSize)
	if n == 0 {
		return 0, nil
	}
	b := &c.r
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range n {
		setIovec(&b.iovs[i], msgs[i].Buf)
		h := &b.hdrs[i]
		h.hdr.Namelen = unix.SizeofSockaddrInet6
		h.hdr.Flags = 0
		h.len = 0
	}
	b.start, b.end = 0, n
	err := c.rc.Read(b.fn)
	if err == nil && b.errno != 0 {
		err = b.errno
	}
	got := 0
	if err == nil {
		for i := range b.got {
			h := &b.hdrs[i]
			ap, ok := decodeSockaddr(&b.names[i], h.hdr.Namelen, &c.zones)
			if !ok {
				// Not an IP peer: cannot happen on an inet socket, but
				// never hand the caller a datagram without an address.
				continue
			}
			msgs[got].N = int(h.len)
			if got != i {
				msgs[got].N = copy(msgs[got].Buf, msgs[i].Buf[:h.len])
			}
			msgs[got].Addr = ap
			got++
		}
	}
	for i := range n {
		b.iovs[i].Base = nil // do not keep the caller's buffers alive
	}
	if err != nil {
		return 0, fmt.Errorf("udp: recvmmsg on port %d: %w", c.port, err)
	}
	return got, nil
}

// WriteBatch implements Conn with as few sendmmsg calls as the batch size
// and per-message errors allow.
func (c *mmsgConn) WriteBatch(msgs []Message) (int, error) {
	b := &c.w
	b.mu.Lock()
	defer b.mu.Unlock()
	defer func() {
		for i := range b.iovs {
			b.iovs[i].Base = nil
		}
	}()
	sent := 0
	for sent < len(msgs) {
		n, badErr := c.prepareWrite(msgs[sent:])
		for b.start, b.end = 0, n; b.start < b.end; b.start += b.got {
			if err := c.rc.Write(b.fn); err != nil {
				return sent + b.start, fmt.Errorf("udp: sendmmsg on port %d: %w", c.port, err)
			}
			if b.errno != 0 {
				return sent + b.start, fmt.Errorf("udp: write to %v: %w", msgs[sent+b.start].Addr, b.errno)
			}
			if b.got <= 0 {
				return sent + b.start, fmt.Errorf("udp: sendmmsg on port %d sent nothing", c.port)
			}
		}
		sent += n
		if badErr != nil {
			return sent, badErr
		}
	}
	return sent, nil
}

// prepareWrite fills the write headers from up to linuxBatchSize of msgs.
// It stops before the first invalid message and returns its error.
func (c *mmsgConn) prepareWrite(msgs []Message) (int, error) {
	b := &c.w
	n := min(len(msgs), linuxBatchSize)
	for i := range n {
		m := &msgs[i]
		if err := checkOutgoing(m); err != nil {
			return i, err
		}
		namelen, err := encodeSockaddr(&b.names[i], m.Addr, c.v6, &c.zones)
		if err != nil {
			return i, fmt.Errorf("udp: write to %v: %w", m.Addr, err)
		}
		setIovec(&b.iovs[i], m.Buf[:m.N])
		h := &b.hdrs[i]
		h.hdr.Namelen = namelen
		h.hdr.Flags = 0
		h.len = 0
	}
	return n, nil
}

// setIovec points iov at buf.
func setIovec(iov *unix.Iovec, buf []byte) {
	if len(buf) == 0 {
		iov.Base = nil
	} else {
		iov.Base = &buf[0]
	}
	iov.SetLen(len(buf))
}

// LocalPort implements Conn.
func (c *mmsgConn) LocalPort() uint16 { return c.port }

// BatchSize implements Conn.
func (c *mmsgConn) BatchSize() int { return linuxBatchSize }

// Close implements Conn.
func (c *mmsgConn) Close() error { return c.pc.Close() }
