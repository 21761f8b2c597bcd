package tunnel

import (
	"crypto/rand"
	"encoding/binary"
	"sync"

	"github.com/peer-vpn/peer/noise"
)

// indexEntry is what a receiver index names: a handshake in progress of a
// peer (keypair nil) or one of its sessions.
type indexEntry struct {
	peer    *Peer
	keypair *noise.Keypair
}

// indexTable maps our random 32-bit session indices to their owners.
type indexTable struct {
	mu sync.RWMutex
	m  map[uint32]indexEntry
}

func (t *indexTable) init() { t.m = make(map[uint32]indexEntry) }

// newIndex allocates an unused random index for p.
func (t *indexTable) newIndex(p *Peer) uint32 {
	var b [4]byte
	for {
		rand.Read(b[:])
		idx := binary.LittleEndian.Uint32(b[:])
		t.mu.Lock()
		if _, used := t.m[idx]; !used && idx != 0 { // 0 means "none" to noise
			t.m[idx] = indexEntry{peer: p}
			t.mu.Unlock()
			return idx
		}
		t.mu.Unlock()
	}
}

// setKeypair binds an allocated index to a session.
func (t *indexTable) setKeypair(idx uint32, p *Peer, kp *noise.Keypair) {
	t.mu.Lock()
	t.m[idx] = indexEntry{peer: p, keypair: kp}
	t.mu.Unlock()
}

func (t *indexTable) lookup(idx uint32) (indexEntry, bool) {
	t.mu.RLock()
	e, ok := t.m[idx]
	t.mu.RUnlock()
	return e, ok
}

func (t *indexTable) remove(idx uint32) {
	t.mu.Lock()
	delete(t.m, idx)
	t.mu.Unlock()
}
