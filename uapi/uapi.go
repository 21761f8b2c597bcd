// Package uapi speaks the WireGuard cross-platform userspace API
// (https://www.wireguard.com/xplatform/), the text protocol wg(8) uses with a
// userspace implementation over /var/run/wireguard/<iface>.sock: a client
// writes "get=1\n\n" or "set=1\n" followed by key=value lines and a blank
// line; the server answers with key=value lines, "errno=N" and a blank line.
//
// The package is a leaf: it knows the protocol's own small types (Device,
// Peer) and nothing of the node. Its caller hands Serve a function that
// describes the device at the moment of each request, and one that decides
// what a set request gets.
//
// The encoding follows what wireguard-go writes (device/uapi.go) and what wg
// parses (wireguard-tools src/ipc-uapi.h): keys in lowercase hex, the device
// section first, then for each peer its public_key line followed by the
// peer's lines, allowed_ip last.
package uapi

import (
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"strconv"
	"time"
)

// KeySize is the length of every key of the protocol.
const KeySize = 32

// Key is a public key.
type Key [KeySize]byte

// Secret is a private or preshared key. Like the node's own key types it
// never prints itself (fmt, slog); only the encoder writes it, because the
// protocol carries it (wg showconf prints it, wg show hides it).
type Secret [KeySize]byte

const redacted = "(secret redacted)"

// String returns a placeholder, never the key.
func (Secret) String() string { return redacted }

// GoString returns a placeholder, never the key.
func (Secret) GoString() string { return redacted }

// Format prints the placeholder for every fmt verb.
func (Secret) Format(f fmt.State, _ rune) { io.WriteString(f, redacted) }

// LogValue keeps the key out of slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON keeps the key out of JSON (encoding/json would write the
// bytes as an array of numbers).
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// IsZero reports whether s is all zeros (unset).
func (s Secret) IsZero() bool { return s == Secret{} }

// Device is what a get request answers: the interface and its peers.
type Device struct {
	// PrivateKey is the interface's key; zero leaves the line out (then wg
	// show has no public key to derive and prints none).
	PrivateKey Secret
	// ListenPort is the UDP port; 0 leaves the line out.
	ListenPort uint16
	Peers      []Peer
}

// Peer is one peer of a Device.
type Peer struct {
	PublicKey    Key
	PresharedKey Secret // zero: none (wg shows nothing)
	// Endpoint is where the peer is sent to; the zero value leaves the line
	// out (wg shows "(none)").
	Endpoint netip.AddrPort
	// AllowedIPs are the prefixes routed to the peer and accepted from it.
	AllowedIPs []netip.Prefix
	// LastHandshake is the time of the last completed handshake; the zero
	// time is "never" (sec=0, nsec=0 on the wire, as wireguard-go writes it).
	LastHandshake time.Time
	RxBytes       uint64
	TxBytes       uint64
	// PersistentKeepalive is sent in whole seconds; 0 is off.
	PersistentKeepalive time.Duration
}

// AppendGet appends the body of the answer to a get request, every line of
// d, without the closing errno line.
func AppendGet(b []byte, d *Device) []byte {
	if !d.PrivateKey.IsZero() {
		b = appendKey(b, "private_key", d.PrivateKey[:])
	}
	if d.ListenPort != 0 {
		b = appendUint(b, "listen_port", uint64(d.ListenPort))
	}
	for i := range d.Peers {
		p := &d.Peers[i]
		b = appendKey(b, "public_key", p.PublicKey[:])
		b = appendKey(b, "preshared_key", p.PresharedKey[:])
		b = append(b, "protocol_version=1\n"...)
		if p.Endpoint.IsValid() {
			ep := netip.AddrPortFrom(p.Endpoint.Addr().Unmap(), p.Endpoint.Port())
			b = append(b, "endpoint="...)
			b = ep.AppendTo(b) // IPv6 in brackets, as wg expects
			b = append(b, '\n')
		}
		var sec, nsec int64
		if !p.LastHandshake.IsZero() {
			sec, nsec = p.LastHandshake.Unix(), int64(p.LastHandshake.Nanosecond())
		}
		b = appendInt(b, "last_handshake_time_sec", sec)
		b = appendInt(b, "last_handshake_time_nsec", nsec)
		b = appendUint(b, "tx_bytes", p.TxBytes)
		b = appendUint(b, "rx_bytes", p.RxBytes)
		b = appendUint(b, "persistent_keepalive_interval", keepaliveSeconds(p.PersistentKeepalive))
		for _, pfx := range p.AllowedIPs {
			b = append(b, "allowed_ip="...)
			b = pfx.AppendTo(b)
			b = append(b, '\n')
		}
	}
	return b
}

// keepaliveSeconds is d in whole seconds as the protocol carries it (a
// uint16; wg refuses more), rounded up so that a sub-second keepalive does
// not read as off.
func keepaliveSeconds(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	return uint64(min(s, 65535))
}

func appendKey(b []byte, name string, k []byte) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = hex.AppendEncode(b, k)
	return append(b, '\n')
}

func appendUint(b []byte, name string, v uint64) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = strconv.AppendUint(b, v, 10)
	return append(b, '\n')
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = strconv.AppendInt(b, v, 10)
	return append(b, '\n')
}
