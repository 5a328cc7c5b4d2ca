package itest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/b2bua"
	"github.com/callmesh/callmesh/node/digest"
)

// oneNode starts a single node, tuned by edit, with users alice and bob.
func oneNode(t *testing.T, edit func(cfg *node.Config)) *node.Node {
	t.Helper()
	c := StartCluster(t, 1, Options{Logger: DebugLogger(), Configure: func(_ int, cfg *node.Config) {
		if edit != nil {
			edit(cfg)
		}
	}})
	n := c.Node(0)
	addUser(t, n, "alice", "a-secret")
	addUser(t, n, "bob", "b-secret")
	return n
}

// failure is the final status of a call that was not answered.
func failure(t *testing.T, err error) *sip.Response {
	t.Helper()
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) {
		t.Fatalf("call error %v, want a final failure response", err)
	}
	return de.Res
}

// expectRelayed wires both phones' RTP to the addresses their SDP names
// and checks that packets cross.
func expectRelayed(t *testing.T, ctx context.Context, caller, callee *phone, d *sipgo.DialogClientSession) {
	t.Helper()
	toRelay := mediaPeer(t, d.InviteResponse.Body())
	caller.rtp.SetPeer(toRelay, netipPlus(toRelay, 1))
	in := callee.dialog(-1).InviteRequest
	fromRelay := mediaPeer(t, in.Body())
	callee.rtp.SetPeer(fromRelay, netipPlus(fromRelay, 1))
	before := callee.rtp.Stats().Packets
	if err := caller.rtp.Send(ctx, 10, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() bool { return callee.rtp.Stats().Packets >= before+10 }, "RTP did not cross the relay")
}

func TestCallThroughOneNode(t *testing.T) {
	n := oneNode(t, nil)
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := alice.mustCall(t, ctx, "bob")
	// Media is anchored: alice is told to send to the relay, not to bob.
	if mediaPeer(t, d.InviteResponse.Body()) == bob.rtp.Addr() {
		t.Fatal("the answer names bob's RTP address: media not anchored")
	}
	toBob := mediaPeer(t, bob.dialog(0).InviteRequest.Body())
	bob.rtp.SetPeer(toBob, netipPlus(toBob, 1))
	if err := bob.rtp.Send(ctx, 10, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	expectRelayed(t, ctx, alice, bob, d)
	Eventually(t, 10*time.Second, func() bool { return alice.rtp.Stats().Packets == 10 }, "bob's RTP did not reach alice")
	calls := n.Calls().Calls()
	if len(calls) != 1 || calls[0].State != "confirmed" || !calls[0].Anchored || calls[0].Legs[0].Packets != 10 || calls[0].Legs[1].Packets != 10 {
		t.Fatalf("calls: %+v", calls)
	}
	if calls[0].Caller != "alice" || calls[0].Callee != "bob@"+n.Config().Domain || calls[0].Answered == nil {
		t.Fatalf("call description: %+v", calls[0])
	}
	// The same through the admin API and the CLI.
	stdout, stderr, code := cli(t, "calls", "--api", n.AdminURL(), "--json")
	var listed node.CallsResponse
	if code != 0 || json.Unmarshal([]byte(stdout), &listed) != nil || len(listed.Calls) != 1 {
		t.Fatalf("callmesh calls --json: exit %d, %q %q", code, stdout, stderr)
	}
	got := listed.Calls[0]
	if got.ID != calls[0].ID || got.State != "confirmed" || len(got.Legs) != 2 || got.Legs[0].Side != "caller" || got.Legs[1].Packets != 10 {
		t.Fatalf("callmesh calls --json: %+v", got)
	}
	if stdout, _, code := cli(t, "calls", "--api", n.AdminURL()); code != 0 || !strings.Contains(stdout, "alice") || !strings.Contains(stdout, "callee") {
		t.Fatalf("callmesh calls: exit %d, %q", code, stdout)
	}
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	Eventually(t, 10*time.Second, func() bool { return bob.byes.Load() == 1 && n.Calls().Len() == 0 }, "BYE did not reach bob")
	if got := n.Relay().Len(); got != 0 {
		t.Fatalf("%d media sessions left after the call", got)
	}
	callCounts(t, n, map[string]float64{"started": 1, "answered": 1, "failed": 0, "cancelled": 0})
}

// callCounts checks the node's callmesh_calls_NAME_total counters.
func callCounts(t *testing.T, n *node.Node, want map[string]float64) {
	t.Helper()
	for name, v := range want {
		if got := counter(t, n.Registry(), "callmesh_calls_"+name+"_total", nil); got != v {
			t.Errorf("callmesh_calls_%s_total %v, want %v", name, got, v)
		}
	}
}

func TestCallOutcomes(t *testing.T) {
	n := oneNode(t, func(cfg *node.Config) { cfg.Calls.RingTimeout = 1500 * time.Millisecond })
	addUser(t, n, "carol", "c-secret") // has an account, never registers
	_, err := n.Accounts().Add(accounts.Account{Name: "dave", Class: accounts.Bronze, Allow: []string{"external:+49"}, MaxCalls: 2,
		Home: n.ID().String(), Realm: n.Config().Domain, Credentials: digest.NewCredentials("dave", n.Config().Domain, "d-secret")})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")
	dave := newPhone(t, n, "dave", "d-secret")

	for _, tc := range []struct {
		name   string
		caller *phone
		callee string
		answer func(d *sipgo.DialogServerSession)
		code   int
	}{
		{"busy", alice, "bob", func(d *sipgo.DialogServerSession) { _ = d.Respond(486, "Busy Here", nil) }, 486},
		{"decline", alice, "bob", func(d *sipgo.DialogServerSession) { _ = d.Respond(603, "Decline", nil) }, 603},
		{"callee server error is not passed as 503", alice, "bob", func(d *sipgo.DialogServerSession) {
			_ = d.Respond(503, "Service Unavailable", nil, sip.NewHeader("Retry-After", "120"))
		}, 500},
		{"no answer", alice, "bob", func(d *sipgo.DialogServerSession) { _ = d.Respond(180, "Ringing", nil) }, 480},
		{"unknown user", alice, "nobody", nil, 404},
		{"not registered", alice, "carol", nil, 480},
		{"no right to call users", dave, "bob", nil, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.answer != nil {
				bob.setAnswer(tc.answer)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := tc.caller.call(ctx, tc.callee)
			res := failure(t, err)
			if res.StatusCode != tc.code {
				t.Fatalf("caller got %d %s, want %d", res.StatusCode, res.Reason, tc.code)
			}
			if res.GetHeader("Retry-After") != nil {
				t.Fatalf("%d leaks Retry-After %q", res.StatusCode, res.GetHeader("Retry-After").Value())
			}
			Eventually(t, 10*time.Second, func() bool { return n.Calls().Len() == 0 && n.Relay().Len() == 0 }, "call not cleaned up")
		})
	}
	// The four that rang bob were started and failed; the other three
	// were refused before any callee was tried.
	callCounts(t, n, map[string]float64{"started": 4, "failed": 4, "answered": 0, "cancelled": 0})
}

func TestCallCancelledBeforeAnswer(t *testing.T) {
	// From a trusted source, unchallenged: sipgo's client builds its CANCEL
	// from the first INVITE even after answering a 407 with a second one,
	// so the CANCEL would match nothing (481) on any server.
	n := oneNode(t, func(cfg *node.Config) { cfg.Calls.Trusted = []string{"127.0.0.1"} })
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")
	rang := make(chan *sipgo.DialogServerSession, 1)
	bob.setAnswer(func(d *sipgo.DialogServerSession) { _ = d.Respond(180, "Ringing", nil); rang <- d })
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	heard := make(chan struct{}, 4)
	go func() {
		_, err := alice.callWith(ctx, "bob", func(res *sip.Response) {
			if res.StatusCode == 180 {
				heard <- struct{}{}
			}
		})
		errc <- err
	}()
	var ringing *sipgo.DialogServerSession
	select {
	case ringing = <-rang:
	case <-time.After(10 * time.Second):
		t.Fatal("bob never rang")
	}
	select { // alice heard the 180, so her CANCEL is allowed (RFC 3261 §9.1)
	case <-heard:
	case <-time.After(10 * time.Second):
		t.Fatal("alice never heard the 180")
	}
	cancel() // sipgo sends CANCEL when the context of WaitAnswer ends
	if err := <-errc; err == nil {
		t.Fatal("cancelled call answered")
	}
	// Bob's INVITE transaction is cancelled: the node sent him CANCEL.
	select {
	case <-ringing.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("bob's ringing INVITE was never cancelled")
	}
	Eventually(t, 10*time.Second, func() bool { return n.Calls().Len() == 0 }, "call not cleaned up")
	callCounts(t, n, map[string]float64{"started": 1, "cancelled": 1, "failed": 0, "answered": 0})
}

// callConfirmed starts a node with users alice and bob, has alice call
// bob and waits until the call is confirmed; ctx bounds the test's SIP
// requests.
func callConfirmed(t *testing.T) (n *node.Node, alice, bob *phone, ctx context.Context) {
	t.Helper()
	n = oneNode(t, nil)
	alice, bob = newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	if _, err := alice.call(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 5*time.Second, func() bool { return n.Calls().Len() == 1 && n.Calls().Calls()[0].State == "confirmed" }, "call not confirmed")
	return n, alice, bob, ctx
}

func TestCalleeHangsUp(t *testing.T) {
	n, alice, bob, ctx := callConfirmed(t)
	d := bob.dialog(0)
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("bob's BYE: %v", err)
	}
	Eventually(t, 10*time.Second, func() bool { return alice.byes.Load() == 1 && n.Calls().Len() == 0 }, "alice was not told")
	noStrayByes(t, alice)
}

// TestStray2xxAckedAfterTheCallEnded: a callee whose first ACK was lost
// retransmits its 2xx until one comes, even after the call has ended; the
// node still ACKs it (RFC 3261 §13.2.2.4), building the ACK from the 2xx
// alone and sending it back where the 2xx came from. A stray 486 and a
// stray 2xx to a BYE get nothing.
func TestStray2xxAckedAfterTheCallEnded(t *testing.T) {
	n, _, bob, ctx := callConfirmed(t)
	d := bob.dialog(0)
	inv, ok := d.InviteRequest, d.InviteResponse
	if err := d.Bye(ctx); err != nil {
		t.Fatalf("bob's BYE: %v", err)
	}
	Eventually(t, 10*time.Second, func() bool { return n.Calls().Len() == 0 }, "the call did not end")

	// The retransmissions come from a socket of the test's: the ACK must
	// come back to it, not to the Contact the 2xx names (bob's).
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	node, err := net.ResolveUDPAddr("udp", n.SIPAddr())
	if err != nil {
		t.Fatal(err)
	}
	busy := sip.NewResponseFromRequest(inv, sip.StatusBusyHere, "Busy Here", nil)
	byeOK := ok.Clone()
	byeOK.CSeq().SeqNo++
	byeOK.CSeq().MethodName = sip.BYE
	for _, m := range []sip.Message{busy, byeOK, ok} {
		if _, err := conn.WriteTo([]byte(m.String()), node); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 65535)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	nr, _, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no ACK of the stray 2xx: %v", err)
	}
	msg, err := sip.ParseMessage(buf[:nr])
	if err != nil {
		t.Fatalf("unparsable answer to the stray 2xx: %v\n%s", err, buf[:nr])
	}
	ack, isReq := msg.(*sip.Request)
	if !isReq || !ack.IsAck() {
		t.Fatalf("the first answer to the strays is not an ACK:\n%s", buf[:nr])
	}
	tag := func(p sip.HeaderParams) string { v, _ := p.Get("tag"); return v }
	branch := func(v *sip.ViaHeader) string { b, _ := v.Params.Get("branch"); return b }
	okTo, ackTo := ok.To(), ack.To()
	switch {
	case ack.Recipient.String() != ok.Contact().Address.String():
		t.Errorf("ACK Request-URI %s, want the 2xx's Contact %s", ack.Recipient.String(), ok.Contact().Address.String())
	case ack.CallID().Value() != ok.CallID().Value():
		t.Errorf("ACK Call-ID %q, want %q", ack.CallID().Value(), ok.CallID().Value())
	case ack.CSeq().SeqNo != inv.CSeq().SeqNo || ack.CSeq().MethodName != sip.ACK:
		t.Errorf("ACK CSeq %q, want %d ACK", ack.CSeq().Value(), inv.CSeq().SeqNo)
	case tag(ackTo.Params) != tag(okTo.Params):
		t.Errorf("ACK To %q, want bob's tag of %q", ackTo.Value(), okTo.Value())
	case tag(ack.From().Params) != tag(ok.From().Params):
		t.Errorf("ACK From %q, want the node's tag of %q", ack.From().Value(), ok.From().Value())
	case ack.Via() == nil || branch(ack.Via()) == "" || branch(ack.Via()) == branch(inv.Via()):
		t.Errorf("ACK Via %v: want the node's, with a branch of its own (a 2xx's ACK is a transaction of its own, §17.1.1.3)", ack.Via())
	}
	Eventually(t, 5*time.Second, func() bool { return counter(t, n.Registry(), "callmesh_calls_stray_2xx_acked_total", nil) == 1 },
		"callmesh_calls_stray_2xx_acked_total did not count the ACK")
	// Nothing else comes: the 486 and the 2xx to a BYE are not ACKed
	// (a second looked for, for a second).
	_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	if nr, _, err := conn.ReadFrom(buf); err == nil {
		t.Errorf("a second answer to the strays:\n%s", buf[:nr])
	}
}

// noStrayByes fails the test if a phone answered a BYE of the node's 481:
// each must name the dialog the phone's call set up, the phone's own tag
// and the one in the 200 it was answered with (RFC 3261 §12.2.1.1).
func noStrayByes(t *testing.T, phones ...*phone) {
	t.Helper()
	for _, p := range phones {
		if n := p.strays.Load(); n != 0 {
			t.Errorf("%s answered %d of the node's BYEs 481: not in any dialog of its own", p.user, n)
		}
	}
}

func TestForkedCallFirstAnswerWins(t *testing.T) {
	n := oneNode(t, nil)
	alice := newPhone(t, n, "alice", "a-secret")
	desk, mobile := newPhone(t, n, "bob", "b-secret"), newPhone(t, n, "bob", "b-secret")
	rang := make(chan *sipgo.DialogServerSession, 1)
	mobile.setAnswer(func(d *sipgo.DialogServerSession) { _ = d.Respond(180, "Ringing", nil); rang <- d })
	answerWhen(desk, true, func() { // once the mobile rings too
		select {
		case r := <-rang:
			rang <- r
		case <-time.After(5 * time.Second):
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := alice.mustCall(t, ctx, "bob")
	ringing := <-rang
	select {
	case <-ringing.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the losing branch was not cancelled")
	}
	expectRelayed(t, ctx, alice, desk, d)
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() bool { return desk.byes.Load() == 1 && n.Calls().Len() == 0 }, "BYE did not reach the answering phone")
	if mobile.byes.Load() != 0 {
		t.Fatal("the cancelled phone got a BYE")
	}
}

// answerWhen makes p answer an INVITE with 200 and its SDP once wait
// returns, first ringing if ring.
func answerWhen(p *phone, ring bool, wait func()) {
	p.setAnswer(func(d *sipgo.DialogServerSession) {
		if ring {
			_ = d.Respond(180, "Ringing", nil)
		}
		wait()
		_ = d.Respond(200, "OK", p.sdp("sendrecv"), sip.NewHeader("Content-Type", "application/sdp"))
	})
}

// A branch that has said nothing when another answers can only be
// CANCELled once it sends a provisional (RFC 3261 §9.1): the node waits
// for it, then cancels, and the answered call goes on.
func TestForkedCallSilentBranchCancelledWhenItRings(t *testing.T) {
	n := oneNode(t, nil)
	alice := newPhone(t, n, "alice", "a-secret")
	desk, mobile := newPhone(t, n, "bob", "b-secret"), newPhone(t, n, "bob", "b-secret")
	invited := make(chan struct{})
	answered := make(chan struct{})
	cancelled := make(chan struct{})
	mobile.setAnswer(func(d *sipgo.DialogServerSession) {
		close(invited)
		<-answered // silent until the desk's answer reached alice
		_ = d.Respond(180, "Ringing", nil)
		select {
		case <-d.Context().Done():
			close(cancelled)
		case <-time.After(10 * time.Second):
		}
	})
	answerWhen(desk, false, func() { // once both branches exist
		select {
		case <-invited:
		case <-time.After(5 * time.Second):
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := alice.mustCall(t, ctx, "bob")
	close(answered)
	select {
	case <-cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the silent branch was not cancelled after its 180")
	}
	// The call is still served: its state can be read, and it ends. Alice's
	// ACK may be read after the mobile's 180 (another of the node's
	// readers), so the call is confirmed soon rather than at once.
	listed := make(chan []b2bua.Info, 1)
	go func() { listed <- n.Calls().Calls() }()
	select {
	case calls := <-listed:
		if len(calls) != 1 {
			t.Fatalf("calls %+v, want one", calls)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call's state cannot be read: its lock is held")
	}
	Eventually(t, 10*time.Second, func() bool {
		calls := n.Calls().Calls()
		return len(calls) == 1 && calls[0].State == "confirmed"
	}, "the call was not confirmed by alice's ACK")
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() bool { return desk.byes.Load() == 1 && n.Calls().Len() == 0 }, "BYE did not reach the answering phone")
}

func TestHoldSurvivesMediaTimeoutAndDeadMediaEndsTheCall(t *testing.T) {
	n := oneNode(t, func(cfg *node.Config) { cfg.Media.Timeout = time.Second })
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := alice.mustCall(t, ctx, "bob")
	// Hold: a re-INVITE with sendonly, answered recvonly by bob's phone.
	reinvite := func(dir string) {
		t.Helper()
		req := sip.NewRequest(sip.INVITE, d.InviteResponse.Contact().Address)
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(alice.sdp(dir))
		res, err := d.Do(ctx, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("re-INVITE %s: %v %v", dir, res, err)
		}
		if !strings.Contains(string(res.Body()), "a=recvonly") && dir == "sendonly" {
			t.Fatalf("hold answered with %q", res.Body())
		}
		ack := sip.NewRequest(sip.ACK, d.InviteResponse.Contact().Address)
		if err := d.WriteRequest(ack); err != nil {
			t.Fatal(err)
		}
	}
	reinvite("sendonly")
	if bob.received(sip.INVITE) != 2 {
		t.Fatalf("bob saw %d INVITEs, want the call and the hold", bob.received(sip.INVITE))
	}
	// On hold, silence is never death, however long (the relay's rule,
	// asked at a time far ahead rather than waited for).
	id := n.Calls().Calls()[0].ID
	if side, _, dead := n.Relay().Session(id).Dead(time.Now().Add(100 * time.Second)); dead {
		t.Fatalf("a held call's %s side counts as dead", side)
	}
	if n.Calls().Len() != 1 || alice.byes.Load() != 0 {
		t.Fatal("a held call was ended for silence")
	}
	reinvite("sendrecv")
	if _, _, dead := n.Relay().Session(id).Dead(time.Now().Add(100 * time.Second)); !dead {
		t.Fatal("a resumed, silent call would never be ended")
	}
	// Resumed and silent: the relay ends it, both sides hear BYE with a Reason.
	Eventually(t, 15*time.Second, func() bool { return alice.byes.Load() == 1 && bob.byes.Load() == 1 }, "dead media did not end the call")
	noStrayByes(t, alice, bob)
	for _, p := range []*phone{alice, bob} {
		p.mu.Lock()
		var bye *sip.Request
		for _, r := range p.reqs {
			if r.Method == sip.BYE {
				bye = r
			}
		}
		p.mu.Unlock()
		if h := bye.GetHeader("Reason"); h == nil || !strings.Contains(h.Value(), "Media timeout") {
			t.Errorf("%s's BYE has Reason %v", p.user, h)
		}
	}
	Eventually(t, 10*time.Second, func() bool { return n.Calls().Len() == 0 }, "call not cleaned up")
}

func TestAnchorNeverLeavesSDPUntouched(t *testing.T) {
	n := oneNode(t, func(cfg *node.Config) { cfg.Media.Anchor = "never" })
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	d := alice.mustCall(t, ctx, "bob")
	if got := string(bob.dialog(0).InviteRequest.Body()); got != string(alice.sdp("sendrecv")) {
		t.Fatalf("bob got SDP %q, want alice's untouched", got)
	}
	if mediaPeer(t, d.InviteResponse.Body()) != bob.rtp.Addr() {
		t.Fatal("alice was not given bob's own RTP address")
	}
	if n.Relay().Len() != 0 {
		t.Fatal("media anchored although anchor is never")
	}
	_ = d.Bye(ctx)
}

func TestCallLimitsDrainAndTrustedSources(t *testing.T) {
	n := oneNode(t, func(cfg *node.Config) { cfg.Calls.DrainGrace = 500 * time.Millisecond })
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// alice may have two calls at once (max_calls 2); the third is refused.
	for i := 0; i < 2; i++ {
		if _, err := alice.call(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := alice.call(ctx, "bob")
	if res := failure(t, err); res.StatusCode != 403 || !strings.Contains(res.Reason, "max_calls") {
		t.Fatalf("third call: %d %s, want 403 naming max_calls", res.StatusCode, res.Reason)
	}
	// Draining: new calls get 503 with Retry-After; current ones are ended
	// after the grace period.
	drained := make(chan struct{})
	go func() { n.Drain(ctx); close(drained) }()
	Eventually(t, 5*time.Second, n.Calls().Draining, "not draining")
	_, err = alice.call(ctx, "bob")
	if res := failure(t, err); res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("call while draining: %d %s, want 503 with Retry-After", res.StatusCode, res.Reason)
	}
	select {
	case <-drained:
	case <-time.After(15 * time.Second):
		t.Fatal("drain did not end the calls")
	}
	Eventually(t, 10*time.Second, func() bool { return alice.byes.Load() == 2 && bob.byes.Load() == 2 }, "calls not ended with BYE")
	noStrayByes(t, alice, bob)
}

// TestReliableProvisionalsAndInDialogRequests: a caller that requires
// reliable provisionals (RFC 3262) gets the callee's 183 with its RSeq and
// PRACKs it through the node, whose RAck then names the callee side's
// INVITE; INFO and UPDATE within the call reach the other side.
func TestReliableProvisionalsAndInDialogRequests(t *testing.T) {
	n := oneNode(t, func(cfg *node.Config) { cfg.Calls.Trusted = []string{"127.0.0.1"} })
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")
	bob.setAnswer(func(d *sipgo.DialogServerSession) {
		if req := d.InviteRequest; req.GetHeader("Require") == nil || !strings.Contains(req.GetHeader("Require").Value(), "100rel") {
			_ = d.Respond(420, "Bad Extension (100rel expected)", nil)
			return
		}
		_ = d.Respond(183, "Session Progress", bob.sdp("sendrecv"),
			sip.NewHeader("Content-Type", "application/sdp"), sip.NewHeader("Require", "100rel"), sip.NewHeader("RSeq", "1"))
		Eventually(t, 10*time.Second, func() bool { return bob.received(sip.PRACK) == 1 }, "no PRACK reached bob")
		_ = d.Respond(200, "OK", bob.sdp("sendrecv"), sip.NewHeader("Content-Type", "application/sdp"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	host, port, _ := strings.Cut(n.SIPAddr(), ":")
	pn := 0
	fmt.Sscan(port, &pn)
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: host, Port: pn})
	req.SetDestination(n.SIPAddr())
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: n.Config().Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: n.Config().Domain}})
	req.AppendHeader(sip.NewHeader("Require", "100rel"))
	req.AppendHeader(sip.NewHeader("Supported", "100rel"))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(alice.sdp("sendrecv"))
	d, err := alice.out.WriteInvite(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	pracked := make(chan int, 1)
	err = d.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.StatusCode != 183 || res.GetHeader("RSeq") == nil {
			return nil
		}
		// PRACK within the early dialog (RFC 3262 §7.2): RAck names the
		// RSeq and the INVITE's CSeq.
		prack := sip.NewRequest(sip.PRACK, res.Contact().Address)
		prack.SetDestination(n.SIPAddr())
		prack.AppendHeader(sip.HeaderClone(req.From()))
		prack.AppendHeader(sip.HeaderClone(res.To()))
		prack.AppendHeader(sip.HeaderClone(req.CallID()))
		prack.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo + 1, MethodName: sip.PRACK})
		prack.AppendHeader(sip.NewHeader("RAck", fmt.Sprintf("%s %d INVITE", res.GetHeader("RSeq").Value(), req.CSeq().SeqNo)))
		go func() {
			r, err := alice.client.Do(ctx, prack)
			if err != nil {
				pracked <- 0
				return
			}
			pracked <- r.StatusCode
		}()
		return nil
	}})
	if err != nil {
		t.Fatalf("call: %v", err)
	}
	if code := <-pracked; code != 200 {
		t.Fatalf("PRACK answered %d", code)
	}
	if err := d.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	var prack *sip.Request
	bob.mu.Lock()
	for _, r := range bob.reqs {
		if r.Method == sip.PRACK {
			prack = r
		}
	}
	bob.mu.Unlock()
	want := fmt.Sprintf("1 %d INVITE", bob.dialog(0).InviteRequest.CSeq().SeqNo)
	if got := prack.GetHeader("RAck").Value(); got != want {
		t.Fatalf("bob's PRACK has RAck %q, want %q (his INVITE's CSeq)", got, want)
	}
	// In-dialog INFO (DTMF as SIP INFO) and UPDATE pass through.
	for _, m := range []sip.RequestMethod{sip.INFO, sip.UPDATE} {
		r := sip.NewRequest(m, d.InviteResponse.Contact().Address)
		if m == sip.UPDATE {
			r.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			r.SetBody(alice.sdp("sendrecv"))
		}
		res, err := d.Do(ctx, r)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", m, res, err)
		}
		if bob.received(m) != 1 {
			t.Fatalf("bob received %d %s", bob.received(m), m)
		}
	}
	if err := d.Bye(ctx); err != nil {
		t.Fatal(err)
	}
	Eventually(t, 10*time.Second, func() bool { return n.Calls().Len() == 0 }, "call not cleaned up")
}

// TestSessionTimerEndsAnUnrefreshedCall: when the endpoints agree a session
// interval (RFC 4028) and nobody refreshes, the node ends the call with BYE
// on both sides; refreshes (re-INVITE) keep it up.
func TestSessionTimerEndsAnUnrefreshedCall(t *testing.T) {
	n := oneNode(t, func(cfg *node.Config) { cfg.Calls.Trusted = []string{"127.0.0.1"} })
	alice, bob := newPhone(t, n, "alice", "a-secret"), newPhone(t, n, "bob", "b-secret")
	bob.setAnswer(func(d *sipgo.DialogServerSession) {
		_ = d.Respond(200, "OK", bob.sdp("sendrecv"), sip.NewHeader("Content-Type", "application/sdp"),
			sip.NewHeader("Session-Expires", "2;refresher=uac"), sip.NewHeader("Require", "timer"))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := alice.mustCall(t, ctx, "bob")
	if se := d.InviteResponse.GetHeader("Session-Expires"); se == nil || !strings.HasPrefix(se.Value(), "2") {
		t.Fatalf("the caller was not given the session interval: %v", se)
	}
	// Three refreshes, one a second: the call stays up past its interval.
	for i := 0; i < 3; i++ {
		time.Sleep(time.Second)
		r := sip.NewRequest(sip.INVITE, d.InviteResponse.Contact().Address)
		r.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		r.AppendHeader(sip.NewHeader("Session-Expires", "2;refresher=uac"))
		r.SetBody(alice.sdp("sendrecv"))
		res, err := d.Do(ctx, r)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("refresh %d: %v %v", i, res, err)
		}
		if err := d.WriteRequest(sip.NewRequest(sip.ACK, d.InviteResponse.Contact().Address)); err != nil {
			t.Fatal(err)
		}
	}
	if n.Calls().Len() != 1 || alice.byes.Load() != 0 {
		t.Fatal("a refreshed call was ended")
	}
	// No more refreshes: ended within a few intervals, with a Reason.
	Eventually(t, 15*time.Second, func() bool { return alice.byes.Load() == 1 && bob.byes.Load() == 1 }, "unrefreshed call not ended")
	noStrayByes(t, alice, bob)
	Eventually(t, 10*time.Second, func() bool { return n.Calls().Len() == 0 }, "call not cleaned up")
}
