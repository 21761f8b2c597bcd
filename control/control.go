// Package control is the local operator interface of a running node: a
// unix socket, readable by root only, that answers status requests with
// JSON. `peer status` is its client.
package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultDir is where sockets live: /run/peer/<iface>.sock.
const DefaultDir = "/run/peer"

// SocketPath returns the default socket path of interface iface.
func SocketPath(iface string) string { return filepath.Join(DefaultDir, iface+".sock") }

// Server answers requests on a unix socket.
type Server struct {
	ln     net.Listener
	path   string
	status func() any
}

// Listen creates the socket at path with mode 0600 (its directory 0700 if
// made here) and serves status() as JSON to each "status" request.
//
// The directory must be one only root or this user can write: in a
// directory others can write to, someone else could replace the socket or
// put a link where it will be. A stale socket left by a dead node is
// replaced; a live one is an error, and so is anything at path that is not
// a socket (a mistyped -socket never deletes a file).
func Listen(path string, status func() any) (*Server, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("control socket directory: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	if err := removeStale(path); err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The umask decides the mode at bind time; tighten it so no moment
	// exists where others could connect.
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	s := &Server{ln: ln, path: path, status: status}
	go s.serve()
	return s, nil
}

// CheckPath reports, without changing anything, whether Listen could use
// path: its directory, where it exists, is safe, and nothing but a stale
// socket sits at path. Listen checks again when it binds.
func CheckPath(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err == nil {
		if err := checkDir(dir); err != nil {
			return fmt.Errorf("control socket directory %s: %w", dir, err)
		}
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control socket %s: exists and is not a socket (%s); refusing to replace it", path, fi.Mode().Type())
	}
	return nil
}

// removeStale makes room for a new socket at path: nothing there is fine, a
// socket nobody answers on is removed, and anything else is left alone and
// reported.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("exists and is not a socket (%s); refusing to replace it", fi.Mode().Type())
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return errors.New("another node is running on it")
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing stale socket: %w", err)
	}
	return nil
}

func (s *Server) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.handle(c)
	}
}

func (s *Server) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil {
		return
	}
	switch strings.TrimSpace(line) {
	case "status":
		json.NewEncoder(c).Encode(s.status())
	default:
		fmt.Fprintf(c, "{\"error\":%q}\n", "unknown request")
	}
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	err := s.ln.Close()
	os.Remove(s.path)
	return err
}

// Status asks the node listening at path for its status and decodes the
// JSON answer into v.
func Status(ctx context.Context, path string, v any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("no node is running with control socket %s", path)
		}
		return fmt.Errorf("connecting to %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, "status\n"); err != nil {
		return fmt.Errorf("asking %s: %w", path, err)
	}
	if err := json.NewDecoder(c).Decode(v); err != nil {
		return fmt.Errorf("reading status from %s: %w", path, err)
	}
	return nil
}
