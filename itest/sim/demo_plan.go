package sim

import "time"

// Phases of a demo round.
const (
	// PhaseBaseline: every provider as it normally is.
	PhaseBaseline = "baseline"
	// PhaseDegrade: cheapnet's media is degraded while the round's calls
	// are up, so that the calls it carries measure the change.
	PhaseDegrade = "degrade"
	// PhaseDegraded: the rounds after; nobody told the nodes.
	PhaseDegraded = "degraded"
	// PhaseFailover: midnet is down (it answers nothing) for the round.
	PhaseFailover = "failover"
	// PhaseRecovered: midnet is back; cheapnet stays degraded.
	PhaseRecovered = "recovered"
)

// demoRound is what happens in one round.
type demoRound struct {
	phase string
	down  bool // midnet is down before the round's calls
	up    bool // midnet comes back before the round's calls
}

// minRounds is the fewest rounds that hold every phase.
const minRounds = 5

// demoRounds is how many rounds fit in about d, each the hold time, the
// gap and about half a second of set-up.
func demoRounds(d, hold, gap time.Duration) int {
	per := hold + gap + 500*time.Millisecond
	return max(minRounds, int((d+per/2)/per))
}

// demoSchedule lays out n rounds (at least minRounds): baseline rounds,
// the round in which cheapnet is degraded (about 30 % in), at least one
// round degraded, midnet down for about a third of what is left and back
// for the rest (at least one round).
func demoSchedule(n int) []demoRound {
	n = max(n, minRounds)
	degrade := max(1, n*3/10)
	down := degrade + max(2, (n-degrade)/3)
	downFor := max(1, (n-down)/2)
	out := make([]demoRound, n)
	for i := range out {
		switch {
		case i < degrade:
			out[i].phase = PhaseBaseline
		case i == degrade:
			out[i].phase = PhaseDegrade
		case i < down:
			out[i].phase = PhaseDegraded
		case i < down+downFor:
			out[i].phase = PhaseFailover
			out[i].down = i == down
		default:
			out[i].phase = PhaseRecovered
			out[i].up = i == down+downFor
		}
	}
	return out
}
