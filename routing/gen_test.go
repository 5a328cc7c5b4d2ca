package routing

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/callmesh/callmesh/sla"
)

// genConfig sizes a synthetic catalogue.
type genConfig struct {
	Nodes, Providers, SLAs int
	Seed                   uint64
}

var (
	genSmall = genConfig{Nodes: 10, Providers: 100, SLAs: 1000}
	genLarge = genConfig{Nodes: 50, Providers: 1000, SLAs: 20000}
)

// genPrefixes are the destinations providers terminate.
var genPrefixes = []string{"+1", "+33", "+34", "+39", "+44", "+49", "+4930", "+4989", "+41", "+43", "+31", "+46"}

// genCatalogue builds a seeded synthetic catalogue of cfg.SLAs SLAs. The
// same config always gives the same catalogue.
//
// Vertices: nodes "n000"…, providers "p0000"…. Provider r (0-based) has
// popularity weight 1/(r+1)^s, a Zipf law; providers are drawn by it.
//
// SLAs and degrees:
//   - Peerings: node i peers with node i+1 (a ring) and with one node drawn
//     uniformly (a chord, skipped when it repeats a pair): about 2 per node,
//     node peering degree about 4. Markup 0.0001–0.0010; one in four has a
//     direct link (0.0010–0.0100 per minute).
//   - User access: one per node, for class "gold" (20 ms, 0.5 %).
//   - Node–provider contracts: 20 % of the remaining budget, split evenly
//     over the nodes (10 per node for the small catalogue, 80 for the
//     large); each node draws its providers by Zipf weight with s = 1,
//     without repeats, so popular providers hold contracts with most nodes
//     and the tail with few or none.
//   - Interconnects: the other 80 %, both ends drawn by Zipf weight with
//     s = 0.8 (self-loops and repeated pairs redrawn), so provider
//     interconnect degree is heavy-tailed with mean 2·I/P (about 16 small,
//     about 32 large), the most popular providers interconnecting with most
//     others (TestSyntheticCatalogue logs the distribution: median 11 and
//     maximum 84 small, median 19 and maximum 750 large, seed 1).
//
// Every SLA: price 0.0010–0.0200 per minute in steps of 0.0001 (so equal
// prices are common), EUR; delay guarantee 5–60 ms and loss 0.1–1 %, each
// absent ("none promised") one time in ten; one-way one in ten; expired
// one in twenty; one in ten has MaxCalls 100, a fifth of those full. One
// SLA in ten has a single-SLA measurement; 20 whole-path measurements cover
// random contract–interconnect–contract sequences.
//
// Providers: 80 % proxy (a quarter of them also trunk), 20 % trunk only;
// 90 % offer transit everywhere ("*"), one in ten of those only Mon–Fri
// 08:00–18:00 UTC; 30 % terminate one or two prefixes of genPrefixes, 5 %
// terminate "*".
//
// Policy: class "std" with max_hops 4 and no other limit; class "gold"
// adds min_mos 4.0.
func genCatalogue(cfg genConfig) *sla.Catalogue {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6361_6c6c_6d65_7368))
	cat := &sla.Catalogue{Policy: sla.Policy{Classes: map[string]sla.ClassPolicy{
		"std":  {MaxHops: 4},
		"gold": {MaxHops: 4, MinMOS: 4.0},
	}}}
	nodes := make([]string, cfg.Nodes)
	for i := range nodes {
		nodes[i] = fmt.Sprintf("n%03d", i)
		cat.Nodes = append(cat.Nodes, sla.NodeRef{ID: nodes[i]})
	}
	business := sla.Hours{{Days: [7]bool{false, true, true, true, true, true, false}, Start: 8 * 60, End: 18 * 60, Text: "Mon-Fri 08:00-18:00 UTC"}}
	provs := make([]string, cfg.Providers)
	for i := range provs {
		provs[i] = fmt.Sprintf("p%04d", i)
		p := sla.Provider{ID: provs[i]}
		switch x := rng.IntN(20); {
		case x < 4:
			p.AccessPoints = []sla.AccessPoint{{URI: "sip:" + provs[i], Mode: sla.Trunk}}
		case x < 8:
			p.AccessPoints = []sla.AccessPoint{{URI: "sip:" + provs[i], Mode: sla.Proxy}, {URI: "sip:t." + provs[i], Mode: sla.Trunk}}
		default:
			p.AccessPoints = []sla.AccessPoint{{URI: "sip:" + provs[i], Mode: sla.Proxy}}
		}
		if rng.IntN(10) < 9 {
			seg := sla.Segment{Location: "*"}
			if rng.IntN(10) == 0 {
				seg.Hours = business
			}
			p.Services = append(p.Services, sla.Service{Type: sla.Transit, Segments: []sla.Segment{seg}})
		}
		switch x := rng.IntN(100); {
		case x < 5:
			p.Services = append(p.Services, sla.Service{Type: sla.Termination, Segments: []sla.Segment{{Location: "*"}}})
		case x < 35:
			sv := sla.Service{Type: sla.Termination}
			for range 1 + rng.IntN(2) {
				sv.Segments = append(sv.Segments, sla.Segment{Location: genPrefixes[rng.IntN(len(genPrefixes))], MaxDuration: time.Hour})
			}
			p.Services = append(p.Services, sv)
		}
		cat.Providers = append(cat.Providers, p)
	}

	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	n := 0
	newSLA := func(kind sla.Kind, a, b string) *sla.SLA {
		s := sla.SLA{ID: fmt.Sprintf("s%05d", n), Kind: kind, Between: [2]string{a, b}}
		n++
		s.Price = sla.Price{PerMinute: sla.Money(10+rng.IntN(191)) * 100_000, Currency: "EUR"}
		if rng.IntN(10) > 0 {
			s.Guarantees.MaxDelayMs = float64(5 + rng.IntN(56))
		}
		if rng.IntN(10) > 0 {
			s.Guarantees.MaxLossPct = []float64{0.1, 0.2, 0.5, 1}[rng.IntN(4)]
		}
		s.OneWay = kind != sla.UserAccess && rng.IntN(10) == 0
		if rng.IntN(20) == 0 {
			s.Valid.Until = base // expired before any request
		}
		if rng.IntN(10) == 0 {
			s.Capacity.MaxCalls = 100
			if rng.IntN(5) == 0 {
				cat.Calls = append(cat.Calls, sla.CallCount{SLA: s.ID, Active: 100})
			}
		}
		if rng.IntN(10) == 0 {
			cat.Measurements = append(cat.Measurements, sla.Measurement{SLA: s.ID,
				DelayMs: float64(2 + rng.IntN(80)), LossPct: float64(rng.IntN(20)) / 10, Samples: 50})
		}
		cat.SLAs = append(cat.SLAs, s)
		return &cat.SLAs[len(cat.SLAs)-1]
	}

	// Peerings.
	pairs := map[[2]int]bool{}
	for i := range cfg.Nodes {
		for _, j := range []int{(i + 1) % cfg.Nodes, rng.IntN(cfg.Nodes)} {
			a, b := min(i, j), max(i, j)
			if a == b || pairs[[2]int{a, b}] {
				continue
			}
			pairs[[2]int{a, b}] = true
			s := newSLA(sla.NodeNode, nodes[i], nodes[j])
			s.MarkupPerMinute = sla.Money(1+rng.IntN(10)) * 100_000
			if rng.IntN(4) == 0 {
				s.Direct = &sla.Direct{PerMinute: sla.Money(10+rng.IntN(91)) * 100_000, MaxDelayMs: float64(5 + rng.IntN(40))}
			}
		}
	}
	for _, node := range nodes {
		s := newSLA(sla.UserAccess, node, "gold")
		s.Price = sla.Price{}
		s.Guarantees = sla.Guarantees{MaxDelayMs: 20, MaxLossPct: 0.5}
		s.Valid = sla.Validity{}
	}

	zipf := func(s float64) func() int {
		cum := make([]float64, cfg.Providers)
		total := 0.0
		for r := range cum {
			total += 1 / math.Pow(float64(r+1), s)
			cum[r] = total
		}
		return func() int {
			x := rng.Float64() * total
			lo, hi := 0, len(cum)-1
			for lo < hi {
				mid := (lo + hi) / 2
				if cum[mid] < x {
					lo = mid + 1
				} else {
					hi = mid
				}
			}
			return lo
		}
	}
	rest := cfg.SLAs - len(cat.SLAs)
	perNode := rest / 5 / cfg.Nodes
	contractDraw := zipf(1)
	var contracts [][2]int // node, provider
	for i := range cfg.Nodes {
		have := map[int]bool{}
		for len(have) < min(perNode, cfg.Providers) {
			p := contractDraw()
			if have[p] {
				continue
			}
			have[p] = true
			if rng.IntN(2) == 0 {
				newSLA(sla.NodeProvider, nodes[i], provs[p])
			} else {
				newSLA(sla.NodeProvider, provs[p], nodes[i])
			}
			contracts = append(contracts, [2]int{i, p})
		}
	}
	icDraw := zipf(0.8)
	links := map[[2]int]bool{}
	var ics [][2]int
	for len(cat.SLAs) < cfg.SLAs {
		a, b := icDraw(), icDraw()
		if a == b || links[[2]int{min(a, b), max(a, b)}] {
			continue
		}
		links[[2]int{min(a, b), max(a, b)}] = true
		newSLA(sla.ProviderProvider, provs[a], provs[b])
		ics = append(ics, [2]int{a, b})
	}
	// Whole-path measurements: contract, interconnect, contract.
	slaID := map[[2]string]string{}
	for _, s := range cat.SLAs {
		slaID[[2]string{s.Between[0], s.Between[1]}] = s.ID
		slaID[[2]string{s.Between[1], s.Between[0]}] = s.ID
	}
	for range 20 {
		ic := ics[rng.IntN(len(ics))]
		var first, last string
		for _, c := range contracts {
			if c[1] == ic[0] && first == "" {
				first = slaID[[2]string{nodes[c[0]], provs[c[1]]}]
			}
			if c[1] == ic[1] {
				last = slaID[[2]string{nodes[c[0]], provs[c[1]]}]
			}
		}
		if first == "" || last == "" {
			continue
		}
		cat.Measurements = append(cat.Measurements, sla.Measurement{
			Path:    []string{first, slaID[[2]string{provs[ic[0]], provs[ic[1]]}], last},
			DelayMs: float64(10 + rng.IntN(100)), LossPct: float64(rng.IntN(10)) / 10, Samples: 20})
	}
	return cat
}

// genRequests draws n requests on a catalogue from genCatalogue: random
// ordered pairs of distinct nodes, one in four to a number instead, at a
// random minute of the week, class "std", k = 3.
func genRequests(cfg genConfig, n int, seed uint64) []Request {
	rng := rand.New(rand.NewPCG(seed, 0x7265_7175_6573_7473))
	base := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	reqs := make([]Request, n)
	for i := range reqs {
		from := rng.IntN(cfg.Nodes)
		r := Request{From: fmt.Sprintf("n%03d", from), Class: "std", K: 3,
			At: base.Add(time.Duration(rng.IntN(7*24*60)) * time.Minute)}
		if rng.IntN(4) == 0 {
			r.Number = genPrefixes[rng.IntN(len(genPrefixes))] + fmt.Sprintf("%07d", rng.IntN(10_000_000))
		} else {
			r.To = fmt.Sprintf("n%03d", (from+1+rng.IntN(cfg.Nodes-1))%cfg.Nodes)
		}
		reqs[i] = r
	}
	return reqs
}
