// Benchmarks for the per-packet lookup path and for table size.
//
// Results on the development box (2-core linux/amd64 AMD EPYC, go1.26,
// `go test -count=3 -run XXX -bench . -benchmem ./prefixtable`; the box was
// shared with other builds, so the range over the 3 runs is given). Tables of
// 10,000 distinct random prefixes (lengths /8../32 for IPv4, /16../128 for
// IPv6); lookups of random addresses, about half inside a stored prefix. At
// this size the time is likely dominated by cache misses on the nodes of a
// path: compare BenchmarkLookupSmall, a mesh-sized table (64 host routes +
// 16 /24s) that stays in cache.
//
//	BenchmarkLookup/v4         150-212 ns/op   0 B/op   0 allocs/op
//	BenchmarkLookup/v6         156-181 ns/op   0 B/op   0 allocs/op
//	BenchmarkLookupBytes/v4     97-173 ns/op   0 B/op   0 allocs/op
//	BenchmarkLookupBytes/v6    146-269 ns/op   0 B/op   0 allocs/op
//	BenchmarkLookupSmall        31-38  ns/op   0 B/op   0 allocs/op
//	BenchmarkTableMemory/v4    792,426 bytes/table (~79 bytes per prefix, int values)
//	BenchmarkTableMemory/v6    958,840 bytes/table (~96 bytes per prefix, int values)
package prefixtable

import (
	"net/netip"
	"runtime"
	"testing"
)

const benchPrefixes = 10000

// benchData returns benchPrefixes distinct random prefixes and lookup
// addresses: half inside a random stored prefix, half uniformly random.
func benchData(v6 bool) ([]netip.Prefix, []netip.Addr) {
	g := newRandGen(42)
	minBits, maxBits := 8, 32
	if v6 {
		minBits, maxBits = 16, 128
	}
	seen := make(map[netip.Prefix]bool, benchPrefixes)
	ps := make([]netip.Prefix, 0, benchPrefixes)
	for len(ps) < benchPrefixes {
		p := netip.PrefixFrom(g.randAddr(v6), minBits+g.r.IntN(maxBits-minBits+1)).Masked()
		if !seen[p] {
			seen[p] = true
			ps = append(ps, p)
		}
	}
	as := make([]netip.Addr, 4096)
	for i := range as {
		if i%2 == 0 {
			p := ps[g.r.IntN(len(ps))]
			as[i] = g.near(p.Addr(), p.Bits())
		} else {
			as[i] = g.randAddr(v6)
		}
	}
	return ps, as
}

func build(ps []netip.Prefix) *Table[int] {
	tb := new(Table[int])
	for i, p := range ps {
		tb.Insert(p, i)
	}
	return tb
}

func BenchmarkLookup(b *testing.B) {
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"v4", false}, {"v6", true}} {
		b.Run(fam.name, func(b *testing.B) {
			ps, as := benchData(fam.v6)
			tb := build(ps)
			hits := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, ok := tb.Lookup(as[i%len(as)]); ok {
					hits++
				}
			}
			if hits == 0 {
				b.Fatal("no lookup matched; benchmark data is broken")
			}
		})
	}
}

func BenchmarkLookupSmall(b *testing.B) {
	var tb Table[int]
	g := newRandGen(7)
	var as []netip.Addr
	for i := range 64 {
		// A /32 host route per peer plus a /24 subnet for a quarter of them.
		a := netip.AddrFrom4([4]byte{10, 10, byte(i / 256), byte(i)})
		tb.Insert(netip.PrefixFrom(a, 32), i)
		as = append(as, a)
		if i%4 == 0 {
			s := netip.AddrFrom4([4]byte{10, 20, byte(i), 0})
			tb.Insert(netip.PrefixFrom(s, 24), i)
			as = append(as, g.near(s, 24))
		}
	}
	hits := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, ok := tb.Lookup(as[i%len(as)]); ok {
			hits++
		}
	}
	if hits != b.N {
		b.Fatalf("%d of %d lookups matched", hits, b.N)
	}
}

func BenchmarkLookupBytes(b *testing.B) {
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"v4", false}, {"v6", true}} {
		b.Run(fam.name, func(b *testing.B) {
			ps, as := benchData(fam.v6)
			tb := build(ps)
			raw := make([][]byte, len(as))
			for i, a := range as {
				raw[i] = a.AsSlice()
			}
			hits := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, ok := tb.LookupBytes(raw[i%len(raw)]); ok {
					hits++
				}
			}
			if hits == 0 {
				b.Fatal("no lookup matched; benchmark data is broken")
			}
		})
	}
}

// BenchmarkTableMemory reports the live heap bytes one table of 10,000
// prefixes (with int values) occupies, as bytes/table.
func BenchmarkTableMemory(b *testing.B) {
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"v4", false}, {"v6", true}} {
		b.Run(fam.name, func(b *testing.B) {
			ps, _ := benchData(fam.v6)
			var total uint64
			var keep *Table[int]
			for range b.N {
				var before, after runtime.MemStats
				keep = nil // measure one table at a time
				runtime.GC()
				runtime.ReadMemStats(&before)
				keep = build(ps)
				runtime.GC()
				runtime.ReadMemStats(&after)
				total += after.HeapAlloc - before.HeapAlloc
				runtime.KeepAlive(keep)
			}
			if keep.Len() != benchPrefixes {
				b.Fatalf("Len = %d", keep.Len())
			}
			b.ReportMetric(float64(total)/float64(b.N), "bytes/table")
		})
	}
}

// BenchmarkLookupDuringReplace is BenchmarkLookupSmall while another
// goroutine keeps replacing the table's contents: lookups stay lock-free
// and allocation-free. The writer here replaces in a tight loop, the worst
// case (about 100 ns/op against 23 on the 2-core box: the snapshot pointer's
// cache line moves between the cores at every Replace); a reload replaces
// once.
func BenchmarkLookupDuringReplace(b *testing.B) {
	var versions [2]Table[int]
	for v := range versions {
		for i := range 64 {
			versions[v].Insert(netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 10, 0, byte(i)}), 32), v)
		}
	}
	var tb Table[int]
	tb.Replace(&versions[0])
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			tb.Replace(&versions[i%2])
		}
	}()
	a := [4]byte{10, 10, 0, 7}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, ok := tb.LookupBytes(a[:]); !ok {
			b.Fatal("lookup missed during Replace")
		}
	}
	b.StopTimer()
	close(stop)
	<-done
}
