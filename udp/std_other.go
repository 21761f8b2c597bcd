//go:build !linux

package udp

import "net"

// newConn wraps pc in the portable one-datagram-per-call Conn, with
// buffers as large as the system allows up to socketBufferSize.
func newConn(pc *net.UDPConn) (Conn, error) {
	_ = pc.SetReadBuffer(socketBufferSize)
	_ = pc.SetWriteBuffer(socketBufferSize)
	return newStdConn(pc), nil
}
