package quality

import "math"

// Terms is one evaluation of the E-model, term by term, for tests and for
// explaining a score: R = Ro − Is − Id − IeEff + A.
type Terms struct {
	No float64 // total noise power at the 0 dBr point, dBm0p, (7-3)
	Ro float64 // basic signal-to-noise ratio, (7-2)

	Iolr float64 // impairment of a too-low overall loudness rating, (7-9)
	Ist  float64 // impairment of non-optimum sidetone, (7-11)
	Iq   float64 // impairment of quantizing distortion, (7-13)
	Is   float64 // simultaneous impairment factor Iolr + Ist + Iq, (7-8)

	Idte float64 // talker echo impairment, (7-19) (Idtes of (7-24) when STMR > 20 dB)
	Idle float64 // listener echo impairment, (7-25)
	Idd  float64 // absolute delay impairment, (7-27)
	Id   float64 // delay impairment factor Idte + Idle + Idd, (7-18)

	IeEff float64 // effective equipment impairment factor Ie,eff, (7-29)
	A     float64 // advantage factor, §7.6
	R     float64 // transmission rating factor, (7-1)
}

// R returns the transmission rating factor of G.107 §7.1, (7-1):
// R = Ro − Is − Id − Ie,eff + A. It does not validate p (see Validate);
// inputs outside the equations' domain give NaN or meaningless values. R
// does not allocate.
func (p Params) R() float64 { return p.terms(p.base()).R }

// Terms evaluates the model and returns every term. It does not validate p
// and does not allocate.
func (p Params) Terms() Terms { return p.terms(p.base()) }

// base holds the terms that depend neither on the delays (T, Tr, Ta) nor on
// the equipment and loss parameters, so that Estimate can compute them once
// for the Table 3 defaults.
type base struct {
	no, ro, iolr, iq, roe float64
	// stmr and telr are 10^(−STMR/10) and 10^(−TELR/10), the two terms of
	// (7-12).
	stmr, telr float64
	// Above the delay farT (ms), e^(−T/4)·telr < stmr·2⁻⁵⁴, so the talker
	// echo term of (7-12) vanishes in floating point and Ist equals istFar,
	// which cached() fills in (NaN until then).
	farT, istFar float64
}

// cached returns b with istFar computed, for bases that are reused.
func (b base) cached() base {
	b.istFar = ist(-10 * math.Log10(b.stmr))
	return b
}

func (p Params) base() base {
	var b base
	olr := p.SLR + p.RLR // overall loudness rating

	// §7.2, (7-4): the equivalent circuit noise of the room noise Ps at
	// the send side.
	nos := p.Ps - p.SLR - p.Ds - 100 + 0.004*sq(p.Ps-olr-p.Ds-14)
	// (7-6): the room noise at the receive side raised by the listener
	// sidetone path.
	pre := p.Pr + 10*math.Log10(1+exp10((10-p.LSTR)/10))
	// (7-5): the equivalent circuit noise of the receive-side room noise.
	nor := p.RLR - 121 + pre + 0.008*sq(pre-35)
	// (7-7): the noise floor at the receive side.
	nfo := p.Nfor + p.RLR
	// (7-3): the power sum of all noise sources.
	b.no = 10 * math.Log10(exp10(p.Nc/10)+exp10(nos/10)+exp10(nor/10)+exp10(nfo/10))
	// (7-2)
	b.ro = 15 - 1.5*(p.SLR+b.no)

	// §7.3, (7-10) and (7-9): too-low overall loudness.
	xolr := olr + 0.2*(64+b.no-p.RLR)
	b.iolr = 20 * (root(1+pow8(xolr/8), 8) - xolr/8)

	// (7-17), (7-16), (7-14), (7-15), (7-13): quantizing distortion.
	q := 37 - 15*math.Log10(p.Qdu)
	g := 1.07 + 0.258*q + 0.0602*q*q
	y := (b.ro-100)/15 + 46/8.4 - g/9
	z := 46.0/30 - g/40
	b.iq = 15 * math.Log10(1+exp10(y)+exp10(z))

	// §7.4, (7-20): the "signal-to-noise ratio" against which talker echo
	// is judged.
	b.roe = -1.5 * (b.no - p.RLR)

	b.stmr, b.telr = exp10(-p.STMR/10), exp10(-p.TELR/10)
	// e^(−T/4)·telr < stmr·2⁻⁵⁴ ⇔ T > 4·(ln(telr/stmr) + 54·ln 2); one
	// more unit of margin covers the rounding of the logarithms.
	b.farT = 4 * (math.Log(b.telr/b.stmr) + 54*math.Ln2 + 1)
	b.istFar = math.NaN()
	return b
}

func (p Params) terms(b base) Terms {
	t := Terms{No: b.no, Ro: b.ro, Iolr: b.iolr, Iq: b.iq, A: p.A}

	// §7.3, (7-12): sidetone masking rating including the talker echo,
	// which masks like sidetone when it returns within a few ms; (7-11).
	if p.T > b.farT && !math.IsNaN(b.istFar) {
		t.Ist = b.istFar // the same value, computed once
	} else {
		t.Ist = ist(-10 * math.Log10(b.stmr+math.Exp(-p.T/4)*b.telr))
	}
	t.Is = t.Iolr + t.Ist + t.Iq // (7-8)

	// §7.4, talker echo. (7-22): the talker echo rating, weighted by delay.
	terv := p.TELR - 40*math.Log10((1+p.T/10)/(1+p.T/150))
	if a := 0.3 * p.T * p.T; a < 746 { // beyond, e^(−a) underflows to 0
		terv += 6 * math.Exp(-a)
	}
	if p.STMR < 9 {
		// (7-23): a loud sidetone masks the echo: TERVs = TERV + Ist/2.
		terv += t.Ist / 2
	}
	if p.T >= 1 { // for T < 1 ms the echo counts as sidetone: Idte = 0
		re := 80 + 2.5*(terv-14) // (7-21)
		// (7-19)
		t.Idte = halfPlusRoot(b.roe-re, 100) - 1
		if p.T < 38 { // beyond, 1 − e^(−T) rounds to 1
			t.Idte *= 1 - math.Exp(-p.T)
		}
		if p.STMR > 20 {
			// (7-24): with little sidetone, echo and the missing
			// sidetone combine: Idtes = √(Idte² + Ist²).
			t.Idte = math.Sqrt(t.Idte*t.Idte + t.Ist*t.Ist)
		}
	}

	// (7-26) and (7-25): listener echo.
	rle := 10.5 * (p.WEPL + 7) / math.Sqrt(math.Sqrt(p.Tr+1)) // (Tr + 1)^(−1/4)
	t.Idle = halfPlusRoot(b.ro-rle, 169)

	// (7-28) and (7-27): absolute delay, zero up to mT.
	if p.Ta > p.MT {
		x := math.Log2(p.Ta / p.MT)
		if p.ST == 1 { // the default, e = 6, without math.Pow
			x2, y2 := x*x, x*x/9
			t.Idd = 25 * (root6(1+x2*x2*x2) - 3*root6(1+y2*y2*y2) + 2)
		} else {
			e := 6 * p.ST
			t.Idd = 25 * (root(1+math.Pow(x, e), e) - 3*root(1+math.Pow(x/3, e), e) + 2)
		}
	}
	t.Id = t.Idte + t.Idle + t.Idd // (7-18)

	t.IeEff = ieEff(p.Ie, p.Bpl, p.Ppl, p.BurstR)

	t.R = t.Ro - t.Is - t.Id - t.IeEff + t.A // (7-1)
	return t
}

// ist is (7-11), the sidetone impairment as a function of STMRo.
func ist(stmro float64) float64 {
	u := (stmro + 1) / 19.4
	u2 := u * u
	u35 := pow8(pow4(u)) * u2 * u // u^(32+2+1)
	v := (stmro - 3) / 33
	v4 := pow4(v)
	v13 := sq(v4) * v4 * v // v^(8+4+1)
	return 12*root(1+pow8((stmro-13)/6), 8) -
		28*root(1+u35, 35) -
		13*root(1+v13, 13) + 29
}

// ieEff is G.107 §7.5, (7-29):
// Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl/BurstR + Bpl).
// With no loss it is Ie, whatever Bpl and BurstR (even zero).
func ieEff(ie, bpl, ppl, burstR float64) float64 {
	if ppl == 0 {
		return ie
	}
	return ie + (95-ie)*ppl/(ppl/burstR+bpl)
}

// halfPlusRoot returns a/2 + √(a²/4 + c), the form shared by (7-19) and
// (7-25), for c > 0. For a < 0 the two terms nearly cancel, so it uses the
// equivalent c / (√(a²/4 + c) − a/2), which keeps full precision.
func halfPlusRoot(a, c float64) float64 {
	s := math.Sqrt(a*a/4 + c)
	if a >= 0 {
		return a/2 + s
	}
	return c / (s - a/2)
}

func sq(x float64) float64 { return x * x }

func pow4(x float64) float64 {
	x *= x
	return x * x
}

func pow8(x float64) float64 { return sq(pow4(x)) }

// root returns the n-th root x^(1/n) of x ≥ 0.
func root(x, n float64) float64 { return math.Pow(x, 1/n) }

// root6 returns x^(1/6) of x ≥ 0.
func root6(x float64) float64 { return math.Cbrt(math.Sqrt(x)) }

// exp10 returns 10^x.
func exp10(x float64) float64 { return math.Exp(x * math.Ln10) }
