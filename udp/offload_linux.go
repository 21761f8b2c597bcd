package udp

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP generic segmentation (GSO, UDP_SEGMENT, Linux 4.18) lets one sendmsg
// carry up to udpMaxSegments datagrams to one destination as a single
// buffer: every segment but the last is gso_size bytes, the last may be
// shorter. The kernel (or the NIC) cuts it into datagrams at the bottom of
// the stack, so the whole stack is walked once per run instead of once per
// datagram. Generic receive offload (UDP_GRO, Linux 5.0; readable back with
// getsockopt since 5.12) is the reverse: the kernel hands a socket that asks
// for it several datagrams of one flow as one buffer, with the segment size
// in a UDP_GRO control message.
const (
	// udpMaxSegments is the kernel's UDP_MAX_SEGMENTS: more in one send is
	// EINVAL.
	udpMaxSegments = 64
	// maxGSOPayload4 is the most payload one IPv4 datagram can carry (the
	// 16-bit IP total length less the IPv4 and UDP headers); a GSO send
	// bigger than that is EMSGSIZE. It also applies to v4-mapped
	// destinations, which an AF_INET6 socket sends through the IPv4 stack.
	maxGSOPayload4 = 1<<16 - 1 - 20 - 8
	// maxGSOPayload6 is the same for IPv6, whose payload length field does
	// not count the IPv6 header itself: only the UDP header is subtracted.
	maxGSOPayload6 = 1<<16 - 1 - 8

	// controlWords sizes one message's control buffer in 8-byte words
	// (which also aligns it for struct cmsghdr): room for one cmsghdr and a
	// 4-byte payload with padding, twice over.
	controlWords = 8
)

// control is one message's ancillary data buffer, 8-byte aligned.
type control [controlWords]uint64

// bytes views c as bytes.
func (c *control) bytes() []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(c)), unsafe.Sizeof(*c))
}

// putSegmentSize writes a UDP_SEGMENT control message for segments of size
// bytes into c and returns its length for msg_controllen. The kernel
// insists on a payload of exactly 16 bits.
func (c *control) putSegmentSize(size uint16) int {
	b := c.bytes()
	h := (*unix.Cmsghdr)(unsafe.Pointer(c))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], size)
	return unix.CmsgSpace(2)
}

// groSegmentSize returns the segment size of a UDP_GRO control message in
// the control data the kernel returned, or 0 if there is none (the datagram
// was not coalesced). It reads the bytes without assuming alignment and
// never panics on malformed input.
func groSegmentSize(b []byte) int {
	for len(b) >= unix.SizeofCmsghdr {
		var h unix.Cmsghdr
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&h)), unix.SizeofCmsghdr), b)
		l := uint64(h.Len)
		if l < uint64(unix.CmsgLen(0)) || l > uint64(len(b)) {
			return 0
		}
		data := b[unix.CmsgLen(0):l]
		if h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO {
			// The kernel writes an int; accept a 16-bit value too.
			var size int
			switch {
			case len(data) >= 4:
				size = int(int32(binary.NativeEndian.Uint32(data)))
			case len(data) >= 2:
				size = int(binary.NativeEndian.Uint16(data))
			}
			if size > 0 && size <= 1<<16-1 {
				return size
			}
			return 0
		}
		next := uint64(unix.CmsgSpace(int(l) - unix.CmsgLen(0)))
		if next >= uint64(len(b)) {
			break
		}
		b = b[next:]
	}
	return 0
}

// maxGSOPayload is the most bytes one GSO send to ap may carry in total.
func maxGSOPayload(ap netip.AddrPort) int {
	if ap.Addr().Unmap().Is4() {
		return maxGSOPayload4
	}
	return maxGSOPayload6
}

// disablesGSO reports whether a send carrying UDP_SEGMENT that failed with
// errno should be retried without it, GSO being unusable here: EIO when the
// outgoing device cannot checksum (a hard requirement of UDP_SEGMENT),
// EINVAL when a segment does not fit the route's MTU or the kernel rejects
// the control message, ENOPROTOOPT/EOPNOTSUPP where it does not know it.
func disablesGSO(errno syscall.Errno) bool {
	switch errno {
	case unix.EIO, unix.EINVAL, unix.ENOPROTOOPT, unix.EOPNOTSUPP:
		return true
	}
	return false
}

// offloads says which offloads a Conn may use; tests turn them off.
type offloads struct {
	gso, gro bool
}

// setupSocket enlarges the socket buffers and enables the wanted offloads
// the kernel supports. It never fails: without any of it the socket still
// works, only slower. It reports the offloads now in effect.
func setupSocket(fd int, want offloads) offloads {
	// The *FORCE options ignore net.core.[rw]mem_max but need
	// CAP_NET_ADMIN; the plain ones are capped at the maximum.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBufferSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBufferSize)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBufferSize)
	}
	var have offloads
	if want.gso {
		// A kernel without UDP_SEGMENT would ignore the control message
		// and send one oversized datagram, so it must be known up front.
		_, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		have.gso = err == nil
	}
	if want.gro && unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil {
		// Reading it back needs Linux 5.12, which also has the fixes to
		// UDP GRO that older kernels lack; on those, turn it off again.
		on, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO)
		have.gro = err == nil && on == 1
		if !have.gro {
			_ = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 0)
		}
	}
	return have
}
