package main

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/peer-vpn/peer/tunnel"
)

// statusSample is a relay's status with a peer of each kind of path:
// direct, through a relay, and nowhere to send.
func statusSample(now time.Time) nodeStatus {
	return nodeStatus{Status: tunnel.Status{
		PublicKey: "mhahAQRhqTQAVk1F9RDhxow+sCHpzwHyqSG1UUUWNyU=", ListenPort: 51820, Interface: "peer0", Driver: "water", MTU: 1420,
		Peers: []tunnel.PeerStatus{
			{Name: "beta", Endpoint: "203.0.113.2:51820", Path: "direct 203.0.113.2:51820", PathChanged: now.Add(-5*time.Minute - 2*time.Second - 300*time.Millisecond),
				LastHandshake: now.Add(-7 * time.Second), RxBytes: 1500, RxPackets: 3, TxBytes: 840, TxPackets: 2, Relay: true},
			{Name: "gamma", Path: "via beta", Via: "beta", PathChanged: now.Add(-12 * time.Second), LastHandshake: now.Add(-3 * time.Second),
				RxBytes: 2048, RxPackets: 4, TxBytes: 100, TxPackets: 1, Drops: map[string]uint64{"replay": 1}},
			{Name: "delta"},
		},
		Relay: &tunnel.RelayStatus{Registered: 2, Forwarded: 1234, Introductions: 3},
	}}
}

// TestStatusGolden: the text of `peer status`, in testdata/status.golden:
// each peer's path and how long it has had it, the relays marked, and the
// line of a node serving as a relay. Scripts grep it (see the report of
// the relay work: the format is theirs too).
func TestStatusGolden(t *testing.T) {
	now := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	var b strings.Builder
	st := statusSample(now)
	printStatus(&b, &st, now)
	b.WriteString("\n# not serving as a relay:\n")
	st.Relay = nil
	printStatus(&b, &st, now)
	b.WriteString("\n# a relay serving one peer:\n")
	st.Relay = &tunnel.RelayStatus{Registered: 1}
	printStatus(&b, &st, now)
	b.WriteString("\n# a mesh in etcd, connected, after a reload:\n")
	st.Relay = nil
	st.Mesh = &sourceState{Source: "etcd://192.0.2.5:2379/fleet", Etcd: &etcdState{Revision: 42, Connected: true, Since: now.Add(-time.Hour)}}
	st.LastReload = &reloadOutcome{At: now.Add(-90 * time.Second), Trigger: "etcd", Result: reloadApplied}
	printStatus(&b, &st, now)
	b.WriteString("\n# etcd lost, started from the cache, a reload refused:\n")
	st.Mesh.Etcd = &etcdState{Revision: 41, FromCache: true, Since: now.Add(-3 * time.Minute)}
	st.LastReload = &reloadOutcome{At: now.Add(-time.Minute), Trigger: "SIGHUP", Result: reloadRefused, Error: "peers.yaml:7: beta: bad public key\npeers.yaml:9: gamma: address 10.10.0.2/24 is beta's"}
	printStatus(&b, &st, now)
	b.WriteString("\n# a mesh file: no mesh line\n")
	st.Mesh, st.LastReload = &sourceState{Source: "/etc/peer/peer0.yaml"}, nil
	printStatus(&b, &st, now)
	checkGolden(t, "status.golden", b.String())
}

// TestStatusJSONRelay: what the node answers decodes into what `peer
// status` prints from, the relay fields included.
func TestStatusJSONRelay(t *testing.T) {
	now := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	st := statusSample(now)
	st.Mesh = &sourceState{Source: "etcd://192.0.2.5:2379/fleet", Etcd: &etcdState{Revision: 42, Connected: true, Since: now.Add(-time.Hour)}}
	st.LastReload = &reloadOutcome{At: now.Add(-time.Minute), Trigger: "SIGHUP", Result: reloadRefused, Error: "peers.yaml:7: bad key"}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"path":"via beta"`, `"path_changed":"2026-12-04T17:59:48Z"`, `"relay":true`,
		`"relay":{"registered":2,"forwarded":1234,"introductions":3,"refused":0}`,
		`"mesh":{"source":"etcd://192.0.2.5:2379/fleet","etcd":{"revision":42,"connected":true,"since":"2026-12-04T17:00:00Z"}}`,
		`"last_reload":{"at":"2026-12-04T17:59:00Z","trigger":"SIGHUP","result":"refused","error":"peers.yaml:7: bad key"}`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
	var back nodeStatus
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Relay, st.Relay) || back.Peers[1].Path != "via beta" || !back.Peers[1].PathChanged.Equal(st.Peers[1].PathChanged) || !back.Peers[0].Relay {
		t.Errorf("decoded %+v, sent %+v", back, st)
	}
}
