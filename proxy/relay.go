package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// TCPRelay accepts connections and splices each with a connection to a fixed
// target: a forward (host listener, Dialer.To a mesh address) or an expose
// (mesh listener, HostDial a host address).
type TCPRelay struct {
	// Dial opens the far side for each accepted connection.
	Dial DialFunc
	// Log gets one Debug line per failed connection; nil discards.
	Log *slog.Logger
	// MaxConns overrides the package's MaxConns when > 0.
	MaxConns int
}

// Serve relays connections accepted on l until ctx ends or l is closed,
// and returns after they are all closed.
func (r *TCPRelay) Serve(ctx context.Context, l net.Listener) error {
	log := orDiscard(r.Log)
	return serveConns(ctx, l, or(r.MaxConns, MaxConns), log, func(ctx context.Context, c net.Conn) {
		far, err := r.Dial(ctx)
		if err != nil {
			log.Debug("proxy: relay", "from", c.RemoteAddr().String(), "err", err)
			return
		}
		if _, _, err := splice(ctx, c, far); err != nil {
			log.Debug("proxy: relay", "from", c.RemoteAddr().String(), "to", far.RemoteAddr().String(), "err", err)
		}
	})
}

// UDPRelay reads datagrams on a PacketConn and relays each client address's
// datagrams through its own session, a connection from Dial; replies go back
// to that client from the PacketConn. A session ends after IdleTimeout
// without a datagram either way.
type UDPRelay struct {
	// Dial opens a session's connection (a connected UDP socket).
	Dial DialFunc
	// Log gets one Debug line per failed session; nil discards.
	Log *slog.Logger
	// IdleTimeout overrides UDPIdleTimeout when > 0.
	IdleTimeout time.Duration
	// MaxSessions overrides MaxUDPSessions when > 0.
	MaxSessions int

	mu       sync.Mutex
	sessions map[netip.AddrPort]*udpSession
}

// udpSession is one client address's relay.
type udpSession struct {
	client netip.AddrPort
	queue  chan []byte  // client to target, until the writer takes them
	last   atomic.Int64 // unix nanoseconds of the last datagram either way
}

// Sessions returns how many client sessions are live.
func (r *UDPRelay) Sessions() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// Serve relays datagrams read on pc until ctx ends or pc is closed, and
// returns after every session has ended. Serve one PacketConn per UDPRelay.
func (r *UDPRelay) Serve(ctx context.Context, pc net.PacketConn) error {
	log := orDiscard(r.Log)
	limit := or(r.MaxSessions, MaxUDPSessions)
	idle := or(r.IdleTimeout, UDPIdleTimeout)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	r.mu.Lock()
	r.sessions = make(map[netip.AddrPort]*udpSession)
	r.mu.Unlock()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()

	buf := make([]byte, maxDatagram)
	refusing := false // within a burst of datagrams over the session limit
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("proxy: reading UDP on %v: %w", pc.LocalAddr(), err)
		}
		client, ok := addrPortOf(from)
		if !ok {
			continue
		}
		r.mu.Lock()
		s := r.sessions[client]
		if s == nil {
			if len(r.sessions) >= limit {
				r.mu.Unlock()
				if !refusing {
					refusing = true
					log.Warn("proxy: UDP session limit reached, dropping datagrams from new clients", "addr", pc.LocalAddr().String(), "limit", limit)
				}
				continue
			}
			refusing = false
			s = &udpSession{client: client, queue: make(chan []byte, sessionQueue)}
			s.last.Store(time.Now().UnixNano()) // before run reads it
			r.sessions[client] = s
			wg.Go(func() { r.run(ctx, s, pc, idle, log) })
		}
		r.mu.Unlock()
		s.last.Store(time.Now().UnixNano())
		select {
		case s.queue <- append([]byte(nil), buf[:n]...):
		default: // full, as a socket buffer would be
		}
	}
}

// run dials the session's connection, writes the client's datagrams to it
// and relays replies back through pc, until idle or ctx ends.
func (r *UDPRelay) run(ctx context.Context, s *udpSession, pc net.PacketConn, idle time.Duration, log *slog.Logger) {
	defer func() {
		r.mu.Lock()
		delete(r.sessions, s.client)
		r.mu.Unlock()
	}()
	conn, err := r.Dial(ctx)
	if err != nil {
		log.Debug("proxy: UDP session", "client", s.client.String(), "err", err)
		return
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	quit, written := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(written)
		for {
			select {
			case b := <-s.queue:
				if _, err := conn.Write(b); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
					conn.Close() // ends the reader below, and so the session
					return
				}
			case <-quit:
				return
			}
		}
	}()
	defer func() {
		conn.Close() // unblocks a Write
		close(quit)
		<-written
	}()
	buf := make([]byte, maxDatagram)
	client := net.UDPAddrFromAddrPort(s.client)
	for {
		conn.SetReadDeadline(time.Unix(0, s.last.Load()).Add(idle))
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				if time.Since(time.Unix(0, s.last.Load())) >= idle {
					log.Debug("proxy: UDP session idle", "client", s.client.String())
					return
				}
			case errors.Is(err, syscall.ECONNREFUSED):
				// An ICMP port unreachable for an earlier datagram: the
				// target may come up, and UDP has no connection to lose.
			default:
				if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
					log.Debug("proxy: UDP session", "client", s.client.String(), "err", err)
				}
				return
			}
			continue
		}
		s.last.Store(time.Now().UnixNano())
		if _, err := pc.WriteTo(buf[:n], client); err != nil && ctx.Err() == nil {
			log.Debug("proxy: UDP reply", "client", s.client.String(), "err", err)
		}
	}
}

// addrPortOf returns the address of a datagram's source, unmapped so that a
// dual-stack socket's IPv4 clients key the same as on an IPv4 socket.
func addrPortOf(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}
