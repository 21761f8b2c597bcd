// Package noise implements the cryptographic core of the WireGuard protocol:
// the Noise_IKpsk2 handshake, transport-data keypairs, the mac1/mac2 cookie
// mechanism, the anti-replay window and TAI64N timestamps. It is wire
// compatible with the Linux kernel module and wireguard-go.
//
// The package performs no I/O and reads no clock: callers pass the current
// time explicitly, so every state machine here can be driven by a fake clock.
package noise

import "time"

// Protocol strings fixed by the WireGuard whitepaper (section 5.4).
const (
	// Construction is the Noise protocol name hashed into the initial chaining key.
	Construction = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
	// Identifier is mixed into the initial hash.
	Identifier = "WireGuard v1 zx2c4 Jason@zx2c4.com"
	// LabelMAC1 prefixes the public key to derive the mac1 key.
	LabelMAC1 = "mac1----"
	// LabelCookie prefixes the public key to derive the cookie encryption key.
	LabelCookie = "cookie--"
)

// Limits and timers from section 6 of the whitepaper.
const (
	// RekeyAfterMessages is the send counter after which a new handshake is started.
	RekeyAfterMessages uint64 = 1 << 60
	// RejectAfterMessages is the counter at which a keypair is no longer used.
	RejectAfterMessages uint64 = 1<<64 - 1<<13 - 1
	// RekeyAfterTime is the keypair age after which the initiator starts a new handshake.
	RekeyAfterTime = 120 * time.Second
	// RejectAfterTime is the keypair age after which it is no longer used.
	RejectAfterTime = 180 * time.Second
	// RekeyAttemptTime is how long handshake retries go on before giving up.
	RekeyAttemptTime = 90 * time.Second
	// RekeyTimeout is the delay before an unanswered initiation is retried.
	RekeyTimeout = 5 * time.Second
	// KeepaliveTimeout is the delay before a passive keepalive is sent.
	KeepaliveTimeout = 10 * time.Second
	// CookieRefreshTime is the lifetime of a cookie secret and of a received cookie.
	CookieRefreshTime = 120 * time.Second
	// HandshakeInitiationRate is the minimum spacing of initiations accepted from one peer.
	HandshakeInitiationRate = time.Second / 50
)

// Message types (the first byte of every message; the next three are zero).
const (
	MessageInitiationType  = 1 // handshake initiation
	MessageResponseType    = 2 // handshake response
	MessageCookieReplyType = 3 // cookie reply
	MessageTransportType   = 4 // transport data
)

// Message sizes in bytes.
const (
	MessageInitiationSize      = 148                             // handshake initiation
	MessageResponseSize        = 92                              // handshake response
	MessageCookieReplySize     = 64                              // cookie reply
	MessageTransportHeaderSize = 16                              // type, receiver, counter
	MessageTransportOverhead   = MessageTransportHeaderSize + 16 // header plus Poly1305 tag
	MessageKeepaliveSize       = MessageTransportOverhead        // transport message with empty payload
	PaddingMultiple            = 16                              // plaintext is padded to a multiple of this
)

// PaddedSize returns the plaintext length to encrypt for a packet of n bytes
// on a tunnel with the given mtu: n rounded up to a multiple of
// PaddingMultiple, but never beyond mtu (and never below n). An mtu <= 0
// means no limit.
func PaddedSize(n, mtu int) int {
	if n < 0 {
		return 0
	}
	p := (n + PaddingMultiple - 1) &^ (PaddingMultiple - 1)
	if mtu > 0 && p > mtu {
		p = max(mtu, n)
	}
	return p
}
