package routing

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/callmesh/callmesh/sla"
	"pgregory.net/rapid"
)

// monday is a Monday 00:00 UTC; requests fall in the week after it.
var monday = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func pick[T any](t *rapid.T, name string, xs ...T) T {
	return xs[rapid.IntRange(0, len(xs)-1).Draw(t, name)]
}

func drawSegment(t *rapid.T, name string) sla.Segment {
	s := sla.Segment{
		Location:    pick(t, name+"loc", "*", "*", "*", "*", "*", "+4", "+49", "+4930", "+33"),
		Quality:     pick(t, name+"q", "", "", "", "gold", "silver"),
		MaxDuration: pick(t, name+"max", 0, 0, time.Minute, 5*time.Minute),
	}
	if rare(t, name+"hashours", 4) {
		var w sla.Window
		for d := range 7 {
			w.Days[d] = rapid.IntRange(0, 2).Draw(t, fmt.Sprintf("%sday%d", name, d)) > 0
		}
		w.Start = pick(t, name+"start", 0, 480, 1080, 1320)
		w.End = pick(t, name+"end", 360, 720, 1200, 1440)
		if w.Start == w.End {
			w.End = 1440
		}
		w.Text = "test"
		s.Hours = sla.Hours{w}
	}
	return s
}

// rare is true about once in n draws.
func rare(t *rapid.T, name string, n int) bool { return rapid.IntRange(0, n-1).Draw(t, name) == n-1 }

var prices = []sla.Money{0, sla.MustMoney("0.001"), sla.MustMoney("0.002"), sla.MustMoney("0.003"), sla.MustMoney("0.005")}

// drawCase draws a random small catalogue and a request on it.
func drawCase(t *rapid.T) (*sla.Catalogue, Options, Request) {
	cat := &sla.Catalogue{}
	nNodes := rapid.IntRange(3, 6).Draw(t, "nodes")
	nProvs := rapid.IntRange(3, 8).Draw(t, "providers")
	nodes := make([]string, nNodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("n%d", i)
		cat.Nodes = append(cat.Nodes, sla.NodeRef{ID: nodes[i]})
	}
	provs := make([]string, nProvs)
	for i := range provs {
		// Ids out of creation order, so hop-id ties are not index ties.
		provs[i] = fmt.Sprintf("p%c", 'h'-rune(i))
		p := sla.Provider{ID: provs[i]}
		switch rapid.IntRange(0, 3).Draw(t, "modes") {
		case 0:
			p.AccessPoints = []sla.AccessPoint{{URI: "sip:t", Mode: sla.Trunk}}
		case 1:
			p.AccessPoints = []sla.AccessPoint{{URI: "sip:t", Mode: sla.Trunk}, {URI: "sip:p", Mode: sla.Proxy}}
		default:
			p.AccessPoints = []sla.AccessPoint{{URI: "sip:p", Mode: sla.Proxy}}
		}
		for _, typ := range []sla.ServiceType{sla.Transit, sla.Termination} {
			n := rapid.IntRange(0, 2).Draw(t, "nseg")
			if typ == sla.Transit && n == 0 && rapid.IntRange(0, 5).Draw(t, "alwaystransit") > 0 {
				n = 1
			}
			sv := sla.Service{Type: typ}
			for j := range n {
				sv.Segments = append(sv.Segments, drawSegment(t, fmt.Sprintf("%s%s%d", provs[i], typ, j)))
			}
			if n > 0 {
				p.Services = append(p.Services, sv)
			}
		}
		cat.Providers = append(cat.Providers, p)
	}
	at := monday.Add(time.Duration(rapid.IntRange(0, 7*24*60-1).Draw(t, "at")) * time.Minute)

	nSLAs := rapid.IntRange(6, 40).Draw(t, "slas")
	idOrder := make([]int, nSLAs)
	for i := range idOrder {
		idOrder[i] = i
	}
	idOrder = rapid.Permutation(idOrder).Draw(t, "ids")
	for i := range nSLAs {
		s := sla.SLA{ID: fmt.Sprintf("s%02d", idOrder[i])}
		s.Price = sla.Price{PerMinute: pick(t, "price", prices...), Currency: "EUR"}
		s.Guarantees.MaxDelayMs = pick(t, "gdelay", 0.0, 5, 10, 20, 40, 80)
		s.Guarantees.MaxLossPct = pick(t, "gloss", 0.0, 0.5, 1, 3)
		s.OneWay = rare(t, "oneway", 4)
		switch kind := rapid.IntRange(0, 9).Draw(t, "kind"); {
		case kind < 5:
			s.Kind = sla.NodeProvider
			n, p := pick(t, "n", nodes...), pick(t, "p", provs...)
			s.Between = [2]string{n, p}
			if rapid.Bool().Draw(t, "flip") {
				s.Between = [2]string{p, n}
			}
		case kind < 8:
			s.Kind = sla.ProviderProvider
			a := rapid.IntRange(0, nProvs-1).Draw(t, "a")
			b := (a + rapid.IntRange(1, nProvs-1).Draw(t, "b")) % nProvs
			s.Between = [2]string{provs[a], provs[b]}
		case kind < 9:
			s.Kind = sla.NodeNode
			a := rapid.IntRange(0, nNodes-1).Draw(t, "a")
			b := (a + rapid.IntRange(1, nNodes-1).Draw(t, "b")) % nNodes
			s.Between = [2]string{nodes[a], nodes[b]}
			s.MarkupPerMinute = pick(t, "markup", prices...)
			if rapid.Bool().Draw(t, "direct") {
				s.Direct = &sla.Direct{PerMinute: pick(t, "dprice", prices...),
					MaxDelayMs: pick(t, "ddelay", 0.0, 3, 30), MaxLossPct: pick(t, "dloss", 0.0, 0.1)}
			}
		default:
			s.Kind = sla.UserAccess
			s.Between = [2]string{pick(t, "n", nodes...), pick(t, "class", "gold", "silver")}
			s.OneWay = false
		}
		switch rapid.IntRange(0, 24).Draw(t, "valid") {
		case 24:
			s.Valid.Until = at.Add(-time.Hour)
		case 23:
			s.Valid.From = at.Add(time.Minute)
		case 22:
			s.Valid.From, s.Valid.Until = at.Add(-time.Hour), at.Add(time.Hour)
		}
		if rare(t, "hassegs", 8) {
			s.Segments = []sla.Segment{drawSegment(t, s.ID+"seg")}
		}
		if mc := pick(t, "maxcalls", 0, 0, 0, 0, 0, 1, 2); mc > 0 {
			s.Capacity.MaxCalls = mc
			if a := pick(t, "active", 0, 0, 1, 2); a > 0 {
				cat.Calls = append(cat.Calls, sla.CallCount{SLA: s.ID, Active: a})
			}
		}
		if rare(t, "measured", 5) {
			cat.Measurements = append(cat.Measurements, sla.Measurement{SLA: s.ID,
				DelayMs: pick(t, "mdelay", 1.0, 15, 30, 100), LossPct: pick(t, "mloss", 0.0, 0.2, 2), Samples: 10})
		}
		cat.SLAs = append(cat.SLAs, s)
	}
	policy := func(name string) sla.ClassPolicy {
		return sla.ClassPolicy{
			MinMOS:            pick(t, name+"mos", 0.0, 0, 0, 3.5, 4.0, 4.3),
			MaxDelayMs:        pick(t, name+"delay", 0.0, 0, 0, 60, 100, 150),
			MaxLossPct:        pick(t, name+"loss", 0.0, 0, 0, 1, 2, 4),
			MaxPricePerMinute: pick(t, name+"price", 0, 0, 0, sla.MustMoney("0.004"), sla.MustMoney("0.006")),
			MaxHops:           pick(t, name+"hops", 0, 0, 1, 2, 3, 5),
		}
	}
	cat.Policy.Classes = map[string]sla.ClassPolicy{"gold": policy("gold"), "silver": policy("silver")}

	opt := Options{JitterBufferMs: pick(t, "jb", 0.0, 20, 60)}
	req := Request{
		From:  pick(t, "from", nodes...),
		Class: pick(t, "reqclass", "gold", "silver", ""),
		At:    at,
		K:     pick(t, "k", 0, 1, 2, 3, 5, 8, 100),
		Codec: pick(t, "codec", "", "", "G.729"),
	}
	if rapid.Bool().Draw(t, "tonumber") {
		req.Number = pick(t, "number", "+4930123", "+4940123", "+3312", "+1555")
	} else {
		i := slices.Index(nodes, req.From)
		req.To = nodes[(i+rapid.IntRange(1, nNodes-1).Draw(t, "to"))%nNodes]
		req.ToClass = pick(t, "toclass", "", "gold", "silver")
	}
	req.FromClass = pick(t, "fromclass", "", "gold", "silver")
	for _, p := range provs {
		if rare(t, "quarantine", 10) {
			if req.Quarantined == nil {
				req.Quarantined = map[string]bool{}
			}
			req.Quarantined[p] = true
		}
	}
	if rare(t, "liveoverride", 5) {
		req.Active = map[string]int{}
		for _, s := range cat.SLAs {
			if a := pick(t, "live", 0, 0, 0, 1, 2); a > 0 {
				req.Active[s.ID] = a
			}
		}
	}

	// Whole-path measurements of real paths between random ends (and of
	// prefixes, which must change nothing), some much better and some much
	// worse than composed.
	bf := newBF(cat, opt)
	for range rapid.IntRange(0, 6).Draw(t, "npathmeas") {
		from := pick(t, "measfrom", nodes...)
		to := pick(t, "measto", append([]string{""}, nodes...)...)
		if to == from {
			to = ""
		}
		var candidates []bfPath
		if rapid.Bool().Draw(t, "measfeasible") {
			// The feasible paths, cheapest first, where a measurement
			// changes the order most.
			r := req
			r.From, r.To, r.Number, r.K = from, to, "", 1000
			if to == "" {
				r.Number = pick(t, "measnumber", "+4930123", "+3312")
			}
			for _, res := range bf.plan(r) {
				candidates = append(candidates, res.p)
			}
			candidates = candidates[:min(len(candidates), 4)]
		} else {
			candidates = bf.enumerate(from, to, 4)
		}
		if len(candidates) == 0 {
			continue
		}
		p := candidates[rapid.IntRange(0, len(candidates)-1).Draw(t, "measpath")]
		var ids []string
		for _, e := range p.edges {
			ids = append(ids, e.slas...)
		}
		if len(ids) > 1 && rare(t, "prefix", 4) {
			ids = ids[:len(ids)-1]
		}
		cat.Measurements = append(cat.Measurements, sla.Measurement{Path: ids,
			DelayMs: pick(t, "pdelay", 1.0, 5, 200), LossPct: pick(t, "ploss", 0.0, 0.1, 10), Samples: 5})
	}
	// Vertex indices that collide in the planner's 64-bit visited masks:
	// 63 isolated providers after each real one.
	if rare(t, "spread", 3) {
		var ps []sla.Provider
		for _, p := range cat.Providers {
			ps = append(ps, p)
			for j := range 63 {
				ps = append(ps, sla.Provider{ID: fmt.Sprintf("%s-idle%02d", p.ID, j)})
			}
		}
		cat.Providers = ps
	}
	return cat, opt, req
}

// TestPlanMatchesBruteForce: on random small catalogues, for every pair
// of nodes and a few numbers, Plan returns exactly the k best paths of the
// brute-force enumeration, in order, each feasible by the brute force's
// rules.
func TestPlanMatchesBruteForce(t *testing.T) {
	stats = struct{ plans, nonEmpty, measured, peered int }{}
	rapid.Check(t, func(t *rapid.T) {
		cat, opt, base := drawCase(t)
		g, err := NewGraph(cat, opt)
		if err != nil {
			t.Fatal(err)
		}
		b := newBF(cat, opt)
		for _, req := range allTargets(cat, base) {
			checkPlan(t, g, b, req)
		}
	})
	t.Logf("%d plans, %d with paths, %d measured and %d peered paths returned",
		stats.plans, stats.nonEmpty, stats.measured, stats.peered)
}

// allTargets varies the request over every ordered pair of nodes and a
// few numbers from every node.
func allTargets(cat *sla.Catalogue, base Request) []Request {
	var reqs []Request
	for _, from := range cat.Nodes {
		r := base
		r.From, r.To = from.ID, ""
		for _, num := range []string{"+4930123", "+4940123", "+3312", "+1555"} {
			r.Number = num
			reqs = append(reqs, r)
		}
		r.Number = ""
		for _, to := range cat.Nodes {
			if to != from {
				r.To = to.ID
				reqs = append(reqs, r)
			}
		}
	}
	return reqs
}

func checkPlan(t *rapid.T, g *Graph, b *bf, req Request) {
	res, err := g.Plan(req)
	if err != nil {
		t.Fatal(err)
	}
	want := b.plan(req)
	if len(res.Paths) != len(want) {
		t.Fatalf("%+v: got %d paths, brute force %d\ngot:  %v\nwant: %v", req, len(res.Paths), len(want), res.Paths, bfPaths(want))
	}
	for i := range want {
		if !reflect.DeepEqual(res.Paths[i], want[i].path) {
			t.Fatalf("%+v: path %d:\ngot:  %+v\nwant: %+v\nall got:  %v\nall want: %v", req, i, res.Paths[i], want[i].path, res.Paths, bfPaths(want))
		}
	}
	if (len(res.Paths) == 0) != (res.Reason != "") {
		t.Fatalf("%d paths with reason %q", len(res.Paths), res.Reason)
	}
	stats.plans++
	if len(res.Paths) > 0 {
		stats.nonEmpty++
	}
	for _, p := range res.Paths {
		if p.Measured {
			stats.measured++
		}
		if len(p.SLAs) > len(p.Hops)-1 {
			stats.peered++
		}
	}
}

var stats struct{ plans, nonEmpty, measured, peered int }

func bfPaths(rs []bfResult) []Path {
	out := make([]Path, len(rs))
	for i, r := range rs {
		out[i] = r.path
	}
	return out
}
