package node

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/callmesh/callmesh/election"
	"github.com/callmesh/callmesh/routing"
	"github.com/callmesh/callmesh/sla"
)

// SLAEntry is one SLA of the federation's catalogue as a node sees it.
type SLAEntry struct {
	ID         string     `json:"id"`
	Kind       sla.Kind   `json:"kind"`
	Between    [2]string  `json:"between"`
	Issuer     string     `json:"issuer"`    // the publishing node's name
	IssuerID   string     `json:"issuer_id"` // its peer ID
	Voucher    string     `json:"voucher,omitempty"`
	Seq        string     `json:"seq"`
	Expires    time.Time  `json:"expires"`
	PerMinute  sla.Money  `json:"per_minute"`
	Currency   string     `json:"currency,omitempty"`
	Compliance sla.Record `json:"compliance"`
}

// SLAListResponse is GET /api/v1/slas.
type SLAListResponse struct {
	SLAs []SLAEntry `json:"slas"`
}

// SLAOfferRequest is POST /api/v1/slas: a catalogue document (YAML or
// JSON) with the SLAs to offer and the providers they name.
type SLAOfferRequest struct {
	Catalogue string `json:"catalogue"`
}

// SLAOfferResponse lists the SLAs published.
type SLAOfferResponse struct {
	Offered []string `json:"offered"`
}

// RouteResponse is GET /api/v1/route: the plan for a call from one user to
// another user or a number, on this node's live view.
type RouteResponse struct {
	From  string `json:"from"`  // ingress node
	To    string `json:"to"`    // egress node, or the number
	Class string `json:"class"` // the class planned for
	routing.Result
}

func (n *Node) registerSLAAPI(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/v1/slas", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, SLAListResponse{SLAs: n.SLAs()})
	})
	mux.HandleFunc("POST /api/v1/slas", n.handleOfferSLAs)
	mux.HandleFunc("DELETE /api/v1/slas/{id}", n.handleWithdrawSLA)
	mux.HandleFunc("GET /api/v1/route", n.handleRoute)
	mux.HandleFunc("GET /api/v1/providers", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, ProvidersResponse{Providers: n.Providers()})
	})
	mux.HandleFunc("GET /api/v1/elect", func(w http.ResponseWriter, r *http.Request) {
		session := r.URL.Query().Get("session")
		if session == "" {
			writeError(w, http.StatusBadRequest, "session is required")
			return
		}
		writeJSON(w, ElectResponse{Session: session, Ranking: n.Elect(session)})
	})
}

// ElectResponse is GET /api/v1/elect: a session's master and its successors
// from this node's membership view.
type ElectResponse struct {
	Session string            `json:"session"`
	Ranking []election.Ranked `json:"ranking"`
}

// SLAs lists the federation's catalogue with each SLA's compliance record.
func (n *Node) SLAs() []SLAEntry {
	entries := n.slas.current()
	out := make([]SLAEntry, 0, len(entries))
	for _, e := range entries {
		s := e.offer.SLA
		name := e.offer.Issuer
		out = append(out, SLAEntry{
			ID: s.ID, Kind: s.Kind, Between: s.Between, Issuer: name, IssuerID: e.env.Issuer.String(),
			Voucher: s.Voucher, Seq: e.env.Seq.String(), Expires: time.UnixMilli(e.env.Expires).UTC(),
			PerMinute: s.Price.PerMinute, Currency: s.Price.Currency,
			Compliance: n.measures.Compliance(s.ID),
		})
	}
	return out
}

// Catalogue returns the federation's catalogue as this node knows it, with
// its recent measurements and class policy.
//
// The result is shared and rebuilt only when the offers or the measurements
// changed, so that the routing graph built from it (federation.graphFor)
// is too: callers must not modify it.
func (n *Node) Catalogue() *sla.Catalogue {
	base := n.slas.Catalogue()
	ver := n.measures.Version()
	c := &n.catCache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cat != nil && c.base == base && c.ver == ver {
		return c.cat
	}
	cat := *base
	paths := n.measures.Measurements()
	// A single-provider path measures its provider's two edges directly:
	// routing takes those for the edges of other paths too.
	for _, m := range paths {
		cat.Measurements = append(cat.Measurements, sla.AttributePath(m, base)...)
	}
	cat.Measurements = append(cat.Measurements, paths...)
	c.cat, c.base, c.ver = &cat, base, ver
	return c.cat
}

// catalogueCache holds Node.Catalogue's last result and what it was built
// from.
type catalogueCache struct {
	mu   sync.Mutex
	base *sla.Catalogue
	ver  uint64
	cat  *sla.Catalogue
}

// OfferSLAs publishes the SLAs of a catalogue document as this node's.
func (n *Node) OfferSLAs(doc []byte) ([]string, error) {
	cat, err := sla.ParseCatalogue(doc)
	if err != nil {
		return nil, err
	}
	if len(cat.SLAs) == 0 {
		return nil, &sla.FieldError{Field: "slas", Msg: "no SLA to offer"}
	}
	return n.slas.Offer(cat)
}

// WithdrawSLA withdraws an SLA this node published.
func (n *Node) WithdrawSLA(id string) error { return n.slas.Withdraw(id) }

func (n *Node) handleOfferSLAs(w http.ResponseWriter, r *http.Request) {
	var req SLAOfferRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "request: "+err.Error())
		return
	}
	ids, err := n.OfferSLAs([]byte(req.Catalogue))
	if err != nil {
		var fe *sla.FieldError
		if errors.As(err, &fe) {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, SLAOfferResponse{Offered: ids})
}

func (n *Node) handleWithdrawSLA(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	err := n.WithdrawSLA(id)
	switch {
	case errors.Is(err, ErrNotOwnSLA):
		writeError(w, http.StatusNotFound, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// RouteRequest is a plan asked of a running node: from a user to a user or
// a number.
type RouteRequest struct {
	From  string    // caller's address of record (user or user@domain)
	To    string    // callee's address of record, or a number "+…"
	Class string    // "" = the caller's account class
	At    time.Time // zero = now
	K     int       // 0 = routing's default
}

// errRouteInput marks a route request the node cannot plan for.
var errRouteInput = errors.New("route")

// Route plans a call on this node's live view: the ingress node is where
// the caller is registered (this node if nowhere), the egress node where
// the callee is; a number is planned to a terminating provider.
func (n *Node) Route(ctx context.Context, req RouteRequest) (RouteResponse, error) {
	from := normalizeAOR(n.qualify(req.From))
	ingress := n.cfg.Name
	if loc, err := n.Locate(ctx, from); err == nil && loc.Name != "" {
		ingress = loc.Name
	}
	class := req.Class
	if class == "" {
		user, _, _ := strings.Cut(from, "@")
		if acct, found, err := n.Account(ctx, user); err == nil && found {
			class = string(acct.Class)
		}
	}
	if class == "" {
		return RouteResponse{}, errors.Join(errRouteInput, errors.New("no class: give one, or a caller with an account"))
	}
	at := req.At
	if at.IsZero() {
		at = time.Now()
	}
	avoid := n.fed.skipped(at)
	n.measures.fb.quarantined(avoid)
	preq := routing.Request{From: ingress, Class: class, At: at, K: req.K, Quarantined: avoid}
	res := RouteResponse{From: ingress, Class: class}
	if num, ok := number(req.To); ok {
		preq.Number, res.To = num, num
	} else {
		to := normalizeAOR(n.qualify(req.To))
		loc, err := n.Locate(ctx, to)
		if err != nil {
			return RouteResponse{}, err
		}
		preq.To, res.To = loc.Name, loc.Name
	}
	g, err := n.fed.graphFor(n.Catalogue())
	if err != nil {
		return RouteResponse{}, err
	}
	res.Result, err = g.Plan(preq)
	if err != nil {
		return RouteResponse{}, errors.Join(errRouteInput, err)
	}
	return res, nil
}

// qualify adds the federation's domain to a bare user name.
func (n *Node) qualify(aor string) string {
	aor = strings.TrimPrefix(strings.TrimSpace(aor), "sip:")
	if !strings.Contains(aor, "@") {
		aor += "@" + n.cfg.Domain
	}
	return aor
}

// number reports whether s is a telephone number ("+" and digits, spaces,
// dashes and dots ignored), and returns it as "+DIGITS".
func number(s string) (string, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "tel:")
	if !strings.HasPrefix(s, "+") {
		return "", false
	}
	var b strings.Builder
	b.WriteByte('+')
	for _, c := range s[1:] {
		switch {
		case c >= '0' && c <= '9':
			b.WriteRune(c)
		case c == ' ' || c == '-' || c == '.':
		default:
			return "", false
		}
	}
	if b.Len() < 2 {
		return "", false
	}
	return b.String(), true
}

func (n *Node) handleRoute(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	req := RouteRequest{From: q.Get("from"), To: q.Get("to"), Class: q.Get("class")}
	if req.From == "" || req.To == "" {
		writeError(w, http.StatusBadRequest, "from and to are required")
		return
	}
	if s := q.Get("k"); s != "" {
		k, err := strconv.Atoi(s)
		if err != nil || k < 1 || k > 20 {
			writeError(w, http.StatusBadRequest, "k: want 1 to 20")
			return
		}
		req.K = k
	}
	if s := q.Get("at"); s != "" {
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "at: want RFC 3339")
			return
		}
		req.At = at
	}
	res, err := n.Route(r.Context(), req)
	switch {
	case errors.Is(err, ErrNotRegistered):
		writeError(w, http.StatusNotFound, req.To+": not registered")
	case errors.Is(err, errRouteInput):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusServiceUnavailable, err.Error())
	default:
		writeJSON(w, res)
	}
}

// ProvidersResponse is GET /api/v1/providers: each provider's standing in
// the feedback loop, as this node judges it.
type ProvidersResponse struct {
	Providers []ProviderStatus `json:"providers"`
}

// Providers lists each provider's standing (ok, demoted, quarantined,
// probation) and the share of new sessions it may carry.
func (n *Node) Providers() []ProviderStatus { return n.measures.fb.list() }
