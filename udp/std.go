package udp

import (
	"fmt"
	"net"
	"sync"
)

// stdConn is the portable Conn: one datagram per call through net.UDPConn.
type stdConn struct {
	pc      *net.UDPConn
	port    uint16
	readMu  sync.Mutex
	writeMu sync.Mutex
}

var (
	_ Conn   = (*stdConn)(nil)
	_ Marker = (*stdConn)(nil)
)

func newStdConn(pc *net.UDPConn) *stdConn {
	return &stdConn{pc: pc, port: uint16(pc.LocalAddr().(*net.UDPAddr).Port)}
}

// ReadBatch implements Conn; it reads one datagram per call.
func (c *stdConn) ReadBatch(msgs []Message) (int, error) {
	if len(msgs) == 0 {
		return 0, nil
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	n, ap, err := c.pc.ReadFromUDPAddrPort(msgs[0].Buf)
	if err != nil {
		return 0, fmt.Errorf("udp: read on port %d: %w", c.port, err)
	}
	msgs[0].N = n
	msgs[0].Addr = unmapPort(ap)
	return 1, nil
}

// WriteBatch implements Conn; it sends one datagram per system call.
func (c *stdConn) WriteBatch(msgs []Message) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	for i := range msgs {
		m := &msgs[i]
		if err := CheckOutgoing(m); err != nil {
			return i, err
		}
		if _, err := c.pc.WriteToUDPAddrPort(m.Buf[:m.N], m.Addr); err != nil {
			return i, fmt.Errorf("udp: write to %v: %w", m.Addr, err)
		}
	}
	return len(msgs), nil
}

// LocalPort implements Conn.
func (c *stdConn) LocalPort() uint16 { return c.port }

// BatchSize implements Conn.
func (c *stdConn) BatchSize() int { return 1 }

// SetMark implements Marker.
func (c *stdConn) SetMark(mark uint32) error { return setMark(c.pc, c.port, mark) }

// Close implements Conn.
func (c *stdConn) Close() error { return c.pc.Close() }
