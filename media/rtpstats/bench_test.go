package rtpstats_test

import (
	"testing"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// BenchmarkUpdate: an in-order 20 ms G.711 stream.
func BenchmarkUpdate(b *testing.B) {
	s := rtpstats.NewStream(nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Update(pcmu(1, 0, i))
		i++
	}
}

// BenchmarkUpdateReorder: the same stream with every fourth pair swapped,
// one packet in 50 lost, one in 100 duplicated and a packet 20 late every
// 256: the window and loss-run paths all run.
func BenchmarkUpdateReorder(b *testing.B) {
	const period = 256
	var order []int
	for i := 0; i < period; i++ {
		switch {
		case i%50 == 25:
			continue // lost
		case i%8 == 2:
			order = append(order, i+1, i) // swapped pair
			i++
		case i%100 == 60:
			order = append(order, i, i) // duplicate
		case i == 200:
			order = append(order, i, i-20) // 20 late
		default:
			order = append(order, i)
		}
	}
	s := rtpstats.NewStream(nil)
	b.ReportAllocs()
	k, round := 0, 0
	for b.Loop() {
		if k == len(order) {
			k, round = 0, round+1
		}
		p := pcmu(1, 0, round*period+order[k])
		p.Arrival = base + int64(round*len(order)+k)*20*ms
		s.Update(p)
		k++
	}
}

func BenchmarkStats(b *testing.B) {
	s := stream(1, 0, 1000, func(i int) bool { return i%37 == 0 })
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Stats()
	}
}
