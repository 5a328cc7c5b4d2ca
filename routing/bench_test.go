package routing

import (
	"slices"
	"testing"
	"time"
)

// The planner's targets: p99 ≤ 100 µs on the small catalogue and ≤ 2 ms on
// the large one, k = 3, max_hops 4. Tests never assert timings.
//
//	go test -run '^$' -bench Plan -benchtime 20000x ./routing/

func BenchmarkPlanSmall(b *testing.B) { benchPlan(b, genSmall) }
func BenchmarkPlanLarge(b *testing.B) { benchPlan(b, genLarge) }

// BenchmarkNewGraphLarge is the cost of preparing the large catalogue.
func BenchmarkNewGraphLarge(b *testing.B) {
	cat := genCatalogue(genLarge)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewGraph(cat, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPlan plans requests drawn over three catalogue seeds, cycling
// through 1,000 requests per seed, and reports the per-plan p50 and p99
// latency, the share of requests with a feasible path and the mean number
// of paths returned, besides ns/op and allocs/op.
func benchPlan(b *testing.B, cfg genConfig) {
	const seeds, perSeed = 3, 1000
	type job struct {
		g   *Graph
		req Request
	}
	var jobs []job
	for s := range uint64(seeds) {
		c := cfg
		c.Seed = s + 1
		g, err := NewGraph(genCatalogue(c), Options{})
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range genRequests(c, perSeed, s+100) {
			jobs = append(jobs, job{g, r})
		}
	}
	// Interleave the seeds.
	order := make([]job, 0, len(jobs))
	for i := range perSeed {
		for s := range seeds {
			order = append(order, jobs[s*perSeed+i])
		}
	}
	durs := make([]time.Duration, 0, 1<<20)
	feasible, paths, plans := 0, 0, 0
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		j := order[i%len(order)]
		i++
		t0 := time.Now()
		res, err := j.g.Plan(j.req)
		d := time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		if len(durs) < cap(durs) {
			durs = append(durs, d)
		}
		plans++
		paths += len(res.Paths)
		if len(res.Paths) > 0 {
			feasible++
		}
	}
	slices.Sort(durs)
	pct := func(q float64) float64 {
		return float64(durs[min(len(durs)-1, int(q*float64(len(durs))))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(float64(durs[len(durs)-1].Nanoseconds())/1e3, "max-µs")
	b.ReportMetric(100*float64(feasible)/float64(plans), "feasible-%")
	b.ReportMetric(float64(paths)/float64(plans), "paths/plan")
}
