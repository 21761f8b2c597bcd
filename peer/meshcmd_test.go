package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/meshstore/etcdtest"
)

func meshFile(t *testing.T, names ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("private_key_file: /etc/peer/private.key\npeers:\n")
	for i, n := range names {
		k, err := keys.NewPrivate()
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "  - name: %s\n    public_key: %q\n    address: 10.10.0.%d/24\n", n, k.Public().String(), i+1)
	}
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMeshPushPullDiffCommands(t *testing.T) {
	srv := etcdtest.Start(t)
	url := srv.URL("fleet")
	file := meshFile(t, "beta", "alpha")

	code, out, errOut := runCmd(t, "", "mesh", "diff", "-config", file, "-to", url)
	if code != 0 || !strings.HasPrefix(out, "against revision 0: added alpha, beta; settings changed\n") || !strings.Contains(out, "/fleet/peers/alpha:\n  + name: alpha\n") {
		t.Errorf("diff: exit %d, %q %q", code, out, errOut)
	}
	code, out, errOut = runCmd(t, "", "mesh", "push", "-config", file, "-to", url, "-if-revision", "0")
	m := regexp.MustCompile(`^pushed revision (\d+): added alpha, beta; settings changed\n$`).FindStringSubmatch(out)
	if code != 0 || m == nil {
		t.Fatalf("push: exit %d, %q %q", code, out, errOut)
	}
	rev := m[1]

	code, out, errOut = runCmd(t, "", "mesh", "pull", "-from", url)
	if code != 0 || !strings.HasPrefix(out, "# mesh from "+url+" at revision "+rev+" ") {
		t.Fatalf("pull: exit %d, %q %q", code, out, errOut)
	}
	pulled := filepath.Join(t.TempDir(), "pulled.yaml")
	if err := os.WriteFile(pulled, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, "", "check", "-config", pulled); code != 0 {
		t.Errorf("check of pulled mesh: exit %d, %s", code, errOut)
	}
	code, out, _ = runCmd(t, "", "mesh", "push", "-config", pulled, "-to", url, "-if-revision", rev)
	if code != 0 || !regexp.MustCompile(`^pushed revision \d+: no changes\n$`).MatchString(out) {
		t.Errorf("push of pulled: exit %d, %q", code, out)
	}

	// A stale -if-revision: exit 1, naming the current revision.
	code, _, errOut = runCmd(t, "", "mesh", "push", "-config", meshFile(t, "alpha"), "-to", url, "-if-revision", rev)
	if code != 1 || !strings.Contains(errOut, "push refused: the mesh is at revision ") {
		t.Errorf("stale push: exit %d, %q", code, errOut)
	}

	// An invalid file: exit 2 with FILE:LINE, etcd untouched.
	bad := meshFile(t, "alpha", "alpha")
	code, _, errOut = runCmd(t, "", "mesh", "push", "-config", bad, "-to", url)
	if code != 2 || !strings.Contains(errOut, bad+":") {
		t.Errorf("invalid push: exit %d, %q", code, errOut)
	}
	code, out, _ = runCmd(t, "", "mesh", "diff", "-config", pulled, "-to", url)
	if code != 0 || !strings.HasSuffix(out, ": no changes\n") {
		t.Errorf("diff after refused pushes: exit %d, %q", code, out)
	}
}

func TestMeshCommandErrors(t *testing.T) {
	file := meshFile(t, "alpha")
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"mesh", "push", "-config", file}, 2, "-to URL is required"},
		{[]string{"mesh", "push", "-to", "etcd://127.0.0.1:1/x"}, 2, "-config FILE is required"},
		{[]string{"mesh", "push", "-config", file, "-to", "http://127.0.0.1:1/x"}, 2, "bad etcd URL"},
		{[]string{"mesh", "pull", "-from", "etcd://127.0.0.1:1"}, 2, "no /PREFIX"},
		{[]string{"mesh", "pull", "-from", "etcd://127.0.0.1:1/x", "-etcd-ca", "ca.pem"}, 2, "need an etcds:// URL"},
		{[]string{"mesh", "diff", "-config", file, "-to", "etcd://127.0.0.1:1/x", "extra"}, 2, "unexpected argument"},
		{[]string{"mesh"}, 2, `unknown command "mesh"`},
		{[]string{"mesh", "nosuch"}, 2, `unknown command "mesh nosuch"`},
	} {
		code, _, errOut := runCmd(t, "", c.args...)
		if code != c.code || !strings.Contains(errOut, c.want) {
			t.Errorf("peer %s: exit %d, %q; want %d, %q", strings.Join(c.args, " "), code, errOut, c.code, c.want)
		}
	}
}

func TestLineDiff(t *testing.T) {
	got := strings.Join(lineDiff("a\nb\nc\n", "a\nB\nc\nd\n"), "|")
	if want := "  a|- b|+ B|  c|+ d"; got != want {
		t.Errorf("%q, want %q", got, want)
	}
	if got := lineDiff("", "x\n"); len(got) != 1 || got[0] != "+ x" {
		t.Errorf("added: %q", got)
	}
}
