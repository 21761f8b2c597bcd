package control

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStatusRoundTripAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "p0.sock")
	type st struct{ Name string }
	s, err := Listen(path, func() any { return st{Name: "alpha"} })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got st
	if err := Status(ctx, path, &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "alpha" {
		t.Fatalf("got %+v", got)
	}
	if _, err := Listen(path, nil); err == nil {
		t.Fatal("second server on a live socket accepted")
	}
}

func TestStatusNoNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var v any
	if err := Status(ctx, filepath.Join(t.TempDir(), "none.sock"), &v); err == nil {
		t.Fatal("status from a missing socket succeeded")
	}
}
