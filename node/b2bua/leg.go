package b2bua

import (
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/sipwire"
)

// leg is one dialog the node takes part in: with the caller (where the node
// is the UAS) or with one branch toward the callee (where it is the UAC).
// Guarded by the call's mutex.
type leg struct {
	callID       string
	localTag     string
	remoteTag    string
	localURI     sip.Uri // our side of From/To in this dialog
	remoteURI    sip.Uri
	remoteTarget sip.Uri   // Contact of the peer (RFC 3261 §12.1)
	routes       []sip.Uri // route set
	dest         string    // where requests go: the address the peer's messages came from
	transport    string
	cseq         uint32 // last local CSeq number used
}

// requestParts are the headers request makes for one request, with their
// parameter lists, in one allocation: a call's requests (INVITE, ACK,
// BYE) were a seventh of a node's allocations under call load, a dozen
// small objects each.
type requestParts struct {
	req     sip.Request // the request itself
	from    sip.FromHeader
	to      sip.ToHeader
	callID  sip.CallIDHeader
	cseq    sip.CSeqHeader
	maxf    sip.MaxForwardsHeader
	contact sip.ContactHeader
	clen    sip.ContentLengthHeader
	kv      [6]sip.HeaderKV
}

// request builds a request within the dialog (RFC 3261 §12.2.1.1). ACK
// and CANCEL take the number they are given; others take the next one.
// Nothing in it is shared with the leg or with another request.
func (l *leg) request(method sip.RequestMethod, seq uint32, contact sip.Uri) *sip.Request {
	if seq == 0 {
		l.cseq++
		seq = l.cseq
	}
	// The request itself is one of the parts, and the Request-URI's
	// parameter lists come from the parts' buffer; its headers are put in
	// at once (sipwire.PutHeaders). sip.NewRequest allocates the request, a
	// list of ten and copies of the URI's lists.
	p := new(requestParts)
	buf := sipwire.NewParamBuf(p.kv[:])
	req := &p.req
	req.SipVersion = "SIP/2.0"
	req.Method = method
	req.Recipient = buf.URI(&l.remoteTarget)
	p.from = sip.FromHeader{Address: buf.URI(&l.localURI), Params: buf.Copy(nil, 1)}
	p.from.Params.Add("tag", l.localTag)
	p.to = sip.ToHeader{Address: buf.URI(&l.remoteURI), Params: buf.Copy(nil, 1)}
	if l.remoteTag != "" {
		p.to.Params.Add("tag", l.remoteTag)
	}
	p.callID = sip.CallIDHeader(l.callID)
	p.cseq = sip.CSeqHeader{SeqNo: seq, MethodName: method}
	p.maxf = 70
	var hs [10]sip.Header
	h := append(hs[:0], &p.from, &p.to, &p.callID, &p.cseq, &p.maxf)
	for _, r := range l.routes {
		h = append(h, &sip.RouteHeader{Address: *r.Clone()})
	}
	switch method {
	case sip.INVITE, sip.UPDATE, sip.SUBSCRIBE, sip.NOTIFY, sip.REFER:
		p.contact = sip.ContactHeader{Address: l.contactFor(contact, &buf)}
		h = append(h, &p.contact)
	}
	// Content-Length is mandatory on stream transports (RFC 3261 §20.14);
	// a body set later replaces it. (What SetBody(nil) would add, without
	// the allocation it makes whatever it finds.)
	h = append(h, &p.clen)
	sipwire.PutHeaders(&req.MessageData, h)
	req.SetTransport(l.transport)
	req.SetDestination(l.dest)
	return req
}

// contactFor is our Contact URI in this dialog: the edge's address, with
// the transport named when it is not UDP. Its parameter lists come from
// buf (nil: allocated).
func (l *leg) contactFor(base sip.Uri, buf *sipwire.ParamBuf) sip.Uri {
	u := buf.URI(&base)
	if sip.IsReliable(l.transport) {
		u.UriParams = buf.Copy(nil, 1)
		u.UriParams.Add("transport", "tcp")
	}
	return u
}

// routeSet reads a route set from Record-Route headers: in order for the
// UAS side (§12.1.1), reversed for the UAC side (§12.1.2).
func routeSet(m interface{ Headers() []sip.Header }, reverse bool) []sip.Uri {
	var out []sip.Uri
	for h := range sipwire.Headers(m, "Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			out = append(out, *rr.Address.Clone())
			continue
		}
		var u sip.Uri
		v := h.Value()
		if len(v) > 1 && v[0] == '<' {
			if i := strings.IndexByte(v, '>'); i > 0 {
				v = v[1:i]
			}
		}
		if sip.ParseUri(v, &u) == nil {
			out = append(out, u)
		}
	}
	if reverse {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}

// copyHeaders copies the named headers from one message to another.
func copyHeaders(dst interface{ AppendHeader(sip.Header) }, src interface{ Headers() []sip.Header }, names ...string) {
	// One pass over src, names compared without case as sipgo's
	// GetHeaders does: a GetHeaders per name lowercased every header of
	// the message once per name, a few percent of a node's CPU under load.
	for _, h := range src.Headers() {
		n := h.Name()
		for _, want := range names {
			if sipwire.SameName(n, want) {
				dst.AppendHeader(sip.NewHeader(n, h.Value()))
				break
			}
		}
	}
}

// endToEnd are the headers a call passes between its dialogs in requests
// and responses: capabilities, session timers (RFC 4028), reliable
// provisionals (RFC 3262) and the body's description.
var endToEnd = []string{"Allow", "Supported", "Require", "Session-Expires", "Min-SE", "RSeq", "Accept", "Content-Type", "Content-Disposition", "Event", "Subscription-State", "Info-Package", "Recv-Info"}
