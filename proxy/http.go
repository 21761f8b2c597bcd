package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"
	"time"
)

// HTTPProxy is a forward HTTP proxy into the mesh: CONNECT host:port is
// spliced (so https:// and any TCP protocol go through), and requests with
// an absolute http:// URI are forwarded, both through Dialer.
type HTTPProxy struct {
	// Dialer resolves names and dials the mesh.
	Dialer *Dialer
	// Log gets one Debug line per failed request; nil discards.
	Log *slog.Logger
	// HandshakeTimeout overrides the package's HandshakeTimeout (the time
	// a client has to send a request's header) when > 0.
	HandshakeTimeout time.Duration
	// MaxConns overrides the package's MaxConns when > 0.
	MaxConns int
}

// Serve answers proxy requests on connections accepted on l until ctx ends
// or l is closed, and returns after the connections are closed.
func (p *HTTPProxy) Serve(ctx context.Context, l net.Listener) error {
	log := orDiscard(p.Log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	transport := &http.Transport{
		DialContext:     p.Dialer.Dial,
		MaxIdleConns:    maxIdleUpstream,
		IdleConnTimeout: httpIdleTimeout,
	}
	defer transport.CloseIdleConnections()
	h := &httpHandler{
		dialer: p.Dialer,
		log:    log,
		forward: &httputil.ReverseProxy{
			// The request's URL is already the upstream's; Rewrite (rather
			// than nothing) makes ReverseProxy drop the client's
			// X-Forwarded-* headers and remove hop-by-hop ones.
			Rewrite:   func(*httputil.ProxyRequest) {},
			Transport: transport,
			ErrorLog:  slog.NewLogLogger(log.Handler(), slog.LevelDebug),
			ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
				badGateway(w, log, r.URL.Host, err)
			},
		},
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: or(p.HandshakeTimeout, HandshakeTimeout),
		IdleTimeout:       httpIdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return ctx },
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	err := srv.Serve(newLimitListener(l, or(p.MaxConns, MaxConns), log))
	srv.Close() // the connections it still serves
	cancel()    // and the tunnels it no longer knows, hijacked by CONNECT
	h.tunnels.Wait()
	if ctx.Err() != nil || errors.Is(err, http.ErrServerClosed) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("proxy: http proxy on %v: %w", l.Addr(), err)
}

// httpHandler answers one proxy request.
type httpHandler struct {
	dialer  *Dialer
	log     *slog.Logger
	forward *httputil.ReverseProxy
	tunnels sync.WaitGroup // CONNECT tunnels, which the http.Server forgets
}

func (h *httpHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		h.connect(w, r)
		return
	}
	if !r.URL.IsAbs() || r.URL.Host == "" {
		h.badRequest(w, r, "proxy: want an absolute URI (http://host/...) or CONNECT host:port")
		return
	}
	if r.URL.Scheme != "http" {
		h.badRequest(w, r, fmt.Sprintf("proxy: scheme %q: only http:// is forwarded; use CONNECT for others", r.URL.Scheme))
		return
	}
	h.forward.ServeHTTP(w, r)
}

// connect serves CONNECT host:port: it dials, answers 200 and splices.
func (h *httpHandler) connect(w http.ResponseWriter, r *http.Request) {
	target := r.Host
	if _, _, err := net.SplitHostPort(target); err != nil {
		h.badRequest(w, r, fmt.Sprintf("proxy: CONNECT %q: want host:port", target))
		return
	}
	far, err := h.dialer.Dial(r.Context(), "tcp", target)
	if err != nil {
		badGateway(w, h.log, target, err)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		far.Close()
		http.Error(w, "proxy: CONNECT needs HTTP/1.x", http.StatusHTTPVersionNotSupported)
		return
	}
	c, brw, err := hj.Hijack()
	if err != nil {
		far.Close()
		h.log.Debug("proxy: http CONNECT", "target", target, "err", err)
		return
	}
	h.tunnels.Add(1)
	defer h.tunnels.Done()
	c.SetDeadline(time.Time{}) // the server's header timeout
	if _, err := c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		c.Close()
		far.Close()
		return
	}
	// Bytes the client sent after the header (a TLS ClientHello sent
	// eagerly) are in the server's buffer, not the socket.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		if _, err := far.Write(b); err != nil {
			c.Close()
			far.Close()
			return
		}
	}
	if _, _, err := splice(r.Context(), c, far); err != nil {
		h.log.Debug("proxy: http CONNECT", "target", target, "err", err)
	}
}

func (h *httpHandler) badRequest(w http.ResponseWriter, r *http.Request, msg string) {
	h.log.Debug("proxy: http", "client", r.RemoteAddr, "method", r.Method, "uri", r.RequestURI, "err", msg)
	http.Error(w, msg, http.StatusBadRequest)
}

// badGateway answers a request whose target could not be reached.
func badGateway(w http.ResponseWriter, log *slog.Logger, target string, err error) {
	log.Debug("proxy: http", "target", target, "err", err)
	http.Error(w, fmt.Sprintf("proxy: cannot reach %s: %v", target, err), http.StatusBadGateway)
}
