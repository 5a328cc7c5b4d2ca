package routing

import (
	"testing"

	"github.com/callmesh/callmesh/media/quality"
)

// TestEModelMonotone sweeps the E-model over the range the planner feeds
// it: mouth-to-ear delay from the smallest packetization of any codec
// (every path adds at least that) to 2 s, loss from 0 to 100 %. Dominance
// needs R, and so MOS, non-increasing in both; it does not need strictness
// (it compares delay and loss, not MOS), so flat stretches are only
// logged.
func TestEModelMonotone(t *testing.T) {
	minDelay := 1e9
	for _, c := range quality.Codecs() {
		minDelay = min(minDelay, c.PtimeMs+c.LookaheadMs)
	}
	if !(minDelay >= 1) {
		// Below 1 ms G.107 counts talker echo as sidetone (§7.4); the
		// sweep would have to start there.
		t.Fatalf("a codec packetizes in %v ms", minDelay)
	}
	losses := []float64{0, 0.01, 0.1, 0.5, 1, 2, 3, 5, 10, 20, 50, 99, 100}
	delays := []float64{minDelay, 40, 60, 100, 150, 177.3, 200, 300, 400, 600, 1000, 2000}
	for _, c := range quality.Codecs() { // both G.711 rows, with and without PLC
		flat := 0
		for _, loss := range losses {
			pr, pm := quality.Estimate(c, minDelay, loss, 1)
			for d := minDelay + 0.25; d <= 2000; d += 0.25 {
				r, m := quality.Estimate(c, d, loss, 1)
				if r > pr || m > pm {
					t.Fatalf("%s PLC %v loss %v%%: R rises from %v to %v (MOS %v to %v) at %v ms", c.Name, c.PLC, loss, pr, r, pm, m, d)
				}
				if r == pr {
					flat++
				}
				pr, pm = r, m
			}
		}
		for _, d := range delays {
			pr, pm := quality.Estimate(c, d, 0, 1)
			for l := 0.01; l <= 100; l += 0.01 {
				r, m := quality.Estimate(c, d, l, 1)
				if r > pr || m > pm {
					t.Fatalf("%s PLC %v %v ms: R rises from %v to %v (MOS %v to %v) at %v%%", c.Name, c.PLC, d, pr, r, pm, m, l)
				}
				if r == pr {
					flat++
				}
				pr, pm = r, m
			}
		}
		t.Logf("%s PLC %v: non-increasing; %d flat steps", c.Name, c.PLC, flat)
	}
}
