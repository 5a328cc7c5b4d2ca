package routing

import (
	"slices"
	"testing"

	"github.com/callmesh/callmesh/sla"
)

// TestSyntheticCatalogue logs the generator's degree distribution and
// checks it is deterministic and builds.
func TestSyntheticCatalogue(t *testing.T) {
	for _, cfg := range []genConfig{genSmall, genLarge} {
		if testing.Short() && cfg.SLAs > 1000 {
			continue
		}
		cfg.Seed = 1
		cat := genCatalogue(cfg)
		if len(cat.SLAs) != cfg.SLAs || len(cat.Providers) != cfg.Providers || len(cat.Nodes) != cfg.Nodes {
			t.Fatalf("%+v: %d SLAs, %d providers, %d nodes", cfg, len(cat.SLAs), len(cat.Providers), len(cat.Nodes))
		}
		again := genCatalogue(cfg)
		if len(again.Measurements) != len(cat.Measurements) || again.SLAs[len(again.SLAs)-1].ID != cat.SLAs[len(cat.SLAs)-1].ID ||
			again.SLAs[len(again.SLAs)-1].Between != cat.SLAs[len(cat.SLAs)-1].Between {
			t.Fatal("generator is not deterministic")
		}
		g, err := NewGraph(cat, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Skipped()) > 0 {
			t.Fatalf("skipped %v", g.Skipped())
		}
		kinds := map[sla.Kind]int{}
		ic := map[string]int{}
		con := map[string]int{}
		for _, s := range cat.SLAs {
			kinds[s.Kind]++
			switch s.Kind {
			case sla.ProviderProvider:
				ic[s.Between[0]]++
				ic[s.Between[1]]++
			case sla.NodeProvider:
				con[g.providerOf(&s)]++
			}
		}
		stats := func(m map[string]int) (lo, mean, p50, p90, hi float64) {
			var ds []int
			for _, p := range cat.Providers {
				ds = append(ds, m[p.ID])
			}
			slices.Sort(ds)
			sum := 0
			for _, d := range ds {
				sum += d
			}
			n := len(ds)
			return float64(ds[0]), float64(sum) / float64(n), float64(ds[n/2]), float64(ds[n*9/10]), float64(ds[n-1])
		}
		lo, mean, p50, p90, hi := stats(ic)
		t.Logf("%d nodes, %d providers, %d SLAs: %v", cfg.Nodes, cfg.Providers, cfg.SLAs, kinds)
		t.Logf("  interconnect degree per provider: min %.0f, mean %.1f, p50 %.0f, p90 %.0f, max %.0f", lo, mean, p50, p90, hi)
		lo, mean, p50, p90, hi = stats(con)
		t.Logf("  node contracts per provider:      min %.0f, mean %.1f, p50 %.0f, p90 %.0f, max %.0f", lo, mean, p50, p90, hi)
		t.Logf("  %d edges after peering expansion", len(g.edges))
	}
}

// enumerate lists every simple path of the request (structurally, over
// the graph's adjacency) and evaluates each with the planner's feasibility
// and order, for the scale check below. It returns the number of simple
// paths and the feasible ones, best first.
func enumerate(g *Graph, req Request) (int, []*cand) {
	p := newPlanner(g)
	if err := p.reset(req); err != nil {
		panic(err)
	}
	total := 0
	var feasible []*cand
	var verts, edges []int32
	evaluate := func() {
		total++
		price, delay, surv := sla.Money(0), 0.0, 1.0
		t := int32(-1)
		if len(g.trie) > 0 {
			t = 0
		}
		for _, ei := range edges {
			e := &g.edges[ei]
			if !p.slaOK(e.sla) || (e.peer >= 0 && !p.slaOK(e.peer)) {
				return
			}
			price += e.price
			delay += e.delay
			surv *= e.surv
			t = g.trieStep(t, e)
		}
		provs := 0
		for i, v := range verts {
			if g.prov[v] == nil {
				continue
			}
			provs++
			f := p.provState(v)
			if f&fQuarantined != 0 {
				return
			}
			last := i == len(verts)-1
			if last && f&fTerm == 0 {
				return
			}
			if !last && f&fTransit == 0 {
				return
			}
			if !last && g.prov[verts[i+1]] != nil && !g.proxy[v] {
				return
			}
		}
		if p.checkPrice && price > p.pol.MaxPricePerMinute {
			return
		}
		p.labels = p.labels[:0]
		p.best = p.best[:0]
		p.k = 1 << 30
		// finish needs a label chain: build one along the path.
		parent := int32(-1)
		for i, v := range verts[:len(verts)-boolInt(p.to >= 0)] {
			e := int32(-1)
			if i > 0 {
				e = edges[i-1]
			}
			p.labels = append(p.labels, label{parent: parent, edge: e, v: v})
			parent = int32(len(p.labels) - 1)
		}
		last := int32(-1)
		if p.to >= 0 {
			last = edges[len(edges)-1]
		}
		p.finish(parent, last, price, delay, surv, provs, t)
		if len(p.best) > 0 {
			feasible = append(feasible, p.best[0])
		}
	}
	var walk func(v int32, provs int)
	walk = func(v int32, provs int) {
		sp := g.span[v]
		cats := []int{catProvProv, catProvNode}
		if v == p.from {
			cats = []int{catNodeProv, catDirect}
		}
		for _, c := range cats {
			for ei := sp[c]; ei < sp[c+1]; ei++ {
				w := g.edges[ei].to
				if slices.Contains(verts, w) {
					continue
				}
				if g.prov[w] == nil {
					if w != p.to {
						continue
					}
					verts, edges = append(verts, w), append(edges, ei)
					evaluate()
					verts, edges = verts[:len(verts)-1], edges[:len(edges)-1]
					continue
				}
				if provs+1 > p.maxHops {
					continue
				}
				verts, edges = append(verts, w), append(edges, ei)
				if p.to < 0 {
					evaluate()
				}
				walk(w, provs+1)
				verts, edges = verts[:len(verts)-1], edges[:len(edges)-1]
			}
		}
	}
	verts = append(verts, p.from)
	walk(p.from, 0)
	slices.SortStableFunc(feasible, func(a, b *cand) int {
		if p.less(a, b) {
			return -1
		}
		if p.less(b, a) {
			return 1
		}
		return 0
	})
	return total, feasible
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestSyntheticMatchesEnumeration runs the planner on the small synthetic
// catalogue (max_hops 3, so that enumeration stays quick) and compares its
// top 3 with exhaustive enumeration; it logs the share of simple paths
// that are feasible.
func TestSyntheticMatchesEnumeration(t *testing.T) {
	cfg := genSmall
	cfg.Seed = 7
	cat := genCatalogue(cfg)
	cat.Policy.Classes["std"] = sla.ClassPolicy{MaxHops: 3}
	g, err := NewGraph(cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := genRequests(cfg, 12, 3)
	gold := reqs[0]
	gold.Class = "gold"
	reqs = append(reqs, gold)
	total, feasible := 0, 0
	for _, req := range reqs {
		n, all := enumerate(g, req)
		total += n
		feasible += len(all)
		res, err := g.Plan(req)
		if err != nil {
			t.Fatal(err)
		}
		want := all[:min(3, len(all))]
		if len(res.Paths) != len(want) {
			t.Fatalf("%+v: %d paths, enumeration %d", req, len(res.Paths), len(want))
		}
		for i, c := range want {
			got := res.Paths[i]
			if got.PricePerMinute != c.price || got.MOS != c.mos || len(got.Hops) != len(c.verts) {
				t.Fatalf("%+v: path %d = %+v, enumeration %+v", req, i, got, c)
			}
			for j, v := range c.verts {
				if got.Hops[j] != g.ids[v] {
					t.Fatalf("%+v: path %d = %v, enumeration %v", req, i, got.Hops, c.verts)
				}
			}
		}
	}
	t.Logf("%d requests: %d simple paths of at most 3 providers, %d feasible (%.1f %%)",
		len(reqs), total, feasible, 100*float64(feasible)/float64(max(total, 1)))
}
