package tunnel

import (
	"slices"
	"time"
)

// PeerStatus is a snapshot of one peer for `peer status`.
type PeerStatus struct {
	Name          string            `json:"name"`
	PublicKey     string            `json:"public_key"`
	Endpoint      string            `json:"endpoint,omitempty"`
	LastHandshake time.Time         `json:"last_handshake,omitzero"`
	RxPackets     uint64            `json:"rx_packets"`
	RxBytes       uint64            `json:"rx_bytes"`
	TxPackets     uint64            `json:"tx_packets"`
	TxBytes       uint64            `json:"tx_bytes"`
	Drops         map[string]uint64 `json:"drops,omitempty"`
	Prefixes      []string          `json:"prefixes"`
	Keepalive     string            `json:"persistent_keepalive,omitempty"`
	// Session is true while a confirmed session can carry data (within
	// its reject limits of time and messages).
	Session    bool            `json:"session"`
	Handshakes HandshakeCounts `json:"handshakes"`
	// Path is how datagrams reach the peer now: "direct ADDR:PORT", or
	// "via RELAY" (the name of the relay forwarding them); empty while
	// there is nowhere to send.
	Path string `json:"path,omitempty"`
	// Via is the relay of a path through one ("" for a direct path), so
	// that no reader has to parse Path.
	Via string `json:"via,omitempty"`
	// PathChanged is when Path last took its present value.
	PathChanged time.Time `json:"path_changed,omitzero"`
	// Relay is true for a peer the mesh file makes a relay.
	Relay bool `json:"relay,omitempty"`
}

// RelayStatus counts what this node did as a relay since it started.
type RelayStatus struct {
	// Registered is how many peers use it as their relay now (they sent
	// a hello within the registration lifetime).
	Registered int `json:"registered"`
	// Forwarded counts the datagrams forwarded between two peers.
	Forwarded uint64 `json:"forwarded"`
	// Introductions counts the introductions sent.
	Introductions uint64 `json:"introductions"`
	// Refused counts the requests refused: the target was not a
	// registered member, or a limit was reached.
	Refused uint64 `json:"refused"`
}

// HandshakeCounts counts a peer's handshakes by result (see
// HandshakeResult) since the peer was added.
type HandshakeCounts struct {
	CompletedInitiator uint64 `json:"completed_initiator"`
	CompletedResponder uint64 `json:"completed_responder"`
	Failed             uint64 `json:"failed"`
	Timeout            uint64 `json:"timeout"`
}

// DeviceDropReasons returns the names of every device-level drop reason,
// as Status uses them: a metrics exporter shows them all, zero or not.
func DeviceDropReasons() []string { return slices.Clone(deviceDropNames[:]) }

// PeerDropReasons returns the names of every per-peer drop reason.
func PeerDropReasons() []string { return slices.Clone(peerDropNames[:]) }

// Status is a snapshot of the device for `peer status`.
type Status struct {
	PublicKey  string            `json:"public_key"`
	ListenPort uint16            `json:"listen_port"`
	Interface  string            `json:"interface"`
	Driver     string            `json:"driver"`
	MTU        int               `json:"mtu"`
	Drops      map[string]uint64 `json:"drops,omitempty"`
	Peers      []PeerStatus      `json:"peers"`
	// Relay is set while this node serves as a relay.
	Relay *RelayStatus `json:"relay,omitempty"`
}

// Status returns current counters and session state.
func (d *Device) Status() Status {
	now := d.clock.Now()
	s := Status{
		PublicKey:  d.local.Public.String(),
		ListenPort: d.conn.LocalPort(),
		Interface:  d.tun.Name(),
		Driver:     d.tun.Driver(),
		MTU:        int(d.mtu.Load()),
		Drops:      map[string]uint64{},
	}
	if d.serveRelay.Load() {
		s.Relay = &RelayStatus{
			Registered:    d.relays.registered(now),
			Forwarded:     d.relays.forwarded.Load(),
			Introductions: d.relays.introductions.Load(),
			Refused:       d.relays.refused.Load(),
		}
	}
	for r := DeviceDrop(0); r < numDeviceDrops; r++ {
		if v := d.drops[r].Load(); v > 0 {
			s.Drops[r.String()] = v
		}
	}
	for _, p := range d.peers.Load().list {
		c := p.conf.Load()
		ps := PeerStatus{
			Name:      c.Name,
			PublicKey: p.public.String(),
			RxPackets: p.rxPackets.Load(),
			RxBytes:   p.rxBytes.Load(),
			TxPackets: p.txPackets.Load(),
			TxBytes:   p.txBytes.Load(),
			Drops:     map[string]uint64{},
			Session:   usable(p.current.Load(), now),
			Handshakes: HandshakeCounts{
				CompletedInitiator: p.handshakes[HandshakeCompletedInitiator].Load(),
				CompletedResponder: p.handshakes[HandshakeCompletedResponder].Load(),
				Failed:             p.handshakes[HandshakeFailed].Load(),
				Timeout:            p.handshakes[HandshakeTimeout].Load(),
			},
		}
		if ep := p.Endpoint(); ep.IsValid() {
			ps.Endpoint = ep.String()
		}
		if path := p.Path(); path.IsValid() {
			ps.Path, ps.PathChanged = path.String(), path.since
			if path.relay != nil {
				ps.Via = path.relay.Name()
			}
		}
		ps.Relay = c.Relay
		if c.Keepalive > 0 {
			ps.Keepalive = c.Keepalive.String()
		}
		p.mu.Lock()
		ps.LastHandshake = p.lastHandshake
		p.mu.Unlock()
		for r := PeerDrop(0); r < numPeerDrops; r++ {
			if v := p.drops[r].Load(); v > 0 {
				ps.Drops[peerDropNames[r]] = v
			}
		}
		for _, pfx := range c.Prefixes {
			ps.Prefixes = append(ps.Prefixes, pfx.String())
		}
		s.Peers = append(s.Peers, ps)
	}
	return s
}
