package capture

import (
	"strings"
	"time"
)

// Direction says which way a packet crossed the tunnel.
type Direction uint8

const (
	// DirUnknown is used for packets whose direction is not known, such as
	// those read from foreign capture files; the label is printed as given.
	DirUnknown Direction = iota
	// ToPeer is a packet read from the TUN device and sent to a peer ("tun→beta").
	ToPeer
	// FromPeer is a packet received from a peer and written to the TUN device ("beta→tun").
	FromPeer
)

// String returns "to-peer", "from-peer" or "unknown".
func (d Direction) String() string {
	switch d {
	case ToPeer:
		return "to-peer"
	case FromPeer:
		return "from-peer"
	}
	return "unknown"
}

// arrow separates the two ends of a direction label.
const arrow = "→"

// TimeLayout is the time format that starts every packet line.
const TimeLayout = "15:04:05.000000"

// AppendLabel appends the direction label of a packet: "tun→beta" for ToPeer,
// "beta→tun" for FromPeer, and peer itself (or "-" when empty) for
// DirUnknown. Control characters in peer are replaced by '?'.
func AppendLabel(dst []byte, dir Direction, peer string) []byte {
	switch dir {
	case ToPeer:
		dst = append(dst, "tun"+arrow...)
		return appendClean(dst, peer)
	case FromPeer:
		dst = appendClean(dst, peer)
		return append(dst, arrow+"tun"...)
	}
	if peer == "" {
		return append(dst, '-')
	}
	return appendClean(dst, peer)
}

// parseLabel is the inverse of AppendLabel for the interface names the
// Writer gives its inner interfaces.
func parseLabel(name string) (Direction, string) {
	if p, ok := strings.CutPrefix(name, "tun"+arrow); ok && p != "" {
		return ToPeer, p
	}
	if p, ok := strings.CutSuffix(name, arrow+"tun"); ok && p != "" {
		return FromPeer, p
	}
	return DirUnknown, name
}

// appendClean appends s with ASCII control characters (and DEL) replaced by
// '?', so names taken from files cannot break a log line.
func appendClean(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < ' ' || c == 0x7f {
			c = '?'
		}
		dst = append(dst, c)
	}
	return dst
}

// FormatLine appends one packet log line, without a trailing newline:
//
//	15:04:05.000000 tun→beta IPv4 10.10.0.1 > 10.10.0.2 ICMP echo-request id=7 seq=1 len=84
//
// t is printed in its own location. summary is normally the output of
// Decoder.Summarize.
func FormatLine(dst []byte, t time.Time, dir Direction, peer string, summary []byte) []byte {
	dst = t.AppendFormat(dst, TimeLayout)
	dst = append(dst, ' ')
	dst = AppendLabel(dst, dir, peer)
	dst = append(dst, ' ')
	return append(dst, summary...)
}
