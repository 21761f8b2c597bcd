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

// UDP ports of the packets IPv4UDP and IPv6UDP build.
const (
	SrcPort = 40000
	DstPort = 7
)

// IP protocol numbers of the headers built here.
const (
	ProtoICMP = 1
	ProtoUDP  = 17
)

// IPv4UDP builds an IPv4/UDP packet from src to dst (addresses in text
// form; they must parse) and from SrcPort to DstPort, carrying payload. The
// UDP checksum is left zero, which IPv4 allows.
func IPv4UDP(src, dst string, payload []byte) []byte {
	return IPv4(ProtoUDP, netip.MustParseAddr(src), netip.MustParseAddr(dst), UDP(SrcPort, DstPort, payload))
}

// IPv6UDP builds an IPv6/UDP packet from src to dst and from SrcPort to
// DstPort, carrying payload. The UDP checksum is left zero: nothing here
// verifies it.
func IPv6UDP(src, dst string, payload []byte) []byte {
	return IPv6(ProtoUDP, netip.MustParseAddr(src), netip.MustParseAddr(dst), UDP(SrcPort, DstPort, payload))
}

// IPv4 returns a 20-byte IPv4 header from src to dst, protocol proto, TTL
// 64, identification 0, with its total length and a valid header checksum,
// followed by payload. src and dst must be IPv4 addresses.
func IPv4(proto byte, src, dst netip.Addr, payload []byte) []byte {
	p := make([]byte, 20+len(payload))
	p[0] = 0x45 // version 4, 20-byte header
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8] = 64 // TTL
	p[9] = proto
	s, d := src.As4(), dst.As4()
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint16(p[10:], ^Checksum(p[:20], 0))
	copy(p[20:], payload)
	return p
}

// IPv6 returns a 40-byte IPv6 header from src to dst, next header nh, hop
// limit 64, with the length of payload, followed by payload.
func IPv6(nh byte, src, dst netip.Addr, payload []byte) []byte {
	p := make([]byte, 40+len(payload))
	p[0] = 0x60 // version 6
	binary.BigEndian.PutUint16(p[4:], uint16(len(payload)))
	p[6] = nh
	p[7] = 64 // hop limit
	s, d := src.As16(), dst.As16()
	copy(p[8:], s[:])
	copy(p[24:], d[:])
	copy(p[40:], payload)
	return p
}

// UDP returns a UDP header from sport to dport with its length and a zero
// checksum, followed by payload; SetUDP4Checksum fills the checksum in.
func UDP(sport, dport uint16, payload []byte) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	return u
}

// SetUDP4Checksum fills in the UDP checksum of pkt, an IPv4 packet with a
// 20-byte header carrying UDP (as IPv4(ProtoUDP, ..., UDP(...)) builds), for
// tests whose packets meet a kernel that verifies it. It returns pkt.
func SetUDP4Checksum(pkt []byte) []byte {
	u := pkt[20:]
	binary.BigEndian.PutUint16(u[6:], 0)
	pseudo := make([]byte, 0, 12)
	pseudo = append(pseudo, pkt[12:20]...) // source and destination
	pseudo = append(pseudo, 0, ProtoUDP, byte(len(u)>>8), byte(len(u)))
	sum := ^Checksum(u, uint32(Checksum(pseudo, 0)))
	if sum == 0 {
		sum = 0xffff // zero means "no checksum"
	}
	binary.BigEndian.PutUint16(u[6:], sum)
	return pkt
}

// ICMPEcho returns an IPv4 ICMP echo request from src to dst with id, seq
// and data, its checksums valid.
func ICMPEcho(src, dst netip.Addr, id, seq uint16, data []byte) []byte {
	m := make([]byte, 8+len(data))
	m[0] = 8 // echo request
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	copy(m[8:], data)
	binary.BigEndian.PutUint16(m[2:], ^Checksum(m, 0))
	return IPv4(ProtoICMP, src, dst, m)
}

// Checksum is the Internet checksum of b, folded, not inverted, starting
// from sum: a header with a valid checksum sums to 0xffff.
func Checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
