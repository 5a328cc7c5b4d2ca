package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media/impair"
)

// checkCounters compares the counters that matter to a test.
func checkCounters(t *testing.T, p *Provider, want Counters) {
	t.Helper()
	got := p.Counters()
	if got.Invites != want.Invites || got.Forwarded != want.Forwarded || got.Answered != want.Answered ||
		got.Cancelled != want.Cancelled || got.Active != want.Active || got.Terminated != want.Terminated {
		t.Errorf("%s counters: invites %d forwarded %d answered %d cancelled %d active %d terminated %d; want %d %d %d %d %d %d",
			p.ID(), got.Invites, got.Forwarded, got.Answered, got.Cancelled, got.Active, got.Terminated,
			want.Invites, want.Forwarded, want.Answered, want.Cancelled, want.Active, want.Terminated)
	}
	for code, n := range want.Failed {
		if got.Failed[code] != n {
			t.Errorf("%s counters: failed[%d] = %d, want %d (all: %v)", p.ID(), code, got.Failed[code], n, got.Failed)
		}
	}
}

// TestProviderTwoProxies: a call through two proxies in a preloaded route
// set. The callee sees both Record-Routes and the egress Route with its
// cmtoken intact; a re-INVITE and its ACK, and a BYE from either side,
// traverse both; the first proxy anchors the media.
func TestProviderTwoProxies(t *testing.T) {
	t.Parallel()
	cfg1 := DefaultProviderConfig("ap1")
	cfg1.Media = testMedia(t)
	ap1 := startProvider(t, cfg1)
	ap2 := startProvider(t, DefaultProviderConfig("ap2"))
	callee, caller := newUA(t, "bob"), newUA(t, "alice")
	egress := "<" + callee.uri(";lr;cmtoken=Zx9-t0k.42%41") + ">"
	// As the ingress node sends it: one Route header with the whole set.
	routes := []string{lr(ap1) + ", " + lr(ap2) + ", " + egress}

	var wantInDialog uint64
	for round, byeFromCallee := range []bool{true, false} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		d, res, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{})
		if err != nil {
			cancel()
			t.Fatalf("round %d: call: %v (response %v)", round, err, res)
		}
		invites := callee.received(sip.INVITE)
		if len(invites) != 2*round+1 { // round 0 adds a re-INVITE
			t.Fatalf("callee got %d INVITEs, want %d", len(invites), 2*round+1)
		}
		inv := invites[len(invites)-1]
		// RFC 3261 §16.6 step 4: each proxy puts its Record-Route on top.
		var rr []string
		for _, h := range inv.GetHeaders("Record-Route") {
			rr = append(rr, splitValues(h.Value())...)
		}
		want := []string{"<" + ap2.AccessPoint() + ";lr;transport=udp>", "<" + ap1.AccessPoint() + ";lr;transport=udp>"}
		if strings.Join(rr, ",") != strings.Join(want, ",") {
			t.Errorf("Record-Route at the callee %q, want %q", rr, want)
		}
		// §16.4: both proxies popped themselves; the egress value passed untouched.
		var route []string
		for _, h := range inv.GetHeaders("Route") {
			route = append(route, h.Value())
		}
		if len(route) != 1 || route[0] != egress {
			t.Errorf("Route at the callee %q, want [%s]", route, egress)
		}
		if inv.Recipient.String() != bob.String() {
			t.Errorf("Request-URI at the callee %s, want %s", inv.Recipient.String(), bob.String())
		}
		if mf := inv.MaxForwards(); mf == nil || mf.Val() != 68 {
			t.Errorf("Max-Forwards at the callee %v, want 68", mf)
		}
		// ap1 anchors the media: each side is told to send to its relay.
		relayAddr := ap1.relay.Config().Bind
		if a := sdpAudio(t, inv.Body()); a.Addr() != relayAddr || a == caller.rtp.Addr() {
			t.Errorf("offer at the callee names %s, want ap1's relay", a)
		}
		if a := sdpAudio(t, res.Body()); a.Addr() != relayAddr || a == callee.rtp.Addr() {
			t.Errorf("answer at the caller names %s, want ap1's relay", a)
		}
		eventually(t, "ACK at the callee", func() bool { return len(callee.received(sip.ACK)) == 2*round+1 })
		for _, ap := range []*Provider{ap1, ap2} {
			checkCounters(t, ap, Counters{Invites: uint64(round + 1), Forwarded: uint64(round + 1), Answered: uint64(round + 1), Active: 1})
		}

		wantInDialog += 2 // ACK and BYE
		if round == 0 {
			// A re-INVITE follows the route set; ap1 anchors it again at
			// the same ports, and its ACK follows too.
			target := res.Contact().Address
			re := sip.NewRequest(sip.INVITE, target)
			re.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			re.SetBody(caller.sdp())
			rres, err := d.Do(ctx, re)
			if err != nil || rres.StatusCode != 200 {
				t.Fatalf("re-INVITE: %v %v", err, rres)
			}
			if a, b := sdpAudio(t, rres.Body()), sdpAudio(t, res.Body()); a != b {
				t.Errorf("re-INVITE answer names %s, the first %s", a, b)
			}
			reinv := callee.received(sip.INVITE)[1]
			if a, b := sdpAudio(t, reinv.Body()), sdpAudio(t, inv.Body()); a != b {
				t.Errorf("re-INVITE offer names %s, the first %s", a, b)
			}
			if err := d.WriteRequest(sip.NewRequest(sip.ACK, target)); err != nil {
				t.Fatal(err)
			}
			eventually(t, "ACK of the re-INVITE", func() bool { return len(callee.received(sip.ACK)) == 2 })
			wantInDialog += 2
		}
		if byeFromCallee {
			if err := callee.dialog(round).Bye(ctx); err != nil {
				t.Fatalf("BYE from the callee: %v", err)
			}
			eventually(t, "BYE at the caller", func() bool { return len(caller.received(sip.BYE)) == 1 })
			bye := caller.received(sip.BYE)[0]
			if vias := bye.GetHeaders("Via"); len(vias) != 3 {
				t.Errorf("BYE at the caller has %d Vias, want 3 (ap1, ap2, callee)", len(vias))
			}
		} else {
			if err := d.Bye(ctx); err != nil {
				t.Fatalf("BYE from the caller: %v", err)
			}
			byes := callee.received(sip.BYE)
			if len(byes) != 1 {
				t.Fatalf("callee got %d BYEs, want 1", len(byes))
			}
			if vias := byes[0].GetHeaders("Via"); len(vias) != 3 {
				t.Errorf("BYE at the callee has %d Vias, want 3 (ap2, ap1, caller)", len(vias))
			}
		}
		cancel()
		for _, ap := range []*Provider{ap1, ap2} {
			eventually(t, ap.ID()+" call ended", func() bool { return ap.Counters().Active == 0 })
			if c := ap.Counters(); c.InDialog != wantInDialog {
				t.Errorf("%s in-dialog requests %d, want %d", ap.ID(), c.InDialog, wantInDialog)
			}
			rec, ok := ap.Call(callID(inv))
			if !ok || rec.Outcome != OutcomeAnswered || !rec.Ended || rec.Invites != 1 {
				t.Errorf("%s record %+v", ap.ID(), rec)
			}
		}
	}
	if r, _ := ap1.Call(callID(callee.received(sip.INVITE)[0])); r.NextHop != ap2.AccessPoint()+";lr" {
		t.Errorf("ap1 next hop %q, want ap2", r.NextHop)
	}
}

// TestProviderCancel: the caller cancels while the callee rings; both
// proxies pass the CANCEL on (§16.10) and the caller gets 487.
func TestProviderCancel(t *testing.T) {
	t.Parallel()
	ap1 := startProvider(t, DefaultProviderConfig("ap1"))
	ap2 := startProvider(t, DefaultProviderConfig("ap2"))
	callee, caller := newUA(t, "bob"), newUA(t, "alice")
	callee.setAnswer(callee.ringOnly)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	opts := sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.StatusCode == 180 {
			cancel()
		}
		return nil
	}}
	_, res, err := caller.dial(ctx, bob, []string{lr(ap1), lr(ap2), "<" + callee.uri(";lr") + ">"}, opts)
	if err == nil {
		t.Fatal("the call was answered")
	}
	if res == nil || res.StatusCode != 487 {
		t.Fatalf("caller's final response %v, want 487", res)
	}
	eventually(t, "CANCEL at the callee", func() bool { return callee.cancelsSeen() == 1 })
	for _, ap := range []*Provider{ap1, ap2} {
		eventually(t, ap.ID()+" call ended", func() bool { return ap.Counters().Active == 0 })
		checkCounters(t, ap, Counters{Invites: 1, Forwarded: 1, Cancelled: 1})
	}
}

// TestProviderTrunk: a trunk challenges with 407, takes the retry with
// credentials and answers a number it terminates as the far end: 200 with
// SDP, a tone of 20 ms PCMU packets, RTP received, BYE answered. It
// refuses wrong credentials and forwards other numbers to the
// Request-URI.
func TestProviderTrunk(t *testing.T) {
	t.Parallel()
	cfg := DefaultProviderConfig("trunk")
	cfg.Mode = RoleTrunk
	cfg.Terminate = []string{"+49"}
	cfg.Auth = &ProviderAuth{Realm: "cheapnet", Username: "node-a", Password: "secret"}
	cfg.Media = testMedia(t)
	// Each message is handled in its own goroutine at the caller: a 200
	// right behind the 180 may overtake it (and the 180 is then dropped).
	cfg.RingMs = 100
	trunk := startProvider(t, cfg)
	caller := newUA(t, "alice")
	// The caller keeps every RTP header it receives, so the tone's pacing
	// is read from the packets themselves.
	caller.rtp.KeepHeaders()
	host, port := trunk.self.hosts[0], trunk.port
	number := sip.Uri{Scheme: "sip", User: "+4930123456", Host: host, Port: port}

	// Wrong password: challenged, then refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, res, err := caller.dial(ctx, number, nil, sipgo.AnswerOptions{Username: "node-a", Password: "wrong"})
	if err == nil || res == nil || res.StatusCode != 403 {
		t.Fatalf("wrong password: %v %v, want 403", err, res)
	}

	var codes []int
	opts := sipgo.AnswerOptions{Username: "node-a", Password: "secret",
		OnResponse: func(r *sip.Response) error { codes = append(codes, r.StatusCode); return nil }}
	d, res, err := caller.dial(ctx, number, nil, opts)
	if err != nil {
		t.Fatalf("call: %v (%v)", err, res)
	}
	var seen []string
	for _, c := range codes {
		if c != 100 {
			seen = append(seen, strconv.Itoa(c))
		}
	}
	if strings.Join(seen, " ") != "407 180 200" {
		t.Errorf("responses %v, want 407, then 180 and 200", codes)
	}
	if ct := res.GetHeader("Content-Type"); ct == nil || ct.Value() != "application/sdp" {
		t.Fatalf("200 without SDP: %v", res)
	}
	if !strings.Contains(string(res.Body()), "a=rtpmap:0 PCMU/8000") {
		t.Errorf("answer without PCMU: %q", res.Body())
	}
	remote := sdpAudio(t, res.Body())
	if remote.Addr() != trunk.relay.Config().Bind {
		t.Errorf("answer names %s, want the trunk's relay", remote)
	}

	// The tone, as its packets say: one stream of PCMU, 160 bytes of
	// payload, and the RTP timestamp 160 on (20 ms at 8 kHz) for every
	// sequence number on, so 50 packets carry a second of sound.
	const tonePackets = 10
	eventually(t, "tone at the caller", func() bool { return len(caller.rtp.Headers()) >= tonePackets })
	pkts := caller.rtp.Headers()
	first := pkts[0]
	seqs := map[uint16]bool{}
	for _, p := range pkts {
		dseq := int16(p.SequenceNumber - first.SequenceNumber)
		if p.Version != 2 || p.PayloadType != 0 || p.SSRC != first.SSRC || p.Payload != 160 ||
			p.Timestamp-first.Timestamp != uint32(int32(dseq)*160) || seqs[p.SequenceNumber] {
			t.Errorf("tone packet seq %d ts %d pt %d ssrc %#x, %d bytes of payload; "+
				"want PCMU of ssrc %#x, 160 bytes, ts %d + 160 per seq after %d, each seq once",
				p.SequenceNumber, p.Timestamp, p.PayloadType, p.SSRC, p.Payload,
				first.SSRC, first.Timestamp, first.SequenceNumber)
			break
		}
		seqs[p.SequenceNumber] = true
	}
	// The far end receives what the caller sends, through the relay.
	caller.rtp.SetPeer(remote, remote)
	if err := caller.rtp.Send(ctx, 25, 5*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(t, "RTP at the far end", func() bool { return trunk.Counters().FarEndReceived == 25 })
	checkCounters(t, trunk, Counters{Invites: 4, Answered: 1, Active: 1, Terminated: 1,
		Failed: map[int]uint64{407: 2, 403: 1}})

	n1 := uint64(len(caller.rtp.Headers())) // at least tonePackets, all of the tone
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	eventually(t, "call ended", func() bool { return trunk.Counters().Active == 0 })
	sent := trunk.Counters().ToneSent
	if sent < n1 {
		t.Errorf("tone packets sent %d < received %d", sent, n1)
	}
	c := trunk.Counters()
	if c.RTPRelayed < n1+25 {
		t.Errorf("relayed %d RTP packets, want at least %d", c.RTPRelayed, n1+25)
	}

	// A number the trunk does not terminate goes to the Request-URI's host.
	callee := newUA(t, "bob")
	other := sip.Uri{Scheme: "sip", User: "+33123", Host: "127.0.0.1", Port: callee.port}
	_, res, err = caller.dial(ctx, other, []string{lr(trunk)}, sipgo.AnswerOptions{Username: "node-a", Password: "secret"})
	if err != nil {
		t.Fatalf("forwarded call: %v (%v)", err, res)
	}
	inv := callee.received(sip.INVITE)
	if len(inv) != 1 || len(inv[0].GetHeaders("Record-Route")) != 1 || inv[0].GetHeader("Route") != nil {
		t.Errorf("forwarded INVITE: %v", inv)
	}
	if got := trunk.Counters().Forwarded; got != 1 {
		t.Errorf("forwarded %d, want 1", got)
	}
	// The callee's answer waits for its ACK (the caller sends it through
	// the trunk's Record-Route); until it comes, that goroutine is live.
	eventually(t, "the callee to get the forwarded call's ACK", func() bool { return len(callee.received(sip.ACK)) == 1 })
}

// TestProviderCapacity: past max_calls, 503 with Retry-After; a call that
// ends frees its place.
func TestProviderCapacity(t *testing.T) {
	t.Parallel()
	cfg := DefaultProviderConfig("small")
	cfg.MaxCalls = 1
	cfg.RetryAfter = 7
	ap := startProvider(t, cfg)
	callee, caller := newUA(t, "bob"), newUA(t, "alice")
	routes := []string{lr(ap), "<" + callee.uri(";lr") + ">"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, _, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, res, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{})
	if err == nil || res == nil || res.StatusCode != 503 {
		t.Fatalf("second call: %v %v, want 503", err, res)
	}
	if h := res.GetHeader("Retry-After"); h == nil || h.Value() != "7" {
		t.Errorf("503 without Retry-After: 7: %v", res)
	}
	checkCounters(t, ap, Counters{Invites: 2, Forwarded: 1, Answered: 1, Active: 1, Failed: map[int]uint64{503: 1}})
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "place freed", func() bool { return ap.Counters().Active == 0 })
	if _, res, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{}); err != nil {
		t.Fatalf("third call: %v (%v)", err, res)
	}
	checkCounters(t, ap, Counters{Invites: 3, Forwarded: 2, Answered: 2, Active: 1, Failed: map[int]uint64{503: 1}})
}

// postMode switches a provider's mode through its admin endpoint.
func postMode(t *testing.T, p *Provider, body string) Status {
	t.Helper()
	res, err := http.Post(p.AdminURL()+"/mode", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st Status
	if res.StatusCode != http.StatusOK {
		var e map[string]string
		_ = json.NewDecoder(res.Body).Decode(&e)
		t.Fatalf("POST /mode %s: %d %v", body, res.StatusCode, e)
	}
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

// TestProviderFailureModes switches one provider through error_rate, slow
// (delayed and never), healthy and down, through the admin endpoint.
func TestProviderFailureModes(t *testing.T) {
	t.Parallel()
	ap := startProvider(t, DefaultProviderConfig("flaky"))
	callee, caller := newUA(t, "bob"), newUA(t, "alice")
	routes := []string{lr(ap), "<" + callee.uri(";lr") + ">"}

	t.Run("error_rate", func(t *testing.T) {
		st := postMode(t, ap, `{"error_rate": 1}`)
		if st.Mode.Down || st.Mode.ErrorRate != 1 {
			t.Fatalf("mode %+v", st.Mode)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, res, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{})
		if err == nil || res == nil || res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
			t.Fatalf("error_rate 1: %v %v, want 503 with Retry-After", err, res)
		}
		postMode(t, ap, `{"error_code": 500}`)
		_, res, _ = caller.dial(ctx, bob, routes, sipgo.AnswerOptions{})
		if res == nil || res.StatusCode != 500 {
			t.Fatalf("error_code 500: %v", res)
		}
		checkCounters(t, ap, Counters{Invites: 2, Failed: map[int]uint64{503: 1, 500: 1}})
	})

	t.Run("slow", func(t *testing.T) {
		const delay = 1500 * time.Millisecond
		postMode(t, ap, `{"error_rate": 0, "slow": true, "slow_delay_ms": 1500}`)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		// When the 100 Trying reached the caller and the INVITE the callee.
		var mu sync.Mutex
		var tryingAt, inviteAt time.Time
		before := -1 // INVITEs at the callee when the 100 came
		callee.setAnswer(func(d *sipgo.DialogServerSession) {
			mu.Lock()
			if inviteAt.IsZero() {
				inviteAt = time.Now()
			}
			mu.Unlock()
			callee.pickUp(d)
		})
		defer callee.setAnswer(callee.pickUp)
		sent := time.Now() // before the INVITE leaves, so before the hold starts
		d, res, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
			mu.Lock()
			defer mu.Unlock()
			if r.StatusCode == 100 && tryingAt.IsZero() {
				tryingAt = time.Now()
				before = len(callee.received(sip.INVITE))
			}
			return nil
		}})
		if err != nil {
			t.Fatalf("slow call: %v (%v)", err, res)
		}
		defer func() { _ = d.Bye(ctx) }()
		mu.Lock()
		defer mu.Unlock()
		if tryingAt.IsZero() || inviteAt.IsZero() {
			t.Fatalf("100 Trying at %v, INVITE at the callee at %v: want both", tryingAt, inviteAt)
		}
		// 100 comes at once; the INVITE is held.
		if before != 0 || !tryingAt.Before(inviteAt) {
			t.Errorf("the INVITE reached the callee (%d before) at %v, not after 100 Trying at %v",
				before, inviteAt, tryingAt)
		}
		// The hold starts after the 100 is sent and its timer cannot fire
		// early: the INVITE reaches the callee no sooner than the delay
		// after the caller sent it. (Counted from the 100's arrival, the
		// bound would be short by the 100's own transit.)
		if held := inviteAt.Sub(sent); held < delay {
			t.Errorf("the INVITE reached the callee %v after it was sent (%v after 100 Trying), want at least %v",
				held, inviteAt.Sub(tryingAt), delay)
		}
	})

	t.Run("slow_never", func(t *testing.T) {
		postMode(t, ap, `{"slow_delay_ms": 0}`)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		got := make(chan int, 4)
		timer := time.AfterFunc(800*time.Millisecond, cancel) // the caller gives up
		defer timer.Stop()
		_, res, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
			got <- r.StatusCode
			return nil
		}})
		if err == nil || res == nil || res.StatusCode != 487 {
			t.Fatalf("held INVITE: %v %v, want 487 after CANCEL", err, res)
		}
		if c := <-got; c != 100 {
			t.Errorf("first response %d, want 100", c)
		}
		if n := len(callee.received(sip.INVITE)); n != 1 { // the one of the delayed call
			t.Errorf("callee got %d INVITEs, want 1", n)
		}
	})

	t.Run("healthy", func(t *testing.T) {
		postMode(t, ap, `{"slow": false}`)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		d, res, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{})
		if err != nil {
			t.Fatalf("call: %v (%v)", err, res)
		}
		_ = d.Bye(ctx)
		eventually(t, "calls ended", func() bool { return ap.Counters().Active == 0 })
		checkCounters(t, ap, Counters{Invites: 5, Forwarded: 2, Answered: 2, Cancelled: 1, Failed: map[int]uint64{503: 1, 500: 1}})
		// An OPTIONS probe of the provider itself.
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: ap.self.hosts[0], Port: ap.port})
		res, err = caller.client.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Errorf("OPTIONS: %v %v", err, res)
		}
	})

	t.Run("down", func(t *testing.T) {
		// Last: retransmissions of this INVITE must meet a down provider.
		postMode(t, ap, `{"down": true}`)
		// Nothing comes back, not even 100 Trying: the caller's transaction
		// is left to its timer.
		// The caller gives up without a CANCEL: none may be sent before a
		// provisional (RFC 3261 §9.1).
		ctx, cancel := context.WithTimeoutCause(context.Background(), 1500*time.Millisecond, sipgo.WaitAnswerForceCancelErr)
		defer cancel()
		var got []int
		_, _, err := caller.dial(ctx, bob, routes, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
			got = append(got, r.StatusCode)
			return nil
		}})
		if err == nil || len(got) != 0 {
			t.Fatalf("down provider answered: %v %v", err, got)
		}
		c := ap.Counters()
		if c.Dropped == 0 || c.Invites != 5 {
			t.Errorf("dropped %d invites %d, want >0 and 5 (none new)", c.Dropped, c.Invites)
		}
		if n := len(callee.received(sip.INVITE)); n != 2 { // the slow and the healthy call
			t.Errorf("callee got %d INVITEs, want 2: none through a down provider", n)
		}
	})

	// Bad modes are refused, naming the field.
	for body, field := range map[string]string{
		`{"error_rate": 2}`:           "error_rate",
		`{"error_code": 404}`:         "error_code",
		`{"loss": 3}`:                 "loss",
		`{"impair": {"loss_pct": 5}}`: "impair",
	} {
		res, err := http.Post(ap.AdminURL()+"/mode", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]string
		_ = json.NewDecoder(res.Body).Decode(&e)
		res.Body.Close()
		if res.StatusCode != http.StatusBadRequest || !strings.Contains(e["error"], field) {
			t.Errorf("POST %s: %d %q, want 400 naming %s", body, res.StatusCode, e["error"], field)
		}
	}
	res, err := http.Get(ap.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var st Status
	if err := json.NewDecoder(res.Body).Decode(&st); err != nil || st.ID != "flaky" || st.Counters.Failed[500] != 1 {
		t.Errorf("GET /: %+v %v", st, err)
	}
}

// TestProviderImpairment measures a lossy provider: the caller sends RTP
// through the provider's relay and the callee receives what the seeded
// bursty loss lets through. Loss decisions depend only on the seed and the
// packets' order, so the drops are predicted exactly; the count received is
// held to within 2 of the prediction (loopback does not lose, but a
// socket may). Switching degraded off stops the loss at once; a new
// impairment posted to the admin endpoint applies to the call at once.
func TestProviderImpairment(t *testing.T) {
	t.Parallel()
	spec := ImpairSpec{LossPct: 10, Burst: 3, Seed: 7}
	cfg := DefaultProviderConfig("lossy")
	cfg.Media = testMedia(t)
	cfg.Impair = &spec
	ap := startProvider(t, cfg)
	callee, caller := newUA(t, "bob"), newUA(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d, res, err := caller.dial(ctx, bob, []string{lr(ap), "<" + callee.uri(";lr") + ">"}, sipgo.AnswerOptions{})
	if err != nil {
		t.Fatalf("call: %v (%v)", err, res)
	}
	relay := sdpAudio(t, res.Body())
	caller.rtp.SetPeer(relay, relay)

	const n = 400
	drops := predictDrops(t, spec, n)
	if err := caller.rtp.Send(ctx, n, 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(t, "relay counted every packet", func() bool {
		c := ap.Counters()
		return c.RTPRelayed+c.RTPDropped == n
	})
	c := ap.Counters()
	if c.RTPDropped != uint64(drops) || c.RTPRelayed != uint64(n-drops) {
		t.Errorf("relay dropped %d and relayed %d, want %d and %d", c.RTPDropped, c.RTPRelayed, drops, n-drops)
	}
	eventually(t, "RTP at the callee", func() bool { return callee.rtp.Stats().Packets+2 >= uint64(n-drops) })
	if got := callee.rtp.Stats().Packets; got > uint64(n-drops) {
		t.Errorf("callee received %d, more than the %d let through", got, n-drops)
	}
	st := callee.rtp.Stats()
	t.Logf("sent %d, predicted drops %d, received %d (loss %.1f%%, burst ratio %.2f)", n, drops, st.Packets, st.LossPct, st.BurstRatio)
	if drops < n/20 || drops > n/5 {
		t.Errorf("the seed drops %d of %d: not a 10%% loss", drops, n)
	}

	// degraded off: nothing more is dropped.
	if err := ap.SetMode(Mode{}); err != nil {
		t.Fatal(err)
	}
	if err := caller.rtp.Send(ctx, 100, 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	eventually(t, "unimpaired RTP relayed", func() bool { return ap.Counters().RTPRelayed == uint64(n-drops+100) })
	if got := ap.Counters().RTPDropped; got != uint64(drops) {
		t.Errorf("dropped %d after degraded off, want %d", got, drops)
	}

	// A new impairment through the admin endpoint applies to the call in
	// progress at once, its model starting afresh.
	spec2 := ImpairSpec{LossPct: 20, Burst: 2, Seed: 3}
	if st := postMode(t, ap, `{"impair": {"loss_pct": 20, "burst": 2, "seed": 3}}`); !st.Mode.Degraded || st.Mode.Impair != spec2 {
		t.Fatalf("mode after POST: %+v", st.Mode)
	}
	const n2 = 200
	drops2 := predictDrops(t, spec2, n2)
	if err := caller.rtp.Send(ctx, n2, 2*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	relayed := uint64(n - drops + 100 + n2 - drops2)
	eventually(t, "RTP under the new impairment", func() bool {
		c := ap.Counters()
		return c.RTPRelayed+c.RTPDropped == relayed+uint64(drops+drops2)
	})
	if c := ap.Counters(); c.RTPDropped != uint64(drops+drops2) {
		t.Errorf("dropped %d under the new impairment, want %d", c.RTPDropped-uint64(drops), drops2)
	}
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "call ended", func() bool { return ap.Counters().Active == 0 })
	if got := ap.Counters().RTPRelayed; got != relayed {
		t.Errorf("relayed %d once the call ended, want %d", got, relayed)
	}
}

// predictDrops runs the impairment's model over n packets in order.
func predictDrops(t *testing.T, spec ImpairSpec, n int) int {
	t.Helper()
	m, err := impair.New(spec.Config())
	if err != nil {
		t.Fatal(err)
	}
	drops := 0
	for i := 0; i < n; i++ {
		if _, lost := m.Next(int64(i) * int64(20*time.Millisecond)); lost {
			drops++
		}
	}
	return drops
}

// TestProviderTCP: a next hop named with ;transport=tcp is reached over
// TCP, and the proxy record-routes twice (RFC 5658) so that each side
// reaches it over its own transport.
func TestProviderTCP(t *testing.T) {
	t.Parallel()
	ap := startProvider(t, DefaultProviderConfig("tcp"))
	callee, caller := newUA(t, "bob"), newUA(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, res, err := caller.dial(ctx, bob, []string{lr(ap), "<" + callee.uri(";lr;transport=tcp") + ">"}, sipgo.AnswerOptions{})
	if err != nil {
		t.Fatalf("call: %v (%v)", err, res)
	}
	inv := callee.received(sip.INVITE)[0]
	if inv.Transport() != "TCP" {
		t.Errorf("INVITE reached the callee over %s", inv.Transport())
	}
	var rr []string
	for _, h := range inv.GetHeaders("Record-Route") {
		rr = append(rr, h.Value())
	}
	want := []string{"<" + ap.AccessPoint() + ";lr;transport=tcp>", "<" + ap.AccessPoint() + ";lr;transport=udp>"}
	if strings.Join(rr, ",") != strings.Join(want, ",") {
		t.Errorf("Record-Route %q, want %q", rr, want)
	}
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	eventually(t, "call ended", func() bool { return ap.Counters().Active == 0 })
}

// TestProviderLoopAndHops: Max-Forwards 0 gets 483 (§16.3 step 3); a
// request that comes back with the same routing state gets 482 (step 4).
func TestProviderLoopAndHops(t *testing.T) {
	t.Parallel()
	ap := startProvider(t, DefaultProviderConfig("loopy"))
	caller := newUA(t, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	send := func(req *sip.Request) int {
		t.Helper()
		req.SetDestination(ap.Addr())
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(caller.sdp())
		res, err := caller.client.Do(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode
	}
	req := sip.NewRequest(sip.INVITE, bob)
	mf := sip.MaxForwardsHeader(0)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.NewHeader("Route", lr(ap)))
	if code := send(req); code != 483 {
		t.Errorf("Max-Forwards 0: %d, want 483", code)
	}
	// A request that passed the provider before with the same Request-URI,
	// dialog, CSeq and route left: the provider's own Via below the
	// caller's carries the same loop key.
	req = sip.NewRequest(sip.INVITE, bob)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP", Host: "127.0.0.1", Port: caller.port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranch())
	req.AppendHeader(via)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "callmesh.local"}, Params: sip.NewParams()}
	from.Params.Add("tag", "loop1")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: bob})
	cid := sip.CallIDHeader("loop-test")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(sip.NewHeader("Route", lr(ap)))
	req.AppendHeader(ap.via("UDP", branchPrefix(loopKey(req, nil))+"earlier"))
	if code := send(req); code != 482 {
		t.Errorf("loop: %d, want 482", code)
	}
	checkCounters(t, ap, Counters{Invites: 2, Failed: map[int]uint64{483: 1, 482: 1}})
}

// TestProviderConfig: the example configuration parses; bad ones are
// refused naming the field.
func TestProviderConfig(t *testing.T) {
	t.Parallel()
	cfg, err := LoadProviderConfig(filepath.Join("testdata", "provider.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID != "cheapnet" || cfg.Mode != RoleProxy || cfg.MaxCalls != 100 || cfg.Impair == nil || cfg.Impair.LossPct != 2 ||
		cfg.Media == nil || cfg.Media.Ports != "5000-5999" || len(cfg.Terminate) != 1 {
		t.Errorf("parsed %+v", cfg)
	}
	if tc, err := LoadProviderConfig(filepath.Join("testdata", "trunk.yaml")); err != nil || tc.Mode != RoleTrunk || tc.Auth == nil {
		t.Errorf("trunk.yaml: %+v %v", tc, err)
	}
	good, err := os.ReadFile(filepath.Join("testdata", "provider.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ yaml, field string }{
		{"id: x\nmode: relay\n", "mode"},
		{"id: x\nsip: 127.0.0.1:0\nbogus: 1\n", `unknown field "bogus"`},
		{"sip: localhost:5060\n", "sip"},
		{"sip: 127.0.0.1:0\nmax_calls: -1\n", "max_calls"},
		{"sip: 127.0.0.1:0\nterminate: [\"+49\", \"abc\"]\n", "terminate[1]"},
		{"sip: 127.0.0.1:0\nauth: {realm: r, username: u, password: p}\n", "auth"},
		{"sip: 127.0.0.1:0\nmode: trunk\nauth: {realm: r, username: u}\n", "auth.password"},
		{"sip: 127.0.0.1:0\nmedia: {bind: 127.0.0.1, ports: \"9000-8000\"}\n", "media.ports"},
		{"sip: 127.0.0.1:0\nmedia: {bind: nowhere, ports: \"9000-9100\"}\n", "media.bind"},
		{"sip: 127.0.0.1:0\nimpair: {loss_pct: 3}\n", "impair"},
		{"sip: 127.0.0.1:0\nmedia: {bind: 127.0.0.1, ports: \"9000-9100\"}\nimpair: {loss_pct: 100}\n", "impair.loss_pct"},
		{"sip: 127.0.0.1:0\nmedia: {bind: 127.0.0.1, ports: \"9000-9100\"}\nimpair: {loss_pct: 1, burst: 0.5}\n", "impair.burst"},
		{"sip: 127.0.0.1:0\nmedia: {bind: 127.0.0.1, ports: \"9000-9100\"}\nimpair: {delay_ms: -5}\n", "impair.delay_ms"},
		{"sip: 127.0.0.1:0\nfailure: {error_rate: 1.5}\n", "failure.error_rate"},
		{"sip: 127.0.0.1:0\nfailure: {error_code: 486}\n", "failure.error_code"},
		{"sip: 127.0.0.1:0\nfailure: {slow_delay_ms: -1}\n", "failure.slow_delay_ms"},
		{"sip: 0.0.0.0:5060\n", "advertise"},
		{"sip: 127.0.0.1:0\nring_ms: -1\n", "ring_ms"},
		{string(good) + "extra: true\n", `unknown field "extra"`},
	} {
		_, err := ParseProviderConfig([]byte(tc.yaml))
		if err == nil || !errors.Is(err, ErrProviderConfig) || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%q: error %v, want one naming %s", tc.yaml, err, tc.field)
		}
	}
	if _, err := StartProvider(ProviderConfig{SIP: "127.0.0.1:0", MaxCalls: -1}, nil); !errors.Is(err, ErrProviderConfig) {
		t.Errorf("StartProvider with a bad config: %v", err)
	}
}

// TestULaw checks the μ-law encoder against G.711's code points.
func TestULaw(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   int16
		want byte
	}{{0, 0xff}, {-1, 0x7f}, {32767, 0x80}, {-32768, 0x00}, {1000, 0xce}, {-1000, 0x4e}} {
		if got := ulaw(tc.in); got != tc.want {
			t.Errorf("ulaw(%d) = %#x, want %#x", tc.in, got, tc.want)
		}
	}
	if len(tonePayload) != 160 || bytes.Count(tonePayload, []byte{0xff}) == 160 {
		t.Error("tone payload is not a 20 ms tone")
	}
}

// TestSplitValues checks the splitting of header values at commas.
func TestSplitValues(t *testing.T) {
	t.Parallel()
	got := splitValues(`<sip:a;lr>, "x, y" <sip:b;lr>,<sip:c?h=1,2>`)
	want := []string{`<sip:a;lr>`, `"x, y" <sip:b;lr>`, `<sip:c?h=1,2>`}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}
