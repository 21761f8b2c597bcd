package keys

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
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
	back, err := ParsePrivate(k.Base64())
	if err != nil || back != k {
		t.Fatalf("round trip: %v", err)
	}
}

// TestSecretsDoNotPrint checks that no fmt verb, slog handler or JSON
// encoding of a private or preshared key, alone or inside a struct, shows the
// key in base64 or hex; only Base64 does.
func TestSecretsDoNotPrint(t *testing.T) {
	priv, err := NewPrivate()
	if err != nil {
		t.Fatal(err)
	}
	var psk Preshared
	for i := range psk {
		psk[i] = byte(0xa0 + i)
	}
	type holder struct {
		Name string
		Key  Private
		PSK  Preshared
	}
	type secret interface{ Base64() string }
	for _, tc := range []struct {
		name string
		key  secret
		raw  []byte
		v    any // what is printed
	}{
		{"Private", priv, priv[:], priv},
		{"*Private", priv, priv[:], &priv},
		{"Preshared", psk, psk[:], psk},
		{"struct with Private", priv, priv[:], holder{Name: "x", Key: priv}},
		{"*struct with Preshared", psk, psk[:], &holder{Name: "x", PSK: psk}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out []string
			for _, verb := range []string{"%v", "%s", "%+v", "%#v", "%x", "%X", "%q", "%d"} {
				out = append(out, verb+" "+fmt.Sprintf(verb, tc.v))
			}
			out = append(out, "Sprint "+fmt.Sprint(tc.v), "Sprintln "+fmt.Sprintln(tc.v))
			var text, js bytes.Buffer
			slog.New(slog.NewTextHandler(&text, nil)).Info("m", "k", tc.v, slog.Any("any", tc.v))
			slog.New(slog.NewJSONHandler(&js, nil)).Info("m", "k", tc.v, slog.Any("any", tc.v))
			out = append(out, "slog text "+text.String(), "slog json "+js.String())
			if b, err := json.Marshal(tc.v); err == nil {
				out = append(out, "json "+string(b))
			}
			forbidden := []string{
				tc.key.Base64(),
				strings.TrimRight(tc.key.Base64(), "="),
				hex.EncodeToString(tc.raw),
				strings.ToUpper(hex.EncodeToString(tc.raw)),
				fmt.Sprint(tc.raw), // the bytes as decimal numbers
				strings.Trim(strings.ReplaceAll(fmt.Sprint(tc.raw), " ", ","), "[]"),
			}
			for _, o := range out {
				for _, f := range forbidden {
					if strings.Contains(o, f) {
						t.Errorf("%s shows the key (%.12s...)", o, f)
					}
				}
				if !strings.Contains(o, "redacted") {
					t.Errorf("%s: no placeholder", o)
				}
			}
		})
	}
	back, err := ParsePreshared(psk.Base64())
	if err != nil || back != psk {
		t.Errorf("Preshared.Base64 does not round-trip: %v", err)
	}
}
