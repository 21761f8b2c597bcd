package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/tundev"
	xproxy "golang.org/x/net/proxy"
)

// The first full-stack test that needs no root: two nodes of driver
// netstack, each a real runNode with the host's UDP sockets on loopback,
// the real tunnel and gVisor's stack. Nothing may run a system command.

// netstackNode is one node of the test, running until the test ends.
type netstackNode struct {
	stack  *tundev.Netstack
	socket string
	logs   *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// freeUDPPort returns a UDP port free on 127.0.0.1 a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startNetstackNode runs the node of key in mesh with args, and waits
// until its control socket answers.
func startNetstackNode(t *testing.T, mesh, key string, args ...string) *netstackNode {
	t.Helper()
	n := &netstackNode{socket: filepath.Join(t.TempDir(), "peer.sock"), logs: &lockedBuffer{}, done: make(chan error, 1)}
	rf := testRunFlags(t, append([]string{"-config", mesh, "-key", key, "-socket", n.socket, "-wg-socket", "none"}, args...))
	rf.wgSocket = ""
	node, capOpts, err := rf.checkStart("linux")
	if err != nil {
		t.Fatal(err)
	}
	sys := hostSystem()
	var mu sync.Mutex
	sys.openNetstack = func(name string, addrs []netip.Addr, mtu int) (*tundev.Netstack, error) {
		s, err := tundev.OpenNetstack(name, addrs, mtu)
		mu.Lock()
		n.stack = s
		mu.Unlock()
		return s, err
	}
	sys.openTUN = func(string, string, int) (tundev.Device, error) {
		t.Error("a netstack node opened a TUN")
		return nil, os.ErrPermission
	}
	noCommands := func(_ context.Context, cmds [][]string) error {
		if len(cmds) > 0 {
			t.Errorf("a netstack node ran system commands: %q", cmds)
		}
		return nil
	}
	sys.run, sys.runTolerant = noCommands, noCommands
	sys.readSysctl, sys.notify = nil, nil
	level := new(slog.LevelVar)
	log := slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- runNode(ctx, node, rf, capOpts, log, level, sys) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-n.done:
			if err != nil {
				t.Errorf("node: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("node did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, _ := runCmd(t, "", "status", "-socket", n.socket); code == 0 {
			break
		}
		select {
		case err := <-n.done:
			t.Fatalf("node stopped: %v\n%s", err, n.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("node not up within 10 s:\n%s", n.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if n.stack == nil {
		t.Fatal("the node did not open a netstack")
	}
	return n
}

// writeNetstackMesh writes the mesh of alpha and beta, both of driver
// netstack on loopback ports, and both keys.
func writeNetstackMesh(t *testing.T) (mesh, alphaKey, betaKey string) {
	t.Helper()
	dir := t.TempDir()
	a, _ := keys.NewPrivate()
	b, _ := keys.NewPrivate()
	alphaKey, betaKey = filepath.Join(dir, "alpha.key"), filepath.Join(dir, "beta.key")
	for path, k := range map[string]keys.Private{alphaKey: a, betaKey: b} {
		if err := os.WriteFile(path, []byte(k.Base64()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mesh = filepath.Join(dir, "mesh.yaml")
	y := fmt.Sprintf(`interface:
  driver: netstack
peers:
  - name: alpha
    public_key: %q
    address: [10.10.0.1/24, fd10::1/64]
    endpoint: 127.0.0.1:%d
  - name: beta
    public_key: %q
    address: [10.10.0.2/24, fd10::2/64]
    endpoint: 127.0.0.1:%d
`, a.Public(), freeUDPPort(t), b.Public(), freeUDPPort(t))
	if err := os.WriteFile(mesh, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return mesh, alphaKey, betaKey
}

func TestNetstackNodes(t *testing.T) {
	mesh, alphaKey, betaKey := writeNetstackMesh(t)

	// A service on the host that beta exposes to the mesh on port 8080.
	page := bytes.Repeat([]byte("through the mesh\n"), 1000)
	web, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(page) })}
	go srv.Serve(web)
	defer srv.Close()

	// And a UDP echo on the host that beta exposes on port 53.
	echo, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := echo.ReadFrom(buf)
			if err != nil {
				return
			}
			echo.WriteTo(append([]byte("echo "), buf[:n]...), from)
		}
	}()

	socks, httpProxy, forward := freePort(t), freePort(t), freePort(t)
	udpForward := fmt.Sprint(freeUDPPort(t))
	beta := startNetstackNode(t, mesh, betaKey, "-expose", "tcp:8080="+web.Addr().String(),
		"-expose", "udp:53="+echo.LocalAddr().String())
	pcap := filepath.Join(t.TempDir(), "alpha.pcapng")
	alpha := startNetstackNode(t, mesh, alphaKey, "-pcap", pcap,
		"-socks5", socks, "-http-proxy", httpProxy,
		"-forward", "tcp:"+forward+"=beta:8080", "-forward", "udp:"+udpForward+"=beta:53")

	t.Run("ping", func(t *testing.T) {
		for _, tc := range []struct {
			from *netstackNode
			to   string
		}{{alpha, "10.10.0.2"}, {alpha, "fd10::2"}, {beta, "10.10.0.1"}, {beta, "fd10::1"}} {
			if err := tc.from.stack.Ping(netip.MustParseAddr(tc.to), 10*time.Second); err != nil {
				t.Error(err)
			}
		}
	})

	t.Run("tcp 20 MB", func(t *testing.T) {
		const size = 20 << 20
		l, err := beta.stack.Net().ListenTCPAddrPort(netip.MustParseAddrPort("10.10.0.2:9000"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			h := sha256.New()
			io.Copy(h, c)
			c.Write(h.Sum(nil))
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := alpha.stack.Net().DialContextTCPAddrPort(ctx, netip.MustParseAddrPort("10.10.0.2:9000"))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		h := sha256.New()
		start := time.Now()
		if _, err := io.Copy(io.MultiWriter(c, h), io.LimitReader(rand.Reader, size)); err != nil {
			t.Fatal(err)
		}
		c.CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || !bytes.Equal(got, h.Sum(nil)) {
			t.Fatalf("beta's sha256 %x, want %x (err %v)", got, h.Sum(nil), err)
		}
		t.Logf("20 MiB in %v", time.Since(start).Round(time.Millisecond))
	})

	get := func(t *testing.T, client *http.Client, url string) {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, page) {
			t.Fatalf("GET %s: %s, %d bytes, err %v", url, resp.Status, len(body), err)
		}
	}
	t.Run("socks5 by name", func(t *testing.T) {
		d, err := xproxy.SOCKS5("tcp", "127.0.0.1:"+socks, nil, xproxy.Direct)
		if err != nil {
			t.Fatal(err)
		}
		tr := &http.Transport{DialContext: d.(xproxy.ContextDialer).DialContext}
		defer tr.CloseIdleConnections()
		get(t, &http.Client{Transport: tr, Timeout: 20 * time.Second}, "http://beta:8080/")
		get(t, &http.Client{Transport: tr, Timeout: 20 * time.Second}, "http://[fd10::2]:8080/")
	})
	t.Run("http proxy", func(t *testing.T) {
		u, _ := url.Parse("http://127.0.0.1:" + httpProxy)
		tr := &http.Transport{Proxy: http.ProxyURL(u)}
		defer tr.CloseIdleConnections()
		get(t, &http.Client{Transport: tr, Timeout: 20 * time.Second}, "http://beta:8080/")
	})
	t.Run("forward", func(t *testing.T) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		get(t, &http.Client{Transport: tr, Timeout: 20 * time.Second}, "http://127.0.0.1:"+forward+"/")
	})
	t.Run("udp forward and expose", func(t *testing.T) {
		c, err := net.Dial("udp", "127.0.0.1:"+udpForward)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := udpExchange(t, c, []byte("hello")); string(got) != "echo hello" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("socks5 udp associate", func(t *testing.T) {
		ctl, err := net.DialTimeout("tcp", "127.0.0.1:"+socks, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer ctl.Close()
		ctl.SetDeadline(time.Now().Add(10 * time.Second))
		// No authentication; UDP ASSOCIATE from any address.
		ctl.Write([]byte{5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0})
		reply := make([]byte, 12)
		if _, err := io.ReadFull(ctl, reply); err != nil || reply[0] != 5 || reply[1] != 0 || reply[3] != 0 || reply[5] != 1 {
			t.Fatalf("associate: %x %v", reply, err)
		}
		relay := netip.AddrPortFrom(netip.AddrFrom4([4]byte(reply[6:10])), uint16(reply[10])<<8|uint16(reply[11]))
		c, err := net.Dial("udp", relay.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// To beta's exposed port 53, by name: RSV RSV FRAG ATYP=3 LEN "beta" PORT.
		header := append([]byte{0, 0, 0, 3, 4}, "beta"...)
		header = append(header, 0, 53)
		got := udpExchange(t, c, append(header, "by name"...))
		if len(got) < 10 || got[3] != 1 || string(got[len(got)-len("echo by name"):]) != "echo by name" ||
			netip.AddrFrom4([4]byte(got[4:8])) != netip.MustParseAddr("10.10.0.2") {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("through the tunnel", func(t *testing.T) {
		// The 20 MB went as WireGuard datagrams, not some shortcut.
		code, out, _ := runCmd(t, "", "status", "-json", "-socket", alpha.socket)
		var st nodeStatus
		if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || len(st.Peers) != 1 {
			t.Fatalf("status -json: exit %d, %v\n%s", code, err, out)
		}
		if p := st.Peers[0]; p.Name != "beta" || p.TxBytes < 20<<20 || p.RxPackets == 0 {
			t.Fatalf("alpha's counters of beta: %+v", p)
		}
	})
	t.Run("pcap", func(t *testing.T) {
		// The capture sees the stack's packets as it would a TUN's.
		deadline := time.Now().Add(5 * time.Second)
		for {
			fi, err := os.Stat(pcap)
			if err == nil && fi.Size() > 1<<20 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("pcap after 20 MiB: %v, %v", fi, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	t.Run("status", func(t *testing.T) {
		code, out, stderr := runCmd(t, "", "status", "-socket", alpha.socket)
		if code != 0 || !strings.Contains(out, "interface peer0  driver netstack") || !strings.Contains(out, "serves: socks5 127.0.0.1:") ||
			!regexp.MustCompile(`(?m)^beta .* ago `).MatchString(out) {
			t.Fatalf("status exit %d:\n%s%s", code, out, stderr)
		}
	})
	if t.Failed() {
		t.Logf("alpha:\n%s\nbeta:\n%s", alpha.logs, beta.logs)
	}
}

func TestNetstackRefusals(t *testing.T) {
	mesh, alphaKey, _ := writeNetstackMesh(t)
	y, err := os.ReadFile(mesh)
	if err != nil {
		t.Fatal(err)
	}
	withSubnet := filepath.Join(t.TempDir(), "subnet.yaml")
	s := strings.Replace(string(y), "    address: [10.10.0.1/24, fd10::1/64]\n", "    address: [10.10.0.1/24, fd10::1/64]\n    subnets: [10.20.1.0/24]\n    exit: true\n", 1)
	if err := os.WriteFile(withSubnet, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(t.TempDir(), "kernel.yaml")
	if err := os.WriteFile(kernel, []byte(strings.Replace(string(y), "driver: netstack", "driver: water", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	kernelSubnet := filepath.Join(t.TempDir(), "kernel-subnet.yaml")
	if err := os.WriteFile(kernelSubnet, []byte(strings.Replace(s, "driver: netstack", "driver: water", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"subnets and exit", []string{"-config", withSubnet, "-key", alphaKey},
			[]string{withSubnet + ":4: peer \"alpha\": driver netstack cannot route subnets", "cannot serve as an exit"}},
		{"subnets with -driver", []string{"-config", kernelSubnet, "-key", alphaKey, "-driver", "netstack"},
			[]string{"cannot route subnets"}},
		{"expose on a kernel node", []string{"-config", kernel, "-key", alphaKey, "-expose", "tcp:80=127.0.0.1:8080"},
			[]string{"-expose needs driver netstack"}},
		{"bad forward", []string{"-config", mesh, "-key", alphaKey, "-forward", "sctp:1=beta:2"},
			[]string{"-forward sctp:1=beta:2"}},
		{"bad socks5", []string{"-config", mesh, "-key", alphaKey, "-socks5", "127.0.0.1:99999"},
			[]string{"-socks5"}},
	} {
		code, _, stderr := runCmd(t, "", tc.args...)
		if code != 2 {
			t.Errorf("%s: exit %d, want 2; stderr %q", tc.name, code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: stderr %q, want %q", tc.name, stderr, w)
			}
		}
	}
	if code, _, stderr := runCmd(t, "", "check", "-config", withSubnet, "-key", alphaKey); code != 2 || !strings.Contains(stderr, withSubnet+":4:") {
		t.Errorf("check of a netstack node with subnets: exit %d, stderr %q", code, stderr)
	}
	// The check and the script say there is nothing to do on the host.
	if code, out, _ := runCmd(t, "", "check", "-config", mesh, "-key", alphaKey); code != 0 || !strings.Contains(out, "driver netstack") || strings.Contains(out, "ip ") {
		t.Errorf("check: exit %d\n%s", code, out)
	}
	if code, out, _ := runCmd(t, "", "routes", "-config", mesh, "-key", alphaKey); code != 0 || !strings.Contains(out, "nothing to do") || strings.Contains(out, "ip ") {
		t.Errorf("routes: exit %d\n%s", code, out)
	}
}

func TestNetstackReload(t *testing.T) {
	mesh, alphaKey, _ := writeNetstackMesh(t)
	alpha := startNetstackNode(t, mesh, alphaKey)
	y, _ := os.ReadFile(mesh)
	// A new peer: applied, and no system command runs (startNetstackNode
	// fails the test if one does).
	g, _ := keys.NewPrivate()
	withGamma := string(y) + fmt.Sprintf("  - name: gamma\n    public_key: %q\n    address: [10.10.0.3/24]\n", g.Public())
	if err := os.WriteFile(mesh, []byte(withGamma), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, stderr := runCmd(t, "", "reload", "-socket", alpha.socket); code != 0 || !strings.Contains(out, "added peers: gamma") {
		t.Fatalf("reload adding gamma: exit %d\n%s%s", code, out, stderr)
	}
	y = []byte(withGamma)
	if err := os.WriteFile(mesh, []byte(strings.Replace(string(y), "10.10.0.1/24", "10.10.0.9/24", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, "", "reload", "-socket", alpha.socket)
	if code == 0 || !strings.Contains(out+stderr, "addresses of a netstack node") || !strings.Contains(out+stderr, "restart peer") {
		t.Fatalf("reload: exit %d\n%s%s", code, out, stderr)
	}
}

// udpExchange sends msg on c until an answer comes (a datagram may be
// lost while the first handshake is under way) and returns it.
func udpExchange(t *testing.T, c net.Conn, msg []byte) []byte {
	t.Helper()
	buf := make([]byte, 2048)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			return buf[:n]
		}
	}
	t.Fatalf("no answer to %q in 10 s", msg)
	return nil
}
