package tuntest

import (
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/peer-vpn/peer/tundev"
)

// Headroom is the offset tests read and write packets at: the tunnel's (the
// size of a WireGuard transport data header), which leaves room for the
// offload driver's virtio header (tundev.VirtioHeaderLen).
const Headroom = 16

// memoryQueue is the minimum length of Memory's inbound and outbound queues.
const memoryQueue = 256

// Memory is an in-memory tundev.Device for tests: packets put on Inject come
// out of Read; packets passed to Write appear on Written.
//
// Both directions are bounded queues: Inject blocks while the inbound queue is
// full and Write blocks while nobody drains Written, in both cases until Close.
type Memory struct {
	name  string
	mtu   int
	batch int

	in   chan []byte
	out  chan []byte
	done chan struct{}

	closeOnce sync.Once
	outMu     sync.RWMutex // held for reading while sending on out; Close takes it to close out
	outClosed bool         // guarded by outMu

	readMu  sync.Mutex
	pending []byte // a packet taken from in that did not fit the previous batch; guarded by readMu
}

var _ tundev.Device = (*Memory)(nil)

// NewMemory returns an in-memory device called name with the given MTU that
// moves at most batch packets per Read or Write (batch < 1 means 1).
func NewMemory(name string, mtu int, batch int) *Memory {
	if batch < 1 {
		batch = 1
	}
	q := max(memoryQueue, batch)
	return &Memory{
		name:  name,
		mtu:   mtu,
		batch: batch,
		in:    make(chan []byte, q),
		out:   make(chan []byte, q),
		done:  make(chan struct{}),
	}
}

// Inject queues a copy of pkt, as if the kernel routed pkt into the tunnel.
// It blocks while the queue is full, until Close; after Close it drops pkt.
func (m *Memory) Inject(pkt []byte) {
	select {
	case <-m.done:
		return
	default:
	}
	c := append([]byte(nil), pkt...)
	select {
	case m.in <- c:
	case <-m.done:
	}
}

// Written returns the channel of packets the node wrote (copies, in order).
// It is closed by Close once pending writers have returned.
func (m *Memory) Written() <-chan []byte { return m.out }

// Read implements tundev.Device. It blocks until at least one packet is
// queued or the device is closed, then returns as many queued packets as
// fit. A packet larger than its buffer is dropped with an error wrapping
// io.ErrShortBuffer.
func (m *Memory) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if err := checkBatch(len(bufs), len(sizes), offset); err != nil {
		return 0, err
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	m.readMu.Lock()
	defer m.readMu.Unlock()

	select {
	case <-m.done:
		return 0, fmt.Errorf("tuntest: read %s: %w", m.name, os.ErrClosed)
	default:
	}
	pkt := m.pending
	m.pending = nil
	if pkt == nil {
		select {
		case pkt = <-m.in:
		case <-m.done:
			return 0, fmt.Errorf("tuntest: read %s: %w", m.name, os.ErrClosed)
		}
	}
	limit := min(len(bufs), m.batch)
	n := 0
	for {
		buf := bufs[n]
		if err := checkOffset(buf, offset); err != nil {
			m.pending = pkt
			return n, err
		}
		if len(pkt) > len(buf)-offset {
			if n == 0 {
				return 0, fmt.Errorf("tuntest: read %s: packet of %d bytes dropped, buffer has %d after offset: %w",
					m.name, len(pkt), len(buf)-offset, io.ErrShortBuffer)
			}
			m.pending = pkt // let the next Read report or deliver it
			return n, nil
		}
		sizes[n] = copy(buf[offset:], pkt)
		n++
		if n == limit {
			return n, nil
		}
		select {
		case pkt = <-m.in:
		default:
			return n, nil
		}
	}
}

// Write implements tundev.Device: it queues a copy of each bufs[i][offset:] on
// Written, blocking while that queue is full until Close.
func (m *Memory) Write(bufs [][]byte, offset int) (int, error) {
	if err := checkBatch(len(bufs), len(bufs), offset); err != nil {
		return 0, err
	}
	m.outMu.RLock()
	defer m.outMu.RUnlock()
	for i, b := range bufs {
		if m.outClosed {
			return i, fmt.Errorf("tuntest: write %s: %w", m.name, os.ErrClosed)
		}
		if err := checkOffset(b, offset); err != nil {
			return i, err
		}
		c := append([]byte(nil), b[offset:]...)
		select {
		case m.out <- c:
		case <-m.done:
			return i, fmt.Errorf("tuntest: write %s: %w", m.name, os.ErrClosed)
		}
	}
	return len(bufs), nil
}

// BatchSize implements tundev.Device.
func (m *Memory) BatchSize() int { return m.batch }

// MTU implements tundev.Device.
func (m *Memory) MTU() int { return m.mtu }

// Name implements tundev.Device.
func (m *Memory) Name() string { return m.name }

// Driver implements tundev.Device; it returns "memory".
func (m *Memory) Driver() string { return tundev.DriverMemory }

// Close implements tundev.Device: it unblocks Read, Inject and Write, discards
// queued inbound packets, and closes the Written channel. It is idempotent.
func (m *Memory) Close() error {
	m.closeOnce.Do(func() {
		close(m.done)
		m.outMu.Lock()
		m.outClosed = true
		close(m.out)
		m.outMu.Unlock()
	})
	return nil
}

// checkBatch validates the arguments shared by Read and Write, as tundev's
// devices do.
func checkBatch(nbufs, nsizes, offset int) error {
	if offset < 0 {
		return fmt.Errorf("tuntest: negative offset %d", offset)
	}
	if nsizes < nbufs {
		return fmt.Errorf("tuntest: %d sizes for %d buffers", nsizes, nbufs)
	}
	return nil
}

// checkOffset reports an error if buf has no room after offset.
func checkOffset(buf []byte, offset int) error {
	if offset > len(buf) {
		return fmt.Errorf("tuntest: offset %d beyond buffer of %d bytes", offset, len(buf))
	}
	return nil
}
