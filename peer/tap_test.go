package main

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/keys"
)

// lockedBuffer is a bytes.Buffer safe for a logger used from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testNode is a node with one remote, beta, that has a preshared key.
func testNode(t *testing.T) *config.Node {
	t.Helper()
	self, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	var psk keys.Preshared
	psk[0] = 1
	return &config.Node{
		Self:    &config.Peer{Name: "alpha", PublicKey: self.Public()},
		Private: self,
		Remotes: []config.Remote{{Peer: &config.Peer{Name: "beta", PublicKey: other.Public()}, Preshared: psk}},
	}
}

// TestTapWarnsAboutKeys: with -pcap-keys the node says, loudly, that the
// file holds its private key and what to do about it; without, nothing.
func TestTapWarnsAboutKeys(t *testing.T) {
	for _, keysOn := range []bool{true, false} {
		var logBuf lockedBuffer
		log := slog.New(slog.NewTextHandler(&logBuf, nil))
		o := captureOptions{Capture: config.Capture{Pcap: filepath.Join(t.TempDir(), "c.pcapng"), Outer: true}, Keys: keysOn}
		_, closeTap, err := newTap(testNode(t), o, log)
		if err != nil {
			t.Fatal(err)
		}
		closeTap()
		out := logBuf.String()
		warned := strings.Contains(out, "level=WARN") && strings.Contains(out, "PRIVATE KEY") &&
			strings.Contains(out, "new key") && strings.Contains(out, o.Pcap)
		if warned != keysOn {
			t.Errorf("keys %v: log %q", keysOn, out)
		}
	}
}
