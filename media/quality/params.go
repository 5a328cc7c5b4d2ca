package quality

import (
	"math"
	"strconv"
)

// Params holds every input of the G.107 E-model. Field names follow the
// Recommendation (§7.7, Table 3); levels and loudness ratings are in dB (or
// dBm0p / dB(A) as noted), delays in milliseconds, Ppl in percent.
//
// The zero value is not meaningful: start from DefaultParams and change the
// fields that differ.
type Params struct {
	SLR  float64 // send loudness rating, dB
	RLR  float64 // receive loudness rating, dB
	STMR float64 // sidetone masking rating, dB
	LSTR float64 // listener sidetone rating, dB
	Ds   float64 // D-value of the telephone, send side
	// Dr is the D-value of the telephone, receive side. No equation uses it
	// directly: it enters the model only through the relation
	// LSTR = STMR + Dr (defaults 18 = 15 + 3), so set LSTR accordingly when
	// changing Dr or STMR.
	Dr     float64
	TELR   float64 // talker echo loudness rating, dB
	WEPL   float64 // weighted echo path loss, dB
	T      float64 // mean one-way delay of the echo path, ms
	Tr     float64 // round-trip delay in a 4-wire loop, ms
	Ta     float64 // absolute (mouth-to-ear) delay in echo-free connections, ms
	Qdu    float64 // number of quantization distortion units, ≥ 1
	Ie     float64 // equipment impairment factor
	Bpl    float64 // packet-loss robustness factor
	Ppl    float64 // random packet-loss probability, percent
	BurstR float64 // burst ratio: 1 for random loss, > 1 for bursty loss
	Nc     float64 // circuit noise referred to the 0 dBr point, dBm0p
	Nfor   float64 // noise floor at the receive side, dBmp
	Ps     float64 // room noise at the send side, dB(A)
	Pr     float64 // room noise at the receive side, dB(A)
	A      float64 // advantage factor
	// MT (mT in the Recommendation) is the delay, in ms, below which the
	// absolute delay causes no impairment (Idd = 0), §7.4, (7-27).
	MT float64
	// ST (sT in the Recommendation) is the delay sensitivity: it scales the
	// exponents of Idd, §7.4, (7-27). 1 is the default for conversational
	// telephony; lower values model less delay-sensitive use.
	ST float64
}

// DefaultParams returns the default values of G.107 §7.7, Table 3. With
// them R = 93.206 ("R = 93.2" in the Recommendation).
func DefaultParams() Params {
	return Params{
		SLR:    8,
		RLR:    2,
		STMR:   15,
		LSTR:   18,
		Ds:     3,
		Dr:     3,
		TELR:   65,
		WEPL:   110,
		T:      0,
		Tr:     0,
		Ta:     0,
		Qdu:    1,
		Ie:     0,
		Bpl:    4.3,
		Ppl:    0,
		BurstR: 1,
		Nc:     -70,
		Nfor:   -64,
		Ps:     35,
		Pr:     35,
		A:      0,
		MT:     100,
		ST:     1,
	}
}

// FieldError reports a Params field that Validate rejects.
type FieldError struct {
	Field  string // the field's name in Params, e.g. "Ppl"
	Reason string // e.g. "must be in [0, 100]"
}

func (e *FieldError) Error() string {
	return "quality: " + e.Field + ": " + e.Reason
}

// Validate checks that p lies in the domain where the equations are defined
// and meaningful, and names the first bad field in a *FieldError, e.g.
// "quality: Ppl: must be in [0, 100]". Every field must be finite. The bounds
// are wider than the "permitted ranges" of Table 3 (within which the model's
// accuracy was verified), so that the STMR < 9 dB and STMR > 20 dB rules of
// §7.4 and loss beyond 20 % stay reachable:
//
//   - T, Tr, Ta ≥ 0; WEPL ≥ 0;
//   - Qdu ≥ 1 (one qdu is the PCM codec itself);
//   - Ie in [0, 95] (95 is the ceiling of Ie,eff, (7-29));
//   - Bpl > 0; Ppl in [0, 100]; BurstR > 0 (below 1 is smoother than random
//     loss in the two-state Markov model of §7.5);
//   - A in [0, 20] (the largest advantage factor listed in §7.6);
//   - MT > 0, ST > 0.
func (p Params) Validate() error {
	fields := [...]struct {
		name string
		v    float64
	}{
		{"SLR", p.SLR}, {"RLR", p.RLR}, {"STMR", p.STMR}, {"LSTR", p.LSTR},
		{"Ds", p.Ds}, {"Dr", p.Dr}, {"TELR", p.TELR}, {"WEPL", p.WEPL},
		{"T", p.T}, {"Tr", p.Tr}, {"Ta", p.Ta}, {"Qdu", p.Qdu},
		{"Ie", p.Ie}, {"Bpl", p.Bpl}, {"Ppl", p.Ppl}, {"BurstR", p.BurstR},
		{"Nc", p.Nc}, {"Nfor", p.Nfor}, {"Ps", p.Ps}, {"Pr", p.Pr},
		{"A", p.A}, {"MT", p.MT}, {"ST", p.ST},
	}
	for _, f := range fields {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return &FieldError{f.name, "must be finite"}
		}
	}
	switch {
	case p.WEPL < 0:
		return atLeast("WEPL", 0)
	case p.T < 0:
		return atLeast("T", 0)
	case p.Tr < 0:
		return atLeast("Tr", 0)
	case p.Ta < 0:
		return atLeast("Ta", 0)
	case p.Qdu < 1:
		return atLeast("Qdu", 1)
	case p.Ie < 0 || p.Ie > 95:
		return within("Ie", 0, 95)
	case p.Bpl <= 0:
		return positive("Bpl")
	case p.Ppl < 0 || p.Ppl > 100:
		return within("Ppl", 0, 100)
	case p.BurstR <= 0:
		return positive("BurstR")
	case p.A < 0 || p.A > 20:
		return within("A", 0, 20)
	case p.MT <= 0:
		return positive("MT")
	case p.ST <= 0:
		return positive("ST")
	}
	return nil
}

func num(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func atLeast(field string, lo float64) error {
	return &FieldError{field, "must be ≥ " + num(lo)}
}

func within(field string, lo, hi float64) error {
	return &FieldError{field, "must be in [" + num(lo) + ", " + num(hi) + "]"}
}

func positive(field string) error {
	return &FieldError{field, "must be > 0"}
}
