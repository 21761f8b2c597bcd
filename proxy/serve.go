package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// orDiscard returns log, or a logger that drops everything when it is nil.
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// or returns v, or def when v is zero: a field left unset takes the
// package's limit.
func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// limitListener accepts at most limit connections at once; beyond that it
// closes new ones at once. It logs a refusal once per burst (the first
// refusal after a connection was last admitted) and, when the burst ends,
// how many it refused, so a flood costs two log lines rather than one per
// connection.
type limitListener struct {
	net.Listener
	slots   chan struct{}
	log     *slog.Logger
	refused atomic.Uint64 // in the current burst
}

func newLimitListener(l net.Listener, limit int, log *slog.Logger) *limitListener {
	return &limitListener{Listener: l, slots: make(chan struct{}, limit), log: log}
}

// Accept returns the next connection within the limit. Closing it frees its
// slot.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.slots <- struct{}{}:
			if n := l.refused.Swap(0); n > 0 {
				l.log.Info("proxy: connection limit burst over", "addr", l.Addr().String(), "refused", n)
			}
			return &limitedConn{Conn: c, release: l.release}, nil
		default:
			c.Close()
			if l.refused.Add(1) == 1 {
				l.log.Warn("proxy: connection limit reached, refusing new connections", "addr", l.Addr().String(), "limit", cap(l.slots))
			}
		}
	}
}

func (l *limitListener) release() { <-l.slots }

// limitedConn holds a slot of a limitListener until it is closed.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection when the underlying one can.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// unwrap returns the connection under a limitedConn, so that io.Copy sees a
// *net.TCPConn and can splice in the kernel.
func unwrap(c net.Conn) net.Conn {
	if lc, ok := c.(*limitedConn); ok {
		return lc.Conn
	}
	return c
}

// serveConns accepts on l (at most limit connections at once) and runs handle
// for each in its own goroutine, until ctx ends or l is closed. It closes l
// and returns after every handle has returned; handle must return when ctx
// ends. A closed listener is a clean end (nil).
func serveConns(ctx context.Context, l net.Listener, limit int, log *slog.Logger, handle func(context.Context, net.Conn)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	ll := newLimitListener(l, limit, log)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // before Wait: handlers see the end
	var backoff time.Duration
	for {
		c, err := ll.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if temporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), acceptBackoffMax)
				log.Debug("proxy: accept", "addr", l.Addr().String(), "err", err)
				select {
				case <-time.After(backoff):
				case <-ctx.Done():
				}
				continue
			}
			l.Close()
			return fmt.Errorf("proxy: accepting on %v: %w", l.Addr(), err)
		}
		backoff = 0
		wg.Go(func() {
			defer c.Close()
			handle(ctx, c)
		})
	}
}

// temporary reports whether an Accept error passes: the process is out of
// descriptors, or a client reset before it was accepted.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.ENOBUFS)
}

// splice copies a to b and b to a until both directions end, half-closing
// each side's write when its source reaches EOF (so a client's shutdown
// reaches the server and the reply still flows back), and closes both when
// done or when ctx ends. It returns the bytes copied each way and the first
// error other than a clean end.
func splice(ctx context.Context, a, b net.Conn) (aToB, bToA int64, err error) {
	stop := context.AfterFunc(ctx, func() { a.Close(); b.Close() })
	defer stop()
	defer a.Close()
	defer b.Close()
	errc := make(chan error, 2)
	go func() {
		n, err := copyHalf(b, a)
		aToB = n
		errc <- err
	}()
	n, err1 := copyHalf(a, b)
	bToA = n
	err2 := <-errc
	if err1 == nil {
		err1 = err2
	}
	if ctx.Err() != nil {
		err1 = nil
	}
	return aToB, bToA, err1
}

// copyHalf copies src to dst, then half-closes dst; on an error it closes
// both so that the other direction ends too.
func copyHalf(dst, src net.Conn) (int64, error) {
	n, err := io.Copy(unwrap(dst), unwrap(src))
	if err != nil {
		dst.Close()
		src.Close()
		if errors.Is(err, net.ErrClosed) {
			err = nil // the other direction failed and closed us
		}
		return n, err
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	return n, nil
}
