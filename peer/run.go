package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/control"
	"github.com/peer-vpn/peer/meshstore"
	"github.com/peer-vpn/peer/metrics"
	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
	"github.com/peer-vpn/peer/tunnel"
)

// runFlags are the flags of the node itself.
type runFlags struct {
	nodeFlags
	socket string
	// socketOptional: socket is the default path, not one asked for; if it
	// cannot be had (no $XDG_RUNTIME_DIR for an unprivileged node), the
	// node says so and runs without it.
	socketOptional bool
	noRoutes       bool
	driver         string
	workers        int
	verbose        bool
	logFmt         string
	capture        captureFlags
	metrics        metricsFlag
	proxies        proxyFlags

	// wgSocket is where wg(8) is answered, "" for nowhere. wgOptional: it
	// is the default path, not one asked for; if it cannot be had, the
	// node says so and runs without it.
	wgSocket   string
	wgOptional bool
}

// watchQuiet is how long the mesh file must stay quiet after a change
// before -watch reloads it: editors and config-management tools write a
// file in several steps (truncate, write, rename, chmod).
const watchQuiet = 200 * time.Millisecond

func cmdRun(args []string, stderr io.Writer) error {
	var rf runFlags
	if err := rf.parse(newFlagSet("peer", stderr), args); err != nil {
		return err
	}
	node, capOpts, err := rf.checkStart(runtime.GOOS)
	if err != nil {
		return err
	}
	if rf.socket == "" {
		rf.socket, rf.socketOptional = control.SocketPath(node.Interface.Name), true
	}
	// Before any device is touched: a -socket naming a file, or a directory
	// others can write, is a usage error.
	if err := control.CheckPath(rf.socket); err != nil {
		return usageError{err}
	}
	switch rf.wgSocket {
	case "none":
		rf.wgSocket = ""
	case "":
		rf.wgSocket, rf.wgOptional = wgSocketPath(node.Interface.Name), true
	default:
		if err := control.CheckPrivatePath(rf.wgSocket); err != nil {
			return usageError{wgSocketError{err}}
		}
	}
	level := new(slog.LevelVar)
	level.Set(logLevel(node.Mesh.LogLevel, rf.verbose))
	log := slog.New(logHandler(rf.logFmt, stderr, level))
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sys := hostSystem()
	hangup := make(chan os.Signal, 1)
	signal.Notify(hangup, syscall.SIGHUP)
	defer signal.Stop(hangup)
	sys.hangup = hangup
	return runNode(ctx, node, &rf, capOpts, log, level, sys)
}

// parse registers the node's flags on fs, parses args and checks what the
// flags alone decide: the one flag set of `peer` and of the tests that run
// a node in memory.
func (rf *runFlags) parse(fs *flag.FlagSet, args []string) error {
	rf.register(fs)
	fs.StringVar(&rf.socket, "socket", "", "control socket path (default /run/peer/<iface>.sock, for users but root\n$XDG_RUNTIME_DIR/peer/<iface>.sock)")
	fs.StringVar(&rf.wgSocket, "wg-socket", "", "socket wg(8) reads the interface from, or none (default /var/run/wireguard/<iface>.sock)")
	fs.BoolVar(&rf.noRoutes, "no-routes", false, "do not install routes (run the script of 'peer routes' yourself)")
	fs.StringVar(&rf.driver, "driver", "", "TUN driver: auto, water, offload, or netstack: no TUN and no root, the tunnel addresses\nlive in a userspace TCP/IP stack reached with -socks5, -http-proxy, -forward, -expose\n(default: interface.driver of the mesh file)")
	fs.BoolVar(&rf.verbose, "v", false, "verbose logs")
	fs.BoolVar(&rf.watch, "watch", false, "reload the mesh file whenever it changes on disk (as SIGHUP and 'peer reload' do;\na mesh in etcd is always watched)")
	fs.StringVar(&rf.cache, "cache", "", "with -config etcd://: `FILE` keeping the last applied mesh, to start from when etcd is\nunreachable (default /var/lib/peer/PREFIX.mesh.yaml)")
	fs.StringVar(&rf.logFmt, "log-format", "text", "log format on stderr: text (key=value) or json (one object a line, for log shippers)")
	fs.IntVar(&rf.workers, "crypto-workers", 0, "goroutines helping each direction with encryption and decryption (0: GOMAXPROCS-2, -1: none)")
	rf.metrics.register(fs)
	rf.capture.register(fs)
	rf.proxies.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := rf.proxies.check(); err != nil {
		return err
	}
	if err := rf.metrics.check(fs); err != nil {
		return err
	}
	if rf.logFmt != "text" && rf.logFmt != "json" {
		return usageError{fmt.Errorf("-log-format %q: want text or json", rf.logFmt)}
	}
	return rf.checkCache()
}

// checkStart is every check of the mesh file and of the flags that shape
// the node (-driver, the capture flags) before any device is touched: a
// problem is a usage error (exit status 2), with FILE:LINE when the mesh
// file is at fault. What it accepts runNode brings up on goos; the limits
// it applies are their owners' (tundev, netconf, capture), asked through
// config and here, never copied.
func (rf *runFlags) checkStart(goos string) (*config.Node, captureOptions, error) {
	if rf.driver != "" {
		if err := tundev.CheckDriver(rf.driver); err != nil {
			return nil, captureOptions{}, usageError{fmt.Errorf("-driver: %w", err)}
		}
	}
	node, err := rf.loadNode()
	if err != nil {
		return nil, captureOptions{}, err
	}
	if err := checkNetstack(node); err != nil {
		return nil, captureOptions{}, usageError{err}
	}
	if err := rf.checkProxies(node); err != nil {
		return nil, captureOptions{}, err
	}
	if node.Interface.Driver == tundev.DriverNetstack {
		// No plan runs: nothing of the host's is touched.
	} else if err := plan(node, goos).Validate(); err != nil {
		// An exit on darwin, say: refused before any device is touched.
		return nil, captureOptions{}, usageError{fmt.Errorf("%s: %w", node.Mesh.File, err)}
	}
	capOpts := rf.capture.merge(node.Mesh.Capture)
	if err := capOpts.validate(); err != nil {
		return nil, captureOptions{}, usageError{err}
	}
	return node, capOpts, nil
}

// checkCache checks -cache against -config and fills in its default.
func (rf *runFlags) checkCache() error {
	if !isEtcdURL(rf.config) {
		if rf.cache != "" {
			return usageError{errors.New("-cache needs -config etcd://...")}
		}
		return nil
	}
	if rf.cache == "" {
		t, err := meshstore.ParseURL(rf.config)
		if err != nil {
			return usageError{err}
		}
		rf.cache = defaultCachePath(t)
	}
	return nil
}

// loadNode is load with -driver applied: the node's view at start and at
// every reload.
func (rf *runFlags) loadNode() (*config.Node, error) {
	node, err := rf.load()
	if err != nil {
		return nil, err
	}
	if rf.driver != "" {
		node.Interface.Driver = rf.driver
	}
	rf.metrics.apply(node)
	return node, nil
}

// peerEndpoint returns the lookup of a peer's current endpoint on dev, or
// nil (the mesh file's endpoint) for a device that cannot say.
func peerEndpoint(dev device) func(string) netip.AddrPort {
	td, ok := dev.(*tunnel.Device)
	if !ok {
		return nil
	}
	return td.PeerEndpoint
}

// runNode brings the node up, forwards (and reloads) until ctx ends, and
// takes down what it set up, in reverse order. sys is how it reaches the
// system; level is the logger's level, which reloads set.
func runNode(ctx context.Context, node *config.Node, rf *runFlags, capOpts captureOptions, log *slog.Logger, level *slog.LevelVar, sys system) error {
	tun, stack, err := openDevice(sys, node)
	if err != nil {
		return err
	}
	// A netstack node changes nothing on the host: no link, no route, no
	// policy, no mark (nothing routes its datagrams into the tunnel).
	userspace := stack != nil
	routes := !rf.noRoutes && !userspace
	defer func() {
		// Closing the TUN removes the interface: a failure may leave it behind.
		if err := tun.Close(); err != nil {
			log.Warn("closing the TUN device", "err", err)
		}
	}()
	p := plan(node, sys.goos)
	p.Iface = tun.Name()
	if !userspace {
		if err := sys.run(ctx, p.LinkUp()); err != nil {
			return fmt.Errorf("configuring %s: %w", p.Iface, err)
		}
	}
	conn, err := sys.listenUDP(node.ListenPort)
	if err != nil {
		return fmt.Errorf("listening on UDP port %d: %w", node.ListenPort, err)
	}
	defer conn.Close()
	mark := func(on bool) error { return markSocket(conn, sys.goos, on) }
	if userspace {
		mark = func(bool) error { return nil }
	}
	if p.UseExit && !userspace {
		// Before any rule sends unmarked traffic into the tunnel.
		if err := mark(true); err != nil {
			return fmt.Errorf("marking the UDP socket for exit %s: %w", node.Exit.Peer.Name, err)
		}
	}

	tap, closeTap, err := newTap(node, capOpts, log)
	if err != nil {
		return err
	}
	capDrops := newCaptureDrops()
	closeTap = capDrops.track(tap, closeTap)
	// The reloader owns the tap from here: a reload may replace it.
	r := &reloader{
		load: rf.loadNode, captureFor: rf.capture.merge, sys: sys, log: log, level: level,
		verbose: rf.verbose, routes: routes, userspace: userspace, mark: mark,
		node: node, plan: p, capture: capOpts, closeTap: closeTap, captureDrops: capDrops,
	}
	defer r.close()

	peers := peerConfigs(node)
	// The socket's port: the host's addresses with it are where a peer
	// behind the same NAT reaches this node.
	r.hostAddrs = newHostAddrs(node, conn.LocalPort(), log)
	dev, err := sys.newDevice(tunnel.Config{Private: node.Private, Peers: peers, TUN: tun, Conn: conn, Log: log, Tap: tap, CryptoWorkers: rf.workers,
		ServeRelay: node.Self.Relay, LocalAddrs: r.hostAddrs.addrs})
	if err != nil {
		return err
	}
	defer dev.Close()
	// The device's one tap is the fan-out's: reloads replace its -pcap
	// member, `peer capture` adds and removes live ones.
	fan := newTapFanout(dev.SetTap, tap)
	r.dev = fanoutDevice{liveDevice: dev, fan: fan}
	live := newLiveCaptures(fan, r.currentNode, peerEndpoint(dev), log)

	if routes {
		statePath, err := r.prepareSysctls(ctx, rf.socket)
		if err != nil {
			return err
		}
		defer func() {
			// The routes vanish with the device on Linux; remove them
			// explicitly anyway so nothing is left whatever the OS does.
			// Those of the last reload, not of the start; the rules,
			// nftables table and sysctls only go this way. Deferred
			// before they are installed, so that a failure halfway
			// leaves nothing behind either.
			tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := withoutGoneDevice(sys.runTolerant(tctx, r.currentPlan().NetworkDown())); err != nil {
				log.Warn("taking down routes and policy", "err", err)
			}
			if statePath != "" {
				// Left behind, it makes the next start take down and restore again.
				if err := os.Remove(statePath); err != nil && !errors.Is(err, os.ErrNotExist) {
					log.Warn("removing the sysctl state file", "err", err)
				}
			}
		}()
		// NetworkUp: the mesh routes, then PolicyUp (sysctls, the
		// nftables table, the exit's table and rules, in that order).
		if err := sys.run(ctx, r.currentPlan().NetworkUp()); err != nil {
			return fmt.Errorf("installing routes: %w", err)
		}
	}

	src, err := rf.source()
	if err != nil {
		return err
	}
	r.outcomes.start(time.Now())
	stopMetrics, err := startMetrics(node.Mesh.Metrics, dev.Status,
		func(s *metrics.Snapshot) { nodeMetrics(s, &r.outcomes, src.state()) }, captureDropped(capDrops, live), log)
	if err != nil {
		return err
	}
	defer stopMetrics()

	// The mesh the node starts with is applied: an etcd source caches it.
	src.applied(log)
	r.applied = func() { src.applied(log) }
	changed, changedBy, err := src.watch(ctx, log)
	if err != nil {
		return err
	}

	stopProxies, proxies, err := startProxies(ctx, rf, stack, r.currentNode, log)
	if err != nil {
		return err
	}
	defer stopProxies()

	sock := rf.socket
	ctl, err := control.ListenStreams(sock, control.Handlers{
		control.RequestStatus: func() any {
			ns := nodeStatusOf(dev.Status(), r.currentNode())
			ns.Proxies = proxies
			st := src.state()
			ns.Mesh = &st
			ns.LastReload, _, _ = r.outcomes.snapshot()
			return ns
		},
		control.RequestReload: func() any { return r.reloadLogged(ctx, "peer reload") },
	}, control.Streams{
		control.RequestCapture: live.handle,
	})
	switch {
	case err == nil:
		defer ctl.Close()
	case rf.socketOptional:
		// An unprivileged node with no $XDG_RUNTIME_DIR: it still runs.
		log.Warn("running without a control socket: peer status, reload and capture will not reach this node (-socket PATH to choose one)", "err", err)
		sock = ""
	default:
		return err
	}
	wgSock := rf.wgSocket
	if wgSock != "" {
		stopWG, err := serveWG(wgSock, dev.Status, r.currentNode, log)
		switch {
		case err == nil:
			defer stopWG()
		case rf.wgOptional:
			log.Warn("running without a wg socket: wg(8) will not see this node (-wg-socket PATH or none to choose)", "err", err)
			wgSock = ""
		default:
			return err
		}
	}

	// The TUN is up with its addresses, the routes are in and the control
	// socket answers: systemd may start what depends on the tunnel.
	sys.notifyState(log, "READY=1", fmt.Sprintf("STATUS=running: %s on UDP port %d, %d peers", p.Iface, conn.LocalPort(), len(peers)))
	go r.serve(ctx, sys.hangup, changed, changedBy)
	log.Info("peer up", "node", node.Self.Name, "iface", p.Iface, "driver", tun.Driver(),
		"port", conn.LocalPort(), "peers", len(peers), "socket", sock, "wg_socket", wgSock, "watch", changedBy,
		"metrics", node.Mesh.Metrics, "exit", exitName(node), "serves_exit", node.Self.Exit, "serves_relay", node.Self.Relay, "relays", relayNames(node), "proxies", proxies)
	err = dev.Run(ctx)
	sys.notifyState(log, "STOPPING=1", "STATUS=stopping")
	// No reload after this one: an unfinished one completes first.
	r.close()
	log.Info("peer down", "node", node.Self.Name)
	return err
}

// logHandler is the handler of -log-format: stderr goes to the journal
// under systemd, and json suits a log shipper. format is "text" or "json".
func logHandler(format string, w io.Writer, level slog.Leveler) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// withoutGoneDevice drops from err (a RunTolerant result) the failures of
// commands that found the interface gone: the device closes before the
// teardown runs, and its routes went with it, which is what was asked.
func withoutGoneDevice(err error) error {
	if err == nil {
		return nil
	}
	errs := []error{err}
	if many, ok := err.(interface{ Unwrap() []error }); ok {
		errs = many.Unwrap()
	}
	var keep []error
	for _, e := range errs {
		var ce *netconf.CommandError
		if errors.As(e, &ce) && strings.Contains(ce.Stderr, "Cannot find device") {
			continue
		}
		keep = append(keep, e)
	}
	return errors.Join(keep...)
}
