package keys

import (
	"strings"
	"testing"
)

// Vector from RFC 7748 section 6.1 (Alice's key pair).
func TestPublicMatchesRFC7748(t *testing.T) {
	priv, err := ParsePrivate("dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := priv.Public().String(), "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="; got != want {
		t.Fatalf("public = %s, want %s", got, want)
	}
}

func TestParseRefusals(t *testing.T) {
	for _, s := range []string{"", "not base64!", "AAAA", strings.Repeat("A", 43) + "=="} {
		if _, err := ParsePublic(s); err == nil {
			t.Errorf("ParsePublic(%q) accepted", s)
		}
	}
}

func TestSharedSecretAgreesAndRejectsLowOrder(t *testing.T) {
	a, _ := NewPrivate()
	b, _ := NewPrivate()
	s1, err1 := a.SharedSecret(b.Public())
	s2, err2 := b.SharedSecret(a.Public())
	if err1 != nil || err2 != nil || s1 != s2 {
		t.Fatalf("shared secrets differ: %v %v", err1, err2)
	}
	if _, err := a.SharedSecret(Public{}); err == nil {
		t.Fatal("zero public key accepted")
	}
}

func TestRoundTrip(t *testing.T) {
	k, err := NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParsePrivate(k.String())
	if err != nil || back != k {
		t.Fatalf("round trip: %v", err)
	}
}
