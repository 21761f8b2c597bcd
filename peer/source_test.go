package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/meshstore"
	"github.com/peer-vpn/peer/meshstore/etcdtest"
)

// etcdEventWait bounds how long a test waits for the node to notice etcd
// going or coming back: a probe every etcdProbeEvery that may itself take
// up to etcdTimeout to fail, plus the backoff, with room for a loaded CI
// machine. A bound on a hang, not a measurement.
var etcdEventWait = 3*etcdProbeEvery + etcdTimeout + etcdBackoffMax

// The node with -config etcd://: each test starts a real etcd
// (meshstore/etcdtest) and the whole node in memory (startNode), pushes
// with `peer mesh push` and waits on conditions with deadlines.

// fastEtcd shortens the etcd source's timing for a test.
func fastEtcd(t *testing.T, backoffMin time.Duration) {
	old := []time.Duration{etcdTimeout, etcdProbeEvery, etcdBackoffMin, etcdBackoffMax}
	etcdTimeout, etcdProbeEvery, etcdBackoffMin, etcdBackoffMax = time.Second, 100*time.Millisecond, backoffMin, 2*backoffMin
	t.Cleanup(func() { etcdTimeout, etcdProbeEvery, etcdBackoffMin, etcdBackoffMax = old[0], old[1], old[2], old[3] })
}

// etcdFleet starts etcd (with fastEtcd's timing) and pushes the first
// mesh of alpha, beta, gamma and delta to prefix fleet.
func etcdFleet(t *testing.T, backoffMin time.Duration) (*etcdtest.Server, string, *testMesh) {
	t.Helper()
	fastEtcd(t, backoffMin)
	srv := etcdtest.Start(t)
	url := srv.URL("fleet")
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	m.push(t, url)
	return srv, url, m
}

// push runs `peer mesh push` of the test mesh's file to url.
func (m *testMesh) push(t *testing.T, url string) {
	t.Helper()
	if code, out, errOut := runCmd(t, "", "mesh", "push", "-config", m.path(), "-to", url); code != 0 {
		t.Fatalf("push: exit %d: %s%s", code, out, errOut)
	}
}

// waitStatusLine waits until `peer status` has a line with s.
func (n *runningNode) waitStatusLine(s string, within time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, out, _ := runCmd(n.t, "", "status", "-socket", n.socket)
		if strings.Contains(out, s) {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("status has no %q after %v:\n%s\nlogs:\n%s", s, within, out, n.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitStatus waits until `peer status` shows every name of want and none
// of absent.
func (n *runningNode) waitStatus(want, absent []string, within time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		_, out, _ := runCmd(n.t, "", "status", "-socket", n.socket)
		ok := true
		for _, w := range want {
			ok = ok && strings.Contains(out, "\n"+w+" ")
		}
		for _, a := range absent {
			ok = ok && !strings.Contains(out, "\n"+a+" ")
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("status not showing %v without %v after %v:\n%s\nlogs:\n%s", want, absent, within, out, n.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEtcdNode: a node started from etcd has the pushed mesh, applies a
// push with no signal, refuses a mesh in etcd that does not parse and keeps
// the old one, and caches what it applied (0600); peer check reads etcd.
func TestEtcdNode(t *testing.T) {
	srv, url, m := etcdFleet(t, 100*time.Millisecond)
	cache := filepath.Join(t.TempDir(), "cache", "fleet.mesh.yaml")

	if code, out, errOut := runCmd(t, "", "check", "-config", url, "-key", m.keyFile("alpha")); code != 0 ||
		!strings.HasPrefix(out, url+" (revision ") || !strings.Contains(out, "this node: alpha") {
		t.Errorf("check: exit %d, %q %q", code, out, errOut)
	}

	n := startNode(t, url, m.keyFile("alpha"), nodeOpts{real: true, args: []string{"-cache", cache}})
	n.waitStatus([]string{"beta", "gamma"}, nil, 5*time.Second)

	m.writeV2(t)
	m.push(t, url)
	n.waitStatus([]string{"beta", "delta"}, []string{"gamma"}, 5*time.Second)
	n.waitLog(`msg="mesh reloaded" trigger=etcd added_peers=delta removed_peers=gamma`, 1, 5*time.Second)
	if fi, err := os.Stat(cache); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("cache: %v %v", fi, err)
	}
	if b, _ := os.ReadFile(cache); !strings.Contains(string(b), "name: delta") {
		t.Errorf("cache lacks the applied mesh:\n%s", b)
	}

	// A damaged peer key, written as a push would (with PREFIX/mesh).
	cli := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cur, err := cli.Get(ctx, "/fleet/mesh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(ctx).Then(
		clientv3.OpPut("/fleet/peers/zeta", "name: zeta\npublic_key: nope\naddress: [10.10.0.9/24]\n"),
		clientv3.OpPut("/fleet/mesh", string(cur.Kvs[0].Value))).Commit(); err != nil {
		t.Fatal(err)
	}
	n.waitLog(`msg="mesh reload refused" trigger=etcd`, 1, 5*time.Second)
	if !strings.Contains(n.logs.String(), "/fleet/peers/zeta:") {
		t.Errorf("the refusal does not name the key:\n%s", n.logs)
	}
	n.waitStatus([]string{"beta", "delta"}, []string{"gamma", "zeta"}, time.Second)

	// The next good push replaces it.
	m.writeV1(t)
	m.push(t, url)
	n.waitStatus([]string{"beta", "gamma"}, []string{"delta", "zeta"}, 5*time.Second)
}

// TestEtcdNodeOutage: etcd stops and the node runs on; a node started
// while etcd is down starts from its cache and says so; once etcd is back
// (same data) a push is applied again, each transition logged once.
func TestEtcdNodeOutage(t *testing.T) {
	srv, url, m := etcdFleet(t, 100*time.Millisecond)
	cache := filepath.Join(t.TempDir(), "fleet.mesh.yaml")
	metricsAddr := "127.0.0.1:" + freePort(t)
	opts := nodeOpts{real: true, args: []string{"-cache", cache, "-metrics", metricsAddr}}
	n := startNode(t, url, m.keyFile("alpha"), opts)
	n.waitStatus([]string{"beta", "gamma"}, nil, 5*time.Second)
	rev := metricValue(t, scrape(t, metricsAddr), "peer_mesh_revision")
	if rev == "" || rev == "0" {
		t.Errorf("peer_mesh_revision %q at the start", rev)
	}
	n.waitStatusLine("mesh: "+url+" revision "+rev+", etcd connected for ", time.Second)
	if v := metricValue(t, scrape(t, metricsAddr), "peer_etcd_connected"); v != "1" {
		t.Errorf("peer_etcd_connected %q while etcd answers", v)
	}

	srv.Stop()
	n.waitLog("lost etcd", 1, etcdEventWait)
	n.waitStatus([]string{"beta", "gamma"}, nil, time.Second)
	n.waitStatusLine("mesh: "+url+" revision "+rev+", etcd lost ", time.Second)
	if v := metricValue(t, scrape(t, metricsAddr), "peer_etcd_connected"); v != "0" {
		t.Errorf("peer_etcd_connected %q after etcd was lost", v)
	}
	n.stop()

	n = startNode(t, url, m.keyFile("alpha"), opts)
	n.waitLog("etcd unreachable: started from the cached mesh", 1, time.Second)
	n.waitStatus([]string{"beta", "gamma"}, nil, time.Second)
	n.waitStatusLine("mesh: "+url+" revision "+rev+" (the cache it started from), etcd lost ", time.Second)

	srv.Restart(t)
	n.waitLog("etcd back", 1, etcdEventWait)
	n.waitStatusLine(" (the cache it started from), etcd connected for ", time.Second)
	m.writeV2(t)
	m.push(t, url)
	n.waitStatus([]string{"delta"}, []string{"gamma"}, 5*time.Second)
	text := scrape(t, metricsAddr)
	if v := metricValue(t, text, "peer_mesh_revision"); v == rev || v == "" {
		t.Errorf("peer_mesh_revision %q after a push (before: %s)", v, rev)
	}
	if v := metricValue(t, text, `peer_reloads_total{result="reloaded"}`); v != "1" {
		t.Errorf(`peer_reloads_total{result="reloaded"} %q after the push`, v)
	}
	n.waitStatusLine("last reload: reloaded ", time.Second)
	if _, out, _ := runCmd(t, "", "status", "-socket", n.socket); strings.Contains(out, "the cache it started from") {
		t.Errorf("status still says the cache after a push was applied:\n%s", out)
	}
	for _, s := range []string{"etcd back", "lost etcd", "started from the cached mesh"} {
		if c := strings.Count(n.logs.String(), s); c > 1 {
			t.Errorf("%q logged %d times:\n%s", s, c, n.logs)
		}
	}
}

// TestEtcdNodeCompaction: pushes made and compacted away while the node
// is cut off are caught up by reading the whole mesh again.
func TestEtcdNodeCompaction(t *testing.T) {
	// While etcd is away from the node (its client port held), the
	// pushes and the compaction happen on the same data through another
	// client port; the node then finds its revision compacted.
	srv, url, m := etcdFleet(t, 100*time.Millisecond)
	n := startNode(t, url, m.keyFile("alpha"), nodeOpts{real: true, args: []string{"-cache", filepath.Join(t.TempDir(), "c.yaml")}})
	n.waitStatus([]string{"beta", "gamma"}, nil, 5*time.Second)

	srv.Stop()
	n.waitLog("lost etcd", 1, etcdEventWait)
	aside := srv.Aside(t)
	asideURL := aside.URL("fleet")
	m.writeV2(t)
	m.push(t, asideURL)
	m.write(t, "", "alpha 10.10.0.1/24", "delta 10.10.0.4/24")
	m.push(t, asideURL)
	cli := aside.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/fleet/mesh")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, resp.Header.Revision); err != nil {
		t.Fatal(err)
	}
	aside.Stop()
	srv.Restart(t)
	n.waitLog("etcd compacted past our revision", 1, etcdEventWait)
	n.waitStatus([]string{"delta"}, []string{"beta", "gamma"}, 5*time.Second)
}

// TestEtcdWatchBegunWhileEtcdHangs: clientv3's Watch returns only once
// etcd has created the watch, so a watch begun while etcd does not answer
// (it went away between the read and the watch, or during a re-watch) must
// still probe, report etcd lost, and follow pushes once etcd is back.
func TestEtcdWatchBegunWhileEtcdHangs(t *testing.T) {
	srv, url, m := etcdFleet(t, 100*time.Millisecond)
	src, err := newEtcdSource(url, meshstore.Options{}, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.load(); err != nil {
		t.Fatal(err)
	}
	src.applied(slog.New(slog.DiscardHandler))
	srv.Stop()

	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed, _, err := src.watch(ctx, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	waitLog(t, logs, "lost etcd", 1, etcdEventWait)
	if e := src.state().Etcd; e.Connected || e.Revision == 0 || e.Since.IsZero() {
		t.Errorf("state after etcd was lost: %+v", e)
	}

	srv.Restart(t)
	waitLog(t, logs, "etcd back", 1, etcdEventWait)
	if e := src.state().Etcd; !e.Connected {
		t.Errorf("state after etcd came back: %+v", e)
	}
	m.writeV2(t)
	m.push(t, url)
	select {
	case <-changed:
	case <-time.After(etcdEventWait):
		t.Fatalf("the push after etcd came back was not reported:\n%s", logs)
	}
	if mesh, err := src.load(); err != nil {
		t.Fatal(err)
	} else if names := peerNames(mesh); names != "alpha beta delta" {
		t.Errorf("the mesh after the push has %s, want v2's alpha beta delta", names)
	}
}

// peerNames lists m's peers by name, sorted, space-separated.
func peerNames(m *config.Mesh) string {
	var names []string
	for _, p := range m.Peers {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return strings.Join(names, " ")
}

// metricValue is the value of the series name (with its labels) in a
// scrape's text, "" if it is not there.
func metricValue(t *testing.T, text, name string) string {
	t.Helper()
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
