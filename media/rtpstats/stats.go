package rtpstats

import (
	"math"
	"math/bits"
)

// Stats is a snapshot of a Stream. Totals cover the Stream's whole life; the
// rest covers the current source (since its SSRC appeared) and, for the
// sequence figures, since the last A.1 resynchronisation.
type Stats struct {
	SSRC uint32 // current source

	// Totals: every Update call, kept across SSRC changes.
	Packets, Bytes uint64

	// A.3, for the current sequence space. Expected is extended highest −
	// base + 1; Lost is Expected − received, where received counts
	// duplicates and late packets as A.1 does, so it may be negative.
	Expected uint64
	Lost     int64
	LossPct  float64 // Lost/Expected in percent, clamped to 0..100
	// IntervalLossPct is the loss since the last Report (A.3 interval
	// counters, not truncated to 8 bits), 0..100.
	IntervalLossPct float64

	Jitter    float64 // A.8 estimate, RTP timestamp units of ClockRate
	JitterMs  float64 // Jitter in milliseconds
	ClockRate uint32  // clock of the last timed packet; 0 if none yet

	// Loss runs, from the reordering window including its pending part
	// (see Pending). BurstRatio is G.113 BurstR (1 with no loss, see
	// lossModel.burst); MeanBurstLen is the mean length of runs of
	// consecutive lost sequence numbers, 0 with no loss.
	BurstRatio   float64
	MeanBurstLen float64
	// Pending is how many sequence numbers inside the reordering window
	// have not arrived (yet). They count as lost in BurstRatio and
	// MeanBurstLen, as in Lost, until they arrive or leave the window.
	Pending int

	// Duplicates: same number as one already in the window. Reordered:
	// arrived after a higher number and filled its gap in the window. Late:
	// up to MAX_MISORDER behind the highest but below the window, where a
	// late packet cannot be told from a duplicate; it counts as received in
	// Lost but stayed lost for the loss runs.
	Duplicates, Reordered, Late uint64
	// Rejected: set aside by A.1 as the first packet of a large sequence
	// jump. Resyncs: jumps confirmed, each restarting the sequence figures.
	Rejected, Resyncs uint64
	// SSRCChanges counts source restarts; Stray counts packets of the
	// replaced source that arrived after its replacement. Both are totals.
	SSRCChanges, Stray uint64

	FirstArrival, LastArrival int64 // ns, caller's base; arrival order

	// PtimeMs is the packetization interval inferred from the most recent
	// timestamp step between consecutive timed packets; 0 if unknown.
	PtimeMs float64
}

// Stats returns a snapshot of s. It has no side effects.
func (s *Stream) Stats() Stats {
	st := Stats{
		Packets:      s.packets,
		Bytes:        s.bytes,
		SSRCChanges:  s.ssrcChanges,
		Stray:        s.strayed,
		FirstArrival: s.firstArr,
		LastArrival:  s.lastArr,
		BurstRatio:   1,
	}
	if !s.started {
		return st
	}
	src := &s.src
	q := &src.seq
	st.SSRC = src.ssrc
	st.Expected = q.expected()
	st.Lost = int64(st.Expected) - int64(q.received)
	st.LossPct = percent(st.Lost, st.Expected)
	st.IntervalLossPct = percent(
		int64(st.Expected-q.expPrior)-int64(q.received-q.recvPrior),
		st.Expected-q.expPrior)

	st.Jitter = src.jitter
	st.ClockRate = src.clock
	if src.clock != 0 {
		st.JitterMs = src.jitter * 1000 / float64(src.clock)
	}

	// Close the window on a copy of the model: numbers floor+1..max are
	// window bits pending−1 (oldest) down to 0.
	pending := q.max - q.floor
	m := q.loss
	m.classify(q.win, 0, uint(pending-1))
	st.MeanBurstLen, st.BurstRatio = m.burst()
	st.Pending = int(pending) - bits.OnesCount64(q.win)

	st.Duplicates, st.Reordered, st.Late = src.dups, src.reordered, src.late
	st.Rejected, st.Resyncs = src.rejected, src.resyncs
	st.PtimeMs = src.ptime
	return st
}

func percent(lost int64, expected uint64) float64 {
	if expected == 0 || lost <= 0 {
		return 0
	}
	return min(100, float64(lost)*100/float64(expected))
}

// Block is the content of an RTCP reception report block (RFC 3550 §6.4.1)
// about one source, without LSR and DLSR, which belong to the Sender Report
// bookkeeping of whoever sends the report.
type Block struct {
	SSRC           uint32
	FractionLost   uint8  // lost/expected in the interval, 8-bit fixed point
	CumulativeLost int32  // A.3 lost, clamped to the signed 24-bit field
	ExtHighestSeq  uint32 // cycles + highest sequence number
	Jitter         uint32 // A.8 estimate in timestamp units, truncated
}

// Report returns the report block for the current source and closes the
// reporting interval: the next FractionLost (and Stats.IntervalLossPct)
// covers the packets from now on. This is A.3: expected_interval and
// received_interval against expected_prior and received_prior, fraction =
// (lost_interval << 8) / expected_interval, 0 when nothing or less than
// nothing was lost. Before any packet it returns the zero Block.
func (s *Stream) Report() Block {
	if !s.started {
		return Block{}
	}
	q := &s.src.seq
	expected := q.expected()
	expInt := expected - q.expPrior
	recvInt := q.received - q.recvPrior
	q.expPrior, q.recvPrior = expected, q.received

	b := Block{
		SSRC:           s.src.ssrc,
		CumulativeLost: clamp24(int64(expected) - int64(q.received)),
		ExtHighestSeq:  q.extHighest(),
		Jitter:         jitterField(s.src.jitter),
	}
	if lostInt := int64(expInt) - int64(recvInt); expInt != 0 && lostInt > 0 {
		// lostInt ≤ expInt, so the fraction is at most 256/256: A.3's code
		// would wrap 256 to 0 in the 8-bit field; clamp to 255 instead.
		b.FractionLost = uint8(min(255, lostInt<<8/int64(expInt)))
	}
	return b
}

// clamp24 limits cumulative loss to the signed 24-bit field of §6.4.1:
// 0x7fffff for more loss, −0x800000 for more duplicates.
func clamp24(v int64) int32 {
	return int32(max(-0x800000, min(0x7fffff, v)))
}

func jitterField(j float64) uint32 {
	if !(j >= 0) { // also NaN, which Update cannot produce
		return 0
	}
	if j >= math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(j)
}
