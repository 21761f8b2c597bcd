package capture

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// keyLine is a valid key log line whose key is made of byte b.
func keyLine(name string, b byte) string {
	return name + " = " + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) + "\n"
}

// key is a key made of byte b.
func key(b byte) (k [32]byte) {
	copy(k[:], bytes.Repeat([]byte{b}, 32))
	return k
}

// handshakeKeys is the keys of one handshake, with a preshared key.
func handshakeKeys(b byte) HandshakeKeys {
	return HandshakeKeys{RemoteStatic: key(b), LocalEphemeral: key(b + 1), Preshared: key(b + 2)}
}

// session is the key lines the Writer writes for handshakeKeys(b).
func session(b byte) string {
	return keyLine("REMOTE_STATIC_PUBLIC_KEY", b) + keyLine("LOCAL_EPHEMERAL_PRIVATE_KEY", b+1) + keyLine("PRESHARED_KEY", b+2)
}

// TestKeyLogFormat: the lines are those of Wireshark's wg.keylog_file,
// the preshared key only when there is one, right after the ephemeral key.
func TestKeyLogFormat(t *testing.T) {
	for _, tc := range []struct {
		name string
		give func(w *Writer)
		want []string
	}{
		{"static", func(w *Writer) { w.StaticKey(t0, key(0xee)) }, []string{keyLine("LOCAL_STATIC_PRIVATE_KEY", 0xee)}},
		{"static twice", func(w *Writer) { w.StaticKey(t0, key(0xee)); w.StaticKey(t0, key(0xee)) },
			[]string{keyLine("LOCAL_STATIC_PRIVATE_KEY", 0xee)}},
		{"handshake", func(w *Writer) { w.HandshakeKeys(t0, "beta", handshakeKeys(1)) }, []string{session(1)}},
		{"handshake without a preshared key", func(w *Writer) {
			w.HandshakeKeys(t0, "beta", HandshakeKeys{RemoteStatic: key(1), LocalEphemeral: key(2)})
		}, []string{keyLine("REMOTE_STATIC_PUBLIC_KEY", 1) + keyLine("LOCAL_EPHEMERAL_PRIVATE_KEY", 2)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs := newMemFS(-1)
			w, err := newWriter(Options{Path: "f.pcapng", Outer: true, Keys: true}, fs)
			if err != nil {
				t.Fatal(err)
			}
			w.Inner(t0, ToPeer, "beta", mustPacket(t, "icmp4.pcap", 0))
			tc.give(w)
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := secrets(t, fs.file(t, "f.pcapng")); !slices.Equal(got, tc.want) {
				t.Errorf("secrets %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWriterKeysInOrder: key lines handed over after some packets are
// written after those packets, even when the writer goroutine is behind
// (the cause of TestWriterRoundTrip's occasional "secrets block after 0
// packets": the key lines used to jump the queue to the next packet
// written, before packets queued ahead of them).
func TestWriterKeysInOrder(t *testing.T) {
	fs := newMemFS(-1)
	fs.entered, fs.gate = make(chan struct{}), make(chan struct{})
	w, err := newWriter(Options{Path: "k.pcapng", Outer: true, Keys: true}, fs)
	if err != nil {
		t.Fatal(err)
	}
	pkt := mustPacket(t, "icmp4.pcap", 0)
	w.Inner(t0, ToPeer, "beta", pkt)
	<-fs.entered // the writer is stuck on the first packet: the next ones queue
	for i := 1; i < 5; i++ {
		w.Inner(t0.Add(time.Duration(i)), ToPeer, "beta", pkt)
	}
	w.HandshakeKeys(t0, "beta", handshakeKeys(1))
	w.Inner(t0.Add(9), ToPeer, "beta", pkt)
	close(fs.gate)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	payloads, before := secrets(t, fs.file(t, "k.pcapng"))
	if len(payloads) != 1 || payloads[0] != session(1) {
		t.Errorf("secrets %q", payloads)
	}
	if before != 5 {
		t.Errorf("secrets block after %d packets, want 5", before)
	}
}

// TestKeyLogCarry checks what a new file starts with: the static key once,
// and only the sessions still alive at the packet that opens it.
func TestKeyLogCarry(t *testing.T) {
	static := keyLine("LOCAL_STATIC_PRIVATE_KEY", 0xee)
	type give struct {
		at    time.Duration // after t0
		peer  string        // "": the static key
		lines string
	}
	for _, tc := range []struct {
		name    string
		give    []give
		pruneAt time.Duration
		want    string
	}{
		{"static alone", []give{{0, "", static}, {time.Hour, "", static}}, 2 * time.Hour, static},
		{"static given with a session, twice", []give{{0, "", static}, {0, "beta", session(1)}, {time.Second, "", static}, {time.Second, "beta", session(4)}},
			time.Minute, static + session(1) + session(4)},
		{"expired sessions go", []give{{0, "", static}, {0, "beta", session(1)}, {5 * time.Minute, "gamma", session(4)}},
			9*time.Minute + time.Second, static + session(4)},
		{"a session is alive for the whole lifetime", []give{{0, "beta", session(1)}}, 9 * time.Minute, session(1)},
		{"four newest per peer", []give{
			{0, "beta", session(1)}, {1, "beta", session(10)}, {2, "gamma", session(20)}, {3, "beta", session(30)},
			{4, "beta", session(40)}, {5, "beta", session(50)},
		}, time.Second, session(10) + session(20) + session(30) + session(40) + session(50)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k keyLog
			for _, g := range tc.give {
				e := &keyEntry{t: t0.Add(g.at), peer: g.peer, static: g.peer == "", lines: []byte(g.lines)}
				now := string(k.add(e))
				if g.peer == "" && e.lines != nil {
					t.Error("add kept the static entry's lines instead of consuming them")
				}
				if now != g.lines && (now != "" || g.peer != "") {
					t.Errorf("add returned %q to write now, want %q", now, g.lines)
				}
			}
			k.prune(t0.Add(tc.pruneAt), DefaultKeyLifetime, DefaultKeysPerPeer)
			if got := string(k.carried()); got != tc.want {
				t.Errorf("carried:\n%s\nwant:\n%s", got, tc.want)
			}
			kept := append([][]byte{k.static}, nil)
			for _, e := range k.sessions {
				kept = append(kept, e.lines)
			}
			k.wipe()
			for _, b := range kept {
				if len(bytes.Trim(b, "\x00")) != 0 {
					t.Errorf("wipe left %q", b)
				}
			}
			if len(k.carried()) != 0 {
				t.Error("key lines left after wipe")
			}
		})
	}
}

// TestWriterRotationCarriesLiveKeys: over many handshakes, each rotated file
// starts with the static key and the live sessions only, so the key log no
// longer grows with the capture.
func TestWriterRotationCarriesLiveKeys(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "live.pcapng")
	w, err := NewWriter(Options{Path: path, Outer: true, Keys: true, MaxSize: 4000})
	if err != nil {
		t.Fatal(err)
	}
	static := keyLine("LOCAL_STATIC_PRIVATE_KEY", 0xee)
	w.StaticKey(t0, key(0xee))
	pkt := mustPacket(t, "tcp4.pcap", 3)
	// A handshake with beta every 2 minutes for an hour, one with gamma at
	// the start only, packets in between.
	w.HandshakeKeys(t0, "gamma", handshakeKeys(200))
	at := t0
	for i := 0; i < 30; i++ {
		w.HandshakeKeys(at, "beta", handshakeKeys(byte(i*3)))
		for j := 0; j < 10; j++ {
			at = at.Add(12 * time.Second)
			w.Inner(at, ToPeer, "beta", pkt)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Dropped() != 0 {
		t.Fatalf("%d dropped", w.Dropped())
	}
	files, _ := filepath.Glob(path + "*")
	if len(files) < 10 {
		t.Fatalf("only %d files", len(files))
	}
	gammaSeen, gammaGone := false, false
	for _, f := range files[1:] { // rotated files
		payloads, _ := secrets(t, f)
		if len(payloads) == 0 || !strings.HasPrefix(payloads[0], static) {
			t.Errorf("%s: does not start with the static key: %q", f, payloads)
			continue
		}
		first := readNg(t, f).packets[0].ci.Timestamp
		gamma := strings.Contains(payloads[0], session(200))
		if alive := first.Sub(t0) <= DefaultKeyLifetime; gamma != alive {
			t.Errorf("%s opens at t0+%v and carries gamma's session of t0: %v", f, first.Sub(t0), gamma)
		}
		gammaSeen, gammaGone = gammaSeen || gamma, gammaGone || !gamma
		beta := strings.Count(payloads[0], "LOCAL_EPHEMERAL_PRIVATE_KEY")
		if gamma {
			beta--
		}
		if beta > DefaultKeysPerPeer || beta == 0 {
			t.Errorf("%s: carries %d sessions of beta, want 1 to %d", f, beta, DefaultKeysPerPeer)
		}
	}
	if !gammaSeen || !gammaGone {
		t.Errorf("gamma's session carried in some files: %v, in none: %v; want both", gammaSeen, gammaGone)
	}
}

// TestWriterRotationWithLargeKeyLog: when the key lines alone exceed
// MaxSize, files still get packets enough, instead of rotating at every
// packet.
func TestWriterRotationWithLargeKeyLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "big.pcapng")
	const maxSize = 2000
	w, err := NewWriter(Options{Path: path, Outer: true, Keys: true, MaxSize: maxSize})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 40; i++ { // 40 live sessions: about 6 KB of key lines
		w.HandshakeKeys(t0, fmt.Sprintf("peer%d", i), handshakeKeys(byte(i)))
	}
	pkt := mustPacket(t, "icmp4.pcap", 0)
	const n = 100
	for i := 0; i < n; i++ {
		w.Inner(t0.Add(time.Duration(i)*time.Millisecond), ToPeer, "beta", pkt)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(path + "*")
	per := epbSize(len(pkt))
	// Each file but the last gets packets until one more would pass
	// MaxSize/2 bytes of packets.
	if want := n/int(maxSize/2/per) + 1; len(files) > want {
		t.Errorf("%d files for %d packets of %d bytes, want at most %d", len(files), n, per, want)
	}
	total := 0
	for _, f := range files {
		rb := readNg(t, f)
		total += len(rb.packets)
		if int64(len(rb.packets)+1)*per <= maxSize/2 && f != path+fmt.Sprintf(".%d", len(files)-1) {
			t.Errorf("%s: only %d packets", f, len(rb.packets))
		}
	}
	if total != n {
		t.Errorf("%d packets in the files, want %d", total, n)
	}
}

// TestWriterKeysAfterClose: once the capture ends, the key calls write
// nothing and the writer keeps no key.
func TestWriterKeysAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.pcapng")
	w, err := NewWriter(Options{Path: path, Outer: true, Keys: true})
	if err != nil {
		t.Fatal(err)
	}
	w.StaticKey(t0, key(0xee))
	w.HandshakeKeys(t0, "beta", handshakeKeys(1))
	w.Inner(t0, ToPeer, "beta", mustPacket(t, "icmp4.pcap", 0))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.StaticKey(t0, key(0xef))
	w.HandshakeKeys(t0, "beta", handshakeKeys(7))
	if len(w.keys.static) != 0 || len(w.keys.sessions) != 0 || len(w.keyOverflow) != 0 || len(w.q) != 0 {
		t.Errorf("key material kept after Close: %d static bytes, %d sessions", len(w.keys.static), len(w.keys.sessions))
	}
	payloads, _ := secrets(t, path)
	// Given before the first packet: the file starts with them, in one block.
	if len(payloads) != 1 || payloads[0] != keyLine("LOCAL_STATIC_PRIVATE_KEY", 0xee)+session(1) {
		t.Errorf("secrets %q", payloads)
	}
}

// TestWriterKeyLogBounded: without rotation too, the writer keeps only the
// sessions that may still be in use, not one entry per handshake forever.
func TestWriterKeyLogBounded(t *testing.T) {
	w, err := newWriter(Options{Path: "b.pcapng", Outer: true, Keys: true}, newMemFS(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	const n = 200
	for i := 0; i < n; i++ { // a handshake every 5 s, as retries to a peer that is down
		w.HandshakeKeys(t0.Add(time.Duration(i)*5*time.Second), fmt.Sprintf("peer%d", i%3), handshakeKeys(byte(i)))
	}
	for w.handled.Load() < n {
		runtime.Gosched()
	}
	// The writer goroutine is idle now: the atomic load above orders this
	// read after its last write.
	if got := len(w.keys.sessions); got > 3*DefaultKeysPerPeer {
		t.Errorf("%d sessions kept for 3 peers, want at most %d", got, 3*DefaultKeysPerPeer)
	}
}
