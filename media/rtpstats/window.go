package rtpstats

import "math/bits"

// Sequence-number validation constants of RFC 3550 Appendix A.1.
const (
	maxDropout  = 3000    // MAX_DROPOUT: largest forward gap taken as loss
	maxMisorder = 100     // MAX_MISORDER: deepest reordering accepted
	seqMod      = 1 << 16 // RTP_SEQ_MOD
)

// Window is the depth of the reordering window, in sequence numbers: a
// number is classified received or lost for the loss-run statistics once the
// highest sequence number seen is Window or more ahead of it. At 20 ms per
// packet that is 1.28 s, far longer than any jitter buffer waits.
const Window = 64

// seqState is the sequence accounting of one source: the A.1 state with the
// A.3 interval counters, and the reordering window with the loss-run model
// fed by it. An A.1 resynchronisation replaces it whole, as init_seq does.
//
// Sequence numbers are kept extended (A.1: cycles + max_seq) as int64 so
// that differences never wrap; the first packet's number is its own
// extension (cycles 0), and the base may move below it (see fill).
type seqState struct {
	base, max int64  // A.1 base_seq and cycles+max_seq, extended
	badSeq    uint32 // A.1 bad_seq: last "bad" sequence number + 1
	received  uint64 // A.1 received: packets accepted, duplicates included
	// A.3 expected_prior and received_prior, as of the last Report.
	expPrior, recvPrior uint64

	// win bit i is set when packet max−i has arrived. Numbers at or below
	// floor are classified already; bits for them, and for numbers below the
	// base, are always zero, so every set bit is a pending arrival.
	win   uint64
	floor int64
	loss  lossModel
}

// init is A.1 init_seq followed by the received++ of update_seq: seq is the
// first accepted packet of a new sequence space.
func (q *seqState) init(seq uint16) {
	*q = seqState{
		base:     int64(seq),
		max:      int64(seq),
		badSeq:   seqMod + 1, // matches no sequence number
		received: 1,
		win:      1,
		floor:    int64(seq) - 1,
	}
}

// expected is A.3 extended_max − base_seq + 1.
func (q *seqState) expected() uint64 { return uint64(q.max - q.base + 1) }

// extHighest is the extended highest sequence number of the report block,
// with the cycle count starting at 0 for the base. The base starts in cycle
// 0 and can only move down into cycle −1 (see fill), hence the correction.
func (q *seqState) extHighest() uint32 {
	if q.base < 0 {
		return uint32(q.max + seqMod)
	}
	return uint32(q.max)
}

// advance moves the highest sequence number forward to e (> max), which has
// just arrived. Numbers that fall out of the window are classified, in
// sequence order: first those still in the bitmap, then, for a jump longer
// than the window, the numbers that were skipped outright (all lost).
func (q *seqState) advance(e int64) {
	if nf := e - Window; nf > q.floor {
		if hi := min(nf, q.max); hi > q.floor {
			// Bit index max−s for s in floor+1..hi, oldest (highest index) first.
			q.loss.classify(q.win, uint(q.max-hi), uint(q.max-q.floor-1))
		}
		if nf > q.max {
			q.loss.missing(uint64(nf - q.max))
		}
		q.floor = nf
	}
	if d := e - q.max; d >= Window {
		q.win = 1
	} else {
		q.win = q.win<<uint(d) | 1
	}
	q.max = e
}

type fillResult uint8

const (
	filled fillResult = iota // a gap in the window, now reordered
	duplicate
	late // below the window: too late to tell from a duplicate
)

// fill records the arrival of e < max, a packet A.1 takes as "duplicate or
// reordered".
//
// Deviation from A.1, on purpose: when e is below the base but still within
// the window of the highest number (the first packets of the stream arrived
// out of order), the base moves down to e, so that the packets sent before
// the one that happened to arrive first are expected rather than counted as
// negative loss.
func (q *seqState) fill(e int64) fillResult {
	if e < q.base && e > q.max-Window {
		q.base, q.floor = e, e-1
	}
	if e <= q.floor {
		return late
	}
	bit := uint64(1) << uint(q.max-e)
	if q.win&bit != 0 {
		return duplicate
	}
	q.win |= bit
	return filled
}

// lossModel counts classified sequence numbers in sequence order, for the
// loss-run (burst) statistics: how many, how many lost, and how many runs of
// consecutive losses they form.
type lossModel struct {
	n, lost, runs uint64
	prevLost      bool // the last classified number was lost
}

// classify takes window bits lo..hi (hi the oldest number) in sequence order.
// Each bit's predecessor is the bit above it; the oldest one's is prevLost.
// A run starts at every lost number whose predecessor was received.
func (m *lossModel) classify(win uint64, lo, hi uint) {
	sel := ^uint64(0) >> (63 - hi) &^ (uint64(1)<<lo - 1)
	prev := win >> 1 // bit hi+1 of win is zero: see seqState.win
	if !m.prevLost {
		prev |= 1 << hi
	}
	width := uint64(hi - lo + 1)
	m.n += width
	m.lost += width - uint64(bits.OnesCount64(win&sel))
	m.runs += uint64(bits.OnesCount64(^win & prev & sel))
	m.prevLost = win>>lo&1 == 0
}

// missing takes k consecutive numbers that were never in the window. (In a
// Stream they always follow the old highest number, which arrived, so they
// always start a run; the check keeps the model right on its own.)
func (m *lossModel) missing(k uint64) {
	m.n += k
	m.lost += k
	if !m.prevLost {
		m.runs++
	}
	m.prevLost = true
}

// burst returns the mean loss-run length and the burst ratio.
//
// BurstR (ITU-T G.113 Appendix I, the G.107 E-model's burst ratio) is the
// mean length of the observed loss runs divided by the mean run length that
// random (Bernoulli) loss at the same rate would give, 1/(1 − Ppl):
//
//	BurstR = meanRun × (1 − Ppl)
//
// In the two-state Gilbert model with p = P(lost | previous received) and
// q = P(received | previous lost), meanRun = 1/q and Ppl = p/(p+q), so
// BurstR = 1/(p+q). Estimating p and q from the transition counts, each run
// entered once and left once (p = runs/received, q = runs/lost), gives
// exactly the formula above, which is what is computed. BurstR is 1 for
// random loss, above 1 for bursty loss, below 1 for loss more evenly spread
// than random; it is 1 when nothing was lost.
func (m lossModel) burst() (meanRun, ratio float64) {
	if m.lost == 0 || m.runs == 0 || m.n == 0 {
		return 0, 1
	}
	meanRun = float64(m.lost) / float64(m.runs)
	return meanRun, meanRun * (1 - float64(m.lost)/float64(m.n))
}
