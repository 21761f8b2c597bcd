package capture

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a bytes.Buffer safe for the logger goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n")
}

// wait waits until n lines have been written (the writer goroutine runs on
// its own schedule; nothing here depends on how long it takes).
func (l *lockedBuffer) wait(t *testing.T, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		l.mu.Lock()
		got := bytes.Count(l.b.Bytes(), []byte{'\n'})
		l.mu.Unlock()
		if got >= n {
			return
		}
	}
	t.Fatalf("fewer than %d lines written", n)
}

var t0 = time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)

func TestLoggerRateLimit(t *testing.T) {
	pkt := mustPacket(t, "icmp4.pcap", 0)
	var out lockedBuffer
	l := NewLogger(&out, 10, 5) // 10 lines/s, bursts of 5
	for i := 0; i < 20; i++ {
		l.Log(t0, ToPeer, "beta", pkt)
	}
	if got := l.Suppressed(); got != 15 {
		t.Errorf("after a burst of 20: suppressed %d, want 15", got)
	}
	out.wait(t, 5) // the queue holds one burst; let the writer empty it
	// Half a second refills 5 tokens (capped at the burst). The first line
	// carries the report of the 15 suppressed lines.
	t1 := t0.Add(500 * time.Millisecond)
	for i := 0; i < 6; i++ {
		l.Log(t1, FromPeer, "beta", pkt)
	}
	out.wait(t, 11)
	// 100 ms: one token; the notice waits for a full second since the last.
	t2 := t1.Add(100 * time.Millisecond)
	l.Log(t2, FromPeer, "beta", pkt)
	l.Log(t2, FromPeer, "beta", pkt)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l.Log(t2, ToPeer, "beta", pkt) // after Close: only counted
	if got := l.Suppressed(); got != 15+1+1+1 {
		t.Errorf("suppressed %d, want 18", got)
	}

	lines := out.lines()
	want := []string{
		"12:00:00.000000 tun→beta IPv4 10.99.0.1 > 10.99.0.2 ICMP echo-request id=",
		"12:00:00.000000 tun→beta", "12:00:00.000000 tun→beta", "12:00:00.000000 tun→beta", "12:00:00.000000 tun→beta",
		"12:00:00.500000 ... 15 packet lines suppressed",
		"12:00:00.500000 beta→tun IPv4 10.99.0.1 > 10.99.0.2 ICMP echo-request",
		"12:00:00.500000 beta→tun", "12:00:00.500000 beta→tun", "12:00:00.500000 beta→tun", "12:00:00.500000 beta→tun",
		"12:00:00.600000 beta→tun",
		"12:00:00.600000 ... 2 packet lines suppressed",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), strings.Join(lines, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], want[i])
		}
	}
}

// gateWriter blocks every Write until the gate is opened, and says when the
// first Write started.
type gateWriter struct {
	entered chan struct{}
	gate    chan struct{}
	once    sync.Once
	out     lockedBuffer
}

func newGateWriter() *gateWriter {
	return &gateWriter{entered: make(chan struct{}), gate: make(chan struct{})}
}

func (g *gateWriter) Write(p []byte) (int, error) {
	g.once.Do(func() { close(g.entered) })
	<-g.gate
	return g.out.Write(p)
}

func TestLoggerNeverBlocks(t *testing.T) {
	pkt := mustPacket(t, "tcp4.pcap", 0)
	g := newGateWriter()
	l := NewLogger(g, 1000, 4) // queue of 4 lines
	l.Log(t0, ToPeer, "beta", pkt)
	<-g.entered // the writer goroutine is stuck in Write with line 1
	for i := 1; i < 20; i++ {
		l.Log(t0.Add(time.Duration(i)*time.Second), ToPeer, "beta", pkt)
	}
	if got := l.Suppressed(); got != 15 {
		t.Errorf("suppressed %d with a stuck writer, want 15 (1 writing + 4 queued of 20)", got)
	}
	close(g.gate)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := g.out.lines()
	if len(lines) != 6 || !strings.HasSuffix(lines[5], " ... 15 packet lines suppressed") {
		t.Errorf("got lines:\n%s", strings.Join(lines, "\n"))
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("disk on fire") }

func TestLoggerWriteError(t *testing.T) {
	l := NewLogger(errWriter{}, 0, 0)
	l.Log(t0, ToPeer, "beta", []byte{0x45})
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("Close = %v", err)
	}
	if err := l.Close(); err == nil {
		t.Error("second Close lost the error")
	}
}

func TestLoggerConcurrent(t *testing.T) {
	var out lockedBuffer
	l := NewLogger(&out, 1_000_000, 1000)
	pkts := readCorpusFile(t, filepath.Join(testdata, "tcp6.pcap"))
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, p := range pkts {
				l.Log(t0.Add(time.Duration(i)*time.Millisecond), FromPeer, "gamma", p.ip)
			}
		}()
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	written := 0
	for _, line := range out.lines() {
		if strings.Contains(line, "gamma→tun IPv6 fd99::") {
			written++
		}
	}
	if uint64(written)+l.Suppressed() != uint64(4*len(pkts)) {
		t.Errorf("%d written + %d suppressed != %d logged", written, l.Suppressed(), 4*len(pkts))
	}
}

func TestFormatLine(t *testing.T) {
	tm := time.Date(2026, 1, 2, 15, 4, 5, 123456789, time.UTC)
	tests := []struct {
		dir  Direction
		peer string
		want string
	}{
		{ToPeer, "beta", "15:04:05.123456 tun→beta x"},
		{FromPeer, "beta", "15:04:05.123456 beta→tun x"},
		{DirUnknown, "eth0", "15:04:05.123456 eth0 x"},
		{DirUnknown, "", "15:04:05.123456 - x"},
		{ToPeer, "evil\nname", "15:04:05.123456 tun→evil?name x"},
	}
	for _, tt := range tests {
		if got := string(FormatLine(nil, tm, tt.dir, tt.peer, []byte("x"))); got != tt.want {
			t.Errorf("FormatLine(%v, %q) = %q, want %q", tt.dir, tt.peer, got, tt.want)
		}
		label := string(AppendLabel(nil, tt.dir, tt.peer))
		if d, p := parseLabel(label); tt.dir != DirUnknown && tt.peer == p && d != tt.dir {
			t.Errorf("parseLabel(%q) = %v, %q", label, d, p)
		}
	}
	if d, p := parseLabel("tun→beta"); d != ToPeer || p != "beta" {
		t.Errorf("parseLabel(tun→beta) = %v %q", d, p)
	}
	if d, p := parseLabel("beta→tun"); d != FromPeer || p != "beta" {
		t.Errorf("parseLabel(beta→tun) = %v %q", d, p)
	}
	if d, p := parseLabel("wire-out"); d != DirUnknown || p != "wire-out" {
		t.Errorf("parseLabel(wire-out) = %v %q", d, p)
	}
}
