package tunnel

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// The AEAD work of a batch (up to 128 packets: a TSO super-packet split, or
// a GRO read) is spread over the cores. Packets keep their slots in the
// batch and the batch leaves only when every slot is done, so each peer's
// packets stay in order without any reordering stage.
//
// Helpers are offered the batch, never owed it: the calling goroutine claims
// chunks of slots from a shared counter, and so does any helper that picks
// the batch up. When the caller runs out of chunks it takes back the offer
// from helpers that never started (busy cores: the other node, the
// application, the kernel), so it never sits waiting for a goroutine that
// is not running. On an idle machine the helpers share the batch; on a
// saturated one the caller does it alone at no extra cost.

// batchWork is a batch whose slots [lo, hi) can be processed independently.
type batchWork interface {
	work(lo, hi int)
}

// chunkSlots is how many slots one claim takes: enough to amortise the
// atomic, small enough to share a 45-packet super-packet.
const chunkSlots = 8

// cryptoJob is one batch on offer. Each forwarding loop owns one.
type cryptoJob struct {
	w    batchWork
	n    int
	next atomic.Int64
	wg   sync.WaitGroup // helpers that took the job
}

// drain claims and processes chunks until none are left.
func (j *cryptoJob) drain() {
	for {
		lo := int(j.next.Add(chunkSlots)) - chunkSlots
		if lo >= j.n {
			return
		}
		j.w.work(lo, min(lo+chunkSlots, j.n))
	}
}

// cryptoPool is the set of helper goroutines of one forwarding loop. Each
// helper has a one-slot mailbox that only its loop writes to, so an offer
// can be taken back.
type cryptoPool struct {
	helpers []chan *cryptoJob
	once    sync.Once
}

// newCryptoPool starts workers helpers (negative: none). 0 picks
// GOMAXPROCS-2: one core is the calling loop's and one is left to the kernel
// and the application, whose work drives ours. On 2 cores that is no
// helper: measured with both ends on one 2-core machine, a helper cost ~10%
// of throughput by preempting the other side of the pipeline, while the two
// forwarding loops already keep both cores busy.
func newCryptoPool(workers int) *cryptoPool {
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0) - 2
	}
	c := &cryptoPool{}
	for i := 0; i < workers; i++ {
		ch := make(chan *cryptoJob, 1)
		c.helpers = append(c.helpers, ch)
		go func() {
			for j := range ch {
				j.drain()
				j.wg.Done()
			}
		}()
	}
	return c
}

// run processes slots [0, n) of w and returns when all are done.
func (c *cryptoPool) run(j *cryptoJob, w batchWork, n int) {
	j.w, j.n = w, n
	j.next.Store(0)
	offers := min(len(c.helpers), (n-1)/chunkSlots)
	for i := 0; i < offers; i++ {
		j.wg.Add(1)
		c.helpers[i] <- j // never blocks: the mailbox was emptied last time
	}
	j.drain()
	for i := 0; i < offers; i++ {
		select {
		case <-c.helpers[i]: // not started: take the offer back
			j.wg.Done()
		default: // started: it finishes its chunk soon
		}
	}
	j.wg.Wait()
}

func (c *cryptoPool) close() {
	c.once.Do(func() {
		for _, ch := range c.helpers {
			close(ch)
		}
	})
}
