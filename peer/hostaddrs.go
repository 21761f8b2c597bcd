package main

import (
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/peer-vpn/peer/config"
)

// hostAddrs is the tunnel's Config.LocalAddrs: this host's own addresses
// with the node's UDP port, which the tunnel offers to peers behind the
// same NAT as candidates for a direct path over their LAN. The socket is
// the host's whatever the driver, so a netstack node offers the host's
// addresses too. None inside the mesh's own prefixes is offered: a peer
// routes those into the tunnel, so a "direct" path there would run the
// tunnel through itself.
type hostAddrs struct {
	port uint16
	// exclude is the mesh's prefixes (see meshPrefixes); a reload swaps
	// it. Atomic, not the reloader's lock: the tunnel calls addrs on a
	// goroutine of its own, possibly while a reload holds that lock and
	// waits for the tunnel.
	exclude atomic.Pointer[[]netip.Prefix]
	// interfaceAddrs lists the host's addresses (net.InterfaceAddrs).
	interfaceAddrs func() ([]net.Addr, error)
	log            *slog.Logger
}

// newHostAddrs returns the LocalAddrs of a node listening on port with
// node's view of the mesh.
func newHostAddrs(node *config.Node, port uint16, log *slog.Logger) *hostAddrs {
	h := &hostAddrs{port: port, interfaceAddrs: net.InterfaceAddrs, log: log}
	h.setMesh(node)
	return h
}

// setMesh takes the prefixes of a new view of the mesh (a reload).
func (h *hostAddrs) setMesh(node *config.Node) {
	ps := meshPrefixes(node.Mesh)
	h.exclude.Store(&ps)
}

// addrs is the LocalAddrs function: the host's addresses now.
func (h *hostAddrs) addrs() []netip.AddrPort {
	ifAddrs, err := h.interfaceAddrs()
	if err != nil {
		// Next time, maybe; meanwhile the peers keep the paths they have.
		h.log.Debug("listing the host's addresses for peers behind the same NAT", "err", err)
		return nil
	}
	var as []netip.Addr
	for _, a := range ifAddrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				as = append(as, ip)
			}
		}
	}
	return localCandidates(as, *h.exclude.Load(), h.port)
}

// meshPrefixes are the prefixes of the mesh's tunnel: the network of every
// peer's addresses (this node's included) and every subnet. A default
// route is never among them (Parse allows none; an exit's is not a
// prefix of the mesh file).
func meshPrefixes(m *config.Mesh) []netip.Prefix {
	var out []netip.Prefix
	for i := range m.Peers {
		p := &m.Peers[i]
		for _, a := range p.Addresses {
			out = append(out, a.Masked())
		}
		out = append(out, p.Subnets...)
	}
	return slices.DeleteFunc(out, func(p netip.Prefix) bool { return p.Bits() == 0 })
}

// localCandidates is addrs as the tunnel offers them, each with port:
// global unicast and private addresses of both families, not loopback,
// link-local, multicast or unspecified, and none inside exclude; sorted,
// without duplicates.
func localCandidates(addrs []netip.Addr, exclude []netip.Prefix, port uint16) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range addrs {
		a = a.Unmap()
		if !a.IsValid() || a.Zone() != "" || !a.IsGlobalUnicast() {
			// IsGlobalUnicast is false for loopback, link-local,
			// multicast, unspecified and the IPv4 broadcast address, and
			// true for the private ranges (RFC 1918, RFC 4193).
			continue
		}
		if slices.ContainsFunc(exclude, func(p netip.Prefix) bool { return p.Contains(a) }) {
			continue
		}
		out = append(out, netip.AddrPortFrom(a, port))
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return slices.Compact(out)
}
