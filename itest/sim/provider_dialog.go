package sim

import (
	"context"
	"errors"
	"time"

	"github.com/emiago/sipgo/sip"
)

// allowed is the Allow header of the provider as a far end.
const allowed = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, PRACK, NOTIFY, MESSAGE"

// onRequest takes every request but an initial INVITE and ACK: requests
// within dialogs (BYE, re-INVITE, UPDATE, INFO, PRACK, OPTIONS, ...), a
// CANCEL that matched no INVITE transaction, and requests outside dialogs.
// They follow their Route headers (RFC 3261 §16.4–16.6, loose routing);
// with none left, the Request-URI, unless it names this provider.
func (p *Provider) onRequest(req *sip.Request, tx sip.ServerTransaction) {
	if mf := req.MaxForwards(); mf != nil && mf.Val() <= 0 {
		reply(tx, req, sip.StatusTooManyHops, "Too Many Hops")
		return
	}
	routes, err := routeEntries(req, "Route")
	if err != nil {
		reply(tx, req, sip.StatusBadRequest, "Bad Request (Route)")
		return
	}
	rest := p.self.popOwn(routes)
	target := req.Recipient
	switch {
	case len(rest) > 0:
		target = rest[0].uri
	case p.self.owns(req.Recipient):
		p.local(req, tx)
		return
	}
	h, err := hopOf(target)
	if err != nil {
		reply(tx, req, sip.StatusBadGateway, "Bad Gateway (next hop: "+err.Error()+")")
		return
	}
	p.forwardRequest(req, tx, h, rest)
}

// local answers a request addressed to the provider itself: within a call
// it answers as the far end, an OPTIONS probe gets 200, anything else 481
// within a dialog and 405 outside one.
func (p *Provider) local(req *sip.Request, tx sip.ServerTransaction) {
	if c := p.activeCall(callID(req)); c != nil && c.far != nil {
		p.farEndRequest(c, req, tx)
		return
	}
	switch {
	case req.Method == sip.OPTIONS:
		reply(tx, req, sip.StatusOK, "OK", sip.NewHeader("Allow", allowed), sip.NewHeader("Accept", "application/sdp"))
	case hasToTag(req) || req.Method == sip.CANCEL || req.Method == sip.BYE:
		reply(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
	default:
		reply(tx, req, sip.StatusMethodNotAllowed, "Method Not Allowed", sip.NewHeader("Allow", allowed))
	}
}

// forwardRequest proxies a request other than an initial INVITE or an ACK
// statefully (RFC 3261 §16.6) and relays its responses (§16.7). A BYE ends
// the call it belongs to, whatever its answer.
func (p *Provider) forwardRequest(req *sip.Request, tx sip.ServerTransaction, h hop, rest []routeEntry) {
	id := callID(req)
	c := p.activeCall(id)
	fwd := req.Clone()
	setRoutes(fwd, rest)
	decMaxForwards(fwd)
	fwd.PrependHeader(p.via(h.transport, branchPrefix(loopKey(req, rest))+sip.GenerateTagN(10)))
	if c != nil && c.media != nil && isSDP(req) {
		body, err := c.media.rewrite(req.Body(), c.requestSide(req))
		if err != nil {
			reply(tx, req, sip.StatusBadRequest, "Bad Request (SDP)")
			return
		}
		fwd.SetBody(body)
	}
	p.addressed(fwd, h)
	if hasToTag(req) {
		p.count(func(c *Counters) { c.InDialog++ })
	}
	if req.Method == sip.BYE {
		defer p.endCall(c)
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	ctx2, err := p.client(h.transport).TransactionRequest(ctx, fwd, asBuilt)
	cancel()
	if err != nil {
		reply(tx, req, sip.StatusServiceUnavailable, "Service Unavailable (next hop unreachable)", p.retryAfter())
		return
	}
	dest := upstream(req)
	send := func(res *sip.Response) {
		body := res.Body()
		if c != nil && c.media != nil && isSDP(res) {
			if b, err := c.media.rewrite(body, c.answerSide(res)); err == nil {
				body = b
			}
		}
		out := relayed(res, req.Transport(), dest, body)
		if err := tx.Respond(out); errors.Is(err, sip.ErrTransactionTerminated) {
			_ = p.ua.TransportLayer().WriteMsg(out)
		}
	}
	if req.Method == sip.INVITE {
		ctx2.OnRetransmission(func(res *sip.Response) {
			if res.IsSuccess() {
				send(res)
			}
		})
	}
	for {
		select {
		case res := <-ctx2.Responses():
			if res.StatusCode == sip.StatusTrying {
				continue // §16.7 step 5
			}
			send(res)
			if res.IsProvisional() {
				continue
			}
			if req.Method == sip.INVITE && !res.IsSuccess() {
				p.expectAck(req)
			}
			return
		case <-ctx2.Done():
			code, reason := sip.StatusRequestTimeout, "Request Timeout (next hop did not answer)"
			if !errors.Is(ctx2.Err(), sip.ErrTransactionTimeout) {
				code, reason = sip.StatusServiceUnavailable, "Service Unavailable (next hop unreachable)"
			}
			reply(tx, req, code, reason)
			return
		case <-p.ctx.Done():
			ctx2.Terminate()
			return
		}
	}
}

// onAck takes an ACK. The ACK of a non-2xx answer is hop by hop: the
// server transaction absorbs it, or it ends here. The ACK of a 2xx is a
// request of its own and is forwarded statelessly along its Route headers
// (RFC 3261 §16.6, §16.11), or taken by the far end it is addressed to.
func (p *Provider) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if p.absorbed(req) {
		return
	}
	routes, err := routeEntries(req, "Route")
	if err != nil {
		return
	}
	rest := p.self.popOwn(routes)
	target := req.Recipient
	switch {
	case len(rest) > 0:
		target = rest[0].uri
	case p.self.owns(req.Recipient):
		if c := p.activeCall(callID(req)); c != nil && c.far != nil {
			p.count(func(c *Counters) { c.InDialog++ })
			c.far.ack()
		}
		return
	}
	h, err := hopOf(target)
	if err != nil {
		return
	}
	fwd := req.Clone()
	setRoutes(fwd, rest)
	decMaxForwards(fwd)
	fwd.PrependHeader(p.via(h.transport, branchPrefix(loopKey(req, rest))+sip.GenerateTagN(10)))
	if c := p.activeCall(callID(req)); c != nil && c.media != nil && isSDP(req) {
		if body, err := c.media.rewrite(req.Body(), c.requestSide(req)); err == nil {
			fwd.SetBody(body)
		}
	}
	p.addressed(fwd, h)
	p.count(func(c *Counters) { c.InDialog++ })
	if err := p.client(h.transport).WriteRequest(fwd, asBuilt); err != nil {
		p.log.Debug("ACK not forwarded", "call", callID(req), "err", err)
	}
}
