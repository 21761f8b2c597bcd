package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/peer-vpn/peer/config"
	"github.com/peer-vpn/peer/keys"
	"github.com/peer-vpn/peer/noise"
	"github.com/peer-vpn/peer/tundev/tuntest"
	"github.com/peer-vpn/peer/tunnel"
)

// lockedBuffer is a bytes.Buffer safe for a logger used from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testNode is a node with one remote, beta, that has a preshared key.
func testNode(t *testing.T) *config.Node {
	t.Helper()
	self, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	other, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	var psk keys.Preshared
	psk[0] = 1
	return &config.Node{
		Self:    &config.Peer{Name: "alpha", PublicKey: self.Public()},
		Private: self,
		Remotes: []config.Remote{{Peer: &config.Peer{Name: "beta", PublicKey: other.Public()}, Preshared: psk}},
	}
}

// TestTapWarnsAboutKeys: with -pcap-keys the node says, loudly, that the
// file holds its private key and what to do about it; without, nothing.
func TestTapWarnsAboutKeys(t *testing.T) {
	for _, keysOn := range []bool{true, false} {
		var logBuf lockedBuffer
		log := slog.New(slog.NewTextHandler(&logBuf, nil))
		o := captureOptions{Capture: config.Capture{Pcap: filepath.Join(t.TempDir(), "c.pcapng"), Outer: true}, Keys: keysOn}
		_, closeTap, err := newTap(testNode(t), o, log)
		if err != nil {
			t.Fatal(err)
		}
		closeTap()
		out := logBuf.String()
		warned := strings.Contains(out, "level=WARN") && strings.Contains(out, "PRIVATE KEY") &&
			strings.Contains(out, "new key") && strings.Contains(out, o.Pcap)
		if warned != keysOn {
			t.Errorf("keys %v: log %q", keysOn, out)
		}
	}
}

// keyNode is alpha with three remotes; only beta will have a handshake.
type keyNode struct {
	node                  *config.Node
	alpha, beta           keys.Private
	gamma, delta          keys.Public
	betaPSK, gammaPSK     keys.Preshared
	alphaAddr, betaAddr   netip.AddrPort
	alphaInner, betaInner netip.Addr
}

func newKeyNode(t *testing.T) *keyNode {
	t.Helper()
	k := &keyNode{
		alphaAddr: netip.MustParseAddrPort("127.0.0.1:51820"), betaAddr: netip.MustParseAddrPort("127.0.0.2:51821"),
		alphaInner: netip.MustParseAddr("10.10.0.1"), betaInner: netip.MustParseAddr("10.10.0.2"),
	}
	var privs [4]keys.Private
	for i := range privs {
		p, err := keys.NewPrivate()
		if err != nil {
			t.Fatal(err)
		}
		privs[i] = p
	}
	k.alpha, k.beta, k.gamma, k.delta = privs[0], privs[1], privs[2].Public(), privs[3].Public()
	k.betaPSK[0], k.gammaPSK[0] = 0xb0, 0xc0
	k.node = &config.Node{
		Self:    &config.Peer{Name: "alpha", PublicKey: k.alpha.Public()},
		Private: k.alpha,
		Remotes: []config.Remote{
			{Peer: &config.Peer{Name: "beta", PublicKey: k.beta.Public()}, Preshared: k.betaPSK, Endpoint: k.betaAddr},
			{Peer: &config.Peer{Name: "gamma", PublicKey: k.gamma}, Preshared: k.gammaPSK},
			{Peer: &config.Peer{Name: "delta", PublicKey: k.delta}},
		},
	}
	return k
}

// TestTapKeyLog runs a real handshake and a transport message each way
// through the tap, with alpha as initiator and as responder, and checks that
// the capture holds the keys of that handshake only (not gamma's or delta's,
// which had none), and, with tshark, that they are enough: the initiation's
// static key and the response decrypt, and so do the transport messages.
func TestTapKeyLog(t *testing.T) {
	for _, alphaInitiates := range []bool{true, false} {
		name := map[bool]string{true: "alpha initiates", false: "alpha responds"}[alphaInitiates]
		t.Run(name, func(t *testing.T) {
			k := newKeyNode(t)
			path := filepath.Join(t.TempDir(), "keys.pcapng")
			o := captureOptions{Capture: config.Capture{Pcap: path, Outer: true}, Keys: true}
			tp, closeTap, err := newTap(k.node, o, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			now := time.Now()
			la, lb := noise.NewLocal(k.alpha), noise.NewLocal(k.beta)
			// As tunnel/peer.go does: alpha's handshake logs to the tap.
			ha, err := noise.NewHandshake(la, k.beta.Public(), k.betaPSK, noise.WithKeyLog(func(eph keys.Private) {
				tp.EphemeralKey("beta", k.beta.Public(), k.betaPSK, eph)
			}))
			if err != nil {
				t.Fatal(err)
			}
			hb, err := noise.NewHandshake(lb, k.alpha.Public(), k.betaPSK)
			if err != nil {
				t.Fatal(err)
			}
			// wire carries msg over the capture as alpha sees it.
			wire := func(fromAlpha bool, msg []byte) {
				if fromAlpha {
					tp.Outer(now, tunnel.Outbound, netip.AddrPortFrom(netip.IPv4Unspecified(), k.alphaAddr.Port()), k.betaAddr, msg)
				} else {
					tp.Outer(now, tunnel.Inbound, k.betaAddr, netip.AddrPortFrom(netip.IPv4Unspecified(), k.alphaAddr.Port()), msg)
				}
			}
			ini, resp := ha, hb // initiator and responder handshakes
			iniLocal, respLocal := la, lb
			iniPub, respPub := k.alpha.Public(), k.beta.Public()
			if !alphaInitiates {
				ini, resp, iniLocal, respLocal, iniPub, respPub = hb, ha, lb, la, k.beta.Public(), k.alpha.Public()
			}
			_ = iniLocal
			in, err := ini.CreateInitiation(now, 0x1111)
			if err != nil {
				t.Fatal(err)
			}
			msg := in.Marshal(nil)
			noise.NewCookieGenerator(respPub).AddMACs(msg, now)
			wire(alphaInitiates, msg)
			var got noise.Initiation
			if err := got.Unmarshal(msg); err != nil {
				t.Fatal(err)
			}
			if _, err := respLocal.ConsumeInitiation(&got, now, func(keys.Public) *noise.Handshake { return resp }); err != nil {
				t.Fatal(err)
			}
			r, err := resp.CreateResponse(0x2222)
			if err != nil {
				t.Fatal(err)
			}
			msg = r.Marshal(nil)
			noise.NewCookieGenerator(iniPub).AddMACs(msg, now)
			wire(!alphaInitiates, msg)
			var gotR noise.Response
			if err := gotR.Unmarshal(msg); err != nil {
				t.Fatal(err)
			}
			if err := ini.ConsumeResponse(&gotR); err != nil {
				t.Fatal(err)
			}
			kpIni, err := ini.BeginSession(now)
			if err != nil {
				t.Fatal(err)
			}
			kpResp, err := resp.BeginSession(now)
			if err != nil {
				t.Fatal(err)
			}
			seal := func(kp *noise.Keypair, src, dst netip.Addr) []byte {
				pt := tuntest.ICMPEcho(src, dst, 0, 0, make([]byte, 4))
				out := make([]byte, len(pt)+noise.MessageTransportOverhead)
				if kp.Seal(out, pt, 0) == 0 {
					t.Fatal("seal failed")
				}
				return out
			}
			kpAlpha, kpBeta := kpIni, kpResp
			if !alphaInitiates {
				kpAlpha, kpBeta = kpResp, kpIni
			}
			wire(true, seal(kpAlpha, k.alphaInner, k.betaInner))
			wire(false, seal(kpBeta, k.betaInner, k.alphaInner))
			closeTap()

			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				what string
				key  string
				want int
			}{
				{"alpha's static key", "LOCAL_STATIC_PRIVATE_KEY = " + k.alpha.Base64(), 1},
				{"beta's public key", "REMOTE_STATIC_PUBLIC_KEY = " + k.beta.Public().String(), 1},
				{"beta's preshared key", "PRESHARED_KEY = " + k.betaPSK.Base64(), 1},
				{"an ephemeral key", "LOCAL_EPHEMERAL_PRIVATE_KEY = ", 1},
				{"gamma's public key", k.gamma.String(), 0},
				{"gamma's preshared key", k.gammaPSK.Base64(), 0},
				{"delta's public key", k.delta.String(), 0},
			} {
				if n := bytes.Count(raw, []byte(c.key)); n != c.want {
					t.Errorf("%s: %d times in the capture, want %d", c.what, n, c.want)
				}
			}

			tshark, err := exec.LookPath("tshark")
			if err != nil {
				t.Skip("tshark not installed: decryption not checked")
			}
			out, err := exec.Command(tshark, "-n", "-r", path, "-o", "wg.dissect_packet:TRUE", "-T", "fields",
				"-E", "separator=;", "-e", "wg.type", "-e", "wg.static", "-e", "wg.handshake_ok", "-e", "ip.src").Output()
			if err != nil {
				t.Fatalf("tshark: %v\n%s", err, out)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			want := []string{
				"1;" + iniPub.String() + ";;127.0.0.",
				"2;;1;127.0.0.",
				"4;;;127.0.0.",
				"4;;;127.0.0.",
			}
			if len(lines) != len(want) {
				t.Fatalf("tshark:\n%s", out)
			}
			for i, w := range want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("packet %d: tshark %q, want prefix %q (decrypted)", i, lines[i], w)
				}
			}
			// The inner source of each transport message, decrypted.
			for i, src := range []netip.Addr{k.alphaInner, k.betaInner} {
				if !strings.Contains(lines[2+i], ","+src.String()) {
					t.Errorf("transport message %d not decrypted: %q", i, lines[2+i])
				}
			}
		})
	}
}
