package main

import (
	"hash/maphash"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Sizes of the local-address cache of the capture tap.
const (
	// localAddrSlots is the number of remotes whose local address is
	// remembered: a mesh has few endpoints, and a flood of forged sources
	// only evicts entries, it cannot grow the table.
	localAddrSlots = 256
	// localAddrQueue is the number of route lookups that may wait for the
	// resolver; more are not asked for (a later datagram asks again).
	localAddrQueue = 16
	// localAddrTTL is how long an answer is used before it is asked for
	// again (in the background, the old answer serving meanwhile), so that
	// a change of the host's addresses shows within a minute.
	localAddrTTL = time.Minute
)

// localAddrs tells the capture which local address the kernel uses toward
// a remote: the device knows only its port. The answer comes from a route
// lookup (resolve), a system call far too slow for the forwarding path and
// which a remote address chosen by anyone would make it run. So lookup only
// reads a fixed-size table, direct-mapped by a seeded hash of the remote
// and evicting on collision; a miss queues the remote (bounded, never
// blocking) for one background goroutine and returns the unspecified
// address until the answer is in.
type localAddrs struct {
	resolve func(remote netip.AddrPort) netip.Addr
	seed    maphash.Seed
	req     chan netip.AddrPort
	stop    chan struct{}
	done    chan struct{}

	mu    sync.Mutex
	slots [localAddrSlots]localAddrSlot
}

type localAddrSlot struct {
	remote   netip.AddrPort
	local    netip.Addr // valid once answered
	answered time.Time  // zero while the lookup is pending
	used     bool
	pinned   bool // primed: a mesh endpoint, never evicted
}

// newLocalAddrs returns a cache over resolve; start runs its resolver.
func newLocalAddrs(resolve func(netip.AddrPort) netip.Addr) *localAddrs {
	return &localAddrs{
		resolve: resolve,
		seed:    maphash.MakeSeed(),
		req:     make(chan netip.AddrPort, localAddrQueue),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// prime resolves remote now, on the calling goroutine, and stores the
// answer for good (other remotes do not evict it). It is for the endpoints
// of the mesh file, at start-up: their datagrams then carry the right local
// address from the first one on, floods or not.
// That matters beyond looks: Wireshark ties a handshake response and the
// transport messages to the initiation by their addresses too, so a flow
// whose local address changes from unspecified to real in mid-handshake
// does not decrypt. Remotes first seen while running (a peer without an
// endpoint in the mesh file, a roaming one) take that risk on their first
// handshake of the capture.
func (l *localAddrs) prime(remote netip.AddrPort) {
	a := l.resolve(remote)
	l.mu.Lock()
	l.slots[l.index(remote)] = localAddrSlot{remote: remote, local: a, answered: time.Now(), used: true, pinned: true}
	l.mu.Unlock()
}

// start runs the resolver goroutine until close.
func (l *localAddrs) start() {
	go func() {
		defer close(l.done)
		for {
			select {
			case r := <-l.req:
				a := l.resolve(r)
				l.mu.Lock()
				if s := &l.slots[l.index(r)]; s.used && s.remote == r {
					s.local, s.answered = a, time.Now()
				}
				l.mu.Unlock()
			case <-l.stop:
				return
			}
		}
	}()
}

// close stops the resolver goroutine started by start.
func (l *localAddrs) close() {
	close(l.stop)
	<-l.done
}

func (l *localAddrs) index(r netip.AddrPort) int {
	var b [18]byte
	a := r.Addr().As16()
	copy(b[:], a[:])
	b[16], b[17] = byte(r.Port()>>8), byte(r.Port())
	return int(maphash.Bytes(l.seed, b[:]) % localAddrSlots)
}

// lookup returns the local address toward remote if it is known, else the
// unspecified address of remote's family. It never blocks, allocates or
// makes a system call.
func (l *localAddrs) lookup(now time.Time, remote netip.AddrPort) netip.Addr {
	unspecified := netip.IPv4Unspecified()
	if remote.Addr().Is6() && !remote.Addr().Is4In6() {
		unspecified = netip.IPv6Unspecified()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s := &l.slots[l.index(remote)]
	if s.used && s.remote == remote {
		if s.answered.IsZero() {
			return unspecified // asked already
		}
		if now.Sub(s.answered) > localAddrTTL {
			l.ask(s, remote) // keeps the old answer until the new one
		}
		return s.local
	}
	if s.pinned {
		return unspecified // a mesh endpoint keeps its slot
	}
	old := *s
	*s = localAddrSlot{remote: remote, used: true}
	if !l.ask(s, remote) {
		*s = old // the queue is full: keep what was there
	}
	return unspecified
}

// ask queues remote for the resolver, without blocking; s is its slot.
func (l *localAddrs) ask(s *localAddrSlot, remote netip.AddrPort) bool {
	select {
	case l.req <- remote:
		if !s.answered.IsZero() {
			s.answered = time.Now() // do not ask again until the answer
		}
		return true
	default:
		return false
	}
}

// routeLocalAddr finds the source address the kernel uses toward remote
// with a connected UDP socket (connecting sends nothing); the unspecified
// address if there is no route.
func routeLocalAddr(remote netip.AddrPort) netip.Addr {
	a := netip.IPv4Unspecified()
	if remote.Addr().Is6() && !remote.Addr().Is4In6() {
		a = netip.IPv6Unspecified()
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(remote))
	if err != nil {
		return a
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap()
}
