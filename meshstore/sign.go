package meshstore

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/peer-vpn/peer/config"
)

// signatureKey holds the signature of the mesh, written in the transaction
// of the push it covers.
const signatureKey = "/signature"

// signatureDomain starts every signed message, so that a mesh signature is
// never mistaken for a signature of anything else made with the same key.
const signatureDomain = "peer mesh signature v1\x00"

// ErrUnsigned is a mesh without a signature.
var ErrUnsigned = errors.New("unsigned")

// ErrBadSignature is a signature that does not verify over the mesh: it
// was made over other values (a key changed after the push) or is damaged.
var ErrBadSignature = errors.New("bad signature")

// message is what a signature covers: the domain, the prefix, then every
// key of the mesh (PREFIX/mesh and each PREFIX/peers/NAME) in key order
// with its value, each string preceded by its length (8 bytes, big
// endian). The prefix is in it so that a signed mesh copied under another
// prefix does not verify there; lengths make the encoding unambiguous.
func message(prefix string, kv map[string][]byte) []byte {
	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	msg := []byte(signatureDomain)
	put := func(b []byte) {
		msg = binary.BigEndian.AppendUint64(msg, uint64(len(b)))
		msg = append(msg, b...)
	}
	put([]byte(prefix))
	for _, k := range keys {
		put([]byte(k))
		put(kv[k])
	}
	return msg
}

// sign returns the value of PREFIX/signature for the mesh kv:
// "ed25519 PUBLIC SIGNATURE", both base64.
func sign(prefix string, kv map[string][]byte, key ed25519.PrivateKey) []byte {
	sig := ed25519.Sign(key, message(prefix, kv))
	pub := key.Public().(ed25519.PublicKey)
	return []byte(fmt.Sprintf("ed25519 %s %s\n", config.SignerString(pub), base64.StdEncoding.EncodeToString(sig)))
}

// verify checks the value of PREFIX/signature (nil: none) over the mesh kv
// and returns who signed it. With ErrBadSignature the signer is the one the
// value claims, for the log.
func verify(prefix string, kv map[string][]byte, value []byte) (ed25519.PublicKey, error) {
	if value == nil {
		return nil, ErrUnsigned
	}
	f := strings.Fields(string(value))
	if len(f) != 3 || f[0] != "ed25519" {
		return nil, fmt.Errorf("%w: %s%s is not \"ed25519 PUBLIC SIGNATURE\"", ErrBadSignature, prefix, signatureKey)
	}
	pub, err := config.ParseSigner(f[1])
	if err != nil {
		return nil, fmt.Errorf("%w: %s%s: %v", ErrBadSignature, prefix, signatureKey, err)
	}
	sig, err := base64.StdEncoding.Strict().DecodeString(f[2])
	if err != nil || len(sig) != ed25519.SignatureSize {
		return pub, fmt.Errorf("%w: %s%s: the signature is not %d bytes of base64", ErrBadSignature, prefix, signatureKey, ed25519.SignatureSize)
	}
	if !ed25519.Verify(pub, message(prefix, kv), sig) {
		return pub, fmt.Errorf("%w: made by %s over other values than these (changed after the push?)", ErrBadSignature, config.SignerString(pub))
	}
	return pub, nil
}
