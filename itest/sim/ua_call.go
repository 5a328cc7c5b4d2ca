package sim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media/rtpstats"
	"github.com/callmesh/callmesh/media/sdpedit"
)

// UACall is one call of a user agent, placed or answered, from its answer
// to its BYE. Its methods are safe for concurrent use.
type UACall struct {
	ua     *UA
	callID string
	local  []byte // the SDP the user agent sent (re-offers get it again)
	media  *uaRTP

	out *sipgo.DialogClientSession // placed calls
	in  *sipgo.DialogServerSession // answered calls

	once   sync.Once
	ended  chan struct{}
	mu     sync.Mutex
	remote bool // the other side sent the BYE
}

// CallError is a call that failed: the final status the node answered, or
// 0 with Err when no final answer came.
type CallError struct {
	Status int
	Reason string
	Err    error
}

func (e *CallError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("call failed: %v", e.Err)
	}
	return fmt.Sprintf("call failed: %d %s", e.Status, e.Reason)
}

func (e *CallError) Unwrap() error { return e.Err }

// Done is closed when the call has ended, by either side.
func (c *UACall) Done() <-chan struct{} { return c.ended }

// EndedByRemote reports whether the other side sent the BYE.
func (c *UACall) EndedByRemote() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remote
}

// Received is what arrived of the far end's RTP so far (RFC 3550
// statistics).
func (c *UACall) Received() rtpstats.Stats { return c.media.stats() }

// Dial calls target (a user name of the federation or a number "+…")
// through the user agent's node and returns once the call is answered and
// acknowledged, with the tone playing. A call that fails returns a
// *CallError with the node's final status. Cancelling ctx while the call
// rings sends CANCEL.
func (u *UA) Dial(ctx context.Context, target string) (*UACall, error) {
	if target == "" {
		return nil, errors.New("dial: no target")
	}
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil, errors.New("dial: user agent closed")
	}
	u.counters.Placed++
	u.mu.Unlock()
	m, err := newUARTP(u.bind, u.AOR(), u.cfg.ToneHz)
	if err != nil {
		return nil, fmt.Errorf("dial %s: RTP socket: %w", target, err)
	}
	c := &UACall{ua: u, media: m, ended: make(chan struct{})}
	c.local = uaSDP(u.cfg.User, m.Addr(), true, true)
	// The Request-URI names the node's address (an alias of the domain),
	// so that the CANCEL sipgo builds from it reaches the node too.
	host, port := u.registrarHostPort()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: target, Host: host, Port: port})
	req.SetDestination(u.cfg.Registrar)
	req.SetTransport("UDP")
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: u.cfg.User, Host: u.cfg.Domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target, Host: u.cfg.Domain}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(c.local)
	d, err := u.out.WriteInvite(ctx, req)
	if err != nil {
		m.stop()
		return nil, &CallError{Err: err}
	}
	c.out = d
	c.callID = req.CallID().Value()
	err = d.WaitAnswer(ctx, sipgo.AnswerOptions{Username: u.cfg.User, Password: u.cfg.Password})
	if err != nil {
		m.stop()
		_ = d.Close()
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			return nil, &CallError{Status: de.Res.StatusCode, Reason: de.Res.Reason}
		}
		if ctx.Err() != nil {
			return nil, &CallError{Status: sip.StatusRequestTerminated, Reason: "Request Terminated", Err: ctx.Err()}
		}
		return nil, &CallError{Err: err}
	}
	if err := d.Ack(ctx); err != nil {
		m.stop()
		_ = d.Close()
		return nil, &CallError{Err: fmt.Errorf("ACK: %w", err)}
	}
	u.mu.Lock()
	u.counters.Answered++
	u.calls[c.callID] = c
	u.mu.Unlock()
	if rtpDst, rtcpDst, _, ok := peerMedia(d.InviteResponse.Body()); ok {
		m.play(rtpDst, rtcpDst)
	} else {
		u.log.Warn("answer without usable audio: no media sent", "call", c.callID)
	}
	return c, nil
}

// Hangup ends the call with BYE (nothing is sent when it has ended
// already) and stops its media.
func (c *UACall) Hangup(ctx context.Context) error {
	select {
	case <-c.ended:
		return nil
	default:
	}
	var err error
	if c.out != nil {
		err = c.out.Bye(ctx)
	} else if c.in != nil {
		err = c.in.Bye(ctx)
	}
	c.end(false)
	if err != nil {
		return fmt.Errorf("BYE: %w", err)
	}
	return nil
}

// end forgets the call and stops its media, once.
func (c *UACall) end(remote bool) {
	c.once.Do(func() {
		c.mu.Lock()
		c.remote = remote
		c.mu.Unlock()
		u := c.ua
		u.mu.Lock()
		if u.calls[c.callID] == c {
			delete(u.calls, c.callID)
		}
		u.mu.Unlock()
		c.media.stop()
		if c.out != nil {
			_ = c.out.Close()
		}
		if c.in != nil {
			_ = c.in.Close()
		}
		close(c.ended)
	})
}

// call returns the call in progress with a Call-ID.
func (u *UA) call(id string) *UACall {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[id]
}

// onInvite answers a new call: 180, then (after RingFor) 200 with a PCMU
// answer; the tone starts once the ACK has come. A re-INVITE gets the same
// answer again.
func (u *UA) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if to := req.To(); to != nil {
		if _, ok := to.Params.Get("tag"); ok {
			u.reInvite(req, tx)
			return
		}
	}
	respond := func(code int, reason string) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, code, reason, nil))
	}
	rtpDst, rtcpDst, mux, ok := peerMedia(req.Body())
	if !ok {
		respond(sip.StatusNotAcceptableHere, "Not Acceptable Here (PCMU audio offer required)")
		return
	}
	d, err := u.in.ReadInvite(req, tx)
	if err != nil {
		respond(sip.StatusBadRequest, "Bad Request")
		return
	}
	m, err := newUARTP(u.bind, u.AOR(), u.cfg.ToneHz)
	if err != nil {
		_ = d.Respond(sip.StatusServiceUnavailable, "Service Unavailable (no RTP socket)", nil)
		return
	}
	c := &UACall{ua: u, callID: req.CallID().Value(), media: m, in: d,
		local: uaSDP(u.cfg.User, m.Addr(), false, mux), ended: make(chan struct{})}
	_ = d.Respond(sip.StatusRinging, "Ringing", nil)
	if u.cfg.RingFor > 0 {
		t := time.NewTimer(u.cfg.RingFor)
		select {
		case <-t.C:
		case <-tx.Done(): // cancelled
		case <-u.ctx.Done():
		}
		t.Stop()
	}
	select {
	case <-tx.Done():
		m.stop()
		_ = d.Close()
		return
	default:
	}
	u.mu.Lock()
	u.calls[c.callID] = c
	u.mu.Unlock()
	// Respond returns once the ACK has come (it retransmits the 200 until
	// then, RFC 3261 §13.3.1.4), or fails.
	if err := d.Respond(sip.StatusOK, "OK", c.local, sip.NewHeader("Content-Type", "application/sdp")); err != nil {
		u.log.Info("incoming call not established", "call", c.callID, "err", err)
		c.end(false)
		return
	}
	u.mu.Lock()
	u.counters.Received++
	u.mu.Unlock()
	m.play(rtpDst, rtcpDst)
}

// reInvite answers an offer within a call with the call's description.
func (u *UA) reInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := u.call(req.CallID().Value())
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	if rtpDst, rtcpDst, _, ok := peerMedia(req.Body()); ok {
		c.media.play(rtpDst, rtcpDst)
	}
	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", c.local)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: u.cfg.User, Host: u.bind.String(), Port: int(u.addr.Port())}})
	_ = tx.Respond(res)
}

func (u *UA) onAck(req *sip.Request, tx sip.ServerTransaction) {
	_ = u.in.ReadAck(req, tx) // an ACK of a re-INVITE matches nothing: fine
}

// onBye ends a call at the other side's request.
func (u *UA) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := u.call(req.CallID().Value())
	var err error
	switch {
	case c == nil:
		err = errors.New("no such call")
	case c.in != nil:
		err = c.in.ReadBye(req, tx)
	default:
		err = c.out.ReadBye(req, tx)
	}
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	c.end(true)
}

// uaSDP is the user agent's offer or answer: PCMU (and telephone-event in
// an offer) at addr, 20 ms packets, RTCP on the RTP port (a=rtcp, RFC 3605;
// a=rtcp-mux, RFC 5761, when offering or when the offer had it).
func uaSDP(user string, addr netip.AddrPort, offer, mux bool) []byte {
	id := randomID()
	ip := addr.Addr().Unmap().String()
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=%s %d %d IN IP4 %s\r\ns=callmesh sim\r\nc=IN IP4 %s\r\nt=0 0\r\n", user, id, id, ip, ip)
	if offer {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n", addr.Port())
	} else {
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", addr.Port())
	}
	fmt.Fprintf(&b, "a=ptime:20\r\na=rtcp:%d\r\n", addr.Port())
	if offer || mux {
		b.WriteString("a=rtcp-mux\r\n")
	}
	b.WriteString("a=sendrecv\r\n")
	return []byte(b.String())
}

// pcmuIndex is the first active RTP audio stream that carries PCMU, -1
// without one.
func pcmuIndex(s *sdpedit.Session) int {
	if s == nil {
		return -1
	}
	for i, m := range s.Media {
		if m.Kind != "audio" || m.Port == 0 || m.Secure || !strings.HasPrefix(m.Proto, "RTP/AVP") {
			continue
		}
		if _, ok := m.FormatByPT(0); ok {
			return i
		}
	}
	return -1
}

// peerMedia reads where to send RTP and RTCP from the other side's SDP,
// and whether it multiplexes RTCP on the RTP port (RFC 5761).
func peerMedia(body []byte) (rtpDst, rtcpDst netip.AddrPort, mux, ok bool) {
	s, err := sdpedit.Parse(body)
	if err != nil {
		return rtpDst, rtcpDst, false, false
	}
	i := pcmuIndex(s)
	if i < 0 {
		return rtpDst, rtcpDst, false, false
	}
	m := s.Media[i]
	if !m.Addr.IsValid() || m.Addr.IsUnspecified() {
		return rtpDst, rtcpDst, false, false
	}
	rtpDst = netip.AddrPortFrom(m.Addr, uint16(m.Port))
	rtcpDst = rtpDst
	if !m.RTCPMux && m.RTCPPort != 0 {
		addr := m.RTCPAddr
		if !addr.IsValid() {
			addr = m.Addr
		}
		rtcpDst = netip.AddrPortFrom(addr, uint16(m.RTCPPort))
	}
	return rtpDst, rtcpDst, m.RTCPMux, true
}
