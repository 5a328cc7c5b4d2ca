package quality

import (
	"testing"

	"pgregory.net/rapid"
)

// The properties hold for every codec of the table. Delays start at 1 ms:
// below it the talker echo counts as sidetone (see TestTalkerEchoBelow1ms).
func drawCodec(t *rapid.T) Codec {
	cs := Codecs()
	return cs[rapid.IntRange(0, len(cs)-1).Draw(t, "codec")]
}

func ordered(t *rapid.T, lo, hi float64, name string) (float64, float64) {
	a := rapid.Float64Range(lo, hi).Draw(t, name+"1")
	b := rapid.Float64Range(lo, hi).Draw(t, name+"2")
	return min(a, b), max(a, b)
}

func TestRDecreasesWithDelay(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawCodec(t)
		d1, d2 := ordered(t, 1, 1000, "delay")
		loss := rapid.Float64Range(0, 30).Draw(t, "loss")
		burst := rapid.Float64Range(1, 8).Draw(t, "burst")
		r1, m1 := Estimate(c, d1, loss, burst)
		r2, m2 := Estimate(c, d2, loss, burst)
		if r2 > r1+1e-9 || m2 > m1+1e-9 {
			t.Fatalf("%s: R(%v ms) = %v < R(%v ms) = %v", c.Name, d1, r1, d2, r2)
		}
		if d2-d1 >= 1 && d1 >= 10 && !(r2 < r1) {
			t.Fatalf("%s: R not strictly lower at %v ms than at %v ms", c.Name, d2, d1)
		}
	})
}

func TestRDecreasesWithLoss(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawCodec(t)
		delay := rapid.Float64Range(1, 600).Draw(t, "delay")
		l1, l2 := ordered(t, 0, 100, "loss")
		burst := rapid.Float64Range(1, 8).Draw(t, "burst")
		r1, _ := Estimate(c, delay, l1, burst)
		r2, _ := Estimate(c, delay, l2, burst)
		if r2 > r1 || (l2-l1 >= 0.01 && !(r2 < r1)) {
			t.Fatalf("%s: R(%v%%) = %v, R(%v%%) = %v", c.Name, l1, r1, l2, r2)
		}
	})
}

func TestRDecreasesWithBurstiness(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := drawCodec(t)
		delay := rapid.Float64Range(1, 600).Draw(t, "delay")
		loss := rapid.Float64Range(0.1, 100).Draw(t, "loss")
		b1, b2 := ordered(t, 1, 20, "burst")
		r1, _ := Estimate(c, delay, loss, b1)
		r2, _ := Estimate(c, delay, loss, b2)
		if r2 > r1 || (b2-b1 >= 0.01 && !(r2 < r1)) {
			t.Fatalf("%s: R(BurstR %v) = %v, R(BurstR %v) = %v", c.Name, b1, r1, b2, r2)
		}
	})
}
