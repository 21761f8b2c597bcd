package udp

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const (
	// linuxBatchSize is how many messages one recvmmsg/sendmmsg moves at
	// most (wireguard-go's IdealBatchSize).
	linuxBatchSize = 128
	// groBuffers is how many datagrams one recvmmsg reads on a socket with
	// UDP GRO, each into its own groBufferSize buffer since each may hold
	// up to udpMaxSegments coalesced segments: 1 MiB per Conn. Segments that
	// do not fit the caller's messages wait for the next ReadBatch.
	groBuffers    = 16
	groBufferSize = 1 << 16
)

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
// With UDP GSO a write header carries a run of messages: its iovec list is
// iovs[first[j]:first[j+1]], one iovec per message (no copy), and controls[j]
// holds the UDP_SEGMENT control message. With UDP GRO each read header
// points at an internal buffer and controls[j] receives the UDP_GRO control
// message; see groReader.
type batch struct {
	mu       sync.Mutex
	hdrs     [linuxBatchSize]mmsghdr
	iovs     [linuxBatchSize]unix.Iovec
	names    [linuxBatchSize]sockaddr
	controls [linuxBatchSize]control
	// first[j] is the index, in the messages being written, of the first
	// one hdrs[j] carries; first[nhdr] is one past the last.
	first [linuxBatchSize + 1]int

	// Inputs and outputs of fn, valid while mu is held.
	start, end int // hdrs[start:end] are passed to the kernel
	got        int
	errno      syscall.Errno
	fn         func(fd uintptr) bool

	// Counters for tests and benchmarks, guarded by mu: system calls made
	// and kernel messages (datagrams or coalesced runs) moved.
	syscalls, datagrams uint64
	// failGSO, if not 0, makes fn fail the first header carrying a control
	// message with this errno, after sending the ones before it, as
	// sendmmsg does when the kernel rejects UDP_SEGMENT. Test hook.
	failGSO syscall.Errno
}

// groReader holds datagrams read with UDP GRO that are not yet handed out.
// It is guarded by the read batch's mutex.
type groReader struct {
	bufs []byte // groBuffers buffers of groBufferSize bytes
	// Datagrams from the last recvmmsg, in order: dgrams[next:n] are
	// pending, and off bytes of dgrams[next] were already handed out.
	dgrams  [groBuffers]groDatagram
	n, next int
	off     int
}

// groDatagram is one received datagram, possibly several segments.
type groDatagram struct {
	data []byte // within groReader.bufs
	seg  int    // segment size, 0 if the datagram is one segment
	addr netip.AddrPort
}

// mmsgConn is the Linux Conn using recvmmsg and sendmmsg, with UDP GSO and
// GRO where the kernel supports them.
type mmsgConn struct {
	pc    *net.UDPConn
	rc    syscall.RawConn
	v6    bool
	port  uint16
	zones zoneCache
	r, w  batch

	gso    bool        // UDP_SEGMENT is supported
	gsoOff atomic.Bool // a GSO send failed: do without from now on
	gro    *groReader  // nil without UDP GRO
	closed atomic.Bool
}

var (
	_ Conn   = (*mmsgConn)(nil)
	_ Marker = (*mmsgConn)(nil)
)

// newConn wraps pc in the batching Conn with every offload the kernel has.
func newConn(pc *net.UDPConn) (Conn, error) {
	return newMmsgConn(pc, offloads{gso: true, gro: true})
}

// newMmsgConn wraps pc, enlarging its buffers and enabling those of the
// wanted offloads that the kernel supports.
func newMmsgConn(pc *net.UDPConn, want offloads) (*mmsgConn, error) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return nil, err
	}
	var family int
	var serr error
	var have offloads
	if err := rc.Control(func(fd uintptr) {
		family, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if serr == nil {
			have = setupSocket(int(fd), want)
		}
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
		gso:  have.gso,
	}
	c.r.fn = c.r.call(unix.SYS_RECVMMSG)
	c.w.fn = c.w.call(unix.SYS_SENDMMSG)
	for i := range linuxBatchSize {
		for _, b := range []*batch{&c.r, &c.w} {
			b.hdrs[i].hdr.Iov = &b.iovs[i]
			b.hdrs[i].hdr.SetIovlen(1)
			b.hdrs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
			b.hdrs[i].hdr.Control = &b.controls[i].bytes()[0]
		}
	}
	if have.gro {
		g := &groReader{bufs: make([]byte, groBuffers*groBufferSize)}
		for i := range groBuffers {
			setIovec(&c.r.iovs[i], g.bufs[i*groBufferSize:(i+1)*groBufferSize])
		}
		c.gro = g
	}
	return c, nil
}

// call returns the RawConn callback that runs the mmsg system call trap on
// hdrs[start:end]. It returns false on EAGAIN so that the netpoller waits.
func (b *batch) call(trap uintptr) func(fd uintptr) bool {
	return func(fd uintptr) bool {
		end := b.end
		if b.failGSO != 0 {
			for j := b.start; j < end; j++ {
				if b.hdrs[j].hdr.Controllen == 0 {
					continue
				}
				if j == b.start {
					b.got, b.errno = 0, b.failGSO
					return true
				}
				end = j
				break
			}
		}
		for {
			b.syscalls++
			n, _, errno := unix.Syscall6(trap, fd,
				uintptr(unsafe.Pointer(&b.hdrs[b.start])), uintptr(end-b.start), 0, 0, 0)
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

// ReadBatch implements Conn with one recvmmsg call, or none when segments of
// an earlier coalesced datagram are still pending.
func (c *mmsgConn) ReadBatch(msgs []Message) (int, error) {
	n := min(len(msgs), linuxBatchSize)
	if n == 0 {
		return 0, nil
	}
	b := &c.r
	b.mu.Lock()
	defer b.mu.Unlock()
	if c.gro != nil {
		return c.readGRO(msgs[:n])
	}
	for i := range n {
		setIovec(&b.iovs[i], msgs[i].Buf)
		h := &b.hdrs[i]
		h.hdr.Namelen = unix.SizeofSockaddrInet6
		h.hdr.SetControllen(0)
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
		b.datagrams += uint64(b.got)
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

// readGRO is ReadBatch on a socket with UDP GRO: it reads into the internal
// buffers only when nothing is pending, then copies one segment into each
// message. It is called with the read mutex held.
func (c *mmsgConn) readGRO(msgs []Message) (int, error) {
	g := c.gro
	if c.closed.Load() {
		g.n, g.next, g.off = 0, 0, 0
		return 0, fmt.Errorf("udp: recvmmsg on port %d: %w", c.port, net.ErrClosed)
	}
	if g.next == g.n {
		if err := c.fillGRO(min(len(msgs), groBuffers)); err != nil {
			return 0, err
		}
	}
	got := 0
	for got < len(msgs) && g.next < g.n {
		d := &g.dgrams[g.next]
		end := len(d.data)
		if d.seg > 0 && g.off+d.seg < end {
			end = g.off + d.seg
		}
		m := &msgs[got]
		m.N = copy(m.Buf, d.data[g.off:end])
		m.Addr = d.addr
		got++
		g.off = end
		if g.off >= len(d.data) {
			*d = groDatagram{}
			g.next++
			g.off = 0
		}
	}
	return got, nil
}

// fillGRO reads up to k datagrams into the internal buffers.
func (c *mmsgConn) fillGRO(k int) error {
	b, g := &c.r, c.gro
	g.n, g.next, g.off = 0, 0, 0
	for i := range k {
		h := &b.hdrs[i]
		h.hdr.Namelen = unix.SizeofSockaddrInet6
		h.hdr.SetControllen(int(unsafe.Sizeof(b.controls[i])))
		h.hdr.Flags = 0
		h.len = 0
	}
	b.start, b.end = 0, k
	err := c.rc.Read(b.fn)
	if err == nil && b.errno != 0 {
		err = b.errno
	}
	if err != nil {
		return fmt.Errorf("udp: recvmmsg on port %d: %w", c.port, err)
	}
	b.datagrams += uint64(b.got)
	for i := range b.got {
		h := &b.hdrs[i]
		ap, ok := decodeSockaddr(&b.names[i], h.hdr.Namelen, &c.zones)
		if !ok {
			continue // see ReadBatch
		}
		ctl := b.controls[i].bytes()[:min(int(h.hdr.Controllen), int(unsafe.Sizeof(b.controls[i])))]
		g.dgrams[g.n] = groDatagram{
			data: g.bufs[i*groBufferSize : i*groBufferSize+min(int(h.len), groBufferSize)],
			seg:  groSegmentSize(ctl),
			addr: ap,
		}
		g.n++
	}
	return nil
}

// WriteBatch implements Conn with as few sendmmsg calls as the batch size
// and per-message errors allow, coalescing runs with UDP GSO.
func (c *mmsgConn) WriteBatch(msgs []Message) (int, error) {
	b := &c.w
	b.mu.Lock()
	defer b.mu.Unlock()
	sent := 0
	for sent < len(msgs) {
		gso := c.gso && !c.gsoOff.Load()
		nmsg, nhdr, badErr := c.prepareWrite(msgs[sent:], gso)
		n, retry, err := c.sendPrepared(nhdr)
		clear(b.iovs[:nmsg]) // do not keep the caller's buffers alive
		if err != nil {
			m := &msgs[sent+n]
			if m.Addr.IsValid() {
				err = fmt.Errorf("udp: write to %v: %w", m.Addr, err)
			} else {
				err = fmt.Errorf("udp: sendmmsg on port %d: %w", c.port, err)
			}
			return sent + n, err
		}
		if retry {
			// Resend from the rejected run on, without GSO.
			sent += n
			continue
		}
		sent += nmsg
		if badErr != nil {
			return sent, badErr
		}
	}
	return sent, nil
}

// sendPrepared sends hdrs[:nhdr]. It returns how many messages went out
// before it stopped, and either an error or retry: a GSO run was rejected,
// GSO is now off and the caller should prepare the rest again.
func (c *mmsgConn) sendPrepared(nhdr int) (sent int, retry bool, err error) {
	b := &c.w
	for b.start, b.end = 0, nhdr; b.start < b.end; b.start += b.got {
		if err := c.rc.Write(b.fn); err != nil {
			return b.first[b.start], false, err
		}
		if b.errno != 0 {
			if b.hdrs[b.start].hdr.Controllen != 0 && disablesGSO(b.errno) {
				c.gsoOff.Store(true)
				return b.first[b.start], true, nil
			}
			return b.first[b.start], false, b.errno
		}
		if b.got <= 0 {
			return b.first[b.start], false, fmt.Errorf("sendmmsg sent nothing")
		}
		b.datagrams += uint64(b.got)
	}
	return b.first[nhdr], false, nil
}

// prepareWrite fills the write headers from up to linuxBatchSize of msgs,
// one header per message or, with gso, per run of messages that can go as
// one GSO send: the same destination, the same length except that the last
// may be shorter, at most udpMaxSegments of them and at most maxGSOPayload
// bytes in all. It returns how many messages and headers it prepared, and
// stops before the first invalid message, returning its error.
func (c *mmsgConn) prepareWrite(msgs []Message, gso bool) (nmsg, nhdr int, err error) {
	b := &c.w
	limit := min(len(msgs), linuxBatchSize)
	i := 0
	for i < limit {
		m := &msgs[i]
		if err = CheckOutgoing(m); err != nil {
			break
		}
		namelen, serr := encodeSockaddr(&b.names[nhdr], m.Addr, c.v6, &c.zones)
		if serr != nil {
			err = fmt.Errorf("udp: write to %v: %w", m.Addr, serr)
			break
		}
		b.first[nhdr] = i
		setIovec(&b.iovs[i], m.Buf[:m.N])
		i++
		segs := 1
		if gso && m.N > 0 {
			seg, total, most := m.N, m.N, maxGSOPayload(m.Addr)
			for i < limit && segs < udpMaxSegments {
				x := &msgs[i]
				if x.Addr != m.Addr || x.N <= 0 || x.N > seg || x.N > len(x.Buf) || total+x.N > most {
					break
				}
				setIovec(&b.iovs[i], x.Buf[:x.N])
				total += x.N
				segs++
				i++
				if x.N < seg {
					break // a shorter segment ends the run
				}
			}
		}
		h := &b.hdrs[nhdr]
		h.hdr.Iov = &b.iovs[b.first[nhdr]]
		h.hdr.SetIovlen(segs)
		h.hdr.Namelen = namelen
		h.hdr.Flags = 0
		h.len = 0
		if segs > 1 {
			h.hdr.SetControllen(b.controls[nhdr].putSegmentSize(uint16(m.N)))
		} else {
			h.hdr.SetControllen(0)
		}
		nhdr++
	}
	b.first[nhdr] = i
	return i, nhdr, err
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

// SetMark implements Marker.
func (c *mmsgConn) SetMark(mark uint32) error { return setMark(c.pc, c.port, mark) }

// Close implements Conn.
func (c *mmsgConn) Close() error {
	c.closed.Store(true)
	return c.pc.Close()
}
