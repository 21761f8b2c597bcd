package meshstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/meshstore/etcdtest"
)

// pub returns a fresh public key in base64.
func pub(t *testing.T) string {
	t.Helper()
	k, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public().String()
}

// meshText is a mesh file with the peers named, each given a key, an
// address and an endpoint; extra is appended to the top level.
func meshText(t *testing.T, names []string, extra string) string {
	var b strings.Builder
	b.WriteString("# a comment the store drops\nprivate_key_file: /etc/peer/private.key\n" + extra + "peers:\n")
	for i, n := range names {
		fmt.Fprintf(&b, "  - name: %s\n    public_key: %q\n    address: 10.10.0.%d/24\n    endpoint: 192.0.2.%d:51820\n", n, pub(t), i+1, i+1)
	}
	return b.String()
}

func writeMesh(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "mesh.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, text string) *config.Mesh {
	t.Helper()
	m, err := config.Load(writeMesh(t, text))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// open starts etcd and opens a store on prefix "fleet".
func open(t *testing.T) (*Store, *etcdtest.Server) {
	t.Helper()
	srv := etcdtest.Start(t)
	tg, err := ParseURL(srv.URL("fleet"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Open(tg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, srv
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// dump is everything in etcd, with revisions, and etcd's revision.
func dump(t *testing.T, cli *clientv3.Client) string {
	t.Helper()
	resp, err := cli.Get(ctx(t), "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "revision %d\n", resp.Header.Revision)
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&b, "%s mod %d ver %d: %q\n", kv.Key, kv.ModRevision, kv.Version, kv.Value)
	}
	return b.String()
}

func TestPushPullRoundTrip(t *testing.T) {
	s, _ := open(t)
	m := load(t, meshText(t, []string{"gamma", "alpha", "beta"}, "log_level: debug\ncapture:\n  outer: true\n  pcap: caps/mesh.pcapng\n"))
	d, err := s.Push(ctx(t), m, NoRevision)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Summary(); got != "added alpha, beta, gamma; settings changed" {
		t.Errorf("first push: %q", got)
	}
	p, err := s.Pull(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.Revision != d.Revision {
		t.Errorf("pull at revision %d, push made %d", p.Revision, d.Revision)
	}
	if !bytes.HasPrefix(p.YAML, []byte(fmt.Sprintf("# mesh from %s at revision %d", s.Target().URL(), d.Revision))) {
		t.Errorf("no revision comment:\n%s", p.YAML)
	}
	// What pull prints is a mesh file peer check accepts, and pushing
	// it changes nothing.
	again, err := config.Load(writeMesh(t, string(p.YAML)))
	if err != nil {
		t.Fatalf("pulled YAML refused: %v\n%s", err, p.YAML)
	}
	for i, n := range []string{"alpha", "beta", "gamma"} {
		if again.Peers[i].Name != n {
			t.Errorf("peer %d is %s, want %s (name order)", i, again.Peers[i].Name, n)
		}
	}
	// A relative path is stored as config joined it: absolute.
	if again.Capture.Pcap != m.Capture.Pcap || !filepath.IsAbs(again.Capture.Pcap) {
		t.Errorf("capture.pcap %q, pushed %q", again.Capture.Pcap, m.Capture.Pcap)
	}
	d2, err := s.Push(ctx(t), again, d.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if !d2.Empty() || d2.Summary() != "no changes" || d2.Revision <= d.Revision {
		t.Errorf("second push: %q at %d after %d", d2.Summary(), d2.Revision, d.Revision)
	}
}

func TestInvalidPushChangesNothing(t *testing.T) {
	s, srv := open(t)
	cli := srv.Client(t)
	if _, err := s.Push(ctx(t), load(t, meshText(t, []string{"alpha", "beta"}, "")), NoRevision); err != nil {
		t.Fatal(err)
	}
	before := dump(t, cli)
	// An invalid file never gets to Push: Load refuses it with FILE:LINE,
	// as peer check does (the command test checks that path end to end).
	path := writeMesh(t, meshText(t, []string{"alpha", "alpha"}, ""))
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), path+":") {
		t.Errorf("duplicate name: %v", err)
	}
	// A file Push itself refuses: two preshared keys whose pair changes
	// meaning in name order.
	text := "peers:\n" +
		"  - {name: beta, public_key: \"" + pub(t) + "\", address: 10.10.0.2/24, preshared_key_file: /etc/peer/b.psk}\n" +
		"  - {name: alpha, public_key: \"" + pub(t) + "\", address: 10.10.0.1/24, preshared_key_file: /etc/peer/a.psk}\n"
	path = writeMesh(t, text)
	m, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Push(ctx(t), m, NoRevision)
	if err == nil || !strings.HasPrefix(err.Error(), path+":3: ") {
		t.Errorf("psk order: %v", err)
	}
	if after := dump(t, cli); after != before {
		t.Errorf("etcd changed:\n%s\nto\n%s", before, after)
	}
}

func TestIfRevisionConflict(t *testing.T) {
	s, srv := open(t)
	cli := srv.Client(t)
	d, err := s.Push(ctx(t), load(t, meshText(t, []string{"alpha", "beta"}, "")), 0)
	if err != nil {
		t.Fatal(err)
	}
	// Someone else pushes in between.
	d2, err := s.Push(ctx(t), load(t, meshText(t, []string{"alpha", "beta", "gamma"}, "")), d.Revision)
	if err != nil {
		t.Fatal(err)
	}
	before := dump(t, cli)
	_, err = s.Push(ctx(t), load(t, meshText(t, []string{"alpha"}, "")), d.Revision)
	var ce *ConflictError
	if !errors.As(err, &ce) || ce.Current != d2.Revision || !strings.Contains(err.Error(), fmt.Sprint(d2.Revision)) {
		t.Fatalf("stale push: %v", err)
	}
	if after := dump(t, cli); after != before {
		t.Errorf("etcd changed:\n%s\nto\n%s", before, after)
	}
	// 0 means "no mesh yet", which is no longer true.
	if _, err := s.Push(ctx(t), load(t, meshText(t, []string{"alpha"}, "")), 0); !errors.As(err, &ce) {
		t.Errorf("push -if-revision 0 over a mesh: %v", err)
	}
}

func TestRemovePeerDeletesOnlyItsKey(t *testing.T) {
	s, srv := open(t)
	cli := srv.Client(t)
	text := meshText(t, []string{"alpha", "beta", "gamma"}, "")
	if _, err := s.Push(ctx(t), load(t, text), NoRevision); err != nil {
		t.Fatal(err)
	}
	before, _ := cli.Get(ctx(t), "/fleet/", clientv3.WithPrefix())
	// The same file without beta's entry.
	lines := strings.Split(text, "\n")
	i := slicesIndex(lines, "  - name: beta")
	without := strings.Join(append(lines[:i:i], lines[i+4:]...), "\n")
	d, err := s.Push(ctx(t), load(t, without), NoRevision)
	if err != nil {
		t.Fatal(err)
	}
	if d.Summary() != "removed beta" {
		t.Errorf("summary %q", d.Summary())
	}
	after, _ := cli.Get(ctx(t), "/fleet/", clientv3.WithPrefix())
	got := map[string]int64{}
	for _, kv := range after.Kvs {
		got[string(kv.Key)] = kv.ModRevision
	}
	for _, kv := range before.Kvs {
		k := string(kv.Key)
		switch {
		case k == "/fleet/peers/beta":
			if _, ok := got[k]; ok {
				t.Errorf("%s still there", k)
			}
		case k == "/fleet/mesh":
			if got[k] != d.Revision {
				t.Errorf("%s at %d, push made %d", k, got[k], d.Revision)
			}
		case got[k] != kv.ModRevision:
			t.Errorf("%s rewritten (mod %d, was %d)", k, got[k], kv.ModRevision)
		}
	}
	if len(got) != len(before.Kvs)-1 {
		t.Errorf("keys after: %v", got)
	}
}

func slicesIndex(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestDiffIsWhatPushDoes, and the push arrives as one revision: a watch
// of the prefix sees every change of it in one response at one revision.
func TestDiffIsWhatPushDoesInOneRevision(t *testing.T) {
	s, srv := open(t)
	cli := srv.Client(t)
	first := load(t, meshText(t, []string{"alpha", "beta", "gamma"}, ""))
	d0, err := s.Push(ctx(t), first, NoRevision)
	if err != nil {
		t.Fatal(err)
	}
	// delta added, gamma removed, beta's endpoint changed, settings changed.
	next := *first
	next.LogLevel = "warn"
	next.Peers = append([]config.Peer(nil), first.Peers[:2]...)
	next.Peers[1].Endpoint = "192.0.2.99:51820"
	next.Peers = append(next.Peers, config.Peer{Name: "delta", PublicKey: first.Peers[2].PublicKey, Addresses: first.Peers[2].Addresses})
	diff, err := s.Diff(ctx(t), &next)
	if err != nil {
		t.Fatal(err)
	}
	if diff.Revision != d0.Revision || diff.Summary() != "added delta; removed gamma; changed beta; settings changed" {
		t.Errorf("diff at %d: %q", diff.Revision, diff.Summary())
	}
	w := cli.Watch(ctx(t), "/fleet/", clientv3.WithPrefix(), clientv3.WithRev(d0.Revision+1))
	pushed, err := s.Push(ctx(t), &next, d0.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(pushed.Entries, diff.Entries) || pushed.Summary() != diff.Summary() {
		t.Errorf("push did %q %v, diff said %q %v", pushed.Summary(), pushed.Entries, diff.Summary(), diff.Entries)
	}
	resp := <-w
	if err := resp.Err(); err != nil {
		t.Fatal(err)
	}
	if len(resp.Events) != 4 { // put delta, delete gamma, put beta, put mesh
		t.Errorf("%d events in the first watch response, want 4", len(resp.Events))
	}
	for _, e := range resp.Events {
		if e.Kv.ModRevision != pushed.Revision {
			t.Errorf("%s %s at revision %d, push was %d", e.Type, e.Kv.Key, e.Kv.ModRevision, pushed.Revision)
		}
	}
}

func TestPullDamagedEntryNamesKey(t *testing.T) {
	s, srv := open(t)
	cli := srv.Client(t)
	if _, err := s.Push(ctx(t), load(t, meshText(t, []string{"alpha", "beta"}, "")), NoRevision); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ val, want string }{
		{"name: beta\npublic_key: nope\naddress: 10.10.0.2/24\n", "/fleet/peers/beta:2: "},
		{"name: gamma\npublic_key: " + pub(t) + "\naddress: 10.10.0.2/24\n", "/fleet/peers/beta:1: damaged entry: holds peer \"gamma\""},
		{"[not, a, mapping]", "/fleet/peers/beta: damaged entry"},
		{"name: [unclosed", "/fleet/peers/beta: damaged entry"},
	} {
		if _, err := cli.Put(ctx(t), "/fleet/peers/beta", c.val); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Pull(ctx(t)); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: %v, want %s...", c.val, err, c.want)
		}
	}
}

func TestPullNoMesh(t *testing.T) {
	s, _ := open(t)
	if _, err := s.Pull(ctx(t)); err == nil || !strings.Contains(err.Error(), "no mesh there") {
		t.Errorf("empty etcd: %v", err)
	}
}

// TestPushTooLargeForOneTransaction: etcd refuses a transaction of more
// than --max-txn-ops operations (128 by default); a push that needs more
// says so, with what to do, and changes nothing, rather than splitting
// itself (readers would see half a mesh).
func TestPushTooLargeForOneTransaction(t *testing.T) {
	s, srv := open(t)
	var names []string
	for i := range 130 {
		names = append(names, fmt.Sprintf("p%03d", i))
	}
	before := dump(t, srv.Client(t))
	_, err := s.Push(ctx(t), load(t, meshText(t, names, "")), NoRevision)
	if err == nil || !strings.Contains(err.Error(), "--max-txn-ops 132 or more") {
		t.Fatalf("push of 130 new peers: %v", err)
	}
	if after := dump(t, srv.Client(t)); after != before {
		t.Errorf("etcd changed:\n%s", after)
	}
}
