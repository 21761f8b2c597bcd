package meshstore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/peer-vpn/peer/config"
)

// Store is a mesh in etcd, at one URL.
type Store struct {
	target Target
	cli    *clientv3.Client
}

// Open connects to the etcd of t. The connection is made lazily: a
// missing etcd shows as the first call's error.
func Open(t Target, o Options) (*Store, error) {
	cfg, err := clientConfig(t, o)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd at %s: %w", strings.Join(t.Endpoints, ","), err)
	}
	return &Store{target: t, cli: cli}, nil
}

// Close closes the connection.
func (s *Store) Close() error { return s.cli.Close() }

// Target returns where the mesh is.
func (s *Store) Target() Target { return s.target }

// Client returns the etcd client, for the watch built on Snapshot.
func (s *Store) Client() *clientv3.Client { return s.cli }

// ConflictError is a push refused by -if-revision: the mesh changed since.
type ConflictError struct {
	Want, Current int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("push refused: the mesh is at revision %d, not %d (someone else pushed since; pull or diff again)", e.Current, e.Want)
}

// Pulled is a mesh read from etcd at one revision.
type Pulled struct {
	// YAML is the mesh file, peers in name order, with a leading comment
	// naming the URL and the revision.
	YAML     []byte
	Mesh     *config.Mesh // YAML parsed; File is the URL
	Revision int64        // ModRevision of PREFIX/mesh
	// Signer is the key whose signature verified over exactly the keys
	// of this revision, nil when SignErr says why there is none
	// (ErrUnsigned, or wrapping ErrBadSignature).
	Signer  ed25519.PublicKey
	SignErr error
}

// read gets every key of the mesh at one revision: values and, for
// PREFIX/mesh, its ModRevision (0 when there is no mesh), and the value of
// PREFIX/signature (nil when none).
func (s *Store) read(ctx context.Context) (kv map[string][]byte, rev int64, sig []byte, err error) {
	resp, err := s.cli.Get(ctx, s.target.Prefix+"/", clientv3.WithPrefix())
	if err != nil {
		return nil, 0, nil, fmt.Errorf("etcd at %s: %w", strings.Join(s.target.Endpoints, ","), err)
	}
	kv = map[string][]byte{}
	for _, e := range resp.Kvs {
		k := string(e.Key)
		if k == s.target.Prefix+signatureKey {
			sig = e.Value
			continue
		}
		if k == s.target.Prefix+settingsKey {
			rev = e.ModRevision
		} else if !strings.HasPrefix(k, s.target.Prefix+peersDir) {
			continue // not ours: left for later parts of the layout
		}
		kv[k] = e.Value
	}
	return kv, rev, sig, nil
}

// Pull reads the mesh with one Get, checks it with config.Parse and
// verifies its signature. The leading comment says who signed it: "#
// signed by KEY" only when the signature verified.
func (s *Store) Pull(ctx context.Context) (*Pulled, error) {
	kv, rev, sig, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	signer, serr := verify(s.target.Prefix, kv, sig)
	head := fmt.Sprintf("# mesh from %s at revision %d (peer mesh pull)\n", s.target.URL(), rev)
	switch {
	case serr == nil:
		head += "# signed by " + config.SignerString(signer)
	case errors.Is(serr, ErrUnsigned):
		head += "# unsigned"
	default:
		head += "# NOT signed: " + serr.Error()
		signer = nil
	}
	doc, m, err := decode(s.target, kv, head)
	if err != nil {
		return nil, err
	}
	return &Pulled{YAML: doc, Mesh: m, Revision: rev, Signer: signer, SignErr: serr}, nil
}

// Snapshot returns the mesh file and its revision. A watch of the prefix
// from revision+1 sees every later push: each push rewrites PREFIX/mesh.
func (s *Store) Snapshot(ctx context.Context) (yaml []byte, revision int64, err error) {
	p, err := s.Pull(ctx)
	if err != nil {
		return nil, 0, err
	}
	return p.YAML, p.Revision, nil
}

// Entry is one key a push writes or deletes. Old is nil for a new key, New
// nil for a deleted one.
type Entry struct {
	Key      string
	Old, New []byte
}

// Diff is what a push changes (or changed).
type Diff struct {
	// Revision is the mesh's revision the diff was computed against, or
	// after Push, the revision the push made.
	Revision                int64
	Added, Removed, Changed []string // peer names, sorted
	Settings                bool     // PREFIX/mesh holds other settings
	Entries                 []Entry  // the keys behind the above, sorted
}

// Empty reports whether the push changes nothing (but the revision).
func (d *Diff) Empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 && !d.Settings
}

// Summary is the one-line account: "added a, b; removed c; changed d;
// settings changed", or "no changes".
func (d *Diff) Summary() string {
	if d.Empty() {
		return "no changes"
	}
	var parts []string
	for _, x := range []struct {
		verb  string
		names []string
	}{{"added", d.Added}, {"removed", d.Removed}, {"changed", d.Changed}} {
		if len(x.names) > 0 {
			parts = append(parts, x.verb+" "+strings.Join(x.names, ", "))
		}
	}
	if d.Settings {
		parts = append(parts, "settings changed")
	}
	return strings.Join(parts, "; ")
}

// diff compares the stored keys with the wanted ones.
func (s *Store) diff(cur, want map[string][]byte, rev int64) *Diff {
	d := &Diff{Revision: rev}
	keys := make([]string, 0, len(cur)+len(want))
	for k := range cur {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := cur[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		old, had := cur[k]
		nw, has := want[k]
		if had && has && bytes.Equal(old, nw) {
			continue
		}
		d.Entries = append(d.Entries, Entry{Key: k, Old: old, New: nw})
		name, isPeer := strings.CutPrefix(k, s.target.Prefix+peersDir)
		switch {
		case !isPeer:
			d.Settings = true
		case !had:
			d.Added = append(d.Added, name)
		case !has:
			d.Removed = append(d.Removed, name)
		default:
			d.Changed = append(d.Changed, name)
		}
	}
	return d
}

// Check refuses, with FILE:LINE errors, a mesh (valid for config) that
// means something else once stored: see checkOrder. Push and Diff call it.
func Check(m *config.Mesh) error { return checkOrder(m) }

// prepare checks m for the store and renders it.
func (s *Store) prepare(m *config.Mesh) (map[string][]byte, error) {
	if err := Check(m); err != nil {
		return nil, err
	}
	return encode(s.target.Prefix, m), nil
}

// Diff returns what Push(m) would change now, writing nothing.
func (s *Store) Diff(ctx context.Context, m *config.Mesh) (*Diff, error) {
	want, err := s.prepare(m)
	if err != nil {
		return nil, err
	}
	cur, rev, _, err := s.read(ctx)
	if err != nil {
		return nil, err
	}
	return s.diff(cur, want, rev), nil
}

// NoRevision is Push's ifRevision when the push is unconditional.
const NoRevision = -1

// maxPushTries bounds the retries of an unconditional push that lost a race
// with another push between its read and its transaction.
const maxPushTries = 5

// Push writes m (checked by config.Load or config.Parse) in one
// transaction. With ifRevision other than NoRevision it is refused with a
// *ConflictError unless the mesh is still at that revision (0: no mesh
// yet). The Diff returned says what changed and the new revision. The push
// deletes PREFIX/signature in the same transaction, so that a signature
// never covers a mesh it was not made for; PushSigned writes a new one.
func (s *Store) Push(ctx context.Context, m *config.Mesh, ifRevision int64) (*Diff, error) {
	return s.push(ctx, m, ifRevision, nil)
}

// PushSigned is Push that also writes, in the same transaction,
// PREFIX/signature: key's Ed25519 signature over exactly the keys of the
// mesh pushed (see message).
func (s *Store) PushSigned(ctx context.Context, m *config.Mesh, ifRevision int64, key ed25519.PrivateKey) (*Diff, error) {
	return s.push(ctx, m, ifRevision, key)
}

func (s *Store) push(ctx context.Context, m *config.Mesh, ifRevision int64, key ed25519.PrivateKey) (*Diff, error) {
	want, err := s.prepare(m)
	if err != nil {
		return nil, err
	}
	meshKey := s.target.Prefix + settingsKey
	for try := 0; ; try++ {
		cur, rev, _, err := s.read(ctx)
		if err != nil {
			return nil, err
		}
		if ifRevision != NoRevision && rev != ifRevision {
			return nil, &ConflictError{Want: ifRevision, Current: rev}
		}
		d := s.diff(cur, want, rev)
		var ops []clientv3.Op
		for _, e := range d.Entries {
			if e.New == nil {
				ops = append(ops, clientv3.OpDelete(e.Key))
			} else if e.Key != meshKey {
				ops = append(ops, clientv3.OpPut(e.Key, string(e.New)))
			}
		}
		// Always, so that its ModRevision is this push's revision.
		ops = append(ops, clientv3.OpPut(meshKey, string(want[meshKey])))
		// The mesh after the push is exactly want: the signature covers it.
		if sigKey := s.target.Prefix + signatureKey; key != nil {
			ops = append(ops, clientv3.OpPut(sigKey, string(sign(s.target.Prefix, want, key))))
		} else {
			ops = append(ops, clientv3.OpDelete(sigKey))
		}
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(meshKey), "=", rev)).
			Then(ops...).
			Commit()
		if errors.Is(err, rpctypes.ErrTooManyOps) {
			// One transaction is what keeps readers from seeing half a
			// mesh; splitting it silently would give that up.
			return nil, fmt.Errorf("etcd at %s refused the push as one transaction of %d operations (etcd's --max-txn-ops, 128 unless set): start etcd with --max-txn-ops %d or more, or push the mesh in steps of fewer changed peers: %w",
				strings.Join(s.target.Endpoints, ","), len(ops), len(ops), err)
		}
		if err != nil {
			return nil, fmt.Errorf("etcd at %s: %w", strings.Join(s.target.Endpoints, ","), err)
		}
		if resp.Succeeded {
			d.Revision = resp.Header.Revision
			return d, nil
		}
		if try+1 == maxPushTries {
			return nil, errors.New("push: the mesh kept changing under us; try again")
		}
	}
}
