package b2bua

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/node/call"
	"github.com/callmesh/callmesh/node/siptx"
	"github.com/callmesh/callmesh/node/sipwire"
)

// T1 and T2 are RFC 3261's retransmission timers (§17.1.1.1), for the 2xx
// the node retransmits to a caller over UDP until its ACK (§13.3.1.4).
const (
	t1 = 500 * time.Millisecond
	t2 = 4 * time.Second
)

// linger bounds how long an ended call waits for branches still answering
// (a CANCEL crossing a 2xx), so that a late 2xx is ACKed and ended.
const linger = 32 * time.Second

// tick names a timer of the call, or the order to stop at shutdown.
type tick uint8

const (
	tickNone       tick = iota
	tickRing            // the callee rang too long (RingTimeout)
	tickAck             // the caller never ACKed its 2xx (AckTimeout)
	tickRetransmit      // the 2xx to a caller over UDP goes again (T1, doubling to T2)
	tickExpiry          // the session interval (RFC 4028) may have run out
	tickLinger          // an ended call waited long enough for its branches
	tickStop            // the node stops: forget the call now
	ticks
)

// The call has no goroutine of its own. Whoever posts an event to a call
// nobody is serving serves it: handles every event queued, in order, then
// lets go (run). Responses are handled on the transport's reader that
// read them, timers on their own goroutines, an INVITE on its handler's:
// no hand-over to another goroutine per message. The one serving owns the
// state machine's actions and the timers below; nothing it does waits on
// the network unless on a goroutine of its own (post, background).

// arm starts timer k, replacing one armed before: it posts its tick.
// Called by the one serving the call.
func (c *Call) arm(k tick, d time.Duration) {
	c.disarm(k)
	gen := c.tgen[k]
	c.timers[k] = time.AfterFunc(d, func() { c.post(event{tick: k, gen: int(gen)}) })
}

// disarm stops timer k; a tick it posted already is ignored (stale).
func (c *Call) disarm(k tick) {
	c.tgen[k]++
	if t := c.timers[k]; t != nil {
		t.Stop()
		c.timers[k] = nil
	}
}

// fired takes a timer's tick: false when the timer was stopped or
// replaced since it posted it.
func (c *Call) fired(e event) bool {
	if uint32(e.gen) != c.tgen[e.tick] {
		return false
	}
	c.timers[e.tick] = nil
	return true
}

// run serves the call's queued events until none is left, then lets go:
// the next post serves it. Called by the one that set c.running; own
// when on a goroutine that may wait (see post). A call found to need one
// meanwhile (a path over TCP) is handed to one.
func (c *Call) run(own bool) {
	for {
		c.qmu.Lock()
		batch := c.queue
		if len(batch) == 0 {
			c.running = false
			c.qmu.Unlock()
			return
		}
		if c.offload && !own {
			c.qmu.Unlock()
			c.svc.spawn(func() { c.run(true) })
			return
		}
		c.queue, c.spare = c.spare, nil
		c.qmu.Unlock()
		for _, e := range batch {
			switch {
			case e.out != nil:
				_ = c.svc.write(e.out, e.outTransport)
			case e.reply:
				c.reply(e)
			case e.tick != tickNone:
				if c.onTick(e) {
					return
				}
			default:
				c.apply(e)
			}
			if c.settle() {
				return
			}
		}
		clear(batch) // no response kept alive
		c.qmu.Lock()
		if c.spare == nil && !c.over {
			c.spare = batch[:0]
		}
		c.qmu.Unlock()
	}
}

// onTick takes a timer's tick; true when the call is over and forgotten.
func (c *Call) onTick(e event) bool {
	if e.tick == tickStop {
		c.finish()
		return true
	}
	if !c.fired(e) {
		return false
	}
	switch e.tick {
	case tickRing:
		c.apply(event{ev: call.Event{Kind: call.RingTimeout}})
	case tickAck:
		c.apply(event{ev: call.Event{Kind: call.AckTimeout}})
	case tickRetransmit:
		c.mu.Lock()
		res, waiting := c.answer, c.fsm.State() == call.Answered
		c.mu.Unlock()
		if waiting && res != nil {
			_ = c.tx.Respond(res)
			c.interval = min(2*c.interval, t2)
			c.arm(tickRetransmit, c.interval)
		}
	case tickExpiry:
		c.mu.Lock()
		left := c.lastRef.Add(c.refresh).Sub(time.Now())
		c.mu.Unlock()
		if left > 0 {
			c.arm(tickExpiry, left)
			break
		}
		c.apply(event{ev: call.Event{Kind: call.SessionExpired}})
	case tickLinger:
		c.finish()
		return true
	}
	return false
}

// settle arms and stops the timers for the state an event left the call
// in; true when the call is over and forgotten.
func (c *Call) settle() bool {
	s := c.svc
	c.mu.Lock()
	state, pending := c.fsm.State(), c.fsm.Pending()
	refresh := c.refresh
	c.mu.Unlock()
	if state == call.Answered && !c.acking {
		c.acking = true
		c.disarm(tickRing)
		c.arm(tickAck, s.cfg.AckTimeout)
		if !sip.IsReliable(c.a.transport) {
			c.interval = t1
			c.arm(tickRetransmit, c.interval)
		}
	}
	if state == call.Confirmed || state == call.Ended {
		c.disarm(tickAck)
		c.disarm(tickRetransmit)
	}
	if state == call.Confirmed && refresh > 0 && c.timers[tickExpiry] == nil {
		c.arm(tickExpiry, refresh)
	}
	if state == call.Ended {
		if pending == 0 {
			c.finish()
			return true
		}
		if !c.lingering {
			c.lingering = true
			c.arm(tickLinger, linger)
		}
	}
	return false
}

// finish forgets the call: its timers stop and posts are dropped. Called
// once, by the one serving the call.
func (c *Call) finish() {
	defer c.svc.wg.Done() // taken by register
	for k := range c.timers {
		c.disarm(tick(k))
	}
	c.finalSent()
	c.qmu.Lock()
	c.over, c.queue, c.spare = true, nil, nil
	c.qmu.Unlock()
	if c.done != nil {
		close(c.done)
	}
	c.mu.Lock()
	m := c.media
	var txs []sip.ClientTransaction
	for _, br := range c.branches {
		if br.tx != nil {
			txs = append(txs, br.tx)
		}
		if br.firstHop != nil {
			br.firstHop.Stop()
			br.firstHop = nil
		}
	}
	c.mu.Unlock()
	if m != nil {
		m.sess.Close()
	}
	// A branch's INVITE transaction waits out 2xx retransmissions (RFC 6026
	// Accepted) with a callback that holds the call; once the call is over
	// it is not kept for the wait: a 2xx retransmitted later matches no
	// transaction and is ACKed from itself (ackStray).
	for _, tx := range txs {
		tx.Terminate()
	}
	c.svc.unregister(c)
}

// apply runs one event through the state machine and carries out what it
// decides.
func (c *Call) apply(e event) {
	c.mu.Lock()
	var cancelNow *branch
	if e.res != nil && (e.ev.Kind == call.Provisional || e.ev.Kind == call.Answer) {
		br := c.branches[e.ev.Branch]
		br.learn(e.res)
		br.proceeding = true
		if e.ev.Kind == call.Provisional && br.cancelWanted {
			// A CANCEL waits for a provisional (RFC 3261 §9.1).
			br.cancelWanted = false
			cancelNow = br
		}
	}
	// A step yields one or two actions, three when forking: room on the
	// stack for the usual ones.
	var buf [4]call.Action
	acts := c.fsm.StepAppend(buf[:0], e.ev)
	c.mu.Unlock()
	if br := cancelNow; br != nil {
		// Unlocked: cancel takes the mutex, and may run right here.
		c.background(br.dest, br.transport, func() { c.cancel(br, br.cancelReason) })
	}
	if c.svc.log.Enabled(context.Background(), slog.LevelDebug) {
		c.svc.log.Debug("call event", "call", c.id, "event", e.ev.Kind, "branch", e.ev.Branch, "code", e.ev.Code, "actions", slices.Clone(acts), "state", c.fsm.State())
	}
	for _, a := range acts {
		c.do(a, e)
	}
}

// learn takes the dialog state a response establishes (RFC 3261 §12.1.2):
// the callee's tag, its Contact as target and the route set. Called with
// the call's mutex held.
func (br *branch) learn(res *sip.Response) {
	to := res.To()
	if to == nil {
		return
	}
	tag, _ := to.Params.Get("tag")
	if tag == "" || (br.ok != nil && !res.IsSuccess()) {
		return
	}
	if res.IsSuccess() && br.ok == nil {
		br.ok = res
	}
	br.remoteTag = tag
	if ct := res.Contact(); ct != nil {
		br.remoteTarget = *ct.Address.Clone()
	}
	br.routes = routeSet(res, true)
}

// do carries out one action of the state machine.
func (c *Call) do(a call.Action, e event) {
	s := c.svc
	switch a.Kind {
	case call.StartBranch:
		c.startBranch(a.Branch)

	case call.RelayProvisional:
		c.mu.Lock()
		res := c.response(e.res, a.Code, e.res.Reason, media.B)
		if c.alerted.IsZero() && a.Code >= 180 {
			c.alerted = time.Now()
		}
		c.mu.Unlock()
		_ = c.tx.Respond(res)

	case call.AnswerCaller:
		c.mu.Lock()
		res := c.response(e.res, e.res.StatusCode, e.res.Reason, media.B)
		c.answer = res
		c.answered = time.Now()
		c.lastRef = c.answered
		c.refresh = sessionInterval(e.res)
		c.mu.Unlock()
		s.Counters.Answered.Add(1)
		if err := c.tx.Respond(res); err != nil {
			s.log.Debug("2xx to caller not sent", "call", c.id, "err", err)
		}
		c.finalSent()

	case call.RejectCaller:
		if a.Final.Code == 487 {
			s.Counters.Cancelled.Add(1)
		} else {
			s.Counters.Failed.Add(1)
		}
		c.mu.Lock()
		res := c.callerResponse(a.Final.Code, a.Final.Reason)
		c.mu.Unlock()
		switch by := c.fsm.EndedBy(); {
		case c.egress && (by == "callee" || by == "no answer"):
			// What the callee answered, not the path's fault: the ingress
			// node must not fail over on it.
			res.AppendHeader(sip.NewHeader("Reason", CalleeReason(a.Final.Code)))
		case a.Final.Code == 503 && c.plan == nil:
			res.AppendHeader(sip.NewHeader("Retry-After", strconv.Itoa(s.cfg.RetryAfter)))
		}
		_ = c.tx.Respond(res)
		c.finalSent()

	case call.CancelBranch:
		c.mu.Lock()
		br := c.branches[a.Branch]
		heard := br.proceeding
		if !heard {
			br.cancelWanted, br.cancelReason = true, a.Reason
		}
		c.mu.Unlock()
		if heard {
			c.background(br.dest, br.transport, func() { c.cancel(br, a.Reason) })
		}

	case call.AckBranch:
		c.mu.Lock()
		br := c.branches[a.Branch]
		ack := br.ackFor(s, nil)
		c.mu.Unlock()
		if ack != nil {
			_ = s.write(ack, br.transport) // before a BYE that may follow
		}

	case call.ByeBranch:
		c.mu.Lock()
		br := c.branches[a.Branch]
		bye := br.request(sip.BYE, 0, s.contact)
		c.mu.Unlock()
		c.background(bye.Destination(), br.transport, func() { c.bye(bye, br.transport, a.Reason) })

	case call.ByeCaller:
		c.mu.Lock()
		bye := c.a.request(sip.BYE, 0, s.contact)
		c.mu.Unlock()
		c.background(bye.Destination(), c.a.transport, func() { c.bye(bye, c.a.transport, a.Reason) })

	case call.Release:
		c.report()
		if c.fsm.Final() == call.Cancelled {
			s.Counters.Cancelled.Add(1)
		}
	}
}

// response builds what the caller is sent for a branch's provisional or
// 2xx: the caller's dialog (one To tag whatever the branch), our Contact,
// the end-to-end headers, and the body anchored at the relay. Called with
// the call's mutex held.
func (c *Call) response(from *sip.Response, code int, reason string, side media.Side) *sip.Response {
	res := c.callerResponse(code, reason)
	res.AppendHeader(&sip.ContactHeader{Address: c.a.contactFor(c.svc.contact, nil)})
	copyHeaders(res, from, endToEnd...)
	body := from.Body()
	if len(body) > 0 && c.media != nil && isSDP(from) {
		if out, err := c.media.anchor(body, side); err == nil {
			body = out
		} else {
			c.svc.log.Warn("callee SDP not anchored", "call", c.id, "err", err)
		}
	}
	if len(body) > 0 {
		res.SetBody(body)
	}
	return res
}

// callerResponse starts a response to the caller's initial INVITE, with
// the caller's leg's To tag. Every response the caller is sent carries
// that one tag: with one of its own each (sipgo's NewResponseFromRequest
// draws one for every response but a 100), the 180's unlike the 200's,
// the dialog the caller confirms would not be the one the node's own
// requests (a BYE when the callee hangs up) name (RFC 3261 §12.1.1).
// Called with the call's mutex held.
func (c *Call) callerResponse(code int, reason string) *sip.Response {
	return sipwire.Response(c.invite, code, reason, c.a.localTag)
}

// ackFor builds the ACK of the branch's 2xx (RFC 3261 §13.2.2.4), with body
// for a late offer's answer. It keeps the body: a retransmitted 2xx gets an
// ACK with the same one. Each ACK is built afresh rather than copied from
// a kept one: building costs less than a deep copy, and a request being
// written is not shared. Called with the call's mutex held.
func (br *branch) ackFor(s *Service, body []byte) *sip.Request {
	if br.ok == nil {
		return nil
	}
	if body == nil {
		body = br.ackBody
	} else {
		br.ackBody = body
	}
	ack := br.request(sip.ACK, br.req.CSeq().SeqNo, s.contact)
	if len(body) > 0 {
		ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		ack.SetBody(body)
	}
	return ack
}

// cancel sends CANCEL for a branch's INVITE (RFC 3261 §9.1): the same
// Request-URI, Call-ID, From, To, CSeq number and top Via.
func (c *Call) cancel(br *branch, reason string) {
	c.mu.Lock()
	inv := br.req
	c.mu.Unlock()
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	if via := inv.Via(); via != nil {
		req.AppendHeader(via.Clone())
	}
	for _, n := range []string{"From", "To", "Call-ID", "Route"} {
		for h := range sipwire.Headers(inv, n) {
			req.AppendHeader(sip.HeaderClone(h))
		}
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	if reason != "" {
		req.AppendHeader(sip.NewHeader("Reason", reason))
	}
	req.SetBody(nil) // Content-Length: 0, required on TCP
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	c.svc.send(req, br.transport, true, "CANCEL", c.id)
}

// bye sends a BYE; its answer changes nothing.
func (c *Call) bye(req *sip.Request, transport, reason string) {
	if reason != "" {
		req.AppendHeader(sip.NewHeader("Reason", reason))
	}
	c.svc.send(req, transport, false, "BYE", c.id)
}

// background runs f, which sends a request toward dest: at once when that
// needs no dial and no lookup (serving a call never waits on the network), else
// on a goroutine of its own.
func (c *Call) background(dest, transport string, f func()) {
	if siptx.Immediate(dest, transport) {
		f()
		return
	}
	c.svc.spawn(f)
}

// sessionInterval reads the session interval a 2xx agreed (RFC 4028 §7.2):
// 0 when no session timer is in use.
func sessionInterval(res *sip.Response) time.Duration { return seconds(res, "Session-Expires") }

// seconds reads a header whose value starts with a number of seconds
// (Session-Expires, Retry-After; parameters after ';' ignored): 0 when
// absent or not positive.
func seconds(res *sip.Response, name string) time.Duration {
	h := sipwire.Header(res, name)
	if h == nil {
		return 0
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
