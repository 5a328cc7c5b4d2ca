package sipedge

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/node/siptx"
)

// maxUDPRequest is the size above which a request goes over TCP when the
// path MTU is unknown (RFC 3261 §18.1.1).
const maxUDPRequest = 1300

// Qualify sends OPTIONS to a registered contact and returns its answer:
// it tells whether the phone is still reachable. The request follows the
// path the registration came by (RFC 3261 §10.3, RFC 3581): to the source
// address of the REGISTER, over TCP on the same connection when the
// contact registered over TCP, over UDP otherwise — and over TCP when the
// request would exceed 1300 bytes (§18.1.1). extra headers are added as
// given (for instance a large header that forces TCP).
func (s *Server) Qualify(ctx context.Context, b Binding, extra ...sip.Header) (*sip.Response, error) {
	var uri sip.Uri
	if err := sip.ParseUri(b.URI, &uri); err != nil {
		return nil, fmt.Errorf("qualify %s: contact URI: %w", b.AOR, err)
	}
	req := sip.NewRequest(sip.OPTIONS, uri)
	user, _, _ := strings.Cut(b.AOR, "@")
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: s.cfg.Domain}}
	req.AppendHeader(to)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", Host: s.cfg.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(10))
	req.AppendHeader(from)
	callID := sip.CallIDHeader(sip.GenerateTagN(16) + "@" + s.cfg.Domain)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.AppendHeader(sip.NewHeader("User-Agent", s.name))
	req.SetBody(nil)
	for _, h := range extra {
		req.AppendHeader(h)
	}
	dest, transport := b.Route()
	req.SetTransport(transport)
	req.SetDestination(dest)
	host, _, _ := net.SplitHostPort(s.Addr())
	siptx.AddVia(req, host, 0)
	if len(req.String()) > maxUDPRequest {
		transport = "TCP"
		req.SetTransport(transport)
		req.Via().Transport = transport
	}
	res, err := s.txl.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("qualify %s at %s over %s: %w", b.AOR, b.Source, transport, err)
	}
	return res, nil
}
