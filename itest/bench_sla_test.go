package itest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/callmesh/callmesh/gossip"
)

// offerNodes is the federation size of BenchmarkOfferConvergence20.
const offerNodes = 20

// BenchmarkOfferConvergence20: the time from Node.OfferSLAs at one node
// until every node of a 20-node federation (production timers, GossipSub's
// default mesh) lists the new SLA in its catalogue. Each iteration offers a
// new SLA from the next node in turn and polls every node's catalogue every
// millisecond; the time to the last node is the convergence time.
func BenchmarkOfferConvergence20(b *testing.B) {
	const n = offerNodes
	tb := quiet(b)
	gc := gossip.DefaultConfig()
	c := startStaggered(tb, n, Options{Configure: productionTimers, Gossip: &gc})
	Eventually(tb, time.Minute, c.Converged, "%d nodes did not converge", n)
	// Let the offer topic's mesh form: GossipSub grafts on its heartbeat.
	time.Sleep(3 * time.Second)

	var first, last durations
	round := 0
	for b.Loop() {
		from := round % n
		id := fmt.Sprintf("node%d-p%d", from, round)
		doc := slaDoc(nodeProviderSLA(id, fmt.Sprintf("node%d", from), "alpha", "0.0040", 20, 0.5))
		start := time.Now()
		if _, err := c.Node(from).OfferSLAs([]byte(doc)); err != nil {
			b.Fatal(err)
		}
		seen := make([]bool, n)
		left := n
		var firstAt time.Duration
		deadline := start.Add(30 * time.Second)
		for left > 0 {
			for i := range n {
				if !seen[i] && slices.Contains(slaIDs(c.Node(i)), id) {
					seen[i] = true
					left--
					if i != from && firstAt == 0 {
						firstAt = time.Since(start)
					}
				}
			}
			if time.Now().After(deadline) {
				b.Fatalf("offer %s reached %d of %d nodes in 30 s", id, n-left, n)
			}
			time.Sleep(time.Millisecond)
		}
		last = append(last, time.Since(start))
		first = append(first, firstAt)
		round++
	}
	first, last = first.sorted(), last.sorted()
	b.ReportMetric(ms(last.quantile(0.50)), "all-p50-ms")
	b.ReportMetric(ms(last.quantile(0.99)), "all-p99-ms")
	b.ReportMetric(ms(last.quantile(1)), "all-max-ms")
	b.ReportMetric(ms(first.quantile(0.50)), "first-p50-ms")
	b.Logf("%d offers, each from one node to all %d: first other node p50 %.1f ms; all nodes p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		len(last), n, ms(first.quantile(0.5)), ms(last.quantile(0.5)), ms(last.quantile(0.99)), ms(last.quantile(1)))
}
