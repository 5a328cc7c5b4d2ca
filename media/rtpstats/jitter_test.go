package rtpstats_test

import (
	"math"
	"testing"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// A known pattern of arrival offsets, in whole timestamp units (125 µs at
// 8 kHz) so that the reference works in integers, plus one swapped pair. The
// reference is RFC 3550 A.8 written out: transit = arrival − timestamp in
// timestamp units, D = transit − previous transit in order of arrival,
// J += (|D| − J)/16.
func TestJitterKnownPattern(t *testing.T) {
	const n, unit = 300, int64(125_000) // ns per unit at 8 kHz
	type pkt struct {
		seq       int
		ts, units int64 // timestamp, arrival in units
	}
	var pkts []pkt
	for i := range n {
		off := int64(i*7%11) - 5 // −5..+5 units
		if i%50 == 49 {
			off += 40 // a 5 ms spike now and then
		}
		pkts = append(pkts, pkt{seq: i, ts: 4_294_960_000 + int64(i)*160, units: int64(i)*160 + off})
	}
	pkts[101], pkts[102] = pkts[102], pkts[101] // arrival order swapped
	pkts[101].units, pkts[102].units = pkts[102].units, pkts[101].units

	var j float64
	for k := 1; k < n; k++ {
		d := (pkts[k].units - pkts[k].ts) - (pkts[k-1].units - pkts[k-1].ts)
		j += (math.Abs(float64(d)) - j) / 16
	}

	s := rtpstats.NewStream(nil)
	for _, p := range pkts {
		s.Update(rtpstats.Packet{SSRC: 1, Seq: uint16(p.seq), Timestamp: uint32(p.ts), PT: 8, Size: 172,
			Arrival: base + p.units*unit})
	}
	st := s.Stats()
	if st.Jitter != j {
		t.Errorf("jitter %v, reference %v", st.Jitter, j)
	}
	if st.JitterMs != j*1000/8000 || st.ClockRate != 8000 {
		t.Errorf("jitter %v ms at %d Hz, reference %v ms", st.JitterMs, st.ClockRate, j/8)
	}
	if b := s.Report(); b.Jitter != uint32(j) || b.Jitter == 0 {
		t.Errorf("block jitter %d, reference %v", b.Jitter, j)
	}
	if st.Reordered != 1 || st.Lost != 0 {
		t.Errorf("reordered %d, lost %d", st.Reordered, st.Lost)
	}
}

// A constant one-way delay change of 12 ms once gives D = 96 units at one
// packet: J = 96/16 = 6 units (0.75 ms), then decays by 15/16 per packet.
func TestJitterStep(t *testing.T) {
	s := rtpstats.NewStream(nil)
	for i := range 10 {
		p := pcmu(1, 0, i)
		if i >= 5 {
			p.Arrival += 12 * ms
		}
		s.Update(p)
	}
	want := 6.0 * 15 / 16 * 15 / 16 * 15 / 16 * 15 / 16 // packets 6..9 had D = 0
	if st := s.Stats(); !near(st.Jitter, want, 1e-12) || !near(st.JitterMs, want/8, 1e-12) {
		t.Errorf("jitter %v units (%v ms), want %v", st.Jitter, st.JitterMs, want)
	}
}
