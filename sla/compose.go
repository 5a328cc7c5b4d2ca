package sla

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
	"time"
)

// DefaultIncrement is the billing increment of a price that sets none:
// whole minutes.
var DefaultIncrement = Increment{First: 60, Next: 60}

// ParseIncrement reads "FIRST/NEXT" in seconds, both positive: "60/60",
// "1/1", "30/6".
func ParseIncrement(s string) (Increment, error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok || !allDigits(a) || !allDigits(b) {
		return Increment{}, fmt.Errorf("%w: increment %q: want FIRST/NEXT in seconds, such as 60/60", ErrInvalid, s)
	}
	first, err1 := strconv.Atoi(a)
	next, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || first < 1 || next < 1 || first > maxIncrement || next > maxIncrement {
		return Increment{}, fmt.Errorf("%w: increment %q: both parts must be 1 to %d seconds", ErrInvalid, s, maxIncrement)
	}
	return Increment{First: first, Next: next}, nil
}

// maxIncrement bounds each part of an increment: one day.
const maxIncrement = 86400

// String is "FIRST/NEXT", or "" for the zero Increment (unset).
func (i Increment) String() string {
	if i == (Increment{}) {
		return ""
	}
	return strconv.Itoa(i.First) + "/" + strconv.Itoa(i.Next)
}

// MarshalText writes "FIRST/NEXT", so JSON carries "60/60"; the zero
// Increment writes "".
func (i Increment) MarshalText() ([]byte, error) { return []byte(i.String()), nil }

// UnmarshalText reads "FIRST/NEXT"; "" is the zero Increment.
func (i *Increment) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*i = Increment{}
		return nil
	}
	v, err := ParseIncrement(string(b))
	if err != nil {
		return err
	}
	*i = v
	return nil
}

// OrDefault is the increment billing uses: DefaultIncrement for the zero
// (unset) Increment; otherwise each part at least 1 second.
func (i Increment) OrDefault() Increment {
	if i.First <= 0 && i.Next <= 0 {
		return DefaultIncrement
	}
	return Increment{First: max(i.First, 1), Next: max(i.Next, 1)}
}

// coarser reports whether i bills in coarser blocks than j: a larger First,
// or an equal First and a larger Next.
func (i Increment) coarser(j Increment) bool {
	return i.First > j.First || (i.First == j.First && i.Next > j.Next)
}

// Billed is the number of seconds a call of secs seconds is billed for: a
// call that lasted no time (secs <= 0) is not billed; up to First seconds
// are billed as First; beyond that, each started block of Next seconds is
// billed whole. 60/60 bills 61 s as 120 s, 1/1 bills exactly, 30/6 bills
// 31 s as 36 s.
func (i Increment) Billed(secs int64) int64 {
	if secs <= 0 {
		return 0
	}
	i = i.OrDefault()
	first, next := int64(i.First), int64(i.Next)
	if secs <= first {
		return first
	}
	blocks := (secs-first)/next + min((secs-first)%next, 1)
	if blocks > (math.MaxInt64-first)/next {
		return math.MaxInt64
	}
	return first + blocks*next
}

// Bill is the charge for a call of secs seconds at price p: the setup fee
// plus the per-minute price for the seconds the increment bills (Billed),
// rounded half up to the unit of Money. A call that lasted no time
// (secs <= 0) costs nothing, not even the setup fee. The result saturates
// at the largest Money instead of overflowing.
func Bill(p Price, secs int64) Money {
	b := p.Increment.Billed(secs)
	if b == 0 {
		return 0
	}
	return addSat(mulSeconds(p.PerMinute, b), p.Setup)
}

// mulSeconds is Money.MulSeconds, exact for any positive amount and
// duration, saturating at the largest Money.
func mulSeconds(m Money, secs int64) Money {
	if m <= 0 || secs <= 0 {
		return m.MulSeconds(secs)
	}
	hi, lo := bits.Mul64(uint64(m), uint64(secs))
	if hi >= 60 {
		return math.MaxInt64
	}
	q, r := bits.Div64(hi, lo, 60)
	if q >= math.MaxInt64 {
		return math.MaxInt64
	}
	if 2*r >= 60 {
		q++
	}
	return Money(q)
}

func addSat(a, b Money) Money {
	s := a + b
	if b > 0 && s < a {
		return math.MaxInt64
	}
	if b < 0 && s > a {
		return math.MinInt64
	}
	return s
}

// Terms are what a path promises as a whole, composed from the SLAs it uses
// (Compose).
type Terms struct {
	// SLAs are the ids of the SLAs composed, in path order.
	SLAs []string `json:"slas"`
	// Guarantees of the path:
	//   - MaxDelayMs and MaxJitterMs are the sums of the SLAs' (jitter
	//     summed is an upper bound);
	//   - MaxLossPct is the compounded loss 1 − Π(1 − lᵢ), in percent;
	//   - each is 0 (no guarantee) when any SLA of the path promises
	//     nothing on it: a path is only as bounded as its least bounded
	//     SLA;
	//   - MinMOS and MinASRPct are always 0: neither composes (a path's MOS
	//     follows from its delay and loss through the E-model, which is
	//     routing's to compute, and one leg's answer ratio says little of
	//     the path's).
	Guarantees Guarantees `json:"guarantees"`
	// Capacity is the smallest bound of the SLAs on each of max_calls and
	// max_cps, ignoring unbounded (0) ones; 0 when none bounds it.
	Capacity Capacity `json:"capacity"`
	// Price is the path's price: per_minute and setup are the sums over
	// the SLAs (and the markups), and the currency their common one. The
	// increment is the coarsest of the SLAs that charge per minute (the
	// largest First, then the largest Next), or DefaultIncrement when none
	// does. Billing the path with one increment is an estimate: the exact
	// charge is each SLA's own bill, summed.
	Price Price `json:"price"`
	// Valid is the intersection of the SLAs' validity windows: the latest
	// From and the earliest Until. It may be empty (From not before Until).
	Valid Validity `json:"valid"`
}

// Compose returns the terms of a path made of slas (in path order), with
// the per-minute markups the path pays for the use of peers' provider
// contracts.
//
// A node-node SLA in slas stands for its direct voice link: it adds the
// link's per-minute price and its delay and loss (and whatever the SLA's
// own price says); one without a direct link is an error, since it carries
// no voice. User-access SLAs add their delay and loss like any other.
//
// It is an error for slas to be empty or hold nil, for markups to be
// negative, or for the priced SLAs to be in more than one currency.
func Compose(slas []*SLA, markups []Money) (Terms, error) {
	if len(slas) == 0 {
		return Terms{}, errors.New("sla: compose: no SLA")
	}
	t := Terms{SLAs: make([]string, 0, len(slas))}
	delay, jitter, loss := 0.0, 0.0, 0.0
	bounded := [3]bool{true, true, true} // delay, loss, jitter
	var inc Increment
	for i, s := range slas {
		if s == nil {
			return Terms{}, fmt.Errorf("sla: compose: SLA %d is nil", i)
		}
		t.SLAs = append(t.SLAs, s.ID)
		g := s.Guarantees
		perMinute := s.Price.PerMinute
		if s.Kind == NodeNode {
			if s.Direct == nil {
				return Terms{}, fmt.Errorf("sla: compose: node-node SLA %q has no direct link", s.ID)
			}
			g = Guarantees{MaxDelayMs: s.Direct.MaxDelayMs, MaxLossPct: s.Direct.MaxLossPct}
			perMinute = addSat(perMinute, s.Direct.PerMinute)
		}
		for j, v := range []float64{g.MaxDelayMs, g.MaxLossPct, g.MaxJitterMs} {
			bounded[j] = bounded[j] && v > 0
		}
		delay += g.MaxDelayMs
		jitter += g.MaxJitterMs
		l := min(max(g.MaxLossPct, 0), 100)
		loss += l - loss*l/100 // 1 − (1 − loss)(1 − l), in percent

		t.Capacity.MaxCalls = minBound(t.Capacity.MaxCalls, s.Capacity.MaxCalls)
		t.Capacity.MaxCPS = minBound(t.Capacity.MaxCPS, s.Capacity.MaxCPS)

		if c := s.Price.Currency; c != "" {
			if t.Price.Currency != "" && t.Price.Currency != c {
				return Terms{}, fmt.Errorf("sla: compose: SLA %q is priced in %s, the path so far in %s", s.ID, c, t.Price.Currency)
			}
			t.Price.Currency = c
		}
		t.Price.PerMinute = addSat(t.Price.PerMinute, perMinute)
		t.Price.Setup = addSat(t.Price.Setup, s.Price.Setup)
		if perMinute != 0 {
			if si := s.Price.Increment.OrDefault(); inc == (Increment{}) || si.coarser(inc) {
				inc = si
			}
		}

		if f := s.Valid.From; !f.IsZero() && (t.Valid.From.IsZero() || f.After(t.Valid.From)) {
			t.Valid.From = f
		}
		if u := s.Valid.Until; !u.IsZero() && (t.Valid.Until.IsZero() || u.Before(t.Valid.Until)) {
			t.Valid.Until = u
		}
	}
	for i, m := range markups {
		if m < 0 {
			return Terms{}, fmt.Errorf("sla: compose: markup %d is negative (%s)", i, m)
		}
		t.Price.PerMinute = addSat(t.Price.PerMinute, m)
	}
	if inc == (Increment{}) {
		inc = DefaultIncrement
	}
	t.Price.Increment = inc
	if bounded[0] {
		t.Guarantees.MaxDelayMs = delay
	}
	if bounded[1] {
		t.Guarantees.MaxLossPct = loss
	}
	if bounded[2] {
		t.Guarantees.MaxJitterMs = jitter
	}
	return t, nil
}

// minBound is the tighter of two bounds where 0 is unbounded.
func minBound(a, b int) int {
	switch {
	case a <= 0:
		return max(b, 0)
	case b <= 0:
		return a
	}
	return min(a, b)
}

// ValidAt reports whether at lies in the terms' validity window.
func (t *Terms) ValidAt(at time.Time) bool { return t.Valid.Contains(at) }

// Contains reports whether t lies in [From, Until), a zero bound being
// open.
func (v Validity) Contains(t time.Time) bool {
	return (v.From.IsZero() || !t.Before(v.From)) && (v.Until.IsZero() || t.Before(v.Until))
}
