package rtpstats_test

import (
	"testing"

	"github.com/callmesh/callmesh/media/rtpstats"
)

func TestPerfectG711(t *testing.T) {
	s := stream(0x1234, 1000, 200, nil)
	st := s.Stats()
	if st.SSRC != 0x1234 || st.Packets != 200 || st.Bytes != 200*172 {
		t.Errorf("ssrc/packets/bytes = %#x/%d/%d", st.SSRC, st.Packets, st.Bytes)
	}
	checkLoss(t, st, 200, 0, 0, 1)
	if st.LossPct != 0 || st.IntervalLossPct != 0 || st.Pending != 0 {
		t.Errorf("loss %v%%, interval %v%%, pending %d", st.LossPct, st.IntervalLossPct, st.Pending)
	}
	if st.Jitter != 0 || st.JitterMs != 0 || st.ClockRate != 8000 || st.PtimeMs != 20 {
		t.Errorf("jitter %v (%v ms) at %d Hz, ptime %v", st.Jitter, st.JitterMs, st.ClockRate, st.PtimeMs)
	}
	if st.FirstArrival != base || st.LastArrival != base+199*20*ms {
		t.Errorf("arrivals %d..%d", st.FirstArrival, st.LastArrival)
	}
	if st.Duplicates+st.Reordered+st.Late+st.Rejected+st.Resyncs+st.SSRCChanges+st.Stray != 0 {
		t.Errorf("unexpected event counters: %+v", st)
	}
	b := s.Report()
	want := rtpstats.Block{SSRC: 0x1234, ExtHighestSeq: 1199}
	if b != want {
		t.Errorf("Report = %+v, want %+v", b, want)
	}
}

func TestEmptyAndZeroValue(t *testing.T) {
	var s rtpstats.Stream // behaves as Init(nil)
	if st := s.Stats(); st.Packets != 0 || st.BurstRatio != 1 || st.Expected != 0 {
		t.Errorf("empty Stats = %+v", st)
	}
	if b := s.Report(); b != (rtpstats.Block{}) {
		t.Errorf("empty Report = %+v", b)
	}
	for i := range 3 {
		s.Update(pcmu(9, 0, i))
	}
	if st := s.Stats(); st.Expected != 3 || st.ClockRate != 8000 || st.PtimeMs != 20 {
		t.Errorf("zero-value Stream after 3 packets: %+v", st)
	}
}

func TestDuplicates(t *testing.T) {
	s := rtpstats.NewStream(nil)
	for i := range 100 {
		p := pcmu(1, 0, i)
		s.Update(p)
		if i%10 == 3 { // a copy 5 ms later: excluded from jitter
			p.Arrival += 5 * ms
			s.Update(p)
		}
		if i == 50 { // an older copy, still in the window
			s.Update(pcmu(1, 0, 45))
		}
	}
	st := s.Stats()
	if st.Packets != 111 || st.Duplicates != 11 || st.Reordered != 0 {
		t.Errorf("packets %d, duplicates %d, reordered %d", st.Packets, st.Duplicates, st.Reordered)
	}
	// A.3 counts duplicates as received: 100 expected, 111 received.
	checkLoss(t, st, 100, -11, 0, 1)
	if st.LossPct != 0 || st.Jitter != 0 {
		t.Errorf("loss %v%%, jitter %v", st.LossPct, st.Jitter)
	}
	if b := s.Report(); b.CumulativeLost != -11 || b.FractionLost != 0 {
		t.Errorf("Report = %+v", b)
	}
}

func TestReorderSwapPairs(t *testing.T) {
	s := rtpstats.NewStream(nil)
	order := []int{}
	for i := 0; i < 100; i += 4 { // i, i+2, i+1, i+3: one swap per 4
		order = append(order, i, i+2, i+1, i+3)
	}
	for k, i := range order {
		p := pcmu(1, 0, i)
		p.Arrival = base + int64(k)*20*ms
		s.Update(p)
	}
	st := s.Stats()
	checkLoss(t, st, 100, 0, 0, 1)
	if st.Reordered != 25 || st.Duplicates != 0 || st.Late != 0 || st.Pending != 0 {
		t.Errorf("reordered %d, duplicates %d, late %d, pending %d", st.Reordered, st.Duplicates, st.Late, st.Pending)
	}
}

// A gap is pending (provisionally lost) while in the window; a late arrival
// fills it. Beyond the window the number stays lost for the loss runs but
// A.3 counts the late packet as received.
func TestPendingAndLate(t *testing.T) {
	s := stream(1, 500, 30, func(i int) bool { return i == 10 || i == 11 })
	st := s.Stats()
	if st.Pending != 2 || st.Lost != 2 || st.MeanBurstLen != 2 {
		t.Errorf("before the late packet: pending %d, lost %d, mean burst %v", st.Pending, st.Lost, st.MeanBurstLen)
	}
	s.Update(pcmu(1, 500, 10))
	st = s.Stats()
	if st.Pending != 1 || st.Lost != 1 || st.MeanBurstLen != 1 || st.Reordered != 1 {
		t.Errorf("after one late packet: %+v", st)
	}

	// Move 80 beyond number 11: it leaves the window as lost.
	for i := 30; i < 91; i++ {
		s.Update(pcmu(1, 500, i))
	}
	s.Update(pcmu(1, 500, 11)) // 79 behind: within MAX_MISORDER, below the window
	st = s.Stats()
	if st.Late != 1 || st.Reordered != 1 || st.Pending != 0 || st.Lost != 0 {
		t.Errorf("late, reordered, pending, lost = %d %d %d %d", st.Late, st.Reordered, st.Pending, st.Lost)
	}
	mean, burstR := refBurst(lossList(91, 11))
	checkLoss(t, st, 91, 0, mean, burstR)
}

// lossList lists n numbers, all received except those given.
func lossList(n int, lost ...int) []bool {
	r := make([]bool, n)
	for i := range r {
		r[i] = true
	}
	for _, i := range lost {
		r[i] = false
	}
	return r
}

// The first packets arrive out of order: the earlier numbers are expected,
// not counted as negative loss.
func TestReorderBeforeFirst(t *testing.T) {
	s := rtpstats.NewStream(nil)
	for k, i := range []int{2, 0, 3, 4, 1, 5} {
		p := pcmu(1, 65534, i) // crosses the wrap, too
		p.Arrival = base + int64(k)*20*ms
		s.Update(p)
	}
	st := s.Stats()
	checkLoss(t, st, 6, 0, 0, 1)
	if st.Reordered != 2 {
		t.Errorf("reordered %d", st.Reordered)
	}
	if b := s.Report(); b.ExtHighestSeq != 65534+5 {
		t.Errorf("ext highest %d", b.ExtHighestSeq)
	}
}

func TestSequenceWrap(t *testing.T) {
	s := stream(7, 65500, 200, nil)
	st := s.Stats()
	checkLoss(t, st, 200, 0, 0, 1)
	if b := s.Report(); b.ExtHighestSeq != 65500+199 || b.ExtHighestSeq>>16 != 1 {
		t.Errorf("ext highest %#x", b.ExtHighestSeq)
	}

	// Losing 65535 and 0 is one run of two across the wrap.
	s = stream(7, 65500, 200, func(i int) bool { return i == 35 || i == 36 })
	mean, burstR := refBurst(lossList(200, 35, 36))
	checkLoss(t, s.Stats(), 200, 2, mean, burstR)
	if mean != 2 {
		t.Fatalf("reference mean burst %v", mean)
	}
}

func TestSSRCChange(t *testing.T) {
	s := rtpstats.NewStream(nil)
	for i := range 100 {
		p := pcmu(0xA, 300, i)
		if i%20 == 7 {
			continue // 5 lost
		}
		p.Arrival += int64(i%3) * ms // some jitter
		s.Update(p)
	}
	if st := s.Stats(); st.Lost != 5 || st.Jitter == 0 {
		t.Fatalf("source A: %+v", st)
	}
	end := base + 100*20*ms
	for i := range 50 { // source B, other numbering and timestamps
		p := pcmu(0xB, 40000, i)
		p.Timestamp = 7_777_777 + uint32(i)*160
		p.Arrival = end + int64(i)*20*ms
		s.Update(p)
	}
	st := s.Stats()
	if st.SSRC != 0xB || st.Packets != 145 || st.Bytes != 145*172 || st.SSRCChanges != 1 {
		t.Errorf("after change: ssrc %#x, packets %d, bytes %d, changes %d", st.SSRC, st.Packets, st.Bytes, st.SSRCChanges)
	}
	checkLoss(t, st, 50, 0, 0, 1)
	if st.Jitter != 0 || st.FirstArrival != base {
		t.Errorf("jitter %v (no transit across the change), first arrival %d", st.Jitter, st.FirstArrival)
	}

	// A straggler of A: counted, nothing else.
	s.Update(pcmu(0xA, 300, 97))
	if st2 := s.Stats(); st2.Stray != 1 || st2.Packets != 146 || st2.SSRC != 0xB || st2.Expected != 50 {
		t.Errorf("straggler: %+v", st2)
	}
	// A back, ahead of where it stopped: a real change.
	s.Update(pcmu(0xA, 300, 400))
	if st2 := s.Stats(); st2.SSRC != 0xA || st2.SSRCChanges != 2 || st2.Expected != 1 || st2.Stray != 1 {
		t.Errorf("switch back: %+v", st2)
	}
}

// A.1: a single large jump is set aside; a second packet in sequence after it
// confirms the restart of numbering.
func TestLargeJumpResync(t *testing.T) {
	s := stream(1, 100, 50, nil)
	jump := pcmu(1, 100, 50)
	jump.Seq, jump.Timestamp = 20000, 123456789 // numbering and timestamps restart
	s.Update(jump)
	st := s.Stats()
	if st.Rejected != 1 || st.Expected != 50 || st.Lost != 0 || st.Resyncs != 0 {
		t.Errorf("after one jump: %+v", st)
	}
	for k := 1; k <= 10; k++ {
		p := pcmu(1, 100, 50+k)
		p.Seq, p.Timestamp = 20000+uint16(k), 123456789+uint32(k)*160
		s.Update(p)
	}
	st = s.Stats()
	if st.Resyncs != 1 || st.Expected != 10 || st.Lost != 0 || st.Packets != 61 {
		t.Errorf("after resync: %+v", st)
	}
	if st.Jitter != 0 {
		t.Errorf("jitter %v: a transit was taken across the jump", st.Jitter)
	}
	if b := s.Report(); b.ExtHighestSeq != 20010 {
		t.Errorf("ext highest %d", b.ExtHighestSeq)
	}
}

// telephone-event (a dynamic type with clock 0) is counted but not timed:
// the jitter of audio interleaved with events equals that of the same audio
// alone.
func TestTelephoneEventExcludedFromJitter(t *testing.T) {
	audio := func(i int) rtpstats.Packet {
		p := pcmu(5, 0, i)
		p.Arrival += int64(i*5%7) * ms // some jitter
		return p
	}
	run := func(clocks *rtpstats.Clocks, events bool) rtpstats.Stats {
		s := rtpstats.NewStream(clocks)
		seq := uint16(0)
		for i := range 100 {
			p := audio(i)
			p.Seq = seq
			seq++
			s.Update(p)
			if events && i%25 == 10 { // a DTMF event: 3 packets, event start timestamp, bursty
				for k := range 3 {
					s.Update(rtpstats.Packet{SSRC: 5, Seq: seq, Timestamp: p.Timestamp, PT: 101,
						Marker: k == 0, Size: 16, Arrival: p.Arrival + int64(k*7+3)*ms})
					seq++
				}
			}
		}
		return s.Stats()
	}
	def := rtpstats.DefaultClocks()
	alone := run(&def, false)
	st := run(&def, true)
	checkLoss(t, st, 112, 0, 0, 1)
	if st.Packets != 112 || st.Jitter != alone.Jitter || alone.Jitter == 0 || st.ClockRate != 8000 {
		t.Errorf("with events untimed: jitter %v, audio alone %v; %+v", st.Jitter, alone.Jitter, st)
	}
	timedEvents := def
	timedEvents[101] = 8000
	if st := run(&timedEvents, true); st.Jitter == alone.Jitter {
		t.Errorf("events timed at 8000 Hz should change jitter; got %v both ways", st.Jitter)
	}
}

func TestPtime(t *testing.T) {
	s := rtpstats.NewStream(nil)
	for i := range 20 { // G.729, 30 ms per packet
		s.Update(rtpstats.Packet{SSRC: 1, Seq: uint16(i), Timestamp: uint32(i) * 240, PT: 18, Size: 42, Arrival: base + int64(i)*30*ms})
	}
	// After silence: a talkspurt starts with the marker bit and a big step.
	s.Update(rtpstats.Packet{SSRC: 1, Seq: 20, Timestamp: 20*240 + 8000, PT: 18, Marker: true, Size: 42, Arrival: base + 2*1000*ms})
	if st := s.Stats(); st.PtimeMs != 30 {
		t.Errorf("ptime %v, want 30", st.PtimeMs)
	}
}

// A change to a payload type with another clock takes no transit across the
// change, and jitter is rescaled so that it stays the same in milliseconds.
func TestClockChange(t *testing.T) {
	clocks := rtpstats.DefaultClocks()
	clocks[111] = 48000
	s := rtpstats.NewStream(&clocks)
	for i := range 50 {
		p := pcmu(1, 0, i)
		p.Arrival += int64(i%4) * ms
		s.Update(p)
	}
	before := s.Stats()
	s.Update(rtpstats.Packet{SSRC: 1, Seq: 50, Timestamp: 5_000_000, PT: 111, Size: 100, Arrival: base + 50*20*ms})
	after := s.Stats()
	if after.ClockRate != 48000 || !near(after.JitterMs, before.JitterMs, 1e-9) || !near(after.Jitter, before.Jitter*6, 1e-9) {
		t.Errorf("before %v units / %v ms, after %v units / %v ms at %d Hz",
			before.Jitter, before.JitterMs, after.Jitter, after.JitterMs, after.ClockRate)
	}
}

func TestUpdateDoesNotAllocate(t *testing.T) {
	s := rtpstats.NewStream(nil)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		p := pcmu(1, 0, i)
		if i%7 == 3 {
			p.Seq += 2 // reordered and duplicated numbers, jumps
		}
		s.Update(p)
		i++
	})
	if allocs != 0 {
		t.Errorf("Update allocates %v times per call", allocs)
	}
}
