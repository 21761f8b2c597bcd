package noise

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func fill(b []byte, seed byte) {
	for i := range b {
		b[i] = seed + byte(i)
	}
}

func TestMessageRoundTrip(t *testing.T) {
	var in Initiation
	in.Sender = 0xdeadbeef
	fill(in.Ephemeral[:], 1)
	fill(in.Static[:], 2)
	fill(in.Timestamp[:], 3)
	fill(in.MAC1[:], 4)
	fill(in.MAC2[:], 5)
	b := in.Marshal([]byte("prefix"))
	if len(b) != 6+MessageInitiationSize || string(b[:6]) != "prefix" {
		t.Fatalf("Marshal did not append: %d bytes", len(b))
	}
	b = b[6:]
	if !bytes.Equal(b[:8], []byte{1, 0, 0, 0, 0xef, 0xbe, 0xad, 0xde}) || b[8] != 1 || b[MessageInitiationSize-1] != 5+15 {
		t.Fatalf("initiation layout % x", b[:12])
	}
	var out Initiation
	if err := out.Unmarshal(b); err != nil || out != in {
		t.Fatalf("initiation round trip: %v", err)
	}

	var r Response
	r.Sender, r.Receiver = 7, 0x01020304
	fill(r.Ephemeral[:], 10)
	fill(r.Empty[:], 11)
	fill(r.MAC1[:], 12)
	fill(r.MAC2[:], 13)
	rb := r.Marshal(nil)
	if len(rb) != MessageResponseSize || !bytes.Equal(rb[:12], []byte{2, 0, 0, 0, 7, 0, 0, 0, 4, 3, 2, 1}) || rb[12] != 10 {
		t.Fatalf("response layout % x", rb[:13])
	}
	var r2 Response
	if err := r2.Unmarshal(rb); err != nil || r2 != r {
		t.Fatalf("response round trip: %v", err)
	}

	var c CookieReply
	c.Receiver = 99
	fill(c.Nonce[:], 20)
	fill(c.Cookie[:], 21)
	cb := c.Marshal(make([]byte, 0, 64))
	if len(cb) != MessageCookieReplySize || cb[0] != 3 || cb[4] != 99 || cb[8] != 20 || cb[32] != 21 {
		t.Fatalf("cookie reply layout % x", cb[:33])
	}
	var c2 CookieReply
	if err := c2.Unmarshal(cb); err != nil || c2 != c {
		t.Fatalf("cookie reply round trip: %v", err)
	}
}

func TestUnmarshalRefusals(t *testing.T) {
	type unmarshaler interface{ Unmarshal([]byte) error }
	good := map[string][]byte{
		"initiation":   (&Initiation{}).Marshal(nil),
		"response":     (&Response{}).Marshal(nil),
		"cookie reply": (&CookieReply{}).Marshal(nil),
	}
	for name, m := range map[string]unmarshaler{"initiation": &Initiation{}, "response": &Response{}, "cookie reply": &CookieReply{}} {
		b := good[name]
		if err := m.Unmarshal(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		for _, tc := range []struct {
			desc string
			b    []byte
			want error
		}{
			{"nil", nil, ErrMessageSize},
			{"short", b[:len(b)-1], ErrMessageSize},
			{"long", append(append([]byte(nil), b...), 0), ErrMessageSize},
			{"wrong type", append([]byte{4}, b[1:]...), ErrMessageType},
			{"reserved", append([]byte{b[0], 0, 1}, b[3:]...), ErrMessageType},
		} {
			if err := m.Unmarshal(tc.b); !errors.Is(err, tc.want) {
				t.Errorf("%s %s: %v, want %v", name, tc.desc, err, tc.want)
			}
		}
	}
}

func TestType(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want uint32
		ok   bool
	}{
		{nil, 0, false},
		{[]byte{1, 0, 0}, 0, false},
		{[]byte{1, 0, 0, 0}, 1, true},
		{[]byte{4, 0, 0, 0, 9, 9}, 4, true},
		{[]byte{200, 0, 0, 0}, 200, true},
		{[]byte{1, 1, 0, 0}, 0, false},
		{[]byte{1, 0, 0, 1}, 0, false},
	} {
		if got, ok := Type(tc.in); got != tc.want || ok != tc.ok {
			t.Errorf("Type(% x) = %d %v, want %d %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestParseTransportHeader(t *testing.T) {
	msg := make([]byte, 32)
	copy(msg, []byte{4, 0, 0, 0, 1, 2, 3, 4, 1, 0, 0, 0, 0, 0, 0, 0x80})
	r, c, ok := ParseTransportHeader(msg)
	if !ok || r != 0x04030201 || c != 0x8000000000000001 {
		t.Fatalf("ParseTransportHeader = %x %x %v", r, c, ok)
	}
	if _, _, ok := ParseTransportHeader(msg[:31]); ok {
		t.Error("accepted a message shorter than a keepalive")
	}
	msg[0] = 1
	if _, _, ok := ParseTransportHeader(msg); ok {
		t.Error("accepted type 1")
	}
	msg[0], msg[3] = 4, 1
	if _, _, ok := ParseTransportHeader(msg); ok {
		t.Error("accepted non-zero reserved byte")
	}
}

func TestPaddedSize(t *testing.T) {
	for _, tc := range []struct{ n, mtu, want int }{
		{0, 1420, 0},
		{1, 1420, 16},
		{16, 1420, 16},
		{17, 1420, 32},
		{1400, 1420, 1408},
		{1410, 1420, 1420}, // 1424 would exceed the mtu
		{1420, 1420, 1420},
		{1500, 1420, 1500}, // oversized packet: no padding, never shortened
		{17, 0, 32},        // no mtu: pad freely
		{-1, 1420, 0},
	} {
		if got := PaddedSize(tc.n, tc.mtu); got != tc.want {
			t.Errorf("PaddedSize(%d, %d) = %d, want %d", tc.n, tc.mtu, got, tc.want)
		}
	}
}

func TestTAI64N(t *testing.T) {
	got := TAI64N(time.Unix(0, 0))
	want := [12]byte{0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0}
	if got != want {
		t.Fatalf("TAI64N(epoch) = % x", got)
	}
	got = TAI64N(time.Unix(1, 999999999))
	want = [12]byte{0x40, 0, 0, 0, 0, 0, 0, 0x0b, 0x3b, 0x9a, 0xc9, 0xff}
	if got != want {
		t.Fatalf("TAI64N(1.999999999) = % x", got)
	}
	// Labels order like times, also across zones.
	times := []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Unix(0, 0),
		t0,
		t0.Add(time.Nanosecond),
		t0.In(time.FixedZone("x", 3600)).Add(time.Second),
	}
	for i := 1; i < len(times); i++ {
		a, b := TAI64N(times[i-1]), TAI64N(times[i])
		if bytes.Compare(a[:], b[:]) >= 0 {
			t.Errorf("TAI64N(%v) >= TAI64N(%v)", times[i-1], times[i])
		}
	}
	w := whitened(t0.Add(20*time.Millisecond + 5))
	if w.Nanosecond()%(1<<24) != 0 || w.After(t0.Add(20*time.Millisecond)) || !w.After(t0) {
		t.Errorf("whitened = %v", w)
	}
}
