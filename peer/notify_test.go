package main

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestNotifyOrder: READY=1 comes after the interface is configured and the
// routes are installed; a reload is bracketed by RELOADING=1 (with
// MONOTONIC_USEC) and READY=1; STOPPING=1 comes at shutdown.
func TestNotifyOrder(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma")
	m.writeV1(t)
	events := &recorder{}
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{events: events})
	// The control socket answers just before READY=1 is sent.
	var start []string
	ready := -1
	for deadline := time.Now().Add(5 * time.Second); ready < 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		start = append(start, events.take()...)
		ready = slices.IndexFunc(start, func(s string) bool { return strings.HasPrefix(s, "sd_notify READY=1") })
	}
	lastRoute := -1
	for i, c := range start {
		if strings.Contains(c, " route ") || strings.Contains(c, " addr ") || strings.Contains(c, " link ") {
			lastRoute = i
		}
	}
	if ready < 0 || lastRoute < 0 || ready < lastRoute || ready != len(start)-1 {
		t.Fatalf("start events, want READY=1 last and after the routes:\n%s", strings.Join(start, "\n"))
	}

	if code, _, _ := n.reload(); code != 0 {
		t.Fatalf("reload: exit %d", code)
	}
	got := events.take()
	if len(got) != 2 || !strings.HasPrefix(got[0], "sd_notify RELOADING=1 MONOTONIC_USEC=") || !strings.HasPrefix(got[1], "sd_notify READY=1") {
		t.Errorf("reload events %q, want RELOADING=1 with MONOTONIC_USEC then READY=1", got)
	}

	n.stop()
	got = events.take()
	if len(got) == 0 || !strings.HasPrefix(got[0], "sd_notify STOPPING=1") {
		t.Errorf("shutdown events %q, want STOPPING=1 first", got)
	}
}

// TestSdNotify: the datagram reaches a socket named by a path and by an
// abstract "@" name, one line per state; no NOTIFY_SOCKET, no message.
func TestSdNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@peer-test-" + strings.ReplaceAll(t.Name(), "/", "-") + time.Now().Format("150405.000000")} {
		addr := name
		if addr[0] == '@' {
			addr = "\x00" + addr[1:]
		}
		l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: addr, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		t.Setenv("NOTIFY_SOCKET", name)
		if err := sdNotify("READY=1", "STATUS=up"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		buf := make([]byte, 256)
		l.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := l.Read(buf)
		l.Close()
		if err != nil || string(buf[:k]) != "READY=1\nSTATUS=up\n" {
			t.Errorf("%s: got %q, %v", name, buf[:k], err)
		}
	}
	os.Unsetenv("NOTIFY_SOCKET")
	if err := sdNotify("READY=1"); err != nil {
		t.Errorf("without NOTIFY_SOCKET: %v", err)
	}
}
