package proxy

import "time"

// The limits of the package, each defined once. The servers take their
// limit from a field when it is set (tests shorten the timeouts), else from
// these.
const (
	// DialTimeout bounds one Dialer.Dial over all the addresses of a name.
	// A peer without a current session needs a WireGuard handshake before
	// the first packet, and a lost initiation is retried after
	// Rekey-Timeout (5 s): 10 s lets the second attempt succeed.
	DialTimeout = 10 * time.Second

	// HandshakeTimeout bounds a SOCKS5 negotiation (greeting and request)
	// and the header of an HTTP proxy request, so that a client that
	// connects and says nothing cannot hold a goroutine and a slot. Real
	// clients send both in one round trip.
	HandshakeTimeout = 10 * time.Second

	// MaxConns is the number of connections one TCP server (SOCKS5, HTTP
	// proxy, forward, expose) serves at once; beyond it new ones are
	// closed. A spliced connection costs two sockets, two goroutines and
	// two 32 KiB copy buffers, so the bound keeps one server under about
	// 100 MiB and 2048 descriptors however many clients arrive.
	MaxConns = 1024

	// UDPIdleTimeout ends a UDP forward session (and frees its socket) when
	// no datagram went either way for this long. RFC 4787 (REQ-5) asks NAT
	// UDP mappings to live at least two minutes; a forward is such a
	// mapping, and applications' keepalives are sized for it.
	UDPIdleTimeout = 2 * time.Minute

	// MaxUDPSessions is the number of client addresses one UDP forward or
	// expose relays at once; datagrams from new addresses beyond it are
	// dropped. A session costs a socket, two goroutines and a 64 KiB buffer:
	// about 100 MiB at the bound.
	MaxUDPSessions = 1024
)

// Internal sizes.
const (
	// maxDatagram is the largest UDP payload (65535 - 8 bytes of UDP header,
	// rounded up to the 16-bit length field): a buffer this size never
	// truncates a datagram.
	maxDatagram = 65535

	// sessionQueue is how many datagrams a UDP session holds while its dial
	// is under way or its socket is slow; more are dropped, as a full
	// socket buffer would.
	sessionQueue = 64

	// maxAssociationNames is how many resolved names one SOCKS5 UDP
	// association remembers, so that a datagram to a name is not a lookup
	// per packet; a client sending to more names than this resolves the
	// rest each time rather than growing the table without bound.
	maxAssociationNames = 64

	// maxHeaderBytes bounds the header of an HTTP proxy request. Browsers
	// and curl send a few KiB; 64 KiB leaves room for large cookies and
	// refuses a client that streams headers to exhaust memory.
	maxHeaderBytes = 64 << 10

	// httpIdleTimeout closes an idle keep-alive connection of the HTTP
	// proxy, on both sides (client and upstream); it is
	// http.DefaultTransport's IdleConnTimeout.
	httpIdleTimeout = 90 * time.Second

	// maxIdleUpstream is how many idle keep-alive connections the HTTP
	// proxy keeps to upstream servers (http.DefaultTransport's MaxIdleConns).
	maxIdleUpstream = 100

	// acceptBackoffMax caps the pause after a temporary Accept error (out of
	// descriptors): long enough not to spin, short enough to recover fast.
	acceptBackoffMax = time.Second
)
