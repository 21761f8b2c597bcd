package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Network is where the proxies open connections into the mesh: the node's
// netstack, or the host's own stack (HostNetwork).
type Network interface {
	// DialContext connects over "tcp" or "udp" to address, an IP:port
	// literal (never a name).
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
	// ListenUDP opens an unconnected UDP socket that can send to and
	// receive from any address; laddr may be the zero AddrPort (any
	// address, any port).
	ListenUDP(laddr netip.AddrPort) (net.PacketConn, error)
}

// HostNetwork is the Network of the host's own stack: the node in kernel
// TUN mode, where tunnel addresses are routed by the kernel, and tests.
type HostNetwork struct{}

// DialContext dials with a plain net.Dialer.
func (HostNetwork) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

// ListenUDP opens a host UDP socket; with a zero laddr it is dual-stack.
func (HostNetwork) ListenUDP(laddr netip.AddrPort) (net.PacketConn, error) {
	var ua *net.UDPAddr
	if laddr.IsValid() {
		ua = net.UDPAddrFromAddrPort(laddr)
	}
	return net.ListenUDP("udp", ua)
}

// DialFunc opens the far side of a relayed connection: the fixed target of
// a forward or an expose.
type DialFunc func(ctx context.Context) (net.Conn, error)

// Dialer resolves names and dials through a Network.
type Dialer struct {
	// Net carries the connections.
	Net Network
	// Resolve turns a host (a peer name, another name) into addresses;
	// the node supplies it (peer names to tunnel addresses, else the host
	// resolver). IP literals never reach it.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
}

// resolveError is a failure to turn a name into addresses, kept apart from
// dial errors so that SOCKS5 can answer "host unreachable".
type resolveError struct {
	host string
	err  error
}

func (e *resolveError) Error() string { return fmt.Sprintf("resolving %q: %v", e.host, e.err) }
func (e *resolveError) Unwrap() error { return e.err }

// errNoAddress is a resolver's empty answer.
var errNoAddress = errors.New("no address")

// Lookup returns the addresses of host: itself if it is an IP literal, else
// what Resolve says.
func (d *Dialer) Lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	if d.Resolve == nil {
		return nil, &resolveError{host, errors.New("no resolver")}
	}
	addrs, err := d.Resolve(ctx, host)
	if err != nil {
		return nil, &resolveError{host, err}
	}
	if len(addrs) == 0 {
		return nil, &resolveError{host, errNoAddress}
	}
	return addrs, nil
}

// Dial connects over network ("tcp" or "udp") to hostport, whose host is a
// name or an IP literal. It tries each address of the name in order, the
// whole within DialTimeout, and gives each attempt an equal share of the
// time left so that one silent address does not starve the next.
func (d *Dialer) Dial(ctx context.Context, network, hostport string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, fmt.Errorf("proxy: dialing %s %s: %w", network, hostport, err)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("proxy: dialing %s %s: bad port %q", network, hostport, portStr)
	}
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	addrs, err := d.Lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("proxy: dialing %s %s: %w", network, hostport, err)
	}
	var errs []error
	for i, a := range addrs {
		actx, acancel := ctx, context.CancelFunc(func() {})
		if deadline, ok := ctx.Deadline(); ok && i < len(addrs)-1 {
			share := time.Until(deadline) / time.Duration(len(addrs)-i)
			actx, acancel = context.WithTimeout(ctx, share)
		}
		target := netip.AddrPortFrom(a.Unmap(), uint16(port)).String()
		c, err := d.Net.DialContext(actx, network, target)
		acancel()
		if err == nil {
			return c, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", target, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("proxy: dialing %s %s: %w", network, hostport, errors.Join(errs...))
}

// To returns a DialFunc that dials hostport over network through d: the
// far side of a forward.
func (d *Dialer) To(network, hostport string) DialFunc {
	return func(ctx context.Context) (net.Conn, error) { return d.Dial(ctx, network, hostport) }
}

// HostDial returns a DialFunc that dials address (a name allowed) over
// network on the host, within DialTimeout: the far side of an expose.
func HostDial(network, address string) DialFunc {
	return func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: DialTimeout}
		c, err := d.DialContext(ctx, network, address)
		if err != nil {
			return nil, fmt.Errorf("proxy: dialing host %s %s: %w", network, address, err)
		}
		return c, nil
	}
}
