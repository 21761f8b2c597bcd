package noise

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Errors returned by Keypair.Open. They are not wrapped, so Open never allocates.
var (
	ErrTransportMessage = errors.New("noise: not a valid transport data message")
	ErrKeypairZeroed    = errors.New("noise: keypair has been zeroed")
	ErrCounterLimit     = errors.New("noise: transport counter at or beyond RejectAfterMessages")
)

type aeadPair struct {
	send, recv cipher.AEAD
}

// Keypair holds the transport keys of one session (whitepaper section
// 5.4.6). Seal, Open, NextCounter and CheckReplay are safe for concurrent use.
type Keypair struct {
	LocalIndex  uint32    // index peers put in transport messages to us
	RemoteIndex uint32    // index we put in transport messages to the peer
	Initiator   bool      // whether we initiated the handshake
	Created     time.Time // time BeginSession ran, for RekeyAfterTime/RejectAfterTime

	aead        atomic.Pointer[aeadPair]
	sendCounter atomic.Uint64

	replayMu sync.Mutex
	replay   ReplayFilter
}

func newKeypair(send, recv [32]byte, local, remote uint32, initiator bool, now time.Time) *Keypair {
	k := &Keypair{LocalIndex: local, RemoteIndex: remote, Initiator: initiator, Created: now}
	s, _ := chacha20poly1305.New(send[:])
	r, _ := chacha20poly1305.New(recv[:])
	k.aead.Store(&aeadPair{send: s, recv: r})
	return k
}

// NextCounter reserves the next send counter. It reports false once
// RejectAfterMessages counters have been used; the keypair must then not
// send any more.
func (k *Keypair) NextCounter() (uint64, bool) {
	for {
		n := k.sendCounter.Load()
		if n >= RejectAfterMessages {
			return 0, false
		}
		if k.sendCounter.CompareAndSwap(n, n+1) {
			return n, true
		}
	}
}

// SendCount returns how many send counters have been reserved so far.
func (k *Keypair) SendCount() uint64 {
	return min(k.sendCounter.Load(), RejectAfterMessages)
}

// Seal writes a complete transport message into out: type 4, RemoteIndex,
// counter, the encrypted plaintext and the Poly1305 tag, and returns its
// length, len(plaintext)+MessageTransportOverhead. plaintext may alias
// out[MessageTransportHeaderSize:] exactly, for in-place encryption; any
// other overlap is not allowed. The caller pads plaintext (see PaddedSize).
// Seal returns 0, writing nothing useful, if out is too small, counter is
// at or beyond RejectAfterMessages, or the keypair was zeroed. It does not
// allocate.
func (k *Keypair) Seal(out, plaintext []byte, counter uint64) int {
	p := k.aead.Load()
	n := len(plaintext) + MessageTransportOverhead
	if p == nil || counter >= RejectAfterMessages || len(out) < n {
		return 0
	}
	// The AEAD nonce is 4 zero bytes then the little-endian counter, which
	// is exactly what header bytes 4..16 hold if the receiver index is zero
	// for a moment. Building it there, in the caller's buffer, avoids the
	// heap allocation a local nonce array would cost (it escapes through
	// the cipher.AEAD interface).
	nonce := out[4:MessageTransportHeaderSize]
	binary.LittleEndian.PutUint32(nonce[:4], 0)
	binary.LittleEndian.PutUint64(nonce[4:], counter)
	p.send.Seal(out[MessageTransportHeaderSize:MessageTransportHeaderSize], nonce, plaintext, nil)
	binary.LittleEndian.PutUint32(out[0:], MessageTransportType)
	binary.LittleEndian.PutUint32(out[4:], k.RemoteIndex)
	return n
}

// Open authenticates and decrypts the transport message msg, appending the
// plaintext to out[:0] (out may be msg[MessageTransportHeaderSize:][:0] for
// in-place decryption; any other overlap is not allowed), and returns the
// plaintext and the message counter.
// It checks the type, that the receiver is LocalIndex and that the counter
// is below RejectAfterMessages, but does not touch the replay window: call
// CheckReplay with the counter after Open succeeds. While it runs, Open
// temporarily zeroes msg[4:8] (restored before it returns), so msg must not
// be read concurrently. It does not allocate if cap(out) is at least
// len(msg)-MessageTransportOverhead.
func (k *Keypair) Open(out, msg []byte) (plaintext []byte, counter uint64, err error) {
	receiver, counter, ok := ParseTransportHeader(msg)
	if !ok || receiver != k.LocalIndex {
		return nil, 0, ErrTransportMessage
	}
	if counter >= RejectAfterMessages {
		return nil, 0, ErrCounterLimit
	}
	p := k.aead.Load()
	if p == nil {
		return nil, 0, ErrKeypairZeroed
	}
	// Same nonce trick as Seal: msg[8:16] already holds the little-endian
	// counter, so zeroing msg[4:8] turns msg[4:16] into the nonce.
	nonce := msg[4:MessageTransportHeaderSize]
	binary.LittleEndian.PutUint32(nonce[:4], 0)
	plaintext, err = p.recv.Open(out[:0], nonce, msg[MessageTransportHeaderSize:], nil)
	binary.LittleEndian.PutUint32(msg[4:], receiver)
	if err != nil {
		return nil, 0, ErrDecrypt
	}
	return plaintext, counter, nil
}

// CheckReplay validates counter against the keypair's sliding replay window
// and records it. Call it only after Open succeeded for that counter.
func (k *Keypair) CheckReplay(counter uint64) bool {
	k.replayMu.Lock()
	defer k.replayMu.Unlock()
	return k.replay.ValidateCounter(counter, RejectAfterMessages)
}

// Zero drops the keypair's AEAD keys, so that Seal and Open fail from then
// on, and reserves all send counters. The key bytes inside the released
// cipher objects cannot be overwritten from here; they are left to the
// garbage collector.
func (k *Keypair) Zero() {
	k.aead.Store(nil)
	k.sendCounter.Store(RejectAfterMessages)
}
