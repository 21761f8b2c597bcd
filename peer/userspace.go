package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/proxy"
	"github.com/peer-vpn/peer/tundev"
)

// This file is the node's userspace side: the device of driver netstack
// and the proxies and forwards that reach the mesh from the host (-socks5,
// -http-proxy, -forward) and the host from the mesh (-expose).

// proxyFlags are the flags of the proxies, checked as they are parsed.
type proxyFlags struct {
	socks5, httpProxy string
	forwardSpecs      listFlag
	exposeSpecs       listFlag

	socks5Addr, httpAddr netip.AddrPort
	forwards             []proxy.Forward
	exposes              []proxy.Expose
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, " ") }

func (l *listFlag) Set(s string) error {
	*l = append(*l, s)
	return nil
}

func (pf *proxyFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.socks5, "socks5", "", "serve SOCKS5 (CONNECT, UDP ASSOCIATE) into the mesh on `ADDR`; PORT or :PORT listen on\n127.0.0.1 only; peer names resolve to their tunnel addresses")
	fs.StringVar(&pf.httpProxy, "http-proxy", "", "serve an HTTP proxy (CONNECT, and http:// URLs) into the mesh on `ADDR`, as -socks5")
	fs.Var(&pf.forwardSpecs, "forward", "listen on the host and forward into the mesh; `SPEC` is tcp|udp:LOCALADDR=MESHADDR\n(repeatable; LOCALADDR without a host is on 127.0.0.1; MESHADDR may name a peer)")
	fs.Var(&pf.exposeSpecs, "expose", "with driver netstack: accept on the tunnel addresses and forward to the host; `SPEC` is\ntcp|udp:MESHPORT=LOCALADDR (repeatable)")
}

// check parses the values of the flags: a malformed one is a usage error.
func (pf *proxyFlags) check() error {
	var err error
	if pf.socks5 != "" {
		if pf.socks5Addr, err = proxy.ParseListen(pf.socks5); err != nil {
			return usageError{fmt.Errorf("-socks5: %w", err)}
		}
	}
	if pf.httpProxy != "" {
		if pf.httpAddr, err = proxy.ParseListen(pf.httpProxy); err != nil {
			return usageError{fmt.Errorf("-http-proxy: %w", err)}
		}
	}
	for _, s := range pf.forwardSpecs {
		f, err := proxy.ParseForward(s)
		if err != nil {
			return usageError{fmt.Errorf("-forward %s: %w", s, err)}
		}
		pf.forwards = append(pf.forwards, f)
	}
	for _, s := range pf.exposeSpecs {
		e, err := proxy.ParseExpose(s)
		if err != nil {
			return usageError{fmt.Errorf("-expose %s: %w", s, err)}
		}
		pf.exposes = append(pf.exposes, e)
	}
	return nil
}

// checkProxies checks the proxy flags against the node: -expose needs the
// netstack (a kernel node's services are at its tunnel address already).
func (rf *runFlags) checkProxies(node *config.Node) error {
	if len(rf.proxies.exposes) > 0 && node.Interface.Driver != tundev.DriverNetstack {
		return usageError{fmt.Errorf("-expose needs driver netstack (this node's driver is %s, whose services are reachable at its tunnel address already)", node.Interface.Driver)}
	}
	return nil
}

// checkNetstack refuses what a netstack node cannot do: its stack answers
// its own addresses and forwards nothing, so it can neither route subnets
// nor serve as an exit.
func checkNetstack(node *config.Node) error {
	if node.Interface.Driver != tundev.DriverNetstack {
		return nil
	}
	var errs config.ErrorList
	if len(node.Self.Subnets) > 0 {
		errs = append(errs, &config.Error{File: node.Mesh.File, Line: node.Self.Line,
			Msg: fmt.Sprintf("peer %q: driver netstack cannot route subnets: its stack answers only its own addresses (use a kernel driver)", node.Self.Name)})
	}
	if node.Self.Exit {
		errs = append(errs, &config.Error{File: node.Mesh.File, Line: node.Self.Line,
			Msg: fmt.Sprintf("peer %q: driver netstack cannot serve as an exit: it forwards nothing to the outside (use a kernel driver)", node.Self.Name)})
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

// openDevice opens the node's device: a TUN, or with driver netstack the
// stack (then returned twice, as the device and as itself).
func openDevice(sys system, node *config.Node) (tundev.Device, *tundev.Netstack, error) {
	iface := node.Interface
	if iface.Driver != tundev.DriverNetstack {
		tun, err := sys.openTUN(iface.Name, iface.Driver, iface.MTU)
		return tun, nil, err
	}
	open := sys.openNetstack
	if open == nil {
		open = tundev.OpenNetstack
	}
	var addrs []netip.Addr
	for _, p := range node.Self.Addresses {
		addrs = append(addrs, p.Addr())
	}
	stack, err := open(addrs, iface.MTU)
	if err != nil {
		return nil, nil, err
	}
	return stack, stack, nil
}

// meshResolver resolves the names of the mesh's peers to their tunnel
// addresses, as the mesh is now (reloads change it), IPv4 first; IP
// literals stand for themselves and other names go to the host's resolver.
func meshResolver(current func() *config.Node) func(ctx context.Context, host string) ([]netip.Addr, error) {
	return func(ctx context.Context, host string) ([]netip.Addr, error) {
		if a, err := netip.ParseAddr(host); err == nil {
			return []netip.Addr{a.Unmap()}, nil
		}
		name := strings.TrimSuffix(host, ".")
		peers := current().Mesh.Peers
		// Names, as in DNS, are not case-sensitive.
		if i := slices.IndexFunc(peers, func(p config.Peer) bool { return strings.EqualFold(p.Name, name) }); i >= 0 {
			p := &peers[i]
			var v4, v6 []netip.Addr
			for _, pfx := range p.Addresses {
				if pfx.Addr().Is4() {
					v4 = append(v4, pfx.Addr())
				} else {
					v6 = append(v6, pfx.Addr())
				}
			}
			if len(v4)+len(v6) == 0 {
				return nil, fmt.Errorf("peer %s has no tunnel address", name)
			}
			return append(v4, v6...), nil
		}
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("%s is no peer of the mesh, and the host cannot resolve it: %w", host, err)
		}
		for i := range addrs {
			addrs[i] = addrs[i].Unmap()
		}
		return addrs, nil
	}
}

// netstackNetwork is proxy.Network in the node's stack.
type netstackNetwork struct{ stack *tundev.Netstack }

func (n netstackNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return n.stack.Net().DialContext(ctx, network, address)
}

func (n netstackNetwork) ListenUDP(laddr netip.AddrPort) (net.PacketConn, error) {
	return n.stack.ListenUDP(laddr)
}

// startProxies starts the proxies, forwards and exposes of the flags. It
// returns what stops them all and a description of each for the log and
// the status (nil when there are none). A listen that fails fails the
// start.
func startProxies(ctx context.Context, rf *runFlags, stack *tundev.Netstack, current func() *config.Node, log *slog.Logger) (stop func(), running []string, err error) {
	pf := &rf.proxies
	var network proxy.Network = proxy.HostNetwork{}
	if stack != nil {
		network = netstackNetwork{stack}
	}
	d := &proxy.Dialer{Net: network, Resolve: meshResolver(current)}
	// Every server ends with ctx, cancelled before the listeners close:
	// gonet's, once closed, say "operation canceled", not net.ErrClosed,
	// and only an error while ctx lives is worth a log line.
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var closers []io.Closer
	stop = func() {
		cancel()
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	}
	serve := func(what string, c io.Closer, f func() error) {
		closers = append(closers, c)
		running = append(running, what)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				log.Error("stopped serving", "what", what, "err", err)
			}
		}()
	}
	fail := func(err error) (func(), []string, error) {
		stop()
		return nil, nil, err
	}
	if pf.socks5Addr.IsValid() {
		l, err := net.Listen("tcp", pf.socks5Addr.String())
		if err != nil {
			return fail(fmt.Errorf("-socks5: %w", err))
		}
		s := &proxy.SOCKS5Server{Dialer: d, Log: log}
		serve("socks5 "+l.Addr().String(), l, func() error { return s.Serve(ctx, l) })
	}
	if pf.httpAddr.IsValid() {
		l, err := net.Listen("tcp", pf.httpAddr.String())
		if err != nil {
			return fail(fmt.Errorf("-http-proxy: %w", err))
		}
		p := &proxy.HTTPProxy{Dialer: d, Log: log}
		serve("http-proxy "+l.Addr().String(), l, func() error { return p.Serve(ctx, l) })
	}
	for _, f := range pf.forwards {
		what := "forward " + f.String()
		dial := d.To(f.Net, f.Target.String())
		switch f.Net {
		case "tcp":
			l, err := net.Listen("tcp", f.Local.String())
			if err != nil {
				return fail(fmt.Errorf("-forward %s: %w", f, err))
			}
			r := &proxy.TCPRelay{Dial: dial, Log: log}
			serve(what, l, func() error { return r.Serve(ctx, l) })
		case "udp":
			pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(f.Local))
			if err != nil {
				return fail(fmt.Errorf("-forward %s: %w", f, err))
			}
			r := &proxy.UDPRelay{Dial: dial, Log: log}
			serve(what, pc, func() error { return r.Serve(ctx, pc) })
		}
	}
	for _, e := range pf.exposes {
		dial := proxy.HostDial(e.Net, e.Local.String())
		// On each tunnel address: the stack binds no wildcard address.
		for _, a := range stack.Addrs() {
			at := netip.AddrPortFrom(a, e.Port)
			what := fmt.Sprintf("expose %s:%s=%s", e.Net, at, e.Local)
			switch e.Net {
			case "tcp":
				l, err := stack.Net().ListenTCPAddrPort(at)
				if err != nil {
					return fail(fmt.Errorf("-expose %s: listening on %v in the netstack: %w", e, at, err))
				}
				r := &proxy.TCPRelay{Dial: dial, Log: log}
				serve(what, l, func() error { return r.Serve(ctx, l) })
			case "udp":
				pc, err := stack.Net().ListenUDPAddrPort(at)
				if err != nil {
					return fail(fmt.Errorf("-expose %s: listening on %v in the netstack: %w", e, at, err))
				}
				r := &proxy.UDPRelay{Dial: dial, Log: log}
				serve(what, pc, func() error { return r.Serve(ctx, pc) })
			}
		}
	}
	return stop, running, nil
}
