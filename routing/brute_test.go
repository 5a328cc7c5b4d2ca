package routing

import (
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/callmesh/callmesh/media/quality"
	"github.com/callmesh/callmesh/sla"
)

// The brute force: enumerate every simple path of at most max_hops
// providers straight from the catalogue, check every rule on each whole
// path, sort all feasible ones by the order and keep k. It shares no code
// with the planner beyond the sla and quality packages.

type bfEdge struct {
	to    string
	slas  []string // contract, then the peering SLA
	price sla.Money
	delay float64
	loss  float64
}

type bfPath struct {
	verts []string
	edges []bfEdge
}

type bf struct {
	cat   *sla.Catalogue
	opt   Options // with defaults filled in
	provs map[string]*sla.Provider
}

func newBF(cat *sla.Catalogue, opt Options) *bf {
	if opt.JitterBufferMs == 0 {
		opt.JitterBufferMs = 40
	}
	if opt.DefaultDelayMs == 0 {
		opt.DefaultDelayMs = 50
	}
	if opt.DefaultLossPct == 0 {
		opt.DefaultLossPct = 1
	}
	if opt.Codec == "" {
		opt.Codec = "G.711"
	}
	b := &bf{cat: cat, opt: opt, provs: map[string]*sla.Provider{}}
	for i := range cat.Providers {
		b.provs[cat.Providers[i].ID] = &cat.Providers[i]
	}
	return b
}

func (b *bf) isProv(id string) bool { return b.provs[id] != nil }

func (b *bf) sla(id string) *sla.SLA {
	for i := range b.cat.SLAs {
		if b.cat.SLAs[i].ID == id {
			return &b.cat.SLAs[i]
		}
	}
	return nil
}

// figures: the last single-SLA measurement, else the guarantee, else the
// defaults for a zero guarantee.
func (b *bf) figures(id string, gd, gl float64) (float64, float64) {
	d, l, found := 0.0, 0.0, false
	for _, m := range b.cat.Measurements {
		if len(m.Path) == 0 && m.SLA == id {
			d, l, found = m.DelayMs, m.LossPct, true
		}
	}
	if found {
		return d, l
	}
	if gd == 0 {
		gd = b.opt.DefaultDelayMs
	}
	if gl == 0 {
		gl = b.opt.DefaultLossPct
	}
	return gd, gl
}

// flows reports whether s lets traffic go from x to its other party.
func flows(s *sla.SLA, x string) bool {
	return (s.Between[0] == x || s.Between[1] == x) && (!s.OneWay || s.Between[0] == x)
}

// nodeOf returns the node party of a node-provider SLA, and its provider.
func (b *bf) parties(s *sla.SLA) (node, prov string) {
	if b.isProv(s.Between[0]) {
		return s.Between[1], s.Between[0]
	}
	return s.Between[0], s.Between[1]
}

// peersUsable returns the node-node SLAs that let node u use another
// node's contracts, with that node.
func (b *bf) peersUsable(u string) (qs []*sla.SLA, owners []string) {
	for i := range b.cat.SLAs {
		q := &b.cat.SLAs[i]
		if q.Kind != sla.NodeNode {
			continue
		}
		if q.Between[0] == u {
			qs, owners = append(qs, q), append(owners, q.Between[1])
		} else if q.Between[1] == u && !q.OneWay {
			qs, owners = append(qs, q), append(owners, q.Between[0])
		}
	}
	return qs, owners
}

func (b *bf) contractEdge(s *sla.SLA, to string, q *sla.SLA) bfEdge {
	d, l := b.figures(s.ID, s.Guarantees.MaxDelayMs, s.Guarantees.MaxLossPct)
	e := bfEdge{to: to, slas: []string{s.ID}, price: s.Price.PerMinute, delay: d, loss: l}
	if q != nil {
		e.slas = append(e.slas, q.ID)
		e.price += q.MarkupPerMinute
	}
	return e
}

// edgesFrom lists the edges leaving u towards providers (from a node or a
// provider) and towards nodes (from a provider), and direct links.
func (b *bf) edgesFrom(u string) []bfEdge {
	var out []bfEdge
	for i := range b.cat.SLAs {
		s := &b.cat.SLAs[i]
		switch s.Kind {
		case sla.NodeProvider:
			node, prov := b.parties(s)
			if u == node && flows(s, node) {
				out = append(out, b.contractEdge(s, prov, nil))
			}
			if u == prov && flows(s, prov) {
				out = append(out, b.contractEdge(s, node, nil))
				// Nodes that may use node's contracts reach u's calls too.
				for j := range b.cat.SLAs {
					q := &b.cat.SLAs[j]
					if q.Kind != sla.NodeNode {
						continue
					}
					if q.Between[1] == node {
						out = append(out, b.contractEdge(s, q.Between[0], q))
					} else if q.Between[0] == node && !q.OneWay {
						out = append(out, b.contractEdge(s, q.Between[1], q))
					}
				}
			}
		case sla.ProviderProvider:
			if flows(s, u) {
				o, _ := s.Other(u)
				out = append(out, b.contractEdge(s, o, nil))
			}
		case sla.NodeNode:
			if s.Direct != nil && flows(s, u) {
				o, _ := s.Other(u)
				gd, gl := s.Direct.MaxDelayMs, s.Direct.MaxLossPct
				if gd == 0 {
					gd = s.Guarantees.MaxDelayMs
				}
				if gl == 0 {
					gl = s.Guarantees.MaxLossPct
				}
				d, l := b.figures(s.ID, gd, gl)
				out = append(out, bfEdge{to: o, slas: []string{s.ID}, price: s.Direct.PerMinute, delay: d, loss: l})
			}
		}
	}
	if !b.isProv(u) {
		qs, owners := b.peersUsable(u)
		for k, q := range qs {
			for i := range b.cat.SLAs {
				s := &b.cat.SLAs[i]
				if s.Kind != sla.NodeProvider {
					continue
				}
				node, prov := b.parties(s)
				if node == owners[k] && flows(s, node) {
					out = append(out, b.contractEdge(s, prov, q))
				}
			}
		}
	}
	return out
}

// enumerate lists every simple path from "from" to the node "to", or, when
// to is "", ending at any provider; at most maxHops providers.
func (b *bf) enumerate(from, to string, maxHops int) []bfPath {
	var all []bfPath
	var walk func(p bfPath, provs int)
	walk = func(p bfPath, provs int) {
		u := p.verts[len(p.verts)-1]
		for _, e := range b.edgesFrom(u) {
			if slices.Contains(p.verts, e.to) {
				continue
			}
			q := bfPath{verts: append(slices.Clone(p.verts), e.to), edges: append(slices.Clone(p.edges), e)}
			if !b.isProv(e.to) {
				if e.to == to && (provs > 0 || len(p.verts) == 1) {
					all = append(all, q)
				}
				continue
			}
			if provs+1 > maxHops {
				continue
			}
			if to == "" {
				all = append(all, q)
			}
			walk(q, provs+1)
		}
	}
	walk(bfPath{verts: []string{from}}, 0)
	return all
}

type bfResult struct {
	path Path
	p    bfPath
}

// plan is the brute-force Plan.
func (b *bf) plan(req Request) []bfResult {
	pol := b.cat.Policy.Classes[req.Class]
	maxHops := pol.MaxHops
	if maxHops == 0 {
		maxHops = 4
	}
	codecName := b.opt.Codec
	if req.Codec != "" {
		codecName = req.Codec
	}
	codec, _ := quality.LookupCodec(codecName, !b.opt.NoPLC)
	call := sla.Call{Number: req.Number, Class: req.Class, At: req.At}
	transit, term := call, call
	transit.Service, term.Service = sla.Transit, sla.Termination

	// Access legs.
	accDelay, accSurv := 0.0, 1.0
	for _, end := range [][2]string{{req.From, req.FromClass}, {req.To, req.ToClass}} {
		if end[0] == "" {
			continue
		}
		class := end[1]
		if class == "" {
			class = req.Class
		}
		for i := range b.cat.SLAs {
			s := &b.cat.SLAs[i]
			if s.Kind == sla.UserAccess && s.Between == [2]string{end[0], class} && s.ValidAt(req.At) {
				d, l := b.figures(s.ID, s.Guarantees.MaxDelayMs, s.Guarantees.MaxLossPct)
				accDelay += d
				accSurv *= 1 - l/100
				break
			}
		}
	}
	fixed := accDelay + b.opt.JitterBufferMs + codec.PtimeMs + codec.LookaheadMs

	// Longest termination prefix.
	longest := -1
	for i := range b.cat.Providers {
		if _, n, ok := b.cat.Providers[i].Offers(term); ok && n > longest {
			longest = n
		}
	}

	var out []bfResult
	for _, p := range b.enumerate(req.From, req.To, maxHops) {
		if r, ok := b.evaluate(p, req, pol, call, transit, term, longest, codec, fixed, accSurv); ok {
			out = append(out, bfResult{r, p})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return bfLess(out[i], out[j]) })
	k := req.K
	if k == 0 {
		k = 3
	}
	if len(out) > k {
		out = out[:k]
	}
	return out
}

// segCap returns the cap of the segment of segs that carries the call:
// longest matching location, first of equals.
func segCap(segs []sla.Segment, c sla.Call) (time.Duration, bool) {
	best, capDur := -1, time.Duration(0)
	for _, s := range segs {
		if !s.Matches(c) {
			continue
		}
		n, _ := sla.LocationMatch(s.Location, c.Number)
		if n > best {
			best, capDur = n, s.MaxDuration
		}
	}
	return capDur, best >= 0
}

func (b *bf) evaluate(p bfPath, req Request, pol sla.ClassPolicy, call, transit, term sla.Call,
	longest int, codec quality.Codec, fixed, accSurv float64) (Path, bool) {
	var caps []time.Duration
	path := Path{Hops: p.verts}
	for i, v := range p.verts {
		if !b.isProv(v) {
			continue
		}
		pr := b.provs[v]
		if req.Quarantined[v] {
			return Path{}, false
		}
		last := i == len(p.verts)-1
		if last { // number path: the terminator
			seg, n, ok := pr.Offers(term)
			if !ok || n != longest {
				return Path{}, false
			}
			caps = append(caps, seg.MaxDuration)
			continue
		}
		seg, _, ok := pr.Offers(transit)
		if !ok {
			return Path{}, false
		}
		caps = append(caps, seg.MaxDuration)
		if b.isProv(p.verts[i+1]) && !pr.HasMode(sla.Proxy) {
			return Path{}, false
		}
	}
	delay, surv := 0.0, 1.0
	for _, e := range p.edges {
		for _, id := range e.slas {
			s := b.sla(id)
			if !s.ValidAt(req.At) || !s.SegmentsMatch(call) {
				return Path{}, false
			}
			active := 0
			if req.Active != nil {
				active = req.Active[id]
			} else {
				for _, c := range b.cat.Calls {
					if c.SLA == id {
						active = c.Active
					}
				}
			}
			if s.Capacity.MaxCalls > 0 && active >= s.Capacity.MaxCalls {
				return Path{}, false
			}
			c, _ := segCap(s.Segments, call)
			caps = append(caps, c)
			path.SLAs = append(path.SLAs, id)
		}
		path.PricePerMinute += e.price
		delay += e.delay
		surv *= 1 - e.loss/100
	}
	loss := (1 - surv) * 100
	for _, m := range b.cat.Measurements {
		if len(m.Path) > 0 && slices.Equal(m.Path, path.SLAs) {
			delay, loss, path.Measured = m.DelayMs, m.LossPct, true
			surv = 1 - loss/100
		}
	}
	path.DelayMs, path.LossPct = delay, loss
	path.R, path.MOS = quality.Estimate(codec, delay+fixed, (1-surv*accSurv)*100, 1)
	if pol.MaxPricePerMinute > 0 && path.PricePerMinute > pol.MaxPricePerMinute ||
		pol.MaxDelayMs > 0 && delay > pol.MaxDelayMs ||
		pol.MaxLossPct > 0 && loss > pol.MaxLossPct ||
		pol.MinMOS > 0 && path.MOS < pol.MinMOS {
		return Path{}, false
	}
	for _, c := range caps {
		if c > 0 && (path.MaxDuration == 0 || c < path.MaxDuration) {
			path.MaxDuration = c
		}
	}
	return path, true
}

func bfLess(a, b bfResult) bool {
	pa, pb := a.path, b.path
	if pa.PricePerMinute != pb.PricePerMinute {
		return pa.PricePerMinute < pb.PricePerMinute
	}
	if pa.MOS != pb.MOS {
		return pa.MOS > pb.MOS
	}
	if len(pa.Hops) != len(pb.Hops) {
		return len(pa.Hops) < len(pb.Hops) // same kind of path: fewer providers
	}
	if c := slices.Compare(pa.Hops, pb.Hops); c != 0 {
		return c < 0
	}
	for i := range min(len(a.p.edges), len(b.p.edges)) {
		ea, eb := a.p.edges[i].slas, b.p.edges[i].slas
		if ea[0] != eb[0] {
			return ea[0] < eb[0]
		}
		if len(ea) != len(eb) {
			return len(ea) < len(eb)
		}
		if c := strings.Compare(ea[len(ea)-1], eb[len(eb)-1]); c != 0 {
			return c < 0
		}
	}
	return len(a.p.edges) < len(b.p.edges)
}
