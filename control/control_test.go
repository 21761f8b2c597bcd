package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStatusRoundTripAndMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "p0.sock")
	type st struct{ Name string }
	s, err := ListenStreams(path, Handlers{RequestStatus: func() any { return st{Name: "alpha"} }}, nil)
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
	if _, err := ListenStreams(path, nil, nil); err == nil {
		t.Fatal("second server on a live socket accepted")
	}
}

func TestStatusNoNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var v any
	if err := Status(ctx, filepath.Join(t.TempDir(), "none.sock"), &v); !errors.Is(err, ErrNotRunning) {
		t.Fatalf("status from a missing socket: %v, want ErrNotRunning", err)
	}
	// A socket left by a killed node: nobody listens, the same answer.
	path := filepath.Join(t.TempDir(), "stale.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if err := Do(ctx, path, RequestReload, &v); !errors.Is(err, ErrNotRunning) || !strings.Contains(err.Error(), path) {
		t.Fatalf("reload through a stale socket: %v, want ErrNotRunning naming %s", err, path)
	}
}

func TestHandlersAreDispatchedByName(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0.sock")
	reloads := 0
	h := Handlers{
		RequestStatus: func() any { return "up" },
		RequestReload: func() any { reloads++; return map[string]int{"reloads": reloads} },
	}
	s, err := ListenStreams(path, h, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Registering after Listen changes nothing: the server has its copy.
	h["late"] = func() any { return "late" }
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got map[string]any
	if err := Do(ctx, path, RequestReload, &got); err != nil || got["reloads"] != 1.0 {
		t.Fatalf("reload: %v, %v", got, err)
	}
	var status string
	if err := Do(ctx, path, RequestStatus, &status); err != nil || status != "up" {
		t.Fatalf("status: %q, %v", status, err)
	}
	for _, name := range []string{"late", "nonsense"} {
		got = nil
		if err := Do(ctx, path, name, &got); err != nil || !strings.Contains(fmt.Sprint(got["error"]), "unknown request") {
			t.Errorf("%s: %v, %v; want an unknown request error", name, got, err)
		}
	}
}

func TestSlowHandlerIsWaitedFor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0.sock")
	s, err := ListenStreams(path, Handlers{RequestReload: func() any { time.Sleep(readTimeout + 500*time.Millisecond); return "done" }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*readTimeout)
	defer cancel()
	var got string
	if err := Do(ctx, path, RequestReload, &got); err != nil || got != "done" {
		t.Fatalf("slow reload: %q, %v", got, err)
	}
}

func TestListenNeverDeletesWhatIsNotASocket(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "private.key")
	if err := os.WriteFile(key, []byte("secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.sock")
	if err := os.Symlink(key, link); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{key, sub, link} {
		if s, err := ListenStreams(path, nil, nil); err == nil {
			s.Close()
			t.Errorf("Listen(%s) accepted a path that is not a socket", path)
		} else if !strings.Contains(err.Error(), "is not a socket") {
			t.Errorf("Listen(%s): %v", path, err)
		}
	}
	if b, err := os.ReadFile(key); err != nil || string(b) != "secret\n" {
		t.Fatalf("the file at the socket path was changed: %q, %v", b, err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was removed: %v", err)
	}
}

func TestListenReplacesAStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0.sock")
	// A socket file whose listener is gone, as a killed node leaves it.
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	s, err := ListenStreams(path, Handlers{RequestStatus: func() any { return "ok" }}, nil)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got string
	if err := Status(ctx, path, &got); err != nil || got != "ok" {
		t.Fatalf("status %q, %v", got, err)
	}
}

func TestListenRefusesUnsafeDirectories(t *testing.T) {
	base := t.TempDir()
	for _, mode := range []os.FileMode{0o777 | os.ModeSticky, 0o777, 0o770, 0o702} {
		dir := filepath.Join(base, fmt.Sprintf("d%o", mode))
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		s, err := ListenStreams(filepath.Join(dir, "p0.sock"), nil, nil)
		if err == nil {
			s.Close()
			t.Errorf("directory of mode %v accepted", mode)
			continue
		}
		if !strings.Contains(err.Error(), "lets group or others write to it") || !strings.Contains(err.Error(), dir) {
			t.Errorf("mode %v: %v", mode, err)
		}
	}
	if os.Geteuid() == 0 {
		dir := filepath.Join(base, "theirs")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, 4242, 4242); err != nil {
			t.Fatal(err)
		}
		if s, err := ListenStreams(filepath.Join(dir, "p0.sock"), nil, nil); err == nil {
			s.Close()
			t.Error("directory of another user accepted")
		} else if !strings.Contains(err.Error(), "owned by uid 4242") {
			t.Errorf("directory of another user: %v", err)
		}
	}
}

// TestStream: a streaming request gets its argument, the client reads what
// the handler writes, the handler sees the client's CloseWrite as EOF and
// can still send its last words; a refused one is an error naming why.
func TestStream(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0.sock")
	served := make(chan string, 1)
	s, err := ListenStreams(path, Handlers{RequestStatus: func() any { return "up" }}, Streams{
		RequestCapture: func(arg string) (func(net.Conn), error) {
			if arg == "bad" {
				return nil, errors.New("no such peer")
			}
			return func(c net.Conn) {
				fmt.Fprintf(c, "hello %s\n", arg)
				b := make([]byte, 16)
				_, err := c.Read(b) // the client sends nothing more: EOF when it is done
				fmt.Fprintf(c, "bye\n")
				served <- fmt.Sprint(err)
			}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := OpenStream(ctx, path, RequestCapture, "bad"); err == nil || !strings.Contains(err.Error(), "no such peer") {
		t.Fatalf("refused stream: %v, want the handler's error", err)
	}
	st, err := OpenStream(ctx, path, RequestCapture, `{"peer":"beta"}`)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	buf := make([]byte, 64)
	n, err := st.Read(buf)
	if err != nil || string(buf[:n]) != "hello {\"peer\":\"beta\"}\n" {
		t.Fatalf("read %q, %v", buf[:n], err)
	}
	st.CloseWrite()
	if got := <-served; got != "EOF" {
		t.Errorf("handler read %s after CloseWrite, want EOF", got)
	}
	rest, err := io.ReadAll(st)
	if err != nil || string(rest) != "bye\n" {
		t.Errorf("after CloseWrite read %q, %v; want bye and EOF", rest, err)
	}
	// Plain requests still work beside the streams.
	var v string
	if err := Status(ctx, path, &v); err != nil || v != "up" {
		t.Errorf("status: %q, %v", v, err)
	}
}

// TestCloseEndsStreams: closing the server ends the streams still open: the
// handler reads EOF and may still write its last words before the
// connection is closed.
func TestCloseEndsStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p0.sock")
	ended := make(chan struct{})
	s, err := ListenStreams(path, nil, Streams{RequestCapture: func(string) (func(net.Conn), error) {
		return func(c net.Conn) {
			io.Copy(io.Discard, c) // until EOF
			io.WriteString(c, "bye\n")
			close(ended)
		}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := OpenStream(ctx, path, RequestCapture, "")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s.Close()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still served 5s after Close")
	}
	if rest, err := io.ReadAll(st); err != nil || string(rest) != "bye\n" {
		t.Errorf("after Close the client read %q, %v; want the handler's bye", rest, err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}
}

func TestSocketDir(t *testing.T) {
	for _, tc := range []struct {
		euid int
		xdg  string
		want string
	}{
		{0, "", DefaultDir},
		{0, "/run/user/0", DefaultDir},
		{1000, "/run/user/1000", "/run/user/1000/peer"},
		{1000, "", DefaultDir},
		{1000, "relative", DefaultDir},
	} {
		if got := socketDir(tc.euid, tc.xdg); got != tc.want {
			t.Errorf("socketDir(%d, %q) = %q, want %q", tc.euid, tc.xdg, got, tc.want)
		}
	}
}
