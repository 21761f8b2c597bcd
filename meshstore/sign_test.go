package meshstore

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"github.com/peer-vpn/peer/config"
)

func newSigner(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSignedPush covers a signature's life on a real etcd: a signed push
// verifies, a value written behind its back breaks it, a plain push
// removes it, and it does not verify under another prefix.
func TestSignedPush(t *testing.T) {
	s, srv := open(t)
	key := newSigner(t)
	pubKey := key.Public().(ed25519.PublicKey)
	m := load(t, meshText(t, []string{"alpha", "beta"}, "trusted_signers: ["+config.SignerString(pubKey)+"]\n"))
	if _, err := s.PushSigned(ctx(t), m, NoRevision, key); err != nil {
		t.Fatal(err)
	}
	p, err := s.Pull(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if p.SignErr != nil || !p.Signer.Equal(pubKey) {
		t.Fatalf("signed push: signer %v, %v", p.Signer, p.SignErr)
	}
	if want := "\n# signed by " + config.SignerString(pubKey) + "\n"; !strings.Contains(string(p.YAML), want) {
		t.Errorf("pull does not say who signed:\n%s", p.YAML)
	}
	if len(p.Mesh.TrustedSigners) != 1 || !p.Mesh.TrustedSigners[0].Equal(pubKey) {
		t.Errorf("trusted_signers did not round-trip: %v", p.Mesh.TrustedSigners)
	}

	// The signature covers the prefix: the same keys under another do not verify.
	kv, _, sig, err := s.read(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	moved := map[string][]byte{}
	for k, v := range kv {
		moved["/other"+strings.TrimPrefix(k, s.Target().Prefix)] = v
	}
	if _, err := verify("/other", moved, sig); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature replayed under another prefix: %v", err)
	}

	// A value written directly after the signed push.
	cli := srv.Client(t)
	beta := s.Target().Prefix + "/peers/beta"
	tampered := strings.Replace(string(kv[beta]), "192.0.2.2", "203.0.113.9", 1)
	if _, err := cli.Put(ctx(t), beta, tampered); err != nil {
		t.Fatal(err)
	}
	p, err = s.Pull(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(p.SignErr, ErrBadSignature) || p.Signer != nil {
		t.Fatalf("tampered peer key: signer %v, %v", p.Signer, p.SignErr)
	}
	if !strings.Contains(string(p.YAML), "\n# NOT signed: bad signature") {
		t.Errorf("pull of a tampered mesh:\n%s", p.YAML)
	}

	// A push without a key removes the signature in its transaction.
	d, err := s.Push(ctx(t), m, NoRevision)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := cli.Get(ctx(t), s.Target().Prefix+signatureKey)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 0 {
		t.Fatalf("a plain push left the signature %q", resp.Kvs[0].Value)
	}
	p, err = s.Pull(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(p.SignErr, ErrUnsigned) || !strings.Contains(string(p.YAML), "\n# unsigned\n") || p.Revision != d.Revision {
		t.Fatalf("after a plain push: %v\n%s", p.SignErr, p.YAML)
	}
}

func TestMessageIsUnambiguous(t *testing.T) {
	a := message("/p", map[string][]byte{"/p/mesh": []byte("ab"), "/p/peers/x": []byte("c")})
	b := message("/p", map[string][]byte{"/p/mesh": []byte("a"), "/p/peers/x": []byte("bc")})
	c := message("/p", map[string][]byte{"/p/mesh": []byte("ab"), "/p/peers/x": []byte("c")})
	if string(a) == string(b) || string(a) != string(c) {
		t.Fatal("message must tell values apart and be deterministic")
	}
}
