package rtpstats_test

import (
	"math"
	"testing"
	"time"

	"github.com/callmesh/callmesh/media/rtpstats"
)

const (
	ms   = int64(time.Millisecond)
	base = int64(7_000_000_000) // an arbitrary monotonic origin
)

// pcmu is packet i of a perfect 20 ms G.711 µ-law stream: 160 samples at
// 8 kHz per packet, 12 bytes of header + 160 of payload, arriving on time.
func pcmu(ssrc uint32, seq0 uint16, i int) rtpstats.Packet {
	return rtpstats.Packet{
		SSRC:      ssrc,
		Seq:       seq0 + uint16(i),
		Timestamp: 90_000 + uint32(i)*160,
		PT:        0,
		Size:      172,
		Arrival:   base + int64(i)*20*ms,
	}
}

// stream feeds packets i in 0..n-1 of pcmu, except those for which skip says
// so, to a fresh Stream.
func stream(ssrc uint32, seq0 uint16, n int, skip func(i int) bool) *rtpstats.Stream {
	s := rtpstats.NewStream(nil)
	for i := range n {
		if skip == nil || !skip(i) {
			s.Update(pcmu(ssrc, seq0, i))
		}
	}
	return s
}

// refBurst is a plain reference for the loss-run figures: received[i] tells
// whether sequence number base+i arrived, for the numbers from the first
// expected to the highest. It counts runs of consecutive losses by walking
// the list, and applies the G.113 definition BurstR = mean run length ×
// (1 − loss rate).
func refBurst(received []bool) (meanRun, burstR float64) {
	lost, runs := 0, 0
	for i, ok := range received {
		if !ok {
			lost++
			if i == 0 || received[i-1] {
				runs++
			}
		}
	}
	if lost == 0 {
		return 0, 1
	}
	meanRun = float64(lost) / float64(runs)
	return meanRun, meanRun * (1 - float64(lost)/float64(len(received)))
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// checkLoss compares the loss figures of st with expectations.
func checkLoss(t *testing.T, st rtpstats.Stats, expected uint64, lost int64, meanRun, burstR float64) {
	t.Helper()
	if st.Expected != expected || st.Lost != lost {
		t.Errorf("expected/lost = %d/%d, want %d/%d", st.Expected, st.Lost, expected, lost)
	}
	if !near(st.MeanBurstLen, meanRun, 1e-12) || !near(st.BurstRatio, burstR, 1e-12) {
		t.Errorf("mean burst %v, BurstR %v; want %v, %v", st.MeanBurstLen, st.BurstRatio, meanRun, burstR)
	}
}
