package quality

// MOS returns the estimated mean opinion score MOS-CQE (conversational
// quality, estimated) for a rating R, by G.107 Annex B, (B-4):
//
//	R < 0:        MOS = 1
//	0 ≤ R ≤ 100:  MOS = 1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶
//	R > 100:      MOS = 4.5
//
// The cubic dips slightly below 1 for 0 < R < 6.5, so the result is clamped
// into [1, 4.5]. MOS is non-decreasing in R. A NaN rating gives NaN.
func MOS(r float64) float64 {
	switch {
	case r < 0:
		return 1
	case r > 100:
		return 4.5
	case r >= 0: // not NaN
		m := 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
		return min(max(m, 1), 4.5)
	}
	return r
}
