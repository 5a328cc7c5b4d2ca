package routing

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/callmesh/callmesh/media/quality"
	"github.com/callmesh/callmesh/sla"
)

// Defaults of Options.
const (
	// DefaultJitterBufferMs is the receive jitter buffer's delay.
	DefaultJitterBufferMs = 40
	// DefaultDelayMs is an edge's delay when its SLA promises none and has
	// no measurement.
	DefaultDelayMs = 50
	// DefaultLossPct is an edge's loss when its SLA promises none and has
	// no measurement.
	DefaultLossPct = 1
	// DefaultK is how many paths Plan returns when the request says 0.
	DefaultK = 3
	// DefaultCodec is the codec assumed when neither the options nor the
	// request name one.
	DefaultCodec = "G.711"
)

// Errors of NewGraph and Plan; the returned errors wrap them.
var (
	ErrCurrency     = errors.New("routing: more than one currency")
	ErrCatalogue    = errors.New("routing: bad catalogue")
	ErrUnknownClass = errors.New("routing: unknown class")
	ErrUnknownNode  = errors.New("routing: unknown node")
	ErrUnknownCodec = errors.New("routing: unknown codec")
	ErrRequest      = errors.New("routing: bad request")
)

// Options set how a Graph predicts quality and fills missing guarantees.
// The zero value gives the documented defaults.
type Options struct {
	// JitterBufferMs is the receiver's jitter buffer delay added to the
	// mouth-to-ear delay; 0 means DefaultJitterBufferMs.
	JitterBufferMs float64
	// Codec is the codec assumed when a request names none; "" means
	// G.711. Names as quality.LookupCodec knows them.
	Codec string
	// NoPLC selects G.711 without packet-loss concealment; by default
	// G.711 is taken with the concealment of G.711 Appendix I.
	NoPLC bool
	// DefaultDelayMs and DefaultLossPct stand in for a guarantee of 0
	// ("none promised") on an edge without measurement; 0 means
	// DefaultDelayMs and DefaultLossPct.
	DefaultDelayMs, DefaultLossPct float64
}

func (o Options) withDefaults() (Options, error) {
	if o.JitterBufferMs == 0 {
		o.JitterBufferMs = DefaultJitterBufferMs
	}
	if o.Codec == "" {
		o.Codec = DefaultCodec
	}
	if o.DefaultDelayMs == 0 {
		o.DefaultDelayMs = DefaultDelayMs
	}
	if o.DefaultLossPct == 0 {
		o.DefaultLossPct = DefaultLossPct
	}
	for _, v := range []float64{o.JitterBufferMs, o.DefaultDelayMs, o.DefaultLossPct} {
		if !finiteNonNeg(v) {
			return o, fmt.Errorf("%w: options: negative or non-finite value %v", ErrRequest, v)
		}
	}
	if o.DefaultLossPct > 100 {
		return o, fmt.Errorf("%w: options: default loss %v%% above 100", ErrRequest, o.DefaultLossPct)
	}
	return o, nil
}

// Edge categories, in the order of a vertex's span.
const (
	catNodeProv = iota // node → provider (own or a peer's contract)
	catProvProv        // provider → provider (interconnect)
	catProvNode        // provider → node (own or a peer's contract)
	catDirect          // node → node direct link
	numCats
)

// edge is one way of moving from a vertex to the next: the SLA that carries
// it (a contract, an interconnect or a direct link), the peering SLA when
// the contract is a peer's, and its price and figures.
type edge struct {
	to    int32
	sla   int32
	peer  int32 // -1 when the contract is the vertex's own
	price sla.Money
	delay float64
	surv  float64 // 1 − loss/100
}

// trieNode is a node of the trie of measured SLA sequences.
type trieNode struct {
	next     []trieChild
	measured bool
	delay    float64
	lossPct  float64
}

type trieChild struct {
	sla, node int32
}

// Graph is a catalogue prepared for planning: vertices indexed, adjacency
// per vertex sorted by price, measurements resolved. Apart from the price
// lower bounds it computes per target on first use and caches (bound.go),
// it is immutable; it is safe for concurrent use. It keeps references to the catalogue's providers and SLA
// segments: do not modify the catalogue while the Graph is in use.
type Graph struct {
	opt      Options
	codec    quality.Codec
	currency string

	ids     []string // vertex ids: nodes and providers
	rank    []int32  // position of ids[v] in the sorted ids
	index   map[string]int32
	prov    []*sla.Provider // nil for a node
	proxy   []bool
	transit []bool             // provider transits everywhere, always
	hasTerm []bool             // provider has a termination service
	terms   []int32            // providers with a termination service
	termAt  map[string][]int32 // providers by termination location ("*" for any)

	slas     []*sla.SLA
	info     []slaInfo // compact copy of what slaOK reads
	slaRank  []int32
	slaIndex map[string]int32

	edges []edge
	span  [][numCats + 1]int32 // per vertex: edges[span[c]:span[c+1]] of category c

	access map[accessKey][]int32 // user-access SLAs by [node, class], catalogue order
	accFig map[int32][2]float64  // their delay and loss

	trie []trieNode // empty when there are no whole-path measurements

	from    []int32  // tail of each edge
	rev     []int32  // provider-provider and provider-node edges by head
	revSpan []int32  // rev[revSpan[v]:revSpan[v+1]] enter v
	bounds  sync.Map // target key → []sla.Money, see bound.go

	policy  map[string]sla.ClassPolicy
	skipped []Rejection

	pool sync.Pool // *planner
}

type accessKey struct{ node, class string }

// slaInfo is the part of an SLA that feasibility reads, kept compact so
// that a plan touching thousands of SLAs stays in cache.
type slaInfo struct {
	from, until int64 // validity in Unix ns, clamped; open bounds are MinInt64 and MaxInt64
	maxCalls    int32
	active      int32 // the catalogue's live count
	segs        bool  // has segments of its own
}

// unixNano is t in Unix nanoseconds, clamped to the years 1678–2261 that
// int64 nanoseconds can hold, so that comparisons keep the order of
// time.Time.
func unixNano(t time.Time) int64 {
	switch y := t.Year(); {
	case y < 1678:
		return math.MinInt64 + 1
	case y > 2261:
		return math.MaxInt64 - 1
	}
	return t.UnixNano()
}

// providerAlwaysTransits reports whether p offers transit on a "*"
// segment at all hours for every class, so that Offers need not be asked.
func providerAlwaysTransits(p *sla.Provider) bool {
	for _, sv := range p.Services {
		if sv.Type != sla.Transit {
			continue
		}
		for _, seg := range sv.Segments {
			if (seg.Location == "*" || seg.Location == "") && len(seg.Hours) == 0 && seg.Quality == "" {
				return true
			}
		}
	}
	return false
}

func finiteNonNeg(v float64) bool { return v >= 0 && !math.IsInf(v, 1) }

// NewGraph prepares cat for planning. It fails when the catalogue's SLAs
// use more than one currency (naming the SLA and its currency), when ids
// repeat, or when a price is negative. SLAs it cannot place (an unknown
// kind or party, a party that is the wrong kind of vertex) are left out and
// listed by Skipped. SLAs with an empty currency are not compared.
func NewGraph(cat *sla.Catalogue, opt Options) (*Graph, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	codec, ok := quality.LookupCodec(opt.Codec, !opt.NoPLC)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownCodec, opt.Codec)
	}
	g := &Graph{
		opt:      opt,
		codec:    codec,
		index:    make(map[string]int32),
		termAt:   make(map[string][]int32),
		slaIndex: make(map[string]int32, len(cat.SLAs)),
		access:   make(map[accessKey][]int32),
		accFig:   make(map[int32][2]float64),
		policy:   maps.Clone(cat.Policy.Classes),
	}

	// Providers first, then nodes: a node id that is also a provider id is
	// the provider.
	for i := range cat.Providers {
		p := &cat.Providers[i]
		if p.ID == "" {
			return nil, fmt.Errorf("%w: provider without id", ErrCatalogue)
		}
		if _, dup := g.index[p.ID]; dup {
			return nil, fmt.Errorf("%w: provider %q listed twice", ErrCatalogue, p.ID)
		}
		g.addVertex(p.ID, p)
	}
	isProv := func(id string) bool {
		v, ok := g.index[id]
		return ok && g.prov[v] != nil
	}
	addNode := func(id string) bool {
		if id == "" || isProv(id) {
			return false
		}
		if _, ok := g.index[id]; !ok {
			g.addVertex(id, nil)
		}
		return true
	}
	for _, n := range cat.Nodes {
		addNode(n.ID)
	}

	// SLAs: ids, currency, prices, parties.
	firstCur := -1
	kept := make([]bool, len(cat.SLAs))
	for i := range cat.SLAs {
		s := &cat.SLAs[i]
		if s.ID == "" {
			return nil, fmt.Errorf("%w: SLA without id", ErrCatalogue)
		}
		if _, dup := g.slaIndex[s.ID]; dup {
			return nil, fmt.Errorf("%w: SLA %q listed twice", ErrCatalogue, s.ID)
		}
		g.slaIndex[s.ID] = int32(i)
		g.slas = append(g.slas, s)
		if s.Kind != sla.UserAccess && s.Price.Currency != "" {
			if firstCur < 0 {
				firstCur, g.currency = i, s.Price.Currency
			} else if s.Price.Currency != g.currency {
				return nil, fmt.Errorf("%w: SLA %q is in %s, SLA %q in %s",
					ErrCurrency, s.ID, s.Price.Currency, cat.SLAs[firstCur].ID, g.currency)
			}
		}
		if s.Price.PerMinute < 0 || s.MarkupPerMinute < 0 || (s.Direct != nil && s.Direct.PerMinute < 0) {
			return nil, fmt.Errorf("%w: SLA %q has a negative price", ErrCatalogue, s.ID)
		}
		a, b := s.Between[0], s.Between[1]
		reason := ""
		switch s.Kind {
		case sla.NodeProvider:
			switch {
			case a == b || isProv(a) == isProv(b) || !addNode(a) && !addNode(b):
				reason = "needs one node and one known provider"
			}
		case sla.ProviderProvider:
			if a == b || !isProv(a) || !isProv(b) {
				reason = "needs two known providers"
			}
		case sla.NodeNode:
			if a == b || !addNode(a) || !addNode(b) {
				reason = "needs two nodes"
			}
		case sla.UserAccess:
			if !addNode(a) || b == "" {
				reason = "needs a node and a class"
			}
		default:
			reason = fmt.Sprintf("unknown kind %q", s.Kind)
		}
		if reason != "" {
			g.skipped = append(g.skipped, Rejection{ID: s.ID, Reason: reason})
			continue
		}
		kept[i] = true
	}
	g.rank = sortedRanks(g.ids)
	slaIDs := make([]string, len(g.slas))
	for i, s := range g.slas {
		slaIDs[i] = s.ID
	}
	g.slaRank = sortedRanks(slaIDs)

	// Measurements: the last single-SLA one per SLA; whole paths into the
	// trie.
	single := make([]int, len(g.slas))
	for i := range single {
		single[i] = -1
	}
	for mi := range cat.Measurements {
		m := &cat.Measurements[mi]
		if !finiteNonNeg(m.DelayMs) || !finiteNonNeg(m.LossPct) {
			continue
		}
		if len(m.Path) > 0 {
			// A whole path's figures replace the composed ones only when
			// its delay was timed; its loss reaches the edges through
			// their single-SLA measurements.
			if !m.DelayUnknown {
				g.addMeasuredPath(m)
			}
			continue
		}
		if si, ok := g.slaIndex[m.SLA]; ok {
			single[si] = mi
		}
	}
	figures := func(si int32, gDelay, gLoss float64) (delay, loss float64) {
		delay = gDelay
		if !(delay > 0) || math.IsInf(delay, 1) {
			delay = opt.DefaultDelayMs
		}
		if mi := single[si]; mi >= 0 {
			m := &cat.Measurements[mi]
			if !m.DelayUnknown {
				delay = m.DelayMs
			}
			return delay, min(m.LossPct, 100)
		}
		loss = gLoss
		if !(loss > 0) {
			loss = opt.DefaultLossPct
		}
		return delay, min(loss, 100)
	}

	g.info = make([]slaInfo, len(g.slas))
	for i, s := range g.slas {
		in := slaInfo{from: math.MinInt64, until: math.MaxInt64, segs: len(s.Segments) > 0,
			maxCalls: int32(min(max(s.Capacity.MaxCalls, 0), math.MaxInt32))}
		if !s.Valid.From.IsZero() {
			in.from = unixNano(s.Valid.From)
		}
		if !s.Valid.Until.IsZero() {
			in.until = unixNano(s.Valid.Until)
		}
		g.info[i] = in
	}
	for _, c := range cat.Calls {
		if si, ok := g.slaIndex[c.SLA]; ok {
			g.info[si].active = int32(min(max(c.Active, 0), math.MaxInt32))
		}
	}

	// Adjacency, collected per vertex and category.
	nv := len(g.ids)
	lists := make([][numCats][]edge, nv)
	add := func(from int32, cat int, e edge) { lists[from][cat] = append(lists[from][cat], e) }
	contractsOf := make(map[string][]int32) // node id → its node-provider SLAs
	var peerings []int32
	for i, s := range g.slas {
		if !kept[i] {
			continue
		}
		si := int32(i)
		switch s.Kind {
		case sla.NodeProvider:
			node, _ := s.Other(g.providerOf(s))
			contractsOf[node] = append(contractsOf[node], si)
		case sla.NodeNode:
			peerings = append(peerings, si)
		case sla.UserAccess:
			k := accessKey{s.Between[0], s.Between[1]}
			g.access[k] = append(g.access[k], si)
			d, l := figures(si, s.Guarantees.MaxDelayMs, s.Guarantees.MaxLossPct)
			g.accFig[si] = [2]float64{d, l}
		}
	}
	for i, s := range g.slas {
		if !kept[i] {
			continue
		}
		si := int32(i)
		d, l := figures(si, s.Guarantees.MaxDelayMs, s.Guarantees.MaxLossPct)
		base := edge{sla: si, peer: -1, price: s.Price.PerMinute, delay: d, surv: 1 - l/100}
		switch s.Kind {
		case sla.NodeProvider:
			p := g.index[g.providerOf(s)]
			n := g.index[mustOther(s, g.ids[p])]
			if carries(s, g.ids[n]) {
				e := base
				e.to = p
				add(n, catNodeProv, e)
			}
			if carries(s, g.ids[p]) {
				e := base
				e.to = n
				add(p, catProvNode, e)
			}
		case sla.ProviderProvider:
			a, b := g.index[s.Between[0]], g.index[s.Between[1]]
			e := base
			e.to = b
			add(a, catProvProv, e)
			if !s.OneWay {
				e.to = a
				add(b, catProvProv, e)
			}
		case sla.NodeNode:
			if s.Direct == nil {
				continue
			}
			gd, gl := s.Direct.MaxDelayMs, s.Direct.MaxLossPct
			if !(gd > 0) {
				gd = s.Guarantees.MaxDelayMs
			}
			if !(gl > 0) {
				gl = s.Guarantees.MaxLossPct
			}
			d, l := figures(si, gd, gl)
			e := edge{sla: si, peer: -1, price: s.Direct.PerMinute, delay: d, surv: 1 - l/100}
			a, b := g.index[s.Between[0]], g.index[s.Between[1]]
			e.to = b
			add(a, catDirect, e)
			if !s.OneWay {
				e.to = a
				add(b, catDirect, e)
			}
		}
	}
	// Peerings: user may use owner's contracts.
	for _, qi := range peerings {
		q := g.slas[qi]
		for dir := range 2 {
			user, owner := q.Between[dir], q.Between[1-dir]
			if dir == 1 && q.OneWay {
				break
			}
			un := g.index[user]
			for _, si := range contractsOf[owner] {
				s := g.slas[si]
				p := g.index[g.providerOf(s)]
				d, l := figures(si, s.Guarantees.MaxDelayMs, s.Guarantees.MaxLossPct)
				e := edge{sla: si, peer: qi, price: s.Price.PerMinute + q.MarkupPerMinute, delay: d, surv: 1 - l/100}
				if carries(s, owner) {
					e.to = p
					add(un, catNodeProv, e)
				}
				if carries(s, g.ids[p]) {
					e.to = un
					add(p, catProvNode, e)
				}
			}
		}
	}
	// Each list cheapest first, so that a scan can stop at the first edge
	// too dear; then in a fixed order, for determinism.
	g.span = make([][numCats + 1]int32, nv)
	for v := range nv {
		for c := range numCats {
			l := lists[v][c]
			slices.SortFunc(l, func(a, b edge) int {
				switch {
				case a.price != b.price:
					return cmp.Compare(a.price, b.price)
				case a.to != b.to:
					return cmp.Compare(g.rank[a.to], g.rank[b.to])
				case a.sla != b.sla:
					return cmp.Compare(g.slaRank[a.sla], g.slaRank[b.sla])
				}
				return cmp.Compare(a.peer, b.peer)
			})
			g.span[v][c] = int32(len(g.edges))
			g.edges = append(g.edges, l...)
		}
		g.span[v][numCats] = int32(len(g.edges))
	}
	g.buildReverse()
	g.pool.New = func() any { return newPlanner(g) }
	return g, nil
}

func (g *Graph) addVertex(id string, p *sla.Provider) {
	g.index[id] = int32(len(g.ids))
	g.ids = append(g.ids, id)
	g.prov = append(g.prov, p)
	isTerm := false
	v := int32(len(g.ids) - 1)
	if p != nil {
		for _, s := range p.Services {
			if s.Type != sla.Termination {
				continue
			}
			for _, seg := range s.Segments {
				isTerm = true
				loc := seg.Location
				if loc == "" {
					loc = "*"
				}
				if l := g.termAt[loc]; len(l) == 0 || l[len(l)-1] != v {
					g.termAt[loc] = append(l, v)
				}
			}
		}
		if isTerm {
			g.terms = append(g.terms, v)
		}
	}
	g.hasTerm = append(g.hasTerm, isTerm)
	g.proxy = append(g.proxy, p != nil && p.HasMode(sla.Proxy))
	g.transit = append(g.transit, p != nil && providerAlwaysTransits(p))
}

// providerOf returns the provider party of a node-provider SLA.
func (g *Graph) providerOf(s *sla.SLA) string {
	if v, ok := g.index[s.Between[0]]; ok && g.prov[v] != nil {
		return s.Between[0]
	}
	return s.Between[1]
}

func mustOther(s *sla.SLA, id string) string {
	o, _ := s.Other(id)
	return o
}

// addMeasuredPath puts a whole-path measurement into the trie; a later
// measurement of the same sequence replaces an earlier one. Sequences
// naming unknown SLAs can match no path and are ignored.
func (g *Graph) addMeasuredPath(m *sla.Measurement) {
	seq := make([]int32, len(m.Path))
	for i, id := range m.Path {
		si, ok := g.slaIndex[id]
		if !ok {
			return
		}
		seq[i] = si
	}
	if len(g.trie) == 0 {
		g.trie = append(g.trie, trieNode{})
	}
	t := int32(0)
	for _, si := range seq {
		n := g.trieChild(t, si)
		if n < 0 {
			n = int32(len(g.trie))
			g.trie = append(g.trie, trieNode{})
			g.trie[t].next = append(g.trie[t].next, trieChild{si, n})
		}
		t = n
	}
	g.trie[t].measured = true
	g.trie[t].delay = m.DelayMs
	g.trie[t].lossPct = min(m.LossPct, 100)
}

func (g *Graph) trieChild(t, si int32) int32 {
	for _, c := range g.trie[t].next {
		if c.sla == si {
			return c.node
		}
	}
	return -1
}

// trieStep follows an edge's SLAs from trie node t; -1 when the sequence
// leaves the trie (or t is -1).
func (g *Graph) trieStep(t int32, e *edge) int32 {
	if t < 0 {
		return -1
	}
	t = g.trieChild(t, e.sla)
	if t >= 0 && e.peer >= 0 {
		t = g.trieChild(t, e.peer)
	}
	return t
}

// sortedRanks returns, for each id, its position in the sorted list.
func sortedRanks(ids []string) []int32 {
	order := make([]int32, len(ids))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		switch {
		case ids[a] < ids[b]:
			return -1
		case ids[a] > ids[b]:
			return 1
		}
		return 0
	})
	rank := make([]int32, len(ids))
	for r, i := range order {
		rank[i] = int32(r)
	}
	return rank
}

// Currency is the catalogue's currency, "" when no SLA names one.
func (g *Graph) Currency() string { return g.currency }

// Skipped lists the SLAs NewGraph left out, with the reason.
func (g *Graph) Skipped() []Rejection { return slices.Clone(g.skipped) }

// carries reports whether the SLA carries traffic from party from: both
// ways unless OneWay, then only from Between[0].
func carries(s *sla.SLA, from string) bool { return !s.OneWay || s.Between[0] == from }
