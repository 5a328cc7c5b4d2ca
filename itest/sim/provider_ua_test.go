package sim

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media/mediatest"
	"github.com/callmesh/callmesh/media/sdpedit"
)

// testUA is a SIP user agent on 127.0.0.1, UDP and TCP on one port, built
// on sipgo: it places calls with a preloaded Route set, answers calls as
// told, and offers its RTP endpoint in SDP.
type testUA struct {
	t      *testing.T
	user   string
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	udp    net.PacketConn
	tcp    net.Listener
	port   int
	rtp    *mediatest.Endpoint
	out    *sipgo.DialogClientCache
	in     *sipgo.DialogServerCache
	wg     sync.WaitGroup

	mu      sync.Mutex
	reqs    []*sip.Request
	answer  func(d *sipgo.DialogServerSession)
	dialogs []*sipgo.DialogServerSession
	cancels int
}

// newUA starts a user agent that answers INVITEs with 180 and 200 (SDP).
func newUA(t *testing.T, user string) *testUA {
	t.Helper()
	u := &testUA{t: t, user: user, rtp: mediatest.NewEndpoint(t)}
	var err error
	for range 10 {
		if u.udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		u.port = u.udp.LocalAddr().(*net.UDPAddr).Port
		if u.tcp, err = net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(u.port)); err == nil {
			break
		}
		u.udp.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if u.ua, err = sipgo.NewUA(sipgo.WithUserAgent("test-" + user)); err != nil {
		t.Fatal(err)
	}
	if u.srv, err = sipgo.NewServer(u.ua); err != nil {
		t.Fatal(err)
	}
	addr := u.udp.LocalAddr().String()
	if u.client, err = sipgo.NewClient(u.ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientConnectionAddr(addr)); err != nil {
		t.Fatal(err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: u.port}}
	u.out = sipgo.NewDialogClientCache(u.client, contact)
	u.in = sipgo.NewDialogServerCache(u.client, contact)
	u.answer = u.pickUp
	u.srv.OnInvite(u.onInvite)
	u.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) {
		u.record(req)
		_ = u.in.ReadAck(req, tx)
	})
	u.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		u.record(req)
		if err := u.in.ReadBye(req, tx); err != nil {
			if err := u.out.ReadBye(req, tx); err != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			}
		}
	})
	u.srv.OnNoRoute(func(req *sip.Request, tx sip.ServerTransaction) {
		u.record(req)
		if !req.IsAck() {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		}
	})
	u.wg.Add(2)
	go func() { defer u.wg.Done(); _ = u.srv.ServeUDP(u.udp) }()
	go func() { defer u.wg.Done(); _ = u.srv.ServeTCP(u.tcp) }()
	t.Cleanup(func() {
		u.udp.Close()
		u.tcp.Close()
		u.ua.Close()
		u.wg.Wait()
	})
	// sipgo registers the listener as it starts serving; until then the
	// client cannot send from it.
	eventually(t, "UA listening", func() bool {
		c, err := u.ua.TransportLayer().GetConnection("udp", addr)
		if err != nil || c == nil {
			return false
		}
		_, _ = c.TryClose()
		return true
	})
	return u
}

// uri is the UA's own address, sip:127.0.0.1:port, with params appended.
func (u *testUA) uri(params string) string {
	return "sip:127.0.0.1:" + strconv.Itoa(u.port) + params
}

func (u *testUA) record(req *sip.Request) {
	u.mu.Lock()
	u.reqs = append(u.reqs, req)
	u.mu.Unlock()
}

// received lists the requests of a method that reached the UA.
func (u *testUA) received(m sip.RequestMethod) []*sip.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []*sip.Request
	for _, r := range u.reqs {
		if r.Method == m {
			out = append(out, r)
		}
	}
	return out
}

func (u *testUA) setAnswer(f func(d *sipgo.DialogServerSession)) {
	u.mu.Lock()
	u.answer = f
	u.mu.Unlock()
}

func (u *testUA) cancelsSeen() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.cancels
}

// dialog is the i-th call the UA received.
func (u *testUA) dialog(i int) *sipgo.DialogServerSession {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.dialogs[i]
}

// sdp is the UA's offer or answer: PCMU and telephone-event at its RTP
// endpoint.
func (u *testUA) sdp() []byte {
	return []byte(fmt.Sprintf("v=0\r\no=%s 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"+
		"m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
		u.user, u.rtp.Addr().Port()))
}

func (u *testUA) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	u.record(req)
	if hasToTag(req) { // a re-INVITE: same answer
		res := sip.NewResponseFromRequest(req, 200, "OK", u.sdp())
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		_ = tx.Respond(res)
		return
	}
	tx.OnCancel(func(*sip.Request) {
		u.mu.Lock()
		u.cancels++
		u.mu.Unlock()
	})
	d, err := u.in.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	u.mu.Lock()
	u.dialogs = append(u.dialogs, d)
	answer := u.answer
	u.mu.Unlock()
	answer(d)
	// sipgo ends a server transaction when its handler returns.
	<-tx.Done()
}

// pickUp rings and answers with SDP.
func (u *testUA) pickUp(d *sipgo.DialogServerSession) {
	_ = d.Respond(180, "Ringing", nil)
	_ = d.Respond(200, "OK", u.sdp(), sip.NewHeader("Content-Type", "application/sdp"))
}

// ringOnly rings and never answers.
func (u *testUA) ringOnly(d *sipgo.DialogServerSession) { _ = d.Respond(180, "Ringing", nil) }

// dial places a call to target with a preloaded Route set (one header per
// element of routes, each may hold several values) and waits for the
// answer; on 2xx it sends the ACK. It returns the dialog and the final
// response (nil if none came).
func (u *testUA) dial(ctx context.Context, target sip.Uri, routes []string, opts sipgo.AnswerOptions) (*sipgo.DialogClientSession, *sip.Response, error) {
	req := sip.NewRequest(sip.INVITE, target)
	for _, r := range routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	next := target // the first hop: the first Route value, else the target
	if len(routes) > 0 {
		if _, err := sip.ParseAddressValue(splitValues(routes[0])[0], &next, nil); err != nil {
			return nil, nil, err
		}
	}
	req.SetDestination(next.HostPort())
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: u.user, Host: "callmesh.local"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target.User, Host: target.Host}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(u.sdp())
	d, err := u.out.WriteInvite(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	err = d.WaitAnswer(ctx, opts)
	res := d.InviteResponse
	if err != nil {
		return d, res, err
	}
	return d, res, d.Ack(ctx)
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testLog collects a test's logs and prints them only if it fails.
func testLog(t *testing.T) *slog.Logger {
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("logs:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// startProvider starts a provider that the test's cleanup closes.
func startProvider(t *testing.T, cfg ProviderConfig) *Provider {
	t.Helper()
	p, err := StartProvider(cfg, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close %s: %v", cfg.ID, err)
		}
	})
	return p
}

// testMedia is a relay section on loopback with ports in 5000–9999.
func testMedia(t *testing.T) *ProviderMedia {
	lo, hi := mediatest.PortRange(t, 5000, 8)
	return &ProviderMedia{Bind: "127.0.0.1", Ports: fmt.Sprintf("%d-%d", lo, hi)}
}

// lr is the Route value naming a provider: <sip:host:port;lr>.
func lr(p *Provider) string { return "<" + p.AccessPoint() + ";lr>" }

// sdpAudio is where an SDP body's first audio stream receives.
func sdpAudio(t testing.TB, body []byte) netip.AddrPort {
	t.Helper()
	s, err := sdpedit.Parse(body)
	if err != nil {
		t.Fatalf("SDP %q: %v", body, err)
	}
	i := audioIndex(s)
	if i < 0 {
		t.Fatalf("SDP without audio: %q", body)
	}
	return netip.AddrPortFrom(s.Media[i].Addr, uint16(s.Media[i].Port))
}

// bob is the Request-URI of calls to the test callee, as the ingress node
// writes it.
var bob = sip.Uri{Scheme: "sip", User: "bob", Host: "callmesh.local"}
