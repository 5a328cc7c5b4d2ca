package routing

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/callmesh/callmesh/media/quality"
	"github.com/callmesh/callmesh/sla"
)

// slaOK reports whether SLA si may carry the call: valid at its time, its
// segments match, capacity left. The answer is cached for the request and
// a refusal recorded once.
func (p *planner) slaOK(si int32) bool {
	st := &p.sla[si]
	if st.gen == p.gen {
		return st.state == sOK
	}
	in := &p.g.info[si]
	state := uint8(sOK)
	switch {
	case p.at < in.from:
		state = sNotYet
	case p.at >= in.until:
		state = sExpired
	case in.segs && !p.g.slas[si].SegmentsMatch(p.call):
		state = sSegment
	case in.maxCalls > 0 && p.active(si) >= int(in.maxCalls):
		state = sCapacity
	}
	*st = slaState{gen: p.gen, state: state}
	if state != sOK {
		p.reject(p.g.slas[si].ID, slaReasons[state])
	}
	return state == sOK
}

func (p *planner) active(si int32) int {
	if p.req.Active != nil {
		return p.req.Active[p.g.slas[si].ID]
	}
	return int(p.g.info[si].active)
}

// provState returns provider v's flags for the request, computing them on
// first use.
func (p *planner) provState(v int32) uint8 {
	if p.provGen[v] == p.gen {
		return p.provFlags[v]
	}
	g := p.g
	var f uint8
	if p.req.Quarantined[g.ids[v]] {
		f |= fQuarantined
	}
	if g.transit[v] {
		f |= fTransit
	} else {
		c := p.call
		c.Service = sla.Transit
		if _, _, ok := g.prov[v].Offers(c); ok {
			f |= fTransit
		}
	}
	if p.to < 0 && g.hasTerm[v] && p.termLenOf[v] >= 0 {
		if int(p.termLenOf[v]) == p.termLen {
			f |= fTerm
		} else {
			f |= fTermShorter
		}
	}
	p.provGen[v], p.provFlags[v] = p.gen, f
	return f
}

// rejectProv records the first reason provider v was left out.
func (p *planner) rejectProv(v int32, reason string) {
	if p.provFlags[v]&fReported != 0 {
		return
	}
	p.provFlags[v] |= fReported
	p.reject(p.g.ids[v], reason)
}

func (p *planner) reject(id, reason string) {
	p.rejected = append(p.rejected, Rejection{ID: id, Reason: reason})
}

// overPolicy counts a policy limit that cut a path and, when the edge's
// SLA alone breaks it for every path, records the SLA.
func (p *planner) overPolicy(lim int, e *edge, alone bool) {
	p.hits[lim]++
	if alone && !p.slaOK(e.sla) {
		alone = false // its own refusal is recorded
	}
	if st := &p.sla[e.sla]; alone && !st.reported {
		st.reported = true
		p.reject(p.g.slas[e.sla].ID, ReasonOverPolicy+": "+limitNames[lim])
	}
}

// beyondKth reports whether a path of this price can no longer enter the
// top k.
func (p *planner) beyondKth(price sla.Money) bool {
	return len(p.best) == p.k && price > p.best[p.k-1].price
}

// quality predicts R and MOS for a path of the given network delay and
// survival ratio.
func (p *planner) quality(delay, surv float64) (r, mos float64) {
	return quality.Estimate(p.codec, delay+p.fixedDelay, (1-surv*p.accessSurv)*100, 1)
}

// prefixOK checks the policy limits that only tighten along a path on a
// prefix with composed figures.
func (p *planner) prefixOK(e *edge, delay, surv float64) bool {
	alone := !p.hasMeasured
	if p.checkDelay && delay > p.pol.MaxDelayMs {
		p.overPolicy(limDelay, e, alone && e.delay > p.pol.MaxDelayMs)
		return false
	}
	if p.checkLoss && (1-surv)*100 > p.pol.MaxLossPct {
		p.overPolicy(limLoss, e, alone && (1-e.surv)*100 > p.pol.MaxLossPct)
		return false
	}
	if p.checkMOS {
		if _, mos := p.quality(delay, surv); mos < p.pol.MinMOS {
			p.overPolicy(limMOS, e, false)
			return false
		}
	}
	return true
}

// onPath reports whether vertex w is on the prefix of label li.
func (p *planner) onPath(li, w int32) bool {
	if p.labels[li].mask&(1<<(uint(w)&63)) == 0 {
		return false
	}
	for ; li >= 0; li = p.labels[li].parent {
		if p.labels[li].v == w {
			return true
		}
	}
	return false
}

// search runs the best-first label-setting search (see the package
// documentation for why it is exact).
func (p *planner) search() {
	g := p.g
	root := label{parent: -1, edge: -1, v: p.from, surv: 1, trie: -1,
		mask: 1 << (uint(p.from) & 63)}
	if p.hasMeasured {
		root.trie = 0
	}
	p.labels = append(p.labels, root)
	if p.to < 0 && p.termLen < 0 {
		return // nobody terminates the number
	}
	sp := g.span[p.from]
	if p.to >= 0 {
		for ei := sp[catDirect]; ei < sp[catDirect+1]; ei++ {
			if g.edges[ei].to != p.to {
				continue
			}
			if p.tooDear(0, ei) {
				break
			}
			p.completeEdge(0, ei)
		}
	}
	for ei := sp[catNodeProv]; ei < sp[catNodeProv+1] && !p.tooDear(0, ei); ei++ {
		p.extend(0, ei)
	}
	for len(p.heap) > 0 {
		li := p.pop()
		l := &p.labels[li]
		if l.dead {
			continue
		}
		if p.beyondKth(l.f) {
			break
		}
		p.expand(li)
	}
}

// expand extends the label at a provider: to the egress node, and to the
// next providers when the provider is a proxy with hops to spare.
func (p *planner) expand(li int32) {
	g := p.g
	v, hops := p.labels[li].v, int(p.labels[li].hops)
	sp := g.span[v]
	if p.to >= 0 {
		// Only the edges to the target are met: another node's contract
		// too dear is no reason to record. Those to the target are still
		// in price order, so the first too dear ends the scan.
		for ei := sp[catProvNode]; ei < sp[catProvNode+1]; ei++ {
			if g.edges[ei].to != p.to {
				continue
			}
			if p.tooDear(li, ei) {
				break
			}
			p.completeEdge(li, ei)
		}
	}
	if hops >= p.maxHops || !g.proxy[v] {
		return
	}
	for ei := sp[catProvProv]; ei < sp[catProvProv+1] && !p.tooDear(li, ei); ei++ {
		p.extend(li, ei)
	}
}

// tooDear reports whether taking edge ei from label li, and so any later
// edge of the same price-sorted list, exceeds the price limit or can no
// longer reach the top k.
func (p *planner) tooDear(li, ei int32) bool {
	e := &p.g.edges[ei]
	price := p.labels[li].price + e.price
	if p.checkPrice && price > p.pol.MaxPricePerMinute {
		p.overPolicy(limPrice, e, e.peer < 0 && e.price > p.pol.MaxPricePerMinute)
		return true
	}
	return p.beyondKth(price)
}

// extend takes the label li over edge ei to a provider and, if the new
// prefix may lead somewhere and is not dominated k times, queues it. For a
// number, reaching a terminating provider completes a path. The caller has
// checked the edge with tooDear and that the label has a hop to spare.
func (p *planner) extend(li, ei int32) {
	g := p.g
	e := &g.edges[ei]
	w := e.to
	l := p.labels[li]
	price := l.price + e.price // within the limit: the caller checked tooDear
	hw := p.h[w]
	if hw == unreachable {
		return
	}
	bound := addSat(price, hw)
	if p.checkPrice && bound > p.pol.MaxPricePerMinute {
		p.hits[limPrice]++
		return
	}
	if p.beyondKth(bound) || p.onPath(li, w) {
		return
	}
	hops := int(l.hops) + 1 // ≤ maxHops: expand extends only below it
	if !p.slaOK(e.sla) || (e.peer >= 0 && !p.slaOK(e.peer)) {
		return
	}
	f := p.provState(w)
	if f&fQuarantined != 0 {
		p.rejectProv(w, ReasonQuarantined)
		return
	}
	delay, surv := l.delay+e.delay, l.surv*e.surv
	t := g.trieStep(l.trie, e)
	if t < 0 && !p.prefixOK(e, delay, surv) {
		return
	}
	cont := f&fTransit != 0
	if p.to < 0 {
		cont = cont && g.proxy[w] && hops < p.maxHops
		if f&fTerm == 0 && !cont {
			switch {
			case f&fTermShorter != 0:
				p.rejectProv(w, ReasonShorterPrefix)
			case f&fTransit == 0:
				p.rejectProv(w, ReasonNoTransit)
			case !g.proxy[w] && hops < p.maxHops:
				p.rejectProv(w, ReasonTrunkNotLast)
			}
			return
		}
	} else if !cont {
		p.rejectProv(w, ReasonNoTransit)
		return
	}
	xi := int32(len(p.labels))
	p.labels = append(p.labels, label{
		price: price, f: bound, delay: delay, surv: surv,
		mask:   l.mask | 1<<(uint(w)&63),
		parent: li, edge: ei, v: w, trie: t, hops: int16(hops),
	})
	if p.to < 0 && f&fTerm != 0 {
		p.completeLabel(xi)
	}
	if !cont || (t < 0 && !p.admit(xi)) {
		p.labels = p.labels[:xi]
		return
	}
	p.push(xi)
}

// admit applies dominance to the new label xi at its vertex: it is
// refused when k labels dominate it; labels it dominates count one more
// dominator and die at k.
func (p *planner) admit(xi int32) bool {
	x := &p.labels[xi]
	v := x.v
	list := p.atV[v]
	if len(list) == 0 {
		p.touched = append(p.touched, v)
	}
	n := 0
	for i, yi := range list {
		y := &p.labels[yi]
		if p.dominates(y, yi, x, xi) {
			x.dom++
			if int(x.dom) >= p.k {
				n += copy(list[n:], list[i:])
				p.atV[v] = list[:n]
				return false
			}
		} else if p.dominates(x, xi, y, yi) {
			y.dom++
			if int(y.dom) >= p.k {
				y.dead = true
				continue
			}
		}
		list[n] = yi
		n++
	}
	p.atV[v] = append(list[:n], xi)
	return true
}

// dominates reports whether label a dominates label b at the same vertex
// (package documentation, "Exactness").
func (p *planner) dominates(a *label, ai int32, b *label, bi int32) bool {
	if a.price > b.price || a.delay > b.delay || a.surv < b.surv || a.hops > b.hops {
		return false
	}
	if a.mask&^b.mask != 0 {
		return false
	}
	if a.price == b.price && a.hops == b.hops && !p.prefixLess(ai, bi) {
		return false
	}
	// Exact subset: every vertex of a's prefix is on b's.
	for i := a.parent; i > 0; i = p.labels[i].parent {
		if !p.onPath(bi, p.labels[i].v) {
			return false
		}
	}
	return true
}

// prefixLess orders two prefixes of equal length ending at the same
// vertex: by hop ids, then edge by edge by SLA ids.
func (p *planner) prefixLess(ai, bi int32) bool {
	g := p.g
	// Walk both chains back to the root; the earliest difference decides.
	hop, edgeCmp := 0, 0
	for ai != bi {
		a, b := &p.labels[ai], &p.labels[bi]
		if d := g.rank[a.v] - g.rank[b.v]; d != 0 {
			hop = int(d)
		}
		if c := g.edgeCmp(a.edge, b.edge); c != 0 {
			edgeCmp = c
		}
		ai, bi = a.parent, b.parent
	}
	if hop != 0 {
		return hop < 0
	}
	return edgeCmp < 0
}

// edgeCmp orders two edges by their SLA ids: the contract, then the
// peering (none first).
func (g *Graph) edgeCmp(a, b int32) int {
	if a == b {
		return 0
	}
	ea, eb := &g.edges[a], &g.edges[b]
	if ea.sla != eb.sla {
		return int(g.slaRank[ea.sla] - g.slaRank[eb.sla])
	}
	switch {
	case ea.peer == eb.peer:
		return 0
	case ea.peer < 0:
		return -1
	case eb.peer < 0:
		return 1
	}
	return int(g.slaRank[ea.peer] - g.slaRank[eb.peer])
}

// completeEdge completes the path of label li over edge ei to the egress
// node (or over a direct link from the root). The caller has checked the
// edge with tooDear.
func (p *planner) completeEdge(li, ei int32) {
	g := p.g
	e := &g.edges[ei]
	l := &p.labels[li]
	price := l.price + e.price
	if !p.slaOK(e.sla) || (e.peer >= 0 && !p.slaOK(e.peer)) {
		return
	}
	t := g.trieStep(l.trie, e)
	p.finish(li, ei, price, l.delay+e.delay, l.surv*e.surv, int(l.hops), t)
}

// completeLabel completes the path of label xi, which ends at a provider
// terminating the number.
func (p *planner) completeLabel(xi int32) {
	l := &p.labels[xi]
	p.finish(xi, -1, l.price, l.delay, l.surv, int(l.hops), l.trie)
}

// finish evaluates a complete path (label li, then edge ei when ≥ 0):
// measured figures when the trie node t ends a measured sequence, the
// policy, quality, and its place in the top k.
func (p *planner) finish(li, ei int32, price sla.Money, delay, surv float64, hops int, t int32) {
	g := p.g
	loss := (1 - surv) * 100
	measured := t >= 0 && g.trie[t].measured
	if measured {
		delay, loss = g.trie[t].delay, g.trie[t].lossPct
		surv = 1 - loss/100
	}
	if p.checkDelay && delay > p.pol.MaxDelayMs {
		p.hits[limDelay]++
		return
	}
	if p.checkLoss && loss > p.pol.MaxLossPct {
		p.hits[limLoss]++
		return
	}
	r, mos := p.quality(delay, surv)
	if p.checkMOS && mos < p.pol.MinMOS {
		p.hits[limMOS]++
		return
	}
	c := p.newCand()
	c.price, c.delay, c.loss, c.r, c.mos, c.hops, c.measured = price, delay, loss, r, mos, hops, measured
	p.chain = p.chain[:0]
	for i := li; i >= 0; i = p.labels[i].parent {
		p.chain = append(p.chain, i)
	}
	for i := len(p.chain) - 1; i >= 0; i-- {
		l := &p.labels[p.chain[i]]
		c.verts = append(c.verts, l.v)
		if l.edge >= 0 {
			c.edges = append(c.edges, l.edge)
		}
	}
	if ei >= 0 {
		c.verts = append(c.verts, g.edges[ei].to)
		c.edges = append(c.edges, ei)
	}
	// Insert in order; drop the k+1-th.
	i := len(p.best)
	for i > 0 && p.less(c, p.best[i-1]) {
		i--
	}
	if i >= p.k {
		p.spare = append(p.spare, c)
		return
	}
	p.best = slices.Insert(p.best, i, c)
	if len(p.best) > p.k {
		p.spare = append(p.spare, p.best[p.k])
		p.best = p.best[:p.k]
	}
}

func (p *planner) newCand() *cand {
	if n := len(p.spare); n > 0 {
		c := p.spare[n-1]
		p.spare = p.spare[:n-1]
		c.verts, c.edges = c.verts[:0], c.edges[:0]
		return c
	}
	return &cand{}
}

// less is the total order of complete paths (package documentation,
// "Order").
func (p *planner) less(a, b *cand) bool {
	if a.price != b.price {
		return a.price < b.price
	}
	if a.mos != b.mos {
		return a.mos > b.mos
	}
	if a.hops != b.hops {
		return a.hops < b.hops
	}
	g := p.g
	for i := range min(len(a.verts), len(b.verts)) {
		if ra, rb := g.rank[a.verts[i]], g.rank[b.verts[i]]; ra != rb {
			return ra < rb
		}
	}
	if len(a.verts) != len(b.verts) {
		return len(a.verts) < len(b.verts)
	}
	for i := range min(len(a.edges), len(b.edges)) {
		if c := g.edgeCmp(a.edges[i], b.edges[i]); c != 0 {
			return c < 0
		}
	}
	return len(a.edges) < len(b.edges)
}

// The queue: a binary heap of labels by price plus bound, then delay, then
// creation.
func (p *planner) heapLess(a, b int32) bool {
	la, lb := &p.labels[a], &p.labels[b]
	if la.f != lb.f {
		return la.f < lb.f
	}
	if la.delay != lb.delay {
		return la.delay < lb.delay
	}
	return a < b
}

func (p *planner) push(li int32) {
	h := append(p.heap, li)
	i := len(h) - 1
	for i > 0 {
		j := (i - 1) / 2
		if !p.heapLess(h[i], h[j]) {
			break
		}
		h[i], h[j] = h[j], h[i]
		i = j
	}
	p.heap = h
}

func (p *planner) pop() int32 {
	h := p.heap
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		if r := l + 1; r < n && p.heapLess(h[r], h[l]) {
			l = r
		}
		if !p.heapLess(h[l], h[i]) {
			break
		}
		h[i], h[l] = h[l], h[i]
		i = l
	}
	p.heap = h
	return top
}

// result turns the top k into Paths, with the rejections and, when empty,
// the reason.
func (p *planner) result() Result {
	g := p.g
	res := Result{Paths: make([]Path, 0, len(p.best)), Currency: g.currency}
	for _, c := range p.best {
		path := Path{
			Hops:           make([]string, len(c.verts)),
			PricePerMinute: c.price,
			DelayMs:        c.delay,
			LossPct:        c.loss,
			R:              c.r,
			MOS:            c.mos,
			Measured:       c.measured,
		}
		for i, v := range c.verts {
			path.Hops[i] = g.ids[v]
		}
		for _, ei := range c.edges {
			e := &g.edges[ei]
			path.SLAs = append(path.SLAs, g.slas[e.sla].ID)
			if e.peer >= 0 {
				path.SLAs = append(path.SLAs, g.slas[e.peer].ID)
			}
		}
		path.MaxDuration = p.maxDuration(c)
		res.Paths = append(res.Paths, path)
	}
	if len(p.rejected) > 0 {
		res.Rejected = slices.Clone(p.rejected)
		slices.SortFunc(res.Rejected, func(a, b Rejection) int {
			return cmp.Or(strings.Compare(a.ID, b.ID), strings.Compare(a.Reason, b.Reason))
		})
	}
	if len(res.Paths) == 0 {
		res.Reason = p.reason()
	}
	return res
}

// maxDuration is the tightest cap of the segments a path uses: each SLA's
// own segment that carries the call, each inner provider's transit
// segment and the terminating provider's termination segment.
func (p *planner) maxDuration(c *cand) time.Duration {
	g := p.g
	var d time.Duration // 0: no cap yet
	tighten := func(s sla.Segment) { d = sla.Tighter(d, s.MaxDuration) }
	for i, v := range c.verts {
		if g.prov[v] == nil {
			continue
		}
		call := p.call
		call.Service = sla.Transit
		if p.to < 0 && i == len(c.verts)-1 {
			call.Service = sla.Termination
		}
		seg, _, _ := g.prov[v].Offers(call)
		tighten(seg)
	}
	for _, ei := range c.edges {
		e := &g.edges[ei]
		seg, _ := g.slas[e.sla].Segment(p.call)
		tighten(seg)
		if e.peer >= 0 {
			seg, _ := g.slas[e.peer].Segment(p.call)
			tighten(seg)
		}
	}
	return d
}

func (p *planner) reason() string {
	dest := p.req.To
	if p.to < 0 {
		dest = p.req.Number
		if p.termLen < 0 {
			return fmt.Sprintf("no provider terminates %s for class %q at this time", dest, p.req.Class)
		}
	}
	var lims []string
	for i, n := range p.hits {
		if n > 0 {
			lims = append(lims, limitNames[i])
		}
	}
	if len(lims) > 0 {
		return fmt.Sprintf("no path from %s to %s within the policy of class %q (paths over %s)",
			p.req.From, dest, p.req.Class, strings.Join(lims, ", "))
	}
	return fmt.Sprintf("no feasible path from %s to %s", p.req.From, dest)
}
