package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peer-vpn/peer/keys"
)

// runCmd runs the command line in-process and returns status and output.
func runCmd(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestGenkeyPubkeyMatchWG(t *testing.T) {
	code, priv, _ := runCmd(t, "", "genkey")
	if code != 0 {
		t.Fatalf("genkey exit %d", code)
	}
	code, pub, _ := runCmd(t, priv, "pubkey")
	if code != 0 {
		t.Fatalf("pubkey exit %d", code)
	}
	if _, err := keys.ParsePublic(strings.TrimSpace(pub)); err != nil {
		t.Fatalf("pubkey printed %q: %v", pub, err)
	}
	wg, err := exec.LookPath("wg")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("wg (wireguard-tools) missing in CI")
		}
		t.Skip("wg not installed")
	}
	cmd := exec.Command(wg, "pubkey")
	cmd.Stdin = strings.NewReader(priv)
	want, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if pub != string(want) {
		t.Fatalf("peer pubkey %q, wg pubkey %q", pub, want)
	}
	// And a key from wg genkey works with ours.
	wkey, err := exec.Command(wg, "genkey").Output()
	if err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(wg, "pubkey")
	cmd.Stdin = bytes.NewReader(wkey)
	want, _ = cmd.Output()
	if _, got, _ := runCmd(t, string(wkey), "pubkey"); got != string(want) {
		t.Fatalf("peer pubkey of a wg key %q, wg %q", got, want)
	}
}

func TestPubkeyRefusesGarbage(t *testing.T) {
	if code, _, stderr := runCmd(t, "not a key\n", "pubkey"); code != 2 || !strings.Contains(stderr, "base64") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// writeMesh writes a two-node mesh and alpha's key; it returns the paths.
func writeMesh(t *testing.T, extra string) (mesh, key string) {
	t.Helper()
	dir := t.TempDir()
	a, _ := keys.NewPrivate()
	b, _ := keys.NewPrivate()
	mesh = filepath.Join(dir, "mesh.yaml")
	key = filepath.Join(dir, "alpha.key")
	y := "peers:\n" +
		"  - name: alpha\n    public_key: \"" + a.Public().String() + "\"\n    address: [10.10.0.1/24, fd10::1/64]\n    endpoint: 192.0.2.1:51820\n" +
		"  - name: beta\n    public_key: \"" + b.Public().String() + "\"\n    address: [10.10.0.2/24, fd10::2/64]\n    subnets: [10.20.2.0/24]\n    endpoint: 192.0.2.2:51820\n" + extra
	if err := os.WriteFile(mesh, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, []byte(a.Base64()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return mesh, key
}

func TestCheckPrintsThisNode(t *testing.T) {
	mesh, key := writeMesh(t, "")
	code, out, stderr := runCmd(t, "", "check", "-config", mesh, "-key", key)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"this node: alpha", "address: 10.10.0.1/24", "beta  endpoint 192.0.2.2:51820", "10.20.2.0/24"} {
		if !strings.Contains(out, want) {
			t.Errorf("check output lacks %q:\n%s", want, out)
		}
	}
}

func TestConfigErrorsExit2WithFileLine(t *testing.T) {
	mesh, key := writeMesh(t, "    pubic_key: typo\n")
	for _, args := range [][]string{
		{"check", "-config", mesh, "-key", key},
		{"routes", "-config", mesh, "-key", key},
		{"-config", mesh, "-key", key}, // the node itself refuses before touching anything
	} {
		code, _, stderr := runCmd(t, "", args...)
		if code != 2 || !strings.Contains(stderr, mesh+":11:") || !strings.Contains(stderr, "pubic_key") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %s:11", args, code, stderr, mesh)
		}
	}
	os.Chmod(key, 0o644)
	mesh2, _ := writeMesh(t, "")
	if code, _, stderr := runCmd(t, "", "check", "-config", mesh2, "-key", key); code != 2 || !strings.Contains(stderr, key) {
		t.Errorf("world-readable key: exit %d, stderr %q", code, stderr)
	}
}

// TestMeshFileCannotAskForKeys: capture.keys in the mesh file, which every
// node reads, would put every node's private key in its capture.
func TestMeshFileCannotAskForKeys(t *testing.T) {
	mesh, key := writeMesh(t, "capture:\n  pcap: x.pcapng\n  outer: true\n  keys: true\n")
	for _, args := range [][]string{
		{"check", "-config", mesh, "-key", key},
		{"-config", mesh, "-key", key, "-pcap-keys"},
		{"-config", mesh, "-key", key, "-pcap", "x.pcapng", "-pcap-keys"}, // without -pcap-outer
	} {
		code, _, stderr := runCmd(t, "", args...)
		if code != 2 || !strings.Contains(stderr, mesh+":14: capture.keys is not allowed in the mesh file") ||
			!strings.Contains(stderr, "private key") || !strings.Contains(stderr, "-pcap-keys") {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %s:14 refusing capture.keys", args, code, stderr, mesh)
		}
	}
}

func TestBadCommandLines(t *testing.T) {
	mesh, key := writeMesh(t, "")
	for _, args := range [][]string{
		{"frobnicate"},
		{"check"},
		{"check", "-config", mesh, "-key", key, "extra"},
		{"-config", mesh, "-key", key, "-driver", "magic"},
		{"-config", mesh, "-key", key, "-listen", "70000"},
		{"-config", mesh, "-key", key, "-pcap-keys"},
		{"-config", mesh, "-key", key, "-pcap", "x.pcapng", "-pcap-keys"}, // without -pcap-outer
		{"routes", "-config", mesh, "-key", key, "-os", "plan9"},
		{"decode"},
	} {
		if code, _, stderr := runCmd(t, "", args...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, stderr)
		}
	}
}

func TestRoutesScript(t *testing.T) {
	mesh, key := writeMesh(t, "")
	code, out, stderr := runCmd(t, "", "routes", "-config", mesh, "-key", key, "-iface", "p9")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"ip route replace 10.10.0.2/32 dev p9", "ip route replace 10.20.2.0/24 dev p9", "ip -6 route replace fd10::2/128 dev p9"} {
		if !strings.Contains(out, want) {
			t.Errorf("routes lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "10.10.0.1") {
		t.Errorf("routes include this node's own address:\n%s", out)
	}
	_, down, _ := runCmd(t, "", "routes", "-config", mesh, "-key", key, "-iface", "p9", "-down")
	if !strings.Contains(down, "ip route del 10.20.2.0/24 dev p9") {
		t.Errorf("-down lacks the delete:\n%s", down)
	}
	_, mac, _ := runCmd(t, "", "routes", "-config", mesh, "-key", key, "-iface", "utun7", "-os", "darwin")
	if !strings.Contains(mac, "-inet 10.20.2.0/24 -interface utun7") {
		t.Errorf("darwin routes:\n%s", mac)
	}
	// The script really is a script that sh can parse.
	if err := exec.Command("sh", "-n", "-c", out).Run(); err != nil {
		t.Errorf("sh -n refuses the script: %v", err)
	}
}

// TestCheckWithoutKey: on a machine without the private key (a laptop, CI)
// check still validates the whole mesh, here the shipped example, and
// still refuses a broken one.
func TestCheckWithoutKey(t *testing.T) {
	example, err := os.ReadFile("../peers.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.yaml")
	text := strings.Replace(string(example), "/etc/peer/private.key", filepath.Join(dir, "absent.key"), 1)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd(t, "", "check", "-config", path)
	if code != 0 || !strings.Contains(out, "valid: 4 peers") || !strings.Contains(out, "beta  endpoint 203.0.113.2:51820") ||
		!strings.Contains(out, "alpha  endpoint 198.51.100.1:51820  routes 10.10.0.1/32 fd10::1/128  relay\n") || !strings.Contains(out, "delta  endpoint none") {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, stderr)
	}
	bad := strings.Replace(text, "mtu: 1420", "mtu: 100", 1)
	if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := runCmd(t, "", "check", "-config", path); code != 2 || !strings.Contains(stderr, path+":") {
		t.Fatalf("broken mesh without key: exit %d, stderr %q", code, stderr)
	}
}

// TestRunRefusesUnsafeSocketPath: a -socket naming an existing file (here
// the node's own key) is a usage error before any device is touched, and
// the file survives.
func TestRunRefusesUnsafeSocketPath(t *testing.T) {
	mesh, key := writeMesh(t, "")
	before, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCmd(t, "", "-config", mesh, "-key", key, "-socket", key)
	if code != 2 || !strings.Contains(stderr, "is not a socket") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if after, err := os.ReadFile(key); err != nil || !bytes.Equal(after, before) {
		t.Fatalf("key file changed: %v", err)
	}
	open := t.TempDir()
	if err := os.Chmod(open, 0o1777); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = runCmd(t, "", "-config", mesh, "-key", key, "-socket", filepath.Join(open, "p.sock"))
	if code != 2 || !strings.Contains(stderr, "lets group or others write to it") {
		t.Fatalf("world-writable socket directory: exit %d, stderr %q", code, stderr)
	}
}
