package siptx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"
)

// Timers shortened for the tests; the tests assert what is sent and in
// which order, never when: every wait below is a generous upper bound.
var testConfig = Config{T1: 20 * time.Millisecond, T2: 80 * time.Millisecond, T4: 100 * time.Millisecond,
	Wait: 300 * time.Millisecond, Trying: 30 * time.Millisecond, Tick: 2 * time.Millisecond}

const within = 5 * time.Second

// stack is a layer on sipgo's transport layer, serving UDP and TCP on
// 127.0.0.1.
type stack struct {
	l    *Layer
	tpl  *sip.TransportLayer
	udp  net.PacketConn
	tcp  net.Listener
	wg   sync.WaitGroup
	addr string // UDP listener
}

func newStack(t testing.TB, h Handler) *stack {
	t.Helper()
	return newStackConfig(t, testConfig, h)
}

func newStackConfig(t testing.TB, cfg Config, h Handler) *stack {
	t.Helper()
	tpl := sip.NewTransportLayer(net.DefaultResolver, sip.NewParser(), nil)
	s := &stack{tpl: tpl, l: New(tpl, cfg)}
	if h != nil {
		s.l.OnRequest(h)
	}
	var err error
	if s.udp, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if s.tcp, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	s.addr = s.udp.LocalAddr().String()
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = tpl.ServeUDP(s.udp) }()
	go func() { defer s.wg.Done(); _ = tpl.ServeTCP(s.tcp) }()
	// Requests over UDP leave from the listener once it is serving.
	waitFor(t, func() bool {
		c, err := tpl.GetConnection("udp", s.addr)
		if err != nil {
			return false
		}
		_, _ = c.TryClose()
		return true
	}, "UDP listener serving")
	t.Cleanup(func() {
		s.udp.Close()
		s.tcp.Close()
		tpl.Close()
		s.wg.Wait()
		s.l.Close()
	})
	return s
}

// peer is a raw UDP endpoint that writes and reads SIP text.
type peer struct {
	t    *testing.T
	conn net.PacketConn
	in   chan string
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{t: t, conn: c, in: make(chan string, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			p.in <- string(buf[:n])
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return p
}

func (p *peer) addr() string { return p.conn.LocalAddr().String() }

func (p *peer) send(to, msg string) {
	p.t.Helper()
	ua, err := net.ResolveUDPAddr("udp4", to)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteTo([]byte(msg), ua); err != nil {
		p.t.Fatal(err)
	}
}

// next returns the next message whose start line begins with prefix,
// skipping others; it fails the test after a generous wait.
func (p *peer) next(prefix string) string {
	p.t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m := <-p.in:
			if strings.HasPrefix(m, prefix) {
				return m
			}
		case <-deadline:
			p.t.Fatalf("no %q within %v", prefix, within)
			return ""
		}
	}
}

// quiet counts what arrives in d (a stated tolerance: nothing is expected).
func (p *peer) quiet(d time.Duration) []string {
	var got []string
	deadline := time.After(d)
	for {
		select {
		case m := <-p.in:
			got = append(got, firstLine(m))
		case <-deadline:
			return got
		}
	}
}

func firstLine(m string) string { l, _, _ := strings.Cut(m, "\r\n"); return l }

func header(m, name string) string {
	for _, l := range strings.Split(m, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// request is a request from the peer with the given branch.
func request(method, branch, from string, cseq int) string {
	return fmt.Sprintf("%s sip:bob@127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=%s\r\n"+
		"From: <sip:alice@example.org>;tag=a1\r\n"+
		"To: <sip:bob@example.org>\r\n"+
		"Call-ID: call-%s\r\n"+
		"CSeq: %d %s\r\n"+
		"Contact: <sip:alice@%s>\r\n"+
		"Max-Forwards: 70\r\n"+
		"Content-Length: 0\r\n\r\n", method, from, branch, branch, cseq, method, from)
}

// ackFor is the peer's ACK of a 3xx–6xx: same branch, the response's To.
func ackOf(inv, res string, from string) string {
	m := strings.Replace(inv, "INVITE sip:", "ACK sip:", 1)
	m = strings.Replace(m, " INVITE\r\n", " ACK\r\n", 1)
	return strings.Replace(m, "To: <sip:bob@example.org>\r\n", "To: "+header(res, "To")+"\r\n", 1)
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// An INVITE answered 180 then 486 over UDP: a retransmitted INVITE gets the
// 180 again without reaching the TU twice; the 486 is retransmitted (Timer
// G) until the ACK, and not after it.
func TestServerInviteRejected(t *testing.T) {
	var calls atomic.Int32
	answer := make(chan sip.ServerTransaction, 1)
	s := newStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		calls.Add(1)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
		answer <- tx
		<-tx.Done()
	})
	p := newPeer(t)
	inv := request("INVITE", "z9hG4bK-inv1", p.addr(), 1)
	p.send(s.addr, inv)
	p.next("SIP/2.0 180")
	tx := <-answer
	p.send(s.addr, inv) // retransmission
	p.next("SIP/2.0 180")

	res := sip.NewResponseFromRequest(tx.(*serverTx).origin, 486, "Busy Here", nil)
	if err := tx.Respond(res); err != nil {
		t.Fatal(err)
	}
	first := p.next("SIP/2.0 486")
	p.next("SIP/2.0 486") // Timer G: again without an ACK
	p.send(s.addr, ackOf(inv, first, p.addr()))
	// A 486 may have crossed the ACK; after that, nothing.
	time.Sleep(2 * testConfig.T2)
	if got := p.quiet(4 * testConfig.T2); len(got) != 0 { // Timer G would send at least twice
		t.Errorf("sent after the ACK: %v", got)
	}
	select {
	case <-tx.Done():
	case <-time.After(within):
		t.Fatal("transaction not ended after its ACK (Timer I)")
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler ran %d times, want 1 (the retransmission is the transaction's)", n)
	}
	// A transaction that has its final response keeps no request.
	if st := tx.(*serverTx); st.origin != nil {
		t.Error("the request is kept after the final response")
	}
	if s.l.Stats().Retransmissions() != 1 {
		t.Errorf("retransmissions absorbed: %d, want 1", s.l.Stats().Retransmissions())
	}
}

// A TU that does not answer an INVITE in time gets a 100 Trying sent for
// it (§17.2.1).
func TestServerInviteTrying(t *testing.T) {
	release := make(chan struct{})
	s := newStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		<-release
		_ = tx.Respond(sip.NewResponseFromRequest(req, 603, "Decline", nil))
	})
	p := newPeer(t)
	p.send(s.addr, request("INVITE", "z9hG4bK-try1", p.addr(), 1))
	p.next("SIP/2.0 100")
	close(release)
	p.next("SIP/2.0 603")
}

// A CANCEL of a ringing INVITE: 200 to the CANCEL, 487 to the INVITE with
// the 180's To tag, the TU told, and Err says cancelled. The TU then does
// what a B2BUA does, answers 487 itself and returns: its answer is
// refused, and the layer's 487 stands and is retransmitted until the ACK.
func TestServerCancel(t *testing.T) {
	cancelled := make(chan *sip.Request, 1)
	txc := make(chan sip.ServerTransaction, 1)
	tuAnswer := make(chan error, 1)
	s := newStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		if req.IsInvite() {
			tx.OnCancel(func(r *sip.Request) { cancelled <- r })
			_ = tx.Respond(sip.NewResponseFromRequest(req, 180, "Ringing", nil))
			txc <- tx
			r := <-cancelled
			cancelled <- r
			tuAnswer <- tx.Respond(sip.NewResponseFromRequest(req, 487, "Request Terminated", nil))
			return
		}
		t.Errorf("the TU got a %s", req.Method)
	})
	p := newPeer(t)
	inv := request("INVITE", "z9hG4bK-can1", p.addr(), 7)
	p.send(s.addr, inv)
	ringing := p.next("SIP/2.0 180")
	tx := <-txc
	cancel := strings.Replace(strings.Replace(inv, "INVITE sip:", "CANCEL sip:", 1), " INVITE\r\n", " CANCEL\r\n", 1)
	p.send(s.addr, cancel)
	ok := p.next("SIP/2.0 200")
	if !strings.Contains(header(ok, "CSeq"), "CANCEL") {
		t.Errorf("200 for %q, want the CANCEL", header(ok, "CSeq"))
	}
	terminated := p.next("SIP/2.0 487")
	if header(terminated, "To") != header(ringing, "To") {
		t.Errorf("487 To %q, want the 180's %q", header(terminated, "To"), header(ringing, "To"))
	}
	select {
	case err := <-tuAnswer:
		if !errors.Is(err, sip.ErrTransactionCanceled) {
			t.Errorf("the TU's own 487: %v, want ErrTransactionCanceled", err)
		}
	case <-time.After(within):
		t.Fatal("OnCancel not called")
	}
	if !errors.Is(tx.Err(), sip.ErrTransactionCanceled) {
		t.Errorf("Err = %v, want cancelled", tx.Err())
	}
	if tx.OnCancel(func(*sip.Request) {}) {
		t.Error("OnCancel accepted after the CANCEL")
	}
	p.next("SIP/2.0 487") // Timer G: the handler's return did not end it
	p.send(s.addr, ackOf(inv, terminated, p.addr()))
	select {
	case <-tx.Done():
	case <-time.After(within):
		t.Fatal("cancelled INVITE never ended")
	}
}

// A CANCEL that matches nothing reaches the TU (which answers 481).
func TestServerCancelUnknown(t *testing.T) {
	got := make(chan sip.RequestMethod, 1)
	s := newStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		got <- req.Method
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	p := newPeer(t)
	p.send(s.addr, request("CANCEL", "z9hG4bK-none", p.addr(), 1))
	select {
	case m := <-got:
		if m != sip.CANCEL {
			t.Errorf("TU got %s", m)
		}
	case <-time.After(within):
		t.Fatal("CANCEL not given to the TU")
	}
	p.next("SIP/2.0 481")
}

// A non-INVITE: the final response is repeated for a retransmission, from
// the transaction; a handler that returns without answering ends its
// transaction, so the next retransmission is new to the TU.
func TestServerNonInvite(t *testing.T) {
	var options, infos atomic.Int32
	s := newStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		switch req.Method {
		case sip.OPTIONS:
			options.Add(1)
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		case sip.INFO:
			infos.Add(1) // no answer
		}
	})
	p := newPeer(t)
	opt := request("OPTIONS", "z9hG4bK-opt1", p.addr(), 1)
	p.send(s.addr, opt)
	first := p.next("SIP/2.0 200")
	// Completed, the transaction keeps the response as it went out, not
	// the parsed message.
	s.l.mu.Lock()
	tx := s.l.servers[keyOf(t, opt)]
	s.l.mu.Unlock()
	if tx == nil {
		t.Fatal("no transaction kept after the final response")
	}
	tx.mu.Lock()
	last, final := tx.last, tx.final
	tx.mu.Unlock()
	if last != nil || string(final.b) != first {
		t.Fatalf("completed transaction keeps the message %v and bytes %q, want only the bytes sent %q", last != nil, final.b, first)
	}
	p.send(s.addr, opt)
	if again := p.next("SIP/2.0 200"); again != first {
		t.Fatalf("retransmitted response\n%q\nwant the first\n%q", again, first)
	}
	if n := options.Load(); n != 1 {
		t.Errorf("OPTIONS handled %d times, want 1", n)
	}

	info := request("INFO", "z9hG4bK-info1", p.addr(), 2)
	p.send(s.addr, info)
	waitFor(t, func() bool { return infos.Load() == 1 }, "first INFO")
	key := keyOf(t, info)
	waitFor(t, func() bool {
		s.l.mu.Lock()
		defer s.l.mu.Unlock()
		return s.l.servers[key] == nil
	}, "unanswered INFO's transaction to end")
	p.send(s.addr, info)
	waitFor(t, func() bool { return infos.Load() == 2 }, "INFO again as a new request")
}

// A request Config.Inline picks is handled on the reader that read it:
// while its handler runs, the next datagram waits; any other request's
// handler runs beside the reader.
func TestServerInline(t *testing.T) {
	cfg := testConfig
	cfg.Inline = func(req *sip.Request) bool { return req.Method == sip.BYE }
	holdInfo, holdBye := make(chan struct{}), make(chan struct{})
	var once [2]sync.Once
	free := func(i int, c chan struct{}) { once[i].Do(func() { close(c) }) }
	var options atomic.Int32
	s := newStackConfig(t, cfg, func(req *sip.Request, tx sip.ServerTransaction) {
		switch req.Method {
		case sip.INFO:
			<-holdInfo
		case sip.BYE:
			<-holdBye
		case sip.OPTIONS:
			options.Add(1)
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	// Registered after the stack's: runs first, so a failed test does not
	// leave a handler holding the layer's Close.
	t.Cleanup(func() { free(0, holdInfo); free(1, holdBye) })
	p := newPeer(t)

	// Not inline: the OPTIONS behind a held INFO is answered at once.
	p.send(s.addr, request("INFO", "z9hG4bK-in1", p.addr(), 1))
	p.send(s.addr, request("OPTIONS", "z9hG4bK-in2", p.addr(), 2))
	if m := p.next("SIP/2.0 200"); header(m, "CSeq") != "2 OPTIONS" {
		t.Fatalf("first answer %q, want the OPTIONS'", header(m, "CSeq"))
	}
	free(0, holdInfo)
	p.next("SIP/2.0 200")

	// Inline: the OPTIONS behind a held BYE waits for it (a stated
	// tolerance: nothing is expected within 300 ms).
	p.send(s.addr, request("BYE", "z9hG4bK-in3", p.addr(), 3))
	p.send(s.addr, request("OPTIONS", "z9hG4bK-in4", p.addr(), 4))
	if got := p.quiet(300 * time.Millisecond); len(got) != 0 {
		t.Fatalf("answered while the BYE's handler held the reader: %q", got)
	}
	if n := options.Load(); n != 1 {
		t.Fatalf("OPTIONS handled %d times behind the held BYE, want only the first", n)
	}
	free(1, holdBye)
	if m := p.next("SIP/2.0 200"); header(m, "CSeq") != "3 BYE" {
		t.Fatalf("first answer %q, want the BYE's", header(m, "CSeq"))
	}
	if m := p.next("SIP/2.0 200"); header(m, "CSeq") != "4 OPTIONS" {
		t.Fatalf("second answer %q, want the OPTIONS'", header(m, "CSeq"))
	}
}

// A kept transaction outlives its handler: the TU answers it later, and
// its release then ends it as a handler's return would have.
func TestServerKept(t *testing.T) {
	type kept struct {
		req     *sip.Request
		tx      sip.ServerTransaction
		release func()
	}
	got := make(chan kept, 2)
	s := newStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		release, ok := Keep(tx)
		if !ok {
			t.Error("Keep refused a transaction of this layer")
		}
		got <- kept{req, tx, release} // and return without an answer
	})
	p := newPeer(t)
	inv := request("INVITE", "z9hG4bK-kept1", p.addr(), 1)
	p.send(s.addr, inv)
	k := <-got
	p.next("SIP/2.0 100") // the layer's, as the TU is slow
	time.Sleep(10 * time.Millisecond)
	select {
	case <-k.tx.Done():
		t.Fatal("a kept transaction ended when its handler returned")
	default:
	}
	busyAndAcked(t, s, p, inv, k.req, k.tx, k.release)

	// Released without an answer, it ends at once, as a handler that
	// returned without answering.
	inv2 := request("INVITE", "z9hG4bK-kept2", p.addr(), 2)
	p.send(s.addr, inv2)
	k = <-got
	k.release()
	select {
	case <-k.tx.Done():
	case <-time.After(within):
		t.Fatal("a released transaction without an answer did not end")
	}

	// Over TCP a kept transaction with its final response ends at its
	// release, as it would have when its handler returned: nothing is
	// retransmitted, and no ACK is awaited.
	conn, err := net.Dial("tcp4", s.tcp.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	inv3 := strings.Replace(request("INVITE", "z9hG4bK-kept3", conn.LocalAddr().String(), 3), "SIP/2.0/UDP", "SIP/2.0/TCP", 1)
	if _, err := conn.Write([]byte(inv3)); err != nil {
		t.Fatal(err)
	}
	k = <-got
	if err := k.tx.Respond(sip.NewResponseFromRequest(k.req, 486, "Busy Here", nil)); err != nil {
		t.Fatalf("a kept TCP transaction refused its answer: %v", err)
	}
	select {
	case <-k.tx.Done():
		t.Fatal("a kept TCP transaction ended before its release")
	case <-time.After(10 * time.Millisecond):
	}
	k.release()
	select {
	case <-k.tx.Done():
	case <-time.After(within):
		t.Fatal("a kept TCP transaction with its final response did not end at its release")
	}
	if errors.Is(k.tx.Err(), sip.ErrTransactionTimeout) {
		t.Error("the kept TCP transaction was ended by Timer H, not by its release")
	}
}

// busyAndAcked answers a kept INVITE's transaction 486, releases it, ACKs
// the 486 as the peer, and waits for the transaction to end.
func busyAndAcked(t *testing.T, s *stack, p *peer, inv string, req *sip.Request, tx sip.ServerTransaction, release func()) {
	t.Helper()
	if err := tx.Respond(sip.NewResponseFromRequest(req, 486, "Busy Here", nil)); err != nil {
		t.Fatalf("a kept transaction refused its answer: %v", err)
	}
	busy := p.next("SIP/2.0 486")
	release()
	p.send(s.addr, ackOf(inv, busy, p.addr()))
	waitForEnd(t, s, inv, "the answered INVITE's transaction to end after its ACK")
}

// waitForEnd waits until the server transaction of request msg is gone.
func waitForEnd(t *testing.T, s *stack, msg, what string) {
	t.Helper()
	waitFor(t, func() bool {
		s.l.mu.Lock()
		defer s.l.mu.Unlock()
		return s.l.servers[keyOf(t, msg)] == nil
	}, what)
}

// A handler on the reader that defers the rest of its work frees the
// reader at once; the deferred work may keep the transaction past its own
// return (holds add up), and a transaction nobody answered ends when the
// deferred work returns.
func TestServerDefer(t *testing.T) {
	cfg := testConfig
	cfg.Inline = func(req *sip.Request) bool { return true }
	hold := make(chan struct{})
	var holdOnce sync.Once
	type kept struct {
		req     *sip.Request
		tx      sip.ServerTransaction
		release func()
	}
	got := make(chan kept, 1)
	s := newStackConfig(t, cfg, func(req *sip.Request, tx sip.ServerTransaction) {
		switch req.Method {
		case sip.OPTIONS:
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		case sip.INVITE:
			Defer(tx, func() {
				<-hold
				if req.CSeq().SeqNo == 1 {
					release, _ := Keep(tx)
					got <- kept{req, tx, release}
				}
				// The second returns unanswered.
			})
		}
	})
	t.Cleanup(func() { holdOnce.Do(func() { close(hold) }) })
	p := newPeer(t)

	inv := request("INVITE", "z9hG4bK-def1", p.addr(), 1)
	p.send(s.addr, inv)
	p.send(s.addr, request("OPTIONS", "z9hG4bK-def2", p.addr(), 2))
	if m := p.next("SIP/2.0 200"); header(m, "CSeq") != "2 OPTIONS" {
		t.Fatalf("answer %q, want the OPTIONS' while the INVITE's work waits", header(m, "CSeq"))
	}
	holdOnce.Do(func() { close(hold) })
	k := <-got
	// The deferred work returned, its own hold left; the transaction stays
	// (a stated tolerance: it must not end within 50 ms).
	select {
	case <-k.tx.Done():
		t.Fatal("the transaction ended when the deferred work returned, though kept")
	case <-time.After(50 * time.Millisecond):
	}
	busyAndAcked(t, s, p, inv, k.req, k.tx, k.release)

	// Deferred work that returns without an answer ends the transaction.
	inv2 := request("INVITE", "z9hG4bK-def3", p.addr(), 3)
	p.send(s.addr, inv2)
	waitForEnd(t, s, inv2, "the unanswered INVITE's transaction to end with its deferred work")
}

// A 2xx's ACK (a new branch) is the TU's, with a transaction that cannot
// answer.
func TestServerAckOf2xx(t *testing.T) {
	acks := make(chan sip.ServerTransaction, 1)
	s := newStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		if req.IsAck() {
			acks <- tx
			return
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	p := newPeer(t)
	inv := request("INVITE", "z9hG4bK-ok1", p.addr(), 1)
	p.send(s.addr, inv)
	ok := p.next("SIP/2.0 200")
	ack := strings.Replace(ackOf(inv, ok, p.addr()), "z9hG4bK-ok1", "z9hG4bK-ack1", 1)
	p.send(s.addr, ack)
	select {
	case tx := <-acks:
		if tx.Respond(&sip.Response{}) == nil {
			t.Error("a response to an ACK was accepted")
		}
	case <-time.After(within):
		t.Fatal("ACK of the 2xx not given to the TU")
	}
}

// A request without a Via cannot be answered by transaction rules: it is
// counted and answered 400 statelessly.
func TestServerRejectsWithoutCSeq(t *testing.T) {
	s := newStack(t, func(req *sip.Request, tx sip.ServerTransaction) {
		t.Errorf("TU got %s", req.Method)
	})
	p := newPeer(t)
	m := request("OPTIONS", "z9hG4bK-bad1", p.addr(), 1)
	m = strings.Replace(m, "CSeq: 1 OPTIONS\r\n", "", 1)
	p.send(s.addr, m)
	p.next("SIP/2.0 400")
	if s.l.Stats().Rejected() != 1 {
		t.Errorf("rejected %d, want 1", s.l.Stats().Rejected())
	}
}

func keyOf(t *testing.T, msg string) string {
	t.Helper()
	m, err := sip.ParseMessage([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	k, _ := appendServerKey(nil, m.(*sip.Request), m.(*sip.Request).Method)
	return string(k)
}

func waitFor(t testing.TB, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, within)
		}
		time.Sleep(time.Millisecond)
	}
}

// response is the next response tx passes up; the test fails after a
// generous wait.
func response(t *testing.T, tx sip.ClientTransaction) *sip.Response {
	t.Helper()
	select {
	case res := <-tx.Responses():
		return res
	case <-time.After(within):
		t.Fatal("no response passed up")
		return nil
	}
}

// request starts a client transaction for req.
func (s *stack) request(t *testing.T, req *sip.Request) sip.ClientTransaction {
	t.Helper()
	tx, err := s.l.Request(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return tx
}

// outgoing builds a request from the layer to the peer; over UDP it leaves
// from the stack's listener, where the peer answers.
func (s *stack) outgoing(method sip.RequestMethod, to string, transport string) *sip.Request {
	host, port, _ := sip.ParseAddr(to)
	req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: "bob", Host: host, Port: port})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "example.org"}, Params: sip.NewParams()}
	from.Params.Add("tag", "l1")
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "example.org"}, Params: sip.NewParams()})
	cid := sip.CallIDHeader("out-" + string(method) + "-" + transport)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	req.SetTransport(transport)
	req.SetDestination(to)
	if transport == "UDP" {
		req.Laddr = sip.Addr{IP: net.ParseIP("127.0.0.1"), Port: s.udp.LocalAddr().(*net.UDPAddr).Port}
	}
	AddVia(req, "127.0.0.1", 0)
	return req
}

// answer is the peer's response to a request it received.
func answer(req string, code int, reason, toTag string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, reason)
	for _, h := range []string{"Via", "From", "Call-ID", "CSeq"} {
		fmt.Fprintf(&b, "%s: %s\r\n", h, header(req, h))
	}
	to := header(req, "To")
	if toTag != "" {
		to += ";tag=" + toTag
	}
	fmt.Fprintf(&b, "To: %s\r\nContent-Length: 0\r\n\r\n", to)
	return b.String()
}

// An INVITE from the layer over UDP: retransmitted (Timer A) until a 1xx,
// not after; a 486 is ACKed on the same branch with the 486's To tag and
// passed up after the 180; its retransmission is ACKed again.
func TestClientInviteRejected(t *testing.T) {
	s := newStack(t, nil)
	p := newPeer(t)
	tx := s.request(t, s.outgoing(sip.INVITE, p.addr(), "UDP"))
	defer tx.Terminate()
	inv := p.next("INVITE")
	p.next("INVITE") // Timer A
	from := s.addr
	p.send(from, answer(inv, 180, "Ringing", "p1"))
	if res := response(t, tx); res.StatusCode != 180 {
		t.Fatalf("first response %d", res.StatusCode)
	}
	time.Sleep(4 * testConfig.T1) // an INVITE may have crossed the 180
	for _, l := range p.quiet(8 * testConfig.T1) {
		if strings.HasPrefix(l, "INVITE") {
			t.Errorf("INVITE retransmitted after the 180")
		}
	}
	busy := answer(inv, 486, "Busy Here", "p1")
	p.send(from, busy)
	ack := p.next("ACK")
	if header(ack, "Via") != header(inv, "Via") || !strings.Contains(header(ack, "To"), "tag=p1") ||
		header(ack, "CSeq") != "1 ACK" {
		t.Errorf("ACK of the 486:\n%s\nfor the INVITE:\n%s", ack, inv)
	}
	if res := response(t, tx); res.StatusCode != 486 {
		t.Fatalf("final response %d", res.StatusCode)
	}
	ct := tx.(*clientTx)
	ct.mu.Lock()
	kept := ct.origin != nil
	ct.mu.Unlock()
	if kept {
		t.Error("the request is kept after the final response")
	}
	p.send(from, busy)
	p.next("ACK")
}

// A 2xx retransmitted while the INVITE transaction is Accepted goes to
// OnRetransmission (the TU ACKs it again).
func TestClient2xxRetransmission(t *testing.T) {
	s := newStack(t, nil)
	p := newPeer(t)
	tx := s.request(t, s.outgoing(sip.INVITE, p.addr(), "UDP"))
	defer tx.Terminate()
	again := make(chan int, 4)
	tx.OnRetransmission(func(r *sip.Response) { again <- r.StatusCode })
	inv := p.next("INVITE")
	ok := answer(inv, 200, "OK", "p2")
	src := s.addr
	p.send(src, ok)
	if res := response(t, tx); res.StatusCode != 200 {
		t.Fatalf("response %d", res.StatusCode)
	}
	p.send(src, ok)
	select {
	case code := <-again:
		if code != 200 {
			t.Errorf("retransmission %d", code)
		}
	case <-time.After(within):
		t.Fatal("2xx retransmission not passed up")
	}
}

// Once the transaction has ended, a retransmitted 2xx matches nothing:
// it goes to the core's OnStray; a stray non-2xx is only counted.
func TestStray2xxToTheCore(t *testing.T) {
	s := newStack(t, nil)
	strays := make(chan int, 4)
	s.l.OnStray(func(r *sip.Response) { strays <- r.StatusCode })
	p := newPeer(t)
	tx := s.request(t, s.outgoing(sip.INVITE, p.addr(), "UDP"))
	inv := p.next("INVITE")
	ok := answer(inv, 200, "OK", "p2")
	p.send(s.addr, ok)
	if res := response(t, tx); res.StatusCode != 200 {
		t.Fatalf("response %d", res.StatusCode)
	}
	tx.Terminate()
	before := s.l.Stats().Unmatched()
	p.send(s.addr, answer(inv, 486, "Busy Here", "p3"))
	p.send(s.addr, ok)
	select {
	case code := <-strays:
		if code != 200 {
			t.Fatalf("stray %d handed to the core, want only the 2xx", code)
		}
	case <-time.After(within):
		t.Fatal("the stray 2xx did not reach the core")
	}
	if got := s.l.Stats().Unmatched() - before; got != 2 {
		t.Errorf("%d unmatched responses counted, want 2", got)
	}
	s.l.OnStray(nil)
	p.send(s.addr, ok)
	waitFor(t, func() bool { return s.l.Stats().Unmatched()-before == 3 }, "the third stray counted")
	select {
	case code := <-strays:
		t.Fatalf("a stray %d reached the core: only a 2xx may, and none once its hook is gone", code)
	default:
	}
}

// No answer at all: Timer B ends the transaction with a timeout.
func TestClientTimeout(t *testing.T) {
	s := newStack(t, nil)
	p := newPeer(t)
	tx := s.request(t, s.outgoing(sip.OPTIONS, p.addr(), "UDP"))
	select {
	case <-tx.Done():
	case <-time.After(within):
		t.Fatal("no timeout")
	}
	if !errors.Is(tx.Err(), sip.ErrTransactionTimeout) {
		t.Errorf("Err = %v, want a timeout", tx.Err())
	}
	// Timer E: retransmitted several times before it gave up.
	if n := len(p.quiet(10 * time.Millisecond)); n < 3 {
		t.Errorf("%d requests seen, want the first and retransmissions", n)
	}
}

// Over TCP a final response ends the transaction at once (Timers D and K
// are 0), yet the TU always reads the response before Done: a loop that
// selects on both never sees Done first.
func TestClientReliableFinalBeforeDone(t *testing.T) {
	s := newStack(t, nil)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerDone := make(chan struct{})
	accepted := make(chan net.Conn, 1)
	go func() {
		defer close(peerDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- c
		r := bufio.NewReader(c)
		for {
			msg, err := readStream(r)
			if err != nil {
				return
			}
			if strings.HasPrefix(msg, "INVITE") {
				_, _ = c.Write([]byte(answer(msg, 180, "Ringing", "t1") + answer(msg, 404, "Not Found", "t1")))
			}
		}
	}()
	for i := range 20 {
		req := s.outgoing(sip.INVITE, ln.Addr().String(), "TCP")
		req.CSeq().SeqNo = uint32(i + 1)
		tx, err := s.l.Request(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		var codes []int
	loop:
		for {
			select {
			case res := <-tx.Responses():
				codes = append(codes, res.StatusCode)
			case <-tx.Done():
				break loop
			case <-time.After(within):
				t.Fatal("no final response")
			}
		}
		if len(codes) != 2 || codes[1] != 404 {
			t.Fatalf("call %d: responses %v before Done, want 180 and 404", i, codes)
		}
	}
	ln.Close()
	(<-accepted).Close()
	<-peerDone
}

// readStream reads one SIP message (headers and Content-Length body) from
// a stream.
func readStream(r *bufio.Reader) (string, error) {
	var b strings.Builder
	length := 0
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		b.WriteString(line)
		if line == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			fmt.Sscan(strings.TrimSpace(v), &length)
		}
	}
	body := make([]byte, length)
	if _, err := r.Read(body); err != nil && length > 0 {
		return "", err
	}
	b.Write(body)
	return b.String(), nil
}

// A callee may ring for longer than Timer B: a 1xx stops it (§17.1.1.2),
// and the 2xx that comes after 64·T1 still reaches the TU.
func TestClientRingsPastTimerB(t *testing.T) {
	s := newStack(t, nil)
	p := newPeer(t)
	tx := s.request(t, s.outgoing(sip.INVITE, p.addr(), "UDP"))
	defer tx.Terminate()
	inv := p.next("INVITE")
	p.send(s.addr, answer(inv, 180, "Ringing", "r1"))
	if res := response(t, tx); res.StatusCode != 180 {
		t.Fatalf("response %d", res.StatusCode)
	}
	time.Sleep(64*testConfig.T1 + 20*testConfig.Tick)
	select {
	case <-tx.Done():
		t.Fatalf("ringing INVITE ended: %v", tx.Err())
	default:
	}
	p.send(s.addr, answer(inv, 200, "OK", "r1"))
	if res := response(t, tx); res.StatusCode != 200 {
		t.Fatalf("response %d after Timer B's time, want the 2xx", res.StatusCode)
	}
}

// An ended transaction is garbage at once, though the timers it armed
// stay in the wheel until due (Timer B: 64·T1).
func TestEndedTransactionIsCollected(t *testing.T) {
	s := newStack(t, nil)
	p := newPeer(t)
	tx := s.request(t, s.outgoing(sip.INVITE, p.addr(), "UDP"))
	p.next("INVITE")
	tx.Terminate()
	w := weak.Make(tx.(*clientTx))
	tx = nil
	for range 5 {
		runtime.GC()
		if w.Value() == nil {
			break
		}
	}
	if w.Value() != nil {
		t.Fatal("an ended transaction is still reachable (from its armed timers?)")
	}
	s.l.wheel.mu.Lock()
	armed := s.l.wheel.count
	s.l.wheel.mu.Unlock()
	if armed == 0 {
		t.Fatal("no timer armed: the test proves nothing")
	}
}

// heard is what a RequestFunc transaction's function was handed.
type heard struct {
	code int // 0: an error
	err  error
}

func heardOf(res *sip.Response, err error) heard {
	if res != nil {
		return heard{code: res.StatusCode}
	}
	return heard{err: err}
}

func (s *stack) requestFunc(t *testing.T, req *sip.Request) (sip.ClientTransaction, chan heard) {
	t.Helper()
	got := make(chan heard, 16)
	tx, err := s.l.RequestFunc(context.Background(), req, func(res *sip.Response, err error) { got <- heardOf(res, err) })
	if err != nil {
		t.Fatal(err)
	}
	return tx, got
}

// funcToPeer starts a RequestFunc transaction of method from a new stack
// to a new peer, over UDP.
func funcToPeer(t *testing.T, method sip.RequestMethod) (*stack, *peer, sip.ClientTransaction, chan heard) {
	t.Helper()
	s := newStack(t, nil)
	p := newPeer(t)
	tx, got := s.requestFunc(t, s.outgoing(method, p.addr(), "UDP"))
	return s, p, tx, got
}

// quiet fails if the function is handed anything more within a short
// while.
func quiet(t *testing.T, got chan heard, when string) {
	t.Helper()
	select {
	case h := <-got:
		t.Errorf("handed %+v %s", h, when)
	case <-time.After(10 * time.Millisecond):
	}
}

func next(t *testing.T, got chan heard) heard {
	t.Helper()
	select {
	case h := <-got:
		return h
	case <-time.After(within):
		t.Fatal("the function was not called")
		return heard{}
	}
}

// A RequestFunc transaction hands its responses to the function in order,
// ACKs a non-2xx as any INVITE transaction does, reports no error after a
// final response, and leaves the channel empty.
func TestClientRequestFunc(t *testing.T) {
	s, p, tx, got := funcToPeer(t, sip.INVITE)
	inv := p.next("INVITE")
	p.send(s.addr, answer(inv, 100, "Trying", ""))
	p.send(s.addr, answer(inv, 180, "Ringing", "f1"))
	p.send(s.addr, answer(inv, 486, "Busy Here", "f1"))
	for _, want := range []int{100, 180, 486} {
		if h := next(t, got); h.code != want {
			t.Fatalf("handed %+v, want %d", h, want)
		}
	}
	p.next("ACK")
	quiet(t, got, "after the final response")
	select {
	case res := <-tx.Responses():
		t.Errorf("response %d on the channel", res.StatusCode)
	default:
	}
	tx.Terminate()
}

// A TU that ends a RequestFunc transaction itself, before any final
// response, is not told of it.
func TestClientRequestFuncTerminated(t *testing.T) {
	s, p, tx, got := funcToPeer(t, sip.INVITE)
	inv := p.next("INVITE")
	p.send(s.addr, answer(inv, 180, "Ringing", "f3"))
	if h := next(t, got); h.code != 180 {
		t.Fatalf("handed %+v, want the 180", h)
	}
	tx.Terminate()
	select {
	case <-tx.Done():
	case <-time.After(within):
		t.Fatal("not ended by Terminate")
	}
	quiet(t, got, "after the TU's own Terminate")
}

// A request that cannot be sent is RequestFunc's error, and fn hears
// nothing of it: a caller that counts answers counts it once.
func TestClientRequestFuncNotSent(t *testing.T) {
	s := newStack(t, nil)
	p := newPeer(t)
	req := s.outgoing(sip.OPTIONS, p.addr(), "UDP")
	req.SetBody(bytes.Repeat([]byte("x"), 2000)) // too big for sipgo's UDP
	var calls atomic.Int32
	_, err := s.l.RequestFunc(context.Background(), req, func(*sip.Response, error) { calls.Add(1) })
	if err == nil {
		t.Fatal("a request too big for UDP was sent")
	}
	time.Sleep(10 * time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Errorf("fn called %d times for a request that was not sent", n)
	}
}

// No answer: the function hears the timeout, once.
func TestClientRequestFuncTimeout(t *testing.T) {
	_, _, tx, got := funcToPeer(t, sip.OPTIONS)
	if h := next(t, got); h.code != 0 || !errors.Is(h.err, sip.ErrTransactionTimeout) {
		t.Fatalf("handed %+v, want a timeout", h)
	}
	<-tx.Done()
	quiet(t, got, "after the timeout")
}

// Over TCP the final response ends the transaction at once; the function
// still hears it before the end, and no error after.
func TestClientRequestFuncReliable(t *testing.T) {
	s := newStack(t, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var current atomic.Pointer[sip.ClientTransaction]
	got := make(chan heard, 16)
	endedFirst := make(chan bool, 16)
	tx, err := s.l.RequestFunc(context.Background(), s.outgoing(sip.OPTIONS, ln.Addr().String(), "TCP"),
		func(res *sip.Response, err error) {
			select {
			case <-(*current.Load()).Done():
				endedFirst <- true
			default:
				endedFirst <- false
			}
			got <- heardOf(res, err)
		})
	if err != nil {
		t.Fatal(err)
	}
	current.Store(&tx) // before the peer answers
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, err := readStream(bufio.NewReader(conn))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte(answer(req, 200, "OK", "f2"))); err != nil {
		t.Fatal(err)
	}
	if h := next(t, got); h.code != 200 {
		t.Fatalf("handed %+v, want the 200", h)
	}
	if <-endedFirst {
		t.Error("the transaction ended before fn heard its final response")
	}
	select {
	case <-tx.Done():
	case <-time.After(within):
		t.Fatal("a final response over TCP did not end the transaction")
	}
	if err := tx.Err(); err != nil && !errors.Is(err, sip.ErrTransactionTerminated) {
		t.Errorf("Err = %v", err)
	}
	quiet(t, got, "after the final response")
}
