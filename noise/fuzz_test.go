package noise

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/peer-vpn/peer/keys"
)

// Fixed keys, so that seeds in testdata/fuzz stay meaningful across runs.
var (
	fuzzKeyA = [32]byte{1, 2, 3, 4, 5, 6, 7, 8}
	fuzzKeyB = [32]byte{8, 7, 6, 5, 4, 3, 2, 1}
)

func fuzzLocals() (a, b *Local) {
	pa, pb := keys.Private(fuzzKeyA), keys.Private(fuzzKeyB)
	pa[0] &= 248
	pa[31] = pa[31]&127 | 64
	pb[0] &= 248
	pb[31] = pb[31]&127 | 64
	return NewLocal(pa), NewLocal(pb)
}

// fuzzKeypairs returns a sender and a receiver keypair sharing keys.
func fuzzKeypairs() (send, recv *Keypair) {
	send = newKeypair(fuzzKeyA, fuzzKeyB, 1, 0x11223344, true, t0)
	recv = newKeypair(fuzzKeyB, fuzzKeyA, 0x11223344, 1, false, t0)
	return send, recv
}

func FuzzInitiationUnmarshal(f *testing.F) {
	a, b := fuzzLocals()
	h, _ := NewHandshake(a, b.Public, keys.Preshared{})
	init, _ := h.CreateInitiation(t0, 1)
	f.Add(init.Marshal(nil))
	f.Add(make([]byte, MessageInitiationSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Initiation
		if err := m.Unmarshal(data); err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(nil), data) {
			t.Fatal("initiation does not round-trip")
		}
	})
}

func FuzzResponseUnmarshal(f *testing.F) {
	f.Add((&Response{Sender: 1, Receiver: 2}).Marshal(nil))
	f.Add([]byte{2, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Response
		if err := m.Unmarshal(data); err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(nil), data) {
			t.Fatal("response does not round-trip")
		}
	})
}

func FuzzCookieReplyUnmarshal(f *testing.F) {
	f.Add((&CookieReply{Receiver: 5}).Marshal(nil))
	f.Add([]byte{3, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m CookieReply
		if err := m.Unmarshal(data); err != nil {
			return
		}
		if !bytes.Equal(m.Marshal(nil), data) {
			t.Fatal("cookie reply does not round-trip")
		}
	})
}

func FuzzParseTransportHeader(f *testing.F) {
	send, _ := fuzzKeypairs()
	buf := make([]byte, 64)
	f.Add(buf[:send.Seal(buf, []byte("seed"), 3)])
	f.Add([]byte{4, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, c, ok := ParseTransportHeader(data)
		typ, tok := Type(data)
		if ok != (tok && typ == MessageTransportType && len(data) >= MessageKeepaliveSize) {
			t.Fatalf("ok = %v for type %d (%v), length %d", ok, typ, tok, len(data))
		}
		if !ok && (r != 0 || c != 0) {
			t.Fatal("values returned with ok = false")
		}
	})
}

func FuzzOpen(f *testing.F) {
	send, _ := fuzzKeypairs()
	for _, p := range []string{"", "x", "0123456789abcdef0123456789abcdef"} {
		buf := make([]byte, len(p)+MessageTransportOverhead)
		f.Add(buf[:send.Seal(buf, []byte(p), uint64(len(p)))])
	}
	f.Add([]byte{4, 0, 0, 0, 0x44, 0x33, 0x22, 0x11})
	f.Fuzz(func(t *testing.T, data []byte) {
		_, recv := fuzzKeypairs()
		orig := append([]byte(nil), data...)
		pt, c, err := recv.Open(nil, data)
		if !bytes.Equal(data, orig) {
			t.Fatal("Open changed its input")
		}
		if err != nil {
			if pt != nil || c != 0 {
				t.Fatal("values returned with an error")
			}
			return
		}
		if len(pt) != len(data)-MessageTransportOverhead {
			t.Fatalf("plaintext of %d bytes from a %d-byte message", len(pt), len(data))
		}
		// In place gives the same result.
		pt2, c2, err := recv.Open(data[MessageTransportHeaderSize:][:0], data)
		if err != nil || c2 != c || !bytes.Equal(pt2, pt) {
			t.Fatalf("in-place Open differs: %v", err)
		}
	})
}

func FuzzConsumeInitiation(f *testing.F) {
	a, b := fuzzLocals()
	h, _ := NewHandshake(a, b.Public, keys.Preshared{})
	init, _ := h.CreateInitiation(t0, 1)
	f.Add(init.Marshal(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Initiation
		if m.Unmarshal(data) != nil {
			return
		}
		a, b := fuzzLocals()
		hb, err := NewHandshake(b, a.Public, keys.Preshared{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.ConsumeInitiation(&m, t0, func(k keys.Public) *Handshake {
			if k == a.Public {
				return hb
			}
			return nil
		})
		if (err == nil) != (got == hb) {
			t.Fatalf("ConsumeInitiation = %p, %v", got, err)
		}
		checker := NewCookieChecker(b.Public)
		checker.CheckMAC1(data)
		checker.CheckMAC2(data, netip.MustParseAddrPort("192.0.2.1:1"), t0)
	})
}

func FuzzCookieReply(f *testing.F) {
	_, b := fuzzLocals()
	msg := (&Initiation{Sender: 1}).Marshal(nil)
	gen := NewCookieGenerator(b.Public)
	gen.AddMACs(msg, t0)
	reply, _ := NewCookieChecker(b.Public).CreateReply(msg, 1, netip.MustParseAddrPort("192.0.2.1:1"), t0)
	f.Add(reply.Marshal(nil))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m CookieReply
		if m.Unmarshal(data) != nil {
			return
		}
		gen := NewCookieGenerator(b.Public)
		gen.AddMACs(append([]byte(nil), msg...), t0)
		_ = gen.ConsumeReply(&m, t0)
	})
}
