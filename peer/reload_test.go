package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/tunnel"
	"github.com/peer-vpn/peer/udp"
	"github.com/peer-vpn/peer/udp/udptest"
)

// The reload is tested on a whole node (runNode) in memory: tuntest.Memory,
// a udptest.Network socket, a recorder instead of the system commands,
// and the real control socket in a temporary directory. The tests that
// check the command side run it with fakeDevice, a tunnel that diffs peer
// sets the way Device.Reconfigure's contract says; the same scenarios run
// with the real tunnel in the tests named ...RealTunnel.

// fakeDevice is a tunnel that only keeps the peer set: Reconfigure diffs it
// by public key as the contract of tunnel.Device.Reconfigure says.
type fakeDevice struct {
	mu       sync.Mutex
	peers    map[keys.Public]tunnel.PeerConfig
	calls    int // Reconfigure calls
	mtu      int
	tap      tunnel.Tap
	tapCalls int
	// serveRelay is Config.ServeRelay, then what SetServeRelay set;
	// localAddrs is Config.LocalAddrs.
	serveRelay bool
	localAddrs func() []netip.AddrPort
	closed     chan struct{}
	once       sync.Once
}

func newFakeDevice(cfg tunnel.Config) (device, error) {
	d := &fakeDevice{peers: map[keys.Public]tunnel.PeerConfig{}, mtu: cfg.TUN.MTU(), tap: cfg.Tap, closed: make(chan struct{}),
		serveRelay: cfg.ServeRelay, localAddrs: cfg.LocalAddrs}
	for _, p := range cfg.Peers {
		d.peers[p.PublicKey] = p
	}
	return d, nil
}

func (d *fakeDevice) Reconfigure(peers []tunnel.PeerConfig) (tunnel.Changes, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	var c tunnel.Changes
	next := map[keys.Public]tunnel.PeerConfig{}
	for _, p := range peers {
		next[p.PublicKey] = p
		old, ok := d.peers[p.PublicKey]
		switch {
		case !ok:
			c.Added = append(c.Added, p.Name)
		case old.Preshared != p.Preshared:
			c.Rekeyed = append(c.Rekeyed, p.Name)
		case old.Name != p.Name || !slices.Equal(old.Prefixes, p.Prefixes) || old.Endpoint != p.Endpoint || old.Keepalive != p.Keepalive || old.Relay != p.Relay:
			c.Updated = append(c.Updated, p.Name)
		}
	}
	for k, p := range d.peers {
		if _, ok := next[k]; !ok {
			c.Removed = append(c.Removed, p.Name)
		}
	}
	slices.Reverse(c.Updated) // the report sorts them
	d.peers = next
	return c, nil
}

func (d *fakeDevice) SetMTU(mtu int) { d.mu.Lock(); d.mtu = mtu; d.mu.Unlock() }

func (d *fakeDevice) SetServeRelay(on bool) { d.mu.Lock(); d.serveRelay = on; d.mu.Unlock() }

func (d *fakeDevice) SetTap(t tunnel.Tap) { d.mu.Lock(); d.tap = t; d.tapCalls++; d.mu.Unlock() }

func (d *fakeDevice) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-d.closed:
	}
	d.Close()
	return nil
}

func (d *fakeDevice) Status() tunnel.Status { return tunnel.Status{Interface: "fake"} }

func (d *fakeDevice) Close() { d.once.Do(func() { close(d.closed) }) }

func (d *fakeDevice) state() (calls, mtu, tapCalls int, names []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range d.peers {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return d.calls, d.mtu, d.tapCalls, names
}

// recorder stands in for netconf.Run and RunTolerant.
type recorder struct {
	mu     sync.Mutex
	cmds   [][]string
	failOn string // a command that fails (joined by spaces)
}

func (r *recorder) run(_ context.Context, cmds [][]string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var err error
	for _, c := range cmds {
		r.cmds = append(r.cmds, slices.Clone(c))
		if strings.Join(c, " ") == r.failOn {
			err = &netconf.CommandError{Args: c, Stderr: "RTNETLINK answers: No such device", Err: errors.New("exit status 2")}
		}
	}
	return err
}

// take returns the commands recorded since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.cmds {
		out = append(out, strings.Join(c, " "))
	}
	r.cmds = nil
	return out
}

// testMesh holds the keys of a test mesh; its files live in dir.
type testMesh struct {
	dir  string
	keys map[string]keys.Private
}

func newTestMesh(t *testing.T, names ...string) *testMesh {
	t.Helper()
	m := &testMesh{dir: t.TempDir(), keys: map[string]keys.Private{}}
	for _, n := range names {
		k, err := keys.NewPrivate()
		if err != nil {
			t.Fatal(err)
		}
		m.keys[n] = k
		if err := os.WriteFile(m.keyFile(n), []byte(k.Base64()+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *testMesh) keyFile(name string) string { return filepath.Join(m.dir, name+".key") }
func (m *testMesh) path() string               { return filepath.Join(m.dir, "mesh.yaml") }

// write replaces the mesh file by rename, as an editor does. Each peer is
// "name address [key: value...]", the fields after the address being YAML
// lines of the entry.
func (m *testMesh) write(t *testing.T, head string, peers ...string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(head)
	b.WriteString("peers:\n")
	for _, p := range peers {
		f := strings.Fields(p)
		fmt.Fprintf(&b, "  - name: %s\n    public_key: %q\n    address: %s\n", f[0], m.keys[f[0]].Public(), f[1])
		for _, kv := range f[2:] {
			fmt.Fprintf(&b, "    %s\n", strings.ReplaceAll(kv, "=", ": "))
		}
	}
	tmp := m.path() + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, m.path()); err != nil {
		t.Fatal(err)
	}
}

// runningNode is a node run by runNode in memory.
type runningNode struct {
	t      *testing.T
	socket string
	cmds   *recorder
	logs   *lockedBuffer
	fake   *fakeDevice // nil with the real tunnel
	tun    *tuntest.Memory
	conn   udp.Conn // the node's socket on the memory network
	hangup chan os.Signal
	level  *slog.LevelVar
	cancel context.CancelFunc
	done   chan error
}

// nodeOpts are the knobs of startNode.
type nodeOpts struct {
	real  bool     // the real tunnel instead of fakeDevice
	watch bool     // -watch
	args  []string // more flags of the node
	net   *udptest.Network
	addr  string // the socket's address on net
	wg    string // the wg socket (-wg-socket); "": none
	wgOpt bool   // wg is the default path: the node may run without it
	// events, if set, records the system commands and the sd_notify
	// messages in the one order they happened (a notification as
	// "sd_notify LINE...").
	events *recorder
	// sysctls, if set, are the kernel settings the node reads (else it
	// reads none and restores none).
	sysctls map[string]string
	// refused, if set, receives the error of the start's checks
	// (checkStart), and startNode then returns nil instead of failing.
	refused *error
}

// startNode runs the node of key file key on mesh file path as `peer
// -config PATH -key KEY ...` would, in memory, and waits until its control
// socket answers.
func startNode(t *testing.T, path, key string, o nodeOpts) *runningNode {
	t.Helper()
	return startNodeAt(t, path, key, filepath.Join(t.TempDir(), "peer.sock"), o)
}

// testRunFlags parses args as `peer ARGS` does (runFlags.parse), for a
// node a test runs in memory.
func testRunFlags(tb testing.TB, args []string) *runFlags {
	tb.Helper()
	var rf runFlags
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if err := rf.parse(fs, args); err != nil {
		tb.Fatal(err)
	}
	return &rf
}

// startNodeAt is startNode with the control socket at socket.
func startNodeAt(t *testing.T, path, key, socket string, o nodeOpts) *runningNode {
	t.Helper()
	n := &runningNode{t: t, socket: socket, cmds: &recorder{}, logs: &lockedBuffer{},
		hangup: make(chan os.Signal, 1), done: make(chan error, 1)}
	rf := testRunFlags(t, append([]string{"-config", path, "-key", key}, o.args...))
	rf.socket, rf.watch, rf.wgSocket, rf.wgOptional = n.socket, o.watch, o.wg, o.wgOpt
	node, capOpts, err := rf.checkStart(netconf.Linux)
	if err != nil && o.refused != nil {
		*o.refused = err
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	if o.net == nil {
		o.net = udptest.NewNetwork()
	}
	if o.addr == "" {
		o.addr = "192.0.2.1"
	}
	sys := system{
		goos: netconf.Linux,
		openTUN: func(name, driver string, mtu int) (tundev.Device, error) {
			// What tundev.Open refuses before it touches the system.
			if err := tundev.CheckMTU(mtu, false); err != nil {
				return nil, err
			}
			if err := tundev.CheckDriver(driver); err != nil {
				return nil, err
			}
			n.tun = tuntest.NewMemory(name, mtu, 8)
			return n.tun, nil
		},
		listenUDP: func(port int) (udp.Conn, error) {
			c, err := o.net.Listen(netip.AddrPortFrom(netip.MustParseAddr(o.addr), uint16(port)))
			n.conn = c
			return c, err
		},
		run:         n.cmds.run,
		runTolerant: n.cmds.run,
		hangup:      n.hangup,
		newDevice:   newTunnel,
	}
	if o.sysctls != nil {
		sys.readSysctl = func(key string) (string, error) {
			if v, ok := o.sysctls[key]; ok {
				return v, nil
			}
			return "", os.ErrNotExist
		}
	}
	if o.events != nil {
		sys.run = func(ctx context.Context, cmds [][]string) error {
			o.events.run(ctx, cmds)
			return n.cmds.run(ctx, cmds)
		}
		sys.runTolerant = sys.run
		sys.notify = func(state ...string) error {
			return o.events.run(context.Background(), [][]string{append([]string{"sd_notify"}, state...)})
		}
	}
	if !o.real {
		sys.newDevice = func(cfg tunnel.Config) (device, error) {
			d, err := newFakeDevice(cfg)
			n.fake = d.(*fakeDevice)
			return d, err
		}
	}
	level := new(slog.LevelVar)
	level.Set(logLevel(node.Mesh.LogLevel, rf.verbose))
	n.level = level
	log := slog.New(slog.NewTextHandler(n.logs, &slog.HandlerOptions{Level: level}))
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { n.done <- runNode(ctx, node, rf, capOpts, log, level, sys) }()
	t.Cleanup(n.stop)
	deadline := time.Now().Add(5 * time.Second)
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
			t.Fatalf("node not up within 5 s:\n%s", n.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.cmds.take() // the start's commands
	return n
}

func (n *runningNode) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	n.cancel = nil
	select {
	case err := <-n.done:
		if err != nil {
			n.t.Errorf("node: %v", err)
		}
	case <-time.After(5 * time.Second):
		n.t.Error("node did not stop")
	}
}

// reload runs `peer reload -socket S ARGS...`.
func (n *runningNode) reload(args ...string) (int, string, string) {
	return runCmd(n.t, "", append([]string{"reload", "-socket", n.socket}, args...)...)
}

// waitLog waits until the node's log has count lines containing s.
func (n *runningNode) waitLog(s string, count int, within time.Duration) {
	n.t.Helper()
	waitLog(n.t, n.logs, s, count, within)
}

// waitLog waits until logs has s count times, failing t after within.
func waitLog(t *testing.T, logs *lockedBuffer, s string, count int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for strings.Count(logs.String(), s) < count {
		if time.Now().After(deadline) {
			t.Fatalf("log has not %d× %q after %v:\n%s", count, s, within, logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The scenario of the reload tests. v1: alpha (this node), beta with a
// subnet, gamma with another.
func (m *testMesh) writeV1(t *testing.T) {
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 subnets=[10.20.2.0/24] endpoint=192.0.2.2:51820",
		"gamma 10.10.0.3/24 subnets=[10.20.3.0/24] endpoint=192.0.2.3:51820")
}

// v2: delta joins, gamma leaves, gamma's subnet moves to beta, alpha
// changes its address and the MTU drops.
func (m *testMesh) writeV2(t *testing.T) {
	m.write(t, "interface:\n  mtu: 1380\n",
		"alpha 10.10.0.5/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 subnets=[10.20.2.0/24,10.20.3.0/24] endpoint=192.0.2.2:51820",
		"delta 10.10.0.4/24 endpoint=192.0.2.4:51820")
}

const v2Output = `added peers: delta
removed peers: gamma
updated peers: beta
routes added: 10.10.0.4/32
routes removed: 10.10.0.3/32
addresses added: 10.10.0.5/24
addresses removed: 10.10.0.1/24
mtu: 1420 -> 1380
`

// v2Commands: the MTU, the new address before the old one goes, the route
// that went, the old address, the IPv4 address and kept routes again
// (Linux may have flushed them with the old address), then the new route.
// The prefix that moved from gamma to beta is no command at all.
var v2Commands = []string{
	"ip link set dev peer0 mtu 1380",
	"ip addr replace 10.10.0.5/24 dev peer0",
	"ip route del 10.10.0.3/32 dev peer0",
	"ip addr del 10.10.0.1/24 dev peer0",
	"ip addr replace 10.10.0.5/24 dev peer0",
	"ip route replace 10.10.0.2/32 dev peer0",
	"ip route replace 10.20.2.0/24 dev peer0",
	"ip route replace 10.20.3.0/24 dev peer0",
	"ip route replace 10.10.0.4/32 dev peer0",
}

func testReloadScenario(t *testing.T, real bool) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{real: real})

	// Nothing changed yet.
	if code, out, errOut := n.reload(); code != 0 || out != "no changes\n" {
		t.Fatalf("reload of the same file: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	n.waitLog("mesh unchanged", 1, time.Second)
	if cmds := n.cmds.take(); len(cmds) != 0 {
		t.Errorf("reload of the same file ran %q", cmds)
	}

	m.writeV2(t)
	code, out, errOut := n.reload()
	if code != 0 || out != v2Output {
		t.Fatalf("reload: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errOut, out, v2Output)
	}
	if cmds := n.cmds.take(); !slices.Equal(cmds, v2Commands) {
		t.Errorf("commands:\n%s\nwant\n%s", strings.Join(cmds, "\n"), strings.Join(v2Commands, "\n"))
	}
	n.waitLog(`msg="mesh reloaded" trigger="peer reload" added_peers=delta removed_peers=gamma updated_peers=beta`, 1, time.Second)
	if n.fake != nil {
		if _, mtu, _, names := n.fake.state(); mtu != 1380 || !slices.Equal(names, []string{"beta", "delta"}) {
			t.Errorf("device: mtu %d, peers %v", mtu, names)
		}
	}
	// `peer routes` prints the truth: the routes the node now has.
	_, routes, _ := runCmd(t, "", "routes", "-config", m.path(), "-key", m.keyFile("alpha"), "-os", "linux")
	for _, want := range []string{"10.10.0.4/32", "10.20.3.0/24"} {
		if !strings.Contains(routes, want) {
			t.Errorf("peer routes lacks %s:\n%s", want, routes)
		}
	}
	if strings.Contains(routes, "10.10.0.3/32") {
		t.Errorf("peer routes still has gamma:\n%s", routes)
	}

	// The same again: nothing to do, and -json says so with an empty object.
	if code, out, _ := n.reload("-json"); code != 0 || out != "{}\n" {
		t.Errorf("second reload -json: exit %d, %q", code, out)
	}

	// An invalid file: refused with FILE:LINE on stderr, exit 2, and the
	// node untouched.
	valid, _ := os.ReadFile(m.path())
	m.write(t, "interface:\n  mtu: 1300\n",
		"alpha 10.10.0.5/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 pubic_key=typo")
	code, out, errOut = n.reload()
	if code != 2 || out != "" || !strings.Contains(errOut, m.path()+":11: ") || !strings.Contains(errOut, "pubic_key") {
		t.Errorf("invalid file: exit %d, stdout %q, stderr %q; want 2 and %s:11", code, out, errOut, m.path())
	}
	if !strings.Contains(errOut, "\n"+m.path()+":") {
		t.Errorf("the FILE:LINE problems do not start their lines: %q", errOut)
	}
	n.waitLog(`level=WARN msg="mesh reload refused" trigger="peer reload"`, 1, time.Second)
	if cmds := n.cmds.take(); len(cmds) != 0 {
		t.Errorf("a refused file ran %q", cmds)
	}

	// A change that needs a restart: the listen port. Refused as a whole:
	// the peer and the MTU that change with it are not applied either.
	m.write(t, "interface:\n  mtu: 1300\n",
		"alpha 10.10.0.5/24 endpoint=192.0.2.1:51821",
		"beta 10.10.0.2/24 subnets=[10.20.2.0/24,10.20.3.0/24] endpoint=192.0.2.2:51820")
	code, out, errOut = n.reload()
	if code != 2 || out != "" || !strings.Contains(errOut, "listen port 51820 -> 51821") || !strings.Contains(errOut, "restart peer") {
		t.Errorf("listen port change: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	n.waitLog(`msg="mesh reload refused"`, 2, time.Second)
	if cmds := n.cmds.take(); len(cmds) != 0 {
		t.Errorf("a refused change ran %q", cmds)
	}
	if n.fake != nil {
		if calls, mtu, _, names := n.fake.state(); calls != 3 || mtu != 1380 || len(names) != 2 {
			t.Errorf("after refusals: %d Reconfigure calls (want 3), mtu %d, peers %v", calls, mtu, names)
		}
	}

	// Back to the valid file, by SIGHUP this time: no changes.
	if err := os.WriteFile(m.path(), valid, 0o644); err != nil {
		t.Fatal(err)
	}
	n.hangup <- syscall.SIGHUP
	n.waitLog(`msg="mesh unchanged" trigger=SIGHUP`, 1, 2*time.Second)
}

// TestReloadCommandSide runs the scenario with the fake tunnel.
func TestReloadCommandSide(t *testing.T) { testReloadScenario(t, false) }

// TestReloadRealTunnel runs it with tunnel.Device (needs Reconfigure).
func TestReloadRealTunnel(t *testing.T) { testReloadScenario(t, true) }

func TestReloadJSON(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	m.writeV2(t)
	code, out, errOut := n.reload("-json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || strings.Count(out, "\n") != 1 {
		t.Fatalf("not one JSON object on one line: %q, %v", out, err)
	}
	want := map[string]any{
		"added_peers":       []any{"delta"},
		"removed_peers":     []any{"gamma"},
		"updated_peers":     []any{"beta"},
		"routes_added":      []any{"10.10.0.4/32"},
		"routes_removed":    []any{"10.10.0.3/32"},
		"addresses_added":   []any{"10.10.0.5/24"},
		"addresses_removed": []any{"10.10.0.1/24"},
		"mtu":               map[string]any{"old": 1420.0, "new": 1380.0},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("JSON %s\nwant %v", out, want)
	}
}

func TestReloadNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "none.sock")
	code, out, errOut := runCmd(t, "", "reload", "-socket", sock)
	if code != 1 || out != "" || !strings.Contains(errOut, "no node is running with control socket "+sock) {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and a clear error", code, out, errOut)
	}
	if code, _, _ := runCmd(t, "", "reload", "-socket", sock, "extra"); code != 2 {
		t.Errorf("extra argument: exit %d, want 2", code)
	}
}

// TestReloadOnlyPeers: a file that changes peers only runs only the route
// commands of the prefixes that changed, and a keepalive or endpoint change
// runs none.
func TestReloadOnlyPeers(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 subnets=[10.20.2.0/24] endpoint=192.0.2.22:51820 keepalive=25s",
		"gamma 10.10.0.3/24 subnets=[10.20.3.0/24] endpoint=192.0.2.3:51820")
	if code, out, _ := n.reload(); code != 0 || out != "updated peers: beta\n" {
		t.Errorf("endpoint and keepalive: exit %d, %q", code, out)
	}
	if cmds := n.cmds.take(); len(cmds) != 0 {
		t.Errorf("endpoint and keepalive ran %q", cmds)
	}
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 subnets=[10.20.2.0/24,fd00:20::/64] endpoint=192.0.2.22:51820 keepalive=25s",
		"gamma 10.10.0.3/24 endpoint=192.0.2.3:51820")
	code, out, _ := n.reload()
	if want := "updated peers: beta gamma\nroutes added: fd00:20::/64\nroutes removed: 10.20.3.0/24\n"; code != 0 || out != want {
		t.Errorf("exit %d, stdout\n%s\nwant\n%s", code, out, want)
	}
	want := []string{"ip route del 10.20.3.0/24 dev peer0", "ip -6 route replace fd00:20::/64 dev peer0"}
	if cmds := n.cmds.take(); !slices.Equal(cmds, want) {
		t.Errorf("commands %q, want %q", cmds, want)
	}
}

// TestReloadNoRoutes: with -no-routes the node runs no route command on a
// reload either, and reports no route changes; addresses still follow.
func TestReloadNoRoutes(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{args: []string{"-no-routes"}})
	m.writeV2(t)
	code, out, _ := n.reload()
	want := "added peers: delta\nremoved peers: gamma\nupdated peers: beta\naddresses added: 10.10.0.5/24\naddresses removed: 10.10.0.1/24\nmtu: 1420 -> 1380\n"
	if code != 0 || out != want {
		t.Errorf("exit %d, stdout\n%s\nwant\n%s", code, out, want)
	}
	wantCmds := []string{
		"ip link set dev peer0 mtu 1380",
		"ip addr replace 10.10.0.5/24 dev peer0",
		"ip addr del 10.10.0.1/24 dev peer0",
		"ip addr replace 10.10.0.5/24 dev peer0",
	}
	if cmds := n.cmds.take(); !slices.Equal(cmds, wantCmds) {
		t.Errorf("commands %q, want %q", cmds, wantCmds)
	}
}

// TestReloadRefusesRestartChanges: each change only a restart applies is
// refused with that advice, and nothing else of the file is applied.
func TestReloadRefusesRestartChanges(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	for _, tc := range []struct{ name, head, want string }{
		{"interface name", "interface:\n  name: peer9\n", "interface name peer0 -> peer9"},
		{"driver", "interface:\n  driver: water\n", "interface driver auto -> water"},
	} {
		m.write(t, tc.head,
			"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
			"beta 10.10.0.2/24 subnets=[10.20.2.0/24] endpoint=192.0.2.2:51820")
		code, out, errOut := n.reload()
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "restart peer to apply it") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", tc.name, code, out, errOut)
		}
	}
	// An MTU the TUN device does not take: refused by the mesh check,
	// which asks the device's limits, at its line.
	m.write(t, "interface:\n  mtu: 71\n",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 subnets=[10.20.2.0/24] endpoint=192.0.2.2:51820")
	if code, _, errOut := n.reload(); code != 2 || !strings.Contains(errOut, m.path()+":2: interface.mtu: 71 is below the minimum 72") {
		t.Errorf("mtu 71: exit %d, stderr %q", code, errOut)
	}
	// This node's own key: the key file now holds beta's key.
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 subnets=[10.20.2.0/24] endpoint=192.0.2.1:51820")
	if err := os.WriteFile(m.keyFile("alpha"), []byte(m.keys["beta"].Base64()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := n.reload(); code != 2 || !strings.Contains(errOut, "private key changed") {
		t.Errorf("own key: exit %d, stderr %q", code, errOut)
	}
	if cmds := n.cmds.take(); len(cmds) != 0 {
		t.Errorf("refused changes ran %q", cmds)
	}
	if calls, _, _, names := n.fake.state(); calls != 0 || len(names) != 2 {
		t.Errorf("refused changes reached the device: %d calls, peers %v", calls, names)
	}
}

// TestReloadWatch: with -watch, an edit with no signal and no command is
// applied within 2 s, in place or by rename; an invalid save is refused
// and logged, and the next valid one applied.
func TestReloadWatch(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{watch: true})
	m.writeV2(t) // by rename
	n.waitLog(`msg="mesh reloaded" trigger=watch added_peers=delta`, 1, 2*time.Second)
	if cmds := n.cmds.take(); !slices.Equal(cmds, v2Commands) {
		t.Errorf("commands:\n%s\nwant\n%s", strings.Join(cmds, "\n"), strings.Join(v2Commands, "\n"))
	}
	// In place: an invalid file, then a valid one.
	if err := os.WriteFile(m.path(), []byte("peers: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n.waitLog(`msg="mesh reload refused" trigger=watch`, 1, 2*time.Second)
	if !strings.Contains(n.logs.String(), m.path()+":") {
		t.Errorf("the refusal does not name FILE:LINE:\n%s", n.logs)
	}
	m.writeV1(t)
	n.waitLog(`msg="mesh reloaded" trigger=watch added_peers=gamma removed_peers=delta`, 1, 2*time.Second)
}

// TestReloadCaptureRules: a capture change rebuilds the tap; the mesh file
// cannot turn -pcap-keys into a capture without -pcap-outer.
func TestReloadCaptureRules(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta")
	pcap := filepath.Join(m.dir, "cap.pcapng")
	m.write(t, "capture:\n  pcap: "+pcap+"\n  outer: true\n",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24")
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{args: []string{"-pcap-keys"}})
	// Unchanged capture: the tap (and its file) are kept.
	m.write(t, "capture:\n  pcap: "+pcap+"\n  outer: true\n",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24 keepalive=10s")
	if code, out, errOut := n.reload(); code != 0 || out != "updated peers: beta\n" {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	if _, _, taps, _ := n.fake.state(); taps != 0 {
		t.Errorf("an unchanged capture was rebuilt %d times", taps)
	}
	// The file drops outer: -pcap-keys would write the key for nothing.
	m.write(t, "capture:\n  pcap: "+pcap+"\n",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24 keepalive=10s")
	if code, _, errOut := n.reload(); code != 2 || !strings.Contains(errOut, "-pcap-keys needs -pcap-outer") {
		t.Errorf("outer dropped under -pcap-keys: exit %d, %q", code, errOut)
	}
	// A new rotation size: a new tap.
	m.write(t, "capture:\n  pcap: "+pcap+"\n  outer: true\n  max_size: 1000000\n",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24 keepalive=10s")
	if code, out, errOut := n.reload(); code != 0 || out != "no changes\n" {
		t.Fatalf("exit %d, %q, %q", code, out, errOut)
	}
	if _, _, taps, _ := n.fake.state(); taps != 1 {
		t.Errorf("a changed capture: SetTap called %d times, want 1", taps)
	}
}

// TestReloadsAreSerialized: concurrent triggers each see a whole reload.
func TestReloadsAreSerialized(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	m.writeV2(t)
	var wg sync.WaitGroup
	outs := make([]string, 4)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, outs[i], _ = n.reload()
		}()
	}
	n.hangup <- syscall.SIGHUP
	wg.Wait()
	n.waitLog("trigger=SIGHUP", 1, 2*time.Second)
	full := 0
	for _, o := range outs {
		switch o {
		case v2Output:
			full++
		case "no changes\n":
		default:
			t.Errorf("a reload saw part of another: %q", o)
		}
	}
	if full > 1 || strings.Count(n.logs.String(), `msg="mesh reloaded"`) != 1 {
		t.Errorf("the change was applied more than once:\n%s", n.logs)
	}
	if cmds := n.cmds.take(); !slices.Equal(cmds, v2Commands) {
		t.Errorf("commands:\n%s", strings.Join(cmds, "\n"))
	}
}

// TestReloadLogLevel: log_level reloads; -v keeps debug whatever the file
// says.
func TestReloadLogLevel(t *testing.T) {
	for _, verbose := range []bool{false, true} {
		m := newTestMesh(t, "alpha", "beta")
		peers := []string{"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820", "beta 10.10.0.2/24"}
		m.write(t, "", peers...)
		var args []string
		if verbose {
			args = []string{"-v"}
		}
		n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{args: args})
		want := slog.LevelInfo
		if verbose {
			want = slog.LevelDebug
		}
		if got := n.level.Level(); got != want {
			t.Errorf("-v=%v: level at start %v, want %v", verbose, got, want)
		}
		for _, tc := range []struct {
			file string
			want slog.Level
		}{{"debug", slog.LevelDebug}, {"warn", slog.LevelWarn}, {"", slog.LevelInfo}} {
			head := ""
			if tc.file != "" {
				head = "log_level: " + tc.file + "\n"
			}
			m.write(t, head, peers...)
			if code, out, errOut := n.reload(); code != 0 || out != "no changes\n" {
				t.Fatalf("log_level %q: exit %d, %q, %q", tc.file, code, out, errOut)
			}
			if verbose {
				tc.want = slog.LevelDebug
			}
			if got := n.level.Level(); got != tc.want {
				t.Errorf("-v=%v, log_level %q: level %v, want %v", verbose, tc.file, got, tc.want)
			}
		}
		if !verbose && !strings.Contains(n.logs.String(), `level=WARN msg="log level changed" from=DEBUG to=WARN`) {
			t.Errorf("the move to warn was not logged:\n%s", n.logs)
		}
		m.write(t, "log_level: loud\n", peers...)
		if code, _, errOut := n.reload(); code != 2 || !strings.Contains(errOut, m.path()+":1: log_level") {
			t.Errorf("bad log_level: exit %d, %q", code, errOut)
		}
		n.stop()
	}
}

// TestReportFormat: every category, in the fixed order, one line each;
// the JSON has the same facts.
func TestReportFormat(t *testing.T) {
	rep := reloadReport{
		AddedPeers: []string{"a", "b"}, RemovedPeers: []string{"c"}, UpdatedPeers: []string{"d"},
		RekeyedPeers: []string{"e"}, RoutesAdded: []string{"10.20.2.0/24", "fd00::/64"},
		RoutesRemoved: []string{"10.20.9.0/24"}, AddressesAdded: []string{"10.10.0.5/24"},
		AddressesRemoved: []string{"10.10.0.1/24"}, MTU: &mtuChange{Old: 1420, New: 1380},
	}
	want := `added peers: a b
removed peers: c
updated peers: d
rekeyed peers: e
routes added: 10.20.2.0/24 fd00::/64
routes removed: 10.20.9.0/24
addresses added: 10.10.0.5/24
addresses removed: 10.10.0.1/24
mtu: 1420 -> 1380
`
	var text, js bytes.Buffer
	if err := printReport(&text, &rep, false); err != nil || text.String() != want {
		t.Errorf("text:\n%s\nwant\n%s", text.String(), want)
	}
	if err := printReport(&js, &rep, true); err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"added_peers":["a","b"],"removed_peers":["c"],"updated_peers":["d"],"rekeyed_peers":["e"],` +
		`"routes_added":["10.20.2.0/24","fd00::/64"],"routes_removed":["10.20.9.0/24"],` +
		`"addresses_added":["10.10.0.5/24"],"addresses_removed":["10.10.0.1/24"],"mtu":{"old":1420,"new":1380}}` + "\n"
	if js.String() != wantJSON {
		t.Errorf("json:\n%s\nwant\n%s", js.String(), wantJSON)
	}
	var empty reloadReport
	if empty.String() != "no changes\n" || !empty.Empty() {
		t.Errorf("empty report: %q", empty.String())
	}
	only := reloadReport{RekeyedPeers: []string{"e"}}
	if only.String() != "rekeyed peers: e\n" {
		t.Errorf("one category: %q", only.String())
	}
}

// TestReloadWhileStopping: a reload that arrives as the node stops is
// answered with an error, not applied.
func TestReloadWhileStopping(t *testing.T) {
	r := &reloader{closed: true, log: slog.New(slog.DiscardHandler)}
	ans := r.reloadLogged(context.Background(), "peer reload")
	if ans.Report != nil || ans.Refused != "" || !strings.Contains(ans.Error, "shutting down") {
		t.Errorf("answer %+v", ans)
	}
}

// TestReloadCommandFailure: a system command that fails after the mesh was
// applied: the report is printed, the failure too, exit 1; the node runs
// the new mesh and says so in its log.
func TestReloadCommandFailure(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma", "delta")
	m.writeV1(t)
	n := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{})
	n.cmds.mu.Lock()
	n.cmds.failOn = "ip route replace 10.10.0.4/32 dev peer0"
	n.cmds.mu.Unlock()
	m.writeV2(t)
	code, out, errOut := n.reload()
	if code != 1 || out != v2Output || !strings.Contains(errOut, "mesh applied, but configuring peer0 failed") ||
		!strings.Contains(errOut, "ip route replace 10.10.0.4/32 dev peer0") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if cmds := n.cmds.take(); !slices.Equal(cmds, v2Commands) {
		t.Errorf("not every command was tried after the failure:\n%s", strings.Join(cmds, "\n"))
	}
	n.waitLog(`level=ERROR msg="mesh reload incomplete" trigger="peer reload"`, 1, time.Second)
}
