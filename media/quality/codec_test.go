package quality

import (
	"math"
	"testing"
)

func TestLookupCodec(t *testing.T) {
	for _, tc := range []struct {
		name              string
		plc               bool
		want              string
		ie, bpl, fr, look float64
		wantPLC           bool
	}{
		{"PCMU", true, "G.711", 0, 25.1, 0.125, 0, true},
		{"pcma", true, "G.711", 0, 25.1, 0.125, 0, true},
		{"G711", false, "G.711", 0, 4.3, 0.125, 0, false},
		{"PcMu", false, "G.711", 0, 4.3, 0.125, 0, false},
		{"G729", false, "G.729A", 11, 19.0, 10, 5, true}, // plc ignored
		{"g729a", true, "G.729A", 11, 19.0, 10, 5, true},
		{"G723", true, "G.723.1", 15, 16.1, 30, 7.5, true},
		{"G723.1", false, "G.723.1", 15, 16.1, 30, 7.5, true},
	} {
		c, ok := LookupCodec(tc.name, tc.plc)
		if !ok {
			t.Errorf("LookupCodec(%q) not found", tc.name)
			continue
		}
		if c.Name != tc.want || c.Ie != tc.ie || c.Bpl != tc.bpl ||
			c.FrameMs != tc.fr || c.LookaheadMs != tc.look || c.PLC != tc.wantPLC ||
			c.ClockRate != 8000 {
			t.Errorf("LookupCodec(%q, %v) = %+v", tc.name, tc.plc, c)
		}
	}
	for _, name := range []string{"", "opus", "G722", "PCM", "G.729X"} {
		if c, ok := LookupCodec(name, true); ok {
			t.Errorf("LookupCodec(%q) = %+v, want not found", name, c)
		}
	}
	c, _ := LookupCodec("G.723.1", true)
	if got := c.AlgorithmicDelayMs(); got != 37.5 {
		t.Errorf("G.723.1 algorithmic delay = %v, want 37.5", got)
	}
}

func TestCodecsIsACopy(t *testing.T) {
	cs := Codecs()
	if len(cs) != 4 {
		t.Fatalf("len(Codecs()) = %d, want 4", len(cs))
	}
	cs[0].Ie = 99
	if Codecs()[0].Ie == 99 {
		t.Fatal("Codecs() exposes the table")
	}
	for _, c := range Codecs() {
		if c.Bpl <= 0 || c.Ie < 0 || c.Ie > 95 || c.PtimeMs <= 0 || c.ClockRate == 0 {
			t.Errorf("bad row %+v", c)
		}
	}
}

// Estimate must give exactly what the equivalent Params give.
func TestEstimateMatchesParams(t *testing.T) {
	for _, c := range Codecs() {
		for _, ta := range []float64{0, 0.5, 1, 20, 100, 107, 108, 109, 150, 177.5, 300, 600} {
			for _, loss := range []float64{0, 0.5, 2, 10, 100} {
				for _, burst := range []float64{1, 2, 4.5} {
					p := DefaultParams()
					p.Ie, p.Bpl, p.Ppl, p.BurstR = c.Ie, c.Bpl, loss, burst
					p.Ta, p.T, p.Tr = ta, ta, 2*ta
					if err := p.Validate(); err != nil {
						t.Fatal(err)
					}
					r, mos := Estimate(c, ta, loss, burst)
					if want := p.R(); r != want {
						t.Errorf("%s %v ms %v%% b%v: Estimate %v, R() %v", c.Name, ta, loss, burst, r, want)
					}
					if mos != MOS(r) {
						t.Errorf("mos %v != MOS(r) %v", mos, MOS(r))
					}
				}
			}
		}
	}
	// G.729A, 100 ms, 2 % loss at BurstR 2 (independent implementation).
	c, _ := LookupCodec("G729", false)
	r, _ := Estimate(c, 100, 2, 2)
	near(t, "G.729A 100 ms 2% b2", r, 71.2637303, 1e-6)
}

func TestEstimateClamps(t *testing.T) {
	c, _ := LookupCodec("PCMA", true)
	same := func(name string, a, b float64) {
		t.Helper()
		if a != b {
			t.Errorf("%s: %v != %v", name, a, b)
		}
	}
	r0, _ := Estimate(c, 0, 1, 1)
	rn, _ := Estimate(c, -5, 1, 1)
	same("negative delay", rn, r0)
	r1, _ := Estimate(c, 150, 3, 1)
	rb, _ := Estimate(c, 150, 3, 0)
	rbn, _ := Estimate(c, 150, 3, -2)
	same("burstR 0", rb, r1)
	same("burstR < 0", rbn, r1)
	r100, _ := Estimate(c, 150, 100, 1)
	rover, _ := Estimate(c, 150, 250, 1)
	same("loss > 100", rover, r100)
	rneg, _ := Estimate(c, 150, -3, 1)
	rzero, _ := Estimate(c, 150, 0, 1)
	same("negative loss", rneg, rzero)
	if r, m := Estimate(c, math.NaN(), 0, 1); !math.IsNaN(r) || !math.IsNaN(m) {
		t.Errorf("NaN delay: %v, %v", r, m)
	}
	if r, _ := Estimate(c, 150, math.NaN(), 1); !math.IsNaN(r) {
		t.Errorf("NaN loss: %v", r)
	}
}

func TestNoAllocations(t *testing.T) {
	c, _ := LookupCodec("G729", false)
	p := g711Delay(150)
	var sink float64
	for name, f := range map[string]func(){
		"Estimate":    func() { r, m := Estimate(c, 180, 1.5, 2); sink += r + m },
		"R":           func() { sink += p.R() },
		"Terms":       func() { sink += p.Terms().R },
		"MOS":         func() { sink += MOS(80) },
		"LookupCodec": func() { c2, _ := LookupCodec("pcmu", true); sink += c2.Bpl },
		"Validate":    func() { _ = p.Validate() },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s allocates %v times", name, n)
		}
	}
	_ = sink
}
