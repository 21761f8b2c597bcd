package config

import (
	"crypto/ed25519"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// s1 and s2 are Ed25519 public keys for trusted_signers tests (any 32
// bytes decode; their signing keys are not needed).
var (
	s1 = base64.StdEncoding.EncodeToString(make([]byte, 32))
	s2 = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", 32)))
)

func TestTrustedSigners(t *testing.T) {
	m, err := Parse("mesh.yaml", []byte("trusted_signers: ["+s1+", "+s2+"]\n"+keyNames.Replace(two)))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.TrustedSigners) != 2 || SignerString(m.TrustedSigners[1]) != s2 {
		t.Fatalf("TrustedSigners = %v", m.TrustedSigners)
	}
	short := base64.StdEncoding.EncodeToString(make([]byte, 31))
	for _, tc := range []struct{ name, list, want string }{
		{"bad base64", "[not*base64]", `mesh.yaml:1: trusted_signers: "not*base64" is not base64`},
		{"wrong length", "[" + short + "]", "mesh.yaml:1: trusted_signers: \"" + short + "\" is 31 bytes, an Ed25519 public key is 32"},
		{"duplicate", "\n  - " + s1 + "\n  - " + s2 + "\n  - " + s1, "mesh.yaml:4: trusted_signers: " + s1 + " is listed twice (first on line 2)"},
		{"not a list", "{a: b}", "mesh.yaml:1: trusted_signers: expected a value or a list of values, got a mapping"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("mesh.yaml", []byte("trusted_signers: "+tc.list+"\n"+keyNames.Replace(two)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadTrust(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	// A mesh file serves as a trust file; its peers are not checked here.
	ks, err := LoadTrust(write("mesh.yaml", "trusted_signers: "+s1+"\npeers: []\n", 0o644))
	if err != nil || len(ks) != 1 || SignerString(ks[0]) != s1 {
		t.Fatalf("LoadTrust = %v, %v", ks, err)
	}
	for _, tc := range []struct{ name, text, want string }{
		{"none", "peers: []\n", "none.yaml:1: no trusted_signers"},
		{"empty", "trusted_signers: []\n", "empty.yaml:1: no trusted_signers"},
		{"typo", "trusted_signer: [" + s1 + "]\n", `did you mean "trusted_signers"?`},
		{"bad", "trusted_signers:\n  - abc\n", "bad.yaml:2: trusted_signers:"},
		{"void", "", "void.yaml: the trust file is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadTrust(write(tc.name+".yaml", tc.text, 0o644))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := LoadTrust(write("open.yaml", "trusted_signers: "+s1+"\n", 0o666)); err == nil || !strings.Contains(err.Error(), "mode 0666") {
		t.Fatalf("a trust file others can write: %v", err)
	}
}

func TestReadSigningKey(t *testing.T) {
	dir := t.TempDir()
	seed := make([]byte, ed25519.SeedSize)
	seed[0] = 7
	p := filepath.Join(dir, "sign.key")
	os.WriteFile(p, []byte(base64.StdEncoding.EncodeToString(seed)+"\n"), 0o600)
	k, err := ReadSigningKey(p)
	if err != nil || !k.Equal(ed25519.NewKeyFromSeed(seed)) {
		t.Fatalf("ReadSigningKey = %v", err)
	}
	os.Chmod(p, 0o644)
	if _, err := ReadSigningKey(p); err == nil || !strings.Contains(err.Error(), "mode 0644") {
		t.Fatalf("a signing key others can read: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "short.key"), []byte("AAAA\n"), 0o600)
	if _, err := ReadSigningKey(filepath.Join(dir, "short.key")); err == nil || !strings.Contains(err.Error(), "Ed25519 seed") {
		t.Fatalf("a short signing key: %v", err)
	}
}
