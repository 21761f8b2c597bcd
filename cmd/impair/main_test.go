package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peer-vpn/peer/impair"
	"github.com/peer-vpn/peer/keys"
)

// testTimeout bounds every wait of these tests.
const testTimeout = 5 * time.Second

// syncBuffer is a bytes.Buffer safe to write from the command's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func readStats(t *testing.T, file string) (impair.Stats, bool) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		return impair.Stats{}, false
	}
	var st impair.Stats
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("stats file: %v", err)
	}
	return st, true
}

// TestRelayCommandStatsOnSignals: SIGUSR1 writes the counters and the relay
// goes on; SIGTERM writes them and ends it with no error.
func TestRelayCommandStatsOnSignals(t *testing.T) {
	up, client := listenLoopback(t), listenLoopback(t)
	statsFile := filepath.Join(t.TempDir(), "stats.json")
	var stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- cmdRelay([]string{"-listen", "127.0.0.1:0", "-upstream", up.LocalAddr().String(),
			"-stats", statsFile}, &bytes.Buffer{}, &stderr)
	}()
	re := regexp.MustCompile(`relaying (\S+) <->`)
	waitFor(t, "the relay to start", func() bool { return re.MatchString(stderr.String()) })
	relay, err := net.ResolveUDPAddr("udp", re.FindStringSubmatch(stderr.String())[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.WriteTo([]byte{4, 0, 0, 0, 'x'}, relay); err != nil {
		t.Fatal(err)
	}
	up.SetReadDeadline(time.Now().Add(testTimeout))
	buf := make([]byte, 64)
	if n, _, err := up.ReadFrom(buf); err != nil || n != 5 {
		t.Fatalf("upstream read %d bytes: %v", n, err)
	}

	// The upstream can read the datagram before the relay counts it as
	// sent, so ask again (each SIGUSR1 rewrites the file) until the send
	// shows; a count that is wrong, not late, fails below.
	var st impair.Stats
	waitFor(t, "stats after SIGUSR1 counting the send", func() bool {
		syscall.Kill(os.Getpid(), syscall.SIGUSR1)
		var ok bool
		st, ok = readStats(t, statsFile)
		return ok && st.ToUpstream["transport"].Sent >= 1
	})
	if c := st.ToUpstream["transport"]; c.Received != 1 || c.Sent != 1 {
		t.Errorf("after SIGUSR1: %+v", c)
	}
	select {
	case err := <-done:
		t.Fatalf("relay ended on SIGUSR1: %v", err)
	default:
	}

	os.Remove(statsFile)
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("relay on SIGTERM: %v", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("relay did not end on SIGTERM")
	}
	if st, ok := readStats(t, statsFile); !ok || st.Total["all"].Sent != 1 {
		t.Errorf("stats after SIGTERM: %+v (written: %v)", st, ok)
	}
}

func TestFloodCommand(t *testing.T) {
	target := listenLoopback(t)
	priv, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	err = cmdFlood([]string{"-target", target.LocalAddr().String(), "-pubkey", priv.Public().String(),
		"-garbage", "20", "-initiations", "5", "-rate", "1000", "-burst", "10"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("flood: %v\n%s", err, stderr.String())
	}
	var res impair.FloodResult
	if err := json.Unmarshal([]byte(stdout.String()), &res); err != nil {
		t.Fatalf("flood output %q: %v", stdout.String(), err)
	}
	if res.Garbage != 20 || res.Initiations != 5 {
		t.Errorf("flood result %+v", res)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"-listen", "127.0.0.1:0"},
		{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:9", "-loss", "2"},
		{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:9", "-reorder-share", "0.5"},
		{"-listen", "nowhere", "-upstream", "127.0.0.1:9"},
		{"-listen", "127.0.0.1:0", "-upstream", "127.0.0.1:9", "extra"},
	} {
		if err := cmdRelay(args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("impair %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
	for _, args := range [][]string{
		{},
		{"-target", "127.0.0.1:9", "-initiations", "1"},
		{"-target", "127.0.0.1:9", "-pubkey", "short"},
		{"-target", "127.0.0.1:9", "-rate", "0"},
	} {
		if err := cmdFlood(args, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
			t.Errorf("impair flood %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}
