package config

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"

	"gopkg.in/yaml.v3"
)

// ParseSigner decodes an Ed25519 public key written as base64 (44
// characters, the look of a WireGuard key), as trusted_signers lists them.
func ParseSigner(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not base64: %v", s, err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%q is %d bytes, an Ed25519 public key is %d", s, len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// SignerString is the base64 form of an Ed25519 public key.
func SignerString(k ed25519.PublicKey) string { return base64.StdEncoding.EncodeToString(k) }

// ReadSigningKey reads an Ed25519 signing key file: the base64 of its
// 32-byte seed on one line, with the checks of a private key file (a
// regular file owned by root or this user, no group or other bits), since
// whoever holds it can sign a mesh every trusting node applies.
func ReadSigningKey(path string) (ed25519.PrivateKey, error) {
	text, err := readSecret(path)
	if err != nil {
		return nil, &Error{File: path, Msg: "signing key file: " + bareError(err), Err: err}
	}
	b, err := base64.StdEncoding.Strict().DecodeString(text)
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("signing key file: want the base64 of a %d-byte Ed25519 seed (peer mesh signkey makes one)", ed25519.SeedSize)}
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// LoadTrust reads the trusted_signers of a local file, the trust anchor of
// a node whose mesh is in etcd (-trust FILE). The file is a mesh file, or a
// file holding only trusted_signers: other top-level keys of a mesh file
// are allowed and not checked (peer check does that), so the operator's own
// mesh file may serve. It must be a file only root or this user can change
// (see openTrusted), and the list must not be empty.
func LoadTrust(path string) ([]ed25519.PublicKey, error) {
	f, err := openTrusted(path, unsafeWriteBits)
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot use trust file: " + bareError(err), Err: err}
	}
	defer f.Close()
	data, err := readLimited(f, MaxFileSize, "a trust file is YAML text")
	if err != nil {
		return nil, &Error{File: path, Msg: "cannot read trust file: " + bareError(err), Err: err}
	}
	return parseTrust(path, data)
}

func parseTrust(path string, data []byte) ([]ed25519.PublicKey, error) {
	p := &parser{file: path, nameLine: map[int]int{}, keyLine: map[int]int{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{File: path, Msg: "the trust file is empty; it needs trusted_signers: [KEY...]"}
		}
		p.yamlError(err, data)
		return nil, p.errs
	}
	var root *yaml.Node
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		root = p.deref(doc.Content[0])
	}
	if root == nil || isNull(root) {
		p.errorf(doc.Line, "the trust file is empty; it needs trusted_signers: [KEY...]")
		return nil, p.errs
	}
	fs, ok := p.mapping(root, "the top level", "interface", "private_key_file", "capture", "log_level", "metrics", "trusted_signers", "peers")
	var out []ed25519.PublicKey
	if ok {
		f, has := fs["trusted_signers"]
		if has && !isNull(f.val) {
			out = p.signers(f)
		}
		if len(out) == 0 && len(p.errs) == 0 {
			line := root.Line
			if has {
				line = f.key.Line
			}
			p.errorf(line, "no trusted_signers: a trust file lists the public keys (peer mesh signpub) whose signed meshes this node accepts")
		}
	}
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *Error) int { return a.Line - b.Line })
		return nil, p.errs
	}
	return out, nil
}
