package tunnel

import (
	"net/netip"
	"time"
)

// Endpoint is where a peer's datagrams go: straight to an address on the
// wire, or through a relay, which is another peer of ours (wireguard-go's
// conn.Endpoint is the model: the path is a value of its own, not a bare
// address). An Endpoint is never modified once published; a change of
// path stores a new one.
type Endpoint struct {
	addr netip.AddrPort // direct: the peer's address
	// relay, if set, forwards the peer's datagrams; addr is then unset.
	relay *Peer
	since time.Time // when the peer took this path
}

// direct is the path straight to addr, taken at now.
func direct(addr netip.AddrPort, now time.Time) *Endpoint { return &Endpoint{addr: addr, since: now} }

// viaRelay is the path through relay r, taken at now.
func viaRelay(r *Peer, now time.Time) *Endpoint { return &Endpoint{relay: r, since: now} }

// IsValid reports whether the endpoint leads anywhere.
func (e Endpoint) IsValid() bool { return e.addr.IsValid() || e.relay != nil }

// Direct returns the peer's address, if the path is direct.
func (e Endpoint) Direct() (netip.AddrPort, bool) { return e.addr, e.relay == nil && e.addr.IsValid() }

// Wire returns the address datagrams on this path are sent to: the peer's
// own, or the relay's.
func (e Endpoint) Wire() netip.AddrPort {
	if e.relay != nil {
		return e.relay.Endpoint()
	}
	return e.addr
}

// String is how status shows the path: "direct ADDR:PORT" or "via NAME".
func (e Endpoint) String() string {
	switch {
	case e.relay != nil:
		return "via " + e.relay.Name()
	case e.addr.IsValid():
		return "direct " + e.addr.String()
	}
	return ""
}
