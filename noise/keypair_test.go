package noise

import (
	"bytes"
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/peer-vpn/peer/keys"
)

func testKeypairs(t testing.TB) (ka, kb *Keypair) {
	t.Helper()
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	return p.handshake(t, t0, 0x01020304, 0x0a0b0c0d)
}

func TestSealLayout(t *testing.T) {
	ka, kb := testKeypairs(t)
	buf := make([]byte, 100)
	n := ka.Seal(buf, []byte("0123456789abcdef"), 0x1122334455667788)
	if n != 16+MessageTransportOverhead {
		t.Fatalf("Seal = %d", n)
	}
	want := []byte{4, 0, 0, 0, 0x0d, 0x0c, 0x0b, 0x0a, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11}
	if !bytes.Equal(buf[:16], want) {
		t.Fatalf("header % x, want % x", buf[:16], want)
	}
	r, c, ok := ParseTransportHeader(buf[:n])
	if !ok || r != kb.LocalIndex || c != 0x1122334455667788 {
		t.Fatalf("ParseTransportHeader = %x %x %v", r, c, ok)
	}
}

func TestSealOpenInPlace(t *testing.T) {
	ka, kb := testKeypairs(t)
	for _, size := range []int{0, 1, 15, 16, 100, 1420} {
		buf := make([]byte, MessageTransportOverhead+size)
		payload := bytes.Repeat([]byte{byte(size)}, size)
		copy(buf[MessageTransportHeaderSize:], payload)
		c, _ := ka.NextCounter()
		n := ka.Seal(buf, buf[MessageTransportHeaderSize:][:size], c)
		if n != len(buf) {
			t.Fatalf("size %d: Seal = %d", size, n)
		}
		if size > 0 && bytes.Equal(buf[16:16+size], payload) {
			t.Fatalf("size %d: not encrypted", size)
		}
		msg := buf[:n]
		header := append([]byte(nil), msg[:16]...)
		pt, gc, err := kb.Open(msg[MessageTransportHeaderSize:][:0], msg)
		if err != nil || gc != c || !bytes.Equal(pt, payload) {
			t.Fatalf("size %d: Open = %v %d %v", size, len(pt), gc, err)
		}
		if !bytes.Equal(msg[:16], header) {
			t.Fatalf("size %d: Open left the header changed", size)
		}
	}
}

func TestSealOpenZeroAllocs(t *testing.T) {
	ka, kb := testKeypairs(t)
	buf := make([]byte, MessageTransportOverhead+1420)
	var c uint64
	allocs := testing.AllocsPerRun(200, func() {
		n := ka.Seal(buf, buf[MessageTransportHeaderSize:][:1420], c)
		if _, _, err := kb.Open(buf[MessageTransportHeaderSize:][:0], buf[:n]); err != nil {
			t.Fatal(err)
		}
		c++
	})
	if allocs != 0 {
		t.Fatalf("Seal+Open allocate %.1f times per packet", allocs)
	}
	// The failure path does not allocate either.
	allocs = testing.AllocsPerRun(100, func() {
		n := ka.Seal(buf, buf[MessageTransportHeaderSize:][:1420], c)
		buf[n-1] ^= 1
		if _, _, err := kb.Open(buf[MessageTransportHeaderSize:][:0], buf[:n]); err == nil {
			t.Fatal("tampered packet opened")
		}
	})
	if allocs != 0 {
		t.Fatalf("failed Open allocates %.1f times", allocs)
	}
}

func TestOpenRefusals(t *testing.T) {
	ka, kb := testKeypairs(t)
	kc, _ := testKeypairs(t) // another session with the same indices
	kc.LocalIndex = kb.LocalIndex
	seal := func(k *Keypair, c uint64) []byte {
		buf := make([]byte, 64)
		return buf[:k.Seal(buf, []byte("payload"), c)]
	}
	good := seal(ka, 5)
	mutate := func(f func(m []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	for _, tc := range []struct {
		name string
		k    *Keypair
		msg  []byte
		want error
	}{
		{"short", kb, good[:MessageKeepaliveSize-1], ErrTransportMessage},
		{"empty", kb, nil, ErrTransportMessage},
		{"wrong type", kb, mutate(func(m []byte) []byte { m[0] = 3; return m }), ErrTransportMessage},
		{"reserved bytes", kb, mutate(func(m []byte) []byte { m[2] = 1; return m }), ErrTransportMessage},
		{"wrong receiver", kb, mutate(func(m []byte) []byte { m[4]++; return m }), ErrTransportMessage},
		{"counter changed", kb, mutate(func(m []byte) []byte { m[8]++; return m }), ErrDecrypt},
		{"ciphertext changed", kb, mutate(func(m []byte) []byte { m[17] ^= 0x80; return m }), ErrDecrypt},
		{"tag changed", kb, mutate(func(m []byte) []byte { m[len(m)-1] ^= 1; return m }), ErrDecrypt},
		{"truncated", kb, good[:len(good)-1], ErrDecrypt},
		{"other session", kc, good, ErrDecrypt},
		{"sender's own key", ka, mutate(func(m []byte) []byte { binary.LittleEndian.PutUint32(m[4:], ka.LocalIndex); return m }), ErrDecrypt},
		{"counter limit", kb, mutate(func(m []byte) []byte { binary.LittleEndian.PutUint64(m[8:], RejectAfterMessages); return m }), ErrCounterLimit},
	} {
		if _, _, err := tc.k.Open(nil, tc.msg); !errors.Is(err, tc.want) {
			t.Errorf("%s: Open error %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, _, err := kb.Open(nil, good); err != nil {
		t.Fatalf("genuine message refused after failures: %v", err)
	}
}

func TestCountersAndLimits(t *testing.T) {
	ka, _ := testKeypairs(t)
	for i := uint64(0); i < 3; i++ {
		if c, ok := ka.NextCounter(); !ok || c != i {
			t.Fatalf("NextCounter = %d %v, want %d", c, ok, i)
		}
	}
	if ka.SendCount() != 3 {
		t.Fatalf("SendCount = %d", ka.SendCount())
	}
	ka.sendCounter.Store(RejectAfterMessages - 1)
	if c, ok := ka.NextCounter(); !ok || c != RejectAfterMessages-1 {
		t.Fatalf("last counter = %d %v", c, ok)
	}
	for range 3 {
		if _, ok := ka.NextCounter(); ok {
			t.Fatal("NextCounter beyond RejectAfterMessages")
		}
	}
	if ka.SendCount() != RejectAfterMessages {
		t.Fatalf("SendCount = %d", ka.SendCount())
	}
	buf := make([]byte, 64)
	if n := ka.Seal(buf, []byte("x"), RejectAfterMessages); n != 0 {
		t.Fatal("Seal at RejectAfterMessages")
	}
	if n := ka.Seal(buf[:MessageTransportOverhead], []byte("x"), 1); n != 0 {
		t.Fatal("Seal into too small a buffer")
	}
}

func TestZero(t *testing.T) {
	ka, kb := testKeypairs(t)
	buf := make([]byte, 64)
	n := ka.Seal(buf, []byte("before"), 1)
	kb.Zero()
	if _, _, err := kb.Open(nil, buf[:n]); !errors.Is(err, ErrKeypairZeroed) {
		t.Fatalf("Open after Zero: %v", err)
	}
	ka.Zero()
	if n := ka.Seal(buf, []byte("after"), 2); n != 0 {
		t.Fatal("Seal after Zero")
	}
	if _, ok := ka.NextCounter(); ok {
		t.Fatal("NextCounter after Zero")
	}
}

func TestKeypairConcurrent(t *testing.T) {
	ka, kb := testKeypairs(t)
	const workers, per = 4, 200
	var wg sync.WaitGroup
	accepted := make(chan uint64, workers*per)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 128)
			for range per {
				c, ok := ka.NextCounter()
				if !ok {
					t.Error("NextCounter refused")
					return
				}
				n := ka.Seal(buf, []byte("concurrent"), c)
				_, gc, err := kb.Open(buf[16:16], buf[:n])
				if err != nil {
					t.Error(err)
					return
				}
				if kb.CheckReplay(gc) {
					accepted <- gc
				}
			}
		}()
	}
	wg.Wait()
	close(accepted)
	seen := map[uint64]bool{}
	for c := range accepted {
		if seen[c] {
			t.Fatalf("counter %d used twice", c)
		}
		seen[c] = true
	}
	if len(seen) != workers*per {
		t.Fatalf("%d distinct counters accepted, want %d", len(seen), workers*per)
	}
}

func BenchmarkSeal1420(b *testing.B) {
	ka, _ := testKeypairs(b)
	buf := make([]byte, MessageTransportOverhead+1420)
	b.SetBytes(1420)
	b.ReportAllocs()
	var c uint64
	for b.Loop() {
		ka.Seal(buf, buf[MessageTransportHeaderSize:][:1420], c)
		c++
	}
}

func BenchmarkOpen1420(b *testing.B) {
	ka, kb := testKeypairs(b)
	msg := make([]byte, MessageTransportOverhead+1420)
	n := ka.Seal(msg, make([]byte, 1420), 7)
	out := make([]byte, 1420)
	b.SetBytes(1420)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := kb.Open(out, msg[:n]); err != nil {
			b.Fatal(err)
		}
	}
}
