// Package control is the local operator interface of a running node: a
// unix socket, readable by root only, that answers named requests ("status",
// "reload", ...) with JSON. `peer status` and `peer reload` are its clients.
//
// The protocol is one request per connection: the client writes the
// request's name and a newline, the server answers with one JSON value. The
// node registers one Handler per request name before it listens; a name
// nobody registered is answered with {"error":"unknown request ..."}.
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
	"syscall"
	"time"
)

// DefaultDir is where sockets live: /run/peer/<iface>.sock.
const DefaultDir = "/run/peer"

// SocketPath returns the default socket path of interface iface.
func SocketPath(iface string) string { return filepath.Join(DefaultDir, iface+".sock") }

// Handler answers one request; the value it returns is sent as JSON. It
// may take long (a reload runs system commands): the connection waits.
type Handler func() any

// Handlers maps request names to their handlers.
type Handlers map[string]Handler

// Request names the node serves.
const (
	RequestStatus = "status"
	RequestReload = "reload"
)

// Timeouts: a client has readTimeout to send its request line, and the
// server writeTimeout to send the answer once the handler returned.
const (
	readTimeout  = 5 * time.Second
	writeTimeout = 5 * time.Second
	maxRequest   = 256
)

// Server answers requests on a unix socket.
type Server struct {
	ln       net.Listener
	path     string
	handlers Handlers
}

// Listen creates the socket at path with mode 0600 (its directory 0700 if
// made here) and answers each request with the JSON of its handler's value.
// handlers is copied: what is registered is fixed once the socket exists.
//
// The directory must be one only root or this user can write: in a
// directory others can write to, someone else could replace the socket or
// put a link where it will be. A stale socket left by a dead node is
// replaced; a live one is an error, and so is anything at path that is not
// a socket (a mistyped -socket never deletes a file).
func Listen(path string, handlers Handlers) (*Server, error) {
	ln, err := ListenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("control %w", err)
	}
	s := &Server{ln: ln, path: path, handlers: make(Handlers, len(handlers))}
	for name, h := range handlers {
		s.handlers[name] = h
	}
	go s.serve()
	return s, nil
}

// ListenPrivate creates a unix socket at path with mode 0600, its directory
// 0700 if made here, under the rules of Listen: a safe directory, and only a
// stale socket replaced. Other servers of the node (the wg socket) use it so
// that every socket of the node follows one set of rules. Its errors begin
// with "socket" for the caller to name which one.
func ListenPrivate(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("socket directory: %w", err)
	}
	if err := checkDir(dir); err != nil {
		return nil, fmt.Errorf("socket directory %s: %w", dir, err)
	}
	if err := removeStale(path); err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	// The umask decides the mode at bind time; tighten it so no moment
	// exists where others could connect.
	ln, err := listenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket %s: %w", path, err)
	}
	return ln, nil
}

// CheckPath reports, without changing anything, whether Listen could use
// path: its directory, where it exists, is safe, and nothing but a stale
// socket sits at path. Listen checks again when it binds.
func CheckPath(path string) error {
	if err := CheckPrivatePath(path); err != nil {
		return fmt.Errorf("control %w", err)
	}
	return nil
}

// CheckPrivatePath is CheckPath for any socket ListenPrivate makes; its
// errors begin with "socket".
func CheckPrivatePath(path string) error {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); err == nil {
		if err := checkDir(dir); err != nil {
			return fmt.Errorf("socket directory %s: %w", dir, err)
		}
	}
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("socket %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("socket %s: exists and is not a socket (%s); refusing to replace it", path, fi.Mode().Type())
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
	c.SetReadDeadline(time.Now().Add(readTimeout))
	line, err := bufio.NewReader(io.LimitReader(c, maxRequest)).ReadString('\n')
	if err != nil {
		return
	}
	name := strings.TrimSpace(line)
	h, ok := s.handlers[name]
	var v any = errorAnswer{Error: fmt.Sprintf("unknown request %q", name)}
	if ok && h != nil {
		v = h()
	}
	// The deadline counts from the answer, not the request: a handler
	// may take longer than a client waits to send.
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	json.NewEncoder(c).Encode(v)
}

// errorAnswer is the answer to a request nobody registered.
type errorAnswer struct {
	Error string `json:"error"`
}

// Close stops serving and removes the socket.
func (s *Server) Close() error {
	err := s.ln.Close()
	os.Remove(s.path)
	return err
}

// ErrNotRunning is returned (wrapped) by Do when no node answers at the
// path: nothing is there, or a stale socket nobody listens on.
var ErrNotRunning = errors.New("no node is running")

// Do sends request name to the node listening at path and decodes its JSON
// answer into v. It waits for the answer until ctx ends.
func Do(ctx context.Context, path, name string, v any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w with control socket %s", ErrNotRunning, path)
		}
		return fmt.Errorf("connecting to %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, name+"\n"); err != nil {
		return fmt.Errorf("asking %s for %s: %w", path, name, err)
	}
	if err := json.NewDecoder(c).Decode(v); err != nil {
		return fmt.Errorf("reading the answer to %s from %s: %w", name, path, err)
	}
	return nil
}

// Status asks the node listening at path for its status and decodes the
// JSON answer into v.
func Status(ctx context.Context, path string, v any) error {
	return Do(ctx, path, RequestStatus, v)
}
