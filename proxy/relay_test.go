package proxy

import (
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// halfCloseEcho checks a TCP path to an echo server: what is written comes
// back, and a half-close travels through so the echo's own EOF returns.
func halfCloseEcho(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	msg := []byte(strings.Repeat("half-close ", 1000))
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c) // ends only if the echo's EOF came back
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("echo returned %d bytes, want %d", len(got), len(msg))
	}
}

func TestTCPForward(t *testing.T) {
	echo := echoTCP(t)
	_, port, _ := net.SplitHostPort(echo)
	l := listen(t)
	r := &TCPRelay{Dial: testDialer().To("tcp", net.JoinHostPort("beta", port)), Log: testLog(t)}
	serve(t, func(ctx context.Context) error { return r.Serve(ctx, l) })
	halfCloseEcho(t, l.Addr().String())
	halfCloseEcho(t, l.Addr().String())
}

func TestTCPExpose(t *testing.T) {
	echo := echoTCP(t)
	l := listen(t) // stands for a listener in the mesh
	r := &TCPRelay{Dial: HostDial("tcp", echo), Log: testLog(t)}
	serve(t, func(ctx context.Context) error { return r.Serve(ctx, l) })
	halfCloseEcho(t, l.Addr().String())
}

func TestTCPRelayDialFails(t *testing.T) {
	l := listen(t)
	r := &TCPRelay{Dial: testDialer().To("tcp", "nosuch:80"), Log: testLog(t)}
	serve(t, func(ctx context.Context) error { return r.Serve(ctx, l) })
	c, err := net.DialTimeout("tcp", l.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("read on a relay whose dial failed = %d, %v; want EOF", n, err)
	}
}

func TestTCPRelayLimit(t *testing.T) {
	echo := echoTCP(t)
	l := listen(t)
	r := &TCPRelay{Dial: HostDial("tcp", echo), Log: testLog(t), MaxConns: 1}
	serve(t, func(ctx context.Context) error { return r.Serve(ctx, l) })
	first, err := net.DialTimeout("tcp", l.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	first.SetDeadline(time.Now().Add(testTimeout))
	// A round trip proves the first holds the one slot.
	if _, err := first.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(first, make([]byte, 1)); err != nil {
		t.Fatal(err)
	}
	second, err := net.DialTimeout("tcp", l.Addr().String(), testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetDeadline(time.Now().Add(testTimeout))
	if _, err := second.Read(make([]byte, 1)); err == nil {
		t.Fatal("second connection over the limit was served")
	}
	first.Close()
	// The slot comes free: a new connection is served again.
	eventually(t, "a slot after the first closed", func() bool {
		c, err := net.DialTimeout("tcp", l.Addr().String(), testTimeout)
		if err != nil {
			return false
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("y")); err != nil {
			return false
		}
		_, err = io.ReadFull(c, make([]byte, 1))
		return err == nil
	})
}

// udpRoundTrip sends msg from c to addr and returns the reply.
func udpRoundTrip(t *testing.T, c *net.UDPConn, addr net.Addr, msg string) string {
	t.Helper()
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.WriteTo([]byte(msg), addr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	n, from, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if from.String() != addr.String() {
		t.Fatalf("reply from %v, want %v", from, addr)
	}
	return string(buf[:n])
}

func TestUDPForward(t *testing.T) {
	echo := echoUDP(t)
	_, port, _ := net.SplitHostPort(echo.LocalAddr().String())
	pc := listenUDP(t)
	r := &UDPRelay{Dial: testDialer().To("udp", net.JoinHostPort("beta", port)), Log: testLog(t), IdleTimeout: 200 * time.Millisecond}
	serve(t, func(ctx context.Context) error { return r.Serve(ctx, pc) })

	a, b := listenUDP(t), listenUDP(t)
	for i := range 3 {
		for _, c := range []*net.UDPConn{a, b} {
			msg := c.LocalAddr().String() + string(rune('0'+i))
			if got := udpRoundTrip(t, c, pc.LocalAddr(), msg); got != msg {
				t.Fatalf("reply %q, want %q", got, msg)
			}
		}
	}
	if n := r.Sessions(); n != 2 {
		t.Fatalf("%d sessions for two clients, want 2", n)
	}
	eventually(t, "idle sessions to expire", func() bool { return r.Sessions() == 0 })
	// A client whose session expired gets a new one.
	if got := udpRoundTrip(t, a, pc.LocalAddr(), "again"); got != "again" {
		t.Fatalf("reply %q after expiry", got)
	}
}

func TestUDPExposeLimit(t *testing.T) {
	echo := echoUDP(t)
	pc := listenUDP(t) // stands for a socket in the mesh
	r := &UDPRelay{Dial: HostDial("udp", echo.LocalAddr().String()), Log: testLog(t), MaxSessions: 1}
	serve(t, func(ctx context.Context) error { return r.Serve(ctx, pc) })
	a, b := listenUDP(t), listenUDP(t)
	if got := udpRoundTrip(t, a, pc.LocalAddr(), "a"); got != "a" {
		t.Fatalf("reply %q", got)
	}
	b.SetDeadline(time.Now().Add(200 * time.Millisecond))
	b.WriteTo([]byte("b"), pc.LocalAddr())
	if n, _, err := b.ReadFrom(make([]byte, 16)); err == nil {
		t.Fatalf("client over the session limit got a %d-byte reply", n)
	}
}
