package media_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/kpath"
	"github.com/callmesh/callmesh/media/mediatest"
)

// portBase keeps this package's relays apart from other packages' tests.
const portBase = 21000

func newRelay(t *testing.T, pairs int, opts ...media.Option) *media.Relay {
	t.Helper()
	return newRelayWith(t, pairs, nil, opts...)
}

// newRelayWith starts a relay on FastConfig with pairs port pairs of its
// own, changed by set; it skips where set asks for the kernel path and it
// cannot load (not Linux, no CAP_BPF/CAP_NET_ADMIN, no TCX).
func newRelayWith(t *testing.T, pairs int, set func(*media.Config), opts ...media.Option) *media.Relay {
	t.Helper()
	cfg := media.FastConfig()
	cfg.PortMin, cfg.PortMax = mediatest.PortRange(t, portBase, pairs)
	if set != nil {
		set(&cfg)
	}
	r, err := media.New(cfg, opts...)
	if err != nil && cfg.Kernel == media.KernelOn && kpath.Unavailable(err) {
		t.Skipf("kernel fast path unavailable here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func remoteOf(e *mediatest.Endpoint) media.Remote {
	return media.Remote{RTP: e.Addr(), RTCP: e.RTCPAddr(), Sends: true}
}

// connect anchors two endpoints through a session: each sends to its leg.
func connect(s *media.Session, a, b *mediatest.Endpoint) {
	s.Leg(media.A).Signal(remoteOf(a))
	s.Leg(media.B).Signal(remoteOf(b))
	rtp, rtcp := s.Leg(media.A).Local()
	a.SetPeer(rtp, rtcp)
	rtp, rtcp = s.Leg(media.B).Local()
	b.SetPeer(rtp, rtcp)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func sendBoth(t *testing.T, n int, senders ...*mediatest.Endpoint) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(senders))
	for _, e := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.Send(context.Background(), n, 20*time.Millisecond)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestRelayForwardsAndMeasuresCleanCall(t *testing.T) {
	t.Parallel()
	r := newRelay(t, 4)
	s, _, _ := cleanCall(t, r, "clean", 100)
	s.Close()
	if r.Len() != 0 || r.FreePairs() != 4 {
		t.Errorf("after close: %d sessions, %d free pairs; want 0 and 4", r.Len(), r.FreePairs())
	}
}

// openCall opens session id on r with an endpoint on each side, each
// sending to its leg.
func openCall(t *testing.T, r *media.Relay, id string) (*media.Session, *mediatest.Endpoint, *mediatest.Endpoint) {
	t.Helper()
	s, err := r.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	a, b := mediatest.NewEndpoint(t), mediatest.NewEndpoint(t)
	connect(s, a, b)
	return s, a, b
}

// cleanCall anchors two endpoints that send each other n packets of 20 ms
// PCMU through a new session, and checks what the relay measured: every
// packet in and out on each leg, no loss, the codec, a clean MOS. It
// returns the session and the endpoints of sides A and B.
func cleanCall(t *testing.T, r *media.Relay, id string, n int) (s *media.Session, a, b *mediatest.Endpoint) {
	t.Helper()
	s, a, b = openCall(t, r, id)
	sendBoth(t, n, a, b)
	waitFor(t, "both ends to receive every packet", func() bool {
		return a.Stats().Packets == uint64(n) && b.Stats().Packets == uint64(n)
	})
	sum := s.Summary()
	for _, leg := range sum.Legs {
		if leg.PacketsIn != uint64(n) || leg.PacketsOut != uint64(n) || leg.BytesIn != uint64(n)*172 {
			t.Errorf("leg %s: in %d (%d bytes) out %d, want %d (%d bytes) each", leg.Side, leg.PacketsIn, leg.BytesIn, leg.PacketsOut, n, n*172)
		}
		if leg.LossPct != 0 || leg.Duplicates != 0 || leg.Strangers != 0 || leg.Junk != 0 {
			t.Errorf("leg %s: loss %.2f%% duplicates %d strangers %d junk %d on clean loopback", leg.Side, leg.LossPct, leg.Duplicates, leg.Strangers, leg.Junk)
		}
		if leg.Codec != "PCMU" {
			t.Errorf("leg %s: codec %q, want PCMU", leg.Side, leg.Codec)
		}
	}
	// Generous: loopback under a loaded test machine still jitters little.
	if !sum.Measured || sum.MOS <= 4.0 {
		t.Errorf("clean call: measured %v, MOS %.2f, want > 4.0 (R %.1f, jitter %.1f ms)", sum.Measured, sum.MOS, sum.R, sum.JitterMs)
	}
	return s, a, b
}

func TestRelayLatchingRefusesStrangers(t *testing.T) {
	t.Parallel()
	latching(t, newRelay(t, 2), "latch", 5, 3, 0)
}

// latching sends n packets from side A of a new session, then 7 from a
// stranger, which the latch must refuse; then a re-INVITE moves side A to
// the stranger's address, whose m packets must be relayed. Packets go out
// every interval. It returns the session, A's and B's endpoints and the
// stranger's.
func latching(t *testing.T, r *media.Relay, id string, n, m int, interval time.Duration) (s *media.Session, a, b, stranger *mediatest.Endpoint) {
	t.Helper()
	s, a, b = openCall(t, r, id)
	stranger = mediatest.NewEndpoint(t)
	rtp, rtcp := s.Leg(media.A).Local()
	stranger.SetPeer(rtp, rtcp)
	ctx := context.Background()
	if err := a.Send(ctx, n, interval); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to receive a's packets", func() bool { return b.Stats().Packets == uint64(n) })
	if err := stranger.Send(ctx, 7, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the relay to refuse the stranger", func() bool { return s.Summary().Legs[media.A].Strangers == 7 })
	if got := b.Stats().Packets; got != uint64(n) {
		t.Fatalf("b received %d packets, want only a's %d: the stranger's leaked through", got, n)
	}
	if st := b.Stats(); st.SSRC != a.SSRC {
		t.Fatalf("b's stream has SSRC %x, want a's %x", st.SSRC, a.SSRC)
	}

	// A re-INVITE moves side A to the former stranger's address: the latch
	// is learnt again.
	s.Leg(media.A).Signal(remoteOf(stranger))
	if err := stranger.Send(ctx, m, interval); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new source to be relayed", func() bool { return b.Stats().Packets >= uint64(n+m) })
	return s, a, b, stranger
}

func TestRelayPortsExhaustedAndReleased(t *testing.T) {
	t.Parallel()
	r := newRelay(t, 4) // two sessions of two legs
	s1, err := r.Open("one")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open("two"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Open("one"); !errors.Is(err, media.ErrExists) {
		t.Fatalf("reopening a session: %v, want ErrExists", err)
	}
	if _, err := r.Open("three"); !errors.Is(err, media.ErrNoPorts) {
		t.Fatalf("third session on four pairs: %v, want ErrNoPorts", err)
	}
	if r.FreePairs() != 0 || r.Len() != 2 {
		t.Fatalf("after refusal: %d free pairs, %d sessions; want 0 and 2", r.FreePairs(), r.Len())
	}
	s1.Close()
	s1.Close() // idempotent
	if _, err := r.Open("three"); err != nil {
		t.Fatalf("after a release: %v", err)
	}
	r.Close()
	if _, err := r.Open("four"); !errors.Is(err, media.ErrClosed) {
		t.Fatalf("open after close: %v, want ErrClosed", err)
	}
	if r.FreePairs() != 4 {
		t.Fatalf("after relay close: %d free pairs, want 4", r.FreePairs())
	}
}

func TestRelayLiveness(t *testing.T) {
	t.Parallel()
	r := newRelay(t, 2)
	timeout := r.Config().Timeout
	s, a, b := openCall(t, r, "live")
	start := time.Now()
	if side, _, dead := s.Dead(start.Add(timeout / 2)); dead {
		t.Fatalf("side %s dead before the timeout", side)
	}
	if _, _, dead := s.Dead(start.Add(timeout + time.Second)); !dead {
		t.Fatal("two silent sending sides not dead after the timeout")
	}

	// A holds B (sendonly answered by recvonly): silence is expected both
	// ways (the holder need not play music) and never ends the call.
	hold := remoteOf(a)
	hold.OnHold = true
	s.Leg(media.A).Signal(hold)
	hold = remoteOf(b)
	hold.Sends, hold.OnHold = false, true
	s.Leg(media.B).Signal(hold)
	if side, _, dead := s.Dead(time.Now().Add(100 * timeout)); dead {
		t.Fatalf("side %s on hold declared dead", side)
	}

	// Resume: A sends only RTCP (DTX silence keeps reports flowing), which
	// keeps it alive; B sends RTP.
	s.Leg(media.A).Signal(remoteOf(a))
	s.Leg(media.B).Signal(remoteOf(b))
	if err := a.SendSR(); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(context.Background(), 1, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the report and packet to arrive", func() bool {
		sum := s.Summary()
		return sum.Legs[media.A].RTCPIn == 1 && sum.Legs[media.B].PacketsIn == 1
	})
	seen := time.Now()
	if side, _, dead := s.Dead(seen.Add(timeout - 200*time.Millisecond)); dead {
		t.Fatalf("side %s dead although it sent within the timeout", side)
	}
	side, silent, dead := s.Dead(seen.Add(timeout + time.Second))
	if !dead || silent <= timeout {
		t.Fatalf("after the timeout: dead %v (side %s, silent %v)", dead, side, silent)
	}
}

func TestRelayTellsAboutDeadStreams(t *testing.T) {
	t.Parallel()
	type death struct {
		id   string
		side media.Side
	}
	got := make(chan death, 4)
	r := newRelay(t, 2, media.WithDeadFunc(func(s *media.Session, side media.Side, _ time.Duration) {
		got <- death{s.ID(), side}
		s.Close()
	}))
	s, _, b := openCall(t, r, "silent")
	hold := remoteOf(b)
	hold.Sends = false
	s.Leg(media.B).Signal(hold) // only A should be sending, and is not
	select {
	case d := <-got:
		if d.id != "silent" || d.side != media.A {
			t.Fatalf("dead stream reported as %+v, want session silent side a", d)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no dead stream reported")
	}
	waitFor(t, "the session to be closed", func() bool { return r.Len() == 0 })
}

func TestRelayTimesForwardedReports(t *testing.T) {
	t.Parallel()
	r := newRelay(t, 2)
	s, a, b := openCall(t, r, "rtt")
	b.AnswerReports(true)
	if err := a.Send(context.Background(), 3, 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Send(context.Background(), 3, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "media both ways", func() bool { return a.Stats().Packets == 3 && b.Stats().Packets == 3 })
	if err := a.SendSR(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leg b's round trip", func() bool { return s.Summary().Legs[media.B].RTTKnown })
	leg := s.Summary().Legs[media.B]
	// Loopback: well under a second even on a loaded machine.
	if leg.RTTMs < 0 || leg.RTTMs > 1000 {
		t.Fatalf("leg b RTT %.3f ms, want within [0, 1000] on loopback", leg.RTTMs)
	}
	if !leg.FarKnown || leg.FarLossPct != 0 {
		t.Fatalf("b's report of a's stream: known %v loss %.1f%%", leg.FarKnown, leg.FarLossPct)
	}
	if got := b.RTCPReceived(); got != 1 {
		t.Fatalf("b received %d RTCP packets, want a's one forwarded SR", got)
	}
}

func TestPeerRelaysMeasureTheirPath(t *testing.T) {
	t.Parallel()
	r1, r2 := newRelay(t, 2), newRelay(t, 2)
	s1, err := r1.Open("p")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := r2.Open("p")
	if err != nil {
		t.Fatal(err)
	}
	a, b := mediatest.NewEndpoint(t), mediatest.NewEndpoint(t)
	// a ↔ r1 leg A; r1 leg B ↔ r2 leg A; r2 leg B ↔ b.
	s1.Leg(media.A).Signal(remoteOf(a))
	s2.Leg(media.B).Signal(remoteOf(b))
	rtp, rtcp := s2.Leg(media.A).Local()
	s1.Leg(media.B).Signal(media.Remote{RTP: rtp, RTCP: rtcp, Sends: true})
	rtp, rtcp = s1.Leg(media.B).Local()
	s2.Leg(media.A).Signal(media.Remote{RTP: rtp, RTCP: rtcp, Sends: true})
	s1.Leg(media.B).SetPeerRelay(true)
	s2.Leg(media.A).SetPeerRelay(true)
	rtp, rtcp = s1.Leg(media.A).Local()
	a.SetPeer(rtp, rtcp)
	rtp, rtcp = s2.Leg(media.B).Local()
	b.SetPeer(rtp, rtcp)

	sendBoth(t, 50, a, b)
	waitFor(t, "the relays' own round trip", func() bool {
		return s1.Summary().Legs[media.B].RTTKnown && s2.Summary().Legs[media.A].RTTKnown
	})
	waitFor(t, "media through both relays", func() bool { return a.Stats().Packets == 50 && b.Stats().Packets == 50 })
	if a.RTCPReceived() != 0 || b.RTCPReceived() != 0 {
		t.Fatalf("endpoints received relay RTCP: a %d, b %d; relays must consume their own reports", a.RTCPReceived(), b.RTCPReceived())
	}
	for _, leg := range []media.LegQuality{s1.Summary().Legs[media.B], s2.Summary().Legs[media.A]} {
		if leg.RTTMs < 0 || leg.RTTMs > 1000 {
			t.Errorf("relay path RTT %.3f ms, want within [0, 1000] on loopback", leg.RTTMs)
		}
	}
}

func TestRelaySecureStreamsAreCountedOnly(t *testing.T) {
	t.Parallel()
	s, a, b := secureCall(t, newRelay(t, 2), "srtp")
	if err := a.Send(context.Background(), 10, 0); err != nil {
		t.Fatal(err)
	}
	if err := a.SendSR(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b to receive the stream and report", func() bool { return b.Stats().Packets == 10 && b.RTCPReceived() == 1 })
	leg := s.Summary().Legs[media.A]
	if leg.PacketsIn != 10 || !leg.Secure || leg.JitterMs != 0 {
		t.Fatalf("secure leg: %+v; want 10 packets counted, no statistics", leg)
	}
}

// secureCall opens a session whose side A signalled SRTP (RTP/SAVP) and
// points A's endpoint at its leg; B is signalled plain.
func secureCall(t *testing.T, r *media.Relay, id string) (s *media.Session, a, b *mediatest.Endpoint) {
	t.Helper()
	s, err := r.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	a, b = mediatest.NewEndpoint(t), mediatest.NewEndpoint(t)
	ra := remoteOf(a)
	ra.Secure = true
	s.Leg(media.A).Signal(ra)
	s.Leg(media.B).Signal(remoteOf(b))
	rtp, rtcp := s.Leg(media.A).Local()
	a.SetPeer(rtp, rtcp)
	return s, a, b
}

func TestConfigValidateNamesField(t *testing.T) {
	for _, tc := range []struct {
		field string
		edit  func(*media.Config)
	}{
		{"bind", func(c *media.Config) { c.Bind = netip.Addr{} }},
		{"advertise", func(c *media.Config) { c.Bind = netip.MustParseAddr("0.0.0.0") }},
		{"port_min", func(c *media.Config) { c.PortMin = 80 }},
		{"port_max", func(c *media.Config) { c.PortMax = c.PortMin + 1 }},
		{"timeout", func(c *media.Config) { c.Timeout = 0 }},
	} {
		c := media.DefaultConfig()
		tc.edit(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: %v, want an error naming it", tc.field, err)
		}
	}
}

// TestRelaySweeperNeverSeesHalfOpenSessions: the sweeper runs while
// sessions are opened and closed; a session still binding its ports is
// invisible to it (it once read a session's legs before they existed).
func TestRelaySweeperNeverSeesHalfOpenSessions(t *testing.T) {
	t.Parallel()
	r := newRelayWith(t, 8, func(c *media.Config) { c.Sweep, c.ReportInterval = time.Millisecond, time.Millisecond })
	for i := 0; i < 300; i++ {
		s, err := r.Open(fmt.Sprint("s", i))
		if err != nil {
			t.Fatal(err)
		}
		s.Leg(media.B).SetPeerRelay(true)
		s.Close()
	}
	if r.Len() != 0 || r.FreePairs() != 8 {
		t.Fatalf("%d sessions, %d free pairs after all closed", r.Len(), r.FreePairs())
	}
}

// Close while sessions are being opened: each Open either gets its session
// (closed with the relay) or ErrClosed, never a failure of a poller that
// Close stopped under it.
func TestRelayCloseWhileOpening(t *testing.T) {
	t.Parallel()
	for round := 0; round < 20; round++ {
		r := newRelay(t, 64)
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for g := 0; g < 4; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					if _, err := r.Open(fmt.Sprint(round, "-", g, "-", i)); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		r.Close()
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, media.ErrClosed) && !errors.Is(err, media.ErrNoPorts) {
				t.Fatalf("round %d: Open racing Close: %v; want ErrClosed (or ErrNoPorts)", round, err)
			}
		}
		if r.Len() != 0 {
			t.Fatalf("round %d: %d sessions left after Close", round, r.Len())
		}
	}
}

// Several workers each serve their share of the sessions; sessions closed
// while others carry traffic neither lose the others' packets nor leave a
// socket behind.
func TestRelayWorkersShareSessions(t *testing.T) {
	t.Parallel()
	const calls = 6
	r := newRelayWith(t, 2*calls+4, func(c *media.Config) { c.Workers = 3 })
	var eps []*mediatest.Endpoint
	workers := map[int]int{}
	for i := 0; i < calls; i++ {
		s, err := r.Open(fmt.Sprint("w", i))
		if err != nil {
			t.Fatal(err)
		}
		workers[media.Worker(s)]++
		a, b := mediatest.NewEndpoint(t), mediatest.NewEndpoint(t)
		connect(s, a, b)
		eps = append(eps, a, b)
	}
	if runtime.GOOS == "linux" && (len(workers) != 3 || workers[0] != 2 || workers[1] != 2 || workers[2] != 2) {
		t.Fatalf("sessions per worker %v; want 2 on each of 3", workers)
	}
	// Short-lived sessions open and close on every worker meanwhile.
	churn := make(chan struct{})
	go func() {
		defer close(churn)
		for i := 0; i < 200; i++ {
			s, err := r.Open(fmt.Sprint("churn", i))
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		}
	}()
	const n = 50
	var wg sync.WaitGroup
	for _, e := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := e.Send(context.Background(), n, 2*time.Millisecond); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	<-churn
	waitFor(t, "every endpoint to receive every packet", func() bool {
		for _, e := range eps {
			if e.Stats().Packets != n {
				return false
			}
		}
		return true
	})
	if got := r.Counters.Forwarded.Load(); got != 2*calls*n {
		t.Errorf("forwarded %d, want %d", got, 2*calls*n)
	}
	for _, s := range r.Sessions() {
		s.Close()
	}
	if pairs := r.Config().Pairs(); r.Len() != 0 || r.FreePairs() != pairs {
		t.Errorf("%d sessions, %d of %d pairs free after all closed", r.Len(), r.FreePairs(), pairs)
	}
}

// The relay forwards over IPv6, and a relay bound to the IPv6 wildcard
// also takes IPv4 endpoints (as v4-mapped addresses) and writes back to
// them.
func TestRelayIPv6AndDualStack(t *testing.T) {
	t.Parallel()
	probe, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skipf("no IPv6 loopback on this host: %v", err)
	}
	probe.Close()
	rtpPacket := func(seq uint16) []byte {
		p := make([]byte, 12+160)
		p[0], p[1] = 0x80, 0 // RTP v2, PCMU
		p[2], p[3] = byte(seq>>8), byte(seq)
		p[11] = 7 // SSRC
		return p
	}
	for _, tc := range []struct {
		name            string
		bind, advertise string
		endpoint        string
		kernel          bool
	}{
		{"ipv6", "::1", "", "[::1]:0", false},
		{"dual stack, IPv4 endpoints", "::", "127.0.0.1", "127.0.0.1:0", false},
		{"ipv6, kernel path", "::1", "", "[::1]:0", true},
		{"dual stack, IPv4 endpoints, kernel path", "::", "127.0.0.1", "127.0.0.1:0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRelayWith(t, 2, func(c *media.Config) {
				c.Bind = netip.MustParseAddr(tc.bind)
				if tc.advertise != "" {
					c.Advertise = netip.MustParseAddr(tc.advertise)
				}
				if tc.kernel {
					c.Kernel = media.KernelOn
				}
			})
			s, err := r.Open("v6")
			if err != nil {
				t.Fatal(err)
			}
			var ends [2]*net.UDPConn
			for i := range ends {
				addr, _ := net.ResolveUDPAddr("udp", tc.endpoint)
				if ends[i], err = net.ListenUDP("udp", addr); err != nil {
					t.Fatal(err)
				}
				defer ends[i].Close()
			}
			s.Leg(media.A).Signal(media.Remote{RTP: ends[0].LocalAddr().(*net.UDPAddr).AddrPort(), Sends: true})
			s.Leg(media.B).Signal(media.Remote{RTP: ends[1].LocalAddr().(*net.UDPAddr).AddrPort(), Sends: true})
			toA, _ := s.Leg(media.A).Local()
			toB, _ := s.Leg(media.B).Local()
			buf := make([]byte, 2048)
			for seq := uint16(1); seq <= 5; seq++ {
				for i, to := range []netip.AddrPort{toA, toB} {
					if _, err := ends[i].WriteToUDPAddrPort(rtpPacket(seq), to); err != nil {
						t.Fatal(err)
					}
					other := ends[1-i]
					_ = other.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, from, err := other.ReadFromUDPAddrPort(buf)
					if err != nil {
						t.Fatalf("packet %d from side %d not relayed: %v", seq, i, err)
					}
					// It comes from the relay port the receiver sends to.
					want := toB
					if i == 1 {
						want = toA
					}
					if from.Addr().Unmap() != want.Addr().Unmap() || from.Port() != want.Port() || n != 172 {
						t.Fatalf("packet %d: %d bytes from %s, want 172 from %s", seq, n, from, want)
					}
				}
			}
			for _, leg := range s.Summary().Legs {
				if leg.PacketsIn != 5 || leg.PacketsOut != 5 {
					t.Errorf("leg %s: in %d out %d, want 5 each", leg.Side, leg.PacketsIn, leg.PacketsOut)
				}
			}
			// Each side's first packet latches it in user space; the kernel
			// forwards the rest.
			if k := r.Counters.KernelForwarded.Load(); tc.kernel && k != 8 {
				t.Errorf("the kernel forwarded %d of 10 packets, want 8", k)
			}
		})
	}
}
