package election

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// federation returns n eligible candidates with a mix of capacities, call
// counts and health, a few of them reporting only a load.
func federation(r *rand.Rand, n int) []Candidate {
	capacities := []int{200, 500, 1000, 2000}
	healths := []float64{1, 1, 1, 1, 0.9, 0.75}
	cands := make([]Candidate, n)
	for i := range cands {
		capacity := capacities[r.IntN(len(capacities))]
		cands[i] = node(fakeID(r), capacity, r.IntN(capacity*9/10), healths[r.IntN(len(healths))])
		if i%7 == 3 {
			cands[i].Capacity = UnknownCapacity
			cands[i].Load = r.Float64() * 0.9
		}
	}
	return cands
}

// TestJitterWithinBucket: views that differ only in heartbeats that left every
// quantized weight unchanged (call counts and loads moved inside their
// bucket) rank every session identically.
func TestJitterWithinBucket(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 10))
	a := federation(r, 30)
	b := slices.Clone(a)
	changed := 0
	for i := range b {
		c := &b[i]
		for range 50 {
			d := *c
			if d.Capacity > 0 {
				step := max(1, d.Capacity/16)
				d.ActiveCalls = max(0, d.ActiveCalls+r.IntN(2*step+1)-step)
			}
			d.Load = math.Max(0, d.Load+(r.Float64()-0.5)/8)
			if Weight(d) == Weight(a[i]) && (d.ActiveCalls != c.ActiveCalls || d.Load != c.Load) {
				*c = d
				changed++
				break
			}
		}
	}
	if changed < len(a)*2/3 {
		t.Fatalf("only %d of %d nodes jittered", changed, len(a))
	}
	r.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })

	const sessions = 10000
	agree := 0
	for i := range sessions {
		s := seqSession(i)
		if i%2 == 1 {
			s = randSession(r)
		}
		if slices.Equal(Rank(s, a), Rank(s, b)) {
			agree++
		}
	}
	t.Logf("%d of %d nodes jittered within their bucket: %d/%d sessions ranked identically", changed, len(a), agree, sessions)
	if agree != sessions {
		t.Errorf("rankings agree on %d of %d sessions, want all", agree, sessions)
	}
}

// poisson draws from a Poisson distribution of mean lambda (small).
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	limit, k, p := math.Exp(-lambda), 0, r.Float64()
	for p > limit {
		k++
		p *= r.Float64()
	}
	return k
}

// drift is a federation whose call counts evolve as a birth–death process
// sampled once per heartbeat (1 s): calls arrive at a node at a rate that
// keeps it near its target utilization, are refused beyond its capacity, and
// last holdSeconds on average. Nodes of unknown capacity move their load by
// the same relative amount.
type drift struct {
	cands  []Candidate
	target []float64
	r      *rand.Rand
}

const holdSeconds = 120

func newDrift(r *rand.Rand, n int) *drift {
	d := &drift{cands: federation(r, n), r: r}
	for range d.cands {
		d.target = append(d.target, 0.2+0.75*r.Float64())
	}
	for i := range d.cands {
		if c := &d.cands[i]; c.Capacity > 0 {
			c.ActiveCalls = int(d.target[i] * float64(c.Capacity))
		}
	}
	return d
}

// step advances every node by one heartbeat and returns the total absolute
// change of call counts.
func (d *drift) step() (moved int) {
	for i := range d.cands {
		c := &d.cands[i]
		capacity := c.Capacity
		if capacity <= 0 {
			capacity = 1000 // a notional capacity for the load walk
			c.ActiveCalls = int(c.Load * float64(capacity))
		}
		arrive := poisson(d.r, d.target[i]*float64(capacity)/holdSeconds)
		leave := min(c.ActiveCalls, poisson(d.r, float64(c.ActiveCalls)/holdSeconds))
		next := min(capacity, c.ActiveCalls-leave+arrive)
		if next > c.ActiveCalls {
			moved += next - c.ActiveCalls
		} else {
			moved += c.ActiveCalls - next
		}
		c.ActiveCalls = next
		if c.Capacity <= 0 {
			c.Load = float64(next) / float64(capacity)
		}
	}
	return moved
}

// TestHeartbeatDrift: views one heartbeat apart under changing load agree on
// the master of at least 99% of sessions. The weights are those of every
// node at t and at t+1, the worst case of two nodes one heartbeat apart.
func TestHeartbeatDrift(t *testing.T) {
	const (
		nodes    = 20
		steps    = 100
		sessions = 1000
	)
	ids := make([]string, sessions)
	r := rand.New(rand.NewPCG(20, 20))
	for i := range ids {
		ids[i] = randSession(r)
	}
	d := newDrift(r, nodes)
	masters := func(q Quantum) []string {
		out := make([]string, sessions)
		for i, s := range ids {
			m, _ := q.Master(s, d.cands)
			out[i] = m.ID
		}
		return out
	}
	const fine = Quantum(1e-9) // effectively unquantized, for comparison
	prev, prevFine := masters(DefaultQuantum), masters(fine)
	agree, agreeFine, worst, moved, bucketChanges := 0, 0, sessions, 0, 0
	for range steps {
		before := make([]float64, nodes)
		for i, c := range d.cands {
			before[i] = Weight(c)
		}
		moved += d.step()
		for i, c := range d.cands {
			if Weight(c) != before[i] {
				bucketChanges++
			}
		}
		cur, curFine := masters(DefaultQuantum), masters(fine)
		n := 0
		for i := range ids {
			if cur[i] == prev[i] {
				n++
			}
			if curFine[i] == prevFine[i] {
				agreeFine++
			}
		}
		agree += n
		worst = min(worst, n)
		prev, prevFine = cur, curFine
	}
	total := steps * sessions
	rate := float64(agree) / float64(total)
	t.Logf("%d nodes, %d heartbeats × %d sessions: mean |Δ calls| per node per heartbeat %.2f, "+
		"%.2f weight changes per heartbeat", nodes, steps, sessions,
		float64(moved)/(nodes*steps), float64(bucketChanges)/steps)
	t.Logf("masters agree between consecutive heartbeats: %.3f%% (worst heartbeat %.1f%%); unquantized %.3f%%",
		100*rate, 100*float64(worst)/sessions, 100*float64(agreeFine)/float64(total))
	if rate < 0.99 {
		t.Errorf("agreement %.3f%%, want ≥ 99%%", 100*rate)
	}
}

// TestWinShares: the share of sessions a candidate is master of follows its
// weight (chi-square and per-candidate 4-sigma binomial bounds), and so does
// the second place, whose expected share is Σ_i p_i·w_j/(W−w_i).
func TestWinShares(t *testing.T) {
	r := rand.New(rand.NewPCG(30, 30))
	// Weights 16, 15, 12, 8, 6, 4, 2 and 1 sixteenths.
	actives := []int{0, 62, 250, 500, 625, 750, 875, 937}
	var cands []Candidate
	for _, a := range actives {
		cands = append(cands, node(fakeID(r), 1000, a, 1))
	}
	cands = append(cands, node(fakeID(r), 1000, 0, 0.5)) // 8/16 by health
	var total float64
	w := make([]float64, len(cands))
	for i, c := range cands {
		w[i] = Weight(c)
		total += w[i]
	}
	first, second := make([]float64, len(cands)), make([]float64, len(cands))
	for i := range cands {
		first[i] = w[i] / total
	}
	for j := range cands {
		for i := range cands {
			if i != j {
				second[j] += first[i] * w[j] / (total - w[i])
			}
		}
	}
	index := map[string]int{}
	for i, c := range cands {
		index[c.ID] = i
	}
	const sessions = 100000
	// 0.999 quantile of chi-square with 8 degrees of freedom.
	const chi2Limit = 26.12
	for _, kind := range []string{"sequential", "random"} {
		got1, got2 := make([]float64, len(cands)), make([]float64, len(cands))
		buf := make([]Ranked, 0, len(cands))
		for i := range sessions {
			s := seqSession(i)
			if kind == "random" {
				s = randSession(r)
			}
			buf = AppendRank(buf[:0], s, cands)
			got1[index[buf[0].ID]]++
			got2[index[buf[1].ID]]++
		}
		for place, pair := range [][2][]float64{{first, got1}, {second, got2}} {
			want, got := pair[0], pair[1]
			chi2 := 0.0
			for i := range want {
				e := want[i] * sessions
				chi2 += (got[i] - e) * (got[i] - e) / e
				sigma := math.Sqrt(e * (1 - want[i]))
				if math.Abs(got[i]-e) > 4*sigma {
					t.Errorf("%s sessions, place %d: candidate of weight %v has %v, want %.0f ± %.0f",
						kind, place+1, w[i], got[i], e, 4*sigma)
				}
			}
			t.Logf("%s sessions, place %d: chi-square %.2f (8 degrees of freedom, limit %.2f)", kind, place+1, chi2, chi2Limit)
			if chi2 > chi2Limit {
				t.Errorf("%s sessions, place %d: chi-square %.2f > %.2f", kind, place+1, chi2, chi2Limit)
			}
		}
	}
}

// without returns cands without its i-th element.
func without(cands []Candidate, i int) []Candidate {
	return slices.Delete(slices.Clone(cands), i, i+1)
}

// withoutRanked returns rk without the entry of id.
func withoutRanked(rk []Ranked, id string) []Ranked {
	return slices.DeleteFunc(slices.Clone(rk), func(r Ranked) bool { return r.ID == id })
}

// TestMembershipChange: removing a node moves only the sessions it was master
// of, adding one takes sessions only to itself; more strongly, the ranking
// of the others is unchanged either way.
func TestMembershipChange(t *testing.T) {
	r := rand.New(rand.NewPCG(40, 40))
	cands := federation(r, 12)
	cands[5].ActiveCalls = cands[5].Capacity // a zero-weight node too
	newcomer := node(fakeID(r), 1000, 100, 1)
	const sessions = 5000
	for _, k := range []int{0, 5, 11} {
		gone := cands[k].ID
		rest := without(cands, k)
		moved := 0
		for i := range sessions {
			s := seqSession(i)
			all, after := Rank(s, cands), Rank(s, rest)
			if !slices.Equal(after, withoutRanked(all, gone)) {
				t.Fatalf("removing %s changed the order of the others for %q:\n%v\n%v", gone, s, all, after)
			}
			if all[0].ID != gone && after[0].ID != all[0].ID {
				t.Fatalf("removing %s moved session %q from %s", gone, s, all[0].ID)
			}
			if all[0].ID == gone {
				moved++
			}
		}
		t.Logf("removing node %d (weight %v) moved %d of %d sessions", k, Weight(cands[k]), moved, sessions)
	}

	grown := append(slices.Clone(cands), newcomer)
	taken := 0
	for i := range sessions {
		s := seqSession(i)
		before, after := Rank(s, cands), Rank(s, grown)
		if !slices.Equal(withoutRanked(after, newcomer.ID), before) {
			t.Fatalf("adding %s changed the order of the others for %q", newcomer.ID, s)
		}
		if after[0].ID != before[0].ID {
			if after[0].ID != newcomer.ID {
				t.Fatalf("adding a node moved session %q from %s to %s", s, before[0].ID, after[0].ID)
			}
			taken++
		}
	}
	if taken == 0 {
		t.Errorf("the new node took no session")
	}
	t.Logf("adding a node of weight %v took %d of %d sessions", Weight(newcomer), taken, sessions)
}
