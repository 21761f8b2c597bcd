package tunnel

import "encoding/binary"

// Where the data path reads IP headers (RFC 791, RFC 8200): offsets into
// the fixed headers, named as in wireguard-go's device/ip.go.
const (
	ipv4HeaderLen         = 20 // without options
	ipv4OffsetTotalLength = 2
	ipv4OffsetSrc         = 12
	ipv4OffsetDst         = ipv4OffsetSrc + ipv4AddrLen
	ipv4AddrLen           = 4

	ipv6HeaderLen           = 40
	ipv6OffsetPayloadLength = 4
	ipv6OffsetSrc           = 8
	ipv6OffsetDst           = ipv6OffsetSrc + ipv6AddrLen
	ipv6AddrLen             = 16
)

// ipVersion is the version field of an IP header; pkt must not be empty.
func ipVersion(pkt []byte) byte { return pkt[0] >> 4 }

// ipLength returns the total length an IPv4 or IPv6 header declares; it
// is never shorter than the fixed header.
func ipLength(pkt []byte) (int, bool) {
	if len(pkt) == 0 {
		return 0, false
	}
	switch ipVersion(pkt) {
	case 4:
		if len(pkt) < ipv4HeaderLen {
			return 0, false
		}
		n := int(binary.BigEndian.Uint16(pkt[ipv4OffsetTotalLength:]))
		return n, n >= ipv4HeaderLen
	case 6:
		if len(pkt) < ipv6HeaderLen {
			return 0, false
		}
		return ipv6HeaderLen + int(binary.BigEndian.Uint16(pkt[ipv6OffsetPayloadLength:])), true
	}
	return 0, false
}
