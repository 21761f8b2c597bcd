package tunnel

import (
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
)

// handshakeInto runs a complete handshake from initiator ip (on device di)
// to responder rp (on dr) and installs both resulting sessions.
func handshakeInto(t *testing.T, di *Device, ip *Peer, dr *Device, rp *Peer, now time.Time) (ikp, rkp *noise.Keypair) {
	t.Helper()
	iidx := di.index.newIndex(ip)
	init, err := ip.handshake.CreateInitiation(now, iidx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dr.local.ConsumeInitiation(init, now, func(keys.Public) *noise.Handshake { return rp.handshake }); err != nil {
		t.Fatal(err)
	}
	ridx := dr.index.newIndex(rp)
	resp, err := rp.handshake.CreateResponse(ridx)
	if err != nil {
		t.Fatal(err)
	}
	if rkp, err = rp.handshake.BeginSession(now); err != nil {
		t.Fatal(err)
	}
	dr.index.setKeypair(rkp.LocalIndex, rp, rkp)
	rp.installKeypair(rkp)
	if err := ip.handshake.ConsumeResponse(resp); err != nil {
		t.Fatal(err)
	}
	if ikp, err = ip.handshake.BeginSession(now); err != nil {
		t.Fatal(err)
	}
	di.index.setKeypair(ikp.LocalIndex, ip, ikp)
	ip.installKeypair(ikp)
	return ikp, rkp
}

// TestInstallKeypairRetiresSupersededSessions: alpha has a session it
// initiated, then answers beta's handshake (an unconfirmed "next"), then
// completes one of its own. The first session must leave the index table
// and be wiped; the unconfirmed one becomes the fallback.
func TestInstallKeypairRetiresSupersededSessions(t *testing.T) {
	a, b := benchDevices(t) // alpha's current: a session it initiated
	pa, pb := a.peerByName("beta"), b.peerByName("alpha")
	first := pa.current.Load()
	now := time.Now().Add(time.Second)
	_, next := handshakeInto(t, b, pb, a, pa, now) // beta initiates: alpha's next
	if pa.keypairs.next != next || pa.current.Load() != first {
		t.Fatal("responder session not kept as next")
	}
	newest, _ := handshakeInto(t, a, pa, b, pb, now.Add(time.Second)) // alpha initiates again
	if pa.current.Load() != newest || pa.keypairs.previous != next || pa.keypairs.next != nil {
		t.Fatalf("current=%p previous=%p next=%p", pa.current.Load(), pa.keypairs.previous, pa.keypairs.next)
	}
	if _, ok := a.index.lookup(first.LocalIndex); ok {
		t.Fatal("superseded session still in the index table")
	}
	var buf [64]byte
	if first.Seal(buf[:], buf[16:16], 0) != 0 {
		t.Fatal("superseded session not wiped")
	}
}
