package tunnel

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
)

// Changes says what Reconfigure did, by peer name; each list is sorted. A
// peer whose preshared key changed along with other fields is both in
// Updated and in Rekeyed.
type Changes struct {
	// Added are new peers (by public key); they can handshake at once.
	Added []string `json:"added,omitempty"`
	// Removed are peers no longer in the set: their sessions are wiped and
	// their routes gone.
	Removed []string `json:"removed,omitempty"`
	// Updated are peers whose name, prefixes, endpoint or keepalive
	// changed; they keep their current session.
	Updated []string `json:"updated,omitempty"`
	// Rekeyed are peers whose preshared key changed: a new handshake with
	// the new key is started.
	Rekeyed []string `json:"rekeyed,omitempty"`
}

// Empty reports whether nothing changed.
func (c Changes) Empty() bool {
	return len(c.Added) == 0 && len(c.Removed) == 0 && len(c.Updated) == 0 && len(c.Rekeyed) == 0
}

// ErrClosed is returned by Reconfigure on a device that was closed.
var ErrClosed = errors.New("tunnel: device closed")

// Reconfigure replaces the device's peer set with peers, diffed by public
// key, while the device forwards, and says what changed. The whole set is
// validated first, as New does (this node's own key, a key or a name used
// twice, one prefix given to two peers): on error nothing changes.
// Then:
//   - a new peer is added and can handshake at once (on a running device
//     it starts as at Run: a persistent keepalive opens its session);
//   - a peer no longer in the set is removed: its timers stop, its
//     sessions and handshake are wiped and their indices retired
//     (transport messages still arriving for them count as unknown_index,
//     and a handshake from its key is refused as any unknown key's), its
//     staged packets are dropped;
//   - a peer whose name, prefixes, endpoint or keepalive changed is
//     updated in place and keeps its sessions: no handshake, counters go
//     on. The configured endpoint replaces the one in use only when the
//     configuration changed it, so an endpoint learned from the peer's
//     traffic (roaming) survives a reload that leaves it alone; a
//     configured endpoint removed leaves the one in use;
//   - a peer whose preshared key changed gets a new handshake with the new
//     key at once; its current session carries traffic until then;
//   - any other peer is not touched; the order of a peer's prefixes, or of
//     the peers, is no change.
//
// Routing switches in one step: the lookup of a packet sent, and the source
// check of a packet received, see the old table or the new one, never a
// mix, and a peer that keeps a prefix keeps it throughout. When nothing
// changed the result is Empty and nothing was touched. Calls are
// serialized; Reconfigure may be called before Run, and fails with
// ErrClosed after Close.
func (d *Device) Reconfigure(peers []PeerConfig) (Changes, error) {
	if err := validatePeers(d.local.Public, peers); err != nil {
		return Changes{}, err
	}
	d.reconfMu.Lock()
	defer d.reconfMu.Unlock()
	if d.isClosed() {
		return Changes{}, ErrClosed
	}
	old := d.peers.Load()
	list := make([]*Peer, 0, len(peers))
	confs := make([]*PeerConfig, 0, len(peers))
	var added []*Peer
	var updates []peerUpdate
	kept := make(map[*Peer]bool, len(peers))
	// Everything that can fail comes first: a peer that cannot be made
	// (a low-order key) refuses the whole set.
	for i := range peers {
		pc := cloneConfig(&peers[i])
		p := old.byKey[pc.PublicKey]
		if p == nil {
			np, err := newPeer(d, pc)
			if err != nil {
				for _, q := range added {
					q.stop()
				}
				return Changes{}, err
			}
			added = append(added, np)
			p = np
		} else {
			kept[p] = true
			if u := diffPeer(p, pc); u.fields || u.psk {
				updates = append(updates, u)
			} else {
				pc = u.old // unchanged: the peer keeps what it has
			}
		}
		list = append(list, p)
		confs = append(confs, pc)
	}
	var removed []*Peer
	for _, p := range old.list {
		if !kept[p] {
			removed = append(removed, p)
		}
	}
	if len(added) == 0 && len(removed) == 0 && len(updates) == 0 {
		return Changes{}, nil
	}
	set, routes := newPeerSet(list, confs)

	// From here on nothing fails. Peers updated in place take their new
	// configuration before the routes move, so that a packet routed by
	// the new table already finds, say, its new endpoint.
	var ch Changes
	for _, u := range updates {
		u.apply()
		if u.fields {
			ch.Updated = append(ch.Updated, u.new.Name)
		}
		if u.psk {
			ch.Rekeyed = append(ch.Rekeyed, u.new.Name)
		}
	}
	d.routes.Replace(routes)
	d.peers.Store(set)
	for _, p := range removed {
		p.remove()
		ch.Removed = append(ch.Removed, p.Name())
	}
	for _, p := range added {
		ch.Added = append(ch.Added, p.Name())
	}
	for _, l := range [][]string{ch.Added, ch.Removed, ch.Updated, ch.Rekeyed} {
		slices.Sort(l)
	}
	if d.running {
		for _, u := range updates {
			u.restart()
		}
		for _, p := range added {
			p.start()
		}
		// New's first set is no reload; the caller reports the changes,
		// this is for following what the device did, in order.
		d.log.Debug("peer set reconfigured", "added", ch.Added, "removed", ch.Removed, "updated", ch.Updated, "rekeyed", ch.Rekeyed)
	}
	return ch, nil
}

// peerUpdate is a change of a peer that stays in the set.
type peerUpdate struct {
	p        *Peer
	old, new *PeerConfig
	fields   bool // name, prefixes, endpoint or keepalive
	psk      bool
}

// diffPeer compares p's configuration with pc.
func diffPeer(p *Peer, pc *PeerConfig) peerUpdate {
	cur := p.conf.Load()
	return peerUpdate{
		p:   p,
		old: cur,
		new: pc,
		fields: cur.Name != pc.Name || cur.Endpoint != pc.Endpoint || cur.Keepalive != pc.Keepalive || cur.Relay != pc.Relay ||
			!samePrefixes(cur.Prefixes, pc.Prefixes),
		psk: cur.Preshared != pc.Preshared,
	}
}

// apply installs the new configuration in place; the sessions stay.
func (u *peerUpdate) apply() {
	p := u.p
	// Under hsMu: a handshake step reads the preshared key from the
	// noise.Handshake and the key log reads it from conf, and both must
	// be the same key.
	p.hsMu.Lock()
	p.conf.Store(u.new)
	if u.psk {
		p.handshake.SetPresharedKey(u.new.Preshared)
	}
	p.hsMu.Unlock()
	if u.new.Endpoint != u.old.Endpoint && u.new.Endpoint.IsValid() {
		p.endpoint.Store(direct(u.new.Endpoint, p.dev.clock.Now()))
	}
}

// restart starts, on a running device, what the update asks of the
// protocol: a handshake under a new preshared key, and the persistent
// keepalive's new interval. Nothing is sent for any other change.
func (u *peerUpdate) restart() {
	p := u.p
	if ka := u.new.Keepalive; ka != u.old.Keepalive {
		if ka > 0 {
			p.timers.persistentKeepalive.mod(ka)
		} else {
			p.timers.persistentKeepalive.del()
		}
	}
	if u.psk {
		p.rekey()
	}
}

// samePrefixes reports whether a and b hold the same prefixes, in any
// order.
func samePrefixes(a, b []netip.Prefix) bool {
	if len(a) != len(b) {
		return false
	}
	if slices.Equal(a, b) {
		return true
	}
	sa, sb := slices.Clone(a), slices.Clone(b)
	slices.SortFunc(sa, comparePrefix)
	slices.SortFunc(sb, comparePrefix)
	return slices.Equal(sa, sb)
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}
