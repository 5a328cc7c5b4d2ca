package routing

import (
	"fmt"
	"time"

	"github.com/callmesh/callmesh/media/quality"
	"github.com/callmesh/callmesh/sla"
)

// Request is one call to route.
type Request struct {
	// From is the ingress node. Exactly one of To (the egress node, for a
	// call to a user of the federation) and Number (an E.164 number, for a
	// call a provider terminates) is set.
	From, To string
	Number   string
	// Class is the call's class: its policy limits the path and provider
	// and SLA segments are matched against it. "" is a class like any
	// other; when the policy does not list it, it has no limits.
	Class string
	// FromClass and ToClass are the user classes of the caller and the
	// callee for the user-access legs; "" means Class.
	FromClass, ToClass string
	// At is when the call is placed; required.
	At time.Time
	// K is how many paths to return; 0 means DefaultK.
	K int
	// Codec overrides the graph's codec for this call.
	Codec string
	// Quarantined providers are left out.
	Quarantined map[string]bool
	// Active, when not nil, holds the live call counts by SLA id and
	// replaces the catalogue's Calls (an SLA it does not list has none).
	Active map[string]int
}

// Path is one route, with its price and predicted quality.
type Path struct {
	// Hops lists the vertices from ingress to egress, both end nodes
	// included (["A","cheapnet","B"]), or ending with the terminating
	// provider for a number (["A","cheapnet","termco"]).
	Hops []string `json:"hops"`
	// SLAs lists, for each edge, its contract (or interconnect, or direct
	// link) and then, for a peer's contract, the peering SLA.
	SLAs           []string  `json:"slas"`
	PricePerMinute sla.Money `json:"price_per_minute"`
	// DelayMs and LossPct are the network one-way delay and loss, without
	// the access legs: composed from the edges or, when Measured, the
	// whole-path measurement.
	DelayMs float64 `json:"delay_ms"`
	LossPct float64 `json:"loss_pct"`
	// R and MOS are the E-model's prediction for the call.
	R   float64 `json:"r"`
	MOS float64 `json:"mos"`
	// MaxDuration is the tightest cap of the segments the path uses
	// (SLA segments and provider transit and termination segments); 0 is
	// none.
	MaxDuration time.Duration `json:"max_duration,omitempty"`
	Measured    bool          `json:"measured,omitempty"`
}

// Rejection says why a provider or an SLA was left out of a plan.
type Rejection struct {
	ID     string `json:"id"`
	Reason string `json:"reason"`
}

// Reasons of a Rejection.
const (
	ReasonExpired       = "expired"
	ReasonNotYetValid   = "not yet valid"
	ReasonSegment       = "segment/hours mismatch"
	ReasonCapacity      = "capacity"
	ReasonQuarantined   = "quarantined"
	ReasonNoTransit     = "no transit for destination"
	ReasonTrunkNotLast  = "trunk not last"
	ReasonShorterPrefix = "shorter termination prefix"
	ReasonOverPolicy    = "over policy" // followed by ": " and the limit
)

// Result is a plan: the best paths in order, what was left out on the way
// and, when there is no path, why.
type Result struct {
	Paths    []Path      `json:"paths"`
	Currency string      `json:"currency,omitempty"`
	Rejected []Rejection `json:"rejected,omitempty"`
	Reason   string      `json:"reason,omitempty"`
}

// Policy limits, for counting what pruned paths.
const (
	limPrice = iota
	limDelay
	limLoss
	limMOS
	numLimits
)

var limitNames = [numLimits]string{"max_price_per_minute", "max_delay_ms", "max_loss_pct", "min_mos"}

// Provider state flags, per request.
const (
	fQuarantined = 1 << iota
	fTransit
	fTerm        // terminates the number at the longest prefix
	fTermShorter // terminates the number, at a shorter prefix
	fReported    // a rejection was recorded
)

// SLA state codes, per request.
const (
	sOK = iota
	sExpired
	sNotYet
	sSegment
	sCapacity
)

var slaReasons = [...]string{"", ReasonExpired, ReasonNotYetValid, ReasonSegment, ReasonCapacity}

// slaState is an SLA's feasibility for the request, valid when gen is the
// planner's.
type slaState struct {
	gen      uint32
	state    uint8
	reported bool // over-policy rejection recorded
}

// label is a path prefix from the ingress node to the provider v.
type label struct {
	price  sla.Money
	f      sla.Money // price + the bound at v: the queue's key
	delay  float64
	surv   float64
	mask   uint64 // bit v%64 of every vertex on the prefix
	parent int32  // -1 for the root
	edge   int32  // edge that reached v; -1 for the root
	v      int32
	trie   int32 // measured-sequence trie node, -1 when none
	hops   int16 // providers on the prefix
	dom    int32 // labels known to dominate this one
	dead   bool
}

// cand is a complete feasible path in the running top k.
type cand struct {
	price    sla.Money
	delay    float64
	loss     float64
	r, mos   float64
	hops     int
	measured bool
	verts    []int32
	edges    []int32
}

// planner is the per-request state, pooled per Graph. Per-SLA and
// per-provider caches are valid when their generation equals gen.
type planner struct {
	g   *Graph
	gen uint32

	sla       []slaState
	provGen   []uint32
	provFlags []uint8
	termLenOf []int32 // matching termination prefix, -1 none; set in reset

	labels  []label
	heap    []int32
	atV     [][]int32 // undominated labels per vertex, for dominance
	touched []int32

	best  []*cand
	spare []*cand
	chain []int32

	rejected []Rejection
	hits     [numLimits]int

	// the request
	req         Request
	at          int64 // req.At in clamped Unix ns
	from, to    int32 // to is -1 for a number
	k, maxHops  int
	pol         sla.ClassPolicy
	codec       quality.Codec
	call        sla.Call    // Service set per use
	termLen     int         // longest termination prefix; -1 when none
	h           []sla.Money // lower bounds to the target, per vertex (bound.go)
	fixedDelay  float64     // access legs + jitter buffer + packetization
	accessSurv  float64
	hasMeasured bool
	checkMOS    bool
	checkDelay  bool
	checkLoss   bool
	checkPrice  bool
}

func newPlanner(g *Graph) *planner {
	nv, ns := len(g.ids), len(g.slas)
	return &planner{
		g:         g,
		sla:       make([]slaState, ns),
		provGen:   make([]uint32, nv),
		provFlags: make([]uint8, nv),
		termLenOf: make([]int32, nv),
		atV:       make([][]int32, nv),
	}
}

// Plan returns the request's k best feasible paths in order (see the
// package documentation for the rules and the order), the providers and
// SLAs it left out on the way, and, when there is no feasible path, the
// reason. It fails on a malformed request, an unknown node, class or
// codec.
func (g *Graph) Plan(req Request) (Result, error) {
	p := g.pool.Get().(*planner)
	defer g.pool.Put(p)
	if err := p.reset(req); err != nil {
		return Result{}, err
	}
	p.search()
	return p.result(), nil
}

func (p *planner) reset(req Request) error {
	g := p.g
	if req.At.IsZero() {
		return fmt.Errorf("%w: no time", ErrRequest)
	}
	from, ok := g.index[req.From]
	if !ok || g.prov[from] != nil {
		return fmt.Errorf("%w %q", ErrUnknownNode, req.From)
	}
	p.from, p.to = from, -1
	switch {
	case (req.To == "") == (req.Number == ""):
		return fmt.Errorf("%w: exactly one of To and Number", ErrRequest)
	case req.To != "":
		to, ok := g.index[req.To]
		if !ok || g.prov[to] != nil {
			return fmt.Errorf("%w %q", ErrUnknownNode, req.To)
		}
		if to == from {
			return fmt.Errorf("%w: From and To are both %q", ErrRequest, req.To)
		}
		p.to = to
	}
	pol, ok := g.policy[req.Class]
	if !ok && req.Class != "" {
		return fmt.Errorf("%w %q", ErrUnknownClass, req.Class)
	}
	p.pol = pol
	p.maxHops = pol.MaxHops
	if p.maxHops <= 0 {
		p.maxHops = sla.DefaultMaxHops
	}
	p.codec = g.codec
	if req.Codec != "" {
		c, ok := quality.LookupCodec(req.Codec, !g.opt.NoPLC)
		if !ok {
			return fmt.Errorf("%w %q", ErrUnknownCodec, req.Codec)
		}
		p.codec = c
	}
	if req.K < 0 {
		return fmt.Errorf("%w: negative K", ErrRequest)
	}
	p.k = req.K
	if p.k == 0 {
		p.k = DefaultK
	}
	p.req = req
	p.at = unixNano(req.At)
	p.call = sla.Call{Number: req.Number, Class: req.Class, At: req.At}
	p.checkPrice = pol.MaxPricePerMinute > 0
	p.checkDelay = pol.MaxDelayMs > 0
	p.checkLoss = pol.MaxLossPct > 0
	p.checkMOS = pol.MinMOS > 0
	p.hasMeasured = len(g.trie) > 0

	p.gen++
	if p.gen == 0 { // wrapped: every cache entry may look current
		clear(p.sla)
		clear(p.provGen)
		p.gen = 1
	}
	for _, v := range p.touched {
		p.atV[v] = p.atV[v][:0]
	}
	p.touched = p.touched[:0]
	p.labels = p.labels[:0]
	p.heap = p.heap[:0]
	p.spare = append(p.spare, p.best...)
	p.best = p.best[:0]
	p.rejected = p.rejected[:0]
	p.hits = [numLimits]int{}

	// Access legs, then the delay every path adds.
	d, surv := 0.0, 1.0
	ends := [2]struct{ node, class string }{{req.From, req.FromClass}, {req.To, req.ToClass}}
	for _, end := range ends {
		if end.node == "" {
			continue
		}
		if end.class == "" {
			end.class = req.Class
		}
		for _, si := range g.access[accessKey{end.node, end.class}] {
			if g.slas[si].ValidAt(req.At) {
				f := g.accFig[si]
				d += f[0]
				surv *= 1 - f[1]/100
				break
			}
		}
	}
	p.fixedDelay = d + g.opt.JitterBufferMs + p.codec.PtimeMs + p.codec.LookaheadMs
	p.accessSurv = surv

	// The longest termination prefix over the whole catalogue.
	p.termLen = -1
	if req.Number != "" {
		c := p.call
		c.Service = sla.Termination
		for _, v := range g.terms {
			_, n, ok := g.prov[v].Offers(c)
			p.termLenOf[v] = -1
			if !ok {
				continue
			}
			p.termLenOf[v] = int32(n)
			p.termLen = max(p.termLen, n)
		}
		loc := "*"
		if p.termLen > 0 {
			loc = req.Number[:p.termLen]
		}
		p.h = g.termBound(loc)
	} else {
		p.h = g.nodeBound(p.to)
	}
	return nil
}
