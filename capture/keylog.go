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

// staticKeyName is the key log line that belongs to no session: it is
// needed for every handshake of the capture, so every file carries it.
const staticKeyName = "LOCAL_STATIC_PRIVATE_KEY"

var keyLogNames = [...]string{
	staticKeyName,
	"REMOTE_STATIC_PUBLIC_KEY",
	"LOCAL_EPHEMERAL_PRIVATE_KEY",
	"PRESHARED_KEY",
}

// keyEntry is the key lines of one Keys call: normalized lines, each ending
// in '\n', owned by the Writer (wiped when no longer needed).
type keyEntry struct {
	t     time.Time
	peer  string
	lines []byte
}

func (e *keyEntry) wipe() {
	clear(e.lines)
	e.lines = nil
}

// Keys hands over WireGuard key log lines, in the format of Wireshark's
// wg.keylog_file ("LOCAL_STATIC_PRIVATE_KEY = <base64>",
// REMOTE_STATIC_PUBLIC_KEY, LOCAL_EPHEMERAL_PRIVATE_KEY, PRESHARED_KEY),
// made at t for a handshake with peer ("" for lines of no session: the
// static key). Lines that are not in that format are dropped with a warning
// that does not repeat their content. Keys copies lines (the caller may
// wipe them) and never blocks.
//
// The lines are written in a decryption-secrets block exactly where they
// fall among the packets queued around them (the block comes before the
// packets queued after the call, so Wireshark reads the keys before the
// handshake that needs them). A new file, when rotating, starts with the
// static lines and the lines of the sessions that may still be in use:
// handed over no more than KeyLifetime before the packet that opens the
// file, and among the KeysPerPeer newest of their peer. Nothing else is
// kept, and what is kept is wiped at Close.
//
// A no-op unless Options.Keys and Options.Outer are set (the keys decrypt
// only the outer datagrams), and after Close or a write error.
func (w *Writer) Keys(t time.Time, peer string, lines []byte) {
	if !w.o.Keys || !w.o.Outer || w.closed.Load() || w.failed.Load() {
		return
	}
	e := &keyEntry{t: t, peer: peer, lines: w.cleanKeyLines(lines)}
	if len(e.lines) == 0 {
		return
	}
	w.keyMu.Lock()
	defer w.keyMu.Unlock()
	if w.closed.Load() {
		e.wipe()
		return
	}
	select {
	case w.q <- item{kind: kindKeys, t: t, keys: e}:
	default:
		// The queue is full: the writer takes the entry before its next
		// item, that is a little early, never after a later packet.
		w.keyOverflow = append(w.keyOverflow, e)
		w.keyFlag.Store(true)
	}
}

// cleanKeyLines returns the valid lines of b, normalized, in a new slice.
func (w *Writer) cleanKeyLines(b []byte) []byte {
	var clean []byte
	n := 0
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, []byte{'\n'})
		n++
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if !appendKeyLine(&clean, line) {
			w.log.Warn("capture: ignoring malformed WireGuard key log line", "line", n)
		}
	}
	return clean
}

// appendKeyLine checks "NAME = base64-of-32-bytes" and appends it to dst
// with single spaces around '=' and a newline.
func appendKeyLine(dst *[]byte, line []byte) bool {
	name, val, ok := bytes.Cut(line, []byte{'='})
	if !ok {
		return false
	}
	name, val = bytes.TrimSpace(name), bytes.TrimSpace(val)
	known := false
	for _, n := range keyLogNames {
		known = known || n == string(name)
	}
	var raw [33]byte // one more than a key, to see a longer value
	if !known || base64.StdEncoding.DecodedLen(len(val)) > len(raw) {
		return false
	}
	n, err := base64.StdEncoding.Decode(raw[:], val)
	clear(raw[:])
	if err != nil || n != 32 {
		return false
	}
	*dst = append(*dst, name...)
	*dst = append(*dst, " = "...)
	*dst = append(*dst, val...)
	*dst = append(*dst, '\n')
	return true
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
// every file, and the session entries a new file may still need. Owned by
// the writer goroutine.
type keyLog struct {
	static   []byte
	sessions []*keyEntry // oldest first
}

// add records e and returns the lines to write now: the static lines not
// seen before, then e's session lines, in a new slice. e is consumed.
func (k *keyLog) add(e *keyEntry) []byte {
	var now, session []byte
	for b := e.lines; len(b) > 0; {
		i := bytes.IndexByte(b, '\n')
		line := b[:i+1]
		b = b[i+1:]
		switch {
		case !bytes.HasPrefix(line, []byte(staticKeyName+" ")):
			session = append(session, line...)
		case !containsLine(k.static, line):
			k.static = append(k.static, line...)
			now = append(now, line...)
		}
	}
	now = append(now, session...)
	e.wipe()
	if len(session) > 0 {
		k.sessions = append(k.sessions, &keyEntry{t: e.t, peer: e.peer, lines: session})
	}
	return now
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
