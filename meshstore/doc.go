// Package meshstore keeps a mesh in etcd, so that a fleet reads one mesh
// from one place instead of a file copied to every host: Push writes a
// checked mesh file, Pull and Snapshot read it back as a mesh file that
// config.Parse accepts, Diff says what a push would change.
//
// A mesh lives under a key prefix named by the URL
// (etcd://HOST:PORT[,HOST:PORT...]/PREFIX, or etcds:// for TLS; see
// ParseURL). Under PREFIX:
//
//	PREFIX/mesh          every setting but the peers (interface,
//	                     private_key_file, capture, log_level, metrics), as
//	                     the top level of a mesh file in YAML
//	PREFIX/peers/NAME    one peer's list item of peers:, as a YAML mapping
//	PREFIX/signature     "ed25519 PUBLIC SIGNATURE" (base64 both) when the
//	                     push was signed (peer mesh push -sign KEYFILE)
//
// One key per peer keeps a watch event, and a diff, as small as the change.
// Every push rewrites PREFIX/mesh, even when the settings are unchanged, in
// the same transaction as its peer keys, so the ModRevision of PREFIX/mesh
// is the revision of the whole mesh: what Pull reports, what -if-revision
// compares against, and what a watch can start after. Other keys under
// PREFIX are left alone and ignored, so later parts may add some.
//
// Decisions:
//
//   - The values are rendered from the parsed mesh, not copied from the
//     file: comments and layout are dropped, defaults are written out, and
//     two files that mean the same store the same bytes (so a push of what
//     Pull printed changes nothing).
//   - Peers are ordered by name when read from etcd, the one order every node
//     computes alike. The file order matters to config in one place: a pair
//     of peers uses the preshared_key_file of whichever is listed first, so
//     Push refuses a file whose pair would get another preshared key in name
//     order (both set different files and the file lists them against name
//     order).
//   - Paths are stored as config produced them: relative paths in the file
//     joined to the file's directory on the host that pushes. A path in etcd
//     is read on every host, where the pusher's working directory or mesh
//     file location mean nothing; an absolute path means the same file on
//     each, and Pull shows exactly what every node will open.
//   - Push is one etcd transaction (puts of new and changed peers, deletes of
//     removed ones, the settings key always) guarded by the ModRevision of
//     PREFIX/mesh it read, so no reader sees half a mesh and two pushers
//     cannot interleave.
//
// Signatures (issue 13: whoever can write etcd must not own the mesh):
//
//   - What is signed is a canonical byte string of exactly the keys of one
//     revision: a domain string, the prefix, then PREFIX/mesh and every
//     PREFIX/peers/NAME sorted by key, key and value each preceded by its
//     8-byte length. The values are already canonical (rendered from the
//     parsed mesh), so the same mesh always gives the same message; the
//     prefix in it keeps a signature from being replayed under another.
//   - PREFIX/signature is written in the transaction of the push it
//     covers; a push without a key deletes it in its transaction, so a
//     stale signature never covers a newer mesh. A key changed behind the
//     pusher's back makes the signature fail (ErrBadSignature).
//   - Pull verifies and says so in its leading comment ("# signed by KEY",
//     "# unsigned", "# NOT signed: why"); whom to trust is the reader's
//     business: a node takes its list from a local file, never from etcd.
package meshstore
