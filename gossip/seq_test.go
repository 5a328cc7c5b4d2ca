package gossip_test

import (
	"math"
	"sync"
	"testing"

	"pgregory.net/rapid"

	"github.com/callmesh/callmesh/gossip"
)

func TestSeqCompare(t *testing.T) {
	s := func(inc, ctr uint64) gossip.Seq { return gossip.Seq{Inc: inc, Ctr: ctr} }
	tests := []struct {
		name string
		a, b gossip.Seq
		want int // a.Compare(b)
	}{
		{"equal", s(5, 7), s(5, 7), 0},
		{"zero equal", s(0, 0), s(0, 0), 0},
		{"next counter", s(5, 8), s(5, 7), 1},
		{"previous counter", s(5, 6), s(5, 7), -1},
		{"restart: higher incarnation, lower counter", s(6, 1), s(5, 1000), 1},
		{"before restart: lower incarnation, higher counter", s(5, 1000), s(6, 1), -1},
		{"incarnation dominates counter at the extremes", s(2, 0), s(1, math.MaxUint64), 1},
		{"max counter", s(1, math.MaxUint64), s(1, math.MaxUint64-1), 1},
		{"max incarnation", s(math.MaxUint64, 0), s(math.MaxUint64-1, math.MaxUint64), 1},
		{"anything beats zero", s(0, 1), s(0, 0), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.a.Compare(tc.b); got != tc.want {
				t.Fatalf("%v.Compare(%v) = %d, want %d", tc.a, tc.b, got, tc.want)
			}
			if got := tc.b.Compare(tc.a); got != -tc.want {
				t.Fatalf("%v.Compare(%v) = %d, want %d", tc.b, tc.a, got, -tc.want)
			}
			if got := tc.a.Newer(tc.b); got != (tc.want > 0) {
				t.Fatalf("%v.Newer(%v) = %v", tc.a, tc.b, got)
			}
			if got := tc.b.Newer(tc.a); got != (tc.want < 0) {
				t.Fatalf("%v.Newer(%v) = %v", tc.b, tc.a, got)
			}
		})
	}
}

// Compare is a total order consistent with the lexicographic order of
// (Inc, Ctr).
func TestSeqCompareProperties(t *testing.T) {
	gen := rapid.Custom(func(t *rapid.T) gossip.Seq {
		// Few distinct values, so that equal parts come up often.
		return gossip.Seq{
			Inc: rapid.SampledFrom([]uint64{0, 1, 2, math.MaxUint64}).Draw(t, "inc"),
			Ctr: rapid.SampledFrom([]uint64{0, 1, 2, math.MaxUint64}).Draw(t, "ctr"),
		}
	})
	rapid.Check(t, func(t *rapid.T) {
		a, b, c := gen.Draw(t, "a"), gen.Draw(t, "b"), gen.Draw(t, "c")
		if a.Compare(b) != -b.Compare(a) {
			t.Fatalf("not antisymmetric: %v, %v", a, b)
		}
		if (a.Compare(b) == 0) != (a == b) {
			t.Fatalf("Compare(%v, %v) = %d, equality %v", a, b, a.Compare(b), a == b)
		}
		if a.Compare(b) <= 0 && b.Compare(c) <= 0 && a.Compare(c) > 0 {
			t.Fatalf("not transitive: %v <= %v <= %v but %v > %v", a, b, c, a, c)
		}
		if a.Newer(b) && b.Newer(a) {
			t.Fatalf("%v and %v both newer than each other", a, b)
		}
		lex := a.Inc > b.Inc || (a.Inc == b.Inc && a.Ctr > b.Ctr)
		if a.Newer(b) != lex {
			t.Fatalf("%v.Newer(%v) = %v, lexicographic %v", a, b, a.Newer(b), lex)
		}
	})
}

func TestSeqIsZero(t *testing.T) {
	for _, tc := range []struct {
		s    gossip.Seq
		want bool
	}{
		{gossip.Seq{}, true},
		{gossip.Seq{Inc: 1}, false},
		{gossip.Seq{Ctr: 1}, false},
		{gossip.Seq{Inc: 1, Ctr: 1}, false},
	} {
		if got := tc.s.IsZero(); got != tc.want {
			t.Errorf("%v.IsZero() = %v, want %v", tc.s, got, tc.want)
		}
	}
}

func TestSeqStringParse(t *testing.T) {
	tests := []struct {
		seq  gossip.Seq
		text string
	}{
		{gossip.Seq{}, "0.0"},
		{gossip.Seq{Inc: 1, Ctr: 2}, "1.2"},
		{gossip.Seq{Inc: 1767225600000, Ctr: 17}, "1767225600000.17"},
		{gossip.Seq{Inc: math.MaxUint64, Ctr: math.MaxUint64}, "18446744073709551615.18446744073709551615"},
	}
	for _, tc := range tests {
		if got := tc.seq.String(); got != tc.text {
			t.Errorf("%#v.String() = %q, want %q", tc.seq, got, tc.text)
		}
		got, err := gossip.ParseSeq(tc.text)
		if err != nil || got != tc.seq {
			t.Errorf("ParseSeq(%q) = %v, %v; want %v", tc.text, got, err, tc.seq)
		}
	}
}

func TestSeqStringParseRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := gossip.Seq{Inc: rapid.Uint64().Draw(t, "inc"), Ctr: rapid.Uint64().Draw(t, "ctr")}
		got, err := gossip.ParseSeq(s.String())
		if err != nil {
			t.Fatalf("ParseSeq(%q): %v", s.String(), err)
		}
		if got != s {
			t.Fatalf("ParseSeq(%q) = %v, want %v", s.String(), got, s)
		}
	})
}

func TestParseSeqBad(t *testing.T) {
	for _, in := range []string{
		"",
		".",
		"1",
		"1.",
		".1",
		"1.2.3",
		"a.1",
		"1.b",
		"-1.2",
		"1.-2",
		"+1.2",
		" 1.2",
		"1.2 ",
		"1,2",
		"0x1.2",
		"1_000.2",
		"18446744073709551616.0", // incarnation overflows uint64
		"0.18446744073709551616", // counter overflows uint64
	} {
		if got, err := gossip.ParseSeq(in); err == nil {
			t.Errorf("ParseSeq(%q) = %v, want an error", in, got)
		}
	}
}

func TestSequencerMonotonic(t *testing.T) {
	const inc = 1767225600000
	s := gossip.NewSequencer(inc)
	if s.Incarnation() != inc {
		t.Fatalf("Incarnation() = %d, want %d", s.Incarnation(), inc)
	}
	prev := gossip.Seq{Inc: inc}
	for i := uint64(1); i <= 1000; i++ {
		got := s.Next()
		if want := (gossip.Seq{Inc: inc, Ctr: i}); got != want {
			t.Fatalf("Next() #%d = %v, want %v", i, got, want)
		}
		if !got.Newer(prev) {
			t.Fatalf("Next() = %v is not newer than %v", got, prev)
		}
		if got.IsZero() {
			t.Fatal("Next() returned the zero sequence")
		}
		prev = got
	}

	// A restarted node counts from one again in a higher incarnation, and
	// its messages are newer than everything of the previous one.
	restarted := gossip.NewSequencer(inc + 1)
	if first := restarted.Next(); !first.Newer(prev) {
		t.Fatalf("first sequence after restart %v is not newer than %v", first, prev)
	}
}

// Next is safe for concurrent use: no sequence is handed out twice, none is
// skipped, and each caller sees its own sequences increase.
func TestSequencerConcurrent(t *testing.T) {
	const (
		workers = 8
		each    = 5000
		inc     = 99
	)
	s := gossip.NewSequencer(inc)
	results := make([][]gossip.Seq, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			out := make([]gossip.Seq, 0, each)
			<-start
			for range each {
				out = append(out, s.Next())
			}
			results[w] = out
		})
	}
	close(start)
	wg.Wait()

	seen := make(map[gossip.Seq]bool, workers*each)
	for w, out := range results {
		for i, q := range out {
			if q.Inc != inc {
				t.Fatalf("worker %d got incarnation %d, want %d", w, q.Inc, inc)
			}
			if seen[q] {
				t.Fatalf("sequence %v handed out twice", q)
			}
			seen[q] = true
			if i > 0 && !q.Newer(out[i-1]) {
				t.Fatalf("worker %d: %v after %v", w, q, out[i-1])
			}
		}
	}
	for c := uint64(1); c <= workers*each; c++ {
		if !seen[gossip.Seq{Inc: inc, Ctr: c}] {
			t.Fatalf("counter %d never handed out", c)
		}
	}
	if next := s.Next(); next != (gossip.Seq{Inc: inc, Ctr: workers*each + 1}) {
		t.Fatalf("Next() after the run = %v, want %d.%d", next, inc, workers*each+1)
	}
}
