package main

import (
	"bytes"
	"encoding/binary"
	"io"
	"testing"
	"time"

	"github.com/peer-vpn/peer/capture"
	"github.com/peer-vpn/peer/tundev/tuntest"
)

// stream is a pcapng stream of n packets as a live capture writes it.
func stream(t testing.TB, n int) []byte {
	var b bytes.Buffer
	w, err := capture.NewWriter(capture.Options{Sink: &b})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		w.Inner(time.Unix(int64(i), 0), capture.ToPeer, "beta", tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte{byte(i)}))
		time.Sleep(time.Millisecond) // no drop: the writer keeps up
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// blockTypes lists the block types of a little-endian pcapng stream.
func blockTypes(b []byte) []uint32 {
	var types []uint32
	for len(b) >= 12 {
		n := binary.LittleEndian.Uint32(b[4:])
		types = append(types, binary.LittleEndian.Uint32(b))
		b = b[n:]
	}
	return types
}

func TestCopyPackets(t *testing.T) {
	in := stream(t, 5)
	for _, tc := range []struct {
		count, want int
		enough      int // calls of enough
	}{
		{0, 5, 0},
		{3, 3, 1},
		{5, 5, 1},
		{9, 5, 0},
	} {
		var out bytes.Buffer
		calls := 0
		n, err := copyPackets(&out, bytes.NewReader(in), tc.count, func() { calls++ })
		if err != nil || n != tc.want || calls != tc.enough {
			t.Errorf("count %d: %d packets, %d calls of enough, %v; want %d, %d", tc.count, n, calls, err, tc.want, tc.enough)
		}
		types := blockTypes(out.Bytes())
		epbs := 0
		for _, typ := range types {
			if typ == blockEPB {
				epbs++
			}
		}
		if epbs != tc.want || types[0] != blockSHB || types[len(types)-1] != 5 {
			t.Errorf("count %d: blocks %v; want the header, %d packets and the statistics last", tc.count, types, tc.want)
		}
	}
	// A stream cut inside a block is an error; one cut between blocks is not.
	if _, err := copyPackets(io.Discard, bytes.NewReader(in[:len(in)-3]), 0, func() {}); err == nil {
		t.Error("a stream cut inside a block: no error")
	}
	if _, err := copyPackets(io.Discard, bytes.NewReader([]byte("not a pcapng stream at all")), 0, func() {}); err == nil {
		t.Error("garbage: no error")
	}
}

// FuzzCopyPackets: whatever the node sends, the client neither panics nor
// writes more than it read.
func FuzzCopyPackets(f *testing.F) {
	f.Add(stream(f, 2), 1)
	f.Add([]byte{0x0a, 0x0d, 0x0d, 0x0a, 12, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a}, 0)
	f.Fuzz(func(t *testing.T, b []byte, count int) {
		if count < 0 {
			count = -count
		}
		var out bytes.Buffer
		copyPackets(&out, bytes.NewReader(b), count%8, func() {})
		if out.Len() > len(b) {
			t.Fatalf("wrote %d bytes of %d", out.Len(), len(b))
		}
	})
}
