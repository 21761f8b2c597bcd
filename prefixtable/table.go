// Package prefixtable implements a longest-prefix-match table keyed by
// net/netip prefixes.
//
// Each address family is stored in its own path-compressed binary trie, so a
// lookup visits at most one node per distinct prefix length on the path to the
// address (never a linear scan of all prefixes) and does not allocate.
//
// # Concurrency
//
// A Table is fully safe for concurrent use. Lookups are lock-free: they read an
// immutable snapshot through an atomic pointer. Insert and Delete serialize on a
// mutex, copy the nodes on the path they change (persistent trie), and publish
// the new snapshot atomically, so a concurrent Lookup sees either the table
// before or after a change, never a partial one. Mutations therefore allocate
// O(depth) small nodes each; lookups never allocate. A change of many prefixes
// at once is built in a separate table and published with Replace, so that too
// is seen whole or not at all.
//
// # Address families
//
// IPv4 prefixes and IPv6 prefixes live in separate tries. An IPv4-mapped IPv6
// address (::ffff:a.b.c.d) is an IPv6 address here: it matches IPv6 prefixes
// (such as ::ffff:0:0/96) and never IPv4 ones. Callers that want the mapped
// form treated as IPv4 must call netip.Addr.Unmap themselves. Zones are ignored.
package prefixtable

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Table maps prefixes to values of type V and answers longest-prefix-match
// queries. The zero value is an empty table ready to use. A Table must not be
// copied after first use. All methods are safe for concurrent use; see the
// package documentation for the cost model.
type Table[V any] struct {
	mu   sync.Mutex              // serializes writers
	snap atomic.Pointer[snap[V]] // current immutable contents; nil means empty
}

// snap is one immutable version of a table's contents.
type snap[V any] struct {
	v4, v6 *node[V]
	n      int
}

// key is an address or prefix as 128 big-endian bits. IPv4 values occupy the
// top 32 bits of hi.
type key struct{ hi, lo uint64 }

// node is a trie node. It stands for the prefix (k, bits); k has all bits past
// bits cleared. Children hold strictly longer prefixes inside this one, indexed
// by the bit at position bits. A node without a value (has == false) is a
// branch point and always has two children.
type node[V any] struct {
	k     key
	bits  uint8
	has   bool
	val   V
	child [2]*node[V]
}

// commonLen returns the number of leading bits a and b share (0..128).
func commonLen(a, b key) int {
	if x := a.hi ^ b.hi; x != 0 {
		return bits.LeadingZeros64(x)
	}
	return 64 + bits.LeadingZeros64(a.lo^b.lo)
}

// bitAt returns bit i (0 = most significant) of k. i must be below 128.
func bitAt(k key, i int) int {
	if i < 64 {
		return int(k.hi>>(63-i)) & 1
	}
	return int(k.lo>>(127-i)) & 1
}

// masked returns k with every bit from position n on cleared.
func masked(k key, n int) key {
	switch {
	case n <= 0:
		return key{}
	case n < 64:
		return key{hi: k.hi &^ (^uint64(0) >> n)}
	case n == 64:
		return key{hi: k.hi}
	case n < 128:
		return key{hi: k.hi, lo: k.lo &^ (^uint64(0) >> (n - 64))}
	}
	return k
}

func key4(b [4]byte) key { return key{hi: uint64(binary.BigEndian.Uint32(b[:])) << 32} }

func key16(b [16]byte) key {
	return key{hi: binary.BigEndian.Uint64(b[:8]), lo: binary.BigEndian.Uint64(b[8:])}
}

// addrKey converts a to its family's trie key. ok is false for the zero Addr.
func addrKey(a netip.Addr) (k key, v6 bool, ok bool) {
	switch {
	case a.Is4():
		return key4(a.As4()), false, true
	case a.Is6():
		return key16(a.As16()), true, true
	}
	return key{}, false, false
}

// prefixOf rebuilds the netip.Prefix a node stands for.
func prefixOf[V any](n *node[V], v6 bool) netip.Prefix {
	if v6 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], n.k.hi)
		binary.BigEndian.PutUint64(b[8:], n.k.lo)
		return netip.PrefixFrom(netip.AddrFrom16(b), int(n.bits))
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(n.k.hi>>32))
	return netip.PrefixFrom(netip.AddrFrom4(b), int(n.bits))
}

// load returns the current snapshot, never nil.
func (t *Table[V]) load() *snap[V] {
	if s := t.snap.Load(); s != nil {
		return s
	}
	return &snap[V]{}
}

// Insert adds p with value v, replacing the value of an equal prefix. Host
// bits of p are cleared first, so 10.1.2.3/16 is stored as 10.1.0.0/16.
// An invalid prefix (such as the zero netip.Prefix) is ignored; callers that
// accept prefixes from outside should check netip.Prefix.IsValid first.
func (t *Table[V]) Insert(p netip.Prefix, v V) {
	p = p.Masked()
	k, v6, ok := addrKey(p.Addr())
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.load()
	s := *old
	root := &s.v4
	if v6 {
		root = &s.v6
	}
	var added bool
	*root = insert(*root, k, p.Bits(), v, &added)
	if added {
		s.n++
	}
	t.snap.Store(&s)
}

// insert returns a copy of the subtrie n with (k, b) set to v. Nodes off the
// changed path are shared with n.
func insert[V any](n *node[V], k key, b int, v V, added *bool) *node[V] {
	if n == nil {
		*added = true
		return &node[V]{k: k, bits: uint8(b), has: true, val: v}
	}
	nb := int(n.bits)
	c := min(commonLen(k, n.k), b, nb)
	switch {
	case c == nb && b == nb: // same prefix
		c := *n
		*added = !n.has
		c.has, c.val = true, v
		return &c
	case c == nb: // inside n
		c := *n
		i := bitAt(k, nb)
		c.child[i] = insert(n.child[i], k, b, v, added)
		return &c
	case c == b: // contains n
		*added = true
		p := &node[V]{k: k, bits: uint8(b), has: true, val: v}
		p.child[bitAt(n.k, b)] = n
		return p
	default: // diverge at bit c: new branch point
		*added = true
		g := &node[V]{k: masked(k, c), bits: uint8(c)}
		g.child[bitAt(k, c)] = &node[V]{k: k, bits: uint8(b), has: true, val: v}
		g.child[bitAt(n.k, c)] = n
		return g
	}
}

// Replace makes t hold what src holds at the call, in one step: a concurrent
// Lookup on t sees its old contents or src's, never a mix, so a caller that
// changes many prefixes at once builds the new contents in a table of its own
// and publishes them with Replace. It costs O(1) and does not allocate: the
// immutable nodes are shared, and later changes to either table do not
// reach the other.
func (t *Table[V]) Replace(src *Table[V]) {
	s := src.snap.Load()
	t.mu.Lock()
	t.snap.Store(s)
	t.mu.Unlock()
}

// Delete removes the prefix equal to p (after clearing host bits) and reports
// whether it was present.
func (t *Table[V]) Delete(p netip.Prefix) bool {
	p = p.Masked()
	k, v6, ok := addrKey(p.Addr())
	if !ok {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.load()
	s := *old
	root := &s.v4
	if v6 {
		root = &s.v6
	}
	nr, removed := del(*root, k, p.Bits())
	if !removed {
		return false
	}
	*root = nr
	s.n--
	t.snap.Store(&s)
	return true
}

// del returns a copy of the subtrie n without (k, b), and whether it was there.
func del[V any](n *node[V], k key, b int) (*node[V], bool) {
	if n == nil {
		return nil, false
	}
	nb := int(n.bits)
	if nb > b || commonLen(k, n.k) < nb {
		return n, false
	}
	if nb == b {
		if !n.has {
			return n, false
		}
		switch {
		case n.child[0] != nil && n.child[1] != nil:
			c := *n
			var zero V
			c.has, c.val = false, zero
			return &c, true
		case n.child[0] != nil:
			return n.child[0], true
		default:
			return n.child[1], true // possibly nil
		}
	}
	i := bitAt(k, nb)
	nc, ok := del(n.child[i], k, b)
	if !ok {
		return n, false
	}
	if !n.has && nc == nil {
		// A branch point left with a single child is no longer needed.
		return n.child[1-i], true
	}
	c := *n
	c.child[i] = nc
	return &c, true
}

// lookup walks the trie from root and returns the deepest node with a value
// whose prefix contains k, or nil. maxBits is the family's address length.
func lookup[V any](n *node[V], k key, maxBits int) *node[V] {
	var best *node[V]
	for n != nil {
		nb := int(n.bits)
		if commonLen(k, n.k) < nb {
			break
		}
		if n.has {
			best = n
		}
		if nb >= maxBits {
			break
		}
		n = n.child[bitAt(k, nb)]
	}
	return best
}

// Lookup returns the value of the longest prefix containing a. It reports
// false if none does or a is the zero Addr. It does not allocate.
func (t *Table[V]) Lookup(a netip.Addr) (v V, ok bool) {
	s := t.snap.Load()
	if s == nil {
		return v, false
	}
	var n *node[V]
	switch {
	case a.Is4():
		n = lookup(s.v4, key4(a.As4()), 32)
	case a.Is6():
		n = lookup(s.v6, key16(a.As16()), 128)
	}
	if n == nil {
		return v, false
	}
	return n.val, true
}

// LookupBytes is Lookup for an address given as its raw network-order bytes,
// as found in an IP header: 4 bytes for IPv4, 16 for IPv6. Other lengths
// report false. It does not allocate and avoids building a netip.Addr, for use
// on the per-packet path, e.g. t.LookupBytes(pkt[16:20]).
func (t *Table[V]) LookupBytes(ip []byte) (v V, ok bool) {
	s := t.snap.Load()
	if s == nil {
		return v, false
	}
	var n *node[V]
	switch len(ip) {
	case 4:
		n = lookup(s.v4, key{hi: uint64(binary.BigEndian.Uint32(ip)) << 32}, 32)
	case 16:
		n = lookup(s.v6, key{hi: binary.BigEndian.Uint64(ip[:8]), lo: binary.BigEndian.Uint64(ip[8:])}, 128)
	}
	if n == nil {
		return v, false
	}
	return n.val, true
}

// LookupPrefix is Lookup that also returns the matching prefix.
func (t *Table[V]) LookupPrefix(a netip.Addr) (p netip.Prefix, v V, ok bool) {
	k, v6, valid := addrKey(a)
	if !valid {
		return p, v, false
	}
	s := t.load()
	root, maxBits := s.v4, 32
	if v6 {
		root, maxBits = s.v6, 128
	}
	n := lookup(root, k, maxBits)
	if n == nil {
		return p, v, false
	}
	return prefixOf(n, v6), n.val, true
}

// Len returns the number of prefixes in the table.
func (t *Table[V]) Len() int { return t.load().n }

// All yields every prefix and its value, IPv4 before IPv6, each family
// ordered by address and then by prefix length (shorter first), so a prefix
// comes before the prefixes it contains. It iterates over the contents at the
// time of the call; concurrent changes are not seen. Use it as
// `for p, v := range t.All`.
func (t *Table[V]) All(yield func(netip.Prefix, V) bool) {
	s := t.load()
	_ = walk(s.v4, false, yield) && walk(s.v6, true, yield)
}

// walk visits the subtrie n in pre-order and reports whether to continue.
func walk[V any](n *node[V], v6 bool, yield func(netip.Prefix, V) bool) bool {
	if n == nil {
		return true
	}
	if n.has && !yield(prefixOf(n, v6), n.val) {
		return false
	}
	return walk(n.child[0], v6, yield) && walk(n.child[1], v6, yield)
}
