package election

import (
	"math"
	"slices"
	"strings"
)

// UnknownCapacity, as a Candidate's Capacity, says that the node's capacity
// is not known: its headroom is then 1 − Load. Any negative Capacity means
// the same.
const UnknownCapacity = -1

// Candidate is what the election needs to know of one node.
type Candidate struct {
	ID   string // text form of the peer ID; the ranking is keyed by it
	Name string // reported in the ranking, not otherwise used

	// Capacity is the number of concurrent calls the node accepts: 0 when it
	// takes none, negative (UnknownCapacity) when it is not known.
	Capacity    int
	ActiveCalls int     // calls the node carries now
	Load        float64 // the node's own estimate, 0..1; used only when Capacity < 0

	Health   float64 // 0..1, the caller's judgement of the node (1: healthy)
	Draining bool    // a draining node takes no new sessions and is not ranked
	Live     bool    // only live nodes are ranked
}

// Eligible reports whether c is ranked at all: live and not draining.
func (c Candidate) Eligible() bool { return c.Live && !c.Draining }

// Ranked is one entry of a ranking. It marshals to JSON as
// {"id":…,"name":…,"weight":…,"score":…}.
type Ranked struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Weight float64 `json:"weight"` // the candidate's quantized weight
	Score  float64 `json:"score"`  // −Weight/ln(u); 0 when Weight is 0
}

// Quantum is the quantization step of weights: a weight is a multiple of it.
// Every node of a federation must use the same one. A Quantum that is not in
// (0, 1] (including 0 and NaN) acts as DefaultQuantum, so the zero value is
// the default.
type Quantum float64

// DefaultQuantum is the quantization step of Weight, Rank, AppendRank and
// Master: 16 weight levels above 0.
const DefaultQuantum Quantum = 1.0 / 16

// step returns the step q stands for.
func (q Quantum) step() float64 {
	if q > 0 && q <= 1 {
		return float64(q)
	}
	return float64(DefaultQuantum)
}

// Weight returns c's weight quantized with DefaultQuantum; see
// Quantum.Weight.
func Weight(c Candidate) float64 { return DefaultQuantum.Weight(c) }

// Rank returns the ranking of the eligible candidates for session, with
// DefaultQuantum; see Quantum.Rank.
func Rank(session string, cands []Candidate) []Ranked {
	return DefaultQuantum.Rank(session, cands)
}

// AppendRank appends the ranking of the eligible candidates for session to
// dst, with DefaultQuantum; see Quantum.AppendRank.
func AppendRank(dst []Ranked, session string, cands []Candidate) []Ranked {
	return DefaultQuantum.AppendRank(dst, session, cands)
}

// Master returns the master of session among cands, with DefaultQuantum; see
// Quantum.Master.
func Master(session string, cands []Candidate) (Ranked, bool) {
	return DefaultQuantum.Master(session, cands)
}

// Weight returns c's weight: headroom × health rounded to the nearest
// multiple of q (halves up), in [0, 1]; 0 when c is not eligible (see the
// package documentation for headroom).
func (q Quantum) Weight(c Candidate) float64 {
	if !c.Eligible() {
		return 0
	}
	return q.weight(&c)
}

// weight returns the weight of the eligible candidate c.
func (q Quantum) weight(c *Candidate) float64 {
	s := q.step()
	x := headroom(c) * clamp01(c.Health)
	return math.Round(x/s) * s
}

// headroom returns the free share of c's capacity, in [0, 1].
func headroom(c *Candidate) float64 {
	switch {
	case c.Capacity > 0:
		return clamp01(1 - float64(c.ActiveCalls)/float64(c.Capacity))
	case c.Capacity == 0:
		return 0
	default:
		return clamp01(1 - c.Load)
	}
}

// clamp01 returns x clamped to [0, 1]; NaN and −0 give +0.
func clamp01(x float64) float64 {
	switch {
	case !(x > 0):
		return 0
	case x > 1:
		return 1
	}
	return x
}

// Rank returns the ranking of the eligible candidates of cands for session:
// the master first, then its successors in order. It has one entry per
// eligible candidate (nil when there is none), does not depend on the order
// of cands, and allocates only the returned slice (and, beyond 64
// candidates, a scratch slice).
func (q Quantum) Rank(session string, cands []Candidate) []Ranked {
	n := 0
	for i := range cands {
		if cands[i].Eligible() {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return q.AppendRank(make([]Ranked, 0, n), session, cands)
}

// AppendRank appends the ranking that Rank returns to dst and returns the
// extended slice; it does not allocate when dst has room for it (and there
// are at most 64 candidates).
func (q Quantum) AppendRank(dst []Ranked, session string, cands []Candidate) []Ranked {
	var buf [64]entry
	ents := buf[:0]
	if len(cands) > len(buf) {
		ents = make([]entry, 0, len(cands))
	}
	st := sessionState(session)
	for i := range cands {
		c := &cands[i]
		if !c.Eligible() {
			continue
		}
		w := q.weight(c)
		ents = append(ents, entry{key: sortKey(w, st, c.ID), weight: w, i: i})
	}
	if len(ents) <= len(buf) {
		insertionSort(cands, ents)
	} else {
		slices.SortFunc(ents, func(a, b entry) int { return compareEntries(cands, a, b) })
	}
	for _, e := range ents {
		dst = append(dst, e.ranked(cands))
	}
	return dst
}

// Master returns the first entry of the ranking Rank returns, and false when
// no candidate is eligible. It neither sorts nor allocates.
func (q Quantum) Master(session string, cands []Candidate) (Ranked, bool) {
	st := sessionState(session)
	var best entry
	found := false
	for i := range cands {
		c := &cands[i]
		if !c.Eligible() {
			continue
		}
		w := q.weight(c)
		e := entry{key: sortKey(w, st, c.ID), weight: w, i: i}
		if !found || compareEntries(cands, e, best) < 0 {
			best, found = e, true
		}
	}
	if !found {
		return Ranked{}, false
	}
	return best.ranked(cands), true
}

// entry is a candidate being ranked: cands[i], its weight and its sort key.
type entry struct {
	key, weight float64
	i           int
}

// ranked returns the Ranked form of e, a candidate of cands.
func (e entry) ranked(cands []Candidate) Ranked {
	c := &cands[e.i]
	r := Ranked{ID: c.ID, Name: c.Name, Weight: e.weight}
	if e.weight > 0 {
		r.Score = e.key
	}
	return r
}

// sortKey returns the key by which a candidate of weight w and the given ID
// is ranked, highest first: its score −w/ln(u) (> 0) when w > 0, else ln(u)
// (< 0), which places it after every positive weight and orders the
// zero-weight candidates by u.
func sortKey(w float64, st uint64, id string) float64 {
	l := math.Log(unit(pairHash(st, id))) // in [−36.8, −1.1e-16]
	if w > 0 {
		return -w / l
	}
	return l
}

// compareEntries orders entries of cands: higher key first, then by ID, then
// by Name.
func compareEntries(cands []Candidate, a, b entry) int {
	switch {
	case a.key > b.key:
		return -1
	case a.key < b.key:
		return 1
	}
	ca, cb := &cands[a.i], &cands[b.i]
	if c := strings.Compare(ca.ID, cb.ID); c != 0 {
		return c
	}
	return strings.Compare(ca.Name, cb.Name)
}

// insertionSort sorts a few entries of cands in the order of compareEntries.
func insertionSort(cands []Candidate, ents []entry) {
	for i := 1; i < len(ents); i++ {
		e := ents[i]
		j := i
		for ; j > 0 && (e.key > ents[j-1].key || e.key == ents[j-1].key && compareEntries(cands, e, ents[j-1]) < 0); j-- {
			ents[j] = ents[j-1]
		}
		ents[j] = e
	}
}
