package rtpstats_test

import (
	"math/rand/v2"
	"testing"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// Packets 10-14 and 50-54 of 200 lost: two runs of 5.
//
//	loss rate      10/200 = 5 %
//	mean run       10/2 = 5
//	BurstR         5 × (1 − 0.05) = 4.75
//	Gilbert        p = 2 runs / 190 received, q = 2 runs / 10 lost,
//	               1/(p+q) = 1/(2/190 + 2/10) = 1900/400 = 4.75
func TestBurstyLoss(t *testing.T) {
	lost := func(i int) bool { return i >= 10 && i <= 14 || i >= 50 && i <= 54 }
	s := stream(1, 4000, 200, lost)
	st := s.Stats()
	checkLoss(t, st, 200, 10, 5, 4.75)
	if st.LossPct != 5 || st.IntervalLossPct != 5 || st.Pending != 0 {
		t.Errorf("loss %v%%, interval %v%%, pending %d", st.LossPct, st.IntervalLossPct, st.Pending)
	}
	if g := 1 / (2.0/190 + 2.0/10); !near(st.BurstRatio, g, 1e-12) {
		t.Errorf("BurstR %v, Gilbert 1/(p+q) %v", st.BurstRatio, g)
	}
	if st.Packets != 190 || st.Jitter != 0 {
		t.Errorf("packets %d, jitter %v", st.Packets, st.Jitter)
	}
}

// Ten isolated losses, evenly spread: runs of 1, BurstR 1 × (1 − 0.05) =
// 0.95, i.e. less bursty than random loss.
func TestSpreadLoss(t *testing.T) {
	s := stream(1, 0, 200, func(i int) bool { return i%20 == 10 })
	st := s.Stats()
	checkLoss(t, st, 200, 10, 1, 0.95)
	if st.LossPct != 5 {
		t.Errorf("loss %v%%", st.LossPct)
	}
}

// Bernoulli loss from a fixed seed, against the plain reference; BurstR of
// random loss is close to 1.
func TestRandomLoss(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 20000
	received := make([]bool, n)
	for i := range received {
		received[i] = i == 0 || i == n-1 || rng.Float64() >= 0.1
	}
	s := stream(3, 60000, n, func(i int) bool { return !received[i] })
	lost := 0
	for _, ok := range received {
		if !ok {
			lost++
		}
	}
	mean, burstR := refBurst(received)
	st := s.Stats()
	checkLoss(t, st, n, int64(lost), mean, burstR)
	if !near(st.BurstRatio, 1, 0.05) {
		t.Errorf("BurstR %v for Bernoulli loss, want about 1", st.BurstRatio)
	}
}

// Report closes A.3 intervals: the fraction is 8-bit fixed point of the
// interval's loss, the cumulative count carries on.
func TestReportIntervals(t *testing.T) {
	s := rtpstats.NewStream(nil)
	send := func(from, to int, lost func(i int) bool) {
		for i := from; i < to; i++ {
			if !lost(i) {
				s.Update(pcmu(0xC0FFEE, 1000, i))
			}
		}
	}
	// Interval 1: numbers 0..99, 10 lost: fraction 10×256/100 = 25.6 → 25.
	send(0, 100, func(i int) bool { return i%10 == 5 })
	if st := s.Stats(); st.IntervalLossPct != 10 || st.LossPct != 10 {
		t.Errorf("interval 1: %v%% / %v%%", st.IntervalLossPct, st.LossPct)
	}
	want := rtpstats.Block{SSRC: 0xC0FFEE, FractionLost: 25, CumulativeLost: 10, ExtHighestSeq: 1099}
	if b := s.Report(); b != want {
		t.Errorf("report 1 = %+v, want %+v", b, want)
	}
	if st := s.Stats(); st.IntervalLossPct != 0 || st.LossPct != 10 {
		t.Errorf("right after report 1: %v%% / %v%%", st.IntervalLossPct, st.LossPct)
	}

	// Interval 2: numbers 100..199, 20 lost: 20×256/100 = 51.2 → 51;
	// cumulative 30 of 200 = 15 %.
	send(100, 200, func(i int) bool { return i >= 150 && i < 170 })
	if st := s.Stats(); st.IntervalLossPct != 20 || st.LossPct != 15 {
		t.Errorf("interval 2: %v%% / %v%%", st.IntervalLossPct, st.LossPct)
	}
	want = rtpstats.Block{SSRC: 0xC0FFEE, FractionLost: 51, CumulativeLost: 30, ExtHighestSeq: 1199}
	if b := s.Report(); b != want {
		t.Errorf("report 2 = %+v, want %+v", b, want)
	}

	// Interval 3: nothing received: fraction 0.
	want.FractionLost = 0
	if b := s.Report(); b != want {
		t.Errorf("report 3 = %+v, want %+v", b, want)
	}

	// Interval 4: 5 numbers, all received, and 5 duplicates: lost −5 → 0.
	for i := 200; i < 205; i++ {
		s.Update(pcmu(0xC0FFEE, 1000, i))
		s.Update(pcmu(0xC0FFEE, 1000, i))
	}
	want = rtpstats.Block{SSRC: 0xC0FFEE, FractionLost: 0, CumulativeLost: 25, ExtHighestSeq: 1204}
	if b := s.Report(); b != want {
		t.Errorf("report 4 = %+v, want %+v", b, want)
	}
}

// Cumulative loss beyond the 24-bit field clamps to 0x7fffff. Each step is
// the largest A.1 still takes as loss (MAX_DROPOUT − 1 = 2999), which also
// exercises loss runs longer than the window.
func TestCumulativeLostClamp(t *testing.T) {
	const n, step = 2800, 2999
	s := rtpstats.NewStream(nil)
	for i := range n {
		p := pcmu(1, 0, i)
		p.Seq = uint16(i * step)
		s.Update(p)
	}
	st := s.Stats()
	lost := int64((n - 1) * (step - 1)) // 8,391,402
	received := make([]bool, (n-1)*step+1)
	for i := 0; i < len(received); i += step {
		received[i] = true
	}
	mean, burstR := refBurst(received)
	checkLoss(t, st, uint64(len(received)), lost, mean, burstR)
	b := s.Report()
	if b.CumulativeLost != 0x7fffff || b.FractionLost != 255 || b.ExtHighestSeq != uint32((n-1)*step) {
		t.Errorf("Report = %+v (lost %d)", b, lost)
	}
}
