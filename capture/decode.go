// Package capture records and describes the packets a peer node forwards: a
// one-line-per-packet decoder shared by the live packet log and the offline
// `peer decode` command, a rate-limited packet logger, and a pcapng writer
// that never slows the tunnel.
//
// The package knows nothing about cryptography or configuration: it is handed
// raw IP packets, UDP datagrams, peer names and already formatted key log
// lines.
package capture

import (
	"encoding/binary"
	"net/netip"
	"strconv"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// IP protocol numbers the decoder names.
const (
	protoICMP   = 1
	protoTCP    = 6
	protoUDP    = 17
	protoICMPv6 = 58
)

// Flow identifies one direction of a conversation: the transport protocol
// and both endpoints. Ports are zero for protocols without ports and for
// fragments that do not carry the transport header. Flow is comparable and
// can be used as a map key.
type Flow struct {
	Proto    uint8 // IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, ...)
	Src, Dst netip.AddrPort
}

// String formats the flow as "TCP 10.0.0.1:40000 > 10.0.0.2:80"; endpoints
// without a port are printed as bare addresses.
func (f Flow) String() string {
	b := appendProtoName(nil, f.Proto)
	b = append(b, ' ')
	b = appendEndpoint(b, f.Src)
	b = append(b, " > "...)
	b = appendEndpoint(b, f.Dst)
	return string(b)
}

func appendEndpoint(b []byte, ap netip.AddrPort) []byte {
	if ap.Port() == 0 {
		return ap.Addr().AppendTo(b)
	}
	return ap.AppendTo(b)
}

// transport layer kinds found by decode.
const (
	l4None = iota
	l4TCP
	l4UDP
	l4ICMP4
	l4ICMP6
	l4Bad   // transport header present but malformed; see Decoder.l4bad
	l4Other // a protocol the decoder does not dissect, or a non-first fragment
)

// problem describes why something did not decode. When want > 0 it renders
// as "what (have < want bytes)".
type problem struct {
	what       string
	have, want int
}

func (p problem) append(b []byte) []byte {
	b = append(b, p.what...)
	if p.want > 0 {
		b = append(b, " ("...)
		b = strconv.AppendInt(b, int64(p.have), 10)
		b = append(b, " < "...)
		b = strconv.AppendInt(b, int64(p.want), 10)
		b = append(b, " bytes)"...)
	}
	return b
}

// Decoder turns raw IP packets into one-line summaries and flow keys. It
// reuses its gopacket layers and parsers between calls, so decoding the
// common packets (TCP, UDP, ICMP, ICMPv6 over IPv4 or IPv6) does not
// allocate. A Decoder is not safe for concurrent use: use one per goroutine.
type Decoder struct {
	p4, p6  *gopacket.DecodingLayerParser
	decoded []gopacket.LayerType

	ip4   layers.IPv4
	ip6   layers.IPv6
	frag6 layers.IPv6Fragment
	tcp   layers.TCP
	udp   layers.UDP
	icmp4 layers.ICMPv4
	icmp6 layers.ICMPv6

	// Result of the last decode.
	bad      problem // IP level failure: the packet is malformed
	version  int
	src, dst netip.Addr
	proto    uint8
	ipLen    int // length the IP header claims
	capLen   int // bytes actually present
	hbh      bool
	frag     bool
	fragID   uint32
	fragOff  int
	fragMore bool
	l4       int
	l4bad    problem
	l4data   []byte // transport payload (UDP, ICMP body) or nil
	sport    uint16
	dport    uint16
}

// NewDecoder returns a Decoder ready for use.
func NewDecoder() *Decoder {
	d := &Decoder{decoded: make([]gopacket.LayerType, 0, 8)}
	d.p4 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv4,
		&d.ip4, &d.tcp, &d.udp, &d.icmp4, &d.icmp6)
	d.p6 = gopacket.NewDecodingLayerParser(layers.LayerTypeIPv6,
		&d.ip6, &d.frag6, &d.tcp, &d.udp, &d.icmp4, &d.icmp6)
	for _, p := range []*gopacket.DecodingLayerParser{d.p4, d.p6} {
		p.IgnoreUnsupported = true
	}
	return d
}

func (d *Decoder) flow() Flow {
	return Flow{
		Proto: d.proto,
		Src:   netip.AddrPortFrom(d.src, d.sport),
		Dst:   netip.AddrPortFrom(d.dst, d.dport),
	}
}

// decode parses pkt into the Decoder's result fields.
func (d *Decoder) decode(pkt []byte) {
	d.bad = problem{}
	d.version, d.proto, d.ipLen, d.capLen = 0, 0, 0, len(pkt)
	d.src, d.dst = netip.Addr{}, netip.Addr{}
	d.hbh, d.frag, d.fragID, d.fragOff, d.fragMore = false, false, 0, 0, false
	d.l4, d.l4bad, d.l4data, d.sport, d.dport = l4None, problem{}, nil, 0, 0

	if len(pkt) == 0 {
		d.bad = problem{what: "empty packet"}
		return
	}
	switch d.version = int(pkt[0] >> 4); d.version {
	case 4:
		d.decode4(pkt)
	case 6:
		d.decode6(pkt)
	default:
		d.bad = problem{what: "not IPv4 or IPv6 (version " + strconv.Itoa(d.version) + ")"}
	}
}

func (d *Decoder) decode4(pkt []byte) {
	if len(pkt) < 20 {
		d.bad = problem{"IPv4 header truncated", len(pkt), 20}
		return
	}
	hl := int(pkt[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:4]))
	switch {
	case hl < 20:
		d.bad = problem{"IPv4 header length too small", hl, 20}
		return
	case len(pkt) < hl:
		d.bad = problem{"IPv4 header truncated", len(pkt), hl}
		return
	case total < hl:
		d.bad = problem{"IPv4 total length shorter than header", total, hl}
		return
	}
	d.ipLen = total
	d.src = netip.AddrFrom4([4]byte(pkt[12:16]))
	d.dst = netip.AddrFrom4([4]byte(pkt[16:20]))
	d.proto = pkt[9]
	ff := binary.BigEndian.Uint16(pkt[6:8])
	d.fragOff = int(ff&0x1fff) * 8
	d.fragMore = ff&0x2000 != 0
	d.frag = d.fragMore || d.fragOff != 0
	d.fragID = uint32(binary.BigEndian.Uint16(pkt[4:6]))

	if isIPinIP(d.proto) {
		d.l4 = l4Other
		return
	}
	_ = d.p4.DecodeLayers(pkt, &d.decoded) // failures are diagnosed below
	if len(d.decoded) == 0 || d.decoded[0] != layers.LayerTypeIPv4 {
		// Only the IPv4 options can fail here; the header itself was checked.
		d.bad = problem{what: "IPv4 options invalid"}
		return
	}
	payload := d.ip4.Payload
	if d.frag {
		if d.fragOff != 0 {
			d.l4 = l4Other
			return
		}
		// First fragment: the transport header is here, decode it directly.
		d.decodeTransport(d.proto, payload)
		return
	}
	d.afterParse(d.proto, payload)
}

func (d *Decoder) decode6(pkt []byte) {
	if len(pkt) < 40 {
		d.bad = problem{"IPv6 header truncated", len(pkt), 40}
		return
	}
	d.ipLen = 40 + int(binary.BigEndian.Uint16(pkt[4:6]))
	d.src = netip.AddrFrom16([16]byte(pkt[8:24]))
	d.dst = netip.AddrFrom16([16]byte(pkt[24:40]))
	d.proto = pkt[6]
	if d.ipLen == 40 && d.proto != 0 {
		// A zero payload length is only valid for jumbograms (hop-by-hop).
		d.l4 = l4Other
		if d.proto == protoTCP || d.proto == protoUDP || d.proto == protoICMPv6 || d.proto == protoICMP {
			d.l4 = l4Bad
			d.l4bad = problem{"header missing (payload length 0)", 0, 0}
		}
		return
	}
	if isIPinIP(d.proto) {
		d.l4 = l4Other
		return
	}
	_ = d.p6.DecodeLayers(pkt, &d.decoded) // failures are diagnosed below
	if len(d.decoded) == 0 || d.decoded[0] != layers.LayerTypeIPv6 {
		d.bad = problem{what: "IPv6 extension header invalid"}
		if d.proto == 0 {
			d.bad = problem{what: "IPv6 hop-by-hop header invalid"}
		}
		return
	}
	if len(d.decoded) > 1 && (d.decoded[1] == layers.LayerTypeIPv4 || d.decoded[1] == layers.LayerTypeIPv6) {
		// Hop-by-hop header followed by IP in IP: the parser reused d.ip6.
		d.hbh, d.l4 = true, l4Other
		d.proto = 4
		if d.decoded[1] == layers.LayerTypeIPv6 {
			d.proto = 41
		}
		return
	}
	proto := uint8(d.ip6.NextHeader)
	payload := d.ip6.Payload
	if d.ip6.HopByHop != nil {
		d.hbh = true
		proto = uint8(d.ip6.HopByHop.NextHeader)
	}
	d.proto = proto
	if proto == uint8(layers.IPProtocolIPv6Fragment) {
		if len(d.decoded) < 2 || d.decoded[1] != layers.LayerTypeIPv6Fragment {
			d.l4 = l4Bad
			d.l4bad = problem{"fragment header truncated", len(payload), 8}
			return
		}
		d.frag = true
		d.fragID = d.frag6.Identification
		d.fragOff = int(d.frag6.FragmentOffset) * 8
		d.fragMore = d.frag6.MoreFragments
		d.proto = uint8(d.frag6.NextHeader)
		if d.fragOff != 0 {
			d.l4 = l4Other
			return
		}
		d.decodeTransport(d.proto, d.frag6.Payload)
		return
	}
	d.afterParse(proto, payload)
}

// isIPinIP reports whether an IP protocol number is IPv4 or IPv6 itself,
// which the parsers must not decode into the outer header's layers.
func isIPinIP(p uint8) bool { return p == 4 || p == 41 }

// afterParse records the transport layer the parser found. When the parser
// stopped earlier (a header it could not decode, or no bytes left), the
// transport is decoded directly to learn why.
func (d *Decoder) afterParse(proto uint8, payload []byte) {
	for _, t := range d.decoded[1:] {
		if t == layers.LayerTypeIPv4 || t == layers.LayerTypeIPv6 {
			// IP in IP: the parser reused our network layers; say no more.
			d.l4 = l4Other
			return
		}
	}
	switch d.decoded[len(d.decoded)-1] {
	case layers.LayerTypeTCP:
		d.setTCP()
	case layers.LayerTypeUDP:
		d.setUDP()
	case layers.LayerTypeICMPv4:
		d.l4, d.l4data = l4ICMP4, d.icmp4.Payload
	case layers.LayerTypeICMPv6:
		d.l4, d.l4data = l4ICMP6, d.icmp6.Payload
	default:
		d.decodeTransport(proto, payload)
	}
}

// decodeTransport decodes the transport header directly (first fragments,
// and failures where the reason is wanted).
func (d *Decoder) decodeTransport(proto uint8, b []byte) {
	switch proto {
	case protoTCP:
		if len(b) < 20 {
			d.l4, d.l4bad = l4Bad, problem{"header truncated", len(b), 20}
			return
		}
		if off := int(b[12]>>4) * 4; off < 20 {
			d.l4, d.l4bad = l4Bad, problem{"data offset too small", off, 20}
			return
		} else if off > len(b) {
			d.l4, d.l4bad = l4Bad, problem{"header truncated", len(b), off}
			return
		}
		if d.tcp.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			d.l4, d.l4bad = l4Bad, problem{what: "options invalid"}
			return
		}
		d.setTCP()
	case protoUDP:
		if len(b) < 8 {
			d.l4, d.l4bad = l4Bad, problem{"header truncated", len(b), 8}
			return
		}
		if d.udp.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			d.l4, d.l4bad = l4Bad, problem{what: "header invalid"}
			return
		}
		d.setUDP()
	case protoICMP:
		if len(b) < 8 {
			d.l4, d.l4bad = l4Bad, problem{"header truncated", len(b), 8}
			return
		}
		if d.icmp4.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			d.l4, d.l4bad = l4Bad, problem{what: "header invalid"}
			return
		}
		d.l4, d.l4data = l4ICMP4, d.icmp4.Payload
	case protoICMPv6:
		if len(b) < 4 {
			d.l4, d.l4bad = l4Bad, problem{"header truncated", len(b), 4}
			return
		}
		if d.icmp6.DecodeFromBytes(b, gopacket.NilDecodeFeedback) != nil {
			d.l4, d.l4bad = l4Bad, problem{what: "header invalid"}
			return
		}
		d.l4, d.l4data = l4ICMP6, d.icmp6.Payload
	default:
		d.l4 = l4Other
	}
}

func (d *Decoder) setTCP() {
	d.l4 = l4TCP
	d.sport, d.dport = uint16(d.tcp.SrcPort), uint16(d.tcp.DstPort)
}

func (d *Decoder) setUDP() {
	d.l4 = l4UDP
	d.sport, d.dport = uint16(d.udp.SrcPort), uint16(d.udp.DstPort)
	d.l4data = d.udp.Payload
}

// Summarize appends a one-line summary of a raw IP packet (IPv4 or IPv6, no
// link header) to dst and returns the extended buffer, for example
//
//	IPv4 10.10.0.1 > 10.10.0.2 ICMP echo-request id=7 seq=1 len=84
//	IPv6 fd10::1.40000 > fd10::2.5201 TCP [S] seq=1234 win=64800 len=80
//	IPv4 10.10.0.1.53124 > 10.10.0.2.53 UDP DNS query id=0x2cf5 A? www.example.test. len=62
//	IPv4 10.10.0.1 > 10.10.0.2 frag id=0xc830 off=1480 MF ICMP len=1500
//	malformed: IPv4 header truncated (12 < 20 bytes)
//
// len is the length the IP header claims; a packet with fewer bytes present
// is marked "[truncated: have of len bytes]". Bytes taken from the packet
// (DNS names) are escaped, so the line never contains control characters.
func (d *Decoder) Summarize(dst []byte, pkt []byte) []byte {
	d.decode(pkt)
	if d.bad.what != "" {
		dst = append(dst, "malformed: "...)
		return d.bad.append(dst)
	}
	if d.version == 4 {
		dst = append(dst, "IPv4 "...)
	} else {
		dst = append(dst, "IPv6 "...)
	}
	dst = appendAddrPort(dst, d.src, d.sport, d.l4 == l4TCP || d.l4 == l4UDP)
	dst = append(dst, " > "...)
	dst = appendAddrPort(dst, d.dst, d.dport, d.l4 == l4TCP || d.l4 == l4UDP)
	if d.hbh {
		dst = append(dst, " hop-by-hop"...)
	}
	if d.frag {
		dst = append(dst, " frag id=0x"...)
		dst = strconv.AppendUint(dst, uint64(d.fragID), 16)
		dst = append(dst, " off="...)
		dst = strconv.AppendInt(dst, int64(d.fragOff), 10)
		if d.fragMore {
			dst = append(dst, " MF"...)
		}
	}
	dst = append(dst, ' ')
	switch d.l4 {
	case l4TCP:
		dst = d.appendTCP(dst)
	case l4UDP:
		dst = d.appendUDP(dst)
	case l4ICMP4:
		dst = d.appendICMP4(dst)
	case l4ICMP6:
		dst = d.appendICMP6(dst)
	case l4Bad:
		dst = appendProtoName(dst, d.proto)
		dst = append(dst, " malformed: "...)
		dst = d.l4bad.append(dst)
	default:
		dst = appendProtoName(dst, d.proto)
	}
	dst = append(dst, " len="...)
	dst = strconv.AppendInt(dst, int64(d.ipLen), 10)
	if d.capLen < d.ipLen {
		dst = append(dst, " [truncated: "...)
		dst = strconv.AppendInt(dst, int64(d.capLen), 10)
		dst = append(dst, " of "...)
		dst = strconv.AppendInt(dst, int64(d.ipLen), 10)
		dst = append(dst, " bytes]"...)
	}
	return dst
}

func appendAddrPort(b []byte, a netip.Addr, port uint16, withPort bool) []byte {
	b = a.AppendTo(b)
	if withPort {
		b = append(b, '.')
		b = strconv.AppendUint(b, uint64(port), 10)
	}
	return b
}

func appendProtoName(b []byte, p uint8) []byte {
	switch p {
	case protoICMP:
		return append(b, "ICMP"...)
	case 2:
		return append(b, "IGMP"...)
	case protoTCP:
		return append(b, "TCP"...)
	case protoUDP:
		return append(b, "UDP"...)
	case 41:
		return append(b, "IPv6-in-IP"...)
	case 47:
		return append(b, "GRE"...)
	case 50:
		return append(b, "ESP"...)
	case 51:
		return append(b, "AH"...)
	case protoICMPv6:
		return append(b, "ICMPv6"...)
	case 59:
		return append(b, "no-next-header"...)
	case 89:
		return append(b, "OSPF"...)
	case 132:
		return append(b, "SCTP"...)
	}
	b = append(b, "proto="...)
	return strconv.AppendUint(b, uint64(p), 10)
}

// appendTCP renders "TCP [S.] seq=1 ack=2 win=3 data=4" with tcpdump's flag letters.
func (d *Decoder) appendTCP(b []byte) []byte {
	t := &d.tcp
	b = append(b, "TCP ["...)
	n := len(b)
	for _, f := range [...]struct {
		on bool
		c  byte
	}{{t.FIN, 'F'}, {t.SYN, 'S'}, {t.RST, 'R'}, {t.PSH, 'P'}, {t.ACK, '.'}, {t.URG, 'U'}, {t.ECE, 'E'}, {t.CWR, 'W'}} {
		if f.on {
			b = append(b, f.c)
		}
	}
	if len(b) == n {
		b = append(b, "none"...)
	}
	b = append(b, "] seq="...)
	b = strconv.AppendUint(b, uint64(t.Seq), 10)
	if t.ACK {
		b = append(b, " ack="...)
		b = strconv.AppendUint(b, uint64(t.Ack), 10)
	}
	b = append(b, " win="...)
	b = strconv.AppendUint(b, uint64(t.Window), 10)
	if len(t.Payload) > 0 {
		b = append(b, " data="...)
		b = strconv.AppendInt(b, int64(len(t.Payload)), 10)
	}
	return b
}

func (d *Decoder) appendUDP(b []byte) []byte {
	b = append(b, "UDP"...)
	p := d.l4data
	switch {
	case d.sport == 53 || d.dport == 53:
		b = append(b, " DNS "...)
		return appendDNS(b, p)
	case d.sport == 5353 || d.dport == 5353:
		b = append(b, " mDNS "...)
		return appendDNS(b, p)
	}
	if nb, ok := appendWireGuard(b, p); ok {
		return nb
	}
	b = append(b, " data="...)
	return strconv.AppendInt(b, int64(len(p)), 10)
}

var icmp4Types = map[uint8]string{
	0: "echo-reply", 3: "dest-unreachable", 4: "source-quench", 5: "redirect",
	8: "echo-request", 9: "router-advertisement", 10: "router-solicitation",
	11: "time-exceeded", 12: "parameter-problem", 13: "timestamp-request",
	14: "timestamp-reply",
}

var icmp4Unreach = map[uint8]string{
	0: "net-unreachable", 1: "host-unreachable", 2: "protocol-unreachable",
	3: "port-unreachable", 4: "frag-needed", 5: "source-route-failed",
	6: "net-unknown", 7: "host-unknown", 9: "net-prohibited", 10: "host-prohibited",
	13: "admin-prohibited",
}

func (d *Decoder) appendICMP4(b []byte) []byte {
	typ, code := d.icmp4.TypeCode.Type(), d.icmp4.TypeCode.Code()
	b = append(b, "ICMP "...)
	name, ok := icmp4Types[typ]
	if !ok {
		return appendTypeCode(b, typ, code)
	}
	b = append(b, name...)
	switch typ {
	case 0, 8, 13, 14:
		b = append(b, " id="...)
		b = strconv.AppendUint(b, uint64(d.icmp4.Id), 10)
		b = append(b, " seq="...)
		b = strconv.AppendUint(b, uint64(d.icmp4.Seq), 10)
	case 3:
		if c, ok := icmp4Unreach[code]; ok {
			b = append(b, ' ')
			b = append(b, c...)
		} else {
			b = appendCode(b, code)
		}
		if code == 4 {
			b = append(b, " mtu="...)
			b = strconv.AppendUint(b, uint64(d.icmp4.Seq), 10)
		}
		b = appendQuoted(b, d.l4data)
	case 11:
		if code == 0 {
			b = append(b, " ttl"...)
		} else {
			b = append(b, " reassembly"...)
		}
		b = appendQuoted(b, d.l4data)
	case 4, 5, 12:
		b = appendCode(b, code)
		b = appendQuoted(b, d.l4data)
	}
	return b
}

var icmp6Types = map[uint8]string{
	1: "dest-unreachable", 2: "packet-too-big", 3: "time-exceeded",
	4: "parameter-problem", 128: "echo-request", 129: "echo-reply",
	130: "mld-query", 131: "mld-report", 132: "mld-done",
	133: "router-solicitation", 134: "router-advertisement",
	135: "neighbor-solicitation", 136: "neighbor-advertisement", 137: "redirect",
	143: "mld2-report",
}

var icmp6Unreach = map[uint8]string{
	0: "no-route", 1: "admin-prohibited", 2: "beyond-scope",
	3: "addr-unreachable", 4: "port-unreachable", 5: "policy-failed",
	6: "reject-route",
}

func (d *Decoder) appendICMP6(b []byte) []byte {
	typ, code := d.icmp6.TypeCode.Type(), d.icmp6.TypeCode.Code()
	p := d.l4data // bytes after type, code, checksum
	b = append(b, "ICMPv6 "...)
	name, ok := icmp6Types[typ]
	if !ok {
		return appendTypeCode(b, typ, code)
	}
	b = append(b, name...)
	be := binary.BigEndian
	switch typ {
	case 128, 129:
		if len(p) >= 4 {
			b = append(b, " id="...)
			b = strconv.AppendUint(b, uint64(be.Uint16(p[0:2])), 10)
			b = append(b, " seq="...)
			b = strconv.AppendUint(b, uint64(be.Uint16(p[2:4])), 10)
		}
	case 135:
		if len(p) >= 20 {
			b = append(b, " who-has "...)
			b = netip.AddrFrom16([16]byte(p[4:20])).AppendTo(b)
		}
	case 136:
		if len(p) >= 20 {
			b = append(b, " tgt "...)
			b = netip.AddrFrom16([16]byte(p[4:20])).AppendTo(b)
			if f := p[0]; f&0xe0 != 0 {
				b = append(b, " ["...)
				if f&0x80 != 0 {
					b = append(b, 'R')
				}
				if f&0x40 != 0 {
					b = append(b, 'S')
				}
				if f&0x20 != 0 {
					b = append(b, 'O')
				}
				b = append(b, ']')
			}
		}
	case 1:
		if c, ok := icmp6Unreach[code]; ok {
			b = append(b, ' ')
			b = append(b, c...)
		} else {
			b = appendCode(b, code)
		}
		b = appendQuoted(b, after4(p))
	case 2:
		if len(p) >= 4 {
			b = append(b, " mtu="...)
			b = strconv.AppendUint(b, uint64(be.Uint32(p[0:4])), 10)
		}
		b = appendQuoted(b, after4(p))
	case 3, 4:
		b = appendCode(b, code)
		b = appendQuoted(b, after4(p))
	}
	return b
}

// after4 skips the 4 unused (or MTU, or pointer) bytes of an ICMPv6 error.
func after4(p []byte) []byte {
	if len(p) < 4 {
		return nil
	}
	return p[4:]
}

func appendTypeCode(b []byte, typ, code uint8) []byte {
	b = append(b, "type="...)
	b = strconv.AppendUint(b, uint64(typ), 10)
	b = append(b, " code="...)
	return strconv.AppendUint(b, uint64(code), 10)
}

func appendCode(b []byte, code uint8) []byte {
	b = append(b, " code="...)
	return strconv.AppendUint(b, uint64(code), 10)
}

// appendQuoted describes the packet quoted in an ICMP error (q starts with
// the offending IP header). It renders " for UDP 10.0.0.1.5353 > 10.0.0.2.54"
// when the quote is readable and nothing otherwise.
func appendQuoted(b, q []byte) []byte {
	var src, dst netip.Addr
	var proto uint8
	var l4 []byte
	switch {
	case len(q) >= 20 && q[0]>>4 == 4:
		hl := int(q[0]&0x0f) * 4
		if hl < 20 || hl > len(q) {
			return b
		}
		src = netip.AddrFrom4([4]byte(q[12:16]))
		dst = netip.AddrFrom4([4]byte(q[16:20]))
		proto = q[9]
		if binary.BigEndian.Uint16(q[6:8])&0x1fff == 0 {
			l4 = q[hl:]
		}
	case len(q) >= 40 && q[0]>>4 == 6:
		src = netip.AddrFrom16([16]byte(q[8:24]))
		dst = netip.AddrFrom16([16]byte(q[24:40]))
		proto = q[6]
		l4 = q[40:]
	default:
		return b
	}
	ports := (proto == protoTCP || proto == protoUDP) && len(l4) >= 4
	var sport, dport uint16
	if ports {
		sport = binary.BigEndian.Uint16(l4[0:2])
		dport = binary.BigEndian.Uint16(l4[2:4])
	}
	b = append(b, " for "...)
	b = appendProtoName(b, proto)
	b = append(b, ' ')
	b = appendAddrPort(b, src, sport, ports)
	b = append(b, " > "...)
	return appendAddrPort(b, dst, dport, ports)
}

var dnsTypes = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 15: "MX", 16: "TXT",
	28: "AAAA", 33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG",
	48: "DNSKEY", 64: "SVCB", 65: "HTTPS", 255: "ANY",
}

var dnsRcodes = [...]string{"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED"}

// appendDNS renders the DNS header and first question:
// "query id=0x2cf5 A? www.example.test." or
// "response id=0x2cf5 NOERROR an=1 A? www.example.test.".
//
// It reads the wire format itself rather than use layers.DNS, although
// that is a DecodingLayer: layers.DNS decodes every record to reach the
// end, and the OPT record that resolvers add to nearly every query costs
// it an allocation per packet (BenchmarkSummarizeDNS: 1 allocation for the
// EDNS query, 215 ns/op against 180 here), on the logging path where
// Summarize allocates nothing.
func appendDNS(b, p []byte) []byte {
	if len(p) < 12 {
		b = append(b, "malformed: "...)
		return problem{"header truncated", len(p), 12}.append(b)
	}
	be := binary.BigEndian
	flags := be.Uint16(p[2:4])
	if flags&0x8000 == 0 {
		b = append(b, "query"...)
	} else {
		b = append(b, "response"...)
	}
	b = append(b, " id=0x"...)
	b = strconv.AppendUint(b, uint64(be.Uint16(p[0:2])), 16)
	if op := (flags >> 11) & 0xf; op != 0 {
		b = append(b, " opcode="...)
		b = strconv.AppendUint(b, uint64(op), 10)
	}
	if flags&0x8000 != 0 {
		rc := int(flags & 0xf)
		b = append(b, ' ')
		if rc < len(dnsRcodes) {
			b = append(b, dnsRcodes[rc]...)
		} else {
			b = append(b, "rcode="...)
			b = strconv.AppendInt(b, int64(rc), 10)
		}
		b = append(b, " an="...)
		b = strconv.AppendUint(b, uint64(be.Uint16(p[6:8])), 10)
	}
	if be.Uint16(p[4:6]) == 0 {
		return b
	}
	// First question: name, type, class.
	b = append(b, ' ')
	mark := len(b)
	nb, end, ok := appendDNSName(b, p, 12)
	if !ok || end+4 > len(p) {
		b = append(b[:mark], "question malformed"...)
		return b
	}
	b = nb
	// Put the type before the name: "A? name".
	typ := be.Uint16(p[end : end+2])
	tn, ok := dnsTypes[typ]
	var tbuf [16]byte
	t := tbuf[:0]
	if ok {
		t = append(t, tn...)
	} else {
		t = append(t, "TYPE"...)
		t = strconv.AppendUint(t, uint64(typ), 10)
	}
	t = append(t, '?', ' ')
	return insertAt(b, mark, t)
}

// insertAt inserts ins at b[at:] without allocating when b has capacity.
func insertAt(b []byte, at int, ins []byte) []byte {
	n := len(ins)
	b = append(b, ins...) // grow
	copy(b[at+n:], b[at:len(b)-n])
	copy(b[at:], ins)
	return b
}

// appendDNSName appends the (possibly compressed) name at p[off:] in dotted
// form, escaping bytes outside printable ASCII as \DDD. It returns the offset
// just after the name in the question and whether the name was valid.
func appendDNSName(b, p []byte, off int) ([]byte, int, bool) {
	end := -1
	total := 0
	for hops := 0; hops < 16; {
		if off >= len(p) {
			return b, 0, false
		}
		l := int(p[off])
		switch {
		case l == 0:
			if end < 0 {
				end = off + 1
			}
			if total == 0 {
				b = append(b, '.')
			}
			return b, end, true
		case l&0xc0 == 0xc0:
			if off+1 >= len(p) {
				return b, 0, false
			}
			if end < 0 {
				end = off + 2
			}
			off = int(binary.BigEndian.Uint16(p[off:off+2]) & 0x3fff)
			hops++
			continue
		case l&0xc0 != 0:
			return b, 0, false
		}
		if off+1+l > len(p) {
			return b, 0, false
		}
		total += l + 1
		if total > 255 {
			return b, 0, false
		}
		for _, c := range p[off+1 : off+1+l] {
			if c > ' ' && c < 0x7f && c != '\\' {
				b = append(b, c)
				continue
			}
			b = append(b, '\\')
			if c < 100 {
				b = append(b, '0')
			}
			if c < 10 {
				b = append(b, '0')
			}
			b = strconv.AppendUint(b, uint64(c), 10)
		}
		b = append(b, '.')
		off += 1 + l
	}
	return b, 0, false
}
