package main

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/meshstore"
	"github.com/peer-vpn/peer/meshstore/etcdtest"
	"github.com/peer-vpn/peer/udp/udptest"
)

// The fleet benchmark of issue 13: a 1,000-peer mesh in a real etcd, 20
// of its peers running as whole nodes in this process (fleetNode: the
// real etcd watch, reloader and tunnel.Device, on in-memory devices), and
// one peer's change pushed per iteration.

const (
	fleetPeers = 1000
	fleetNodes = 20 // p0 ... p19
	// fleetChanged is the peer each push changes; it runs no node, so
	// every node sees it as one remote among 999.
	fleetChanged = "p999"
	// fleetSeedBatch is how many peers each push of the first mesh adds.
	fleetSeedBatch = 100
	// fleetSolo is how many pushes p0 applies alone at the end.
	fleetSolo = 5
	// fleetApplyWithin bounds the wait for one push to reach every node.
	fleetApplyWithin = 30 * time.Second
)

// BenchmarkFleetEtcdOnePeerChange pushes, per iteration, one peer's
// change (its extra subnet replaced) to a 1,000-peer mesh in etcd and
// waits until all 20 watching nodes have applied it. "Applied" is the
// node's own `mesh reloaded trigger=etcd` log line, timestamped as the
// reload path writes it (after the device, the routes and the cache).
// It reports the latency from the push returning over all nodes and
// iterations (p50-ms, p90-ms, p99-ms, max-ms), what applying took on
// node p0 (apply-ms: from the mesh read to the reload done, i.e. the
// node's view plus applyLocked; reconfigure-ms: Device.Reconfigure alone),
// the same for p0 alone once the 19 others are stopped (solo-latency-ms,
// solo-apply-ms, solo-reconfigure-ms: the 20 nodes share this machine's
// CPUs, which the fleet numbers mostly measure), the push itself (push-ms)
// and the heap one started 1,000-peer node holds (heap-B/node). Every
// reload must report exactly `updated peers: p999` and that peer's routes,
// and run route commands for those prefixes only, or the benchmark fails.
//
//	go test -run '^$' -bench BenchmarkFleet -benchtime 10x ./peer
func BenchmarkFleetEtcdOnePeerChange(b *testing.B) {
	srv := etcdtest.Start(b)
	url := srv.URL("fleet")
	fm := newFleetMesh(b, fleetPeers, fleetNodes)
	target, err := meshstore.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	store, err := meshstore.Open(target, meshstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	pushMesh := func(m *config.Mesh) *meshstore.Diff {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		d, err := store.Push(ctx, m, meshstore.NoRevision)
		if err != nil {
			b.Fatal(err)
		}
		return d
	}
	// A push is one transaction, and etcd refuses one of more than
	// --max-txn-ops operations (128 by default): the mesh goes in 100
	// new peers at a time.
	for n := fleetSeedBatch; n <= fleetPeers; n += fleetSeedBatch {
		pushMesh(fm.firstPeers(b, n, ""))
	}
	push := func(extra string) time.Duration {
		start := time.Now()
		d := pushMesh(fm.mesh(b, extra))
		if extra != "" && (!slices.Equal(d.Changed, []string{fleetChanged}) || len(d.Added)+len(d.Removed) > 0) {
			b.Fatalf("push changed %s, want only %s", d.Summary(), fleetChanged)
		}
		return time.Since(start)
	}

	events := make(chan fleetEvent, 4*fleetNodes)
	net := udptest.NewNetwork()
	nodes := make([]*fleetNode, fleetNodes)
	var before, after runtime.MemStats
	for i := range nodes {
		if i == 0 {
			runtime.GC()
			runtime.ReadMemStats(&before)
		}
		nodes[i] = startFleetNode(b, url, fm, i, net, events)
		if i == 0 {
			nodes[0].waitUp(b)
			runtime.GC()
			runtime.ReadMemStats(&after)
		}
	}
	for _, n := range nodes {
		n.waitUp(b)
		n.cmds.take() // the start's commands
	}

	var lat []time.Duration
	var apply, reconf, pushes time.Duration
	prev := ""
	// ns/op is one push reaching all 20 nodes.
	b.ResetTimer()
	for it := 0; it < b.N; it++ {
		extra := fmt.Sprintf("10.200.%d.%d/32", it>>8&255, it&255)
		pushes += push(extra)
		pushed := time.Now()
		want := "trigger=etcd updated_peers=" + fleetChanged + " routes_added=" + extra
		if prev != "" {
			want += " routes_removed=" + prev
		}
		seen := make([]bool, fleetNodes)
		timeout := time.After(fleetApplyWithin)
		for got := 0; got < fleetNodes; got++ {
			var ev fleetEvent
			select {
			case ev = <-events:
			case <-timeout:
				b.Fatalf("push %d: %d of %d nodes applied it within %v; p0's log:\n%s", it, got, fleetNodes, fleetApplyWithin, nodes[0].logs)
			}
			n := nodes[ev.node]
			if seen[ev.node] {
				b.Fatalf("push %d: p%d reloaded twice: %s", it, ev.node, ev.line)
			}
			seen[ev.node] = true
			_, rest, _ := strings.Cut(ev.line, `msg="mesh reloaded" `)
			if rest != want {
				b.Fatalf("push %d: p%d touched more than %s's subnet:\n%s\nwant: %s", it, ev.node, fleetChanged, ev.line, want)
			}
			for _, c := range n.cmds.take() {
				if !strings.Contains(c, " "+extra+" ") && (prev == "" || !strings.Contains(c, " "+prev+" ")) {
					b.Fatalf("push %d: p%d ran %q, not a route of %s's change", it, ev.node, c, fleetChanged)
				}
			}
			lat = append(lat, ev.at.Sub(pushed))
		}
		t := nodes[0].timing()
		if !slices.Equal(t.changes.Updated, []string{fleetChanged}) || len(t.changes.Added)+len(t.changes.Removed)+len(t.changes.Rekeyed) > 0 {
			b.Fatalf("push %d: p0's Reconfigure changed %+v", it, t.changes)
		}
		apply += t.apply
		reconf += t.reconfigure
		prev = extra
	}
	b.StopTimer()

	// The same change on p0 alone, the other nodes stopped: what applying
	// costs a 1,000-peer node without 19 others sharing the CPUs.
	for _, n := range nodes[1:] {
		if err := n.stop(); err != nil {
			b.Fatal(err)
		}
	}
	var soloLat, soloApply, soloReconf time.Duration
	for it := b.N; it < b.N+fleetSolo; it++ {
		extra := fmt.Sprintf("10.200.%d.%d/32", it>>8&255, it&255)
		push(extra)
		pushed := time.Now()
		want := "trigger=etcd updated_peers=" + fleetChanged + " routes_added=" + extra + " routes_removed=" + prev
		var ev fleetEvent
		for ev.line == "" || ev.node != 0 {
			select {
			case ev = <-events:
			case <-time.After(fleetApplyWithin):
				b.Fatalf("solo push: p0 did not apply it within %v:\n%s", fleetApplyWithin, nodes[0].logs)
			}
		}
		if _, rest, _ := strings.Cut(ev.line, `msg="mesh reloaded" `); rest != want {
			b.Fatalf("solo push: p0 touched more than %s's subnet:\n%s\nwant: %s", fleetChanged, ev.line, want)
		}
		t := nodes[0].timing()
		soloLat += ev.at.Sub(pushed)
		soloApply += t.apply
		soloReconf += t.reconfigure
		prev = extra
	}

	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	pct := func(q float64) float64 {
		i := int(q*float64(len(lat))+0.999999) - 1
		return ms(lat[max(0, min(i, len(lat)-1))])
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.90), "p90-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
	b.ReportMetric(ms(apply)/float64(b.N), "apply-ms")
	b.ReportMetric(ms(reconf)/float64(b.N), "reconfigure-ms")
	b.ReportMetric(ms(pushes)/float64(b.N), "push-ms")
	b.ReportMetric(ms(soloLat)/fleetSolo, "solo-latency-ms")
	b.ReportMetric(ms(soloApply)/fleetSolo, "solo-apply-ms")
	b.ReportMetric(ms(soloReconf)/fleetSolo, "solo-reconfigure-ms")
	if after.HeapAlloc > before.HeapAlloc {
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc), "heap-B/node")
	}
}
