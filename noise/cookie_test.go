package noise

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/peer-vpn/peer/keys"
)

// signedInitiation returns a marshalled initiation from p.a to p.b with MACs
// added by gen at now.
func signedInitiation(t *testing.T, p *pair, gen *CookieGenerator, now time.Time, index uint32) []byte {
	t.Helper()
	init, err := p.ha.CreateInitiation(now, index)
	if err != nil {
		t.Fatal(err)
	}
	msg := init.Marshal(nil)
	gen.AddMACs(msg, now)
	return msg
}

func TestMAC1(t *testing.T) {
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	checkerB := NewCookieChecker(p.b.Public)
	msg := signedInitiation(t, p, NewCookieGenerator(p.b.Public), t0, 1)
	if !checkerB.CheckMAC1(msg) {
		t.Fatal("valid mac1 refused")
	}
	var zero [16]byte
	if string(msg[MessageInitiationSize-16:]) != string(zero[:]) {
		t.Fatal("mac2 set without a cookie")
	}
	if NewCookieChecker(p.a.Public).CheckMAC1(msg) {
		t.Fatal("mac1 for b accepted by a checker for a")
	}
	wrongKey := signedInitiation(t, p, NewCookieGenerator(p.a.Public), t0, 1)
	if checkerB.CheckMAC1(wrongKey) {
		t.Fatal("mac1 keyed with the wrong public key accepted")
	}
	for _, i := range []int{0, 4, 50, MessageInitiationSize - 32, MessageInitiationSize - 17} {
		bad := append([]byte(nil), msg...)
		bad[i] ^= 1
		if checkerB.CheckMAC1(bad) {
			t.Errorf("mac1 accepted with byte %d changed", i)
		}
	}
	// mac2 is not covered by mac1.
	bad := append([]byte(nil), msg...)
	bad[MessageInitiationSize-1] ^= 1
	if !checkerB.CheckMAC1(bad) {
		t.Error("mac1 depends on mac2")
	}
	if checkerB.CheckMAC1(msg[:100]) || checkerB.CheckMAC1(nil) {
		t.Error("mac1 accepted on a message of the wrong size")
	}

	// Responses carry mac1 keyed with the initiator's key.
	if _, err := p.b.ConsumeInitiation(wireInitiation(t, mustUnmarshalInit(t, msg)), t0, p.lookupB); err != nil {
		t.Fatal(err)
	}
	resp, _ := p.hb.CreateResponse(2)
	rmsg := resp.Marshal(nil)
	NewCookieGenerator(p.a.Public).AddMACs(rmsg, t0)
	if !NewCookieChecker(p.a.Public).CheckMAC1(rmsg) {
		t.Fatal("response mac1 refused")
	}
	if checkerB.CheckMAC1(rmsg) {
		t.Fatal("response mac1 accepted with the wrong key")
	}
}

func mustUnmarshalInit(t *testing.T, b []byte) *Initiation {
	t.Helper()
	var m Initiation
	if err := m.Unmarshal(b); err != nil {
		t.Fatal(err)
	}
	return &m
}

func TestCookieRoundTrip(t *testing.T) {
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	checker := NewCookieChecker(p.b.Public)
	gen := NewCookieGenerator(p.b.Public)
	src := netip.MustParseAddrPort("192.0.2.7:51820")
	now := t0

	if err := gen.ConsumeReply(&CookieReply{}, now); !errors.Is(err, ErrNoMAC1) {
		t.Fatalf("reply before any message: %v", err)
	}
	msg := signedInitiation(t, p, gen, now, 42)
	if checker.CheckMAC2(msg, src, now) {
		t.Fatal("mac2 valid before any cookie was given")
	}
	reply, err := checker.CreateReply(msg, 42, src, now)
	if err != nil {
		t.Fatal(err)
	}
	if reply.Receiver != 42 {
		t.Fatalf("reply receiver %d", reply.Receiver)
	}
	var wired CookieReply
	if err := wired.Unmarshal(reply.Marshal(nil)); err != nil {
		t.Fatal(err)
	}
	// A tampered reply is refused and does not use up the expected reply.
	bad := wired
	bad.Cookie[0] ^= 1
	if err := gen.ConsumeReply(&bad, now); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered reply: %v", err)
	}
	if err := gen.ConsumeReply(&wired, now); err != nil {
		t.Fatalf("ConsumeReply: %v", err)
	}
	if err := gen.ConsumeReply(&wired, now); !errors.Is(err, ErrNoMAC1) {
		t.Fatalf("second reply to one message: %v", err)
	}

	now = now.Add(time.Second)
	msg = signedInitiation(t, p, gen, now, 43)
	if !checker.CheckMAC1(msg) {
		t.Fatal("mac1 refused with cookie")
	}
	if !checker.CheckMAC2(msg, src, now) {
		t.Fatal("mac2 with the cookie refused")
	}
	for _, other := range []string{"192.0.2.8:51820", "192.0.2.7:51821", "[2001:db8::7]:51820"} {
		if checker.CheckMAC2(msg, netip.MustParseAddrPort(other), now) {
			t.Errorf("mac2 accepted from %s", other)
		}
	}
	// IPv4-mapped IPv6 is the same source.
	if !checker.CheckMAC2(msg, netip.MustParseAddrPort("[::ffff:192.0.2.7]:51820"), now) {
		t.Error("mac2 refused from the IPv4-mapped form of the source")
	}
	tampered := append([]byte(nil), msg...)
	tampered[10] ^= 1
	if checker.CheckMAC2(tampered, src, now) {
		t.Error("mac2 accepted on a changed message")
	}
	// The secret expires: mac2 is no longer valid.
	if checker.CheckMAC2(msg, src, t0.Add(CookieRefreshTime+time.Nanosecond)) {
		t.Error("mac2 accepted after the secret expired")
	}
	// The generator stops sending mac2 once its cookie is old.
	late := t0.Add(CookieRefreshTime)
	msg = signedInitiation(t, p, gen, late, 44)
	var zero [16]byte
	if string(msg[MessageInitiationSize-16:]) != string(zero[:]) {
		t.Error("mac2 sent with an expired cookie")
	}
	// A new reply after expiry rotates the secret; old cookies no longer work.
	reply2, err := checker.CreateReply(msg, 44, src, late.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.ConsumeReply(reply2, late.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	msg = signedInitiation(t, p, gen, late.Add(2*time.Second), 45)
	if !checker.CheckMAC2(msg, src, late.Add(2*time.Second)) {
		t.Error("mac2 with the renewed cookie refused")
	}
}

func TestCookieReplyBoundToMAC1(t *testing.T) {
	p := newPair(t, keys.Preshared{}, keys.Preshared{})
	checker := NewCookieChecker(p.b.Public)
	gen := NewCookieGenerator(p.b.Public)
	src := netip.MustParseAddrPort("[2001:db8::1]:4000")
	m1 := signedInitiation(t, p, gen, t0, 1)
	_ = signedInitiation(t, p, gen, t0, 2) // gen now expects a reply to this one
	reply, err := checker.CreateReply(m1, 1, src, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.ConsumeReply(reply, t0); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("reply to an older message: %v", err)
	}
	// A reply from a checker of another identity cannot be decrypted.
	m3 := signedInitiation(t, p, gen, t0, 3)
	reply, _ = NewCookieChecker(p.a.Public).CreateReply(m3, 3, src, t0)
	if err := gen.ConsumeReply(reply, t0); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("reply from another identity: %v", err)
	}
	if _, err := checker.CreateReply(m3[:50], 3, src, t0); !errors.Is(err, ErrMessageSize) {
		t.Fatalf("CreateReply for a short message: %v", err)
	}
}

func TestSrcBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []byte
	}{
		{"192.0.2.1:51820", []byte{192, 0, 2, 1, 0x6c, 0xca}},
		{"[::ffff:192.0.2.1]:1", []byte{192, 0, 2, 1, 1, 0}},
		{"[2001:db8::2]:258", []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 1}},
	} {
		b, n := srcBytes(netip.MustParseAddrPort(tc.in))
		if string(b[:n]) != string(tc.want) {
			t.Errorf("srcBytes(%s) = % x, want % x", tc.in, b[:n], tc.want)
		}
	}
}
