package impair

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

const ptime = int64(20 * time.Millisecond) // RTP packet spacing

func mustNew(t testing.TB, c Config) *Model {
	t.Helper()
	m, err := New(c)
	if err != nil {
		t.Fatalf("New(%+v): %v", c, err)
	}
	return m
}

// drops runs m for n packets sent every ptime and returns the loss pattern.
func drops(m *Model, n int) []bool {
	out := make([]bool, n)
	for i := range out {
		_, out[i] = m.Next(int64(i) * ptime)
	}
	return out
}

// lossStats measures a loss pattern: the loss rate, the mean length of the
// runs of losses, and the loss probability after a loss and after a
// delivered packet.
type lossStats struct {
	rate, meanRun, afterLoss, afterOK float64
	runs, longRuns                    int // runs, runs of two or more
}

func measure(d []bool) lossStats {
	var s lossStats
	lost, run, lossLoss, prevLoss, okLoss, prevOK := 0, 0, 0, 0, 0, 0
	for i, l := range d {
		if l {
			lost++
			run++
		} else if run > 0 {
			s.runs++
			if run > 1 {
				s.longRuns++
			}
			run = 0
		}
		if i > 0 {
			if d[i-1] {
				prevLoss++
				if l {
					lossLoss++
				}
			} else {
				prevOK++
				if l {
					okLoss++
				}
			}
		}
	}
	if run > 0 {
		s.runs++
		if run > 1 {
			s.longRuns++
		}
	}
	s.rate = float64(lost) / float64(len(d))
	s.meanRun = float64(lost) / float64(s.runs)
	s.afterLoss = float64(lossLoss) / float64(prevLoss)
	s.afterOK = float64(okLoss) / float64(prevOK)
	return s
}

func TestValidate(t *testing.T) {
	valid := []Config{
		{},
		{Delay: MaxDelay, Jitter: MaxDelay, Reorder: true, LossPct: 99.9, MeanBurst: 1000, Seed: -1},
		{LossPct: 50, MeanBurst: 1},
		{LossPct: 60}, // random loss has no burst constraint
	}
	for _, c := range valid {
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v, want nil", c, err)
		}
	}
	bad := []struct {
		c     Config
		field string
	}{
		{Config{Delay: -1}, "delay"},
		{Config{Delay: MaxDelay + 1}, "delay"},
		{Config{Jitter: -time.Millisecond}, "jitter"},
		{Config{Jitter: time.Hour}, "jitter"},
		{Config{LossPct: -0.1}, "loss_pct"},
		{Config{LossPct: 100}, "loss_pct"},
		{Config{LossPct: math.NaN()}, "loss_pct"},
		{Config{LossPct: 5, MeanBurst: 0.5}, "mean_burst"},
		{Config{MeanBurst: 0.5}, "mean_burst"}, // checked even without loss
		{Config{MeanBurst: -3}, "mean_burst"},
		{Config{MeanBurst: math.Inf(1)}, "mean_burst"},
		{Config{MeanBurst: math.NaN()}, "mean_burst"},
		{Config{LossPct: 80, MeanBurst: 2}, "mean_burst"}, // needs >= 4
	}
	for _, tc := range bad {
		err := tc.c.Validate()
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Field != tc.field {
			t.Errorf("Validate(%+v) = %v, want a ConfigError on %s", tc.c, err, tc.field)
			continue
		}
		if !strings.HasPrefix(err.Error(), "impair: "+tc.field+": ") {
			t.Errorf("error %q does not start with the field name", err)
		}
		if _, err := New(tc.c); err == nil {
			t.Errorf("New(%+v) accepted an invalid config", tc.c)
		}
	}
	if err := (Config{LossPct: 100}).Validate(); err.Error() != "impair: loss_pct: must be in [0, 100)" {
		t.Errorf("loss_pct error = %q", err)
	}
	if err := (Config{LossPct: 80, MeanBurst: 4}).Validate(); err != nil {
		t.Errorf("the smallest feasible burst was rejected: %v", err)
	}
}

func TestZero(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		zero bool
	}{
		{Config{}, true},
		{Config{Reorder: true, MeanBurst: 3, Seed: 9}, true}, // nothing to act on
		{Config{Delay: 1}, false},
		{Config{Jitter: 1}, false},
		{Config{LossPct: 0.01}, false},
	} {
		if got := tc.c.Zero(); got != tc.zero {
			t.Errorf("%+v.Zero() = %v, want %v", tc.c, got, tc.zero)
		}
	}
	m := mustNew(t, Config{})
	for i := int64(-5); i < 1000; i++ {
		if d, drop := m.Next(i * 7); drop || d != i*7 {
			t.Fatalf("zero config: Next(%d) = %d, %v", i*7, d, drop)
		}
	}
}

func TestDeterminism(t *testing.T) {
	c := Config{Delay: 30 * time.Millisecond, Jitter: 15 * time.Millisecond, Reorder: true, LossPct: 8, MeanBurst: 2.5, Seed: 42}
	type decision struct {
		at   int64
		drop bool
	}
	run := func(c Config) []decision {
		m := mustNew(t, c)
		out := make([]decision, 20000)
		for i := range out {
			out[i].at, out[i].drop = m.Next(int64(i) * ptime)
		}
		return out
	}
	a, b := run(c), run(c)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed differs at packet %d: %+v vs %+v", i, a[i], b[i])
		}
	}
	c.Seed = 43
	other := run(c)
	sameDrops, sameTimes := true, true
	for i := range a {
		sameDrops = sameDrops && a[i].drop == other[i].drop
		sameTimes = sameTimes && (a[i].drop || other[i].drop || a[i].at == other[i].at)
	}
	if sameDrops || sameTimes {
		t.Errorf("seeds 42 and 43 agree: drops %v, delivery times %v", sameDrops, sameTimes)
	}
}

// TestLossIndependentOfTiming backs the Pipe's promise: which packets are
// lost depends on the seed and the call count, not on send times, delay,
// jitter or reordering.
func TestLossIndependentOfTiming(t *testing.T) {
	base := Config{LossPct: 10, MeanBurst: 2, Seed: 7}
	want := drops(mustNew(t, base), 5000)
	timed := base
	timed.Delay, timed.Jitter, timed.Reorder = 80*time.Millisecond, 40*time.Millisecond, true
	m := mustNew(t, timed)
	sent := int64(1 << 40)
	for i, w := range want {
		sent += int64(i%7) * 1_000_003 // irregular spacing
		if _, drop := m.Next(sent); drop != w {
			t.Fatalf("packet %d: drop %v with timing, %v without", i, drop, w)
		}
	}
}

func TestLongRunLoss(t *testing.T) {
	const n = 200_000
	c := Config{LossPct: 5, MeanBurst: 3, Seed: 1}
	s := measure(drops(mustNew(t, c), n))
	t.Logf("π=5%% L=3 over %d packets: loss %.3f%%, mean burst %.3f over %d bursts, P(loss|loss) %.3f, P(loss|ok) %.4f",
		n, 100*s.rate, s.meanRun, s.runs, s.afterLoss, s.afterOK)
	if math.Abs(s.rate-0.05) > 0.003 {
		t.Errorf("loss rate %.4f%%, want 5 ± 0.3%%", 100*s.rate)
	}
	if math.Abs(s.meanRun-3) > 0.2 {
		t.Errorf("mean burst %.3f, want 3 ± 0.2", s.meanRun)
	}
	// The chain itself: stay Bad with 1−q = 2/3, enter Bad with p = 0.05/3/0.95.
	if math.Abs(s.afterLoss-2.0/3) > 0.03 {
		t.Errorf("P(loss | loss) = %.3f, want 0.667 ± 0.03", s.afterLoss)
	}
	if p := 0.05 / 3 / 0.95; math.Abs(s.afterOK-p) > 0.002 {
		t.Errorf("P(loss | ok) = %.4f, want %.4f ± 0.002", s.afterOK, p)
	}
}

// TestRandomLoss checks that MeanBurst 1 is Bernoulli loss: a loss is as
// likely after a loss as after a delivered packet, and runs are geometric
// with mean 1/(1−π), so about π of them are longer than one packet.
func TestRandomLoss(t *testing.T) {
	const n, pi = 200_000, 0.05
	for _, burst := range []float64{0, 1} { // 0 means 1
		s := measure(drops(mustNew(t, Config{LossPct: 100 * pi, MeanBurst: burst, Seed: 3}), n))
		long := float64(s.longRuns) / float64(s.runs)
		t.Logf("π=5%% L=%g: loss %.3f%%, mean run %.4f, runs ≥2 %.2f%%, P(loss|loss) %.4f, P(loss|ok) %.4f",
			burst, 100*s.rate, s.meanRun, 100*long, s.afterLoss, s.afterOK)
		if math.Abs(s.rate-pi) > 0.003 {
			t.Errorf("L=%g: loss rate %.4f, want %.2f ± 0.003", burst, s.rate, pi)
		}
		if math.Abs(s.afterLoss-pi) > 0.012 || math.Abs(s.afterOK-pi) > 0.003 {
			t.Errorf("L=%g: P(loss|loss) %.4f and P(loss|ok) %.4f, want both %.2f", burst, s.afterLoss, s.afterOK, pi)
		}
		if want := 1 / (1 - pi); math.Abs(s.meanRun-want) > 0.01 {
			t.Errorf("L=%g: mean run %.4f, want %.4f ± 0.01", burst, s.meanRun, want)
		}
		if math.Abs(long-pi) > 0.012 {
			t.Errorf("L=%g: %.2f%% of runs are 2 or longer, want %.0f%%", burst, 100*long, 100*pi)
		}
	}
}

// TestLossGrid checks rate and mean burst over a range of configurations,
// with tolerances of five standard errors from the chain's theory.
func TestLossGrid(t *testing.T) {
	const n = 200_000
	for i, c := range []Config{
		{LossPct: 1, MeanBurst: 1}, {LossPct: 1, MeanBurst: 4}, {LossPct: 10, MeanBurst: 1.5},
		{LossPct: 20, MeanBurst: 5}, {LossPct: 50, MeanBurst: 1}, {LossPct: 50, MeanBurst: 8},
		{LossPct: 80, MeanBurst: 10},
	} {
		c.Seed = int64(100 + i)
		p, q := c.transitions()
		pi := c.LossPct / 100
		rho := 1 - p - q // lag-one autocorrelation of the loss indicator
		rateSE := math.Sqrt(pi * (1 - pi) / n * (1 + rho) / (1 - rho))
		bursts := n * pi * q
		runSE := math.Sqrt((1 - q) / (q * q) / bursts)
		s := measure(drops(mustNew(t, c), n))
		if math.Abs(s.rate-pi) > 5*rateSE {
			t.Errorf("%+v: loss rate %.4f, want %.4f ± %.4f", c, s.rate, pi, 5*rateSE)
		}
		if math.Abs(s.meanRun-1/q) > 5*runSE {
			t.Errorf("%+v: mean run %.3f, want %.3f ± %.3f", c, s.meanRun, 1/q, 5*runSE)
		}
	}
}

func TestDelayInOrder(t *testing.T) {
	c := Config{Delay: 50 * time.Millisecond, Jitter: 40 * time.Millisecond, LossPct: 2, Seed: 5}
	m := mustNew(t, c)
	last, raised := int64(math.MinInt64), 0
	for i := range int64(50_000) {
		sent := i * ptime
		at, drop := m.Next(sent)
		if drop {
			continue
		}
		if at < sent+int64(c.Delay) {
			t.Fatalf("packet %d delivered %v after sending, below the base delay", i, time.Duration(at-sent))
		}
		if at < last {
			t.Fatalf("packet %d overtakes: delivered at %d, previous at %d", i, at, last)
		}
		if at == last {
			raised++
		}
		last = at
	}
	if raised == 0 {
		t.Error("with jitter 40 ms at 20 ms spacing, no delivery was held back for order")
	}
}

func TestReorderAndJitterDistribution(t *testing.T) {
	const n = 100_000
	c := Config{Delay: 10 * time.Millisecond, Jitter: 30 * time.Millisecond, Reorder: true, Seed: 11}
	m := mustNew(t, c)
	var sum, sumSq float64
	last, overtakes := int64(math.MinInt64), 0
	for i := range int64(n) {
		sent := i * ptime
		at, drop := m.Next(sent)
		if drop {
			t.Fatal("dropped a packet without loss configured")
		}
		extra := at - sent - int64(c.Delay)
		if extra < 0 || extra > 2*int64(c.Jitter) {
			t.Fatalf("packet %d: extra delay %v outside [0, 2·Jitter]", i, time.Duration(extra))
		}
		if at < last {
			overtakes++
		}
		last = at
		x := float64(extra) / float64(c.Jitter)
		sum += x
		sumSq += x * x
	}
	mean := sum / n
	sd := math.Sqrt(sumSq/n - mean*mean)
	t.Logf("jitter 30 ms: mean %.4f·J, sd %.4f·J (uniform: 1, %.4f), %d of %d overtake", mean, sd, 1/math.Sqrt(3), overtakes, n)
	if overtakes == 0 {
		t.Error("Reorder with jitter above the packet spacing never reordered")
	}
	if math.Abs(mean-1) > 0.01 || math.Abs(sd-1/math.Sqrt(3)) > 0.01 {
		t.Errorf("jitter mean %.4f·J, sd %.4f·J; want uniform on [0, 2J]: 1, %.4f", mean, sd, 1/math.Sqrt(3))
	}
}

func TestNextAllocs(t *testing.T) {
	m := mustNew(t, Config{Delay: time.Millisecond, Jitter: time.Millisecond, LossPct: 5, MeanBurst: 3, Seed: 1})
	var sent int64
	if a := testing.AllocsPerRun(10_000, func() { sent += ptime; m.Next(sent) }); a != 0 {
		t.Errorf("Next allocates %v times per call", a)
	}
}

func BenchmarkNext(b *testing.B) {
	for _, bc := range []struct {
		name string
		c    Config
	}{
		{"zero", Config{}},
		{"random-loss", Config{LossPct: 5, Seed: 1}},
		{"burst-jitter-fifo", Config{Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, LossPct: 5, MeanBurst: 3, Seed: 1}},
		{"burst-jitter-reorder", Config{Delay: 40 * time.Millisecond, Jitter: 10 * time.Millisecond, Reorder: true, LossPct: 5, MeanBurst: 3, Seed: 1}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			m := mustNew(b, bc.c)
			b.ReportAllocs()
			var sent int64
			for b.Loop() {
				sent += ptime
				m.Next(sent)
			}
		})
	}
}
