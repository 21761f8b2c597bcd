// Package tuntest is the test support of TUN devices, kept out of the
// production packages as wireguard-go keeps tun/tuntest: Memory, an
// in-memory tundev.Device, and the builders of the IP packets that tests
// inject into a device and expect out of one, one builder for every
// package's tests.
package tuntest

import (
	"encoding/binary"
	"net/netip"
)

// UDP ports of the packets built here.
const (
	SrcPort = 40000
	DstPort = 7
)

// IPv4UDP builds an IPv4/UDP packet from src to dst (addresses in text
// form; they must parse) carrying payload, with a valid header checksum and
// TTL 64. The UDP checksum is left zero, which IPv4 allows.
func IPv4UDP(src, dst string, payload []byte) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	p := make([]byte, 28+len(payload))
	p[0] = 0x45 // version 4, 20-byte header
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64 // TTL
	p[9] = 17 // UDP
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], SrcPort)
	binary.BigEndian.PutUint16(p[22:], DstPort)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// IPv6UDP builds an IPv6/UDP packet from src to dst carrying payload, hop
// limit 64. The UDP checksum is left zero: nothing here verifies it.
func IPv6UDP(src, dst string, payload []byte) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	p := make([]byte, 48+len(payload))
	p[0] = 0x60 // version 6
	binary.BigEndian.PutUint16(p[4:], uint16(8+len(payload)))
	p[6] = 17 // next header: UDP
	p[7] = 64 // hop limit
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	binary.BigEndian.PutUint16(p[40:], SrcPort)
	binary.BigEndian.PutUint16(p[42:], DstPort)
	binary.BigEndian.PutUint16(p[44:], uint16(8+len(payload)))
	copy(p[48:], payload)
	return p
}
