package tunnel

import (
	"encoding/binary"
	"net/netip"

	"github.com/peer-vpn/peer/keys"
)

// Control messages are how peer nodes speak to each other about paths:
// registration with a relay, forwarding through it, introductions and
// probes. Each travels as the plaintext of a transport message of a
// session the two already have, so it is authenticated and encrypted like
// data; its first byte is zero, which no IPv4 or IPv6 packet has, so a
// node tells it from an inner packet by that byte alone. The layout is
//
//	byte 0     0 (ctrlMarker)
//	byte 1     type (ctrlHello...)
//	bytes 2-3  payload length, big endian
//	bytes 4-   payload, then the transport padding
//
// docs/relay.md describes each type, who sends it and when.
const (
	ctrlMarker    = 0
	ctrlHeaderLen = 4
	keyLen        = 32
	// candidateLen is one candidate address: 16 bytes of address (IPv4
	// as IPv4-mapped IPv6) and a big-endian port.
	candidateLen = 18
	// maxCandidates bounds the addresses of one peer in a hello or an
	// introduction, and so the probes one introduction causes per round.
	maxCandidates = 8
)

// ctrlType is the type of a control message.
type ctrlType uint8

// Control message types.
const (
	ctrlHello        ctrlType = iota + 1 // member → relay: register, with local candidates
	ctrlRelay                            // member → relay: forward the datagram to the peer with this key
	ctrlForwarded                        // relay → member: a datagram from the peer with this key
	ctrlUnreachable                      // relay → member: the peer with this key is not registered here
	ctrlIntroRequest                     // member → relay: introduce me to the peer with this key
	ctrlIntro                            // relay → member: the peer with this key, at these candidates
	ctrlProbe                            // member → member, direct: does this path work?
	ctrlProbeAck                         // member → member, direct: it does
	numCtrlTypes
)

var ctrlTypeNames = [numCtrlTypes]string{"", "hello", "relay", "forwarded", "unreachable", "intro_request", "intro", "probe", "probe_ack"}

func (t ctrlType) String() string {
	if t < numCtrlTypes {
		return ctrlTypeNames[t]
	}
	return "unknown"
}

// isControl reports whether a decrypted plaintext is a control message
// rather than an IP packet.
func isControl(pkt []byte) bool { return len(pkt) > 0 && pkt[0] == ctrlMarker }

// isProbe reports whether a control message is a probe or a probe's
// answer, which prove one direction of a path only.
func isProbe(pkt []byte) bool {
	return len(pkt) > 1 && (ctrlType(pkt[1]) == ctrlProbe || ctrlType(pkt[1]) == ctrlProbeAck)
}

// parseControl splits a control message (padding included) into its type
// and payload.
func parseControl(pkt []byte) (ctrlType, []byte, bool) {
	if len(pkt) < ctrlHeaderLen || pkt[0] != ctrlMarker {
		return 0, nil, false
	}
	t := ctrlType(pkt[1])
	n := int(binary.BigEndian.Uint16(pkt[2:4]))
	if t == 0 || t >= numCtrlTypes || ctrlHeaderLen+n > len(pkt) {
		return 0, nil, false
	}
	return t, pkt[ctrlHeaderLen : ctrlHeaderLen+n], true
}

// putControlHeader writes the header of a control message of type t with
// a payload of n bytes to b, which must hold ctrlHeaderLen bytes.
func putControlHeader(b []byte, t ctrlType, n int) {
	b[0] = ctrlMarker
	b[1] = byte(t)
	binary.BigEndian.PutUint16(b[2:4], uint16(n))
}

// appendCandidates appends up to maxCandidates addresses.
func appendCandidates(b []byte, cands []netip.AddrPort) []byte {
	for i, c := range cands {
		if i == maxCandidates {
			break
		}
		a := c.Addr().As16()
		b = append(b, a[:]...)
		b = binary.BigEndian.AppendUint16(b, c.Port())
	}
	return b
}

// parseCandidates reads the candidates of a payload, which must be a
// whole number of them, at most maxCandidates.
func parseCandidates(b []byte) ([]netip.AddrPort, bool) {
	if len(b)%candidateLen != 0 || len(b)/candidateLen > maxCandidates {
		return nil, false
	}
	out := make([]netip.AddrPort, 0, len(b)/candidateLen)
	for ; len(b) > 0; b = b[candidateLen:] {
		a := netip.AddrFrom16([16]byte(b[:16])).Unmap()
		out = append(out, netip.AddrPortFrom(a, binary.BigEndian.Uint16(b[16:18])))
	}
	return out, true
}

// parseKey reads the public key that starts a payload.
func parseKey(b []byte) (keys.Public, []byte, bool) {
	if len(b) < keyLen {
		return keys.Public{}, nil, false
	}
	return keys.Public(b[:keyLen]), b[keyLen:], true
}
