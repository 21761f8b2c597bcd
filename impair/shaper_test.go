package impair

import (
	"encoding/binary"
	"math"
	"slices"
	"testing"
	"time"
)

// run pushes n transport datagrams numbered 0..n-1 through a fresh shaper,
// one every step, flushes it and returns the numbers in the order sent.
func run(t *testing.T, cfg Config, n int, step time.Duration) ([]uint64, Counters) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var c dirCounters
	s := newShaper(cfg, 0, &c)
	var out []uint64
	send := func(d datagram) { out = append(out, binary.BigEndian.Uint64(d.buf[8:])) }
	now := time.Unix(0, 0)
	for i := range n {
		b := make([]byte, 16)
		b[0] = 4
		binary.BigEndian.PutUint64(b[8:], uint64(i))
		s.expire(now, send)
		s.push(datagram{buf: b, typ: TypeOf(b)}, now, send)
		now = now.Add(step)
	}
	s.flush(send)
	if len(s.held) != 0 || len(s.pending) != 0 {
		t.Fatalf("after flush: %d held, %d pending", len(s.held), len(s.pending))
	}
	return out, c[Transport].snapshot()
}

func TestShaperZeroConfigPassesThrough(t *testing.T) {
	out, c := run(t, Config{}, 1000, time.Microsecond)
	for i, v := range out {
		if v != uint64(i) {
			t.Fatalf("datagram %d sent as %d", v, i)
		}
	}
	if len(out) != 1000 || c.Received != 1000 || c.Lost+c.Duplicated+c.Reordered != 0 {
		t.Fatalf("sent %d, counters %+v", len(out), c)
	}
}

func TestShaperSameSeedSameDecisions(t *testing.T) {
	cfg := Config{Loss: 0.1, Duplicate: 0.05, Reorder: 8, ReorderShare: 0.3, Seed: 42}
	a, ca := run(t, cfg, 5000, time.Microsecond)
	b, cb := run(t, cfg, 5000, time.Microsecond)
	if !slices.Equal(a, b) || ca != cb {
		t.Fatal("two runs with one seed differ")
	}
	cfg.Seed = 43
	c, _ := run(t, cfg, 5000, time.Microsecond)
	if slices.Equal(a, c) {
		t.Fatal("seeds 42 and 43 gave the same run")
	}
}

// TestShaperRates checks that loss and duplication happen at the rates asked
// for (within 5 standard deviations of the binomial; the seed is fixed, so
// this is deterministic) and that what is counted is what happened.
func TestShaperRates(t *testing.T) {
	const n = 100_000
	for _, cfg := range []Config{
		{Loss: 0.1, Duplicate: 0.05, Seed: 1},
		{Loss: 0.1, Duplicate: 0.05, Reorder: 8, ReorderShare: 0.25, Seed: 2},
		{Loss: 0.5, Seed: 3},
		{Duplicate: 1, Seed: 4},
	} {
		out, c := run(t, cfg, n, time.Microsecond)
		within := func(name string, got uint64, trials int, p float64) {
			mean := float64(trials) * p
			sd := math.Sqrt(float64(trials) * p * (1 - p))
			if math.Abs(float64(got)-mean) > 5*sd+0.5 {
				t.Errorf("%+v: %s %d of %d, want about %.0f", cfg, name, got, trials, mean)
			}
		}
		within("lost", c.Lost, n, cfg.Loss)
		within("duplicated", c.Duplicated, n-int(c.Lost), cfg.Duplicate)
		seen := map[uint64]int{}
		for _, v := range out {
			seen[v]++
		}
		var twice uint64
		for _, k := range seen {
			if k == 2 {
				twice++
			} else if k != 1 {
				t.Fatalf("%+v: a datagram sent %d times", cfg, k)
			}
		}
		if uint64(n-len(seen)) != c.Lost || twice != c.Duplicated || uint64(len(out)) != c.Received-c.Lost+c.Duplicated {
			t.Errorf("%+v: %d missing, %d twice, %d sent; counters %+v", cfg, n-len(seen), twice, len(out), c)
		}
	}
}

// displacements returns, for each datagram sent, how many that arrived
// after it were sent before it (a Fenwick tree over arrival numbers).
func displacements(out []uint64) []int {
	var hi uint64
	for _, v := range out {
		hi = max(hi, v)
	}
	tree := make([]int, hi+2)
	sent := 0
	d := make([]int, len(out))
	for k, v := range out {
		le := 0 // sent so far with a number <= v
		for i := v + 1; i > 0; i -= i & -i {
			le += tree[i]
		}
		d[k] = sent - le
		for i := v + 1; i < uint64(len(tree)); i += i & -i {
			tree[i]++
		}
		sent++
	}
	return d
}

func TestShaperReorderWithinWindow(t *testing.T) {
	for _, window := range []int{2, 8, 32} {
		for _, share := range []float64{0.1, 0.5, 0.9} {
			cfg := Config{Reorder: window, ReorderShare: share, MaxHold: MaxDelay, Seed: uint64(window)}
			out, c := run(t, cfg, 20_000, time.Microsecond)
			if len(out) != 20_000 {
				t.Fatalf("window %d share %v: %d of 20000 sent", window, share, len(out))
			}
			most := slices.Max(displacements(out))
			if most > window-1 {
				t.Errorf("window %d share %v: a datagram overtaken by %d", window, share, most)
			}
			if most != window-1 {
				t.Errorf("window %d share %v: at most %d places, want some at %d", window, share, most, window-1)
			}
			within := math.Abs(float64(c.Reordered)-20_000*share) <= 5*math.Sqrt(20_000*share*(1-share))+0.5
			if !within {
				t.Errorf("window %d share %v: %d held back", window, share, c.Reordered)
			}
		}
	}
}

func TestShaperMaxHold(t *testing.T) {
	var c dirCounters
	s := newShaper(Config{Reorder: 8, ReorderShare: 1, MaxHold: time.Millisecond}, 0, &c)
	var out []datagram
	send := func(d datagram) { out = append(out, d) }
	t0 := time.Unix(0, 0)
	s.push(datagram{buf: []byte{4}, typ: Transport}, t0, send)
	s.push(datagram{buf: []byte{1}, typ: Initiation}, t0.Add(time.Microsecond), send)
	if len(out) != 0 {
		t.Fatal("sent at once with a reorder share of 1")
	}
	if due, ok := s.nextExpiry(); !ok || !due.Equal(t0.Add(time.Millisecond)) {
		t.Fatalf("next expiry %v %v", due, ok)
	}
	s.expire(t0.Add(time.Millisecond-1), send)
	if len(out) != 0 {
		t.Fatal("released before MaxHold")
	}
	s.expire(t0.Add(time.Millisecond), send)
	if len(out) != 1 || out[0].typ != Transport {
		t.Fatalf("after MaxHold of the first: %d sent", len(out))
	}
	s.expire(t0.Add(time.Hour), send)
	if len(out) != 2 || out[1].typ != Initiation {
		t.Fatalf("after MaxHold of both: %d sent", len(out))
	}
	if _, ok := s.nextExpiry(); ok {
		t.Fatal("expiry left with nothing held")
	}
	if c[Transport].reordered.Load() != 1 || c[Initiation].reordered.Load() != 1 {
		t.Fatal("held datagrams not counted by type")
	}
}

func TestTypeOf(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		want MessageType
	}{
		{nil, Other}, {[]byte{0}, Other}, {[]byte{1, 0, 0, 0}, Initiation}, {[]byte{2}, Response},
		{[]byte{3}, Cookie}, {[]byte{4, 9, 9}, Transport}, {[]byte{5}, Other}, {[]byte{255}, Other},
	} {
		if got := TypeOf(tc.b); got != tc.want {
			t.Errorf("TypeOf(%v) = %v, want %v", tc.b, got, tc.want)
		}
	}
	if s := MessageType(99).String(); s != "MessageType(99)" {
		t.Errorf("String of an unknown type: %q", s)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Loss: 0.1, Duplicate: 0.05, Reorder: 8, ReorderShare: 0.25, Delay: time.Millisecond}, true},
		{Config{Loss: -0.1}, false},
		{Config{Loss: 1.1}, false},
		{Config{Loss: math.NaN()}, false},
		{Config{Duplicate: 2}, false},
		{Config{Reorder: 8}, false},
		{Config{ReorderShare: 0.5}, false},
		{Config{Reorder: 1, ReorderShare: 0.5}, false},
		{Config{Reorder: MaxReorder + 1, ReorderShare: 0.5}, false},
		{Config{Reorder: -1}, false},
		{Config{Delay: -time.Second}, false},
		{Config{Delay: MaxDelay + 1}, false},
		{Config{MaxHold: -1}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
}
