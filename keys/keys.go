// Package keys holds the Curve25519 key types of the WireGuard protocol and
// their text form: standard base64 of 32 bytes, as printed by `wg genkey` and
// `wg pubkey`.
package keys

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/curve25519"
)

// Size is the length in bytes of every key type here.
const Size = 32

// Private is a Curve25519 private key, clamped as X25519 requires.
type Private [Size]byte

// Public is a Curve25519 public key.
type Public [Size]byte

// Preshared is the optional symmetric key mixed into a handshake (the "psk" of
// Noise_IKpsk2). The zero value means "no preshared key".
type Preshared [Size]byte

// ErrLowOrderPoint is returned by SharedSecret when the result is all zeros,
// which happens only for a low-order public key.
var ErrLowOrderPoint = errors.New("keys: shared secret with a low-order point")

// NewPrivate returns a fresh random private key, clamped.
func NewPrivate() (Private, error) {
	var k Private
	if _, err := rand.Read(k[:]); err != nil {
		return Private{}, fmt.Errorf("keys: reading random bytes: %w", err)
	}
	k.clamp()
	return k, nil
}

func (k *Private) clamp() {
	k[0] &= 248
	k[31] = (k[31] & 127) | 64
}

// Public returns the public key of k.
func (k Private) Public() Public {
	var p Public
	curve25519.ScalarBaseMult((*[Size]byte)(&p), (*[Size]byte)(&k))
	return p
}

// SharedSecret computes X25519(k, pub). It fails for a low-order pub.
func (k Private) SharedSecret(pub Public) ([Size]byte, error) {
	var out [Size]byte
	curve25519.ScalarMult(&out, (*[Size]byte)(&k), (*[Size]byte)(&pub))
	var zero [Size]byte
	if subtle.ConstantTimeCompare(out[:], zero[:]) == 1 {
		return out, ErrLowOrderPoint
	}
	return out, nil
}

// IsZero reports whether k is all zeros (unset).
func (k Private) IsZero() bool { return k == Private{} }

// IsZero reports whether k is all zeros (unset).
func (k Public) IsZero() bool { return k == Public{} }

// IsZero reports whether k is all zeros (no preshared key).
func (k Preshared) IsZero() bool { return k == Preshared{} }

// String returns the base64 form of k. A public key is not a secret.
func (k Public) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Secrets do not print themselves: a %v in a log line or an error, a slog
// attribute or a JSON dump of a struct that holds one shows only these words.
// Code that must write the key itself (genkey, the capture key log) calls
// Base64, a name that is searched for and read in review. There is
// deliberately no MarshalText: slog and encoding/json would use it.
// One hole fmt leaves: it cannot call methods on an unexported struct
// field, so %v of a struct with an unexported key field prints the key's
// bytes as numbers. Such structs must not be printed whole.
const (
	redactedPrivate   = "(private key redacted)"
	redactedPreshared = "(preshared key redacted)"
)

// Base64 returns the base64 form of k, as `wg genkey` writes it. It is the
// only way to print a private key: call it only where the key must be written.
func (k Private) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String returns a placeholder, never the key; see Base64.
func (k Private) String() string { return redactedPrivate }

// GoString returns a placeholder for %#v, never the key.
func (k Private) GoString() string { return redactedPrivate }

// Format prints the placeholder for every verb (%v, %s, %x, %q, %d...), so
// that no fmt verb can print the bytes of the key.
func (k Private) Format(f fmt.State, _ rune) { io.WriteString(f, redactedPrivate) }

// LogValue keeps the key out of slog output.
func (k Private) LogValue() slog.Value { return slog.StringValue(redactedPrivate) }

// MarshalJSON keeps the key out of JSON (encoding/json would otherwise
// write the 32 bytes as an array of numbers).
func (k Private) MarshalJSON() ([]byte, error) { return json.Marshal(redactedPrivate) }

// Base64 returns the base64 form of k, as `wg genpsk` writes it. Call it
// only where the key must be written.
func (k Preshared) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String returns a placeholder, never the key; see Base64.
func (k Preshared) String() string { return redactedPreshared }

// GoString returns a placeholder for %#v, never the key.
func (k Preshared) GoString() string { return redactedPreshared }

// Format prints the placeholder for every verb, never the key.
func (k Preshared) Format(f fmt.State, _ rune) { io.WriteString(f, redactedPreshared) }

// LogValue keeps the key out of slog output.
func (k Preshared) LogValue() slog.Value { return slog.StringValue(redactedPreshared) }

// MarshalJSON keeps the key out of JSON.
func (k Preshared) MarshalJSON() ([]byte, error) { return json.Marshal(redactedPreshared) }

func parse(kind, s string) ([Size]byte, error) {
	var k [Size]byte
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return k, fmt.Errorf("%s key is not valid base64: %w", kind, err)
	}
	if len(b) != Size {
		return k, fmt.Errorf("%s key is %d bytes, want %d", kind, len(b), Size)
	}
	copy(k[:], b)
	return k, nil
}

// ParsePrivate decodes a base64 private key, as written by `wg genkey`, and
// clamps it the way X25519 would.
func ParsePrivate(s string) (Private, error) {
	b, err := parse("private", s)
	k := Private(b)
	if err == nil {
		k.clamp()
	}
	return k, err
}

// ParsePublic decodes a base64 public key, as written by `wg pubkey`.
func ParsePublic(s string) (Public, error) {
	b, err := parse("public", s)
	return Public(b), err
}

// ParsePreshared decodes a base64 preshared key, as written by `wg genpsk`.
func ParsePreshared(s string) (Preshared, error) {
	b, err := parse("preshared", s)
	return Preshared(b), err
}
