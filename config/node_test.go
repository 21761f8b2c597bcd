package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peer-vpn/peer/keys"
)

// testMesh is a three-peer mesh with fresh keys, written to a temp dir
// together with each peer's private key file (mode 0600).
type testMesh struct {
	dir  string
	file string
	priv [3]keys.Private
	keys [3]string // key file paths
}

const meshTemplate = `private_key_file: %s
peers:
  - name: alpha
    public_key: %s
    address: [10.10.0.1/24, fd10::1/64]
    endpoint: 198.51.100.1:51999
  - name: beta
    public_key: %s
    address: 10.10.0.2/24
    subnets: [10.20.1.0/24, 10.20.0.0/24]
    endpoint: beta.example:51820
    keepalive: 25s
  - name: gamma
    public_key: %s
    address: fd10::3/64
`

func newTestMesh(t *testing.T, privateKeyFile string) (*testMesh, *Mesh) {
	t.Helper()
	tm := &testMesh{dir: t.TempDir()}
	var pubs [3]any
	for i := range tm.priv {
		k, err := keys.NewPrivate()
		if err != nil {
			t.Fatal(err)
		}
		tm.priv[i] = k
		pubs[i] = k.Public().String()
		tm.keys[i] = filepath.Join(tm.dir, fmt.Sprintf("key%d", i))
		writeFile(t, tm.keys[i], k.Base64()+"\n", 0o600)
	}
	tm.file = filepath.Join(tm.dir, "mesh.yaml")
	writeFile(t, tm.file, fmt.Sprintf(meshTemplate, append([]any{privateKeyFile}, pubs[:]...)...), 0o644)
	m, err := Load(tm.file)
	if err != nil {
		t.Fatal(err)
	}
	return tm, m
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is filtered by umask
		t.Fatal(err)
	}
}

// fakeResolver answers from a table and fails the test for literals.
func fakeResolver(t *testing.T, table map[string][]netip.Addr) func(string) ([]netip.Addr, error) {
	return func(host string) ([]netip.Addr, error) {
		if _, err := netip.ParseAddr(host); err == nil {
			t.Errorf("resolver called for IP literal %q", host)
		}
		if a, ok := table[host]; ok {
			return a, nil
		}
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
}

var betaAddr = map[string][]netip.Addr{"beta.example": {netip.MustParseAddr("::ffff:203.0.113.2"), netip.MustParseAddr("2001:db8::2")}}

func TestNodeAlpha(t *testing.T) {
	tm, m := newTestMesh(t, "key0") // relative: resolves next to the mesh file
	n, err := m.Node(NodeOptions{Resolve: fakeResolver(t, betaAddr)})
	if err != nil {
		t.Fatal(err)
	}
	if n.Self != &m.Peers[0] || n.Private != tm.priv[0] || n.Mesh != m {
		t.Fatalf("self = %+v", n.Self)
	}
	if n.ListenPort != 51999 {
		t.Errorf("ListenPort = %d, want alpha's endpoint port 51999", n.ListenPort)
	}
	if n.Interface != m.Interface {
		t.Errorf("Interface = %+v", n.Interface)
	}
	if len(n.Remotes) != 2 {
		t.Fatalf("remotes = %+v", n.Remotes)
	}
	beta, gamma := n.Remotes[0], n.Remotes[1]
	if beta.Peer != &m.Peers[1] || gamma.Peer != &m.Peers[2] {
		t.Errorf("remote peers = %v %v", beta.Peer.Name, gamma.Peer.Name)
	}
	if want := netip.MustParseAddrPort("203.0.113.2:51820"); beta.Endpoint != want {
		t.Errorf("beta endpoint = %v, want %v (first address, unmapped)", beta.Endpoint, want)
	}
	if gamma.Endpoint.IsValid() {
		t.Errorf("gamma has no endpoint, got %v", gamma.Endpoint)
	}
	if !beta.Preshared.IsZero() || !gamma.Preshared.IsZero() {
		t.Errorf("preshared keys set without files")
	}
	if !equalPrefixes(beta.Prefixes, pfx("10.10.0.2/32", "10.20.1.0/24", "10.20.0.0/24")) {
		t.Errorf("beta prefixes = %v", beta.Prefixes)
	}
	want := pfx("10.10.0.2/32", "10.20.0.0/24", "10.20.1.0/24", "fd10::3/128")
	if got := n.Routes(); !equalPrefixes(got, want) {
		t.Errorf("Routes = %v, want %v", got, want)
	}
}

func TestNodeGammaRoutesAndDefaults(t *testing.T) {
	tm, m := newTestMesh(t, "")
	n, err := m.Node(NodeOptions{KeyFile: tm.keys[2], Resolve: fakeResolver(t, betaAddr)})
	if err != nil {
		t.Fatal(err)
	}
	if n.Self.Name != "gamma" || n.ListenPort != DefaultListenPort {
		t.Errorf("self %s port %d, want gamma %d", n.Self.Name, n.ListenPort, DefaultListenPort)
	}
	if want := netip.MustParseAddrPort("198.51.100.1:51999"); n.Remotes[0].Endpoint != want {
		t.Errorf("alpha endpoint = %v", n.Remotes[0].Endpoint)
	}
	want := pfx("10.10.0.1/32", "10.10.0.2/32", "10.20.0.0/24", "10.20.1.0/24", "fd10::1/128")
	if got := n.Routes(); !equalPrefixes(got, want) {
		t.Errorf("Routes = %v, want %v", got, want)
	}
}

func TestRoutesDeduplicates(t *testing.T) {
	p := Peer{Addresses: pfx("10.10.0.2/24"), Subnets: pfx("10.10.0.2/32", "10.9.0.0/16")}
	n := &Node{Remotes: []Remote{{Prefixes: p.Prefixes()}, {Prefixes: pfx("fd00::/8", "10.9.0.0/16")}}}
	if got, want := n.Routes(), pfx("10.9.0.0/16", "10.10.0.2/32", "fd00::/8"); !equalPrefixes(got, want) {
		t.Errorf("Routes = %v, want %v", got, want)
	}
}

func TestNodeOverrides(t *testing.T) {
	tm, m := newTestMesh(t, "/nonexistent/private.key")
	n, err := m.Node(NodeOptions{KeyFile: tm.keys[0], Iface: "wg7", ListenPort: 40000, Resolve: fakeResolver(t, betaAddr)})
	if err != nil {
		t.Fatal(err)
	}
	if n.Self.Name != "alpha" || n.ListenPort != 40000 || n.Interface.Name != "wg7" || n.Interface.MTU != 1420 {
		t.Errorf("node = %s port %d iface %+v", n.Self.Name, n.ListenPort, n.Interface)
	}
	if m.Interface.Name != "peer0" {
		t.Errorf("override changed the mesh: %+v", m.Interface)
	}
	for _, opts := range []NodeOptions{
		{KeyFile: tm.keys[0], Iface: "much-too-long-name"},
		{KeyFile: tm.keys[0], Iface: "a/b"},
		{KeyFile: tm.keys[0], ListenPort: 65536},
		{KeyFile: tm.keys[0], ListenPort: -1},
	} {
		if _, err := m.Node(opts); err == nil {
			t.Errorf("Node(%+v) accepted", opts)
		}
	}
	// Without -key, private_key_file is used, and here it does not exist.
	_, err = m.Node(NodeOptions{})
	var e *Error
	if !errors.As(err, &e) || e.File != "/nonexistent/private.key" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing private_key_file: %v", err)
	}
}

func TestNodeKeyFileRefusals(t *testing.T) {
	tm, m := newTestMesh(t, "")
	dir := tm.dir
	stranger, _ := keys.NewPrivate()
	tests := []struct {
		name, content string
		mode          os.FileMode
		msg           string
	}{
		{"world readable", tm.priv[0].Base64(), 0o644, "mode 0644 lets group or others read or write it; run chmod 600"},
		{"group readable", tm.priv[0].Base64(), 0o640, "mode 0640"},
		{"group writable", tm.priv[0].Base64(), 0o620, "mode 0620"},
		{"not base64", "hello world", 0o600, "private key is not valid base64"},
		{"short", "AAAA", 0o600, "private key is 3 bytes, want 32"},
		{"empty", "", 0o600, "want 32"},
		{"too large", strings.Repeat("A", maxKeyFileSize+1), 0o600, "larger than"},
		{"unknown key", stranger.Base64(), 0o400, "no peer has public_key " + stranger.Public().String()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			writeFile(t, path, tc.content, tc.mode)
			_, err := m.Node(NodeOptions{KeyFile: path})
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name %s and say %q", err, path, tc.msg)
			}
		})
	}
	if _, err := m.Node(NodeOptions{KeyFile: dir}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory as key file: %v", err)
	}
	if _, err := m.Node(NodeOptions{}); err == nil || !strings.Contains(err.Error(), "no private key file") {
		t.Errorf("no key file at all: %v", err)
	}
}

func TestNodeEndpointDoesNotResolve(t *testing.T) {
	tm, m := newTestMesh(t, "")
	_, err := m.Node(NodeOptions{KeyFile: tm.keys[0], Resolve: fakeResolver(t, nil)})
	var e *Error
	if !errors.As(err, &e) || e.File != tm.file || e.Line != 7 || !strings.Contains(e.Msg, `peer "beta": endpoint "beta.example:51820": host "beta.example" does not resolve`) {
		t.Errorf("got %v", err)
	}
	// An answer with no usable address is refused too.
	_, err = m.Node(NodeOptions{KeyFile: tm.keys[0], Resolve: fakeResolver(t, map[string][]netip.Addr{"beta.example": {netip.IPv4Unspecified()}})})
	if !errors.As(err, &e) || e.Line != 7 || !strings.Contains(e.Msg, "usable address") {
		t.Errorf("got %v", err)
	}
	// beta's own node never resolves its own name.
	if _, err := m.Node(NodeOptions{KeyFile: tm.keys[1], Resolve: fakeResolver(t, nil)}); err != nil {
		t.Errorf("beta: %v", err)
	}
}

func TestNodePreshared(t *testing.T) {
	dir := t.TempDir()
	var priv [3]keys.Private
	var pub [3]any
	for i := range priv {
		priv[i], _ = keys.NewPrivate()
		pub[i] = priv[i].Public().String()
		writeFile(t, filepath.Join(dir, fmt.Sprintf("key%d", i)), priv[i].Base64(), 0o600)
	}
	psk := func(b byte) keys.Preshared { var k keys.Preshared; k[0], k[31] = b, b; return k }
	writeFile(t, filepath.Join(dir, "alpha.psk"), psk(1).Base64(), 0o600)
	writeFile(t, filepath.Join(dir, "beta.psk"), psk(2).Base64(), 0o600)
	src := fmt.Sprintf(`peers:
  - name: alpha
    public_key: %s
    address: 10.10.0.1/24
    preshared_key_file: alpha.psk
  - name: beta
    public_key: %s
    address: 10.10.0.2/24
    preshared_key_file: beta.psk
  - name: gamma
    public_key: %s
    address: 10.10.0.3/24
`, pub[:]...)
	m, err := Parse(filepath.Join(dir, "mesh.yaml"), []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	// Both ends of every pair must pick the same key.
	want := map[[2]string]keys.Preshared{
		{"alpha", "beta"}: psk(1), {"alpha", "gamma"}: psk(1), {"beta", "gamma"}: psk(2),
	}
	for i := range priv {
		n, err := m.Node(NodeOptions{KeyFile: filepath.Join(dir, fmt.Sprintf("key%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range n.Remotes {
			pair := [2]string{n.Self.Name, r.Peer.Name}
			if pair[0] > pair[1] {
				pair[0], pair[1] = pair[1], pair[0]
			}
			if r.Preshared != want[pair] {
				t.Errorf("%s sees %s with psk %v, want %v", n.Self.Name, r.Peer.Name, r.Preshared, want[pair])
			}
		}
	}

	// Problems with a preshared key file name that file and the peer.
	for _, tc := range []struct {
		content string
		mode    os.FileMode
		msg     string
	}{
		{psk(2).Base64(), 0o604, "mode 0604"},
		{"garbage", 0o600, "not valid base64"},
	} {
		writeFile(t, filepath.Join(dir, "beta.psk"), tc.content, tc.mode)
		_, err := m.Node(NodeOptions{KeyFile: filepath.Join(dir, "key2")})
		var e *Error
		if !errors.As(err, &e) || e.File != filepath.Join(dir, "beta.psk") || !strings.Contains(e.Msg, tc.msg) || !strings.Contains(e.Msg, `peer "beta", line 6`) {
			t.Errorf("got %v, want %q", err, tc.msg)
		}
	}
	os.Remove(filepath.Join(dir, "beta.psk"))
	if _, err := m.Node(NodeOptions{KeyFile: filepath.Join(dir, "key2")}); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "beta.psk") {
		t.Errorf("missing psk file: %v", err)
	}
}

// TestExampleFile parses peers.example.yaml. Its private keys do not exist,
// so the test swaps beta's public key for a fresh one and checks that Node
// finds beta with it.
func TestExampleFile(t *testing.T) {
	m, err := Load(filepath.Join("..", "peers.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Peers) != 4 || m.Peers[0].Name != "alpha" || m.Peers[1].Name != "beta" || m.Peers[2].Name != "gamma" || m.Peers[3].Name != "delta" {
		t.Fatalf("peers = %+v", m.Peers)
	}
	if !m.Peers[0].Relay || m.Peers[1].Relay || m.Peers[2].Relay || m.Peers[3].Relay || m.Peers[3].Endpoint != "" {
		t.Errorf("relays: want alpha only, and delta without an endpoint: %+v", m.Peers)
	}
	if m.PrivateKeyFile != "/etc/peer/private.key" || m.Interface != (Interface{"peer0", 1420, "auto"}) {
		t.Errorf("mesh = %+v", m)
	}
	if m.Peers[2].Keepalive.Seconds() != 25 || !equalPrefixes(m.Peers[1].Subnets, pfx("10.20.1.0/24")) {
		t.Errorf("gamma keepalive %v, beta subnets %v", m.Peers[2].Keepalive, m.Peers[1].Subnets)
	}

	priv, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "beta.key")
	writeFile(t, keyFile, priv.Base64()+"\n", 0o600)
	if _, err := m.Node(NodeOptions{KeyFile: keyFile}); err == nil || !strings.Contains(err.Error(), priv.Public().String()) {
		t.Fatalf("a key not in the example was accepted or not named: %v", err)
	}
	m.Peers[1].PublicKey = priv.Public()
	n, err := m.Node(NodeOptions{KeyFile: keyFile, Resolve: fakeResolver(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if n.Self.Name != "beta" || n.ListenPort != 51820 {
		t.Errorf("self %s port %d", n.Self.Name, n.ListenPort)
	}
	if n.Remotes[0].Endpoint != netip.MustParseAddrPort("198.51.100.1:51820") ||
		n.Remotes[1].Endpoint != netip.MustParseAddrPort("[2001:db8::3]:51820") {
		t.Errorf("endpoints %v %v", n.Remotes[0].Endpoint, n.Remotes[1].Endpoint)
	}
	want := pfx("10.10.0.1/32", "10.10.0.3/32", "10.10.0.4/32", "fd10::1/128", "fd10::3/128", "fd10::4/128")
	if got := n.Routes(); !equalPrefixes(got, want) {
		t.Errorf("Routes = %v, want %v", got, want)
	}
}
