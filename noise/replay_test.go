package noise

import "testing"

func TestReplayFilter(t *testing.T) {
	const W = ReplayWindowSize
	type step struct {
		c    uint64
		want bool
	}
	for _, tc := range []struct {
		name  string
		limit uint64
		steps []step
	}{
		{"first zero", 1 << 20, []step{{0, true}, {0, false}}},
		{"in order", 1 << 20, []step{{0, true}, {1, true}, {2, true}, {2, false}, {1, false}}},
		{"out of order within window", 1 << 20, []step{{10, true}, {5, true}, {7, true}, {5, false}, {9, true}, {10, false}, {0, true}}},
		{"window edge", 1 << 20, []step{{W + 100, true}, {100, true}, {99, false}, {101, true}, {100, false}}},
		{"exactly window behind", 1 << 20, []step{{W, true}, {0, true}, {0, false}}},
		{"one beyond window", 1 << 20, []step{{W + 1, true}, {0, false}, {1, true}}},
		{"jump beyond window clears", 1 << 20, []step{
			{1, true}, {2, true}, {3 * W, true}, {3*W - 5, true}, {2, false}, {3 * W, false}, {3*W - 5, false},
		}},
		{"jump of one block boundary", 1 << 20, []step{{63, true}, {64, true}, {63, false}, {127, true}, {128, true}, {64, false}}},
		{"ring wrap keeps recent bits", 1 << 20, []step{
			{W - 1, true}, {W + 64, true}, {W - 1, false}, {W + 64, false}, {W + 63, true}, {130, true}, {130, false},
		}},
		{"limit", 100, []step{{99, true}, {100, false}, {101, false}, {98, true}}},
		{"reject after messages", RejectAfterMessages, []step{
			{RejectAfterMessages - 1, true}, {RejectAfterMessages, false}, {1<<64 - 1, false},
			{RejectAfterMessages - 2, true}, {RejectAfterMessages - 1, false}, {RejectAfterMessages - 1 - W, true},
			{RejectAfterMessages - 2 - W, false},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f ReplayFilter
			for i, s := range tc.steps {
				if got := f.ValidateCounter(s.c, tc.limit); got != s.want {
					t.Fatalf("step %d: ValidateCounter(%d) = %v, want %v", i, s.c, got, s.want)
				}
			}
		})
	}
}

func TestReplayFilterReset(t *testing.T) {
	var f ReplayFilter
	for c := uint64(0); c < 3000; c++ {
		if !f.ValidateCounter(c, 1<<20) {
			t.Fatalf("fresh counter %d refused", c)
		}
	}
	if f.ValidateCounter(1000, 1<<20) {
		t.Fatal("seen counter accepted")
	}
	f.Reset()
	if !f.ValidateCounter(1000, 1<<20) || !f.ValidateCounter(0, 1<<20) {
		t.Fatal("counters refused after Reset")
	}
}

// TestReplayFilterModel compares the filter with a plain map model over a
// deterministic pseudo-random sequence of counters.
func TestReplayFilterModel(t *testing.T) {
	var f ReplayFilter
	seen := map[uint64]bool{}
	var last uint64
	x := uint64(88172645463325252)
	for i := 0; i < 200000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		var c uint64
		switch x % 4 {
		case 0: // far ahead
			c = last + x%(3*ReplayWindowSize)
		case 1: // near the top
			c = last + x%8
		default: // behind, inside or outside the window
			c = last - min(last, x%(ReplayWindowSize+200))
		}
		want := !seen[c] && (c > last || last-c <= ReplayWindowSize)
		if c == 0 && last == 0 && !seen[0] {
			want = true
		}
		if got := f.ValidateCounter(c, RejectAfterMessages); got != want {
			t.Fatalf("iteration %d: ValidateCounter(%d) with last %d = %v, want %v", i, c, last, got, want)
		}
		if want {
			seen[c] = true
			last = max(last, c)
		}
	}
}
