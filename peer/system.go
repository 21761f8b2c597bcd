package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"

	"github.com/peer-vpn/peer/netconf"
	"github.com/peer-vpn/peer/tundev"
	"github.com/peer-vpn/peer/tunnel"
	"github.com/peer-vpn/peer/udp"
)

// system is how a running node reaches the operating system: the TUN
// device, the UDP socket, the commands that configure addresses and routes,
// and the signal asking for a reload; and how it builds its tunnel. runNode
// is given the real one (hostSystem); tests give it an in-memory device, a
// udptest.Network socket and a recorder of commands, so the whole node runs
// without root (and, to test the command side alone, a fake tunnel).
type system struct {
	// goos selects the command syntax (netconf.Linux, netconf.Darwin).
	goos string
	// openTUN creates the TUN device (tundev.Open).
	openTUN func(name, driver string, mtu int) (tundev.Device, error)
	// openNetstack creates the device of driver netstack
	// (tundev.OpenNetstack, also when nil: it touches nothing on the host).
	openNetstack func(addrs []netip.Addr, mtu int) (*tundev.Netstack, error)
	// listenUDP opens the socket on port (udp.Listen).
	listenUDP func(port int) (udp.Conn, error)
	// run executes commands, stopping at the first failure (netconf.Run).
	run func(ctx context.Context, cmds [][]string) error
	// runTolerant executes every command, for teardown (netconf.RunTolerant).
	runTolerant func(ctx context.Context, cmds [][]string) error
	// hangup delivers SIGHUP; nil means no signal reloads the node.
	hangup <-chan os.Signal
	// newDevice builds the tunnel (tunnel.New).
	newDevice func(cfg tunnel.Config) (device, error)
	// readSysctl reads a kernel setting (procSysctl); nil: the node
	// cannot, and restores none.
	readSysctl func(key string) (string, error)
	// notify tells the service manager of the node's state (sdNotify);
	// nil: nobody listens.
	notify func(state ...string) error
}

// device is the running tunnel as runNode uses it; *tunnel.Device is the
// real one.
type device interface {
	liveDevice
	// Run forwards until ctx ends or Close.
	Run(ctx context.Context) error
	// Status is the answer to `peer status`.
	Status() tunnel.Status
	// Close stops forwarding.
	Close()
}

var _ device = (*tunnel.Device)(nil)

// newTunnel is tunnel.New, returning a nil interface on error (not a nil
// *tunnel.Device inside a non-nil one).
func newTunnel(cfg tunnel.Config) (device, error) {
	d, err := tunnel.New(cfg)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// hostSystem is the real operating system, without the signal (cmdRun
// subscribes to SIGHUP itself).
func hostSystem() system {
	return system{
		goos:         runtime.GOOS,
		openTUN:      tundev.Open,
		openNetstack: tundev.OpenNetstack,
		listenUDP:    udp.Listen,
		run:          netconf.Run,
		runTolerant:  netconf.RunTolerant,
		newDevice:    newTunnel,
		readSysctl:   procSysctl,
		notify:       sdNotify,
	}
}

// markSocket sets (on) or clears the firewall mark of the node's UDP socket
// on Linux, where policy routing keeps marked traffic out of the tunnel;
// elsewhere host routes do that and it does nothing.
func markSocket(conn udp.Conn, goos string, on bool) error {
	if goos != netconf.Linux {
		return nil
	}
	m, ok := conn.(udp.Marker)
	if !ok {
		return fmt.Errorf("the UDP socket %T cannot carry a firewall mark", conn)
	}
	var mark uint32
	if on {
		mark = netconf.DefaultFwmark
	}
	return m.SetMark(mark)
}
