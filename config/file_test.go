package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test if f does not return within a few seconds (a FIFO
// must be refused, not waited on).
func within[T any](t *testing.T, f func() T) T {
	t.Helper()
	done := make(chan T, 1)
	go func() { done <- f() }()
	select {
	case v := <-done:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal("blocked: a FIFO was opened and waited on")
		panic("unreachable")
	}
}

func TestLoadRefusesUnsafeMeshFiles(t *testing.T) {
	tm, _ := newTestMesh(t, "")
	good, err := os.ReadFile(tm.file)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		mode os.FileMode
		msg  string // "" means accepted
	}{
		{"owner only", 0o600, ""},
		{"world readable", 0o644, ""},
		{"read only", 0o444, ""},
		{"world writable", 0o666, "mode 0666 lets group or others write it; run chmod 644"},
		{"group writable", 0o664, "mode 0664 lets group or others write it"},
		{"others writable", 0o602, "mode 0602"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(tm.dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			writeFile(t, path, string(good), tc.mode)
			_, err := Load(path)
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.File != path || !strings.Contains(e.Msg, tc.msg) {
				t.Fatalf("error %v, want %s: ...%q", err, path, tc.msg)
			}
		})
	}
	t.Run("symlink to a safe file", func(t *testing.T) {
		link := filepath.Join(tm.dir, "link.yaml")
		if err := os.Symlink(tm.file, link); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(link); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
	t.Run("directory", func(t *testing.T) {
		if _, err := Load(tm.dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestFIFOIsRefusedNotWaitedOn(t *testing.T) {
	tm, m := newTestMesh(t, "")
	fifo := filepath.Join(tm.dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	err := within(t, func() error { _, err := Load(fifo); return err })
	if err == nil || !strings.Contains(err.Error(), "is not a regular file (a named pipe)") || !strings.Contains(err.Error(), fifo) {
		t.Errorf("mesh file FIFO: %v", err)
	}
	err = within(t, func() error { _, err := m.Node(NodeOptions{KeyFile: fifo}); return err })
	if err == nil || !strings.Contains(err.Error(), "is not a regular file (a named pipe)") || !strings.Contains(err.Error(), fifo) {
		t.Errorf("key file FIFO: %v", err)
	}
}

// TestFilesOwnedByAnotherUser needs root to give a file away.
func TestFilesOwnedByAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown a file to another user")
	}
	const stranger = 4242
	tm, m := newTestMesh(t, "")
	mesh := filepath.Join(tm.dir, "theirs.yaml")
	data, err := os.ReadFile(tm.file)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, mesh, string(data), 0o644)
	if err := os.Chown(mesh, stranger, stranger); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(mesh); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") {
		t.Errorf("mesh file of another user: %v", err)
	}
	if err := os.Chown(tm.keys[0], stranger, stranger); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Node(NodeOptions{KeyFile: tm.keys[0]}); err == nil || !strings.Contains(err.Error(), "owned by uid 4242") || !strings.Contains(err.Error(), tm.keys[0]) {
		t.Errorf("key file of another user: %v", err)
	}
	// Root's own files are fine whatever this process is.
	if err := os.Chown(tm.keys[0], 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Node(NodeOptions{KeyFile: tm.keys[0], Resolve: fakeResolver(t, betaAddr)}); err != nil {
		t.Errorf("root's key file refused: %v", err)
	}
}

func TestReadPrivate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "cache.yaml")
	if err := os.WriteFile(good, []byte("peers: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadPrivate(good); err != nil || string(b) != "peers: []\n" {
		t.Fatalf("ReadPrivate = %q, %v", b, err)
	}
	open := filepath.Join(dir, "open.yaml")
	if err := os.WriteFile(open, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivate(open); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a readable cache: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPrivate(big); err == nil {
		t.Error("a cache over MaxFileSize was read")
	}
	if _, err := ReadPrivate(dir); err == nil {
		t.Error("a directory was read")
	}
}
