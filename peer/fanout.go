package main

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/tunnel"
)

// tapFanout owns the device's one tap: the capture of the command line and
// mesh file (-pcap, -log-packets: a reload replaces it) and the live
// captures of `peer capture` (each added and removed on its own). It hands
// the device nothing when there is no tap, the tap itself when there is one,
// and a multiTap otherwise, so the data path pays for the taps there are and
// takes no lock: what it sees is swapped atomically by Device.SetTap.
type tapFanout struct {
	set func(tunnel.Tap) // Device.SetTap

	mu   sync.Mutex
	pcap tunnel.Tap
	live []tunnel.Tap
}

func newTapFanout(set func(tunnel.Tap), pcap tunnel.Tap) *tapFanout {
	return &tapFanout{set: set, pcap: pcap}
}

// SetPcap replaces the -pcap/-log-packets member (nil: none), leaving the
// live captures in place.
func (f *tapFanout) SetPcap(t tunnel.Tap) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pcap = t
	f.update()
}

// captureDropped is the node-wide peer_capture_dropped_total: what the
// -pcap writers (the current one and those reloads replaced, see
// captureDrops) and the live captures could not write. It only reads
// counters.
func captureDropped(pcap *captureDrops, live *liveCaptures) func() uint64 {
	return func() uint64 { return pcap.Dropped() + live.Dropped() }
}

// add adds a live capture's tap; remove takes it out again. As with any
// SetTap, a batch under way may still hand the tap packets after remove.
func (f *tapFanout) add(t tunnel.Tap) (remove func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = append(f.live, t)
	f.update()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			if i := slices.Index(f.live, t); i >= 0 {
				f.live = slices.Delete(f.live, i, i+1)
			}
			f.update()
		})
	}
}

// update hands the device what it must see now; f.mu is held.
func (f *tapFanout) update() {
	all := make(multiTap, 0, 1+len(f.live))
	if f.pcap != nil {
		all = append(all, f.pcap)
	}
	all = append(all, f.live...)
	switch len(all) {
	case 0:
		f.set(nil)
	case 1:
		f.set(all[0])
	default:
		f.set(all) // a new slice each time: the device's copy never changes
	}
}

// multiTap hands every packet to each of its taps in turn; each copies what
// it keeps and never blocks.
type multiTap []tunnel.Tap

func (m multiTap) Inner(t time.Time, dir tunnel.Direction, peer string, pkt []byte) {
	for _, tap := range m {
		tap.Inner(t, dir, peer, pkt)
	}
}

func (m multiTap) Outer(t time.Time, dir tunnel.Direction, src, dst netip.AddrPort, datagram []byte) {
	for _, tap := range m {
		tap.Outer(t, dir, src, dst, datagram)
	}
}

func (m multiTap) EphemeralKey(peer string, remote keys.Public, psk keys.Preshared, eph keys.Private) {
	for _, tap := range m {
		tap.EphemeralKey(peer, remote, psk, eph)
	}
}

// fanoutDevice is the device as the reloader sees it: its SetTap replaces
// only the fan-out's -pcap member, so a reload keeps the live captures.
type fanoutDevice struct {
	liveDevice
	fan *tapFanout
}

func (d fanoutDevice) SetTap(t tunnel.Tap) { d.fan.SetPcap(t) }
