package tundev

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// pump moves packets from one stack to the other until from closes, as a
// wire between two hosts would.
func pump(from, to *Netstack) {
	bufs := [][]byte{make([]byte, 16+MaxMTU)}
	sizes := []int{0}
	for {
		n, err := from.Read(bufs, sizes, 16)
		if err != nil {
			return
		}
		if n == 1 {
			to.Write([][]byte{bufs[0][:16+sizes[0]]}, 16)
		}
	}
}

func openPair(t *testing.T) (a, b *Netstack) {
	t.Helper()
	a, err := OpenNetstack([]netip.Addr{netip.MustParseAddr("10.9.0.1"), netip.MustParseAddr("fd00:9::1")}, 1420)
	if err != nil {
		t.Fatal(err)
	}
	b, err = OpenNetstack([]netip.Addr{netip.MustParseAddr("10.9.0.2"), netip.MustParseAddr("fd00:9::2")}, 1420)
	if err != nil {
		a.Close()
		t.Fatal(err)
	}
	go pump(a, b)
	go pump(b, a)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

func TestNetstackTCPAndPing(t *testing.T) {
	a, b := openPair(t)
	if a.Name() != DriverNetstack || a.Driver() != DriverNetstack || a.MTU() != 1420 || a.BatchSize() != 1 {
		t.Fatalf("name %q driver %q mtu %d batch %d", a.Name(), a.Driver(), a.MTU(), a.BatchSize())
	}
	want := make([]byte, 1<<20)
	rand.Read(want)
	for _, addr := range []string{"10.9.0.2", "fd00:9::2"} {
		ap := netip.AddrPortFrom(netip.MustParseAddr(addr), 7000)
		l, err := b.Net().ListenTCPAddrPort(ap)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write(want)
			c.Close()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := a.Net().DialContextTCPAddrPort(ctx, ap)
		cancel()
		if err != nil {
			t.Fatalf("dial %v: %v", ap, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c)
		c.Close()
		l.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v: read %d bytes, err %v", ap, len(got), err)
		}

		if err := a.Ping(ap.Addr(), 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNetstackClose(t *testing.T) {
	a, err := OpenNetstack([]netip.Addr{netip.MustParseAddr("10.9.0.1")}, 1420)
	if err != nil {
		t.Fatal(err)
	}
	// Packets the stack sends while nobody reads (SYNs) must not block
	// Close, nor make it panic.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		a.Net().DialContextTCPAddrPort(ctx, netip.MustParseAddrPort("10.9.0.2:80"))
	}()
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() {
		for {
			if _, err := a.Read([][]byte{make([]byte, 2000)}, []int{0}, 0); err != nil {
				done <- err
				return
			}
		}
	}()
	time.Sleep(50 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read after Close: %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read still blocked after Close")
	}
	if _, err := a.Write([][]byte{make([]byte, 40)}, 0); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	a.Close()
}

func TestOpenNetstackRefuses(t *testing.T) {
	for _, tc := range []struct {
		addrs []string
		mtu   int
		want  string
	}{
		{nil, 1420, "no address"},
		{[]string{"10.9.0.1"}, 60, "below the minimum"},
		{[]string{"fd00::1"}, 1000, "IPv6 minimum"},
		{[]string{"10.9.0.1"}, 70000, "above the maximum"},
	} {
		var addrs []netip.Addr
		for _, s := range tc.addrs {
			addrs = append(addrs, netip.MustParseAddr(s))
		}
		if n, err := OpenNetstack(addrs, tc.mtu); err == nil || !strings.Contains(err.Error(), tc.want) {
			if n != nil {
				n.Close()
			}
			t.Errorf("OpenNetstack(%v, %d) = %v, want %q", tc.addrs, tc.mtu, err, tc.want)
		}
	}
	if _, err := Open("x", DriverNetstack, 1420); err == nil || !strings.Contains(err.Error(), "OpenNetstack") {
		t.Errorf("Open with driver netstack: %v", err)
	}
}

func TestNetstackListenUDPEitherFamily(t *testing.T) {
	a, b := openPair(t)
	for _, at := range []string{"10.9.0.2:9000", "[fd00:9::2]:9000"} {
		l, err := b.ListenUDP(netip.MustParseAddrPort(at))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			buf := make([]byte, 100)
			for {
				n, from, err := l.ReadFrom(buf)
				if err != nil {
					return
				}
				l.WriteTo(buf[:n], from)
			}
		}()
	}
	pc, err := a.ListenUDP(netip.AddrPort{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for _, at := range []string{"10.9.0.2:9000", "[fd00:9::2]:9000"} {
		if _, err := pc.WriteTo([]byte("echo "+at), net.UDPAddrFromAddrPort(netip.MustParseAddrPort(at))); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		n, from, err := pc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "echo "+at || from.String() != at {
			t.Fatalf("got %q from %v, err %v", buf[:n], from, err)
		}
	}
	pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, _, err := pc.ReadFrom(make([]byte, 10)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("ReadFrom with nothing to read: %v", err)
	}
}
