package meshstore

import (
	"testing"
)

// TestEncodeKeepsEveryPeerField: a mesh stored in etcd and read back has
// the fields of each peer that the file gave it; a field encodePeer
// forgets (relay: true once did not exist) would silently drop out of
// every node's view.
func TestEncodeKeepsEveryPeerField(t *testing.T) {
	m := load(t, "peers:\n"+
		"  - name: alpha\n    public_key: \""+pub(t)+"\"\n    address: 10.10.0.1/24\n    endpoint: 192.0.2.1:51820\n    relay: true\n    exit: true\n    keepalive: 25s\n"+
		"  - name: beta\n    public_key: \""+pub(t)+"\"\n    address: 10.10.0.2/24\n    use_exit: alpha\n")
	tg, err := ParseURL("etcd://127.0.0.1:2379/fleet")
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := decode(tg, encode(tg.Prefix, m), "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Peers {
		w, g := m.Peers[i], got.Peers[i]
		if g.Name != w.Name || g.Relay != w.Relay || g.Exit != w.Exit || g.UseExit != w.UseExit || g.Keepalive != w.Keepalive || g.Endpoint != w.Endpoint {
			t.Errorf("peer %d read back as %+v, stored %+v", i, g, w)
		}
	}
	if !got.Peers[0].Relay {
		t.Error("relay: true was lost")
	}
}
