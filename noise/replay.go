package noise

// Replay window geometry (RFC 6479): a ring of 64-bit blocks. One block is
// always being recycled, so the usable window is one block less than the
// ring.
const (
	replayBlockBits = 64
	replayRingSize  = 128 // blocks, a power of two
	// ReplayWindowSize is how far behind the highest accepted counter a
	// counter may be and still be accepted (if not seen before).
	ReplayWindowSize = (replayRingSize - 1) * replayBlockBits
)

// ReplayFilter is the RFC 6479 sliding anti-replay window over transport
// counters, covering ReplayWindowSize counters. The zero value is ready to
// use. It is not safe for concurrent use.
type ReplayFilter struct {
	last uint64 // highest counter accepted
	ring [replayRingSize]uint64
}

// Reset forgets all counters seen.
func (f *ReplayFilter) Reset() {
	f.last = 0
	clear(f.ring[:])
}

// ValidateCounter reports whether counter is acceptable and, if it is,
// records it as seen. It refuses a counter >= limit, one more than
// ReplayWindowSize behind the highest counter accepted so far, and one
// already seen.
func (f *ReplayFilter) ValidateCounter(counter, limit uint64) bool {
	if counter >= limit {
		return false
	}
	block := counter / replayBlockBits
	if counter > f.last {
		// Slide forward, clearing the blocks the window moves into.
		cur := f.last / replayBlockBits
		steps := min(block-cur, replayRingSize)
		for i := uint64(1); i <= steps; i++ {
			f.ring[(cur+i)%replayRingSize] = 0
		}
		f.last = counter
	} else if f.last-counter > ReplayWindowSize {
		return false
	}
	bit := uint64(1) << (counter % replayBlockBits)
	w := &f.ring[block%replayRingSize]
	if *w&bit != 0 {
		return false
	}
	*w |= bit
	return true
}
