package udp

import (
	"errors"
	"net"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// requireNetAdmin skips a test that needs CAP_NET_ADMIN (taken as root),
// except in CI, where its absence is a failure.
func requireNetAdmin(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("SO_MARK needs CAP_NET_ADMIN: run as root (CI=true forbids skipping)")
	}
	t.Skip("SO_MARK needs CAP_NET_ADMIN: run as root")
}

// socketOf returns the socket under a Linux Conn.
func socketOf(t *testing.T, c Conn) *net.UDPConn {
	t.Helper()
	switch c := c.(type) {
	case *mmsgConn:
		return c.pc
	case *stdConn:
		return c.pc
	}
	t.Fatalf("no socket in a %T", c)
	return nil
}

// soMark reads SO_MARK back from the kernel.
func soMark(t *testing.T, c Conn) uint32 {
	t.Helper()
	rc, err := socketOf(t, c).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var mark int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		mark, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK)
	}); err != nil {
		t.Fatal(err)
	}
	if serr != nil {
		t.Fatalf("getsockopt SO_MARK: %v", serr)
	}
	return uint32(mark)
}

// TestSetMarkReachesTheKernel: every Conn Listen can return on Linux (and
// the portable one) sets SO_MARK, reads back as set, and clears it with 0.
func TestSetMarkReachesTheKernel(t *testing.T) {
	requireNetAdmin(t)
	impls := slices.Clone(implementations)
	impls = append(impls, struct {
		name   string
		listen func(int) (Conn, error)
	}{"no offloads", func(port int) (Conn, error) {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{Port: port})
		if err != nil {
			return nil, err
		}
		return newMmsgConn(pc, offloads{})
	}})
	for _, impl := range impls {
		t.Run(impl.name, func(t *testing.T) {
			c := listenT(t, impl.listen)
			m, ok := c.(Marker)
			if !ok {
				t.Fatalf("%T is not a Marker", c)
			}
			if got := soMark(t, c); got != 0 {
				t.Fatalf("a new socket has SO_MARK %d", got)
			}
			for _, mark := range []uint32{51820, 0xffffffff, 0} {
				if err := m.SetMark(mark); err != nil {
					t.Fatalf("SetMark(%d): %v", mark, err)
				}
				if got := soMark(t, c); got != mark {
					t.Fatalf("after SetMark(%d), SO_MARK is %d", mark, got)
				}
			}
			c.Close()
			if err := m.SetMark(51820); !errors.Is(err, net.ErrClosed) {
				t.Fatalf("SetMark on a closed Conn = %v, want net.ErrClosed", err)
			}
		})
	}
}
