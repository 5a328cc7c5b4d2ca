package sipwire

import (
	"net"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// Response builds the response to a request read from the network, as
// sip.NewResponseFromRequest does (RFC 3261 §8.2.6): the same status line,
// the same headers in the same order, deeply equal, with the same
// destination. It differs in what it allocates and in one choice:
//
//   - The copies of the top Via, From, To, Call-ID, CSeq and
//     Content-Length, and of their parameter lists, share one allocation;
//     sipgo makes each apart (17 allocations for a 180 to SIPp's INVITE).
//     sipgo shares the request's Call-ID header instead of copying it,
//     which keeps the whole parsed request alive for as long as a
//     transaction keeps the response to retransmit.
//   - toTag, when not empty, is the To tag: put there, or replacing the
//     request's. A B2BUA answers each request of a leg with the leg's own
//     tag, and sipgo would first draw a random one (a UUID read from the
//     system's random source) for it to replace. When toTag is empty the
//     rule is sipgo's: a response other than 100 to a request without a To
//     tag gets a random one.
//
// As with sipgo's, the copies are the response's own: changing them (a
// Via's received parameter, the To tag) leaves the request as it was.
//
// req must be a request read from the network: sipgo sends the response
// of one it resolved itself to an address this package cannot read.
func Response(req *sip.Request, code int, reason string, toTag string) *sip.Response {
	// The response is part of the arena: NewResponse's copy is on the
	// stack.
	a := new(replyArena)
	a.res = *sip.NewResponse(code, reason)
	res := &a.res
	res.SipVersion = req.SipVersion
	a.buf = NewParamBuf(a.kv[:])

	// RFC 3261 §12.1.1 and Table 3 of §20: Record-Route is copied into
	// the responses that may make a dialog.
	allowedMethod := req.Method != sip.REGISTER && !req.IsAck()
	allowedStatus := (code >= 180 && code < 190) || (code >= 200 && code < 300)
	earlyInvite := req.IsInvite() && code > 100 && code < 200
	if allowedMethod && (allowedStatus || earlyInvite) {
		for h := range Headers(req, "Record-Route") {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}

	first := true
	for h := range Headers(req, "Via") {
		v, ok := h.(*sip.ViaHeader)
		if !ok || !first {
			res.AppendHeader(sip.HeaderClone(h))
			continue
		}
		first = false
		// RFC 3581 §4: an rport without a value is answered with the
		// source port, and the source address as received.
		rport := false
		if val, ok := v.Params.Get("rport"); ok && val == "" {
			rport = true
		}
		a.via = sip.ViaHeader{ProtocolName: v.ProtocolName, ProtocolVersion: v.ProtocolVersion,
			Transport: v.Transport, Host: v.Host, Port: max(v.Port, 0)}
		if v.Params != nil {
			extra := 0
			if rport {
				extra = 2
			}
			a.via.Params = a.buf.Copy(v.Params, extra)
		}
		res.AppendHeader(&a.via)
		if rport {
			host, port, _ := net.SplitHostPort(req.Source())
			a.via.Params.Add("rport", port)
			a.via.Params.Add("received", host)
		}
	}

	if h := req.From(); h != nil {
		a.from = sip.FromHeader{DisplayName: h.DisplayName, Address: a.buf.URI(&h.Address)}
		if h.Params != nil {
			a.from.Params = a.buf.Copy(h.Params, 0)
		}
		res.AppendHeader(&a.from)
	}
	if h := req.To(); h != nil {
		a.to = sip.ToHeader{DisplayName: h.DisplayName, Address: a.buf.URI(&h.Address)}
		if h.Params != nil || toTag != "" {
			a.to.Params = a.buf.Copy(h.Params, 1)
		}
		res.AppendHeader(&a.to)
	}
	if h := req.CallID(); h != nil {
		a.callID = *h
		res.AppendHeader(&a.callID)
	}
	if h := req.CSeq(); h != nil {
		a.cseq = *h
		res.AppendHeader(&a.cseq)
	}

	if code == sip.StatusTrying {
		for h := range Headers(req, "Timestamp") {
			res.AppendHeader(sip.HeaderClone(h))
		}
	}
	if to := res.To(); to != nil {
		switch {
		case toTag != "":
			to.Params.Add("tag", toTag) // Add replaces a value already there
		case code != sip.StatusTrying && !to.Params.Has("tag"):
			to.Params.Add("tag", uuid.NewString())
		}
	}

	// What SetBody(nil) adds (sip.MessageData.SetBody allocates it
	// whatever it finds), from the arena; the body is nil already.
	res.AppendHeader(&a.clen)
	res.SetTransport(req.Transport())
	res.SetDestination(req.Source())
	return res
}

// replyArena holds what Response copies from the request.
type replyArena struct {
	res    sip.Response
	via    sip.ViaHeader
	from   sip.FromHeader
	to     sip.ToHeader
	callID sip.CallIDHeader
	cseq   sip.CSeqHeader
	clen   sip.ContentLengthHeader
	// Room for a usual response's parameters (a Via's branch, rport and
	// received, the two tags, a URI parameter or two) in the same
	// allocation size as sipgo's copies; more are allocated.
	kv  [8]sip.HeaderKV
	buf ParamBuf // hands out kv
}

// ParamBuf hands out header parameter lists from a buffer the caller
// allocated with the message's headers, so that a message built by hand
// costs one allocation for its headers rather than one per list. A nil
// or exhausted ParamBuf allocates each list on its own.
type ParamBuf struct{ free []sip.HeaderKV }

// NewParamBuf hands out lists from buf.
func NewParamBuf(buf []sip.HeaderKV) ParamBuf { return ParamBuf{free: buf} }

// Copy copies p with room for extra more; nil stays nil unless extra asks
// for room. The copy's capacity ends at that room, so that appending
// beyond it moves the copy rather than writing over the next list.
func (b *ParamBuf) Copy(p sip.HeaderParams, extra int) sip.HeaderParams {
	if p == nil && extra == 0 {
		return nil
	}
	need := len(p) + extra
	if b == nil || need > len(b.free) {
		c := make(sip.HeaderParams, len(p), need)
		copy(c, p)
		return c
	}
	c := sip.HeaderParams(b.free[:len(p):need])
	copy(c, p)
	b.free = b.free[need:]
	return c
}

// URI copies u as Uri.Clone does, its parameter lists from the buffer.
func (b *ParamBuf) URI(u *sip.Uri) sip.Uri {
	c := *u
	if u.UriParams != nil {
		c.UriParams = b.Copy(u.UriParams, 0)
	}
	if u.Headers != nil {
		c.Headers = b.Copy(u.Headers, 0)
	}
	return c
}
