package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// startHTTPProxy serves an HTTPProxy on 127.0.0.1 and returns its address.
func startHTTPProxy(t *testing.T, p *HTTPProxy) string {
	t.Helper()
	p.Dialer = testDialer()
	p.Log = testLog(t)
	l := listen(t)
	serve(t, func(ctx context.Context) error { return p.Serve(ctx, l) })
	return l.Addr().String()
}

// proxyClient is an http.Client that goes through the proxy at addr.
func proxyClient(t *testing.T, addr string, tr *http.Transport) *http.Client {
	if tr == nil {
		tr = &http.Transport{}
	}
	tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: addr})
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: testTimeout}
}

// get fetches u with c and returns the status and body.
func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

func TestHTTPProxyGet(t *testing.T) {
	var hop string
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hop = r.Header.Get("Proxy-Connection") + r.Header.Get("X-Hop")
		fmt.Fprintf(w, "file %s host %s", r.URL.Path, r.Host)
	}))
	defer web.Close()
	port := portOf(t, web.Listener.Addr().String())
	c := proxyClient(t, startHTTPProxy(t, &HTTPProxy{}), nil)

	u := fmt.Sprintf("http://beta:%d/file", port)
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "must not pass")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := fmt.Sprintf("file /file host beta:%d", port); resp.StatusCode != 200 || string(body) != want {
		t.Fatalf("%s %q, want 200 %q", resp.Status, body, want)
	}
	if hop != "" {
		t.Fatalf("hop-by-hop headers reached the server: %q", hop)
	}
	// Again, over the kept-alive connection.
	if code, _ := get(t, c, u); code != 200 {
		t.Fatalf("second GET: %d", code)
	}
}

func TestHTTPProxyConnectTLS(t *testing.T) {
	web := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secret")
	}))
	defer web.Close()
	tr := web.Client().Transport.(*http.Transport).Clone()
	c := proxyClient(t, startHTTPProxy(t, &HTTPProxy{}), tr)
	if code, body := get(t, c, web.URL+"/"); code != 200 || body != "secret" {
		t.Fatalf("%d %q", code, body)
	}
}

// rawProxy sends a raw request to the proxy and returns the connection and
// the response's header.
func rawProxy(t *testing.T, proxy, request string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c, br, resp
}

// TestHTTPProxyConnectHalfClose sends data in the same packet as the
// CONNECT header and half-closes: the echo's data and EOF come back.
func TestHTTPProxyConnectHalfClose(t *testing.T) {
	proxy := startHTTPProxy(t, &HTTPProxy{})
	port := portOf(t, echoTCP(t))
	c, br, resp := rawProxy(t, proxy, fmt.Sprintf("CONNECT beta:%d HTTP/1.1\r\nHost: beta:%d\r\n\r\neager", port, port))
	if resp.StatusCode != 200 || resp.Status != "200 Connection established" {
		t.Fatalf("CONNECT: %s", resp.Status)
	}
	io.WriteString(c, " and late")
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(br)
	if err != nil || string(got) != "eager and late" {
		t.Fatalf("echo %q, %v", got, err)
	}
}

func TestHTTPProxyErrors(t *testing.T) {
	proxy := startHTTPProxy(t, &HTTPProxy{})
	refused := refusedPort(t)
	for _, tc := range []struct {
		name, request string
		code          int
		body          string // a part of it
	}{
		{"unknown name", "GET http://gamma/ HTTP/1.1\r\nHost: gamma\r\n\r\n", 502, "gamma"},
		{"connect unknown name", "CONNECT gamma:443 HTTP/1.1\r\nHost: gamma:443\r\n\r\n", 502, "gamma:443"},
		{"refused", fmt.Sprintf("GET http://beta:%d/ HTTP/1.1\r\nHost: beta\r\n\r\n", refused), 502, "refused"},
		{"connect refused", fmt.Sprintf("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n", refused), 502, "refused"},
		{"origin form", "GET /file HTTP/1.1\r\nHost: beta\r\n\r\n", 400, "absolute"},
		{"https absolute", "GET https://beta/ HTTP/1.1\r\nHost: beta\r\n\r\n", 400, "https"},
		{"connect without port", "CONNECT beta HTTP/1.1\r\nHost: beta\r\n\r\n", 400, "host:port"},
		{"garbage", "NOT HTTP\r\n\r\n", 400, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, resp := rawProxy(t, proxy, tc.request)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || !strings.Contains(string(body), tc.body) {
				t.Fatalf("%s %q, want %d containing %q", resp.Status, body, tc.code, tc.body)
			}
		})
	}
}

func TestHTTPProxySilentClient(t *testing.T) {
	proxy := startHTTPProxy(t, &HTTPProxy{HandshakeTimeout: 50 * time.Millisecond})
	c, err := net.DialTimeout("tcp", proxy, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET http://beta/ HTTP/1.1\r\n") // and nothing more
	c.SetDeadline(time.Now().Add(testTimeout))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("silent client: %v, want the proxy to close", err)
	}
}

// TestHTTPProxyCloseEndsTunnels checks that Serve returns, and tunnels
// close, when its context ends while a CONNECT tunnel is open.
func TestHTTPProxyCloseEndsTunnels(t *testing.T) {
	p := &HTTPProxy{Dialer: testDialer(), Log: testLog(t)}
	l := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Serve(ctx, l) }()
	port := portOf(t, echoTCP(t))
	_, br, resp := rawProxy(t, l.Addr().String(), fmt.Sprintf("CONNECT beta:%d HTTP/1.1\r\nHost: beta\r\n\r\n", port))
	if resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testTimeout):
		t.Fatal("Serve did not return")
	}
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("tunnel after Serve returned: %v, want EOF", err)
	}
}
