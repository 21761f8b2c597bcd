package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peer-vpn/peer/meshstore/etcdtest"
)

// signKey makes a signing key with `peer mesh signkey` and returns its file
// and public key.
func signKey(t *testing.T, dir, name string) (file, pub string) {
	t.Helper()
	file = filepath.Join(dir, name+".sign")
	code, out, errOut := runCmd(t, "", "mesh", "signkey", "-out", file)
	if code != 0 {
		t.Fatalf("signkey: exit %d: %s", code, errOut)
	}
	if code, again, _ := runCmd(t, "", "mesh", "signkey", "-pub", file); code != 0 || again != out {
		t.Fatalf("signkey -pub: exit %d, %q, want %q", code, again, out)
	}
	return file, strings.TrimSpace(out)
}

func (m *testMesh) pushArgs(t *testing.T, url string, args ...string) string {
	t.Helper()
	code, out, errOut := runCmd(t, "", append([]string{"mesh", "push", "-config", m.path(), "-to", url}, args...)...)
	if code != 0 {
		t.Fatalf("push %v: exit %d: %s%s", args, code, out, errOut)
	}
	return out
}

// TestSignedMeshNode: a node with -trust applies a mesh signed by a trusted
// signer and refuses, logging why and keeping the mesh it runs, one that is
// unsigned, signed by another key, or changed in etcd after it was signed.
func TestSignedMeshNode(t *testing.T) {
	fastEtcd(t, 100*time.Millisecond)
	srv := etcdtest.Start(t)
	url := srv.URL("fleet")
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	good, goodPub := signKey(t, m.dir, "good")
	other, _ := signKey(t, m.dir, "other")
	trust := filepath.Join(m.dir, "trust.yaml")
	if err := os.WriteFile(trust, []byte("trusted_signers: ["+goodPub+"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m.writeV1(t)
	if out := m.pushArgs(t, url, "-sign", good); !strings.HasSuffix(out, "; signed by "+goodPub+"\n") {
		t.Errorf("push -sign says %q", out)
	}
	if _, out, _ := runCmd(t, "", "mesh", "pull", "-from", url); !strings.Contains(out, "\n# signed by "+goodPub+"\n") {
		t.Errorf("pull does not name the signer:\n%s", out)
	}
	cache := filepath.Join(t.TempDir(), "fleet.mesh.yaml")
	opts := nodeOpts{real: true, args: []string{"-cache", cache, "-trust", trust}}
	n := startNode(t, url, m.keyFile("alpha"), opts)
	n.waitStatus([]string{"beta", "gamma"}, nil, 5*time.Second)

	const refused = `msg="mesh from etcd refused: not signed by a trusted signer"`
	m.writeV2(t)
	m.pushArgs(t, url)
	n.waitLog(refused, 1, 5*time.Second)
	m.pushArgs(t, url, "-sign", other)
	n.waitLog(refused, 2, 5*time.Second)
	m.pushArgs(t, url, "-sign", good)
	n.waitStatus([]string{"beta", "delta"}, []string{"gamma"}, 5*time.Second)

	// A peer key rewritten directly after the signed push, with PREFIX/mesh
	// so that it looks like a push.
	cli := srv.Client(t)
	ctx := t.Context()
	cur, err := cli.Get(ctx, "/fleet/peers/beta")
	if err != nil {
		t.Fatal(err)
	}
	meshKV, _ := cli.Get(ctx, "/fleet/mesh")
	if _, err := cli.Put(ctx, "/fleet/peers/beta", string(cur.Kvs[0].Value)+"keepalive: 5s\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "/fleet/mesh", string(meshKV.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	n.waitLog(refused, 3, 5*time.Second)
	logs := n.logs.String()
	for _, want := range []string{"reason=unsigned", `reason="unknown signer `, `reason="bad signature: made by ` + goodPub} {
		if !strings.Contains(logs, want) {
			t.Errorf("no refusal with %s:\n%s", want, logs)
		}
	}
	n.waitStatus([]string{"beta", "delta"}, []string{"gamma"}, time.Second)
	n.stop()

	// A restart while etcd holds a mesh the list refuses: the cache, which
	// a trusted signer signed, is used.
	n = startNode(t, url, m.keyFile("alpha"), opts)
	n.waitLog("started from the cached mesh, which a trusted signer signed", 1, 5*time.Second)
	n.waitStatus([]string{"beta", "delta"}, []string{"gamma"}, time.Second)
	n.stop()

	// Nothing trustworthy: no start, exit 2.
	code, _, errOut := runCmd(t, "", "check", "-config", url, "-key", m.keyFile("alpha"), "-trust", trust)
	if code != 2 || !strings.Contains(errOut, "mesh from etcd refused: not signed by a trusted signer (bad signature") {
		t.Errorf("check with a refused mesh and no cache: exit %d, %q", code, errOut)
	}
	os.WriteFile(cache, []byte("# mesh from x at revision 1\n"), 0o600)
	code, _, errOut = runCmd(t, "", "-config", url, "-key", m.keyFile("alpha"), "-trust", trust, "-cache", cache)
	if code != 2 || !strings.Contains(errOut, "no usable cache: "+cache+" was not signed by a trusted signer") {
		t.Errorf("start with an unsigned cache: exit %d, %q", code, errOut)
	}
}

func TestSignCommandErrors(t *testing.T) {
	srv := etcdtest.Start(t)
	url := srv.URL("fleet")
	m := newTestMesh(t, "alpha", "beta")
	m.writeV1(t)
	key, _ := signKey(t, m.dir, "k")
	os.Chmod(key, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"mesh", "push", "-config", m.path(), "-to", url, "-sign", key}, "mode 0644 lets group or others read or write it"},
		{[]string{"mesh", "signkey", "-out", key}, "file exists"},
		{[]string{"mesh", "signkey"}, "give one of -out FILE or -pub FILE"},
		{[]string{"check", "-config", m.path(), "-trust", key}, "-trust needs -config etcd://"},
		{[]string{"check", "-config", url, "-trust", m.keyFile("alpha")}, "the top level: expected a mapping"},
	} {
		code, _, errOut := runCmd(t, "", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, %q, want %q", tc.args, code, errOut, tc.want)
		}
	}
	if resp, _ := srv.Client(t).Get(t.Context(), "/fleet/mesh"); len(resp.Kvs) != 0 {
		t.Error("a refused push wrote the mesh")
	}
}
