//go:build linux

package load

import (
	"math"
	"strings"
	"testing"
)

// TestCallsABSummary checks the comparison of two builds on made-up
// steps: pairs where either step failed are left out, and B's CPU per
// call over A's is taken pair by pair.
func TestCallsABSummary(t *testing.T) {
	step := func(rate int, server, uac float64, failed int) callsStep {
		return callsStep{rate: rate, calls: 1000, successful: 1000 - failed, failed: failed,
			reached: float64(rate), serverCores: server, uacCores: uac}
	}
	a := &callsReport{steps: []callsStep{
		step(6000, 2.0, 1.0, 0), // B/A 0.95
		step(6000, 1.0, 0.5, 0), // B/A 1.05 (the machine was slower: both quotients are B's over A's)
		step(7000, 2.0, 1.0, 0), // B failed: left out
		step(7000, 2.0, 1.0, 5), // A failed: left out
	}}
	b := &callsReport{steps: []callsStep{
		step(6000, 1.9, 1.0, 0),
		step(6000, 1.05, 0.5, 0),
		step(7000, 1.0, 1.0, 9),
		step(7000, 1.0, 1.0, 0),
	}}
	got := callsABSummary(a, b)
	for _, want := range []string{"2 pairs of steps both passed", "server/UAC 2.000 (B) against 2.000 (A)", "1.000 ± 0.050", "+0.0 %", "steps failed: 1 of 4 (A), 1 of 4 (B)"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q lacks %q", got, want)
		}
	}
	if got := callsABSummary(a, &callsReport{skipped: "did not come up"}); got != "" {
		t.Errorf("summary of a skipped build: %q", got)
	}
	if got := callsABSummary(nil, b); got != "" {
		t.Errorf("summary without A: %q", got)
	}
}

func TestMeanSE(t *testing.T) {
	m, se := meanSE([]float64{1, 2, 3, 4})
	// Sample standard deviation √(5/3), over √4.
	if m != 2.5 || math.Abs(se-math.Sqrt(5.0/3)/2) > 1e-12 {
		t.Errorf("meanSE = %v, %v", m, se)
	}
	if m, se := meanSE([]float64{7}); m != 7 || se != 0 {
		t.Errorf("meanSE of one = %v, %v", m, se)
	}
}
