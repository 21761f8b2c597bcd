package prefixtable

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"testing"
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func addr(s string) netip.Addr  { return netip.MustParseAddr(s) }

func TestLookupTable(t *testing.T) {
	var tb Table[string]
	for _, p := range []string{
		"0.0.0.0/0", "10.0.0.0/8", "10.10.0.0/16", "10.10.0.2/32", "10.10.0.0/24",
		"192.0.2.0/24", "192.0.2.128/25", "198.51.100.7/32",
		"fd00::/8", "fd10::/64", "fd10::1/128", "::ffff:0:0/96", "2001:db8::/32",
	} {
		tb.Insert(pfx(p), p)
	}
	tests := []struct {
		addr string
		want string // "" means no match
	}{
		{"10.10.0.2", "10.10.0.2/32"},
		{"10.10.0.3", "10.10.0.0/24"},
		{"10.10.1.3", "10.10.0.0/16"},
		{"10.11.1.3", "10.0.0.0/8"},
		{"11.0.0.1", "0.0.0.0/0"},
		{"0.0.0.0", "0.0.0.0/0"},
		{"255.255.255.255", "0.0.0.0/0"},
		{"192.0.2.127", "192.0.2.0/24"},
		{"192.0.2.128", "192.0.2.128/25"},
		{"198.51.100.7", "198.51.100.7/32"},
		{"198.51.100.8", "0.0.0.0/0"},
		{"fd10::1", "fd10::1/128"},
		{"fd10::2", "fd10::/64"},
		{"fd10:0:0:1::2", "fd00::/8"},
		{"fe80::1", ""},
		{"::", ""},
		{"2001:db8:ffff::1", "2001:db8::/32"},
		// IPv4-mapped addresses are IPv6 and are not unmapped.
		{"::ffff:10.10.0.2", "::ffff:0:0/96"},
		// Zones are ignored.
		{"fd10::1%eth0", "fd10::1/128"},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			a := addr(tc.addr)
			v, ok := tb.Lookup(a)
			if tc.want == "" {
				if ok {
					t.Fatalf("Lookup(%v) = %q, want no match", a, v)
				}
				return
			}
			if !ok || v != tc.want {
				t.Fatalf("Lookup(%v) = %q, %v; want %q", a, v, ok, tc.want)
			}
			p, v2, ok := tb.LookupPrefix(a)
			if !ok || v2 != tc.want || p != pfx(tc.want) {
				t.Fatalf("LookupPrefix(%v) = %v, %q, %v; want %s", a, p, v2, ok, tc.want)
			}
			raw := a.AsSlice()
			v3, ok := tb.LookupBytes(raw)
			if !ok || v3 != tc.want {
				t.Fatalf("LookupBytes(%v) = %q, %v; want %q", raw, v3, ok, tc.want)
			}
		})
	}
}

// TestDefaultRoutes covers the /0 prefixes an exit node is given: alone,
// under longer prefixes inserted before or after them, over a branch point
// at the root, and deleted from either end of the nesting. ops are applied
// in order: "+p" inserts p (with value p), "-p" deletes it and must find it.
func TestDefaultRoutes(t *testing.T) {
	tests := []struct {
		name string
		ops  []string
		len  int
		want map[string]string // address → longest prefix, "" for none
	}{
		{"alone", []string{"+0.0.0.0/0", "+::/0"}, 2, map[string]string{
			"0.0.0.0": "0.0.0.0/0", "203.0.113.7": "0.0.0.0/0", "255.255.255.255": "0.0.0.0/0",
			"::": "::/0", "2001:db8:ffff::7": "::/0", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": "::/0",
			// A mapped address is IPv6: ::/0 has it, 0.0.0.0/0 never.
			"::ffff:203.0.113.7": "::/0",
		}},
		{"inserted last, nested longer stay", []string{"+10.20.5.0/24", "+10.20.0.0/16", "+10.10.0.3/32", "+0.0.0.0/0",
			"+fd10::3/128", "+fd20::/48", "+::/0"}, 7, map[string]string{
			"10.20.5.9": "10.20.5.0/24", "10.20.9.9": "10.20.0.0/16", "10.10.0.3": "10.10.0.3/32",
			"10.10.0.4": "0.0.0.0/0", "203.0.113.7": "0.0.0.0/0",
			"fd10::3": "fd10::3/128", "fd20::1": "fd20::/48", "fd10::4": "::/0", "2001:db8:ffff::7": "::/0",
		}},
		{"inserted first", []string{"+0.0.0.0/0", "+::/0", "+10.20.0.0/16", "+10.20.5.0/24", "+fd20::/48"}, 5, map[string]string{
			"10.20.5.9": "10.20.5.0/24", "10.20.9.9": "10.20.0.0/16", "203.0.113.7": "0.0.0.0/0",
			"fd20::1": "fd20::/48", "2001:db8:ffff::7": "::/0",
		}},
		{"over a branch point at the root", []string{"+0.0.0.0/1", "+128.0.0.0/1", "+::/1", "+8000::/1", "+0.0.0.0/0", "+::/0"}, 6, map[string]string{
			"1.2.3.4": "0.0.0.0/1", "203.0.113.7": "128.0.0.0/1", "::1": "::/1", "ff02::1": "8000::/1",
		}},
		{"deleted, longer stay", []string{"+10.20.0.0/16", "+0.0.0.0/0", "+fd20::/48", "+::/0", "-0.0.0.0/0", "-::/0"}, 2, map[string]string{
			"10.20.9.9": "10.20.0.0/16", "203.0.113.7": "", "fd20::1": "fd20::/48", "2001:db8:ffff::7": "",
		}},
		{"deleted from over a branch point", []string{"+0.0.0.0/1", "+128.0.0.0/1", "+0.0.0.0/0", "-0.0.0.0/0"}, 2, map[string]string{
			"1.2.3.4": "0.0.0.0/1", "203.0.113.7": "128.0.0.0/1",
		}},
		{"longer deleted, /0 stays", []string{"+0.0.0.0/0", "+10.20.0.0/16", "+10.20.5.0/24", "+::/0", "+fd20::/48",
			"-10.20.5.0/24", "-10.20.0.0/16", "-fd20::/48"}, 2, map[string]string{
			"10.20.5.9": "0.0.0.0/0", "10.20.9.9": "0.0.0.0/0", "fd20::1": "::/0",
		}},
		{"one family only", []string{"+0.0.0.0/0"}, 1, map[string]string{
			"203.0.113.7": "0.0.0.0/0", "2001:db8:ffff::7": "", "::ffff:203.0.113.7": "",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tb Table[string]
			for _, op := range tc.ops {
				p := pfx(op[1:])
				if op[0] == '+' {
					tb.Insert(p, p.String())
				} else if !tb.Delete(p) {
					t.Fatalf("Delete(%s) = false", p)
				}
			}
			if tb.Len() != tc.len {
				t.Errorf("Len = %d, want %d", tb.Len(), tc.len)
			}
			for a, want := range tc.want {
				ad := addr(a)
				v, ok := tb.Lookup(ad)
				vb, okb := tb.LookupBytes(ad.AsSlice())
				p, vp, okp := tb.LookupPrefix(ad)
				if want == "" {
					if ok || okb || okp {
						t.Errorf("%s: Lookup %q %v, LookupBytes %q %v, LookupPrefix %v %v; want no match", a, v, ok, vb, okb, p, okp)
					}
					continue
				}
				if !ok || v != want || !okb || vb != want || !okp || vp != want || p != pfx(want) {
					t.Errorf("%s: Lookup %q %v, LookupBytes %q %v, LookupPrefix %v %q %v; want %s", a, v, ok, vb, okb, p, vp, okp, want)
				}
			}
		})
	}
}

func TestEmptyAndInvalid(t *testing.T) {
	var tb Table[int]
	if _, ok := tb.Lookup(addr("1.2.3.4")); ok {
		t.Fatal("empty table matched")
	}
	if _, _, ok := tb.LookupPrefix(addr("::1")); ok {
		t.Fatal("empty table matched")
	}
	if _, ok := tb.LookupBytes([]byte{1, 2, 3, 4}); ok {
		t.Fatal("empty table matched")
	}
	if tb.Len() != 0 {
		t.Fatalf("Len = %d", tb.Len())
	}
	for range tb.All {
		t.Fatal("empty table yielded")
	}
	if tb.Delete(pfx("1.0.0.0/8")) {
		t.Fatal("Delete on empty table reported true")
	}
	// Invalid input is ignored, never a panic.
	tb.Insert(netip.Prefix{}, 1)
	tb.Insert(netip.PrefixFrom(addr("1.2.3.4"), 33), 1)
	tb.Insert(netip.PrefixFrom(addr("1.2.3.4"), -1), 1)
	if tb.Len() != 0 {
		t.Fatalf("invalid prefixes inserted: Len = %d", tb.Len())
	}
	tb.Insert(pfx("0.0.0.0/0"), 7)
	tb.Insert(pfx("::/0"), 8)
	for _, a := range []netip.Addr{{}} {
		if _, ok := tb.Lookup(a); ok {
			t.Fatal("zero Addr matched")
		}
		if _, _, ok := tb.LookupPrefix(a); ok {
			t.Fatal("zero Addr matched")
		}
	}
	for _, raw := range [][]byte{nil, {1, 2, 3}, make([]byte, 5), make([]byte, 17)} {
		if _, ok := tb.LookupBytes(raw); ok {
			t.Fatalf("LookupBytes(%d bytes) matched", len(raw))
		}
	}
	if tb.Delete(netip.Prefix{}) {
		t.Fatal("Delete(invalid) reported true")
	}
}

func TestInsertMasksAndReplaces(t *testing.T) {
	var tb Table[int]
	tb.Insert(pfx("10.1.2.3/16"), 1)
	tb.Insert(pfx("10.1.0.0/16"), 2) // same prefix once masked: replaces
	if tb.Len() != 1 {
		t.Fatalf("Len = %d, want 1", tb.Len())
	}
	p, v, ok := tb.LookupPrefix(addr("10.1.200.1"))
	if !ok || v != 2 || p != pfx("10.1.0.0/16") {
		t.Fatalf("LookupPrefix = %v %d %v", p, v, ok)
	}
	if !tb.Delete(pfx("10.1.9.9/16")) {
		t.Fatal("Delete with host bits did not find the masked prefix")
	}
	if tb.Len() != 0 {
		t.Fatalf("Len = %d after delete", tb.Len())
	}
}

func TestDeleteKeepsOthers(t *testing.T) {
	var tb Table[string]
	all := []string{"10.0.0.0/8", "10.0.0.0/16", "10.128.0.0/16", "10.0.0.0/24", "10.0.1.0/24", "11.0.0.0/8"}
	for _, p := range all {
		tb.Insert(pfx(p), p)
	}
	// Deleting an absent prefix that is a branch point in the trie
	// (10.0.0.0/23 is where 10.0.0.0/24 and 10.0.1.0/24 diverge) changes nothing.
	for _, p := range []string{"10.0.0.0/23", "10.0.0.0/9", "12.0.0.0/8", "10.0.0.0/25"} {
		if tb.Delete(pfx(p)) {
			t.Fatalf("Delete(%s) of absent prefix reported true", p)
		}
	}
	for i, p := range all {
		if !tb.Delete(pfx(p)) {
			t.Fatalf("Delete(%s) = false", p)
		}
		if tb.Delete(pfx(p)) {
			t.Fatalf("second Delete(%s) = true", p)
		}
		// Each remaining prefix is still found by its own last address,
		// which no longer remaining prefix contains.
		for _, q := range all[i+1:] {
			last := lastAddr(pfx(q))
			got, gv, ok := tb.LookupPrefix(last)
			if !ok || gv != q || got != pfx(q) {
				t.Fatalf("after deleting %v: LookupPrefix(%s) = %v %q %v, want %s", all[:i+1], last, got, gv, ok, q)
			}
		}
	}
	if tb.Len() != 0 {
		t.Fatalf("Len = %d", tb.Len())
	}
}

// lastAddr returns the highest address in p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestAllOrderAndStop(t *testing.T) {
	var tb Table[int]
	in := []string{"fd00::/8", "10.0.0.0/8", "10.0.0.0/16", "0.0.0.0/0", "192.0.2.0/24", "10.0.0.1/32", "::/0", "9.0.0.0/8"}
	for i, p := range in {
		tb.Insert(pfx(p), i)
	}
	var got []string
	for p := range tb.All {
		got = append(got, p.String())
	}
	want := []string{"0.0.0.0/0", "9.0.0.0/8", "10.0.0.0/8", "10.0.0.0/16", "10.0.0.1/32", "192.0.2.0/24", "::/0", "fd00::/8"}
	if !slices.Equal(got, want) {
		t.Fatalf("All order = %v\nwant %v", got, want)
	}
	n := 0
	for range tb.All {
		n++
		if n == 3 {
			break
		}
	}
	if n != 3 {
		t.Fatalf("early break visited %d", n)
	}
}

// ref is the brute-force reference: a map scanned linearly.
type ref map[netip.Prefix]int

// entry is one reference prefix; a []entry is scanned linearly, which is
// faster than iterating the map when many lookups share one table state.
type entry struct {
	p netip.Prefix
	v int
}

func (r ref) linear() []entry {
	l := make([]entry, 0, len(r))
	for p, v := range r {
		l = append(l, entry{p, v})
	}
	return l
}

// lookupLinear is the brute-force longest match: every prefix is tested.
func lookupLinear(l []entry, a netip.Addr) (netip.Prefix, int, bool) {
	var best entry
	found := false
	for _, e := range l {
		if e.p.Contains(a) && (!found || e.p.Bits() > best.p.Bits()) {
			best, found = e, true
		}
	}
	return best.p, best.v, found
}

// sortedRef lists r in the order All promises.
func (r ref) sorted() []netip.Prefix {
	ps := make([]netip.Prefix, 0, len(r))
	for p := range r {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return ps
}

// randGen makes random prefixes that share structure, so nesting and
// divergence at every depth actually occur.
type randGen struct {
	r     *rand.Rand
	bases []netip.Addr
}

func newRandGen(seed uint64) *randGen {
	g := &randGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for range 8 {
		g.bases = append(g.bases, g.randAddr(false), g.randAddr(true))
	}
	return g
}

func (g *randGen) randAddr(v6 bool) netip.Addr {
	if v6 {
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], g.r.Uint64())
		binary.BigEndian.PutUint64(b[8:], g.r.Uint64())
		return netip.AddrFrom16(b)
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], g.r.Uint32())
	return netip.AddrFrom4(b)
}

// near returns a copy of a with the bits after the first keep bits randomized.
func (g *randGen) near(a netip.Addr, keep int) netip.Addr {
	r := g.randAddr(a.Is6())
	if keep >= a.BitLen() {
		return a
	}
	rb, ab := r.AsSlice(), a.AsSlice()
	for i := range keep {
		mask := byte(0x80) >> (i % 8)
		rb[i/8] = rb[i/8]&^mask | ab[i/8]&mask
	}
	out, _ := netip.AddrFromSlice(rb)
	return out
}

func (g *randGen) prefix() netip.Prefix {
	v6 := g.r.IntN(2) == 1
	maxBits := 32
	if v6 {
		maxBits = 128
	}
	var bitsN int
	switch g.r.IntN(6) {
	case 0:
		bitsN = 0
	case 1:
		bitsN = maxBits // host route
	default:
		bitsN = g.r.IntN(maxBits + 1)
	}
	var a netip.Addr
	if g.r.IntN(4) == 0 {
		a = g.randAddr(v6)
	} else {
		b := g.bases[g.r.IntN(len(g.bases)/2)*2+boolInt(v6)]
		a = g.near(b, g.r.IntN(maxBits+1))
	}
	return netip.PrefixFrom(a, bitsN).Masked()
}

func (g *randGen) addrFor(l []entry) netip.Addr {
	if len(l) > 0 && g.r.IntN(3) != 0 {
		// Somewhere inside (or just past) an existing prefix.
		p := l[g.r.IntN(len(l))].p
		return g.near(p.Addr(), p.Bits()+g.r.IntN(3)-1)
	}
	return g.randAddr(g.r.IntN(2) == 1)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func checkAgainst(t *testing.T, tb *Table[int], l []entry, a netip.Addr) {
	t.Helper()
	wp, wv, wok := lookupLinear(l, a)
	gp, gv, gok := tb.LookupPrefix(a)
	if gok != wok || gp != wp || gv != wv {
		t.Fatalf("LookupPrefix(%v) = %v %d %v; reference %v %d %v", a, gp, gv, gok, wp, wv, wok)
	}
	v, ok := tb.Lookup(a)
	if ok != wok || v != wv {
		t.Fatalf("Lookup(%v) = %d %v; reference %d %v", a, v, ok, wv, wok)
	}
	v, ok = tb.LookupBytes(a.AsSlice())
	if ok != wok || v != wv {
		t.Fatalf("LookupBytes(%v) = %d %v; reference %d %v", a, v, ok, wv, wok)
	}
}

func checkStructure(t *testing.T, tb *Table[int], r ref) {
	t.Helper()
	if tb.Len() != len(r) {
		t.Fatalf("Len = %d, reference %d", tb.Len(), len(r))
	}
	var got []netip.Prefix
	for p, v := range tb.All {
		if r[p] != v {
			t.Fatalf("All yielded %v=%d, reference has %d", p, v, r[p])
		}
		got = append(got, p)
	}
	if want := r.sorted(); !slices.Equal(got, want) {
		t.Fatalf("All = %v\nreference %v", got, want)
	}
}

func TestRandomAgainstReference(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			g := newRandGen(seed)
			var tb Table[int]
			r := ref{}
			for i := range 3000 {
				p := g.prefix()
				tb.Insert(p, i)
				r[p] = i
			}
			checkStructure(t, &tb, r)
			l := r.linear()
			for range 5000 {
				checkAgainst(t, &tb, l, g.addrFor(l))
			}
			// Delete about half, including absent prefixes, then recheck.
			keys := r.sorted()
			g.r.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
			for _, p := range keys[:len(keys)/2] {
				if !tb.Delete(p) {
					t.Fatalf("Delete(%v) = false", p)
				}
				delete(r, p)
			}
			for range 500 {
				p := g.prefix()
				_, present := r[p]
				if got := tb.Delete(p); got != present {
					t.Fatalf("Delete(%v) = %v, reference present=%v", p, got, present)
				}
				delete(r, p)
			}
			checkStructure(t, &tb, r)
			l = r.linear()
			for range 5000 {
				checkAgainst(t, &tb, l, g.addrFor(l))
			}
			// Delete everything.
			for p := range r {
				if !tb.Delete(p) {
					t.Fatalf("Delete(%v) = false", p)
				}
			}
			if tb.Len() != 0 {
				t.Fatalf("Len = %d after deleting all", tb.Len())
			}
			if s := tb.snap.Load(); s.v4 != nil || s.v6 != nil {
				t.Fatal("nodes left after deleting every prefix")
			}
		})
	}
}

// TestConcurrent runs lookups against a table being changed; under -race it
// proves the snapshot scheme is sound, and it checks that every lookup sees a
// consistent table: the permanent /8 always matches, and the /24 that comes
// and goes is seen either whole or not at all.
func TestConcurrent(t *testing.T) {
	var tb Table[int]
	tb.Insert(pfx("10.0.0.0/8"), 8)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := addr("10.1.2.3")
			for {
				select {
				case <-stop:
					return
				default:
				}
				v, ok := tb.Lookup(a)
				if !ok || (v != 8 && v != 24) {
					errs <- fmt.Errorf("Lookup = %d %v", v, ok)
					return
				}
				if n := tb.Len(); n < 1 || n > 3 {
					errs <- fmt.Errorf("Len = %d", n)
					return
				}
			}
		}()
	}
	for i := range 2000 {
		tb.Insert(pfx("10.1.2.0/24"), 24)
		tb.Insert(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i), 0}), 24), i)
		tb.Delete(pfx("10.1.2.0/24"))
		tb.Delete(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 200, byte(i), 0}), 24))
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestReplace(t *testing.T) {
	var tb, next Table[string]
	tb.Insert(pfx("10.0.0.0/8"), "old")
	tb.Insert(pfx("fd10::/64"), "old")
	next.Insert(pfx("10.1.0.0/16"), "new")
	tb.Replace(&next)
	if v, ok := tb.Lookup(addr("10.1.2.3")); !ok || v != "new" {
		t.Fatalf("after Replace: Lookup(10.1.2.3) = %q %v", v, ok)
	}
	for _, a := range []string{"10.2.0.1", "fd10::1"} {
		if v, ok := tb.Lookup(addr(a)); ok {
			t.Fatalf("after Replace: %s still found (%q)", a, v)
		}
	}
	if tb.Len() != 1 {
		t.Fatalf("Len = %d, want 1", tb.Len())
	}
	// The two tables share nodes but not changes.
	next.Insert(pfx("10.2.0.0/16"), "later")
	tb.Insert(pfx("192.0.2.0/24"), "own")
	if _, ok := tb.Lookup(addr("10.2.0.1")); ok {
		t.Fatal("a change to the source after Replace reached the table")
	}
	if _, ok := next.Lookup(addr("192.0.2.1")); ok {
		t.Fatal("a change to the table after Replace reached the source")
	}
	var empty Table[string]
	tb.Replace(&empty)
	if tb.Len() != 0 {
		t.Fatalf("Replace with an empty table left %d prefixes", tb.Len())
	}
}

// TestReplaceIsAtomic: a reader of the whole table (All) sees every prefix
// from one version, never some old and some new.
func TestReplaceIsAtomic(t *testing.T) {
	var versions [2]Table[int]
	for v := range versions {
		for i := range 64 {
			versions[v].Insert(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 0}), 16), v)
		}
		if v == 1 {
			versions[v].Insert(pfx("fd00::/8"), v)
		}
	}
	var tb Table[int]
	tb.Replace(&versions[0])
	stop := make(chan struct{})
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				seen := map[int]int{}
				for _, v := range tb.All {
					seen[v]++
				}
				if len(seen) != 1 || (seen[0] != 64 && seen[1] != 65) {
					errs <- fmt.Errorf("a reader saw a mix of versions: %v", seen)
					return
				}
			}
		}()
	}
	for i := range 2000 {
		tb.Replace(&versions[i%2])
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// FuzzTable decodes the input as a sequence of insert, delete, lookup and
// structure-check operations and checks every result against the reference.
func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 0, 8, 2, 10, 1, 2, 3, 32})
	f.Add([]byte{0, 0, 0, 0, 0, 0, 4, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0})
	f.Add([]byte{
		0x80, 0xfd, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 128,
		0x82, 0xfd, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 64,
		0x83, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 8,
	})
	f.Fuzz(func(t *testing.T, data []byte) {
		var tb Table[int]
		r := ref{}
		for i := 0; len(data) > 0; i++ {
			op := data[0]
			data = data[1:]
			n := 4
			if op&0x80 != 0 {
				n = 16
			}
			if len(data) < n+1 {
				return
			}
			a, _ := netip.AddrFromSlice(data[:n])
			bitsN := int(data[n])
			data = data[n+1:]
			p := netip.PrefixFrom(a, bitsN).Masked() // invalid when bitsN is too big
			switch op & 3 {
			case 0:
				tb.Insert(p, i)
				if p.IsValid() {
					r[p] = i
				}
			case 1:
				_, present := r[p]
				if got := tb.Delete(p); got != present {
					t.Fatalf("Delete(%v) = %v, reference %v", p, got, present)
				}
				delete(r, p)
			case 2:
				checkAgainst(t, &tb, r.linear(), a)
			case 3:
				checkStructure(t, &tb, r)
			}
		}
		checkStructure(t, &tb, r)
	})
}
