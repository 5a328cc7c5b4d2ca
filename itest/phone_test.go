package itest

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media/mediatest"
	"github.com/callmesh/callmesh/node"
)

// phone is a SIP phone on 127.0.0.1 for call tests: it registers at a
// node, places calls, answers (or refuses) them as told, and has an RTP
// endpoint whose address it offers in SDP.
type phone struct {
	t        testing.TB
	user     string
	password string
	n        *node.Node
	ua       *sipgo.UserAgent
	srv      *sipgo.Server
	client   *sipgo.Client
	conn     net.PacketConn
	addr     string
	out      *sipgo.DialogClientCache
	in       *sipgo.DialogServerCache
	rtp      *mediatest.Endpoint

	mu      sync.Mutex
	answer  func(d *sipgo.DialogServerSession) // what to do with an INVITE
	dialogs []*sipgo.DialogServerSession
	reqs    []*sip.Request // requests received, in order
	byes    atomic.Int32
	strays  atomic.Int32 // BYEs that matched none of its dialogs (answered 481)
}

// newPhone starts a phone for user (an account on n) and registers it.
func newPhone(t testing.TB, n *node.Node, user, password string) *phone {
	t.Helper()
	p := &phone{t: t, user: user, password: password, n: n, rtp: mediatest.NewEndpoint(t)}
	var err error
	if p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("callmesh-test-phone")); err != nil {
		t.Fatal(err)
	}
	if p.conn, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p.addr = p.conn.LocalAddr().String()
	if p.srv, err = sipgo.NewServer(p.ua); err != nil {
		t.Fatal(err)
	}
	if p.client, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientConnectionAddr(p.addr)); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(p.addr)
	var pn int
	fmt.Sscan(port, &pn)
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: host, Port: pn}}
	p.out = sipgo.NewDialogClientCache(p.client, contact)
	p.in = sipgo.NewDialogServerCache(p.client, contact)
	p.answer = func(d *sipgo.DialogServerSession) { p.pickUp(d) }
	p.srv.OnInvite(p.onInvite)
	p.srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		t.Logf("%s at %s: CANCEL matched no INVITE:\n%s", user, p.addr, req)
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		if err := p.in.ReadAck(req, tx); err != nil {
			_ = p.out.MatchRequestDialog // ACK of a re-INVITE we answered: nothing to do
		}
	})
	p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		p.record(req)
		p.byes.Add(1)
		if err := p.in.ReadBye(req, tx); err != nil {
			if err := p.out.ReadBye(req, tx); err != nil {
				p.strays.Add(1)
				_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			}
		}
	})
	for _, m := range []sip.RequestMethod{sip.INFO, sip.UPDATE, sip.NOTIFY, sip.OPTIONS, sip.PRACK} {
		p.srv.OnRequest(m, func(req *sip.Request, tx sip.ServerTransaction) {
			p.record(req)
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		})
	}
	go func() { _ = p.srv.ServeUDP(p.conn) }()
	t.Cleanup(func() { p.ua.Close(); p.conn.Close() })
	// The server registers its socket with the transport layer as it starts
	// serving; until then the client cannot send from it.
	Eventually(t, 5*time.Second, func() bool {
		req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: p.n.Config().Domain})
		req.SetDestination(p.n.SIPAddr())
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := p.client.Do(ctx, req)
		return err == nil
	}, "phone %s cannot send from its socket", user)
	p.register()
	return p
}

// setAnswer sets what the phone does with the next INVITEs.
func (p *phone) setAnswer(f func(d *sipgo.DialogServerSession)) {
	p.mu.Lock()
	p.answer = f
	p.mu.Unlock()
}

// dialog returns the i-th call the phone received (-1: the last).
func (p *phone) dialog(i int) *sipgo.DialogServerSession {
	p.mu.Lock()
	defer p.mu.Unlock()
	if i < 0 {
		i = len(p.dialogs) + i
	}
	return p.dialogs[i]
}

func (p *phone) record(req *sip.Request) {
	p.mu.Lock()
	p.reqs = append(p.reqs, req)
	p.mu.Unlock()
}

// received counts requests of a method that reached the phone.
func (p *phone) received(m sip.RequestMethod) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, r := range p.reqs {
		if r.Method == m {
			n++
		}
	}
	return n
}

func (p *phone) register() {
	p.t.Helper()
	c := &sipClient{ua: p.ua, client: p.client}
	res := c.register(p.t, p.n.SIPAddr(), p.n.Config().Domain, p.user, p.password, 300, "<sip:"+p.user+"@"+p.addr+">")
	if res.StatusCode != 200 {
		p.t.Fatalf("register %s: %d %s", p.user, res.StatusCode, res.Reason)
	}
}

// sdp is the phone's offer or answer: PCMU and telephone-event at its RTP
// endpoint.
func (p *phone) sdp(dir string) []byte {
	a := p.rtp.Addr()
	return []byte(fmt.Sprintf("v=0\r\no=%s 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=%s\r\n",
		p.user, a.Port(), dir))
}

func (p *phone) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	p.record(req)
	if to := req.To(); to != nil {
		if _, ok := to.Params.Get("tag"); ok { // a re-INVITE
			p.reInvite(req, tx)
			return
		}
	}
	d, err := p.in.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, err.Error(), nil))
		return
	}
	p.mu.Lock()
	p.dialogs = append(p.dialogs, d)
	answer := p.answer
	p.mu.Unlock()
	answer(d)
	// sipgo ends a server transaction when its handler returns: stay until
	// the transaction is over, so a phone left ringing can be cancelled.
	<-tx.Done()
}

// pickUp rings and answers with SDP.
func (p *phone) pickUp(d *sipgo.DialogServerSession) {
	_ = d.Respond(180, "Ringing", nil)
	body := p.sdp("sendrecv")
	_ = d.Respond(200, "OK", body, sip.NewHeader("Content-Type", "application/sdp"))
}

// reInvite answers an offer within a dialog with the matching direction.
func (p *phone) reInvite(req *sip.Request, tx sip.ServerTransaction) {
	dir := "sendrecv"
	if b := string(req.Body()); strings.Contains(b, "a=sendonly") {
		dir = "recvonly"
	} else if strings.Contains(b, "a=inactive") {
		dir = "inactive"
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", p.sdp(dir))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	host, port, _ := net.SplitHostPort(p.addr)
	res.AppendHeader(sip.NewHeader("Contact", "<sip:"+p.user+"@"+host+":"+port+">"))
	_ = tx.Respond(res)
}

// call places a call to target through the phone's node and returns the
// dialog once answered, or the failure.
func (p *phone) call(ctx context.Context, target string) (*sipgo.DialogClientSession, error) {
	return p.callWith(ctx, target, nil)
}

// mustCall is call, failing the test unless the call is answered.
func (p *phone) mustCall(t *testing.T, ctx context.Context, target string) *sipgo.DialogClientSession {
	t.Helper()
	d, err := p.call(ctx, target)
	if err != nil {
		t.Fatalf("call %s: %v", target, err)
	}
	return d
}

// callWith is call, telling onResponse about every response to the INVITE.
func (p *phone) callWith(ctx context.Context, target string, onResponse func(*sip.Response)) (*sipgo.DialogClientSession, error) {
	domain := p.n.Config().Domain
	// The Request-URI names the node's address (an alias of the domain),
	// so the CANCEL sipgo builds from it finds the node too.
	host, port, _ := net.SplitHostPort(p.n.SIPAddr())
	var pn int
	fmt.Sscan(port, &pn)
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: target, Host: host, Port: pn})
	req.SetDestination(p.n.SIPAddr())
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: p.user, Host: domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target, Host: domain}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(p.sdp("sendrecv"))
	d, err := p.out.WriteInvite(ctx, req)
	if err != nil {
		return nil, err
	}
	opts := sipgo.AnswerOptions{Username: p.user, Password: p.password}
	if onResponse != nil {
		opts.OnResponse = func(res *sip.Response) error { onResponse(res); return nil }
	}
	if err := d.WaitAnswer(ctx, opts); err != nil {
		return d, err
	}
	return d, d.Ack(ctx)
}

// mediaPeer reads the address and port an SDP body offers.
func mediaPeer(t testing.TB, body []byte) netip.AddrPort {
	t.Helper()
	var addr string
	var port int
	for _, line := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n") {
		if len(line) > 9 && line[:9] == "c=IN IP4 " {
			addr = line[9:]
		}
		if len(line) > 8 && line[:8] == "m=audio " {
			fmt.Sscan(line[8:], &port)
		}
	}
	ap, err := netip.ParseAddrPort(fmt.Sprintf("%s:%d", addr, port))
	if err != nil {
		t.Fatalf("SDP without a usable address: %q", body)
	}
	return ap
}

func netipPlus(a netip.AddrPort, d uint16) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr(), a.Port()+d)
}
