package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

// testTimeout bounds every wait of a test, so a bug fails instead of hanging.
const testTimeout = 10 * time.Second

// errUnknownName is the test resolver's answer for anything but "beta".
var errUnknownName = errors.New("unknown name")

// testResolve maps the peer name "beta" to the loopback and refuses the rest.
func testResolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if host == "beta" {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	return nil, errUnknownName
}

// testDialer dials the host's loopback, knowing only the name "beta".
func testDialer() *Dialer { return &Dialer{Net: HostNetwork{}, Resolve: testResolve} }

// testLog logs at Debug to stderr when -v is given, else nowhere.
func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// listen opens a TCP listener on 127.0.0.1 and closes it at the end of t.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// listenUDP opens a UDP socket on 127.0.0.1 and closes it at the end of t.
func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// serve runs fn in a goroutine with a context that ends with t, and fails t
// if fn returns an error or does not return after the context ends.
func serve(t *testing.T, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(testTimeout):
			t.Errorf("serve did not return after its context ended")
		}
	})
}

// echoTCP serves a TCP echo on 127.0.0.1 that half-closes after the
// client's EOF, and returns its address.
func echoTCP(t *testing.T) string {
	l := listen(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return l.Addr().String()
}

// echoUDP serves a UDP echo on 127.0.0.1 and returns its address.
func echoUDP(t *testing.T) *net.UDPConn {
	c := listenUDP(t)
	go func() {
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			c.WriteTo(buf[:n], from)
		}
	}()
	return c
}

// eventually fails t unless cond becomes true within testTimeout.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
