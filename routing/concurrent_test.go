package routing

import (
	"reflect"
	"sync"
	"testing"
)

// TestConcurrentPlans: one Graph serves plans from several goroutines (run
// with -race) with the answers of sequential plans.
func TestConcurrentPlans(t *testing.T) {
	cfg := genSmall
	cfg.Seed = 5
	g, err := NewGraph(genCatalogue(cfg), Options{})
	if err != nil {
		t.Fatal(err)
	}
	reqs := genRequests(cfg, 40, 9)
	var got [4][]Result
	var wg sync.WaitGroup
	for w := range got {
		got[w] = make([]Result, len(reqs))
		wg.Go(func() {
			for i := range reqs {
				j := (i + w*7) % len(reqs)
				res, err := g.Plan(reqs[j])
				if err != nil {
					t.Error(err)
					return
				}
				got[w][j] = res
			}
		})
	}
	wg.Wait()
	for i, r := range reqs {
		want, _ := g.Plan(r)
		for w := range got {
			if !reflect.DeepEqual(got[w][i], want) {
				t.Fatalf("request %d: plan in goroutine %d differs from the sequential one", i, w)
			}
		}
	}
}
