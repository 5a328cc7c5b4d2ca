package sim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// UAConfig describes a simulated user: an account of the federation and the
// node it registers at.
type UAConfig struct {
	// User and Password are the account's name and password.
	User, Password string
	// Domain is the federation's SIP domain: the address of record is
	// User@Domain and the digest realm is Domain.
	Domain string
	// Registrar is the node's SIP address, host:port, used as registrar and
	// outbound proxy.
	Registrar string
	// Bind is the local IP address for SIP and RTP (default 127.0.0.1).
	Bind string
	// Expires is the registration lifetime asked for (default 10m); the
	// registration is refreshed at half of what the registrar grants.
	Expires time.Duration
	// ToneHz is the tone the user sends, rounded to a multiple of 50 Hz
	// (default 400).
	ToneHz int
	// RingFor is how long an incoming call rings before it is answered.
	RingFor time.Duration
}

// UA is a simulated SIP user agent built on sipgo: it registers with digest
// authentication, places calls (INVITE with a PCMU offer, answering the
// node's 407), answers calls (180, then 200 with SDP), sends a tone as
// 20 ms PCMU packets with RTCP, measures the RTP it receives, and ends calls
// with BYE. SIP goes over UDP from one listening socket. Its methods are safe
// for concurrent use.
type UA struct {
	cfg  UAConfig
	log  *slog.Logger
	bind netip.Addr

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	conn   net.PacketConn
	addr   netip.AddrPort // the SIP socket
	out    *sipgo.DialogClientCache
	in     *sipgo.DialogServerCache

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // handlers, calls and the registration refresh

	mu        sync.Mutex
	closed    bool
	calls     map[string]*UACall // in progress, by Call-ID
	regCallID string
	regSeq    uint32
	refresh   bool // the refresh loop runs
	counters  UACounters
}

// UACounters are a user agent's running totals.
type UACounters struct {
	Placed   uint64 `json:"placed"`   // calls dialled
	Answered uint64 `json:"answered"` // of which answered
	Received uint64 `json:"received"` // incoming calls answered
	Active   int    `json:"active"`   // calls in progress
}

// StartUA binds the user agent's SIP socket and serves it until Close. It
// does not register: see Register. log may be nil.
func StartUA(cfg UAConfig, log *slog.Logger) (_ *UA, err error) {
	switch {
	case cfg.User == "":
		return nil, errors.New("user agent: user required")
	case cfg.Domain == "":
		return nil, errors.New("user agent: domain required")
	}
	if _, _, err := net.SplitHostPort(cfg.Registrar); err != nil {
		return nil, fmt.Errorf("user agent %s: registrar %q: %w", cfg.User, cfg.Registrar, err)
	}
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1"
	}
	bind, err := netip.ParseAddr(cfg.Bind)
	if err != nil || bind.IsUnspecified() {
		return nil, fmt.Errorf("user agent %s: bind %q is not a specific IP address", cfg.User, cfg.Bind)
	}
	if cfg.Expires <= 0 {
		cfg.Expires = 10 * time.Minute
	}
	if cfg.ToneHz <= 0 {
		cfg.ToneHz = 400
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &UA{cfg: cfg, log: log.With("ua", cfg.User), bind: bind, calls: map[string]*UACall{},
		regCallID: sip.GenerateTagN(24) + "@" + bind.String()}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			u.Close()
		}
	}()
	if u.conn, err = net.ListenPacket("udp", net.JoinHostPort(bind.String(), "0")); err != nil {
		return nil, fmt.Errorf("user agent %s: %w", cfg.User, err)
	}
	u.addr = u.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	sl := u.log.With("component", "sipgo")
	if u.ua, err = sipgo.NewUA(sipgo.WithUserAgent("callmesh-sim-ua"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(sl)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sl))); err != nil {
		return nil, fmt.Errorf("user agent %s: %w", cfg.User, err)
	}
	if u.srv, err = sipgo.NewServer(u.ua, sipgo.WithServerLogger(sl)); err != nil {
		return nil, fmt.Errorf("user agent %s: %w", cfg.User, err)
	}
	// Requests leave from the listening socket, so that responses and
	// requests within dialogs come back to it.
	if u.client, err = sipgo.NewClient(u.ua, sipgo.WithClientHostname(bind.String()), sipgo.WithClientLogger(sl),
		sipgo.WithClientConnectionAddr(u.addr.String())); err != nil {
		return nil, fmt.Errorf("user agent %s: %w", cfg.User, err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: cfg.User, Host: bind.String(), Port: int(u.addr.Port())}}
	u.out = sipgo.NewDialogClientCache(u.client, contact)
	u.in = sipgo.NewDialogServerCache(u.client, contact)
	u.srv.OnInvite(u.handle(u.onInvite))
	u.srv.OnAck(u.handle(u.onAck))
	u.srv.OnBye(u.handle(u.onBye))
	u.srv.OnCancel(u.handle(func(req *sip.Request, tx sip.ServerTransaction) {
		// A CANCEL of a pending INVITE is matched by the transaction layer.
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
	}))
	u.srv.OnNoRoute(u.handle(func(req *sip.Request, tx sip.ServerTransaction) {
		switch req.Method {
		case sip.OPTIONS, sip.INFO, sip.UPDATE, sip.NOTIFY:
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
		default:
			_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusMethodNotAllowed, "Method Not Allowed", nil))
		}
	}))
	u.wg.Add(1)
	go func() { defer u.wg.Done(); _ = u.srv.ServeUDP(u.conn) }()
	if !udpServing(u.ua, u.addr.String()) {
		return nil, fmt.Errorf("user agent %s: UDP listener not serving", cfg.User)
	}
	return u, nil
}

// handle wraps a request handler so that Close waits for it; requests that
// arrive after Close are dropped.
func (u *UA) handle(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		u.mu.Lock()
		if u.closed {
			u.mu.Unlock()
			return
		}
		u.wg.Add(1)
		u.mu.Unlock()
		defer u.wg.Done()
		h(req, tx)
	}
}

// User is the account name.
func (u *UA) User() string { return u.cfg.User }

// AOR is the address of record, user@domain.
func (u *UA) AOR() string { return u.cfg.User + "@" + u.cfg.Domain }

// Addr is the SIP socket's address, host:port.
func (u *UA) Addr() string { return u.addr.String() }

// Counters returns the running totals.
func (u *UA) Counters() UACounters {
	u.mu.Lock()
	defer u.mu.Unlock()
	c := u.counters
	c.Active = len(u.calls)
	return c
}

// Register registers the user agent's contact, answering the registrar's
// digest challenge, and keeps the registration fresh until Close.
func (u *UA) Register(ctx context.Context) error {
	granted, err := u.register(ctx, u.cfg.Expires)
	if err != nil {
		return err
	}
	u.mu.Lock()
	start := !u.refresh && !u.closed
	u.refresh = true
	if start {
		u.wg.Add(1)
	}
	u.mu.Unlock()
	if start {
		go u.keepRegistered(granted)
	}
	return nil
}

func (u *UA) keepRegistered(granted time.Duration) {
	defer u.wg.Done()
	for {
		t := time.NewTimer(max(granted/2, time.Second))
		select {
		case <-u.ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(u.ctx, 10*time.Second)
		g, err := u.register(ctx, u.cfg.Expires)
		cancel()
		if err != nil {
			if u.ctx.Err() != nil {
				return
			}
			u.log.Warn("registration not refreshed", "err", err)
			granted = 10 * time.Second // try again soon
			continue
		}
		granted = g
	}
}

// register sends one REGISTER (RFC 3261 §10.2), with the same Call-ID and
// a rising CSeq for every refresh, and returns the lifetime granted.
func (u *UA) register(ctx context.Context, expires time.Duration) (time.Duration, error) {
	host, port := u.registrarHostPort()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: host, Port: port})
	req.SetDestination(u.cfg.Registrar)
	req.SetTransport("UDP")
	aor := sip.Uri{Scheme: "sip", User: u.cfg.User, Host: u.cfg.Domain}
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: aor})
	cid := sip.CallIDHeader(u.regCallID)
	req.AppendHeader(&cid)
	u.mu.Lock()
	u.regSeq++
	req.AppendHeader(&sip.CSeqHeader{SeqNo: u.regSeq, MethodName: sip.REGISTER})
	u.mu.Unlock()
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: u.cfg.User, Host: u.bind.String(), Port: int(u.addr.Port())}})
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	res, err := u.client.Do(ctx, req)
	if err == nil && (res.StatusCode == sip.StatusUnauthorized || res.StatusCode == sip.StatusProxyAuthRequired) {
		res, err = u.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: u.cfg.User, Password: u.cfg.Password})
	}
	if cs := req.CSeq(); cs != nil {
		u.mu.Lock()
		u.regSeq = max(u.regSeq, cs.SeqNo)
		u.mu.Unlock()
	}
	if err != nil {
		return 0, fmt.Errorf("register %s: %w", u.AOR(), err)
	}
	if res.StatusCode != sip.StatusOK {
		return 0, fmt.Errorf("register %s: %d %s", u.AOR(), res.StatusCode, res.Reason)
	}
	granted := expires
	if h := res.GetHeader("Expires"); h != nil {
		if s, err := strconv.Atoi(h.Value()); err == nil && s > 0 {
			granted = time.Duration(s) * time.Second
		}
	}
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		if !ok || c.Address.Host != u.bind.String() || c.Address.Port != int(u.addr.Port()) {
			continue
		}
		if v, ok := c.Params.Get("expires"); ok {
			if s, err := strconv.Atoi(v); err == nil && s > 0 {
				granted = time.Duration(s) * time.Second
			}
		}
	}
	return granted, nil
}

// registrarHostPort splits the registrar's address (validated by StartUA).
func (u *UA) registrarHostPort() (string, int) {
	host, port, _ := net.SplitHostPort(u.cfg.Registrar)
	p, _ := strconv.Atoi(port)
	return host, p
}

// Close ends the calls in progress (BYE, briefly waited for), stops the
// registration refresh and closes the socket. The registration is left to
// expire.
func (u *UA) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	calls := make([]*UACall, 0, len(u.calls))
	for _, c := range u.calls {
		calls = append(calls, c)
	}
	u.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_ = c.Hangup(ctx)
		}()
	}
	wg.Wait()
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	u.cancel()
	var errs []error
	if u.ua != nil {
		errs = append(errs, u.ua.Close())
	}
	if u.conn != nil {
		errs = append(errs, u.conn.Close())
	}
	u.wg.Wait()
	for _, c := range calls {
		c.end(false)
	}
	for i, err := range errs {
		if errors.Is(err, net.ErrClosed) {
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}
