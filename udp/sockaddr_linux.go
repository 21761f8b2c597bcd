package udp

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockaddr is large enough for both sockaddr_in and sockaddr_in6.
type sockaddr = unix.RawSockaddrInet6

// portBytes views the network-order port field of a sockaddr.
func portBytes(sa *sockaddr) []byte {
	return (*[2]byte)(unsafe.Pointer(&sa.Port))[:]
}

// decodeSockaddr returns the address in sa (namelen bytes of it are valid),
// with IPv4 unmapped. It reports false for anything else than a complete
// sockaddr_in or sockaddr_in6.
func decodeSockaddr(sa *sockaddr, namelen uint32, zones *zoneCache) (netip.AddrPort, bool) {
	port := binary.BigEndian.Uint16(portBytes(sa))
	switch sa.Family {
	case unix.AF_INET:
		if namelen < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port), true
	case unix.AF_INET6:
		if namelen < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		addr := netip.AddrFrom16(sa.Addr)
		if addr.Is4In6() {
			return netip.AddrPortFrom(addr.Unmap(), port), true
		}
		if sa.Scope_id != 0 && needsZone(addr) {
			addr = addr.WithZone(zones.name(sa.Scope_id))
		}
		return netip.AddrPortFrom(addr, port), true
	}
	return netip.AddrPort{}, false
}

// needsZone reports whether addr is scoped to a link.
func needsZone(addr netip.Addr) bool {
	return addr.IsLinkLocalUnicast() || addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast()
}

// encodeSockaddr writes ap into sa for a socket of the given family
// (AF_INET6 sockets get IPv4 as v4-mapped) and returns the length to pass
// to the kernel.
func encodeSockaddr(sa *sockaddr, ap netip.AddrPort, v6 bool, zones *zoneCache) (uint32, error) {
	addr := ap.Addr()
	if !addr.IsValid() {
		return 0, fmt.Errorf("invalid address")
	}
	*sa = sockaddr{}
	binary.BigEndian.PutUint16(portBytes(sa), ap.Port())
	if !v6 {
		addr = addr.Unmap()
		if !addr.Is4() {
			return 0, errIPv6OnIPv4
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		sa4.Addr = addr.As4()
		return unix.SizeofSockaddrInet4, nil
	}
	sa.Family = unix.AF_INET6
	sa.Addr = addr.As16() // IPv4 becomes ::ffff:a.b.c.d
	if z := addr.Zone(); z != "" {
		id, err := zones.index(z)
		if err != nil {
			return 0, err
		}
		sa.Scope_id = id
	}
	return unix.SizeofSockaddrInet6, nil
}

// zoneCache maps IPv6 scope IDs to zone names and back, remembering results so
// that the steady state does not allocate.
type zoneCache struct {
	mu      sync.Mutex
	names   map[uint32]string
	indexes map[string]uint32
}

// name returns the zone for a scope ID: the interface name, or the number.
func (z *zoneCache) name(id uint32) string {
	z.mu.Lock()
	defer z.mu.Unlock()
	if s, ok := z.names[id]; ok {
		return s
	}
	s := strconv.FormatUint(uint64(id), 10)
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		s = ifi.Name
	}
	if z.names == nil {
		z.names = make(map[uint32]string)
	}
	z.names[id] = s
	return s
}

// index returns the scope ID for a zone given as a number or interface name.
func (z *zoneCache) index(zone string) (uint32, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if id, ok := z.indexes[zone]; ok {
		return id, nil
	}
	var id uint32
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		id = uint32(n)
	} else {
		ifi, err := net.InterfaceByName(zone)
		if err != nil {
			return 0, fmt.Errorf("zone %q: %w", zone, err)
		}
		id = uint32(ifi.Index)
	}
	if z.indexes == nil {
		z.indexes = make(map[string]uint32)
	}
	z.indexes[zone] = id
	return id, nil
}
