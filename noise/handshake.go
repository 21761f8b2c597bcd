package noise

import (
	"bytes"
	"crypto/hmac"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"sync"
	"time"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/peer-vpn/peer/keys"
)

// Errors returned (wrapped) by the handshake functions.
var (
	ErrHandshakeState   = errors.New("noise: handshake is not in the right state")
	ErrDecrypt          = errors.New("noise: authentication failed")
	ErrUnknownPeer      = errors.New("noise: initiation from an unknown static key")
	ErrReplay           = errors.New("noise: initiation timestamp is not newer than the last accepted one")
	ErrFlood            = errors.New("noise: initiations arriving faster than HandshakeInitiationRate")
	ErrWrongReceiver    = errors.New("noise: response is addressed to another handshake")
	ErrLowOrder         = errors.New("noise: Diffie-Hellman with a low-order point")
	ErrForeignHandshake = errors.New("noise: handshake belongs to another local identity")
)

var (
	initialChainKey [blake2s.Size]byte // HASH(Construction)
	initialHash     [blake2s.Size]byte // HASH(initialChainKey || Identifier)
	zeroNonce       [chacha20poly1305.NonceSize]byte
)

func init() {
	initialChainKey = blake2s.Sum256([]byte(Construction))
	initialHash = mixHash(initialChainKey, []byte(Identifier))
}

// mixHash returns HASH(h || data).
func mixHash(h [blake2s.Size]byte, data []byte) [blake2s.Size]byte {
	d, _ := blake2s.New256(nil)
	d.Write(h[:])
	d.Write(data)
	var out [blake2s.Size]byte
	d.Sum(out[:0])
	return out
}

func newBlake2s() hash.Hash {
	d, _ := blake2s.New256(nil)
	return d
}

// hmacBlake2s returns HMAC-BLAKE2s-256(key, in...).
func hmacBlake2s(key []byte, in ...[]byte) [blake2s.Size]byte {
	m := hmac.New(newBlake2s, key)
	for _, b := range in {
		m.Write(b)
	}
	var out [blake2s.Size]byte
	m.Sum(out[:0])
	return out
}

// kdf derives n (1 to 3) 32-byte keys from chaining key ck and input, the
// HKDF construction of the whitepaper: prk = HMAC(ck, input),
// t1 = HMAC(prk, 0x1), t_i = HMAC(prk, t_{i-1} || i).
func kdf(n int, ck, input []byte) (t [3][blake2s.Size]byte) {
	prk := hmacBlake2s(ck, input)
	prev := []byte(nil)
	for i := 0; i < n; i++ {
		t[i] = hmacBlake2s(prk[:], prev, []byte{byte(i + 1)})
		prev = t[i][:]
	}
	clear(prk[:])
	return t
}

func kdf1(ck, input []byte) (a [32]byte) {
	t := kdf(1, ck, input)
	return t[0]
}

func kdf2(ck, input []byte) (a, b [32]byte) {
	t := kdf(2, ck, input)
	return t[0], t[1]
}

func kdf3(ck, input []byte) (a, b, c [32]byte) {
	t := kdf(3, ck, input)
	return t[0], t[1], t[2]
}

// seal encrypts plaintext with ChaCha20-Poly1305 under key, a zero nonce and
// additional data ad, writing into dst (which must have room).
func seal(dst []byte, key [32]byte, plaintext, ad []byte) {
	a, _ := chacha20poly1305.New(key[:])
	a.Seal(dst[:0], zeroNonce[:], plaintext, ad)
}

// open is the inverse of seal.
func open(dst []byte, key [32]byte, ciphertext, ad []byte) error {
	a, _ := chacha20poly1305.New(key[:])
	if _, err := a.Open(dst[:0], zeroNonce[:], ciphertext, ad); err != nil {
		return ErrDecrypt
	}
	return nil
}

func dh(priv keys.Private, pub keys.Public) ([32]byte, error) {
	ss, err := priv.SharedSecret(pub)
	if err != nil {
		return ss, ErrLowOrder
	}
	return ss, nil
}

// Local is this node's static identity.
type Local struct {
	Private keys.Private // static private key
	Public  keys.Public  // Private.Public(), precomputed
}

// NewLocal returns the identity for priv.
func NewLocal(priv keys.Private) *Local {
	return &Local{Private: priv, Public: priv.Public()}
}

type handshakeState int

const (
	stateZeroed handshakeState = iota
	stateInitiationCreated
	stateInitiationConsumed
	stateResponseCreated
	stateResponseConsumed
)

// Handshake is the Noise_IKpsk2 state toward one remote peer. It is safe for
// concurrent use.
type Handshake struct {
	keyLog func(localEphemeral keys.Private) // nil unless WithKeyLog

	local        *Local
	remote       keys.Public
	staticStatic [32]byte // DH(local static, remote static)

	// newEphemeral generates ephemeral keys; tests replace it.
	newEphemeral func() (keys.Private, error)

	mu              sync.Mutex
	state           handshakeState
	psk             keys.Preshared
	hash            [blake2s.Size]byte
	chainKey        [blake2s.Size]byte
	localEphemeral  keys.Private
	remoteEphemeral keys.Public
	localIndex      uint32
	remoteIndex     uint32

	// Replay and flood protection; kept across Clear.
	lastTimestamp  [TimestampSize]byte
	lastInitiation time.Time
	haveInitiation bool
}

// HandshakeOption is an optional setting of NewHandshake.
type HandshakeOption func(*Handshake)

// WithKeyLog has the handshake call keyLog with every ephemeral private key
// it generates, for its initiations and responses, so that a capture can
// carry the key log Wireshark decrypts with. It is a debugging aid that
// hands out what keeps the session secret, fixed when the handshake is
// made so that nothing can install it on a running one. keyLog is called
// without the handshake's locks held, after the message is made, and must
// not block.
func WithKeyLog(keyLog func(localEphemeral keys.Private)) HandshakeOption {
	return func(h *Handshake) { h.keyLog = keyLog }
}

// NewHandshake returns the handshake state of l toward the peer with static
// key remote and preshared key psk (zero for none). It fails if the static
// Diffie-Hellman between l and remote is degenerate (remote is low-order).
func NewHandshake(l *Local, remote keys.Public, psk keys.Preshared, opts ...HandshakeOption) (*Handshake, error) {
	ss, err := dh(l.Private, remote)
	if err != nil {
		return nil, fmt.Errorf("noise: peer %s: static key: %w", remote, err)
	}
	h := &Handshake{local: l, remote: remote, staticStatic: ss, psk: psk, newEphemeral: keys.NewPrivate}
	for _, o := range opts {
		o(h)
	}
	return h, nil
}

// SetPresharedKey replaces the preshared key used by later handshake messages.
func (h *Handshake) SetPresharedKey(psk keys.Preshared) {
	h.mu.Lock()
	h.psk = psk
	h.mu.Unlock()
}

func (h *Handshake) ephemeral() (keys.Private, error) {
	e, err := h.newEphemeral()
	if err != nil {
		return e, fmt.Errorf("noise: generating ephemeral key: %w", err)
	}
	return e, nil
}

func (h *Handshake) logKey(e keys.Private) {
	if h.keyLog != nil {
		h.keyLog(e)
	}
}

// CreateInitiation starts a new handshake as initiator, announcing
// localIndex as Sender, and returns the initiation with MAC1 and MAC2 zero
// (CookieGenerator.AddMACs fills them after marshalling). The timestamp is
// derived from now. Any handshake in flight is abandoned.
func (h *Handshake) CreateInitiation(now time.Time, localIndex uint32) (*Initiation, error) {
	e, err := h.ephemeral()
	if err != nil {
		return nil, err
	}
	defer h.logKey(e)

	h.mu.Lock()
	defer h.mu.Unlock()

	hs := mixHash(initialHash, h.remote[:])
	ck := initialChainKey

	msg := &Initiation{Sender: localIndex, Ephemeral: e.Public()}
	ck = kdf1(ck[:], msg.Ephemeral[:])
	hs = mixHash(hs, msg.Ephemeral[:])

	es, err := dh(e, h.remote)
	if err != nil {
		return nil, fmt.Errorf("noise: initiation to %s: %w", h.remote, err)
	}
	var key [32]byte
	ck, key = kdf2(ck[:], es[:])
	clear(es[:])
	seal(msg.Static[:], key, h.local.Public[:], hs[:])
	hs = mixHash(hs, msg.Static[:])

	ck, key = kdf2(ck[:], h.staticStatic[:])
	ts := TAI64N(whitened(now))
	seal(msg.Timestamp[:], key, ts[:], hs[:])
	hs = mixHash(hs, msg.Timestamp[:])
	clear(key[:])

	h.hash, h.chainKey = hs, ck
	h.localEphemeral = e
	h.remoteEphemeral = keys.Public{}
	h.localIndex = localIndex
	h.remoteIndex = 0
	h.state = stateInitiationCreated
	return msg, nil
}

// ConsumeInitiation processes an initiation addressed to l. It decrypts the
// initiator's static key, finds that peer's Handshake with lookup (nil
// means unknown peer, an error), authenticates the timestamp, refuses it if
// it is not newer than the last one accepted from that peer (replay) or if
// the previous accepted initiation from that peer is no more than
// HandshakeInitiationRate before now (flood), and records the initiation in
// the Handshake, which it returns. MACs are not checked here: the
// CookieChecker does that before.
func (l *Local) ConsumeInitiation(msg *Initiation, now time.Time, lookup func(keys.Public) *Handshake) (*Handshake, error) {
	hs := mixHash(initialHash, l.Public[:])
	hs = mixHash(hs, msg.Ephemeral[:])
	ck := kdf1(initialChainKey[:], msg.Ephemeral[:])

	es, err := dh(l.Private, msg.Ephemeral)
	if err != nil {
		return nil, fmt.Errorf("noise: consuming initiation: ephemeral key: %w", err)
	}
	var key [32]byte
	ck, key = kdf2(ck[:], es[:])
	clear(es[:])
	var remote keys.Public
	if err := open(remote[:0], key, msg.Static[:], hs[:]); err != nil {
		return nil, fmt.Errorf("noise: consuming initiation: static key: %w", err)
	}
	hs = mixHash(hs, msg.Static[:])

	h := lookup(remote)
	if h == nil {
		return nil, fmt.Errorf("noise: consuming initiation from %s: %w", remote, ErrUnknownPeer)
	}
	if h.local != l || h.remote != remote {
		return nil, fmt.Errorf("noise: consuming initiation from %s: %w", remote, ErrForeignHandshake)
	}

	h.mu.Lock()
	defer h.mu.Unlock()

	ck, key = kdf2(ck[:], h.staticStatic[:])
	var ts [TimestampSize]byte
	err = open(ts[:0], key, msg.Timestamp[:], hs[:])
	clear(key[:])
	if err != nil {
		return nil, fmt.Errorf("noise: consuming initiation from %s: timestamp: %w", remote, err)
	}
	hs = mixHash(hs, msg.Timestamp[:])

	if bytes.Compare(ts[:], h.lastTimestamp[:]) <= 0 {
		return nil, fmt.Errorf("noise: consuming initiation from %s: %w", remote, ErrReplay)
	}
	if h.haveInitiation && now.Sub(h.lastInitiation) <= HandshakeInitiationRate {
		return nil, fmt.Errorf("noise: consuming initiation from %s: %w", remote, ErrFlood)
	}

	h.hash, h.chainKey = hs, ck
	h.remoteEphemeral = msg.Ephemeral
	h.remoteIndex = msg.Sender
	h.localEphemeral = keys.Private{}
	h.lastTimestamp = ts
	h.lastInitiation, h.haveInitiation = now, true
	h.state = stateInitiationConsumed
	return h, nil
}

// CreateResponse answers the initiation recorded by ConsumeInitiation,
// announcing localIndex as Sender. It replaces the index of an earlier
// message, so the caller should retire that one first. MAC1 and MAC2 are left zero.
func (h *Handshake) CreateResponse(localIndex uint32) (*Response, error) {
	e, err := h.ephemeral()
	if err != nil {
		return nil, err
	}
	defer h.logKey(e)

	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateInitiationConsumed {
		return nil, fmt.Errorf("noise: creating response to %s: %w", h.remote, ErrHandshakeState)
	}

	msg := &Response{Sender: localIndex, Receiver: h.remoteIndex, Ephemeral: e.Public()}
	hs := mixHash(h.hash, msg.Ephemeral[:])
	ck := kdf1(h.chainKey[:], msg.Ephemeral[:])

	ee, err := dh(e, h.remoteEphemeral)
	if err != nil {
		return nil, fmt.Errorf("noise: creating response to %s: %w", h.remote, err)
	}
	ck = kdf1(ck[:], ee[:])
	clear(ee[:])
	se, err := dh(e, h.remote)
	if err != nil {
		return nil, fmt.Errorf("noise: creating response to %s: %w", h.remote, err)
	}
	ck = kdf1(ck[:], se[:])
	clear(se[:])

	ck, tau, key := kdf3(ck[:], h.psk[:])
	hs = mixHash(hs, tau[:])
	seal(msg.Empty[:], key, nil, hs[:])
	hs = mixHash(hs, msg.Empty[:])
	clear(key[:])
	clear(tau[:])

	h.hash, h.chainKey = hs, ck
	h.localEphemeral = e
	h.localIndex = localIndex
	h.state = stateResponseCreated
	return msg, nil
}

// ConsumeResponse processes the response to the initiation this Handshake
// created. The caller found h through msg.Receiver; it must equal the
// Sender of that initiation. On failure h is left unchanged.
func (h *Handshake) ConsumeResponse(msg *Response) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.state != stateInitiationCreated {
		return fmt.Errorf("noise: consuming response from %s: %w", h.remote, ErrHandshakeState)
	}
	if msg.Receiver != h.localIndex {
		return fmt.Errorf("noise: consuming response from %s: receiver %d, want %d: %w", h.remote, msg.Receiver, h.localIndex, ErrWrongReceiver)
	}

	hs := mixHash(h.hash, msg.Ephemeral[:])
	ck := kdf1(h.chainKey[:], msg.Ephemeral[:])
	ee, err := dh(h.localEphemeral, msg.Ephemeral)
	if err != nil {
		return fmt.Errorf("noise: consuming response from %s: %w", h.remote, err)
	}
	ck = kdf1(ck[:], ee[:])
	clear(ee[:])
	se, err := dh(h.local.Private, msg.Ephemeral)
	if err != nil {
		return fmt.Errorf("noise: consuming response from %s: %w", h.remote, err)
	}
	ck = kdf1(ck[:], se[:])
	clear(se[:])

	ck, tau, key := kdf3(ck[:], h.psk[:])
	hs = mixHash(hs, tau[:])
	err = open(nil, key, msg.Empty[:], hs[:])
	clear(key[:])
	clear(tau[:])
	if err != nil {
		return fmt.Errorf("noise: consuming response from %s: %w", h.remote, err)
	}
	hs = mixHash(hs, msg.Empty[:])

	h.hash, h.chainKey = hs, ck
	h.remoteEphemeral = msg.Ephemeral
	h.remoteIndex = msg.Sender
	h.state = stateResponseConsumed
	return nil
}

// BeginSession derives the transport keys of a completed handshake (the
// initiator after ConsumeResponse, the responder after CreateResponse),
// zeroes the chaining key, hash and ephemeral keys, hands the announced index
// over to the returned Keypair (as its LocalIndex) and returns the keypair,
// created at now.
func (h *Handshake) BeginSession(now time.Time) (*Keypair, error) {
	h.mu.Lock()
	defer h.mu.Unlock()

	var initiator bool
	var send, recv [32]byte
	switch h.state {
	case stateResponseConsumed:
		initiator = true
		send, recv = kdf2(h.chainKey[:], nil)
	case stateResponseCreated:
		recv, send = kdf2(h.chainKey[:], nil)
	default:
		return nil, fmt.Errorf("noise: deriving session keys with %s: %w", h.remote, ErrHandshakeState)
	}
	kp := newKeypair(send, recv, h.localIndex, h.remoteIndex, initiator, now)
	clear(send[:])
	clear(recv[:])
	h.clearLocked()
	return kp, nil
}

// Clear zeroes the handshake in flight: keys, hash, indices and state. The
// replay and flood protection (last accepted timestamp and time) is kept,
// since forgetting it would let an old initiation be replayed.
func (h *Handshake) Clear() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.clearLocked()
}

func (h *Handshake) clearLocked() {
	clear(h.hash[:])
	clear(h.chainKey[:])
	clear(h.localEphemeral[:])
	clear(h.remoteEphemeral[:])
	h.localIndex, h.remoteIndex = 0, 0
	h.state = stateZeroed
}

// constantTimeEqual reports whether a and b are equal without leaking where
// they differ.
func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
