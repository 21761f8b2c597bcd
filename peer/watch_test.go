package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatchFile: a change written in place and a replacement by rename are
// each reported once, within the quiet time and well inside the 2 s the
// reload promises; another file of the directory is not.
func TestWatchFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(path, []byte("v1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const quiet = 50 * time.Millisecond
	changed, err := watchFile(ctx, path, quiet, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	expect := func(what string) {
		t.Helper()
		select {
		case <-changed:
		case <-time.After(2 * time.Second):
			t.Fatalf("%s: no change reported within 2 s", what)
		}
		// One save, one report.
		select {
		case <-changed:
			t.Fatalf("%s: reported twice", what)
		case <-time.After(4 * quiet):
		}
	}
	none := func(what string) {
		t.Helper()
		select {
		case <-changed:
			t.Fatalf("%s: reported a change", what)
		case <-time.After(4 * quiet):
		}
	}

	// In place, in several writes as a shell redirection does.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("v2 part 1\n")
	f.Sync()
	f.WriteString("v2 part 2\n")
	f.Close()
	expect("written in place")

	// Replaced by rename, as editors and config-management tools do.
	tmp := filepath.Join(dir, ".mesh.yaml.tmp")
	if err := os.WriteFile(tmp, []byte("v3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	none("another file of the directory")
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	expect("replaced by rename")

	// And the watch still follows the new file.
	if err := os.WriteFile(path, []byte("v4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("the replacement written in place")
}
