package media_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/impair"
	"github.com/callmesh/callmesh/media/mediatest"
)

// predictedDrops runs a model with the pipe's configuration: loss decisions
// depend only on the seed and the packet's rank, so they tell exactly which
// of n packets the pipe drops.
func predictedDrops(t *testing.T, cfg impair.Config, n int) []bool {
	t.Helper()
	m, err := impair.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lost := make([]bool, n)
	for i := range lost {
		_, lost[i] = m.Next(int64(i) * int64(20*time.Millisecond))
	}
	return lost
}

// lossFigures computes, independently of rtpstats, what RFC 3550 A.3 and
// the Gilbert model give for a drop pattern seen by a receiver: the span
// runs from the first to the last packet received.
func lossFigures(lost []bool) (received, lostInSpan int, lossPct, burstR float64) {
	first, last := -1, -1
	for i, l := range lost {
		if !l {
			if first < 0 {
				first = i
			}
			last = i
			received++
		}
	}
	span := last - first + 1
	lostInSpan = span - received
	lossPct = 100 * float64(lostInSpan) / float64(span)
	var rr, rl, lr, ll float64
	for i := first + 1; i <= last; i++ {
		switch {
		case !lost[i-1] && !lost[i]:
			rr++
		case !lost[i-1] && lost[i]:
			rl++
		case lost[i-1] && !lost[i]:
			lr++
		default:
			ll++
		}
	}
	if rl == 0 {
		return received, lostInSpan, lossPct, 1
	}
	p, q := rl/(rr+rl), lr/(lr+ll)
	return received, lostInSpan, lossPct, 1 / (p + q)
}

// TestRelayUnderSeededImpairment: two endpoints exchange 20 ms G.711
// through the relay, with an impairing pipe (bursty loss, delay, jitter)
// between the relay and side B. Counts, loss and burst figures are exact
// for the seed; jitter and MOS are held to generous bounds.
func TestRelayUnderSeededImpairment(t *testing.T) {
	t.Parallel()
	const n = 200
	up := impair.Config{Delay: 5 * time.Millisecond, Jitter: 4 * time.Millisecond, LossPct: 6, MeanBurst: 3, Seed: 11}
	down := impair.Config{Delay: 5 * time.Millisecond, Jitter: 4 * time.Millisecond, LossPct: 4, MeanBurst: 2, Seed: 12}

	r := newRelay(t, 2)
	s, err := r.Open("impaired")
	if err != nil {
		t.Fatal(err)
	}
	a, b := mediatest.NewEndpoint(t), mediatest.NewEndpoint(t)
	legB, _ := s.Leg(media.B).Local()
	pipe, err := impair.Listen(context.Background(), "127.0.0.1:0", legB, up, down)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pipe.Close() })

	s.Leg(media.A).Signal(remoteOf(a))
	s.Leg(media.B).Signal(media.Remote{RTP: pipe.Addr(), RTCP: b.RTCPAddr(), Sends: true})
	rtp, rtcp := s.Leg(media.A).Local()
	a.SetPeer(rtp, rtcp)
	_, rtcp = s.Leg(media.B).Local()
	b.SetPeer(pipe.Addr(), rtcp)

	// B speaks first, so the pipe learns where B is before A's media
	// comes back through it.
	done := make(chan error, 1)
	go func() { done <- b.Send(context.Background(), n, 20*time.Millisecond) }()
	waitFor(t, "the pipe to hear b", func() bool { return pipe.Stats().Up.Received >= 1 })
	if err := a.Send(context.Background(), n, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	wantAtB := 0
	for _, l := range predictedDrops(t, down, n) {
		if !l {
			wantAtB++
		}
	}
	upLost := predictedDrops(t, up, n)
	wantAtRelay, wantLost, wantLossPct, wantBurst := lossFigures(upLost)
	// The pipe has decided on all of A's packets once it received n and
	// none waits: from then on nothing more can reach b.
	waitFor(t, "the pipe to deliver a's stream", func() bool {
		d := pipe.Stats().Down
		return d.Received == n && d.Forwarded+d.Dropped+d.Failed == n
	})
	waitFor(t, "every surviving packet", func() bool {
		return b.Stats().Packets >= uint64(wantAtB) && s.Summary().Legs[media.B].PacketsIn >= uint64(wantAtRelay)
	})
	if d := pipe.Stats().Down; d.Forwarded != uint64(wantAtB) {
		t.Errorf("pipe forwarded %d of a's packets, the model %d", d.Forwarded, wantAtB)
	}
	if got := b.Stats().Packets; got != uint64(wantAtB) {
		t.Errorf("b received %d packets, the seeded model lets %d through", got, wantAtB)
	}
	sum := s.Summary()
	leg := sum.Legs[media.B]
	if leg.PacketsIn != uint64(wantAtRelay) {
		t.Errorf("relay received %d packets from b, the model lets %d through", leg.PacketsIn, wantAtRelay)
	}
	if math.Abs(leg.LossPct-wantLossPct) > 1e-9 {
		t.Errorf("leg b loss %.4f%%, want %.4f%% (%d lost)", leg.LossPct, wantLossPct, wantLost)
	}
	// The burst ratio's edges (first and last run) may be counted slightly
	// differently; the value is deterministic for the seed.
	if math.Abs(leg.BurstRatio-wantBurst) > 0.05*wantBurst || leg.BurstRatio <= 1 {
		t.Errorf("leg b burst ratio %.3f, want %.3f (bursty, > 1)", leg.BurstRatio, wantBurst)
	}
	t.Logf("seeded: b got %d/%d, relay got %d/%d from b, loss %.2f%%, BurstR %.2f; jitter b→relay %.2f ms, relay→b %.2f ms; session R %.1f MOS %.2f",
		wantAtB, n, wantAtRelay, n, leg.LossPct, leg.BurstRatio, leg.JitterMs, b.Stats().JitterMs, sum.R, sum.MOS)

	// Uniform jitter of 0–8 ms gives an A.8 estimate of a few ms; the bounds
	// allow for a loaded test machine.
	for name, j := range map[string]float64{"b→relay": leg.JitterMs, "relay→b": b.Stats().JitterMs} {
		if j < 0.3 || j > 40 {
			t.Errorf("%s jitter %.2f ms outside the generous bounds [0.3, 40]", name, j)
		}
	}
	// 6 % bursty loss on G.711 costs well over 10 R points (G.107 §7.4).
	if !sum.Measured || sum.MOS >= 4.0 || sum.MOS < 1 {
		t.Errorf("impaired session MOS %.2f (R %.1f), want below 4.0", sum.MOS, sum.R)
	}
}

// TestRelayEgressImpairment: a leg can impair what the relay sends toward
// its side (for emulated providers and tests): exactly the packets the
// seeded model drops are missing, and the far end's reports show the loss.
func TestRelayEgressImpairment(t *testing.T) {
	t.Parallel()
	const n = 150
	cfg := impair.Config{Delay: 3 * time.Millisecond, Jitter: 2 * time.Millisecond, LossPct: 5, MeanBurst: 2, Seed: 5}
	r := newRelay(t, 2)
	s, a, b := openCall(t, r, "egress")
	if err := s.Leg(media.B).Impair(cfg); err != nil {
		t.Fatal(err)
	}
	b.AnswerReports(true)
	if err := a.Send(context.Background(), n, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, l := range predictedDrops(t, cfg, n) {
		if !l {
			want++
		}
	}
	waitFor(t, "the surviving packets", func() bool { return b.Stats().Packets >= uint64(want) })
	if err := a.SendSR(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b's report", func() bool { return s.Summary().Legs[media.B].FarKnown })
	if got := b.Stats().Packets; got != uint64(want) {
		t.Fatalf("b received %d, the model lets %d through", got, want)
	}
	leg := s.Summary().Legs[media.B]
	if leg.FarLossPct <= 0 || leg.PacketsOut != uint64(want) || leg.ImpairDropped != uint64(n-want) {
		t.Fatalf("leg b: far loss %.2f%%, packets out %d (want %d), impairment dropped %d (want %d)",
			leg.FarLossPct, leg.PacketsOut, want, leg.ImpairDropped, n-want)
	}
	if err := s.Leg(media.B).Impair(impair.Config{LossPct: 150}); err == nil {
		t.Fatal("a bad impairment was accepted")
	}
}
