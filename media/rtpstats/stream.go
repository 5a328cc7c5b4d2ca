package rtpstats

import "math"

// Packet is what the relay saw of one RTP packet.
type Packet struct {
	SSRC      uint32
	Seq       uint16
	Timestamp uint32
	PT        uint8 // payload type, 0..127; larger values are counted, never timed
	Marker    bool
	Size      int   // bytes on the wire (the UDP payload); negative counts as 0
	Arrival   int64 // nanoseconds, on any monotonic base chosen by the caller
}

// Stream holds the statistics of one direction of one RTP source. Its state
// is fixed-size and Update never allocates. Use [NewStream] or [Stream.Init];
// the zero value behaves as Init(nil). Not safe for concurrent use.
type Stream struct {
	clocks *Clocks

	// Totals over the Stream's life, kept across SSRC changes.
	packets, bytes       uint64
	firstArr, lastArr    int64
	ssrcChanges, strayed uint64
	started              bool

	// The source before the last SSRC change, to recognise its stragglers.
	prevSSRC uint32
	prevMax  uint16
	hasPrev  bool

	src source
}

// source is everything about the current SSRC; an SSRC change replaces it.
type source struct {
	ssrc uint32
	seq  seqState

	dups, reordered, late, rejected, resyncs uint64

	// A.8 jitter, in timestamp units of clock, the clock of the last timed
	// packet; ref is that packet, for the next transit difference.
	jitter float64
	clock  uint32
	ref    timed
	hasRef bool
	ptime  float64 // ms
}

type timed struct {
	arrival int64
	ts      uint32
	seq     uint16
	clock   uint32
}

// NewStream returns a Stream that times payload types with clocks, which it
// keeps and reads but never writes. Nil means [DefaultClocks].
func NewStream(clocks *Clocks) *Stream {
	s := new(Stream)
	s.Init(clocks)
	return s
}

// Init resets s to a new, empty Stream using clocks (nil: [DefaultClocks]).
func (s *Stream) Init(clocks *Clocks) { *s = Stream{clocks: clocks} }

// SetClocks switches the clock table for the packets to come, for example
// after an SDP renegotiation; the statistics gathered so far stay. A change of
// a payload type's clock is handled like any clock change between packets
// (see Update).
func (s *Stream) SetClocks(clocks *Clocks) { s.clocks = clocks }

func (s *Stream) rate(pt uint8) uint32 {
	if s.clocks == nil {
		return defaultClocks.rate(pt)
	}
	return s.clocks.rate(pt)
}

// Update accounts for one packet, in order of arrival. It never allocates.
//
// Every call counts in Packets and Bytes. Then, following RFC 3550 A.1
// update_seq (without probation, see the package documentation):
//   - a new SSRC restarts the source statistics, unless the packet is a
//     straggler of the source just replaced (its number at or up to
//     MAX_MISORDER behind that source's highest), which only counts as Stray;
//   - a number ahead by less than MAX_DROPOUT is in order, a gap in between
//     is pending loss; the same number as the highest is a duplicate;
//   - a number up to MAX_MISORDER behind is a duplicate, a reordered packet
//     filling its gap in the window, or Late (below the window);
//   - any other number is a large jump: the first such packet is set aside
//     (Rejected); a second one that follows it in sequence confirms that the
//     sender restarted its numbering and the sequence statistics start again
//     from it (Resyncs; jitter keeps its value but no transit is taken across
//     the jump).
//
// As in A.1, duplicates and late packets count as received, so A.3 loss can
// be negative. Jitter and ptime are taken from accepted packets only: not
// from duplicates, late or set-aside packets, nor untimed payload types.
func (s *Stream) Update(p Packet) {
	s.packets++
	if p.Size > 0 {
		s.bytes += uint64(p.Size)
	}
	s.lastArr = p.Arrival
	switch {
	case !s.started:
		s.started = true
		s.firstArr = p.Arrival
		s.startSource(p)
		return
	case p.SSRC != s.src.ssrc:
		if s.hasPrev && p.SSRC == s.prevSSRC && behind(p.Seq, s.prevMax) {
			s.strayed++
			return
		}
		s.prevSSRC, s.prevMax, s.hasPrev = s.src.ssrc, uint16(s.src.seq.max), true
		s.ssrcChanges++
		s.startSource(p)
		return
	}

	src := &s.src
	q := &src.seq
	switch udelta := p.Seq - uint16(q.max); {
	case udelta == 0:
		q.received++
		src.dups++
		return
	case udelta < maxDropout:
		q.received++
		q.advance(q.max + int64(udelta))
	case udelta <= seqMod-maxMisorder:
		if uint32(p.Seq) != q.badSeq {
			q.badSeq = (uint32(p.Seq) + 1) & (seqMod - 1)
			src.rejected++
			return
		}
		src.resyncs++
		q.init(p.Seq)
		src.hasRef = false
	default:
		q.received++
		switch q.fill(q.max - int64(seqMod-int(udelta))) {
		case duplicate:
			src.dups++
			return
		case late:
			src.late++
			return
		}
		src.reordered++
	}
	s.timing(p)
}

// behind reports whether seq is highest or up to MAX_MISORDER behind it.
func behind(seq, highest uint16) bool {
	d := seq - highest
	return d == 0 || d > seqMod-maxMisorder
}

func (s *Stream) startSource(p Packet) {
	s.src = source{ssrc: p.SSRC}
	s.src.seq.init(p.Seq)
	s.timing(p)
}

// timing runs the A.8 jitter estimator and the ptime inference for an
// accepted packet.
//
// D(i,j) = (Rj − Ri) − (Sj − Si) for the previous timed packet i in order of
// arrival, with the arrival difference converted to timestamp units of the
// packet's clock in float64 (not truncated to whole units as in the A.8
// sample code, so the estimate does not depend on the phase of the caller's
// clock) and the timestamp difference taken modulo 2^32 as a signed value.
// Then J += (|D| − J)/16, also in float64; the report block truncates J.
//
// No D is taken across a clock change (the previous timed packet had another
// rate): J is rescaled to the new clock so that JitterMs stays continuous.
//
// ptime is the timestamp step between consecutive sequence numbers, both
// timed at the same clock, when positive and not at a marked packet (the start
// of a talkspurt after silence, RFC 3551 §4.1).
func (s *Stream) timing(p Packet) {
	c := s.rate(p.PT)
	if c == 0 {
		return
	}
	src := &s.src
	if src.hasRef && src.ref.clock == c {
		step := int32(p.Timestamp - src.ref.ts)
		d := float64(p.Arrival-src.ref.arrival)*float64(c)/1e9 - float64(step)
		src.jitter += (math.Abs(d) - src.jitter) / 16
		if p.Seq == src.ref.seq+1 && !p.Marker && step > 0 {
			src.ptime = float64(step) * 1000 / float64(c)
		}
	} else if src.clock != 0 && src.clock != c {
		src.jitter = src.jitter * float64(c) / float64(src.clock)
	}
	src.clock = c
	src.ref = timed{arrival: p.Arrival, ts: p.Timestamp, seq: p.Seq, clock: c}
	src.hasRef = true
}
