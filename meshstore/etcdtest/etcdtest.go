// Package etcdtest starts a real, throwaway etcd for tests: the etcd binary
// (Debian's etcd-server package) on 127.0.0.1, with free ports and a
// temporary data directory, stopped and removed when the test ends.
package etcdtest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// startTimeout bounds how long Start waits for etcd to answer.
const startTimeout = 20 * time.Second

// Server is a running etcd.
type Server struct {
	Endpoint string // 127.0.0.1:PORT of its client URL
	bin      string
	dataDir  string
	client   int // ports
	peer     int
	cmd      *exec.Cmd
	log      *syncBuffer
	done     chan struct{}
	// held keeps the ports while Stop has etcd down, so that another
	// test's etcd (go test runs packages in parallel) cannot take them
	// and answer in its place.
	held []net.Listener
	// aside marks a server of Aside, whose Stop gives its ports back.
	aside bool
}

// URL returns etcd://ENDPOINT/PREFIX for this server.
func (s *Server) URL(prefix string) string { return "etcd://" + s.Endpoint + "/" + prefix }

// Client returns a client of this server, closed at the test's end.
func (s *Server) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// Start runs etcd for tb. Without the etcd binary it skips tb, or under
// CI=true fails it: CI installs etcd-server (scripts/install-deps.sh).
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatal("etcd (Debian package etcd-server) missing in CI")
		}
		tb.Skip("etcd not installed (apt-get install etcd-server)")
	}
	dir := tb.TempDir()
	// A port picked free may be taken again before etcd binds it; a few
	// tries make that race harmless.
	var lastErr error
	for try := 0; try < 3; try++ {
		s, err := start(bin, filepath.Join(dir, strconv.Itoa(try)), freePort(), freePort())
		if err == nil {
			tb.Cleanup(func() { s.stop(); s.release() })
			return s
		}
		lastErr = err
	}
	tb.Fatal(lastErr)
	return nil
}

// Stop ends etcd, keeping its data and its ports for Restart: clients
// that connect meanwhile reach a listener that never answers, as they
// would reach a host whose etcd hangs, never another etcd.
func (s *Server) Stop() {
	s.stop()
	if s.aside {
		return
	}
	for _, port := range []int{s.client, s.peer} {
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
			s.held = append(s.held, l)
		}
	}
}

// Aside runs etcd on the data of a stopped s, its peer port and a new
// client port, while s's client port stays held: a test can change the
// mesh (push, compact) where the clients of s cannot see it, and they see
// it all at once after Restart. Stop the returned server (it keeps no
// ports) before Restart.
func (s *Server) Aside(tb testing.TB) *Server {
	tb.Helper()
	// The peer port is the member's own address in its data; only the
	// client port may move.
	for i, l := range s.held {
		if l.Addr().(*net.TCPAddr).Port == s.peer {
			l.Close()
			s.held = append(s.held[:i], s.held[i+1:]...)
			break
		}
	}
	a, err := start(s.bin, s.dataDir, freePort(), s.peer)
	if err != nil {
		tb.Fatal(err)
	}
	a.aside = true
	tb.Cleanup(a.stop)
	return a
}

// release gives back the ports Stop kept.
func (s *Server) release() {
	for _, l := range s.held {
		l.Close()
	}
	s.held = nil
}

// Restart runs etcd again on the same ports and data after Stop.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.release()
	n, err := start(s.bin, s.dataDir, s.client, s.peer)
	if err != nil {
		tb.Fatal(err)
	}
	s.cmd, s.log, s.done = n.cmd, n.log, n.done
}

func start(bin, dataDir string, client, peer int) (*Server, error) {
	if client == 0 || peer == 0 {
		return nil, fmt.Errorf("no free port")
	}
	cu := fmt.Sprintf("http://127.0.0.1:%d", client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	s := &Server{Endpoint: fmt.Sprintf("127.0.0.1:%d", client), bin: bin, dataDir: dataDir, client: client, peer: peer,
		log: &syncBuffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(bin,
		"--name", "test", "--data-dir", dataDir,
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "test="+pu, "--initial-cluster-state", "new",
		"--log-level", "error")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting etcd: %w", err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{cu}, DialTimeout: time.Second, Logger: zap.NewNop()})
	if err != nil {
		s.stop()
		return nil, err
	}
	defer cli.Close()
	deadline := time.Now().Add(startTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return s, nil
		}
		select {
		case <-s.done:
			return nil, fmt.Errorf("etcd exited before answering:\n%s", s.log.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("etcd did not answer within %v: %v\n%s", startTimeout, err, s.log.String())
		}
	}
}

// stop ends etcd (SIGTERM, then SIGKILL after 5s); the test's TempDir
// removes the data. A stopped server stops at once.
func (s *Server) stop() {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects etcd's output, written by exec's copying goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
