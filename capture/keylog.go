package capture

import (
	"bytes"
	"encoding/base64"
	"time"
)

// Defaults of Options.KeyLifetime and Options.KeysPerPeer.
const (
	// DefaultKeyLifetime is the longest a WireGuard session can be in use:
	// its keypair is rejected after RejectAfterTime (180 s), and the
	// whitepaper wipes all key material after 3×RejectAfterTime without a
	// new handshake. The caller that knows the protocol passes its own.
	DefaultKeyLifetime = 9 * time.Minute
	// DefaultKeysPerPeer: a peer has at most three keypairs in use
	// (previous, current, next) and one handshake in flight; an older
	// handshake of the same peer is superseded and can no longer appear.
	DefaultKeysPerPeer = 4
)

// The key log is the text of Wireshark's wg.keylog_file, "NAME = base64\n"
// lines with these names; the Writer is the only place that writes it.
const (
	keyLocalStatic    = "LOCAL_STATIC_PRIVATE_KEY"
	keyRemoteStatic   = "REMOTE_STATIC_PUBLIC_KEY"
	keyLocalEphemeral = "LOCAL_EPHEMERAL_PRIVATE_KEY"
	keyPreshared      = "PRESHARED_KEY"
)

// keyLineLen is the length of the longest key log line.
var keyLineLen = len(keyLocalEphemeral+" = \n") + base64.StdEncoding.EncodedLen(32)

// appendKeyLine appends the key log line "name = base64(key)\n" to dst.
func appendKeyLine(dst []byte, name string, key *[32]byte) []byte {
	dst = append(dst, name...)
	dst = append(dst, " = "...)
	dst = base64.StdEncoding.AppendEncode(dst, key[:])
	return append(dst, '\n')
}

// HandshakeKeys is what Wireshark's WireGuard dissector needs of one
// handshake, besides the node's static key (see Writer.StaticKey): it has
// no key-log type for transport keys and derives them from the handshake
// messages.
type HandshakeKeys struct {
	// RemoteStatic is the peer's static public key, which Wireshark
	// matches against the mac1 of the peer's messages.
	RemoteStatic [32]byte
	// LocalEphemeral is this node's ephemeral private key of the
	// handshake, sent in its initiation or response.
	LocalEphemeral [32]byte
	// Preshared is the pair's preshared key; zero means none and writes
	// no line.
	Preshared [32]byte
}

// keyEntry is the key lines of one StaticKey or HandshakeKeys call, each
// ending in '\n', owned by the Writer (wiped when no longer needed).
type keyEntry struct {
	t      time.Time
	peer   string
	static bool // the static key: in every file, of no session
	lines  []byte
}

func (e *keyEntry) wipe() {
	clear(e.lines)
	e.lines = nil
}

// StaticKey hands over this node's static private key, made known at t.
// Wireshark needs it for every handshake of the capture, so the writer puts
// it in every file from then on; giving the same key again adds nothing.
// The caller decides when: peer's tap gives it with the first handshake,
// so that a capture without one holds no key.
//
// Like HandshakeKeys, a no-op unless Options.Keys and Options.Outer are
// set, and after Close or a write error.
func (w *Writer) StaticKey(t time.Time, private [32]byte) {
	if !w.keysWanted() {
		return
	}
	b := appendKeyLine(make([]byte, 0, keyLineLen), keyLocalStatic, &private)
	w.queueKeys(&keyEntry{t: t, static: true, lines: b})
}

// HandshakeKeys hands over the keys of a handshake with peer (an
// initiation or a response this node sends), made at t. They are written
// in the format of Wireshark's wg.keylog_file: REMOTE_STATIC_PUBLIC_KEY,
// LOCAL_EPHEMERAL_PRIVATE_KEY and, if k has one, PRESHARED_KEY.
// HandshakeKeys copies the keys into buffers of the Writer's own (wiped
// once no file can need them) and never blocks.
//
// The lines are written in a decryption-secrets block exactly where they
// fall among the packets queued around them (the block comes before the
// packets queued after the call, so Wireshark reads the keys before the
// handshake that needs them). A new file, when rotating, starts with the
// static key and the keys of the handshakes that may still be in use:
// handed over no more than KeyLifetime before the packet that opens the
// file, and among the KeysPerPeer newest of their peer. Nothing else is
// kept, and what is kept is wiped at Close.
//
// A no-op unless Options.Keys and Options.Outer are set (the keys decrypt
// only the outer datagrams), and after Close or a write error.
func (w *Writer) HandshakeKeys(t time.Time, peer string, k HandshakeKeys) {
	if !w.keysWanted() {
		return
	}
	b := make([]byte, 0, 3*keyLineLen)
	b = appendKeyLine(b, keyRemoteStatic, &k.RemoteStatic)
	b = appendKeyLine(b, keyLocalEphemeral, &k.LocalEphemeral)
	if k.Preshared != [32]byte{} {
		// Right after the ephemeral key: Wireshark links a PSK to the
		// ephemeral key line before it.
		b = appendKeyLine(b, keyPreshared, &k.Preshared)
	}
	w.queueKeys(&keyEntry{t: t, peer: peer, lines: b})
}

func (w *Writer) keysWanted() bool {
	return w.o.Keys && w.o.Outer && !w.closed.Load() && !w.failed.Load()
}

// queueKeys hands e to the writer goroutine, in order with the packets.
func (w *Writer) queueKeys(e *keyEntry) {
	w.keyMu.Lock()
	defer w.keyMu.Unlock()
	if w.closed.Load() {
		e.wipe()
		return
	}
	select {
	case w.q <- item{kind: kindKeys, t: e.t, keys: e}:
	default:
		// The queue is full: the writer takes the entry before its next
		// item, that is a little early, never after a later packet.
		w.keyOverflow = append(w.keyOverflow, e)
		w.keyFlag.Store(true)
	}
}

// takeOverflow adds the key entries that found the queue full.
func (w *Writer) takeOverflow() {
	w.keyFlag.Store(false)
	w.keyMu.Lock()
	es := w.keyOverflow
	w.keyOverflow = nil
	w.keyMu.Unlock()
	for _, e := range es {
		w.addKeys(e)
	}
}

// addKeys records e and writes its lines to the current file, if the file
// has begun (else startSection writes them).
func (w *Writer) addKeys(e *keyEntry) {
	if w.err != nil {
		e.wipe()
		return
	}
	now := w.keys.add(e)
	// Pruning here too keeps the log bounded when the file never rotates.
	w.keys.prune(e.t, w.o.KeyLifetime, w.o.KeysPerPeer)
	if w.ng == nil || len(now) == 0 {
		clear(now) // startSection writes them from the log
		return
	}
	err := w.ng.WriteDecryptionSecretsBlock(wgKeyLogType, now)
	clear(now)
	if err != nil {
		w.fail(err)
		return
	}
	w.sync()
}

// keyLog is what the writer keeps of the key lines: the static lines, for
// every file, and the handshake entries a new file may still need. Owned by
// the writer goroutine.
type keyLog struct {
	static   []byte
	sessions []*keyEntry // oldest first
}

// add records e, which it takes over, and returns the lines to write now,
// in a new slice: e's lines, or none for a static key given before.
func (k *keyLog) add(e *keyEntry) []byte {
	if !e.static {
		k.sessions = append(k.sessions, e)
		return bytes.Clone(e.lines)
	}
	defer e.wipe()
	if containsLine(k.static, e.lines) {
		return nil
	}
	k.static = append(k.static, e.lines...)
	return bytes.Clone(e.lines)
}

func containsLine(lines, line []byte) bool {
	for len(lines) > 0 {
		i := bytes.IndexByte(lines, '\n')
		if bytes.Equal(lines[:i+1], line) {
			return true
		}
		lines = lines[i+1:]
	}
	return false
}

// prune forgets the sessions that can no longer be in use at now: handed
// over more than lifetime before, or older than the perPeer newest of their
// peer.
func (k *keyLog) prune(now time.Time, lifetime time.Duration, perPeer int) {
	seen := make(map[string]int)
	drop := make([]bool, len(k.sessions))
	for i := len(k.sessions) - 1; i >= 0; i-- {
		e := k.sessions[i]
		seen[e.peer]++
		drop[i] = now.Sub(e.t) > lifetime || seen[e.peer] > perPeer
	}
	keep := k.sessions[:0]
	for i, e := range k.sessions {
		if drop[i] {
			e.wipe()
			continue
		}
		keep = append(keep, e)
	}
	clear(k.sessions[len(keep):]) // let the pruned entries be collected
	k.sessions = keep
}

// carried returns, in a new slice, the lines a new file starts with.
func (k *keyLog) carried() []byte {
	b := append([]byte(nil), k.static...)
	for _, e := range k.sessions {
		b = append(b, e.lines...)
	}
	return b
}

// wipe clears every key line kept.
func (k *keyLog) wipe() {
	clear(k.static)
	k.static = nil
	for _, e := range k.sessions {
		e.wipe()
	}
	k.sessions = nil
}
