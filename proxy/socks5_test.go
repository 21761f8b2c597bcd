package proxy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// startSOCKS5 serves a SOCKS5Server on 127.0.0.1 for the test and returns
// its address.
func startSOCKS5(t *testing.T, s *SOCKS5Server) string {
	t.Helper()
	if s.Dialer == nil {
		s.Dialer = testDialer()
	}
	s.Log = testLog(t)
	l := listen(t)
	serve(t, func(ctx context.Context) error { return s.Serve(ctx, l) })
	return l.Addr().String()
}

// socksGreet connects to server and offers methods; it returns the
// connection and the method the server chose.
func socksGreet(t *testing.T, server string, methods ...byte) (net.Conn, byte) {
	t.Helper()
	c, err := net.DialTimeout("tcp", server, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write(append([]byte{socksVersion, byte(len(methods))}, methods...)); err != nil {
		t.Fatal(err)
	}
	var sel [2]byte
	if _, err := io.ReadFull(c, sel[:]); err != nil {
		t.Fatal(err)
	}
	if sel[0] != socksVersion {
		t.Fatalf("method selection version %d", sel[0])
	}
	return c, sel[1]
}

// socksAsk sends a request on a negotiated connection and reads the reply.
func socksAsk(t *testing.T, c net.Conn, cmd byte, dst socksAddr) (rep byte, bnd socksAddr) {
	t.Helper()
	if _, err := c.Write(appendAddr([]byte{socksVersion, cmd, 0}, dst)); err != nil {
		t.Fatal(err)
	}
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	if hdr[0] != socksVersion || hdr[2] != 0 {
		t.Fatalf("reply header % x", hdr)
	}
	bnd, err := readAddr(c, hdr[3])
	if err != nil {
		t.Fatalf("reply address: %v", err)
	}
	return hdr[1], bnd
}

// socksDo opens a connection to server and makes one request.
func socksDo(t *testing.T, server string, cmd byte, dst socksAddr) (net.Conn, byte, socksAddr) {
	t.Helper()
	c, m := socksGreet(t, server, methodNoAuth)
	if m != methodNoAuth {
		t.Fatalf("method %#x, want no-auth", m)
	}
	rep, bnd := socksAsk(t, c, cmd, dst)
	return c, rep, bnd
}

// portOf returns the port of a host:port.
func portOf(t *testing.T, hostport string) uint16 {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(n)
}

// refusedPort returns a loopback port nothing listens on.
func refusedPort(t *testing.T) uint16 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := portOf(t, l.Addr().String())
	l.Close()
	return p
}

var loopback4 = netip.MustParseAddr("127.0.0.1")

func TestSOCKS5Connect(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{})
	echo := echoTCP(t)
	port := portOf(t, echo)
	for _, dst := range []socksAddr{
		{Name: "beta", Port: port},
		{IP: loopback4, Port: port},
		{Name: "127.0.0.1", Port: port}, // curl sends literals as names too
	} {
		t.Run(dst.String(), func(t *testing.T) {
			c, rep, bnd := socksDo(t, server, cmdConnect, dst)
			if rep != repSucceeded {
				t.Fatalf("reply %#x", rep)
			}
			if bnd.IP != loopback4 || bnd.Port == 0 {
				t.Fatalf("BND %v, want the outgoing connection's local address", bnd)
			}
			msg := []byte("ping " + dst.String())
			c.Write(msg)
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				t.Fatalf("echo %q, %v", got, err)
			}
		})
	}
}

func TestSOCKS5IPv6(t *testing.T) {
	l, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Write([]byte("v6"))
			c.Close()
		}
	}()
	server := startSOCKS5(t, &SOCKS5Server{})
	c, rep, bnd := socksDo(t, server, cmdConnect, socksAddr{IP: netip.IPv6Loopback(), Port: portOf(t, l.Addr().String())})
	if rep != repSucceeded || bnd.IP != netip.IPv6Loopback() {
		t.Fatalf("reply %#x BND %v", rep, bnd)
	}
	if got, _ := io.ReadAll(c); string(got) != "v6" {
		t.Fatalf("read %q", got)
	}
}

// TestSOCKS5Stream sends 20 MB through CONNECT to an echo and compares
// digests of what went and what came back.
func TestSOCKS5Stream(t *testing.T) {
	const size = 20 << 20
	server := startSOCKS5(t, &SOCKS5Server{})
	c, rep, _ := socksDo(t, server, cmdConnect, socksAddr{Name: "beta", Port: portOf(t, echoTCP(t))})
	if rep != repSucceeded {
		t.Fatalf("reply %#x", rep)
	}
	c.SetDeadline(time.Now().Add(4 * testTimeout))
	sent := sha256.New()
	werr := make(chan error, 1)
	go func() {
		rng := rand.NewChaCha8([32]byte{1})
		buf := make([]byte, 64<<10)
		for left := size; left > 0; left -= len(buf) {
			rng.Read(buf)
			sent.Write(buf)
			if _, err := c.Write(buf); err != nil {
				werr <- err
				return
			}
		}
		werr <- c.(*net.TCPConn).CloseWrite()
	}()
	got := sha256.New()
	n, err := io.Copy(got, c)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if n != size || !bytes.Equal(got.Sum(nil), sent.Sum(nil)) {
		t.Fatalf("got %d bytes with sha256 %x, sent %d with %x", n, got.Sum(nil), size, sent.Sum(nil))
	}
}

func TestSOCKS5Replies(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{})
	refused := refusedPort(t)
	for _, tc := range []struct {
		name string
		cmd  byte
		dst  socksAddr
		want byte
	}{
		{"unknown name", cmdConnect, socksAddr{Name: "gamma", Port: 80}, repHostUnreachable},
		{"refused", cmdConnect, socksAddr{IP: loopback4, Port: refused}, repConnectionRefused},
		{"refused by name", cmdConnect, socksAddr{Name: "beta", Port: refused}, repConnectionRefused},
		{"bind", cmdBind, socksAddr{IP: loopback4, Port: 80}, repCommandNotSupported},
		{"unknown command", 0x09, socksAddr{IP: loopback4, Port: 80}, repCommandNotSupported},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, rep, _ := socksDo(t, server, tc.cmd, tc.dst)
			if rep != tc.want {
				t.Fatalf("reply %#x, want %#x", rep, tc.want)
			}
			if _, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("after a refusal: %v, want EOF", err)
			}
		})
	}
}

func TestSOCKS5AddrTypeNotSupported(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{})
	c, _ := socksGreet(t, server, methodNoAuth)
	c.Write([]byte{socksVersion, cmdConnect, 0, 0x05, 1, 2, 3, 4, 0, 80})
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil || hdr[1] != repAddrTypeNotSupport {
		t.Fatalf("reply % x, %v; want 0x08", hdr, err)
	}
}

func TestSOCKS5NoAcceptableMethod(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{})
	const methodUserPass = 0x02
	c, m := socksGreet(t, server, methodUserPass)
	if m != methodNoAcceptable {
		t.Fatalf("method %#x for a client offering only username/password, want 0xFF", m)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after 0xFF: %v, want EOF", err)
	}
}

func TestSOCKS5SilentClient(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{HandshakeTimeout: 50 * time.Millisecond})
	for _, prefix := range [][]byte{nil, {socksVersion, 1, methodNoAuth}} {
		c, err := net.DialTimeout("tcp", server, testTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(prefix)
		c.SetDeadline(time.Now().Add(testTimeout))
		got, err := io.ReadAll(c) // the method selection, if any, then EOF
		if err != nil {
			t.Fatalf("silent client after %x: %v, want the server to close", prefix, err)
		}
		if len(prefix) > 0 && !bytes.Equal(got, []byte{socksVersion, methodNoAuth}) {
			t.Fatalf("read %x", got)
		}
	}
}

func TestSOCKS5Limit(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{MaxConns: 1})
	socksGreet(t, server, methodNoAuth) // holds the one slot
	c, err := net.DialTimeout("tcp", server, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(testTimeout))
	c.Write([]byte{socksVersion, 1, methodNoAuth})
	if _, err := io.ReadFull(c, make([]byte, 2)); err == nil {
		t.Fatal("connection over the limit was answered")
	}
}

// TestSOCKS5HTTPClient drives the server with net/http's own SOCKS5
// client, which sends names unresolved: curl --socks5-hostname does the same.
func TestSOCKS5HTTPClient(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{})
	web := webServer(t)
	client := &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "socks5h", Host: server})},
		Timeout:   testTimeout,
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get(fmt.Sprintf("http://beta:%d/hello", portOf(t, web)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "hello from /hello" {
		t.Fatalf("%s %q", resp.Status, body)
	}
}

// webServer serves "hello from PATH" on 127.0.0.1 and returns its address.
func webServer(t *testing.T) string {
	l := listen(t)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// udpDatagram is a SOCKS5 UDP request: header for dst, then payload.
func udpDatagram(frag byte, dst socksAddr, payload string) []byte {
	b := appendAddr([]byte{0, 0, frag}, dst)
	return append(b, payload...)
}

// readUDPReply reads one datagram on c and splits its SOCKS5 header.
func readUDPReply(t *testing.T, c *net.UDPConn) (socksAddr, string) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(testTimeout))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	frag, src, payload, err := parseUDPHeader(buf[:n])
	if err != nil || frag != 0 {
		t.Fatalf("reply header: frag %d, %v", frag, err)
	}
	return src, string(payload)
}

func TestSOCKS5UDPAssociate(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{})
	echo := echoUDP(t)
	echoAddr := socksAddr{IP: loopback4, Port: portOf(t, echo.LocalAddr().String())}
	u := listenUDP(t)
	uPort := portOf(t, u.LocalAddr().String())
	ctrl, rep, bnd := socksDo(t, server, cmdUDPAssociate, socksAddr{IP: netip.IPv4Unspecified(), Port: uPort})
	if rep != repSucceeded || bnd.IP != loopback4 || bnd.Port == 0 {
		t.Fatalf("reply %#x BND %v", rep, bnd)
	}
	relay := net.UDPAddrFromAddrPort(netip.AddrPortFrom(bnd.IP, bnd.Port))

	for _, dst := range []socksAddr{echoAddr, {Name: "beta", Port: echoAddr.Port}} {
		u.WriteTo(udpDatagram(0, dst, "hello "+dst.String()), relay)
		src, payload := readUDPReply(t, u)
		if src != echoAddr || payload != "hello "+dst.String() {
			t.Fatalf("reply from %v: %q", src, payload)
		}
	}

	// Dropped: a datagram from another port, a fragment, one to an
	// unknown name. Had any gone out, its echo would come back before
	// the marker sent after them.
	v := listenUDP(t)
	v.WriteTo(udpDatagram(0, echoAddr, "from another port"), relay)
	u.WriteTo(udpDatagram(1, echoAddr, "fragment"), relay)
	u.WriteTo(udpDatagram(0, socksAddr{Name: "gamma", Port: 53}, "unknown"), relay)
	u.WriteTo(udpDatagram(0, echoAddr, "marker"), relay)
	if _, payload := readUDPReply(t, u); payload != "marker" {
		t.Fatalf("got %q before the marker", payload)
	}

	// The association ends with its control connection: its relay port is
	// free again.
	ctrl.Close()
	eventually(t, "the relay socket to close", func() bool {
		c, err := net.ListenUDP("udp", relay)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}

// TestSOCKS5UDPLearnsPort checks an association whose request named no
// port: it takes the client's first source port, and only that one.
func TestSOCKS5UDPLearnsPort(t *testing.T) {
	server := startSOCKS5(t, &SOCKS5Server{})
	echo := echoUDP(t)
	echoAddr := socksAddr{IP: loopback4, Port: portOf(t, echo.LocalAddr().String())}
	_, rep, bnd := socksDo(t, server, cmdUDPAssociate, socksAddr{IP: netip.IPv4Unspecified()})
	if rep != repSucceeded {
		t.Fatalf("reply %#x", rep)
	}
	relay := net.UDPAddrFromAddrPort(netip.AddrPortFrom(bnd.IP, bnd.Port))
	u, v := listenUDP(t), listenUDP(t)
	u.WriteTo(udpDatagram(0, echoAddr, "first"), relay)
	if _, payload := readUDPReply(t, u); payload != "first" {
		t.Fatalf("got %q", payload)
	}
	v.WriteTo(udpDatagram(0, echoAddr, "second source"), relay)
	u.WriteTo(udpDatagram(0, echoAddr, "marker"), relay)
	if _, payload := readUDPReply(t, u); payload != "marker" {
		t.Fatalf("got %q before the marker", payload)
	}
}

func TestReplyCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want byte
	}{
		{&resolveError{"x", errUnknownName}, repHostUnreachable},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), repHostUnreachable},
		{&net.OpError{Op: "connect", Err: fmt.Errorf("connection was refused")}, repConnectionRefused},
		{&net.OpError{Op: "connect", Err: fmt.Errorf("network is unreachable")}, repNetworkUnreachable},
		{&net.OpError{Op: "connect", Err: fmt.Errorf("no route to host")}, repHostUnreachable},
		{fmt.Errorf("something else"), repGeneralFailure},
	} {
		if got := replyCode(tc.err); got != tc.want {
			t.Errorf("replyCode(%v) = %#x, want %#x", tc.err, got, tc.want)
		}
	}
}
