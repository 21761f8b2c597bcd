package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
)

// SOCKS5Server is a SOCKS5 server (RFC 1928) without authentication: its
// listener is the access control, loopback by default. It serves CONNECT
// and UDP ASSOCIATE into the mesh through Dialer, and refuses BIND.
type SOCKS5Server struct {
	// Dialer resolves DOMAINNAME addresses and dials the mesh.
	Dialer *Dialer
	// Log gets one Debug line per failed request; nil discards.
	Log *slog.Logger
	// HandshakeTimeout overrides the package's HandshakeTimeout when > 0.
	HandshakeTimeout time.Duration
	// MaxConns overrides the package's MaxConns when > 0.
	MaxConns int
}

// Serve answers SOCKS5 clients accepted on l until ctx ends or l is closed,
// and returns after their connections are closed.
func (s *SOCKS5Server) Serve(ctx context.Context, l net.Listener) error {
	log := orDiscard(s.Log)
	return serveConns(ctx, l, or(s.MaxConns, MaxConns), log, func(ctx context.Context, c net.Conn) {
		if err := s.handle(ctx, c); err != nil {
			log.Debug("proxy: socks5", "client", c.RemoteAddr().String(), "err", err)
		}
	})
}

// handle negotiates with one client and serves its request. The error is
// what the client was refused for, to log.
func (s *SOCKS5Server) handle(ctx context.Context, c net.Conn) error {
	timeout := or(s.HandshakeTimeout, HandshakeTimeout)
	c.SetDeadline(time.Now().Add(timeout))
	methods, err := readGreeting(c)
	if err != nil {
		return err
	}
	if !slices.Contains(methods, methodNoAuth) {
		c.Write([]byte{socksVersion, methodNoAcceptable})
		return fmt.Errorf("socks5: client offers methods %x, not no-authentication", methods)
	}
	if _, err := c.Write([]byte{socksVersion, methodNoAuth}); err != nil {
		return fmt.Errorf("socks5: writing method selection: %w", err)
	}
	req, err := readRequest(c)
	if errors.Is(err, errAddrType) {
		c.Write(appendReply(nil, repAddrTypeNotSupport, netip.AddrPort{}))
		return err
	}
	if err != nil {
		return err
	}
	// The client has said everything: from here the time is ours (the
	// dial has its own bound), and only writes are bounded.
	c.SetDeadline(time.Time{})
	c.SetWriteDeadline(time.Now().Add(timeout))
	switch req.Cmd {
	case cmdConnect:
		return s.connect(ctx, c, req.Dst)
	case cmdUDPAssociate:
		return s.associate(ctx, c, req.Dst)
	default:
		c.Write(appendReply(nil, repCommandNotSupported, netip.AddrPort{}))
		return fmt.Errorf("socks5: command %#x not supported", req.Cmd)
	}
}

// connect serves CONNECT: it dials dst and splices.
func (s *SOCKS5Server) connect(ctx context.Context, c net.Conn, dst socksAddr) error {
	far, err := s.Dialer.Dial(ctx, "tcp", dst.String())
	if err != nil {
		c.Write(appendReply(nil, replyCode(err), netip.AddrPort{}))
		return fmt.Errorf("socks5: connect: %w", err)
	}
	bnd, _ := addrPortOfTCP(far.LocalAddr())
	if _, err := c.Write(appendReply(nil, repSucceeded, bnd)); err != nil {
		far.Close()
		return fmt.Errorf("socks5: writing reply: %w", err)
	}
	c.SetWriteDeadline(time.Time{})
	if _, _, err := splice(ctx, c, far); err != nil {
		return fmt.Errorf("socks5: connect %v: %w", dst, err)
	}
	return nil
}

// addrPortOfTCP returns a stream's address as an AddrPort, unmapped.
func addrPortOfTCP(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// netstackErrors are the texts of gVisor's dial errors: its gonet adapter
// returns them as plain errors.New(tcpip.Error.String()), without an errno
// to test with errors.Is, so the reply code can only be told by the words.
var netstackErrors = []struct {
	text string
	rep  byte
}{
	{"connection was refused", repConnectionRefused},
	{"network is unreachable", repNetworkUnreachable},
	{"no route to host", repHostUnreachable},
	{"operation timed out", repHostUnreachable},
}

// replyCode maps a Dialer error to the reply a SOCKS5 client gets.
func replyCode(err error) byte {
	var re *resolveError
	var ne net.Error
	switch {
	case errors.As(err, &re):
		return repHostUnreachable
	case errors.Is(err, syscall.ECONNREFUSED):
		return repConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH):
		return repNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return repHostUnreachable
	}
	msg := err.Error()
	for _, e := range netstackErrors {
		if strings.Contains(msg, e.text) {
			return e.rep
		}
	}
	return repGeneralFailure
}
