package sim

import (
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/media/sdpedit"
)

// farEnd is a call the provider answered as the far end: a UAS (RFC 3261
// §13.3) with a tone endpoint.
type farEnd struct {
	ep     *toneEndpoint
	answer []byte        // the SDP answer, repeated to re-offers
	ok     *sip.Response // the 200, retransmitted until the ACK (§13.3.1.4)
	acked  chan struct{} // closed by the ACK
	once   sync.Once
}

func (f *farEnd) ack()  { f.once.Do(func() { close(f.acked) }) }
func (f *farEnd) stop() { f.ep.stop() }

// pcmu is the format the far end speaks.
var pcmu = sdpedit.Format{PT: 0, Name: "PCMU", Clock: 8000, Channels: 1}

// answerFarEnd answers the INVITE as the far end: 180, then (after the
// configured ring) 200 with an SDP answer for PCMU; the tone starts and
// plays until the BYE. With media configured the far end sits behind the
// provider's relay, so the impairment applies to what it sends and gets.
func (p *Provider) answerFarEnd(inv *invite) {
	req, c := inv.req, inv.c
	if c == nil {
		inv.fail(sip.StatusLoopDetected, "Loop Detected (the call is here already)")
		return
	}
	if !isSDP(req) {
		inv.fail(sip.StatusNotAcceptableHere, "Not Acceptable Here (an SDP offer is required)")
		return
	}
	offer, err := sdpedit.Parse(req.Body())
	if err != nil {
		inv.fail(sip.StatusBadRequest, "Bad Request (SDP)")
		return
	}
	bind, adv := p.mediaAddrs()
	ep, err := p.newToneEndpoint(bind, adv)
	if err != nil {
		inv.fail(sip.StatusServiceUnavailable, "Service Unavailable (no media socket)")
		return
	}
	far := &farEnd{ep: ep, acked: make(chan struct{})}
	p.mu.Lock()
	c.far = far // endCall stops it from now on
	c.rec.FarEnd = true
	p.mu.Unlock()

	answerAt := ep.addr()
	var legA, legB *media.Leg
	if p.relay != nil {
		sess, err := p.relay.Open(inv.id)
		if err != nil {
			inv.fail(sip.StatusServiceUnavailable, "Service Unavailable (no media ports)")
			return
		}
		p.anchorCall(c, sess)
		legA, legB = sess.Leg(media.A), sess.Leg(media.B)
		answerAt, _ = legA.Local()
	}
	body, idx, sends, err := farEndAnswer(offer, answerAt, randomID())
	if err != nil {
		inv.fail(sip.StatusNotAcceptableHere, "Not Acceptable Here (PCMU audio required)")
		return
	}
	far.answer = body
	offered := offer.Media[idx]
	dst := netip.AddrPortFrom(offered.Addr, uint16(offered.Port))
	if legA != nil {
		legA.Signal(media.RemoteFromSDP(offered))
		legB.Signal(media.Remote{RTP: ep.local(), RTCPMux: true, Sends: sends, Formats: []sdpedit.Format{pcmu}, PtimeMs: 20})
		dst, _ = legB.Local()
	}

	toTag := sip.GenerateTagN(16)
	_ = inv.tx.Respond(p.uasResponse(req, sip.StatusRinging, "Ringing", toTag, nil))
	if ring := time.Duration(p.cfg.RingMs) * time.Millisecond; ring > 0 {
		t := time.NewTimer(ring)
		select {
		case <-t.C:
		case <-inv.cancelled:
		case <-p.ctx.Done():
			t.Stop()
			inv.abandon()
			return
		}
		t.Stop()
	}
	if inv.isCancelled() {
		inv.finishCancelled()
		return
	}
	ok := p.uasResponse(req, sip.StatusOK, "OK", toTag, body)
	ok.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	far.ok = ok
	inv.finish(sip.StatusOK)
	_ = inv.tx.Respond(ok)
	if inv.isCancelled() { // the CANCEL came first: the caller got 487
		inv.recountCancelled()
		return
	}
	p.count(func(c *Counters) { c.Terminated++ })
	if sends && dst.IsValid() && !dst.Addr().IsUnspecified() {
		ep.play(dst)
	}
	if !sip.IsReliable(req.Transport()) {
		p.spawn(func() { p.retransmitOK(inv, far) })
	}
}

// mediaAddrs are where the far end's RTP socket binds and what it
// advertises: the relay's address with media, the SIP address without.
func (p *Provider) mediaAddrs() (bind, adv netip.Addr) {
	if p.relay != nil {
		rc := p.relay.Config()
		return rc.Bind, rc.AdvertiseAddr()
	}
	b, _, _ := splitHostPort(p.cfg.SIP)
	a, _ := netip.ParseAddr(p.self.hosts[0])
	return b, a
}

// uasResponse is the far end's answer to req with its To tag and Contact.
func (p *Provider) uasResponse(req *sip.Request, code int, reason, toTag string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	if to := res.To(); to != nil {
		to.Params.Add("tag", toTag) // one tag for every response (§8.2.6.2)
	}
	res.AppendHeader(p.contact(req))
	return res
}

// contact is the far end's Contact, over the transport the request came on.
func (p *Provider) contact(req *sip.Request) *sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", User: req.Recipient.User, Host: p.host, Port: p.port}
	if sip.IsReliable(req.Transport()) {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", "tcp")
	}
	return &sip.ContactHeader{Address: u}
}

// retransmitOK sends the 200 again over UDP until the ACK comes: T1,
// doubling up to T2, for 64·T1 (RFC 3261 §13.3.1.4). Without an ACK the
// call ends.
func (p *Provider) retransmitOK(inv *invite, far *farEnd) {
	interval := sip.T1
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	for {
		t := time.NewTimer(interval)
		select {
		case <-far.acked:
			t.Stop()
			return
		case <-far.ep.done:
			t.Stop()
			return
		case <-p.ctx.Done():
			t.Stop()
			return
		case <-deadline.C:
			t.Stop()
			p.log.Info("far end: no ACK for the 200, call ended", "call", inv.id)
			p.endCall(inv.c)
			return
		case <-t.C:
		}
		if err := inv.tx.Respond(far.ok); err != nil {
			// The transaction is gone (Timer L): the 2xx goes statelessly.
			_ = p.ua.TransportLayer().WriteMsg(far.ok)
		}
		interval = min(2*interval, sip.T2)
	}
}

// farEndRequest answers a request within a call the provider answered as
// the far end.
func (p *Provider) farEndRequest(c *call, req *sip.Request, tx sip.ServerTransaction) {
	p.count(func(c *Counters) { c.InDialog++ })
	switch req.Method {
	case sip.BYE:
		p.endCall(c)
		reply(tx, req, sip.StatusOK, "OK")
	case sip.INVITE, sip.UPDATE:
		// A re-offer gets the same answer: the far end changes nothing.
		res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
		res.AppendHeader(p.contact(req))
		if isSDP(req) {
			if offer, err := sdpedit.Parse(req.Body()); err == nil && c.media != nil {
				if i := audioIndex(offer); i >= 0 {
					c.media.sess.Leg(media.A).Signal(media.RemoteFromSDP(offer.Media[i]))
				}
			}
			res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			res.SetBody(c.far.answer)
		}
		_ = tx.Respond(res)
	case sip.CANCEL:
		reply(tx, req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
	default:
		reply(tx, req, sip.StatusOK, "OK")
	}
}

// reply answers a request with a response of the provider's own.
func reply(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}
