package tuntest

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"
)

// within fails the test if done is not closed before the guard expires. The
// guard only bounds a hang; no result depends on timing.
func within(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
	}
}

// headroom is the offset these tests read and write at.
const headroom = Headroom

func makeBufs(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

func TestMemoryRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		batch   int
		nbufs   int
		inject  int
		wantGot int // packets returned by the first Read
	}{
		{"one", 1, 4, 3, 1},
		{"batch limits", 2, 4, 3, 2},
		{"bufs limit", 8, 2, 3, 2},
		{"all queued", 8, 8, 3, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMemory("mem0", 1420, tt.batch)
			defer m.Close()
			for i := range tt.inject {
				m.Inject([]byte{byte(i), 0xaa, byte(i)})
			}
			bufs, sizes := makeBufs(tt.nbufs, headroom+100)
			got := 0
			for got < tt.inject {
				n, err := m.Read(bufs, sizes, headroom)
				if err != nil {
					t.Fatal(err)
				}
				if got == 0 && n != tt.wantGot {
					t.Fatalf("first Read = %d packets, want %d", n, tt.wantGot)
				}
				for i := range n {
					want := []byte{byte(got), 0xaa, byte(got)}
					if p := bufs[i][headroom : headroom+sizes[i]]; !bytes.Equal(p, want) {
						t.Fatalf("packet %d = %x, want %x", got, p, want)
					}
					got++
				}
			}

			out := [][]byte{
				append(make([]byte, headroom), 1, 2, 3),
				append(make([]byte, headroom), 4, 5),
			}
			n, err := m.Write(out, headroom)
			if err != nil || n != 2 {
				t.Fatalf("Write = %d, %v; want 2, nil", n, err)
			}
			out[0][headroom] = 99 // the written copy must not alias
			for i, want := range [][]byte{{1, 2, 3}, {4, 5}} {
				if p := <-m.Written(); !bytes.Equal(p, want) {
					t.Fatalf("written %d = %x, want %x", i, p, want)
				}
			}
		})
	}
}

func TestMemoryInjectCopies(t *testing.T) {
	m := NewMemory("mem0", 1420, 1)
	defer m.Close()
	p := []byte{1, 2, 3}
	m.Inject(p)
	p[0] = 9
	bufs, sizes := makeBufs(1, 10)
	if n, err := m.Read(bufs, sizes, 0); err != nil || n != 1 || !bytes.Equal(bufs[0][:sizes[0]], []byte{1, 2, 3}) {
		t.Fatalf("Read = %d, %v, %x", n, err, bufs[0][:sizes[0]])
	}
}

func TestMemoryShortBuffer(t *testing.T) {
	m := NewMemory("mem0", 1420, 4)
	defer m.Close()
	m.Inject([]byte{1})
	m.Inject(make([]byte, 50)) // too big for its buffer
	m.Inject([]byte{2})
	bufs, sizes := makeBufs(4, 20)

	// First Read delivers the small packet and keeps the big one pending.
	n, err := m.Read(bufs, sizes, 4)
	if err != nil || n != 1 || sizes[0] != 1 {
		t.Fatalf("Read = %d, %v (size %d); want 1 packet", n, err, sizes[0])
	}
	// Second Read reports the big packet and drops it.
	if _, err := m.Read(bufs, sizes, 4); !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("Read err = %v, want io.ErrShortBuffer", err)
	}
	// Third Read carries on with the queue.
	n, err = m.Read(bufs, sizes, 4)
	if err != nil || n != 1 || bufs[0][4] != 2 {
		t.Fatalf("Read = %d, %v; want the packet after the dropped one", n, err)
	}
}

func TestMemoryBadArgs(t *testing.T) {
	m := NewMemory("mem0", 1420, 4)
	defer m.Close()
	m.Inject([]byte{1})
	tests := []struct {
		name   string
		bufs   [][]byte
		sizes  []int
		offset int
	}{
		{"negative offset", [][]byte{make([]byte, 10)}, make([]int, 1), -1},
		{"few sizes", [][]byte{make([]byte, 10), make([]byte, 10)}, make([]int, 1), 0},
		{"offset past buffer", [][]byte{make([]byte, 10)}, make([]int, 1), 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := m.Read(tt.bufs, tt.sizes, tt.offset); err == nil {
				t.Error("Read: no error")
			}
			if _, err := m.Write(tt.bufs, tt.offset); err == nil && tt.name != "few sizes" {
				t.Error("Write: no error")
			}
		})
	}
	// The queued packet survived the rejected calls.
	bufs, sizes := makeBufs(1, 10)
	if n, err := m.Read(bufs, sizes, 0); err != nil || n != 1 || bufs[0][0] != 1 {
		t.Fatalf("Read = %d, %v", n, err)
	}
	if n, err := m.Read(nil, nil, 0); n != 0 || err != nil {
		t.Fatalf("empty Read = %d, %v", n, err)
	}
}

func TestMemoryCloseUnblocks(t *testing.T) {
	t.Run("Read", func(t *testing.T) {
		m := NewMemory("mem0", 1420, 1)
		done := make(chan struct{})
		var err error
		go func() {
			defer close(done)
			bufs, sizes := makeBufs(1, 100)
			_, err = m.Read(bufs, sizes, 0)
		}()
		m.Close()
		within(t, done, "Read")
		if !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read err = %v, want os.ErrClosed", err)
		}
	})
	t.Run("Inject", func(t *testing.T) {
		m := NewMemory("mem0", 1420, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range cap(m.in) + 1 { // the last one blocks
				m.Inject([]byte{1})
			}
		}()
		for len(m.in) < cap(m.in) {
			time.Sleep(time.Millisecond) // wait for the queue to fill
		}
		m.Close()
		within(t, done, "Inject")
		m.Inject([]byte{1}) // after Close: dropped, does not block
	})
	t.Run("Write", func(t *testing.T) {
		m := NewMemory("mem0", 1420, 1)
		done := make(chan struct{})
		var n int
		var err error
		total := cap(m.out) + 1
		go func() {
			defer close(done)
			bufs := make([][]byte, total)
			for i := range bufs {
				bufs[i] = []byte{byte(i)}
			}
			n, err = m.Write(bufs, 0)
		}()
		for len(m.out) < cap(m.out) {
			time.Sleep(time.Millisecond)
		}
		m.Close()
		within(t, done, "Write")
		if !errors.Is(err, os.ErrClosed) || n != total-1 {
			t.Fatalf("Write = %d, %v; want %d, os.ErrClosed", n, err, total-1)
		}
		// Written is closed after the queued packets.
		count := 0
		for range m.Written() {
			count++
		}
		if count != total-1 {
			t.Fatalf("drained %d packets, want %d", count, total-1)
		}
		if _, err := m.Write([][]byte{{1}}, 0); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Write after Close = %v", err)
		}
	})
	t.Run("Read after Close", func(t *testing.T) {
		m := NewMemory("mem0", 1420, 1)
		m.Inject([]byte{1})
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal("second Close:", err)
		}
		bufs, sizes := makeBufs(1, 100)
		if _, err := m.Read(bufs, sizes, 0); !errors.Is(err, os.ErrClosed) {
			t.Fatalf("Read err = %v, want os.ErrClosed", err)
		}
	})
}

func TestMemoryAccessors(t *testing.T) {
	m := NewMemory("mem7", 1380, 0)
	defer m.Close()
	if m.Name() != "mem7" || m.MTU() != 1380 || m.BatchSize() != 1 || m.Driver() != "memory" {
		t.Fatalf("got %q %d %d %q", m.Name(), m.MTU(), m.BatchSize(), m.Driver())
	}
}
