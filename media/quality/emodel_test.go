package quality

import (
	"errors"
	"math"
	"testing"
)

// Expected values below come from a separate implementation of the
// Recommendation's equations (a short Python script, not this code), from
// closed forms evaluated in the test, or from hand arithmetic shown in the
// comments.

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if !(math.Abs(got-want) <= tol) { // also catches NaN
		t.Errorf("%s = %.9g, want %.9g ± %g", name, got, want, tol)
	}
}

// checkSums verifies that Terms adds up as (7-1), (7-8) and (7-18) say.
func checkSums(t *testing.T, tm Terms) {
	t.Helper()
	near(t, "Iolr+Ist+Iq", tm.Iolr+tm.Ist+tm.Iq, tm.Is, 1e-12)
	near(t, "Idte+Idle+Idd", tm.Idte+tm.Idle+tm.Idd, tm.Id, 1e-12)
	near(t, "Ro-Is-Id-IeEff+A", tm.Ro-tm.Is-tm.Id-tm.IeEff+tm.A, tm.R, 1e-12)
}

func TestDefaultsGiveR93_2(t *testing.T) {
	p := DefaultParams()
	if err := p.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	tm := p.Terms()
	near(t, "R (G.107: 93.2)", tm.R, 93.2, 0.1)
	near(t, "R", tm.R, 93.2062077, 1e-6)
	if p.R() != tm.R {
		t.Errorf("R() = %v, Terms().R = %v", p.R(), tm.R)
	}
	near(t, "No", tm.No, -61.1792144, 1e-6)
	near(t, "Ro", tm.Ro, 94.7688216, 1e-6)
	near(t, "Iolr", tm.Iolr, 0.4401781, 1e-6)
	near(t, "Ist", tm.Ist, -0.0007151, 1e-6)
	near(t, "Iq", tm.Iq, 0.9741051, 1e-6)
	near(t, "Is", tm.Is, 1.4135681, 1e-6)
	near(t, "Idte", tm.Idte, 0, 0) // T = 0: echo is sidetone
	near(t, "Idle", tm.Idle, 0.1490457, 1e-6)
	near(t, "Idd", tm.Idd, 0, 0) // Ta = 0 ≤ mT
	near(t, "IeEff", tm.IeEff, 0, 0)
	checkSums(t, tm)
}

// g711Delay is G.711 with PLC at mouth-to-ear delay ta, T = Ta, Tr = 2·Ta.
func g711Delay(ta float64) Params {
	p := DefaultParams()
	p.Ie, p.Bpl = 0, 25.1
	p.Ta, p.T, p.Tr = ta, ta, 2*ta
	return p
}

func TestWorkedValuesG711(t *testing.T) {
	for _, tc := range []struct {
		ta, want, precise float64
	}{
		{150, 89.54, 89.5391320},
		{300, 72.67, 72.6663601},
	} {
		p := g711Delay(tc.ta)
		tm := p.Terms()
		near(t, "R", tm.R, tc.want, 0.01)
		near(t, "R (precise)", tm.R, tc.precise, 1e-6)
		checkSums(t, tm)
		c, _ := LookupCodec("PCMU", true)
		r, _ := Estimate(c, tc.ta, 0, 1)
		near(t, "Estimate", r, tc.want, 0.01)
	}
	// Short delays, where the factor (1 − e^(−T)) of (7-19) still counts
	// at 5 ms.
	for _, tc := range []struct{ ta, idte, idle, r float64 }{
		{5, 0.0246414, 0.2913329, 93.0392792},
		{20, 0.3918529, 0.4320571, 92.5313435},
	} {
		tm := g711Delay(tc.ta).Terms()
		near(t, "Idte", tm.Idte, tc.idte, 1e-6)
		near(t, "Idle", tm.Idle, tc.idle, 1e-6)
		near(t, "R", tm.R, tc.r, 1e-6)
	}
	// The terms at 150 ms: talker echo 2.81, listener echo 0.84, delay 0.16.
	tm := g711Delay(150).Terms()
	near(t, "Idte@150", tm.Idte, 2.8118438, 1e-6)
	near(t, "Idle@150", tm.Idle, 0.8407465, 1e-6)
	near(t, "Idd@150", tm.Idd, 0.1635312, 1e-6)
	tm = g711Delay(300).Terms()
	near(t, "Idte@300", tm.Idte, 4.8339400, 1e-6)
	near(t, "Idle@300", tm.Idle, 1.0942587, 1e-6)
	near(t, "Idd@300", tm.Idd, 14.7606947, 1e-6)
}

// The shortcut R = 93.2 − Idd − Ie,eff drops the echo terms; at 150 ms it
// overestimates the full model by about 3.5.
func TestShortcutIsNotTheModel(t *testing.T) {
	tm := g711Delay(150).Terms()
	shortcut := 93.2 - tm.Idd - tm.IeEff
	near(t, "shortcut", shortcut, 93.04, 0.01)
	near(t, "full", tm.R, 89.54, 0.01)
	if d := shortcut - tm.R; d < 3.4 || d > 3.6 {
		t.Errorf("shortcut − full = %.3f, want ≈ 3.5", d)
	}
}

func TestIeEff(t *testing.T) {
	for _, tc := range []struct {
		name                string
		ie, bpl, ppl, burst float64
		want                float64
	}{
		// 11 + (95 − 11)·2/(2/1 + 19) = 11 + 168/21 = 19
		{"G.729A 2% random", 11, 19, 2, 1, 19},
		// 11 + 84·2/(2/2 + 19) = 11 + 168/20 = 19.4
		{"G.729A 2% BurstR 2", 11, 19, 2, 2, 19.4},
		// 95·1/(1 + 4.3) = 17.924528…
		{"G.711 no PLC 1%", 0, 4.3, 1, 1, 95.0 / 5.3},
		// 95·1/(1 + 25.1) = 3.639846…
		{"G.711 PLC 1%", 0, 25.1, 1, 1, 95.0 / 26.1},
		// 15 + 80·5/(5/4 + 16.1) = 15 + 400/17.35 = 38.054755…
		{"G.723.1 5% BurstR 4", 15, 16.1, 5, 4, 15 + 400/17.35},
		// all packets lost: 11 + 84·100/(100 + 19) = 81.588…
		{"G.729A 100%", 11, 19, 100, 1, 11 + 8400.0/119},
		{"no loss", 11, 0, 0, 0, 11}, // Bpl, BurstR irrelevant, no NaN
	} {
		p := DefaultParams()
		p.Ie, p.Bpl, p.Ppl, p.BurstR = tc.ie, tc.bpl, tc.ppl, tc.burst
		tm := p.Terms()
		near(t, tc.name, tm.IeEff, tc.want, 1e-9)
		// Only Ie,eff differs from the defaults: R = 93.2062077 − Ie,eff.
		near(t, tc.name+" R", tm.R, 93.2062077-tc.want, 1e-6)
	}
}

func TestIdd(t *testing.T) {
	// Ta = 2·mT gives X = 1 in (7-28), so (7-27) reduces to
	// 25·(2^(1/e) − 3·(1 + 3^−e)^(1/e) + 2) with e = 6·sT.
	x1 := func(e float64) float64 {
		return 25 * (math.Pow(2, 1/e) - 3*math.Pow(1+math.Pow(3, -e), 1/e) + 2)
	}
	for _, tc := range []struct {
		name       string
		ta, mt, st float64
		want       float64
	}{
		{"Ta = mT", 100, 100, 1, 0},
		{"Ta < mT", 80, 100, 1, 0},
		{"X=1", 200, 100, 1, x1(6)},
		{"X=1 mT 150", 300, 150, 1, x1(6)},
		{"X=1 sT 0.5", 200, 100, 0.5, x1(3)},
	} {
		p := DefaultParams()
		p.Ta, p.MT, p.ST = tc.ta, tc.mt, tc.st
		near(t, tc.name, p.Terms().Idd, tc.want, 1e-12)
	}
	near(t, "x1(6)", x1(6), 3.0444142, 1e-6)
	near(t, "x1(3)", x1(3), 5.5833020, 1e-6)

	// Idd tends to 25·(X − X + 2) = 50 for very long delays.
	p := DefaultParams()
	p.Ta = 1e6
	if idd := p.Terms().Idd; idd < 49 || idd > 50 {
		t.Errorf("Idd(1000 s) = %v, want in [49, 50]", idd)
	}
}

// STMR < 9 dB: TERV becomes TERVs = TERV + Ist/2 (7-23); STMR > 20 dB: Idte
// becomes Idtes = √(Idte² + Ist²) (7-24). T = Ta = 50 ms, Tr = 100 ms,
// LSTR = STMR + Dr.
func TestSidetoneRules(t *testing.T) {
	for _, tc := range []struct {
		stmr, ist, idte, r float64
	}{
		{5, 4.1919681, 0.8336954, 87.7036510},
		{15, -0.0007152, 1.0229454, 91.7561612},
		{25, 2.4807615, 2.6834657, 87.6188546},
	} {
		p := DefaultParams()
		p.STMR, p.LSTR = tc.stmr, tc.stmr+p.Dr
		p.T, p.Ta, p.Tr = 50, 50, 100
		tm := p.Terms()
		near(t, "Ist", tm.Ist, tc.ist, 1e-6)
		near(t, "Idte", tm.Idte, tc.idte, 1e-6)
		near(t, "R", tm.R, tc.r, 1e-6)
		checkSums(t, tm)
	}
}

// Below T = 1 ms the talker echo counts as sidetone (Idte = 0). Just above,
// (7-19) is slightly negative (up to T ≈ 4.1 ms with the defaults), so R
// steps up by 0.11 at T = 1 ms: the model's only rise of R with delay.
func TestTalkerEchoBelow1ms(t *testing.T) {
	c, _ := LookupCodec("G711", true)
	below, above := g711Delay(0.99).Terms(), g711Delay(1).Terms()
	near(t, "Idte(0.99)", below.Idte, 0, 0)
	near(t, "Idte(1)", above.Idte, -0.1089304, 1e-6)
	r0, _ := Estimate(c, 0.99, 0, 1)
	r1, _ := Estimate(c, 1, 0, 1)
	near(t, "R step at 1 ms", r1-r0, 0.1085560, 1e-6)
}

// Noise, loudness, quantizing distortion and advantage away from the
// defaults: SLR 12, RLR 5, Nc −60, Ps 50, Pr 45, qdu 4, A 5.
func TestNoisyConnection(t *testing.T) {
	p := DefaultParams()
	p.SLR, p.RLR, p.Nc, p.Ps, p.Pr, p.Qdu, p.A = 12, 5, -60, 50, 45, 4, 5
	tm := p.Terms()
	near(t, "No", tm.No, -55.5711374, 1e-6)
	near(t, "Ro", tm.Ro, 80.3567061, 1e-6)
	near(t, "Iolr", tm.Iolr, 0.0096799, 1e-6)
	near(t, "Iq", tm.Iq, 5.7549869, 1e-6)
	near(t, "Is", tm.Is, 5.7639516, 1e-6)
	near(t, "Idle", tm.Idle, 0.1471753, 1e-6)
	near(t, "A", tm.A, 5, 0)
	near(t, "R", tm.R, 79.4455792, 1e-6)
	checkSums(t, tm)
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		mutate func(*Params)
		field  string
		msg    string
	}{
		{func(p *Params) { p.Ppl = 101 }, "Ppl", "quality: Ppl: must be in [0, 100]"},
		{func(p *Params) { p.Ppl = -1 }, "Ppl", "quality: Ppl: must be in [0, 100]"},
		{func(p *Params) { p.SLR = math.NaN() }, "SLR", "quality: SLR: must be finite"},
		{func(p *Params) { p.Pr = math.Inf(1) }, "Pr", "quality: Pr: must be finite"},
		{func(p *Params) { p.ST = math.Inf(-1) }, "ST", "quality: ST: must be finite"},
		{func(p *Params) { p.WEPL = -1 }, "WEPL", "quality: WEPL: must be ≥ 0"},
		{func(p *Params) { p.T = -1 }, "T", "quality: T: must be ≥ 0"},
		{func(p *Params) { p.Tr = -1 }, "Tr", "quality: Tr: must be ≥ 0"},
		{func(p *Params) { p.Ta = -0.5 }, "Ta", "quality: Ta: must be ≥ 0"},
		{func(p *Params) { p.Qdu = 0.5 }, "Qdu", "quality: Qdu: must be ≥ 1"},
		{func(p *Params) { p.Ie = 96 }, "Ie", "quality: Ie: must be in [0, 95]"},
		{func(p *Params) { p.Bpl = 0 }, "Bpl", "quality: Bpl: must be > 0"},
		{func(p *Params) { p.BurstR = 0 }, "BurstR", "quality: BurstR: must be > 0"},
		{func(p *Params) { p.A = 21 }, "A", "quality: A: must be in [0, 20]"},
		{func(p *Params) { p.MT = 0 }, "MT", "quality: MT: must be > 0"},
		{func(p *Params) { p.ST = -1 }, "ST", "quality: ST: must be > 0"},
	} {
		p := DefaultParams()
		tc.mutate(&p)
		err := p.Validate()
		if err == nil {
			t.Errorf("%s: Validate() = nil, want error", tc.field)
			continue
		}
		if err.Error() != tc.msg {
			t.Errorf("Validate() = %q, want %q", err, tc.msg)
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("Validate() = %#v, want *FieldError for %s", err, tc.field)
		}
	}

	// Valid beyond Table 3's permitted ranges, on purpose.
	p := DefaultParams()
	p.STMR, p.LSTR, p.Ppl, p.BurstR, p.Ta, p.T, p.Tr = 5, 8, 50, 0.5, 800, 800, 1600
	if err := p.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}
