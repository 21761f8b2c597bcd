// Package udp hides the platform's UDP socket behind a small batch-shaped
// interface, so the node can be tested against an in-memory network (udptest).
//
// On Linux a Conn moves up to BatchSize messages per system call with
// recvmmsg/sendmmsg and allocates nothing in the steady state. Where the
// kernel supports them it also uses UDP segmentation offload: WriteBatch
// sends each run of messages to one destination with equal lengths (the
// last may be shorter) as a single UDP_SEGMENT send, and ReadBatch asks for
// UDP_GRO and splits each coalesced datagram it gets back into one Message
// per original datagram, so a TCP super-packet's worth of datagrams crosses
// the stack once instead of once per datagram. Elsewhere a Conn moves one
// datagram per call through net.UDPConn.
package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// Message is one datagram: Buf is the full buffer (capacity reused), N the
// length read/to write, Addr the peer address.
//
// ReadBatch reads into Buf[:len(Buf)]; a longer datagram is truncated, as with
// recvmsg. WriteBatch sends Buf[:N].
type Message struct {
	Buf  []byte
	N    int
	Addr netip.AddrPort
}

// Conn is a UDP socket read and written in batches.
//
// ReadBatch and WriteBatch may be called concurrently with each other and
// with themselves (calls of the same method are serialized).
type Conn interface {
	// ReadBatch blocks until at least one datagram arrives, then fills up to
	// len(msgs) messages and returns how many. It fills msgs[i].N and
	// msgs[i].Addr; IPv4 addresses are unmapped, never ::ffff:a.b.c.d.
	ReadBatch(msgs []Message) (int, error)
	// WriteBatch sends msgs[i].Buf[:N] to msgs[i].Addr (each may differ;
	// IPv4 or IPv6). It returns the number of messages sent: on error,
	// msgs[:n] were sent and msgs[n] is the one that failed.
	WriteBatch(msgs []Message) (int, error)
	// LocalPort is the port the socket is bound to.
	LocalPort() uint16
	// BatchSize is the most messages one ReadBatch or system call moves.
	BatchSize() int
	// Close closes the socket and unblocks ReadBatch with an error matching
	// net.ErrClosed (errors.Is).
	Close() error
}

// Marker is implemented by the Conns that can carry a firewall mark (on
// Linux, SO_MARK). A node that sends everything outside the mesh through an
// exit marks its socket, as wg-quick does, so that policy routing keeps its
// own encrypted datagrams out of its own tunnel. It is a separate interface,
// found by type assertion, so that Conn, which every implementation and
// wrapper must satisfy, stays as it is; the mark is set once, off the data
// path.
type Marker interface {
	// SetMark sets the firewall mark of every datagram the socket sends
	// from now on; 0 clears it. Where the system has no such mark it
	// returns an error matching errors.ErrUnsupported (errors.Is).
	SetMark(mark uint32) error
}

// socketBufferSize is the receive and send buffer Listen asks for, as
// wireguard-go does: at VPN rates the default of a few hundred KiB
// overflows within one burst, and every datagram dropped there is a TCP
// retransmission inside the tunnel.
const socketBufferSize = 7 << 20

// Listen opens a dual-stack UDP socket on port (0 = ephemeral): one AF_INET6
// socket with IPV6_V6ONLY=0 when IPv6 is available, AF_INET otherwise. It
// asks for socketBufferSize bytes of receive and send buffer, beyond the
// system maximum where privileges allow, and goes on with less if refused.
func Listen(port int) (Conn, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("udp: listen: port %d out of range", port)
	}
	// With network "udp" and a wildcard address the standard library makes
	// exactly that socket: AF_INET6 with IPV6_V6ONLY=0 where the kernel
	// supports v4-mapped addresses, else AF_INET.
	pc, err := net.ListenUDP("udp", &net.UDPAddr{Port: port})
	if err != nil {
		return nil, fmt.Errorf("udp: listen on port %d: %w", port, err)
	}
	c, err := newConn(pc)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("udp: listen on port %d: %w", port, err)
	}
	return c, nil
}

// CheckOutgoing is what every Conn checks of a message before it sends
// it: a length within the buffer and a destination with an address and a
// port. Conns outside this package (udptest's) apply the same rule.
func CheckOutgoing(m *Message) error {
	if m.N < 0 || m.N > len(m.Buf) {
		return fmt.Errorf("udp: write to %v: length %d outside buffer of %d bytes", m.Addr, m.N, len(m.Buf))
	}
	if !m.Addr.IsValid() || m.Addr.Port() == 0 {
		return fmt.Errorf("udp: write: invalid destination %v", m.Addr)
	}
	return nil
}

// unmapPort returns ap with a v4-mapped IPv6 address turned into IPv4.
func unmapPort(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}

// errIPv6OnIPv4 is returned when an IPv4-only socket is asked to reach an
// IPv6 address.
var errIPv6OnIPv4 = errors.New("IPv6 destination on an IPv4-only socket")
