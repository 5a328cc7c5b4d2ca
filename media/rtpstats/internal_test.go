package rtpstats

import (
	"math/rand/v2"
	"testing"
)

// classify against a bit-by-bit walk, for random windows and ranges.
func TestClassifyMatchesWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		win := rng.Uint64()
		hi := uint(rng.IntN(64))
		lo := uint(rng.IntN(int(hi) + 1))
		win &= ^uint64(0) >> (63 - hi) // bits above hi are zero, as in a Stream
		prevLost := rng.IntN(2) == 0

		var want lossModel
		want.prevLost = prevLost
		for i := int(hi); i >= int(lo); i-- { // oldest first
			lost := win>>uint(i)&1 == 0
			want.n++
			if lost {
				want.lost++
				if !want.prevLost {
					want.runs++
				}
			}
			want.prevLost = lost
		}
		got := lossModel{prevLost: prevLost}
		got.classify(win, lo, hi)
		if got != want {
			t.Fatalf("classify(%#x, %d, %d) from prevLost=%v: %+v, want %+v", win, lo, hi, prevLost, got, want)
		}
	}
}

func TestClamp24(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want int32
	}{
		{0, 0}, {-1, -1}, {0x7fffff, 0x7fffff}, {0x800000, 0x7fffff}, {1 << 40, 0x7fffff},
		{-0x800000, -0x800000}, {-0x800001, -0x800000}, {-1 << 40, -0x800000},
	} {
		if got := clamp24(c.in); got != c.want {
			t.Errorf("clamp24(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestStreamIsFixedSize(t *testing.T) {
	// Guard against a slice or map creeping into the per-stream state: a
	// Stream must copy as plain values.
	a := NewStream(nil)
	for i := range 100 {
		a.Update(Packet{SSRC: 1, Seq: uint16(i * 2), Timestamp: uint32(i * 320), Size: 172, Arrival: int64(i) * 40e6})
	}
	b := *a
	b.Update(Packet{SSRC: 1, Seq: 200, Timestamp: 32000, Size: 172, Arrival: 4e9})
	if a.Stats().Packets != 100 || b.Stats().Packets != 101 || a.src.seq.max == b.src.seq.max {
		t.Error("copies of a Stream share state")
	}
}
