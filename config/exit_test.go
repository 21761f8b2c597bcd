package config

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peer-vpn/peer/keys"
)

// exitMesh is a mesh of an exit, a laptop that uses it (unless the file is
// rewritten) and a server with a subnet nested inside one of the exit's.
const exitMesh = `peers:
  - name: exit
    public_key: %s
    address: [10.10.0.1/24, fd10::1/64]
    subnets: [10.20.0.0/16]
    endpoint: 198.51.100.1:51820
    exit: true
  - name: laptop
    public_key: %s
    address: [10.10.0.2/24, fd10::2/64]
    use_exit: exit
  - name: server
    public_key: %s
    address: 10.10.0.3/24
    subnets: [10.20.5.0/24]
    endpoint: 198.51.100.3:51820
`

// newExitMesh writes exitMesh (with edit applied to its text) and the
// three private keys, and returns the key files and the loaded mesh.
func newExitMesh(t *testing.T, edit func(string) string) ([3]string, *Mesh) {
	t.Helper()
	dir := t.TempDir()
	var files [3]string
	var pubs [3]any
	for i := range files {
		k, err := keys.NewPrivate()
		if err != nil {
			t.Fatal(err)
		}
		pubs[i] = k.Public().String()
		files[i] = filepath.Join(dir, fmt.Sprintf("key%d", i))
		writeFile(t, files[i], k.Base64()+"\n", 0o600)
	}
	src := fmt.Sprintf(exitMesh, pubs[:]...)
	if edit != nil {
		src = edit(src)
	}
	file := filepath.Join(dir, "mesh.yaml")
	writeFile(t, file, src, 0o644)
	m, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return files, m
}

func TestParseExitFields(t *testing.T) {
	_, m := newExitMesh(t, nil)
	if !m.Peers[0].Exit || m.Peers[1].Exit || m.Peers[2].Exit {
		t.Errorf("exit flags = %v %v %v", m.Peers[0].Exit, m.Peers[1].Exit, m.Peers[2].Exit)
	}
	if m.Peers[1].UseExit != "exit" || m.Peers[1].UseExitLine != 11 {
		t.Errorf("laptop use_exit = %q line %d, want \"exit\" line 11", m.Peers[1].UseExit, m.Peers[1].UseExitLine)
	}
	if m.Peers[0].UseExit != "" || m.Peers[2].UseExit != "" {
		t.Errorf("use_exit set on peers without it")
	}
}

// TestNodeExit checks each node's view: only the node that says use_exit
// routes the world through the exit, and never in its main-table routes.
func TestNodeExit(t *testing.T) {
	files, m := newExitMesh(t, nil)
	view := func(i int, exitFlag string) *Node {
		t.Helper()
		n, err := m.Node(NodeOptions{KeyFile: files[i], Exit: exitFlag})
		if err != nil {
			t.Fatalf("node %d -exit %q: %v", i, exitFlag, err)
		}
		return n
	}
	laptop := view(1, "")
	if laptop.Exit == nil || laptop.Exit.Peer.Name != "exit" {
		t.Fatalf("laptop's exit = %+v", laptop.Exit)
	}
	if want := pfx("10.10.0.1/32", "fd10::1/128", "10.20.0.0/16", "0.0.0.0/0", "::/0"); !equalPrefixes(laptop.Exit.Prefixes, want) {
		t.Errorf("exit prefixes on laptop = %v, want %v", laptop.Exit.Prefixes, want)
	}
	// Nested: the server's /24 inside the exit's /16 is routed to both.
	if want := pfx("10.10.0.1/32", "10.10.0.3/32", "10.20.0.0/16", "10.20.5.0/24", "fd10::1/128"); !equalPrefixes(laptop.Routes(), want) {
		t.Errorf("laptop Routes = %v, want %v (no default routes)", laptop.Routes(), want)
	}
	if laptop.Forwards() {
		t.Errorf("laptop has no subnets and is no exit, but Forwards")
	}

	server := view(2, "")
	if server.Exit != nil {
		t.Errorf("server does not use_exit, got exit %v", server.Exit.Peer.Name)
	}
	for _, r := range server.Remotes {
		for _, p := range r.Prefixes {
			if p.Bits() == 0 {
				t.Errorf("server routes %v to %s", p, r.Peer.Name)
			}
		}
	}
	if !server.Forwards() {
		t.Errorf("server has a subnet, Forwards = false")
	}
	if ex := view(0, ""); ex.Exit != nil || !ex.Forwards() {
		t.Errorf("exit node: Exit = %v, Forwards = %v", ex.Exit, ex.Forwards())
	}

	// -exit overrides the file both ways.
	if n := view(1, ExitNone); n.Exit != nil {
		t.Errorf("-exit none: still uses %s", n.Exit.Peer.Name)
	}
	if n := view(2, "exit"); n.Exit == nil || n.Exit.Peer.Name != "exit" {
		t.Errorf("-exit exit on server: Exit = %v", n.Exit)
	}
}

func TestNodeExitFlagRefusals(t *testing.T) {
	files, m := newExitMesh(t, nil)
	for _, tc := range []struct {
		node int
		flag string
		want string
	}{
		{1, "server", `-exit server: peer "server" (` + m.File + `:12) is not an exit; give it exit: true`},
		{1, "nobody", `-exit nobody: no peer of ` + m.File + ` is named "nobody"`},
		{1, "laptop", "-exit laptop: that is this node"},
		{0, "exit", "-exit exit: that is this node"},
	} {
		_, err := m.Node(NodeOptions{KeyFile: files[tc.node], Exit: tc.flag})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("node %d -exit %s: error %v, want %q", tc.node, tc.flag, err, tc.want)
		}
	}

	// An exit node cannot be told to use another exit.
	files, m = newExitMesh(t, func(s string) string {
		return strings.Replace(s, "    endpoint: 198.51.100.3:51820\n", "    endpoint: 198.51.100.3:51820\n    exit: true\n", 1)
	})
	if _, err := m.Node(NodeOptions{KeyFile: files[0], Exit: "server"}); err == nil || !strings.Contains(err.Error(), "this node is an exit itself") {
		t.Errorf("exit told to use an exit: %v", err)
	}
}

// TestParseNestedPrefixes: nesting is legal in both orders and families;
// only the identical prefix is refused.
func TestParseNestedPrefixes(t *testing.T) {
	for _, src := range []string{
		edit(7, "    address: 10.10.0.2/24\n    subnets: [10.10.0.0/25]"), // contains alpha's address
		edit(7, "    address: [10.10.0.2/24, fd10::2/64]\n    subnets: [10.0.0.0/8, fd00::/8]"),
		`peers:
  - name: alpha
    public_key: K1
    address: 10.10.0.1/24
    subnets: [10.20.5.0/24, 10.20.5.128/25]
  - name: beta
    public_key: K2
    address: 10.10.0.2/24
    subnets: [10.20.0.0/16]
`,
	} {
		if _, err := Parse("mesh.yaml", []byte(keyNames.Replace(src))); err != nil {
			t.Errorf("refused nested prefixes:\n%s\n%v", src, err)
		}
	}
}
