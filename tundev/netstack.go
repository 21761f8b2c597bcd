package tundev

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"golang.zx2c4.com/wireguard/tun/netstack"
)

// Netstack is the device of driver "netstack": its packets go to and come
// from a TCP/IP stack inside the process (gVisor's, through wireguard-go's
// tun/netstack) instead of the kernel. Opening it needs no privilege and
// touches nothing on the host: no device, no address, no route. The node's
// tunnel addresses live in that stack, which answers pings to them itself;
// Net dials and listens there.
type Netstack struct {
	dev   tun.Device
	net   *netstack.Net
	mtu   int
	addrs []netip.Addr

	readMu    sync.Mutex
	writeMu   sync.Mutex
	closed    atomic.Bool
	closeOnce sync.Once
}

var _ Device = (*Netstack)(nil)

// OpenNetstack creates a stack holding addrs, with a default route of each
// of their families into the device, whose packets are at most mtu bytes.
func OpenNetstack(addrs []netip.Addr, mtu int) (*Netstack, error) {
	// The stack takes whatever the kernel would refuse; keep the one range
	// every driver has, so that a mesh file means the same on each.
	if err := CheckMTU(mtu, hasIPv6(addrs)); err != nil {
		return nil, fmt.Errorf("tundev: open netstack: MTU %w", err)
	}
	if len(addrs) == 0 {
		return nil, errors.New("tundev: open netstack: no address: the stack would have nothing to answer to")
	}
	dev, tnet, err := netstack.CreateNetTUN(addrs, nil, mtu)
	if err != nil {
		return nil, fmt.Errorf("tundev: open netstack with %v: %w", addrs, err)
	}
	return &Netstack{dev: dev, net: tnet, mtu: mtu, addrs: addrs}, nil
}

// hasIPv6 reports whether any of addrs is IPv6.
func hasIPv6(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if a.Is6() && !a.Is4In6() {
			return true
		}
	}
	return false
}

// Net is the stack, for dialing and listening on the tunnel addresses.
func (n *Netstack) Net() *netstack.Net { return n.net }

// Addrs are the addresses the stack holds.
func (n *Netstack) Addrs() []netip.Addr { return n.addrs }

// Read reads one packet (the stack hands them out one at a time) into
// bufs[0][offset:].
func (n *Netstack) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	if err := checkBatch(len(bufs), len(sizes), offset); err != nil {
		return 0, err
	}
	if len(bufs) == 0 {
		return 0, nil
	}
	if err := checkOffset(bufs[0], offset); err != nil {
		return 0, err
	}
	n.readMu.Lock()
	defer n.readMu.Unlock()
	if n.closed.Load() {
		return 0, os.ErrClosed
	}
	count, err := n.dev.Read(bufs[:1], sizes, offset)
	if err != nil {
		if n.closed.Load() {
			return 0, os.ErrClosed
		}
		// A packet longer than the buffer: the stack said how long it
		// was, not what it was; it is lost, the next one is not.
		return 0, fmt.Errorf("tundev: netstack read: %w", err)
	}
	return count, nil
}

// Write hands bufs[i][offset:] to the stack; it copies them.
func (n *Netstack) Write(bufs [][]byte, offset int) (int, error) {
	if offset < 0 {
		return 0, fmt.Errorf("tundev: negative offset %d", offset)
	}
	for _, b := range bufs {
		if err := checkOffset(b, offset); err != nil {
			return 0, err
		}
	}
	n.writeMu.Lock()
	defer n.writeMu.Unlock()
	if n.closed.Load() {
		return 0, os.ErrClosed
	}
	count, err := n.dev.Write(bufs, offset)
	if err != nil {
		return count, fmt.Errorf("tundev: netstack write: %w", err)
	}
	return count, nil
}

// BatchSize is 1: the stack hands out one packet per Read.
func (n *Netstack) BatchSize() int { return 1 }

// MTU is the MTU the stack was opened with; it does not change.
func (n *Netstack) MTU() int { return n.mtu }

// Name is "netstack": there is no interface on the host.
func (n *Netstack) Name() string { return DriverNetstack }

// Driver is "netstack".
func (n *Netstack) Driver() string { return DriverNetstack }

// Close stops the stack and unblocks a pending Read. Every connection made
// through Net ends with it.
func (n *Netstack) Close() error {
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		// The stack hands each outgoing packet to a channel that only
		// Read empties; a sender blocked on it when the channel closes
		// would panic. Keep reading (and dropping) until it is closed.
		done := make(chan struct{})
		go func() {
			defer close(done)
			buf := [][]byte{make([]byte, n.mtu)}
			sizes := []int{0}
			for {
				if _, err := n.dev.Read(buf, sizes, 0); errors.Is(err, os.ErrClosed) {
					return
				}
			}
		}()
		n.dev.Close()
		<-done
	})
	return nil
}

// pingInterval is how often Ping repeats its echo request. The stack's
// ping socket waits for a reply before it reads, and the stack wakes a
// waiter only when a socket's queue goes from empty to not: a reply that
// arrives before the wait starts is never seen, nor any after it. So each
// attempt gets a fresh socket whose reader is given pingSettle to start
// waiting before the request goes out.
const (
	pingInterval = 200 * time.Millisecond
	pingSettle   = 10 * time.Millisecond
)

// Ping sends ICMP echo requests from the stack to addr until one is
// answered or timeout passes.
func (n *Netstack) Ping(addr netip.Addr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	echo := []byte{8, 0, 0, 0, 0, 1, 0, 0, 'p', 'e', 'e', 'r'}
	if addr.Is6() {
		echo[0] = 128
	}
	var last error
	for seq := 1; time.Now().Before(deadline); seq++ {
		echo[7] = byte(seq)
		if last = n.pingOnce(addr, echo, min(pingInterval, time.Until(deadline))); last == nil {
			return nil
		}
	}
	return fmt.Errorf("ping %v: no answer in %v: %w", addr, timeout, last)
}

// pingOnce sends one echo request on a new socket and waits up to wait for
// its answer.
func (n *Netstack) pingOnce(addr netip.Addr, echo []byte, wait time.Duration) error {
	pc, err := n.net.DialPingAddr(netip.Addr{}, addr)
	if err != nil {
		return err
	}
	defer pc.Close()
	if err := pc.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	answered := make(chan error, 1)
	go func() {
		_, err := pc.Read(make([]byte, 1500))
		answered <- err
	}()
	time.Sleep(pingSettle)
	if _, err := pc.Write(echo); err != nil {
		return err
	}
	return <-answered
}
