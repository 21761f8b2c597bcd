package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// maxUDPHeader is the longest SOCKS5 UDP header: RSV FRAG ATYP, an IPv6
// address and a port. Replies are read this far into the buffer so that the
// header is written in front without a copy.
const maxUDPHeader = 3 + 1 + 16 + 2

// associate serves UDP ASSOCIATE: it opens a relay socket on the host, on
// the IP the client reached us on, and a socket in the mesh, and relays
// between them until the control connection c closes. want is the address
// the client said it will send from; only its port is used (the IP is c's
// remote IP, which a client behind NAT cannot know), and a zero port
// accepts the client's first source port and then only that one.
func (s *SOCKS5Server) associate(ctx context.Context, c net.Conn, want socksAddr) error {
	local, _ := addrPortOfTCP(c.LocalAddr())
	remote, _ := addrPortOfTCP(c.RemoteAddr())
	relay, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(local.Addr(), 0)))
	if err != nil {
		c.Write(appendReply(nil, repGeneralFailure, netip.AddrPort{}))
		return fmt.Errorf("socks5: udp associate: opening relay socket on %v: %w", local.Addr(), err)
	}
	defer relay.Close()
	mesh, err := s.Dialer.Net.ListenUDP(netip.AddrPort{})
	if err != nil {
		c.Write(appendReply(nil, repGeneralFailure, netip.AddrPort{}))
		return fmt.Errorf("socks5: udp associate: opening mesh socket: %w", err)
	}
	defer mesh.Close()
	bnd, _ := addrPortOf(relay.LocalAddr())
	if _, err := c.Write(appendReply(nil, repSucceeded, bnd)); err != nil {
		return fmt.Errorf("socks5: writing reply: %w", err)
	}
	c.SetWriteDeadline(time.Time{})

	a := &association{
		dialer: s.Dialer,
		relay:  relay,
		mesh:   mesh,
		ip:     remote.Addr(),
		port:   want.Port,
		names:  make(map[string]netip.Addr),
	}
	// The association lives as long as the control connection: the client
	// sends nothing more on it, so a read returns only at its close.
	closeAll := func() { c.Close(); relay.Close(); mesh.Close() }
	stop := context.AfterFunc(ctx, closeAll)
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { io.Copy(io.Discard, c); closeAll() })
	wg.Go(func() { a.replies(); closeAll() })
	a.requests(ctx)
	closeAll()
	wg.Wait()
	return nil
}

// association is the state of one UDP ASSOCIATE.
type association struct {
	dialer      *Dialer
	relay, mesh net.PacketConn
	ip          netip.Addr // the client's IP: datagrams from others are dropped

	mu     sync.Mutex
	port   uint16 // the client's port once known, else 0
	client netip.AddrPort

	names map[string]netip.Addr // owned by requests
}

// clientAddr returns the client's address, once its port is known.
func (a *association) clientAddr() (netip.AddrPort, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return netip.AddrPortFrom(a.ip, a.port), a.port != 0
}

// accept reports whether a datagram from src is the client's, learning the
// client's port from its first datagram when the request named none.
func (a *association) accept(src netip.AddrPort) bool {
	if src.Addr() != a.ip {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.port == 0 {
		a.port = src.Port()
	}
	return src.Port() == a.port
}

// requests relays the client's datagrams into the mesh until the relay
// socket closes. Fragments (FRAG != 0) are dropped: reassembly is optional
// in RFC 1928 and no common client sends them.
func (a *association) requests(ctx context.Context) {
	buf := make([]byte, maxDatagram)
	for {
		n, from, err := a.relay.ReadFrom(buf)
		if err != nil {
			return
		}
		src, ok := addrPortOf(from)
		if !ok || !a.accept(src) {
			continue
		}
		frag, dst, payload, err := parseUDPHeader(buf[:n])
		if err != nil || frag != 0 {
			continue
		}
		ip, err := a.lookup(ctx, dst)
		if err != nil {
			continue
		}
		a.mesh.WriteTo(payload, net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, dst.Port)))
	}
}

// lookup returns the IP of a datagram's destination, remembering names.
func (a *association) lookup(ctx context.Context, dst socksAddr) (netip.Addr, error) {
	if dst.Name == "" {
		return dst.IP.Unmap(), nil
	}
	if ip, ok := a.names[dst.Name]; ok {
		return ip, nil
	}
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	addrs, err := a.dialer.Lookup(ctx, dst.Name)
	if err != nil {
		return netip.Addr{}, err
	}
	ip := addrs[0].Unmap()
	if len(a.names) < maxAssociationNames {
		a.names[dst.Name] = ip
	}
	return ip, nil
}

// replies relays datagrams from the mesh to the client, each behind a
// header naming its source, until the mesh socket closes.
func (a *association) replies() {
	buf := make([]byte, maxUDPHeader+maxDatagram)
	var hdr [maxUDPHeader]byte
	for {
		n, from, err := a.mesh.ReadFrom(buf[maxUDPHeader:])
		if err != nil {
			return
		}
		src, ok := addrPortOf(from)
		client, known := a.clientAddr()
		if !ok || !known {
			continue // nobody to give it to yet
		}
		h := appendUDPHeader(hdr[:0], src)
		start := maxUDPHeader - len(h)
		copy(buf[start:], h)
		a.relay.WriteTo(buf[start:maxUDPHeader+n], net.UDPAddrFromAddrPort(client))
	}
}
