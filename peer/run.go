package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/control"
	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
	"github.com/peer-vpn/peer/tunnel"
	"github.com/peer-vpn/peer/udp"
)

// runFlags are the flags of the node itself.
type runFlags struct {
	nodeFlags
	socket   string
	noRoutes bool
	driver   string
	workers  int
	verbose  bool
	capture  captureFlags
}

func cmdRun(args []string, stderr io.Writer) error {
	fs := newFlagSet("peer", stderr)
	var rf runFlags
	rf.register(fs)
	fs.StringVar(&rf.socket, "socket", "", "control socket path (default /run/peer/<iface>.sock)")
	fs.BoolVar(&rf.noRoutes, "no-routes", false, "do not install routes (run the script of `peer routes` yourself)")
	fs.StringVar(&rf.driver, "driver", "", "TUN driver: auto, water or offload (default: interface.driver of the mesh file)")
	fs.BoolVar(&rf.verbose, "v", false, "verbose logs")
	fs.IntVar(&rf.workers, "crypto-workers", 0, "goroutines helping each direction with encryption and decryption (0: GOMAXPROCS-2, -1: none)")
	rf.capture.register(fs)
	fs.Usage = func() { usage(stderr) }
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch rf.driver {
	case "", "auto", "water", "offload":
	default:
		return usageError{fmt.Errorf("-driver %q: want auto, water or offload", rf.driver)}
	}
	node, err := rf.load()
	if err != nil {
		return err
	}
	if rf.driver != "" {
		node.Interface.Driver = rf.driver
	}
	if rf.socket == "" {
		rf.socket = control.SocketPath(node.Interface.Name)
	}
	// Before any device is touched: a -socket naming a file, or a directory
	// others can write, is a usage error.
	if err := control.CheckPath(rf.socket); err != nil {
		return usageError{err}
	}
	level := slog.LevelInfo
	if rf.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	capOpts := rf.capture.merge(node.Mesh.Capture)
	if err := capOpts.validate(); err != nil {
		return usageError{err}
	}
	stopProfile, err := startProfile()
	if err != nil {
		return err
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runNode(ctx, node, &rf, capOpts, log)
}

// runNode brings the node up, forwards until ctx ends, and takes down what
// it set up, in reverse order.
func runNode(ctx context.Context, node *config.Node, rf *runFlags, capOpts captureOptions, log *slog.Logger) error {
	iface := node.Interface
	tun, err := tundev.Open(iface.Name, iface.Driver, iface.MTU)
	if err != nil {
		return err
	}
	defer tun.Close()
	p := plan(node, runtime.GOOS)
	p.Iface = tun.Name()
	if err := netconf.Run(ctx, p.LinkUp()); err != nil {
		return fmt.Errorf("configuring %s: %w", p.Iface, err)
	}
	conn, err := udp.Listen(node.ListenPort)
	if err != nil {
		return fmt.Errorf("listening on UDP port %d: %w", node.ListenPort, err)
	}
	defer conn.Close()

	tap, closeTap, err := newTap(node, capOpts, log)
	if err != nil {
		return err
	}
	defer closeTap()

	peers := make([]tunnel.PeerConfig, 0, len(node.Remotes))
	for _, r := range node.Remotes {
		peers = append(peers, tunnel.PeerConfig{
			Name:      r.Peer.Name,
			PublicKey: r.Peer.PublicKey,
			Preshared: r.Preshared,
			Prefixes:  r.Prefixes,
			Endpoint:  r.Endpoint,
			Keepalive: r.Peer.Keepalive,
		})
	}
	dev, err := tunnel.New(tunnel.Config{Private: node.Private, Peers: peers, TUN: tun, Conn: conn, Log: log, Tap: tap, CryptoWorkers: rf.workers})
	if err != nil {
		return err
	}
	defer dev.Close()

	if !rf.noRoutes {
		if err := netconf.Run(ctx, p.RoutesUp()); err != nil {
			return fmt.Errorf("installing routes: %w", err)
		}
		defer func() {
			// The routes vanish with the device on Linux; remove them
			// explicitly anyway so nothing is left whatever the OS does.
			tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			netconf.RunTolerant(tctx, p.RoutesDown())
		}()
	}

	sock := rf.socket
	ctl, err := control.Listen(sock, control.Handlers{control.RequestStatus: func() any { return dev.Status() }})
	if err != nil {
		return err
	}
	defer ctl.Close()

	log.Info("peer up", "node", node.Self.Name, "iface", p.Iface, "driver", tun.Driver(),
		"port", conn.LocalPort(), "peers", len(peers), "socket", sock)
	err = dev.Run(ctx)
	log.Info("peer down", "node", node.Self.Name)
	return err
}
