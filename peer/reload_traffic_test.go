package main

import (
	"bytes"
	"encoding/json"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"syscall"
	"testing"
	"time"

	"github.com/peer-vpn/peer/tunnel"
	"github.com/peer-vpn/peer/udp/udptest"
)

// TestReloadRealTunnelTraffic runs three whole nodes in memory on the real
// tunnel: alpha and beta talk, the file gains gamma and a subnet for beta,
// alpha reloads by `peer reload` and beta by SIGHUP, and the alpha–beta
// session survives (no new handshake) while alpha reaches gamma and beta's
// new subnet; then beta leaves the file and alpha's reload drops it. It
// needs tunnel.Device.Reconfigure.
func TestReloadRealTunnelTraffic(t *testing.T) {
	m := newTestMesh(t, "alpha", "beta", "gamma")
	v1 := []string{
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 endpoint=192.0.2.2:51820",
	}
	m.write(t, "", v1...)
	network := udptest.NewNetwork()
	alpha := startNode(t, m.path(), m.keyFile("alpha"), nodeOpts{real: true, net: network, addr: "192.0.2.1"})
	beta := startNode(t, m.path(), m.keyFile("beta"), nodeOpts{real: true, net: network, addr: "192.0.2.2"})

	pass(t, alpha, beta, tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("before")))
	pass(t, beta, alpha, tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("reply")))
	before := peerState(t, alpha, "beta")
	if before.LastHandshake.IsZero() {
		t.Fatal("no handshake with beta")
	}

	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"beta 10.10.0.2/24 subnets=[10.20.2.0/24] endpoint=192.0.2.2:51820",
		"gamma 10.10.0.3/24 endpoint=192.0.2.3:51820")
	gamma := startNode(t, m.path(), m.keyFile("gamma"), nodeOpts{real: true, net: network, addr: "192.0.2.3"})
	code, out, errOut := alpha.reload()
	if want := "added peers: gamma\nupdated peers: beta\nroutes added: 10.10.0.3/32 10.20.2.0/24\n"; code != 0 || out != want {
		t.Fatalf("alpha reload: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errOut, out, want)
	}
	beta.hangup <- syscall.SIGHUP
	beta.waitLog(`msg="mesh reloaded" trigger=SIGHUP added_peers=gamma`, 1, 2*time.Second)

	pass(t, alpha, beta, tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("after")))
	pass(t, beta, alpha, tuntest.IPv4UDP("10.10.0.2", "10.10.0.1", []byte("reply after")))
	pass(t, alpha, beta, tuntest.IPv4UDP("10.10.0.1", "10.20.2.7", []byte("to the new subnet")))
	pass(t, beta, alpha, tuntest.IPv4UDP("10.20.2.7", "10.10.0.1", []byte("from the new subnet")))
	pass(t, alpha, gamma, tuntest.IPv4UDP("10.10.0.1", "10.10.0.3", []byte("to gamma")))
	after := peerState(t, alpha, "beta")
	if !after.LastHandshake.Equal(before.LastHandshake) {
		t.Errorf("the session with beta did not survive: handshake %v, then %v", before.LastHandshake, after.LastHandshake)
	}
	if after.TxPackets <= before.TxPackets || after.RxPackets <= before.RxPackets {
		t.Errorf("counters did not continue: %+v then %+v", before, after)
	}
	for _, n := range []*runningNode{alpha, beta} {
		st := status(t, n)
		if st.Drops["no_route"] != 0 {
			t.Errorf("%s: drops across the reload: %v", st.Interface, st.Drops)
		}
		for _, p := range st.Peers {
			if p.Drops["spoofed_source"] != 0 {
				t.Errorf("%s: peer %s: drops across the reload: %v", st.Interface, p.Name, p.Drops)
			}
		}
	}

	// beta leaves: its route and session are gone from alpha.
	m.write(t, "",
		"alpha 10.10.0.1/24 endpoint=192.0.2.1:51820",
		"gamma 10.10.0.3/24 endpoint=192.0.2.3:51820")
	code, out, errOut = alpha.reload()
	if want := "removed peers: beta\nroutes removed: 10.10.0.2/32 10.20.2.0/24\n"; code != 0 || out != want {
		t.Fatalf("alpha reload without beta: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, errOut, out, want)
	}
	alpha.tun.Inject(tuntest.IPv4UDP("10.10.0.1", "10.10.0.2", []byte("to nobody")))
	waitUntil(t, "a no_route drop", func() bool { return status(t, alpha).Drops["no_route"] == 1 })
	for _, p := range status(t, alpha).Peers {
		if p.Name == "beta" {
			t.Errorf("beta still in alpha's status: %+v", p)
		}
	}
	pass(t, alpha, gamma, tuntest.IPv4UDP("10.10.0.1", "10.10.0.3", []byte("gamma still")))
}

// pass injects pkt into from's TUN and waits for it on to's.
func pass(t *testing.T, from, to *runningNode, pkt []byte) {
	t.Helper()
	from.tun.Inject(pkt)
	select {
	case got := <-to.tun.Written():
		if !bytes.Equal(got, pkt) {
			t.Fatalf("received\n%x\nwant\n%x", got, pkt)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("packet %x did not arrive", pkt)
	}
}

// status is `peer status -json` of n.
func status(t *testing.T, n *runningNode) tunnel.Status {
	t.Helper()
	code, out, errOut := runCmd(t, "", "status", "-json", "-socket", n.socket)
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	var st tunnel.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st
}

func peerState(t *testing.T, n *runningNode, name string) tunnel.PeerStatus {
	t.Helper()
	for _, p := range status(t, n).Peers {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no peer %s", name)
	return tunnel.PeerStatus{}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
