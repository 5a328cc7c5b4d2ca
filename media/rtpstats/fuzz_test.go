package rtpstats_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// FuzzUpdate decodes arbitrary bytes into packets, 8 bytes each:
//
//	0    flags: bits 0-1 pick the SSRC, bit 2 marker, bit 3 absolute sequence
//	     number (else a signed step), bit 4 Report after the packet
//	1    payload type (any byte, including > 127)
//	2-3  sequence number or signed step
//	4-5  signed timestamp step × 8
//	6    signed arrival step in ms
//	7    size
//
// Whatever comes, Update must not panic, Packets must equal the number of
// Update calls, and every figure must stay in its documented range.
func FuzzUpdate(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 0, 0, 1, 0, 20, 20, 172, 0, 0, 0, 1, 0, 20, 20, 172, 0, 0, 0, 1, 0, 20, 20, 172})
	f.Add([]byte{8, 0, 0xff, 0xff, 0, 20, 20, 172, 8, 0, 0, 0, 0, 20, 20, 172, 8, 0, 0xff, 0xfe, 0, 20, 20, 172})
	f.Add([]byte{8, 0, 0, 10, 0, 20, 20, 172, 8, 0, 0x80, 0, 0, 20, 20, 172, 8, 0, 0x80, 1, 0, 20, 20, 172})
	f.Add([]byte{1, 101, 0, 1, 0, 0, 3, 16, 2, 0, 0, 1, 0x80, 0, 0xec, 172, 16 | 4, 255, 0xff, 0x9c, 0, 0, 0, 0})
	clocks := rtpstats.DefaultClocks()
	clocks[96] = 90000
	clocks[111] = 48000
	f.Fuzz(func(t *testing.T, data []byte) {
		ssrcs := [4]uint32{1, 2, 0xdeadbeef, 0}
		s := rtpstats.NewStream(&clocks)
		var seq uint16
		var ts uint32
		arrival := int64(0)
		calls := 0
		for ; len(data) >= 8; data = data[8:] {
			flags := data[0]
			v := binary.BigEndian.Uint16(data[2:])
			if flags&8 != 0 {
				seq = v
			} else {
				seq += v
			}
			ts += uint32(int32(int16(binary.BigEndian.Uint16(data[4:])))) * 8
			arrival += int64(int8(data[6])) * ms
			s.Update(rtpstats.Packet{SSRC: ssrcs[flags&3], Seq: seq, Timestamp: ts, PT: data[1],
				Marker: flags&4 != 0, Size: int(data[7]), Arrival: arrival})
			calls++
			if flags&16 != 0 {
				checkBlock(t, s.Report())
			}
			checkStats(t, s.Stats(), calls)
		}
		checkBlock(t, s.Report())
	})
}

func checkStats(t *testing.T, st rtpstats.Stats, calls int) {
	t.Helper()
	if st.Packets != uint64(calls) {
		t.Fatalf("Packets %d after %d updates", st.Packets, calls)
	}
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	switch {
	case st.LossPct < 0 || st.LossPct > 100 || st.IntervalLossPct < 0 || st.IntervalLossPct > 100:
		t.Fatalf("loss %v%%, interval %v%%", st.LossPct, st.IntervalLossPct)
	case !finite(st.Jitter) || st.Jitter < 0 || !finite(st.JitterMs) || st.JitterMs < 0:
		t.Fatalf("jitter %v, %v ms", st.Jitter, st.JitterMs)
	case !finite(st.BurstRatio) || st.BurstRatio < 0 || st.MeanBurstLen != 0 && st.MeanBurstLen < 1:
		t.Fatalf("BurstR %v, mean burst %v", st.BurstRatio, st.MeanBurstLen)
	case st.MeanBurstLen == 0 && st.BurstRatio != 1:
		t.Fatalf("BurstR %v without loss", st.BurstRatio)
	case st.Pending < 0 || st.Pending >= rtpstats.Window:
		t.Fatalf("pending %d", st.Pending)
	case st.Expected == 0 || int64(st.Expected)-st.Lost < 1:
		t.Fatalf("expected %d, lost %d", st.Expected, st.Lost)
	case st.Duplicates+st.Reordered+st.Late+st.Rejected+st.Stray > st.Packets:
		t.Fatalf("event counters exceed packets: %+v", st)
	case st.PtimeMs < 0 || !finite(st.PtimeMs):
		t.Fatalf("ptime %v", st.PtimeMs)
	}
}

func checkBlock(t *testing.T, b rtpstats.Block) {
	t.Helper()
	if b.CumulativeLost < -0x800000 || b.CumulativeLost > 0x7fffff {
		t.Fatalf("cumulative lost %d outside 24 bits", b.CumulativeLost)
	}
}
