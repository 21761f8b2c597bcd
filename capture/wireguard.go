package capture

import (
	"encoding/binary"
	"strconv"
)

// The WireGuard wire format, as far as a summary needs it. These are
// noise's MessageXxxType and MessageXxxSize constants, copied: noise brings
// the keys and the cryptography, which this package is not to know, and
// only a test imports it (TestWireGuardConstants) to keep the two equal.
const (
	wgInitiationType  = 1
	wgResponseType    = 2
	wgCookieReplyType = 3
	wgTransportType   = 4

	wgInitiationSize  = 148
	wgResponseSize    = 92
	wgCookieReplySize = 64
	wgKeepaliveSize   = 32 // transport header and tag, no payload
	wgPaddingMultiple = 16 // a transport message's length is a multiple
)

// appendWireGuard recognises the four WireGuard message types by their type
// byte, zero reserved bytes and exact (or, for data, aligned) length.
func appendWireGuard(b, p []byte) ([]byte, bool) {
	if len(p) < wgKeepaliveSize || p[1] != 0 || p[2] != 0 || p[3] != 0 {
		return b, false
	}
	le := binary.LittleEndian
	switch {
	case p[0] == wgInitiationType && len(p) == wgInitiationSize:
		b = append(b, " WireGuard handshake-initiation sender=0x"...)
		b = strconv.AppendUint(b, uint64(le.Uint32(p[4:8])), 16)
	case p[0] == wgResponseType && len(p) == wgResponseSize:
		b = append(b, " WireGuard handshake-response sender=0x"...)
		b = strconv.AppendUint(b, uint64(le.Uint32(p[4:8])), 16)
		b = append(b, " receiver=0x"...)
		b = strconv.AppendUint(b, uint64(le.Uint32(p[8:12])), 16)
	case p[0] == wgCookieReplyType && len(p) == wgCookieReplySize:
		b = append(b, " WireGuard cookie-reply receiver=0x"...)
		b = strconv.AppendUint(b, uint64(le.Uint32(p[4:8])), 16)
	case p[0] == wgTransportType && len(p)%wgPaddingMultiple == 0:
		if len(p) == wgKeepaliveSize {
			b = append(b, " WireGuard keepalive receiver=0x"...)
		} else {
			b = append(b, " WireGuard data receiver=0x"...)
		}
		b = strconv.AppendUint(b, uint64(le.Uint32(p[4:8])), 16)
		b = append(b, " counter="...)
		b = strconv.AppendUint(b, le.Uint64(p[8:16]), 10)
		if len(p) > wgKeepaliveSize {
			b = append(b, " data="...)
			b = strconv.AppendInt(b, int64(len(p)-wgKeepaliveSize), 10)
		}
	default:
		return b, false
	}
	return b, true
}
