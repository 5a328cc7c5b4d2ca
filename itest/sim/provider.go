package sim

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/callmesh/callmesh/media"
	"github.com/callmesh/callmesh/node/digest"
)

// Provider is an emulated SIP service provider: a stateful proxy (RFC 3261
// §16) that honours preloaded Route sets, or a trunk that routes on the
// Request-URI and may challenge its callers; either can answer numbers it
// terminates as the far end (a UAS sending a tone). It anchors media at its
// own relay like a session border controller, impairs it as configured, and
// fails on command (down, slow, error_rate, degraded). Its methods are safe
// for concurrent use.
type Provider struct {
	cfg  ProviderConfig
	role string
	log  *slog.Logger

	self  endpoint
	host  string // advertised host as written in URIs
	port  int
	laddr sip.Addr // the UDP listener as sipgo names it

	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	udpClient *sipgo.Client // sends from the UDP listener
	tcpClient *sipgo.Client
	udp       net.PacketConn
	tcp       net.Listener

	relay  *media.Relay // nil: signalling only
	nonces *digest.Nonces
	creds  digest.Credentials

	admin   *http.Server
	adminLn net.Listener

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup // handlers in progress and goroutines of calls
	serve  sync.WaitGroup // listeners

	mu       sync.Mutex
	closed   bool
	mode     Mode
	rng      *mrand.Rand
	calls    map[string]*call // in progress, by Call-ID
	counters Counters
	rtpEnded [2]uint64 // relayed, impair-dropped, of calls already ended
	records  map[string]*CallRecord
	order    []string             // Call-IDs of records, oldest first
	absorb   map[string]time.Time // ACKs of non-2xx answers: Call-ID + branch
	swept    time.Time            // when absorb was last swept
}

// StartProvider binds the provider's SIP listeners (UDP and TCP on one
// port), its relay and its admin endpoint, and serves until Close. log may
// be nil.
func StartProvider(cfg ProviderConfig, log *slog.Logger) (_ *Provider, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID = "provider"
	}
	if cfg.Mode == "" {
		cfg.Mode = RoleProxy
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 30
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("provider", cfg.ID)
	p := &Provider{cfg: cfg, role: cfg.Mode, log: log,
		calls: make(map[string]*call), records: make(map[string]*CallRecord), absorb: make(map[string]time.Time)}
	p.counters.Failed = make(map[int]uint64)
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		seed = binary.LittleEndian.Uint64(b[:])
	}
	p.rng = mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	p.mode = Mode{Failure: cfg.Failure}
	if cfg.Impair != nil {
		p.mode.Impair, p.mode.Degraded = *cfg.Impair, !cfg.Impair.Zero()
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			p.Close()
		}
	}()

	if err := p.listen(); err != nil {
		return nil, err
	}
	if a := cfg.Auth; a != nil {
		secret := make([]byte, 32)
		_, _ = rand.Read(secret)
		if p.nonces, err = digest.NewNonces(digest.NonceConfig{Secret: secret}, a.Realm); err != nil {
			return nil, fmt.Errorf("provider %s: %w", cfg.ID, err)
		}
		p.creds = digest.NewCredentials(a.Username, a.Realm, a.Password)
	}
	if cfg.Media != nil {
		rc, _ := cfg.Media.relayConfig() // validated
		if p.relay, err = media.New(rc, media.WithLogger(log.With("component", "relay"))); err != nil {
			return nil, fmt.Errorf("provider %s: relay: %w", cfg.ID, err)
		}
	}
	if err := p.startSIP(); err != nil {
		return nil, err
	}
	if cfg.Admin != "" {
		if err := p.startAdmin(cfg.Admin); err != nil {
			return nil, err
		}
	}
	log.Info("provider started", "role", p.role, "access_point", p.AccessPoint(), "admin", p.AdminURL())
	return p, nil
}

// udpBuffer is the receive and send buffer asked for on the UDP listener.
const udpBuffer = 4 << 20

// listen binds UDP and TCP on the same port; with port 0 it retries until
// both get the same one.
func (p *Provider) listen() error {
	bind, port, _ := splitHostPort(p.cfg.SIP) // validated
	adv := bind
	if p.cfg.Advertise != "" {
		adv = netip.MustParseAddr(p.cfg.Advertise)
	}
	var lastErr error
	for range 10 {
		udp, err := net.ListenPacket("udp", net.JoinHostPort(bind.String(), strconv.Itoa(port)))
		if err != nil {
			return fmt.Errorf("provider %s: UDP listener %s: %w", p.cfg.ID, p.cfg.SIP, err)
		}
		got := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := net.Listen("tcp", net.JoinHostPort(bind.String(), strconv.Itoa(got)))
		if err == nil {
			if uc, ok := udp.(*net.UDPConn); ok {
				_ = uc.SetReadBuffer(udpBuffer) // best effort: the kernel caps it
				_ = uc.SetWriteBuffer(udpBuffer)
			}
			p.udp, p.tcp, p.port = udp, tcp, got
			p.laddr = sip.Addr{IP: net.IP(bind.AsSlice()), Port: got}
			p.host = adv.String()
			if adv.Is6() {
				p.host = "[" + p.host + "]"
			}
			hosts := []string{strings.ToLower(adv.String())}
			if bind != adv && !bind.IsUnspecified() {
				hosts = append(hosts, strings.ToLower(bind.String()))
			}
			p.self = endpoint{hosts: hosts, port: got}
			return nil
		}
		udp.Close()
		lastErr = err
		if port != 0 {
			break
		}
	}
	return fmt.Errorf("provider %s: TCP listener %s: %w", p.cfg.ID, p.cfg.SIP, lastErr)
}

// startSIP starts sipgo on the listeners.
func (p *Provider) startSIP() error {
	sl := p.log.With("component", "sipgo")
	// Route and Record-Route stay unparsed so that they are forwarded as
	// received (see provider_route.go).
	hp := maps.Clone(sip.DefaultHeadersParser()) // sipgo's shared map: never modify it
	delete(hp, "route")
	delete(hp, "record-route")
	var err error
	p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("callmesh-provider/"+p.cfg.ID),
		sipgo.WithUserAgentParser(sip.NewParser(sip.WithHeadersParsers(hp))),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sl),
			sip.WithTransactionLayerUnhandledResponseHandler(p.onStrayResponse)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(sl)))
	if err != nil {
		return fmt.Errorf("provider %s: user agent: %w", p.cfg.ID, err)
	}
	if p.srv, err = sipgo.NewServer(p.ua, sipgo.WithServerLogger(sl)); err != nil {
		return fmt.Errorf("provider %s: server: %w", p.cfg.ID, err)
	}
	// UDP requests leave from the listening socket, so that answers come
	// back to it; TCP dials the next hop.
	if p.udpClient, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname(p.host), sipgo.WithClientLogger(sl),
		sipgo.WithClientConnectionAddr(p.laddr.String())); err != nil {
		return fmt.Errorf("provider %s: client: %w", p.cfg.ID, err)
	}
	if p.tcpClient, err = sipgo.NewClient(p.ua, sipgo.WithClientHostname(p.host), sipgo.WithClientLogger(sl)); err != nil {
		return fmt.Errorf("provider %s: client: %w", p.cfg.ID, err)
	}
	p.srv.OnInvite(p.handle(p.onInvite))
	p.srv.OnAck(p.handle(p.onAck))
	p.srv.OnNoRoute(p.handle(p.onRequest))
	p.serve.Add(2)
	go func() { defer p.serve.Done(); _ = p.srv.ServeUDP(p.udp) }()
	go func() { defer p.serve.Done(); _ = p.srv.ServeTCP(p.tcp) }()
	if !udpServing(p.ua, p.laddr.String()) {
		return fmt.Errorf("provider %s: UDP listener not serving", p.cfg.ID)
	}
	return nil
}

// udpServing waits, up to 5 s, until sipgo serves the UDP listener at
// addr: it registers the listener as it starts serving, and until then
// nothing can be sent from it.
func udpServing(ua *sipgo.UserAgent, addr string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for {
		if c, err := ua.TransportLayer().GetConnection("udp", addr); err == nil && c != nil {
			_, _ = c.TryClose() // a listener: only the reference is released
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// handle wraps a request handler: it counts the handler in progress (Close
// waits for it) and drops the request while down.
func (p *Provider) handle(h func(*sip.Request, sip.ServerTransaction)) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return
		}
		if p.mode.Down {
			p.counters.Dropped++
			p.mu.Unlock()
			return
		}
		p.wg.Add(1)
		p.mu.Unlock()
		defer p.wg.Done()
		h(req, tx)
	}
}

// spawn runs f in a goroutine that Close waits for; false once closed.
func (p *Provider) spawn(f func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// Close stops the provider: calls in progress are dropped (their media
// stops), the listeners, relay and admin endpoint close.
func (p *Provider) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.cancel()
	p.wg.Wait()
	p.mu.Lock()
	calls := make([]*call, 0, len(p.calls))
	for _, c := range p.calls {
		calls = append(calls, c)
	}
	p.mu.Unlock()
	for _, c := range calls {
		p.endCall(c)
	}
	var errs []error
	if p.admin != nil {
		errs = append(errs, p.admin.Close())
	}
	if p.udp != nil {
		errs = append(errs, p.udp.Close())
	}
	if p.tcp != nil {
		errs = append(errs, p.tcp.Close())
	}
	if p.ua != nil {
		errs = append(errs, p.ua.Close())
	}
	p.serve.Wait()
	if p.relay != nil {
		errs = append(errs, p.relay.Close())
	}
	for i, err := range errs {
		if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}

// ID is the provider's name.
func (p *Provider) ID() string { return p.cfg.ID }

// Role is RoleProxy or RoleTrunk.
func (p *Provider) Role() string { return p.role }

// Addr is the host:port the provider listens on (UDP and TCP).
func (p *Provider) Addr() string {
	return net.JoinHostPort(strings.Trim(p.host, "[]"), strconv.Itoa(p.port))
}

// AccessPoint is the provider's SIP URI over UDP, "sip:127.0.0.1:5071".
func (p *Provider) AccessPoint() string { return "sip:" + p.host + ":" + strconv.Itoa(p.port) }

// AccessPointTCP is the provider's SIP URI over TCP,
// "sip:127.0.0.1:5071;transport=tcp".
func (p *Provider) AccessPointTCP() string { return p.AccessPoint() + ";transport=tcp" }

// AdminURL is the base URL of the admin endpoint, "" without one.
func (p *Provider) AdminURL() string {
	if p.adminLn == nil {
		return ""
	}
	return "http://" + p.adminLn.Addr().String()
}

// Mode returns the failure mode and impairment in force.
func (p *Provider) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// SetMode switches the failure mode and the impairment. A new impairment
// applies at once to the media of calls in progress and to new calls.
func (p *Provider) SetMode(m Mode) error {
	if err := m.Validate(p.relay != nil); err != nil {
		return err
	}
	p.mu.Lock()
	old := p.mode
	p.mode = m
	if cfg := m.effectiveImpair(); cfg != old.effectiveImpair() {
		// Under p.mu, so that a call being anchored right now gets the
		// new impairment too (see anchorCall).
		for _, c := range p.calls {
			if c.media != nil {
				_ = impairSession(c.media.sess, cfg) // validated
			}
		}
	}
	p.mu.Unlock()
	p.log.Info("mode switched", "down", m.Down, "slow", m.Slow, "error_rate", m.ErrorRate, "degraded", m.Degraded)
	return nil
}

// anchorCall gives a call its media session, impaired as the mode says.
func (p *Provider) anchorCall(c *call, sess *media.Session) *anchoring {
	a := &anchoring{sess: sess}
	p.mu.Lock()
	defer p.mu.Unlock()
	c.media = a
	if err := impairSession(sess, p.mode.effectiveImpair()); err != nil {
		p.log.Warn("impairment not applied", "call", c.id, "err", err)
	}
	return a
}

// draw is a uniform number in [0, 1) from the provider's seeded source.
func (p *Provider) draw() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Float64()
}
