package udp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

func init() {
	implementations = append(implementations, struct {
		name   string
		listen func(int) (Conn, error)
	}{"portable", listenStd})
}

// listenStd opens the portable Conn, which Linux does not otherwise use.
func listenStd(port int) (Conn, error) {
	pc, err := net.ListenUDP("udp", &net.UDPAddr{Port: port})
	if err != nil {
		return nil, err
	}
	return newStdConn(pc), nil
}

func TestListenIsDualStack(t *testing.T) {
	c, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mc := c.(*mmsgConn)
	if !haveIPv6Loopback() {
		t.Skip("no IPv6")
	}
	if !mc.v6 {
		t.Fatal("socket is AF_INET although IPv6 works")
	}
	var v6only int
	var serr error
	mc.rc.Control(func(fd uintptr) {
		v6only, serr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
	})
	if serr != nil || v6only != 0 {
		t.Fatalf("IPV6_V6ONLY = %d, %v", v6only, serr)
	}
}

func TestSockaddrRoundTrip(t *testing.T) {
	var zones zoneCache
	tests := []struct {
		in   string
		v6   bool
		want string // "" means an error is expected
	}{
		{"192.0.2.1:51820", true, "192.0.2.1:51820"},
		{"192.0.2.1:51820", false, "192.0.2.1:51820"},
		{"[::ffff:192.0.2.1]:7", false, "192.0.2.1:7"},
		{"[::ffff:192.0.2.1]:7", true, "192.0.2.1:7"},
		{"[2001:db8::1]:65535", true, "[2001:db8::1]:65535"},
		{"[2001:db8::1]:1", false, ""},
		{"[fe80::1%1]:5", true, "[fe80::1%lo]:5"},
		{"[fe80::1%no-such-interface]:5", true, ""},
	}
	for _, tt := range tests {
		var sa sockaddr
		n, err := encodeSockaddr(&sa, netip.MustParseAddrPort(tt.in), tt.v6, &zones)
		if tt.want == "" {
			if err == nil {
				t.Errorf("encode %s (v6 %v): no error", tt.in, tt.v6)
			}
			continue
		}
		if err != nil {
			t.Errorf("encode %s (v6 %v): %v", tt.in, tt.v6, err)
			continue
		}
		got, ok := decodeSockaddr(&sa, n, &zones)
		if !ok || got.String() != tt.want {
			t.Errorf("round trip %s (v6 %v) = %v, %v; want %s", tt.in, tt.v6, got, ok, tt.want)
		}
	}
	var sa sockaddr
	if _, err := encodeSockaddr(&sa, netip.AddrPort{}, true, &zones); err == nil {
		t.Error("encode of zero AddrPort: no error")
	}
}

// FuzzDecodeSockaddr feeds arbitrary bytes, as the kernel would fill them,
// to decodeSockaddr: it must not panic, and what it accepts must encode
// back to an address that decodes the same.
func FuzzDecodeSockaddr(f *testing.F) {
	v4 := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(v4, unix.AF_INET)
	copy(v4[2:], []byte{0xca, 0x6c, 192, 0, 2, 1})
	f.Add(v4, uint32(unix.SizeofSockaddrInet4))
	v6 := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(v6, unix.AF_INET6)
	v6[9] = 0x20
	v6[24] = 1
	f.Add(v6, uint32(unix.SizeofSockaddrInet6))
	f.Fuzz(func(t *testing.T, raw []byte, namelen uint32) {
		var sa sockaddr
		copy((*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(&sa))[:], raw)
		var zones zoneCache
		ap, ok := decodeSockaddr(&sa, namelen, &zones)
		if !ok {
			return
		}
		if ap.Addr().Is4In6() {
			t.Fatalf("decoded mapped address %v", ap)
		}
		var again sockaddr
		n, err := encodeSockaddr(&again, ap, true, &zones)
		if err != nil {
			if ap.Addr().Zone() != "" {
				return // an interface that does not exist here
			}
			t.Fatalf("re-encode %v: %v", ap, err)
		}
		back, ok := decodeSockaddr(&again, n, &zones)
		if !ok || back != ap {
			t.Fatalf("%v re-decoded as %v, %v", ap, back, ok)
		}
	})
}

func TestReadBatchReportsOnlyValidSlots(t *testing.T) {
	// Messages beyond what arrived keep their buffers untouched.
	a, b := listenT(t, Listen), listenT(t, Listen)
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), b.LocalPort())
	if _, err := a.WriteBatch([]Message{{Buf: []byte("one"), N: 3, Addr: dst}}); err != nil {
		t.Fatal(err)
	}
	msgs := newMsgs(4, 16)
	copy(msgs[1].Buf, "untouched")
	n, err := b.ReadBatch(msgs)
	if err != nil || n != 1 || string(msgs[0].Buf[:msgs[0].N]) != "one" {
		t.Fatalf("ReadBatch = %d, %v", n, err)
	}
	if !bytes.HasPrefix(msgs[1].Buf, []byte("untouched")) {
		t.Fatal("slot 1 modified")
	}
}
