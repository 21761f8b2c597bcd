package noise

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func mustPrivate(t testing.TB) keys.Private {
	t.Helper()
	k, err := keys.NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// pair is two nodes, a and b, each with a Handshake toward the other.
type pair struct {
	a, b   *Local
	ha, hb *Handshake // ha: a's state toward b; hb: b's state toward a
}

func newPair(t testing.TB, pskA, pskB keys.Preshared) *pair {
	t.Helper()
	p := &pair{a: NewLocal(mustPrivate(t)), b: NewLocal(mustPrivate(t))}
	var err error
	if p.ha, err = NewHandshake(p.a, p.b.Public, pskA); err != nil {
		t.Fatal(err)
	}
	if p.hb, err = NewHandshake(p.b, p.a.Public, pskB); err != nil {
		t.Fatal(err)
	}
	return p
}

// lookupB resolves initiators at node b.
func (p *pair) lookupB(k keys.Public) *Handshake {
	if k == p.a.Public {
		return p.hb
	}
	return nil
}

// wire sends a message through its wire form, as the device would.
func wireInitiation(t testing.TB, m *Initiation) *Initiation {
	t.Helper()
	var out Initiation
	if err := out.Unmarshal(m.Marshal(nil)); err != nil {
		t.Fatal(err)
	}
	return &out
}

func wireResponse(t testing.TB, m *Response) *Response {
	t.Helper()
	var out Response
	if err := out.Unmarshal(m.Marshal(nil)); err != nil {
		t.Fatal(err)
	}
	return &out
}

// handshake runs a complete handshake a→b at now and returns both keypairs.
func (p *pair) handshake(t testing.TB, now time.Time, ia, ib uint32) (ka, kb *Keypair) {
	t.Helper()
	init, err := p.ha.CreateInitiation(now, ia)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.b.ConsumeInitiation(wireInitiation(t, init), now, p.lookupB)
	if err != nil {
		t.Fatalf("ConsumeInitiation: %v", err)
	}
	if h != p.hb {
		t.Fatalf("ConsumeInitiation returned the wrong handshake")
	}
	resp, err := p.hb.CreateResponse(ib)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Receiver != ia || resp.Sender != ib {
		t.Fatalf("response indices %d→%d, want %d→%d", resp.Sender, resp.Receiver, ib, ia)
	}
	if kb, err = p.hb.BeginSession(now); err != nil {
		t.Fatal(err)
	}
	if err := p.ha.ConsumeResponse(wireResponse(t, resp)); err != nil {
		t.Fatalf("ConsumeResponse: %v", err)
	}
	if ka, err = p.ha.BeginSession(now); err != nil {
		t.Fatal(err)
	}
	return ka, kb
}

// exchange sends one packet from -> to and checks it arrives intact.
func exchange(t testing.TB, from, to *Keypair, payload []byte) {
	t.Helper()
	c, ok := from.NextCounter()
	if !ok {
		t.Fatal("NextCounter refused")
	}
	buf := make([]byte, len(payload)+MessageTransportOverhead)
	n := from.Seal(buf, payload, c)
	if n != len(buf) {
		t.Fatalf("Seal = %d, want %d", n, len(buf))
	}
	got, gc, err := to.Open(nil, buf)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if gc != c || !bytes.Equal(got, payload) {
		t.Fatalf("Open = %q/%d, want %q/%d", got, gc, payload, c)
	}
	if !to.CheckReplay(gc) {
		t.Fatal("fresh counter refused by replay window")
	}
	if to.CheckReplay(gc) {
		t.Fatal("counter accepted twice")
	}
}

func TestFullHandshakeAndData(t *testing.T) {
	psk := keys.Preshared{1, 2, 3}
	for _, tc := range []struct {
		name string
		psk  keys.Preshared
	}{{"no psk", keys.Preshared{}}, {"psk", psk}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPair(t, tc.psk, tc.psk)
			ka, kb := p.handshake(t, t0, 11, 22)
			if ka.LocalIndex != 11 || ka.RemoteIndex != 22 || !ka.Initiator || !ka.Created.Equal(t0) {
				t.Errorf("initiator keypair = %+v", ka)
			}
			if kb.LocalIndex != 22 || kb.RemoteIndex != 11 || kb.Initiator {
				t.Errorf("responder keypair = %+v", kb)
			}
			exchange(t, ka, kb, []byte("hello from a"))
			exchange(t, kb, ka, []byte("hello from b"))
			exchange(t, ka, kb, nil) // keepalive
			if p.ha.localIndex != 0 || p.hb.localIndex != 0 {
				t.Error("local index not handed over to the keypair")
			}
			for _, h := range []*Handshake{p.ha, p.hb} {
				if h.chainKey != [32]byte{} || h.hash != [32]byte{} || !h.localEphemeral.IsZero() || h.state != stateZeroed {
					t.Error("handshake state not zeroed by BeginSession")
				}
			}
			// A second handshake, initiated by b this time, yields fresh keys.
			q := &pair{a: p.b, b: p.a, ha: p.hb, hb: p.ha}
			kb2, ka2 := q.handshake(t, t0.Add(time.Second), 33, 44)
			exchange(t, ka2, kb2, []byte("second session"))
			exchange(t, kb2, ka2, []byte("second session back"))
			buf := make([]byte, 64)
			n := ka.Seal(buf, []byte("old"), 99)
			if _, _, err := kb2.Open(nil, buf[:n]); err == nil {
				t.Error("old session's packet opened with new keys")
			}
		})
	}
}

func TestPresharedKeyMismatch(t *testing.T) {
	p := newPair(t, keys.Preshared{1}, keys.Preshared{2})
	init, _ := p.ha.CreateInitiation(t0, 1)
	// The psk is only mixed in at the response, so the initiation passes.
	if _, err := p.b.ConsumeInitiation(init, t0, p.lookupB); err != nil {
		t.Fatal(err)
	}
	resp, _ := p.hb.CreateResponse(2)
	if err := p.ha.ConsumeResponse(resp); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("ConsumeResponse with psk mismatch = %v, want ErrDecrypt", err)
	}
	if _, err := p.ha.BeginSession(t0); !errors.Is(err, ErrHandshakeState) {
		t.Fatalf("BeginSession after failed response = %v", err)
	}
	// Fixing the psk lets the same in-flight initiation complete.
	p.ha.SetPresharedKey(keys.Preshared{2})
	if err := p.ha.ConsumeResponse(resp); err != nil {
		t.Fatal(err)
	}
}

func TestWrongKeys(t *testing.T) {
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	c := NewLocal(mustPrivate(t))

	// a's initiation to b delivered to c: c cannot decrypt a's static key.
	init, _ := p.ha.CreateInitiation(t0, 1)
	if _, err := c.ConsumeInitiation(init, t0, func(keys.Public) *Handshake { return p.hb }); !errors.Is(err, ErrDecrypt) {
		t.Errorf("initiation for b consumed by c: %v", err)
	}
	// b does not know a.
	if _, err := p.b.ConsumeInitiation(init, t0, func(keys.Public) *Handshake { return nil }); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("initiation from unknown peer: %v", err)
	}
	// b's lookup returns a handshake of another identity.
	hc, _ := NewHandshake(c, p.a.Public, keys.Preshared{})
	if _, err := p.b.ConsumeInitiation(init, t0, func(keys.Public) *Handshake { return hc }); !errors.Is(err, ErrForeignHandshake) {
		t.Errorf("initiation matched to foreign handshake: %v", err)
	}
	// d claims to be a but has another private key: the static key decrypts
	// to d's key, which b does not know; if b's lookup were sloppy and
	// returned its handshake with a anyway, the timestamp check fails.
	d := NewLocal(mustPrivate(t))
	hd, _ := NewHandshake(d, p.b.Public, keys.Preshared{})
	init2, _ := hd.CreateInitiation(t0, 1)
	if _, err := p.b.ConsumeInitiation(init2, t0, p.lookupB); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("initiation from impostor: %v", err)
	}

	// Tampering with any encrypted field breaks authentication.
	for _, field := range []string{"ephemeral", "static", "timestamp"} {
		init, _ := p.ha.CreateInitiation(t0, 1)
		switch field {
		case "ephemeral":
			init.Ephemeral[3] ^= 1
		case "static":
			init.Static[40] ^= 1
		case "timestamp":
			init.Timestamp[0] ^= 1
		}
		if _, err := p.b.ConsumeInitiation(init, t0, p.lookupB); err == nil {
			t.Errorf("initiation with tampered %s accepted", field)
		}
	}

	// A response from the wrong responder fails.
	init, _ = p.ha.CreateInitiation(t0, 5)
	hca, _ := NewHandshake(c, p.a.Public, keys.Preshared{})
	if _, err := c.ConsumeInitiation(init, t0, func(keys.Public) *Handshake { return hca }); err == nil {
		t.Fatal("c consumed an initiation for b")
	}
	init3, _ := p.ha.CreateInitiation(t0, 5)
	if _, err := p.b.ConsumeInitiation(init3, t0.Add(time.Second), p.lookupB); err != nil {
		t.Fatal(err)
	}
	resp, _ := p.hb.CreateResponse(9)
	resp.Empty[0] ^= 1
	if err := p.ha.ConsumeResponse(resp); !errors.Is(err, ErrDecrypt) {
		t.Errorf("tampered response: %v", err)
	}
	resp.Empty[0] ^= 1
	resp.Receiver = 6
	if err := p.ha.ConsumeResponse(resp); !errors.Is(err, ErrWrongReceiver) {
		t.Errorf("response for another index: %v", err)
	}
	resp.Receiver = 5
	if err := p.ha.ConsumeResponse(resp); err != nil {
		t.Errorf("genuine response after failures: %v", err)
	}
	if err := p.ha.ConsumeResponse(resp); !errors.Is(err, ErrHandshakeState) {
		t.Errorf("response consumed twice: %v", err)
	}
}

func TestLowOrderKeys(t *testing.T) {
	l := NewLocal(mustPrivate(t))
	if _, err := NewHandshake(l, keys.Public{}, keys.Preshared{}); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("NewHandshake with zero remote key: %v", err)
	}
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	init, _ := p.ha.CreateInitiation(t0, 1)
	init.Ephemeral = keys.Public{}
	if _, err := p.b.ConsumeInitiation(init, t0, p.lookupB); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("initiation with zero ephemeral: %v", err)
	}
	init, _ = p.ha.CreateInitiation(t0, 1)
	if _, err := p.b.ConsumeInitiation(init, t0, p.lookupB); err != nil {
		t.Fatal(err)
	}
	resp, _ := p.hb.CreateResponse(2)
	resp.Ephemeral = keys.Public{}
	if err := p.ha.ConsumeResponse(resp); !errors.Is(err, ErrLowOrder) {
		t.Fatalf("response with zero ephemeral: %v", err)
	}
}

func TestInitiationReplayAndFlood(t *testing.T) {
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	first, _ := p.ha.CreateInitiation(t0, 1)
	if _, err := p.b.ConsumeInitiation(first, t0, p.lookupB); err != nil {
		t.Fatal(err)
	}
	// The identical message again, well after the flood interval.
	if _, err := p.b.ConsumeInitiation(first, t0.Add(time.Minute), p.lookupB); !errors.Is(err, ErrReplay) {
		t.Fatalf("replayed initiation: %v", err)
	}
	// A new initiation created within the same whitening granule carries
	// the same timestamp: also refused as a replay.
	same, _ := p.ha.CreateInitiation(t0.Add(time.Millisecond), 2)
	if _, err := p.b.ConsumeInitiation(same, t0.Add(time.Minute), p.lookupB); !errors.Is(err, ErrReplay) {
		t.Fatalf("initiation with equal timestamp: %v", err)
	}
	// An older one too.
	p2 := &pair{a: p.a, b: p.b, ha: p.ha, hb: p.hb}
	old, _ := p2.ha.CreateInitiation(t0.Add(-time.Second), 3)
	if _, err := p.b.ConsumeInitiation(old, t0.Add(time.Minute), p.lookupB); !errors.Is(err, ErrReplay) {
		t.Fatalf("initiation with older timestamp: %v", err)
	}

	// Flood: a newer initiation arriving 10ms after the last accepted one.
	base := t0.Add(2 * time.Minute)
	i1, _ := p.ha.CreateInitiation(base, 4)
	if _, err := p.b.ConsumeInitiation(i1, base, p.lookupB); err != nil {
		t.Fatal(err)
	}
	i2, _ := p.ha.CreateInitiation(base.Add(time.Second), 5)
	if _, err := p.b.ConsumeInitiation(i2, base.Add(10*time.Millisecond), p.lookupB); !errors.Is(err, ErrFlood) {
		t.Fatalf("initiation 10ms after the last: %v", err)
	}
	if _, err := p.b.ConsumeInitiation(i2, base.Add(HandshakeInitiationRate), p.lookupB); !errors.Is(err, ErrFlood) {
		t.Fatalf("initiation exactly HandshakeInitiationRate after the last: %v", err)
	}
	if _, err := p.b.ConsumeInitiation(i2, base.Add(HandshakeInitiationRate+time.Millisecond), p.lookupB); err != nil {
		t.Fatalf("initiation after the flood interval: %v", err)
	}

	// Clear keeps the replay protection.
	p.hb.Clear()
	if _, err := p.b.ConsumeInitiation(i2, base.Add(time.Hour), p.lookupB); !errors.Is(err, ErrReplay) {
		t.Fatalf("replay after Clear: %v", err)
	}
}

func TestStateMachine(t *testing.T) {
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	if _, err := p.hb.CreateResponse(1); !errors.Is(err, ErrHandshakeState) {
		t.Errorf("CreateResponse before any initiation: %v", err)
	}
	if _, err := p.ha.BeginSession(t0); !errors.Is(err, ErrHandshakeState) {
		t.Errorf("BeginSession on fresh handshake: %v", err)
	}
	if err := p.ha.ConsumeResponse(&Response{}); !errors.Is(err, ErrHandshakeState) {
		t.Errorf("ConsumeResponse without initiation: %v", err)
	}
	init, _ := p.ha.CreateInitiation(t0, 7)
	if got := p.ha.localIndex; got != 7 {
		t.Errorf("local index after CreateInitiation = %d", got)
	}
	if _, err := p.ha.BeginSession(t0); !errors.Is(err, ErrHandshakeState) {
		t.Errorf("BeginSession before response: %v", err)
	}
	if _, err := p.b.ConsumeInitiation(init, t0, p.lookupB); err != nil {
		t.Fatal(err)
	}
	if _, err := p.hb.BeginSession(t0); !errors.Is(err, ErrHandshakeState) {
		t.Errorf("responder BeginSession before CreateResponse: %v", err)
	}
	resp, _ := p.hb.CreateResponse(8)
	// Clear abandons the handshake: the response can no longer be used.
	p.ha.Clear()
	if p.ha.localIndex != 0 {
		t.Error("local index after Clear")
	}
	if err := p.ha.ConsumeResponse(resp); !errors.Is(err, ErrHandshakeState) {
		t.Errorf("ConsumeResponse after Clear: %v", err)
	}
	// A new initiation supersedes an old one: the old response is refused.
	old, _ := p.ha.CreateInitiation(t0.Add(time.Second), 10)
	if _, err := p.b.ConsumeInitiation(old, t0.Add(time.Second), p.lookupB); err != nil {
		t.Fatal(err)
	}
	oldResp, _ := p.hb.CreateResponse(11)
	if _, err := p.ha.CreateInitiation(t0.Add(2*time.Second), 10); err != nil {
		t.Fatal(err)
	}
	if err := p.ha.ConsumeResponse(oldResp); !errors.Is(err, ErrDecrypt) {
		t.Errorf("response to a superseded initiation: %v", err)
	}
}

func TestKeyLog(t *testing.T) {
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	var logged []keys.Private
	keyLog := WithKeyLog(func(k keys.Private) { logged = append(logged, k) })
	var err error
	if p.ha, err = NewHandshake(p.a, p.b.Public, keys.Preshared{}, keyLog); err != nil {
		t.Fatal(err)
	}
	if p.hb, err = NewHandshake(p.b, p.a.Public, keys.Preshared{}, keyLog); err != nil {
		t.Fatal(err)
	}
	init, _ := p.ha.CreateInitiation(t0, 1)
	if _, err := p.b.ConsumeInitiation(init, t0, p.lookupB); err != nil {
		t.Fatal(err)
	}
	resp, _ := p.hb.CreateResponse(2)
	if len(logged) != 2 || logged[0].Public() != init.Ephemeral || logged[1].Public() != resp.Ephemeral {
		t.Fatalf("key log got %d keys not matching the ephemerals sent", len(logged))
	}
}

func TestKDFChainStructure(t *testing.T) {
	// The initial values are hashes of the protocol strings.
	if initialChainKey == ([32]byte{}) || initialHash == initialChainKey {
		t.Fatal("initial chaining key/hash not set up")
	}
	// HKDF outputs: T1 = HMAC(prk, 1), T2 = HMAC(prk, T1||2), T3 = HMAC(prk, T2||3).
	ck, in := []byte("chaining key"), []byte("input")
	prk := hmacBlake2s(ck, in)
	t1 := hmacBlake2s(prk[:], []byte{1})
	t2 := hmacBlake2s(prk[:], t1[:], []byte{2})
	t3 := hmacBlake2s(prk[:], t2[:], []byte{3})
	a, b, c := kdf3(ck, in)
	if a != t1 || b != t2 || c != t3 {
		t.Fatal("kdf3 does not follow the HKDF chain")
	}
	if x := kdf1(ck, in); x != t1 {
		t.Fatal("kdf1 != T1")
	}
	if x, y := kdf2(ck, in); x != t1 || y != t2 {
		t.Fatal("kdf2 != T1, T2")
	}
}
