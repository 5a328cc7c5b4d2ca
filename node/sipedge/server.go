// Package sipedge is a node's SIP front door: the registrar with digest
// authentication, OPTIONS, and the checks every request passes before it
// is handled. The decisions (ApplyRegister, CheckRequest, the digest
// verifier) are pure; Server wires them to sipgo's UDP and TCP transports
// through the node's transaction layer (siptx).
package sipedge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callmesh/callmesh/media/rawudp"
	"github.com/callmesh/callmesh/node/accounts"
	"github.com/callmesh/callmesh/node/digest"
	"github.com/callmesh/callmesh/node/siptx"
	"github.com/callmesh/callmesh/node/sipwire"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the SIP edge's configuration.
type Config struct {
	Domain     string   // the federation's domain: AORs are user@Domain; the digest realm
	Listen     string   // host:port for UDP and TCP; port 0 picks one
	Aliases    []string // other hosts accepted as the domain (the node's own addresses)
	Policy     RegisterPolicy
	Algorithms []digest.Algorithm // offered in challenges, in this order
	// MD5OnlyAgents lists User-Agent substrings (case-insensitive) of
	// clients that give up on a 401 carrying any algorithm but MD5: they
	// are challenged with MD5 alone.
	MD5OnlyAgents []string
	Nonce         digest.NonceConfig
	// BlockAfter failed authentications from one source IP within
	// BlockWindow block it for BlockFor; 0 disables blocking.
	BlockAfter  int
	BlockWindow time.Duration
	BlockFor    time.Duration
	UserAgent   string // Server header
	// Trusted lists source networks whose requests are not challenged
	// (trunks, load generators): a REGISTER is taken for its To user, an
	// INVITE for its From user, and an INVITE's rights are not checked.
	Trusted []netip.Prefix
	// TransactionWait is how long a completed SIP transaction is kept to
	// absorb retransmissions (siptx.Config.Wait); 0: 64·T1.
	TransactionWait time.Duration
	// OverloadBacklog is the share of the UDP socket's receive buffer,
	// filled by datagrams not yet read, from which new INVITEs are shed,
	// more of them the deeper the backlog (overload.go); 0 never sheds.
	OverloadBacklog float64
}

// Caller is who starts a call: an authenticated user, or the From user of
// a request from a trusted source.
type Caller struct {
	User    string
	Trusted bool
	Limits
	// Session, Hops and SLAs are set for a call entering from a provider
	// on a federation path: its admitted session token's session and path.
	Session    string
	Hops, SLAs []string
}

// Sessions admits INVITEs that enter the node from a provider on a
// federation path, by the session token they carry (TokenParam on a Route
// URI or on the Request-URI).
type Sessions interface {
	// Admit checks token for an initial INVITE to callee (the user part of
	// the Request-URI) and uses it up; the error says why it is refused.
	Admit(token, callee string) (session string, hops, slas []string, err error)
}

// Calls takes over requests that start or belong to calls.
type Calls interface {
	// Invite is given an initial INVITE once it is authenticated (or from
	// a trusted source) and the caller's rights allow it. It answers tx.
	// When quick, Invite runs on a transport's reader and must not wait on
	// the network: where it would (a callee found through the federation),
	// it returns false having answered and kept nothing, and the edge
	// calls it again, not quick, on a goroutine that may wait.
	Invite(req *sip.Request, tx sip.ServerTransaction, caller Caller, quick bool) bool
	// InDialog is given every request that carries a To tag, and every
	// ACK; it returns false when no call knows the dialog (the edge then
	// answers 481). For an ACK or a BYE it must not wait on anything but
	// the connection the request came on: those are handed over on that
	// transport's reader (onReader), and a UDP reader serves every
	// peer.
	InDialog(req *sip.Request, tx sip.ServerTransaction) bool
}

// Accounts gives the registrar the credentials of users. What its
// methods wait for (an account read from another node) they bound
// themselves: the edge calls them with its own context, which ends only
// when the edge closes.
type Accounts interface {
	// Credentials returns user's digest credentials; found is false for an
	// unknown user. An error means the account could not be consulted at
	// all (its home node unreachable and nothing cached).
	Credentials(ctx context.Context, user string) (creds digest.Credentials, found bool, err error)
	// Permit checks the user's right to start a session (a
	// *accounts.PermitError says which right is missing); any other error
	// means the account could not be consulted. It returns the limits of
	// the account it read, so the calls need not read it again.
	Permit(ctx context.Context, user string, req accounts.Request) (Limits, error)
}

// Limits are what authorizing a caller learnt of its account.
type Limits struct {
	Known    bool // the caller has an account (a trusted trunk's may not)
	Class    string
	MaxCalls int // concurrent calls allowed
}

// BindingStore keeps each AOR's bindings.
type BindingStore interface {
	Load(aor string) ([]Binding, error)
	// Save replaces aor's bindings; an empty list removes them.
	Save(aor string, bs []Binding) error
}

// Locator is told about every change of an AOR's bindings, to publish where
// the user can be reached. It must not block.
type Locator interface {
	Changed(aor string, bs []Binding)
}

// Server is a running SIP edge.
type Server struct {
	cfg      Config
	log      *slog.Logger
	accounts Accounts
	bindings BindingStore
	locator  Locator
	nonces   *digest.Nonces
	guard    *guard
	m        *edgeMetrics
	check    CheckConfig
	calls    Calls
	sessions Sessions

	reg    prometheus.Registerer // nil: no metrics
	name   string                // Server and User-Agent header
	tpl    *sip.TransportLayer
	parser *sip.Parser // the messages sipgo parses: over TCP, and datagrams sipwire refuses
	txl    *siptx.Layer
	udp    *net.UDPConn
	rawUDP *rawudp.Conn // udp's socket, read by raw system calls
	shed   *shedder     // nil: nothing is shed
	tcp    net.Listener
	hosts  map[string]bool // lower-case hosts that name our domain
	port   int             // the listening port (UDP and TCP share it)
	locks  aorLocks
	ctx    context.Context
	quick  context.Context // ctx, for what runs on a reader: it may not wait (NoWait)
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Option configures a Server.
type Option func(*Server)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithRegisterer registers the edge's metrics with reg.
func WithRegisterer(reg prometheus.Registerer) Option {
	return func(s *Server) { s.m, s.reg = newEdgeMetrics(reg), reg }
}

// Start binds UDP and TCP on cfg.Listen and serves until Close.
func Start(cfg Config, accounts Accounts, bindings BindingStore, locator Locator, opts ...Option) (_ *Server, err error) {
	s := &Server{cfg: cfg, accounts: accounts, bindings: bindings, locator: locator, log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		o(s)
	}
	if s.m == nil {
		s.m = newEdgeMetrics(nil)
	}
	if s.nonces, err = digest.NewNonces(cfg.Nonce, cfg.Domain); err != nil {
		return nil, fmt.Errorf("sip edge: %w", err)
	}
	s.guard = newGuard(cfg.BlockAfter, cfg.BlockWindow, cfg.BlockFor)
	if err := s.listen(); err != nil {
		return nil, err
	}
	s.hosts = map[string]bool{strings.ToLower(cfg.Domain): true}
	for _, a := range cfg.Aliases {
		s.hosts[strings.ToLower(a)] = true
	}
	if host, _, err := net.SplitHostPort(s.Addr()); err == nil && host != "0.0.0.0" && host != "::" {
		s.hosts[host] = true
	}
	s.port = s.udp.LocalAddr().(*net.UDPAddr).Port
	s.check = CheckConfig{Schemes: []string{"sip"}, Self: s.isSelf}

	s.name = cfg.UserAgent
	if s.name == "" {
		s.name = "callmesh"
	}
	s.parser = sipwire.NewParser()
	s.tpl = sip.NewTransportLayer(net.DefaultResolver, s.parser, nil,
		sip.WithTransportLayerLogger(s.log.With("component", "sip-transport")))
	s.txl = siptx.New(s.tpl, siptx.Config{Wait: cfg.TransactionWait, Inline: onReader, Log: s.log.With("component", "siptx")})
	s.txl.OnRequest(s.route)
	// The buffer warning, overload control and the socket's metrics need
	// its backlog, which not every system reports. The kernel reports as
	// the limit twice what was granted, its bookkeeping included
	// (socket(7)).
	b, backlogErr := s.rawUDP.Backlog()
	if backlogErr == nil && b.Limit/2 < udpBuffer {
		s.log.Warn("SIP UDP receive buffer smaller than asked: datagrams may be dropped in bursts; raise net.core.rmem_max",
			"asked", udpBuffer, "granted", b.Limit/2)
	}
	switch {
	case cfg.OverloadBacklog > 0 && backlogErr == nil:
		s.shed = newShedder(cfg.OverloadBacklog, s.log)
	case cfg.OverloadBacklog > 0:
		s.log.Warn("SIP overload control off: the UDP socket's backlog cannot be read here", "err", backlogErr)
	}
	if s.reg != nil {
		registerTransactionMetrics(s.reg, s.txl.Stats())
		if backlogErr == nil {
			registerSocketMetrics(s.reg, s.rawUDP, s.shed)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.quick = NoWait(s.ctx)
	s.serveUDP(udpReaders())
	s.wg.Add(1)
	go func() { defer s.wg.Done(); _ = s.tpl.ServeTCP(s.tcp) }()
	return s, nil
}

// udpReaders is how many goroutines read the UDP socket: one per core, up
// to four. A reader carries what it read through to the answer it sends
// (responses, ACK, BYE: siptx Config.Inline, b2bua's calls), so one
// reader alone would bound the node to one core's worth of that work.
// Datagrams read by two readers may be handled out of order, as UDP may
// deliver them. A retransmission racing its original finds the
// transaction made (siptx); a BYE overtaking the caller's ACK still has
// the callee's 2xx ACKed (call: byeWinner); a CANCEL cannot overtake its
// INVITE, since a UAC sends one only after a provisional (RFC 3261 §9.1),
// which goes out once the INVITE's transaction exists.
func udpReaders() int { return min(runtime.GOMAXPROCS(0), 4) }

// udpBuffer is the receive and send buffer asked for on the UDP listener.
const udpBuffer = 4 << 20

// listen binds UDP and TCP on the same port; with port 0 it retries until
// both sides get one.
func (s *Server) listen() error {
	host, port, err := net.SplitHostPort(s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("sip edge: listen %q: %w", s.cfg.Listen, err)
	}
	var lastErr error
	for range 10 {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			return fmt.Errorf("sip edge: UDP listener %s: %w", s.cfg.Listen, err)
		}
		udp := pc.(*net.UDPConn) // ListenPacket("udp") makes no other
		_, p, _ := net.SplitHostPort(udp.LocalAddr().String())
		tcp, err := net.Listen("tcp", net.JoinHostPort(host, p))
		if err == nil {
			// Bursts of requests and retransmissions must not overflow the
			// kernel's default UDP buffer (about 200 KiB) while the process
			// is busy; the kernel caps the size at net.core.rmem_max.
			_ = udp.SetReadBuffer(udpBuffer)
			_ = udp.SetWriteBuffer(udpBuffer)
			raw, err := rawudp.New(udp)
			if err != nil {
				udp.Close()
				tcp.Close()
				return fmt.Errorf("sip edge: UDP listener %s: %w", s.cfg.Listen, err)
			}
			s.udp, s.rawUDP, s.tcp = udp, raw, tcp
			return nil
		}
		udp.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return fmt.Errorf("sip edge: TCP listener %s: %w", s.cfg.Listen, lastErr)
}

// SetCalls hands calls to c. Set it before the edge receives INVITEs;
// without it an authorized INVITE is answered 501.
func (s *Server) SetCalls(c Calls) { s.calls = c }

// SetSessions sets who admits session tokens; without it a request carrying
// one is challenged like any other.
func (s *Server) SetSessions(v Sessions) { s.sessions = v }

// Transactions is the edge's transaction layer, for requests sent from
// the edge's listeners.
func (s *Server) Transactions() *siptx.Layer { return s.txl }

// trusted reports whether a request comes from a trusted network.
func (s *Server) trusted(req *sip.Request) bool {
	if len(s.cfg.Trusted) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.cfg.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Addr returns the host:port the edge listens on (UDP and TCP).
func (s *Server) Addr() string { return s.udp.LocalAddr().String() }

// Close stops serving and waits for the listeners to stop.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		s.cancel()
		err = errors.Join(s.udp.Close(), s.tcp.Close(), s.tpl.Close())
		s.wg.Wait()
		s.txl.Close()
	})
	return err
}

// isSelf reports whether a Via sent-by names this edge.
func (s *Server) isSelf(host string, port int) bool {
	return port == s.port && s.hosts[strings.ToLower(host)]
}

// ourHost reports whether host names the federation's domain here.
func (s *Server) ourHost(host string) bool { return s.hosts[strings.ToLower(host)] }

// route hands a new request to its handler after the checks every
// request passes.
func (s *Server) route(req *sip.Request, tx sip.ServerTransaction) {
	h := s.onOther
	switch req.Method {
	case sip.REGISTER:
		h = s.onRegister
	case sip.OPTIONS:
		h = s.onOptions
	case sip.INVITE:
		h = s.onInvite
	case sip.ACK, sip.BYE, sip.CANCEL, sip.UPDATE, sip.INFO, sip.NOTIFY, sip.PRACK, sip.MESSAGE, sip.REFER:
		h = s.onInDialog
	}
	s.serve(h, req, tx)
}

func (s *Server) serve(h func(*sip.Request, sip.ServerTransaction), req *sip.Request, tx sip.ServerTransaction) {
	if rej := CheckRequest(req, s.check); rej != nil {
		s.m.rejected.WithLabelValues(strconv.Itoa(rej.Code)).Inc()
		if res := rej.Response(req); res != nil {
			s.respond(tx, res)
		}
		return
	}
	h(req, tx)
}

func (s *Server) respond(tx sip.ServerTransaction, res *sip.Response) {
	if sipwire.Header(res, "Server") == nil {
		res.AppendHeader(sip.NewHeader("Server", s.name))
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("SIP response not sent", "code", res.StatusCode, "err", err)
	}
}

func (s *Server) reply(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sipwire.Response(req, code, reason, "")
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	s.respond(tx, res)
}

// allowed is the Allow header of this edge.
const allowed = "REGISTER, OPTIONS, INVITE, ACK, BYE, CANCEL, UPDATE, INFO, NOTIFY, PRACK, MESSAGE"

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if hasToTag(req) {
		s.onInDialog(req, tx)
		return
	}
	if !s.ourHost(req.Recipient.Host) && req.Recipient.User != "" {
		s.reply(req, tx, sip.StatusNotFound, "Not Found (not our domain)")
		return
	}
	s.reply(req, tx, sip.StatusOK, "OK",
		sip.NewHeader("Allow", allowed),
		sip.NewHeader("Accept", "application/sdp"),
		sip.NewHeader("Supported", ""))
}

// onInDialog gives a request within a dialog to the calls; 481 when no call
// knows it (RFC 3261 §12.2.2). An ACK gets no answer either way.
func (s *Server) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	if s.calls != nil && s.calls.InDialog(req, tx) {
		return
	}
	if req.IsAck() {
		return
	}
	if !hasToTag(req) && req.Method != sip.CANCEL {
		// Out of any dialog: these methods are not served here.
		s.reply(req, tx, sip.StatusMethodNotAllowed, "Method Not Allowed (only within a call)", sip.NewHeader("Allow", allowed))
		return
	}
	s.reply(req, tx, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist")
}

// onReader picks the requests served on the transport's reader: ACK and
// BYE, which the edge and Calls.InDialog answer without waiting on
// anything, and INVITE, which onInvite serves there as far as it can
// without waiting and hands over from where it would (a re-INVITE at
// once: it waits for the other side's answer).
func onReader(req *sip.Request) bool {
	return req.Method == sip.ACK || req.Method == sip.BYE || req.Method == sip.INVITE
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	_, ok := to.Params.Get("tag")
	return ok
}

func (s *Server) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return // ACK has no response
	}
	s.reply(req, tx, sip.StatusMethodNotAllowed, "Method Not Allowed", sip.NewHeader("Allow", allowed))
}
