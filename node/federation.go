package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/callmesh/callmesh/election"
	"github.com/callmesh/callmesh/gossip"
	"github.com/callmesh/callmesh/node/b2bua"
	"github.com/callmesh/callmesh/node/sipedge"
	"github.com/callmesh/callmesh/routing"
	"github.com/callmesh/callmesh/sla"
)

// MasterProtocol is the stream on which an ingress node asks a session's
// master for its path. One request, one answer, JSON, each a uvarint-free
// single line (the stream is closed after the answer).
const MasterProtocol protocol.ID = "/callmesh/master/1.0.0"

const (
	masterVersion    = 1
	maxMasterMessage = 64 << 10
)

// masterRequest asks for a session's failover list.
type masterRequest struct {
	V       int    `json:"v"`
	Session string `json:"session"`
	Ingress string `json:"ingress"`          // node name
	Egress  string `json:"egress,omitempty"` // node name of a callee user
	Number  string `json:"number,omitempty"` // or a number
	Callee  string `json:"callee"`           // user part of the Request-URI
	Class   string `json:"class"`
	// Avoid lists providers the ingress skips for now (their first hop
	// answered 503 with Retry-After).
	Avoid []string `json:"avoid,omitempty"`
}

// masterResponse is the master's answer: paths best first, and for each a
// token for its egress node ("" for a path ending at a terminating
// provider).
type masterResponse struct {
	V      int            `json:"v"`
	Master string         `json:"master"` // name
	Paths  []routing.Path `json:"paths"`
	Tokens []string       `json:"tokens"`
	Reason string         `json:"reason,omitempty"`
	Error  string         `json:"error,omitempty"`
}

// federation carries the node's calls beyond it: it is the b2bua's
// Federation and the SIP edge's Sessions.
type federation struct {
	n      *Node
	tokens *tokenBook

	mu       sync.Mutex
	skip     map[string]time.Time       // provider → skipped until (its 503 Retry-After)
	graph    *routing.Graph             // built from graphCat
	graphCat *sla.Catalogue             // the catalogue graph was built from
	creds    map[string]sla.AccessPoint // this node's trunk credentials by access point URI
	secrets  map[string]string          // password by access point URI
}

func newFederation(n *Node) (*federation, error) {
	f := &federation{
		n: n, skip: map[string]time.Time{},
		creds: map[string]sla.AccessPoint{}, secrets: map[string]string{},
	}
	f.tokens = newTokenBook(n.cfg.Name, func(id peer.ID) bool {
		if id == n.id {
			return true
		}
		_, ok := n.members.member(id)
		return ok
	})
	cat, err := n.cfg.Catalogue()
	if err != nil {
		return nil, err
	}
	for _, p := range cat.Providers {
		for _, ap := range p.AccessPoints {
			if ap.Username == "" || ap.PasswordFile == "" {
				continue
			}
			pw, err := os.ReadFile(n.cfg.Path(ap.PasswordFile))
			if err != nil {
				return nil, fmt.Errorf("providers %s: password_file: %w", p.ID, err)
			}
			f.creds[ap.URI], f.secrets[ap.URI] = ap, strings.TrimSpace(string(pw))
		}
	}
	n.host.SetStreamHandler(MasterProtocol, f.serve)
	return f, nil
}

// Admit is sipedge.Sessions: the egress node's check of a session token.
func (f *federation) Admit(token, callee string) (string, []string, []string, error) {
	t, err := f.tokens.Admit(token, callee, time.Now())
	if err != nil {
		return "", nil, nil, err
	}
	return t.Session, t.Hops, t.SLAs, nil
}

// Unavailable skips a provider for d (its first hop's 503 Retry-After).
// Skips that have run out are dropped here, on the real clock.
func (f *federation) Unavailable(provider string, d time.Duration) {
	if provider == "" {
		return
	}
	now := time.Now()
	f.mu.Lock()
	for p, until := range f.skip {
		if !now.Before(until) {
			delete(f.skip, p)
		}
	}
	f.skip[provider] = now.Add(d)
	f.mu.Unlock()
	f.n.log.Info("provider skipped", "provider", provider, "for", d)
}

// skipped lists the providers skipped at now. It only reads: now may be a
// time an admin query asks about, so it must not drop live skips.
func (f *federation) skipped(now time.Time) map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for p, until := range f.skip {
		if now.Before(until) {
			out[p] = true
		}
	}
	return out
}

// Ended records a finished call's path measurement for routing and
// compliance.
func (f *federation) Ended(r b2bua.Record) {
	f.n.log.Debug("federation call ended", "session", r.Session, "slas", r.SLAs, "answered", r.Answered)
	if len(r.SLAs) == 0 {
		return
	}
	m := CallMeasure{Answered: r.Answered, PDDMs: float64(r.PDD) / float64(time.Millisecond)}
	if q := r.Quality; q != nil && q.PacketsIn > 0 {
		m.HasQuality = true
		m.HasDelay, m.DelayMs = q.RTTKnown, q.RTTMs/2
		m.LossPct, m.JitterMs, m.MOS = q.LossPct, q.JitterMs, q.MOS
	}
	f.n.RecordCall(r.SLAs, m)
}

// candidates is the election's view: this node and every member.
func (f *federation) candidates() []election.Candidate {
	n := f.n
	out := []election.Candidate{{
		ID: n.id.String(), Name: n.cfg.Name, Capacity: n.cfg.Capacity, ActiveCalls: n.activeCalls(),
		Load: n.load(), Health: 1, Draining: n.draining(), Live: true,
	}}
	for _, m := range n.View().Members() {
		out = append(out, election.Candidate{
			ID: m.ID.String(), Name: m.Name, Capacity: m.Capacity, ActiveCalls: m.ActiveCalls,
			Load: m.Load, Health: 1, Draining: m.Draining, Live: m.State == gossip.Live,
		})
	}
	return out
}

// Elect ranks the nodes for a session from this node's view: the master
// first, then its successors.
func (n *Node) Elect(session string) []election.Ranked {
	return election.Rank(session, n.fed.candidates())
}

// Plan is b2bua.Federation: locate the callee, ask the session's master
// (the next in rank when one does not answer), and turn its paths into
// attempts.
func (f *federation) Plan(ctx context.Context, q b2bua.PlanQuery) (*b2bua.Plan, error) {
	n := f.n
	req := masterRequest{V: masterVersion, Session: newSessionID(), Ingress: n.cfg.Name, Callee: q.Callee, Class: q.Class}
	for p := range f.skipped(time.Now()) {
		req.Avoid = append(req.Avoid, p)
	}
	egressSIP := ""
	if q.Number {
		req.Number = q.Callee
	} else {
		loc, err := n.Locate(ctx, normalizeAOR(q.Callee+"@"+n.cfg.Domain))
		switch {
		case errors.Is(err, ErrNotRegistered):
			if _, found, aerr := n.Account(ctx, q.Callee); aerr == nil && !found {
				return nil, b2bua.ErrUnknown
			}
			return nil, b2bua.ErrNotRegistered
		case err != nil:
			return nil, fmt.Errorf("%w: callee not located: %v", b2bua.ErrNoPath, err)
		}
		req.Egress, egressSIP = loc.Name, loc.SIP
	}
	res, master, err := f.askMasters(ctx, req)
	if err != nil {
		return nil, err
	}
	if len(res.Paths) == 0 {
		reason := res.Reason
		if reason == "" {
			reason = "no feasible path"
		}
		return nil, fmt.Errorf("%w: %s", b2bua.ErrNoPath, reason)
	}
	plan := &b2bua.Plan{Session: req.Session, Master: master}
	cat := n.Catalogue()
	for i, p := range res.Paths {
		token := ""
		if i < len(res.Tokens) {
			token = res.Tokens[i]
		}
		att, err := f.attempt(cat, p, q, egressSIP, token)
		if err != nil {
			n.log.Warn("path left out", "session", req.Session, "path", p.Hops, "err", err)
			continue
		}
		plan.Attempts = append(plan.Attempts, att)
	}
	if len(plan.Attempts) == 0 {
		return nil, fmt.Errorf("%w: no path could be addressed", b2bua.ErrNoPath)
	}
	return plan, nil
}

func newSessionID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "s-" + hex.EncodeToString(b[:])
}

// askMasters asks the session's master, then its successors in rank, each
// for at most masterTimeout; this node answers itself when it is next.
func (f *federation) askMasters(ctx context.Context, req masterRequest) (masterResponse, string, error) {
	ranking := f.n.Elect(req.Session)
	var errs []error
	for _, r := range ranking {
		if r.ID == f.n.id.String() {
			res, err := f.master(req)
			if err != nil {
				f.n.m.masterReqs.WithLabelValues("error").Inc()
				return masterResponse{}, "", err
			}
			f.n.m.masterReqs.WithLabelValues("local").Inc()
			return res, f.n.cfg.Name, nil
		}
		id, err := peer.Decode(r.ID)
		if err != nil {
			continue
		}
		res, err := f.ask(ctx, id, req)
		if err == nil {
			f.n.m.masterReqs.WithLabelValues("ok").Inc()
			return res, r.Name, nil
		}
		f.n.m.masterReqs.WithLabelValues("failed").Inc()
		errs = append(errs, fmt.Errorf("%s: %w", r.Name, err))
		f.n.log.Info("master did not answer; asking the next", "session", req.Session, "master", r.Name, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	return masterResponse{}, "", fmt.Errorf("%w: no master answered: %v", b2bua.ErrNoPath, errors.Join(errs...))
}

// masterTimeout bounds one master's answer.
const masterTimeout = time.Second

func (f *federation) ask(ctx context.Context, id peer.ID, req masterRequest) (masterResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, masterTimeout)
	defer cancel()
	s, err := f.n.host.NewStream(network.WithAllowLimitedConn(ctx, "master"), id, MasterProtocol)
	if err != nil {
		return masterResponse{}, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	if err := json.NewEncoder(s).Encode(req); err != nil {
		s.Reset()
		return masterResponse{}, err
	}
	_ = s.CloseWrite()
	var res masterResponse
	if err := json.NewDecoder(io.LimitReader(s, maxMasterMessage)).Decode(&res); err != nil {
		s.Reset()
		return masterResponse{}, err
	}
	if res.V != masterVersion {
		return masterResponse{}, fmt.Errorf("master protocol version %d", res.V)
	}
	if res.Error != "" {
		return masterResponse{}, errors.New(res.Error)
	}
	return res, nil
}

// serve answers one master request from another node.
func (f *federation) serve(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	var req masterRequest
	line, err := bufio.NewReader(io.LimitReader(s, maxMasterMessage)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var res masterResponse
	switch {
	case err != nil:
		res = masterResponse{V: masterVersion, Error: "bad request: " + err.Error()}
	case req.V != masterVersion:
		res = masterResponse{V: masterVersion, Error: fmt.Sprintf("unknown version %d", req.V)}
	default:
		if res, err = f.master(req); err != nil {
			res = masterResponse{V: masterVersion, Error: err.Error()}
		}
	}
	_ = json.NewEncoder(s).Encode(res)
}

// master computes a session's paths and signs a token for each: the
// master's part of a call. Answers are not remembered: the ingress makes a
// fresh session id for every Plan and asks each node in the ranking at most
// once, so no master sees a session twice.
func (f *federation) master(req masterRequest) (masterResponse, error) {
	if req.Session == "" || req.Ingress == "" || req.Callee == "" || (req.Egress == "") == (req.Number == "") {
		return masterResponse{}, errors.New("bad request: session, ingress, callee and one of egress or number required")
	}
	now := time.Now()
	g, err := f.graphFor(f.n.Catalogue())
	if err != nil {
		return masterResponse{}, err
	}
	avoid := f.skipped(now)
	for _, p := range req.Avoid {
		avoid[p] = true
	}
	f.n.measures.fb.avoid(req.Session, avoid)
	result, err := g.Plan(routing.Request{
		From: req.Ingress, To: req.Egress, Number: req.Number, Class: req.Class, At: now,
		Quarantined: avoid,
	})
	if err != nil {
		return masterResponse{}, err
	}
	res := masterResponse{V: masterVersion, Master: f.n.cfg.Name, Paths: result.Paths, Reason: result.Reason}
	for _, p := range result.Paths {
		token := ""
		if req.Egress != "" {
			st := SessionToken{Session: req.Session, Master: f.n.id, Hops: p.Hops, SLAs: p.SLAs,
				Callee: req.Callee, Egress: req.Egress, Expires: now.Add(f.n.cfg.Calls.TokenTTL).UnixMilli()}
			if token, err = st.Sign(f.n.key); err != nil {
				return masterResponse{}, err
			}
		}
		res.Tokens = append(res.Tokens, token)
	}
	return res, nil
}

// graphFor returns the routing graph of a catalogue, rebuilt only when the
// catalogue changed.
func (f *federation) graphFor(cat *sla.Catalogue) (*routing.Graph, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.graph != nil && f.graphCat == cat {
		return f.graph, nil
	}
	g, err := routing.NewGraph(cat, routing.Options{})
	if err != nil {
		return nil, err
	}
	f.graph, f.graphCat = g, cat
	return g, nil
}

// attempt addresses one path: the first hop and the preloaded route set
// through the providers' access points to the egress node, whose Route URI
// carries the token; behind a trunk (last provider) the Request-URI carries
// the destination instead. Inter-node and node–provider legs use TCP:
// requests that cross four hops outgrow UDP.
func (f *federation) attempt(cat *sla.Catalogue, p routing.Path, q b2bua.PlanQuery, egressSIP, token string) (b2bua.Attempt, error) {
	hops := p.Hops
	providers := hops[1:]
	if !q.Number {
		if len(hops) < 2 {
			return b2bua.Attempt{}, errors.New("short path")
		}
		providers = hops[1 : len(hops)-1]
	}
	att := b2bua.Attempt{Hops: p.Hops, SLAs: p.SLAs, Transport: "TCP"}
	var routes []sip.Uri
	trunkLast := false
	for i, id := range providers {
		prov := cat.Provider(id)
		if prov == nil {
			return att, fmt.Errorf("provider %s not in the catalogue", id)
		}
		last := i == len(providers)-1
		ap, ok := pickAccessPoint(prov, last)
		if !ok {
			return att, fmt.Errorf("provider %s has no usable access point", id)
		}
		u, err := hopURI(ap.URI)
		if err != nil {
			return att, fmt.Errorf("provider %s: %w", id, err)
		}
		if i == 0 {
			att.Provider = id
		}
		if last && ap.Mode == sla.Trunk {
			trunkLast = true
			if c, ok := f.creds[ap.URI]; ok {
				att.Username, att.Password = c.Username, f.secrets[ap.URI]
			}
		}
		routes = append(routes, u)
	}
	var egress sip.Uri
	if !q.Number {
		u, err := hopURI("sip:" + egressSIP)
		if err != nil {
			return att, fmt.Errorf("egress %s: %w", egressSIP, err)
		}
		egress = u
		egress.UriParams.Add(sipedge.TokenParam, token)
	}
	switch {
	case q.Number && trunkLast:
		last := routes[len(routes)-1]
		att.Target = sip.Uri{Scheme: "sip", User: q.Callee, Host: last.Host, Port: last.Port, UriParams: sip.NewParams()}
		att.Target.UriParams.Add("transport", "tcp")
	case q.Number:
		att.Target = sip.Uri{Scheme: "sip", User: q.Callee, Host: f.n.cfg.Domain}
	case trunkLast, len(providers) == 0:
		// Behind a trunk (which routes on the Request-URI), or over a
		// direct node-node link: the egress node itself.
		att.Target = egress
		att.Target.User = q.Callee
		att.Target.UriParams.Remove("lr")
	default:
		att.Target = sip.Uri{Scheme: "sip", User: q.Callee, Host: f.n.cfg.Domain}
		routes = append(routes, egress)
	}
	att.Routes = routes
	first := att.Target
	if len(routes) > 0 {
		first = routes[0]
	}
	att.Dest = net.JoinHostPort(first.Host, strconv.Itoa(first.Port))
	return att, nil
}

// pickAccessPoint chooses the access point of a provider in a path: a proxy
// one inside the path; the last provider may also be reached through a
// trunk, a proxy one preferred.
func pickAccessPoint(p *sla.Provider, last bool) (sla.AccessPoint, bool) {
	for _, ap := range p.AccessPoints {
		if ap.Mode == sla.Proxy {
			return ap, true
		}
	}
	if last {
		for _, ap := range p.AccessPoints {
			if ap.Mode == sla.Trunk {
				return ap, true
			}
		}
	}
	return sla.AccessPoint{}, false
}

// hopURI is a loose-routing hop over TCP: the URI with lr and
// transport=tcp, port 5060 when none is given.
func hopURI(s string) (sip.Uri, error) {
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return u, err
	}
	u.User, u.Password = "", ""
	if u.Port == 0 {
		u.Port = 5060
	}
	params := sip.NewParams()
	params.Add("transport", "tcp")
	params.Add("lr", "")
	u.UriParams = params
	u.Headers = nil
	return u, nil
}
