package tunnel

import (
	"runtime"
	"sync"
)

// The AEAD work of a batch (up to 128 packets: a TSO super-packet split, or
// a GRO read) is spread over the cores. Packets keep their slots in the
// batch and the batch leaves only when every slot is done, so each peer's
// packets stay in order without any reordering stage.

// batchWork is a batch whose slots [lo, hi) can be processed independently.
type batchWork interface {
	work(lo, hi int)
}

type cryptoTask struct {
	w      batchWork
	lo, hi int
	done   *sync.WaitGroup
}

// cryptoPool is a fixed set of goroutines that take slices of batches.
type cryptoPool struct {
	tasks   chan cryptoTask
	workers int
	once    sync.Once
}

// minSlotsPerTask keeps tiny batches (a ping, a keepalive) on the calling
// goroutine: waking a worker costs more than sealing a few packets.
const minSlotsPerTask = 4

// newCryptoPool starts workers goroutines; 0 picks GOMAXPROCS-1, so that
// with the calling goroutine every core works on a large batch.
func newCryptoPool(workers int) *cryptoPool {
	if workers == 0 {
		workers = runtime.GOMAXPROCS(0) - 1
	}
	workers = max(workers, 0)
	c := &cryptoPool{tasks: make(chan cryptoTask, 4*workers+1), workers: workers}
	for i := 0; i < workers; i++ {
		go func() {
			for t := range c.tasks {
				t.w.work(t.lo, t.hi)
				t.done.Done()
			}
		}()
	}
	return c
}

// run processes slots [0, n) of w and returns when all are done; the caller
// does a share itself. wg is the batch's own WaitGroup (not allocated here).
func (c *cryptoPool) run(w batchWork, n int, wg *sync.WaitGroup) {
	parts := min(c.workers+1, n/minSlotsPerTask)
	if parts <= 1 {
		w.work(0, n)
		return
	}
	per := (n + parts - 1) / parts
	for lo := per; lo < n; lo += per {
		wg.Add(1)
		c.tasks <- cryptoTask{w: w, lo: lo, hi: min(n, lo+per), done: wg}
	}
	w.work(0, per)
	wg.Wait()
}

func (c *cryptoPool) close() { c.once.Do(func() { close(c.tasks) }) }
