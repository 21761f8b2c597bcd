package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
)

// wgAsk sends one request to the wg socket at path as wg(8) does and
// returns the answer up to its blank line.
func wgAsk(t *testing.T, path, req string) string {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	var b strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("answer to %q cut after %q: %v", req, b.String(), err)
		}
		b.WriteString(line)
		if line == "\n" {
			return b.String()
		}
	}
}

func hexKey(k keys.Public) string { return hex.EncodeToString(k[:]) }

// TestWGSocket runs a node on the real tunnel with a wg socket: a get
// describes the mesh file's peers with their keys, endpoints and allowed
// IPs, a set is refused with EOPNOTSUPP and a log line saying why, a reload's
// new peer set shows in the next get, and the socket goes with the node.
func TestWGSocket(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	psk, _ := keys.NewPrivate()
	pskFile := filepath.Join(m.dir, "beta.psk")
	if err := os.WriteFile(pskFile, []byte(psk.Base64()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta [10.10.0.2/24,fd10::2/64] subnets=[10.20.2.0/24] endpoint=192.0.2.2:51820 preshared_key_file="+pskFile+" keepalive=25s",
		"gamma 10.10.0.3/24 endpoint=\"[2001:db8::3]:51820\"")
	wg := filepath.Join(t.TempDir(), "wireguard", "peer0.sock")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{real: true, wg: wg})

	fi, err := os.Stat(wg)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("wg socket mode %04o, want 0600", fi.Mode().Perm())
	}
	get := wgAsk(t, wg, "get=1\n\n")
	priv := m.keys["alpha"]
	for _, want := range []string{
		"private_key=" + hex.EncodeToString(priv[:]),
		"listen_port=51820",
		"public_key=" + hexKey(m.keys["beta"].Public()),
		"preshared_key=" + hex.EncodeToString(psk[:]),
		"endpoint=192.0.2.2:51820",
		"persistent_keepalive_interval=25",
		"allowed_ip=10.10.0.2/32", "allowed_ip=fd10::2/128", "allowed_ip=10.20.2.0/24",
		"public_key=" + hexKey(m.keys["gamma"].Public()),
		"endpoint=[2001:db8::3]:51820",
		"last_handshake_time_sec=0",
	} {
		if !strings.Contains(get, "\n"+want+"\n") && !strings.HasPrefix(get, want+"\n") {
			t.Errorf("get answer lacks %q:\n%s", want, get)
		}
	}
	if !strings.HasSuffix(get, "\nerrno=0\n\n") {
		t.Errorf("get answer does not end in errno=0:\n%s", get)
	}

	set := wgAsk(t, wg, "set=1\nlisten_port=1\npublic_key="+hexKey(m.keys["delta"].Public())+"\nallowed_ip=10.0.0.0/8\n\n")
	if want := fmt.Sprintf("errno=-%d\n\n", int(syscall.EOPNOTSUPP)); set != want {
		t.Errorf("set answer %q, want %q", set, want)
	}
	n.waitLog("wg set refused: the mesh file is the source of truth; edit it and run `peer reload`", 1, 5*time.Second)
	if !strings.Contains(n.logs.String(), "mesh="+m.path()) || !strings.Contains(n.logs.String(), "keys=\"[listen_port public_key allowed_ip]\" peers=1") {
		t.Errorf("the refusal does not name the mesh file and what was asked:\n%s", n.logs)
	}

	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 endpoint=192.0.2.2:51820",
		"delta 10.10.0.4/24 endpoint=192.0.2.4:51820")
	if code, out, errOut := n.reload(); code != 0 {
		t.Fatalf("reload: %d %s %s", code, out, errOut)
	}
	get = wgAsk(t, wg, "get=1\n\n")
	if !strings.Contains(get, "public_key="+hexKey(m.keys["delta"].Public())) || strings.Contains(get, hexKey(m.keys["gamma"].Public())) {
		t.Errorf("get after the reload does not show delta instead of gamma:\n%s", get)
	}
	if !strings.Contains(get, "preshared_key="+strings.Repeat("0", 64)) || strings.Contains(get, hex.EncodeToString(psk[:])) {
		t.Errorf("beta's preshared key is still served after the reload removed it:\n%s", get)
	}

	n.stop()
	if _, err := os.Lstat(wg); !os.IsNotExist(err) {
		t.Errorf("wg socket left after the node stopped: %v", err)
	}
}

// TestRunRefusesUnsafeWGSocketPath: the wg socket follows the control
// socket's rules, checked before any device is touched.
func TestRunRefusesUnsafeWGSocketPath(t *testing.T) {
	mesh, key := writeMesh(t, "")
	sock := filepath.Join(t.TempDir(), "p.sock")
	code, _, stderr := runCmd(t, "", "-config", mesh, "-key", key, "-socket", sock, "-wg-socket", key)
	if code != 2 || !strings.Contains(stderr, "wg socket "+key+": exists and is not a socket") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o1777); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, "", "-config", mesh, "-key", key, "-socket", sock, "-wg-socket", filepath.Join(open, "p.sock"))
	if code != 2 || !strings.Contains(stderr, "wg socket directory") {
		t.Fatalf("world-writable wg socket directory: exit %d, stderr %q", code, stderr)
	}
}

// TestWGSocketTaken: a node on the default wg socket path finds another
// node answering there (the same interface name in another network
// namespace: /var/run/wireguard is shared by all), warns and runs without
// one; the other node's socket is left alone. (With -wg-socket given, the
// same error ends the start, as the control socket's does.)
func TestWGSocketTaken(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	m.write(t, "", "alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24 endpoint=192.0.2.2:51820")
	wg := filepath.Join(t.TempDir(), "peer0.sock")
	startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{wg: wg})

	second := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{wg: wg, wgOpt: true, addr: "192.0.2.9"})
	second.waitLog("running without a wg socket", 1, 5*time.Second)
	if !strings.Contains(second.logs.String(), "another node is running on it") {
		t.Errorf("the warning does not say why:\n%s", second.logs)
	}
	if get := wgAsk(t, wg, "get=1\n\n"); !strings.HasSuffix(get, "errno=0\n\n") {
		t.Errorf("the first node's wg socket no longer answers:\n%s", get)
	}
}
