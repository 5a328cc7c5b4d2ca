package b2bua

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/node/call"
	"github.com/callmesh/callmesh/node/sipwire"
)

// InDialog takes a request that belongs to a dialog (sipedge.Calls): it
// returns false when no call of this node knows the dialog.
func (s *Service) InDialog(req *sip.Request, tx sip.ServerTransaction) bool {
	ref, ok := s.lookup(req)
	if !ok {
		return false
	}
	c := ref.c
	switch req.Method {
	case sip.ACK:
		c.onAck(ref, req)
	case sip.BYE:
		respond(tx, req, sip.StatusOK, "OK")
		c.post(event{ev: call.Event{Kind: call.Bye, Side: ref.side}})
	case sip.CANCEL:
		return false // a CANCEL that matched no INVITE transaction
	default:
		c.forward(ref, req, tx) // the handler holds the transaction until answered
	}
	return true
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sipwire.Response(req, code, reason, "")
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

// onAck takes an ACK: of the 2xx to the caller's INVITE (the call is
// confirmed and the ACK goes on to the callee, with the answer of a late
// offer), or of a 2xx to a re-INVITE the node forwarded.
func (c *Call) onAck(ref dialogRef, req *sip.Request) {
	s := c.svc
	seq := req.CSeq().SeqNo
	c.mu.Lock()
	if ref.side == call.Caller && seq == c.invite.CSeq().SeqNo {
		w := c.fsm.Winner()
		var ack *sip.Request
		var transport string
		if w >= 0 && c.fsm.State() == call.Answered {
			br := c.branches[w]
			body := req.Body()
			if len(body) > 0 && c.media != nil && isSDP(req) {
				if out, err := c.media.anchor(body, media.A); err == nil {
					body = out
				}
			}
			ack, transport = br.ackFor(s, body), br.transport
		}
		answered := c.answer != nil // the caller was sent a 2xx
		c.mu.Unlock()
		c.post(event{ev: call.Event{Kind: call.Ack}})
		// The caller has the 2xx: nothing is left for its INVITE transaction
		// to absorb, so it need not wait out Timer L (32 s of memory per call).
		// A stray ACK before any answer leaves the ringing INVITE alone.
		if answered {
			c.tx.Terminate()
		}
		if ack != nil {
			c.post(event{out: ack, outTransport: transport})
		}
		return
	}
	p := c.pendingAck
	if p == nil || p.from != ref.side || p.inSeq != seq {
		c.mu.Unlock()
		return // an ACK of a non-2xx, or a stray one
	}
	c.pendingAck = nil
	ack := p.out.request(sip.ACK, p.outSeq, s.contact)
	body := req.Body()
	if len(body) > 0 && c.media != nil && isSDP(req) {
		if out, err := c.media.anchor(body, mediaSide(ref.side)); err == nil {
			body = out
		}
	}
	if len(body) > 0 {
		ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		ack.SetBody(body)
	}
	transport := p.out.transport
	c.mu.Unlock()
	c.post(event{out: ack, outTransport: transport})
}

// pendingAck maps the ACK of a forwarded re-INVITE's 2xx to the other
// dialog.
type pendingAck struct {
	from   call.Side
	inSeq  uint32
	out    *leg
	outSeq uint32
}

func mediaSide(s call.Side) media.Side {
	if s == call.Caller {
		return media.A
	}
	return media.B
}

// forward passes a request within the dialog to the other side and its
// final answer back: re-INVITE and UPDATE (hold, resume, codec change) with
// the media anchored again, INFO, NOTIFY, OPTIONS, MESSAGE, PRACK.
func (c *Call) forward(ref dialogRef, req *sip.Request, tx sip.ServerTransaction) {
	s := c.svc
	offer := req.Method == sip.INVITE || req.Method == sip.UPDATE
	c.mu.Lock()
	var out *leg
	var in *leg
	if ref.side == call.Caller {
		in = &c.a
		if br := c.peerBranch(); br != nil {
			out = &br.leg
		}
	} else {
		in = &c.branches[ref.branch].leg
		if c.fsm.Winner() == ref.branch || c.fsm.State() < call.Answered {
			out = &c.a
		}
	}
	if out == nil || c.fsm.State() == call.Ended {
		c.mu.Unlock()
		respond(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
		return
	}
	if req.Method == sip.INVITE {
		if c.reInvite {
			c.mu.Unlock()
			// RFC 3261 §14.2: one INVITE transaction at a time.
			respond(tx, req, sip.StatusRequestPending, "Request Pending", sip.NewHeader("Retry-After", "1"))
			return
		}
		c.reInvite = true
	}
	if ct := req.Contact(); ct != nil && offer {
		in.remoteTarget = *ct.Address.Clone() // target refresh (§12.2.2)
	}
	fwd := out.request(req.Method, 0, s.contact)
	copyHeaders(fwd, req, endToEndNoType...)
	copyHeaders(fwd, req, "Reason", "Subject", "Priority")
	if req.Method == sip.PRACK {
		if br := c.peerBranch(); br != nil {
			fwd.RemoveHeader("RAck")
			fwd.AppendHeader(sip.NewHeader("RAck", rack(req, br.req.CSeq().SeqNo)))
		}
	}
	body := req.Body()
	if len(body) > 0 && offer && c.media != nil && isSDP(req) {
		if b, err := c.media.anchor(body, mediaSide(ref.side)); err == nil {
			body = b
		} else {
			c.reInvite = c.reInvite && req.Method != sip.INVITE
			c.mu.Unlock()
			respond(tx, req, sip.StatusBadRequest, "Bad Request (SDP: "+err.Error()+")")
			return
		}
	}
	if len(body) > 0 {
		if ct := sipwire.Header(req, "Content-Type"); ct != nil {
			fwd.AppendHeader(sip.NewHeader("Content-Type", ct.Value()))
		}
		fwd.SetBody(body)
	}
	transport := out.transport
	outSeq := fwd.CSeq().SeqNo
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(s.ctx, 32*time.Second)
	defer cancel()
	res, err := s.do(ctx, fwd, transport, false)

	c.mu.Lock()
	if req.Method == sip.INVITE {
		c.reInvite = false
	}
	if err != nil {
		c.mu.Unlock()
		respond(tx, req, sip.StatusRequestTimeout, "Request Timeout (no answer from the other side)")
		return
	}
	answer := sipwire.Response(req, res.StatusCode, res.Reason, "")
	copyHeaders(answer, res, endToEnd...)
	if offer && res.IsSuccess() {
		answer.AppendHeader(&sip.ContactHeader{Address: in.contactFor(s.contact, nil)})
		if ct := res.Contact(); ct != nil {
			out.remoteTarget = *ct.Address.Clone()
		}
		c.lastRef = time.Now()
		if iv := sessionInterval(res); iv > 0 {
			c.refresh = iv
		}
	}
	rb := res.Body()
	if len(rb) > 0 && offer && c.media != nil && isSDP(res) {
		if b, err := c.media.anchor(rb, mediaSide(1-ref.side)); err == nil {
			rb = b
		}
	}
	if len(rb) > 0 {
		answer.SetBody(rb)
	}
	if req.Method == sip.INVITE && res.IsSuccess() {
		c.pendingAck = &pendingAck{from: ref.side, inSeq: req.CSeq().SeqNo, out: out, outSeq: outSeq}
	}
	c.mu.Unlock()
	if err := tx.Respond(answer); err != nil {
		s.log.Debug("in-dialog answer not sent", "call", c.id, "method", req.Method, "err", err)
	}
}

// peerBranch is the branch the caller's dialog is joined to: the winner,
// or before an answer the branch whose early dialog the caller heard last.
// Called with the call's mutex held.
func (c *Call) peerBranch() *branch {
	if w := c.fsm.Winner(); w >= 0 {
		return c.branches[w]
	}
	var last *branch
	for _, br := range c.branches {
		if br.remoteTag != "" {
			last = br
		}
	}
	return last
}

// rack rewrites a PRACK's RAck (RFC 3262 §7.2: response-num CSeq-num
// method) to the CSeq number of the INVITE on the callee's side.
func rack(req *sip.Request, inviteSeq uint32) string {
	h := sipwire.Header(req, "RAck")
	if h == nil {
		return ""
	}
	f := strings.Fields(h.Value())
	if len(f) != 3 {
		return h.Value()
	}
	return fmt.Sprintf("%s %s %s", f[0], strconv.FormatUint(uint64(inviteSeq), 10), f[2])
}
