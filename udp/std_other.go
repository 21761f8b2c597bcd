//go:build !linux

package udp

import "net"

// newConn wraps pc in the portable one-datagram-per-call Conn.
func newConn(pc *net.UDPConn) (Conn, error) { return newStdConn(pc), nil }
