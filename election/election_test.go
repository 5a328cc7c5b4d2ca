package election

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"pgregory.net/rapid"
)

const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// fakeID returns a string shaped like the text form of an Ed25519 peer ID.
func fakeID(r *rand.Rand) string {
	b := []byte("12D3KooW")
	for range 44 {
		b = append(b, base58[r.IntN(len(base58))])
	}
	return string(b)
}

// seqSession returns the i-th of a run of low-entropy session IDs, the
// harder case for a hash; randSession returns a Call-ID-like random one.
func seqSession(i int) string { return fmt.Sprintf("call-%d", i) }

func randSession(r *rand.Rand) string {
	return fmt.Sprintf("%016x%08x@sip.example.net", r.Uint64(), r.Uint32())
}

// node returns an eligible candidate with the given capacity and calls.
func node(id string, capacity, active int, health float64) Candidate {
	return Candidate{ID: id, Name: "n-" + id[len(id)-4:], Capacity: capacity, ActiveCalls: active,
		Load: float64(active) / float64(max(capacity, 1)), Health: health, Live: true}
}

func TestWeight(t *testing.T) {
	full := func(c Candidate) Candidate { c.ID, c.Live, c.Health = "x", true, 1; return c }
	cases := []struct {
		name string
		q    Quantum
		c    Candidate
		want float64
	}{
		{"idle", 0, full(Candidate{Capacity: 1000}), 1},
		{"half", 0, full(Candidate{Capacity: 1000, ActiveCalls: 500}), 0.5},
		{"one call of 1000 still full", 0, full(Candidate{Capacity: 1000, ActiveCalls: 1}), 1},
		{"rounds to nearest", 0, full(Candidate{Capacity: 1000, ActiveCalls: 300}), 11.0 / 16}, // 0.7 → 11.2/16
		{"half quantum rounds up", 0, full(Candidate{Capacity: 32, ActiveCalls: 31}), 1.0 / 16},
		{"under half a quantum is 0", 0, full(Candidate{Capacity: 1000, ActiveCalls: 969}), 0},
		{"just over half a quantum", 0, full(Candidate{Capacity: 1000, ActiveCalls: 968}), 1.0 / 16},
		{"saturated", 0, full(Candidate{Capacity: 10, ActiveCalls: 10}), 0},
		{"over capacity", 0, full(Candidate{Capacity: 10, ActiveCalls: 50}), 0},
		{"negative calls clamp", 0, full(Candidate{Capacity: 10, ActiveCalls: -5}), 1},
		{"capacity 0 takes no calls", 0, full(Candidate{Capacity: 0, Load: 0}), 0},
		{"load ignored when capacity known", 0, full(Candidate{Capacity: 100, ActiveCalls: 0, Load: 0.9}), 1},
		{"unknown capacity uses load", 0, full(Candidate{Capacity: UnknownCapacity, Load: 0.25}), 0.75},
		{"unknown capacity, any negative", 0, full(Candidate{Capacity: -7, Load: 0.5}), 0.5},
		{"load NaN", 0, full(Candidate{Capacity: -1, Load: math.NaN()}), 0},
		{"load below 0", 0, full(Candidate{Capacity: -1, Load: -3}), 1},
		{"load above 1", 0, full(Candidate{Capacity: -1, Load: 2}), 0},
		{"quantum 1/4", 0.25, full(Candidate{Capacity: 100, ActiveCalls: 40}), 0.5},
		{"quantum 1", 1, full(Candidate{Capacity: 100, ActiveCalls: 40}), 1},
		{"quantum NaN is default", Quantum(math.NaN()), full(Candidate{Capacity: 1000, ActiveCalls: 300}), 11.0 / 16},
		{"quantum 2 is default", 2, full(Candidate{Capacity: 1000, ActiveCalls: 300}), 11.0 / 16},
		{"quantum -1 is default", -1, full(Candidate{Capacity: 1000, ActiveCalls: 300}), 11.0 / 16},
	}
	for _, tc := range cases {
		if got := tc.q.Weight(tc.c); got != tc.want {
			t.Errorf("%s: Weight(%+v) = %v, want %v", tc.name, tc.c, got, tc.want)
		}
	}

	c := full(Candidate{Capacity: 1000, ActiveCalls: 0})
	healths := []struct{ h, want float64 }{
		{1, 1}, {0.5, 0.5}, {0.74, 12.0 / 16}, {0, 0}, {2, 1}, {-1, 0}, {math.NaN(), 0}, {math.Copysign(0, -1), 0},
	}
	for _, h := range healths {
		c.Health = h.h
		got := Weight(c)
		if got != h.want || math.Signbit(got) {
			t.Errorf("health %v: Weight = %v, want %v", h.h, got, h.want)
		}
	}

	c.Health = 1
	for _, mod := range []func(*Candidate){
		func(c *Candidate) { c.Live = false },
		func(c *Candidate) { c.Draining = true },
	} {
		d := c
		mod(&d)
		if w := Weight(d); w != 0 {
			t.Errorf("ineligible %+v: Weight = %v, want 0", d, w)
		}
	}
}

// eligibleView draws a view of up to 25 candidates with distinct IDs, some
// not live or draining, with weights spread over every level including 0.
func eligibleView(t *rapid.T) []Candidate {
	ids := rapid.SliceOfNDistinct(rapid.StringN(1, 12, -1), 0, 25, rapid.ID[string]).Draw(t, "ids")
	cands := make([]Candidate, len(ids))
	for i, id := range ids {
		capacity := rapid.SampledFrom([]int{-1, 0, 1, 16, 100, 1000}).Draw(t, "capacity")
		cands[i] = Candidate{
			ID: id, Name: rapid.StringN(0, 6, -1).Draw(t, "name"),
			Capacity:    capacity,
			ActiveCalls: rapid.IntRange(0, max(capacity, 1)).Draw(t, "active"),
			Load:        rapid.Float64Range(0, 1).Draw(t, "load"),
			Health:      rapid.SampledFrom([]float64{0, 0.3, 0.9, 1}).Draw(t, "health"),
			Draining:    rapid.IntRange(0, 5).Draw(t, "draining") == 0,
			Live:        rapid.IntRange(0, 5).Draw(t, "dead") != 0,
		}
	}
	return cands
}

// checkRanking checks that got is the ranking of cands for session: a
// permutation of the eligible candidates with their weights and scores,
// positive weights by decreasing score, then zero weights by decreasing u.
func checkRanking(t interface {
	Helper()
	Fatalf(string, ...any)
}, q Quantum, session string, cands []Candidate, got []Ranked) {
	t.Helper()
	byID := map[string]Candidate{}
	for _, c := range cands {
		if c.Eligible() {
			byID[c.ID] = c
		}
	}
	if len(got) != len(byID) {
		t.Fatalf("ranking has %d entries, want %d eligible", len(got), len(byID))
	}
	st := sessionState(session)
	seen := map[string]bool{}
	for i, r := range got {
		c, ok := byID[r.ID]
		if !ok || seen[r.ID] {
			t.Fatalf("entry %d %q: not eligible or repeated", i, r.ID)
		}
		seen[r.ID] = true
		if r.Name != c.Name || r.Weight != q.Weight(c) {
			t.Fatalf("entry %d %+v: want name %q weight %v", i, r, c.Name, q.Weight(c))
		}
		u := unit(pairHash(st, r.ID))
		want := 0.0
		if r.Weight > 0 {
			want = -r.Weight / math.Log(u)
		}
		if r.Score != want || math.Signbit(r.Score) {
			t.Fatalf("entry %d %+v: score want %v", i, r, want)
		}
		if i == 0 {
			continue
		}
		p := got[i-1]
		switch {
		case p.Weight == 0 && r.Weight > 0:
			t.Fatalf("entry %d %+v of positive weight after zero-weight %+v", i, r, p)
		case r.Weight > 0 && (p.Score < r.Score || p.Score == r.Score && p.ID > r.ID):
			t.Fatalf("entry %d %+v after %+v", i, r, p)
		case p.Weight == 0 && unit(pairHash(st, p.ID)) < u:
			t.Fatalf("zero-weight entry %d %+v after %+v of smaller u", i, r, p)
		}
	}
}

func TestRankProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cands := eligibleView(t)
		q := rapid.SampledFrom([]Quantum{0, DefaultQuantum, 0.25, 1e-9}).Draw(t, "quantum")
		session := rapid.String().Draw(t, "session")
		got := q.Rank(session, cands)
		checkRanking(t, q, session, cands, got)

		if again := q.Rank(session, cands); !slices.Equal(got, again) {
			t.Fatalf("second Rank differs:\n%v\n%v", got, again)
		}
		perm := rapid.Permutation(cands).Draw(t, "permutation")
		if other := q.Rank(session, perm); !slices.Equal(got, other) {
			t.Fatalf("Rank depends on input order:\n%v\n%v", got, other)
		}
		prefix := []Ranked{{ID: "keep"}}
		app := q.AppendRank(slices.Clone(prefix), session, perm)
		if !slices.Equal(app[:1], prefix) || !slices.Equal(app[1:], got) {
			t.Fatalf("AppendRank = %v, want %v then %v", app, prefix, got)
		}
		m, ok := q.Master(session, perm)
		switch {
		case len(got) == 0 && (ok || m != Ranked{}):
			t.Fatalf("Master with no eligible candidate = %v, %v", m, ok)
		case len(got) > 0 && (!ok || m != got[0]):
			t.Fatalf("Master = %v, %v; want %v", m, ok, got[0])
		}
	})
}

func TestRankEmpty(t *testing.T) {
	if got := Rank("s", nil); got != nil {
		t.Errorf("Rank(nil) = %v", got)
	}
	dead := []Candidate{{ID: "a", Capacity: 10, Health: 1}, {ID: "b", Capacity: 10, Health: 1, Live: true, Draining: true}}
	if got := Rank("s", dead); got != nil {
		t.Errorf("Rank(no eligible) = %v", got)
	}
	if m, ok := Master("s", dead); ok {
		t.Errorf("Master(no eligible) = %v, true", m)
	}
}

// TestDuplicateIDs: entries with equal IDs and weights have equal scores and
// are ordered by Name, whatever the input order.
func TestDuplicateIDs(t *testing.T) {
	a := node("12D3KooWsame", 100, 10, 1)
	b := a
	a.Name, b.Name = "alpha", "beta"
	for i := range 100 {
		s := seqSession(i)
		r1, r2 := Rank(s, []Candidate{a, b}), Rank(s, []Candidate{b, a})
		if !slices.Equal(r1, r2) || r1[0].Name != "alpha" || r1[0].Score != r1[1].Score {
			t.Fatalf("session %q: %v / %v", s, r1, r2)
		}
	}
}

// TestSaturated: when every node has weight 0 every session still has a
// master, and the sessions are spread evenly over the nodes; a single node of
// positive weight is the master of every session.
func TestSaturated(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	const n, sessions = 10, 20000
	var cands []Candidate
	for range n {
		cands = append(cands, node(fakeID(r), 100, 100, 1))
	}
	wins := map[string]int{}
	for i := range sessions {
		m, ok := Master(seqSession(i), cands)
		if !ok || m.Weight != 0 || m.Score != 0 {
			t.Fatalf("session %d: Master = %+v, %v", i, m, ok)
		}
		wins[m.ID]++
	}
	mean := float64(sessions) / n
	sigma := math.Sqrt(mean * (1 - 1.0/n))
	for _, c := range cands {
		if d := math.Abs(float64(wins[c.ID]) - mean); d > 4*sigma {
			t.Errorf("zero-weight node %s wins %d of %d sessions, want %.0f ± %.0f", c.ID, wins[c.ID], sessions, mean, 4*sigma)
		}
	}

	cands[4].ActiveCalls = 90 // weight 0.1 → 2/16
	for i := range sessions {
		rk := Rank(seqSession(i), cands)
		if rk[0].ID != cands[4].ID {
			t.Fatalf("session %d: master %s, want the only node with headroom %s", i, rk[0].ID, cands[4].ID)
		}
	}
}

func TestRankedJSON(t *testing.T) {
	b, err := json.Marshal(struct {
		Ranking []Ranked `json:"ranking"`
	}{[]Ranked{{ID: "12D3KooWa", Name: "edge-1", Weight: 0.5, Score: 1.25}, {ID: "b", Weight: 0, Score: 0}}})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"ranking":[{"id":"12D3KooWa","name":"edge-1","weight":0.5,"score":1.25},{"id":"b","name":"","weight":0,"score":0}]}`
	if string(b) != want {
		t.Errorf("JSON:\n%s\nwant\n%s", b, want)
	}
}

func TestAllocations(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	cands := benchView(r, 50)
	buf := make([]Ranked, 0, len(cands))
	if n := testing.AllocsPerRun(50, func() { buf = AppendRank(buf[:0], "call-1", cands) }); n != 0 {
		t.Errorf("AppendRank into a large enough buffer: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(50, func() { _, _ = Master("call-1", cands) }); n != 0 {
		t.Errorf("Master: %v allocations, want 0", n)
	}
	if n := testing.AllocsPerRun(50, func() { _ = Rank("call-1", cands) }); n != 1 {
		t.Errorf("Rank: %v allocations, want 1", n)
	}
}

// TestRankLarge covers federations larger than AppendRank's stack buffer.
func TestRankLarge(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	cands := federation(r, 150)
	for i := range cands {
		switch i % 10 {
		case 1:
			cands[i].Draining = true
		case 2:
			cands[i].Live = false
		case 3:
			cands[i].ActiveCalls = cands[i].Capacity
		}
	}
	perm := slices.Clone(cands)
	for i := range 200 {
		s := seqSession(i)
		got := Rank(s, cands)
		checkRanking(t, DefaultQuantum, s, cands, got)
		r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		if other := Rank(s, perm); !slices.Equal(got, other) {
			t.Fatalf("session %q: Rank depends on input order", s)
		}
		if m, _ := Master(s, perm); m != got[0] {
			t.Fatalf("session %q: Master %v, Rank[0] %v", s, m, got[0])
		}
	}
}

// TestTieBreak: entries of equal key are ordered by ID, then Name, on both
// sorting paths. (Equal keys of different IDs need a hash collision, so the
// comparison is tested directly.)
func TestTieBreak(t *testing.T) {
	cands := []Candidate{{ID: "b"}, {ID: "a", Name: "2"}, {ID: "c"}, {ID: "a", Name: "1"}, {ID: "d"}}
	ents := []entry{{key: 1, i: 0}, {key: 1, i: 1}, {key: 1, i: 2}, {key: 1, i: 3}, {key: 2, i: 4}}
	want := []int{4, 3, 1, 0, 2}
	check := func(how string, got []entry) {
		t.Helper()
		for k, e := range got {
			if e.i != want[k] {
				t.Errorf("%s: order %v, want candidates %v", how, got, want)
				return
			}
		}
	}
	a := slices.Clone(ents)
	insertionSort(cands, a)
	check("insertion", a)
	b := slices.Clone(ents)
	slices.SortFunc(b, func(x, y entry) int { return compareEntries(cands, x, y) })
	check("SortFunc", b)
}
