package sim

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
)

// timerC bounds how long a proxied INVITE may stay unanswered once a
// provisional came (RFC 3261 §16.6 step 11: more than 3 minutes).
const timerC = 3*time.Minute + time.Second

// cancelGrace is how long a cancelled branch may take to send its final
// answer before its transaction is dropped (64·T1, §16.10).
const cancelGrace = 32 * time.Second

// invite is one initial INVITE transaction in the provider's hands.
type invite struct {
	p    *Provider
	req  *sip.Request
	tx   sip.ServerTransaction
	id   string // Call-ID
	dest string // where responses go upstream
	rec  *CallRecord
	c    *call // registered call; nil before admission and for a spiral

	cancelled chan struct{} // closed when the caller's CANCEL ended the transaction
	done      sync.Once     // the outcome is counted once
}

// isCancelled reports whether the caller cancelled: sipgo has then answered
// the CANCEL with 200 and the INVITE with 487 (RFC 3261 §9.2).
func (inv *invite) isCancelled() bool {
	select {
	case <-inv.cancelled:
		return true
	default:
		return false
	}
}

// onInvite takes an INVITE: within a dialog it is a re-INVITE, routed like
// every request within a dialog; otherwise it starts a call.
func (p *Provider) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if hasToTag(req) {
		p.onRequest(req, tx)
		return
	}
	inv := &invite{p: p, req: req, tx: tx, id: callID(req), dest: upstream(req), cancelled: make(chan struct{})}
	p.mu.Lock()
	p.counters.Invites++
	inv.rec = p.record(inv.id)
	inv.rec.Invites++
	inv.rec.Outcome, inv.rec.Code, inv.rec.Ended = OutcomePending, 0, false
	p.mu.Unlock()
	var once sync.Once
	if !tx.OnCancel(func(*sip.Request) { once.Do(func() { close(inv.cancelled) }) }) {
		inv.finishCancelled() // cancelled before this handler ran
		return
	}
	p.serveInvite(inv)
}

// serveInvite runs the checks of RFC 3261 §16.3 and the provider's own
// (credentials, capacity, failure mode), then forwards the INVITE or
// answers it as the far end.
func (p *Provider) serveInvite(inv *invite) {
	req := inv.req
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 0 {
		inv.fail(sip.StatusTooManyHops, "Too Many Hops") // §16.3 step 3
		return
	}
	routes, err := routeEntries(req, "Route")
	if err != nil {
		inv.fail(sip.StatusBadRequest, "Bad Request (Route)")
		return
	}
	rest := p.self.popOwn(routes) // §16.4
	key := loopKey(req, rest)
	if p.self.looped(req, key) {
		inv.fail(sip.StatusLoopDetected, "Loop Detected") // §16.3 step 4
		return
	}
	// §16.2: a stateful proxy answers an INVITE with 100 at once.
	_ = inv.tx.Respond(sip.NewResponseFromRequest(req, sip.StatusTrying, "Trying", nil))
	if p.nonces != nil && !p.authorize(inv) {
		return
	}
	if !p.admit(inv) {
		return
	}
	m := p.Mode()
	if m.ErrorRate > 0 && p.draw() < m.ErrorRate {
		code := m.code()
		inv.fail(code, reason5xx(code)+" (error_rate)")
		return
	}
	if m.Slow && !inv.hold(time.Duration(m.SlowDelayMs)*time.Millisecond) {
		return
	}
	user := req.Recipient.User
	switch {
	case (p.role == RoleTrunk || len(rest) == 0) && terminates(p.cfg.Terminate, user):
		p.answerFarEnd(inv)
		return
	case p.role == RoleProxy && len(rest) > 0:
		p.forwardInvite(inv, rest[0].uri, rest, key)
	case p.self.owns(req.Recipient):
		inv.fail(sip.StatusNotFound, "Not Found (no route for the Request-URI)")
	default:
		// A trunk, or a proxy with no Route left: the Request-URI (§16.5).
		p.forwardInvite(inv, req.Recipient, rest, key)
	}
}

// admit registers the call unless the provider is full (503 with
// Retry-After). A second initial INVITE of a call in progress (a spiral
// back through this provider) is served without a call of its own.
func (p *Provider) admit(inv *invite) bool {
	p.mu.Lock()
	if _, ok := p.calls[inv.id]; ok {
		p.mu.Unlock()
		return true
	}
	if max := p.cfg.MaxCalls; max > 0 && len(p.calls) >= max {
		p.mu.Unlock()
		inv.fail(sip.StatusServiceUnavailable, "Service Unavailable (max_calls "+strconv.Itoa(max)+" reached)", p.retryAfter())
		return false
	}
	inv.c = &call{id: inv.id, callerTag: fromTag(inv.req), rec: inv.rec}
	p.calls[inv.id] = inv.c
	p.mu.Unlock()
	return true
}

func (p *Provider) retryAfter() sip.Header {
	return sip.NewHeader("Retry-After", strconv.Itoa(p.cfg.RetryAfter))
}

// hold keeps an INVITE of a slow provider: for d, or with d 0 until the
// caller cancels it or Timer C answers 408. It reports whether the INVITE
// may go on.
func (inv *invite) hold(d time.Duration) bool {
	limit := d
	if limit == 0 {
		limit = timerC
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-t.C:
		if d == 0 {
			inv.fail(sip.StatusRequestTimeout, "Request Timeout")
			return false
		}
		return true
	case <-inv.cancelled:
		inv.finishCancelled()
		return false
	case <-inv.p.ctx.Done():
		inv.abandon()
		return false
	}
}

// fail answers the INVITE with a final non-2xx response of the provider's
// own and counts it.
func (inv *invite) fail(code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(inv.req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if code == sip.StatusServiceUnavailable && res.GetHeader("Retry-After") == nil {
		res.AppendHeader(inv.p.retryAfter())
	}
	inv.finish(code)
	inv.p.expectAck(inv.req)
	if err := inv.tx.Respond(res); err != nil {
		inv.p.log.Debug("answer not sent", "call", inv.id, "code", code, "err", err)
	}
}

// finish counts the outcome of the INVITE; a call that did not get a 2xx
// ends.
func (inv *invite) finish(code int) {
	inv.done.Do(func() {
		p := inv.p
		p.mu.Lock()
		inv.rec.Code = code
		switch {
		case code >= 200 && code < 300:
			p.counters.Answered++
			inv.rec.Outcome = OutcomeAnswered
		default:
			p.counters.Failed[code]++
			inv.rec.Outcome = OutcomeFailed
		}
		p.mu.Unlock()
		if code >= 300 {
			p.endCall(inv.c)
		}
	})
}

// finishCancelled counts an INVITE the caller cancelled.
func (inv *invite) finishCancelled() {
	inv.done.Do(func() {
		p := inv.p
		p.mu.Lock()
		p.counters.Cancelled++
		inv.rec.Outcome, inv.rec.Code = OutcomeCancelled, sip.StatusRequestTerminated
		p.mu.Unlock()
		p.expectAck(inv.req) // of the 487 sipgo sent
		p.endCall(inv.c)
	})
}

// recountCancelled turns an INVITE counted as answered into a cancelled
// one: its 2xx lost the race with the caller's CANCEL.
func (inv *invite) recountCancelled() {
	p := inv.p
	p.mu.Lock()
	p.counters.Answered--
	p.counters.Cancelled++
	inv.rec.Outcome, inv.rec.Code = OutcomeCancelled, sip.StatusRequestTerminated
	p.mu.Unlock()
	p.endCall(inv.c)
}

// abandon drops an INVITE while the provider closes.
func (inv *invite) abandon() {
	inv.done.Do(func() { inv.p.endCall(inv.c) })
}

// forwardInvite proxies the INVITE to target (RFC 3261 §16.6) and relays
// what comes back (§16.7), handling the caller's CANCEL (§16.10) and Timer
// C (§16.8).
func (p *Provider) forwardInvite(inv *invite, target sip.Uri, rest []routeEntry, key string) {
	req := inv.req
	h, err := hopOf(target)
	if err != nil {
		inv.fail(sip.StatusBadGateway, "Bad Gateway (next hop: "+err.Error()+")")
		return
	}
	fwd := req.Clone() // §16.6 step 1
	setRoutes(fwd, rest)
	decMaxForwards(fwd)
	// §16.6 step 4; two values when the transport changes (RFC 5658 §3.4),
	// the one the next hop uses on top.
	if in := req.Transport(); !sip.IsReliable(in) == !sip.IsReliable(h.transport) {
		fwd.PrependHeader(sip.NewHeader("Record-Route", p.recordRoute(h.transport)))
	} else {
		fwd.PrependHeader(sip.NewHeader("Record-Route", p.recordRoute(h.transport)),
			sip.NewHeader("Record-Route", p.recordRoute(in)))
	}
	fwd.PrependHeader(p.via(h.transport, branchPrefix(key)+sip.GenerateTagN(10))) // §16.6 step 8
	if inv.c != nil && p.relay != nil && isSDP(req) {
		sess, err := p.relay.Open(inv.id)
		if err != nil {
			inv.fail(sip.StatusServiceUnavailable, "Service Unavailable (no media ports)")
			return
		}
		body, err := p.anchorCall(inv.c, sess).rewrite(req.Body(), media.A)
		if err != nil {
			inv.fail(sip.StatusBadRequest, "Bad Request (SDP)")
			return
		}
		fwd.SetBody(body)
	}
	p.addressed(fwd, h)
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	ctx2, err := p.client(h.transport).TransactionRequest(ctx, fwd, asBuilt)
	cancel()
	if err != nil {
		p.log.Debug("INVITE not forwarded", "call", inv.id, "next_hop", h.uri, "err", err)
		inv.fail(sip.StatusServiceUnavailable, "Service Unavailable (next hop unreachable)")
		return
	}
	ctx2.OnRetransmission(func(res *sip.Response) {
		if res.IsSuccess() && !inv.isCancelled() {
			p.relay2xx(inv, res) // §16.7 step 10: every 2xx goes upstream
		}
	})
	p.mu.Lock()
	p.counters.Forwarded++
	inv.rec.NextHop = h.uri
	p.mu.Unlock()
	p.relayInviteResponses(inv, fwd, h, ctx2)
}

// relayInviteResponses runs the forwarded INVITE's client transaction to
// its end.
func (p *Provider) relayInviteResponses(inv *invite, fwd *sip.Request, h hop, ctx sip.ClientTransaction) {
	proceeding := false // a provisional came: a CANCEL may go (§9.1)
	cancelWanted := false
	cancelled := (<-chan struct{})(inv.cancelled)
	tc := time.NewTimer(timerC)
	defer tc.Stop()
	var grace <-chan time.Time
	answered := false // upstream has its final answer
	for {
		select {
		case res := <-ctx.Responses():
			if res.IsProvisional() {
				proceeding = true
				if cancelWanted {
					cancelWanted = false
					p.cancelBranch(fwd, h)
				}
				// §16.7 step 5: 100 is not forwarded.
				if res.StatusCode > 100 && !answered && !inv.isCancelled() {
					p.relayResponse(inv, res)
				}
				continue
			}
			switch {
			case answered:
				if res.IsSuccess() {
					p.hangUp(fwd, res, h) // answered after Timer C gave up on it
				}
			case res.IsSuccess() && inv.isCancelled():
				// The caller has its 487 (§16.10): the callee's dialog is
				// ended here.
				inv.finishCancelled()
				p.hangUp(fwd, res, h)
			case res.IsSuccess():
				inv.finish(res.StatusCode)
				p.relay2xx(inv, res)
				if inv.isCancelled() {
					// The CANCEL crossed the 2xx and won: the caller got 487.
					inv.recountCancelled()
					p.hangUp(fwd, res, h)
				}
			case inv.isCancelled():
				inv.finishCancelled()
			default:
				p.relayResponse(inv, res)
				inv.finish(res.StatusCode)
				p.expectAck(inv.req)
			}
			return
		case <-cancelled:
			cancelled = nil
			inv.finishCancelled()
			if proceeding {
				p.cancelBranch(fwd, h)
			} else {
				cancelWanted = true
			}
			grace = time.After(cancelGrace)
		case <-tc.C:
			// §16.8: Timer C cancels the branch; the caller gets 408.
			if proceeding {
				p.cancelBranch(fwd, h)
			}
			if !answered && !inv.isCancelled() {
				inv.fail(sip.StatusRequestTimeout, "Request Timeout")
			}
			answered = true
			grace = time.After(cancelGrace)
		case <-grace:
			ctx.Terminate()
			return
		case <-ctx.Done():
			switch {
			case answered:
			case inv.isCancelled():
				inv.finishCancelled()
			case errors.Is(ctx.Err(), sip.ErrTransactionTimeout):
				inv.fail(sip.StatusRequestTimeout, "Request Timeout (next hop did not answer)") // §16.7 step 2
			default:
				inv.fail(sip.StatusServiceUnavailable, "Service Unavailable (next hop unreachable)") // §16.9
			}
			return
		case <-p.ctx.Done():
			ctx.Terminate()
			inv.abandon()
			return
		}
	}
}

// relayResponse sends a provisional or non-2xx final response of the next
// hop upstream, its SDP anchored.
//
// A 503 from downstream goes upstream as 500 (RFC 3261 §16.7 step 6): the
// Retry-After of a hop further on is not this provider's to pass, and the
// caller would take this provider for unavailable.
func (p *Provider) relayResponse(inv *invite, res *sip.Response) {
	if res.StatusCode == sip.StatusServiceUnavailable {
		res = res.Clone()
		res.StatusCode, res.Reason = sip.StatusInternalServerError, "Server Internal Error (next hop unavailable)"
		res.RemoveHeader("Retry-After")
	}
	out := relayed(res, inv.req.Transport(), inv.dest, p.anchorAnswer(inv.c, res))
	if err := inv.tx.Respond(out); err != nil {
		p.log.Debug("response not relayed", "call", inv.id, "status", res.StatusCode, "err", err)
	}
}

// relay2xx sends a 2xx (or its retransmission) upstream. The INVITE server
// transaction passes every 2xx on (RFC 6026 §7.1); once it has ended, the
// 2xx goes statelessly, as §16.7 step 10 has it.
func (p *Provider) relay2xx(inv *invite, res *sip.Response) {
	out := relayed(res, inv.req.Transport(), inv.dest, p.anchorAnswer(inv.c, res))
	if err := inv.tx.Respond(out); !errors.Is(err, sip.ErrTransactionTerminated) {
		return
	}
	if err := p.ua.TransportLayer().WriteMsg(out); err != nil {
		p.log.Debug("2xx not relayed", "call", inv.id, "err", err)
	}
}

// anchorAnswer is a response's body as it goes upstream: an SDP answer is
// anchored at the relay when the call's media is.
func (p *Provider) anchorAnswer(c *call, res *sip.Response) []byte {
	body := res.Body()
	if c == nil || c.media == nil || !isSDP(res) {
		return body
	}
	out, err := c.media.rewrite(body, c.answerSide(res))
	if err != nil {
		p.log.Warn("SDP answer not anchored", "call", c.id, "err", err)
		return body
	}
	return out
}

// reason5xx is the reason phrase of a 5xx status (RFC 3261 §21.5).
func reason5xx(code int) string {
	switch code {
	case 500:
		return "Server Internal Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Server Time-out"
	case 505:
		return "Version Not Supported"
	case 513:
		return "Message Too Large"
	}
	return "Server Error"
}
