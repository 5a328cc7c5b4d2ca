package rtpstats_test

import (
	"cmp"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/callmesh/callmesh/media/rtpstats"
)

// For random drops, duplicates and reordering within the window, once the
// window has passed (Window more packets in order): Lost is the number of
// dropped distinct sequence numbers (less the duplicates, which A.3 counts
// as received), Packets counts every Update, and the loss runs, reordering
// and duplicate counts agree with a plain reference walk.
func TestPropertyLossWithinWindow(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 400).Draw(t, "n")
		seq0 := rapid.Uint16().Draw(t, "seq0")
		depth := rapid.IntRange(1, rtpstats.Window).Draw(t, "depth") // max displacement
		dropPct := rapid.IntRange(0, 60).Draw(t, "dropPct")
		dupPct := rapid.IntRange(0, 20).Draw(t, "dupPct")

		// Sent packet i goes out at slot i and is delayed by less than depth
		// slots: a packet never arrives Window or more behind the highest.
		type arrival struct{ i, key int }
		var order []arrival
		dropped := make([]bool, n)
		for i := range n {
			if rapid.IntRange(0, 99).Draw(t, "drop") < dropPct {
				dropped[i] = true
				continue
			}
			order = append(order, arrival{i, i + rapid.IntRange(0, depth-1).Draw(t, "delay")})
		}
		slices.SortStableFunc(order, func(a, b arrival) int { return cmp.Compare(a.key, b.key) })
		var seqs []int // arrival order, duplicates right after their original
		for _, a := range order {
			seqs = append(seqs, a.i)
			if rapid.IntRange(0, 99).Draw(t, "dup") < dupPct {
				seqs = append(seqs, a.i)
			}
		}
		for i := n; i < n+rtpstats.Window; i++ { // the tail that closes the window
			seqs = append(seqs, i)
		}

		// Reference: a plain walk over arrivals, then over sequence numbers.
		seen := map[int]bool{}
		highest, reordered, dups := -1, 0, 0
		for _, i := range seqs {
			switch {
			case seen[i]:
				dups++
			case i < highest:
				reordered++
			}
			seen[i] = true
			highest = max(highest, i)
		}
		first := n // the lowest number received
		for i := range n {
			if !dropped[i] {
				first = i
				break
			}
		}
		var received []bool
		lost := 0
		for i := first; i < n+rtpstats.Window; i++ {
			received = append(received, i >= n || !dropped[i])
			if i < n && dropped[i] {
				lost++
			}
		}
		meanRun, burstR := refBurst(received)

		s := rtpstats.NewStream(nil)
		for k, i := range seqs {
			p := pcmu(0x5151, seq0, i)
			p.Arrival = base + int64(k)*20*ms
			s.Update(p)
		}
		st := s.Stats()
		if st.Packets != uint64(len(seqs)) {
			t.Fatalf("Packets %d, updates %d", st.Packets, len(seqs))
		}
		if st.Expected != uint64(len(received)) || st.Lost != int64(lost-dups) {
			t.Fatalf("expected/lost %d/%d, want %d/%d (dropped %d, duplicates %d)",
				st.Expected, st.Lost, len(received), lost-dups, lost, dups)
		}
		if st.MeanBurstLen != meanRun || st.BurstRatio != burstR {
			t.Fatalf("mean burst %v, BurstR %v; reference %v, %v", st.MeanBurstLen, st.BurstRatio, meanRun, burstR)
		}
		if st.Reordered != uint64(reordered) || st.Duplicates != uint64(dups) || st.Late != 0 || st.Pending != 0 {
			t.Fatalf("reordered %d, duplicates %d, late %d, pending %d; want %d, %d, 0, 0",
				st.Reordered, st.Duplicates, st.Late, st.Pending, reordered, dups)
		}
		b := s.Report()
		if b.CumulativeLost != int32(lost-dups) || b.ExtHighestSeq&0xffff != uint32(seq0+uint16(n+rtpstats.Window-1)) {
			t.Fatalf("block %+v", b)
		}
	})
}
