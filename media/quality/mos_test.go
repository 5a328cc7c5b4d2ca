package quality

import (
	"math"
	"testing"

	"pgregory.net/rapid"
)

// annexB is G.107 Annex B, (B-4), written out again for the test.
func annexB(r float64) float64 {
	if r < 0 {
		return 1
	}
	if r > 100 {
		return 4.5
	}
	return 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
}

func TestMOSBoundaries(t *testing.T) {
	for _, tc := range []struct {
		r, want float64
	}{
		{-10, 1},
		{-1e-9, 1},
		{0, 1},      // 1 + 0 + 0
		{3, 1},      // the cubic gives 0.9876: clamped
		{6.6, 1},    // just above the cubic's return to 1 at R ≈ 6.515
		{50, 2.575}, // 1 + 1.75 + 50·(−10)·50·7e-6 = 2.75 − 0.175
		{60, 3.1},   // 1 + 2.1 + 0
		// 1 + 3.262 + 93.2·33.2·6.8·7e-6 = 4.262 + 0.147285824
		{93.2, 4.409285824},
		{100, 4.5}, // 1 + 3.5 + 0
		{100.0001, 4.5},
		{150, 4.5},
	} {
		got := MOS(tc.r)
		want := min(max(annexB(tc.r), 1), 4.5)
		near(t, "MOS vs (B-4)", got, want, 1e-12)
		tol := 1e-8
		if tc.r == 6.6 {
			tol = 1e-3 // 1.0004 from the cubic
		}
		near(t, "MOS vs hand", got, tc.want, tol)
	}
	if m := MOS(math.NaN()); !math.IsNaN(m) {
		t.Errorf("MOS(NaN) = %v, want NaN", m)
	}
	if m := MOS(math.Inf(1)); m != 4.5 {
		t.Errorf("MOS(+Inf) = %v", m)
	}
	if m := MOS(math.Inf(-1)); m != 1 {
		t.Errorf("MOS(-Inf) = %v", m)
	}
}

func TestMOSMonotoneProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := rapid.Float64Range(-50, 150).Draw(t, "a")
		b := rapid.Float64Range(-50, 150).Draw(t, "b")
		lo, hi := min(a, b), max(a, b)
		mlo, mhi := MOS(lo), MOS(hi)
		if mlo > mhi {
			t.Fatalf("MOS(%v) = %v > MOS(%v) = %v", lo, mlo, hi, mhi)
		}
		if mlo < 1 || mhi > 4.5 {
			t.Fatalf("MOS out of [1, 4.5]: %v, %v", mlo, mhi)
		}
	})
}
