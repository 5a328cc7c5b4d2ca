package routing

import (
	"math"

	"github.com/callmesh/callmesh/sla"
)

// Lower bounds. For a target (an egress node, or the providers that
// terminate a location prefix) bound[v] is the least price per minute of
// any walk from vertex v to the target over the graph's provider–provider
// and provider–node edges, ignoring every feasibility rule, the hop limit
// and simplicity. Every feasible completion of a label at v is such a
// walk, so price + bound[v] never exceeds the price of a path through the
// label: the search may order labels by it and drop a label whose bound
// already passes the k-th price (A*, with an admissible and, since prices
// are non-negative, consistent heuristic). Vertices that cannot reach the
// target at all have bound unreachable.
//
// Bounds depend only on the graph, so they are computed once per target,
// on first use, and shared by all plans.

// unreachable is the bound of a vertex that cannot reach the target.
const unreachable = sla.Money(math.MaxInt64)

// addSat adds two non-negative amounts, saturating at unreachable.
func addSat(a, b sla.Money) sla.Money {
	if a > unreachable-b {
		return unreachable
	}
	return a + b
}

// nodeBound returns the bounds towards egress node t.
func (g *Graph) nodeBound(t int32) []sla.Money {
	key := "n\x00" + g.ids[t]
	if b, ok := g.bounds.Load(key); ok {
		return b.([]sla.Money)
	}
	b := g.dijkstra([]int32{t})
	actual, _ := g.bounds.LoadOrStore(key, b)
	return actual.([]sla.Money)
}

// termBound returns the bounds towards the providers with a termination
// segment at exactly this location ("*" for any).
func (g *Graph) termBound(loc string) []sla.Money {
	key := "t\x00" + loc
	if b, ok := g.bounds.Load(key); ok {
		return b.([]sla.Money)
	}
	b := g.dijkstra(g.termAt[loc])
	actual, _ := g.bounds.LoadOrStore(key, b)
	return actual.([]sla.Money)
}

// dijkstra computes least prices to the sources backwards over the
// reverse adjacency.
func (g *Graph) dijkstra(sources []int32) []sla.Money {
	dist := make([]sla.Money, len(g.ids))
	for i := range dist {
		dist[i] = unreachable
	}
	type item struct {
		d sla.Money
		v int32
	}
	var h []item
	less := func(i, j int) bool { return h[i].d < h[j].d }
	push := func(it item) {
		h = append(h, it)
		for i := len(h) - 1; i > 0; {
			j := (i - 1) / 2
			if !less(i, j) {
				break
			}
			h[i], h[j] = h[j], h[i]
			i = j
		}
	}
	pop := func() item {
		top := h[0]
		n := len(h) - 1
		h[0] = h[n]
		h = h[:n]
		for i := 0; ; {
			l := 2*i + 1
			if l >= n {
				break
			}
			if r := l + 1; r < n && less(r, l) {
				l = r
			}
			if !less(l, i) {
				break
			}
			h[i], h[l] = h[l], h[i]
			i = l
		}
		return top
	}
	for _, s := range sources {
		dist[s] = 0
		push(item{0, s})
	}
	for len(h) > 0 {
		it := pop()
		if it.d > dist[it.v] {
			continue
		}
		for _, ei := range g.rev[g.revSpan[it.v]:g.revSpan[it.v+1]] {
			e := &g.edges[ei]
			u := g.from[ei]
			if d := addSat(it.d, e.price); d < dist[u] {
				dist[u] = d
				push(item{d, u})
			}
		}
	}
	return dist
}

// buildReverse fills the reverse adjacency of the provider–provider and
// provider–node edges, and each edge's tail.
func (g *Graph) buildReverse() {
	nv := len(g.ids)
	g.from = make([]int32, len(g.edges))
	count := make([]int32, nv+1)
	for v := range nv {
		for ei := g.span[v][0]; ei < g.span[v][numCats]; ei++ {
			g.from[ei] = int32(v)
		}
		for ei := g.span[v][catProvProv]; ei < g.span[v][catProvNode+1]; ei++ {
			count[g.edges[ei].to+1]++
		}
	}
	for v := range nv {
		count[v+1] += count[v]
	}
	g.revSpan = count
	g.rev = make([]int32, count[nv])
	fill := make([]int32, nv)
	copy(fill, count[:nv])
	for v := range nv {
		for ei := g.span[v][catProvProv]; ei < g.span[v][catProvNode+1]; ei++ {
			to := g.edges[ei].to
			g.rev[fill[to]] = ei
			fill[to]++
		}
	}
}
