package sim

import (
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Building and relaying the messages the provider forwards.

// client is the sipgo client for a transport.
func (p *Provider) client(transport string) *sipgo.Client {
	if sip.IsReliable(transport) {
		return p.tcpClient
	}
	return p.udpClient
}

// addressed sets where a request goes: transport, destination, and over
// UDP the listening socket as the source.
func (p *Provider) addressed(req *sip.Request, h hop) {
	req.SetTransport(h.transport)
	req.SetDestination(h.addr)
	if sip.IsReliable(h.transport) {
		req.Laddr = sip.Addr{}
	} else {
		req.Laddr = p.laddr
	}
}

// asBuilt is the client option for requests the provider built whole.
func asBuilt(*sipgo.Client, *sip.Request) error { return nil }

// via is the provider's Via for a request going over transport (RFC 3261
// §16.6 step 8, §18.1.1).
func (p *Provider) via(transport, branch string) *sip.ViaHeader {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: transport,
		Host: strings.Trim(p.host, "[]"), Port: p.port, Params: sip.NewParams()}
	v.Params.Add("branch", branch)
	return v
}

// recordRoute is this provider's Record-Route value for a transport.
func (p *Provider) recordRoute(transport string) string {
	return "<sip:" + p.host + ":" + strconv.Itoa(p.port) + ";lr;transport=" + strings.ToLower(transport) + ">"
}

// decMaxForwards decrements Max-Forwards, or sets 70 when absent (§16.6
// step 3). sipgo's clone shares the header with the original, so it is
// replaced, not changed in place.
func decMaxForwards(req *sip.Request) {
	n := 70
	if mf := req.MaxForwards(); mf != nil {
		n = int(mf.Val()) - 1
	}
	v := sip.MaxForwardsHeader(uint32(max(n, 0)))
	if req.MaxForwards() != nil {
		req.ReplaceHeader(&v)
	} else {
		req.AppendHeader(&v)
	}
}

// upstream is where responses to req go: what sipgo itself would use.
func upstream(req *sip.Request) string {
	return sip.NewResponseFromRequest(req, 100, "Trying", nil).Destination()
}

// relayed is a response received from the next hop as it goes upstream
// (RFC 3261 §16.7 step 3): without this provider's Via, with body as the
// new body, to dest over transport.
func relayed(res *sip.Response, transport, dest string, body []byte) *sip.Response {
	out := sip.NewResponse(res.StatusCode, res.Reason)
	out.SipVersion = res.SipVersion
	viaSkipped := false
	for _, h := range res.Headers() {
		switch {
		case !viaSkipped && strings.EqualFold(h.Name(), "Via"):
			viaSkipped = true
			continue
		case strings.EqualFold(h.Name(), "Content-Length"):
			continue
		}
		out.AppendHeader(sip.HeaderClone(h))
	}
	out.SetBody(body)
	out.SetTransport(transport)
	out.SetDestination(dest)
	return out
}

// onStrayResponse forwards a response no client transaction matches, such
// as a 2xx retransmitted after the transaction ended: statelessly, to the
// next Via (RFC 3261 §16.7, §16.11).
func (p *Provider) onStrayResponse(res *sip.Response) {
	vias := res.GetHeaders("Via")
	if len(vias) < 2 {
		return
	}
	top, ok := vias[0].(*sip.ViaHeader)
	next, ok2 := vias[1].(*sip.ViaHeader)
	if !ok || !ok2 || !p.self.owns(sip.Uri{Host: top.Host, Port: top.Port}) {
		return
	}
	body := res.Body()
	if c := p.activeCall(callID(res)); c != nil && c.media != nil && isSDP(res) {
		if b, err := c.media.rewrite(body, c.answerSide(res)); err == nil {
			body = b
		}
	}
	host, port := next.Host, next.Port
	if r, ok := next.Params.Get("received"); ok && r != "" {
		host = r
	}
	if rp, ok := next.Params.Get("rport"); ok && rp != "" {
		if n, err := strconv.Atoi(rp); err == nil {
			port = n
		}
	}
	if port == 0 {
		port = 5060
	}
	out := relayed(res, next.Transport, net.JoinHostPort(host, strconv.Itoa(port)), body)
	if err := p.ua.TransportLayer().WriteMsg(out); err != nil {
		p.log.Debug("stray response not forwarded", "status", res.StatusCode, "err", err)
	}
}
