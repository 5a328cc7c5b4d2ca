package sipedge

import (
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/callmesh/callmesh/node/digest"
	"github.com/callmesh/callmesh/node/sipwire"
	"github.com/emiago/sipgo/sip"
)

// authResult is the outcome of authenticating one request.
type authResult int

const (
	authOK        authResult = iota + 1
	authChallenge            // no credentials, or stale/replayed nonce: challenge (again)
	authFailed               // wrong password or unknown user: refuse
	authBad                  // malformed credentials: 400
	authUnavail              // the account could not be consulted: 503
	authWait                 // the account needs the network, on a context that may not wait
)

// outcomeWait is authGate's outcome when it answered nothing because the
// account needs the network and its context may not wait (NoWait): the
// caller goes on where waiting is allowed.
const outcomeWait = "would_wait"

// authenticate checks the Authorization (REGISTER, §22.2) or
// Proxy-Authorization (other requests, §22.3) header of req. It returns
// the authenticated user on authOK; on authChallenge, stale says whether
// the nonce was stale; on authBad, reason is a 400 reason phrase.
func (s *Server) authenticate(ctx context.Context, req *sip.Request, header string) (user string, res authResult, stale bool, reason string) {
	creds := slices.Collect(sipwire.Headers(req, header))
	if len(creds) == 0 {
		return "", authChallenge, false, ""
	}
	// A client may answer several challenges (one per algorithm); use the
	// one for our realm.
	var r digest.Response
	var perr error
	found := false
	for _, h := range creds {
		resp, err := digest.ParseResponse(h.Value())
		if err != nil {
			perr = err
			continue
		}
		if resp.Realm == s.cfg.Domain {
			r, found = resp, true
			break
		}
	}
	if !found {
		if perr != nil {
			return "", authBad, false, SanitizeReason("Bad " + header + ": " + perr.Error())
		}
		return "", authChallenge, false, ""
	}
	acct, ok, err := s.accounts.Credentials(ctx, r.Username)
	if errors.Is(err, ErrWouldWait) {
		return r.Username, authWait, false, ""
	}
	if err != nil {
		s.log.Warn("account not available", "user", r.Username, "err", err)
		return r.Username, authUnavail, false, ""
	}
	if !ok {
		acct = digest.Credentials{} // verified against a dummy: same work, same answer
	}
	switch v, _ := s.nonces.Verify(string(req.Method), r, acct, s.cfg.Domain, time.Now()); v {
	case digest.OK:
		return r.Username, authOK, false, ""
	case digest.Stale:
		return r.Username, authChallenge, true, ""
	case digest.Replay:
		return r.Username, authChallenge, false, ""
	}
	return r.Username, authFailed, false, ""
}

// authGate authenticates req and, unless the user is authenticated,
// answers it: 403 for a blocked source, a challenge (401 with WWW-Authenticate for REGISTER, §22.2;
// 407 with Proxy-Authenticate otherwise, §22.3), 400 for malformed
// credentials, 503 when the account cannot be consulted, 403 for wrong
// credentials (counted towards blocking the source). It returns the user
// and true when the request may go on, and the outcome for metrics.
func (s *Server) authGate(ctx context.Context, req *sip.Request, tx sip.ServerTransaction, now time.Time) (user string, ok bool, outcome string) {
	credHeader, chalHeader, code, phrase := "Proxy-Authorization", "Proxy-Authenticate", sip.StatusProxyAuthRequired, "Proxy Authentication Required"
	if req.Method == sip.REGISTER {
		credHeader, chalHeader, code, phrase = "Authorization", "WWW-Authenticate", sip.StatusUnauthorized, "Unauthorized"
	}
	if s.trusted(req) && req.Method == sip.REGISTER {
		// A trusted source registers any existing user without a challenge.
		user := req.To().Address.User
		_, found, err := s.accounts.Credentials(ctx, user)
		switch {
		case err != nil:
			s.reply(req, tx, sip.StatusServiceUnavailable, "Service Unavailable (account not reachable)", sip.NewHeader("Retry-After", "30"))
			return user, false, "unavailable"
		case !found:
			s.reply(req, tx, sip.StatusNotFound, "Not Found (no such user)")
			return user, false, "unknown_user"
		}
		return user, true, "trusted"
	}
	ip := sourceIP(req)
	if s.guard.Blocked(ip, now) {
		s.reply(req, tx, sip.StatusForbidden, "Forbidden (too many failed authentications)")
		return "", false, "blocked"
	}
	user, res, stale, reason := s.authenticate(ctx, req, credHeader)
	switch res {
	case authWait:
		return user, false, outcomeWait
	case authOK:
		s.guard.Succeed(ip)
		return user, true, "ok"
	case authChallenge:
		s.reply(req, tx, code, phrase, s.challenges(req, chalHeader, stale)...)
		return user, false, "challenged"
	case authBad:
		s.reply(req, tx, sip.StatusBadRequest, reason)
		return user, false, "bad_request"
	case authUnavail:
		s.reply(req, tx, sip.StatusServiceUnavailable, "Service Unavailable (account not reachable)", sip.NewHeader("Retry-After", "30"))
		return user, false, "unavailable"
	}
	s.m.authFailures.Inc()
	if s.guard.Fail(ip, now) {
		s.m.blocks.Inc()
		s.log.Warn("source blocked after repeated authentication failures", "source", ip, "for", s.cfg.BlockFor)
	}
	s.reply(req, tx, sip.StatusForbidden, "Forbidden")
	return user, false, "auth_failed"
}

// challenges returns one challenge header per configured algorithm, or
// MD5 alone for a client whose User-Agent names an agent known to give up
// on a 401 that carries any other algorithm.
func (s *Server) challenges(req *sip.Request, name string, stale bool) []sip.Header {
	now := time.Now()
	algs := s.cfg.Algorithms
	if s.md5Only(req) {
		algs = []digest.Algorithm{digest.MD5}
	}
	out := make([]sip.Header, 0, len(algs))
	for _, alg := range algs {
		c := digest.Challenge{Realm: s.cfg.Domain, Nonce: s.nonces.New(now), Algorithm: alg, QOP: "auth", Stale: stale}
		out = append(out, sip.NewHeader(name, c.String()))
	}
	return out
}

// md5Only reports whether req comes from an agent listed in
// Config.MD5OnlyAgents, and MD5 is offered at all.
func (s *Server) md5Only(req *sip.Request) bool {
	if len(s.cfg.MD5OnlyAgents) == 0 || !slices.Contains(s.cfg.Algorithms, digest.MD5) {
		return false
	}
	h := req.GetHeader("User-Agent")
	if h == nil {
		return false
	}
	ua := strings.ToLower(h.Value())
	for _, a := range s.cfg.MD5OnlyAgents {
		if a != "" && strings.Contains(ua, strings.ToLower(a)) {
			return true
		}
	}
	return false
}

// sourceIP returns the IP a request came from.
func sourceIP(req *sip.Request) string {
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		return req.Source()
	}
	return host
}

// guard blocks a source address after repeated authentication failures.
type guard struct {
	after         int
	window, block time.Duration

	mu      sync.Mutex
	fails   map[string][]time.Time
	blocked map[string]time.Time // until
}

func newGuard(after int, window, block time.Duration) *guard {
	return &guard{after: after, window: window, block: block, fails: map[string][]time.Time{}, blocked: map[string]time.Time{}}
}

// Blocked reports whether ip is blocked at now.
func (g *guard) Blocked(ip string, now time.Time) bool {
	if g.after <= 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.blocked[ip]
	if ok && now.Before(until) {
		return true
	}
	delete(g.blocked, ip)
	return false
}

// Fail records a failed authentication and reports whether ip is now blocked.
func (g *guard) Fail(ip string, now time.Time) bool {
	if g.after <= 0 {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	ts := g.fails[ip][:0]
	for _, t := range g.fails[ip] {
		if now.Sub(t) < g.window {
			ts = append(ts, t)
		}
	}
	ts = append(ts, now)
	if len(ts) >= g.after {
		delete(g.fails, ip)
		g.blocked[ip] = now.Add(g.block)
		return true
	}
	g.fails[ip] = ts
	// Bound the map: drop sources whose failures have all aged out.
	if len(g.fails) > 100000 {
		for k, v := range g.fails {
			if now.Sub(v[len(v)-1]) >= g.window {
				delete(g.fails, k)
			}
		}
	}
	return false
}

// Succeed forgets the failures of ip.
func (g *guard) Succeed(ip string) {
	if g.after <= 0 {
		return
	}
	g.mu.Lock()
	delete(g.fails, ip)
	g.mu.Unlock()
}

// aorLocks serializes updates of one AOR's bindings.
type aorLocks struct {
	mu sync.Mutex
	m  map[string]*aorLock
}

type aorLock struct {
	sync.Mutex
	refs int
}

func (l *aorLocks) lock(aor string) func() {
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*aorLock{}
	}
	k := l.m[aor]
	if k == nil {
		k = &aorLock{}
		l.m[aor] = k
	}
	k.refs++
	l.mu.Unlock()
	k.Lock()
	return func() {
		k.Unlock()
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.m, aor)
		}
		l.mu.Unlock()
	}
}
