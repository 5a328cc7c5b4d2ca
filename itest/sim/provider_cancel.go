package sim

import (
	"context"

	"github.com/emiago/sipgo/sip"
)

// cancelBranch sends CANCEL for a forwarded INVITE (RFC 3261 §9.1, §16.10):
// its Request-URI, Call-ID, From, To, CSeq number, Route and its top Via
// alone.
func (p *Provider) cancelBranch(inv *sip.Request, h hop) {
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	for _, name := range []string{"Route", "From", "To", "Call-ID"} {
		for _, hd := range inv.GetHeaders(name) {
			req.AppendHeader(sip.HeaderClone(hd))
		}
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	p.addressed(req, h)
	p.spawn(func() {
		ctx, cancel := context.WithTimeout(p.ctx, cancelGrace)
		defer cancel()
		if _, err := p.client(h.transport).Do(ctx, req, asBuilt); err != nil {
			p.log.Debug("CANCEL unanswered", "call", callID(inv), "err", err)
		}
	})
}

// hangUp ends a dialog the caller will never see, because the caller has
// its final answer already: the 2xx is acknowledged and a BYE follows, both
// along the route set the 2xx gives this provider toward the callee
// (RFC 3261 §12.1.2: the Record-Route values added after its own, in
// reverse).
func (p *Provider) hangUp(fwd *sip.Request, res *sip.Response, h hop) {
	rr, _ := routeEntries(res, "Record-Route")
	var routes []routeEntry
	for i := 0; i < len(rr) && !p.self.owns(rr[i].uri); i++ {
		routes = append([]routeEntry{rr[i]}, routes...)
	}
	target := *fwd.Recipient.Clone()
	if ct := res.Contact(); ct != nil {
		target = *ct.Address.Clone()
	}
	next := target
	if len(routes) > 0 {
		next = routes[0].uri
	}
	nh, err := hopOf(next)
	if err != nil {
		nh = h
	}
	build := func(method sip.RequestMethod, seq uint32) *sip.Request {
		req := sip.NewRequest(method, target)
		req.AppendHeader(p.via(nh.transport, sip.GenerateBranch()))
		req.AppendHeader(sip.HeaderClone(fwd.From()))
		req.AppendHeader(sip.HeaderClone(res.To()))
		req.AppendHeader(sip.HeaderClone(fwd.CallID()))
		req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
		setRoutes(req, routes)
		req.SetBody(nil)
		p.addressed(req, nh)
		return req
	}
	seq := fwd.CSeq().SeqNo
	if err := p.client(nh.transport).WriteRequest(build(sip.ACK, seq), asBuilt); err != nil {
		p.log.Debug("ACK of a stray 2xx not sent", "call", callID(fwd), "err", err)
	}
	bye := build(sip.BYE, seq+1)
	bye.AppendHeader(sip.NewHeader("Reason", `SIP;cause=487;text="Request Terminated"`))
	p.spawn(func() {
		ctx, cancel := context.WithTimeout(p.ctx, cancelGrace)
		defer cancel()
		if _, err := p.client(nh.transport).Do(ctx, bye, asBuilt); err != nil {
			p.log.Debug("BYE of a stray 2xx unanswered", "call", callID(fwd), "err", err)
		}
	})
}
