package quality

import "strings"

// Codec is a speech codec's E-model planning values and the timing a caller
// needs to estimate mouth-to-ear delay.
type Codec struct {
	// Name is the codec's canonical name, e.g. "G.711", "G.729A".
	Name string
	// Ie is the equipment impairment factor and Bpl the packet-loss
	// robustness factor, ITU-T G.113 Appendix I.
	Ie, Bpl float64
	// FrameMs is the codec's frame length and LookaheadMs its look-ahead;
	// their sum is the algorithmic delay of the encoder. G.711 codes
	// sample by sample, so its "frame" is one 8 kHz sample (0.125 ms).
	FrameMs, LookaheadMs float64
	// ClockRate is the RTP clock rate, Hz.
	ClockRate uint32
	// PtimeMs is the default RTP packetization time (RFC 3551, Table 1):
	// the audio carried by one packet, which the sender must wait for.
	PtimeMs float64
	// PLC is true when Ie and Bpl assume packet-loss concealment.
	PLC bool
}

// AlgorithmicDelayMs returns FrameMs + LookaheadMs, the encoder's
// contribution to mouth-to-ear delay before packetization.
func (c Codec) AlgorithmicDelayMs() float64 { return c.FrameMs + c.LookaheadMs }

// codecEntry is one row of the codec table: the codec and the names it is
// looked up by (case-insensitively). To support another codec, add a row;
// for codecs whose values depend on concealment, add one row per PLC
// setting with the same aliases, as for G.711.
type codecEntry struct {
	Codec
	aliases []string
}

var g711Aliases = []string{"PCMU", "PCMA", "G711", "G.711", "G711U", "G711A"}

// codecTable holds ITU-T G.113 Appendix I planning values (Ie, Bpl) with
// G.711, G.729 and G.723.1 frame and look-ahead lengths and RFC 3551
// default packet times. It is never modified at run time.
var codecTable = [...]codecEntry{
	{
		// G.711 with the packet-loss concealment of G.711 Appendix I.
		Codec: Codec{Name: "G.711", Ie: 0, Bpl: 25.1, FrameMs: 0.125,
			LookaheadMs: 0, ClockRate: 8000, PtimeMs: 20, PLC: true},
		aliases: g711Aliases,
	},
	{
		// G.711 without concealment, random loss.
		Codec: Codec{Name: "G.711", Ie: 0, Bpl: 4.3, FrameMs: 0.125,
			LookaheadMs: 0, ClockRate: 8000, PtimeMs: 20, PLC: false},
		aliases: g711Aliases,
	},
	{
		// G.729A with VAD; the codec's built-in concealment.
		Codec: Codec{Name: "G.729A", Ie: 11, Bpl: 19.0, FrameMs: 10,
			LookaheadMs: 5, ClockRate: 8000, PtimeMs: 20, PLC: true},
		aliases: []string{"G729", "G729A", "G.729", "G.729A", "G729AB", "G.729AB"},
	},
	{
		// G.723.1 at 6.3 kbit/s with VAD; built-in concealment.
		Codec: Codec{Name: "G.723.1", Ie: 15, Bpl: 16.1, FrameMs: 30,
			LookaheadMs: 7.5, ClockRate: 8000, PtimeMs: 30, PLC: true},
		aliases: []string{"G723", "G723.1", "G.723", "G.723.1"},
	},
}

// LookupCodec finds a codec by name, case-insensitively: "PCMU", "PCMA",
// "G711", "G.711", "G729", "G729A", "G.729", "G723", "G723.1", "G.723.1" and
// a few more spellings. plc selects between the G.711 rows with and without
// packet-loss concealment; the other codecs have built-in concealment and
// ignore it. It does not allocate.
func LookupCodec(name string, plc bool) (Codec, bool) {
	var found *codecEntry
	for i := range codecTable {
		e := &codecTable[i]
		for _, a := range e.aliases {
			if !strings.EqualFold(a, name) {
				continue
			}
			if e.PLC == plc {
				return e.Codec, true
			}
			if found == nil {
				found = e
			}
		}
	}
	if found == nil {
		return Codec{}, false
	}
	return found.Codec, true
}

// Codecs returns the codec table, in a new slice the caller may modify.
func Codecs() []Codec {
	cs := make([]Codec, len(codecTable))
	for i := range codecTable {
		cs[i] = codecTable[i].Codec
	}
	return cs
}

// defaultBase caches the delay-independent terms of the Table 3 defaults,
// which Estimate does not change.
var defaultBase = DefaultParams().base().cached()

// Estimate answers the common call-quality question with the full model:
// codec c, mouth-to-ear delay mouthToEarMs and packet loss lossPct (percent)
// with burst ratio burstR. It sets Ta = T = mouthToEarMs and Tr =
// 2·mouthToEarMs (the talker and listener echo terms count, at the default
// TELR and WEPL), Ie and Bpl from c, Ppl = lossPct and BurstR = burstR, and
// keeps every other parameter at its Table 3 default. It returns R and
// MOS(R), the same values as the equivalent Params' R would give, without
// allocating.
//
// Out-of-range inputs are clamped: a negative delay to 0, lossPct into
// [0, 100], and burstR ≤ 0 means 1 (random loss). NaN inputs give NaN.
func Estimate(c Codec, mouthToEarMs, lossPct, burstR float64) (r, mos float64) {
	p := DefaultParams()
	if mouthToEarMs < 0 {
		mouthToEarMs = 0
	}
	if burstR <= 0 {
		burstR = 1
	}
	p.Ta, p.T, p.Tr = mouthToEarMs, mouthToEarMs, 2*mouthToEarMs
	p.Ie, p.Bpl = c.Ie, c.Bpl
	p.Ppl = min(max(lossPct, 0), 100)
	p.BurstR = burstR
	r = p.terms(defaultBase).R
	return r, MOS(r)
}
