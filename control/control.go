// Package control is the local operator interface of a running node: a
// unix socket, readable by root only, that answers named requests ("status",
// "reload", ...) with JSON. `peer status` and `peer reload` are its clients.
//
// The protocol is one request per connection: the client writes the
// request's name and a newline, the server answers with one JSON value. The
// node registers one Handler per request name before it listens; a name
// nobody registered is answered with {"error":"unknown request ..."}.
//
// A streaming request ("capture") is its name, a space and an argument on
// the same line; the server answers with one JSON line, {"ok":true} or
// {"error":...}, and after an ok the connection is the StreamHandler's: it
// streams until it is done or the client closes its end.
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
	"sync"
	"syscall"
	"time"
)

// DefaultDir is where root's sockets live: /run/peer/<iface>.sock.
const DefaultDir = "/run/peer"

// SocketPath returns the default socket path of interface iface: in
// DefaultDir for root, in $XDG_RUNTIME_DIR/peer for another user who has
// one (a node of driver netstack needs no root; /run/peer is root's, and
// a socket of mode 0600 there would let that user in anyway).
func SocketPath(iface string) string {
	return filepath.Join(socketDir(os.Geteuid(), os.Getenv("XDG_RUNTIME_DIR")), iface+".sock")
}

// socketDir is the directory of SocketPath for user euid with
// XDG_RUNTIME_DIR xdg ("" if unset).
func socketDir(euid int, xdg string) string {
	if euid != 0 && filepath.IsAbs(xdg) {
		return filepath.Join(xdg, "peer")
	}
	return DefaultDir
}

// Handler answers one request; the value it returns is sent as JSON. It
// may take long (a reload runs system commands): the connection waits.
type Handler func() any

// Handlers maps request names to their handlers.
type Handlers map[string]Handler

// StreamHandler starts a streaming request with the argument of its request
// line. It returns the function that then owns the connection (closed by the
// server when it returns), or an error, answered as {"error":...}.
type StreamHandler func(arg string) (serve func(c net.Conn), err error)

// Streams maps streaming request names to their handlers.
type Streams map[string]StreamHandler

// Request names the node serves.
const (
	RequestStatus = "status"
	RequestReload = "reload"
	// RequestCapture streams a live pcapng capture; its argument is JSON.
	RequestCapture = "capture"
)

// Timeouts: a client has readTimeout to send its request line, and the
// server writeTimeout to send the answer once the handler returned.
const (
	readTimeout  = 5 * time.Second
	writeTimeout = 5 * time.Second
	maxRequest   = 1024
)

// Server answers requests on a unix socket.
type Server struct {
	ln       net.Listener
	path     string
	handlers Handlers
	streams  Streams

	mu      sync.Mutex
	closed  bool
	open    map[net.Conn]struct{} // connections streaming now
	running sync.WaitGroup        // their handlers
}

// ListenStreams creates the socket at path with mode 0600 (its directory
// 0700 if made here) and answers each request with the JSON of its
// handler's value, and each streaming request with its stream. handlers and
// streams are copied: what is registered is fixed once the socket exists.
// Close ends the streams still running (see Close).
//
// The directory must be one only root or this user can write: in a
// directory others can write to, someone else could replace the socket or
// put a link where it will be. A stale socket left by a dead node is
// replaced; a live one is an error, and so is anything at path that is not
// a socket (a mistyped -socket never deletes a file).
func ListenStreams(path string, handlers Handlers, streams Streams) (*Server, error) {
	ln, err := ListenPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("control %w", err)
	}
	s := &Server{ln: ln, path: path, handlers: make(Handlers, len(handlers)),
		streams: make(Streams, len(streams)), open: make(map[net.Conn]struct{})}
	for name, h := range handlers {
		s.handlers[name] = h
	}
	for name, h := range streams {
		s.streams[name] = h
	}
	go s.serve()
	return s, nil
}

// ListenPrivate creates a unix socket at path with mode 0600, its directory
// 0700 if made here, under the rules of ListenStreams: a safe directory,
// and only a stale socket replaced. Other servers of the node (the wg socket) use it so
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

// CheckPath reports, without changing anything, whether ListenStreams could
// use path: its directory, where it exists, is safe, and nothing but a stale
// socket sits at path. ListenStreams checks again when it binds.
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
	sname, arg, _ := strings.Cut(name, " ")
	if sh, ok := s.streams[sname]; ok && sh != nil {
		s.stream(c, sh, arg)
		return
	}
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

// errorAnswer is the answer to a request nobody registered, or one a
// StreamHandler refused.
type errorAnswer struct {
	Error string `json:"error"`
}

// okAnswer starts a stream.
type okAnswer struct {
	OK bool `json:"ok"`
}

// stream answers a streaming request and hands the connection over.
func (s *Server) stream(c net.Conn, h StreamHandler, arg string) {
	c.SetWriteDeadline(time.Now().Add(writeTimeout))
	serve, err := h(arg)
	if err != nil {
		json.NewEncoder(c).Encode(errorAnswer{Error: err.Error()})
		return
	}
	if !s.track(c) {
		json.NewEncoder(c).Encode(errorAnswer{Error: "the node is shutting down"})
		return
	}
	defer s.untrack(c)
	if err := json.NewEncoder(c).Encode(okAnswer{OK: true}); err != nil {
		return // the client left: serve never starts
	}
	// The stream's pace is the handler's: it sets its own deadlines.
	c.SetDeadline(time.Time{})
	serve(c)
}

func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[c] = struct{}{}
	s.running.Add(1)
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
	s.running.Done()
}

// streamGrace is how long Close lets the streams end in order (a capture
// writes its statistics) before it closes their connections.
const streamGrace = 2 * time.Second

// Close stops serving, ends the streams and removes the socket. A stream's
// handler first reads EOF, as if its client had closed its end, and gets
// streamGrace to finish; then the connections still open are closed.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.open {
		if cr, ok := c.(interface{ CloseRead() error }); ok {
			cr.CloseRead()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.running.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(streamGrace):
	}
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
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

// Stream is the client's end of a streaming request, after the node
// accepted it: reading it reads the stream.
type Stream struct {
	c *net.UnixConn
	r *bufio.Reader
}

// Read reads the stream.
func (s *Stream) Read(p []byte) (int, error) { return s.r.Read(p) }

// CloseWrite tells the node the client is done: the node ends the stream,
// and what it still sends (the end of a capture) can be read until EOF.
func (s *Stream) CloseWrite() error { return s.c.CloseWrite() }

// Close closes the connection.
func (s *Stream) Close() error { return s.c.Close() }

// OpenStream sends the streaming request name with arg to the node at
// path and returns the stream once the node accepted it. ctx bounds the
// connection and the node's answer, not the stream.
func OpenStream(ctx context.Context, path, name, arg string) (*Stream, error) {
	if strings.ContainsAny(arg, "\n\r") {
		return nil, errors.New("a stream argument must be one line")
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w with control socket %s", ErrNotRunning, path)
		}
		return nil, fmt.Errorf("connecting to %s: %w", path, err)
	}
	c := nc.(*net.UnixConn)
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := io.WriteString(c, name+" "+arg+"\n"); err != nil {
		c.Close()
		return nil, fmt.Errorf("asking %s for %s: %w", path, name, err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadBytes('\n')
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the answer to %s from %s: %w", name, path, err)
	}
	var a struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &a); err != nil || !a.OK {
		c.Close()
		if a.Error != "" {
			return nil, fmt.Errorf("%s: %s", path, a.Error)
		}
		return nil, fmt.Errorf("the answer to %s from %s: %q", name, path, line)
	}
	c.SetDeadline(time.Time{})
	return &Stream{c: c, r: r}, nil
}

// Status asks the node listening at path for its status and decodes the
// JSON answer into v.
func Status(ctx context.Context, path string, v any) error {
	return Do(ctx, path, RequestStatus, v)
}
